"""The Gatys et al. loss terms: content (feature MSE), gram (style) and tv (total variation)."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from stylefw import hookimpl

__all__ = ["gram", "ContentLoss", "GramLoss", "TVLoss"]


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of N×C×H×W features, divided by C·H·W so they do not grow with image size."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _layer_list(layers: Sequence[str]) -> list[str]:
    if isinstance(layers, str) or not layers:
        raise ValueError("layers must be a non-empty list of layer names")
    return list(layers)


class ContentLoss:
    """Mean squared error between the image's features and the content image's, summed over layers."""

    def __init__(self, *, layers: Sequence[str]) -> None:
        self.layers = _layer_list(layers)
        self.targets: dict[str, torch.Tensor] = {}

    def prepare(self, targets) -> None:
        self.targets = {layer: targets.content[layer] for layer in self.layers}

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(F.mse_loss(features[layer], self.targets[layer]) for layer in self.layers)


class GramLoss:
    """Mean squared error between Gram matrices and the style images' blended Gram matrices.

    ``layers`` is a list of layer names, or a mapping of layer name to that layer's weight.
    """

    def __init__(self, *, layers: Sequence[str] | Mapping[str, float]) -> None:
        if isinstance(layers, Mapping):
            if not layers:
                raise ValueError("layers must name at least one layer")
            self.layer_weights = {layer: _weight(layer, value) for layer, value in layers.items()}
        else:
            self.layer_weights = {layer: 1.0 for layer in _layer_list(layers)}
        self.layers = list(self.layer_weights)
        self.targets: dict[str, torch.Tensor] = {}

    def prepare(self, targets) -> None:
        self.targets = {
            layer: sum(blend * gram(features[layer]) for features, blend in targets.styles) for layer in self.layers
        }

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(
            weight * F.mse_loss(gram(features[layer]), self.targets[layer])
            for layer, weight in self.layer_weights.items()
        )


def _weight(layer: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"the weight of layer {layer} must be a number >= 0, not {value!r}")
    return float(value)


class TVLoss:
    """Total variation: the mean absolute difference between neighbouring pixels, to suppress noise."""

    layers: list[str] = []

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
    from stylefw.plugins.w2 import W2Loss  # here, not at the top: w2 imports this module's helpers

    register("w2", W2Loss)
