"""The plugin system: the hooks (:mod:`~stylefw.hooks.specs`), the manager that loads every plugin from its
entry point (:mod:`~stylefw.hooks.manager`), the registry their ``register_*`` hooks fill
(:mod:`~stylefw.hooks.registry`), and whose fault an error is (:mod:`~stylefw.hooks.faults`).
"""

from __future__ import annotations

from .manager import (BLOCK_ENV, ENTRY_POINT_GROUP, LazyPlugin, PluginInfo, PluginManager, blocked_plugins,
                      get_plugin_manager, plugin_infos)
from .names import suggest
from .registry import KINDS, Entry, Registry, build_registry, default_registry
from .specs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec", "BLOCK_ENV", "ENTRY_POINT_GROUP", "LazyPlugin", "PluginInfo", "PluginManager",
           "blocked_plugins", "get_plugin_manager", "plugin_infos", "KINDS", "Entry", "Registry", "build_registry",
           "default_registry", "suggest"]
