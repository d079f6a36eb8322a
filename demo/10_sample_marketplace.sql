-- A small sample marketplace: two creators, a user and an admin; four
-- listings with versions and skills.  Later steps act on it through the
-- extension's functions.
\echo 'Loading the sample marketplace: two creators, a user, an admin, four agents.'
INSERT INTO agentmarket.users (id, email, display_name, role) VALUES
  ('00000000-0000-4000-8000-0000000c0001', 'ada@creators.example', 'Ada', 'creator'),
  ('00000000-0000-4000-8000-0000000c0002', 'grace@creators.example', 'Grace', 'creator'),
  ('00000000-0000-4000-8000-0000000e0001', 'linus@users.example', 'Linus', 'user'),
  ('00000000-0000-4000-8000-0000000a0001', 'ops@agentmarket.example', 'Ops', 'admin');

INSERT INTO agentmarket.agents (id, creator_id, slug, name, tagline, description, category,
                                pricing_model, credits_per_session, github_repo_url,
                                supported_relays, supported_models, tags) VALUES
  ('00000000-0000-4000-8000-00000000a9e1', '00000000-0000-4000-8000-0000000c0001',
   'inbox-zero', 'Inbox Zero', 'Triage your email every morning',
   'Reads your inbox, drafts replies and files newsletters. Works with Gmail and Fastmail.',
   'productivity', 'per_session', 25, 'https://github.com/ada/inbox-zero',
   '{telegram,slack}', '{claude,gpt}', '{email,triage}'),
  ('00000000-0000-4000-8000-00000000a9e2', '00000000-0000-4000-8000-0000000c0001',
   'paper-scout', 'Paper Scout', 'Finds and summarises research papers',
   'Searches arXiv and Semantic Scholar, reads the PDFs and writes a weekly digest.',
   'research', 'per_session', 40, 'https://github.com/ada/paper-scout',
   '{discord}', '{claude}', '{arxiv,summaries}'),
  ('00000000-0000-4000-8000-00000000a9e3', '00000000-0000-4000-8000-0000000c0002',
   'ghostwriter', 'Ghostwriter', 'Drafts blog posts in your voice',
   'Learns your style from past posts and drafts new ones from bullet points.',
   'writing', 'per_task', 30, 'https://github.com/grace/ghostwriter',
   '{telegram,whatsapp}', '{gpt,gemini}', '{blog,drafting}'),
  ('00000000-0000-4000-8000-00000000a9e4', '00000000-0000-4000-8000-0000000c0002',
   'standup-bot', 'Standup Bot', 'Runs your team''s async standup',
   'Asks each teammate three questions on Slack and posts a summary.',
   'productivity', 'free', NULL, 'https://github.com/grace/standup-bot',
   '{slack}', '{claude}', '{team,slack}');

INSERT INTO agentmarket.agent_versions (agent_id, version, git_ref, git_commit, docker_image,
                                        openclaw_version, changelog, status, is_current, published_at)
SELECT a.id, '1.0.0', 'v1.0.0', substr(md5(a.slug), 1, 40),
       'registry.fly.io/am-' || a.slug || ':1.0.0', '2026.11.1', 'First release.',
       'published', true, now()
  FROM agentmarket.agents a;

INSERT INTO agentmarket.agent_skills (agent_id, skill_slug, name, source, version, required_env, required_bins)
VALUES ('00000000-0000-4000-8000-00000000a9e1', 'gmail', 'Gmail', 'clawhub', '1.2.0', '{GMAIL_TOKEN}', '{}'),
       ('00000000-0000-4000-8000-00000000a9e2', 'pdf-reader', 'PDF reader', 'bundled', NULL, '{}', '{pdftotext}'),
       ('00000000-0000-4000-8000-00000000a9e3', 'style-notes', 'Style notes', 'workspace', NULL, '{}', '{}');

\echo
\echo 'The listings:'
SELECT a.slug, a.name, a.category, a.pricing_model, a.credits_per_session AS credits,
       u.display_name AS creator, v.version AS current_version,
       (SELECT string_agg(s.skill_slug, ', ') FROM agentmarket.agent_skills s WHERE s.agent_id = a.id) AS skills
  FROM agentmarket.agents a
  JOIN agentmarket.users u ON u.id = a.creator_id
  LEFT JOIN agentmarket.agent_versions v ON v.agent_id = a.id AND v.is_current
 ORDER BY a.slug;
