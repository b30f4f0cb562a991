"""octave_size: the losses that read layers also compare the picture shrunk to the recipe's octave size, so that a
larger picture keeps the strokes and the balance it has there. The factors, the two engine pieces, the runs, and
the recipe's refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import stylefw
from stylefw.contracts import StageStart, Targets
from stylefw.contracts.scales import octave_factors
from stylefw.engine.octaves import OctaveBackbone, OctaveLoss, octave_layer, shrink, split_octave
from stylefw.plugins.losses import GramLoss
from stylefw.plugins.vgg import VGG19

from test_stages import recipe, write_image

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose

LAYERS = ["relu1_1", "relu2_1"]


@pytest.fixture(scope="module")
def vgg() -> VGG19:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = VGG19(weights="random").double()
    network.truncate("relu2_1")
    return network.requires_grad_(False).eval()


@pytest.mark.parametrize(("size", "factors"), [
    (256, [1]), (300, [1]),  # not clearly larger than the octave size: the picture alone
    (362, [1, 362 / 256]), (512, [1, 2]), (600, [1, 600 / 256]),
    (768, [1, 2, 3]), (1024, [1, 2, 4]), (2048, [1, 2, 4, 8]),
])
def test_the_factors_halve_down_to_the_octave_size_and_end_exactly_there(size, factors):
    found = octave_factors(size, 256)
    assert [factor for factor, _ in found] == pytest.approx(factors)
    assert size / found[-1][0] == pytest.approx(256 if len(factors) > 1 else size)
    assert [weight for _, weight in found] == pytest.approx([1 / len(factors)] * len(factors))


def test_without_an_octave_size_the_picture_is_compared_alone():
    assert octave_factors(4096, None) == ((1.0, 1.0),)


def test_layer_names_carry_the_factor_and_give_it_back():
    assert octave_layer("relu3_1", 1.0) == "relu3_1"
    assert octave_layer("relu3_1", 2.0) == "relu3_1@2"
    for name in ("relu3_1", "relu3_1@2", "relu3_1@1.41406", "features.3@4"):
        assert octave_layer(*split_octave(name)) == name


def test_the_backbone_answers_a_layer_at_a_factor_from_the_shrunk_image(vgg):
    image = torch.rand(1, 3, 40, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    features = OctaveBackbone(vgg)(image, ["relu1_1", "relu2_1@2"])
    assert set(features) == {"relu1_1", "relu2_1@2"}
    assert torch.equal(features["relu1_1"], vgg(image, ["relu1_1"])["relu1_1"])
    assert torch.equal(features["relu2_1@2"], vgg(shrink(image, 2.0), ["relu2_1"])["relu2_1"])
    assert features["relu2_1@2"].shape[-2:] == (10, 16)  # 20×32, then relu2_1's pooling


def test_the_octave_loss_is_the_weighted_sum_of_its_copies_at_their_factors(vgg):
    """Against the same sum written by hand: each copy prepared with its factor's targets, valued at its factor."""
    generator = torch.Generator().manual_seed(1)
    image, style = (torch.rand(1, 3, 48, 64, dtype=torch.float64, generator=generator) for _ in range(2))
    octaves, factors = OctaveBackbone(vgg), ((1.0, 0.5), (2.0, 0.5))
    loss = OctaveLoss(GramLoss(layers=LAYERS), lambda: GramLoss(layers=LAYERS))
    loss.set_factors(factors)
    assert loss.layers == ["relu1_1", "relu2_1", "relu1_1@2", "relu2_1@2"]
    loss.prepare(Targets({}, [(octaves(style, loss.layers), 1.0)]))
    value = loss(octaves(image, loss.layers), image)
    expected = 0
    for factor, weight in factors:
        alone = GramLoss(layers=LAYERS)
        alone.prepare(Targets({}, [(vgg(shrink(style, factor), LAYERS), 1.0)]))
        expected = expected + weight * alone(vgg(shrink(image, factor), LAYERS), shrink(image, factor))
    assert float(value) == pytest.approx(float(expected), rel=1e-12)


