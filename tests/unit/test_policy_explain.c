/*
 * test_policy_explain.c - the explanation of a decision equals the
 * decision.
 *
 * Generated policy sets (patterns mixing exact, '*' and '+' rules,
 * deny, sudo and parameter constraints) are stored through policy_write
 * and every generated request is decided three ways: policy_check (what
 * a real request gets), policy_trace for the token and for the bare
 * policy set, and policy_explain's "allowed". They must agree, and the
 * trace must be self-consistent: the decisive rule first, outranking
 * every other matching rule. Line numbers and a Lua check (through a
 * fake provider) are checked by hand.
 */
#include "../../src/policy_explain.c"

#include "harness.h"
#include "buf.h"
#include "storage.h"

/* ========================================================= Lua (fake) == */

static cJSON *fake_list;
static int fake_calls;

static const cJSON *fake_lua_list(void)
{
    return fake_list;
}

/* The "gate" policy's check: allows only data {pass: "yes"}. */
static int fake_lua_check(const char *name, const struct request *req,
                          const struct token *t, struct errbuf *why)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(req->data, "pass");

    (void)t;
    fake_calls++;
    if (cJSON_IsString(p) && strcmp(p->valuestring, "yes") == 0)
        return 0;
    errbuf_set(why, "policy %s: %s", name, "no pass given");
    return COFFER_EPERM;
}

static const struct policy_lua_provider fake_provider = {
    .list = fake_lua_list,
    .check = fake_lua_check,
};

static struct storage *store;

static void setup(void)
{
    struct errbuf err = {{0}};

    fake_list = cJSON_Parse(
        "[{\"name\":\"gate\",\"file\":\"/etc/coffer/policies/gate.lua\","
        "\"check\":true,\"check_line\":12,"
        "\"paths\":{\"secret/gate/*\":{\"capabilities\":[\"read\"]}}}]");
    policy_set_lua_provider(&fake_provider);
    store = storage_inmem_new();
    if (policy_init(store, &err) != 0)
        fprintf(stderr, "policy_init: %s\n", err.msg);
}

static void token_of(struct token *t, const char *csv)
{
    memset(t, 0, sizeof(*t));
    strvec_init(&t->policies);
    while (*csv != '\0') {
        size_t n = strcspn(csv, ",");
        char *name = xstrndup(csv, n);
        strvec_push(&t->policies, name);
        free(name);
        csv += n + (csv[n] == ',');
    }
    strvec_sort(&t->policies);
    strvec_uniq(&t->policies);
    t->is_root = strvec_contains(&t->policies, "root");
}

static void request_of(struct request *q, const char *path, enum req_op op,
                       const char *data)
{
    request_init(q);
    q->path = xstrdup(path);
    q->op = op;
    q->data = cJSON_Parse(data != NULL ? data : "{}");
}

/* ================================================ hand-checked answers == */

static const char dev_text[] =
    "# dev: line 1\n"
    "path \"secret/data/*\" {\n"            /* line 2 */
    "  capabilities = [\"deny\"]\n"
    "}\n"
    "\n"
    "path \"secret/data/app/+\" {\n"        /* line 6 */
    "  capabilities = [\"read\", \"update\"]\n"
    "  denied_parameters = { \"ttl\" = [] }\n"
    "}\n";

static const char other_text[] =
    "{\n"
    "  \"path\": {\n"
    "    \"secret/+/app/db\": {\"capabilities\": [\"read\"]},\n" /* line 3 */
    "    \"secret/data/*\": {\"capabilities\": [\"read\"]},\n"   /* line 4 */
    "    \"secret/data/x\": {\"capabilities\": [\"list\"]}\n"    /* line 5 */
    "  }\n"
    "}\n";

static cJSON *explain_for(const char *csv, const char *path, enum req_op op,
                          const char *data)
{
    struct token t;
    struct request q;
    cJSON *o;

    token_of(&t, csv);
    request_of(&q, path, op, data);
    o = policy_explain(&t, NULL, &q, true);
    request_release(&q);
    strvec_release(&t.policies);
    return o;
}

static const char *member_str(const cJSON *o, const char *path1,
                              const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);

    if (path2 != NULL)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    return cJSON_IsString(v) ? v->valuestring : "(none)";
}

static int member_int(const cJSON *o, const char *k1, const char *k2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(o, k1), k2);

    return cJSON_IsNumber(v) ? v->valueint : -1;
}

