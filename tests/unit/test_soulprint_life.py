"""A soulprint about the person's life, not their code (issue 12).

Guards the seed pitfall "a soulprint that describes something other than the person": a
real 2023 export once opened with "you keep returning to uid, name and node" (words of
pasted code), named none of an invented person's planted interests, and called a flat
spread of messages "late at night, peaking around 13:00".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pipeline.exports.models import Conversation, Message
from pipeline.exports.reader import ExportReader
from pipeline.soulprint import ProfileBuilder, build_soulprint, render_portrait
from pipeline.soulprint.technical import is_identifier

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-export.zip"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC).timestamp()


def _conv(index: int, title: str | None, *user_texts: str, hour: int | None = None) -> Conversation:
    start = T0 + index * 86400 + (hour or 0) * 3600
    messages = []
    for i, text in enumerate(user_texts):
        messages.append(Message(f"u{index}-{i}", "user", text, start + 60 * i, "text"))
        messages.append(
            Message(
                f"a{index}-{i}",
                "assistant",
                "Here is a careful answer about node columns and uid values.",
                start + 60 * i + 5,
                "text",
            )
        )
    return Conversation(f"c{index}", title, start, start + 600, messages, index)


def _outside_quotes(text: str) -> str:
    """The portrait minus blockquotes and “quoted” titles: what it says in its own words."""
    lines = [ln for ln in text.splitlines() if not ln.startswith(">")]
    return re.sub(r"“[^”]*”", "", "\n".join(lines))


def _topic_words(profile: dict) -> set[str]:
    return {
        w
        for t in profile["topics"]
        for k in [t["name"], *t["keyphrases"]]
        for w in re.split(r"\s+", k)
    }


def _coder_with_a_dog() -> list[Conversation]:
    """Twelve code conversations (fenced code, bare pasted code, traces, logs, inline code,
    URLs) around three about a dog called Biscuit and two about a sister's wedding."""
    code = [
        _conv(
            0,
            "uid negative in node column",
            "Why is uid negative here?\n```python\nrow = {'uid': -1, 'name': node.name}\n```",
            "Still broken: `node.uid` is -1 and `fetch_rows()` returns nothing",
        ),
        _conv(
            1,
            "KeyError in build_index",
            'Traceback (most recent call last):\n  File "app/index.py", line 40, in '
            "build_index\n    result = cache_key[user_id]\nKeyError: 'user_id'\n"
            "How do I fix it?",
        ),
        _conv(
            2,
            None,
            "ERROR 2024-03-01 12:00:01 worker crashed\nINFO retrying job 42\n"
            "WARN queue depth 900\nwhat does this log mean?",
        ),
        _conv(
            3,
            "Docs link",
            "see https://docs.python.org/3/library/asyncio.html and "
            "os.path.join, does handleSubmit need useEffect?",
        ),
        _conv(
            4,
            None,
            "def count_events(node):\n    return len(node.events)\ncount_events(root) gives 0, why",
        ),
    ]
    code += [
        _conv(
            5 + i,
            "uid_map",
            f"the uid_map for node_{i} has a negative uid again, name_column is empty",
        )
        for i in range(7)
    ]
    life = [
        _conv(
            20,
            "Beagle chewing",
            "My beagle Biscuit chewed through my sneakers again. "
            "Is there a bitter spray that is safe?",
        ),
        _conv(21, None, "The vet says Biscuit needs to lose a kilo. I feel bad cutting his food."),
        _conv(
            22,
            "Dog sitter",
            "I'm away next week. What should I tell the sitter about Biscuit, my beagle?",
        ),
        _conv(
            23,
            "Speech",
            "My sister Maya is getting married in June and I'm giving the wedding speech.",
        ),
        _conv(24, None, "What do I wear to Maya's wedding? It's at a vineyard."),
    ]
    return code + life


