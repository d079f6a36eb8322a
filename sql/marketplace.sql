-- marketplace: the listing lifecycle (draft -> review -> published/rejected
-- -> archived), versions and skills, hiring (one instance per user and agent,
-- provisioning job in the same transaction) and verified reviews.
\ir test/fixture.sql
BEGIN;
SELECT plan(80);

-- Act as a user: the JWT claims PostgREST would set, then the client role.
CREATE FUNCTION pg_temp.act_as(p_user uuid) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims',
                      CASE WHEN p_user IS NULL THEN '' ELSE json_build_object('sub', p_user)::text END, true);
    SELECT set_config('role', CASE WHEN p_user IS NULL THEN 'anon' ELSE 'authenticated' END, true);
$$;
GRANT EXECUTE ON FUNCTION pg_temp.act_as(uuid) TO PUBLIC;

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('11111111-0000-4000-8000-000000000001', 'ada@m.test', 'creator'),
  ('11111111-0000-4000-8000-000000000002', 'grace@m.test', 'creator'),
  ('11111111-0000-4000-8000-000000000003', 'linus@m.test', 'user'),
  ('11111111-0000-4000-8000-000000000004', 'bob@m.test', 'user'),
  ('11111111-0000-4000-8000-000000000005', 'ops@m.test', 'admin');
INSERT INTO agentmarket.projects (id, user_id, name) VALUES
  ('22222222-0000-4000-8000-000000000003', '11111111-0000-4000-8000-000000000003', 'Linus project'),
  ('22222222-0000-4000-8000-000000000004', '11111111-0000-4000-8000-000000000004', 'Bob project');
INSERT INTO agentmarket.teams (id, project_id, name) VALUES
  ('33333333-0000-4000-8000-000000000003', '22222222-0000-4000-8000-000000000003', 'Linus team'),
  ('33333333-0000-4000-8000-000000000004', '22222222-0000-4000-8000-000000000004', 'Bob team');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url) VALUES
  ('44444444-0000-4000-8000-000000000001', '11111111-0000-4000-8000-000000000001', 'mk-one', 'Mk One',
   'First', 'The first marketplace test agent.', 'productivity', 'https://github.com/ada/mk-one'),
  ('44444444-0000-4000-8000-000000000002', '11111111-0000-4000-8000-000000000001', 'mk-two', 'Mk Two',
   'Second', 'The second marketplace test agent.', 'research', 'https://github.com/ada/mk-two');

------------------------------------------------------------------------------
-- Constraints
------------------------------------------------------------------------------
SELECT throws_ok($$UPDATE agentmarket.agents SET status = 'live' WHERE slug = 'mk-one'$$, '23514', NULL,
                 'agent status is one of draft, review, published, rejected, archived');
SELECT throws_ok($$UPDATE agentmarket.agents SET pricing_model = 'monthly' WHERE slug = 'mk-one'$$, '23514', NULL,
                 'pricing model is per_session, per_task or free');
SELECT throws_ok($$UPDATE agentmarket.agents SET supported_relays = '{telegram,irc}' WHERE slug = 'mk-one'$$, '23514', NULL,
                 'supported relays are telegram, whatsapp, slack, discord');

------------------------------------------------------------------------------
-- Lifecycle
------------------------------------------------------------------------------
SELECT pg_temp.act_as(NULL);
SELECT throws_ok($$SELECT agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')$$,
                 '42501', NULL, 'without a JWT nobody submits (anon has no EXECUTE)');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT throws_ok($$SELECT agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')$$,
                 '22023', 'agent has no version ready for review', 'submitting needs a version with image and OpenClaw pin');
SELECT throws_ok($$SELECT agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001', 'v1')$$,
                 '22023', 'invalid version "v1"', 'versions are semver');
SELECT lives_ok($$SELECT agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001', '1.0.0')$$,
                'a creator adds a draft version without an image yet');
SELECT throws_ok($$SELECT agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')$$,
                 '22023', NULL, 'a version without docker image or OpenClaw pin is not enough');
SELECT throws_ok($$SELECT agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001', '1.0.0', 'img', '2026.1')$$,
                 '23505', NULL, 'a version number is unique per agent');
SELECT is((agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001', '1.0.1',
           'registry.fly.io/mk-one:1.0.1', '2026.11.1')).status, 'draft', 'a new version is a draft');

SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000002');
SELECT throws_ok($$SELECT agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001', '9.0.0', 'x', 'y')$$,
                 'P0002', 'agent not found', 'another creator cannot see a draft agent');
SELECT throws_ok($$SELECT agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')$$,
                 'P0002', NULL, 'nor submit it');

SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT is((agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')).status, 'review',
          'the creator submits a ready draft for review');
SELECT throws_ok($$SELECT agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')$$,
                 '22023', NULL, 'an agent in review cannot be submitted again');
SELECT throws_ok($$SELECT agentmarket.approve_agent('44444444-0000-4000-8000-000000000001')$$,
                 '42501', 'only an admin may do this', 'a creator cannot approve their own agent');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000005');
SELECT is((agentmarket.approve_agent('44444444-0000-4000-8000-000000000001')).status, 'published',
          'an admin approves an agent in review');
RESET role;
SELECT ok((SELECT published_at IS NOT NULL FROM agentmarket.agents WHERE slug = 'mk-one'),
          'approval sets published_at');
SELECT is((SELECT v.version FROM agentmarket.agent_versions v
            WHERE v.agent_id = '44444444-0000-4000-8000-000000000001' AND v.is_current), '1.0.1',
          'approval makes the ready version current (and publishes it)');
SELECT is((SELECT docker_image FROM agentmarket.agents WHERE slug = 'mk-one'), 'registry.fly.io/mk-one:1.0.1',
          'the listing carries the current version''s image');
-- published_at is the first publication: never moved, a later review cycle keeps it.
CREATE TEMP TABLE first_publication AS SELECT published_at FROM agentmarket.agents WHERE slug = 'mk-one';
GRANT SELECT ON first_publication TO PUBLIC;
UPDATE agentmarket.agents SET published_at = '2026-01-01 00:00+00' WHERE slug = 'mk-one';
SELECT is((SELECT published_at FROM agentmarket.agents WHERE slug = 'mk-one'), (SELECT published_at FROM first_publication),
          'published_at cannot be moved, even by a direct write');
UPDATE agentmarket.agents SET status = 'review' WHERE slug = 'mk-one';
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000005');
SELECT is((agentmarket.approve_agent('44444444-0000-4000-8000-000000000001')).published_at,
          (SELECT published_at FROM first_publication), 'published_at is set on the first publication only');
SELECT throws_ok($$SELECT agentmarket.reject_agent('44444444-0000-4000-8000-000000000001', 'too late')$$,
                 '22023', 'agent is not in review', 'a published agent cannot be rejected');

-- Rejection and resubmission.
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT (agentmarket.create_agent_version('44444444-0000-4000-8000-000000000002', '0.1.0', 'registry.fly.io/mk-two:0.1.0', '2026.11.1')).version;
SELECT (agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000002')).status;
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000005');
SELECT throws_ok($$SELECT agentmarket.reject_agent('44444444-0000-4000-8000-000000000002', '  ')$$,
                 '22023', 'a rejection needs a reason', 'a rejection needs a reason');
SELECT is((agentmarket.reject_agent('44444444-0000-4000-8000-000000000002', 'Icon missing')).rejection_reason,
          'Icon missing', 'an admin rejects with a reason the creator sees');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT is((agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000002')).status, 'review',
          'a rejected agent can be fixed and submitted again');
RESET role;
SELECT is((SELECT rejection_reason FROM agentmarket.agents WHERE slug = 'mk-two'), NULL,
          'resubmission clears the rejection reason');

------------------------------------------------------------------------------
-- Versions and skills
------------------------------------------------------------------------------
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT throws_ok($$SELECT agentmarket.publish_agent_version(
                     (SELECT id FROM agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001', '1.1.0')))$$,
                 '22023', 'version 1.1.0 is not ready', 'a version without an image cannot be published');
SELECT is((SELECT array_agg(x.skill_slug) FROM agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001',
           '[{"skill_slug": "pdf-reader", "source": "bundled", "required_bins": ["pdftotext"]},
             {"skill_slug": "gmail", "source": "clawhub", "version": "1.2.0", "required_env": ["GMAIL_TOKEN"]}]') x),
          ARRAY['gmail', 'pdf-reader'], 'a creator sets the agent''s skills (returned in slug order)');
RESET role;
SELECT is((SELECT array_agg(skill_slug || ':' || source || ':' || array_to_string(required_env || required_bins, ',')
                            ORDER BY skill_slug)
             FROM agentmarket.agent_skills WHERE agent_id = '44444444-0000-4000-8000-000000000001'),
          ARRAY['gmail:clawhub:GMAIL_TOKEN', 'pdf-reader:bundled:pdftotext'], 'skills are stored with source, env and bins');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT is((SELECT count(*)::int FROM agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001',
           '[{"skill_slug": "gmail"}]')), 1, 'setting skills again replaces the list');
SELECT throws_ok($$SELECT agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001', '{"skill_slug": "x"}')$$,
                 '22023', 'skills must be a JSON array', 'skills are a JSON array');
SELECT throws_ok($$SELECT agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001', '[{"skill_slug": "Bad Slug"}]')$$,
                 '22023', 'invalid skill list', 'skill slugs are checked');
SELECT throws_ok($$SELECT agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001', '[{"slug": "gmail"}]')$$,
                 '22023', NULL, 'unknown skill fields are refused');
SELECT throws_ok($$SELECT agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001',
                   '[{"skill_slug": "gmail"}, {"skill_slug": "gmail"}]')$$,
                 '23505', NULL, 'a skill listed twice is a duplicate');
SELECT throws_ok($$SELECT agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001', '[{"skill_slug": "git"}]',
                   (SELECT id FROM agentmarket.agent_versions WHERE version = '1.0.1'
                       AND agent_id = '44444444-0000-4000-8000-000000000001'))$$,
                 '22023', NULL, 'a published version''s skills are frozen');
SELECT is((SELECT count(*)::int FROM agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001',
           '[{"skill_slug": "git", "source": "git"}]',
           (SELECT id FROM agentmarket.agent_versions WHERE version = '1.1.0'
               AND agent_id = '44444444-0000-4000-8000-000000000001'))), 1,
          'a draft version gets its own skills');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000002');
SELECT throws_ok($$SELECT agentmarket.set_agent_skills('44444444-0000-4000-8000-000000000001', '[]')$$,
                 '42501', NULL, 'another creator cannot change a published agent''s skills');

------------------------------------------------------------------------------
-- Hiring
------------------------------------------------------------------------------
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000003');
SELECT throws_ok($$SELECT agentmarket.hire_agent('44444444-0000-4000-8000-000000000002')$$,
                 'P0002', 'agent not found', 'an agent in review cannot be hired');
SELECT throws_ok($$SELECT agentmarket.hire_agent('44444444-0000-4000-8000-000000000001', NULL, 'mars')$$,
                 '22023', 'unknown region "mars"', 'the region must be a Fly region');
SELECT throws_ok($$SELECT agentmarket.hire_agent('44444444-0000-4000-8000-000000000001',
                   '33333333-0000-4000-8000-000000000004')$$,
                 'P0002', 'team not found', 'the team must be one of the caller''s');
CREATE TEMP TABLE hired AS SELECT * FROM agentmarket.hire_agent('44444444-0000-4000-8000-000000000001',
                                                                 '33333333-0000-4000-8000-000000000003', 'fra');
SELECT is((SELECT status || ' ' || region || ' [' || fly_machine_id || '] ' || (fly_app_name = 'am-' || replace(id::text, '-', ''))::text
             FROM hired), 'provisioning fra [] true',
          'hiring creates an instance in provisioning, not yet provisioned, with its deterministic app name');
RESET role;
SELECT is((SELECT v.version FROM hired h JOIN agentmarket.agent_versions v ON v.id = h.agent_version_id), '1.0.1',
          'the instance runs the current version');
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs
            WHERE kind = 'fly.provision_instance' AND payload->>'instance_id' = (SELECT id::text FROM hired)), 1,
          'the provisioning job is enqueued in the same transaction');
