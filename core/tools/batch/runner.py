"""Running a batch's jobs: each alone (continuing from its checkpoint if it has one), or several as lanes
of one batch; each logged in the manifest as it starts and as it ends, whatever the end."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from ...contracts.recipe import is_url
from ...contracts.run import FAILED, OnEvent, Result
from ...engine.api import resume, run, run_together
from ...engine.checkpoint import changed_inputs, changed_keys, read_checkpoint
from ...engine.files import checkpoint_path
from ...engine.image import fetch
from ...engine.lanes import OWN, compatible
from ...errors import UserError
from ...hooks.faults import classify
from ...hooks.registry import Registry, default_registry
from .jobs import Job
from .manifest import DONE, FAILED_JOB, INTERRUPTED_JOB, RUNNING, RankLog

__all__ = ["JobEnd", "saved_run", "run_job", "lane_groups", "run_lanes"]


def saved_run(job: Job) -> tuple[Path, bool] | None:
    """The checkpoint an interrupted attempt at ``job`` left, if it is of this very job and can be continued,
    and whether continuing it needs ``force``: only its device may differ (another rank's GPU)."""
    path = checkpoint_path(job.output)
    if not path.is_file():
        return None
    try:
        saved = read_checkpoint(path)
    except UserError:  # damaged, or from another version: the job starts again and overwrites it
        return None
    changed = changed_keys(saved["recipe"], job.recipe.data)
    if [key for key in changed if key != "device"] or changed_inputs(saved["inputs"], job.recipe):
        return None
    return path, bool(changed)


@dataclass
class JobEnd:
    """How one job ended: its status, the run's result (None when it raised) and the error's message."""

    status: str
    seconds: float
    result: Result | None = None
    error: str | None = None
    resumed: bool = False


def run_job(job: Job, log: RankLog, *, on_event: OnEvent | None = None, debug: bool = False,
            registry: Registry | None = None) -> JobEnd:
    """Run ``job`` (or continue it from its checkpoint), log its start and its end, and say how it ended.

    A job that fails, whatever the reason (an unreadable image, a plugin's bug, a loss that stopped being
    finite) is logged with the error and does not raise: the batch goes on with the others.
    """
    ckpt = saved_run(job)
    log.write(job, RUNNING, resumed=ckpt is not None)
    start = time.perf_counter()
    try:
        if ckpt is not None:
            path, force = ckpt
            result = resume(path, {"device": job.recipe.device}, force=force, on_event=on_event, debug=debug,
                            registry=registry)
        else:
            result = run(job.recipe, on_event=on_event, debug=debug, registry=registry)
    except Exception as exc:  # one job's failure is recorded, and the others go on
        error = classify(exc, (registry or default_registry()).manager)
        outcome = JobEnd(FAILED_JOB, time.perf_counter() - start, error=str(error), resumed=ckpt is not None)
        log.write(job, FAILED_JOB, seconds=outcome.seconds, error=outcome.error, resumed=outcome.resumed)
        return outcome
    return _ended(job, log, result, time.perf_counter() - start, resumed=ckpt is not None)


def _ended(job: Job, log: RankLog, result: Result, seconds: float, *, resumed: bool = False, **details: Any) -> JobEnd:
    """Log how ``job``'s run ended, from its result: done, interrupted, or failed on a non-finite loss."""
    stop = result.stopped
    if result.interrupted:
        status, error = INTERRUPTED_JOB, f"interrupted by {stop.details.get('signal', 'SIGINT')}"
    elif stop is not None and stop.reason == FAILED:
        status, error = FAILED_JOB, stop.details["message"]
    elif stop is not None:  # a stop asked for (the preview's button, a plugin): the job is not done
        status, error = INTERRUPTED_JOB, f"stopped: {stop.reason}"
    else:
        status, error = DONE, None
    log.write(job, status, seconds=seconds, steps=len(result.trace), final_losses=result.final_losses,
              resumed=resumed, **details, **({"error": error} if error else {}))
    return JobEnd(status, seconds, result, error, resumed=resumed)


def lane_groups(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """``jobs`` in groups of at most ``size`` that can run as lanes of one batch (``stylefw.lanes``), in job
    order: same recipe but for the images, contents of one size, no checkpoint file beside the output (run
    alone, ``run_job`` decides whether it can be continued). A job that fits no group is a group of its own."""
    def key(job: Job) -> Any:
        if size < 2 or checkpoint_path(job.output).is_file() or compatible([job.recipe]) is not None:
            return job.id  # alone
        try:
            with Image.open(fetch(job.content) if is_url(job.content) else job.content) as image:
                shape = image.size
        except OSError:
            return job.id  # the run will say what is wrong with it
        shared = {name: value for name, value in job.recipe.data.items() if name not in OWN}
        return json.dumps(shared, sort_keys=True, default=str), shape

    groups: dict[Any, list[list[Job]]] = {}
    for job in jobs:
        chunks = groups.setdefault(key(job), [[]])
        if len(chunks[-1]) == size:
            chunks.append([])
        chunks[-1].append(job)
    return sorted((chunk for chunks in groups.values() for chunk in chunks), key=lambda chunk: chunk[0].index)


def run_lanes(jobs: Sequence[Job], log: RankLog, *, on_event: OnEvent | None = None, debug: bool = False,
              registry: Registry | None = None) -> list[JobEnd]:
    """Run ``jobs`` (a group from ``lane_groups``) as lanes of one batch, each logged as its own job; the
    first job's events go to ``on_event``. If the batch cannot start (an input that cannot be read), each
    job runs alone instead, so that the one at fault is recorded with its error."""
    if len(jobs) == 1:
        return [run_job(jobs[0], log, on_event=on_event, debug=debug, registry=registry)]
    together = [job.id for job in jobs]
    for job in jobs:
        log.write(job, RUNNING, resumed=False, together=together)
    start = time.perf_counter()
    try:
        results = run_together([job.recipe for job in jobs], on_events=[on_event], debug=debug, registry=registry)
    except Exception:  # before any step: find the job at fault by running each alone
        return [run_job(job, log, on_event=on_event, debug=debug, registry=registry)
                for job in jobs]
    seconds = time.perf_counter() - start
    return [_ended(job, log, result, seconds, together=together) for job, result in zip(jobs, results)]
