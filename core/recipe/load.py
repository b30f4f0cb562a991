"""Recipes from files and mappings: load YAML (safe loading only, see :mod:`~stylefw.recipe.yaml_input`), apply
overrides, validate everything at once (:mod:`~stylefw.recipe.schema`)."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..contracts.recipe import Recipe
from ..errors import Problem, RecipeError, UserError
from ..hooks.names import suggest
from ..hooks.registry import Registry, default_registry
from .overrides import apply_overrides, coerce_numbers, override_keys
from .paths import PathProblem, existing_file, shown
from .schema import expand, normalise, validate
from .validator import under
from .yaml_input import MAX_BYTES, LimitError, load_yaml

__all__ = ["builtin_recipes", "find_recipe", "load_recipe", "recipe_from_dict", "override"]

LIMIT_HINT = "a recipe is a few dozen keys: remove the repetition, or write the values out without aliases"


def builtin_recipes() -> list[str]:
    """File names of the recipes shipped in ``stylefw.recipes``."""
    return sorted(item.name for item in resources.files("stylefw.recipes").iterdir() if item.name.endswith(".yaml"))


def find_recipe(name: str | Path) -> Path:
    """A recipe path: ``name`` itself when it exists, else the built-in recipe of that name."""
    try:
        existing_file(str(name), Path.cwd())
        return Path(name).expanduser()  # as the user named it, which is how messages show it
    except PathProblem as exc:
        problem = exc
    candidates = [str(name), f"{name}.yaml"]
    for candidate in candidates:
        if candidate in builtin_recipes():
            return Path(str(resources.files("stylefw.recipes") / candidate))
    builtins = builtin_recipes()
    if not problem.missing:  # the file is there but unusable, or the path is malformed
        raise UserError(f"recipe file {problem}")
    raise UserError(
        f"recipe '{shown(str(name))}' not found: no such file, and no built-in recipe of that name"
        f"{_closest_builtin(str(name), builtins)}",
        hint=f"built-in recipes: {', '.join(builtins)}",
    )


def _closest_builtin(name: str, builtins: list[str]) -> str:
    """A did-you-mean among the built-in recipes, compared without ``.yaml`` (which would dilute a typo)."""
    stems = [builtin.removesuffix(".yaml") for builtin in builtins]
    close = suggest(name.removesuffix(".yaml"), stems)
    return close.replace("?)", ".yaml?)")


def load_recipe(
    path: str | Path,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    *,
    registry: Registry | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Recipe:
    """Load and validate a recipe file (or a built-in recipe by name), applying ``overrides`` first.

    ``defaults`` fill the keys that the file and the overrides leave empty, as ``stylefw recipe`` names
    the output after the recipe.
    """
    path = find_recipe(path)
    try:
        data = load_yaml(_read_text(path))
    except OSError as exc:
        raise UserError(f"cannot read recipe: {exc.strerror or exc}", context=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise UserError("recipe is not UTF-8 text", context=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, LimitError):
            raise UserError(f"the recipe {problem}", context=where, hint=LIMIT_HINT) from exc
        hint = "keep one of the two" if "duplicate key" in problem else "check indentation and quoting"
        raise UserError(f"invalid YAML: {problem}", context=where, hint=hint) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([Problem("", f"a recipe must be a mapping of keys, not {type(data).__name__}")], source=str(path))
    if {"recipe", "trace", "stylefw"} <= data.keys():  # what save_result writes beside an output
        raise UserError("this is an output's metadata file, not a recipe: its 'recipe' key holds the recipe "
                        "that made the output", context=str(path),
                        hint="run the recipe file itself, or copy the 'recipe' value into a new .yaml file")
    return recipe_from_dict(data, overrides=overrides, base_dir=path.parent, source=str(path), registry=registry,
                            defaults=defaults)


def _read_text(path: Path) -> str:
    """The recipe's text; a file past the size cap is refused before it is read."""
    if path.stat().st_size > MAX_BYTES:
        raise LimitError(None, None, f"is {path.stat().st_size} bytes long; a recipe may be at most {MAX_BYTES}", None)
    return path.read_text(encoding="utf-8")


def recipe_from_dict(
    data: Mapping[str, Any],
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    base_dir: str | Path | None = None,
    source: str | None = None,
    registry: Registry | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Recipe:
    """Validate a recipe given as a mapping, in one pass: overrides applied, shorthands expanded, every key checked.

    Relative input paths in ``data`` resolve against ``base_dir`` (the recipe's folder; default the
    current directory), and those in ``overrides`` and ``defaults`` against the current directory, as a
    user typing them expects. ``defaults`` fill the keys left empty.
    """
    raw = coerce_numbers(copy.deepcopy(dict(data)))
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    problems = apply_overrides(raw, items, expand=expand)
    given = override_keys(items)
    for key, value in (defaults or {}).items():
        if raw.get(key) is None:
            raw[key] = value
            given.append(key)
    recipe, found, parts = validate(normalise(raw), base_dir=Path(base_dir) if base_dir is not None else None,
                                    overridden=given, source=source, registry=registry or default_registry())
    if problems or found:
        # a problem only in what the command line set is not fixed by editing the file
        from_file = any(not (problem.path.startswith("--set ") or under(problem.path, given))
                        for problem in problems + found)
        raise RecipeError(problems + found, source=source,
                          hint=None if from_file else "fix the values given on the command line", parts=parts)
    return recipe


def override(recipe: Recipe, overrides: Iterable[str] | Mapping[str, Any], *,
             registry: Registry | None = None) -> Recipe:
    """A new recipe: ``recipe``'s mapping with ``overrides`` applied, validated once against ``registry``."""
    return recipe_from_dict(recipe.data, overrides=overrides, source=recipe.source, registry=registry)
