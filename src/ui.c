/*
 * ui.c - serving the embedded web UI (ui.h).
 *
 * A request outside /v1/ comes here from http.c before anything else runs
 * (no token, no seal check, no Lua): the UI must load on a sealed server,
 * where its seal page is the way in. Names are looked up in the generated
 * table and nowhere else, so "..", "%2e%2e" (libmicrohttpd has decoded it
 * by now) or a NUL cannot reach a file that was not compiled in; odd names
 * are refused before the lookup anyway, to keep the 404 path dull.
 */
#include "ui.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common.h"
#include "core.h"
#include "util.h"

#define UI_PREFIX "/ui/"
#define UI_INDEX "index.html"
#define UI_MAX_NAME 200

static atomic_int enabled = 1;

/*
 * The content types are arrays, not literals, so that their addresses are
 * ours alone (identical literals may be merged across files): a reply
 * whose content_type points here is a UI reply (ui_add_headers).
 */
static const char type_html[] = "text/html; charset=utf-8";
static const char type_js[] = "text/javascript; charset=utf-8";
static const char type_css[] = "text/css; charset=utf-8";
static const char type_svg[] = "image/svg+xml";
static const char type_png[] = "image/png";
static const char type_ico[] = "image/x-icon";
static const char type_json[] = "application/json";
static const char type_text[] = "text/plain; charset=utf-8";

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", type_html}, {".js", type_js},   {".mjs", type_js},
    {".css", type_css},   {".svg", type_svg}, {".png", type_png},
    {".ico", type_ico},   {".json", type_json}, {".txt", type_text},
};

/* The headers of every UI reply (the contract of issue 15). */
static const struct {
    const char *name;
    const char *value;
} sec_headers[] = {
    {"Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; "
     "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
     "base-uri 'none'; form-action 'self'"},
    {"X-Frame-Options", "DENY"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
};

void ui_set_enabled(bool on)
{
    atomic_store(&enabled, on ? 1 : 0);
}

static bool is_ui_type(const char *t)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (t == types[i].type)
            return true;
    return false;
}

void ui_add_headers(struct MHD_Response *resp, const struct reply *r)
{
    if (r->content_type == NULL || !is_ui_type(r->content_type))
        return;
    for (size_t i = 0; i < sizeof(sec_headers) / sizeof(sec_headers[0]); i++)
        MHD_add_response_header(resp, sec_headers[i].name,
                                sec_headers[i].value);
}

/*
 * A name the generator could have produced: [A-Za-z0-9._-] segments
 * separated by single slashes, none empty, none starting with a dot (so
 * neither "." nor ".." nor hidden files).
 */
static bool name_ok(const char *name)
{
    size_t len = strlen(name);
    bool seg_start = true;

    if (len == 0 || len > UI_MAX_NAME)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char ch = *p;
        if (ch == '/') {
            if (seg_start)
                return false;
            seg_start = true;
            continue;
        }
        if (seg_start && ch == '.')
            return false;
        seg_start = false;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-'))
            return false;
    }
    return !seg_start;
}

/* The table is sorted by name (the generator sorts). */
static const struct ui_file *find_file(const char *name)
{
    size_t lo = 0, hi = ui_nfiles;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ui_files[mid].name);
        if (c == 0)
            return &ui_files[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]);
         i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

static void set_text(struct reply *out, int status, const char *text)
{
    out->status = status;
    out->len = strlen(text);
    out->body = xmalloc(out->len + 1);
    memcpy(out->body, text, out->len + 1);
    out->content_type = type_text;
}

static void set_redirect(struct reply *out, int status, const char *to)
{
    set_text(out, status, "");
    out->location = xstrdup(to);
}

/* Answers a name under /ui/ (already known to be a UI URL). */
static void answer_file(const char *name, struct reply *out)
{
    const struct ui_file *f;
    const char *type;

    if (*name == '\0')
        name = UI_INDEX;
    f = name_ok(name) ? find_file(name) : NULL;
    type = f != NULL ? type_of(name) : NULL;
    if (f == NULL || type == NULL) {
        set_text(out, 404, "404 page not found\n");
        return;
    }
    out->status = 200;
    out->len = f->len;
    out->body = xmalloc(f->len + 1);
    memcpy(out->body, f->data, f->len);
    out->body[f->len] = '\0';
    out->content_type = type;
}

int ui_answer(const char *url, const char *method, struct reply *out)
{
    bool ui_url = strncmp(url, UI_PREFIX, strlen(UI_PREFIX)) == 0;

    if (!atomic_load(&enabled))
        return -1;
    if (!ui_url && strcmp(url, "/ui") != 0 && strcmp(url, "/") != 0)
        return -1;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        set_text(out, 405, "405 method not allowed\n");
    else if (strcmp(url, "/ui") == 0)
        set_redirect(out, 301, UI_PREFIX);
    else if (strcmp(url, "/") == 0)
        set_redirect(out, 307, UI_PREFIX);
    else
        answer_file(url + strlen(UI_PREFIX), out);
    return 0;
}
