-- Fan-out of one import's embedding (issue 15, item 2).
--
-- Embedding is the long stage of an import (minutes to half an hour per 100 MB of export),
-- and until now one process did all of it while every other instance sat idle. Here the
-- stage's work is cut into batches of chunks that ANY instance may claim, each with its own
-- lease, so two instances embed one large import in about half the time.
--
-- Who does what:
--   * The holder of the job's lease (the embedding stage handler) plans the batches
--     (plan_import_embedding), works batches itself like any other instance, waits for
--     the batches others hold while renewing its job lease, and calls complete_import_job
--     exactly once when none remains. complete_import_job (unchanged) still refuses to
--     complete while embedded_chunks < chunks: the completion guard of 20261130950000.
--   * Any instance claims one batch of any job (claim_import_embedding_batch, FOR UPDATE
--     SKIP LOCKED), embeds its chunks and writes the vectors through
--     write_import_embedding_batch: vectors and the batch's progress in ONE transaction,
--     conditional on the batch lease; the write that leaves no chunk of the batch without
--     a vector marks the batch done in that same transaction.
--   * A batch whose instance died is claimable again once its lease has expired; what that
--     instance already wrote stays (chunks with a vector are never embedded again).
--   * A cancel stops every batch at its next write or renewal ('cancel_requested'); the
--     holder's next report sees it too and runs finish_import_cancel as before.
--
-- New: table import_embedding_batches; functions plan_import_embedding,
-- claim_import_embedding_batch, write_import_embedding_batch, renew_import_embedding_batch,
-- release_import_embedding_batch, import_embedding_plan_state, and the trigger function
-- _import_embedding_batches_cleanup. No existing function is redefined.

-- ---------------------------------------------------------------------------------------
-- The batches
-- ---------------------------------------------------------------------------------------

-- One row per batch of one job's embedding. A batch is a range of chunk ids (chunks are
-- keyed (job_id, id) and read in id order), so a batch needs no list of its chunks and a
-- resumed batch finds its remaining work with the partial index memory_chunks_unembedded.
create table if not exists public.import_embedding_batches (
  job_id uuid not null references public.import_jobs (id) on delete cascade,
  batch_no int not null,
  first_chunk_id uuid not null,
  last_chunk_id uuid not null,
  -- Chunks of the range still without a vector when the batch was planned; `embedded`
  -- counts the vectors this batch's writes added. Their difference is what is left.
  chunks int not null,
  embedded int not null default 0,
  -- Every vector of an import must come from one model: an instance configured with
  -- another model never claims the batch, and the writes take model and size from here.
  embedding_model text not null,
  embedding_dim int not null,
  lease_owner text,
  lease_expires_at timestamptz,
  attempts int not null default 0,  -- claims of this batch; a batch nobody can finish fails the job
  -- Set by an instance whose embedder refused the batch (a sentence a person can read);
  -- the holder fails the job with it. Cleared when a retried job plans again.
  error_code text,
  error_message text,
  done_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (job_id, batch_no),
  constraint import_embedding_batches_range check (first_chunk_id <= last_chunk_id)
);

