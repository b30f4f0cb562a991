"""The plugin manager: the built-in plugins, then every ``stylefw`` entry point not blocked."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import PluginError

__all__ = [
    "DEFAULT_PLUGINS",
    "BLOCK_ENV",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "get_plugin_manager",
    "plugin_infos",
]

ENTRY_POINT_GROUP = "stylefw"
BLOCK_ENV = "STYLEFW_BLOCK_PLUGINS"

# Built-ins register through the same hooks as everyone else; these are just imported, not discovered.
DEFAULT_PLUGINS = (
    "stylefw.plugins.vgg",
    "stylefw.plugins.losses",
    "stylefw.plugins.optimizers",
    "stylefw.plugins.schedulers",
)


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
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, metadata.Distribution] = {}


def blocked_plugins() -> set[str]:
    """Plugin names listed, comma-separated, in ``STYLEFW_BLOCK_PLUGINS``."""
    return {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}


def get_plugin_manager(*, load_entry_points: bool = True) -> PluginManager:
    """Build a fresh plugin manager with the built-ins and (optionally) installed plugins."""
    manager = PluginManager()
    blocked = blocked_plugins()
    for name in DEFAULT_PLUGINS:
        if name not in blocked:
            manager.register(importlib.import_module(name), name=name)
    if load_entry_points:
        _load_entry_points(manager, blocked)
    return manager


def _load_entry_points(manager: PluginManager, blocked: set[str]) -> None:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in blocked or manager.get_plugin(entry_point.name) is not None:
            continue
        dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
        try:
            plugin = entry_point.load()
        except Exception as exc:  # any import failure in third-party code is reported, not raised raw
            raise PluginError(
                f"plugin '{entry_point.name}' (from {dist}) failed to import: {type(exc).__name__}: {exc}",
                hint=f"fix or uninstall {dist}, or skip it with {BLOCK_ENV}={entry_point.name}",
            ) from exc
        manager.register(plugin, name=entry_point.name)
        if entry_point.dist is not None:
            manager.distributions[entry_point.name] = entry_point.dist


def plugin_infos(manager: PluginManager) -> list[PluginInfo]:
    """Every registered plugin with the distribution and version it came from."""
    from . import __version__

    infos = []
    for name, _plugin in manager.list_name_plugin():
        dist = manager.distributions.get(name)
        if dist is None:
            infos.append(PluginInfo(name, "stylefw", __version__))
        else:
            infos.append(PluginInfo(name, dist.name, dist.version))
    return infos
