"""The person's first-person sentences as chunks of their own (chunk policy "person")."""

from __future__ import annotations

from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.models import Conversation, Message
from pipeline.exports.statements import statements


def conv(*turns: tuple[str, str]) -> Conversation:
    msgs = [
        Message(f"m{i}", role, text, 1_700_000_000.0 + i, "text")
        for i, (role, text) in enumerate(turns)
    ]
    return Conversation("conv-s", "Title", None, None, msgs, 0)


def test_a_fact_told_inside_a_request_becomes_its_own_chunk() -> None:
    """A person mentions their job while asking for something else: the sentence that
    tells it is a chunk of its own, after the message's chunk, with the message's time;
    the question around it is not (it tells nothing about them). ``person-plain`` is the
    policy without these chunks (issue 11: paraphrased questions about the person missed
    facts said in passing)."""
    c = conv(
        (
            "user",
            "Could you proofread my note to the parents? I teach geography at a secondary "
            "school in Leeds. The trip is on Friday.",
        ),
        ("assistant", "Of course. Here is a corrected version."),
    )
    chunks = chunk_conversation(c, policy="person")
    assert [ch.text for ch in chunks[1:]] == [
        "User: I teach geography at a secondary school in Leeds."
    ]
    assert chunks[1].first_time == chunks[1].last_time == 1_700_000_000.0
    assert chunks[1].conversation_id == "conv-s" and chunks[1].id != chunks[0].id
    assert len(chunk_conversation(c, policy="person-plain")) == 1


def test_only_sentences_about_the_person_of_typed_messages() -> None:
    """Not every sentence is a memory: a one-sentence message is its own chunk already, a
    question asks rather than tells, a sentence without a first-person word is about
    something else, "Me too." is too short, a lower-case ``i`` in pasted code is a loop
    variable, and a message longer than a chunk (a pasted document or log) gets none.
    Other languages: Spanish "mi", Chinese 我."""
    assert statements("I love my dog Biscuit.", 1000) == []
    assert statements("How do I fix it? Should I restart?", 1000) == []
    assert statements("The sky is blue. Water is wet. Me too.", 1000) == []
    code = "Here is the trace:\nfor i in range(3): print(i)\nKeyError: i\nWhat is wrong?"
    assert statements(code, 1000) == []
    long = "I moved to Lisbon last year. " + "The report says the numbers grew. " * 40
    assert statements(long, 1000) == []
    assert statements(long, 2000) == ["I moved to Lisbon last year."]
    assert statements("¿Me ayudas? Mi hermana Lucía se casa en mayo. Gracias", 1000) == [
        "Mi hermana Lucía se casa en mayo."
    ]
    assert statements("祝酒词怎么写？我表姐小雅下个月结婚。谢谢！", 1000) == [
        "我表姐小雅下个月结婚。"
    ]


def test_repeated_sentences_once_and_turns_policy_unchanged() -> None:
    """A sentence said twice in one message is one chunk; the "turns" policy packs
    messages as before and makes no sentence chunks."""
    text = "I play the cello. Thanks for the tips. I play the cello."
    assert statements(text, 1000) == ["I play the cello."]
    c = conv(("user", text), ("assistant", "Great."))
    assert len(chunk_conversation(c, policy="turns")) == 1
