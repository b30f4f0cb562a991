"""Print sizes on the CPU: peak resident memory and time per step of a few steps at a large size.

    python benchmarks/large.py --size 4096 --memory checkpoint [--steps 3]
    python benchmarks/large.py --size 8192 --memory checkpoint --tile 1024 [--steps 3]

The work is bench_overhead.py's (VGG-19 with random weights, content at relu4_2, Gram at relu1_1 to
relu5_1, total variation, Adam) on a 4:3 noise picture, with a style image of the same size, so that the
style targets are as large as the picture. The run is a fresh process; it reports its peak resident set
size (``getrusage``), the seconds until the targets were ready (inputs and targets), the first step's
seconds after that, and each later step's, from the events' clock.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def child(size: int, steps: int, memory: str, tile: int | None) -> None:
    import stylefw
    from bench_overhead import recipe, write_inputs
    from stylefw.contracts import StageStart, StepEvent

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as folder:
        content_path, style_path = write_inputs(Path(folder), size)
        data = {**recipe(content_path, style_path, size, steps, "cpu"), "memory": memory}
        if tile:
            data["tile"] = {"size": tile}
        start = time.perf_counter()
        stamps: list[float] = []

        def clock(event) -> None:
            if isinstance(event, (StageStart, StepEvent)):
                stamps.append(time.perf_counter() - start)

        stylefw.run(data, save=False, on_event=clock)
    print(json.dumps({"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "targets_s": stamps[0], "total_s": time.perf_counter() - start,
                      "step_s": [later - earlier for earlier, later in zip(stamps, stamps[1:])]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True, help="the long edge, in pixels (the picture is 4:3)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--memory", choices=("keep", "checkpoint"), default="checkpoint")
    parser.add_argument("--tile", type=int, help="the tile size, in pixels; without it, the picture in one pass")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.size, args.steps, args.memory, args.tile)
        return
    command = [sys.executable, __file__, "--child", "--size", str(args.size), "--steps", str(args.steps),
               "--memory", args.memory] + (["--tile", str(args.tile)] if args.tile else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    result = json.loads(done.stdout.splitlines()[-1])
    height = args.size * 3 // 4
    tiling = f"tiles of {args.tile} px" if args.tile else "one pass"
    print(f"{args.size}×{height} px ({args.size * height / 1e6:.1f} MP), memory: {args.memory}, {tiling}, "
          f"{args.steps} Adam steps, VGG-19 to relu5_1, CPU")
    print(f"  peak RSS {result['peak_bytes'] / 1e9:.2f} GB; inputs and targets {result['targets_s']:.0f} s; steps "
          + ", ".join(f"{seconds:.0f} s" for seconds in result["step_s"]) + f"; whole run {result['total_s']:.0f} s")


if __name__ == "__main__":
    main()
