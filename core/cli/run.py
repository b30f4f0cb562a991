"""``stylefw recipe`` and ``stylefw resume``: a run, watched (the progress display, the preview), reported."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from ..contracts.run import FAILED, Result
from ..engine.files import checkpoint_path, sidecar_path
from ..tools.timing import format_duration
from .common import (EXIT_OK, EXIT_RUNTIME, linger, overrides_from, preview, recipe_arguments, registry_of, renderer,
                     run_arguments, watching)

__all__ = ["add_run_commands", "cmd_recipe", "cmd_resume"]


def add_run_commands(commands: Any) -> argparse.ArgumentParser:
    """``recipe`` and ``resume``; returns ``recipe``'s parser, which other commands add to (``--budget``)."""
    recipe = commands.add_parser("recipe", help="run a recipe (a file or a built-in name)")
    recipe_arguments(recipe)
    run_arguments(recipe)
    recipe.set_defaults(handler=cmd_recipe)

    resume = commands.add_parser("resume", help="continue an interrupted run from its checkpoint")
    resume.add_argument("checkpoint", metavar="OUTPUT_OR_CKPT", help="the run's output (out.png) or its out.png.ckpt")
    resume.add_argument("--force", action="store_true",
                        help="continue even if --set values or the input files differ from the checkpoint's")
    resume.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key; a value that differs from the checkpoint's needs --force")
    run_arguments(resume)
    resume.set_defaults(handler=cmd_resume)
    return recipe


def cmd_recipe(args: argparse.Namespace) -> int:
    # deferred: start-up time (torch, yaml and the schema); ``stylefw --help`` needs none of the engine or recipes
    from ..engine.api import run
    from ..engine.preflight import validated
    from ..recipe.load import find_recipe, load_recipe
    from ..tools.estimate import parse_bytes, refuse_over_budget

    registry = registry_of(args)
    path = find_recipe(args.recipe)
    output = {"output": str(Path.cwd() / f"{path.stem}.png")}
    recipe = validated(lambda: load_recipe(path, overrides_from(args), defaults=output, registry=registry), registry)
    _require_plot(args)
    if args.budget:
        refuse_over_budget(recipe, parse_bytes(args.budget), registry)
    with renderer(args) as shown, preview(args) as watched, \
            watching(args, progress=shown, preview=watched):
        result = run(recipe, debug=args.debug, registry=registry)
        code = _report(args, result)
        _plot(args, result)
        linger(args, watched)
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    # deferred: start-up time (torch), as in cmd_recipe
    from ..engine.api import resume

    registry = registry_of(args)
    every = [("checkpoint_every", args.checkpoint_every)] if args.checkpoint_every is not None else []
    _require_plot(args)
    with renderer(args) as shown, preview(args) as watched, watching(args, progress=shown, preview=watched):
        result = resume(args.checkpoint, list(args.sets) + every, force=args.force, debug=args.debug,
                        registry=registry)
        code = _report(args, result)
        _plot(args, result)
        linger(args, watched)
    return code


def _require_plot(args: argparse.Namespace) -> None:
    """Before a run with --plot: matplotlib must be there, or the run would end without its plot."""
    if args.plot:
        from ..tools.plot import require_matplotlib  # deferred: start-up time, as in cmd_recipe

        require_matplotlib()


def _plot(args: argparse.Namespace, result: Result) -> None:
    """With --plot, the loss curves beside the output (a run without an output has none to plot beside)."""
    if args.plot and result.output is not None and result.trace:
        from ..tools.plot import plot_path, plot_sidecar  # deferred: start-up time, as in cmd_recipe

        path = plot_sidecar(sidecar_path(result.output), plot_path(result.output))
        if not args.quiet:
            print(f"plotted the losses in {path}", file=sys.stderr)


def _report(args: argparse.Namespace, result: Result) -> int:
    """What the user reads after a run, and the exit code: 128 + the signal's number after a signal (130 for
    Ctrl-C), 1 after a non-finite loss, 0 after a finish or a planned stop."""
    recipe, stop = result.recipe, result.stopped
    if stop is not None:
        stage = recipe.stages[stop.stage - 1]
        where = f"stage {stop.stage}/{len(recipe.stages)} ({stage.size} px), " if len(recipe.stages) > 1 else ""
        at = f"{where}step {stop.step}/{stage.steps}"
        if result.interrupted:
            name = stop.details.get("signal", "SIGINT")
            by = f" by {name}" if name != "SIGINT" else ""
            print(f"interrupted at {at}{by}; wrote the image so far to {result.output}, and "
                  f"{checkpoint_path(result.output)} to continue with 'stylefw resume {result.output}'", file=sys.stderr)
            return 128 + int(signal.Signals[name])
        if stop.reason == FAILED:
            details, last = stop.details, stop.details["last_finite"]
            kept = f"stage {last['stage']}, step {last['step']}" if len(recipe.stages) > 1 else f"step {last['step']}"
            print(f"error: {details['message']}; wrote {details['kept']} ({kept}) to "
                  f"{result.output}\n  hint: {details['hint']}", file=sys.stderr)
            return EXIT_RUNTIME
        if not args.quiet:
            print(f"stopped at {at}: {stop.reason}", file=sys.stderr)
    if not args.quiet:
        seconds = result.trace[-1].elapsed if result.trace else 0.0
        width, height = result.image.size
        print(f"wrote {result.output} ({width}×{height}, {len(result.trace)} steps in {format_duration(seconds)} "
              f"on {result.device}; metadata in {sidecar_path(result.output)})")
    return EXIT_OK
