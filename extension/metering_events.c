/*-------------------------------------------------------------------------
 * metering_events.c
 *	  One usage event of a record_usage batch, read straight from the jsonb
 *	  binary (no text round trip) and checked: a bad one raises 22023
 *	  naming its 1-based position.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "agentmarket.h"
#include "metering.h"

/* Raise 22023 for the event at (0-based) index i. */
void
usage_malformed(int i, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("usage event %d is malformed: %s", i + 1, problem),
			 errdetail("Nothing of the batch was recorded.")));
}

/* Parse a UUID written as 32 hex digits, with or without the four hyphens. */
static bool
usage_parse_uuid(const char *s, int len, pg_uuid_t *out)
{
	int			digits = 0;
	int			i;

	if (len != 32 && len != 36)
		return false;
	for (i = 0; i < len; i++)
	{
		int			hi,
					lo;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		if (i + 1 >= len || digits >= UUID_LEN)
			return false;
		hi = am_hexval(s[i]);
		lo = am_hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out->data[digits++] = (unsigned char) (hi << 4 | lo);
		i++;
	}
	return digits == UUID_LEN;
}

/*
 * A whole number from 0 to max, or -1.  Read from the numeric itself, no
 * text: a display scale above 0 ("1.5", and "1.0" too) is not whole.
 */
static int32
usage_count(JsonbValue *v, int32 max)
{
	Datum		num;
	bool		error = false;
	int32		n;

	if (v->type != jbvNumeric)
		return -1;
	num = NumericGetDatum(v->val.numeric);
	if (numeric_is_nan(v->val.numeric) || numeric_is_inf(v->val.numeric)
		|| DatumGetInt32(DirectFunctionCall1(numeric_scale, num)) != 0)
		return -1;
	n = numeric_int4_opt_error(v->val.numeric, &error);
	if (error || n < 0 || n > max)
		return -1;
	return n;
}

/*
 * Parse and check the event at index i into ev.  Each known field is found
 * by the container's own binary search (no iterator, nothing allocated but
 * the key); a field count above the known ones found means another field.
 */
void
usage_parse_event(JsonbValue *elem, int i, UsageEvent *ev)
{
	JsonbContainer *obj;
	JsonbValue	v;
	int			found = 0;

	memset(ev, 0, sizeof(UsageEvent));
	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		usage_malformed(i, "it is not a JSON object");
	obj = elem->val.binary.data;
#define USAGE_FIELD(lit) (getKeyJsonValueFromContainer(obj, lit, sizeof(lit) - 1, &v) != NULL && ++found)

	if (!USAGE_FIELD("instance_id") || v.type != jbvString
		|| !usage_parse_uuid(v.val.string.val, v.val.string.len, &ev->instance_id))
		usage_malformed(i, "instance_id must be a UUID");
	if (USAGE_FIELD("session_id") && v.type != jbvNull)
	{
		if (v.type != jbvString || !usage_parse_uuid(v.val.string.val, v.val.string.len, &ev->session_id))
			usage_malformed(i, "session_id must be a UUID or null");
		ev->has_session = true;
	}
	if (USAGE_FIELD("compute_seconds") && v.type != jbvNull
		&& (ev->compute_seconds = usage_count(&v, USAGE_MAX_SECONDS)) < 0)
		usage_malformed(i, "compute_seconds must be a whole number from 0 to 86400");
	if (USAGE_FIELD("input_tokens") && v.type != jbvNull
		&& (ev->input_tokens = usage_count(&v, USAGE_MAX_TOKENS)) < 0)
		usage_malformed(i, "input_tokens must be a whole number from 0 to 1000000");
	if (USAGE_FIELD("output_tokens") && v.type != jbvNull
		&& (ev->output_tokens = usage_count(&v, USAGE_MAX_TOKENS)) < 0)
		usage_malformed(i, "output_tokens must be a whole number from 0 to 1000000");
	if (USAGE_FIELD("idempotency_key"))
	{
		int			chars;

		if (v.type != jbvString)
			usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
		chars = pg_mbstrlen_with_len(v.val.string.val, v.val.string.len);
		if (chars < 1 || chars > USAGE_MAX_KEY_CHARS)
			usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
		ev->key = cstring_to_text_with_len(v.val.string.val, v.val.string.len);
	}
#undef USAGE_FIELD
	if ((int) JsonContainerSize(obj) > found)
		usage_malformed(i, "it has a field other than instance_id, session_id, compute_seconds, "
						"input_tokens, output_tokens and idempotency_key");
	if (ev->key == NULL)
		usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
}
