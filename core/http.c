/* http.c — the HTTP/1.1 server: libh2o on the host's libuv loop, accepting, routing, counters, shutdown. */
#include "http_internal.h"
#include "http_tls.h"
#include "listen_addr.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_DEFAULT_BODY_LIMIT ((size_t)1 << 20)
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_DEFAULT_SHUTDOWN_TIMEOUT_MS 5000
#define HTTP_DEFAULT_WS_PING_MS 30000
#define HTTP_BACKLOG 511

static void maybe_finish(http_server *s);

/* ---- requests ------------------------------------------------------------ */

/* The sentence of a 413 for a body over the limit. */
static void too_large_msg(const http_server *s, char *msg, size_t len) {
  snprintf(msg, len, "the request body is larger than the limit of %zu bytes", s->body_limit);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  http_server *s = ((sb_handler *)self)->srv;
  size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  http_capture caps[HTTP_MAX_PARAMS];
  size_t ncaps = 0;
  int path_matched = 0;
  const http_route_entry *route =
      http_routes_match(&s->routes, req->method.base, req->method.len, req->path.base, plen, caps, &ncaps, &path_matched);
  if (route == NULL && path_matched && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
    /* HEAD is GET without the body (send_full leaves the body out) */
    int unused = 0;
    route = http_routes_match(&s->routes, "GET", 3, req->path.base, plen, caps, &ncaps, &unused);
  }
  http_responder *r = http__responder_new(s, req, plen, caps, ncaps);
  if (r == NULL) {
    h2o_send_error_503(req, "Service Unavailable", "out of memory", H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    return 0;
  }
  if (req->entity.base != NULL && req->entity.len > s->body_limit) { /* see max_request_entity_size */
    char msg[96];
    too_large_msg(s, msg, sizeof(msg));
    http_respond_error(r, 413, "payload_too_large", msg, NULL);
    return 0;
  }
  if (route == NULL) {
    if (path_matched) {
      char allow[128];
      http_routes_allowed(&s->routes, req->path.base, plen, allow, sizeof(allow));
      char msg[192];
      snprintf(msg, sizeof(msg), "%.*s is not allowed here; allowed: %s", (int)req->method.len, req->method.base,
               allow);
      size_t len = 0;
      char *body = http__error_body("method_not_allowed", msg, NULL, &len);
      http_header h[] = {{"content-type", "application/json", 0}, {"allow", allow, 0}};
      http_respond(r, 405, h, 2, body, len);
      free(body);
    } else
      http_respond_error(r, 404, "not_found", "no such resource", NULL);
    return 0;
  }
  route->fn(route->arg, &r->view, r);
  return 0;
}

/* ---- response filter: counters, and libh2o's own errors made JSON ------ */

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
  if (status == 413) s->stats.responses_413++;
  /* libh2o answers some bad requests itself, before any handler, on the
   * fallback path (oversized or malformed body, unknown Expect); give those
   * answers API.md's error shape too */
  if (status >= 400 && req->pathconf == &s->hostconf->fallback_path) {
    char msg[128];
    const char *code = "bad_request";
    if (status == 413) {
      code = "payload_too_large";
      too_large_msg(s, msg, sizeof(msg));
    } else if (status == 417) {
      code = "expectation_failed";
      snprintf(msg, sizeof(msg), "the Expect header is not supported; only 100-continue is");
    } else if (status == 400) {
      snprintf(msg, sizeof(msg), "the request is malformed (bad Content-Length or chunked encoding)");
    } else {
      code = status >= 500 ? "internal" : "error";
      snprintf(msg, sizeof(msg), "%s", http__reason_phrase(status));
    }
    size_t len = 0;
    char *body = http__error_body(code, msg, NULL, &len);
    if (body != NULL) {
      json_error_ostream *o = (json_error_ostream *)h2o_add_ostream(req, sizeof(*o), slot);
      o->body = h2o_strdup(&req->pool, body, len);
      o->sent = 0;
      o->super.do_send = json_error_send;
      free(body);
      memset(&req->res.headers, 0, sizeof(req->res.headers));
      h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
      req->res.reason = http__reason_phrase(status);
      req->res.content_length = len;
      slot = &o->super.next;
    }
  }
  h2o_setup_next_ostream(req, slot);
}

/* ---- connections -------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  http_conn *c = (http_conn *)h;
  http_server *s = c->srv;
  if (c->abandoned) { /* let go at the stop (on_abandon); the server is kept for it */
    h2o_linklist_unlink(&c->link);
    free(c);
    return;
  }
  /* c->ws is NULL here: a WebSocket forgets its connection when it finishes,
   * which is before libh2o closes the socket */
  h2o_linklist_unlink(&c->link);
  http__io_forget(c);
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
  c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  if (http__io_adopt(c) != 0) log_warn("http: reading a new connection could not start; libh2o will start it");
  h2o_accept(&s->accept_ctx, c->sock);
}

