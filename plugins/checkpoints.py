"""The ``checkpoints`` plugin: ``<output>.ckpt``, from which ``stylefw resume`` continues a run bit for bit.

It is written every ``checkpoint_every`` steps of the run (not of each stage) and when the run stops early
after a whole step (Ctrl-C, SIGTERM, a plugin's stop), but never for a run that failed, whose state is past a
non-finite loss; it is removed once the run finishes. Runs that share a batch (``--batch-size``) write none:
an interrupted lane starts again. The file's format is :mod:`stylefw.engine.checkpoint`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylefw.contracts.run import RunContext, RunEnd, RunFinish, StepEvent, step_to_dict
from stylefw.engine.files import checkpoint_path
from stylefw.errors import warn
from stylefw.hooks.specs import hookimpl

from .trace import steps_of

__all__: list[str] = []

KEY = "checkpoints"


def _path(run: RunContext) -> Path | None:
    """Where the run's checkpoint goes; None when it writes none."""
    return checkpoint_path(run.output) if run.output is not None and run.lanes == 1 else None


@hookimpl(trylast=True)
def on_step(event: StepEvent) -> None:
    every = event.run.recipe.checkpoint_every
    # never after the run's last step: it finishes, and the checkpoint is removed
    if not every or event.done % every or event.done >= event.run.total_steps:
        return
    path = _path(event.run)
    if path is not None:
        _write(event.run, path, event.state())


@hookimpl(trylast=True)
def on_run_finish(event: RunFinish) -> None:
    path = _path(event.run)
    if path is not None and event.stopped is not None:
        _write(event.run, path, event.state())


@hookimpl
def on_run_end(event: RunEnd) -> None:
    path = _path(event.run)
    if path is not None and event.result.stopped is None:
        path.unlink(missing_ok=True)  # finished: nothing is left to resume


def _write(run: RunContext, path: Path, state: dict[str, Any] | None) -> None:
    """Write ``state`` (None: one not to keep) with the recipe, the inputs' digests and the trace, unless it is
    the state already written (a stop just after a checkpoint); warn if it cannot."""
    # deferred: this module loads with every command; the checkpoint's format imports torch
    from stylefw.engine.checkpoint import input_digests, recipe_digest, write_checkpoint

    kept = run.stash.setdefault(KEY, {})
    if state is None or kept.get("done") == state["done"]:
        return
    if "header" not in kept:  # the inputs do not change during the run: their digests are read once
        kept["header"] = {"recipe": run.recipe.data, "recipe_sha256": recipe_digest(run.recipe.data),
                          "inputs": input_digests(run.recipe)}
    with run.control.saving():
        try:
            write_checkpoint(path, {**kept["header"], **state,
                                    "trace": [step_to_dict(step) for step in steps_of(run)]})
        except OSError as exc:  # the run goes on: its output matters more than a way to resume it
            warn(f"cannot write the checkpoint {path}: {exc.strerror or exc}")
            return
    kept["done"] = state["done"]