SELECT is((SELECT total_hires FROM agentmarket.agents WHERE slug = 'mk-one'), 1, 'a hire counts once');
SELECT ok(EXISTS (SELECT FROM agentmarket.team_agents WHERE team_id = '33333333-0000-4000-8000-000000000003'
                     AND instance_id = (SELECT id FROM hired)), 'the instance joins the team');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000003');
SELECT is((agentmarket.hire_agent('44444444-0000-4000-8000-000000000001')).id, (SELECT id FROM hired),
          'hiring again returns the existing instance');
RESET role;
SELECT is((SELECT total_hires FROM agentmarket.agents WHERE slug = 'mk-one'), 1, 'hiring again is not a new hire');
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs WHERE payload->>'instance_id' = (SELECT id::text FROM hired)), 1,
          'hiring again enqueues nothing');

-- A new current version: new hires get it, existing instances keep theirs.
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT is((agentmarket.publish_agent_version((agentmarket.create_agent_version('44444444-0000-4000-8000-000000000001',
           '2.0.0', 'registry.fly.io/mk-one:2.0.0', '2026.11.2', 'v2.0.0', 'abcdef1', 'Faster.')).id)).is_current, true,
          'a published version becomes current');
RESET role;
SELECT is((SELECT array_agg(version ORDER BY version) FROM agentmarket.agent_versions
            WHERE agent_id = '44444444-0000-4000-8000-000000000001' AND is_current), ARRAY['2.0.0'],
          'only one version is current');
