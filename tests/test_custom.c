/* test_custom.c — plugins/custom (the generic bridge) driven in-process: the
 * real custom.so through channel_create with a fake environment standing in
 * for the router and store, and a local HTTP double standing in for the
 * integration's webhook_url (libuv TCP on the test's loop) that records each
 * request and checks its signature. */
#include "channel.h"
#include "httpc.h"
#include "loader.h"
#include "log.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SECRET "test-secret-0123456789abcdef"

static uv_loop_t loop;
static loader_plugin plug;
static sb_channel *ch;
static httpc *client;

/* --- the fake environment: the router and store ------------------------------------ */

typedef struct fake_commit {
  sb_inbound_done_fn done;
  void *arg;
  int status;
  char message_id[32];
  int duplicate;
} fake_commit;

typedef struct fake_env {
  channel_env env;
  int inbound_count; /* emit_inbound calls that reached the router */
  char ext_id[300], thread[300], sender_id[300], sender_name[128], sender_email[128], sender_phone[64];
  char text[512], html[512], reply_to[300];
  uint32_t sender_kind;
  int64_t timestamp_ms;
  size_t attachment_count;
  char att_url[256], att_type[64], att_name[64];
  uint64_t att_size;
  char att_data[64]; /* the first attachment's content, if any */
  size_t att_data_len;
  char stored[512][300]; /* external ids stored, index + 1 = message number */
  int stored_count;
  fake_commit pending[64];
  int pending_count;
  int hold;       /* keep commits pending until fake_flush */
  int fail_store; /* complete with SB_EIO */
  uv_timer_t commit_timer;
  int status_count;
  uint32_t status;
  char status_id[300], status_error[300];
  int64_t status_ts;
} fake_env;

static fake_env fe;

static void copy_or_null(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s != NULL ? s : "(null)"); }

/* Completes every pending commit (also after the channel closed). */
static void fake_flush(void) {
  fake_commit batch[64];
  int n = fe.pending_count;
  memcpy(batch, fe.pending, sizeof(batch[0]) * (size_t)n);
  fe.pending_count = 0;
  for (int i = 0; i < n; i++) {
    batch[i].done(batch[i].arg, batch[i].status, batch[i].status == SB_OK ? batch[i].message_id : NULL,
                  batch[i].duplicate);
  }
}

static void fake_commit_cb(uv_timer_t *t) {
  (void)t;
  if (!fe.hold) fake_flush();
}

static int fake_inbound(void *ctx, sb_channel *c, const sb_inbound_message *m, sb_inbound_done_fn done, void *arg) {
  fe.inbound_count++;
  copy_or_null(fe.ext_id, sizeof(fe.ext_id), m->external_id);
  copy_or_null(fe.thread, sizeof(fe.thread), m->external_thread_id);
  copy_or_null(fe.sender_id, sizeof(fe.sender_id), m->sender.id);
  copy_or_null(fe.sender_name, sizeof(fe.sender_name), m->sender.name);
  copy_or_null(fe.sender_email, sizeof(fe.sender_email), m->sender.email);
  copy_or_null(fe.sender_phone, sizeof(fe.sender_phone), m->sender.phone);
  copy_or_null(fe.text, sizeof(fe.text), m->text);
  copy_or_null(fe.html, sizeof(fe.html), m->html);
  copy_or_null(fe.reply_to, sizeof(fe.reply_to), m->reply_to_external_id);
  fe.sender_kind = m->sender.kind;
  fe.timestamp_ms = m->timestamp_ms;
  fe.attachment_count = m->attachment_count;
  if (m->attachment_count > 0) {
    copy_or_null(fe.att_url, sizeof(fe.att_url), m->attachments[0].url);
    copy_or_null(fe.att_type, sizeof(fe.att_type), m->attachments[0].mime_type);
    copy_or_null(fe.att_name, sizeof(fe.att_name), m->attachments[0].filename);
    fe.att_size = m->attachments[0].size;
    fe.att_data_len = m->attachments[0].data != NULL ? m->attachments[0].data_len : 0;
    if (fe.att_data_len > 0 && fe.att_data_len <= sizeof(fe.att_data))
      memcpy(fe.att_data, m->attachments[0].data, fe.att_data_len);
  }
  ck_assert_int_lt(fe.pending_count, 64);
  fake_commit *p = &fe.pending[fe.pending_count++];
  p->done = done;
  p->arg = arg;
  p->status = fe.fail_store ? SB_EIO : SB_OK;
  p->duplicate = 0;
  if (!fe.fail_store) {
    int found = -1;
    for (int i = 0; i < fe.stored_count; i++) {
      if (strcmp(fe.stored[i], m->external_id) == 0) found = i;
    }
    if (found < 0) {
      ck_assert_int_lt(fe.stored_count, 512);
      snprintf(fe.stored[fe.stored_count], sizeof(fe.stored[0]), "%s", m->external_id);
      found = fe.stored_count++;
    } else {
      p->duplicate = 1;
    }
    snprintf(p->message_id, sizeof(p->message_id), "m-%d", found + 1);
  }
  /* "Committed" a moment later. The loop's cached time may be stale: a
   * timer due at once would fire before run_until's poll and leave it
   * blocked until its guard. */
  uv_update_time(&loop);
  uv_timer_start(&fe.commit_timer, fake_commit_cb, 2, 0);
  return SB_OK;
}

static int fake_status(void *ctx, sb_channel *c, const sb_status_update *u) {
  fe.status_count++;
  fe.status = u->status;
  copy_or_null(fe.status_id, sizeof(fe.status_id), u->external_id);
  copy_or_null(fe.status_error, sizeof(fe.status_error), u->error);
  fe.status_ts = u->timestamp_ms;
  return SB_OK;
}

/* --- a responder that records the answer -------------------------------------------- */

typedef struct answer {
  sb_responder base;
  int status;
  char body[2048];
  char content_type[64], allow[32], retry_after[32];
  int done;
} answer;

static int record_answer(sb_responder *self, int status, const sb_http_header *h, size_t n, const char *body,
                         size_t len) {
  answer *a = (answer *)self;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body != NULL ? body : "");
  for (size_t i = 0; i < n; i++) {
    if (strcasecmp(h[i].name, "Content-Type") == 0) snprintf(a->content_type, sizeof(a->content_type), "%s", h[i].value);
    if (strcasecmp(h[i].name, "Allow") == 0) snprintf(a->allow, sizeof(a->allow), "%s", h[i].value);
    if (strcasecmp(h[i].name, "Retry-After") == 0) snprintf(a->retry_after, sizeof(a->retry_after), "%s", h[i].value);
  }
  a->done++;
  return 0;
}

/* Runs the loop until *flag or ms pass; returns *flag. */
static int run_until(const int *flag, uint64_t ms) { return tu_run_until(&loop, flag, ms); }

