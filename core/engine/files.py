"""Where a run's files go beside its output, and how every file stylefw writes is written: whole or not at all.

Nothing here imports Pillow or torch, so that the plugins that name and write files load quickly with every
command.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..contracts.run import Writer

__all__ = ["sidecar_path", "checkpoint_path", "snapshot_path", "write_json", "json_writer", "write_atomic", "write_all",
           "remove_leftovers"]


def sidecar_path(output: Path | str) -> Path:
    """``out.png.json`` for the output ``out.png``: its metadata and loss trace."""
    return Path(f"{output}.json")


def checkpoint_path(path: Path | str) -> Path:
    """``out.png.ckpt`` for the output ``out.png``; a path already ending in ``.ckpt`` is kept as it is."""
    path = Path(path)
    return path if path.suffix == ".ckpt" else path.with_name(f"{path.name}.ckpt")


def snapshot_path(output: Path, step: int, stage: int | None = None) -> Path:
    """``out.000100.png`` in a single-scale run, ``out.stage2.000100.png`` in stage 2 of a multi-scale one."""
    where = f"stage{stage}." if stage is not None else ""
    return output.with_name(f"{output.stem}.{where}{step:06d}{output.suffix}")


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    write_atomic(path, json_writer(data))
    return path


def json_writer(data: Mapping[str, Any]) -> Writer:
    """What writes ``data`` to a handle as indented JSON."""
    return lambda handle: handle.write(json.dumps(data, indent=2, default=str).encode() + b"\n")


def write_atomic(path: Path, write: Writer) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``."""
    write_all({path: write})


def write_all(writes: Mapping[Path, Writer]) -> None:
    """Write every file to a temporary file beside it, then rename them all: a failure changes none of them."""
    parts: dict[Path, str] = {}
    try:
        for path, write in writes.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False)
            parts[path] = handle.name
            with handle:
                write(handle)
            os.chmod(handle.name, 0o666 & ~_umask())  # a temporary file is private; the output should not be
        for path, part in parts.items():
            os.replace(part, path)
    except BaseException:
        for part in parts.values():
            Path(part).unlink(missing_ok=True)
        raise


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files a writer of ``path`` left when it was killed (SIGKILL cannot tidy up), and
    say which. Only the owner of ``path`` may call it: another process's write in progress would be lost."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.part")  # the names write_all's tempfile makes
    found = [part for part in path.parent.glob(f".{glob.escape(path.name)}.*.part") if pattern.fullmatch(part.name)]
    for part in found:
        part.unlink(missing_ok=True)
    return found


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
