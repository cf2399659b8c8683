/* test_http.c — core/http.c: a real server on a test loop, spoken to over real sockets from a client thread. */
#include "http.h"
#include "http_router.h"
#include "http_tls.h"
#include "ingress.h"
#include "log.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <h2o.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- the loop side ---------------------------------------------------- */

typedef struct fixture fixture;
typedef void (*client_fn)(fixture *f);

struct fixture {
  uv_loop_t loop;
  http_server *srv;
  uint16_t port;
  uv_async_t client_done;
  client_fn client;
  int closed;      /* http_close's done ran */
  int close_early; /* a handler already called http_close */
  /* filled by handlers (loop thread) */
  int handled;
  int aborted;
  int respond_rc;
  http_responder *held;
  uv_timer_t timer;
  int timer_inited;
  int ticks;
  http_stats stats; /* the server's counters as the client finished */
  /* filled by the client thread */
  int ok;
  char note[8192];
};

static void on_closed(void *arg) {
  fixture *f = arg;
  f->closed = 1;
  if (f->held != NULL) {
    /* a responder the server aborted is still the handler's to finish */
    f->respond_rc = http_respond(f->held, 200, NULL, 0, "late", 4);
    f->held = NULL;
  }
}

static void on_client_done(uv_async_t *a) {
  fixture *f = a->data;
  uv_close((uv_handle_t *)a, NULL);
  if (f->timer_inited) uv_close((uv_handle_t *)&f->timer, NULL);
  if (f->close_early) return;
  http_get_stats(f->srv, &f->stats);
  http_close(f->srv, on_closed, f);
}

static void *client_main(void *arg) {
  fixture *f = arg;
  f->client(f);
  uv_async_send(&f->client_done);
  return NULL;
}

static void fixture_start(fixture *f, const http_options *opt) {
  memset(f, 0, sizeof(*f));
  ck_assert_int_eq(uv_loop_init(&f->loop), 0);
  char err[256];
  int rc = http_new(&f->loop, opt, &f->srv, err, sizeof(err));
  ck_assert_msg(rc == 0, "http_new: %s", err);
  f->port = http_bound_port(f->srv);
  ck_assert_int_ne(f->port, 0);
}

/* Runs client in a thread while the loop serves; closes the server after. */
static void fixture_run(fixture *f, client_fn client) {
  f->client = client;
  uv_async_init(&f->loop, &f->client_done, on_client_done);
  f->client_done.data = f;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, client_main, f), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  pthread_join(t, NULL);
  ck_assert_int_eq(uv_loop_close(&f->loop), 0);
  ck_assert_msg(f->closed, "http_close never called done");
  ck_assert_msg(f->ok, "client: %s", f->note);
}

static http_options default_opts(void) {
  http_options o;
  memset(&o, 0, sizeof(o));
  o.listen = "127.0.0.1:0";
  return o;
}

/* ---- the client side (raw sockets) ------------------------------------ */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int cl_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void cl_send(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

typedef struct response {
  int status;
  char head[4096];
  char *body;
  size_t body_len;
  size_t chunks; /* chunks seen in a chunked body */
} response;

/* A tiny buffered reader over the socket so one connection carries several responses. */
typedef struct reader {
  int fd;
  char buf[65536];
  size_t len;
} reader;

/* Reads more bytes; returns bytes read, 0 at end of file, -1 on error/timeout. */
static ssize_t rd_fill(reader *r) {
  if (r->len == sizeof(r->buf)) return -1;
  ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
  if (n > 0) r->len += (size_t)n;
  return n;
}

static void rd_consume(reader *r, size_t n) {
  memmove(r->buf, r->buf + n, r->len - n);
  r->len -= n;
}

/* Reads "...\r\n" into line (without CRLF). Returns 0 or -1. */
static int rd_line(reader *r, char *line, size_t cap) {
  for (;;) {
    char *crlf = memmem(r->buf, r->len, "\r\n", 2);
    if (crlf != NULL) {
      size_t l = (size_t)(crlf - r->buf);
      if (l >= cap) return -1;
      memcpy(line, r->buf, l);
      line[l] = '\0';
      rd_consume(r, l + 2);
      return 0;
    }
    if (rd_fill(r) <= 0) return -1;
  }
}

static int rd_exact(reader *r, char *dst, size_t n) {
  while (n > 0) {
    if (r->len == 0 && rd_fill(r) <= 0) return -1;
    size_t k = r->len < n ? r->len : n;
    memcpy(dst, r->buf, k);
    rd_consume(r, k);
    dst += k;
    n -= k;
  }
  return 0;
}

static const char *find_head(const response *res, const char *name) {
  static char val[512];
  size_t nl = strlen(name);
  const char *p = res->head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t l = strcspn(v, "\r\n");
      if (l >= sizeof(val)) l = sizeof(val) - 1;
      memcpy(val, v, l);
      val[l] = '\0';
      return val;
    }
  }
  return NULL;
}

/* Reads one response. on_chunk (may be NULL) sees each chunk as it arrives.
 * Returns 0, or -1 if the connection ended or timed out first. */
static int rd_response(reader *r, response *res, void (*on_chunk)(const char *, size_t, void *), void *arg) {
  memset(res, 0, sizeof(*res));
  size_t hl = 0;
  char line[4096];
  for (;;) {
    if (rd_line(r, line, sizeof(line)) != 0) return -1;
    if (line[0] == '\0') break;
    size_t l = strlen(line);
    if (hl + l + 2 < sizeof(res->head)) {
      memcpy(res->head + hl, line, l);
      memcpy(res->head + hl + l, "\r\n", 3);
      hl += l + 2;
    }
  }
  if (sscanf(res->head, "HTTP/1.%*d %d", &res->status) != 1) return -1;
  const char *te = find_head(res, "transfer-encoding");
  const char *cl = find_head(res, "content-length");
  if (te != NULL && strcasecmp(te, "chunked") == 0) {
    for (;;) {
      if (rd_line(r, line, sizeof(line)) != 0) return -1;
      size_t n = strtoul(line, NULL, 16);
      if (n == 0) {
        rd_line(r, line, sizeof(line));
        return 0;
      }
      res->body = realloc(res->body, res->body_len + n + 1);
      if (rd_exact(r, res->body + res->body_len, n) != 0) return -1;
      if (on_chunk != NULL) on_chunk(res->body + res->body_len, n, arg);
      res->body_len += n;
      res->body[res->body_len] = '\0';
      res->chunks++;
      if (rd_line(r, line, sizeof(line)) != 0) return -1;
    }
  }
  size_t n = cl != NULL ? strtoul(cl, NULL, 10) : 0;
  res->body = malloc(n + 1);
  if (rd_exact(r, res->body, n) != 0) return -1;
  res->body[n] = '\0';
  res->body_len = n;
  return 0;
}

/* True when the peer closes the connection within ms milliseconds. */
static int rd_eof_within(reader *r, double ms) {
  double start = now_ms();
  while (now_ms() - start < ms) {
    ssize_t n = rd_fill(r);
    if (n == 0) return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1; /* reset */
  }
  return 0;
}

