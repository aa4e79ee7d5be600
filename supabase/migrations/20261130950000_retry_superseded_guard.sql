-- An older import never replaces a newer one's memory.
--
-- A person's imports follow each other: the newest completed one is the memory
-- (user_profiles.current_import_id), and completing an import deletes every other import's
-- chunks, conversations and soulprint. Retrying a failed import that is OLDER than one
-- completed since therefore did damage: B (newer) had completed and already deleted A's
-- chunks, so `retry A` ran the remaining stages over nothing, completed A with
-- embedded_chunks = 0, pointed current_import_id at A and deleted B's chunks and soulprint.
-- The person lost their memory to a retry.
--
-- Two guards, one rule ("the older import has been superseded"):
--   1. retry_import_job refuses such a retry with a sentence that says what to do (upload
--      the export again: that makes a new, newest import).
--   2. A BEFORE trigger on import_jobs refuses the change of stage to `complete` itself
--      when the import is superseded, or when not every chunk has its vector
--      (embedded_chunks < chunks: memory that search cannot find). It is a trigger, not a
--      check inside complete_import_job, so it holds whichever function completes a job
--      (the completion is moving between stages on another branch) and whatever path led
--      there. Raising aborts the completing transaction as a whole: the soulprint row, the
--      profile switch and the deletion of other imports' data never happen.
-- Both raise SQLSTATE 55000 (object_not_in_prerequisite_state); the Python side turns it
-- into a readable refusal (retry) or a failed job (completion).

-- The newer completed import that supersedes ``p_job_id``, or NULL. "Newer" is by creation:
-- the person's current import if it was created after this one, else any completed import
-- created after it (the current one may have been cleared by hand).
create or replace function public._import_superseded_by(p_job_id uuid)
returns uuid
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select n.id
    from public.import_jobs j
    join public.import_jobs n on n.user_id = j.user_id and n.id <> j.id
    left join public.user_profiles p on p.user_id = j.user_id
   where j.id = p_job_id
     and n.created_at > j.created_at
     and (n.stage = 'complete' or n.id = p.current_import_id)
   order by n.created_at desc
   limit 1
$$;

-- Internal: only the state machine's own functions and trigger call it (as their owner).
-- Supabase grants new public functions to anon and authenticated by default: undo that.
revoke all on function public._import_superseded_by(uuid) from public, anon, authenticated;

-- failed -> the stage it failed in, with a fresh attempt count. NULL if not failed, or if
-- the person has started another import meanwhile (one active import per person). Raises
-- (55000) when a newer import of the person has completed since: retrying would make an
-- old export the person's memory again.
create or replace function public.retry_import_job(job_id uuid)
returns public.import_stage
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  resumed public.import_stage;
  newer uuid;
begin
  -- Only a failed job can be retried at all; for any other the answer stays NULL.
  if exists (select 1 from public.import_jobs j
              where j.id = retry_import_job.job_id and j.stage = 'failed') then
    newer := public._import_superseded_by(retry_import_job.job_id);
    if newer is not null then
      raise exception
        'import % cannot be retried: a newer import (%) has completed since and is your '
        'memory now; retrying the older one would replace it', retry_import_job.job_id, newer
        using errcode = 'object_not_in_prerequisite_state',
              hint = 'To import that export anyway, upload it again.';
    end if;
  end if;

  perform pg_catalog.set_config('soulprint.event_reason', 'retry', true);
  begin
    update public.import_jobs j
       set stage = j.failed_stage,
           failed_stage = null,
           error_code = null,
           error_message = null,
           attempts = 0,
           cancel_requested_at = null
     where j.id = retry_import_job.job_id
       and j.stage = 'failed'
       and j.failed_stage is not null
    returning j.stage into resumed;
  exception when unique_violation then
    resumed := null;
  end;
  perform pg_catalog.set_config('soulprint.event_reason', '', true);
  -- Soulprint first (20261130500000): a job retried past its soulprint stage shows its
  -- soulprint again (a failure had given the previous one back).
  if resumed is not null and resumed <> 'generating_soulprint' then
    perform public._show_import_soulprint(retry_import_job.job_id);  -- no row: nothing shown
  end if;
  return resumed;
end
$$;

-- The completion guard. Runs as whoever changes the stage (the state machine's definer
-- functions); reads only import_jobs and user_profiles.
create or replace function public._import_jobs_completion_guard()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  newer uuid;
begin
  if new.embedded_chunks < new.chunks then
    raise exception
      'import % cannot complete: % of its % memory chunks have their vector',
      new.id, new.embedded_chunks, new.chunks
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

drop trigger if exists import_jobs_completion_guard on public.import_jobs;
create trigger import_jobs_completion_guard
  before update of stage on public.import_jobs
  for each row
  when (new.stage = 'complete' and old.stage is distinct from 'complete')
  execute function public._import_jobs_completion_guard();
