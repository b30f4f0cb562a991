"""Contract tests over every registered backbone, loss, optimizer and scheduler, installed plugins included."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import stylefw
from stylefw import hookspecs
from stylefw.contracts import Backbone, BackboneFactory, Loss, Scheduler
from stylefw.engine import Targets
from stylefw.engine.build import build_backbone
from stylefw.plugin_manager import get_plugin_manager
from stylefw.recipe import recipe_from_dict
from stylefw.registry import build_registry, default_registry

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "stylefw_spec"))

# Options that build each known loss; layers are vgg19's, so losses are tested on real features.
LOSS_OPTIONS = {
    "content": {"layers": ["relu1_1", "relu2_1"]},
    "gram": {"layers": {"relu1_1": 1.0, "relu2_1": 0.5}},
    "tv": {},
    "moments": {"layers": ["relu1_1", "relu2_1"]},
    "w2": {"layers": {"relu1_1": 1.0, "relu2_1": 0.5}},
    "sliced": {"layers": {"relu1_1": 1.0, "relu2_1": 0.5}, "directions": 8},
}
OPTIMIZER_OPTIONS = {"adam": {"lr": 0.1}, "sgd": {"lr": 0.1}, "lbfgs": {}, "signsgd": {"lr": 0.1}}
SCHEDULER_OPTIONS = {"none": {}, "step": {"every": 10, "gamma": 0.5}, "exponential": {"gamma": 0.95}, "cosine": {}}


def registered(kind: str) -> list:
    return [pytest.param(entry, id=entry.name) for entry in default_registry().entries(kind)]


def image(seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- backbones --------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", registered("backbone"))
def test_backbone_names_its_layers_without_building(entry, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("reading layer_names built a module")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)
    assert isinstance(entry.factory, BackboneFactory)
    names = list(entry.factory.layer_names)
    aliases = dict(getattr(entry.factory, "layer_aliases", {}) or {})
    assert names and all(isinstance(name, str) for name in names)
    assert len(set(names)) == len(names), "layer_names has duplicates"
    assert set(aliases.values()) <= set(names), "an alias points at no layer"


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("entry", registered("backbone"))
def test_backbone_builds_and_returns_every_layer(entry, pooling):
    backbone = entry.factory(weights="random", pooling=pooling)
    assert isinstance(backbone, torch.nn.Module) and isinstance(backbone, Backbone)
    layers = list(entry.factory.layer_names)
    features = backbone(image(0), layers)
    assert set(features) == set(layers)
    for name, value in features.items():
        assert value.dim() == 4 and value.shape[0] == 1, name
        assert torch.isfinite(value).all(), name


@pytest.mark.parametrize("entry", registered("backbone"))
def test_backbone_truncated_still_returns_the_layers_up_to_the_cut(entry):
    backbone = entry.factory(weights="random", pooling="max")
    if not hasattr(backbone, "truncate"):
        pytest.skip(f"{entry.name} has no truncate(); it is optional")
    first, second = entry.factory.layer_names[:2]
    before = backbone(image(0), [first, second])
    backbone.truncate(second)
    after = backbone(image(0), [first, second])
    assert set(after) == {first, second}
    assert all(torch.equal(before[name], after[name]) for name in after)


class Eager(torch.nn.Module):
    """A backbone its factory leaves in training mode with gradients on, which the contract allows."""

    layer_names = ("conv", "dropout")

    def __init__(self, *, weights: str = "random", pooling: str = "max") -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        conv = self.conv(image)
        return {"conv": conv, "dropout": self.dropout(conv)}


class EagerPlugin:
    @stylefw.hookimpl
    def register_backbones(self, register):
        register("eager", Eager)


def test_the_engine_freezes_every_backbone_and_puts_it_in_eval_mode(tmp_path):
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(EagerPlugin(), name="eager-plugin")
    registry = build_registry(manager)
    for name in ("content.png", "style.png"):
        Image.new("RGB", (16, 16), "gray").save(tmp_path / name)
    recipe = recipe_from_dict({"content": "content.png", "style": "style.png", "size": 16, "steps": 1,
                               "backbone": {"name": "eager", "weights": "random"},
                               "losses": [{"name": "content", "layers": ["dropout"]}]},
                              base_dir=tmp_path, registry=registry)
    assert Eager().training and all(p.requires_grad for p in Eager().parameters())
    backbone = build_backbone(recipe, registry, torch.device("cpu"))
    assert not backbone.training
    assert not [name for name, p in backbone.named_parameters() if p.requires_grad]
    picture = image(0, 16)
    assert torch.equal(backbone(picture, ["dropout"])["dropout"], backbone(picture, ["dropout"])["dropout"])


# -- losses -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg19():
    backbone = default_registry().get("backbone", "vgg19").factory(weights="random")
    backbone.truncate("relu2_1")
    return backbone


def loss_options(entry) -> dict:
    if entry.name in LOSS_OPTIONS:
        return LOSS_OPTIONS[entry.name]
    parameters = inspect.signature(entry.factory).parameters.values()
    if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return {}
    pytest.skip(f"no example options for loss '{entry.name}' from {entry.plugin}; add them to LOSS_OPTIONS")


@pytest.mark.parametrize("entry", registered("loss"))
def test_loss_is_a_differentiable_scalar(entry, vgg19):
    loss = entry.factory(**loss_options(entry))
    assert isinstance(loss, Loss)
    layers = list(loss.layers)
    if not set(layers) <= set(vgg19.layer_names):
        pytest.skip(f"loss '{entry.name}' reads layers vgg19 lacks: {layers}")
    extract = lambda picture: vgg19(picture, layers) if layers else {}  # noqa: E731
    with torch.no_grad():
        loss.prepare(Targets(extract(image(1)), [(extract(image(2)), 0.7), (extract(image(3, 24)), 0.3)]))
    picture = image(4).requires_grad_(True)
    value = loss(extract(picture), picture)
    assert isinstance(value, torch.Tensor) and value.dim() == 0
    assert math.isfinite(value.item())
    value.backward()
    assert picture.grad is not None and torch.isfinite(picture.grad).all()
    assert picture.grad.abs().sum() > 0


# -- optimizers -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", registered("optimizer"))
def test_optimizer_steps_with_a_closure_and_changes_the_parameter(entry):
    param = torch.tensor([1.0, -2.0], requires_grad=True)
    optimizer = entry.factory([param], **OPTIMIZER_OPTIONS.get(entry.name, {}))
    assert isinstance(optimizer, torch.optim.Optimizer)
    evaluated = []

    def closure():
        optimizer.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        evaluated.append(loss.item())
        return loss

    returned = optimizer.step(closure)
    assert evaluated, "step() never called the closure"
    assert isinstance(returned, torch.Tensor) and returned.item() == evaluated[0], "step() must return the loss"
    assert not torch.equal(param.detach(), torch.tensor([1.0, -2.0]))


# -- schedulers -------------------------------------------------------------------------------


def scheduler_options(entry) -> dict:
    if entry.name in SCHEDULER_OPTIONS:
        return SCHEDULER_OPTIONS[entry.name]
    parameters = list(inspect.signature(entry.factory).parameters.values())[1:]
    if all(p.default is not p.empty or p.name == "total_steps" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
           for p in parameters):
        return {}
    pytest.skip(f"no example options for scheduler '{entry.name}' from {entry.plugin}; add them to SCHEDULER_OPTIONS")


@pytest.mark.parametrize("entry", registered("scheduler"))
def test_scheduler_gives_every_step_of_a_run_a_finite_positive_rate(entry):
    param = torch.tensor([1.0, -2.0], requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = entry.factory(optimizer, total_steps=100, **scheduler_options(entry))
    assert isinstance(scheduler, Scheduler)

    def closure():
        optimizer.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        return loss

    rates = []
    for _ in range(100):  # as the engine does: the optimizer's step, then the schedule's
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step(closure)
        scheduler.step()
    assert all(math.isfinite(rate) and rate > 0 for rate in rates), rates


# -- hooks ------------------------------------------------------------------------------------


def test_the_hookspecs_are_found():
    assert HOOKS == ["on_download", "on_run_abort", "on_run_end", "on_run_finish", "on_run_start", "on_save",
                     "on_stage_start", "on_step", "register_backbones", "register_commands", "register_losses",
                     "register_optimizers", "register_schedulers"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert f"test_hook_{hook}" in defined


# test_docs.py checks that every hook is in the reference, with its docstring
