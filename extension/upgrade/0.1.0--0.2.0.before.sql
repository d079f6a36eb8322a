-- upgrade/0.1.0--0.2.0.before.sql: what carrying 0.1.0's rows into 0.2.0
-- needs beyond a restore (carry.sql), decided here before the install.
--
--   * secrets: 0.1.0 kept values in clear; 0.2.0 refuses a row that is not
--     ciphertext.  Each value is encrypted on the way (pgcrypto under
--     agentmarket.secret_key_file, as put_secret does; the upgrade stops with
--     55000 when no key is configured), same id, name and dates.
--   * credit_transactions: 0.2.0's ledger rows name the lot they move and
--     its value.  0.1.0 had no lots: each user's pot becomes one legacy lot
--     (numbered here, created in the after part) holding its balance, worth
--     the list price of 0.01 USD a credit, as 0.1.0 valued every credit, and
--     every 0.1.0 row of that pot names it with amount x 0.01 USD.
SELECT pg_catalog.set_config('agentmarket.upgrade_by_hand', pg_catalog.jsonb_build_object(
    'agentmarket_private.secrets', $sql$
        SELECT s.id, s.name,
               agentmarket_private.pgp_armor(agentmarket_private.pgp_sym_encrypt(
                   s.secret, agentmarket_private.secret_key(), 'cipher-algo=aes256, compress-algo=0')),
               s.description, s.created_at, s.updated_at, 'pgcrypto',
               agentmarket_private.secret_key_id(agentmarket_private.secret_key())
          FROM upgrade_from_agentmarket_private.secrets s
    $sql$,
    'agentmarket.credit_transactions', $sql$
        SELECT t.id, t.user_id, t.type, t.amount, t.credit_type, t.description, t.session_id, t.stripe_payment_id,
               t.created_at, l.lot_id, (t.amount * 0.01)::numeric(14,4)
          FROM upgrade_from_agentmarket.credit_transactions t
          LEFT JOIN (SELECT x.user_id, x.credit_type,
                            pg_catalog.row_number() OVER (ORDER BY x.user_id, x.credit_type) AS lot_id
                       FROM upgrade_from_agentmarket.credit_transactions x
                      GROUP BY x.user_id, x.credit_type
                     HAVING pg_catalog.sum(x.amount) FILTER (WHERE x.amount > 0) > 0) l
            ON l.user_id = t.user_id AND l.credit_type = t.credit_type
    $sql$)::text, true);
