# 66_lifecycle: what Stripe does after Checkout, and the books that follow.
# Linus subscribes to the Pro plan (Checkout through the sidecar) and spends
# some of it; a month later Stripe renews the plan (invoice.paid): what is left
# of the old period expires and a new lot worth the invoice is granted.  Then
# support refunds his top-up of step 55 in Stripe's dashboard
# (charge.refunded): its unspent credits come back, the revenue of the
# credits he spent on Ada's agent is reversed, and as Ada was already paid
# for it (step 65), it is clawed back from her next payout.  verify_books()
# is empty after each.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 - <<'PY'
import json, os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, "test/suites")
from sidecar_common import ExistingDatabase, Standin, run_once

db = ExistingDatabase(os.environ.get("PGDATABASE", "agentmarket_demo"))
fly, stripe = Standin("fly"), Standin("stripe")
LINUS, ADA = "00000000-0000-4000-8000-0000000e0001", "00000000-0000-4000-8000-0000000c0001"
INBOX = "00000000-0000-4000-8000-00000000a9e1"
SECRET = "whsec_demo0123456789"
AS_LINUS = ("BEGIN; SET LOCAL ROLE authenticated; SELECT set_config('request.jwt.claims', "
            "json_build_object('sub', '%s', 'role', 'authenticated')::text, true) \\g /dev/null\n" % LINUS)
AS_PLATFORM = ("BEGIN; SET LOCAL ROLE service_role; SELECT set_config('request.jwt.claims', "
               "'{\"role\": \"service_role\"}', true) \\g /dev/null\n")


def balance():
    return "subscription %s, top-up %s, available %s" % tuple(
        db.sql(AS_LINUS + "SELECT subscription_credits, topup_credits, available_credits FROM agentmarket.my_balance();\nCOMMIT;")[0])


def deliver(payload, header):
    # Amounts as the database wrote them (exact numeric, not floats).
    return json.loads(db.value(AS_PLATFORM + "SELECT agentmarket.handle_stripe_webhook(:'a1', :'a2');\nCOMMIT;",
                               payload, header), parse_float=str)


def stripe_sends(type_, obj):
    return stripe.call("POST", "/_standin/events", {"type": type_, "object": obj, "webhook_secret": SECRET})


def books():
    rows = db.sql("SELECT subject, id, problem FROM agentmarket.verify_books()")
    print("verify_books(): %s" % ("empty, the books balance" if not rows else rows))
    if rows:
        sys.exit("the books do not balance")


