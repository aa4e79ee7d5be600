-- Import pipeline, part 1: the tables.
--
-- One row per import in public.import_jobs holds the whole state of the pipeline (stage,
-- lease, progress, checkpoint); import_events is the outbox the database appends to on every
-- stage change; the data tables carry job_id so a re-import can be swapped in atomically.
-- The rules that move a job live in the state-machine migration; who may see what lives in
-- the security migration. Contract: docs/architecture.md, "Schema contract".

-- pgvector: hosted Supabase keeps extensions in schema `extensions`; elsewhere that schema
-- is created by supabase/bootstrap.sql. If vector is already installed elsewhere (public),
-- this is a no-op and `vector` resolves through the search_path below either way.
create extension if not exists vector with schema extensions;
set search_path = public, extensions;

-- The stages, in pipeline order. `chunking` is never entered (parsing writes the chunks) but
-- stays for clients that list stages. Terminal: complete, failed, cancelled, rejected.
do $$
begin
  create type public.import_stage as enum (
    'queued', 'downloading', 'parsing', 'chunking', 'embedding', 'generating_soulprint',
    'complete', 'failed', 'cancelled', 'rejected'
  );
exception when duplicate_object then
  null;
end
$$;

-- The login role the worker uses. No password here: set one out of band on hosted Supabase
-- (`alter role import_worker password ...`); the embedded server trusts local sockets.
-- Roles are cluster-wide, so several databases of one cluster may race to create it.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'import_worker') then
    create role import_worker login noinherit;
  end if;
exception when duplicate_object or unique_violation then
  null;
end
$$;

create table if not exists public.import_jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,

  -- The uploaded object, as Storage recorded it.
  bucket_id text,
  object_name text,
  object_version text,
  object_id uuid,
  file_size bigint,

  stage public.import_stage not null default 'queued',
  stage_changed_at timestamptz,
  -- {"<stage>": {"started_at": iso, "ended_at": iso}}, kept by a BEFORE trigger.
  stage_timings jsonb not null default '{}',

  -- Progress: absolute values reported by the stages (never deltas, so a repeat is harmless).
  bytes_total bigint not null default 0,
  bytes_done bigint not null default 0,
  conversations bigint not null default 0,
  skipped_conversations bigint not null default 0,
  messages bigint not null default 0,
  user_messages bigint not null default 0,
  assistant_messages bigint not null default 0,
  chunks bigint not null default 0,
  embedded_chunks bigint not null default 0,
  sha256 text,
  embedding_model text,
  embedding_dim int,

  -- Stage-private resume state, written with each batch; cleared when the stage advances.
  checkpoint jsonb not null default '{}',

  error_code text,
  error_message text,          -- a sentence a person understands
  failed_stage public.import_stage,

  attempts int not null default 0,  -- claims of the current stage; reset on advance
  lease_owner text,
  lease_expires_at timestamptz,
  cancel_requested_at timestamptz,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz
);

-- Never two active imports for one person (pitfall 7). The database enforces it: the upload
-- trigger inserts with ON CONFLICT against this very index, so there is no check-then-insert
-- window for 20 simultaneous uploads to slip through.
create unique index if not exists import_jobs_one_active_per_user
  on public.import_jobs (user_id)
  where stage in ('queued', 'downloading', 'parsing', 'chunking', 'embedding',
                  'generating_soulprint');

create index if not exists import_jobs_user_created
  on public.import_jobs (user_id, created_at desc);

-- The sweeper looks only at active jobs.
create index if not exists import_jobs_active_lease
  on public.import_jobs (lease_expires_at)
  where stage in ('queued', 'downloading', 'parsing', 'chunking', 'embedding',
                  'generating_soulprint');

-- The outbox and event log: one row per event; id is the Standard Webhooks `webhook-id`.
create table if not exists public.import_events (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.import_jobs (id) on delete cascade,
  type text not null,                 -- import.<stage>
  payload jsonb not null,             -- {"type", "timestamp", "data": {...}}; no user content
  created_at timestamptz not null default now(),
  acknowledged_at timestamptz,        -- the receiver accepted it
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text
);

