/*-------------------------------------------------------------------------
 * payments.c
 *	  Stripe webhook signatures (https://stripe.com/docs/webhooks/signatures):
 *
 *	    Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...][,v0=...]
 *	    v1 = hex(HMAC-SHA256(key = the endpoint secret, "<t>.<raw body>"))
 *
 *	  A header is valid when one of its v1 entries equals the signature of
 *	  the payload (compared in constant time) and t is within the tolerance
 *	  of now, in either direction.  Everything else raises PT401.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "agentmarket.h"

PG_FUNCTION_INFO_V1(verify_stripe_signature);
PG_FUNCTION_INFO_V1(am_hmac_sha256_hex);

#define SIG_DIGEST_LEN	32		/* SHA-256 */
#define SIG_MAX_T_DIGITS 12		/* unix seconds until year 33658 */

/*
 * sig_hmac: HMAC-SHA256 of the concatenation of up to three parts into
 * digest; the context is freed before any error is raised.
 */
static void
sig_hmac(const uint8 *key, size_t keylen,
		 const uint8 *p1, size_t l1, const uint8 *p2, size_t l2,
		 const uint8 *p3, size_t l3, uint8 *digest)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	bool		ok;

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("An HMAC context could not be allocated.")));
	ok = pg_hmac_init(ctx, key, keylen) == 0
		&& pg_hmac_update(ctx, p1, l1) == 0
		&& pg_hmac_update(ctx, p2, l2) == 0
		&& pg_hmac_update(ctx, p3, l3) == 0
		&& pg_hmac_final(ctx, digest, SIG_DIGEST_LEN) == 0;
	pg_hmac_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute hmac-sha256"),
				 errdetail("The cryptographic library refused the computation.")));
}

/*
 * sig_matches: whether the hex string hex (len characters) is the digest,
 * compared in time independent of where they differ.
 */
static bool
sig_matches(const char *hex, size_t len, const uint8 *digest)
{
	uint8		diff = 0;
	bool		wellformed = (len == 2 * SIG_DIGEST_LEN);
	int			i;

	if (!wellformed)
		return false;
	for (i = 0; i < SIG_DIGEST_LEN; i++)
	{
		int			hi = am_hexval(hex[2 * i]);
		int			lo = am_hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			wellformed = false;
		diff |= (uint8) (((hi << 4) | lo) ^ digest[i]);
	}
	return wellformed && diff == 0;
}

/* sig_refuse: raise PT401 with a message and a detail. */
static void
pg_attribute_noreturn()
sig_refuse(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(AM_ERRCODE_BAD_SIGNATURE),
			 errmsg("%s", message),
			 errdetail("%s", detail)));
}

/*
 * SQL function: verify_stripe_signature(payload, signature_header, secret,
 * tolerance_seconds, now) returns true or raises PT401.
 */
