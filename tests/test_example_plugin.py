"""The example plugin in tests/example_plugin, installed as a real distribution, works through its entry point."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from PIL import Image

import stylefw
from stylefw.cli import main
from stylefw.errors import RecipeError
from stylefw.recipe import recipe_from_dict
from stylefw.registry import default_registry

try:
    metadata.distribution("stylefw-example-plugin")
    INSTALLED = True
except metadata.PackageNotFoundError:
    INSTALLED = False

pytestmark = pytest.mark.skipif(
    not INSTALLED, reason="the example plugin is not installed: run pip install -e tests/example_plugin"
)


@pytest.fixture
def recipe(tmp_path) -> dict:
    """A 32 px run of the example backbone, loss and optimizer, with the built-in tv loss."""
    ramp = torch.linspace(0, 1, 32)
    content = torch.stack([ramp.expand(32, 32), ramp.expand(32, 32).T, torch.full((32, 32), 0.5)])
    stripes = (torch.arange(32) // 4 % 2).float().expand(32, 32)
    style = torch.stack([stripes, 1 - stripes, stripes * 0.2])
    for name, picture in (("content.png", content), ("style.png", style)):
        Image.fromarray((picture.permute(1, 2, 0) * 255).byte().numpy()).save(tmp_path / name)
    return {
        "content": str(tmp_path / "content.png"),
        "style": str(tmp_path / "style.png"),
        "size": 32,
        "backbone": {"name": "tiny", "weights": "random"},
        "losses": [{"name": "moments", "weight": 10.0, "layers": ["relu1", "relu2"]}, {"name": "tv", "weight": 0.1}],
        "optimizer": {"name": "signsgd", "lr": 0.01},
        "steps": 6,
        "device": "cpu",
    }


def test_the_entry_point_registers_every_item_as_plugin_example():
    registry = default_registry()
    for kind, name in (("backbone", "tiny"), ("loss", "moments"), ("optimizer", "signsgd")):
        assert registry.get(kind, name).plugin == "example"


def test_stylefw_plugins_lists_the_distribution_and_its_version(capsys):
    assert main(["plugins"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["example", "stylefw-example-plugin", "0.1.0"] in [line[:3] for line in lines]


def test_a_recipe_of_example_items_runs_and_lowers_the_loss(recipe):
    result = stylefw.run(recipe, save=False)
    assert [step.step for step in result.trace] == [1, 2, 3, 4, 5, 6]
    assert result.tensor.shape == (1, 3, 32, 32)
    first, last = result.losses[0], result.losses[-1]
    assert last["total"] < first["total"]
    assert last["moments"] < first["moments"]
    assert result.metadata()["plugins"]["example"] == "stylefw-example-plugin 0.1.0"


def test_the_recipe_validator_checks_example_items(recipe):
    recipe["losses"][0]["layers"] = ["relu3"]
    recipe["optimizer"]["lrr"] = 1
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe)
    problems = {problem.path: problem.message for problem in caught.value.problems}
    assert "unknown layer 'relu3' for tiny" in problems["losses[0].layers[0]"]
    assert "unknown option 'lrr' for optimizer 'signsgd' (did you mean lr?)" in problems["optimizer.lrr"]


def test_a_value_only_the_example_optimizer_refuses_stops_the_run_with_its_path(recipe):
    # SignSGD declares no range for lr: validation passes it, and the run refuses it before reading images
    recipe["optimizer"]["lr"] = -1
    recipe_from_dict(recipe)
    with pytest.raises(RecipeError) as caught:
        stylefw.run(recipe, save=False)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("optimizer", "optimizer 'signsgd' rejects these options: lr must be above 0, not -1")]


def test_tiny_rejects_weights_it_does_not_have():
    with pytest.raises(ValueError, match="tiny has no pretrained weights; use weights: random"):
        stylefw.create_backbone("tiny", weights="imagenet")


def test_the_example_subscriber_stops_a_run_below_a_loss(recipe, tmp_path, monkeypatch, capsys):
    import json

    import yaml

    from stylefw_example import STOP_BELOW

    totals = [step["total"] for step in stylefw.run(recipe, save=False).losses]
    threshold = (totals[1] + totals[2]) / 2  # crossed at step 3
    assert totals[2] < threshold <= totals[1]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**recipe, "output": str(tmp_path / "out.png")}), encoding="utf-8")
    monkeypatch.setenv(STOP_BELOW, repr(threshold))
    assert main(["recipe", str(path), "--progress", "plain"]) == 0
    assert f"stopped at step 3/6: the loss fell below {threshold!r}" in capsys.readouterr().err
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert sidecar["stopped"] == {"reason": f"the loss fell below {threshold!r}", "stage": 1, "step": 3}
    assert sidecar["steps_done"] == 3 and sidecar["interrupted"] is False
