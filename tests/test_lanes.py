"""Runs as lanes of one batch (``stylefw.engine.lanes``, ``stylefw batch --batch-size``): each lane's gradient is its
own run's, exactly in float64, and each result is its own run's up to float32 rounding."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import stylefw
from stylefw.engine.api import run_together
from stylefw.contracts import Targets
from stylefw.engine.lanes import _Lane, compatible
from stylefw.plugins.losses import ContentLoss, GramLoss, TVLoss
from stylefw.plugins.vgg import VGG19
from stylefw.recipe import recipe_from_dict

from test_resume import stop_after
from test_stages import write_image

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]
TWO_STAGES = {"scales": [{"size": 24, "steps": 4}, {"size": 32, "steps": 4}], "average": 0.9}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lanes")
    for index in range(3):
        write_image(folder / f"content{index}.png", 40, 30, index)
        write_image(folder / f"style{index}.png", 32, 32, 10 + index)
    return folder


def recipe(inputs: Path, index: int, **changes) -> dict:
    return {"content": str(inputs / f"content{index}.png"), "style": str(inputs / f"style{index}.png"), "size": 32,
            "steps": 8, "device": "cpu", "backbone": {"name": "vgg19", "weights": "random"},
            "losses": [{"name": "content", "layers": ["relu2_1"]},
                       {"name": "gram", "weight": 1000, "layers": ["relu1_1", "relu2_1"]}, {"name": "tv", "weight": 1}],
            "optimizer": {"name": "adam", "lr": 0.05, "schedule": "cosine"}, **changes}


def test_each_lanes_gradient_is_its_own_runs_in_float64():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = VGG19(weights="random").double()
    vgg.truncate("relu3_1")
    generator = torch.Generator().manual_seed(3)
    pictures = torch.rand(3, 3, 40, 48, generator=generator, dtype=torch.float64)
    lanes = []
    for index in range(3):
        content, style = (torch.rand(1, 3, 40, 48, generator=generator, dtype=torch.float64) for _ in range(2))
        losses = [ContentLoss(layers=["relu2_1"]), GramLoss(layers=LAYERS), TVLoss()]
        with torch.no_grad():
            targets = Targets(vgg(content, ["relu2_1"]), [(vgg(style, LAYERS), 1.0)])
        for loss in losses:
            loss.prepare(targets)
        lanes.append(losses)
    weights = [1.0, 100.0, 10.0]
    alone = []
    for index, losses in enumerate(lanes):
        image = pictures[index:index + 1].clone().requires_grad_(True)
        features = vgg(image, LAYERS)
        sum(w * loss(features, image) for w, loss in zip(weights, losses)).backward()
        alone.append(image.grad)
    batch = pictures.clone().requires_grad_(True)
    features = vgg(batch, LAYERS)
    sum(w * _Lane(loss, index)(features, batch) for index, losses in enumerate(lanes)
        for w, loss in zip(weights, losses)).backward()
    for index, expected in enumerate(alone):
        assert ((batch.grad[index:index + 1] - expected).norm() / expected.norm()).item() < 1e-12


@pytest.mark.parametrize("stages", [{}, TWO_STAGES, {**TWO_STAGES, "octave_size": 16}],
                         ids=["one stage", "two stages, averaged", "two stages, style at octaves"])
def test_lanes_end_where_their_runs_alone_do(inputs, stages):
    """In float32 the convolutions round differently over a batch, and Adam's first steps magnify that in
    the few values whose gradient is near zero: losses agree to 0.1%, pictures to a tenth of a grey level."""
    alone = [stylefw.run(recipe(inputs, index, **stages), save=False) for index in range(3)]
    together = run_together([recipe(inputs, index, **stages) for index in range(3)], save=False)
    for single, lane in zip(alone, together):
        assert [step.step for step in lane.trace] == [step.step for step in single.trace]
        assert [step.loss for step in lane.trace] == pytest.approx([step.loss for step in single.trace], rel=1e-3)
        difference = np.abs(np.asarray(lane.image, dtype=float) - np.asarray(single.image, dtype=float))
        assert difference.mean() < 0.1
        assert lane.recipe == single.recipe and lane.stopped is None


def test_a_lane_that_stops_keeps_its_picture_while_the_others_go_on(inputs, tmp_path):
    outputs = [tmp_path / f"out{index}.png" for index in range(3)]
    recipes = [recipe(inputs, index, output=str(output)) for index, output in enumerate(outputs)]
    together = run_together(recipes, on_events=[None, stop_after(3), None])
    assert [len(result.trace) for result in together] == [8, 3, 8]
    assert together[1].stopped.reason == "test" and together[1].stopped.step == 3
    stopped_alone = stylefw.run(recipes[1], on_event=stop_after(3), save=False)
    difference = np.abs(np.asarray(together[1].image, dtype=float) - np.asarray(stopped_alone.image, dtype=float))
    assert difference.mean() < 0.1
    assert all(output.is_file() and Path(f"{output}.json").is_file() for output in outputs)
    assert not any(Path(f"{output}.ckpt").exists() for output in outputs)  # lanes write no checkpoints


def test_runs_that_differ_in_their_images_only_can_share_a_batch(inputs):
    assert compatible([recipe_from_dict(recipe(inputs, index)) for index in range(3)]) is None


LBFGS = {"optimizer": {"name": "lbfgs"}}


@pytest.mark.parametrize(("first", "second", "why"), [
    ({}, {"steps": 9}, "their recipes differ in more than their images"),
    (LBFGS, LBFGS, "optimizer 'lbfgs' does not update each value on its own"),
    ({"init": "noise"}, {"init": "noise"}, "each draws its own starting noise"),
])
def test_what_cannot_share_a_batch_says_why(inputs, first, second, why):
    recipes = [recipe_from_dict(recipe(inputs, 0, **first)), recipe_from_dict(recipe(inputs, 1, **second))]
    assert compatible(recipes) == why
    with pytest.raises(ValueError, match=why):
        run_together(recipes, save=False)
