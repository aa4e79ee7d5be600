-- Import pipeline, part 3: who may do what.
--
-- People (role `authenticated`, identified by auth.uid()):
--   read their own jobs (all of them, live, through Realtime), and the conversations, chunks
--   and soulprint of their CURRENT import only (user_profiles.current_import_id): an import in
--   progress stays invisible until complete_import_job swaps it in, so nobody sees half old,
--   half new data; request a cancel of their own active job through request_import_cancel;
--   upload to and read from their own folder of the `imports` bucket. Nothing else.
-- `anon`: nothing.
-- The worker (`import_worker`, pitfall 3: never service_role): read jobs and call the
--   transition functions; write data rows of ACTIVE imports only; read/ack the outbox, log
--   deliveries and receipts; read objects of bucket `imports` only. No auth.users.
--
-- Supabase grants anon/authenticated everything on new public objects by default, so every
-- table and function here starts from an explicit revoke.

-- ---------------------------------------------------------------------------------------
-- Tables: revoke the defaults, enable RLS everywhere
-- ---------------------------------------------------------------------------------------

revoke all on public.import_jobs, public.import_events, public.event_deliveries,
  public.webhook_receipts, public.import_conversations, public.memory_chunks,
  public.soulprints
  from public, anon, authenticated;
revoke all on sequence public.event_deliveries_id_seq from public, anon, authenticated;

alter table public.import_jobs enable row level security;
alter table public.import_events enable row level security;
alter table public.event_deliveries enable row level security;
alter table public.webhook_receipts enable row level security;
alter table public.import_conversations enable row level security;
alter table public.memory_chunks enable row level security;
alter table public.soulprints enable row level security;
alter table public.user_profiles enable row level security;

-- service_role (bypassrls) keeps full access, as everywhere on Supabase.
grant all on public.import_jobs, public.import_events, public.event_deliveries,
  public.webhook_receipts, public.import_conversations, public.memory_chunks,
  public.soulprints, public.user_profiles
  to service_role;

-- ---------------------------------------------------------------------------------------
-- People
-- ---------------------------------------------------------------------------------------

-- The current import of the signed-in person; SECURITY DEFINER so data-table policies do
-- not depend on the app's own user_profiles policies.
create or replace function public.current_import_id()
returns uuid
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select p.current_import_id from public.user_profiles p where p.user_id = auth.uid()
$$;

grant select on public.import_jobs, public.import_conversations, public.memory_chunks,
  public.soulprints
  to authenticated;

drop policy if exists "own jobs" on public.import_jobs;
create policy "own jobs" on public.import_jobs
  for select to authenticated
  using (user_id = (select auth.uid()));

drop policy if exists "own current conversations" on public.import_conversations;
create policy "own current conversations" on public.import_conversations
  for select to authenticated
  using (user_id = (select auth.uid()) and job_id = (select public.current_import_id()));

drop policy if exists "own current chunks" on public.memory_chunks;
create policy "own current chunks" on public.memory_chunks
  for select to authenticated
  using (user_id = (select auth.uid()) and job_id = (select public.current_import_id()));

drop policy if exists "own current soulprint" on public.soulprints;
create policy "own current soulprint" on public.soulprints
  for select to authenticated
  using (user_id = (select auth.uid()) and job_id = (select public.current_import_id()));

-- user_profiles may belong to the app with its own policies; ours only adds reading one's
-- own row. The import columns are written by the pipeline's functions alone.
revoke insert, update, delete on public.user_profiles from anon;
revoke select on public.user_profiles from anon;
drop policy if exists "own profile (import)" on public.user_profiles;
create policy "own profile (import)" on public.user_profiles
  for select to authenticated
  using (user_id = (select auth.uid()));
grant select on public.user_profiles to authenticated;

-- The app may let people edit their profile row; the import columns stay the pipeline's.
-- A column revoke would not beat a table-level grant, hence a guard trigger. Inside the
-- pipeline's SECURITY DEFINER functions current_user is the owner, so they pass.
create or replace function public._user_profiles_guard_import_columns()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if current_user in ('anon', 'authenticated') then
    if tg_op = 'INSERT' then
      new.import_status := null;
      new.soulprint_text := null;
      new.total_conversations := null;
      new.current_import_id := null;
    elsif (new.import_status, new.soulprint_text, new.total_conversations, new.current_import_id)
          is distinct from
          (old.import_status, old.soulprint_text, old.total_conversations, old.current_import_id)
    then
      raise exception 'import fields of user_profiles are written by the import pipeline only'
        using errcode = 'insufficient_privilege';
    end if;
  end if;
  return new;
end
$$;

drop trigger if exists user_profiles_guard_import_columns on public.user_profiles;
create trigger user_profiles_guard_import_columns
  before insert or update on public.user_profiles
  for each row execute function public._user_profiles_guard_import_columns();

-- ---------------------------------------------------------------------------------------
-- The worker
-- ---------------------------------------------------------------------------------------

grant usage on schema public to import_worker;
-- pgvector's type and operators, wherever the extension lives.
do $$
declare
  s text := (select extnamespace::regnamespace::text from pg_extension where extname = 'vector');
begin
  execute format('grant usage on schema %I to import_worker', s);
end
$$;

grant select on public.import_jobs to import_worker;
drop policy if exists "worker reads jobs" on public.import_jobs;
create policy "worker reads jobs" on public.import_jobs
  for select to import_worker using (true);

