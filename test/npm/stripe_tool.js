// stripe_tool.js: the official stripe package, used by test/suites/stripe_npm.
//
//   node stripe_tool.js sign SECRET            < payload   prints a Stripe-Signature header
//   node stripe_tool.js verify SECRET HEADER   < payload   prints the event's type, or fails
//   node stripe_tool.js calls BASE_URL API_KEY              calls the stand-in through the
//                                                           library, prints what it parsed (JSON)
'use strict';
const Stripe = require('stripe');

const API_VERSION = '2024-06-20';

function stdin() {
  return require('fs').readFileSync(0, 'utf8');
}

async function calls(base, key) {
  const url = new URL(base);
  const stripe = new Stripe(key, {
    apiVersion: API_VERSION, host: url.hostname, port: Number(url.port), protocol: 'http',
    maxNetworkRetries: 0, telemetry: false,
  });
  const out = {};
  const customer = await stripe.customers.create({ email: 'npm@agentmarket.test', metadata: { user_id: 'u-npm' } });
  out.customer = { id: customer.id, object: customer.object, metadata: customer.metadata };
  const session = await stripe.checkout.sessions.create({
    mode: 'payment', customer_email: 'npm@agentmarket.test', customer_creation: 'always',
    success_url: 'https://agentmarket.test/ok', cancel_url: 'https://agentmarket.test/cancel',
    client_reference_id: 'p-npm', metadata: { purchase_id: 'p-npm' },
    line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: 1000, product_data: { name: '1,100 credits' } } }],
  }, { idempotencyKey: 'checkout:p-npm' });
  out.session = { id: session.id, object: session.object, mode: session.mode, url: session.url,
                  customer_creation: session.customer_creation, amount_total: session.amount_total };
  const account = await stripe.accounts.create({
    controller: { fees: { payer: 'application' }, losses: { payments: 'application' },
                  requirement_collection: 'stripe', stripe_dashboard: { type: 'express' } },
    email: 'maker@agentmarket.test', capabilities: { transfers: { requested: true } },
  });
  out.account = { id: account.id, object: account.object, type: account.type, controller: account.controller,
                  charges_enabled: account.charges_enabled, payouts_enabled: account.payouts_enabled,
                  capabilities: account.capabilities };
  const link = await stripe.accountLinks.create({
    account: account.id, type: 'account_onboarding',
    refresh_url: 'https://agentmarket.test/reauth', return_url: 'https://agentmarket.test/return',
  });
  out.link = { object: link.object, url: link.url, expires_at: link.expires_at };
  const transfer = await stripe.transfers.create({ amount: 123, currency: 'usd', destination: account.id,
                                                   metadata: { payout_id: 'po-npm' } },
                                                 { idempotencyKey: 'transfer:po-npm' });
  out.transfer = { id: transfer.id, object: transfer.object, amount: transfer.amount, destination: transfer.destination };
  const portal = await stripe.billingPortal.sessions.create({ customer: customer.id,
                                                             return_url: 'https://agentmarket.test/billing' });
  out.portal = { id: portal.id, object: portal.object, url: portal.url, customer: portal.customer };
  try {
    await stripe.accounts.create({ type: 'express', controller: { requirement_collection: 'stripe' } });
    out.both = 'accepted';
  } catch (e) {
    out.both = { type: e.type, param: e.param, statusCode: e.statusCode };
  }
  out.version = (customer.lastResponse && customer.lastResponse.apiVersion) || null;
  return out;
}

async function main() {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'sign') {
    const stripe = new Stripe('sk_test_unused', { apiVersion: API_VERSION });
    process.stdout.write(stripe.webhooks.generateTestHeaderString({ payload: stdin(), secret: a }));
  } else if (mode === 'verify') {
    const stripe = new Stripe('sk_test_unused', { apiVersion: API_VERSION });
    const event = stripe.webhooks.constructEvent(stdin(), b, a);
    process.stdout.write(event.type + ' ' + event.api_version);
  } else if (mode === 'calls') {
    process.stdout.write(JSON.stringify(await calls(a, b)));
  } else {
    throw new Error('usage: stripe_tool.js sign|verify|calls ...');
  }
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
