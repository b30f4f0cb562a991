"""The generic checks validation is built from, in particular those read off a factory's annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from stylefw.checks import Checker
from stylefw.errors import RecipeError
from stylefw.recipe import load_recipe


def factory(*, mode: Literal["fast", "slow"] = "fast", count: int = 1, scale: float = 1.0, flag: bool = False,
            label: str = "", either: int | str = 0, anything=None) -> None:
    """A plugin factory with one parameter of each kind the checks know, and two they leave alone."""


def problems(options: dict) -> list[str]:
    checker = Checker()
    ok = checker.annotated("losses[0]", factory, options)
    assert ok == (not checker.problems)
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
        "backbone.layout: 'cafe' is not one of auto, torchvision, caffe, normalised, keras (did you mean caffe?)",
        "backbone.seed: expected a whole number, got text 'x'",
        "optimizer.amsgrad: expected true or false, got int 3",
    ]
