"""How much memory and time a run will take, from two short runs measured on this device, and what fits a budget.

A run's peak memory grows with the pixels of its largest stage, and its time per step with each stage's
pixels: ``peak = base + per_pixel × pixels``, and the same for seconds. The two coefficients of each come
from two short runs of the recipe's own work (backbone, losses, optimizer, ``memory``) at long edges of
512 and 768 px on generated pictures, each in a fresh process on the CPU, where the peak is the resident
set size ``getrusage`` reports; on a GPU, in this process, where it is ``torch.cuda.max_memory_allocated``.
The measurements are cached under the user cache folder, keyed by the work, the device and the versions.

Below about 512 px the CPU's peak bends away from that line (the allocator keeps small blocks differently),
and a prediction there is a few percent off either way: BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = ["Calibration", "Estimate", "estimate", "check_budget", "parse_bytes", "free_memory", "measure"]

CALIBRATION_EDGES = (512, 768)  # where the CPU's peak grows on one line (module docstring)
CALIBRATION_STEPS = 3
# what a run's memory and speed do not depend on: where it reads and writes, how long it runs, its colours
UNRELATED = ("content", "style", "size", "steps", "scales", "min_size", "layer_fade", "average", "init", "seed",
             "output", "save_every", "checkpoint_every", "color", "score", "tile")
# A tiled step's peak is one tile's step plus what the whole picture holds (stylefw.tiling). Both constants
# are fitted to measured tiled runs of vangogh.yaml's work on the CPU (BENCHMARKS.md, "The tiled estimate"):
# - of what a whole run at a tile's size holds beyond the base, the share a tile holds: its targets are not
#   kept whole beside it, and its Gram matrices are not built for autograd;
TILE_SHARE = 0.8
# - bytes a pixel of the whole picture holds: about eight 3-channel float32 copies (the image, its clamp, its
#   gradient and the tiles' sum of it, Adam's two moments, the guard's copy, the inputs at the stage's size) and
#   the content targets at relu4_2 (512 channels at stride 8: 32 bytes);
PICTURE_BYTES = 125
# - and a tiled step's time, as a multiple of its tiles' steps run whole: the statistics pass, each tile's
#   statistics computed twice, and the gradient injected into each tile's backward
TILED_TIME = 2.0
# of the free memory, what tile: auto plans to use: the allocator and the rest of the process need some
AUTO_SHARE = 0.8
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@dataclass(frozen=True)
class Calibration:
    """Two measured short runs: their pixels, peak bytes and seconds per step, and the lines through them."""

    device: str
    pixels: tuple[int, int]
    peaks: tuple[int, int]
    seconds: tuple[float, float]

    def _line(self, values: tuple[float, float]) -> tuple[float, float]:
        slope = (values[1] - values[0]) / (self.pixels[1] - self.pixels[0])
        return values[0] - slope * self.pixels[0], max(slope, 0.0)

    def peak(self, pixels: int) -> float:
        base, per_pixel = self._line(self.peaks)
        return base + per_pixel * pixels

    def step_seconds(self, pixels: int) -> float:
        base, per_pixel = self._line(self.seconds)
        return max(base + per_pixel * pixels, 0.0)

    def tiled_peak(self, tile_pixels: int, picture_pixels: int) -> float:
        """The peak of a step over tiles of at most ``tile_pixels`` (margins included) of a larger picture."""
        base = self.peak(0)
        return base + TILE_SHARE * (self.peak(tile_pixels) - base) + PICTURE_BYTES * picture_pixels

    def tile_pixels_within(self, budget: float, picture_pixels: int) -> float:
        """The largest tile (margins included) whose tiled step over ``picture_pixels`` fits ``budget`` bytes."""
        base, per_pixel = self._line(self.peaks)
        room = budget - base - PICTURE_BYTES * picture_pixels
        if room <= 0:
            return 0.0
        return room / (TILE_SHARE * per_pixel) if per_pixel else math.inf

    def pixels_within(self, budget: float) -> float:
        """The most pixels whose predicted peak stays within ``budget`` bytes (0 when not even the base fits)."""
        base, per_pixel = self._line(self.peaks)
        if budget <= base:
            return 0.0
        return (budget - base) / per_pixel if per_pixel else math.inf


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


def estimate(recipe: Any, *, budget: int | None = None, recalibrate: bool = False,
             edges: tuple[int, int] | None = None) -> Estimate:
    """Predict ``recipe``'s run on the device it would use; ``budget`` defaults to that device's free memory.

    ``edges`` are the calibration runs' long edges (default ``CALIBRATION_EDGES``).
    """
    from .engine import open_inputs, select_device
    from .scales import shape_at
    from .stages import plan_stages

    device = select_device(recipe.device)
    calibration = calibrate(recipe, str(device), recalibrate=recalibrate, edges=edges or CALIBRATION_EDGES)
    content, _ = open_inputs(recipe)
    planned = plan_stages(recipe, content.size)
    budget = free_memory(device) if budget is None else budget
    tiler = _tiler(recipe, device, planned, budget) if recipe.tile is not None else None
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


def _tiler(recipe: Any, device: Any, stages: Any, budget: int) -> Any:
    """How the run would cut its stages into tiles, with ``tile: auto`` sized to ``budget``."""
    import warnings

    from .engine import build_backbone, build_losses
    from .registry import default_registry
    from .tiling import auto_tile_size, make_tiler

    registry = default_registry()
    with warnings.catch_warnings():  # the run itself warns about random weights and the like
        warnings.simplefilter("ignore")
        backbone, losses = build_backbone(recipe, registry, device), build_losses(recipe, registry)
    labels = [spec.label for spec in recipe.losses]
    size = lambda margin: auto_tile_size(recipe, stages, device, margin, budget=int(budget * AUTO_SHARE))
    return make_tiler(recipe.tile, backbone, recipe.backbone.name, losses, labels, recipe.source, size)


def _stage(calibration: Calibration, stage: Any, tiler: Any) -> StageEstimate:
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


def check_budget(recipe: Any, budget: int) -> Estimate:
    """The estimate, or a UserError (exit 2) when the run's predicted peak is over ``budget`` bytes."""
    found = estimate(recipe, budget=budget)
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


