"""Whose fault an exception is: the user's, a plugin's, or stylefw's own, so the CLI can say what to do about it.

A plugin's loss is wrapped in :class:`GuardedLoss`, which names the loss, its plugin and the plugin's
distribution when the loss raises or returns something other than a scalar. Anything else that escapes
is classified by :func:`classify` from the frames it was raised through.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Callable

from .. import __version__
from ..errors import InternalError, PluginBugError, RunError, StylefwError, UserError
from .manager import BLOCK_ENV, PluginManager
from .registry import Entry

__all__ = ["origin", "bug_in", "GuardedLoss", "call_plugin", "classify"]

# errors of the machine, not of any code: reported as what they are, whoever's frame they were raised in
OUT_OF_MEMORY = ("MemoryError", "OutOfMemoryError")


def origin(manager: PluginManager | None, plugin: str) -> str | None:
    """``stylefw-example 0.3.0 (entry point 'example')`` for an installed plugin; None for a built-in one."""
    return manager.origin(plugin) if manager is not None else None


def bug_in(manager: PluginManager | None, entry: Entry, what: str, exc: BaseException | None = None) -> StylefwError:
    """The error for ``entry`` (a loss, a backbone, ...) having done ``what``: the plugin's bug, or stylefw's."""
    item = f"{entry.kind} '{entry.name}'"
    source = origin(manager, entry.plugin)
    if source is None:
        return _ours(f"{item} {what}")
    return PluginBugError(f"{item} from {source} {what}",
                          hint=_plugin_hint(source, f"leave {item} out of the recipe"))


def _plugin_hint(source: str, workaround: str) -> str:
    return (f"this is a bug in {source.split(' (')[0]}: report it to its authors, with the traceback that --debug "
            f"prints; meanwhile {workaround}")


def _ours(message: str) -> InternalError:
    return InternalError(message, hint=f"this is a bug in stylefw {__version__}; please report it, with the "
                         "traceback that --debug prints")


def _failed(exc: BaseException) -> str:
    return f"raised {type(exc).__name__}: {exc}"


class GuardedLoss:
    """A loss that names itself and its plugin when it fails: it raises, or returns more than one number.

    The check reads the value's shape, never the value, so it costs no wait for the device.
    """

    def __init__(self, loss: Any, entry: Entry, manager: PluginManager | None) -> None:
        self.loss, self.entry, self.manager = loss, entry, manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loss, name)

    def prepare(self, targets: Any) -> Any:
        return self._call(self.loss.prepare, targets)

    def __call__(self, features: Any, image: Any) -> Any:
        value = self._call(self.loss, features, image)
        shape = getattr(value, "shape", None)
        if shape is not None and value.numel() != 1:
            raise bug_in(self.manager, self.entry, f"returned a tensor of shape {list(shape)}, not a scalar")
        if shape is None and not isinstance(value, (int, float)):
            raise bug_in(self.manager, self.entry, f"returned {type(value).__name__}, not a scalar tensor")
        return value

    def share(self, features: Any, image: Any, tile: Any) -> Any:
        return self._call(self.loss.share, features, image, tile)

    def statistics(self, features: Any, image: Any, tile: Any) -> Any:
        return self._call(self.loss.statistics, features, image, tile)

    def from_statistics(self, statistics: Any) -> Any:
        return self._call(self.loss.from_statistics, statistics)

    def _call(self, function: Callable, *args: Any) -> Any:
        return call_plugin(self.manager, self.entry, function, *args)


def call_plugin(manager: PluginManager | None, entry: Entry, function: Callable, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, code of ``entry``'s plugin: what it raises, other than ours, is its bug."""
    try:
        return function(*args, **kwargs)
    except StylefwError:
        raise
    except Exception as exc:
        if type(exc).__name__ in OUT_OF_MEMORY:
            raise
        raise bug_in(manager, entry, _failed(exc)) from exc


def classify(exc: BaseException, manager: PluginManager | None = None) -> StylefwError:
    """``exc`` as a StylefwError: itself if it is one, else the bug of the plugin it was raised in, or ours."""
    if isinstance(exc, StylefwError):
        return exc
    if type(exc).__name__ in OUT_OF_MEMORY:
        return RunError(f"out of memory ({type(exc).__name__}: {exc})",
                        hint="use a smaller size, fewer scales, or device: cpu")
    if isinstance(exc, OSError) and exc.filename is not None:
        return UserError(f"{exc.strerror or exc}", context=str(exc.filename))
    plugin = _raising_plugin(exc, manager)
    if plugin is None:
        return _ours(f"{type(exc).__name__}: {exc}")
    source = origin(manager, plugin[0]) or f"plugin '{plugin[0]}'"  # registered in code, not installed
    name, function = plugin
    where = f"hook '{function}'" if hasattr(manager.hook, function) else f"function '{function}'"
    return PluginBugError(f"{where} of {source} {_failed(exc)}",
                          hint=_plugin_hint(source, f"skip the plugin with {BLOCK_ENV}={name}"))


def _raising_plugin(exc: BaseException, manager: PluginManager | None) -> tuple[str, str] | None:
    """The installed plugin whose code ``exc`` was raised through (the deepest), and its outermost function there."""
    packages = {_package(plugin): name for name, plugin in _installed(manager)}
    found: tuple[str, str] | None = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        package = str(frame.f_globals.get("__name__", "")).split(".")[0]
        if package in packages and (found is None or found[0] != packages[package]):
            found = (packages[package], frame.f_code.co_name)
    return found


def _installed(manager: PluginManager | None) -> list[tuple[str, Any]]:
    if manager is None:
        return []
    # every plugin but the built-ins, which are stylefw's own code
    return [(name, plugin) for name, plugin in manager.list_name_plugin() if not manager.is_builtin(name)]


def _package(plugin: Any) -> str:
    """The top-level package a plugin object (a module, a class or an instance) lives in."""
    module = getattr(plugin, "__name__", None) if isinstance(plugin, type(sys)) else getattr(
        plugin, "__module__", None) or type(plugin).__module__
    return str(module).split(".")[0]
