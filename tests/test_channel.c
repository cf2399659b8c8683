/* test_channel.c — core/channel.c and core/hostapi.c: the test plugin
 * (tests/plugins/testplugin.c) driven through every hook and every host API
 * function, with a fake environment standing in for the router and store. */
#include "channel.h"
#include "httpc.h"
#include "loader.h"
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* --- the fake environment ------------------------------------------------ */

typedef struct fake_env {
  channel_env env;
  int inbound_count;
  char last_external_id[64], last_sender[64], last_text[256];
  sb_inbound_done_fn pending_done;
  void *pending_arg;
  uv_timer_t commit_timer;
  int status_count;
  char last_status_id[64];
  uint32_t states[16];
  int state_count;
  int kv_persists;
  char last_kv_key[64];
  int kv_defer;           /* keep the next change's done for the test to call */
  sb_kv_done_fn kv_done;
  void *kv_arg;
  channel_json_fn read_done; /* a history/availability read the test answers */
  void *read_arg;
  char read_args[256];
} fake_env;

static uv_loop_t loop;
static fake_env fe;
static loader plugins;
static sb_channel *ch;
static httpc *client;

static void fake_commit(uv_timer_t *t) {
  (void)t;
  fe.pending_done(fe.pending_arg, SB_OK, "m-42", fe.inbound_count > 1);
}

static int fake_inbound(void *ctx, sb_channel *c, const sb_inbound_message *m, sb_inbound_done_fn done, void *arg) {
  fe.inbound_count++;
  snprintf(fe.last_external_id, sizeof(fe.last_external_id), "%s", m->external_id);
  snprintf(fe.last_sender, sizeof(fe.last_sender), "%s", m->sender.id);
  snprintf(fe.last_text, sizeof(fe.last_text), "%s", m->text != NULL ? m->text : "");
  fe.pending_done = done;
  fe.pending_arg = arg;
  uv_timer_start(&fe.commit_timer, fake_commit, 2, 0); /* "committed" a moment later */
  return SB_OK;
}

static int fake_status(void *ctx, sb_channel *c, const sb_status_update *u) {
  fe.status_count++;
  snprintf(fe.last_status_id, sizeof(fe.last_status_id), "%s", u->external_id);
  return SB_OK;
}

static void fake_state(void *ctx, sb_channel *c, uint32_t state, const char *reason) {
  if (fe.state_count < 16) fe.states[fe.state_count++] = state;
}

static int fake_kv(void *ctx, sb_channel *c, const char *key, const char *value, size_t len, sb_kv_done_fn done,
                   void *arg) {
  fe.kv_persists++;
  snprintf(fe.last_kv_key, sizeof(fe.last_kv_key), "%s", key);
  if (fe.kv_defer) {
    fe.kv_done = done;
    fe.kv_arg = arg;
  } else if (done != NULL) {
    done(arg, SB_OK);
  }
  return SB_OK;
}

static int fake_history(void *ctx, sb_channel *c, uint32_t kind, const char *id, int64_t after, int limit,
                        channel_json_fn done, void *arg) {
  snprintf(fe.read_args, sizeof(fe.read_args), "kind=%u id=%s after=%lld limit=%d", (unsigned)kind, id,
           (long long)after, limit);
  fe.read_done = done;
  fe.read_arg = arg;
  return SB_OK;
}

static int fake_availability(void *ctx, sb_channel *c, channel_json_fn done, void *arg) {
  fe.read_done = done;
  fe.read_arg = arg;
  return SB_OK;
}

/* Answers the pending read with JSON text (NULL: a store failure). */
static void fake_read_answer(const char *json) {
  ck_assert_ptr_nonnull(fe.read_done);
  json_t *r = json != NULL ? json_loads(json, 0, NULL) : NULL;
  channel_json_fn done = fe.read_done;
  fe.read_done = NULL;
  done(fe.read_arg, r != NULL ? 0 : -EIO, r, r != NULL ? NULL : "disk on fire");
  json_decref(r);
}

/* --- a responder that records the answer --------------------------------- */

typedef struct answer {
  sb_responder base;
  int status;
  char body[1024];
  int done;
} answer;

