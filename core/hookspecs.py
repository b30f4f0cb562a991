"""stylefw 0.2's path of the hooks, which plugins and their docs name: the module is :mod:`stylefw.hooks.specs`."""

import sys

from .hooks import specs

sys.modules[__name__] = specs  # the very module, so that anything set on one is seen through the other
