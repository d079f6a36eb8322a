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

/* Each byte's value as a hex digit, or -1 (filled on first use). */
static int8 usage_hex[256];
static bool usage_hex_ready = false;

/*
 * Parse a UUID written as 32 hex digits, with or without the four hyphens
 * (8-4-4-4-12): two table look-ups per byte, as every event has one or two.
 */
static bool
usage_parse_uuid(const char *s, int len, pg_uuid_t *out)
{
	const unsigned char *p = (const unsigned char *) s;
	int			bad = 0;

	if (!usage_hex_ready)
	{
		for (int c = 0; c < 256; c++)
			usage_hex[c] = (int8) am_hexval((char) c);
		usage_hex_ready = true;
	}
	if (len == 36)
	{
		if (p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
			return false;
	}
	else if (len != 32)
		return false;
	for (int b = 0; b < UUID_LEN; b++)
	{
		int			hi,
					lo;

		/* With hyphens, byte b starts after one more hyphen at bytes 4, 6, 8 and 10. */
		if (len == 36 && (b == 4 || b == 6 || b == 8 || b == 10))
			p++;
		hi = usage_hex[p[0]];
		lo = usage_hex[p[1]];
		bad |= hi | lo;			/* -1 anywhere sets the sign bit */
		out->data[b] = (unsigned char) (((unsigned) hi << 4) | (unsigned) lo);
		p += 2;
	}
	return bad >= 0;
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
 * The value of a container's child at index as fillJsonbValue() gives it,
 * for the kinds an event's fields can hold; base is where the children's
 * data starts and offset this child's (JBE_ADVANCE_OFFSET).
 */
static void
usage_child(JsonbContainer *jc, int index, char *base, uint32 offset, JsonbValue *v)
{
	JEntry		entry = jc->children[index];

	if (JBE_ISNULL(entry))
		v->type = jbvNull;
	else if (JBE_ISSTRING(entry))
	{
		v->type = jbvString;
		v->val.string.val = base + offset;
		v->val.string.len = getJsonbLength(jc, index);
	}
	else if (JBE_ISNUMERIC(entry))
	{
		v->type = jbvNumeric;
		v->val.numeric = (Numeric) (base + INTALIGN(offset));
	}
	else if (JBE_ISBOOL(entry))
	{
		v->type = jbvBool;
		v->val.boolean = JBE_ISBOOL_TRUE(entry);
	}
	else
	{
		v->type = jbvBinary;
		v->val.binary.data = (JsonbContainer *) (base + INTALIGN(offset));
		v->val.binary.len = getJsonbLength(jc, index) - (INTALIGN(offset) - offset);
	}
}

/* The fields of an event, in the order they are checked. */
enum
{
	F_INSTANCE, F_SESSION, F_SECONDS, F_INPUT, F_OUTPUT, F_KEY, F_FIELDS
};
static const char *const usage_field_names[F_FIELDS] = {
	"instance_id", "session_id", "compute_seconds", "input_tokens", "output_tokens", "idempotency_key"
};
static const int usage_field_lengths[F_FIELDS] = {11, 10, 15, 12, 13, 15};

/* Which of the fields key (len bytes) names, or F_FIELDS. */
static int
usage_field(const char *key, int len)
{
	for (int f = 0; f < F_FIELDS; f++)
		if (usage_field_lengths[f] == len && memcmp(key, usage_field_names[f], len) == 0)
			return f;
	return F_FIELDS;
}

/*
 * Parse and check the event at index i, the object obj, into ev.  Its
 * fields are read in one pass over the object's entries (keys first, then
 * values, as jsonb lays them out), then checked in a fixed order, so a bad
 * event's error names the same problem whatever its fields' order.
 */
static void
usage_parse_event(JsonbContainer *obj, int i, UsageEvent *ev)
{
	int			count = JsonContainerSize(obj);
	char	   *base = (char *) &obj->children[count * 2];
	int			few[F_FIELDS + 1];
	int		   *field_of = count <= F_FIELDS + 1 ? few : palloc(sizeof(int) * count);
	uint32		offset = 0;
	JsonbValue	fields[F_FIELDS];
	bool		has[F_FIELDS] = {false};
	bool		other = false;
	JsonbValue *v;

	memset(ev, 0, sizeof(UsageEvent));
	for (int k = 0; k < count * 2; k++)
	{
		if (k < count)
		{
			field_of[k] = usage_field(base + offset, getJsonbLength(obj, k));
			other = other || field_of[k] == F_FIELDS;
		}
		else if (field_of[k - count] < F_FIELDS)
		{
			usage_child(obj, k, base, offset, &fields[field_of[k - count]]);
			has[field_of[k - count]] = true;
		}
		JBE_ADVANCE_OFFSET(offset, obj->children[k]);
	}
	if (field_of != few)
		pfree(field_of);
	v = &fields[F_INSTANCE];
	if (!has[F_INSTANCE] || v->type != jbvString
		|| !usage_parse_uuid(v->val.string.val, v->val.string.len, &ev->instance_id))
		usage_malformed(i, "instance_id must be a UUID");
	v = &fields[F_SESSION];
	if (has[F_SESSION] && v->type != jbvNull)
	{
		if (v->type != jbvString || !usage_parse_uuid(v->val.string.val, v->val.string.len, &ev->session_id))
			usage_malformed(i, "session_id must be a UUID or null");
		ev->has_session = true;
	}
	if (has[F_SECONDS] && fields[F_SECONDS].type != jbvNull
		&& (ev->compute_seconds = usage_count(&fields[F_SECONDS], USAGE_MAX_SECONDS)) < 0)
		usage_malformed(i, "compute_seconds must be a whole number from 0 to 86400");
	if (has[F_INPUT] && fields[F_INPUT].type != jbvNull
		&& (ev->input_tokens = usage_count(&fields[F_INPUT], USAGE_MAX_TOKENS)) < 0)
		usage_malformed(i, "input_tokens must be a whole number from 0 to 1000000");
	if (has[F_OUTPUT] && fields[F_OUTPUT].type != jbvNull
		&& (ev->output_tokens = usage_count(&fields[F_OUTPUT], USAGE_MAX_TOKENS)) < 0)
		usage_malformed(i, "output_tokens must be a whole number from 0 to 1000000");
	v = &fields[F_KEY];
	if (has[F_KEY])
	{
		int			chars;

		if (v->type != jbvString)
			usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
		/* No more characters than bytes: only a long key is counted. */
		chars = v->val.string.len <= USAGE_MAX_KEY_CHARS ? v->val.string.len
			: pg_mbstrlen_with_len(v->val.string.val, v->val.string.len);
		if (chars < 1 || chars > USAGE_MAX_KEY_CHARS)
			usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
		ev->key = cstring_to_text_with_len(v->val.string.val, v->val.string.len);
	}
	if (other)
		usage_malformed(i, "it has a field other than instance_id, session_id, compute_seconds, "
						"input_tokens, output_tokens and idempotency_key");
	if (ev->key == NULL)
		usage_malformed(i, "idempotency_key must be a string of 1 to 200 characters");
}

/*
 * Parse and check the n events of the array events into ev[0..n-1], walking
 * the array's entries once (a look-up by position counts its offset again
 * for every element).
 */
void
usage_parse_events(Jsonb *events, int n, UsageEvent *ev)
{
	JsonbContainer *arr = &events->root;
	char	   *base = (char *) &arr->children[n];
	uint32		offset = 0;

	for (int i = 0; i < n; i++)
	{
		JsonbValue	elem;

		usage_child(arr, i, base, offset, &elem);
		if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
			usage_malformed(i, "it is not a JSON object");
		usage_parse_event(elem.val.binary.data, i, &ev[i]);
		JBE_ADVANCE_OFFSET(offset, arr->children[i]);
	}
}