static int record_answer(sb_responder *self, int status, const sb_http_header *h, size_t n, const char *body,
                         size_t len) {
  answer *a = (answer *)self;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body != NULL ? body : "");
  a->done = 1;
  return 0;
}

/* Runs the loop until *flag or ms pass; returns *flag. */
static int run_until(const int *flag, uint64_t ms) { return tu_run_until(&loop, flag, ms); }

/* Sends one request to the channel and waits for its answer. */
static answer *request(const char *method, const char *subpath, const char *query, const char *id, const char *body) {
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  sb_http_header headers[2] = {{"x-id", id}, {"Content-Type", "text/plain"}};
  char path[256];
  snprintf(path, sizeof(path), "/hooks/demo%s", subpath);
  sb_http_request req = {
      .method = method, .path = path, .subpath = subpath, .query = query != NULL ? query : "",
      .headers = headers, .header_count = id != NULL ? 2 : 0, .body = body, .body_len = body ? strlen(body) : 0,
      .remote_addr = "127.0.0.1",
  };
  channel_receive(ch, &req, &a.base);
  ck_assert_msg(run_until(&a.done, 3000), "no answer to %s %s", method, subpath);
  return &a;
}

static config_channel spec_from(const char *json, json_t **holder) {
  json_error_t jerr;
  *holder = json_loads(json, 0, &jerr);
  ck_assert_ptr_nonnull(*holder);
  config_channel c = {0};
  c.name = json_string_value(json_object_get(*holder, "name"));
  c.plugin = "testplugin";
  c.inbox = "Support";
  c.enabled = 1;
  c.credentials = json_object_get(*holder, "credentials");
  c.spec = *holder;
  return c;
}

static void closed_cb(void *arg) { *(int *)arg = 1; }

static void open_channel(const char *credentials_json) {
  char json[1024];
  snprintf(json, sizeof(json), "{\"name\":\"demo\",\"plugin\":\"testplugin\",\"credentials\":%s}", credentials_json);
  json_t *holder;
  config_channel c = spec_from(json, &holder);
  char err[512];
  int rc = channel_create(&fe.env, loader_find(&plugins, "testplugin"), &c, "/tmp", NULL, &ch, err, sizeof(err));
  json_decref(holder);
  ck_assert_msg(rc == 0, "create failed: %s", err);
  channel_start(ch);
}

static void setup(void) {
  uv_loop_init(&loop);
  memset(&fe, 0, sizeof(fe));
  fe.env.loop = &loop;
  fe.env.inbound = fake_inbound;
  fe.env.status = fake_status;
  fe.env.state_changed = fake_state;
  fe.env.kv_persist = fake_kv;
  fe.env.history = fake_history;
  fe.env.availability = fake_availability;
  ck_assert_int_eq(httpc_new(&loop, &client), 0);
  fe.env.httpc = client;
  uv_timer_init(&loop, &fe.commit_timer);
  memset(&plugins, 0, sizeof(plugins));
  const char *dirs[] = {SB_TEST_PLUGIN_DIR};
  ck_assert_int_eq(loader_load(&plugins, hostapi_table(), dirs, 1, NULL, NULL, NULL), 0);
  ch = NULL;
}

static void httpc_closed(void *arg) { *(int *)arg = 1; }

static void teardown(void) {
  if (ch != NULL) {
    int closed = 0;
    channel_close(ch, closed_cb, &closed);
    ck_assert(run_until(&closed, 3000));
  }
  int hc = 0;
  httpc_close(client, httpc_closed, &hc);
  run_until(&hc, 3000);
  uv_close((uv_handle_t *)&fe.commit_timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  loader_unload(&plugins);
}

/* --- tests ---------------------------------------------------------------- */

START_TEST(create_refuses_invalid_credentials) {
  json_t *holder;
  config_channel c = spec_from("{\"name\":\"demo\",\"credentials\":{\"retries\":2}}", &holder);
  char err[512];
  ck_assert_int_lt(channel_create(&fe.env, loader_find(&plugins, "testplugin"), &c, "/tmp", NULL, &ch, err, sizeof(err)), 0);
  ck_assert_str_eq(err, "channel \"demo\": required credential \"token\" is missing");
  json_decref(holder);
  ch = NULL;
}
END_TEST

START_TEST(plugin_validate_hook_can_refuse) {
  json_t *holder;
  config_channel c =
      spec_from("{\"name\":\"demo\",\"credentials\":{\"token\":\"abcd\",\"mode\":\"slow\",\"retries\":20}}", &holder);
  char err[512];
  ck_assert_int_lt(channel_validate(loader_find(&plugins, "testplugin"), &c, "/tmp", NULL, err, sizeof(err)), 0);
  ck_assert_str_eq(err, "channel \"demo\": setting \"retries\" must be at most 10 in slow mode");
  json_decref(holder);
}
END_TEST

START_TEST(connect_reports_connected) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_uint_eq(channel_state(ch), SB_STATE_CONNECTED);
  ck_assert_int_eq(fe.state_count, 1);
  ck_assert_uint_eq(fe.states[0], SB_STATE_CONNECTED);
}
END_TEST

