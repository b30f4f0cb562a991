"""stylefw's pytest plugin: each recipe with a golden beside it is a test that its look has not changed.

Installed with stylefw (the ``pytest11`` entry point ``stylefw``); it only adds its options until it is
asked to collect, with ``--stylefw-recipes DIR`` or ``stylefw_recipes = DIR`` in the ini file::

    pytest --stylefw-recipes recipes            # check every recipes/NAME.yaml that has NAME.golden.json
    pytest --stylefw-recipes recipes --stylefw-record   # record them all, and print what changed

The ini setting adds its folders only when pytest is run without paths of its own (``pytest``, not
``pytest tests/test_x.py``), so a test file can still be run alone; ``pytest recipes`` checks them.
Recording also happens with the environment variable ``STYLEFW_RECORD_GOLDEN=1``. pytest loads this plugin in
every session of a project that has stylefw installed, so it imports nothing heavy (torch) until a recipe item
runs: those imports are inside the functions, each marked as deferred for start-up time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..errors import StylefwError

RECIPE_SUFFIXES = (".yaml", ".yml")
RECORDED = pytest.StashKey[list]()
FOLDERS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stylefw", "stylefw recipe checks")
    group.addoption("--stylefw-recipes", action="append", default=[], metavar="DIR",
                    help="check each recipe in DIR (and below) that has a NAME.golden.json beside it")
    group.addoption("--stylefw-record", action="store_true",
                    help="record the goldens of every recipe in those folders instead of checking them")
    group.addoption("--stylefw-failures", default="stylefw-failures", metavar="DIR",
                    help="where a failed check writes its expected | actual | difference picture "
                         "(default: stylefw-failures)")
    parser.addini("stylefw_recipes", type="paths", default=[],
                  help="folders of recipes to check when pytest is run without paths of its own")


def pytest_configure(config: pytest.Config) -> None:
    asked = [Path(config.invocation_params.dir, folder).resolve() for folder in config.getoption("stylefw_recipes")]
    configured = [Path(folder).resolve() for folder in config.getini("stylefw_recipes")]
    # recipes under any of these folders are items; the ini's are searched only when pytest got no paths itself
    config.stash[FOLDERS] = asked + configured
    config.stash[RECORDED] = []
    searched = asked + (configured if config.args_source != pytest.Config.ArgsSource.ARGS else [])
    given = [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]
    config.args += [str(folder) for folder in searched
                    if not any(folder == path or path in folder.parents for path in given)]


def recording(config: pytest.Config) -> bool:
    return config.getoption("stylefw_record") or os.environ.get("STYLEFW_RECORD_GOLDEN") == "1"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    if file_path.suffix not in RECIPE_SUFFIXES:
        return None
    if not any(folder == file_path.parent or folder in file_path.parents for folder in config.stash[FOLDERS]):
        return None
    from .goldens import golden_path  # deferred: start-up time (torch), see the module docstring

    if not golden_path(file_path).exists() and not recording(config):
        return None
    return RecipeFile.from_parent(parent, path=file_path)


class RecipeFile(pytest.File):
    """A recipe file: one check."""

    def collect(self):
        yield RecipeItem.from_parent(self, name=self.path.name)


class CheckFailed(Exception):
    """A run left its golden; carries the report."""


class RecipeItem(pytest.Item):
    """Runs one recipe as its golden says and compares, or records the golden."""

    def runtest(self) -> None:
        from . import goldens  # deferred: start-up time (torch), see the module docstring

        if recording(self.config):
            outcome = goldens.record(self.path)
            self.config.stash[RECORDED].append(f"{self.path}: {outcome.reason}")
            return
        outcome = goldens.check(self.path, failures=Path(self.config.invocation_params.dir,
                                                         self.config.getoption("stylefw_failures")))
        if outcome.status == "skipped":
            pytest.skip(outcome.reason)
        if outcome.status == "failed":
            raise CheckFailed(f"{self.path.name}: {outcome.reason}\n{outcome.report}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (CheckFailed, StylefwError)):
            return str(excinfo.value)  # the report says it all; a traceback into the engine would not help
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"stylefw check {self.path.name}"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    recorded = config.stash.get(RECORDED, [])
    if recorded:
        terminalreporter.section("stylefw goldens recorded")
        for line in recorded:
            terminalreporter.write_line(line)
