"""A package's face that names what its modules hold, importing each module when one of its names is first used
(PEP 562), so that importing the package stays cheap."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, MutableMapping, Sequence

__all__ = ["lazy_names"]


def lazy_names(package: str, namespace: MutableMapping[str, Any],
               modules: Mapping[str, Sequence[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` (whose ``globals()`` is ``namespace``) for ``modules``:
    each module, relative to the package, with the names it gives the package. A name is imported once, then
    kept in the namespace."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home))

    return __getattr__, __dir__
