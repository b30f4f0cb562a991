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
    "BuiltinPlugin",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "get_plugin_manager",
    "plugin_infos",
]

ENTRY_POINT_GROUP = "stylefw"
BLOCK_ENV = "STYLEFW_BLOCK_PLUGINS"

# The built-in plugins register through the same hooks as everyone else; they are not discovered. Each is
# plugin name -> hook -> the module whose function of that name implements it. A module is imported when its
# hook is first called, so that commands needing no backbone (``stylefw --help``) do not import torch.
DEFAULT_PLUGINS: dict[str, dict[str, str]] = {
    "stylefw.plugins.vgg": {"register_backbones": "stylefw.plugins.vgg",
                            "register_commands": "stylefw.plugins.cli_weights"},
    "stylefw.plugins.losses": {"register_losses": "stylefw.plugins.losses"},
    "stylefw.plugins.optimizers": {"register_optimizers": "stylefw.plugins.optimizers"},
    "stylefw.plugins.schedulers": {"register_schedulers": "stylefw.plugins.schedulers"},
}


class BuiltinPlugin:
    """A built-in plugin whose hooks import the module implementing them when they are called."""

    def __init__(self, hooks: dict[str, str]) -> None:
        for hook, module in hooks.items():
            setattr(self, hook, _deferred(hook, module))


def _deferred(hook: str, module: str):
    @hookspecs.hookimpl
    def call(register):  # every built-in hook is a register_* hook
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
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, metadata.Distribution] = {}

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
        from .registry import suggest

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


def blocked_plugins() -> set[str]:
    """Plugin names listed, comma-separated, in ``STYLEFW_BLOCK_PLUGINS``."""
    return {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}


def get_plugin_manager(*, load_entry_points: bool = True) -> PluginManager:
    """Build a fresh plugin manager with the built-ins and (optionally) installed plugins."""
    manager = PluginManager()
    blocked = blocked_plugins()
    for name, hooks in DEFAULT_PLUGINS.items():
        if name not in blocked:
            manager.register(BuiltinPlugin(hooks), name=name)
    if load_entry_points:
        _load_entry_points(manager, blocked)
    manager.check_pending()
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
        if entry_point.dist is not None:  # first, so that an error registering it names the distribution
            manager.distributions[entry_point.name] = entry_point.dist
        manager.register(plugin, name=entry_point.name)


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
