/* cli.c — placeholder until the CLI lands. */
#include "cli.h"

#include <stdio.h>

int cli_main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("switchboard %s\n", SB_VERSION);
  return 0;
}
