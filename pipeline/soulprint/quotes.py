"""A few representative, self-revealing sentences in the person's own words."""

from __future__ import annotations

import heapq
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from .text import looks_secret, sentences, words

POOL_SIZE = 200  # best candidates kept while streaming; the final pick comes from these
MAX_QUOTES = 5
MIN_WORDS, MAX_WORDS, MAX_CHARS = 6, 45, 320

_FIRST_PERSON_OPENER = re.compile(
    r"^(?:i|i'm|i've|i'd|i'll|my|me|we|we're|our|je|j'|yo|mi|ich|mein|meine|eu|io|ik|mijn)\b",
    re.IGNORECASE,
)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|my|me|myself)\b", re.IGNORECASE)
_REVEALING = re.compile(
    r"\b(?:i (?:really |truly |honestly |still |always |never |genuinely )?(?:think|believe|feel"
    r"|love|hate|want|wish|hope|care|prefer|value|enjoy|worry|dream|miss|need to|plan|struggle"
    r"|regret|admire|like to)|i'm (?:trying|learning|working on|a |an |proud|afraid|scared"
    r"|worried|excited|happiest|not sure|starting|building|planning)|i am (?:a |an |trying"
    r"|learning)|i've (?:always|been|never|decided|started)|i'd (?:like|love) to"
    r"|my (?:goal|dream|plan|wife|husband|partner|kids|daughter|son|mom|dad|mother|father"
    r"|family|friend|job|work|team|passion)|for me|to me|matters to me|important to me"
    r"|me gusta|je pense|je veux|ich glaube|ich möchte|eu acho|penso che)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"^(?:can you|could you|would you|will you|please|pls|write|rewrite|give me|help me|make|"
    r"create|generate|explain|show me|tell me|list|fix|translate|summari[sz]e|draft|convert|"
    r"what|how|why|is there|are there|do you|does)\b",
    re.IGNORECASE,
)


def _score(sentence: str, tokens: list[str]) -> float:
    score = 0.0
    if _FIRST_PERSON_OPENER.match(sentence):
        score += 3
    score += min(2, len(_FIRST_PERSON.findall(sentence)))
    score += 2 * min(2, len(_REVEALING.findall(sentence)))
    if _REQUEST.match(sentence):
        score -= 3
    if sentence.rstrip().endswith("?"):
        score -= 2
    if 10 <= len(tokens) <= 30:
        score += 1
    return score


def _normal(sentence: str) -> str:
    return " ".join(words(sentence))


class Quotes:
    """A bounded pool of candidate sentences, best first, deduplicated by their words."""

    def __init__(self) -> None:
        # Min-heap of (score, stable tie-break, text, title, date): the weakest is evicted.
        self._pool: list[tuple[float, int, str, str | None, str | None]] = []
        self._seen: set[str] = set()  # normalized texts currently in the pool

    def add(self, prose: str, title: str | None, ts: float | None) -> None:
        """Offer the sentences of one user message's prose (code already removed)."""
        date = datetime.fromtimestamp(ts, UTC).date().isoformat() if ts else None
        for sentence in sentences(prose):
            tokens = words(sentence)
            if not MIN_WORDS <= len(tokens) <= MAX_WORDS or len(sentence) > MAX_CHARS:
                continue
            letters = sum(map(str.isalpha, sentence))
            if letters < 0.6 * len(sentence.replace(" ", "")) or looks_secret(sentence):
                continue
            score = _score(sentence, tokens)
            key = " ".join(tokens)
            if score < 3 or key in self._seen:
                continue
            # A content hash, not arrival order, breaks ties: later years get a fair chance.
            entry = (score, zlib.crc32(key.encode()), sentence, title, date)
            if len(self._pool) < POOL_SIZE:
                heapq.heappush(self._pool, entry)
            elif entry[:2] > self._pool[0][:2]:
                evicted = heapq.heapreplace(self._pool, entry)
                self._seen.discard(_normal(evicted[2]))
            else:
                continue
            self._seen.add(key)

    def to_state(self) -> dict[str, Any]:
        return {"pool": [list(e) for e in self._pool]}  # heap order kept as it is

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Quotes:
        quotes = cls()
        quotes._pool = [(e[0], e[1], e[2], e[3], e[4]) for e in state["pool"]]
        quotes._seen = {_normal(e[2]) for e in quotes._pool}
        return quotes

    def state_size(self) -> int:
        return len(self._pool)

    def summary(self, topic_terms: set[str]) -> list[dict[str, Any]]:
        """Pick a few diverse quotes, favouring ones that touch the main topics."""

        def final(entry: tuple[float, int, str, str | None, str | None]) -> tuple[float, int]:
            toks = set(words(entry[2]))
            return (entry[0] + (1.5 if toks & topic_terms else 0.0), entry[1])

        picked: list[dict[str, Any]] = []
        picked_words: list[set[str]] = []
        titles: set[str | None] = set()
        for entry in sorted(self._pool, key=final, reverse=True):
            toks = set(words(entry[2]))
            if entry[3] is not None and entry[3] in titles:
                continue  # one quote per conversation reads as a wider portrait
            if any(len(toks & other) / len(toks | other) > 0.5 for other in picked_words):
                continue
            picked.append({"text": entry[2], "conversation_title": entry[3], "date": entry[4]})
            picked_words.append(toks)
            titles.add(entry[3])
            if len(picked) == MAX_QUOTES:
                break
        return picked
