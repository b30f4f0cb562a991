"""Checkpoints and ``stylefw resume``: a run stopped and resumed ends with the same image, bit for bit, as one
that was never stopped; changed inputs and recipes are refused; a finished run leaves no checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import stylefw
from stylefw.engine.checkpoint import FORMAT, changed_keys, read_checkpoint
from stylefw.engine.files import checkpoint_path
from stylefw.cli import main
from stylefw.contracts import StepEvent
from stylefw.errors import UserError
from stylefw.engine.image import to_pil
from stylefw.plugin_manager import get_plugin_manager
from stylefw.registry import build_registry

from test_stages import write_image

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose

ADAM = {"name": "adam", "lr": 0.05, "schedule": "cosine"}  # a schedule: its state must travel too
LBFGS = {"name": "lbfgs", "max_iter": 3, "history_size": 4}
TWO_STAGES = {"scales": [{"size": 24, "steps": 3}, {"size": 32, "steps": 3}], "average": 0.9}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    write_image(folder / "content.png", 40, 30, 1)
    write_image(folder / "style.png", 32, 32, 2)
    return folder


def recipe(inputs: Path, output: Path, **changes: Any) -> dict[str, Any]:
    """A tiny run on random VGG weights: 6 steps at 32 px, or two stages of 3 with ``TWO_STAGES``."""
    return {"content": str(inputs / "content.png"), "style": str(inputs / "style.png"), "size": 32, "steps": 6,
            "backbone": {"name": "vgg19", "weights": "random"}, "device": "cpu", "output": str(output),
            "losses": [{"name": "content", "layers": ["relu2_1"]},
                       {"name": "gram", "weight": 100, "layers": ["relu1_1", "relu2_1"]}, {"name": "tv", "weight": 1}],
            "optimizer": ADAM, **changes}


def stop_after(done: int):
    """A subscriber that stops the run after its ``done``-th step (counted over the whole run)."""

    def subscriber(event: Any) -> None:
        if isinstance(event, StepEvent) and event.done == done:
            event.stop("test")

    return subscriber


UNINTERRUPTED: dict[str, torch.Tensor] = {}


def uninterrupted(inputs: Path, tmp_path: Path, key: str, **changes: Any) -> torch.Tensor:
    """The image of the run never stopped, computed once per recipe."""
    if key not in UNINTERRUPTED:
        UNINTERRUPTED[key] = stylefw.run(recipe(inputs, tmp_path / "full.png", **changes)).tensor
    return UNINTERRUPTED[key]


@pytest.mark.parametrize("optimizer", [ADAM, LBFGS], ids=["adam", "lbfgs"])
@pytest.mark.parametrize(("scales", "done"), [({}, 3), (TWO_STAGES, 2), (TWO_STAGES, 3), (TWO_STAGES, 4)],
                         ids=["single-mid", "multi-mid", "multi-boundary", "multi-second-stage"])
def test_a_stopped_run_resumed_ends_bit_for_bit_as_one_never_stopped(inputs, tmp_path, optimizer, scales, done):
    changes = {"optimizer": optimizer, **scales}
    full = uninterrupted(inputs, tmp_path, f"{optimizer['name']}-{bool(scales)}", **changes)
    output = tmp_path / "out.png"
    stopped = stylefw.run(recipe(inputs, output, **changes), on_event=stop_after(done))
    assert stopped.stopped.reason == "test" and checkpoint_path(output).is_file()
    assert not torch.equal(stopped.tensor, full)  # the stop was real: there was work left
    resumed = stylefw.resume(output)
    assert torch.equal(resumed.tensor, full)
    assert resumed.stopped is None and not checkpoint_path(output).exists()  # finished: nothing left to resume
    assert resumed.trace[:done] == stopped.trace and len(resumed.trace) == 6  # the whole run's trace


def test_a_periodic_checkpoint_resumes_bit_for_bit(inputs, tmp_path):
    output = tmp_path / "out.png"
    kept = tmp_path / "kept.ckpt"

    def keep(event: Any) -> None:  # after step 5, the file holds the checkpoint of step 4
        if isinstance(event, StepEvent) and event.done == 5:
            shutil.copy(checkpoint_path(output), kept)

    full = stylefw.run(recipe(inputs, output, checkpoint_every=2), on_event=keep).tensor
    assert not checkpoint_path(output).exists()
    state = read_checkpoint(kept)
    assert (state["stage"], state["step"], len(state["trace"])) == (1, 4, 4)
    resumed = stylefw.resume(kept)
    assert torch.equal(resumed.tensor, full)


def test_the_cli_resumes_and_the_sidecar_has_the_whole_trace(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "out.png"
    full = uninterrupted(inputs, tmp_path, "adam-False")
    stylefw.run(recipe(inputs, output), on_event=stop_after(3))
    assert main(["resume", str(checkpoint_path(output)), "--progress", "plain"]) == 0, capsys.readouterr().err
    sidecar = json.loads(Path(f"{output}.json").read_text())
    assert [row["step"] for row in sidecar["trace"]] == [1, 2, 3, 4, 5, 6]
    assert sidecar["stopped"] is None
    with Image.open(output) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(to_pil(full)))


def test_changed_values_and_input_files_are_refused_unless_forced(inputs, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "own"
    shutil.copytree(inputs, folder)
    output = tmp_path / "out.png"
    stylefw.run(recipe(folder, output), on_event=stop_after(2))
    saved = checkpoint_path(output).read_bytes()
    code = main(["resume", str(output), "--set", "optimizer.lr=0.1", "--set", "losses[2].weight=2", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "the checkpoint's recipe differs at losses[2].weight, optimizer.lr" in err, err
    assert "--force" in err
    write_image(folder / "style.png", 32, 32, 7)
    code = main(["resume", str(output), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "style[0]" in err and "changed since the checkpoint was written" in err, err
    assert checkpoint_path(output).read_bytes() == saved  # a refusal changes nothing
    # checkpoint_every changes no pixel: no --force needed for it
    assert main(["resume", str(output), "-q", "--force", "--checkpoint-every", "3", "--set", "optimizer.lr=0.1"]) == 0
    assert not checkpoint_path(output).exists()


def test_changed_keys_name_dotted_paths_and_ignore_how_often_files_are_written():
    before = {"optimizer": {"lr": 0.1}, "losses": [{"weight": 1}], "save_every": 0, "checkpoint_every": 0}
    after = {"optimizer": {"lr": 0.2}, "losses": [{"weight": 1}, {"weight": 2}], "save_every": 5,
             "checkpoint_every": 9}
    assert changed_keys(before, after) == ["losses[1].weight", "optimizer.lr"]


def test_a_failed_run_keeps_the_last_checkpoint_before_the_non_finite_loss(inputs, tmp_path):
    from test_divergence import Breaker

    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Breaker(), name="breaker")
    data = recipe(inputs, tmp_path / "out.png", steps=8, checkpoint_every=2)
    data["losses"] = data["losses"] + [{"name": "nanloss", "weight": 2.0, "at": 6}]
    result = stylefw.run(data, registry=build_registry(manager))
    assert (result.stopped.reason, result.stopped.step) == ("failed", 6)
    # step 6 is read before its checkpoint would be written: the rollback writes none, step 4's stays
    assert read_checkpoint(result.output)["step"] == 4


def test_a_foreign_or_damaged_checkpoint_is_one_user_error(tmp_path):
    path = tmp_path / "out.png.ckpt"
    torch.save({"format": FORMAT, "stylefw": "0.0.1"}, path)
    with pytest.raises(UserError, match="written by stylefw 0.0.1; this is stylefw"):
        read_checkpoint(tmp_path / "out.png")
    torch.save({"format": FORMAT, "stylefw": stylefw.__version__}, path)
    with pytest.raises(UserError, match="is damaged: it has no recipe"):
        read_checkpoint(path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(UserError, match="not a stylefw checkpoint, or it is damaged"):
        read_checkpoint(path)
