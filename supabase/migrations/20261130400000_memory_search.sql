-- Memory search: the app's read path (issue 11).
--
-- public.match_memories(query_embedding, query_text, match_count, query_model, rrf_k) ranks
-- the chunks of the caller's CURRENT import by reciprocal rank fusion of two lists:
--   * nearest neighbours by cosine distance, through the per-dimension HNSW indexes of the
--     schema migration (an exact scan when the index cannot give enough of this person's
--     rows, see below);
--   * lexical matches through a GIN index on memory_chunks.lexemes.
-- It is SECURITY INVOKER: the chunk policies ("own current chunks") decide what a person
-- sees, so the function cannot show anyone anything a plain SELECT would not.
--
-- Languages. Exports are often not English. The lexical side indexes the English stemmer's
-- lexemes (Spanish and other Latin-script words pass through as near-literal lexemes) plus
-- overlapping character bigrams of every CJK run, the classic indexing of text without
-- spaces. pg_trgm would be the other choice, but it is not in every PostgreSQL build (the
-- embedded pgserver lacks it) and under a C locale it ignores non-ASCII characters; bigrams
-- in a tsvector work on any build and locale.

set search_path = public, extensions;

-- Overlapping two-character pieces of every CJK run (Han, kana, Hangul), e.g.
-- '小动物' -> {小动, 动物}; a run of one character is kept whole.
create or replace function public.cjk_bigrams(content text)
returns tsvector
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(pg_catalog.array_to_tsvector(array_agg(distinct g.piece)), ''::tsvector)
    from pg_catalog.regexp_matches(
           content,
           '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+', 'g') as m(run),
         lateral pg_catalog.generate_series(1, greatest(pg_catalog.length(m.run[1]) - 1, 1)) as i,
         lateral (select pg_catalog.substr(m.run[1], i, 2) as piece) as g
$$;

-- What the lexical index holds for a chunk: English-stemmed words plus CJK bigrams.
create or replace function public.memory_lexemes(content text)
returns tsvector
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select pg_catalog.to_tsvector('pg_catalog.english'::regconfig, content)
         || public.cjk_bigrams(content)
$$;

-- A person's question as a tsquery that a chunk satisfies by sharing at least TWO of the
-- question's lexemes (any one, when the question has only one or two, or is a CJK-only
-- question of at most four characters). Matching any single
-- word made the lexical list mostly noise for questions phrased in other words than the
-- memory ("what is the name of my pet?" matched every chunk with "name"), and reciprocal
-- rank fusion then pushed that noise above the right answer; two shared words is the
-- usual "minimum should match" and keeps names, identifiers and Chinese phrases findable.
-- Built as an OR of pairwise ANDs, which the GIN index evaluates directly. Words that are
-- stop words in any of six common languages are dropped first, so that a Spanish "¿dónde
-- está mi ...?" does not match through "de" and "mi"; at most the 12 longest lexemes are
-- kept. NULL when nothing is left (a question of stop words only searches by meaning).
create or replace function public.memory_search_query(query text)
returns tsquery
language sql stable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  with tokens as (
    select distinct pg_catalog.lower(t.token) as token
      from pg_catalog.ts_parse('default', query) as t
  ),
  kept as (
    select tk.token from tokens tk
     where pg_catalog.to_tsvector('pg_catalog.spanish'::regconfig, tk.token) <> ''::tsvector
       and pg_catalog.to_tsvector('pg_catalog.french'::regconfig, tk.token) <> ''::tsvector
       and pg_catalog.to_tsvector('pg_catalog.german'::regconfig, tk.token) <> ''::tsvector
       and pg_catalog.to_tsvector('pg_catalog.portuguese'::regconfig, tk.token) <> ''::tsvector
       and pg_catalog.to_tsvector('pg_catalog.italian'::regconfig, tk.token) <> ''::tsvector
  ),
  lexemes as (
    select pg_catalog.unnest(pg_catalog.tsvector_to_array(
             pg_catalog.to_tsvector('pg_catalog.english'::regconfig, k.token))) as lexeme
      from kept k
    union
    select pg_catalog.unnest(pg_catalog.tsvector_to_array(public.cjk_bigrams(query)))
  ),
  -- Each lexeme quoted for tsquery input (a quote or backslash doubled).
  quoted as (
    select '''' || pg_catalog.replace(pg_catalog.replace(l.lexeme, '\', '\\'), '''', '''''')
           || '''' as q
      from lexemes l
     order by pg_catalog.length(l.lexeme) desc, l.lexeme
     limit 12
  ),
  counted as (select pg_catalog.count(*) as n from quoted),
  -- A short question written only in CJK characters ('谁要结婚', who is getting
  -- married?) has bigrams of question and function characters (谁要, 要结) beside the one
  -- that matters (结婚): requiring two would find nothing, so any one will do.
  short_cjk as (
    select pg_catalog.length(pg_catalog.btrim(query, ' ?？。!！')) <= 4
           and pg_catalog.btrim(query, ' ?？。!！')
               ~ '^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+$' as yes
  )
  select case
           when c.n = 0 then null
           when c.n <= 2 or (select sc.yes from short_cjk sc) then (select pg_catalog.string_agg(q, ' | ') from quoted)::tsquery
           else (select pg_catalog.string_agg('(' || a.q || ' & ' || b.q || ')', ' | ')
                   from quoted a join quoted b on a.q < b.q)::tsquery
         end
    from counted c
