"""Main topics: keyphrases (words and two-word phrases) weighted TF-IDF-style across conversations.

State is bounded: the term and pair counters are pruned back to half their cap whenever
they overflow, keeping the heaviest entries (the classic approximate heavy-hitters trade:
a term pruned early and seen again later restarts from zero, which only ever hurts terms
that were rare when they were dropped).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from itertools import combinations
from typing import Any

from .languages import ALL_STOPWORDS
from .text import clauses

MAX_TERMS = 20_000
MAX_PAIRS = 20_000
TITLES_PER_TERM = 3
TERMS_PER_CONVERSATION = 12  # only a conversation's strongest terms may claim its title
PAIR_TERMS = 8  # co-occurrence is counted among a conversation's top few terms
MAX_TOPICS = 8
MIN_RELATIVE_SCORE = 0.2  # weaker than this next to the main topic is noise, not a topic
BIGRAM_BOOST = 1.5  # a phrase says more than either of its words


def _content(word: str) -> bool:
    return 3 <= len(word) <= 30 and word not in ALL_STOPWORDS and "'" not in word


def keyphrases(texts: Iterable[str]) -> Counter[str]:
    """Counts of content words and adjacent content-word pairs in `texts`."""
    tf: Counter[str] = Counter()
    for text in texts:
        for clause in clauses(text):
            prev: str | None = None
            for word in clause:
                if _content(word):
                    tf[word] += 1
                    if prev is not None and prev != word:
                        tf[f"{prev} {word}"] += 1
                    prev = word
                else:
                    prev = None
    return tf


def _prune(counter: dict[Any, float], cap: int) -> set[Any]:
    """Keep the heaviest cap//2 entries; return the keys dropped."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    dropped = {k for k, _ in ranked[cap // 2 :]}
    for key in dropped:
        del counter[key]
    return dropped


def _display(label: str, titles: list[str]) -> str:
    """The label as the titles spell it mid-sentence ("Rust", "API"), else lower case."""
    pattern = re.compile(rf"(?<=\S )({re.escape(label)})\b", re.IGNORECASE)
    for title in titles:
        if (match := pattern.search(title)) and match.group(1) != match.group(1).lower():
            return match.group(1)
    return label


class Topics:
    """Accumulates keyphrase weights, document frequencies, co-occurrences and titles."""

    def __init__(self) -> None:
        self.documents = 0
        self.df: Counter[str] = Counter()
        self.weight: dict[str, float] = {}
        self.titles: dict[str, list[tuple[float, int, str]]] = {}
        self.pairs: Counter[tuple[str, str]] = Counter()

    def add(self, index: int, title: str | None, texts: list[str]) -> None:
        """Record one conversation from the person's prose; the title is context only."""
        tf = keyphrases(texts)
        if not tf:
            return
        self.documents += 1
        title_terms = set(keyphrases([title])) if title else set()
        for term in title_terms & tf.keys():
            tf[term] += 1  # the title marks what the conversation was about
        total = sum(tf.values())
        for term, count in tf.items():
            self.df[term] += 1
            self.weight[term] = self.weight.get(term, 0.0) + 1.0 + math.log(count)
        strongest = sorted(
            tf, key=lambda t: (-tf[t] * (BIGRAM_BOOST if " " in t else 1.0), t)
        )[:TERMS_PER_CONVERSATION]
        if title and title.strip():
            for term in strongest:
                rep = tf[term] / total + (0.5 if term in title_terms else 0.0)
                self._offer_title(term, (rep, -index, title.strip()))
        for a, b in combinations(sorted(strongest[:PAIR_TERMS]), 2):
            self.pairs[(a, b)] += 1
        if len(self.df) > MAX_TERMS:
            for term in _prune(self.weight, MAX_TERMS):
                del self.df[term]
                self.titles.pop(term, None)
        if len(self.pairs) > MAX_PAIRS:
            _prune(self.pairs, MAX_PAIRS)

    def _offer_title(self, term: str, entry: tuple[float, int, str]) -> None:
        best = self.titles.setdefault(term, [])
        if any(title == entry[2] for _, _, title in best):
            return
        best.append(entry)
        best.sort(reverse=True)
        del best[TITLES_PER_TERM:]

    def state_size(self) -> dict[str, int]:
        return {
            "terms": len(self.df),
            "pairs": len(self.pairs),
            "titles": sum(len(v) for v in self.titles.values()),
        }

    def _score(self, term: str) -> float:
        # A half-strength floor: a phrase in every conversation may be pasted boilerplate or
        # the person's one big subject; it should neither vanish nor outrank focused topics.
        idf = math.log((self.documents + 1) / (self.df[term] + 0.5)) + 0.5
        return self.weight[term] * idf * (BIGRAM_BOOST if " " in term else 1.0)

    def _related(self, head: str, term: str, covered: set[str]) -> bool:
        """Same topic: a sub-phrase of a member, a phrase holding the head, or co-occurring."""
        words = set(term.split())
        if words <= covered or set(head.split()) <= words:
            return True
        together = self.pairs.get((min(head, term), max(head, term)), 0)
        return together >= 2 and together >= 0.5 * min(self.df[head], self.df[term])

    def summary(self) -> list[dict[str, Any]]:
        """The main topics, heaviest first, each with keyphrases and representative titles."""
        if not self.documents:
            return []
        min_df = 2 if self.documents >= 4 else 1
        candidates = sorted(
            (t for t, df in self.df.items() if df >= min_df),
            key=lambda t: (-self._score(t), t),
        )[: MAX_TOPICS * 8]
        topics: list[dict[str, Any]] = []
        taken: set[str] = set()
        floor = MIN_RELATIVE_SCORE * self._score(candidates[0]) if candidates else 0.0
        for head in candidates:
            if head in taken or len(topics) >= MAX_TOPICS or self._score(head) < floor:
                continue
            members, covered = [head], set(head.split())
            grew = True
            while grew:  # a phrase joining can make its words join too: repeat until stable
                grew = False
                for term in candidates:
                    if term in taken or term in members:
                        continue
                    if self._related(head, term, covered):
                        members.append(term)
                        covered.update(term.split())
                        grew = True
            taken.update(members)
            # A word already inside a listed phrase adds nothing to the list.
            phrases = [m for m in members if " " in m]
            shown = [head] + [
                m for m in members[1:] if " " in m or not any(m in p.split() for p in phrases)
            ]
            titles = sorted(
                {e for t in members for e in self.titles.get(t, [])}, reverse=True
            )
            seen: list[str] = []
            for _, _, title in titles:
                if title not in seen:
                    seen.append(title)
            topics.append({
                "label": head,
                "name": _display(head, seen),
                "keyphrases": shown[:5],
                "conversations": self.df[head],
                "share": round(self.df[head] / self.documents, 3),
                "titles": seen[:TITLES_PER_TERM],
            })
        return topics
