"""An example stylefw plugin: the ``tiny`` backbone, the ``moments`` loss, the ``signsgd`` optimizer, and a step
subscriber that stops a run once its loss falls below ``$STYLEFW_EXAMPLE_STOP_BELOW``."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Mapping, Sequence

import stylefw
import torch
import torch.nn.functional as F
from stylefw.plugins.losses import faded_weights
from torch import nn

__all__ = ["Tiny", "MomentLoss", "SignSGD", "moments", "STOP_BELOW"]

STOP_BELOW = "STYLEFW_EXAMPLE_STOP_BELOW"


class Tiny(nn.Module):
    """A small conv net with seeded random weights: enough to try recipes, not to make art."""

    layer_names = ("conv1", "relu1", "pool1", "conv2", "relu2")
    # input pixels across that one feature of each layer sees: 3×3 convolutions around a 2×2 pool
    receptive_fields = dict(zip(layer_names, (3, 3, 4, 8, 8)))
    # input pixels per step across each layer's feature map: the pool halves it
    strides = dict(zip(layer_names, (1, 1, 2, 2, 2)))

    def __init__(self, *, weights: str = "random", pooling: str = "max", seed: int = 0) -> None:
        super().__init__()
        if weights != "random":
            raise ValueError(f"tiny has no pretrained weights; use weights: random, not {weights!r}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        pool = nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)
        modules = (nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), pool, nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(OrderedDict(zip(self.layer_names, modules)))
        generator = torch.Generator().manual_seed(seed)  # the same weights whatever the global seed
        for conv in (self.body.conv1, self.body.conv2):
            fan_in = conv.in_channels * 3 * 3
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
            conv.bias.data.zero_()
        self.requires_grad_(False).eval()

    def truncate(self, layer: str) -> None:
        """Drop every layer after ``layer``, the deepest one the recipe reads."""
        self.body = self.body[: self.layer_names.index(layer) + 1]

    def receptive_field(self, layer: str) -> int:
        """How many input pixels across one feature of ``layer`` sees (multi-scale runs fade deep layers by it)."""
        return self.receptive_fields[layer]

    def stride(self, layer: str) -> int:
        """How many input pixels one step across ``layer``'s feature map is (tiled runs cut tiles by it)."""
        return self.strides[layer]

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        outputs, x = {}, image
        for name, module in self.body.named_children():
            x = module(x)
            if name in layers:
                outputs[name] = x
            if len(outputs) == len(set(layers)):
                break
        return outputs


def moments(features: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and standard deviation of N×C×H×W features, as N×2×C."""
    flat = features.flatten(2)
    return _moments(flat.mean(2), flat.var(2, unbiased=False))


def _moments(mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    # the epsilon keeps the gradient finite for a channel that a ReLU zeroes everywhere
    return torch.stack([mean, (variance + 1e-5).sqrt()], dim=1)


class MomentLoss:
    """Mean squared error between feature moments and the styles' blended moments (Li et al. 2017).

    It tiles as ``global``: a channel's mean and variance follow from the sums of its values and of their
    squares, which add up over the tiles of a picture.
    """

    reads = ("styles",)  # only the style images' features are computed for it
    tiling = "global"

    def __init__(self, *, layers: Sequence[str]) -> None:
        if isinstance(layers, str) or not layers:
            raise ValueError("layers must be a non-empty list of layer names")
        self.layers = list(layers)
        self.weights: dict[str, float] = {}
        self.targets: dict[str, torch.Tensor] = {}

    def prepare(self, targets) -> None:
        # a multi-scale run's small stages fade the layers that see most of the picture
        self.weights = faded_weights(dict.fromkeys(self.layers, 1.0), targets.layer_factors)
        # in a tiled run, a style image larger than one tile comes as its statistics summed over its tiles
        found = [({layer: moments(features[layer]) for layer in self.layers}, blend) for features, blend in targets.styles]
        found += [(self._from_sums(sums), blend) for sums, blend in targets.style_statistics]
        self.targets = {layer: sum(blend * each[layer] for each, blend in found) for layer in self.layers}

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return self._distance({layer: moments(features[layer]) for layer in self.layers})

    def statistics(self, features: Mapping[str, torch.Tensor], image: torch.Tensor, tile) -> dict[str, torch.Tensor]:
        """Per layer, the sums of the values and of their squares, and the count of positions, over this tile."""
        sums = {}
        for layer in self.layers:
            flat = features[layer].flatten(2)
            sums[layer] = flat.sum(2)
            sums[f"{layer}^2"] = flat.square().sum(2)
            sums[f"{layer}#"] = flat.new_tensor(flat.shape[2], dtype=torch.float64)
        return sums

    def from_statistics(self, sums: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The loss of a picture from its statistics summed over its tiles."""
        return self._distance(self._from_sums(sums))

    def _from_sums(self, sums: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        found = {}
        for layer in self.layers:
            mean = sums[layer] / sums[f"{layer}#"]
            found[layer] = _moments(mean, sums[f"{layer}^2"] / sums[f"{layer}#"] - mean.square())
        return found

    def _distance(self, found: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(weight * F.mse_loss(found[layer], self.targets[layer]) for layer, weight in self.weights.items())


class SignSGD(torch.optim.Optimizer):
    """Steps each value by ``lr`` against the sign of its gradient (Bernstein et al. 2018)."""

    def __init__(self, params, *, lr: float = 0.01) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be above 0, not {lr!r}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure):
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.add_(param.grad.sign(), alpha=-group["lr"])
        return loss


@stylefw.hookimpl
def register_backbones(register) -> None:
    """The example backbone."""
    register("tiny", Tiny)


@stylefw.hookimpl
def register_losses(register) -> None:
    """The example loss."""
    register("moments", MomentLoss)


@stylefw.hookimpl
def register_optimizers(register) -> None:
    """The example optimizer."""
    register("signsgd", SignSGD)


@stylefw.hookimpl
def on_step(event) -> None:
    """Stop the run once its total loss is below $STYLEFW_EXAMPLE_STOP_BELOW (unset: never)."""
    threshold = os.environ.get(STOP_BELOW)
    # reading event.loss waits for the device: only pay for it when asked to watch the loss
    if threshold and event.loss < float(threshold):
        event.stop(f"the loss fell below {threshold}")
