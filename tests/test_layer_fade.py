"""layer_fade: a multi-scale run's small stages fade the style layers that see most of their picture."""

from __future__ import annotations

import warnings

import pytest
import torch

import stylefw
from stylefw import hookimpl
from stylefw.contracts import StageStart, Targets
from stylefw.errors import RecipeError
from stylefw.plugins.losses import GramLoss, faded_weights, gram
from stylefw.plugin_manager import get_plugin_manager
from stylefw.plugins.vgg import VGG16, VGG19
from stylefw.recipe import override, recipe_from_dict
from stylefw.registry import build_registry
from stylefw.contracts.scales import LAYER_FADE, fade_factors

from test_stages import recipe

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


# -- receptive fields --------------------------------------------------------------------------


def test_vgg_receptive_fields_are_the_published_ones():
    vgg16, vgg19 = VGG16(weights="random"), VGG19(weights="random")
    # VGG-16's conv5_3 sees 196 px and pool5 212 px (as tabulated for receptive-field arithmetic)
    assert [vgg16.receptive_field(layer) for layer in ("conv5_3", "pool5")] == [196, 212]
    assert [vgg16.receptive_field(layer) for layer in STYLE_LAYERS] == [3, 10, 24, 60, 132]
    assert [vgg19.receptive_field(layer) for layer in STYLE_LAYERS] == [3, 10, 24, 68, 156]


@pytest.mark.parametrize("layer", ["relu2_1", "relu3_1", "relu4_1"])
def test_a_features_gradient_reaches_exactly_its_receptive_field(layer):
    """The input pixels one centre feature depends on, found by backpropagation, span the stated field."""
    vgg = VGG16(weights="random", pooling="avg")  # average pooling passes gradient to every pixel it reads
    size = 96
    image = torch.rand(1, 3, size, size, requires_grad=True)
    features = vgg(image, [layer])[layer]
    centre = features.shape[-1] // 2
    features[0, :, centre, centre].sum().backward()
    columns = image.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert int(columns[-1] - columns[0]) + 1 == vgg.receptive_field(layer)


# -- the fade ----------------------------------------------------------------------------------


def test_a_layer_fades_linearly_between_the_two_spans():
    fields = {"small": 16, "half": 50, "wide": 80, "whole": 100}
    factors = fade_factors(fields, (100, 160), (0.25, 0.75))  # the short side, 100 px, is what counts
    assert factors == {"small": 1.0, "half": 0.5, "wide": 0.0, "whole": 0.0}


def test_faded_weights_move_the_pull_to_the_other_layers():
    weights = {"a": 0.5, "b": 0.25, "c": 0.25}
    assert faded_weights(weights, {"a": 0.0}) == {"a": 0.0, "b": 0.5, "c": 0.5}
    assert faded_weights(weights, {}) == weights
    assert faded_weights(weights, {"a": 0.0, "b": 0.0, "c": 0.0}) == weights  # nothing left to move to


def test_the_gram_loss_weighs_its_layers_by_the_stages_factors():
    style = {"a": torch.rand(1, 4, 6, 6), "b": torch.rand(1, 4, 6, 6)}
    image = {"a": torch.rand(1, 4, 6, 6), "b": torch.rand(1, 4, 6, 6)}
    loss = GramLoss(layers=["a", "b"])
    loss.prepare(Targets({}, [(style, 1.0)], layer_factors={"b": 0.0}))
    only_a = (gram(image["a"]) - gram(style["a"])).pow(2).sum() / gram(style["a"]).pow(2).sum()
    torch.testing.assert_close(loss(image, torch.zeros(1)), only_a)
    loss.prepare(Targets({}, [(style, 1.0)]))  # the next stage: both layers again, half each
    assert loss.layer_weights == {"a": 0.5, "b": 0.5}


# -- in a run ----------------------------------------------------------------------------------


def stage_factors(data: dict) -> list[tuple[int, dict]]:
    seen = []

    def keep(event) -> None:
        if isinstance(event, StageStart):
            seen.append((event.stage.size, dict(event.targets.layer_factors)))

    stylefw.run(data, save=False, on_event=keep)
    return seen


def test_the_small_stages_fade_the_deep_layers_and_the_last_stage_runs_the_recipe(tmp_path):
    data = recipe(tmp_path, losses=[{"name": "content", "layers": ["relu2_1"]},
                                    {"name": "gram", "weight": 10, "layers": ["relu1_1", "relu2_1", "relu3_1"]}])
    (first, factors), last = stage_factors(data)
    # 24 px wide by 16 high: relu3_1 sees 24 px, all of the short side; relu2_1 10 px, 0.625 of it
    assert first == 24
    assert factors == pytest.approx({"relu1_1": 1.0, "relu2_1": 0.25, "relu3_1": 0.0})
    assert last == (48, {})


def test_layer_fade_off_and_single_scale_runs_fade_nothing(tmp_path):
    assert [factors for _, factors in stage_factors(recipe(tmp_path, layer_fade=False))] == [{}, {}]
    assert stage_factors(recipe(tmp_path, scales=1)) == [(48, {})]


def test_a_backbone_that_cannot_say_its_fields_gets_one_warning_and_no_fade(tmp_path):
    class Blind(torch.nn.Module):
        layer_names = ("relu1_1",)

        def forward(self, image, layers):
            return {"relu1_1": image.relu()}

    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            register("blind", Blind)

    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Plugin(), name="blind-plugin")
    registry = build_registry(manager)
    data = recipe(tmp_path, backbone={"name": "blind"}, losses=[{"name": "gram", "layers": ["relu1_1"]}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stylefw.run(data, save=False, registry=registry)
    fade = [str(warning.message) for warning in caught if "layer_fade" in str(warning.message)]
    assert len(fade) == 1 and "backbone blind" in fade[0] and "layer_fade: off" in fade[0]


# -- the key -----------------------------------------------------------------------------------


def test_layer_fade_defaults_to_a_quarter_to_three_quarters_and_round_trips(tmp_path):
    assert recipe_from_dict(recipe(tmp_path)).layer_fade == LAYER_FADE == (0.25, 0.75)
    off = recipe_from_dict(recipe(tmp_path, layer_fade="off"))
    assert off.layer_fade is None and recipe_from_dict(off.data).layer_fade is None
    assert override(recipe_from_dict(recipe(tmp_path)), ["layer_fade=[0.1, 0.5]"]).layer_fade == (0.1, 0.5)


@pytest.mark.parametrize(("value", "message"), [
    ([0.75, 0.25], "must be below the second"),
    ([0.5], "expected off or two spans"),
    (True, "expected off or two spans"),
    ([0.25, "wide"], "expected a number"),
    ([-1, 0.5], "out of range"),
])
def test_a_bad_layer_fade_is_refused_with_its_key(tmp_path, value, message):
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe(tmp_path, layer_fade=value))
    assert "layer_fade" in str(caught.value) and message in str(caught.value)
