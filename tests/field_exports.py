"""Small invented exports rebuilt from field bug reports (issues 9 and 14).

Each builder writes one export under ``dir`` and returns its path; :data:`SHAPES` names
them all, so a test can iterate every shape the e2e tests use (``parse`` and ``run`` must
agree on each). All deterministic.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import export_factory as ef

SECRET = "my-do-not-remember-secret-about-the-surprise-party"
CANVAS_FINAL = {
    "code": "Dear Ana, thank you for the bike chain. The gears run smoothly now.",
    "string": "Ode to bread: the dough rises, the kitchen waits, the crust sings.",
    "dict": "Garden plan: tomatoes by the wall, basil in pots, water at dawn.",
}
MEMORY_NOTES = (
    "User is vegetarian and lives in Lisbon.",
    "User is learning to fix bicycles with their friend Ana.",
)
CITED = (
    "Lisbon has about 550,000 people 【12†source】 and mild winters"
    "\ue200cite\ue202turn0search18\ue202turn0news5\ue201. "
    'The tram \ue200entity\ue202["transport","Tram 28","Lisbon tram line"]\ue201 '
    "climbs the hills."
)
CITED_CLEAN = "Lisbon has about 550,000 people and mild winters. The tram Tram 28 climbs the hills."


def _node_chain(conv: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """Append ``messages`` after the conversation's current last node."""
    last = conv["current_node"]
    for msg in messages:
        last = ef.add_node(conv, msg, last)
    conv["current_node"] = last


def canvas_messages(era: str, t0: float) -> list[dict[str, Any]]:
    """A thread with three canvases, one per payload shape, each created then updated
    (plus one update with a bad pattern, which must leave the last good text)."""
    out: list[dict[str, Any]] = []
    t = t0

    def step() -> float:
        nonlocal t
        t += 10.0
        return t

    def tool_reply(name: str) -> dict[str, Any]:
        msg = ef.make_message(
            "tool", "Successfully updated text document.", era=era, create_time=step()
        )
        msg["author"]["name"] = name
        return msg

    # 1. JSON in a code message's content.text.
    out.append(
        ef.make_message(
            "user", "Help me write a thank-you letter to Ana.", era=era, create_time=step()
        )
    )
    create = {
        "name": "Letter to Ana",
        "type": "document",
        "content": "Dear Ana, thanks for the chain. The gears run smoothly now.",
    }
    out.append(
        ef.make_message(
            "assistant",
            json.dumps(create),
            era=era,
            content_type="code",
            recipient="canmore.create_textdoc",
            create_time=step(),
        )
    )
    out.append(tool_reply("canmore.create_textdoc"))
    update = {
        "updates": [
            {
                "pattern": "thanks for the chain",
                "multiple": False,
                "replacement": "thank you for the bike chain",
            }
        ]
    }
    out.append(
        ef.make_message(
            "assistant",
            json.dumps(update),
            era=era,
            content_type="code",
            recipient="canmore.update_textdoc",
            create_time=step(),
        )
    )
    out.append(tool_reply("canmore.update_textdoc"))
    bad = {"updates": [{"pattern": "([unclosed", "multiple": True, "replacement": "X"}]}
    out.append(
        ef.make_message(
            "assistant",
            json.dumps(bad),
            era=era,
            content_type="code",
            recipient="canmore.update_textdoc",
            create_time=step(),
        )
    )
    out.append(ef.make_message("assistant", "I updated the letter.", era=era, create_time=step()))
    # 2. A JSON string in parts.
    out.append(
        ef.make_message("user", "Now a short poem about bread.", era=era, create_time=step())
    )
    create = {"name": "Ode to bread", "type": "document", "content": "draft"}
    out.append(
        ef.make_message(
            "assistant",
            json.dumps(create),
            era=era,
            recipient="canmore.create_textdoc",
            create_time=step(),
        )
    )
    whole = {
        "updates": [{"pattern": ".*", "multiple": True, "replacement": CANVAS_FINAL["string"]}]
    }
    out.append(
        ef.make_message(
            "assistant",
            json.dumps(whole),
            era=era,
            recipient="canmore.update_textdoc",
            create_time=step(),
        )
    )
    # 3. An object in parts.
    out.append(ef.make_message("user", "And a plan for the garden.", era=era, create_time=step()))
    create = {
        "name": "Garden plan",
        "type": "document",
        "content": "Garden plan: tomatoes by the door, basil in pots, water at noon.",
    }
    out.append(
        ef.make_message(
            "assistant",
            era=era,
            parts=[create],
            recipient="canmore.create_textdoc",
            create_time=step(),
        )
    )
    update = {
        "updates": [
            {"pattern": "by the door", "multiple": False, "replacement": "by the wall"},
            {"pattern": "noon", "multiple": True, "replacement": "dawn"},
        ]
    }
    out.append(
        ef.make_message(
            "assistant",
            era=era,
            parts=[update],
            recipient="canmore.update_textdoc",
            create_time=step(),
        )
    )
    out.append(ef.make_message("assistant", "Here is your plan.", era=era, create_time=step()))
    return out


