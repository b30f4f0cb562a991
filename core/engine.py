"""The optimisation: targets once under no_grad, then one leaf image stepped with a closure."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from PIL import Image

from .contracts import READS, Step, Targets, Term
from .errors import ImageError, InternalError, PluginBugError, Problem, RecipeError, StylefwWarning, UserError
from .faults import GuardedLoss, call_plugin
from .image import fetch, load_image, resize_long_edge, to_tensor
from .layers import deepest
from .precision import compiled, with_precision
from .preflight import BUILT_HINT
from .recipe import ImageRef, Recipe
from .registry import Registry, default_registry
from .scales import shape_at
from .tiling import Grid, tiled_step

# Term, Step and Targets live in contracts.py; they are imported here too, where 0.1 plugins found them
__all__ = ["Term", "Step", "Targets", "Evaluated", "select_device", "open_inputs", "load_inputs", "style_edge",
           "min_input_size", "build_backbone", "receptive_fields", "build_losses", "target_layers", "compute_targets",
           "initial_image", "optimise"]


@dataclass(frozen=True, eq=False)
class Evaluated:
    """What one optimizer step gave: its number, and the total then each term's value, still on the device."""

    step: int
    values: torch.Tensor
    projected: bool = False  # whether the stage projects the image into [0, 1] after each step (see optimise)

    @property
    def loss(self) -> float:
        """The total loss (a host sync)."""
        return float(self.values[0])


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


def open_inputs(recipe: Recipe, on_download: Callable | None = None,
                registry: Registry | None = None) -> tuple[Image.Image, list[Image.Image]]:
    """The content and style images as decoded, at their own sizes (each stage resizes from these).

    An image whose short side, at the smallest stage, is below what the backbone's layers need is an ImageError.
    """
    content = _open(recipe.content, "content", on_download)
    styles = [_open(ref, f"style[{i}]", on_download) for i, ref in enumerate(recipe.styles)]
    need = min_input_size(recipe, registry or default_registry())
    smallest = recipe.stages[0].size
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


