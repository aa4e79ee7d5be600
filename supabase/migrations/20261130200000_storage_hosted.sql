-- Import pipeline: the Storage side as hosted Supabase has it today.
--
-- Why this file exists:
-- * Ownership. On current projects storage.objects and storage.buckets belong to
--   supabase_storage_admin; the migrating role (`postgres`) only has table privileges
--   (Storage's own migration 0049 grants it ALL ... WITH GRANT OPTION). CREATE TRIGGER needs
--   only the TRIGGER privilege, but CREATE/DROP POLICY and DROP TRIGGER need ownership. Every
--   statement below that needs ownership is tried in its own sub-block: where the migrating
--   role may not run it, a NOTICE prints the exact SQL and where to run it, and the rest of
--   the push goes on. Nothing here drops a trigger on storage.objects.
-- * Object versioning. Storage now has storage.objects.archived_at, is_delete_marker and
--   is_versioned, and storage.buckets.versioning_status (Storage migration 0062). A delete on
--   a versioned bucket inserts a delete-marker row and an overwrite can archive the old row:
--   neither is an upload. The trigger reads those columns through to_jsonb(new), so the same
--   function works on projects that do not have them yet.
-- * Security (issue 8): a path that climbs out of the person's folder (F2) or an object
--   whose uploader is not the folder's person (F4) becomes a `rejected` job, never an import;
--   people may delete their own exports and the worker may delete an imported export (F7);
--   rejected jobs are capped per person and hour (F8).
-- * Delivery: pg_net is enabled where the server offers it (hosted Supabase does).

-- ---------------------------------------------------------------------------------------
-- Object names
-- ---------------------------------------------------------------------------------------

-- True when an object path is plain: no empty, `.` or `..` segment, no backslash. Storage
-- does not normalise names, but anything that turns a name into a file path (the local
-- bucket, a proxy, a CDN) may; `{own id}/../{other id}/x.zip` must never reach one.
-- Used by the Storage policies (as the caller) and by the upload trigger.
create or replace function public.imports_object_name_is_safe(name text)
returns boolean
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select name is not null
     and pg_catalog.strpos(name, E'\\') = 0
     and not exists (
       select 1 from pg_catalog.unnest(pg_catalog.string_to_array(name, '/')) as s(segment)
        where s.segment in ('', '.', '..'))
$$;

revoke all on function public.imports_object_name_is_safe(text) from public;
grant execute on function public.imports_object_name_is_safe(text)
  to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- The upload trigger's function
-- ---------------------------------------------------------------------------------------

-- storage.objects row -> import job. Same contract as before (a queued job, or a `rejected`
-- one saying why), plus:
--   * delete markers and archived versions start nothing (versioned buckets);
--   * a name that is not plain (see above) -> rejected, 'invalid_object_name';
--   * an object whose owner_id (or the deprecated owner) is not the folder's person ->
--     rejected, 'not_uploaded_by_owner': with any permissive INSERT policy an app adds, a
--     person could otherwise upload into someone else's folder and replace their memory;
--   * at most 20 jobs of any kind per person per hour, and at most 10 of them rejected:
--     past that an upload gets no job and no event, so a loop of uploads cannot flood the
--     outbox (or the person's job list). Counting every job, not only rejected ones, is
--     what stops upload -> cancel -> upload (security review finding 5): cancelling frees
--     the one-active-import slot, so each round would otherwise queue a whole new import.
create or replace function public._import_job_from_upload()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  max_jobs_per_hour constant int := 20;
  max_rejected_per_hour constant int := 10;
  obj jsonb := pg_catalog.to_jsonb(new);
  parts text[] := pg_catalog.string_to_array(new.name, '/');
  uploader text := coalesce(obj ->> 'owner_id', obj ->> 'owner');
  person uuid;
  size bigint;
  job_id uuid;
  code text;
  message text;
begin
  -- Versioned buckets: not an upload. (The columns are absent on older Storage schemas:
  -- ->> gives NULL then.)
  if coalesce((obj ->> 'is_delete_marker')::boolean, false)
     or obj ->> 'archived_at' is not null then
    return null;
  end if;

  -- Only {user_id}/... paths of real users start an import; a stray service upload
  -- elsewhere is ignored rather than failing the upload.
  if coalesce(pg_catalog.array_length(parts, 1), 0) < 2
     or parts[1] !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return null;
  end if;
  person := parts[1]::uuid;
  if not exists (select 1 from auth.users u where u.id = person) then
    return null;
  end if;
  size := nullif(new.metadata ->> 'size', '')::bigint;

  -- Count and insert under one per-person lock, so concurrent uploads cannot all see
  -- "under the cap" (a transaction-scoped lock: it ends with the upload's transaction).
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('soulprint.rejected.' || person::text, 0));
  if (select pg_catalog.count(*) from public.import_jobs j
       where j.user_id = person
         and j.created_at > pg_catalog.now() - interval '1 hour') >= max_jobs_per_hour then
    return null;
  end if;

  if not public.imports_object_name_is_safe(new.name) then
    code := 'invalid_object_name';
    message := 'The file name is not valid: upload the export as <your id>/<file name>, '
               || 'without "." or ".." folders, empty folders or backslashes.';
  elsif uploader is null or pg_catalog.lower(uploader) <> person::text then
    code := 'not_uploaded_by_owner';
    message := 'A file was put in your import folder by someone else, so it was not '
               || 'imported. Upload your export yourself to import it.';
  else
    insert into public.import_jobs (user_id, bucket_id, object_name, object_version,
                                    object_id, file_size, bytes_total)
    values (person, new.bucket_id, new.name, new.version, new.id, size, coalesce(size, 0))
    on conflict (user_id)
      where stage in ('queued', 'downloading', 'parsing', 'chunking', 'embedding',
                      'generating_soulprint')
      do nothing
    returning id into job_id;
    if job_id is not null then
      return null;
    end if;
    code := 'import_already_running';
    message := 'An import is already running for your account. Wait for it to finish '
               || '(or cancel it), then upload again.';
  end if;

  -- (Still under the lock taken above.)
  if (select pg_catalog.count(*) from public.import_jobs j
       where j.user_id = person and j.stage = 'rejected'
         and j.created_at > pg_catalog.now() - interval '1 hour') >= max_rejected_per_hour then
    return null;
  end if;

  insert into public.import_jobs (user_id, bucket_id, object_name, object_version, object_id,
                                  file_size, bytes_total, stage, error_code, error_message)
  values (person, new.bucket_id, new.name, new.version, new.id, size, coalesce(size, 0),
          'rejected', code, message);
  return null;
end
$$;

revoke all on function public._import_job_from_upload() from public, anon, authenticated;

-- The rejected-jobs cap counts a person's recent rejected jobs.
create index if not exists import_jobs_user_rejected_recent
  on public.import_jobs (user_id, created_at)
  where stage = 'rejected';

-- ---------------------------------------------------------------------------------------
-- The upload triggers, without ever dropping them
-- ---------------------------------------------------------------------------------------

-- CREATE [OR REPLACE] TRIGGER needs only the TRIGGER privilege, which `postgres` has on
-- hosted projects; DROP TRIGGER would need ownership. Before PostgreSQL 14 there is no OR
-- REPLACE: create only what is missing. The WHEN clauses use columns every Storage schema
-- has; versioning is handled inside the function.
do $$
declare
  t record;
begin
  for t in
    select * from (values
      ('import_job_on_upload',
       'after insert on storage.objects for each row when (new.bucket_id = ''imports'')'),
      ('import_job_on_reupload',
       'after update on storage.objects for each row when (new.bucket_id = ''imports'' '
       || 'and new.version is distinct from old.version)')
    ) as v(name, spec)
  loop
    begin
      if current_setting('server_version_num')::int >= 140000 then
        execute format('create or replace trigger %I %s execute function '
                       'public._import_job_from_upload()', t.name, t.spec);
      elsif not exists (select 1 from pg_trigger
                         where tgrelid = 'storage.objects'::regclass and tgname = t.name) then
        execute format('create trigger %I %s execute function public._import_job_from_upload()',
                       t.name, t.spec);
      end if;
    exception when insufficient_privilege then
      raise notice using message = format(
        'soulprint-import: could not create trigger %s on storage.objects (%s). Uploads will '
        'not start imports until it exists. Run as the owner of storage.objects '
        '(or ask Supabase support): create or replace trigger %I %s execute function '
        'public._import_job_from_upload();', t.name, sqlerrm, t.name, t.spec);
    end;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------
-- The bucket: private, versioning off
-- ---------------------------------------------------------------------------------------

-- On a versioned bucket an overwrite keeps the old export around and a delete only hides
-- it: people could not really delete their history. Keep `imports` unversioned (doctor
-- reports it if someone turns versioning on).
do $$
begin
  if exists (select 1 from pg_attribute
              where attrelid = 'storage.buckets'::regclass
                and attname = 'versioning_status' and not attisdropped) then
    execute $q$update storage.buckets set versioning_status = 'DISABLED'
               where id = 'imports' and versioning_status <> 'DISABLED'$q$;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Which exports the worker may delete
-- ---------------------------------------------------------------------------------------

-- True when (bucket, name, version) is exactly the object a *complete* import read. The
-- worker's delete policy asks this for the row Storage is about to delete, so the check
-- and the delete are one statement (security review findings 3 and 8): a leaked worker JWT
-- cannot delete a pending import's export or anyone's other files, and an upload that
-- replaced the export at the same path (a new version) is refused by Storage itself, with
-- no window between "is it still ours?" and "delete it". Definer: the Storage role has no
-- access to import_jobs; it learns this one yes/no and nothing else.
create or replace function public.imports_export_is_imported(
  p_bucket_id text, p_name text, p_version text
) returns boolean
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select 1 from public.import_jobs j
     where j.bucket_id = p_bucket_id
       and j.object_name = p_name
       and j.object_version = p_version
       and j.stage = 'complete')
$$;

-- The policy asks it for each row a delete names: find complete jobs by path directly.
create index if not exists import_jobs_complete_object
  on public.import_jobs (object_name)
  where stage = 'complete';

-- Only the Storage role's policy calls it (not even PUBLIC, nor Supabase's default grants
-- to anon, authenticated and service_role).
revoke all on function public.imports_export_is_imported(text, text, text)
  from public, anon, authenticated, service_role;
