-- search_relevance.sql: the top-k by relevance of search_agents when some
-- words are common: the walk in static-score order with tiers fetched
-- through GIN and an early stop (search_walk).  search_agents
-- (search_agents.c) picks it, or scoring every match, from estimates; the per-word bounds the tiers use come from search_prepare
-- (search.sql), whose constants are the scorer's (search.c).

-- The tiers of a query: every combination of where each of its first three
-- words matches (name; tagline or tags but not the name; neither), with
-- the best text score a listing in the tier can have (a further word counts
-- at its best value anywhere), its size estimated as if words were
-- independent and, when some word must be in a name, tagline or tags, the
-- search_fields condition that selects the tier through its GIN index.
-- Tiers nothing can be in are left out.
CREATE FUNCTION agentmarket_private.search_tiers(p agentmarket_private.search_plan)
RETURNS TABLE (bound double precision, estimate double precision, driver text, condition text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, agentmarket_private, pg_temp
AS $$
DECLARE
    code integer;
    level integer;
    bounds double precision[];
    parts text[];
    required text[];
    positive boolean;
    n double precision := GREATEST(p.published, 1);
    possible boolean;
BEGIN
    IF p.ngroups OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'search tiers need a word' USING ERRCODE = '22023';
    END IF;
    FOR t IN 0 .. (3 OPERATOR(pg_catalog.^) LEAST(p.ngroups, 3))::integer OPERATOR(pg_catalog.-) 1 LOOP
        code := t; bounds := '{}'; parts := '{}'; required := '{}'; positive := false;
        estimate := n; possible := true;
        FOR g IN 1 .. LEAST(p.ngroups, 3) LOOP
            level := code OPERATOR(pg_catalog.%) 3;
            code := code OPERATOR(pg_catalog./) 3;
            IF level OPERATOR(pg_catalog.=) 0 THEN          -- in the name
                possible := possible AND p.group_name_bound[g] OPERATOR(pg_catalog.>) 0;
                bounds := bounds OPERATOR(pg_catalog.||)
                          GREATEST(p.group_name_bound[g], p.group_head_bound[g], p.group_body_bound[g]);
                estimate := estimate OPERATOR(pg_catalog.*) p.group_name_docs[g] OPERATOR(pg_catalog./) n;
                parts := parts OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_name_terms[g]);
                required := required OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_name_terms[g]);
                positive := true;
            ELSIF level OPERATOR(pg_catalog.=) 1 THEN       -- in the tagline or tags, not the name
                possible := possible AND p.group_head_bound[g] OPERATOR(pg_catalog.>) 0;
                bounds := bounds OPERATOR(pg_catalog.||) GREATEST(p.group_head_bound[g], p.group_body_bound[g]);
                estimate := estimate OPERATOR(pg_catalog.*) p.group_head_docs[g] OPERATOR(pg_catalog./) n;
                parts := parts OPERATOR(pg_catalog.||)
                         pg_catalog.format('(%s) & !(%s)', p.group_head_terms[g], p.group_name_terms[g]);
                required := required OPERATOR(pg_catalog.||) pg_catalog.format('(%s)', p.group_head_terms[g]);
                positive := true;
            ELSE                                            -- only in the description, or nowhere
                bounds := bounds OPERATOR(pg_catalog.||) p.group_body_bound[g];
                -- Without an OR every word must match: here, only in a description.
                IF NOT p.any_word THEN
                    possible := possible AND p.group_body_docs[g] OPERATOR(pg_catalog.>) 0;
                    estimate := estimate OPERATOR(pg_catalog.*) p.group_body_docs[g] OPERATOR(pg_catalog./) n;
                END IF;
                parts := parts OPERATOR(pg_catalog.||)
                         pg_catalog.format('!(%s) & !(%s)', p.group_name_terms[g], p.group_head_terms[g]);
            END IF;
        END LOOP;
        -- Words after the third: their best value anywhere, in every tier.
        FOR g IN 4 .. p.ngroups LOOP
            bounds := bounds OPERATOR(pg_catalog.||)
                      GREATEST(p.group_name_bound[g], p.group_head_bound[g], p.group_body_bound[g]);
            IF NOT p.any_word THEN
                estimate := estimate OPERATOR(pg_catalog.*) p.group_docs[g] OPERATOR(pg_catalog./) n;
            END IF;
        END LOOP;
        CONTINUE WHEN NOT possible;
        bound := search_text_bound(bounds);
        -- The GIN scan intersects the words that must be present (the
        -- all-description tier has none); the exclusions are checked on the rows.
        driver := CASE WHEN positive THEN pg_catalog.format('a.search_fields @@ %L::tsquery',
                                                            pg_catalog.array_to_string(required, ' & ')) END;
        condition := pg_catalog.format('a.search_fields @@ %L::tsquery', pg_catalog.array_to_string(parts, ' & '));
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_tiers(agentmarket_private.search_plan) IS
    'The possible tiers of a query (where each of its first three words matches), with their best text score, estimated size, GIN condition and full condition on search_fields.';

