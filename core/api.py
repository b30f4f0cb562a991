"""The Python API: ``run`` a recipe, ``create_backbone`` by name, and the ``Result`` of a run."""

from __future__ import annotations

import dataclasses
import errno
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from PIL import Image

from . import __version__
from .checkpoint import (changed_inputs, changed_keys, checkpoint_path, input_digests, read_checkpoint, recipe_digest,
                         step_from_dict, step_to_dict, write_checkpoint)
from .contracts import FAILED, INTERRUPTED, OnEvent, RunControl, RunEnd, Step, StepEvent, Stop
from .errors import StylefwWarning, UserError
from .engine import build_backbone, build_losses, open_inputs, select_device
from .precision import matmul_precision
from .events import PluginHooks, SignalStop, Snapshots, StepCallback, Trace, broadcast
from .image import image_writer, json_writer, to_pil, write_all
from .plugin_manager import plugin_infos
from .preflight import preflight
from .recipe import Recipe, load_recipe, recipe_from_dict
from .registry import Registry, default_registry
from .outputs import HINT, OutputError, check_output
from .stages import Outcome, StagedRun, warn_upscaled_styles

__all__ = ["Result", "run", "resume", "run_together", "create_backbone", "resolve_recipe", "save_result",
           "snapshot_saver"]

RecipeLike = Recipe | str | Path | Mapping[str, Any]


@dataclass(frozen=True)
class Result:
    """What a run produced: the image, the per-step losses, and how it was made.

    ``stopped`` says why and where a run ended before its last step (Ctrl-C, or a subscriber's
    ``stop(reason)``); ``interrupted`` is true when that was Ctrl-C.
    """

    image: Image.Image
    tensor: torch.Tensor
    trace: tuple[Step, ...]
    recipe: Recipe
    device: str
    interrupted: bool
    output: Path | None = None
    score: Mapping[str, Any] | None = None
    stopped: Stop | None = None

    @property
    def losses(self) -> list[dict[str, float]]:
        """The loss trace as plain numbers: one ``{"total": ..., label: value, ...}`` per step."""
        return [{"total": step.loss, **{term.label: term.value for term in step.terms}} for step in self.trace]

    def metadata(self, registry: Registry | None = None) -> dict[str, Any]:
        """What is embedded in the output: recipe, versions, seed, device and final losses."""
        manager = (registry or default_registry()).manager
        plugins = {info.name: f"{info.distribution} {info.version}" for info in plugin_infos(manager)} if manager else {}
        return {
            "stylefw": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "plugins": plugins,
            "recipe": self.recipe.data,
            "seed": self.recipe.seed,
            "device": self.device,
            "steps_done": len(self.trace),
            "interrupted": self.interrupted,
            "stopped": self.stopped.as_dict() if self.stopped else None,
            "final_losses": {"total": self.trace[-1].loss, **_terms(self.trace[-1])} if self.trace else {},
            **({"score": dict(self.score)} if self.score is not None else {}),
        }


def _terms(step: Step) -> dict[str, dict[str, float]]:
    """Each term's raw and weighted value at ``step``, as plain numbers."""
    return {term.label: {"value": term.value, "weighted": term.weighted} for term in step.terms}


def resolve_recipe(recipe: RecipeLike, overrides: Iterable[str] | Mapping[str, Any] = (),
                   registry: Registry | None = None) -> Recipe:
    """A validated Recipe from a path, a built-in name, a dict or a Recipe, with ``overrides`` applied.

    Its losses, optimizer and schedule are then built once (see :mod:`stylefw.preflight`), so options
    that only a plugin can refuse are a RecipeError here, before any image is decoded.
    """
    registry = registry or default_registry()
    if isinstance(recipe, Recipe):
        resolved = recipe.with_overrides(overrides, registry=registry) if overrides else recipe
    elif isinstance(recipe, Mapping):
        resolved = recipe_from_dict(recipe, overrides=overrides, registry=registry)
    else:
        resolved = load_recipe(recipe, overrides, registry=registry)
    preflight(resolved, registry)
    return resolved


