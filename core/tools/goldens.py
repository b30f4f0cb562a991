"""Recipes as regression tests: record a golden beside a recipe, and check that a run still matches it.

A golden (``NAME.golden.json`` beside ``NAME.yaml``) holds everything a check needs, so that it runs
offline, in seconds, on any machine:

- ``settings``: the overrides that shrink the run (``size``, ``steps``, ``seed``, ``device: cpu``, and
  any others, such as ``backbone.weights: random``), and ``threads``, since the thread count changes the
  order of float32 sums;
- ``inputs``: the recipe's content and style images, shrunk to the run's size and stored as PNG, so the
  check needs neither the original files nor the network;
- ``initial``: every weighted term at a seeded noise image before any update, which depends on the
  layers, the normalisation, the weights, the padding and the targets, and is held tightly;
- ``trace``: the total and every weighted term after each step;
- ``image``: the final picture, as PNG;
- ``tolerance``: how far each of those may move; ``versions``: what it was recorded with.

The default tolerances come from ``python benchmarks/golden_drift.py``, which replays the shipped
recipes' goldens under every CPU kernel torch can choose: the worst spread was 2.0e-7 of the total at
the initial image, 1.0e-3 of it over the trace, and 0.24 grey levels (of 255) in the mean absolute
difference of the final picture (vangogh_hd's 16 steps: Adam's first steps are nearly lr·sign(gradient),
so a rounding difference in a gradient near 0 moves a pixel by a whole step). The defaults are ten times
the loss drifts and four times the picture's: a style weight 1.5 times the recipe's moves the picture by
1.9 grey levels, a style layer left out by 9.5.

``pytest --stylefw-recipes DIR`` (see :mod:`stylefw.tools.pytest_plugin`) and ``stylefw check`` both use
:func:`check` and :func:`record`; :mod:`stylefw.tools.goldens_report` says what a failure or a re-recording
changed.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from PIL import Image

from .. import __version__
from ..contracts.recipe import Recipe
from ..contracts.run import Result
from ..contracts.scales import shape_at
from ..engine.api import run
from ..engine.files import write_atomic
from ..engine.inputs import open_inputs, style_edge
from ..errors import MissingWeights, RecipeError, StylefwWarning, UserError
from ..hooks.registry import Registry, default_registry
from ..recipe.load import find_recipe, load_recipe
from .goldens_report import decode_png, encode_png, failure_report, golden_versions, what_changed

__all__ = ["FORMAT", "DEFAULT_TOLERANCE", "Verdict", "GoldenError", "golden_path", "default_settings",
           "read_golden", "check", "record", "replay"]

FORMAT = 1
# from the worst drift across CPU kernels (module docstring); the picture's is in grey levels of 255
DEFAULT_TOLERANCE = {"initial": 2.0e-6, "trace": 1.0e-2, "image": 1.0}
SIZE, MULTI_SIZE, MULTI_MIN_SIZE, STEPS = 48, 64, 32, 4
# L-BFGS evaluates up to max_iter times per step; capped so that a check stays near a second
LBFGS_MAX_ITER = 5
# what a check never does, whatever the recipe says: write files, or score the picture
QUIET = {"save_every": 0, "checkpoint_every": 0, "score": False}


# the keys a golden of this format holds, and their JSON kinds
SHAPE = {"settings": dict, "inputs": dict, "initial": dict, "trace": list, "image": str, "tolerance": dict}


class GoldenError(UserError):
    """A golden file that cannot be used: missing, unreadable, or from another format."""


@dataclass(frozen=True)
class Verdict:
    """How one recipe's check went: ``passed``, ``failed``, ``skipped`` or ``recorded``, with the details."""

    recipe: Path
    status: str
    seconds: float
    reason: str = ""  # why it failed or was skipped, or what recording changed: one line
    report: str = ""  # the failure report, several lines


def golden_path(recipe: str | Path) -> Path:
    """The golden beside a recipe file: ``vangogh.yaml`` → ``vangogh.golden.json``."""
    recipe = Path(recipe)
    return recipe.with_name(f"{recipe.stem}.golden.json")


def default_settings(recipe: Recipe) -> dict[str, Any]:
    """Overrides that make ``recipe`` a check of a few seconds: a few CPU steps at 48 px (32 to 64 for multi-scale)."""
    settings: dict[str, Any] = {"size": SIZE, "steps": STEPS, "seed": recipe.seed, "device": "cpu"}
    if recipe.scales != 1:  # keep the plan's shape, shrunk: auto from 32 px, or each listed stage scaled down
        settings["size"] = MULTI_SIZE
        if isinstance(recipe.scales, tuple):
            sizes = sorted({max(MULTI_MIN_SIZE, round(stage.size * MULTI_SIZE / recipe.size)) for stage in recipe.scales})
            settings["scales"] = [{"size": size, "steps": STEPS} for size in sizes]
        else:
            settings["min_size"] = MULTI_MIN_SIZE
    if recipe.optimizer.name == "lbfgs":
        settings["optimizer.max_iter"] = min(recipe.optimizer.options.get("max_iter", LBFGS_MAX_ITER), LBFGS_MAX_ITER)
    return settings


