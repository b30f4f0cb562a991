"""The sliced loss (sliced Wasserstein between projected feature distributions) and the instance-normalised
content loss: their values against independent computations, sizes, blends, determinism, options and runs."""

from __future__ import annotations

import warnings

import pytest
import torch

import stylefw
from stylefw.engine import Targets
from stylefw.errors import RecipeError, StylefwWarning
from stylefw.plugins.losses import ContentLoss, instance_normalised
from stylefw.plugins.sliced import SlicedLoss, projected_quantiles
from test_w2 import assert_the_run_lowers, run_recipe


def features(seed: int, channels: int = 4, height: int = 5, width: int = 6, *, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(1, channels, height, width, generator=generator, dtype=torch.float64) + shift).relu()


def prepared(loss, *styles: tuple[torch.Tensor, float]):
    loss.prepare(Targets({}, [({"x": style}, blend) for style, blend in styles]))
    return loss


def reference(image: torch.Tensor, style: torch.Tensor, directions: torch.Tensor) -> float:
    """The mean squared difference of sorted projections, for an image and a style of the same size, written
    independently of the plugin."""
    a = (directions.T.double() @ image[0].flatten(1)).sort(dim=1).values
    b = (directions.T.double() @ style[0].flatten(1)).sort(dim=1).values
    return float((a - b).pow(2).mean())


# -- the distance -----------------------------------------------------------------------------------


def test_the_loss_is_zero_for_the_style_itself_and_for_any_reordering_of_its_positions():
    style = features(0)
    loss = prepared(SlicedLoss(layers=["x"]), (style, 1.0))
    assert float(loss({"x": style}, None)) == pytest.approx(0, abs=1e-12)  # the targets are kept in float32
    shuffled = style.flatten(2)[..., torch.randperm(30, generator=torch.Generator().manual_seed(3))].reshape(style.shape)
    assert float(loss({"x": shuffled}, None)) == pytest.approx(0, abs=1e-12)
    assert float(loss({"x": features(1)}, None)) > 0


def test_the_distance_matches_an_independent_computation_and_classic_keeps_it_raw():
    style, image = features(0, shift=0.5), features(1)
    relative = prepared(SlicedLoss(layers=["x"], directions=7), (style, 1.0))
    classic = prepared(SlicedLoss(layers=["x"], directions=7, normalize="classic"), (style, 1.0))
    expected = reference(image, style, relative.projections["x"])
    assert float(classic({"x": image}, None)) == pytest.approx(expected, rel=1e-5)
    second_moment = float((relative.projections["x"].T.double() @ style[0].flatten(1)).pow(2).mean())
    assert float(relative({"x": image}, None)) == pytest.approx(expected / second_moment, rel=1e-5)


def test_a_style_of_another_size_compares_through_its_quantiles():
    """A style repeated side by side has the same distribution: the loss against it is the loss against one copy."""
    style, image = features(0), features(1)
    once = prepared(SlicedLoss(layers=["x"]), (style, 1.0))
    twice = prepared(SlicedLoss(layers=["x"]), (torch.cat([style, style], dim=3), 1.0))
    assert float(twice({"x": image}, None)) == pytest.approx(float(once({"x": image}, None)), rel=1e-6)


def test_quantiles_of_a_weighted_pool_follow_the_weights():
    values = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    # 0 weighs 0.7 and the rest 0.1 each: 7 of 10 levels fall on it
    levels = torch.tensor([[0.7, 0.8, 0.9, 1.0]], dtype=torch.float64)
    assert projected_quantiles(values, levels, 10).tolist() == [[0.0] * 7 + [1.0, 2.0, 3.0]]


def test_several_styles_pool_with_their_blend_weights_whatever_their_sizes():
    """A style of 30 positions at blend ¾ and another of 120 at ¼ pool as if the first were there 3 times as often."""
    small, large = features(0), features(1, height=20, shift=1.0)
    # 32 positions: no level (k + ½)/32 lands exactly on the pools' steps of 1/480, where rounding would pick a side
    image = features(2, height=4, width=8)
    blended = prepared(SlicedLoss(layers=["x"], normalize="classic"), (small, 0.75), (large, 0.25))
    # the same mixture written out: small repeated 12 times (360 positions) beside large (120 positions)
    mixture = torch.cat([small.flatten(2).repeat(1, 1, 12), large.flatten(2)], dim=2).unsqueeze(-1)
    pooled = prepared(SlicedLoss(layers=["x"], normalize="classic"), (mixture, 1.0))
    assert float(blended({"x": image}, None)) == pytest.approx(float(pooled({"x": image}, None)), rel=1e-6)


