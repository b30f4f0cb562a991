"""Colour control for style transfer (Gatys et al. 2017): colour spaces, luminance-only transfer, colour matching.

Images are N×3×H×W float tensors, RGB in [0, 1]. Nothing here clamps: callers clamp once, at the end.
Luminance is BT.601 luma, ``Y = 0.299 R + 0.587 G + 0.114 B`` on the sRGB values, the Y of both YIQ and YUV.
"""

from __future__ import annotations

import torch

from ..contracts.recipe import COLOR_MODES, DEFAULT_METHOD, DEFAULT_SPACE, MATCH_METHODS, SWAP_SPACES

__all__ = ["COLOR_MODES", "MATCH_METHODS", "CHROMA_SPACES", "SWAP_SPACES", "DEFAULT_METHOD", "DEFAULT_SPACE", "rgb_to_yiq", "yiq_to_rgb", "rgb_to_yuv", "yuv_to_rgb",
           "rgb_to_lab", "lab_to_rgb", "luminance", "grey", "match_luminance", "with_chroma", "color_statistics",
           "transfer_matrix", "match_colors", "color_inputs", "color_output"]

CHROMA_SPACES = ("yiq", "yuv", "lab")

# Rows give Y, then the two chroma axes. YIQ's chroma plane is YUV's turned by 33° and mirrored, so taking the
# chroma of an image in either space gives the same RGB.
_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135))
_YUV = ((0.299, 0.587, 0.114), (-0.14713, -0.28886, 0.436), (0.615, -0.51499, -0.10001))
# Linear sRGB to CIE XYZ; the D65 white is each row's sum, so RGB (1, 1, 1) is exactly Lab (100, 0, 0).
_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750),
                (0.0193339, 0.1191920, 0.9503041))
_DELTA = 6 / 29  # CIE's switch between the cube root and its linear toe
# Added to colour covariances so that a flat image's can be inverted. It is about the variance of 8-bit
# quantisation noise, (1/255)²/12, and small enough to move matched covariances by under 2e-5 on real photos.
RIDGE = 1e-6


