/*
 * test_policy.c - the policy language and ACL evaluation.
 *
 * Evaluation is table-driven from test_policy_cases.txt (next to this
 * file): policies in HCL, then "op path [json] => allow|deny" lines run
 * against the merged ACL of the named policies. The parser tables below
 * check that every error names its line.
 */
#include "../../src/policy.c"

#include <libgen.h>

#include "harness.h"

/* acl_check for a bare path, op and data (no trace). */
static int test_acl_check(const struct acl *a, const char *path,
                          enum req_op op, const cJSON *data, int64_t wrap_ttl,
                          struct errbuf *why)
{
    struct request q = {.path = (char *)path, .op = op,
                        .data = (cJSON *)data, .wrap_ttl = wrap_ttl};

    return acl_check(a, &q, why, NULL, NULL);
}

/* ============================================================= parser == */

struct parse_err_case {
    const char *text;
    const char *want; /* substring of the error */
};

static const struct parse_err_case parse_errs[] = {
    {"path \"a\" {\n  capabilities = [\"read\", \"bogus\"]\n}",
     "path \"a\": invalid capability \"bogus\" on line 2"},
    {"path \"a\" {\n  capabilities = [\"read\"]\n", "line 3: expected"},
    {"\n\npath \"a\" {\n  capabilities = [\"read\" \"list\"]\n}",
     "line 4: expected ',' or ']'"},
    {"foo = 1\n", "invalid key \"foo\" on line 1"},
    {"path \"a\" {\n\n  color = \"red\"\n}", "invalid key \"color\" on line 3"},
    {"path \"a/+*\" {\n  capabilities = [\"read\"]\n}",
     "invalid use of wildcards ('+*' is forbidden)"},
    {"path \"a\" { policy = \"admin\" }", "invalid policy \"admin\" on line 1"},
    {"path \"a\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"1h\"\n"
     " max_wrapping_ttl = \"1m\"\n}",
     "max_wrapping_ttl cannot be less than min_wrapping_ttl"},
    {"path \"a\" {\n  min_wrapping_ttl = \"soon\"\n}",
     "invalid min_wrapping_ttl on line 2"},
    {"path \"a\" {\n  capabilities = \"read\"\n}",
     "capabilities must be a list of strings on line 2"},
    {"path \"a\" {\n  capabilities = [\"read]\n}", "line 2: unterminated string"},
    {"path \"a\" {\n  allowed_parameters = { \"x\" = \"y\" }\n}",
     "allowed_parameters must be a map of lists on line 2"},
    {"{\"path\": {\"a\": {\"capabilities\": [\"nope\"]}}}",
     "invalid capability \"nope\""},
    {"{\"path\": {\"a\": {\"capabilities\": [\"read\"]}}", "line 1: expected"},
    {"path \"a\" {\n  capabilities = [\"read\"]\n}\n@", "line 4: unexpected "
                                                      "character '@'"},
};

