"""stylefw.run's time per step against a hand-written PyTorch loop doing the same work, in one process.

    python benchmarks/bench_overhead.py [--size 256] [--steps 12] [--rounds 5] [--device cpu] [--precision bf16]

Both optimise a 4:3 image with VGG-19 (random weights: a convolution's speed does not depend on its
values) against vangogh.yaml's losses (content at relu4_2, Gram at relu1_1 to relu5_1 with relative
normalisation, total variation) with Adam, clamping the image into [0, 1] after each step. The hand loop
keeps each step's loss tensor as a user would; stylefw also runs its event system (trace, plugin hooks).
Rounds alternate between the two, and each round's median step time is compared. ``--precision`` is
stylefw's (``bf16``: the backbone under bf16 autocast); the hand loop stays in float32.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import stylefw
from stylefw.contracts import StepEvent
from stylefw.engine.inputs import select_device
from stylefw.plugins.vgg import VGG19

CONTENT, STYLE = ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def write_inputs(folder: Path, size: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    paths = str(folder / "content.png"), str(folder / "style.png")
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)).save(path)
    return paths


def recipe(content: str, style: str, size: int, steps: int, device: str) -> dict:
    return {"content": content, "style": style, "size": size, "steps": steps, "device": device,
            "backbone": {"name": "vgg19", "weights": "random", "first_padding": "replicate"},
            "losses": [{"name": "content", "layers": CONTENT}, {"name": "gram", "weight": 100, "layers": STYLE},
                       {"name": "tv", "weight": 10}],
            "optimizer": {"name": "adam", "lr": 0.02}}


def framework_steps(data: dict) -> list[float]:
    """Seconds per step of stylefw.run, from the step events' clock (the first step is warm-up)."""
    stamps: list[float] = []
    stylefw.run(data, save=False, on_event=lambda e: stamps.append(e.elapsed) if isinstance(e, StepEvent) else None)
    return [later - earlier for earlier, later in zip(stamps[1:], stamps[2:])]


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def hand_steps(content: torch.Tensor, style: torch.Tensor, steps: int) -> list[float]:
    """Seconds per step of the same optimisation written out by hand."""
    vgg = VGG19(weights="random", first_padding="replicate")
    vgg.truncate("relu5_1")
    with torch.no_grad():
        content_target = vgg(content, CONTENT)["relu4_2"]
        style_targets = {layer: gram(value) for layer, value in vgg(style, STYLE).items()}
    content_norm = content_target.pow(2).sum()
    style_norms = {layer: target.pow(2).sum() for layer, target in style_targets.items()}
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.02)
    losses, stamps = [], []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        pixels = image.clamp(0, 1)
        features = vgg(pixels, CONTENT + STYLE)
        content_loss = (features["relu4_2"] - content_target).pow(2).sum() / content_norm
        style_loss = sum((gram(features[layer]) - target).pow(2).sum() / style_norms[layer]
                         for layer, target in style_targets.items()) / len(STYLE)
        tv = ((pixels[:, :, 1:] - pixels[:, :, :-1]).abs().mean() + (pixels[..., 1:] - pixels[..., :-1]).abs().mean())
        total = content_loss + 100 * style_loss + 10 * tv
        total.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        losses.append(total.detach())
        stamps.append(time.perf_counter())
    return [later - earlier for earlier, later in zip(stamps[1:], stamps[2:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    device = select_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        content_path, style_path = write_inputs(Path(folder), args.size)
        data = {**recipe(content_path, style_path, args.size, args.steps, str(device)), "precision": args.precision}
        from stylefw.engine.image import load_image, to_tensor

        content = to_tensor(load_image(content_path)).to(device)
        style = to_tensor(load_image(style_path)).to(device)
        ratios, framework, hand = [], [], []
        for _ in range(args.rounds):
            framework.append(statistics.median(framework_steps(data)))
            hand.append(statistics.median(hand_steps(content, style, args.steps)))
            ratios.append(framework[-1] / hand[-1])
    print(f"{args.size} px on {device}, {torch.get_num_threads()} threads, {args.rounds} rounds of {args.steps} steps, "
          f"stylefw in {args.precision}, the hand loop in fp32")
    print(f"stylefw: median {statistics.median(framework) * 1000:.0f} ms/step; hand loop: median "
          f"{statistics.median(hand) * 1000:.0f} ms/step")
    print(f"ratio stylefw / hand: median {statistics.median(ratios):.3f} (rounds: "
          f"{', '.join(f'{ratio:.3f}' for ratio in ratios)})")


if __name__ == "__main__":
    main()
