"""A run, from the images in to the result written: the kernel's working part.

- :mod:`~stylefw.engine.api`: ``run``, ``resume``, ``run_together`` and ``create_backbone``;
- :mod:`~stylefw.engine.session`: the set-up and delivery they share;
- :mod:`~stylefw.engine.stages`: a run over its stages; :mod:`~stylefw.engine.lanes`: several as one batch;
- :mod:`~stylefw.engine.optimise`: the optimisation loop; :mod:`~stylefw.engine.tiling`: exact tiled gradients;
- :mod:`~stylefw.engine.inputs`, :mod:`~stylefw.engine.build`, :mod:`~stylefw.engine.preflight`: the device,
  the images, and the recipe's plugins built (and tried) before any step;
- :mod:`~stylefw.engine.health`, :mod:`~stylefw.engine.precision`, :mod:`~stylefw.engine.color`: a run's
  guard against non-finite losses, its arithmetic, and colour control;
- :mod:`~stylefw.engine.checkpoint`, :mod:`~stylefw.engine.outputs`, :mod:`~stylefw.engine.image`,
  :mod:`~stylefw.engine.provenance`: the files a run reads and writes, and what they record;
- :mod:`~stylefw.engine.events`: how events reach the plugins; :mod:`~stylefw.engine.calibrate`: a
  recipe's memory and speed, measured.

This package's own face is light: the modules above are imported where they are used.
"""

from __future__ import annotations

# where plugins written for stylefw 0.1 found these records
from ..contracts.plugins import Targets
from ..contracts.run import Step, Term

__all__ = ["Term", "Step", "Targets"]
