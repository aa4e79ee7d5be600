-- Local development data for `supabase start` / `supabase db reset` (never production).
--
-- One person to upload as. Sign in as them through the local Auth API, or act as them in
-- SQL the way PostgREST does:
--   select set_config('request.jwt.claims',
--                     '{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}',
--                     true);
--   set local role authenticated;
insert into auth.users (id, aud, role, email)
values ('00000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated',
        'dev@soulprint.local')
on conflict (id) do nothing;
