"""``stylefw check``: recipes against their goldens, or recording them, without pytest (see
:mod:`stylefw.tools.goldens`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UserError
from .common import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, registry_of, table

__all__ = ["add_check_command"]


def add_check_command(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="check recipes against their goldens, or record them",
        description="Run each recipe shrunk as its golden (NAME.golden.json beside NAME.yaml) says, and compare "
                    "the loss trace and the final picture. Exit 1 if any recipe fails.")
    check.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipe files, or names of built-in recipes")
    check.add_argument("--record", action="store_true",
                       help="record (or re-record) each recipe's golden, and say what changed")
    check.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="with --record, a setting of the shrunk run, kept in the golden (--set size=96, "
                            "--set backbone.weights=random; --set content=... picks the input to store); "
                            "when checking, a change to try against the golden")
    check.add_argument("--failures", default="stylefw-failures", metavar="DIR",
                       help="where a failed check writes its expected | actual | difference picture "
                            "(default: stylefw-failures)")
    check.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console  # deferred: start-up time (rich's console)

    from ..recipe.overrides import override_mapping  # deferred: start-up time (yaml)
    from ..tools.goldens import check, record  # deferred: start-up time (torch)

    registry = registry_of(args)
    overrides = override_mapping(args.sets)
    shown = table("recipe", "result", "time", "detail")
    reports, errors = [], []
    for name in args.recipes:
        try:
            if args.record:
                verdict = record(name, overrides=overrides, registry=registry)
            else:
                verdict = check(name, overrides=overrides, failures=args.failures, registry=registry)
        except UserError as exc:  # this recipe or its golden cannot be used; the others still run
            shown.add_row(name, "error", "-", str(exc).splitlines()[0])
            errors.append(exc)
            continue
        shown.add_row(str(verdict.recipe.name), verdict.status, f"{verdict.seconds:.1f} s", verdict.reason or "-")
        if verdict.report:
            reports.append(f"\n{verdict.recipe.name}: {verdict.reason}\n{verdict.report}")
    if not args.quiet:
        Console(soft_wrap=True).print(shown)
    for report in reports:
        print(report)
    for exc in errors:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_RUNTIME if reports else EXIT_USAGE if errors else EXIT_OK  # a recipe off its golden: 1, as a failed run
