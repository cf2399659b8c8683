/* http.c — the HTTP/1.1 server: libh2o on the host's libuv loop, routing, responders, streams, shutdown. */
#include "http.h"
#include "http_router.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <h2o.h>
#pragma GCC diagnostic pop

#include "http_tls.h"

#define HTTP_DEFAULT_BODY_LIMIT ((size_t)1 << 20)
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_DEFAULT_SHUTDOWN_TIMEOUT_MS 5000
#define HTTP_BACKLOG 511

typedef struct http_conn {
  uv_tcp_t tcp; /* first: libh2o's close callback hands back this handle */
  http_server *srv;
  h2o_linklist_t link;
} http_conn;

typedef struct sb_handler {
  h2o_handler_t super;
  http_server *srv;
} sb_handler;

typedef struct sb_filter {
  h2o_filter_t super;
  http_server *srv;
} sb_filter;

struct http_server {
  uv_loop_t *loop;
  h2o_globalconf_t config;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  h2o_hostconf_t *hostconf;
  void *ssl_ctx; /* SSL_CTX *, or NULL */
  uv_tcp_t listener;
  int listener_open;
  uint16_t port;
  http_routes routes;
  size_t body_limit;
  uint64_t shutdown_timeout_ms;
  http_stats stats;
  h2o_linklist_t conns;      /* http_conn */
  h2o_linklist_t responders; /* http_responder whose request is alive */
  uv_timer_t deadline;       /* http_close: bound for in-flight requests */
  uv_timer_t reaper;         /* teardown: second close generation */
  int closing;
  int torn_down;
  void (*done)(void *arg);
  void *done_arg;
};

struct http_responder {
  http_server *srv; /* valid only while req != NULL */
  h2o_req_t *req;   /* NULL once libh2o disposed the request */
  h2o_linklist_t link;
  h2o_generator_t gen;
  int busy; /* > 0 while inside libh2o calls that may dispose the request */
  unsigned released : 1, started : 1, final_sent : 1, aborted : 1, streaming : 1, in_flight : 1,
      end_queued : 1, forced : 1;
  void (*on_abort)(void *arg);
  void *abort_arg;
  void (*on_close)(void *arg);
  void *close_arg;
  char *sending, *pending; /* stream buffers: the one in flight, the one filling */
  size_t sending_len, sending_cap, pending_len, pending_cap;
  http_request view;
};

typedef struct responder_anchor {
  http_responder *r;
} responder_anchor;

static void maybe_finish(http_server *s);

/* ---- responses ---------------------------------------------------------- */

static const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

static void responder_free(http_responder *r) {
  free(r->sending);
  free(r->pending);
  free(r);
}

/* Frees r once the handler released it and libh2o is done with its request. */
static void maybe_free(http_responder *r) {
  if (r->released && r->req == NULL && r->busy == 0) responder_free(r);
}

static void fire_abort_hooks(http_responder *r) {
  void (*abort_fn)(void *) = r->on_abort;
  void (*close_fn)(void *) = r->on_close;
  r->on_abort = NULL;
  r->on_close = NULL;
  if (abort_fn != NULL) abort_fn(r->abort_arg);
  if (close_fn != NULL) close_fn(r->close_arg);
}

/* Called from the request pool's disposal: the request is gone, whether the
 * response was sent or the connection died. */
static void anchor_dispose(void *p) {
  http_responder *r = ((responder_anchor *)p)->r;
  http_server *s = r->srv;
  r->req = NULL;
  r->srv = NULL;
  h2o_linklist_unlink(&r->link);
  if (!r->final_sent) {
    r->aborted = 1;
    s->stats.requests_aborted++;
    r->busy++;
    fire_abort_hooks(r);
    r->busy--;
  }
  maybe_free(r);
}

/* Copies headers into the request pool; names lower-cased, framing headers skipped. */
static void set_response_headers(h2o_req_t *req, const http_header *headers, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *name = headers[i].name;
    if (name == NULL || headers[i].value == NULL) continue;
    size_t nlen = strlen(name);
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0)
      continue;
    char *lname = h2o_mem_alloc_pool(&req->pool, nlen + 1);
    for (size_t k = 0; k < nlen; k++) lname[k] = (char)tolower((unsigned char)name[k]);
    lname[nlen] = '\0';
    size_t vlen = headers[i].value_len != 0 ? headers[i].value_len : strlen(headers[i].value);
    h2o_iovec_t v = h2o_strdup(&req->pool, headers[i].value, vlen);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lname, nlen, 1, NULL, v.base, v.len);
  }
}

