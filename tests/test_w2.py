"""The w2 loss: Newton–Schulz square roots and their gradient, the Gaussian W2 distance, blending, weights."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

import stylefw
from stylefw.engine import Targets
from stylefw.errors import RecipeError, StylefwWarning
from stylefw.plugins.w2 import W2Loss, sqrtm

DTYPES = [torch.float32, torch.float64]


def spd(size: int, condition: float, *, seed: int = 0, scale: float = 3.7) -> torch.Tensor:
    """A random symmetric positive definite matrix in float64 with eigenvalues spread over ``condition``."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    eigenvalues = scale * torch.logspace(0, -math.log10(condition), size, dtype=torch.float64)
    return (basis * eigenvalues) @ basis.T


def reference_sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    """The square root through an eigendecomposition in float64, negative eigenvalues clamped."""
    values, vectors = torch.linalg.eigh(matrix.double())
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def relative_error(value: torch.Tensor, expected: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(value.double() - expected) / torch.linalg.matrix_norm(expected))


def features(seed: int, channels: int = 4, height: int = 5, width: int = 6, *, batch: int = 1,
             dtype: torch.dtype = torch.float32, shift: float = 0.0) -> torch.Tensor:
    """Random relu-like features; ``shift`` moves them, so two seeds differ in mean as well as covariance."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, channels, height, width, generator=generator, dtype=dtype) + shift).relu()


def reference_w2(image: torch.Tensor, style: torch.Tensor) -> tuple[float, float]:
    """W2² between the Gaussian fits of two 1×C×H×W feature maps, and the style's second moment.

    Written independently of the plugin: tr((Σt^½ Σ Σt^½)^½) is the sum of the square roots of the
    eigenvalues of Σ·Σt, which are those of the symmetric product.
    """
    def fit(x):
        flat = x[0].flatten(1).double()
        mean = flat.mean(1)
        return mean, (flat - mean[:, None]) @ (flat - mean[:, None]).T / flat.shape[1]

    (mean, covariance), (target_mean, target_covariance) = fit(image), fit(style)
    cross = torch.linalg.eigvals(covariance @ target_covariance).real.clamp_min(0).sqrt().sum()
    squared = (mean - target_mean).square().sum() + covariance.trace() + target_covariance.trace() - 2 * cross
    return float(squared), float(target_mean.square().sum() + target_covariance.trace())


def prepared(loss: W2Loss, *styles: tuple[dict, float]) -> W2Loss:
    loss.prepare(Targets({}, list(styles)))
    return loss


# -- the square root --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [8, 64, 256])
def test_sqrtm_matches_an_eigh_reference_without_falling_back(size, dtype):
    """Relative Frobenius error under 1e-4 against eigh in float64, condition numbers 10 and 1000."""
    for condition in (10.0, 1e3):
        matrix = spd(size, condition, seed=size).to(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error", StylefwWarning)  # the Newton–Schulz result, not the fallback's
            root = sqrtm(matrix)
        assert root.dtype == dtype
        assert relative_error(root, reference_sqrtm(matrix)) < 1e-4


def test_sqrtm_takes_a_batch_of_matrices():
    batch = torch.stack([spd(16, 100.0, seed=seed, scale=scale) for seed, scale in ((1, 0.01), (2, 50.0))])
    roots = sqrtm(batch)
    assert roots.shape == batch.shape
    for root, matrix in zip(roots, batch):
        assert relative_error(root, reference_sqrtm(matrix)) < 1e-8


def test_a_singular_psd_matrix_still_gets_a_square_root():
    """Rank 20 of 64, in float32: whether or not it falls back, S·S = A to 1e-3 and S is the PSD root."""
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(3))
    matrix = x @ x.T / 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        root = sqrtm(matrix)
    assert relative_error(root @ root, matrix.double()) < 1e-3
    assert relative_error(root, reference_sqrtm(matrix)) < 1e-3


def test_an_ill_conditioned_matrix_that_does_not_converge_falls_back_with_a_warning():
    """Condition 1e8 and 3 iterations leave the residual far above 1e-8, so the eigh root is used."""
    matrix = spd(32, 1e8)
    with pytest.warns(StylefwWarning, match="did not converge"):
        root = sqrtm(matrix, iterations=3)
    assert relative_error(root, reference_sqrtm(matrix)) < 1e-10


def test_an_indefinite_matrix_makes_the_iterations_diverge_and_gets_the_clamped_root():
    matrix = spd(6, 3.0) - 1.5 * torch.eye(6, dtype=torch.float64)  # eigenvalues from 2.2 down to -0.27
    assert torch.linalg.eigvalsh(matrix).min() < 0
    with pytest.warns(StylefwWarning):
        root = sqrtm(matrix)
    assert torch.isfinite(root).all()
    assert relative_error(root, reference_sqrtm(matrix)) < 1e-10


def test_sqrtm_gradient_passes_gradcheck():
    matrix = spd(5, 20.0, scale=2.0).requires_grad_(True)
    assert torch.autograd.gradcheck(sqrtm, (matrix,))
    batch = torch.stack([spd(4, 5.0, seed=1), spd(4, 50.0, seed=2)]).requires_grad_(True)
    assert torch.autograd.gradcheck(sqrtm, (batch,))


def test_the_fallback_square_root_has_the_same_correct_gradient():
    matrix = spd(5, 20.0, scale=2.0).requires_grad_(True)
    with pytest.warns(StylefwWarning):  # one iteration is far from a residual of 1e-8
        sqrtm(matrix, iterations=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)
        assert torch.autograd.gradcheck(lambda m: sqrtm(m, iterations=1), (matrix,))


# -- the loss ---------------------------------------------------------------------------------


def test_the_loss_passes_gradcheck_on_tiny_features():
    """Two layers, mapping weights and two blended styles, both normalisations, in float64."""
    style_a = {"a": features(1, dtype=torch.float64), "b": features(2, 3, 3, 4, dtype=torch.float64)}
    style_b = {"a": features(3, dtype=torch.float64, shift=0.5), "b": features(4, 3, 2, 5, dtype=torch.float64)}
    image = (features(5, dtype=torch.float64).requires_grad_(True),
             features(6, 3, 3, 4, dtype=torch.float64).requires_grad_(True))
    for normalize in ("relative", "classic"):
        loss = prepared(W2Loss(layers={"a": 1.0, "b": 0.5}, normalize=normalize), (style_a, 0.3), (style_b, 0.7))
        assert torch.autograd.gradcheck(lambda a, b: loss({"a": a, "b": b}, a), image)


def test_the_loss_is_zero_for_the_style_itself_and_positive_otherwise():
    """float32, 16 channels: a perfect match stays under 1e-5 (relative), another image is above 0.01."""
    style = {"x": features(1, 16, 8, 8)}
    loss = prepared(W2Loss(layers=["x"]), (style, 1.0))
    assert float(loss(style, torch.zeros(1))) < 1e-5
    twice = {"x": style["x"].expand(2, -1, -1, -1)}
    assert float(loss(twice, torch.zeros(1))) < 1e-5
    assert float(loss({"x": features(2, 16, 8, 8)}, torch.zeros(1))) > 0.01
    assert float(loss({"x": 1.1 * style["x"]}, torch.zeros(1))) > 1e-4


def test_the_distance_matches_an_independent_formula():
    """classic is W2² itself; with ridge 0 and full-rank covariances it matches an eigvals-based W2²."""
    image, style = features(1, 3, 6, 6, dtype=torch.float64), features(2, 3, 6, 6, dtype=torch.float64, shift=0.3)
    expected, _ = reference_w2(image, style)
    loss = prepared(W2Loss(layers=["x"], normalize="classic", ridge=0), ({"x": style}, 1.0))
    assert float(loss({"x": image}, image)) == pytest.approx(expected, rel=1e-8)


def test_a_batch_is_the_mean_of_its_items():
    style, first, second = features(1, 8, 6, 6), features(2, 8, 6, 6), features(3, 8, 6, 6, shift=1.0)
    loss = prepared(W2Loss(layers=["x"]), ({"x": style}, 1.0))
    alone = [float(loss({"x": item}, item)) for item in (first, second)]
    together = float(loss({"x": torch.cat([first, second])}, first))
    assert alone[0] != pytest.approx(alone[1], rel=0.1)
    assert together == pytest.approx(sum(alone) / 2, rel=1e-5)


def test_several_styles_blend_through_their_first_and_second_moments():
    """Blend 0.25 and 0.75 gives the mixture's moments: μ = Σbμᵢ, Σ = Σbᵢ(Σᵢ + μᵢμᵢᵀ) − μμᵀ.

    Checked two ways: the stored target against the formula computed here, and the loss against a
    single style made of both images' positions side by side (16 and 48 positions: weights 1/4, 3/4).
    """
    first, second = features(1, 5, 4, 4, dtype=torch.float64), features(2, 5, 4, 12, dtype=torch.float64, shift=1.0)
    loss = prepared(W2Loss(layers=["x"], ridge=0), ({"x": first}, 0.25), ({"x": second}, 0.75))
    flats = [f[0].flatten(1) for f in (first, second)]
    means = [flat.mean(1) for flat in flats]
    seconds = [flat @ flat.T / flat.shape[1] for flat in flats]
    mean = 0.25 * means[0] + 0.75 * means[1]
    covariance = 0.25 * seconds[0] + 0.75 * seconds[1] - torch.outer(mean, mean)
    target = loss.targets["x"]
    assert torch.allclose(target.mean, mean, atol=1e-12)
    assert torch.allclose(target.root @ target.root, covariance, atol=1e-10)
    pooled = prepared(W2Loss(layers=["x"], ridge=0), ({"x": torch.cat([first, second], dim=3)}, 1.0))
    image = {"x": features(3, 5, 4, 4, dtype=torch.float64, shift=0.5)}
    assert float(loss(image, image["x"])) == pytest.approx(float(pooled(image, image["x"])), rel=1e-8)


def test_layer_weights_are_honoured_and_relative_divides_by_the_target_second_moment():
    double = torch.float64
    style = {"a": features(1, 3, 6, 6, dtype=double, shift=0.2), "b": 10 * features(2, 4, 5, 5, dtype=double)}
    image = {"a": features(3, 3, 6, 6, dtype=double), "b": 10 * features(4, 4, 5, 5, dtype=double, shift=0.5)}
    w2 = {layer: reference_w2(image[layer], style[layer]) for layer in "ab"}

    def value(layers, normalize):
        return float(prepared(W2Loss(layers=layers, normalize=normalize, ridge=0), (style, 1.0))(image, image["a"]))

    assert value({"a": 2.0, "b": 0.5}, "classic") == pytest.approx(2.0 * w2["a"][0] + 0.5 * w2["b"][0], rel=1e-8)
    assert value(["a", "b"], "classic") == pytest.approx(w2["a"][0] + w2["b"][0], rel=1e-8)
    relative = (2.0 * w2["a"][0] / w2["a"][1] + 0.5 * w2["b"][0] / w2["b"][1]) / 2.5
    assert value({"a": 2.0, "b": 0.5}, "relative") == pytest.approx(relative, rel=1e-8)
    for layer in "ab":
        assert value([layer], "relative") * w2[layer][1] == pytest.approx(value([layer], "classic"), rel=1e-12)


def test_the_ridge_is_relative_to_the_target_variance_and_keeps_a_match_at_zero():
    """Scaling every feature by 1000 scales classic W2² by 10⁶ and leaves relative W2² unchanged."""
    style, image = features(1, 6, 5, 5), features(2, 6, 5, 5, shift=0.4)
    values = []
    for scale in (1.0, 1000.0):
        for normalize in ("classic", "relative"):
            loss = prepared(W2Loss(layers=["x"], normalize=normalize, ridge=0.01), ({"x": scale * style}, 1.0))
            values.append(float(loss({"x": scale * image}, image)))
            assert float(loss({"x": scale * style}, image)) <= 1e-5 * values[-1]
    assert values[2] == pytest.approx(1e6 * values[0], rel=1e-3)
    assert values[3] == pytest.approx(values[1], rel=1e-3)


def test_a_fallback_in_the_loss_warns_once_per_loss_object():
    style = {"x": features(1, 8, 4, 4)}
    loss = prepared(W2Loss(layers=["x"], iterations=1), (style, 1.0))
    with pytest.warns(StylefwWarning) as record:
        values = [float(loss({"x": features(seed, 8, 4, 4)}, style["x"])) for seed in (2, 3, 4)]
    assert len([w for w in record if issubclass(w.category, StylefwWarning)]) == 1
    assert all(math.isfinite(value) and value > 0 for value in values)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": []}, "non-empty"),
        ({"layers": {"x": -1.0}}, ">= 0"),
        ({"layers": {"x": 0.0}}, "above 0"),
        ({"layers": ["x"], "normalize": "absolute"}, "normalize"),
        ({"layers": ["x"], "ridge": -1e-4}, "ridge"),
        ({"layers": ["x"], "iterations": 0}, "iterations"),
    ],
)
def test_bad_options_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        W2Loss(**options)


# -- in a run ---------------------------------------------------------------------------------


def test_the_recipe_validator_checks_normalize_and_ridge(tmp_path):
    data = run_recipe(tmp_path, {"name": "w2", "layers": ["relu1_1"], "normalize": "relativ", "ridge": "small"})
    with pytest.raises(RecipeError) as error:
        stylefw.run(data, save=False)
    text = str(error.value)
    assert "losses[1].normalize" in text and "relative" in text
    assert "losses[1].ridge" in text


def test_a_run_with_content_and_w2_lowers_the_loss(tmp_path):
    assert_the_run_lowers(run_recipe(tmp_path, {"name": "w2", "weight": 10.0, "layers": ["relu1_1", "relu2_1", "relu3_1"]}))


def assert_the_run_lowers(data: dict) -> None:
    """The run's style loss (``losses[1]``) ends at most 0.8 of where it began, and so does its total, finitely."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StylefwWarning)  # random backbone weights, on purpose
        losses = stylefw.run(data, save=False).losses
    name = data["losses"][1]["name"]
    assert all(math.isfinite(step["total"]) for step in losses)
    assert losses[-1][name] < 0.8 * losses[0][name]
    assert losses[-1]["total"] < losses[0]["total"]


def run_recipe(tmp_path: Path, w2: dict, content: dict | None = None) -> dict:
    """40 px, random VGG-19, 8 Adam steps: the content is skimage's cat, the style its coffee cup; ``w2`` is the
    style loss's entry (or another style loss's), ``content`` the content loss's, plain at relu2_1 if not given."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (a test extra) ships the photos")
    paths = {}
    for name in ("chelsea", "coffee"):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(getattr(skimage_data, name)()).save(paths[name])
    return {
        "content": str(paths["chelsea"]), "style": str(paths["coffee"]), "size": 40, "steps": 8, "seed": 0,
        "device": "cpu", "init": "content", "backbone": {"name": "vgg19", "weights": "random"},
        "losses": [content or {"name": "content", "weight": 1.0, "layers": ["relu2_1"]}, w2],
        "optimizer": {"name": "adam", "lr": 0.05},
    }
