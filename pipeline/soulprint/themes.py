"""Life themes (interests and values hints) from a small lexicon, counted per conversation.

Honest by construction: a theme is reported only with the words that triggered it and the
share of conversations where the person used them; nothing is inferred beyond that.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .text import word_set as _set

LEXICON: dict[str, frozenset[str]] = {
    "family": _set(
        "family kids kid children daughter son wife husband partner mom dad mother father "
        "parents baby toddler sister brother grandma grandpa familia hijos famille kinder"
    ),
    "health and fitness": _set(
        "health fitness workout gym running marathon diet nutrition sleep "
        "exercise yoga cycling swim swimming protein injury knee"
    ),
    "learning": _set(
        "learn learning study studying course exam university curious "
        "lecture student teacher homework tutorial practice"
    ),
    "creative work": _set(
        "writing story novel poem poetry song music guitar piano paint painting draw "
        "drawing design photography film chapter plot lyrics"
    ),
    "career and work": _set(
        "career job manager team boss colleague interview resume promotion salary "
        "client clients meeting deadline startup business founder"
    ),
    "money": _set(
        "money budget savings invest investing investment mortgage rent debt taxes "
        "expenses income retirement"
    ),
    "wellbeing": _set(
        "stress stressed anxious anxiety burnout therapy therapist meditation mindfulness "
        "lonely overwhelmed calm happiness grief mental"
    ),
    "travel": _set(
        "travel trip flight itinerary vacation holiday visit hotel hiking abroad passport"
    ),
    "cooking and food": _set(
        "cook cooking recipe recipes bake baking bread sourdough dinner meal kitchen oven "
        "dough vegetarian vegan"
    ),
    "technology": _set(
        "code coding programming python javascript rust software app api database server "
        "deploy bug debug linux algorithm"
    ),
    "faith and meaning": _set(
        "faith god church prayer spiritual meaning purpose philosophy ethics soul"
    ),
}
ALL_THEME_WORDS = frozenset().union(*LEXICON.values())
MIN_SHARE = 0.05
MAX_THEMES = 5


class Themes:
    """Conversation counts per theme; bounded by the lexicon's size."""

    def __init__(self) -> None:
        self.documents = 0
        self.hits: Counter[str] = Counter()
        self.evidence: Counter[str] = Counter()

    def add(self, tokens: set[str]) -> None:
        """Record one conversation by the set of words the person used in it."""
        if not tokens:
            return
        self.documents += 1
        found = tokens & ALL_THEME_WORDS
        for word in found:
            self.evidence[word] += 1
        for theme, lexicon in LEXICON.items():
            if found & lexicon:
                self.hits[theme] += 1

    def to_state(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "hits": dict(self.hits),
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Themes:
        themes = cls()
        themes.documents = state["documents"]
        themes.hits, themes.evidence = Counter(state["hits"]), Counter(state["evidence"])
        return themes

    def summary(self) -> list[dict[str, Any]]:
        if not self.documents:
            return []
        need = max(2, MIN_SHARE * self.documents) if self.documents >= 4 else 1
        themes = []
        for theme, count in sorted(self.hits.items(), key=lambda kv: (-kv[1], kv[0])):
            if count < need:
                continue
            used = LEXICON[theme] & self.evidence.keys()
            words = sorted(used, key=lambda w: (-self.evidence[w], w))
            themes.append(
                {
                    "name": theme,
                    "conversations": count,
                    "share": round(count / self.documents, 3),
                    "evidence": words[:4],
                }
            )
        return themes[:MAX_THEMES]