#define CHECK(f, cond, ...)                                 \
  do {                                                      \
    if (!(cond)) {                                          \
      snprintf((f)->note, sizeof((f)->note), __VA_ARGS__); \
      return;                                               \
    }                                                       \
  } while (0)

/* ---- handlers ----------------------------------------------------------- */

static void h_channel(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  f->handled++;
  http_stats st;
  http_get_stats(f->srv, &st);
  f->ticks = (int)st.active_connections;
  char x[64] = "";
  int xl = http_request_query(req, "x", x, sizeof(x));
  json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "id", http_request_param(req, "id"), "x", xl >= 0 ? x : "-",
                        "remote", req->remote_addr, "n", f->handled);
  http_respond_json(res, 200, j);
}

static void h_echo(void *arg, const http_request *req, http_responder *res) {
  const char *t = http_request_header(req, "X-Test");
  json_t *j = json_pack("{s:s, s:s, s:s, s:s%, s:s}", "channel", http_request_param(req, "channel"), "method",
                        req->method, "path", req->path, "body", req->body, req->body_len, "x-test",
                        t != NULL ? t : "");
  http_header extra[] = {{"X-Served-By", "test", 0}};
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  http_respond(res, 200, extra, 1, s, strlen(s));
  free(s);
}

static void h_health(void *arg, const http_request *req, http_responder *res) {
  http_respond_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_weird(void *arg, const http_request *req, http_responder *res) {
  if (strcmp(req->method, "GET") == 0) {
    http_header h[] = {{"X-Evil", "a\r\nSet-Cookie: x=1", 0}, {"X-Fine", "yes", 0}, {"Content-Length", "999", 0}};
    http_respond(res, 200, h, 3, "ok", 2);
  } else {
    http_respond_error(res, 400, "bad_input", "caf\xe9 is not UTF-8", "name");
  }
}

/* ---- tests: routing, keep-alive ---------------------------------------- */

static void client_routing(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  char line[512];
  const char *req1 = "GET /api/v1/channels/abc%20d?x=a+b%21&y=2 HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req1, strlen(req1));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "no response to the first request");
  CHECK(f, res.status == 200, "status %d", res.status);
  CHECK(f, strstr(res.body, "\"id\":\"abc d\"") != NULL, "param not decoded: %s", res.body);
  CHECK(f, strstr(res.body, "\"x\":\"a b!\"") != NULL, "query not decoded: %s", res.body);
  CHECK(f, strstr(res.body, "\"remote\":\"127.0.0.1\"") != NULL, "remote address: %s", res.body);
  free(res.body);

  const char *req2 = "POST /hooks/demo/messages HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\nContent-Length: 5\r\n\r\nhello";
  cl_send(r.fd, req2, strlen(req2));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "no response on the same connection");
  CHECK(f, res.status == 200, "hook status %d", res.status);
  CHECK(f, strstr(res.body, "\"channel\":\"demo\"") != NULL && strstr(res.body, "\"body\":\"hello\"") != NULL &&
               strstr(res.body, "\"x-test\":\"yes\"") != NULL && strstr(res.body, "\"method\":\"POST\"") != NULL,
        "hook echo: %s", res.body);
  const char *served = find_head(&res, "x-served-by");
  CHECK(f, served != NULL && strcmp(served, "test") == 0, "extra header missing: %s", res.head);
  free(res.body);

  const char *req3 = "PUT /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
  cl_send(r.fd, req3, strlen(req3));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "prefix route without a tail");
  free(res.body);

  const char *req4 = "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req4, strlen(req4));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 404, "404 expected");
  CHECK(f, strstr(res.body, "{\"error\":{\"code\":\"not_found\"") != NULL, "404 body: %s", res.body);
  const char *ct = find_head(&res, "content-type");
  CHECK(f, ct != NULL && strcmp(ct, "application/json") == 0, "404 content type");
  free(res.body);

  const char *req5 = "DELETE /api/v1/channels/7 HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req5, strlen(req5));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 405, "405 expected");
  CHECK(f, strstr(res.body, "method_not_allowed") != NULL, "405 body: %s", res.body);
  const char *allow = find_head(&res, "allow");
  CHECK(f, allow != NULL && strcmp(allow, "GET, HEAD") == 0, "405 allow header: %s", allow ? allow : "(none)");
  free(res.body);

  const char *req7 = "GET /weird HTTP/1.1\r\nHost: t\r\n\r\nPOST /weird HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
  cl_send(r.fd, req7, strlen(req7));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "weird headers");
  CHECK(f, find_head(&res, "set-cookie") == NULL && find_head(&res, "x-evil") == NULL, "header injected: %s", res.head);
  CHECK(f, find_head(&res, "x-fine") != NULL && strcmp(res.body, "ok") == 0, "good header or body lost");
  free(res.body);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 400, "bad utf-8 error");
  CHECK(f, strstr(res.body, "{\"error\":{\"code\":\"internal\"") != NULL, "error body %s", res.body);
  free(res.body);

  const char *req8 = "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req8, strlen(req8));
  CHECK(f, rd_line(&r, line, sizeof(line)) == 0 && strstr(line, " 200 ") != NULL, "HEAD status: %s", line);
  size_t clen = 0;
  while (rd_line(&r, line, sizeof(line)) == 0 && line[0] != '\0')
    if (strncasecmp(line, "content-length:", 15) == 0) clen = strtoul(line + 15, NULL, 10);
  CHECK(f, clen == 15, "HEAD content-length %zu", clen);

  const char *req6 = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req6, strlen(req6));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "healthz");
  CHECK(f, strcmp(res.body, "{\"status\":\"ok\"}") == 0, "healthz body %s", res.body);
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

START_TEST(routes_capture_params_and_answer_404_405_on_one_keepalive_connection) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  ck_assert_int_eq(http_route(f.srv, "GET", "/api/v1/channels/{id}", h_channel, &f), 0);
  ck_assert_int_eq(http_route(f.srv, NULL, "/hooks/{channel}/*", h_echo, &f), 0);
  ck_assert_int_eq(http_route(f.srv, "GET", "/healthz", h_health, &f), 0);
  ck_assert_int_eq(http_route(f.srv, NULL, "/weird", h_weird, &f), 0);
  fixture_run(&f, client_routing);
  ck_assert_int_eq(f.ticks, 1); /* active connections seen while handling */
}
END_TEST

/* The ingress with no channel running: "soon" is about to be (starting,
 * restarting or stopping), anything else does not exist or is off. */
static sb_channel *no_channel(void *ctx, const char *name) {
  (void)ctx;
  (void)name;
  return NULL;
}

static int soon_pending(void *ctx, const char *name) {
  (void)ctx;
  return strcmp(name, "soon") == 0;
}

static void client_ingress(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "POST /hooks/soon/messages HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
                    "POST /hooks/gone/messages HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 503, "a channel about to run: %d", res.status);
  CHECK(f, strstr(res.body, "deliver it again") != NULL, "body %s", res.body);
  CHECK(f, strcasestr(res.head, "retry-after: 5") != NULL, "a 503 says when to come back: %s", res.head);
  free(res.body);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 404, "no such channel: %d", res.status);
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

