"""Multi-scale plans: which long edges a run renders at, and for how many steps each.

Torch-free, so a recipe can be validated and its stages listed without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping

__all__ = ["ScaleSpec", "Scales", "GROWTH", "MIN_GROWTH", "LAYER_FADE", "auto_sizes", "plan", "shape_at", "fade_factors",
           "octave_factors"]

# each automatic stage is √2 longer than the one before: twice the pixels
GROWTH = math.sqrt(2)
# a stage barely smaller than the next (512 before 520) costs a stage and adds nothing: drop it
MIN_GROWTH = 2 ** 0.25
# a style layer counts fully while one of its features sees at most a quarter of a stage's short side,
# and not at all once it sees three quarters: seeing the whole frame, it repaints the subject
LAYER_FADE = (0.25, 0.75)


@dataclass(frozen=True)
class ScaleSpec:
    """One stage of a run: the long edge in pixels and the number of optimizer steps taken at it."""

    size: int
    steps: int


# the recipe's ``scales``: 1 (one stage), "auto", or the stages themselves
Scales = Literal[1, "auto"] | tuple[ScaleSpec, ...]


def auto_sizes(size: int, min_size: int) -> list[int]:
    """Long edges from ``min_size`` up by ×√2, ending exactly at ``size``: 512 from 128 is 128, 181, 256, 362, 512."""
    sizes: list[int] = []
    exponent = 0
    while (edge := round(min_size * GROWTH ** exponent)) * MIN_GROWTH <= size:
        sizes.append(edge)
        exponent += 1
    return [*sizes, size]


def plan(scales: Scales, *, size: int, steps: int, min_size: int) -> tuple[ScaleSpec, ...]:
    """The stages of a run: one at ``size``, the automatic ladder, or as given.

    On the automatic ladder the first stage, which lays out the whole picture from the starting image,
    runs twice as many steps as the later ones, which only add detail.
    """
    if scales == 1:
        return (ScaleSpec(size, steps),)
    if scales == "auto":
        sizes = auto_sizes(size, min_size)
        return tuple(ScaleSpec(edge, 2 * steps if index == 0 and len(sizes) > 1 else steps) for index, edge in enumerate(sizes))
    return tuple(scales)


def shape_at(width: int, height: int, long_edge: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``long_edge``, keeping the aspect ratio."""
    scale = long_edge / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fade_factors(fields: Mapping[str, float], shape: tuple[int, int],
                 fade: tuple[float, float]) -> dict[str, float]:
    """How much each layer counts at a picture of ``shape`` (height, width), given its receptive ``fields``.

    A layer whose field spans at most ``fade[0]`` of the short side counts fully (1), one spanning
    ``fade[1]`` or more not at all (0), linearly between.
    """
    full, none = fade
    side = min(shape)
    return {layer: min(1.0, max(0.0, (none - field / side) / (none - full))) for layer, field in fields.items()}


def octave_factors(size: int, octave_size: int | None) -> tuple[tuple[float, float], ...]:
    """The (factor, weight) pairs at which a stage of long edge ``size`` compares the picture (``octave_size``).

    The picture as it is (factor 1), its halvings while they stay clearly above ``octave_size``, and the copy
    at ``octave_size`` itself: 512 px at 256 is (1, 2); 1024 px is (1, 2, 4); 768 px is (1, 2, 3). A stage not
    clearly larger than ``octave_size`` (by ``MIN_GROWTH``) compares only itself. The weights are equal and sum
    to 1, so each loss pulls as hard in all as the recipe's weight says.
    """
    factors = [1.0]
    if octave_size:
        halving = 2.0
        while size / halving > octave_size * MIN_GROWTH:
            factors.append(halving)
            halving *= 2
        if size / octave_size >= MIN_GROWTH:
            factors.append(size / octave_size)
    return tuple((factor, 1 / len(factors)) for factor in factors)
