"""Recipes: safe loading, validation that reports every problem at once, layer names, shipped recipes."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from stylefw.errors import RecipeError, UserError
from stylefw.recipe import override, builtin_recipes, find_recipe, load_recipe, recipe_from_dict
from stylefw.registry import default_registry
from stylefw.recipe.schema import DEFAULTS

TOP_LEVEL_KEYS = ", ".join(DEFAULTS)


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (40, 32)) -> Path:
    """A small noise image, so that every test has real files to point a recipe at."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder with content.png and style.png."""
    write_png(tmp_path / "content.png", seed=0)
    write_png(tmp_path / "style.png", seed=1)
    return tmp_path


def good(**changes: Any) -> dict[str, Any]:
    """A valid recipe (relative to the ``images`` folder) with ``changes`` applied on top."""
    data: dict[str, Any] = {
        "content": "content.png",
        "style": "style.png",
        "losses": [
            {"name": "content", "layers": ["conv4_2"]},
            {"name": "gram", "weight": 1000, "layers": ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]},
            {"name": "tv", "weight": 10},
        ],
    }
    data.update(changes)
    return data


def problems(data: dict[str, Any], base_dir: Path) -> list[str]:
    """Every problem validation reports for ``data``, as the lines a user would read."""
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(data, base_dir=base_dir)
    return [str(problem) for problem in caught.value.problems]


def write_recipe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- shipped recipes ----------------------------------------------------------------------------


def test_recipes_are_shipped() -> None:
    assert {"vangogh.yaml", "gatys.yaml", "d2l.yaml"} <= set(builtin_recipes())


