/* conformance.h — `switchboard plugins check PATH.so`: the conformance
 * report. Every check drives the plugin through the stub test host
 * (sdk/testhost) in a child process of its own, so a crash, an abort or a
 * hang becomes one "FAIL name: reason" line instead of a dead checker.
 *
 * conformance.c runs the checks and prints the report; conformance_checks.c
 * holds the checks themselves. */
#ifndef SB_CORE_CONFORMANCE_H
#define SB_CORE_CONFORMANCE_H

#include <stddef.h>

/* Runs `plugins check`: argv[0] is "check", then options and PATH.so.
 * Prints one "PASS|FAIL name: detail" line per check and a summary.
 * Returns the exit status: 0 every check passed, 1 some failed, 2 bad
 * usage or a file the daemon would refuse to load. */
int conformance_main(int argc, char **argv);

/* What one check sees. */
typedef struct conformance_ctx {
  const char *path;             /* the plugin file */
  char *const *sets;            /* --set KEY=VALUE credentials, given first */
  size_t set_count;
  char detail[2048];            /* the check's one-line finding */
} conformance_ctx;

/* Outcomes of a check's run function. */
#define CONFORMANCE_PASS 0
#define CONFORMANCE_FAIL 1

/* One check: a name for the report and a function that runs it (in a
 * child process) and writes its finding into ctx->detail. */
typedef struct conformance_check {
  const char *name;
  int (*run)(conformance_ctx *ctx);
} conformance_check;

/* Every check in report order, ended by {NULL}. The first two, "load" and
 * "descriptor", decide whether the file is a loadable plugin at all. */
extern const conformance_check conformance_checks[];

#endif
