/* testutil.h — small helpers shared by the libcheck tests: temporary
 * directories, files, running the real executable. Module-specific helpers
 * live in the module's own test file. */
#ifndef SB_TESTUTIL_H
#define SB_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_tmpdir(void);

/* Removes a directory tree made by tu_tmpdir (rm -rf). */
void tu_rmtree(const char *dir);

/* Writes content to dir/name; returns the malloc'd full path. Aborts on error. */
char *tu_write_file(const char *dir, const char *name, const char *content);

/* Runs a shell command, capturing stdout+stderr into *output (malloc'd, may be
 * NULL if not wanted). Returns the exit status, or -1 if it did not exit. */
int tu_run(const char *cmd, char **output);

#include <stdint.h>
#include <uv.h>

/* Runs loop until *flag is non-zero or ms milliseconds pass (measured from
 * now); returns *flag. Loop thread. */
int tu_run_until(uv_loop_t *loop, const int *flag, uint64_t ms);

/* Runs a libcheck suite in the usual way and returns the process exit code. */
int tu_run_suite(Suite *s);

#endif