def test_code_identifiers_traces_logs_and_urls_never_become_topics() -> None:
    """Pitfall: the soulprint describes pasted code. Identifiers (snake_case, camelCase,
    dotted, calls), traces, logs, inline code and URLs give no topic, even when they fill
    most of the export; the dog and the wedding are what the person is about."""
    profile, text = build_soulprint(_coder_with_a_dog())
    words = _topic_words(profile)
    assert not [w for w in words if is_identifier(w)], words
    for junk in (
        "uid",
        "node",
        "name",
        "column",
        "count",
        "events",
        "negative",
        "https",
        "docs",
        "worker",
        "queue",
        "keyerror",
        "traceback",
        "fetch",
    ):
        assert junk not in {w.lower() for w in words}, (junk, profile["topics"])
    said = _outside_quotes(text)
    assert "Biscuit" in said and "wedding" in said and "Maya" in said
    assert "uid" not in said and "node" not in said


def test_pet_and_relative_are_named_with_who_they_are() -> None:
    """Pitfall: only the quotes caught the real life. A name that recurs and that the
    person introduced ("my beagle Biscuit", "Biscuit, my beagle", "my sister Maya") is
    named in the portrait's own words, with the relation."""
    profile, text = build_soulprint(_coder_with_a_dog())
    names = {n["name"]: n["relation"] for n in profile["names"]}
    assert names.get("Biscuit") == "beagle" and names.get("Maya") == "sister"
    said = _outside_quotes(text)
    assert "**Biscuit**, your beagle" in said and "**Maya**, your sister" in said


def test_plurals_and_inflections_merge_and_topics_rank_by_conversations_spanned() -> None:
    """Pitfall: the same interest split into several weak ones ("weddings", "wedding"),
    or one chatty conversation outranking a subject the person keeps coming back to."""
    convs = [
        _conv(0, None, "Planning my sister's wedding is taking over my life."),
        _conv(1, None, "Two weddings this summer, and I'm in both."),
        _conv(2, None, "The wedding venue cancelled on us."),
        _conv(3, None, "I trained for the half marathon all winter."),
        _conv(4, None, "Marathon training makes my knees hurt."),
        _conv(5, None, "Is it ok to skip marathon training when sick?"),
        _conv(6, None, " ".join(["Chess openings fascinate me."] * 12)),
        _conv(7, None, "Chess again: which opening should I learn first?"),
    ]
    topics = build_soulprint(convs)[0]["topics"]
    by_label = {t["label"]: t for t in topics}
    wedding = next(t for t in topics if "wed" in t["label"])
    assert wedding["conversations"] == 3 and wedding["name"] == "wedding"
    marathon = next(t for t in topics if "marathon" in t["label"])
    assert marathon["conversations"] == 3
    chess = by_label["chess"]
    assert chess["conversations"] == 2
    assert topics.index(chess) > topics.index(wedding)
    assert topics.index(chess) > topics.index(marathon)


def test_a_message_repeated_word_for_word_counts_once() -> None:
    """Pitfall: pasted templates (the same question in many conversations) pass for an
    interest the person keeps returning to."""
    convs = [
        _conv(i, None, "Can you explain the history of the printing press in detail?")
        for i in range(8)
    ]
    convs += [
        _conv(10 + i, None, f"My pottery class made me {w} today.")
        for i, w in enumerate(("happy", "tired", "proud"))
    ]
    topics = build_soulprint(convs)[0]["topics"]
    assert topics[0]["label"] == "pottery" and topics[0]["conversations"] == 3
    assert all("printing" not in t["label"] for t in topics)


