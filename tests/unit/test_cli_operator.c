/*
 * test_cli_operator.c - unit tests for cli_operator.c: operator init,
 * unseal and seal.
 *
 * Three layers:
 *   - the pure parts (defaults, request bodies, the init table and JSON,
 *     reading a key line) are called directly;
 *   - whole commands run through cli_main() with stdout and stderr
 *     captured, against a scripted HTTP server on a loopback port (one
 *     thread, one request per connection) that records each request, so
 *     a test sees both what was sent and what was printed;
 *   - transport errors point -address at a closed port.
 * Expected texts are the Vault CLI's (command/operator_*.go).
 */
#include "../../src/cli/cli_operator.c"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/cli/cli.h"
#include "cli_capture.h"

/* Nothing listens here: connections are refused at once. */
#define DEAD_ADDR "-address=http://127.0.0.1:1"

/* ====================================================================
 * Helpers: capturing a run
 * ==================================================================== */


/*
 * Runs `coffer operator ARGS...` (NULL-terminated), with `input` (or
 * nothing) as stdin, and captures its output.
 */
static void run_op(struct run *r, const char *input, const char *const *args)
{
    char *argv[16];
    FILE *tout = NULL, *terr = NULL, *tin = NULL;
    int argc = 0, so, se, si;

    argv[argc++] = (char *)"coffer";
    argv[argc++] = (char *)"operator";
    while (*args != NULL && argc < 15)
        argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    tin = tmpfile();
    if (tin != NULL && input != NULL)
        fputs(input, tin);
    if (tin != NULL)
        rewind(tin);
    si = dup(STDIN_FILENO);
    if (tin != NULL)
        dup2(fileno(tin), STDIN_FILENO);
    fflush(stdout);
    fflush(stderr);
    so = redirect(STDOUT_FILENO, &tout);
    se = redirect(STDERR_FILENO, &terr);
    r->rc = cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    r->err = restore(STDERR_FILENO, se, terr);
    r->out = restore(STDOUT_FILENO, so, tout);
    dup2(si, STDIN_FILENO);
    close(si);
    if (tin != NULL)
        fclose(tin);
}


/* ====================================================================
 * Helpers: a scripted HTTP server
 * ==================================================================== */

#define FAKE_MAX 8

/* One canned answer, served to the next request whatever it is. */
struct answer {
    int status;
    const char *body;
};

struct fake {
    int fd;
    int port;
    const struct answer *script;
    size_t n;
    atomic_bool stop;
    pthread_t thread;
    /* what came in, one per served answer */
    size_t served;
    char line[FAKE_MAX][256]; /* "PUT /v1/sys/init" */
    char *body[FAKE_MAX];
    char addr_flag[64];       /* "-address=http://127.0.0.1:PORT" */
};

/* Reads one request from c: its request line and its body. */
static void read_request(int c, char *line, size_t line_cap, char **body)
{
    char buf[16384], *hdr_end, *cl, *sp;
    size_t n = 0, want = 0, have;
    ssize_t got;

    *body = NULL;
    line[0] = '\0';
    for (;;) {
        got = read(c, buf + n, sizeof(buf) - 1 - n);
        if (got <= 0)
            return;
        n += (size_t)got;
        buf[n] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
        if (hdr_end == NULL)
            continue;
        cl = strcasestr(buf, "\r\ncontent-length:");
        want = cl != NULL && cl < hdr_end
                   ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
        have = n - (size_t)(hdr_end + 4 - buf);
        if (have >= want || n >= sizeof(buf) - 1)
            break;
    }
    /* "PUT /v1/sys/init HTTP/1.1" -> "PUT /v1/sys/init" */
    sp = strstr(buf, " HTTP/");
    if (sp != NULL && (size_t)(sp - buf) < line_cap) {
        memcpy(line, buf, (size_t)(sp - buf));
        line[sp - buf] = '\0';
    }
    *body = xstrndup(hdr_end + 4, want);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    struct pollfd p;
    char resp[4096];
    int c, len;

    while (!atomic_load(&f->stop) && f->served < f->n) {
        p.fd = f->fd;
        p.events = POLLIN;
        if (poll(&p, 1, 50) <= 0)
            continue;
        c = accept(f->fd, NULL, NULL);
        if (c < 0)
            continue;
        read_request(c, f->line[f->served], sizeof(f->line[0]),
                     &f->body[f->served]);
        len = snprintf(resp, sizeof(resp),
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       f->script[f->served].status,
                       strlen(f->script[f->served].body),
                       f->script[f->served].body);
        if (write(c, resp, (size_t)len) != len)
            perror("fake server write");
        close(c);
        f->served++;
    }
    return NULL;
}