-- The k best of two lists of (id, score), best first; a listing in both
-- counts once.  (No SET clause, every name qualified: it inlines.)
CREATE FUNCTION agentmarket_private.search_merge_top(
    a_ids uuid[], a_scores double precision[], b_ids uuid[], b_scores double precision[], k integer,
    OUT ids uuid[], OUT scores double precision[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(pg_catalog.array_agg(u.id ORDER BY u.score DESC, u.id DESC), '{}'),
           COALESCE(pg_catalog.array_agg(u.score ORDER BY u.score DESC, u.id DESC), '{}')
      FROM (SELECT v.id, v.score FROM (
                SELECT * FROM ROWS FROM (pg_catalog.unnest(a_ids), pg_catalog.unnest(a_scores)) a(id, score)
                UNION
                SELECT * FROM ROWS FROM (pg_catalog.unnest(b_ids), pg_catalog.unnest(b_scores)) b(id, score)) v
             ORDER BY v.score DESC, v.id DESC LIMIT k) u
$$;
COMMENT ON FUNCTION agentmarket_private.search_merge_top(uuid[], double precision[], uuid[], double precision[], integer) IS
    'The k best (id, score) of two lists, best first (ties by id), a listing in both counted once.';

-- Step 3 (common words): the walk in static-score order.  exact: it stopped
-- because scoring every match is cheaper (search_agents then does).
CREATE FUNCTION agentmarket_private.search_walk(r agentmarket_private.search_request,
    OUT top_ids uuid[], OUT top_scores double precision[], OUT exact boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, agentmarket, agentmarket_private, pg_temp
AS $$
DECLARE
    p agentmarket_private.search_plan := r.plan;
    k integer := r.page_size;
    published double precision := r.published;
    filters text := search_filter_sql();
    tier record;
    max_static double precision;
    dense_bound double precision;
    last_static double precision;
    last_id uuid;
    walked integer := 0;
    hits integer := 0;
    hits_seen integer;
    projected double precision;
    tiers_done boolean := false;
    correction double precision;
    share double precision := (search_scoring()).text_share;
    static_floor double precision;
    tier_limit double precision;
    walk_ids uuid[];
    walk_scores double precision[];
    m integer;
    n integer;
    b double precision;
BEGIN
    top_ids := '{}'; top_scores := '{}'; exact := false;
    SELECT a.search_static INTO max_static FROM agentmarket.agents a
     WHERE a.status OPERATOR(pg_catalog.=) 'published'
     ORDER BY a.search_static DESC, a.id DESC LIMIT 1;
    -- Tiers no index finds cheaply are walked; the walk also sees every
    -- tier whose bound is no higher, so only better ones are fetched.  A
    -- tier of t listings costs t to fetch, and about k * published /
    -- (t * fsel) to find k of in the walk: fetched up to the t where the
    -- two meet (at least 1,500; 7,800 at 1M listings with a one-third filter).
    tier_limit := GREATEST(1500, pg_catalog.sqrt(k OPERATOR(pg_catalog.*) published OPERATOR(pg_catalog./) r.filter_share));
    m := 64;
    LOOP
        -- The next m listings in static order (the static-score index, or
        -- the category's; continuing after the last one seen), scored
        -- when they match.
        EXECUTE pg_catalog.format($q$
            SELECT pg_catalog.count(*)::integer, pg_catalog.count(x.score)::integer,
                   (pg_catalog.array_agg(x.s ORDER BY x.s, x.id))[1],
                   (pg_catalog.array_agg(x.id ORDER BY x.s, x.id))[1],
                   COALESCE(pg_catalog.array_agg(x.id) FILTER (WHERE x.score IS NOT NULL
                       AND ($13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid))), '{}'),
                   COALESCE(pg_catalog.array_agg(x.score) FILTER (WHERE x.score IS NOT NULL
                       AND ($13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid))), '{}')
              FROM (SELECT a.id, a.search_static AS s,
                           CASE WHEN a.search_document @@ $1 THEN agentmarket_private.search_blend(
                               agentmarket_private.search_text_score(a.search_document, $2, $3, $4, $5, $6),
                               a.search_static) END AS score
                      FROM agentmarket.agents a
                     WHERE %s AND ($16::uuid IS NULL OR (a.search_static, a.id) < ($15::float8, $16::uuid))
                     ORDER BY a.search_static DESC, a.id DESC LIMIT $14) x$q$,
            filters)
        INTO n, hits_seen, last_static, last_id, walk_ids, walk_scores
        USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups,
              r.category, r.tags, r.relays, r.models, r.pricing_model, r.after_score, r.after_id, m, last_static, last_id;
        walked := walked OPERATOR(pg_catalog.+) n;
        hits := hits OPERATOR(pg_catalog.+) hits_seen;
        -- The k best of both lists (a listing in both counts once).
        SELECT t.ids, t.scores INTO top_ids, top_scores
          FROM search_merge_top(top_ids, top_scores, walk_ids, walk_scores, k) t;
        EXIT WHEN n OPERATOR(pg_catalog.<) m;       -- every listing seen: the page is exact
        -- Matches projected from the density so far; scoring them costs
        -- about a third of walking as many listings.
        projected := hits::double precision OPERATOR(pg_catalog.*) published OPERATOR(pg_catalog.*) r.filter_share
                     OPERATOR(pg_catalog./) walked;
        IF projected OPERATOR(pg_catalog.<=) r.exhaustive_limit OR walked OPERATOR(pg_catalog.*) 3 OPERATOR(pg_catalog.>=) projected THEN
            exact := true;
            EXIT;
        END IF;
        IF NOT tiers_done THEN
            tiers_done := true;
            -- Words that meet more often than if they were independent make
            -- every tier that much larger: the density seen so far corrects
            -- the tiers' estimates (words of one domain, say).
            correction := GREATEST(1, hits::double precision OPERATOR(pg_catalog./) walked
                                      OPERATOR(pg_catalog.*) published OPERATOR(pg_catalog./) GREATEST(r.joint, 1));
            SELECT pg_catalog.max(x.bound) INTO dense_bound FROM search_tiers(p) x
             WHERE x.driver IS NULL OR x.estimate OPERATOR(pg_catalog.*) correction OPERATOR(pg_catalog.>) tier_limit;
            FOR tier IN SELECT * FROM search_tiers(p) x ORDER BY x.bound DESC, x.estimate LOOP
                IF tier.driver IS NULL OR tier.estimate OPERATOR(pg_catalog.*) correction OPERATOR(pg_catalog.>) tier_limit
                   OR tier.bound OPERATOR(pg_catalog.<=) dense_bound THEN
                    dense_bound := GREATEST(dense_bound, tier.bound);
                    CONTINUE;
                END IF;
                CONTINUE WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
                          AND top_scores[k] OPERATOR(pg_catalog.>) search_blend(tier.bound, max_static);
                -- With the page full, only listings whose static score can lift
                -- them to it are read: blend(bound, static) >= the k-th score
                -- needs static >= (k-th - share * bound) / (1 - share), less a
                -- margin for the blend's rounding.
                static_floor := CASE WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k THEN
                    (top_scores[k] OPERATOR(pg_catalog.-) share OPERATOR(pg_catalog.*) tier.bound)
                    OPERATOR(pg_catalog./) (1 OPERATOR(pg_catalog.-) share) OPERATOR(pg_catalog.-) 1e-6 END;
                EXECUTE pg_catalog.format($q$
                    SELECT COALESCE(pg_catalog.array_agg(y.id ORDER BY y.score DESC, y.id DESC), '{}'),
                           COALESCE(pg_catalog.array_agg(y.score ORDER BY y.score DESC, y.id DESC), '{}')
                      FROM (SELECT x.id, x.score FROM (
                              SELECT a.id, agentmarket_private.search_blend(agentmarket_private.search_text_score(
                                         a.search_document, $2, $3, $4, $5, $6), a.search_static) AS score
                                FROM agentmarket.agents a
                               WHERE %s AND %s AND (%s AND a.search_document @@ $1) IS TRUE
                                 AND ($15::float8 IS NULL OR a.search_static >= $15::float8)) x
                             WHERE $13::uuid IS NULL OR (x.score, x.id) < ($12::float8, $13::uuid)
                             ORDER BY x.score DESC, x.id DESC LIMIT $14) y$q$,
                    filters, tier.driver, tier.condition)
                INTO walk_ids, walk_scores
                USING p.query, p.lexemes, p.groups, p.factors, p.prefixes, p.ngroups,
                      r.category, r.tags, r.relays, r.models, r.pricing_model, r.after_score, r.after_id, k,
                      static_floor;
                SELECT t.ids, t.scores INTO top_ids, top_scores
                  FROM search_merge_top(top_ids, top_scores, walk_ids, walk_scores, k) t;
            END LOOP;
        END IF;
        EXIT WHEN dense_bound IS NULL;              -- every tier was fetched whole
        b := search_blend(dense_bound, last_static);
        -- Static scores lie on a 1e-6 grid: a tie with b means the same
        -- static score and, further down the walk, a smaller id.
        EXIT WHEN pg_catalog.cardinality(top_ids) OPERATOR(pg_catalog.=) k
              AND (top_scores[k] OPERATOR(pg_catalog.>) b
                   OR (top_scores[k] OPERATOR(pg_catalog.=) b AND top_ids[k] OPERATOR(pg_catalog.>=) last_id));
        m := m OPERATOR(pg_catalog.*) 2;
    END LOOP;
    RAISE DEBUG 'search_agents: estimate %, exhaustive %, listings walked %, matches seen %', p.estimate, exact, walked, hits;
END
$$;
COMMENT ON FUNCTION agentmarket_private.search_walk(agentmarket_private.search_request) IS
    'The relevance top-k of a search with common words: a walk in static-score order, tiers fetched through GIN, an early stop on the tier bounds; exact when scoring every match is cheaper.';