static void hex32(const uint8_t mac[32], char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* "sha256=" + hex HMAC-SHA256(secret, ts "." body), computed by the host's
 * own HMAC (checked against an RFC 4231 vector in signature_helper_matches_rfc_4231). */
static void sign(const char *secret, const char *ts, const char *body, size_t len, char out[72]) {
  size_t tl = strlen(ts);
  char *data = malloc(tl + 1 + len + 1);
  ck_assert_ptr_nonnull(data);
  memcpy(data, ts, tl);
  data[tl] = '.';
  if (len > 0) memcpy(data + tl + 1, body, len);
  uint8_t mac[32];
  hostapi_table()->hmac_sha256(secret, strlen(secret), data, tl + 1 + len, mac);
  free(data);
  memcpy(out, "sha256=", 7);
  hex32(mac, out + 7);
}

enum { SIGNED, BAD_SIGNATURE, NO_SIGNATURE, NO_TIMESTAMP, BAD_HEX, BAD_TIMESTAMP };

/* Sends one request to the channel; returns its answer once given. */
static answer *post_raw(const char *method, const char *subpath, const char *body, size_t len, int64_t skew_s,
                        int how) {
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  char ts[32], sig[72];
  snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL) + (long long)skew_s);
  sign(SECRET, ts, body, len, sig);
  if (how == BAD_SIGNATURE) sig[10] = sig[10] == 'a' ? 'b' : 'a';
  if (how == BAD_HEX) snprintf(sig, sizeof(sig), "sha256=zz");
  if (how == BAD_TIMESTAMP) { /* signed, but not unix seconds */
    snprintf(ts, sizeof(ts), "%lld.0", (long long)time(NULL));
    sign(SECRET, ts, body, len, sig);
  }
  sb_http_header headers[3];
  size_t n = 0;
  headers[n++] = (sb_http_header){"Content-Type", "application/json"};
  if (how != NO_TIMESTAMP) headers[n++] = (sb_http_header){"x-switchboard-timestamp", ts};
  if (how != NO_SIGNATURE) headers[n++] = (sb_http_header){"X-Switchboard-Signature", sig};
  char path[256];
  snprintf(path, sizeof(path), "/hooks/demo%s", subpath);
  sb_http_request req = {.method = method, .path = path, .subpath = subpath, .query = "", .headers = headers,
                         .header_count = n, .body = body, .body_len = len, .remote_addr = "127.0.0.1"};
  channel_receive(ch, &req, &a.base);
  ck_assert_msg(run_until(&a.done, 3000), "no answer to %s %s", method, subpath);
  ck_assert_int_eq(a.done, 1);
  ck_assert_str_eq(a.content_type, "application/json");
  return &a;
}

static answer *post(const char *subpath, const char *body) {
  return post_raw("POST", subpath, body, strlen(body), 0, SIGNED);
}

/* Asserts a JSON error answer with this status, code and field (NULL: none). */
static void assert_error(const answer *a, int status, const char *code, const char *field) {
  ck_assert_msg(a->status == status, "expected %d, got %d: %s", status, a->status, a->body);
  json_t *root = json_loads(a->body, 0, NULL);
  ck_assert_msg(root != NULL, "not JSON: %s", a->body);
  json_t *err = json_object_get(root, "error");
  ck_assert_str_eq(json_string_value(json_object_get(err, "code")), code);
  ck_assert_ptr_nonnull(json_string_value(json_object_get(err, "message")));
  const char *got = json_string_value(json_object_get(err, "field"));
  if (field == NULL) {
    ck_assert_msg(got == NULL, "unexpected field %s in %s", got, a->body);
  } else {
    ck_assert_msg(got != NULL && strcmp(got, field) == 0, "expected field %s in %s", field, a->body);
  }
  json_decref(root);
}

/* --- the HTTP double: the integration's webhook_url ------------------------------------ */

enum dbl_mode { DBL_OK, DBL_OK_NO_ID, DBL_OK_INT_ID, DBL_429, DBL_503, DBL_503_DATE, DBL_400, DBL_404_EMPTY, DBL_301,
                DBL_HUGE, DBL_SILENT };

typedef struct dbl_conn {
  uv_tcp_t tcp;
  char *buf;
  size_t len;
  int handled, continued, closing;
  struct dbl_conn *next;
} dbl_conn;

typedef struct http_double {
  uv_tcp_t listener;
  int port;
  int mode;
  int requests;
  char method[16], path[256];
  char head[8192];
  char *body;
  size_t body_len;
  dbl_conn *conns;
} http_double;

static http_double dbl;

typedef struct dbl_write_req {
  uv_write_t req;
  dbl_conn *conn;
  char *text;
  int close_after;
} dbl_write_req;

static void dbl_conn_closed(uv_handle_t *h) {
  dbl_conn *c = h->data;
  free(c->buf);
  free(c);
}

static void dbl_conn_close(dbl_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  for (dbl_conn **p = &dbl.conns; *p != NULL; p = &(*p)->next) {
    if (*p == c) {
      *p = c->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&c->tcp, dbl_conn_closed);
}

static void dbl_written(uv_write_t *req, int status) {
  dbl_write_req *w = (dbl_write_req *)req;
  if (w->close_after && status == 0) dbl_conn_close(w->conn);
  free(w->text);
  free(w);
}

static void dbl_write(dbl_conn *c, const char *text, int close_after) {
  dbl_write_req *w = calloc(1, sizeof(*w));
  w->conn = c;
  w->text = strdup(text);
  w->close_after = close_after;
  uv_buf_t b = uv_buf_init(w->text, (unsigned)strlen(w->text));
  ck_assert_int_eq(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, dbl_written), 0);
}

/* Finds a header in a raw request head; copies its value into out. */
static int head_value(const char *head, const char *name, char *out, size_t outlen) {
  size_t nlen = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
      const char *v = line + nlen + 1;
      while (*v == ' ') v++;
      size_t vlen = strcspn(v, "\r\n");
      snprintf(out, outlen, "%.*s", (int)vlen, v);
      return 1;
    }
  }
  return 0;
}

static void dbl_answer(dbl_conn *c) {
  char date[64], extra[128] = "", resp[1024];
  const char *body = "";
  if (dbl.mode == DBL_HUGE) { /* 200 with an id, but past the 64 KiB the plugin reads */
    size_t n = 100 * 1024;
    char *big = malloc(n + 256);
    int head = snprintf(big, 256, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);
    memset(big + head, ' ', n);
    memcpy(big + head, "{\"id\":\"x\"}", 10); /* then spaces: valid JSON of n bytes */
    big[head + (int)n] = '\0';
    dbl_write(c, big, 1);
    free(big);
    return;
  }
  int code = 200;
  switch (dbl.mode) {
  case DBL_OK: body = "{\"id\":\"x\"}"; break;
  case DBL_OK_NO_ID: body = "{\"ok\":true}"; break;
  case DBL_OK_INT_ID: body = "{\"id\":12345}"; break;
  case DBL_429:
    code = 429;
    body = "{\"error\":\"slow down\"}";
    snprintf(extra, sizeof(extra), "Retry-After: 7\r\n");
    break;
  case DBL_503: code = 503; body = "{\"error\":{\"message\":\"maintenance\"}}"; break;
  case DBL_503_DATE: {
    time_t when = time(NULL) + 120;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    code = 503;
    snprintf(extra, sizeof(extra), "Retry-After: %s\r\n", date);
    break;
  }
  case DBL_400: code = 400; body = "{\"error\":\"unknown user\"}"; break;
  case DBL_404_EMPTY: code = 404; break;
  case DBL_301: code = 301; snprintf(extra, sizeof(extra), "Location: http://127.0.0.1:1/\r\n"); break;
  default: return; /* DBL_SILENT: never answers */
  }
  snprintf(resp, sizeof(resp),
           "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
           code, strlen(body), extra, body);
  dbl_write(c, resp, 1);
}