/* Starts a server that answers with script[0], script[1], ... in turn. */
static int fake_start(struct fake *f, const struct answer *script, size_t n)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(f, 0, sizeof(*f));
    atomic_init(&f->stop, false);
    f->script = script;
    f->n = n < FAKE_MAX ? n : FAKE_MAX;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(f->fd, 8) != 0 ||
        getsockname(f->fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    f->port = ntohs(sa.sin_port);
    snprintf(f->addr_flag, sizeof(f->addr_flag),
             "-address=http://127.0.0.1:%d", f->port);
    return pthread_create(&f->thread, NULL, fake_main, f) == 0 ? 0 : -1;
}

/* Stops the server; what it recorded stays readable until fake_free. */
static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

static void fake_free(struct fake *f)
{
    size_t i;

    for (i = 0; i < FAKE_MAX; i++) {
        free(f->body[i]);
        f->body[i] = NULL;
    }
}

/* The canned seal-status answers. */
#define SEAL_STATUS_UNINIT                                                   \
    "{\"type\":\"shamir\",\"initialized\":false,\"sealed\":true,\"t\":0,"    \
    "\"n\":0,\"progress\":0,\"nonce\":\"\",\"version\":\"1.14.9\","          \
    "\"build_date\":\"2024-01-01T00:00:00Z\",\"migration\":false,"           \
    "\"recovery_seal\":false,\"storage_type\":\"sqlite\"}"
#define SEAL_STATUS_RECOVERY                                                 \
    "{\"type\":\"awskms\",\"initialized\":false,\"sealed\":true,\"t\":0,"    \
    "\"n\":0,\"progress\":0,\"nonce\":\"\",\"version\":\"1.14.9\","          \
    "\"migration\":false,\"recovery_seal\":true,\"storage_type\":\"raft\"}"
#define SEAL_STATUS_PROGRESS                                                 \
    "{\"type\":\"shamir\",\"initialized\":true,\"sealed\":true,\"t\":3,"     \
    "\"n\":5,\"progress\":1,\"nonce\":\"6c3e1a58-0000-4000-8000-0123\","     \
    "\"version\":\"1.14.9\",\"build_date\":\"2024-01-01T00:00:00Z\","        \
    "\"migration\":false,\"recovery_seal\":false,"                           \
    "\"storage_type\":\"sqlite\"}"
#define LEADER_NO_HA                                                         \
    "{\"ha_enabled\":false,\"is_self\":false,"                               \
    "\"active_time\":\"0001-01-01T00:00:00Z\",\"leader_address\":\"\","      \
    "\"leader_cluster_address\":\"\",\"performance_standby\":false,"         \
    "\"performance_standby_last_remote_wal\":0}"

/* A sys/init answer for 5 shares (hex keys end in the share's x byte). */
#define INIT_5                                                               \
    "{\"keys\":[\"aa01\",\"aa02\",\"aa03\",\"aa04\",\"aa05\"],"              \
    "\"keys_base64\":[\"qgE=\",\"qgI=\",\"qgM=\",\"qgQ=\",\"qgU=\"],"        \
    "\"root_token\":\"hvs.ROOT<&>\"}"

/* Vault's text for 5 shares and a threshold of 3, byte for byte. */
#define INIT_5_TABLE                                                         \
    "Unseal Key 1: qgE=\n"                                                   \
    "Unseal Key 2: qgI=\n"                                                   \
    "Unseal Key 3: qgM=\n"                                                   \
    "Unseal Key 4: qgQ=\n"                                                   \
    "Unseal Key 5: qgU=\n"                                                   \
    "\n"                                                                     \
    "Initial Root Token: hvs.ROOT<&>\n"                                      \
    "\n"                                                                     \
    "Vault initialized with 5 key shares and a key threshold of 3. Please "  \
    "securely\n"                                                             \
    "distribute the key shares printed above. When the Vault is re-sealed,\n" \
    "restarted, or stopped, you must supply at least 3 of these keys to "    \
    "unseal it\n"                                                            \
    "before it can start servicing requests.\n"                              \
    "\n"                                                                     \
    "Vault does not store the generated root key. Without at least 3 keys " \
    "to\n"                                                                   \
    "reconstruct the root key, Vault will remain permanently sealed!\n"      \
    "\n"                                                                     \
    "It is possible to generate new unseal keys, provided you have a "       \
    "quorum of\n"                                                            \
    "existing unseal keys shares. See \"vault operator rekey\" for more "    \
    "information.\n"

