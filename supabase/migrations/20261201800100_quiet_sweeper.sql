-- Review of issue 15, finding F7: the sweeper no longer re-announces a job that is only
-- waiting in line for a free worker.
--
-- Before the pull queue (20261201100000) a job ran only when its event reached a receiver
-- with a free slot, so an unheld job whose event was old needed a new event. Now every
-- instance pulls runnable jobs from import_jobs, oldest first, whenever it has capacity
-- (woken by NOTIFY, or by its poll where it cannot LISTEN). A re-announcement of a job that
-- is first in line changes nothing; it only adds outbox and delivery rows and a
-- "reemitted" line that reads like a fault. Under sustained load every queued job older
-- than stale_after was re-announced on every pass.
--
-- What a re-announcement still buys: an HTTP request wakes an instance that is asleep
-- (Render spins idle services down) or reaches a receiver when none is pulling. So an
-- unheld, stale job is re-announced only when no instance shows a sign of life; a live
-- lease on any other active job (renewed at least every LEASE_SECONDS by a working
-- instance, which pulls the next job when its slot frees) is that sign. Such a job is
-- reported as 'waiting', with no event.
-- Unchanged: a pending cancel nobody holds is carried out; an expired lease is a stalled
-- attempt (_retry_or_fail_import_job: counted, failed at max_attempts); a job waiting out
-- a backoff is left alone until its retry time plus stale_after.
--
-- Replaced (CREATE OR REPLACE, same signature, same grants):
--   public.sweep_import_jobs(interval, int)   ('reemitted' | 'failed' | 'cancelled' | 'waiting')
-- It pins search_path = pg_catalog, pg_temp and schema-qualifies every name.

create or replace function public.sweep_import_jobs(stale_after interval, max_attempts int)
returns table (job_id uuid, action text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  j public.import_jobs;
  last_event timestamptz;
  outcome text;
begin
  for j in
    select * from public.import_jobs x
     where public.import_stage_is_active(x.stage)
       and (x.lease_owner is null or x.lease_expires_at < pg_catalog.now())
     order by x.created_at
     for update skip locked
  loop
    job_id := j.id;
    if j.cancel_requested_at is not null then
      perform public._cancel_import_job(j.id);
      action := 'cancelled';
      return next;
    elsif j.lease_owner is not null then
      outcome := public._retry_or_fail_import_job(
        j.id, 'sweep', sweep_import_jobs.max_attempts, 0, 'stalled',
        pg_catalog.format('The import stopped responding %s times while %s and was stopped. '
               || 'You can retry it.', j.attempts, pg_catalog.replace(j.stage::text, '_', ' ')));
      action := case outcome when 'failed' then 'failed' else 'reemitted' end;
      return next;
    else
      select max(e.created_at) into last_event
        from public.import_events e where e.job_id = j.id;
      if greatest(last_event, j.retry_at) is null
         or greatest(last_event, j.retry_at)
              < pg_catalog.now() - sweep_import_jobs.stale_after then
        if exists (select 1 from public.import_jobs o
                    where o.completed_at is null  -- active jobs (import_jobs_runnable_idx)
                      and o.id <> j.id
                      and o.lease_expires_at > pg_catalog.now()) then
          -- An instance is alive and busy: the job is in line, and will be pulled.
          action := 'waiting';
        else
          perform public.emit_import_event(j.id, 'sweep');
          action := 'reemitted';
        end if;
        return next;
      end if;
    end if;
  end loop;
end
$$;
