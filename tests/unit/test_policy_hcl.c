/*
 * test_policy_hcl.c - regressions the policy fuzzer found in
 * src/policy_hcl.c (tests/fuzz/fuzz_policy.c checks these invariants on
 * every input; these cases pin the ones that once failed).
 */
#include "../../src/policy_hcl.c"

#include "harness.h"

/* Renders then re-parses; the rules must come back unchanged. */
static void check_render_roundtrip(const char *text)
{
    struct errbuf err;
    struct policy *p = policy_parse(text, &err);
    struct policy *again;
    char *r1, *r2;

    CHECK(p != NULL);
    if (p == NULL)
        return;
    r1 = policy_render(p);
    again = policy_parse(r1, &err);
    CHECK(again != NULL);
    if (again != NULL) {
        CHECK_EQ_INT((int)again->n, (int)p->n);
        for (size_t i = 0; i < p->n && i < again->n; i++)
            CHECK_STREQ(again->rules[i].path, p->rules[i].path);
        r2 = policy_render(again);
        CHECK_STREQ(r2, r1);
        free(r2);
    }
    free(r1);
    policy_free(again);
    policy_free(p);
}

/*
 * `path "//x"` is the rule "/x" (one leading '/' is stripped, as in
 * Vault). Rendering it as `path "/x"` turned it into the rule "x" on the
 * way back: a Lua policy read over the API and saved as HCL would grant a
 * path it never granted.
 */
TEST(render_keeps_a_leading_slash)
{
    check_render_roundtrip("path \"//secret/*\" { capabilities = [\"read\"] }");
    check_render_roundtrip("path \"///x\" { capabilities = [\"deny\"] }\n"
                           "path \"/y\" { capabilities = [\"list\"] }");
}

/*
 * The formatter had a ceiling of twice the largest policy text, and a
 * buffer that meets its ceiling starts over empty: a large, deeply
 * indented policy came back as only the tail of its formatted text.
 */
TEST(format_is_never_cut_short)
{
    struct buf in;
    struct errbuf err;
    char *out, *again;
    size_t items = 400000;

    buf_init(&in, 0);
    /* two members per level, so the levels indent (one-member blocks
       would collapse into labels: a "b" { ... }) */
    buf_append_str(&in, "a { z=1 b { z=1 c { z=1 d { z=1 e { z=1 f { z=1 "
                        "g { z=1 h { z=1\n");
    for (size_t i = 0; i < items; i++)
        buf_append_str(&in, "k=1 ");
    buf_append_str(&in, "}}}}}}}}\n");
    CHECK(in.len < POLICY_TEXT_MAX);
    out = policy_format(in.ptr, &err);
    CHECK(out != NULL);
    if (out != NULL) {
        CHECK(strlen(out) > POLICY_TEXT_MAX * 2);
        CHECK(strncmp(out, "a {\n", 4) == 0);
        again = policy_format(out, &err);
        CHECK(again != NULL && strcmp(again, out) == 0);
        free(again);
    }
    free(out);
    buf_release(&in);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(render_keeps_a_leading_slash);
    RUN(format_is_never_cut_short);
    return HARNESS_DONE();
}