/* ====================================================================
 * Pure parts
 * ==================================================================== */

TEST(init_defaults_and_body)
{
    static const struct {
        int64_t shares, threshold;
        bool recovery;
        const char *body;
    } cases[] = {
        { 0, 0, false,
          "{\"secret_shares\":5,\"secret_threshold\":3,\"stored_shares\":0,"
          "\"pgp_keys\":null,\"recovery_shares\":0,\"recovery_threshold\":0,"
          "\"recovery_pgp_keys\":null,\"root_token_pgp_key\":\"\"}" },
        { 1, 1, false,
          "{\"secret_shares\":1,\"secret_threshold\":1,\"stored_shares\":0,"
          "\"pgp_keys\":null,\"recovery_shares\":0,\"recovery_threshold\":0,"
          "\"recovery_pgp_keys\":null,\"root_token_pgp_key\":\"\"}" },
        /* Only the missing one gets a default, as in Vault. */
        { 7, 0, false,
          "{\"secret_shares\":7,\"secret_threshold\":3,\"stored_shares\":0,"
          "\"pgp_keys\":null,\"recovery_shares\":0,\"recovery_threshold\":0,"
          "\"recovery_pgp_keys\":null,\"root_token_pgp_key\":\"\"}" },
        /* Out-of-range values go to the server, which words the error. */
        { -1, 300, false,
          "{\"secret_shares\":-1,\"secret_threshold\":300,"
          "\"stored_shares\":0,\"pgp_keys\":null,\"recovery_shares\":0,"
          "\"recovery_threshold\":0,\"recovery_pgp_keys\":null,"
          "\"root_token_pgp_key\":\"\"}" },
        /* Behind an auto-unseal seal the defaults are recovery keys. */
        { 0, 0, true,
          "{\"secret_shares\":0,\"secret_threshold\":0,\"stored_shares\":0,"
          "\"pgp_keys\":null,\"recovery_shares\":5,\"recovery_threshold\":3,"
          "\"recovery_pgp_keys\":null,\"root_token_pgp_key\":\"\"}" },
    };
    struct operator_init_opts o = { 0, 0, false };
    struct init_req req;
    cJSON *b;
    char *s;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        o.key_shares = cases[i].shares;
        o.key_threshold = cases[i].threshold;
        init_defaults(&req, &o, cases[i].recovery);
        b = init_body(&req);
        s = json_text(b);
        CHECK_STREQ(s, cases[i].body);
        free(s);
        cJSON_Delete(b);
    }
}

TEST(unseal_body)
{
    cJSON *b = unseal_body("qgE=", false);
    char *s = json_text(b);

    /* Go's api.UnsealOpts, every field. */
    CHECK_STREQ(s, "{\"key\":\"qgE=\",\"reset\":false,\"migrate\":false}");
    free(s);
    cJSON_Delete(b);
    b = unseal_body("qgE=", true); /* -migrate */
    s = json_text(b);
    CHECK_STREQ(s, "{\"key\":\"qgE=\",\"reset\":false,\"migrate\":true}");
    free(s);
    cJSON_Delete(b);
}

static void table_for(struct out *o, int64_t shares, int64_t threshold,
                      const char *resp_text)
{
    struct init_req req = { shares, threshold, 0, 0 };
    cJSON *resp = cJSON_Parse(resp_text);

    out_init(o);
    init_table(o, &req, resp);
    cJSON_Delete(resp);
}

TEST(init_table_text)
{
    struct out o;

    table_for(&o, 5, 3, INIT_5);
    CHECK_STREQ(o.b.ptr, INIT_5_TABLE);
    out_release(&o);

    /* One share; no keys_base64, so the hex keys are shown. */
    table_for(&o, 1, 1, "{\"keys\":[\"0a0b\"],\"root_token\":\"r\"}");
    CHECK_STREQ(o.b.ptr,
                "Unseal Key 1: 0a0b\n"
                "\n"
                "Initial Root Token: r\n"
                "\n"
                "Vault initialized with 1 key shares and a key threshold of "
                "1. Please securely\n"
                "distribute the key shares printed above. When the Vault is "
                "re-sealed,\n"
                "restarted, or stopped, you must supply at least 1 of these "
                "keys to unseal it\n"
                "before it can start servicing requests.\n"
                "\n"
                "Vault does not store the generated root key. Without at "
                "least 1 keys to\n"
                "reconstruct the root key, Vault will remain permanently "
                "sealed!\n"
                "\n"
                "It is possible to generate new unseal keys, provided you "
                "have a quorum of\n"
                "existing unseal keys shares. See \"vault operator rekey\" "
                "for more information.\n");
    out_release(&o);

    /* keys_base64 of another length is ignored, as in Vault. */
    table_for(&o, 2, 2, "{\"keys\":[\"01\",\"02\"],\"keys_base64\":[\"AQ==\"],"
                        "\"root_token\":\"r\"}");
    CHECK(str_has_prefix(o.b.ptr, "Unseal Key 1: 01\nUnseal Key 2: 02\n\n"));
    out_release(&o);
}

