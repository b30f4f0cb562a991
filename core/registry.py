"""stylefw 0.2's path of the registry, which plugins and their tests import: it is :mod:`stylefw.hooks.registry`."""

import sys

from .hooks import registry

sys.modules[__name__] = registry  # the very module, so that anything set on one is seen through the other
