"""The ``sliced`` style loss: the sliced Wasserstein distance between feature distributions (Heitz et al. 2021).

Each spatial position's C-vector of a layer is one sample. The samples of the image and of the style are
projected onto fixed random unit directions, and each projection's sorted values (its quantile function)
are compared with the style's by squared error. A Gram matrix matches only the second moments, which many
distributions share; this matches every projection's whole distribution. On the real VGG-19 it gave more
of the painting for the same hold on the photo (docs/benchmarks/history/vgg19.md), at a higher weight
than ``gram``'s for the same balance (100 against 10).

- **Sizes.** The image's n sorted values are compared with the style's quantiles at the levels
  (k + ½)/n, so a style of any size compares.
- **Several styles** form one pooled distribution in which each image weighs its blend weight, whatever
  its size: the mixture's quantiles.
- **Fixed directions.** The directions are drawn once per layer from ``seed``, so the loss is a plain
  function of the image: a resumed run, lanes and L-BFGS's line search see the same loss every step.
- ``normalize: relative`` divides each layer's error by the style's mean squared projection (and the
  layer weights by their sum), so the weights are ratios like ``gram``'s; ``classic`` keeps the raw error.

It does not tile: a quantile function needs every position of the picture at once.
"""

from __future__ import annotations

from typing import Annotated, Mapping, Sequence

import torch

from stylefw.markers import Range

from .weighting import TINY, Layers, Normalize, faded_weights, layer_weights

__all__ = ["SlicedLoss", "projected_quantiles"]


class SlicedLoss:
    """Squared error between the image's and the blended styles' projected feature distributions, per layer.

    ``layers`` is a list of layer names, or a mapping of layer name to that layer's weight. ``directions``
    is how many random projections each layer compares, and ``seed`` draws them.
    """

    reads = ("styles",)
    untileable = "its quantiles need every position of the picture at once"

    def __init__(self, *, layers: Layers, normalize: Normalize = "relative",
                 directions: Annotated[int, Range(1)] = 64, seed: Annotated[int, Range(0)] = 0) -> None:
        _check_whole("directions", directions, 1)
        _check_whole("seed", seed, 0)
        self.given_weights = layer_weights(layers, normalize)  # as the recipe gives them
        self.layer_weights = dict(self.given_weights)  # faded for the current stage
        self.layers = list(self.given_weights)
        self.normalize = normalize
        self.directions = directions
        self.seed = seed
        self.projections: dict[str, torch.Tensor] = {}  # layer -> C×P unit directions
        self.styles: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> pooled sorted values, their levels
        self.quantiles: dict[str, torch.Tensor] = {}  # layer -> P×n target, for the image's n positions
        self.scales: dict[str, float] = {}

    def prepare(self, targets) -> None:
        self.layer_weights = faded_weights(self.given_weights, targets.layer_factors)
        self.quantiles = {}
        for index, layer in enumerate(self.layers):
            samples = [(features[layer], blend) for features, blend in targets.styles]
            first = samples[0][0]
            self.projections[layer] = _directions(first.shape[1], self.directions, self.seed + index, first.device)
            values, levels, second_moment = _pooled(samples, self.projections[layer])
            self.styles[layer] = values, levels
            self.scales[layer] = 1 / max(second_moment, TINY) if self.normalize == "relative" else 1.0

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(weight * self._distance(layer, features[layer]) for layer, weight in self.layer_weights.items())

    def _distance(self, layer: str, features: torch.Tensor) -> torch.Tensor:
        # at least float32 whatever the run's precision: sorting bf16 values would tie most of them
        value = features.to(torch.promote_types(features.dtype, torch.float32))
        projected = torch.einsum("nc...,cp->np...", value, self.projections[layer].to(value.dtype)).flatten(2)
        values = projected.sort(dim=-1).values
        target = self._quantiles(layer, values.shape[-1])
        return (values - target).pow(2).mean() * self.scales[layer]

    def _quantiles(self, layer: str, count: int) -> torch.Tensor:
        """The style's quantiles at the image's ``count`` levels, kept until the image's size changes."""
        target = self.quantiles.get(layer)
        if target is None or target.shape[-1] != count:
            target = projected_quantiles(*self.styles[layer], count)
            self.quantiles[layer] = target
        return target


def projected_quantiles(values: torch.Tensor, levels: torch.Tensor, count: int) -> torch.Tensor:
    """P×``count`` quantiles at the levels (k + ½)/count of distributions given as P×m sorted ``values`` and the
    cumulative weight ``levels`` (P×m, ending at 1) each value reaches."""
    wanted = (torch.arange(count, device=values.device, dtype=levels.dtype) + 0.5) / count
    index = torch.searchsorted(levels, wanted.expand(levels.shape[0], count).contiguous())
    return values.gather(1, index.clamp(max=values.shape[1] - 1))


def _check_whole(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, not {value!r}")


def _directions(channels: int, count: int, seed: int, device: torch.device) -> torch.Tensor:
    """C×P random unit vectors in float32, the same for the same seed on every device."""
    drawn = torch.randn(channels, count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (drawn / drawn.norm(dim=0, keepdim=True)).to(device=device, dtype=torch.float32)


def _pooled(samples: Sequence[tuple[torch.Tensor, float]],
            directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The styles' projections pooled into one P×m sorted sample, each value's cumulative weight, in which each
    style weighs its blend weight however many positions it has, and the pool's mean squared projection."""
    values, weights, second_moment = [], [], 0.0
    for features, blend in samples:
        projected = torch.einsum("nc...,cp->pn...", features.detach().float(), directions).flatten(1)
        values.append(projected)
        weights.append(torch.full((projected.shape[1],), blend / projected.shape[1], dtype=torch.float64,
                                  device=projected.device))
        second_moment += blend * float(projected.pow(2).mean())
    values, weights = torch.cat(values, dim=1), torch.cat(weights)
    values, order = values.sort(dim=1)
    levels = weights[order].cumsum(dim=1)
    return values, levels / levels[:, -1:], second_moment / sum(blend for _, blend in samples)
