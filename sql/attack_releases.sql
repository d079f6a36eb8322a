-- attack_releases: a published release is immutable.  The creator tries, as
-- PostgREST would send it, to change what a published version runs (image,
-- git ref/commit, OpenClaw version, version number), its skills, or the
-- agent row's image that provisioning could fall back to; service_role and the
-- superuser cannot either (a trigger, not a privilege).  A fix is a new
-- version; publishing it freezes the agent's skills into it.
\ir test/fixture.sql
SET search_path = public, pg_catalog;
BEGIN;
SELECT plan(19);

INSERT INTO agentmarket.users (id, email, role) VALUES
  ('00000000-0000-4000-8000-0000be1ea5c1', 'ada@releases.test', 'creator');
INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category, github_repo_url,
                                status, published_at, docker_image, openclaw_version)
VALUES ('00000000-0000-4000-8000-0000be1ea5a1', '00000000-0000-4000-8000-0000be1ea5c1', 'releases-agent',
        'Releases', 'r', 'r', 'research', 'https://github.com/ada/releases', 'published', now(),
        'registry.fly.io/rel:1.0.0', '2026.1.1');
INSERT INTO agentmarket.agent_versions (id, agent_id, version, git_ref, git_commit, docker_image, openclaw_version,
                                        status, is_current, published_at)
VALUES ('00000000-0000-4000-8000-0000be1ea5b1', '00000000-0000-4000-8000-0000be1ea5a1', '1.0.0', 'v1.0.0', 'abcdef1',
        'registry.fly.io/rel:1.0.0', '2026.1.1', 'published', true, now()),
       ('00000000-0000-4000-8000-0000be1ea5b2', '00000000-0000-4000-8000-0000be1ea5a1', '1.1.0-rc.1', NULL, NULL,
        'registry.fly.io/rel:1.1.0', '2026.1.1', 'draft', false, NULL);
INSERT INTO agentmarket.agent_skills (agent_id, agent_version_id, skill_slug, version) VALUES
  ('00000000-0000-4000-8000-0000be1ea5a1', '00000000-0000-4000-8000-0000be1ea5b1', 'gmail', '1.0.0'),
  ('00000000-0000-4000-8000-0000be1ea5a1', NULL, 'gmail', '2.0.0');

-- One request as the creator, through PostgREST; the outcome or SQLSTATE.
CREATE FUNCTION pg_temp.as_creator(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    BEGIN
        PERFORM set_config('request.jwt.claims',
            '{"sub":"00000000-0000-4000-8000-0000be1ea5c1","role":"authenticated"}', true);
        PERFORM set_config('role', 'authenticated', true);
        EXECUTE stmt;
        GET DIAGNOSTICS n = ROW_COUNT;
        RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = 'rows:' || n;
    EXCEPTION
        WHEN SQLSTATE 'ZZ000' THEN RETURN SQLERRM;
        WHEN OTHERS THEN RETURN 'error:' || SQLSTATE;
    END;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.as_creator(text) TO PUBLIC;
GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA pg_temp TO PUBLIC;

-- Requests come through a login that is no superuser, as PostgREST's
-- authenticator is (the superuser's own session may load released skills:
-- pg_restore does).
CREATE ROLE agentmarket_releases_login LOGIN;
GRANT authenticated, service_role TO agentmarket_releases_login;
SET SESSION AUTHORIZATION agentmarket_releases_login;

-- The published, current version: nothing it runs can change.
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET docker_image = 'evil.example/miner:latest'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'the creator cannot swap the image of a published version');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET git_commit = 'fedcba9', git_ref = 'main'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'nor its git ref and commit');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET openclaw_version = '2027.1.1'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'nor its OpenClaw version');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET version = '1.0.1'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'nor its version number');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET changelog = 'Typo fixed.'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'rows:1', 'its changelog may still be corrected');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_skills SET version = '9.9.9'
                                WHERE agent_version_id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'the creator cannot change a skill of a published version');
