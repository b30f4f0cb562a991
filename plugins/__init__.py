"""The built-in plugins, registered through the same entry points and hooks a third party uses (``pyproject.toml``,
group ``stylefw``):

- what a recipe names: the VGG backbones (:mod:`~stylefw.plugins.vgg`, with the ``weights`` command), the
  losses (:mod:`~stylefw.plugins.losses`, :mod:`~stylefw.plugins.w2`), the optimizers and the learning-rate
  schedules, whose entry points are :mod:`~stylefw.plugins.registering`'s;
- what a run does besides optimising, on the run's hooks: :mod:`~stylefw.plugins.trace`,
  :mod:`~stylefw.plugins.sidecar`, :mod:`~stylefw.plugins.snapshots`, :mod:`~stylefw.plugins.checkpoints`,
  :mod:`~stylefw.plugins.signals` and :mod:`~stylefw.plugins.score`; and the command line's
  :mod:`~stylefw.plugins.progress` display. ``STYLEFW_BLOCK_PLUGINS`` or ``--no-plugin NAME`` leaves any of them out.
"""
