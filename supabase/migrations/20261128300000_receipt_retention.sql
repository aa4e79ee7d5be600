-- Receipt retention.
--
-- webhook_receipts exists to turn a repeated delivery of one webhook-id into a no-op. Svix
-- retries for about 28 hours; after a week a repeated id is no retry any more, and handling
-- it again would be harmless anyway (every stage claims its job conditionally). Without
-- pruning the table only grows, by about six rows per import. The sweeper prunes as it
-- passes (pipeline/sweeper.py), so no extra cron job is needed.

create index if not exists webhook_receipts_received_at
  on public.webhook_receipts (received_at);

create or replace function public.prune_webhook_receipts(
  older_than interval default interval '7 days'
) returns bigint
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  with gone as (
    delete from public.webhook_receipts r
     where r.received_at < now() - prune_webhook_receipts.older_than
    returning 1
  )
  select count(*) from gone
$$;

-- Supabase grants new public functions to anon and authenticated by default: undo that.
revoke all on function public.prune_webhook_receipts(interval) from public, anon, authenticated;
grant execute on function public.prune_webhook_receipts(interval) to import_worker;
