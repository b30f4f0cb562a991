"""Imports run one way: the contracts in pyproject.toml (import-linter) hold, an upward import breaks them, and an
import placed inside a function says why (start-up time, or an optional dependency) instead of dodging a circle."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("importlinter", reason="needs import-linter (the test extra)")

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"core": "stylefw", "plugins": "stylefw/plugins", "recipes": "stylefw/recipes"}


def package_tree(site: Path) -> Path:
    """The ``stylefw`` package as it installs (core/, with plugins/ and recipes/ inside it), copied into ``site``:
    import-linter reads one package's files, and in the repository its subpackages live in three folders."""
    for source, target in SOURCES.items():
        shutil.copytree(ROOT / source, site / target, ignore=shutil.ignore_patterns("__pycache__"))
    return site


def lint(site: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts, on the package tree in ``site``."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-logo", "--no-cache", str(ROOT / "pyproject.toml")],
                          cwd=site, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(site)})


def test_the_import_contracts_are_kept(tmp_path):
    result = lint(package_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_and_is_named(tmp_path):
    site = package_tree(tmp_path)
    engine = site / "stylefw" / "engine" / "optimise.py"
    engine.write_text(engine.read_text() + "\nfrom stylefw.cli import main  # the engine reaching up to the CLI\n")
    result = lint(site)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    assert "stylefw.engine.optimise -> stylefw.cli" in result.stdout


def test_an_import_inside_a_function_says_why():
    """An import of stylefw's own modules (or torch, rich, Pillow) inside a function is deferred for start-up time
    or for an optional dependency, and its comment says so; it is never a way round a circle."""
    unexplained = []
    for folder in ("core", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    unexplained += [f"{path.relative_to(ROOT)}:{inner.lineno}"
                                    for inner in _imports(node) if not _explained(lines, inner.lineno)]
    assert not unexplained, "imports inside functions without a 'deferred: ...' comment: " + ", ".join(unexplained)


def test_the_first_import_of_a_run_is_found_by_line_and_nested_functions_are_their_own():
    source = """def outer():
    if ready:
        import first
    import second  # deferred: start-up time

    def inner():
        import third
"""
    outer = ast.parse(source).body[0]
    inner = outer.body[-1]
    assert [node.lineno for node in _imports(outer)] == [3]
    assert [node.lineno for node in _imports(inner)] == [7]


def _imports(function: ast.AST) -> list[ast.stmt]:
    """The first import of each run of imports in ``function``'s own body, in line order (a nested function is
    checked on its own)."""
    found, previous = [], None
    for node in sorted(_own_imports(function), key=lambda node: node.lineno):
        if previous is None or node.lineno > previous.end_lineno + 2:
            found.append(node)
        previous = node
    return found


def _own_imports(node: ast.AST) -> Iterator[ast.stmt]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield from _own_imports(child)


def _explained(lines: list[str], number: int) -> bool:
    """Whether the import at line ``number`` (or the comment line above it) says it is deferred, or optional."""
    near = lines[number - 1] + " " + (lines[number - 2] if number > 1 else "")
    return "deferred" in near or "optional" in near
