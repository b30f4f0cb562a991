"""stylefw 0.2's path of the plugin manager, which plugins and their tests import: it is :mod:`stylefw.hooks.manager`."""

import sys

from .hooks import manager

sys.modules[__name__] = manager  # the very module, so that anything set on one is seen through the other