/* A webhook for a channel that is restarting (a reload recreates it) or
 * whose daemon is stopping is answered 503, which senders deliver again;
 * only one that does not exist or is off gets 404. */
START_TEST(webhooks_for_a_channel_about_to_run_get_503_not_404) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  ingress *in = NULL;
  ck_assert_int_eq(ingress_new(f.srv, no_channel, NULL, &in), 0);
  ingress_on_pending(in, soon_pending);
  fixture_run(&f, client_ingress);
  ingress_free(in);
}
END_TEST

static void client_two_requests(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  /* both requests written at once: pipelined on one connection */
  const char *reqs = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, reqs, strlen(reqs));
  for (int i = 0; i < 2; i++) {
    CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "response %d", i);
    const char *conn = find_head(&res, "connection");
    CHECK(f, conn == NULL || strcasecmp(conn, "close") != 0, "server closed keep-alive");
    CHECK(f, find_head(&res, "server") == NULL, "the software is named in a Server header");
    CHECK(f, find_head(&res, "date") != NULL, "no Date header");
    free(res.body);
  }
  close(r.fd);
  f->ok = 1;
}

START_TEST(keepalive_serves_two_requests_on_one_connection) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  /* the loop thread keeps a spare request buffer for each busy connection */
  ck_assert_uint_ge(h2o_socket_buffer_prototype.allocator.max, 256);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  fixture_run(&f, client_two_requests);
  ck_assert_uint_eq(f.stats.connections_total, 1);
  ck_assert_uint_eq(f.stats.responses_by_class[2], 2);
}
END_TEST

/* ---- tests: body limit -------------------------------------------------- */

/* Sends a chunked POST of n chunks of 512 bytes of body (at least 512 of
 * them), ended with the last chunk when last is set. */
static void send_chunked(int fd, const char *body, int n, int last) {
  const char *head = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  cl_send(fd, head, strlen(head));
  for (int i = 0; i < n; i++) {
    cl_send(fd, "200\r\n", 5);
    cl_send(fd, body, 512);
    cl_send(fd, "\r\n", 2);
  }
  if (last) cl_send(fd, "0\r\n\r\n", 5);
}

static void client_too_large(fixture *f) {
  response res;
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  char body[1024];
  memset(body, 'a', sizeof(body));
  const char *head = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n";
  cl_send(r.fd, head, strlen(head));
  cl_send(r.fd, body, sizeof(body));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "a body at the limit is accepted");
  free(res.body);

  /* a length over the limit is refused before the body is read */
  head = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 1026\r\n\r\n";
  cl_send(r.fd, head, strlen(head));
  cl_send(r.fd, body, 100);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "no 413 response");
  CHECK(f, res.status == 413, "status %d", res.status);
  CHECK(f, strstr(res.body, "{\"error\":{\"code\":\"payload_too_large\"") != NULL, "413 body: %s", res.body);
  const char *ct = find_head(&res, "content-type");
  CHECK(f, ct != NULL && strcmp(ct, "application/json") == 0, "413 content type %s", ct ? ct : "(none)");
  free(res.body);
  close(r.fd);

  /* one byte over (libh2o's own limit is one more: http_new) */
  r.fd = cl_connect(f->port);
  r.len = 0;
  head = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n";
  cl_send(r.fd, head, strlen(head));
  cl_send(r.fd, body, sizeof(body));
  cl_send(r.fd, "a", 1);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 413, "one byte over: %d", res.status);
  CHECK(f, strstr(res.body, "{\"error\":{\"code\":\"payload_too_large\"") != NULL, "413 body: %s", res.body);
  free(res.body);
  close(r.fd);

  /* chunked, exactly the limit: accepted, as with a length */
  r.fd = cl_connect(f->port);
  r.len = 0;
  send_chunked(r.fd, body, 2, 1);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "chunked at the limit: %d", res.status);
  free(res.body);
  close(r.fd);

  /* chunked bodies are held to the same limit */
  r.fd = cl_connect(f->port);
  r.len = 0;
  send_chunked(r.fd, body, 3, 0);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 413, "chunked over limit: %d", res.status);
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

START_TEST(body_over_the_limit_gets_413_json_error) {
  fixture f;
  http_options o = default_opts();
  o.body_limit = 1024;
  fixture_start(&f, &o);
  http_route(f.srv, NULL, "/hooks/{channel}/*", h_echo, &f);
  fixture_run(&f, client_too_large);
  ck_assert_uint_eq(f.stats.responses_413, 3);
  ck_assert_uint_eq(f.stats.responses_by_class[4], 3);
}
END_TEST

/* ---- tests: malformed input ------------------------------------------- */

static void client_malformed(fixture *f) {
  response res;
  /* a request line that is not HTTP: 400 and the connection ends */
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  cl_send(r.fd, "HELLO THERE\r\n\r\n", 15);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 400, "garbage: %d", res.status);
  free(res.body);
  CHECK(f, rd_eof_within(&r, 2000), "connection kept after garbage");
  close(r.fd);

  /* a broken Content-Length: 400 in the API's error shape */
  r.fd = cl_connect(f->port);
  r.len = 0;
  const char *req = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 12abc\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 400, "bad length: %d", res.status);
  CHECK(f, strstr(res.body, "{\"error\":{\"code\":\"bad_request\"") != NULL, "400 body %s", res.body);
  free(res.body);
  close(r.fd);

  /* methods are case-sensitive: "get" is not GET */
  r.fd = cl_connect(f->port);
  r.len = 0;
  req = "get /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 405, "lower-case method: %d", res.status);
  free(res.body);
  close(r.fd);

  /* an expectation the server does not meet: 417, with its reason phrase */
  r.fd = cl_connect(f->port);
  r.len = 0;
  req = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\nhi";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 417, "unknown Expect: %d", res.status);
  const char *line417 = "HTTP/1.1 417 Expectation Failed\r\n";
  CHECK(f, strncmp(res.head, line417, strlen(line417)) == 0, "417's status line: %.40s", res.head);
  free(res.body);
  close(r.fd);

    /* broken chunked encoding */
  r.fd = cl_connect(f->port);
  r.len = 0;
  req = "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 400, "bad chunk: %d", res.status);
  free(res.body);
  close(r.fd);

  /* headers larger than libh2o's request limit */
  r.fd = cl_connect(f->port);
  r.len = 0;
  size_t bigsz = 500000;
  char *big = malloc(bigsz);
  int n = snprintf(big, bigsz, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ");
  memset(big + n, 'x', bigsz - (size_t)n - 5);
  memcpy(big + bigsz - 5, "\r\n\r\n", 5);
  cl_send(r.fd, big, bigsz);
  free(big);
  /* a 400, or a reset when the server closes on unread bytes */
  int got = rd_response(&r, &res, NULL, NULL);
  CHECK(f, got != 0 || res.status == 400, "oversized headers: %d", res.status);
  free(res.body);
  close(r.fd);

  /* the server is still fine */
  r.fd = cl_connect(f->port);
  r.len = 0;
  req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "healthz after bad input");
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

START_TEST(malformed_requests_get_400_and_do_not_hurt_the_server) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  http_route(f.srv, NULL, "/hooks/{channel}/*", h_echo, &f);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  fixture_run(&f, client_malformed);
}
END_TEST

