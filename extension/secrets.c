/*-------------------------------------------------------------------------
 * secrets.c
 *	  The key that encrypts agentmarket's secrets at rest (pgcrypto path).
 *
 * The key lives in a file named by the server setting
 * agentmarket.secret_key_file (postgresql.conf), never in a table: pg_dump
 * and a stolen base backup carry only ciphertext.  The setting holds a path,
 * not the key, so even a backend that has not loaded this module yet (where
 * the setting is only a placeholder anyone may SHOW) reveals nothing.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "fmgr.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "agentmarket.h"

/* Shortest key accepted, in characters (of a base64 or hex random string). */
#define AM_SECRET_KEY_MIN	32
#define AM_SECRET_KEY_MAX	1024

static char *am_secret_key_file = NULL;

/*
 * am_secrets_init: define agentmarket.secret_key_file.  Superuser-only to
 * read and to set, so no client learns where the key is.
 */
void
am_secrets_init(void)
{
	DefineCustomStringVariable("agentmarket.secret_key_file",
							   "File holding the key that encrypts agentmarket secrets at rest.",
							   "At least 32 characters, readable by the server only. "
							   "Unset: storing a secret is refused (unless Supabase Vault is installed).",
							   &am_secret_key_file,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
}

/*
 * am_read_key: the trimmed contents of a key file, checked; errors say what
 * is wrong with the file and never show its contents.
 */
static text *
am_read_key(const char *path)
{
	struct stat st;
	FILE	   *f;
	char		buf[AM_SECRET_KEY_MAX + 2];
	size_t		n;

	if (path == NULL || path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no secret key is configured"),
				 errdetail("Secrets are stored only encrypted, and neither Supabase Vault nor agentmarket.secret_key_file is available."),
				 errhint("Put at least 32 random characters in a file only the server can read and set agentmarket.secret_key_file to its path in postgresql.conf.")));
	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not find the secret key file \"%s\": %m", path),
				 errhint("agentmarket.secret_key_file must name a file the server can read.")));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secret key file \"%s\" is not a regular file", path)));
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secret key file \"%s\" is accessible to other users", path),
				 errdetail("Its permissions are %04o.", (unsigned int) (st.st_mode & 07777)),
				 errhint("Make it readable by the server's user only: chmod 600.")));

	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not open the secret key file \"%s\": %m", path)));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f))
	{
		FreeFile(f);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not read the secret key file \"%s\"", path)));
	}
	FreeFile(f);
	buf[n] = '\0';
	/* A trailing newline (echo ... > file) is not part of the key. */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n > AM_SECRET_KEY_MAX || n < AM_SECRET_KEY_MIN || strlen(buf) != n)
	{
		explicit_bzero(buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secret key in \"%s\" is unusable", path),
				 errdetail("A key has %d to %d characters and no NUL byte.",
						   AM_SECRET_KEY_MIN, AM_SECRET_KEY_MAX),
				 errhint("Generate one with: openssl rand -base64 48")));
	}
	{
		text	   *key = cstring_to_text_with_len(buf, (int) n);

		explicit_bzero(buf, sizeof(buf));
		return key;
	}
}

PG_FUNCTION_INFO_V1(secret_key);

/*
 * SQL function: agentmarket_private.secret_key(path text DEFAULT NULL) — the
 * key of agentmarket.secret_key_file (or of another file, for re-encrypting
 * under a new key).  Executable by the extension owner only.
 */
Datum
secret_key(PG_FUNCTION_ARGS)
{
	const char *path = PG_ARGISNULL(0) ? am_secret_key_file : text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(am_read_key(path));
}

PG_FUNCTION_INFO_V1(secret_key_configured);

/*
 * SQL function: agentmarket_private.secret_key_configured() — whether
 * agentmarket.secret_key_file is set (not whether the file is good).
 */
Datum
secret_key_configured(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(am_secret_key_file != NULL && am_secret_key_file[0] != '\0');
}
