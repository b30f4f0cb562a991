"""Colour control: exact colour-space round trips, chroma swaps, luminance matching and colour-statistics matching."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylefw.engine import color
from stylefw.engine.color import (CHROMA_SPACES, MATCH_METHODS, color_statistics, grey, lab_to_rgb, luminance,
                           match_colors, match_luminance, rgb_to_lab, transfer_matrix, with_chroma)
from stylefw.engine.image import load_image, resize_long_edge, to_tensor

skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image (the test extra) for its photos")

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
SIZE = 128  # colour statistics need no detail; small images keep the file fast
SPACES = {"yiq": (color.rgb_to_yiq, color.yiq_to_rgb), "yuv": (color.rgb_to_yuv, color.yuv_to_rgb),
          "lab": (rgb_to_lab, lab_to_rgb)}


@cache
def photo(name: str, size: int = SIZE) -> torch.Tensor:
    """A scikit-image photo (astronaut, chelsea, coffee) as a 1×3×H×W tensor; callers must not modify it."""
    return to_tensor(resize_long_edge(Image.fromarray(getattr(skimage_data, name)()), size))


def painting(name: str) -> torch.Tensor:
    """A painting from the developers' ../shared/images, or a skip."""
    path = SHARED_IMAGES / f"{name}.jpg"
    if not path.is_file():
        pytest.skip(f"needs {path} (the developers' ../shared folder)")
    return to_tensor(resize_long_edge(load_image(path), SIZE))


def image(name: str) -> torch.Tensor:
    return photo(name) if name in ("astronaut", "chelsea", "coffee") else painting(name)


def random_colors(seed: int, *, n: int = 1, size: int = 48) -> torch.Tensor:
    """Pixels with correlated, unequal colour spread: a covariance far from the identity."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(n, 3, 3, generator=generator) * 0.15
    noise = torch.randn(n, 3, size * size, generator=generator)
    return (mixing @ noise + torch.rand(n, 3, 1, generator=generator)).view(n, 3, size, size)


def displacement(before: torch.Tensor, after: torch.Tensor) -> float:
    """E|x' − x|² over the pixels."""
    return (after.double() - before.double()).pow(2).sum(1).mean().item()


# -- colour-statistics matching -------------------------------------------------------------------------------


PAIRS = [("chelsea", "astronaut"), ("coffee", "chelsea"), ("astronaut", "coffee"),
         ("the_scream", "astronaut"), ("starry_night", "astronaut"), ("woman_with_hat", "coffee")]


