/* graph_double_server.c — the Graph API double as a program, for end-to-end tests of the real daemon.
 *
 *   graph_double_server --token T --page ID [--profile PSID:FIRST:LAST]... [--media ID:MIME:BYTES]...
 *                       --port-file FILE [--log FILE]
 *
 * Listens on a free port of 127.0.0.1, writes the port to --port-file once
 * ready, logs every answered request as one JSON line to --log, and runs
 * until SIGTERM or SIGINT. Behaviour and checks are those of graph_double.c.
 *
 *   graph_double_server --send URL --app-secret S --file BODY.json
 *
 * Sends one webhook as Meta does: the JSON rewritten in Meta's form
 * (compact, \uXXXX for non-ASCII, \/ for slashes), signed with
 * X-Hub-Signature-256 under the app secret, POSTed to URL. Prints the HTTP
 * status and the answer's body; exits 0 when an answer arrived. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "graph_double.h"
#include "httpc.h"

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

typedef struct send_result {
  int done;
  long code;
} send_result;

static void sent(void *arg, const httpc_response *res) {
  send_result *r = arg;
  r->done = 1;
  r->code = res->status == 0 ? res->code : 0;
  if (res->status == 0)
    printf("%ld %.*s\n", res->code, (int)res->body_len, res->body);
  else
    fprintf(stderr, "graph_double_server: %s\n", res->error);
}

static void closed(void *arg) { *(int *)arg = 1; }

/* --send: one signed webhook to url. Returns the exit status. */
static int send_webhook(const char *url, const char *secret, const char *file) {
  FILE *f = fopen(file, "rb");
  if (f == NULL) {
    perror(file);
    return 2;
  }
  char *text = malloc(1 << 20);
  size_t n = fread(text, 1, (1 << 20) - 1, f);
  fclose(f);
  text[n] = '\0';
  char *body = gd_webhook_body(text);
  free(text);
  if (body == NULL) {
    fprintf(stderr, "graph_double_server: %s is not JSON\n", file);
    return 2;
  }
  char sig[72];
  gd_sign(secret, body, strlen(body), sig);
  uv_loop_t *loop = uv_default_loop();
  httpc *client = NULL;
  if (httpc_new(loop, &client) != 0) return 1;
  const httpc_header h[] = {
      {"Content-Type", "application/json"}, {"X-Hub-Signature-256", sig}, {"User-Agent", "facebookexternalua"}};
  httpc_req rq = {.method = "POST",
                  .url = url,
                  .headers = h,
                  .n_headers = 3,
                  .body = body,
                  .body_len = strlen(body),
                  .timeout_ms = 10000};
  send_result r = {0};
  int rc = httpc_request(client, &rq, sent, &r, NULL);
  free(body);
  while (rc == 0 && !r.done) uv_run(loop, UV_RUN_ONCE);
  int c = 0;
  httpc_close(client, closed, &c);
  while (!c) uv_run(loop, UV_RUN_ONCE);
  uv_loop_close(loop);
  return rc == 0 && r.code != 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  const char *send_url = NULL, *send_secret = NULL, *send_file = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--send") == 0)
      send_url = argv[i + 1];
    else if (strcmp(argv[i], "--app-secret") == 0)
      send_secret = argv[i + 1];
    else if (strcmp(argv[i], "--file") == 0)
      send_file = argv[i + 1];
  }
  if (send_url != NULL) {
    if (send_secret == NULL || send_file == NULL) {
      fprintf(stderr, "usage: graph_double_server --send URL --app-secret S --file BODY.json\n");
      return 2;
    }
    return send_webhook(send_url, send_secret, send_file);
  }
  const char *token = NULL, *page = NULL, *port_file = NULL, *log_file = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--token") == 0)
      token = argv[i + 1];
    else if (strcmp(argv[i], "--page") == 0)
      page = argv[i + 1];
    else if (strcmp(argv[i], "--port-file") == 0)
      port_file = argv[i + 1];
    else if (strcmp(argv[i], "--log") == 0)
      log_file = argv[i + 1];
  }
  if (token == NULL || page == NULL || port_file == NULL) {
    fprintf(stderr,
            "usage: graph_double_server --token T --page ID --port-file FILE [--log FILE] "
            "[--profile PSID:FIRST:LAST]... [--media ID:MIME:BYTES]...\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  gd_start(loop, token, page);
  for (int i = 1; i + 1 < argc; i += 2) {
    char *a, *b, *c;
    if (strcmp(argv[i], "--profile") == 0 && split3(argv[i + 1], &a, &b, &c))
      gd_add_profile(a, b, c, "https://cdn.example/p.jpg");
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
