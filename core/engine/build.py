"""Building a recipe's plugins: its backbone (frozen, cut after its deepest layer, run as ``memory``, ``compile`` and
``precision`` say) and its losses, each guarded so that a failure names its plugin."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..contracts.plugins import Backbone
from ..contracts.recipe import Recipe
from ..errors import InternalError, PluginBugError, Problem, RecipeError, UserError, warn
from ..hooks.faults import GuardedLoss, call_plugin
from ..hooks.registry import Registry, default_registry
from ..recipe.layers import deepest
from .precision import compiled, with_precision
from .preflight import BUILT_HINT

__all__ = ["build_backbone", "create_backbone", "receptive_fields", "build_losses", "build_loss", "build_optimizer"]


def build_backbone(recipe: Recipe, registry: Registry, device: torch.device, *, cut: bool = True) -> torch.nn.Module:
    """The recipe's backbone, frozen, in eval mode, with ``cut`` cut after the deepest layer any loss reads, and
    run as the recipe's ``memory``, ``compile`` and ``precision`` say."""
    entry = registry.get("backbone", recipe.backbone.name)
    try:
        backbone = call_plugin(registry.manager, entry, entry.factory, **recipe.backbone.options)
    except (PluginBugError, InternalError) as exc:  # a backbone that refuses its options with TypeError or ValueError says why
        if not isinstance(exc.__cause__, (TypeError, ValueError)):
            raise
        raise RecipeError([Problem("backbone", f"backbone '{entry.name}' rejects these options: {exc.__cause__}")],
                          source=recipe.source, hint=BUILT_HINT) from exc.__cause__
    last = deepest(entry.factory, recipe.layers)
    if cut and last is not None and hasattr(backbone, "truncate"):
        backbone.truncate(last)
    if recipe.memory == "checkpoint":
        if not hasattr(backbone, "checkpointing"):  # validation checks backbone classes; a function's are checked here
            raise RecipeError([Problem("memory", f"backbone '{entry.name}' cannot recompute its activations (it has "
                                                 "no 'checkpointing' switch); use memory: keep")], source=recipe.source)
        backbone.checkpointing = True
    backbone = backbone.requires_grad_(False).eval().to(device)
    return with_precision(compiled(backbone) if recipe.compile else backbone, recipe.precision)


def receptive_fields(backbone: Backbone, layers: list[str], name: str) -> dict[str, float] | None:
    """How many input pixels across one feature of each layer sees; None, with a warning, if the backbone cannot say."""
    field = getattr(backbone, "receptive_field", None)
    if field is None:
        warn(f"backbone {name} does not say how much of the picture its layers see (receptive_field), so layer_fade "
             "cannot fade the deep style layers of the small stages; set layer_fade: off to silence this")
        return None
    return {layer: field(layer) for layer in layers}


def build_losses(recipe: Recipe, registry: Registry) -> list[Any]:
    """One loss object per recipe entry, built with the entry's options."""
    return [build_loss(recipe, registry, index) for index in range(len(recipe.losses))]


def build_loss(recipe: Recipe, registry: Registry, index: int) -> Any:
    """A new loss object for the recipe's entry ``index``, built with its options."""
    spec = recipe.losses[index]
    entry = registry.get("loss", spec.name)
    return GuardedLoss(call_plugin(registry.manager, entry, entry.factory, **spec.options), entry, registry.manager)


def build_optimizer(registry: Registry, recipe: Recipe, image: torch.Tensor, shape: tuple[int, int],
                    previous: Mapping[str, Any] | None) -> torch.optim.Optimizer:
    """``recipe``'s optimizer on ``image``, carrying ``previous``, the last stage's state for its image, when the
    optimizer declares how (``resize_state``)."""
    spec = recipe.optimizer
    entry = registry.get("optimizer", spec.name)
    optimizer = entry.factory([image], **spec.options)
    resize_state = entry.declarations.get("resize_state")
    if resize_state is not None and previous:
        optimizer.state[image] = resize_state(previous, shape)
    return optimizer


def create_backbone(name: str, *, registry: Registry | None = None, **kwargs: Any) -> torch.nn.Module:
    """Build the backbone registered as ``name`` (for example ``create_backbone("mynet", weights="random")``),
    frozen and in eval mode."""
    registry = registry or default_registry()
    try:
        entry = registry.get("backbone", name)
    except KeyError as exc:
        raise UserError(exc.args[0]) from None
    return entry.factory(**kwargs).requires_grad_(False).eval()
