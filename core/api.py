"""The Python API: ``run`` a recipe, ``create_backbone`` by name, and the ``Result`` of a run."""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from PIL import Image

from . import __version__
from .engine import (Step, build_backbone, build_losses, compute_targets, initial_image, load_inputs, optimise,
                     select_device)
from .color import color_inputs, color_output
from .image import save_image, to_pil, write_json
from .plugin_manager import plugin_infos
from .preflight import preflight
from .recipe import Recipe, load_recipe, recipe_from_dict
from .registry import Registry, default_registry

__all__ = ["Result", "run", "create_backbone", "resolve_recipe", "save_result"]

RecipeLike = Recipe | str | Path | Mapping[str, Any]


@dataclass(frozen=True)
class Result:
    """What a run produced: the image, the per-step losses, and how it was made."""

    image: Image.Image
    tensor: torch.Tensor
    trace: tuple[Step, ...]
    recipe: Recipe
    device: str
    interrupted: bool
    output: Path | None = None
    score: Mapping[str, Any] | None = None

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
        on_step: Callable[[Step], None] | None = None,
        on_download: Callable[[str, int, int | None], None] | None = None,
        registry: Registry | None = None, save: bool = True) -> Result:
    """Stylise as ``recipe`` says; writes the output (if the recipe names one and ``save``) and returns it.

    Ctrl-C during the optimisation stops it early: the result so far is returned (and saved) with
    ``interrupted=True``.
    """
    registry = registry or default_registry()
    recipe = resolve_recipe(recipe, overrides, registry)
    device = select_device(recipe.device)
    torch.manual_seed(recipe.seed)
    content, styles = load_inputs(recipe, on_download)
    backbone = build_backbone(recipe, registry, device)
    content, styles = content.to(device), [style.to(device) for style in styles]
    color = recipe.color
    run_content, run_styles = color_inputs(color.mode, content, styles, method=color.method)
    losses = build_losses(recipe, registry)
    blend = [ref.weight for ref in recipe.styles]
    targets = compute_targets(backbone, recipe.layers, run_content, run_styles, blend)
    for loss in losses:
        loss.prepare(targets)
    image = initial_image(recipe.init, run_content, run_styles[0])
    optimizer = registry.get("optimizer", recipe.optimizer.name).factory([image], **recipe.optimizer.options)
    steps = optimise(image, backbone, losses, [spec.weight for spec in recipe.losses],
                     [spec.label for spec in recipe.losses], optimizer, recipe.steps, recipe.layers,
                     scheduler=_scheduler(recipe, registry, optimizer))

    def picture() -> torch.Tensor:
        """The image as delivered: colour control applied, clamped to [0, 1]."""
        with torch.no_grad():
            return color_output(color.mode, image.detach(), content, space=color.space).clamp(0, 1)

    trace, interrupted = _drive(steps, on_step, recipe, picture, registry, str(device), save)
    final = picture()
    score = _score(recipe, registry, final, content, styles, blend) if recipe.score else None
    result = Result(to_pil(final), final, tuple(trace), recipe, str(device), interrupted, score=score)
    if save and recipe.output is not None:
        save_result(result, recipe.output, registry=registry)
        result = dataclasses.replace(result, output=recipe.output)
    return result


def _scheduler(recipe: Recipe, registry: Registry, optimizer: torch.optim.Optimizer) -> Any:
    """The recipe's learning-rate schedule on ``optimizer``, or None for a constant rate."""
    schedule = recipe.optimizer.schedule
    if schedule is None:
        return None
    factory = registry.get("scheduler", schedule.name).factory
    return factory(optimizer, total_steps=recipe.steps, **schedule.options)


def _score(recipe: Recipe, registry: Registry, output: torch.Tensor, content: torch.Tensor,
           styles: list[torch.Tensor], blend: list[float]) -> dict[str, Any]:
    """``stylefw score`` of the finished image, with the run's own backbone built whole (not truncated)."""
    from .score import score_metadata

    backbone = build_backbone(recipe, registry, output.device, cut=False)
    return score_metadata(output, content, styles, backbone, style_weights=blend,
                          backbone_spec=recipe.data["backbone"])


def _drive(steps, on_step, recipe: Recipe, picture: Callable[[], torch.Tensor], registry: Registry, device: str,
           save: bool) -> tuple[list[Step], bool]:
    trace: list[Step] = []
    try:
        for step in steps:
            trace.append(step)
            if on_step:
                on_step(step)
            if save and recipe.output and recipe.save_every and step.step % recipe.save_every == 0:
                snapshot = picture()
                partial = Result(to_pil(snapshot), snapshot, tuple(trace), recipe, device, False)
                save_result(partial, _intermediate(recipe.output, step.step), registry=registry, sidecar=False)
    except KeyboardInterrupt:
        return trace, True
    return trace, False


def _intermediate(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}.{step:06d}{output.suffix}")


def save_result(result: Result, path: Path, *, registry: Registry | None = None, sidecar: bool = True) -> Path:
    """Write the image with its metadata embedded and, with ``sidecar``, ``<path>.json`` with the loss trace."""
    metadata = result.metadata(registry)
    save_image(result.image, path, metadata)
    if sidecar:
        trace = [{"step": step.step, "loss": step.loss, "elapsed": step.elapsed, "terms": _terms(step)}
                 for step in result.trace]
        write_json(Path(f"{path}.json"), {**metadata, "trace": trace})
    return path
