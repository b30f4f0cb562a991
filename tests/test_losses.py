"""The built-in loss terms: content MSE, size-independent Gram matrices, layer weights, blending, tv."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylefw.engine import Targets
from stylefw.engine.optimise import compute_targets
from stylefw.errors import StylefwWarning
from stylefw.plugins.losses import ContentLoss, GramLoss, TVLoss, gram
from stylefw.plugins.vgg import VGG19

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(scope="module")
def vgg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        return VGG19(weights="random", seed=1)


def tiled(size: int, pattern: str) -> torch.Tensor:
    """A periodic texture (period 8 or 16 px) tiled over a size×size image."""
    y, x = np.mgrid[0:size, 0:size]
    if pattern == "checks":
        channels = [(x // 4) % 2, (y // 4) % 2, ((x + y) // 4) % 2]
    else:
        channels = [0.5 + 0.5 * np.sin(2 * np.pi * x / 8), 0.5 + 0.5 * np.cos(2 * np.pi * y / 16), (x // 8 + y // 8) % 2]
    return torch.tensor(np.stack(channels), dtype=torch.float32)[None]


def test_gram_is_divided_by_channels_height_and_width():
    features = torch.randn(2, 4, 3, 5)
    flat = features.reshape(2, 4, 15)
    expected = torch.stack([flat[i] @ flat[i].T for i in range(2)]) / (4 * 3 * 5)
    assert torch.allclose(gram(features), expected, atol=1e-6)


def test_style_loss_of_a_texture_hardly_depends_on_image_size(vgg):
    """Tiled at 32 and 64 px, the same pair of textures gives a style loss within 10%.

    Not exactly equal: the padding at the borders weighs more in the smaller image (a few percent here). Without the H·W normalisation the loss would grow 16-fold from 32 to 64 px.
    """
    losses = []
    for size in (32, 64):
        loss = GramLoss(layers=STYLE_LAYERS)
        with torch.no_grad():
            loss.prepare(Targets({}, [(vgg(tiled(size, "waves"), STYLE_LAYERS), 1.0)]))
            losses.append(float(loss(vgg(tiled(size, "checks"), STYLE_LAYERS), tiled(size, "checks"))))
    assert losses[0] > 0
    assert losses[1] == pytest.approx(losses[0], rel=0.1)


def test_classic_content_loss_is_the_mean_squared_error_summed_over_layers():
    target = {"a": torch.randn(1, 2, 4, 4), "b": torch.randn(1, 3, 2, 2)}
    image = {"a": torch.randn(1, 2, 4, 4), "b": torch.randn(1, 3, 2, 2)}
    loss = ContentLoss(layers=["a", "b"], normalize="classic")
    loss.prepare(Targets(target))
    expected = sum(((image[k] - target[k]) ** 2).mean() for k in "ab")
    assert float(loss(image, torch.zeros(1))) == pytest.approx(float(expected), rel=1e-6)


def test_relative_content_loss_is_the_error_relative_to_the_target_averaged_over_layers():
    target = {"a": torch.randn(1, 2, 4, 4), "b": 100 * torch.randn(1, 3, 2, 2)}
    image = {"a": torch.randn(1, 2, 4, 4), "b": 100 * torch.randn(1, 3, 2, 2)}
    loss = ContentLoss(layers=["a", "b"])
    loss.prepare(Targets(target))
    relative = [float((image[k] - target[k]).pow(2).sum() / target[k].pow(2).sum()) for k in "ab"]
    assert float(loss(image, torch.zeros(1))) == pytest.approx(sum(relative) / 2, rel=1e-5)


def test_relative_loss_does_not_depend_on_a_layers_activation_scale():
    """Scaling a layer's features (image and target alike) leaves its relative loss unchanged."""
    style, image = torch.rand(1, 4, 6, 6), torch.rand(1, 4, 6, 6)
    values = []
    for scale in (1.0, 1000.0):
        for factory in (ContentLoss, GramLoss):
            loss = factory(layers=["a"])
            loss.prepare(Targets({"a": scale * style}, [({"a": scale * style}, 1.0)]))
            values.append(float(loss({"a": scale * image}, image)))
    assert values[2:] == pytest.approx(values[:2], rel=1e-5)
    assert min(values) > 0


def test_gram_loss_weights_each_layer_by_its_mapping_value():
    style = {"a": torch.randn(1, 2, 4, 4), "b": torch.randn(1, 3, 4, 4)}
    image = {"a": torch.randn(1, 2, 4, 4), "b": torch.randn(1, 3, 4, 4)}
    per_layer = {k: float(F.mse_loss(gram(image[k]), gram(style[k]))) for k in "ab"}
    loss = GramLoss(layers={"a": 2.0, "b": 0.5}, normalize="classic")
    loss.prepare(Targets({}, [(style, 1.0)]))
    assert float(loss(image, torch.zeros(1))) == pytest.approx(2.0 * per_layer["a"] + 0.5 * per_layer["b"], rel=1e-5)
    plain = GramLoss(layers=["a", "b"], normalize="classic")
    plain.prepare(Targets({}, [(style, 1.0)]))
    assert float(plain(image, torch.zeros(1))) == pytest.approx(per_layer["a"] + per_layer["b"], rel=1e-5)
    # relative: each layer's error over its target's magnitude, the weights made to sum to 1
    relative = {k: float((gram(image[k]) - gram(style[k])).pow(2).sum() / gram(style[k]).pow(2).sum()) for k in "ab"}
    balanced = GramLoss(layers={"a": 2.0, "b": 0.5})
    balanced.prepare(Targets({}, [(style, 1.0)]))
    assert float(balanced(image, torch.zeros(1))) == pytest.approx(0.8 * relative["a"] + 0.2 * relative["b"], rel=1e-5)


@pytest.mark.parametrize("layers", [{"a": 0.0}, {"a": -1.0}, {}, [], "a"])
def test_layer_weights_that_cannot_be_normalised_are_refused(layers):
    with pytest.raises(ValueError):
        GramLoss(layers=layers)


def test_several_style_images_are_blended_by_their_normalised_weights(vgg):
    first, second = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    targets = compute_targets(vgg, ["relu1_1"], first, [first, second], [1.0, 3.0])
    assert [weight for _, weight in targets.styles] == [0.25, 0.75]
    loss = GramLoss(layers=["relu1_1"])
    loss.prepare(targets)
    with torch.no_grad():
        grams = [gram(vgg(image, ["relu1_1"])["relu1_1"]) for image in (first, second)]
    assert torch.allclose(loss.targets["relu1_1"], 0.25 * grams[0] + 0.75 * grams[1], atol=1e-7)


def test_total_variation_is_zero_for_a_constant_image_and_counts_edges():
    tv = TVLoss()
    assert float(tv({}, torch.full((1, 3, 8, 8), 0.3))) == 0.0
    edge = torch.zeros(1, 1, 4, 4)
    edge[..., 2:] = 1.0  # one vertical edge: 4 of the 12 horizontal neighbour pairs differ by 1
    assert float(tv({}, edge)) == pytest.approx(4 / 12)


def test_grams_one_matmul_backward_is_the_true_gradient():
    from stylefw.plugins.losses import gram

    features = torch.rand(2, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram, (features,))
    flat = features.detach().reshape(2, 5, 42)
    assert torch.allclose(gram(features), flat @ flat.transpose(1, 2) / (5 * 42))
