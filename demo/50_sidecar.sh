# 50_sidecar: the outbox at work.  The Fly and Stripe stand-ins (test/standin/)
# play the two APIs; agentmarket-sidecar --once drains the queue against them.
# Linus hires Standup Bot (an instance, provisioning, with its provision job),
# the sidecar makes the Fly app, volume and machine for it and for the Inbox
# Zero he hired in step 30, and the instances run;
# then suspend, resume and destroy go the same way; then Stripe jobs: a
# customer for Linus and a Checkout session for a top-up pack.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 - <<'PY'
import json, os, sys
sys.dont_write_bytecode = True  # no __pycache__ beside the suites
sys.path.insert(0, "test/suites")
from sidecar_common import ExistingDatabase, Standin, run_once

db = ExistingDatabase(os.environ.get("PGDATABASE", "agentmarket_demo"))
fly, stripe = Standin("fly"), Standin("stripe")
LINUS, BOT = "00000000-0000-4000-8000-0000000e0001", "00000000-0000-4000-8000-00000000a9e4"


def sidecar(title):
    rc, log, _ = run_once(db, fly, stripe)
    done = [e for e in log if e.get("event") in ("job_succeeded", "job_retry", "job_dead")]
    print("  sidecar --once (%s): %s" % (title, ", ".join("%s %s" % (e["kind"], e["event"][4:]) for e in done) or "nothing due"))
    if rc != 0:
        sys.exit("the sidecar failed")


def owner(fn, iid):
    db.sql("BEGIN; SET LOCAL ROLE authenticated; "
           "SELECT set_config('request.jwt.claims', json_build_object('sub', :'a1')::text, true) \\g /dev/null\n"
           "SELECT agentmarket.%s(:'a2') \\g /dev/null\nCOMMIT;" % fn, LINUS, iid)


def show(iid):
    st, mid, vol, app = db.sql("SELECT status, fly_machine_id, coalesce(fly_volume_id, '-'), fly_app_name "
                              "FROM agentmarket.agent_instances WHERE id = :'a1'", iid)[0]
    m = [m for m in fly.state()["machines"] if m["metadata"].get("agentmarket_instance") == iid]
    apps = [a["name"] for a in fly.state()["apps"]]
    print("  instance: %-12s machine %-15s volume %-22s | Fly: app %s, machine %s" %
          (st, mid or "-", vol, "present" if app in apps else "gone", m[0]["state"] if m else "-"))


try:
    print("Fly stand-in on %s, Stripe stand-in on %s" % (fly.url, stripe.url))
    # Linus hires Standup Bot through hire_agent, as PostgREST would call it:
    # the instance (provisioning) and its provision job in one transaction.
    iid = db.value("BEGIN; SET LOCAL ROLE authenticated; "
                   "SELECT set_config('request.jwt.claims', json_build_object('sub', :'a1')::text, true) \\g /dev/null\n"
                   "SELECT id FROM agentmarket.hire_agent(:'a2');\nCOMMIT;", LINUS, BOT)
    print("Linus hires Standup Bot: instance %s, app %s" % (iid, db.value("SELECT agentmarket_private.fly_app_name(:'a1')", iid)))
    show(iid)
    sidecar("provision")
    show(iid)
    m = [m for m in fly.state()["machines"] if m["metadata"].get("agentmarket_instance") == iid][0]
    print("  the machine: image %s, %s cpu x%d, %d MB, tagged agentmarket_instance=%s" %
          (m["config"]["image"], m["config"]["guest"]["cpu_kind"], m["config"]["guest"]["cpus"],
           m["config"]["guest"]["memory_mb"], m["metadata"]["agentmarket_instance"]))
    for fn in ("suspend_instance", "resume_instance", "destroy_instance"):
        print("Linus calls agentmarket.%s:" % fn)
        owner(fn, iid)
        sidecar(fn)
        show(iid)

    print("Stripe jobs (as the payment capabilities will enqueue them):")
    db.sql("SELECT agentmarket_private.enqueue_stripe_job('stripe.create_customer', "
           "jsonb_build_object('email', 'linus@users.example', 'name', 'Linus', 'metadata', jsonb_build_object('user_id', :'a1')), "
           "'customer:' || :'a1', jsonb_build_object('user_id', :'a1'))", LINUS)
    sidecar("customer")
    cus = db.value("SELECT stripe_customer_id FROM agentmarket.users WHERE id = :'a1'", LINUS)
    print("  users.stripe_customer_id of Linus = %s" % cus)
    db.sql("SELECT agentmarket_private.enqueue_stripe_job('stripe.create_checkout_session', jsonb_build_object("
           "'mode', 'payment', 'customer', :'a1', 'success_url', 'https://agentmarket.example/paid', "
           "'cancel_url', 'https://agentmarket.example/cancel', 'line_items', jsonb_build_array(jsonb_build_object("
           "'quantity', 1, 'price_data', jsonb_build_object('currency', 'usd', 'unit_amount', 1000, "
           "'product_data', jsonb_build_object('name', '1,000 credits'))))), 'checkout:demo-topup-1')", cus)
    sidecar("checkout session")
    r = json.loads(db.value("SELECT result FROM agentmarket_private.jobs WHERE idempotency_key = 'checkout:demo-topup-1'"))
    req = stripe.requests(path="^/v1/checkout/sessions$")[-1]
    print("  checkout session %s (%s, %s): %s" % (r["id"], r["mode"], r["payment_status"], r["url"]))
    print("  sent with Idempotency-Key %s and form body:" % req["idempotency_key"])
    for k, v in sorted(req["body"].items()):
        print("    %s=%s" % (k, v))
    print("Queue depth by kind and status (agentmarket_private.queue_depth):")
    for kind, status, n in db.sql("SELECT kind, status, jobs FROM agentmarket_private.queue_depth ORDER BY kind, status"):
        print("  %-32s %-10s %s" % (kind, status, n))
finally:
    fly.stop()
    stripe.stop()
PY
