"""``stylefw batch``: the job list. A grid of runs (contents × styles × values of recipe keys), each job named
and identified so that a batch can be run again and pick up where it stopped.

A job is one run of the recipe with one content, one style and one value of each ``--grid`` key. Its
**id** is a hash of its resolved recipe, with each input named by the sha256 of its bytes rather than by
its path, and without the keys that never change a pixel (where the output goes, the device, how often
files are written, how memory is spent). The same work therefore has the same id on any machine and
whatever order the command's arguments came in. :mod:`~stylefw.tools.batch.manifest` records what became of
each job, and :mod:`~stylefw.tools.batch.runner` runs them.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ...contracts.recipe import IMAGE_SUFFIXES, Recipe, is_url
from ...engine.files import sidecar_path
from ...engine.image import fetch
from ...errors import RecipeError, UserError
from ...hooks.registry import Registry
from ...recipe.load import load_recipe

__all__ = ["Job", "Sweep", "VOLATILE", "expand_inputs", "parse_grid", "plan_jobs", "job_id", "shard"]

# keys that say where and how often files are written, which device runs the job, or how a step spends
# memory: none changes a pixel (beyond float rounding across devices), so none is part of a job's id
VOLATILE = ("output", "device", "save_every", "checkpoint_every", "memory", "tile")
# characters a file name keeps as they are; anything else becomes "_", and brackets vanish (losses1.weight)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class Sweep:
    """``--grid KEY=V1,V2,...``: a recipe key and the values, as written, that the jobs sweep it over."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """One run of the batch: its place in the job list, its id, its file name and what it is made of."""

    index: int
    id: str
    name: str
    grid: tuple[tuple[str, str], ...]
    recipe: Recipe
    overrides: tuple[str, ...] = ()

    @property
    def content(self) -> str:
        return self.recipe.content.source

    @property
    def style(self) -> str:
        """The style's name, or the blend's (``a+b``)."""
        return _style_label(self.recipe)

    @property
    def output(self) -> Path:
        return self.recipe.output

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.recipe.output)

    def describe(self) -> dict[str, Any]:
        """What the manifest says of the job besides its outcome."""
        return {"id": self.id, "index": self.index, "name": self.name, "output": str(self.output),
                "content": self.content, "style": [ref.source for ref in self.recipe.styles],
                "grid": dict(self.grid), "overrides": list(self.overrides)}


def expand_inputs(patterns: Sequence[str], key: str) -> list[str]:
    """Each pattern's image files: a file or URL as given, a folder's images, a glob's matches; sorted, no repeats.

    ``key`` (``--content``, ``--style``) names the option in the error for a pattern that finds nothing.
    """
    found: dict[str, None] = {}
    for pattern in patterns:
        if is_url(pattern):
            found[pattern] = None
            continue
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = [str(child) for child in sorted(path.iterdir())
                       if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES]
        elif glob.has_magic(pattern):
            matches = [match for match in sorted(glob.glob(str(path), recursive=True))
                       if Path(match).is_file() and Path(match).suffix.lower() in IMAGE_SUFFIXES]
        else:
            matches = [str(path)] if path.is_file() else []
        if not matches:
            what = "folder has no .png, .jpg, .jpeg or .webp images" if path.is_dir() else (
                "pattern matches no image" if glob.has_magic(pattern) else "file does not exist")
            raise UserError(f"{key} {pattern}: the {what}", hint="give image files, folders of images or globs "
                                                                  "such as 'photos/*.jpg' (quoted)")
        found.update(dict.fromkeys(matches))
    return sorted(found)


def parse_grid(texts: Sequence[str]) -> list[Sweep]:
    """``--grid`` values, sorted by key so that the flags' order does not matter; values keep their order.

    Values are split at commas outside brackets, so ``--grid 'scales=[128,256],[256,512]'`` has two.
    """
    grids: dict[str, Sweep] = {}
    for text in texts:
        key, equals, values = text.partition("=")
        key = key.strip()
        if not equals or not key or not values.strip():
            raise UserError(f"--grid {text}: expected KEY=VALUE1,VALUE2,...",
                            hint="for example --grid losses[1].weight=1e3,1e4,1e5")
        if key in grids:
            raise UserError(f"--grid {key} is given twice", hint="list all of its values in one --grid")
        grids[key] = Sweep(key, tuple(_split_values(values)))
    return [grids[key] for key in sorted(grids)]


def _split_values(text: str) -> list[str]:
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if "" in values:
        raise UserError(f"--grid value list '{text}' has an empty value", hint="remove the extra comma")
    return values


def plan_jobs(recipe_path: str | Path, overrides: Sequence[Any], contents: Sequence[str], styles: Sequence[str],
              grids: Sequence[Sweep], out: Path, suffix: str = ".png", registry: Registry | None = None) -> list[Job]:
    """Every job of the batch, in a fixed order (content, then style, then each grid key's values), each with
    its resolved recipe, its id and a file name in ``out`` that no other job has."""
    resolved = []
    for content, style in itertools.product(contents or [None], styles or [None]):
        for values in itertools.product(*(grid.values for grid in grids)):
            grid = tuple((spec.key, value) for spec, value in zip(grids, values))
            inputs = ([("content", content)] if content else []) + ([("style", style)] if style else [])
            resolved.append((_job_recipe(recipe_path, [*overrides, *inputs], grid, registry), grid))
    digests: dict[str, str] = {}  # each input is read once, however many jobs use it
    ids = [job_id(recipe, digests) for recipe, _ in resolved]
    if len(set(ids)) < len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"two jobs of the batch are the same work (id {repeated[:12]}): the same content, style "
                        "and recipe", hint="remove the repeated input or --grid value")
    names = [_name(recipe, grid) for recipe, grid in resolved]
    # a name shared by two jobs (photos with one name in two folders) gets each job's id to tell them apart
    names = [f"{name}-{ident[:8]}" if names.count(name) > 1 else name for name, ident in zip(names, ids)]
    given = tuple(str(item) if isinstance(item, str) else f"{item[0]}={item[1]}" for item in overrides)
    return [Job(index, ident, name, grid, dataclasses.replace(recipe, output=(out / f"{name}{suffix}").resolve()),
                given + tuple(f"{key}={value}" for key, value in grid))
            for index, ((recipe, grid), ident, name) in enumerate(zip(resolved, ids, names))]


def _job_recipe(recipe_path: str | Path, overrides: list[Any], grid: tuple[tuple[str, str], ...],
                registry: Registry | None) -> Recipe:
    """The recipe with ``overrides`` and the job's grid values; a problem with a grid value names ``--grid``."""
    try:
        return load_recipe(recipe_path, [*overrides, *(f"{key}={value}" for key, value in grid)], registry=registry)
    except RecipeError as exc:
        keys = {f"--set {key}": f"--grid {key}" for key, _ in grid}
        values = ", ".join(f"{key}={value}" for key, value in grid)
        problems = [replace(problem, path=keys.get(problem.path, problem.path)) for problem in exc.problems]
        raise RecipeError(problems, source=exc.source,
                          hint=f"{exc.hint} (the job with --grid values {values})" if grid else exc.hint) from None


def job_id(recipe: Recipe, digests: dict[str, str] | None = None) -> str:
    """The sha256 (hex, 16 characters) of ``recipe`` with its inputs named by their bytes' sha256, without
    the ``VOLATILE`` keys. ``digests`` caches each input's digest, by its source."""
    digests = {} if digests is None else digests
    for ref in (recipe.content, *recipe.styles):
        if ref.source not in digests:
            digests[ref.source] = _digest(ref.source)
    data = {key: value for key, value in recipe.data.items() if key not in VOLATILE}
    data["content"] = {**data["content"], "image": digests[recipe.content.source]}
    data["style"] = [{**style, "image": digests[ref.source]} for style, ref in zip(data["style"], recipe.styles)]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _digest(source: str) -> str:
    path = fetch(source) if is_url(source) else source
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise UserError(f"cannot read {source}: {exc.strerror or exc}") from exc


def _stem(source: str) -> str:
    return Path(source.split("?")[0]).stem


def _style_label(recipe: Recipe) -> str:
    return "+".join(_stem(ref.source) for ref in recipe.styles)


def _name(recipe: Recipe, grid: Sequence[tuple[str, str]]) -> str:
    """``photo--starry_night--losses1.weight=1e4``: readable, and safe as a file name on any system."""
    parts = [_stem(recipe.content.source), _style_label(recipe)] + [f"{key}={value}" for key, value in grid]
    return "--".join(_UNSAFE.sub("_", part.replace("[", "").replace("]", "")).strip("_") or "_" for part in parts)


def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """Round-robin: rank r takes jobs r, r + world, r + 2·world, ... of the list."""
    return list(jobs[rank::world])
