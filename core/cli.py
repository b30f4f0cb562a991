"""The ``stylefw`` command: recipe, resume, batch, validate, list, plugins, check, estimate, score, and the plugins'
commands (the VGG plugin's ``weights``). Errors become messages and exit codes here."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from . import __version__
from .cli_batch import add_batch_command
from .cli_check import add_check_command
from .cli_estimate import add_estimate_command, budget_argument
from .errors import PluginError, StylefwError, UserError

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["main", "entry", "build_parser"]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
COMMAND_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="print nothing but errors")


class _Parser(argparse.ArgumentParser):
    """A parser taking --debug and --quiet: the top level, every command, and any subcommand a plugin adds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # suppressed defaults: a command's parser must not undo a --debug given before the command's name
        _common_options(self, argparse.SUPPRESS)


def _early_parser() -> argparse.ArgumentParser:
    """--debug, --quiet and --version, read before the plugins load: loading them can fail or warn, and is slow."""
    parser = argparse.ArgumentParser(prog="stylefw", add_help=False)
    _common_options(parser, False)
    parser.add_argument("--version", action="version", version=f"stylefw {__version__}")
    return parser


def build_parser(registry: Registry | None = None) -> argparse.ArgumentParser:
    """The ``stylefw`` parser: the built-in commands, then those of ``registry``'s plugins (default: all installed)."""
    parser = _Parser(prog="stylefw", description="Neural style transfer from YAML recipes and plugins.")
    parser.set_defaults(debug=False, quiet=False)
    parser.add_argument("--version", action="version", version=f"stylefw {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _builtin_commands(commands)
    _plugin_commands(commands, registry)
    return parser


def _builtin_commands(commands: Any) -> None:
    recipe = commands.add_parser("recipe", help="run a recipe (a file or a built-in name)")
    _recipe_arguments(recipe)
    _run_arguments(recipe)
    recipe.set_defaults(handler=cmd_recipe)

    resume = commands.add_parser("resume", help="continue an interrupted run from its checkpoint")
    resume.add_argument("checkpoint", metavar="OUTPUT_OR_CKPT", help="the run's output (out.png) or its out.png.ckpt")
    resume.add_argument("--force", action="store_true",
                        help="continue even if --set values or the input files differ from the checkpoint's")
    resume.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key; a value that differs from the checkpoint's needs --force")
    _run_arguments(resume)
    resume.set_defaults(handler=cmd_resume)
    add_batch_command(commands)

    validate = commands.add_parser("validate", help="check a recipe without running it")
    _recipe_arguments(validate)
    validate.set_defaults(handler=cmd_validate)

    listing = commands.add_parser("list", help="backbones, losses, optimizers, schedulers, commands and recipes")
    listing.set_defaults(handler=cmd_list)
    plugins = commands.add_parser("plugins", help="installed plugins and their versions")
    plugins.set_defaults(handler=cmd_plugins)

    add_check_command(commands)
    add_estimate_command(commands, _recipe_arguments)
    budget_argument(recipe, "refuse to start (exit 2) when the estimated peak memory is over this, such as 24GB; "
                            "see stylefw estimate")

    score = commands.add_parser("score", help="how stylised an output is and how much of the content it keeps")
    score.add_argument("image", metavar="OUTPUT", help="the stylised image to score (it is never modified)")
    score.add_argument("--content", required=True, metavar="IMAGE", help="the content photo")
    score.add_argument("--style", required=True, action="append", metavar="IMAGE",
                       help="a style image; repeat for several, weighted equally")
    score.add_argument("--backbone", metavar="NAME", help="the backbone (default: the output's own, else vgg19)")
    score.add_argument("--weights", metavar="W", help="imagenet, random or a weights file (default: the output's own)")
    score.add_argument("--write", action="store_true", help="add the score to OUTPUT.json")
    score.set_defaults(handler=cmd_score)

    plot = commands.add_parser("plot", help="draw an output's loss curves from its sidecar (needs matplotlib)")
    plot.add_argument("sidecar", metavar="OUTPUT.json", help="the sidecar written beside an output")
    plot.add_argument("--out", metavar="FILE", help="the plot, .svg or .png (default: OUTPUT.losses.svg)")
    plot.set_defaults(handler=cmd_plot)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a command that runs: progress, the preview, and checkpoints."""
    parser.add_argument("--progress", choices=("auto", "rich", "plain"), default="auto",
                        help="rich display, plain log lines, or auto (rich on a terminal)")
    parser.add_argument("--preview", action="store_true",
                        help="watch the run in a browser: serves a page on 127.0.0.1 and prints its URL")
    parser.add_argument("--open", action="store_true", help="with --preview, open the page in the browser")
    parser.add_argument("--preview-port", type=int, default=0, metavar="PORT",
                        help="the preview's port (default: a free one)")
    parser.add_argument("--preview-linger", type=float, metavar="SECONDS",
                        help="keep the preview up this long after the run ends (default: until Ctrl-C)")
    parser.add_argument("--plot", action="store_true",
                        help="also write OUTPUT.losses.svg, the loss curves (needs matplotlib: stylefw[plot])")
    parser.add_argument("--log-every", type=int, metavar="N", help="with plain progress, a line every N steps")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="write OUTPUT.ckpt every N steps of the run, for 'stylefw resume'")


def _plugin_commands(commands: Any, registry: Registry | None) -> None:
    """Add each plugin's commands after the built-ins, so that a plugin cannot replace one."""
    from .registry import default_registry

    for entry in (registry or default_registry()).entries("command"):
        if entry.name in commands.choices:
            raise PluginError(f"command '{entry.name}' is registered twice: by stylefw (a built-in command) and by "
                              f"'{entry.plugin}'", hint="the plugin must choose another name")
        if not COMMAND_NAME.fullmatch(entry.name):
            raise PluginError(f"plugin '{entry.plugin}' registered a command with an invalid name '{entry.name}'",
                              hint="a command's name is lower-case letters, digits, '-' and '_', starting with a letter")
        help_text = entry.declarations.get("help") or _summary(entry.factory)
        command = commands.add_parser(entry.name, help=help_text, description=help_text)
        configure = entry.declarations.get("configure")
        if configure is not None:
            configure(command)
        command.set_defaults(handler=entry.factory)


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="a recipe file, or the name of a built-in recipe such as vangogh.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, e.g. --set optimizer.lr=0.05 or --set losses[1].weight=1e5")
    parser.add_argument("--content", metavar="IMAGE", help="content image (path or URL)")
    parser.add_argument("--style", action="append", metavar="IMAGE", help="style image; repeat to blend several")
    parser.add_argument("--output", metavar="FILE", help="output image (.png, .jpg or .webp)")
    parser.add_argument("--size", type=int, metavar="PX", help="long edge of the output in pixels")
    parser.add_argument("--steps", type=int, help="number of optimizer steps")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, help="random seed")


