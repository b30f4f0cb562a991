"""Reading VGG weights: torchvision's ImageNet files through the torch hub cache, or a local file."""

from __future__ import annotations

from pathlib import Path

import torch

from stylefw.errors import WeightsError

__all__ = ["imagenet_state_dict", "load_state_dict_file", "imagenet_file"]

IMAGENET_URLS = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}


def imagenet_file(arch: str) -> Path:
    """Where the torch hub cache keeps torchvision's ImageNet weights for ``arch``."""
    filename = IMAGENET_URLS[arch].rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 weights, from the hub cache or downloaded into it with progress."""
    url, cached = IMAGENET_URLS[arch], imagenet_file(arch)
    try:
        return torch.hub.load_state_dict_from_url(url, progress=True, map_location="cpu", check_hash=False)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a corrupt file is a RuntimeError
        raise WeightsError(
            f"pretrained {arch} weights '{cached.name}' are not in {cached.parent} "
            f"and could not be downloaded ({exc})",
            hint=f"on a machine with internet, download {url} and copy it to {cached}, "
            "or set backbone.weights to a local file (or 'random' to try things out)",
        ) from exc


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict (the full model or ``features`` only) from ``path``."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist", hint="check backbone.weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"cannot read weights file {path}: {exc}", hint="is it a PyTorch state dict?") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a state dict of tensors", hint="save it with torch.save(model.state_dict())")
    return state
