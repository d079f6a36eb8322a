-- bench/search/corpus.sql: :published published and :drafts draft listings
-- in one INSERT (generate_series, no per-row function calls).
--
-- Every listing belongs to one of four domains.  Each domain has five hub
-- words (each in about 20% of all listings, i.e. most of its domain's) and
-- twenty domain words (Zipf within the domain); all listings share a global
-- Zipf vocabulary and the very common words "agent", "automate", "help",
-- "task".  So words of one domain co-occur a lot ("2-4 common words, many
-- matches") and hub words of different domains almost never ("2-4 words,
-- few common matches": only the planted cross-domain listings have them).
-- Names carry an invented three-syllable brand (the rare words).
-- Categories follow the domain (80%), relays, models and pricing are random.
SELECT setseed(:seed) \gset
INSERT INTO agentmarket.users (id, email, role)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'creator' || i || '@bench.example', 'creator'
  FROM generate_series(1, 500) i
ON CONFLICT DO NOTHING;

CREATE TEMP TABLE bench_vocab AS SELECT
  ARRAY[ARRAY['invoice','budget','expense','payroll','ledger'],
        ARRAY['podcast','video','music','playlist','studio'],
        ARRAY['github','deploy','server','database','debug'],
        ARRAY['recipe','fitness','travel','garden','pet']] AS hubs,
  ARRAY[ARRAY['tax','accounting','bank','loan','credit','mortgage','insurance','pension','refund','billing',
              'subscription','payment','portfolio','stock','crypto','trading','saving','retirement','debt','audit'],
        ARRAY['transcript','voice','image','design','photo','camera','edit','caption','subtitle','stream',
              'youtube','channel','thumbnail','animation','song','lyric','radio','film','trailer','editor'],
        ARRAY['code','review','pull','request','monitor','alert','incident','pipeline','api','webhook',
              'docker','kubernetes','terraform','cloud','backup','sql','query','test','bug','release'],
        ARRAY['cooking','meal','diet','workout','health','doctor','hotel','flight','booking','plant',
              'weather','dog','cat','vet','yoga','sleep','habit','hike','camping','nutrition']] AS dwords,
  string_to_array(
 'email inbox calendar meeting schedule notes summary research paper report writing blog draft '
 'translate translation customer support ticket sales lead crm contract compliance security password '
 'data analysis spreadsheet chart dashboard marketing campaign social twitter linkedin post content seo '
 'keyword website reminder todo journal study flashcard language tutor math physics chemistry biology '
 'history news digest feed rss article newsletter shopping price deal coupon home parenting kids school '
 'teacher student homework essay resume job interview hiring recruiting onboarding employee slack discord '
 'telegram whatsapp chat bot phone sms notification workflow integration zapier notion jira trello asana '
 'kanban sprint standup retro roadmap product feature documentation wiki knowledge search assistant '
 'companion coach mentor planner organizer tracker manager analyst writer scientist lawyer consultant '
 'advisor concierge receptionist secretary librarian archive storage file pdf document signature form '
 'survey feedback poll event conference webinar presentation slide pitch investor startup founder '
 'strategy okr goal metric kpi growth retention churn shipping inventory warehouse logistics supplier '
 'order ecommerce store catalog listing estate property rental charity volunteer', ' ') AS global,
  ARRAY['ka','zu','mor','lin','tek','va','dro','pix','quo','ren','sol','bri','nex','tor',
        'vel','gam','fyn','jor','lux','pem','rax','sib','tav','wen','yor','zel','cor','dal'] AS syl;

CREATE TEMP VIEW bench_rows (creator_id, slug, name, tagline, description, category, status,
    pricing_model, credits_per_session, github_repo_url, supported_relays, supported_models, tags,
    total_hires, avg_rating, total_reviews, published_at) AS
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 500), 12, '0'))::uuid,
       'agent-' || i,
       initcap(w.brand || ' ' || w.name_word || CASE WHEN random() < 0.3 THEN ' agent' ELSE '' END),
       initcap(w.tagline) || CASE WHEN random() < 0.4 THEN ' with ai' ELSE '' END,
       CASE WHEN random() < 0.95 THEN 'This agent ' ELSE 'It ' END
         || CASE WHEN random() < 0.8 THEN 'helps you automate ' ELSE 'handles ' END
         || w.d1 || '. ' || CASE WHEN random() < 0.7 THEN 'Every task ' ELSE 'Work ' END || 'runs on ' || w.d2
         || '. Built by ' || w.brand2 || ' for ' || w.d3
         || CASE WHEN i % 2500 = 7 THEN ' Also ' || v.hubs[1][1 + i / 2500 % 5] || ' ' || v.hubs[2][1 + i / 2500 % 5]
                                      || ' ' || v.hubs[3][1 + i / 2500 % 5] || ' ' || v.hubs[4][1 + i / 2500 % 5] || '.'
                 ELSE '' END,
       CASE WHEN random() < 0.8 THEN (ARRAY['finance','personal','marketing','writing','coding','support','productivity','research'])[2 * d.d - (i / 4 % 2)]
            ELSE (ARRAY['productivity','research','writing','coding','finance','marketing','support','personal'])[1 + floor(random() * 8)::int] END,
       CASE WHEN i <= :published THEN 'published' ELSE 'draft' END,
       (ARRAY['per_session','per_task','free'])[1 + floor(random() * 3)::int],
       10 + floor(random() * 90)::int,
       'https://github.com/bench/agent-' || i,
       (SELECT array_agg(x) FROM unnest(ARRAY['telegram','whatsapp','slack','discord']) x WHERE random() < 0.4 + 0 * i),
       (SELECT array_agg(x) FROM unnest(ARRAY['claude','gpt','gemini']) x WHERE random() < 0.5 + 0 * i),
       ARRAY[w.tag1, w.tag2],
       floor(exp(random() * 9))::int - 1,
       CASE WHEN r.n > 0 THEN round((1 + random() * 4)::numeric, 1) ELSE 0 END, r.n,
       CASE WHEN i <= :published THEN '2025-01-01'::timestamptz + i * interval '3 minutes' END
  FROM generate_series(1, :published + :drafts) i
 CROSS JOIN bench_vocab v
 CROSS JOIN LATERAL (SELECT 1 + i % 4 AS d) d
 CROSS JOIN LATERAL (SELECT floor(exp(random() * 6))::int - 1 + 0 * i AS n) r
 CROSS JOIN LATERAL (
    -- 39 word picks: 25% a hub word of the domain, 35% a domain word (Zipf),
    -- 40% a global word (Zipf: log-uniform rank).
    SELECT max(x.s) FILTER (WHERE x.j = 1) AS name_word,
           string_agg(x.s, ' ' ORDER BY x.j) FILTER (WHERE x.j BETWEEN 2 AND 6) AS tagline,
           max(x.s) FILTER (WHERE x.j = 7) AS tag1,
           max(x.s) FILTER (WHERE x.j = 8) AS tag2,
           string_agg(x.s, ' ' ORDER BY x.j) FILTER (WHERE x.j BETWEEN 9 AND 20) AS d1,
           string_agg(x.s, ' ' ORDER BY x.j) FILTER (WHERE x.j BETWEEN 21 AND 30) AS d2,
           string_agg(x.s, ' ' ORDER BY x.j) FILTER (WHERE x.j BETWEEN 31 AND 38) AS d3,
           max(v.syl[1 + floor(x.r2 * 28)::int] || v.syl[1 + floor(x.r3 * 28)::int] || v.syl[1 + floor(x.r * 28)::int])
               FILTER (WHERE x.j = 39) AS brand,
           max(v.syl[1 + floor(x.r2 * 28)::int] || v.syl[1 + floor(x.r3 * 28)::int] || v.syl[1 + floor(x.r * 28)::int])
               FILTER (WHERE x.j = 40) AS brand2
      FROM (SELECT j, r, r2, r3,
                   CASE WHEN r < 0.25 THEN v.hubs[d.d][1 + floor(r2 * 5)::int]
                        WHEN r < 0.60 THEN v.dwords[d.d][floor(exp(ln(3) + r2 * (ln(22.999) - ln(3))))::int - 2]
                        ELSE v.global[floor(exp(ln(30) + r2 * (ln(cardinality(v.global) + 29.999) - ln(30))))::int - 29] END AS s
              FROM (SELECT j, random() AS r, random() AS r2, random() AS r3 FROM generate_series(1, 40 + 0 * i) j) z) x) w;

