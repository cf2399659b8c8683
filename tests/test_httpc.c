/* test_httpc.c — core/httpc.c against a tiny HTTP/1.1 server running on the
 * same libuv loop: methods, headers, binary bodies, status pass-through,
 * connect errors, timeouts, size limits, cancellation, close, concurrency and
 * re-entrant callbacks. */
#include "httpc.h"
#include "testutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- a minimal HTTP/1.1 server ---------------------------------------------
 * Paths: /echo (method, X-Test header and body echoed back), /status/N,
 * /hang (never answers), /big/N (N bytes with Content-Length),
 * /stream/N (N bytes without Content-Length, then close), /partial (headers
 * and 10 of 100 bytes, then nothing), /fat-headers (300 KiB of headers).
 * Keep-alive otherwise. */

typedef struct conn {
  uv_tcp_t tcp;
  char *buf;
  size_t len, cap;
  bool closing;
  bool smtp, imap, in_data;
  struct conn *prev, *next;
} conn;

typedef struct {
  uv_tcp_t tcp, smtp_tcp, imap_tcp;
  int port, smtp_port, imap_port;
  char imap_login[128], imap_command[128];
  conn *conns;
  int requests;
  /* what the SMTP side received */
  char mail_from[128], rcpts[256];
  char *data;
  size_t data_len;
  bool smtp_hang;  /* never answer the end of DATA */
  int smtp_ended;  /* end-of-DATA lines seen */
} server;

typedef struct {
  uv_write_t req;
  char *data;
  conn *cn;
  bool close_after;
} wreq;

static uv_loop_t loop;
static server srv;
static httpc *cli;

static void on_conn_closed(uv_handle_t *h) {
  conn *cn = h->data;
  free(cn->buf);
  free(cn);
}

static void conn_close(conn *cn) {
  if (cn->closing) return;
  cn->closing = true;
  if (cn->prev != NULL) cn->prev->next = cn->next;
  else srv.conns = cn->next;
  if (cn->next != NULL) cn->next->prev = cn->prev;
  uv_close((uv_handle_t *)&cn->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  if (w->close_after) conn_close(w->cn);
  free(w->data);
  free(w);
}

static void conn_send(conn *cn, char *data, size_t len, bool close_after) {
  wreq *w = calloc(1, sizeof(*w));
  ck_assert_ptr_nonnull(w);
  w->data = data;
  w->cn = cn;
  w->close_after = close_after;
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&cn->tcp, &b, 1, on_written) != 0) {
    free(data);
    free(w);
    conn_close(cn);
  }
}

static void respond(conn *cn, int code, const char *extra, const char *body, size_t body_len) {
  char head[1024];
  int n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n\r\n", code, extra, body_len);
  char *out = malloc((size_t)n + body_len);
  ck_assert_ptr_nonnull(out);
  memcpy(out, head, (size_t)n);
  if (body_len > 0) memcpy(out + n, body, body_len);
  conn_send(cn, out, (size_t)n + body_len, false);
}

/* Finds header name's value in the head block [head, end); copies it to out. */
static void find_header(const char *head, const char *end, const char *name, char *out, size_t cap) {
  out[0] = '\0';
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t len = (size_t)(e - v);
      if (len >= cap) len = cap - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return;
    }
  }
}

static void handle(conn *cn, const char *method, const char *path, const char *head, const char *hend,
                   const char *body, size_t body_len) {
  srv.requests++;
  if (strcmp(path, "/echo") == 0) {
    char test[256], extra[600];
    find_header(head, hend, "X-Test", test, sizeof(test));
    snprintf(extra, sizeof(extra),
             "X-Echo-Method: %s\r\nX-Echo-Test: %s\r\nContent-Type: application/octet-stream\r\n", method, test);
    respond(cn, 200, extra, body, body_len);
  } else if (strncmp(path, "/status/", 8) == 0) {
    int code = atoi(path + 8);
    const char *msg = code == 404 ? "not found" : "boom";
    respond(cn, code, "", msg, strlen(msg));
  } else if (strcmp(path, "/continue") == 0) {
    /* an interim response, then a final one with a folded header line */
    const char *text = "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
                       "HTTP/1.1 201 Created\r\nX-Final: yes\r\nX-Folded: first\r\n  second\r\n"
                       "Content-Length: 2\r\n\r\nok";
    char *out = strdup(text);
    conn_send(cn, out, strlen(out), false);
  } else if (strcmp(path, "/hang") == 0) {
    /* never answers */
  } else if (strcmp(path, "/partial") == 0) {
    char *out = strdup("HTTP/1.1 200 OK\r\nX-Partial: yes\r\nContent-Length: 100\r\n\r\n0123456789");
    conn_send(cn, out, strlen(out), false);
  } else if (strcmp(path, "/fat-headers") == 0) {
    size_t line = 1024, lines = 300;
    char *out = malloc(64 + lines * line), *p = out;
    p += sprintf(p, "HTTP/1.1 200 OK\r\n");
    for (size_t i = 0; i < lines; i++) {
      p += sprintf(p, "X-Pad-%04zu: ", i);
      memset(p, 'h', line - 15);
      p += line - 15;
      p += sprintf(p, "\r\n");
    }
    p += sprintf(p, "Content-Length: 0\r\n\r\n");
    conn_send(cn, out, (size_t)(p - out), false);
  } else if (strncmp(path, "/big/", 5) == 0) {
    size_t n = (size_t)atol(path + 5);
    char *b = malloc(n + 1);
    memset(b, 'x', n);
    respond(cn, 200, "", b, n);
    free(b);
  } else if (strncmp(path, "/stream/", 8) == 0) {
    size_t n = (size_t)atol(path + 8);
    const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    size_t hl = strlen(h);
    char *out = malloc(hl + n);
    memcpy(out, h, hl);
    memset(out + hl, 'y', n);
    conn_send(cn, out, hl + n, true);
  } else {
    respond(cn, 404, "", "", 0);
  }
}

