-- Import pipeline, part 2: the state machine.
--
-- Every transition of a job is a SQL function here; Python (pipeline/jobstore.py) only calls
-- them by name. Each is one statement or one transaction, and each is conditional on what the
-- caller believes (stage, lease owner), so a lost race is a NULL/false answer, never a
-- half-applied change. Triggers do the rest in the same transaction as the change:
--   upload row in storage.objects  -> job row (queued, or rejected if one is running)
--   job stage set or changed       -> stage timings, user_profiles.import_status, an event
--                                     in the outbox, NOTIFY, and (hosted) a signed pg_net POST
--
-- Functions that cross RLS are SECURITY DEFINER with search_path pinned to pg_catalog, pg_temp
-- (pg_temp last: an empty path would still search pg_temp first for types and relations),
-- and every name is schema-qualified.

-- ---------------------------------------------------------------------------------------
-- Stage helpers
-- ---------------------------------------------------------------------------------------

-- The one place that says what follows what. `chunking` is skipped: parsing writes chunks.
create or replace function public.import_next_stage(stage public.import_stage)
returns public.import_stage
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select case stage
    when 'queued' then 'downloading'
    when 'downloading' then 'parsing'
    when 'parsing' then 'embedding'
    when 'chunking' then 'embedding'
    when 'embedding' then 'generating_soulprint'
    when 'generating_soulprint' then 'complete'
  end::public.import_stage
$$;

create or replace function public.import_stage_is_active(stage public.import_stage)
returns boolean
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select stage in ('queued', 'downloading', 'parsing', 'chunking', 'embedding',
                   'generating_soulprint')
$$;

-- What the app shows in user_profiles.import_status for a job in this stage.
create or replace function public.import_status_for(stage public.import_stage)
returns text
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select case
    when public.import_stage_is_active(stage) then 'processing'
    when stage = 'complete' then 'complete'
    when stage = 'failed' then 'failed'
    when stage = 'cancelled' then 'cancelled'
  end  -- rejected: NULL, the running import keeps the status
$$;

-- An absolute counter from a progress report, or the current value when the key is absent.
create or replace function public._import_counter(counters jsonb, key text, current bigint)
returns bigint
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select coalesce((counters ->> key)::bigint, current)
$$;

-- ---------------------------------------------------------------------------------------
-- Events: the outbox
-- ---------------------------------------------------------------------------------------

-- Post one event from the database itself, signed, where pg_net, Vault and pgcrypto exist
-- (hosted Supabase). pg_net queues the request and sends it only after COMMIT, so a
-- rolled-back transaction (e.g. Storage's permission-test insert) sends nothing. It never
-- retries: the outbox row stays unacknowledged until the receiver acks it, and the relay /
-- sweeper deliver it otherwise. Missing pieces or any error here never block a stage change.
create or replace function public._post_import_event_via_pg_net(event_id uuid)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  ev public.import_events;
  url text;
  secret text;
  ts bigint := extract(epoch from now())::bigint;
  body text;
  signature text;
begin
  if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
     or to_regclass('vault.decrypted_secrets') is null
     or to_regprocedure('public.standard_webhook_signature(text,bigint,text,text)') is null then
    return false;
  end if;

  -- Dynamic SQL: schemas vault and net do not exist on plain PostgreSQL.
  execute $q$select decrypted_secret from vault.decrypted_secrets
             where name = 'soulprint_webhook_url' limit 1$q$ into url;
  execute $q$select decrypted_secret from vault.decrypted_secrets
             where name = 'soulprint_webhook_secret' limit 1$q$ into secret;
  if url is null or secret is null then
    return false;  -- not configured: the relay delivers from the outbox
  end if;

  select * into ev from public.import_events where id = event_id;
  -- jsonb -> text is canonical and pg_net serialises the body the same way: the text signed
  -- is the text sent.
  body := ev.payload::text;
  signature := public.standard_webhook_signature(ev.id::text, ts, body, secret);

  execute $q$select net.http_post(url := $1, body := $2, headers := $3,
                                  timeout_milliseconds := 5000)$q$
    using url, ev.payload,
          jsonb_build_object(
            'Content-Type', 'application/json',
            'webhook-id', ev.id::text,
            'webhook-timestamp', ts::text,
            'webhook-signature', 'v1,' || signature);

  insert into public.event_deliveries (event_id, via) values (ev.id, 'pg_net');
  return true;
exception when others then
  -- Never let delivery break the transition; the outbox still has the event.
  raise warning 'pg_net post of import event % failed: %', event_id, sqlerrm;
  return false;
end
$$;

-- Append the event for a job's current stage. Used by the stage trigger and by sweeps and
-- releases (which re-announce a stage without changing it). Returns the event id.
create or replace function public.emit_import_event(job_id uuid, reason text)
returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  ev_id uuid := gen_random_uuid();
  ev_type text;
begin
  select * into j from public.import_jobs where id = emit_import_event.job_id;
  if not found then
    return null;
  end if;
  ev_type := 'import.' || j.stage::text;

  -- Standard Webhooks body: ids and the stage only, never user content or secrets.
  insert into public.import_events (id, job_id, type, payload)
  values (
    ev_id, j.id, ev_type,
    jsonb_build_object(
      'type', ev_type,
      'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      'data', jsonb_build_object(
        'job_id', j.id,
        'user_id', j.user_id,
        'stage', j.stage,
        'reason', coalesce(reason, 'stage_changed'))));

  -- The local relay LISTENs; NOTIFY is delivered at COMMIT, like the row it points to.
  perform pg_notify('import_events', ev_id::text);
  perform public._post_import_event_via_pg_net(ev_id);
  return ev_id;
