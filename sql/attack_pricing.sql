-- attack_pricing: a creator cannot surprise hirers with a price increase.
-- The creator PATCHes the price of a published listing as PostgREST sends
-- it: an increase is scheduled (agent_price_changes, price_notice_days) and
-- sessions keep costing the old price until it is due or an admin approves
-- it; a decrease applies at once and withdraws the increase; before the first
-- publication any price applies at once; clients cannot write the schedule.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(17);

SELECT agentmarket.configure('free_trial_credits', '0') IS NULL AS no_trial;
INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-00009a1cec01', 'ada@pricing.test', 'creator'),
  ('00000000-0000-4000-8000-00009a1ce001', 'linus@pricing.test', 'user'),
  ('00000000-0000-4000-8000-00009a1cead1', 'admin@pricing.test', 'admin');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url,
                                status, published_at, pricing_model, credits_per_session) VALUES
  ('00000000-0000-4000-8000-00009a1cea01', '00000000-0000-4000-8000-00009a1cec01', 'pricing-live', 'Live', 'l', 'l',
   'research', 'https://github.com/ada/live', 'published', now(), 'per_session', 10),
  ('00000000-0000-4000-8000-00009a1cea02', '00000000-0000-4000-8000-00009a1cec01', 'pricing-draft', 'Draft', 'd', 'd',
   'research', 'https://github.com/ada/draft', 'draft', NULL, 'free', NULL);
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('00000000-0000-4000-8000-00009a1ce1f1', '00000000-0000-4000-8000-00009a1ce001', '00000000-0000-4000-8000-00009a1cea01',
   'am-pricing', 'm0123456789abc', 'running');
SELECT (agentmarket.grant_credits('00000000-0000-4000-8000-00009a1ce001', 1000, 'topup', 'topup_purchase')).topup_credits AS funded;

CREATE FUNCTION pg_temp.price(agent uuid) RETURNS text LANGUAGE sql AS $$
    SELECT pricing_model || '/' || coalesce(credits_per_session::text, '-') FROM agentmarket.agents WHERE id = agent $$;

-- PATCH /agents?id=eq.… {"credits_per_session": 50}
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
              $$UPDATE agentmarket.agents SET credits_per_session = 50 WHERE id = '00000000-0000-4000-8000-00009a1cea01'
                RETURNING pricing_model || '/' || credits_per_session$$),
          'per_session/10', 'a price increase on a published listing is not applied: the PATCH returns the current price');
SELECT is((SELECT credits_per_session || ' ' || extract(day FROM effective_at - requested_at) FROM agentmarket.agent_price_changes
            WHERE agent_id = '00000000-0000-4000-8000-00009a1cea01'), '50 14',
          'it is scheduled 14 days ahead (price_notice_days)');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1ce001',
              $$SELECT count(*)::text FROM agentmarket.agent_price_changes$$),
          '1', 'a hirer sees the upcoming price');
SET LOCAL ROLE anon;
SELECT is((SELECT count(*) FROM agentmarket.agent_price_changes), 1::bigint, 'so does anyone browsing the marketplace');
RESET ROLE;
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1ce001',
              $$SELECT (agentmarket.start_session('00000000-0000-4000-8000-00009a1ce1f1')).total_credits_consumed::text$$),
          '10', 'a session started during the notice costs the old price');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
              $$UPDATE agentmarket.agents SET pricing_model = 'per_task' WHERE id = '00000000-0000-4000-8000-00009a1cea01'
                RETURNING pricing_model$$),
          'per_session', 'switching to per_task counts as an increase too');
SELECT is(agentmarket.apply_due_price_changes(), 0, 'nothing is due yet');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
              $$INSERT INTO agentmarket.agent_price_changes (agent_id, pricing_model, credits_per_session, effective_at)
                VALUES ('00000000-0000-4000-8000-00009a1cea01', 'per_session', 99, now()) RETURNING 'inserted'$$),
          'error:42501', 'the creator cannot write the schedule');

-- The notice passes: the platform applies it.
UPDATE agentmarket.agent_price_changes SET requested_at = now() - interval '15 days', effective_at = now() - interval '1 day';
SET LOCAL ROLE service_role;
SELECT is(agentmarket.apply_due_price_changes(), 1, 'the due change is applied (pg_cron)');
RESET ROLE;
SELECT is(pg_temp.price('00000000-0000-4000-8000-00009a1cea01'), 'per_task/10', 'the listing has its new price');
SELECT is((SELECT count(*) FROM agentmarket.agent_price_changes), 0::bigint, 'and nothing is scheduled any more');

-- A decrease applies at once and withdraws a scheduled increase.
SELECT pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
    $$UPDATE agentmarket.agents SET credits_per_session = 80 WHERE id = '00000000-0000-4000-8000-00009a1cea01' RETURNING 1$$) AS raised;
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
              $$UPDATE agentmarket.agents SET credits_per_session = 5 WHERE id = '00000000-0000-4000-8000-00009a1cea01'
                RETURNING pricing_model || '/' || credits_per_session$$),
          'per_task/5', 'a price decrease applies at once');
SELECT is((SELECT count(*) FROM agentmarket.agent_price_changes), 0::bigint, 'and withdraws the scheduled increase');

-- Re-review: an admin approves an increase at once.
SELECT pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
    $$UPDATE agentmarket.agents SET credits_per_session = 20 WHERE id = '00000000-0000-4000-8000-00009a1cea01' RETURNING 1$$) AS raised;
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
              $$SELECT (agentmarket.approve_price_change('00000000-0000-4000-8000-00009a1cea01')).credits_per_session::text$$),
          'error:42501', 'the creator cannot approve their own increase');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cead1',
              $$SELECT (agentmarket.approve_price_change('00000000-0000-4000-8000-00009a1cea01')).credits_per_session::text$$),
          '20', 'an admin''s review applies it at once');

-- Before the first publication, prices are the creator's to set.
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-00009a1cec01',
              $$UPDATE agentmarket.agents SET pricing_model = 'per_session', credits_per_session = 500
                WHERE id = '00000000-0000-4000-8000-00009a1cea02' RETURNING pricing_model || '/' || credits_per_session$$),
          'per_session/500', 'a draft''s price applies at once');
SELECT is((SELECT count(*) FROM agentmarket.agent_price_changes), 0::bigint, 'nothing is scheduled for a draft');

SELECT * FROM finish();
ROLLBACK;
