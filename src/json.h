/*
 * json.h - a strict JSON reader that keeps numbers exact.
 *
 * Owns: turning JSON text (request bodies, stored values, the text given
 * to coffer.json.decode) into cJSON trees, the rules for JSON number
 * literals, and the two helpers every C file shares for cJSON trees:
 * wipe-and-free (json_delete_wiped) and typed member getters
 * (json_get_*). Does not own printing (cJSON_Print* does that) or the Lua
 * conversion (lua_json.c).
 *
 * Why not cJSON_Parse: cJSON turns every number into a double, while
 * Vault decodes with Go's json.Number and gives back what the client
 * wrote (VAULT_API.md 1.4). Here a number stays an ordinary cJSON_Number
 * only when nothing is lost; otherwise it becomes a cJSON_Raw item that
 * holds the literal text, which cJSON_Print* writes back verbatim.
 *
 * The grammar is RFC 8259, strictly: no comments, no trailing commas, no
 * single quotes, no leading zeros or '+', control bytes must be escaped.
 * Where RFC 8259 leaves a choice, Go's encoding/json decides:
 *
 *   - invalid UTF-8 inside a string becomes U+FFFD, one per bad byte;
 *   - a \u escape of a lone surrogate becomes U+FFFD; a valid pair is
 *     joined into one code point;
 *   - a duplicate object key: the last value wins (one member is kept);
 *   - text after the first complete value is the caller's choice (Go's
 *     json.Decoder, which Vault uses for request bodies, ignores it).
 *
 * C readers: a kept literal is cJSON_Raw, not cJSON_IsNumber, so C code
 * that wants a number refuses "1.0", "1e3" or 20-digit integers as a
 * wrong type; Vault refuses most of them too (json.Number.Int64 fails).
 *
 * One deliberate difference: a string containing U+0000 (written as
 * \u0000) is refused, because cJSON strings end at the first NUL and the
 * value would be silently cut short.
 *
 * Ownership: every returned tree is new; the caller frees it with
 * cJSON_Delete (or json_delete_wiped). Nothing here raises or aborts
 * except through xmalloc on out-of-memory.
 */
#ifndef COFFER_JSON_H
#define COFFER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"

/* Nesting limit for request bodies; matches LUA_JSON_MAX_DEPTH. */
#define JSON_MAX_DEPTH 128

/* The parser recurses once per level, so max_depth is clamped to this. */
#define JSON_DEPTH_LIMIT 1000

/*
 * Parses the JSON value at the start of text[0..len) (text need not be
 * NUL-terminated). At most max_depth arrays/objects may nest (the
 * outermost counts as 1). With allow_trailing, anything after the first
 * complete value is ignored, as Go's json.Decoder does; without it only
 * whitespace may follow.
 *
 * Numbers: see json_number_new. Returns a new tree, or NULL with err set
 * to "invalid JSON at byte N: reason" (err may be NULL). Strings of a
 * failed parse are wiped before they are freed.
 */
cJSON *json_parse(const char *text, size_t len, int max_depth,
                  bool allow_trailing, struct errbuf *err);

/* True if s[0..len) is exactly one JSON number literal. */
bool json_number_literal(const char *s, size_t len);

/* Length of the JSON number literal at s (0 if there is none). */
size_t json_scan_number(const char *s, const char *end);

/*
 * Decodes a JSON string body at p (just past the opening quote) up to the
 * closing quote, as json_parse does: invalid UTF-8 becomes U+FFFD, lone
 * surrogates too, \u0000 is refused. With out == NULL it only validates
 * and measures; otherwise it writes the bytes (not NUL-terminated).
 * Returns the decoded length with *stop on the closing quote, or
 * SIZE_MAX with *stop where it failed and *why saying why.
 */
size_t json_decode_string(const char *p, const char *end, char *out,
                          const char **stop, const char **why);

/*
 * True if the valid literal lit[0..len) survives as a double: cJSON
 * prints that double back as the identical text, and the literal is a
 * plain integer whenever the value is integral (so "1.0", "1e3" and "-0"
 * are not exact, while "1", "0.5", "0.1" and "1e-07" are). *d receives
 * the value when it returns true.
 */
bool json_number_exact(const char *lit, size_t len, double *d);

/*
 * A new item for the valid literal lit[0..len): a cJSON_Number when
 * json_number_exact, else a cJSON_Raw holding the literal. NULL on
 * out-of-memory.
 */
cJSON *json_number_new(const char *lit, size_t len);

/*
 * Compares two valid literals by exact decimal value: <0, 0, >0. "-0",
 * "0" and "0.0e5" are equal; "1.0" equals "1". Exponents beyond +-10^15
 * are clamped to that bound (such numbers compare equal to it).
 */
int json_number_cmp(const char *a, size_t alen, const char *b, size_t blen);

/*
 * Wipes every string of the tree, keys included (values may be secrets,
 * and a map's keys may be too), then frees it. NULL is fine. The one
 * wipe-and-free for cJSON trees: use it rather than a local copy.
 */
void json_delete_wiped(cJSON *item);

/*
 * Members of an object's TEXT, without building a tree (a restore reads a
 * million records for three members each). want[i].name is the key's
 * bytes; a key written with escapes is not found. For each wanted member
 * found, [v, end) is its value's text (the first occurrence, as
 * cJSON_GetObjectItem); v is NULL when absent. Values are skipped by
 * their structure (strings, nesting up to JSON_MEMBER_MAX_DEPTH) and are
 * not validated further. false if text[0..len) is not one object.
 */
struct json_member {
    const char *name;
    const char *v, *end;
};
#define JSON_MEMBER_MAX_DEPTH 128
bool json_object_members(const char *text, size_t len,
                         struct json_member *want, size_t n);

/* The member's value is exactly the text lit ("true", "\"active\""). */
bool json_member_is(const struct json_member *m, const char *lit);

/*
 * The member's value as an integer as json_get_int reads it (a number,
 * truncated toward zero, clamped to int64); false, *out untouched, if it
 * is absent or not a number.
 */
bool json_member_int64(const struct json_member *m, int64_t *out);

/*
 * Member getters: the member key of obj (case-sensitive, as everywhere in
 * Coffer) when it has the wanted type, else def. obj may be NULL or not
 * an object. Nothing is copied: a string is borrowed from the tree.
 *
 * json_get_int truncates a cJSON_Number toward zero and clamps it to the
 * int64 range; a cJSON_Raw literal (json_parse's exact big numbers) is
 * not a number here and gives def.
 */
const char *json_get_str(const cJSON *obj, const char *key, const char *def);
int64_t json_get_int(const cJSON *obj, const char *key, int64_t def);
bool json_get_bool(const cJSON *obj, const char *key, bool def);

#endif
