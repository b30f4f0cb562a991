"""The plugin manager and the registry: built-ins, entry points, duplicates, blocking, versions."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import stylefw
from stylefw.cli import main
from stylefw.errors import PluginError
from stylefw.hooks.manager import LazyPlugin, builtin_plugins
from stylefw.plugin_manager import BLOCK_ENV, PluginInfo, get_plugin_manager, plugin_infos
from stylefw.plugins import cli_weights
from stylefw.registry import build_registry, default_registry

BUILTIN_NAMES = {
    "backbone": {"vgg16": "stylefw.plugins.vgg", "vgg19": "stylefw.plugins.vgg"},
    "loss": {name: "stylefw.plugins.losses" for name in ("content", "gram", "sliced", "tv", "w2")},
    "optimizer": {name: "stylefw.plugins.optimizers" for name in ("adam", "lbfgs", "sgd")},
    "scheduler": {name: "stylefw.plugins.schedulers" for name in ("cosine", "exponential", "none", "step")},
    "command": {"weights": "stylefw.plugins.vgg"},
}


def builtins_only():
    """A registry of the built-in plugins alone, whatever else is installed."""
    return build_registry(get_plugin_manager(load_entry_points=False))


def install_fake_plugin(site: Path, monkeypatch, *, name: str, dist: str, version: str, source: str) -> None:
    """Put a module and a dist-info declaring it as a ``stylefw`` entry point on ``sys.path``."""
    module = f"fake_{name}_plugin"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[stylefw]\n{name} = {module}\n")
    monkeypatch.syspath_prepend(str(site))


def test_builtins_register_through_the_public_hooks():
    registry = builtins_only()
    found = {kind: {e.name: e.plugin for e in registry.entries(kind)} for kind in BUILTIN_NAMES}
    assert found == BUILTIN_NAMES
    manager = registry.manager
    for entry_point in builtin_plugins():
        assert entry_point.value.startswith("stylefw.plugins")
        hooks = [caller.name for caller in manager.get_hookcallers(manager.get_plugin(entry_point.name))]
        assert hooks, f"{entry_point.name} implements no stylefw hook"


class OneOfEach:
    """A plugin object registering one item of each kind, for the hook tests below."""

    @stylefw.hookimpl
    def register_backbones(self, register):
        register("fake_backbone", "backbone factory")

    @stylefw.hookimpl
    def register_losses(self, register):
        register("fake_loss", "loss factory")

    @stylefw.hookimpl
    def register_optimizers(self, register):
        register("fake_optimizer", "optimizer factory")

    @stylefw.hookimpl
    def register_schedulers(self, register):
        register("fake_scheduler", "scheduler factory")

    @stylefw.hookimpl
    def register_commands(self, register):
        register("fake_command", "command handler")


@pytest.mark.parametrize(("kind", "name", "factory"), [
    ("backbone", "fake_backbone", "backbone factory"),
    ("loss", "fake_loss", "loss factory"),
    ("optimizer", "fake_optimizer", "optimizer factory"),
    ("scheduler", "fake_scheduler", "scheduler factory"),
    ("command", "fake_command", "command handler"),
])
def test_each_hook_fills_its_own_registry(kind, name, factory):
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(OneOfEach(), name="one-of-each")
    entry = build_registry(manager).get(kind, name)
    assert (entry.kind, entry.factory, entry.plugin) == (kind, factory, "one-of-each")


# test_contracts.py requires a test_hook_<name> for every hook in hookspecs.py


def test_hook_register_backbones():
    registry = builtins_only()
    assert registry.get("backbone", "vgg19").factory.layer_names[:2] == ("conv1_1", "relu1_1")


def test_hook_register_losses():
    registry = builtins_only()
    assert registry.names("loss") == ["content", "gram", "sliced", "tv", "w2"]


def test_hook_register_optimizers():
    import torch

    registry = builtins_only()
    built = registry.get("optimizer", "lbfgs").factory([torch.zeros(1, requires_grad=True)], max_iter=3)
    assert isinstance(built, torch.optim.LBFGS) and built.defaults["max_iter"] == 3


def test_hook_register_schedulers():
    import torch

    registry = builtins_only()
    assert registry.names("scheduler") == ["cosine", "exponential", "none", "step"]
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = registry.get("scheduler", "step").factory(optimizer, total_steps=10, every=2)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)


def test_hook_register_commands():
    entry = builtins_only().get("command", "weights")
    assert entry.plugin == "stylefw.plugins.vgg"  # the backbones' plugin owns the command for their weights
    assert entry.factory is cli_weights.cmd_weights
    assert entry.declarations == {"help": cli_weights.HELP, "configure": cli_weights.configure}


def test_a_plugin_without_a_scheduler_hook_still_loads():
    """pluggy hooks are optional: a plugin written before schedulers existed registers as before."""
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(losses_plugin("older"), name="older-plugin")
    registry = build_registry(manager)
    assert registry.get("loss", "older").plugin == "older-plugin"
    assert {entry.plugin for entry in registry.entries("scheduler")} == {"stylefw.plugins.schedulers"}


def losses_plugin(name: str):
    class Plugin:
        @stylefw.hookimpl
        def register_losses(self, register):
            register(name, object)

    return Plugin()


def test_a_duplicate_name_names_both_plugins():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(losses_plugin("twin"), name="first-plugin")
    manager.register(losses_plugin("twin"), name="second-plugin")
    with pytest.raises(PluginError, match="loss 'twin' is registered twice") as caught:
        build_registry(manager)
    assert "'first-plugin'" in str(caught.value) and "'second-plugin'" in str(caught.value)
    assert BLOCK_ENV in caught.value.hint


def test_a_name_taken_from_a_builtin_names_the_builtin():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(losses_plugin("gram"), name="copycat")
    with pytest.raises(PluginError, match="by 'stylefw.plugins.losses' and by 'copycat'"):
        build_registry(manager)


def test_an_entry_point_that_fails_to_import_is_named(tmp_path, monkeypatch):
    install_fake_plugin(tmp_path / "site", monkeypatch, name="broken", dist="stylefw-broken", version="0.3",
                        source="raise RuntimeError('kaboom')\n")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    message = str(caught.value)
    assert "plugin 'broken' (from stylefw-broken) failed to import: RuntimeError: kaboom" in message
    assert f"{BLOCK_ENV}=broken" in message


def test_a_blocked_entry_point_is_not_imported(tmp_path, monkeypatch):
    install_fake_plugin(tmp_path / "site", monkeypatch, name="broken", dist="stylefw-broken", version="0.3",
                        source="raise RuntimeError('kaboom')\n")
    monkeypatch.setenv(BLOCK_ENV, "something-else, broken")
    manager = get_plugin_manager()
    assert manager.get_plugin("broken") is None
    assert "fake_broken_plugin" not in sys.modules


def test_blocking_builtins_by_module_name(monkeypatch):
    monkeypatch.setenv(BLOCK_ENV, "stylefw.plugins.losses , stylefw.plugins.optimizers")
    registry = builtins_only()
    assert registry.names("loss") == [] and registry.names("optimizer") == []
    assert registry.names("backbone") == ["vgg16", "vgg19"]


def test_plugin_infos_give_each_plugin_its_distribution_and_version(tmp_path, monkeypatch):
    install_fake_plugin(tmp_path / "site", monkeypatch, name="versioned", dist="stylefw-versioned", version="2.5.1",
                        source="""
                            import stylefw

                            @stylefw.hookimpl
                            def register_losses(register):
                                register("versioned_loss", object)
                        """)
    manager = get_plugin_manager()
    infos = {info.name: info for info in plugin_infos(manager)}
    assert infos["versioned"] == PluginInfo("versioned", "stylefw-versioned", "2.5.1")
    for entry_point in builtin_plugins():
        assert infos[entry_point.name] == PluginInfo(entry_point.name, "stylefw", stylefw.__version__)
    assert build_registry(manager).get("loss", "versioned_loss").plugin == "versioned"


def test_import_stylefw_does_not_import_torch():
    code = "import sys, stylefw; stylefw.hookimpl; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_and_plugin_commands_import_no_torch():
    # the built-ins' modules load when their hook is first called: the parser calls only register_commands
    # (the example plugin, when installed, imports torch itself, so it is blocked here)
    code = ("import sys\nfrom stylefw.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    env = {**os.environ, BLOCK_ENV: "example"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert "weights" in result.stdout  # the VGG plugin's command is listed
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_each_lazy_builtin_plugin_names_the_hooks_its_modules_implement():
    lazy = {point.name: point.load() for point in builtin_plugins()}
    lazy = {name: plugin for name, plugin in lazy.items() if isinstance(plugin, LazyPlugin)}
    assert lazy, "the built-ins that register items are LazyPlugins, so that --help imports no torch"
    for name, plugin in lazy.items():
        # what the modules implement, by hook: each named with its module, none left out, none named wrongly
        implemented = {hook: module for module in set(plugin.modules.values())
                       for hook, item in vars(importlib.import_module(module)).items()
                       if hook.startswith("register_") and hasattr(item, "stylefw_impl")}
        assert implemented == plugin.modules, f"{name}: its modules implement {implemented}"


# -- hook implementations that fit no hook ------------------------------------------------------


class Misspelt:
    @stylefw.hookimpl
    def register_loss(self, register):
        register("never", object)


def test_a_misspelt_hook_names_the_plugin_and_the_hook_it_meant():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Misspelt(), name="typo-plugin")
    with pytest.raises(PluginError) as caught:
        build_registry(manager)
    assert str(caught.value).startswith("plugin 'typo-plugin' implements 'register_loss', which is not a stylefw "
                                        "hook (did you mean register_losses?)")
    assert "optionalhook=True" in caught.value.hint


def test_every_misspelt_hook_is_reported_at_once():
    class Unrelated:
        @stylefw.hookimpl
        def frobnicate(self):
            pass

    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Misspelt(), name="typo-plugin")
    manager.register(Unrelated(), name="odd-plugin")
    with pytest.raises(PluginError) as caught:
        manager.check_pending()
    message = str(caught.value)
    assert "plugin 'odd-plugin' implements 'frobnicate', which is not a stylefw hook;" in message
    assert "plugin 'typo-plugin' implements 'register_loss'" in message


def test_a_hook_of_a_later_stylefw_marked_optional_is_not_an_error():
    class FromTheFuture:
        @stylefw.hookimpl(optionalhook=True)
        def register_palettes(self, register):
            register("sunset", object)

    manager = get_plugin_manager(load_entry_points=False)
    manager.register(FromTheFuture(), name="future-plugin")
    assert build_registry(manager).names("loss") == ["content", "gram", "sliced", "tv", "w2"]


def test_a_hook_implementation_with_the_wrong_arguments_names_the_plugin():
    class WrongArguments:
        @stylefw.hookimpl
        def register_losses(self, add):
            add("never", object)

    manager = get_plugin_manager(load_entry_points=False)
    with pytest.raises(PluginError) as caught:
        manager.register(WrongArguments(), name="wrong-plugin")
    assert str(caught.value).startswith("plugin 'wrong-plugin' does not fit its hook: "
                                        "hookimpl definition: register_losses(add);")
    assert manager.get_plugin("wrong-plugin") is None
    assert "wrong-plugin" not in {impl.plugin_name for impl in manager.hook.register_losses.get_hookimpls()}


@pytest.fixture
def fresh_default_registry():
    """``default_registry()`` built anew for the test, and again after it, without the test's plugins."""
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


def test_a_misspelt_hook_in_an_installed_plugin_stops_the_cli_with_exit_2(tmp_path, monkeypatch, capsys,
                                                                          fresh_default_registry):
    install_fake_plugin(tmp_path / "site", monkeypatch, name="typo", dist="stylefw-typo", version="1.0",
                        source="""
                            import stylefw

                            @stylefw.hookimpl
                            def register_optimizer(register):
                                register("never", object)
                        """)
    assert main(["list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: plugin 'typo' (from stylefw-typo) implements 'register_optimizer', "
                                   "which is not a stylefw hook (did you mean register_optimizers?)\n")
    assert "Traceback" not in captured.err


def test_a_declaration_given_as_none_is_not_made():
    class Plain:
        @stylefw.hookimpl
        def register_optimizers(self, register):
            register("plain", object, resize_state=None)

    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Plain(), name="plain-plugin")
    registry = build_registry(manager)
    assert registry.get("optimizer", "plain").declarations == {}
    assert "resize_state" in registry.get("optimizer", "adam").declarations
