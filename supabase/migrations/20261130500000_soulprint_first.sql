-- Soulprint first (issue 12).
--
-- The soulprint is what a person waits for, and it never needed an embedding: it is built
-- from the profile the parsing pass already folds up. So the order becomes
--
--   queued -> downloading -> parsing -> generating_soulprint -> embedding -> complete
--
-- and the soulprint is SHOWN when its stage ends (soulprints row, user_profiles.soulprint_text,
-- import_jobs.soulprint_at), while memory is still being embedded. Memory still swaps at
-- `complete`, in one transaction, as before.
--
-- Showing it early must not break the promise "a cancelled import leaves no trace": when
-- this import is cancelled, or fails, after its soulprint was shown, the person gets back
-- exactly the soulprint text they had before (kept in soulprints.replaced_soulprint_text at
-- the moment it was replaced). A retry of a failed import shows its soulprint again.
--
-- Parsing checkpoints the profile it builds in import_profile_states, in the same
-- transaction as each batch's rows, so a restart resumes the profile where the rows resume.
--
-- Functions replaced here (the lead checks these against other branches' pins):
--   import_next_stage, _cancel_import_job, advance_import_job, fail_import_job;
--   complete_import_job changes signature
--   (uuid, text, jsonb, text) -> (uuid, text). New: show_import_soulprint,
--   _show_import_soulprint, _restore_previous_soulprint.

-- ---------------------------------------------------------------------------------------
-- Columns and the profile checkpoint table
-- ---------------------------------------------------------------------------------------

-- When this import's soulprint became visible to the person (NULL: not shown, or taken back
-- by a cancel/failure). The app watches the job row, so this is how it learns "your
-- soulprint is ready" while `embedded_chunks` still climbs.
alter table public.import_jobs add column if not exists soulprint_at timestamptz;
-- The app shows "your soulprint is ready" from it; people read their job by column grants.
grant select (soulprint_at) on public.import_jobs to authenticated;

-- What user_profiles.soulprint_text said just before this import's soulprint replaced it
-- (NULL: there was none). Restored if the import never completes.
alter table public.soulprints add column if not exists replaced_soulprint_text text;