$$;

-- The lexical index. A stored generated column: the parsing stage's inserts fill it with no
-- change to the worker, and ts_rank reads it instead of re-parsing each candidate. Adding it
-- rewrites memory_chunks once on deployed projects.
alter table public.memory_chunks
  add column if not exists lexemes tsvector
  generated always as (public.memory_lexemes(content)) stored;
create index if not exists memory_chunks_lexemes
  on public.memory_chunks using gin (lexemes);

-- The lexical candidates of the caller's current import, best first. SECURITY DEFINER for
-- one reason: under RLS PostgreSQL will not use an index for a condition whose operator
-- is not LEAKPROOF, and tsvector @@ tsquery is not, so as the person this is a sequential
-- scan of the whole table. The function therefore decides the rows itself with the very
-- predicate of the "own current chunks" policy (the caller's auth.uid() and current
-- import, never a parameter), and returns only ids and scores; match_memories reads the
-- rows back through RLS.
create or replace function public._memory_lexical_candidates(tsq tsquery, pool int)
returns table (id uuid, r real, rnk int)
language sql stable
security definer
set search_path = pg_catalog, pg_temp
-- With the LIMIT below the planner may prefer a sequential scan that "stops early"; for a
-- rare pair of words it never does. The GIN bitmap is always the right plan here.
set enable_seqscan = off
as $$
  -- At most 200 matching chunks are ranked: a question whose words are everywhere would
  -- otherwise rank tens of thousands of rows (140 ms at 100k chunks), and such a list
  -- carries little anyway. Rare words, the ones worth matching, are never cut.
  select s.id, pg_catalog.ts_rank(s.lexemes, tsq),
         pg_catalog.row_number() over (order by pg_catalog.ts_rank(s.lexemes, tsq) desc, s.id)::int
    from (select m.id, m.lexemes
            from public.memory_chunks m
           where m.job_id = public.current_import_id()
             and m.user_id = auth.uid()
             and m.lexemes @@ tsq
           limit 200) s
   order by 2 desc, s.id
   limit least(greatest(pool, 1), 400)
$$;

revoke all on function public._memory_lexical_candidates(tsquery, int)
  from public, anon, authenticated;
grant execute on function public._memory_lexical_candidates(tsquery, int)
  to authenticated, service_role;

create or replace function public.match_memories(
  query_embedding vector default null,
  query_text text default null,
  match_count int default 10,
  query_model text default null,
  rrf_k int default 60
)
returns table (
  id uuid,
  conversation_id text,
  conversation_title text,
  content text,
  first_message_at timestamptz,
  last_message_at timestamptz,
  score double precision,        -- sum of 1 / (rrf_k + rank) over the lists it is in
  vector_rank int,               -- 1-based rank by cosine distance, null if not a candidate
  lexical_rank int,              -- 1-based rank by ts_rank, null if not a candidate
  similarity double precision,   -- cosine similarity to the query embedding
  lexical_score real             -- ts_rank against the query text
)
language plpgsql stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  -- Candidates taken from each list before fusing: twice what is asked (as in Supabase's
  -- hybrid search). Deeper pools let weak matches of both lists outrank strong matches
  -- of one: under RRF anything in both lists beats almost anything in one.
  pool int := least(greatest(match_count * 2, 20), 200);
  vs name;            -- the schema pgvector lives in (extensions on Supabase)
  job uuid;
  job_model text;
  job_dim int;
  job_embedded bigint;
  tsq tsquery;
  vec_ids uuid[] := '{}';
  vec_sims float8[] := '{}';
  lex_ids uuid[] := '{}';
  lex_scores real[] := '{}';
  fused_ids uuid[];
  fused_s float8[];
  fused_vr int[];
  fused_lr int[];
  fused_sim float8[];
  fused_sc real[];
  old_ef text;
