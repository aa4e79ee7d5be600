"""Load benchmark: many people uploading at once, through real receiver/relay/sweeper processes.

Everything runs on loopback as separate processes started the way README/render.yaml start
them: K x `soulprint-import serve` (each with its own data dir, as Render instances have),
one `soulprint-import relay` per receiver (RECEIVER_URL = that receiver), one
`soulprint-import sweep --loop`. The database is DATABASE_URL (a superuser URL; migrated
here) or a throwaway embedded PostgreSQL. Storage is local bucket mode (a shared directory,
SOULPRINT_LOCAL_BUCKET_DIR), uploads insert the storage.objects row exactly as Storage does
(pipeline.local.LocalRuntime.upload). Embeddings go to the OpenAI-compatible stand-in
(tests/fake_openai.py) answering each request after ``--latency-ms`` (200): one request of
96 chunks at a time per stage slot (EMBEDDING_CONCURRENCY=1, `--concurrency`), so the API's
latency shows.

Every figure is read from the database tables (import_jobs, import_events,
event_deliveries, memory_chunks, pg_stat_user_tables) and from GET /healthz, never from the
processes' internals, so the script keeps working while the implementation changes.

    python bench/load.py                      # 20 concurrent x 1 and x 2 receivers, then
                                              # the same 20 back to back (1 receiver)
    python bench/load.py --imports 10 --receivers 1
    python bench/load.py --kill               # 2 receivers, kill -9 one mid-run
    python bench/load.py --fanout             # one large import: embedding on 1 vs 2
    python bench/load.py --json               # one JSON object on stdout

Columns: wall time (first upload to last import finished); upload -> complete p50/p95
(import_jobs.created_at -> completed_at); delivery attempts per event and the most one event
needed (event_deliveries); 503 answers; events abandoned (attempts exhausted, never
acknowledged); events the sweeper re-announced; idle job-seconds (sampled every 0.5 s: jobs
not finished, not waiting out a retry, holding no live lease, while a live receiver's
/healthz showed a free stage slot); Realtime messages per job (inserts and updates of
import_progress, the only import table in the publication) and the most writes outside a
stage change in any one second for any one job (a bench-only audit trigger on
import_progress, dropped afterwards); import_jobs row updates per job (not published since
20261201100100_quiet_realtime.sql: the database's own write load); export files left in the
downloads/ of the instances still running, and apart from them on a killed instance (its
janitor removes them when it restarts). Ratios compare the
concurrent runs with the same imports back to back (issue 15: p95 within 1.5x). `--kill`
adds the recovery time (from the kill until every job the dead instance held is leased
elsewhere or has moved on) and the other jobs' p95; `--fanout` the embedding stage's time and
how many instances held an embedding lease. While a job is in `embedding` every scenario also
measures how busy the machine's cores were and how many of them the local PostgreSQL used
(/proc): near 100% the machine, not the number of instances, sets the pace. `--dims` picks
EMBEDDING_DIMENSIONS: 384 (default; an HNSW index covers it, as one covers 1536) or e.g.
256 (no index: the database's share is small, as when it runs on a machine of its own).

Exit status 1 when any import did not complete, completed twice, or its data differs from
`soulprint-import parse` of its file (counts, one vector per chunk, no duplicate chunk).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "load"
sys.path.insert(0, str(ROOT))

from pipeline.local import LocalRuntime, new_webhook_secret  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.export_factory import dumps, make_conversation  # noqa: E402

TERMINAL = ("complete", "failed", "cancelled", "rejected")
COUNT_KEYS = ("conversations", "messages", "user_messages", "assistant_messages", "chunks")
SAMPLE_S = 0.5  # how often the sampler looks at leases and /healthz


# -- exports ------------------------------------------------------------------------------


def make_export(path: Path, size_kb: int, variant: int) -> Path:
    """A one-line conversations.json of about ``size_kb``; ``variant`` shifts the content
    so different people upload different files."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    target, written, i = size_kb * 1000, 0, 0
    eras = ("2023", "2024", "2025", "2026")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(b"[")
        while written < target:
            conv = make_conversation(
                8,
                era=eras[(i + variant) % 4],
                index=variant * 100_000 + i,
                user_chars=320,
                assistant_chars=1200,
            )
            data = (b"," if i else b"") + dumps(conv)
            f.write(data)
            written += len(data)
            i += 1
        f.write(b"]")
    tmp.replace(path)
    return path


def parse_counts(path: Path) -> dict[str, int]:
    """What `soulprint-import parse --json` says the file holds (run in this process)."""
    from pipeline.cli import main as cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(["parse", str(path), "--json"])
    if code:
        raise SystemExit(f"parse {path.name} exited {code}")
    summary = json.loads(out.getvalue())
    return {k: int(summary[k]) for k in COUNT_KEYS}


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Receiver:
    index: int
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    relay: subprocess.Popen[bytes] | None = None
    alive: bool = True


