"""Style at octaves: the recipe's ``octave_size``, which keeps a picture's look the same at any output size.

VGG's receptive fields are fixed in pixels. At twice the size, the style layers see marks half as large
relative to the picture, and the painting's large strokes no longer fit in them: one pass at 512 px paints
finer and weaker than at 256 px, and its content term, which sees smaller parts of the picture too, holds
more of the photo. With ``octave_size``, every loss that reads the backbone also compares copies of the
picture shrunk by the stage's factors (``contracts.scales.octave_factors``), each against the content and
style images shrunk the same way. The coarsest copy is at ``octave_size``, where the recipe's balance is set,
so the strokes and the layout keep their size relative to the picture; the full-size copy adds the detail a
larger picture has room for. A loss that reads no layer (``tv``) sees the picture as it is.

Two pieces do it, neither known to a plugin: ``OctaveBackbone`` answers a layer named ``relu3_1@2`` with
relu3_1 of the image shrunk by 2, and ``OctaveLoss`` holds a copy of one loss per factor, each reading its
own layers at its factor.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..contracts.plugins import READS, Targets

__all__ = ["octave_layer", "split_octave", "shrink", "OctaveBackbone", "OctaveLoss"]


def octave_layer(layer: str, factor: float) -> str:
    """``relu3_1@2``: ``layer`` of the picture shrunk by ``factor`` (the layer itself at 1)."""
    return layer if factor == 1 else f"{layer}@{factor:g}"


def split_octave(name: str) -> tuple[str, float]:
    """The layer and the factor ``octave_layer`` put into ``name``."""
    layer, at, factor = name.rpartition("@")
    return (layer, float(factor)) if at else (name, 1.0)


def shrink(image: torch.Tensor, factor: float) -> torch.Tensor:
    """``image`` scaled down by ``factor`` (antialiased bilinear): differentiable, so the gradient reaches every pixel."""
    if factor == 1:
        return image
    height, width = image.shape[-2:]
    shape = (max(1, round(height / factor)), max(1, round(width / factor)))
    return F.interpolate(image, size=shape, mode="bilinear", antialias=True, align_corners=False)


class OctaveBackbone:
    """``backbone``, also answering layers named with a factor (``relu3_1@2``) from the image shrunk by it: one
    pass of the backbone per factor asked for. Everything else is the backbone's own."""

    def __init__(self, backbone: Any) -> None:
        self.backbone = backbone

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backbone, name)

    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        by_factor: dict[float, list[str]] = {}
        for name in layers:
            layer, factor = split_octave(name)
            by_factor.setdefault(factor, []).append(layer)
        features: dict[str, torch.Tensor] = {}
        for factor, names in by_factor.items():
            found = self.backbone(shrink(image, factor), names)
            features.update({octave_layer(layer, factor): value for layer, value in found.items()})
        return features


class OctaveLoss:
    """One loss at several factors: a copy of it per factor (made by ``make`` when first needed), each
    given its layers' features and targets at that factor under their own names, and their values summed
    with the factors' weights. ``set_factors`` chooses them for a stage, before ``prepare``."""

    def __init__(self, loss: Any, make: Callable[[], Any]) -> None:
        self.copies = {1.0: loss}
        self.make = make
        self.factors: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
        self.reads = getattr(loss, "reads", READS)

    def set_factors(self, factors: Sequence[tuple[float, float]]) -> None:
        """Compare the picture at each (factor, weight) of ``factors`` from the next ``prepare`` on."""
        for factor, _ in factors:
            if factor not in self.copies:
                self.copies[factor] = self.make()
        self.factors = tuple(factors)

    @property
    def layers(self) -> list[str]:
        return [octave_layer(layer, factor) for factor, _ in self.factors for layer in self.copies[factor].layers]

    def prepare(self, targets: Targets) -> None:
        for factor, _ in self.factors:
            loss = self.copies[factor]
            loss.prepare(replace(targets, content=_given(targets.content, loss, factor),
                                 styles=[(_given(features, loss, factor), blend) for features, blend in targets.styles],
                                 layer_factors=_given(targets.layer_factors, loss, factor)))

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(weight * self.copies[factor](_at(features, self.copies[factor], factor), shrink(image, factor))
                   for factor, weight in self.factors)


def _names(loss: Any, factor: float) -> list[tuple[str, str]]:
    """Each of ``loss``'s layers with its name at ``factor``."""
    return [(layer, octave_layer(layer, factor)) for layer in loss.layers]


def _at(features: Mapping[str, torch.Tensor], loss: Any, factor: float) -> dict[str, torch.Tensor]:
    """``loss``'s own layers, taken from ``features`` at ``factor``."""
    return {layer: features[name] for layer, name in _names(loss, factor)}


def _given(by_name: Mapping[str, Any], loss: Any, factor: float) -> dict[str, Any]:
    """What ``by_name`` has of ``loss``'s layers at ``factor``, under the layers' own names (a content loss is
    given no style features, and a layer not faded no factor)."""
    return {layer: by_name[name] for layer, name in _names(loss, factor) if name in by_name}