def read_golden(path: Path) -> dict[str, Any]:
    """A golden's contents; GoldenError when it is missing, not JSON, or of a format this stylefw does not read."""
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenError("no golden beside this recipe", context=str(path),
                          hint="record one with 'stylefw check --record RECIPE' or 'pytest --stylefw-record'") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise GoldenError(f"cannot read the golden: {exc}", context=str(path),
                          hint="re-record it with 'stylefw check --record RECIPE'") from None
    rerecord = "re-record it with 'stylefw check --record RECIPE'"
    if not isinstance(golden, dict):
        raise GoldenError(f"a golden is a JSON object, not {type(golden).__name__}", context=str(path), hint=rerecord)
    found = golden.get("format")
    if found != FORMAT:
        newer = isinstance(found, int) and found > FORMAT
        raise GoldenError(f"golden format {found!r}; this stylefw ({__version__}) reads format {FORMAT}",
                          context=str(path), hint="upgrade stylefw to check it" if newer else rerecord)
    missing = [key for key, kind in SHAPE.items() if not isinstance(golden.get(key), kind)]
    if missing:
        raise GoldenError(f"the golden lacks {', '.join(missing)}, or holds the wrong kind of value there",
                          context=str(path), hint=rerecord)
    try:
        decode_png(golden["image"])
    except (ValueError, OSError) as exc:  # not base64 (binascii.Error), or not a PNG (UnidentifiedImageError)
        raise GoldenError(f"the golden's picture is damaged ({type(exc).__name__})", context=str(path),
                          hint=rerecord) from None
    tolerance = golden["tolerance"]
    wrong = [f"tolerance.{key}" for key in DEFAULT_TOLERANCE
             if isinstance(tolerance.get(key), bool) or not isinstance(tolerance.get(key), (int, float))
             or not 0 <= tolerance[key] < math.inf]
    if wrong:
        raise GoldenError(f"{', '.join(wrong)} must be a number, 0 or more", context=str(path),
                          hint=f"the defaults are {', '.join(f'{k}: {v}' for k, v in DEFAULT_TOLERANCE.items())}")
    return golden


def check(recipe: str | Path, *, overrides: Mapping[str, Any] | None = None, registry: Registry | None = None,
          failures: str | Path = "stylefw-failures") -> Verdict:
    """Run ``recipe`` as its golden says and compare; ``overrides`` change the recipe on top of the golden's settings.

    A failed check writes expected | actual | difference pictures into ``failures`` and names the file.
    """
    registry = registry or default_registry()
    recipe = find_recipe(recipe)
    golden = read_golden(golden_path(recipe))
    started = time.perf_counter()
    try:
        replayed = replay(recipe, golden, overrides=overrides, registry=registry)
    except MissingWeights as exc:
        return Verdict(recipe, "skipped", time.perf_counter() - started, f"weights file {exc.file} is missing")
    seconds = time.perf_counter() - started
    reason, report = failure_report(recipe, golden, replayed, Path(failures), golden_versions(registry))
    return Verdict(recipe, "failed" if reason else "passed", seconds, reason, report)


def replay(recipe: Path, golden: Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None,
           registry: Registry | None = None) -> dict[str, Any]:
    """The initial terms, the trace and the final picture (PNG) of ``recipe`` run as ``golden`` says.

    MissingWeights when a weights file the recipe names is absent, whether validation or the backbone finds out.
    """
    with _inputs(golden["inputs"], golden_path(recipe)) as inputs:
        missing = _missing_file(recipe, {**golden["settings"], **inputs, **(overrides or {})}, registry)
        if missing:
            raise MissingWeights(f"weights file {missing} is missing", file=missing)
        return _run(recipe, golden, inputs, overrides or {}, registry)


