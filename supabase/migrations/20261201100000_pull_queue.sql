-- The event is a doorbell; Postgres is the queue (issue 15, item 1), and one lease owner
-- (issue 10, "Leases").
--
-- Before this migration a stage ran only when its event was delivered to a receiver with a
-- free pool slot; a full pool answered 503 and every 503 spent one of the relay's retries,
-- so under load events were abandoned and jobs sat unheld while receivers were idle. Now
-- the receiver acknowledges every signed event at once and only wakes its pool; the pool's
-- threads pull runnable work from import_jobs whenever they have capacity.
--
-- Added:
--   public.claim_next_import_job(text, int, import_stage[], int)  pick + claim, SKIP LOCKED
--   public._import_timing_claimed(jsonb, import_stage, timestamptz) stage_timings at a claim
--   index import_jobs_runnable_idx
-- Replaced (CREATE OR REPLACE, same signatures, same grants):
--   public.claim_import_job(uuid, import_stage, text, int)   also records the wait
--   public.report_import_progress(uuid, text, jsonb, jsonb, int)  NULL lease: not renewed
-- Every definer function pins search_path = pg_catalog, pg_temp and schema-qualifies names.

-- ---------------------------------------------------------------------------------------
-- Timings: waiting is not working
-- ---------------------------------------------------------------------------------------

-- The stage trigger starts a stage's clock when the job enters it (started_at). Under load
-- the job may then wait for a free worker, and that wait used to be shown to people as the
-- stage's own time ("parsing 24.4 s" for a 160 KB export). At the stage's first claim the
-- clock is restarted and the wait kept beside it as waited_s (seconds); later claims of the
-- same stage (after a release or a lapsed lease) leave both alone. A retry re-enters the
-- stage, which writes a fresh entry without waited_s, so its first claim records again.
create or replace function public._import_timing_claimed(
  timings jsonb, stage public.import_stage, entered_at timestamptz
) returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when timings -> stage::text ? 'waited_s' then timings
    else jsonb_set(
      coalesce(timings, '{}'), array[stage::text],
      coalesce(timings -> stage::text, '{}') || jsonb_build_object(
        'started_at', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'waited_s', round(extract(epoch from now() - coalesce(entered_at, now()))::numeric, 3)))
  end
$$;

-- ---------------------------------------------------------------------------------------
-- claim: as in 20261130700000_retry_policy.sql, plus the first-claim timing
-- ---------------------------------------------------------------------------------------

create or replace function public.claim_import_job(
  job_id uuid, stage public.import_stage, owner text, lease_seconds int
) returns public.import_jobs
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update public.import_jobs j
     set lease_owner = claim_import_job.owner,
         lease_expires_at = now() + make_interval(secs => claim_import_job.lease_seconds),
         attempts = j.attempts + 1,
         retry_at = null,
         stage_timings = public._import_timing_claimed(j.stage_timings, j.stage,
                                                       j.stage_changed_at)
   where j.id = claim_import_job.job_id
     and j.stage = claim_import_job.stage
     and j.cancel_requested_at is null
     and (j.retry_at is null or j.retry_at <= now())
     and (j.lease_owner is null or j.lease_expires_at < now()
          or j.lease_owner = claim_import_job.owner)
  returning j.*
$$;

-- ---------------------------------------------------------------------------------------
-- claim_next: what a pool thread with capacity calls
-- ---------------------------------------------------------------------------------------

-- Active jobs are the few rows not yet finished; the BEFORE trigger keeps completed_at NULL
-- exactly while a job is active, so this index holds only them, oldest stage change first.
create index if not exists import_jobs_runnable_idx
  on public.import_jobs (stage_changed_at)
  where completed_at is null;

