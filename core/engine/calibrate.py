"""A recipe's memory and speed on this device, measured: two short runs of its work, and the lines through them.

A run's peak memory grows with the pixels of its largest stage, and its time per step with each stage's
pixels: ``peak = base + per_pixel × pixels``, and the same for seconds. The two coefficients of each come
from two short runs of the recipe's own work (backbone, losses, optimizer, ``memory``) at long edges of
512 and 768 px on generated pictures, each in a fresh process on the CPU (``python -m
stylefw.engine.calibrate``), where the peak is the resident set size ``getrusage`` reports; on a GPU, in
this process, where it is ``torch.cuda.max_memory_allocated``. The runs use the engine directly, with no
plugin watching. The measurements are cached under the user cache folder, keyed by the work, the device
and the versions.

``tile: auto`` is decided from them before a run starts (:func:`auto_tile_size`); ``stylefw estimate``
(:mod:`stylefw.tools.estimate`) predicts whole runs from them. Below about 512 px the CPU's peak bends away
from the line (the allocator keeps small blocks differently), and a prediction there is a few percent off
either way: BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..contracts.recipe import Recipe
from ..contracts.run import RunContext, RunControl, Stage, StepEvent
from ..errors import UserError
from ..hooks.registry import Registry, default_registry
from ..recipe.load import recipe_from_dict
from .build import build_backbone, build_losses
from .image import cache_root
from .inputs import open_inputs, select_device
from .precision import matmul_precision
from .provenance import versions
from .stages import StagedRun, plan_stages

__all__ = ["Calibration", "CALIBRATION_EDGES", "AUTO_SHARE", "calibrate", "measure", "work", "short_run",
           "free_memory", "auto_tile_size"]

CALIBRATION_EDGES = (512, 768)  # where the CPU's peak grows on one line (module docstring)
CALIBRATION_STEPS = 3
# what a run's memory and speed do not depend on: where it reads and writes, how long it runs, its colours
UNRELATED = ("content", "style", "size", "steps", "scales", "min_size", "layer_fade", "average", "init", "seed",
             "output", "save_every", "checkpoint_every", "color", "score", "tile")
# A tiled step's peak is one tile's step plus what the whole picture holds (stylefw.engine.tiling). Both constants
# are fitted to measured tiled runs of vangogh.yaml's work on the CPU (docs/benchmarks/history/memory-and-print-sizes.md, "The tiled estimate"):
# - of what a whole run at a tile's size holds beyond the base, the share a tile holds: its targets are not
#   kept whole beside it, and its Gram matrices are not built for autograd;
TILE_SHARE = 0.8
# - bytes a pixel of the whole picture holds: about eight 3-channel float32 copies (the image, its clamp, its
#   gradient and the tiles' sum of it, Adam's two moments, the guard's copy, the inputs at the stage's size) and
#   the content targets at relu4_2 (512 channels at stride 8: 32 bytes);
PICTURE_BYTES = 125
# of the free memory, what tile: auto plans to use: the allocator and the rest of the process need some
AUTO_SHARE = 0.8


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


def calibrate(recipe: Recipe, device: str, *, recalibrate: bool, edges: tuple[int, int] = CALIBRATION_EDGES,
              registry: Registry | None = None) -> Calibration:
    """The two measured runs of ``recipe``'s work on ``device``, from the cache unless ``recalibrate``."""
    path = _cache_file(recipe, device, edges, registry or default_registry())
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


def measure(recipe: Recipe, edge: int, device: str) -> tuple[int, int, float]:
    """(pixels, peak bytes, median seconds per step) of a short run of ``recipe``'s work at long edge ``edge``."""
    data = {**work(recipe), "size": edge, "steps": CALIBRATION_STEPS, "device": device}
    if device.startswith("cuda"):
        return _measure_here(data)
    done = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(data), text=True, capture_output=True)
    if done.returncode != 0:
        raise UserError(f"a {edge} px calibration run of this recipe failed: {done.stderr.strip().splitlines()[-1:]}",
                        context=recipe.source or "recipe", hint="check that the recipe runs: stylefw recipe ...")
    pixels, peak, seconds = done.stdout.split()[-3:]
    return int(pixels), int(peak), float(seconds)