static void begin_response(http_responder *r, int status, const http_header *headers, size_t n, size_t content_length) {
  h2o_req_t *req = r->req;
  req->res.status = status;
  req->res.reason = reason_phrase(status);
  set_response_headers(req, headers, n);
  req->res.content_length = content_length;
  /* after http_stop_accepting, every response ends its connection */
  if (r->srv->ctx.shutdown_requested) req->http1_is_persistent = 0;
  r->started = 1;
}

/* Sends a whole response on a live, unstarted request. r may be freed on return
 * only if the caller had released it; callers hold busy around this. */
static void send_full(http_responder *r, int status, const http_header *headers, size_t n, const char *body,
                      size_t len) {
  static h2o_generator_t no_generator = {NULL, NULL};
  h2o_req_t *req = r->req;
  begin_response(r, status, headers, n, len);
  r->final_sent = 1;
  int head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
  h2o_iovec_t buf = h2o_iovec_init(NULL, 0);
  if (len > 0 && !head) buf = h2o_strdup(&req->pool, body, len);
  r->busy++;
  h2o_start_response(req, &no_generator);
  h2o_send(req, &buf, buf.len > 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
  r->busy--;
}

static char *error_body(const char *code, const char *message, const char *field, size_t *len) {
  json_t *err = json_pack("{s:s, s:s}", "code", code != NULL ? code : "error", "message",
                          message != NULL ? message : "");
  if (err != NULL && field != NULL) json_object_set_new(err, "field", json_string(field));
  json_t *root = err != NULL ? json_pack("{s:o}", "error", err) : NULL;
  char *s = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  *len = s != NULL ? strlen(s) : 0;
  return s;
}

static const http_header json_ctype[] = {{"content-type", "application/json", 0}};

int http_respond(http_responder *r, int status, const http_header *headers, size_t nheaders, const char *body,
                 size_t len) {
  if (r == NULL || r->released) return -EINVAL;
  if (status < 100 || status > 999) status = 500;
  r->released = 1;
  int rc = 0;
  if (r->req == NULL || r->started) {
    rc = -EPIPE;
  } else {
    send_full(r, status, headers, nheaders, body, len);
  }
  maybe_free(r);
  return rc;
}

int http_respond_json(http_responder *r, int status, json_t *body) {
  char *s = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(body);
  if (s == NULL) return http_respond_error(r, 500, "internal", "the response could not be encoded", NULL);
  int rc = http_respond(r, status, json_ctype, 1, s, strlen(s));
  free(s);
  return rc;
}

int http_respond_error(http_responder *r, int status, const char *code, const char *message, const char *field) {
  size_t len = 0;
  char *s = error_body(code, message, field, &len);
  int rc = http_respond(r, status, json_ctype, 1, s, len);
  free(s);
  return rc;
}

void http_responder_on_abort(http_responder *r, void (*fn)(void *arg), void *arg) {
  if (r == NULL) return;
  r->on_abort = fn;
  r->abort_arg = arg;
}

int http_responder_alive(const http_responder *r) { return r != NULL && r->req != NULL; }

/* ---- streams ------------------------------------------------------------ */

/* Hands the pending bytes to libh2o if no write is in flight; sends the final
 * chunk once the end is queued. Callers hold busy. */
static void stream_flush(http_responder *r) {
  if (r->req == NULL || r->in_flight || r->final_sent) return;
  if (r->pending_len == 0 && !r->end_queued) return;
  char *tmp = r->sending;
  size_t tmpcap = r->sending_cap;
  r->sending = r->pending;
  r->sending_cap = r->pending_cap;
  r->sending_len = r->pending_len;
  r->pending = tmp;
  r->pending_cap = tmpcap;
  r->pending_len = 0;
  h2o_send_state_t state = r->end_queued ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS;
  if (state == H2O_SEND_STATE_FINAL)
    r->final_sent = 1;
  else
    r->in_flight = 1;
  h2o_iovec_t buf = h2o_iovec_init(r->sending, r->sending_len);
  h2o_send(r->req, &buf, buf.len > 0 ? 1 : 0, state);
}

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req) {
  http_responder *r = H2O_STRUCT_FROM_MEMBER(http_responder, gen, g);
  r->in_flight = 0;
  r->sending_len = 0;
  r->busy++;
  stream_flush(r);
  r->busy--;
  maybe_free(r);
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req) {
  /* the request is being disposed; anchor_dispose does the bookkeeping */
  http_responder *r = H2O_STRUCT_FROM_MEMBER(http_responder, gen, g);
  r->in_flight = 0;
}

