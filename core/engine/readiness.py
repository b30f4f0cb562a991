"""What a run of a recipe would refuse before its first step, found without running it, downloading anything or
(where the backbone can say) loading its weights: ``stylefw validate``'s checks beyond the schema and the
plugins' refusals (:mod:`~stylefw.engine.preflight`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..contracts.recipe import Recipe
from ..errors import Problem, RecipeError, StylefwError, StylefwWarning
from ..hooks.registry import Registry
from .build import build_backbone, build_losses
from .inputs import open_inputs, select_device
from .outputs import ensure_writable
from .tiling import refuse_untileable, make_tiler

__all__ = ["Readiness", "readiness"]


@dataclass
class Readiness:
    """What a run would refuse, each a problem at its key, and what cannot be known before it runs."""

    problems: list[Problem] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def attempt(self, key: str, check: Callable[[], Any]) -> Any:
        """``check()``, or None with what it raised recorded as a problem at ``key`` (or the error's own context)."""
        try:
            return check()
        except RecipeError as exc:
            self.problems.extend(exc.problems)
        except StylefwError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            self.problems.append(Problem(exc.context or key, f"{exc.message}{hint}"))
        return None


def readiness(recipe: Recipe, registry: Registry) -> Readiness:
    """The output (its folder, and no input overwritten), the device, the local input images (decoded, and wide
    enough for the layers read), the backbone's options and weights, and the losses' tiling.

    A backbone whose factory has ``verify(layers, **options)`` checks its options itself, reading a weights
    file but downloading nothing; any other is built, on the CPU. Images at URLs are not downloaded, and
    ``tile: auto``'s size depends on the memory free when the run starts: both are left to the run, and said.
    """
    found = Readiness()
    if recipe.output is not None:
        found.attempt("output", lambda: ensure_writable(recipe))
    found.attempt("device", lambda: select_device(recipe.device))
    if any(ref.is_url for ref in (recipe.content, *recipe.styles)):
        found.unknown.append("its URLs are not downloaded, so their images are checked when it runs")
    else:
        found.attempt("content", lambda: open_inputs(recipe, registry=registry))
    factory = registry.get("backbone", recipe.backbone.name).factory
    backbone = _backbone(recipe, registry, factory, found)
    if recipe.tile is not None:
        losses = build_losses(recipe, registry)
        labels = [spec.label for spec in recipe.losses]
        if backbone is not None:  # what tiling refuses, and the margin a tile needs, from the built network
            found.attempt("tile", lambda: make_tiler(recipe.tile, backbone, recipe.backbone.name, losses, labels,
                                                     recipe.source, lambda margin: 64))
        else:  # what tiling refuses, from what the factory says
            found.attempt("tile", lambda: refuse_untileable(losses, labels, factory, recipe.backbone.name,
                                                         recipe.source))
        if recipe.tile.size == "auto":
            found.unknown.append("tile: auto is sized to the free memory when it runs")
    return found


def _backbone(recipe: Recipe, registry: Registry, factory: Any, found: Readiness) -> Any:
    """The backbone built on the CPU, or None when its factory verified its options itself (or it failed)."""
    verify = getattr(factory, "verify", None)
    if verify is not None:
        note = found.attempt("backbone", lambda: verify(recipe.layers, **recipe.backbone.options))
        if note:
            found.unknown.append(note)
        return None
    with warnings.catch_warnings():  # random weights and the like: the run itself says so
        warnings.simplefilter("ignore", StylefwWarning)
        return found.attempt("backbone", lambda: build_backbone(recipe, registry, torch.device("cpu")))
