"""The active thread of a conversation mapping: the branch the person last saw.

Built from ``parent`` pointers (2026 exports have no ``children``); for nodes without a
``parent`` key (some 2023 exports keep only ``children`` and ``id``) the parent is the node
whose ``children`` names them. Walked iteratively, so neither depth nor cycles can break it.
"""

from __future__ import annotations

from typing import Any

from pipeline.exports.timestamps import epoch_or_none


def derived_parents(mapping: dict[Any, Any]) -> dict[Any, Any] | None:
    """child id -> parent id, read from ``children`` lists, when some node has no
    ``parent`` key at all (None otherwise: the usual export, nothing to build)."""
    if all("parent" in node for node in mapping.values() if type(node) is dict):
        return None
    found: dict[Any, Any] = {}
    for node_id, node in mapping.items():
        children = node.get("children") if type(node) is dict else None
        if type(children) is list:
            for child in children:
                if isinstance(child, str) and child != node_id:
                    found.setdefault(child, node_id)  # the first parent naming it wins
    return found


def _parent(node_id: Any, node: dict[str, Any], derived: dict[Any, Any] | None) -> Any:
    parent = node.get("parent")
    if derived is not None and "parent" not in node:
        return derived.get(node_id)
    return parent


def active_leaf(
    mapping: dict[Any, Any], current_node: Any, derived: dict[Any, Any] | None = None
) -> Any:
    """The node id the thread ends at.

    ``current_node`` when it names a node object; else the leaf (a node no other node
    names as parent) whose message has the greatest numeric ``create_time``, the last
    such leaf in mapping order on a tie or when none has a time. None when empty.
    """
    if isinstance(current_node, str) and isinstance(mapping.get(current_node), dict):
        return current_node
    parents = set()
    for node_id, node in mapping.items():
        if isinstance(node, dict):
            parent = _parent(node_id, node, derived)
            if isinstance(parent, str):
                parents.add(parent)
    best: Any = None
    best_time: float | None = None
    last_leaf: Any = None
    for node_id, node in mapping.items():
        if node_id in parents or not isinstance(node, dict):
            continue
        last_leaf = node_id
        message = node.get("message")
        t = (
            epoch_or_none(message.get("create_time"), iso=False)
            if isinstance(message, dict)
            else None
        )
        if t is not None and (best_time is None or t >= best_time):
            best, best_time = node_id, t
    if best is not None:
        return best
    if last_leaf is not None:
        return last_leaf
    # Every node is someone's parent (a cycle): start anywhere, the walk stops at the loop.
    for node_id in reversed(mapping):
        if isinstance(mapping[node_id], dict):
            return node_id
    return None


def active_thread(mapping: dict[Any, Any], current_node: Any) -> list[dict[str, Any]]:
    """Node objects from the root to the active leaf; each node at most once."""
    thread: list[dict[str, Any]] = []
    seen: set[str] = set()
    derived = derived_parents(mapping)
    node_id = active_leaf(mapping, current_node, derived)
    while isinstance(node_id, str) and node_id not in seen:
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            break
        seen.add(node_id)
        thread.append(node)
        node_id = _parent(node_id, node, derived)
    thread.reverse()
    return thread
