"""The recipe schema: expand shorthands, then check every key against its declaration on ``Recipe``
(:mod:`stylefw.contracts.recipe`) and collect every problem.

A key declared with a plain type (``Annotated[int, Range(16, 16384)]``, a ``Literal``, ``bool``) is checked
against it, as plugins' options are; a key declared ``read=True`` is read by the ``read_<field>`` method
(``read_tile``), here or in :mod:`~stylefw.recipe.sections` for the sections that name a plugin
(backbone, losses, optimizer).
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any, Iterable

from ..contracts.recipe import (COLOR_MODES, DEFAULT_METHOD, DEFAULT_SPACE, IMAGE_SUFFIXES, MATCH_METHODS, REQUIRED,
                                SWAP_SPACES, ColorSpec, ImageRef, Recipe, TileSpec, is_url, keys)
from ..contracts.scales import ScaleSpec, Scales
from ..errors import Problem
from ..hooks.registry import Registry
from .paths import PathProblem, absolute, existing_file, url_problem
from .sections import PluginSections
from .validator import described

__all__ = ["DEFAULTS", "expand", "normalise", "validate"]

# each key's default as a recipe writes it (REQUIRED: none), in the declared order
DEFAULTS: dict[str, Any] = {declared.name or item.name: declared.default for item, declared in keys()}
FP16_REFUSAL = ("fp16 is not supported: the unnormalised Gram sums of a large picture overflow its largest value, "
                "65504; use bf16, which has fp32's range")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# section -> the key a bare string stands for: ``backbone: mynet`` is ``backbone: {name: mynet}``
NAMED_BY = {"content": "image", "backbone": "name", "optimizer": "name", "optimizer.schedule": "name",
            "color": "mode"}


def expand(path: str, value: Any) -> Any:
    """The full form of the section at dotted ``path`` when ``value`` is a shorthand, else ``value`` itself."""
    if isinstance(value, str) and path in NAMED_BY:
        return {NAMED_BY[path]: value}
    if path == "style":
        styles = [value] if isinstance(value, (str, dict)) else value
        return [expand("style[]", item) for item in styles] if isinstance(styles, list) else styles
    if re.fullmatch(r"style\[\d*\]", path) and isinstance(value, str):
        return {"image": value}
    return value


def normalise(data: dict) -> dict:
    """Expand every shorthand (``style: a.jpg``, ``backbone: mynet``, ``schedule: cosine``) in place."""
    for key in ("content", "style", "backbone", "optimizer", "color"):
        if key in data:
            data[key] = expand(key, data[key])
    optimizer = data.get("optimizer")
    if isinstance(optimizer, dict) and "schedule" in optimizer:
        optimizer["schedule"] = expand("optimizer.schedule", optimizer["schedule"])
    return data


def lacks(factory: Any, *members: str) -> bool:
    """Whether a backbone class surely lacks one of ``members``. A factory that is a function says nothing
    about the backbones it builds: the run checks those once built."""
    return isinstance(factory, type) and not all(hasattr(factory, member) for member in members)


def validate(data: dict, *, base_dir: Path | None, overridden: Iterable[str] = (), source: str | None,
             registry: Registry) -> tuple[Recipe | None, list[Problem], dict[str, Any]]:
    """Check normalised ``data`` against the schema and the registry; returns the recipe, every problem found, and
    what validated (by field name, the losses by index), for the checks that build plugins to go on with.

    Relative paths resolve against ``base_dir`` (None: the current directory), except under the
    ``overridden`` keys, which resolve against the current directory.
    """
    schema = _Schema(registry, base_dir=base_dir, overridden=overridden)
    # the recipe remembers its file, so that overriding it again and error messages can name it
    recipe = schema.recipe(data, source)
    parts = {name: value for name, value in schema.values.items() if value is not None}
    if "losses" in schema.parts:  # read_losses keeps each valid loss by index, even when another is not
        parts["losses"] = schema.parts["losses"]
    return recipe, schema.problems, parts


class _Schema(PluginSections):
    """Walks a recipe mapping key by key, in the declared order, recording every problem with its dotted path.

    ``values`` holds the keys read so far, by field name: a key may depend on one declared before it (the
    losses' layers on the backbone, ``scales`` on ``size`` and ``steps``, ``output`` on the inputs).
    """

    def recipe(self, data: dict, source: str | None) -> Recipe | None:
        declared = {key.name or item.name: (item, key) for item, key in keys()}
        self.unknown_keys("", data, list(declared))
        for name, (_, key) in declared.items():
            if key.default is REQUIRED and data.get(name) is None:
                self.add(name, f"missing required key '{name}'")
        types = typing.get_type_hints(Recipe, include_extras=True)
        for name, (item, key) in declared.items():
            value = data.get(name, None if key.default is REQUIRED else copy.deepcopy(key.default))
            if value is None and key.default is REQUIRED:
                self.values[item.name] = None  # reported once above, not again as a bad value
            elif key.read:
                self.values[item.name] = getattr(self, f"read_{item.name}")(name, value, types[item.name])
            else:
                self.values[item.name] = self.plain(name, value, types[item.name])
        if self.problems:
            return None
        return Recipe(**self.values, source=source)

    def plain(self, path: str, value: Any, annotation: Any) -> Any:
        """``value`` checked against its key's type alone, and kept as written (2, not 2.0). A number a float key
        cannot take (infinite, or past float32) says so before any range does; a whole number's range comes first."""
        before = len(self.problems)
        base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
        if not (base is float or isinstance(value, float)) or self.finite(path, value):
            value = self.fit(path, value, annotation)
        return value if len(self.problems) == before else None

    def read_version(self, path: str, value: Any, annotation: Any) -> int | None:
        if value == "1":  # quoted: the same version, but the wrong type
            self.add(path, "expected the whole number 1, got text '1'; write version: 1 without quotes")
        elif value not in typing.get_args(annotation) or isinstance(value, bool):
            self.add(path, f"unsupported recipe version {value!r}; this stylefw reads version 1")
        else:
            return value
        return None

    def read_content(self, path: str, value: Any, annotation: Any) -> ImageRef | None:
        return self.image(path, value, weighted=False)

    def read_device(self, path: str, value: Any, annotation: Any) -> str | None:
        if isinstance(value, str) and DEVICE.match(value):
            return value
        self.add(path, f"'{value}' is not a device; use auto, cpu, cuda, cuda:N or mps")
        return None

    def read_memory(self, path: str, value: Any, annotation: Any) -> str | None:
        memory = self.choice(path, value, typing.get_args(annotation))
        backbone = self.values.get("backbone")
        if memory == "checkpoint" and backbone is not None:
            factory = self.registry.get("backbone", backbone.name).factory
            if lacks(factory, "checkpointing"):  # the backbone's own switch: only it knows its segments
                self.add(path, f"backbone '{backbone.name}' cannot recompute its activations (it has no "
                               "'checkpointing' switch); use memory: keep")
        return memory

    def read_precision(self, path: str, value: Any, annotation: Any) -> str | None:
        if value in ("fp16", "float16", "half"):
            self.add(path, FP16_REFUSAL)
            return None
        return self.choice(path, value, typing.get_args(annotation))

    def read_tile(self, path: str, value: Any, annotation: Any) -> TileSpec | None:
        """``off`` (None), ``auto``, or ``{size: PIXELS, margin: PIXELS | auto}``: cut each stage into tiles."""
        backbone = self.values.get("backbone")
        if value is False or value == "off" or value is None:
            return None
        if value == "auto":
            spec = TileSpec("auto")
        elif isinstance(value, dict):
            self.unknown_keys("tile", value, ["size", "margin"])
            given_size, given_margin = value.get("size", "auto"), value.get("margin", "auto")
            size = "auto" if given_size == "auto" else self.integer("tile.size", given_size, 64, 16384)
            margin = None if given_margin == "auto" else self.integer("tile.margin", given_margin, 0, 16384)
            if size is None or (margin is None and given_margin != "auto"):  # a problem was recorded
                return None
            spec = TileSpec(size, margin)
        else:
            self.add("tile", f"expected off, auto or {{size: 512}}, got {described(value)}")
            return None
        if self.values.get("octave_size"):
            self.add("tile", "tiles cannot yet compare the picture at octaves (octave_size): use tile: off, or "
                             "octave_size: off")
        if backbone is not None:
            factory = self.registry.get("backbone", backbone.name).factory
            if lacks(factory, "stride", "receptive_field"):
                self.add("tile", f"backbone '{backbone.name}' does not say its layers' stride and receptive_field, "
                                 "which exact tiles need; use tile: off")
        return spec

    def read_octave_size(self, path: str, value: Any, annotation: Any) -> int | None:
        """``off`` (None), or the long edge the losses also compare the picture at (``stylefw.engine.octaves``)."""
        if value is False or value == "off" or value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add("octave_size", f"expected off or a long edge in pixels such as 256, got {described(value)}")
            return None
        return self.integer("octave_size", value, 16, 16384)

    def read_layer_fade(self, path: str, value: Any, annotation: Any) -> tuple[float, float] | None:
        """``off`` (None), or [full, none]: the spans of the short side where a style layer starts and ends fading."""
        if value is False or value == "off":
            return None
        if not isinstance(value, list) or len(value) != 2:
            self.add("layer_fade", f"expected off or two spans such as [0.25, 0.75], got {described(value)}")
            return None
        full, none = (self.number(f"layer_fade[{index}]", item, 0.0) for index, item in enumerate(value))
        if full is None or none is None:
            return None
        if not full < none:
            self.add("layer_fade", f"{value} does not fade: the first span (full weight up to) must be below the "
                                   "second (no weight from), such as [0.25, 0.75]")
        return full, none

    def read_scales(self, path: str, value: Any, annotation: Any) -> Scales | None:
        """``1``, ``auto``, or a list of ``{size, steps}`` stages growing to the recipe's ``size``."""
        size, steps = self.values.get("size"), self.values.get("steps")
        if value == 1 and not isinstance(value, bool) or value == "auto":
            return value
        if not isinstance(value, list) or not value:
            self.add("scales", f"expected 1, auto or a list of {{size: ..., steps: ...}}, got {described(value)}")
            return None
        stages = [self.stage(f"scales[{i}]", entry, steps) for i, entry in enumerate(value)]
        if None in stages:
            return None
        for index, (before, after) in enumerate(zip(stages, stages[1:]), 1):
            if after.size <= before.size:
                self.add(f"scales[{index}].size", f"{after.size} is not larger than the stage before ({before.size}); "
                         "sizes must increase")
        if size is not None and stages[-1].size != size:
            self.add(f"scales[{len(stages) - 1}].size", f"the last stage renders the output, so its size must be "
                     f"the recipe's size ({size}), not {stages[-1].size}")
        return tuple(stages)

    def stage(self, path: str, entry: Any, steps: int | None) -> ScaleSpec | None:
        if not self.mapping(path, entry):
            return None
        self.unknown_keys(path, entry, ["size", "steps"])
        if "size" not in entry:
            self.add(path, "missing required key 'size'")
            return None
        edge = self.integer(f"{path}.size", entry["size"], 16, 16384)
        count = self.integer(f"{path}.steps", entry["steps"], 1, 1_000_000) if "steps" in entry else steps
        return ScaleSpec(edge, count) if edge is not None and count is not None else None

    def image(self, path: str, entry: Any, *, weighted: bool) -> ImageRef | None:
        if not self.mapping(path, entry):
            return None
        allowed = ["image", "weight", "sha256"] if weighted else ["image", "sha256"]
        self.unknown_keys(path, entry, allowed)
        source = self.string(f"{path}.image", entry.get("image"))
        weight = self.number(f"{path}.weight", entry.get("weight", 1.0), 0.0) if weighted else 1.0
        sha256 = entry.get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and SHA256.match(sha256)):
            self.add(f"{path}.sha256", "expected 64 hexadecimal digits")
        if source is None or weight is None:
            return None
        if url_problem(source):
            self.add(f"{path}.image", url_problem(source))
            return None
        if not is_url(source):
            try:
                source = str(existing_file(source, self.anchor(f"{path}.image")))
            except PathProblem as exc:
                self.add(path, f"image file {exc}")
                return None
        return ImageRef(source, weight if weighted else None, sha256.lower() if isinstance(sha256, str) else None)

    def read_styles(self, path: str, value: Any, annotation: Any) -> tuple[ImageRef, ...] | None:
        if not isinstance(value, list) or not value:
            self.add("style", "expected an image path or URL, or a list of {image: ..., weight: ...}")
            return None
        styles = [self.image(f"style[{i}]", item, weighted=True) for i, item in enumerate(value)]
        if all(styles) and sum(style.weight for style in styles) <= 0:
            self.add("style", "at least one style weight must be above 0")
        return tuple(styles) if all(styles) else None

    def read_color(self, path: str, value: Any, annotation: Any) -> ColorSpec | None:
        if not self.mapping("color", value):
            return None
        mode = self.choice("color.mode", value.get("mode"), COLOR_MODES)
        # each mode's option: its choices and its default
        options = {"histogram": {"method": (MATCH_METHODS, DEFAULT_METHOD)},
                   "swap": {"space": (SWAP_SPACES, DEFAULT_SPACE)}}.get(mode, {})
        self.unknown_keys("color", value, ["mode", *options])
        chosen = {key: self.choice(f"color.{key}", value.get(key, default), choices)
                  for key, (choices, default) in options.items()}
        if mode is None or None in chosen.values():
            return None
        return ColorSpec(mode, **chosen)

    def read_output(self, path: str, value: Any, annotation: Any) -> Path | None:
        inputs = [self.values.get("content"), *(self.values.get("styles") or [])]
        if value is None:
            return None
        if self.string("output", value) is None:
            return None
        # outputs resolve against the current directory: a built-in recipe must not write into the package
        try:
            path = absolute(value, Path.cwd())
        except PathProblem as exc:
            self.add("output", f"output path {exc}")
            return None
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            self.add("output", f"unsupported output format '{path.suffix}'; use .png, .jpg, .jpeg or .webp")
            return None
        if any(ref is not None and not ref.is_url and Path(ref.source) == path for ref in inputs):
            self.add("output", f"{path} is also an input image; choose another output path so the input is kept")
            return None
        return path

