/*
 * password_policy.h - Vault's password policies: the HCL language, the
 * generator, and the stored policies.
 *
 * A policy (VAULT_API 6.3, Vault's sdk/helper/random):
 *
 *   length = 20                       4..100 characters (code points)
 *   rule "charset" {                  one or more; the alphabet is the
 *     charset   = "abcdefgh..."       union of the charsets, duplicates
 *     min-chars = 1                   removed; a password holds at least
 *   }                                 min-chars characters of each charset
 *
 * Charsets are UTF-8 and counted by code point, as Vault does. A password
 * is drawn character by character from the alphabet with the CSPRNG
 * (uniform, no modulo bias) and redrawn whole until every rule holds
 * (rejection sampling, so every valid password is equally likely), within
 * a bounded time: an unsatisfiable policy fails, never loops.
 *
 * Storage: one entry per policy, key PWPOLICY_PREFIX<name>, value
 * {"policy": "<HCL text>"}, written through the barrier like the ACL
 * policies. Nothing is cached: every generation reads the current text,
 * so a changed or deleted policy takes effect at once (and on every node).
 *
 * Ownership: pointers returned are new; free them with the matching
 * function. Passwords must be wiped (crypto_wipe) before free().
 */
#ifndef COFFER_PASSWORD_POLICY_H
#define COFFER_PASSWORD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct storage;
struct strvec;

#define PWPOLICY_MIN_LENGTH 4
#define PWPOLICY_MAX_LENGTH 100
/* The largest alphabet (Vault draws one byte per character). */
#define PWPOLICY_MAX_ALPHABET 256
/* Rules in one policy at most. */
#define PWPOLICY_MAX_RULES 64
/* Policy text bytes at most. */
#define PWPOLICY_MAX_TEXT (64 * 1024)
/* Policy names: 1..128 bytes of [A-Za-z0-9_.-], not "." or "..". */
#define PWPOLICY_MAX_NAME 128
/* Storage prefix of the policies (under the barrier). */
#define PWPOLICY_PREFIX "sys/password_policy/"

struct pwpolicy;

/*
 * Parses policy text. Returns the policy, or NULL with the reason in err
 * (syntax errors name their line): unknown keys or rule types, a missing
 * or non-integral length, no charset, an empty or non-printable or
 * non-UTF-8 charset, a NUL anywhere, min-chars < 0, the min-chars of
 * the rules adding up to more than the length, more than
 * PWPOLICY_MAX_ALPHABET characters. The length range is checked apart
 * (pwpolicy_length), as Vault words it apart.
 */
struct pwpolicy *pwpolicy_parse(const char *text, struct errbuf *err);
void pwpolicy_free(struct pwpolicy *p);

/* The policy's length in characters. */
int pwpolicy_length(const struct pwpolicy *p);

/*
 * Generates one password within budget_s seconds of CPU-bound retries.
 * 0 and a new NUL-terminated UTF-8 string in *out (wipe, then free), or
 * COFFER_EINTERNAL (the CSPRNG failed) or COFFER_ETOOBIG (no candidate
 * satisfied the rules in time: "timed out generating string").
 */
int pwpolicy_generate(const struct pwpolicy *p, double budget_s, char **out,
                      struct errbuf *err);

/* True when pw (UTF-8) has the policy's length, alphabet and rules. */
bool pwpolicy_check(const struct pwpolicy *p, const char *pw);

/*
 * Vault's write-time test: ten generations sharing one second. 0, or
 * COFFER_EINVAL with Vault's words ("are the rules impossible?" when all
 * failed, "is the policy too restrictive?" when some did).
 */
int pwpolicy_try(const struct pwpolicy *p, struct errbuf *err);

/* True for a name a policy may have (see PWPOLICY_MAX_NAME). */
bool pwpolicy_name_ok(const char *name);

/* ---- stored policies (s = the barrier's logical view) ---------------- */

/* The stored text: 0 and a new string, COFFER_ENOTFOUND, or an error. */
int pwpolicy_store_read(struct storage *s, const char *name, char **text);
int pwpolicy_store_write(struct storage *s, const char *name,
                         const char *text);
/* Deleting a missing policy succeeds. */
int pwpolicy_store_delete(struct storage *s, const char *name);
/* Appends the names, sorted, to out. */
int pwpolicy_store_list(struct storage *s, struct strvec *out);

/*
 * Generates a password from the stored policy `name` (what engines call).
 * 0 and *out (wipe, then free), or an error with Vault's words in err:
 * COFFER_ENOTFOUND "no password policy found", COFFER_EINVAL "stored
 * password policy is invalid: ...", COFFER_ETOOBIG "timed out generating
 * string", or a storage error.
 */
int pwpolicy_generate_named(struct storage *s, const char *name, char **out,
                            struct errbuf *err);

#endif
