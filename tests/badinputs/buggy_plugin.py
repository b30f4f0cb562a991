"""A plugin with a bug in each item, for the bad-input corpus: the CLI must name it, its distribution and the item."""

from __future__ import annotations

import os

import stylefw

HOOK_ENV = "STYLEFW_BUGGY_HOOK"  # set: the on_step hook raises


class VecLoss:
    """A loss that returns one value per channel instead of a scalar."""

    layers = ()

    def prepare(self, targets) -> None:
        pass

    def __call__(self, features, image):
        return image.mean(dim=(0, 2, 3))


class CrashLoss(VecLoss):
    """A loss whose forward raises."""

    def __call__(self, features, image):
        return {}["missing"]


def key_loss() -> VecLoss:
    """A loss factory that raises KeyError."""
    return {}["size"]


def crash_command(args) -> int:
    """A command that raises."""
    raise ValueError("the command fell over")


@stylefw.hookimpl
def register_losses(register) -> None:
    register("vecloss", VecLoss)
    register("crashloss", CrashLoss)
    register("keyloss", key_loss)


@stylefw.hookimpl
def register_commands(register) -> None:
    register("buggy", crash_command, help="a command that raises")


@stylefw.hookimpl
def on_step(event) -> None:
    if os.environ.get(HOOK_ENV):
        raise RuntimeError("the hook fell over")
