"""The ``stylefw`` command, called as ``main(argv)``: exit codes and the text a user sees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import stylefw
from stylefw.cli import main
from stylefw.plugin_manager import plugin_infos
from stylefw.recipe import builtin_recipes, find_recipe
from stylefw.registry import default_registry

from realweights import HED, needs_hed

# random weights and a shallow, tiny network keep each run well under a few seconds on a CPU
TINY = {
    "content": "content.png",
    "style": "style.png",
    "size": 32,
    "backbone": {"name": "vgg19", "weights": "random"},
    "losses": [
        {"name": "content", "layers": ["relu2_1"]},
        {"name": "gram", "weight": 1000, "layers": ["conv1_1", "conv2_1"]},
        {"name": "tv", "weight": 1},
    ],
    "optimizer": {"name": "adam", "lr": 0.05},
    "steps": 2,
    "device": "cpu",
    "output": "out.png",
}
RANDOM_WEIGHTS_WARNING = "warning: vgg19 uses random weights"


def write_png(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory for the test, holding content.png, style.png and tiny.yaml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path / "cache"))  # a stray download never touches ~/.cache
    write_png(tmp_path / "content.png", seed=0)
    write_png(tmp_path / "style.png", seed=1, size=(32, 32))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``stylefw argv``."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# -- stylefw recipe -----------------------------------------------------------------------------


def test_recipe_run_writes_the_image_and_its_sidecar(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["recipe", "tiny.yaml", "--progress", "plain", "--seed", "3"], capsys)
    assert code == 0, err
    output = work / "out.png"
    with Image.open(output) as image:
        assert (image.format, max(image.size)) == ("PNG", 32)
        embedded = json.loads(image.text["stylefw"])
    sidecar = json.loads((work / "out.png.json").read_text())
    assert {key: value for key, value in sidecar.items() if key != "trace"} == embedded

    assert sidecar["stylefw"] == stylefw.__version__
    assert {"torch", "python", "plugins"} <= set(sidecar)
    assert (sidecar["seed"], sidecar["device"], sidecar["steps_done"]) == (3, "cpu", 2)
    recipe = sidecar["recipe"]
    assert recipe["content"]["image"] == str(work / "content.png")
    assert (recipe["size"], recipe["steps"], recipe["seed"], recipe["output"]) == (32, 2, 3, str(output))
    assert recipe["losses"][1] == {"name": "gram", "weight": 1000.0, "layers": ["conv1_1", "conv2_1"]}
    assert [step["step"] for step in sidecar["trace"]] == [1, 2]
    final = sidecar["final_losses"]
    assert set(final) == {"total", "content", "gram", "tv"}
    assert final["total"] == sidecar["trace"][-1]["loss"]
    assert final["total"] == pytest.approx(sum(term["weighted"] for label, term in final.items() if label != "total"))

    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines[:-1]] == ["step 1/2", "step 2/2"]
    assert re.search(r"loss \S+  content \S+ \(raw \S+ × 1\)  gram \S+ \(raw \S+ × 1000\)  tv ", lines[1])
    assert lines[-1].startswith(f"wrote {output} (32×27, 2 steps in ")
    assert lines[-1].endswith(f"on cpu; metadata in {output}.json)")
    assert RANDOM_WEIGHTS_WARNING in err and "error" not in err


def test_quiet_prints_nothing(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["recipe", "tiny.yaml", "--quiet", "--progress", "plain"], capsys)
    assert (code, out, err) == (0, "", "")
    assert (work / "out.png").is_file() and (work / "out.png.json").is_file()


def test_shortcuts_override_a_builtin_recipe(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --content and --style resolve against the current directory, not the packaged recipe's folder
    (work / "mine").mkdir()  # an output's folder must exist (tests/test_output_check.py)
    argv = ["recipe", "vangogh.yaml", "--content", "content.png", "--style", "style.png", "--output", "mine/v.png",
            "--size", "32", "--steps", "3", "--device", "cpu", "--seed", "5", "--set", "backbone.weights=random",
            "--set", "losses[1].layers=[conv1_1, relu1_2]", "--set", "losses[0].layers=[conv1_2]", "--quiet"]
    code, out, err = run(argv, capsys)
    assert (code, out, err) == (0, "", "")
    sidecar = json.loads((work / "mine" / "v.png.json").read_text())
    recipe = sidecar["recipe"]
    assert recipe["content"]["image"] == str(work / "content.png")
    assert [style["image"] for style in recipe["style"]] == [str(work / "style.png")]
    assert (recipe["size"], recipe["steps"], recipe["device"], recipe["seed"]) == (32, 3, "cpu", 5)
    assert recipe["output"] == str(work / "mine" / "v.png")
    assert recipe["backbone"]["weights"] == "random"
    assert len(sidecar["trace"]) == 3
    with Image.open(work / "mine" / "v.png") as image:
        assert max(image.size) == 32


def test_style_repeated_blends_styles_by_weight(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(work / "second.png", seed=7)
    code, out, err = run(["recipe", "tiny.yaml", "--style", "style.png", "--style", "second.png", "--quiet"], capsys)
    assert (code, out, err) == (0, "", "")
    styles = json.loads((work / "out.png.json").read_text())["recipe"]["style"]
    assert styles == [{"image": str(work / "style.png"), "weight": 1.0}, {"image": str(work / "second.png"), "weight": 1.0}]


def test_save_every_writes_intermediate_images(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(["recipe", "tiny.yaml", "--steps", "5", "--set", "save_every=2", "--quiet"], capsys)
    assert code == 0
    written = sorted(path.name for path in work.glob("out*"))
    # steps 2 and 4 as snapshots (without sidecars), then the final image with its sidecar
    assert written == ["out.000002.png", "out.000004.png", "out.png", "out.png.json"]
    with Image.open(work / "out.000004.png") as snapshot:
        assert snapshot.size == Image.open(work / "out.png").size


def test_output_defaults_to_the_recipe_name_in_the_current_directory(work: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    recipe = {key: value for key, value in TINY.items() if key != "output"}
    (work / "recipes").mkdir()
    for name in ("content.png", "style.png"):
        (work / "recipes" / name).write_bytes((work / name).read_bytes())
    (work / "recipes" / "noout.yaml").write_text(yaml.safe_dump(recipe))
    code, out, err = run(["recipe", "recipes/noout.yaml", "--quiet"], capsys)
    assert (code, out, err) == (0, "", "")
    assert (work / "noout.png").is_file() and (work / "noout.png.json").is_file()
    assert not (work / "recipes" / "noout.png").exists()


def test_undecodable_input_is_a_usage_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "content.png").write_text("not a picture")
    code, out, err = run(["recipe", "tiny.yaml", "--quiet"], capsys)
    assert (code, out) == (2, "")
    [line] = error_lines(err)
    assert line.startswith("error: ") and line.endswith(f"{work / 'content.png'} is not an image Pillow can read")
    assert "hint: use PNG, JPEG or WebP" in err
    assert not (work / "out.png").exists()


def test_output_equal_to_content_is_refused(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (work / "content.png").read_bytes()
    code, out, err = run(["recipe", "tiny.yaml", "--output", "content.png"], capsys)
    assert (code, out) == (2, "")
    assert f"output: {work / 'content.png'} is also an input image" in err
    assert (work / "content.png").read_bytes() == before
    assert not (work / "content.png.json").exists()


def test_missing_image_is_one_clear_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["recipe", "tiny.yaml", "--content", "nope.png"], capsys)
    assert (code, out) == (2, "")
    assert error_lines(err) == ["error: tiny.yaml: 1 problem in recipe"]  # the recipe as the user named it
    assert f"  content: image file not found: {work / 'nope.png'}" in err.splitlines()
    assert "Traceback" not in err


def test_unknown_builtin_recipe(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["recipe", "vangohg"], capsys)
    assert (code, out) == (2, "")
    assert error_lines(err) == ["error: recipe 'vangohg' not found: no such file, and no built-in recipe of that name "
                                "(did you mean vangogh.yaml?)"]
    assert f"hint: built-in recipes: {', '.join(builtin_recipes())}" in err


def test_yaml_syntax_error_names_the_file_and_line(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "bad.yaml").write_text("content: content.png\nstyle: [style.png\nlosses: []\n")
    code, out, err = run(["recipe", "bad.yaml"], capsys)
    assert (code, out) == (2, "")
    assert len(error_lines(err)) == 1
    assert error_lines(err)[0].startswith("error: bad.yaml:3:7: invalid YAML: ")
    assert "Traceback" not in err


def test_cuda_without_a_gpu_is_a_usage_error(work: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine with a GPU
    code, out, err = run(["recipe", "tiny.yaml", "--device", "cuda"], capsys)
    assert (code, out) == (2, "")
    assert error_lines(err) == ["error: device: device 'cuda' is not available: torch sees no CUDA GPU"]
    assert not (work / "out.png").exists()


def test_bad_set_is_a_usage_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["recipe", "tiny.yaml", "--set", "optimizer.lr", "--set", "losses[5].weight=1"], capsys)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert "  --set optimizer.lr: expected key=value, for example --set optimizer.lr=0.05" in lines
    assert "  --set losses[5].weight: index 5 is out of range (the list has 3 items)" in lines


@pytest.mark.parametrize("argv", [["recipe"], ["frobnicate"], ["recipe", "tiny.yaml", "--steps", "many"]])
def test_bad_usage_exits_2_with_usage(work: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("usage: stylefw")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], capsys) == (0, f"stylefw {stylefw.__version__}\n", "")


# -- runtime failures and --debug ---------------------------------------------------------------


def test_runtime_failure_exits_1_without_a_traceback(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # gram × 3e38, near the float32 maximum, sends the image to NaN at step 2: a real failure of the
    # optimisation (a weight above the float32 maximum is refused by validation instead)
    code, out, err = run(["recipe", "tiny.yaml", "--set", "losses[1].weight=3e38", "--progress", "plain"], capsys)
    assert code == 1
    (line,) = error_lines(err)
    assert re.match(r"error: the loss became (inf|nan) at step 2: the image became non-finite", line), line
    assert "wrote the last image with a finite loss (step 1)" in line
    assert "hint: lower optimizer.lr (now 0.05)" in err
    assert "Traceback" not in err + out
    assert (work / "out.png").exists()  # the last good image


def test_debug_shows_the_traceback_of_a_runtime_failure(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # from noise, the content term × 3e38 is infinite at step 1: no image to keep, so the run raises
    code, out, err = run(["recipe", "tiny.yaml", "--set", "init=noise", "--set", "losses[0].weight=3e38",
                          "--debug"], capsys)
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "stylefw.errors.RunError: the loss became inf at step 1" in err
    assert not (work / "out.png").exists()


def test_debug_shows_the_traceback_of_a_user_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", "missing.yaml", "--debug"], capsys)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert error_lines(err)[-1].startswith("error: recipe 'missing.yaml' not found")


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_exception_exits_1(work: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch, debug: bool) -> None:
    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("stylefw.engine.api.run", bug)  # a bug anywhere under the CLI
    code, out, err = run(["recipe", "tiny.yaml", "--quiet"] + ["--debug"] * debug, capsys)
    assert (code, out) == (1, "")
    assert error_lines(err) == ["error: ZeroDivisionError: division by zero"]
    assert f"hint: this is a bug in stylefw {stylefw.__version__}; please report it, with the traceback that --debug " \
        "prints" in err
    assert ("Traceback (most recent call last)" in err) == debug


# -- stylefw validate ---------------------------------------------------------------------------


def test_validate_a_good_recipe(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", "tiny.yaml"], capsys)
    assert (code, err) == (0, "")
    assert out == ("tiny.yaml: valid. vgg19 (random weights), losses: content ×1, gram ×1000, tv ×1; "
                   "adam for 2 steps at 32 px\n")
    assert not (work / "out.png").exists()


@pytest.mark.parametrize("name", builtin_recipes())
def test_validate_a_builtin_recipe(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", name], capsys)
    assert (code, err) == (0, "")
    assert out.startswith(f"{find_recipe(name)}: valid. vgg19 (imagenet weights)")


def test_validate_a_broken_recipe_lists_every_problem(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = {**TINY, "stpes": 3, "optimizer": {"name": "adam", "lr": -1}}
    broken["losses"] = [{"name": "gramm", "layers": ["conv1_1"]}, {"name": "content", "layers": ["conv9_9"]}]
    (work / "broken.yaml").write_text(yaml.safe_dump(broken))
    code, out, err = run(["validate", "broken.yaml"], capsys)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == "error: broken.yaml: 4 problems in recipe"
    assert [line.split(":")[0] for line in lines[1:5]] == [
        "  stpes", "  losses[0].name", "  losses[1].layers[0]", "  optimizer.lr"]
    assert "  losses[1].layers[0]: unknown layer 'conv9_9' for vgg19 (did you mean conv5_1?)" in lines
    assert "Traceback" not in err


def test_validate_applies_set(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", "tiny.yaml", "--set", "optimizer={name: sgd, lr: 0.5}", "--steps", "9"], capsys)
    assert (code, err) == (0, "")
    assert "sgd for 9 steps at 32 px" in out


# -- stylefw list and plugins -------------------------------------------------------------------


def table_rows(out: str) -> list[list[str]]:
    """The cells of each line of a rich table printed without borders."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip()]