Datum
verify_stripe_signature(PG_FUNCTION_ARGS)
{
	text	   *payload;
	text	   *secret;
	char	   *header;
	int32		tolerance;
	pg_time_t	now;
	uint8		digest[SIG_DIGEST_LEN];
	const char *t_str = NULL;
	size_t		t_len = 0;
	int64		t = 0;
	int			n_t = 0;
	int			n_v1 = 0;
	bool		matched = false;
	char	   *item;
	char	   *save;
	int64		skew;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must not be null"),
				 errdetail("The raw request body is what Stripe signs.")));
	if (PG_ARGISNULL(2) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(2)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook secret must not be empty"),
				 errdetail("The endpoint's signing secret (whsec_...) is the HMAC key.")));
	if (PG_ARGISNULL(3) || PG_GETARG_INT32(3) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tolerance must be at least one second"),
				 errdetail("The tolerance bounds how far the signature's timestamp may be from now.")));
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("now must not be null"),
				 errdetail("The signature's timestamp is compared with this time.")));
	if (PG_ARGISNULL(1))
		sig_refuse("missing stripe signature header",
				   "The request carried no Stripe-Signature header.");

	payload = PG_GETARG_TEXT_PP(0);
	header = text_to_cstring(PG_GETARG_TEXT_PP(1));
	secret = PG_GETARG_TEXT_PP(2);
	tolerance = PG_GETARG_INT32(3);
	now = timestamptz_to_time_t(PG_GETARG_TIMESTAMPTZ(4));

	/* First pass: the timestamp (exactly one, all digits). */
	for (item = strtok_r(header, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
	{
		char	   *eq = strchr(item, '=');

		while (*item == ' ')
			item++;
		if (eq == NULL || eq == item)
			sig_refuse("malformed stripe signature header",
					   "Every element of the header must have the form scheme=value.");
		if (eq - item == 1 && item[0] == 't')
		{
			const char *d;

			t_str = eq + 1;
			t_len = strlen(t_str);
			n_t++;
			if (t_len == 0 || t_len > SIG_MAX_T_DIGITS)
				sig_refuse("malformed stripe signature header",
						   "The timestamp t must be a unix time in seconds.");
			t = 0;
			for (d = t_str; *d; d++)
			{
				if (*d < '0' || *d > '9')
					sig_refuse("malformed stripe signature header",
							   "The timestamp t must be a unix time in seconds.");
				t = t * 10 + (*d - '0');
			}
		}
	}
	if (n_t != 1)
		sig_refuse("malformed stripe signature header",
				   "The header must hold exactly one timestamp t=<unix time>.");

	/* The signature of "<t>.<payload>". */
	sig_hmac((const uint8 *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret),
			 (const uint8 *) t_str, t_len, (const uint8 *) ".", 1,
			 (const uint8 *) VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
			 digest);

	/* Second pass over the original text: every v1 is compared, none skipped. */
	pfree(header);
	header = text_to_cstring(PG_GETARG_TEXT_PP(1));
	for (item = strtok_r(header, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
	{
		while (*item == ' ')
			item++;
		if (strncmp(item, "v1=", 3) == 0)
		{
			n_v1++;
			if (sig_matches(item + 3, strlen(item + 3), digest))
				matched = true;
		}
	}
	pfree(header);

	if (n_v1 == 0)
		sig_refuse("no v1 signature in stripe signature header",
				   "Only v1 (HMAC-SHA256) signatures are accepted and the header has none.");
	if (!matched)
		sig_refuse("stripe signature does not match",
				   "No v1 signature in the header is the payload's signature with the configured secret.");

	skew = (int64) now - t;
	if (skew > tolerance)
		ereport(ERROR,
				(errcode(AM_ERRCODE_BAD_SIGNATURE),
				 errmsg("stripe signature timestamp is too old"),
				 errdetail("The signature was made " INT64_FORMAT " seconds ago; at most %d are accepted.",
						   skew, tolerance)));
	if (-skew > tolerance)
		ereport(ERROR,
				(errcode(AM_ERRCODE_BAD_SIGNATURE),
				 errmsg("stripe signature timestamp is in the future"),
				 errdetail("The signature is dated " INT64_FORMAT " seconds from now; at most %d are accepted.",
						   -skew, tolerance)));
	PG_RETURN_BOOL(true);
}

/* SQL function: agentmarket_private.hmac_sha256_hex(key bytea, message bytea) */
Datum
am_hmac_sha256_hex(PG_FUNCTION_ARGS)
{
	bytea	   *key = PG_GETARG_BYTEA_PP(0);
	bytea	   *message = PG_GETARG_BYTEA_PP(1);
	uint8		digest[SIG_DIGEST_LEN];
	char		hex[2 * SIG_DIGEST_LEN + 1];
	static const char digits[] = "0123456789abcdef";
	int			i;

	sig_hmac((const uint8 *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
			 (const uint8 *) VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message),
			 (const uint8 *) "", 0, (const uint8 *) "", 0, digest);
	for (i = 0; i < SIG_DIGEST_LEN; i++)
	{
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	hex[2 * SIG_DIGEST_LEN] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}
