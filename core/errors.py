"""Exceptions raised by the core; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "StylefwError",
    "UserError",
    "RecipeError",
    "Problem",
    "ImageError",
    "PluginError",
    "WeightsError",
    "MissingWeights",
    "RunError",
    "PluginBugError",
    "InternalError",
    "StylefwWarning",
    "warn",
]

# frames of these packages are stylefw's, or the hook calls between stylefw and its plugins: a warning is about
# the line that called into them
_INSIDE = ("stylefw", "pluggy")


class StylefwError(Exception):
    """Base class: a message, the context it happened in, and a hint on how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, context: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.context = context
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.context}: {self.message}" if self.context else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class UserError(StylefwError):
    """Bad input from the user: a recipe, an argument, an image or a file. Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe, at a dotted key path such as ``losses[1].layers[0]``."""

    path: str
    message: str
    # the absolute path of a file the value names that does not exist (a weights file, say), for callers that
    # treat a missing file apart from a wrong value: a recipe check skips rather than fails
    missing: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RecipeError(UserError):
    """A recipe failed validation; carries every problem found, not just the first.

    ``parts`` holds what did validate, by ``Recipe`` field name (and ``losses`` by index), so that the checks a
    plugin makes when it is built can still run on those parts and be listed with the rest.
    """

    def __init__(self, problems: list[Problem], *, source: str | None = None, hint: str | None = None,
                 parts: dict | None = None):
        self.problems = list(problems)
        self.source = source
        self.parts = dict(parts or {})
        count = len(self.problems)
        heading = f"{count} problem{'s' if count != 1 else ''} in recipe"
        super().__init__(heading, context=source, hint=hint or "fix the keys above")

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.message}" if self.source else self.message]
        lines += [f"  {problem}" for problem in self.problems]
        lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class ImageError(UserError):
    """An input image is missing, unreadable, truncated, too large or fails its checksum."""


class PluginError(UserError):
    """A plugin failed to load, or two plugins registered the same name."""


class WeightsError(UserError):
    """Backbone weights are missing, cannot be downloaded, or do not fit the architecture."""


class MissingWeights(WeightsError):
    """A backbone's weights file is not there (and could not be downloaded); ``file`` is where it was looked for.

    A backbone plugin raises it so that callers can tell an absent file from a broken one: ``stylefw check``
    skips a recipe whose weights are absent, and fails one whose weights are wrong.
    """

    def __init__(self, message: str, *, file: str | Path, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.file = Path(file)


class RunError(StylefwError):
    """The optimisation itself failed (for example the loss became NaN). Exit code 1."""


class PluginBugError(StylefwError):
    """A plugin's code failed (raised, or broke its contract); the message names the plugin and its distribution."""


class InternalError(StylefwError):
    """A bug in stylefw itself; the hint asks for a report with the ``--debug`` traceback."""


class StylefwWarning(UserWarning):
    """A warning the CLI shows to the user, such as random backbone weights."""


def warn(message: str, category: type[Warning] = StylefwWarning) -> None:
    """Warn as from the first line outside stylefw (and its plugins): a Python caller sees the line of theirs that
    led to it (``stylefw.run(...)``), not stylefw's own."""
    frame, level = sys._getframe(1), 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in _INSIDE:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
