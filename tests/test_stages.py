"""Multi-scale runs: the stage plan, the image and Adam's state carried between stages, and the average."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylefw
import stylefw.engine.stages
from stylefw.plugins.optimizers import resize_adam_state
from stylefw.recipe import recipe_from_dict
from stylefw.contracts.scales import ScaleSpec, auto_sizes, plan
from stylefw.engine.stages import Average, plan_stages

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose


def write_image(path: Path, width: int, height: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x / width, y / height, rng.random((height, width))], -1) * 255
    Image.fromarray(array.astype(np.uint8)).save(path)
    return str(path)


def recipe(tmp_path: Path, **changes) -> dict:
    """A two-stage run, 24 then 48 px, on a 60×40 content image with random VGG weights."""
    return {
        "content": write_image(tmp_path / "content.png", 60, 40, 1),
        "style": write_image(tmp_path / "style.png", 64, 64, 2),
        "size": 48, "steps": 3, "seed": 0, "device": "cpu", "output": str(tmp_path / "out.png"),
        "scales": [{"size": 24, "steps": 2}, {"size": 48, "steps": 3}],
        "backbone": {"name": "vgg19", "weights": "random"},
        "losses": [{"name": "content", "layers": ["relu2_1"]}, {"name": "gram", "weight": 10, "layers": ["relu1_1"]}],
        "optimizer": {"name": "adam", "lr": 0.05},
        **changes,
    }


# -- the plan -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "min_size", "sizes"), [
    (512, 128, [128, 181, 256, 362, 512]),
    (1024, 128, [128, 181, 256, 362, 512, 724, 1024]),
    (600, 128, [128, 181, 256, 362, 600]),
    (520, 128, [128, 181, 256, 362, 520]),  # 512 would be a stage barely smaller than the last: dropped
    (200, 128, [128, 200]),
    (96, 128, [96]),
    (64, 32, [32, 45, 64]),
])
def test_auto_sizes_grow_by_root_two_and_end_at_the_size(size, min_size, sizes):
    assert auto_sizes(size, min_size) == sizes


def test_auto_runs_the_first_stage_twice_as_long_and_a_list_as_given():
    assert plan("auto", size=256, steps=50, min_size=128) == (ScaleSpec(128, 100), ScaleSpec(181, 50),
                                                              ScaleSpec(256, 50))
    assert plan("auto", size=100, steps=50, min_size=128) == (ScaleSpec(100, 50),)  # one stage: not doubled
    assert plan(1, size=256, steps=50, min_size=128) == (ScaleSpec(256, 50),)
    given = (ScaleSpec(100, 7), ScaleSpec(256, 3))
    assert plan(given, size=256, steps=50, min_size=128) == given


@pytest.mark.parametrize(("width", "height"), [(640, 480), (480, 640), (1000, 333), (512, 512), (300, 1200)])
def test_every_stage_keeps_the_contents_aspect_ratio(tmp_path, width, height):
    data = recipe(tmp_path, content=write_image(tmp_path / "c.png", width, height, 3), size=512, scales="auto")
    stages = plan_stages(recipe_from_dict(data), (width, height))
    assert [stage.size for stage in stages] == [128, 181, 256, 362, 512]
    for stage in stages:
        (rows, columns), (short, long) = stage.shape, sorted(stage.shape)
        assert long == stage.size and (rows > columns) == (height > width)
        # the short side is rounded to a whole pixel: off by at most half a pixel from the exact ratio
        assert abs(short / long - min(width, height) / max(width, height)) <= 0.5 / long + 1e-12


# -- Adam's state and the average ----------------------------------------------------------------


def test_adam_state_follows_the_resized_image():
    torch.manual_seed(0)
    sharp = torch.zeros(1, 3, 8, 8)
    sharp[..., ::2, ::2] = 1.0  # a checkerboard: bicubic resampling of it overshoots below 0
    state = {"step": torch.tensor(7.0), "exp_avg": sharp - 0.5, "exp_avg_sq": sharp}
    resized = resize_adam_state(state, (13, 11))
    assert resized["exp_avg"].shape == resized["exp_avg_sq"].shape == (1, 3, 13, 11)
    assert float(resized["exp_avg_sq"].min()) >= 0.0
    assert float(resized["step"]) == 7 and resized["step"] is not state["step"]
    # no overshoot: the first moment stays within the range it had, so no new wrong-way steps appear
    assert float(resized["exp_avg"].min()) >= -0.5 and float(resized["exp_avg"].max()) <= 0.5
    bicubic = torch.nn.functional.interpolate(sharp - 0.5, size=(13, 11), mode="bicubic", align_corners=False)
    assert float(bicubic.min()) < -0.5  # what bicubic resampling would have done


def spy_optimizers(monkeypatch) -> list[tuple[torch.Tensor, torch.optim.Optimizer]]:
    """Each stage's image and optimizer, as the run hands them to ``optimise``."""
    optimizers = []
    real = stylefw.engine.stages.optimise

    def spy(image, backbone, losses, weights, labels, optimizer, *args, **kwargs):
        optimizers.append((image, optimizer))
        return real(image, backbone, losses, weights, labels, optimizer, *args, **kwargs)

    monkeypatch.setattr(stylefw.engine.stages, "optimise", spy)
    return optimizers


def test_a_multi_scale_run_carries_adams_state_into_the_next_stage(tmp_path, monkeypatch):
    optimizers = spy_optimizers(monkeypatch)
    stylefw.run(recipe(tmp_path), save=False)
    (first_image, first), (second_image, second) = optimizers
    assert float(first.state[first_image]["step"]) == 2
    assert float(second.state[second_image]["step"]) == 2 + 3  # kept, then three more steps
    assert second.state[second_image]["exp_avg"].shape == second_image.shape == (1, 3, 32, 48)


