"""Soulprint profile and offline portrait, from a synthetic person's conversations.

Guards pitfall: a soulprint that describes the assistant instead of the person, or one
that reads as a statistics dump; and the 500 MB export that must not live in memory.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from pipeline.exports.models import Conversation, Message
from pipeline.soulprint import ProfileBuilder, build_soulprint, render_portrait
from pipeline.soulprint import names as names_mod
from pipeline.soulprint import quotes as quotes_mod
from pipeline.soulprint import topics as topics_mod


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def conv(index: int, title: str | None, start: str, *turns: str) -> Conversation:
    """Alternating user / assistant turns, a minute and a half apart."""
    t0 = ts(start)
    messages = [
        Message(
            id=f"c{index}-m{i}",
            role="user" if i % 2 == 0 else "assistant",
            text=text,
            create_time=t0 + 90 * i,
            content_type="text",
        )
        for i, text in enumerate(turns)
    ]
    return Conversation(f"c{index}", title, t0, t0 + 90 * len(turns), messages, index)


# The assistant's replies carry words ("quantum", "blockchain") the person never wrote:
# they must never surface as the person's topics or quotes.
ASSISTANT_NOISE = (
    "I think quantum blockchain synergy is the key here. I believe you should leverage "
    "quantum blockchain paradigms for maximum synergy."
)


def maya() -> list[Conversation]:
    """Maya: backend developer, sourdough baker, half-marathon trainee, mother, learning Spanish."""
    a = ASSISTANT_NOISE
    return [
        conv(
            0,
            "Sourdough starter not rising",
            "2024-01-14T20:05:00",
            "My sourdough starter has stopped rising. I feed it every morning with rye flour "
            "and water, but it barely doubles anymore. The kitchen is cold in winter.",
            a,
            "I keep my kitchen around 18 degrees. Should I move the sourdough starter near "
            "the oven?",
            a,
            "Thanks, I'll try the warm spot and a stiffer feeding ratio.",
        ),
        conv(
            1,
            "Rust borrow checker confusion",
            "2024-01-21T21:10:00",
            "I'm porting our log parser from Python to Rust and the borrow checker keeps "
            "fighting me. Here is the function:\n```rust\nfn parse(line: &str) -> Entry {\n"
            "    let parts: Vec<&str> = line.split(' ').collect();\n    Entry::new(parts)\n}\n"
            "```\nWhy does it complain about lifetimes?",
            a,
            "I love Rust's guarantees, but the borrow checker makes me feel slow. I want to "
            "understand lifetimes properly instead of cloning everything.",
            a,
        ),
        conv(
            2,
            "Half marathon training plan",
            "2024-02-03T07:15:00",
            "I signed up for my first half marathon in May. I can run 8 km comfortably. "
            "Can you sketch a twelve week half marathon training plan with three runs a week?",
            a,
            "I'm a mother of a six year old, so long runs have to happen on Saturday mornings "
            "before everyone wakes up.",
            a,
        ),
        conv(
            3,
            "Rye sourdough hydration",
            "2024-02-11T20:40:00",
            "What hydration do you recommend for a rye sourdough loaf? My last loaf was "
            "dense and gummy in the middle.",
            a,
            "I think I underproofed the sourdough. I baked it after only four hours of bulk "
            "fermentation because I was impatient.",
            a,
        ),
        conv(
            4,
            "Rust lifetimes in async code",
            "2024-02-25T21:30:00",
            "More Rust questions: how do lifetimes work with async functions and tokio "
            "tasks? The borrow checker says my reference does not live long enough.\n"
            "```rust\nasync fn handle(buf: &[u8]) {\n    tokio::spawn(async move { "
            "process(buf).await });\n}\n```",
            a,
            "My goal is to have the Rust parser in production by summer, without a single "
            "unsafe block.",
            a,
        ),
        conv(
            5,
            "Bedtime story about a dragon",
            "2024-03-02T19:45:00",
            "My daughter wants a bedtime story about a shy dragon who is afraid of the dark. "
            "She is six and loves stories where the small creature turns out brave.",
            a,
            "I want the dragon to learn that being afraid is normal. That matters to me more "
            "than a big adventure.",
            a,
        ),
        conv(
            6,
            "Knee pain after long runs",
            "2024-03-16T08:05:00",
            "My left knee hurts after long runs over 14 km. It started after I increased my "
            "mileage for the half marathon training.",
            a,
            "I've always been stubborn about pushing through pain, and I know that is not "
            "smart with a knee injury.",
            a,
        ),
        conv(
            7,
            "Practicing Spanish conversation",
            "2024-03-20T20:15:00",
            "Quiero practicar mi español. Mi hija y yo vamos a viajar a Sevilla en verano y "
            "quiero hablar con la gente en el mercado.",
            a,
            "Me gusta mucho el idioma, pero tengo miedo de cometer errores cuando hablo con "
            "personas reales.",
            a,
        ),
        conv(
            8,
            "Sourdough schedule around work",
            "2024-04-06T20:20:00",
            "I work full time, so I need a sourdough schedule that fits around my workday. "
            "Can I retard the dough in the fridge overnight?",
            a,
            "I love the ritual of baking sourdough on Sunday mornings with my daughter. It is "
            "the calmest part of my week.",
            a,
        ),
        conv(
            9,
            "Porting the parser to Rust",
            "2024-04-18T21:05:00",
            "The Rust parser is now twice as fast as the Python version. I'm proud of it, but "
            "I need help with error handling in Rust: anyhow or thiserror?",
            a,
            "I prefer explicit error types because I care about the people who will debug "
            "this parser at 3am.",
            a,
        ),
        conv(
            10,
            "Spanish subjunctive",
            "2024-05-02T20:50:00",
            "¿Cuándo se usa el subjuntivo en español? Siempre me confundo con 'espero que' y "
            "'creo que'.",
            a,
            "Gracias. Voy a practicar el subjuntivo con mi profesora el jueves.",
        ),
        conv(
            11,
            "Race day pacing",
            "2024-05-11T07:30:00",
            "My half marathon is next Sunday. What pacing strategy should I use if I want to "
            "finish under two hours?",
            a,
            "I'm nervous about the half marathon, but I'm also excited. Finishing it would "
            "prove to me that I can still start something new at 38.",
            a,
        ),
        conv(
            12,
            "Scoring sourdough loaves",
            "2024-06-08T20:10:00",
            "How do I score a sourdough loaf so it opens with a proper ear? My sourdough "
            "loaves spread flat.",
            a,
        ),
        conv(
            13,
            "Talking to my daughter about school",
            "2024-09-04T19:55:00",
            "My daughter started school this week and she cries every morning at the gate. "
            "I feel guilty leaving her there.",
            a,
            "I hope she learns that it is fine to be scared and go anyway. I want her to "
            "know I am always coming back.",
            a,
        ),
        conv(14, None, "2024-09-10T21:00:00", "thanks!", a),
    ]


def _user_texts(convs: list[Conversation]) -> list[str]:
    return [m.text for c in convs for m in c.messages if m.role == "user"]


def _assistant_texts(convs: list[Conversation]) -> list[str]:
    return [m.text for c in convs for m in c.messages if m.role == "assistant"]


def test_profile_counts_time_span_and_hours_come_from_the_persons_messages() -> None:
    convs = maya()
    builder = ProfileBuilder()
    for c in convs:
        builder.add(c)
    profile = builder.profile()

    user_times = [m.create_time for c in convs for m in c.messages if m.role == "user"]
    assert profile["volume"] == {
        "conversations": 15,
        "conversations_with_user_messages": 15,
        "user_messages": len(user_times),
        "assistant_messages": len(_assistant_texts(convs)),
        "user_words": sum(len(t.split()) for t in _user_texts(convs)),
    }
    act = profile["activity"]
    assert act["timezone"] == "UTC"
    assert act["first_message_at"] == "2024-01-14T20:05:00+00:00"
    assert act["last_message_at"] == "2024-09-10T21:00:00+00:00"
    hours = Counter(datetime.fromtimestamp(t, UTC).hour for t in user_times)
    assert act["by_hour"] == [hours.get(h, 0) for h in range(24)]
    assert act["peak_hour"] == 20
    assert sum(act["by_weekday"].values()) == len(user_times)
    assert act["active_days"] == len({datetime.fromtimestamp(t, UTC).date() for t in user_times})
    json.dumps(profile)  # stored as jsonb: must serialize as is


def test_topics_reflect_what_the_person_talks_about() -> None:
    profile, _ = build_soulprint(maya())
    topics = profile["topics"]
    labels = [t["label"] for t in topics]
    top = " | ".join(labels[:4])
    assert "sourdough" in top and "rust" in top and "marathon" in top, labels
    # Words only the assistant used are not the person's topics.
    every_phrase = " ".join(k for t in topics for k in t["keyphrases"])
    assert "quantum" not in every_phrase and "blockchain" not in every_phrase


def test_style_sees_questions_code_and_both_languages() -> None:
    style = build_soulprint(maya())[0]["style"]
    assert 0 < style["code_share"] < 0.2  # two of the messages paste Rust
    assert style["code_languages"] == ["rust"]
    assert 0.2 < style["question_share"] < 0.6
    langs = [lang["code"] for lang in style["languages"]]
    assert langs[0] == "en" and "es" in langs
    assert 10 < style["median_words"] < 40


def test_quotes_are_the_persons_own_self_revealing_sentences() -> None:
    convs = maya()
    profile, _ = build_soulprint(convs)
    quotes = profile["quotes"]
    assert 3 <= len(quotes) <= 5
    users, assistants = " ".join(_user_texts(convs)), " ".join(_assistant_texts(convs))
    for q in quotes:
        assert q["text"] in users
        assert q["text"] not in assistants
        assert "```" not in q["text"] and "fn " not in q["text"]
    assert len({q["conversation_title"] for q in quotes}) == len(quotes)
    assert any(q["text"].startswith("I") for q in quotes)


def test_quotes_never_carry_secrets_or_code() -> None:
    c = conv(
        0,
        "Setup",
        "2024-01-01T10:00:00",
        "I really want my email maya.r@example.com to stay private from everyone.\n"
        "I think my api key sk-abcdef1234567890abcdef should rotate every single month.\n"
        "I love how clean this feels when it finally works for the whole team.\n"
        "def handler(event, context):\n    return {'status': 200}\n",
        ASSISTANT_NOISE,
    )
    profile, _ = build_soulprint([c])
    texts = [q["text"] for q in profile["quotes"]]
    assert texts == ["I love how clean this feels when it finally works for the whole team."]


def test_portrait_reads_as_prose_about_the_person() -> None:
    profile, text = build_soulprint(maya())
    assert profile["narration"] == {"source": "offline"}
    assert text.startswith("# Your soulprint")
    lowered = text.lower()
    for label in [t["label"] for t in profile["topics"][:3]]:
        assert label in lowered
    assert "“Sourdough" in text  # representative titles are woven in
    assert "UTC" in text
    headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert len(headings) >= 4
    for line in text.splitlines():
        assert not re.fullmatch(r"[\s\-*>#_|]*[\d.,:%]+[\s\w%]{0,12}", line), line
        assert "{" not in line and "':" not in line  # no dict or JSON leaking into prose
    paragraphs = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", ">", "-", "_"))]
    for para in paragraphs:
        sentences = re.split(r"(?<=[.!?])\s+", para)
        assert all(s.rstrip()[-1] in ".!?)”" for s in sentences), para
        assert max(len(s.split()) for s in sentences) >= 8, para
    # Quotes appear as blockquotes in the person's words.
    assert any(ln.startswith("> I") for ln in text.splitlines())
    assert "quantum" not in lowered


def test_tiny_inputs_give_a_short_honest_text() -> None:
    only_assistant = Conversation(
        "x",
        None,
        None,
        None,
        [Message("m", "assistant", "Hello! How can I help?", None, "text")],
        0,
    )
    profile, text = build_soulprint([only_assistant])
    assert profile["volume"]["user_messages"] == 0
    assert profile["topics"] == [] and profile["quotes"] == []
    assert "isn't enough here" in text and len(text) < 600
    assert "##" not in text

    one = conv(0, "Hello", "2024-05-05T10:00:00", "hello there, quick test of this thing")
    profile, text = build_soulprint([one])
    assert profile["volume"]["user_messages"] == 1
    assert "early sketch" in text and "one message" in text
    json.dumps(profile)

    assert "isn't enough" in render_portrait(ProfileBuilder().profile())


def test_untimed_messages_do_not_invent_a_schedule() -> None:
    c = conv(0, "No clock", "2024-05-05T10:00:00", "I keep my notes in plain text files.")
    c.messages[0].create_time = None
    c.create_time = None
    profile, text = build_soulprint([c])
    assert profile["activity"]["untimed_messages"] == 1
    assert sum(profile["activity"]["by_hour"]) == 0
    assert "no timestamps" in text


def test_same_input_same_profile_and_text() -> None:
    first = build_soulprint(maya())
    second = build_soulprint(maya())
    assert json.dumps(first[0], sort_keys=True) == json.dumps(second[0], sort_keys=True)
    assert first[1] == second[1]


def _letters(n: int) -> str:
    """A number spelt in letters, so the word tokenizer (letters only) sees a new word."""
    out = ""
    while True:
        n, d = divmod(n, 26)
        out += chr(97 + d)
        if not n:
            return out


@pytest.mark.slow
def test_state_stays_bounded_over_a_huge_export() -> None:
    """8,000 conversations with ever-new vocabulary: every internal structure stays capped.
    Guards pitfall 6 (memory and size surprises)."""
    rng = random.Random(7)
    common = ["garden", "tomatoes", "compost", "invoice", "python", "bicycle", "chess"]
    builder = ProfileBuilder()
    t0 = ts("2023-01-01T00:00:00")
    for i in range(8_000):
        # Words used in two conversations, then never again: tracked, then pruned.
        fresh = [f"zq{_letters(i // 2)}x{'abcdef'[j]}" for j in range(6)]
        words = rng.sample(common, 2) + fresh
        text = (
            f"I think my {words[0]} and {words[1]} plans need {fresh[0]} {fresh[1]} "
            f"and {fresh[2]} {fresh[3]}. I want {fresh[4]} {fresh[5]} done this year."
        )
        c = Conversation(
            f"c{i}",
            f"Title {fresh[0]}",
            t0 + 3600 * i,
            None,
            [
                Message(f"u{i}", "user", text, t0 + 3600 * i, "text"),
                Message(f"a{i}", "assistant", "Sure.", t0 + 3600 * i + 5, "text"),
            ],
            i,
        )
        builder.add(c)
        if i % 997 == 0:
            size = builder.state_size()
            assert size["terms"] <= topics_mod.MAX_TERMS
            assert size["term_conversations"] <= topics_mod.MAX_TERMS * topics_mod.CONVS_PER_TERM
            assert size["names"] <= names_mod.MAX_NAMES
            assert size["quote_pool"] <= quotes_mod.POOL_SIZE
    size = builder.state_size()
    assert topics_mod.MAX_TERMS // 2 <= size["terms"] <= topics_mod.MAX_TERMS  # pruning ran
    assert size["quote_pool"] <= quotes_mod.POOL_SIZE
    assert size["months"] <= 40 and size["length_buckets"] <= 50
    profile = builder.profile()
    assert profile["volume"]["user_messages"] == 8_000
    # The recurring words survive pruning and are the topics; the one-off words are not.
    topic_words = {w for t in profile["topics"] for k in t["keyphrases"] for w in k.split()}
    assert set(common) <= topic_words
    assert not any(w.startswith("zq") for w in topic_words)
    assert len(json.dumps(profile)) < 50_000


def test_spanish_and_portuguese_verb_forms_are_not_topics() -> None:
    """A Spanish or Portuguese speaker's everyday verbs ("estoy", "voy", "estou", "vou")
    are function words, not what they talk about: they never become topic keyphrases
    (review of issue 11: "estoy" surfaced beside "maratón" as a Spanish speaker's topic)."""
    es = [
        "Estoy entrenando para la maratón de Sevilla y voy a correr series el martes.",
        "Tengo dolor en la rodilla después de la maratón, estás seguro de que el hielo ayuda?",
        "Quiero bajar mi tiempo en la maratón, estoy corriendo cuatro días por semana.",
        "Voy a comprar zapatillas nuevas para la maratón, tengo los pies anchos.",
        "Estoy cansado, la maratón es en marzo y voy atrasado con los kilómetros largos.",
        "Estás seguro de que debo comer pasta antes de la maratón? Estoy nervioso.",
    ]
    pt = [
        "Estou aprendendo violão e vou praticar todos os dias depois do trabalho.",
        "Vou trocar as cordas do violão, estou achando o som abafado, tenho dúvidas.",
        "Estava tocando violão ontem e vamos fazer uma roda de samba no sábado.",
        "Estou com dor nos dedos de tanto violão, vou descansar amanhã.",
        "Quero aprender acordes de bossa nova no violão, estou gostando muito.",
        "Vamos ver se consigo afinar o violão sozinho, estava desafinado.",
    ]
    for texts, theme in ((es, "maratón"), (pt, "violão")):
        convs = [
            conv(i, None, f"2024-03-{i + 1:02d}T10:00:00", texts[i % len(texts)], ASSISTANT_NOISE)
            for i in range(12)
        ]
        topics = build_soulprint(convs)[0]["topics"]
        words = {w for t in topics for k in t["keyphrases"] + [t["label"]] for w in k.split()}
        assert theme in words, topics
        assert not words & {
            "estoy",
            "estás",
            "voy",
            "tengo",
            "quiero",
            "estou",
            "vou",
            "estava",
            "vamos",
            "quero",
        }, topics
