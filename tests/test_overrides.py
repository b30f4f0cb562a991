"""``--set key.path=value`` overrides: key syntax, YAML values, list indices, and their problems."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stylefw.errors import Problem, RecipeError
from stylefw.recipe.overrides import apply_overrides, coerce_numbers, parse_key, parse_value
from stylefw.recipe import recipe_from_dict

RECIPE: dict[str, Any] = {
    "content": "content.png",
    "style": "style.png",
    "size": 64,
    "losses": [
        {"name": "content", "layers": ["conv4_2"]},
        {"name": "gram", "weight": 1000, "layers": ["conv1_1", "conv2_1"]},
        {"name": "tv", "weight": 10},
    ],
    "optimizer": {"name": "adam", "lr": 0.02},
}


@pytest.fixture
def data() -> dict[str, Any]:
    """A fresh copy of RECIPE for each test to change in place."""
    return copy.deepcopy(RECIPE)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """content.png and style.png, so that RECIPE validates against tmp_path."""
    for seed, name in enumerate(("content.png", "style.png")):
        pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
    return tmp_path


# -- keys and values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("steps", ["steps"]),
        ("optimizer.lr", ["optimizer", "lr"]),
        ("losses[1].weight", ["losses", 1, "weight"]),
        ("losses[0].layers[2]", ["losses", 0, "layers", 2]),
        ("style[0].image", ["style", 0, "image"]),
        ("backbone.my-option", ["backbone", "my-option"]),
    ],
)
def test_parse_key(key: str, path: list[str | int]) -> None:
    assert parse_key(key) == path


@pytest.mark.parametrize(
    "key", ["", "optimizer..lr", ".lr", "optimizer.", "losses[x].weight", "losses[1", "losses[-1].weight",
            "1abc", "a b", "[0]", "losses.[0]"],
)
def test_malformed_keys_are_refused(key: str) -> None:
    expected = r"malformed key .* \(expected something like optimizer.lr or losses\[1\].weight\)"
    with pytest.raises(ValueError, match=expected):
        parse_key(key)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.05", 0.05),
        ("1e5", 1e5),
        ("1.0e4", 1e4),
        ("-2E-3", -2e-3),
        ("500", 500),
        ("true", True),
        ("null", None),
        ("random", "random"),
        ("conv1_1", "conv1_1"),
        ("[conv1_1, conv2_1]", ["conv1_1", "conv2_1"]),
        ("{name: tv, weight: 1e2}", {"name": "tv", "weight": 100.0}),
        ("'0.05'", "0.05"),  # quoted: the user asked for text
        ("[unclosed", "[unclosed"),  # not valid YAML: kept as the text the user typed
        ("a: b: c", "a: b: c"),
    ],
)
def test_values_are_parsed_as_yaml(text: str, value: Any) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_coerce_numbers_reaches_into_lists_and_mappings() -> None:
    value = {"a": ["1e3", "x1e3", "conv1_1"], "b": {"c": "2.5E-1"}, "d": "1e"}
    assert coerce_numbers(value) == {"a": [1000.0, "x1e3", "conv1_1"], "b": {"c": 0.25}, "d": "1e"}


# -- applying overrides -------------------------------------------------------------------------


def test_set_a_nested_key(data: dict[str, Any]) -> None:
    assert apply_overrides(data, ["optimizer.lr=0.05"]) == []
    assert data["optimizer"] == {"name": "adam", "lr": 0.05}


def test_set_a_key_inside_a_list(data: dict[str, Any]) -> None:
    assert apply_overrides(data, ["losses[1].weight=1e5"]) == []
    assert data["losses"][1] == {"name": "gram", "weight": 1e5, "layers": ["conv1_1", "conv2_1"]}
    assert isinstance(data["losses"][1]["weight"], float)


def test_set_a_whole_list(data: dict[str, Any]) -> None:
    assert apply_overrides(data, ["losses[0].layers=[relu4_2, 25]"]) == []
    assert data["losses"][0]["layers"] == ["relu4_2", 25]


def test_set_a_list_item(data: dict[str, Any]) -> None:
    assert apply_overrides(data, ["losses[1].layers[1]=conv3_1"]) == []
    assert data["losses"][1]["layers"] == ["conv1_1", "conv3_1"]


def test_set_creates_missing_mappings(data: dict[str, Any]) -> None:
    # the recipe has no backbone section: the default one is then extended by normalise/validate
    assert apply_overrides(data, ["backbone.weights=random"]) == []
    assert data["backbone"] == {"weights": "random"}


def test_set_the_index_just_past_the_end_appends(data: dict[str, Any]) -> None:
    assert apply_overrides(data, ["losses[3]={name: tv, weight: 5}"]) == []
    assert data["losses"][3] == {"name": "tv", "weight": 5}


def test_value_may_contain_equals(data: dict[str, Any]) -> None:
    assert apply_overrides(data, ["output=a=b.png"]) == []
    assert data["output"] == "a=b.png"


def test_spaces_around_the_key_are_ignored(data: dict[str, Any]) -> None:
    assert apply_overrides(data, [" steps =7"]) == []
    assert data["steps"] == 7


def test_mapping_and_pairs_are_set_without_parsing(data: dict[str, Any]) -> None:
    # the CLI shortcuts pass (key, value) pairs: a path such as "1e4" must stay text
    assert apply_overrides(data, {"optimizer.lr": 0.1}) == []
    assert apply_overrides(data, [("content", "1e4")]) == []
    assert (data["optimizer"]["lr"], data["content"]) == (0.1, "1e4")


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("losses[5].weight=1", Problem("--set losses[5].weight", "index 5 is out of range (the list has 3 items)")),
        ("losses[4]={name: tv}", Problem("--set losses[4]", "index 4 is out of range (the list has 3 items)")),
        ("optimizer.lr", Problem("--set optimizer.lr", "expected key=value, for example --set optimizer.lr=0.05")),
        ("optimizer..lr=1", Problem("--set optimizer..lr", "malformed key 'optimizer..lr' (expected something like "
                                                           "optimizer.lr or losses[1].weight)")),
        ("=1", Problem("--set ", "malformed key '' (expected something like optimizer.lr or losses[1].weight)")),
        ("size.x=1", Problem("--set size.x", "cannot set size.x: its parent is not a mapping")),
        ("optimizer[0]=1", Problem("--set optimizer[0]", "optimizer[0]: not a list")),
        ("size.a.b=1", Problem("--set size.a.b", "cannot set a key inside size: it is not a mapping")),
    ],
)
def test_bad_overrides_become_problems(data: dict[str, Any], override: str, problem: Problem) -> None:
    before = copy.deepcopy(data)
    assert apply_overrides(data, [override]) == [problem]
    assert data == before


def test_every_bad_override_is_reported_and_good_ones_applied(data: dict[str, Any]) -> None:
    found = apply_overrides(data, ["losses[9].weight=1", "steps=3", "optimizer.lr"])
    assert [p.path for p in found] == ["--set losses[9].weight", "--set optimizer.lr"]
    assert data["steps"] == 3


# -- overrides in a recipe ----------------------------------------------------------------------


def test_overrides_reach_the_validated_recipe(images: Path) -> None:
    recipe = recipe_from_dict(RECIPE, base_dir=images,
                              overrides=["optimizer.lr=0.05", "losses[1].weight=1e5", "backbone.weights=random"])
    assert recipe.optimizer.options == {"lr": 0.05}
    assert [loss.weight for loss in recipe.losses] == [1.0, 1e5, 10.0]
    assert (recipe.backbone.name, recipe.backbone.options["weights"]) == ("vgg19", "random")


def test_override_values_are_validated(images: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(RECIPE, base_dir=images, overrides=["steps=abc", "optimizer.lr=-1"])
    assert [str(p) for p in caught.value.problems] == [
        "optimizer.lr: -1 is out of range; use 0 or more",
        "steps: expected a whole number, got text 'abc'",
    ]


def test_override_problems_come_with_the_recipe_problems(images: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict({**RECIPE, "sise": 3}, base_dir=images, overrides=["losses[7].weight=2"])
    assert [p.path for p in caught.value.problems] == ["--set losses[7].weight", "sise"]


def test_overrides_leave_the_input_untouched(images: Path) -> None:
    before = copy.deepcopy(RECIPE)
    recipe_from_dict(RECIPE, base_dir=images, overrides=["losses[1].weight=5", "optimizer.lr=0.1"])
    assert RECIPE == before
