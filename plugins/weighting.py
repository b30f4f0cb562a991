"""How a style loss weighs its layers: the recipe's list or mapping of layers as weights, ``relative`` or ``classic``,
and faded for a multi-scale run's small stages. Shared by ``gram`` and ``w2`` (and by plugins' own losses)."""

from __future__ import annotations

from typing import Annotated, Literal, Mapping, Sequence

from stylefw.markers import Range

__all__ = ["Normalize", "Layers", "layer_weights", "faded_weights", "TINY"]

# the smallest target magnitude a relative error divides by: a layer a ReLU zeroes everywhere has none
TINY = 1e-12

Normalize = Literal["relative", "classic"]
# layer names, or layer name -> that layer's weight (under relative, at least one above 0)
Layers = Sequence[str] | Mapping[str, Annotated[float, Range(0)]]


def layer_weights(layers: Sequence[str] | Mapping[str, float], normalize: str = "classic") -> dict[str, float]:
    """Each layer's weight: 1 for a list, the values of a mapping; divided by their sum when ``relative``."""
    if isinstance(layers, Mapping):
        if not layers:
            raise ValueError("layers must name at least one layer")
        weights = {layer: _weight(layer, value) for layer, value in layers.items()}
    elif isinstance(layers, str) or not layers:
        raise ValueError("layers must be a non-empty list of layer names")
    else:
        weights = dict.fromkeys(layers, 1.0)
    if normalize not in ("relative", "classic"):
        raise ValueError(f"normalize must be 'relative' or 'classic', not {normalize!r}")
    total = sum(weights.values())
    if normalize == "relative":
        if total <= 0:
            raise ValueError("at least one layer weight must be above 0")
        return {layer: weight / total for layer, weight in weights.items()}
    return weights


def faded_weights(weights: Mapping[str, float], factors: Mapping[str, float]) -> dict[str, float]:
    """``weights`` times each layer's factor (1 when absent), rescaled to the same total.

    The style's pull moves from the faded layers to the others rather than weakening. When every layer is
    faded out (a picture smaller than even the shallowest layer's view), the weights stay as given.
    """
    faded = {layer: weight * factors.get(layer, 1.0) for layer, weight in weights.items()}
    total, kept = sum(weights.values()), sum(faded.values())
    if kept <= 0:
        return dict(weights)
    return {layer: weight * total / kept for layer, weight in faded.items()}


def _weight(layer: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"the weight of layer {layer} must be a number >= 0, not {value!r}")
    return float(value)
