"""``--plot`` and ``stylefw plot``: an output's loss curves, from its sidecar, as SVG or PNG."""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from stylefw.cli import main

from test_stages import write_image

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose


@pytest.fixture
def recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two stages (24 then 32 px) of 3 steps each, writing out.png."""
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "content.png", 40, 30, 1)
    write_image(tmp_path / "style.png", 32, 32, 2)
    data = {"content": "content.png", "style": "style.png", "size": 32, "device": "cpu", "output": "out.png",
            "scales": [{"size": 24, "steps": 3}, {"size": 32, "steps": 3}],
            "backbone": {"name": "vgg19", "weights": "random"},
            "losses": [{"name": "content", "layers": ["relu2_1"]},
                       {"name": "gram", "weight": 1000, "layers": ["relu1_1", "relu2_1"]}],
            "optimizer": {"name": "adam", "lr": 0.05}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path / "recipe.yaml"


def test_plot_on_a_run_draws_every_curve_and_the_stage_boundary(recipe, tmp_path):
    pytest.importorskip("matplotlib", reason="needs the plot extra: pip install 'stylefw[plot]'")
    assert main(["recipe", str(recipe), "--plot", "-q"]) == 0
    svg = tmp_path / "out.png.losses.svg"
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    # matplotlib draws text as glyph paths, each preceded by an SVG comment holding the string
    written = svg.read_text(encoding="utf-8")
    for words in ("total", "content (weighted)", "gram (weighted)", "stage 2 · 32 px", "out.png"):
        assert f"<!-- {words} -->" in written, words
    lines = [element for element in root.iter() if element.get("id", "").startswith("line2d")]
    assert len(lines) >= 4  # three curves and the stage line


def test_stylefw_plot_redraws_from_a_sidecar_as_png(recipe, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="needs the plot extra: pip install 'stylefw[plot]'")
    assert main(["recipe", str(recipe), "-q"]) == 0
    assert not (tmp_path / "out.png.losses.svg").exists()
    assert main(["plot", "out.png.json", "--out", "curves.png"]) == 0
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert "wrote curves.png" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "words"), [
    (None, "cannot read missing.json"),
    ("not json", "is not JSON"),
    (json.dumps({"recipe": {}}), "is not a stylefw output's sidecar: it has no 'trace'"),
])
def test_a_bad_sidecar_exits_2_naming_it(tmp_path, monkeypatch, capsys, content, words):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path("missing.json").write_text(content, encoding="utf-8")
    assert main(["plot", "missing.json"]) == 2
    error = capsys.readouterr().err
    assert words in error and "Traceback" not in error


def test_without_matplotlib_a_run_asked_to_plot_does_not_start(recipe, tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "matplotlib" else real_find_spec(name, *args))
    assert main(["recipe", str(recipe), "--plot"]) == 2
    error = capsys.readouterr().err
    assert "plotting needs matplotlib" in error and "stylefw[plot]" in error
    assert not (tmp_path / "out.png").exists()
