"""The ``stylefw`` command: recipe, resume, batch, validate, list, plugins, check, estimate, score, plot, and the
plugins' commands (such as the backbone plugin's ``weights``). Errors become messages and exit codes here, and nowhere else.

Each command lives in the module of its kind (:mod:`~stylefw.cli.run`, :mod:`~stylefw.cli.info`,
:mod:`~stylefw.cli.batch`, :mod:`~stylefw.cli.check`, :mod:`~stylefw.cli.estimate`); what they share is
:mod:`~stylefw.cli.common`'s.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
import warnings
from typing import Any, Sequence

from .. import __version__
from ..errors import PluginError
from ..hooks.manager import get_plugin_manager
from ..hooks.registry import Registry, build_registry, default_registry
from .batch import add_batch_command
from .check import add_check_command
from .common import EXIT_INTERRUPTED, EXIT_RUNTIME, classify, summary
from .estimate import add_estimate_command, budget_argument
from .info import add_info_commands, add_output_commands
from .run import add_run_commands

__all__ = ["main", "entry", "build_parser"]

COMMAND_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="print nothing but errors")
    parser.add_argument("--no-plugin", dest="no_plugin", action="append", default=default, metavar="NAME",
                        help="leave the plugin NAME out (repeatable): a built-in feature such as progress, "
                             "checkpoints or sidecar, or an installed plugin, as STYLEFW_BLOCK_PLUGINS does")


class _Parser(argparse.ArgumentParser):
    """A parser taking --debug, --quiet and --no-plugin: the top level, every command, and any subcommand a plugin
    adds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # suppressed defaults: a command's parser must not undo a --debug given before the command's name
        _common_options(self, argparse.SUPPRESS)


def _early_parser() -> argparse.ArgumentParser:
    """--debug, --quiet, --no-plugin and --version, wherever they stand, read before the plugins load: loading
    them can fail or warn, and is slow, and --no-plugin decides which load."""
    parser = argparse.ArgumentParser(prog="stylefw", add_help=False)
    _common_options(parser, False)
    parser.set_defaults(no_plugin=[])
    parser.add_argument("--version", action="version", version=f"stylefw {__version__}")
    return parser


def build_parser(registry: Registry | None = None) -> argparse.ArgumentParser:
    """The ``stylefw`` parser: the built-in commands, then those of ``registry``'s plugins (default: all installed)."""
    parser = _Parser(prog="stylefw", description="Neural style transfer from YAML recipes and plugins.")
    parser.set_defaults(debug=False, quiet=False)
    parser.add_argument("--version", action="version", version=f"stylefw {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    recipe = add_run_commands(commands)
    add_batch_command(commands)
    add_info_commands(commands)
    add_check_command(commands)
    add_estimate_command(commands)
    budget_argument(recipe, "refuse to start (exit 2) when the estimated peak memory is over this, such as 24GB; "
                            "see stylefw estimate")
    add_output_commands(commands)
    _plugin_commands(commands, registry or default_registry())
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Give each command's parser itself as a default, so that an error about arguments the command does not take
    shows that command's usage (the deepest command's default wins: subcommands are parsed last)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.set_defaults(command_parser=command)
                _remember_parsers(command)


def _plugin_commands(commands: Any, registry: Registry) -> None:
    """Add each plugin's commands after the built-ins, so that a plugin cannot replace one."""
    for entry in registry.entries("command"):
        if entry.name in commands.choices:
            raise PluginError(f"command '{entry.name}' is registered twice: by stylefw (a built-in command) and by "
                              f"'{entry.plugin}'", hint="the plugin must choose another name")
        if not COMMAND_NAME.fullmatch(entry.name):
            raise PluginError(f"plugin '{entry.plugin}' registered a command with an invalid name '{entry.name}'",
                              hint="a command's name is lower-case letters, digits, '-' and '_', starting with a letter")
        help_text = entry.declarations.get("help") or summary(entry.factory)
        command = commands.add_parser(entry.name, help=help_text, description=help_text)
        configure = entry.declarations.get("configure")
        if configure is not None:
            configure(command)
        command.set_defaults(handler=entry.factory)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code, for ``entry`` and for tests."""
    try:
        early, _ = _early_parser().parse_known_args(argv)  # --version exits here, before any plugin loads
    except SystemExit as exc:
        return int(exc.code or 0)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning(early.quiet)
        registry = None
        try:
            registry = _registry(early.no_plugin)
            args, extra = build_parser(registry).parse_known_args(argv)
            if extra:  # the command's own usage, not the top level's
                args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as exc:  # argparse has printed usage: 2 for bad usage, 0 for --help
            return int(exc.code or 0)
        except Exception as exc:  # a plugin failed to load or to add its command, so no command can be parsed
            return _fail(exc, debug=early.debug, registry=registry)
        args.registry, args.no_plugin = registry, early.no_plugin
        return _dispatch(args)


def _registry(blocked: Sequence[str]) -> Registry:
    """The process's registry, or with ``--no-plugin`` one built without those plugins."""
    if not blocked:
        return default_registry()
    return build_registry(get_plugin_manager(block=blocked), lazy=True)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        _report(args.debug, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (stylefw list | head): say nothing more, and let exit not flush into the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUNTIME
    except Exception as exc:  # ours, a plugin's or the user's: classified, one message, traceback with --debug
        return _fail(exc, debug=args.debug, registry=getattr(args, "registry", None))


def _fail(exc: Exception, *, debug: bool, registry: Registry | None) -> int:
    error = classify(exc, registry)
    _report(debug, f"error: {error}")
    return error.exit_code


def _report(debug: bool, text: str) -> None:
    if debug:
        traceback.print_exc()
    print(text, file=sys.stderr)


def _show_warning(quiet: bool):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not quiet:
            print(f"warning: {message}", file=sys.stderr)

    return show


def entry() -> None:
    """The console-script entry point."""
    sys.exit(main())