def create_backbone(name: str, *, registry: Registry | None = None, **kwargs: Any) -> torch.nn.Module:
    """Build the backbone registered as ``name`` (for example ``create_backbone("vgg19", weights="random")``)."""
    registry = registry or default_registry()
    try:
        entry = registry.get("backbone", name)
    except KeyError as exc:
        from .errors import UserError

        raise UserError(exc.args[0]) from None
    return entry.factory(**kwargs).requires_grad_(False).eval()


def run(recipe: RecipeLike, overrides: Iterable[str] | Mapping[str, Any] = (), *,
        on_event: OnEvent | None = None,
        on_step: Callable[[Step], None] | None = None,
        on_download: Callable[[str, int, int | None], None] | None = None,
        registry: Registry | None = None, save: bool = True, debug: bool = False) -> Result:
    """Stylise as ``recipe`` says; writes the output (if the recipe names one and ``save``) and returns it.

    ``on_event`` is called with every event of the run (RunStart, StageStart, StepEvent, RunEnd; see
    ``stylefw.contracts``), after the installed plugins' hooks; a StepEvent's ``stop(reason)`` ends the run
    after that step. ``on_step`` is called with each step as plain numbers. Ctrl-C, SIGTERM and SIGHUP stop
    the run the same way: the result so far is returned (and saved) with ``interrupted=True``; with
    ``debug`` a second Ctrl-C aborts at once, even while the output is written.

    With an output, a run that stops early (but not one that fails) writes ``<output>.ckpt``, as does every
    ``checkpoint_every`` steps; one that finishes removes it. ``resume`` continues from it.
    """
    registry = registry or default_registry()
    recipe = resolve_recipe(recipe, overrides, registry)
    return _execute(recipe, registry, None, on_event=on_event, on_step=on_step, on_download=on_download, save=save,
                    debug=debug)


def resume(checkpoint: str | Path, overrides: Iterable[str] | Mapping[str, Any] = (), *, force: bool = False,
           on_event: OnEvent | None = None, on_step: Callable[[Step], None] | None = None,
           on_download: Callable[[str, int, int | None], None] | None = None,
           registry: Registry | None = None, debug: bool = False) -> Result:
    """Continue the run whose checkpoint is ``checkpoint`` (``out.png.ckpt``, or its output ``out.png``) to its end.

    The recipe is the one stored in the checkpoint. ``overrides`` that change it, and input files whose bytes
    changed since, are a UserError naming them, unless ``force``; ``checkpoint_every`` and ``save_every`` may
    change freely. The result, its trace and its sidecar are the whole run's; on the CPU with the same
    number of threads the image is the one an uninterrupted run makes, bit for bit.
    """
    registry = registry or default_registry()
    state = read_checkpoint(checkpoint)
    recipe = resolve_recipe(state["recipe"], overrides, registry)
    changed = changed_keys(state["recipe"], recipe.data)
    if changed and not force:
        raise UserError(f"the checkpoint's recipe differs at {', '.join(changed)}", context=str(checkpoint),
                        hint="resume without those --set values, or add --force to continue with them (the image "
                             "will then differ from an uninterrupted run's)")
    return _execute(recipe, registry, state, force=force, on_event=on_event, on_step=on_step,
                    on_download=on_download, save=True, debug=debug)


