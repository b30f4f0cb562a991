"""Steps per second on a GPU at 512 px with the Gatys layers, in fp32, TF32, bf16 and compiled bf16, against
the GPU's dense roofline; and what cudnn.benchmark and channels_last do to a hand-written loop.

    python benchmarks/bench_gpu.py [--size 512] [--steps 100] [--warmup 20]

The work is bench_overhead.py's (VGG-19, random weights: a convolution's speed does not depend on its
values), at a square picture. A step is about 0.38 TFLOP at 512×512 (the forward and the input-gradient
backward through relu5_1), scaled by the pixels at other sizes. Each stylefw run's time per step is taken
from its ``warmup``-th step event to its end (which waits for the GPU), over ``steps`` steps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

import stylefw
from bench_overhead import hand_steps, recipe, write_inputs
from stylefw.contracts import RunEnd, StepEvent

TFLOP_AT_512 = 0.38e12
# dense tensor-core peaks, FLOP/s, by the GPU's name: bf16, tf32; and fp32 without tensor cores
PEAKS = {"H100": (989e12, 494e12, 67e12), "H200": (989e12, 494e12, 67e12), "A100": (312e12, 156e12, 19.5e12),
         "L4": (121e12, 60e12, 30e12), "RTX 4090": (165e12, 82.6e12, 82.6e12)}
CONFIGS = {"fp32": {"precision": "fp32"}, "tf32": {"precision": "tf32"}, "bf16": {"precision": "bf16"},
           "bf16 compiled": {"precision": "bf16", "compile": True}}


def seconds_per_step(data: dict, warmup: int) -> float:
    marks: dict[str, float] = {}

    def clock(event) -> None:
        if isinstance(event, StepEvent) and event.done == warmup:
            torch.cuda.synchronize()
            marks["start"] = time.perf_counter()
        elif isinstance(event, RunEnd):
            marks["end"] = time.perf_counter()

    stylefw.run(data, save=False, on_event=clock)
    return (marks["end"] - marks["start"]) / (data["steps"] - warmup)


def peaks() -> tuple[float, float, float] | None:
    name = torch.cuda.get_device_name()
    return next((value for key, value in PEAKS.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    flop = TFLOP_AT_512 * (args.size / 512) ** 2
    peak = peaks()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.size}×{args.size} px, VGG-19 to relu5_1, "
          f"{args.steps} timed steps after {args.warmup}")
    with tempfile.TemporaryDirectory() as folder:
        content, style = write_inputs(Path(folder), args.size)
        base = {**recipe(content, style, args.size, args.steps + args.warmup, "cuda"), "size": args.size}
        for benchmark in (False, True):
            torch.backends.cudnn.benchmark = benchmark
            for name, keys in CONFIGS.items():
                seconds = seconds_per_step({**base, **keys}, args.warmup)
                roofline = f", {flop / seconds / peak[0]:.1%} of the bf16 roofline" if peak else ""
                print(f"  stylefw {name:14s} cudnn.benchmark={benchmark!s:5s}: {seconds * 1000:7.2f} ms/step, "
                      f"{1 / seconds:7.1f} steps/s, {flop / seconds / 1e12:6.1f} TFLOP/s{roofline}")
        torch.backends.cudnn.benchmark = False
        from stylefw.engine.image import load_image, to_tensor

        images = [to_tensor(load_image(path)).cuda() for path in (content, style)]
        for benchmark in (False, True):
            torch.backends.cudnn.benchmark = benchmark
            for layout in (torch.contiguous_format, torch.channels_last):
                torch.cuda.synchronize()
                steps = hand_steps(*(image.contiguous(memory_format=layout) for image in images), args.steps)
                print(f"  hand loop fp32 {str(layout).split('.')[-1]:17s} cudnn.benchmark={benchmark!s:5s}: "
                      f"{statistics.median(steps) * 1000:7.2f} ms/step (median; no sync between steps)")


if __name__ == "__main__":
    main()
