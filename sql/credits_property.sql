-- credits_property: thousands of random ledger operations (deterministic
-- seed) checked one by one against an independent model of the balances kept
-- in temp tables and computed here in PL/pgSQL, never by the extension's
-- code; then every balance, hold and ledger sum is compared with the model
-- and verify_ledger() must be empty.
\ir test/fixture.sql
BEGIN;
SELECT plan(7);

SELECT setseed(0.4242);
-- Keys carry the transaction id: failed outcomes outlive the rollback.
SELECT set_config('credits_property.key_prefix', 'p' || txid_current() || '-', true) IS NOT NULL;
SELECT agentmarket.configure('free_trial_credits', '50');

-- The model: pots, held credits and what deductions without a session took
-- (and refunds have not yet returned), per pot.
CREATE TEMP TABLE model_user (n int PRIMARY KEY, id uuid NOT NULL, sub int NOT NULL, top int NOT NULL, held int NOT NULL,
                              open_sub int NOT NULL, open_top int NOT NULL);
CREATE TEMP TABLE model_hold (id uuid PRIMARY KEY, n int NOT NULL, amount int NOT NULL, status text NOT NULL,
                              seq serial);
CREATE TEMP TABLE model_key (n int, key text, amount int, outcome text, PRIMARY KEY (n, key));
CREATE TEMP TABLE mismatch (op int, what text, expected text, got text);
CREATE TEMP TABLE op_count (kind text PRIMARY KEY, calls int NOT NULL DEFAULT 0, refused int NOT NULL DEFAULT 0);

INSERT INTO agentmarket.users (id, email)
SELECT ('00000000-0000-4000-8000-0000000cf' || lpad(n::text, 3, '0'))::uuid, 'property-' || n || '@example.com'
  FROM generate_series(1, 12) n;
INSERT INTO model_user SELECT n, ('00000000-0000-4000-8000-0000000cf' || lpad(n::text, 3, '0'))::uuid, 50, 0, 0, 0, 0
  FROM generate_series(1, 12) n;

-- The model's view of a user as a credit_state row text.
CREATE FUNCTION pg_temp.state(m model_user) RETURNS text LANGUAGE sql AS $$
  SELECT '(' || m.sub || ',' || m.top || ',' || m.held || ',' || (m.sub + m.top - m.held) || ')'
$$;

