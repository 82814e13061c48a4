/*
 * db_pg_conninfo.h - connection strings: redaction, and the secrets a
 * pool keeps out of error messages.
 *
 * Part of the PostgreSQL driver's contract: db_pg.h includes this
 * header, so callers of the driver see db_redact_conninfo and
 * db_conninfo_has_password there. The db__ functions are the driver's
 * own (db_pg.c). All are pure string work and thread-safe; returned
 * strings are new and freed with secure_free_str.
 */
#ifndef COFFER_DB_PG_CONNINFO_H
#define COFFER_DB_PG_CONNINFO_H

#include <stdbool.h>

#include "util.h"

/*
 * Returns a copy of a connection string (URL or key/value) with every
 * password value replaced by "xxxxx": URL user-info, the password and
 * sslpassword query parameters, key/value password= and sslpassword=
 * (quoted or not, with escapes), and a dbname that is itself a
 * connection string holding one. Malformed input is redacted generously:
 * whatever libpq could read as part of the value goes. A templated value
 * ("{{password}}") is kept. The caller frees the result with
 * secure_free_str. NULL in, NULL out.
 */
char *db_redact_conninfo(const char *conninfo);
/* True when conninfo holds a literal (non-templated) password. */
bool db_conninfo_has_password(const char *conninfo);

/* ---- for db_pg.c -------------------------------------------------------- */

/*
 * Fills sv (initialised by the caller) with everything a message must
 * never show for this pool: each password of conninfo as written and as
 * libpq reads it, the nextra extra secrets (NULLs skipped), and their
 * words of three bytes or more; longest first. Templated values
 * ("{{password}}") are not secrets.
 */
void db__secrets_collect(struct strvec *sv, const char *conninfo,
                         const char *const *extra, int nextra);
/* Wipes and frees every string of sv, and sv itself. */
void db__secrets_wipe(struct strvec *sv);
/*
 * Returns a new copy of text (NULL reads as "") with conninfo replaced by
 * "<connection string>" and each of secrets (longest first) by "xxxxx".
 */
char *db__scrub_text(const char *text, const char *conninfo,
                     const struct strvec *secrets);

#endif
