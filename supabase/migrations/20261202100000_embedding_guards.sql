-- The database, not the lease holder, decides that an import's memory is whole.
--
-- Two gaps a review found (issue 15, second review), both about numbers the worker reports
-- standing in for facts the database holds:
--   1. The completion guard of 20261130950000 compared import_jobs.embedded_chunks with
--      chunks. embedded_chunks is a counter the holder writes; a holder that reported every
--      chunk embedded (a bug, an older instance during a rolling deploy) could complete an
--      import whose chunks had no vector: memory that search cannot find. The guard now
--      also looks at the chunks themselves (one probe of the partial index
--      memory_chunks_unembedded).
--   2. write_import_embedding_batch counted padding as written: unnest() pads the shorter
--      of its arrays with NULL, and "set embedding = NULL where embedding is null" still
--      counts as an updated row. Fewer vectors than ids made the batch's `embedded` (and
--      the person's progress) run ahead of the vectors, past the total after the real
--      write. A write must now give one non-NULL vector per id.
-- Both functions are replaced whole; only the marked parts are new.

-- The completion guard: refuses the change of stage to `complete` while a chunk lacks its
-- vector (new), whatever the counter says, as well as in the cases it refused before.
create or replace function public._import_jobs_completion_guard()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  newer uuid;
  missing bigint;
begin
  if new.embedded_chunks < new.chunks then
    raise exception
      'import % cannot complete: % of its % memory chunks have their vector',
      new.id, new.embedded_chunks, new.chunks
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Retry the import: embedding resumes where it stopped.';
  end if;
  -- New: the vectors themselves. Counted only when some exist (an index probe first), so a
  -- whole import pays one lookup.
  if exists (select 1 from public.memory_chunks c
              where c.job_id = new.id and c.embedding is null) then
    select count(*) into missing from public.memory_chunks c
     where c.job_id = new.id and c.embedding is null;
    raise exception
      'import % cannot complete: % of its % memory chunks have no vector yet',
      new.id, missing, new.chunks
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Retry the import: embedding resumes where it stopped.';
  end if;
  newer := public._import_superseded_by(new.id);
  if newer is not null then
    raise exception
      'import % cannot complete: a newer import (%) has completed since and is the '
      'memory now', new.id, newer
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'To import that export anyway, upload it again.';
  end if;
  return new;
end
$$;

revoke all on function public._import_jobs_completion_guard()
  from public, anon, authenticated;

-- Write vectors of a held batch (as in 20261201200000_embedding_fanout.sql), refusing a
-- write that does not give exactly one vector per id (new).
create or replace function public.write_import_embedding_batch(
  p_job_id uuid, p_batch_no int, p_owner text, p_ids uuid[], p_vecs text[],
  p_lease_seconds int
) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  b public.import_embedding_batches;
  job_state text;
  written int;
  vs name;  -- the schema pgvector lives in (extensions on Supabase), as match_memories finds it
begin
  -- New: one vector per id, none NULL. Checked before anything is locked or written.
  if pg_catalog.cardinality(p_ids) <> pg_catalog.cardinality(p_vecs)
     or pg_catalog.array_position(p_vecs, null) is not null then
    raise exception
      'write_import_embedding_batch: % ids but % vectors (% of them missing)',
      pg_catalog.cardinality(p_ids), pg_catalog.cardinality(p_vecs),
      (select count(*) from pg_catalog.unnest(p_vecs) v where v is null)
      using errcode = 'invalid_parameter_value';
  end if;

  b := public._held_import_embedding_batch(p_job_id, p_batch_no, p_owner);
  if b.job_id is null then
    return 'not_yours';
  end if;
  job_state := public._import_embedding_job_state(p_job_id);
  if job_state <> 'ok' then
    return job_state;
  end if;

  select n.nspname into vs
    from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
   where e.extname = 'vector';
  -- Dynamic only for the type's schema; the values are parameters. (Text -> vector
  -- directly: the float4[] detour through pgvector's assignment cast, which needs no
  -- schema, measured slower, up to ~2x, on a loaded machine.)
  -- Multi-argument unnest is special FROM syntax, which takes no schema name.
  execute format(
    'update public.memory_chunks m
        set embedding = v.vec::%1$I.vector, embedding_model = $1, embedding_dim = $2
       from unnest($3, $4) as v(id, vec)
      where m.job_id = $5 and m.id = v.id
        and m.id between $6 and $7
        and m.embedding is null',
    vs)
    using b.embedding_model, b.embedding_dim, p_ids, p_vecs, p_job_id,
          b.first_chunk_id, b.last_chunk_id;
  get diagnostics written = row_count;

  update public.import_embedding_batches x
     set embedded = x.embedded + written,
         lease_expires_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
   where x.job_id = p_job_id and x.batch_no = p_batch_no;

  if not exists (select 1 from public.memory_chunks c
                  where c.job_id = p_job_id and c.embedding is null
                    and c.id between b.first_chunk_id and b.last_chunk_id) then
    update public.import_embedding_batches x
       set done_at = pg_catalog.now(), lease_owner = null, lease_expires_at = null
     where x.job_id = p_job_id and x.batch_no = p_batch_no;
    return 'done';
  end if;
  return 'ok';
end
$$;

-- create or replace keeps the grants of 20261201200000; said again so this file reads whole.
revoke all on function public.write_import_embedding_batch(uuid, int, text, uuid[], text[], int)
  from public, anon, authenticated;
grant execute on function public.write_import_embedding_batch(uuid, int, text, uuid[], text[], int)
  to import_worker, service_role;