/* Handles every complete request in the buffer. */
static void parse(conn *cn) {
  for (;;) {
    char *hend = cn->len > 0 ? strstr(cn->buf, "\r\n\r\n") : NULL;
    if (hend == NULL) return;
    char clen[32];
    find_header(cn->buf, hend + 2, "Content-Length", clen, sizeof(clen));
    size_t body_len = (size_t)atol(clen);
    size_t head_len = (size_t)(hend - cn->buf) + 4;
    if (cn->len < head_len + body_len) return;
    char method[16] = "", path[256] = "";
    ck_assert_int_eq(sscanf(cn->buf, "%15s %255s", method, path), 2);
    handle(cn, method, path, cn->buf, hend + 2, cn->buf + head_len, body_len);
    memmove(cn->buf, cn->buf + head_len + body_len, cn->len - head_len - body_len);
    cn->len -= head_len + body_len;
    cn->buf[cn->len] = '\0';
  }
}

static void smtp_reply(conn *cn, const char *text) {
  char *out = strdup(text);
  ck_assert_ptr_nonnull(out);
  conn_send(cn, out, strlen(out), false);
}

/* A minimal SMTP server: enough for curl to deliver one message. */
static void parse_smtp(conn *cn) {
  for (;;) {
    char *eol = strstr(cn->buf, "\r\n");
    if (eol == NULL) return;
    size_t line_len = (size_t)(eol - cn->buf) + 2;
    *eol = '\0';
    const char *line = cn->buf;
    if (cn->in_data) {
      if (strcmp(line, ".") == 0) {
        cn->in_data = false;
        srv.smtp_ended++;
        if (!srv.smtp_hang) smtp_reply(cn, "250 queued\r\n");
      } else {
        size_t n = strlen(line);
        srv.data = realloc(srv.data, srv.data_len + n + 3);
        memcpy(srv.data + srv.data_len, line, n);
        memcpy(srv.data + srv.data_len + n, "\r\n", 3);
        srv.data_len += n + 2;
      }
    } else if (strncasecmp(line, "EHLO", 4) == 0) {
      smtp_reply(cn, "250-test\r\n250 SIZE 1000000\r\n");
    } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
      /* the address only, without ESMTP parameters such as SIZE= */
      snprintf(srv.mail_from, sizeof(srv.mail_from), "%.*s", (int)strcspn(line + 10, " "), line + 10);
      smtp_reply(cn, "250 sender ok\r\n");
    } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
      size_t used = strlen(srv.rcpts);
      snprintf(srv.rcpts + used, sizeof(srv.rcpts) - used, "%s%s", used ? "," : "", line + 8);
      smtp_reply(cn, "250 recipient ok\r\n");
    } else if (strcasecmp(line, "DATA") == 0) {
      cn->in_data = true;
      smtp_reply(cn, "354 go ahead\r\n");
    } else if (strcasecmp(line, "QUIT") == 0) {
      char *out = strdup("221 bye\r\n");
      conn_send(cn, out, strlen(out), true);
    } else {
      smtp_reply(cn, "502 not implemented\r\n");
    }
    memmove(cn->buf, cn->buf + line_len, cn->len - line_len);
    cn->len -= line_len;
    cn->buf[cn->len] = '\0';
  }
}

