"""torch's Adam, L-BFGS and SGD; recipe keys other than ``name`` are passed as keyword arguments.

Adam declares how its state follows the image when a multi-scale run resizes it, so the next stage keeps
its per-pixel step sizes; L-BFGS and SGD declare nothing and start afresh at each stage.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from stylefw import hookimpl

__all__ = ["resize_adam_state"]


def resize_adam_state(state: Mapping[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
    """Adam's state for an image resized to ``shape`` (height, width): moments resampled, step count kept.

    The first moment is a signed average gradient, resampled bicubic like the image. The second is a
    variance, which bicubic overshoot could make negative, so it is resampled bilinear and floored at 0.
    """
    resized = dict(state)
    step = state.get("step")
    if isinstance(step, torch.Tensor):
        resized["step"] = step.clone()  # Adam counts in place: a shared tensor would count for both optimizers
    if "exp_avg" in state:
        resized["exp_avg"] = F.interpolate(state["exp_avg"], size=shape, mode="bicubic", align_corners=False)
    for key in ("exp_avg_sq", "max_exp_avg_sq"):
        if key in state:
            resized[key] = F.interpolate(state[key], size=shape, mode="bilinear", align_corners=False).clamp_min(0)
    return resized


@hookimpl
def register_optimizers(register) -> None:
    """The built-in optimizers."""
    register("adam", torch.optim.Adam, resize_state=resize_adam_state)
    register("lbfgs", torch.optim.LBFGS)
    register("sgd", torch.optim.SGD)
