/*-------------------------------------------------------------------------
 * json_text.c
 *	  Checks that an answer is one JSON object that PostgreSQL's jsonb takes
 *	  as it is, without building it: a successful answer's bytes go to the
 *	  database as its result unchanged (job_succeed_text), instead of being
 *	  parsed into a tree and printed again, which was a quarter of the
 *	  sidecar's CPU per Stripe job.  RFC 8259, plus what jsonb refuses:
 *	  bytes that are not UTF-8, \u0000, an escaped surrogate not in a
 *	  high-low pair; nesting is bounded.  Depends on no other module.
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "json_text.h"

/* Deeper than any answer of these APIs; bounds the recursion. */
#define JSON_TEXT_MAX_DEPTH 256

typedef struct cursor
{
	const unsigned char *p;
	const unsigned char *end;
} cursor;

static int	check_value(cursor *c, int depth);

static void
skip_space(cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Four hex digits at p (p + 4 <= end); the code unit, or -1. */
static long
hex4(const unsigned char *p)
{
	long		v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		unsigned char h = p[i];

		v <<= 4;
		if (h >= '0' && h <= '9')
			v |= h - '0';
		else if (h >= 'a' && h <= 'f')
			v |= h - 'a' + 10;
		else if (h >= 'A' && h <= 'F')
			v |= h - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* One UTF-8 sequence of 2 to 4 bytes at c->p (its lead byte >= 0x80): shortest form, no surrogate. */
static int
check_utf8(cursor *c)
{
	unsigned char b = *c->p;
	long		cp;
	long		min;
	int			n;
	int			i;

	if (b >= 0xC2 && b <= 0xDF)
	{
		n = 1;
		cp = b & 0x1F;
		min = 0x80;
	}
	else if (b >= 0xE0 && b <= 0xEF)
	{
		n = 2;
		cp = b & 0x0F;
		min = 0x800;
	}
	else if (b >= 0xF0 && b <= 0xF4)
	{
		n = 3;
		cp = b & 0x07;
		min = 0x10000;
	}
	else
		return -1;
	if (c->end - c->p <= n)
		return -1;
	for (i = 1; i <= n; i++)
	{
		if ((c->p[i] & 0xC0) != 0x80)
			return -1;
		cp = (cp << 6) | (c->p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	c->p += n + 1;
	return 0;
}

static int
check_string(cursor *c)
{
	c->p++;						/* the opening quote */
	while (c->p < c->end)
	{
		unsigned char b = *c->p;

		if (b == '"')
		{
			c->p++;
			return 0;
		}
		if (b < 0x20)
			return -1;			/* control characters must be escaped */
		if (b >= 0x80)
		{
			if (check_utf8(c) != 0)
				return -1;
			continue;
		}
		if (b != '\\')
		{
			c->p++;
			continue;
		}
		if (c->end - c->p < 2)
			return -1;
		b = c->p[1];
		if (b != 'u')
		{
			if (strchr("\"\\/bfnrt", b) == NULL || b == '\0')
				return -1;
			c->p += 2;
			continue;
		}
		{
			long		u;

			if (c->end - c->p < 6 || (u = hex4(c->p + 2)) < 0 || u == 0)
				return -1;		/* jsonb refuses \u0000 */
			c->p += 6;
			if (u >= 0xDC00 && u <= 0xDFFF)
				return -1;		/* a low surrogate alone */
			if (u >= 0xD800 && u <= 0xDBFF)
			{
				long		lo;

				if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
					(lo = hex4(c->p + 2)) < 0xDC00 || lo > 0xDFFF)
					return -1;	/* a high surrogate must be followed by a low one */
				c->p += 6;
			}
		}
	}
	return -1;					/* unterminated */
}

static int
digits(cursor *c)
{
	const unsigned char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start ? 0 : -1;
}

static int
check_number(cursor *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else if (digits(c) != 0)
		return -1;
	if (c->p < c->end && *c->p == '.')
	{
		c->p++;
		if (digits(c) != 0)
			return -1;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E'))
	{
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (digits(c) != 0)
			return -1;
	}
	return 0;
}

static int
check_literal(cursor *c, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return -1;
	c->p += n;
	return 0;
}

/* '{' or '[' at c->p: its members, up to and with the closing bracket. */
static int
check_container(cursor *c, int depth)
{
	int			object = *c->p == '{';
	unsigned char close = object ? '}' : ']';

	if (depth >= JSON_TEXT_MAX_DEPTH)
		return -1;
	c->p++;
	skip_space(c);
	if (c->p < c->end && *c->p == close)
	{
		c->p++;
		return 0;
	}
	for (;;)
	{
		if (object)
		{
			if (c->p >= c->end || *c->p != '"' || check_string(c) != 0)
				return -1;
			skip_space(c);
			if (c->p >= c->end || *c->p != ':')
				return -1;
			c->p++;
			skip_space(c);
		}
		if (check_value(c, depth + 1) != 0)
			return -1;
		skip_space(c);
		if (c->p >= c->end)
			return -1;
		if (*c->p == close)
		{
			c->p++;
			return 0;
		}
		if (*c->p != ',')
			return -1;
		c->p++;
		skip_space(c);
	}
}

static int
check_value(cursor *c, int depth)
{
	if (c->p >= c->end)
		return -1;
	switch (*c->p)
	{
		case '{':
		case '[':
			return check_container(c, depth);
		case '"':
			return check_string(c);
		case 't':
			return check_literal(c, "true");
		case 'f':
			return check_literal(c, "false");
		case 'n':
			return check_literal(c, "null");
		default:
			if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
				return check_number(c);
			return -1;
	}
}

/* Whether text[0..len) is exactly one JSON object (surrounding white space allowed) that jsonb takes. */
int
json_text_is_object(const char *text, size_t len)
{
	cursor		c;

	if (text == NULL)
		return 0;
	c.p = (const unsigned char *) text;
	c.end = c.p + len;
	skip_space(&c);
	if (c.p >= c.end || *c.p != '{' || check_container(&c, 0) != 0)
		return 0;
	skip_space(&c);
	return c.p == c.end;
}