int http_stream_start(http_responder *r, int status, const http_header *headers, size_t nheaders,
                      void (*on_close)(void *arg), void *arg) {
  if (r == NULL || r->released) return -EINVAL;
  if (r->started) return -EALREADY;
  if (r->req == NULL) return -EPIPE;
  r->on_close = on_close;
  r->close_arg = arg;
  r->streaming = 1;
  r->gen.proceed = stream_proceed;
  r->gen.stop = stream_stop;
  begin_response(r, status, headers, nheaders, SIZE_MAX);
  r->busy++;
  h2o_start_response(r->req, &r->gen);
  /* an empty in-progress send writes the status line and headers now */
  r->in_flight = 1;
  h2o_send(r->req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
  r->busy--;
  return r->req != NULL ? 0 : -EPIPE;
}

int http_stream_write(http_responder *r, const char *data, size_t len) {
  if (r == NULL || r->released || !r->streaming) return -EINVAL;
  if (r->req == NULL || r->final_sent) return -EPIPE;
  if (len == 0) return 0;
  if (r->pending_len + len > r->pending_cap) {
    size_t cap = r->pending_cap ? r->pending_cap : 4096;
    while (cap < r->pending_len + len) cap *= 2;
    char *p = realloc(r->pending, cap);
    if (p == NULL) return -ENOMEM;
    r->pending = p;
    r->pending_cap = cap;
  }
  memcpy(r->pending + r->pending_len, data, len);
  r->pending_len += len;
  r->busy++;
  stream_flush(r);
  r->busy--;
  return r->req != NULL ? 0 : -EPIPE;
}

size_t http_stream_pending(const http_responder *r) {
  return r != NULL ? r->pending_len + (r->in_flight ? r->sending_len : 0) : 0;
}

void http_stream_end(http_responder *r) {
  if (r == NULL || r->released) return;
  if (!r->streaming) {
    http_respond(r, 204, NULL, 0, NULL, 0);
    return;
  }
  r->released = 1;
  if (r->req != NULL && !r->final_sent) {
    r->end_queued = 1;
    r->busy++;
    stream_flush(r);
    r->busy--;
  }
  maybe_free(r);
}

/* ---- requests ----------------------------------------------------------- */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static char *put(char **cursor, const char *src, size_t len) {
  char *dst = *cursor;
  if (len > 0) memcpy(dst, src, len);
  dst[len] = '\0';
  *cursor += len + 1;
  return dst;
}

/* Builds the responder with its self-contained copy of the request: one
 * allocation holding the struct, the arrays and every string. */
static http_responder *responder_new(http_server *s, h2o_req_t *req, size_t plen, const http_capture *caps,
                                     size_t ncaps) {
  const char *query = "";
  size_t qlen = 0;
  if (req->query_at != SIZE_MAX) {
    query = req->path.base + req->query_at + 1;
    qlen = req->path.len - req->query_at - 1;
  }
  int has_body = req->entity.base != NULL;
  size_t nh = req->headers.size + 1 + (has_body ? 1 : 0);
  char clen[32];
  int clen_len = snprintf(clen, sizeof(clen), "%zu", req->entity.len);

  size_t strings = req->method.len + 1 + plen + 1 + qlen + 1 + req->entity.len + 1 + INET6_ADDRSTRLEN + 1;
  for (size_t i = 0; i < ncaps; i++) strings += strlen(caps[i].name) + 1 + caps[i].len + 1;
  for (size_t i = 0; i < req->headers.size; i++)
    strings += req->headers.entries[i].name->len + 1 + req->headers.entries[i].value.len + 1;
  strings += sizeof("host") + req->input.authority.len + 1 + sizeof("content-length") + (size_t)clen_len + 1;

  size_t off_params = align8(sizeof(http_responder));
  size_t off_headers = off_params + align8(ncaps * sizeof(http_header));
  size_t off_strings = off_headers + align8(nh * sizeof(http_header));
  char *block = malloc(off_strings + strings);
  if (block == NULL) return NULL;
  http_responder *r = (http_responder *)block;
  memset(r, 0, sizeof(*r));
  http_header *params = (http_header *)(block + off_params);
  http_header *headers = (http_header *)(block + off_headers);
  char *cur = block + off_strings;

  r->srv = s;
  r->req = req;
  http_request *v = &r->view;
  v->method = put(&cur, req->method.base, req->method.len);
  v->path = put(&cur, req->path.base, plen);
  v->query = put(&cur, query, qlen);
  for (size_t i = 0; i < ncaps; i++) {
    params[i].name = put(&cur, caps[i].name, strlen(caps[i].name));
    char *val = cur;
    params[i].value_len = http_pct_decode(val, caps[i].value, caps[i].len, 0);
    params[i].value = val;
    cur += caps[i].len + 1;
  }
  v->params = params;
  v->nparams = ncaps;
  size_t k = 0;
  headers[k].name = put(&cur, "host", 4);
  headers[k].value = put(&cur, req->input.authority.base, req->input.authority.len);
  headers[k++].value_len = req->input.authority.len;
  if (has_body) {
    headers[k].name = put(&cur, "content-length", 14);
    headers[k].value = put(&cur, clen, (size_t)clen_len);
    headers[k++].value_len = (size_t)clen_len;
  }
  for (size_t i = 0; i < req->headers.size; i++) {
    const h2o_header_t *h = &req->headers.entries[i];
    headers[k].name = put(&cur, h->name->base, h->name->len);
    headers[k].value = put(&cur, h->value.base, h->value.len);
    headers[k++].value_len = h->value.len;
  }
  v->headers = headers;
  v->nheaders = k;
  v->body = put(&cur, req->entity.base, has_body ? req->entity.len : 0);
  v->body_len = has_body ? req->entity.len : 0;

  char *addr = cur;
  addr[0] = '\0';
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (req->conn->callbacks->get_peername != NULL &&
      req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) > 0) {
    if (ss.ss_family == AF_INET) {
      const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &sin->sin_addr, addr, INET6_ADDRSTRLEN);
      v->remote_port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &sin6->sin6_addr, addr, INET6_ADDRSTRLEN);
      v->remote_port = ntohs(sin6->sin6_port);
    }
  }
  v->remote_addr = addr;

  responder_anchor *a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), anchor_dispose);
  a->r = r;
  h2o_linklist_insert(&s->responders, &r->link);
  return r;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  http_server *s = ((sb_handler *)self)->srv;
  size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  http_capture caps[HTTP_MAX_PARAMS];
  size_t ncaps = 0;
  int path_matched = 0;
  const http_route_entry *route =
      http_routes_match(&s->routes, req->method.base, req->method.len, req->path.base, plen, caps, &ncaps, &path_matched);
  http_responder *r = responder_new(s, req, plen, caps, ncaps);
  if (r == NULL) {
    h2o_send_error_503(req, "Service Unavailable", "out of memory", H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    return 0;
  }
  if (route == NULL) {
    if (path_matched)
      http_respond_error(r, 405, "method_not_allowed", "this method is not allowed on this path", NULL);
    else
      http_respond_error(r, 404, "not_found", "no such resource", NULL);
    return 0;
  }
  route->fn(route->arg, &r->view, r);
  return 0;
}

