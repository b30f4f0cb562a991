"""``stylefw estimate``: how much memory and time a run will take, and what fits a budget, predicted from the
recipe's calibration (:mod:`stylefw.engine.calibrate`: two short runs measured on this device)."""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from ..contracts.recipe import Recipe
from ..contracts.scales import shape_at
from ..contracts.run import Stage
from ..engine.build import build_backbone, build_losses
from ..engine.calibrate import (AUTO_SHARE, CALIBRATION_EDGES, PICTURE_BYTES, Calibration, auto_tile_size, calibrate,
                                free_memory)
from ..engine.inputs import open_inputs, select_device
from ..engine.stages import plan_stages
from ..engine.tiling import Tiler, make_tiler
from ..errors import UserError
from ..hooks.registry import Registry, default_registry

__all__ = ["StageEstimate", "Estimate", "estimate", "refuse_over_budget", "parse_bytes", "show_bytes"]

# a tiled step's time, as a multiple of its tiles' steps run whole: the statistics pass, each tile's statistics
# computed twice, and the gradient injected into each tile's backward (fitted as calibrate's constants are)
TILED_TIME = 2.0
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@dataclass(frozen=True)
class StageEstimate:
    index: int
    size: int
    shape: tuple[int, int]
    steps: int
    peak_bytes: int
    seconds_per_step: float
    tiles: int = 1
    tile_pixels: int = 0  # the largest tile's, margin included (the whole picture's when it is one tile)


@dataclass(frozen=True)
class Estimate:
    """A run's predicted peak and time, stage by stage, and the largest long edge that fits ``budget``."""

    device: str
    calibration: Calibration
    stages: tuple[StageEstimate, ...]
    budget: int
    largest_size: int

    @property
    def peak_bytes(self) -> int:
        return max(stage.peak_bytes for stage in self.stages)

    @property
    def seconds(self) -> float:
        return sum(stage.steps * stage.seconds_per_step for stage in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "peak_bytes": self.peak_bytes, "seconds": self.seconds,
                "budget_bytes": self.budget, "largest_size": self.largest_size, "fits": self.peak_bytes <= self.budget,
                "stages": [asdict(stage) for stage in self.stages], "calibration": asdict(self.calibration)}


def estimate(recipe: Recipe, *, budget: int | None = None, recalibrate: bool = False,
             edges: tuple[int, int] | None = None, registry: Registry | None = None) -> Estimate:
    """Predict ``recipe``'s run on the device it would use; ``budget`` defaults to that device's free memory.

    ``edges`` are the calibration runs' long edges (default ``CALIBRATION_EDGES``).
    """
    registry = registry or default_registry()
    device = select_device(recipe.device)
    calibration = calibrate(recipe, str(device), recalibrate=recalibrate, edges=edges or CALIBRATION_EDGES,
                            registry=registry)
    content, _ = open_inputs(recipe, registry=registry)
    planned = plan_stages(recipe, content.size)
    budget = free_memory(device) if budget is None else budget
    tiler = _tiler(recipe, device, planned, budget, registry) if recipe.tile is not None else None
    stages = tuple(_stage(calibration, stage, tiler) for stage in planned)
    pixels = calibration.pixels_within(budget)
    if tiler is not None:  # the tiles' activations stay the same; the whole picture's buffers grow
        pixels = max(budget - calibration.tiled_peak(max(stage.tile_pixels for stage in stages), 0), 0) / PICTURE_BYTES
    width, height = content.size
    # the long edge whose picture, at the content's proportions, has at most that many pixels
    largest = math.floor(math.sqrt(pixels * max(width, height) / min(width, height))) if pixels < math.inf else 16384
    while largest > 0 and math.prod(shape_at(width, height, largest)) > pixels:
        largest -= 1
    return Estimate(str(device), calibration, stages, budget, min(largest, 16384))


def _tiler(recipe: Recipe, device: Any, stages: tuple[Stage, ...], budget: int, registry: Registry) -> Tiler:
    """How the run would cut its stages into tiles, with ``tile: auto`` sized to ``budget``."""
    with warnings.catch_warnings():  # the run itself warns about random weights and the like
        warnings.simplefilter("ignore")
        backbone, losses = build_backbone(recipe, registry, device), build_losses(recipe, registry)
    labels = [spec.label for spec in recipe.losses]
    size = lambda margin: auto_tile_size(recipe, stages, device, margin, budget=int(budget * AUTO_SHARE),
                                         registry=registry)
    return make_tiler(recipe.tile, backbone, recipe.backbone.name, losses, labels, recipe.source, size)


def _stage(calibration: Calibration, stage: Stage, tiler: Tiler | None) -> StageEstimate:
    """One stage's peak and time: of the whole picture in one pass, or of its largest tile plus what the whole
    picture holds, and its tiles' time (``TILED_TIME``)."""
    grid = tiler.grid(stage.shape) if tiler is not None else None
    if grid is None:
        return StageEstimate(stage.index, stage.size, stage.shape, stage.steps, round(calibration.peak(stage.pixels)),
                             calibration.step_seconds(stage.pixels), 1, stage.pixels)
    areas = [(bottom - top) * (right - left) for top, left, bottom, right in (tile.outer for tile in grid.tiles)]
    return StageEstimate(stage.index, stage.size, stage.shape, stage.steps,
                         round(calibration.tiled_peak(max(areas), stage.pixels)),
                         sum(calibration.step_seconds(area) for area in areas) * TILED_TIME, len(grid), max(areas))


def refuse_over_budget(recipe: Recipe, budget: int, registry: Registry | None = None) -> Estimate:
    """The estimate, or a UserError (exit 2) when the run's predicted peak is over ``budget`` bytes."""
    found = estimate(recipe, budget=budget, registry=registry)
    if found.peak_bytes > budget:
        largest = max(found.stages, key=lambda stage: stage.peak_bytes)
        raise UserError(
            f"the run would need about {show_bytes(found.peak_bytes)} at its largest stage ({largest.shape[1]}×"
            f"{largest.shape[0]} px), over the budget of {show_bytes(budget)}",
            context=recipe.source or "recipe",
            hint=(f"use memory: checkpoint, or a size of at most {found.largest_size} px" if found.largest_size >= 16
                  else f"not even a small picture fits: torch and the backbone alone take about "
                       f"{show_bytes(found.calibration.peak(0))}") + " (stylefw estimate shows the figures)")
    return found


def parse_bytes(text: str) -> int:
    """``24GB``, ``1.5 GiB`` or ``800MB`` as bytes; a UserError naming the value otherwise."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = found.group(2).upper() if found else ""
    if not found or unit not in UNITS or float(found.group(1)) <= 0:
        raise UserError(f"budget '{text}' is not an amount of memory", context="--budget",
                        hint="write it like 24GB, 1.5GiB or 800MB")
    return int(float(found.group(1)) * UNITS[unit])


def show_bytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"