START_TEST(fatal_state_stops_the_channel_without_retrying) {
  open_channel("{\"token\":\"abcd1234\",\"fail_connect\":true}");
  ck_assert_uint_eq(channel_state(ch), SB_STATE_AUTH_FAILED);
  ck_assert_str_eq(channel_state_reason(ch), "the service refused the token");
  int never = 0;
  run_until(&never, 1300);
  ck_assert_int_eq(fe.state_count, 1);
}
END_TEST

START_TEST(transient_state_reconnects_with_backoff) {
  open_channel("{\"token\":\"abcd1234\"}");
  answer *a = request("GET", "/state", "s=3", NULL, NULL);
  ck_assert_int_eq(a->status, 200);
  ck_assert_uint_eq(channel_state(ch), SB_STATE_DISCONNECTED);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int reconnected = 0;
  while (!reconnected && fe.state_count < 16) {
    int never = 0;
    run_until(&never, 50);
    reconnected = channel_state(ch) == SB_STATE_CONNECTED;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (t1.tv_sec - t0.tv_sec > 5) break;
  }
  ck_assert(reconnected);
  double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  ck_assert_msg(waited >= 0.9, "reconnected after %.2fs, before the 1 s backoff", waited);
}
END_TEST

START_TEST(inbound_message_is_answered_only_after_commit) {
  open_channel("{\"token\":\"abcd1234\"}");
  answer *a = request("POST", "/messages", NULL, "ext-1", "Hello there");
  ck_assert_int_eq(a->status, 200);
  ck_assert_str_eq(a->body, "{\"message_id\":\"m-42\",\"duplicate\":false}");
  ck_assert_int_eq(fe.inbound_count, 1);
  ck_assert_str_eq(fe.last_external_id, "ext-1");
  ck_assert_str_eq(fe.last_sender, "user-1");
  ck_assert_str_eq(fe.last_text, "Hello there");
}
END_TEST

START_TEST(inbound_without_external_id_is_refused) {
  open_channel("{\"token\":\"abcd1234\"}");
  answer *a = request("POST", "/messages", NULL, NULL, "no id");
  ck_assert_int_eq(a->status, 400);
  ck_assert_str_eq(a->body, "refused: -22");
  ck_assert_int_eq(fe.inbound_count, 0);
}
END_TEST

START_TEST(status_update_reaches_the_host) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_int_eq(request("POST", "/status", NULL, "out-7", NULL)->status, 200);
  ck_assert_int_eq(fe.status_count, 1);
  ck_assert_str_eq(fe.last_status_id, "out-7");
  ck_assert_int_eq(request("POST", "/status", NULL, NULL, NULL)->status, 400);
}
END_TEST

START_TEST(config_values_read_back_through_the_host) {
  open_channel("{\"token\":\"abcd1234\",\"tags\":[\"a\",\"b\"],\"poll_interval\":\"2m\"}");
  ck_assert_str_eq(request("GET", "/config", "key=tags", NULL, NULL)->body, "value=a count=2 last=b int=-1");
  ck_assert_str_eq(request("GET", "/config", "key=poll_interval", NULL, NULL)->body,
                   "value=2m count=1 last=2m int=120000");
  ck_assert_str_eq(request("GET", "/config", "key=retries", NULL, NULL)->body, "value=3 count=1 last=3 int=3");
  ck_assert_str_eq(request("GET", "/config", "key=nothing", NULL, NULL)->body,
                   "value=(null) count=0 last=(null) int=-1");
}
END_TEST