/* One request on its own connection: its status (0 when the connection
 * ended with no answer), and whether the server then closed it. */
static int one_shot(fixture *f, const char *req, char *body, size_t cap, int *closed) {
  reader r = {.fd = cl_connect(f->port)};
  if (r.fd < 0) return -1;
  cl_send(r.fd, req, strlen(req));
  response res = {0};
  int status = rd_response(&r, &res, NULL, NULL) == 0 ? res.status : 0;
  if (body != NULL) snprintf(body, cap, "%s", res.body != NULL ? res.body : "");
  free(res.body);
  *closed = rd_eof_within(&r, 2000);
  close(r.fd);
  return status;
}

static void client_framing(fixture *f) {
  static const struct {
    const char *what, *req;
  } refused[] = {
      {"two different lengths", "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                "content-length: 11\r\n\r\nhello world"},
      {"a length beside chunked", "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"chunked beside a length", "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nTRANSFER-ENCODING: chunked\r\n"
                                  "Content-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"two transfer codings", "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                               "Transfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"a folded header", "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nX-Test: a\r\n Content-Length: 5\r\n"
                          "Content-Length: 0\r\n\r\nhello"},
      {"a request line that is not HTTP", "HELLO THERE\r\n\r\n"},
  };
  char body[512];
  int closed = 0;
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    int status = one_shot(f, refused[i].req, NULL, 0, &closed);
    CHECK(f, status == 400 && closed, "%s: %d, closed %d", refused[i].what, status, closed);
  }
  /* the same length twice says one thing: served */
  int status = one_shot(f,
                        "POST /hooks/demo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n"
                        "Connection: close\r\n\r\nhello",
                        body, sizeof(body), &closed);
  CHECK(f, status == 200 && strstr(body, "\"body\":\"hello\"") != NULL, "same length twice: %d %s", status, body);
  /* a blank line alone is closed without an answer */
  status = one_shot(f, "\r\n\r\n", NULL, 0, &closed);
  CHECK(f, status == 0 && closed, "blank lines: %d", status);
  f->ok = 1;
}

START_TEST(ambiguous_body_framing_is_refused_and_every_400_is_counted) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  http_route(f.srv, NULL, "/hooks/{channel}/*", h_echo, &f);
  fixture_run(&f, client_framing);
  ck_assert_uint_eq(f.stats.responses_by_class[4], 6);
  ck_assert_uint_eq(f.stats.responses_by_class[2], 1);
}
END_TEST

/* ---- tests: asynchronous responses ------------------------------------- */

static void later_respond(uv_timer_t *t) {
  fixture *f = t->data;
  http_responder *r = f->held;
  f->held = NULL;
  f->respond_rc = http_respond_error(r, 202, "queued", "answered later", "text");
}

static void h_later(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  f->handled++;
  f->held = res;
  uv_timer_start(&f->timer, later_respond, 50, 0);
}

static void client_async(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  double start = now_ms();
  const char *req = "GET /later HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "no async response");
  double took = now_ms() - start;
  CHECK(f, res.status == 202, "status %d", res.status);
  CHECK(f, took >= 45, "answered after %.1f ms, before the timer", took);
  CHECK(f, strcmp(res.body, "{\"error\":{\"code\":\"queued\",\"message\":\"answered later\",\"field\":\"text\"}}") == 0,
        "body %s", res.body);
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

static void fixture_timer(fixture *f) {
  uv_timer_init(&f->loop, &f->timer);
  f->timer.data = f;
  f->timer_inited = 1;
}

/* Serves GET /later (h_later: answered 50 ms after) to client. */
static void serve_later(fixture *f, client_fn client) {
  http_options o = default_opts();
  fixture_start(f, &o);
  fixture_timer(f);
  http_route(f->srv, "GET", "/later", h_later, f);
  fixture_run(f, client);
}

START_TEST(handler_responds_asynchronously_after_a_timer) {
  fixture f;
  serve_later(&f, client_async);
  ck_assert_int_eq(f.respond_rc, 0);
}
END_TEST

static void client_disconnects(fixture *f) {
  int fd = cl_connect(f->port);
  CHECK(f, fd >= 0, "connect failed");
  const char *req = "GET /later HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(fd, req, strlen(req));
  usleep(10 * 1000);
  close(fd);
  usleep(200 * 1000); /* the timer fires and responds to nobody */
  f->ok = 1;
}

START_TEST(client_gone_before_async_response_is_harmless) {
  fixture f;
  serve_later(&f, client_disconnects);
  ck_assert_int_eq(f.handled, 1);
  ck_assert_ptr_null(f.held); /* responded (to nobody); ASan checks nothing leaked */
}
END_TEST

/* ---- tests: streams ---------------------------------------------------- */

static void stream_tick(uv_timer_t *t) {
  fixture *f = t->data;
  char line[32];
  int n = snprintf(line, sizeof(line), "data: %d\n\n", f->ticks);
  http_stream_write(f->held, line, (size_t)n);
  if (++f->ticks == 5) {
    uv_timer_stop(t);
    http_stream_end(f->held);
    f->held = NULL;
  }
}

static void on_stream_closed(void *arg) { ((fixture *)arg)->aborted++; }

static void h_stream(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  http_header h[] = {{"Content-Type", "text/event-stream", 0}, {"Cache-Control", "no-cache", 0}};
  ck_assert_int_eq(http_stream_start(res, 200, h, 2, on_stream_closed, f), 0);
  /* three writes at once: one goes out, the rest wait in the buffer */
  http_stream_write(res, ": hello\n\n", 9);
  http_stream_write(res, ": a\n\n", 5);
  http_stream_write(res, ": b\n\n", 5);
  f->held = res;
  uv_timer_start(&f->timer, stream_tick, 30, 30);
}

typedef struct chunk_log {
  int n;
  double at[32];
} chunk_log;

static void note_chunk(const char *p, size_t n, void *arg) {
  chunk_log *cl = arg;
  if (cl->n < 32) cl->at[cl->n++] = now_ms();
}

static void client_stream(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  chunk_log log = {0};
  const char *req = "GET /events HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, note_chunk, &log) == 0, "stream did not end cleanly");
  CHECK(f, res.status == 200, "status %d", res.status);
  const char *ct = find_head(&res, "content-type");
  CHECK(f, ct != NULL && strcmp(ct, "text/event-stream") == 0, "content type");
  CHECK(f, strcmp(res.body, ": hello\n\n: a\n\n: b\n\ndata: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n") == 0,
        "stream body %s", res.body);
  CHECK(f, res.chunks >= 6, "only %zu chunks: the ticks were not sent one by one", res.chunks);
  CHECK(f, log.at[log.n - 1] - log.at[0] >= 90, "chunks came all at once");
  free(res.body);
  /* the connection stays usable after the stream */
  const char *req2 = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req2, strlen(req2));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "request after the stream");
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

START_TEST(streamed_response_arrives_chunk_by_chunk) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  fixture_timer(&f);
  http_route(f.srv, "GET", "/events", h_stream, &f);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  fixture_run(&f, client_stream);
  ck_assert_int_eq(f.aborted, 0);
}
END_TEST

