/*
 * audit_decl.h - an audit device declared in the configuration file.
 *
 * The configuration (config.c) fills it and the audit subsystem
 * (audit.c) enables it; it is a header of its own so that neither
 * depends on the other.
 */
#ifndef COFFER_AUDIT_DECL_H
#define COFFER_AUDIT_DECL_H

#include <stdbool.h>

struct cJSON;

/*
 * audit "file" "name" { description = "...", options = { file_path = ... } }
 * (OpenBao's declarative audit stanza; the options may also be written
 * directly in the block: audit "file" "name" { file_path = ... }).
 */
struct config_audit_device {
    char *type;        /* "file", "socket" or "syslog" */
    char *path;        /* as written; the type when no path is given */
    char *description; /* "" when unset */
    struct cJSON *options; /* an object of strings; never NULL */
    bool local;
    int line;          /* where the block starts, for errors at unseal */
};

#endif