/* A minimal IMAP server: greeting, CAPABILITY, LOGIN, one command, LOGOUT. */
static void parse_imap(conn *cn) {
  for (;;) {
    char *eol = strstr(cn->buf, "\r\n");
    if (eol == NULL) return;
    size_t line_len = (size_t)(eol - cn->buf) + 2;
    *eol = '\0';
    char tag[32] = "", out[512];
    const char *sp = strchr(cn->buf, ' ');
    const char *cmd = sp != NULL ? sp + 1 : "";
    snprintf(tag, sizeof(tag), "%.*s", sp != NULL ? (int)(sp - cn->buf) : 0, cn->buf);
    bool bye = false;
    if (strncasecmp(cmd, "CAPABILITY", 10) == 0) {
      snprintf(out, sizeof(out), "* CAPABILITY IMAP4rev1\r\n%s OK done\r\n", tag);
    } else if (strncasecmp(cmd, "LOGIN ", 6) == 0) {
      snprintf(srv.imap_login, sizeof(srv.imap_login), "%s", cmd + 6);
      snprintf(out, sizeof(out), "%s OK logged in\r\n", tag);
    } else if (strncasecmp(cmd, "LOGOUT", 6) == 0) {
      snprintf(out, sizeof(out), "* BYE\r\n%s OK bye\r\n", tag);
      bye = true;
    } else {
      snprintf(srv.imap_command, sizeof(srv.imap_command), "%s", cmd);
      snprintf(out, sizeof(out), "* 3 EXISTS\r\n* 0 RECENT\r\n%s OK done\r\n", tag);
    }
    char *copy = strdup(out);
    conn_send(cn, copy, strlen(copy), bye);
    memmove(cn->buf, cn->buf + line_len, cn->len - line_len);
    cn->len -= line_len;
    cn->buf[cn->len] = '\0';
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  conn *cn = h->data;
  if (cn->cap - cn->len < 65537) {
    cn->cap = cn->cap * 2 + 65537;
    cn->buf = realloc(cn->buf, cn->cap);
    ck_assert_ptr_nonnull(cn->buf);
  }
  *b = uv_buf_init(cn->buf + cn->len, (unsigned)(cn->cap - cn->len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *cn = s->data;
  if (n < 0) {
    conn_close(cn);
    return;
  }
  cn->len += (size_t)n;
  cn->buf[cn->len] = '\0';
  if (cn->smtp) parse_smtp(cn);
  else if (cn->imap) parse_imap(cn);
  else parse(cn);
}

static void on_connection(uv_stream_t *server_stream, int status) {
  ck_assert_int_eq(status, 0);
  conn *cn = calloc(1, sizeof(*cn));
  ck_assert_ptr_nonnull(cn);
  uv_tcp_init(&loop, &cn->tcp);
  cn->tcp.data = cn;
  ck_assert_int_eq(uv_accept(server_stream, (uv_stream_t *)&cn->tcp), 0);
  cn->next = srv.conns;
  if (srv.conns != NULL) srv.conns->prev = cn;
  srv.conns = cn;
  cn->smtp = server_stream == (uv_stream_t *)&srv.smtp_tcp;
  cn->imap = server_stream == (uv_stream_t *)&srv.imap_tcp;
  uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
  if (cn->smtp) smtp_reply(cn, "220 test ESMTP\r\n");
  if (cn->imap) smtp_reply(cn, "* OK test IMAP ready\r\n");
}

/* Listens on 127.0.0.1 on a port the kernel picks; returns the port. */
static int listen_on(uv_tcp_t *tcp) {
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ck_assert_int_eq(uv_tcp_init(&loop, tcp), 0);
  ck_assert_int_eq(uv_tcp_bind(tcp, (const struct sockaddr *)&addr, 0), 0);
  ck_assert_int_eq(uv_listen((uv_stream_t *)tcp, 256, on_connection), 0);
  struct sockaddr_in bound;
  int len = sizeof(bound);
  ck_assert_int_eq(uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len), 0);
  return ntohs(bound.sin_port);
}

static void server_start(void) {
  memset(&srv, 0, sizeof(srv));
  srv.port = listen_on(&srv.tcp);
  srv.smtp_port = listen_on(&srv.smtp_tcp);
  srv.imap_port = listen_on(&srv.imap_tcp);
}

static void server_stop(void) {
  while (srv.conns != NULL) conn_close(srv.conns);
  uv_close((uv_handle_t *)&srv.tcp, NULL);
  uv_close((uv_handle_t *)&srv.smtp_tcp, NULL);
  uv_close((uv_handle_t *)&srv.imap_tcp, NULL);
  free(srv.data);
}

/* ---- harness ---------------------------------------------------------------- */

static char url_buf[8][256];
static int url_next;

/* Returns a URL on the test server (one of a few rotating static buffers). */
static const char *url(const char *path) {
  char *u = url_buf[url_next++ % 8];
  snprintf(u, 256, "http://127.0.0.1:%d%s", srv.port, path);
  return u;
}

typedef struct {
  int calls;
  int status;
  long code;
  char *body;
  size_t body_len;
  char echo_method[16];
  char echo_test[256];
  char error[256];
  uint64_t total_us;
  void *owner;
  int index;
  size_t n_headers;
} result;

static const char *res_header(const httpc_response *res, const char *name) {
  for (size_t i = 0; i < res->n_headers; i++)
    if (strcmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  return NULL;
}

static int done_total;

static void record(result *r, const httpc_response *res) {
  done_total++;
  r->calls++;
  r->status = res->status;
  r->code = res->code;
  free(r->body);
  r->body = malloc(res->body_len + 1);
  memcpy(r->body, res->body, res->body_len + 1);
  r->body_len = res->body_len;
  ck_assert_int_eq(res->body[res->body_len], '\0');
  const char *m = res_header(res, "X-Echo-Method"), *t = res_header(res, "X-Echo-Test");
  snprintf(r->echo_method, sizeof(r->echo_method), "%s", m != NULL ? m : "");
  snprintf(r->echo_test, sizeof(r->echo_test), "%s", t != NULL ? t : "");
  snprintf(r->error, sizeof(r->error), "%s", res->error);
  r->total_us = res->total_us;
  r->owner = res->owner;
  r->n_headers = res->n_headers;
}

static void on_done(void *arg, const httpc_response *res) { record(arg, res); }

/* Every response header as "name=value;", for tests that check the list. */
static char headers_seen[1024];
static void on_done_list_headers(void *arg, const httpc_response *res) {
  record(arg, res);
  size_t used = 0;
  for (size_t i = 0; i < res->n_headers; i++)
    used += (size_t)snprintf(headers_seen + used, sizeof(headers_seen) - used, "%s=%s;", res->headers[i].name,
                             res->headers[i].value);
}

static bool guard_fired;
static void on_guard(uv_timer_t *t) { guard_fired = true; }

/* Runs the loop until *counter reaches target or max_ms passes. */
static uv_timer_t guard;

static void run_until(const int *counter, int target, uint64_t max_ms) {
  guard_fired = false;
  uv_timer_start(&guard, on_guard, max_ms, 0);
  while (*counter < target && !guard_fired) uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&guard);
  ck_assert_msg(*counter >= target, "timed out waiting: %d of %d", *counter, target);
}

/* Runs the loop for ms. */
static void run_for(uint64_t ms) {
  guard_fired = false;
  uv_timer_start(&guard, on_guard, ms, 0);
  while (!guard_fired) uv_run(&loop, UV_RUN_ONCE);
}

static int closed_count;
static void on_closed(void *arg) { closed_count++; }

static void setup(void) {
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  server_start();
  uv_timer_init(&loop, &guard);
  ck_assert_int_eq(httpc_new(&loop, &cli), 0);
  closed_count = 0;
}

static void teardown(void) {
  if (cli != NULL) httpc_close(cli, on_closed, NULL);
  cli = NULL;
  server_stop();
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(closed_count, 1);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static httpc_call *start(const httpc_req *req, result *r) {
  httpc_call *call = NULL;
  ck_assert_int_eq(httpc_request(cli, req, on_done, r, &call), 0);
  ck_assert_ptr_nonnull(call);
  return call;
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(get_returns_code_headers_and_body) {
  result r = {0};
  httpc_header h[] = {{"X-Test", "hello world"}};
  httpc_req req = {.url = url("/echo"), .headers = h, .n_headers = 1};
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 200);
  ck_assert_str_eq(r.echo_method, "GET");
  ck_assert_str_eq(r.echo_test, "hello world");
  ck_assert_uint_eq(r.body_len, 0);
  ck_assert_str_eq(r.error, "");
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.started, 1);
  ck_assert_uint_eq(st.completed, 1);
  ck_assert_uint_eq(st.in_flight, 0);
  free(r.body);
}
END_TEST

START_TEST(post_sends_binary_body_and_reads_it_back) {
  unsigned char body[1024 + 3];
  for (size_t i = 0; i < sizeof(body); i++) body[i] = (unsigned char)(i * 7);
  body[5] = '\0';
  result r = {0};
  httpc_header h[] = {{"X-Test", "bin"}, {"Content-Type", "application/octet-stream"}};
  httpc_req *req = calloc(1, sizeof(*req));
  req->method = "POST";
  req->url = strdup(url("/echo"));
  req->headers = h;
  req->n_headers = 2;
  req->body = body;
  req->body_len = sizeof(body);
  start(req, &r);
  /* the request is copied: freeing and scribbling over it changes nothing */
  free((char *)req->url);
  free(req);
  memset(body, 0, sizeof(body));
  run_until(&r.calls, 1, 5000);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 200);
  ck_assert_str_eq(r.echo_method, "POST");
  ck_assert_str_eq(r.echo_test, "bin");
  ck_assert_uint_eq(r.body_len, sizeof(body));
  for (size_t i = 0; i < sizeof(body); i++)
    ck_assert_int_eq((unsigned char)r.body[i], i == 5 ? 0 : (unsigned char)(i * 7));
  free(r.body);
}
END_TEST

START_TEST(other_methods_reach_the_server) {
  const char *methods[] = {"PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"};
  result r[5] = {{0}};
  done_total = 0;
  for (int i = 0; i < 5; i++) {
    httpc_req req = {.method = methods[i], .url = url("/echo"),
                     .body = i < 2 ? "abc" : NULL, .body_len = i < 2 ? 3 : 0};
    start(&req, &r[i]);
  }
  run_until(&done_total, 5, 5000);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].status, 0);
    ck_assert_str_eq(r[i].echo_method, methods[i]);
    ck_assert_str_eq(r[i].body, i < 2 ? "abc" : "");
    free(r[i].body);
  }
}
END_TEST

