"""memory: checkpoint: the backbone recomputes its activations between the layers the losses read, in the
backward pass, instead of keeping them; the gradient and the run are the same, and a step holds far less."""

from __future__ import annotations

import warnings

import pytest
import torch

import stylefw
import stylefw.plugins.losses
from stylefw.contracts import StepEvent
from stylefw.errors import RecipeError
from stylefw.plugins.vgg import VGG19
from stylefw.recipe import recipe_from_dict
from stylefw.registry import Registry

from test_stages import recipe

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]  # vangogh.yaml's


def vgg19(checkpointing: bool, dtype: torch.dtype = torch.float32) -> VGG19:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights, on purpose
        vgg = VGG19(weights="random").to(dtype)
    vgg.truncate("relu5_1")
    vgg.checkpointing = checkpointing
    return vgg.requires_grad_(False).eval()


def image_gradient(checkpointing: bool) -> torch.Tensor:
    image = torch.rand((1, 3, 64, 80), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    image.requires_grad_(True)
    features = vgg19(checkpointing, torch.float64)(image, LAYERS)
    sum((value - value.mean()).pow(2).mean() for value in features.values()).backward()
    return image.grad


def test_recomputing_gives_the_same_gradient():
    kept, recomputed = image_gradient(False), image_gradient(True)
    assert torch.allclose(recomputed, kept, rtol=1e-6, atol=1e-6 * float(kept.abs().max()))


def bytes_held_per_pixel(checkpointing: bool, height: int = 96, width: int = 128) -> float:
    """What a forward leaves for the backward pass: every tensor autograd saved, and the features returned
    (the losses save those), each storage counted once."""
    image = torch.rand((1, 3, height, width)).requires_grad_(True)
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        features = vgg19(checkpointing)(image, LAYERS)
    for value in features.values():
        storages[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes()
    return sum(storages.values()) / (height * width)


def test_a_checkpointed_step_holds_at_most_0_7_kB_a_pixel_in_fp32():
    assert bytes_held_per_pixel(True) <= 700
    assert bytes_held_per_pixel(False) > 1500  # what it holds otherwise: the measure sees the difference


def test_a_run_with_memory_checkpoint_has_the_same_trace(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = stylefw.run(recipe(tmp_path), save=False)
        recomputed = stylefw.run(recipe(tmp_path, memory="checkpoint"), save=False)
    assert recomputed.recipe.memory == "checkpoint" and recomputed.recipe.data["memory"] == "checkpoint"
    assert [step["total"] for step in recomputed.losses] == pytest.approx([step["total"] for step in kept.losses],
                                                                          rel=1e-6)


class Plain(torch.nn.Module):
    """A backbone without the checkpointing switch."""

    layer_names = ("relu1_1",)

    def forward(self, image, layers):
        return {"relu1_1": image}


def plain_recipe(tmp_path, factory) -> tuple[dict, Registry]:
    """A recipe asking ``memory: checkpoint`` of the backbone ``factory`` builds, and a registry holding it."""
    registry = Registry()
    registry.add("backbone", "plain", factory, plugin="test")
    registry.add("loss", "content", stylefw.plugins.losses.ContentLoss, plugin="test")
    registry.add("optimizer", "adam", torch.optim.Adam, plugin="test")
    data = {**recipe(tmp_path), "scales": 1, "backbone": {"name": "plain"}, "memory": "checkpoint",
            "losses": [{"name": "content", "layers": ["relu1_1"]}]}
    return data, registry


REFUSAL = ["memory: backbone 'plain' cannot recompute its activations (it has no 'checkpointing' switch); "
           "use memory: keep"]


def test_a_backbone_without_the_switch_is_refused_at_memory(tmp_path):
    data, registry = plain_recipe(tmp_path, Plain)
    with pytest.raises(RecipeError) as error:
        recipe_from_dict(data, registry=registry)
    assert [str(problem) for problem in error.value.problems] == REFUSAL


def test_a_backbone_built_by_a_function_is_judged_once_built(tmp_path):
    """A factory that is a function says nothing about its backbones: validation lets the recipe through,
    and the run refuses the built backbone that lacks the switch, at the same key, before any step."""
    def plain(**options):
        return Plain()

    plain.layer_names = Plain.layer_names
    data, registry = plain_recipe(tmp_path, plain)
    assert recipe_from_dict(data, registry=registry).memory == "checkpoint"
    steps = []
    with pytest.raises(RecipeError) as error:
        stylefw.run(data, registry=registry, save=False, on_event=steps.append)
    assert [str(problem) for problem in error.value.problems] == REFUSAL
    assert not any(isinstance(event, StepEvent) for event in steps)
