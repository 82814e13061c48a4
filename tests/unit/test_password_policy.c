/*
 * test_password_policy.c - the password policy language, the generator
 * (uniform draws, bounds, rules, UTF-8, bounded time) and the store.
 */
#include "../../src/password_policy.c"

#include "harness.h"

/* Parses text that must be accepted. */
static struct pwpolicy *ok(const char *text)
{
    struct errbuf err;
    struct pwpolicy *p;

    errbuf_clear(&err);
    p = pwpolicy_parse(text, &err);
    if (p == NULL)
        fprintf(stdout, "  refused: %s\n", err.msg);
    CHECK(p != NULL);
    return p;
}

/* Checks that text is refused with words containing why. */
static void refused(const char *text, const char *why)
{
    struct errbuf err;
    struct pwpolicy *p;

    errbuf_clear(&err);
    p = pwpolicy_parse(text, &err);
    CHECK(p == NULL);
    if (strstr(err.msg, why) == NULL)
        fprintf(stdout, "  for %s: got \"%s\", want \"%s\"\n", text, err.msg,
                why);
    CHECK(strstr(err.msg, why) != NULL);
    pwpolicy_free(p);
}

TEST(parse_alphabet_is_union_sorted_deduplicated)
{
    struct pwpolicy *p = ok("length = 12\n"
                            "rule \"charset\" { charset = \"cba\"\n"
                            "  min-chars = 1 }\n"
                            "rule \"charset\" { charset = \"dcc\" }\n");
    if (p == NULL)
        return;
    CHECK_EQ_INT(pwpolicy_length(p), 12);
    CHECK_EQ_INT(p->nalpha, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(p->alphabet[i], 'a' + i);
    CHECK_EQ_INT(p->nrules, 2);
    CHECK_EQ_INT(p->rules[0].min_chars, 1);
    CHECK_EQ_INT(p->rules[0].member[0], 0x7); /* a b c */
    CHECK_EQ_INT(p->rules[1].member[0], 0xC); /* c d */
    pwpolicy_free(p);
}

TEST(parse_json_form_and_comments)
{
    struct pwpolicy *p = ok("{\"length\": 8, \"rule\": [{\"charset\": "
                            "[{\"charset\": \"xy\", \"min-chars\": 2}]}]}");
    pwpolicy_free(p);
    p = ok("# a comment\nlength = 8 // another\n/* block */\n"
           "rule \"charset\" { charset = \"xy\", min-chars = 0 }");
    pwpolicy_free(p);
}

TEST(parse_refusals)
{
    refused("", "length must be > 0");
    refused("rule \"charset\" { charset = \"ab\" }", "length must be > 0");
    refused("length = 0\nrule \"charset\" { charset = \"ab\" }",
            "length must be > 0");
    refused("length = 8.5\nrule \"charset\" { charset = \"ab\" }",
            "whole number");
    refused("length = \"8\"\nrule \"charset\" { charset = \"ab\" }",
            "whole number");
    refused("length = 1e300\nrule \"charset\" { charset = \"ab\" }",
            "whole number");
    refused("length = 8\nlength = 9\nrule \"charset\" { charset = \"ab\" }",
            "length is given twice");
    refused("length = 8", "no charset specified");
    refused("length = 8\nrule \"charset\" { charset = \"\" }",
            "charset is empty");
    refused("length = 8\nrule \"charset\" { min-chars = 1 }",
            "missing charset");
    refused("length = 8\nrule \"charset\" { charset = 5 }",
            "charset must be a string");
    refused("length = 8\nrule \"charset\" { charset = \"a\"\n"
            "min-chars = 5 }\nrule \"charset\" { charset = \"b\"\n"
            "min-chars = 4 }",
            "specified rules require at least 9 characters but 8 is "
            "specified");
    refused("length = 8\nrule \"charset\" { charset = \"a\"\n"
            "min-chars = -1 }", "min-chars must be a whole number");
    refused("length = 8\nrule \"charset\" { charset = \"a\"\n"
            "min-chars = 1.5 }", "min-chars must be a whole number");
    refused("length = 8\nrule \"charset\" { charset = \"a\"\nmax = 1 }",
            "unknown key \"max\"");
    refused("length = 8\nrule \"charset\" { charset = \"a\"\n"
            "charset = \"b\" }", "given twice");
    refused("length = 8\nsize = 3\nrule \"charset\" { charset = \"a\" }",
            "unknown key \"size\"");
    refused("length = 8\nrule \"digits\" { charset = \"a\" }",
            "unrecognized rule type digits");
    refused("length = 8\nrule = \"charset\"", "rule is empty");
    refused("length = 8\nrule \"charset\" = \"a\"", "must be a block");
    refused("length = 8\n\nrule \"charset\" {\n charset = \"ab\n}",
            "line 4: unterminated string");
    refused("length = 8\nrule \"charset\" {\n charset = \"ab\"\n",
            "line 4: expected a key or '}'");
    refused("length = 8 rule", "line 1");
}

TEST(parse_refuses_nul_controls_bad_utf8)
{
    refused("length = 8\nrule \"charset\" { charset = \"a\\u0000\" }",
            "NUL");
    /* an escaped backslash before u0000 is not an escape of NUL */
    pwpolicy_free(ok("length = 8\nrule \"charset\" { charset = "
                     "\"\\\\u0000\" }"));
    refused("length = 8\nrule \"charset\" { charset = \"\\\\\\u0000\" }",
            "NUL");
    refused("length = 8\nrule \"charset\" { charset = \"a\\tb\" }",
            "non-printable");
    refused("length = 8\nrule \"charset\" { charset = \"a\\u007fb\" }",
            "non-printable");
    refused("length = 8\nrule \"charset\" { charset = \"a\\u200eb\" }",
            "non-printable");
    refused("length = 8\nrule \"charset\" { charset = \"a\\ufeff\" }",
            "non-printable");
    refused("length = 8\nrule \"charset\" { charset = \"a\xff\" }",
            "not valid UTF-8");
    refused("length = 8\nrule \"charset\" { charset = \"a\xc0\x80\" }",
            "not valid UTF-8"); /* overlong NUL */
    refused("length = 8\nrule \"charset\" { charset = \"\xed\xa0\x80\" }",
            "not valid UTF-8"); /* surrogate */
    /* a surrogate written as an escape is CESU-8 after the reader */
    refused("length = 8\nrule \"charset\" { charset = \"\\ud800\" }",
            "UTF8");
}

TEST(parse_alphabet_limit)
{
    struct buf b;
    char u8[UTF8_MAX];
    const char *head = "length = 8\nrule \"charset\" { charset = \"";

    buf_init(&b, BUF_MAX_DEFAULT);
    buf_append(&b, head, strlen(head));
    for (uint32_t cp = 0x4E00; cp < 0x4E00 + 257; cp++)
        buf_append(&b, u8, utf8_encode(cp, u8));
    buf_append(&b, "\" }", 4); /* with the NUL */
    refused(b.ptr, "charset is too long");
    buf_release(&b);
}

TEST(utf8_decoder_bounds)
{
    const unsigned char emoji[] = {0xF0, 0x9F, 0x98, 0x80};
    const unsigned char big[] = {0xF4, 0x90, 0x80, 0x80};
    const unsigned char cut[] = {0xE2, 0x82};
    size_t i = 0;

    CHECK_EQ_INT(utf8_next(emoji, 4, &i), 0x1F600);
    CHECK_EQ_INT(i, 4);
    i = 0;
    CHECK(utf8_next(big, 4, &i) == UINT32_MAX);
    i = 0;
    CHECK(utf8_next(cut, 2, &i) == UINT32_MAX);
    CHECK(utf8_valid("\xe2\x82\xac"));
    CHECK(!utf8_valid("\xe2\x82"));
}

/*
 * The draws are uniform: 1,000,000 indexes of a 10-character alphabet
 * give a chi-square (df 9) far below 60 (p < 1e-8); a modulo bias of a
 * byte draw (256 % 10) would give ~365 here, a dead slot ~10^5.
 */
static double chi2_of(int nalpha, int draws)
{
    long count[PWPOLICY_MAX_ALPHABET] = {0};
    uint8_t idx[PWPOLICY_MAX_LENGTH];
    double chi = 0, want = (double)draws / nalpha;
    bool bounded = true;

    for (int d = 0; d < draws; d += PWPOLICY_MAX_LENGTH) {
        CHECK_EQ_INT(draw_indexes(nalpha, idx, PWPOLICY_MAX_LENGTH), 0);
        for (int k = 0; k < PWPOLICY_MAX_LENGTH; k++) {
            bounded = bounded && idx[k] < nalpha;
            count[idx[k] % PWPOLICY_MAX_ALPHABET]++;
        }
    }
    CHECK(bounded);
    for (int i = 0; i < nalpha; i++)
        chi += (count[i] - want) * (count[i] - want) / want;
    return chi;
}

TEST(draws_are_uniform_and_bounded)
{
    double c10 = chi2_of(10, 1000000);
    double c3 = chi2_of(3, 300000);
    double c255 = chi2_of(255, 2550000);
    double c256 = chi2_of(256, 2560000);

    CHECK(c10 < 60);    /* df 9 */
    CHECK(c3 < 45);     /* df 2 */
    CHECK(c255 < 420);  /* df 254: mean 254, sd ~22.5 */
    CHECK(c256 < 420);
    CHECK_EQ_INT(draw_indexes(1, (uint8_t[4]){0}, 4), 0);
}

TEST(generated_passwords_keep_the_rules)
{
    struct pwpolicy *p = ok("length = 20\n"
                            "rule \"charset\" { charset = \"abcdefghij\"\n"
                            "  min-chars = 3 }\n"
                            "rule \"charset\" { charset = \"0123456789\"\n"
                            "  min-chars = 5 }\n"
                            "rule \"charset\" { charset = \"-_\"\n"
                            "  min-chars = 1 }\n");
    struct errbuf err;

    if (p == NULL)
        return;
    for (int i = 0; i < 500; i++) {
        char *pw = NULL;
        int digits = 0, letters = 0, marks = 0;
        CHECK_EQ_INT(pwpolicy_generate(p, 1.0, &pw, &err), 0);
        if (pw == NULL)
            break;
        CHECK_EQ_INT(strlen(pw), 20);
        for (const char *c = pw; *c != '\0'; c++) {
            digits += *c >= '0' && *c <= '9';
            letters += *c >= 'a' && *c <= 'j';
            marks += *c == '-' || *c == '_';
        }
        CHECK_EQ_INT(digits + letters + marks, 20);
        CHECK(digits >= 5 && letters >= 3 && marks >= 1);
        CHECK(pwpolicy_check(p, pw));
        free(pw);
    }
    CHECK(!pwpolicy_check(p, "aaaaaaaaaaaaaaaaaaaa"));  /* rules */
    CHECK(!pwpolicy_check(p, "abc01234-"));             /* length */
    CHECK(!pwpolicy_check(p, "abc01234-Zabc01234-a"));  /* alphabet */
    CHECK(pwpolicy_check(p, "abc01234-abc01234-ab"));
    pwpolicy_free(p);
}

TEST(utf8_passwords_count_code_points)
{
    struct pwpolicy *p = ok("length = 10\nrule \"charset\" { charset = "
                            "\"\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80z\"\n"
                            "min-chars = 10 }");
    struct errbuf err;
    char *pw = NULL;
    size_t n, i = 0, cps = 0;

    if (p == NULL)
        return;
    CHECK_EQ_INT(p->nalpha, 4);
    CHECK_EQ_INT(pwpolicy_generate(p, 1.0, &pw, &err), 0);
    if (pw != NULL) {
        n = strlen(pw);
        CHECK(n >= 10 && n <= 40);
        CHECK(utf8_valid(pw));
        while (i < n) {
            CHECK(find_alpha(p, utf8_next((const unsigned char *)pw, n,
                                          &i)) >= 0);
            cps++;
        }
        CHECK_EQ_INT(cps, 10);
        CHECK(pwpolicy_check(p, pw));
    }
    free(pw);
    pwpolicy_free(p);
}

TEST(hopeless_policy_stops_in_bounded_time)
{
    /* 30 'a's among 40 draws from 62 characters: never in practice */
    struct pwpolicy *p = ok(
        "length = 40\nrule \"charset\" { charset = "
        "\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\""
        " }\nrule \"charset\" { charset = \"a\"\nmin-chars = 30 }");
    struct errbuf err;
    char *pw = NULL;
    double t0 = time_mono();

    if (p == NULL)
        return;
    CHECK_EQ_INT(pwpolicy_generate(p, 0.2, &pw, &err), COFFER_ETOOBIG);
    CHECK(pw == NULL);
    CHECK_STREQ(err.msg, "timed out generating string");
    CHECK(time_mono() - t0 < 1.0);
    t0 = time_mono();
    CHECK_EQ_INT(pwpolicy_try(p, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "are the rules impossible?") != NULL);
    CHECK(time_mono() - t0 < 2.0);
    pwpolicy_free(p);
    p = ok("length = 4\nrule \"charset\" { charset = \"ab\" }");
    if (p != NULL)
        CHECK_EQ_INT(pwpolicy_try(p, &err), 0);
    pwpolicy_free(p);
}

TEST(names)
{
    char long_name[PWPOLICY_MAX_NAME + 2];

    CHECK(pwpolicy_name_ok("db-pass_1.v2"));
    CHECK(!pwpolicy_name_ok(""));
    CHECK(!pwpolicy_name_ok("."));
    CHECK(!pwpolicy_name_ok(".."));
    CHECK(!pwpolicy_name_ok("../x"));
    CHECK(!pwpolicy_name_ok("a/b"));
    CHECK(!pwpolicy_name_ok("a b"));
    CHECK(!pwpolicy_name_ok("a\nb"));
    CHECK(!pwpolicy_name_ok("%2f"));
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[PWPOLICY_MAX_NAME] = '\0';
    CHECK(pwpolicy_name_ok(long_name));
    long_name[PWPOLICY_MAX_NAME] = 'a';
    long_name[PWPOLICY_MAX_NAME + 1] = '\0';
    CHECK(!pwpolicy_name_ok(long_name));
}

TEST(store_round_trip_and_generate_named)
{
    struct storage *s = storage_inmem_new();
    struct strvec names;
    struct errbuf err;
    char *text = NULL, *pw = NULL;

    strvec_init(&names);
    CHECK_EQ_INT(pwpolicy_store_write(s, "b", "length = 6\nrule \"charset\""
                                              " { charset = \"xy\" }"), 0);
    CHECK_EQ_INT(pwpolicy_store_write(s, "a", "length = 9"), 0);
    CHECK_EQ_INT(pwpolicy_store_write(s, "../a", "x"), COFFER_EINVAL);
    CHECK_EQ_INT(pwpolicy_store_list(s, &names), 0);
    CHECK_EQ_INT(names.n, 2);
    if (names.n == 2) {
        CHECK_STREQ(names.v[0], "a");
        CHECK_STREQ(names.v[1], "b");
    }
    CHECK_EQ_INT(pwpolicy_store_read(s, "b", &text), 0);
    CHECK(text != NULL && strstr(text, "length = 6") != NULL);
    free(text);
    CHECK_EQ_INT(pwpolicy_generate_named(s, "b", &pw, &err), 0);
    CHECK(pw != NULL && strlen(pw) == 6 && strspn(pw, "xy") == 6);
    free(pw);
    pw = NULL;
    CHECK_EQ_INT(pwpolicy_generate_named(s, "a", &pw, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "stored password policy is invalid") != NULL);
    CHECK_EQ_INT(pwpolicy_store_delete(s, "b"), 0);
    CHECK_EQ_INT(pwpolicy_store_delete(s, "b"), 0);
    CHECK_EQ_INT(pwpolicy_generate_named(s, "b", &pw, &err),
                 COFFER_ENOTFOUND);
    CHECK_STREQ(err.msg, "no password policy found");
    CHECK_EQ_INT(pwpolicy_generate_named(s, "../b", &pw, &err),
                 COFFER_ENOTFOUND);
    CHECK(pw == NULL);
    strvec_release(&names);
    storage_free(s);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(parse_alphabet_is_union_sorted_deduplicated);
    RUN(parse_json_form_and_comments);
    RUN(parse_refusals);
    RUN(parse_refuses_nul_controls_bad_utf8);
    RUN(parse_alphabet_limit);
    RUN(utf8_decoder_bounds);
    RUN(draws_are_uniform_and_bounded);
    RUN(generated_passwords_keep_the_rules);
    RUN(utf8_passwords_count_code_points);
    RUN(hopeless_policy_stops_in_bounded_time);
    RUN(names);
    RUN(store_round_trip_and_generate_named);
    return HARNESS_DONE();
}
