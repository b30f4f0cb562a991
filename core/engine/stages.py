"""A run over its stages: the targets at each size, and the image carried up from one stage to the next.

A single-scale recipe is one stage. With ``scales``, each stage starts from the previous stage's image
resized bicubic, recomputes the content and style targets at its own size from the original files, and
prepares every loss again; an optimizer that declares ``resize_state`` (Adam) keeps its state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from PIL import Image

from ..contracts.plugins import Backbone, Loss, Targets
from ..contracts.recipe import Recipe
from ..contracts.run import (FAILED, INTERRUPTED, READ_EVERY, RunContext, RunStart, Stage, StageStart, StepEvent,
                             Stop)
from ..contracts.scales import fade_factors, octave_factors, shape_at
from ..errors import RunError, warn
from ..hooks.registry import Registry
from .build import build_loss, build_optimizer, receptive_fields
from .checkpoint import ensure_fits, restore_rng, rng_state
from .color import color_inputs, color_output
from .health import SATURATION, Guard, diagnose, lower_lr
from .image import resize_long_edge, to_tensor
from .inputs import style_edge
from .octaves import OctaveBackbone, OctaveLoss, split_octave
from .optimise import Evaluated, compute_targets, initial_image, optimise, target_layers
from .tiling import Grid, Tiler, tiled_targets

__all__ = ["Average", "StageInputs", "Ending", "StagedRun", "plan_stages", "resize_image", "warn_upscaled_styles"]


class Average:
    """A bias-corrected exponential moving average of the image, as Adam corrects its moments.

    After ``t`` updates it is ``(1 - d) Σ d^(t-i) x_i / (1 - d^t)``: a weighted mean of the images so far,
    so it is exact from the first step instead of starting near zero.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.count = 0
        self.sum: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, image: torch.Tensor) -> None:
        self.count += 1
        if self.sum is None:
            self.sum = torch.zeros_like(image)
        self.sum.mul_(self.decay).add_(image.detach().clamp(0, 1), alpha=1 - self.decay)

    def value(self) -> torch.Tensor:
        """The average so far (updated at least once)."""
        return self.sum / (1 - self.decay ** self.count)

    def state_dict(self) -> dict[str, Any]:
        """The count and the running sum, for a checkpoint."""
        return {"count": self.count, "sum": self.sum}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device | None = None) -> None:
        """Continue from what ``state_dict`` gave, with the sum moved to ``device``."""
        self.count, self.sum = state["count"], None if state["sum"] is None else state["sum"].to(device)


@dataclass(frozen=True)
class StageInputs:
    """One stage's inputs at its size: as given, and as optimised against (after colour control).

    Not the targets: the losses keep what they need of those, and the features themselves (the content's at
    relu1_1 alone is 256 bytes a pixel) are dropped before the first step.
    """

    content: torch.Tensor
    styles: list[torch.Tensor]
    run_content: torch.Tensor
    run_styles: list[torch.Tensor]


@dataclass(frozen=True)
class Ending:
    """How the stages ended: the picture, the inputs at the last stage's size, and why it stopped early."""

    picture: torch.Tensor
    content: torch.Tensor
    styles: list[torch.Tensor]
    stop: Stop | None


@dataclass(frozen=True)
class Sound:
    """The last picture read with few values pinned: what a run whose steps overshoot rolls back to. It is
    held on the CPU, so that a GPU keeps no extra copy (the guard's pictures are never changed in place)."""

    picture: torch.Tensor
    inputs: StageInputs
    stage: int
    step: int
    done: int  # the run's steps taken before it: none means nothing was optimised yet


def plan_stages(recipe: Recipe, content_size: tuple[int, int]) -> tuple[Stage, ...]:
    """The recipe's stages for a content image of ``content_size`` (width, height), each keeping its aspect."""
    specs = recipe.stages
    stages = []
    for index, spec in enumerate(specs, 1):
        width, height = shape_at(*content_size, spec.size)
        stages.append(Stage(index, len(specs), spec.size, (height, width), spec.steps))
    return tuple(stages)


