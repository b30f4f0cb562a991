"""What a run passes around and what its plugins see: the loss records, the stages, the stop switch, the run's
context, the events it emits, and the ``Result`` it returns.

Nothing here imports torch at run time, so ``import stylefw`` stays cheap. Events are frozen records. A
``StepEvent`` holds the run's tensors as they are; reading ``loss``, ``terms`` or ``image()`` is what copies
from (and waits for) a GPU, so a plugin pays only for what it reads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, MutableMapping, Sequence

if TYPE_CHECKING:  # for the annotations only
    import torch
    from PIL import Image

    from .plugins import Targets
    from .recipe import Recipe

__all__ = ["INTERRUPTED", "FAILED", "READ_EVERY", "Term", "Step", "Stage", "Stop", "RunControl", "RunContext",
           "RunStart", "StageStart", "StepEvent", "RunFinish", "Save", "Download", "RunEnd", "RunAbort", "Result", "Event",
           "OnEvent", "Writer", "step_to_dict", "step_from_dict"]

# the stop reason Ctrl-C, SIGTERM and SIGHUP give (the details name the signal)
INTERRUPTED = "interrupted"
# the stop reason of a run whose loss became non-finite (the details name the term)
FAILED = "failed"
# every this many steps, and at the end of each stage, the run reads its losses back from the device to check
# them, and the trace reads them at the same steps: one wait for the device, not two
READ_EVERY = 25
# writes a file's bytes to an open binary handle
Writer = Callable[[Any], Any]


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

    def term_values(self) -> dict[str, dict[str, float]]:
        """Each term's raw and weighted value by label, as the metadata and the sidecar record them."""
        return {term.label: {"value": term.value, "weighted": term.weighted} for term in self.terms}


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
    """Why and where a run stopped before its last step, and what more the stop said.

    ``details`` holds plain values: ``signal`` (such as ``"SIGTERM"``) for an interrupt, or for a run that
    ``failed`` the loss ``term`` that became non-finite, its ``loss`` and ``plugin``, its ``value``, the
    ``cause`` (the recipe key to change) and the ``steps_kept``.
    """

    reason: str
    stage: int
    step: int
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The reason, stage and step, then the details, as the sidecar's ``stopped`` records them."""
        return {"reason": self.reason, "stage": self.stage, "step": self.step, **self.details}


class RunControl:
    """The run's stop switch: plugins ask for a stop, the run honours it after the current step.

    While a file of the run is being written (``saving``), a plugin that would cut the run short at once
    (the ``signals`` plugin, on a second Ctrl-C) waits for the write instead.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.details: dict[str, Any] = {}
        self.holding = False

    def stop(self, reason: str, **details: Any) -> None:
        """Ask the run to stop after this step; the first reason given, and its details, are kept."""
        if self.reason is None:
            self.reason = str(reason)
            self.details = dict(details)

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """While inside, the run's files are being written: nothing may interrupt it."""
        before, self.holding = self.holding, True
        try:
            yield
        finally:
            self.holding = before


@dataclass(eq=False)
class RunContext:
    """One run, as its plugins see it in every event: what it runs, where, and a place to keep their own state.

    ``output`` is where the run writes its result, or None when it writes nothing (``save=False``, or no
    output in the recipe): plugins that write files beside it (the sidecar, snapshots, checkpoints) do
    nothing then. ``resumed`` is the saved state the run continues from (``stylefw resume``), else None.
    ``lane`` is the run's place among the ``lanes`` runs that share its batch (``stylefw.run_together``); 0 of 1
    alone.
    ``provenance`` holds the versions and plugins an output records. ``stash`` is the plugins': each keeps
    its state for this run under a key of its own.
    """

    recipe: Recipe
    device: str
    stages: tuple[Stage, ...]
    control: RunControl
    output: Path | None = None
    resumed: Mapping[str, Any] | None = None
    lane: int = 0
    lanes: int = 1
    debug: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict)
    stash: MutableMapping[str, Any] = field(default_factory=dict)
    # how the run writes a step's picture as a snapshot (StepEvent.save)
    saver: Callable[[StepEvent, Path], Path] | None = field(default=None, repr=False)

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)


@dataclass(frozen=True)
class RunStart:
    """A run is about to start: its recipe, device and every stage it will render (those of ``run``)."""

    run: RunContext

    @property
    def recipe(self) -> Recipe:
        return self.run.recipe

    @property
    def device(self) -> str:
        return self.run.device

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.run.stages

    @property
    def total_steps(self) -> int:
        return self.run.total_steps


@dataclass(frozen=True)
class StageStart:
    """A stage begins: the targets at its size are computed and each loss has been prepared with them."""

    stage: Stage
    targets: Targets
    run: RunContext


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
    run: RunContext = field(repr=False)
    checked_state: Callable[[], dict[str, Any] | None] = field(repr=False)

    @property
    def control(self) -> RunControl:
        """The run's control (``run.control``): what ``stop`` asks."""
        return self.run.control

    @property
    def loss(self) -> float:
        """The total loss (a host sync)."""
        return float(self.values[0])

    @property
    def terms(self) -> tuple[Term, ...]:
        """Each term's unweighted value with its label and weight (one host sync for all)."""
        return self.record().terms

    def image(self) -> torch.Tensor:
        """The picture as it would be saved now (the average with ``average``), 1×3×H×W in [0, 1], on the device."""
        return self.picture()

    def stop(self, reason: str) -> None:
        """Stop the run cleanly after this step, as Ctrl-C does; ``reason`` goes into the sidecar."""
        self.control.stop(reason)

    def save(self, path: Path) -> Path:
        """Write this step's picture to ``path`` with its metadata (no sidecar), as ``save_every`` does."""
        if self.run.saver is None:
            raise RuntimeError("this run cannot write snapshots")
        return self.run.saver(self, path)

    def state(self) -> dict[str, Any] | None:
        """Everything the run needs to continue after this step exactly as it would have gone on (``stylefw
        resume``), once the losses so far are checked: None when one was not finite, which must not be kept."""
        return self.checked_state()

    def record(self, row: Sequence[float] | None = None) -> Step:
        """This step as plain numbers: ``values`` read from the device, or ``row`` if they already were."""
        total, *values = self.values.tolist() if row is None else row
        terms = tuple(Term(label, weight, value) for label, weight, value in zip(self.labels, self.weights, values))
        return Step(self.step, self.stage.steps, total, terms, self.elapsed, self.stage.index, self.stage.size)