def _execute(recipe: Recipe, registry: Registry, saved: Mapping[str, Any] | None, *, force: bool = False,
             on_event: OnEvent | None, on_step: Callable[[Step], None] | None,
             on_download: Callable[[str, int, int | None], None] | None, save: bool, debug: bool) -> Result:
    """Run ``recipe``, or continue it from the checkpoint state ``saved``."""
    if save and recipe.output is not None:
        check_output(recipe)  # before any work: a run must not end in an output it cannot write
    device = select_device(recipe.device)
    torch.manual_seed(recipe.seed)  # a resumed run too: random backbone weights are drawn again, the same
    content, styles = open_inputs(recipe, on_download)
    if saved is not None:
        changed = changed_inputs(saved["inputs"], recipe)
        if changed and not force:
            raise UserError(f"the input file{'s' * (len(changed) > 1)} {', '.join(changed)} changed since the "
                            "checkpoint was written", hint="put the original back, or add --force to continue "
                            "with the new one (the image will then differ from an uninterrupted run's)")
    warn_upscaled_styles(recipe, styles)
    backbone = build_backbone(recipe, registry, device)
    trace, control = Trace(), RunControl()
    if saved is not None:
        trace.steps = [step_from_dict(step) for step in saved["trace"]]
    ckpt = checkpoint_path(recipe.output) if save and recipe.output is not None else None
    emit = broadcast([trace, _snapshots(recipe, str(device), registry, save), PluginHooks(registry.manager),
                      StepCallback(on_step) if on_step else None, on_event])
    signals = SignalStop(control, debug=debug)
    writer = _checkpoint_writer(recipe, ckpt, trace, signals) if ckpt is not None else None
    staged = StagedRun(recipe, registry, device, backbone, build_losses(recipe, registry), content=content,
                       styles=styles, emit=emit, control=control, every=trace.every, checkpoint=writer, resume=saved)
    with signals, matmul_precision(recipe.precision):
        outcome = staged.run()
        with signals.saving():
            result = _deliver(recipe, registry, str(device), outcome, trace, save)
        if ckpt is not None and outcome.stop is None:
            ckpt.unlink(missing_ok=True)  # finished: nothing is left to resume
    emit(RunEnd(result))
    return result


def run_together(recipes: Sequence[RecipeLike], *, on_events: Sequence[OnEvent | None] | None = None,
                 registry: Registry | None = None, save: bool = True, debug: bool = False) -> list[Result]:
    """Run ``recipes`` as lanes of one batch (``stylefw.lanes``): one forward and backward pass a step for all.

    The recipes may differ only in their images, and their contents must have one shape; a ValueError says
    why when they cannot share a batch. Each result, trace, output and sidecar is its recipe's own, and its
    image is the one ``run`` makes, up to float rounding. ``on_events[i]`` (if given) sees recipe i's events. Ctrl-C
    stops them all; unlike ``run``, no checkpoint is written (``checkpoint_every`` is ignored), so an
    interrupted lane starts again.
    """
    from .lanes import LanedRun, compatible

    registry = registry or default_registry()
    resolved = [resolve_recipe(recipe, (), registry) for recipe in recipes]
    reason = compatible(resolved)
    if reason is not None:
        raise ValueError(f"these recipes cannot run as one batch: {reason}")
    for recipe in resolved:
        if save and recipe.output is not None:
            check_output(recipe)
    first = resolved[0]
    device = select_device(first.device)
    torch.manual_seed(first.seed)  # as a single run does before it builds the backbone: the same random weights
    inputs = [open_inputs(recipe) for recipe in resolved]
    for recipe, (_, styles) in zip(resolved, inputs):
        warn_upscaled_styles(recipe, styles)
    backbone = build_backbone(first, registry, device)
    batch, traces, emits, runs = RunControl(), [], [], []
    events = [*(on_events or ()), *[None] * len(resolved)][:len(resolved)]
    for recipe, (content, styles), on_event in zip(resolved, inputs, events):
        trace = Trace()
        emit = broadcast([trace, _snapshots(recipe, str(device), registry, save), PluginHooks(registry.manager),
                          on_event])
        runs.append(StagedRun(recipe, registry, device, backbone, build_losses(recipe, registry), content=content,
                              styles=styles, emit=emit, control=RunControl(), every=trace.every))
        traces.append(trace)
        emits.append(emit)
    signals = SignalStop(batch, debug=debug)
    with signals, matmul_precision(first.precision):
        outcomes = LanedRun(runs, batch).run()
        with signals.saving():
            results = [_deliver(recipe, registry, str(device), outcome, trace, save)
                       for recipe, outcome, trace in zip(resolved, outcomes, traces)]
    for emit, result in zip(emits, results):
        emit(RunEnd(result))
    return results


def _snapshots(recipe: Recipe, device: str, registry: Registry, save: bool) -> Snapshots | None:
    """The ``save_every`` subscriber, when the run saves and asks for snapshots."""
    if not (save and recipe.output and recipe.save_every):
        return None
    return Snapshots(recipe.save_every, recipe.output, snapshot_saver(recipe, device, registry))