end
$$;

-- The receiver acknowledges an event once it has taken it (idempotent).
create or replace function public.ack_import_event(event_id uuid)
returns boolean
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update public.import_events
     set acknowledged_at = coalesce(acknowledged_at, now())
   where id = event_id
  returning true
$$;

-- ---------------------------------------------------------------------------------------
-- Triggers on import_jobs
-- ---------------------------------------------------------------------------------------

-- BEFORE: timestamps and stage timings, so no caller can forget them.
create or replace function public._import_jobs_before()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  at text := to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
begin
  new.updated_at := now();
  if tg_op = 'INSERT' or new.stage is distinct from old.stage then
    new.stage_changed_at := now();
    if tg_op = 'UPDATE' then
      new.stage_timings := jsonb_set(
        new.stage_timings, array[old.stage::text],
        coalesce(new.stage_timings -> old.stage::text, '{}') || jsonb_build_object('ended_at', at));
    end if;
    -- Re-entering a stage (retry) starts its clock again.
    new.stage_timings := new.stage_timings
      || jsonb_build_object(new.stage::text, jsonb_build_object('started_at', at));
    if not public.import_stage_is_active(new.stage) then
      new.completed_at := coalesce(new.completed_at, now());
      new.lease_owner := null;
      new.lease_expires_at := null;
    else
      new.completed_at := null;
    end if;
  end if;
  return new;
end
$$;

drop trigger if exists import_jobs_before on public.import_jobs;
create trigger import_jobs_before
  before insert or update on public.import_jobs
  for each row execute function public._import_jobs_before();

-- AFTER: the person's status and the event, in the same transaction as the change.
-- The reason travels in a transaction-local setting (set by retry_import_job), default
-- 'stage_changed'.
create or replace function public._import_jobs_stage_changed()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  status text := public.import_status_for(new.stage);
begin
  if status is not null then
    insert into public.user_profiles (user_id, import_status, updated_at)
    values (new.user_id, status, now())
    on conflict (user_id) do update
      set import_status = excluded.import_status, updated_at = now();
  end if;
  perform public.emit_import_event(
    new.id,
    coalesce(nullif(current_setting('soulprint.event_reason', true), ''), 'stage_changed'));
  return null;
end
$$;

drop trigger if exists import_jobs_event_on_insert on public.import_jobs;
create trigger import_jobs_event_on_insert
  after insert on public.import_jobs
  for each row execute function public._import_jobs_stage_changed();

-- Progress-only updates (counters, checkpoint, lease) append nothing.
drop trigger if exists import_jobs_event_on_stage on public.import_jobs;
create trigger import_jobs_event_on_stage
  after update of stage on public.import_jobs
  for each row when (old.stage is distinct from new.stage)
  execute function public._import_jobs_stage_changed();

-- ---------------------------------------------------------------------------------------
-- The upload trigger: storage.objects -> import_jobs
-- ---------------------------------------------------------------------------------------

-- Storage inserts the object row only once all bytes are stored; an upsert over the same
-- path is an UPDATE with a new version. Either way, in the same transaction: a queued job,
-- or, when this person already has an active import, a `rejected` job that says so. The
-- ON CONFLICT against the partial unique index is what decides, atomically, under any
-- number of concurrent uploads (pitfall 7).
create or replace function public._import_job_from_upload()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  folder text := (storage.foldername(new.name))[1];
  owner_id uuid;
  size bigint;
  job_id uuid;