TEST(init_table_recovery)
{
    struct init_req req = { 0, 0, 5, 3 };
    cJSON *resp = cJSON_Parse(
        "{\"keys\":[],\"keys_base64\":[],\"recovery_keys\":[\"01\",\"02\"],"
        "\"recovery_keys_base64\":[\"AQ==\",\"Ag==\"],\"root_token\":\"r\"}");
    struct out o;

    out_init(&o);
    init_table(&o, &req, resp);
    CHECK_STREQ(o.b.ptr,
                "Recovery Key 1: AQ==\n"
                "Recovery Key 2: Ag==\n"
                "\n"
                "Initial Root Token: r\n"
                "\n"
                "Success! Vault is initialized\n"
                "\n"
                "Recovery key initialized with 5 key shares and a key "
                "threshold of 3. Please\n"
                "securely distribute the key shares printed above.\n");
    out_release(&o);
    cJSON_Delete(resp);
}

TEST(init_machine_json)
{
    struct init_req req = { 5, 3, 0, 0 };
    cJSON *resp = cJSON_Parse(INIT_5), *m = machine_init(&req, resp);
    struct out o;

    out_init(&o);
    json_in_order(&o, m);
    /* Vault's machineInit in field order; Go escapes <, > and &. */
    CHECK_STREQ(o.b.ptr,
                "{\n"
                "  \"unseal_keys_b64\": [\n"
                "    \"qgE=\",\n"
                "    \"qgI=\",\n"
                "    \"qgM=\",\n"
                "    \"qgQ=\",\n"
                "    \"qgU=\"\n"
                "  ],\n"
                "  \"unseal_keys_hex\": [\n"
                "    \"aa01\",\n"
                "    \"aa02\",\n"
                "    \"aa03\",\n"
                "    \"aa04\",\n"
                "    \"aa05\"\n"
                "  ],\n"
                "  \"unseal_shares\": 5,\n"
                "  \"unseal_threshold\": 3,\n"
                "  \"recovery_keys_b64\": [],\n"
                "  \"recovery_keys_hex\": [],\n"
                "  \"recovery_keys_shares\": 0,\n"
                "  \"recovery_keys_threshold\": 0,\n"
                "  \"root_token\": \"hvs.ROOT\\u003c\\u0026\\u003e\"\n"
                "}");
    out_release(&o);
    json_delete_wiped(m);

    /* No keys back (stored shares): Vault reports 1 of 1. */
    cJSON_Delete(resp);
    resp = cJSON_Parse("{\"root_token\":\"r\"}");
    m = machine_init(&req, resp);
    CHECK_EQ_INT(cJSON_GetObjectItem(m, "unseal_shares")->valueint, 1);
    CHECK_EQ_INT(cJSON_GetObjectItem(m, "unseal_threshold")->valueint, 1);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(m,
                                                        "unseal_keys_b64")),
                 0);
    json_delete_wiped(m);
    cJSON_Delete(resp);
}

/* read_line_fd over a pipe holding `input`. */
static int line_from(const char *input, char *buf, size_t cap,
                     struct out *err)
{
    int p[2], rc;

    if (pipe(p) != 0)
        return -999;
    if (write(p[1], input, strlen(input)) != (ssize_t)strlen(input))
        return -998;
    close(p[1]);
    rc = read_line_fd(p[0], buf, cap, err);
    close(p[0]);
    return rc;
}

TEST(read_key_line)
{
    static const struct {
        const char *input;
        int rc;
        const char *line, *err;
    } cases[] = {
        { "qgE=\n", 0, "qgE=", "" },
        { "qgE=", 0, "qgE=", "" },          /* EOF ends the line too */
        { "\n", 0, "", "" },                /* the server words the error */
        { "first\nsecond\n", 0, "first", "" }, /* one line only */
        { "  spaced \r\n", 0, "  spaced \r", "" }, /* trimmed later */
        { "", COFFER_EIO, "", "EOF" },
        { "0123456789abcdef", COFFER_ETOOBIG, "",
          "unseal key: line too long" },
    };
    char buf[12];
    struct out err;
    size_t i;
    int rc;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        out_init(&err);
        memset(buf, 0, sizeof(buf));
        rc = line_from(cases[i].input, buf, sizeof(buf), &err);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0)
            CHECK_STREQ(buf, cases[i].line);
        CHECK_STREQ(err.b.ptr != NULL ? err.b.ptr : "", cases[i].err);
        out_release(&err);
    }
}