const char *http_request_header(const http_request *req, const char *name) {
  if (req == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
  return NULL;
}

const char *http_request_param(const http_request *req, const char *name) {
  if (req == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < req->nparams; i++)
    if (strcmp(req->params[i].name, name) == 0) return req->params[i].value;
  return NULL;
}

int http_request_query(const http_request *req, const char *name, char *buf, size_t buflen) {
  if (req == NULL || name == NULL || buf == NULL || buflen == 0) return -EINVAL;
  size_t nlen = strlen(name);
  const char *p = req->query;
  while (*p != '\0') {
    const char *amp = strchr(p, '&');
    const char *end = amp != NULL ? amp : p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *kend = eq != NULL ? eq : end;
    char key[256];
    size_t klen = (size_t)(kend - p);
    if (klen < sizeof(key)) {
      klen = http_pct_decode(key, p, klen, 1);
      if (klen == nlen && memcmp(key, name, nlen) == 0) {
        const char *val = eq != NULL ? eq + 1 : end;
        size_t vlen = (size_t)(end - val);
        if (vlen + 1 > buflen) {
          /* decoding only shrinks; check the decoded size before refusing */
          char *tmp = malloc(vlen + 1);
          if (tmp == NULL) return -ENOMEM;
          size_t d = http_pct_decode(tmp, val, vlen, 1);
          if (d + 1 > buflen) {
            free(tmp);
            return -ENOSPC;
          }
          memcpy(buf, tmp, d + 1);
          free(tmp);
          return (int)d;
        }
        return (int)http_pct_decode(buf, val, vlen, 1);
      }
    }
    if (amp == NULL) break;
    p = amp + 1;
  }
  return -ENOENT;
}

/* ---- response filter: counters, and libh2o's own 413 made JSON ---------- */

typedef struct json_error_ostream {
  h2o_ostream_t super;
  h2o_iovec_t body;
  int sent;
} json_error_ostream;

static void json_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n, h2o_send_state_t st) {
  json_error_ostream *o = (json_error_ostream *)self;
  int head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
  if (o->sent || head) {
    h2o_ostream_send_next(self, req, NULL, 0, st);
    return;
  }
  o->sent = 1;
  h2o_ostream_send_next(self, req, &o->body, 1, st);
}