static void dbl_try(dbl_conn *c) {
  if (c->handled) return;
  char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (end == NULL) return;
  size_t head_len = (size_t)(end - c->buf) + 4;
  char head[8192], value[64];
  snprintf(head, sizeof(head), "%.*s", (int)head_len, c->buf);
  size_t content_length = head_value(head, "Content-Length", value, sizeof(value)) ? (size_t)atol(value) : 0;
  if (!c->continued && head_value(head, "Expect", value, sizeof(value))) {
    c->continued = 1;
    dbl_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 0);
  }
  if (c->len < head_len + content_length) return;
  c->handled = 1;
  dbl.requests++;
  sscanf(head, "%15s %255s", dbl.method, dbl.path);
  snprintf(dbl.head, sizeof(dbl.head), "%s", head);
  free(dbl.body);
  dbl.body = malloc(content_length + 1);
  memcpy(dbl.body, c->buf + head_len, content_length);
  dbl.body[content_length] = '\0';
  dbl.body_len = content_length;
  dbl_answer(c);
}

static void dbl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  buf->base = malloc(65536);
  buf->len = 65536;
}

static void dbl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  dbl_conn *c = s->data;
  if (nread > 0) {
    c->buf = realloc(c->buf, c->len + (size_t)nread);
    memcpy(c->buf + c->len, buf->base, (size_t)nread);
    c->len += (size_t)nread;
    dbl_try(c);
  } else if (nread < 0) {
    dbl_conn_close(c);
  }
  free(buf->base);
}

static void dbl_accept(uv_stream_t *server, int status) {
  if (status < 0) return;
  dbl_conn *c = calloc(1, sizeof(*c));
  uv_tcp_init(&loop, &c->tcp);
  c->tcp.data = c;
  ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
  c->next = dbl.conns;
  dbl.conns = c;
  uv_read_start((uv_stream_t *)&c->tcp, dbl_alloc, dbl_read);
}

static void dbl_start(void) {
  memset(&dbl, 0, sizeof(dbl));
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_init(&loop, &dbl.listener);
  ck_assert_int_eq(uv_tcp_bind(&dbl.listener, (const struct sockaddr *)&sa, 0), 0);
  ck_assert_int_eq(uv_listen((uv_stream_t *)&dbl.listener, 16, dbl_accept), 0);
  int len = sizeof(sa);
  uv_tcp_getsockname(&dbl.listener, (struct sockaddr *)&sa, &len);
  dbl.port = ntohs(sa.sin_port);
}

static void dbl_stop(void) {
  while (dbl.conns != NULL) dbl_conn_close(dbl.conns);
  uv_close((uv_handle_t *)&dbl.listener, NULL);
  free(dbl.body);
  dbl.body = NULL;
}

/* True when the recorded request carries a valid signature over its body. */
static int dbl_signature_valid(void) {
  char ts[32], sig[128], expect[72];
  if (!head_value(dbl.head, "X-Switchboard-Timestamp", ts, sizeof(ts))) return 0;
  if (!head_value(dbl.head, "X-Switchboard-Signature", sig, sizeof(sig))) return 0;
  sign(SECRET, ts, dbl.body, dbl.body_len, expect);
  long long when = atoll(ts);
  return strcmp(sig, expect) == 0 && llabs(when - (long long)time(NULL)) <= 5;
}

/* --- the channel ------------------------------------------------------------------ */

static void closed_cb(void *arg) { *(int *)arg = 1; }

/* Creates the channel "demo" with webhook_url at the double plus the given
 * extra credentials (JSON members, may be ""). Returns the create result. */
static int try_open(const char *extra, char *err, size_t errlen) {
  char json[2048];
  snprintf(json, sizeof(json),
           "{\"name\":\"demo\",\"plugin\":\"custom\",\"credentials\":{\"webhook_url\":\"http://127.0.0.1:%d/out\","
           "\"signing_secret\":\"%s\"%s%s}}",
           dbl.port, SECRET, extra[0] != '\0' ? "," : "", extra);
  json_error_t jerr;
  json_t *holder = json_loads(json, 0, &jerr);
  ck_assert_msg(holder != NULL, "bad test JSON: %s", jerr.text);
  config_channel c = {.name = "demo", .plugin = "custom", .inbox = "Support", .enabled = 1,
                      .credentials = json_object_get(holder, "credentials"), .spec = holder};
  int rc = channel_create(&fe.env, &plug, &c, "/tmp", NULL, &ch, err, errlen);
  json_decref(holder);
  if (rc != 0) ch = NULL;
  return rc;
}

static void open_channel(const char *extra) {
  char err[512];
  ck_assert_msg(try_open(extra, err, sizeof(err)) == 0, "create failed: %s", err);
  channel_start(ch);
  ck_assert_uint_eq(channel_state(ch), SB_STATE_CONNECTED);
}

static void close_channel(void) {
  if (ch == NULL) return;
  int closed = 0;
  channel_close(ch, closed_cb, &closed);
  ch = NULL;
  ck_assert(run_until(&closed, 3000));
}

static void setup(void) {
  uv_loop_init(&loop);
  memset(&fe, 0, sizeof(fe));
  fe.env.loop = &loop;
  fe.env.inbound = fake_inbound;
  fe.env.status = fake_status;
  ck_assert_int_eq(httpc_new(&loop, &client), 0);
  fe.env.httpc = client;
  uv_timer_init(&loop, &fe.commit_timer);
  char err[512];
  int rc = loader_open_file(SB_PLUGIN_BUILD_DIR "/custom.so", hostapi_table(), &plug, err, sizeof(err));
  ck_assert_msg(rc == 0, "load failed: %s", err);
  dbl_start();
  ch = NULL;
}

static void httpc_closed(void *arg) { *(int *)arg = 1; }