START_TEST(kv_state_is_set_read_persisted_and_deleted) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_int_eq(request("GET", "/kv", "key=cursor", NULL, NULL)->status, 404);
  answer *a = request("POST", "/kv", "key=cursor", NULL, "uid:42");
  ck_assert_int_eq(a->status, 200);
  ck_assert_str_eq(a->body, "stored");
  ck_assert_int_eq(fe.kv_persists, 1);
  ck_assert_str_eq(fe.last_kv_key, "cursor");
  ck_assert_str_eq(request("GET", "/kv", "key=cursor", NULL, NULL)->body, "uid:42");
  ck_assert_int_eq(request("POST", "/kv", "key=cursor", NULL, "uid:43")->status, 200);
  ck_assert_str_eq(request("GET", "/kv", "key=cursor", NULL, NULL)->body, "uid:43");
  ck_assert_int_eq(request("DELETE", "/kv", "key=cursor", NULL, NULL)->status, 200);
  ck_assert_int_eq(request("GET", "/kv", "key=cursor", NULL, NULL)->status, 404);
  ck_assert_int_eq(fe.kv_persists, 3);
}
END_TEST

/* A change still on its way to the store when the channel closes: its done
 * runs before destroy (the test plugin answers the request from it, with
 * its instance), and the channel is freed only after. */
START_TEST(kv_change_in_flight_completes_before_destroy) {
  open_channel("{\"token\":\"abcd1234\"}");
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  sb_http_request req = {.method = "POST", .path = "/hooks/demo/kv", .subpath = "/kv", .query = "key=cursor",
                         .body = "uid:7", .body_len = 5};
  fe.kv_defer = 1;
  channel_receive(ch, &req, &a.base);
  ck_assert_ptr_nonnull(fe.kv_done);
  int closed = 0;
  channel_close(ch, closed_cb, &closed);
  ch = NULL;
  ck_assert(!run_until(&closed, 100)); /* destroy waits for the store */
  ck_assert(!a.done);
  fe.kv_done(fe.kv_arg, SB_OK);
  ck_assert(a.done);
  ck_assert_int_eq(a.status, 200);
  ck_assert_str_eq(a.body, "stored");
  ck_assert(run_until(&closed, 3000));
}
END_TEST

START_TEST(kv_seeded_values_are_visible) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_int_eq(channel_kv_seed(ch, "token", "seeded", 6), 0);
  ck_assert_str_eq(request("GET", "/kv", "key=token", NULL, NULL)->body, "seeded");
}
END_TEST

START_TEST(timer_fires) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_str_eq(request("GET", "/timer", "ms=20", NULL, NULL)->body, "fired");
}
END_TEST

START_TEST(work_runs_on_the_pool_and_completes_on_the_loop) {
  open_channel("{\"token\":\"abcd1234\"}");
  answer *a = request("GET", "/work", NULL, NULL, NULL);
  ck_assert_int_eq(a->status, 200);
  ck_assert_str_eq(a->body, "work done");
}
END_TEST

START_TEST(fd_watch_reports_readable) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_str_eq(request("GET", "/watch", NULL, NULL, NULL)->body, "readable");
}
END_TEST

START_TEST(http_request_reports_connection_failure) {
  open_channel("{\"token\":\"abcd1234\"}");
  answer *a = request("GET", "/http", "url=http%3A%2F%2F127.0.0.1%3A1%2F", NULL, NULL);
  ck_assert_int_eq(a->status, 200);
  ck_assert_msg(strncmp(a->body, "status=-", 8) == 0, "got %s", a->body);
  ck_assert_ptr_nonnull(strstr(a->body, "http=0"));
}
END_TEST

START_TEST(hmac_and_constant_time_compare) {
  open_channel("{\"token\":\"abcd1234\"}");
  /* RFC-style check value: HMAC-SHA256(key="key", "data"). */
  ck_assert_str_eq(request("GET", "/hmac", NULL, NULL, NULL)->body,
                   "5031fe3d989c6d1537a013fa6e739da23463fdaec3b70137d828e36ace221bd0 same=1 differs=1");
}
END_TEST

