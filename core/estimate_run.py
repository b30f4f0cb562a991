"""One short calibration run for :mod:`stylefw.estimate`, in a process of its own on the CPU, where the peak
resident set size of the process is the run's peak: ``python -m stylefw.estimate_run`` reads the recipe's
work as JSON on stdin and prints the picture's pixels, the peak bytes and the median seconds per step."""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any


def short_run(data: dict[str, Any]) -> tuple[int, float]:
    """Run ``data`` on generated 4:3 pictures; (pixels, median seconds per step after the first)."""
    import numpy as np
    from PIL import Image

    import stylefw
    from stylefw.contracts import StepEvent

    rng = np.random.default_rng(0)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stylefw-estimate-") as folder:
        paths = [str(Path(folder) / name) for name in ("content.png", "style.png")]
        for path in paths:
            Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)).save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stamp = lambda event: stamps.append(event.elapsed) if isinstance(event, StepEvent) else None  # noqa: E731
            result = stylefw.run({**data, "content": paths[0], "style": paths[1]}, save=False, on_event=stamp)
    times = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    return result.tensor.shape[-2] * result.tensor.shape[-1], statistics.median(times)


def main() -> None:
    pixels, seconds = short_run(json.load(sys.stdin))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(pixels, peak, seconds)


if __name__ == "__main__":
    main()