/* Shuts a connection's socket down under libh2o's feet: libh2o then sees
 * end-of-file (or a write error) and closes the connection itself, which a
 * direct close would not allow (it still holds the socket). */
void http__conn_shutdown(http_conn *c, int how) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, how);
}

/* Shuts down every connection, or (websockets_too 0) every one that is not
 * a WebSocket: those get a closing handshake instead. */
static void shutdown_all(http_server *s, int how, int websockets_too) {
  for (h2o_linklist_t *n = s->conns.next; n != &s->conns; n = n->next) {
    http_conn *c = H2O_STRUCT_FROM_MEMBER(http_conn, link, n);
    if (websockets_too || c->ws == NULL) http__conn_shutdown(c, how);
  }
}

http_conn *http__conn_of(http_server *s, h2o_req_t *req) {
  h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
  for (h2o_linklist_t *n = s->conns.next; sock != NULL && n != &s->conns; n = n->next) {
    http_conn *c = H2O_STRUCT_FROM_MEMBER(http_conn, link, n);
    if (c->sock == sock) return c;
  }
  return NULL;
}

/* libh2o 2.2's HTTP/1 has a single read timer, from the end of one response
 * until the next request is complete; it is set to the idle timeout. The
 * header timeout is kept here: a connection that is reading (libh2o stops
 * reading while a handler has the request) and holds part of a request has
 * that long, from when the sweep first sees those bytes, to complete it. */
static void on_sweep(uv_timer_t *t) {
  http_server *s = t->data;
  uint64_t now = uv_now(s->loop);
  for (h2o_linklist_t *n = s->conns.next; n != &s->conns; n = n->next) {
    http_conn *c = H2O_STRUCT_FROM_MEMBER(http_conn, link, n);
    if (c->ws != NULL) continue; /* a WebSocket's liveness is http__ws_sweep's */
    int receiving = c->sock != NULL && h2o_socket_is_reading(c->sock) && c->sock->input->size > 0;
    if (!receiving) {
      c->receiving_since = 0;
    } else if (c->receiving_since == 0) {
      c->receiving_since = now;
    } else if (now - c->receiving_since >= s->header_timeout_ms) {
      c->receiving_since = 0;
      http__conn_shutdown(c, SHUT_RDWR);
    }
  }
  http__ws_sweep(s, now);
}

/* ---- server life -------------------------------------------------------- */

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
  int rc = listen_parse(opt->listen, &ss, err, errlen);
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
  h2o_linklist_init_anchor(&s->abandoned_conns);
  h2o_linklist_init_anchor(&s->responders);
  h2o_linklist_init_anchor(&s->websockets);
  h2o_linklist_init_anchor(&s->ws_flush);
  s->ws_ping_ms = or_default(opt->ws_ping_interval_ms, HTTP_DEFAULT_WS_PING_MS);

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
  /* No Server header: it names the software to every caller, and libh2o
   * formats it with its own sprintf in every response (~1 000 instructions
   * of the loop's ~46 000 per webhook, bench/ingest/callgrind.sh). */
  s->config.server_name = h2o_iovec_init(NULL, 0);
  /* One more than the limit: libh2o refuses a chunked body that reaches its
   * limit, a body of exactly that size (and a length over it, unread); a
   * body of exactly one more, by Content-Length, on_req refuses. */
  s->config.max_request_entity_size = s->body_limit + 1;
  /* the idle wait is libh2o's read timer; the header timeout is on_sweep's */
  s->config.http1.req_timeout = idle_ms;
  s->header_timeout_ms = header_ms;
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
  /* Request bodies live in socket buffers until their webhook is answered,
   * after its durable commit: under load one per connection. libh2o keeps
   * 16 spare buffers per thread and frees the rest, so every further
   * request malloc'd and freed one of several KiB, and glibc consolidates
   * its bins for each block that size (PERF=1 bench/ingest/anatomy.sh: glibc's
   * malloc and free 7.3-8.9 % of the loop's time -> 7.1-7.6 %).
   * At most 256 are kept. */
  if (h2o_socket_buffer_prototype.allocator.max < 256) h2o_socket_buffer_prototype.allocator.max = 256;
  h2o_context_init(&s->ctx, loop, &s->config);
  s->accept_ctx.ctx = &s->ctx;
  s->accept_ctx.hosts = s->config.hosts;
  s->accept_ctx.ssl_ctx = s->ssl_ctx;

  http__io_init(s);
  uv_timer_init(loop, &s->deadline);
  uv_timer_init(loop, &s->reaper);
  uv_timer_init(loop, &s->sweeper);
  uv_timer_init(loop, &s->ws_flusher);
  s->ws_flusher.data = s;
  s->deadline.data = s;
  s->reaper.data = s;
  s->sweeper.data = s;
  uint64_t period = header_ms / 4;
  period = period < 25 ? 25 : period > 1000 ? 1000 : period;
  uv_timer_start(&s->sweeper, on_sweep, period, period);
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
   * their response, which then carries "connection: close"; WebSockets stay
   * until their owner or http_close closes them */
  shutdown_all(s, SHUT_RD, 0);
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

