/*
 * main.c - the coffer command: "server" runs the server, "plugin test"
 * runs a plugin's tests in-process (plugin_test.c), "version" prints the
 * version, everything else is a client command (cli/cli.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common.h"
#include "plugin_test.h"
#include "server.h"

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0 ||
           strcmp(a, "--help") == 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return server_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "plugin") == 0)
        return plugin_test_main(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "version") == 0 && is_help(argv[2])) {
        printf("Usage: coffer version\n\n"
               "  Prints the version of this binary and the Vault API "
               "version it speaks.\n"
               "  The same as \"coffer -version\". It does not contact "
               "the server\n"
               "  (\"coffer status\" shows the server's version).\n");
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "version") == 0 ||
                      strcmp(argv[1], "-version") == 0 ||
                      strcmp(argv[1], "--version") == 0)) {
        printf("Coffer v%s (Vault API %s)\n", COFFER_VERSION,
               COFFER_VAULT_COMPAT_VERSION);
        return 0;
    }
    return cli_main(argc, argv);
}
