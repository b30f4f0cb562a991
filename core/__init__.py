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

from .hooks.specs import hookimpl
from .lazy import lazy_names

__version__ = "0.1.0"

# the public face, imported on first use so that ``import stylefw`` does not import torch (start-up time)
_MODULES = {
    "engine.api": ["run", "resume", "run_together", "create_backbone"],
    "recipe": ["load_recipe"],
    "contracts.recipe": ["Recipe"],
    "contracts.run": ["Result"],
}

__all__ = ["__version__", "hookimpl", *(name for names in _MODULES.values() for name in names)]
__getattr__, __dir__ = lazy_names(__name__, globals(), _MODULES)
