"""The ``w2`` style loss: the Wasserstein-2 distance between Gaussian fits of features, per layer.

Each layer's features, flattened to C×(H·W), are fitted with a mean μ (C) and a covariance Σ (C×C,
divided by H·W). Between two Gaussians the squared distance has a closed form (Dowson and Landau 1982):

    W2² = |μ − μt|² + tr Σ + tr Σt − 2 tr((Σt^½ Σ Σt^½)^½)

where t marks the style target. Several styles are blended as a mixture: μt = Σ bᵢ μᵢ and
Σt = Σ bᵢ (Σᵢ + μᵢμᵢᵀ) − μtμtᵀ. ``normalize: relative`` divides each layer's W2² by the target's second
moment |μt|² + tr Σt (its distance to a point mass at 0) and the layer weights by their sum;
``classic`` keeps the raw W2² and the weights as given. The image side's square root comes from
``sqrtm``: coupled Newton–Schulz iterations, with a backward pass that solves a Sylvester equation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Mapping

import torch

from stylefw.errors import warn
from stylefw.markers import Range
from .weighting import Layers, Normalize, faded_weights, layer_weights

__all__ = ["sqrtm", "gaussian", "W2Loss"]

ITERATIONS = 40
# float32 rounding alone leaves residuals up to about 1e-3 on real VGG covariances (condition numbers
# near 1e10): the fallback is for iterations that diverged or stopped far from a square root
TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-2}


def sqrtm(matrix: torch.Tensor, *, iterations: int = ITERATIONS, tolerance: float | None = None) -> torch.Tensor:
    """The principal square root of a symmetric positive semi-definite C×C matrix, or of each in a …×C×C batch.

    Only the symmetric part (A + Aᵀ)/2 is read, as ``eigh`` reads one triangle. Runs at most ``iterations``
    coupled Newton–Schulz iterations on the matrix divided by its Frobenius norm, and is differentiable:
    the backward pass solves S·X + X·S = G. A matrix whose residual ‖S·S − A‖/‖A‖ ends above ``tolerance``
    (default 1e-2 in float32, 1e-8 in float64) gets an ``eigh`` square root instead, with negative
    eigenvalues clamped to 0, and a StylefwWarning.
    """
    root, fell_back = _sqrtm_with_status(matrix, iterations, tolerance)
    if fell_back:
        warn(f"sqrtm: {_FALLBACK}")
    return root


_FALLBACK = "the Newton-Schulz iterations did not converge (an ill-conditioned matrix); used eigh instead"


def _sqrtm_with_status(matrix: torch.Tensor, iterations: int, tolerance: float | None) -> tuple[torch.Tensor, bool]:
    """The square root, and whether any matrix in the batch needed the eigendecomposition fallback."""
    if tolerance is None:
        tolerance = TOLERANCE.get(matrix.dtype, 1e-2)
    root, failed = _SquareRoot.apply(matrix, iterations, tolerance)
    return root, bool(failed.any())


class _SquareRoot(torch.autograd.Function):
    """Newton–Schulz forward (eigh fallback); backward solves S·X + X·S = G through an eigendecomposition of S."""

    @staticmethod
    def forward(ctx, matrix, iterations, tolerance):
        matrix = _symmetric(matrix)
        root = _newton_schulz(matrix, iterations)
        failed = _residual(root, matrix) > tolerance
        if failed.any():
            root = torch.where(failed[..., None, None], _eigh_sqrtm(matrix), root)
        ctx.save_for_backward(root)
        ctx.mark_non_differentiable(failed)
        return root, failed

    @staticmethod
    def backward(ctx, grad, _):
        (root,) = ctx.saved_tensors
        # the forward read only the symmetric part, so the gradient is the symmetric part of X
        return _symmetric(_sylvester(root, grad)), None, None


def _newton_schulz(matrix: torch.Tensor, iterations: int) -> torch.Tensor:
    """Coupled Newton–Schulz iterations for the square root; they converge when ‖I − A/‖A‖‖ < 1.

    Y → (A/‖A‖)^½ and Z → (A/‖A‖)^-½, so E = ‖I − Z·Y‖ says how far a matrix is from converged. In
    exact arithmetic E falls: slowly while small eigenvalues are still growing, then, once below ½, at
    least halving each time. In floating point it reaches a floor, below which Z, as large as the
    inverse root of the smallest eigenvalue, only adds rounding error. So each matrix keeps its best
    iterate, and the loop ends when no matrix is still making progress, or after ``iterations``.
    """
    norm = torch.linalg.matrix_norm(matrix, keepdim=True).clamp_min(torch.finfo(matrix.dtype).tiny)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    y, z = matrix / norm, eye.expand_as(matrix)
    best, best_error = y, torch.full(matrix.shape[:-2], float("inf"), dtype=matrix.dtype, device=matrix.device)
    for _ in range(iterations):
        product = z @ y
        error = torch.nan_to_num(torch.linalg.matrix_norm(product - eye), nan=float("inf"))
        better = error < best_error
        # from E < ½ on, every eigenvalue's error shrinks at least 0.44-fold an iteration
        progress = better & ((best_error >= 0.5) | (error < 0.5 * best_error))
        best = torch.where(better[..., None, None], y, best)
        best_error = torch.minimum(error, best_error)
        if not progress.any():
            break
        t = 1.5 * eye - 0.5 * product
        y, z = y @ t, t @ z
    return best * norm.sqrt()


def _residual(root: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """‖S·S − A‖/‖A‖ per matrix; NaN and inf come out as inf."""
    norm = torch.linalg.matrix_norm(matrix).clamp_min(torch.finfo(matrix.dtype).tiny)
    residual = torch.linalg.matrix_norm(root @ root - matrix) / norm
    return torch.nan_to_num(residual, nan=float("inf"))


def _eigh_sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    """The square root through ``eigh`` of the symmetric part, negative eigenvalues clamped to 0."""
    values, vectors = _eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt().unsqueeze(-2)) @ vectors.mT


def _sylvester(root: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """X with S·X + X·S = G for symmetric S: the gradient of the square root S = A^½ at G = dL/dS."""
    values, vectors = _eigh(root)
    values = values.clamp_min(0)
    sums = values.unsqueeze(-1) + values.unsqueeze(-2)
    # a singular S has s_i + s_j = 0 where the true gradient is infinite; a floor keeps it finite
    floor = (torch.finfo(root.dtype).eps * values.amax(-1)).clamp_min(torch.finfo(root.dtype).tiny)
    return vectors @ ((vectors.mT @ grad @ vectors) / sums.clamp_min(floor[..., None, None])) @ vectors.mT


def _eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``eigh`` of the symmetric part; on the CPU for MPS tensors, which have no eigendecomposition."""
    if matrix.device.type != "mps":
        return torch.linalg.eigh(_symmetric(matrix))
    values, vectors = torch.linalg.eigh(_symmetric(matrix).cpu())
    return values.to(matrix.device), vectors.to(matrix.device)


