"""The recipe schema: expand shorthands, then check every top-level key and collect every problem.

The sections that name a plugin (backbone, losses, optimizer) are checked in :mod:`stylefw.schema_plugins`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from .checks import described
from .color import COLOR_MODES, DEFAULT_METHOD, DEFAULT_SPACE, MATCH_METHODS, SWAP_SPACES
from .errors import Problem
from .recipe import ColorSpec, ImageRef, Recipe, TileSpec, IMAGE_SUFFIXES, is_url
from .paths import PathProblem, absolute, existing_file, url_problem
from .registry import Registry
from .scales import LAYER_FADE, ScaleSpec, Scales
from .schema_plugins import DEFAULT_BACKBONE, DEFAULT_OPTIMIZER, PluginSections

__all__ = ["DEFAULTS", "expand", "normalise", "validate"]

REQUIRED = object()
DEFAULTS: dict[str, Any] = {
    "version": 1,
    "content": REQUIRED,
    "style": REQUIRED,
    "size": 512,
    "style_scale": 1.0,
    # the backbone's own defaults fill in its options (vgg19: imagenet weights, max pooling)
    "backbone": {"name": DEFAULT_BACKBONE},
    "losses": REQUIRED,
    "optimizer": {"name": DEFAULT_OPTIMIZER, "lr": 0.02},
    "steps": 500,
    "scales": 1,
    "min_size": 128,
    "average": 0.0,
    "layer_fade": list(LAYER_FADE),
    "init": "content",
    "seed": 0,
    "device": "auto",
    "output": None,
    "save_every": 0,
    "checkpoint_every": 0,
    "memory": "keep",
    "tile": "off",
    "precision": "fp32",
    "compile": False,
    "color": {"mode": "none"},
    "score": False,
}
INITS = ("content", "noise", "style")
# the backbone's arithmetic (stylefw.precision, which imports torch: these are its values, kept here)
PRECISIONS = ("fp32", "tf32", "bf16")
FP16_REFUSAL = ("fp16 is not supported: the unnormalised Gram sums of a large picture overflow its largest value, "
                "65504; use bf16, which has fp32's range")
MEMORY = ("keep", "checkpoint")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# section -> the key a bare string stands for: ``backbone: vgg16`` is ``backbone: {name: vgg16}``
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
    """Expand every shorthand (``style: a.jpg``, ``backbone: vgg16``, ``schedule: cosine``) in place."""
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
             registry: Registry) -> tuple[Recipe | None, list[Problem]]:
    """Check normalised ``data`` against the schema and the registry; returns the recipe and every problem found.

    Relative paths resolve against ``base_dir`` (None: the current directory), except under the
    ``overridden`` keys, which resolve against the current directory.
    """
    check = _Checker(registry, base_dir=base_dir, overridden=overridden)
    # the recipe remembers its file, so with_overrides and error messages can name it
    return check.recipe(data, source), check.problems


class _Checker(PluginSections):
    """Walks a recipe mapping, section by section, recording every problem with its dotted path."""

    def recipe(self, data: dict, source: str | None) -> Recipe | None:
        self.unknown_keys("", data, DEFAULTS)
        for key, default in DEFAULTS.items():
            if default is REQUIRED and data.get(key) is None:
                self.add(key, f"missing required key '{key}'")
        # a missing required key is reported once above, not again as a bad value
        values = {key: data.get(key, None if default is REQUIRED else default) for key, default in DEFAULTS.items()}
        if values["version"] == "1":  # quoted: the same version, but the wrong type
            self.add("version", "expected the whole number 1, got text '1'; write version: 1 without quotes")
        elif values["version"] != 1 or isinstance(values["version"], bool):
            self.add("version", f"unsupported recipe version {values['version']!r}; this stylefw reads version 1")
        content = self.image("content", values["content"], weighted=False) if values["content"] is not None else None
        styles = self.styles(values["style"]) if values["style"] is not None else None
        backbone = self.backbone(values["backbone"])
        losses = self.losses(values["losses"], backbone) if values["losses"] is not None else None
        optimizer = self.optimizer(values["optimizer"])
        size = self.integer("size", values["size"], 16, 16384)
        style_scale = self.number("style_scale", values["style_scale"], 0.01, 16.0)
        steps = self.integer("steps", values["steps"], 1, 1_000_000)
        init = self.choice("init", values["init"], INITS)
        seed = self.integer("seed", values["seed"], 0, 2**63 - 1)
        device = self.device(values["device"])
        save_every = self.integer("save_every", values["save_every"], 0, 1_000_000)
        checkpoint_every = self.integer("checkpoint_every", values["checkpoint_every"], 0, 1_000_000)
        memory = self.choice("memory", values["memory"], MEMORY)
        if memory == "checkpoint" and backbone is not None:
            factory = self.registry.get("backbone", backbone.name).factory
            if lacks(factory, "checkpointing"):  # the backbone's own switch: only it knows its segments
                self.add("memory", f"backbone '{backbone.name}' cannot recompute its activations (it has no "
                                   "'checkpointing' switch); use memory: keep")
        tile = self.tile(values["tile"], backbone)
        precision = self.precision(values["precision"])
        compile_ = self.boolean("compile", values["compile"])
        output = self.output(values["output"], [content] + list(styles or []))
        color = self.color(values["color"])
        score = self.boolean("score", values["score"])
        min_size = self.integer("min_size", values["min_size"], 16, 16384)
        scales = self.scales(values["scales"], size, steps)
        average = self.number("average", values["average"], 0.0)
        if average is not None and average >= 1:
            self.add("average", f"{average} is out of range; use 0 (off) up to, but not including, 1, such as 0.99")
        layer_fade = self.layer_fade(values["layer_fade"])
        if self.problems:
            return None
        # as written (2, not 2.0), so outputs record these two exactly as recipes always resolved them
        style_scale, average = values["style_scale"], values["average"]
        return Recipe(content=content, styles=tuple(styles), size=size, style_scale=style_scale, backbone=backbone,
                      losses=tuple(losses), optimizer=optimizer, steps=steps, init=init, seed=seed, device=device,
                      output=output, save_every=save_every, color=color, score=score, source=source, scales=scales,
                      min_size=min_size, average=average, layer_fade=layer_fade,
                      checkpoint_every=checkpoint_every, memory=memory, tile=tile,
                      precision=precision, compile=compile_)

    def precision(self, value: Any) -> str | None:
        if value in ("fp16", "float16", "half"):
            self.add("precision", FP16_REFUSAL)
            return None
        return self.choice("precision", value, PRECISIONS)

    def tile(self, value: Any, backbone: Any) -> TileSpec | None:
        """``off`` (None), ``auto``, or ``{size: PIXELS, margin: PIXELS | auto}``: cut each stage into tiles."""
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
        if backbone is not None:
            factory = self.registry.get("backbone", backbone.name).factory
            if lacks(factory, "stride", "receptive_field"):
                self.add("tile", f"backbone '{backbone.name}' does not say its layers' stride and receptive_field, "
                                 "which exact tiles need; use tile: off")
        return spec

    def layer_fade(self, value: Any) -> tuple[float, float] | None:
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

    def scales(self, value: Any, size: int | None, steps: int | None) -> Scales | None:
        """``1``, ``auto``, or a list of ``{size, steps}`` stages growing to the recipe's ``size``."""
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
        return ImageRef(source, weight, sha256.lower() if isinstance(sha256, str) else None)

    def styles(self, value: Any) -> list[ImageRef] | None:
        if not isinstance(value, list) or not value:
            self.add("style", "expected an image path or URL, or a list of {image: ..., weight: ...}")
            return None
        styles = [self.image(f"style[{i}]", item, weighted=True) for i, item in enumerate(value)]
        if all(styles) and sum(style.weight for style in styles) <= 0:
            self.add("style", "at least one style weight must be above 0")
        return styles if all(styles) else None

    def color(self, value: Any) -> ColorSpec | None:
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

    def device(self, value: Any) -> str | None:
        if isinstance(value, str) and DEVICE.match(value):
            return value
        self.add("device", f"'{value}' is not a device; use auto, cpu, cuda, cuda:N or mps")
        return None

    def output(self, value: Any, inputs: list[ImageRef | None]) -> Path | None:
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

