"""Golden regressions: every shipped recipe, shrunk to a few seeded CPU steps, must reproduce its losses.

Each recipe runs at 48 px (a multi-scale one at 32, 45 and 64 px) with random (seeded) VGG weights on
generated inputs, so no network is needed.
Two things are compared with tests/golden/<recipe>.json:

- ``initial``: every weighted term at a seeded noise image, before any update (one step of SGD with
  lr 0), where every term, content included, is far from 0. It depends on the layers, the
  normalisation, the weights, the padding and the targets, and on nothing the optimizer does, so it is
  held tightly: INITIAL_TOL of the total.
- ``trace``: the total and every weighted term after each of 4 optimizer steps, which also catches a
  changed optimizer, learning rate or schedule. Held to TRACE_TOL of that step's total.

The tolerances come from a measurement, not a guess. ``python benchmarks/golden_drift.py`` runs these
traces under every CPU kernel torch can choose (ATen's ``ATEN_CPU_CAPABILITY`` default/avx2/avx512 and
oneDNN's ``DNNL_MAX_CPU_ISA`` SSE4.1/AVX2/native). On the development machine (AVX-512, torch 2.14.1)
the worst spread between kernels was 2.0e-7 of the total at the initial image and 1.0e-3 over the
trace (d2l.yaml at step 4: Adam's first steps are nearly lr·sign(gradient), so a rounding difference in
a gradient close to 0 moves a pixel by a whole step). The tolerances leave ten times that, and stay far
below what a real change does: ``test_goldens_catch_a_real_change`` changes a layer, a weight and the
learning rate of vangogh.yaml and checks that each one fails.

torch is pinned to one thread here, because the thread count changes the order of float32 sums.

Re-record after an intended change with::

    STYLEFW_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylefw
from stylefw.errors import StylefwWarning
from stylefw.recipe import builtin_recipes, load_recipe

GOLDEN = Path(__file__).parent / "golden"
RECORD = os.environ.get("STYLEFW_RECORD_GOLDEN") == "1"
# measured by benchmarks/golden_drift.py (see the module docstring); the tolerances are 10x these
DRIFT_INITIAL, DRIFT_TRACE = 2.0e-7, 1.0e-3
INITIAL_TOL, TRACE_TOL = 10 * DRIFT_INITIAL, 10 * DRIFT_TRACE
SIZE, STEPS, SEED = 48, 4, 0
MULTI_SIZE, MULTI_MIN_SIZE = 64, 32
# L-BFGS evaluates up to max_iter times per step; capped so that a golden run stays near a second
LBFGS_MAX_ITER = 5


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    return make_inputs(tmp_path_factory.mktemp("golden-inputs"))


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """A smooth, slightly noisy content image and a striped style image, from a seeded generator."""
    rng = np.random.default_rng(20240501)
    y, x = np.mgrid[0:48, 0:64]
    content = np.stack([x / 63, y / 47, 0.5 + 0.25 * np.sin(x / 5) * np.cos(y / 7)], -1) + 0.1 * rng.random((48, 64, 3))
    style = np.stack([np.sin(x / 2) > 0, np.sin(y / 3) > 0, rng.random((48, 64)) > 0.5], -1).astype(float)
    paths = folder / "content.png", folder / "style.png"
    for path, array in zip(paths, (content, style)):
        Image.fromarray((array.clip(0, 1) * 255).round().astype(np.uint8)).save(path)
    return paths


@pytest.fixture(scope="module")
def runs(inputs):
    """Each recipe's golden record, made once per module (on one thread) and shared by the tests below."""
    cache: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in cache:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                cache[name] = golden_record(name, inputs)
            finally:
                torch.set_num_threads(threads)
        return cache[name]

    return run


def golden_overrides(name: str, content: Path, style: Path) -> dict:
    overrides = {"size": SIZE, "steps": STEPS, "seed": SEED, "device": "cpu", "backbone.weights": "random",
                 "content": str(content), "style": str(style), "save_every": 0}
    recipe = load_recipe(name)
    if recipe.optimizer.name == "lbfgs":
        overrides["optimizer.max_iter"] = LBFGS_MAX_ITER
    if recipe.scales != 1:  # a multi-scale recipe keeps its plan, shrunk: stages of 32, 45 and 64 px
        overrides.update(size=MULTI_SIZE, min_size=MULTI_MIN_SIZE)
    return overrides


