"""Commands that plugins add through ``register_commands``, called as ``main(argv)``."""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import stylefw
from stylefw import registry as registry_module
from stylefw.cli import main
from stylefw.errors import PluginError, StylefwWarning, UserError
from stylefw.plugin_manager import BLOCK_ENV, get_plugin_manager
from stylefw.registry import build_registry, default_registry


def hello_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--shout", action="store_true")


def hello(args: argparse.Namespace) -> int:
    """Greet someone."""
    if args.name == "nobody":
        raise UserError("there is nobody to greet", hint="name someone")
    if args.name == "bug":
        raise ZeroDivisionError("division by zero")
    if not args.quiet:
        print(f"hello {args.name}".upper() if args.shout else f"hello {args.name}")
    return 3 if args.name == "world" else 0


class Greeter:
    """Adds ``stylefw hello NAME [--shout]``, whose help is its handler's docstring."""

    @stylefw.hookimpl
    def register_commands(self, register):
        register("hello", hello, configure=hello_arguments)


def named(name: str, handler=hello):
    class Plugin:
        @stylefw.hookimpl
        def register_commands(self, register):
            register(name, handler, help=f"the {name} command")

    return Plugin()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_plugin_command_is_listed_in_help_and_runs(install_plugins, capsys):
    install_plugins(greeter=Greeter())
    code, out, err = run(capsys, "--help")
    assert code == 0
    assert any(line.split() == ["hello", "Greet", "someone."] for line in out.splitlines())
    assert run(capsys, "hello", "ada", "--shout") == (0, "HELLO ADA\n", "")
    assert run(capsys, "hello", "world") == (3, "hello world\n", "")  # its exit code is the CLI's


def test_a_plugin_command_gets_the_common_options(install_plugins, capsys):
    install_plugins(greeter=Greeter())
    assert run(capsys, "hello", "ada", "--quiet") == (0, "", "")
    assert run(capsys, "-q", "hello", "ada") == (0, "", "")


def test_a_plugin_commands_usage_error_exits_2(install_plugins, capsys):
    install_plugins(greeter=Greeter())
    code, out, err = run(capsys, "hello")
    assert (code, out) == (2, "")
    assert err.startswith("usage: stylefw hello") and "required: name" in err


def test_a_plugin_commands_error_is_rendered_like_a_builtin_ones(install_plugins, capsys):
    install_plugins(greeter=Greeter())
    code, out, err = run(capsys, "hello", "nobody")
    assert (code, out, err) == (2, "", "error: there is nobody to greet\n  hint: name someone\n")
    code, out, err = run(capsys, "hello", "bug")
    assert (code, out) == (1, "")
    # the plugin's bug, not stylefw's: the message names it and where it raised
    assert err.startswith("error: function 'hello' of plugin 'greeter' raised ZeroDivisionError: division by zero\n")
    assert "this is a bug in plugin 'greeter'" in err


def test_with_a_broken_plugin_left_out_another_plugins_bug_is_still_its_own(monkeypatch, capsys, request):
    def manager(block=(), **kwargs):
        if "broken" not in block:
            raise PluginError("plugin 'broken' failed to import: RuntimeError: kaboom")
        built = get_plugin_manager(load_entry_points=False)
        built.register(Greeter(), name="greeter")
        return built

    monkeypatch.setattr(registry_module, "get_plugin_manager", manager)
    monkeypatch.setattr("stylefw.cli.get_plugin_manager", manager)
    default_registry.cache_clear()
    request.addfinalizer(default_registry.cache_clear)
    code, _, err = run(capsys, "hello", "bug", "--no-plugin", "broken")
    assert code == 1 and err.startswith("error: function 'hello' of plugin 'greeter' raised ZeroDivisionError")


@pytest.mark.parametrize("argv", [["hello", "bug", "--debug"], ["--debug", "hello", "bug"]])
def test_debug_before_or_after_the_command_shows_the_traceback(install_plugins, capsys, argv):
    install_plugins(greeter=Greeter())
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: division by zero" in err


def test_debug_reaches_the_subcommands_a_plugin_nests(capsys, tmp_path):
    code, out, err = run(capsys, "weights", "inspect", str(tmp_path / "nope.pth"), "--debug")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-2] == f"error: weights file {tmp_path / 'nope.pth'} does not exist"


@pytest.mark.parametrize("builtin", ["recipe", "validate", "list", "plugins", "score"])
def test_a_plugin_command_named_like_a_builtin_one_is_an_error_naming_both(install_plugins, capsys, builtin):
    install_plugins(**{"copycat": named(builtin)})
    code, out, err = run(capsys, "--help")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: command '{builtin}' is registered twice: by stylefw (a built-in command) "
                          "and by 'copycat'\n")


def test_two_plugins_with_one_command_name_is_an_error_naming_both():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(named("hello"), name="first-plugin")
    manager.register(named("hello"), name="second-plugin")
    with pytest.raises(PluginError, match="command 'hello' is registered twice: by 'first-plugin' and by "
                                          "'second-plugin'"):
        build_registry(manager)


def test_a_command_name_argparse_would_misread_is_refused(install_plugins, capsys):
    install_plugins(**{"dashing": named("--hello")})
    code, _, err = run(capsys, "--help")
    assert code == 2
    assert "error: plugin 'dashing' registered a command with an invalid name '--hello'" in err


def test_weights_is_the_vgg_plugins_command(monkeypatch, capsys):
    monkeypatch.setenv(BLOCK_ENV, "stylefw.plugins.vgg")
    default_registry.cache_clear()
    try:
        code, out, err = run(capsys, "weights", "inspect", "x.pth")
    finally:
        default_registry.cache_clear()
    assert (code, out) == (2, "")
    assert "invalid choice: 'weights'" in err


def test_building_the_parser_and_the_weights_command_imports_no_torch():
    # the plugins' modules are imported by then (the built-ins import torch); the parser itself needs none
    code = ("import argparse, sys; from stylefw.cli import build_parser; from stylefw.registry import Registry; "
            "from stylefw.plugins import cli_weights; build_parser(Registry()).parse_args(['list']); "
            "cli_weights.configure(argparse.ArgumentParser()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parent)
    assert result.stdout.strip() == "[]"


def test_version_needs_no_plugin_and_debug_shows_why_one_failed(monkeypatch, capsys, request):
    def broken(**kwargs):
        raise PluginError("plugin 'broken' failed to import: RuntimeError: kaboom")

    monkeypatch.setattr(registry_module, "get_plugin_manager", broken)
    default_registry.cache_clear()
    request.addfinalizer(default_registry.cache_clear)
    assert run(capsys, "--version") == (0, f"stylefw {stylefw.__version__}\n", "")
    assert run(capsys, "list") == (2, "", "error: plugin 'broken' failed to import: RuntimeError: kaboom\n")
    code, _, err = run(capsys, "list", "--debug")
    assert code == 2 and "Traceback (most recent call last)" in err


def test_a_warning_while_plugins_load_respects_quiet(install_plugins, monkeypatch, capsys):
    install_plugins(greeter=Greeter())
    loaded = registry_module.get_plugin_manager

    def warning_manager(**kwargs):
        warnings.warn("the greeter plugin is old", StylefwWarning)
        return loaded(**kwargs)

    monkeypatch.setattr(registry_module, "get_plugin_manager", warning_manager)
    assert run(capsys, "hello", "ada") == (0, "hello ada\n", "warning: the greeter plugin is old\n")
    assert run(capsys, "hello", "ada", "-q") == (0, "", "")
