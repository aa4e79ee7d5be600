-- Delivery bookkeeping for the relay (local mode, deployments without pg_net, Svix mode).
-- Runs after the import schema migrations (it sorts after them); every statement is
-- idempotent.
--
-- relayed_at: the relay handed the event over (a 2xx from the receiver, or Svix accepted it).
-- It is not acknowledged_at, which only the receiver sets: in Svix mode the two differ by
-- Svix's own delivery, and the sweeper must still see an event Svix never got through.
alter table public.import_events add column if not exists relayed_at timestamptz;

-- The relay's claim query: due, not handed over, not acknowledged.
create index if not exists import_events_relay_due
  on public.import_events (next_attempt_at)
  where acknowledged_at is null and relayed_at is null;

-- Local replay reads the attempt log by time.
create index if not exists event_deliveries_attempted
  on public.event_deliveries (attempted_at);

-- The relay runs as import_worker, which may update only the outbox's delivery columns.
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'import_worker') then
    grant update (relayed_at) on public.import_events to import_worker;
  end if;
end
$$;
