"""The recipe schema: normalise shorthands, then check every key and collect every problem."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .checks import Checker, kind_of
from .errors import Problem
from .layers import resolve_layer
from .color import COLOR_MODES, DEFAULT_METHOD, DEFAULT_SPACE, MATCH_METHODS, SWAP_SPACES
from .recipe import (BackboneSpec, ColorSpec, ImageRef, LossSpec, OptimizerSpec, Recipe, ScheduleSpec, IMAGE_SUFFIXES,
                     is_url)
from .registry import Registry
from .scales import ScaleSpec, Scales

__all__ = ["DEFAULTS", "normalise", "anchor_paths", "validate"]

REQUIRED = object()
DEFAULTS: dict[str, Any] = {
    "version": 1,
    "content": REQUIRED,
    "style": REQUIRED,
    "size": 512,
    "style_scale": 1.0,
    "backbone": {"name": "vgg19", "weights": "imagenet", "pooling": "max"},
    "losses": REQUIRED,
    "optimizer": {"name": "adam", "lr": 0.02},
    "steps": 500,
    "scales": 1,
    "min_size": 128,
    "average": 0.0,
    "init": "content",
    "seed": 0,
    "device": "auto",
    "output": None,
    "save_every": 0,
    "color": {"mode": "none"},
    "score": False,
}
INITS = ("content", "noise", "style")
POOLINGS = ("max", "avg")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def normalise(data: dict) -> dict:
    """Expand shorthands (``style: a.jpg``, ``backbone: vgg16``) into their full mapping form."""
    if isinstance(data.get("content"), str):
        data["content"] = {"image": data["content"]}
    style = data.get("style")
    if isinstance(style, (str, dict)):
        style = [style]
    if isinstance(style, list):
        data["style"] = [{"image": item} if isinstance(item, str) else item for item in style]
    for key in ("backbone", "optimizer"):
        if isinstance(data.get(key), str):
            data[key] = {"name": data[key]}
    if isinstance(data.get("color"), str):
        data["color"] = {"mode": data["color"]}
    optimizer = data.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("schedule"), str):
        optimizer["schedule"] = {"name": optimizer["schedule"]}
    return data


def anchor_paths(data: dict, base_dir: Path) -> None:
    """Make the relative input paths of a normalised recipe absolute against ``base_dir``, in place."""
    entries = [data.get("content"), *(data.get("style") or [])] if isinstance(data.get("style"), list) else [
        data.get("content")]
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("image"), str):
            entry["image"] = _anchored(entry["image"], base_dir)
    backbone = data.get("backbone")
    if isinstance(backbone, dict) and backbone.get("weights") not in (None, "imagenet", "random"):
        if isinstance(backbone["weights"], str):
            backbone["weights"] = _anchored(backbone["weights"], base_dir)


def _anchored(path: str, base_dir: Path) -> str:
    if is_url(path) or not path or Path(path).expanduser().is_absolute():
        return path
    return str(base_dir / path)


def validate(data: dict, *, base_dir: Path, source: str | None, registry: Registry) -> tuple[Recipe | None, list[Problem]]:
    """Check ``data`` against the schema and the registry; returns the recipe and every problem found."""
    check = _Checker(registry, base_dir)
    recipe = check.recipe(data)
    # the recipe remembers its file, so with_overrides and error messages can name it
    return (dataclasses.replace(recipe, source=source) if recipe else None), check.problems


class _Checker(Checker):
    """Walks a recipe dict, section by section, recording every problem with its dotted path."""

    def __init__(self, registry: Registry, base_dir: Path) -> None:
        super().__init__()
        self.registry = registry
        self.base_dir = base_dir

    def recipe(self, data: dict) -> Recipe | None:
        self.unknown_keys("", data, DEFAULTS)
        for key, default in DEFAULTS.items():
            if default is REQUIRED and data.get(key) is None:
                self.add(key, f"missing required key '{key}'")
        # a missing required key is reported once above, not again as a bad value
        values = {key: data.get(key, None if default is REQUIRED else default) for key, default in DEFAULTS.items()}
        if values["version"] != 1:
            self.add("version", f"unsupported recipe version {values['version']!r}; this stylefw reads version 1")
        content = self.image("content", values["content"], weighted=False) if values["content"] is not None else None
        styles = self.styles(values["style"]) if values["style"] is not None else None
        backbone = self.backbone(values["backbone"])
        losses = self.losses(values["losses"], backbone) if values["losses"] is not None else None
        optimizer = self.optimizer(values["optimizer"], values["steps"])
        size = self.integer("size", values["size"], 16, 16384)
        style_scale = self.number("style_scale", values["style_scale"], 0.01, 16.0)
        steps = self.integer("steps", values["steps"], 1, 1_000_000)
        init = self.choice("init", values["init"], INITS)
        seed = self.integer("seed", values["seed"], 0, 2**63 - 1)
        device = self.device(values["device"])
        save_every = self.integer("save_every", values["save_every"], 0, 1_000_000)
        output = self.output(values["output"], [content] + list(styles or []))
        color = self.color(values["color"])
        score = self.boolean("score", values["score"])
        min_size = self.integer("min_size", values["min_size"], 16, 16384)
        scales = self.scales(values["scales"], size, steps)
        average = self.number("average", values["average"], 0.0)
        if average is not None and average >= 1:
            self.add("average", f"{average} is out of range; use 0 (off) up to, but not including, 1, such as 0.99")
        if self.problems:
            return None
        resolved = {**values, "content": _image_dict(content, weighted=False), "style": [_image_dict(s) for s in styles]}
        resolved.update(output=str(output) if output else None, backbone=_backbone_dict(backbone))
        resolved.update(losses=[{"name": l.name, "weight": l.weight, **l.options} for l in losses])
        resolved.update(optimizer=_optimizer_dict(optimizer), color=_color_dict(color), scales=_scales_value(scales))
        return Recipe(content, tuple(styles), size, style_scale, backbone, tuple(losses), optimizer, steps,
                      init, seed, device, output, save_every, color, score, data=resolved, scales=scales,
                      min_size=min_size, average=average)

    def scales(self, value: Any, size: int | None, steps: int | None) -> Scales | None:
        """``1``, ``auto``, or a list of ``{size, steps}`` stages growing to the recipe's ``size``."""
        if value == 1 and not isinstance(value, bool) or value == "auto":
            return value
        if not isinstance(value, list) or not value:
            self.add("scales", f"expected 1, auto or a list of {{size: ..., steps: ...}}, got {kind_of(value)} {value!r}")
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
        if not is_url(source):
            resolved = (self.base_dir / Path(source).expanduser()).resolve()
            if not resolved.is_file():
                self.add(path, f"image file not found: {resolved}")
                return None
            source = str(resolved)
        return ImageRef(source, weight, sha256.lower() if isinstance(sha256, str) else None)

    def styles(self, value: Any) -> list[ImageRef] | None:
        if not isinstance(value, list) or not value:
            self.add("style", "expected an image path or URL, or a list of {image: ..., weight: ...}")
            return None
        styles = [self.image(f"style[{i}]", item, weighted=True) for i, item in enumerate(value)]
        if all(styles) and sum(style.weight for style in styles) <= 0:
            self.add("style", "at least one style weight must be above 0")
        return styles if all(styles) else None

    def backbone(self, value: Any) -> BackboneSpec | None:
        if not self.mapping("backbone", value):
            return None
        name = value.get("name", "vgg19")
        if ("backbone", name) not in self.registry:
            self.add("backbone.name", self.registry.unknown_message("backbone", name))
            return None
        weights = self.weights(value.get("weights", "imagenet"))
        pooling = self.choice("backbone.pooling", value.get("pooling", "max"), POOLINGS)
        options = {k: v for k, v in value.items() if k not in ("name", "weights", "pooling")}
        factory = self.registry.get("backbone", name).factory
        valid = self.options("backbone", f"backbone '{name}'", factory, {"weights": 0, "pooling": 0, **options})
        if weights is None or pooling is None or not valid or not self.annotated("backbone", factory, options):
            return None
        return BackboneSpec(name, weights, pooling, options)

    def weights(self, value: Any) -> str | None:
        if value in ("imagenet", "random"):
            return value
        if not isinstance(value, str) or not value:
            self.add("backbone.weights", f"expected imagenet, random or a file path, got {value!r}")
            return None
        path = (self.base_dir / Path(value).expanduser()).resolve()
        if not path.is_file():
            self.add("backbone.weights", f"weights file not found: {path} (use imagenet, random or a file path)")
            return None
        return str(path)

    def losses(self, value: Any, backbone: BackboneSpec | None) -> list[LossSpec] | None:
        if not isinstance(value, list) or not value:
            self.add("losses", "expected a non-empty list of losses, such as [{name: content, layers: [conv4_2]}]")
            return None
        losses = [self.loss(f"losses[{i}]", entry, backbone) for i, entry in enumerate(value)]
        if not all(losses):
            return None
        names = [loss.name for loss in losses]
        return [_labelled(loss, names, i) for i, loss in enumerate(losses)]

    def loss(self, path: str, entry: Any, backbone: BackboneSpec | None) -> LossSpec | None:
        if not self.mapping(path, entry):
            return None
        name = entry.get("name")
        if name is None:
            self.add(path, f"missing required key 'name'; installed losses: {', '.join(self.registry.names('loss'))}")
            return None
        if ("loss", name) not in self.registry:
            self.add(f"{path}.name", self.registry.unknown_message("loss", name))
            return None
        weight = self.number(f"{path}.weight", entry.get("weight", 1.0), 0.0)
        options = {k: v for k, v in entry.items() if k not in ("name", "weight")}
        factory = self.registry.get("loss", name).factory
        checked = self.options(path, f"loss '{name}'", factory, options, common=("name", "weight"))
        if not checked or not self.annotated(path, factory, options) or weight is None:
            return None
        if "layers" in options:
            if backbone is None:
                return None  # the backbone's own problem is reported; its layers cannot be checked
            options["layers"] = self.layers(f"{path}.layers", options["layers"], backbone)
            if options["layers"] is None:
                return None
        try:
            factory(**options)
        except (TypeError, ValueError) as exc:
            self.add(path, f"loss '{name}': {exc}")
            return None
        return LossSpec(name, weight, options, name)

    def layers(self, path: str, value: Any, backbone: BackboneSpec) -> list[str] | dict[str, Any] | None:
        factory = self.registry.get("backbone", backbone.name).factory
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, dict):
            resolved = {self.layer(f"{path}.{key}", key, factory, backbone.name): weight for key, weight in value.items()}
        elif isinstance(value, list):
            resolved = [self.layer(f"{path}[{i}]", layer, factory, backbone.name) for i, layer in enumerate(value)]
        else:
            self.add(path, f"expected a list of layer names, got {kind_of(value)}")
            return None
        return None if None in resolved else resolved

    def layer(self, path: str, layer: Any, factory: Any, backbone_name: str) -> str | None:
        try:
            return resolve_layer(factory, layer, backbone_name)
        except ValueError as exc:
            self.add(path, str(exc))
            return None

    def optimizer(self, value: Any, steps: Any) -> OptimizerSpec | None:
        if not self.mapping("optimizer", value):
            return None
        before = len(self.problems)
        spec, throwaway = self.optimizer_options(value)
        schedule = value.get("schedule")
        if schedule is not None:
            schedule = self.schedule(schedule, throwaway, steps)
        if len(self.problems) > before:
            return None
        return dataclasses.replace(spec, schedule=schedule)

    def optimizer_options(self, value: dict) -> tuple[OptimizerSpec | None, Any]:
        """The optimizer's spec and a throwaway instance built with its options, or (None, None)."""
        name = value.get("name", "adam")
        if ("optimizer", name) not in self.registry:
            self.add("optimizer.name", self.registry.unknown_message("optimizer", name))
            return None, None
        # schedule belongs to stylefw, not to the optimizer factory
        options = {k: v for k, v in value.items() if k not in ("name", "schedule")}
        factory = self.registry.get("optimizer", name).factory
        what = f"optimizer '{name}'"
        checked = self.options("optimizer", what, factory, options, skip=1, common=("name", "schedule"))
        if not checked or not self.annotated("optimizer", factory, options):
            return None, None
        import torch  # only to try the options on a throwaway parameter

        try:
            built = factory([torch.zeros(1, requires_grad=True)], **options)
        except (TypeError, ValueError, RuntimeError) as exc:
            self.add("optimizer", f"{what} rejects these options: {exc}")
            return None, None
        return OptimizerSpec(name, options), built

    def schedule(self, value: Any, optimizer: Any, steps: Any) -> ScheduleSpec | None:
        """Check ``optimizer.schedule``, trying its values on the throwaway ``optimizer`` with ``steps``."""
        path = "optimizer.schedule"
        if not self.mapping(path, value):
            return None
        name = value.get("name")
        if name is None:
            installed = ", ".join(self.registry.names("scheduler"))
            self.add(path, f"missing required key 'name'; installed schedulers: {installed}")
            return None
        if not isinstance(name, str) or ("scheduler", name) not in self.registry:
            self.add(f"{path}.name", self.registry.unknown_message("scheduler", name))
            return None
        options = {k: v for k, v in value.items() if k != "name"}
        if "total_steps" in options:
            self.add(f"{path}.total_steps", "the run's steps are passed as total_steps; remove this key")
            return None
        factory, what = self.registry.get("scheduler", name).factory, f"scheduler '{name}'"
        checked = self.options(path, what, factory, options, skip=1, common=("name",), given=("total_steps",))
        if not checked or not self.annotated(path, factory, options):
            return None
        # a bad steps value is reported on its own; without an optimizer there is nothing to build on
        if optimizer is not None and not isinstance(steps, bool) and isinstance(steps, int) and steps >= 1:
            try:
                factory(optimizer, total_steps=steps, **options)
            except (TypeError, ValueError, RuntimeError) as exc:
                self.add(path, f"{what} rejects these options: {exc}")
                return None
        return ScheduleSpec(name, options)

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
        path = Path(value).expanduser().resolve()
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            self.add("output", f"unsupported output format '{path.suffix}'; use .png, .jpg, .jpeg or .webp")
            return None
        if any(ref is not None and not ref.is_url and Path(ref.source) == path for ref in inputs):
            self.add("output", f"{path} is also an input image; choose another output path so the input is kept")
            return None
        return path