START_TEST(error_statuses_are_passed_through) {
  result r404 = {0}, r500 = {0};
  httpc_req a = {.url = url("/status/404")}, b = {.url = url("/status/500")};
  start(&a, &r404);
  start(&b, &r500);
  run_until(&r404.calls, 1, 5000);
  run_until(&r500.calls, 1, 5000);
  ck_assert_int_eq(r404.status, 0);
  ck_assert_int_eq(r404.code, 404);
  ck_assert_str_eq(r404.body, "not found");
  ck_assert_int_eq(r500.status, 0);
  ck_assert_int_eq(r500.code, 500);
  ck_assert_str_eq(r500.body, "boom");
  free(r404.body);
  free(r500.body);
}
END_TEST

START_TEST(connection_refused_is_reported) {
  /* a port that was just free: bind, read it, close */
  uv_tcp_t t;
  struct sockaddr_in addr, bound;
  int len = sizeof(bound);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&loop, &t);
  ck_assert_int_eq(uv_tcp_bind(&t, (const struct sockaddr *)&addr, 0), 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  char u[64];
  snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(bound.sin_port));
  result r = {0};
  httpc_req req = {.url = u};
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  ck_assert_int_eq(r.status, -ECONNREFUSED);
  ck_assert_int_eq(r.code, 0);
  ck_assert_str_ne(r.error, "");
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.failed, 1);
  free(r.body);
}
END_TEST

START_TEST(silent_server_times_out_within_the_bound) {
  result r = {0};
  httpc_req req = {.url = url("/hang"), .timeout_ms = 300};
  uint64_t t0 = uv_hrtime();
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  uint64_t ms = (uv_hrtime() - t0) / 1000000u;
  ck_assert_int_eq(r.status, -ETIMEDOUT);
  ck_assert_uint_ge(ms, 250);
  ck_assert_uint_lt(ms, 2000);
  ck_assert_uint_ge(r.total_us, 250000);
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.timed_out, 1);
  free(r.body);
}
END_TEST

START_TEST(response_over_the_limit_fails_with_efbig) {
  result announced = {0}, streamed = {0}, exact = {0};
  httpc_req a = {.url = url("/big/100000"), .max_response_bytes = 1000};
  httpc_req b = {.url = url("/stream/100000"), .max_response_bytes = 1000};
  httpc_req c = {.url = url("/big/1000"), .max_response_bytes = 1000};
  start(&a, &announced);
  start(&b, &streamed);
  start(&c, &exact);
  run_until(&announced.calls, 1, 5000);
  run_until(&streamed.calls, 1, 5000);
  run_until(&exact.calls, 1, 5000);
  ck_assert_int_eq(announced.status, -EFBIG);
  ck_assert_int_eq(streamed.status, -EFBIG);
  ck_assert_ptr_nonnull(strstr(streamed.error, "1000 bytes"));
  ck_assert_int_eq(exact.status, 0);
  ck_assert_uint_eq(exact.body_len, 1000);
  free(announced.body);
  free(streamed.body);
  free(exact.body);
}
END_TEST

START_TEST(cancel_runs_the_callback_once_with_ecanceled) {
  result hung = {0}, other = {0};
  httpc_req h = {.url = url("/hang")}, e = {.url = url("/echo")};
  httpc_call *call = start(&h, &hung);
  start(&e, &other);
  run_until(&srv.requests, 1, 5000); /* let the hanging request reach the server */
  httpc_cancel(call);
  ck_assert_int_eq(hung.calls, 1); /* synchronous */
  ck_assert_int_eq(hung.status, -ECANCELED);
  run_until(&other.calls, 1, 5000);
  ck_assert_int_eq(other.status, 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(hung.calls, 1);
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.cancelled, 1);
  ck_assert_uint_eq(st.in_flight, 0);
  free(hung.body);
  free(other.body);
}
END_TEST

