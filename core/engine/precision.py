"""The arithmetic a run's backbone uses: ``fp32``, ``tf32`` (CUDA's TensorFloat-32 matmuls) or ``bf16`` autocast.

Only the backbone's convolutions change precision. Its features come back in float32, so the Gram matrices,
W2's moments, the losses, the image and the optimizer state stay in float32: a Gram matrix sums a million
products, which bf16's 8-bit mantissa would round away, and which overflow fp16 outright.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import torch

__all__ = ["Autocast", "with_precision", "matmul_precision", "compiled", "COMPILED_SHAPES"]

# the shapes one compiled backbone may be specialised for: each stage's size, and a tiled stage's few tile shapes
# (inner, edge and corner tiles differ), with room to spare; torch's default of 8 would fall back to eager
COMPILED_SHAPES = 64


class Autocast(torch.nn.Module):
    """``backbone`` run under bf16 autocast, its features handed back in float32.

    Attributes it does not have itself (``receptive_field``, ``stride``, ``layer_names``) are the backbone's.
    """

    def __init__(self, backbone: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.backbone = backbone
        self.dtype = dtype

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> Mapping[str, torch.Tensor]:
        with torch.autocast(image.device.type, dtype=self.dtype):
            features = self.backbone(image, layers)
        return {name: value.float() for name, value in features.items()}

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["backbone"], name)


def compiled(backbone: torch.nn.Module) -> torch.nn.Module:
    """``backbone`` compiled by ``torch.compile`` for fixed shapes: once per picture (or tile) shape it sees."""
    import torch._dynamo  # deferred: start-up time; only compile: true needs the compiler

    config = torch._dynamo.config
    config.cache_size_limit = max(config.cache_size_limit, COMPILED_SHAPES)
    config.accumulated_cache_size_limit = max(config.accumulated_cache_size_limit, COMPILED_SHAPES * 4)
    return torch.compile(backbone, dynamic=False)


def with_precision(backbone: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``backbone`` as ``precision`` runs it: under bf16 autocast for ``bf16``, else as it is."""
    return Autocast(backbone) if precision == "bf16" else backbone


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """CUDA's matmuls and convolutions in TensorFloat-32 for ``tf32`` and in full float32 otherwise (torch lets
    cuDNN's convolutions use TF32 by default), with the settings put back after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