def test_layer_factors_reach_each_copy_under_its_own_layer_names():
    seen = {}

    class Spy(GramLoss):
        def prepare(self, targets):
            seen[id(self)] = dict(targets.layer_factors)
            super().prepare(targets)

    first = Spy(layers=["relu1_1"])
    loss = OctaveLoss(first, lambda: Spy(layers=["relu1_1"]))
    loss.set_factors(((1.0, 0.5), (2.0, 0.5)))
    features = {"relu1_1": torch.rand(1, 4, 8, 8), "relu1_1@2": torch.rand(1, 4, 4, 4)}
    loss.prepare(Targets({}, [(features, 1.0)], layer_factors={"relu1_1": 1.0, "relu1_1@2": 0.25}))
    assert seen[id(first)] == {"relu1_1": 1.0} and seen[id(loss.copies[2.0])] == {"relu1_1": 0.25}


def test_every_loss_that_reads_layers_is_compared_at_octaves_and_tv_is_not(tmp_path):
    """The content term and the gram term each get one comparison per factor; tv sees the picture as it is."""
    targets = []
    stylefw.run(recipe(tmp_path, scales=1, size=64, steps=1, octave_size=32), save=False,
                on_event=lambda event: targets.append(event.targets) if isinstance(event, StageStart) else None)
    (found,) = targets
    assert list(found.content) == ["relu2_1", "relu2_1@2"] and list(found.styles[0][0]) == ["relu1_1", "relu1_1@2"]
    assert found.styles[0][0]["relu1_1@2"].shape[-2:] == (32, 32)  # the 64×64 style image, halved
    assert found.content["relu2_1@2"].shape[-2:] == (11, 16)  # the 64×43 content halved, then relu2_1's pooling


def test_an_octave_size_no_smaller_than_the_picture_changes_nothing(tmp_path):
    plain = stylefw.run(recipe(tmp_path, scales=1, size=48, steps=3), save=False)
    octaves = stylefw.run(recipe(tmp_path, scales=1, size=48, steps=3, octave_size=48), save=False)
    assert np.array_equal(np.asarray(plain.image), np.asarray(octaves.image))
    assert [step.loss for step in plain.trace] == [step.loss for step in octaves.trace]


def test_octaves_change_a_larger_picture_and_work_with_stages(tmp_path):
    """Stage 1 (24 px) is not larger than the octave size and runs as without; stage 2 (48 px) compares at 1 and 2."""
    plain = stylefw.run(recipe(tmp_path), save=False)
    octaves = stylefw.run(recipe(tmp_path, octave_size=24), save=False)
    assert [step.loss for step in octaves.trace[:2]] == [step.loss for step in plain.trace[:2]]
    assert octaves.trace[2].loss != plain.trace[2].loss
    assert not np.array_equal(np.asarray(plain.image), np.asarray(octaves.image))


def test_the_shrunk_copy_must_be_large_enough_for_the_layers(tmp_path):
    """relu2_1 reads after one pooling: 2 px across is the least. A 200×20 content at octave size 16 is 16×2
    (fine); at a deeper layer the check names the content and the sizes."""
    content = write_image(tmp_path / "wide.png", 200, 10, 3)
    with pytest.raises(stylefw.errors.ImageError, match="too narrow"):
        stylefw.run(recipe(tmp_path, content=content, scales=1, size=64, octave_size=16,
                           losses=[{"name": "gram", "layers": ["relu3_1"]}]), save=False)


@pytest.mark.parametrize(("value", "message"), [
    ("big", "octave_size: expected off or a long edge in pixels such as 256, got text 'big'"),
    (8, "octave_size: 8 is out of range; use 16 to 16384"),
    (True, "octave_size: expected off or a long edge in pixels such as 256, got a boolean True"),
])
def test_a_bad_octave_size_is_refused_naming_the_key(tmp_path, value, message):
    with pytest.raises(stylefw.errors.RecipeError) as caught:
        stylefw.run(recipe(tmp_path, octave_size=value), save=False)
    assert message in str(caught.value)


def test_tiles_and_octaves_are_refused_together(tmp_path):
    with pytest.raises(stylefw.errors.RecipeError, match="tiles cannot yet compare the picture at octaves"):
        stylefw.run(recipe(tmp_path, octave_size=24, tile={"size": 64}), save=False)
