"""Checks of a YAML document's node graph, made before any data is built from it.

PyYAML builds the data of an alias again wherever it is used, so nine aliases of nine
aliases... ("billion laughs") expand a few hundred bytes into gigabytes; in the graph an alias
is one shared node, so its expanded size can be counted cheaply first, and refused. PyYAML
also lets a mapping's later duplicate key silently win over the first, which in a config file
is a mistake (a token repeated with another role took the last one): refused too.
"""

from __future__ import annotations

import yaml

from ..errors import ConfigError

__all__ = ["MAX_EXPANDED_NODES", "check_graph"]

MAX_EXPANDED_NODES = 100_000  # values a configuration may expand to, aliases expanded
_MERGE = "tag:yaml.org,2002:merge"


def check_graph(root: yaml.Node, source: str) -> None:
    """Raise ``ConfigError`` if the document expands to more than ``MAX_EXPANDED_NODES``
    values, or if a mapping has a key twice."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order, iterative: every distinct node once
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not children_done:
            if isinstance(node, yaml.MappingNode):
                _check_keys(node, source)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(sizes[id(child)] for child in children)
        if size > MAX_EXPANDED_NODES:
            line = node.start_mark.line + 1
            raise ConfigError(
                f"{source}:{line}: the document expands to more than {MAX_EXPANDED_NODES} "
                "values (anchors and aliases repeat what they name): write it out, or use "
                "fewer aliases of aliases"
            )
        sizes[id(node)] = size


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_keys(node: yaml.MappingNode, source: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        line = key.start_mark.line + 1
        first = seen.get((key.tag, key.value))
        if first is not None:
            raise ConfigError(
                f"{source}:{line}: key {key.value!r} appears twice in one mapping (first on "
                f"line {first}); a later one would silently replace the first: keep one"
            )
        seen[(key.tag, key.value)] = line
