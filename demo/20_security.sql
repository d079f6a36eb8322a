-- The security model, seen from PostgREST: each request is a transaction
-- with role anon or authenticated and the JWT claims in request.jwt.claims.
-- Everything here happens inside one transaction that is rolled back, so the
-- next steps start from the sample marketplace as step 10 left it.
BEGIN;
\echo 'Setting the scene (rolled back at the end): two listings published, Linus and Margaret'
\echo 'each hire Inbox Zero and talk to it; each has a balance.'
UPDATE agentmarket.agents SET status = 'published', published_at = now()
 WHERE slug IN ('inbox-zero', 'ghostwriter');
INSERT INTO agentmarket.users (id, email, display_name) VALUES
  ('00000000-0000-4000-8000-0000000e0002', 'margaret@users.example', 'Margaret');
INSERT INTO agentmarket.agent_instances (id, user_id, agent_id, fly_app_name, fly_machine_id, status) VALUES
  ('00000000-0000-4000-8000-0000001e0001', '00000000-0000-4000-8000-0000000e0001',
   '00000000-0000-4000-8000-00000000a9e1', 'am-demo-linus', 'm-demo-linus', 'running'),
  ('00000000-0000-4000-8000-0000001e0002', '00000000-0000-4000-8000-0000000e0002',
   '00000000-0000-4000-8000-00000000a9e1', 'am-demo-margaret', 'm-demo-margaret', 'running');
INSERT INTO agentmarket.sessions (id, instance_id, user_id) VALUES
  ('00000000-0000-4000-8000-0000002e0001', '00000000-0000-4000-8000-0000001e0001', '00000000-0000-4000-8000-0000000e0001'),
  ('00000000-0000-4000-8000-0000002e0002', '00000000-0000-4000-8000-0000001e0002', '00000000-0000-4000-8000-0000000e0002');
INSERT INTO agentmarket.messages (session_id, role, content) VALUES
  ('00000000-0000-4000-8000-0000002e0001', 'user', 'Linus: archive every newsletter please'),
  ('00000000-0000-4000-8000-0000002e0001', 'assistant', 'Done: 14 newsletters archived.'),
  ('00000000-0000-4000-8000-0000002e0002', 'user', 'Margaret: draft a reply to the auditor');
INSERT INTO agentmarket.credit_balances (user_id, topup_credits) VALUES
  ('00000000-0000-4000-8000-0000000e0001', 100), ('00000000-0000-4000-8000-0000000e0002', 250)
  ON CONFLICT (user_id) DO UPDATE SET topup_credits = EXCLUDED.topup_credits;

-- One request as PostgREST makes it, rolled back; the outcome as text.
CREATE FUNCTION pg_temp.attempt(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE stmt;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN CASE WHEN n = 0 THEN 'nothing happened (the row is not visible)' ELSE 'allowed' END;
EXCEPTION WHEN insufficient_privilege THEN
    RETURN 'refused: ' || SQLERRM;
END $$;

\echo
\echo 'anon (no JWT) browses the marketplace: published listings and their creators'' public profiles'
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true) \g /dev/null
SELECT a.slug, a.name, p.display_name AS creator, a.status
  FROM agentmarket.agents a JOIN agentmarket.creator_profiles p ON p.id = a.creator_id
 ORDER BY a.slug;
SELECT 'anon reading users: ' || pg_temp.attempt('SELECT email FROM agentmarket.users') AS outcome;
RESET ROLE;

\echo
\echo 'Linus, as authenticated with his JWT, sees his own rows and nobody else''s'
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000000e0001","role":"authenticated"}', true) \g /dev/null
SELECT (SELECT string_agg(display_name || ' <' || email || '>', ', ') FROM agentmarket.users) AS users_visible,
       (SELECT count(*) FROM agentmarket.agent_instances) AS instances,
       (SELECT count(*) FROM agentmarket.sessions) AS sessions,
       (SELECT count(*) FROM agentmarket.messages) AS messages,
       (SELECT sum(topup_credits) FROM agentmarket.credit_balances) AS credits;
SELECT m.role, m.content FROM agentmarket.messages m ORDER BY m.created_at, m.role DESC;
SELECT what, pg_temp.attempt(stmt) AS outcome FROM (VALUES
  (1, 'promote himself to admin', $$UPDATE agentmarket.users SET role = 'admin' WHERE id = agentmarket.current_user_id()$$),
  (2, 'raise his own balance', $$UPDATE agentmarket.credit_balances SET topup_credits = 1000000$$),
  (3, 'forge a ledger row', $$INSERT INTO agentmarket.credit_transactions (user_id, type, amount, credit_type) VALUES (agentmarket.current_user_id(), 'topup_purchase', 1000000, 'topup')$$),
  (4, 'delete Margaret''s messages', $$DELETE FROM agentmarket.messages WHERE session_id = '00000000-0000-4000-8000-0000002e0002'$$),
  (5, 'rename his hired agent', $$UPDATE agentmarket.agent_instances SET display_name = 'Mail butler'$$)
) AS t(n, what, stmt) ORDER BY n;
RESET ROLE;

\echo
\echo 'Ada, creator of Inbox Zero, sees all her listings (drafts too) but none of her users'' sessions or messages'
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-0000000c0001","role":"authenticated"}', true) \g /dev/null
SELECT (SELECT string_agg(slug || ' (' || status || ')', ', ' ORDER BY slug) FROM agentmarket.agents
         WHERE creator_id = agentmarket.current_user_id()) AS her_listings,
       (SELECT count(*) FROM agentmarket.sessions) AS sessions_visible,
       (SELECT count(*) FROM agentmarket.messages) AS messages_visible;
SELECT 'Ada publishing paper-scout by hand: ' || pg_temp.attempt($$UPDATE agentmarket.agents SET status = 'published' WHERE slug = 'paper-scout'$$) AS outcome;
RESET ROLE;
ROLLBACK;
