"""``precision``: the backbone under bf16 autocast with everything else in float32, TF32 on CUDA, fp16 refused."""

from __future__ import annotations

import warnings

import pytest
import torch

import stylefw
from stylefw.errors import RecipeError
from stylefw.engine.precision import Autocast, matmul_precision
from stylefw.plugins.vgg import VGG19
from stylefw.recipe import recipe_from_dict

from test_tiling import STYLE_LAYERS, small_recipe


@pytest.mark.parametrize("value", ["fp16", "half"])
def test_fp16_is_refused_with_the_reason(tmp_path, value):
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(small_recipe(tmp_path, precision=value))
    (problem,) = caught.value.problems
    assert problem.path == "precision" and "overflow" in problem.message and "use bf16" in problem.message


def test_an_unknown_precision_names_the_choices(tmp_path):
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(small_recipe(tmp_path, precision="fp64"))
    assert caught.value.problems[0].path == "precision" and "bf16" in caught.value.problems[0].message


@pytest.fixture(scope="module")
def vgg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = VGG19(weights="random")
    backbone.truncate("relu5_1")
    return backbone


def test_bf16_runs_the_convolutions_in_bf16_and_hands_back_float32(vgg):
    image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    wrapped = Autocast(vgg)
    with torch.no_grad():
        exact, rounded = vgg(image, STYLE_LAYERS), wrapped(image, STYLE_LAYERS)
    for layer in STYLE_LAYERS:
        assert rounded[layer].dtype == torch.float32
        assert not torch.equal(rounded[layer], exact[layer])  # it did run in bf16
        assert float((rounded[layer] - exact[layer]).norm() / exact[layer].norm()) < 0.02
    # what tiling and layer_fade ask of the backbone, it still answers
    assert (wrapped.stride("relu5_1"), wrapped.receptive_field("relu5_1")) == (16, 156)
    assert wrapped.layer_names == vgg.layer_names


def test_a_bf16_run_follows_the_fp32_curve_with_the_image_in_float32(tmp_path):
    images = []

    def keep(event):
        if isinstance(event, stylefw.contracts.StepEvent) and event.step == 1:
            images.append(event.image())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # bf16 convolutions are slow on a CPU: 20 steps at 112 px take a minute here (40 at 128 px took seven).
        # The curves part by 0.5% at most; by 1.2% at 96 px and 3.9% at 64, where the features are few.
        exact = stylefw.run(small_recipe(tmp_path, steps=20, size=112), save=False)
        rounded = stylefw.run(small_recipe(tmp_path, steps=20, size=112, precision="bf16"), save=False, on_event=keep)
    differences = [abs(a.loss - b.loss) / a.loss for a, b in zip(exact.trace, rounded.trace)]
    assert max(differences) < 0.02 and all(step.loss == step.loss for step in rounded.trace)
    assert differences != [0.0] * len(differences)
    assert images[0].dtype == torch.float32


def test_tf32_is_set_for_the_run_and_put_back():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with matmul_precision("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with matmul_precision("fp32"):  # cuDNN would use TF32 by default; fp32 means fp32
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_precision_is_recorded_and_read_back(tmp_path):
    recipe = recipe_from_dict(small_recipe(tmp_path, precision="bf16"))
    assert recipe.precision == "bf16" and recipe.data["precision"] == "bf16"
    assert recipe_from_dict(small_recipe(tmp_path)).data["precision"] == "fp32"


def test_a_compiled_backbone_gives_the_same_run(tmp_path):
    """``compile: true`` on the CPU needs a C++ compiler for torch's inductor; the numbers must not change."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler, and there is none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = stylefw.run(small_recipe(tmp_path, steps=3, scales=[{"size": 96}, {"size": 128}]), save=False)
        fast = stylefw.run(small_recipe(tmp_path, steps=3, scales=[{"size": 96}, {"size": 128}], compile=True),
                           save=False)
    assert [step.loss for step in fast.trace] == pytest.approx([step.loss for step in plain.trace], rel=1e-4)


@pytest.mark.parametrize("padding", ["replicate", "reflect"])
def test_compiled_edge_padding_gives_the_eager_gradient(padding):
    """torch's compiled backward of edge padding gets its strides wrong on the CPU; conv1_1 pads by
    concatenation while compiling, which must give the same features and gradient."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler, and there is none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = VGG19(weights="random", first_padding=padding)
    backbone.truncate("relu2_1")
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0), requires_grad=True)
    results = []
    for run in (backbone, torch.compile(backbone, dynamic=False)):
        features = run(image, ["relu1_1", "relu2_1"])
        (features["relu1_1"].sum() + features["relu2_1"].square().sum()).backward()
        results.append((features["relu2_1"].detach(), image.grad))
        image.grad = None
    (eager, eager_gradient), (fast, fast_gradient) = results
    assert torch.allclose(fast, eager, rtol=1e-5, atol=1e-5)
    assert float((fast_gradient - eager_gradient).abs().max() / eager_gradient.abs().max()) < 1e-5
