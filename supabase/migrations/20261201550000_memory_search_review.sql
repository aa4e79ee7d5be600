-- Memory search, after a fresh-eyes review (issue 11, findings F2-F5).
--
-- * Long questions (F2). /v1/search cuts a question to 2,000 characters, but the app may
--   call match_memories straight through PostgREST, where nothing limits the text, and
--   cjk_bigrams took substr(run, i, 2) for every i of a CJK run: each substr walks the
--   multibyte string from its start, so a run of n characters cost n^2. A 16,000-character
--   Chinese question held the database for 4.2 s per call, with no rate limit.
--   match_memories and memory_search_query now read the first 2,000 characters only, and
--   cjk_bigrams splits a run into its characters once and pairs each with the next
--   (16,000 characters: 3.6 s before, 28 ms after; match_memories with a 100,000-character
--   Chinese or a 1 MB English question: 5-10 ms).
-- * One memory, one slot (F3). The same request pasted into another chat gets another
--   answer, so the two chunks differ in their answer's start and both took a slot.
--   Candidates now fold on what the person said (the chunk's text before its answer).
-- * A folded result's score and parts agree (F4): it carries the ranks and similarity of
--   the candidate that earned its position, not those of the row shown.
-- * match_count near the int maximum (F5) overflowed while sizing the pool, before the
--   range check gave its own message; the pool is sized after the check.
--
-- Signatures, security (invoker), plans and grants are those of
-- 20261130400000_memory_search.sql and 20261201500000_memory_overlap.sql: create or
-- replace keeps every grant.

set search_path = public, extensions;

-- Overlapping two-character pieces of every CJK run (Han, kana, Hangul), e.g.
-- '小动物' -> {小动, 动物}; a run of one character is kept whole. The same pieces as
-- before for every text (the stored lexemes column is not recomputed), in time linear in
-- the run: string_to_array(run, null) splits it into characters in one pass and lead()
-- pairs each with the next.
create or replace function public.cjk_bigrams(content text)
returns tsvector
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(pg_catalog.array_to_tsvector(array_agg(distinct g.piece)), ''::tsvector)
    from pg_catalog.regexp_matches(
           content,
           '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+', 'g') as m(run),
         lateral (
           select ch.c || coalesce(pg_catalog.lead(ch.c) over (order by ch.i), '') as piece,
                  ch.i, pg_catalog.count(*) over () as n
             from pg_catalog.unnest(pg_catalog.string_to_array(m.run[1], null))
                  with ordinality as ch(c, i)
         ) as g
   where g.n = 1 or g.i < g.n   -- the last character of a longer run starts no pair
$$;

-- A person's question as a tsquery (see 20261130400000_memory_search.sql for the rules,
-- unchanged): now of its first 2,000 characters only, like match_memories.
create or replace function public.memory_search_query(query text)
returns tsquery
language sql stable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  with capped as (select pg_catalog.left(query, 2000) as question),
  tokens as (
    select distinct pg_catalog.lower(t.token) as token
      from capped, pg_catalog.ts_parse('default', capped.question) as t
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
    select pg_catalog.unnest(pg_catalog.tsvector_to_array(public.cjk_bigrams(capped.question)))
      from capped
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
    select pg_catalog.length(pg_catalog.btrim(capped.question, ' ?？。!！')) <= 4
           and pg_catalog.btrim(capped.question, ' ?？。!！')
               ~ '^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+$' as yes
      from capped
  )
  select case
           when c.n = 0 then null
           when c.n <= 2 or (select sc.yes from short_cjk sc) then (select pg_catalog.string_agg(q, ' | ') from quoted)::tsquery
           else (select pg_catalog.string_agg('(' || a.q || ' & ' || b.q || ')', ' | ')
                   from quoted a join quoted b on a.q < b.q)::tsquery
         end
    from counted c
