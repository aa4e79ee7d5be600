"""render_portrait: the offline soulprint_text, a warm second-person portrait in markdown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

_SMALL = (
    "no",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
# Four equal six-hour periods (UTC): with equal lengths, comparing counts IS comparing
# rates per hour, so a flat spread cannot "cluster" anywhere just because a period is
# longer (the old 7/7/5/5-hour split put flat activity "late at night").
_PERIODS = (
    ("late at night", tuple(range(0, 6))),
    ("in the morning", tuple(range(6, 12))),
    ("in the afternoon", tuple(range(12, 18))),
    ("in the evening", tuple(range(18, 24))),
)
# The busiest period must beat the average period by this much to be called a habit.
_CLEAR_PEAK = 1.25
_CODE_NAMES = {
    "js": "JavaScript",
    "javascript": "JavaScript",
    "ts": "TypeScript",
    "typescript": "TypeScript",
    "py": "Python",
    "sql": "SQL",
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "html": "HTML",
    "css": "CSS",
    "json": "JSON",
    "yaml": "YAML",
    "cpp": "C++",
    "csharp": "C#",
    "php": "PHP",
    "jsx": "React",
    "tsx": "React",
}
_PERIOD_OPENERS = {
    "late at night": "You're a night owl here",
    "in the morning": "You tend to show up early",
    "in the afternoon": "You do most of your thinking here in the afternoon",
    "in the evening": "Evenings are your time",
}


def _count(n: int, noun: str, plural: str | None = None) -> str:
    word = _SMALL[n] if n < len(_SMALL) else f"{n:,}"
    return f"{word} {noun if n == 1 else (plural or noun + 's')}"


def _share(x: float) -> str:
    """A share as people say it: 'about a third', not '0.33'."""
    if x >= 0.9:
        return "nearly all"
    if x >= 0.65:
        return "most"
    if x >= 0.55:
        return "more than half"
    if x >= 0.42:
        return "about half"
    if x >= 0.29:
        return "about a third"
    if x >= 0.22:
        return "about a quarter"
    if x >= 0.09:
        n = round(1 / x)
        return f"about one in {_SMALL[n] if n < len(_SMALL) else n}"
    return "a few" if x >= 0.02 else "hardly any"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _quoted(titles: list[str]) -> str:
    return _join([f"“{t}”" for t in titles])


def _month(iso: str | None) -> str | None:
    return datetime.fromisoformat(iso).strftime("%B %Y") if iso else None


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _intro(p: dict[str, Any]) -> str:
    vol, act = p["volume"], p["activity"]
    first, last = _month(act["first_message_at"]), _month(act["last_message_at"])
    when = (
        f"In {first}"
        if first and first == last
        else f"Between {first} and {last}"
        if first
        else "Across this export"
    )
    words = vol["user_words"]
    roughly = f", roughly {words:,} words in all" if words >= 200 else ""
    return (
        f"{when} you opened {_count(vol['conversations_with_user_messages'], 'conversation')} "
        f"and wrote {_count(vol['user_messages'], 'message')} of your own{roughly}. "
        "This portrait is drawn only from those words (what you asked about, how you put "
        "things, and when you tend to show up), never from the answers you got back."
    )


def _glance(p: dict[str, Any]) -> str | None:
    """One sentence that says who this is before the detail."""
    names = [t["name"] for t in p["topics"][:3]]
    if not names:
        return None
    words = {w.lower() for t in p["topics"][:3] for k in t["keyphrases"] for w in k.split()}
    theme = next((t["name"] for t in p["themes"] if not set(t["evidence"]) & words), None)
    tail = f", with {theme} never far from your mind" if theme else ""
    return f"At a glance, you come across as someone who keeps returning to {_join(names)}{tail}."


def _around(topic: dict[str, Any]) -> list[str]:
    """The topic's other phrases, minus those that only repeat its name."""
    name = topic["name"].lower()
    return [k for k in topic["keyphrases"][1:] if k.lower() not in name and name not in k.lower()][
        :2
    ]