SELECT is(pg_temp.as_creator($$INSERT INTO agentmarket.agent_skills (agent_id, agent_version_id, skill_slug)
                                VALUES ('00000000-0000-4000-8000-0000be1ea5a1', '00000000-0000-4000-8000-0000be1ea5b1', 'shell')$$),
          'error:22023', 'nor add one');
SELECT is(pg_temp.as_creator($$DELETE FROM agentmarket.agent_skills
                                WHERE agent_version_id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'nor remove one');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agents SET docker_image = 'evil.example/miner:latest'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5a1'$$),
          'error:42501', 'the agent row''s copy of the current image is not the creator''s to edit');
SELECT is(pg_temp.as_creator($$SELECT agentmarket.set_agent_skills('00000000-0000-4000-8000-0000be1ea5a1',
                                  '[{"skill_slug": "shell"}]', '00000000-0000-4000-8000-0000be1ea5b1')$$),
          'error:22023', 'set_agent_skills refuses a published version''s skills');

-- Not a privilege: the platform and the superuser are held too.
RESET SESSION AUTHORIZATION;
CREATE FUNCTION pg_temp.as_role(actor text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        IF actor IS NOT NULL THEN
            PERFORM set_config('role', actor, true);
        END IF;
        EXECUTE stmt;
        RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = 'done';
    EXCEPTION
        WHEN SQLSTATE 'ZZ000' THEN RETURN SQLERRM;
        WHEN OTHERS THEN RETURN 'error:' || SQLSTATE;
    END;
END
$$;
SELECT is(pg_temp.as_role('service_role', $$UPDATE agentmarket.agent_versions SET docker_image = 'other:1'
                                            WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'service_role cannot change a published version''s image either');
SELECT is(pg_temp.as_role(NULL, $$UPDATE agentmarket.agent_versions SET docker_image = 'other:1'
                                  WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'nor can the superuser');
SELECT is(pg_temp.as_role(NULL, $$UPDATE agentmarket.agent_versions SET status = 'draft'
                                  WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'error:22023', 'a published version cannot become a draft again (and then be edited)');
SELECT is(pg_temp.as_role(NULL, $$UPDATE agentmarket.agent_versions SET status = 'deprecated', is_current = false
                                  WHERE id = '00000000-0000-4000-8000-0000be1ea5b1'$$),
          'done', 'its status still moves on (deprecated)');

-- Drafts are the creator's to edit; publishing freezes them, with the
-- agent's skills copied into the version.
SET SESSION AUTHORIZATION agentmarket_releases_login;
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET docker_image = 'registry.fly.io/rel:1.1.0-fixed'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b2'$$),
          'rows:1', 'a draft version is still editable');
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000be1ea5c1","role":"authenticated"}', true) IS NOT NULL;
SET LOCAL ROLE authenticated;
SELECT is((agentmarket.publish_agent_version('00000000-0000-4000-8000-0000be1ea5b2')).status, 'published',
          'the creator publishes the fixed draft as the new current version');
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT is(ARRAY(SELECT skill_slug || '@' || version FROM agentmarket.agent_skills
                 WHERE agent_version_id = '00000000-0000-4000-8000-0000be1ea5b2'), ARRAY['gmail@2.0.0'],
          'publishing froze the agent''s skills into the version');
SELECT is(pg_temp.as_creator($$UPDATE agentmarket.agent_versions SET docker_image = 'evil.example/miner:latest'
                                WHERE id = '00000000-0000-4000-8000-0000be1ea5b2'$$),
          'error:22023', 'and from now on its image is fixed too');
RESET SESSION AUTHORIZATION;
-- Deleting the whole agent still takes its versions and skills with it.
SELECT lives_ok($$DELETE FROM agentmarket.agents WHERE id = '00000000-0000-4000-8000-0000be1ea5a1'$$,
                'deleting an agent deletes its released versions and their skills (cascade)');
SELECT * FROM finish();
ROLLBACK;
