"""The entry points of the built-in plugins that register what a recipe names: each a ``LazyPlugin``, so that a
command that needs none of them (``stylefw --help``) imports neither their modules nor torch. (Objects of their
own module: as attributes of the ``stylefw.plugins`` package they would be replaced by the submodules of the
same names once those are imported.)"""

from __future__ import annotations

from stylefw.hooks.manager import LazyPlugin

__all__ = ["vgg", "losses", "optimizers", "schedulers"]

vgg = LazyPlugin(register_backbones="stylefw.plugins.vgg", register_commands="stylefw.plugins.cli_weights")
losses = LazyPlugin(register_losses="stylefw.plugins.losses")
optimizers = LazyPlugin(register_optimizers="stylefw.plugins.optimizers")
schedulers = LazyPlugin(register_schedulers="stylefw.plugins.schedulers")
