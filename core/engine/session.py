"""What ``run``, ``resume`` and ``run_together`` share: one set-up (outputs checked, device, inputs, one backbone,
each run's context and hooks, its tiles) and one delivery (the finish, the result, its files, the end).

Nothing here watches a run by name: each event goes to the plugins' hooks (:class:`~stylefw.engine.events.RunHooks`),
and what the result carries beyond the picture (its trace, the score) and the files beside it (the sidecar)
come from them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch

from ..contracts.plugins import Backbone, Loss
from ..contracts.recipe import Recipe
from ..contracts.run import INTERRUPTED, Download, Result, RunAbort, RunContext, RunControl, RunEnd, RunFinish, Stage
from ..hooks.registry import Registry
from .build import build_backbone, build_losses
from .calibrate import auto_tile_size
from .events import RunHooks
from .files import checkpoint_path, remove_leftovers, sidecar_path
from .image import to_pil
from .inputs import OnDownload, open_inputs, select_device
from .lanes import LanedRun
from .outputs import ensure_writable, save_result, save_snapshot
from .precision import matmul_precision
from .provenance import versions
from .stages import Ending, StagedRun, plan_stages, warn_upscaled_styles
from .tiling import Tiler, make_tiler

__all__ = ["Session"]

T = TypeVar("T")


class Session:
    """Runs of ``recipes`` on one device with one backbone: a single run, or the lanes of one batch.

    Building it checks that every output can be written, picks the device, seeds torch and opens the
    inputs (downloading what it must), so that ``resume`` can compare them with its checkpoint before
    ``prepare`` builds the backbone.
    """

    def __init__(self, recipes: Sequence[Recipe], registry: Registry, *, save: bool, debug: bool,
                 on_download: OnDownload | None = None) -> None:
        self.recipes, self.registry, self.save, self.debug = list(recipes), registry, save, debug
        for recipe in self.recipes:
            if save and recipe.output is not None:
                ensure_writable(recipe)  # before any work: a run must not end in an output it cannot write
                for path in (recipe.output, sidecar_path(recipe.output), checkpoint_path(recipe.output)):
                    remove_leftovers(path)  # what an earlier run at this output left when it was killed
        first = self.recipes[0]
        self.device = select_device(first.device)
        torch.manual_seed(first.seed)  # a resumed run too: random backbone weights are drawn again, the same
        announce = RunHooks(registry.manager)

        def download(url: str, done: int, total: int | None) -> None:
            announce(Download(url, done, total))
            if on_download is not None:
                on_download(url, done, total)

        self.inputs = [open_inputs(recipe, download, registry) for recipe in self.recipes]
        self.provenance = versions(registry.manager)
        self.backbone: Backbone | None = None

    def prepare(self) -> None:
        """Warn about style images the run must enlarge, and build the backbone the runs share."""
        for recipe, (_, styles) in zip(self.recipes, self.inputs):
            warn_upscaled_styles(recipe, styles)
        self.backbone = build_backbone(self.recipes[0], self.registry, self.device)

    def staged(self, lane: int, *, resume: dict[str, Any] | None = None,
               subscribers: Iterable[Callable[[Any], None] | None] = ()) -> StagedRun:
        """The run of recipe ``lane``: its context, its hooks (the plugins', then ``subscribers``), its losses
        and its tiles; ``resume`` is the state it continues from."""
        recipe, (content, styles) = self.recipes[lane], self.inputs[lane]
        stages = plan_stages(recipe, content.size)
        control = RunControl()
        context = RunContext(recipe, str(self.device), stages, control,
                             output=recipe.output if self.save else None, resumed=resume, lane=lane,
                             lanes=len(self.recipes), debug=self.debug,
                             provenance=self.provenance)
        emit = RunHooks(self.registry.manager, subscribers)
        context.saver = lambda event, path: save_snapshot(event, path, emit)
        losses = build_losses(recipe, self.registry)
        tiler = self._tiler(recipe, losses, stages) if recipe.tile is not None else None
        return StagedRun(self.registry, self.device, self.backbone, losses, content=content, styles=styles,
                         emit=emit, run=context, tiler=tiler)

    def _tiler(self, recipe: Recipe, losses: list[Loss], stages: tuple[Stage, ...]) -> Tiler:
        """How the run cuts its stages into tiles, decided now: ``tile: auto`` sizes them to the device's free
        memory, from the recipe's calibrated memory line."""
        labels = [spec.label for spec in recipe.losses]
        auto = lambda margin: auto_tile_size(recipe, stages, self.device, margin, registry=self.registry)  # noqa: E731
        return make_tiler(recipe.tile, self.backbone, recipe.backbone.name, losses, labels, recipe.source, auto)

    def run(self, staged: StagedRun) -> Result:
        """Run ``staged`` through its stages and deliver its result."""
        return self._guarded([staged], lambda: self.finish(staged, staged.run()))

    def run_lanes(self, runs: Sequence[StagedRun]) -> list[Result]:
        """Run ``runs`` as lanes of one batch and deliver each one's result."""
        return self._guarded(runs, lambda: [self.finish(run, ending) for run, ending in zip(runs, LanedRun(runs).run())])

    @staticmethod
    def _guarded(runs: Sequence[StagedRun], body: Callable[[], T]) -> T:
        """``body()`` at the recipes' matmul precision (one for all lanes); if it raises, each run that started
        and did not end is announced as aborted first, so that its plugins let go of what they hold (the signals
        plugin, its handlers)."""
        try:
            with matmul_precision(runs[0].recipe.precision):
                return body()
        except BaseException as exc:
            for staged in runs:
                if staged.started and not staged.delivered:
                    staged.emit(RunAbort(staged.context, exc))
            raise

    def finish(self, staged: StagedRun, ending: Ending) -> Result:
        """Deliver a run that ended as ``ending``: the plugins finish it (its trace, its score, a checkpoint),
        its result is written with their files beside it, and the end is announced. Nothing interrupts this."""
        run, recipe = staged.context, staged.recipe
        whole = lambda: build_backbone(dataclasses.replace(recipe, precision="fp32", compile=False),  # noqa: E731
                                       self.registry, ending.picture.device, cut=False)
        finish = RunFinish(run, ending.picture, ending.content, ending.styles, ending.stop, staged.final_state, whole)
        with run.control.saving():
            staged.emit(finish)
            interrupted = ending.stop is not None and ending.stop.reason == INTERRUPTED
            result = Result(to_pil(ending.picture), ending.picture, tuple(finish.trace), recipe, run.device,
                            interrupted, stopped=ending.stop, extras=dict(finish.metadata),
                            provenance=self.provenance)
            if run.output is not None:
                save_result(result, run.output, run=run, emit=staged.emit)
                result = dataclasses.replace(result, output=run.output)
        staged.emit(RunEnd(result, run))
        staged.delivered = True
        return result