static void keepalive_tick(uv_timer_t *t) {
  fixture *f = t->data;
  if (f->held == NULL) return;
  if (http_stream_write(f->held, ": ping\n\n", 8) == -EPIPE) {
    http_stream_end(f->held);
    f->held = NULL;
    uv_timer_stop(t);
  }
}

static void h_endless(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  http_stream_start(res, 200, NULL, 0, on_stream_closed, f);
  f->held = res;
  uv_timer_start(&f->timer, keepalive_tick, 10, 10);
}

static void client_leaves_stream(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  char line[256];
  const char *req = "GET /endless HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_line(&r, line, sizeof(line)) == 0 && strstr(line, "200") != NULL, "stream status line");
  close(r.fd);
  usleep(300 * 1000); /* keep-alives hit the closed socket */
  f->ok = 1;
}

START_TEST(stream_notices_a_client_that_left) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  fixture_timer(&f);
  http_route(f.srv, "GET", "/endless", h_endless, &f);
  fixture_run(&f, client_leaves_stream);
  ck_assert_int_eq(f.aborted, 1);
  ck_assert_ptr_null(f.held);
}
END_TEST

static void h_bulk(void *arg, const http_request *req, http_responder *res) {
  char block[16384];
  ck_assert_int_eq(http_stream_start(res, 200, NULL, 0, NULL, NULL), 0);
  for (int i = 0; i < 64; i++) {
    memset(block, 'a' + i % 26, sizeof(block));
    ck_assert_int_eq(http_stream_write(res, block, sizeof(block)), 0);
  }
  ck_assert_uint_gt(http_stream_pending(res), 0);
  http_stream_end(res);
}

static void client_bulk(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /bulk HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  usleep(100 * 1000); /* let the server's socket buffer fill up */
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "bulk stream incomplete");
  CHECK(f, res.body_len == 64 * 16384, "bulk length %zu", res.body_len);
  for (size_t i = 0; i < 64; i++)
    CHECK(f, res.body[i * 16384] == (char)('a' + i % 26) && res.body[i * 16384 + 16383] == (char)('a' + i % 26),
          "block %zu out of order", i);
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

START_TEST(stream_buffers_writes_made_while_one_is_in_flight) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/bulk", h_bulk, &f);
  fixture_run(&f, client_bulk);
}
END_TEST

static void client_pipelined_async(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *reqs = "GET /later HTTP/1.1\r\nHost: t\r\n\r\nGET /later HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, reqs, strlen(reqs));
  for (int i = 0; i < 2; i++) {
    CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 202, "pipelined async %d", i);
    free(res.body);
  }
  close(r.fd);
  f->ok = 1;
}

START_TEST(pipelined_requests_wait_for_an_async_answer_in_order) {
  fixture f;
  serve_later(&f, client_pipelined_async);
  ck_assert_int_eq(f.handled, 2);
}
END_TEST

/* A connection is read and written without libuv's stop and start between
 * requests (core/http_io.c). These cover the ways off that path: bytes that
 * come while the previous request is answered, an end of file meanwhile, and
 * an answer the socket cannot take at once. */

static void client_sends_before_the_answer(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /later HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  usleep(20 * 1000); /* the first is being answered (50 ms) when the second comes */
  cl_send(r.fd, req, strlen(req));
  for (int i = 0; i < 2; i++) {
    CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 202, "answer %d", i);
    free(res.body);
  }
  /* and the connection goes on as usual, a request at a time */
  for (int i = 0; i < 3; i++) {
    cl_send(r.fd, req, strlen(req));
    CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 202, "later answer %d", i);
    free(res.body);
  }
  close(r.fd);
  f->ok = 1;
}

START_TEST(a_request_sent_while_the_previous_is_answered_is_answered_after_it) {
  fixture f;
  serve_later(&f, client_sends_before_the_answer);
  ck_assert_int_eq(f.handled, 5);
}
END_TEST

static void client_half_closes(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /later HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  usleep(10 * 1000);
  shutdown(r.fd, SHUT_WR); /* no more requests; the answer is still wanted */
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 202, "no answer after the half close");
  free(res.body);
  CHECK(f, rd_eof_within(&r, 2000), "the server kept the connection open after the client's end");
  close(r.fd);
  f->ok = 1;
}

START_TEST(a_client_that_ends_its_side_during_a_request_gets_the_answer_then_the_close) {
  fixture f;
  serve_later(&f, client_half_closes);
  ck_assert_int_eq(f.handled, 1);
}
END_TEST

#define BIG_ANSWER ((size_t)8 << 20)

static void h_big(void *arg, const http_request *req, http_responder *res) {
  (void)arg, (void)req;
  char *body = malloc(BIG_ANSWER);
  ck_assert_ptr_nonnull(body);
  for (size_t i = 0; i < BIG_ANSWER; i++) body[i] = (char)('a' + (i / 4096) % 26);
  ck_assert_int_eq(http_respond(res, 200, NULL, 0, body, BIG_ANSWER), 0);
  free(body);
}

static void client_big(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
  for (int round = 0; round < 2; round++) {
    cl_send(r.fd, req, strlen(req));
    usleep(100 * 1000); /* the socket takes part of it; the rest waits for the client */
    CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "no answer in round %d", round);
    CHECK(f, res.body_len == BIG_ANSWER, "%zu bytes in round %d", res.body_len, round);
    size_t bad = 0;
    for (size_t i = 0; i < res.body_len; i++) bad += res.body[i] != (char)('a' + (i / 4096) % 26);
    free(res.body);
    CHECK(f, bad == 0, "%zu bytes out of place in round %d", bad, round);
  }
  close(r.fd);
  f->ok = 1;
}

START_TEST(an_answer_larger_than_the_socket_takes_arrives_whole_and_the_connection_goes_on) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/big", h_big, &f);
  fixture_run(&f, client_big);
}
END_TEST

/* ---- tests: timeouts and shutdown -------------------------------------- */

static void client_idle_timeout(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "first response");
  free(res.body);
  double start = now_ms();
  CHECK(f, rd_eof_within(&r, 3000), "idle keep-alive connection was not closed");
  double took = now_ms() - start;
  CHECK(f, took >= 250 && took < 1500, "idle connection closed after %.0f ms", took);
  close(r.fd);
  f->ok = 1;
}

START_TEST(idle_keepalive_connection_is_closed_after_the_idle_timeout) {
  fixture f;
  http_options o = default_opts();
  o.idle_timeout_ms = 400;
  o.header_timeout_ms = 5000;
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  fixture_run(&f, client_idle_timeout);
}
END_TEST

static void client_partial(fixture *f) {
  /* idle longer than the header timeout is fine: only a started request is timed */
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  usleep(500 * 1000);
  const char *whole = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, whole, strlen(whole));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "request after an idle wait");
  free(res.body);
  /* a request sent in two parts inside the timeout is fine too */
  cl_send(r.fd, whole, 10);
  usleep(80 * 1000);
  cl_send(r.fd, whole + 10, strlen(whole) - 10);
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "request in two parts");
  free(res.body);
  close(r.fd);

  r.fd = cl_connect(f->port);
  r.len = 0;
  CHECK(f, r.fd >= 0, "connect failed");
  const char *part = "GET /healthz HTTP/1.1\r\nHost: t\r\n";
  double start = now_ms();
  cl_send(r.fd, part, strlen(part));
  CHECK(f, rd_eof_within(&r, 3000), "partial request was not cut off");
  double took = now_ms() - start;
  CHECK(f, took >= 190 && took < 2000, "cut off after %.0f ms", took);
  close(r.fd);
  f->ok = 1;
}

