"""The optimisation: targets once under no_grad, then one leaf image stepped with a closure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from ..contracts.plugins import READS, Targets
from .tiling import Grid, tiled_step

__all__ = ["Evaluated", "target_layers", "compute_targets", "initial_image", "optimise"]


@dataclass(frozen=True, eq=False)
class Evaluated:
    """What one optimizer step gave: its number, and the total then each term's value, still on the device."""

    step: int
    values: torch.Tensor
    projected: bool = False  # whether the stage projects the image into [0, 1] after each step (see optimise)

    @property
    def loss(self) -> float:
        """The total loss (a host sync)."""
        return float(self.values[0])


def target_layers(losses: Sequence[Any]) -> tuple[list[str], list[str]]:
    """The layers where the content image's and the style images' features are needed: each loss's own
    layers, for the images it ``reads`` (so the content's relu1_1 is never computed for a style loss)."""
    content: dict[str, None] = {}
    styles: dict[str, None] = {}
    for loss in losses:
        reads = getattr(loss, "reads", READS)
        for kind, needed in (("content", content), ("styles", styles)):
            if kind in reads:
                needed.update(dict.fromkeys(loss.layers))
    return list(content), list(styles)


@torch.no_grad()
def compute_targets(backbone, layers: list[str], content: torch.Tensor, styles: list[torch.Tensor],
                    blend: list[float], *, style_layers: list[str] | None = None) -> Targets:
    """Content features at ``layers`` and style features at ``style_layers`` (default: the same), computed once
    and detached; blend weights are made to sum to 1."""
    total, style_layers = sum(blend), layers if style_layers is None else style_layers
    styles_by_weight = [(_features(backbone, style, style_layers), weight / total)
                        for style, weight in zip(styles, blend)]
    return Targets(_features(backbone, content, layers), styles_by_weight)


def _features(backbone, image: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Detached features of ``image`` at ``layers`` (none when no loss reads the backbone)."""
    features = backbone(image, layers) if layers else {}
    return {name: value.detach() for name, value in features.items()}


def initial_image(init: str, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The starting image: a copy of the content, uniform noise, or the style stretched to fit."""
    if init == "noise":
        image = torch.rand(content.shape, device=content.device)
    elif init == "style":
        image = torch.nn.functional.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True)
    else:
        image = content.clone()
    # contiguous: L-BFGS flattens the gradient with view(), which fails on a channels-last image
    return image.clamp(0, 1).contiguous().requires_grad_(True)


def optimise(image: torch.Tensor, backbone, losses: list, weights: list[float], labels: list[str],
             optimizer: torch.optim.Optimizer, steps: int, layers: list[str], *,
             scheduler: Any = None, first: int = 1, project: bool | None = None,
             grid: Grid | None = None) -> Iterator[Evaluated]:
    """Step ``optimizer`` on ``image`` from step ``first`` to ``steps``, yielding what each step evaluated.

    Nothing here waits for the device: the losses stay tensors until a subscriber reads them.

    The losses always see ``image`` clamped to [0, 1], the picture that will be saved, so the function
    optimised is the same at every evaluation. An optimizer whose first step evaluated it once (Adam,
    SGD) also has the image projected into the box after each step: projected gradient descent. One that
    evaluated it several times (L-BFGS) is left alone, since moving the point after its line search would
    contradict the curvature history it builds; pixels past the box then simply stop pulling. The choice
    is made once, at the first step: a converged L-BFGS step evaluates once too, and must not be projected.
    A resumed stage passes the choice its first step made as ``project``.

    With a ``grid``, each evaluation computes the same gradient tile by tile (``stylefw.tiling``).
    """
    for number in range(first, steps + 1):
        values: list[torch.Tensor] = []
        totals: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            pixels = image.clamp(0, 1)
            if grid is None:
                features = backbone(pixels, layers) if layers else {}
                values[:] = [loss(features, pixels) for loss in losses]
                total = sum(weight * value for weight, value in zip(weights, values))
                total.backward()
            else:  # backpropagated already, tile by tile
                values[:] = tiled_step(pixels, backbone, losses, weights, grid)
                total = sum(weight * value for weight, value in zip(weights, values))
            totals.append(total)
            return total

        optimizer.step(closure)
        if scheduler is not None:  # anything with step(), such as torch's LRScheduler
            scheduler.step()
        if project is None:
            project = len(totals) == 1
        if project:
            with torch.no_grad():
                image.clamp_(0, 1)
        # the total of the last evaluation, like the terms: L-BFGS evaluates many times and returns the first
        values = torch.stack([torch.as_tensor(value).detach().reshape(()).float() for value in (totals[-1], *values)])
        yield Evaluated(number, values, project)