def test_chinese_topics_are_the_persons_words_and_skip_pasted_code() -> None:
    """Pitfall: a mostly Chinese export (the real 2023 one) gets the same care: recurring
    words of the person's life, none of the code pasted between them."""
    convs = [
        _conv(0, None, "我家柯基豆豆昨晚又把拖鞋咬坏了，怎么办？"),
        _conv(1, None, "兽医说豆豆要减重一公斤。"),
        _conv(2, None, "下周出差，要请人照顾豆豆。"),
        _conv(3, None, "我每周三个晚上去体育馆练羽毛球。"),
        _conv(4, None, "打羽毛球用什么球拍比较好？"),
        _conv(5, None, "下个月有羽毛球比赛，我太紧张了。"),
    ]
    convs += [
        _conv(
            10 + i,
            None,
            f"我的代码报错了：\nTraceback (most recent call last):\n"
            f"  File \"app.py\", line {i}, in main\nKeyError: 'uid'\n"
            f"node_list 里的 uid 是负数",
        )
        for i in range(6)
    ]
    profile, text = build_soulprint(convs)
    names = [t["name"] for t in profile["topics"]]
    assert {"豆豆", "羽毛球"} <= set(names), names
    assert not [w for w in _topic_words(profile) if "uid" in w or "node" in w]
    assert "豆豆" in _outside_quotes(text) and "羽毛球" in _outside_quotes(text)
    assert {"name": "豆豆", "relation": "柯基", "conversations": 3} in profile["names"]


def test_sample_export_names_the_dog_the_trip_and_the_guitar() -> None:
    """Pitfall: the bundled sample's dog (three conversations), Japan trip and guitar were
    missing while a technical word was a top interest."""
    profile, text = build_soulprint(ExportReader(SAMPLE))
    said = _outside_quotes(text)
    for interest in ("Miso", "Japan", "guitar"):
        assert interest in said, (interest, [t["name"] for t in profile["topics"]])


def _rhythm(by_hour: list[int]) -> str:
    profile = ProfileBuilder().profile()
    profile["volume"]["user_messages"] = sum(by_hour)
    act = profile["activity"]
    act["by_hour"] = by_hour
    act["peak_hour"] = max(range(24), key=lambda h: (by_hour[h], -h))
    act["by_weekday"] = dict.fromkeys(act["by_weekday"], sum(by_hour) // 7)
    act["busiest_weekday"] = act["quietest_weekday"] = "Monday"
    text = render_portrait(profile)
    return text.split("## When you show up", 1)[1].split("##", 1)[0]


def _quoted_hour(section: str) -> int:
    return int(re.search(r"around (\d\d):00 UTC", section).group(1))


def test_a_flat_day_is_not_called_late_at_night() -> None:
    """Pitfall: periods of 7, 7, 5 and 5 hours compared by raw counts put a flat spread
    "late at night, peaking around 13:00"."""
    hours = [10] * 24
    hours[13] = 12
    section = _rhythm(hours)
    assert "night" not in section and "cluster" not in section
    assert _quoted_hour(section) == 13


def test_the_period_named_holds_the_peak_it_quotes() -> None:
    """Pitfall: the sentence contradicted its own peak. Whatever the shape, the hour quoted
    lies in the period named."""
    periods = {
        "late at night": range(0, 6),
        "in the morning": range(6, 12),
        "in the afternoon": range(12, 18),
        "in the evening": range(18, 24),
    }
    shapes = []
    evening = [1] * 24
    for h in (19, 20, 21, 22):
        evening[h] = 9
    shapes.append(evening)
    split = [0] * 24
    split[13] = 10  # one busy hour after lunch ...
    for h in range(0, 6):
        split[h] = 4  # ... but more messages, by rate, through the night
    shapes.append(split)
    morning = [0] * 24
    morning[7], morning[8] = 6, 5
    shapes.append(morning)
    for shape in shapes:
        section = _rhythm(shape)
        named = [p for p in periods if f"cluster {p}" in section]
        assert len(named) == 1, section
        assert _quoted_hour(section) in periods[named[0]], section
    assert "cluster in the evening" in _rhythm(evening)
    assert "cluster late at night" in _rhythm(split)
    assert "cluster in the morning" in _rhythm(morning)
