"""The bad-input corpus (tests/badinputs): each input through ``main(argv)`` gives its exit code and message,
no traceback, and no file created, changed or deleted beyond the output it names."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import stylefw
from stylefw.cli import main

from badinputs import buggy_plugin

CORPUS = Path(__file__).parent / "badinputs"
TINY = {"content": "content.png", "style": "style.png", "size": 32, "backbone": {"name": "vgg19", "weights": "random"},
        "losses": [{"name": "content", "layers": ["relu2_1"]}, {"name": "tv", "weight": 1}],
        "optimizer": {"name": "adam", "lr": 0.05}, "steps": 2, "device": "cpu", "output": "out.png"}
# a protocol-0 pickle that calls builtins.print when unpickled: harmless even if it ever ran, and it must not
PICKLE = b"cbuiltins\nprint\n(S'this pickle ran'\ntR."
EXPECT = re.compile(r"^# expect: (\d+) (.*)$")


def recipe_cases() -> list[Any]:
    cases = []
    for path in sorted((CORPUS / "recipes").glob("*.yaml")):
        code, pattern = EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0]).groups()
        cases.append(pytest.param({"argv": ["validate", path.name], "copy": path, "exit": int(code),
                                   "pattern": pattern}, id=f"recipes/{path.stem}"))
    return cases


def listed_cases() -> list[Any]:
    cases = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
    return [pytest.param(case, id=f"{case['class']}/{case['id']}",
                         marks=[pytest.mark.skip(reason=f"slot for {case['slot']}")] if "slot" in case else [])
            for case in cases]


def make(path: Path, spec: str) -> None:
    kind, _, rest = spec.partition(" ")
    if kind == "png":
        width, height = map(int, rest.split("x"))
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)).save(path)
    elif kind == "truncated":
        make(path, "png 48x40")
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "text":
        path.write_text(rest, encoding="utf-8")
    elif kind == "bytes":
        path.write_bytes(bytes(int(byte, 16) for byte in rest.split()))
    elif kind == "dir":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "pickle":
        path.write_bytes(PICKLE)
    elif kind == "checkpoint":  # a checkpoint's header alone, from stylefw version ``rest``
        torch.save({"format": "stylefw-checkpoint", "stylefw": rest or stylefw.__version__}, path)
    elif kind == "checkpoint-cut":
        torch.save({"format": "stylefw-checkpoint", "image": torch.zeros(3, 8, 8)}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "tensor":  # a torch file, but not a checkpoint
        torch.save(torch.zeros(3), path)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of what it is: a file's bytes, a link's target, or a folder."""
    found = {}
    for path in root.rglob("*"):
        if path.is_symlink():
            found[str(path)] = "link " + str(path.readlink())
        elif path.is_dir():
            found[str(path)] = "dir"
        else:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path / "cache"))
    make(tmp_path / "content.png", "png 48x40")
    make(tmp_path / "style.png", "png 32x32")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the corpus must fail before any connection")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


class Signaller:
    """A plugin sending this process ``signum`` at step 2, as kill, a closed terminal or Ctrl-C would."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    @stylefw.hookimpl
    def on_step(self, event) -> None:
        if event.step == 2:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("case", recipe_cases() + listed_cases())
def test_bad_input(case: dict[str, Any], work: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, install_plugins) -> None:
    if case.get("plugin"):  # buggy_plugin, as if from the distribution stylefw-buggy 0.3.0 (entry point 'buggy')
        install_plugins(buggy=buggy_plugin, shipped_by={"buggy": ("stylefw-buggy", "0.3.0")})
    if case.get("signal"):
        request.getfixturevalue("default_signal_handlers")
        install_plugins(signaller=Signaller(getattr(signal, case["signal"])))
    for key, value in case.get("env", {}).items():
        monkeypatch.setenv(key, value)
    if "copy" in case:
        (work / case["copy"].name).write_bytes(case["copy"].read_bytes())
    for name, spec in case.get("files", {}).items():
        make(work / name, spec)
    argv = ["x" * 5000 + ".png" if arg == "LONG" else arg for arg in case["argv"]]
    before = snapshot(work)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case["exit"], err
    assert re.search(case["pattern"], err), err
    assert "Traceback" not in out + err and "weights_only" not in err and "this pickle ran" not in out + err
    after = snapshot(work)
    allowed = {str(work / name) for name in case.get("output", [])}
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert changed <= allowed, sorted(changed - allowed)


def test_the_corpus_covers_every_class() -> None:
    listed = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
    classes = {case["class"] for case in listed} | {"recipes", "yaml"}
    assert classes >= {"recipes", "yaml", "images", "outputs", "weights", "plugins", "signals", "urls", "paths"}
    assert len(recipe_cases()) + len(listed) >= 60
