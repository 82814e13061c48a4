/*
 * server.h - "coffer server": flags, start-up, signals, shutdown.
 */
#ifndef COFFER_SERVER_H
#define COFFER_SERVER_H

/* Runs the server until SIGINT/SIGTERM. Returns the process exit code. */
int server_main(int argc, char **argv);

#endif
