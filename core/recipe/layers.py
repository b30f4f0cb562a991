"""Resolving layer names and aliases against a backbone's ``layer_names``, without building it."""

from __future__ import annotations

import difflib
import re
from typing import Mapping, Sequence

from ..contracts.plugins import Backbone, BackboneFactory
from ..hooks.names import suggest

__all__ = ["layer_aliases", "resolve_layer", "deepest"]


def layer_aliases(backbone: Backbone | BackboneFactory) -> Mapping[str, str]:
    """Extra names a backbone accepts; integer positions in ``layer_names`` are always accepted too."""
    return getattr(backbone, "layer_aliases", {}) or {}


def resolve_layer(backbone: Backbone | BackboneFactory, layer: object, backbone_name: str) -> str:
    """The canonical name for ``layer`` (a name, an alias or an index); ``ValueError`` if unknown."""
    names: Sequence[str] = backbone.layer_names
    if isinstance(layer, bool):
        raise ValueError(f"a layer must be a name or an index, not {layer!r}")
    if isinstance(layer, int) or (isinstance(layer, str) and layer.isdigit()):
        index = int(layer)
        if 0 <= index < len(names):
            return names[index]
        raise ValueError(f"layer index {index} is out of range for {backbone_name} (0 to {len(names) - 1})")
    if not isinstance(layer, str):
        raise ValueError(f"a layer must be a name or an index, not {type(layer).__name__}")
    if layer in names:
        return layer
    aliases = layer_aliases(backbone)
    if layer in aliases:
        return aliases[layer]
    candidates = list(names) + list(aliases)
    # a plain typo (relu4_22, relu42) has one clearly closest name; only then fall back on the nearest block
    nearest = _typo_of(layer, candidates) or _nearest_block(layer, names)
    hint = f" (did you mean {nearest}?)" if nearest else suggest(layer, candidates)
    raise ValueError(f"unknown layer '{layer}' for {backbone_name}{hint}")


def _typo_of(layer: str, candidates: Sequence[str]) -> str | None:
    """The clearly closest name (ratio >= 0.8); of equally close ones the first in network order."""
    score = {name: difflib.SequenceMatcher(None, layer, name).ratio() for name in candidates}
    best = max(candidates, key=score.__getitem__, default=None)  # max() keeps the first of equals
    return best if best is not None and score[best] >= 0.8 else None


_NUMBERED = re.compile(r"^([a-z]+)(\d+)(?:_(\d+))?$")


def _nearest_block(layer: str, names: Sequence[str]) -> str | None:
    """For a well-formed name such as conv9_9: the first layer of the nearest block of that kind."""
    wanted = _NUMBERED.match(layer)
    if not wanted:
        return None
    kind, block = wanted.group(1), int(wanted.group(2))
    same_kind = [(int(m.group(2)), name) for name in names if (m := _NUMBERED.match(name)) and m.group(1) == kind]
    if not same_kind:
        return None
    # min() keeps the first of equally near names, and names are in network order: the block's first layer
    return min(same_kind, key=lambda item: abs(item[0] - block))[1]


def deepest(backbone: Backbone | BackboneFactory, layers: Sequence[str]) -> str | None:
    """The layer furthest along ``layer_names`` among ``layers`` (all canonical), or None if empty."""
    order = {name: position for position, name in enumerate(backbone.layer_names)}
    return max(layers, key=order.__getitem__) if layers else None
