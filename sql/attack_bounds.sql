-- attack_bounds: nothing a client calls queues unbounded outbound calls or
-- platform cost, and client text has limits.  Each call is made as PostgREST
-- makes it (role authenticated, the JWT's sub), over and over:
--   * buy_credits reuses the pending purchase of the same pack; pending
--     purchases are capped (max_pending_purchases);
--   * suspend/resume/destroy coalesce with the change already queued;
--   * live instances per user are capped (max_live_instances_per_user);
--   * creator onboarding reuses the link job being made;
--   * message content is limited (message_max_bytes), tokens_used is the
--     platform's; listing, review and profile text is limited;
--   * a taken slug answers the same whoever holds it.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(32);

SELECT agentmarket.configure('free_trial_credits', '0') IS NULL AS no_trial;
INSERT INTO agentmarket.users (id, email, role, stripe_connect_account_id) VALUES
  ('00000000-0000-4000-8000-0000b0dec0c1', 'ada@bounds.test', 'creator', 'acct_bounds1'),
  ('00000000-0000-4000-8000-0000b0dec0c2', 'bob@bounds.test', 'creator', NULL),
  ('00000000-0000-4000-8000-0000b0dee001', 'linus@bounds.test', 'user', NULL);
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url,
                                docker_image, status, published_at, pricing_model, credits_per_session)
SELECT ('00000000-0000-4000-8000-0000b0dea00' || g)::uuid, '00000000-0000-4000-8000-0000b0dec0c1', 'bounds-' || g,
       'Bounds ' || g, 'b', 'b', 'research', 'https://github.com/ada/bounds', 'registry.fly.io/bounds:1',
       'published', now(), 'free', NULL
  FROM generate_series(1, 4) g;
INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, github_repo_url, status) VALUES
  ('00000000-0000-4000-8000-0000b0dec0c1', 'bounds-own-draft', 'Own draft', 'b', 'b', 'research', 'https://github.com/ada/d', 'draft'),
  ('00000000-0000-4000-8000-0000b0dec0c2', 'bounds-hidden-draft', 'Hidden', 'b', 'b', 'research', 'https://github.com/bob/d', 'draft'),
  ('00000000-0000-4000-8000-0000b0dec0c2', 'bounds-bobs', 'Bob''s', 'b', 'b', 'research', 'https://github.com/bob/p', 'published');


-- buy_credits ----------------------------------------------------------------
SELECT pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits('topup_s')).id::text$$) AS first_purchase \gset
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits('topup_s')).id::text$$),
          :'first_purchase', 'buying the same pack again returns the pending purchase');
SELECT is((SELECT count(*) FROM agentmarket.purchases WHERE user_id = '00000000-0000-4000-8000-0000b0dee001'), 1::bigint,
          'one purchase row');
SELECT is((SELECT count(*) FROM agentmarket_private.jobs WHERE kind = 'stripe.create_checkout_session'
             AND payload -> 'context' ->> 'user_id' = '00000000-0000-4000-8000-0000b0dee001'
              OR (kind = 'stripe.create_checkout_session' AND payload::text LIKE '%0000b0dee001%')), 1::bigint,
          'one Checkout job: nothing more goes to Stripe');
SELECT isnt(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits('topup_m')).id::text$$),
            'error:22023', 'another pack is another purchase');
SELECT isnt(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits('topup_l')).id::text$$),
            'error:22023', 'a third pending purchase is still allowed (max_pending_purchases = 3)');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits('pro_monthly')).id::text$$),
          'error:22023', 'a fourth is refused');
SELECT is((SELECT count(*) FROM agentmarket.purchases WHERE user_id = '00000000-0000-4000-8000-0000b0dee001'), 3::bigint,
          'and leaves nothing behind');
UPDATE agentmarket.purchases SET status = 'expired' WHERE id = :'first_purchase';
SELECT isnt(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits('pro_monthly')).id::text$$),
            'error:22023', 'once one is no longer pending, the user may buy again');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.buy_credits(repeat('x', 1000000))).id::text$$),
          'error:22023', 'an absurd pack name is a plain 22023');

-- live instances -------------------------------------------------------------
SELECT agentmarket.configure('max_live_instances_per_user', '2') IS NULL AS capped;
SELECT pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.hire_agent('00000000-0000-4000-8000-0000b0dea001')).id::text$$) AS instance1 \gset
SELECT isnt(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.hire_agent('00000000-0000-4000-8000-0000b0dea002')).id::text$$),
            'error:22023', 'a second instance is allowed');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.hire_agent('00000000-0000-4000-8000-0000b0dea003')).id::text$$),
          'error:22023', 'a third live instance is refused (max_live_instances_per_user = 2)');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', $$SELECT (agentmarket.hire_agent('00000000-0000-4000-8000-0000b0dea001')).id::text$$),
          :'instance1', 'hiring an agent one already has still returns that instance');
SELECT is((SELECT count(*) FROM agentmarket.agent_instances WHERE user_id = '00000000-0000-4000-8000-0000b0dee001'), 2::bigint,
          'two instances, no more');

-- instance changes coalesce --------------------------------------------------
UPDATE agentmarket.agent_instances SET status = 'running', fly_machine_id = 'm0123456789abc' WHERE id = :'instance1';
DELETE FROM agentmarket_private.jobs WHERE serial_key = :'instance1';
CREATE FUNCTION pg_temp.queued(instance text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(kind, ',' ORDER BY id), '') FROM agentmarket_private.jobs
     WHERE serial_key = instance AND status = 'queued' $$;
SELECT pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', format($$SELECT agentmarket.suspend_instance(%L)::text$$, :'instance1')) AS suspend_job \gset
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', format($$SELECT agentmarket.resume_instance(%L)::text$$, :'instance1')),
          'null', 'resuming before the queued suspend ran cancels it (nothing to do)');
