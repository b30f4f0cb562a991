"""What a plugin and a run's subscribers see: the Protocols a plugin's objects satisfy, and the records a run
passes around and the events it emits.

The Protocols are for type checkers (and ``isinstance``, for the ``runtime_checkable`` ones); nothing here
imports torch at run time, so ``import stylefw`` stays cheap. Events are frozen records. A ``StepEvent`` holds
the run's tensors as they are; reading ``loss``, ``terms`` or ``image()`` is what copies from (and waits
for) a GPU, so a subscriber pays only for what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import argparse

    import torch

    from .api import Result
    from .recipe import Recipe

__all__ = ["Backbone", "BackboneFactory", "Loss", "LossFactory", "OptimizerFactory", "ResizeState", "Scheduler",
           "SchedulerFactory", "CommandHandler", "ConfigureCommand", "Register", "RegisterOptimizer", "RegisterCommand",
           "Term", "Step", "Targets", "Stage", "Stop", "RunControl", "RunStart", "StageStart", "StepEvent", "RunEnd",
           "Event", "OnEvent", "INTERRUPTED", "FAILED", "READS"]

# the stop reason Ctrl-C, SIGTERM and SIGHUP give (the details name the signal)
INTERRUPTED = "interrupted"
# the stop reason of a run whose loss became non-finite (the details name the term)
FAILED = "failed"
# the images a loss's targets can come from; a loss that does not say which it ``reads`` gets both
READS = ("content", "styles")


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
    """Detached features: ``content`` by layer, and ``styles`` as (features by layer, blend weight) pairs.

    ``layer_factors`` says how much a style layer counts at this stage, from 0 to 1 (a layer not named
    counts fully). A multi-scale run's earlier stages lower a layer that sees most of their small picture
    (the recipe's ``layer_fade``); a style loss multiplies its layer weights by these factors.
    """

    content: Mapping[str, torch.Tensor]
    styles: Sequence[tuple[Mapping[str, torch.Tensor], float]] = field(default_factory=list)
    layer_factors: Mapping[str, float] = field(default_factory=dict)
    # a tiled run's style images too large for one pass: a ``global`` loss's own statistics of each, summed
    # over its tiles, with its blend weight (those styles are then not in ``styles``)
    style_statistics: Sequence[tuple[Mapping[str, torch.Tensor], float]] = field(default_factory=list)


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
    """The run's stop switch: subscribers ask for a stop, the engine honours it after the current step."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.details: dict[str, Any] = {}

    def stop(self, reason: str, **details: Any) -> None:
        """Ask the run to stop after this step; the first reason given, and its details, are kept."""
        if self.reason is None:
            self.reason = str(reason)
            self.details = dict(details)


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
        return self.record().terms

    def image(self) -> torch.Tensor:
        """The picture as it would be saved now (the average with ``average``), 1×3×H×W in [0, 1], on the device."""
        return self.picture()

    def stop(self, reason: str) -> None:
        """Stop the run cleanly after this step, as Ctrl-C does; ``reason`` goes into the sidecar."""
        self.control.stop(reason)

    def record(self, row: Sequence[float] | None = None) -> Step:
        """This step as plain numbers: ``values`` read from the device, or ``row`` if they already were."""
        total, *values = self.values.tolist() if row is None else row
        terms = tuple(Term(label, weight, value) for label, weight, value in zip(self.labels, self.weights, values))
        return Step(self.step, self.stage.steps, total, terms, self.elapsed, self.stage.index, self.stage.size)


@dataclass(frozen=True)
class RunEnd:
    """The run has finished, stopped or been interrupted; ``result`` is what it returns."""

    result: Result


Event = RunStart | StageStart | StepEvent | RunEnd
# a Python caller's ``on_event``: called with every event, in order
OnEvent = Callable[[Any], None]


# -- what a plugin implements ---------------------------------------------------------------------------------------
# Members a plugin may leave out (a backbone's ``truncate``, a factory's ``layer_aliases``) are described in the
# docstrings rather than declared, since a Protocol member is always required. A factory's ``*args: Any,
# **options: Any`` is how a Protocol says "any parameters": each factory declares its own options.


@runtime_checkable
class Backbone(Protocol):
    """A feature extractor, an ``nn.Module``: called with an image, it returns the features of the layers asked for.

    Input normalisation belongs inside it. It may have ``truncate(layer)``, which the engine calls with the
    deepest layer a recipe reads so that the rest can be dropped, and ``receptive_field(layer)``, how many
    input pixels across one feature of that layer sees, which a multi-scale run's ``layer_fade`` needs.
    A tiled run (``tile``) also needs ``stride(layer)``, how many input pixels one step across that layer's
    feature map is. The engine freezes it and puts it in eval mode, so its factory need not.
    """

    @property
    def layer_names(self) -> Sequence[str]:
        """Every layer it can return, in network order; a recipe's integer layer is an index into them."""

    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> Mapping[str, torch.Tensor]:
        """The features of ``image`` (N×3×H×W, RGB in [0, 1]) at each of ``layers``, by layer name."""


@runtime_checkable
class BackboneFactory(Protocol):
    """What ``register_backbones`` registers, usually the ``Backbone`` class itself.

    Validation reads ``layer_names``, and ``layer_aliases`` (an optional mapping of extra names to layer
    names), from the factory, so reading them must not build anything. A weights file that is not there
    (and cannot be downloaded) is best raised as ``stylefw.errors.MissingWeights`` naming it: ``stylefw
    check`` then skips the recipe instead of failing it. An option declared with ``File`` gets this for free.
    """

    @property
    def layer_names(self) -> Sequence[str]:
        """The layers its backbones return, in network order."""

    def __call__(self, *args: Any, **options: Any) -> Backbone:
        """Build a backbone from the recipe's ``backbone`` keys other than ``name``, as keyword arguments."""


@runtime_checkable
class Loss(Protocol):
    """One loss term: the layers it reads, the targets ``prepare`` gives it, and a scalar for the current image.

    The engine calls ``prepare(targets)`` before the first step, and again at the start of every stage of a
    multi-scale run with that stage's targets, computed at its size: each call replaces the last targets.
    The engine drops the targets once every loss has prepared, so a loss keeps (detached) what it needs.

    It may say which images it compares against with ``reads``, a tuple of ``"content"`` and ``"styles"``
    (``tv`` reads neither): each image's features are then computed only at the layers of the losses that
    read it. A loss without ``reads`` gets both, at its layers.

    A loss that reads layers takes part in a tiled run (the recipe's ``tile``) only if it says how it tiles
    with ``tiling``; a recipe that tiles with a loss that does not say is refused, naming it. Its methods
    are given a tile's ``features`` (the tile's own region, at each layer), the tile's ``image`` and the
    ``tile``, whose ``region(layer, whole)`` cuts the same region out of a map of the whole picture at
    ``layer``, such as a content target. A loss that reads no layers sees the whole picture, as always.

    - ``tiling = "local"``: the loss is a sum over positions. ``share(features, image, tile)`` returns its
      sum over the tile's region; the shares of a picture's tiles add up to its loss (``content``).
    - ``tiling = "global"``: the loss is a function of statistics that add up over positions.
      ``statistics(features, image, tile)`` returns them, a mapping of name to tensor, and
      ``from_statistics(summed)`` the loss from their sums over a picture's tiles (``gram``: each layer's
      F·Fᵀ and its count of positions; ``w2``: the sums of F and of F·Fᵀ). A style image larger than one tile
      then reaches ``prepare`` as ``targets.style_statistics``, its statistics summed over its tiles with
      its blend weight, instead of in ``targets.styles``.
    """

    @property
    def layers(self) -> Sequence[str]:
        """The layers it reads (possibly none, like ``tv``), with aliases and indices resolved to names."""

    def prepare(self, targets: Targets) -> None:
        """Keep what it compares against from ``targets``: detached features of the content and of each style.

        ``targets.content`` maps each layer to the content image's features; ``targets.styles`` holds one
        (features by layer, blend weight) pair per style image, the blend weights summing to 1 (with those in
        ``targets.style_statistics``, in a tiled run of ``global`` losses). A style
        loss also scales its layer weights by ``targets.layer_factors``; ``faded_weights`` in
        ``stylefw.plugins.losses`` does that the way the built-in ones do.
        """

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The unweighted loss, a scalar tensor, of the image (clamped to [0, 1]) and its ``features`` by layer."""


class LossFactory(Protocol):
    """What ``register_losses`` registers, usually the ``Loss`` class itself."""

    def __call__(self, *args: Any, **options: Any) -> Loss:
        """Build a loss from the recipe entry's keys other than ``name`` and ``weight``, as keyword arguments.

        ``layers`` arrive with aliases and indices resolved to layer names. A ``ValueError`` or ``TypeError``
        for bad options is reported at the recipe entry's path.
        """


class OptimizerFactory(Protocol):
    """What ``register_optimizers`` registers, usually a ``torch.optim.Optimizer`` class."""

    def __call__(self, params: Iterable[torch.Tensor], *args: Any, **options: Any) -> torch.optim.Optimizer:
        """An optimizer of ``params`` from the recipe's ``optimizer`` keys other than ``name`` and ``schedule``.

        The engine always calls ``step(closure)`` and reads the loss from the closure.
        """


class ResizeState(Protocol):
    """An optimizer's optional declaration of how its state follows the image when a multi-scale run resizes it."""

    def __call__(self, state: Mapping[str, Any], shape: tuple[int, int]) -> Mapping[str, Any]:
        """The image's optimizer state (such as Adam's ``exp_avg``) for the image resized to ``shape`` (H, W).

        The next stage's optimizer starts from what it returns; an optimizer without this declaration starts
        afresh at each stage.
        """


@runtime_checkable
class Scheduler(Protocol):
    """A learning-rate schedule: anything with ``step()``, such as a ``torch.optim.lr_scheduler.LRScheduler``."""

    def step(self) -> None:
        """Called once after each optimizer step; the rate it leaves in ``param_groups`` is the next step's."""


class SchedulerFactory(Protocol):
    """What ``register_schedulers`` registers."""

    def __call__(self, optimizer: torch.optim.Optimizer, *args: Any, **options: Any) -> Scheduler:
        """A schedule for the built optimizer: called as ``factory(optimizer, total_steps=..., **options)``.

        ``total_steps`` is the stage's number of steps (each stage of a multi-scale run gets its own schedule),
        always passed by stylefw and not a recipe key; ``options`` are the keys of ``optimizer.schedule`` other
        than ``name``. Raise ``ValueError`` for bad options.
        """


class CommandHandler(Protocol):
    """A plugin command: what ``stylefw NAME ...`` runs."""

    def __call__(self, args: argparse.Namespace) -> int:
        """Run with the parsed arguments and return the exit code; raise ``stylefw.errors`` errors for failures."""


class ConfigureCommand(Protocol):
    """Adds a plugin command's arguments to its parser."""

    def __call__(self, parser: argparse.ArgumentParser) -> None:
        """Add arguments (or subcommands) to ``parser``; it and its subparsers already take ``--debug`` and ``-q``."""


FactoryT = TypeVar("FactoryT", contravariant=True)


class Register(Protocol[FactoryT]):
    """The ``register`` callback a ``register_*`` hook receives; the core keeps the item and the plugin's name."""

    def __call__(self, name: str, factory: FactoryT) -> None:
        """Register ``factory`` as ``name``, the name a recipe uses; a name taken by another plugin is an error."""


class RegisterOptimizer(Protocol):
    """The ``register`` ``register_optimizers`` receives: an optimizer is a factory and, optionally, ``resize_state``."""

    def __call__(self, name: str, factory: OptimizerFactory, *, resize_state: ResizeState | None = None) -> None:
        """Register ``factory`` as ``name``, declaring how its state follows a resized image if it can."""


class RegisterCommand(Protocol):
    """The ``register`` ``register_commands`` receives."""

    def __call__(self, name: str, handler: CommandHandler, *, help: str | None = None,
                 configure: ConfigureCommand | None = None) -> None:
        """Add ``stylefw name``; ``help`` (default: the handler's docstring's first line) shows in ``stylefw --help``."""
