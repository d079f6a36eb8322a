-- workspaces: projects and teams through RPCs (create, rename, delete with the
-- seed's cascades, list with instances and statuses), names validated, an
-- instance joins a team of its own owner only, and team membership has one
-- source of truth (agent_instances.team_id) that team_agents mirrors whichever
-- is written.  Calls are made as PostgREST makes them.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(55);

INSERT INTO users (id, email, role) VALUES
  ('73000000-0000-4000-8000-00000000c001', 'creator@ws.example', 'creator'),
  ('73000000-0000-4000-8000-00000000e001', 'owner@ws.example', 'user'),
  ('73000000-0000-4000-8000-00000000e002', 'other@ws.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, github_repo_url) VALUES
  ('73000000-0000-4000-8000-0000000000a1', '73000000-0000-4000-8000-00000000c001', 'ws-1', 'Writer', 't', 'd', 'writing', 'published', 'https://x/1'),
  ('73000000-0000-4000-8000-0000000000a2', '73000000-0000-4000-8000-00000000c001', 'ws-2', 'Researcher', 't', 'd', 'research', 'published', 'https://x/2');
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status, display_name) VALUES
  ('73000000-0000-4000-8000-0000000000d1', '73000000-0000-4000-8000-00000000e001', '73000000-0000-4000-8000-0000000000a1', 'am-w1', 'm1', 'running', 'Scribe'),
  ('73000000-0000-4000-8000-0000000000d2', '73000000-0000-4000-8000-00000000e001', '73000000-0000-4000-8000-0000000000a2', 'am-w2', 'm2', 'suspended', NULL),
  ('73000000-0000-4000-8000-0000000000d3', '73000000-0000-4000-8000-00000000e002', '73000000-0000-4000-8000-0000000000a1', 'am-w3', 'm3', 'running', NULL);

CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT ALL ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(n text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM ids WHERE name = n $$;
-- team_agents and team_id agree for every instance.
CREATE FUNCTION pg_temp.consistent() RETURNS boolean LANGUAGE sql AS $$
    SELECT NOT EXISTS (SELECT FROM agentmarket.agent_instances i
                        WHERE i.team_id IS DISTINCT FROM (SELECT ta.team_id FROM agentmarket.team_agents ta
                                                           WHERE ta.instance_id = i.id))
       AND NOT EXISTS (SELECT FROM agentmarket.team_agents ta GROUP BY ta.instance_id HAVING count(*) > 1)
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

-- Projects.
SELECT pg_temp.act('authenticated', '73000000-0000-4000-8000-00000000e001');
INSERT INTO ids SELECT 'p1', (create_project('  Launch  ', 'Q1 launch')).id;
SELECT is((SELECT name || '|' || description || '|' || user_id FROM projects WHERE id = pg_temp.id('p1')),
    'Launch|Q1 launch|73000000-0000-4000-8000-00000000e001', 'the owner creates a project; the name is trimmed');
SELECT throws_ok($$SELECT create_project('launch')$$, '23505', 'a project named "launch" already exists',
    'project names are unique per user, ignoring case');
SELECT throws_ok($$SELECT create_project('   ')$$, '22023', 'invalid project name', 'a blank name is refused');
SELECT throws_ok($$SELECT create_project(NULL)$$, '22023', 'invalid project name', 'a NULL name is refused');
SELECT throws_ok($$SELECT create_project(repeat('x', 101))$$, '22023', 'invalid project name', 'a name over 100 characters is refused');
SELECT throws_ok($$SELECT create_project(E'bad\nname')$$, '22023', 'invalid project name', 'control characters are refused');
SELECT throws_ok($$SELECT create_project('ok', repeat('d', 2001))$$, '22023', NULL, 'a description over 2000 characters is refused');
SELECT throws_ok($$INSERT INTO projects (user_id, name) VALUES ('73000000-0000-4000-8000-00000000e001', ' padded ')$$,
    '23514', NULL, 'a hand-written row with a bad name is refused too');
INSERT INTO ids SELECT 'p2', (create_project('Research')).id;
SELECT is((rename_project(pg_temp.id('p2'), 'Deep research')).name, 'Deep research', 'the owner renames a project');
SELECT throws_ok($$SELECT rename_project(pg_temp.id('p2'), 'LAUNCH')$$, '23505', NULL, 'not to a taken name');
SELECT is((rename_project(pg_temp.id('p2'), 'deep RESEARCH')).name, 'deep RESEARCH', 'a project may change the case of its own name');

-- Teams.
INSERT INTO ids SELECT 't1', (create_team(pg_temp.id('p1'), 'Writers')).id;
INSERT INTO ids SELECT 't2', (create_team(pg_temp.id('p1'), 'Reviewers')).id;
INSERT INTO ids SELECT 't3', (create_team(pg_temp.id('p2'), 'Writers')).id;
SELECT is((SELECT count(*)::int FROM teams), 3, 'the owner creates teams; names are unique per project only');
SELECT throws_ok($$SELECT create_team(pg_temp.id('p1'), 'writers')$$, '23505', 'a team named "writers" already exists',
    'team names are unique per project, ignoring case');
SELECT throws_ok($$SELECT create_team(pg_temp.id('p1'), '')$$, '22023', 'invalid team name', 'a blank team name is refused');
SELECT is((rename_team(pg_temp.id('t2'), 'Editors')).name, 'Editors', 'the owner renames a team');

-- Membership.
SELECT is((set_instance_team('73000000-0000-4000-8000-0000000000d1', pg_temp.id('t1'))).team_id, pg_temp.id('t1'),
    'the owner puts an instance into a team');
SELECT is((SELECT team_id FROM team_agents WHERE instance_id = '73000000-0000-4000-8000-0000000000d1'), pg_temp.id('t1'),
    'team_agents mirrors it');
SELECT is((set_instance_team('73000000-0000-4000-8000-0000000000d1', pg_temp.id('t2'))).team_id, pg_temp.id('t2'),
    'moving it to another team');
SELECT is((SELECT array_agg(team_id) FROM team_agents WHERE instance_id = '73000000-0000-4000-8000-0000000000d1'),
    ARRAY[pg_temp.id('t2')], '... leaves one membership');
SELECT lives_ok($$INSERT INTO team_agents (team_id, instance_id) VALUES (pg_temp.id('t3'), '73000000-0000-4000-8000-0000000000d2')$$,
    'a team_agents row written by hand (PostgREST) ...');
SELECT is((SELECT team_id FROM agent_instances WHERE id = '73000000-0000-4000-8000-0000000000d2'), pg_temp.id('t3'),
    '... sets agent_instances.team_id');
SELECT lives_ok($$INSERT INTO team_agents (team_id, instance_id) VALUES (pg_temp.id('t1'), '73000000-0000-4000-8000-0000000000d2')$$,
    'a second hand-written membership ...');
SELECT is((SELECT array_agg(team_id) FROM team_agents WHERE instance_id = '73000000-0000-4000-8000-0000000000d2'),
    ARRAY[pg_temp.id('t1')], '... moves the instance: one team per instance');
SELECT lives_ok($$UPDATE agent_instances SET team_id = pg_temp.id('t3') WHERE id = '73000000-0000-4000-8000-0000000000d2'$$,
    'the owner sets team_id by hand ...');
SELECT is((SELECT array_agg(team_id) FROM team_agents WHERE instance_id = '73000000-0000-4000-8000-0000000000d2'),
    ARRAY[pg_temp.id('t3')], '... and team_agents follows');
SELECT lives_ok($$DELETE FROM team_agents WHERE instance_id = '73000000-0000-4000-8000-0000000000d2'$$,
    'deleting the membership row ...');
SELECT is((SELECT team_id FROM agent_instances WHERE id = '73000000-0000-4000-8000-0000000000d2'), NULL::uuid,
    '... takes the instance out of the team');
SELECT is((set_instance_team('73000000-0000-4000-8000-0000000000d2', pg_temp.id('t3'))).team_id, pg_temp.id('t3'), 'back in t3');
SELECT is((set_instance_team('73000000-0000-4000-8000-0000000000d2', NULL)).team_id, NULL::uuid, 'NULL takes it out of any team');
SELECT is((set_instance_team('73000000-0000-4000-8000-0000000000d2', pg_temp.id('t3'))).team_id, pg_temp.id('t3'), 'and in again');
SELECT ok(pg_temp.consistent(), 'team_agents and agent_instances.team_id agree for every instance');

-- The list.
SELECT is((SELECT string_agg(name || ':' || jsonb_array_length(teams), ',' ORDER BY name COLLATE "C") FROM my_workspaces()),
    'Launch:2,deep RESEARCH:1', 'my_workspaces lists the projects with their teams');
SELECT is((SELECT t->'instances'->0->>'display_name' || ' ' || (t->'instances'->0->>'status') || ' ' || (t->'instances'->0->>'agent_name')
             FROM my_workspaces() w, jsonb_array_elements(w.teams) t WHERE t->>'name' = 'Editors'),
    'Scribe running Writer', '... and each team''s instances with their status');
SELECT is((SELECT t->'instances'->0->>'status' FROM my_workspaces() w, jsonb_array_elements(w.teams) t WHERE t->>'name' = 'Writers'
             AND w.name = 'deep RESEARCH'), 'suspended', '... whatever their status');

-- Another user.
SELECT pg_temp.act('authenticated', '73000000-0000-4000-8000-00000000e002');
SELECT is((SELECT count(*)::int FROM my_workspaces()), 0, 'another user lists none of them');
SELECT throws_ok($$SELECT rename_project(pg_temp.id('p1'), 'Mine')$$, 'P0002', NULL, 'another user cannot rename the project');
SELECT throws_ok($$SELECT delete_project(pg_temp.id('p1'))$$, 'P0002', NULL, 'another user cannot delete the project');
SELECT throws_ok($$SELECT create_team(pg_temp.id('p1'), 'Intruders')$$, 'P0002', NULL, 'another user cannot add a team to it');
SELECT throws_ok($$SELECT rename_team(pg_temp.id('t1'), 'Mine')$$, 'P0002', NULL, 'another user cannot rename a team');
SELECT throws_ok($$SELECT delete_team(pg_temp.id('t1'))$$, 'P0002', NULL, 'another user cannot delete a team');
SELECT throws_ok($$SELECT set_instance_team('73000000-0000-4000-8000-0000000000d3', pg_temp.id('t1'))$$, 'P0002', NULL,
    'another user cannot put their instance into the owner''s team');
SELECT throws_ok($$SELECT set_instance_team('73000000-0000-4000-8000-0000000000d1', NULL)$$, 'P0002', NULL,
    'another user cannot take the owner''s instance out of its team');
INSERT INTO ids SELECT 'px', (create_project('Launch')).id;
SELECT is((SELECT name FROM projects WHERE id = pg_temp.id('px')), 'Launch', 'another user may use the same project name');
SELECT pg_temp.act('anon');
SELECT throws_ok($$SELECT create_project('x')$$, '42501', NULL, 'anon cannot create a project');
SELECT throws_ok($$SELECT my_workspaces()$$, '42501', NULL, 'anon lists nothing');
SELECT pg_temp.act('service_role');
SELECT throws_ok($$SELECT create_project('x')$$, '42501', NULL, 'service_role has no projects of its own (no user)');
SELECT throws_ok($$UPDATE agent_instances SET team_id = pg_temp.id('t1') WHERE id = '73000000-0000-4000-8000-0000000000d3'$$,
    '42501', 'team ' || pg_temp.id('t1') || ' belongs to another user',
    'not even the platform can put an instance into another user''s team');
SELECT throws_ok($$INSERT INTO team_agents (team_id, instance_id) VALUES (pg_temp.id('t1'), '73000000-0000-4000-8000-0000000000d3')$$,
    '42501', NULL, '... nor through team_agents');

-- Deleting, with the seed's cascades.
SELECT pg_temp.act('authenticated', '73000000-0000-4000-8000-00000000e001');
SELECT ok(delete_team(pg_temp.id('t2')), 'the owner deletes a team that has an instance');
SELECT is((SELECT team_id FROM agent_instances WHERE id = '73000000-0000-4000-8000-0000000000d1'), NULL::uuid,
    '... the instance stays, without team');
SELECT ok(delete_project(pg_temp.id('p2')), 'the owner deletes a project whose team has an instance');
SELECT is((SELECT count(*)::int FROM teams WHERE project_id = pg_temp.id('p2')) + (SELECT count(*)::int FROM team_agents),
    0, '... its teams and memberships go with it');
SELECT is((SELECT status || ' ' || (team_id IS NULL) FROM agent_instances WHERE id = '73000000-0000-4000-8000-0000000000d2'),
    'suspended true', '... its instance stays, without team');
SELECT lives_ok($$DELETE FROM projects WHERE id = pg_temp.id('p1')$$, 'a hand-written project delete (PostgREST) cascades too');
RESET role;
SELECT ok(pg_temp.consistent(), 'team_agents and agent_instances.team_id still agree');

SELECT * FROM finish();
ROLLBACK;
