/*
 * fuzz_json.c - the strict JSON reader (src/json.c).
 *
 * The input is parsed as a request body would be (byte 0 picks trailing
 * text allowed or not, and the depth limit). Oracles beyond the
 * sanitizers:
 *   - a parsed tree printed by cJSON parses again, strictly, and prints
 *     to the same text (what Coffer stores is what it reads back);
 *   - json_write_value writes that same text, byte for byte (json_write.h's
 *     promise: audit entries read like cJSON's output);
 *   - every number literal in the input's comma-separated pieces prints
 *     back as the same text through json_number_new (json.h's promise),
 *     compares equal to itself, and compares antisymmetrically with the
 *     next piece.
 */
#include <math.h>

#include "../../src/json.h"
#include "../../src/json_write.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void check_writer_matches(const cJSON *tree, const char *printed)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    json_write_value(&w, tree);
    FUZZ_CHECK(w.rc == 0);
    if (strcmp(b.ptr != NULL ? b.ptr : "", printed) != 0)
        fprintf(stderr, "fuzz: writer gave %s, cJSON %s\n", b.ptr, printed);
    FUZZ_CHECK(strcmp(b.ptr != NULL ? b.ptr : "", printed) == 0);
    buf_release(&b);
}

static void check_roundtrip(const char *text, size_t len, int depth,
                            bool trailing)
{
    struct errbuf err;
    cJSON *t1 = json_parse(text, len, depth, trailing, &err);
    cJSON *t2;
    char *p1, *p2;

    if (t1 == NULL) {
        FUZZ_CHECK(strncmp(err.msg, "invalid JSON at byte ", 21) == 0);
        return;
    }
    p1 = cJSON_PrintUnformatted(t1);
    FUZZ_CHECK(p1 != NULL);
    check_writer_matches(t1, p1);
    t2 = json_parse(p1, strlen(p1), JSON_DEPTH_LIMIT, false, &err);
    if (t2 == NULL)
        fprintf(stderr, "fuzz: reparse of %s failed: %s\n", p1, err.msg);
    FUZZ_CHECK(t2 != NULL);
    p2 = cJSON_PrintUnformatted(t2);
    FUZZ_CHECK(p2 != NULL && strcmp(p1, p2) == 0);
    free(p1);
    free(p2);
    json_delete_wiped(t1);
    cJSON_Delete(t2);
}

static void check_number(const char *a, size_t alen, const char *b,
                         size_t blen)
{
    cJSON *item;
    char *printed;
    double d;

    if (!json_number_literal(a, alen))
        return;
    FUZZ_CHECK(json_number_cmp(a, alen, a, alen) == 0);
    if (json_number_exact(a, alen, &d))
        FUZZ_CHECK(isfinite(d));
    item = json_number_new(a, alen);
    FUZZ_CHECK(item != NULL);
    printed = cJSON_PrintUnformatted(item);
    FUZZ_CHECK(printed != NULL && strlen(printed) == alen &&
               memcmp(printed, a, alen) == 0);
    free(printed);
    cJSON_Delete(item);
    if (b != NULL && json_number_literal(b, blen))
        FUZZ_CHECK(sign(json_number_cmp(a, alen, b, blen)) ==
                   -sign(json_number_cmp(b, blen, a, alen)));
}

static void check_numbers(const char *s, size_t n)
{
    const char *end = s + n, *prev = NULL;
    size_t prev_len = 0;

    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t len = comma ? (size_t)(comma - s) : (size_t)(end - s);
        if (prev != NULL)
            check_number(prev, prev_len, s, len);
        prev = s;
        prev_len = len;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    if (prev != NULL)
        check_number(prev, prev_len, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    int depth;

    if (size < 1)
        return 0;
    /* An exact-size copy: the reader must not look past len. */
    text = malloc(size - 1 > 0 ? size - 1 : 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    depth = (data[0] & 2) ? JSON_MAX_DEPTH : 1 + (data[0] >> 2) % 8;
    check_roundtrip(text, size - 1, depth, data[0] & 1);
    if (size - 1 <= 4096)
        check_numbers(text, size - 1);
    free(text);
    return 0;
}
