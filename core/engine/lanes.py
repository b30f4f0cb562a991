"""Several runs of one recipe on different images, optimised together: one forward and backward pass a step.

Each run is a lane. The lanes' images are stacked into one batch, and the backbone sees them all at once,
which keeps a GPU busy where one small picture would not. Everything else stays each lane's own: its
targets and losses (each sees its own slice of the batch's features), its trace, its guard against a
non-finite loss, its stops and its average, because each lane is a ``StagedRun`` that is handed the
steps the batch takes instead of taking them itself.

The result is each run's, up to float rounding: the backbone has no layer that mixes the images of a
batch (backbones run in eval mode: no batch statistics), the gradient of the lanes' summed losses with respect to one lane's image is
that lane's own gradient, and the optimizers allowed here (``ELEMENTWISE``) update every value on its own,
so one optimizer over the batch takes each lane's own step. Only the convolutions' rounding differs.

Runs can share a batch when their recipes differ only in their images (``compatible``): the same backbone,
seed, losses and weights, optimizer and stages, and contents of one shape. A run that stops (a
subscriber's stop, a non-finite loss) keeps its picture from then on while the others go on.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .build import build_optimizer
from .optimise import Evaluated, optimise
from .stages import Ending, StagedRun

__all__ = ["ELEMENTWISE", "compatible", "LanedRun"]

# the built-in optimizers whose update of each value depends on that value's gradient alone: one of them
# over a batch of images takes each image's own step (L-BFGS's line search and history are the whole batch's)
ELEMENTWISE = ("adam", "sgd")
# keys in which lanes may differ: their images, where their outputs go and how often they save
OWN = ("content", "style", "output", "save_every", "checkpoint_every")


def compatible(recipes: Sequence[Any]) -> str | None:
    """None when ``recipes`` can run as lanes of one batch; otherwise why not, as a sentence's end."""
    first = recipes[0]
    shared = lambda recipe: {key: value for key, value in recipe.data.items() if key not in OWN}
    if any(shared(recipe) != shared(first) for recipe in recipes[1:]):
        return "their recipes differ in more than their images"
    if first.optimizer.name not in ELEMENTWISE:
        return f"optimizer '{first.optimizer.name}' does not update each value on its own"
    if first.tile is not None:
        return "they are tiled"
    if first.init == "noise":
        return "each draws its own starting noise"
    return None


class _Lane:
    """One lane's losses, made to read the lane's slice of the batch's features and pixels."""

    def __init__(self, loss: Any, index: int) -> None:
        self.loss, self.index = loss, index
        self.layers = loss.layers

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        lane = slice(self.index, self.index + 1)
        return self.loss({name: value[lane] for name, value in features.items()}, image[lane])


class LanedRun:
    """Runs ``runs`` (StagedRuns of compatible recipes, sharing one backbone) as lanes of one batch."""

    def __init__(self, runs: Sequence[StagedRun]) -> None:
        self.runs = list(runs)
        if len({tuple(stage.shape for stage in run.stages) for run in self.runs}) > 1:
            raise ValueError("lanes must have contents of one shape: their stages differ in size")
        # the current stage's batch, its optimizer, and the lanes in it, in order
        self.batch: torch.Tensor | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.members: list[StagedRun] = []

    def run(self) -> list[Ending]:
        for run in self.runs:
            run.begin()
        live = self.runs
        try:
            for index in range(len(self.runs[0].stages)):
                live = [run for run in live if not run.ended]
                if not live:
                    break
                self.run_stage(index, live)
        except KeyboardInterrupt:
            for run in live:
                if not run.ended:
                    run.interrupted()
        return [run.ending() for run in self.runs]

    def run_stage(self, index: int, live: list[StagedRun]) -> None:
        """Stage ``index`` of every lane in ``live``, with one batch and one optimizer."""
        first, stage = live[0], live[0].stages[index]
        prepared = [run.prepare(run.stages[index]) for run in live]
        starts = [run.start_image(run.stages[index], inputs) for run, (inputs, _) in zip(live, prepared)]
        batch = torch.cat([start.detach() for start in starts]).requires_grad_(True)
        optimizer = self.build_optimizer(first, batch, live, stage.shape)
        scheduler = first.scheduler(stage, optimizer)
        for position, (run, (inputs, targets)) in enumerate(zip(live, prepared)):
            run.enter(run.stages[index], inputs, targets, batch[position:position + 1], optimizer, scheduler)
        del prepared  # the targets: as in a single run, the losses keep what they need
        losses = [_Lane(loss, position) for position, run in enumerate(live) for loss in run.losses]
        weights = [weight for run in live for weight in run.weights]
        labels = [label for run in live for label in run.labels]
        going = list(live)
        for evaluated in optimise(batch, first.backbone, losses, weights, labels, optimizer, stage.steps,
                                  first.layers, scheduler=scheduler):
            for position, run in enumerate(live):
                if run not in going:
                    continue
                if not run.after(_lane_values(evaluated, run, position)):
                    going.remove(run)
                    run.image = run.image.detach().clone()  # the batch goes on; this lane's picture stays
            if not going:
                return

    def build_optimizer(self, first: StagedRun, batch: torch.Tensor, live: list[StagedRun],
                        shape: tuple[int, int]) -> torch.optim.Optimizer:
        """The recipe's optimizer over ``batch``, carrying the previous stage's state as a single run does,
        for the lanes still running."""
        previous = self.optimizer.state.get(self.batch) if self.optimizer is not None else None
        if previous:
            previous = _select(previous, [position for position, run in enumerate(self.members) if run in live],
                               self.batch)
        optimizer = build_optimizer(first.registry, first.recipe, batch, shape, previous)
        self.batch, self.optimizer, self.members = batch, optimizer, list(live)
        return optimizer


def _lane_values(evaluated: Evaluated, run: StagedRun, position: int) -> Evaluated:
    """The lane's own total and terms, from the batch's: still on the device, no host sync."""
    count = len(run.losses)
    terms = evaluated.values[1 + position * count:1 + (position + 1) * count]
    total = sum(weight * value for weight, value in zip(run.weights, terms))
    return Evaluated(evaluated.step, torch.cat([torch.as_tensor(total).reshape(1), terms]), evaluated.projected)


def _select(state: Mapping[str, Any], kept: Sequence[int], batch: torch.Tensor) -> dict[str, Any]:
    """An optimizer's state for a batch, keeping only the images at ``kept``: those of lanes still running."""
    return {key: value[list(kept)] if isinstance(value, torch.Tensor) and value.shape == batch.shape else value
            for key, value in state.items()}
