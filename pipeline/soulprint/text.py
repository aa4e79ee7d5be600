"""Text helpers shared by the soulprint parts: prose vs code, words, sentences, secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"```([^\n`]*)\n?(.*?)(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
# Lines that look like source, shell, SQL, markup or a traceback rather than prose.
_CODE_LINE = re.compile(
    r"""^\s*(?:def\s|class\s|import\s|from\s+\S+\s+import|function\s|const\s|let\s|var\s
        |public\s|private\s|\#include|return\b|elif\b|else:|try:|except\b|async\s+def
        |if\s*\(|for\s*\(|while\s*\(|SELECT\s|INSERT\s|UPDATE\s+\w+\s+SET|CREATE\s+TABLE
        |</?[a-zA-Z][\w-]*[\s/>]|\$\s|>>>\s|Traceback\s|File\s+".*",\s+line\s+\d+
        |[\w.]+(?:Error|Exception):\s|@\w+|\w+\s*=\s*[\[{(\d"']|\w+\(.*\)\s*;?\s*$)
    |[;{]\s*$
    |^\s*[})\]];?\s*$""",
    re.VERBOSE,
)
# Unicode letters with inner apostrophes; digits and underscores split words.
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_CLAUSE_BREAK = re.compile(r"[.,;:!?¿¡()\[\]{}\"“”«»—–/\\|*#>]+|\s-\s|\n")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Long mixed letter+digit runs: API keys, hashes, tokens, IBANs.
_TOKEN = re.compile(r"(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{16,}")
_KEY_PREFIX = re.compile(r"\b(?:sk|pk|rk|ghp|gho|xox[abp]|AKIA|AIza|eyJ)[-_A-Za-z0-9]{6,}")
_PHONE = re.compile(r"\+?\d[\d ().-]{8,}\d")
_SECRET_WORDS = re.compile(
    r"\b(?:password|passwd|passcode|api[ _-]?key|secret|token|ssn|social security|credit card"
    r"|iban|pin code|contraseña|mot de passe|passwort)\b",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Prose:
    """A message split into what the person wrote in words and whether it carried code."""

    text: str
    has_code: bool
    code_languages: list[str]


def word_set(words: str) -> frozenset[str]:
    """A word set from a whitespace-separated list (easier to read and edit than literals)."""
    return frozenset(words.split())


def split_prose(text: str) -> Prose:
    """Remove fenced blocks, inline code and code-like lines; keep the person's own words."""
    langs: list[str] = []
    fenced = False

    def _drop_fence(match: re.Match[str]) -> str:
        nonlocal fenced
        fenced = True
        info = match.group(1).strip().lower().split()
        if info and info[0].isidentifier():
            langs.append(info[0])
        return "\n"

    rest = _FENCE.sub(_drop_fence, text)
    lines = rest.splitlines()
    code_lines = [ln for ln in lines if ln.strip() and _CODE_LINE.search(ln)]
    text_lines = [ln for ln in lines if ln.strip()]
    # One code-like line in a chatty message is usually a false alarm; two, or a
    # message that is mostly such lines, is pasted code.
    pasted = len(code_lines) >= 2 or (code_lines and len(code_lines) * 2 >= len(text_lines))
    if pasted:
        lines = [ln for ln in lines if not _CODE_LINE.search(ln)]
    prose = _INLINE_CODE.sub(" ", "\n".join(lines))
    return Prose(prose, fenced or bool(pasted), langs)


def words(text: str) -> list[str]:
    """Lower-cased words (letters only) in order."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def clauses(text: str) -> list[list[str]]:
    """Word runs not broken by punctuation: the places a two-word phrase can live."""
    return [ws for part in _CLAUSE_BREAK.split(text) if (ws := words(part))]


def sentences(text: str) -> list[str]:
    """Sentences and lines, stripped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def looks_secret(text: str) -> bool:
    """True when a sentence holds something that must never be quoted back."""
    return any(p.search(text) for p in (_EMAIL, _URL, _TOKEN, _KEY_PREFIX, _PHONE, _SECRET_WORDS))
