/* testutil.c — helpers shared by the libcheck tests. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char *tu_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[4096];
  snprintf(tmpl, sizeof(tmpl), "%s/sbtest.XXXXXX", base != NULL ? base : "/tmp");
  char *dir = mkdtemp(tmpl);
  if (dir == NULL) abort();
  return strdup(dir);
}

void tu_rmtree(const char *dir) {
  if (dir == NULL || strlen(dir) < 8) return;
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "tu_rmtree: could not remove %s\n", dir);
}

char *tu_write_file(const char *dir, const char *name, const char *content) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *path = malloc(n);
  if (path == NULL) abort();
  snprintf(path, n, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL) abort();
  fputs(content, f);
  fclose(f);
  return path;
}

int tu_run(const char *cmd, char **output) {
  char *full = NULL;
  if (asprintf(&full, "%s 2>&1", cmd) < 0) abort();
  FILE *p = popen(full, "r");
  free(full);
  if (p == NULL) return -1;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) abort();
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += n;
    if (cap - len < 1024) {
      cap *= 2;
      buf = realloc(buf, cap);
      if (buf == NULL) abort();
    }
  }
  buf[len] = '\0';
  int st = pclose(p);
  if (output != NULL) {
    *output = buf;
  } else {
    free(buf);
  }
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

int tu_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

static void tu__guard_cb(uv_timer_t *t) { *(int *)t->data = 1; }

int tu_run_until(uv_loop_t *loop, const int *flag, uint64_t ms) {
  uv_timer_t guard;
  int expired = 0;
  uv_timer_init(loop, &guard);
  uv_update_time(loop);
  guard.data = &expired;
  uv_timer_start(&guard, tu__guard_cb, ms, 0);
  while (!*flag && !expired) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return *flag;
}
