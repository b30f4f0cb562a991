"""Recipes: load YAML (safe loading only, see :mod:`stylefw.yaml_input`), apply overrides, validate everything at once."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import Problem, RecipeError, UserError
from .overrides import apply_overrides, coerce_numbers, override_keys
from .paths import PathProblem, existing_file, shown
from .registry import Registry, default_registry, suggest
from .scales import LAYER_FADE, ScaleSpec, Scales, plan
from .yaml_input import MAX_BYTES, LimitError, load_yaml

__all__ = [
    "ImageRef",
    "BackboneSpec",
    "LossSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "Recipe",
    "TileSpec",
    "builtin_recipes",
    "is_url",
    "find_recipe",
    "load_recipe",
    "recipe_from_dict",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
LIMIT_HINT = "a recipe is a few dozen keys: remove the repetition, or write the values out without aliases"


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
    """Which backbone to build and the options to build it with: the recipe's keys, files resolved."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def weights(self) -> Any:
        """The ``weights`` option (``imagenet``, ``random`` or a path for VGG), or None for a backbone without one."""
        return self.options.get("weights")

    @property
    def pooling(self) -> Any:
        """The ``pooling`` option (``max`` or ``avg`` for VGG), or None for a backbone without one."""
        return self.options.get("pooling")


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
class TileSpec:
    """The recipe's ``tile``: the inner tiles' side in pixels, or ``auto`` (from the memory budget), and the margin
    around each (None: the least that keeps the gradient exact)."""

    size: int | str
    margin: int | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe; ``data`` gives the same recipe as a plain mapping, with defaults filled in."""

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
    source: str | None = None
    scales: Scales = 1
    min_size: int = 128
    average: float = 0.0
    # (full, none): spans of a stage's short side where a style layer's weight starts and ends fading; None: off
    layer_fade: tuple[float, float] | None = LAYER_FADE
    checkpoint_every: int = 0
    # keep: the backbone keeps its activations for the backward pass; checkpoint: it recomputes them
    memory: str = "keep"
    # None: one pass over the picture; else the tiles it is cut into for an exact gradient (stylefw.tiling)
    tile: TileSpec | None = None
    # fp32 | tf32 | bf16: the backbone's arithmetic (stylefw.precision)
    precision: str = "fp32"
    # whether the backbone runs through torch.compile (once per picture or tile shape)
    compile: bool = False

    @property
    def data(self) -> dict[str, Any]:
        """The recipe as a plain mapping, keys in the schema's order, as outputs record it (a fresh copy each time)."""
        return {
            "version": 1,  # the only version this stylefw reads
            "content": _image_dict(self.content, weighted=False),
            "style": [_image_dict(ref) for ref in self.styles],
            "size": self.size,
            "style_scale": self.style_scale,
            "backbone": {"name": self.backbone.name, **copy.deepcopy(dict(self.backbone.options))},
            "losses": [{"name": loss.name, "weight": loss.weight, **copy.deepcopy(dict(loss.options))}
                       for loss in self.losses],
            "optimizer": _optimizer_dict(self.optimizer),
            "steps": self.steps,
            "scales": [dataclasses.asdict(stage) for stage in self.scales] if isinstance(self.scales, tuple)
            else self.scales,
            "min_size": self.min_size,
            "average": self.average,
            "layer_fade": list(self.layer_fade) if self.layer_fade else False,
            "init": self.init,
            "seed": self.seed,
            "device": self.device,
            "output": str(self.output) if self.output else None,
            "save_every": self.save_every,
            "checkpoint_every": self.checkpoint_every,
            "memory": self.memory,
            "tile": _tile_data(self.tile),
            "precision": self.precision,
            "compile": self.compile,
            "color": {key: value for key, value in dataclasses.asdict(self.color).items() if value is not None},
            "score": self.score,
        }

    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any], *,
                       registry: Registry | None = None) -> "Recipe":
        """A new recipe: this one's mapping with ``overrides`` applied, validated once against ``registry``."""
        return recipe_from_dict(self.data, overrides=overrides, source=self.source, registry=registry)

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


def _tile_data(spec: TileSpec | None) -> Any:
    if spec is None:
        return "off"
    if spec.size == "auto" and spec.margin is None:
        return "auto"
    return {"size": spec.size, "margin": "auto" if spec.margin is None else spec.margin}


def _image_dict(ref: ImageRef, *, weighted: bool = True) -> dict[str, Any]:
    # content takes no weight key: writing one would make the resolved recipe fail validation
    weight = {"weight": ref.weight} if weighted else {}
    return {"image": ref.source, **weight, **({"sha256": ref.sha256} if ref.sha256 else {})}


def _optimizer_dict(spec: OptimizerSpec) -> dict[str, Any]:
    # no schedule key for a constant rate, so recipes without one resolve exactly as before schedules existed
    schedule = {"schedule": {"name": spec.schedule.name, **spec.schedule.options}} if spec.schedule else {}
    return {"name": spec.name, **copy.deepcopy(dict(spec.options)), **schedule}


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL rather than a file path."""
    return source.startswith(("http://", "https://"))


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
    from .checks import under
    from .schema import expand, normalise, validate

    raw = coerce_numbers(copy.deepcopy(dict(data)))
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    problems = apply_overrides(raw, items, expand=expand)
    given = override_keys(items)
    for key, value in (defaults or {}).items():
        if raw.get(key) is None:
            raw[key] = value
            given.append(key)
    recipe, found = validate(normalise(raw), base_dir=Path(base_dir) if base_dir is not None else None,
                             overridden=given, source=source, registry=registry or default_registry())
    if problems or found:
        # a problem only in what the command line set is not fixed by editing the file
        from_file = any(not (problem.path.startswith("--set ") or under(problem.path, given))
                        for problem in problems + found)
        raise RecipeError(problems + found, source=source,
                          hint=None if from_file else "fix the values given on the command line")
    return recipe
