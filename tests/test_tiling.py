"""Tiled runs (``tile:``): the gradient computed tile by tile is the one a single pass gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import stylefw
from stylefw.contracts import Targets
from stylefw.errors import RecipeError, UserError
from stylefw.engine.readiness import readiness
from stylefw.engine.calibrate import PICTURE_BYTES, TILE_SHARE, Calibration, auto_tile_size
from stylefw.plugin_manager import get_plugin_manager
from stylefw.plugins.losses import ContentLoss, GramLoss, TVLoss
from stylefw.plugins.vgg import VGG19
from stylefw.plugins.w2 import W2Loss
from stylefw.recipe import TileSpec, recipe_from_dict
from stylefw.registry import build_registry
from stylefw.engine.tiling import (Grid, Tile, layer_geometry, make_tiler, plan_grid, tiled_features,
                            tiled_statistics, tiled_step, tiled_targets)

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
LAYERS = STYLE_LAYERS + ["relu4_2"]
SHAPE = (96, 128)


@pytest.fixture(scope="module")
def vgg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = VGG19(weights="random").double()
    backbone.truncate("relu5_1")
    return backbone


def every_loss(vgg) -> tuple[list, list[float]]:
    """Each built-in loss, prepared against a seeded content and a style of another size."""
    generator = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, *SHAPE, generator=generator, dtype=torch.float64)
    style = torch.rand(1, 3, 80, 100, generator=generator, dtype=torch.float64)
    losses = [ContentLoss(layers=["relu4_2"]), GramLoss(layers=STYLE_LAYERS), TVLoss(),
              W2Loss(layers={"relu2_1": 1, "relu3_1": 1}), ContentLoss(layers=["relu3_1", "relu4_2"], instance_norm=True)]
    with torch.no_grad():
        targets = Targets(vgg(content, ["relu3_1", "relu4_2"]), [(vgg(style, LAYERS), 1.0)])
    for loss in losses:
        loss.prepare(targets)
    return losses, [1.0, 100.0, 10.0, 5.0, 3.0]


def gradients(vgg, losses, weights, grid: Grid | None) -> tuple[list[float], torch.Tensor]:
    """Each loss's value and the weighted sum's gradient at a seeded picture with pixels beyond [0, 1]."""
    generator = torch.Generator().manual_seed(2)
    image = (torch.rand(1, 3, *SHAPE, generator=generator, dtype=torch.float64) * 1.1 - 0.05).requires_grad_(True)
    pixels = image.clamp(0, 1)
    if grid is None:
        features = vgg(pixels, LAYERS)
        values = [loss(features, pixels) for loss in losses]
        sum(weight * value for weight, value in zip(weights, values)).backward()
    else:
        values = tiled_step(pixels, vgg, losses, weights, grid)
    return [float(value.detach()) for value in values], image.grad


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def grid_of(vgg, size: int, margin: int | None = None) -> Grid:
    strides, align, least = layer_geometry(vgg, LAYERS)
    return plan_grid(SHAPE, size, strides, align, least if margin is None else margin)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_tiled_gradient_equals_one_pass_for_every_builtin_loss(vgg, size):
    losses, weights = every_loss(vgg)
    values, gradient = gradients(vgg, losses, weights, None)
    grid = grid_of(vgg, size)
    assert len(grid) >= 4
    tiled_values, tiled_gradient = gradients(vgg, losses, weights, grid)
    assert relative(tiled_gradient, gradient) < 1e-8
    assert tiled_values == pytest.approx(values, rel=1e-10)


@pytest.mark.parametrize("index", range(5))
def test_each_loss_alone_tiles_exactly(vgg, index):
    losses, weights = every_loss(vgg)
    alone = [losses[index]], [weights[index]]
    _, gradient = gradients(vgg, *alone, None)
    _, tiled = gradients(vgg, *alone, grid_of(vgg, 32))
    assert relative(tiled, gradient) < 1e-8


def test_a_misaligned_tiling_differs(vgg):
    """Tiles whose outer edges fall off the pooling grid (here at 8 and 40 px) pool other windows."""
    losses, weights = every_loss(vgg)
    _, gradient = gradients(vgg, losses, weights, None)
    strides, align, margin = layer_geometry(vgg, LAYERS)
    rows, columns = [(0, 88), (88, 96)], [(0, 120), (120, 128)]
    tiles = tuple(Tile((max(top - margin, 0), max(left - margin, 0), min(bottom + margin, 96), min(right + margin, 128)),
                       (top, left, bottom, right), strides) for top, bottom in rows for left, right in columns)
    assert {tile.outer[0] for tile in tiles} == {0, 8} and {tile.outer[1] for tile in tiles} == {0, 40}
    _, misaligned = gradients(vgg, losses, weights, Grid(tiles, 88, margin, align))
    assert relative(misaligned, gradient) > 1e-4


def test_a_margin_short_of_the_deepest_reach_differs(vgg):
    losses, weights = every_loss(vgg)
    _, gradient = gradients(vgg, losses, weights, None)
    _, short = gradients(vgg, losses, weights, grid_of(vgg, 32, margin=layer_geometry(vgg, LAYERS)[2] - 16))
    assert relative(short, gradient) > 1e-4


def test_geometry_of_vgg19_to_relu5_1(vgg):
    strides, align, margin = layer_geometry(vgg, LAYERS)
    assert strides == {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu5_1": 16, "relu4_2": 8}
    # relu5_1 sees 156 px at stride 16: it reaches 70 px beyond its own 16 px, rounded up to the grid
    assert (align, margin) == (16, 80)


@pytest.mark.parametrize(("shape", "size"), [((96, 128), 32), ((100, 130), 48), ((1000, 3000), 512), ((17, 16), 16)])
def test_inner_regions_partition_the_picture_on_the_grid(shape, size):
    grid = plan_grid(shape, size, {"a": 16}, 16, 80)
    covered = np.zeros(shape, dtype=int)
    for tile in grid.tiles:
        top, left, bottom, right = tile.inner
        covered[top:bottom, left:right] += 1
        assert all(edge % 16 == 0 for edge in (top, left)) and bottom - top <= max(size, 16)
        assert tile.outer == (max(top - 80, 0), max(left - 80, 0), min(bottom + 80, shape[0]), min(right + 80, shape[1]))
    assert (covered == 1).all()


def test_tiles_are_balanced_not_a_thin_last_one():
    grid = plan_grid((1040, 1040), 512, {"a": 16}, 16, 80)
    heights = sorted({tile.inner[2] - tile.inner[0] for tile in grid.tiles})
    assert heights == [336, 352]  # 352, 352 and 1040 - 2 * 352 = 336 px, not 512, 512 and 16
    assert len({tile.inner[0] for tile in grid.tiles}) == 3


def test_tiled_features_and_statistics_equal_one_pass(vgg):
    picture = torch.rand(1, 3, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grid = grid_of(vgg, 32)
    with torch.no_grad():
        whole = vgg(picture, LAYERS)
    assembled = tiled_features(vgg, picture, grid, LAYERS)
    for layer in LAYERS:
        assert torch.allclose(assembled[layer], whole[layer], rtol=1e-12, atol=1e-12)
    gram, w2 = GramLoss(layers=STYLE_LAYERS), W2Loss(layers=["relu3_1"])
    summed = tiled_statistics(vgg, picture, grid, [gram, w2])
    for name, value in {**gram.statistics(whole, picture, None), **w2.statistics(whole, picture, None)}.items():
        found = summed[0].get(name, summed[1].get(name))
        assert torch.allclose(found, value, rtol=1e-10), name


def test_a_style_larger_than_a_tile_gives_the_same_targets(vgg):
    """Its Gram and W2 targets come from statistics summed over its tiles; the content's from assembled tiles."""
    generator = torch.Generator().manual_seed(4)
    content = torch.rand(1, 3, *SHAPE, generator=generator, dtype=torch.float64)
    styles = [torch.rand(1, 3, 112, 144, generator=generator, dtype=torch.float64),
              torch.rand(1, 3, 40, 48, generator=generator, dtype=torch.float64)]
    make = lambda: [ContentLoss(layers=["relu4_2"]), GramLoss(layers=STYLE_LAYERS), W2Loss(layers=["relu2_1"])]
    whole, tiled = make(), make()
    with torch.no_grad():
        targets = Targets(vgg(content, ["relu4_2"]), [(vgg(styles[0], LAYERS), 0.75), (vgg(styles[1], LAYERS), 0.25)])
    for loss in whole:
        loss.prepare(targets)
    tiler = make_tiler(TileSpec(48), vgg, "vgg19", tiled, ["content", "gram", "w2"], None)
    assert tiler.grid(styles[0].shape) is not None and tiler.grid(styles[1].shape) is None
    _, own = tiled_targets(vgg, tiled, tiler, content, styles, [3.0, 1.0], ["relu4_2"], LAYERS)
    assert own[1].style_statistics and len(own[1].styles) == 1
    for loss, theirs in zip(tiled, own):
        loss.prepare(theirs)
    assert torch.allclose(tiled[0].targets["relu4_2"], whole[0].targets["relu4_2"], rtol=1e-12)
    for layer in STYLE_LAYERS:
        assert torch.allclose(tiled[1].targets[layer], whole[1].targets[layer], rtol=1e-10)
    for field in ("mean", "root", "trace", "scale"):
        assert torch.allclose(getattr(tiled[2].targets["relu2_1"], field), getattr(whole[2].targets["relu2_1"], field),
                              rtol=1e-8, atol=1e-10), field


