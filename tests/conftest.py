"""Fixtures shared by several test files."""

from __future__ import annotations

import signal
import types

import pytest

from stylefw.hooks import registry as registry_module
from stylefw.hooks.manager import get_plugin_manager
from stylefw.hooks.registry import default_registry

pytest_plugins = ["pytester"]  # tests/test_regress.py runs pytest itself, with stylefw's plugin


@pytest.fixture
def default_signal_handlers():
    """SIGINT, SIGTERM and SIGHUP as a terminal gives them, whatever this test process inherited.

    A run leaves a signal its process started with ignored alone (so that ``nohup`` keeps working); a suite
    started under ``nohup``, or in the background of a script, inherits ignored SIGHUP or SIGINT, and the tests
    that send those signals would then see nothing happen.
    """
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                signal.SIGHUP: signal.SIG_DFL}
    inherited = {number: signal.getsignal(number) for number in defaults}
    for number, handler in defaults.items():
        signal.signal(number, handler)
    yield
    for number, handler in inherited.items():
        signal.signal(number, handler)


@pytest.fixture
def install_plugins(monkeypatch):
    """``install_plugins(name=plugin, ...)``: until the test ends, every plugin manager stylefw builds (the
    default registry's too) holds its own plugins and these, as if installed. ``shipped_by={name:
    (distribution, version)}`` says which distribution a plugin came from, for messages that name it."""

    def install(shipped_by: dict[str, tuple[str, str]] | None = None, **plugins: object) -> None:
        def manager(**kwargs: object):
            built = get_plugin_manager(load_entry_points=False)
            for name, (distribution, version) in (shipped_by or {}).items():
                built.distributions[name] = types.SimpleNamespace(name=distribution, version=version)
            for name, plugin in plugins.items():
                built.register(plugin, name=name)
            return built

        monkeypatch.setattr(registry_module, "get_plugin_manager", manager)
        default_registry.cache_clear()

    yield install
    default_registry.cache_clear()  # the registry built with them goes; monkeypatch then puts the loader back