def resize_image(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``image`` resized bicubic to ``shape`` (height, width) and clamped to [0, 1], as a new leaf to optimise."""
    with torch.no_grad():
        resized = F.interpolate(image.detach(), size=shape, mode="bicubic", align_corners=False).clamp(0, 1)
    return resized.contiguous().requires_grad_(True)


def warn_upscaled_styles(recipe: Recipe, styles: list[Image.Image]) -> None:
    """One warning naming every style image the largest stage must enlarge beyond its own resolution."""
    edge = style_edge(recipe.size, recipe.style_scale)
    small = [f"{ref.source} ({max(image.size)} px)" for ref, image in zip(recipe.styles, styles) if max(image.size) < edge]
    if small:
        warn(f"style image{'s' * (len(small) > 1)} {', '.join(small)} upscaled to {edge} px (size {recipe.size} × "
             f"style_scale {recipe.style_scale:g}): the brush strokes blur; use a larger style image or a smaller "
             "style_scale")


class StagedRun:
    """Optimises one image through a recipe's stages, sending every event to ``emit``.

    Every ``READ_EVERY`` steps and at the end of each stage (where the trace reads the losses), whenever the
    run stops, and before a plugin keeps its state, it reads its ``Guard``: a non-finite loss rolls the
    picture back to the last one whose loss was finite and stops the run as ``failed``; more than
    ``SATURATION`` of the values pinned at 0 or 1 (the steps overshoot) rolls it back to the last picture read
    with fewer and stops it as ``failed`` too. Neither writes the broken picture as a result.

    The recipe, its stages and the state it resumes from (``run.resumed``, what ``StepEvent.state()`` gave: a
    checkpoint's) come from ``run``; ``tiler`` says how each stage is cut into tiles (``tile``), decided before
    the run.
    """

    def __init__(self, registry: Registry, device: torch.device, backbone: Backbone, losses: list[Loss], *,
                 content: Image.Image, styles: list[Image.Image], emit: Callable[[Any], None], run: RunContext,
                 tiler: Tiler | None = None) -> None:
        self.recipe, self.registry, self.device = run.recipe, registry, device
        self.backbone, self.losses = backbone, losses
        if self.recipe.octave_size:  # every loss that reads layers is compared at octaves too (engine.octaves)
            self.backbone = OctaveBackbone(backbone)
            self.losses = [OctaveLoss(loss, lambda index=index: build_loss(self.recipe, registry, index))
                           if loss.layers else loss for index, loss in enumerate(losses)]
        self.originals = content, styles
        self.emit, self.context, self.control = emit, run, run.control
        self.stages = run.stages
        self.labels = tuple(spec.label for spec in self.recipe.losses)
        self.weights = tuple(spec.weight for spec in self.recipe.losses)
        self.resume, self.tiler = run.resumed, tiler  # resume: taken by the first stage that runs
        # each layer's receptive field, for layer_fade on a multi-scale run's earlier stages
        fade = self.recipe.layer_fade is not None and len(self.stages) > 1
        self.fields = receptive_fields(backbone, self.recipe.layers, self.recipe.backbone.name) if fade else None
        if self.resume is not None:
            ensure_fits(self.resume, self.stages)
        self.grid: Grid | None = None  # the current stage's tiles, when it is cut into more than one
        # whether RunStart has gone out, and RunEnd: a run that raises in between is announced as aborted
        self.started = self.delivered = False

    def run(self) -> Ending:
        """Every stage in turn, or until a plugin stops the run or Ctrl-C interrupts it."""
        self.begin()
        try:
            for stage in self.stages[(self.resume or {}).get("stage", 1) - 1:]:
                self.run_stage(stage)
                if self.ended:
                    break
        except KeyboardInterrupt:
            self.interrupted()
        return self.ending()

    def begin(self) -> None:
        """Start the clock, announce the run, and set its counters (from the saved state when resuming)."""
        saved = self.resume or {}
        self.start = time.perf_counter() - saved.get("elapsed", 0.0)
        self.started = True
        self.emit(RunStart(self.context))
        self.image = self.optimizer = self.average = self.inputs = self.guard = None
        self.done, self.failed, self.sound = saved.get("done", 0), None, None
        self.cut = False  # whether a second Ctrl-C cut a step short
        self.read_at = -1  # the step (of the run) at which the guard was last read

    @property
    def ended(self) -> bool:
        """Whether the run has stopped early: asked to, or failed."""
        return bool(self.control.reason or self.failed)

    def interrupted(self) -> None:
        """A second Ctrl-C cut a step short: stop where the last whole step left the picture."""
        if self.image is None:
            raise KeyboardInterrupt  # nothing to deliver yet
        self.cut = True
        self.control.stop(INTERRUPTED)
        self.read_health()

    def ending(self) -> Ending:
        """The picture to deliver, and why the run stopped early if it did."""
        if self.failed:
            source, inputs, stop = self.failed
            return Ending(self.picture(source, inputs), inputs.content, inputs.styles, stop)
        stop = Stop(self.control.reason, self.stage.index, self.step, self.control.details) if self.control.reason else None
        return Ending(self.picture(), self.inputs.content, self.inputs.styles, stop)

    def run_stage(self, stage: Stage) -> None:
        inputs, targets = self.prepare(stage)
        saved, self.resume = self.resume, None
        image = self.start_image(stage, inputs) if saved is None else saved["image"].to(self.device).requires_grad_()
        optimizer = self.build_optimizer(image, stage.shape)
        scheduler = self.scheduler(stage, optimizer)
        self.enter(stage, inputs, targets, image, optimizer, scheduler, saved)
        del targets  # what the losses need they have kept; the rest would sit beside the activations every step
        for evaluated in optimise(image, self.backbone, self.losses, list(self.weights), list(self.labels),
                                  optimizer, stage.steps, self.layers, scheduler=scheduler,
                                  first=self.step + 1, project=self.project, grid=self.grid):
            if not self.after(evaluated):
                return

    def enter(self, stage: Stage, inputs: StageInputs, targets: Targets, image: torch.Tensor,
              optimizer: torch.optim.Optimizer, scheduler: Any, saved: Mapping[str, Any] | None = None) -> None:
        """Begin ``stage`` with ``image`` and its optimizer and schedule (restored from ``saved`` when resuming)."""
        average = Average(self.recipe.average) if self.recipe.average else None
        step, self.project = self.restore(saved, optimizer, scheduler, average) if saved else (0, None)
        source = average.value() if average is not None and average.count else image.detach().clone()
        # one assignment: an interrupt before it leaves the previous stage's picture whole
        self.previous = (self.guard, self.inputs) if self.guard is not None else None
        self.stage, self.step, self.inputs, self.image, self.optimizer, self.schedule, self.average, self.guard = (
            stage, step, inputs, image, optimizer, scheduler, average, Guard(source, inputs.run_content, inputs.run_styles))
        self.sound = Sound(source.to("cpu"), inputs, stage.index, step, self.done)
        self.emit(StageStart(stage, targets, self.context))

    def after(self, evaluated: Evaluated) -> bool:
        """Account for a step the optimizer took: the average, the guard, the event and the checks. Returns
        whether the stage goes on."""
        stage = self.stage
        if self.average is not None:
            self.average.update(self.image)
        self.guard.step(evaluated.values, self.source().clone() if self.average is None else self.source())
        self.step, self.done, self.project = evaluated.step, self.done + 1, evaluated.projected
        self.emit(StepEvent(stage, evaluated.step, self.done, time.perf_counter() - self.start, self.labels,
                            self.weights, evaluated.values, self.picture, self.context, self.checked_state))
        if self.control.reason or evaluated.step % READ_EVERY == 0 or evaluated.step == stage.steps:
            self.read_health()
        return not (self.failed or self.control.reason)

    def checked_state(self) -> dict[str, Any] | None:
        """The state after the last step once the losses so far are read: None when one was not finite."""
        self.read_health()
        return None if self.failed else self.state()

    def final_state(self) -> dict[str, Any] | None:
        """The state to continue from when the run stopped early after a whole step; else None (finished,
        failed, or a step cut short)."""
        if self.failed or self.cut or self.image is None or not self.control.reason:
            return None
        return self.checked_state()

    def state(self) -> dict[str, Any]:
        """Everything the run needs to continue after this step, exactly as it would have gone on."""
        schedule = getattr(self.schedule, "state_dict", None)
        return {"stage": self.stage.index, "step": self.step, "done": self.done, "project": self.project,
                "elapsed": time.perf_counter() - self.start,
                "image": self.image.detach().cpu(), "optimizer": self.optimizer.state_dict(),
                "scheduler": schedule() if schedule is not None else None,
                "average": self.average.state_dict() if self.average is not None else None,
                "rng": rng_state(self.device)}

    def restore(self, saved: Mapping[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any,
                average: Average | None) -> tuple[int, bool | None]:
        """Load a checkpoint's state into this stage's optimizer, schedule and average; its step and projection."""
        # after the schedule is built: building one sets the optimizer's rate, which the saved state puts back
        optimizer.load_state_dict(saved["optimizer"])
        if saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if average is not None and saved["average"] is not None:
            average.load_state_dict(saved["average"], self.device)
        restore_rng(saved["rng"])
        return saved["step"], saved["project"]

    def read_health(self) -> None:
        """Read the guard (the trace has just read the losses): fail on a non-finite loss or a saturated
        picture, else keep the picture as the last sound one."""
        if self.read_at == self.done or self.failed:
            return  # read already after this step: nothing has changed since
        self.read_at = self.done
        healthy, pinned = self.guard.read(self.image)
        if not healthy:
            self.fail()
        elif pinned > SATURATION:
            self.overshot(pinned)
        else:
            self.sound = Sound(self.guard.candidate.to("cpu"), self.inputs, self.stage.index, self.step, self.done)

    def fail(self) -> None:
        """Roll back to the last picture with a finite loss and stop as ``failed``; raise if there is none."""
        row, bad_image, kept = self.guard.failure()
        details = diagnose(self.recipe, self.registry, row, bad_image)
        stage = self.stage
        where = f" of stage {stage.index} ({stage.size} px)" if stage.count > 1 else ""
        details["message"] = f"the loss became {row[0]} at step {kept + 1}{where}: {details.pop('why')}"
        guard, inputs, last = self.guard, self.inputs, {"stage": stage.index, "step": kept}
        if not kept:
            if self.previous is None:  # even the starting image's loss is not finite: nothing to deliver
                raise RunError(details["message"], hint=details["hint"])
            guard, inputs = self.previous
            last = {"stage": stage.index - 1, "step": self.stages[stage.index - 2].steps}
        details["last_finite"] = last  # the step whose loss was the last finite one, computed from the picture kept
        details["kept"] = "the last image with a finite loss"
        self.failed = guard.good, inputs, Stop(FAILED, stage.index, kept + 1, details)

    def overshot(self, pinned: float) -> None:
        """Roll back to the last picture read with few values pinned and stop as ``failed``; raise if there is
        none but the starting image."""
        stage, sound = self.stage, self.sound
        where = f" of stage {stage.index} ({stage.size} px)" if stage.count > 1 else ""
        message = (f"{pinned:.0%} of the image's values are pinned at 0 or 1 at step {self.step}{where}: "
                   f"the steps overshoot")
        hint = lower_lr(self.recipe)
        if not sound.done:
            raise RunError(f"{message} before any picture with few values pinned was kept: nothing was written",
                           hint=hint)
        details = {"cause": "optimizer.lr", "message": message, "hint": hint,
                   "last_finite": {"stage": sound.stage, "step": sound.step},
                   "kept": "the last image with few values pinned"}
        self.failed = sound.picture.to(self.device), sound.inputs, Stop(FAILED, stage.index, self.step, details)

    def prepare(self, stage: Stage) -> tuple[StageInputs, Targets]:
        """The inputs and targets at ``stage``'s size, with every loss prepared for them."""
        content, styles = self.originals
        edge = style_edge(stage.size, self.recipe.style_scale)
        content = to_tensor(resize_long_edge(content, stage.size)).to(self.device)
        styles = [to_tensor(resize_long_edge(style, edge)).to(self.device) for style in styles]
        color = self.recipe.color
        run_content, run_styles = color_inputs(color.mode, content, styles, method=color.method)
        blend = [ref.weight for ref in self.recipe.styles]
        for loss in self.losses:
            if isinstance(loss, OctaveLoss):
                loss.set_factors(octave_factors(stage.size, self.recipe.octave_size))
        content_layers, style_layers = target_layers(self.losses)
        if self.tiler is None:
            targets = compute_targets(self.backbone, content_layers, run_content, run_styles, blend,
                                      style_layers=style_layers)
            own = [targets] * len(self.losses)
        else:
            targets, own = tiled_targets(self.backbone, self.losses, self.tiler, run_content, run_styles, blend,
                                         content_layers, style_layers)
        factors = self.layer_factors(stage)
        for loss, theirs in zip(self.losses, own):
            loss.prepare(replace(theirs, layer_factors=factors))
        self.grid = self.tiler.grid(stage.shape) if self.tiler is not None else None
        return StageInputs(content, styles, run_content, run_styles), replace(targets, layer_factors=factors)

    def layer_factors(self, stage: Stage) -> dict[str, float]:
        """How much each layer counts at ``stage``: on an earlier stage of a multi-scale run, a layer that sees
        most of the small picture is faded (``layer_fade``); the last stage optimises the recipe as written."""
        if self.fields is None or stage.index == stage.count:
            return {}
        # a layer read at an octave sees its field in the shrunk picture: that many times more of this one
        fields = {name: self.fields[layer] * factor for name in self.layers
                  for layer, factor in [split_octave(name)] if layer in self.fields}
        return fade_factors(fields, stage.shape, self.recipe.layer_fade)

    @property
    def layers(self) -> list[str]:
        """Every layer the losses read at the current stage (with octaves, under their names at each factor)."""
        return list(dict.fromkeys(layer for loss in self.losses for layer in loss.layers))

    def start_image(self, stage: Stage, inputs: StageInputs) -> torch.Tensor:
        """The first stage's image from ``init``; a later stage's from the previous stage's result."""
        if self.image is None:
            return initial_image(self.recipe.init, inputs.run_content, inputs.run_styles[0])
        return resize_image(self.source(), stage.shape)

    def build_optimizer(self, image: torch.Tensor, shape: tuple[int, int]) -> torch.optim.Optimizer:
        """The recipe's optimizer on ``image``, with the previous stage's state when the optimizer can carry it."""
        previous = self.optimizer.state.get(self.image) if self.optimizer is not None else None
        return build_optimizer(self.registry, self.recipe, image, shape, previous)

    def scheduler(self, stage: Stage, optimizer: torch.optim.Optimizer) -> Any:
        """The recipe's learning-rate schedule over this stage's steps, or None for a constant rate."""
        schedule = self.recipe.optimizer.schedule
        if schedule is None:
            return None
        factory = self.registry.get("scheduler", schedule.name).factory
        return factory(optimizer, total_steps=stage.steps, **schedule.options)

    def source(self) -> torch.Tensor:
        """The stage's result so far: the average when ``average`` is on, else the image."""
        if self.average is not None and self.average.count:
            return self.average.value()
        return self.image.detach()

    def picture(self, source: torch.Tensor | None = None, inputs: StageInputs | None = None) -> torch.Tensor:
        """The image as delivered: the stage's result (or ``source``) with colour control applied, in [0, 1]."""
        color = self.recipe.color
        source = self.source() if source is None else source
        content = (inputs or self.inputs).content
        with torch.no_grad():
            return color_output(color.mode, source, content, space=color.space).clamp(0, 1)