def test_a_margin_below_the_least_is_refused(vgg):
    losses, _ = every_loss(vgg)
    with pytest.raises(RecipeError) as caught:
        make_tiler(TileSpec(64, margin=40), vgg, "vgg19", losses, ["content", "gram", "tv", "w2"], "look.yaml")
    assert caught.value.problems[0].path == "tile.margin"
    assert "at least 80" in caught.value.problems[0].message
    # a margin above the least is kept, rounded up to the grid; the side is rounded down to it
    tiler = make_tiler(TileSpec(100, margin=90), vgg, "vgg19", losses, ["c", "g", "t", "w"], None)
    assert (tiler.size, tiler.margin) == (96, 96)


class Undeclared:
    """A plugin loss that reads layers but says nothing of how it tiles."""

    layers = ["relu3_1"]

    def prepare(self, targets):
        self.target = targets.content["relu3_1"]

    def __call__(self, features, image):
        return (features["relu3_1"] - self.target).pow(2).mean()


class UndeclaredPlugin:
    @stylefw.hookimpl
    def register_losses(self, register):
        register("undeclared", lambda **options: Undeclared())


def write_pictures(folder, shape=(96, 128)) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    paths = str(folder / "content.png"), str(folder / "style.png")
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    return paths


def small_recipe(folder, **keys) -> dict:
    content, style = write_pictures(folder)
    return {"content": content, "style": style, "size": 128, "steps": 2, "device": "cpu",
            "backbone": {"name": "vgg19", "weights": "random"},
            "losses": [{"name": "content", "layers": ["relu4_2"]}, {"name": "gram", "weight": 100, "layers": STYLE_LAYERS},
                       {"name": "tv", "weight": 10}],
            "optimizer": {"name": "adam", "lr": 0.02}, **keys}