/* ====================================================================
 * Whole commands: usage and transport errors
 * ==================================================================== */

TEST(usage_errors)
{
    static const struct {
        const char *args[5];
        const char *err;
    } cases[] = {
        { { "init", "x", NULL }, "Too many arguments (expected 0, got 1)\n" },
        { { "unseal", "a", "b", NULL },
          "Too many arguments (expected 1, got 2)\n" },
        { { "seal", "x", NULL }, "Too many arguments (expected 0, got 1)\n" },
        { { "seal", "-reset", NULL },
          "flag provided but not defined: -reset\n" },
        { { "init", "-reset", NULL },
          "flag provided but not defined: -reset\n" },
        { { "unseal", "-status", NULL },
          "flag provided but not defined: -status\n" },
        { { "init", "-key-shares=five", NULL },
          "invalid value \"five\" for flag -key-shares: strconv.ParseInt: "
          "parsing \"five\": invalid syntax\n" },
        { { "init", "-t", NULL }, "flag needs an argument: -t\n" },
        { { "init", "-format=raw", NULL },
          "This command does not support the -format=raw option.\n" },
    };
    struct run r;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        run_op(&r, NULL, cases[i].args);
        CHECK_EQ_INT(r.rc, 1);
        CHECK_STREQ(r.err, cases[i].err);
        CHECK_STREQ(r.out, "");
        run_free(&r);
    }
}

TEST(help)
{
    const char *group[] = { NULL };
    const char *sub[] = { "unseal", "-h", NULL };
    struct run r;

    run_op(&r, NULL, group);
    CHECK_EQ_INT(r.rc, 1);
    CHECK(str_has_prefix(r.err, "Usage: coffer operator <subcommand>"));
    run_free(&r);
    run_op(&r, NULL, sub);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(str_has_prefix(r.out,
                         "Usage: coffer operator unseal [options] [KEY]"));
    CHECK(strstr(r.out, "-reset") != NULL);
    run_free(&r);
}

TEST(request_errors)
{
    static const struct {
        const char *args[5];
        const char *input;
        int rc;
        const char *err;
    } cases[] = {
        /* init asks sys/seal-status first and prints its error bare. */
        { { "init", DEAD_ADDR, NULL }, NULL, 2,
          "Get \"http://127.0.0.1:1/v1/sys/seal-status\": " },
        { { "init", "-status", DEAD_ADDR, NULL }, NULL, 2,
          "Get \"http://127.0.0.1:1/v1/sys/seal-status\": " },
        { { "unseal", DEAD_ADDR, "qgE=", NULL }, NULL, 2,
          "Error unsealing: Put \"http://127.0.0.1:1/v1/sys/unseal\": " },
        { { "unseal", DEAD_ADDR, NULL }, "qgE=\n", 2,
          "Error unsealing: Put \"http://127.0.0.1:1/v1/sys/unseal\": " },
        { { "unseal", "-reset", DEAD_ADDR, NULL }, NULL, 2,
          "Error resetting unseal process: Put "
          "\"http://127.0.0.1:1/v1/sys/unseal\": " },
        { { "seal", DEAD_ADDR, NULL }, NULL, 2,
          "Error sealing: Put \"http://127.0.0.1:1/v1/sys/seal\": " },
    };
    struct run r;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        run_op(&r, cases[i].input, cases[i].args);
        CHECK_EQ_INT(r.rc, cases[i].rc);
        CHECK(str_has_prefix(r.err, cases[i].err));
        if (!str_has_prefix(r.err, cases[i].err))
            printf("  got: %s\n", r.err);
        CHECK(strstr(r.err, "connection refused\n") != NULL);
        CHECK_STREQ(r.out, "");
        run_free(&r);
    }
}

/* No key argument and nothing on stdin: Vault's message, exit 1. */
TEST(unseal_no_input)
{
    const char *args[] = { "unseal", DEAD_ADDR, NULL };
    struct run r;

    run_op(&r, "", args);
    CHECK_EQ_INT(r.rc, 1);
    CHECK_STREQ(r.err,
                "An error occurred attempting to ask for an unseal key. The "
                "raw error message\n"
                "is shown below, but usually this is because you attempted "
                "to pipe a value\n"
                "into the unseal command or you are executing outside of a "
                "terminal (tty). You\n"
                "should run the unseal command from a terminal for maximum "
                "security. If this\n"
                "is not an option, the unseal key can be provided as the "
                "first argument to the\n"
                "unseal command. The raw error was:  EOF\n");
    CHECK_STREQ(r.out, "");
    run_free(&r);
}

