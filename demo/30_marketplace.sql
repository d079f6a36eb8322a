-- The marketplace: creators submit their listings, an admin reviews them,
-- anyone searches (typos, prefixes, facets), Linus hires an agent and
-- reviews it.  Every call goes through the functions PostgREST exposes, as
-- the user whose JWT it carries.
CREATE FUNCTION pg_temp.as_user(p_user uuid) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims', json_build_object('sub', p_user)::text, false);
    SELECT set_config('role', 'authenticated', false);
$$;
CREATE FUNCTION pg_temp.as_anon() RETURNS void LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims', '', false);
    SELECT set_config('role', 'anon', false);
$$;
\set ada '''00000000-0000-4000-8000-0000000c0001'''
\set grace '''00000000-0000-4000-8000-0000000c0002'''
\set linus '''00000000-0000-4000-8000-0000000e0001'''
\set ops '''00000000-0000-4000-8000-0000000a0001'''

\echo 'Ada submits Inbox Zero and Paper Scout for review; Grace submits Ghostwriter and Standup Bot:'
SELECT pg_temp.as_user(:ada) \g /dev/null
SELECT slug, status FROM agentmarket.submit_agent_for_review('00000000-0000-4000-8000-00000000a9e1')
UNION ALL SELECT slug, status FROM agentmarket.submit_agent_for_review('00000000-0000-4000-8000-00000000a9e2');
SELECT pg_temp.as_user(:grace) \g /dev/null
SELECT slug, status FROM agentmarket.submit_agent_for_review('00000000-0000-4000-8000-00000000a9e3')
UNION ALL SELECT slug, status FROM agentmarket.submit_agent_for_review('00000000-0000-4000-8000-00000000a9e4');

\echo 'The admin approves three and rejects Ghostwriter; Grace fixes it and it is approved on the second pass:'
SELECT pg_temp.as_user(:ops) \g /dev/null
SELECT slug, status, rejection_reason FROM agentmarket.approve_agent('00000000-0000-4000-8000-00000000a9e1')
UNION ALL SELECT slug, status, rejection_reason FROM agentmarket.approve_agent('00000000-0000-4000-8000-00000000a9e2')
UNION ALL SELECT slug, status, rejection_reason FROM agentmarket.approve_agent('00000000-0000-4000-8000-00000000a9e4')
UNION ALL SELECT slug, status, rejection_reason FROM agentmarket.reject_agent('00000000-0000-4000-8000-00000000a9e3',
                                                                             'The description promises a voice it does not show.');
SELECT pg_temp.as_user(:grace) \g /dev/null
SELECT slug, status FROM agentmarket.submit_agent_for_review('00000000-0000-4000-8000-00000000a9e3');
SELECT pg_temp.as_user(:ops) \g /dev/null
SELECT slug, status, published_at IS NOT NULL AS has_published_at
  FROM agentmarket.approve_agent('00000000-0000-4000-8000-00000000a9e3');

\echo
\echo 'Anyone (anon) searches.  A typo: "emial" finds the email agent:'
SELECT pg_temp.as_anon() \g /dev/null
SELECT name, tagline, round(score::numeric, 3) AS score FROM agentmarket.search_agents('emial');
\echo 'Typing as you go: "summ" matches summaries and summarises as a prefix:'
SELECT name, tagline, round(score::numeric, 3) AS score FROM agentmarket.search_agents('research summ');
\echo 'Everything on Slack, newest first, and the facets of the whole catalogue:'
SELECT name, category, pricing_model, supported_relays
  FROM agentmarket.search_agents(relays => '{slack}', sort => 'newest');
SELECT facet, value, count FROM agentmarket.agent_facets() ORDER BY facet, count DESC, value;

\echo
\echo 'Linus hires Inbox Zero in Frankfurt: an instance in provisioning running the current version,'
\echo 'and its Fly provisioning job, in one transaction.'
SELECT pg_temp.as_user(:linus) \g /dev/null
SELECT status, region, fly_app_name, fly_machine_id = '' AS not_yet_provisioned
  FROM agentmarket.hire_agent('00000000-0000-4000-8000-00000000a9e1', region => 'fra');
RESET role;
SELECT v.version AS runs_version, j.kind AS job, j.status AS job_status
  FROM agentmarket.agent_instances i
  JOIN agentmarket.agent_versions v ON v.id = i.agent_version_id
  JOIN agentmarket_private.jobs j ON j.payload->>'instance_id' = i.id::text
 WHERE i.user_id = :linus AND i.agent_id = '00000000-0000-4000-8000-00000000a9e1';
\echo 'Hiring again returns the same instance; reviewing it (5 stars) updates the listing:'
SELECT pg_temp.as_user(:linus) \g /dev/null
SELECT (SELECT count(*) FROM agentmarket.hire_agent('00000000-0000-4000-8000-00000000a9e1')) AS instances_returned;
SELECT rating, content FROM agentmarket.review_agent('00000000-0000-4000-8000-00000000a9e1', 5, 'Inbox at zero by 9 am.');
\echo 'Grace (who never hired it) may not review it:'
SELECT pg_temp.as_user(:grace) \g /dev/null
SET client_min_messages = notice;
DO $$
BEGIN
    PERFORM agentmarket.review_agent('00000000-0000-4000-8000-00000000a9e1', 1);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
SET client_min_messages = warning;
SELECT pg_temp.as_anon() \g /dev/null
\echo 'The listing as search shows it now (rating sort):'
SELECT name, avg_rating, total_reviews, total_hires FROM agentmarket.search_agents(sort => 'rating');
RESET role;
SELECT set_config('request.jwt.claims', '', false) \g /dev/null