TEST(deny_in_same_pattern_wins_with_line)
{
    cJSON *o = explain_for("dev,other", "secret/data/q", OP_READ, NULL);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "matches");

    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_STREQ(member_str(o, "decisive", "policy"), "dev");
    CHECK_STREQ(member_str(o, "decisive", "pattern"), "secret/data/*");
    CHECK_STREQ(member_str(o, "decisive", "kind"), "glob");
    CHECK_EQ_INT(member_int(o, "decisive", "line"), 2);
    CHECK_EQ_INT(cJSON_GetArraySize(m), 2);
    /* other's read on the same pattern lost to the deny; line 4 (JSON). */
    CHECK_STREQ(member_str(cJSON_GetArrayItem(m, 1), "policy", NULL),
                "other");
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 1),
                                                  "line")->valueint, 4);
    CHECK(strstr(member_str(cJSON_GetArrayItem(m, 1), "why", NULL),
                 "deny") != NULL);
    CHECK(strstr(member_str(o, "reason", NULL), "(line 2) denies read") !=
          NULL);
    cJSON_Delete(o);
}

TEST(more_specific_rule_wins_and_losers_say_why)
{
    cJSON *o = explain_for("dev,other", "secret/data/app/db", OP_READ, NULL);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "matches"), *e;
    int lost = 0;

    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_STREQ(member_str(o, "decisive", "pattern"), "secret/data/app/+");
    CHECK_STREQ(member_str(o, "decisive", "kind"), "segment");
    CHECK_EQ_INT(member_int(o, "decisive", "line"), 6);
    cJSON_ArrayForEach(e, m) {
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "decisive"))) {
            lost++;
            CHECK(strncmp(member_str(e, "why", NULL), "lost: ", 6) == 0);
        }
    }
    CHECK_EQ_INT(lost, 3); /* the two globs and secret/+/app/db */
    cJSON_Delete(o);
}

TEST(exact_rule_beats_globs)
{
    cJSON *o = explain_for("dev,other", "secret/data/x", OP_READ, NULL);

    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_STREQ(member_str(o, "decisive", "kind"), "exact");
    CHECK_EQ_INT(member_int(o, "decisive", "line"), 5);
    CHECK(strstr(member_str(o, "reason", NULL), "does not grant read") !=
          NULL);
    CHECK(strstr(member_str(cJSON_GetArrayItem(
                                 cJSON_GetObjectItemCaseSensitive(o, "matches"),
                                 1), "why", NULL),
                 "exact rule") != NULL);
    cJSON_Delete(o);
}

TEST(parameter_constraint_named)
{
    cJSON *o = explain_for("dev", "secret/data/app/db", OP_UPDATE,
                           "{\"TTL\": \"1h\"}");
    const cJSON *c = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(o, "constraints"), 0);

    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_STREQ(member_str(c, "rule", NULL), "denied_parameters");
    CHECK_STREQ(member_str(c, "parameter", NULL), "TTL");
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(c, "line")->valueint, 6);
    cJSON_Delete(o);
}

TEST(no_rule_and_sudo_and_root)
{
    cJSON *o = explain_for("dev", "nothing/here", OP_READ, NULL);

    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "decisive")));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                     o, "matches")), 0);
    CHECK(strstr(member_str(o, "reason", NULL), "no policy grants read") !=
          NULL);
    CHECK(strstr(member_str(o, "reason", NULL), "no rule matches") != NULL);
    cJSON_Delete(o);
    o = explain_for("dev", "secret/dat", OP_READ, NULL);
    CHECK(strstr(member_str(o, "reason", NULL),
                 "closest: rule \"secret/data/") != NULL);
    CHECK_STREQ(member_str(o, "closest", "policy"), "dev");
    cJSON_Delete(o);
    o = explain_for("root", "sys/seal", OP_UPDATE, NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "root")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o,
                                                        "sudo_required")));
    cJSON_Delete(o);
}

TEST(lua_check_reported_with_file_and_line)
{
    cJSON *o;
    const cJSON *l;
    int before = fake_calls;

    o = explain_for("gate", "secret/gate/a", OP_READ, "{\"pass\": \"no\"}");
    l = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "lua"), 0);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_STREQ(member_str(l, "file", NULL), "/etc/coffer/policies/gate.lua");
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(l, "line")->valueint, 12);
    CHECK_STREQ(member_str(l, "result", NULL), "deny");
    CHECK_STREQ(member_str(l, "reason", NULL), "no pass given");
    CHECK(strstr(member_str(o, "reason", NULL), "no pass given") != NULL);
    CHECK_EQ_INT(fake_calls, before + 1);
    cJSON_Delete(o);
    o = explain_for("gate", "secret/gate/a", OP_READ, "{\"pass\": \"yes\"}");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    cJSON_Delete(o);
}

/* A token asking about itself learns which check said no, not why, and
 * not where the server keeps its policy files. */