def memory_messages(era: str, t0: float) -> list[dict[str, Any]]:
    """The person says something; ChatGPT saves a memory (note to `bio` + tool reply)."""
    out = [
        ef.make_message(
            "user", "I am vegetarian and I live in Lisbon.", era=era, create_time=t0 + 1
        )
    ]
    for k, note in enumerate(MEMORY_NOTES):
        out.append(
            ef.make_message("assistant", note, era=era, recipient="bio", create_time=t0 + 2 + k)
        )
        reply = ef.make_message(
            "tool", "Model set context updated.", era=era, create_time=t0 + 3 + k
        )
        reply["author"]["name"] = "bio"
        out.append(reply)
    out.append(ef.make_message("assistant", CITED, era=era, create_time=t0 + 10))
    return out


ABOUT = {
    "2023": (
        "I teach chemistry in Porto and bake bread on weekends.",
        "Keep answers short and concrete.",
    ),
    "new": (
        "Preferred name: Rui\nRole: chemistry teacher\nOther Information: I bake "
        "sourdough and cycle to school.",
        "Be warm and direct.",
    ),
}
_PREAMBLE = (
    "The user provided the following information about themselves. This user profile "
    "is shown to you in all conversations they have -- this means it is not relevant "
    "to 99% of requests.\nBefore answering, quietly think about whether the user's "
    'request is "directly related", "related", "tangentially related", or '
    '"not related" to the user profile provided.\nUser profile:\n```'
)
_HOW_PREAMBLE = (
    "The user provided the additional info about how they would like you to respond:\n```"
)


def custom_instructions(era: str) -> dict[str, Any]:
    """The custom-instructions node of ``era`` as real exports hold it: 2023 a hidden
    system message with ``user_context_message_data``; 2024+ a hidden
    ``user_editable_context`` whose texts sit in ChatGPT's preamble, fenced."""
    if era == "2023":
        about, how = ABOUT["2023"]
        return ef.make_message(
            "system",
            f"User profile: {about}\nInstructions: {how}",
            era=era,
            hidden=True,
            metadata={
                "is_user_system_message": True,
                "user_context_message_data": {
                    "about_user_message": about,
                    "about_model_message": how,
                },
            },
        )
    about, how = ABOUT["new"]
    return ef.make_message(
        "user",
        era=era,
        hidden=True,
        content={
            "content_type": "user_editable_context",
            "user_profile": f"{_PREAMBLE}{about}```",
            "user_instructions": f"{_HOW_PREAMBLE}{how}```",
        },
    )


def person_export(era_pair: tuple[str, str] = ("2023", "2025")) -> list[dict[str, Any]]:
    """Issue 14's export: custom instructions in both eras (repeated in several
    conversations), memory notes (one repeated), cited answers, canvases in all three
    shapes, a starred conversation and a do-not-remember one."""
    old, new = era_pair
    convs: list[dict[str, Any]] = []
    for i, era in enumerate((old, old, new, new)):
        base = ef.make_conversation(2, era=era, index=i)
        msgs = [n["message"] for n in base["mapping"].values() if n["message"]][1:]
        conv = ef.make_conversation(0, era=era, index=i, messages=[custom_instructions(era), *msgs])
        convs.append(conv)
    t = ef._BASE_TIME[new] + 50_000
    _node_chain(convs[2], memory_messages(new, t))
    _node_chain(convs[3], memory_messages(new, t + 100)[:3])  # the first note again
    _node_chain(convs[3], canvas_messages(new, t + 200))
    convs[3]["is_starred"] = True
    hidden = ef.make_conversation(2, era=new, index=9, custom_instructions=True)
    hidden["is_do_not_remember"] = True
    _node_chain(
        hidden,
        [
            ef.make_message("user", f"Remember: {SECRET}", era=new, create_time=t + 900),
            ef.make_message("assistant", "I will not remember this.", era=new, create_time=t + 901),
            ef.make_message(
                "assistant", f"User plans {SECRET}.", era=new, recipient="bio", create_time=t + 902
            ),
        ],
    )
    convs.insert(1, hidden)
    return convs


def cesu8(text: str) -> bytes:
    """``text`` as CESU-8: characters beyond U+FFFF as two 3-byte surrogate sequences."""
    out = bytearray()
    for ch in text:
        if ord(ch) > 0xFFFF:
            v = ord(ch) - 0x10000
            for half in (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)):
                out += chr(half).encode("utf-8", "surrogatepass")
        else:
            out += ch.encode("utf-8")
    return bytes(out)


def cut_zip_bytes(convs: list[dict[str, Any]], keep: int) -> bytes:
    """A deflated ``export.zip`` cut (no central directory) so that exactly ``keep``
    whole conversations can be read from what is left."""
    import io

    from pipeline.exports.reader import ExportReader

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", ef.dumps(convs))
    data = buf.getvalue()
    start = data.index(b"conversations.json") + len("conversations.json")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.zip"
        for cut in range(start + 64, len(data), 16):
            probe.write_bytes(data[:cut])
            reader = ExportReader(probe)
            try:
                n = sum(1 for _ in reader)
            except ValueError:
                continue
            if n == keep and reader.stats.truncated:
                return data[:cut]
    raise AssertionError("no cut gives that many conversations")


