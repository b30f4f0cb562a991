"""stylefw: plugin-based neural style transfer.

The package is a small kernel with wings, each layer importing only those below it (``pyproject.toml``'s
import contracts, checked by the tests):

- :mod:`stylefw.contracts`: the records and Protocols plugins, recipes and runs share;
- :mod:`stylefw.hooks`: the plugin system: hooks, the manager, the registry;
- :mod:`stylefw.recipe`: reading and validating recipes;
- :mod:`stylefw.engine`: a run, from images to the saved result;
- :mod:`stylefw.tools`: score, estimate, recipe goldens, batches, the preview, plots and sheets;
- :mod:`stylefw.plugins`: the built-in plugins: backbones, losses, optimizers, schedules and the run's features;
- :mod:`stylefw.cli`: the ``stylefw`` command.

``import stylefw`` stays cheap: torch and the plugins load on first use of ``run`` and friends.
"""

from __future__ import annotations

from typing import Any

from .hooks.specs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "run", "resume", "run_together", "create_backbone", "load_recipe", "Recipe",
           "Result"]

# the public face, imported on first use so that ``import stylefw`` does not import torch (start-up time)
_LAZY = {
    "run": "stylefw.engine.api",
    "resume": "stylefw.engine.api",
    "run_together": "stylefw.engine.api",
    "create_backbone": "stylefw.engine.api",
    "Result": "stylefw.contracts.run",
    "load_recipe": "stylefw.recipe",
    "Recipe": "stylefw.contracts.recipe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib  # deferred: start-up time, as _LAZY says

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylefw' has no attribute {name!r}")
