#!/usr/bin/python3
"""Stand-in for the Stripe API (https://api.stripe.com/v1/..., version 2024-06-20).

  /usr/bin/python3 test/standin/stripe_server.py --port P --api-key K [--latency-ms N]
      [--seed S] [--log-limit N] [--port-file F]

Answers as API 2024-06-20 does (a request's Stripe-Version must be that version,
or absent: the account's default is the same).  Form bodies with bracket nesting
are checked against specs/stripe-openapi-2020-08-27-subset.json amended by
specs/stripe-2024-06-20-overlay.json (unknown parameter -> 400
parameter_unknown, missing required -> 400 parameter_missing). Idempotency-Key
follows Stripe: the first response (even a 500) is saved and replayed; the same key
with other parameters -> 400 idempotency_error; while the first request with a key is
in flight -> 409 idempotency_key_in_use."""

import base64
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import string
import sys
import time
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spec_schema import (STRIPE_API_VERSION, FormError, check_form,  # noqa: E402
                         load_stripe_spec, parse_form_pairs, path_template_regex)
from standin_http import StandinServer, base_args, json_response, serve  # noqa: E402

ALNUM = string.ascii_letters + string.digits
CURRENCY = re.compile(r"^[a-z]{3}$")


_rand = random.Random()


def sid(prefix, n=24):
    """A Stripe-like object id (random, not secret)."""
    return prefix + "".join(_rand.choices(ALNUM, k=n))


def serr(status, type_, message, code=None, param=None, extra_headers=None):
    """Stripe's error body {"error": {"type", "code", "message", "param"}}."""
    e = {"type": type_, "message": message}
    if code:
        e["code"] = code
        e["doc_url"] = "https://stripe.com/docs/error-codes/%s" % code.replace("_", "-")
    if param:
        e["param"] = param
    return json_response(status, {"error": e}, extra_headers)


def invalid(message, code=None, param=None):
    return serr(400, "invalid_request_error", message, code, param)


def missing(name, message=None):
    return invalid(message or "Missing required param: %s." % name, "parameter_missing", name)


def no_such(kind, oid, param="id", status=404):
    return invalid_status(status, "No such %s: '%s'" % (kind, oid), "resource_missing", param)


def invalid_status(status, message, code=None, param=None):
    return serr(status, "invalid_request_error", message, code, param)


def empty_list(url):
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


