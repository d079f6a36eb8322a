# 55_payments: Linus buys credits through Stripe.  buy_credits makes a pending
# purchase and its Checkout job; the sidecar creates the session at the Stripe
# stand-in; the stand-in plays Linus paying and Stripe signing the
# checkout.session.completed event; the platform's HTTP edge hands the raw
# body and the Stripe-Signature header to handle_stripe_webhook.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 - <<'PY'
import json, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "test/suites")
from sidecar_common import ExistingDatabase, Standin, run_once

db = ExistingDatabase(os.environ.get("PGDATABASE", "agentmarket_demo"))
fly, stripe = Standin("fly"), Standin("stripe")
LINUS = "00000000-0000-4000-8000-0000000e0001"
SECRET = "whsec_demo0123456789"
AS_LINUS = ("BEGIN; SET LOCAL ROLE authenticated; SELECT set_config('request.jwt.claims', "
            "json_build_object('sub', '%s', 'role', 'authenticated')::text, true) \\g /dev/null\n" % LINUS)
AS_PLATFORM = ("BEGIN; SET LOCAL ROLE service_role; SELECT set_config('request.jwt.claims', "
               "'{\"role\": \"service_role\"}', true) \\g /dev/null\n")


def balance():
    return db.sql(AS_LINUS + "SELECT subscription_credits, topup_credits, available_credits FROM agentmarket.my_balance();\nCOMMIT;")[0]


def deliver(payload, header):
    return json.loads(db.value(AS_PLATFORM + "SELECT agentmarket.handle_stripe_webhook(:'a1', :'a2');\nCOMMIT;",
                               payload, header))


try:
    db.sql("SELECT agentmarket.configure('stripe_webhook_secret', :'a1')", SECRET)
    # This stand-in starts empty: the customer made for Linus in step 50 lives
    # in that step's stand-in, so Checkout asks for his email instead.
    db.sql("UPDATE agentmarket.users SET stripe_customer_id = NULL WHERE id = :'a1'", LINUS)
    print("Packs on sale (agentmarket.credit_packs(), for anyone):")
    for code, name, kind, credits, cents, cur in db.sql("SELECT * FROM agentmarket.credit_packs()"):
        print("  %-12s %-28s %-12s %6s credits  %s %.2f" % (code, name, kind, credits, cur.upper(), int(cents) / 100))
    sub, top, avail = balance()
    print("Linus's balance: subscription %s, top-up %s, available %s" % (sub, top, avail))

    pid = db.value(AS_LINUS + "SELECT id FROM agentmarket.buy_credits('topup_m');\nCOMMIT;")
    print("Linus calls buy_credits('topup_m'): purchase %s, %s" %
          (pid, db.value("SELECT status FROM agentmarket.purchases WHERE id = :'a1'", pid)))
    rc, log, _ = run_once(db, fly, stripe)
    done = [e for e in log if e.get("event") in ("job_succeeded", "job_retry", "job_dead")]
    print("  sidecar --once: %s" % ", ".join("%s %s" % (e["kind"], e["event"][4:]) for e in done))
    if rc != 0:
        sys.exit("the sidecar failed")
    cs, url = db.sql("SELECT stripe_checkout_session_id, checkout_url FROM agentmarket.purchases WHERE id = :'a1'", pid)[0]
    print("  the purchase has its Checkout session %s\n    %s" % (cs, url[:60] + "..."))

    done = stripe.call("POST", "/_standin/checkout_sessions/%s/complete" % cs, {"webhook_secret": SECRET})
    payload, header = done["payload"], done["stripe_signature"]
    print("Linus pays; Stripe sends %s %s\n  Stripe-Signature: %s..." % (done["event"]["type"], done["event"]["id"], header[:40]))
    r = deliver(payload, header)
    print("handle_stripe_webhook (service_role): %s, +%s %s credits" % (r["outcome"], r["credits"], r["credit_type"]))
    st, piid = db.sql("SELECT status, stripe_payment_intent_id FROM agentmarket.purchases WHERE id = :'a1'", pid)[0]
    print("  the purchase is %s (payment intent %s)" % (st, piid))
    r = deliver(payload, header)
    print("The same delivery again: %s (first outcome: %s)" % (r["outcome"], r["first_outcome"]))
    sub, top2, avail = balance()
    print("Linus's balance (my_balance()): subscription %s, top-up %s, available %s" % (sub, top2, avail))
    if int(top2) - int(top) != 1100:
        sys.exit("expected 1,100 more top-up credits")
    problems = db.value("SELECT count(*) FROM agentmarket.verify_ledger()")
    print("verify_ledger(): %s problems" % problems)
    if problems != "0":
        sys.exit("the ledger does not add up")
finally:
    fly.stop()
    stripe.stop()
PY
