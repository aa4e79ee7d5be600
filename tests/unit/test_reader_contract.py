"""The counting contract: which nodes are "a message", and what their text is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from export_factory import (
    custom_instructions_message,
    make_conversation,
    make_message,
    write_json,
)

from pipeline.exports.models import Conversation, ReadStats
from pipeline.exports.reader import ExportReader


def read_msgs(
    tmp_path: Path, msgs: list[dict[str, Any]], **kwargs: Any
) -> tuple[Conversation, ReadStats]:
    conv = make_conversation(messages=msgs, era=kwargs.pop("era", "2025"))
    reader = ExportReader(write_json(tmp_path / "conversations.json", [conv]), **kwargs)
    got = list(reader)
    assert len(got) == 1
    return got[0], reader.stats


@pytest.mark.parametrize("era", ["2023", "2024", "2025", "2026"])
def test_custom_instructions_of_every_era_are_not_messages(tmp_path: Path, era: str) -> None:
    """Guards pitfall 4 (format variations): 2023 custom instructions (hidden system
    message with is_user_system_message) and 2024+ user_editable_context are not
    something the person said: not counted, only noted in metadata."""
    msgs = [custom_instructions_message(era), make_message("user", "hi", era=era)]
    conv, stats = read_msgs(tmp_path, msgs, era=era)
    assert [m.text for m in conv.messages] == ["hi"]
    assert (stats.messages, stats.user_messages) == (1, 1)
    assert conv.metadata["custom_instructions"] is True


def test_user_editable_context_not_hidden_is_still_not_counted(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): user_editable_context is not a counted
    content type even when the hidden flag is missing."""
    ctx = make_message(
        "user",
        content={
            "content_type": "user_editable_context",
            "user_profile": "p",
            "user_instructions": "i",
        },
    )
    conv, stats = read_msgs(tmp_path, [ctx])
    assert conv.messages == [] and stats.messages == 0


def test_tool_calls_and_tool_output_are_not_counted(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): an assistant message addressed to a tool
    (code or text), the tool's reply, execution_output and browsing displays are not
    counted; the assistant's answer to everyone is."""
    msgs = [
        make_message("user", "plot my runs"),
        make_message("assistant", "import pandas", content_type="code", recipient="python"),
        make_message("tool", content={"content_type": "execution_output", "text": "ok"}),
        make_message("assistant", "search('weather')", recipient="browser"),
        make_message("tool", "results", content_type="tether_browsing_display"),
        make_message("tool", content={"content_type": "tether_quote", "text": "q"}),
        make_message("assistant", "Here is the plot."),
        make_message("assistant", "x = 1", content_type="code", recipient="all"),
        make_message("assistant", "no recipient key", recipient=None),
    ]
    conv, stats = read_msgs(tmp_path, msgs)
    assert [m.text for m in conv.messages] == [
        "plot my runs",
        "Here is the plot.",
        "x = 1",
        "no recipient key",
    ]
    assert [m.content_type for m in conv.messages] == ["text", "text", "code", "text"]
    assert (stats.user_messages, stats.assistant_messages) == (1, 3)
    assert conv.metadata["tool_nodes"] == 5


def test_null_recipient_counts(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): `recipient: null` is "everyone"."""
    msg = make_message("assistant", "answer")
    msg["recipient"] = None
    conv, _ = read_msgs(tmp_path, [msg])
    assert [m.text for m in conv.messages] == ["answer"]


def test_thoughts_reasoning_system_and_hidden_are_not_counted(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): thoughts, reasoning_recap, system messages,
    visually hidden messages and model_editable_context never count."""
    msgs = [
        make_message("user", "why is the sky blue"),
        make_message(
            "assistant",
            content={"content_type": "thoughts", "thoughts": [{"summary": "s", "content": "c"}]},
        ),
        make_message(
            "assistant", content={"content_type": "reasoning_recap", "content": "Thought for 4s"}
        ),
        make_message("system", "You are ChatGPT"),
        make_message("assistant", "secret", hidden=True),
        make_message(
            "assistant",
            content={"content_type": "model_editable_context", "model_set_context": "memory"},
        ),
        make_message("assistant", "Rayleigh scattering."),
    ]
    conv, stats = read_msgs(tmp_path, msgs)
    assert [m.text for m in conv.messages] == ["why is the sky blue", "Rayleigh scattering."]
    assert stats.messages == 2