@pytest.mark.parametrize("name", builtin_recipes())
def test_builtin_recipe_validates(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.source == str(find_recipe(name))
    assert recipe.losses and recipe.layers


@pytest.mark.parametrize("name", builtin_recipes())
def test_builtin_recipe_opens_with_the_command_that_runs_it(name: str) -> None:
    text = (resources.files("stylefw.recipes") / name).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("#"), f"{name} must open with a comment"
    opening = "\n".join(_leading_comments(lines))
    assert re.search(rf"stylefw recipe {re.escape(name)}(\s|$)", opening), opening


def _leading_comments(lines: list[str]) -> list[str]:
    comments = []
    for line in lines:
        if not line.startswith("#"):
            break
        comments.append(line)
    return comments


def test_builtin_recipe_found_by_stem() -> None:
    assert find_recipe("gatys") == find_recipe("gatys.yaml")


def test_unknown_builtin_name_suggests_the_closest() -> None:
    with pytest.raises(UserError) as caught:
        find_recipe("vangog")
    assert "recipe 'vangog' not found" in caught.value.message
    assert "(did you mean vangogh.yaml?)" in caught.value.message
    assert caught.value.hint == f"built-in recipes: {', '.join(builtin_recipes())}"


# -- loading ------------------------------------------------------------------------------------


def test_yaml_tags_are_not_executed(images: Path) -> None:
    marker = images / "pwned"
    path = write_recipe(images / "evil.yaml", f"content: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserError) as caught:
        load_recipe(path)
    assert "invalid YAML" in caught.value.message
    assert not marker.exists()


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "broken.yaml", "content: a.png\nstyle: [b.png\nlosses: x\n")
    with pytest.raises(UserError) as caught:
        load_recipe(path)
    assert caught.value.context == f"{path}:3:7"
    assert caught.value.message.startswith("invalid YAML: ")


def test_recipe_must_be_a_mapping(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "list.yaml", "- content: a.png\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert [str(p) for p in caught.value.problems] == ["a recipe must be a mapping of keys, not list"]


def test_empty_recipe_reports_each_missing_key_once(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "empty.yaml", "# nothing yet\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert [str(p) for p in caught.value.problems] == [
        "content: missing required key 'content'",
        "style: missing required key 'style'",
        "losses: missing required key 'losses'",
    ]
    assert caught.value.source == str(path)


def test_exponent_floats_read_as_numbers(images: Path) -> None:
    # PyYAML follows YAML 1.1, where 1.0e4 without a sign in the exponent is a string
    assert yaml.safe_load("w: 1.0e4")["w"] == "1.0e4"
    text = yaml.safe_dump(good(optimizer={"name": "adam", "lr": 0.01}))
    text = text.replace("weight: 1000", "weight: 1.0e4").replace("lr: 0.01", "lr: 2e-2")
    recipe = load_recipe(write_recipe(images / "exp.yaml", text))
    assert recipe.losses[1].weight == 1.0e4
    assert recipe.optimizer.options["lr"] == 0.02
    assert isinstance(recipe.optimizer.options["lr"], float)


def test_relative_images_resolve_against_the_recipe_folder(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_png(images / "pics" / "c.png")
    text = yaml.safe_dump(good(content="../pics/c.png", style="../style.png"))
    path = write_recipe(images / "recipes" / "r.yaml", text)
    monkeypatch.chdir(images / "pics")  # a path resolved against the cwd would point elsewhere
    recipe = load_recipe(path)
    assert recipe.content.source == str(images / "pics" / "c.png")
    assert [ref.source for ref in recipe.styles] == [str(images / "style.png")]


def test_override_paths_resolve_against_the_current_directory(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # stylefw.run("vangogh.yaml", {"content": "photo.jpg"}) means the photo here, not in the package
    work = images / "work"
    write_png(work / "photo.png", seed=2)
    path = write_recipe(images / "recipes" / "r.yaml", yaml.safe_dump(good(content="../content.png", style="../style.png")))
    monkeypatch.chdir(work)
    recipe = load_recipe(path, {"style": "photo.png"})
    assert recipe.content.source == str(images / "content.png")  # from the file: against the recipe
    assert [ref.source for ref in recipe.styles] == [str(work / "photo.png")]  # from the override: the cwd
    assert load_recipe(path, ["content=photo.png"]).content.source == str(work / "photo.png")


def test_output_resolves_against_the_current_directory(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # outputs never land next to a built-in recipe inside the installed package
    work = images / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    recipe = recipe_from_dict(good(output="out.png"), base_dir=images)
    assert recipe.output == work / "out.png"


def test_style_may_be_a_string(images: Path) -> None:
    recipe = recipe_from_dict(good(), base_dir=images)
    assert [(Path(ref.source).name, ref.weight) for ref in recipe.styles] == [("style.png", 1.0)]


def test_style_may_be_a_weighted_list(images: Path) -> None:
    write_png(images / "other.png", seed=2)
    style = [{"image": "style.png", "weight": 0.25}, {"image": "other.png", "weight": 3}, "content.png"]
    recipe = recipe_from_dict(good(style=style), base_dir=images)
    assert [(Path(ref.source).name, ref.weight) for ref in recipe.styles] == [
        ("style.png", 0.25), ("other.png", 3.0), ("content.png", 1.0)]


def test_urls_are_kept_and_not_fetched(images: Path) -> None:
    url = "http://127.0.0.1:9/style.jpg"  # nothing listens there: validation must not download
    recipe = recipe_from_dict(good(style=url), base_dir=images)
    assert recipe.styles[0].source == url and recipe.styles[0].is_url


def test_validation_does_not_decode_images(images: Path) -> None:
    (images / "content.png").write_text("not an image at all")
    recipe = recipe_from_dict(good(), base_dir=images)
    assert recipe.content.source == str(images / "content.png")
    # a broken recipe with an undecodable image reports recipe problems, not an image error
    assert problems(good(stpes=3), images) == [
        f"stpes: unknown key 'stpes' (did you mean steps?); valid keys: {TOP_LEVEL_KEYS}"]


def test_defaults_are_filled_in(images: Path) -> None:
    recipe = recipe_from_dict(good(), base_dir=images)
    assert (recipe.size, recipe.steps, recipe.init, recipe.device, recipe.output) == (512, 500, "content", "auto", None)
    assert (recipe.backbone.name, recipe.backbone.options["weights"], recipe.optimizer.name) == ("vgg19", "imagenet", "adam")
    assert recipe.data["optimizer"] == {"name": "adam", "lr": 0.02}


# -- every problem at once ----------------------------------------------------------------------


def test_every_problem_is_reported_at_once(images: Path) -> None:
    data = good(sise=64, steps=0, init="noize", optimizer={"name": "adam", "lr": -1}, device="gpu")
    data["losses"] = [
        {"name": "content", "layers": ["conv4_2"], "wieght": 2},
        {"name": "gram", "layers": ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv9_9"]},
        {"name": "gramm", "weight": 1},
    ]
    installed = ", ".join(default_registry().names("loss"))
    assert problems(data, images) == [
        f"sise: unknown key 'sise' (did you mean size?); valid keys: {TOP_LEVEL_KEYS}",
        "losses[0].wieght: unknown option 'wieght' for loss 'content' (did you mean weight?); "
        "valid: name, weight, layers, normalize, instance_norm",
        "losses[1].layers[4]: unknown layer 'conv9_9' for vgg19 (did you mean conv5_1?)",
        f"losses[2].name: unknown loss 'gramm' (did you mean gram?); installed: {installed}",
        "optimizer.lr: -1 is out of range; use 0 or more",
        "steps: 0 is out of range; use 1 to 1000000",
        "init: 'noize' is not one of content, noise, style (did you mean noise?)",
        "device: 'gpu' is not a device; use auto, cpu, cuda, cuda:N or mps",
    ]


def test_the_error_names_the_file_and_lists_every_problem(images: Path) -> None:
    path = write_recipe(images / "two.yaml", yaml.safe_dump(good(size="big", seed=-1)))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: 2 problems in recipe"
    assert "  size: expected a whole number, got text 'big'" in lines
    assert f"  seed: -1 is out of range; use 0 to {2**63 - 1}" in lines


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"size": "big"}, "size: expected a whole number, got text 'big'"),
        ({"size": 256.5}, "size: expected a whole number, got float 256.5"),
        ({"steps": True}, "steps: expected a whole number, got a boolean True"),
        ({"style_scale": "x"}, "style_scale: expected a number, got text 'x'"),
        ({"init": 3}, "init: '3' is not one of content, noise, style"),
        ({"backbone": 5}, "backbone: expected a mapping of keys, got int 5"),
        ({"optimizer": [1]}, "optimizer: expected a mapping of keys, got a list [1]"),
        ({"losses": "gram"}, "losses: expected a non-empty list of losses, such as [{name: content, "),
        ({"losses": []}, "losses: expected a non-empty list of losses, such as [{name: content, "),
        ({"style": []}, "style: expected an image path or URL, or a list of {image: ..., weight: ...}"),
        ({"content": {"image": ""}}, "content.image: expected a non-empty string, got text ''"),
        ({"content": {"image": "content.png", "weight": 2}},
         "content.weight: unknown key 'weight'; valid keys: image, sha256"),
        ({"style": {"image": "style.png", "sha256": "abc"}}, "style[0].sha256: expected 64 hexadecimal digits"),
        ({"version": 2}, "version: unsupported recipe version 2; this stylefw reads version 1"),
        ({"output": "out.gif"}, "output: unsupported output format '.gif'; use .png, .jpg, .jpeg or .webp"),
        ({"backbone": {"name": "vgg19", "pooling": "min"}}, "backbone.pooling: 'min' is not one of max, avg"),
        ({"backbone": {"name": "vgg19", "weights": "nope.pth"}}, "backbone.weights: weights file not found: "),
    ],
)
def test_wrong_types_are_reported(images: Path, changes: dict[str, Any], expected: str) -> None:
    found = problems(good(**changes), images)
    assert len(found) == 1 and found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"size": 8}, "size: 8 is out of range; use 16 to 16384"),
        ({"steps": 0}, "steps: 0 is out of range; use 1 to 1000000"),
        ({"style_scale": 100}, "style_scale: 100 is out of range; use 0.01 to 16.0"),
        ({"save_every": -1}, "save_every: -1 is out of range; use 0 to 1000000"),
        ({"style": [{"image": "style.png", "weight": -1}]},
         "style[0].weight: -1 is out of range; use 0.0 to any larger value"),
        ({"style": [{"image": "style.png", "weight": 0}]}, "style: at least one style weight must be above 0"),
    ],
)
def test_out_of_range_values_are_reported(images: Path, changes: dict[str, Any], expected: str) -> None:
    assert problems(good(**changes), images) == [expected]


