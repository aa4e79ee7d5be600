"""Soulprint benchmark: does the portrait name an invented person's life, and how fast?

For each person of bench/personas.py (seven planted facts, each told in three conversations,
buried among hundreds of code, trivia and long-answer conversations), in English and
Chinese, it reports:

  named        planted facts the portrait names OUTSIDE quotes (blockquotes and “quoted”
               titles removed), by the fact's evidence strings (pet's name, sport, country
               or city, instrument or teacher, job or workplace, wedding names, hobby)
  code topics  topic phrases that are code: holding an identifier-shaped word (snake_case,
               camelCase, dotted, calls) or being a word of one of the identifiers the noise
               pastes ("user" of user_id; "table tennis" is not "table" of render_table)
  to soulprint seconds from the export file to the soulprint text, doing what the pipeline
               does before it shows it: one streaming read (reader + chunker + profile), then
               render. (bench/e2e.py measures it through the whole pipeline.)

    python bench/soulprint.py [--en 5] [--zh 4] [--noise 400] [--show en0]

Target (issue 12): at least 6 of 7 named for every person, zero code topics.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import personas  # noqa: E402
from pipeline.exports.chunker import chunk_conversation  # noqa: E402
from pipeline.exports.reader import ExportReader  # noqa: E402
from pipeline.soulprint import ProfileBuilder, write_soulprint  # noqa: E402
from pipeline.soulprint.technical import is_identifier  # noqa: E402


def outside_quotes(text: str) -> str:
    """The portrait without blockquotes and “quoted” conversation titles."""
    lines = [ln for ln in text.splitlines() if not ln.startswith(">")]
    return re.sub(r"“[^”]*”", "", "\n".join(lines))


def identifier_words() -> set[str]:
    """Every word inside the identifiers the noise pastes (user_id -> user, id)."""
    words: set[str] = set()
    for ident in personas._IDENTS:
        for part in re.split(r"_|(?<=[a-z])(?=[A-Z])", ident):
            if len(part) > 1:
                words.add(part.lower())
    return words


def soulprint_of(path: Path) -> tuple[dict, str, float]:
    """(profile, text, seconds): the parsing pass's work plus rendering, timed."""
    start = time.perf_counter()
    builder = ProfileBuilder()
    for conv in ExportReader(path):
        chunk_conversation(conv)
        builder.add(conv)
    profile, text = write_soulprint(builder.profile())
    return profile, text, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--en", type=int, default=5, help="English persons")
    ap.add_argument("--zh", type=int, default=4, help="Chinese persons")
    ap.add_argument("--noise", type=int, default=400, help="noise conversations per person")
    ap.add_argument("--show", help="print this person's soulprint (e.g. en0)")
    args = ap.parse_args()
    code_words = identifier_words()
    people = [personas.make_person(i, "en", args.noise) for i in range(args.en)] + [
        personas.make_person(i, "zh", args.noise) for i in range(args.zh)
    ]
    worst, code_total, times = 7, 0, []
    print(
        f"{'person':<7} {'convs':>6} {'named':>6}  {'code topics':>11}  {'to soulprint':>12}"
        f"  missed"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for person in people:
            path = person.write_zip(Path(tmp) / f"{person.key}.zip")
            profile, text, secs = soulprint_of(path)
            said = outside_quotes(text).lower()
            named = [f.kind for f in person.facts if any(e.lower() in said for e in f.evidence)]
            phrases = [p for t in profile["topics"] for p in [t["name"], *t["keyphrases"]]]
            code = [
                p
                for p in phrases
                if p.lower() in code_words or any(is_identifier(w) for w in p.split())
            ]
            worst, code_total = min(worst, len(named)), code_total + len(code)
            times.append(secs)
            missed = sorted(set(personas.FACT_KINDS) - set(named))
            print(
                f"{person.key:<7} {len(person.conversations):>6} {len(named):>4}/7 "
                f"{len(code):>11}  {secs:>10.2f} s  {', '.join(missed) or '-'}"
                + (f"  code: {code}" if code else "")
            )
            if args.show == person.key:
                print(text)
    print(
        f"worst named {worst}/7 (target >= 6), code topics {code_total} (target 0), "
        f"time to soulprint mean {sum(times) / len(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