-- Pick the runnable job that has waited longest and claim it for `owner`; NULL (an all-NULL
-- row) when there is none. Runnable: in one of `stages` (the stages the caller has code
-- for; `chunking` has none), no cancel pending, no backoff running, and nobody holding a
-- live lease. FOR UPDATE SKIP LOCKED: two instances polling at once take different jobs
-- and never wait on each other. The claim itself is claim_import_job, so the rules of a
-- claim (attempts, retry_at, timings) have one owner.
--
-- A lapsed lease is taken over here too (no event needed), but only below max_attempts:
-- a job whose every attempt died with its worker is left to the sweeper, which fails it
-- with a sentence that says so (the policy of 20261130700000_retry_policy.sql).
create or replace function public.claim_next_import_job(
  owner text, lease_seconds int, stages public.import_stage[], max_attempts int
) returns public.import_jobs
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  picked public.import_jobs;
begin
  select * into picked from public.import_jobs x
   where x.completed_at is null  -- active jobs only (import_jobs_runnable_idx)
     and x.stage = any(claim_next_import_job.stages)
     and public.import_stage_is_active(x.stage)
     and x.cancel_requested_at is null
     and (x.retry_at is null or x.retry_at <= now())
     and (x.lease_owner is null
          or (x.lease_expires_at < now() and x.attempts < claim_next_import_job.max_attempts))
   order by x.stage_changed_at, x.id
   limit 1
   for update skip locked;
  if not found then
    return null;
  end if;
  return public.claim_import_job(picked.id, picked.stage, claim_next_import_job.owner,
                                 claim_next_import_job.lease_seconds);
end
$$;

-- ---------------------------------------------------------------------------------------
-- progress: counters and checkpoint; the lease only when asked
-- ---------------------------------------------------------------------------------------

-- As in 20261128110200_import_state_machine.sql, except that a NULL lease_seconds leaves the
-- lease as it is. One thing keeps a running stage's lease alive (the worker's LeaseKeeper,
-- which passes its lease length); the stage's own progress reports and batch commits pass
-- NULL and only record counters and see a cancel or a lost lease.
create or replace function public.report_import_progress(
  job_id uuid, owner text, counters jsonb, checkpoint jsonb, lease_seconds int
) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c jsonb := coalesce(counters, '{}');
  cancel_at timestamptz;
begin
  update public.import_jobs j
     set bytes_total = public._import_counter(c, 'bytes_total', j.bytes_total),
         bytes_done = public._import_counter(c, 'bytes_done', j.bytes_done),
         conversations = public._import_counter(c, 'conversations', j.conversations),
         skipped_conversations =
           public._import_counter(c, 'skipped_conversations', j.skipped_conversations),
         messages = public._import_counter(c, 'messages', j.messages),
         user_messages = public._import_counter(c, 'user_messages', j.user_messages),
         assistant_messages =
           public._import_counter(c, 'assistant_messages', j.assistant_messages),
         chunks = public._import_counter(c, 'chunks', j.chunks),
         embedded_chunks = public._import_counter(c, 'embedded_chunks', j.embedded_chunks),
         sha256 = coalesce(c ->> 'sha256', j.sha256),
         embedding_model = coalesce(c ->> 'embedding_model', j.embedding_model),
         embedding_dim = coalesce((c ->> 'embedding_dim')::int, j.embedding_dim),
         checkpoint = coalesce(report_import_progress.checkpoint, j.checkpoint),
         lease_expires_at = coalesce(
           now() + make_interval(secs => report_import_progress.lease_seconds),
           j.lease_expires_at)
   where j.id = report_import_progress.job_id
     and j.lease_owner = report_import_progress.owner
     and public.import_stage_is_active(j.stage)
  returning j.cancel_requested_at into cancel_at;

  if not found then
    return 'not_yours';
  end if;
  return case when cancel_at is null then 'ok' else 'cancel_requested' end;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------

-- Supabase grants new public functions to anon and authenticated by default: undo that.
revoke all on function
  public._import_timing_claimed(jsonb, public.import_stage, timestamptz),
  public.claim_next_import_job(text, int, public.import_stage[], int)
  from public, anon, authenticated;

do $$
begin
  if exists (select 1 from pg_roles where rolname = 'import_worker') then
    grant execute on function
      public.claim_next_import_job(text, int, public.import_stage[], int)
      to import_worker;
  end if;
  if exists (select 1 from pg_roles where rolname = 'service_role') then
    grant execute on function
      public.claim_next_import_job(text, int, public.import_stage[], int)
      to service_role;
  end if;
end
$$;
