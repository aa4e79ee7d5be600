-- Standard Webhooks signatures computed in SQL (needs only pgcrypto).
--
-- Used by the state machine to post events straight from the database with pg_net on hosted
-- Supabase. The signature is exactly what svix's Webhook.sign makes:
--   base64(HMAC-SHA256(base64decode(secret without "whsec_"), id || '.' || ts || '.' || body))
-- and goes out as the header `webhook-signature: v1,<signature>`.
--
-- pgcrypto lives in schema `extensions` on hosted Supabase and usually in `public` elsewhere,
-- so the function is created with its search_path pinned to wherever pgcrypto actually is.
-- Where pgcrypto is neither installed nor installable (the embedded pgserver build), nothing
-- is created and the relay signs in Python instead. This file stands alone on purpose: the
-- signing test applies just this file to a throwaway system PostgreSQL that has pgcrypto.

do $$
declare
  crypto_schema text;
begin
  select extnamespace::regnamespace::text into crypto_schema
  from pg_extension where extname = 'pgcrypto';

  if crypto_schema is null
     and exists (select 1 from pg_available_extensions where name = 'pgcrypto') then
    if exists (select 1 from pg_namespace where nspname = 'extensions') then
      create extension if not exists pgcrypto with schema extensions;
    else
      create extension if not exists pgcrypto;
    end if;
    select extnamespace::regnamespace::text into crypto_schema
    from pg_extension where extname = 'pgcrypto';
  end if;

  if crypto_schema is null then
    raise notice 'pgcrypto is not available: public.standard_webhook_signature not created';
    return;
  end if;

  execute format($f$
    create or replace function public.standard_webhook_signature(
      msg_id text, ts bigint, body text, secret text
    ) returns text
    language sql immutable strict parallel safe
    set search_path = %I, pg_catalog
    as $body$
      select encode(
        hmac(
          convert_to(msg_id || '.' || ts::text || '.' || body, 'UTF8'),
          decode(case when secret like 'whsec\_%%' then substr(secret, 7) else secret end,
                 'base64'),
          'sha256'),
        'base64')
    $body$
  $f$, crypto_schema);

  comment on function public.standard_webhook_signature(text, bigint, text, text) is
    'Standard Webhooks v1 signature (base64 HMAC-SHA256 of id.ts.body), as svix computes it.';

  -- It handles the webhook secret: only the definer (the event emitter) calls it. The API
  -- roles get execute through Supabase's default privileges, so take it back from them too.
  revoke all on function public.standard_webhook_signature(text, bigint, text, text) from public;
  if exists (select 1 from pg_roles where rolname = 'anon') then
    revoke all on function public.standard_webhook_signature(text, bigint, text, text)
      from anon, authenticated;
  end if;
end
$$;
