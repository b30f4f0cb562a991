"""The ``progress`` plugin: how the command line shows a run, as a rich display, plain log lines, or nothing; and a
batch's jobs. The command line registers one for the run (``--progress``, ``--quiet``); ``--no-plugin progress``
leaves it out. Of runs that share a batch, a display follows the first lane.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from stylefw.contracts.run import Download, RunStart, StageStart, StepEvent, Term
from stylefw.engine.events import Watcher
from stylefw.hooks.specs import hookimpl
from stylefw.tools.timing import Work, format_duration, where

if TYPE_CHECKING:  # for the annotations only: a batch's modules import the engine, which the display needs not
    from stylefw.tools.batch.jobs import Job
    from stylefw.tools.batch.runner import JobEnd

__all__ = ["Renderer", "RichRenderer", "PlainRenderer", "QuietRenderer", "BatchRenderer", "PlainBatchRenderer",
           "RichBatchRenderer"]


class Renderer(Watcher):
    """Shows a run's events and download progress; the base class shows nothing.

    A display is a plugin, a :class:`~stylefw.engine.events.Watcher`: it follows the first lane's events.
    """

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    @hookimpl
    def on_download(self, event: Download) -> None:
        self.download(event.url, event.done, event.total)

    def download(self, url: str, done: int, total: int | None) -> None:
        """Called as an input image downloads."""

    def message(self, text: str) -> None:
        """A line for the user, such as where the output went."""


QuietRenderer = Renderer


class PlainRenderer(Renderer):
    """One log line every ``every`` steps of the run (and at each stage's first and last), for logs and pipes;
    by default, every twentieth of the run."""

    def __init__(self, every: int | None = None, stream: TextIO | None = None) -> None:
        self.given = every
        self.every = 1
        self.stream = stream or sys.stdout
        self._downloading: set[str] = set()
        self.work: Work | None = None

    def run_start(self, event: RunStart) -> None:
        self.every = max(1, self.given or event.total_steps // 20)
        self.work = Work(event.stages)

    def step(self, event: StepEvent) -> None:
        if event.step in (1, event.stage.steps) or event.done % self.every == 0:
            rate = event.done / event.elapsed if event.elapsed > 0 else 0.0
            step = event.record()  # one read from the device for the loss and every term
            terms = "  ".join(f"{t.label} {t.weighted:.4g} (raw {t.value:.4g} × {t.weight:g})" for t in step.terms)
            self.message(f"{where(event)}  {rate:.2f} it/s  eta {format_duration(self.work.remaining(event))}  "
                         f"loss {step.loss:.4g}  {terms}")

    def download(self, url: str, done: int, total: int | None) -> None:
        if url not in self._downloading:
            self._downloading.add(url)
            self.message(f"downloading {url}")

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class _StepProgress(Progress):
    """A progress bar with a table of the loss terms under it."""

    losses: Table | None = None

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.losses is not None:
            yield self.losses


class RichRenderer(Renderer):
    """A live display: stage and size, step, it/s, an ETA weighted by pixels × steps, and every loss term.

    The losses are read from the device at most ``refresh`` times a second, so a fast GPU run is not made
    to wait for the display.
    """

    def __init__(self, console: Console | None = None, *, refresh: float = 10.0) -> None:
        self.console = console or Console()
        self.progress = _StepProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[where]}"),
            TextColumn("{task.fields[rate]}", style="progress.data.speed"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=self.console)
        self.interval = 1.0 / refresh
        self.shown = 0.0
        self.task: TaskID | None = None
        self.work: Work | None = None
        self.downloads: dict[str, TaskID] = {}

    def __enter__(self) -> "RichRenderer":
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def run_start(self, event: RunStart) -> None:
        self.work = Work(event.stages)
        self.task = self.progress.add_task("stylising", total=self.work.total, where="", rate="-- it/s")

    def stage_start(self, event: StageStart) -> None:
        if event.stage.count > 1:
            self.progress.update(self.task, description=f"stage {event.stage.index}/{event.stage.count} "
                                                        f"· {event.stage.size} px")

    def step(self, event: StepEvent) -> None:
        rate = f"{event.done / event.elapsed:.2f} it/s" if event.elapsed > 0 else "-- it/s"
        self.progress.update(self.task, completed=self.work.done(event), where=f"step {event.step}/{event.stage.steps}",
                             rate=rate)
        now = time.monotonic()
        if now - self.shown >= self.interval or event.step == event.stage.steps:
            self.shown = now
            step = event.record()
            self.progress.losses = _loss_table(step.terms, step.loss)

    def download(self, url: str, done: int, total: int | None) -> None:
        if url not in self.downloads:
            name = url.rsplit("/", 1)[-1][:40]
            self.downloads[url] = self.progress.add_task(f"downloading {name}", total=total, where="", rate="")
        self.progress.update(self.downloads[url], completed=done)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)


def _loss_table(terms: tuple[Term, ...], loss: float) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False)
    for column in ("term", "weighted", "raw", "weight"):
        table.add_column(column, justify="left" if column == "term" else "right")
    for term in terms:
        table.add_row(term.label, f"{term.weighted:.4g}", f"{term.value:.4g}", f"{term.weight:g}")
    table.add_row("[bold]total", f"[bold]{loss:.4g}", "", "")
    return table


class BatchRenderer(Renderer):
    """What a rank shows: its jobs done out of its share with an ETA, and the current job's progress."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.perf_counter()
        self.finished = 0

    def eta(self) -> str:
        if not self.finished:
            return "--"
        return format_duration((time.perf_counter() - self.started) / self.finished * (self.total - self.finished))

    def job_start(self, job: Job, number: int, lanes: int = 1) -> None:
        """Called before each job, or before a group of ``lanes`` jobs run together (``job`` is the first)."""

    def job_end(self, job: Job, number: int, outcome: JobEnd) -> None:
        self.finished = number


class PlainBatchRenderer(BatchRenderer):
    """A line as each job starts and ends, prefixed with the rank under torchrun."""

    def __init__(self, total: int, prefix: str = "") -> None:
        super().__init__(total)
        self.prefix = prefix

    def job_start(self, job: Job, number: int, lanes: int = 1) -> None:
        together = f" with the next {lanes - 1} in one batch" if lanes > 1 else ""
        self.message(f"job {number}/{self.total} {job.name}: started{together}")

    def job_end(self, job: Job, number: int, outcome: JobEnd) -> None:
        super().job_end(job, number, outcome)
        result = outcome.result
        loss = f", loss {result.trace[-1].loss:.4g}" if result is not None and result.trace else ""
        said = f": {outcome.error}" if outcome.error else ""
        self.message(f"job {number}/{self.total} {job.name}: {outcome.status} in {format_duration(outcome.seconds)}"
                     f"{loss}{said}; eta {self.eta()}")

    def message(self, text: str) -> None:
        print(f"{self.prefix}{text}", flush=True)


class RichBatchRenderer(BatchRenderer):
    """Two bars: the jobs, with the batch's ETA, and the current job's steps (weighted by pixels)."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                                 TextColumn("eta {task.fields[eta]}"))
        self.jobs = self.progress.add_task("jobs", total=total, count=f"0/{total}", eta="--")
        self.job = self.progress.add_task("", total=1, count="", eta="--", visible=False)
        self.work: Work | None = None

    def __enter__(self) -> "RichBatchRenderer":
        self.progress.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.progress.stop()

    def job_start(self, job: Job, number: int, lanes: int = 1) -> None:
        name = job.name[:40] + (f" +{lanes - 1}" if lanes > 1 else "")
        self.progress.update(self.job, description=name, completed=0, total=1, count="", visible=True)

    def run_start(self, event: RunStart) -> None:
        self.work = Work(event.stages)
        self.progress.update(self.job, total=self.work.total, completed=0)

    def step(self, event: StepEvent) -> None:
        done = self.work.done(event)
        self.progress.update(self.job, completed=done, count=f"step {event.step}/{event.stage.steps}",
                             eta=format_duration(self.work.remaining(event)))
        # the batch so far, counting the current job's share done
        share = self.finished + done / self.work.total
        left = (time.perf_counter() - self.started) * (self.total - share) / share if share else 0.0
        self.progress.update(self.jobs, completed=share, eta=format_duration(left))

    def job_end(self, job: Job, number: int, outcome: JobEnd) -> None:
        super().job_end(job, number, outcome)
        self.progress.update(self.jobs, completed=number, count=f"{number}/{self.total}", eta=self.eta())
        if outcome.status != "done":
            self.progress.console.print(f"{job.name}: {outcome.status}: {outcome.error}", highlight=False,
                                        markup=False)

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)
