"""``stylefw batch``: the command line, the progress display and the processes torchrun starts.

Under ``torchrun --nproc-per-node N -m stylefw batch ...`` each process is a rank. The ranks plan the
same job list, read the logs of earlier runs, wait for each other (gloo), and take the jobs still to do
round-robin. Each rank runs on ``cuda:LOCAL_RANK`` when there are GPUs, otherwise on the CPU, with the
machine's cores divided among the ranks on it. At the end the first rank gathers the ranks' summaries,
merges the manifest, draws the contact sheet and prints one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..contracts.run import INTERRUPTED
from ..errors import UserError
from ..hooks.registry import Registry
from ..tools.timing import format_duration
from .common import linger, preview, preview_arguments, registry_of, watching

__all__ = ["add_batch_command", "cmd_batch"]



def add_batch_command(commands: Any) -> None:
    batch = commands.add_parser(
        "batch", help="run a grid of jobs (contents × styles × --grid values), resumably; under torchrun, "
                      "the jobs are shared among the processes",
        description="Run RECIPE once for each content × style × --grid value. Outputs, each with its sidecar, go "
                    "to --out with readable names, and DIR/manifest.jsonl records every job. Running the same "
                    "command again skips the finished jobs and continues interrupted ones from their checkpoints.")
    batch.add_argument("recipe", help="a recipe file, or the name of a built-in recipe such as vangogh.yaml")
    batch.add_argument("--out", required=True, metavar="DIR", help="the folder for the outputs and the manifest")
    batch.add_argument("--content", action="append", default=[], metavar="PATHS",
                       help="content images: a file, a folder of images or a quoted glob; repeat for more "
                            "(default: the recipe's content)")
    batch.add_argument("--style", action="append", default=[], metavar="PATHS",
                       help="styles, each a job of its own: a file, a folder or a quoted glob; repeat for more "
                            "(default: the recipe's styles, blended as it says)")
    batch.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="also sweep a recipe key over these values, e.g. --grid losses[1].weight=1e3,1e4,1e5; "
                            "repeat for more keys (every combination runs)")
    batch.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key for every job")
    batch.add_argument("--size", type=int, metavar="PX", help="long edge of the outputs in pixels")
    batch.add_argument("--steps", type=int, help="number of optimizer steps")
    batch.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (under torchrun, auto is cuda:LOCAL_RANK)")
    batch.add_argument("--seed", type=int, help="random seed")
    batch.add_argument("--sheet", action="store_true",
                       help="also write DIR/sheet.png: the contents as rows, the styles and grid values as columns")
    batch.add_argument("--sheet-cell", type=int, default=256, metavar="PX", help="the sheet's picture size")
    batch.add_argument("--batch-size", type=int, default=1, metavar="N",
                       help="optimise up to N jobs together, one forward pass over their images, where they differ "
                            "only in their images and their contents have one size (for a GPU, which one small "
                            "picture leaves mostly idle)")
    batch.add_argument("--threads", type=int, metavar="N",
                       help="CPU threads per process (default: the machine's cores divided among torchrun's "
                            "processes on it)")
    batch.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="write each job's OUTPUT.ckpt every N steps, so a killed job continues from there")
    batch.add_argument("--progress", choices=("auto", "rich", "plain"), default="auto",
                       help="rich display, plain log lines, or auto (rich on a terminal, and in one process)")
    preview_arguments(batch, "the batch")
    batch.set_defaults(handler=cmd_batch)


def _overrides(args: argparse.Namespace) -> list[Any]:
    overrides: list[Any] = list(args.sets)
    for key in ("size", "steps", "device", "seed", "checkpoint_every"):
        if getattr(args, key) is not None:
            overrides.append((key, getattr(args, key)))
    return overrides


def cmd_batch(args: argparse.Namespace) -> int:
    # deferred: start-up time (torch); ``stylefw --help`` and the other commands need none of it
    from ..tools.batch.jobs import shard
    from ..tools.batch.manifest import FAILED_JOB, INTERRUPTED_JOB, is_done, latest, read_records
    from ..tools.batch.ranks import Ranks

    ranks = Ranks.from_environment()
    out, jobs = _planned(args, ranks)
    start = time.perf_counter()
    args.preview = args.preview and ranks.rank == 0  # one page, the first process's: each would need its own port
    with ranks, preview(args) as watched:
        records = latest(read_records(out))
        todo = [job for job in jobs if not is_done(job, records)]
        ranks.barrier()  # every rank has read the logs before any rank writes to them
        mine = shard(todo, ranks.rank, ranks.world)
        with _renderer(args, ranks, len(mine)) as renderer, watching(args, progress=renderer, preview=watched):
            outcomes = _run_shard(mine, out, ranks, renderer, watched, batch_size=args.batch_size, debug=args.debug,
                                  registry=registry_of(args))
        summaries = ranks.gather([(job.id, outcome.status, outcome.error) for job, outcome in outcomes])
        if ranks.rank == 0:
            _finish(args, out, jobs, summaries, skipped=len(jobs) - len(todo), seconds=time.perf_counter() - start)
        ranks.barrier()  # the manifest is merged before any rank exits
        linger(args, watched)
    stopped = [outcome.result.stopped for _, outcome in outcomes if outcome.status == INTERRUPTED_JOB]
    if stopped and stopped[0].reason == INTERRUPTED:  # as a single run: 128 + the signal's number
        return 128 + int(signal.Signals[stopped[0].details.get("signal", "SIGINT")])
    return 1 if any(status == FAILED_JOB for summary in summaries for _, status, _ in summary) else 0


def _planned(args: argparse.Namespace, ranks: Any) -> tuple[Path, list[Any]]:
    """The output folder and every job of the batch, on this rank's device; the folder is made only once
    every argument has been checked, so a refused batch leaves nothing behind."""
    import torch  # deferred: start-up time, as in cmd_batch

    from ..recipe.load import find_recipe  # deferred: start-up time (yaml and the schema), as the jobs are
    from ..tools.batch.jobs import expand_inputs, parse_grid, plan_jobs

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: use 1 or more")
    threads = ranks.threads(args.threads)
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads {threads}: use 1 or more")
        torch.set_num_threads(threads)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file", hint="give a folder; it is created if it does not exist")
    contents = expand_inputs(args.content, "--content") if args.content else []
    styles = expand_inputs(args.style, "--style") if args.style else []
    jobs = plan_jobs(find_recipe(args.recipe), _overrides(args), contents, styles, parse_grid(args.grid), out,
                     registry=registry_of(args))
    out.mkdir(parents=True, exist_ok=True)
    device = lambda job: dataclasses.replace(job.recipe, device=ranks.device(job.recipe.device))
    return out, [dataclasses.replace(job, recipe=device(job)) for job in jobs]


def _run_shard(jobs: Sequence[Any], out: Path, ranks: Any, renderer: Any, watched: Any, *, batch_size: int,
               debug: bool, registry: Registry) -> list[tuple[Any, Any]]:
    """Run this rank's jobs in order, ``batch_size`` at a time where they can share a batch, stopping after
    one is interrupted (Ctrl-C, SIGTERM, the preview's Stop). The display and the preview, plugins for the
    batch's duration, follow each job's run through its hooks; they are told here where jobs start and end."""
    # deferred: start-up time, as in cmd_batch
    from ..tools.batch.manifest import INTERRUPTED_JOB, RankLog
    from ..tools.batch.runner import lane_groups, run_lanes

    log = RankLog(out, ranks.rank)
    outcomes: list[tuple[Any, Any]] = []
    place = {job.id: index for index, job in enumerate(jobs)}
    if watched is not None:
        watched.batch([job.name for job in jobs])
    for group in lane_groups(jobs, batch_size):
        renderer.job_start(group[0], len(outcomes) + 1, len(group))
        if watched is not None:
            for job in group:
                watched.job_started(place[job.id])
        for job, outcome in zip(group, run_lanes(group, log, debug=debug, registry=registry)):
            outcomes.append((job, outcome))
            renderer.job_end(job, len(outcomes), outcome)
            if watched is not None:
                watched.job_ended(place[job.id], outcome.status, job.output)
        if any(outcome.status == INTERRUPTED_JOB for _, outcome in outcomes[-len(group):]):
            break
    if watched is not None:
        watched.batch_ended()
    return outcomes


def _finish(args: argparse.Namespace, out: Path, jobs: Sequence[Any], summaries: Sequence[Any], *, skipped: int,
            seconds: float) -> None:
    """On the first rank: merge the manifest, draw the sheet, and print the summary."""
    from ..tools.batch.manifest import merge_manifest  # deferred: start-up time, as in cmd_batch

    records = {record.id: record for record in merge_manifest(out, jobs)}
    sheet = _write_sheet(out, jobs, records, args.sheet_cell) if args.sheet else None
    if args.quiet:
        return
    from rich.console import Console  # deferred: start-up time, as in cmd_batch
    from rich.table import Table
    from rich.text import Text

    ran = [item for summary in summaries for item in summary]
    counts = {status: sum(1 for _, found, _ in ran if found == status) for status in ("done", "failed", "interrupted")}
    table = Table(box=None, padding=(0, 2), title=Text(f"batch of {len(jobs)} jobs in {out}"), title_justify="left")
    for column in ("done", "failed", "interrupted", "skipped (done before)", "time"):
        table.add_column(column, justify="right")
    table.add_row(*(str(counts[key]) for key in ("done", "failed", "interrupted")), str(skipped),
                  format_duration(seconds))
    console = Console(soft_wrap=True)
    console.print(table)
    names = {job.id: job.name for job in jobs}
    for ident, status, error in ran:
        if status != "done":
            console.print(f"  {status}: {names[ident]}: {error}", highlight=False, markup=False)
    console.print(f"manifest: {out / 'manifest.jsonl'}" + (f"; contact sheet: {sheet}" if sheet else ""),
                  highlight=False, markup=False)


def _write_sheet(out: Path, jobs: Sequence[Any], records: dict[str, Any], cell: int) -> Path:
    from ..tools.sheet import Cell, contact_sheet, write_sheet  # deferred: start-up time (Pillow)

    cells = []
    for job in jobs:
        record = records.get(job.id)
        status = record.status if record is not None else "not run"
        shown = job.output if status in ("done", "interrupted") and job.output.is_file() else None
        column = (job.style, *(f"{key}={value}" for key, value in job.grid))
        cells.append(Cell(Path(job.content.split("?")[0]).stem, column, shown, "" if status == "done" else status))
    return write_sheet(contact_sheet(cells, cell=cell), out / "sheet.png")


def _renderer(args: argparse.Namespace, ranks: Any, total: int) -> Any:
    # deferred: start-up time (rich's display), as in cmd_batch
    from ..plugins.progress import BatchRenderer, PlainBatchRenderer, RichBatchRenderer

    if args.quiet:
        return BatchRenderer(total)
    rich = args.progress == "rich" or (args.progress == "auto" and sys.stdout.isatty() and ranks.world == 1)
    if rich:
        return RichBatchRenderer(total)
    return PlainBatchRenderer(total, f"[rank {ranks.rank}] " if ranks.world > 1 else "")