do $$
begin
  execute format('grant execute on function public.imports_export_is_imported(text, text, '
                 'text) to %I',
                 case when exists (select 1 from pg_roles
                                    where rolname = 'import_storage_reader')
                      then 'import_storage_reader' else 'import_worker' end);
end
$$;

-- ---------------------------------------------------------------------------------------
-- Storage policies on bucket `imports`
-- ---------------------------------------------------------------------------------------

-- The Storage role the worker's JWT carries: `import_storage_reader` where the roles
-- migration made one, else the worker role itself. It may read (download) and, after a
-- successful import, delete exports in this bucket, and nothing else in Storage.
do $$
declare
  storage_role text := case when exists (select 1 from pg_roles
                                          where rolname = 'import_storage_reader')
                            then 'import_storage_reader' else 'import_worker' end;
  own_folder constant text :=
    'bucket_id = ''imports'' and (storage.foldername(name))[1] = (select auth.uid())::text';
  safe_name constant text := 'public.imports_object_name_is_safe(name)';
  p record;
  ddl text;
begin
  -- Deleting goes through the Storage API, which deletes the row as the caller's role.
  begin
    execute format('grant select, delete on storage.objects to %I', storage_role);
    execute format('grant select on storage.buckets to %I', storage_role);
  exception when insufficient_privilege then
    raise notice using message = format(
      'soulprint-import: could not grant %s access to storage.objects (%s). Run as the owner '
      'of storage.objects: grant select, delete on storage.objects to %I; '
      'grant select on storage.buckets to %I;', storage_role, sqlerrm, storage_role,
      storage_role);
  end;

  for p in
    select * from (values
      -- People: their own folder, plain names only.
      ('imports: upload to own folder', 'objects',
       'as permissive for insert to authenticated with check (' || own_folder || ' and '
       || safe_name || ')'),
      ('imports: read own folder', 'objects',
       'as permissive for select to authenticated using (' || own_folder || ')'),
      -- An upsert over the same path is an UPDATE (and starts a new import).
      ('imports: replace in own folder', 'objects',
       'as permissive for update to authenticated using (' || own_folder || ') with check ('
       || own_folder || ' and ' || safe_name || ')'),
      -- People may delete their own raw export whenever they like.
      ('imports: delete own exports', 'objects',
       'as permissive for delete to authenticated using (' || own_folder || ')'),
      -- Whatever permissive policies an app adds on storage.objects (a tutorial's "any
      -- signed-in user may upload"), nobody writes or reads in `imports` outside their own
      -- folder or with a name that is not plain.
      ('imports: own folder only', 'objects',
       'as restrictive for all to anon, authenticated using (bucket_id <> ''imports'' or ('
       || own_folder || ')) with check (bucket_id <> ''imports'' or (' || own_folder
       || ' and ' || safe_name || '))'),
      -- The worker: read exports, and delete one once it is imported (that very version,
      -- of a complete import: see imports_export_is_imported above).
      ('imports: worker reads', 'objects',
       format('as permissive for select to %I using (bucket_id = ''imports'')', storage_role)),
      ('imports: worker deletes imported exports', 'objects',
       format('as permissive for delete to %I using (bucket_id = ''imports'' and '
              'public.imports_export_is_imported(bucket_id, name, version))', storage_role)),
      ('imports: worker sees its bucket', 'buckets',
       format('as permissive for select to %I using (id = ''imports'')', storage_role))
    ) as v(name, tbl, spec)
  loop
    ddl := format('create policy %I on storage.%I %s', p.name, p.tbl, p.spec);
    begin
      -- Replace, so a changed definition reaches projects that have the old one.
      execute format('drop policy if exists %I on storage.%I', p.name, p.tbl);
      execute ddl;
    exception when insufficient_privilege then
      raise notice using message = format(
        'soulprint-import: could not create Storage policy "%s" (%s): the migrating role '
        'does not own storage.%s. Create it in the dashboard (Storage > Policies > bucket '
        'imports > New policy > For full customization, same name and expression) or run as '
        'the table owner: drop policy if exists %I on storage.%I; %s;',
        p.name, sqlerrm, p.tbl, p.name, p.tbl, ddl);
    end;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------
-- pg_net: hosted delivery straight from the database
-- ---------------------------------------------------------------------------------------

-- Without pg_net every hosted job would sit in `queued` (the emitter skips silently and the
-- sweeper re-emits into the same void). Enable it wherever the server ships it; elsewhere
-- (the embedded server, CI) the relay delivers and `doctor` says which is in use.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_net')
     and exists (select 1 from pg_available_extensions where name = 'pg_net') then
    begin
      if exists (select 1 from pg_namespace where nspname = 'extensions') then
        create extension if not exists pg_net with schema extensions;
      else
        create extension if not exists pg_net;
      end if;
    exception when others then
      raise notice using message = format(
        'soulprint-import: could not enable pg_net (%s). Enable it in the dashboard '
        '(Database > Extensions > pg_net) or run: create extension pg_net with schema '
        'extensions;', sqlerrm);
    end;
  end if;
end
$$;
