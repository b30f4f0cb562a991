"""The ``sidecar`` plugin: ``<output>.json`` beside each output, with its metadata and the whole loss trace, written
with the output, all or none."""

from __future__ import annotations

from typing import Any

from stylefw.contracts.run import Save, Step
from stylefw.engine.files import json_writer, sidecar_path
from stylefw.hooks.specs import hookimpl

__all__ = ["trace_data"]


def trace_data(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    """The trace as the sidecar records it: each step's stage, size, number, loss, time and terms."""
    return [{"stage": step.stage, "size": step.size, "step": step.step, "loss": step.loss, "elapsed": step.elapsed,
             "terms": step.term_values()} for step in steps]


@hookimpl
def on_save(event: Save) -> None:
    if not event.snapshot:
        data = {**event.result.metadata(), "trace": trace_data(event.result.trace)}
        event.files[sidecar_path(event.path)] = json_writer(data)