static void teardown(void) {
  close_channel();
  fake_flush(); /* the router finishing after the channel closed: must be harmless */
  dbl_stop();
  int hc = 0;
  httpc_close(client, httpc_closed, &hc);
  run_until(&hc, 3000);
  uv_close((uv_handle_t *)&fe.commit_timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
#if !defined(__SANITIZE_ADDRESS__)
  dlclose(plug.dl);
#endif
  free(plug.path);
}

static const char valid_message[] =
    "{\"id\": \"ext-msg-1\", \"thread_id\": \"ext-thread-9\","
    " \"sender\": {\"id\": \"user-42\", \"name\": \"Kim\", \"email\": \"kim@example.com\", \"phone\": \"+4790000000\"},"
    " \"text\": \"Hello\", \"html\": null,"
    " \"attachments\": [{\"url\": \"https://files.example.com/a.png\", \"mime_type\": \"image/png\","
    " \"filename\": \"a.png\", \"size\": 1234}],"
    " \"reply_to\": \"ext-msg-0\", \"timestamp\": 1763800000}";

/* --- inbound ------------------------------------------------------------------------ */

START_TEST(signature_helper_matches_rfc_4231) {
  /* RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?". */
  uint8_t mac[32];
  char hex[65];
  const char data[] = "what do ya want for nothing?";
  const char *want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  /* The host keeps the keyed state of a few recent keys: the same answer
   * from a fresh key, from the kept state, after other keys pushed it out,
   * and for a key too long to keep (RFC 4231 test case 6, 131 bytes). */
  uint8_t big[131];
  memset(big, 0xaa, sizeof(big));
  const char big_data[] = "Test Using Larger Than Block-Size Key - Hash Key First";
  for (int round = 0; round < 3; round++) {
    hostapi_table()->hmac_sha256("Jefe", 4, data, sizeof(data) - 1, mac);
    hex32(mac, hex);
    ck_assert_str_eq(hex, want);
    hostapi_table()->hmac_sha256("Jefe", 4, data, sizeof(data) - 1, mac);
    hex32(mac, hex);
    ck_assert_str_eq(hex, want);
    for (int i = 0; i < 6; i++) {
      char other[8];
      snprintf(other, sizeof(other), "k%d", i);
      hostapi_table()->hmac_sha256(other, strlen(other), data, sizeof(data) - 1, mac);
    }
    hostapi_table()->hmac_sha256(big, sizeof(big), big_data, sizeof(big_data) - 1, mac);
    hex32(mac, hex);
    ck_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    hostapi_table()->hmac_sha256("Jefx", 4, data, sizeof(data) - 1, mac); /* same length, other key */
    hex32(mac, hex);
    ck_assert_str_ne(hex, want);
  }
}
END_TEST

START_TEST(valid_inbound_is_answered_with_message_id_only_after_commit) {
  open_channel("");
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  char ts[32], sig[72];
  snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
  sign(SECRET, ts, valid_message, strlen(valid_message), sig);
  sb_http_header h[2] = {{"X-Switchboard-Timestamp", ts}, {"X-Switchboard-Signature", sig}};
  sb_http_request req = {.method = "POST", .path = "/hooks/demo/messages", .subpath = "/messages", .query = "",
                         .headers = h, .header_count = 2, .body = valid_message, .body_len = strlen(valid_message)};
  channel_receive(ch, &req, &a.base);
  ck_assert_int_eq(fe.inbound_count, 1);
  ck_assert_int_eq(a.done, 0); /* not before the commit */
  ck_assert(run_until(&a.done, 3000));
  ck_assert_int_eq(a.status, 200);
  ck_assert_str_eq(a.body, "{\"message_id\":\"m-1\"}");
  ck_assert_str_eq(fe.ext_id, "ext-msg-1");
  ck_assert_str_eq(fe.thread, "(null)"); /* per_contact: the router keys the thread by contact */
  ck_assert_uint_eq(fe.sender_kind, SB_IDENTITY_CUSTOM);
  ck_assert_str_eq(fe.sender_id, "user-42");
  ck_assert_str_eq(fe.sender_name, "Kim");
  ck_assert_str_eq(fe.sender_email, "kim@example.com");
  ck_assert_str_eq(fe.sender_phone, "+4790000000");
  ck_assert_str_eq(fe.text, "Hello");
  ck_assert_str_eq(fe.html, "(null)");
  ck_assert_str_eq(fe.reply_to, "ext-msg-0");
  ck_assert_int_eq(fe.timestamp_ms, INT64_C(1763800000000));
  ck_assert_uint_eq(fe.attachment_count, 1);
  ck_assert_str_eq(fe.att_url, "https://files.example.com/a.png");
  ck_assert_str_eq(fe.att_type, "image/png");
  ck_assert_str_eq(fe.att_name, "a.png");
  ck_assert_uint_eq(fe.att_size, 1234);
}
END_TEST

START_TEST(redelivery_gets_the_same_message_id_and_stores_nothing_new) {
  open_channel("");
  ck_assert_str_eq(post("/messages", valid_message)->body, "{\"message_id\":\"m-1\"}");
  answer *a = post("/messages", valid_message);
  ck_assert_int_eq(a->status, 200);
  ck_assert_str_eq(a->body, "{\"message_id\":\"m-1\"}");
  ck_assert_int_eq(fe.stored_count, 1);
  ck_assert_str_eq(post("/messages", "{\"id\":\"ext-msg-2\",\"sender\":{\"id\":\"u\"},\"text\":\"again\"}")->body,
                   "{\"message_id\":\"m-2\"}");
  ck_assert_int_eq(fe.stored_count, 2);
}
END_TEST

START_TEST(integration_thread_model_passes_the_thread_id_and_requires_it) {
  open_channel("\"thread_model\":\"integration_thread_id\"");
  ck_assert_int_eq(post("/messages", valid_message)->status, 200);
  ck_assert_str_eq(fe.thread, "ext-thread-9");
  assert_error(post("/messages", "{\"id\":\"e2\",\"sender\":{\"id\":\"u\"},\"text\":\"hi\"}"), 400, "invalid",
               "thread_id");
  assert_error(post("/messages", "{\"id\":\"e2\",\"thread_id\":null,\"sender\":{\"id\":\"u\"},\"text\":\"hi\"}"), 400,
               "invalid", "thread_id");
  ck_assert_int_eq(fe.inbound_count, 1);
}
END_TEST

START_TEST(bad_missing_or_stale_signatures_get_401) {
  open_channel("");
  size_t len = strlen(valid_message);
  assert_error(post_raw("POST", "/messages", valid_message, len, 0, BAD_SIGNATURE), 401, "unauthorized", NULL);
  assert_error(post_raw("POST", "/messages", valid_message, len, 0, NO_SIGNATURE), 401, "unauthorized", NULL);
  assert_error(post_raw("POST", "/messages", valid_message, len, 0, NO_TIMESTAMP), 401, "unauthorized", NULL);
  assert_error(post_raw("POST", "/messages", valid_message, len, 0, BAD_HEX), 401, "unauthorized", NULL);
  assert_error(post_raw("POST", "/messages", valid_message, len, 0, BAD_TIMESTAMP), 401, "unauthorized", NULL);
  assert_error(post_raw("POST", "/messages", valid_message, len, -301, SIGNED), 401, "unauthorized", NULL);
  assert_error(post_raw("POST", "/messages", valid_message, len, 400, SIGNED), 401, "unauthorized", NULL);
  const char *receipt = "{\"id\":\"x\",\"status\":\"read\"}";
  assert_error(post_raw("POST", "/status", receipt, strlen(receipt), 0, BAD_SIGNATURE), 401, "unauthorized", NULL);
  ck_assert_int_eq(fe.status_count, 0);
  /* A signature over another body does not carry over. */
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  char ts[32], sig[72];
  snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
  sign(SECRET, ts, "{}", 2, sig);
  sb_http_header h[2] = {{"X-Switchboard-Timestamp", ts}, {"X-Switchboard-Signature", sig}};
  sb_http_request req = {.method = "POST", .path = "/hooks/demo/messages", .subpath = "/messages", .query = "",
                         .headers = h, .header_count = 2, .body = valid_message, .body_len = len};
  channel_receive(ch, &req, &a.base);
  assert_error(&a, 401, "unauthorized", NULL);
  ck_assert_int_eq(fe.inbound_count, 0);
  /* Within the window either way is fine. */
  ck_assert_int_eq(post_raw("POST", "/messages", valid_message, len, -290, SIGNED)->status, 200);
}
END_TEST

START_TEST(malformed_json_gets_400) {
  open_channel("");
  const char *bodies[] = {"", "{", "[]", "null", "\"text\"", "42", "{\"id\":\"a\",}", "{\"id\":\"a\"}}",
                          "{\"id\":\"a\",\"id\":\"b\",\"sender\":{\"id\":\"u\"},\"text\":\"x\"}",
                          "{\"id\":\"a\\u0000b\",\"sender\":{\"id\":\"u\"},\"text\":\"x\"}",
                          "{\"id\":\"\xff\xfe\",\"sender\":{\"id\":\"u\"},\"text\":\"x\"}"};
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    assert_error(post("/messages", bodies[i]), 400, "invalid", NULL);
    assert_error(post("/status", bodies[i]), 400, "invalid", NULL);
  }
  ck_assert_int_eq(fe.inbound_count, 0);
  ck_assert_int_eq(fe.status_count, 0);
}
END_TEST