START_TEST(cancel_owner_cancels_only_that_owners_calls) {
  int owner_a, owner_b;
  result r[5] = {{0}};
  for (int i = 0; i < 5; i++) {
    httpc_req req = {.url = url("/hang"), .owner = i < 3 ? (void *)&owner_a : (void *)&owner_b};
    start(&req, &r[i]);
  }
  run_until(&srv.requests, 5, 5000);
  httpc_cancel_owner(cli, &owner_a);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(r[i].calls, i < 3 ? 1 : 0);
    if (i < 3) {
      ck_assert_int_eq(r[i].status, -ECANCELED);
      ck_assert_ptr_eq(r[i].owner, &owner_a);
    }
  }
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.in_flight, 2);
  httpc_cancel_owner(cli, &owner_b);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    free(r[i].body);
  }
}
END_TEST

static int refused_during_close;
static void on_done_try_request(void *arg, const httpc_response *res) {
  record(arg, res);
  httpc_req req = {.url = url("/echo")};
  if (httpc_request(cli, &req, on_done, arg, NULL) == -ECANCELED) refused_during_close++;
}

START_TEST(close_cancels_every_pending_call_once) {
  result r[5] = {{0}};
  for (int i = 0; i < 5; i++) {
    httpc_req req = {.url = url("/hang")};
    ck_assert_int_eq(httpc_request(cli, &req, on_done_try_request, &r[i], NULL), 0);
  }
  run_until(&srv.requests, 5, 5000);
  refused_during_close = 0;
  httpc_close(cli, on_closed, NULL);
  cli = NULL;
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].status, -ECANCELED);
    free(r[i].body);
  }
  ck_assert_int_eq(refused_during_close, 5);
  ck_assert_int_eq(closed_count, 0); /* done comes on a later loop turn */
  run_until(&closed_count, 1, 5000);
  closed_count = 0;
  closed_count++; /* teardown expects exactly one close */
}
END_TEST

static int fifty_ok;
static void on_done_check_index(void *arg, const httpc_response *res) {
  result *r = arg;
  char want[32];
  snprintf(want, sizeof(want), "request-%d", r->index);
  r->calls++;
  if (res->status == 0 && res->code == 200 && strcmp(res->body, want) == 0) fifty_ok++;
}

START_TEST(fifty_concurrent_requests_all_complete) {
  result r[50] = {{0}};
  char bodies[50][32];
  fifty_ok = 0;
  for (int i = 0; i < 50; i++) {
    r[i].index = i;
    snprintf(bodies[i], sizeof(bodies[i]), "request-%d", i);
    httpc_req req = {.method = "POST", .url = url("/echo"), .body = bodies[i], .body_len = strlen(bodies[i])};
    ck_assert_int_eq(httpc_request(cli, &req, on_done_check_index, &r[i], NULL), 0);
  }
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.in_flight, 50);
  run_until(&fifty_ok, 50, 10000);
  for (int i = 0; i < 50; i++) ck_assert_int_eq(r[i].calls, 1);
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.in_flight, 0);
  ck_assert_uint_eq(st.completed, 50);
}
END_TEST

/* Each completion starts the next request, alternating keep-alive responses
 * and ones that close the connection, so sockets come and go (and fd numbers
 * get reused) while the client is running. */
static int chain_left, chain_ok;
static void on_done_chain(void *arg, const httpc_response *res) {
  if (res->status == 0 && res->code == 200) chain_ok++;
  if (--chain_left > 0) {
    httpc_req req = {.url = url(chain_left % 2 ? "/stream/10" : "/echo")};
    ck_assert_int_eq(httpc_request(cli, &req, on_done_chain, NULL, NULL), 0);
  }
}

START_TEST(callback_can_start_the_next_request) {
  chain_left = 20;
  chain_ok = 0;
  httpc_req req = {.url = url("/echo")};
  ck_assert_int_eq(httpc_request(cli, &req, on_done_chain, NULL, NULL), 0);
  run_until(&chain_ok, 20, 10000);
  ck_assert_int_eq(chain_left, 0);
}
END_TEST

static httpc_call *victim;
static result victim_result;
static void on_done_cancel_victim(void *arg, const httpc_response *res) {
  record(arg, res);
  httpc_cancel(victim);
  ck_assert_int_eq(victim_result.calls, 1);
}

START_TEST(callback_can_cancel_another_call) {
  memset(&victim_result, 0, sizeof(victim_result));
  result first = {0};
  httpc_req h = {.url = url("/hang")}, e = {.url = url("/echo")};
  victim = start(&h, &victim_result);
  ck_assert_int_eq(httpc_request(cli, &e, on_done_cancel_victim, &first, NULL), 0);
  run_until(&first.calls, 1, 5000);
  ck_assert_int_eq(first.status, 0);
  ck_assert_int_eq(victim_result.calls, 1);
  ck_assert_int_eq(victim_result.status, -ECANCELED);
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(victim_result.calls, 1);
  free(first.body);
  free(victim_result.body);
}
END_TEST

static void on_done_close_client(void *arg, const httpc_response *res) {
  record(arg, res);
  httpc_close(cli, on_closed, NULL);
  cli = NULL;
}

START_TEST(callback_can_close_the_client) {
  result first = {0}, hung = {0};
  httpc_req h = {.url = url("/hang")}, e = {.url = url("/echo")};
  start(&h, &hung);
  ck_assert_int_eq(httpc_request(cli, &e, on_done_close_client, &first, NULL), 0);
  run_until(&first.calls, 1, 5000);
  ck_assert_int_eq(hung.calls, 1);
  ck_assert_int_eq(hung.status, -ECANCELED);
  run_until(&closed_count, 1, 5000);
  free(first.body);
  free(hung.body);
}
END_TEST

START_TEST(head_ignores_a_large_content_length) {
  result r = {0};
  httpc_req req = {.method = "HEAD", .url = url("/big/100000"), .max_response_bytes = 1000};
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 200);
  ck_assert_uint_eq(r.body_len, 0);
  free(r.body);
}
END_TEST

/* Two calls time out in the same curl action, so the second one's DONE
 * message is already queued when the first one's callback cancels it. */
static httpc_call *pair[2];
static result pair_result[2];
static void on_done_cancel_partner(void *arg, const httpc_response *res) {
  int me = (int)(intptr_t)arg;
  pair[me] = NULL;
  record(&pair_result[me], res);
  if (pair[1 - me] != NULL) httpc_cancel(pair[1 - me]);
}

