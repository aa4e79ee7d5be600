-- Security hardening, roles and privileges (issue 8: F1, F5, F6, F9, F10, F11).
--
-- An adversarial review attacked a fresh database as a person, as `anon` and as the worker.
-- What it found, and what this file changes:
--   F1  An empty search_path still searches pg_temp FIRST for types and relations, so the
--       worker could plant `pg_temp.jsonb` / `pg_temp.text` domains whose checks ran as the
--       functions' owner. Every function we own that pins a path now ends it with pg_temp;
--       the worker loses TEMP on the database.
--   F5  SUPABASE_WORKER_JWT named `import_worker`, so through PostgREST/GraphQL it could read
--       every person's chunks, ack events and cancel jobs. The JWT now names a Storage-only
--       role, `import_storage_reader`; `import_worker` (the stages' database login) can no
--       longer be reached through `authenticator`, and its policies cover active imports.
--   F6  TRUNCATE (which skips RLS), REFERENCES and TRIGGER are taken from every API role.
--   F9  prune_webhook_receipts refuses intervals under the 5-minute signature tolerance.
--   F10 People no longer see the worker's lease and checkpoint columns.
--   F11 The user_profiles import-column guard trusts the pipeline's own role, not a list of
--       roles to distrust.
-- Every statement is idempotent: `supabase db push` and pipeline/migrate.py may meet a
-- database where parts of this already hold.

-- ---------------------------------------------------------------------------------------
-- F5: the Storage-only role the worker's JWT names
-- ---------------------------------------------------------------------------------------

-- nologin: nobody connects as it; Storage (and PostgREST) switch to it from authenticator
-- when a request carries a JWT with {"role": "import_storage_reader"}. Roles are
-- cluster-wide, so clones of one cluster may race to create it.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'import_storage_reader') then
    create role import_storage_reader nologin noinherit;
  end if;
exception when duplicate_object or unique_violation then
  null;
end
$$;

do $$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticator') then
    grant import_storage_reader to authenticator;
    -- The old arrangement: a JWT naming import_worker became the worker through the API.
    -- The stages log in as import_worker directly (DATABASE_URL); nothing needs this path.
    revoke import_worker from authenticator;
  end if;
end
$$;

-- Storage: read (and sign URLs for) objects of bucket `imports`, nothing else. On hosted
-- projects storage.objects belongs to supabase_storage_admin; if the migrating role may not
-- grant on it or add policies, say exactly what to run instead of failing the migration.
do $$
begin
  grant usage on schema storage to import_storage_reader;
  grant select on storage.objects, storage.buckets to import_storage_reader;
  drop policy if exists "imports: storage reader reads" on storage.objects;
  create policy "imports: storage reader reads" on storage.objects
    for select to import_storage_reader using (bucket_id = 'imports');
  drop policy if exists "imports: storage reader sees its bucket" on storage.buckets;
  create policy "imports: storage reader sees its bucket" on storage.buckets
    for select to import_storage_reader using (id = 'imports');

  -- The database role no longer touches Storage: downloads go through the JWT above.
  drop policy if exists "imports: worker reads" on storage.objects;
  drop policy if exists "imports: worker sees its bucket" on storage.buckets;
  revoke all on storage.objects, storage.buckets from import_worker;
  revoke usage on schema storage from import_worker;
exception when insufficient_privilege then
  raise notice using message =
    'soulprint-import: could not set Storage privileges for import_storage_reader ('
    || sqlerrm || '). As the owner of storage.objects (SQL editor), run: '
    || 'grant usage on schema storage to import_storage_reader; '
    || 'grant select on storage.objects, storage.buckets to import_storage_reader; '
    || 'create policy "imports: storage reader reads" on storage.objects for select '
    || 'to import_storage_reader using (bucket_id = ''imports''); '
    || 'create policy "imports: storage reader sees its bucket" on storage.buckets '
    || 'for select to import_storage_reader using (id = ''imports'');';
end
$$;

-- ---------------------------------------------------------------------------------------
-- F5: the worker's database role, narrowed to what the stages do
-- ---------------------------------------------------------------------------------------

-- Parsing inserts conversations and chunks (ON CONFLICT DO NOTHING), embedding updates
-- chunks; neither deletes (cancel and the re-import swap are definer functions), and no
-- stage reads a soulprint (complete_import_job writes it as the owner).
revoke update, delete on public.import_conversations from import_worker;
revoke delete on public.memory_chunks from import_worker;
revoke all on public.soulprints from import_worker;
drop policy if exists "worker reads soulprints" on public.soulprints;

