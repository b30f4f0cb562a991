"""The documentation stays true: the README says what CI runs and stays short, the reference pages hold every recipe
key, command, option, hook and contract (they are generated from the code: scripts/reference.py), the guides'
examples work, and the site builds without a warning."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from PIL import Image

from stylefw.cli import build_parser, main
from stylefw.contracts.recipe import keys
from stylefw.hooks import specs
from stylefw.hooks.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
_SPEC = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
reference = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reference)


def section(text: str, heading: str, level: int = 2) -> str:
    marks = "#" * level
    match = re.search(rf"^{marks} {re.escape(heading)}\n(.*?)(?=^#{{1,{level}}} |\Z)", text, re.M | re.S)
    assert match, f"no '{marks} {heading}' section"
    return match.group(1)


# -- the README -------------------------------------------------------------------------------------------------------


def test_ci_runs_the_readme_install_and_test_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci_lines if line.startswith("python -m ")]
    assert commands, ".ci/run runs no python -m commands"
    running_the_tests = section(README, "Running the tests")
    for command in commands:
        assert command in running_the_tests, f".ci/run runs '{command}', which the README does not tell users to run"


def test_quickstart_shows_the_main_command_and_the_offline_route():
    quickstart = section(README, "Quickstart")
    assert "stylefw recipe vangogh.yaml" in quickstart
    assert "--content" in quickstart and "backbone.weights=" in quickstart and "backbone.name=vgg16" in quickstart


def test_the_readme_is_short():
    assert len(README.encode("utf-8")) <= 12 * 1024


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md"])
def test_relative_links_lead_to_files(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), f"{document} links to {target}, which does not exist"


# -- the reference: generated, and whole -------------------------------------------------------------------------


@pytest.mark.parametrize("page", sorted(reference.PAGES))
def test_each_reference_page_is_generated_and_in_the_navigation(page):
    assert reference.MARKER in (DOCS / page).read_text(encoding="utf-8")
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    assert page in str(nav)


@pytest.mark.parametrize("key", [declared.name or field.name for field, declared in keys()])
def test_every_recipe_key_is_in_the_reference(key):
    assert f"| `{key}` |" in reference.recipe_keys()


def test_every_plugin_option_is_in_the_reference():
    text = reference.recipe_keys()
    for kind, name, option in (("backbone", "vgg19", "backbone.first_padding"), ("loss", "gram", "losses[i].normalize"),
                               ("optimizer", "adam", "optimizer.betas"),
                               ("scheduler", "cosine", "optimizer.schedule.floor")):
        assert f"### {kind} `{name}`" in text and f"`{option}`" in text
    assert "total_steps" not in text  # stylefw passes it; no recipe gives it


def commands_of(parser: argparse.ArgumentParser, prefix: str = "stylefw") -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                found[f"{prefix} {name}"] = command
                found.update(commands_of(command, f"{prefix} {name}"))
    return found


def test_every_command_and_option_is_in_the_reference():
    text = reference.commands()
    for title, command in commands_of(build_parser()).items():
        assert f"`{title}`" in text, f"{title} is not in the commands reference"
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help", "--debug", "-q", "--quiet", "--no-plugin"):
                    assert f"`{flag}" in text, f"{title} {flag} is not in the commands reference"
    assert "--no-plugin" in text and "--debug" in text


def documented() -> list:
    hooks = [value for value in vars(specs).values() if hasattr(value, "stylefw_spec")]
    protocols = [cls for cls in reference.exported() if reference.is_protocol(cls)]
    return [pytest.param(item, id=item.__name__) for item in hooks + protocols]


@pytest.mark.parametrize("item", documented())
def test_every_hook_and_protocol_is_in_the_reference_with_its_docstring(item):
    text = reference.hooks() + reference.contracts_page()
    first = reference.first_paragraph(item.__doc__).split(". ")[0]
    assert f"`{item.__name__}" in text and first in text


def test_every_builtin_plugin_is_listed():
    text = reference.plugins()
    for name, _ in default_registry().manager.list_name_plugin():
        if default_registry().manager.is_builtin(name):
            assert f"| `{name}` |" in text
    assert "| `progress` |" in text and "| `preview` |" in text


# -- the guides' examples ---------------------------------------------------------------------------------------------


PLUGIN_GUIDE = (DOCS / "guides" / "writing-a-plugin.md").read_text(encoding="utf-8")


def test_the_plugin_guides_command_example_runs(tmp_path, capsys, install_plugins):
    commands = re.search(r"```python\n(.*?)```", section(PLUGIN_GUIDE, "Commands"), re.S)
    plugin = types.ModuleType("guide_commands")
    exec(compile(commands.group(1), "writing-a-plugin.md", "exec"), plugin.__dict__)
    install_plugins(guide=plugin)
    Image.new("RGB", (12, 8)).save(tmp_path / "photo.png")
    assert main(["describe", str(tmp_path / "photo.png")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'photo.png'}: 12×8 RGB\n"
    assert main(["--help"]) == 0
    assert re.search(r"describe +Print an image's size and colour mode\.", capsys.readouterr().out)


def test_the_plugin_guide_shows_the_example_loss_as_it_is():
    example = pytest.importorskip("stylefw_example", reason="the example plugin: pip install -e tests/example_plugin")
    shown = re.search(r"```python\n(.*?)```", section(PLUGIN_GUIDE, "The loss", level=3), re.S).group(1)
    for item in (example.moments, example.MomentLoss):
        assert inspect.getsource(item) in shown, f"the guide's {item.__name__} differs from the example plugin's"


def test_the_example_plugins_readme_lists_its_files_as_they_are():
    text = reference.EXAMPLE_README.read_text(encoding="utf-8")
    assert reference.BLOCK.search(text), "the README lost its <!-- begin file ... --> listings"
    assert reference.render(reference.EXAMPLE_README) == text, "run: python scripts/reference.py"


# -- the site ---------------------------------------------------------------------------------------------------------


def test_the_site_builds_without_a_warning(tmp_path):
    pytest.importorskip("mkdocs", reason="needs MkDocs (the test extra) to build the documentation")
    pytest.importorskip("material", reason="needs mkdocs-material (the test extra)")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout + built.stderr
    page = (tmp_path / "site" / "reference" / "recipe-keys" / "index.html").read_text(encoding="utf-8")
    assert reference.MARKER not in page and "style_scale" in page
    shutil.rmtree(tmp_path / "site")