def overrides_from(args: argparse.Namespace) -> list[Any]:
    """``--set`` strings, then the shortcuts as (key, value) pairs; override paths resolve against the cwd."""
    overrides: list[Any] = list(args.sets)
    if args.content:
        overrides.append(("content", args.content))
    if args.style:
        overrides.append(("style", args.style))
    if args.output:
        overrides.append(("output", args.output))
    for key in ("size", "steps", "device", "seed", "checkpoint_every"):
        if getattr(args, key, None) is not None:
            overrides.append((key, getattr(args, key)))
    return overrides


def cmd_recipe(args: argparse.Namespace) -> int:
    from .api import run
    from .recipe import find_recipe, load_recipe

    path = find_recipe(args.recipe)
    recipe = load_recipe(path, overrides_from(args), defaults={"output": str(Path.cwd() / f"{path.stem}.png")})
    _check_plot(args)
    if args.budget:
        from .estimate import check_budget, parse_bytes

        check_budget(recipe, parse_bytes(args.budget))
    from .events import broadcast

    with _renderer(args, recipe.total_steps) as renderer, _preview(args) as preview:
        result = run(recipe, on_event=broadcast([renderer, preview]), on_download=renderer.download,
                     debug=args.debug)
        code = _report_run(args, result)
        _plot(args, result)
        _linger(args, preview)
    return code


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_sidecar

    path = plot_sidecar(args.sidecar, args.out)
    if not args.quiet:
        print(f"wrote {path}")
    return EXIT_OK


def _check_plot(args: argparse.Namespace) -> None:
    """Before a run with --plot: matplotlib must be there, or the run would end without its plot."""
    if args.plot:
        from .plot import require_matplotlib

        require_matplotlib()


def _plot(args: argparse.Namespace, result: Any) -> None:
    """With --plot, the loss curves beside the output (a run without an output has none to plot beside)."""
    if args.plot and result.output is not None and result.trace:
        from .plot import plot_path, plot_sidecar

        path = plot_sidecar(f"{result.output}.json", plot_path(result.output))
        if not args.quiet:
            print(f"plotted the losses in {path}", file=sys.stderr)