-- Reading every person's finished memory is not the worker's business: the write policies
-- ("worker writes active ...", FOR ALL) already let it read rows of ACTIVE imports, which
-- is all a stage reads.
drop policy if exists "worker reads conversations" on public.import_conversations;
drop policy if exists "worker reads chunks" on public.memory_chunks;

-- The outbox, delivery log and receipts: the same rows as before, but one policy per
-- command the grants allow instead of FOR ALL, so a later grant cannot widen them silently.
drop policy if exists "worker relays events" on public.import_events;
drop policy if exists "worker reads events" on public.import_events;
create policy "worker reads events" on public.import_events
  for select to import_worker using (true);
drop policy if exists "worker schedules events" on public.import_events;
create policy "worker schedules events" on public.import_events
  for update to import_worker using (true) with check (true);

drop policy if exists "worker logs deliveries" on public.event_deliveries;
drop policy if exists "worker reads deliveries" on public.event_deliveries;
create policy "worker reads deliveries" on public.event_deliveries
  for select to import_worker using (true);
drop policy if exists "worker adds deliveries" on public.event_deliveries;
create policy "worker adds deliveries" on public.event_deliveries
  for insert to import_worker with check (true);

drop policy if exists "worker dedupes receipts" on public.webhook_receipts;
drop policy if exists "worker reads receipts" on public.webhook_receipts;
create policy "worker reads receipts" on public.webhook_receipts
  for select to import_worker using (true);
drop policy if exists "worker adds receipts" on public.webhook_receipts;
create policy "worker adds receipts" on public.webhook_receipts
  for insert to import_worker with check (true);

-- ---------------------------------------------------------------------------------------
-- F6: no API role may TRUNCATE (skips RLS), REFERENCES or TRIGGER our tables
-- ---------------------------------------------------------------------------------------

do $$
declare
  t text;
  privs text := 'truncate, references, trigger';
begin
  -- PostgreSQL 17 adds MAINTAIN (VACUUM, ANALYZE, REINDEX, ...): not theirs either.
  if current_setting('server_version_num')::int >= 170000 then
    privs := privs || ', maintain';
  end if;
  foreach t in array array['import_jobs', 'import_events', 'event_deliveries',
                           'webhook_receipts', 'import_conversations', 'memory_chunks',
                           'soulprints', 'user_profiles'] loop
    execute format('revoke %s on public.%I from public, anon, authenticated, import_worker, '
                   'import_storage_reader', privs, t);
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------
-- F10: the lease and checkpoint are the pipeline's, not the person's
-- ---------------------------------------------------------------------------------------

-- A column revoke does not beat a table-level grant, so people get SELECT on the listed
-- columns instead of the table. Realtime (postgres_changes) checks has_column_privilege for
-- the subscriber's role and sends only selectable columns, so the app's live row simply
-- lacks these three. PostgREST's `select=*` asks for every column and is refused: the app
-- lists the columns it shows (README). A column added to import_jobs later is hidden from
-- people until its migration grants it (fail closed).
revoke select on public.import_jobs from authenticated;
do $$
declare
  cols text;
begin
  select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into cols
    from pg_catalog.pg_attribute a
   where a.attrelid = 'public.import_jobs'::regclass and a.attnum > 0 and not a.attisdropped
     and a.attname not in ('lease_owner', 'lease_expires_at', 'checkpoint');
  execute format('grant select (%s) on public.import_jobs to authenticated', cols);
end
$$;

-- ---------------------------------------------------------------------------------------
-- F11: import columns of user_profiles are written by the pipeline's own role only
-- ---------------------------------------------------------------------------------------