def test_an_optimizer_without_resize_state_starts_afresh_at_each_stage(tmp_path, monkeypatch):
    optimizers = spy_optimizers(monkeypatch)
    stylefw.run(recipe(tmp_path, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9}), save=False)
    (_, first), (second_image, second) = optimizers
    assert first is not second and list(second.param_groups[0]["params"]) == [second_image]


def test_the_average_of_a_constant_image_is_that_image_at_every_step():
    image = torch.rand(1, 3, 5, 7)
    average = Average(0.99)
    for _ in range(20):
        average.update(image)
        torch.testing.assert_close(average.value(), image, rtol=1e-5, atol=1e-6)


def test_the_average_is_bias_corrected_as_the_formula_says():
    decay, values = 0.9, [0.1, 0.5, 0.2, 0.9, 0.4]
    average = Average(decay)
    for t, value in enumerate(values, 1):
        average.update(torch.full((1, 1, 1, 1), value))
        expected = (1 - decay) * sum(decay ** (t - i) * x for i, x in enumerate(values[:t], 1)) / (1 - decay**t)
        assert float(average.value()) == pytest.approx(expected, rel=1e-6)


def test_with_average_each_stage_delivers_and_continues_from_its_average(tmp_path, monkeypatch):
    starts = []
    real = stylefw.engine.stages.resize_image
    monkeypatch.setattr(stylefw.engine.stages, "resize_image", lambda image, shape: starts.append(image.clone()) or
                        real(image, shape))
    seen = []
    result = stylefw.run(recipe(tmp_path, average=0.9), save=False,
                         on_event=lambda event: seen.append(event.image().clone()) if hasattr(event, "image") else None)
    plain = stylefw.run(recipe(tmp_path), save=False)
    # the second stage started from stage 1's last picture, which was the average, not the last step's image
    torch.testing.assert_close(starts[0], seen[1])
    torch.testing.assert_close(result.tensor, seen[-1])
    assert not torch.equal(result.tensor, plain.tensor)


# -- the run ------------------------------------------------------------------------------------


def test_a_multi_scale_run_renders_each_stage_and_records_it(tmp_path):
    result = stylefw.run(recipe(tmp_path))
    assert result.image.size == (48, 32)
    assert [(step.stage, step.size, step.step) for step in result.trace] == [
        (1, 24, 1), (1, 24, 2), (2, 48, 1), (2, 48, 2), (2, 48, 3)]
    sidecar = json.loads(Path(f"{result.output}.json").read_text())
    assert [(entry["stage"], entry["size"], entry["step"]) for entry in sidecar["trace"]][1:3] == [(1, 24, 2), (2, 48, 1)]
    assert sidecar["steps_done"] == 5 and sidecar["stopped"] is None


def test_save_every_names_snapshots_by_stage_and_step(tmp_path):
    stylefw.run(recipe(tmp_path, save_every=2))
    names = sorted(path.name for path in tmp_path.glob("out*"))
    assert names == ["out.png", "out.png.json", "out.stage1.000002.png", "out.stage2.000002.png"]
    with Image.open(tmp_path / "out.stage1.000002.png") as first, Image.open(tmp_path / "out.stage2.000002.png") as second:
        assert (first.size, second.size) == ((24, 16), (48, 32))


def test_ctrl_c_in_a_stage_writes_that_stages_image_and_says_where(tmp_path):
    def interrupt(event) -> None:
        if type(event).__name__ == "StepEvent" and event.stage.index == 1 and event.step == 2:
            raise KeyboardInterrupt

    result = stylefw.run(recipe(tmp_path), on_event=interrupt)
    assert result.interrupted and result.image.size == (24, 16)
    sidecar = json.loads(Path(f"{result.output}.json").read_text())
    assert sidecar["stopped"] == {"reason": "interrupted", "stage": 1, "step": 2}
    assert sidecar["interrupted"] is True and sidecar["steps_done"] == 2


def test_style_images_upscaled_beyond_their_size_get_one_warning(tmp_path):
    data = recipe(tmp_path, style=[write_image(tmp_path / "s1.png", 20, 30, 4), write_image(tmp_path / "s2.png", 16, 8, 5)])
    with pytest.warns(stylefw.errors.StylefwWarning) as caught:
        stylefw.run(data, save=False)
    upscaled = [str(w.message) for w in caught if "upscaled" in str(w.message)]
    assert len(upscaled) == 1
    assert "s1.png (30 px)" in upscaled[0] and "s2.png (16 px)" in upscaled[0] and "48 px" in upscaled[0]


def test_a_list_of_scales_must_grow_to_the_size(tmp_path):
    with pytest.raises(stylefw.errors.RecipeError) as error:
        recipe_from_dict(recipe(tmp_path, scales=[{"size": 48}, {"size": 32}]))
    assert "scales[1].size: 32 is not larger than the stage before (48)" in str(error.value)
    assert "scales[1].size: the last stage renders the output, so its size must be the recipe's size (48)" in str(
        error.value)


def test_set_scales_auto_works_on_any_recipe():
    for name in stylefw.recipe.builtin_recipes():
        loaded = stylefw.load_recipe(name, ["scales=auto", "size=256", "min_size=128"])
        assert [stage.size for stage in loaded.stages] == [128, 181, 256]
        assert loaded.total_steps == 4 * loaded.steps