START_TEST(now_is_wall_clock_milliseconds) {
  open_channel("{\"token\":\"abcd1234\"}");
  long long now = atoll(request("GET", "/now", NULL, NULL, NULL)->body);
  long long expect = (long long)time(NULL) * 1000;
  ck_assert(now > expect - 5000 && now < expect + 5000);
}
END_TEST

START_TEST(refused_request_gets_500_and_unknown_gets_plugin_404) {
  open_channel("{\"token\":\"abcd1234\"}");
  ck_assert_int_eq(request("GET", "/refuse", NULL, NULL, NULL)->status, 500);
  ck_assert_int_eq(request("GET", "/nothing", NULL, NULL, NULL)->status, 404);
}
END_TEST

typedef struct sent {
  sb_send_op base;
  int outcome;
  char text[128];
  uint32_t retry_after;
  int done;
} sent;

static void record_send(sb_send_op *self, int outcome, const char *text, uint32_t retry_after_ms) {
  sent *s = (sent *)self;
  s->outcome = outcome;
  snprintf(s->text, sizeof(s->text), "%s", text != NULL ? text : "");
  s->retry_after = retry_after_ms;
  s->done = 1;
}

static sent *send_text(const char *text) {
  static sent s;
  memset(&s, 0, sizeof(s));
  s.base.complete = record_send;
  sb_outbound_message m = {.message_id = "77", .idempotency_key = "77", .attempt = 1, .recipient_id = "user-1",
                           .text = text};
  ck_assert_int_eq(channel_send(ch, &m, &s.base), 0);
  ck_assert(run_until(&s.done, 2000));
  return &s;
}

START_TEST(send_completions_carry_outcome_and_text) {
  open_channel("{\"token\":\"abcd1234\"}");
  sent *s = send_text("hello");
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_OK);
  ck_assert_str_eq(s->text, "ext-77");
  s = send_text("retry");
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_uint_eq(s->retry_after, 1500);
  ck_assert_str_eq(s->text, "the service is busy");
  s = send_text("fail");
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_str_eq(s->text, "the recipient blocked the page");
  s = send_text("defer");
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_DEFER);
  ck_assert_uint_eq(s->retry_after, 2500);
  ck_assert_str_eq(s->text, "waiting for the customer's consent");
  s = send_text("later");
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_OK);
  ck_assert_str_eq(s->text, "ext-77");
}
END_TEST

/* A loopback port that accepts connections (the kernel's backlog) but never
 * answers, so an HTTP call to it stays pending. */
static int silent_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(listen(fd, 8), 0);
  socklen_t len = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

START_TEST(close_cancels_pending_http_and_waits_for_work) {
  open_channel("{\"token\":\"abcd1234\"}");
  int port;
  int lfd = silent_listener(&port);
  static answer h, w;
  memset(&h, 0, sizeof(h));
  memset(&w, 0, sizeof(w));
  h.base.respond = record_answer;
  w.base.respond = record_answer;
  char query[128];
  snprintf(query, sizeof(query), "url=http%%3A%%2F%%2F127.0.0.1%%3A%d%%2F", port);
  sb_http_request http = {.method = "GET", .path = "/hooks/demo/http", .subpath = "/http", .query = query};
  sb_http_request work = {.method = "GET", .path = "/hooks/demo/work", .subpath = "/work", .query = ""};
  channel_receive(ch, &http, &h.base);
  int never = 0;
  run_until(&never, 100); /* the HTTP call is connected and waiting */
  ck_assert(!h.done);
  channel_receive(ch, &work, &w.base); /* on the pool while the channel closes */
  int closed = 0;
  channel_close(ch, closed_cb, &closed);
  ch = NULL;
  ck_assert(run_until(&closed, 3000));
  ck_assert(h.done);
  ck_assert_msg(strncmp(h.body, "status=-125", 11) == 0, "got %s", h.body); /* SB_ECANCELED */
  ck_assert(w.done);
  ck_assert_int_eq(w.status, 500); /* done ran with SB_ECANCELED, before destroy */
  close(lfd);
}
END_TEST

