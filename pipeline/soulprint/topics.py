"""Main topics: the phrases of a person's life, ranked by how many conversations they span.

Candidates come only from the person's own prose in messages that carry no machinery
(`technical.is_technical`: identifiers, traces, logs, URLs; code blocks were cut before):
content words and adjacent word pairs, keyed by a light stem so "weddings" and "wedding"
or "trained" and "training" are one; in Chinese, the recurring pieces of Han runs
(`cjk.candidates`). A message repeated word for word in several conversations (a pasted
template, the same trivia question asked again) is counted once: a topic spans
conversations because the person came back to it, not because text was copied.

At the end, a phrase that a longer phrase always accompanies gives way to it ("tabby"
inside "tabby cat"), and phrases that keep turning up in the same conversations form one
topic ("Biscuit", "beagle"). Topics rank by the conversations their phrases span.

State is bounded and JSON-serializable for the parsing checkpoint: a phrase is tracked
only from its second conversation on (a fixed-size Bloom filter remembers the first), at
most MAX_TERMS of them, each with at most CONVS_PER_TERM conversation ids, plus a
fixed-size Bloom filter of the messages counted.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from typing import Any

from . import cjk
from .languages import ALL_STOPWORDS
from .stems import stem
from .text import word_set as _set

MAX_TERMS = 12_000
CONVS_PER_TERM = 12  # conversation ids kept per phrase: enough to see what goes together
MAX_TOPICS = 10
MAX_KEYPHRASES = 4
MAX_FORMS = 4  # surface forms remembered per phrase ("wedding", "weddings", "wedding's")
BLOOM_BITS = 1 << 19  # 64 KiB: ~0.6 % false "seen before" after 35,000 distinct messages
ONCE_BITS = 1 << 21  # 256 KiB: phrases seen in one conversation; ~1.5 % false at 200,000
BLOOM_HASHES = 3
MAX_CJK_CHARS = 400  # of one message: a pasted article is not the person talking
MIN_RELATIVE = 0.03  # a topic spans at least this share of the leading topic's conversations
MIN_SUBSUME = 0.67  # a phrase inside a longer one that spans this share of its conversations

# Words of computing and of asking that say nothing about a life, even in plain prose
# ("the node column", "count the events").
GENERIC = _set(
    """function functions variable variables array arrays string strings integer boolean null
    undefined query queries column columns node nodes schema database databases server servers
    endpoint api json css html sql regex repo commit branch deploy compile compiler runtime
    exception exceptions error errors bug bugs debug stack trace traceback syntax parameter
    parameters argument arguments method methods class classes object objects module modules
    import package packages library libraries framework code script scripts loop loops index
    key keys value values dict tuple type types config env docker npm pip git github uid uuid
    int str bool param params args kwargs async await callback promise component components
    props render request requests response responses file files folder directory path output
    input print console log logs terminal command commands bash shell default defaults test
    tests count number numbers name names event events data field fields row rows item items
    element elements result results user users list lists line lines app apps
    fix fixed issue issues problem problems step steps option options feature features
    text word words sentence paragraph format page message messages email tips tip advice
    recommend recommendation suggestions suggest detail details overview summary explain
    difference question questions answer answers example examples help thanks thank sorry
    anyone someone something anything everything normal possible enough sure worth mr mrs
    ms dr basics learn plan safe start late order"""
)
# Words too plain to be a topic alone that still belong to one ("high school", "new job").
WEAK = _set("high low big small little old new long short real full first last next best")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")  # "cable-knit" is one word
_CLAUSE_BREAK = re.compile(r"[.,;:!?¿¡()\[\]{}\"“”«»—–/\\|*#>]+|\s-\s|\n")
_CLAUSE = re.compile(r"[^.,;:!?¿¡()\[\]{}\"“”«»—–/\\|*#>\n]+")
_SENTENCE_START = re.compile(r"(?:^|[.!?…]\s+|\n)$")
_TITLE_BEFORE = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Prof)\.\s+$")


def _content(word: str) -> bool:
    w = word.lower()
    if not 3 <= len(w) <= 30 or w.endswith(("'t", "'ll", "'re", "'ve", "'d", "'m")):
        return False
    if w in ALL_STOPWORDS or w in GENERIC:
        return False
    s = stem(w)  # "says" is as empty as "say", "starting" as "start"
    return s not in ALL_STOPWORDS and s not in GENERIC


def _initial(text: str, start: int) -> bool:
    """Whether the word at `start` opens a sentence (so its capital says nothing)."""
    before = text[max(0, start - 8) : start]
    return start == 0 or (
        bool(_SENTENCE_START.search(before[-3:])) and not _TITLE_BEFORE.search(before)
    )


class _Bloom:
    """A set that only grows, in fixed space: k hashes into a bit array (no false
    negatives; a false positive now and then)."""

    def __init__(self, size_bits: int, bits: bytearray | None = None) -> None:
        self.size = size_bits
        self.bits = bits if bits is not None else bytearray(size_bits // 8)

    def _positions(self, key: str) -> list[int]:
        digest = hashlib.blake2b(key.encode(), digest_size=4 * BLOOM_HASHES).digest()
        return [
            int.from_bytes(digest[4 * i : 4 * i + 4], "little") % self.size
            for i in range(BLOOM_HASHES)
        ]

    def add(self, key: str) -> bool:
        """Record `key`; True when it was (probably) there already."""
        seen = True
        for pos in self._positions(key):
            byte, bit = divmod(pos, 8)
            if not self.bits[byte] >> bit & 1:
                seen = False
                self.bits[byte] |= 1 << bit
        return seen


@lru_cache(maxsize=65536)  # a person's vocabulary; bounded anyway
def _word_info(lower: str) -> tuple[bool, bool, str]:
    """(content word, weak word, stem key) of one lower-cased word."""
    return _content(lower), lower in WEAK, stem(lower)


def _latin_candidates(text: str) -> dict[str, tuple[str, bool | None]]:
    """stem key -> (surface form, capitalized mid-sentence: True / False, or None when it
    opens a sentence and its case says nothing) for content words and runs of two to four
    of them (a WEAK word only as part of a run)."""
    out: dict[str, tuple[str, bool | None]] = {}
    for clause_match in _CLAUSE.finditer(text):
        clause = clause_match.group(0)
        run: list[tuple[str, str, bool]] = []  # (key, form, weak) of content words in a row
        for m in _WORD.finditer(clause):
            surface = m.group(0).replace("’", "'")
            lower = surface.lower()
            if lower.endswith("'s"):
                surface, lower = surface[:-2], lower[:-2]
            content, weak, key = _word_info(lower)
            if not (content or weak):
                run = []
                continue
            capital: bool | None = False
            if surface[0].isupper() and not surface.isupper():
                capital = None if _initial(text, clause_match.start() + m.start()) else True
            form = surface if capital else lower
            run.append((key, form, weak))
            if len(run) > 4:
                del run[0]
            if not weak and (key not in out or capital or out[key][1] is None):
                out[key] = (form, capital)
            for n in range(2, len(run) + 1):
                words = run[-n:]
                if len({k for k, _, _ in words}) == n and not all(w for _, _, w in words):
                    out[" ".join(k for k, _, _ in words)] = (
                        " ".join(f for _, f, _ in words),
                        False,
                    )
    return out


class Topics:
    """Per phrase key: conversations spanned, total uses, display form, conversation ids."""

    def __init__(self) -> None:
        self.documents = 0
        # key -> [conversations, uses, form, capitalized sightings, lower-case sightings,
        #         last conversation index, [conversation indices (at most CONVS_PER_TERM)]]
        # forms: {lower-case surface form: uses}, at most MAX_FORMS of them
        self.terms: dict[str, list[Any]] = {}
        self._seen = _Bloom(BLOOM_BITS)  # messages counted
        self._once = _Bloom(ONCE_BITS)  # phrases met in one conversation, not yet tracked

    def add(self, index: int, texts: list[str]) -> list[str]:
        """One conversation: the prose of the person's messages that carry no machinery.
        Returns the texts counted (not seen word for word before)."""
        counted: list[str] = []
        found: dict[str, list[tuple[str, bool | None]]] = {}  # key -> its sightings here
        for text in texts:
            norm = " ".join(_WORD.findall(text.lower()))
            if not norm or self._seen.add(norm):
                continue  # the same words counted before: a copy, not a return
            counted.append(text)
            here = _latin_candidates(text)
            if cjk.has_han(text):
                here.update((c, (c, None)) for c in cjk.candidates(text[:MAX_CJK_CHARS]))
            for key, sighting in here.items():
                found.setdefault(key, []).append(sighting)
        if counted:
            self.documents += 1
        for key, sightings in found.items():
            entry = self.terms.get(key)
            if entry is None:
                # The doorkeeper: a phrase is tracked from its SECOND conversation on, so the
                # many one-off phrases of a long export never crowd out the ones that recur
                # thousands of conversations apart.
                if not self._once.add(key):
                    continue
                entry = self.terms[key] = [1, 0, {}, 0, 0, -1, []]
            for form, capital in sightings:
                self._sighting(entry, form, capital)
            entry[0] += 1
            entry[5] = index
            if len(entry[6]) < CONVS_PER_TERM:
                entry[6].append(index)
        if len(self.terms) > MAX_TERMS:
            ranked = sorted(self.terms, key=lambda k: (-self.terms[k][0], -self.terms[k][1], k))
            for key in ranked[MAX_TERMS // 2 :]:
                del self.terms[key]
        return counted

    @staticmethod
    def _sighting(entry: list[Any], form: str, capital: bool | None) -> None:
        """One use of a phrase: its case, and its surface form."""
        entry[1] += 1
        if capital is not None:
            entry[3 if capital else 4] += 1
        forms = entry[2]
        lower = form.lower()
        if lower in forms or len(forms) < MAX_FORMS:
            forms[lower] = forms.get(lower, 0) + 1

    def state_size(self) -> dict[str, int]:
        return {
            "terms": len(self.terms),
            "term_conversations": sum(len(e[6]) for e in self.terms.values()),
        }

    # -- the summary ----------------------------------------------------------------------

    def _display(self, key: str) -> str:
        """The form the person used most ("wedding" over "weddings" at a tie), capitalized
        if they wrote it so mid-sentence at least as often as not."""
        entry = self.terms[key]
        form = min(entry[2], key=lambda f: (-entry[2][f], len(f), f)) if entry[2] else key
        if " " in key:  # each word as it shows alone ("Machu Picchu", "tabby cat")
            return " ".join(
                self._display(k) if k in self.terms else f
                for k, f in zip(key.split(), form.split(), strict=False)
            )
        return form[:1].upper() + form[1:] if entry[3] and entry[3] >= entry[4] else form

    def _contains(self, longer: str, shorter: str) -> bool:
        if cjk.has_han(shorter):
            return cjk.contains(longer, shorter)
        return len(longer) > len(shorter) and f" {shorter} " in f" {longer} "

    def _together(self, a: str, b: str) -> bool:
        """Same topic: the two phrases share most of the conversations either spans."""
        ca, cb = set(self.terms[a][6]), set(self.terms[b][6])
        both, smaller = len(ca & cb), min(len(ca), len(cb))
        # Ids are kept from a phrase's second conversation on, so a phrase seen twice has
        # one: sharing it is all the evidence there can be.
        return both >= min(2, smaller) and both >= 0.5 * smaller

    def summary(self) -> list[dict[str, Any]]:
        """The main topics, most conversations first, each with its phrases."""
        if not self.documents:
            return []
        min_df = 2 if self.documents >= 4 else 1
        ranked = sorted(
            (k for k, e in self.terms.items() if e[0] >= min_df),
            key=lambda k: (-self.terms[k][0], -self.terms[k][1], -len(k), k),
        )[: MAX_TOPICS * 12]
        # A phrase always found inside a longer candidate gives way to it.
        kept = [
            k
            for k in ranked
            if not any(
                self._contains(o, k) and self.terms[o][0] >= MIN_SUBSUME * self.terms[k][0]
                for o in ranked
            )
        ]
        groups: list[tuple[int, int, str, list[str]]] = []
        taken: set[str] = set()
        for head in kept:
            if head in taken:
                continue
            members = [head] + [
                k for k in kept if k not in taken and k != head and self._together(head, k)
            ]
            taken.update(members)
            spanned = set().union(*(self.terms[m][6] for m in members))
            groups.append((max(len(spanned), self.terms[head][0]), len(members), head, members))
        # Most conversations first; at a tie, the topic more phrases point at ("Japan", "trip",
        # "food" together) before a lone word.
        groups.sort(key=lambda g: (-g[0], -g[1], g[2]))
        # Next to a subject of thousands of conversations, one of two is noise.
        floor = MIN_RELATIVE * groups[0][0] if groups else 0
        groups = [g for g in groups if g[0] >= floor]
        return [
            {
                "label": head,
                "name": self._display(head),
                "keyphrases": [self._display(m) for m in members[:MAX_KEYPHRASES]],
                "conversations": conversations,
                "share": round(min(1.0, conversations / self.documents), 3),
            }
            for conversations, _, head, members in groups[:MAX_TOPICS]
        ]

    # -- checkpoint -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "terms": self.terms,
            "seen": base64.b64encode(bytes(self._seen.bits)).decode(),
            "once": base64.b64encode(bytes(self._once.bits)).decode(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Topics:
        topics = cls()
        topics.documents = state["documents"]
        topics.terms = {k: list(v) for k, v in state["terms"].items()}
        topics._seen = _Bloom(BLOOM_BITS, bytearray(base64.b64decode(state["seen"])))
        topics._once = _Bloom(ONCE_BITS, bytearray(base64.b64decode(state["once"])))
        return topics