START_TEST(each_missing_or_mistyped_field_gets_400_naming_it) {
  open_channel("");
  static const struct {
    const char *body;
    const char *field;
  } cases[] = {
      {"{\"sender\":{\"id\":\"u\"},\"text\":\"x\"}", "id"},
      {"{\"id\":null,\"sender\":{\"id\":\"u\"},\"text\":\"x\"}", "id"},
      {"{\"id\":7,\"sender\":{\"id\":\"u\"},\"text\":\"x\"}", "id"},
      {"{\"id\":\"\",\"sender\":{\"id\":\"u\"},\"text\":\"x\"}", "id"},
      {"{\"id\":\"e\",\"thread_id\":9,\"sender\":{\"id\":\"u\"},\"text\":\"x\"}", "thread_id"},
      {"{\"id\":\"e\",\"text\":\"x\"}", "sender"},
      {"{\"id\":\"e\",\"sender\":\"u\",\"text\":\"x\"}", "sender"},
      {"{\"id\":\"e\",\"sender\":{},\"text\":\"x\"}", "sender.id"},
      {"{\"id\":\"e\",\"sender\":{\"id\":42},\"text\":\"x\"}", "sender.id"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\",\"name\":1},\"text\":\"x\"}", "sender.name"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\",\"email\":[]},\"text\":\"x\"}", "sender.email"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\",\"phone\":true},\"text\":\"x\"}", "sender.phone"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":5}", "text"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"x\",\"html\":{}}", "html"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"}}", "text"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"\",\"html\":null,\"attachments\":[]}", "text"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"x\",\"reply_to\":1}", "reply_to"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"x\",\"timestamp\":\"1763800000\"}", "timestamp"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"x\",\"timestamp\":1763800000.5}", "timestamp"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"x\",\"timestamp\":-1}", "timestamp"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"text\":\"x\",\"timestamp\":1763800000000}", "timestamp"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":{}}", "attachments"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[\"https://x/a\"]}", "attachments[0]"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{}]}", "attachments[0].url"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\"},{\"url\":3}]}",
       "attachments[1].url"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"file:///etc/passwd\"}]}",
       "attachments[0].url"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\",\"mime_type\":5}]}",
       "attachments[0].mime_type"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\",\"mime_type\":\"png\"}]}",
       "attachments[0].mime_type"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\",\"filename\":[]}]}",
       "attachments[0].filename"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\",\"size\":\"12\"}]}",
       "attachments[0].size"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\",\"size\":-5}]}",
       "attachments[0].size"},
      {"{\"id\":\"e\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\",\"size\":1.5}]}",
       "attachments[0].size"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    answer *a = post("/messages", cases[i].body);
    ck_assert_msg(a->status == 400, "case %zu: expected 400, got %d: %s", i, a->status, a->body);
    assert_error(a, 400, "invalid", cases[i].field);
  }
  /* An id longer than the help desk stores. */
  char body[1024], id[300];
  memset(id, 'a', 257);
  id[257] = '\0';
  snprintf(body, sizeof(body), "{\"id\":\"%s\",\"sender\":{\"id\":\"u\"},\"text\":\"x\"}", id);
  assert_error(post("/messages", body), 400, "invalid", "id");
  ck_assert_int_eq(fe.inbound_count, 0);
  /* Optional fields may be null or absent; html or attachments alone suffice. */
  ck_assert_int_eq(post("/messages", "{\"id\":\"o1\",\"thread_id\":null,\"sender\":{\"id\":\"u\",\"name\":null},"
                                     "\"text\":null,\"html\":\"<b>hi</b>\",\"reply_to\":null,\"timestamp\":null,"
                                     "\"attachments\":null}")
                       ->status,
                   200);
  ck_assert_str_eq(fe.text, "(null)");
  ck_assert_str_eq(fe.html, "<b>hi</b>");
  ck_assert_int_eq(fe.timestamp_ms, 0);
  ck_assert_int_eq(
      post("/messages", "{\"id\":\"o2\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"http://x/a\"}]}")->status,
      200);
  ck_assert_uint_eq(fe.attachment_count, 1);
}
END_TEST

START_TEST(oversized_or_disallowed_attachments_get_413_or_415) {
  open_channel("\"max_attachment_bytes\":1000,\"allowed_attachment_types\":[\"image/\",\"application/pdf\"]");
  const char *fmt = "{\"id\":\"%s\",\"sender\":{\"id\":\"u\"},\"attachments\":[%s]}";
  char body[1024];
  snprintf(body, sizeof(body), fmt, "a1", "{\"url\":\"https://x/a.png\",\"mime_type\":\"image/png\",\"size\":1001}");
  assert_error(post("/messages", body), 413, "too_large", "attachments[0].size");
  snprintf(body, sizeof(body), fmt, "a2",
           "{\"url\":\"https://x/a.png\",\"mime_type\":\"image/png\",\"size\":10},"
           "{\"url\":\"https://x/a.exe\",\"mime_type\":\"application/x-msdownload\",\"size\":10}");
  assert_error(post("/messages", body), 415, "unsupported_media_type", "attachments[1].mime_type");
  snprintf(body, sizeof(body), fmt, "a3", "{\"url\":\"https://x/a\"}");
  assert_error(post("/messages", body), 415, "unsupported_media_type", "attachments[0].mime_type");
  snprintf(body, sizeof(body), fmt, "a4", "{\"url\":\"https://x/imagefile\",\"mime_type\":\"imagex/png\"}");
  assert_error(post("/messages", body), 415, "unsupported_media_type", "attachments[0].mime_type");
  ck_assert_int_eq(fe.inbound_count, 0);
  snprintf(body, sizeof(body), fmt, "a5",
           "{\"url\":\"https://x/a.png\",\"mime_type\":\"IMAGE/PNG\",\"size\":1000},"
           "{\"url\":\"https://x/a.pdf\",\"mime_type\":\"application/pdf; name=a.pdf\"}");
  ck_assert_int_eq(post("/messages", body)->status, 200);
  ck_assert_uint_eq(fe.attachment_count, 2);
}
END_TEST

START_TEST(inline_base64_content_is_decoded_for_the_host) {
  open_channel("\"max_attachment_bytes\":8");
  /* "SGkA/w==" is the 4 bytes 'H' 'i' NUL 0xff. No url is needed with data. */
  ck_assert_int_eq(post("/messages", "{\"id\":\"d1\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"data\":\"SGkA/w==\","
                                     "\"mime_type\":\"application/octet-stream\",\"filename\":\"x.bin\"}]}")
                       ->status,
                   200);
  ck_assert_uint_eq(fe.attachment_count, 1);
  ck_assert_str_eq(fe.att_url, "(null)");
  ck_assert_uint_eq(fe.att_data_len, 4);
  ck_assert_mem_eq(fe.att_data, "Hi\0\377", 4);
  ck_assert_uint_eq(fe.att_size, 4); /* the content's size */
  const char *fmt = "{\"id\":\"%s\",\"sender\":{\"id\":\"u\"},\"attachments\":[%s]}";
  char body[512];
  snprintf(body, sizeof(body), fmt, "d2", "{\"data\":\"not base64!\"}");
  assert_error(post("/messages", body), 400, "invalid", "attachments[0].data");
  snprintf(body, sizeof(body), fmt, "d3", "{\"data\":\"SGk\"}"); /* unpadded */
  assert_error(post("/messages", body), 400, "invalid", "attachments[0].data");
  snprintf(body, sizeof(body), fmt, "d4", "{\"data\":7}");
  assert_error(post("/messages", body), 400, "invalid", "attachments[0].data");
  snprintf(body, sizeof(body), fmt, "d5", "{\"data\":\"SGkA/w==\",\"size\":5}");
  assert_error(post("/messages", body), 400, "invalid", "attachments[0].size");
  snprintf(body, sizeof(body), fmt, "d6", "{\"data\":\"MTIzNDU2Nzg5\"}"); /* 9 bytes, over 8 */
  assert_error(post("/messages", body), 413, "too_large", "attachments[0].size");
  snprintf(body, sizeof(body), fmt, "d7", "{\"mime_type\":\"image/png\"}");
  assert_error(post("/messages", body), 400, "invalid", "attachments[0].url");
  ck_assert_int_eq(fe.inbound_count, 1);
}
END_TEST

START_TEST(default_attachment_limit_is_10_mib_and_any_type) {
  open_channel("");
  assert_error(post("/messages", "{\"id\":\"b1\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\","
                                 "\"mime_type\":\"video/mp4\",\"size\":10485761}]}"),
               413, "too_large", "attachments[0].size");
  ck_assert_int_eq(post("/messages", "{\"id\":\"b2\",\"sender\":{\"id\":\"u\"},\"attachments\":[{\"url\":\"https://x/a\","
                                     "\"mime_type\":\"video/mp4\",\"size\":10485760}]}")
                       ->status,
                   200);
}
END_TEST

START_TEST(store_failure_gets_503_to_deliver_again) {
  open_channel("");
  fe.fail_store = 1;
  answer *a = post("/messages", valid_message);
  assert_error(a, 503, "unavailable", NULL);
  ck_assert_str_eq(a->retry_after, "5");
  fe.fail_store = 0;
  ck_assert_int_eq(post("/messages", valid_message)->status, 200);
}
END_TEST

START_TEST(status_callbacks_reach_the_host) {
  open_channel("");
  answer *a = post("/status", "{\"id\":\"out-1\",\"status\":\"delivered\"}");
  ck_assert_int_eq(a->status, 200);
  ck_assert_int_eq(fe.status_count, 1);
  ck_assert_uint_eq(fe.status, SB_STATUS_DELIVERED);
  ck_assert_str_eq(fe.status_id, "out-1");
  ck_assert_str_eq(fe.status_error, "(null)");
  ck_assert_int_eq(post("/status", "{\"id\":\"out-1\",\"status\":\"read\",\"timestamp\":1763800001}")->status, 200);
  ck_assert_uint_eq(fe.status, SB_STATUS_READ);
  ck_assert_int_eq(fe.status_ts, INT64_C(1763800001000));
  ck_assert_int_eq(post("/status", "{\"id\":\"out-2\",\"status\":\"failed\",\"error\":\"user blocked us\"}")->status,
                   200);
  ck_assert_uint_eq(fe.status, SB_STATUS_FAILED);
  ck_assert_str_eq(fe.status_id, "out-2");
  ck_assert_str_eq(fe.status_error, "user blocked us");
  ck_assert_int_eq(post("/status", "{\"id\":\"out-3\",\"status\":\"failed\"}")->status, 200);
  ck_assert_ptr_nonnull(strstr(fe.status_error, "without a reason"));
  ck_assert_int_eq(fe.status_count, 4);
  assert_error(post("/status", "{\"id\":\"out-1\",\"status\":\"seen\"}"), 400, "invalid", "status");
  assert_error(post("/status", "{\"id\":\"out-1\"}"), 400, "invalid", "status");
  assert_error(post("/status", "{\"status\":\"read\"}"), 400, "invalid", "id");
  assert_error(post("/status", "{\"id\":\"out-1\",\"status\":\"failed\",\"error\":5}"), 400, "invalid", "error");
  ck_assert_int_eq(fe.status_count, 4);
}
END_TEST

START_TEST(other_paths_get_404_other_methods_405_and_huge_bodies_413) {
  open_channel("");
  answer *a = post_raw("GET", "/messages", "", 0, 0, SIGNED);
  assert_error(a, 405, "method_not_allowed", NULL);
  ck_assert_str_eq(a->allow, "POST");
  assert_error(post_raw("PUT", "/status", "{}", 2, 0, SIGNED), 405, "method_not_allowed", NULL);
  assert_error(post("/nothing", valid_message), 404, "not_found", NULL);
  assert_error(post("", valid_message), 404, "not_found", NULL);
  assert_error(post("/messages/", valid_message), 404, "not_found", NULL);
  size_t big = 1024 * 1024 + 1;
  char *huge = malloc(big);
  memset(huge, ' ', big);
  assert_error(post_raw("POST", "/messages", huge, big, 0, SIGNED), 413, "too_large", NULL);
  free(huge);
  ck_assert_int_eq(fe.inbound_count, 0);
}
END_TEST

START_TEST(settings_the_schema_cannot_check_are_refused_by_name) {
  char err[512];
  ck_assert_int_ne(try_open("\"allowed_attachment_types\":[\"png\"]", err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "allowed_attachment_types"));
  ck_assert_int_ne(try_open("\"max_attachment_bytes\":-1", err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "max_attachment_bytes"));
  ck_assert_int_ne(try_open("\"request_timeout\":\"10ms\"", err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "request_timeout"));
  ck_assert_int_ne(try_open("\"thread_model\":\"per_thread\"", err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "thread_model"));
  ck_assert_msg(strstr(err, SECRET) == NULL, "the secret leaked: %s", err);
}
END_TEST

/* --- outbound ------------------------------------------------------------------------ */

typedef struct sent {
  sb_send_op base;
  int outcome;
  char text[512];
  uint32_t retry_after;
  int done;
} sent;

static void record_send(sb_send_op *self, int outcome, const char *text, uint32_t retry_after_ms) {
  sent *s = (sent *)self;
  s->outcome = outcome;
  snprintf(s->text, sizeof(s->text), "%s", text != NULL ? text : "");
  s->retry_after = retry_after_ms;
  s->done++;
}

static const sb_attachment reply_attachments[] = {
    {.url = "https://files.example.com/r.pdf", .mime_type = "application/pdf", .filename = "r.pdf", .size = 99},
    /* one the help desk holds comes as the host gives it: its API path and the bytes */
    {.url = "/api/v1/attachments/5", .mime_type = "text/plain", .filename = "hi.txt", .data = "hi!", .data_len = 3},
};

/* Starts one send of a reply to user-42; the caller runs the loop. */
static void start_send(sent *s) {
  memset(s, 0, sizeof(*s));
  s->base.complete = record_send;
  sb_outbound_message m = {.message_id = "msg-77", .idempotency_key = "idem-77", .attempt = 1,
                           .recipient_id = "user-42", .recipient_name = "Kim",
                           .external_thread_id = "ext-thread-9", .reply_to_external_id = "ext-msg-1",
                           .text = "Hi Kim", .html = "<p>Hi Kim</p>", .attachments = reply_attachments,
                           .attachment_count = 2, .agent_name = "Ana"};
  ck_assert_int_eq(channel_send(ch, &m, &s->base), 0);
}

static sent *send_reply(int mode) {
  static sent s;
  dbl.mode = mode;
  start_send(&s);
  ck_assert_msg(run_until(&s.done, 5000), "send did not complete");
  ck_assert_int_eq(s.done, 1);
  return &s;
}

START_TEST(outbound_body_and_signature_are_as_specified) {
  open_channel("");
  sent *s = send_reply(DBL_OK);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_OK);
  ck_assert_str_eq(s->text, "x");
  ck_assert_int_eq(dbl.requests, 1);
  ck_assert_str_eq(dbl.method, "POST");
  ck_assert_str_eq(dbl.path, "/out");
  ck_assert_msg(dbl_signature_valid(), "bad signature on:\n%s%s", dbl.head, dbl.body);
  char value[128];
  ck_assert(head_value(dbl.head, "Idempotency-Key", value, sizeof(value)));
  ck_assert_str_eq(value, "idem-77");
  ck_assert(head_value(dbl.head, "Content-Type", value, sizeof(value)));
  ck_assert_str_eq(value, "application/json");
  ck_assert(head_value(dbl.head, "X-Switchboard-Signature", value, sizeof(value)));
  ck_assert_msg(strncmp(value, "sha256=", 7) == 0 && strlen(value) == 71, "signature header %s", value);
  json_t *root = json_loadb(dbl.body, dbl.body_len, 0, NULL);
  ck_assert_ptr_nonnull(root);
  ck_assert_str_eq(json_string_value(json_object_get(root, "id")), "msg-77");
  ck_assert_str_eq(json_string_value(json_object_get(root, "thread_id")), "ext-thread-9");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "recipient"), "id")), "user-42");
  ck_assert_str_eq(json_string_value(json_object_get(root, "text")), "Hi Kim");
  ck_assert_str_eq(json_string_value(json_object_get(root, "html")), "<p>Hi Kim</p>");
  ck_assert_str_eq(json_string_value(json_object_get(root, "reply_to")), "ext-msg-1");
  json_t *atts = json_object_get(root, "attachments");
  ck_assert_uint_eq(json_array_size(atts), 2);
  json_t *a0 = json_array_get(atts, 0), *a1 = json_array_get(atts, 1);
  ck_assert_str_eq(json_string_value(json_object_get(a0, "url")), "https://files.example.com/r.pdf");
  ck_assert_str_eq(json_string_value(json_object_get(a0, "mime_type")), "application/pdf");
  ck_assert_str_eq(json_string_value(json_object_get(a0, "filename")), "r.pdf");
  ck_assert_int_eq(json_integer_value(json_object_get(a0, "size")), 99);
  ck_assert(json_is_null(json_object_get(a0, "data"))); /* present, as docs/channels/custom.md shows it */
  ck_assert(json_is_null(json_object_get(a1, "url")));
  ck_assert_str_eq(json_string_value(json_object_get(a1, "data")), "aGkh");
  ck_assert(json_is_false(json_object_get(root, "automatic")));
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "agent"), "name")), "Ana");
  json_decref(root);
}
END_TEST

