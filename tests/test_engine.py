"""The optimisation loop: targets, the image, the loss, the optimizers, determinism and Ctrl-C."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylefw
import stylefw.engine.stages
import stylefw.engine.session
import stylefw.engine.inputs
import stylefw.engine.optimise
from stylefw.cli import main
from stylefw.engine.optimise import compute_targets, initial_image
from stylefw.errors import RunError
from stylefw.plugins.losses import TVLoss
from stylefw.plugins.vgg import VGG19

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose


def write_image(path: Path, seed: int, saturated: bool = False) -> str:
    """A seeded 40×32 test image: colour gradients plus noise, or with ``saturated`` pure 0/255 stripes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:40]
    if saturated:
        array = np.stack([(x // 3) % 2, (y // 2) % 2, rng.random((32, 40)) > 0.5], -1) * 255.0
    else:
        array = np.stack([x / 39, y / 31, (x + y) / 70], -1) * 200 + rng.random((32, 40, 3)) * 55
    Image.fromarray(array.astype(np.uint8)).save(path)
    return str(path)


def recipe(tmp_path: Path, **changes) -> dict:
    """A small, fast recipe on generated images; ``changes`` replace top-level keys."""
    data = {
        "content": write_image(tmp_path / "content.png", 1),
        "style": write_image(tmp_path / "style.png", 2, saturated=True),
        "size": 32, "steps": 3, "seed": 0, "device": "cpu", "output": str(tmp_path / "out.png"),
        "backbone": {"name": "vgg19", "weights": "random"},
        "losses": [{"name": "content", "weight": 1.0, "layers": ["relu2_1"]},
                   {"name": "gram", "weight": 1e4, "layers": ["relu1_1", "relu2_1"]},
                   {"name": "tv", "weight": 0.1}],
        "optimizer": {"name": "adam", "lr": 0.05},
    }
    return {**data, **changes}


class Spy:
    """Wraps the engine's ``build_backbone`` and ``optimise`` to see the backbone's calls and the optimised image."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[bool] = []  # one entry per backbone forward: was grad enabled?
        self.image: torch.Tensor | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        build, optimise = stylefw.engine.session.build_backbone, stylefw.engine.stages.optimise

        def spy_build(*args, **kwargs):
            backbone = build(*args, **kwargs)
            backbone.register_forward_pre_hook(lambda module, inputs: self.calls.append(torch.is_grad_enabled()))
            return backbone

        def spy_optimise(image, backbone, losses, weights, labels, optimizer, *args, **kwargs):
            self.image, self.optimizer = image, optimizer
            return optimise(image, backbone, losses, weights, labels, optimizer, *args, **kwargs)

        monkeypatch.setattr(stylefw.engine.session, "build_backbone", spy_build)
        monkeypatch.setattr(stylefw.engine.stages, "optimise", spy_optimise)


def test_targets_are_computed_once_without_grad_then_one_forward_per_step(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    style = write_image(tmp_path / "second.png", 3)
    calls_at_step = []
    data = recipe(tmp_path, steps=4, style=[{"image": str(tmp_path / "style.png")}, {"image": style}])
    stylefw.run(data, on_step=lambda step: calls_at_step.append(len(spy.calls)), save=False)
    # content and two styles under no_grad, then exactly one forward per Adam step
    assert spy.calls[:3] == [False, False, False]
    assert calls_at_step == [4, 5, 6, 7]
    assert all(spy.calls[3:])


def test_targets_are_detached():
    vgg = VGG19(weights="random")
    content = torch.rand(1, 3, 16, 16, requires_grad=True)
    targets = compute_targets(vgg, ["conv1_1", "relu2_1"], content, [content * 0.5], [1.0])
    tensors = list(targets.content.values()) + [t for features, _ in targets.styles for t in features.values()]
    assert len(tensors) == 4
    assert all(t.grad_fn is None and not t.requires_grad for t in tensors)


def test_the_image_is_one_leaf_kept_in_the_unit_range(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    ranges = []
    # saturated content and a large step: unclamped, Adam would push pixels beyond 0 and 1
    data = recipe(tmp_path, content=write_image(tmp_path / "sat.png", 4, saturated=True),
                  optimizer={"name": "adam", "lr": 0.5})
    stylefw.run(data, on_step=lambda step: ranges.append((float(spy.image.detach().min()), float(spy.image.detach().max()))),
                save=False)
    assert spy.image.is_leaf and spy.image.requires_grad
    assert [p for group in spy.optimizer.param_groups for p in group["params"]] == [spy.image]
    assert ranges == [(0.0, 1.0)] * 3


@pytest.mark.parametrize("init", ["content", "noise", "style"])
def test_initial_image(init):
    torch.manual_seed(0)
    content, style = torch.rand(1, 3, 12, 20), torch.rand(1, 3, 30, 30)
    image = initial_image(init, content, style)
    assert image.is_leaf and image.requires_grad and image.is_contiguous()
    image = image.detach()
    assert image.shape == content.shape and 0 <= float(image.min()) and float(image.max()) <= 1
    assert torch.equal(image, content) == (init == "content")
    if init == "style":
        assert float(image.mean()) == pytest.approx(float(style.mean()), abs=0.02)


# rates that change the picture without throwing it out of [0, 1] (which fails the run: test_divergence.py)
@pytest.mark.parametrize("optimizer", [{"name": "adam", "lr": 0.05}, {"name": "sgd", "lr": 0.001},
                                       {"name": "lbfgs", "lr": 0.01, "max_iter": 4}])
def test_every_optimizer_steps_and_the_total_is_the_weighted_sum(tmp_path, optimizer):
    result = stylefw.run(recipe(tmp_path, steps=2, optimizer=optimizer), save=False)
    assert len(result.trace) == 2
    for step in result.trace:
        assert math.isfinite(step.loss) and step.loss > 0
        assert step.loss == pytest.approx(sum(term.weighted for term in step.terms), rel=1e-5)
        assert [term.label for term in step.terms] == ["content", "gram", "tv"]
    content = stylefw.engine.inputs.load_inputs(result.recipe)[0]
    assert not torch.equal(result.tensor, content), "the image did not change"


def test_the_loss_goes_down_when_matching_a_style_from_noise(tmp_path):
    data = recipe(tmp_path, init="noise", steps=6, losses=[{"name": "gram", "weight": 1e4, "layers": ["relu1_1"]}])
    totals = [step.loss for step in stylefw.run(data, save=False).trace]
    assert all(later < earlier for earlier, later in zip(totals, totals[1:])), totals


def test_a_seed_reproduces_a_run_bitwise(tmp_path):
    runs = [stylefw.run(recipe(tmp_path, init="noise", seed=seed), save=False) for seed in (5, 5, 6)]
    assert runs[0].losses == runs[1].losses
    assert torch.equal(runs[0].tensor, runs[1].tensor)
    assert runs[0].losses != runs[2].losses


def test_a_nan_loss_raises_run_error(tmp_path, monkeypatch):
    monkeypatch.setattr(TVLoss, "__call__", lambda self, features, image: image.sum() * float("nan"))
    with pytest.raises(RunError, match="the loss became nan at step 1"):
        stylefw.run(recipe(tmp_path), save=False)


def interrupt_at(number: int):
    def on_step(step) -> None:
        if step.step == number:
            raise KeyboardInterrupt

    return on_step


def assert_interrupted_output(output: Path, steps_done: int | None = None) -> dict:
    with Image.open(output) as image:
        image.verify()
    sidecar = json.loads(Path(f"{output}.json").read_text(encoding="utf-8"))
    assert sidecar["interrupted"] is True
    assert len(sidecar["trace"]) == sidecar["steps_done"] >= 1
    if steps_done is not None:
        assert sidecar["steps_done"] == steps_done
    return sidecar


def test_ctrl_c_returns_the_image_so_far_and_saves_it(tmp_path):
    result = stylefw.run(recipe(tmp_path, steps=5), on_step=interrupt_at(2))
    assert result.interrupted and len(result.trace) == 2
    assert result.output == tmp_path / "out.png"
    assert_interrupted_output(result.output, steps_done=2)


def test_cli_exits_130_on_ctrl_c_and_keeps_the_output(tmp_path, monkeypatch, capsys):
    import yaml

    from stylefw.plugins.progress import PlainRenderer

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path, steps=5)), encoding="utf-8")
    plain_step = PlainRenderer.step

    def step(self, record) -> None:
        plain_step(self, record)
        interrupt_at(2)(record)

    monkeypatch.setattr(PlainRenderer, "step", step)
    assert main(["recipe", str(path), "--progress", "plain", "--log-every", "1"]) == 130
    assert "interrupted at step 2/5" in capsys.readouterr().err
    assert_interrupted_output(tmp_path / "out.png", steps_done=2)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child process on Windows")
def test_a_real_sigint_stops_the_cli_with_130_and_a_valid_output(tmp_path):
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)), encoding="utf-8")
    command = [sys.executable, "-c", "from stylefw.cli import entry; entry()", "recipe", str(path),
               "--size", "64", "--steps", "100000", "--progress", "plain", "--log-every", "1"]
    # a shell that starts the suite in the background (cmd &) ignores SIGINT, and children inherit that:
    # give the CLI the disposition a terminal user's process has
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(120, process.kill)  # never hang the suite if no step line comes
    watchdog.start()
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("step "):
                break
        assert lines and lines[-1].startswith("step "), f"no step line: {lines} {process.stderr.read()}"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr
    sidecar = assert_interrupted_output(tmp_path / "out.png")
    assert sidecar["steps_done"] < 100000


class Pull:
    """A loss pulling every pixel to 1.5, past the box: the clamped optimum is the all-ones image."""

    layers: list[str] = []

    def __call__(self, features, image):
        return (image - 1.5).pow(2).sum()


@pytest.mark.parametrize(("name", "options"), [("adam", {"lr": 0.3}), ("lbfgs", {"lr": 1.0, "max_iter": 20})])
def test_losses_see_the_clamped_image_and_only_one_evaluation_steps_are_projected(name, options):
    image = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    optimizer = {"adam": torch.optim.Adam, "lbfgs": torch.optim.LBFGS}[name]([image], **options)
    steps = list(stylefw.engine.optimise.optimise(image, None, [Pull()], [1.0], ["pull"], optimizer, 3, []))
    losses = [step.loss for step in steps]
    assert losses == sorted(losses, reverse=True)  # never rises
    assert losses[-1] == pytest.approx(0.25 * 48)  # the loss of the clamped image: 48 pixels × (1 - 1.5)²
    if name == "adam":
        assert float(image.max()) <= 1.0  # projected gradient descent
    else:
        # L-BFGS's point is left where its line search put it: projecting would break its curvature history
        assert float(image.max()) > 1.0


def chroma(image: torch.Tensor, space: str) -> torch.Tensor:
    from stylefw.engine.color import rgb_to_lab, rgb_to_yiq, rgb_to_yuv

    return {"yiq": rgb_to_yiq, "yuv": rgb_to_yuv, "lab": rgb_to_lab}[space](image)[:, 1:]


@pytest.mark.parametrize(("color", "space"), [("luminance", "yiq"), ({"mode": "swap", "space": "yuv"}, "yuv"),
                                              ({"mode": "swap"}, "lab")])
def test_colour_control_keeps_the_contents_chroma(tmp_path, color, space):
    from stylefw.engine.image import load_image, resize_long_edge, to_tensor

    data = recipe(tmp_path, color=color)
    plain = stylefw.run(recipe(tmp_path), save=False).tensor
    result = stylefw.run(data, save=False)
    content = to_tensor(resize_long_edge(load_image(data["content"]), data["size"]))
    # where clamping to [0, 1] did not change the pixel, the chroma is exactly the content's
    inside = ((result.tensor > 1e-3) & (result.tensor < 1 - 1e-3)).all(1, keepdim=True).expand(-1, 2, -1, -1)
    assert inside.float().mean() > 0.5
    assert torch.allclose(chroma(result.tensor, space)[inside], chroma(content, space)[inside], atol=1e-4)
    assert not torch.allclose(chroma(plain, space), chroma(content, space), atol=1e-2)  # without it, chroma moves


def test_colour_inputs_grey_for_luminance_and_recoloured_styles_for_histogram():
    from stylefw.engine.color import color_inputs, color_statistics, luminance

    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 24, 24, generator=generator) * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)
    style = torch.rand(1, 3, 20, 28, generator=generator)
    grey_content, (grey_style,) = color_inputs("luminance", content, [style])
    assert torch.equal(grey_content[:, 0], grey_content[:, 1]) and torch.equal(grey_style[:, 0], grey_style[:, 2])
    assert float(luminance(grey_style).mean()) == pytest.approx(float(luminance(content).mean()), abs=1e-5)
    assert float(luminance(grey_style).std()) == pytest.approx(float(luminance(content).std()), rel=1e-3)
    same, (recoloured,) = color_inputs("histogram", content, [style], method="sym")
    assert same is content
    for got, want in zip(color_statistics(recoloured), color_statistics(content)):
        assert torch.allclose(got, want, atol=1e-4)


def test_each_images_features_are_computed_only_where_a_loss_that_reads_it_looks():
    from types import SimpleNamespace

    from stylefw.engine.optimise import target_layers

    content = SimpleNamespace(layers=["relu4_2"], reads=("content",))
    gram = SimpleNamespace(layers=["relu1_1", "relu2_1"], reads=("styles",))
    tv = SimpleNamespace(layers=[], reads=())
    undeclared = SimpleNamespace(layers=["relu3_1"])  # a plugin loss that does not say: it gets both
    assert target_layers([content, gram, tv]) == (["relu4_2"], ["relu1_1", "relu2_1"])
    assert target_layers([content, gram, undeclared]) == (["relu4_2", "relu3_1"], ["relu1_1", "relu2_1", "relu3_1"])