def test_a_plugin_loss_that_does_not_declare_tiling_is_refused_by_name(tmp_path):
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(UndeclaredPlugin(), name="undeclared-plugin")
    data = small_recipe(tmp_path, tile={"size": 64})
    data["losses"].append({"name": "undeclared", "layers": ["relu3_1"]})
    with warnings.catch_warnings(), pytest.raises(RecipeError) as caught:
        warnings.simplefilter("ignore")
        stylefw.run(data, save=False, registry=build_registry(manager))
    problem = caught.value.problems[0]
    assert problem.path == "losses[3]" and "'undeclared' does not declare how it tiles" in problem.message


def plain_vgg(**options):
    """A backbone factory with no ``verify``: validation builds it to check what tiling needs."""
    return VGG19(**options)


plain_vgg.layer_names = VGG19.layer_names


class PlainBackbonePlugin:
    @stylefw.hookimpl
    def register_backbones(self, register):
        register("plainvgg", plain_vgg)


def test_validation_names_a_loss_that_cannot_tile_once_when_it_builds_the_backbone(tmp_path):
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(UndeclaredPlugin(), name="undeclared-plugin")
    manager.register(PlainBackbonePlugin(), name="plain-backbone")
    registry = build_registry(manager)
    data = small_recipe(tmp_path, tile={"size": 64}, backbone={"name": "plainvgg", "weights": "random"})
    data["losses"].append({"name": "undeclared", "layers": ["relu3_1"]})
    found = readiness(recipe_from_dict(data, registry=registry), registry)
    assert [problem.path for problem in found.problems] == ["losses[3]"]


