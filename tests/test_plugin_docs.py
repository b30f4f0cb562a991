"""The README's plugin section says what the contracts say, and its examples work."""

from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path

import pytest
from PIL import Image

from stylefw import contracts, hookspecs
from stylefw import registry as registry_module
from stylefw.cli import main
from stylefw.plugin_manager import get_plugin_manager
from stylefw.registry import build_registry

ROOT = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("plugin_docs", ROOT / "scripts" / "plugin_docs.py")
plugin_docs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(plugin_docs)


def plugin_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Writing a plugin\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Writing a plugin' section"
    return match.group(1)


def documented() -> list[pytest.param]:
    """Every hook, and every Protocol ``stylefw.contracts`` exports."""
    hooks = [value for value in vars(hookspecs).values() if hasattr(value, "stylefw_spec")]
    protocols = [value for name in contracts.__all__
                 if getattr(value := getattr(contracts, name), "_is_protocol", False)]
    return [pytest.param(item, id=item.__name__) for item in hooks + protocols]


@pytest.mark.parametrize("document", plugin_docs.DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_generated_blocks_are_up_to_date(document):
    text = document.read_text(encoding="utf-8")
    assert plugin_docs.BLOCK.search(text), f"{document} has no generated block"
    assert plugin_docs.render(document) == text, "run: python scripts/plugin_docs.py"


@pytest.mark.parametrize("item", documented())
def test_every_hook_and_protocol_is_in_the_readme_with_its_docstring(item):
    first_line = item.__doc__.strip().splitlines()[0].replace("``", "`")
    section = plugin_section()
    assert f"`{item.__name__}" in section
    assert first_line in section, f"the first line of {item.__name__}'s docstring is not in the README"


def test_the_example_package_is_listed_in_its_own_readme_not_in_the_main_one():
    assert "tests/example_plugin/README.md" in plugin_section()
    assert "class MomentLoss" not in plugin_section()
    listed = (ROOT / "tests" / "example_plugin" / "README.md").read_text(encoding="utf-8")
    assert "class MomentLoss" in listed and '[project.entry-points.stylefw]' in listed


def test_the_readmes_command_example_runs(tmp_path, monkeypatch, capsys):
    commands = re.search(r"^### Commands\n.*?```python\n(.*?)```", plugin_section(), re.MULTILINE | re.DOTALL)
    plugin = types.ModuleType("readme_commands")
    exec(compile(commands.group(1), "README.md", "exec"), plugin.__dict__)
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(plugin, name="readme")
    registry = build_registry(manager)
    monkeypatch.setattr(registry_module, "default_registry", lambda: registry)
    Image.new("RGB", (12, 8)).save(tmp_path / "photo.png")
    assert main(["describe", str(tmp_path / "photo.png")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'photo.png'}: 12×8 RGB\n"
    assert main(["--help"]) == 0
    assert "describe   Print an image's size and colour mode." in capsys.readouterr().out