CREATE FUNCTION pg_temp.run(ops int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  i int; pick int; r float8; m model_user; h model_hold; op_kind text;
  amt int; take int; keep int; expected text; got text; d text; new_hold uuid; key text; mk model_key;
BEGIN
  FOR i IN 1 .. ops LOOP
    r := random();
    pick := 1 + floor(random() * 12)::int;
    SELECT * INTO m FROM model_user WHERE n = pick;
    got := NULL;
    IF r < 0.30 THEN
      ------------------------------------------------------------ deduct
      op_kind := 'deduct';
      amt := 1 + floor(random() * 120)::int;
      IF m.sub + m.top - m.held < amt THEN
        expected := 'ERROR PT402 available ' || (m.sub + m.top - m.held) || ', required ' || amt;
      ELSE
        take := least(m.sub, amt);
        m.sub := m.sub - take; m.top := m.top - (amt - take);
        m.open_sub := m.open_sub + take; m.open_top := m.open_top + (amt - take);
        expected := pg_temp.state(m);
      END IF;
      BEGIN
        SELECT row(x.*)::text INTO got FROM agentmarket.deduct_credits(m.id, amt) x;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        got := 'ERROR ' || SQLSTATE || ' ' || d;
      END;
    ELSIF r < 0.38 THEN
      ------------------------------------------------------------ keyed deduct: new key or a repeat
      op_kind := 'keyed deduct';
      SELECT * INTO mk FROM model_key WHERE n = m.n ORDER BY key LIMIT 1 OFFSET floor(random() * 4)::int;
      IF mk.key IS NOT NULL AND random() < 0.5 THEN
        key := mk.key; amt := mk.amount; expected := mk.outcome;     -- a repeat changes nothing
      ELSE
        key := current_setting('credits_property.key_prefix') || i; amt := 1 + floor(random() * 120)::int;
        IF m.sub + m.top - m.held < amt THEN
          expected := 'ERROR PT402 available ' || (m.sub + m.top - m.held) || ', required ' || amt;
        ELSE
          take := least(m.sub, amt);
          m.sub := m.sub - take; m.top := m.top - (amt - take);
          m.open_sub := m.open_sub + take; m.open_top := m.open_top + (amt - take);
          expected := pg_temp.state(m);
        END IF;
        -- A refused call leaves no record: only applied keys are repeated.
        IF expected NOT LIKE 'ERROR%' THEN
          INSERT INTO model_key VALUES (m.n, key, amt, expected);
        END IF;
      END IF;
      BEGIN
        SELECT row(x.*)::text INTO got FROM agentmarket.deduct_credits(m.id, amt, NULL, key) x;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        got := 'ERROR ' || SQLSTATE || ' ' || d;
      END;
    ELSIF r < 0.48 THEN
      ------------------------------------------------------------ grants
      amt := 1 + floor(random() * 150)::int;
      IF random() < 0.5 THEN
        op_kind := 'grant topup';
        m.top := m.top + amt;
        expected := pg_temp.state(m);
        SELECT row(x.*)::text INTO got FROM agentmarket.grant_credits(m.id, amt, 'topup', 'topup_purchase') x;
      ELSE
        op_kind := 'grant subscription';
        m.sub := m.sub + amt;
        expected := pg_temp.state(m);
        SELECT row(x.*)::text INTO got FROM agentmarket.grant_credits(m.id, amt, 'subscription', 'subscription_refresh') x;
      END IF;
    ELSIF r < 0.53 THEN
      ------------------------------------------------------------ monthly refresh
      op_kind := 'refresh';
      amt := floor(random() * 200)::int;
      keep := least(m.sub, greatest(m.held - m.top, 0));
      m.sub := keep + amt;
      expected := pg_temp.state(m);
      SELECT row(x.*)::text INTO got FROM agentmarket.refresh_subscription_credits(m.id, amt) x;
    ELSIF r < 0.61 THEN
      ------------------------------------------------------------ refund (no session)
      op_kind := 'refund';
      amt := 1 + floor(random() * 80)::int;
      IF amt > m.open_sub + m.open_top THEN
        expected := 'ERROR 22023 refundable ' || (m.open_sub + m.open_top) || ', requested ' || amt;
      ELSE
        take := least(m.open_top, amt);          -- top-up first
        m.top := m.top + take; m.open_top := m.open_top - take;
        m.sub := m.sub + (amt - take); m.open_sub := m.open_sub - (amt - take);
        expected := pg_temp.state(m);
      END IF;
      BEGIN
        SELECT row(x.*)::text INTO got FROM agentmarket.refund_credits(m.id, amt) x;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        got := 'ERROR ' || SQLSTATE || ' ' || d;
      END;
    ELSIF r < 0.75 THEN
      ------------------------------------------------------------ reserve
      op_kind := 'reserve';
      amt := 1 + floor(random() * 100)::int;
      IF m.sub + m.top - m.held < amt THEN
        expected := 'ERROR PT402 available ' || (m.sub + m.top - m.held) || ', required ' || amt;
      ELSE
        m.held := m.held + amt;
        expected := 'hold';
      END IF;
      BEGIN
        new_hold := agentmarket.reserve_credits(m.id, amt);
        got := 'hold';
        INSERT INTO model_hold (id, n, amount, status) VALUES (new_hold, m.n, amt, 'active');
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        got := 'ERROR ' || SQLSTATE || ' ' || d;
      END;
    ELSE
      ------------------------------------------------------------ resolve one of the user's holds
      SELECT * INTO h FROM model_hold WHERE n = m.n ORDER BY seq DESC LIMIT 1 OFFSET floor(random() * 3)::int;
      IF h.id IS NULL THEN
        CONTINUE;
      END IF;
      r := random();
      IF r < 0.5 THEN
        op_kind := 'capture';
        amt := floor(random() * (h.amount + 10))::int;
        IF h.status <> 'active' THEN
          expected := 'ERROR 22023 The hold is ' || h.status || '; a hold resolves once.';
        ELSIF amt > h.amount THEN
          expected := 'ERROR 22023 held ' || h.amount || ', requested ' || amt;
        ELSE
          take := least(m.sub, amt);
          m.sub := m.sub - take; m.top := m.top - (amt - take); m.held := m.held - h.amount;
          m.open_sub := m.open_sub + take; m.open_top := m.open_top + (amt - take);
          UPDATE model_hold SET status = 'captured' WHERE id = h.id;
          expected := pg_temp.state(m);
        END IF;
        BEGIN
          SELECT row(x.*)::text INTO got FROM agentmarket.capture_hold(h.id, amt) x;
        EXCEPTION WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
          got := 'ERROR ' || SQLSTATE || ' ' || d;
        END;
      ELSIF r < 0.85 THEN
        op_kind := 'release';
        IF h.status <> 'active' THEN
          expected := 'ERROR 22023 The hold is ' || h.status || '; a hold resolves once.';
        ELSE
          m.held := m.held - h.amount;
          UPDATE model_hold SET status = 'released' WHERE id = h.id;
          expected := pg_temp.state(m);
        END IF;
        BEGIN
          SELECT row(x.*)::text INTO got FROM agentmarket.release_hold(h.id) x;
        EXCEPTION WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
          got := 'ERROR ' || SQLSTATE || ' ' || d;
        END;
      ELSE
        op_kind := 'expire';
        IF h.status = 'active' THEN
          UPDATE agentmarket_private.credit_holds SET expires_at = now() - interval '1 second' WHERE id = h.id;
          m.held := m.held - h.amount;
          UPDATE model_hold SET status = 'expired' WHERE id = h.id;
          expected := '1';
        ELSE
          expected := '0';
        END IF;
        got := agentmarket.release_expired_holds()::text;
      END IF;
    END IF;

    INSERT INTO op_count AS c (kind, calls, refused) VALUES (op_kind, 1, (got LIKE 'ERROR%')::int)
      ON CONFLICT (kind) DO UPDATE SET calls = c.calls + 1, refused = c.refused + (got LIKE 'ERROR%')::int;
    IF got IS DISTINCT FROM expected THEN
      INSERT INTO mismatch VALUES (i, op_kind, expected, got);
    ELSIF expected NOT LIKE 'ERROR%' THEN
      UPDATE model_user SET sub = m.sub, top = m.top, held = m.held, open_sub = m.open_sub, open_top = m.open_top
       WHERE n = m.n;
    END IF;
  END LOOP;
END $$;

SELECT pg_temp.run(3000);

SELECT is_empty($$SELECT * FROM mismatch ORDER BY op LIMIT 5$$,
  'every one of 3000 random operations returned what the model predicts (balances, or the SQLSTATE and DETAIL)');
SELECT kind || ': ' || calls || ' calls, ' || refused || ' refused' FROM op_count ORDER BY kind;
SELECT ok((SELECT count(*) = 10 AND min(calls) >= 50 AND sum(refused) >= 100 FROM op_count),
  'the run covered every kind of operation at least 50 times, and at least 100 refusals');
SELECT is_empty($$
  SELECT m.n, m.sub, m.top, m.held, b.subscription_credits, b.topup_credits, b.held_credits
    FROM model_user m JOIN agentmarket.credit_balances b ON b.user_id = m.id
   WHERE (m.sub, m.top, m.held) IS DISTINCT FROM (b.subscription_credits, b.topup_credits, b.held_credits)$$,
  'every balance row equals the model');
SELECT is_empty($$
  SELECT m.n FROM model_user m,
         LATERAL (SELECT coalesce(sum(t.amount) FILTER (WHERE t.credit_type = 'subscription'), 0)::int AS sub,
                         coalesce(sum(t.amount) FILTER (WHERE t.credit_type = 'topup'), 0)::int AS top
                    FROM agentmarket.credit_transactions t WHERE t.user_id = m.id) l
   WHERE (m.sub, m.top) IS DISTINCT FROM (l.sub, l.top)$$,
  'every user''s ledger sums to the model''s pots');
SELECT is_empty($$
  SELECT h.id FROM model_hold h JOIN agentmarket_private.credit_holds c ON c.id = h.id WHERE c.status <> h.status$$,
  'every hold has the status the model gives it');
SELECT is((SELECT count(*)::int FROM model_hold), (SELECT count(*)::int FROM agentmarket_private.credit_holds c
            WHERE c.user_id IN (SELECT id FROM model_user)), 'the model knows every hold');
SELECT is_empty($$SELECT * FROM agentmarket.verify_ledger()$$, 'verify_ledger() is empty after the run');

SELECT * FROM finish();
ROLLBACK;
