"""Recipes: load YAML (``yaml.safe_load`` only), apply overrides, validate everything at once."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import Problem, RecipeError, UserError
from .overrides import apply_overrides, coerce_numbers
from .registry import Registry, default_registry, suggest
from .scales import ScaleSpec, Scales, plan

__all__ = [
    "ImageRef",
    "BackboneSpec",
    "LossSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "Recipe",
    "builtin_recipes",
    "is_url",
    "find_recipe",
    "load_recipe",
    "recipe_from_dict",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class ImageRef:
    """An input image: an absolute path or an http(s) URL, its blend weight and optional sha256."""

    source: str
    weight: float = 1.0
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return is_url(self.source)


@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone to build and the keyword arguments to build it with."""

    name: str
    weights: str
    pooling: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossSpec:
    """One loss term: its registry name, weight, options (layers resolved) and a display label."""

    name: str
    weight: float
    options: Mapping[str, Any]
    label: str


@dataclass(frozen=True)
class ScheduleSpec:
    """Which learning-rate schedule to use and its options (the engine adds ``total_steps``)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimizer to use, the keyword arguments to pass it, and its schedule (None: a constant rate)."""

    name: str
    options: Mapping[str, Any]
    schedule: ScheduleSpec | None = None


@dataclass(frozen=True)
class ColorSpec:
    """Colour control: ``none``, ``luminance``, ``histogram`` (with ``method``) or ``swap`` (with ``space``)."""

    mode: str = "none"
    method: str | None = None
    space: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe; ``data`` is the same recipe as a plain dict, with defaults filled in."""

    content: ImageRef
    styles: tuple[ImageRef, ...]
    size: int
    style_scale: float
    backbone: BackboneSpec
    losses: tuple[LossSpec, ...]
    optimizer: OptimizerSpec
    steps: int
    init: str
    seed: int
    device: str
    output: Path | None
    save_every: int
    color: ColorSpec
    score: bool
    data: Mapping[str, Any]
    source: str | None = None
    scales: Scales = 1
    min_size: int = 128
    average: float = 0.0

    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any]) -> "Recipe":
        """A new recipe with ``overrides`` applied to this one and validated again."""
        return recipe_from_dict(copy.deepcopy(dict(self.data)), overrides=overrides, source=self.source)

    @property
    def stages(self) -> tuple[ScaleSpec, ...]:
        """The sizes this recipe renders at, smallest first, with the steps taken at each."""
        return plan(self.scales, size=self.size, steps=self.steps, min_size=self.min_size)

    @property
    def total_steps(self) -> int:
        """Optimizer steps over every stage."""
        return sum(stage.steps for stage in self.stages)

    @property
    def layers(self) -> list[str]:
        """Every backbone layer any loss reads, in the order they first appear."""
        seen: dict[str, None] = {}
        for loss in self.losses:
            seen.update(dict.fromkeys(loss.options.get("layers", ())))
        return list(seen)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def builtin_recipes() -> list[str]:
    """File names of the recipes shipped in ``stylefw.recipes``."""
    return sorted(item.name for item in resources.files("stylefw.recipes").iterdir() if item.name.endswith(".yaml"))


def find_recipe(name: str | Path) -> Path:
    """A recipe path: ``name`` itself when it exists, else the built-in recipe of that name."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    candidates = [str(name), f"{name}.yaml"]
    for candidate in candidates:
        if candidate in builtin_recipes():
            return Path(str(resources.files("stylefw.recipes") / candidate))
    builtins = builtin_recipes()
    raise UserError(
        f"recipe '{name}' not found: no such file, and no built-in recipe of that name{suggest(name, builtins)}",
        hint=f"built-in recipes: {', '.join(builtins)}",
    )


def load_recipe(
    path: str | Path,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    *,
    registry: Registry | None = None,
) -> Recipe:
    """Load and validate a recipe file (or a built-in recipe by name), applying ``overrides`` first."""
    path = find_recipe(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read recipe: {exc.strerror or exc}", context=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise UserError("recipe is not UTF-8 text", context=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"invalid YAML: {problem}", context=where, hint="check indentation and quoting") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([Problem("", f"a recipe must be a mapping of keys, not {type(data).__name__}")], source=str(path))
    return recipe_from_dict(data, overrides=overrides, base_dir=path.parent, source=str(path), registry=registry)


def recipe_from_dict(
    data: Mapping[str, Any],
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    base_dir: str | Path | None = None,
    source: str | None = None,
    registry: Registry | None = None,
) -> Recipe:
    """Validate a recipe given as a dict.

    Relative input paths in ``data`` resolve against ``base_dir`` (the recipe's folder; default the
    current directory), and those in ``overrides`` against the current directory, as a user typing
    them expects.
    """
    from .schema import anchor_paths, normalise, validate

    data = normalise(coerce_numbers(copy.deepcopy(dict(data))))
    anchor_paths(data, Path(base_dir) if base_dir is not None else Path.cwd())
    problems = apply_overrides(data, overrides)
    data = normalise(data)
    recipe, found = validate(data, base_dir=Path.cwd(), source=source, registry=registry or default_registry())
    if problems or found:
        raise RecipeError(problems + found, source=source)
    return recipe