START_TEST(outbound_without_reply_to_sends_nulls) {
  open_channel("");
  static sent s;
  memset(&s, 0, sizeof(s));
  s.base.complete = record_send;
  dbl.mode = DBL_OK_INT_ID;
  sb_outbound_message m = {.message_id = "msg-78", .idempotency_key = "idem-78", .attempt = 2,
                           .recipient_id = "user-42", .text = "plain", .flags = SB_OUT_AUTOMATIC};
  ck_assert_int_eq(channel_send(ch, &m, &s.base), 0);
  ck_assert(run_until(&s.done, 5000));
  ck_assert_int_eq(s.outcome, CHANNEL_SEND_OK);
  ck_assert_str_eq(s.text, "12345");
  json_t *root = json_loadb(dbl.body, dbl.body_len, 0, NULL);
  ck_assert(json_is_null(json_object_get(root, "thread_id")));
  ck_assert(json_is_null(json_object_get(root, "html")));
  ck_assert(json_is_null(json_object_get(root, "reply_to")));
  ck_assert_uint_eq(json_array_size(json_object_get(root, "attachments")), 0);
  ck_assert(json_is_true(json_object_get(root, "automatic")));
  json_decref(root);
}
END_TEST

START_TEST(outbound_2xx_without_id_fails_with_a_clear_reason) {
  open_channel("");
  sent *s = send_reply(DBL_OK_NO_ID);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "without an \"id\""));
}
END_TEST

