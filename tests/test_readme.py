"""The README stays true: CI runs what it says, and every recipe key and command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stylefw.cli import build_parser
from stylefw.schema import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_ci_runs_the_readme_install_and_test_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci_lines if line.startswith("python -m ")]
    assert commands, ".ci/run runs no python -m commands"
    running_the_tests = _section("Running the tests")
    for command in commands:
        assert command in running_the_tests, f".ci/run runs '{command}', which the README does not tell users to run"


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_recipe_key_is_documented(key):
    assert f"| `{key}" in _section("Recipes"), f"recipe key '{key}' is missing from the README's key table"


def test_every_command_is_documented():
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    cli = _section("The command line")
    for name in subcommands:
        assert f"stylefw {name}" in cli, f"'stylefw {name}' is not documented in the README"


def test_every_recipe_option_is_documented():
    recipe_parser = next(a for a in build_parser()._actions if a.dest == "command").choices["recipe"]
    cli = _section("The command line")
    for action in recipe_parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in cli, f"option {flag} is not documented in the README"


def test_quickstart_shows_the_main_command():
    assert "stylefw recipe vangogh.yaml" in _section("Quickstart")