-- The profile under construction, one row per job, rewritten with every parsing batch.
-- Not in the Realtime publication and not readable by people: it is bounded but can be a
-- few hundred KB, and it is the worker's resume state, not something to show.
create table if not exists public.import_profile_states (
  job_id uuid primary key references public.import_jobs (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  state jsonb not null,
  updated_at timestamptz not null default now()
);

revoke all on public.import_profile_states from public, anon, authenticated;
alter table public.import_profile_states enable row level security;
grant all on public.import_profile_states to service_role;
grant select, insert, update, delete on public.import_profile_states to import_worker;

-- Like chunks: the worker writes the state of ACTIVE imports only.
drop policy if exists "worker keeps active profile states" on public.import_profile_states;
create policy "worker keeps active profile states" on public.import_profile_states
  for all to import_worker
  using (exists (select 1 from public.import_jobs j
                  where j.id = job_id and public.import_stage_is_active(j.stage)))
  with check (exists (select 1 from public.import_jobs j
                       where j.id = job_id and j.user_id = import_profile_states.user_id
                         and public.import_stage_is_active(j.stage)));

-- People may read the soulprint row they are being shown (their running import's, once
-- shown) as well as their current import's.
drop policy if exists "own shown soulprint" on public.soulprints;
create policy "own shown soulprint" on public.soulprints
  for select to authenticated
  using (user_id = (select auth.uid())
         and exists (select 1 from public.import_jobs j
                      where j.id = soulprints.job_id and j.soulprint_at is not null
                        and public.import_stage_is_active(j.stage)));

-- ---------------------------------------------------------------------------------------
-- The order
-- ---------------------------------------------------------------------------------------

-- The one place that says what follows what. `chunking` is never entered (parsing writes
-- chunks); it maps to where parsing goes, for a job a very old worker left there.
create or replace function public.import_next_stage(stage public.import_stage)
returns public.import_stage
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select case stage
    when 'queued' then 'downloading'
    when 'downloading' then 'parsing'
    when 'parsing' then 'generating_soulprint'
    when 'chunking' then 'generating_soulprint'
    when 'generating_soulprint' then 'embedding'
    when 'embedding' then 'complete'
  end::public.import_stage
$$;

-- ---------------------------------------------------------------------------------------
-- Showing and taking back a soulprint
-- ---------------------------------------------------------------------------------------

-- Put this job's soulprint in front of the person, remembering what it replaced. Internal:
-- callers hold the job row locked and have checked ownership.
create or replace function public._show_import_soulprint(job_id uuid)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  sp public.soulprints;
begin
  select * into j from public.import_jobs x where x.id = _show_import_soulprint.job_id;
  select * into sp from public.soulprints s where s.job_id = _show_import_soulprint.job_id;
  if sp.job_id is null then
    return;
  end if;
  update public.soulprints s
     set replaced_soulprint_text =
           (select p.soulprint_text from public.user_profiles p where p.user_id = j.user_id)
   where s.job_id = sp.job_id;
  insert into public.user_profiles (user_id, soulprint_text, updated_at)
  values (j.user_id, sp.soulprint_text, now())
  on conflict (user_id) do update
    set soulprint_text = excluded.soulprint_text, updated_at = now();
  update public.import_jobs x set soulprint_at = now() where x.id = j.id;
end
$$;

-- Take a shown soulprint back: the person's profile says again what it said before this
-- import. A job whose soulprint was never shown changes nothing.
create or replace function public._restore_previous_soulprint(job_id uuid)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
begin
  select * into j from public.import_jobs x where x.id = _restore_previous_soulprint.job_id;
  if j.soulprint_at is null then
    return;
  end if;
  update public.user_profiles p
     set soulprint_text = (select s.replaced_soulprint_text from public.soulprints s
                            where s.job_id = j.id),
         updated_at = now()
   where p.user_id = j.user_id;
  update public.import_jobs x set soulprint_at = null where x.id = j.id;
end
$$;

-- generating_soulprint -> embedding, with the soulprint shown, in one transaction. The
-- profile checkpoint has done its job and goes. NULL when not yours; 'cancelled' when a
-- cancel was pending (honoured here: nothing is shown).
create or replace function public.show_import_soulprint(
  job_id uuid, owner text, profile jsonb, soulprint_text text
) returns public.import_stage
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
begin
  select * into j from public.import_jobs x
   where x.id = show_import_soulprint.job_id
     and x.stage = 'generating_soulprint'
     and x.lease_owner = show_import_soulprint.owner
  for update;
  if not found then
    return null;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);
    return 'cancelled';
  end if;

  insert into public.soulprints (job_id, user_id, profile, soulprint_text)
  values (j.id, j.user_id, coalesce(show_import_soulprint.profile, '{}'),
          show_import_soulprint.soulprint_text)
  on conflict on constraint soulprints_pkey do update
    set profile = excluded.profile, soulprint_text = excluded.soulprint_text;
  perform public._show_import_soulprint(j.id);
  delete from public.import_profile_states s where s.job_id = j.id;

  update public.import_jobs x
     set stage = public.import_next_stage('generating_soulprint'),
         lease_owner = null,
         lease_expires_at = null,
         attempts = 0,
         checkpoint = '{}'
   where x.id = j.id;
  return public.import_next_stage('generating_soulprint');
end
$$;

-- ---------------------------------------------------------------------------------------
-- Transitions that now have a soulprint to take back
-- ---------------------------------------------------------------------------------------

