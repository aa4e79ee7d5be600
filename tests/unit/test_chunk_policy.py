"""The "person" chunk policy: memory centred on what the person wrote."""

from __future__ import annotations

import pytest

from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.models import Conversation, Message


def conv(*turns: tuple[str, str]) -> Conversation:
    msgs = [
        Message(f"m{i}", role, text, 1_700_000_000.0 + i, "text")
        for i, (role, text) in enumerate(turns)
    ]
    return Conversation("conv-p", "Title", None, None, msgs, 0)


def test_each_person_message_with_the_start_of_its_answer() -> None:
    """One chunk per message the person wrote, with at most reply_chars of the answer (cut
    at a sentence or word), so a long assistant answer does not drown what they said."""
    answer = "First sentence of the answer. " + "More detail follows here. " * 40
    c = conv(
        ("user", "My beagle Biscuit chewed my sneakers."),
        ("assistant", answer),
        ("user", "Thanks!"),
        ("assistant", "You're welcome."),
    )
    chunks = chunk_conversation(c, policy="person", reply_chars=60)
    assert [ch.text.split("\n\n")[0] for ch in chunks] == [
        "User: My beagle Biscuit chewed my sneakers.",
        "User: Thanks!",
    ]
    reply = chunks[0].text.split("\n\nAssistant: ")[1]
    assert reply.startswith("First sentence of the answer.") and reply.endswith(".")
    assert len(reply) <= 60 and chunks[0].message_count == 2
    assert chunks[1].text == "User: Thanks!\n\nAssistant: You're welcome."


def test_long_messages_split_and_answers_to_nobody_are_left_out() -> None:
    """A person's message longer than the target is split like any chunk (the reply slice
    follows the last piece); a conversation where the person wrote nothing has no chunks;
    an unknown policy is an error, not a silent fallback."""
    long = "I keep thinking about the trip. " * 80
    chunks = chunk_conversation(
        conv(("user", long), ("assistant", "Sounds great.")), target_chars=500, policy="person"
    )
    assert len(chunks) >= 5 and all(len(ch.text) <= 530 for ch in chunks)
    assert chunks[-1].text.endswith("Assistant: Sounds great.")
    assert not any("Assistant" in ch.text for ch in chunks[:-1])
    assert chunk_conversation(conv(("assistant", "Hello, how can I help?")), policy="person") == []
    with pytest.raises(ValueError, match="unknown chunk policy"):
        chunk_conversation(conv(("user", "hi")), policy="sentences")