/* plus_reaches: can a `+` pattern match some path under a mount? */
TEST(plus_patterns_reaching_mounts)
{
    static const struct {
        const char *pat, *mount;
        bool want;
    } cases[] = {
        {"secret/+/app", "secret/", true},
        {"+/data/x", "kv/", true},
        {"+/data/x", "a/b/", false},  /* "+/data" is not under a/b/ */
        {"+/b/+", "a/b/", true},
        {"+", "a/b/", false},         /* matches "a" only */
        {"a/+", "b/", false},
        {"kv/+/x*", "kv/", true},
        {"kv/+/x*", "kv/y/xz/", true},
        {"kv/+/x*", "kv/y/z/", false},
        {"team/+/sub", "team/a/", true},
        {"team/+", "team/a/b/", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct acl_ent e = {.pat = (char *)cases[i].pat,
                            .len = strlen(cases[i].pat), .nplus = 1};

        e.prefix = e.len > 0 && e.pat[e.len - 1] == '*';
        if (plus_reaches(&e, cases[i].mount) != cases[i].want)
            harness_fail(__FILE__, __LINE__, "%s under %s: want %d",
                         cases[i].pat, cases[i].mount, cases[i].want);
    }
}

TEST(parse_errors_name_the_line)
{
    for (size_t i = 0; i < ARRAY_LEN(parse_errs); i++) {
        struct errbuf err = {{0}};
        struct policy *p = policy_parse(parse_errs[i].text, &err);

        if (p != NULL || strstr(err.msg, parse_errs[i].want) == NULL)
            harness_fail(__FILE__, __LINE__, "case %zu: got %s \"%s\", want "
                         "error containing \"%s\"", i, p ? "success" : "error",
                         err.msg, parse_errs[i].want);
        policy_free(p);
    }
}

TEST(parse_forms)
{
    struct errbuf err = {{0}};
    /* HCL with comments, heredoc-free; JSON; legacy; leading slash. */
    const char *hcl =
        "# comment\n"
        "name = \"x\"\n"
        "path \"/secret/a\" { capabilities = [\"read\", \"deny\"] } // deny\n"
        "/* block */ path \"secret/b\" {\n"
        "  capabilities = [\"create\",]\n"
        "  required_parameters = [\"Foo\"]\n"
        "  denied_parameters = { \"X\" = [1, true, \"s\"] }\n"
        "  min_wrapping_ttl = \"1m\"\n"
        "  max_wrapping_ttl = 90\n"
        "  comment = \"kept\"\n"
        "}\n"
        "path = { \"secret/c\" = { policy = \"write\" } }\n";
    struct policy *p = policy_parse(hcl, &err);

    CHECK(p != NULL);
    if (p == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(p->n, 3);
    CHECK_STREQ(p->rules[0].path, "secret/a");
    CHECK_EQ_INT(p->rules[0].perms.caps, PCAP_DENY);
    CHECK_EQ_INT(p->rules[1].perms.caps, PCAP_CREATE);
    CHECK_STREQ(p->rules[1].perms.required.v[0], "foo");
    CHECK(cJSON_GetObjectItemCaseSensitive(p->rules[1].perms.denied, "x") !=
          NULL);
    CHECK_EQ_INT(p->rules[1].perms.min_wrap, 60);
    CHECK_EQ_INT(p->rules[1].perms.max_wrap, 90);
    CHECK_EQ_INT(p->rules[2].perms.caps, PCAP_READ | PCAP_LIST | PCAP_CREATE |
                                             PCAP_UPDATE | PCAP_DELETE);
    policy_free(p);

    p = policy_parse("{\"path\": {\"secret/*\": {\"capabilities\": [\"read\"]},"
                     " \"x\": {\"policy\": \"sudo\"}}}", &err);
    CHECK(p != NULL && p->n == 2);
    if (p != NULL)
        CHECK(p->rules[1].perms.caps & PCAP_SUDO);
    policy_free(p);

    p = policy_parse("", &err);
    CHECK(p != NULL && p->n == 0);
    policy_free(p);

    p = policy_parse(policy_default_text, &err);
    CHECK(p != NULL && p->n == 19);
    policy_free(p);
}

TEST(format_canonical)
{
    struct errbuf err = {{0}};
    char *out = policy_format("path   \"a\"{capabilities=[\"read\",\"list\"]}\n"
                              "path \"b\" {\n policy = \"read\"\n "
                              "allowed_parameters = {\"k\"=[]}\n}",
                              &err);
    const char *want = "path \"a\" {\n"
                       "  capabilities = [\"read\", \"list\"]\n"
                       "}\n"
                       "\n"
                       "path \"b\" {\n"
                       "  policy = \"read\"\n"
                       "  allowed_parameters = {\n"
                       "    k = []\n"
                       "  }\n"
                       "}\n";
    char *again;

    CHECK(out != NULL);
    if (out == NULL)
        return;
    CHECK_STREQ(out, want);
    again = policy_format(out, &err);
    CHECK_STREQ(again, out); /* idempotent */
    free(again);
    free(out);
    CHECK(policy_format("path \"a\" {", &err) == NULL);
}

TEST(lua_paths_compile)
{
    struct errbuf err = {{0}};
    cJSON *j = cJSON_Parse("{\"secret/*\": {\"capabilities\": [\"read\"],"
                           " \"allowed_parameters\": {\"a\": {}}}}");
    struct policy *p = policy_from_paths(j, &err);

    CHECK(p != NULL && p->n == 1);
    policy_free(p);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"x\": {\"capabilities\": [\"fly\"]}}");
    p = policy_from_paths(j, &err);
    CHECK(p == NULL);
    CHECK(strstr(err.msg, "invalid capability \"fly\"") != NULL);
    cJSON_Delete(j);
}

TEST(sudo_paths)
{
    CHECK(policy_path_needs_sudo("sys/auth/userpass", OP_UPDATE));
    CHECK(!policy_path_needs_sudo("sys/auth", OP_READ));
    CHECK(policy_path_needs_sudo("sys/leases/lookup/db/", OP_LIST));
    CHECK(!policy_path_needs_sudo("sys/leases/lookup", OP_UPDATE));
    CHECK(policy_path_needs_sudo("sys/revoke-prefix/x", OP_UPDATE));
    CHECK(policy_path_needs_sudo("auth/token/accessors/", OP_LIST));
    CHECK(!policy_path_needs_sudo("sys/mounts/kv", OP_UPDATE));
    CHECK(!policy_path_needs_sudo("sys/policy/x", OP_UPDATE));
}

/* ========================================================= evaluation == */

struct named_text {
    char name[64];
    struct buf text;
};

static enum req_op op_parse(const char *s)
{
    static const struct {
        const char *n;
        enum req_op op;
    } t[] = {{"read", OP_READ}, {"create", OP_CREATE}, {"update", OP_UPDATE},
             {"delete", OP_DELETE}, {"list", OP_LIST}, {"patch", OP_PATCH}};
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        if (strcmp(s, t[i].n) == 0)
            return t[i].op;
    }
    return 0;
}