START_TEST(cancel_of_a_call_that_just_finished_still_calls_back_once) {
  memset(pair_result, 0, sizeof(pair_result));
  done_total = 0;
  for (int i = 0; i < 2; i++) {
    httpc_req req = {.url = url("/hang"), .timeout_ms = 200};
    ck_assert_int_eq(httpc_request(cli, &req, on_done_cancel_partner, (void *)(intptr_t)i, &pair[i]), 0);
  }
  run_until(&done_total, 2, 5000);
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(pair_result[0].calls, 1);
  ck_assert_int_eq(pair_result[1].calls, 1);
  ck_assert_int_eq(pair_result[0].status + pair_result[1].status, -ETIMEDOUT - ECANCELED);
  free(pair_result[0].body);
  free(pair_result[1].body);
}
END_TEST

START_TEST(smtp_delivers_a_message_through_the_same_engine) {
  char u[64];
  snprintf(u, sizeof(u), "smtp://127.0.0.1:%d/client.example", srv.smtp_port);
  const char *rcpt[] = {"<agent@example.org>", "<copy@example.org>"};
  const char *msg = "Subject: hi\r\n\r\nline one\r\n.starts with a dot\r\n";
  httpc_req req = {.url = u, .mail_from = "<desk@example.org>", .mail_rcpt = rcpt, .n_mail_rcpt = 2,
                   .body = msg, .body_len = strlen(msg), .tls = HTTPC_TLS_NONE};
  result r = {0};
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.error);
  ck_assert_int_eq(r.code, 250);
  ck_assert_str_eq(srv.mail_from, "<desk@example.org>");
  ck_assert_str_eq(srv.rcpts, "<agent@example.org>,<copy@example.org>");
  /* curl dot-stuffs the line starting with '.'; the server sees it doubled */
  ck_assert_str_eq(srv.data, "Subject: hi\r\n\r\nline one\r\n..starts with a dot\r\n");
  free(r.body);
}
END_TEST

START_TEST(smtp_cancel_calls_back_at_once_and_close_waits_for_the_worker) {
  srv.smtp_hang = true;
  char u[64];
  snprintf(u, sizeof(u), "smtp://127.0.0.1:%d/client.example", srv.smtp_port);
  const char *rcpt[] = {"<agent@example.org>"};
  httpc_req req = {.url = u, .mail_from = "<desk@example.org>", .mail_rcpt = rcpt, .n_mail_rcpt = 1,
                   .body = "Subject: x\r\n\r\nbody\r\n", .body_len = 20, .timeout_ms = 20000};
  result r = {0};
  httpc_call *call = start(&req, &r);
  run_until(&srv.smtp_ended, 1, 5000); /* the worker now waits for the server's reply */
  httpc_cancel(call);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, -ECANCELED);
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.in_flight, 0);
  /* the server stays silent: the worker must stop by itself, well before the timeout */
  uint64_t t0 = uv_hrtime();
  httpc_close(cli, on_closed, NULL);
  cli = NULL;
  run_until(&closed_count, 1, 8000);
  ck_assert_uint_lt((uv_hrtime() - t0) / 1000000u, 5000);
  ck_assert_int_eq(r.calls, 1);
  free(r.body);
}
END_TEST

START_TEST(imap_command_runs_with_login_and_returns_untagged_lines) {
  char u[64];
  snprintf(u, sizeof(u), "imap://127.0.0.1:%d/", srv.imap_port);
  httpc_req req = {.url = u, .username = "agent", .password = "s3cret", .custom_request = "EXAMINE INBOX"};
  result r = {0};
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.error);
  ck_assert_str_eq(srv.imap_login, "agent s3cret");
  ck_assert_str_eq(srv.imap_command, "EXAMINE INBOX");
  ck_assert_ptr_nonnull(strstr(r.body, "* 3 EXISTS"));
  free(r.body);
}
END_TEST

START_TEST(only_the_final_responses_headers_are_returned) {
  httpc_req req = {.method = "POST", .url = url("/continue"), .body = "x", .body_len = 1};
  result r = {0};
  headers_seen[0] = '\0';
  ck_assert_int_eq(httpc_request(cli, &req, on_done_list_headers, &r, NULL), 0);
  run_until(&r.calls, 1, 5000);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 201);
  ck_assert_str_eq(r.body, "ok");
  ck_assert_str_eq(headers_seen, "X-Final=yes;X-Folded=first second;Content-Length=2;");
  free(r.body);
}
END_TEST

/* Cancelling by owner leaves alone the calls its own callbacks start. */
static int owner_a;
static void on_done_restart_for_owner(void *arg, const httpc_response *res) {
  record(arg, res);
  httpc_req req = {.url = url("/hang"), .owner = &owner_a};
  ck_assert_int_eq(httpc_request(cli, &req, on_done, arg, NULL), 0);
}

START_TEST(cancel_owner_spares_calls_started_by_its_callbacks) {
  result r[2] = {{0}};
  for (int i = 0; i < 2; i++) {
    httpc_req req = {.url = url("/hang"), .owner = &owner_a};
    ck_assert_int_eq(httpc_request(cli, &req, on_done_restart_for_owner, &r[i], NULL), 0);
  }
  httpc_cancel_owner(cli, &owner_a);
  ck_assert_int_eq(r[0].calls, 1);
  ck_assert_int_eq(r[1].calls, 1);
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.cancelled, 2);
  ck_assert_uint_eq(st.in_flight, 2);
  httpc_cancel_owner(cli, &owner_a); /* now the restarted ones, with plain callbacks */
  ck_assert_int_eq(r[0].calls, 2);
  ck_assert_int_eq(r[1].calls, 2);
  free(r[0].body);
  free(r[1].body);
}
END_TEST

static void on_done_never(void *arg, const httpc_response *res) { ck_abort_msg("callback after refused request"); }

