"""A light English stemmer: one key for a word's plural, possessive and -ing/-ed forms.

Only for grouping ("weddings", "wedding's" and "wedding" are one topic; "trained" and
"training" one), never for display: the portrait shows the form the person used most.
Deliberately timid (Porter-style stemmers merge "university" with "universe"): it strips
only endings whose removal leaves a word of four letters or more.
"""

from __future__ import annotations

from functools import lru_cache

_KEEP_S = ("ss", "us", "is", "ous", "ics", "ies")  # class, bus, analysis, famous, physics
_VOWELS = frozenset("aeiouy")


@lru_cache(maxsize=65536)  # a person's vocabulary is far smaller; bounded anyway
def stem(word: str) -> str:
    """The grouping key of one lower-cased word."""
    w = word.lower().replace("’", "'")
    if w.endswith(("'s", "s'")):
        w = w[:-2] if w.endswith("'s") else w[:-1]
    if "'" in w or len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(_KEEP_S) and len(w) >= 4:
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            base = w[: -len(suffix)]
            if not _VOWELS & set(base):
                break  # "string", "thing": not an inflection
            if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # running -> run(n), planned -> plan(n)
            w = base
            break
    return w
