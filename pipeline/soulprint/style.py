"""How the person writes: message length, questions, code, courtesy, languages."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .languages import NAMES, detect_language
from .text import Prose

# Lengths above this land in one bucket, so the histogram has at most this many keys.
MAX_LENGTH_BUCKET = 2000
MAX_CODE_LANGUAGES = 50
_QUESTION = re.compile(r"\?(?:\s|$)|¿")
_COURTESY = re.compile(
    r"\b(?:please|thanks|thank you|thx|cheers|appreciate|por favor|gracias|merci|s'il vous"
    r" plaît|bitte|danke|obrigad[oa]|grazie|alsjeblieft|bedankt)\b",
    re.IGNORECASE,
)


class Style:
    """Per-message style counters; a length histogram gives an exact median in fixed space."""

    def __init__(self) -> None:
        self.messages = 0
        self.words = 0
        self.lengths: Counter[int] = Counter()
        self.questions = 0
        self.with_code = 0
        self.courteous = 0
        self.languages: Counter[str] = Counter()
        self.code_languages: Counter[str] = Counter()

    def add(self, raw: str, prose: Prose, tokens: list[str]) -> None:
        """Record one user message: its raw text, its prose part and the prose's words."""
        self.messages += 1
        n = len(raw.split())
        self.words += n
        self.lengths[min(n, MAX_LENGTH_BUCKET)] += 1
        if _QUESTION.search(prose.text):
            self.questions += 1
        if prose.has_code:
            self.with_code += 1
        if _COURTESY.search(prose.text):
            self.courteous += 1
        if lang := detect_language(prose.text, tokens):
            self.languages[lang] += 1
        for code_lang in prose.code_languages:
            if code_lang in self.code_languages or len(self.code_languages) < MAX_CODE_LANGUAGES:
                self.code_languages[code_lang] += 1

    def to_state(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "words": self.words,
            "lengths": {str(k): v for k, v in self.lengths.items()},
            "questions": self.questions,
            "with_code": self.with_code,
            "courteous": self.courteous,
            "languages": dict(self.languages),
            "code_languages": dict(self.code_languages),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Style:
        style = cls()
        for key in ("messages", "words", "questions", "with_code", "courteous"):
            setattr(style, key, state[key])
        style.lengths = Counter({int(k): v for k, v in state["lengths"].items()})
        style.languages = Counter(state["languages"])
        style.code_languages = Counter(state["code_languages"])
        return style

    def _percentile(self, q: float) -> int:
        target, seen = q * self.messages, 0
        for length in sorted(self.lengths):
            seen += self.lengths[length]
            if seen >= target:
                return length
        return 0

    def summary(self) -> dict[str, Any]:
        n = self.messages or 1
        detected = sum(self.languages.values()) or 1
        languages = [
            {"code": code, "name": NAMES.get(code, code), "share": round(count / detected, 3)}
            for code, count in sorted(self.languages.items(), key=lambda kv: (-kv[1], kv[0]))
            if count / detected >= 0.02
        ]
        return {
            "messages": self.messages,
            "words": self.words,
            "median_words": self._percentile(0.5) if self.messages else 0,
            "mean_words": round(self.words / n, 1),
            "p90_words": self._percentile(0.9) if self.messages else 0,
            "question_share": round(self.questions / n, 3),
            "code_share": round(self.with_code / n, 3),
            "courtesy_share": round(self.courteous / n, 3),
            "languages": languages[:6],
            "code_languages": [
                lang
                for lang, _ in sorted(self.code_languages.items(), key=lambda kv: (-kv[1], kv[0]))
            ][:5],
        }
