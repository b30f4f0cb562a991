"""What a result depends on besides its recipe: the versions of stylefw, torch and Python, the CPU kernels torch
chose, and the plugins, read once and recorded by outputs, recipe goldens and the estimate's cache alike."""

from __future__ import annotations

import platform
from typing import Any

import torch
import torchvision

from .. import __version__
from ..hooks.manager import PluginManager, plugin_infos

__all__ = ["versions"]


def versions(manager: PluginManager | None) -> dict[str, Any]:
    """stylefw, torch, torchvision, Python and CPU-kernel versions, and ``plugins``: each plugin's name with its
    distribution and version (``{"example": "stylefw-example-plugin 0.1.0"}``)."""
    plugins = {info.name: f"{info.distribution} {info.version}" for info in plugin_infos(manager)} if manager else {}
    return {"stylefw": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "cpu": torch.backends.cpu.get_cpu_capability(), "plugins": plugins}
