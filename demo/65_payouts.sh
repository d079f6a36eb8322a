# 65_payouts: Ada is paid for the session of step 60 through Stripe Connect.
# She onboards (the sidecar creates her account with controller properties,
# whose handler asks for her onboarding link); a payout run before Stripe says
# her account can be paid pays nothing; once account.updated arrives at the
# Connect endpoint, the run claims her payable earnings and enqueues one
# transfer; the sidecar makes it at the Stripe stand-in, and the payout and
# her earnings are marked paid.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 - <<'PY'
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "test/suites")
from sidecar_common import ExistingDatabase, Standin, run_once

db = ExistingDatabase(os.environ.get("PGDATABASE", "agentmarket_demo"))
fly, stripe = Standin("fly"), Standin("stripe")
ADA = "00000000-0000-4000-8000-0000000c0001"
AS_ADA = ("BEGIN; SET LOCAL ROLE authenticated; SELECT set_config('request.jwt.claims', "
          "json_build_object('sub', '%s', 'role', 'authenticated')::text, true) \\g /dev/null\n" % ADA)
AS_PLATFORM = ("BEGIN; SET LOCAL ROLE service_role; SELECT set_config('request.jwt.claims', "
               "'{\"role\": \"service_role\"}', true) \\g /dev/null\n")


def sidecar():
    rc, log, _ = run_once(db, fly, stripe)
    done = [e for e in log if e.get("event") in ("job_succeeded", "job_retry", "job_dead")]
    print("  sidecar --once: %s" % (", ".join("%s %s" % (e["kind"], e["event"][4:]) for e in done) or "nothing to do"))
    if rc != 0 or any(e["event"] != "job_succeeded" for e in done):
        sys.exit("the sidecar failed")


try:
    db.sql("SELECT agentmarket.configure('payout_holding_days', '0')")
    db.sql("SELECT agentmarket.configure('payout_minimum_usd', '0.10')")
    print("Settings for the demo: payout_holding_days 0, payout_minimum_usd 0.10")
    # This stand-in starts empty: Ada has no Connect account in it yet.
    db.sql("UPDATE agentmarket.users SET stripe_connect_account_id = NULL WHERE id = :'a1'", ADA)

    job = db.value(AS_ADA + "SELECT agentmarket.start_creator_onboarding();\nCOMMIT;")
    print("Ada calls start_creator_onboarding(): job %s (%s)" %
          (job, db.value("SELECT kind FROM agentmarket_private.jobs WHERE id = :'a1'", job)))
    sidecar()
    sidecar()
    st, acct, url = db.sql(AS_ADA + "SELECT status, stripe_connect_account_id, url FROM agentmarket.my_onboarding_link();\nCOMMIT;")[0]
    print("Ada's my_onboarding_link(): %s, account %s\n    %s" % (st, acct, url))
    if st != "ready":
        sys.exit("onboarding did not produce a link")
    unpaid = db.value("SELECT sum(creator_amount) FROM agentmarket.creator_earnings WHERE creator_id = :'a1' AND NOT paid_out", ADA)
    print("\nAda's unpaid earnings: %s USD" % unpaid)
    rows = db.sql(AS_PLATFORM + "SELECT id FROM agentmarket.run_payouts();\nCOMMIT;")
    print("run_payouts() before Stripe says her account can be paid: %d payouts (her earnings stay owed, no transfer is tried)"
          % len(rows))
    if rows:
        sys.exit("a creator whose account is not ready was paid")

    db.sql("SELECT agentmarket.configure('stripe_connect_webhook_secret', 'whsec_demoConnect')")
    ev = stripe.call("POST", "/_standin/accounts/%s/onboard" % acct, {"webhook_secret": "whsec_demoConnect"})
    print("Ada completes onboarding at Stripe (the stand-in enables %s) and Stripe sends account.updated" % acct)
    r = db.value("SELECT agentmarket.handle_stripe_connect_webhook(:'a1', :'a2')::text", ev["payload"], ev["stripe_signature"])
    print("  handle_stripe_connect_webhook(): %s" % r)
    rows = db.sql(AS_PLATFORM + "SELECT id, amount_usd, transfer_cents, remainder_usd FROM agentmarket.run_payouts();\nCOMMIT;")
    for pid, amount, cents, rem in rows:
        print("run_payouts() (service_role): payout %s: %s USD, transfer %s cents, %s USD carried to the next payout"
              % (pid, amount, cents, rem))
    if len(rows) != 1:
        sys.exit("expected one payout")
    pid = rows[0][0]
    key = db.value("SELECT idempotency_key FROM agentmarket_private.jobs WHERE payload->>'payout_id' = :'a1'", pid)
    print("  stripe.create_transfer enqueued, Idempotency-Key %s" % key)
    sidecar()
    status, tr = db.sql("SELECT status, stripe_transfer_id FROM agentmarket.payouts WHERE id = :'a1'", pid)[0]
    print("The payout is %s, transfer %s" % (status, tr))
    t = [x for x in stripe.state()["transfers"] if x["id"] == tr]
    if status != "paid" or len(t) != 1:
        sys.exit("the transfer was not made once")
    print("  at Stripe: %s %s %s to %s" % (t[0]["id"], t[0]["amount"], t[0]["currency"], t[0]["destination"]))
    print("Ada's earnings rows:")
    for row in db.sql("SELECT creator_amount, paid_out, stripe_transfer_id FROM agentmarket.creator_earnings "
                      "WHERE creator_id = :'a1' ORDER BY created_at", ADA):
        print("  %s USD  paid_out=%s  %s" % tuple(row))
    print("Carried to Ada's next payout: %s USD" %
          db.value("SELECT agentmarket.payout_carry_usd(:'a1')", ADA))
    db.sql("SELECT agentmarket.configure('payout_holding_days', NULL)")
    db.sql("SELECT agentmarket.configure('payout_minimum_usd', NULL)")
finally:
    fly.stop()
    stripe.stop()
PY