-- What claims scan: open batches only (a finished import's rows are gone, see the trigger).
create index if not exists import_embedding_batches_open
  on public.import_embedding_batches (job_id, batch_no) where done_at is null;

-- The worker's scheduling state, not something a person reads: no grants to anon,
-- authenticated or the worker (it acts on batches through the functions below only), RLS
-- on with no policy, and not in the Realtime publication (claims and renewals would stream
-- to every subscribed app).
revoke all on public.import_embedding_batches from public, anon, authenticated, import_worker;
alter table public.import_embedding_batches enable row level security;
grant all on public.import_embedding_batches to service_role;

-- ---------------------------------------------------------------------------------------
-- Planning (the job's lease holder)
-- ---------------------------------------------------------------------------------------

-- Cut the job's chunks still without a vector into batches of at most p_batch_chunks, in
-- id order. Idempotent: a plan that exists for the same model is kept (the next holder of
-- a job whose holder died continues it, and so does a retry of a failed job). A plan for
-- another model (the service's settings changed between attempts) is replaced by one for
-- the chunks still without a vector.
-- Returns the number of batches not yet done; NULL when the caller does not hold the job
-- in `embedding`. Wakes idle instances (pg_notify on import_events, sent at commit).
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

-- ---------------------------------------------------------------------------------------
-- Working a batch (any instance)
-- ---------------------------------------------------------------------------------------

-- Take the lease on one open batch: of p_job_id only when given (the holder works its own
-- job), else of any job, oldest job first. Only batches planned for the caller's model,
-- of jobs still in `embedding` with no cancel pending, unheld or with an expired lease,
-- not failed, and claimed fewer than p_max_attempts times. SKIP LOCKED: instances claiming
-- at once take different batches instead of queueing on one. Counts an attempt.
-- No row: nothing to do.
create or replace function public.claim_import_embedding_batch(
  p_owner text, p_lease_seconds int, p_model text, p_dim int, p_max_attempts int,
  p_job_id uuid default null
) returns table (job_id uuid, batch_no int, first_chunk_id uuid, last_chunk_id uuid)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  b public.import_embedding_batches;
begin
  select x.* into b
    from public.import_embedding_batches x
    join public.import_jobs j on j.id = x.job_id
   where x.done_at is null
     and x.error_code is null
     and (x.lease_owner is null or x.lease_expires_at < pg_catalog.now())
     and x.attempts < p_max_attempts
     and x.embedding_model = p_model and x.embedding_dim = p_dim
     and (p_job_id is null or x.job_id = p_job_id)
     and j.stage = 'embedding' and j.cancel_requested_at is null
   order by j.created_at, x.job_id, x.batch_no
   limit 1
  for update of x skip locked;
  if not found then
    return;
  end if;

  update public.import_embedding_batches x
     set lease_owner = p_owner,
         lease_expires_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
         attempts = x.attempts + 1
   where x.job_id = b.job_id and x.batch_no = b.batch_no;
  return query select b.job_id, b.batch_no, b.first_chunk_id, b.last_chunk_id;
end
$$;

-- The batch row, locked, if p_owner holds its lease and the batch is open; NULL otherwise.
-- Internal to the functions below.
create or replace function public._held_import_embedding_batch(
  p_job_id uuid, p_batch_no int, p_owner text
) returns public.import_embedding_batches
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  select b.* from public.import_embedding_batches b
   where b.job_id = p_job_id and b.batch_no = p_batch_no
     and b.lease_owner = p_owner and b.done_at is null
  for update
$$;

-- Whether the job of a batch may still be worked: 'ok', or 'cancel_requested' (stop; the
-- holder cancels), or 'not_yours' (the job left `embedding`: failed, cancelled, complete).
create or replace function public._import_embedding_job_state(p_job_id uuid)
returns text
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(
    (select case when j.stage <> 'embedding' then 'not_yours'
                 when j.cancel_requested_at is not null then 'cancel_requested'
                 else 'ok' end
       from public.import_jobs j where j.id = p_job_id),
    'not_yours')
$$;

-- Write vectors of a held batch: ids[i] gets vecs[i], each vector given as pgvector's text
-- ('[0.1,...]'). Only chunks of the batch's range still without a vector are written. In
-- the same transaction: the batch's count, its lease renewed, and, when no chunk of the
-- range is left without a vector, the batch done. Returns 'ok' | 'done' |
-- 'cancel_requested' | 'not_yours' (nothing written for the last two: the caller stops
-- working the batch).
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

-- Extend a held batch's lease while its embedder works (a slow API, a busy CPU).
-- 'ok' | 'cancel_requested' | 'not_yours', as for a write.
create or replace function public.renew_import_embedding_batch(
  p_job_id uuid, p_batch_no int, p_owner text, p_lease_seconds int
) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  b public.import_embedding_batches;
  job_state text;
begin
  b := public._held_import_embedding_batch(p_job_id, p_batch_no, p_owner);
  if b.job_id is null then
    return 'not_yours';
  end if;
  job_state := public._import_embedding_job_state(p_job_id);
  if job_state = 'ok' then
    update public.import_embedding_batches x
       set lease_expires_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
     where x.job_id = p_job_id and x.batch_no = p_batch_no;
  end if;
  return job_state;
end
$$;

-- Give a held batch back: claimable again at once (the instance stops or hit a transient
-- failure). With p_error_code, the batch is marked failed instead, with a sentence a person
-- can read: nobody claims it, and the job's holder fails the job with that sentence.
-- False when not held by p_owner.
create or replace function public.release_import_embedding_batch(
  p_job_id uuid, p_batch_no int, p_owner text,
  p_error_code text default null, p_error_message text default null
) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  update public.import_embedding_batches x
     set lease_owner = null, lease_expires_at = null,
         error_code = p_error_code,
         error_message = case when p_error_code is null then null else p_error_message end
   where x.job_id = p_job_id and x.batch_no = p_batch_no
     and x.lease_owner = p_owner and x.done_at is null;
  return found;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Watching the plan (the job's lease holder)
-- ---------------------------------------------------------------------------------------

-- Where a job's embedding stands: batches planned, batches not done, chunks planned and
-- not yet written, the first failed batch's code and sentence, and how many open batches
-- have used up their claims with no lease running (nobody will finish them).
create or replace function public.import_embedding_plan_state(p_job_id uuid, p_max_attempts int)
returns table (batches int, open_batches int, missing bigint, error_code text,
               error_message text, exhausted int)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select count(*)::int,
         (count(*) filter (where b.done_at is null))::int,
         coalesce(sum(b.chunks - b.embedded) filter (where b.done_at is null), 0)::bigint,
         (pg_catalog.array_agg(b.error_code order by b.batch_no)
            filter (where b.error_code is not null and b.done_at is null))[1],
         (pg_catalog.array_agg(b.error_message order by b.batch_no)
            filter (where b.error_code is not null and b.done_at is null))[1],
         (count(*) filter (where b.done_at is null and b.attempts >= p_max_attempts
                             and (b.lease_owner is null
                                  or b.lease_expires_at < pg_catalog.now())))::int
    from public.import_embedding_batches b
   where b.job_id = p_job_id
$$;

-- ---------------------------------------------------------------------------------------
-- Cleanup
-- ---------------------------------------------------------------------------------------

-- A completed or cancelled import needs no plan. A failed one keeps it, so a retry
-- continues with the batches not yet done; but the failure has been told (the job row
-- carries the failed batch's sentence), so its batches start afresh: no error, no lease,
-- no claims counted (as retry_import_job resets the job's attempts).
create or replace function public._import_embedding_batches_cleanup()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.stage = 'failed' then
    update public.import_embedding_batches b
       set error_code = null, error_message = null, attempts = 0,
           lease_owner = null, lease_expires_at = null
     where b.job_id = new.id and b.done_at is null;
  else
    delete from public.import_embedding_batches b where b.job_id = new.id;
  end if;
  return null;
end
$$;

drop trigger if exists import_embedding_batches_cleanup on public.import_jobs;
create trigger import_embedding_batches_cleanup
  after update of stage on public.import_jobs
  for each row
  when (new.stage in ('complete', 'cancelled', 'failed') and old.stage is distinct from new.stage)
  execute function public._import_embedding_batches_cleanup();

-- ---------------------------------------------------------------------------------------
-- Who may call what
-- ---------------------------------------------------------------------------------------

-- Supabase grants new public functions to anon and authenticated by default: undo that.
revoke all on function
  public.plan_import_embedding(uuid, text, int, text, int),
  public.claim_import_embedding_batch(text, int, text, int, int, uuid),
  public._held_import_embedding_batch(uuid, int, text),
  public._import_embedding_job_state(uuid),
  public.write_import_embedding_batch(uuid, int, text, uuid[], text[], int),
  public.renew_import_embedding_batch(uuid, int, text, int),
  public.release_import_embedding_batch(uuid, int, text, text, text),
  public.import_embedding_plan_state(uuid, int),
  public._import_embedding_batches_cleanup()
  from public, anon, authenticated;
grant execute on function
  public.plan_import_embedding(uuid, text, int, text, int),
  public.claim_import_embedding_batch(text, int, text, int, int, uuid),
  public.write_import_embedding_batch(uuid, int, text, uuid[], text[], int),
  public.renew_import_embedding_batch(uuid, int, text, int),
  public.release_import_embedding_batch(uuid, int, text, text, text),
  public.import_embedding_plan_state(uuid, int)
  to import_worker, service_role;