$$;

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
  -- (Sized after match_count is checked: match_count * 2 overflows near the int maximum.)
  pool int;
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
  pool := least(greatest(match_count * 2, 20), 200);
  -- A question, not a document: the service cuts it to 2,000 characters before embedding
  -- (pipeline/search.py MAX_QUERY_CHARS), and this is the same cut for callers through
  -- PostgREST, which have no other length limit.
  query_text := pg_catalog.left(query_text, 2000);

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
  --
  -- One memory, one result. Candidates fold together when
  --   * the person said the same thing: the same chunk text, or, for a chunk of one message
  --     the person wrote (starts with "User: ", holds no second "User: " turn), the same
  --     text before its answer ("said"). A request pasted again into a new chat gets
  --     another answer, but it is the same memory. Only for a message of at least 40 bytes
  --     (a sentence: 40 Latin letters, 13 CJK characters): a short reply such as "Yes" is
  --     only a memory together with what it answered;
  --   * a longer candidate of the same conversation holds its text after the "User: " label
  --     (a first-person sentence chunk and the message it came from; 20261201500000).
  -- A memory is shown as its best-ranked candidate that no other holds (the message: it
  -- says what the sentence was about), at the position of its best-ranked candidate and
  -- with that candidate's score and parts (ranks, similarity, lexical score), so a
  -- result's score is always 1/(rrf_k + vector_rank) + 1/(rrf_k + lexical_rank) of the
  -- parts it comes with. The self-join compares candidates of one conversation: a few
  -- rows, no table access.
  return query execute
  'with c as (
     select m.id, m.conversation_id, m.conversation_title, m.content,
            m.first_message_at, m.last_message_at, f.s, f.vr, f.lr, f.sim, f.sc,
            pg_catalog.row_number() over (order by f.s desc, f.vr nulls last,
                                                   f.lr nulls last, m.id) as pos,
            pg_catalog.regexp_replace(m.content, ''^User: '', '''') as body,
            pg_catalog.md5(
              case when m.content like ''User: %''
                        and pg_catalog.strpos(m.content, E''\n\nUser: '') = 0
                        and pg_catalog.octet_length(
                              pg_catalog.split_part(m.content, E''\n\nAssistant: '', 1)) >= 46
                   then pg_catalog.split_part(m.content, E''\n\nAssistant: '', 1)
                   else m.content end) as said
       from public.memory_chunks m
       join unnest($2, $3, $4, $5, $6, $7) as f(id, s, vr, lr, sim, sc) on f.id = m.id
      where m.job_id = $1 and m.id = any($2)
   ),
   -- Each candidate with the memory it belongs to: that of the longest candidate of its
   -- conversation holding its text (that one is held by none), else its own.
   k as (
     select c.*, h.said is not null as held, coalesce(h.said, c.said) as memory
       from c
       left join lateral (
              select o.said from c o
               where o.conversation_id = c.conversation_id and o.pos <> c.pos
                 and c.body <> '''' and pg_catalog.strpos(o.content, c.body) > 0
                 and (pg_catalog.length(o.content) > pg_catalog.length(c.content)
                      or (pg_catalog.length(o.content) = pg_catalog.length(c.content)
                          and o.pos < c.pos))
               order by pg_catalog.length(o.content) desc, o.pos
               limit 1) h on true
   ),
   best as (      -- the best-ranked candidate of each memory: position, score and parts
     select distinct on (k.memory) k.memory, k.pos, k.s, k.vr, k.lr, k.sim, k.sc
       from k
      order by k.memory, k.pos
   ),
   shown as (     -- what each memory is shown as: its best-ranked candidate not held
     select distinct on (k.memory) k.*
       from k
      where not k.held
      order by k.memory, k.pos
   )
   select s.id, s.conversation_id, s.conversation_title, s.content,
          s.first_message_at, s.last_message_at, b.s, b.vr, b.lr, b.sim, b.sc
     from best b
     join shown s on s.memory = b.memory
    order by b.pos
    limit $8'
  using job, fused_ids, fused_s, fused_vr, fused_lr, fused_sim, fused_sc, match_count;
end
$$;

-- create or replace keeps the grants of 20261130400000: authenticated, service_role and
-- import_worker may call the text helpers (they run inside match_memories as the person,
-- and in the generated lexemes column as the worker), authenticated and service_role
-- match_memories; anon and PUBLIC none of them. Nothing to re-grant.