SELECT is((SELECT docker_image FROM agentmarket.agents WHERE slug = 'mk-one'), 'registry.fly.io/mk-one:2.0.0',
          'the listing follows the current version');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000004');
SELECT is((SELECT v.version FROM agentmarket.agent_versions v
            WHERE v.id = (agentmarket.hire_agent('44444444-0000-4000-8000-000000000001')).agent_version_id), '2.0.0',
          'a new hire runs the new current version');
RESET role;
SELECT is((SELECT v.version FROM agentmarket.agent_instances i JOIN agentmarket.agent_versions v ON v.id = i.agent_version_id
            WHERE i.id = (SELECT id FROM hired)), '1.0.1', 'an existing instance keeps its version');
SELECT is((SELECT total_hires FROM agentmarket.agents WHERE slug = 'mk-one'), 2, 'a second user''s hire counts');

-- A destroyed instance is hired again in place (its first job done meanwhile).
UPDATE agentmarket_private.jobs SET status = 'succeeded', finished_at = now()
 WHERE payload->>'instance_id' = (SELECT id::text FROM hired);
UPDATE agentmarket.agent_instances SET status = 'destroyed', fly_machine_id = 'm-old' WHERE id = (SELECT id FROM hired);
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000003');
SELECT is((SELECT id = (SELECT id FROM hired) AND status = 'provisioning' AND fly_machine_id = ''
             FROM agentmarket.hire_agent('44444444-0000-4000-8000-000000000001')), true,
          'hiring a destroyed instance again reuses its row, back to provisioning');
RESET role;
SELECT is((SELECT v.version FROM agentmarket.agent_instances i JOIN agentmarket.agent_versions v ON v.id = i.agent_version_id
            WHERE i.id = (SELECT id FROM hired)), '2.0.0', 'the re-hired instance runs the current version');
SELECT is((SELECT count(*)::int FROM agentmarket_private.jobs WHERE payload->>'instance_id' = (SELECT id::text FROM hired)), 2,
          'the re-hire enqueues a new provisioning job');
SELECT is((SELECT total_hires FROM agentmarket.agents WHERE slug = 'mk-one'), 3, 'a re-hire after destruction counts');

------------------------------------------------------------------------------
-- Reviews
------------------------------------------------------------------------------
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000002');
SELECT throws_ok($$SELECT agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 5)$$,
                 '42501', 'only users who hired this agent may review it', 'only hirers review');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000003');
SELECT throws_ok($$SELECT agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 0)$$,
                 '22023', 'rating must be between 1 and 5', 'a rating below 1 is refused');
SELECT throws_ok($$SELECT agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 6)$$,
                 '22023', NULL, 'a rating above 5 is refused');
SELECT throws_ok($$SELECT agentmarket.review_agent('44444444-0000-4000-8000-000000000001', NULL)$$,
                 '22023', NULL, 'a missing rating is refused');
SELECT throws_ok($$SELECT agentmarket.review_agent('44444444-0000-4000-8000-0000000000ff', 4)$$,
                 'P0002', NULL, 'reviewing an unknown agent is P0002');
SELECT is((agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 5, 'Great')).rating, 5,
          'a hirer reviews the agent');
SELECT is((agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 3, 'Meh after all')).content, 'Meh after all',
          'a second review by the same user updates it');
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket.agent_reviews WHERE agent_id = '44444444-0000-4000-8000-000000000001'), 1,
          'one review per user and agent');