def load_inputs(recipe: Recipe, on_download: Callable | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The content image at ``size`` and each style image at ``size * style_scale``, as tensors."""
    content, styles = open_inputs(recipe, on_download)
    edge = style_edge(recipe.size, recipe.style_scale)
    return to_tensor(resize_long_edge(content, recipe.size)), [to_tensor(resize_long_edge(s, edge)) for s in styles]


def _open(ref: ImageRef, key: str, on_download: Callable | None):
    """Load one input image; an error names the recipe key it came from."""
    progress = (lambda done, total: on_download(ref.source, done, total)) if on_download else None
    try:
        path = fetch(ref.source, progress=progress) if ref.is_url else ref.source
        return load_image(path, sha256=ref.sha256)
    except ImageError as exc:
        exc.context = exc.context or key
        raise


def build_backbone(recipe: Recipe, registry: Registry, device: torch.device, *, cut: bool = True) -> torch.nn.Module:
    """The recipe's backbone, frozen, in eval mode, with ``cut`` cut after the deepest layer any loss reads, and
    run as the recipe's ``memory``, ``compile`` and ``precision`` say."""
    entry = registry.get("backbone", recipe.backbone.name)
    try:
        backbone = call_plugin(registry.manager, entry, entry.factory, **recipe.backbone.options)
    except (PluginBugError, InternalError) as exc:  # a backbone that refuses its options with TypeError or ValueError says why
        if not isinstance(exc.__cause__, (TypeError, ValueError)):
            raise
        raise RecipeError([Problem("backbone", f"backbone '{entry.name}' rejects these options: {exc.__cause__}")],
                          source=recipe.source, hint=BUILT_HINT) from exc.__cause__
    last = deepest(entry.factory, recipe.layers)
    if cut and last is not None and hasattr(backbone, "truncate"):
        backbone.truncate(last)
    if recipe.memory == "checkpoint":
        if not hasattr(backbone, "checkpointing"):  # validation checks backbone classes; a function's are checked here
            raise RecipeError([Problem("memory", f"backbone '{entry.name}' cannot recompute its activations (it has "
                                                 "no 'checkpointing' switch); use memory: keep")], source=recipe.source)
        backbone.checkpointing = True
    backbone = backbone.requires_grad_(False).eval().to(device)
    return with_precision(compiled(backbone) if recipe.compile else backbone, recipe.precision)


def receptive_fields(backbone: Any, layers: list[str], name: str) -> dict[str, float] | None:
    """How many input pixels across one feature of each layer sees; None, with a warning, if the backbone cannot say."""
    field = getattr(backbone, "receptive_field", None)
    if field is None:
        warnings.warn(f"backbone {name} does not say how much of the picture its layers see (receptive_field), "
                      "so layer_fade cannot fade the deep style layers of the small stages; set layer_fade: off to "
                      "silence this", StylefwWarning, stacklevel=3)
        return None
    return {layer: field(layer) for layer in layers}


def build_losses(recipe: Recipe, registry: Registry) -> list[Any]:
    """One loss object per recipe entry, built with the entry's options."""
    entries = [registry.get("loss", spec.name) for spec in recipe.losses]
    return [GuardedLoss(call_plugin(registry.manager, entry, entry.factory, **spec.options), entry, registry.manager)
            for entry, spec in zip(entries, recipe.losses)]


def target_layers(losses: Sequence[Any]) -> tuple[list[str], list[str]]:
    """The layers where the content image's and the style images' features are needed: each loss's own
    layers, for the images it ``reads`` (so the content's relu1_1 is never computed for a style loss)."""
    content: dict[str, None] = {}
    styles: dict[str, None] = {}
    for loss in losses:
        reads = getattr(loss, "reads", READS)
        for kind, needed in (("content", content), ("styles", styles)):
            if kind in reads:
                needed.update(dict.fromkeys(loss.layers))
    return list(content), list(styles)


@torch.no_grad()
def compute_targets(backbone, layers: list[str], content: torch.Tensor, styles: list[torch.Tensor],
                    blend: list[float], *, style_layers: list[str] | None = None) -> Targets:
    """Content features at ``layers`` and style features at ``style_layers`` (default: the same), computed once
    and detached; blend weights are made to sum to 1."""
    total, style_layers = sum(blend), layers if style_layers is None else style_layers
    styles_by_weight = [(_features(backbone, style, style_layers), weight / total)
                        for style, weight in zip(styles, blend)]
    return Targets(_features(backbone, content, layers), styles_by_weight)


def _features(backbone, image: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Detached features of ``image`` at ``layers`` (none when no loss reads the backbone)."""
    features = backbone(image, layers) if layers else {}
    return {name: value.detach() for name, value in features.items()}


def initial_image(init: str, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The starting image: a copy of the content, uniform noise, or the style stretched to fit."""
    if init == "noise":
        image = torch.rand(content.shape, device=content.device)
    elif init == "style":
        image = torch.nn.functional.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True)
    else:
        image = content.clone()
    # contiguous: L-BFGS flattens the gradient with view(), which fails on a channels-last image
    return image.clamp(0, 1).contiguous().requires_grad_(True)


def optimise(image: torch.Tensor, backbone, losses: list, weights: list[float], labels: list[str],
             optimizer: torch.optim.Optimizer, steps: int, layers: list[str], *,
             scheduler: Any = None, first: int = 1, project: bool | None = None,
             grid: Grid | None = None) -> Iterator[Evaluated]:
    """Step ``optimizer`` on ``image`` from step ``first`` to ``steps``, yielding what each step evaluated.

    Nothing here waits for the device: the losses stay tensors until a subscriber reads them.

    The losses always see ``image`` clamped to [0, 1], the picture that will be saved, so the function
    optimised is the same at every evaluation. An optimizer whose first step evaluated it once (Adam,
    SGD) also has the image projected into the box after each step: projected gradient descent. One that
    evaluated it several times (L-BFGS) is left alone, since moving the point after its line search would
    contradict the curvature history it builds; pixels past the box then simply stop pulling. The choice
    is made once, at the first step: a converged L-BFGS step evaluates once too, and must not be projected.
    A resumed stage passes the choice its first step made as ``project``.

    With a ``grid``, each evaluation computes the same gradient tile by tile (``stylefw.tiling``).
    """
    for number in range(first, steps + 1):
        values: list[torch.Tensor] = []
        totals: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            pixels = image.clamp(0, 1)
            if grid is None:
                features = backbone(pixels, layers) if layers else {}
                values[:] = [loss(features, pixels) for loss in losses]
                total = sum(weight * value for weight, value in zip(weights, values))
                total.backward()
            else:  # backpropagated already, tile by tile
                values[:] = tiled_step(pixels, backbone, losses, weights, grid)
                total = sum(weight * value for weight, value in zip(weights, values))
            totals.append(total)
            return total

        optimizer.step(closure)
        if scheduler is not None:  # anything with step(), such as torch's LRScheduler
            scheduler.step()
        if project is None:
            project = len(totals) == 1
        if project:
            with torch.no_grad():
                image.clamp_(0, 1)
        # the total of the last evaluation, like the terms: L-BFGS evaluates many times and returns the first
        values = torch.stack([torch.as_tensor(value).detach().reshape(()).float() for value in (totals[-1], *values)])
        yield Evaluated(number, values, project)
