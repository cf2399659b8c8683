/* http_internal.h — what core/http.c and core/http_respond.c share: libh2o and the server's structs. */
#ifndef SB_CORE_HTTP_INTERNAL_H
#define SB_CORE_HTTP_INTERNAL_H

#include "http.h"
#include "http_router.h"

#include <h2o.h>

/* After the stop's deadline shut every socket down, how long libh2o has to
 * close them before the server lets the rest go. */
#define HTTP_ABANDON_MS 2000

typedef struct http_conn {
  uv_tcp_t tcp; /* first: libh2o's close callback hands back this handle */
  http_server *srv;
  h2o_socket_t *sock;
  uint64_t receiving_since; /* loop time the current partial request was first seen, 0 = none */
  h2o_linklist_t link;
  struct http_ws *ws;       /* set once the connection became a WebSocket (http_ws.c) */
  int abandoned;            /* let go at the stop (on_abandon): in srv->abandoned_conns */
  /* http_io.c: libh2o's read callbacks, whether libh2o wants the socket
   * read, whether libuv is reading it (through http_io.c's callbacks); a
   * write the kernel took at once, not yet called back (in srv->written) */
  uv_alloc_cb h2o_alloc;
  uv_read_cb h2o_read;
  unsigned h2o_reading : 1, uv_reading : 1;
  uv_write_t *written;
  h2o_linklist_t written_link;
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
  uv_timer_t deadline;       /* http_close: bound for in-flight requests, then for closing (on_abandon) */
  uv_timer_t reaper;         /* teardown: second close generation */
  uv_timer_t sweeper;        /* header timeout: cuts off requests that arrive too slowly */
  uint64_t header_timeout_ms;
  h2o_linklist_t websockets; /* http_ws, accepted and not finished */
  h2o_linklist_t ws_flush;   /* http_ws with sends to write, flushed from ws_flusher */
  uv_timer_t ws_flusher;     /* writes what was queued outside libh2o's callbacks */
  uint64_t ws_ping_ms;
  h2o_linklist_t io_link;  /* in http_io.c's list of servers */
  h2o_linklist_t written;  /* http_conn with a write to call back (http_io.c) */
  uv_prepare_t io_prepare; /* call them back before the loop waits */
  uv_check_t io_check;     /* or right after it */
  int closing;
  int torn_down;
  size_t abandoned;          /* connections let go at the stop (on_abandon), in abandoned_conns */
  h2o_linklist_t abandoned_conns;
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
  void (*on_respond)(void *arg, int status);
  void *respond_arg;
  char *sending, *pending; /* stream buffers: the one in flight, the one filling */
  size_t sending_len, sending_cap, pending_len, pending_cap;
  http_request view;
};

typedef struct responder_anchor {
  http_responder *r;
} responder_anchor;

/* Builds the responder for req with its own copy of the request (one
 * allocation) and ties it to the request's lifetime. NULL when out of memory. */
http_responder *http__responder_new(http_server *s, h2o_req_t *req, size_t plen, const http_capture *caps,
                                    size_t ncaps);

/* http_close's deadline: tells the handler (abort hooks), answers 503 if
 * nothing was sent, ends a stream. The handler still finishes r. */
void http__responder_force(http_responder *r);

/* Lets go of c at the stop (on_abandon): stops libuv reading it and forgets
 * its writes, so it neither calls libh2o back nor keeps the loop alive. */
void http__io_abandon(http_conn *c);

/* http_io.c. http__io_init readies the server's part before any connection,
 * http__io_close closes its handles with the server's. http__io_adopt starts
 * libuv reading an accepted connection before libh2o takes it, so that
 * libh2o's stops and starts between requests cost no system call: 0, or
 * libuv's error from uv_read_start (libh2o then reads it the usual way).
 * http__io_forget drops what is left of a connection being freed. */
void http__io_init(http_server *s);
void http__io_close(http_server *s);
int http__io_adopt(http_conn *c);
void http__io_forget(http_conn *c);

/* Shuts the connection's socket down under libh2o (http.c). */
void http__conn_shutdown(http_conn *c, int how);

/* The tracked connection a request arrived on, or NULL (http.c). */
http_conn *http__conn_of(http_server *s, h2o_req_t *req);

/* WebSocket upkeep run by the sweeper: pings, liveness and close deadlines
 * (http_ws.c). */
void http__ws_sweep(http_server *s, uint64_t now);

/* http_close: starts closing every WebSocket with 1001 (http_ws.c). */
void http__ws_close_all(http_server *s);

/* Marks a responder as answered by a 101 and released (http_respond.c). */
void http__responder_upgraded(http_responder *r);

/* The reason phrase for a status ("Status" when unknown). */
const char *http__reason_phrase(int status);

/* API.md's {"error": {...}} as a malloc'd string (NULL when out of memory). */
char *http__error_body(const char *code, const char *message, const char *field, size_t *len);

#endif
