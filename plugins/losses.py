"""The Gatys et al. loss terms: content (feature MSE), gram (style) and tv (total variation).

``content`` and ``gram`` take ``normalize``:

- ``relative`` (the default): each layer's squared error is divided by its target's squared magnitude,
  ``||x - t||² / ||t||²``, and the layer weights by their sum. A layer's activation scale then cancels, so
  at weight 1 every layer, and the content term against the style term, pulls on the image with comparable
  force; the loss weights of a recipe are real ratios.
- ``classic``: the mean squared error of Gatys et al. (features, or Gram matrices divided by C·H·W), with
  layer weights summed as given. Layers then differ in force by orders of magnitude.

``content`` also takes ``instance_norm``: compare the features after normalising each channel to zero mean
and unit spread over the picture (instance normalisation), on both sides. A channel's mean and spread are
what a painting's texture changes, so the content then holds the photo's layout and leaves those to the
style: with ``gram`` at the same style score it kept about 0.04 more of the photo
(docs/benchmarks/history/vgg19.md).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from stylefw import hookimpl

from .sliced import SlicedLoss
from .w2 import W2Loss
# the layer weighting the style losses share; imported here too, where plugins found them (faded_weights)
from .weighting import TINY, Layers, Normalize, faded_weights, layer_weights

__all__ = ["gram", "gram_sum", "instance_normalised", "Normalize", "Layers", "ContentLoss", "GramLoss", "TVLoss", "layer_weights", "faded_weights"]
# added to a channel's variance before instance normalisation divides by its square root: a channel a ReLU
# zeroes everywhere stays 0 instead of dividing by 0
_SPREAD = 1e-5


def instance_normalised(features: torch.Tensor) -> torch.Tensor:
    """N×C×H×W features with each channel moved to zero mean and unit spread over its H×W positions."""
    mean = features.mean(dim=(2, 3), keepdim=True)
    variance = features.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (features - mean) / (variance + _SPREAD).sqrt()


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of N×C×H×W features, divided by C·H·W so they do not grow with image size."""
    n, c, h, w = features.shape
    return _Gram.apply(features, 1.0 / (c * h * w))


def gram_sum(features: torch.Tensor) -> torch.Tensor:
    """F·Fᵀ of N×C×H×W features, not divided: what sums over the tiles of a picture to its whole F·Fᵀ."""
    return _Gram.apply(features, 1.0)


class _Gram(torch.autograd.Function):
    """F·Fᵀ with a backward of one matmul, (dG + dGᵀ)·F, where autograd's takes two: 0.53× the time of its
    forward and backward over VGG-19's five style layers at 512 px on the CPU (benchmarks/bench_gram.py)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, scale: float) -> torch.Tensor:
        n, c, h, w = features.shape
        flat = features.reshape(n, c, h * w)
        ctx.save_for_backward(flat)
        ctx.shape, ctx.scale = features.shape, scale
        return flat @ flat.transpose(1, 2) * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,) = ctx.saved_tensors
        return ((grad + grad.transpose(1, 2)) @ flat * ctx.scale).reshape(ctx.shape), None


class _LayerDistance:
    """A weighted sum over layers of a distance to per-layer targets, classic MSE or relative error."""

    def __init__(self, layers: Sequence[str] | Mapping[str, float], normalize: str) -> None:
        # as the recipe gives them; ``layer_weights`` are these, faded for the current stage
        self.given_weights = layer_weights(layers, normalize)
        self.layer_weights = dict(self.given_weights)
        self.layers = list(self.layer_weights)
        self.normalize = normalize
        self.targets: dict[str, torch.Tensor] = {}
        self.scales: dict[str, float] = {}

    def _set_targets(self, targets: dict[str, torch.Tensor]) -> None:
        self.targets = targets
        # classic: the mean; relative: the sum divided by the target's squared magnitude (fixed, so once)
        self.scales = {layer: 1 / max(float(target.pow(2).sum()), TINY) if self.normalize == "relative"
                       else 1 / target.numel() for layer, target in targets.items()}

    def _distance(self, layer: str, value: torch.Tensor) -> torch.Tensor:
        return (value - self.targets[layer]).pow(2).sum() * self.scales[layer]


class ContentLoss(_LayerDistance):
    """Squared error between the image's features and the content image's, over layers; with
    ``instance_norm``, between the two after each channel is normalised over the picture.

    It tiles as ``local``: its value is a sum over feature positions, so a tile's share is that sum over
    the tile's own region, against the same region of the target. With ``instance_norm`` it tiles as
    ``global``, since a channel's mean and spread are the whole picture's: the loss follows from each
    channel's sums of F, of F² and of F times the normalised target, which add up over tiles.
    """

    reads = ("content",)
    tiling = "local"

    def __init__(self, *, layers: Layers, normalize: Normalize = "relative", instance_norm: bool = False) -> None:
        super().__init__(layers, normalize)
        if not isinstance(instance_norm, bool):
            raise ValueError(f"instance_norm must be true or false, not {instance_norm!r}")
        self.instance_norm = instance_norm
        if instance_norm:
            self.tiling = "global"
        self.target_sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare(self, targets) -> None:
        found = {layer: targets.content[layer] for layer in self.layers}
        if self.instance_norm:
            found = {layer: instance_normalised(target) for layer, target in found.items()}
            # each channel's sum and sum of squares, over the whole target: what from_statistics needs
            self.target_sums = {layer: (target.sum(dim=(2, 3)).double(), target.pow(2).sum(dim=(2, 3)).double())
                                for layer, target in found.items()}
        self._set_targets(found)

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        compare = instance_normalised if self.instance_norm else (lambda value: value)
        return sum(weight * self._distance(layer, compare(features[layer]))
                   for layer, weight in self.layer_weights.items())

    def share(self, features: Mapping[str, torch.Tensor], image: torch.Tensor, tile) -> torch.Tensor:
        """The loss over ``tile``'s region; summed over a picture's tiles, it is the loss of the picture."""
        return sum(weight * (features[layer] - tile.region(layer, self.targets[layer])).pow(2).sum() * self.scales[layer]
                   for layer, weight in self.layer_weights.items())

    def statistics(self, features: Mapping[str, torch.Tensor], image: torch.Tensor, tile) -> dict[str, torch.Tensor]:
        """With ``instance_norm``: each channel's sums over the tile of F (``LAYER:sum``), F² (``LAYER:squares``)
        and F times the normalised target (``LAYER:cross``), and the count of positions, in float64."""
        found = {}
        for layer in self.layers:
            value = features[layer].double()
            target = tile.region(layer, self.targets[layer]).double() if tile is not None else self.targets[layer].double()
            found[f"{layer}:sum"] = value.sum(dim=(2, 3))
            found[f"{layer}:squares"] = value.pow(2).sum(dim=(2, 3))
            found[f"{layer}:cross"] = (value * target).sum(dim=(2, 3))
            found[f"{layer}:count"] = value.new_tensor(value.shape[-2] * value.shape[-1])
        return found

    def from_statistics(self, statistics: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The loss of the picture whose statistics, summed over its tiles, these are.

        Per channel, with the picture's mean m and spread s (the variance plus ``_SPREAD``, rooted) and the
        normalised target t: Σ((F - m)/s - t)² = n·var/s² - 2(ΣFt - m·Σt)/s + Σt².
        """
        total = 0
        for layer, weight in self.layer_weights.items():
            count = statistics[f"{layer}:count"]
            mean = statistics[f"{layer}:sum"] / count
            variance = statistics[f"{layer}:squares"] / count - mean.pow(2)
            spread = (variance + _SPREAD).sqrt()
            target_sum, target_squares = self.target_sums[layer]
            cross = statistics[f"{layer}:cross"] - mean * target_sum
            distance = (count * variance / spread.pow(2) - 2 * cross / spread + target_squares).sum()
            total = total + weight * distance * self.scales[layer]
        return total