def record(recipe: str | Path, *, overrides: Mapping[str, Any] | None = None,
           registry: Registry | None = None) -> Verdict:
    """Record (or re-record) ``recipe``'s golden; an existing golden keeps its settings, inputs and tolerances.

    ``overrides`` are added to the settings, and kept: ``{"size": 96}`` records at 96 px from now on.
    Content and style overrides choose the inputs to store.
    """
    registry = registry or default_registry()
    recipe = find_recipe(recipe)
    path = golden_path(recipe)
    old = read_golden(path) if path.exists() else None
    overrides = dict(overrides or {})
    sources = {key: overrides.pop(key) for key in ("content", "style") if key in overrides}
    started = time.perf_counter()
    settings = {**(old["settings"] if old else default_settings(_load(recipe, {**sources, **overrides}, registry))),
                **overrides}
    inputs = old["inputs"] if old and not sources else _shrunk_inputs(_load(recipe, {**settings, **sources}, registry))
    golden = {"format": FORMAT, "recipe": recipe.name, "settings": settings, "threads": 1,
              "tolerance": old["tolerance"] if old else dict(DEFAULT_TOLERANCE), "inputs": inputs}
    replayed = replay(recipe, golden, registry=registry)
    golden.update(initial=replayed["initial"], trace=replayed["trace"], image=replayed["image"],
                  versions=golden_versions(registry))
    _write(path, json.dumps(golden, indent=1) + "\n")
    return Verdict(recipe, "recorded", time.perf_counter() - started, what_changed(old, golden))


def _load(recipe: Path, overrides: Mapping[str, Any], registry: Registry | None) -> Recipe:
    return load_recipe(recipe, {**overrides, **QUIET}, registry=registry)


def _missing_file(recipe: Path, overrides: Mapping[str, Any], registry: Registry | None) -> str:
    """The file a recipe names for its backbone (its weights) when that is what keeps it from validating, or ``""``."""
    try:
        _load(recipe, overrides, registry)
    except RecipeError as exc:
        missing = [problem.missing for problem in exc.problems if problem.missing]
        if missing and len(missing) == len(exc.problems):
            return missing[0]
        raise
    return ""


def _run(recipe: Path, golden: Mapping[str, Any], inputs: Mapping[str, Any], overrides: Mapping[str, Any],
         registry: Registry | None) -> dict[str, Any]:
    """The initial terms, the trace and the final image of ``recipe`` run as ``golden`` says, on its thread count."""
    changes = {**golden["settings"], **inputs, **overrides, **QUIET}
    threads = torch.get_num_threads()
    torch.set_num_threads(golden.get("threads", 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StylefwWarning)  # random weights, upscaled styles: expected in a check
            # one SGD step with lr 0 reports the losses of a seeded noise image, where every term, content
            # included, is far from 0, and changes nothing
            still = run(recipe, {**changes, "steps": 1, "scales": 1, "init": "noise",
                                 "optimizer": {"name": "sgd", "lr": 0.0}}, save=False, registry=registry)
            result = run(recipe, changes, save=False, registry=registry)
    finally:
        torch.set_num_threads(threads)
    return {"initial": _weighted(still)[0], "trace": _weighted(result), "image": encode_png(result.image)}


def _weighted(result: Result) -> list[dict[str, float]]:
    """Each step's total and weighted terms: what each term contributes to the total the optimizer sees."""
    weights = {term.label: term.weight for term in result.trace[0].terms}
    return [{key: value * weights.get(key, 1.0) for key, value in step.items()} for step in result.losses]


def _shrunk_inputs(recipe: Recipe) -> dict[str, Any]:
    """The recipe's images at the check's size (styles at size × style_scale), as PNG, with the style weights."""
    content, styles = open_inputs(recipe)

    def shrunk(image: Image.Image, edge: int) -> str:
        image = image.convert("RGB")
        return encode_png(image.resize(shape_at(*image.size, edge), Image.Resampling.LANCZOS))

    return {"content": shrunk(content, recipe.size),
            "style": [{"image": shrunk(image, style_edge(recipe.size, recipe.style_scale)), "weight": ref.weight}
                      for image, ref in zip(styles, recipe.styles)]}


@contextmanager
def _inputs(inputs: Mapping[str, Any], source: Path) -> Iterator[dict[str, Any]]:
    """The golden's images written to a temporary folder, as ``content`` and ``style`` overrides naming them."""
    with tempfile.TemporaryDirectory(prefix="stylefw-check-") as folder:
        try:
            content = Path(folder) / "content.png"
            content.write_bytes(base64.b64decode(inputs["content"], validate=True))
            styles = []
            for number, style in enumerate(inputs["style"]):
                path = Path(folder) / f"style{number}.png"
                path.write_bytes(base64.b64decode(style["image"], validate=True))
                styles.append({"image": str(path), "weight": style["weight"]})
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            raise GoldenError(f"the golden's inputs are damaged ({type(exc).__name__}: {exc})", context=str(source),
                              hint="re-record it from the recipe's images: stylefw check --record RECIPE") from None
        yield {"content": str(content), "style": styles}


def _write(path: Path, text: str) -> None:
    """Write the golden whole or not at all; a UserError names it when it cannot be written."""
    try:
        write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
    except OSError as exc:
        raise UserError(f"cannot write the golden: {exc.strerror or exc}", context=str(path)) from None