START_TEST(closing_channel_answers_404) {
  open_channel("{\"token\":\"abcd1234\"}");
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  sb_http_request work = {.method = "GET", .path = "/hooks/demo/work", .subpath = "/work", .query = ""};
  channel_receive(ch, &work, &a.base); /* keeps the channel from being freed at once */
  int closed = 0;
  channel_close(ch, closed_cb, &closed);
  static answer b;
  memset(&b, 0, sizeof(b));
  b.base.respond = record_answer;
  sb_http_request req = {.method = "GET", .path = "/hooks/demo/now", .subpath = "/now", .query = ""};
  channel_receive(ch, &req, &b.base);
  ck_assert_int_eq(b.status, 404);
  ch = NULL;
  ck_assert(run_until(&closed, 3000));
}
END_TEST

/* What a plugin's history / availability callback saw. */
typedef struct read_seen {
  int calls;
  int32_t status;
  size_t count;
  uint32_t more;
  char summary[512];
  sb_availability avail;
} read_seen;

static void seen_history(void *arg, const sb_history *h) {
  read_seen *r = arg;
  r->calls++;
  r->status = h->status;
  r->count = h->count;
  r->more = h->more;
  int n = snprintf(r->summary, sizeof(r->summary), "contact=%s owner=%s/%s", h->contact_name ? h->contact_name : "-",
                   h->owner_name ? h->owner_name : "-", h->owner_avatar_url ? h->owner_avatar_url : "-");
  for (size_t i = 0; i < h->count && n > 0 && (size_t)n < sizeof(r->summary); i++) {
    const sb_history_message *m = &h->messages[i];
    n += snprintf(r->summary + n, sizeof(r->summary) - n, " [%s %s %u %s %s %u %s %lld]", m->message_id,
                  m->direction == SB_DIRECTION_OUT ? "out" : "in", (unsigned)m->status, m->text ? m->text : "-",
                  m->author_name ? m->author_name : "-", (unsigned)m->flags,
                  m->attachments_json ? m->attachments_json : "-", (long long)m->timestamp_ms);
  }
}

static void seen_availability(void *arg, const sb_availability *a) {
  read_seen *r = arg;
  r->calls++;
  r->status = a->status;
  r->avail = *a;
}

START_TEST(history_reads_come_back_as_abi_structs) {
  open_channel("{\"token\":\"abcd1234\"}");
  const sb_host *host = hostapi_table();
  read_seen seen = {0};
  sb_history_request q = {.struct_size = sizeof(q), .kind = SB_IDENTITY_VISITOR, .id = "v-1", .after_message_id = "7"};
  ck_assert_int_eq(host->history(ch, &q, seen_history, &seen), SB_OK);
  ck_assert_str_eq(fe.read_args, "kind=4 id=v-1 after=7 limit=50");
  fake_read_answer("{\"contact\":{\"id\":3,\"name\":\"Kim\"},\"owner\":{\"name\":\"ana\",\"avatar_url\":\"https://a/x.png\"},"
                   "\"more\":true,\"messages\":["
                   "{\"id\":8,\"direction\":\"in\",\"status\":\"received\",\"text\":\"hi\",\"attachments\":null,"
                   "\"automatic\":false,\"created_at\":1000},"
                   "{\"id\":9,\"direction\":\"out\",\"status\":\"delivered\",\"text\":\"hello\",\"author\":\"ana\","
                   "\"attachments\":[{\"url\":\"https://f/1\"}],\"automatic\":true,\"created_at\":2000}]}");
  ck_assert_int_eq(seen.calls, 1);
  ck_assert_int_eq(seen.status, SB_OK);
  ck_assert_uint_eq(seen.count, 2);
  ck_assert_uint_eq(seen.more, 1);
  ck_assert_str_eq(seen.summary, "contact=Kim owner=ana/https://a/x.png [8 in 0 hi - 0 - 1000]"
                                 " [9 out 2 hello ana 1 [{\"url\":\"https://f/1\"}] 2000]");

  /* A store failure is a status, not a crash; bad requests are refused at once. */
  ck_assert_int_eq(host->history(ch, &q, seen_history, &seen), SB_OK);
  fake_read_answer(NULL);
  ck_assert_int_eq(seen.calls, 2);
  ck_assert_int_eq(seen.status, SB_EIO);
  ck_assert_uint_eq(seen.count, 0);
  sb_history_request bad = q;
  bad.id = "";
  ck_assert_int_eq(host->history(ch, &bad, seen_history, &seen), SB_EINVAL);
  bad = q;
  bad.limit = 201;
  ck_assert_int_eq(host->history(ch, &bad, seen_history, &seen), SB_EINVAL);
  bad = q;
  bad.after_message_id = "7x";
  ck_assert_int_eq(host->history(ch, &bad, seen_history, &seen), SB_EINVAL);
  ck_assert_int_eq(seen.calls, 2);
}
END_TEST

