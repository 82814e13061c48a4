/*
 * fuzz_policy.c - the HCL/JSON policy parser (src/policy_hcl.c) and the
 * ACL compiler that consumes its output (src/policy.c, included).
 *
 * Oracles beyond the sanitizers:
 *   - a policy that parses renders (policy_render) to HCL that parses
 *     again and renders to the same text: sys/policy answers with it;
 *   - policy_format output parses, and formatting it again changes
 *     nothing (the CLI's `policy fmt`);
 *   - the parsed rules compile into an ACL (twice, so every rule merges
 *     with itself) and every rule's own path, and a path below it, can be
 *     checked for each operation.
 */
#include "../../src/policy.c"

#include "fuzz.h"
#include "policy_explain.h"

/* acl_check for a bare path, op and data (no trace). */
static int fuzz_acl_check(const struct acl *a, const char *path,
                          enum req_op op, const cJSON *data, int64_t wrap_ttl,
                          struct errbuf *why)
{
    struct request q = {.path = (char *)path, .op = op,
                        .data = (cJSON *)data, .wrap_ttl = wrap_ttl};

    return acl_check(a, &q, why, NULL, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void check_render(const struct policy *p)
{
    struct errbuf err;
    char *r1 = policy_render(p);
    char *r2;
    struct policy *again;

    FUZZ_CHECK(r1 != NULL);
    again = policy_parse(r1, &err);
    if (again == NULL)
        fprintf(stderr, "fuzz: rendered policy does not parse: %s\n%s\n",
                err.msg, r1);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(again->n == p->n);
    r2 = policy_render(again);
    FUZZ_CHECK(r2 != NULL && strcmp(r1, r2) == 0);
    free(r1);
    free(r2);
    policy_free(again);
}

/*
 * policy_format checks syntax only (an unknown key formats fine), so the
 * promise is: formatting is idempotent, and a valid policy stays valid
 * and means the same (renders to the same rules).
 */
static void check_format(const char *text, const struct policy *orig)
{
    struct errbuf err;
    char *f1 = policy_format(text, &err);
    char *f2, *r1, *r2;
    struct policy *p;

    if (f1 == NULL)
        return;
    if (orig != NULL) {
        p = policy_parse(f1, &err);
        if (p == NULL)
            fprintf(stderr, "fuzz: formatted policy does not parse: %s\n"
                            "%s\n", err.msg, f1);
        FUZZ_CHECK(p != NULL);
        r1 = policy_render(orig);
        r2 = policy_render(p);
        FUZZ_CHECK(strcmp(r1, r2) == 0);
        free(r1);
        free(r2);
        policy_free(p);
    }
    f2 = policy_format(f1, &err);
    FUZZ_CHECK(f2 != NULL && strcmp(f1, f2) == 0);
    free(f1);
    free(f2);
}

/* The rule's pattern with its wildcards filled in, plus a suffix. */
static char *concrete(const char *pat, const char *suffix)
{
    size_t n = strlen(pat), o = 0;
    char *s = xmalloc(n + strlen(suffix) + 1);

    for (size_t i = 0; i < n; i++) {
        if (pat[i] == '+')
            s[o++] = 'x';
        else if (pat[i] != '*')
            s[o++] = pat[i];
    }
    memcpy(s + o, suffix, strlen(suffix) + 1);
    return s;
}

/* policy_trace_one + its rendering (policy_explain.c); its decision. */
static int check_trace(const struct policy *p, const char *path,
                       enum req_op op, cJSON *data)
{
    struct request q = {.path = (char *)path, .op = op, .data = data};
    struct policy_trace tr;
    struct errbuf why;
    struct strvec set = {0};
    int rc = policy_trace_one(p, "fuzz", &q, &tr, &why);
    cJSON *o = policy_explain_render(&tr, rc, &why, &q, &set, false, true);

    FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(o, "reason") != NULL);
    cJSON_Delete(o);
    policy_trace_release(&tr);
    return rc;
}

static void check_acl(struct policy *p)
{
    static const enum req_op ops[] = {OP_READ, OP_LIST, OP_UPDATE,
                                      OP_CREATE, OP_DELETE, OP_PATCH};
    static const char *const suffixes[] = {"", "/", "a/b"};
    struct policy *pols[2] = {p, p};
    struct acl *a = acl_build(pols, NULL, 2);
    cJSON *data = cJSON_CreateObject();
    struct errbuf why;

    cJSON_AddStringToObject(data, "key", "value");
    for (size_t i = 0; i < p->n && i < 64; i++) {
        for (size_t s = 0; s < ARRAY_LEN(suffixes); s++) {
            char *path = concrete(p->rules[i].path, suffixes[s]);
            for (size_t o = 0; o < ARRAY_LEN(ops); o++) {
                int rc = fuzz_acl_check(a, path, ops[o], data, 0, &why);
                /* the explanation decides as the check does */
                FUZZ_CHECK(check_trace(p, path, ops[o], data) == rc);
                /* with a wrap TTL: the min/max_wrapping_ttl checks */
                (void)fuzz_acl_check(a, path, ops[o], data, 300, &why);
            }
            free(path);
        }
    }
    (void)fuzz_acl_check(a, "", OP_READ, data, 0, &why);
    (void)fuzz_acl_check(a, "sys/policy/x", OP_UPDATE, data, 0, &why);
    cJSON_Delete(data);
    acl_put(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    struct errbuf err;
    struct policy *p = policy_parse(text, &err);

    if (p != NULL) {
        check_render(p);
        check_acl(p);
    } else {
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    check_format(text, p);
    policy_free(p);
    free(text);
    return 0;
}
