-- bench/search/queries.sql: the query classes and variants, and the
-- contenders' RUM index.  base(class, q): the classes of the issue; each is
-- run plain and with every variant (filters, sorts, second page).
CREATE TABLE bench_base (class text, ord int, q text);
INSERT INTO bench_base VALUES
  ('1 common word', 1, 'agent'), ('1 common word', 2, 'automate'), ('1 common word', 3, 'help'),
  ('1 common word', 4, 'task'), ('1 common word', 5, 'agents'),
  ('1 rare word', 1, 'kazumor'), ('1 rare word', 2, 'pixquoren'), ('1 rare word', 3, 'solbrinex'),
  ('1 rare word', 4, 'tekvadro'), ('1 rare word', 5, 'zelgamfyn'),
  ('1 mid word', 1, 'mortgage'), ('1 mid word', 2, 'lyrics'), ('1 mid word', 3, 'docker'),
  ('1 mid word', 4, 'vet'), ('1 mid word', 5, 'email'),
  ('2-4 words, few common', 1, 'invoice podcast'), ('2-4 words, few common', 2, 'github recipe'),
  ('2-4 words, few common', 3, 'budget studio deploy'), ('2-4 words, few common', 4, 'payroll music server garden'),
  ('2-4 words, few common', 5, 'docker lyric'), ('2-4 words, few common', 6, 'ledger travel'),
  ('2-4 common words, many', 1, 'agent automate'), ('2-4 common words, many', 2, 'invoice budget'),
  ('2-4 common words, many', 3, 'email inbox'), ('2-4 common words, many', 4, 'help task agent'),
  ('2-4 common words, many', 5, 'github deploy server'), ('2-4 common words, many', 6, 'recipe fitness travel garden'),
  ('typo', 1, 'agnet'), ('typo', 2, 'invoise'), ('typo', 3, 'podcsat'), ('typo', 4, 'kazumro'),
  ('typo', 5, 'automte'), ('typo', 6, 'recipy deploy'),
  ('prefix of last word', 1, 'inv'), ('prefix of last word', 2, 'agent pod'), ('prefix of last word', 3, 'invoice bud'),
  ('prefix of last word', 4, 'kazu'), ('prefix of last word', 5, 'git'), ('prefix of last word', 6, 'ema');
-- What RUM and GIN+ts_rank get: the same words as text, parsed in their
-- statement as ours parses its own (websearch_to_tsquery); in the prefix
-- class the last word apart, as a prefix (they have no typo tolerance).
ALTER TABLE bench_base ADD COLUMN words text, ADD COLUMN pre text;
UPDATE bench_base SET words = CASE WHEN class = 'prefix of last word' THEN regexp_replace(q, '\s*\S+$', '') ELSE q END,
                      pre = CASE WHEN class = 'prefix of last word' THEN substring(q FROM '(\S+)$') END;

CREATE TABLE bench_variant (variant text, ord int, category text, relays text[], models text[], pricing text,
                            sort text, page int);
INSERT INTO bench_variant VALUES
  ('plain', 1, NULL, NULL, NULL, NULL, 'relevance', 1),
  ('category', 2, 'finance', NULL, NULL, NULL, 'relevance', 1),
  ('relay', 3, NULL, '{slack}', NULL, NULL, 'relevance', 1),
  ('model', 4, NULL, NULL, '{gemini}', NULL, 'relevance', 1),
  ('pricing', 5, NULL, NULL, NULL, 'free', 'relevance', 1),
  ('all 4 filters', 6, 'coding', '{telegram,discord}', '{claude}', 'per_task', 'relevance', 1),
  ('sort rating', 7, NULL, NULL, NULL, NULL, 'rating', 1),
  ('sort popular', 8, NULL, NULL, NULL, NULL, 'popular', 1),
  ('sort newest', 9, NULL, NULL, NULL, NULL, 'newest', 1),
  ('page 2', 10, NULL, NULL, NULL, NULL, 'relevance', 2),
  ('page 2, category', 11, 'research', NULL, NULL, NULL, 'relevance', 2),
  -- The all-filters variant's relays and model alone: a filter whose
  -- listings are many (two relays: about two thirds of all) met a walk
  -- whose tagline sets made its members many (README, "What is left at 1M").
  ('2 relays', 12, NULL, '{telegram,discord}', NULL, NULL, 'relevance', 1),
  ('model claude', 13, NULL, NULL, '{claude}', NULL, 'relevance', 1);
