\set ECHO none
-- test/search_exhaustive.sql: what a page of search_agents must equal, for
-- the search suites that compare every strategy with it (\ir after
-- test/fixture.sql): scoring every match, or sorting every match by a
-- column.  Echo is off while it runs.
-- All matches scored, best first, after the cursor: what a page must equal.
CREATE FUNCTION pg_temp.exhaustive(p_query text, p_category text, p_relays text[], p_models text[], p_pricing text,
                                   p_k int, p_after text DEFAULT NULL) RETURNS uuid[]
LANGUAGE sql AS $$
    WITH p AS MATERIALIZED (SELECT agentmarket_private.search_prepare(p_query) AS p),
    c AS MATERIALIZED (SELECT split_part(t, '|', 2)::float8 AS f, split_part(t, '|', 4)::uuid AS id
                         FROM (SELECT convert_from(decode(rpad(translate(p_after, '-_', '+/'),
                                   (length(p_after) + 3) / 4 * 4, '='), 'base64'), 'UTF8') AS t
                                WHERE p_after IS NOT NULL) x)
    SELECT COALESCE(array_agg(y.id ORDER BY y.score DESC, y.id DESC), '{}') FROM (
      SELECT x.id, x.score FROM (
        SELECT a.id, agentmarket_private.search_blend(agentmarket_private.search_text_score(a.search_document,
                   (p.p).lexemes, (p.p).groups, (p.p).factors, (p.p).prefixes, (p.p).ngroups), a.search_static) AS score
          FROM agentmarket.agents a, p
         WHERE a.status = 'published' AND a.search_document @@ (p.p).query
           AND (p_category IS NULL OR a.category = p_category)
           AND (p_relays IS NULL OR a.supported_relays && p_relays)
           AND (p_models IS NULL OR a.supported_models && p_models)
           AND (p_pricing IS NULL OR a.pricing_model = p_pricing)) x
       WHERE NOT EXISTS (SELECT FROM c) OR EXISTS (SELECT FROM c WHERE (x.score, x.id) < (c.f, c.id))
       ORDER BY x.score DESC, x.id DESC LIMIT p_k) y
$$;
-- Every match of a query sorted by a column (rating, popular, newest), within
-- filters: the ids every page of such a search, read to its end, must give.
CREATE FUNCTION pg_temp.sorted(q text, sort text, category text, relays text[], pricing text) RETURNS uuid[]
LANGUAGE plpgsql AS $$
DECLARE
    want uuid[];
BEGIN
    EXECUTE format($f$SELECT array_agg(id) FROM (SELECT a.id FROM agentmarket.agents a
                    WHERE a.status = 'published' AND a.search_document @@ $1 AND ($2::text IS NULL OR a.category = $2)
                      AND ($3::text[] IS NULL OR a.supported_relays && $3) AND ($4::text IS NULL OR a.pricing_model = $4)
                    ORDER BY %s) x$f$,
                   CASE sort WHEN 'rating' THEN 'COALESCE(a.avg_rating, 0) DESC, a.total_reviews DESC, a.id DESC'
                             WHEN 'popular' THEN 'a.total_hires DESC, a.id DESC'
                             ELSE 'a.published_at DESC, a.id DESC' END)
       INTO want USING (agentmarket_private.search_prepare(q)).query, category, relays, pricing;
    RETURN COALESCE(want, '{}');
END $$;
\set ECHO all
