-- Quiet Realtime (issue 15, item 5): the app follows a narrow, throttled copy of its job,
-- public.import_progress, instead of import_jobs itself.
--
-- import_jobs was published whole. Every claim, lease renewal and checkpoint is an UPDATE
-- of that row, and Supabase Realtime streams every UPDATE of a published table: it reads the
-- slot with wal2json (realtime.list_changes, 'add-tables' = the publication's tables), which
-- ignores publication column lists, and dropping the columns a subscriber may not select
-- trims the payload, not the message. One import made 44 row updates in 30 s, 96 in one
-- second under load, most of them invisible to the person.
--
-- So the published row holds only what a person is shown (stage, counters, timings,
-- errors), not lease_owner, lease_expires_at, attempts, checkpoint or retry_at, and it is
-- written in ONE place, the trigger below, which is also the throttle: a stage change is
-- published at once; anything else at most once a second per job, and only when something
-- a person sees has changed. A change held back by the throttle is published by the job's
-- next write (the lease keeper renews every LEASE_SECONDS / 3) or its next stage change,
-- which carries the final counters. The state machine is untouched: it still writes
-- import_jobs only.
--
-- Added: table public.import_progress (RLS: own rows; SELECT for authenticated),
--   function public._import_progress_publish() and its trigger on import_jobs.
-- Publication supabase_realtime (where it exists): + import_progress, - import_jobs.

create table if not exists public.import_progress (
  job_id uuid primary key references public.import_jobs (id) on delete cascade,
  user_id uuid not null,
  stage public.import_stage not null,
  created_at timestamptz,
  stage_changed_at timestamptz,
  stage_timings jsonb,
  file_size bigint,
  bytes_total bigint,
  bytes_done bigint,
  conversations bigint,
  skipped_conversations bigint,
  messages bigint,
  user_messages bigint,
  assistant_messages bigint,
  chunks bigint,
  embedded_chunks bigint,
  excluded bigint,
  export_truncated boolean,
  export_warning text,
  error_code text,
  error_message text,
  failed_stage public.import_stage,
  cancel_requested_at timestamptz,
  completed_at timestamptz,
  soulprint_at timestamptz,
  -- When this row was last published (the throttle's clock), not when the job last changed.
  updated_at timestamptz not null default now()
);

comment on table public.import_progress is
  'What the app shows of an import, live through Realtime: a throttled copy of the '
  'person-facing columns of import_jobs, written only by _import_progress_publish().';

create index if not exists import_progress_user_idx on public.import_progress (user_id);

-- ---------------------------------------------------------------------------------------
-- The one writer, and the throttle
-- ---------------------------------------------------------------------------------------

-- SECURITY DEFINER: people and the worker may not write import_progress; the job's
-- writers (the state machine's definer functions, service_role) reach it only through here.
create or replace function public._import_progress_publish()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into public.import_progress as p (
    job_id, user_id, stage, created_at, stage_changed_at, stage_timings, file_size,
    bytes_total, bytes_done, conversations, skipped_conversations, messages, user_messages,
    assistant_messages, chunks, embedded_chunks, excluded, export_truncated, export_warning,
    error_code, error_message, failed_stage, cancel_requested_at, completed_at, soulprint_at,
    updated_at)
  values (
    new.id, new.user_id, new.stage, new.created_at, new.stage_changed_at, new.stage_timings,
    new.file_size, new.bytes_total, new.bytes_done, new.conversations,
    new.skipped_conversations, new.messages, new.user_messages, new.assistant_messages,
    new.chunks, new.embedded_chunks, new.excluded, new.export_truncated, new.export_warning,
    new.error_code, new.error_message, new.failed_stage, new.cancel_requested_at,
    new.completed_at, new.soulprint_at,
    clock_timestamp())
  on conflict (job_id) do update
    set (user_id, stage, created_at, stage_changed_at, stage_timings, file_size,
         bytes_total, bytes_done, conversations, skipped_conversations, messages,
         user_messages, assistant_messages, chunks, embedded_chunks, excluded,
         export_truncated, export_warning, error_code, error_message, failed_stage,
         cancel_requested_at, completed_at, soulprint_at, updated_at)
      = (excluded.user_id, excluded.stage, excluded.created_at, excluded.stage_changed_at,
         excluded.stage_timings, excluded.file_size, excluded.bytes_total,
         excluded.bytes_done, excluded.conversations, excluded.skipped_conversations,
         excluded.messages, excluded.user_messages, excluded.assistant_messages,
         excluded.chunks, excluded.embedded_chunks, excluded.excluded,
         excluded.export_truncated, excluded.export_warning, excluded.error_code,
         excluded.error_message, excluded.failed_stage, excluded.cancel_requested_at,
         excluded.completed_at, excluded.soulprint_at, excluded.updated_at)
    -- A stage change always; otherwise a visible change, a second after the last one.
    where p.stage is distinct from excluded.stage
       or (p.updated_at <= clock_timestamp() - interval '1 second'
           -- (.*: import_jobs has a column named `excluded` too)
           and (to_jsonb(p.*) - 'updated_at')
               is distinct from (to_jsonb(excluded.*) - 'updated_at'));
  return null;
end
$$;

drop trigger if exists import_progress_publish on public.import_jobs;
create trigger import_progress_publish
  after insert or update on public.import_jobs
  for each row execute function public._import_progress_publish();

-- Jobs that exist already get their row now (their next write keeps it current).
insert into public.import_progress (
  job_id, user_id, stage, created_at, stage_changed_at, stage_timings, file_size,
  bytes_total, bytes_done, conversations, skipped_conversations, messages, user_messages,
  assistant_messages, chunks, embedded_chunks, excluded, export_truncated, export_warning,
  error_code, error_message, failed_stage, cancel_requested_at, completed_at, soulprint_at)
select id, user_id, stage, created_at, stage_changed_at, stage_timings, file_size,
       bytes_total, bytes_done, conversations, skipped_conversations, messages, user_messages,
       assistant_messages, chunks, embedded_chunks, excluded, export_truncated, export_warning,
       error_code, error_message, failed_stage, cancel_requested_at, completed_at, soulprint_at
  from public.import_jobs
on conflict (job_id) do nothing;

-- ---------------------------------------------------------------------------------------
-- Who may read it: the person whose import it is (and service_role)
-- ---------------------------------------------------------------------------------------

alter table public.import_progress enable row level security;
revoke all on public.import_progress from public, anon, authenticated;
grant select on public.import_progress to authenticated;
grant all on public.import_progress to service_role;

drop policy if exists "own progress" on public.import_progress;
create policy "own progress" on public.import_progress
  for select to authenticated
  using (user_id = (select auth.uid()));

revoke all on function public._import_progress_publish() from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------
-- Realtime publishes the progress row, no longer the job row
-- ---------------------------------------------------------------------------------------

do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    if not exists (
      select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public'
         and tablename = 'import_progress') then
      alter publication supabase_realtime add table public.import_progress;
    end if;
    if exists (
      select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public'
         and tablename = 'import_jobs') then
      alter publication supabase_realtime drop table public.import_jobs;
    end if;
  end if;
end
$$;