class StripeServer(StandinServer):
    name = "stripe"

    def __init__(self, args):
        super().__init__(args)
        self.spec = load_stripe_spec()
        self.routes = []
        self.spec_routes = []
        for tmpl, ops in self.spec["paths"].items():
            self.spec_routes.append((path_template_regex(tmpl),
                                     {m.upper() for m in ops if m != "parameters"}))
        r = self.route
        r("POST", "/v1/customers", self.create_customer)
        r("GET", "/v1/customers", self.list_customers)
        r("GET", "/v1/customers/{customer}", self.get_customer)
        r("POST", "/v1/customers/{customer}", self.update_customer)
        r("POST", "/v1/checkout/sessions", self.create_session)
        r("GET", "/v1/checkout/sessions/{session}", self.get_session)
        r("GET", "/v1/payment_intents/{intent}", self.get_payment_intent)
        r("POST", "/v1/refunds", self.create_refund)
        r("GET", "/v1/refunds/{refund}", self.get_refund)
        r("POST", "/v1/accounts", self.create_account)
        r("GET", "/v1/accounts/{account}", self.get_account)
        r("POST", "/v1/account_links", self.create_account_link)
        r("POST", "/v1/transfers", self.create_transfer)
        r("POST", "/v1/billing_portal/sessions", self.create_portal_session)
        r("GET", "/v1/transfers", self.list_transfers)
        r("GET", "/v1/transfers/{transfer}", self.get_transfer)
        self.reset_state()

    def route(self, method, tmpl, fn):
        op = self.spec["paths"][tmpl][method.lower()]
        schema = None
        if method == "POST":
            schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        self.routes.append((method, path_template_regex(tmpl), fn, schema))

    def reset_state(self):
        self.customers = {}
        self.sessions = {}
        self.session_items = {}
        self.payment_intents = {}
        self.charges = {}
        self.refunds = {}
        self.accounts = {}
        self.account_links = []
        self.transfers = {}
        self.portal_sessions = []
        self.versions = {}
        self.idem = {}
        self.balance = None if self.args.balance is None else self.args.balance

    def state_json(self):
        return {"customers": list(self.customers.values()),
                "checkout_sessions": list(self.sessions.values()),
                "payment_intents": list(self.payment_intents.values()),
                "charges": list(self.charges.values()),
                "refunds": list(self.refunds.values()),
                "accounts": list(self.accounts.values()),
                "account_links": self.account_links,
                "transfers": list(self.transfers.values()),
                "billing_portal_sessions": self.portal_sessions,
                "stripe_versions": self.versions,
                "balance_available": self.balance,
                "idempotency_keys": len(self.idem)}

    def parsed_body(self, req):
        if not req.body:
            return None
        ctype = req.headers.get("content-type", "")
        text = req.body.decode("utf-8", "replace")
        if "json" in ctype:
            return json.loads(text)
        return self.parse_form(req)[0]

    def parse_form(self, req):
        """(flat, tree) of a form body, parsed once per request; raises FormError."""
        if req.cache is None:
            pairs = parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
            try:
                req.cache = parse_form_pairs(pairs)
            except FormError as e:
                req.cache = e
        if isinstance(req.cache, FormError):
            raise req.cache
        return req.cache

    def error_body(self, status, fault):
        if status == 429:
            e = {"type": "invalid_request_error", "code": "rate_limit",
                 "message": "Request rate limit exceeded. You can learn more about rate limits "
                            "here https://stripe.com/docs/rate-limits."}
        elif status >= 500:
            e = {"type": "api_error",
                 "message": "An unknown error occurred (injected by the stand-in)."}
        elif status == 409:
            e = {"type": "api_error",
                 "message": "There was a conflict with another request (injected by the stand-in)."}
        else:
            e = {"type": "invalid_request_error", "message": "Injected error %d." % status}
        if isinstance(fault.body, dict):
            if "error" in fault.body:
                return fault.body
            e.update(fault.body)
        return {"error": e}

    def fault_response(self, fault):
        h = self.fault_headers(fault)
        retry = fault.should_retry
        if retry is None and (fault.status == 409 or fault.status >= 500):
            retry = True
        if retry is not None:
            h.append(("Stripe-Should-Retry", "true" if retry else "false"))
        return json_response(fault.status, self.error_body(fault.status, fault), h)

    # ------------------------------------------------------------- dispatch
    def check_auth(self, req):
        auth = req.headers.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        key = None
        if scheme == "Bearer":
            key = cred.strip()
        elif scheme == "Basic":
            try:
                key = base64.b64decode(cred.strip()).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            return serr(401, "invalid_request_error",
                        "You did not provide an API key. You need to provide your API key in the "
                        "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                        "YOUR_SECRET_KEY').")
        if key != self.args.api_key:
            return serr(401, "invalid_request_error",
                        "Invalid API Key provided: %s****%s" % (key[:8], key[-4:]))
        return None

    async def api(self, req, fault):
        rid = sid("req_", 14)
        version = req.headers.get("stripe-version")
        self.versions[version or "none"] = self.versions.get(version or "none", 0) + 1
        base_headers = [("Request-Id", rid), ("Stripe-Version", version or STRIPE_API_VERSION)]
        err = self.check_auth(req)
        if err:
            await self.pause(None)
            err.headers += base_headers
            return err
        if version is not None and version != STRIPE_API_VERSION:
            await self.pause(None)
            resp = invalid_status(400, "Invalid Stripe API version: %s. The stand-in answers as "
                                  "%s only." % (version, STRIPE_API_VERSION))
            resp.headers += [("Request-Id", rid)]
            return resp
        route = None
        allowed = False
        for method, rx, fn, schema in self.routes:
            m = rx.match(req.path)
            if m:
                allowed = True
                if method == req.method:
                    route = (fn, schema, m.groupdict())
                    break
        if route is None:
            await self.pause(None)
            if not allowed:
                for rx, ops in self.spec_routes:
                    if rx.match(req.path) and req.method in ops:
                        return invalid_status(404, "The stand-in does not implement %s %s."
                                              % (req.method, req.path))
            return invalid_status(404, "Unrecognized request URL (%s: %s). Please see "
                                  "https://stripe.com/docs or we can help at "
                                  "https://support.stripe.com/." % (req.method, req.path))
        fn, schema, pathargs = route
        if fault is not None and fault.action == "status" and fault.status == 429:
            await self.pause(fault)  # rate limited before execution: never saved
            resp = self.fault_response(fault)
            resp.headers += base_headers
            return resp

        flat, tree = {}, {}
        if req.method == "POST" and req.body:
            ctype = req.headers.get("content-type", "")
            if ctype and "application/x-www-form-urlencoded" not in ctype:
                await self.pause(None)
                return invalid("Invalid request: Stripe accepts request bodies encoded as "
                               "application/x-www-form-urlencoded, not %s." % ctype)
            try:
                flat, tree = self.parse_form(req)
            except FormError as e:
                await self.pause(None)
                return invalid(e.message, e.code, e.param)

        key = req.headers.get("idempotency-key") if req.method == "POST" else None
        entry = None
        if key is not None:
            if len(key) > 255:
                await self.pause(None)
                return invalid("Idempotency-Key must be at most 255 characters long.",
                               None, None)
            fingerprint = (req.method, req.path, sorted((k, json.dumps(v)) for k, v in flat.items()))
            prev = self.idem.get(key)
            if prev is not None:
                await self.pause(None)
                if prev["in_flight"]:
                    return serr(409, "idempotency_error",
                                "There is currently another in-progress request using this "
                                "Idempotency-Key (that probably means you submitted twice, and the "
                                "other request is still going through): %s. Please try again later."
                                % key, "idempotency_key_in_use",
                                extra_headers=[("Stripe-Should-Retry", "true"),
                                               ("Idempotency-Key", key)] + base_headers)
                if prev["fingerprint"][:2] != fingerprint[:2]:
                    return serr(400, "idempotency_error",
                                "Keys for idempotent requests can only be used for the same endpoint "
                                "they were first used for ('%s %s' vs '%s %s'). Try using a key other "
                                "than '%s' if you meant to execute a different request."
                                % (prev["fingerprint"][0], prev["fingerprint"][1], req.method,
                                   req.path, key),
                                extra_headers=[("Idempotency-Key", key)] + base_headers)
                if prev["fingerprint"] != fingerprint:
                    return serr(400, "idempotency_error",
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with. Try using a key other than "
                                "'%s' if you meant to execute a different request." % key,
                                extra_headers=[("Idempotency-Key", key)] + base_headers)
                req.log["replayed"] = True
                return json_response(prev["status"], prev["body"],
                                     prev["headers"] + [("Idempotent-Replayed", "true")])
            entry = {"in_flight": True, "fingerprint": fingerprint}
            self.idem[key] = entry
        try:
            await self.pause(fault)
            params = None
            if schema is not None:
                try:
                    params = check_form(self.spec, tree, schema, "")
                    self.check_metadata(params)
                except FormError as e:
                    # failed validation: the endpoint did not start executing, nothing saved
                    if entry is not None:
                        self.idem.pop(key, None)
                        entry = None
                    resp = invalid(e.message, e.code, e.param)
                    resp.headers += base_headers
                    return resp
            if fault is not None and fault.action == "status":
                resp = self.fault_response(fault)
            else:
                resp = fn(req, params, **pathargs)
            resp.headers += base_headers
            if key is not None:
                resp.headers.append(("Idempotency-Key", key))
            if entry is not None:
                entry.update(in_flight=False, status=resp.status, body=resp.body,
                             headers=list(resp.headers))
                entry = None
            return resp
        finally:
            if entry is not None:  # cancelled or crashed: forget the key
                self.idem.pop(key, None)

    def check_metadata(self, params):
        md = params.get("metadata") if isinstance(params, dict) else None
        if not isinstance(md, dict):
            return
        if len(md) > 50:
            raise FormError(None, "metadata", "Invalid metadata: metadata may have at most 50 keys.")
        for k, v in md.items():
            if len(k) > 40:
                raise FormError(None, "metadata[%s]" % k,
                                "Invalid metadata: keys must be at most 40 characters.")
            if isinstance(v, str) and len(v) > 500:
                raise FormError(None, "metadata[%s]" % k,
                                "Invalid metadata: values must be at most 500 characters.")

    # ------------------------------------------------------------- customers
    def create_customer(self, req, p):
        cid = sid("cus_", 14)
        c = {"id": cid, "object": "customer", "address": p.get("address"), "balance": p.get("balance", 0),
             "created": int(time.time()), "currency": None, "default_source": None,
             "delinquent": False, "description": p.get("description"), "discount": None,
             "email": p.get("email"), "invoice_prefix": secrets.token_hex(4).upper(),
             "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                  "footer": None},
             "livemode": False, "metadata": p.get("metadata") or {}, "name": p.get("name"),
             "next_invoice_sequence": 1, "phone": p.get("phone"),
             "preferred_locales": p.get("preferred_locales") or [], "shipping": None,
             "tax_exempt": p.get("tax_exempt", "none"), "test_clock": None}
        self.customers[cid] = c
        return json_response(200, c)

    def get_customer(self, req, p, customer):
        c = self.customers.get(customer)
        return json_response(200, c) if c else no_such("customer", customer)

    def update_customer(self, req, p, customer):
        c = self.customers.get(customer)
        if c is None:
            return no_such("customer", customer)
        for k in ("email", "name", "description", "phone", "address", "balance"):
            if k in p:
                c[k] = p[k]
        if "metadata" in p:
            md = dict(c["metadata"])
            for k, v in (p["metadata"] or {}).items():
                if v == "":
                    md.pop(k, None)
                else:
                    md[k] = v
            c["metadata"] = md if p["metadata"] != {} else {}
        return json_response(200, c)

    def list_customers(self, req, p):
        data = list(self.customers.values())
        if req.q1("email"):
            data = [c for c in data if c["email"] == req.q1("email")]
        return self.listing(req, data, "/v1/customers")

    def listing(self, req, data, url):
        try:
            limit = int(req.q1("limit", "10"))
        except ValueError:
            return invalid("Invalid integer: %s" % req.q1("limit"), "parameter_invalid_integer",
                           "limit")
        if not 1 <= limit <= 100:
            return invalid("Invalid limit: must be between 1 and 100", None, "limit")
        data = sorted(data, key=lambda o: o["created"], reverse=True)
        return json_response(200, {"object": "list", "data": data[:limit],
                                   "has_more": len(data) > limit, "url": url})

    # ------------------------------------------------------------- checkout
    def create_session(self, req, p):
        mode = p.get("mode", "payment")
        items = p.get("line_items") or []
        if mode in ("payment", "subscription") and not items:
            return missing("line_items", "`line_items` is required in `%s` mode." % mode)
        if p.get("customer") and p.get("customer_email"):
            return invalid("You may only specify one of these parameters: customer, "
                           "customer_email.", "parameters_exclusive", "customer_email")
        if p.get("customer") and p["customer"] not in self.customers:
            return no_such("customer", p["customer"], "customer", 400)
        if "customer_creation" in p and mode != "payment":
            return invalid("`customer_creation` can only be used in `payment` mode.", None,
                           "customer_creation")
        if "customer_creation" in p and p.get("customer"):
            return invalid("You may only specify one of these parameters: customer, "
                           "customer_creation.", "parameters_exclusive", "customer_creation")
        if "payment_intent_data" in p and mode != "payment":
            return invalid("You can only specify `payment_intent_data` in `payment` mode.",
                           None, "payment_intent_data")
        if "subscription_data" in p and mode != "subscription":
            return invalid("You can only specify `subscription_data` in `subscription` mode.",
                           None, "subscription_data")
        total = 0
        currency = None
        recurring = 0
        for i, it in enumerate(items):
            pn = "line_items[%d]" % i
            if "price" in it and "price_data" in it:
                return invalid("You may only specify one of these parameters: price, price_data.",
                               "parameters_exclusive", pn + "[price]")
            if "price" not in it and "price_data" not in it:
                return missing(pn + "[price]", "You must specify either `price` or `price_data` "
                               "in `%s`." % pn)
            if "quantity" not in it:
                return missing(pn + "[quantity]", "Quantity is required. Add `quantity` to `%s`."
                               % pn)
            if it["quantity"] < 1:
                return invalid("Invalid positive integer", "parameter_invalid_integer",
                               pn + "[quantity]")
            pd = it.get("price_data")
            if pd is None:
                total = None  # a Price object the stand-in does not know the amount of
                continue
            if "product" not in pd and "product_data" not in pd:
                return missing(pn + "[price_data][product_data]",
                               "You must specify either `product` or `product_data` when "
                               "creating a price.")
            if "unit_amount" not in pd and "unit_amount_decimal" not in pd:
                return missing(pn + "[price_data][unit_amount]")
            if not CURRENCY.match(pd["currency"]):
                return invalid("Invalid currency: %s" % pd["currency"], None,
                               pn + "[price_data][currency]")
            if currency is not None and pd["currency"] != currency:
                return invalid("All line items must use the same currency.", None,
                               pn + "[price_data][currency]")
            currency = pd["currency"]
            if "recurring" in pd:
                recurring += 1
                if mode == "payment":
                    return invalid("You specified `payment` mode but passed a recurring price. "
                                   "Either switch to `subscription` mode or use only one-time "
                                   "prices.", None, pn + "[price_data][recurring]")
            unit = pd.get("unit_amount")
            if unit is None:
                unit = int(float(pd["unit_amount_decimal"]))
            if unit < 0:
                return invalid("Invalid non-negative integer", "parameter_invalid_integer",
                               pn + "[price_data][unit_amount]")
            if total is not None:
                total += unit * it["quantity"]
        if mode == "subscription" and recurring == 0 and currency is not None:
            return invalid("You must provide at least one recurring price in `subscription` "
                           "mode when using prices.", None, "line_items")
        now = int(time.time())
        cid = sid("cs_test_", 58)
        pi = None
        if mode == "payment":
            pid = sid("pi_")
            pdat = p.get("payment_intent_data") or {}
            pi = {"id": pid, "object": "payment_intent", "amount": total or 0,
                  "amount_capturable": 0, "amount_received": 0, "capture_method": "automatic",
                  "charges": empty_list("/v1/charges?payment_intent=%s" % pid),
                  "client_secret": "%s_secret_%s" % (pid, sid("", 25)),
                  "confirmation_method": "automatic", "created": now, "currency": currency or "usd",
                  "customer": p.get("customer"), "description": pdat.get("description"),
                  "livemode": False, "metadata": pdat.get("metadata") or {},
                  "payment_method": None, "payment_method_types": ["card"],
                  "status": "requires_payment_method",
                  "transfer_group": pdat.get("transfer_group")}
            self.payment_intents[pid] = pi
        s = {"id": cid, "object": "checkout.session", "after_expiration": None,
             "allow_promotion_codes": p.get("allow_promotion_codes"),
             "amount_subtotal": total, "amount_total": total,
             "automatic_tax": {"enabled": False, "status": None},
             "billing_address_collection": p.get("billing_address_collection"),
             "cancel_url": p["cancel_url"], "client_reference_id": p.get("client_reference_id"),
             "consent": None, "consent_collection": None, "currency": currency,
             "customer": p.get("customer"), "customer_creation": p.get("customer_creation"),
             "customer_details": None, "customer_email": p.get("customer_email"),
             "expires_at": p.get("expires_at", now + 86400), "livemode": False,
             "locale": p.get("locale"), "metadata": p.get("metadata") or {}, "mode": mode,
             "payment_intent": pi["id"] if pi else None, "payment_link": None,
             "payment_method_options": {}, "payment_method_types":
                 p.get("payment_method_types") or ["card"],
             "payment_status": "unpaid" if mode != "setup" else "no_payment_required",
             "phone_number_collection": {"enabled": False}, "recovered_from": None,
             "setup_intent": sid("seti_") if mode == "setup" else None, "shipping": None,
             "shipping_address_collection": None, "shipping_options": [], "shipping_rate": None,
             "status": "open", "submit_type": p.get("submit_type"), "subscription": None,
             "success_url": p["success_url"], "tax_id_collection": None,
             "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
             "url": "https://checkout.stripe.com/pay/%s#%s" % (cid, secrets.token_urlsafe(24)),
             "created": now}
        self.sessions[cid] = s
        self.session_items[cid] = items
        return json_response(200, s)

    def get_session(self, req, p, session):
        s = self.sessions.get(session)
        return json_response(200, s) if s else no_such("checkout.session", session)

    def get_payment_intent(self, req, p, intent):
        pi = self.payment_intents.get(intent)
        return json_response(200, pi) if pi else no_such("payment_intent", intent)

    # ------------------------------------------------------------- refunds
    def create_refund(self, req, p):
        ch = None
        if "charge" in p:
            ch = self.charges.get(p["charge"])
            if ch is None:
                return no_such("charge", p["charge"], "charge", 400)
        if "payment_intent" in p:
            pi = self.payment_intents.get(p["payment_intent"])
            if pi is None:
                return no_such("payment_intent", p["payment_intent"], "payment_intent", 400)
            if ch is not None and ch["payment_intent"] != pi["id"]:
                return invalid("The charge %s does not belong to the PaymentIntent %s."
                               % (ch["id"], pi["id"]), None, "charge")
            if ch is None:
                if not pi["charges"]["data"]:
                    return invalid("This PaymentIntent (%s) does not have a successful charge to "
                                   "refund." % pi["id"], None, "payment_intent")
                ch = self.charges[pi["charges"]["data"][-1]["id"]]
        if ch is None:
            return invalid("One of the following params should be provided for this request: "
                           "payment_intent or charge.")
        remaining = ch["amount"] - ch["amount_refunded"]
        if remaining <= 0:
            return invalid("Charge %s has already been refunded." % ch["id"],
                           "charge_already_refunded")
        amount = p.get("amount", remaining)
        if amount <= 0:
            return invalid("Invalid positive integer", "parameter_invalid_integer", "amount")
        if amount > remaining:
            return invalid("Refund amount (%d) is greater than unrefunded amount on charge (%d)"
                           % (amount, remaining), "amount_too_large", "amount")
        rid = sid("re_")
        r = {"id": rid, "object": "refund", "amount": amount,
             "balance_transaction": sid("txn_"), "charge": ch["id"],
             "created": int(time.time()), "currency": ch["currency"], "description": None,
             "metadata": p.get("metadata") or {}, "payment_intent": ch["payment_intent"],
             "reason": p.get("reason"), "receipt_number": None,
             "source_transfer_reversal": None, "status": "succeeded",
             "transfer_reversal": None}
        self.refunds[rid] = r
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] == ch["amount"]
        ch["refunds"]["data"].insert(0, r)
        ch["refunds"]["total_count"] += 1
        return json_response(200, r)

    def get_refund(self, req, p, refund):
        r = self.refunds.get(refund)
        return json_response(200, r) if r else no_such("refund", refund)

    # ------------------------------------------------------------- connect
    def create_account(self, req, p):
        ctl = p.get("controller")
        if "type" not in p and ctl is None:
            return missing("type", "You must specify either `type` or `controller` when "
                           "creating an account.")
        if "type" in p and ctl is not None:
            return invalid("You may only specify one of these parameters: controller, type.",
                           "parameters_exclusive", "controller")
        if ctl is not None:
            fees = (ctl.get("fees") or {}).get("payer", "account")
            losses = (ctl.get("losses") or {}).get("payments", "stripe")
            collect = ctl.get("requirement_collection", "stripe")
            dash = (ctl.get("stripe_dashboard") or {}).get("type", "full")
            if collect == "application" and dash != "none":
                return invalid("Accounts where the platform collects requirements cannot have "
                               "access to a Stripe dashboard.", None,
                               "controller[stripe_dashboard][type]")
            if losses == "application" and fees != "application" and dash == "express":
                return invalid("Express dashboard accounts need the application to pay fees.",
                               None, "controller[fees][payer]")
            kind = ("express" if (dash, fees, losses, collect) ==
                    ("express", "application", "application", "stripe")
                    else "standard" if (dash, fees, losses, collect) ==
                    ("full", "account", "stripe", "stripe")
                    else "custom" if (dash, collect) == ("none", "application") else "none")
            controller = {"fees": {"payer": "application" if fees == "application" else
                                   "account"},
                          "is_controller": True, "losses": {"payments": losses},
                          "requirement_collection": collect,
                          "stripe_dashboard": {"type": dash}, "type": "application"}
        else:
            kind = p["type"]
            controller = {"is_controller": True, "type": "application"}
        caps = {k: "inactive" for k, v in (p.get("capabilities") or {}).items()
                if v.get("requested")}
        aid = sid("acct_", 16)
        a = {"id": aid, "object": "account", "business_profile": {
                 "mcc": None, "name": None, "product_description": None, "support_address": None,
                 "support_email": None, "support_phone": None, "support_url": None, "url": None},
             "business_type": p.get("business_type"), "capabilities": caps,
             "charges_enabled": False, "country": p.get("country", "US"),
             "created": int(time.time()), "default_currency": p.get("default_currency", "usd"),
             "details_submitted": False, "email": p.get("email"),
             "external_accounts": empty_list("/v1/accounts/%s/external_accounts" % aid),
             "future_requirements": {"alternatives": [], "current_deadline": None,
                                     "currently_due": [], "disabled_reason": None, "errors": [],
                                     "eventually_due": [], "past_due": [],
                                     "pending_verification": []},
             "metadata": p.get("metadata") or {}, "payouts_enabled": False,
             "requirements": {"alternatives": [], "current_deadline": None,
                              "currently_due": ["business_type", "external_account",
                                                "tos_acceptance.date", "tos_acceptance.ip"],
                              "disabled_reason": "requirements.past_due", "errors": [],
                              "eventually_due": ["business_type", "external_account",
                                                 "tos_acceptance.date", "tos_acceptance.ip"],
                              "past_due": [], "pending_verification": []},
             "settings": {"payouts": {"debit_negative_balances": True,
                                      "schedule": {"delay_days": 2, "interval": "daily"},
                                      "statement_descriptor": None}},
             "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
             "controller": controller, "type": kind}
        self.accounts[aid] = a
        return json_response(200, a)

    def create_portal_session(self, req, p):
        if p["customer"] not in self.customers:
            return no_such("customer", p["customer"], "customer", 400)
        ps = {"id": sid("bps_"), "object": "billing_portal.session",
              "configuration": p.get("configuration") or sid("bpc_"),
              "created": int(time.time()), "customer": p["customer"], "flow": None,
              "livemode": False, "locale": p.get("locale"),
              "on_behalf_of": p.get("on_behalf_of"), "return_url": p.get("return_url"),
              "url": "https://billing.stripe.com/p/session/test_" + sid("", 32)}
        self.portal_sessions.append(ps)
        return json_response(200, ps)

    def get_account(self, req, p, account):
        a = self.accounts.get(account)
        if a is None:
            return invalid_status(403 if account.startswith("acct_") else 404,
                                  "The provided key does not have access to account '%s' (or "
                                  "that account does not exist). Application access may have "
                                  "been revoked." % account, "account_invalid")
        return json_response(200, a)

    def create_account_link(self, req, p):
        a = self.accounts.get(p["account"])
        if a is None:
            return no_such("account", p["account"], "account", 400)
        if p["type"] not in ("account_onboarding", "account_update"):
            return invalid("Invalid type: must be one of account_onboarding or account_update",
                           None, "type")
        for k in ("refresh_url", "return_url"):
            if not p.get(k):
                return missing(k)
        if p["type"] == "account_update" and a["type"] != "custom":
            return invalid("You cannot create `account_update` type Account Links for %s "
                           "accounts." % a["type"].capitalize(), None, "type")
        now = int(time.time())
        link = {"object": "account_link", "created": now, "expires_at": now + 300,
                "url": "https://connect.stripe.com/setup/e/%s/%s" % (a["id"],
                                                                     secrets.token_urlsafe(12))}
        self.account_links.append(dict(link, account=a["id"], type=p["type"],
                                       refresh_url=p["refresh_url"], return_url=p["return_url"]))
        return json_response(200, link)

    def create_transfer(self, req, p):
        if "amount" not in p:
            return missing("amount")
        if p["amount"] <= 0:
            return invalid("Invalid positive integer", "parameter_invalid_integer", "amount")
        if not CURRENCY.match(p["currency"]):
            return invalid("Invalid currency: %s" % p["currency"], None, "currency")
        dest = self.accounts.get(p["destination"])
        if dest is None:
            return no_such("destination", p["destination"], "destination", 400)
        if self.balance is not None:
            if p["amount"] > self.balance:
                return invalid("You have insufficient available funds in your Stripe account. "
                               "Try adding funds directly to your available balance by creating "
                               "Charges using the 4000000000000077 test card.",
                               "balance_insufficient")
            self.balance -= p["amount"]
        tid = sid("tr_")
        t = {"id": tid, "object": "transfer", "amount": p["amount"], "amount_reversed": 0,
             "balance_transaction": sid("txn_"), "created": int(time.time()),
             "currency": p["currency"], "description": p.get("description"),
             "destination": dest["id"], "destination_payment": sid("py_"), "livemode": False,
             "metadata": p.get("metadata") or {},
             "reversals": empty_list("/v1/transfers/%s/reversals" % tid), "reversed": False,
             "source_transaction": p.get("source_transaction"),
             "source_type": p.get("source_type", "card"),
             "transfer_group": p.get("transfer_group")}
        self.transfers[tid] = t
        return json_response(200, t)

    def get_transfer(self, req, p, transfer):
        t = self.transfers.get(transfer)
        return json_response(200, t) if t else no_such("transfer", transfer)

    def list_transfers(self, req, p):
        data = list(self.transfers.values())
        if req.q1("destination"):
            data = [t for t in data if t["destination"] == req.q1("destination")]
        if req.q1("transfer_group"):
            data = [t for t in data if t["transfer_group"] == req.q1("transfer_group")]
        return self.listing(req, data, "/v1/transfers")

    # ------------------------------------------------------------- control
    def make_charge(self, pi):
        chid = sid("ch_")
        ch = {"id": chid, "object": "charge", "amount": pi["amount"],
              "amount_captured": pi["amount"], "amount_refunded": 0,
              "balance_transaction": sid("txn_"), "captured": True, "created": int(time.time()),
              "currency": pi["currency"], "customer": pi["customer"], "livemode": False,
              "metadata": pi["metadata"], "paid": True, "payment_intent": pi["id"],
              "refunded": False, "refunds": empty_list("/v1/charges/%s/refunds" % chid),
              "status": "succeeded", "transfer_group": pi.get("transfer_group")}
        self.charges[chid] = ch
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        pi["charges"]["data"].append({"id": chid, "object": "charge", "amount": pi["amount"]})
        pi["charges"]["total_count"] += 1
        return ch

    async def control(self, req, rest):
        try:
            body = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            return json_response(400, {"error": "body must be JSON"})
        m = re.fullmatch(r"checkout_sessions/([^/]+)/complete", rest)
        if m and req.method == "POST":
            return self.complete_session(m.group(1), body)
        m = re.fullmatch(r"accounts/([^/]+)/onboard", rest)
        if m and req.method == "POST":
            a = self.accounts.get(m.group(1))
            if a is None:
                return json_response(404, {"error": "no such account"})
            a.update(charges_enabled=True, payouts_enabled=True, details_submitted=True)
            a["capabilities"] = {k: "active" for k in a["capabilities"]} or {"transfers": "active"}
            a["requirements"].update(currently_due=[], eventually_due=[], disabled_reason=None)
            if not body.get("webhook_secret"):
                return json_response(200, a)
            # The Connect endpoint's event, as Stripe sends it for a connected account.
            event = {"id": sid("evt_"), "object": "event", "account": a["id"],
                     "api_version": STRIPE_API_VERSION, "created": int(time.time()),
                     "data": {"object": a, "previous_attributes": {"charges_enabled": False,
                                                                   "payouts_enabled": False}},
                     "livemode": False, "pending_webhooks": 1,
                     "request": {"id": None, "idempotency_key": None}, "type": "account.updated"}
            return json_response(200, dict(self.signed(event, body["webhook_secret"]), account=a))
        if rest == "events" and req.method == "POST":
            # An event Stripe sends on its own (a renewal's invoice.paid, a
            # refund made in the dashboard, a dispute), signed for an endpoint.
            if (not isinstance(body.get("type"), str) or not isinstance(body.get("object"), dict)
                    or not body.get("webhook_secret")):
                return json_response(400, {"error": "type, object and webhook_secret are required"})
            event = {"id": sid("evt_"), "object": "event", "api_version": STRIPE_API_VERSION,
                     "created": int(time.time()), "data": {"object": body["object"]}, "livemode": False,
                     "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                     "type": body["type"]}
            return json_response(200, self.signed(event, body["webhook_secret"]))
        if rest == "payment_intents" and req.method == "POST":
            amount = body.get("amount")
            if not isinstance(amount, int) or amount <= 0:
                return json_response(400, {"error": "amount must be a positive integer"})
            pid = sid("pi_")
            pi = {"id": pid, "object": "payment_intent", "amount": amount,
                  "amount_capturable": 0, "amount_received": 0, "capture_method": "automatic",
                  "charges": empty_list("/v1/charges?payment_intent=%s" % pid),
                  "client_secret": "%s_secret_%s" % (pid, sid("", 25)),
                  "confirmation_method": "automatic", "created": int(time.time()),
                  "currency": body.get("currency", "usd"), "customer": body.get("customer"),
                  "description": None, "livemode": False, "metadata": body.get("metadata") or {},
                  "payment_method": sid("pm_"), "payment_method_types": ["card"],
                  "status": "requires_payment_method", "transfer_group": None}
            self.payment_intents[pid] = pi
            self.make_charge(pi)
            return json_response(200, pi)
        if rest == "balance" and req.method == "POST":
            v = body.get("available")
            if v is not None and not isinstance(v, int):
                return json_response(400, {"error": "available must be an integer or null"})
            self.balance = v
            return json_response(200, {"available": self.balance})
        return None

    def complete_session(self, session_id, body):
        s = self.sessions.get(session_id)
        if s is None:
            return json_response(404, {"error": "no such checkout session"})
        if s["status"] != "open":
            return json_response(409, {"error": "checkout session is %s" % s["status"]})
        # Since 2022-08-01 a payment-mode session makes a Customer only when
        # asked (customer_creation=always); a subscription always has one.
        if s["customer"] is None and (s["mode"] != "payment" or
                                      s.get("customer_creation") == "always"):
            c = self.create_customer(None, {"email": s["customer_email"] or "buyer@example.com"}).body
            s["customer"] = c["id"]
        email = (self.customers[s["customer"]]["email"] if s["customer"]
                 else s["customer_email"] or "buyer@example.com")
        s["customer_details"] = {"address": None, "email": email, "name": None,
                                 "phone": None, "tax_exempt": "none", "tax_ids": []}
        s["status"] = "complete"
        if s["mode"] == "payment":
            pi = self.payment_intents[s["payment_intent"]]
            pi["customer"] = s["customer"]
            self.make_charge(pi)
            s["payment_status"] = "paid"
        elif s["mode"] == "subscription":
            s["subscription"] = sid("sub_")
            s["payment_status"] = "paid"
        event = {"id": sid("evt_"), "object": "event", "api_version": STRIPE_API_VERSION,
                 "created": int(time.time()), "data": {"object": s}, "livemode": False,
                 "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                 "type": "checkout.session.completed"}
        out = {"session": s, "event": event}
        secret = body.get("webhook_secret")
        if secret:
            out = dict(self.signed(event, secret), session=s)
        return json_response(200, out)

    @staticmethod
    def signed(event, secret):
        """The event as delivered: its payload and the Stripe-Signature header."""
        payload = json.dumps(event, separators=(",", ":"))
        t = int(time.time())
        sig = hmac.new(secret.encode(), ("%d.%s" % (t, payload)).encode(),
                       hashlib.sha256).hexdigest()
        return {"event": event, "payload": payload, "stripe_signature": "t=%d,v1=%s" % (t, sig)}


def main():
    p = base_args("Stripe API stand-in")
    p.add_argument("--api-key", required=True, help="the accepted secret key (sk_...)")
    p.add_argument("--balance", type=int, default=None,
                   help="platform available balance for transfers (default: unlimited)")
    serve(StripeServer(p.parse_args()))


if __name__ == "__main__":
    main()
