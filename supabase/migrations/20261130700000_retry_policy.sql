-- One retry policy for a job whose stage stopped without finishing.
--
-- Before this migration a stage that hit a transient error (a Storage 5xx, a timeout) gave
-- its job back through release_import_job, which is the SIGTERM path: the attempt was
-- subtracted again and the new event was due at once. So an outage became
-- claim -> error -> release -> redeliver without end, `attempts` stayed 0 and the
-- "service unavailable" failure could never be reached. The sweeper, meanwhile, had its own
-- copy of "fail after max_attempts" for leases that ran out.
--
-- Now a release says why:
--   shutdown   the worker is stopping (SIGTERM, Ctrl-C): the attempt is not counted and the
--              stage is re-announced at once, so the next worker resumes straight away.
--   transient  a dependency failed: the attempt counts; below max_attempts the stage is
--              re-announced after an exponential backoff (base * 2^(attempts-1), at most an
--              hour); at max_attempts the job fails with a sentence a person can read.
-- The sweeper's "lease ran out" case goes through the same function as a transient release
-- (without the backoff: the lease running out was the wait), so the rule "count, back off,
-- give up at max_attempts" has one owner: public._retry_or_fail_import_job.
--
-- The backoff is kept in two places that must agree, written together by that function:
--   import_events.next_attempt_at  the relay delivers the re-announcement no earlier;
--   import_jobs.retry_at           claim_import_job refuses the job before then. This is
--                                  what holds the backoff where the event is posted by
--                                  pg_net at commit (hosted), which has no notion of "later":
--                                  that early delivery finds nothing to claim, and the
--                                  sweeper re-announces the job once retry_at has passed.
--
-- Functions replaced here (CREATE OR REPLACE, same signatures, same grants):
--   public.release_import_job(uuid, text), public.claim_import_job(uuid, import_stage, text,
--   int), public.sweep_import_jobs(interval, int).
-- Functions added: public.release_import_job(uuid, text, text, int, double precision),
--   public._retry_or_fail_import_job(uuid, text, int, double precision, text, text).
-- Every one pins search_path = pg_catalog, pg_temp (pg_temp last: see DESIGN.md) and
-- schema-qualifies every name.

alter table public.import_jobs add column if not exists retry_at timestamptz;
-- The app may show "retrying at ..."; people read their job by column grants.
grant select (retry_at) on public.import_jobs to authenticated;

comment on column public.import_jobs.retry_at is
  'After a transient failure: the job may not be claimed before this time (backoff).';

-- ---------------------------------------------------------------------------------------
-- The policy
-- ---------------------------------------------------------------------------------------

-- Give a job whose attempt ended without finishing to another attempt, or fail it.
-- The caller has decided the attempt counts (a shutdown never comes here). Frees the lease.
-- `backoff_seconds` is the first delay; each further attempt doubles it (0: re-announce now).
-- `code` / `message` are what the person sees when this was the last attempt.
-- Returns 'retrying' or 'failed'; NULL when the job is not active (nothing to do).
create or replace function public._retry_or_fail_import_job(
  job_id uuid, reason text, max_attempts int, backoff_seconds double precision,
  code text, message text
) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  delay interval;
  ev_id uuid;
begin
  select * into j from public.import_jobs x
   where x.id = _retry_or_fail_import_job.job_id
     and public.import_stage_is_active(x.stage)
  for update;
  if not found then
    return null;
  end if;

  if j.attempts >= _retry_or_fail_import_job.max_attempts then
    update public.import_jobs x
       set failed_stage = x.stage,
           stage = 'failed',
           retry_at = null,
           error_code = _retry_or_fail_import_job.code,
           error_message = _retry_or_fail_import_job.message
     where x.id = j.id;
    -- Soulprint first: a failure after the soulprint was shown gives the previous one back
    -- (20261130500000_soulprint_first.sql), whichever path failed the job.
    perform public._restore_previous_soulprint(j.id);
    return 'failed';
  end if;

  -- attempts counts the claims of this stage, so the first failure waits the base delay.
  delay := make_interval(secs => least(
    greatest(_retry_or_fail_import_job.backoff_seconds, 0)
      * power(2, greatest(j.attempts, 1) - 1),
    3600));
  update public.import_jobs x
     set lease_owner = null,
         lease_expires_at = null,
         retry_at = case when delay > interval '0' then now() + delay end
   where x.id = j.id;
  ev_id := public.emit_import_event(j.id, _retry_or_fail_import_job.reason);
  update public.import_events e
     set next_attempt_at = now() + delay
   where e.id = ev_id;
  return 'retrying';
end
$$;

-- ---------------------------------------------------------------------------------------
-- release: the lease holder gives the job back, saying why
-- ---------------------------------------------------------------------------------------

