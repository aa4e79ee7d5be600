"""Retrieval benchmark: does the right memory come back for a question, and how fast?

For each chunk policy (``CHUNK_POLICY``: person, person-plain, turns), every invented person of
bench/personas.py is imported with the real pipeline (`soulprint-import run`, its own
database on the embedded server), then each paraphrased question is asked through
``match_memories`` as that person, three ways: vector only, lexical only, hybrid (RRF).
A question is answered at rank r when the r-th result is a chunk that carries its fact
(``Fact.is_hit``). Reported per language (and for English per split, see ``split_of``):
recall@1, @5, @10 and MRR, plus the characters embedded per export and the embedding
stage's time, per policy; every hybrid miss is printed. ``person-plain`` (``person``
without its first-person sentence chunks) is the baseline the statement chunks are
measured against, in the same run.

Latency: a further person gets 10k, then 100k chunks made in SQL from the imported ones
(each text joins two real chunk texts, each vector is the normalised sum of two real
vectors, so the lexical and vector distributions look like real memory) and the same
questions are timed, hybrid and one-list, wall clock from Python (one round trip each).
Latency hardly depends on what the vectors say, only on their number and dimension.

Provider-agnostic: the configured embedder (EMBEDDING_PROVIDER ...) embeds chunks (inside
`run`) and questions alike.

Usage: ``python bench/retrieval.py [--en 4] [--zh 1] [--noise 300]
[--policies person,person-plain,turns] [--latency 10000,100000] [--json OUT]``.
About 15 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.personas import Person, make_persons  # noqa: E402
from pipeline.db import connect  # noqa: E402
from pipeline.embedding import get_embedder  # noqa: E402
from pipeline.search import (  # noqa: E402
    Target,
    current_import,
    embed_query,
    match_memories,
)
from pipeline.settings import Settings  # noqa: E402
from tests.dbutil import create_user, with_dbname  # noqa: E402
from tests.search_helpers import completed_import  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
MODES = ("vector", "lexical", "hybrid")
DEPTH = 10  # results fetched per question; ranks beyond count as misses


def _server() -> str:
    """Superuser URL of the embedded server kept under bench/.cache (or DATABASE_URL)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from pipeline.embedded import ensure_embedded

    data = CACHE / "retrieval-pg"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)
    return ensure_embedded(data)