def golden_record(name: str, inputs: tuple[Path, Path], **changes) -> dict:
    """The weighted losses at the initial image and after each step; ``changes`` are extra overrides."""
    overrides = {**golden_overrides(name, *inputs), **changes}
    # one SGD step with lr 0 reports the losses of the starting image and changes nothing; a seeded noise
    # image, so that every term, content included, is far from 0
    initial = run_trace(name, {**overrides, "steps": 1, "init": "noise", "optimizer": {"name": "sgd", "lr": 0.0}})[0]
    return {"initial": initial, "trace": run_trace(name, overrides)}


def run_trace(name: str, overrides: dict) -> list[dict[str, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)  # random weights are the point here
        result = stylefw.run(name, overrides, save=False)
    weights = {term.label: term.weight for term in result.trace[0].terms}
    # weighted terms: that is what each contributes to the total the optimizer sees
    return [{key: value * weights.get(key, 1.0) for key, value in step.items()} for step in result.losses]


def record(path: Path, name: str, run: dict) -> None:
    size = MULTI_SIZE if load_recipe(name).scales != 1 else SIZE
    path.write_text(json.dumps({"recipe": name, "size": size, "steps": STEPS, "seed": SEED,
                                "lbfgs_max_iter": LBFGS_MAX_ITER, "torch": torch.__version__, **run},
                               indent=2) + "\n", encoding="utf-8")


def mismatches(got: dict, want: dict, tolerance: float, where: str) -> list[str]:
    """Each key of one step whose value is off by more than ``tolerance`` of the step's total."""
    if got.keys() != want.keys():
        return [f"{where}: loss terms changed from {sorted(want)} to {sorted(got)}"]
    allowed = tolerance * abs(want["total"])
    return [f"{where} '{key}': {got[key]!r} != golden {want[key]!r} (allowed {allowed:.3g})"
            for key in want if abs(got[key] - want[key]) > allowed]


def compare(run: dict, golden: dict) -> list[str]:
    problems = mismatches(run["initial"], golden["initial"], INITIAL_TOL, "initial image")
    if len(run["trace"]) != len(golden["trace"]):
        return problems + [f"{len(run['trace'])} steps, golden has {len(golden['trace'])}"]
    for number, (got, want) in enumerate(zip(run["trace"], golden["trace"]), 1):
        problems += mismatches(got, want, TRACE_TOL, f"step {number}")
    return problems


def load_golden(name: str) -> dict:
    path = GOLDEN / f"{name.removesuffix('.yaml')}.json"
    if not path.is_file():
        pytest.fail(f"no golden trace for {name} at {path}; record it with "
                    "STYLEFW_RECORD_GOLDEN=1 python -m pytest tests/test_golden.py")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", builtin_recipes())
def test_losses_match_golden(name, runs):
    if RECORD:
        record(GOLDEN / f"{name.removesuffix('.yaml')}.json", name, runs(name))
    golden = load_golden(name)
    problems = compare(runs(name), golden)
    assert not problems, (f"{name} differs from its golden record (recorded with torch {golden['torch']}, running "
                          f"{torch.__version__}); if the change is intended, re-record with STYLEFW_RECORD_GOLDEN=1:\n"
                          + "\n".join(problems))


# d2l keeps the book's step: on a 48 px image with random weights, its first steps roughen the image (tv rises)
NOT_DECREASING = {"d2l.yaml"}


@pytest.mark.parametrize("name", sorted(set(builtin_recipes()) - NOT_DECREASING))
def test_loss_goes_down(name, runs):
    totals = [step["total"] for step in runs(name)["trace"]]
    assert totals[-1] < totals[0], totals


# each a real change a golden must catch in vangogh.yaml: a wrong layer, a changed weight, a changed step size
SABOTAGES = {
    "content at relu4_1, not relu4_2": {"losses[0].layers": ["relu4_1"]},
    "the style weight 1.5x": {"losses[1].weight": None},
    "the learning rate 1.5x": {"optimizer.lr": None},
}


def _sabotage(which: str) -> dict:
    recipe = load_recipe("vangogh.yaml")
    scaled = {"losses[1].weight": recipe.losses[1].weight * 1.5, "optimizer.lr": recipe.optimizer.options["lr"] * 1.5}
    return {key: scaled[key] if value is None else value for key, value in SABOTAGES[which].items()}


@pytest.mark.parametrize("sabotage", sorted(SABOTAGES))
def test_goldens_catch_a_real_change(sabotage, inputs):
    name = "vangogh.yaml"
    changes = _sabotage(sabotage)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sabotaged = golden_record(name, inputs, **changes)
    finally:
        torch.set_num_threads(threads)
    assert compare(sabotaged, load_golden(name)), f"{sabotage} ({changes}) went unnoticed"
