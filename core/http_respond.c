/* http_respond.c — the HTTP module's request side: request views, responders, JSON errors, streams. */
#include "http_internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- responses ---------------------------------------------------------- */

const char *http__reason_phrase(int status) {
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
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Payload Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Entity";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
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
  if (!r->final_sent && !r->aborted) {
    r->aborted = 1;
    s->stats.requests_aborted++;
    r->busy++;
    fire_abort_hooks(r);
    r->busy--;
  }
  maybe_free(r);
}

/* True when s[0..len) could end a header line early (response splitting). */
static int has_line_break(const char *s, size_t len) {
  return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL || memchr(s, '\0', len) != NULL;
}

/* Copies headers into the request pool; names lower-cased; framing headers
 * and headers that would break the response's framing are dropped. */
static void set_response_headers(h2o_req_t *req, const http_header *headers, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *name = headers[i].name;
    if (name == NULL || headers[i].value == NULL) continue;
    size_t nlen = strlen(name);
    if (nlen == 0 || strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0)
      continue;
    size_t vlen = headers[i].value_len != 0 ? headers[i].value_len : strlen(headers[i].value);
    if (has_line_break(name, nlen) || strchr(name, ':') != NULL || has_line_break(headers[i].value, vlen)) {
      log_warn("http: dropped response header \"%s\": a line break or colon would corrupt the response", name);
      continue;
    }
    char *lname = h2o_mem_alloc_pool(&req->pool, nlen + 1);
    for (size_t k = 0; k < nlen; k++) lname[k] = (char)tolower((unsigned char)name[k]);
    lname[nlen] = '\0';
    h2o_iovec_t v = h2o_strdup(&req->pool, headers[i].value, vlen);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lname, nlen, 1, NULL, v.base, v.len);
  }
}

static void begin_response(http_responder *r, int status, const http_header *headers, size_t n, size_t content_length) {
  h2o_req_t *req = r->req;
  req->res.status = status;
  req->res.reason = http__reason_phrase(status);
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

char *http__error_body(const char *code, const char *message, const char *field, size_t *len) {
  json_t *err = json_pack("{s:s, s:s}", "code", code != NULL ? code : "error", "message",
                          message != NULL ? message : "");
  if (err != NULL && field != NULL) json_object_set_new(err, "field", json_string(field));
  json_t *root = err != NULL ? json_pack("{s:o}", "error", err) : NULL;
  char *s = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  if (s == NULL) /* not UTF-8, or out of memory: still answer in the error shape */
    s = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"the error could not be encoded\"}}");
  *len = s != NULL ? strlen(s) : 0;
  return s;
}

static const http_header json_ctype[] = {{"content-type", "application/json", 0}};

int http_respond(http_responder *r, int status, const http_header *headers, size_t nheaders, const char *body,
                 size_t len) {
  if (r == NULL || r->released) return -EINVAL;
  if (status < 100 || status > 999) status = 500;
  r->released = 1;
  void (*respond_fn)(void *, int) = r->on_respond;
  r->on_respond = NULL;
  if (respond_fn != NULL) respond_fn(r->respond_arg, status);
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
  /* A 503 is always "come back": say when, as a client's retry loop reads it. */
  static const http_header unavailable[] = {{"content-type", "application/json", 0}, {"retry-after", "5", 0}};
  size_t len = 0;
  char *s = http__error_body(code, message, field, &len);
  int rc = status == 503 ? http_respond(r, status, unavailable, 2, s, len)
                          : http_respond(r, status, json_ctype, 1, s, len);
  free(s);
  return rc;
}

void http_responder_on_abort(http_responder *r, void (*fn)(void *arg), void *arg) {
  if (r == NULL) return;
  r->on_abort = fn;
  r->abort_arg = arg;
}

void http_responder_on_respond(http_responder *r, void (*fn)(void *arg, int status), void *arg) {
  if (r == NULL) return;
  r->on_respond = fn;
  r->respond_arg = arg;
}

int http_responder_alive(const http_responder *r) { return r != NULL && r->req != NULL && !r->aborted; }

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
  if (h2o_memis(r->req->input.method.base, r->req->input.method.len, H2O_STRLIT("HEAD"))) {
    /* the head alone: a HEAD has no body, so there is nothing to stream */
    r->busy++;
    send_full(r, status, headers, nheaders, NULL, 0);
    r->busy--;
    return -ECANCELED;
  }
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
  /* The handler is done with the stream and may free what the hooks point
   * at: a client that goes away while the end is still queued (it stopped
   * reading) must not call them any more. */
  r->on_close = NULL;
  r->on_abort = NULL;
  if (r->req != NULL && !r->final_sent) {
    r->end_queued = 1;
    r->busy++;
    stream_flush(r);
    r->busy--;
  }
  maybe_free(r);
}

void http__responder_upgraded(http_responder *r) {
  r->started = 1;
  r->final_sent = 1;
  r->released = 1;
  /* freed with the request, once libh2o has written the 101 */
}

void http__responder_force(http_responder *r) {
  http_server *s = r->srv;
  r->forced = 1;
  r->busy++;
  if (!r->final_sent) {
    r->aborted = 1;
    if (s != NULL) s->stats.requests_aborted++;
    fire_abort_hooks(r);
  }
  if (r->req != NULL && !r->started) {
    size_t len = 0;
    char *body = http__error_body("shutting_down", "the server is shutting down; retry shortly", NULL, &len);
    send_full(r, 503, json_ctype, 1, body, len);
    free(body);
  } else if (r->req != NULL && r->streaming && !r->final_sent) {
    r->end_queued = 1;
    stream_flush(r);
  }
  r->busy--;
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

/* Writes a host-order IPv4 address as dotted decimal into out (at least 16
 * bytes): every webhook carries its peer's address, and inet_ntop's
 * sprintf was a twentieth of the loop's work per request. */
static void http__ipv4_text(uint32_t a, char *out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    unsigned v = (a >> shift) & 0xff;
    if (v >= 100) *out++ = (char)('0' + v / 100);
    if (v >= 10) *out++ = (char)('0' + v / 10 % 10);
    *out++ = (char)('0' + v % 10);
    *out++ = shift > 0 ? '.' : '\0';
  }
}

http_responder *http__responder_new(http_server *s, h2o_req_t *req, size_t plen, const http_capture *caps,
                                    size_t ncaps) {
  const char *query = "";
  size_t qlen = 0;
  if (req->query_at != SIZE_MAX) {
    query = req->path.base + req->query_at + 1;
    qlen = req->path.len - req->query_at - 1;
  }
  int has_body = req->entity.base != NULL;
  size_t nh = req->headers.size + 1 + (has_body ? 1 : 0);
  char clen[32], *cp = clen + sizeof(clen);
  size_t cv = req->entity.len;
  do *--cp = (char)('0' + cv % 10); while ((cv /= 10) != 0);
  int clen_len = (int)(clen + sizeof(clen) - cp);
  memmove(clen, cp, (size_t)clen_len); /* decimal by hand: no snprintf per request */

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
      http__ipv4_text(ntohl(sin->sin_addr.s_addr), addr);
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
