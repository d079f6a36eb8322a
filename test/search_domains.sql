\set ECHO none
-- test/search_domains.sql: published listings in four domains of five hub
-- words each ("agent" nearly everywhere, words of one domain meeting far
-- more often than chance), for the suites of the walks over common words
-- (sql/search_walk, sql/search_order).  Set domains_prefix (slugs are
-- prefix-i), domains_creator (an existing user) and domains_count, and
-- setseed() first; \ir after test/fixture.sql.  Echo is off while it runs.
INSERT INTO agentmarket.agents (slug, creator_id, name, tagline, description, category, status, pricing_model,
                                github_repo_url, supported_relays, supported_models, tags,
                                total_hires, avg_rating, total_reviews, published_at)
SELECT :'domains_prefix' || '-' || i, :'domains_creator',
       initcap(w.w[1] || CASE WHEN i % 4 = 0 THEN ' ' || w.w[2] ELSE '' END),
       initcap(w.w[3] || ' ' || w.w[4]),
       CASE WHEN i % 10 = 0 THEN 'It handles ' ELSE 'This agent handles ' END || array_to_string(w.w[5:12], ' '),
       (ARRAY['finance','writing','coding','research'])[1 + (i * 7 + i / 5) % 4],
       'published', (ARRAY['per_session','per_task','free'])[1 + i % 3], 'https://g/' || :'domains_prefix' || i,
       (ARRAY['{slack}','{telegram,discord}','{whatsapp}','{}'])[1 + (i / 3) % 4]::text[],
       (ARRAY['{claude}','{gpt,gemini}','{gemini}'])[1 + (i / 2) % 3]::text[],
       ARRAY[w.w[13]],
       (i * 7919) % 700, ((i * 31) % 41) / 10.0 + 1, (i * 13) % 60,
       '2026-01-01'::timestamptz + (i % 1000) * interval '1 hour'
  FROM generate_series(1, :domains_count) i,
       LATERAL (SELECT 1 + i % 4 AS d) d,
       LATERAL (SELECT array_agg(CASE WHEN z.r < 0.55
                                      THEN (ARRAY[ARRAY['invoice','budget','expense','payroll','ledger'],
                                                  ARRAY['podcast','video','music','playlist','studio'],
                                                  ARRAY['github','deploy','server','database','debug'],
                                                  ARRAY['recipe','fitness','travel','garden','pet']])[d.d][1 + floor(z.r2 * 5)::int]
                                      ELSE (ARRAY['email','inbox','calendar','notes','summary','report','blog','support'])[1 + floor(z.r2 * 8)::int]
                                 END ORDER BY z.j) AS w
                  FROM (SELECT j, random() AS r, random() AS r2 FROM generate_series(1, 13 + 0 * i) j) z) w;
\set ECHO all
