/*
 * main.c - the coffer command: "server" runs the server, "version" prints
 * the version, everything else is a client command (cli/cli.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common.h"
#include "server.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return server_main(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "version") == 0 ||
                      strcmp(argv[1], "-version") == 0 ||
                      strcmp(argv[1], "--version") == 0)) {
        printf("Coffer v%s (Vault API %s)\n", COFFER_VERSION,
               COFFER_VAULT_COMPAT_VERSION);
        return 0;
    }
    return cli_main(argc, argv);
}
