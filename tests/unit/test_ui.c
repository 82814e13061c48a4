/*
 * test_ui.c - the web UI's file serving (ui.c): which names reach the
 * embedded table, and what every kind of URL is answered with. The table
 * is the real generated one (the build's src/ui/).
 */
#include "../../src/ui.c"

#include "harness.h"

TEST(names_refused)
{
    static const char *bad[] = {
        "", "..", ".", "../app.js", "pages/../app.js", "./index.html",
        "/etc/passwd", "pages//login.js", "pages/", ".hidden", "pages/.x",
        "app.js/", "a\\b", "a b", "app.js\n", "%2e%2e", "index.html?x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!name_ok(bad[i]));
    CHECK(name_ok("index.html"));
    CHECK(name_ok("pages/login.js"));
    CHECK(name_ok("a-b_c.d.js"));
}

TEST(table_sorted_and_found)
{
    CHECK(ui_nfiles >= 3);
    for (size_t i = 1; i < ui_nfiles; i++)
        CHECK(strcmp(ui_files[i - 1].name, ui_files[i].name) < 0);
    for (size_t i = 0; i < ui_nfiles; i++)
        CHECK(find_file(ui_files[i].name) == &ui_files[i]);
    CHECK(find_file("index.htm") == NULL);
    CHECK(find_file("zzz") == NULL);
    CHECK(find_file("") == NULL);
}

/* The status of url; the reply is released. */
static int status_of(const char *url, const char *method, const char **type)
{
    struct reply r = {0};
    int st;

    if (ui_answer(url, method, &r) != 0)
        return -1;
    st = r.status;
    if (type != NULL)
        *type = r.content_type;
    reply_release(&r);
    return st;
}

TEST(answers)
{
    const char *type = NULL;
    struct reply r = {0};

    CHECK_EQ_INT(status_of("/ui/", "GET", &type), 200);
    CHECK(type == type_html);
    CHECK_EQ_INT(status_of("/ui/app.js", "HEAD", &type), 200);
    CHECK(type == type_js);
    CHECK_EQ_INT(status_of("/ui/../v1/sys/health", "GET", NULL), 404);
    CHECK_EQ_INT(status_of("/ui/nope", "GET", NULL), 404);
    CHECK_EQ_INT(status_of("/ui/index.html", "POST", NULL), 405);
    CHECK_EQ_INT(status_of("/ui", "GET", NULL), 301);
    CHECK_EQ_INT(status_of("/", "GET", NULL), 307);
    CHECK_EQ_INT(status_of("/v1/sys/health", "GET", NULL), -1);
    CHECK_EQ_INT(status_of("/uix", "GET", NULL), -1);
    CHECK_EQ_INT(status_of("//ui/", "GET", NULL), -1);
    /* The body is the embedded file, byte for byte. */
    CHECK_EQ_INT(ui_answer("/ui/index.html", "GET", &r), 0);
    CHECK(r.len == find_file("index.html")->len);
    CHECK(memcmp(r.body, find_file("index.html")->data, r.len) == 0);
    reply_release(&r);
    /* Off: nothing is the UI's, not even the redirects. */
    ui_set_enabled(false);
    CHECK_EQ_INT(status_of("/ui/", "GET", NULL), -1);
    CHECK_EQ_INT(status_of("/", "GET", NULL), -1);
    ui_set_enabled(true);
    CHECK_EQ_INT(status_of("/ui/", "GET", NULL), 200);
}

TEST(headers_only_on_ui_replies)
{
    struct reply r = {0};

    r.content_type = "text/html; charset=utf-8"; /* equal text, not ours */
    CHECK(!is_ui_type(r.content_type));
    CHECK(is_ui_type(type_css));
    CHECK(!is_ui_type(NULL) || r.content_type != NULL);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(names_refused);
    RUN(table_sorted_and_found);
    RUN(answers);
    RUN(headers_only_on_ui_replies);
    return HARNESS_DONE();
}