def test_a_backbone_built_by_a_function_tiles_and_checkpoints(tmp_path):
    """Validation cannot see what a factory function builds, so it lets the recipe through; the built VGG-19
    says its strides, receptive fields and checkpointing switch, and the run follows the class's."""
    def vgg19(**options):
        return VGG19(**options)

    vgg19.layer_names = VGG19.layer_names
    manager = get_plugin_manager(load_entry_points=False)
    registry = build_registry(manager)
    registry.add("backbone", "vgg19-by-function", vgg19, plugin="test")
    data = small_recipe(tmp_path, tile={"size": 64}, memory="checkpoint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_class = stylefw.run(data, save=False)
        data["backbone"]["name"] = "vgg19-by-function"
        by_function = stylefw.run(data, save=False, registry=registry)
    assert [step.loss for step in by_function.trace] == [step.loss for step in by_class.trace]


def test_a_tiled_run_follows_the_same_path_as_one_pass(tmp_path):
    """Same trace to float32 rounding, and the same picture, with or without memory: checkpoint."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = stylefw.run(small_recipe(tmp_path), save=False)
        tiled = stylefw.run(small_recipe(tmp_path, tile={"size": 64}), save=False)
        both = stylefw.run(small_recipe(tmp_path, tile={"size": 64}, memory="checkpoint"), save=False)
    expected = [step.loss for step in whole.trace]
    for result in (tiled, both):
        assert [step.loss for step in result.trace] == pytest.approx(expected, rel=1e-5)
        difference = np.abs(np.asarray(result.image, dtype=float) - np.asarray(whole.image, dtype=float))
        # Adam's first steps move every pixel by about lr whatever its gradient's size, so float32 rounding in
        # a near-zero gradient can move a rare pixel a grey level or two
        assert difference.mean() < 0.01 and difference.max() <= 3


@pytest.mark.parametrize(("value", "path", "words"), [
    (512, "tile", "expected off, auto or {size: 512}"),
    ({"size": 32}, "tile.size", "32"),
    ({"size": 512, "margin": -1}, "tile.margin", "-1"),
    ({"size": 512, "overlap": 8}, "tile.overlap", "valid keys: size, margin"),
])
def test_a_bad_tile_is_refused_at_its_key(tmp_path, value, path, words):
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(small_recipe(tmp_path, tile=value))
    problems = [problem for problem in caught.value.problems if problem.path.startswith("tile")]
    assert problems and problems[0].path == path and words in problems[0].message


@pytest.mark.parametrize(("value", "spec", "written"), [
    ("off", None, "off"), ("auto", TileSpec("auto"), "auto"),
    ({"size": 512}, TileSpec(512), {"size": 512, "margin": "auto"}),
    ({"size": 512, "margin": 96}, TileSpec(512, 96), {"size": 512, "margin": 96}),
])
def test_tile_values_read_and_write_back(tmp_path, value, spec, written):
    recipe = recipe_from_dict(small_recipe(tmp_path, tile=value))
    assert recipe.tile == spec and recipe.data["tile"] == written
    assert recipe_from_dict(recipe.data).tile == spec


def test_auto_picks_the_largest_tile_that_fits_the_budget(monkeypatch):
    # a memory line of 1 GB plus 2 kB a pixel
    calibration = Calibration("cpu", (10**6, 2 * 10**6), (3 * 10**9, 5 * 10**9), (1.0, 2.0))
    monkeypatch.setattr("stylefw.engine.calibrate.calibrate", lambda *args, **kwargs: calibration)

    class Stage:
        shape = (6144, 8192)
        pixels = 8192 * 6144

    class Small:
        shape = (144, 192)
        pixels = 192 * 144

    budget = 12 * 10**9
    picture = PICTURE_BYTES * Stage.pixels  # what the whole picture holds
    side = auto_tile_size(None, [Small, Stage], "cpu", 80, budget=budget)
    outer = (budget - picture - 1e9) / (TILE_SHARE * 2000)
    assert side == int(outer ** 0.5) - 160
    assert calibration.tiled_peak((side + 160) ** 2, Stage.pixels) <= budget
    assert calibration.tiled_peak((side + 161) ** 2, Stage.pixels) > budget
    with pytest.raises(UserError, match="even 64 px tiles do not fit"):
        auto_tile_size(None, [Stage], "cpu", 80, budget=int(picture + 1e9))
    # a picture that fits whole is one tile: no tiling
    assert auto_tile_size(None, [Small], "cpu", 80, budget=budget) == 192


def test_the_example_plugins_loss_and_backbone_tile_exactly(tmp_path):
    """A third party's global loss on a third party's backbone: the example package's ``moments`` on ``tiny``."""
    from stylefw_example import MomentLoss, Tiny

    backbone = Tiny().double()
    generator = torch.Generator().manual_seed(5)
    style = torch.rand(1, 3, 60, 50, generator=generator, dtype=torch.float64)
    loss = MomentLoss(layers=["relu1", "relu2"])
    with torch.no_grad():
        loss.prepare(Targets({}, [(backbone(style, ["relu1", "relu2"]), 1.0)]))
    image = torch.rand(1, 3, 40, 56, generator=generator, dtype=torch.float64, requires_grad=True)
    features = backbone(image, ["relu1", "relu2"])
    value = loss(features, image)
    value.backward()
    expected, image.grad = image.grad, None
    tiler = make_tiler(TileSpec(8), backbone, "tiny", [loss], ["moments"], None)
    (tiled_value,) = tiled_step(image.clamp(0, 1), backbone, [loss], [1.0], tiler.grid(image.shape))
    assert len(tiler.grid(image.shape)) == 35 and tiler.margin == 4
    assert float(tiled_value) == pytest.approx(float(value.detach()), rel=1e-10)
    assert relative(image.grad, expected) < 1e-8