SELECT is((SELECT avg_rating::text || '/' || total_reviews FROM agentmarket.agents WHERE slug = 'mk-one'), '3.0/1',
          'stats follow the updated review');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000004');
SELECT (agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 4)).rating;
RESET role;
SELECT is((SELECT avg_rating::text || '/' || total_reviews FROM agentmarket.agents WHERE slug = 'mk-one'), '3.5/2',
          'avg_rating is the mean with one decimal');
-- Direct writes (as RLS may allow) are counted too.
INSERT INTO agentmarket.agent_reviews (agent_id, user_id, rating)
VALUES ('44444444-0000-4000-8000-000000000001', '11111111-0000-4000-8000-000000000005', 5);
SELECT is((SELECT avg_rating::text || '/' || total_reviews FROM agentmarket.agents WHERE slug = 'mk-one'), '4.0/3',
          'a review inserted directly updates the stats');
DELETE FROM agentmarket.agent_reviews WHERE user_id = '11111111-0000-4000-8000-000000000003';
SELECT is((SELECT avg_rating::text || '/' || total_reviews FROM agentmarket.agents WHERE slug = 'mk-one'), '4.5/2',
          'a deleted review updates the stats');
DELETE FROM agentmarket.agent_reviews WHERE agent_id = '44444444-0000-4000-8000-000000000001';
SELECT is((SELECT avg_rating::text || '/' || total_reviews FROM agentmarket.agents WHERE slug = 'mk-one'), '0.0/0',
          'no reviews: rating 0, count 0');
-- A creator who hires their own agent still cannot review it.
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT (agentmarket.hire_agent('44444444-0000-4000-8000-000000000001')).status;
SELECT throws_ok($$SELECT agentmarket.review_agent('44444444-0000-4000-8000-000000000001', 5)$$,
                 '42501', 'creators cannot review their own agents', 'creators cannot review their own agents');

------------------------------------------------------------------------------
-- Archive
------------------------------------------------------------------------------
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000003');
SELECT throws_ok($$SELECT agentmarket.archive_agent('44444444-0000-4000-8000-000000000001')$$,
                 '42501', NULL, 'a user cannot archive someone''s published agent');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000001');
SELECT is((agentmarket.archive_agent('44444444-0000-4000-8000-000000000001')).status, 'archived',
          'the creator archives the agent');
SELECT throws_ok($$SELECT agentmarket.archive_agent('44444444-0000-4000-8000-000000000001')$$,
                 '22023', 'agent is already archived', 'archiving twice is refused');
SELECT throws_ok($$SELECT agentmarket.submit_agent_for_review('44444444-0000-4000-8000-000000000001')$$,
                 '22023', NULL, 'an archived agent cannot come back through review');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000004');
SELECT throws_ok($$SELECT agentmarket.hire_agent('44444444-0000-4000-8000-000000000001')$$,
                 'P0002', NULL, 'an archived agent cannot be hired');
RESET role;
SELECT is((SELECT count(*)::int FROM agentmarket.agent_instances
            WHERE agent_id = '44444444-0000-4000-8000-000000000001' AND status <> 'destroyed'), 3,
          'existing instances keep running after archiving');
SELECT pg_temp.act_as('11111111-0000-4000-8000-000000000005');
SELECT is((agentmarket.archive_agent('44444444-0000-4000-8000-000000000002')).status, 'archived',
          'an admin archives any agent');
RESET role;

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------
SELECT is((SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
            WHERE p.pronamespace = 'agentmarket'::regnamespace
              AND p.proname IN ('submit_agent_for_review', 'approve_agent', 'reject_agent', 'archive_agent',
                                'create_agent_version', 'publish_agent_version', 'set_agent_skills',
                                'hire_agent', 'review_agent')
              AND p.prosecdef AND p.proconfig::text LIKE '%search_path=pg_catalog%'
              AND has_function_privilege('authenticated', p.oid, 'EXECUTE')
              AND has_function_privilege('service_role', p.oid, 'EXECUTE')
              AND NOT has_function_privilege('anon', p.oid, 'EXECUTE')),
          ARRAY['approve_agent', 'archive_agent', 'create_agent_version', 'hire_agent', 'publish_agent_version',
                'reject_agent', 'review_agent', 'set_agent_skills', 'submit_agent_for_review'],
          'marketplace functions: SECURITY DEFINER, pinned search_path, EXECUTE for authenticated and service_role only');

SELECT * FROM finish();
ROLLBACK;