/* ====================================================================
 * Whole commands against the scripted server
 * ==================================================================== */

TEST(init_end_to_end)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_UNINIT },
        { 200, INIT_5 },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "init", NULL, NULL };

    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    args[1] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_STREQ(r.out, INIT_5_TABLE);
    CHECK_STREQ(r.err, "");
    CHECK_EQ_INT(f.served, 2);
    CHECK_STREQ(f.line[0], "GET /v1/sys/seal-status");
    CHECK_STREQ(f.line[1], "PUT /v1/sys/init");
    CHECK_STREQ(f.body[1],
                "{\"secret_shares\":5,\"secret_threshold\":3,"
                "\"stored_shares\":0,\"pgp_keys\":null,"
                "\"recovery_shares\":0,\"recovery_threshold\":0,"
                "\"recovery_pgp_keys\":null,\"root_token_pgp_key\":\"\"}");
    fake_free(&f);
    run_free(&r);
}

TEST(init_json_end_to_end)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_UNINIT },
        { 200, "{\"keys\":[\"0a\"],\"keys_base64\":[\"Cg==\"],"
               "\"root_token\":\"hvs.x\"}" },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "init", "-n=1", "-t", "1", "-format=json", NULL,
                           NULL };

    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    args[5] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_STREQ(r.out, "{\n"
                       "  \"unseal_keys_b64\": [\n"
                       "    \"Cg==\"\n"
                       "  ],\n"
                       "  \"unseal_keys_hex\": [\n"
                       "    \"0a\"\n"
                       "  ],\n"
                       "  \"unseal_shares\": 1,\n"
                       "  \"unseal_threshold\": 1,\n"
                       "  \"recovery_keys_b64\": [],\n"
                       "  \"recovery_keys_hex\": [],\n"
                       "  \"recovery_keys_shares\": 0,\n"
                       "  \"recovery_keys_threshold\": 0,\n"
                       "  \"root_token\": \"hvs.x\"\n"
                       "}\n");
    CHECK(f.body[1] != NULL &&
          str_has_prefix(f.body[1], "{\"secret_shares\":1,"
                                    "\"secret_threshold\":1,"));
    fake_free(&f);
    run_free(&r);
}

TEST(init_yaml_end_to_end)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_UNINIT },
        { 200, "{\"keys\":[\"0a\"],\"keys_base64\":[\"Cg==\"],"
               "\"root_token\":\"hvs.x\"}" },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "init", "-format=yaml", NULL, NULL };

    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    args[2] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 0);
    /* ghodss/yaml goes through JSON: keys come out sorted. */
    CHECK(str_has_prefix(r.out, "recovery_keys_b64: []\n"));
    CHECK(strstr(r.out, "root_token: hvs.x\nunseal_keys_b64:\n- Cg==\n")
          != NULL);
    fake_free(&f);
    run_free(&r);
}

TEST(init_recovery_end_to_end)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_RECOVERY },
        { 200, "{\"keys\":[],\"keys_base64\":[],\"recovery_keys\":[\"01\"],"
               "\"recovery_keys_base64\":[\"AQ==\"],\"root_token\":\"r\"}" },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "init", NULL, NULL };

    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    args[1] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(str_has_prefix(r.out, "Recovery Key 1: AQ==\n\nInitial Root "
                                "Token: r\n\nSuccess! Vault is initialized\n"));
    CHECK(f.body[1] != NULL &&
          strstr(f.body[1], "\"secret_shares\":0,\"secret_threshold\":0,")
              != NULL &&
          strstr(f.body[1], "\"recovery_shares\":5,\"recovery_threshold\":3")
              != NULL);
    fake_free(&f);
    run_free(&r);
}

TEST(init_already_initialized)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_PROGRESS },
        { 400, "{\"errors\":[\"Vault is already initialized\"]}" },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "init", NULL, NULL };
    char want[512];

    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    args[1] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    snprintf(want, sizeof(want),
             "Error initializing: Error making API request.\n\n"
             "URL: PUT http://127.0.0.1:%d/v1/sys/init\n"
             "Code: 400. Errors:\n\n"
             "* Vault is already initialized\n", f.port);
    CHECK_EQ_INT(r.rc, 2);
    CHECK_STREQ(r.err, want);
    CHECK_STREQ(r.out, "");
    fake_free(&f);
    run_free(&r);
}