def _mix(matrix, image: torch.Tensor, *, inverse: bool = False) -> torch.Tensor:
    """Apply a 3×3 colour matrix (or its inverse) to every pixel of an N×3×H×W image."""
    weights = torch.tensor(matrix, dtype=torch.float64)
    weights = torch.linalg.inv(weights) if inverse else weights
    return torch.einsum("ij,njhw->nihw", weights.to(image.device, image.dtype), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """RGB to NTSC YIQ (channels Y, I, Q)."""
    return _mix(_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """NTSC YIQ to RGB, the exact inverse of :func:`rgb_to_yiq`."""
    return _mix(_YIQ, image, inverse=True)


def rgb_to_yuv(image: torch.Tensor) -> torch.Tensor:
    """RGB to analogue BT.601 YUV (channels Y, U, V)."""
    return _mix(_YUV, image)


def yuv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """BT.601 YUV to RGB, the exact inverse of :func:`rgb_to_yuv`."""
    return _mix(_YUV, image, inverse=True)


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """sRGB to CIE L*a*b* with the D65 white (L in 0–100)."""
    # clamp_min keeps pow away from negatives in the branch torch.where discards (NaN values and gradients)
    linear = torch.where(image > 0.04045, ((image.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, image / 12.92)
    xyz = _mix(_SRGB_TO_XYZ, linear) / _white(image)
    f = torch.where(xyz > _DELTA**3, xyz.clamp_min(_DELTA**3) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (D65) to sRGB, the exact inverse of :func:`rgb_to_lab`; out-of-gamut colours leave [0, 1]."""
    lightness, a, b = image.unbind(1)
    fy = (lightness + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=1)
    xyz = torch.where(f > _DELTA, f.clamp_min(_DELTA) ** 3, 3 * _DELTA**2 * (f - 4 / 29)) * _white(image)
    linear = _mix(_SRGB_TO_XYZ, xyz, inverse=True)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)


def _white(image: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64).sum(1).to(image.device, image.dtype).view(1, 3, 1, 1)


_TO_SPACE = {"yiq": (rgb_to_yiq, yiq_to_rgb), "yuv": (rgb_to_yuv, yuv_to_rgb), "lab": (rgb_to_lab, lab_to_rgb)}


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The BT.601 luma of an N×3×H×W RGB image, as N×1×H×W."""
    return _mix(_YIQ[:1], image)


def grey(image: torch.Tensor) -> torch.Tensor:
    """The image's luminance replicated to three channels, a grey RGB image."""
    return luminance(image).expand(-1, 3, -1, -1).contiguous()


def match_luminance(source_y: torch.Tensor, reference_y: torch.Tensor) -> torch.Tensor:
    """``source_y`` shifted and scaled, per image, to the mean and standard deviation of ``reference_y``."""
    source_mean, source_std = _moments(source_y)
    reference_mean, reference_std = _moments(reference_y)
    # a flat source (float rounding aside) stays flat, at the reference's mean, instead of dividing by zero
    scale = torch.where(source_std > 1e-6, reference_std / source_std.clamp_min(1e-6), 0.0)
    return (source_y - source_mean) * scale + reference_mean


def _moments(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = image.flatten(1)
    shape = (-1,) + (1,) * (image.dim() - 1)
    return flat.mean(1).view(shape), flat.std(1, correction=0).view(shape)


def with_chroma(luma_image: torch.Tensor, chroma_source: torch.Tensor, space: str = "yiq") -> torch.Tensor:
    """RGB with the luminance of ``luma_image`` and the chroma of ``chroma_source`` in ``space``; unclamped."""
    if space not in _TO_SPACE:
        raise ValueError(f"space must be one of {', '.join(CHROMA_SPACES)}, not {space!r}")
    to_space, from_space = _TO_SPACE[space]
    luma, chroma = to_space(luma_image)[:, :1], to_space(chroma_source)[:, 1:]
    return from_space(torch.cat([luma, chroma.expand(luma.shape[0], -1, -1, -1)], dim=1))


def color_statistics(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel colour mean (N×3) and covariance (N×3×3) of each image, in float64."""
    pixels = _float64(image).flatten(2)
    mean = pixels.mean(2)
    centred = pixels - mean.unsqueeze(2)
    return mean, centred @ centred.transpose(1, 2) / pixels.shape[2]


def transfer_matrix(style_cov: torch.Tensor, content_cov: torch.Tensor, method: str) -> torch.Tensor:
    """The 3×3 map A with A·Σs·Aᵀ = Σc (each covariance plus :data:`RIDGE`·I) that ``method`` picks."""
    eye = torch.eye(3, dtype=style_cov.dtype, device=style_cov.device)
    style_cov, content_cov = style_cov + RIDGE * eye, content_cov + RIDGE * eye
    if method == "cholesky":
        # A = Lc·Ls⁻¹, both lower-triangular Cholesky factors
        style_inverse = torch.linalg.solve_triangular(torch.linalg.cholesky(style_cov), eye, upper=False)
        return torch.linalg.cholesky(content_cov) @ style_inverse
    if method == "pca":
        return _matrix_power(content_cov, 0.5) @ _matrix_power(style_cov, -0.5)
    if method == "sym":
        # the Monge map between Gaussians: the symmetric solution, and the one that moves colours least
        style_root, style_inverse_root = _matrix_power(style_cov, 0.5), _matrix_power(style_cov, -0.5)
        middle = _matrix_power(style_root @ content_cov @ style_root, 0.5)
        return style_inverse_root @ middle @ style_inverse_root
    raise ValueError(f"method must be one of {', '.join(MATCH_METHODS)}, not {method!r}")


def _matrix_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    """A symmetric positive semi-definite matrix to ``power``, through its eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag_embed(values.clamp_min(0) ** power) @ vectors.transpose(-1, -2)


def match_colors(style: torch.Tensor, content: torch.Tensor, method: str = "pca") -> torch.Tensor:
    """``style`` recoloured so its colour mean and covariance are the content's; unclamped, in style's dtype."""
    style_mean, style_cov = color_statistics(style)
    content_mean, content_cov = color_statistics(content)
    matrix = transfer_matrix(style_cov, content_cov.to(style_cov.device), method)
    pixels = _float64(style).flatten(2) - style_mean.unsqueeze(2)
    recoloured = matrix @ pixels + content_mean.to(style_cov.device).unsqueeze(2)
    return recoloured.view(style.shape).to(style.device, style.dtype)


def _float64(image: torch.Tensor) -> torch.Tensor:
    # Apple's MPS has no float64, so the statistics are computed on the CPU there
    device = "cpu" if image.device.type == "mps" else image.device
    return image.to(device, torch.float64)


def color_inputs(mode: str, content: torch.Tensor, styles: list[torch.Tensor], *,
                 method: str | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The images a run with colour control ``mode`` optimises against, before any target is computed.

    ``luminance``: the content and the styles turned grey, each style's brightness matched to the
    content's; ``histogram``: the styles recoloured to the content's palette with ``method``.
    """
    if mode == "luminance":
        reference = luminance(content)
        return grey(content), [match_luminance(luminance(style), reference).repeat(1, 3, 1, 1) for style in styles]
    if mode == "histogram":
        return content, [match_colors(style, content, method or DEFAULT_METHOD) for style in styles]
    return content, styles


def color_output(mode: str, image: torch.Tensor, content: torch.Tensor, *, space: str | None = None) -> torch.Tensor:
    """The picture a run with colour control ``mode`` delivers: ``image``'s luminance with the content's
    chroma for ``luminance`` (YIQ) and ``swap`` (``space``), else ``image`` itself; unclamped."""
    if mode == "luminance":
        return with_chroma(image, content, "yiq")
    if mode == "swap":
        return with_chroma(image, content, space or DEFAULT_SPACE)
    return image
