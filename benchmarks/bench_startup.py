"""Start-up time of the commands that do no work against ``python -c "import torch"``, interleaved.

    python benchmarks/bench_startup.py [--rounds 7]

Each round runs every command once as a fresh process, in turn, so that the machine's load touches all of
them alike; the medians and the spread of each are printed, with each median as a ratio of importing torch.
``stylefw --help`` is run with the example plugin blocked, as a user without it would see it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLEFW = [sys.executable, "-m", "stylefw"]
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "stylefw --help": [*STYLEFW, "--help"],
    "stylefw list": [*STYLEFW, "list"],
    "stylefw validate vangogh.yaml": [*STYLEFW, "validate", str(ROOT / "recipes" / "vangogh.yaml")],
}


def seconds(command: list[str]) -> float:
    env = {**os.environ, "STYLEFW_BLOCK_PLUGINS": "example"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    torch_median = statistics.median(times["import torch"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32} median {median:.2f} s (min {min(values):.2f}, max {max(values):.2f}), "
              f"{median / torch_median:.2f}× import torch")


if __name__ == "__main__":
    main()
