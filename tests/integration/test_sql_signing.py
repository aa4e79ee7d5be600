"""Events signed in SQL (pgcrypto) and posted by pg_net verify with svix.

The embedded PostgreSQL has no pgcrypto, so the signature itself is checked on a throwaway
cluster of the machine's system PostgreSQL (installed by .ci/run), with only the signing
migration applied. How the emitter hands event, headers and secret to pg_net is checked on
the embedded server with stand-ins for pg_net and Vault.
"""

from __future__ import annotations

import base64
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from svix.webhooks import Webhook, WebhookVerificationError

from pipeline.migrate import sql_dir
from tests.dbutil import create_user, jobs_for, upload_object


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


SIGNING_SQL = next((sql_dir() / "migrations").glob("*_webhook_signing.sql"))


def _system_pg_bin() -> Path | None:
    """bin/ of the newest system PostgreSQL that ships pgcrypto, if any."""
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        version = Path(initdb).parent.parent.name
        if Path(f"/usr/share/postgresql/{version}/extension/pgcrypto.control").exists():
            return Path(initdb).parent
    return None


def _run_as(user: str | None, *cmd: str) -> None:
    prefix = ["runuser", "-u", user, "--"] if user else []
    subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def system_pg_url() -> Iterator[str]:
    """A throwaway cluster of the system PostgreSQL on a unix socket in a temp dir."""
    bin_dir = _system_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "no system PostgreSQL with pgcrypto (.ci/run installs the `postgresql` "
            "package); the SQL signature cannot be checked here"
        )
    user = None
    if os.geteuid() == 0:  # initdb refuses root: run it as an unprivileged system user
        for name in ("postgres", "pgserver"):
            try:
                pwd.getpwnam(name)
                user = name
                break
            except KeyError:
                continue
        if user is None:
            pytest.skip(
                "running as root and no `postgres`/`pgserver` system user to run "
                "the system PostgreSQL as"
            )
    root = Path(tempfile.mkdtemp(prefix="soulprint-syspg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    try:
        _run_as(
            user,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        _run_as(
            user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "log"),
            "-o",
            f"-k {root} -c listen_addresses=''",
            "start",
        )
        yield f"postgresql://postgres@/postgres?host={root}"
    finally:
        if (data / "postmaster.pid").exists():
            _run_as(user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _fresh_db(server_url: str) -> str:
    name = f"sig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    return server_url.replace("/postgres?", f"/{name}?")


def _apply_signing_migration(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SIGNING_SQL.read_text())


def _sql_signature(url: str, msg_id: str, ts: int, body: str, secret: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select public.standard_webhook_signature(%s, %s, %s, %s)", (msg_id, ts, body, secret)
        ).fetchone()[0]


@pytest.mark.parametrize("where", ["public", "extensions"])
def test_sql_signature_verifies_with_svix(system_pg_url: str, where: str) -> None:
    """Guards pitfall 3 (service key in the worker): the database signs what it posts with
    the Standard Webhooks scheme, so the receiver trusts a signature, not a network; the SQL
    signature is byte for byte what svix verifies, with pgcrypto in `public` (plain
    PostgreSQL) or in `extensions` (hosted Supabase)."""
    url = _fresh_db(system_pg_url)
    with psycopg.connect(url, autocommit=True) as conn:
        if where == "public":
            conn.execute("create extension pgcrypto")
        else:  # like hosted Supabase: the migration installs it into `extensions`
            conn.execute("create schema extensions")
    _apply_signing_migration(url)
    _apply_signing_migration(url)  # idempotent
    with psycopg.connect(url) as conn:
        schema = conn.execute(
            "select extnamespace::regnamespace::text from pg_extension where extname = 'pgcrypto'"
        ).fetchone()[0]
    assert schema == where

    secret = new_webhook_secret()
    msg_id = str(uuid.uuid4())
    ts = int(datetime.now(UTC).timestamp())
    # An event body as the database makes it (jsonb -> text), with non-ASCII text in it.
    with psycopg.connect(url) as conn:
        body = conn.execute(
            "select jsonb_build_object('type', 'import.parsing', 'data',"
            " jsonb_build_object('job_id', %s::text, 'note', 'café ☕ 東京'))::text",
            (msg_id,),
        ).fetchone()[0]
    signature = _sql_signature(url, msg_id, ts, body, secret)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{signature}",
    }
    Webhook(secret).verify(body.encode(), headers)  # raises when it does not match
    assert (
        signature
        == Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body).split(",", 1)[1]
    )

    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("parsing", "complete").encode(), headers)


