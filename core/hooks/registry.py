"""Registries of backbones, losses, optimizers, schedulers and commands, filled by the plugins' ``register_*`` hooks."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from ..errors import PluginError
from .manager import PluginManager, get_plugin_manager
from .names import suggest

__all__ = ["KINDS", "DECLARATIONS", "Entry", "Registry", "build_registry", "default_registry", "suggest"]

# kind -> the hook that fills it
KINDS = {
    "backbone": "register_backbones",
    "loss": "register_losses",
    "optimizer": "register_optimizers",
    "scheduler": "register_schedulers",
    "command": "register_commands",
}
# kind -> what a plugin may declare beside the factory: register("adam", factory, resize_state=...); a command's
# "factory" is its handler
# ``default=True``: the backbone or optimizer of recipes that name none
DECLARATIONS = {"backbone": ("default",), "optimizer": ("resize_state", "default"), "command": ("help", "configure")}


@dataclass(frozen=True)
class Entry:
    """One registered item: what it is called, how to build it, and which plugin gave it."""

    kind: str
    name: str
    factory: Any
    plugin: str
    declarations: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """Named factories by kind; rejects a second registration of a name and names both plugins.

    With a plugin manager, a kind is filled by calling its hook the first time the kind is asked for: the
    parser needs only the commands, and registering those imports no torch.
    """

    def __init__(self, manager: PluginManager | None = None) -> None:
        self.manager = manager
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._unfilled = set(KINDS) if manager is not None else set()

    def _kind(self, kind: str) -> dict[str, Entry]:
        """The entries of ``kind``, after the plugins' hook for it has run."""
        if kind in self._unfilled:
            self._unfilled.discard(kind)  # first: the hook's register() calls come back through add()
            for impl in getattr(self.manager.hook, KINDS[kind]).get_hookimpls():
                impl.function(register=_registrar(self, kind, impl.plugin_name))
        return self._entries[kind]

    def add(self, kind: str, name: str, factory: Any, plugin: str, **declarations: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin}' registered a {kind} with an invalid name {name!r}")
        allowed = DECLARATIONS.get(kind, ())
        for key in declarations:
            if key not in allowed:
                raise PluginError(f"plugin '{plugin}' registered {kind} '{name}' with an unknown declaration '{key}'"
                                  f"{suggest(key, list(allowed))}",
                                  hint=f"a {kind} may declare: {', '.join(allowed) or 'nothing beside its factory'}")
        existing = self._kind(kind).get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} '{name}' is registered twice: by '{existing.plugin}' and by '{plugin}'",
                hint="uninstall one of them, or block one with STYLEFW_BLOCK_PLUGINS",
            )
        # a declaration given as None (the contracts' default) is one not made
        declared = {key: value for key, value in declarations.items() if value is not None}
        self._entries[kind][name] = Entry(kind, name, factory, plugin, declared)

    def get(self, kind: str, name: str) -> Entry:
        """The entry called ``name``; raises ``KeyError`` with the installed names and a did-you-mean."""
        try:
            return self._kind(kind)[name]
        except KeyError:
            raise KeyError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: object) -> str:
        names = self.names(kind)
        return f"unknown {kind} '{name}'{suggest(name, names)}; installed: {', '.join(names) or 'none'}"

    def default(self, kind: str) -> str | None:
        """The name of the ``kind`` a plugin declared the default (``default=True``), or None when none did."""
        chosen = [entry for entry in self._kind(kind).values() if entry.declarations.get("default")]
        if len(chosen) > 1:
            raise PluginError(f"{len(chosen)} {kind}s are declared the default: "
                              + ", ".join(f"'{entry.name}' by '{entry.plugin}'" for entry in chosen),
                              hint="uninstall one of those plugins, or block one with STYLEFW_BLOCK_PLUGINS")
        return chosen[0].name if chosen else None

    def names(self, kind: str) -> list[str]:
        return sorted(self._kind(kind))

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self._kind(kind)

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        kinds = [kind] if kind else list(KINDS)
        for each in kinds:
            yield from (self._entries[each][name] for name in self.names(each))


def build_registry(manager: PluginManager, *, lazy: bool = False) -> Registry:
    """The registry of ``manager``'s plugins: every hook called now, or with ``lazy`` each kind when first used.

    Each hook gets a ``register`` that records the plugin's name.
    """
    manager.check_pending()  # again: plugins may have been registered since the manager was built
    registry = Registry(manager)
    if not lazy:
        for kind in KINDS:
            registry._kind(kind)
    return registry


def _registrar(registry: Registry, kind: str, plugin: str):
    def register(name: str, factory: Any, **declarations: Any) -> None:
        registry.add(kind, name, factory, plugin, **declarations)

    return register


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry for this process, built on first use (each kind when first asked for);
    ``default_registry.cache_clear()`` rebuilds it."""
    return build_registry(get_plugin_manager(), lazy=True)
