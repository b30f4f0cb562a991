"""Peak resident memory of a run against a hand-written PyTorch loop doing the same work, per megapixel.

    python benchmarks/memory.py [--sizes 512 1024] [--steps 4] [--contenders stylefw hand checkpoint]

The work is bench_overhead.py's: a 4:3 picture, VGG-19 (random weights), content at relu4_2, Gram at
relu1_1 to relu5_1, total variation, Adam, on the CPU. Each contender runs at each size in a fresh
process, which reports its peak resident set size (``getrusage``). Memory per megapixel is the slope of
that peak between the sizes: what does not grow with the picture (torch itself, the weights) drops out.
``checkpoint`` is stylefw with ``memory: checkpoint``. Each process also reports its median time per step
after the first, one run each: on a shared machine, a rough figure.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

CONTENDERS = ("stylefw", "hand", "checkpoint")


def child(contender: str, size: int, steps: int) -> None:
    """Run one contender; print its peak RSS in bytes (Linux reports kilobytes) and its median seconds per step."""
    from bench_overhead import framework_steps, hand_steps, recipe, write_inputs
    from stylefw.engine.image import load_image, to_tensor

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as folder:
        content_path, style_path = write_inputs(Path(folder), size)
        data = recipe(content_path, style_path, size, steps, "cpu")
        if contender == "hand":
            seconds = hand_steps(to_tensor(load_image(content_path)), to_tensor(load_image(style_path)), steps)
        else:
            seconds = framework_steps({**data, "memory": "checkpoint" if contender == "checkpoint" else "keep"})
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, statistics.median(seconds))


def measure(contender: str, size: int, steps: int) -> tuple[int, float]:
    done = subprocess.run([sys.executable, __file__, "--child", contender, str(size), str(steps)],
                          capture_output=True, text=True, check=True)
    peak, seconds = done.stdout.split()[-2:]
    return int(peak), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    small, large = args.sizes
    megapixels = {size: size * (size * 3 // 4) / 1e6 for size in args.sizes}
    runs = {(contender, size): measure(contender, size, args.steps)
            for size in args.sizes for contender in args.contenders}
    print(f"peak RSS and median time per step over {args.steps} Adam steps, VGG-19 to relu5_1, 4:3 pictures, CPU")
    for (contender, size), (peak, seconds) in runs.items():
        print(f"  {contender:10s} {size:5d} px: {peak / 1e9:.2f} GB, {seconds:.2f} s/step")
    slopes = {contender: (runs[contender, large][0] - runs[contender, small][0]) / (megapixels[large] - megapixels[small])
              for contender in args.contenders}
    print(f"per megapixel, {small} to {large} px: " + ", ".join(f"{c} {s / 1e9:.2f} GB/MP" for c, s in slopes.items()))
    if "hand" in slopes:
        print("against the hand loop: " + ", ".join(f"{c} {s / slopes['hand']:.2f}" for c, s in slopes.items()
                                                    if c != "hand"))


if __name__ == "__main__":
    main()