@pytest.mark.parametrize("method", MATCH_METHODS)
@pytest.mark.parametrize(("style_name", "content_name"), PAIRS)
def test_match_colors_gives_the_contents_mean_and_covariance(style_name, content_name, method):
    style, content = image(style_name), image(content_name)
    content_mean, content_cov = color_statistics(content)
    style_mean, style_cov = color_statistics(style)
    assert (style_cov - content_cov).abs().max() > 1e-3  # the pair really differs, so the check below means something

    recoloured = match_colors(style, content, method)
    mean, cov = color_statistics(recoloured)
    assert recoloured.dtype == style.dtype and recoloured.shape == style.shape
    torch.testing.assert_close(mean, content_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(cov, content_cov, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", MATCH_METHODS)
def test_match_colors_on_a_batch_of_synthetic_styles(method):
    styles, content = random_colors(1, n=2), random_colors(2)
    recoloured = match_colors(styles, content, method)
    content_mean, content_cov = color_statistics(content)
    mean, cov = color_statistics(recoloured)
    torch.testing.assert_close(mean, content_mean.expand(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(cov, content_cov.expand(2, 3, 3), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", MATCH_METHODS)
def test_flat_images_stay_finite(method):
    flat = torch.full((1, 3, 16, 16), 0.25)
    content = photo("coffee", 32)
    recoloured = match_colors(flat, content, method)
    # a flat style has nothing to stretch: it becomes the content's mean colour
    torch.testing.assert_close(recoloured, color_statistics(content)[0].float().view(1, 3, 1, 1).expand_as(flat))
    towards_flat = match_colors(content, torch.full((1, 3, 16, 16), 0.6), method)
    assert torch.isfinite(towards_flat).all() and (towards_flat - 0.6).abs().max() < 0.01


def _transport_maps(style: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
    style_cov, content_cov = color_statistics(style)[1], color_statistics(content)[1]
    return {method: transfer_matrix(style_cov, content_cov, method)[0] for method in MATCH_METHODS}


@pytest.mark.parametrize(("style_name", "content_name"), [("chelsea", "astronaut"), ("the_scream", "coffee")])
def test_sym_is_the_symmetric_positive_definite_map(style_name, content_name):
    maps = _transport_maps(image(style_name), image(content_name))
    sym = maps["sym"]
    torch.testing.assert_close(sym, sym.T, atol=1e-12, rtol=0)
    assert torch.linalg.eigvalsh(sym).min() > 0  # symmetric and positive: the gradient of a convex function
    assert (maps["pca"] - maps["pca"].T).abs().max() > 1e-3  # the other two are not, on these photos
    assert (maps["cholesky"] - maps["cholesky"].T).abs().max() > 1e-3


@pytest.mark.parametrize(("style_name", "content_name"), [("chelsea", "astronaut"), ("coffee", "chelsea"),
                                                          ("starry_night", "astronaut"), ("the_scream", "coffee")])
def test_sym_moves_colours_least_and_by_the_wasserstein_distance(style_name, content_name):
    scipy_linalg = pytest.importorskip("scipy.linalg", reason="needs scipy (a scikit-image dependency)")
    style, content = image(style_name), image(content_name)
    moved = {method: displacement(style, match_colors(style, content, method)) for method in MATCH_METHODS}
    assert moved["sym"] < moved["pca"] and moved["sym"] < moved["cholesky"]

    # every map A = Σc^½ R Σs^-½ with R orthogonal also matches the covariance; none moves colours less
    style_mean, style_cov = (stat[0].numpy() for stat in color_statistics(style))
    content_mean, content_cov = (stat[0].numpy() for stat in color_statistics(content))
    content_root, style_inverse_root = scipy_linalg.sqrtm(content_cov).real, scipy_linalg.inv(
        scipy_linalg.sqrtm(style_cov).real)
    generator = torch.Generator().manual_seed(0)
    pixels = style.double().flatten(2)[0].numpy()
    for _ in range(20):
        rotation = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))[0].numpy()
        other = content_root @ rotation @ style_inverse_root
        moved_other = other @ (pixels - style_mean[:, None]) + content_mean[:, None] - pixels
        assert moved["sym"] <= (moved_other**2).sum(0).mean() + 1e-9

    # and it moves them by exactly the 2-Wasserstein distance between the two colour Gaussians
    style_root = scipy_linalg.sqrtm(style_cov).real
    cross = scipy_linalg.sqrtm(style_root @ content_cov @ style_root).real
    wasserstein = ((style_mean - content_mean) ** 2).sum() + (style_cov + content_cov - 2 * cross).trace()
    # to within the ridge's bias, about RIDGE·tr(AAᵀ) ≈ 1e-5 here; pca and cholesky move 0.4–4% more
    assert moved["sym"] == pytest.approx(wasserstein, rel=1e-3)


def test_unknown_names_are_rejected_with_the_valid_ones():
    content = photo("coffee", 16)
    with pytest.raises(ValueError, match="pca, cholesky, sym"):
        match_colors(content, content, "eigen")
    with pytest.raises(ValueError, match="yiq, yuv, lab"):
        with_chroma(content, content, "hsv")


# -- luminance and chroma -------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", CHROMA_SPACES)
def test_with_chroma_takes_luminance_from_one_and_chroma_from_the_other(space):
    to_space = SPACES[space][0]
    content = photo("astronaut").double()
    styled = torch.cat([grey(photo("coffee", 256)[..., :128, :128]).double(), random_colors(3, size=128).double()])
    result = with_chroma(styled, content, space)
    assert result.shape == styled.shape
    torch.testing.assert_close(to_space(result)[:, 1:], to_space(content)[:, 1:].expand(2, -1, -1, -1),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(to_space(result)[:, :1], to_space(styled)[:, :1], atol=1e-5, rtol=0)
    # a saturated chroma on a bright luminance leaves the gamut: nothing clamps it
    assert result.min() < 0 or result.max() > 1


def test_yiq_and_yuv_share_the_chroma_plane():
    luma, chroma = random_colors(4).double(), photo("chelsea").double()[..., :48, :48]
    torch.testing.assert_close(with_chroma(luma, chroma, "yiq"), with_chroma(luma, chroma, "yuv"), atol=1e-4, rtol=0)


def test_match_luminance_gives_the_references_mean_and_std():
    source = luminance(torch.cat([photo("chelsea")[..., :64, :64], photo("coffee")[..., :64, :64]]))
    reference = luminance(torch.cat([photo("astronaut")[..., :80, :80], random_colors(5, size=80)]))
    matched = match_luminance(source, reference)
    assert matched.shape == source.shape
    assert (source.mean((1, 2, 3)) - reference.mean((1, 2, 3))).abs().min() > 0.01  # not already matched
    torch.testing.assert_close(matched.mean((1, 2, 3)), reference.mean((1, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(matched.std((1, 2, 3), correction=0), reference.std((1, 2, 3), correction=0),
                               atol=1e-5, rtol=0)
    # an increasing affine map of the source: the picture itself is unchanged
    for before, after in zip(source.flatten(1), matched.flatten(1)):
        assert torch.corrcoef(torch.stack([before, after]))[0, 1] > 1 - 1e-6
    flat = match_luminance(torch.full((1, 1, 8, 8), 0.3), reference[:1])
    torch.testing.assert_close(flat, reference[:1].mean().expand_as(flat))


def test_grey_images_stay_grey():
    values = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(6))
    grey_image = values.expand(-1, 3, -1, -1)
    torch.testing.assert_close(luminance(grey_image), values)
    torch.testing.assert_close(grey(grey_image), grey_image)
    for space, (to_space, _) in SPACES.items():
        chroma = to_space(grey_image)[:, 1:]
        torch.testing.assert_close(chroma, torch.zeros_like(chroma), atol=1e-4, rtol=0, msg=f"{space} chroma of grey")
    greyed = grey(photo("astronaut"))
    assert greyed.shape == (1, 3, 128, 128)
    assert torch.equal(greyed[:, 0], greyed[:, 1]) and torch.equal(greyed[:, 1], greyed[:, 2])
    pure = torch.eye(3).view(3, 3, 1, 1)  # red, green, blue
    torch.testing.assert_close(luminance(pure).flatten(), torch.tensor([0.299, 0.587, 0.114]))


# -- colour spaces ---------------------------------------------------------------------------------------------


def test_yuv_is_scaled_colour_differences():
    rgb = random_colors(8).double()
    red, blue = rgb[:, :1], rgb[:, 2:]
    y, u, v = color.rgb_to_yuv(rgb).split(1, dim=1)
    torch.testing.assert_close(y, luminance(rgb))
    # BT.601: U = 0.492 (B − Y), V = 0.877 (R − Y), the published coefficients being rounded to about 1e-4
    torch.testing.assert_close(u, 0.492 * (blue - y), atol=1e-3, rtol=0)
    torch.testing.assert_close(v, 0.877 * (red - y), atol=1e-3, rtol=0)


@pytest.mark.parametrize("space", CHROMA_SPACES)
def test_round_trips(space):
    to_space, from_space = SPACES[space]
    generator = torch.Generator().manual_seed(7)
    # float64, including colours outside [0, 1] (a with_chroma result before clamping)
    wide = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64) * 1.6 - 0.3
    torch.testing.assert_close(from_space(to_space(wide)), wide, atol=1e-10, rtol=0)
    for real in (photo("astronaut"), photo("chelsea"), torch.rand(1, 3, 64, 64, generator=generator)):
        torch.testing.assert_close(from_space(to_space(real)), real, atol=1e-5, rtol=0)


def test_lab_reference_colours():
    colours = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    lab = rgb_to_lab(colours.view(5, 3, 1, 1)).view(5, 3)
    expected = torch.tensor([[100.0, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                             [32.30, 79.19, -107.86]], dtype=torch.float64)
    torch.testing.assert_close(lab[:2], expected[:2], atol=1e-9, rtol=0)
    torch.testing.assert_close(lab[2:], expected[2:], atol=0.01, rtol=0)


def test_lab_agrees_with_scikit_image():
    skimage_color = pytest.importorskip("skimage.color", reason="needs scikit-image")
    astronaut = skimage_data.astronaut()[::4, ::4]
    expected = torch.from_numpy(skimage_color.rgb2lab(astronaut)).permute(2, 0, 1).unsqueeze(0)
    ours = rgb_to_lab(torch.from_numpy(astronaut).permute(2, 0, 1).unsqueeze(0).double() / 255)
    # scikit-image rounds the sRGB matrix and the white point differently, by about 1e-5
    torch.testing.assert_close(ours, expected, atol=0.02, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none here")
@pytest.mark.parametrize("method", MATCH_METHODS)
def test_match_colors_on_cuda_agrees_with_the_cpu(method):
    style, content = photo("chelsea"), photo("astronaut")
    on_gpu = match_colors(style.cuda(), content.cuda(), method)
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    torch.testing.assert_close(on_gpu.cpu(), match_colors(style, content, method), atol=1e-5, rtol=0)
    torch.testing.assert_close(with_chroma(on_gpu, content.cuda(), "lab").cpu(),
                               with_chroma(on_gpu.cpu(), content, "lab"), atol=1e-4, rtol=0)