def _resume_overrides(args: argparse.Namespace) -> list[Any]:
    """``--set`` strings, then ``--checkpoint-every`` (0 turns the periodic checkpoints off)."""
    every = [("checkpoint_every", args.checkpoint_every)] if args.checkpoint_every is not None else []
    return list(args.sets) + every


def cmd_resume(args: argparse.Namespace) -> int:
    from .api import resume
    from .checkpoint import read_checkpoint
    from .recipe import recipe_from_dict

    overrides = _resume_overrides(args)
    _check_plot(args)
    # the renderer's pace comes from the run's length, so the checkpoint's recipe is read here first
    steps = recipe_from_dict(read_checkpoint(args.checkpoint)["recipe"]).total_steps
    from .events import broadcast

    with _renderer(args, steps) as renderer, _preview(args) as preview:
        result = resume(args.checkpoint, overrides, force=args.force, on_event=broadcast([renderer, preview]),
                        on_download=renderer.download, debug=args.debug)
        code = _report_run(args, result)
        _plot(args, result)
        _linger(args, preview)
    return code


@contextlib.contextmanager
def _preview(args: argparse.Namespace) -> Iterator[Any]:
    """With --preview, the page's server for the duration, its URL printed (and opened with --open)."""
    if not args.preview:
        yield None
        return
    from .api import snapshot_saver
    from .preview import Preview
    from .preview_server import PreviewServer

    preview = Preview(saver=lambda start: snapshot_saver(start.recipe, start.device))
    try:
        server = PreviewServer(preview, args.preview_port)
    except OSError as exc:
        raise UserError(f"cannot serve the preview on port {args.preview_port}: {exc.strerror or exc}",
                        context="--preview-port", hint="choose another port, or leave it out for a free one") from None
    with server:
        print(f"preview: {server.url}", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(server.url)
        yield preview


def _linger(args: argparse.Namespace, preview: Any) -> None:
    """Keep the preview's page up after the run: for --preview-linger seconds, or until Ctrl-C."""
    if preview is None:
        return
    if args.preview_linger is None:
        print("the preview stays up; Ctrl-C to close it", file=sys.stderr, flush=True)
    try:
        time.sleep(args.preview_linger if args.preview_linger is not None else 10**9)
    except KeyboardInterrupt:
        pass


def _report_run(args: argparse.Namespace, result: Any) -> int:
    """What the user reads after a run, and the exit code: 128 + the signal's number after a signal (130 for
    Ctrl-C), 1 after a non-finite loss, 0 after a finish or a planned stop."""
    from .contracts import FAILED
    from .progress import format_duration

    recipe, stop = result.recipe, result.stopped
    if stop is not None:
        stage = recipe.stages[stop.stage - 1]
        where = f"stage {stop.stage}/{len(recipe.stages)} ({stage.size} px), " if len(recipe.stages) > 1 else ""
        at = f"{where}step {stop.step}/{stage.steps}"
        if result.interrupted:
            name = stop.details.get("signal", "SIGINT")
            by = f" by {name}" if name != "SIGINT" else ""
            print(f"interrupted at {at}{by}; wrote the image so far to {result.output}, and {result.output}.ckpt "
                  f"to continue with 'stylefw resume {result.output}'", file=sys.stderr)
            return 128 + int(signal.Signals[name])
        if stop.reason == FAILED:
            details, last = stop.details, stop.details["last_finite"]
            kept = f"stage {last['stage']}, step {last['step']}" if len(recipe.stages) > 1 else f"step {last['step']}"
            print(f"error: {details['message']}; wrote the last image with a finite loss ({kept}) to "
                  f"{result.output}\n  hint: {details['hint']}", file=sys.stderr)
            return EXIT_RUNTIME
        if not args.quiet:
            print(f"stopped at {at}: {stop.reason}", file=sys.stderr)
    if not args.quiet:
        seconds = result.trace[-1].elapsed if result.trace else 0.0
        width, height = result.image.size
        print(f"wrote {result.output} ({width}×{height}, {len(result.trace)} steps in {format_duration(seconds)} "
              f"on {result.device}; metadata in {result.output}.json)")
    return EXIT_OK


def _renderer(args: argparse.Namespace, steps: int):
    from .progress import PlainRenderer, QuietRenderer, RichRenderer

    if args.quiet:
        return QuietRenderer()
    mode = args.progress
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "plain"
    if mode == "rich":
        return RichRenderer()
    return PlainRenderer(args.log_every or max(1, steps // 20))


def cmd_validate(args: argparse.Namespace) -> int:
    from .recipe import find_recipe, load_recipe

    path = find_recipe(args.recipe)
    recipe = load_recipe(path, overrides_from(args))
    if not args.quiet:
        losses = ", ".join(f"{loss.label} ×{loss.weight:g}" for loss in recipe.losses)
        schedule = recipe.optimizer.schedule
        with_schedule = f" with the {schedule.name} schedule" if schedule else ""
        weights = f" ({recipe.backbone.weights} weights)" if recipe.backbone.weights is not None else ""
        print(f"{path}: valid. {recipe.backbone.name}{weights}, losses: {losses}; "
              f"{recipe.optimizer.name}{with_schedule} {_plan(recipe)}")
    return EXIT_OK


def _plan(recipe: Any) -> str:
    """``for 500 steps at 512 px``, or the stages of a multi-scale recipe."""
    stages = recipe.stages
    if len(stages) == 1:
        return f"for {recipe.steps} steps at {recipe.size} px"
    sizes = ", ".join(str(stage.size) for stage in stages)
    return f"for {recipe.total_steps} steps in {len(stages)} stages at {sizes} px"


def cmd_score(args: argparse.Namespace) -> int:
    from .score import score_files, write_score

    score = score_files(args.image, args.content, args.style, backbone=args.backbone, weights=args.weights)
    if args.write:
        write_score(args.image, score, inputs={"content": str(Path(args.content).resolve()),
                                             "style": [str(Path(path).resolve()) for path in args.style]})
    if not args.quiet:
        print(f"style {score.style:.2f}  content {score.content:.2f}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """One line per item, the description cut to the terminal's width (80 columns in a log)."""
    import shutil

    from .recipe import builtin_recipes
    from .registry import default_registry

    rows = [(entry.kind, entry.name, entry.plugin, _summary(entry.factory)) for entry in default_registry().entries()]
    rows += [("recipe", name, "stylefw", f"stylefw recipe {name}") for name in builtin_recipes()]
    rows.insert(0, ("kind", "name", "plugin", "description"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    room = max(shutil.get_terminal_size().columns - sum(widths) - 2 * len(widths), 20)
    for *names, description in rows:
        if len(description) > room:
            description = description[:room - 1] + "…"
        print("  ".join(name.ljust(width) for name, width in zip(names, widths)) + "  " + description)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .plugin_manager import plugin_infos
    from .registry import default_registry

    table = _table("plugin", "distribution", "version", "provides")
    registry = default_registry()
    for info in plugin_infos(registry.manager):
        provides = ", ".join(f"{e.kind} {e.name}" for e in registry.entries() if e.plugin == info.name)
        table.add_row(info.name, info.distribution, info.version, provides or "-")
    Console(soft_wrap=True).print(table)
    return EXIT_OK


def _table(*columns: str):
    """Name columns never wrap or truncate (users copy them); only the last, free-text column wraps."""
    from rich.table import Table

    table = Table(box=None, padding=(0, 2))
    for column in columns[:-1]:
        table.add_column(column, no_wrap=True, min_width=len(column))
    table.add_column(columns[-1], ratio=1)
    return table


def _summary(factory: Any) -> str:
    """The first line of the factory's docstring; for a class or function of torch's, its name instead (torch's
    docstrings open with markup, not a summary)."""
    module = getattr(factory, "__module__", None) or ""
    if module.split(".")[0] == "torch":
        return f"{module}.{getattr(factory, '__qualname__', '')}".rstrip(".")
    doc = (getattr(factory, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code, for ``entry`` and for tests."""
    try:
        early, _ = _early_parser().parse_known_args(argv)  # --version exits here, before any plugin loads
    except SystemExit as exc:
        return int(exc.code or 0)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning(early.quiet)
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse has printed usage: 2 for bad usage, 0 for --help
            return int(exc.code or 0)
        except Exception as exc:  # a plugin failed to load or to add its command, so no command can be parsed
            return _fail(exc, debug=early.debug)
        return _dispatch(args)


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
        return _fail(exc, debug=args.debug)


def _fail(exc: Exception, *, debug: bool) -> int:
    error = exc if isinstance(exc, StylefwError) else _classify(exc)
    _report(debug, f"error: {error}")
    return error.exit_code


def _classify(exc: Exception) -> StylefwError:
    """Whose fault ``exc`` is, judged with the installed plugins (none, when they cannot even be loaded)."""
    from .faults import classify
    from .registry import default_registry

    try:
        manager = default_registry().manager
    except Exception:
        manager = None
    return classify(exc, manager)


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
