"""The built-in VGG backbones: torchvision's layout, frozen, normalising, truncated, and their weights."""

from __future__ import annotations

import urllib.error
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from stylefw.engine.build import build_backbone
from stylefw.errors import MissingWeights, StylefwWarning, WeightsError
from stylefw.plugins.vgg import VGG16, VGG19
from stylefw.plugins.vgg_config import IMAGENET_MEAN, IMAGENET_STD
from stylefw.recipe import recipe_from_dict
from stylefw.registry import default_registry

ARCHS = {"vgg19": VGG19, "vgg16": VGG16}
pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose
KINDS = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}


@cache
def torchvision_vgg(arch: str) -> nn.Module:
    """A randomly initialised torchvision model (built once: its classifier alone has 120M parameters)."""
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)(weights=None).eval()


def random_vgg(cls=VGG19, **kwargs) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        return cls(weights="random", **kwargs)


def save_features(path: Path, arch: str, *, prefix: str = "", first: int | None = None) -> Path:
    """torchvision's ``features`` weights under ``prefix``; ``first`` keeps only that many convolutions."""
    state = torchvision_vgg(arch).features.state_dict()
    indices = sorted({int(key.split(".")[0]) for key in state})[:first]
    torch.save({f"{prefix}{key}": value for key, value in state.items() if int(key.split(".")[0]) in indices}, path)
    return path


def recipe_with(tmp_path: Path, weights: str, layer: str):
    image = tmp_path / "input.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(image)
    return recipe_from_dict({"content": str(image), "style": str(image), "device": "cpu",
                             "backbone": {"name": "vgg19", "weights": weights},
                             "losses": [{"name": "gram", "layers": ["relu1_1", layer]}]})


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_layer_names_follow_torchvision_features(arch):
    features = torchvision_vgg(arch).features
    names = ARCHS[arch].layer_names
    assert len(names) == len(features)
    for index, (name, module) in enumerate(zip(names, features)):
        kind = name.rstrip("0123456789_")
        assert isinstance(module, KINDS[kind]), f"{arch} index {index}: {name} but torchvision has {module}"


@pytest.mark.parametrize("pooling, kind", [("max", nn.MaxPool2d), ("avg", nn.AvgPool2d)])
def test_pooling_chooses_the_pool_module(pooling, kind):
    backbone = random_vgg(pooling=pooling)
    pools = [module for name, module in zip(backbone.layer_names, backbone.features) if name.startswith("pool")]
    assert len(pools) == 5 and all(type(module) is kind for module in pools)


def test_built_backbone_is_frozen_and_in_eval_mode(tmp_path):
    backbone = build_backbone(recipe_with(tmp_path, "random", "relu3_1"), default_registry(), torch.device("cpu"))
    assert not any(parameter.requires_grad for parameter in backbone.parameters())
    assert not any(module.training for module in backbone.modules())


@pytest.mark.parametrize("layer", ["relu1_1", "pool2", "conv4_2", "relu5_4"])
def test_build_backbone_truncates_after_the_deepest_layer(tmp_path, layer):
    backbone = build_backbone(recipe_with(tmp_path, "random", layer), default_registry(), torch.device("cpu"))
    assert len(backbone.features) == VGG19.layer_names.index(layer) + 1


def test_input_is_normalised_with_imagenet_statistics_inside_the_backbone():
    backbone = random_vgg()
    image = torch.rand(1, 3, 24, 24)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = backbone.features[0]((image - mean) / std)
    assert torch.allclose(backbone(image, ["conv1_1"])["conv1_1"], expected, atol=1e-6)
    assert not torch.allclose(backbone.features[0](image), expected, atol=1e-3)


def test_one_forward_returns_every_requested_layer_and_conv_outputs_keep_negatives():
    backbone = random_vgg()
    layers = ["conv1_1", "relu1_1", "conv3_2", "relu3_2", "pool4"]
    features = backbone(torch.rand(1, 3, 32, 32), layers)
    assert list(features) == layers
    for conv in ("conv1_1", "conv3_2"):
        relu = conv.replace("conv", "relu")
        assert (features[conv] < 0).any(), f"{conv} was overwritten by its ReLU"
        assert torch.equal(features[relu], features[conv].clamp(min=0))


@pytest.mark.parametrize("layout", ["full model with classifier", "features only"])
def test_torchvision_state_dict_file_loads(tmp_path, layout):
    model = torchvision_vgg("vgg19")
    if layout == "features only":
        path = save_features(tmp_path / "vgg19.pth", "vgg19")
    else:
        # every key of the full model; the classifier tensors are cut short to keep the file small,
        # which also proves that the loader ignores them
        state = {key: value[:2].clone() if key.startswith("classifier.") else value for key, value in model.state_dict().items()}
        assert any(key.startswith("classifier.") for key in state)
        path = tmp_path / "vgg19.pth"
        torch.save(state, path)
    backbone = VGG19(weights=str(path), first_padding="zeros")  # torchvision pads with zeros
    image = torch.rand(1, 3, 32, 32)
    normalised = (image - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    ours = backbone(image, ["conv1_1", "relu5_4"])
    with torch.no_grad():
        assert torch.allclose(ours["conv1_1"], model.features[0](normalised), atol=1e-5)
        assert torch.allclose(ours["relu5_4"], model.features[:36](normalised), atol=1e-5)


@pytest.mark.parametrize("file_arch, backbone_arch", [("vgg16", "vgg19"), ("vgg19", "vgg16")])
def test_weights_of_the_other_architecture_are_refused(tmp_path, file_arch, backbone_arch):
    path = save_features(tmp_path / f"{file_arch}.pth", file_arch, prefix="features.")
    with pytest.raises(WeightsError) as error:
        ARCHS[backbone_arch](weights=str(path))
    assert file_arch in str(error.value) and backbone_arch in str(error.value)


def test_truncated_weights_file_covers_shallow_recipes_only(tmp_path):
    path = str(save_features(tmp_path / "first4.pth", "vgg19", first=4))  # conv1_1 .. conv2_2
    shallow = build_backbone(recipe_with(tmp_path, path, "pool2"), default_registry(), torch.device("cpu"))
    assert torch.equal(shallow.features[7].weight, torchvision_vgg("vgg19").features[7].weight)
    with pytest.raises(WeightsError, match="weights cover vgg19 up to pool2; the recipe needs conv3_1"):
        build_backbone(recipe_with(tmp_path, path, "conv3_1"), default_registry(), torch.device("cpu"))


def test_missing_imagenet_weights_without_network_names_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(WeightsError) as error:
        VGG19(weights="imagenet")
    message = str(error.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert isinstance(error.value, MissingWeights)  # absent, not broken: a recipe check skips it
    assert error.value.file == tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"


def test_imagenet_weights_come_from_the_hub_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    save_features(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth", "vgg16", prefix="features.")
    backbone = VGG16(weights="imagenet")
    assert torch.equal(backbone.features[28].weight, torchvision_vgg("vgg16").features[28].weight)


def test_random_weights_warn_and_follow_the_seed():
    with pytest.warns(StylefwWarning, match="random weights"):
        first = VGG19(weights="random", seed=3)
    again, other = random_vgg(seed=3), random_vgg(seed=4)
    for ours, same, different in zip(first.parameters(), again.parameters(), other.parameters()):
        assert torch.equal(ours, same)
    assert not torch.equal(first.features[0].weight, other.features[0].weight)
