"""A run's inputs: the device it runs on, and the content and style images, decoded and checked for size."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from ..contracts.recipe import ImageRef, Recipe
from ..contracts.scales import shape_at
from ..errors import ImageError, UserError
from ..hooks.registry import Registry, default_registry
from ..recipe.layers import deepest
from .image import fetch, load_image, resize_long_edge, to_tensor

__all__ = ["OnDownload", "select_device", "open_inputs", "min_input_size", "style_edge", "load_inputs"]

# told of an input's download progress: its URL, the bytes so far, and the total when the server says
OnDownload = Callable[[str, int, "int | None"], None]


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; a named device must be available."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' is not available: torch sees no CUDA GPU", context="device",
                        hint="use device: auto or cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise UserError(f"device '{name}' does not exist: there are {torch.cuda.device_count()} CUDA devices",
                        context="device", hint="use cuda:0 or auto")
    if name == "mps" and not mps_ok:
        raise UserError("device 'mps' is not available on this machine", context="device", hint="use auto or cpu")
    return torch.device(name)


def open_inputs(recipe: Recipe, on_download: OnDownload | None = None,
                registry: Registry | None = None) -> tuple[Image.Image, list[Image.Image]]:
    """The content and style images as decoded, at their own sizes (each stage resizes from these).

    An image whose short side, at the smallest stage, is below what the backbone's layers need is an ImageError.
    """
    content = _open(recipe.content, "content", on_download)
    styles = [_open(ref, f"style[{i}]", on_download) for i, ref in enumerate(recipe.styles)]
    need = min_input_size(recipe, registry or default_registry())
    smallest = min(recipe.stages[0].size, recipe.octave_size or recipe.size)  # octaves shrink it to octave_size
    edges = [("content", content, smallest)] + [(f"style[{i}]", image, style_edge(smallest, recipe.style_scale))
                                                  for i, image in enumerate(styles)]
    for key, image, edge in edges:
        short = min(shape_at(*image.size, edge))
        if short < need:
            raise ImageError(f"{image.size[0]}×{image.size[1]} px is too narrow: at {edge} px on its long side it is "
                             f"{short} px across, and the layers this recipe reads ({', '.join(recipe.layers)}) "
                             f"need at least {need} px", context=key,
                             hint="crop it to a less extreme shape, or raise size")
    return content, styles


def min_input_size(recipe: Recipe, registry: Registry) -> int:
    """The smallest side, in pixels, the backbone's deepest layer read can take: 2 for each pooling before it.

    A backbone may say so itself with ``min_input_size(layers)``; else each layer named ``pool*`` halves.
    """
    try:
        factory = registry.get("backbone", recipe.backbone.name).factory
    except KeyError:
        return 1
    declared = getattr(factory, "min_input_size", None)
    if declared is not None:
        return int(declared(recipe.layers))
    last = deepest(factory, recipe.layers) if hasattr(factory, "layer_names") else None
    if last is None:
        return 1
    names = list(factory.layer_names)
    return 2 ** sum(name.startswith("pool") for name in names[: names.index(last)])


def style_edge(size: int, style_scale: float) -> int:
    """The style images' long edge for an output whose long edge is ``size``."""
    return max(16, round(size * style_scale))


def load_inputs(recipe: Recipe, on_download: OnDownload | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The content image at ``size`` and each style image at ``size * style_scale``, as tensors."""
    content, styles = open_inputs(recipe, on_download)
    edge = style_edge(recipe.size, recipe.style_scale)
    return to_tensor(resize_long_edge(content, recipe.size)), [to_tensor(resize_long_edge(s, edge)) for s in styles]


def _open(ref: ImageRef, key: str, on_download: OnDownload | None):
    """Load one input image; an error names the recipe key it came from."""
    progress = (lambda done, total: on_download(ref.source, done, total)) if on_download else None
    try:
        path = fetch(ref.source, progress=progress) if ref.is_url else ref.source
        return load_image(path, sha256=ref.sha256)
    except ImageError as exc:
        exc.context = exc.context or key
        raise
