"""Every query the relay and replay run, named and commented.

The relay holds no row lock while a POST is in flight (the receiver updates that very row to
acknowledge it): an event is claimed by pushing its ``next_attempt_at`` past the time one POST
may take, and released (or marked relayed) in a statement of its own afterwards.
"""

# The oldest due event nobody holds, claimed for ``claim_s`` seconds. SKIP LOCKED lets
# several relays claim side by side without ever taking one event twice; an event whose
# attempts are spent is not claimed (the sweeper re-announces its job).
CLAIM_DUE = """
with due as (
  select id from public.import_events
   where acknowledged_at is null and relayed_at is null
     and next_attempt_at <= now() and attempts < %(max_attempts)s
   order by next_attempt_at, created_at
   limit %(limit)s
   for update skip locked
)
update public.import_events e
   set next_attempt_at = now() + make_interval(secs => %(claim_s)s)
  from due where e.id = due.id
returning e.id, e.job_id, e.type, e.payload, e.payload::text as body, e.attempts
"""

# One try, whatever its outcome: what `replay` reads and what an operator reads.
LOG_ATTEMPT = """
insert into public.event_deliveries (event_id, status_code, latency_ms, error, via)
values (%s, %s, %s, %s, %s)
"""

# Handed over: the receiver (or Svix) has it; the relay never sends it again.
MARK_RELAYED = """
update public.import_events
   set relayed_at = now(), attempts = attempts + 1, last_error = null
 where id = %(id)s
"""

# Not handed over: give the claim back, due again after ``delay`` seconds (0 when the fault
# was the endpoint's, so another relay may take it at once), spending ``spent`` attempts
# (0 for a busy answer). The NOTIFY wakes the other relays, which would otherwise sleep
# until their poll.
RELEASE = """
with released as (
  update public.import_events
     set attempts = attempts + %(spent)s, last_error = %(error)s,
         next_attempt_at = now() + make_interval(secs => %(delay)s)
   where id = %(id)s
  returning id
)
select pg_notify('import_events', id::text) from released
"""

# Seconds until the next event falls due (negative: overdue; NULL: none waiting).
NEXT_DUE = """
select extract(epoch from min(next_attempt_at) - now()) from public.import_events
 where acknowledged_at is null and relayed_at is null and attempts < %(max_attempts)s
"""

# Every event with an attempt since the time, in the order they were emitted (local replay).
LOGGED_EVENTS = """
select e.id, e.payload::text
  from public.import_events e
 where exists (select 1 from public.event_deliveries d
                where d.event_id = e.id and d.attempted_at >= %(since)s)
   and (%(job_id)s::uuid is null or e.job_id = %(job_id)s::uuid)
 order by e.created_at
"""

# One job's events since the time (Svix replay resends them by id).
JOB_EVENTS = """
select id from public.import_events
 where job_id = %(job_id)s and created_at >= %(since)s order by created_at
"""
