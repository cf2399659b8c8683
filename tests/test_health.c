/* test_health.c — core/health.c: /healthz and /metrics on a real server and
 * store, including a store whose disk stalls (the syncer's test hook). */
#include "health.h"
#include "store_fixture.h"
#include "store_sqlite.h"
#include "testutil.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* ---- a stalled disk ------------------------------------------------------ */

/* Runs on the store's syncer after each fdatasync: holds it (and so every
 * answer of the store) until the test lets go, at most 20 s. */
typedef struct stall {
  atomic_int held;    /* the syncer is in the hook */
  atomic_int release; /* the test lets it go */
} stall;

static void stall_hook(void *arg, int fd) {
  (void)fd;
  stall *s = arg;
  atomic_store(&s->held, 1);
  for (int i = 0; i < 2000 && !atomic_load(&s->release); i++) usleep(10 * 1000);
}

/* ---- the daemon side ------------------------------------------------------ */

typedef struct hfx {
  fx f;
  http_server *srv;
  uint16_t port;
  health_sources src;
  stall stall;
  fx_wait_t write; /* the inbound message the stalled flush holds */
  int http_closed;
  /* the client thread */
  pthread_t client;
  atomic_int client_done;
  long status[2];
  char body[2][8192];
  double seconds[2];
  const char *paths[2];
} hfx;

static sb_channel *const *no_channels(void *ctx, size_t *count) {
  (void)ctx;
  *count = 0;
  return NULL;
}

static int not_stopping(void *ctx) {
  (void)ctx;
  return 0;
}

static void hfx_open(hfx *h, uint64_t shutdown_timeout_ms) {
  memset(h, 0, sizeof(*h));
  fx_open(&h->f);
  fx_channel(&h->f, "{\"name\":\"demo\"}");
  http_options o = {.listen = "127.0.0.1:0", .shutdown_timeout_ms = shutdown_timeout_ms};
  char err[256];
  ck_assert_msg(http_new(&h->f.loop, &o, &h->srv, err, sizeof(err)) == 0, "http_new: %s", err);
  h->port = http_bound_port(h->srv);
  h->src = (health_sources){.loop = &h->f.loop, .st = h->f.st, .http = h->srv, .channels = no_channels,
                            .stopping = not_stopping};
  ck_assert_int_eq(health_register(h->srv, &h->src), 0);
}

/* Makes the disk hang: an inbound message's commit enters the flush hook
 * and stays there, and every store answer after it waits behind it. */
static void hfx_stall(hfx *h) {
  h->f.st->sync_hook_arg = &h->stall;
  h->f.st->sync_hook = stall_hook;
  router_inbound in = {.channel = "demo", .external_id = "stall-1", .text = "held"};
  in.sender.kind = "custom";
  in.sender.id = "kim";
  char err[256];
  ck_assert_int_eq(router_submit_inbound(h->f.st, &in, fx_inbound_cb, &h->write, err, sizeof(err)), 0);
  for (int i = 0; i < 500 && !atomic_load(&h->stall.held); i++) uv_run(&h->f.loop, UV_RUN_NOWAIT), usleep(10 * 1000);
  ck_assert_msg(atomic_load(&h->stall.held), "the flush never reached the hook");
}

static void hfx_set_closed(void *arg) { ((hfx *)arg)->http_closed = 1; }

/* Closes the server, forgets the sources as the daemon does once the server
 * is gone, lets the disk go, and closes the store: late store answers must
 * touch neither the sources nor the responders. */
static void hfx_close(hfx *h) {
  if (h->srv != NULL) http_close(h->srv, hfx_set_closed, h);
  tu_run_until(&h->f.loop, &h->http_closed, 10000);
  ck_assert(h->http_closed);
  memset(&h->src, 0, sizeof(h->src));
  atomic_store(&h->stall.release, 1);
  if (h->write.done == 0 && h->f.st->sync_hook != NULL) tu_run_until(&h->f.loop, &h->write.done, 10000);
  h->f.st->sync_hook = NULL;
  fx_close(&h->f); /* asserts that no handle (a deadline timer) is left */
}

/* ---- the client side ------------------------------------------------------ */

static size_t sink(char *p, size_t sz, size_t n, void *arg) {
  char *body = arg;
  size_t have = strlen(body), add = sz * n;
  if (have + add >= 8192) add = 8191 - have;
  memcpy(body + have, p, add);
  body[have + add] = '\0';
  return sz * n;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GETs each of h->paths in turn (10 s timeout each), then lets the disk go. */
static void *client_main(void *arg) {
  hfx *h = arg;
  for (int i = 0; i < 2 && h->paths[i] != NULL; i++) {
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", h->port, h->paths[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h->body[i]);
    double t0 = now_s();
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status[i]);
    h->seconds[i] = now_s() - t0;
    curl_easy_cleanup(c);
  }
  atomic_store(&h->stall.release, 1);
  atomic_store(&h->client_done, 1);
  return NULL;
}

