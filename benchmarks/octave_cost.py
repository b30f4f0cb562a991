"""What ``octave_size`` costs per step: vangogh.yaml's work with and without it, interleaved, in one process.

    python benchmarks/octave_cost.py [--sizes 512 1024] [--octave-size 256] [--steps 5] [--rounds 3]

For each size, runs of ``vangogh.yaml`` (its layers, losses and optimizer; random weights, since a
convolution's speed does not depend on its values) alternate between ``octave_size: off`` and
``--octave-size``, ``--rounds`` times each, on generated images. Each run's time per step leaves out its
first step (allocator, kernels); the median per-step ratio and its range over the rounds are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import stylefw
from stylefw.contracts import StepEvent


def picture(path: Path, width: int, height: int, seed: int) -> str:
    """Random pixels: a convolution's speed does not depend on what it sees either."""
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return str(path)


def per_step(content: str, style: str, size: int, steps: int, octave_size: str) -> float:
    """Seconds per step after the first, of vangogh.yaml at ``size`` with ``octave_size``."""
    times: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, StepEvent):
            times.append(event.elapsed)

    stylefw.run("vangogh.yaml", [f"content={content}", f"style={style}", f"size={size}", f"steps={steps + 1}",
                                 "backbone.weights=random", "device=cpu", f"octave_size={octave_size}"],
                on_event=on_event, save=False)
    return (times[-1] - times[0]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--octave-size", default="256")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # random weights, on purpose
    with tempfile.TemporaryDirectory() as scratch:
        content = picture(Path(scratch) / "content.png", 640, 480, 0)
        style = picture(Path(scratch) / "style.png", 640, 512, 1)
        for size in args.sizes:
            ratios, plain, octaves = [], [], []
            for _ in range(args.rounds):
                plain.append(per_step(content, style, size, args.steps, "off"))
                octaves.append(per_step(content, style, size, args.steps, args.octave_size))
                ratios.append(octaves[-1] / plain[-1])
            print(f"{size} px: octave_size {args.octave_size} {statistics.median(octaves) * 1000:.0f} ms/step, off "
                  f"{statistics.median(plain) * 1000:.0f} ms/step: ratio {statistics.median(ratios):.2f} "
                  f"(range {min(ratios):.2f} to {max(ratios):.2f}, {args.rounds} rounds)", flush=True)


if __name__ == "__main__":
    main()
