"""What a plugin implements and is given: the Protocols a plugin's objects satisfy, the ``register`` callbacks
its hooks receive, and the ``Targets`` a loss is prepared with.

The Protocols are for type checkers (and ``isinstance``, for the ``runtime_checkable`` ones); nothing here
imports torch at run time, so ``import stylefw`` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

if TYPE_CHECKING:  # third-party types, for the annotations only
    import argparse

    import torch

__all__ = ["Backbone", "BackboneFactory", "Loss", "LossFactory", "OptimizerFactory", "ResizeState", "Scheduler",
           "SchedulerFactory", "CommandHandler", "ConfigureCommand", "Register", "RegisterOptimizer", "RegisterCommand",
           "Targets", "READS"]

# the images a loss's targets can come from; a loss that does not say which it ``reads`` gets both
READS = ("content", "styles")


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

    ``stylefw validate`` builds the backbone on the CPU to find what it refuses, unless the factory has an
    optional classmethod ``verify(layers, **options)``: it raises what building would raise, without loading
    or downloading weights, and returns None or a sentence saying what it cannot know.
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
    with ``tiling``; a recipe that tiles with a loss that does not say is refused, naming it (and giving the
    loss's ``untileable``, a sentence's end saying why, when it has one, as ``sliced`` does). Its methods
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