def _symmetric(matrix: torch.Tensor) -> torch.Tensor:
    return (matrix + matrix.mT) / 2


def gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per batch item, the mean (N×C) and covariance (N×C×C, divided by H·W) of N×C×H×W features."""
    flat = features.flatten(2)
    mean = flat.mean(-1)
    centred = flat - mean.unsqueeze(-1)
    return mean, centred @ centred.mT / flat.shape[-1]


@dataclass(frozen=True)
class _Target:
    """A layer's blended style Gaussian, with what the distance needs precomputed."""

    mean: torch.Tensor  # μt (C)
    root: torch.Tensor  # (Σt + εI)^½ (C×C)
    trace: torch.Tensor  # tr(Σt + εI)
    ridge: float  # ε, added to both covariances
    scale: torch.Tensor  # |μt|² + tr(Σt + εI): the layer's divisor under ``relative``


class W2Loss:
    """Wasserstein-2 distance between Gaussian fits of the image's features and the blended styles', per layer.

    ``layers`` is a list of layer names, or a mapping of layer name to that layer's weight. ``ridge``
    is added to both covariances' diagonals, as a fraction of the target's mean variance, and
    ``iterations`` bounds the Newton–Schulz iterations of each square root.

    It tiles as ``global``: a layer's mean and covariance follow from the sums of its features and of their
    outer products, which add up over tiles.
    """

    reads = ("styles",)
    tiling = "global"

    def __init__(
        self,
        *,
        layers: Layers,
        normalize: Normalize = "relative",
        ridge: Annotated[float, Range(0)] = 1e-4,
        iterations: Annotated[int, Range(1)] = ITERATIONS,
    ) -> None:
        weights = layer_weights(layers, normalize)
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not 0 <= ridge < float("inf"):
            raise ValueError(f"ridge must be a number >= 0, not {ridge!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a whole number >= 1, not {iterations!r}")
        self.given_weights = weights  # as the recipe gives them; layer_weights are faded for the stage
        self.layer_weights = dict(weights)
        self.layers = list(weights)
        self.normalize = normalize
        self.ridge = float(ridge)
        self.iterations = iterations
        self.targets: dict[str, _Target] = {}
        self._warned = False

    def prepare(self, targets) -> None:
        self.layer_weights = faded_weights(self.given_weights, targets.layer_factors)
        fitted = [({layer: _fit(features[layer]) for layer in self.layers}, blend) for features, blend in targets.styles]
        # a style image too large for one pass comes as its statistics, summed over its tiles
        fitted += [({layer: _moments({key: _wide(value) for key, value in statistics.items()}, layer)
                     for layer in self.layers}, blend) for statistics, blend in targets.style_statistics or ()]
        # the distance runs where, and in the precision that, the image's features will be
        samples = {layer: targets.styles[0][0][layer] if targets.styles else
                   targets.style_statistics[0][0][f"{layer}:outer"] for layer in self.layers}
        self.targets = {layer: self._target([(gaussians[layer], blend) for gaussians, blend in fitted],
                                            samples[layer].device, _working_dtype(samples[layer]))
                        for layer in self.layers}

    def __call__(self, features: Mapping[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(weight * self.distance(layer, features[layer]) for layer, weight in self.layer_weights.items())

    def statistics(self, features: Mapping[str, torch.Tensor], image: torch.Tensor, tile) -> dict[str, torch.Tensor]:
        """Per layer, the sum of the features (``LAYER:sum``), of their outer products (``LAYER:outer``) and the
        count of positions (``LAYER:count``): sums over the tiles of a picture, which give its mean and covariance."""
        found = {}
        for layer in self.layers:
            flat = features[layer].to(_working_dtype(features[layer])).flatten(2)
            found[f"{layer}:sum"] = flat.sum(-1)
            found[f"{layer}:outer"] = flat @ flat.mT
            found[f"{layer}:count"] = flat.new_tensor(flat.shape[-1], dtype=torch.float64)
        return found

    def from_statistics(self, statistics: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The loss of the picture whose statistics, summed over its tiles, these are."""
        return sum(weight * self._distance(layer, *_moments(statistics, layer))
                   for layer, weight in self.layer_weights.items())

    def distance(self, layer: str, features: torch.Tensor) -> torch.Tensor:
        """This layer's W2², divided by the target's second moment under ``relative``; averaged over the batch."""
        return self._distance(layer, *gaussian(features.to(_working_dtype(features))))

    def _distance(self, layer: str, mean: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
        target = self.targets[layer]
        covariance = covariance + target.ridge * torch.eye(covariance.shape[-1], dtype=covariance.dtype,
                                                          device=covariance.device)
        root, fell_back = _sqrtm_with_status(target.root @ covariance @ target.root, self.iterations, None)
        if fell_back and not self._warned:  # once per loss: L-BFGS alone evaluates it many times a step
            self._warned = True
            warn(f"w2 at {layer}: {_FALLBACK}, which is slower; a larger ridge or more iterations avoid it")
        squared = ((mean - target.mean).square().sum(-1) + _trace(covariance) + target.trace - 2 * _trace(root))
        # rounding can take a perfect match a hair below 0; a distance is never negative
        squared = squared.clamp_min(0).mean()
        return squared / target.scale if self.normalize == "relative" else squared

    def _target(self, styles: list[tuple[tuple[torch.Tensor, torch.Tensor], float]], device: torch.device,
                dtype: torch.dtype) -> _Target:
        """The styles' mixture moments at one layer, from each style's Gaussian in float64 (they are computed
        once), as the ``device`` and ``dtype`` the distance runs in."""
        mean, second = 0, 0
        for (item_mean, item_covariance), blend in styles:
            # a batch of style images is an equal mixture of its items
            mean = mean + blend * item_mean.mean(0)
            second = second + blend * (item_covariance + item_mean.unsqueeze(-1) * item_mean.unsqueeze(-2)).mean(0)
        covariance = second - torch.outer(mean, mean)
        variance = float(_trace(covariance)) / covariance.shape[-1]
        # ε scales with the target's mean variance: activation sizes differ by orders of magnitude between
        # layers and weight files, so a fixed ridge·I would vanish at one layer and swamp another. A
        # constant style layer has no scale of its own, so it gets ridge itself.
        ridge = self.ridge * (variance if variance > 0 else 1.0)
        covariance = covariance + ridge * torch.eye(covariance.shape[-1], dtype=covariance.dtype,
                                                    device=covariance.device)
        trace = _trace(covariance)
        # the exact eigh root: it is computed once, and an error in it would shift every step's distance
        root = _eigh_sqrtm(covariance)
        return _Target(*(value.to(device, dtype) for value in (mean, root, trace)), ridge,
                       (mean.square().sum() + trace).to(device, dtype))


def _fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian of N×C×H×W features, in float64."""
    return gaussian(_wide(features))


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float64, on the CPU if it is on MPS, which has no float64."""
    return tensor.to("cpu" if tensor.device.type == "mps" else None).double()


def _moments(statistics: Mapping[str, torch.Tensor], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (N×C) and covariance (N×C×C) at ``layer`` from a picture's summed ``statistics``: E[f·fᵀ] − μ·μᵀ."""
    count = statistics[f"{layer}:count"]
    mean = statistics[f"{layer}:sum"] / count
    return mean, statistics[f"{layer}:outer"] / count - mean.unsqueeze(-1) * mean.unsqueeze(-2)


def _working_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float32 at least: half precision cannot hold a covariance's square root."""
    return torch.promote_types(tensor.dtype, torch.float32)


def _trace(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.diagonal(dim1=-2, dim2=-1).sum(-1)