TEST(lua_reason_and_directory_hidden_unless_full)
{
    struct token t;
    struct request q;
    cJSON *o;
    const cJSON *l;

    token_of(&t, "gate");
    request_of(&q, "secret/gate/a", OP_READ, "{\"pass\": \"no\"}");
    o = policy_explain(&t, NULL, &q, false);
    l = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "lua"), 0);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_STREQ(member_str(l, "file", NULL), "gate.lua");
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(l, "line")->valueint, 12);
    CHECK_STREQ(member_str(l, "result", NULL), "deny");
    CHECK_STREQ(member_str(l, "reason", NULL), "");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "reason_hidden")));
    CHECK(strstr(member_str(o, "reason", NULL), "no pass given") == NULL);
    CHECK(strstr(member_str(o, "reason", NULL), "\"gate\" said no") != NULL);
    cJSON_Delete(o);
    request_release(&q);
    strvec_release(&t.policies);
}

/* ============================================ generated: no drift == */

static unsigned rng_state = 12345;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

static const char *const pats[] = {
    "s/a/b", "s/a/b/", "s/a/*", "s/a/b*", "s/*", "s/+/b", "s/+/b/*",
    "s/a/+", "s/+/+", "s/+/+/c", "s/a/b/c", "s/a/", "s*", "sys/seal",
    "sys/*", "s/+/bc*",
};
static const char *const paths[] = {
    "s/a/b", "s/a/b/", "s/a/bc", "s/a/b/c", "s/x/b", "s/x/b/c", "s/a/",
    "s", "s/a", "sys/seal", "sys/mounts", "s/x/bcd", "t/a", "sys/seal",
    "sys/audit",
};
static const char *const caps[] = {
    "read", "list", "update", "create", "delete", "sudo", "deny", "patch",
};
static const char *const datas[] = {
    "{}", "{\"ttl\":\"1h\"}", "{\"k\":\"v\"}", "{\"k\":\"x\",\"ttl\":1}",
};

/* A random policy: a few rules, some with parameter constraints. */
static char *gen_policy(void)
{
    struct buf b;
    unsigned nrules = 1 + rnd(4);

    buf_init(&b, BUF_MAX_DEFAULT);
    for (unsigned r = 0; r < nrules; r++) {
        unsigned nc = 1 + rnd(3);
        buf_appendf(&b, "path \"%s\" {\n  capabilities = [",
                   pats[rnd(ARRAY_LEN(pats))]);
        for (unsigned c = 0; c < nc; c++)
            buf_appendf(&b, "%s\"%s\"", c ? ", " : "",
                       caps[rnd(ARRAY_LEN(caps))]);
        buf_appendf(&b, "]\n");
        switch (rnd(5)) {
        case 0: buf_appendf(&b, "  denied_parameters = { \"ttl\" = [] }\n");
            break;
        case 1: buf_appendf(&b, "  allowed_parameters = { \"k\" = [\"v\"] }\n");
            break;
        case 2: buf_appendf(&b, "  required_parameters = [\"k\"]\n");
            break;
        default: break;
        }
        buf_appendf(&b, "}\n");
    }
    return buf_detach(&b, NULL);
}

/* The trace is consistent: decisive first, outranking every other hit. */
static void check_trace_shape(const struct policy_trace *tr, size_t k)
{
    if (tr->step == PSTEP_NO_RULE && (tr->decisive || tr->nhits != 0))
        harness_fail(__FILE__, __LINE__, "case %zu: no rule, yet hits", k);
    if (tr->step != PSTEP_NO_RULE && tr->step != PSTEP_ALLOW &&
        tr->step != PSTEP_LUA && !tr->decisive)
        harness_fail(__FILE__, __LINE__, "case %zu: no decisive rule", k);
    for (size_t i = tr->decisive ? 1 : 0; i < tr->nhits; i++) {
        if (tr->hits[i].lost == PLOST_NONE)
            harness_fail(__FILE__, __LINE__, "case %zu: hit %s did not lose",
                         k, tr->hits[i].pattern);
    }
    for (size_t i = 0; i < tr->nhits; i++) {
        if (tr->hits[i].nsrc == 0 || tr->hits[i].src[0].line <= 0)
            harness_fail(__FILE__, __LINE__, "case %zu: hit %s lacks a "
                         "source line", k, tr->hits[i].pattern);
    }
}

static size_t step_count[PSTEP_LUA + 1];

