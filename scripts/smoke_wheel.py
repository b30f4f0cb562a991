"""Build stylefw's wheel, install it (not editable) in a fresh virtual environment, and use it as a user would.

    python scripts/smoke_wheel.py [--keep DIR]

In a folder outside the repository, so that nothing can be imported from the source tree, the installed
``stylefw`` must: list its plugins and shipped recipes (``stylefw list``), check a shipped recipe against its
golden (``stylefw check vangogh``: the recipes and goldens are package data), write out the example plugin
package (``stylefw plugins --example``) and serve the preview page during a run (``--preview``: the page is
package data too). Exit 0 when all of that works. CI runs it
(``.ci/run``); the installation takes about a minute, most of it torch.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build in DIR and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="stylefw-wheel-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wheel = build(work / "dist")
        python = environment(work / "venv", wheel)
        use(python, work / "use")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("the wheel works")
    return 0


def run(*command: object, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    print("$", " ".join(str(part) for part in command), flush=True)
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def build(dist: Path) -> Path:
    """The wheel, built from the repository with the build tools already installed (no download)."""
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT)
    (wheel,) = dist.glob("stylefw-*.whl")
    return wheel


def environment(folder: Path, wheel: Path) -> Path:
    """A fresh virtual environment with the wheel and its dependencies installed; its Python."""
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel)
    return python


def use(python: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stylefw = python.parent / "stylefw"
    where = run(python, "-c", "import stylefw; print(stylefw.__file__)", cwd=folder).stdout.strip()
    assert str(python.parent.parent) in where, f"stylefw was imported from {where}, not the environment"
    listed = run(stylefw, "list", cwd=folder).stdout
    for item in ("vgg19", "gram", "adam", "cosine", "vangogh.yaml", "weights"):
        assert re.search(rf"\b{re.escape(item)}\b", listed), f"stylefw list does not show {item}:\n{listed}"
    checked = run(stylefw, "check", "vangogh", cwd=folder).stdout
    assert "passed" in checked, checked
    run(stylefw, "plugins", "--example", "example", cwd=folder)
    assert (folder / "example" / "stylefw_example" / "__init__.py").is_file(), "the example plugin is not shipped"
    preview(stylefw, python, folder)


def preview(stylefw: Path, python: Path, folder: Path) -> None:
    """A short run with --preview: its page is served, from the installed package, while the run lingers."""
    pictures = ("import numpy as np; from PIL import Image; rng = np.random.default_rng(0)\n"
                "for name in ('content', 'style'):\n"
                "    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(name + '.png')")
    run(python, "-c", pictures, cwd=folder)
    command = [str(stylefw), "recipe", "vangogh", "--content", "content.png", "--style", "style.png", "--size", "32",
               "--steps", "3", "--set", "backbone.weights=random", "--output", "out.png", "--progress", "plain",
               "--preview", "--preview-linger", "20"]
    print("$", " ".join(command), flush=True)
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in process.stdout:
            if line.startswith("preview: "):
                url = line.split(" ", 1)[1].strip()
                break
        assert url, "the run printed no preview URL"
        page = _get(url)
        assert "<html" in page.lower() and "stylefw" in page.lower(), page[:200]
        deadline = time.monotonic() + 120
        while json.loads(_get(url.replace("/?", "/status?"))).get("state") != "done":
            assert time.monotonic() < deadline, "the previewed run did not finish"
            time.sleep(0.5)
    finally:
        process.terminate()
        process.communicate(timeout=60)
    assert (folder / "out.png").is_file() and (folder / "out.png.json").is_file()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8")


if __name__ == "__main__":
    sys.exit(main())
