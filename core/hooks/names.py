"""Did-you-mean: the registered name, key or option closest to a misspelt one."""

from __future__ import annotations

import difflib

__all__ = ["suggest"]


def suggest(value: object, options: list[str]) -> str:
    """A ``" (did you mean x?)"`` suffix when ``value`` is close to one of ``options``, else ``""``."""
    # 0.75: a typo or two (adan, gramm), not any name that shares a few letters (sgd for signsgd)
    matches = difflib.get_close_matches(str(value), options, n=1, cutoff=0.75)
    return f" (did you mean {matches[0]}?)" if matches else ""
