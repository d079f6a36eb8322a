-- books.sql: books that prove themselves (shared/DESIGN.md, Money).
--
-- agentmarket.verify_books() returns one row per discrepancy, none when the
-- books balance, all in exact numeric arithmetic:
--   lot       remaining = its ledger amounts; remaining value = its ledger values
--   pot       balance = ledger = sum of its lots' remainders (and verify_ledger())
--   purchase  paid - refunded - lost disputes = recognized + unspent + expired
--             + frozen (what its lots were granted, less what refunds and lost
--             disputes took back, equals what sessions consumed, what is left,
--             what expired, the platform's, and what open disputes froze)
--   session   creator + platform earnings = recognized revenue of its credits
--             (net of clawbacks)
--   dispute   an open dispute's frozen credits = its freeze/release rows
--   creator   transfers made (net of partial reversals) + carried remainder =
--             earnings paid - clawbacks settled - partial reversals owed again
--   payout    reversed_cents = its partial reversal rows

CREATE FUNCTION agentmarket.verify_books()
RETURNS TABLE (subject text, id text, problem text, recorded numeric, expected numeric)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH lot_ledger AS (
        SELECT t.lot_id, pg_catalog.sum(t.amount) AS credits, pg_catalog.sum(t.value_usd) AS value,
               COALESCE(pg_catalog.sum(t.value_usd) FILTER (WHERE t.type IN ('topup_purchase', 'subscription_refresh', 'free_trial')), 0) AS granted,
               COALESCE(OPERATOR(pg_catalog.-) pg_catalog.sum(t.value_usd) FILTER (WHERE t.type IN ('session_deduct', 'refund', 'refund_recovery')), 0) AS recognized,
               COALESCE(OPERATOR(pg_catalog.-) pg_catalog.sum(t.value_usd) FILTER (WHERE t.type OPERATOR(pg_catalog.=) 'subscription_expiry'), 0) AS expired,
               COALESCE(OPERATOR(pg_catalog.-) pg_catalog.sum(t.value_usd) FILTER (WHERE t.type IN ('purchase_refund', 'dispute_lost')), 0) AS taken_back,
               COALESCE(OPERATOR(pg_catalog.-) pg_catalog.sum(t.value_usd) FILTER (WHERE t.type IN ('dispute_freeze', 'dispute_release')), 0) AS frozen
          FROM agentmarket.credit_transactions t
         WHERE t.lot_id IS NOT NULL
         GROUP BY t.lot_id),
    lots AS (
        SELECT l.*, COALESCE(g.credits, 0) AS ledger_credits, COALESCE(g.value, 0) AS ledger_value,
               COALESCE(g.granted, 0) AS granted, COALESCE(g.recognized, 0) AS recognized,
               COALESCE(g.expired, 0) AS expired, COALESCE(g.taken_back, 0) AS taken_back,
               COALESCE(g.frozen, 0) AS frozen
          FROM agentmarket_private.credit_lots_now l LEFT JOIN lot_ledger g ON g.lot_id OPERATOR(pg_catalog.=) l.id),
    pots AS (
        SELECT COALESCE(b.user_id, x.user_id) AS user_id, v.pot,
               COALESCE(CASE v.pot WHEN 'subscription' THEN b.subscription_credits ELSE b.topup_credits END, 0) AS balance,
               COALESCE(x.remaining, 0) AS lots
          FROM (VALUES ('subscription'), ('topup')) v(pot)
          CROSS JOIN agentmarket.credit_balances b
          FULL JOIN (SELECT l.user_id, l.credit_type, pg_catalog.sum(l.remaining) AS remaining
                       FROM agentmarket_private.credit_lots_now l GROUP BY l.user_id, l.credit_type) x
            ON x.user_id OPERATOR(pg_catalog.=) b.user_id AND x.credit_type OPERATOR(pg_catalog.=) v.pot),
    purchase_lots AS (
        SELECT l.purchase_id, pg_catalog.sum(l.granted) AS granted, pg_catalog.sum(l.recognized) AS recognized,
               pg_catalog.sum(l.remaining_value_usd) AS unspent, pg_catalog.sum(l.expired) AS expired,
               pg_catalog.sum(l.taken_back) AS taken_back, pg_catalog.sum(l.frozen) AS frozen
          FROM lots l WHERE l.purchase_id IS NOT NULL GROUP BY l.purchase_id),
    sessions AS (
        SELECT s.id, s.refunded_at,
               (SELECT COALESCE(OPERATOR(pg_catalog.-) pg_catalog.sum(t.value_usd), 0)
                  FROM agentmarket.credit_transactions t
                 WHERE t.session_id OPERATOR(pg_catalog.=) s.id AND t.type IN ('session_deduct', 'refund'))
               OPERATOR(pg_catalog.-) (SELECT COALESCE(pg_catalog.sum(r.value_usd), 0)
                  FROM agentmarket_private.revenue_reversals r WHERE r.session_id OPERATOR(pg_catalog.=) s.id) AS revenue,
               e.id AS earnings_id, e.gross_revenue, e.creator_amount, e.platform_amount
          FROM agentmarket.sessions s
          LEFT JOIN agentmarket.creator_earnings e ON e.session_id OPERATOR(pg_catalog.=) s.id
         WHERE s.ended_at IS NOT NULL),
    creators AS (
        SELECT c.creator_id,
               -- Net of partial reversals (the whole ones make a payout reversed).
               (SELECT COALESCE(pg_catalog.sum(p.transfer_cents OPERATOR(pg_catalog.-) p.reversed_cents), 0) OPERATOR(pg_catalog./) 100
                  FROM agentmarket.payouts p
                 WHERE p.creator_id OPERATOR(pg_catalog.=) c.creator_id AND p.status OPERATOR(pg_catalog.=) 'paid') AS transferred,
               -- Partial reversals owed again: not yet paid again by a paid payout.
               (SELECT COALESCE(pg_catalog.sum(v.amount_usd), 0) FROM agentmarket_private.payout_reversals v
                 WHERE v.creator_id OPERATOR(pg_catalog.=) c.creator_id
                   AND NOT EXISTS (SELECT FROM agentmarket.payouts n WHERE n.id OPERATOR(pg_catalog.=) v.netted_payout_id
                                      AND n.status OPERATOR(pg_catalog.=) 'paid')) AS owed_again,
               -- The remainders of paid payouts not carried into another paid one
               -- (a pending payout's carry is not transferred yet).
               (SELECT COALESCE(pg_catalog.sum(p.remainder_usd OPERATOR(pg_catalog.-) p.carried_in_usd), 0)
                  FROM agentmarket.payouts p
                 WHERE p.creator_id OPERATOR(pg_catalog.=) c.creator_id AND p.status OPERATOR(pg_catalog.=) 'paid') AS carry,
               (SELECT COALESCE(pg_catalog.sum(e.creator_amount), 0) FROM agentmarket.creator_earnings e
                 WHERE e.creator_id OPERATOR(pg_catalog.=) c.creator_id AND e.paid_out) AS paid_earnings
          FROM (SELECT DISTINCT p.creator_id FROM agentmarket.payouts p) c)
    -- Lots against their ledger rows.
    SELECT 'lot', l.id::text, 'lot remaining differs from its ledger rows', l.remaining::numeric, l.ledger_credits::numeric
      FROM lots l WHERE l.remaining OPERATOR(pg_catalog.<>) l.ledger_credits
    UNION ALL
    SELECT 'lot', l.id::text, 'lot remaining value differs from its ledger rows', l.remaining_value_usd, l.ledger_value
      FROM lots l WHERE l.remaining_value_usd OPERATOR(pg_catalog.<>) l.ledger_value
    UNION ALL
    SELECT 'lot', l.id::text, 'lot value differs from its grant row', l.value_usd, l.granted
      FROM lots l WHERE l.value_usd OPERATOR(pg_catalog.<>) l.granted
    UNION ALL
    SELECT 'ledger', t.id::text, 'ledger row moves credits without a lot', t.amount::numeric, 0
      FROM agentmarket.credit_transactions t
     WHERE t.amount OPERATOR(pg_catalog.<>) 0
       AND (t.lot_id IS NULL OR NOT EXISTS (SELECT FROM agentmarket_private.credit_lots l
                                             WHERE l.id OPERATOR(pg_catalog.=) t.lot_id
                                               AND l.user_id OPERATOR(pg_catalog.=) t.user_id
                                               AND l.credit_type OPERATOR(pg_catalog.=) t.credit_type))
    UNION ALL
    SELECT 'pot', b.user_id::text, 'head lot is not a lot of the user''s with its pot', b.head_lot_id::numeric, NULL
      FROM agentmarket.credit_balances b
     WHERE b.head_lot_id IS NOT NULL
       AND (b.head_remaining IS NULL OR b.head_remaining < 0 OR b.head_value_units IS NULL OR b.head_value_units < 0
            OR NOT EXISTS (SELECT FROM agentmarket_private.credit_lots l
                            WHERE l.id = b.head_lot_id AND l.user_id = b.user_id
                              AND (l.credit_type = 'subscription') = b.head_subscription
                              AND b.head_remaining <= l.credits AND b.head_value_units <= l.value_usd * 10000))
    UNION ALL
    -- Pots against their lots (and, through verify_ledger(), their ledger rows).
    SELECT 'pot', p.user_id::text || '/' || p.pot, 'balance differs from the sum of its lots', p.balance::numeric, p.lots::numeric
      FROM pots p WHERE p.balance OPERATOR(pg_catalog.<>) p.lots
    UNION ALL
    SELECT 'pot', v.user_id::text || COALESCE('/' || v.credit_type, ''), v.problem, v.recorded::numeric, v.expected::numeric
      FROM agentmarket.verify_ledger() v
    UNION ALL
    -- Purchases: paid - refunded - lost disputes = recognized + unspent + expired.
    -- (Plain operators from here on: the pinned search_path puts pg_catalog first.)
    SELECT 'purchase', pu.id::text, 'paid credits granted differ from what was paid',
           COALESCE(pl.granted, 0), agentmarket_private.purchase_paid_usd(pu.id)
      FROM agentmarket.purchases pu LEFT JOIN purchase_lots pl ON pl.purchase_id = pu.id
     WHERE (pu.status IN ('paid', 'refunded') OR pl.purchase_id IS NOT NULL)
       AND COALESCE(pl.granted, 0) <> agentmarket_private.purchase_paid_usd(pu.id)
    UNION ALL
    SELECT 'purchase', pl.purchase_id::text, 'paid - taken back differs from recognized + unspent + expired + frozen',
           pl.granted - pl.taken_back, pl.recognized + pl.unspent + pl.expired + pl.frozen
      FROM purchase_lots pl
     WHERE pl.granted - pl.taken_back <> pl.recognized + pl.unspent + pl.expired + pl.frozen
    UNION ALL
    -- What Stripe refunded and lost disputes took, against the ledger: paid -
    -- refunded - lost = recognized (less the revenue reversed) + unspent +
    -- expired + frozen by open disputes.
    SELECT 'purchase', x.purchase_id::text, 'paid - refunded - lost disputes differs from recognized - reversed + unspent + expired + frozen',
           x.paid - x.refunded, x.recognized - x.reversed + x.unspent + x.expired + x.frozen
      FROM (SELECT pl.purchase_id, agentmarket_private.purchase_paid_usd(pl.purchase_id) AS paid,
                   (SELECT COALESCE(sum(pp.refunded_cents + pp.dispute_lost_cents), 0) / 100.0
                      FROM agentmarket_private.purchase_payments pp
                     WHERE pp.purchase_id = pl.purchase_id) AS refunded,
                   pl.recognized, pl.unspent, pl.expired, pl.frozen,
                   (SELECT COALESCE(sum(r.value_usd), 0) FROM agentmarket_private.revenue_reversals r
                     WHERE r.purchase_id = pl.purchase_id) AS reversed
              FROM purchase_lots pl) x
     WHERE x.paid - x.refunded <> x.recognized - x.reversed + x.unspent + x.expired + x.frozen
    UNION ALL
    -- Disputes: what an open one froze is what its ledger rows froze; a closed one froze nothing.
    SELECT 'dispute', d.stripe_dispute_id, 'frozen credits differ from the dispute''s ledger rows',
           d.frozen_credits::numeric, COALESCE(OPERATOR(pg_catalog.-) sum(t.amount), 0)
      FROM agentmarket_private.disputes d
      LEFT JOIN agentmarket.credit_transactions t
        ON t.stripe_payment_id = d.stripe_dispute_id AND t.type IN ('dispute_freeze', 'dispute_release')
     GROUP BY d.stripe_dispute_id, d.frozen_credits
    HAVING d.frozen_credits <> COALESCE(OPERATOR(pg_catalog.-) sum(t.amount), 0)
    UNION ALL
    -- Sessions: earnings - clawbacks = the value of the credits consumed.
    SELECT 'session', x.id::text, 'earnings differ from the session''s recognized revenue', x.earned, x.revenue
      FROM (SELECT s.id, s.revenue,
                   COALESCE(s.creator_amount + s.platform_amount, 0)
                   - agentmarket_private.session_clawed_back_usd(s.id) AS earned
              FROM sessions s) x
     WHERE x.earned <> x.revenue
    UNION ALL
    -- Creators: transfers (net of partial reversals) + carried remainder =
    -- earnings paid - clawbacks settled - reversals owed again.
    SELECT 'creator', x.creator_id::text, 'transfers differ from earnings paid out', x.transferred, x.owed
      FROM (SELECT c.creator_id, c.transferred + c.carry AS transferred,
                   c.paid_earnings - agentmarket_private.creator_clawbacks_settled_usd(c.creator_id) - c.owed_again AS owed
              FROM creators c) x
     WHERE x.transferred <> x.owed
    UNION ALL
    -- Payouts: what partial reversals took is what their rows owe again.
    SELECT 'payout', p.id::text, 'reversed cents differ from the payout''s reversal rows',
           p.reversed_cents / 100.0, COALESCE((SELECT sum(v.amount_usd) FROM agentmarket_private.payout_reversals v
                                               WHERE v.payout_id = p.id), 0)
      FROM agentmarket.payouts p
     WHERE p.reversed_cents / 100.0 <> COALESCE((SELECT sum(v.amount_usd) FROM agentmarket_private.payout_reversals v
                                                 WHERE v.payout_id = p.id), 0)
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION agentmarket.verify_books() IS
    'Every discrepancy of the books, one row each (subject lot/ledger/pot/purchase/session/creator, its id, the problem, recorded and expected amounts): lots against their ledger rows, pots against their lots and ledger, purchases (paid - refunded - lost disputes = recognized + unspent + expired + frozen), open disputes (frozen = their ledger rows), sessions (earnings = recognized revenue - clawbacks), creators (transfers net of partial reversals + carry = earnings paid - clawbacks settled - reversals owed again), payouts (reversed cents = reversal rows). Empty means the books balance.';
GRANT EXECUTE ON FUNCTION agentmarket.verify_books() TO service_role;