-- Cancel now: this import's partial data deleted, the previous soulprint back, stage
-- `cancelled`. Internal; callers check ownership first.
create or replace function public._cancel_import_job(job_id uuid)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform 1 from public.import_jobs j
   where j.id = _cancel_import_job.job_id and public.import_stage_is_active(j.stage);
  if not found then
    return false;
  end if;
  -- Before the soulprints row (which holds the text to restore) is deleted.
  perform public._restore_previous_soulprint(_cancel_import_job.job_id);
  update public.import_jobs j
     set stage = 'cancelled',
         cancel_requested_at = coalesce(j.cancel_requested_at, now()),
         error_code = 'cancelled',
         error_message = 'The import was cancelled.'
   where j.id = _cancel_import_job.job_id;
  delete from public.memory_chunks c where c.job_id = _cancel_import_job.job_id;
  delete from public.import_conversations c where c.job_id = _cancel_import_job.job_id;
  delete from public.soulprints s where s.job_id = _cancel_import_job.job_id;
  delete from public.import_profile_states s where s.job_id = _cancel_import_job.job_id;
  return true;
end
$$;

-- Move on from `from_stage`, if the caller holds the lease. Frees the lease, resets
-- attempts and checkpoint; the stage trigger emits the next event. Returns the new stage,
-- 'cancelled' if a cancel was pending (honoured here), NULL when not yours. Two steps have
-- their own function because they publish something: generating_soulprint ->
-- show_import_soulprint, embedding -> complete_import_job.
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
  if next_stage is null or next_stage = 'complete' or from_stage = 'generating_soulprint' then
    raise exception 'advance_import_job: no plain advance from stage %', from_stage
      using hint = 'finish a soulprint with show_import_soulprint, an import with '
                   || 'complete_import_job';
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

-- Stop with an error a person understands. Keeps the checkpoint and data so a retry
-- resumes, but a shown soulprint is taken back: a failed import is not who they are yet.
create or replace function public.fail_import_job(
  job_id uuid, owner text, code text, message text
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  update public.import_jobs j
     set failed_stage = j.stage,
         stage = 'failed',
         error_code = fail_import_job.code,
         error_message = fail_import_job.message
   where j.id = fail_import_job.job_id
     and j.lease_owner = fail_import_job.owner
     and public.import_stage_is_active(j.stage);
  if not found then
    return null;
  end if;
  perform public._restore_previous_soulprint(fail_import_job.job_id);
  return true;
end
$$;

-- retry_import_job shows a retried import's soulprint again: it lives in
-- 20261130950000_retry_superseded_guard.sql, with the rule that refuses superseded imports.

-- Finish: in ONE transaction the person's profile switches to this import
-- (current_import_id, soulprint, counts, status), older imports' data is deleted, stage
-- complete. The soulprint row was written (and shown) when its stage ended; it is set again
-- here so the profile and the memory it describes always arrive together.
drop function if exists public.complete_import_job(uuid, text, jsonb, text);
create or replace function public.complete_import_job(job_id uuid, owner text)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  shown text;
begin
  select * into j from public.import_jobs x
   where x.id = complete_import_job.job_id
     and x.stage = 'embedding'
     and x.lease_owner = complete_import_job.owner
  for update;
  if not found then
    return false;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);  -- the person asked first
    return false;
  end if;
  select s.soulprint_text into shown from public.soulprints s where s.job_id = j.id;

  update public.import_jobs x
     set stage = 'complete', attempts = 0, checkpoint = '{}',
         soulprint_at = coalesce(x.soulprint_at, now())
   where x.id = j.id;

  insert into public.user_profiles (user_id, import_status, soulprint_text, total_conversations,
                                    current_import_id, updated_at)
  values (j.user_id, 'complete', shown, j.conversations, j.id, now())
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
  delete from public.import_profile_states s where s.user_id = j.user_id;
  return true;
end
$$;

-- The sweeper fails a stalled job through _retry_or_fail_import_job, which gives a shown
-- soulprint back like any other failure: 20261130700000_retry_policy.sql.

-- ---------------------------------------------------------------------------------------
-- Who may call what
-- ---------------------------------------------------------------------------------------

revoke all on function public.show_import_soulprint(uuid, text, jsonb, text),
  public._show_import_soulprint(uuid), public._restore_previous_soulprint(uuid),
  public.complete_import_job(uuid, text)
  from public, anon, authenticated;
grant execute on function public.show_import_soulprint(uuid, text, jsonb, text),
  public.complete_import_job(uuid, text)
  to import_worker, service_role;
