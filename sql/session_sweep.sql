-- session_sweep: end_idle_sessions() ends open sessions idle past
-- session_idle_minutes and per_session sessions older than
-- session_max_minutes, settling them as end_session does; others stay open.
\ir test/fixture.sql
SET search_path = agentmarket, public;
BEGIN;
SELECT plan(11);

SELECT agentmarket.configure('free_trial_credits', '0') \g /dev/null
INSERT INTO users (id, email, role) VALUES
  ('90000000-0000-4000-8000-00000000c001', 'creator@sweep.example', 'creator'),
  ('90000000-0000-4000-8000-00000000e001', 'user@sweep.example', 'user');
INSERT INTO agents (id, creator_id, slug, name, tagline, description, category, status, pricing_model,
                    credits_per_session, github_repo_url, published_at) VALUES
  ('90000000-0000-4000-8000-0000000000a1', '90000000-0000-4000-8000-00000000c001', 'sweep-session', 'S',
   't', 'd', 'research', 'published', 'per_session', 10, 'https://x/1', now()),
  ('90000000-0000-4000-8000-0000000000a2', '90000000-0000-4000-8000-00000000c001', 'sweep-free', 'F',
   't', 'd', 'research', 'published', 'free', NULL, 'https://x/2', now());
INSERT INTO agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('90000000-0000-4000-8000-0000000000d1', '90000000-0000-4000-8000-00000000e001', '90000000-0000-4000-8000-0000000000a1', 'am-w1', 'w1', 'running'),
  ('90000000-0000-4000-8000-0000000000d2', '90000000-0000-4000-8000-00000000e001', '90000000-0000-4000-8000-0000000000a2', 'am-w2', 'w2', 'running');
SELECT grant_credits('90000000-0000-4000-8000-00000000e001', 100, 'topup', 'topup_purchase') \g /dev/null
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT ALL ON ids TO PUBLIC;
UPDATE agents SET supported_relays = '{telegram,slack}' WHERE id IN ('90000000-0000-4000-8000-0000000000a1', '90000000-0000-4000-8000-0000000000a2');
SET LOCAL ROLE service_role;
INSERT INTO ids SELECT 'idle', (start_session('90000000-0000-4000-8000-0000000000d1')).id;
INSERT INTO ids SELECT 'long', (start_session('90000000-0000-4000-8000-0000000000d1', 'telegram')).id;
INSERT INTO ids SELECT 'free', (start_session('90000000-0000-4000-8000-0000000000d2')).id;
INSERT INTO ids SELECT 'busy', (start_session('90000000-0000-4000-8000-0000000000d2', 'slack')).id;
RESET ROLE;
-- Time passes: 'idle' was opened 45 minutes ago and heard nothing; 'long' 5
-- hours ago but talks still; 'free' 5 hours ago and talks still (free: no
-- limit); 'busy' an hour ago and talked a minute ago.
UPDATE sessions SET started_at = now() - interval '45 minutes' WHERE id = (SELECT id FROM ids WHERE name = 'idle');
UPDATE sessions SET started_at = now() - interval '5 hours' WHERE id IN (SELECT id FROM ids WHERE name IN ('long', 'free'));
UPDATE sessions SET started_at = now() - interval '1 hour' WHERE id = (SELECT id FROM ids WHERE name = 'busy');
INSERT INTO messages (session_id, role, content, created_at)
SELECT id, 'user', 'still here', now() - interval '1 minute' FROM ids WHERE name IN ('long', 'free', 'busy');
INSERT INTO messages (session_id, role, content, created_at)
SELECT id, 'assistant', 'Here is your answer.', now() - interval '2 minutes' FROM ids WHERE name = 'long';

SET LOCAL ROLE service_role;
SELECT is(end_idle_sessions(), 2, 'the sweep ends two sessions');
SELECT ok((SELECT ended_at IS NOT NULL FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'idle')),
    'a session idle past session_idle_minutes (30) is ended');
SELECT ok((SELECT ended_at IS NOT NULL FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'long')),
    'a per_session session past session_max_minutes (240) is ended though it talks: one payment buys that long');
SELECT ok((SELECT ended_at IS NULL FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'free')),
    'a free session that talks stays open, however old');
SELECT ok((SELECT ended_at IS NULL FROM sessions WHERE id = (SELECT id FROM ids WHERE name = 'busy')),
    'a session that talked recently stays open');
SELECT is((SELECT count(*)::int FROM creator_earnings WHERE session_id = (SELECT id FROM ids WHERE name = 'long')), 1,
    'ended sessions are settled: the earnings of the one the agent served are written');
SELECT is(end_idle_sessions(), 0, 'a second sweep finds nothing');
SELECT isnt((start_session('90000000-0000-4000-8000-0000000000d1', 'telegram')).id, (SELECT id FROM ids WHERE name = 'long'),
    'the next start opens (and pays for) a new session');
SELECT throws_ok('SELECT end_idle_sessions(0)', '22023', NULL, 'max_sessions must be positive');
RESET ROLE;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "90000000-0000-4000-8000-00000000e001", "role": "authenticated"}', true) \g /dev/null
SELECT throws_ok('SELECT end_idle_sessions()', '42501', NULL, 'a user cannot run the sweep');
RESET ROLE;

SELECT is((SELECT string_agg(s.name || ' ' || h.status || ' ' || h.captured_amount, ', ' ORDER BY s.name)
             FROM agentmarket_private.credit_holds h JOIN ids s ON s.id = h.session_id WHERE s.name IN ('idle', 'long')),
    'idle captured 0, long captured 10', 'their holds are resolved: the whole price where the agent answered, nothing where it never did');

SELECT * FROM finish();
ROLLBACK;
