"""How the CLI shows a run: a rich progress display, plain log lines, or nothing."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from .engine import Step

__all__ = ["Renderer", "RichRenderer", "PlainRenderer", "QuietRenderer", "format_duration"]


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Renderer:
    """Receives the engine's step records and download progress; the base class shows nothing."""

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def step(self, step: Step) -> None:
        """Called after every optimizer step."""

    def download(self, url: str, done: int, total: int | None) -> None:
        """Called as an input image downloads."""

    def message(self, text: str) -> None:
        """A line for the user, such as where the output went."""


QuietRenderer = Renderer


class PlainRenderer(Renderer):
    """One log line every ``every`` steps (and at the first and last), for logs and pipes."""

    def __init__(self, every: int, stream: TextIO | None = None) -> None:
        self.every = max(1, every)
        self.stream = stream or sys.stdout
        self._downloading: set[str] = set()

    def step(self, step: Step) -> None:
        if step.step == 1 or step.step == step.total or step.step % self.every == 0:
            rate = step.step / step.elapsed if step.elapsed > 0 else 0.0
            eta = (step.total - step.step) / rate if rate else 0.0
            terms = "  ".join(f"{t.label} {t.weighted:.4g} (raw {t.value:.4g} × {t.weight:g})" for t in step.terms)
            self.message(f"step {step.step}/{step.total}  {rate:.2f} it/s  eta {format_duration(eta)}  "
                         f"loss {step.loss:.4g}  {terms}")

    def download(self, url: str, done: int, total: int | None) -> None:
        if url not in self._downloading:
            self._downloading.add(url)
            self.message(f"downloading {url}")

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class RateColumn(ProgressColumn):
    """Iterations per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-- it/s", style="progress.data.speed")


class _StepProgress(Progress):
    """A progress bar with a table of the loss terms under it."""

    losses: Table | None = None

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.losses is not None:
            yield self.losses


class RichRenderer(Renderer):
    """A live display: step and total, it/s, ETA, and every loss term weighted and unweighted."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = _StepProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console)
        self.total = total
        self.task: TaskID | None = None
        self.downloads: dict[str, TaskID] = {}

    def __enter__(self) -> "RichRenderer":
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def step(self, step: Step) -> None:
        if self.task is None:
            self.task = self.progress.add_task("stylising", total=step.total)
        self.progress.losses = _loss_table(step)
        self.progress.update(self.task, completed=step.step)

    def download(self, url: str, done: int, total: int | None) -> None:
        if url not in self.downloads:
            name = url.rsplit("/", 1)[-1][:40]
            self.downloads[url] = self.progress.add_task(f"downloading {name}", total=total)
        self.progress.update(self.downloads[url], completed=done)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)




def _loss_table(step: Step) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False)
    for column in ("term", "weighted", "raw", "weight"):
        table.add_column(column, justify="left" if column == "term" else "right")
    for term in step.terms:
        table.add_row(term.label, f"{term.weighted:.4g}", f"{term.value:.4g}", f"{term.weight:g}")
    table.add_row("[bold]total", f"[bold]{step.loss:.4g}", "", "")
    return table