begin
  -- Only {user_id}/... paths of real users start an import (Storage RLS enforces this for
  -- people; a stray service upload elsewhere is ignored rather than failing the upload).
  if folder is null
     or folder !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return null;
  end if;
  owner_id := folder::uuid;
  if not exists (select 1 from auth.users where id = owner_id) then
    return null;
  end if;
  size := nullif(new.metadata ->> 'size', '')::bigint;

  insert into public.import_jobs (user_id, bucket_id, object_name, object_version, object_id,
                                  file_size, bytes_total)
  values (owner_id, new.bucket_id, new.name, new.version, new.id, size, coalesce(size, 0))
  on conflict (user_id)
    where stage in ('queued', 'downloading', 'parsing', 'chunking', 'embedding',
                    'generating_soulprint')
    do nothing
  returning id into job_id;

  if job_id is null then
    insert into public.import_jobs (user_id, bucket_id, object_name, object_version, object_id,
                                    file_size, bytes_total, stage, error_code, error_message)
    values (owner_id, new.bucket_id, new.name, new.version, new.id, size, coalesce(size, 0),
            'rejected', 'import_already_running',
            'An import is already running for your account. Wait for it to finish '
            || '(or cancel it), then upload again.');
  end if;
  return null;
end
$$;

drop trigger if exists import_job_on_upload on storage.objects;
create trigger import_job_on_upload
  after insert on storage.objects
  for each row when (new.bucket_id = 'imports')
  execute function public._import_job_from_upload();

drop trigger if exists import_job_on_reupload on storage.objects;
create trigger import_job_on_reupload
  after update on storage.objects
  for each row when (new.bucket_id = 'imports' and new.version is distinct from old.version)
  execute function public._import_job_from_upload();

-- ---------------------------------------------------------------------------------------
-- Transitions (the worker's API)
-- ---------------------------------------------------------------------------------------

-- Take the lease on a job in `stage`: only if the stage is what the caller expects, nobody
-- else holds an unexpired lease, and no cancel is pending. Counts an attempt. NULL: not
-- yours. The same owner may claim again (owners are unique per running stage): that makes
-- a claim retried after a lost reply idempotent.
create or replace function public.claim_import_job(
  job_id uuid, stage public.import_stage, owner text, lease_seconds int
) returns public.import_jobs
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update public.import_jobs j
     set lease_owner = claim_import_job.owner,
         lease_expires_at = now() + make_interval(secs => claim_import_job.lease_seconds),
         attempts = j.attempts + 1
   where j.id = claim_import_job.job_id
     and j.stage = claim_import_job.stage
     and j.cancel_requested_at is null
     and (j.lease_owner is null or j.lease_expires_at < now()
          or j.lease_owner = claim_import_job.owner)
  returning j.*
$$;

-- Absolute counters and the checkpoint of the batch just written; renews the lease.
-- 'ok' | 'cancel_requested' (stop, then finish_import_cancel) | 'not_yours' (stop).
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
         lease_expires_at = now() + make_interval(secs => report_import_progress.lease_seconds)
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

-- Cancel now: delete this import's partial data, stage `cancelled`. Internal; callers check
-- ownership first.
create or replace function public._cancel_import_job(job_id uuid)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  update public.import_jobs j
     set stage = 'cancelled',
         cancel_requested_at = coalesce(j.cancel_requested_at, now()),
         error_code = 'cancelled',
         error_message = 'The import was cancelled.'
   where j.id = _cancel_import_job.job_id
     and public.import_stage_is_active(j.stage);
  if not found then
    return false;
  end if;
  delete from public.memory_chunks c where c.job_id = _cancel_import_job.job_id;
  delete from public.import_conversations c where c.job_id = _cancel_import_job.job_id;
  delete from public.soulprints s where s.job_id = _cancel_import_job.job_id;
  return true;
end
$$;

-- Move on from `from_stage` to the next one, if the caller holds the lease. Frees the lease,
-- resets attempts and checkpoint; the stage trigger emits the next event. Returns the new
-- stage, 'cancelled' if a cancel was pending (honoured here), NULL when not yours.
-- Finishing (generating_soulprint -> complete) goes through complete_import_job.
create or replace function public.advance_import_job(
  job_id uuid, owner text, from_stage public.import_stage, counters jsonb default '{}'
) returns public.import_stage
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c jsonb := coalesce(counters, '{}');
  next_stage public.import_stage := public.import_next_stage(from_stage);
  j public.import_jobs;
begin
  if next_stage is null or next_stage = 'complete' then
    raise exception 'advance_import_job: no plain advance from stage %', from_stage
      using hint = 'finish with complete_import_job';
  end if;

  select * into j from public.import_jobs x
   where x.id = advance_import_job.job_id
     and x.stage = advance_import_job.from_stage
     and x.lease_owner = advance_import_job.owner
  for update;
  if not found then
    return null;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);
    return 'cancelled';
  end if;

  update public.import_jobs x
     set stage = next_stage,
         bytes_total = public._import_counter(c, 'bytes_total', x.bytes_total),
         bytes_done = public._import_counter(c, 'bytes_done', x.bytes_done),
         conversations = public._import_counter(c, 'conversations', x.conversations),
         skipped_conversations =
           public._import_counter(c, 'skipped_conversations', x.skipped_conversations),
         messages = public._import_counter(c, 'messages', x.messages),
         user_messages = public._import_counter(c, 'user_messages', x.user_messages),
         assistant_messages =
           public._import_counter(c, 'assistant_messages', x.assistant_messages),
         chunks = public._import_counter(c, 'chunks', x.chunks),
         embedded_chunks = public._import_counter(c, 'embedded_chunks', x.embedded_chunks),
         sha256 = coalesce(c ->> 'sha256', x.sha256),
         embedding_model = coalesce(c ->> 'embedding_model', x.embedding_model),
         embedding_dim = coalesce((c ->> 'embedding_dim')::int, x.embedding_dim),
         lease_owner = null,
         lease_expires_at = null,
         attempts = 0,
         checkpoint = '{}'
   where x.id = j.id;
  return next_stage;
