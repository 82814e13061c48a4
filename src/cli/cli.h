/*
 * cli.h - the client side of the coffer command (libcurl).
 *
 * Every subcommand except "server" is a client of a running Coffer (or
 * Vault) server, found through VAULT_ADDR/COFFER_ADDR and authenticated by
 * VAULT_TOKEN/COFFER_TOKEN. Output and exit codes follow the Vault CLI:
 * 0 success, 1 usage error, 2 error from the server or the network.
 */
#ifndef COFFER_CLI_H
#define COFFER_CLI_H

/* Runs "coffer <argv[1]> ..." and returns the process exit code. */
int cli_main(int argc, char **argv);

#endif