def test_negative_loss_weight_is_reported(images: Path) -> None:
    data = good()
    data["losses"][2]["weight"] = -10
    assert problems(data, images) == ["losses[2].weight: -10 is out of range; use 0.0 to any larger value"]


def test_missing_image_file_is_reported_with_its_resolved_path(images: Path) -> None:
    assert problems(good(content="nope.png"), images) == [f"content: image file not found: {images / 'nope.png'}"]


# -- plugin names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "changes", "path", "typo", "meant"),
    [
        ("backbone", {"backbone": {"name": "vgg91"}}, "backbone.name", "vgg91", "vgg19"),
        ("optimizer", {"optimizer": "adma"}, "optimizer.name", "adma", "adam"),
    ],
)
def test_unknown_plugin_names_list_the_installed_ones(
    images: Path, kind: str, changes: dict[str, Any], path: str, typo: str, meant: str
) -> None:
    installed = ", ".join(default_registry().names(kind))
    assert problems(good(**changes), images) == [
        f"{path}: unknown {kind} '{typo}' (did you mean {meant}?); installed: {installed}"]


def test_loss_without_a_name_lists_the_installed_losses(images: Path) -> None:
    data = good()
    del data["losses"][2]["name"]
    installed = ", ".join(default_registry().names("loss"))
    assert problems(data, images) == [f"losses[2]: missing required key 'name'; installed losses: {installed}"]


