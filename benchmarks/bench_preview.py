"""A run's speed with ``--preview`` (and a page polling it) against the same run without, in one process.

    python benchmarks/bench_preview.py [--size 256] [--steps 30] [--rounds 4] [--device cpu]

bench_overhead.py's work (VGG-19 with random weights, vangogh.yaml's losses, Adam). With the preview, a
thread plays the browser: it reads the status every half second, as the page does, and the picture
whenever it changed. Rounds alternate between the two; each round's median step time (the step events'
clock, the first step left out) is compared, and the ratio of it/s printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import urllib.request
import warnings
from pathlib import Path

import stylefw
from bench_overhead import framework_steps, recipe, write_inputs
from stylefw.contracts import StepEvent
from stylefw.tools.preview import Preview
from stylefw.tools.preview_server import PreviewServer


def browser(url: str, done: threading.Event) -> None:
    """Polls like the page: the status every 0.5 s, the picture when its number changes."""
    base, token = url.split("/?token=")
    shown = 0
    while not done.wait(0.5):
        with urllib.request.urlopen(f"{base}/status?token={token}") as response:
            status = json.load(response)
        if status.get("image", 0) != shown:
            shown = status["image"]
            urllib.request.urlopen(f"{base}/image.png?token={token}").read()


def previewed_steps(data: dict) -> list[float]:
    preview, stamps, done = Preview(), [], threading.Event()
    with PreviewServer(preview) as server:
        poller = threading.Thread(target=browser, args=(server.url, done))
        poller.start()

        def on_event(event) -> None:
            preview(event)
            if isinstance(event, StepEvent):
                stamps.append(event.elapsed)

        stylefw.run(data, save=False, on_event=on_event)
        done.set()
        poller.join()
    return [later - earlier for earlier, later in zip(stamps[1:], stamps[2:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    medians: dict[str, list[float]] = {"without": [], "with --preview": []}
    with tempfile.TemporaryDirectory() as folder:
        data = recipe(*write_inputs(Path(folder), args.size), args.size, args.steps, args.device)
        for _ in range(args.rounds):
            medians["without"].append(statistics.median(framework_steps(data)))
            medians["with --preview"].append(statistics.median(previewed_steps(data)))
    print(f"{args.size} px on {args.device}, {args.steps} steps, {args.rounds} rounds, median step time:")
    for way, values in medians.items():
        print(f"  {way:15} {statistics.median(values) * 1000:.1f} ms (rounds {', '.join(f'{v * 1000:.1f}' for v in values)})")
    ratio = statistics.median(medians["without"]) / statistics.median(medians["with --preview"])
    print(f"  it/s with --preview / without: {ratio:.3f}")


if __name__ == "__main__":
    main()
