/*
 * cli_capture.h - running a CLI command inside a unit test and capturing
 * what it printed. Shared by the tests of the command files.
 */
#ifndef COFFER_TEST_CLI_CAPTURE_H
#define COFFER_TEST_CLI_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common.h"

/* What a command printed, and its exit code. */
struct run {
    int rc;
    char *out;
    char *err;
};

/* Points fd at a fresh temporary file; returns the saved fd or -1. */
static int redirect(int fd, FILE **tmp)
{
    int saved = dup(fd);

    *tmp = tmpfile();
    if (saved < 0 || *tmp == NULL || dup2(fileno(*tmp), fd) < 0)
        return -1;
    return saved;
}

/* Restores fd and returns what was written to tmp (malloc'd). */
static char *restore(int fd, int saved, FILE *tmp)
{
    char *text = NULL;
    long n;

    if (saved >= 0) {
        dup2(saved, fd);
        close(saved);
    }
    if (tmp == NULL)
        return xstrdup("");
    fseek(tmp, 0, SEEK_END);
    n = ftell(tmp);
    rewind(tmp);
    text = xcalloc((size_t)(n > 0 ? n : 0) + 1, 1);
    if (n > 0 && fread(text, 1, (size_t)n, tmp) != (size_t)n)
        text[0] = '\0';
    fclose(tmp);
    return text;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static char *json_text(const cJSON *v)
{
    return v != NULL ? cJSON_PrintUnformatted(v) : xstrdup("null");
}

#endif