def _labelled(loss: LossSpec, names: list[str], index: int) -> LossSpec:
    if names.count(loss.name) == 1:
        return loss
    return LossSpec(loss.name, loss.weight, loss.options, f"{loss.name}#{names[: index + 1].count(loss.name)}")


def _image_dict(ref: ImageRef, *, weighted: bool = True) -> dict[str, Any]:
    # content takes no weight key: writing one would make the resolved recipe fail validation
    weight = {"weight": ref.weight} if weighted else {}
    return {"image": ref.source, **weight, **({"sha256": ref.sha256} if ref.sha256 else {})}


def _scales_value(scales: Scales) -> Any:
    return [dataclasses.asdict(stage) for stage in scales] if isinstance(scales, tuple) else scales


def _color_dict(spec: ColorSpec) -> dict[str, Any]:
    return {key: value for key, value in dataclasses.asdict(spec).items() if value is not None}


def _backbone_dict(spec: BackboneSpec) -> dict[str, Any]:
    return {"name": spec.name, "weights": spec.weights, "pooling": spec.pooling, **spec.options}


def _optimizer_dict(spec: OptimizerSpec) -> dict[str, Any]:
    # no schedule key for a constant rate, so recipes without one resolve exactly as before schedules existed
    schedule = {"schedule": {"name": spec.schedule.name, **spec.schedule.options}} if spec.schedule else {}
    return {"name": spec.name, **spec.options, **schedule}
