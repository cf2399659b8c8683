/* main.c — the switchboard executable: hands argv to the CLI. */
#include "cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
