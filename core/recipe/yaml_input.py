"""Reading YAML safely: pyyaml's safe loader with duplicate keys refused and caps on size, aliases and nesting.

A recipe is a few dozen values, so the caps are far above any real one. They stop what ``yaml.safe_load``
lets through: an alias bomb ("billion laughs") that expands to billions of values in memory, nesting
deep enough to end in RecursionError, and a duplicate key whose last value silently wins.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_BYTES", "MAX_VALUES", "MAX_DEPTH", "LimitError", "StrictLoader", "load_yaml"]

MAX_BYTES = 1 << 20  # 1 MiB of text
MAX_VALUES = 100_000  # values once every alias is expanded
MAX_DEPTH = 64  # mappings and lists inside each other

MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitError(yaml.MarkedYAMLError):
    """YAML that is valid but beyond one of the caps."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and YAML beyond :data:`MAX_DEPTH` or :data:`MAX_VALUES`."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # pyyaml composes recursively: count the levels, so deep nesting is a message, not a RecursionError
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise LimitError(None, None, f"is nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node:
        node = super().compose_document()
        _expanded_size(node, {}, set(), 1)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        if isinstance(node, MappingNode):
            _refuse_duplicates(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicates(loader: StrictLoader, node: MappingNode) -> None:
    """A key given twice in one mapping is an error naming both lines (merged ``<<`` keys may be overridden)."""
    seen: dict[Any, Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            first = seen[key].start_mark.line + 1
            raise ConstructorError(None, None, f"duplicate key '{key}' (first given on line {first}); "
                                   "the later value would silently win", key_node.start_mark)
        seen[key] = key_node


def _expanded_size(node: Node, sizes: dict[int, int], open_nodes: set[int], depth: int) -> int:
    """How many values ``node`` holds with every alias expanded; a LimitError past the caps.

    Sizes are memoised per node, so an alias bomb is measured in time linear in its text.
    """
    if id(node) in sizes:
        return sizes[id(node)]
    if depth > MAX_DEPTH:
        raise LimitError(None, None, f"is nested more than {MAX_DEPTH} levels deep once its aliases are expanded",
                         node.start_mark)
    if id(node) in open_nodes:
        raise LimitError(None, None, "has an alias inside the mapping or list it refers to", node.start_mark)
    open_nodes.add(id(node))
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = list(node.value)
    elif isinstance(node, MappingNode):
        children = [item for pair in node.value for item in pair]
    size = 1 + sum(_expanded_size(child, sizes, open_nodes, depth + 1) for child in children)
    open_nodes.discard(id(node))
    if size > MAX_VALUES:
        raise LimitError(None, None, f"expands to more than {MAX_VALUES} values through its aliases ('*name')",
                         node.start_mark)
    sizes[id(node)] = size
    return size


def load_yaml(text: str) -> Any:
    """``text`` read as YAML by :class:`StrictLoader`; ``yaml.YAMLError`` (with a mark where known) if refused."""
    if len(text) > MAX_BYTES:
        raise LimitError(None, None, f"is {len(text)} characters long; a recipe may be at most {MAX_BYTES}", None)
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