def test_blank_messages_are_not_counted(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): empty or whitespace-only text, empty parts
    and code without text are not messages."""
    msgs = [
        make_message("user", ""),
        make_message("user", " \n\t "),
        make_message("user", parts=[]),
        make_message("assistant", content={"content_type": "code", "language": "python"}),
        make_message("user", "\x00\x00"),
        make_message("user", "real"),
    ]
    conv, _ = read_msgs(tmp_path, msgs)
    assert [m.text for m in conv.messages] == ["real"]


def test_image_only_message_is_not_counted_but_image_with_text_is(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): multimodal parts mix dicts and strings; an
    image without words has no text, an image with a caption counts with the caption."""
    image = {
        "content_type": "image_asset_pointer",
        "asset_pointer": "file-service://f1",
        "width": 512,
        "height": 512,
    }
    msgs = [
        make_message("user", content_type="multimodal_text", parts=[image]),
        make_message("user", content_type="multimodal_text", parts=[image, "What is this?"]),
    ]
    conv, stats = read_msgs(tmp_path, msgs)
    assert [m.text for m in conv.messages] == ["What is this?"]
    assert conv.messages[0].content_type == "multimodal_text"
    assert stats.user_messages == 1


def test_voice_messages_count_with_their_transcription(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): voice messages carry audio_transcription
    dicts; their `text` is the message, joined with any string parts by newlines."""
    audio = {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://a1"}
    msgs = [
        make_message(
            "user",
            content_type="multimodal_text",
            parts=[
                {
                    "content_type": "audio_transcription",
                    "text": "remind me to water the basil",
                    "direction": "in",
                },
                audio,
            ],
        ),
        make_message(
            "assistant",
            content_type="multimodal_text",
            parts=[
                {"content_type": "audio_transcription", "text": "Sure.", "direction": "out"},
                "Done.",
            ],
        ),
        make_message("user", content_type="multimodal_text", parts=[audio]),
    ]
    conv, stats = read_msgs(tmp_path, msgs)
    assert [m.text for m in conv.messages] == ["remind me to water the basil", "Sure.\nDone."]
    assert (stats.user_messages, stats.assistant_messages) == (1, 1)


def test_unknown_roles_and_bad_nodes_skip_only_themselves(tmp_path: Path) -> None:
    """Guards pitfall 4 (malformed graphs, missing fields): a node whose message is a
    string, lacks an author or content, or has an unknown role is skipped; the rest of
    the conversation is read."""
    msgs: list[Any] = [
        make_message("user", "first"),
        make_message("critic", "hmm"),
        {"id": "weird", "author": "user", "content": "text"},
        {"id": "no-content", "author": {"role": "user"}},
        make_message("assistant", "last"),
    ]
    conv = make_conversation(messages=msgs)
    ids = list(conv["mapping"])
    conv["mapping"][ids[3]]["message"] = "not an object"
    reader = ExportReader(write_json(tmp_path / "c.json", [conv]))
    got = list(reader)
    assert [m.text for m in got[0].messages] == ["first", "last"]


def test_timestamps_float_iso_null_and_garbage(tmp_path: Path) -> None:
    """Guards pitfall 4 (malformed timestamps): float epochs pass, ISO-8601 strings are
    parsed, anything else becomes null, and no message is dropped for it."""
    values: list[Any] = [
        1_700_000_000.5,
        1_700_000_000,
        "2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00.250+02:00",
        "2024-03-01 12:00:00",
        None,
        "yesterday",
        "",
        True,
        {"t": 1},
        [1],
        1e300,
        -1e20,
        "9" * 400,
    ]
    msgs = [make_message("user", f"m{i}", create_time=v) for i, v in enumerate(values)]
    conv, stats = read_msgs(tmp_path, msgs)
    assert stats.messages == len(values)
    times = [m.create_time for m in conv.messages]
    assert times[:5] == [
        1_700_000_000.5,
        1_700_000_000.0,
        1_709_294_400.0,
        1_709_287_200.25,
        1_709_294_400.0,
    ]
    assert times[5:] == [None] * (len(values) - 5)


def test_conversation_times_and_null_title(tmp_path: Path) -> None:
    """Guards pitfall 4 (missing fields): a null title stays null, ISO conversation times
    are parsed, garbage ones become null."""
    conv = make_conversation(2, title=None)
    conv["create_time"] = "2023-05-06T07:08:09+00:00"
    conv["update_time"] = "soon"
    reader = ExportReader(write_json(tmp_path / "c.json", [conv]))
    got = next(iter(reader))
    assert got.title is None
    assert got.create_time == 1_683_356_889.0 and got.update_time is None


def test_nul_and_escaped_lone_surrogates_are_made_safe(tmp_path: Path) -> None:
    """Guards pitfall 4 (non-UTF8 characters): NUL is removed and escaped lone
    surrogates become U+FFFD, in texts, titles and ids, so PostgreSQL accepts them; a
    valid escaped pair stays an emoji."""
    conv = make_conversation(
        messages=[make_message("user", "PLACEHOLDER_A"), make_message("assistant", "PLACEHOLDER_B")]
    )
    conv["title"] = "PLACEHOLDER_T"
    path = write_json(tmp_path / "c.json", [conv])
    data = path.read_bytes()
    data = data.replace(b"PLACEHOLDER_A", b"a\\u0000b\\ud800c")
    data = data.replace(b"PLACEHOLDER_B", b"x\\udc00y \\ud83d\\ude00 \\\\ud800")
    data = data.replace(b"PLACEHOLDER_T", b"ti\\u0000tle\\udbff")
    path.write_bytes(data)
    reader = ExportReader(path)
    got = list(reader)
    assert [m.text for m in got[0].messages] == ["ab\ufffdc", "x\ufffdy 😀 \\ud800"]
    assert got[0].title == "title\ufffd"
    for text in [m.text for m in got[0].messages] + [got[0].title]:
        text.encode("utf-8")  # would raise on a lone surrogate
        assert "\x00" not in text
    assert not reader.stats.truncated


def test_raw_invalid_utf8_bytes_become_replacement_characters(tmp_path: Path) -> None:
    """Guards pitfall 4 (non-UTF8 characters): raw invalid bytes (Latin-1, a cut
    multi-byte sequence, an encoded surrogate) are replaced by U+FFFD instead of ending
    the stream; later conversations are still read."""
    convs = [
        make_conversation(messages=[make_message("user", "PLACEHOLDER")], index=0),
        make_conversation(2, index=1),
    ]
    path = write_json(tmp_path / "c.json", convs)
    path.write_bytes(path.read_bytes().replace(b"PLACEHOLDER", b"caf\xe9 \xe2\x82 \xed\xa0\x80!"))
    reader = ExportReader(path)
    got = list(reader)
    assert len(got) == 2 and not reader.stats.truncated
    text = got[0].messages[0].text
    assert text.startswith("caf\ufffd ") and text.endswith("!")
    assert "\ufffd" in text[5:]
    text.encode("utf-8")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): a UTF-8 BOM before the array is skipped."""
    path = write_json(tmp_path / "c.json", [make_conversation(2)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    reader = ExportReader(path)
    assert len(list(reader)) == 1 and reader.stats.messages == 2


def test_long_message_is_cut_at_the_cap_and_counted(tmp_path: Path) -> None:
    """Guards pitfall 6 (memory) and 4 (1000+ message conversations): a message over the
    cap is cut to exactly the cap, marked cut and counted in stats; others are intact."""
    msgs = [make_message("user", "a" * 150), make_message("assistant", "b" * 100)]
    conv, stats = read_msgs(tmp_path, msgs, max_message_chars=100)
    assert [len(m.text) for m in conv.messages] == [100, 100]
    assert [m.cut for m in conv.messages] == [True, False]
    assert stats.cut_messages == 1 and conv.metadata["cut_messages"] == 1


def test_model_slug_kept_as_metadata(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): useful extras survive as metadata."""
    conv, _ = read_msgs(
        tmp_path,
        [make_message("user", "q"), make_message("assistant", "a", metadata={"model_slug": "o3"})],
    )
    assert conv.metadata["model_slug"] == "o3"
    assert conv.metadata["hidden_nodes"] == 1  # the hidden system root message