def test_missing_loss_option_is_reported(images: Path) -> None:
    data = good()
    del data["losses"][0]["layers"]
    assert problems(data, images) == ["losses[0]: missing required key 'layers' for loss 'content'"]


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ({"name": "adam", "lrr": 0.1},
         "optimizer.lrr: unknown option 'lrr' for optimizer 'adam' (did you mean lr?); valid: name, schedule, lr, "),
        ({"name": "sgd", "lr": -1}, "optimizer.lr: -1 is out of range; use 0 or more"),
        ({"name": "adam", "lr": 0.1, "betas": [0.9, 2.0]},
         "optimizer.betas[1]: 2.0 is out of range; use 0 up to, but not including, 1"),
        ({"name": "adam", "betas": [0.9]}, "optimizer.betas: expected a list of 2 values, got 1: [0.9]"),
        ({"name": "adam", "eps": 0}, "optimizer.eps: 0 is out of range; use a value above 0"),
        ({"name": "lbfgs", "history_size": 0}, "optimizer.history_size: 0 is out of range; use 1 or more"),
        ({"name": "lbfgs", "line_search_fn": "strong-wolfe"},
         "optimizer.line_search_fn: 'strong-wolfe' is not one of strong_wolfe (did you mean strong_wolfe?)"),
        ({"name": "sgd", "momentum": -0.5}, "optimizer.momentum: -0.5 is out of range; use 0 or more"),
    ],
)
def test_bad_optimizer_options_are_reported(images: Path, optimizer: dict[str, Any], expected: str) -> None:
    found = problems(good(optimizer=optimizer), images)
    assert len(found) == 1 and found[0].startswith(expected), found


# -- layers -------------------------------------------------------------------------------------


def torchvision_vgg19_names() -> list[str]:
    """conv/relu/pool names derived from torchvision's own vgg19().features, built on the meta device."""
    import torch
    import torchvision

    with torch.device("meta"):  # the structure only: no memory, no initialisation cost
        features = torchvision.models.vgg19(weights=None).features
    names, block, number = [], 1, 0
    for module in features:
        if isinstance(module, torch.nn.Conv2d):
            number += 1
            names.append(f"conv{block}_{number}")
        elif isinstance(module, torch.nn.ReLU):
            names.append(f"relu{block}_{number}")
        else:
            assert isinstance(module, torch.nn.MaxPool2d)
            names.append(f"pool{block}")
            block, number = block + 1, 0
    return names


def layers_of(images: Path, layers: list[Any]) -> list[str]:
    data = good()
    data["losses"][1]["layers"] = layers
    return list(recipe_from_dict(data, base_dir=images).losses[1].options["layers"])


def test_layer_indices_follow_torchvision(images: Path) -> None:
    truth = torchvision_vgg19_names()
    assert len(truth) == 37
    indices = list(range(len(truth)))
    assert layers_of(images, indices) == truth


def test_d2l_indices_are_conv1_1_to_conv5_1_and_conv4_4(images: Path) -> None:
    # the indices of the D2L chapter; 21, not 25, is the conv4_2 of Gatys et al.
    truth = torchvision_vgg19_names()
    assert [truth[i] for i in (0, 5, 10, 19, 28, 25, 21)] == [
        "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1", "conv4_4", "conv4_2"]
    assert layers_of(images, [0, 5, 10, 19, 28]) == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    assert layers_of(images, [25, "21"]) == ["conv4_4", "conv4_2"]


