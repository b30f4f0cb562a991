"""torch's Adam, L-BFGS and SGD; recipe keys other than ``name`` are passed as keyword arguments."""

from __future__ import annotations

import torch

from stylefw import hookimpl


@hookimpl
def register_optimizers(register) -> None:
    """The built-in optimizers."""
    register("adam", torch.optim.Adam)
    register("lbfgs", torch.optim.LBFGS)
    register("sgd", torch.optim.SGD)
