"""The person's statements about themselves: first-person sentences of a message they typed.

People tell facts about their life in passing, inside a request: "Can you help me write my
yearly self-review? I'm a civil engineer at a bridge project." Embedded as one text, the
request dominates the vector and "What do I do for a living?" does not find it. The
sentence "I'm a civil engineer at a bridge project." embedded on its own does (on the
benchmark persons: hybrid recall@5 from 0.93 to 1.0; see README "Searching memory").
The "person" chunk policy therefore adds each such sentence as a small chunk of its own.

``statements(text, max_chars)`` returns them, in message order, each once:

- only for a message of at most ``max_chars`` characters (typed, not a pasted document or
  log; a longer message is already cut into pieces of about one sentence group each) and
  of at least two sentences (a one-sentence message is its own chunk already);
- a sentence qualifies when it tells something about the person: it is not a question
  ("How do I fix it?" and "Can you help me ...?" ask; they tell nothing, and the message
  chunk holds them anyway), it has a first-person word of one of
  the common languages below (English, Spanish, French, German, Portuguese, Italian; 我/私
  for Chinese and Japanese), and at least three words (or four CJK characters), so that
  "Thanks!" or "Me too." is not a memory of its own.
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? followed by whitespace, or right after a CJK full stop, question
# or exclamation mark (CJK text has no spaces). Newlines end sentences too: people type
# lists and short lines without punctuation.
_SENTENCE_END = re.compile(r"[.!?]\s+|[。！？]|\n+")
# First-person words, compared whole and lower-cased (CJK 我/私 need no word boundary).
_FIRST_PERSON = frozenset(
    {
        *("me", "my", "mine", "myself", "we", "our", "us"),  # English ("I" below)
        *("yo", "mi", "mis", "nosotros", "nuestra", "nuestro"),  # Spanish
        *("je", "j", "moi", "mon", "ma", "mes", "nous", "notre"),  # French (j' of j'ai)
        *("ich", "mich", "mir", "mein", "meine", "meinen", "meinem", "meiner"),  # German
        *("wir", "unser", "unsere"),
        *("eu", "meu", "minha", "meus", "minhas", "nós"),  # Portuguese
        *("io", "mio", "mia", "miei", "mie", "noi"),  # Italian
    }
)
_ENGLISH_I = re.compile(r"\bI\b")
_WORD = re.compile(r"[^\W\d_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_QUESTION = ("?", "？")
MIN_WORDS = 3
MIN_CJK_CHARS = 4


def _about_the_person(sentence: str) -> bool:
    """A first-person word: English "I" only as a capital (a lower-case i is a loop
    variable in pasted code), the others in any case."""
    if "我" in sentence or "私" in sentence or _ENGLISH_I.search(sentence):
        return True
    return not _FIRST_PERSON.isdisjoint(_WORD.findall(sentence.lower()))


def _sentences(text: str) -> list[str]:
    """The sentences of ``text``, each with its closing mark, stripped, empty ones left out."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        mark = m.group()[0]
        stop = m.start() + 1 if mark in ".!?" else m.end() if mark in "。！？" else m.start()
        piece = text[start:stop].strip()
        if piece:
            out.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def _substantial(sentence: str) -> bool:
    return len(sentence.split()) >= MIN_WORDS or len(_CJK.findall(sentence)) >= MIN_CJK_CHARS


def statements(text: str, max_chars: int) -> list[str]:
    """The first-person sentences of ``text`` (see the module docstring), stripped; empty
    when ``text`` is longer than ``max_chars`` or has fewer than two sentences."""
    if len(text) > max_chars:
        return []
    sentences = _sentences(text)
    if len(sentences) < 2:
        return []
    out: list[str] = []
    for sentence in sentences:
        if sentence in out or sentence.endswith(_QUESTION) or not _substantial(sentence):
            continue
        if _about_the_person(sentence):
            out.append(sentence)
    return out
