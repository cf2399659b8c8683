/* cli.h — the command line (API.md "Command line"). */
#ifndef SB_CORE_CLI_H
#define SB_CORE_CLI_H

/* Runs the command named by argv; returns the process exit status:
 * 0 success, 1 runtime failure, 2 bad usage or invalid config. */
int cli_main(int argc, char **argv);

#endif
