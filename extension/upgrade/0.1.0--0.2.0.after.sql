-- upgrade/0.1.0--0.2.0.after.sql: the legacy lots the ledger rows name (see
-- the before part): one per user and pot that ever received credits, its
-- credits what the pot was granted, its remainder the pot's balance, all at
-- 0.01 USD a credit.  Promotional (paid false): no purchase of 0.1.0 is tied
-- to a lot, so verify_books() lists 0.1.0's paid purchases as granting no
-- paid lot.
INSERT INTO agentmarket_private.credit_lots
    (id, user_id, credit_type, grant_type, paid, credits, value_usd, remaining, remaining_value_usd, depleted, created_at)
SELECT l.lot_id, l.user_id, l.credit_type,
       CASE l.credit_type WHEN 'topup' THEN 'topup_purchase' ELSE 'subscription_refresh' END, false,
       l.granted, (l.granted * 0.01)::numeric(14,4), l.balance, (l.balance * 0.01)::numeric(14,4), l.balance = 0, l.first_at
  FROM (SELECT t.user_id, t.credit_type, t.lot_id,
               pg_catalog.sum(t.amount) FILTER (WHERE t.type IN ('topup_purchase', 'subscription_refresh', 'free_trial'))::integer AS granted,
               pg_catalog.sum(t.amount)::integer AS balance, pg_catalog.min(t.created_at) AS first_at
          FROM agentmarket.credit_transactions t
         WHERE t.lot_id IS NOT NULL
         GROUP BY t.user_id, t.credit_type, t.lot_id) l;
SELECT pg_catalog.setval('agentmarket_private.credit_lots_id_seq',
                         GREATEST(COALESCE((SELECT pg_catalog.max(l.id) FROM agentmarket_private.credit_lots l), 0), 1),
                         (SELECT pg_catalog.count(*) > 0 FROM agentmarket_private.credit_lots));

-- 0.1.0 kept the settings of kind secret (the Stripe webhook signing
-- secrets) in clear in agentmarket_private.settings: they are stored
-- encrypted now (config.sql), the settings row holding the secret's id.
UPDATE agentmarket_private.settings s
   SET value = agentmarket_private.put_secret('setting/' OPERATOR(pg_catalog.||) s.key, s.value,
                   'Setting ' OPERATOR(pg_catalog.||) s.key OPERATOR(pg_catalog.||) ' (agentmarket.configure).')::text
  FROM agentmarket_private.setting_definitions d
 WHERE d.key OPERATOR(pg_catalog.=) s.key AND d.kind OPERATOR(pg_catalog.=) 'secret';
