"""Jobs as lanes of one batch (``stylefw.run_together``) against the same jobs run one after the other.

    python benchmarks/bench_lanes.py [--size 256] [--jobs 4] [--steps 10] [--rounds 3] [--device cpu]

bench_overhead.py's work (VGG-19 with random weights, vangogh.yaml's losses, Adam) on ``--jobs`` noise
pictures of one size, each with its own style. Rounds alternate between the two ways; each round times
the steps after the first (the step events' clock) of all the jobs. Prints the median seconds per job
step both ways, their spread, and the throughput ratio.
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
from bench_overhead import recipe
from stylefw.contracts import StepEvent


def write_jobs(folder: Path, size: int, jobs: int, steps: int, device: str) -> list[dict]:
    rng = np.random.default_rng(0)
    recipes = []
    for index in range(jobs):
        paths = [str(folder / f"{kind}{index}.png") for kind in ("content", "style")]
        for path in paths:
            Image.fromarray(rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)).save(path)
        recipes.append(recipe(*paths, size, steps, device))
    return recipes


def clock() -> tuple[list[float], callable]:
    stamps: list[float] = []
    return stamps, lambda event: stamps.append(event.elapsed) if isinstance(event, StepEvent) else None


def alone(recipes: list[dict]) -> float:
    """Seconds per job step, one job after the other (each job's first step is warm-up)."""
    total, steps = 0.0, 0
    for data in recipes:
        stamps, on_event = clock()
        stylefw.run(data, save=False, on_event=on_event)
        total += stamps[-1] - stamps[0]
        steps += len(stamps) - 1
    return total / steps


def together(recipes: list[dict]) -> float:
    """Seconds per job step with every job in one batch (the first step is warm-up)."""
    stamps, on_event = clock()
    stylefw.run_together(recipes, save=False, on_events=[on_event])
    return (stamps[-1] - stamps[0]) / ((len(stamps) - 1) * len(recipes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    timings: dict[str, list[float]] = {"alone": [], "together": []}
    with tempfile.TemporaryDirectory() as folder:
        recipes = write_jobs(Path(folder), args.size, args.jobs, args.steps, args.device)
        for _ in range(args.rounds):
            timings["alone"].append(alone(recipes))
            timings["together"].append(together(recipes))
    medians = {way: statistics.median(values) for way, values in timings.items()}
    print(f"{args.jobs} jobs at {args.size} px on {args.device}, {args.rounds} rounds, seconds per job step:")
    for way, values in timings.items():
        print(f"  {way:8} median {medians[way] * 1000:.1f} ms (from {min(values) * 1000:.1f} to {max(values) * 1000:.1f})")
    print(f"  throughput together / alone: {medians['alone'] / medians['together']:.2f}x")


if __name__ == "__main__":
    main()
