"""Recipe YAML: duplicate keys refused, caps on size, aliases and nesting; non-finite and overflowing numbers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from stylefw.errors import RecipeError, UserError
from stylefw.recipe.overrides import parse_value
from stylefw.recipe import load_recipe, recipe_from_dict
from stylefw.recipe.yaml_input import MAX_BYTES, MAX_DEPTH, LimitError, load_yaml

URL = "https://example.com/a.png"  # validation never fetches, so a URL needs no file
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "\n".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(9))


def good(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"content": URL, "style": URL,
                            "losses": [{"name": "content", "layers": ["conv4_2"]}, {"name": "tv", "weight": 10}]}
    data.update(changes)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(data)
    return [str(problem) for problem in caught.value.problems]


def test_duplicate_key_names_the_key_and_both_lines() -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        load_yaml("steps: 10\nsize: 64\nsteps: 20\n")
    assert "duplicate key 'steps' (first given on line 1)" in caught.value.problem
    assert caught.value.problem_mark.line + 1 == 3


def test_duplicate_key_in_a_nested_mapping_is_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="duplicate key 'lr'"):
        load_yaml("optimizer: {name: adam, lr: 0.1, lr: 1.0}\n")


def test_merge_keys_may_still_be_overridden() -> None:
    assert load_yaml("base: &b {lr: 1}\nopt:\n  <<: *b\n  lr: 2\n")["opt"] == {"lr": 2}


def test_alias_bomb_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(LimitError, match="expands to more than"):
        load_yaml(BOMB)
    # a loose bound that only a hang breaks (unpacking the bomb takes minutes and gigabytes)
    assert time.perf_counter() - start < 5


def test_a_few_aliases_are_fine() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "- " * (MAX_DEPTH + 1) + "1", "a: &x [*x]\n"])
def test_deep_or_recursive_yaml_is_a_message_not_a_recursion_error(text: str) -> None:
    with pytest.raises(LimitError):
        load_yaml(text)


def test_nesting_within_the_cap_loads() -> None:
    assert load_yaml("- " * (MAX_DEPTH - 1) + "1") is not None


def test_recipe_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(f"content: {URL}\nstyle: {URL}\ncontent: {URL}\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_recipe(path)
    assert f"{path}:3:1" in str(caught.value) and "duplicate key 'content'" in str(caught.value)


def test_oversized_recipe_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_BYTES + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="bytes long; a recipe may be at most"):
        load_recipe(path)


def test_alias_bomb_in_a_recipe_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    with pytest.raises(UserError, match="the recipe expands to more than"):
        load_recipe(path)


def test_alias_bomb_in_an_override_is_not_expanded() -> None:
    assert parse_value(BOMB) == BOMB  # read as plain text, which validation then rejects where it lands


@pytest.mark.parametrize(("changes", "expected"), [
    ({"optimizer": {"name": "adam", "lr": float("inf")}}, "optimizer.lr: inf is not a finite number"),
    ({"losses": [{"name": "tv", "weight": float("inf")}]}, "losses[0].weight: inf is not a finite number"),
    ({"style": [{"image": URL, "weight": float("nan")}]}, "style[0].weight: nan is not a finite number"),
    ({"average": float("nan")}, "average: nan is not a finite number"),
    ({"style_scale": float("-inf")}, "style_scale: -inf is not a finite number"),
    ({"size": float("inf")}, "size: inf is not a finite number"),
    ({"losses": [{"name": "gram", "layers": {"conv1_1": float("inf")}}]},
     "losses[0].layers.conv1_1: inf is not a finite number"),
    ({"optimizer": {"name": "adam", "schedule": {"name": "cosine", "floor": float("nan")}}},
     "optimizer.schedule.floor: nan is not a finite number"),
    ({"losses": [{"name": "tv", "weight": 1e39}]}, "losses[0].weight: 1e+39 is too large: torch computes in 32-bit"),
    ({"optimizer": {"name": "lbfgs", "history_size": 10**30}}, "optimizer.history_size: 10000"),
    ({"steps": 10**30}, "steps: 10000"),
    ({"seed": 2**64}, "seed: 18446744073709551616 is out of range"),
])
def test_numbers_torch_cannot_take_are_refused_at_their_path(changes: dict[str, Any], expected: str) -> None:
    assert any(line.startswith(expected) for line in problems(good(**changes))), problems(good(**changes))
