/*
 * ui.h - the web UI: static files compiled into the binary, served at /ui/.
 *
 * `make` turns every file under src/ui/ into a table in a generated C file
 * (tools/ui_embed.c writes $(BUILD)/gen/ui_files.c), so an installed binary
 * needs no files next to it. This module answers GET and HEAD of /ui/...
 * from that table: the exact names only (no file system, so no traversal),
 * every reply with the security headers below. /ui redirects to /ui/ (301)
 * and / to /ui/ (307, as Vault). The UI is served sealed or not and needs
 * no token: the page's own API calls carry the token.
 *
 * Entry points: ui_answer (http.c, for every URL outside /v1/),
 * ui_add_headers (http.c's send_reply), ui_set_enabled (the `ui` option).
 */
#ifndef COFFER_UI_H
#define COFFER_UI_H

#include <stdbool.h>
#include <stddef.h>

struct reply;
struct MHD_Response;

/* One embedded file; name is relative to src/ui/ ("pages/login.js"). */
struct ui_file {
    const char *name;
    const unsigned char *data;
    size_t len;
};

/* The generated table (sorted by name). */
extern const struct ui_file ui_files[];
extern const size_t ui_nfiles;

/* Whether the UI is served (the `ui` option; default true). Process-wide. */
void ui_set_enabled(bool on);

/*
 * Answers url (decoded, without the query) into out and returns 0, or
 * returns -1 with out untouched when the URL is not the UI's (or the UI
 * is off): the caller answers 404 as before. The body is a static copy of
 * the embedded file, out->body owned by out as for any reply.
 */
int ui_answer(const char *url, const char *method, struct reply *out);

/* Adds the UI's security headers when r came from ui_answer. */
void ui_add_headers(struct MHD_Response *resp, const struct reply *r);

#endif
