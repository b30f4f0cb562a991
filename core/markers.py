"""Markers a plugin puts in its factory's annotations to declare the values an option takes.

Loading a recipe reads them from the signature, so its values are checked without building anything::

    from typing import Annotated
    from stylefw.markers import File, Range

    def make(params, *, lr: Annotated[float, Range(0)] = 0.01,
             decay: Annotated[float, Range(0, 1, high_open=True)] = 0.9) -> MyOptimizer: ...

    class MyNet(nn.Module):
        def __init__(self, *, weights: Annotated[str, File("imagenet", "random")] = "imagenet") -> None: ...

Torch-free, like the rest of validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Range", "File"]


@dataclass(frozen=True)
class Range:
    """A number's valid interval: ``Range(0)`` is 0 or more, ``Range(0, 1, high_open=True)`` is 0 up to 1, 1 excluded.

    ``None`` leaves that side unbounded; ``low_open``/``high_open`` exclude the bound itself. ``says``, when
    given, is how a message describes the interval instead (``0 (off) up to, but not including, 1``).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    says: str | None = None

    def __contains__(self, value: float) -> bool:
        if math.isnan(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        """The interval in words, to follow "use": ``0 to 1``, ``a value above 0``, ``1 or more``."""
        if self.says is not None:
            return self.says
        low, high = self.low, self.high
        if low is not None and high is not None:
            if not self.low_open and not self.high_open:
                return f"{low} to {high}"
            if not self.low_open:
                return f"{low} up to, but not including, {high}"
            return f"a value above {low} and {'below' if self.high_open else 'at most'} {high}"
        if low is not None:
            return f"a value above {low}" if self.low_open else f"{low} or more"
        if high is not None:
            return f"a value below {high}" if self.high_open else f"{high} or less"
        return "any number"


@dataclass(frozen=True)
class File:
    """An option that is one of the ``names`` (such as ``imagenet``) or a path to an existing file.

    A relative path in a recipe file resolves against the recipe's folder (given as an override, against
    the current directory); the factory receives the absolute path.
    """

    names: tuple[str, ...] = ()

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", tuple(names))

    def describe(self) -> str:
        """What the option takes, in words: ``imagenet, random or a file path``."""
        return ", ".join(self.names) + " or a file path" if self.names else "a file path"