TEST(init_status_end_to_end)
{
    static const struct {
        const char *init_body;
        const char *format;
        int rc;
        const char *out;
    } cases[] = {
        { "{\"initialized\":true}", "-format=table", 0,
          "Vault is initialized\n" },
        { "{\"initialized\":false}", "-format=table", 2,
          "Vault is not initialized\n" },
        /* api.InitStatusResponse has no json tag. */
        { "{\"initialized\":false}", "-format=json", 2,
          "{\n  \"Initialized\": false\n}\n" },
        { "{\"initialized\":true}", "-format=yaml", 0,
          "Initialized: true\n" },
    };
    struct answer script[2] = { { 200, SEAL_STATUS_UNINIT }, { 200, NULL } };
    struct fake f;
    struct run r;
    const char *args[] = { "init", "-status", NULL, NULL, NULL };
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        script[1].body = cases[i].init_body;
        CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
        args[2] = f.addr_flag;
        args[3] = cases[i].format;
        run_op(&r, NULL, args);
        fake_stop(&f);
        CHECK_EQ_INT(r.rc, cases[i].rc);
        CHECK_STREQ(r.out, cases[i].out);
        CHECK_STREQ(r.err, "");
        CHECK_STREQ(f.line[1], "GET /v1/sys/init");
        fake_free(&f);
        run_free(&r);
    }

    /* sys/init failing is exit 1: 2 means "not initialized" here. */
    script[1].status = 500;
    script[1].body = "{\"errors\":[\"boom\"]}";
    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    args[2] = f.addr_flag;
    args[3] = NULL;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 1);
    CHECK(str_has_prefix(r.err, "Error checking init status: Error making "
                                "API request."));
    fake_free(&f);
    run_free(&r);
}

#define PROGRESS_TABLE                                                       \
    "Key                Value\n"                                             \
    "---                -----\n"                                             \
    "Seal Type          shamir\n"                                            \
    "Initialized        true\n"                                              \
    "Sealed             true\n"                                              \
    "Total Shares       5\n"                                                 \
    "Threshold          3\n"                                                 \
    "Unseal Progress    1/3\n"                                               \
    "Unseal Nonce       6c3e1a58-0000-4000-8000-0123\n"                      \
    "Version            1.14.9\n"                                            \
    "Build Date         2024-01-01T00:00:00Z\n"                              \
    "Storage Type       sqlite\n"                                            \
    "HA Enabled         false\n"

TEST(unseal_end_to_end)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_PROGRESS },
        { 200, LEADER_NO_HA },
    };
    static const struct {
        const char *flag, *arg, *input;
        const char *body;
    } cases[] = {
        { NULL, "  qgE=  ", NULL,
          "{\"key\":\"qgE=\",\"reset\":false,\"migrate\":false}" },
        /* Not a terminal: one line of stdin, trimmed. */
        { NULL, NULL, "  qgI= \nnext line\n",
          "{\"key\":\"qgI=\",\"reset\":false,\"migrate\":false}" },
        /* -reset ignores any key. */
        { "-reset", "qgE=", NULL, "{\"reset\":true}" },
    };
    struct fake f;
    struct run r;
    const char *args[5];
    size_t i, n;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
        n = 0;
        args[n++] = "unseal";
        args[n++] = f.addr_flag;
        if (cases[i].flag != NULL)
            args[n++] = cases[i].flag;
        if (cases[i].arg != NULL)
            args[n++] = cases[i].arg;
        args[n] = NULL;
        run_op(&r, cases[i].input, args);
        fake_stop(&f);
        /* Still sealed after one of three keys: exit 0, like Vault. */
        CHECK_EQ_INT(r.rc, 0);
        CHECK_STREQ(r.out, PROGRESS_TABLE);
        CHECK_STREQ(r.err, "");
        CHECK_STREQ(f.line[0], "PUT /v1/sys/unseal");
        CHECK_STREQ(f.body[0], cases[i].body);
        CHECK_STREQ(f.line[1], "GET /v1/sys/leader");
        fake_free(&f);
        run_free(&r);
    }
}

