"""The plugin manager: every plugin is an entry point in the ``stylefw`` group, stylefw's own included.

stylefw's built-in backbones, losses, optimizers, schedules and run features are entry points of the
``stylefw`` distribution (``pyproject.toml``), found the way a third party's are; this module knows none of
them by name. They are registered first, then every other distribution's, but for those blocked.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable

import pluggy

from . import specs
from .. import __version__
from ..errors import PluginError
from .names import suggest

__all__ = ["BLOCK_ENV", "ENTRY_POINT_GROUP", "OWN_DISTRIBUTION", "LazyPlugin", "PluginInfo", "PluginManager",
           "blocked_plugins", "builtin_plugins", "get_plugin_manager", "plugin_infos"]

ENTRY_POINT_GROUP = "stylefw"
BLOCK_ENV = "STYLEFW_BLOCK_PLUGINS"
# the distribution whose plugins are stylefw's own: their bugs are stylefw's, not a third party's
OWN_DISTRIBUTION = "stylefw"


class LazyPlugin:
    """A plugin whose ``register_*`` hooks import the module implementing them only when they are called.

    ``LazyPlugin(register_backbones="mypackage.nets")`` calls ``mypackage.nets.register_backbones(register)``
    the first time backbones are needed, so a command that needs none (``stylefw --help``) does not import
    the module, nor torch. Point an entry point at such an object to keep a plugin's start-up light.
    """

    def __init__(self, **hooks: str) -> None:
        self.modules = dict(hooks)  # hook -> the module implementing it
        for hook, module in hooks.items():
            if not hook.startswith("register_"):
                raise ValueError(f"LazyPlugin defers register_* hooks, not {hook}")
            setattr(self, hook, _deferred(hook, module))


def _deferred(hook: str, module: str):
    @specs.hookimpl
    def call(register):
        return getattr(importlib.import_module(module), hook)(register)

    call.__name__ = call.__qualname__ = hook
    return call


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, the distribution that ships it, and that distribution's version."""

    name: str
    distribution: str
    version: str


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers which distribution each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__("stylefw")
        self.add_hookspecs(specs)
        self.distributions: dict[str, Any] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin``; a hook implementation whose arguments the hook does not give is a PluginError."""
        name = name or self.get_canonical_name(plugin)
        try:
            return super().register(plugin, name)
        except pluggy.PluginValidationError as exc:
            self.unregister(name=name)  # pluggy leaves the hooks it had registered so far
            details = "; ".join(line.strip() for line in str(exc).splitlines()[1:])
            raise PluginError(f"{self.describe(name)} does not fit its hook: {details}",
                              hint="a hook implementation takes the hook's arguments by name: see stylefw.hookspecs"
                              ) from exc

    def check_pending(self) -> None:
        """Every hook implementation must be a stylefw hook: a misspelt one is a PluginError naming its plugin."""
        hooks = sorted(name for name in vars(self.hook) if not name.startswith("_"))
        specified = [name for name in hooks if getattr(self.hook, name).has_spec()]
        problems = [f"{self.describe(impl.plugin_name)} implements '{name}', which is not a stylefw hook"
                    f"{suggest(name, specified)}"
                    for name in hooks if name not in specified
                    for impl in getattr(self.hook, name).get_hookimpls() if not impl.optionalhook]
        if problems:
            raise PluginError("; ".join(problems), hint=f"the hooks are {', '.join(specified)}; mark a hook that "
                              "a later stylefw defines @stylefw.hookimpl(optionalhook=True)")

    def describe(self, name: str) -> str:
        """``plugin 'name'``, with the distribution it came from when it was installed."""
        dist = self.distributions.get(name)
        return f"plugin '{name}' (from {dist.name})" if dist is not None else f"plugin '{name}'"

    def is_builtin(self, name: str) -> bool:
        """Whether the plugin called ``name`` is stylefw's own: its bugs are then stylefw's."""
        return _is_own(self.distributions.get(name))

    def origin(self, name: str) -> str | None:
        """``stylefw-example 0.3.0 (entry point 'example')`` for a third party's installed plugin; None for
        stylefw's own and for a plugin registered in code."""
        dist = self.distributions.get(name)
        if dist is None or self.is_builtin(name):
            return None
        return f"{dist.name} {dist.version} (entry point '{name}')"


def _is_own(dist: metadata.Distribution | None) -> bool:
    """Whether ``dist`` is stylefw's own distribution."""
    return dist is not None and dist.name.lower().replace("_", "-") == OWN_DISTRIBUTION


def blocked_plugins() -> set[str]:
    """Plugin names listed, comma-separated, in ``STYLEFW_BLOCK_PLUGINS``."""
    return {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}


def get_plugin_manager(*, load_entry_points: bool = True, block: Iterable[str] = ()) -> PluginManager:
    """A fresh plugin manager with stylefw's own plugins and, with ``load_entry_points``, every other installed one.

    Plugins named in ``block`` or in ``STYLEFW_BLOCK_PLUGINS`` are left out.
    """
    manager = PluginManager()
    blocked = blocked_plugins() | set(block)
    points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    others = [point for point in points if not _is_own(point.dist)] if load_entry_points else []
    for entry_point in builtin_plugins(points) + others:  # stylefw's own first: a clash names them first
        if entry_point.name not in blocked and manager.get_plugin(entry_point.name) is None:
            _load(manager, entry_point)
    manager.check_pending()
    return manager


def builtin_plugins(points: Iterable[metadata.EntryPoint] | None = None) -> list[metadata.EntryPoint]:
    """stylefw's own plugins: the ``stylefw`` distribution's entry points in the ``stylefw`` group (of ``points``,
    when the caller has read them already), by name."""
    points = metadata.entry_points(group=ENTRY_POINT_GROUP) if points is None else points
    found = {point.name: point for point in points if _is_own(point.dist)}
    return [found[name] for name in sorted(found)]


def _load(manager: PluginManager, entry_point: metadata.EntryPoint) -> None:
    dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
    try:
        plugin = entry_point.load()
    except Exception as exc:  # any import failure in third-party code is reported, not raised raw
        raise PluginError(
            f"plugin '{entry_point.name}' (from {dist}) failed to import: {type(exc).__name__}: {exc}",
            hint=f"fix or uninstall {dist}, or skip it with {BLOCK_ENV}={entry_point.name}",
        ) from exc
    if entry_point.dist is not None:  # first, so that an error registering it names the distribution
        manager.distributions[entry_point.name] = entry_point.dist
    manager.register(plugin, name=entry_point.name)


def plugin_infos(manager: PluginManager) -> list[PluginInfo]:
    """Every registered plugin with the distribution and version it came from."""
    infos = []
    for name, _plugin in manager.list_name_plugin():
        dist = manager.distributions.get(name)
        if dist is None:
            infos.append(PluginInfo(name, "stylefw", __version__))
        else:
            infos.append(PluginInfo(name, dist.name, dist.version))
    return infos