def calibrate(recipe: Any, device: str, *, recalibrate: bool, edges: tuple[int, int]) -> Calibration:
    """The two measured runs of ``recipe``'s work on ``device``, from the cache unless ``recalibrate``."""
    path = _cache_file(recipe, device, edges)
    if path.is_file() and not recalibrate:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return Calibration(saved["device"], tuple(saved["pixels"]), tuple(saved["peaks"]), tuple(saved["seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is measured again
    runs = [measure(recipe, edge, device) for edge in edges]
    calibration = Calibration(device, *(tuple(column) for column in zip(*runs)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(calibration)), encoding="utf-8")
    return calibration


def measure(recipe: Any, edge: int, device: str) -> tuple[int, int, float]:
    """(pixels, peak bytes, median seconds per step) of a short run of ``recipe``'s work at long edge ``edge``."""
    data = {**work(recipe), "size": edge, "steps": CALIBRATION_STEPS, "device": device}
    if device.startswith("cuda"):
        return _measure_here(data)
    done = subprocess.run([sys.executable, "-m", "stylefw.estimate_run"], input=json.dumps(data), text=True,
                          capture_output=True)
    if done.returncode != 0:
        raise UserError(f"a {edge} px calibration run of this recipe failed: {done.stderr.strip().splitlines()[-1:]}",
                        context=recipe.source or "recipe", hint="check that the recipe runs: stylefw recipe ...")
    pixels, peak, seconds = done.stdout.split()[-3:]
    return int(pixels), int(peak), float(seconds)


def work(recipe: Any) -> dict[str, Any]:
    """The recipe's keys that decide a step's memory and time: backbone, losses, optimizer, memory, style_scale."""
    return {key: value for key, value in recipe.data.items() if key not in UNRELATED}


def _measure_here(data: dict[str, Any]) -> tuple[int, int, float]:
    import torch

    from .estimate_run import short_run

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    pixels, seconds = short_run(data)
    return pixels, torch.cuda.max_memory_allocated(), seconds


def _cache_file(recipe: Any, device: str, edges: tuple[int, int]) -> Path:
    import platform

    import torch

    from . import __version__
    from .image import cache_root

    where = {"device": device, "torch": torch.__version__, "stylefw": __version__, "python": platform.python_version(),
             "threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability(),
             "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
             "edges": edges, "steps": CALIBRATION_STEPS}
    key = hashlib.sha256(json.dumps([work(recipe), where], sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_root() / "estimates" / f"{key}.json"


def free_memory(device: Any) -> int:
    """Bytes the device has free now: the GPU's free memory, or the system's available memory."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


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
