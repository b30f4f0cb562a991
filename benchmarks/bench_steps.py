"""Steps per second of the engine, and what truncating the backbone saves, measured in one run.

    python benchmarks/bench_steps.py [--size 256] [--steps 20] [--device auto]

For each layer set, the same optimisation runs twice: with the backbone cut after the deepest layer the
losses read (what stylefw does) and with the whole ``features`` stack kept. The forward pass stops at the
deepest requested layer either way, so the cut saves weight memory rather than time; the speed ratio
checks that it costs nothing. Random weights: a convolution's speed does not depend on its values.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from stylefw.engine import Targets
from stylefw.engine.optimise import optimise
from stylefw.engine.inputs import select_device
from stylefw.plugins.losses import ContentLoss, GramLoss, TVLoss
from stylefw.plugins.vgg import VGG19

LAYER_SETS = {
    "gatys (to conv5_1)": (["conv4_2"], ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]),
    "shallow (to relu3_1)": (["relu3_1"], ["relu1_1", "relu2_1", "relu3_1"]),
}


def steps_per_second(backbone, content_layers, style_layers, size: int, steps: int, device) -> float:
    content = torch.rand(1, 3, size, size * 3 // 4, device=device)
    layers = list(dict.fromkeys(content_layers + style_layers))
    losses = [ContentLoss(layers=content_layers), GramLoss(layers=style_layers), TVLoss()]
    with torch.no_grad():
        features = backbone(content, layers)
    for loss in losses:
        loss.prepare(Targets(features, [(features, 1.0)]))
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.02)
    run = optimise(image, backbone, losses, [1.0, 1e4, 10.0], ["content", "gram", "tv"], optimizer, steps + 2, layers)
    next(run), next(run)  # warm-up: allocator and kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in run:
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def _megabytes(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = select_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.size}x{args.size * 3 // 4} px, {args.steps} Adam steps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (content_layers, style_layers) in LAYER_SETS.items():
            full = VGG19(weights="random").to(device)
            cut = VGG19(weights="random")
            cut.truncate(max(content_layers + style_layers, key=cut.layer_names.index))
            cut = cut.to(device)
            rate_full = steps_per_second(full, content_layers, style_layers, args.size, args.steps, device)
            rate_cut = steps_per_second(cut, content_layers, style_layers, args.size, args.steps, device)
            mb_cut, mb_full = _megabytes(cut), _megabytes(full)
            print(f"{name:22s} truncated {rate_cut:6.2f} steps/s {mb_cut:6.1f} MB   "
                  f"full {rate_full:6.2f} steps/s {mb_full:6.1f} MB   "
                  f"speed {rate_cut / rate_full:.2f}x  weights {mb_cut / mb_full:.2f}x")


if __name__ == "__main__":
    main()