def _topics(topics: list[dict[str, Any]], names: list[dict[str, Any]]) -> str:
    if not topics:
        return (
            "Your conversations range widely, without a single subject that keeps pulling you back."
        )
    lead = topics[0]
    first = f"More than anything, you come back to **{lead['name']}**"
    if lead["conversations"] >= 2:
        first += f", across {_count(lead['conversations'], 'conversation')}"
    if extra := _around(lead):
        first += f", which for you takes in {_join(extra)}"
    sentences = [first + "."]
    seconds = [
        f"**{t['name']}**" + (f" ({_join(x)})" if (x := _around(t)) else "") for t in topics[1:4]
    ]
    if seconds:
        sentences.append(f"You also spend real time on {_join(seconds)}.")
    rest = [f"**{t['name']}**" for t in topics[4:]]
    if rest:
        sentences.append(f"Further out, there are recurring threads about {_join(rest)}.")
    if who := _names(names):
        sentences.append(who)
    return " ".join(sentences)


def _names(names: list[dict[str, Any]]) -> str | None:
    """Names that recur, with who they are when the person said so."""
    told = [f"**{n['name']}**, your {n['relation']}" for n in names]
    if not told:
        return None
    return f"Some names keep coming back: {_join(told)}."


def _style(s: dict[str, Any]) -> str:
    m, p90 = s["median_words"], s["p90_words"]
    if m <= 10:
        out = [
            "You write the way people text: short and to the point, usually a dozen words or fewer."
        ]
    elif m <= 30:
        out = [
            f"You write conversationally; a typical message is a sentence or two, about {m} words."
        ]
    elif m <= 80:
        out = [
            f"You tend to explain yourself properly: a typical message runs to about {m} "
            "words, a short paragraph."
        ]
    else:
        out = [f"You write at length, in full paragraphs; a typical message is around {m} words."]
    if p90 >= 60 and p90 >= 3 * max(m, 1):
        out.append(
            f"When something matters you go much further: one message in ten runs past {p90} words."
        )
    q = s["question_share"]
    if q >= 0.5:
        out.append(f"You come with questions: {_share(q)} of your messages ask something.")
    elif q >= 0.15:
        out.append(
            f"{_cap(_share(q))} of your messages are questions; the rest is you "
            "telling, drafting and thinking out loud."
        )
    else:
        out.append("You rarely ask outright; mostly you say what you need or think out loud.")
    code, langs = s["code_share"], [_CODE_NAMES.get(c, _cap(c)) for c in s["code_languages"]]
    which = f", mostly {_join(langs[:2])}" if langs else ""
    if code >= 0.3:
        out.append(
            f"Code is part of how you think: {_share(code)} of your messages carry some{which}."
        )
    elif code >= 0.05:
        out.append(f"Now and then you paste code{which}.")
    if s["courtesy_share"] >= 0.15:
        out.append(
            f"And you are polite to a machine: please and thank you turn up in "
            f"{_share(s['courtesy_share'])} of your messages."
        )
    spoken = s["languages"]
    if len(spoken) == 1 or (spoken and spoken[0]["share"] >= 0.95):
        out.append(f"You write in {spoken[0]['name']}.")
    elif spoken:
        others = [lang["name"] for lang in spoken[1:4]]
        out.append(
            f"You write mostly in {spoken[0]['name']}, switching to {_join(others)} at times."
        )
    return " ".join(out)


def _rhythm(a: dict[str, Any]) -> str:
    hours = a["by_hour"]
    timed = sum(hours)
    if not timed:
        return "Your export carries no timestamps, so when you write stays your own secret."
    counts = {name: sum(hours[h] for h in span) for name, span in _PERIODS}
    period, span = max(_PERIODS, key=lambda pr: (counts[pr[0]], -pr[1][0]))
    # The hour quoted is the busiest hour inside the period named: the sentence can never
    # name one time of day and quote a peak in another.
    peak = max(span, key=lambda h: (hours[h], -h))
    if counts[period] >= _CLEAR_PEAK * timed / len(_PERIODS):
        out = [
            f"{_PERIOD_OPENERS[period]}: your messages cluster {period}, peaking around "
            f"{peak:02d}:00 UTC."
        ]
    else:
        busiest: int | str | None = max(range(24), key=lambda h: (hours[h], -h))
        out = [
            "You show up at any hour: no time of day clearly outweighs the others, though "
            f"the single busiest hour is around {busiest:02d}:00 UTC."
        ]
    days = a["by_weekday"]
    weekend = (days["Saturday"] + days["Sunday"]) / timed
    if a["busiest_weekday"] != a["quietest_weekday"]:
        out.append(
            f"{a['busiest_weekday']} is your busiest day and {a['quietest_weekday']} the quietest."
        )
    if weekend >= 0.42:
        out.append("A good part of it happens at weekends, away from the working week.")
    elif weekend <= 0.12 and timed >= 20:
        out.append("It happens almost entirely on weekdays.")
    if a["span_days"] >= 60:
        months = a["span_days"] / 30.4
        stretch = (
            f"{_count(round(months), 'month')}"
            if months < 24
            else f"{_count(round(months / 12), 'year')}"
        )
        busiest = _month(f"{a['busiest_month']}-01") if a["busiest_month"] else None
        tail = f", busiest in {busiest}" if busiest else ""
        out.append(
            f"Over {stretch} you came back on {_count(a['active_days'], 'different day')}{tail}."
        )
    out.append("(Times are in UTC; shift them to your own clock.)")
    return " ".join(out)