/* The last resort of a stop: connections that libh2o did not close after
 * their sockets were shut down (seen with TLS) would hold the stop for
 * good. They are let go: no longer counted, their reads stopped, and at
 * the end (reap_last) neither they nor libh2o's timers keep the loop
 * alive; the server's memory stays with them until the process ends. */
static void on_abandon(uv_timer_t *t) {
  http_server *s = t->data;
  size_t n = 0;
  while (!h2o_linklist_is_empty(&s->conns)) {
    http_conn *c = H2O_STRUCT_FROM_MEMBER(http_conn, link, s->conns.next);
    h2o_linklist_unlink(&c->link);
    h2o_linklist_insert(&s->abandoned_conns, &c->link);
    http__io_abandon(c);
    c->abandoned = 1;
    s->stats.active_connections--;
    n++;
  }
  s->abandoned += n;
  if (n > 0) log_warn("http: %zu connections did not close after the stop's deadline; stopping without them", n);
  maybe_finish(s);
}

static void on_deadline(uv_timer_t *t) {
  http_server *s = t->data;
  http_responder *r;
  while ((r = next_unforced(s)) != NULL) http__responder_force(r);
  /* what still cannot finish (a client that does not read, a WebSocket
   * peer that did not answer the close) fails its read or write */
  shutdown_all(s, SHUT_RDWR, 1);
  if (!s->torn_down) uv_timer_start(&s->deadline, on_abandon, HTTP_ABANDON_MS, 0);
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

/* uv_walk: libh2o's timers of this server's context (their data points
 * into it) no longer keep the loop alive. */
static void unref_context_timer(uv_handle_t *h, void *arg) {
  http_server *s = arg;
  const char *d = h->data, *lo = (const char *)&s->ctx, *hi = lo + sizeof(s->ctx);
  if (h->type == UV_TIMER && d >= lo && d < hi) uv_unref(h);
}

static void reap_last(uv_handle_t *h) {
  http_server *s = h->data;
  void (*done)(void *) = s->done;
  void *arg = s->done_arg;
  if (s->abandoned == 0) {
    free(s);
  } else { /* kept: the abandoned connections and libh2o's context still point here */
    for (h2o_linklist_t *n = s->abandoned_conns.next; n != &s->abandoned_conns; n = n->next)
      uv_unref((uv_handle_t *)&H2O_STRUCT_FROM_MEMBER(http_conn, link, n)->tcp);
    uv_walk(s->loop, unref_context_timer, s);
  }
  if (done != NULL) done(arg);
}

/* The reaper is closed from a close callback of a handle closed with
 * libh2o's, so it finishes at least one closing pass after theirs, whatever
 * order a single pass runs in. */
static void reap_first(uv_handle_t *h) {
  http_server *s = h->data;
  uv_close((uv_handle_t *)&s->reaper, reap_last);
}

static void maybe_finish(http_server *s) {
  if (!s->closing || s->torn_down || s->listener_open || !h2o_linklist_is_empty(&s->conns)) return;
  s->torn_down = 1;
  uv_close((uv_handle_t *)&s->sweeper, NULL);
  uv_close((uv_handle_t *)&s->ws_flusher, NULL);
  http__io_close(s);
  /* An abandoned connection (on_abandon) still has libh2o's timers and
   * context: those are left to the process's end, which comes next. */
  if (s->abandoned == 0) {
    context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    http_tls_free(s->ssl_ctx);
    s->ssl_ctx = NULL;
    http_routes_free(&s->routes);
  } else { /* but its message queue, whose wakeup would keep the loop alive */
    h2o_multithread_unregister_receiver(s->ctx.queue, &s->ctx.receivers.hostinfo_getaddr);
    h2o_multithread_destroy_queue(s->ctx.queue);
  }
  uv_close((uv_handle_t *)&s->deadline, reap_first);
}

int http_reload_tls(http_server *s, const char *cert_file, const char *key_file, char *err, size_t errlen) {
  if (s->ssl_ctx == NULL) {
    snprintf(err, errlen, "the server was started without TLS; turning it on needs a restart");
    return -EINVAL;
  }
  void *fresh = NULL;
  int rc = http_tls_load(cert_file, key_file, &fresh, err, errlen);
  if (rc != 0) return rc;
  /* Connections already accepted hold their own reference to the old
   * context (OpenSSL counts them); new ones get the fresh pair. */
  http_tls_free(s->ssl_ctx);
  s->ssl_ctx = fresh;
  s->accept_ctx.ssl_ctx = fresh;
  return 0;
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
  http__ws_close_all(s);
  if (!h2o_linklist_is_empty(&s->conns)) uv_timer_start(&s->deadline, on_deadline, s->shutdown_timeout_ms, 0);
  maybe_finish(s);
}