def test_d2l_recipe_reads_what_the_books_in_place_relus_leave(tmp_path: Path) -> None:
    """The book keeps ``features[i]``'s output for i in [0, 5, 10, 19, 28] and [25], then runs the next
    module, an in-place ReLU, which overwrites it: d2l.yaml must name the layers the book really reads."""
    import torch
    import torchvision

    from stylefw.plugins.vgg import VGG19
    from stylefw.plugins.vgg_config import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    features = torchvision.models.vgg19(weights=None).features[:29].eval()
    torch.save(features.state_dict(), tmp_path / "vgg19.pth")
    image = torch.rand(1, 3, 40, 40)
    x = (image - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    kept = {}
    with torch.no_grad():
        for index, module in enumerate(features):  # the book's extract_features loop
            x = module(x)
            if index in (0, 5, 10, 19, 28, 25):
                kept[index] = x
    recipe = load_recipe("d2l.yaml")
    style, content = recipe.losses[1].options["layers"], recipe.losses[0].options["layers"]
    ours = VGG19(weights=str(tmp_path / "vgg19.pth"), first_padding="zeros")(image, style + content)
    for index, layer in zip((0, 5, 10, 19, 28, 25), style + content):
        torch.testing.assert_close(ours[layer], kept[index], rtol=1e-4, atol=1e-4)
    assert style + content == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "conv5_1", "relu4_4"]


def test_conv_relu_and_pool_names_are_accepted(images: Path) -> None:
    assert layers_of(images, ["conv1_1", "relu4_2", "pool5"]) == ["conv1_1", "relu4_2", "pool5"]


def test_layer_weights_mapping_is_resolved(images: Path) -> None:
    data = good()
    data["losses"][1]["layers"] = {"conv1_1": 0.5, 5: 2}
    recipe = recipe_from_dict(data, base_dir=images)
    assert recipe.losses[1].options["layers"] == {"conv1_1": 0.5, "conv2_1": 2}


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ("conv9_9", "unknown layer 'conv9_9' for vgg19 (did you mean conv5_1?)"),
        ("relu4_22", "unknown layer 'relu4_22' for vgg19 (did you mean relu4_2?)"),
        ("conv5_0", "unknown layer 'conv5_0' for vgg19 (did you mean conv5_1?)"),
        (37, "layer index 37 is out of range for vgg19 (0 to 36)"),
        (True, "a layer must be a name or an index, not True"),
    ],
)
def test_unknown_layers_are_reported_with_a_suggestion(images: Path, layer: Any, expected: str) -> None:
    data = good()
    data["losses"][1]["layers"] = ["conv1_1", layer]
    assert problems(data, images) == [f"losses[1].layers[1]: {expected}"]


def test_vgg16_has_no_conv5_4(images: Path) -> None:
    data = good(backbone={"name": "vgg16"})
    data["losses"][1]["layers"] = ["conv5_4"]
    found = problems(data, images)
    assert len(found) == 1 and found[0].startswith("losses[1].layers[0]: unknown layer 'conv5_4' for vgg16"), found


def test_layers_are_collected_in_order(images: Path) -> None:
    recipe = recipe_from_dict(good(), base_dir=images)
    assert recipe.layers == ["conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


# -- output and overrides -----------------------------------------------------------------------


@pytest.mark.parametrize("clash", ["content.png", "style.png"])
def test_output_equal_to_an_input_is_refused(images: Path, monkeypatch: pytest.MonkeyPatch, clash: str) -> None:
    monkeypatch.chdir(images)
    found = problems(good(output=clash), images)
    assert found == [
        f"output: {images / clash} is also an input image; choose another output path so the input is kept"]


def test_with_overrides_returns_a_new_validated_recipe(images: Path) -> None:
    path = write_recipe(images / "r.yaml", yaml.safe_dump(good()))
    recipe = load_recipe(path)
    changed = override(recipe, ["optimizer.lr=0.05", "losses[1].weight=1e5", "steps=3"])
    assert (changed.optimizer.options["lr"], changed.losses[1].weight, changed.steps) == (0.05, 1e5, 3)
    assert (recipe.optimizer.options["lr"], recipe.losses[1].weight, recipe.steps) == (0.02, 1000.0, 500)
    assert changed.source == recipe.source == str(path)
    assert changed.content == recipe.content  # already absolute: the cwd does not matter


def test_with_overrides_validates_again(images: Path) -> None:
    recipe = recipe_from_dict(good(), base_dir=images, source="r.yaml")
    with pytest.raises(RecipeError) as caught:
        override(recipe, {"optimizer.lr": -1, "losses[1].layers[0]": "conv0_1"})
    assert caught.value.source == "r.yaml"
    assert [p.path for p in caught.value.problems] == ["losses[1].layers[0]", "optimizer.lr"]
