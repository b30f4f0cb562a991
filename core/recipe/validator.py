"""Type and range checks that record problems at dotted key paths instead of raising at the first.

A plugin's options are checked against its factory's signature: the keyword names, then the annotations
(``Literal``, plain types, lists, mappings, unions) and the markers of :mod:`stylefw.markers` in them.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections import abc
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import Problem
from ..hooks.names import suggest
from ..markers import File, Range
from .paths import PathProblem, absolute, existing_file

__all__ = ["Validator", "declares_values", "described", "kind_of", "under", "unusable"]


class Validator:
    """Collects :class:`Problem` records; each check returns the checked value, or None after a problem."""

    def __init__(self, *, base_dir: Path | None = None, overridden: Iterable[str] = ()) -> None:
        self.problems: list[Problem] = []
        self.base_dir = base_dir
        self.overridden = tuple(overridden)

    def anchor(self, path: str) -> Path:
        """The folder a relative file path at ``path`` resolves against: the recipe's, or for an override the cwd."""
        if self.base_dir is None or under(path, self.overridden):
            return Path.cwd()
        return self.base_dir

    def add(self, path: str, message: str, *, missing: str | None = None) -> None:
        self.problems.append(Problem(path, message, missing))

    def unknown_keys(self, path: str, mapping: Mapping, allowed: Mapping | list) -> None:
        valid = list(allowed)
        for key in mapping:
            if key not in valid:
                where = f"{path}.{key}" if path else str(key)
                self.add(where, f"unknown key '{key}'{suggest(key, valid)}; valid keys: {', '.join(valid)}")

    def mapping(self, path: str, value: Any) -> bool:
        if isinstance(value, dict):
            return True
        self.add(path, f"expected a mapping of keys, got {described(value)}")
        return False

    def integer(self, path: str, value: Any, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, unusable(value) or f"expected a whole number, got {described(value)}")
        elif not low <= value <= high:
            self.add(path, f"{value} is out of range; use {low} to {high}")
        else:
            return value
        return None

    def number(self, path: str, value: Any, low: float, high: float | None = None) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"expected a number, got {described(value)}")
        elif unusable(value):
            self.add(path, unusable(value))
        elif value < low or (high is not None and value > high):
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

    def string(self, path: str, value: Any) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.add(path, f"expected a non-empty string, got {described(value)}")
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

    def annotated(self, path: str, factory: Callable, options: Mapping, *,
                  fallback: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """``options`` checked against their parameters' annotations, files resolved; None after a problem.

        ``fallback`` gives the annotation to use for a parameter whose own declares no values (see
        :func:`declares_values`), such as the ``weights`` of a backbone written for stylefw 0.1.
        """
        before = len(self.problems)
        for key, value in options.items():
            self.finite(f"{path}.{key}", value)
        if len(self.problems) > before:
            return None
        try:
            parameters = inspect.signature(factory, eval_str=True).parameters
        except Exception:  # no signature, or an annotation that does not evaluate: nothing to check against
            return dict(options)
        checked = {}
        for key, value in options.items():
            annotation = parameters[key].annotation if key in parameters else inspect.Parameter.empty
            if fallback and key in fallback and not declares_values(annotation):
                annotation = fallback[key]
            checked[key] = self.fit(f"{path}.{key}", value, annotation)
        return checked if len(self.problems) == before else None

    def finite(self, path: str, value: Any) -> bool:
        """Whether every number in ``value``, at any depth, is one torch can take; a problem for the first that is not."""
        if isinstance(value, dict):
            return all(self.finite(f"{path}.{key}", item) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return all(self.finite(f"{path}[{i}]", item) for i, item in enumerate(value))
        problem = unusable(value)
        if problem:
            self.add(path, problem)
        return problem is None

    def fit(self, path: str, value: Any, annotation: Any) -> Any:
        """``value`` checked against ``annotation``, problems recorded at ``path`` and below; files resolved."""
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Annotated:
            before = len(self.problems)
            value = self.fit(path, value, args[0])
            for marker in annotation.__metadata__:
                if len(self.problems) == before:
                    value = self.marked(path, value, marker)
            return value
        if origin is typing.Literal:
            self.choice(path, value, args)
        elif origin in UNIONS:
            return self.union(path, value, args)
        elif origin in SEQUENCES or origin is tuple:
            return self.items(path, value, origin, args)
        elif origin in MAPPINGS:
            if self.mapping(path, value) and len(args) == 2:
                return {key: self.fit(f"{path}.{key}", item, args[1]) for key, item in value.items()}
        elif annotation in PLAIN_TYPES and not _fits(value, annotation):
            self.add(path, f"expected {PLAIN_TYPES[annotation]}, got {described(value)}")
        return value

    def union(self, path: str, value: Any, members: tuple[Any, ...]) -> Any:
        """A value that fits one member; else the problems of the member its shape matches (a list, a mapping)."""
        if value is None and type(None) in members:
            return value
        members = tuple(member for member in members if member is not type(None))
        attempts = [self._attempt(path, value, member) for member in members]
        for fitted, problems in attempts:
            if not problems:
                return fitted
        shaped = [problems for (_, problems), member in zip(attempts, members) if _shaped(value, member)]
        if shaped or len(members) == 1:
            self.problems += (shaped or [attempts[0][1]])[0]
        else:
            wanted = " or ".join(dict.fromkeys(_describe(member) for member in members))
            self.add(path, f"expected {wanted}, got {described(value)}")
        return value

    def items(self, path: str, value: Any, origin: Any, args: tuple[Any, ...]) -> Any:
        """A list checked item by item: ``tuple[float, float]`` fixes its length, ``Sequence[str]`` does not."""
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            self.add(path, f"expected a list, got {described(value)}")
            return value
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                self.add(path, f"expected a list of {len(args)} values, got {len(value)}: {value!r}")
                return value
            kinds = args
        else:
            kinds = (args[0] if args else typing.Any,) * len(value)
        return type(value)(self.fit(f"{path}[{i}]", item, kind) for i, (item, kind) in enumerate(zip(value, kinds)))

    def marked(self, path: str, value: Any, marker: Any) -> Any:
        """Apply one ``Annotated`` marker that this stylefw knows (:class:`Range`, :class:`File`); ignore others."""
        if isinstance(marker, Range) and _is_number(value) and value not in marker:
            self.add(path, f"{value} is out of range; use {marker.describe()}")
        elif isinstance(marker, File):
            return self.file(path, value, marker)
        return value

    def file(self, path: str, value: Any, marker: File) -> Any:
        """One of the marker's names, or the absolute path of an existing file."""
        if value in marker.names:
            return value
        if not isinstance(value, str) or not value:
            self.add(path, f"expected {marker.describe()}, got {described(value)}")
            return value
        anchor = self.anchor(path)
        try:
            return str(existing_file(value, anchor))
        except PathProblem as exc:
            missing = str(absolute(value, anchor)) if exc.missing else None
            self.add(path, f"{path.rsplit('.', 1)[-1]} file {exc} (use {marker.describe()})", missing=missing)
            return value

    def _attempt(self, path: str, value: Any, annotation: Any) -> tuple[Any, list[Problem]]:
        """Fit ``value`` to one member of a union, keeping its problems apart from the others'."""
        kept, self.problems = self.problems, []
        try:
            return self.fit(path, value, annotation), self.problems
        finally:
            self.problems = kept


FLOAT32_MAX = 3.4028234663852886e38
INT64_MAX = 2**63 - 1
# annotations checked as they are; other classes (Path, Tensor, ...) are left to the factory itself
PLAIN_TYPES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
UNIONS = (typing.Union, types.UnionType)
SEQUENCES = (list, abc.Sequence, abc.MutableSequence)
MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


def under(path: str, keys: Iterable[str]) -> bool:
    """Whether the dotted ``path`` is one of ``keys`` or inside one of them."""
    return any(path == key or path.startswith((f"{key}.", f"{key}[")) for key in keys)


def unusable(value: Any) -> str | None:
    """Why torch cannot take the number ``value`` (not finite, or too large for what it feeds), or None."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{value} is not a finite number"
        if abs(value) > FLOAT32_MAX:
            return f"{value:g} is too large: torch computes in 32-bit floats, which end at about 3.4e38"
    elif isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return f"{value} is too large: whole numbers must fit in 64 bits (at most {INT64_MAX})"
    return None


def declares_values(annotation: Any) -> bool:
    """Whether ``annotation`` says which values are valid: a ``Literal`` or a marker, alone or in a union."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Literal, typing.Annotated):
        return True
    return origin in UNIONS and any(declares_values(member) for member in typing.get_args(annotation))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(value: Any, annotation: type) -> bool:
    if annotation is float:
        return _is_number(value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _shaped(value: Any, annotation: Any) -> bool:
    """Whether ``value`` has the shape ``annotation`` asks for, so that member's problems are the ones to report."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _shaped(value, args[0])
    if origin in MAPPINGS:
        return isinstance(value, dict)
    if origin in SEQUENCES or origin is tuple:
        return isinstance(value, (list, tuple))
    if origin is typing.Literal:
        return any(type(choice) is type(value) for choice in args)
    return annotation in PLAIN_TYPES and _fits(value, annotation)


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _describe(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(str(choice) for choice in args)
    if origin in MAPPINGS:
        return "a mapping"
    if origin in SEQUENCES or origin is tuple:
        return "a list"
    return PLAIN_TYPES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def described(value: Any) -> str:
    """A value as a message shows it after "got": ``text 'abc'``, ``a list [1, 2]``, or ``nothing``."""
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{kind_of(value)} {text if len(text) <= 80 else text[:60] + ' …'}"


def kind_of(value: Any) -> str:
    """How a YAML value reads to a user: "a mapping", "a list", "text", ..."""
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