def work(recipe: Recipe) -> dict[str, Any]:
    """The recipe's keys that decide a step's memory and time: backbone, losses, optimizer, memory, style_scale."""
    return {key: value for key, value in recipe.data.items() if key not in UNRELATED}


def short_run(data: dict[str, Any], registry: Registry | None = None) -> tuple[int, float]:
    """Run the work ``data`` describes on generated 4:3 pictures, with the engine alone (no plugin watches);
    (pixels, median seconds per step after the first)."""
    registry = registry or default_registry()
    rng = np.random.default_rng(0)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stylefw-estimate-") as folder:
        paths = [str(Path(folder) / name) for name in ("content.png", "style.png")]
        for path in paths:
            Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)).save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights and the like: the measure, not the picture, matters
            recipe = recipe_from_dict({**data, "content": paths[0], "style": paths[1]}, registry=registry)
            device = select_device(recipe.device)
            torch.manual_seed(recipe.seed)
            content, styles = open_inputs(recipe, registry=registry)
            run = RunContext(recipe, str(device), plan_stages(recipe, content.size), RunControl())
            stamp = lambda event: stamps.append(event.elapsed) if isinstance(event, StepEvent) else None  # noqa: E731
            staged = StagedRun(registry, device, build_backbone(recipe, registry, device), build_losses(recipe, registry),
                               content=content, styles=styles, emit=stamp, run=run)
            with matmul_precision(recipe.precision):  # as a run's session sets it
                picture = staged.run().picture
    times = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    return picture.shape[-2] * picture.shape[-1], statistics.median(times)


def _measure_here(data: dict[str, Any]) -> tuple[int, int, float]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    pixels, seconds = short_run(data)
    return pixels, torch.cuda.max_memory_allocated(), seconds


def _cache_file(recipe: Recipe, device: str, edges: tuple[int, int], registry: Registry) -> Path:
    where = {**versions(registry.manager), "device": device, "threads": torch.get_num_threads(),
             "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
             "edges": edges, "steps": CALIBRATION_STEPS}
    key = hashlib.sha256(json.dumps([work(recipe), where], sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_root() / "estimates" / f"{key}.json"


def free_memory(device: Any) -> int:
    """Bytes the device has free now: the GPU's free memory, or the system's available memory."""
    if str(device).startswith("cuda"):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_tile_size(recipe: Recipe, stages: Sequence[Stage], device: Any, margin: int, *, budget: int | None = None,
                   registry: Registry | None = None) -> int:
    """The largest tile side whose step fits ``budget`` bytes (default: the device's free memory now) at the
    run's largest stage: one tile's activations, from the recipe's calibrated memory line (measured once per
    device and cached), plus what the whole picture holds."""
    budget = int(free_memory(device) * AUTO_SHARE) if budget is None else budget
    calibration = calibrate(recipe, str(device), recalibrate=False, registry=registry)
    largest = max(stages, key=lambda stage: stage.pixels)
    outer = calibration.tile_pixels_within(budget, largest.pixels)
    if outer >= largest.pixels:  # the whole picture fits: one tile, that is, one pass
        return max(largest.shape)
    side = math.isqrt(int(outer)) - 2 * margin
    if side < 64:
        raise UserError(f"even 64 px tiles do not fit in {budget / 1e9:.1f} GB at {largest.pixels / 1e6:.1f} MP: the whole "
                        "picture's own buffers take most of it", context="tile",
                        hint="use memory: checkpoint, a smaller size, or set tile.size yourself")
    return side


def main() -> None:
    """``python -m stylefw.engine.calibrate``: one short run of the work read as JSON on stdin; prints its pixels,
    the process's peak resident set size in bytes, and the median seconds per step."""
    pixels, seconds = short_run(json.load(sys.stdin))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(pixels, peak, seconds)


if __name__ == "__main__":
    main()