START_TEST(bad_input_is_refused_with_einval) {
  httpc_call *call = (httpc_call *)&call;
  httpc_req ok = {.url = url("/echo")};
  httpc_req none = {0}, empty = {.url = ""}, junk = {.url = "not a url"}, ftp = {.url = "ftp://127.0.0.1/x"};
  httpc_req method = {.method = "FETCH", .url = url("/echo")};
  httpc_req lower = {.method = "get", .url = url("/echo")};
  httpc_req get_body = {.url = url("/echo"), .body = "x", .body_len = 1};
  httpc_header crlf[] = {{"X-A", "1\r\nX-Injected: 2"}}, colon[] = {{"X:A", "1"}}, nullv[] = {{"X-A", NULL}};
  httpc_req h1 = {.url = url("/echo"), .headers = crlf, .n_headers = 1};
  httpc_req h2 = {.url = url("/echo"), .headers = colon, .n_headers = 1};
  httpc_req h3 = {.url = url("/echo"), .headers = nullv, .n_headers = 1};
  httpc_req tls = {.url = url("/echo"), .tls = HTTPC_TLS_REQUIRED};
  httpc_req smtp_no_rcpt = {.url = "smtp://127.0.0.1:1", .body = "x", .body_len = 1};
  httpc_req mail_on_http = {.url = url("/echo"), .mail_from = "<a@b>"};
  httpc_req no_headers = {.url = url("/echo"), .n_headers = 2};
  httpc_req no_body = {.method = "POST", .url = url("/echo"), .body_len = 5};
  httpc_req https_plain = {.url = "https://127.0.0.1/", .tls = HTTPC_TLS_NONE};
  httpc_req method_on_imap = {.method = "GET", .url = "imap://127.0.0.1/"};
  const httpc_req *bad[] = {&none, &empty, &junk, &ftp, &method, &lower, &get_body, &h1, &h2, &h3, &tls,
                            &smtp_no_rcpt, &mail_on_http, &no_headers, &no_body, &https_plain, &method_on_imap};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_msg(httpc_request(cli, bad[i], on_done_never, NULL, &call) == -EINVAL, "case %zu", i);
    ck_assert_ptr_null(call);
  }
  ck_assert_int_eq(httpc_request(NULL, &ok, on_done_never, NULL, NULL), -EINVAL);
  ck_assert_int_eq(httpc_request(cli, NULL, on_done_never, NULL, NULL), -EINVAL);
  ck_assert_int_eq(httpc_request(cli, &ok, NULL, NULL, NULL), -EINVAL);
  ck_assert_int_eq(httpc_new(NULL, NULL), -EINVAL);
  httpc_stats st;
  httpc_get_stats(cli, &st);
  ck_assert_uint_eq(st.started, 0);
  uv_run(&loop, UV_RUN_NOWAIT);
}
END_TEST

/* Name lookups of SLOW_NAME take two seconds (curl's resolver thread calls
 * this, the executable's definition, before libc's). */
#define SLOW_NAME "slow-lookup.test"
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  if (node != NULL && strcmp(node, SLOW_NAME) == 0) {
    usleep(2000 * 1000);
    return EAI_NONAME;
  }
  int (*next)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
  *(void **)&next = dlsym(RTLD_NEXT, "getaddrinfo");
  return next(node, service, hints, res);
}

START_TEST(a_slow_name_lookup_neither_outlasts_the_timeout_nor_holds_a_cancel) {
  result timed = {0}, cancelled = {0};
  httpc_req t = {.url = "http://" SLOW_NAME "/", .timeout_ms = 300};
  uint64_t t0 = uv_hrtime();
  start(&t, &timed);
  run_until(&timed.calls, 1, 5000);
  uint64_t ms = (uv_hrtime() - t0) / 1000000u;
  ck_assert_int_eq(timed.status, -ETIMEDOUT);
  ck_assert_msg(ms < 1500, "the timeout of 300 ms came after %llu ms", (unsigned long long)ms);

  httpc_req c = {.url = "http://" SLOW_NAME "/"};
  httpc_call *call = start(&c, &cancelled);
  uv_run(&loop, UV_RUN_NOWAIT); /* the lookup is under way */
  t0 = uv_hrtime();
  httpc_cancel(call);
  ms = (uv_hrtime() - t0) / 1000000u;
  ck_assert_int_eq(cancelled.status, -ECANCELED);
  ck_assert_msg(ms < 500, "httpc_cancel took %llu ms", (unsigned long long)ms);
  free(timed.body);
  free(cancelled.body);
}
END_TEST

static void on_foreign(uv_poll_t *h, int status, int events) {}

START_TEST(a_socket_that_cannot_be_watched_fails_its_call_not_the_client) {
  /* A handle left watching a closed fd (a plugin breaking watch_fd's rule):
   * the next socket gets that number, and libuv refuses to watch it twice. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  uv_poll_t foreign;
  ck_assert_int_eq(uv_poll_init_socket(&loop, &foreign, fd), 0);
  ck_assert_int_eq(uv_poll_start(&foreign, UV_READABLE, on_foreign), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  close(fd);
  result refused = {0}, after = {0};
  httpc_req req = {.url = url("/echo"), .timeout_ms = 3000};
  start(&req, &refused);
  run_until(&refused.calls, 1, 5000);
  ck_assert_int_eq(refused.status, -EIO);
  ck_assert_msg(strstr(refused.error, "cannot watch") != NULL, "error: %s", refused.error);
  uv_poll_stop(&foreign);
  uv_close((uv_handle_t *)&foreign, NULL);
  /* the client goes on */
  start(&req, &after);
  run_until(&after.calls, 1, 5000);
  ck_assert_msg(after.status == 0, "status %d: %s", after.status, after.error);
  ck_assert_int_eq(after.code, 200);
  free(refused.body);
  free(after.body);
}
END_TEST