def _deliver(recipe: Recipe, registry: Registry, device: str, outcome: Outcome, trace: Trace, save: bool) -> Result:
    """The run's Result, written to its output (with the sidecar) when it saves."""
    result = _result(recipe, registry, device, outcome, tuple(trace.flush()))
    if save and recipe.output is not None:
        save_result(result, recipe.output, registry=registry)
        result = dataclasses.replace(result, output=recipe.output)
    return result


def _checkpoint_writer(recipe: Recipe, path: Path, trace: Trace, signals: SignalStop) -> Callable[[dict], None]:
    """Writes a run's state to ``path`` with the recipe, the inputs' digests and the trace; warns if it cannot."""
    header = {"recipe": recipe.data, "recipe_sha256": recipe_digest(recipe.data), "inputs": input_digests(recipe)}

    def write(state: dict[str, Any]) -> None:
        with signals.saving():
            try:
                write_checkpoint(path, {**header, **state, "trace": [step_to_dict(step) for step in trace.flush()]})
            except OSError as exc:  # the run goes on: its output matters more than a way to resume it
                warnings.warn(f"cannot write the checkpoint {path}: {exc.strerror or exc}", StylefwWarning,
                              stacklevel=2)

    return write


def _result(recipe: Recipe, registry: Registry, device: str, outcome: Outcome, steps: tuple[Step, ...]) -> Result:
    """The Result of a run that ended as ``outcome``, scored when the recipe asks and the run did not fail."""
    stop = outcome.stop
    score = None
    if recipe.score and (stop is None or stop.reason != FAILED):
        blend = [ref.weight for ref in recipe.styles]
        score = _score(recipe, registry, outcome.picture, outcome.content, outcome.styles, blend)
    return Result(to_pil(outcome.picture), outcome.picture, steps, recipe, device,
                  stop is not None and stop.reason == INTERRUPTED, score=score, stopped=stop)


def snapshot_saver(recipe: Recipe, device: str, registry: Registry | None = None) -> Callable[[StepEvent, Path], None]:
    """Writes a step's picture, with the metadata of a result that ends at that step but no sidecar."""
    registry = registry or default_registry()

    def save(event: StepEvent, path: Path) -> None:
        picture = event.image()
        partial = Result(to_pil(picture), picture, (event.record(),), recipe, device, False)
        save_result(partial, path, registry=registry, sidecar=False)

    return save


def _score(recipe: Recipe, registry: Registry, output: torch.Tensor, content: torch.Tensor,
           styles: list[torch.Tensor], blend: list[float]) -> dict[str, Any]:
    """``stylefw score`` of the finished image, with the run's own backbone built whole (not truncated)."""
    from .score import score_metadata

    # in float32 and eager whatever the run's settings: a score must not depend on how the picture was made
    plain = dataclasses.replace(recipe, precision="fp32", compile=False)
    backbone = build_backbone(plain, registry, output.device, cut=False)
    return score_metadata(output, content, styles, backbone, style_weights=blend,
                          backbone_spec=recipe.data["backbone"])


def save_result(result: Result, path: Path, *, registry: Registry | None = None, sidecar: bool = True) -> Path:
    """Write the image with its metadata embedded and, with ``sidecar``, ``<path>.json`` with the loss trace.

    Both are written to temporary files first and renamed together, so a failure (a full disk) leaves
    the previous output and sidecar as they were.
    """
    metadata = result.metadata(registry)
    writes = {path: image_writer(result.image, path, metadata)}
    if sidecar:
        trace = [{"stage": step.stage, "size": step.size, "step": step.step, "loss": step.loss,
                  "elapsed": step.elapsed, "terms": _terms(step)} for step in result.trace]
        writes[Path(f"{path}.json")] = json_writer({**metadata, "trace": trace})
    try:
        write_all(writes)
    except OSError as exc:
        kept = " (the previous one is unchanged)" if path.exists() else ""
        hint = "free some space on that disk, or " + HINT if exc.errno == errno.ENOSPC else HINT
        raise OutputError(f"cannot write {path}{kept}: {exc.strerror or exc}", hint=hint) from exc
    return path
