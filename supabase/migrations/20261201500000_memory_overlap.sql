-- Memory search: five slots hold five different memories (issue 11, recall).
--
-- The "person" chunk policy now also stores each first-person sentence the person typed
-- as a chunk of its own (pipeline/exports/statements.py): "I'm a civil engineer at a bridge
-- project." said inside a request for help with a self-review. Embedded alone, that
-- sentence is what "Where am I employed?" finds; embedded inside the request it ranked
-- 26th to 31st on the benchmark persons. But a question that finds the sentence often finds the message it came
-- from as well, and the two would take two of the five slots with one memory.
--
-- match_memories therefore shows such a pair once: as the message (it says what the
-- sentence was about), at the better of the two ranks, with the better score. A result is
-- "held" by another when both are of the same conversation and the other's text contains
-- its text after the leading "User: " label every person chunk starts with. Identical
-- texts were already one result (distinct on md5). Everything else is the function of
-- 20261130400000_memory_search.sql unchanged: signature, grants, security, plans.

set search_path = public, extensions;

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
  -- Then overlap: a sentence chunk and the message chunk that holds it (same conversation,
  -- the message's text contains the sentence's "body", its text after the "User: " label
  -- every person chunk starts with) are one memory. The message is what is shown, since
  -- it says what the sentence was about ("I love it but I do it alone." alone says
  -- nothing), at the better of the two ranks and with the better score. The self-joins
  -- compare only candidates of one conversation: a few rows, no table access.
  return query execute
  'with d as (
     select distinct on (pg_catalog.md5(m.content))
            m.id, m.conversation_id, m.conversation_title, m.content,
            m.first_message_at, m.last_message_at, f.s, f.vr, f.lr, f.sim, f.sc
       from public.memory_chunks m
       join unnest($2, $3, $4, $5, $6, $7) as f(id, s, vr, lr, sim, sc) on f.id = m.id
      where m.job_id = $1 and m.id = any($2)
      order by pg_catalog.md5(m.content), f.s desc, f.vr nulls last, f.lr nulls last
   ),
   c as (
     select d.*,
            pg_catalog.row_number() over (order by d.s desc, d.vr nulls last,
                                                   d.lr nulls last, d.id) as pos,
            pg_catalog.regexp_replace(d.content, ''^User: '', '''') as body
       from d
   ),
   -- Each candidate with the best position and score among the candidates it holds.
   g as (
     select c.*, p.best_pos, p.best_s
       from c,
            lateral (select pg_catalog.min(i.pos) as best_pos, pg_catalog.max(i.s) as best_s
                       from c i
                      where i.conversation_id = c.conversation_id
                        and (i.pos = c.pos
                             or (i.body <> '''' and pg_catalog.strpos(c.content, i.body) > 0)))
              as p
   )
   select g.id, g.conversation_id, g.conversation_title, g.content,
          g.first_message_at, g.last_message_at, g.best_s, g.vr, g.lr, g.sim, g.sc
     from g
    where not exists (   -- held by a longer candidate of its conversation: shown as that
            select 1 from c o
             where o.conversation_id = g.conversation_id and o.pos <> g.pos
               and g.body <> '''' and pg_catalog.strpos(o.content, g.body) > 0
               and (pg_catalog.length(o.content) > pg_catalog.length(g.content)
                    or (pg_catalog.length(o.content) = pg_catalog.length(g.content)
                        and o.pos < g.pos)))
    order by g.best_pos
    limit $8'
  using job, fused_ids, fused_s, fused_vr, fused_lr, fused_sim, fused_sc, match_count;
end
$$;

-- create or replace keeps the grants of 20261130400000 (authenticated and service_role may
-- call it; anon and PUBLIC may not): nothing to re-grant.
