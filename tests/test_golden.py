"""Golden regressions: every shipped recipe, shrunk to a few seeded CPU steps, must reproduce its loss trace.

Each recipe runs at 48 px for 4 steps with random (seeded) VGG weights on generated inputs, so no network
is needed, and its per-step losses (the total and every term) are compared with tests/golden/<recipe>.json.

Re-record after an intended change with::

    STYLEFW_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

Tolerance: rtol=1e-4 on the total and on each weighted term, plus an absolute 1e-6 of that step's total, so
that a term that is zero up to rounding (the content loss at step 1, when the image starts as the content)
does not fail on rounding alone. On one machine the trace is bitwise reproducible (torch is pinned to one
thread here, because the thread count changes the order of float32 sums); rtol=1e-4 leaves room for a
different BLAS or torch build summing in another order, while any change to a layer, a normalisation, a
weight or the optimisation shifts these losses by percents. Adam's first step is lr·sign(gradient), which
can turn a rounding difference into a visible one, so a new CPU family or torch release may need a
re-record: the failure message says which torch recorded the file.
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
RTOL, ATOL_OF_TOTAL = 1e-4, 1e-6
SIZE, STEPS, SEED = 48, 4, 0
# L-BFGS evaluates up to max_iter times per step; capped so that a golden run stays near a second
LBFGS_MAX_ITER = 5
# d2l keeps the book's Adam lr 0.3, which on [0, 1] pixels first roughens the image (tv rises)
NOT_DECREASING = {"d2l.yaml": "Adam lr 0.3 moves every pixel by 0.3 on step 1"}


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
def traces(inputs):
    """Each recipe's trace, run once per module (on one thread) and shared by the tests below."""
    cache: dict[str, list[dict[str, float]]] = {}

    def trace(name: str) -> list[dict[str, float]]:
        if name not in cache:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                cache[name] = run_trace(name, inputs)
            finally:
                torch.set_num_threads(threads)
        return cache[name]

    return trace


def golden_overrides(name: str, content: Path, style: Path) -> dict:
    overrides = {"size": SIZE, "steps": STEPS, "seed": SEED, "device": "cpu", "backbone.weights": "random",
                 "content": str(content), "style": str(style), "save_every": 0}
    if load_recipe(name).optimizer.name == "lbfgs":
        overrides["optimizer.max_iter"] = LBFGS_MAX_ITER
    return overrides


def run_trace(name: str, inputs: tuple[Path, Path]) -> list[dict[str, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)  # random weights are the point here
        result = stylefw.run(name, golden_overrides(name, *inputs), save=False)
    weights = {term.label: term.weight for term in result.trace[0].terms}
    # weighted terms: that is what each contributes to the total the optimizer sees
    return [{key: value * weights.get(key, 1.0) for key, value in step.items()} for step in result.losses]


def record(path: Path, name: str, trace: list[dict[str, float]]) -> None:
    path.write_text(json.dumps({"recipe": name, "size": SIZE, "steps": STEPS, "seed": SEED,
                                "lbfgs_max_iter": LBFGS_MAX_ITER, "torch": torch.__version__,
                                "trace": trace}, indent=2) + "\n", encoding="utf-8")


@pytest.mark.parametrize("name", builtin_recipes())
def test_loss_trace_matches_golden(name, traces):
    path = GOLDEN / f"{name.removesuffix('.yaml')}.json"
    trace = traces(name)
    if RECORD:
        record(path, name, trace)
    if not path.is_file():
        pytest.fail(f"no golden trace for {name} at {path}; record it with "
                    "STYLEFW_RECORD_GOLDEN=1 python -m pytest tests/test_golden.py")
    golden = json.loads(path.read_text(encoding="utf-8"))
    assert len(trace) == len(golden["trace"]) == STEPS
    for number, (got, want) in enumerate(zip(trace, golden["trace"]), 1):
        assert got.keys() == want.keys(), f"step {number}: loss terms changed"
        atol = ATOL_OF_TOTAL * abs(want["total"])
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=RTOL, abs=atol), (
                f"{name} step {number} '{key}': {got[key]!r} != golden {want[key]!r} (recorded with torch "
                f"{golden['torch']}, running {torch.__version__}); if the change is intended, re-record with "
                f"STYLEFW_RECORD_GOLDEN=1")


@pytest.mark.parametrize("name", sorted(set(builtin_recipes()) - set(NOT_DECREASING)))
def test_loss_goes_down(name, traces):
    totals = [step["total"] for step in traces(name)]
    assert totals[-1] < totals[0], totals
