-- What the export itself says, beyond the conversations (issues 9 and 14).
--
-- 1. Three columns on the job row, so the app (Realtime) and `status` show them:
--    `excluded`: conversations the person marked "do not remember" in ChatGPT. They are
--      never imported (no rows, no chunks, nothing in the soulprint) and are not counted
--      in `conversations`; this counter says how many there were.
--    `export_truncated` / `export_warning`: the export broke off (a zip cut short, a JSON
--      file ending mid-way) and was imported up to the break; the warning is a sentence
--      naming the person's file and where it broke, never a worker path.
--    They are written by report_import_export_facts (below), in the parsing stage's batch
--    transaction, so they always match the committed batches. A separate function instead
--    of new keys for report_import_progress keeps that function as it is.
--
-- 2. public.import_person_notes: the person's custom instructions (their own description
--    of themselves, and how they want answers) and the notes ChatGPT saved to its memory
--    about them. Each text is kept once per import however many conversations repeat it,
--    with the first and last time it was seen. Like every data table: the person reads
--    the rows of their current import only; the worker writes rows of active imports only.

set search_path = public, extensions;

alter table public.import_jobs
  add column if not exists excluded bigint not null default 0,
  add column if not exists export_truncated boolean not null default false,
  add column if not exists export_warning text;

-- People read their job by column grants (lease and checkpoint stay hidden), so each new
-- column the app shows is granted by the migration that adds it.
grant select (excluded, export_truncated, export_warning) on public.import_jobs to authenticated;

create table if not exists public.import_person_notes (
  job_id uuid not null references public.import_jobs (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  -- about_user / about_model: custom instructions (the person's words);
  -- memory_note: a note ChatGPT saved about them (ChatGPT's words, not theirs).
  kind text not null check (kind in ('about_user', 'about_model', 'memory_note')),
  note text not null,
  -- Notes can be long; the key uses their hash (a btree entry must stay under ~2.7 kB).
  note_md5 text generated always as (md5(note)) stored,
  first_seen_at timestamptz,
  last_seen_at timestamptz,
  -- Where it was first seen: reading order is (conversation_index, ordinal).
  conversation_index int not null,
  ordinal int not null,
  primary key (job_id, kind, note_md5)
);
create index if not exists import_person_notes_user on public.import_person_notes (user_id);

-- ---------------------------------------------------------------------------------------
-- Who may see and write notes (same rules as import_conversations and memory_chunks)
-- ---------------------------------------------------------------------------------------

revoke all on public.import_person_notes from public, anon, authenticated;
alter table public.import_person_notes enable row level security;
grant all on public.import_person_notes to service_role;

grant select on public.import_person_notes to authenticated;
drop policy if exists "own current person notes" on public.import_person_notes;
create policy "own current person notes" on public.import_person_notes
  for select to authenticated
  using (user_id = (select auth.uid()) and job_id = (select public.current_import_id()));

grant select, insert, update, delete on public.import_person_notes to import_worker;
-- No read-everything policy for the worker (security review finding 1): the `for all`
-- policy below already lets it read the notes of imports in progress, which is all the
-- stages need; finished people's notes stay out of its reach (seed pitfall 3).
drop policy if exists "worker reads person notes" on public.import_person_notes;
drop policy if exists "worker writes active person notes" on public.import_person_notes;
create policy "worker writes active person notes" on public.import_person_notes
  for all to import_worker
  using (exists (select 1 from public.import_jobs j
                  where j.id = job_id and public.import_stage_is_active(j.stage)))
  with check (exists (select 1 from public.import_jobs j
                       where j.id = job_id and j.user_id = import_person_notes.user_id
                         and public.import_stage_is_active(j.stage)));

-- ---------------------------------------------------------------------------------------
-- Notes follow their import's life: a completed import replaces the person's older notes
-- (as complete_import_job does for chunks and conversations), a cancelled one leaves none.
-- A trigger on the stage keeps this without redefining those functions.
-- ---------------------------------------------------------------------------------------

create or replace function public._import_person_notes_follow_stage()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.stage = 'complete' then
    delete from public.import_person_notes n
     where n.user_id = new.user_id and n.job_id <> new.id;
  elsif new.stage = 'cancelled' then
    delete from public.import_person_notes n where n.job_id = new.id;
  end if;
  return null;
end
$$;

drop trigger if exists import_person_notes_follow_stage on public.import_jobs;
create trigger import_person_notes_follow_stage
  after update of stage on public.import_jobs
  for each row
  when (new.stage is distinct from old.stage and new.stage in ('complete', 'cancelled'))
  execute function public._import_person_notes_follow_stage();

-- ---------------------------------------------------------------------------------------
-- The worker records the export facts of the batch it is committing, if it holds the lease.
-- Values are absolute (never deltas), so a repeated batch is harmless.
-- ---------------------------------------------------------------------------------------

create or replace function public.report_import_export_facts(
  job_id uuid, owner text, excluded bigint, truncated boolean, warning text
) returns boolean
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update public.import_jobs j
     set excluded = report_import_export_facts.excluded,
         export_truncated = report_import_export_facts.truncated,
         export_warning = report_import_export_facts.warning
   where j.id = report_import_export_facts.job_id
     and j.lease_owner = report_import_export_facts.owner
     and public.import_stage_is_active(j.stage)
  returning true
$$;

-- Supabase grants new public functions to anon and authenticated by default: undo that.
revoke all on function public.report_import_export_facts(uuid, text, bigint, boolean, text),
  public._import_person_notes_follow_stage()
  from public, anon, authenticated;
grant execute on function public.report_import_export_facts(uuid, text, bigint, boolean, text)
  to import_worker, service_role;