-- The pipeline writes them inside its SECURITY DEFINER functions, where current_user is
-- those functions' owner (the role that ran the migrations), which also owns this trigger
-- function. Anyone else (anon, authenticated, service_role, an app's own roles) is refused;
-- superusers may repair data by hand.
create or replace function public._user_profiles_guard_import_columns()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  pipeline_owner oid := (select p.proowner from pg_catalog.pg_proc p
                          where p.oid = 'public._user_profiles_guard_import_columns()'
                                        ::pg_catalog.regprocedure);
  me pg_catalog.pg_roles := (select r from pg_catalog.pg_roles r
                              where r.rolname = current_user);
begin
  if me.oid = pipeline_owner or me.rolsuper then
    return new;
  end if;
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
  return new;
end
$$;

-- ---------------------------------------------------------------------------------------
-- F9: receipts live at least as long as a signature is accepted
-- ---------------------------------------------------------------------------------------

-- The receiver accepts a signature up to 5 minutes old; a receipt pruned sooner lets a
-- replayed request through the dedupe. A negative interval would prune everything.
create or replace function public.prune_webhook_receipts(
  older_than interval default interval '7 days'
) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  gone bigint;
begin
  -- Compare the cut-off it gives, not the interval: interval comparison counts a month as
  -- 30 days and a year as 360, so '1 mon -29 days -23 hours -55 min' or
  -- '-1 year 360 days 5 min' compare as 5 minutes, while now() minus them depends on the
  -- calendar (the second lies days in the future: it would prune every receipt).
  if older_than is null or now() - older_than > now() - interval '5 minutes' then
    raise exception 'prune_webhook_receipts: % is under the 5-minute signature tolerance',
      older_than
      using errcode = 'invalid_parameter_value';
  end if;
  delete from public.webhook_receipts r
   where r.received_at < now() - prune_webhook_receipts.older_than;
  get diagnostics gone = row_count;
  return gone;
end
$$;
revoke all on function public.prune_webhook_receipts(interval) from public, anon, authenticated;
grant execute on function public.prune_webhook_receipts(interval) to import_worker;

-- ---------------------------------------------------------------------------------------
-- F1: pg_temp last in every pinned search_path
-- ---------------------------------------------------------------------------------------

-- For every function this role owns outside the system schemas (extension members aside)
-- whose pinned search_path does not end with pg_temp: drop pg_temp from wherever it is,
-- put pg_catalog first if the path did not name it (it was implicitly searched first), and
-- append pg_temp. Names resolve exactly as before, except that a caller's temporary types
-- and relations now come last instead of first. So '' becomes 'pg_catalog, pg_temp' and the
-- signing function's 'extensions, pg_catalog' becomes 'extensions, pg_catalog, pg_temp'.
-- Functions created by later migrations must pin it themselves; tests/test_security_roles.py
-- scans pg_proc so none can ship without.
do $$
declare
  f record;
  raw text;
  parts text[];
  fixed text[];
  part text;
begin
  for f in
    select p.oid, p.oid::regprocedure as sig, p.proconfig
      from pg_catalog.pg_proc p
      join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname not in ('pg_catalog', 'information_schema')
       and n.nspname not like 'pg\_toast%' and n.nspname not like 'pg\_temp%'
       and p.proowner = (select oid from pg_catalog.pg_roles where rolname = current_user)
       and p.prokind in ('f', 'p')
       and not exists (select 1 from pg_catalog.pg_depend d
                        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid
                          and d.deptype = 'e')
       and exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%')
  loop
    select substr(c, length('search_path=') + 1) into raw
      from unnest(f.proconfig) c where c like 'search_path=%';
    parts := array(select btrim(x) from unnest(string_to_array(raw, ',')) x
                    where btrim(x) not in ('', '""'));
    if array_length(parts, 1) is not null and parts[array_length(parts, 1)] = 'pg_temp'
       and parts[1] <> 'pg_temp' then
      continue;  -- already safe
    end if;
    fixed := '{}';
    if not ('pg_catalog' = any(parts)) then
      fixed := array['pg_catalog'];
    end if;
    foreach part in array coalesce(parts, '{}') loop
      if part not in ('pg_temp', '"pg_temp"') then
        fixed := fixed || part;
      end if;
    end loop;
    fixed := fixed || 'pg_temp'::text;
    execute format('alter routine %s set search_path = %s', f.sig,
                   array_to_string(fixed, ', '));
  end loop;
end
$$;

-- Defence in depth: no temporary objects for the worker (nor the Storage role) at all.
-- TEMP on a database is granted to PUBLIC by default, and a grant to PUBLIC cannot exclude
-- one role, so take it from PUBLIC and give it back to every other existing role (the API
-- roles, authenticator, Supabase's own services may use temporary tables). A role created
-- after this migration gets TEMP only if granted explicitly.
do $$
declare
  db text := current_database();
  r text;
begin
  if has_database_privilege('public', db, 'TEMP') then
    for r in
      select rolname from pg_catalog.pg_roles
       where rolname not like 'pg\_%'
         and rolname not in ('import_worker', 'import_storage_reader')
    loop
      execute format('grant temporary on database %I to %I', db, r);
    end loop;
    execute format('revoke temporary on database %I from public', db);
  end if;
  execute format('revoke temporary on database %I from import_worker, import_storage_reader',
                 db);
  -- Only the database's owner may change its grants (others get a WARNING, not an error).
  -- The search_path pins above are the real fix; this is the second wall: say how to raise it.
  if has_database_privilege('import_worker', db, 'TEMP') then
    raise notice using message =
      'soulprint-import: import_worker still has TEMP on database ' || db || '. As its '
      || 'owner, run: grant temporary on database ' || db || ' to <each role that needs it>;'
      || ' revoke temporary on database ' || db || ' from public;';
  end if;
end
$$;
