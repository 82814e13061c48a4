/*
 * bench_policy.c - the cost of one policy check (issue 5: under 2 us on
 * one core with 1,000 policies of 10 rules each). Reports, never fails.
 *
 * Builds 1,000 policies of 10 rules (exact paths, `*` globs, `+`
 * patterns, a parameter-constrained rule), stores them in the policy
 * table as policy_init would, then times policy_check() - the pipeline's
 * entry point: cache lookup of the token's merged ACL + evaluation - for
 *   a) a token carrying all 1,000 policies (10,000 rules in one ACL);
 *   b) a token carrying 3 of them (the usual case);
 * on paths that hit an exact rule, a glob, a `+` pattern, and nothing.
 *
 * Build and run: make bench (or make BUILD=b b/bench/bench_policy).
 */
#include "../../src/policy.c"

#include "token.h"

#define NPOL 1000
#define NRULE 10

static double now(void)
{
    return time_mono();
}

static void make_policies(void)
{
    for (int i = 0; i < NPOL; i++) {
        char text[4096], name[32];
        size_t used = 0;
        struct errbuf err;
        struct policy *p;

        for (int k = 0; k < NRULE; k++) {
            const char *tmpl;
            switch (k % 5) {
            case 0: tmpl = "path \"secret/data/team%04d/app%d\" { "
                           "capabilities = [\"read\"] }\n"; break;
            case 1: tmpl = "path \"secret/data/team%04d/glob%d/*\" { "
                           "capabilities = [\"read\", \"list\"] }\n"; break;
            case 2: tmpl = "path \"database/creds/team%04d-role%d\" { "
                           "capabilities = [\"read\"] }\n"; break;
            case 3: tmpl = "path \"kv/team%04d/+/cfg%d\" { "
                           "capabilities = [\"read\"] }\n"; break;
            default: tmpl = "path \"secret/data/team%04d/p%d\" { "
                            "capabilities = [\"update\"]\n"
                            "  allowed_parameters = { \"env\" = "
                            "[\"dev-*\"] } }\n"; break;
            }
            used += (size_t)snprintf(text + used, sizeof(text) - used, tmpl,
                                     i, k);
        }
        p = policy_parse(text, &err);
        COFFER_ASSERT(p != NULL);
        snprintf(name, sizeof(name), "team%04d", i);
        put_named(name, xstrdup(text), p, false, false);
    }
    pl.ready = true;
}

static void run(const char *label, const struct token *t, const char *path,
                enum req_op op, const char *data, bool want)
{
    struct request req = {.op = op, .path = (char *)path};
    struct errbuf why;
    const int warm = 1000, n = 500000;
    double t0, dt;
    int ok = 0;

    req.data = data != NULL ? cJSON_Parse(data) : NULL;
    for (int i = 0; i < warm; i++)
        ok += policy_check(t, &req, &why) == 0;
    if ((ok == warm) != want)
        printf("  UNEXPECTED %s for %s: %s\n", want ? "deny" : "allow", path,
               why.msg);
    t0 = now();
    for (int i = 0; i < n; i++)
        ok += policy_check(t, &req, &why) == 0;
    dt = now() - t0;
    printf("  %-34s %-38s %7.0f ns/check\n", label, path, dt / n * 1e9);
    cJSON_Delete(req.data);
}

int main(void)
{
    struct token all = {0}, few = {0};
    double t0;

    t0 = now();
    make_policies();
    printf("bench_policy: %d policies x %d rules, compiled in %.0f ms\n",
           NPOL, NRULE, (now() - t0) * 1e3);
    strvec_init(&all.policies);
    strvec_init(&few.policies);
    all.id_hmac = "a1"; /* tokens are cached by id after the first check */
    few.id_hmac = "f1";
    for (size_t i = 0; i < pl.n; i++)
        strvec_push(&all.policies, pl.v[i].name);
    strvec_push(&few.policies, "team0007");
    strvec_push(&few.policies, "team0500");
    strvec_push(&few.policies, "team0999");

    t0 = now();
    {
        struct acl *a = acl_for(&all.policies);
        printf("  merged ACL of %zu rules built in %.1f ms\n", a->nall,
               (now() - t0) * 1e3);
        acl_put(a);
    }
    run("1000 policies: exact", &all, "secret/data/team0500/app5", OP_READ,
        NULL, true);
    run("1000 policies: glob", &all, "secret/data/team0500/glob1/x/y",
        OP_READ, NULL, true);
    run("1000 policies: + pattern", &all, "kv/team0500/web/cfg3", OP_READ,
        NULL, true);
    run("1000 policies: params", &all, "secret/data/team0500/p4", OP_UPDATE,
        "{\"env\":\"dev-1\"}", true);
    run("1000 policies: no match", &all, "sys/mounts/x", OP_READ, NULL,
        false);
    all.id_hmac = NULL; /* no token id: the policy-set key every time */
    run("1000 policies, no token memo", &all, "secret/data/team0500/app5",
        OP_READ, NULL, true);
    all.id_hmac = "a1";
    run("3 policies: exact", &few, "secret/data/team0500/app5", OP_READ, NULL,
        true);
    run("3 policies: glob", &few, "secret/data/team0999/glob6/x", OP_READ,
        NULL, true);
    run("3 policies: + pattern", &few, "kv/team0007/a/cfg8", OP_READ, NULL,
        true);
    run("3 policies: no match", &few, "secret/data/team0001/app0", OP_READ,
        NULL, false);
    printf("bench_policy: target < 2000 ns/check (reported, not asserted)\n");
    strvec_release(&all.policies);
    strvec_release(&few.policies);
    pthread_rwlock_wrlock(&pl.lock);
    clear_all();
    pthread_rwlock_unlock(&pl.lock);
    return 0;
}
