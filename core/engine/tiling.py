"""Exact tiled gradients: a picture larger than one pass can hold, with the gradient one pass would give.

The picture is cut into tiles. Each tile owns an inner region, and the inner regions partition the
picture; a tile's forward pass reads its inner region plus a margin, clipped at the picture's edges.

- **Why it is exact.** A feature of the inner region depends only on the pixels its receptive field
  covers. The margin is at least the deepest layer's reach beyond a feature's own pixels, so those
  features, and their derivatives with respect to the pixels, are the ones a whole-picture pass computes.
  Tile edges sit on the pooling grid (a multiple of the deepest layer's stride), so the pooling windows
  fall where they would. The inner regions' features therefore partition every layer's feature map.
- **Two passes.** A loss that needs the whole picture's features at once (``gram``, ``w2``) says so with
  ``tiling = "global"``: it is a function of statistics that sum over tiles. Pass 1, without gradients,
  sums each such loss's ``statistics`` over the tiles; the loss's value and its gradient with respect to
  those sums follow from them. Pass 2 runs each tile forward with gradients and backpropagates, for a
  global loss, the sums' gradient dotted with the tile's own statistics (the chain rule, one tile at a
  time), and for a ``local`` loss (``content``) its ``share`` of the loss over the tile. Each tile's
  pixel gradient, margin included (the margin's pixels feed this tile's features too), is added into
  the picture's gradient.
- **A loss that reads no layers** (``tv``) sees the whole picture, as in a normal step: it is cheap.

Only one tile's activations are alive at a time; what grows with the picture is the picture itself, its
gradient and optimizer state, and the content targets at the content layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch

from ..contracts.plugins import READS, Backbone, Loss, Targets
from ..contracts.recipe import TileSpec
from ..errors import Problem, RecipeError

__all__ = ["Tile", "Grid", "Tiler", "make_tiler", "layer_geometry", "plan_grid", "tiled_features", "tiled_statistics",
           "tiled_targets", "tiled_step", "tiling_of", "refuse_untileable", "LOCAL", "GLOBAL"]

LOCAL, GLOBAL = "local", "global"


@dataclass(frozen=True)
class Tile:
    """One tile: the pixel box a forward pass reads (``outer``) and the box whose features it owns (``inner``),
    each (top, left, bottom, right), and each layer's stride, to crop feature maps with."""

    outer: tuple[int, int, int, int]
    inner: tuple[int, int, int, int]
    strides: Mapping[str, int]

    def pixels(self, picture: torch.Tensor) -> torch.Tensor:
        """The part of an N×C×H×W picture this tile's forward pass reads."""
        top, left, bottom, right = self.outer
        return picture[..., top:bottom, left:right]

    def crop(self, layer: str | None, features: torch.Tensor) -> torch.Tensor:
        """The inner region of ``features`` computed on this tile's ``pixels`` (``layer`` None: the pixels)."""
        return self._box(features, self.strides.get(layer, 1) if layer else 1, self.outer[:2])

    def region(self, layer: str | None, whole: torch.Tensor) -> torch.Tensor:
        """The inner region of ``whole``, a map of the entire picture at ``layer`` (None: the picture itself)."""
        return self._box(whole, self.strides.get(layer, 1) if layer else 1, (0, 0))

    def _box(self, tensor: torch.Tensor, stride: int, origin: tuple[int, int]) -> torch.Tensor:
        # edges are multiples of the stride, except at the picture's far edge, where pooling floors as it does
        top, left, bottom, right = self.inner
        return tensor[..., (top - origin[0]) // stride:(bottom - origin[0]) // stride,
                      (left - origin[1]) // stride:(right - origin[1]) // stride]


@dataclass(frozen=True)
class Grid:
    """The tiles of one picture, the inner tile size and margin they were cut with, and the alignment."""

    tiles: tuple[Tile, ...]
    size: int
    margin: int
    align: int

    def __len__(self) -> int:
        return len(self.tiles)


@dataclass(frozen=True)
class Tiler:
    """How a run cuts its pictures: each layer's stride, the alignment, the margin, and the inner tiles' side."""

    strides: Mapping[str, int]
    align: int
    margin: int
    size: int

    def grid(self, shape: Sequence[int]) -> Grid | None:
        """The tiles of a picture of ``shape`` (…, height, width); None when it fits in one tile."""
        grid = plan_grid((int(shape[-2]), int(shape[-1])), self.size, self.strides, self.align, self.margin)
        return grid if len(grid) > 1 else None


def make_tiler(spec: TileSpec, backbone: Backbone, backbone_name: str, losses: Sequence[Loss], labels: Sequence[str],
               source: str | None, auto_size: Callable[[int], int] | None = None) -> Tiler:
    """The recipe's ``tile`` for this backbone and these losses; ``auto_size(margin)`` gives ``tile.size: auto``
    (:func:`stylefw.engine.calibrate.auto_tile_size`, decided before the run starts).

    The side is rounded down, and a margin given up, to the alignment; a margin below the least exact one is
    a RecipeError, as is a loss that does not declare how it tiles.
    """
    refuse_untileable(losses, labels, backbone, backbone_name, source)
    layers = list(dict.fromkeys(layer for loss in losses for layer in loss.layers))
    strides, align, least = layer_geometry(backbone, layers)
    margin = least if spec.margin is None else math.ceil(spec.margin / align) * align
    if margin < least:
        raise RecipeError([Problem("tile.margin", f"{spec.margin} px is less than the {least} px the deepest layer "
                                   f"read ({max(layers, key=backbone.receptive_field)}) reaches beyond a tile, so "
                                   f"the gradient would not be exact; use auto or at least {least}")], source=source)
    side = auto_size(margin) if spec.size == "auto" else int(spec.size)
    return Tiler(strides, align, margin, max(align, side // align * align))


def layer_geometry(backbone: Backbone, layers: Sequence[str]) -> tuple[dict[str, int], int, int]:
    """Each layer's stride, the alignment tile edges need (the largest stride) and the least exact margin.

    A feature at stride s with receptive field f reaches (f - s) / 2 pixels beyond its own s×s block; the
    margin is the deepest reach, rounded up to the alignment so that outer edges sit on the grid too.
    """
    strides = {layer: int(backbone.stride(layer)) for layer in layers}
    align = max(strides.values(), default=1)
    reach = max(((backbone.receptive_field(layer) - strides[layer] + 1) // 2 for layer in layers), default=0)
    return strides, align, math.ceil(reach / align) * align


def plan_grid(shape: tuple[int, int], size: int, strides: Mapping[str, int], align: int, margin: int) -> Grid:
    """Tiles over a picture of ``shape`` (height, width) whose inner regions are at most ``size`` pixels across,
    balanced (so that no thin last tile is left), with edges on multiples of ``align``."""
    step = max(align, size // align * align)
    rows = _spans(shape[0], step, align)
    columns = _spans(shape[1], step, align)
    tiles = tuple(Tile((max(top - margin, 0), max(left - margin, 0), min(bottom + margin, shape[0]),
                        min(right + margin, shape[1])), (top, left, bottom, right), dict(strides))
                  for top, bottom in rows for left, right in columns)
    return Grid(tiles, step, margin, align)


def _spans(length: int, step: int, align: int) -> list[tuple[int, int]]:
    """[start, end) spans covering ``length``, as few as ``step`` allows, of near-equal aligned widths."""
    count = math.ceil(length / step)
    width = math.ceil(math.ceil(length / count) / align) * align
    edges = [min(index * width, length) for index in range(count)] + [length]
    return [(start, end) for start, end in zip(edges, edges[1:]) if end > start]


def tiling_of(loss: Any) -> str | None:
    """``local`` or ``global``, as the loss declares with ``tiling``; None when it does not say."""
    declared = getattr(loss, "tiling", None)
    return declared if declared in (LOCAL, GLOBAL) else None


def refuse_untileable(losses: Sequence[Loss], labels: Sequence[str], backbone: Backbone, backbone_name: str,
                   source: str | None) -> None:
    """A RecipeError naming every loss that reads layers but does not declare how it tiles, and a backbone
    that cannot say its layers' strides and receptive fields."""
    problems = []
    for index, (loss, label) in enumerate(zip(losses, labels)):
        if loss.layers and tiling_of(loss) is None:
            reason = getattr(loss, "untileable", None)  # a loss that cannot tile by its nature says why
            if reason:
                message = f"loss '{label}' cannot tile: {reason}; remove tile, or use a loss that tiles (gram, w2)"
            else:
                message = (f"loss '{label}' does not declare how it tiles (tiling = 'local' or 'global'), so a tiled "
                           "run cannot compute its gradient exactly; remove tile, or ask its author to declare it "
                           "(the plugin guide: what a plugin implements)")
            problems.append(Problem(f"losses[{index}]", message))
    if not (hasattr(backbone, "stride") and hasattr(backbone, "receptive_field")):
        problems.append(Problem("tile", f"backbone '{backbone_name}' does not say its layers' stride and "
                                "receptive_field, which tiling needs to cut exact tiles; remove tile"))
    if problems:
        raise RecipeError(problems, source=source)


def _features(backbone: Backbone, part: torch.Tensor, tile: Tile, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The inner regions of the features at ``layers`` of ``part``, the tile's pixels."""
    return {name: tile.crop(name, value) for name, value in backbone(part, layers).items()} if layers else {}


@torch.no_grad()
def tiled_features(backbone: Backbone, picture: torch.Tensor, grid: Grid, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The whole picture's features at ``layers``, as one pass would give them, computed tile by tile."""
    whole: dict[str, torch.Tensor] = {}
    for tile in grid.tiles:
        for name, value in _features(backbone, tile.pixels(picture), tile, layers).items():
            if name not in whole:
                height, width = (extent // grid.tiles[0].strides[name] for extent in picture.shape[-2:])
                whole[name] = value.new_empty(*value.shape[:2], height, width)
            tile.region(name, whole[name]).copy_(value)
    return whole


@torch.no_grad()
def tiled_statistics(backbone: Backbone, picture: torch.Tensor, grid: Grid,
                     losses: Sequence[Loss]) -> list[dict[str, torch.Tensor]]:
    """Each loss's ``statistics`` of ``picture``, summed over the tiles (pass 1)."""
    layers = list(dict.fromkeys(layer for loss in losses for layer in loss.layers))
    sums: list[dict[str, torch.Tensor]] = [{} for _ in losses]
    for tile in grid.tiles:
        part = tile.pixels(picture)
        features = _features(backbone, part, tile, layers)
        for total, loss in zip(sums, losses):
            for key, value in loss.statistics(features, tile.crop(None, part), tile).items():
                total[key] = total[key] + value if key in total else value.clone()
    return sums


def tiled_targets(backbone: Backbone, losses: Sequence[Loss], tiler: Tiler, content: torch.Tensor,
                  styles: Sequence[torch.Tensor], blend: Sequence[float], content_layers: Sequence[str],
                  style_layers: Sequence[str]) -> tuple[Targets, list[Targets]]:
    """The targets, with the content's and each style's features computed tile by tile where the image is
    larger than a tile; and each loss's own targets.

    A style image larger than a tile reaches a ``global`` loss as that loss's statistics summed over its tiles
    (``style_statistics``), and any other loss that reads the styles as its features assembled from the tiles.
    """
    total = sum(blend)
    content_features = _whole_features(backbone, content, tiler, content_layers)
    weighted = [(style, weight / total, tiler.grid(style.shape)) for style, weight in zip(styles, blend)]
    large = [(style, weight, grid) for style, weight, grid in weighted if grid is not None]
    shared = Targets(content_features, [(_whole_features(backbone, style, tiler, style_layers), weight)
                                        for style, weight, grid in weighted if grid is None])
    readers = [loss for loss in losses if "styles" in getattr(loss, "reads", READS) and loss.layers]
    global_ = [loss for loss in readers if tiling_of(loss) == GLOBAL]
    summed = [tiled_statistics(backbone, style, grid, global_) for style, _, grid in large] if global_ else []
    own = []
    for loss in losses:
        if not large or loss not in readers:
            own.append(shared)
        elif loss in global_:
            position = global_.index(loss)
            own.append(replace(shared, style_statistics=[(sums[position], weight)
                                                         for sums, (_, weight, _) in zip(summed, large)]))
        else:
            assembled = [(tiled_features(backbone, style, grid, loss.layers), weight) for style, weight, grid in large]
            own.append(replace(shared, styles=[*shared.styles, *assembled]))
    return shared, own


@torch.no_grad()
def _whole_features(backbone: Backbone, image: torch.Tensor, tiler: Tiler, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Detached features of ``image`` at ``layers``: in one pass, or assembled from tiles if it is larger than one."""
    if not layers:
        return {}
    grid = tiler.grid(image.shape)
    if grid is None:
        return {name: value.detach() for name, value in backbone(image, layers).items()}
    return tiled_features(backbone, image, grid, layers)


def tiled_step(pixels: torch.Tensor, backbone: Backbone, losses: Sequence[Loss], weights: Sequence[float],
               grid: Grid) -> list[torch.Tensor]:
    """Backpropagate the weighted losses of ``pixels`` (the clamped picture, part of the graph) tile by tile,
    and return each loss's value, detached. The gradient arrives wherever ``pixels`` came from."""
    picture = pixels.detach()
    whole = [index for index, loss in enumerate(losses) if not loss.layers]
    global_ = [index for index, loss in enumerate(losses) if loss.layers and tiling_of(loss) == GLOBAL]
    local = [index for index, loss in enumerate(losses) if loss.layers and index not in global_]
    values: list[Any] = [None] * len(losses)
    seeds: dict[int, dict[str, torch.Tensor]] = {}
    if global_:
        sums = tiled_statistics(backbone, picture, grid, [losses[index] for index in global_])
        for index, statistics in zip(global_, sums):
            seeds[index], values[index] = _seed(losses[index], weights[index], statistics)
    layers = list(dict.fromkeys(layer for index in global_ + local for layer in losses[index].layers))
    gradient = torch.zeros_like(picture)
    shares = {index: 0.0 for index in local}
    for tile in grid.tiles:
        part = tile.pixels(picture).requires_grad_(True)
        features = _features(backbone, part, tile, layers)
        inner = tile.crop(None, part)
        pulls = []
        for index in global_:
            statistics = losses[index].statistics(features, inner, tile)
            pulls += [(seeds[index][key] * value).sum() for key, value in statistics.items() if key in seeds[index]]
        for index in local:
            share = losses[index].share(features, inner, tile)
            shares[index] = shares[index] + share.detach()
            pulls.append(weights[index] * share)
        pull = sum(pulls)
        if isinstance(pull, torch.Tensor) and pull.requires_grad:
            pull.backward()
            tile.pixels(gradient).add_(part.grad)
    for index in local:
        values[index] = torch.as_tensor(shares[index], device=picture.device)
    for index in whole:
        values[index] = losses[index]({}, pixels)
    rest = sum(weights[index] * values[index] for index in whole)
    roots, grads = [pixels], [gradient]
    if isinstance(rest, torch.Tensor) and rest.requires_grad:
        roots.append(rest)
        grads.append(torch.ones_like(rest))
    torch.autograd.backward(roots, grads)
    return [torch.as_tensor(value).detach() if index in whole else value for index, value in enumerate(values)]


def _seed(loss: Any, weight: float, statistics: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The weighted loss's gradient with respect to each of its summed statistics, and the loss's value."""
    leaves = {key: value.detach().requires_grad_(True) for key, value in statistics.items()}
    with torch.enable_grad():
        value = loss.from_statistics(leaves)
        grads = torch.autograd.grad(weight * value, list(leaves.values()), allow_unused=True)
    return {key: grad for key, grad in zip(leaves, grads) if grad is not None}, value.detach()
