"""torch's Adam, L-BFGS and SGD; recipe keys other than ``name`` are passed as keyword arguments.

Each is registered through a typed factory whose annotations declare the valid values (torch's own
checks, and a few it leaves out), so loading a recipe checks them without building an optimizer.

Adam declares how its state follows the image when a multi-scale run resizes it, so the next stage keeps
its per-pixel step sizes; L-BFGS and SGD declare nothing and start afresh at each stage.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Literal, Mapping

import torch
import torch.nn.functional as F

from stylefw import hookimpl
from stylefw.markers import Range

__all__ = ["adam", "sgd", "lbfgs", "resize_adam_state"]

NonNegative = Annotated[float, Range(0)]
# a moment's decay: 1 would never forget the first gradient
Beta = Annotated[float, Range(0, 1, high_open=True)]
Count = Annotated[int, Range(1)]


def adam(params: Iterable[torch.Tensor], *, lr: NonNegative = 1e-3, betas: tuple[Beta, Beta] = (0.9, 0.999),
         eps: Annotated[float, Range(0, low_open=True)] = 1e-8, weight_decay: NonNegative = 0.0,
         amsgrad: bool = False, foreach: bool | None = None, fused: bool | None = None) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015), torch's implementation: per-pixel step sizes from running gradient moments."""
    # eps above 0, stricter than torch: a pixel held at the [0, 1] box gets a zero gradient, and 0 / (0 + 0)
    # would turn it into NaN. betas as floats: torch refuses a mix of int and float, such as [0, 0.99]
    return torch.optim.Adam(params, lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps,
                            weight_decay=weight_decay, amsgrad=amsgrad, **_given(foreach=foreach, fused=fused))


def sgd(params: Iterable[torch.Tensor], *, lr: NonNegative = 1e-3, momentum: NonNegative = 0.0,
        dampening: Annotated[float, Range(0, 1)] = 0.0, weight_decay: NonNegative = 0.0, nesterov: bool = False,
        foreach: bool | None = None, fused: bool | None = None) -> torch.optim.SGD:
    """Stochastic gradient descent, torch's implementation, with optional (Nesterov) momentum."""
    # nesterov needs momentum above 0 and no dampening: torch says so when the run builds it
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                           nesterov=nesterov, **_given(foreach=foreach, fused=fused))


def lbfgs(params: Iterable[torch.Tensor], *, lr: NonNegative = 1.0, max_iter: Count = 20,
          max_eval: Count | None = None, tolerance_grad: NonNegative = 1e-7, tolerance_change: NonNegative = 1e-9,
          history_size: Count = 100, line_search_fn: Literal["strong_wolfe"] | None = None) -> torch.optim.LBFGS:
    """L-BFGS, torch's implementation: up to max_iter evaluations per step, optionally with a line search."""
    return torch.optim.LBFGS(params, lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                             tolerance_change=tolerance_change, history_size=history_size,
                             line_search_fn=line_search_fn)


def _given(**options: Any) -> dict[str, Any]:
    # None leaves the choice to torch, and keeps older torch versions (without fused SGD) working
    return {key: value for key, value in options.items() if value is not None}


def resize_adam_state(state: Mapping[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
    """Adam's state for an image resized to ``shape`` (height, width): moments resampled bilinear, step count kept.

    Not bicubic, like the image: bicubic overshoot flips the sign of the first moment beside sharp edges,
    and where the second moment is small that is a full-size step the wrong way. Measured at 256 px with
    real VGG-16 weights (BENCHMARKS.md), a bicubic first moment doubled the isolated bright dots in dark
    areas against a fresh Adam; bilinear left as few as a fresh one. The second moment is a variance:
    floored at 0, whatever the resampling.
    """
    resized = dict(state)
    step = state.get("step")
    if isinstance(step, torch.Tensor):
        resized["step"] = step.clone()  # Adam counts in place: a shared tensor would count for both optimizers
    if "exp_avg" in state:
        resized["exp_avg"] = F.interpolate(state["exp_avg"], size=shape, mode="bilinear", align_corners=False)
    for key in ("exp_avg_sq", "max_exp_avg_sq"):
        if key in state:
            resized[key] = F.interpolate(state[key], size=shape, mode="bilinear", align_corners=False).clamp_min(0)
    return resized


@hookimpl
def register_optimizers(register) -> None:
    """The built-in optimizers."""
    register("adam", adam, resize_state=resize_adam_state, default=True)
    register("lbfgs", lbfgs)
    register("sgd", sgd)
