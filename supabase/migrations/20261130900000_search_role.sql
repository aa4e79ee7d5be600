-- The search role: POST /v1/search and the `search` command become a person without the
-- worker being able to (issue 8 F5, seed pitfall 3).
--
-- The service answers a search by verifying the person's access token and then running
-- match_memories AS them: `set local role authenticated` plus their claims, as PostgREST
-- does, so row-level security decides what comes back. Whoever may `set role
-- authenticated` may also set any claims, i.e. read ANY person's memory; that is inherent to
-- the role switch, so the login that can do it must be used for nothing else. Until now it
-- was import_worker, whose credentials the relay, the sweeper and every stage hold.
--
-- Now:
--   import_searcher  LOGIN NOINHERIT, a member of `authenticated` and of nothing else; no
--                    table, function or TEMP privilege of its own. Logged in and not
--                    switched, it reads nothing; switched, it reads what the claims it set
--                    allow, and the service sets only the claims of a verified token.
--   import_worker    no longer a member of `authenticated`: `set role authenticated` fails.
-- Every statement is idempotent (`supabase db push` and pipeline/migrate.py may both run it).

-- Roles are cluster-wide, so clones of one cluster may race to create it.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'import_searcher') then
    create role import_searcher login noinherit;
  end if;
exception when duplicate_object or unique_violation then
  null;
end
$$;

-- NOINHERIT again for a role an operator created by hand: membership must only ever mean
-- "may switch", never "has authenticated's rights while logged in". A migrating role that
-- may not alter it (not its creator, hosted projects) gets a warning with the SQL instead.
do $$
begin
  if (select r.rolinherit or r.rolcreaterole or r.rolcreatedb
        from pg_catalog.pg_roles r where r.rolname = 'import_searcher') then
    alter role import_searcher noinherit nocreaterole nocreatedb;
  end if;
exception when insufficient_privilege then
  raise warning 'could not make import_searcher NOINHERIT: as the postgres role run: '
    'alter role import_searcher noinherit nocreaterole nocreatedb;';
end
$$;

-- The switch the search needs. On hosted projects where the migrating role may not grant
-- `authenticated`, say what to run instead of failing the whole migration.
do $$
begin
  grant authenticated to import_searcher;
exception when insufficient_privilege then
  raise warning 'could not grant authenticated to import_searcher: /v1/search needs it. '
    'As the postgres role run: grant authenticated to import_searcher;';
end
$$;

-- The worker loses the switch (20261130400000 granted it before this role existed).
do $$
begin
  if pg_catalog.pg_has_role('import_worker', 'authenticated', 'MEMBER') then
    revoke authenticated from import_worker;
  end if;
  -- A REVOKE only removes grants this role made; one made by another admin would stay.
  if pg_catalog.pg_has_role('import_worker', 'authenticated', 'MEMBER') then
    raise warning 'import_worker is still a member of authenticated (granted by another '
      'role): its credentials can read every person''s memory. As a superuser run: '
      'revoke authenticated from import_worker granted by <that role>;';
  end if;
exception when insufficient_privilege then
  raise warning 'could not revoke authenticated from import_worker: its credentials can '
    'still read every person''s memory. As the postgres role run: '
    'revoke authenticated from import_worker;';
end
$$;

-- No temporary objects (the pg_temp planting of issue 8 F1). The roles migration took TEMP
-- from PUBLIC where it could, so a new role has none; this covers databases where PUBLIC
-- kept it (the explicit revoke is harmless either way).
do $$
declare
  db text := pg_catalog.current_database();
begin
  execute format('revoke temporary on database %I from import_searcher', db);
  if pg_catalog.has_database_privilege('import_searcher', db, 'TEMP') then
    raise notice using message =
      'soulprint-import: import_searcher has TEMP on database ' || db || ' through PUBLIC. '
      || 'As its owner, run: revoke temporary on database ' || db || ' from public; and '
      || 'grant it back to each role that needs it.';
  end if;
end
$$;
