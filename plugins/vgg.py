"""VGG-16 and VGG-19 feature extractors with named layers (conv1_1, relu4_2, pool5, ...)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

import torch
from torch import nn

from stylefw import hookimpl
from stylefw.errors import StylefwWarning, WeightsError

from .weights import imagenet_state_dict, load_state_dict_file

__all__ = ["VGG", "VGG16", "VGG19", "vgg_layer_names"]

# torchvision's configurations: channel counts, "M" for a pooling layer
CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(config: Sequence[int | str]) -> tuple[str, ...]:
    """Names in the order of torchvision's ``features``: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names, block, conv = [], 1, 1
    for item in config:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return tuple(names)


def _features(config: Sequence[int | str], pooling: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in config:
        if item == "M":
            pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
            layers.append(pool(kernel_size=2, stride=2))
        else:
            # not in-place: a conv output the losses read must not be overwritten by its ReLU
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


def _conv_indices(config: Sequence[int | str]) -> set[int]:
    """Positions of the convolutions in ``features``, which is where a state dict has weights."""
    indices, position = set(), 0
    for item in config:
        if item != "M":
            indices.add(position)
        position += 1 if item == "M" else 2
    return indices


class VGG(nn.Module):
    """A frozen VGG ``features`` stack that takes RGB in [0, 1] and returns the requested layers."""

    arch: ClassVar[str]
    layer_names: ClassVar[tuple[str, ...]]

    def __init__(self, *, weights: str | Path = "imagenet", pooling: str = "max", seed: int = 0) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.features = _features(CONFIGS[self.arch], pooling)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.covered = len(self.layer_names)
        self._load(weights, seed)
        self.requires_grad_(False)
        self.eval()

    def _load(self, weights: str | Path, seed: int) -> None:
        if weights == "random":
            self._random_init(seed)
        elif weights == "imagenet":
            self._load_state(imagenet_state_dict(self.arch), source=f"torchvision {self.arch} IMAGENET1K_V1")
        else:
            self._load_state(load_state_dict_file(Path(weights)), source=str(weights))

    def _random_init(self, seed: int) -> None:
        warnings.warn(
            f"{self.arch} uses random weights: the result will show colour and texture statistics, "
            "not artistic style; use weights: imagenet or a weights file for real results",
            StylefwWarning,
            stacklevel=4,
        )
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                # torchvision's initialisation for VGG, drawn from a private generator
                std = (2.0 / (module.out_channels * 9)) ** 0.5
                module.weight.data = torch.randn(module.weight.shape, generator=generator) * std
                module.bias.data.zero_()

    def _load_state(self, state: Mapping[str, torch.Tensor], *, source: str) -> None:
        """Load a torchvision-layout state dict; a file may stop early, and ``covered`` records where."""
        features = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        self._check_layout(features, source)
        for index, module in enumerate(self.features):
            if not isinstance(module, nn.Conv2d):
                continue
            weight, bias = features.get(f"{index}.weight"), features.get(f"{index}.bias")
            if weight is None or bias is None:
                self.covered = index
                break
            if weight.shape != module.weight.shape or bias.shape != module.bias.shape:
                raise WeightsError(
                    f"{self.layer_names[index]} in {source} has shape {tuple(weight.shape)}, "
                    f"but {self.arch} needs {tuple(module.weight.shape)}",
                    hint=f"is this file for another architecture than {self.arch}?",
                )
            module.weight.data.copy_(weight)
            module.bias.data.copy_(bias)
        if self.covered == 0:
            raise WeightsError(f"{source} holds no {self.arch} convolution weights (expected keys such as 'features.0.weight')")

    def _check_layout(self, features: Mapping[str, torch.Tensor], source: str) -> None:
        """Weights at an index where this architecture has no convolution mean another architecture."""
        theirs = {int(key.split(".")[0]) for key in features if key.split(".")[0].isdigit()}
        if theirs <= _conv_indices(CONFIGS[self.arch]):
            return
        other = next((arch for arch, config in CONFIGS.items() if theirs <= _conv_indices(config)), None)
        found = f"{other} weights" if other else "weights of another architecture"
        raise WeightsError(f"{source} holds {found}, but the backbone is {self.arch}",
                           hint=f"use backbone.name: {other} or a {self.arch} weights file" if other
                           else f"use a torchvision {self.arch} state dict")

    def truncate(self, layer: str) -> None:
        """Drop every module after ``layer``, the deepest one the recipe needs."""
        index = self.layer_names.index(layer)
        if index >= self.covered:
            last = self.layer_names[self.covered - 1]
            raise WeightsError(f"weights cover {self.arch} up to {last}; the recipe needs {layer}")
        self.features = self.features[: index + 1]

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        last = max(self.layer_names.index(name) for name in wanted)
        outputs = {}
        x = (image - self.mean) / self.std
        for index, module in enumerate(self.features[: last + 1]):
            x = module(x)
            if self.layer_names[index] in wanted:
                outputs[self.layer_names[index]] = x
        return outputs


class VGG19(VGG):
    """VGG-19 (Simonyan & Zisserman 2014), the backbone of Gatys et al. 2016."""

    arch = "vgg19"
    layer_names = vgg_layer_names(CONFIGS["vgg19"])


class VGG16(VGG):
    """VGG-16 (Simonyan & Zisserman 2014)."""

    arch = "vgg16"
    layer_names = vgg_layer_names(CONFIGS["vgg16"])


@hookimpl
def register_backbones(register) -> None:
    """The built-in VGG backbones."""
    register("vgg19", VGG19)
    register("vgg16", VGG16)