static void filter_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot) {
  http_server *s = ((sb_filter *)self)->srv;
  int status = req->res.status;
  if (status >= 100 && status < 600) s->stats.responses_by_class[status / 100]++;
  if (status == 413) {
    s->stats.responses_413++;
    /* libh2o answers an oversized body itself, before any handler, on the
     * fallback path; give that answer API.md's error shape */
    if (req->pathconf == &s->hostconf->fallback_path) {
      char msg[128];
      snprintf(msg, sizeof(msg), "the request body is larger than the limit of %zu bytes", s->body_limit);
      size_t len = 0;
      char *body = error_body("payload_too_large", msg, NULL, &len);
      if (body != NULL) {
        json_error_ostream *o = (json_error_ostream *)h2o_add_ostream(req, sizeof(*o), slot);
        o->body = h2o_strdup(&req->pool, body, len);
        o->sent = 0;
        o->super.do_send = json_error_send;
        free(body);
        memset(&req->res.headers, 0, sizeof(req->res.headers));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        req->res.reason = reason_phrase(413);
        req->res.content_length = len;
        slot = &o->super.next;
      }
    }
  }
  h2o_setup_next_ostream(req, slot);
}

/* ---- connections -------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  http_conn *c = (http_conn *)h;
  http_server *s = c->srv;
  h2o_linklist_unlink(&c->link);
  s->stats.active_connections--;
  free(c);
  maybe_finish(s);
}

static void on_unaccepted_closed(uv_handle_t *h) { free(h); }

static void on_accept(uv_stream_t *listener, int status) {
  http_server *s = listener->data;
  if (status != 0) {
    log_warn("http: accepting a connection failed: %s", uv_strerror(status));
    return;
  }
  http_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return;
  uv_tcp_init(s->loop, &c->tcp);
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_unaccepted_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->srv = s;
  h2o_linklist_insert(&s->conns, &c->link);
  s->stats.active_connections++;
  s->stats.connections_total++;
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  h2o_accept(&s->accept_ctx, sock);
}

/* Shuts a connection's socket down under libh2o's feet: libh2o then sees
 * end-of-file (or a write error) and closes the connection itself, which a
 * direct close would not allow (it still holds the socket). */
static void conn_shutdown(http_conn *c, int how) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, how);
}