def test_list_shows_every_item_with_its_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list"], capsys)
    assert (code, err) == (0, "")
    rows = [row[:3] for row in table_rows(out)]
    assert rows[0] == ["kind", "name", "plugin"]
    entries = list(default_registry().entries())
    assert {"vgg19", "vgg16", "content", "gram", "tv", "adam", "lbfgs", "sgd"} <= {e.name for e in entries}
    for entry in entries:
        assert [entry.kind, entry.name, entry.plugin] in rows
    for name in builtin_recipes():
        assert ["recipe", name, "stylefw"] in rows


def test_list_gives_one_line_per_item_within_the_terminal(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # on a terminal of 80 columns
    code, out, err = run(["list"], capsys)
    lines = out.splitlines()
    registry = default_registry()
    assert len(lines) == 1 + len(list(registry.entries())) + len(builtin_recipes())
    assert max(len(line) for line in lines) <= 80
    assert any(line.endswith("…") for line in lines)  # long descriptions are cut, not wrapped
    wide = run(["list", "--wide"], capsys)[1].splitlines()
    assert len(wide) == len(lines) and not any(line.endswith("…") for line in wide)
    assert max(len(line) for line in wide) > 80


def test_list_piped_cuts_nothing(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe gets
    code, out, err = run(["list"], capsys)
    assert code == 0 and not any(line.endswith("…") for line in out.splitlines())
    assert any(line.split()[:2] == ["loss", "gram"] and len(line) > 80 for line in out.splitlines())


def test_list_shows_torch_classes_by_name_not_by_their_docstrings():
    import torch

    from stylefw.cli.common import summary

    assert summary(torch.optim.SGD) == "torch.optim.sgd.SGD"
    adam = default_registry().get("optimizer", "adam").factory
    assert summary(adam) == adam.__doc__.splitlines()[0]  # stylefw's own factories keep their summary


def test_plugins_shows_plugins_and_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["plugins"], capsys)
    assert (code, err) == (0, "")
    rows = table_rows(out)
    assert rows[0] == ["plugin", "distribution", "version", "provides"]
    infos = plugin_infos(default_registry().manager)
    assert {"stylefw.plugins.vgg", "stylefw.plugins.losses", "stylefw.plugins.optimizers"} <= {i.name for i in infos}
    for info in infos:
        assert [info.name, info.distribution, info.version] in [row[:3] for row in rows]
    vgg = next(row for row in rows if row[0] == "stylefw.plugins.vgg")
    assert vgg[1:3] == ["stylefw", stylefw.__version__]
    assert re.search(r"\bvgg19\b", out)  # what the plugin provides (the column may wrap)


def test_a_closed_pipe_ends_quietly():
    """`stylefw list | head -1`: when the reader goes away, no error message and no traceback."""
    command = [sys.executable, "-c", "from stylefw.cli import entry; entry()", "list"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before stylefw writes anything
    stderr = process.stderr.read().decode()
    assert process.wait() == 1
    assert stderr == ""


# -- validate: every check a run makes before its first step ------------------------------------------------------


def test_validate_lists_a_plugins_refusal_beside_another_keys_problem(work, capsys):
    # the gram loss refuses an empty list of layers only when it is built; the unknown layer is the schema's
    code, out, err = run(["validate", "tiny.yaml", "--set", "losses[0].layers=[relu9_9]", "--set", "losses[1].layers=[]"],
                         capsys)
    assert (code, out) == (2, "")
    assert "2 problems in recipe" in err
    assert "losses[0].layers[0]: unknown layer 'relu9_9' for vgg19" in err
    assert "losses[1]: loss 'gram' rejects these options: layers must be a non-empty list" in err
    assert "stylefw validate' again" not in err


def test_validate_makes_the_runs_own_checks_all_at_once(work, capsys):
    write_png(work / "thin.png", seed=3, size=(1, 64))
    code, out, err = run(["validate", "tiny.yaml", "--content", "thin.png", "--output", "no/such/folder/out.png",
                          "--device", "cuda:7"], capsys)
    assert (code, out) == (2, "")
    assert "3 problems in recipe" in err
    assert "output: cannot write" in err and "no/such/folder does not exist" in err
    assert "device: device 'cuda:7'" in err
    assert "content: 1×64 px is too narrow" in err


@needs_hed
def test_validate_refuses_weights_that_do_not_fit_the_backbone(work, capsys):
    code, _, err = run(["validate", "tiny.yaml", "--set", f"backbone.weights={HED}"], capsys)
    assert code == 2 and "holds vgg16 weights, but the backbone is vgg19" in err and "backbone.name: vgg16" in err
    assert run(["validate", "tiny.yaml", "--set", f"backbone.weights={HED}", "--set", "backbone.name=vgg16"],
               capsys)[0] == 0


def test_validate_says_what_it_cannot_know(work, capsys):
    code, out, _ = run(["validate", "tiny.yaml", "--style", "https://example.com/painting.jpg", "--set", "tile=auto"],
                       capsys)
    assert code == 0 and ": valid." in out
    assert "its URLs are not downloaded" in out and "tile: auto is sized to the free memory when it runs" in out


def test_a_bad_option_shows_the_commands_own_usage(work, capsys):
    code, _, err = run(["recipe", "tiny.yaml", "--sise", "64"], capsys)
    assert code == 2 and err.startswith("usage: stylefw recipe ") and "unrecognized arguments: --sise 64" in err
    code, _, err = run(["weights", "inspect", "x.pth", "--bogus"], capsys)
    assert code == 2 and err.startswith("usage: stylefw weights inspect ")


def test_no_plugin_leaves_a_builtin_feature_out(work, capsys):
    code, _, err = run(["recipe", "tiny.yaml", "--quiet", "--no-plugin", "sidecar"], capsys)
    assert code == 0 and (work / "out.png").is_file() and not (work / "out.png.json").exists()
    code, _, err = run(["recipe", "tiny.yaml", "--quiet", "--output", "two.png", "--no-plugin", "trace",
                        "--no-plugin", "stylefw.plugins.vgg"], capsys)
    assert code == 2 and "backbone.name" in err  # no backbone left to run


def test_the_example_plugin_ships_with_stylefw(work, capsys):
    code, out, _ = run(["plugins", "--example", "mine"], capsys)
    assert code == 0 and "mine" in out
    example = Path(__file__).parent / "example_plugin"
    for name in ("pyproject.toml", "README.md", "stylefw_example/__init__.py"):
        assert (work / "mine" / name).read_bytes() == (example / name).read_bytes()
    code, _, err = run(["plugins", "--example", "mine"], capsys)
    assert code == 2 and "--example mine: the folder is not empty" in err