def _fresh_db(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = with_dbname(server, name)
    from pipeline.migrate import apply_migrations

    apply_migrations(url)
    return url


def _run_import(url: str, person: Person, policy: str, work: Path) -> dict[str, Any]:
    export = person.write_zip(work / f"{person.key}.zip")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHUNK_POLICY")}
    env.update(DATABASE_URL=url, CHUNK_POLICY=policy, SOULPRINT_DATA_DIR=str(work / "data"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            str(export),
            "--json",
            "--user",
            person.user_id,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"run failed for {person.key}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def _stage_seconds(result: dict[str, Any], stage: str) -> float:
    from datetime import datetime

    t = (result.get("stage_timings") or {}).get(stage) or {}
    try:
        return (
            datetime.fromisoformat(t["ended_at"]) - datetime.fromisoformat(t["started_at"])
        ).total_seconds()
    except (KeyError, TypeError, ValueError):
        return float("nan")


def _rank(person: Person, fact: Any, hits: list[Any]) -> int | None:
    for i, hit in enumerate(hits):
        if fact.is_hit(hit.conversation_id, hit.content):
            return i + 1
    return None


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "recall@1": sum(1 for r in ranks if r == 1) / n,
        "recall@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "recall@10": sum(1 for r in ranks if r is not None and r <= 10) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
        "questions": len(ranks),
    }


def split_of(person: Person) -> str:
    """ "tune" or "held-out": the choices of the recall work (statement chunks, which
    sentences count) were made looking at English person 0 only; the other persons (odd
    and higher English ones, every Chinese one) were not looked at while choosing. Their
    questions share templates with person 0's, with other facts and noise."""
    return "tune" if person.language == "en" and person.key == "en0" else "held-out"


def evaluate(url: str, persons: list[Person], embedder: Any) -> dict[str, Any]:
    """Ranks of every question, per mode and language (and per split, ``en/tune`` and
    ``en/held-out``); the misses of hybrid, for reading."""
    ranks: dict[str, dict[str, list[int | None]]] = {}
    misses: list[dict[str, Any]] = []
    with connect(url) as conn:
        for person in persons:
            user = uuid.UUID(person.user_id)
            target = current_import(conn, user)
            for fact, question in person.questions():
                vector = embed_query(embedder, target, question)
                for mode in MODES:
                    hits = match_memories(
                        conn,
                        user,
                        question,
                        vector,
                        limit=DEPTH,
                        mode=mode,
                        model=target.embedding_model,
                    )
                    r = _rank(person, fact, hits)
                    for group in (person.language, f"{person.language}/{split_of(person)}"):
                        ranks.setdefault(group, {}).setdefault(mode, []).append(r)
                    if mode == "hybrid" and (r is None or r > 5):
                        misses.append(
                            {
                                "person": person.key,
                                "fact": fact.kind,
                                "question": question,
                                "rank": r,
                                # What came first instead: the reason it missed.
                                "top3": [h.content[:90].replace("\n", " ") for h in hits[:3]],
                            }
                        )
    scores = {
        lang: {mode: _scores(r) for mode, r in by_mode.items()} for lang, by_mode in ranks.items()
    }
    return {"scores": scores, "hybrid_misses": misses}


def _chars(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select count(*), coalesce(sum(length(content)), 0) from public.memory_chunks"
        ).fetchone()
    return {"chunks": rows[0], "chars": rows[1]}


# --- latency -----------------------------------------------------------------------------

GROW_SQL = """
insert into public.memory_chunks (id, job_id, user_id, conversation_id, chunk_index, content,
                                  embedding, embedding_model, embedding_dim)
select gen_random_uuid(), %(job)s, %(user)s, 'bulk-' || s, 0, a.content || ' ' || b.content,
       a.embedding operator(extensions.+) b.embedding,  -- cosine ignores the length
       a.embedding_model, a.embedding_dim
  from generate_series(%(start)s, %(stop)s - 1) s
  join src a on a.i = s %% %(n)s
  join src b on b.i = (s / %(n)s + 3 * s + 1) %% %(n)s
"""


def _grow(conn: psycopg.Connection, job: uuid.UUID, user: uuid.UUID, start: int, stop: int) -> None:
    """Chunks start..stop-1 of the latency person; indexes rebuilt after the bulk load."""
    defs = [
        conn.execute("select pg_get_indexdef(%s::regclass)", (n,)).fetchone()[0]
        for n in ("public.memory_chunks_embedding_384", "public.memory_chunks_lexemes")
    ]
    conn.execute("drop index public.memory_chunks_embedding_384, public.memory_chunks_lexemes")
    n = conn.execute("select count(*) from src").fetchone()[0]
    conn.execute(GROW_SQL, {"job": job, "user": user, "start": start, "stop": stop, "n": n})
    conn.execute("set maintenance_work_mem = '256MB'")
    for d in defs:
        conn.execute(d)
    conn.execute(
        "update public.import_jobs set chunks = %s, embedded_chunks = %s where id = %s",
        (stop, stop, job),
    )
    conn.execute("analyze public.memory_chunks")


def latency(url: str, persons: list[Person], embedder: Any, sizes: list[int]) -> dict:
    """p50/p95 per mode at each size, for a person with that many chunks."""
    user = create_user(url)
    job = completed_import(
        url,
        user,
        [("seed", "seed", [0.0] * (embedder.dimensions - 1) + [1.0])],
        model=embedder.model,
        dim=embedder.dimensions,
    )
    questions = [q for p in persons for _, q in p.questions()]
    target = Target(job, embedder.model, embedder.dimensions)
    vectors = [embed_query(embedder, target, q) for q in questions]
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "create temp table src as select row_number() over () - 1 as i,"
            " content, embedding, embedding_model, embedding_dim"
            " from public.memory_chunks where embedding_dim = %s"
            " and conversation_id <> 'seed'",
            (embedder.dimensions,),
        )
        done = 1
        for size in sizes:
            t0 = time.perf_counter()
            _grow(admin, job, user, done, size)
            build = time.perf_counter() - t0
            done = size
            with connect(url) as conn:
                for mode in MODES:
                    for q, v in zip(questions[:3], vectors[:3], strict=True):  # warm-up
                        match_memories(conn, user, q, v, limit=10, mode=mode)
                    times = []
                    for q, v in zip(questions, vectors, strict=True):
                        t = time.perf_counter()
                        match_memories(conn, user, q, v, limit=10, mode=mode)
                        times.append((time.perf_counter() - t) * 1000)
                    times.sort()
                    out.setdefault(str(size), {})[mode] = {
                        "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                        "queries": len(times),
                    }
            out[str(size)]["load_and_index_s"] = round(build, 1)
            print(f"  latency at {size:,} chunks: {json.dumps(out[str(size)])}", flush=True)
    return out


def print_comparison(policies: dict[str, Any]) -> None:
    """One line per policy, group (language, and English split) and mode: recall@1/@5/@10
    and MRR, with the chunks and characters embedded per export; the first policy against the
    others (``person-plain`` is the baseline: ``person`` before its statement chunks)."""
    print(
        "\npolicy        group            mode     r@1   r@5   r@10  MRR   "
        "chunks/export  chars/export"
    )
    for policy, result in policies.items():
        for group, by_mode in sorted(result["scores"].items()):
            for mode, sc in by_mode.items():
                print(
                    f"{policy:13} {group:16} {mode:8} {sc['recall@1']:.2f}  "
                    f"{sc['recall@5']:.2f}  {sc['recall@10']:.2f}  {sc['mrr']:.2f}  "
                    f"{result['chunks_per_export']:13,.0f}  "
                    f"{result['chars_embedded_per_export']:,.0f}"
                )
    print(
        "(en/tune: the person the choices were made on; en/held-out and zh: not looked at "
        "while choosing)\n",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--en",
        type=int,
        default=4,
        help="invented English persons (default 4; rules were tuned on person 0)",
    )
    ap.add_argument("--zh", type=int, default=1, help="invented Chinese persons (default 1)")
    ap.add_argument(
        "--noise", type=int, default=300, help="noise conversations per person (default 300)"
    )
    ap.add_argument(
        "--policies",
        default="person,person-plain,turns",
        help="chunk policies to compare, comma-separated (default person,person-plain,turns)",
    )
    ap.add_argument(
        "--latency", default="10000,100000", help="chunk counts for the latency part ('' to skip)"
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=CACHE / "retrieval.json",
        help="where the full report goes (default bench/.cache/retrieval.json)",
    )
    args = ap.parse_args()

    persons = make_persons(args.en, args.zh, args.noise)
    settings = Settings.from_env()
    embedder = get_embedder(settings)
    server = _server()
    report: dict[str, Any] = {
        "embedder": embedder.model,
        "noise_conversations": args.noise,
        "persons": [p.key for p in persons],
        "policies": {},
    }
    url = ""
    for policy in args.policies.split(","):
        url = _fresh_db(server, f"retrieval_{policy}")
        with tempfile.TemporaryDirectory() as tmp:
            embed_s = 0.0
            for person in persons:
                t0 = time.perf_counter()
                result = _run_import(url, person, policy, Path(tmp))
                embed_s += _stage_seconds(result, "embedding")
                print(
                    f"[{policy}] imported {person.key}: {result['chunks']} chunks in "
                    f"{time.perf_counter() - t0:.0f}s",
                    flush=True,
                )
        sizes = _chars(url)
        ev = evaluate(url, persons, embedder)
        report["policies"][policy] = {
            "chunks_per_export": sizes["chunks"] / len(persons),
            "chars_embedded_per_export": sizes["chars"] / len(persons),
            "embedding_stage_s_per_export": round(embed_s / len(persons), 1),
            **ev,
        }
        for miss in ev["hybrid_misses"]:
            print(f"[{policy}] hybrid miss: {json.dumps(miss, ensure_ascii=False)}", flush=True)
    print_comparison(report["policies"])
    if args.latency:
        sizes_wanted = [int(s) for s in args.latency.split(",") if s]
        report["latency"] = latency(url, persons, embedder, sizes_wanted)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