static void shutdown_all(http_server *s, int how) {
  for (h2o_linklist_t *n = s->conns.next; n != &s->conns; n = n->next)
    conn_shutdown(H2O_STRUCT_FROM_MEMBER(http_conn, link, n), how);
}

/* ---- server life -------------------------------------------------------- */

static int parse_listen(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen) {
  if (addr == NULL || *addr == '\0') {
    snprintf(err, errlen, "the listen address is empty; give HOST:PORT, e.g. 127.0.0.1:8080");
    return -EINVAL;
  }
  char host[128];
  const char *port_s;
  int v6 = 0;
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (close == NULL || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof(host)) goto bad;
    memcpy(host, addr + 1, (size_t)(close - addr - 1));
    host[close - addr - 1] = '\0';
    port_s = close + 2;
    v6 = 1;
  } else {
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) goto bad;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    port_s = colon + 1;
    if (strchr(host, ':') != NULL) goto bad;
  }
  char *end = NULL;
  errno = 0;
  long port = strtol(port_s, &end, 10);
  if (*port_s == '\0' || end == NULL || *end != '\0' || errno != 0 || port < 0 || port > 65535) goto bad;
  memset(ss, 0, sizeof(*ss));
  if (v6) {
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0) goto bad;
  } else {
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
    if (*host == '\0' || strcmp(host, "*") == 0) snprintf(host, sizeof(host), "0.0.0.0");
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0) goto bad;
  }
  return 0;
bad:
  snprintf(err, errlen, "listen address \"%s\" is not HOST:PORT or [IPV6]:PORT with a numeric address and a port 0-65535",
           addr);
  return -EINVAL;
}

/* Opens, binds and listens synchronously so every failure is reported before
 * any loop handle exists. Returns the fd or a negative errno. */
static int open_listener(const struct sockaddr_storage *ss, const char *addr, char *err, size_t errlen) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "could not create a socket for %s: %s", addr, strerror(e));
    return -e;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (bind(fd, (const struct sockaddr *)ss, sl) != 0 || listen(fd, HTTP_BACKLOG) != 0) {
    int e = errno;
    close(fd);
    snprintf(err, errlen, "could not listen on %s: %s%s", addr, strerror(e),
             e == EADDRINUSE ? " (another process uses that port; pick another with --listen)" : "");
    return -e;
  }
  return fd;
}

static uint16_t sock_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

static uint64_t or_default(uint64_t v, uint64_t def) { return v != 0 ? v : def; }