# --- the shapes ------------------------------------------------------------------------


def cut_zip(d: Path) -> Path:
    """Kind 1: a compressed export.zip cut partway through conversation 4 of 5."""
    path = d / "export.zip"
    path.write_bytes(cut_zip_bytes(ef.make_export(5, 4, era="2025", assistant_chars=1500), keep=3))
    return path


def nested_zip(d: Path) -> Path:
    """Kind 2: a privacy-request archive wrapping the real export one level down."""
    inner = ef.write_zip(d / "inner.zip", ef.make_export(4, 4, era="2026"), split=True)
    path = d / "archive.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("index.html", "<html><body>Your data report</body></html>")
        zf.writestr("Account Information/profile.json", '{"email": "x@example.org"}')
        zf.writestr("User Online Activity/Other_abc-dalle-0001.zip", _tiny_zip())
        zf.write(inner, "User Online Activity/Conversations_abc-chatgpt-0001.zip")
    inner.unlink()
    return path


def _tiny_zip() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("images/readme.txt", "no conversations here")
    return buf.getvalue()


def cesu_json(d: Path) -> Path:
    """Kind 4: an emoji stored as CESU-8 in a title and a message."""
    conv = ef.make_conversation(
        0,
        era="2024",
        index=0,
        messages=[
            ef.make_message(
                "user",
                "I laughed so hard \U0001f602 today",
                era="2024",
                create_time=1_720_000_100.0,
            ),
            ef.make_message(
                "assistant", "Glad to hear it \U0001f600", era="2024", create_time=1_720_000_130.0
            ),
        ],
    )
    conv["title"] = "Jokes \U0001f602"
    path = d / "conversations.json"
    path.write_bytes(cesu8(json.dumps([conv], ensure_ascii=False)))
    return path


def do_not_remember(d: Path) -> Path:
    """Kind 5: one of three conversations is marked do-not-remember."""
    convs = ef.make_export(3, 4, era="2025")
    convs[1]["is_do_not_remember"] = True
    _node_chain(
        convs[1],
        [ef.make_message("user", f"Please keep {SECRET}", era="2025", create_time=1_750_009_000.0)],
    )
    return ef.write_zip(d / "export.zip", convs)


def canvas(d: Path) -> Path:
    """Kind 6: canvases in all three payload shapes, created and updated."""
    conv = ef.make_conversation(
        0, era="2025", index=0, messages=canvas_messages("2025", 1_750_000_000.0)
    )
    return ef.write_zip(d / "export.zip", [conv, *ef.make_export(2, 2, era="2025")[1:]])


def single_object(d: Path) -> Path:
    """Kind 7: a file holding one conversation object, not an array."""
    path = d / "conversation.json"
    path.write_bytes(ef.dumps(ef.make_conversation(4, era="2024", index=0)))
    return path


def person(d: Path) -> Path:
    """Issue 14: custom instructions (both eras), memory notes, citations, canvases."""
    return ef.write_zip(d / "export.zip", person_export())


def truncated_json(d: Path) -> Path:
    data = ef.dumps(ef.make_export(8, 4, era="2025"))
    path = d / "conversations.json"
    path.write_bytes(data[: int(len(data) * 0.7)])
    return path


def split_zip(d: Path) -> Path:
    return ef.write_zip(d / "export.zip", ef.make_export(6, 4, era="mixed"), split=True)


def wrapped(d: Path) -> Path:
    return ef.write_json(d / "conversations.json", ef.make_export(4, 4, era="mixed"), wrap=True)


def era_2023(d: Path) -> Path:
    return ef.write_json(d / "conversations.json", ef.make_export(4, 4, era="2023"), pretty=True)


def damaged_zip(d: Path) -> Path:
    """The sample export with 100 bytes zeroed in the middle (its directory intact)."""
    good = sample(d).read_bytes()
    path = d / "export.zip"
    path.write_bytes(good[: len(good) // 2] + b"\x00" * 100 + good[len(good) // 2 + 100 :])
    return path


def shards_2026(d: Path) -> Path:
    return ef.write_zip(d / "export.zip", ef.make_export(5, 6, era="2026"), split=True, per_shard=2)


def sample(d: Path) -> Path:
    return Path(__file__).resolve().parents[1] / "examples" / "sample-export.zip"


SHAPES: dict[str, Callable[[Path], Path]] = {
    "cut_zip": cut_zip,
    "nested_zip": nested_zip,
    "cesu_json": cesu_json,
    "do_not_remember": do_not_remember,
    "canvas": canvas,
    "single_object": single_object,
    "person": person,
    "truncated_json": truncated_json,
    "split_zip": split_zip,
    "wrapped": wrapped,
    "era_2023": era_2023,
    "sample": sample,
    "damaged_zip": damaged_zip,
    "shards_2026": shards_2026,
}
