"""What a plugin and a run's subscribers see: the records a run passes around and the events it emits.

Events are frozen records. A ``StepEvent`` holds the run's tensors as they are; reading ``loss``, ``terms``
or ``image()`` is what copies from (and waits for) a GPU, so a subscriber pays only for what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import torch

    from .api import Result
    from .recipe import Recipe

__all__ = ["Term", "Step", "Targets", "Stage", "Stop", "RunControl", "RunStart", "StageStart", "StepEvent", "RunEnd",
           "Event", "Subscriber", "INTERRUPTED"]

# the stop reason Ctrl-C gives
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Term:
    """One loss term at one step: its label, its weight and its unweighted value."""

    label: str
    weight: float
    value: float

    @property
    def weighted(self) -> float:
        return self.weight * self.value


@dataclass(frozen=True)
class Step:
    """One optimizer step as plain numbers, as the trace and ``<output>.json`` keep it.

    ``step`` and ``total`` count within the stage; ``stage`` is 1 for a single-scale run and ``size`` the
    stage's long edge.
    """

    step: int
    total: int
    loss: float
    terms: tuple[Term, ...]
    elapsed: float
    stage: int = 1
    size: int | None = None


@dataclass(frozen=True)
class Targets:
    """Detached features: ``content`` by layer, and ``styles`` as (features by layer, blend weight) pairs."""

    content: Mapping[str, torch.Tensor]
    styles: Sequence[tuple[Mapping[str, torch.Tensor], float]] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One stage of a run: its number (from 1) of ``count``, long edge, (height, width) and steps."""

    index: int
    count: int
    size: int
    shape: tuple[int, int]
    steps: int

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class Stop:
    """Why and where a run stopped before its last step."""

    reason: str
    stage: int
    step: int


class RunControl:
    """The run's stop switch: subscribers ask for a stop, the engine honours it after the current step."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        """Ask the run to stop after this step; the first reason given is kept."""
        if self.reason is None:
            self.reason = str(reason)


@dataclass(frozen=True)
class RunStart:
    """A run is about to start: its recipe, device and every stage it will render."""

    recipe: Recipe
    device: str
    stages: tuple[Stage, ...]

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)


@dataclass(frozen=True)
class StageStart:
    """A stage begins: the targets at its size are computed and each loss has been prepared with them."""

    stage: Stage
    targets: Targets


@dataclass(frozen=True, eq=False)
class StepEvent:
    """An optimizer step has been taken. Reading ``loss``, ``terms`` or ``image()`` copies from the device."""

    stage: Stage
    step: int
    done: int
    elapsed: float
    labels: tuple[str, ...]
    weights: tuple[float, ...]
    values: torch.Tensor = field(repr=False)
    picture: Callable[[], torch.Tensor] = field(repr=False)
    control: RunControl = field(repr=False)

    @property
    def loss(self) -> float:
        """The total loss (a host sync)."""
        return float(self.values[0])

    @property
    def terms(self) -> tuple[Term, ...]:
        """Each term's unweighted value with its label and weight (one host sync for all)."""
        values = self.values[1:].tolist()
        return tuple(Term(label, weight, value) for label, weight, value in zip(self.labels, self.weights, values))

    def image(self) -> torch.Tensor:
        """The picture as it would be saved now (the average with ``average``), 1×3×H×W in [0, 1], on the device."""
        return self.picture()

    def stop(self, reason: str) -> None:
        """Stop the run cleanly after this step, as Ctrl-C does; ``reason`` goes into the sidecar."""
        self.control.stop(reason)

    def record(self) -> Step:
        """This step as plain numbers."""
        total, *values = self.values.tolist()
        terms = tuple(Term(label, weight, value) for label, weight, value in zip(self.labels, self.weights, values))
        return Step(self.step, self.stage.steps, total, terms, self.elapsed, self.stage.index, self.stage.size)


@dataclass(frozen=True)
class RunEnd:
    """The run has finished, stopped or been interrupted; ``result`` is what it returns."""

    result: Result


Event = RunStart | StageStart | StepEvent | RunEnd
# a Python caller's ``on_event``: called with every event, in order
Subscriber = Callable[[Any], None]
