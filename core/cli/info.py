"""The commands that look rather than run: ``validate``, ``list``, ``plugins``, ``score`` and ``plot``."""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RecipeError, UserError
from ..hooks.manager import plugin_infos
from .common import EXIT_OK, overrides_from, recipe_arguments, registry_of, summary, table

if TYPE_CHECKING:  # for the annotations only
    from ..contracts.recipe import Recipe

__all__ = ["add_info_commands", "add_output_commands", "cmd_validate", "cmd_list", "cmd_plugins", "cmd_score", "cmd_plot"]


def add_info_commands(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check a recipe without running it")
    recipe_arguments(validate)
    validate.set_defaults(handler=cmd_validate)

    listing = commands.add_parser("list", help="backbones, losses, optimizers, schedulers, commands and recipes")
    listing.add_argument("--wide", action="store_true",
                         help="never cut a description to the terminal's width (piped output is never cut)")
    listing.set_defaults(handler=cmd_list)
    plugins = commands.add_parser("plugins", help="installed plugins and their versions")
    plugins.add_argument("--example", metavar="DIR", type=Path,
                         help="write the example plugin package (a backbone, a loss and an optimizer) into DIR, to "
                              "start a plugin from")
    plugins.set_defaults(handler=cmd_plugins)


def add_output_commands(commands: Any) -> None:
    score = commands.add_parser("score", help="how stylised an output is and how much of the content it keeps")
    score.add_argument("image", metavar="OUTPUT", help="the stylised image to score (it is never modified)")
    score.add_argument("--content", required=True, metavar="IMAGE", help="the content photo")
    score.add_argument("--style", required=True, action="append", metavar="IMAGE",
                       help="a style image; repeat for several, weighted equally")
    score.add_argument("--backbone", metavar="NAME",
                       help="the backbone (default: the output's own, else the default backbone)")
    score.add_argument("--weights", metavar="W", help="the backbone's weights option: a name it knows (such as "
                                                      "imagenet or random) or a weights file (default: the output's own)")
    score.add_argument("--set", dest="sets", action="append", default=[], metavar="backbone.KEY=VALUE",
                       help="another option of the backbone, as a recipe's backbone section takes it, such as "
                            "--set backbone.layout=caffe for a Caffe file the weights cannot be told apart from")
    score.add_argument("--write", action="store_true", help="add the score to OUTPUT.json")
    score.set_defaults(handler=cmd_score)

    plot = commands.add_parser("plot", help="draw an output's loss curves from its sidecar (needs matplotlib)")
    plot.add_argument("sidecar", metavar="OUTPUT.json", help="the sidecar written beside an output")
    plot.add_argument("--out", metavar="FILE", help="the plot, .svg or .png (default: OUTPUT.losses.svg)")
    plot.set_defaults(handler=cmd_plot)


def cmd_validate(args: argparse.Namespace) -> int:
    """Every check a run would make before its first step: the schema, the plugins' refusals, the output, the
    device, the images, the backbone and its weights, the tiles; every problem listed at once."""
    # deferred: start-up time (torch, yaml and the schema); the other commands need none of the engine
    from ..engine.preflight import validated
    from ..engine.readiness import readiness
    from ..recipe.load import find_recipe, load_recipe

    registry = registry_of(args)
    path = find_recipe(args.recipe)
    recipe = validated(lambda: load_recipe(path, overrides_from(args), registry=registry), registry)
    found = readiness(recipe, registry)
    if found.problems:
        raise RecipeError(found.problems, source=recipe.source)
    if not args.quiet:
        losses = ", ".join(f"{loss.label} ×{loss.weight:g}" for loss in recipe.losses)
        schedule = recipe.optimizer.schedule
        with_schedule = f" with the {schedule.name} schedule" if schedule else ""
        weights = recipe.backbone.options.get("weights")
        shown = f" ({weights} weights)" if weights is not None else ""
        print(f"{path}: valid. {recipe.backbone.name}{shown}, losses: {losses}; "
              f"{recipe.optimizer.name}{with_schedule} {_plan(recipe)}")
        for note in found.unknown:  # what validation cannot know before the run
            print(f"  not checked: {note}")
    return EXIT_OK


def _plan(recipe: Recipe) -> str:
    """``for 500 steps at 512 px``, or the stages of a multi-scale recipe."""
    stages = recipe.stages
    if len(stages) == 1:
        return f"for {recipe.steps} steps at {recipe.size} px"
    sizes = ", ".join(str(stage.size) for stage in stages)
    return f"for {recipe.total_steps} steps in {len(stages)} stages at {sizes} px"


def cmd_score(args: argparse.Namespace) -> int:
    from ..recipe.overrides import override_mapping  # deferred: start-up time (yaml)
    from ..tools.score import score_files, write_score  # deferred: start-up time (torch)

    options = {}
    for key, value in override_mapping(args.sets).items():
        section, _, option = key.partition(".")
        if section != "backbone" or not option or "." in option or option == "name":
            raise UserError(f"--set {key}: stylefw score takes the backbone's options only",
                            hint="such as --set backbone.layout=caffe; choose the backbone with --backbone")
        options[option] = value
    score = score_files(args.image, args.content, args.style, backbone=args.backbone, weights=args.weights,
                        options=options, registry=registry_of(args))
    if args.write:
        write_score(args.image, score, inputs={"content": str(Path(args.content).resolve()),
                                             "style": [str(Path(path).resolve()) for path in args.style]})
    if not args.quiet:
        print(f"style {score.style:.2f}  content {score.content:.2f}")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from ..tools.plot import plot_sidecar  # deferred: start-up time (Pillow, for the file it writes)

    path = plot_sidecar(args.sidecar, args.out)
    if not args.quiet:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """One line per item; on a terminal, unless ``--wide``, the description is cut to its width. Piped, the lines
    are whole, for grep."""
    from ..recipe.load import builtin_recipes  # deferred: start-up time (yaml and the schema)

    registry = registry_of(args)
    rows = [(entry.kind, entry.name, entry.plugin, summary(entry.factory)) for entry in registry.entries()]
    rows += [("recipe", name, "stylefw", f"stylefw recipe {name}") for name in builtin_recipes()]
    rows.insert(0, ("kind", "name", "plugin", "description"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    cut = sys.stdout.isatty() and not args.wide
    room = max(shutil.get_terminal_size().columns - sum(widths) - 2 * len(widths), 20)
    for *names, description in rows:
        if cut and len(description) > room:
            description = description[:room - 1] + "…"
        print("  ".join(name.ljust(width) for name, width in zip(names, widths)) + "  " + description)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.example is not None:
        return _write_example(args.example, quiet=args.quiet)
    from rich.console import Console  # deferred: start-up time

    shown = table("plugin", "distribution", "version", "provides")
    registry = registry_of(args)
    for info in plugin_infos(registry.manager):
        provides = ", ".join(f"{e.kind} {e.name}" for e in registry.entries() if e.plugin == info.name)
        shown.add_row(info.name, info.distribution, info.version, provides or "-")
    Console(soft_wrap=True).print(shown)
    return EXIT_OK


# the example plugin package, shipped inside stylefw as data (pyproject.toml: stylefw.example_plugin)
EXAMPLE = ("pyproject.toml", "README.md", "stylefw_example/__init__.py")


def _write_example(folder: Path, *, quiet: bool) -> int:
    """Copy the example plugin package into ``folder``, which must not hold anything yet."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"--example {folder}: the folder is not empty", hint="name a new folder; it is created")
    source = resources.files("stylefw.example_plugin")
    for name in EXAMPLE:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.joinpath(name).read_bytes())
    if not quiet:
        print(f"wrote the example plugin package to {folder}: edit it, then pip install -e {folder}")
    return EXIT_OK