end
$$;

-- Stop with an error a person understands. Keeps the checkpoint and data so a retry resumes.
create or replace function public.fail_import_job(
  job_id uuid, owner text, code text, message text
) returns boolean
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update public.import_jobs j
     set failed_stage = j.stage,
         stage = 'failed',
         error_code = fail_import_job.code,
         error_message = fail_import_job.message
   where j.id = fail_import_job.job_id
     and j.lease_owner = fail_import_job.owner
     and public.import_stage_is_active(j.stage)
  returning true
$$;

-- Give the lease back (SIGTERM): the attempt is not counted, and a 'released' event lets
-- another worker pick the stage up at once. A pending cancel is honoured instead.
create or replace function public.release_import_job(job_id uuid, owner text)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
begin
  update public.import_jobs x
     set lease_owner = null,
         lease_expires_at = null,
         attempts = greatest(x.attempts - 1, 0)
   where x.id = release_import_job.job_id
     and x.lease_owner = release_import_job.owner
     and public.import_stage_is_active(x.stage)
  returning x.* into j;
  if not found then
    return false;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);
  else
    perform public.emit_import_event(j.id, 'released');
  end if;
  return true;
end
$$;

-- The lease holder stops on a cancel request: partial data deleted, stage `cancelled`.
create or replace function public.finish_import_cancel(job_id uuid, owner text)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform 1 from public.import_jobs j
   where j.id = finish_import_cancel.job_id
     and j.lease_owner = finish_import_cancel.owner
     and public.import_stage_is_active(j.stage)
  for update;
  if not found then
    return false;
  end if;
  return public._cancel_import_job(finish_import_cancel.job_id);
end
$$;

-- Ask to cancel. As `authenticated` (the app): own jobs only. A job nobody holds is
-- cancelled at once; otherwise cancel_requested_at is set and the holder stops at its next
-- progress report. Returns the job's stage afterwards, NULL if not found / not yours.
create or replace function public.request_import_cancel(job_id uuid)
returns public.import_stage
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  caller uuid := auth.uid();
begin
  select * into j from public.import_jobs x where x.id = request_import_cancel.job_id
  for update;
  if not found then
    return null;
  end if;
  -- API callers (PostgREST sets role to anon/authenticated) act for themselves only.
  if (caller is not null and caller <> j.user_id)
     or (caller is null
         and coalesce(current_setting('role', true), 'none') in ('anon', 'authenticated')) then
    return null;
  end if;
  if not public.import_stage_is_active(j.stage) then
    return j.stage;
  end if;
  if j.lease_owner is null or j.lease_expires_at < now() then
    perform public._cancel_import_job(j.id);
    return 'cancelled';
  end if;
  update public.import_jobs x
     set cancel_requested_at = coalesce(x.cancel_requested_at, now())
   where x.id = j.id;
  return j.stage;