/* Runs the client on its thread while the loop serves, until it is done. */
static void hfx_get(hfx *h, const char *a, const char *b) {
  h->paths[0] = a;
  h->paths[1] = b;
  ck_assert_int_eq(pthread_create(&h->client, NULL, client_main, h), 0);
  for (int i = 0; i < 3000 && !atomic_load(&h->client_done); i++) {
    uv_run(&h->f.loop, UV_RUN_NOWAIT);
    usleep(5 * 1000);
  }
  pthread_join(h->client, NULL);
}

/* ---- tests ------------------------------------------------------------------- */

START_TEST(healthz_is_ok_and_metrics_up_while_the_store_answers) {
  hfx h;
  hfx_open(&h, 0);
  hfx_get(&h, "/healthz", "/metrics");
  ck_assert_msg(h.status[0] == 200, "healthz %ld %s", h.status[0], h.body[0]);
  ck_assert_msg(strstr(h.body[0], "\"status\":\"ok\"") != NULL, "%s", h.body[0]);
  ck_assert_msg(h.status[1] == 200, "metrics %ld", h.status[1]);
  ck_assert_msg(strstr(h.body[1], "\nswitchboard_up 1\n") != NULL, "%s", h.body[1]);
  ck_assert_msg(strstr(h.body[1], "switchboard_outbox_depth") != NULL, "%s", h.body[1]);
  hfx_close(&h);
}
END_TEST

START_TEST(a_stalled_store_makes_healthz_degraded_and_metrics_down_at_the_deadline) {
  hfx h;
  hfx_open(&h, 0);
  hfx_stall(&h);
  hfx_get(&h, "/healthz", "/metrics");
  double limit = HEALTH_STORE_DEADLINE_MS / 1000.0;
  ck_assert_msg(h.status[0] == 503, "healthz %ld after %.1f s: %s", h.status[0], h.seconds[0], h.body[0]);
  ck_assert_msg(h.seconds[0] >= limit - 0.1 && h.seconds[0] < limit + 3, "healthz took %.2f s", h.seconds[0]);
  ck_assert_msg(strstr(h.body[0], "\"status\":\"degraded\"") != NULL, "%s", h.body[0]);
  const char *why = "\"store\":{\"status\":\"failing\",\"error\":\"the store did not answer within 2 s\"}";
  ck_assert_msg(strstr(h.body[0], why) != NULL, "%s", h.body[0]);
  ck_assert_msg(h.status[1] == 200, "metrics %ld after %.1f s", h.status[1], h.seconds[1]);
  ck_assert_msg(h.seconds[1] < limit + 3, "metrics took %.2f s", h.seconds[1]);
  ck_assert_msg(strstr(h.body[1], "\nswitchboard_up 0\n") != NULL, "%s", h.body[1]);
  ck_assert_msg(strstr(h.body[1], "switchboard_outbox_depth") == NULL, "%s", h.body[1]);
  /* the store answers late: both probes' callbacks come now, after their
   * requests were answered, and must not answer again */
  tu_run_until(&h.f.loop, &h.write.done, 10000);
  ck_assert_int_eq(h.write.status, 0);
  uv_run(&h.f.loop, UV_RUN_NOWAIT);
  hfx_close(&h);
}
END_TEST

/* The server closes before the deadline; the store answers after the server
 * and the sources are gone. */
static void *client_gone_main(void *arg) {
  hfx *h = arg;
  CURL *c = curl_easy_init();
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz", h->port);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, h->body[0]);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status[0]);
  curl_easy_cleanup(c);
  atomic_store(&h->client_done, 1);
  return NULL;
}

START_TEST(a_probe_pending_when_the_server_closes_is_finished_and_its_late_answer_ignored) {
  hfx h;
  hfx_open(&h, 100);
  hfx_stall(&h);
  ck_assert_int_eq(pthread_create(&h.client, NULL, client_gone_main, &h), 0);
  /* let the request reach the handler, well before the deadline */
  for (int i = 0; i < 60; i++) {
    uv_run(&h.f.loop, UV_RUN_NOWAIT);
    usleep(5 * 1000);
  }
  http_close(h.srv, hfx_set_closed, &h);
  h.srv = NULL;
  tu_run_until(&h.f.loop, &h.http_closed, 5000);
  ck_assert(h.http_closed);
  pthread_join(h.client, NULL);
  ck_assert_msg(h.status[0] == 503, "healthz %ld %s", h.status[0], h.body[0]);
  hfx_close(&h);
}
END_TEST

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Suite *s = suite_create("health");
  TCase *tc = tcase_create("health");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, healthz_is_ok_and_metrics_up_while_the_store_answers);
  tcase_add_test(tc, a_stalled_store_makes_healthz_degraded_and_metrics_down_at_the_deadline);
  tcase_add_test(tc, a_probe_pending_when_the_server_closes_is_finished_and_its_late_answer_ignored);
  suite_add_tcase(s, tc);
  int rc = tu_run_suite(s);
  curl_global_cleanup();
  return rc;
}