TEST(unseal_json_and_errors)
{
    static const struct answer ok[] = {
        { 200, SEAL_STATUS_PROGRESS },
        { 200, LEADER_NO_HA },
    };
    static const struct answer bad[] = {
        { 400, "{\"errors\":[\"'key' must be a valid hex or base64 "
               "string\"]}" },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "unseal", "-format=json", NULL, "qgE=", NULL };
    char want[512];

    CHECK(fake_start(&f, ok, ARRAY_LEN(ok)) == 0);
    args[2] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(str_has_prefix(r.out, "{\n  \"type\": \"shamir\",\n"));
    CHECK(strstr(r.out, "  \"progress\": 1,\n") != NULL);
    CHECK(strstr(r.out, "  \"ha_enabled\": false,\n") != NULL);
    fake_free(&f);
    run_free(&r);

    CHECK(fake_start(&f, bad, ARRAY_LEN(bad)) == 0);
    args[1] = f.addr_flag;
    args[2] = "!!";
    args[3] = NULL;
    run_op(&r, NULL, args);
    fake_stop(&f);
    snprintf(want, sizeof(want),
             "Error unsealing: Error making API request.\n\n"
             "URL: PUT http://127.0.0.1:%d/v1/sys/unseal\n"
             "Code: 400. Errors:\n\n"
             "* 'key' must be a valid hex or base64 string\n", f.port);
    CHECK_EQ_INT(r.rc, 2);
    CHECK_STREQ(r.err, want);
    CHECK_STREQ(r.out, "");
    fake_free(&f);
    run_free(&r);
}

TEST(seal_end_to_end)
{
    static const struct answer ok[] = { { 204, "" } };
    static const struct answer denied[] = {
        { 403, "{\"errors\":[\"permission denied\"]}" },
    };
    struct fake f;
    struct run r;
    const char *args[] = { "seal", NULL, NULL };
    char want[512];

    CHECK(fake_start(&f, ok, ARRAY_LEN(ok)) == 0);
    args[1] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_STREQ(r.out, "Success! Vault is sealed.\n");
    CHECK_STREQ(r.err, "");
    CHECK_STREQ(f.line[0], "PUT /v1/sys/seal");
    CHECK_STREQ(f.body[0], "");
    fake_free(&f);
    run_free(&r);

    CHECK(fake_start(&f, denied, ARRAY_LEN(denied)) == 0);
    args[1] = f.addr_flag;
    run_op(&r, NULL, args);
    fake_stop(&f);
    snprintf(want, sizeof(want),
             "Error sealing: Error making API request.\n\n"
             "URL: PUT http://127.0.0.1:%d/v1/sys/seal\n"
             "Code: 403. Errors:\n\n"
             "* permission denied\n", f.port);
    CHECK_EQ_INT(r.rc, 2);
    CHECK_STREQ(r.err, want);
    CHECK_STREQ(r.out, "");
    fake_free(&f);
    run_free(&r);
}

/* `status` shares the table with unseal and exits 2 while sealed. */
TEST(status_sealed_exit_code)
{
    static const struct answer script[] = {
        { 200, SEAL_STATUS_PROGRESS },
        { 200, LEADER_NO_HA },
    };
    struct fake f;
    struct run r;
    char *argv[] = { (char *)"coffer", (char *)"status", NULL, NULL };
    FILE *tout = NULL, *terr = NULL;
    int so, se;

    CHECK(fake_start(&f, script, ARRAY_LEN(script)) == 0);
    argv[2] = f.addr_flag;
    fflush(stdout);
    so = redirect(STDOUT_FILENO, &tout);
    se = redirect(STDERR_FILENO, &terr);
    r.rc = cli_main(3, argv);
    fflush(stdout);
    fflush(stderr);
    r.err = restore(STDERR_FILENO, se, terr);
    r.out = restore(STDOUT_FILENO, so, tout);
    fake_stop(&f);
    CHECK_EQ_INT(r.rc, 2);
    CHECK_STREQ(r.out, PROGRESS_TABLE);
    CHECK_STREQ(r.err, "");
    fake_free(&f);
    run_free(&r);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    unsetenv("VAULT_FORMAT");
    unsetenv("COFFER_FORMAT");
    RUN(init_defaults_and_body);
    RUN(unseal_body);
    RUN(init_table_text);
    RUN(init_table_recovery);
    RUN(init_machine_json);
    RUN(read_key_line);
    RUN(usage_errors);
    RUN(help);
    RUN(request_errors);
    RUN(unseal_no_input);
    RUN(init_end_to_end);
    RUN(init_json_end_to_end);
    RUN(init_yaml_end_to_end);
    RUN(init_recovery_end_to_end);
    RUN(init_already_initialized);
    RUN(init_status_end_to_end);
    RUN(unseal_end_to_end);
    RUN(unseal_json_and_errors);
    RUN(seal_end_to_end);
    RUN(status_sealed_exit_code);
    return HARNESS_DONE();
}