@dataclass
class Cluster:
    """K receivers (each with its relay) and one sweeper, started from the CLI."""

    env: dict[str, str]
    work: Path
    receivers: list[Receiver] = field(default_factory=list)
    sweeper: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals reach only what we started
        )

    def start(self, k: int, sweep_interval: float) -> None:
        for i in range(k):
            port = free_port()
            data_dir = self.work / f"instance-{i}"
            data_dir.mkdir(parents=True, exist_ok=True)
            env = dict(self.env, SOULPRINT_DATA_DIR=str(data_dir))
            proc = self._spawn(
                ["serve", "--host", "127.0.0.1", "--port", str(port)],
                env,
                self.work / f"serve-{i}.log",
            )
            self.receivers.append(Receiver(i, proc, f"http://127.0.0.1:{port}", data_dir))
        before = listening_sessions(self.env["DATABASE_URL"])
        for r in self.receivers:
            wait_healthy(r)
            env = dict(self.env, RECEIVER_URL=r.url + "/webhooks/supabase")
            r.relay = self._spawn(["relay", "--poll", "1"], env, self.work / f"relay-{r.index}.log")
        wait_listening(self.env["DATABASE_URL"], len(self.receivers), before)
        self.sweeper = self._spawn(
            ["sweep", "--loop", "--interval", str(sweep_interval)],
            self.env,
            self.work / "sweep.log",
        )

    def kill9(self, r: Receiver) -> None:
        """kill -9 the receiver process (its relay keeps running, as a Svix/pg_net sender
        would keep posting to a dead address)."""
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        r.alive = False

    def stop(self) -> None:
        procs = [self.sweeper] + [p for r in self.receivers for p in (r.relay, r.proc)]
        for p in procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            if p is None:
                continue
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_healthy(r: Receiver, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.proc.poll() is not None:
            raise SystemExit(f"receiver {r.index} exited {r.proc.returncode}; see serve-*.log")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(r.url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"receiver {r.index} not healthy within {timeout:.0f} s")


def listening_sessions(conninfo: str) -> int:
    """Database sessions whose last statement was a LISTEN (a relay waiting for events)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "select count(*) from pg_stat_activity where query ilike 'listen%%'"
        ).fetchone()[0]


def wait_listening(conninfo: str, relays: int, before: int, timeout: float = 15.0) -> None:
    """Uploads start once every relay listens, so start-up is not counted as idle time.
    A relay that no longer LISTENs (polling only) just costs the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and listening_sessions(conninfo) < before + relays:
        time.sleep(0.2)


def pool_state(r: Receiver) -> tuple[int, int] | None:
    """(busy, capacity) of a live receiver's stage pool from GET /healthz; (-1, -1) when
    it answers without those figures; None when it is dead or does not answer."""
    if not r.alive:
        return None
    try:
        body = httpx.get(r.url + "/healthz", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    try:
        stages = body["stages"]
        return int(stages["busy"]), int(stages["capacity"])
    except (KeyError, TypeError, ValueError):
        return -1, -1


# -- the database side --------------------------------------------------------------------


def database(work: Path) -> tuple[str, str, Any]:
    """(admin URL, worker URL, cleanup): DATABASE_URL migrated here, else embedded."""
    from pipeline.embedded import ensure_embedded, stop_embedded, worker_url
    from pipeline.migrate import apply_migrations

    admin = os.environ.get("DATABASE_URL")
    if admin:
        apply_migrations(admin)
        return admin, worker_url(admin), None
    db_dir = work / "db"
    db_dir.mkdir(parents=True)
    db_dir.chmod(0o755)
    admin = ensure_embedded(db_dir)
    return admin, worker_url(admin), lambda: stop_embedded(db_dir)


def lease_query(conn: psycopg.Connection) -> str:
    """SQL giving (job_id, lease_owner) of every live lease, wherever leases live: on
    import_jobs today, possibly in a table of their own (or per batch) later."""
    rows = conn.execute(
        "select table_name, array_agg(column_name::text) from information_schema.columns "
        "where table_schema = 'public' and column_name in "
        "('lease_owner', 'lease_expires_at', 'job_id') group by table_name"
    ).fetchall()
    parts = []
    for table, cols in rows:
        if {"lease_owner", "lease_expires_at"} <= set(cols):
            key = "id" if table == "import_jobs" else "job_id"
            if key == "job_id" and "job_id" not in cols:
                continue
            parts.append(
                f"select {key} as job_id, lease_owner from public.{table} "
                "where lease_owner is not null and lease_expires_at > now()"
            )
    return " union all ".join(parts) or "select null::uuid, null::text where false"


def has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    return bool(
        conn.execute(
            "select 1 from information_schema.columns where table_schema = 'public' "
            "and table_name = %s and column_name = %s",
            (table, column),
        ).fetchone()
    )


def import_jobs_updates(admin: str) -> int:
    """Row updates to import_jobs so far (not published to Realtime: write load only)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        row = conn.execute(
            "select n_tup_upd from pg_stat_user_tables "
            "where schemaname = 'public' and relname = 'import_jobs'"
        ).fetchone()
    return int(row[0]) if row else 0


# Bench-only: every write to import_progress (the published row), to count what Realtime
# streams per job per second. Created for a scenario and dropped after it.
AUDIT_SETUP = """
create table if not exists public._bench_progress_audit (
  job_id uuid, at timestamptz default clock_timestamp(), stage_change boolean);
create or replace function public._bench_progress_audit_row() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  insert into public._bench_progress_audit (job_id, stage_change)
  values (new.job_id, tg_op = 'INSERT' or new.stage is distinct from old.stage);
  return null;
end $$;
drop trigger if exists _bench_progress_audit on public.import_progress;
create trigger _bench_progress_audit after insert or update on public.import_progress
  for each row execute function public._bench_progress_audit_row();
truncate public._bench_progress_audit;
"""
AUDIT_TEARDOWN = """
drop trigger if exists _bench_progress_audit on public.import_progress;
drop function if exists public._bench_progress_audit_row();
drop table if exists public._bench_progress_audit;
"""
# (writes per job, the most non-stage writes in one second for one job)
AUDIT_READ = """
select coalesce((select count(*)::float / greatest(count(distinct job_id), 1)
                   from public._bench_progress_audit), 0),
       coalesce((select max(n) from (select count(*) as n from public._bench_progress_audit
                                      where not stage_change
                                      group by job_id, date_trunc('second', at)) s), 0)
"""


def progress_audit(admin: str, sql: str) -> None:
    """Run AUDIT_SETUP or AUDIT_TEARDOWN."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def read_progress_audit(admin: str) -> tuple[float, int]:
    """(import_progress writes per job, the most non-stage writes in 1 s for one job)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(AUDIT_READ).fetchone()
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


# -- sampling: leases, idle jobs, recovery after a kill -----------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def postgres_jiffies() -> dict[int, int]:
    """CPU jiffies of every live process named postgres (the embedded server's; a
    DATABASE_URL elsewhere shows as 0), by pid: utime + stime, plus cutime + cstime, where
    the postmaster collects what its exited backends used. The change of the sum between
    two looks is therefore what PostgreSQL used in between, backends that came and went
    included."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue  # gone meanwhile
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        if comm == "postgres":
            rest = raw[raw.rindex(")") + 2 :].split()
            # fields 14-17 of proc_pid_stat(5): utime, stime, cutime, cstime
            out[int(entry.name)] = sum(int(x) for x in rest[11:15])
    return out


@dataclass
class Sampler:
    """Every SAMPLE_S: which instance holds which job, and job-seconds spent runnable but
    unleased while some live receiver had a free stage slot (from /healthz). While a job
    is in `embedding`: how busy the machine's cores were, and how much of that was the
    local PostgreSQL (its HNSW inserts), to tell a stage bound by the API's latency from
    one bound by this machine's CPU."""

    admin: str
    cluster: Cluster
    jobs: list[uuid.UUID]
    idle_job_s: float = 0.0
    owners: dict[int, set[tuple[str, str]]] = field(default_factory=dict)  # receiver -> claims
    held_at_kill: dict[uuid.UUID, str] = field(default_factory=dict)  # job -> stage
    dead_marker: str | None = None
    killed_at: float | None = None
    recovered_at: float | None = None
    embedding_jiffies: list[int] = field(default_factory=lambda: [0, 0, 0])  # busy, all, db
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _markers(self) -> dict[int, str]:
        # lease_owner is "<host>:<pid>:<claim>": the pid names the instance.
        return {r.index: f":{r.proc.pid}:" for r in self.cluster.receivers}

    def leases(self, conn: psycopg.Connection) -> list[tuple[uuid.UUID, str, str]]:
        """(job, stage, owner) of every live lease on this run's jobs."""
        return conn.execute(
            f"select l.job_id, j.stage::text, l.lease_owner from ({self._lease_sql}) l "
            "join import_jobs j on j.id = l.job_id where l.job_id = any(%s)",
            (self.jobs,),
        ).fetchall()

    def _run(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            self._lease_sql = lease_query(conn)
            retry_at = has_column(conn, "import_jobs", "retry_at")
            not_waiting = "and (retry_at is null or retry_at <= now())" if retry_at else ""
            unleased_sql = (
                f"select count(*) from import_jobs j where id = any(%s) "
                f"and stage::text <> all(%s) {not_waiting} "
                f"and not exists (select 1 from ({self._lease_sql}) l where l.job_id = j.id)"
            )
            last = time.monotonic()
            cpu, db = machine_jiffies(), postgres_jiffies()
            while not self._stop.wait(SAMPLE_S):
                now = time.monotonic()
                dt, last = now - last, now
                leases = self.leases(conn)
                cpu_now, db_now = machine_jiffies(), postgres_jiffies()
                if any(stage == "embedding" for _, stage, _ in leases):
                    self.embedding_jiffies[0] += cpu_now[0] - cpu[0]
                    self.embedding_jiffies[1] += cpu_now[1] - cpu[1]
                    self.embedding_jiffies[2] += sum(db_now.values()) - sum(db.values())
                cpu, db = cpu_now, db_now
                markers = self._markers()
                for job, stage, owner in leases:
                    for i, m in markers.items():
                        if m in owner:
                            self.owners.setdefault(i, set()).add((str(job), stage))
                if self.killed_at is not None and self.recovered_at is None:
                    self._check_recovery(conn, leases)
                unleased = conn.execute(unleased_sql, (self.jobs, list(TERMINAL))).fetchone()[0]
                free = 0
                for r in self.cluster.receivers:
                    state = pool_state(r)
                    if state == (-1, -1):
                        # /healthz no longer reports its pool: STAGE_POOL_SIZE minus the
                        # leases this instance holds.
                        held = sum(markers[r.index] in owner for _, _, owner in leases)
                        state = (held, int(self.cluster.env["STAGE_POOL_SIZE"]))
                    if state is not None:
                        free += max(0, state[1] - state[0])
                self.idle_job_s += min(unleased, free) * dt

    def mark_kill(self, conn: psycopg.Connection, victim: Receiver) -> None:
        """Remember what the victim held when it died."""
        self._lease_sql = getattr(self, "_lease_sql", None) or lease_query(conn)
        marker = f":{victim.proc.pid}:"
        self.dead_marker = marker
        self.held_at_kill = {
            job: stage for job, stage, owner in self.leases(conn) if marker in owner
        }
        self.killed_at = time.monotonic()

    def _check_recovery(self, conn: psycopg.Connection, leases: list) -> None:
        """Recovered when every job the dead instance held is leased by someone else, has
        moved on from the stage it was in, or is finished."""
        if not self.held_at_kill:
            self.recovered_at = self.killed_at
            return
        owner_of = {job: owner for job, _, owner in leases}
        stages = dict(
            conn.execute(
                "select id, stage::text from import_jobs where id = any(%s)",
                (list(self.held_at_kill),),
            ).fetchall()
        )
        for job, stage in self.held_at_kill.items():
            moved = stages.get(job) != stage
            taken = job in owner_of and self.dead_marker not in owner_of[job]
            if not (moved or taken):
                return
        self.recovered_at = time.monotonic()


def embedding_cpu(jiffies: list[int]) -> dict[str, float | None]:
    """While a job was in `embedding`: the share of all cores busy (1.0: the machine was
    the limit, a second instance on it cannot help) and the cores the local PostgreSQL
    kept busy."""
    busy, total, db = jiffies
    if not total:
        return {"embedding_cpu_busy": None, "embedding_db_cores": None}
    cores = os.cpu_count() or 1
    return {"embedding_cpu_busy": busy / total, "embedding_db_cores": db * cores / total}


# -- one scenario -------------------------------------------------------------------------


@dataclass
class Upload:
    user: uuid.UUID
    path: Path
    job: uuid.UUID | None = None


def upload_all(runtime: LocalRuntime, uploads: list[Upload]) -> None:
    """Everyone at once: one thread per person, as many apps would."""

    def one(u: Upload) -> None:
        runtime.ensure_user(u.user)
        u.job = runtime.upload(u.path, u.user)

    with ThreadPoolExecutor(len(uploads)) as pool:
        list(pool.map(one, uploads))


def wait_terminal(admin: str, jobs: list[uuid.UUID], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin, autocommit=True) as conn:
        while time.monotonic() < deadline:
            left = conn.execute(
                "select count(*) from import_jobs where id = any(%s) and stage::text <> all(%s)",
                (jobs, list(TERMINAL)),
            ).fetchone()[0]
            if not left:
                return
            time.sleep(0.5)


def pct(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def outcome(admin: str, uploads: list[Upload], expected: dict[Path, dict[str, int]]) -> dict:
    """Everything the run left in the database about these jobs, and the correctness checks."""
    jobs = [u.job for u in uploads]
    users = [u.user for u in uploads]
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "select id, stage::text, extract(epoch from completed_at - created_at), "
            "stage_timings, " + ", ".join(COUNT_KEYS) + ", embedded_chunks "
            "from import_jobs where id = any(%s)",
            (jobs,),
        ).fetchall()
        per_user = conn.execute(
            "select count(*) from import_jobs where user_id = any(%s) group by user_id "
            "having count(*) > 1",
            (users,),
        ).fetchall()
        chunk_rows = dict(
            (job, (n, missing, dup))
            for job, n, missing, dup in conn.execute(
                "select job_id, count(*), count(*) filter (where embedding is null), "
                "count(*) - count(distinct (conversation_id, chunk_index)) "
                "from memory_chunks where job_id = any(%s) group by job_id",
                (jobs,),
            ).fetchall()
        )
        ev = conn.execute(
            "select count(*), count(*) filter (where acknowledged_at is null "
            "  and (relayed_at is null) and attempts >= 25), "
            "count(*) filter (where payload->'data'->>'reason' is distinct from 'stage_changed') "
            "from import_events where job_id = any(%s)",
            (jobs,),
        ).fetchone()
        deliveries = conn.execute(
            "select count(*), count(*) filter (where d.status_code = 503), "
            "count(*) filter (where d.status_code is null), "
            "coalesce(max(n), 0) from event_deliveries d join import_events e on e.id = d.event_id "
            "join lateral (select count(*) n from event_deliveries x where x.event_id = e.id) c "
            "on true where e.job_id = any(%s)",
            (jobs,),
        ).fetchone()
    by_path = {u.job: u.path for u in uploads}
    problems: list[str] = []
    latencies, stage_s = [], {}
    for job, stage, secs, timings, *counts in rows:
        got = dict(zip((*COUNT_KEYS, "embedded_chunks"), counts, strict=True))
        if stage != "complete":
            problems.append(f"{job} did not complete (stage {stage})")
            continue
        latencies.append(float(secs))
        want = expected[by_path[job]]
        if any(got[k] != want[k] for k in COUNT_KEYS):
            problems.append(f"{job} counts {got} != parse {want}")
        n, missing, dup = chunk_rows.get(job, (0, 0, 0))
        if n != want["chunks"] or missing or dup or got["embedded_chunks"] != n:
            problems.append(f"{job}: {n} chunks, {missing} without vector, {dup} duplicate")
        for s, t in (timings or {}).items():
            if t.get("started_at") and t.get("ended_at"):
                d = datetime.fromisoformat(t["ended_at"]) - datetime.fromisoformat(t["started_at"])
                stage_s.setdefault(s, []).append(d.total_seconds())
    if per_user:
        problems.append(f"{len(per_user)} people got more than one import")
    events, abandoned, reannounced = ev
    attempts, n503, conn_errors, max_attempts = deliveries
    return {
        "jobs": len(jobs),
        "complete": len(latencies),
        "problems": problems,
        "latency_s": latencies,
        "p50_s": pct(latencies, 50),
        "p95_s": pct(latencies, 95),
        "max_s": max(latencies, default=float("nan")),
        "events": events,
        "reannounced_events": reannounced,
        "delivery_attempts": attempts,
        "attempts_per_event": attempts / events if events else float("nan"),
        "max_attempts_one_event": max_attempts,
        "status_503": n503,
        "connection_errors": conn_errors,
        "abandoned_events": abandoned,
        "stage_p50_s": {s: round(statistics.median(v), 2) for s, v in stage_s.items()},
    }


def leftover_exports(cluster: Cluster, killed: int | None = None) -> tuple[int, int]:
    """Export copies still on instance disks (downloads/ of each instance's data dir), as
    (on instances still running, on the killed one): the killed instance's are removed by
    its janitor when it restarts, so they are not "left after the import completed"."""
    counts = {
        r.index: sum(
            1 for p in (r.data_dir / "downloads").glob("*") if p.is_file() and p.stat().st_size
        )
        for r in cluster.receivers
    }
    on_killed = counts.pop(killed, 0) if killed is not None else 0
    return sum(counts.values()), on_killed


@dataclass
class Bench:
    args: argparse.Namespace
    admin: str
    env: dict[str, str]
    work: Path
    expected: dict[Path, dict[str, int]] = field(default_factory=dict)

    def exports(self, n: int, size_kb: int) -> list[Path]:
        variants = min(n, self.args.variants)
        paths = [
            make_export(CACHE / f"load-{size_kb}kb-{v}.json", size_kb, v) for v in range(variants)
        ]
        for p in paths:
            if p not in self.expected:
                self.expected[p] = parse_counts(p)
        return [paths[i % variants] for i in range(n)]

    def runtime(self) -> LocalRuntime:
        """The app's side only: users and uploads (no receiver is started here)."""
        rt = LocalRuntime(Settings(local_bucket_dir=Path(self.env["SOULPRINT_LOCAL_BUCKET_DIR"])))
        rt.admin_url = self.admin
        return rt

    def scenario(
        self,
        name: str,
        *,
        receivers: int,
        n: int,
        size_kb: int,
        sequential: bool = False,
        kill: bool = False,
    ) -> dict:
        cluster = Cluster(self.env, self.work / name.replace(" ", "-"))
        cluster.work.mkdir(parents=True)
        uploads = [Upload(uuid.uuid4(), p) for p in self.exports(n, size_kb)]
        rt = self.runtime()
        updates_before = import_jobs_updates(self.admin)
        progress_audit(self.admin, AUDIT_SETUP)
        cluster.start(receivers, self.args.sweep_interval)
        sampler = Sampler(self.admin, cluster, [])
        kill_info: dict[str, Any] = {}
        try:
            started = time.monotonic()
            if sequential:
                for u in uploads:
                    rt.ensure_user(u.user)
                    u.job = rt.upload(u.path, u.user)
                    sampler.jobs.append(u.job)
                    if sampler._thread is None:
                        sampler.start()
                    wait_terminal(self.admin, [u.job], self.args.timeout)
            else:
                upload_all(rt, uploads)
                sampler.jobs.extend(u.job for u in uploads)
                sampler.start()
                if kill:
                    kill_info = self.kill_midway(cluster, sampler)
                wait_terminal(self.admin, sampler.jobs, self.args.timeout)
            wall = time.monotonic() - started
        finally:
            sampler.stop()
            cluster.stop()
        time.sleep(1.0)  # statistics reach pg_stat_user_tables within about a second
        audited = read_progress_audit(self.admin)
        progress_audit(self.admin, AUDIT_TEARDOWN)
        left, left_on_killed = leftover_exports(cluster, kill_info.get("killed_instance"))
        result = outcome(self.admin, uploads, self.expected)
        result.update(
            name=name,
            receivers=receivers,
            imports=n,
            export_kb=size_kb,
            sequential=sequential,
            wall_s=wall,
            idle_job_s=sampler.idle_job_s,
            **embedding_cpu(sampler.embedding_jiffies),
            claims_per_instance={i: len(c) for i, c in sorted(sampler.owners.items())},
            embedding_instances=sum(
                any(stage == "embedding" for _, stage in c) for c in sampler.owners.values()
            ),
            import_jobs_updates_per_job=(import_jobs_updates(self.admin) - updates_before) / n,
            realtime_writes_per_job=audited[0],
            most_non_stage_writes_in_1s=audited[1],
            exports_left_on_disk=left,
            exports_left_on_killed=left_on_killed,
            **kill_info,
        )
        if kill:
            result.update(self.kill_outcome(sampler, uploads))
        return result

    def kill_midway(self, cluster: Cluster, sampler: Sampler) -> dict[str, Any]:
        """kill -9 the second receiver once it holds work and a few seconds have passed."""
        victim = cluster.receivers[-1]
        marker = f":{victim.proc.pid}:"
        start = time.monotonic()
        with psycopg.connect(self.admin, autocommit=True) as conn:
            lease_sql = lease_query(conn)
            while time.monotonic() - start < self.args.timeout:
                held = conn.execute(
                    f"select count(*) from ({lease_sql}) l where l.job_id = any(%s) "
                    "and l.lease_owner like %s",
                    (sampler.jobs, f"%{marker}%"),
                ).fetchone()[0]
                if held >= 1 and time.monotonic() - start >= self.args.kill_after:
                    break
                time.sleep(0.2)
            cluster.kill9(victim)
            sampler.mark_kill(conn, victim)
        return {"killed_instance": victim.index, "jobs_held_at_kill": len(sampler.held_at_kill)}

    def kill_outcome(self, sampler: Sampler, uploads: list[Upload]) -> dict[str, Any]:
        recovery = (
            sampler.recovered_at - sampler.killed_at
            if sampler.recovered_at is not None and sampler.killed_at is not None
            else None
        )
        with psycopg.connect(self.admin, autocommit=True) as conn:
            others = [
                float(s)
                for (s,) in conn.execute(
                    "select extract(epoch from completed_at - created_at) from import_jobs "
                    "where id = any(%s) and not (id = any(%s)) and completed_at is not null",
                    ([u.job for u in uploads], list(sampler.held_at_kill)),
                ).fetchall()
            ]
        dead_posts = self.dead_instance_posts(uploads, sampler)
        return {
            "recovery_s": recovery,
            "others_p95_s": pct(others, 95),
            "others_max_s": max(others, default=float("nan")),
            "failed_posts_after_kill": dead_posts,
        }

    def dead_instance_posts(self, uploads: list[Upload], sampler: Sampler) -> int:
        """Delivery attempts that could not connect: on loopback only the dead address refuses."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            return conn.execute(
                "select count(*) from event_deliveries d join import_events e "
                "on e.id = d.event_id where e.job_id = any(%s) and d.status_code is null",
                ([u.job for u in uploads],),
            ).fetchone()[0]

    def fanout(self) -> list[dict]:
        """One large import through 1, then 2 instances, ``--rounds`` times (ABAB: the
        machine's load drifts): the embedding stage's time, and how many instances held
        an embedding lease (1 means the stage ran on one instance whatever K was)."""
        out = []
        for round_ in range(1, self.args.rounds + 1):
            for k in (1, 2):
                r = self.scenario(
                    f"fanout x{k} #{round_}", receivers=k, n=1, size_kb=self.args.fanout_kb
                )
                r["embedding_s"] = r["stage_p50_s"].get("embedding")
                out.append(r)
        return out


# -- report -------------------------------------------------------------------------------


def fmt(v: Any, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return format(v, spec) if isinstance(v, float) else str(v)


def print_table(results: list[dict]) -> None:
    cols = [
        ("scenario", "name", "s"),
        ("ok", None, "s"),
        ("wall s", "wall_s", ".1f"),
        ("p50 s", "p50_s", ".1f"),
        ("p95 s", "p95_s", ".1f"),
        ("att/ev", "attempts_per_event", ".2f"),
        ("max att", "max_attempts_one_event", "d"),
        ("503s", "status_503", "d"),
        ("abandon", "abandoned_events", "d"),
        ("re-ann", "reannounced_events", "d"),
        ("idle job-s", "idle_job_s", ".0f"),
        ("rt/job", "realtime_writes_per_job", ".0f"),
        ("rt max/s", "most_non_stage_writes_in_1s", "d"),
        ("upd/job", "import_jobs_updates_per_job", ".0f"),
        ("left", "exports_left_on_disk", "d"),
        ("left killed", "exports_left_on_killed", "d"),
    ]
    rows = []
    for r in results:
        row = []
        for _, key, spec in cols:
            if key is None:
                row.append(f"{r['complete']}/{r['jobs']}")
            else:
                v = r.get(key)
                row.append(fmt(v, spec) if spec != "s" else str(v))
        rows.append(row)
    widths = [max(len(c[0]), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    print("  ".join(c[0].rjust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    for r in results:
        extra = [f"claims per instance {r['claims_per_instance']}"]
        extra.append(f"stage p50 {r['stage_p50_s']}")
        if "recovery_s" in r:
            extra.append(
                f"kill -9 instance {r['killed_instance']} holding {r['jobs_held_at_kill']} "
                f"job(s): recovered in {fmt(r['recovery_s'])} s; other jobs p95 "
                f"{fmt(r['others_p95_s'])} s, max {fmt(r['others_max_s'])} s; "
                f"{r['failed_posts_after_kill']} posts to the dead address"
            )
        if r.get("embedding_s") is not None:
            extra.append(
                f"embedding stage {r['embedding_s']:.1f} s on "
                f"{r['embedding_instances']} instance(s)"
            )
        if r.get("embedding_cpu_busy") is not None:
            extra.append(
                f"while embedding the machine's {os.cpu_count()} cores were "
                f"{r['embedding_cpu_busy']:.0%} busy, PostgreSQL {r['embedding_db_cores']:.2f} "
                "cores of it"
            )
        for p in r["problems"][:5]:
            extra.append(f"PROBLEM {p}")
        print(f"{r['name']}: " + "; ".join(extra))


def ratios(results: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    seq = next((r for r in results if r["sequential"]), None)
    for r in results:
        if seq is not None and not r["sequential"] and not r["name"].startswith("fanout"):
            out[f"{r['name']} p95 / back-to-back wall"] = r["p95_s"] / seq["wall_s"]
            out[f"{r['name']} wall / back-to-back wall"] = r["wall_s"] / seq["wall_s"]
    embed = {
        k: [r["embedding_s"] for r in results if r["name"].startswith(f"fanout x{k} ")]
        for k in (1, 2)
    }
    if all(embed.values()) and all(all(embed[k]) for k in embed):
        out["fanout embedding 2 / 1 instances (medians)"] = statistics.median(
            embed[2]
        ) / statistics.median(embed[1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imports", type=int, default=20, help="concurrent imports (20)")
    ap.add_argument(
        "--receivers", type=int, nargs="+", default=[1, 2], help="receiver counts to run (1 2)"
    )
    ap.add_argument("--export-kb", type=int, default=400, help="size of each export (400 KB)")
    ap.add_argument("--variants", type=int, default=5, help="distinct export files (5)")
    ap.add_argument("--no-sequential", action="store_true", help="skip the same N run back to back")
    ap.add_argument("--kill", action="store_true", help="only: 2 receivers, kill -9 one")
    ap.add_argument("--kill-after", type=float, default=8.0, help="seconds before the kill")
    ap.add_argument("--fanout", action="store_true", help="only: one large import, 1 vs 2")
    ap.add_argument("--fanout-kb", type=int, default=8000, help="the large export (8000 KB)")
    ap.add_argument("--rounds", type=int, default=2, help="fanout: ABAB rounds (2)")
    ap.add_argument("--latency-ms", type=float, default=200.0, help="embedding API latency")
    ap.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="EMBEDDING_CONCURRENCY: requests in flight per stage slot (1, so the API's "
        "latency shows; the service's default is 4)",
    )
    ap.add_argument(
        "--dims",
        type=int,
        default=384,
        help="EMBEDDING_DIMENSIONS (384: an HNSW index covers it, as 1536 is; 256: none does)",
    )
    ap.add_argument("--pool-size", type=int, default=2, help="STAGE_POOL_SIZE (2, as Render)")
    ap.add_argument("--lease-seconds", type=int, default=30, help="LEASE_SECONDS (30)")
    ap.add_argument("--sweep-interval", type=float, default=30.0, help="sweeper loop (30 s)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per scenario, seconds")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unmeasured first import")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = ap.parse_args()

    from tests.fake_openai import fake_openai

    work = Path(tempfile.mkdtemp(prefix="soulprint-load-"))
    work.chmod(0o755)
    admin, worker, cleanup = database(work)
    results: list[dict] = []
    try:
        with fake_openai(latency_s=args.latency_ms / 1000) as api:
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
            env.update(
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
                DATABASE_URL=worker,
                WEBHOOK_SECRET=new_webhook_secret(),
                SOULPRINT_LOCAL_BUCKET_DIR=str(work / "bucket"),
                EMBEDDING_PROVIDER="openai",
                OPENAI_BASE_URL=api.base_url,
                OPENAI_API_KEY=api.api_key,
                EMBEDDING_MODEL="text-embedding-3-small",
                EMBEDDING_DIMENSIONS=str(args.dims),
                EMBEDDING_CONCURRENCY=str(args.concurrency),
                STAGE_POOL_SIZE=str(args.pool_size),
                LEASE_SECONDS=str(args.lease_seconds),
            )
            for key in ("LLM_PROVIDER", "SVIX_API_KEY", "SUPABASE_URL", "SEARCH_DATABASE_URL"):
                env.pop(key, None)
            bench = Bench(args, admin, env, work)
            n, kb = args.imports, args.export_kb
            if not args.no_warmup:
                # The first import into a fresh database embeds ~3x slower than the next
                # (8 MB: 60-73 s vs 18-21 s here): measured runs start from a used one.
                warm = bench.scenario(
                    "warm-up", receivers=1, n=1, size_kb=args.fanout_kb if args.fanout else kb
                )
                if warm["problems"]:
                    raise SystemExit(f"the warm-up import failed: {warm['problems'][0]}")
            if args.kill:
                results.append(bench.scenario("kill x2", receivers=2, n=n, size_kb=kb, kill=True))
            elif args.fanout:
                results.extend(bench.fanout())
            else:
                for k in args.receivers:
                    results.append(
                        bench.scenario(f"{n} at once x{k}", receivers=k, n=n, size_kb=kb)
                    )
                if not args.no_sequential:
                    results.append(
                        bench.scenario(
                            f"{n} back to back x1", receivers=1, n=n, size_kb=kb, sequential=True
                        )
                    )
    finally:
        if callable(cleanup):
            cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept: {work}", file=sys.stderr)
    summary = {"results": results, "ratios": ratios(results)}
    for r in results:
        r.pop("latency_s", None)
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, default=str, indent=2))
    if args.json:
        print(json.dumps(summary, default=str, indent=2))
    else:
        print_table(results)
        for k, v in summary["ratios"].items():
            print(f"{k}: {v:.2f}")
    failed = [p for r in results for p in r["problems"]]
    if failed:
        print(f"FAIL: {len(failed)} problem(s): {failed[:3]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