def test_signing_migration_is_a_no_op_without_pgcrypto(pg_admin_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): where pgcrypto is missing (the embedded
    server), the migrations still apply and the relay signs instead."""
    with psycopg.connect(pg_admin_url) as conn:
        has_pgcrypto = conn.execute(
            "select exists (select 1 from pg_available_extensions where name = 'pgcrypto')"
        ).fetchone()[0]
        fn = conn.execute(
            "select to_regprocedure('public.standard_webhook_signature(text,bigint,text,text)')"
        ).fetchone()[0]
    if has_pgcrypto:
        pytest.skip("this PostgreSQL has pgcrypto")
    assert fn is None


_PG_NET_STANDINS = """
create schema net;
create table net.requests (id bigserial primary key, url text, body jsonb, headers jsonb,
                           timeout_milliseconds int);
create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
                              headers jsonb default '{}', timeout_milliseconds int default 5000)
returns bigint language sql as $$
  insert into net.requests (url, body, headers, timeout_milliseconds)
  values (url, body, headers, timeout_milliseconds) returning id
$$;
create schema vault;
create table vault.secrets (name text primary key, decrypted_secret text);
create view vault.decrypted_secrets as select name, decrypted_secret from vault.secrets;
-- pgcrypto is absent here; the real function is checked against svix above.
create function public.standard_webhook_signature(msg_id text, ts bigint, body text,
                                                  secret text)
returns text language sql as $$ select 'sig(' || msg_id || '.' || ts || ')' $$;
"""


def test_events_are_posted_by_pg_net_when_configured(db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): on hosted Supabase each event leaves the
    database by pg_net at commit, to the URL kept in Vault, with Standard Webhooks headers
    whose id is the outbox row; unconfigured, nothing is posted and nothing fails."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(_PG_NET_STANDINS)
    upload_object(db_url, user, name="before-config.zip")
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        assert conn.execute("select count(*) as n from net.requests").fetchone()["n"] == 0
        conn.execute(
            "insert into vault.secrets values ('soulprint_webhook_url',"
            " 'https://receiver.example/webhooks/supabase'),"
            " ('soulprint_webhook_secret', %s)",
            (new_webhook_secret(),),
        )
        conn.execute("update public.import_jobs set stage = 'cancelled'")
        conn.commit()
        upload_object(db_url, user, name="after-config.zip")
        job_id = jobs_for(db_url, user)[-1]["id"]
        [ev] = conn.execute(
            "select * from public.import_events where job_id = %s", (job_id,)
        ).fetchall()
        # Two posts since configuration: the first import's cancel, then this upload.
        assert conn.execute("select count(*) as n from net.requests").fetchone()["n"] == 2
        [req] = conn.execute(
            "select * from net.requests where headers->>'webhook-id' = %s", (str(ev["id"]),)
        ).fetchall()
        [delivery] = conn.execute(
            "select * from public.event_deliveries where event_id = %s", (ev["id"],)
        ).fetchall()
    assert req["url"] == "https://receiver.example/webhooks/supabase"
    assert req["body"] == ev["payload"]
    ts = req["headers"]["webhook-timestamp"]
    assert req["headers"] == {
        "Content-Type": "application/json",
        "webhook-id": str(ev["id"]),
        "webhook-timestamp": ts,
        "webhook-signature": f"v1,sig({ev['id']}.{ts})",
    }
    assert delivery["via"] == "pg_net"
