"""Plugins written for stylefw 0.1 keep working.

``tests/plugin_v01.py`` is the example plugin exactly as stylefw 0.1 shipped it
(``tests/example_plugin/stylefw_example/__init__.py`` at 0.1): never edit it to make a test pass. It is
registered with a fresh plugin manager under its own name, so it does not clash with the installed example.
"""

from __future__ import annotations

import warnings

import numpy as np
import plugin_v01
import pytest
from PIL import Image

import stylefw
from stylefw.contracts import Backbone, BackboneFactory, Loss
from stylefw.errors import StylefwWarning
from stylefw.plugin_manager import get_plugin_manager
from stylefw.registry import build_registry

PLUGIN = "example-0.1"


@pytest.fixture(scope="module")
def registry():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(plugin_v01, name=PLUGIN)
    return build_registry(manager)


@pytest.fixture
def recipe(tmp_path) -> dict:
    """32 px of the 0.1 plugin's backbone, loss and optimizer, with built-in content and tv terms."""
    Image.radial_gradient("L").resize((32, 32)).convert("RGB").save(tmp_path / "content.png")
    checks = (np.indices((32, 32)).sum(0) // 4 % 2 * 255).astype(np.uint8)
    Image.fromarray(np.stack([checks, 255 - checks, checks // 5], axis=-1)).save(tmp_path / "style.png")
    return {
        "content": str(tmp_path / "content.png"),
        "style": str(tmp_path / "style.png"),
        "size": 32,
        "backbone": {"name": "tiny", "weights": "random"},
        "losses": [{"name": "content", "layers": ["relu2"]},
                   {"name": "moments", "weight": 10.0, "layers": ["relu1", "relu2"]},
                   {"name": "tv", "weight": 0.1}],
        "optimizer": {"name": "signsgd", "lr": 0.01},
        "steps": 6,
        "device": "cpu",
    }


def test_its_items_register_under_its_name(registry):
    for kind, name in (("backbone", "tiny"), ("loss", "moments"), ("optimizer", "signsgd")):
        assert registry.get(kind, name).plugin == PLUGIN


def test_its_objects_satisfy_the_contracts(registry):
    assert isinstance(plugin_v01.Tiny, BackboneFactory)
    assert isinstance(plugin_v01.Tiny(), Backbone)
    assert isinstance(plugin_v01.MomentLoss(layers=["relu1"]), Loss)


def test_a_run_of_its_backbone_loss_and_optimizer_works_without_a_deprecation(registry, recipe):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stylefw.run(recipe, registry=registry, save=False)
    complaints = [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning,
                                                                              StylefwWarning))]
    assert complaints == []
    assert [step.step for step in result.trace] == [1, 2, 3, 4, 5, 6]
    assert result.tensor.shape == (1, 3, 32, 32)
    first, last = result.losses[0], result.losses[-1]
    assert last["moments"] < first["moments"] and last["total"] < first["total"]
