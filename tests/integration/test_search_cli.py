"""`soulprint-import search`, end to end: an invented person's export imported with `run`
(real receiver, real embedder, embedded PostgreSQL), then asked questions that paraphrase
what they told ChatGPT, as separate processes the way a person would."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from bench.personas import make_person
from pipeline.embedded import searcher_url
from tests.cli_helpers import cli, cli_env, run_import
from tests.dbutil import create_user
from tests.search_helpers import completed_import, unit_vector


def test_search_finds_what_the_person_said_after_run(db_url: str, tmp_path: Path) -> None:
    """After `run` there is a way to ask the memory (the issue's new-user complaint): a
    paraphrased question finds the conversation where the person said it, through
    match_memories as that person (RLS), in JSON and as a readable list."""
    person = make_person(0, "en", n_noise=12)
    export = person.write_zip(tmp_path / "export.zip")
    env = cli_env(db_url, tmp_path, SEARCH_DATABASE_URL=searcher_url(db_url))
    code, result = run_import(export, env, "--user", person.user_id)
    assert code == 0 and result["stage"] == "complete", result

    pet = next(f for f in person.facts if f.kind == "pet")
    out = cli("search", pet.questions[0], "--json", "--limit", "5", env=env)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert 1 <= len(hits) <= 5
    assert {"content", "conversation_id", "conversation_title", "score"} <= set(hits[0])
    assert any(pet.is_hit(h["conversation_id"], h["content"]) for h in hits), hits

    out = cli("search", "Biscuit sneakers", "--limit", "2", env=env)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("1. ") and "score" in first
    assert "Biscuit" in out.stdout


def test_search_needs_a_person_when_several_have_memory(db_url: str, tmp_path: Path) -> None:
    """With two people's imports and no --user the CLI refuses to guess whose memory to
    read; with --user it reads that person's only; a person without an import gets a
    sentence and exit status 1."""
    env = cli_env(db_url, tmp_path, SEARCH_DATABASE_URL=searcher_url(db_url))
    a, b, c = create_user(db_url), create_user(db_url), create_user(db_url)
    completed_import(db_url, a, [("a1", "alpha pottery wheel", unit_vector(384, 1))])
    completed_import(db_url, b, [("b1", "beta pottery kiln", unit_vector(384, 1))])
    out = cli("search", "pottery", env=env)
    assert out.returncode == 2 and "--user" in out.stderr
    out = cli("search", "pottery", "--user", str(b), "--json", "--mode", "lexical", env=env)
    assert out.returncode == 0, out.stderr
    assert [h["conversation_id"] for h in json.loads(out.stdout)] == ["b1"]
    out = cli("search", "pottery", "--user", str(c), env=env)
    assert out.returncode == 1 and "no import of this person has completed" in out.stderr


def test_search_refuses_to_run_on_the_database_url_alone(db_url: str, tmp_path: Path) -> None:
    """Pitfall 3 / issue 8 F5: with DATABASE_URL (in production the worker role) and no
    SEARCH_DATABASE_URL the command does not act as a person through it; it says which
    setting is missing and exits 2."""
    env = cli_env(db_url, tmp_path)
    a = create_user(db_url)
    completed_import(db_url, a, [("a1", "alpha pottery wheel", unit_vector(384, 1))])
    out = cli("search", "pottery", "--user", str(a), "--mode", "lexical", env=env)
    assert out.returncode == 2 and "SEARCH_DATABASE_URL" in out.stderr
    assert "pottery" not in out.stdout


def test_search_without_a_user_never_migrates(db_url: str, tmp_path: Path) -> None:
    """Review of issue 10, F1: resolving the database to find whose memory to search must
    not run migrations (it did, through the local-run helper): a read-only command leaves the
    schema as it found it."""
    env = cli_env(db_url, tmp_path, SEARCH_DATABASE_URL=searcher_url(db_url))
    a = create_user(db_url)
    completed_import(db_url, a, [("a1", "alpha pottery wheel", unit_vector(384, 1))])
    with psycopg.connect(db_url, autocommit=True) as conn:
        (latest,) = conn.execute(
            "delete from supabase_migrations.schema_migrations where version ="
            " (select max(version) from supabase_migrations.schema_migrations) returning version"
        ).fetchone()
    try:
        out = cli("search", "pottery", "--mode", "lexical", env=env)
        assert out.returncode == 0, out.stderr
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "select 1 from supabase_migrations.schema_migrations where version = %s",
                (latest,),
            ).fetchone()
        assert row is None, "search ran the migrations"
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version) values (%s)"
                " on conflict do nothing",
                (latest,),
            )
