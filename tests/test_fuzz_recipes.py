"""Fuzzing validation: valid recipes mutated in their keys, types, values and nesting raise nothing but UserError."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stylefw.errors import UserError
from stylefw.recipe import recipe_from_dict

BASE: dict[str, Any] = {
    "version": 1,
    "content": "content.png",
    "style": [{"image": "style.png", "weight": 1.0}, "https://example.com/style.jpg"],
    "size": 64,
    "style_scale": 1.0,
    "backbone": {"name": "vgg19", "weights": "random", "pooling": "max"},
    "losses": [
        {"name": "content", "layers": ["relu4_2"]},
        {"name": "gram", "weight": 1000.0, "layers": {"relu1_1": 1.0, "relu2_1": 0.5}},
        {"name": "tv", "weight": 10},
        {"name": "w2", "layers": ["relu3_1"]},
    ],
    "optimizer": {"name": "adam", "lr": 0.05, "schedule": {"name": "cosine", "floor": 0.1}},
    "steps": 10,
    "scales": [{"size": 32, "steps": 5}, {"size": 64}],
    "average": 0.9,
    "init": "noise",
    "seed": 3,
    "device": "cpu",
    "output": "out.png",
    "save_every": 0,
    "color": {"mode": "histogram", "method": "pca"},
    "score": False,
}

# what a YAML file or a --set can hold, weighted towards the values that broke validation before
NUMBERS = st.sampled_from([0, -1, 1, 2**63, -(2**63) - 1, 10**30, 1e39, -1e39, 1e-320, float("inf"), float("nan"),
                           True, None, "1", "1e400", "nan", 0.5, 16384, 16385])
STRINGS = st.sampled_from(["", "~nosuchuser/a.png", "ftp://example.com/a.png", "file:///etc/passwd", "a\x00b.png",
                           "x" * 5000 + ".png", ".", "/", "loop", "folder", "relu9_9", "conv1_1", "vgg19", "adam",
                           "lbfgs", "cosine", "auto", "cuda:99", "content.png", "https://", "http://[::1", "max",
                           "imagenet", "random", "gram", "content", "none", "histogram", "swap", "name", "layers",
                           "weights", "out.txt", "content.png", 7, None, ["conv1_1"]])
SCALARS = st.one_of(NUMBERS, STRINGS, st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
KEYS = st.one_of(st.text(max_size=8), st.sampled_from(["name", "weight", "layers", "image", 1, None, True, 1.5]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS, inner, max_size=3)),
                      max_leaves=8)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``node``: keys of mappings and indices of lists."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, prefix + (index,))
    return found


def fresh(draw: Any, strategy: st.SearchStrategy) -> Any:
    """A copy of what ``strategy`` draws: sampled_from hands out the same list (``["conv1_1"]``) every time, and
    a later mutation appending to it would change what the next example draws (FlakyStrategyDefinition)."""
    return copy.deepcopy(draw(strategy))


def mutate(data: dict, draw: Any) -> dict:
    """One random change at a random path: replace, delete, add a key, rename a key, or wrap the value."""
    path = draw(st.sampled_from(paths(data)[1:]))
    parent = data
    for token in path[:-1]:
        parent = parent[token]
    last, action = path[-1], draw(st.sampled_from(["tweak", "tweak", "replace", "delete", "add", "rename", "wrap",
                                                    "unwrap"]))
    if action == "tweak":  # a value of about the same kind, such as a path that cannot be opened for a path
        parent[last] = fresh(draw, STRINGS if isinstance(parent[last], str) else NUMBERS)
    elif action == "replace":
        parent[last] = fresh(draw, VALUES)
    elif action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(KEYS)] = fresh(draw, VALUES)
    elif action == "add":
        parent.append(fresh(draw, VALUES))
    elif action == "rename" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = parent.pop(last)
    elif action == "wrap":
        parent[last] = draw(st.sampled_from([[parent[last]], {"name": parent[last]}, {str(last): parent[last]}]))
    elif action == "unwrap" and isinstance(parent[last], (list, dict)) and parent[last]:
        items = parent[last] if isinstance(parent[last], list) else list(parent[last].values())
        parent[last] = items[0]
    return data


@st.composite
def mutated_recipes(draw: Any) -> dict:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        data = mutate(data, draw)
    return data


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe's folder, holding the two images it names."""
    folder = tmp_path_factory.mktemp("fuzz")
    for name in ("content.png", "style.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / name)
    (folder / "folder").mkdir()
    (folder / "loop").symlink_to(folder / "loop")
    return folder


def test_the_base_recipe_is_valid(folder: Path) -> None:
    assert recipe_from_dict(BASE, base_dir=folder).steps == 10


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_recipes())
def test_mutated_recipes_raise_nothing_but_user_errors(folder: Path, data: dict) -> None:
    try:
        recipe_from_dict(data, base_dir=folder)
    except UserError:
        pass


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(["".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in p).lstrip(".")
                             for p in paths(BASE)[1:]]), value=VALUES)
def test_overrides_raise_nothing_but_user_errors(folder: Path, key: str, value: Any) -> None:
    try:
        recipe_from_dict(BASE, base_dir=folder, overrides={key: value})
    except UserError:
        pass