@dataclass(frozen=True, eq=False)
class RunFinish:
    """The stages are over (finished, stopped or failed) and nothing is written yet: the picture is final.

    ``content`` and ``styles`` are the inputs at the last stage's size, ``stopped`` why the run ended early.
    Plugins add what the result should carry: ``trace`` is filled with the run's steps (the ``trace`` plugin
    does it), and each key added to ``metadata`` is recorded in the output and its sidecar (the ``score``
    plugin adds ``score``). ``state()`` is the state to continue from, when the run stopped after a whole
    step (None when it finished, failed, or a second Ctrl-C cut a step short); ``backbone()`` builds the
    run's backbone whole, unchanged by the recipe's ``precision`` and ``compile``, to measure the picture with.
    """

    run: RunContext
    picture: torch.Tensor = field(repr=False)
    content: torch.Tensor = field(repr=False)
    styles: Sequence[torch.Tensor] = field(repr=False)
    stopped: Stop | None
    state: Callable[[], dict[str, Any] | None] = field(repr=False)
    backbone: Callable[[], Any] = field(repr=False)
    trace: list[Step] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Save:
    """``result`` is about to be written to ``path``. Every file in ``files`` is written with it, all or none.

    A plugin adds a file to write beside it with ``files[path] = writer`` (``writer(handle)`` writes its bytes).
    ``snapshot`` is true for a picture taken during the run (``save_every``, the preview's Save button) rather
    than its output.
    """

    run: RunContext
    result: Result
    path: Path
    files: dict[Path, Writer]
    snapshot: bool = False


@dataclass(frozen=True)
class Download:
    """An input image is being downloaded: ``done`` bytes of ``total`` (None when the server does not say)."""

    url: str
    done: int
    total: int | None


@dataclass(frozen=True)
class RunEnd:
    """The run has finished, stopped or been interrupted, and its output is written; ``result`` is what it returns."""

    result: Result
    run: RunContext


@dataclass(frozen=True, eq=False)
class RunAbort:
    """The run raised ``error`` after it started, and returns no result: a plugin lets go of what it holds for it
    (``on_run_end`` does not follow)."""

    run: RunContext
    error: BaseException


@dataclass(frozen=True)
class Result:
    """What a run produced: the image, the per-step losses, and how it was made.

    ``stopped`` says why and where a run ended before its last step (Ctrl-C, or a plugin's ``stop(reason)``);
    ``interrupted`` is true when that was Ctrl-C. ``extras`` holds what plugins added to the output's
    metadata (the ``score``); ``provenance`` the versions and plugins it was made with.
    """

    image: Image.Image
    tensor: torch.Tensor
    trace: tuple[Step, ...]
    recipe: Recipe
    device: str
    interrupted: bool
    output: Path | None = None
    stopped: Stop | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> Mapping[str, Any] | None:
        """``stylefw score``'s numbers for the image, when the recipe asked for them (``score: true``)."""
        return self.extras.get("score")

    @property
    def losses(self) -> list[dict[str, float]]:
        """The loss trace as plain numbers: one ``{"total": ..., label: value, ...}`` per step."""
        return [{"total": step.loss, **{term.label: term.value for term in step.terms}} for step in self.trace]

    @property
    def final_losses(self) -> dict[str, Any]:
        """The last step's total and each term's raw and weighted value (empty before the first step)."""
        if not self.trace:
            return {}
        return {"total": self.trace[-1].loss, **self.trace[-1].term_values()}

    def metadata(self) -> dict[str, Any]:
        """What is embedded in the output: versions, recipe, seed, device, how it ended and the final losses."""
        return {
            **{key: self.provenance.get(key) for key in ("stylefw", "torch", "python")},
            "plugins": dict(self.provenance.get("plugins", {})),
            "recipe": self.recipe.data,
            "seed": self.recipe.seed,
            "device": self.device,
            "steps_done": len(self.trace),
            "interrupted": self.interrupted,
            "stopped": self.stopped.as_dict() if self.stopped else None,
            "final_losses": self.final_losses,
            **{key: _plain(value) for key, value in self.extras.items()},
        }


def step_to_dict(step: Step) -> dict[str, Any]:
    """One trace step as plain values."""
    terms = [[term.label, term.weight, term.value] for term in step.terms]
    return {"step": step.step, "total": step.total, "loss": step.loss, "terms": terms, "elapsed": step.elapsed,
            "stage": step.stage, "size": step.size}


def step_from_dict(data: Mapping[str, Any]) -> Step:
    """The Step ``step_to_dict`` wrote."""
    terms = tuple(Term(label, weight, value) for label, weight, value in data["terms"])
    return Step(data["step"], data["total"], data["loss"], terms, data["elapsed"], data["stage"], data["size"])


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


Event = RunStart | StageStart | StepEvent | RunFinish | Save | RunEnd | RunAbort
# a Python caller's ``on_event``: called with every event, in order
OnEvent = Callable[[Any], None]
