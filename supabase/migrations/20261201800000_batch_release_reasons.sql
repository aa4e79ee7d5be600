-- Review of issue 15, findings F4 and F5: a batch given back says why, and a crash's dead
-- time is waiting, not the stage's time.
--
-- F4. Until now release_import_embedding_batch gave a batch back "as is": the claim had
-- already counted an attempt and the batch was claimable again at once. So five rolling
-- deploys that caught one batch in flight used up its attempts (the holder then failed the
-- job as stalled), and a write that failed for a transient reason (a statement timeout, a
-- dropped connection) was retried by the same thread at once, burning every attempt in
-- seconds. A release now says why, as release_import_job does (20261130700000_retry_policy):
--   shutdown   the instance is stopping, or the work stopped because the job was cancelled
--              or is no longer ours: the attempt is taken back, claimable again at once.
--   transient  a dependency failed: the attempt counts, and the batch may not be claimed
--              again before retry_at = now + backoff * 2^(attempts-1) (at most an hour).
--   failed     the embedder refused the batch: marked failed with the person's sentence
--              (as a release with an error code was before).
-- A batch whose lease lapsed (its instance died) is still claimable once the lease has
-- run out, and that claim counts: a batch that kills every instance that takes it must
-- not be retried for ever.
--
-- F5. claim_import_job recorded the wait for a free worker only at a stage's first claim.
-- A claim that takes over a lapsed lease (the holder died) left the dead time, lease
-- length plus the wait for a free slot, inside the stage's own time ("parsing 55.96 s" for
-- ~8 s of parsing). Now such a claim moves the gap since the dead holder's last renewal
-- from the stage's time to waited_s.
--
-- Added:    column import_embedding_batches.retry_at;
--           public.release_import_embedding_batch(uuid, int, text, text, double precision,
--             text, text) (the release with a reason);
--           public._import_timing_taken_over(jsonb, import_stage, double precision).
-- Replaced (CREATE OR REPLACE, same signatures, same grants):
--   public.claim_import_embedding_batch(text, int, text, int, int, uuid)  respects retry_at
--   public.release_import_embedding_batch(uuid, int, text, text, text)    = 'transient'/'failed'
--   public._import_embedding_batches_cleanup()                             also clears retry_at
--   public.claim_import_job(uuid, import_stage, text, int)                 dead time is waiting
-- Every definer function pins search_path = pg_catalog, pg_temp and schema-qualifies names.

alter table public.import_embedding_batches add column if not exists retry_at timestamptz;

comment on column public.import_embedding_batches.retry_at is
  'After a transient failure: the batch may not be claimed before this time (backoff).';

-- ---------------------------------------------------------------------------------------
-- claim: as in 20261201200000_embedding_fanout.sql, and not while a backoff runs
-- ---------------------------------------------------------------------------------------

create or replace function public.claim_import_embedding_batch(
  p_owner text, p_lease_seconds int, p_model text, p_dim int, p_max_attempts int,
  p_job_id uuid default null
) returns table (job_id uuid, batch_no int, first_chunk_id uuid, last_chunk_id uuid)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  b public.import_embedding_batches;
begin
  select x.* into b
    from public.import_embedding_batches x
    join public.import_jobs j on j.id = x.job_id
   where x.done_at is null
     and x.error_code is null
     and (x.lease_owner is null or x.lease_expires_at < pg_catalog.now())
     and (x.retry_at is null or x.retry_at <= pg_catalog.now())
     and x.attempts < p_max_attempts
     and x.embedding_model = p_model and x.embedding_dim = p_dim
     and (p_job_id is null or x.job_id = p_job_id)
     and j.stage = 'embedding' and j.cancel_requested_at is null
   order by j.created_at, x.job_id, x.batch_no
   limit 1
  for update of x skip locked;
  if not found then
    return;
  end if;

  update public.import_embedding_batches x
     set lease_owner = p_owner,
         lease_expires_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
         attempts = x.attempts + 1,
         retry_at = null
   where x.job_id = b.job_id and x.batch_no = b.batch_no;
  return query select b.job_id, b.batch_no, b.first_chunk_id, b.last_chunk_id;
end
$$;

-- ---------------------------------------------------------------------------------------
-- release, saying why
-- ---------------------------------------------------------------------------------------