static void one_case(size_t k, const char *set, const struct token *t)
{
    struct request q;
    struct policy_trace tr1, tr2;
    struct errbuf why0, why1, why2;
    enum req_op ops[] = {OP_READ, OP_LIST, OP_UPDATE, OP_CREATE, OP_DELETE,
                         OP_PATCH};
    int rc0, rc1, rc2;
    cJSON *ex;

    request_of(&q, paths[rnd(ARRAY_LEN(paths))], ops[rnd(6)],
               datas[rnd(ARRAY_LEN(datas))]);
    rc0 = policy_check(t, &q, &why0);
    rc1 = policy_trace(t, NULL, &q, &tr1, &why1);
    rc2 = policy_trace(NULL, &t->policies, &q, &tr2, &why2);
    ex = policy_explain(t, NULL, &q, true);
    if (rc0 != rc1 || rc0 != rc2 ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ex, "allowed")) !=
            (rc0 == 0) ||
        strcmp(why0.msg, why1.msg) != 0)
        harness_fail(__FILE__, __LINE__, "case %zu (%s): %s %s: check %d "
                     "(%s), trace %d (%s), set %d, explain %s", k, set,
                     req_op_name(q.op), q.path, rc0, why0.msg, rc1,
                     why1.msg, rc2,
                     member_str(ex, "reason", NULL));
    check_trace_shape(&tr1, k);
    step_count[tr1.step]++;
    cJSON_Delete(ex);
    policy_trace_release(&tr1);
    policy_trace_release(&tr2);
    request_release(&q);
}

TEST(generated_decisions_equal_the_real_check)
{
    struct errbuf err = {{0}};
    size_t k = 0;

    for (int p = 0; p < 12; p++) {
        char name[16], *text = gen_policy();
        snprintf(name, sizeof(name), "g%d", p);
        if (policy_write(name, text, &err) != 0)
            harness_fail(__FILE__, __LINE__, "write %s: %s\n%s", name,
                         err.msg, text);
        free(text);
    }
    for (int s = 0; s < 60; s++) {
        char set[64];
        struct token t;
        snprintf(set, sizeof(set), "g%u,g%u,g%u", rnd(12), rnd(12), rnd(12));
        token_of(&t, set);
        for (int c = 0; c < 40; c++)
            one_case(k++, set, &t);
        strvec_release(&t.policies);
    }
    CHECK_EQ_INT(k, 2400);
    /* The cases reach every ACL step, not just "no rule". */
    for (int i = PSTEP_ALLOW; i <= PSTEP_PARAM; i++) {
        if (i != PSTEP_NO_ACL && step_count[i] < 10)
            harness_fail(__FILE__, __LINE__, "step %d decided only %zu "
                         "cases", i, step_count[i]);
    }
}

/* A policy change is seen by the next explanation (no stale ACL). */
TEST(explain_sees_policy_changes)
{
    struct errbuf err = {{0}};
    cJSON *o;

    CHECK_EQ_INT(policy_write("flip", "path \"f/x\" { capabilities = "
                              "[\"read\"] }", &err), 0);
    o = explain_for("flip", "f/x", OP_READ, NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    cJSON_Delete(o);
    CHECK_EQ_INT(policy_write("flip", "\n\npath \"f/x\" { capabilities = "
                              "[\"deny\"] }", &err), 0);
    o = explain_for("flip", "f/x", OP_READ, NULL);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "allowed")));
    CHECK_EQ_INT(member_int(o, "decisive", "line"), 3);
    cJSON_Delete(o);
}

/* policy_trace_one (coffer policy test) decides like the stored policy. */
TEST(offline_trace_matches_stored)
{
    struct errbuf err = {{0}};
    struct policy *p = policy_parse(dev_text, &err);
    struct request q;
    struct policy_trace tr;
    struct token t;

    request_of(&q, "secret/data/app/db", OP_UPDATE, "{\"ttl\": 1}");
    CHECK(policy_trace_one(p, "dev", &q, &tr, &err) == COFFER_EPERM);
    CHECK_EQ_INT(tr.step, PSTEP_PARAM);
    CHECK_STREQ(tr.param_rule, "denied_parameters");
    CHECK_EQ_INT(tr.hits[0].src[0].line, 6);
    policy_trace_release(&tr);
    token_of(&t, "dev");
    CHECK_EQ_INT(policy_check(&t, &q, &err), COFFER_EPERM);
    strvec_release(&t.policies);
    request_release(&q);
    policy_free(p);
}

int main(int argc, char **argv)
{
    struct errbuf err = {{0}};

    HARNESS_INIT(argc, argv);
    setup();
    if (policy_write("dev", dev_text, &err) != 0 ||
        policy_write("other", other_text, &err) != 0)
        fprintf(stderr, "policy_write: %s\n", err.msg);
    RUN(deny_in_same_pattern_wins_with_line);
    RUN(more_specific_rule_wins_and_losers_say_why);
    RUN(exact_rule_beats_globs);
    RUN(parameter_constraint_named);
    RUN(no_rule_and_sudo_and_root);
    RUN(lua_check_reported_with_file_and_line);
    RUN(lua_reason_and_directory_hidden_unless_full);
    RUN(generated_decisions_equal_the_real_check);
    RUN(explain_sees_policy_changes);
    RUN(offline_trace_matches_stored);
    policy_shutdown();
    storage_free(store);
    cJSON_Delete(fake_list);
    return HARNESS_DONE();
}
