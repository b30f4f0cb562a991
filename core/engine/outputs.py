"""The files a run writes: checked before any work (the folder must take them, and none may be an input), then
written whole or not at all, with what the plugins add beside them (``on_save``: the sidecar)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Callable

from ..contracts.recipe import Recipe
from ..contracts.run import Result, RunContext, Save, StepEvent
from ..errors import UserError
from .files import sidecar_path, write_all
from .image import image_writer, to_pil

__all__ = ["OutputError", "ensure_writable", "written_paths", "save_result", "save_snapshot"]


class OutputError(UserError):
    """The output cannot be written where the recipe says, or writing it would overwrite an input. Exit code 2."""


HINT = "choose another output with --output or the recipe's output key"


def written_paths(output: Path) -> dict[Path, str]:
    """The files a run with ``output`` writes, each with how a message names it (snapshots are checked apart)."""
    return {output: "the output", sidecar_path(output): "the output's metadata file"}


def ensure_writable(recipe: Recipe) -> None:
    """Raise OutputError unless the run can write ``recipe.output`` and its sidecar without touching an input."""
    output = recipe.output
    assert output is not None
    folder = output.parent
    if not folder.exists():
        raise OutputError(f"cannot write {output}: the folder {folder} does not exist",
                          hint=f"create it first (mkdir -p {folder}), or {HINT}")
    if not folder.is_dir():
        raise OutputError(f"cannot write {output}: {folder} is a file, not a folder", hint=HINT)
    for path, name in written_paths(output).items():
        if path.is_dir():
            raise OutputError(f"cannot write {name} {path}: {path.name} is a directory",
                              hint=f"name a file, such as {path / 'out.png'}" if path == output else HINT)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {output}: the folder {folder} is not writable", hint=HINT)
    _check_inputs(recipe, output)


def _check_inputs(recipe: Recipe, output: Path) -> None:
    """No file the run writes may be the recipe file or an input image, whatever links lead to them."""
    inputs = {_real(Path(ref.source)): f"the {key} image" for key, ref in _images(recipe) if not ref.is_url}
    if recipe.source is not None and Path(recipe.source).is_file():
        inputs[_real(Path(recipe.source))] = "the recipe file"
    for path, name in written_paths(output).items():
        # a write renames over the path: a link there is replaced, its target kept; a linked folder is followed
        taken = inputs.get(_real(path.parent) / path.name)
        if taken is not None:
            raise OutputError(f"{name} {path} is {taken}: writing it would overwrite {taken}", hint=HINT)
    if recipe.save_every:
        snapshot = re.compile(rf"{re.escape(output.stem)}\.(stage\d+\.)?\d{{6}}{re.escape(output.suffix)}")
        for path, taken in inputs.items():
            if path.parent == _real(output.parent) and snapshot.fullmatch(path.name):
                raise OutputError(f"{taken} {path} has the name of a save_every snapshot of {output}: writing "
                                  f"snapshots would overwrite it", hint=HINT)


def _images(recipe: Recipe):
    yield "content", recipe.content
    for index, ref in enumerate(recipe.styles):
        yield f"style[{index}]", ref


def _real(path: Path) -> Path:
    """``path`` with every symlink resolved, so a link to an input is that input."""
    return Path(os.path.realpath(path))


def save_result(result: Result, path: Path, *, run: RunContext, emit: Callable[[Save], None],
                snapshot: bool = False) -> Path:
    """Write the image with its metadata embedded, and every file a plugin adds to the ``Save`` event.

    Each is written to a temporary file first and all are renamed together, so a failure (a full disk)
    leaves the previous output and its sidecar as they were; nothing interrupts the write.
    """
    files = {path: image_writer(result.image, path, result.metadata())}
    emit(Save(run, result, path, files, snapshot))
    try:
        with run.control.saving():
            write_all(files)
    except OSError as exc:
        kept = " (the previous one is unchanged)" if path.exists() else ""
        hint = "free some space on that disk, or " + HINT if exc.errno == errno.ENOSPC else HINT
        raise OutputError(f"cannot write {path}{kept}: {exc.strerror or exc}", hint=hint) from exc
    return path


def save_snapshot(event: StepEvent, path: Path, emit: Callable[[Save], None]) -> Path:
    """Write the picture of ``event``'s step to ``path``, with the metadata of a result that ends there."""
    picture = event.image()
    run = event.run
    partial = Result(to_pil(picture), picture, (event.record(),), run.recipe, run.device, False,
                     provenance=run.provenance)
    return save_result(partial, path, run=run, emit=emit, snapshot=True)