-- Data rows: any import's rows readable; written only while that import is active, so a
-- worker can never rewrite a finished import (the swap and the cleanup are the definer
-- functions' job).
grant select, insert, update, delete on public.import_conversations, public.memory_chunks
  to import_worker;
grant select on public.soulprints to import_worker;

drop policy if exists "worker reads conversations" on public.import_conversations;
create policy "worker reads conversations" on public.import_conversations
  for select to import_worker using (true);
drop policy if exists "worker writes active conversations" on public.import_conversations;
create policy "worker writes active conversations" on public.import_conversations
  for all to import_worker
  using (exists (select 1 from public.import_jobs j
                  where j.id = job_id and public.import_stage_is_active(j.stage)))
  with check (exists (select 1 from public.import_jobs j
                       where j.id = job_id and j.user_id = import_conversations.user_id
                         and public.import_stage_is_active(j.stage)));

drop policy if exists "worker reads chunks" on public.memory_chunks;
create policy "worker reads chunks" on public.memory_chunks
  for select to import_worker using (true);
drop policy if exists "worker writes active chunks" on public.memory_chunks;
create policy "worker writes active chunks" on public.memory_chunks
  for all to import_worker
  using (exists (select 1 from public.import_jobs j
                  where j.id = job_id and public.import_stage_is_active(j.stage)))
  with check (exists (select 1 from public.import_jobs j
                       where j.id = job_id and j.user_id = memory_chunks.user_id
                         and public.import_stage_is_active(j.stage)));

drop policy if exists "worker reads soulprints" on public.soulprints;
create policy "worker reads soulprints" on public.soulprints
  for select to import_worker using (true);

-- The outbox: read, acknowledge, schedule retries; never insert (the database does that).
grant select, update (acknowledged_at, attempts, next_attempt_at, last_error)
  on public.import_events to import_worker;
drop policy if exists "worker relays events" on public.import_events;
create policy "worker relays events" on public.import_events
  for all to import_worker using (true) with check (true);

grant select, insert on public.event_deliveries to import_worker;
grant usage on sequence public.event_deliveries_id_seq to import_worker;
drop policy if exists "worker logs deliveries" on public.event_deliveries;
create policy "worker logs deliveries" on public.event_deliveries
  for all to import_worker using (true) with check (true);

grant select, insert on public.webhook_receipts to import_worker;
drop policy if exists "worker dedupes receipts" on public.webhook_receipts;
create policy "worker dedupes receipts" on public.webhook_receipts
  for all to import_worker using (true) with check (true);

-- ---------------------------------------------------------------------------------------
-- Functions: nobody by default, then exactly who needs each
-- ---------------------------------------------------------------------------------------

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
     where p.pronamespace = 'public'::regnamespace
       and p.proname in (
         'import_next_stage', 'import_stage_is_active', 'import_status_for', '_import_counter',
         '_post_import_event_via_pg_net', 'emit_import_event', 'ack_import_event',
         '_import_jobs_before', '_import_jobs_stage_changed', '_import_job_from_upload',
         'claim_import_job', 'report_import_progress', '_cancel_import_job',
         'advance_import_job', 'fail_import_job', 'release_import_job', 'finish_import_cancel',
         'request_import_cancel', 'retry_import_job', 'complete_import_job',
         'sweep_import_jobs', 'current_import_id', '_user_profiles_guard_import_columns')
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
  end loop;
end
$$;

-- Pure helpers anyone may call (policies and clients use them).
grant execute on function public.import_next_stage(public.import_stage),
  public.import_stage_is_active(public.import_stage),
  public.import_status_for(public.import_stage)
  to anon, authenticated, import_worker, service_role;

-- The app: cancel one's own import; policies: the current import.
grant execute on function public.request_import_cancel(uuid),
  public.current_import_id()
  to authenticated, service_role;

-- The worker's API. request/retry are operator actions of the CLI, which on a deployment
-- has only the worker's credentials.
grant execute on function
  public.claim_import_job(uuid, public.import_stage, text, int),
  public.report_import_progress(uuid, text, jsonb, jsonb, int),
  public.advance_import_job(uuid, text, public.import_stage, jsonb),
  public.fail_import_job(uuid, text, text, text),
  public.release_import_job(uuid, text),
  public.finish_import_cancel(uuid, text),
  public.complete_import_job(uuid, text, jsonb, text),
  public.request_import_cancel(uuid),
  public.retry_import_job(uuid),
  public.sweep_import_jobs(interval, int),
  public.emit_import_event(uuid, text),
  public.ack_import_event(uuid)
  to import_worker, service_role;

-- ---------------------------------------------------------------------------------------
-- Storage: bucket `imports`
-- ---------------------------------------------------------------------------------------

-- The Storage policies (people's own folder; the worker reads this bucket only) are made
-- by 20261130200000_storage_hosted.sql: on hosted projects the migrating role does not own
-- storage.objects, and CREATE POLICY there must not abort the push.

-- The worker reads exports, in this bucket only.
grant usage on schema storage to import_worker;
grant select on storage.objects, storage.buckets to import_worker;

-- Storage and PostgREST log in as `authenticator` and switch to the JWT's role: this lets a
-- JWT with role import_worker (SUPABASE_WORKER_JWT) act as the worker, and nothing more.
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'authenticator') then
    grant import_worker to authenticator;
  end if;
end
$$;
