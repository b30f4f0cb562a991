"""The plugin system: the hooks (:mod:`~stylefw.hooks.specs`), the manager that loads every plugin from its
entry point (:mod:`~stylefw.hooks.manager`), the registry their ``register_*`` hooks fill
(:mod:`~stylefw.hooks.registry`), and whose fault an error is (:mod:`~stylefw.hooks.faults`).

The names below load their module on first use: ``import stylefw`` needs only the hooks' markers, and the
manager imports ``importlib.metadata`` (start-up time: about 30 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:  # the names below, for type checkers and editors
    from .manager import (BLOCK_ENV, ENTRY_POINT_GROUP, LazyPlugin, PluginInfo, PluginManager, blocked_plugins,
                          get_plugin_manager, plugin_infos)
    from .names import suggest
    from .registry import KINDS, Entry, Registry, build_registry, default_registry
    from .specs import hookimpl, hookspec

_MODULES = {
    "specs": ["hookimpl", "hookspec"],
    "manager": ["BLOCK_ENV", "ENTRY_POINT_GROUP", "LazyPlugin", "PluginInfo", "PluginManager", "blocked_plugins",
                "get_plugin_manager", "plugin_infos"],
    "registry": ["KINDS", "Entry", "Registry", "build_registry", "default_registry"],
    "names": ["suggest"],
}

__all__ = [name for names in _MODULES.values() for name in names]
__getattr__, __dir__ = lazy_names(__name__, globals(), _MODULES)
