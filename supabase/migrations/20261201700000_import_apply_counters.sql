-- One owner for the counter SET list (issue 10, "Counters").
--
-- report_import_progress and advance_import_job each spelled out the same twelve
-- assignments (nine counters, three facts), so a new counter had to be added in both, and
-- in Python's pipeline.jobstore.COUNTERS/FACTS, and one forgotten place would silently drop
-- it. Now public._import_apply_counters holds the SQL list, both functions call it, and
-- tests/integration/test_counters_sql.py holds it equal to the Python list.
--
-- Added:
--   public._import_apply_counters(uuid, jsonb)   the one UPDATE of counters and facts
-- Replaced (CREATE OR REPLACE, same signatures, so the same grants; every rule kept):
--   public.report_import_progress(uuid, text, jsonb, jsonb, int)  from 20261201100000
--     (lease holder only, active stages only, NULL lease_seconds: lease not renewed)
--   public.advance_import_job(uuid, text, import_stage, jsonb)    from 20261130500000
--     (no plain advance into complete or out of generating_soulprint, lease holder only,
--      a pending cancel wins, lease and checkpoint cleared, attempts reset)
-- Every definer function pins search_path = pg_catalog, pg_temp and schema-qualifies names.

-- Counters are absolute values (never deltas): a key present replaces the column, a key
-- absent keeps it. Facts (sha256, embedding model and dimension) are set once known and
-- never cleared by a report that leaves them out. Unknown keys are ignored here; Python
-- refuses them before they are sent (jobstore._counters).
-- SECURITY INVOKER on purpose: it checks no lease, so only the definer functions above,
-- which do, may call it (their owner runs it); nobody else gets EXECUTE.
create or replace function public._import_apply_counters(job_id uuid, counters jsonb)
returns void
language sql volatile security invoker
set search_path = pg_catalog, pg_temp
as $$
  update public.import_jobs j
     set bytes_total = public._import_counter(c.c, 'bytes_total', j.bytes_total),
         bytes_done = public._import_counter(c.c, 'bytes_done', j.bytes_done),
         conversations = public._import_counter(c.c, 'conversations', j.conversations),
         skipped_conversations =
           public._import_counter(c.c, 'skipped_conversations', j.skipped_conversations),
         messages = public._import_counter(c.c, 'messages', j.messages),
         user_messages = public._import_counter(c.c, 'user_messages', j.user_messages),
         assistant_messages =
           public._import_counter(c.c, 'assistant_messages', j.assistant_messages),
         chunks = public._import_counter(c.c, 'chunks', j.chunks),
         embedded_chunks = public._import_counter(c.c, 'embedded_chunks', j.embedded_chunks),
         sha256 = coalesce(c.c ->> 'sha256', j.sha256),
         embedding_model = coalesce(c.c ->> 'embedding_model', j.embedding_model),
         embedding_dim = coalesce((c.c ->> 'embedding_dim')::int, j.embedding_dim)
    from (select coalesce(_import_apply_counters.counters, '{}') as c) c
   where j.id = _import_apply_counters.job_id
$$;

-- The lease holder reports counters and its checkpoint. The ownership check and the lease
-- come first (one UPDATE that also locks the row); the counters follow only when the job is
-- the caller's, and only when there are any: a bare renewal ('{}') stays one row write.
create or replace function public.report_import_progress(
  job_id uuid, owner text, counters jsonb, checkpoint jsonb, lease_seconds int
) returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c jsonb := coalesce(counters, '{}');
  cancel_at timestamptz;
begin
  update public.import_jobs j
     set checkpoint = coalesce(report_import_progress.checkpoint, j.checkpoint),
         -- NULL lease_seconds: a progress report, which leaves the lease to the renewer.
         lease_expires_at = coalesce(
           now() + make_interval(secs => report_import_progress.lease_seconds),
           j.lease_expires_at)
   where j.id = report_import_progress.job_id
     and j.lease_owner = report_import_progress.owner
     and public.import_stage_is_active(j.stage)
  returning j.cancel_requested_at into cancel_at;

  if not found then
    return 'not_yours';
  end if;
  if c <> '{}' then
    perform public._import_apply_counters(report_import_progress.job_id, c);
  end if;
  return case when cancel_at is null then 'ok' else 'cancel_requested' end;
end
$$;

-- The lease holder moves its job to the next stage, with its final counters.
create or replace function public.advance_import_job(
  job_id uuid, owner text, from_stage public.import_stage, counters jsonb default '{}'
) returns public.import_stage
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c jsonb := coalesce(counters, '{}');
  next_stage public.import_stage := public.import_next_stage(from_stage);
  j public.import_jobs;
begin
  if next_stage is null or next_stage = 'complete' or from_stage = 'generating_soulprint' then
    raise exception 'advance_import_job: no plain advance from stage %', from_stage
      using hint = 'finish a soulprint with show_import_soulprint, an import with '
                   || 'complete_import_job';
  end if;

  select * into j from public.import_jobs x
   where x.id = advance_import_job.job_id
     and x.stage = advance_import_job.from_stage
     and x.lease_owner = advance_import_job.owner
  for update;
  if not found then
    return null;
  end if;
  if j.cancel_requested_at is not null then
    perform public._cancel_import_job(j.id);
    return 'cancelled';
  end if;

  -- Counters before the stage change: the stage change is what publishes the job's row
  -- to the app at once (_import_progress_publish), and it must carry the final counts.
  if c <> '{}' then
    perform public._import_apply_counters(j.id, c);
  end if;
  update public.import_jobs x
     set stage = next_stage,
         lease_owner = null,
         lease_expires_at = null,
         attempts = 0,
         checkpoint = '{}'
   where x.id = j.id;
  return next_stage;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------

-- Supabase grants new public functions to anon and authenticated by default: undo that.
-- The helper writes any job's counters without a lease check, so no API role gets it.
revoke all on function public._import_apply_counters(uuid, jsonb)
  from public, anon, authenticated;

do $$
begin
  if exists (select 1 from pg_roles where rolname = 'service_role') then
    revoke all on function public._import_apply_counters(uuid, jsonb) from service_role;
  end if;
  if exists (select 1 from pg_roles where rolname = 'import_worker') then
    revoke all on function public._import_apply_counters(uuid, jsonb) from import_worker;
  end if;
end
$$;
