/* graph_double_server.c — the Graph API double as a program, for end-to-end tests of the real daemon.
 *
 *   graph_double_server --token T --page ID [--profile PSID:FIRST:LAST]... [--media ID:MIME:BYTES]...
 *                       --port-file FILE [--log FILE]
 *
 * Listens on a free port of 127.0.0.1, writes the port to --port-file once
 * ready, logs every answered request as one JSON line to --log, and runs
 * until SIGTERM or SIGINT. Behaviour and checks are those of graph_double.c. */
#include "graph_double.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_signal_t sig_term, sig_int;

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  (void)s;
  gd_stop();
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
}

/* Splits "a:b:c" into three parts in place; returns 1 when there are three. */
static int split3(char *s, char **a, char **b, char **c) {
  *a = s;
  *b = strchr(s, ':');
  if (*b == NULL) return 0;
  *(*b)++ = '\0';
  *c = strchr(*b, ':');
  if (*c == NULL) return 0;
  *(*c)++ = '\0';
  return 1;
}

int main(int argc, char **argv) {
  const char *token = NULL, *page = NULL, *port_file = NULL, *log_file = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--token") == 0) token = argv[i + 1];
    else if (strcmp(argv[i], "--page") == 0) page = argv[i + 1];
    else if (strcmp(argv[i], "--port-file") == 0) port_file = argv[i + 1];
    else if (strcmp(argv[i], "--log") == 0) log_file = argv[i + 1];
  }
  if (token == NULL || page == NULL || port_file == NULL) {
    fprintf(stderr, "usage: graph_double_server --token T --page ID --port-file FILE [--log FILE] "
                    "[--profile PSID:FIRST:LAST]... [--media ID:MIME:BYTES]...\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  gd_start(loop, token, page);
  for (int i = 1; i + 1 < argc; i += 2) {
    char *a, *b, *c;
    if (strcmp(argv[i], "--profile") == 0 && split3(argv[i + 1], &a, &b, &c)) gd_add_profile(a, b, c, "https://cdn.example/p.jpg");
    if (strcmp(argv[i], "--media") == 0 && split3(argv[i + 1], &a, &b, &c)) gd_add_media(a, b, c);
  }
  FILE *log = log_file != NULL ? fopen(log_file, "a") : NULL;
  gd_set_log(log);
  FILE *pf = fopen(port_file, "w");
  if (pf == NULL) {
    perror(port_file);
    return 1;
  }
  fprintf(pf, "%d\n", gd_port());
  fclose(pf);
  uv_signal_init(loop, &sig_term);
  uv_signal_init(loop, &sig_int);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  if (log != NULL) fclose(log);
  uv_loop_close(loop);
  return 0;
}