begin
  if match_count is null or match_count < 1 or match_count > 100 then
    raise exception 'match_count must be between 1 and 100 (got %)', match_count
      using errcode = 'invalid_parameter_value';
  end if;
  if rrf_k is null or rrf_k < 1 then
    raise exception 'rrf_k must be a positive integer' using errcode = 'invalid_parameter_value';
  end if;

  -- The caller's current import; RLS on import_jobs shows a person only their own jobs.
  select j.id, j.embedding_model, j.embedding_dim, j.embedded_chunks
    into job, job_model, job_dim, job_embedded
    from public.import_jobs j
   where j.id = public.current_import_id();
  if job is null then
    raise exception 'no completed import to search'
      using errcode = 'no_data_found',
            hint = 'Search works once an import of this person has completed.';
  end if;

  if query_embedding is not null then
    -- (The vector->real[] cast needs no schema: pgvector may live in any.)
    -- Models are compared by family, as pipeline/embedding/families.py does: every
    -- all-MiniLM-L6-v2 spelling (sentence-transformers' name of imports made before the
    -- ONNX switch, '/onnx-int8', '/onnx-float32') is one 384-d space; others by exact name.
    if query_model is not null and job_model is not null
       and (case when pg_catalog.lower(query_model) ~ '(^|/)all-minilm-l6-v2(/|$)'
                 then 'all-MiniLM-L6-v2' else query_model end)
        <> (case when pg_catalog.lower(job_model) ~ '(^|/)all-minilm-l6-v2(/|$)'
                 then 'all-MiniLM-L6-v2' else job_model end) then
      raise exception 'query embedded with % but this import was embedded with %',
        query_model, job_model
        using errcode = 'invalid_parameter_value',
              hint = 'Embed the query with the model named in import_jobs.embedding_model.';
    end if;
    if job_dim is null or pg_catalog.array_length(query_embedding::real[], 1) <> job_dim then
      raise exception 'query embedding has % dimensions but this import''s model (%) has %',
        pg_catalog.array_length(query_embedding::real[], 1), coalesce(job_model, 'none'),
        coalesce(job_dim::text, 'no vectors')
        using errcode = 'invalid_parameter_value',
              hint = 'Embed the query with the model named in import_jobs.embedding_model.';
    end if;
  end if;
  if query_text is not null and pg_catalog.btrim(query_text) <> '' then
    tsq := public.memory_search_query(query_text);
  end if;

  if query_embedding is not null then
    select n.nspname into vs
      from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
     where e.extname = 'vector';
    -- HNSW returns at most ef_search rows before RLS and the job filter drop others':
    -- search as deep as the pool (transaction-local; put back below).
    old_ef := pg_catalog.current_setting('hnsw.ef_search', true);
    perform pg_catalog.set_config('hnsw.ef_search', greatest(pool, 40)::text, true);
    -- The ORDER BY expression and the dimension literal match the partial HNSW index
    -- memory_chunks_embedding_<dim> exactly; that is what lets the planner use it.
    execute format(
      'select array_agg(s.id order by s.d), array_agg(1 - s.d order by s.d)
         from (select m.id, m.embedding::%1$I.vector(%2$s) operator(%1$I.<=>) $1::%1$I.vector(%2$s) as d
                 from public.memory_chunks m
                where m.job_id = $2 and m.embedding_dim = %2$s
                order by m.embedding::%1$I.vector(%2$s) operator(%1$I.<=>) $1::%1$I.vector(%2$s)
                limit $3) s',
      vs, job_dim)
      into vec_ids, vec_sims
      using query_embedding, job, pool;
    -- When other people's chunks crowd this person's out of the index's candidates (a
    -- small import in a big table), rank this import's vectors exactly: the job_id prefix
    -- of the primary key finds them, and there are few.
    if coalesce(pg_catalog.array_length(vec_ids, 1), 0) < least(pool, job_embedded) then
      execute format(
        'select array_agg(s.id order by s.d), array_agg(1 - s.d order by s.d)
           from (select m.id, m.embedding operator(%1$I.<=>) $1 as d
                   from public.memory_chunks m
                  where m.job_id = $2 and m.embedding is not null
                  order by 2
                  limit $3) s',
        vs)
        into vec_ids, vec_sims
        using query_embedding, job, pool;
    end if;
    perform pg_catalog.set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
  end if;

  if tsq is not null then
    select array_agg(c.id order by c.rnk), array_agg(c.r order by c.rnk)
      into lex_ids, lex_scores
      from public._memory_lexical_candidates(tsq, pool) c;
  end if;

  -- Fuse: pure array work, no table access.
  -- (Multi-array unnest is FROM-clause syntax, not a function: it cannot be qualified.)
  select array_agg(f.id order by f.s desc), array_agg(f.s order by f.s desc),
         array_agg(f.vr order by f.s desc), array_agg(f.lr order by f.s desc),
         array_agg(f.sim order by f.s desc), array_agg(f.sc order by f.s desc)
    into fused_ids, fused_s, fused_vr, fused_lr, fused_sim, fused_sc
    from (select coalesce(v.id, l.id) as id, v.rnk::int as vr, l.rnk::int as lr, v.sim, l.sc,
                 (coalesce(1.0 / (rrf_k + v.rnk), 0) + coalesce(1.0 / (rrf_k + l.rnk), 0))::float8
                   as s
            from unnest(vec_ids, vec_sims) with ordinality as v(id, sim, rnk)
            full join unnest(lex_ids, lex_scores) with ordinality as l(id, sc, rnk)
              on l.id = v.id) f;

  -- Fetch the candidates by primary key (job_id, id = ANY(...)): written as a join on the
  -- fused list, the planner chose to walk the person's whole import (150 ms at 100k chunks).
  -- Dynamic, so it is planned with the real values each time.
  -- The same text said in several conversations (a question asked again, a pasted error)
  -- is one result, at its best rank: five copies would hide four other memories.
  return query execute
  'select d.id, d.conversation_id, d.conversation_title, d.content,
          d.first_message_at, d.last_message_at, d.s, d.vr, d.lr, d.sim, d.sc
     from (select distinct on (pg_catalog.md5(m.content))
                  m.id, m.conversation_id, m.conversation_title, m.content,
                  m.first_message_at, m.last_message_at, f.s, f.vr, f.lr, f.sim, f.sc
             from public.memory_chunks m
             join unnest($2, $3, $4, $5, $6, $7) as f(id, s, vr, lr, sim, sc) on f.id = m.id
            where m.job_id = $1 and m.id = any($2)
            order by pg_catalog.md5(m.content), f.s desc, f.vr nulls last, f.lr nulls last)
          as d
    order by d.s desc, d.vr nulls last, d.lr nulls last
    limit $8'
  using job, fused_ids, fused_s, fused_vr, fused_lr, fused_sim, fused_sc, match_count;
end
$$;

-- The text helpers run inside match_memories (as the person) and in the generated column
-- (as the worker inserting chunks); nobody else needs them, the Storage role included.
revoke all on function public.cjk_bigrams(text), public.memory_lexemes(text),
  public.memory_search_query(text) from public, anon;
grant execute on function public.cjk_bigrams(text), public.memory_lexemes(text),
  public.memory_search_query(text) to authenticated, service_role, import_worker;

-- People search their own memory; anon and PUBLIC may not call it at all.
revoke all on function public.match_memories(vector, text, int, text, int)
  from public, anon;
grant execute on function public.match_memories(vector, text, int, text, int)
  to authenticated, service_role;

-- The service's POST /v1/search verifies the person's access token itself and then runs
-- match_memories as that person (SET LOCAL ROLE authenticated plus their claims), exactly
-- as PostgREST does, so RLS is what limits the result. It logs in as its own role for that,
-- import_searcher (20261130900000_search_role.sql): the worker role is never a member of
-- `authenticated`, or its credentials could read every person's memory (pitfall 3).
