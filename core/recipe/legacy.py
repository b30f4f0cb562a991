"""What stylefw 0.1 promised every backbone, kept for the plugins written against it.

In 0.1, ``backbone.weights`` (``imagenet``, ``random`` or a weights file) and ``backbone.pooling`` were recipe keys
of stylefw's own, passed to whichever backbone a recipe named and recorded in every resolved recipe. Today a
backbone declares its options itself; one that declares nothing about these two is still read that way.
"""

from __future__ import annotations

from typing import Annotated, Any

from ..markers import File

__all__ = ["WEIGHTS", "RECORDED"]

# the annotation of an undeclared ``weights`` option: a name 0.1 knew, or a file that must exist
WEIGHTS: dict[str, Any] = {"weights": Annotated[str, File("imagenet", "random")]}
# the options recorded at their defaults by a backbone that does not say which it records (``recorded_options``)
RECORDED = ("weights", "pooling")