START_TEST(availability_reads_and_closing_cancels_pending_reads) {
  open_channel("{\"token\":\"abcd1234\"}");
  const sb_host *host = hostapi_table();
  read_seen seen = {0};
  ck_assert_int_eq(host->availability(ch, seen_availability, &seen), SB_OK);
  fake_read_answer("{\"eligible\":3,\"available\":2,\"with_capacity\":1,\"typical_reply_seconds\":95}");
  ck_assert_int_eq(seen.calls, 1);
  ck_assert_int_eq(seen.status, SB_OK);
  ck_assert_uint_eq(seen.avail.eligible, 3);
  ck_assert_uint_eq(seen.avail.available, 2);
  ck_assert_uint_eq(seen.avail.with_capacity, 1);
  ck_assert_int_eq(seen.avail.typical_reply_seconds, 95);

  /* A read still out when the channel closes: the close waits for it, and
   * the plugin hears SB_ECANCELED. */
  ck_assert_int_eq(host->availability(ch, seen_availability, &seen), SB_OK);
  int closed = 0;
  channel_close(ch, closed_cb, &closed);
  int never = 0;
  run_until(&never, 50);
  ck_assert(!closed);
  ck_assert_int_eq(host->availability(ch, seen_availability, &seen), SB_ECANCELED);
  fake_read_answer("{\"eligible\":1,\"available\":1,\"with_capacity\":1,\"typical_reply_seconds\":-1}");
  ch = NULL;
  ck_assert(run_until(&closed, 3000));
  ck_assert_int_eq(seen.calls, 2);
  ck_assert_int_eq(seen.status, SB_ECANCELED);
}
END_TEST

int main(void) {
  Suite *s = suite_create("channel");
  TCase *tc = tcase_create("channel");
  tcase_set_timeout(tc, 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, create_refuses_invalid_credentials);
  tcase_add_test(tc, plugin_validate_hook_can_refuse);
  tcase_add_test(tc, connect_reports_connected);
  tcase_add_test(tc, fatal_state_stops_the_channel_without_retrying);
  tcase_add_test(tc, transient_state_reconnects_with_backoff);
  tcase_add_test(tc, inbound_message_is_answered_only_after_commit);
  tcase_add_test(tc, inbound_without_external_id_is_refused);
  tcase_add_test(tc, status_update_reaches_the_host);
  tcase_add_test(tc, config_values_read_back_through_the_host);
  tcase_add_test(tc, kv_state_is_set_read_persisted_and_deleted);
  tcase_add_test(tc, kv_seeded_values_are_visible);
  tcase_add_test(tc, kv_change_in_flight_completes_before_destroy);
  tcase_add_test(tc, timer_fires);
  tcase_add_test(tc, work_runs_on_the_pool_and_completes_on_the_loop);
  tcase_add_test(tc, fd_watch_reports_readable);
  tcase_add_test(tc, http_request_reports_connection_failure);
  tcase_add_test(tc, hmac_and_constant_time_compare);
  tcase_add_test(tc, now_is_wall_clock_milliseconds);
  tcase_add_test(tc, refused_request_gets_500_and_unknown_gets_plugin_404);
  tcase_add_test(tc, send_completions_carry_outcome_and_text);
  tcase_add_test(tc, close_cancels_pending_http_and_waits_for_work);
  tcase_add_test(tc, closing_channel_answers_404);
  tcase_add_test(tc, history_reads_come_back_as_abi_structs);
  tcase_add_test(tc, availability_reads_and_closing_cancels_pending_reads);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
