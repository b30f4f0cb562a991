"""The ``snapshots`` plugin: ``save_every: N`` writes the picture every N steps of each stage, beside the output,
with its metadata (``out.000100.png``, or ``out.stage2.000100.png`` in a multi-scale run)."""

from __future__ import annotations

from stylefw.contracts.run import StepEvent
from stylefw.engine.files import snapshot_path
from stylefw.hooks.specs import hookimpl

__all__: list[str] = []


@hookimpl
def on_step(event: StepEvent) -> None:
    every, output = event.run.recipe.save_every, event.run.output
    if every and output is not None and event.step % every == 0:
        stage = event.stage.index if event.stage.count > 1 else None
        event.save(snapshot_path(output, event.step, stage))
