"""How far along a run is and how long it has left, for the displays that show it (the progress display, the
preview, a batch's bars)."""

from __future__ import annotations

from ..contracts.run import Stage, StepEvent

__all__ = ["format_duration", "Work", "where"]


def format_duration(seconds: float | None) -> str:
    """``1h02m03s``, ``2m03s`` or ``3s``; ``--`` for a time not known yet."""
    if seconds is None:
        return "--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Work:
    """A run's work as pixels × steps, so a step at 512 px counts 16 times one at 128 px in the ETA.

    The pace is measured from the end of the first step seen: the time before it (decoding, the targets,
    the backbone's first pass) is not work the rest of the run repeats, and counting it made the ETA at a
    multi-scale run's second step five times too long.
    """

    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.total = sum(stage.pixels * stage.steps for stage in stages)
        self.before = {stage.index: sum(s.pixels * s.steps for s in stages[: stage.index - 1]) for stage in stages}
        self.first: tuple[float, int] | None = None  # (elapsed, work done) at the first step seen

    def done(self, event: StepEvent) -> int:
        return self.before[event.stage.index] + event.stage.pixels * event.step

    def remaining(self, event: StepEvent) -> float | None:
        """Seconds left, from the pace since the first step; None (not known yet) at the first step."""
        done = self.done(event)
        if self.first is None:
            self.first = (event.elapsed, done)
        elapsed, counted = event.elapsed - self.first[0], done - self.first[1]
        if counted <= 0 or elapsed <= 0:
            return None
        return elapsed * (self.total - done) / counted


def where(event: StepEvent) -> str:
    """``step 12/500``, with ``stage 2/5 (181 px)`` before it in a multi-scale run."""
    stage = event.stage
    prefix = f"stage {stage.index}/{stage.count} ({stage.size} px) " if stage.count > 1 else ""
    return f"{prefix}step {event.step}/{stage.steps}"
