"""Recipe regression tests for users: the pytest plugin (run through ``pytester``) and ``stylefw check``.

pytest runs in a subprocess here, as a user's does. Run inside this process, the inner runs share its
imported modules and cached plugin registry, and after test_golden.py had been collected one of them no
longer resolved a weights file against the recipe's folder: an artefact of the in-process runs, not of
the plugin.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from stylefw.cli import main
from stylefw.tools.goldens import FORMAT, golden_path

# two shallow layers of VGG-16 at 32 px: a check of well under a second
RECIPE = """\
version: 1
content: content.png
style: style.png
size: 32
backbone: {{name: vgg16, weights: {weights}}}
losses:
  - {{name: content, weight: 1.0, layers: [relu2_1]}}
  - {{name: gram, weight: {style_weight}, layers: [relu1_1, relu2_1]}}
optimizer: {{name: adam, lr: 0.05}}
steps: 200
output: out.png
"""


def write_recipe(folder: Path, *, style_weight: float = 10.0, weights: str = "random") -> Path:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:56]
    content = np.stack([x / 55, y / 39, 0.5 + 0.3 * np.sin(x / 4)], -1)
    style = np.stack([np.sin(x / 2) > 0, np.sin(y / 3) > 0, rng.random((40, 56)) > 0.5], -1).astype(float)
    for name, array in (("content.png", content), ("style.png", style)):
        Image.fromarray((array.clip(0, 1) * 255).round().astype(np.uint8)).save(folder / name)
    recipe = folder / "look.yaml"
    recipe.write_text(RECIPE.format(style_weight=style_weight, weights=weights), encoding="utf-8")
    return recipe


@pytest.fixture
def recipes(pytester) -> Path:
    folder = pytester.path / "recipes"
    folder.mkdir()
    write_recipe(folder)
    return folder


def record(pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--stylefw-recipes", "recipes", "--stylefw-record")


def test_without_being_asked_the_plugin_collects_nothing(pytester, recipes):
    record(pytester).assert_outcomes(passed=1)
    pytester.runpytest_subprocess().assert_outcomes()  # a golden is there, but nobody asked for recipes


def test_recording_writes_the_golden_and_says_so(pytester, recipes):
    result = record(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*stylefw goldens recorded*", "*look.yaml: new golden: 4 steps, last total *"])
    golden = json.loads((recipes / "look.golden.json").read_text())
    assert golden["format"] == FORMAT and golden["recipe"] == "look.yaml"
    assert golden["settings"] == {"size": 48, "steps": 4, "seed": 0, "device": "cpu"}
    assert golden["versions"]["torch"] == torch.__version__
    assert golden["versions"]["torchvision"] == torchvision.__version__
    assert len(golden["trace"]) == 4 and set(golden["initial"]) == {"total", "content", "gram"}
    assert decode(golden["image"]).size == (48, 34)  # the content's 56 × 40 at 48 px
    assert decode(golden["inputs"]["content"]).size == (48, 34)


def test_a_recipe_that_still_matches_passes(pytester, recipes):
    record(pytester)
    result = pytester.runpytest_subprocess("--stylefw-recipes", "recipes", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*recipes/look.yaml::look.yaml PASSED*"])


def test_a_drifted_trace_fails_with_the_step_a_table_the_versions_and_the_pictures(pytester, recipes):
    record(pytester)
    write_recipe(recipes, style_weight=15.0)  # the style weight 1.5x
    result = pytester.runpytest_subprocess("--stylefw-recipes", "recipes")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*look.yaml: the loss trace leaves its tolerance at the noise image*",
        "*step*term*expected*actual*off by*",
        "*noise*gram*<",
        "*expected | actual | difference (x8): *stylefw-failures/look.png",
        "*versions, as recorded: stylefw *",
        "*re-record: stylefw check --record*",
    ])
    assert "Traceback" not in result.stdout.str()
    sheet = Image.open(pytester.path / "stylefw-failures" / "look.png")
    assert sheet.width > 3 * 48 and sheet.height > 34


def test_a_drifted_picture_fails_on_the_picture(pytester, recipes):
    record(pytester)
    path = recipes / "look.golden.json"
    golden = json.loads(path.read_text())
    picture = np.asarray(decode(golden["image"])).copy()
    picture[:, :24] = 255 - picture[:, :24]  # the left half inverted, the losses untouched
    golden["image"] = encode(Image.fromarray(picture))
    path.write_text(json.dumps(golden))
    result = pytester.runpytest_subprocess("--stylefw-recipes", "recipes")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*look.yaml: the final picture is off by * grey levels*",
                                 "*the final picture has a mean difference of * grey levels (allowed 1.0)*"])
    assert "loss trace" not in result.stdout.str()


def test_re_recording_says_what_changed(pytester, recipes):
    record(pytester)
    write_recipe(recipes, style_weight=15.0)
    result = record(pytester)
    result.stdout.fnmatch_lines(["*look.yaml: last total * -> * (+*%), picture moved by * grey levels; same versions*"])
    pytester.runpytest_subprocess("--stylefw-recipes", "recipes").assert_outcomes(passed=1)


def test_a_golden_may_loosen_its_own_tolerances(pytester, recipes):
    record(pytester)
    write_recipe(recipes, style_weight=10.2)  # 2% more style
    pytester.runpytest_subprocess("--stylefw-recipes", "recipes").assert_outcomes(failed=1)
    path = recipes / "look.golden.json"
    golden = json.loads(path.read_text())
    path.write_text(json.dumps({**golden, "tolerance": {"initial": 0.05, "trace": 0.05, "image": 5.0}}))
    pytester.runpytest_subprocess("--stylefw-recipes", "recipes").assert_outcomes(passed=1)


def test_the_ini_folders_are_added_only_when_pytest_is_given_no_paths(pytester, recipes):
    record(pytester)
    pytester.makeini("[pytest]\nstylefw_recipes = recipes\n")
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=2)
    pytester.runpytest_subprocess("test_other.py").assert_outcomes(passed=1)
    pytester.runpytest_subprocess("recipes").assert_outcomes(passed=1)  # a path inside the folder still collects its recipes


def test_a_missing_weights_file_is_skipped_naming_it(pytester, recipes):
    weights = recipes / "first3.pth"  # VGG-16 up to conv2_1 only: what relu2_1 needs, and small
    state = torchvision.models.vgg16().features.state_dict()
    torch.save({key: value for key, value in state.items() if key.split(".")[0] in ("0", "2", "5")}, weights)
    write_recipe(recipes, weights="first3.pth")
    record(pytester).assert_outcomes(passed=1)
    weights.unlink()
    result = pytester.runpytest_subprocess("--stylefw-recipes", "recipes", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*file {weights} is missing*"])


def test_a_golden_from_a_future_format_is_a_clear_error(pytester, recipes):
    record(pytester)
    path = recipes / "look.golden.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": FORMAT + 1}))
    result = pytester.runpytest_subprocess("--stylefw-recipes", "recipes")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*look.golden.json: golden format {FORMAT + 1}; this stylefw * reads format {FORMAT}*",
                                 "*hint: upgrade stylefw to check it*"])
    assert "Traceback" not in result.stdout.str()


def test_stylefw_check_prints_a_table_and_exits_by_the_worst_result(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path)
    assert main(["check", "--record", str(recipe)]) == 0
    assert "recorded" in capsys.readouterr().out and golden_path(recipe).is_file()
    assert main(["check", str(recipe)]) == 0
    assert "look.yaml    passed" in capsys.readouterr().out
    assert main(["check", str(recipe), "--set", "losses[1].weight=15"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "leaves its tolerance" in out and (tmp_path / "stylefw-failures" / "look.png").is_file()
    golden_path(recipe).unlink()
    assert main(["check", str(recipe)]) == 2
    captured = capsys.readouterr()
    assert "error" in captured.out
    assert captured.err.startswith(f"error: {golden_path(recipe)}: no golden beside this recipe\n  hint: record one")


def test_stylefw_check_records_at_the_settings_given_and_keeps_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path)
    assert main(["check", "--record", str(recipe), "--set", "size=40", "--set", "steps=2"]) == 0
    assert main(["check", "--record", str(recipe)]) == 0
    golden = json.loads(golden_path(recipe).read_text())
    assert golden["settings"]["size"] == 40 and len(golden["trace"]) == 2


def test_the_shipped_recipes_check_as_a_user_would_check_them(capsys):
    assert main(["check", "vangogh", "gatys"]) == 0
    out = capsys.readouterr().out
    assert "vangogh.yaml    passed" in out and "gatys.yaml      passed" in out


def decode(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def encode(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_default_settings_shrink_every_kind_of_plan(tmp_path):
    from stylefw.recipe import load_recipe
    from stylefw.tools.goldens import default_settings

    recipe = write_recipe(tmp_path)
    single = default_settings(load_recipe(recipe))
    assert single == {"size": 48, "steps": 4, "seed": 0, "device": "cpu"}
    auto = default_settings(load_recipe(recipe, {"scales": "auto", "size": 512, "seed": 3}))
    assert auto == {"size": 64, "steps": 4, "seed": 3, "device": "cpu", "min_size": 32}
    listed = default_settings(load_recipe(recipe, {"size": 1024, "scales": [{"size": 256, "steps": 300},
                                                                            {"size": 512, "steps": 200},
                                                                            {"size": 1024, "steps": 100}]}))
    assert listed["scales"] == [{"size": 32, "steps": 4}, {"size": 64, "steps": 4}]  # 256 and 512 both floor at 32
    lbfgs = default_settings(load_recipe(recipe, {"optimizer": {"name": "lbfgs", "max_iter": 20}}))
    assert lbfgs["optimizer.max_iter"] == 5