START_TEST(partial_request_is_closed_after_the_header_timeout_but_idle_is_not) {
  fixture f;
  http_options o = default_opts();
  o.header_timeout_ms = 200;
  o.idle_timeout_ms = 30000; /* the cut-off comes from the header timeout alone */
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  fixture_run(&f, client_partial);
}
END_TEST

static void h_later_then_close(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  h_later(arg, req, res);
  f->close_early = 1;
  http_close(f->srv, on_closed, f);
}

static void client_graceful(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /later HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "in-flight request lost on close");
  CHECK(f, res.status == 202, "status %d", res.status);
  const char *conn = find_head(&res, "connection");
  CHECK(f, conn != NULL && strcasecmp(conn, "close") == 0, "response during shutdown keeps the connection");
  free(res.body);
  CHECK(f, rd_eof_within(&r, 2000), "connection not closed after the response");
  close(r.fd);
  int again = cl_connect(f->port);
  CHECK(f, again < 0, "server still accepts after http_close");
  f->ok = 1;
}

START_TEST(close_lets_an_in_flight_request_finish) {
  fixture f;
  http_options o = default_opts();
  fixture_start(&f, &o);
  fixture_timer(&f);
  http_route(f.srv, "GET", "/later", h_later_then_close, &f);
  fixture_run(&f, client_graceful);
  ck_assert_int_eq(f.respond_rc, 0);
}
END_TEST

static void on_abort(void *arg) {
  fixture *f = arg;
  f->aborted++;
  f->ticks = 10 + http_responder_alive(f->held); /* 10: not alive any more */
}

static void h_never(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  f->held = res;
  ck_assert_int_eq(http_responder_alive(res), 1);
  http_responder_on_abort(res, on_abort, f);
  f->close_early = 1;
  http_close(f->srv, on_closed, f);
}

static void client_stuck(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /never HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0, "no response from the deadline");
  CHECK(f, res.status == 503, "status %d", res.status);
  CHECK(f, strstr(res.body, "shutting_down") != NULL, "503 body %s", res.body);
  free(res.body);
  close(r.fd);
  f->ok = 1;
}

START_TEST(close_deadline_aborts_a_request_that_never_finishes) {
  fixture f;
  http_options o = default_opts();
  o.shutdown_timeout_ms = 100;
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/never", h_never, &f);
  fixture_run(&f, client_stuck);
  ck_assert_int_eq(f.aborted, 1);
  ck_assert_int_eq(f.ticks, 10);
  ck_assert_int_eq(f.respond_rc, -EPIPE); /* the late answer was a harmless no-op */
}
END_TEST

static void client_idle(fixture *f) {
  reader r = {.fd = cl_connect(f->port)};
  CHECK(f, r.fd >= 0, "connect failed");
  response res;
  const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cl_send(r.fd, req, strlen(req));
  CHECK(f, rd_response(&r, &res, NULL, NULL) == 0 && res.status == 200, "first response");
  free(res.body);
  /* now idle on keep-alive: http_close must not wait for the idle timeout */
  f->ticks = 1; /* the client thread's "async sent" mark */
  uv_async_send(&f->client_done);
  CHECK(f, rd_eof_within(&r, 2000), "idle connection not closed by http_close");
  close(r.fd);
  f->ok = 1;
}

static void *client_idle_main(void *arg) {
  fixture *f = arg;
  client_idle(f);
  if (f->ticks == 0) uv_async_send(&f->client_done);
  return NULL;
}

START_TEST(close_ends_idle_keepalive_connections_at_once) {
  fixture f;
  http_options o = default_opts();
  o.idle_timeout_ms = 30000;
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  uv_async_init(&f.loop, &f.client_done, on_client_done);
  f.client_done.data = &f;
  pthread_t t;
  double start = now_ms();
  pthread_create(&t, NULL, client_idle_main, &f);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  pthread_join(t, NULL);
  ck_assert_int_eq(uv_loop_close(&f.loop), 0);
  ck_assert_msg(f.ok, "client: %s", f.note);
  ck_assert(now_ms() - start < 3000);
}
END_TEST

/* ---- tests: options and TLS -------------------------------------------- */

START_TEST(bad_listen_address_is_a_clear_error) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  http_server *s = NULL;
  char err[256];
  const char *bad[] = {"nonsense", "127.0.0.1:99999", "127.0.0.1:", "[::1:80", "example.com:80", ""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    http_options o = default_opts();
    o.listen = bad[i];
    ck_assert_int_eq(http_new(&loop, &o, &s, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "listen address") != NULL, "%s", err);
  }
  http_options o = default_opts();
  o.tls_cert_file = "/nonexistent/cert.pem";
  ck_assert_int_eq(http_new(&loop, &o, &s, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, "key") != NULL, "%s", err);
  o.tls_key_file = "/nonexistent/key.pem";
  ck_assert_int_eq(http_new(&loop, &o, &s, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, "/nonexistent/cert.pem") != NULL, "%s", err);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_NOWAIT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static void set_closed(void *arg) { *(int *)arg = 1; }

START_TEST(listens_on_ipv6_loopback) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  http_server *s = NULL;
  char err[256];
  http_options o = default_opts();
  o.listen = "[::1]:0";
  int rc = http_new(&loop, &o, &s, err, sizeof(err));
  if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
    uv_loop_close(&loop);
    return; /* no IPv6 on this machine */
  }
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_int_ne(http_bound_port(s), 0);
  int closed = 0;
  http_close(s, set_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(closed, 1);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static size_t curl_sink(char *p, size_t sz, size_t n, void *arg) {
  strncat((char *)arg, p, sz * n < 255 ? sz * n : 255);
  return sz * n;
}

static void client_tls(fixture *f) {
  CURL *c = curl_easy_init();
  char url[128], body[1024] = "";
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/healthz", f->port);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  CHECK(f, rc == CURLE_OK, "curl: %s", curl_easy_strerror(rc));
  CHECK(f, status == 200 && strcmp(body, "{\"status\":\"ok\"}") == 0, "tls response %ld %s", status, body);
  f->ok = 1;
}

/* Makes a self-signed pair in dir: key_name and cert_name, subject CN=cn. */
static void make_tls_pair(const char *dir, const char *key_name, const char *cert_name, const char *cn) {
  char cmd[1200];
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/%s -out %s/%s -days 1 -subj /CN=%s", dir, key_name,
           dir, cert_name, cn);
  char *out = NULL;
  ck_assert_msg(tu_run(cmd, &out) == 0, "openssl: %s", out);
  free(out);
}