int http_new(uv_loop_t *loop, const http_options *opt, http_server **out, char *err, size_t errlen) {
  char scratch[8];
  if (err == NULL || errlen == 0) {
    err = scratch;
    errlen = sizeof(scratch);
  }
  err[0] = '\0';
  if (loop == NULL || opt == NULL || out == NULL) {
    snprintf(err, errlen, "http_new needs a loop, options and an out pointer");
    return -EINVAL;
  }
  *out = NULL;
  /* libuv writes with write(2): a peer that left would otherwise kill the
   * process with SIGPIPE instead of failing the write with EPIPE */
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_storage ss;
  int rc = parse_listen(opt->listen, &ss, err, errlen);
  if (rc != 0) return rc;
  if ((opt->tls_cert_file == NULL) != (opt->tls_key_file == NULL)) {
    snprintf(err, errlen, "TLS needs both a certificate file and a key file; only the %s was given",
             opt->tls_cert_file != NULL ? "certificate" : "key");
    return -EINVAL;
  }

  http_server *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    snprintf(err, errlen, "out of memory creating the HTTP server");
    return -ENOMEM;
  }
  s->loop = loop;
  s->body_limit = opt->body_limit != 0 ? opt->body_limit : HTTP_DEFAULT_BODY_LIMIT;
  s->shutdown_timeout_ms = or_default(opt->shutdown_timeout_ms, HTTP_DEFAULT_SHUTDOWN_TIMEOUT_MS);
  uint64_t header_ms = or_default(opt->header_timeout_ms, HTTP_DEFAULT_HEADER_TIMEOUT_MS);
  uint64_t idle_ms = or_default(opt->idle_timeout_ms, HTTP_DEFAULT_IDLE_TIMEOUT_MS);
  h2o_linklist_init_anchor(&s->conns);
  h2o_linklist_init_anchor(&s->responders);

  if (opt->tls_cert_file != NULL) {
    rc = http_tls_load(opt->tls_cert_file, opt->tls_key_file, &s->ssl_ctx, err, errlen);
    if (rc != 0) {
      free(s);
      return rc;
    }
  }
  int fd = open_listener(&ss, opt->listen, err, errlen);
  if (fd < 0) {
    http_tls_free(s->ssl_ctx);
    free(s);
    return fd;
  }
  s->port = sock_port(fd);

  h2o_config_init(&s->config);
  s->config.server_name = h2o_iovec_init(H2O_STRLIT("switchboard"));
  s->config.max_request_entity_size = s->body_limit;
  /* libh2o 2.2's HTTP/1 has one read timer for "whole request" and "idle
   * between requests"; the shorter bound is the safe one */
  s->config.http1.req_timeout = header_ms < idle_ms ? header_ms : idle_ms;
  s->config.http1.upgrade_to_http2 = 0;
  s->config.handshake_timeout = header_ms;
  s->hostconf = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *pathconf = h2o_config_register_path(s->hostconf, "/", 0);
  sb_handler *handler = (sb_handler *)h2o_create_handler(pathconf, sizeof(*handler));
  handler->super.on_req = on_req;
  handler->srv = s;
  sb_filter *f = (sb_filter *)h2o_create_filter(pathconf, sizeof(*f));
  f->super.on_setup_ostream = filter_setup_ostream;
  f->srv = s;
  f = (sb_filter *)h2o_create_filter(&s->hostconf->fallback_path, sizeof(*f));
  f->super.on_setup_ostream = filter_setup_ostream;
  f->srv = s;
  h2o_context_init(&s->ctx, loop, &s->config);
  s->accept_ctx.ctx = &s->ctx;
  s->accept_ctx.hosts = s->config.hosts;
  s->accept_ctx.ssl_ctx = s->ssl_ctx;

  uv_timer_init(loop, &s->deadline);
  uv_timer_init(loop, &s->reaper);
  s->deadline.data = s;
  s->reaper.data = s;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->listener_open = 1;
  rc = uv_tcp_open(&s->listener, fd);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, HTTP_BACKLOG, on_accept);
  if (rc != 0) {
    if (uv_fileno((uv_handle_t *)&s->listener, &(uv_os_fd_t){0}) != 0) close(fd);
    snprintf(err, errlen, "could not listen on %s: %s", opt->listen, uv_strerror(rc));
    http_close(s, NULL, NULL); /* finishes on the loop */
    return rc;
  }
  log_info("http: listening on %s (port %u)%s", opt->listen, (unsigned)s->port, s->ssl_ctx != NULL ? " with TLS" : "");
  *out = s;
  return 0;
}

uint16_t http_bound_port(const http_server *s) { return s != NULL && s->listener_open ? s->port : 0; }

int http_route(http_server *s, const char *method, const char *pattern, http_handler_fn fn, void *arg) {
  if (s == NULL) return -EINVAL;
  return http_routes_add(&s->routes, method, pattern, fn, arg);
}

void http_get_stats(const http_server *s, http_stats *out) {
  if (s == NULL || out == NULL) return;
  *out = s->stats;
}

static void on_listener_closed(uv_handle_t *h) {
  http_server *s = h->data;
  s->listener_open = 0;
  maybe_finish(s);
}

void http_stop_accepting(http_server *s) {
  if (s == NULL || s->ctx.shutdown_requested) return;
  s->ctx.shutdown_requested = 1;
  if (s->listener_open && !uv_is_closing((uv_handle_t *)&s->listener))
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  /* idle keep-alive connections read end-of-file and close; busy ones finish
   * their response, which then carries "connection: close" */
  shutdown_all(s, SHUT_RD);
}

/* The first responder not yet forced, or NULL. Rescanned each time because
 * the hooks run while forcing may finish other requests. */
static http_responder *next_unforced(http_server *s) {
  for (h2o_linklist_t *n = s->responders.next; n != &s->responders; n = n->next) {
    http_responder *r = H2O_STRUCT_FROM_MEMBER(http_responder, link, n);
    if (!r->forced) return r;
  }
  return NULL;
}

