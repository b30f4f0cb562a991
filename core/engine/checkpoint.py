"""Checkpoints: ``<output>.ckpt`` holds what a run needs to continue bit for bit, and what it was made from.

This module is the file's format and the checks ``stylefw resume`` makes; when a run writes one is the
``checkpoints`` plugin's choice (:mod:`stylefw.plugins.checkpoints`).

A checkpoint is a ``torch.save`` of plain tensors, numbers, strings, lists and dicts, so it loads with
``weights_only=True``: opening one never runs code. Beside the run's state (the image, the optimizer's and
the schedule's state, the average, the RNG) it keeps the resolved recipe and a sha256 of each input file,
so that ``stylefw resume`` can refuse to continue a run whose inputs have changed since.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .. import __version__
from ..contracts.recipe import Recipe
from ..contracts.run import Stage
from ..errors import UserError
from .files import checkpoint_path, write_all
from .image import fetch

__all__ = ["FORMAT", "UNCHECKED", "recipe_digest", "input_digests", "rng_state", "restore_rng",
           "write_checkpoint", "read_checkpoint", "changed_keys",
           "changed_inputs", "ensure_fits"]

FORMAT = "stylefw-checkpoint"
# keys that change where or how often files are written, or how much memory a step holds, never a pixel: a
# resume may change them freely
UNCHECKED = ("checkpoint_every", "save_every", "memory", "tile")
HINT = "start the run again with 'stylefw recipe'"
REQUIRED = ("recipe", "recipe_sha256", "inputs", "trace", "stage", "step", "done", "project", "elapsed",
            "image", "optimizer", "scheduler", "average", "rng")


def recipe_digest(data: Mapping[str, Any]) -> str:
    """The sha256 of a recipe mapping as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_digests(recipe: Recipe) -> dict[str, str]:
    """The sha256 of each input file's bytes, by recipe key (``content``, ``style[0]``, ...); URLs from the cache."""
    refs = {"content": recipe.content, **{f"style[{i}]": ref for i, ref in enumerate(recipe.styles)}}
    digests = {}
    for key, ref in refs.items():
        path = fetch(ref.source) if ref.is_url else ref.source  # already downloaded by the run: a cache hit
        digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digests


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's CPU generator state, and every CUDA generator's when the run is on a GPU."""
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else []
    return {"cpu": torch.get_rng_state(), "cuda": list(cuda)}


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back the generator states ``rng_state`` took."""
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` with its format and stylefw's version, atomically: a temporary file, then a rename."""
    whole = {"format": FORMAT, "stylefw": __version__, **state}
    write_all({path: lambda handle: torch.save(whole, handle)})


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The checkpoint at ``path`` (or beside the output ``path``); a UserError when it is missing, foreign or damaged."""
    path = checkpoint_path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise UserError(f"no checkpoint to resume from: {path} {what}",
                        hint="a run writes one when it is interrupted, and every N steps with checkpoint_every: N")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a zip, a pickle of other things: all say the same to a user
        raise UserError(f"{path} is not a stylefw checkpoint, or it is damaged ({type(exc).__name__})",
                        hint=HINT) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a stylefw checkpoint", hint=HINT)
    if state.get("stylefw") != __version__:
        raise UserError(f"{path} was written by stylefw {state.get('stylefw')}; this is stylefw {__version__}, "
                        "which cannot continue it bit for bit", hint=HINT)
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise UserError(f"{path} is damaged: it has no {', '.join(missing)}", hint=HINT)
    if recipe_digest(state["recipe"]) != state["recipe_sha256"]:
        raise UserError(f"{path} is damaged: its recipe does not match its own sha256", hint=HINT)
    return state


def changed_keys(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The dotted keys (``optimizer.lr``, ``losses[1].weight``) whose values differ, but for ``UNCHECKED``."""
    before, after = _flat(saved), _flat(current)
    return [key for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key) and key.split(".")[0].split("[")[0] not in UNCHECKED]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {found: item for key, sub in value.items()
                for found, item in _flat(sub, f"{prefix}.{key}" if prefix else str(key)).items()}
    if isinstance(value, (list, tuple)):
        return {found: item for index, sub in enumerate(value) for found, item in _flat(sub, f"{prefix}[{index}]").items()}
    return {prefix: value}


def changed_inputs(saved: Mapping[str, str], recipe: Recipe) -> list[str]:
    """The input files, as ``key (path)``, whose bytes differ from those the checkpoint was made from."""
    sources = {"content": recipe.content.source, **{f"style[{i}]": ref.source for i, ref in enumerate(recipe.styles)}}
    current = input_digests(recipe)
    return [f"{key} ({sources[key]})" for key in current if saved.get(key) != current[key]]


def ensure_fits(state: Mapping[str, Any], stages: Sequence[Stage]) -> None:
    """Refuse a checkpoint whose stage and image size the run's stages cannot continue (after ``--force``)."""
    index, step, shape = state["stage"], state["step"], tuple(state["image"].shape[-2:])
    if index > len(stages) or stages[index - 1].shape != shape or step > stages[index - 1].steps:
        plan = ", ".join(f"{stage.shape[1]}×{stage.shape[0]} px for {stage.steps} steps" for stage in stages)
        raise UserError(f"the checkpoint stopped at step {step} of stage {index} with a {shape[1]}×{shape[0]} px "
                        f"image; the recipe now runs {plan}", hint=HINT)
