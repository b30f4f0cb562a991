"""Resolving layer names and aliases against a backbone's ``layer_names``, without building it."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .registry import suggest

__all__ = ["layer_aliases", "resolve_layer", "deepest"]


def layer_aliases(backbone: Any) -> Mapping[str, str]:
    """Extra names a backbone accepts; integer positions in ``layer_names`` are always accepted too."""
    return getattr(backbone, "layer_aliases", {}) or {}


def resolve_layer(backbone: Any, layer: object, backbone_name: str) -> str:
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
    hint = suggest(layer, list(names) + list(aliases))
    raise ValueError(f"unknown layer '{layer}' for {backbone_name}{hint}")


def deepest(backbone: Any, layers: Sequence[str]) -> str | None:
    """The layer furthest along ``layer_names`` among ``layers`` (all canonical), or None if empty."""
    order = {name: position for position, name in enumerate(backbone.layer_names)}
    return max(layers, key=order.__getitem__) if layers else None
