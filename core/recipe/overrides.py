"""``--set key.path=value`` overrides: dotted keys with list indices, values parsed as YAML."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

import yaml

from ..errors import Problem, RecipeError
from .yaml_input import load_yaml

__all__ = ["parse_key", "parse_value", "apply_overrides", "override_mapping", "override_keys", "coerce_numbers"]

_KEY = re.compile(r"^[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*$")
_TOKEN = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]")
# YAML 1.1 (PyYAML) reads 1e4 and 1.0e4 as strings; YAML 1.2 and every user reads them as numbers
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_key(key: str) -> list[str | int]:
    """``losses[1].weight`` -> ``["losses", 1, "weight"]``; ``ValueError`` for a malformed key."""
    if not _KEY.match(key):
        raise ValueError(f"malformed key '{key}' (expected something like optimizer.lr or losses[1].weight)")
    return [name if name else int(index) for name, index in _TOKEN.findall(key)]


def coerce_numbers(value: Any) -> Any:
    """Turn strings such as ``1e4`` into floats, recursively, as YAML 1.2 would have read them."""
    if isinstance(value, str) and _EXPONENT_FLOAT.match(value):
        return float(value)
    if isinstance(value, list):
        return [coerce_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: coerce_numbers(item) for key, item in value.items()}
    return value


def parse_value(text: str) -> Any:
    """A command-line value read as YAML, so ``0.05`` is a number and ``[conv1_1, conv2_1]`` a list."""
    try:
        return coerce_numbers(load_yaml(text))
    except yaml.YAMLError:
        return text


# expand(dotted_path, value) -> value: a section's full form, for an override that reaches into a shorthand
Expand = Callable[[str, Any], Any]


def apply_overrides(data: dict, overrides: Iterable[str] | Mapping[str, Any], *,
                    expand: Expand | None = None) -> list[Problem]:
    """Set each override in ``data`` in place; return a problem for each one that cannot be applied.

    ``expand`` turns a value that an override reaches into (``optimizer.schedule.floor`` into
    ``schedule: cosine``) into its full form first, so the raw recipe needs no normalising beforehand.
    """
    problems = []
    for item in _items(overrides):
        key = _key(item)
        try:
            key, value = item if isinstance(item, tuple) else _split(item)
            _set(data, parse_key(key), value, expand or _unchanged)
        except ValueError as exc:
            problems.append(Problem(f"--set {key}", str(exc)))
    return problems


def override_mapping(overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """The overrides as ``{dotted key: value}``; a RecipeError names each ``--set`` that is not key=value."""
    mapping, problems = {}, []
    for item in _items(overrides):
        try:
            key, value = item if isinstance(item, tuple) else _split(item)
        except ValueError as exc:
            problems.append(Problem(f"--set {_key(item)}", str(exc)))
            continue
        mapping[key] = value
    if problems:
        raise RecipeError(problems)
    return mapping


def override_keys(overrides: Iterable[str] | Mapping[str, Any]) -> list[str]:
    """The dotted key each override sets, such as ``losses[1].weight``, in order."""
    return [_key(item) for item in _items(overrides)]


def _items(overrides: Iterable[str] | Mapping[str, Any]) -> list[Any]:
    return list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)


def _key(item: str | tuple[str, Any]) -> str:
    return item[0] if isinstance(item, tuple) else item.partition("=")[0].strip()


def _unchanged(path: str, value: Any) -> Any:
    return value


def _split(assignment: str) -> tuple[str, Any]:
    key, equals, text = assignment.partition("=")
    if not equals:
        raise ValueError("expected key=value, for example --set optimizer.lr=0.05")
    return key.strip(), parse_value(text)


def _set(data: dict, path: list[str | int], value: Any, expand: Expand) -> None:
    node: Any = data
    for position, token in enumerate(path[:-1]):
        node = _child(node, token, path[position + 1], _dotted(path[: position + 1]), expand)
    _assign(node, path[-1], value, _dotted(path))


def _child(node: Any, token: str | int, next_token: str | int, where: str, expand: Expand) -> Any:
    if isinstance(token, int):
        _check_index(node, token, where)
    elif not isinstance(node, dict):
        raise ValueError(f"cannot set a key inside {where.rsplit('.', 1)[0] or 'the recipe'}: it is not a mapping")
    elif node.get(token) is None:
        node[token] = [] if isinstance(next_token, int) else {}
    node[token] = expand(where, node[token])
    return node[token]


def _assign(node: Any, token: str | int, value: Any, where: str) -> None:
    if isinstance(token, int):
        if isinstance(node, list) and token == len(node):
            node.append(value)
            return
        _check_index(node, token, where)
    elif not isinstance(node, dict):
        raise ValueError(f"cannot set {where}: its parent is not a mapping")
    node[token] = value


def _check_index(node: Any, index: int, where: str) -> None:
    if not isinstance(node, list):
        raise ValueError(f"{where}: not a list")
    if index >= len(node):
        raise ValueError(f"index {index} is out of range (the list has {len(node)} item{'s' * (len(node) != 1)})")


def _dotted(path: list[str | int]) -> str:
    return "".join(f"[{token}]" if isinstance(token, int) else f".{token}" for token in path).lstrip(".")