START_TEST(outbound_429_retries_after_retry_after) {
  open_channel("");
  sent *s = send_reply(DBL_429);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_uint_eq(s->retry_after, 7000);
  ck_assert_ptr_nonnull(strstr(s->text, "429"));
  ck_assert_ptr_nonnull(strstr(s->text, "slow down"));
}
END_TEST

START_TEST(outbound_5xx_retries_with_host_backoff_or_retry_after_date) {
  open_channel("");
  sent *s = send_reply(DBL_503);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_uint_eq(s->retry_after, 0);
  ck_assert_ptr_nonnull(strstr(s->text, "503"));
  ck_assert_ptr_nonnull(strstr(s->text, "maintenance"));
  s = send_reply(DBL_503_DATE);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_msg(s->retry_after >= 115000 && s->retry_after <= 121000, "retry after %u ms", s->retry_after);
}
END_TEST

START_TEST(outbound_4xx_fails_with_the_error_text) {
  open_channel("");
  sent *s = send_reply(DBL_400);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_str_eq(s->text, "unknown user");
  s = send_reply(DBL_404_EMPTY);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_str_eq(s->text, "the integration refused the message with HTTP 404");
  s = send_reply(DBL_301);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "301"));
}
END_TEST

START_TEST(outbound_oversized_answer_retries) {
  open_channel("");
  sent *s = send_reply(DBL_HUGE);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_msg(strstr(s->text, "larger than 65536 bytes") != NULL, "reason: %s", s->text);
}
END_TEST

START_TEST(outbound_timeout_retries) {
  open_channel("\"request_timeout\":\"300ms\"");
  sent *s = send_reply(DBL_SILENT);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_uint_eq(s->retry_after, 0);
  ck_assert_msg(strstr(s->text, "did not answer within 300 ms") != NULL, "reason: %s", s->text);
  ck_assert_int_eq(dbl.requests, 1);
}
END_TEST

START_TEST(outbound_connection_failure_retries) {
  char err[512];
  dbl.port = 1; /* nothing listens on port 1 */
  ck_assert_msg(try_open("", err, sizeof(err)) == 0, "%s", err);
  channel_start(ch);
  static sent s;
  start_send(&s);
  ck_assert(run_until(&s.done, 5000));
  ck_assert_int_eq(s.outcome, CHANNEL_SEND_RETRY);
  ck_assert_msg(strstr(s.text, "could not reach webhook_url") != NULL, "reason: %s", s.text);
}
END_TEST

START_TEST(disconnect_completes_pending_work_once_and_close_waits_for_commits) {
  open_channel("");
  fe.hold = 1;
  static answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = record_answer;
  char ts[32], sig[72];
  snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
  sign(SECRET, ts, valid_message, strlen(valid_message), sig);
  sb_http_header h[2] = {{"X-Switchboard-Timestamp", ts}, {"X-Switchboard-Signature", sig}};
  sb_http_request req = {.method = "POST", .path = "/hooks/demo/messages", .subpath = "/messages", .query = "",
                         .headers = h, .header_count = 2, .body = valid_message, .body_len = strlen(valid_message)};
  channel_receive(ch, &req, &a.base);
  static sent s;
  dbl.mode = DBL_SILENT;
  start_send(&s);
  int never = 0;
  run_until(&never, 200); /* the POST reached the double, which keeps quiet */
  ck_assert_int_eq(dbl.requests, 1);
  ck_assert_int_eq(a.done, 0);
  ck_assert_int_eq(s.done, 0);
  int closed = 0;
  channel_close(ch, closed_cb, &closed);
  ch = NULL;
  ck_assert_int_eq(s.done, 1);
  ck_assert_int_eq(s.outcome, CHANNEL_SEND_RETRY);
  ck_assert_ptr_nonnull(strstr(s.text, "cancelled"));
  ck_assert_int_eq(a.done, 1);
  assert_error(&a, 503, "unavailable", NULL);
  run_until(&never, 50);
  ck_assert_int_eq(closed, 0); /* destroy waits for the commit still pending */
  fake_flush();
  ck_assert(run_until(&closed, 3000));
  ck_assert_int_eq(s.done, 1);
  ck_assert_int_eq(a.done, 1);
}
END_TEST