-- The relay's work queue: unacknowledged events, due first.
create index if not exists import_events_pending
  on public.import_events (next_attempt_at)
  where acknowledged_at is null;
create index if not exists import_events_job
  on public.import_events (job_id, created_at desc);

-- Every delivery attempt, whoever made it.
create table if not exists public.event_deliveries (
  id bigserial primary key,
  event_id uuid not null references public.import_events (id) on delete cascade,
  attempted_at timestamptz not null default now(),
  status_code int,
  latency_ms real,
  error text,
  via text not null check (via in ('relay', 'svix', 'pg_net'))
);
create index if not exists event_deliveries_event on public.event_deliveries (event_id);

-- Receiver-side dedupe of webhook-ids (delivery is at least once).
create table if not exists public.webhook_receipts (
  webhook_id text primary key,
  received_at timestamptz not null default now()
);

-- Data of one import. Every row carries job_id: the person sees only rows of their current
-- import (user_profiles.current_import_id), so a re-import never shows half old, half new.
create table if not exists public.import_conversations (
  job_id uuid not null references public.import_jobs (id) on delete cascade,
  conversation_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  title text,
  created_at timestamptz,
  updated_at timestamptz,
  message_count int not null default 0,
  user_message_count int not null default 0,
  assistant_message_count int not null default 0,
  metadata jsonb not null default '{}',
  primary key (job_id, conversation_id)
);
create index if not exists import_conversations_user on public.import_conversations (user_id);

-- Chunks and their embeddings. The dimension follows the configured embedder, so the column
-- has none; embedding_dim says which, and per-dimension partial indexes make search fast.
create table if not exists public.memory_chunks (
  id uuid not null,
  job_id uuid not null references public.import_jobs (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  conversation_id text not null,
  conversation_title text,
  chunk_index int not null,
  content text not null,
  first_message_at timestamptz,
  last_message_at timestamptz,
  message_count int not null default 0,
  embedding vector,
  embedding_model text,
  embedding_dim int,
  primary key (job_id, id),
  constraint memory_chunks_dim_matches
    check (embedding is null or vector_dims(embedding) = embedding_dim)
);
create index if not exists memory_chunks_user on public.memory_chunks (user_id);
-- The embedding stage resumes from the chunks still without a vector.
create index if not exists memory_chunks_unembedded
  on public.memory_chunks (job_id, id) where embedding is null;
-- all-MiniLM-L6-v2 (384, the local default) and text-embedding-3-small (1536).
create index if not exists memory_chunks_embedding_384
  on public.memory_chunks using hnsw ((embedding::vector(384)) vector_cosine_ops)
  where embedding_dim = 384;
create index if not exists memory_chunks_embedding_1536
  on public.memory_chunks using hnsw ((embedding::vector(1536)) vector_cosine_ops)
  where embedding_dim = 1536;

create table if not exists public.soulprints (
  job_id uuid primary key references public.import_jobs (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile jsonb not null default '{}',
  soulprint_text text,
  created_at timestamptz not null default now()
);
create index if not exists soulprints_user on public.soulprints (user_id);

-- The app already reads user_profiles; it may exist with more columns. Add only ours.
create table if not exists public.user_profiles (
  user_id uuid primary key references auth.users (id) on delete cascade
);
alter table public.user_profiles
  add column if not exists import_status text,
  add column if not exists soulprint_text text,
  add column if not exists total_conversations int,
  add column if not exists current_import_id uuid,
  add column if not exists updated_at timestamptz default now();

-- Realtime: the app watches its job row (stage, counters, timings) change by change.
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (
       select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'import_jobs'
     ) then
    alter publication supabase_realtime add table public.import_jobs;
  end if;
end
$$;

-- The private bucket exports are uploaded to, at {user_id}/<file>. 1 GiB per file (the
-- project's plan may cap it lower). No MIME allow-list: browsers label zips inconsistently
-- (application/zip, application/x-zip-compressed, application/octet-stream).
insert into storage.buckets (id, name, public, file_size_limit)
values ('imports', 'imports', false, 1073741824)
on conflict (id) do update
  set public = false, file_size_limit = excluded.file_size_limit;