static void on_deadline(uv_timer_t *t) {
  http_server *s = t->data;
  http_responder *r;
  while ((r = next_unforced(s)) != NULL) {
    r->forced = 1;
    r->busy++;
    if (!r->final_sent) {
      r->aborted = 1;
      s->stats.requests_aborted++;
      fire_abort_hooks(r);
    }
    if (r->req != NULL && !r->started) {
      size_t len = 0;
      char *body = error_body("shutting_down", "the server is shutting down; retry shortly", NULL, &len);
      send_full(r, 503, json_ctype, 1, body, len);
      free(body);
    } else if (r->req != NULL && r->streaming && !r->final_sent) {
      r->end_queued = 1;
      stream_flush(r);
    }
    r->busy--;
    maybe_free(r);
  }
  /* what still cannot finish (a client that does not read) fails its write */
  shutdown_all(s, SHUT_RDWR);
}

/* Disposes the libh2o context like h2o_context_dispose() does, minus its
 * nested uv_run(): that one is not allowed inside a loop callback, where
 * this runs. The timers' uv_close() completes on later loop turns, which
 * the reaper waits for. */
static void context_dispose(h2o_context_t *ctx) {
  h2o_globalconf_t *config = ctx->globalconf;
  for (size_t i = 0; config->hosts[i] != NULL; ++i) {
    h2o_hostconf_t *hostconf = config->hosts[i];
    for (size_t j = 0; j != hostconf->paths.size; ++j) h2o_context_dispose_pathconf_context(ctx, hostconf->paths.entries + j);
    h2o_context_dispose_pathconf_context(ctx, &hostconf->fallback_path);
  }
  free(ctx->_pathconfs_inited.entries);
  free(ctx->_module_configs);
  h2o_timeout_dispose(ctx->loop, &ctx->zero_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->one_sec_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->hundred_ms_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->handshake_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->http1.req_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->http2.idle_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->http2.graceful_shutdown_timeout);
  h2o_timeout_dispose(ctx->loop, &ctx->proxy.io_timeout);
  h2o_filecache_destroy(ctx->filecache);
  ctx->filecache = NULL;
  for (size_t i = 0; i != ctx->storage.size; ++i)
    if (ctx->storage.entries[i].dispose != NULL) ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
  free(ctx->storage.entries);
  h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
  h2o_multithread_destroy_queue(ctx->queue);
  if (ctx->_timestamp_cache.value != NULL) h2o_mem_release_shared(ctx->_timestamp_cache.value);
}

static void reap_last(uv_handle_t *h) {
  http_server *s = h->data;
  void (*done)(void *) = s->done;
  void *arg = s->done_arg;
  free(s);
  if (done != NULL) done(arg);
}

/* Closed after libh2o's handles, so its close callback runs at least one
 * closing pass later than theirs; the reaper is closed from here for a
 * second pass, which is later than theirs whatever order a pass runs in. */
static void reap_first(uv_handle_t *h) {
  http_server *s = h->data;
  uv_close((uv_handle_t *)&s->reaper, reap_last);
}

static void maybe_finish(http_server *s) {
  if (!s->closing || s->torn_down || s->listener_open || !h2o_linklist_is_empty(&s->conns)) return;
  s->torn_down = 1;
  uv_timer_stop(&s->deadline);
  context_dispose(&s->ctx);
  h2o_config_dispose(&s->config);
  http_tls_free(s->ssl_ctx);
  s->ssl_ctx = NULL;
  http_routes_free(&s->routes);
  uv_close((uv_handle_t *)&s->deadline, reap_first);
}

void http_close(http_server *s, void (*done)(void *arg), void *arg) {
  if (s == NULL) {
    if (done != NULL) done(arg);
    return;
  }
  if (s->closing) return;
  s->closing = 1;
  s->done = done;
  s->done_arg = arg;
  http_stop_accepting(s);
  if (!h2o_linklist_is_empty(&s->conns)) uv_timer_start(&s->deadline, on_deadline, s->shutdown_timeout_ms, 0);
  maybe_finish(s);
}