-- 'released' (shutdown: re-announced now, attempt not counted), 'retrying' (transient, below
-- max_attempts: re-announced after the backoff), 'failed' (transient, at max_attempts),
-- 'cancelled' (a cancel was pending: honoured instead), NULL when not yours.
create or replace function public.release_import_job(
  job_id uuid, owner text, reason text, max_attempts int, backoff_seconds double precision
) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
begin
  if release_import_job.reason not in ('shutdown', 'transient') then
    raise exception 'release_import_job: unknown reason %', release_import_job.reason
      using hint = 'shutdown (the worker is stopping) or transient (a dependency failed)';
  end if;

  select * into j from public.import_jobs x
   where x.id = release_import_job.job_id
     and x.lease_owner = release_import_job.owner
     and public.import_stage_is_active(x.stage)
  for update;
  if not found then
    return null;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);
    return 'cancelled';
  end if;

  if release_import_job.reason = 'shutdown' then
    -- The worker stopped, the stage did not fail: this claim does not count.
    update public.import_jobs x
       set lease_owner = null,
           lease_expires_at = null,
           attempts = greatest(x.attempts - 1, 0)
     where x.id = j.id;
    perform public.emit_import_event(j.id, 'released');
    return 'released';
  end if;

  return public._retry_or_fail_import_job(
    j.id, 'transient', release_import_job.max_attempts, release_import_job.backoff_seconds,
    'service_unavailable',
    format('A service the import depends on kept failing (%s attempts while %s). '
           || 'Your data so far is kept: you can retry the import.',
           j.attempts, replace(j.stage::text, '_', ' ')));
end
$$;

-- The original two-argument form is the shutdown release; kept so deployed callers and the
-- grants on it stand.
create or replace function public.release_import_job(job_id uuid, owner text)
returns boolean
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  select public.release_import_job(
    release_import_job.job_id, release_import_job.owner, 'shutdown', 0, 0) is not null
$$;

-- ---------------------------------------------------------------------------------------
-- claim: as before, and not while a backoff runs
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
         retry_at = null
   where j.id = claim_import_job.job_id
     and j.stage = claim_import_job.stage
     and j.cancel_requested_at is null
     and (j.retry_at is null or j.retry_at <= now())
     and (j.lease_owner is null or j.lease_expires_at < now()
          or j.lease_owner = claim_import_job.owner)
  returning j.*
$$;

-- ---------------------------------------------------------------------------------------
-- sweep: the lease-ran-out case through the same policy
-- ---------------------------------------------------------------------------------------

-- ('reemitted' | 'failed' | 'cancelled') per job acted on:
-- - a pending cancel nobody holds is carried out;
-- - an expired lease is a stalled attempt: _retry_or_fail_import_job (no extra backoff);
-- - an unheld job is re-announced when neither its last event nor its retry time is more
--   recent than stale_after (a job waiting out a backoff is left alone until then).
create or replace function public.sweep_import_jobs(stale_after interval, max_attempts int)
returns table (job_id uuid, action text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  last_event timestamptz;
  outcome text;
begin
  for j in
    select * from public.import_jobs x
     where public.import_stage_is_active(x.stage)
       and (x.lease_owner is null or x.lease_expires_at < now())
     order by x.created_at
     for update skip locked
  loop
    job_id := j.id;
    if j.cancel_requested_at is not null then
      perform public._cancel_import_job(j.id);
      action := 'cancelled';
      return next;
    elsif j.lease_owner is not null then
      outcome := public._retry_or_fail_import_job(
        j.id, 'sweep', sweep_import_jobs.max_attempts, 0, 'stalled',
        format('The import stopped responding %s times while %s and was stopped. '
               || 'You can retry it.', j.attempts, replace(j.stage::text, '_', ' ')));
      action := case outcome when 'failed' then 'failed' else 'reemitted' end;
      return next;
    else
      select max(e.created_at) into last_event
        from public.import_events e where e.job_id = j.id;
      if greatest(last_event, j.retry_at) is null
         or greatest(last_event, j.retry_at) < now() - sweep_import_jobs.stale_after then
        perform public.emit_import_event(j.id, 'sweep');
        action := 'reemitted';
        return next;
      end if;
    end if;
  end loop;
end
$$;

-- Supabase grants new public functions to anon and authenticated by default: undo that.
-- The internal policy function is called only by the functions above (as their owner).
revoke all on function
  public._retry_or_fail_import_job(uuid, text, int, double precision, text, text),
  public.release_import_job(uuid, text, text, int, double precision)
  from public, anon, authenticated;

do $$
begin
  if exists (select 1 from pg_roles where rolname = 'import_worker') then
    grant execute on function
      public.release_import_job(uuid, text, text, int, double precision) to import_worker;
  end if;
end
$$;
