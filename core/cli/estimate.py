"""``stylefw estimate``: a run's peak memory and time before it starts, and the largest size a budget allows."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..tools.timing import format_duration
from .common import overrides_from, recipe_arguments, registry_of

__all__ = ["add_estimate_command", "budget_argument"]


def budget_argument(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--budget", metavar="BYTES", help=text)


def add_estimate_command(commands: Any) -> None:
    estimate = commands.add_parser(
        "estimate", help="a run's peak memory and time per step, before it starts",
        description="Predict the recipe's peak memory (per stage) and time on the device it would use, from two "
                    "short runs measured once and cached, and the largest size that fits a budget.")
    recipe_arguments(estimate)
    budget_argument(estimate, "the memory to fit, such as 24GB or 1.5GiB (default: the device's free memory now)")
    estimate.add_argument("--json", action="store_true", help="print the estimate as one JSON object")
    estimate.add_argument("--recalibrate", action="store_true", help="measure again instead of using the cached runs")
    estimate.set_defaults(handler=cmd_estimate)


def cmd_estimate(args: argparse.Namespace) -> int:
    from ..recipe.load import load_recipe  # deferred: start-up time (yaml and the schema)
    from ..tools.estimate import estimate, parse_bytes, show_bytes  # deferred: start-up time (torch)

    registry = registry_of(args)
    recipe = load_recipe(args.recipe, overrides_from(args), registry=registry)
    budget = parse_bytes(args.budget) if args.budget else None
    if not args.json and not args.quiet:
        print("measuring two short runs of this recipe's work (once per recipe, device and version)...",
              file=sys.stderr)
    found = estimate(recipe, budget=budget, recalibrate=args.recalibrate, registry=registry)
    if args.json:
        print(json.dumps(found.as_dict()))
        return 0
    for stage in found.stages:
        height, width = stage.shape
        tiles = f"  in {stage.tiles} tiles" if stage.tiles > 1 else ""
        print(f"stage {stage.index}/{len(found.stages)}  {width}×{height} px{tiles}  {stage.steps} steps  "
              f"peak {show_bytes(stage.peak_bytes)}  {stage.seconds_per_step:.2f} s/step")
    largest = max(found.stages, key=lambda stage: stage.peak_bytes)
    verdict = "fits" if found.peak_bytes <= found.budget else "does NOT fit"
    print(f"peak {show_bytes(found.peak_bytes)} (stage {largest.index}) on {found.device}, about "
          f"{format_duration(found.seconds)} in all; {verdict} in {show_bytes(found.budget)}, which allows a long "
          f"edge up to {found.largest_size} px")
    return 0
