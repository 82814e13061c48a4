/*
 * audit_vectors.h - expected HMACs shared by the audit unit tests, computed
 * independently with Python's hmac.new(b"salt-1", value, hashlib.sha256),
 * and a member getter for the entries they parse.
 */
#ifndef COFFER_TEST_AUDIT_VECTORS_H
#define COFFER_TEST_AUDIT_VECTORS_H

#include <cjson/cJSON.h>

#define SALT "salt-1"
#define H_HUNTER2 "hmac-sha256:bc3d264e9e3dab7432e8dd340d31d4bce5153aa5e5d7484715385dd8c2420ea6"
#define H_42 "hmac-sha256:38209651ab6fc56342881afb09c3bee9a2a3c66938f56d922f2a20fd85e99ab2"
#define H_EMPTY "hmac-sha256:a51a0f5bb57dea9e3d7b35d409866234dfa63aa4d89c6b694bb19caca75a0ec5"
#define H_BIG "hmac-sha256:63f4cb056b05028235ca1019c95220aaf274e544ddf791f3aabfc19d4cc8e983"
#define H_1_5 "hmac-sha256:1bdf915e16aa27a29d3594e13d75520d424ff4b92e440389adb88940e0aecf1c"

static inline const char *str_at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "(not a string)";
}

#endif