START_TEST(serves_https_with_a_self_signed_certificate) {
  if (tu_run("command -v openssl", NULL) != 0) return; /* no openssl CLI: nothing to test with */
  char *dir = tu_tmpdir();
  make_tls_pair(dir, "key.pem", "cert.pem", "localhost");
  char cert[512], key[512];
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);

  /* a key that is not a key is refused with the file's name */
  uv_loop_t loop;
  uv_loop_init(&loop);
  http_server *s = NULL;
  char err[512];
  http_options bad = default_opts();
  bad.tls_cert_file = cert;
  bad.tls_key_file = cert;
  ck_assert_int_eq(http_new(&loop, &bad, &s, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, cert) != NULL, "%s", err);
  uv_loop_close(&loop);

  fixture f;
  http_options o = default_opts();
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  fixture_run(&f, client_tls);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

/* ---- a renewed certificate, picked up without a restart ---- */

static char g_renewed_cert[512], g_renewed_key[512];
static int g_reload_rc = 1;

static void h_reload_tls(void *arg, const http_request *req, http_responder *res) {
  fixture *f = arg;
  (void)req;
  char err[512];
  g_reload_rc = http_reload_tls(f->srv, g_renewed_cert, g_renewed_key, err, sizeof(err));
  http_respond(res, g_reload_rc == 0 ? 200 : 500, NULL, 0, g_reload_rc == 0 ? "ok" : err,
               strlen(g_reload_rc == 0 ? "ok" : err));
}

/* The subject of the certificate a fresh connection to path gets, into out. */
static int tls_subject(fixture *f, const char *path, char *out, size_t len) {
  CURL *c = curl_easy_init();
  char url[128], body[1024] = "";
  snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", f->port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
  curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  CURLcode rc = curl_easy_perform(c);
  out[0] = '\0';
  struct curl_certinfo *ci = NULL;
  if (rc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci != NULL && ci->num_of_certs > 0)
    for (struct curl_slist *l = ci->certinfo[0]; l != NULL; l = l->next)
      if (strncmp(l->data, "Subject:", 8) == 0) snprintf(out, len, "%s", l->data + 8);
  curl_easy_cleanup(c);
  return rc == CURLE_OK ? 0 : -1;
}

static void client_tls_reload(fixture *f) {
  char before[256], after[256];
  CHECK(f, tls_subject(f, "/healthz", before, sizeof(before)) == 0, "first request failed");
  CHECK(f, strstr(before, "CN = localhost") != NULL || strstr(before, "CN=localhost") != NULL, "first: %s", before);
  char ignored[256];
  CHECK(f, tls_subject(f, "/reload", ignored, sizeof(ignored)) == 0, "the reload request failed");
  CHECK(f, tls_subject(f, "/healthz", after, sizeof(after)) == 0, "request after the reload failed");
  CHECK(f, strstr(after, "renewed") != NULL, "after the reload: %s", after);
  f->ok = 1;
}