static struct policy *find_pol(struct named_text *v, struct policy **pols,
                               size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0)
            return pols[i];
    }
    return NULL;
}

TEST(cases_file)
{
    char dir[1024], path[1100], line[1024];
    struct named_text texts[32];
    struct policy *pols[32] = {0};
    size_t ntexts = 0, ncases = 0;
    struct acl *acl = NULL;
    int lineno = 0;
    enum { NONE, POLICY, CASES } mode = NONE;
    FILE *f;

    snprintf(dir, sizeof(dir), "%s", __FILE__);
    snprintf(path, sizeof(path), "%s/test_policy_cases.txt", dirname(dir));
    f = fopen(path, "r");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strncmp(line, "== ", 3) == 0) {
            if (mode == POLICY) { /* compile the previous policy */
                struct errbuf err = {{0}};
                size_t k = ntexts - 1;
                pols[k] = policy_parse(texts[k].text.ptr ? texts[k].text.ptr
                                                         : "", &err);
                if (pols[k] == NULL)
                    harness_fail(path, lineno, "policy %s: %s",
                                 texts[k].name, err.msg);
            }
            acl_put(acl);
            acl = NULL;
            if (strncmp(line + 3, "policy ", 7) == 0) {
                COFFER_ASSERT(ntexts < ARRAY_LEN(texts));
                snprintf(texts[ntexts].name, sizeof(texts[ntexts].name), "%.60s",
                         line + 10);
                buf_init(&texts[ntexts].text, 1 << 20);
                ntexts++;
                mode = POLICY;
            } else if (strncmp(line + 3, "cases ", 6) == 0) {
                struct policy *set[8];
                size_t ns = 0;
                char names[256], *save = NULL, *tok;
                snprintf(names, sizeof(names), "%.200s", line + 9);
                for (tok = strtok_r(names, ",", &save); tok && ns < 8;
                     tok = strtok_r(NULL, ",", &save))
                    set[ns++] = find_pol(texts, pols, ntexts, tok);
                acl = acl_build(set, NULL, ns);
                mode = CASES;
            }
            continue;
        }
        if (mode == POLICY) {
            buf_append_str(&texts[ntexts - 1].text, line);
            buf_append_str(&texts[ntexts - 1].text, "\n");
            continue;
        }
        if (mode != CASES || n == 0 || line[0] == '#')
            continue;
        {
            char op[16], p[256], rest[512] = "";
            char *arrow = strstr(line, " => ");
            const char *want;
            cJSON *data = NULL;
            struct errbuf why = {{0}};
            int rc;

            CHECK(arrow != NULL);
            if (arrow == NULL)
                continue;
            *arrow = '\0';
            want = arrow + 4;
            if (sscanf(line, "%15s %255s %511[^\n]", op, p, rest) < 2) {
                harness_fail(path, lineno, "bad case line");
                continue;
            }
            if (rest[0] != '\0')
                data = cJSON_Parse(rest);
            rc = test_acl_check(acl, p, op_parse(op), data, 0, &why);
            if ((rc == 0) != (strcmp(want, "allow") == 0))
                harness_fail(path, lineno, "%s %s %s: got %s (%s), want %s",
                             op, p, rest, rc == 0 ? "allow" : "deny", why.msg,
                             want);
            cJSON_Delete(data);
            ncases++;
        }
    }
    fclose(f);
    acl_put(acl);
    for (size_t i = 0; i < ntexts; i++) {
        buf_release(&texts[i].text);
        policy_free(pols[i]);
    }
    CHECK(ncases > 60);
}

