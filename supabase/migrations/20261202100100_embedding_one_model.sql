-- Review of 20261202100000 (issue 15, third review): vectors of one model, and no UPDATE
-- of chunks for the worker.
--
--   1. A retry after the embedding settings changed (the out-of-quota message tells the
--      operator to switch to MiniLM) planned only the chunks without a vector, so the import
--      completed with vectors of two models; search filters on the job's dimension and
--      found a part of the memory. The planner now clears the other model's vectors, and
--      the completion guard refuses a chunk whose dimension is not the job's.
--   2. The worker kept UPDATE on memory_chunks, which no stage uses since vectors go
--      through write_import_embedding_batch; with it, a worker session could clear a vector
--      while a completion was committing. Revoked.
-- (20261202100000 is left as it was: a database that applied it applies this on top.)

-- The completion guard of 20261202100000, with the size check (new). enable_seqscan off:
-- with statistics from before the vectors were written (a fresh project's first big
-- import) the planner chose a scan of the whole table for the probe of missing vectors
-- (88-287 ms at 100k chunks, and every person's rows in production). Now the partial index
-- of chunks without a vector answers that probe, and the size check walks the job's rows
-- through the primary key (job_id, id): its heap pages, ~60 ms at 100k chunks, once per
-- import, inside the completing transaction.
create or replace function public._import_jobs_completion_guard()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
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
  -- The vectors themselves (20261202100000). Counted only when some are missing (an
  -- index probe first), so a whole import pays one lookup.
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
  -- New: one model's vectors. Search compares a question with the vectors of the job's
  -- dimension only; a chunk of another (or of none recorded) is memory it cannot find.
  -- Chunks without a vector were refused above.
  if new.embedding_dim is not null
     and exists (select 1 from public.memory_chunks c
                  where c.job_id = new.id
                    and c.embedding_dim is distinct from new.embedding_dim) then
    raise exception
      'import % cannot complete: some of its memory chunks have vectors of another size '
      'than its model''s (%)', new.id, new.embedding_dim
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Retry the import: those chunks are embedded again with the current model.';
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


-- The planner (as in 20261201200000_embedding_fanout.sql), clearing other models' vectors
-- before it plans (new).
create or replace function public.plan_import_embedding(
  p_job_id uuid, p_owner text, p_batch_chunks int, p_model text, p_dim int
) returns int
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  open_batches int;
begin
  if p_batch_chunks is null or p_batch_chunks < 1 then
    raise exception 'plan_import_embedding: batch size must be positive (got %)', p_batch_chunks
      using errcode = 'invalid_parameter_value';
  end if;
  -- The job row locked: two planners of one job (a stale holder and its successor) queue
  -- here, and the second finds the first's plan.
  perform 1 from public.import_jobs j
   where j.id = p_job_id and j.stage = 'embedding' and j.lease_owner = p_owner
  for update;
  if not found then
    return null;
  end if;

  delete from public.import_embedding_batches b
   where b.job_id = p_job_id and b.done_at is null
     and (b.embedding_model <> p_model or b.embedding_dim <> p_dim);

  -- New: vectors of another model (the settings changed between attempts) are of no use
  -- to search beside this model's: clear them, so the plan below embeds them again.
  update public.memory_chunks c
     set embedding = null, embedding_model = null, embedding_dim = null
   where c.job_id = p_job_id and c.embedding is not null
     and (c.embedding_model is distinct from p_model or c.embedding_dim is distinct from p_dim);

  if not exists (select 1 from public.import_embedding_batches b
                  where b.job_id = p_job_id and b.done_at is null) then
    -- Numbered after any batch already done, so a replan never collides with one.
    insert into public.import_embedding_batches
      (job_id, batch_no, first_chunk_id, last_chunk_id, chunks, embedding_model, embedding_dim)
    select p_job_id,
           g.n + coalesce((select max(b.batch_no) from public.import_embedding_batches b
                            where b.job_id = p_job_id), 0),
           -- (no min/max for uuid in PostgreSQL 16: the ends of the ordered list)
           (pg_catalog.array_agg(g.id order by g.id))[1],
           (pg_catalog.array_agg(g.id order by g.id desc))[1],
           count(*), p_model, p_dim
      from (select c.id, (pg_catalog.row_number() over (order by c.id) - 1) / p_batch_chunks + 1 as n
              from public.memory_chunks c
             where c.job_id = p_job_id and c.embedding is null) g
     group by g.n;
  end if;

  select count(*) into open_batches from public.import_embedding_batches b
   where b.job_id = p_job_id and b.done_at is null;
  if open_batches > 0 then
    -- Empty payload: a wake-up for pull loops (and harmless to the relay, which reads the
    -- outbox table, not the payload).
    perform pg_catalog.pg_notify('import_events', '');
  end if;
  return open_batches;
end
$$;

-- Vectors are written by write_import_embedding_batch only (new: no UPDATE for the worker).
revoke update on public.memory_chunks from import_worker;
