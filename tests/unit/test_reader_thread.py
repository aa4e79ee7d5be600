"""The active thread: parent pointers, branches, missing leaves, cycles, depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from export_factory import add_node, make_conversation, make_message, write_json

from pipeline.exports.models import Conversation
from pipeline.exports.reader import ExportReader


def read_one(tmp_path: Path, conv: dict[str, Any]) -> Conversation:
    reader = ExportReader(write_json(tmp_path / "conversations.json", [conv]))
    got = list(reader)
    assert len(got) == 1, reader.stats
    return got[0]


def thread_texts(conv: Conversation) -> list[str]:
    return [m.text for m in conv.messages]


def branched(era: str) -> dict[str, Any]:
    """user Q -> answer A1 (regenerated as A2), Q edited as Q' -> A3; current is A2."""
    conv = make_conversation(messages=[], era=era)
    base = conv["current_node"]
    q = add_node(conv, make_message("user", "Q", era=era, create_time=100.0), base)
    add_node(conv, make_message("assistant", "A1", era=era, create_time=101.0), q)
    a2 = add_node(conv, make_message("assistant", "A2", era=era, create_time=99.0), q)
    q2 = add_node(conv, make_message("user", "Q edited", era=era, create_time=200.0), base)
    add_node(conv, make_message("assistant", "A3", era=era, create_time=201.0), q2)
    conv["current_node"] = a2
    return conv


@pytest.mark.parametrize("era", ["2024", "2026"])
def test_edit_and_regeneration_branches_stay_off_the_thread(tmp_path: Path, era: str) -> None:
    """Guards pitfall 4 (format variations, DAG traversal): only the branch ending at
    current_node counts; edits and regenerations are siblings that are not read, and
    the thread is ordered by parents, not by time (A2 is older than its parent Q)."""
    got = read_one(tmp_path, branched(era))
    assert thread_texts(got) == ["Q", "A2"]
    assert got.metadata["mapping_nodes"] == 7 and got.metadata["thread_nodes"] == 4


def test_nodes_without_children_use_parent_pointers(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): 2026 nodes are {id, message, parent} only;
    the thread is rebuilt from `parent` alone."""
    conv = branched("2026")
    assert all(set(n) == {"id", "message", "parent"} for n in conv["mapping"].values())
    assert thread_texts(read_one(tmp_path, conv)) == ["Q", "A2"]


def test_stale_children_lists_are_ignored(tmp_path: Path) -> None:
    """Guards pitfall 4 (malformed graphs): `children` that disagree with `parent`
    pointers do not change the thread."""
    conv = branched("2024")
    for node in conv["mapping"].values():
        node["children"] = ["no-such-node"]
    assert thread_texts(read_one(tmp_path, conv)) == ["Q", "A2"]


@pytest.mark.parametrize("current", [None, "missing", "dangling-id", 42])
def test_missing_or_dangling_current_node_picks_newest_leaf(
    tmp_path: Path,
    current: Any,
) -> None:
    """Guards pitfall 4 (no valid root/leaf): without a usable current_node the thread
    ends at the leaf with the greatest create_time (A3 at t=201)."""
    conv = branched("2024")
    if current == "missing":
        del conv["current_node"]
    else:
        conv["current_node"] = current
    assert thread_texts(read_one(tmp_path, conv)) == ["Q edited", "A3"]


def test_leaf_tie_or_no_times_takes_last_leaf_in_mapping_order(tmp_path: Path) -> None:
    """Guards pitfall 4 (malformed graphs): on equal or missing times the last leaf in
    mapping order wins, deterministically."""
    conv = branched("2024")
    conv["current_node"] = None
    for node in conv["mapping"].values():
        if node["message"]:
            node["message"]["create_time"] = 5.0
    assert thread_texts(read_one(tmp_path, conv)) == ["Q edited", "A3"]
    for node in conv["mapping"].values():
        if node["message"]:
            node["message"]["create_time"] = None
    assert thread_texts(read_one(tmp_path, conv)) == ["Q edited", "A3"]
    # Reverse the mapping order: now A1's leaf is last.
    conv["mapping"] = dict(reversed(list(conv["mapping"].items())))
    assert thread_texts(read_one(tmp_path, conv)) == ["Q", "A1"]


def test_cycle_in_parent_pointers_ends_the_walk(tmp_path: Path) -> None:
    """Guards pitfall 10 (DAG traversal, cycle detection): a parent loop neither hangs nor
    raises; every node is visited once and the messages in the loop are read once."""
    conv = make_conversation(
        messages=[
            make_message("user", "one"),
            make_message("assistant", "two"),
            make_message("user", "three"),
        ]
    )
    ids = list(conv["mapping"])
    conv["mapping"][ids[0]]["parent"] = conv["current_node"]  # root -> leaf: a full loop
    got = read_one(tmp_path, conv)
    assert sorted(thread_texts(got)) == ["one", "three", "two"]
    # Self-loop on a node in the middle.
    conv = make_conversation(messages=[make_message("user", "a"), make_message("assistant", "b")])
    leaf = conv["current_node"]
    conv["mapping"][leaf]["parent"] = leaf
    assert thread_texts(read_one(tmp_path, conv)) == ["b"]


def test_cycle_without_any_leaf_and_no_current_node(tmp_path: Path) -> None:
    """Guards pitfall 10 (DAG traversal): every node is someone's parent and there is no
    current_node; the reader still returns the conversation, each message once."""
    conv = make_conversation(messages=[make_message("user", "x"), make_message("assistant", "y")])
    ids = list(conv["mapping"])
    conv["mapping"][ids[0]]["parent"] = ids[-1]
    conv["current_node"] = None
    got = read_one(tmp_path, conv)
    assert sorted(thread_texts(got)) == ["x", "y"]


@pytest.mark.slow
def test_fifty_thousand_deep_thread(tmp_path: Path) -> None:
    """Guards pitfall 10 (recursion limit): a 50,000-message thread is walked iteratively,
    root to leaf, with every message counted."""
    n = 50_000
    msgs = [
        make_message("user" if i % 2 == 0 else "assistant", f"m{i}", message_id=f"id{i}")
        for i in range(n)
    ]
    conv = make_conversation(messages=msgs, era="2026")
    got = read_one(tmp_path, conv)
    assert len(got.messages) == n
    assert got.messages[0].text == "m0" and got.messages[-1].text == f"m{n - 1}"