try:
    # This stand-in starts empty: Checkout asks for Linus's email again.
    db.sql("UPDATE agentmarket.users SET stripe_customer_id = NULL WHERE id = :'a1'", LINUS)
    print("== A renewal")
    pid = db.value(AS_LINUS + "SELECT id FROM agentmarket.buy_credits('pro_monthly');\nCOMMIT;")
    rc, _, _ = run_once(db, fly, stripe)
    cs = db.value("SELECT stripe_checkout_session_id FROM agentmarket.purchases WHERE id = :'a1'", pid)
    if rc != 0 or not cs:
        sys.exit("the Checkout session was not made")
    done = stripe.call("POST", "/_standin/checkout_sessions/%s/complete" % cs, {"webhook_secret": SECRET})
    r = deliver(done["payload"], done["stripe_signature"])
    sub = db.value("SELECT stripe_subscription_id FROM agentmarket.purchases WHERE id = :'a1'", pid)
    print("Linus subscribes to pro_monthly (USD 19.00 a month) through Checkout: %s, +%s %s credits, plan %s"
          % (r["outcome"], r["credits"], r["credit_type"], sub))
    print("  Linus's balance: %s" % balance())
    instance = db.value("SELECT id FROM agentmarket.agent_instances WHERE user_id = :'a1' AND agent_id = :'a2'", LINUS, INBOX)
    s = db.value(AS_LINUS + "SELECT id FROM agentmarket.start_session(:'a1', 'web');\nCOMMIT;", instance)
    db.sql(AS_PLATFORM + "SELECT agentmarket.end_session(:'a1', 60, 300, 600) \\g /dev/null\nCOMMIT;", s)
    gross = db.value("SELECT gross_revenue FROM agentmarket.creator_earnings WHERE session_id = :'a1'", s)
    print("He spends a session on Inbox Zero: the plan's credits go first, 25 x 19.00 / 2500 = %s USD of revenue" % gross)
    print("  Linus's balance: %s" % balance())

    now = int(time.time())
    ev = stripe_sends("invoice.paid", {
        "id": "in_demoRenewal1", "object": "invoice", "subscription": sub, "billing_reason": "subscription_cycle",
        "status": "paid", "amount_due": 1900, "amount_paid": 1900, "currency": "usd",
        "charge": "ch_demoRenewal1", "payment_intent": "pi_demoRenewal1",
        "lines": {"object": "list", "data": [{"object": "line_item",
                                              "period": {"start": now, "end": now + 30 * 86400}}]}})
    r = deliver(ev["payload"], ev["stripe_signature"])
    print("A month later Stripe renews the plan and sends invoice.paid (billing_reason subscription_cycle): %s,"
          " +%s credits worth %s USD" % (r["outcome"], r["credits"], r["value_usd"]))
    for row in db.sql("SELECT type, amount, value_usd, description FROM agentmarket.credit_transactions "
                      "WHERE user_id = :'a1' AND type IN ('subscription_expiry', 'subscription_refresh') "
                      "ORDER BY created_at, amount", LINUS):
        print("  ledger: %-22s %6s credits %9s USD  %s" % tuple(row))
    print("  what was left of the first month expired (its value is the platform's); Linus's balance: %s" % balance())
    r = deliver(ev["payload"], ev["stripe_signature"])
    print("The same invoice.paid delivered again: %s (one renewal per invoice)" % r["outcome"])
    books()

    print("\n== A refund with clawback")
    top = db.sql("SELECT id, stripe_payment_intent_id, amount_cents FROM agentmarket.purchases "
                 "WHERE user_id = :'a1' AND product = 'topup_m' AND status = 'paid'", LINUS)[0]
    paid = db.value("SELECT coalesce(sum(creator_amount), 0) FROM agentmarket.creator_earnings "
                    "WHERE creator_id = :'a1' AND paid_out", ADA)
    print("Linus's top-up of step 55 (payment %s, USD %.2f) paid for sessions he had on Ada's agents;"
          " Ada has been paid %s USD (step 65)." % (top[1], int(top[2]) / 100, paid))
    ev = stripe_sends("charge.refunded", {
        "id": "ch_demoTopup", "object": "charge", "amount": int(top[2]), "amount_refunded": int(top[2]),
        "currency": "usd", "refunded": True, "payment_intent": top[1], "status": "succeeded"})
    r = deliver(ev["payload"], ev["stripe_signature"])
    print("Support refunds it in full in Stripe's dashboard; Stripe sends charge.refunded: %s" % r["outcome"])
    print("  %s unspent credits taken back (worth %s USD); the revenue of the spent ones reversed: %s USD"
          % (r["credits_taken_back"], r["value_taken_back"], r["revenue_reversed"]))
    print("  the %s credits he had spent are recovered from his other credits: %s (debt left: %s)"
          % (int(r["credits_recovered"]) + int(r["debt"]), r["credits_recovered"], r["debt"]))
    print("  Linus's balance: %s" % balance())
    for row in db.sql("SELECT gross_usd, creator_amount, reason FROM agentmarket_private.creator_clawbacks "
                      "WHERE creator_id = :'a1'", ADA):
        print("Ada's clawback: %s USD of revenue taken back, %s USD of it hers (%s): her next payout is that much less"
              % tuple(row))
    if db.value("SELECT count(*) FROM agentmarket_private.creator_clawbacks WHERE creator_id = :'a1'", ADA) == "0":
        sys.exit("no clawback")
    r = deliver(ev["payload"], ev["stripe_signature"])
    print("The same charge.refunded delivered again: %s" % r["outcome"])
    books()
finally:
    fly.stop()
    stripe.stop()
PY
