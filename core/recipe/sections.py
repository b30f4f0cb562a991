"""The recipe's plugin sections: backbone, losses and optimizer (with its schedule), the readers of those keys.

Each is checked against the registered factory's signature: its keyword names, their annotations and the
markers in them (:mod:`stylefw.markers`). Nothing is built here; what only a factory can reject is found
by :mod:`stylefw.engine.preflight` when a run starts.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Iterable

from ..contracts.recipe import BackboneSpec, LossSpec, OptimizerSpec, ScheduleSpec
from ..hooks.registry import Registry
from . import legacy
from .layers import resolve_layer
from .validator import Validator, described, kind_of

__all__ = ["PluginSections"]


class PluginSections(Validator):
    """Checks the sections that name a plugin; the top-level schema builds on it."""

    def __init__(self, registry: Registry, *, base_dir: Path | None = None, overridden: Iterable[str] = ()) -> None:
        super().__init__(base_dir=base_dir, overridden=overridden)
        self.registry = registry
        # the keys read so far, by Recipe field name: the losses' layers are the backbone's
        self.values: dict[str, Any] = {}
        # what validated of a section that did not: the losses that did, by index (RecipeError.parts)
        self.parts: dict[str, Any] = {}

    def plugin_options(self, path: str, kind: str, name: str, options: dict[str, Any], *, skip: int = 0,
                       common: tuple[str, ...] = (), given: tuple[str, ...] = (),
                       fallback: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """``options`` for the ``kind`` called ``name``: names, then annotations; None after a problem."""
        factory = self.registry.get(kind, name).factory
        if not self.options(path, f"{kind} '{name}'", factory, options, skip=skip, common=common, given=given):
            return None
        return self.annotated(path, factory, options, fallback=fallback)

    def registered(self, path: str, kind: str, name: Any) -> bool:
        """Whether ``name`` is a registered ``kind``; an unknown one is reported with the installed names."""
        if isinstance(name, str) and (kind, name) in self.registry:
            return True
        if not isinstance(name, str) or not name:
            installed = ", ".join(self.registry.names(kind))
            self.add(path, f"expected the name of a {kind}, got {described(name)}; installed: {installed}")
            return False
        self.add(path, self.registry.unknown_message(kind, name))
        return False

    def read_backbone(self, path: str, value: Any, annotation: Any) -> BackboneSpec | None:
        if not self.mapping("backbone", value):
            return None
        name = value.get("name", self.registry.default("backbone"))
        if not self.registered("backbone.name", "backbone", name):
            return None
        options = {key: item for key, item in value.items() if key != "name"}
        checked = self.plugin_options("backbone", "backbone", name, options, fallback=legacy.WEIGHTS)
        if checked is None:
            return None
        return BackboneSpec(name, _recorded(self.registry.get("backbone", name).factory, checked))

    def read_losses(self, path: str, value: Any, annotation: Any) -> tuple[LossSpec, ...] | None:
        backbone = self.values.get("backbone")
        if not isinstance(value, list) or not value:
            self.add("losses", "expected a non-empty list of losses, such as [{name: content, layers: [conv4_2]}]")
            return None
        losses = [self.loss(f"losses[{i}]", entry, backbone) for i, entry in enumerate(value)]
        self.parts["losses"] = {index: loss for index, loss in enumerate(losses) if loss is not None}
        if not all(losses):
            return None
        names = [loss.name for loss in losses]
        return tuple(_labelled(loss, names, i) for i, loss in enumerate(losses))

    def loss(self, path: str, entry: Any, backbone: BackboneSpec | None) -> LossSpec | None:
        if not self.mapping(path, entry):
            return None
        name = entry.get("name")
        if name is None:
            self.add(path, f"missing required key 'name'; installed losses: {', '.join(self.registry.names('loss'))}")
            return None
        if not self.registered(f"{path}.name", "loss", name):
            return None
        weight = self.number(f"{path}.weight", entry.get("weight", 1.0), 0.0)
        options = {key: item for key, item in entry.items() if key not in ("name", "weight")}
        factory = self.registry.get("loss", name).factory
        if not self.options(path, f"loss '{name}'", factory, options, common=("name", "weight")):
            return None
        # layers are checked against the backbone first, and against the loss's annotation once resolved
        checked = self.annotated(path, factory, {key: item for key, item in options.items() if key != "layers"})
        if checked is None or weight is None:
            return None
        if "layers" in options:
            layers = self.resolved_layers(f"{path}.layers", options["layers"], backbone, name)
            if layers is None:
                return None
            checked = {key: layers if key == "layers" else checked[key] for key in options}
        return LossSpec(name, weight, checked, name)

    def resolved_layers(self, path: str, value: Any, backbone: BackboneSpec | None, loss: str) -> Any:
        """A loss's ``layers``, resolved against the backbone, then checked against the loss's annotation."""
        if backbone is None:
            return None  # the backbone's own problem is reported; its layers cannot be checked
        layers = self.layers(path, value, backbone)
        if layers is None:
            return None
        checked = self.annotated(path.rsplit(".", 1)[0], self.registry.get("loss", loss).factory, {"layers": layers})
        return None if checked is None else checked["layers"]

    def layers(self, path: str, value: Any, backbone: BackboneSpec) -> list[str] | dict[str, Any] | None:
        factory = self.registry.get("backbone", backbone.name).factory
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, dict):
            resolved = {self.layer(f"{path}.{key}", key, factory, backbone.name): weight
                        for key, weight in value.items()}
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

    def read_optimizer(self, path: str, value: Any, annotation: Any) -> OptimizerSpec | None:
        if not self.mapping("optimizer", value):
            return None
        before = len(self.problems)
        name = value.get("name", self.registry.default("optimizer"))
        options = None
        if self.registered("optimizer.name", "optimizer", name):
            # schedule belongs to stylefw, not to the optimizer factory
            given = {key: item for key, item in value.items() if key not in ("name", "schedule")}
            options = self.plugin_options("optimizer", "optimizer", name, given, skip=1, common=("name", "schedule"))
        schedule = self.schedule(value["schedule"]) if value.get("schedule") is not None else None
        if len(self.problems) > before:
            return None
        return OptimizerSpec(name, options, schedule)

    def schedule(self, value: Any) -> ScheduleSpec | None:
        path = "optimizer.schedule"
        if not self.mapping(path, value):
            return None
        name = value.get("name")
        if name is None:
            installed = ", ".join(self.registry.names("scheduler"))
            self.add(path, f"missing required key 'name'; installed schedulers: {installed}")
            return None
        if not self.registered(f"{path}.name", "scheduler", name):
            return None
        options = {key: item for key, item in value.items() if key != "name"}
        if "total_steps" in options:
            self.add(f"{path}.total_steps", "the run's steps are passed as total_steps; remove this key")
            return None
        checked = self.plugin_options(path, "scheduler", name, options, skip=1, common=("name",),
                                      given=("total_steps",))
        return None if checked is None else ScheduleSpec(name, checked)


def _recorded(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` led by those the backbone records (its ``recorded_options``), each at the factory's default where
    the recipe gives none: a resolved recipe then says which weights made a picture even when the recipe did not."""
    recorded = getattr(factory, "recorded_options", legacy.RECORDED)
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return options
    defaults = {key: parameters[key].default for key in recorded if key in parameters and key not in options
                and isinstance(parameters[key].default, (str, int, float, bool))}
    first = {key: options[key] if key in options else defaults[key] for key in recorded
             if key in options or key in defaults}
    return {**first, **options}


def _labelled(loss: LossSpec, names: list[str], index: int) -> LossSpec:
    if names.count(loss.name) == 1:
        return loss
    return LossSpec(loss.name, loss.weight, loss.options, f"{loss.name}#{names[: index + 1].count(loss.name)}")
