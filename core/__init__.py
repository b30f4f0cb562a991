"""stylefw: plugin-based neural style transfer.

``import stylefw`` stays cheap: torch and the plugins load on first use of ``run`` and friends.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "run", "resume", "run_together", "create_backbone", "load_recipe", "Recipe",
           "Result"]

_LAZY = {
    "run": "stylefw.api",
    "resume": "stylefw.api",
    "run_together": "stylefw.api",
    "create_backbone": "stylefw.api",
    "Result": "stylefw.api",
    "load_recipe": "stylefw.recipe",
    "Recipe": "stylefw.recipe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylefw' has no attribute {name!r}")
