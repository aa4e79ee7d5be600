-- Every query the Python side runs, by name (issue 10, "SQL from Python"; modelled on
-- procrastinate's sql/queries.sql). pipeline/queries.py parses this file once at import into
-- QUERIES; code asks for a query by name (QUERIES["claim_job"]), and
-- tests/integration/test_queries.py holds the two sides equal: every name the code asks for exists
-- here, and every query here is used.
--
-- Format: each query is a block that starts with a line `-- name: <query_name>`, preceded by
-- comment lines saying what it does and why, and runs to the next block. The trailing `;`
-- is dropped by the loader. Parameters are psycopg's (`%s`, `%(name)s`); a literal percent
-- sign is `%%` only in queries run with parameters (psycopg's rule).
--
-- Not here, on purpose:
--   * SQL composed at run time with psycopg.sql (identifiers cannot be parameters):
--     doctor's `set local role {}` (the role it probes as).
--   * Messages showing an operator SQL to run (doctor's remedies): text, not queries.
--   * The migrations themselves (supabase/migrations) and bootstrap.sql, run as files.

-- =======================================================================================
-- The job state machine (pipeline/jobstore.py: the only writer of import_jobs)
-- =======================================================================================

-- Counts of an import's custom-instruction texts and memory notes (stored once each by the
-- parsing stage; the worker role may read them at any stage).
-- Counts only, through a definer function: the worker may not read a finished import's
-- notes themselves (20261130980000_note_counts.sql).
-- name: export_fact_counts
select custom_instructions, memory_notes from public.import_note_counts(%(job)s);

-- The pull queue: pick the runnable job that has waited longest and claim it (one
-- statement; SKIP LOCKED inside, so concurrent pools never wait on each other).
-- name: claim_next_job
select * from public.claim_next_import_job(%s, %s, %s::public.import_stage[], %s);

-- Take the lease on one job in one stage (the event's job); counts an attempt.
-- name: claim_job
select * from public.claim_import_job(%s, %s, %s, %s);

-- Extend the lease by lease_seconds; no counters, no checkpoint ('{}', NULL).
-- Answers 'ok' | 'cancel_requested' | 'not_yours'.
-- name: renew_lease
select public.report_import_progress(%s, %s, '{}', null, %s);

-- Counters and checkpoint of the last committed batch (in the batch's own transaction for
-- commit_batch); NULL lease: not renewed (the
-- renewer's job). Answers 'ok' | 'cancel_requested' | 'not_yours'.
-- name: report_progress
select public.report_import_progress(%s, %s, %s, %s, null);

-- To the next stage with the final counters; the new stage, 'cancelled', or NULL.
-- name: advance_job
select public.advance_import_job(%s, %s, %s, %s);

-- Give the job back, saying why (shutdown keeps the attempt, transient counts it).
-- name: release_job
select public.release_import_job(%s, %s, %s, %s, %s);

-- generating_soulprint -> embedding, with the soulprint shown to the person.
-- name: show_soulprint
select public.show_import_soulprint(%s, %s, %s, %s);

-- Ask for a cancel; the lease holder obeys at its next report.
-- name: request_cancel
select public.request_import_cancel(%s);

-- One sweeper pass: stale leases released or failed, unacknowledged events re-emitted.
-- Params: stale_after (interval), max_attempts.
-- name: sweep_jobs
select job_id, action from public.sweep_import_jobs(%s, %s);

-- Recent imports, newest first, of one person or (NULL) everyone.
-- name: recent_jobs
select * from public.import_jobs
 where %(user_id)s::uuid is null or user_id = %(user_id)s::uuid
 order by created_at desc, id desc
 limit %(limit)s;

-- The job fails in its stage with a code and a readable message.
-- name: fail_job
select public.fail_import_job(%s, %s, %s, %s);

-- The lease holder has stopped: the pending cancel takes effect.
-- name: finish_cancel
select public.finish_import_cancel(%s, %s);

-- A failed import back to the stage it failed in (refused: 55000 with a hint).
-- name: retry_job
select public.retry_import_job(%s);

-- One job.
-- name: job_by_id
select * from public.import_jobs where id = %s;

-- A person's newest job.
-- name: latest_job_of_user
select * from public.import_jobs where user_id = %s order by created_at desc, id desc limit 1;

-- A person's running job (at most one: a partial unique index).
-- name: active_job_of_user
select * from public.import_jobs
 where user_id = %s and public.import_stage_is_active(stage)
 order by created_at desc
 limit 1;

-- The newest job of anyone (local mode: the one person).
-- name: latest_job
select * from public.import_jobs order by created_at desc, id desc limit 1;

-- The soulprint of a job (admin only: the worker may not read soulprints).
-- name: soulprint_text
select soulprint_text from public.soulprints where job_id = %s;

-- embedding -> complete, behind the guard that every chunk has its vector.
-- name: complete_job
select public.complete_import_job(%s, %s);


-- Receipts only dedupe retries (Svix retries for ~28 h); older ones are dead weight.
-- name: prune_webhook_receipts
select public.prune_webhook_receipts();

-- =======================================================================================
-- Stages
-- =======================================================================================

-- Upsert one batch's notes; the earliest sighting decides the reading order.
-- name: upsert_person_notes
insert into public.import_person_notes as n
    (job_id, user_id, kind, note, first_seen_at, last_seen_at, conversation_index, ordinal)
select %(job)s, %(user)s, x.kind, x.note, to_timestamp(x.first_at), to_timestamp(x.last_at),
       x.conv, x.ord
from unnest(%(kinds)s::text[], %(notes)s::text[], %(first_at)s::float8[],
            %(last_at)s::float8[], %(convs)s::int[], %(ords)s::int[])
     as x(kind, note, first_at, last_at, conv, ord)
on conflict (job_id, kind, note_md5) do update
   set first_seen_at = least(n.first_seen_at, excluded.first_seen_at),
       last_seen_at = greatest(n.last_seen_at, excluded.last_seen_at),
       conversation_index = case when (excluded.conversation_index, excluded.ordinal)
                                      < (n.conversation_index, n.ordinal)
                                 then excluded.conversation_index else n.conversation_index end,
       ordinal = case when (excluded.conversation_index, excluded.ordinal)
                           < (n.conversation_index, n.ordinal)
                      then excluded.ordinal else n.ordinal end;

-- An import's notes in the order they were first seen.
-- name: select_person_notes
select kind, note, first_seen_at, last_seen_at
  from public.import_person_notes
 where job_id = %(job)s
 order by conversation_index, ordinal, kind;

-- The batches of this job, planned idempotently; NULL: the job is not ours in `embedding`.
-- name: plan_embedding
select public.plan_import_embedding(%s, %s, %s, %s, %s) as open_batches;

-- Where the plan stands (see the migration): open batches, chunks left, a failed batch.
-- name: embedding_plan_state
select batches, open_batches, missing, error_code, error_message, exhausted
  from public.import_embedding_plan_state(%s, %s);

-- Vectors this import holds of the stage's model and size, counted once when the stage
-- starts and once before it completes: complete_import_job's guard compares this number
-- with the chunk count. Another model's vectors (the settings changed before a retry) are
-- not progress: the plan clears them (20261202100100_embedding_one_model.sql).
-- name: count_embedded_chunks
select count(*) as n from public.memory_chunks
 where job_id = %s and embedding is not null and embedding_model = %s and embedding_dim = %s;

-- One open batch of the job (holder) or of any job (other instances), leased to `owner`.
-- name: claim_embedding_batch
select job_id, batch_no, first_chunk_id, last_chunk_id
  from public.claim_import_embedding_batch(
         %(owner)s, %(lease)s, %(model)s, %(dim)s, %(max_attempts)s, %(job)s);

-- The next chunks of a batch still without a vector, in id order after the last ones read
-- (so the chunk being embedded ahead is never read twice).
-- name: select_pending_chunks
select id, content from public.memory_chunks
 where job_id = %(job)s and embedding is null
   and id > %(after)s and id between %(first)s and %(last)s
 order by id
 limit %(limit)s;

-- Vectors written, batch counted, lease renewed (and the batch done when complete): one txn.
-- name: write_embedding_batch
select public.write_import_embedding_batch(%s, %s, %s, %s, %s, %s);

-- Lease renewed while the embedder works: 'ok' | 'cancel_requested' | 'not_yours'.
-- name: renew_embedding_batch
select public.renew_import_embedding_batch(%s, %s, %s, %s);

-- The batch given back, saying why (20261201800000_batch_release_reasons.sql): 'shutdown'
-- (attempt not counted, claimable at once), 'transient' (counted, backoff) or 'failed' (a
-- readable sentence for the person).
-- name: release_embedding_batch
select public.release_import_embedding_batch(%s, %s, %s, %s, %s, %s, %s);

-- True when Storage now holds another version at the job's path (SQL function: the worker
-- role cannot read storage.objects itself).
-- name: export_replaced
select public.import_export_replaced(%s);

-- A batch of conversations, one row each, idempotent (a resumed batch inserts nothing twice).
-- name: insert_conversations
insert into public.import_conversations
    (job_id, user_id, conversation_id, title, created_at, updated_at,
     message_count, user_message_count, assistant_message_count, metadata)
select %(job)s, %(user)s, c.id, c.title, to_timestamp(c.created), to_timestamp(c.updated),
       c.n, c.n_user, c.n_assistant, c.meta::jsonb
from unnest(%(ids)s::text[], %(titles)s::text[], %(created)s::float8[], %(updated)s::float8[],
            %(n)s::int[], %(n_user)s::int[], %(n_assistant)s::int[], %(meta)s::text[])
     as c(id, title, created, updated, n, n_user, n_assistant, meta)
on conflict do nothing;

-- Excluded conversations and where the export broke, with the batch that saw them.
-- name: report_export_facts
select public.report_import_export_facts(%s, %s, %s, %s, %s);

-- A batch of chunks (ids derived from their content, so a re-read batch is a no-op).
-- name: insert_chunks
insert into public.memory_chunks
    (id, job_id, user_id, conversation_id, conversation_title, chunk_index, content,
     first_message_at, last_message_at, message_count)
select c.id, %(job)s, %(user)s, c.conversation_id, c.title, c.idx, c.content,
       to_timestamp(c.first_at), to_timestamp(c.last_at), c.n
from unnest(%(ids)s::uuid[], %(conversation_ids)s::text[], %(titles)s::text[], %(idx)s::int[],
            %(contents)s::text[], %(first_at)s::float8[], %(last_at)s::float8[], %(n)s::int[])
     as c(id, conversation_id, title, idx, content, first_at, last_at, n)
on conflict do nothing;

-- One row per job, rewritten with every batch (the worker may write it while the import is
-- active: RLS policy "worker keeps active profile states").
-- name: save_profile_state
insert into public.import_profile_states (job_id, user_id, state, updated_at)
values (%(job)s, %(user)s, %(state)s::jsonb, now())
on conflict (job_id) do update set state = excluded.state, updated_at = now();

-- The last committed state of a job's profile, as text (parsed with orjson: faster).
-- name: load_profile_state
select state::text from public.import_profile_states where job_id = %s;

-- =======================================================================================
-- Events: the receiver, the relay, replay, outbox health
-- =======================================================================================
--
-- The relay holds no row lock while a POST is in flight (the receiver updates that very row
-- to acknowledge it): an event is claimed by pushing its next_attempt_at past the time one
-- POST may take, and released (or marked relayed) in a statement of its own afterwards.

-- The receiver's own session: its writes (receipts, acknowledgements) need not wait for
-- the WAL flush; a lost ack is redelivered and deduplicated by its receipt.
-- name: receiver_async_commit
set synchronous_commit = off;

-- Wake on every new or released event (the NOTIFY on public.import_events; the relay and
-- the receiver's doorbell). The channel name is fixed by the migrations.
-- name: listen_import_events
listen import_events;

-- Only the first delivery of a webhook-id counts; retries and replays of it are no-ops.
-- name: insert_webhook_receipt
insert into webhook_receipts (webhook_id) values (%s) on conflict do nothing;

-- Svix delivers under its own message id, so the job's pending events of this type are
-- acknowledged too: the sender stops retrying and the sweeper sees the event acted on.
-- name: ack_import_events
update import_events set acknowledged_at = now()
 where acknowledged_at is null
   and (id = %(event_id)s or (job_id = %(job_id)s and type = %(type)s));

-- The oldest due event nobody holds, claimed for ``claim_s`` seconds. SKIP LOCKED lets
-- several relays claim side by side without ever taking one event twice; an event whose
-- attempts are spent is not claimed (the sweeper re-announces its job).
-- name: relay_claim_due
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
returning e.id, e.job_id, e.type, e.payload, e.payload::text as body, e.attempts;

-- One try, whatever its outcome: what `replay` reads and what an operator reads.
-- name: relay_log_attempt
insert into public.event_deliveries (event_id, status_code, latency_ms, error, via)
values (%s, %s, %s, %s, %s);

-- Handed over: the receiver (or Svix) has it; the relay never sends it again.
-- name: relay_mark_relayed
update public.import_events
   set relayed_at = now(), attempts = attempts + 1, last_error = null
 where id = %(id)s;

-- Not handed over: give the claim back, due again after ``delay`` seconds (0 when the fault
-- was the endpoint's, so another relay may take it at once), spending ``spent`` attempts
-- (0 for a busy answer). The NOTIFY wakes the other relays, which would otherwise sleep
-- until their poll.
-- name: relay_release
with released as (
  update public.import_events
     set attempts = attempts + %(spent)s, last_error = %(error)s,
         next_attempt_at = now() + make_interval(secs => %(delay)s)
   where id = %(id)s
  returning id
)
select pg_notify('import_events', id::text) from released;

-- Seconds until the next event falls due (negative: overdue; NULL: none waiting).
-- name: relay_next_due
select extract(epoch from min(next_attempt_at) - now()) from public.import_events
 where acknowledged_at is null and relayed_at is null and attempts < %(max_attempts)s;

-- Every event with an attempt since the time, in the order they were emitted (local replay).
-- name: replay_logged_events
select e.id, e.payload::text
  from public.import_events e
 where exists (select 1 from public.event_deliveries d
                where d.event_id = e.id and d.attempted_at >= %(since)s)
   and (%(job_id)s::uuid is null or e.job_id = %(job_id)s::uuid)
 order by e.created_at;

-- One job's events since the time (Svix replay resends them by id).
-- name: replay_job_events
select id from public.import_events
 where job_id = %(job_id)s and created_at >= %(since)s order by created_at;

-- Unacknowledged events and the age of the oldest, in seconds (NULL when there are none).
-- name: oldest_unacknowledged_event
select count(*) as unacknowledged,
       extract(epoch from now() - min(e.created_at))::float8 as oldest_age_s
  from public.import_events e
 where e.acknowledged_at is null;

-- =======================================================================================
-- The worker's disk (janitor) and local mode
-- =======================================================================================

-- Stage and lease of the jobs whose copies are on this disk. As the worker role: it reads
-- import_jobs, which is all this needs. A job the worker may not see counts as gone.
-- name: janitor_job_states
select id, stage::text, lease_owner, coalesce(lease_expires_at > now(), false) as leased
from public.import_jobs
where id = any(%s);

-- Local mode: the one person, as auth would create them.
-- name: local_ensure_user
insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing;

-- Local mode: the upload as Storage records it; the trigger creates the import job.
-- name: local_upload_object
insert into storage.objects (bucket_id, name, owner_id, metadata, version)
values (%s, %s, %s, %s, %s)
on conflict (bucket_id, name) do update
    set metadata = excluded.metadata, version = excluded.version,
        updated_at = now()
returning id;

-- Local mode: the job that upload created.
-- name: local_job_of_upload
select id from public.import_jobs
 where object_id = %s and object_version = %s
 order by created_at desc
 limit 1;

-- =======================================================================================
-- Migrations (pipeline/migrate.py, pipeline/embedded.py)
-- =======================================================================================

-- Every applied migration and its statements (an edited file differs from them).
-- name: migration_history
select version, statements from supabase_migrations.schema_migrations;

-- The history table the Supabase CLI keeps, created the same way by either side (the CLI's
-- own DDL, so either may run first); the next three statements complete it.
-- name: migrate_history_schema
create schema if not exists supabase_migrations;

-- Applied migrations by version.
-- name: migrate_history_table
create table if not exists supabase_migrations.schema_migrations
  (version text not null primary key);

-- Newer Supabase CLIs record each migration's statements.
-- name: migrate_history_statements
alter table supabase_migrations.schema_migrations add column if not exists statements text[];

-- And its name.
-- name: migrate_history_name
alter table supabase_migrations.schema_migrations add column if not exists name text;

-- One migrator at a time (session advisory lock; the key is migrate._LOCK_KEY).
-- name: migrate_lock
select pg_advisory_lock(%s);

-- True on a bare Postgres: no auth.users or storage.objects, so bootstrap.sql stands in
-- for Supabase's own schemas.
-- name: migrate_needs_bootstrap
select to_regclass('auth.users') is null or to_regclass('storage.objects') is null as missing;

-- Release the migrator's lock.
-- name: migrate_unlock
select pg_advisory_unlock(%s);

-- A migration may `set search_path`; the next starts from the defaults.
-- name: migrate_reset
reset all;

-- A migration applied: recorded with its statements, in its own transaction.
-- name: migrate_record
insert into supabase_migrations.schema_migrations (version, name, statements) values (%s, %s, %s);

-- =======================================================================================
-- doctor: a deployment checked against its settings (admin URL; probes roll back)
-- =======================================================================================

-- Versions of the migrations recorded as applied (Supabase's own history table).
-- name: doctor_applied_versions
select version from supabase_migrations.schema_migrations;

-- Whether pg_net's http_post exists (database-side delivery needs it).
-- name: doctor_has_pg_net
select to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is not null as present;

-- Whether the SQL signing function exists (database-side delivery signs with it).
-- name: doctor_has_signing
select to_regprocedure('public.standard_webhook_signature(text,bigint,text,text)')
       is not null as present;

-- Whether Supabase Vault is installed (the webhook URL and secret live there).
-- name: doctor_has_vault
select to_regclass('vault.decrypted_secrets') is not null as present;

-- Which of our two Vault secrets exist (never their values).
-- name: doctor_vault_names
select name from vault.decrypted_secrets
 where name in ('soulprint_webhook_url', 'soulprint_webhook_secret')
   and coalesce(decrypted_secret, '') <> '';

-- The webhook URL stored in Vault, to compare with the receiver's (not a secret).
-- name: doctor_vault_url
select decrypted_secret as url from vault.decrypted_secrets
 where name = 'soulprint_webhook_url'
 limit 1;

-- A signature made in SQL with the secret in Vault; the secret never leaves the database.
-- name: doctor_sql_signature
select public.standard_webhook_signature(
         %s, %s, %s,
         (select decrypted_secret from vault.decrypted_secrets
           where name = 'soulprint_webhook_secret' limit 1)) as signature;

-- What the worker role may do beyond its grants: superuser, RLS bypass, the API roles'
-- rights, temporary tables, reading auth.users (each one a finding).
-- name: doctor_worker_powers
select r.rolsuper, r.rolbypassrls,
       pg_has_role(r.rolname, 'service_role', 'MEMBER') as service_role,
       pg_has_role(r.rolname, 'authenticated', 'MEMBER') as authenticated,
       has_database_privilege(r.rolname, current_database(), 'TEMP') as temp,
       has_table_privilege(r.rolname, 'auth.users', 'SELECT') as auth_users
  from pg_roles r where r.rolname = %s;

-- Every role a role is a member of, directly or through others (it may use their rights).
-- name: doctor_member_of
select b.rolname from pg_roles b
 where b.rolname <> %(role)s and pg_has_role(%(role)s, b.oid, 'MEMBER')
 order by 1;

-- Table-level privileges a role holds on the tables of schema public.
-- name: doctor_public_table_grants
select c.relname, p.priv
  from pg_class c
  cross join (values ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'),
                     ('REFERENCES'), ('TRIGGER')) p(priv)
 where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
   and has_table_privilege(%(role)s, c.oid, p.priv)
 order by 1, 2;

-- Whether a role may create objects in schema public (the worker must not).
-- name: doctor_create_on_public
select has_schema_privilege(%s, 'public', 'CREATE') as create;

-- The search role: logs in, inherits nothing, and its only membership is `authenticated`
-- (the switch /v1/search makes after verifying a person's token).
-- name: doctor_search_role_powers
select r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolbypassrls,
       has_database_privilege(r.rolname, current_database(), 'TEMP') as temp,
       array(select g.rolname::text from pg_auth_members m
               join pg_roles g on g.oid = m.roleid
              where m.member = r.oid order by 1) as member_of
  from pg_roles r where r.rolname = %s;

-- Whether a role is superuser or bypasses RLS (neither is acceptable for our roles).
-- name: doctor_role_powers
select rolsuper, rolbypassrls from pg_roles where rolname = %s;

-- Our Storage policies (named 'imports: ...') as they exist now.
-- name: doctor_existing_policies
select tablename, policyname from pg_policies
 where schemaname = 'storage' and policyname like 'imports:%';

-- Whether storage.objects has row level security on (every Storage policy depends on it).
-- name: doctor_objects_rls
select relrowsecurity as rls from pg_class where oid = 'storage.objects'::regclass;

-- The upload triggers on storage.objects and whether each fires for normal writes ('O').
-- name: doctor_upload_triggers
select tgname, tgenabled from pg_trigger
 where tgrelid = 'storage.objects'::regclass and tgname = any(%s::name[]);

-- The imports bucket as Storage holds it (public flag, size limit, MIME types).
-- name: doctor_bucket_row
select to_jsonb(b) as bucket from storage.buckets b where b.id = %s;

-- Tables of schema public without row level security (each is readable through the API
-- by whoever holds a grant).
-- name: doctor_tables_without_rls
select c.relname from pg_class c
 where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
   and not c.relrowsecurity
 order by 1;

-- Functions of schema public a role may execute (the API roles must reach only ours).
-- name: doctor_executable_functions
select p.proname, p.oid::regprocedure::text as signature
  from pg_proc p
 where p.pronamespace = 'public'::regnamespace
   and has_function_privilege(%s, p.oid, 'EXECUTE')
 order by 2;

-- SECURITY DEFINER functions of schema public and their settings (search_path pinned?).
-- name: doctor_definer_functions
select p.oid::regprocedure::text as signature, p.proconfig as config
  from pg_proc p
 where p.pronamespace = 'public'::regnamespace and p.prosecdef
 order by 1;

-- Probe (rolled back): an upload as Storage writes it, by whoever the probe acts as.
-- name: doctor_probe_upload_object
insert into storage.objects (bucket_id, name, owner, owner_id, version)
values (%s, %s, %s, %s, 'probe');

-- Whether the Storage-only role exists (the worker's Storage JWT then carries it).
-- name: doctor_has_storage_reader_role
select 1 as x from pg_roles where rolname = 'import_storage_reader';

-- Probe (rolled back): a throwaway bucket, to see whether a role reaches beyond imports.
-- name: doctor_probe_insert_bucket
insert into storage.buckets (id, name) values (%s, %s);

-- Probe (rolled back): one object in the throwaway bucket and one in imports that no
-- complete import read.
-- name: doctor_probe_insert_objects
insert into storage.objects (bucket_id, name, version) values (%s, %s, 'probe'), (%s, %s, 'probe');

-- Act as an API request: the JWT claims PostgREST and Storage set for the transaction
-- (RLS policies read them through auth.uid()).
-- name: set_request_jwt_claims
select set_config('request.jwt.claims', %s, true);

-- Storage's API sets this before its own DELETE; direct deletes are refused without it.
-- name: doctor_allow_delete_query
select set_config('storage.allow_delete_query', 'true', true);

-- Probe: does the acting role see any object of this bucket?
-- name: doctor_probe_read_bucket_objects
select 1 from storage.objects where bucket_id = %s;

-- Probe: does the acting role see this bucket?
-- name: doctor_probe_read_bucket
select 1 from storage.buckets where id = %s;

-- Probe (rolled back): may the acting role delete the objects of this bucket?
-- name: doctor_probe_delete_bucket_objects
delete from storage.objects where bucket_id = %s;

-- Probe (rolled back): may the acting role change objects of these two buckets?
-- name: doctor_probe_update_objects
update storage.objects set version = 'x' where bucket_id in (%s, %s);

-- Probe (rolled back): may the acting role upload an object?
-- name: doctor_probe_insert_object
insert into storage.objects (bucket_id, name, version) values (%s, %s, 'x');

-- Probe (rolled back): may the acting role delete this one object?
-- name: doctor_probe_delete_object
delete from storage.objects where bucket_id = %s and name = %s;

-- Probe (rolled back): a throwaway person, as the app's sign-up makes one.
-- name: doctor_probe_insert_person
insert into auth.users (id, aud, role, email) values (%s, 'authenticated', 'authenticated', %s);

-- Probe: does the acting role see this one object?
-- name: doctor_probe_read_object
select 1 from storage.objects where bucket_id = %s and name = %s;

-- Probe (rolled back): an upload exactly as Storage writes it (metadata and version),
-- which must fire the upload trigger.
-- name: doctor_probe_upload_with_metadata
insert into storage.objects (bucket_id, name, owner, owner_id, metadata, version)
values (%s, %s, %s, %s, %s, %s);

-- Probe: the import job the test upload created, if any.
-- name: doctor_probe_job_stage
select stage::text as stage from public.import_jobs where user_id = %s;

-- =======================================================================================
-- Search (pipeline/search.py, handlers/search.py, pipeline/commands/search.py): run as the
-- person (role authenticated with their claims), so RLS decides every row
-- =======================================================================================

-- Be the person for the rest of the transaction, the way PostgREST makes a request be:
-- their claims in request.jwt.claims (then `act_as_authenticated`).
-- name: act_as_claims
select set_config('request.jwt.claims', %s, true);

-- The role whose RLS policies apply to a signed-in person (transaction-local).
-- name: act_as_authenticated
set local role authenticated;

-- The person's current import as they see it (import_jobs RLS + their current_import_id).
-- name: current_import
select j.id, j.embedding_model, j.embedding_dim
  from public.import_jobs j
 where j.id = public.current_import_id();

-- Hybrid (or one-list) search through the SQL function; the vector travels as pgvector text.
-- name: match_memories
select id, conversation_id, conversation_title, content, first_message_at, last_message_at,
       score, vector_rank, lexical_rank, similarity, lexical_score
  from public.match_memories(%(embedding)s::extensions.vector, %(text)s, %(limit)s,
                             %(model)s, %(rrf_k)s);

-- Who has something to search (the CLI without --user): people whose profile points at a
-- completed import; two rows are enough to know it is not one person.
-- name: people_with_memory
select p.user_id from public.user_profiles p
 where p.current_import_id is not null
 order by p.updated_at desc
 limit 2;
