"""Type and range checks that record problems at dotted key paths instead of raising at the first."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Mapping

from .errors import Problem
from .registry import suggest

__all__ = ["Checker", "kind_of"]


class Checker:
    """Collects :class:`Problem` records; each check returns the checked value, or None after a problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def unknown_keys(self, path: str, mapping: Mapping, allowed: Mapping | list) -> None:
        valid = list(allowed)
        for key in mapping:
            if key not in valid:
                where = f"{path}.{key}" if path else str(key)
                self.add(where, f"unknown key '{key}'{suggest(key, valid)}; valid keys: {', '.join(valid)}")

    def mapping(self, path: str, value: Any) -> bool:
        if isinstance(value, dict):
            return True
        self.add(path, f"expected a mapping of keys, got {kind_of(value)} {value!r}")
        return False

    def integer(self, path: str, value: Any, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected a whole number, got {kind_of(value)} {value!r}")
        elif not low <= value <= high:
            self.add(path, f"{value} is out of range; use {low} to {high}")
        else:
            return value
        return None

    def number(self, path: str, value: Any, low: float, high: float | None = None) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"expected a number, got {kind_of(value)} {value!r}")
        elif value < low or (high is not None and value > high) or value != value:
            self.add(path, f"{value} is out of range; use {low} to {high if high is not None else 'any larger value'}")
        else:
            return float(value)
        return None

    def choice(self, path: str, value: Any, options: tuple[Any, ...]) -> Any:
        if value in options:
            return value
        names = [str(option) for option in options]
        self.add(path, f"'{value}' is not one of {', '.join(names)}{suggest(value, names)}")
        return None

    def boolean(self, path: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.add(path, f"expected true or false, got {kind_of(value)} {value!r}")
        return None

    def string(self, path: str, value: Any) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.add(path, f"expected a non-empty string, got {kind_of(value)} {value!r}")
        return None

    def options(self, path: str, what: str, factory: Callable, options: Mapping, *, skip: int = 0,
                common: tuple[str, ...] = (), given: tuple[str, ...] = ()) -> bool:
        """Check ``options`` against ``factory``'s keyword parameters: unknown and missing keys.

        ``common`` keys (such as a loss's ``weight``) are valid on every entry, so a typo of one is suggested.
        ``given`` parameters (a scheduler's ``total_steps``) are passed by stylefw, never by the user.
        """
        try:
            parameters = list(inspect.signature(factory).parameters.values())[skip:]
        except (TypeError, ValueError):
            return True  # no introspectable signature: let the factory itself complain
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return True
        keywords = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and p.name not in given]
        known = [*common, *keywords]
        before = len(self.problems)
        for key in options:
            if key not in keywords:
                valid = ", ".join(known) or "none"
                self.add(f"{path}.{key}", f"unknown option '{key}' for {what}{suggest(key, known)}; valid: {valid}")
        for p in parameters:
            if p.default is p.empty and p.name in keywords and p.name not in options:
                self.add(path, f"missing required key '{p.name}' for {what}")
        return len(self.problems) == before


    def annotated(self, path: str, factory: Callable, options: Mapping) -> bool:
        """Check options against their parameters' annotations: ``Literal[...]`` choices and plain types."""
        try:
            parameters = inspect.signature(factory, eval_str=True).parameters
        except Exception:  # an annotation that does not evaluate: nothing to check it against
            return True
        before = len(self.problems)
        for key, value in options.items():
            annotation = parameters[key].annotation if key in parameters else None
            if typing.get_origin(annotation) is typing.Literal:
                self.choice(f"{path}.{key}", value, typing.get_args(annotation))
            elif annotation in PLAIN_TYPES and not _fits(value, annotation):
                self.add(f"{path}.{key}", f"expected {PLAIN_TYPES[annotation]}, got {kind_of(value)} {value!r}")
        return len(self.problems) == before


# annotations checked as they are; unions, generics and classes are left to the factory itself
PLAIN_TYPES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _fits(value: Any, annotation: type) -> bool:
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def kind_of(value: Any) -> str:
    """How a YAML value reads to a user: "a mapping", "a list", "text", ..."""
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
