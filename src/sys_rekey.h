/*
 * sys_rekey.h - the operator commands that need the key holders' shares
 * while the server is unsealed: sys/generate-root/{attempt,update},
 * sys/rekey/{init,update} and sys/rekey-recovery-key/{init,update}.
 *
 * Unauthenticated as in Vault (the shares are the authority), served
 * through sys_seal.c's table outside the state lock; each request takes
 * the lock for reading itself, so a seal waits for a rekey to finish.
 * The attempts under way live in memory only (a restart or seal cancels
 * them); every share given is wiped when its attempt ends.
 */
#ifndef COFFER_SYS_REKEY_H
#define COFFER_SYS_REKEY_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "request.h"

/* True for the paths handled here. */
bool sys_rekey_handles(const char *path);
void sys_rekey_handle(struct request *req, struct response *resp);

/* Cancels every attempt (wipes the shares); on seal. */
void sys_rekey_reset(void);

/*
 * n key shares of SEAL_SHARE_LEN bytes as a JSON array of hex or base64
 * strings (sys/init's and sys/rekey's "keys" / "keys_base64").
 */
cJSON *sys_rekey_shares_json(const uint8_t *shares, int n, bool base64);

#endif