class GramLoss(_LayerDistance):
    """Squared error between Gram matrices and the style images' blended Gram matrices.

    ``layers`` is a list of layer names, or a mapping of layer name to that layer's weight.

    It tiles as ``global``: a Gram matrix is the sum of F·Fᵀ over a picture's positions, divided by C·H·W,
    so its statistics are each layer's F·Fᵀ and its count of positions, both of which add up over tiles.
    """

    reads = ("styles",)
    tiling = "global"

    def __init__(self, *, layers: Layers, normalize: Normalize = "relative") -> None:
        super().__init__(layers, normalize)

    def prepare(self, targets) -> None:
        self.layer_weights = faded_weights(self.given_weights, targets.layer_factors)
        # a style image too large for one pass comes as its statistics, summed over its tiles
        summed = [(self.grams(statistics), blend) for statistics, blend in targets.style_statistics or ()]
        computed = [({layer: gram(features[layer]) for layer in self.layers}, blend) for features, blend in targets.styles]
        self._set_targets({layer: sum(blend * grams[layer] for grams, blend in summed + computed)
                           for layer in self.layers})

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(
            weight * self._distance(layer, gram(features[layer])) for layer, weight in self.layer_weights.items()
        )

    def statistics(self, features: Mapping[str, torch.Tensor], image: torch.Tensor, tile) -> dict[str, torch.Tensor]:
        """Each layer's F·Fᵀ (``LAYER``) and its count of positions (``LAYER:count``): sums over a picture's tiles."""
        found = {}
        for layer in self.layers:
            found[layer] = gram_sum(features[layer])
            # in float64: a float32 count is inexact above 2**24 positions (relu1_1 of a 4096×4096 picture)
            found[f"{layer}:count"] = features[layer].new_tensor(features[layer].shape[-2] * features[layer].shape[-1],
                                                            dtype=torch.float64)
        return found

    def from_statistics(self, statistics: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The loss of the picture whose statistics, summed over its tiles, these are."""
        grams = self.grams(statistics)
        return sum(weight * self._distance(layer, grams[layer]) for layer, weight in self.layer_weights.items())

    def grams(self, statistics: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each layer's Gram matrix, divided by C·H·W, from summed ``statistics``."""
        return {layer: statistics[layer] / (statistics[layer].shape[-1] * statistics[f"{layer}:count"])
                for layer in self.layers}


class TVLoss:
    """Total variation: the mean absolute difference between neighbouring pixels, to suppress noise."""

    layers: list[str] = []
    reads = ()
    tiling = "local"  # it reads no layers, so a tiled step gives it the whole picture

    def prepare(self, targets) -> None:
        """Total variation needs no targets."""

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        vertical = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs().mean()
        horizontal = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().mean()
        return vertical + horizontal


@hookimpl
def register_losses(register) -> None:
    """The built-in loss terms."""
    register("content", ContentLoss)
    register("gram", GramLoss)
    register("tv", TVLoss)
    register("w2", W2Loss)
    register("sliced", SlicedLoss)