-- Give a held batch back for p_reason ('shutdown' | 'transient' | 'failed', see the top of
-- this file). p_backoff_seconds is the first transient delay (each further attempt
-- doubles it; 0: claimable at once). p_error_code / p_error_message are for 'failed' only.
-- False when the batch is not held by p_owner (its lease lapsed and someone else took it,
-- or it is done): nothing changes.
create or replace function public.release_import_embedding_batch(
  p_job_id uuid, p_batch_no int, p_owner text, p_reason text,
  p_backoff_seconds double precision, p_error_code text, p_error_message text
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_reason is null or p_reason not in ('shutdown', 'transient', 'failed') then
    raise exception 'release_import_embedding_batch: unknown reason %', p_reason
      using hint = 'shutdown, transient or failed', errcode = 'invalid_parameter_value';
  end if;
  if p_reason = 'failed' and p_error_code is null then
    raise exception 'release_import_embedding_batch: a failed batch needs an error code'
      using errcode = 'invalid_parameter_value';
  end if;

  update public.import_embedding_batches x
     set lease_owner = null, lease_expires_at = null,
         -- The instance stopped, the batch did not fail: this claim does not count.
         attempts = case when p_reason = 'shutdown' then greatest(x.attempts - 1, 0)
                         else x.attempts end,
         retry_at = case
           when p_reason = 'transient' and coalesce(p_backoff_seconds, 0) > 0 then
             pg_catalog.now() + pg_catalog.make_interval(secs => least(
               p_backoff_seconds * pg_catalog.power(2, greatest(x.attempts - 1, 0)),
               3600))
           end,
         error_code = case when p_reason = 'failed' then p_error_code end,
         error_message = case when p_reason = 'failed' then p_error_message end
   where x.job_id = p_job_id and x.batch_no = p_batch_no
     and x.lease_owner = p_owner and x.done_at is null;
  return found;
end
$$;

-- The form of 20261201200000 (no reason), kept for instances still running the code that
-- calls it during a rolling deploy: with an error code it fails the batch as before;
-- without one it cannot tell a shutdown from a failure, so it counts the attempt as
-- before (a transient release with no backoff).
create or replace function public.release_import_embedding_batch(
  p_job_id uuid, p_batch_no int, p_owner text,
  p_error_code text default null, p_error_message text default null
) returns boolean
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  select public.release_import_embedding_batch(
    p_job_id, p_batch_no, p_owner,
    case when p_error_code is null then 'transient' else 'failed' end,
    0::double precision, p_error_code, p_error_message)
$$;

-- ---------------------------------------------------------------------------------------
-- Cleanup: as in 20261201200000_embedding_fanout.sql, and a retried job's batches lose
-- their backoff too
-- ---------------------------------------------------------------------------------------

create or replace function public._import_embedding_batches_cleanup()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.stage = 'failed' then
    update public.import_embedding_batches b
       set error_code = null, error_message = null, attempts = 0, retry_at = null,
           lease_owner = null, lease_expires_at = null
     where b.job_id = new.id and b.done_at is null;
  else
    delete from public.import_embedding_batches b where b.job_id = new.id;
  end if;
  return null;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Timings: a dead holder's time is waiting (F5)
-- ---------------------------------------------------------------------------------------

-- The stage's timing entry after a claim that takes over a lapsed lease: `gap_s` seconds
-- (since the dead holder's last renewal) move from the stage's own time to waited_s, by
-- moving started_at that much later. Work the dead holder did before its last renewal
-- stays stage time; work after it was lost and is done again, so it counts once.
create or replace function public._import_timing_taken_over(
  timings jsonb, stage public.import_stage, gap_s double precision
) returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when gap_s is null or gap_s <= 0 or not (timings -> stage::text ? 'started_at') then timings
    else pg_catalog.jsonb_set(
      timings, array[stage::text],
      (timings -> stage::text) || pg_catalog.jsonb_build_object(
        'started_at', pg_catalog.to_char(
          ((timings -> stage::text ->> 'started_at')::timestamptz
             + pg_catalog.make_interval(secs => gap_s)) at time zone 'utc',
          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'waited_s', pg_catalog.round(
          (coalesce((timings -> stage::text ->> 'waited_s')::numeric, 0)
           + gap_s::numeric), 3)))
  end
$$;

-- As in 20261201100000_pull_queue.sql, plus: a claim that takes over another owner's
-- lapsed lease counts the time since that owner's last renewal as waiting. The last
-- renewal is estimated as lease_expires_at - lease_seconds (every instance runs with the
-- same LEASE_SECONDS; the holder renews every third of it, so the estimate is early by at
-- most a third of a lease, which then counts as stage time).
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
         stage_timings = public._import_timing_taken_over(
           public._import_timing_claimed(j.stage_timings, j.stage, j.stage_changed_at),
           j.stage,
           case when j.lease_owner is not null and j.lease_owner <> claim_import_job.owner
                then extract(epoch from now() - (j.lease_expires_at
                       - make_interval(secs => claim_import_job.lease_seconds)))::double precision
           end)
   where j.id = claim_import_job.job_id
     and j.stage = claim_import_job.stage
     and j.cancel_requested_at is null
     and (j.retry_at is null or j.retry_at <= now())
     and (j.lease_owner is null or j.lease_expires_at < now()
          or j.lease_owner = claim_import_job.owner)
  returning j.*
$$;

-- ---------------------------------------------------------------------------------------
-- Who may call what
-- ---------------------------------------------------------------------------------------

-- Supabase grants new public functions to anon and authenticated by default: undo that.
revoke all on function
  public.release_import_embedding_batch(uuid, int, text, text, double precision, text, text),
  public._import_timing_taken_over(jsonb, public.import_stage, double precision)
  from public, anon, authenticated;
grant execute on function
  public.release_import_embedding_batch(uuid, int, text, text, double precision, text, text)
  to import_worker, service_role;
