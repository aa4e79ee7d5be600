"""match_memories gives each memory one slot: a sentence chunk and the message it came
from are one result, shown as the message (migration 20261201500000_memory_overlap.sql)."""

from __future__ import annotations

from tests.dbutil import create_user, user_session
from tests.search_helpers import completed_import, unit_vector, vec_literal

DIM = 384
MATCH = "select * from public.match_memories(%s::extensions.vector, %s, %s)"

MESSAGE = (
    "User: Could you proofread my note to the parents? I teach geography at a secondary "
    "school in Leeds.\n\nAssistant: Of course. Here is a corrected version."
)
SENTENCE = "User: I teach geography at a secondary school in Leeds."


def test_top_results_hold_different_memories(db_url: str) -> None:
    """Five slots, five memories: the person's sentence and the message that holds it
    (chunk policy "person") come back once, as the message (its context) at the
    sentence's better rank and score; the same sentence in
    another conversation, and two different answers to the same short reply ("Yes"), are
    different memories and both stay (issue 11: top-k filled with copies of one fact)."""
    user = create_user(db_url)
    completed_import(
        db_url,
        user,
        [
            ("c1", MESSAGE, unit_vector(DIM, 1, 2)),
            ("c1", SENTENCE, unit_vector(DIM, 1)),
            ("c2", SENTENCE + " Since 2019.", unit_vector(DIM, 1, 3)),
            ("c3", "User: Yes\n\nAssistant: Then book the train.", unit_vector(DIM, 1, 4)),
            ("c3", "User: Yes\n\nAssistant: Then pack the tent.", unit_vector(DIM, 1, 5)),
            ("c4", "User: What is the capital of Peru?", unit_vector(DIM, 6)),
        ],
    )
    with user_session(db_url, user) as conn:
        rows = conn.execute(MATCH, (vec_literal(unit_vector(DIM, 1)), None, 5)).fetchall()
    contents = [r["content"] for r in rows]
    assert contents[0] == MESSAGE  # found through its sentence, the closest chunk
    assert SENTENCE not in contents and rows[0]["score"] > rows[1]["score"]
    assert sorted(r["conversation_id"] for r in rows) == ["c1", "c2", "c3", "c3", "c4"]

    # By words: the message is found first (it has every word); the sentence inside it goes.
    with user_session(db_url, user) as conn:
        rows = conn.execute(MATCH, (None, "proofread note geography Leeds", 5)).fetchall()
    by_conv = [r["conversation_id"] for r in rows]
    assert rows[0]["content"] == MESSAGE and by_conv.count("c1") == 1