TEST(merge_rules)
{
    struct errbuf err = {{0}};
    struct policy *a = policy_parse(
        "path \"x\" {\n capabilities = [\"read\"]\n required_parameters = "
        "[\"a\"]\n min_wrapping_ttl = 100\n max_wrapping_ttl = 300\n}", &err);
    struct policy *b = policy_parse(
        "path \"x\" {\n capabilities = [\"list\"]\n required_parameters = "
        "[\"b\"]\n min_wrapping_ttl = 50\n}", &err);
    struct policy *c = policy_parse("path \"x\" { capabilities = [\"deny\"] }",
                                    &err);
    struct policy *ab[2] = {a, b}, *abc[3] = {a, b, c};
    struct acl *m = acl_build(ab, NULL, 2);
    const struct acl_ent *e = acl_match(m, "x", false);

    CHECK(e != NULL);
    if (e != NULL) {
        CHECK_EQ_INT(e->perms.caps, PCAP_READ | PCAP_LIST);
        CHECK_EQ_INT(e->perms.required.n, 2);
        CHECK_EQ_INT(e->perms.min_wrap, 50);
        CHECK_EQ_INT(e->perms.max_wrap, 300);
    }
    acl_put(m);
    m = acl_build(abc, NULL, 3);
    e = acl_match(m, "x", false);
    CHECK(e != NULL && e->perms.caps == PCAP_DENY &&
          e->perms.required.n == 0);
    acl_put(m);
    policy_free(a);
    policy_free(b);
    policy_free(c);
}

TEST(many_policies_lookup)
{
    /* 100 policies x 10 rules; every rule must still be found. */
    struct policy *pols[100];
    struct errbuf err = {{0}};
    struct acl *a;

    for (int i = 0; i < 100; i++) {
        char text[4096];
        size_t used = 0;
        for (int k = 0; k < 10; k++)
            used += (size_t)snprintf(text + used, sizeof(text) - used,
                                     "path \"app%d/r%d%s\" { capabilities = "
                                     "[\"read\"] }\n", i, k,
                                     k % 3 == 0 ? "/*" : k % 3 == 1 ? "" :
                                     "/+/x");
        pols[i] = policy_parse(text, &err);
        COFFER_ASSERT(pols[i] != NULL);
    }
    a = acl_build(pols, NULL, 100);
    for (int i = 0; i < 100; i++) {
        char p[64];
        struct errbuf why;
        snprintf(p, sizeof(p), "app%d/r0/deep/er", i);
        CHECK_EQ_INT(test_acl_check(a, p, OP_READ, NULL, 0, &why), 0);
        snprintf(p, sizeof(p), "app%d/r1", i);
        CHECK_EQ_INT(test_acl_check(a, p, OP_READ, NULL, 0, &why), 0);
        snprintf(p, sizeof(p), "app%d/r2/seg/x", i);
        CHECK_EQ_INT(test_acl_check(a, p, OP_READ, NULL, 0, &why), 0);
        snprintf(p, sizeof(p), "app%d/r1/no", i);
        CHECK(test_acl_check(a, p, OP_READ, NULL, 0, &why) != 0);
    }
    acl_put(a);
    for (int i = 0; i < 100; i++)
        policy_free(pols[i]);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(plus_patterns_reaching_mounts);
    RUN(parse_errors_name_the_line);
    RUN(parse_forms);
    RUN(format_canonical);
    RUN(lua_paths_compile);
    RUN(sudo_paths);
    RUN(cases_file);
    RUN(merge_rules);
    RUN(many_policies_lookup);
    return HARNESS_DONE();
}