\if :fast
-- Triggers off: the search columns computed here exactly as the trigger
-- agents_search_fields computes them, the vocabulary rebuilt afterwards.
SET session_replication_role = replica;
INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, status,
    pricing_model, credits_per_session, github_repo_url, supported_relays, supported_models, tags,
    total_hires, avg_rating, total_reviews, published_at, search_document, search_fields, search_static)
SELECT r.*,
       agentmarket_private.search_join(agentmarket_private.search_join(v.name_vector, v.head_vector),
           setweight(to_tsvector('english', r.description), 'C'))
         || agentmarket_private.search_filter_tokens(r.category, r.pricing_model, r.supported_relays, r.supported_models),
       array_to_tsvector(ARRAY(SELECT 'a/' || l FROM unnest(tsvector_to_array(v.name_vector)) l
                               UNION SELECT 'b/' || l FROM unnest(tsvector_to_array(v.head_vector)) l))
         || agentmarket_private.search_filter_tokens(r.category, r.pricing_model, r.supported_relays, r.supported_models),
       agentmarket_private.search_static_score(r.avg_rating, r.total_reviews, r.total_hires)
  FROM bench_rows r,
       LATERAL (SELECT setweight(to_tsvector('english', r.name), 'A') AS name_vector,
                       agentmarket_private.search_join(setweight(to_tsvector('english', r.tagline), 'B'),
                           setweight(to_tsvector('english', COALESCE(array_to_string(r.tags, ' '), '')), 'B')) AS head_vector) v;
RESET session_replication_role;
SELECT agentmarket.rebuild_search_vocabulary() AS vocabulary_words;
\else
INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, status,
    pricing_model, credits_per_session, github_repo_url, supported_relays, supported_models, tags,
    total_hires, avg_rating, total_reviews, published_at)
SELECT * FROM bench_rows;
\endif
ANALYZE agentmarket.agents;
ANALYZE agentmarket_private.search_vocabulary;
ANALYZE agentmarket_private.search_typo_index;
