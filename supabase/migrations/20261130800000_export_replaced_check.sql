-- Whether a job's uploaded object has been replaced at its path since the job began.
--
-- After a successful import the worker deletes the raw export from Storage (issue 8 F7),
-- unless the person has meanwhile uploaded a newer file at the same path (an upsert): that
-- file belongs to the next import. The worker's database role has no access to
-- storage.objects (its Storage identity is import_storage_reader, through the API), so it
-- asks this one question through a definer function that answers only about its own job.

create or replace function public.import_export_replaced(p_job_id uuid)
returns boolean
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select coalesce((
    select o.version is distinct from j.object_version
      from public.import_jobs j
      join storage.objects o on o.bucket_id = j.bucket_id and o.name = j.object_name
     where j.id = p_job_id
     order by o.created_at desc
     limit 1
  ), false)
$$;

-- Supabase's default privileges grant every new public function to anon, authenticated
-- and service_role directly (not through PUBLIC; bootstrap.sql mirrors them): revoking
-- from PUBLIC alone would leave it callable by anyone with the anon key.
revoke execute on function public.import_export_replaced(uuid)
  from public, anon, authenticated, service_role;
grant execute on function public.import_export_replaced(uuid) to import_worker;