SELECT is(pg_temp.queued(:'instance1'), '', 'no job is left queued');
SELECT is((SELECT count(*) FROM generate_series(1, 50) g,
                LATERAL (SELECT pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001',
                           format($$SELECT agentmarket.%s_instance(%L)::text$$,
                                  CASE WHEN g % 2 = 1 THEN 'suspend' ELSE 'resume' END, :'instance1')) r) x
            WHERE x.r LIKE 'error:%'), 0::bigint,
          '50 alternating suspend/resume calls are all accepted');
SELECT is(pg_temp.queued(:'instance1'), '', 'and queue nothing: each resume undid the suspend before it');
SELECT ok(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', format($$SELECT agentmarket.suspend_instance(%L)::text$$, :'instance1')) ~ '^[0-9]+$',
          'a suspend is queued');
SELECT ok(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', format($$SELECT agentmarket.destroy_instance(%L)::text$$, :'instance1')) ~ '^[0-9]+$',
          'a destroy replaces it');
SELECT is(pg_temp.queued(:'instance1'), 'fly.destroy_instance', 'one job queued: the destroy');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001', format($$SELECT agentmarket.resume_instance(%L)::text$$, :'instance1')),
          'error:22023', 'a queued destroy is never undone');

-- onboarding -----------------------------------------------------------------
SELECT pg_temp.as_user('00000000-0000-4000-8000-0000b0dec0c1', $$SELECT agentmarket.start_creator_onboarding()::text$$) AS link_job \gset
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dec0c1', $$SELECT agentmarket.start_creator_onboarding()::text$$),
          :'link_job', 'asking again while the link is being made returns that job');
SELECT is((SELECT count(*) FROM agentmarket_private.jobs WHERE kind = 'stripe.create_account_link'
             AND payload::text LIKE '%0000b0dec0c1%'), 1::bigint, 'one link job');

-- messages -------------------------------------------------------------------
UPDATE agentmarket.agent_instances SET status = 'running', fly_machine_id = 'm0123456789abd'
 WHERE user_id = '00000000-0000-4000-8000-0000b0dee001' AND id <> :'instance1';
SELECT pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001',
    $$SELECT (agentmarket.start_session((SELECT id FROM agentmarket.agent_instances
                                          WHERE agent_id = '00000000-0000-4000-8000-0000b0dea002'))).id::text$$) AS session \gset
SELECT ok(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001',
              format($$SELECT agentmarket.add_message(%L, 'user', repeat('a', 65536))::text$$, :'session')) ~ '^[0-9a-f-]{36}$',
          'a message of exactly message_max_bytes is accepted');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001',
              format($$SELECT agentmarket.add_message(%L, 'user', repeat('a', 65537))::text$$, :'session')),
          'error:22023', 'one byte more is refused');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001',
              format($$SELECT agentmarket.add_message(%L, 'user', repeat('é', 32769))::text$$, :'session')),
          'error:22023', 'the limit counts bytes, not characters');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dee001',
              format($$SELECT agentmarket.add_message(%L, 'user', 'hi', NULL, 1000000)::text$$, :'session')),
          'error:42501', 'a user cannot report tokens_used for their own message');
SET LOCAL ROLE service_role;
SELECT ok(agentmarket.add_message(:'session', 'assistant', 'hello', NULL, 42) IS NOT NULL,
          'the platform reports tokens_used');
RESET ROLE;

-- listing text and slugs -----------------------------------------------------
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dec0c1',
              $$UPDATE agentmarket.agents SET description = repeat('d', 50001) WHERE slug = 'bounds-1' RETURNING id::text$$),
          'error:23514', 'a listing description beyond 50,000 characters is refused');
SELECT is(pg_temp.as_user('00000000-0000-4000-8000-0000b0dec0c1',
              $$UPDATE agentmarket.agents SET tags = array_fill('t'::text, ARRAY[33]) WHERE slug = 'bounds-1' RETURNING id::text$$),
          'error:23514', 'more than 32 tags are refused');
-- The same answer whether the slug is the caller's own draft, someone else's
-- hidden draft, or someone else's published listing.
CREATE TEMP TABLE slug_answers (holder text, answer text);
CREATE FUNCTION pg_temp.try_slug(slug text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    state text;
    msg text;
BEGIN
    PERFORM set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000b0dec0c1","role":"authenticated"}', true);
    PERFORM set_config('role', 'authenticated', true);
    BEGIN
        EXECUTE format($q$INSERT INTO agentmarket.agents (creator_id, slug, name, tagline, description, category, github_repo_url)
                          VALUES ('00000000-0000-4000-8000-0000b0dec0c1', %L, 'n', 't', 'd', 'research', 'https://github.com/ada/x')$q$, slug);
        state := 'inserted';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        state := state || ' ' || msg;
    END;
    PERFORM set_config('role', 'none', true);
    RETURN state;
END
$$;
INSERT INTO slug_answers VALUES
  ('own draft', pg_temp.try_slug('bounds-own-draft')),
  ('hidden draft', pg_temp.try_slug('bounds-hidden-draft')),
  ('published', pg_temp.try_slug('bounds-bobs'));
SELECT is((SELECT count(DISTINCT replace(answer, regexp_replace(answer, '.*"(agents_slug_key)".*', '\1'), ''))
             FROM slug_answers), 1::bigint,
          'a taken slug gets one answer whoever holds it');
SELECT is((SELECT min(split_part(answer, ' ', 1)) FROM slug_answers), '23505', 'that answer is 23505');

SELECT * FROM finish();
ROLLBACK;
