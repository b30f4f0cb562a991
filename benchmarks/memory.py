"""Peak resident memory of a run against a hand-written PyTorch loop doing the same work, per megapixel.

    python benchmarks/memory.py [--sizes 512 1024] [--steps 3]

The work is bench_overhead.py's: a 4:3 picture, VGG-19 (random weights), content at relu4_2, Gram at
relu1_1 to relu5_1, total variation, Adam, on the CPU. Each contender runs at each size in a fresh
process, which reports its peak resident set size (``getrusage``). Memory per megapixel is the slope of
that peak between the sizes: what does not grow with the picture (torch itself, the weights) drops out.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

CONTENDERS = ("stylefw", "hand")


def child(contender: str, size: int, steps: int) -> None:
    """Run one contender and print its peak RSS in bytes (Linux reports kilobytes)."""
    import stylefw
    from bench_overhead import hand_steps, recipe, write_inputs
    from stylefw.image import load_image, to_tensor

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as folder:
        content_path, style_path = write_inputs(Path(folder), size)
        if contender == "stylefw":
            stylefw.run(recipe(content_path, style_path, size, steps, "cpu"), save=False)
        else:
            hand_steps(to_tensor(load_image(content_path)), to_tensor(load_image(style_path)), steps)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def peak(contender: str, size: int, steps: int) -> int:
    done = subprocess.run([sys.executable, __file__, "--child", contender, str(size), str(steps)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    small, large = args.sizes
    megapixels = {size: size * (size * 3 // 4) / 1e6 for size in args.sizes}
    peaks = {(contender, size): peak(contender, size, args.steps) for size in args.sizes for contender in CONTENDERS}
    print(f"peak RSS over {args.steps} Adam steps, VGG-19 to relu5_1, 4:3 pictures, CPU")
    for (contender, size), value in peaks.items():
        print(f"  {contender:8s} {size:5d} px: {value / 1e9:.2f} GB")
    slopes = {contender: (peaks[contender, large] - peaks[contender, small]) / (megapixels[large] - megapixels[small])
              for contender in CONTENDERS}
    print(f"per megapixel, {small} to {large} px: " + ", ".join(f"{c} {s / 1e9:.2f} GB/MP" for c, s in slopes.items())
          + f"; stylefw / hand {slopes['stylefw'] / slopes['hand']:.2f}")


if __name__ == "__main__":
    main()