def test_the_directions_are_unit_vectors_fixed_by_the_seed():
    style = features(0)
    first, again = (prepared(SlicedLoss(layers=["x"], directions=5), (style, 1.0)) for _ in range(2))
    other = prepared(SlicedLoss(layers=["x"], directions=5, seed=1), (style, 1.0))
    assert torch.equal(first.projections["x"], again.projections["x"])
    assert not torch.equal(first.projections["x"], other.projections["x"])
    assert torch.allclose(first.projections["x"].norm(dim=0), torch.ones(5))
    image = features(1)
    assert float(first({"x": image}, None)) == float(first({"x": image}, None))  # a plain function of the image


def test_the_gradient_passes_gradcheck():
    style = features(0, height=3, width=4)
    loss = prepared(SlicedLoss(layers=["x"], directions=3), (style, 1.0))
    # no ReLU zeros: positions with equal projections would tie, where sorting has no derivative
    image = torch.randn(1, 4, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64).requires_grad_(True)
    torch.autograd.gradcheck(lambda x: loss._distance("x", x), (image,))


@pytest.mark.parametrize(
    "options, message",
    [({"layers": []}, "non-empty"), ({"layers": ["x"], "directions": 0}, "directions"),
     ({"layers": ["x"], "directions": 2.5}, "directions"), ({"layers": ["x"], "seed": -1}, "seed"),
     ({"layers": ["x"], "normalize": "absolute"}, "normalize")],
)
def test_bad_options_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        SlicedLoss(**options)


# -- the instance-normalised content -------------------------------------------------------------------


def test_instance_normalised_content_ignores_each_channels_mean_and_spread_but_not_the_layout():
    target = features(0, shift=0.3) + 0.1
    loss = ContentLoss(layers=["x"], instance_norm=True)
    loss.prepare(Targets({"x": target}))
    scale = torch.tensor([2.0, 0.5, 3.0, 1.5], dtype=torch.float64).view(1, 4, 1, 1)
    shift = torch.tensor([1.0, -2.0, 0.0, 5.0], dtype=torch.float64).view(1, 4, 1, 1)
    assert float(loss({"x": target * scale + shift}, None)) == pytest.approx(0, abs=1e-9)
    assert float(loss({"x": target.flip(-1) * scale + shift}, None)) > 0.1
    plain = ContentLoss(layers=["x"])
    plain.prepare(Targets({"x": target}))
    assert float(plain({"x": target * scale + shift}, None)) > 0.1


def test_instance_normalisation_gives_each_channel_zero_mean_and_unit_spread():
    normalised = instance_normalised(features(0, shift=0.5) * 7)
    assert torch.allclose(normalised.mean(dim=(2, 3)), torch.zeros(1, 4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(normalised.std(dim=(2, 3), unbiased=False), torch.ones(1, 4, dtype=torch.float64), atol=1e-5)


def test_instance_norm_must_be_a_boolean():
    with pytest.raises(ValueError, match="instance_norm"):
        ContentLoss(layers=["x"], instance_norm="yes")


# -- in a run ---------------------------------------------------------------------------------------


def test_a_run_with_sliced_style_and_instance_normalised_content_lowers_the_loss(tmp_path):
    assert_the_run_lowers(run_recipe(tmp_path, {"name": "sliced", "weight": 10.0, "layers": ["relu1_1", "relu2_1", "relu3_1"]},
                                     {"name": "content", "weight": 1.0, "layers": ["relu2_1"], "instance_norm": True}))


def test_the_recipe_validator_names_bad_sliced_and_content_options(tmp_path):
    data = run_recipe(tmp_path, {"name": "sliced", "layers": ["relu1_1"], "directions": "many"},
                      {"name": "content", "layers": ["relu2_1"], "instance_norm": "yes"})
    with pytest.raises(RecipeError) as error:
        stylefw.run(data, save=False)
    text = str(error.value)
    assert "losses[1].directions" in text and "losses[0].instance_norm" in text


def test_a_tiled_recipe_with_sliced_is_refused_by_name(tmp_path):
    data = {**run_recipe(tmp_path, {"name": "sliced", "layers": ["relu1_1"]}), "tile": {"size": 64}}
    with pytest.raises(RecipeError, match="loss 'sliced' cannot tile: its quantiles need every position"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)  # random backbone weights, on purpose
        stylefw.run(data, save=False)
