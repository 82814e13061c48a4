/*
 * sys_audit.h - the audit device endpoints (VAULT_API 2.12).
 *
 *   sys/audit                GET: the enabled devices (data + top level)
 *   sys/audit/<path>         PUT/POST enable, DELETE disable
 *   sys/audit-hash/<path>    PUT/POST {"input"} -> {"hash"}
 *
 * All need sudo. The devices themselves are audit.c's.
 */
#ifndef COFFER_SYS_AUDIT_H
#define COFFER_SYS_AUDIT_H

#include <stdbool.h>

#include "request.h"

/* True for the paths above (rel is the path after "sys/"). */
bool sys_audit_handles(const char *rel);

void sys_audit_handle(struct request *req, const char *rel,
                      struct response *resp);

#endif