START_TEST(the_secret_never_reaches_the_log_or_an_answer) {
  open_channel("");
  /* The host redacts registered secrets as a last defence; forget them so
   * only the plugin's own care is tested. */
  log_clear_secrets();
  log_set_level(LOG_LEVEL_DEBUG);
  char *dir = tu_tmpdir();
  char path[4200];
  snprintf(path, sizeof(path), "%s/log", dir);
  int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  log_set_fd(fd);
  size_t len = strlen(valid_message);
  static const int modes[] = {DBL_OK, DBL_OK_NO_ID, DBL_429, DBL_503, DBL_400, DBL_301};
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) send_reply(modes[i]);
  const answer *answers[] = {post_raw("POST", "/messages", valid_message, len, 0, BAD_SIGNATURE),
                             post_raw("POST", "/messages", valid_message, len, -400, SIGNED),
                             post_raw("POST", "/messages", "{", 1, 0, SIGNED)};
  for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
    ck_assert_msg(strstr(answers[i]->body, SECRET) == NULL, "the secret leaked: %s", answers[i]->body);
  }
  close_channel();
  log_set_fd(2);
  char logged[65536];
  ssize_t n = pread(fd, logged, sizeof(logged) - 1, 0);
  close(fd);
  ck_assert_int_gt(n, 0);
  logged[n] = '\0';
  ck_assert_msg(strstr(logged, "429") != NULL, "expected the retries in the log:\n%s", logged);
  ck_assert_msg(strstr(logged, SECRET) == NULL, "the secret leaked into the log:\n%s", logged);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

/* --- fuzz-ish: random, truncated and mutated bodies with valid signatures --------------- */

static uint64_t rng_state;

static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

START_TEST(random_truncated_and_mutated_bodies_never_crash) {
  open_channel("\"max_attachment_bytes\":2000,\"allowed_attachment_types\":[\"image/\"]");
  rng_state = 0x9e3779b97f4a7c15ull;
  size_t len = strlen(valid_message);
  char buf[4096];
  /* Every strict prefix of a valid message is invalid JSON. */
  for (size_t k = 0; k < len; k++) {
    assert_error(post_raw("POST", "/messages", valid_message, k, 0, SIGNED), 400, "invalid", NULL);
  }
  /* Random bytes. */
  for (int i = 0; i < 500; i++) {
    size_t n = rng() % 300;
    for (size_t j = 0; j < n; j++) buf[j] = (char)(rng() & 0xff);
    if (n > 0 && i % 2 == 0) buf[0] = '{';
    answer *a = post_raw("POST", i % 3 == 0 ? "/status" : "/messages", buf, n, 0, SIGNED);
    ck_assert_msg(a->status == 400, "random body %d got %d: %s", i, a->status, a->body);
  }
  /* Token soup: JSON-looking bodies of the right vocabulary in random order. */
  static const char *tokens[] = {"{", "}", "[", "]", ":", ",", "\"id\"", "\"sender\"", "\"text\"", "\"attachments\"",
                                 "\"url\"", "\"size\"", "null", "true", "1", "-1", "1e400", "\"x\"", "\"\\ud800\""};
  for (int i = 0; i < 500; i++) {
    size_t n = 0;
    int count = (int)(rng() % 40);
    for (int j = 0; j < count && n + 32 < sizeof(buf); j++) {
      const char *t = tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))];
      memcpy(buf + n, t, strlen(t));
      n += strlen(t);
    }
    answer *a = post_raw("POST", "/messages", buf, n, 0, SIGNED);
    ck_assert_msg(a->status == 400, "token soup %d got %d: %.*s -> %s", i, a->status, (int)n, buf, a->body);
  }
  /* Single-byte mutations of a valid message: any answer, but a JSON one of the contract's. */
  for (int i = 0; i < 400; i++) {
    memcpy(buf, valid_message, len);
    int flips = 1 + (int)(rng() % 3);
    for (int f = 0; f < flips; f++) buf[rng() % len] = (char)(rng() & 0xff);
    answer *a = post_raw("POST", "/messages", buf, len, 0, SIGNED);
    ck_assert_msg(a->status == 200 || a->status == 400 || a->status == 413 || a->status == 415,
                  "mutation %d got %d: %s", i, a->status, a->body);
    json_t *root = json_loads(a->body, 0, NULL);
    ck_assert_msg(root != NULL, "mutation %d: answer is not JSON: %s", i, a->body);
    ck_assert(json_object_get(root, a->status == 200 ? "message_id" : "error") != NULL);
    json_decref(root);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("custom");
  TCase *tc = tcase_create("custom");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, signature_helper_matches_rfc_4231);
  tcase_add_test(tc, valid_inbound_is_answered_with_message_id_only_after_commit);
  tcase_add_test(tc, redelivery_gets_the_same_message_id_and_stores_nothing_new);
  tcase_add_test(tc, inline_base64_content_is_decoded_for_the_host);
  tcase_add_test(tc, integration_thread_model_passes_the_thread_id_and_requires_it);
  tcase_add_test(tc, bad_missing_or_stale_signatures_get_401);
  tcase_add_test(tc, malformed_json_gets_400);
  tcase_add_test(tc, each_missing_or_mistyped_field_gets_400_naming_it);
  tcase_add_test(tc, oversized_or_disallowed_attachments_get_413_or_415);
  tcase_add_test(tc, default_attachment_limit_is_10_mib_and_any_type);
  tcase_add_test(tc, store_failure_gets_503_to_deliver_again);
  tcase_add_test(tc, status_callbacks_reach_the_host);
  tcase_add_test(tc, other_paths_get_404_other_methods_405_and_huge_bodies_413);
  tcase_add_test(tc, settings_the_schema_cannot_check_are_refused_by_name);
  tcase_add_test(tc, outbound_body_and_signature_are_as_specified);
  tcase_add_test(tc, outbound_without_reply_to_sends_nulls);
  tcase_add_test(tc, outbound_2xx_without_id_fails_with_a_clear_reason);
  tcase_add_test(tc, outbound_429_retries_after_retry_after);
  tcase_add_test(tc, outbound_5xx_retries_with_host_backoff_or_retry_after_date);
  tcase_add_test(tc, outbound_4xx_fails_with_the_error_text);
  tcase_add_test(tc, outbound_oversized_answer_retries);
  tcase_add_test(tc, outbound_timeout_retries);
  tcase_add_test(tc, outbound_connection_failure_retries);
  tcase_add_test(tc, disconnect_completes_pending_work_once_and_close_waits_for_commits);
  tcase_add_test(tc, the_secret_never_reaches_the_log_or_an_answer);
  tcase_add_test(tc, random_truncated_and_mutated_bodies_never_crash);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