end
$$;

-- failed -> the stage it failed in, with a fresh attempt count. NULL if not failed, or if
-- the person has started another import meanwhile (one active import per person).
create or replace function public.retry_import_job(job_id uuid)
returns public.import_stage
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  resumed public.import_stage;
begin
  perform set_config('soulprint.event_reason', 'retry', true);
  begin
    update public.import_jobs j
       set stage = j.failed_stage,
           failed_stage = null,
           error_code = null,
           error_message = null,
           attempts = 0,
           cancel_requested_at = null
     where j.id = retry_import_job.job_id
       and j.stage = 'failed'
       and j.failed_stage is not null
    returning j.stage into resumed;
  exception when unique_violation then
    resumed := null;
  end;
  perform set_config('soulprint.event_reason', '', true);
  return resumed;
end
$$;

-- Finish: in ONE transaction, the soulprint row, the person's profile switched to this
-- import (current_import_id, soulprint, counts, status), older imports' data deleted, stage
-- complete. Until this commits the person keeps seeing the previous import in full.
create or replace function public.complete_import_job(
  job_id uuid, owner text, profile jsonb, soulprint_text text
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
begin
  select * into j from public.import_jobs x
   where x.id = complete_import_job.job_id
     and x.stage = 'generating_soulprint'
     and x.lease_owner = complete_import_job.owner
  for update;
  if not found then
    return false;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);  -- the person asked first
    return false;
  end if;

  insert into public.soulprints (job_id, user_id, profile, soulprint_text)
  values (j.id, j.user_id, coalesce(complete_import_job.profile, '{}'),
          complete_import_job.soulprint_text)
  on conflict on constraint soulprints_pkey do update
    set profile = excluded.profile, soulprint_text = excluded.soulprint_text;

  update public.import_jobs x
     set stage = 'complete', attempts = 0, checkpoint = '{}'
   where x.id = j.id;

  insert into public.user_profiles (user_id, import_status, soulprint_text, total_conversations,
                                    current_import_id, updated_at)
  values (j.user_id, 'complete', complete_import_job.soulprint_text, j.conversations, j.id, now())
  on conflict (user_id) do update
    set import_status = 'complete',
        soulprint_text = excluded.soulprint_text,
        total_conversations = excluded.total_conversations,
        current_import_id = excluded.current_import_id,
        updated_at = now();

  -- Older imports (completed, failed or cancelled) leave no data behind.
  delete from public.memory_chunks c where c.user_id = j.user_id and c.job_id <> j.id;
  delete from public.import_conversations c where c.user_id = j.user_id and c.job_id <> j.id;
  delete from public.soulprints s where s.user_id = j.user_id and s.job_id <> j.id;
  return true;
end
$$;

-- The sweeper (cron / local loop). For each active job nobody holds a live lease on:
--   cancel pending                        -> cancelled (partial data deleted)
--   lease expired after max_attempts      -> failed, with a sentence that says why
--   lease expired otherwise               -> lease cleared (the silent holder is no longer
--                                            the owner) and the stage re-announced ('sweep')
--   unheld, no event for `stale_after`    -> the stage re-announced ('sweep'); so at most
--                                            once per stale_after while nobody takes it
-- Skips rows another sweeper or worker has locked.
create or replace function public.sweep_import_jobs(stale_after interval, max_attempts int)
returns table (job_id uuid, action text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  last_event timestamptz;
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
    elsif j.lease_owner is not null and j.attempts >= max_attempts then
      update public.import_jobs x
         set failed_stage = x.stage,
             stage = 'failed',
             error_code = 'stalled',
             error_message = format(
               'The import stopped responding %s times while %s and was stopped. '
               || 'You can retry it.', j.attempts, replace(j.stage::text, '_', ' '))
       where x.id = j.id;
      action := 'failed';
      return next;
    elsif j.lease_owner is not null then
      update public.import_jobs x
         set lease_owner = null, lease_expires_at = null
       where x.id = j.id;
      perform public.emit_import_event(j.id, 'sweep');
      action := 'reemitted';
      return next;
    else
      select max(e.created_at) into last_event
        from public.import_events e where e.job_id = j.id;
      if last_event is null or last_event < now() - stale_after then
        perform public.emit_import_event(j.id, 'sweep');
        action := 'reemitted';
        return next;
      end if;
    end if;
  end loop;
end
$$;
