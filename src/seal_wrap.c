/*
 * seal_wrap.c - what the auto-unseal seals share.
 */
#include "seal_wrap.h"

#include <string.h>

int seal_wrap_check_name(const char *what, const char *s, size_t max,
                         struct errbuf *err)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > max) {
        errbuf_set(err, "%s is required (1 to %zu characters)", what, max);
        return COFFER_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' ||
            s[i] == '\\') {
            errbuf_set(err, "%s has a control character, quote or "
                            "backslash", what);
            return COFFER_EINVAL;
        }
    }
    return 0;
}