def _themes(themes: list[dict[str, Any]]) -> str:
    lead = themes[0]
    out = [
        f"Beyond the subjects themselves, some threads run through your life. "
        f"**{_cap(lead['name'])}** comes up in {_share(lead['share'])} of your conversations"
        + (f" (you mention {_join(lead['evidence'][:3])})." if lead["evidence"] else ".")
    ]
    rest = [f"**{t['name']}**" for t in themes[1:4]]
    if rest:
        rest[0] = _cap(rest[0].replace("**", "")).join(("**", "**"))
        out.append(f"{_join(rest)} surface{'s' if len(rest) == 1 else ''} again and again too.")
    return " ".join(out)


def _quotes(quotes: list[dict[str, Any]]) -> str:
    blocks = []
    for q in quotes:
        where = [f"“{q['conversation_title']}”"] if q.get("conversation_title") else []
        if q.get("date"):
            where.append(datetime.fromisoformat(q["date"]).strftime("%B %Y"))
        source = f"\n>\n> (from {', '.join(where)})" if where else ""
        blocks.append(f"> {q['text']}{source}")
    return "\n\n".join(blocks)


_ABOUT_LABELS = {
    "about_user": "What you told ChatGPT about yourself",
    "about_model": "How you asked it to answer",
}
_MAX_NOTES = 12
_MAX_NOTE_CHARS = 600


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_NOTE_CHARS else text[: _MAX_NOTE_CHARS - 1] + "…"


def _about(profile: dict[str, Any]) -> list[str]:
    """Sections for the custom instructions (the person's words, quoted) and ChatGPT's
    memory notes (clearly its notes, not the person's words); none when absent."""
    parts: list[str] = []
    own = profile.get("self_description") or []
    if own:
        blocks = []
        for entry in own[:_MAX_NOTES]:
            label = _ABOUT_LABELS.get(entry.get("kind"), "In your custom instructions")
            blocks.append(f"{label}:\n\n> {_short(entry['text'])}")
        parts += ["## In your own description", "\n\n".join(blocks)]
    notes = profile.get("memory_notes") or []
    if notes:
        lines = [f"- {_short(n['text'])}" for n in notes[:_MAX_NOTES]]
        more = len(notes) - _MAX_NOTES
        if more > 0:
            lines.append(f"- … and {_count(more, 'more note')}")
        parts += [
            "## What ChatGPT remembered about you",
            "_These are notes ChatGPT saved to its memory, in its words, not yours._\n\n"
            + "\n".join(lines),
        ]
    return parts


def render_portrait(profile: dict[str, Any]) -> str:
    """Render the profile as a readable portrait; honest about thin evidence."""
    vol = profile["volume"]
    n_user = vol["user_messages"]
    if n_user == 0:
        return (
            "# Your soulprint\n\n"
            "There isn't enough here to draw a portrait yet. This export holds "
            f"{_count(vol['conversations'], 'conversation')}, but none of your own messages, "
            "and a soulprint is made only from what you wrote. Import again once you have "
            "had a few conversations, and this page will fill in.\n"
        )
    parts = ["# Your soulprint", _intro(profile)]
    if glance := _glance(profile):
        parts[-1] += " " + glance
    if n_user < 5:
        parts.append(
            f"_This is an early sketch resting on just {_count(n_user, 'message')}, "
            "so take it lightly._"
        )
    parts += ["## What's on your mind", _topics(profile["topics"], profile.get("names", []))]
    parts += ["## How you write", _style(profile["style"])]
    parts += ["## When you show up", _rhythm(profile["activity"])]
    if profile["themes"]:
        parts += ["## What seems to matter", _themes(profile["themes"])]
    if profile["quotes"]:
        parts += ["## In your own words", _quotes(profile["quotes"])]
    parts += _about(profile)
    parts.append(
        "---\n_Drawn offline from your own messages only; nothing the assistant said was "
        "taken as yours._"
    )
    return "\n\n".join(parts) + "\n"