START_TEST(a_cancelled_call_reports_nothing_of_a_partial_response) {
  result r = {0};
  httpc_req req = {.url = url("/partial")};
  httpc_call *call = start(&req, &r);
  run_until(&srv.requests, 1, 5000);
  run_for(200); /* the head and 10 bytes arrive */
  ck_assert_int_eq(r.calls, 0);
  httpc_cancel(call);
  ck_assert_int_eq(r.status, -ECANCELED);
  ck_assert_int_eq(r.code, 0);
  ck_assert_uint_eq(r.body_len, 0);
  ck_assert_str_eq(r.echo_method, "");
  ck_assert_int_eq(r.n_headers, 0);
  free(r.body);
}
END_TEST

START_TEST(headers_over_their_limit_say_so) {
  result r = {0};
  httpc_req req = {.url = url("/fat-headers")};
  start(&req, &r);
  run_until(&r.calls, 1, 5000);
  ck_assert_int_eq(r.status, -EFBIG);
  ck_assert_msg(strstr(r.error, "headers exceed the limit of 262144 bytes") != NULL, "error: %s", r.error);
  free(r.body);
}
END_TEST

/* Mail URL of a server that never greets: the HTTP side waits for a request. */
static const char *silent_mail_url(char *buf, size_t cap) {
  snprintf(buf, cap, "imap://127.0.0.1:%d/", srv.port);
  return buf;
}

static void work_noop(uv_work_t *w) {}
static int work_done;
static void on_work_done(uv_work_t *w, int status) { work_done++; }

START_TEST(mail_transfers_leave_pool_threads_free_and_wait_within_their_timeout) {
  /* A pool of 4 (main): two mail transfers at once. */
  char silent[64], imap[64];
  silent_mail_url(silent, sizeof(silent));
  snprintf(imap, sizeof(imap), "imap://127.0.0.1:%d/", srv.imap_port);
  httpc_req hang = {.url = silent, .timeout_ms = 20000};
  httpc_req late = {.url = silent, .timeout_ms = 400};
  httpc_req queued = {.url = imap, .username = "agent", .password = "s3cret", .custom_request = "EXAMINE INBOX",
                      .timeout_ms = 10000};
  result h1 = {0}, h2 = {0}, l = {0}, q = {0};
  httpc_call *first = start(&hang, &h1);
  httpc_call *second = start(&hang, &h2);
  uint64_t t0 = uv_hrtime();
  start(&late, &l);
  start(&queued, &q);
  /* the pool still runs other work at once */
  uv_work_t w;
  work_done = 0;
  ck_assert_int_eq(uv_queue_work(&loop, &w, work_noop, on_work_done), 0);
  run_until(&work_done, 1, 300);
  /* the transfer waiting with a short timeout ends at it, not after the others */
  run_until(&l.calls, 1, 3000);
  uint64_t ms = (uv_hrtime() - t0) / 1000000u;
  ck_assert_int_eq(l.status, -ETIMEDOUT);
  ck_assert_msg(strstr(l.error, "waiting for a free mail worker") != NULL, "error: %s", l.error);
  ck_assert_msg(ms >= 350 && ms < 1500, "timed out after %llu ms", (unsigned long long)ms);
  ck_assert_int_eq(q.calls, 0);
  ck_assert_str_eq(srv.imap_command, "");
  /* a worker freed: the one still waiting runs */
  httpc_cancel(first);
  run_until(&q.calls, 1, 5000);
  ck_assert_msg(q.status == 0, "status %d: %s", q.status, q.error);
  ck_assert_str_eq(srv.imap_command, "EXAMINE INBOX");
  ck_assert_int_eq(h2.calls, 0);
  httpc_cancel(second);
  free(h1.body);
  free(h2.body);
  free(l.body);
  free(q.body);
}
END_TEST

int main(void) {
  /* libuv's pool as it is by default, whatever the environment says */
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  /* the test server is local; an inherited proxy must not get in the way */
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("https_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("all_proxy");
  unsetenv("ALL_PROXY");
  Suite *s = suite_create("httpc");
  TCase *tc = tcase_create("httpc");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, get_returns_code_headers_and_body);
  tcase_add_test(tc, post_sends_binary_body_and_reads_it_back);
  tcase_add_test(tc, other_methods_reach_the_server);
  tcase_add_test(tc, error_statuses_are_passed_through);
  tcase_add_test(tc, connection_refused_is_reported);
  tcase_add_test(tc, silent_server_times_out_within_the_bound);
  tcase_add_test(tc, response_over_the_limit_fails_with_efbig);
  tcase_add_test(tc, cancel_runs_the_callback_once_with_ecanceled);
  tcase_add_test(tc, cancel_owner_cancels_only_that_owners_calls);
  tcase_add_test(tc, close_cancels_every_pending_call_once);
  tcase_add_test(tc, fifty_concurrent_requests_all_complete);
  tcase_add_test(tc, callback_can_start_the_next_request);
  tcase_add_test(tc, callback_can_cancel_another_call);
  tcase_add_test(tc, callback_can_close_the_client);
  tcase_add_test(tc, head_ignores_a_large_content_length);
  tcase_add_test(tc, cancel_of_a_call_that_just_finished_still_calls_back_once);
  tcase_add_test(tc, smtp_delivers_a_message_through_the_same_engine);
  tcase_add_test(tc, smtp_cancel_calls_back_at_once_and_close_waits_for_the_worker);
  tcase_add_test(tc, imap_command_runs_with_login_and_returns_untagged_lines);
  tcase_add_test(tc, only_the_final_responses_headers_are_returned);
  tcase_add_test(tc, cancel_owner_spares_calls_started_by_its_callbacks);
  tcase_add_test(tc, bad_input_is_refused_with_einval);
  tcase_add_test(tc, a_slow_name_lookup_neither_outlasts_the_timeout_nor_holds_a_cancel);
  tcase_add_test(tc, a_socket_that_cannot_be_watched_fails_its_call_not_the_client);
  tcase_add_test(tc, a_cancelled_call_reports_nothing_of_a_partial_response);
  tcase_add_test(tc, headers_over_their_limit_say_so);
  tcase_add_test(tc, mail_transfers_leave_pool_threads_free_and_wait_within_their_timeout);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
