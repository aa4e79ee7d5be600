-- How many custom-instruction texts and memory notes an import holds, for `run` / `status`.
--
-- The worker role reads people's notes only while their import is active (a finished
-- import's notes are the person's, security review finding 1), yet the CLI reports the
-- counts of finished imports too, to agree with `parse`. A definer function answers with
-- the two numbers and nothing of the text.

create or replace function public.import_note_counts(p_job_id uuid)
returns table (custom_instructions bigint, memory_notes bigint)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select count(*) filter (where n.kind in ('about_user', 'about_model')),
         count(*) filter (where n.kind = 'memory_note')
    from public.import_person_notes n
   where n.job_id = p_job_id
$$;

revoke all on function public.import_note_counts(uuid) from public, anon, authenticated,
  service_role;
grant execute on function public.import_note_counts(uuid) to import_worker;