START_TEST(a_renewed_certificate_is_served_to_new_connections_without_a_restart) {
  if (tu_run("command -v openssl", NULL) != 0) return; /* no openssl CLI: nothing to test with */
  char *dir = tu_tmpdir();
  make_tls_pair(dir, "key.pem", "cert.pem", "localhost");
  make_tls_pair(dir, "new-key.pem", "new-cert.pem", "renewed");
  char cert[512], key[512];
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  snprintf(g_renewed_cert, sizeof(g_renewed_cert), "%s/new-cert.pem", dir);
  snprintf(g_renewed_key, sizeof(g_renewed_key), "%s/new-key.pem", dir);
  fixture f;
  http_options o = default_opts();
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  fixture_start(&f, &o);
  http_route(f.srv, "GET", "/healthz", h_health, &f);
  http_route(f.srv, "GET", "/reload", h_reload_tls, &f);
  fixture_run(&f, client_tls_reload);
  ck_assert_int_eq(g_reload_rc, 0);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(tls_check_accepts_a_matching_pair_and_names_the_file_it_refuses) {
  if (tu_run("command -v openssl", NULL) != 0) return; /* no openssl CLI: nothing to test with */
  char *dir = tu_tmpdir();
  make_tls_pair(dir, "key.pem", "cert.pem", "localhost");
  make_tls_pair(dir, "other.pem", "other-cert.pem", "other");
  char *garbage = tu_write_file(dir, "garbage.pem", "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n");
  char cert[512], key[512], other[512], missing[512], err[1024];
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  snprintf(other, sizeof(other), "%s/other.pem", dir);
  snprintf(missing, sizeof(missing), "%s/missing.pem", dir);

  err[0] = '\0';
  ck_assert_int_eq(http_tls_check(cert, key, err, sizeof(err)), 0);
  ck_assert_str_eq(err, "");

  ck_assert_int_eq(http_tls_check(missing, key, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, missing) != NULL && strstr(err, "certificate") != NULL &&
                    strstr(err, "No such file") != NULL,
                "%s", err);
  ck_assert_int_eq(http_tls_check(cert, missing, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, missing) != NULL && strstr(err, "key") != NULL, "%s", err);

  ck_assert_int_eq(http_tls_check(cert, garbage, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, garbage) != NULL && strstr(err, "key file") != NULL, "%s", err);
  ck_assert_int_eq(http_tls_check(garbage, key, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, garbage) != NULL && strstr(err, "certificate file") != NULL, "%s", err);

  ck_assert_int_eq(http_tls_check(cert, other, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, other) != NULL && strstr(err, cert) != NULL && strstr(err, "does not match") != NULL,
                "%s", err);

  ck_assert_int_eq(http_tls_check(cert, NULL, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, "key") != NULL, "%s", err);

  /* an encrypted key is refused by name, never by asking for its pass
   * phrase on the terminal (stdin closed here: a prompt would read EOF, or
   * block a daemon on a terminal) */
  char cmd[2048], *out = NULL, locked[600];
  snprintf(locked, sizeof(locked), "%s/locked.pem", dir);
  snprintf(cmd, sizeof(cmd), "openssl pkey -in %s -aes256 -passout pass:secret -out %s", key, locked);
  ck_assert_msg(tu_run(cmd, &out) == 0, "openssl: %s", out);
  free(out);
  ck_assert_int_eq(http_tls_check(cert, locked, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, locked) != NULL && strstr(err, "encrypted") != NULL, "%s", err);
  free(garbage);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

/* ---- tests: router and helpers (no server) ------------------------------ */

static void h_none(void *arg, const http_request *req, http_responder *res) {}

START_TEST(route_patterns_are_validated_and_matched_in_order) {
  http_routes t = {0};
  ck_assert_int_eq(http_routes_add(&t, "GET", "api/v1", h_none, NULL), -EINVAL);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/a//b", h_none, NULL), -EINVAL);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/a/*/b", h_none, NULL), -EINVAL);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/a/{}", h_none, NULL), -EINVAL);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/a/x{id}", h_none, NULL), -EINVAL);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/", h_none, (void *)1), 0);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/api/v1/channels/{id}", h_none, (void *)2), 0);
  ck_assert_int_eq(http_routes_add(&t, NULL, "/hooks/{channel}/*", h_none, (void *)3), 0);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/api/v1/{kind}/{id}/messages", h_none, (void *)4), 0);
  http_capture caps[HTTP_MAX_PARAMS];
  size_t n;
  int pm;
  const http_route_entry *r;
#define M(method, path) http_routes_match(&t, method, strlen(method), path, strlen(path), caps, &n, &pm)
  r = M("GET", "/");
  ck_assert(r != NULL && r->arg == (void *)1);
  r = M("GET", "/api/v1/channels/42");
  ck_assert(r != NULL && r->arg == (void *)2 && n == 1 && caps[0].len == 2 && memcmp(caps[0].value, "42", 2) == 0);
  ck_assert_ptr_null(M("GET", "/api/v1/channels/"));
  ck_assert_ptr_null(M("GET", "/api/v1/channels/42/"));
  ck_assert_ptr_null(M("GET", "/api/v1/channels"));
  r = M("post", "/hooks/demo");
  ck_assert(r != NULL && r->arg == (void *)3 && n == 1);
  r = M("PATCH", "/hooks/demo/a/b/c");
  ck_assert(r != NULL && r->arg == (void *)3 && caps[0].len == 4);
  ck_assert_ptr_null(M("GET", "/hooks/"));
  r = M("GET", "/api/v1/conversations/9/messages");
  ck_assert(r != NULL && r->arg == (void *)4 && n == 2 && strcmp(caps[0].name, "kind") == 0);
  ck_assert_ptr_null(M("POST", "/api/v1/channels/42"));
  ck_assert_int_eq(pm, 1);
  ck_assert_ptr_null(M("GET", "/nothing"));
  ck_assert_int_eq(pm, 0);
  ck_assert_int_eq(http_routes_add(&t, "PATCH", "/api/v1/channels/{x}", h_none, NULL), 0);
  ck_assert_int_eq(http_routes_add(&t, "GET", "/api/v1/{kind}/{id}", h_none, NULL), 0);
  char allow[64];
  http_routes_allowed(&t, "/api/v1/channels/42", 19, allow, sizeof(allow));
  ck_assert_str_eq(allow, "GET, HEAD, PATCH"); /* HEAD is served by the GET route */
  http_routes_allowed(&t, "/hooks/demo", 11, allow, sizeof(allow));
  ck_assert_str_eq(allow, ""); /* an any-method route allows everything: no 405 there */
  ck_assert_int_eq(http_routes_add(&t, "HEAD", "/api/v1/channels/{x}", h_none, NULL), 0);
  http_routes_allowed(&t, "/api/v1/channels/42", 19, allow, sizeof(allow));
  ck_assert_str_eq(allow, "GET, PATCH, HEAD"); /* a HEAD route of its own is listed once */
#undef M
  http_routes_free(&t);
}
END_TEST

START_TEST(query_parameters_and_headers_are_looked_up_decoded) {
  http_header hs[] = {{"content-type", "application/json", 16}, {"x-switchboard-signature", "sha256=ab", 9}};
  http_request req;
  memset(&req, 0, sizeof(req));
  req.query = "a=1&name=Kim+L%65e&empty=&flag&long=abcdefghij&a%62=x";
  req.headers = hs;
  req.nheaders = 2;
  char buf[8];
  ck_assert_int_eq(http_request_query(&req, "a", buf, sizeof(buf)), 1);
  ck_assert_str_eq(buf, "1");
  ck_assert_int_eq(http_request_query(&req, "name", buf, sizeof(buf)), 7);
  ck_assert_str_eq(buf, "Kim Lee");
  ck_assert_int_eq(http_request_query(&req, "empty", buf, sizeof(buf)), 0);
  ck_assert_int_eq(http_request_query(&req, "flag", buf, sizeof(buf)), 0);
  ck_assert_int_eq(http_request_query(&req, "long", buf, sizeof(buf)), -ENOSPC);
  ck_assert_int_eq(http_request_query(&req, "ab", buf, sizeof(buf)), 1);
  ck_assert_int_eq(http_request_query(&req, "missing", buf, sizeof(buf)), -ENOENT);
  ck_assert_str_eq(http_request_header(&req, "Content-Type"), "application/json");
  ck_assert_str_eq(http_request_header(&req, "X-Switchboard-Signature"), "sha256=ab");
  ck_assert_ptr_null(http_request_header(&req, "host"));
  char d[32];
  ck_assert_uint_eq(http_pct_decode(d, "a%2Fb%zz%4", 10, 0), 8);
  ck_assert_str_eq(d, "a/b%zz%4");
}
END_TEST

int main(void) {
  log_set_level(LOG_LEVEL_WARN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Suite *s = suite_create("http");
  TCase *unit = tcase_create("unit");
  tcase_add_test(unit, route_patterns_are_validated_and_matched_in_order);
  tcase_add_test(unit, query_parameters_and_headers_are_looked_up_decoded);
  tcase_add_test(unit, bad_listen_address_is_a_clear_error);
  tcase_add_test(unit, tls_check_accepts_a_matching_pair_and_names_the_file_it_refuses);
  suite_add_tcase(s, unit);
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, routes_capture_params_and_answer_404_405_on_one_keepalive_connection);
  tcase_add_test(tc, ambiguous_body_framing_is_refused_and_every_400_is_counted);
  tcase_add_test(tc, webhooks_for_a_channel_about_to_run_get_503_not_404);
  tcase_add_test(tc, keepalive_serves_two_requests_on_one_connection);
  tcase_add_test(tc, body_over_the_limit_gets_413_json_error);
  tcase_add_test(tc, malformed_requests_get_400_and_do_not_hurt_the_server);
  tcase_add_test(tc, handler_responds_asynchronously_after_a_timer);
  tcase_add_test(tc, client_gone_before_async_response_is_harmless);
  tcase_add_test(tc, streamed_response_arrives_chunk_by_chunk);
  tcase_add_test(tc, stream_notices_a_client_that_left);
  tcase_add_test(tc, stream_buffers_writes_made_while_one_is_in_flight);
  tcase_add_test(tc, pipelined_requests_wait_for_an_async_answer_in_order);
  tcase_add_test(tc, a_request_sent_while_the_previous_is_answered_is_answered_after_it);
  tcase_add_test(tc, a_client_that_ends_its_side_during_a_request_gets_the_answer_then_the_close);
  tcase_add_test(tc, an_answer_larger_than_the_socket_takes_arrives_whole_and_the_connection_goes_on);
  tcase_add_test(tc, partial_request_is_closed_after_the_header_timeout_but_idle_is_not);
  tcase_add_test(tc, idle_keepalive_connection_is_closed_after_the_idle_timeout);
  tcase_add_test(tc, close_lets_an_in_flight_request_finish);
  tcase_add_test(tc, close_deadline_aborts_a_request_that_never_finishes);
  tcase_add_test(tc, close_ends_idle_keepalive_connections_at_once);
  tcase_add_test(tc, listens_on_ipv6_loopback);
  tcase_add_test(tc, serves_https_with_a_self_signed_certificate);
  tcase_add_test(tc, a_renewed_certificate_is_served_to_new_connections_without_a_restart);
  suite_add_tcase(s, tc);
  int rc = tu_run_suite(s);
  curl_global_cleanup();
  return rc;
}
