/* http.h — the HTTP/1.1 server on the host's libuv loop (libh2o underneath).
 *
 * A server listens on one address, matches each request against a small
 * route table and hands the handler a plain-C view of the request plus an
 * opaque responder. The handler answers at once or later (after a store
 * commit completes back on the loop), or streams a chunked response over
 * time (Server-Sent Events are built on that). No libh2o type leaves this
 * module.
 *
 * THREADS: every function here is loop-thread-only — call it on the thread
 * that runs the uv_loop_t given to http_new(), never from another thread.
 *
 * Lifetimes, in one place:
 *   - The http_request view and everything it points to stay valid until the
 *     handler finishes the response (http_respond*, or http_stream_end), even
 *     if the client has gone away meanwhile.
 *   - A handler must finish every responder exactly once. After the client
 *     disconnects (or the server closes) the finishing calls are harmless
 *     no-ops that only release the responder; an optional abort hook says so.
 *   - libh2o 2.2 stops reading a connection while its request is handled, so
 *     a disconnect is noticed when the response (or the next stream chunk) is
 *     written, not earlier. Streams should write keep-alives to notice it.
 */
#ifndef SB_CORE_HTTP_H
#define SB_CORE_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server;
typedef struct http_responder http_responder;

/* One header or one name/value pair (path parameter, query parameter).
 * Request header names are lower-case. Values are not NUL-free in general,
 * but every string here is also NUL-terminated for convenience. */
typedef struct http_header {
  const char *name;
  const char *value;
  size_t value_len;
} http_header;

/* The request as handlers see it. Everything is owned by the responder and
 * valid until the response is finished (see the lifetimes above). */
typedef struct http_request {
  const char *method;        /* "GET", "POST", ... */
  const char *path;          /* raw path without the query, e.g. "/hooks/demo/x%20y" */
  const char *query;         /* raw query after '?', "" when there is none */
  const http_header *params; /* path parameters captured by the route, decoded */
  size_t nparams;
  const http_header *headers; /* lower-case names; includes "host" and "content-length" */
  size_t nheaders;
  const char *body; /* raw body bytes (NUL-terminated copy), "" when there is none */
  size_t body_len;
  const char *remote_addr; /* peer IP address as text, "" if unknown */
  uint16_t remote_port;
} http_request;

/* A handler. It must finish `res` exactly once, now or later (loop thread). */
typedef void (*http_handler_fn)(void *arg, const http_request *req, http_responder *res);

typedef struct http_options {
  const char *listen;          /* "HOST:PORT" or "[IPV6]:PORT"; port 0 = ephemeral. Required. */
  size_t body_limit;           /* request body limit in bytes; 0 = 1 MiB. Larger → 413 JSON error. */
  uint64_t header_timeout_ms;  /* once a request's first bytes are in, time to receive all of it
                                  (headers and body); 0 = 10 s. Checked every quarter of it. */
  uint64_t idle_timeout_ms;    /* wait for the next request after connect or after a response
                                  (keep-alive); 0 = 60 s */
  uint64_t shutdown_timeout_ms; /* http_close: how long in-flight requests may finish; 0 = 5 s */
  const char *tls_cert_file;   /* PEM certificate chain; with tls_key_file enables HTTPS. NULL = plain. */
  const char *tls_key_file;    /* PEM private key */
  uint64_t ws_ping_interval_ms; /* a WebSocket quiet this long gets a ping; one quiet for 2.5 times
                                   this is cut off (1006). 0 = 30 s. */
} http_options;

/* Counters for /metrics. Monotonic except active_connections. */
typedef struct http_stats {
  uint64_t responses_by_class[6]; /* index = status / 100 (1..5); [0] unused */
  uint64_t responses_413;         /* bodies refused for size */
  uint64_t requests_aborted;      /* client went away or server closed before the response finished */
  uint64_t active_connections;
  uint64_t connections_total;
  uint64_t websockets_open;       /* accepted WebSockets not yet closed */
  uint64_t websockets_total;
} http_stats;

/* Creates a server on `loop` and starts listening. On success returns 0 and
 * *out (free it with http_close). On failure returns a negative errno and
 * writes a sentence naming the address or file into err (may be NULL);
 * *out stays NULL (in the rare case the loop's listen call itself fails,
 * the half-built server finishes freeing itself on the next loop turns).
 * Ignores SIGPIPE for the process: a peer that left must fail a write with
 * EPIPE, not kill the daemon. */
int http_new(uv_loop_t *loop, const http_options *opt, http_server **out, char *err, size_t errlen);

/* Loads the certificate and key again (a renewed pair, at the same paths
 * or new ones) for the connections accepted from now on; those open keep
 * theirs. Only for a server started with TLS. Returns 0, or -EINVAL with a
 * sentence naming the file, the pair in use staying. */
int http_reload_tls(http_server *s, const char *cert_file, const char *key_file, char *err, size_t errlen);

/* The bound TCP port (useful after listening on port 0), or 0 when closed. */
uint16_t http_bound_port(const http_server *s);

/* Adds a route. method is "GET", "POST", ... or NULL for any method. pattern
 * is a path of literal segments and "{name}" captures (one whole segment
 * each); a last segment "*" matches any remainder, including none. So
 * "/api/v1/channels/{id}" captures id, and "/hooks/{channel}/" followed by
 * "*" matches /hooks/demo, /hooks/demo/ and /hooks/demo/messages.
 * Routes are tried in the order added; HEAD falls back to GET routes.
 * Returns 0, -EINVAL for a bad pattern, or -ENOMEM. The pattern is copied;
 * arg is passed to the handler as is. No route matching the path → 404 JSON;
 * the path matches but not the method → 405 JSON with an Allow header. */
int http_route(http_server *s, const char *method, const char *pattern, http_handler_fn fn, void *arg);

/* Case-insensitive header lookup: the first value, or NULL. */
const char *http_request_header(const http_request *req, const char *name);

/* A captured path parameter by name (decoded), or NULL. */
const char *http_request_param(const http_request *req, const char *name);

/* Decodes query parameter `name` ('+' and %XX decoded) into buf (NUL-terminated).
 * Returns its length, -ENOENT if absent, or -ENOSPC if buf is too small. */
int http_request_query(const http_request *req, const char *name, char *buf, size_t buflen);

/* Sends a complete response with a copy of headers and body, and releases
 * the responder (it must not be used afterwards; -EINVAL if it was already). A header's value_len may
 * be 0 for a NUL-terminated value. Content-Length is set from len; given
 * content-length, transfer-encoding and connection headers are ignored, and
 * a header containing a line break is dropped (logged). A HEAD request gets
 * the headers only. Returns 0, or -EPIPE when the client is gone or an
 * answer was already started (nothing sent; the responder is released). */
int http_respond(http_responder *r, int status, const http_header *headers, size_t nheaders,
                 const char *body, size_t len);

/* Sends `body` as application/json and releases the responder; takes the
 * reference to body (it is decref'd). Returns as http_respond. */
int http_respond_json(http_responder *r, int status, json_t *body);

/* Sends {"error": {"code", "message", "field"}} (field omitted when NULL)
 * and releases the responder; a 503 carries Retry-After: 5. Returns as
 * http_respond. */
int http_respond_error(http_responder *r, int status, const char *code, const char *message,
                       const char *field);

/* Registers fn to be called once, on the loop, if the client goes away or the
 * server closes before the response is finished. The handler must still
 * finish the responder. Replaces an earlier hook. */
void http_responder_on_abort(http_responder *r, void (*fn)(void *arg), void *arg);

/* Registers fn to be called once with the status of the whole response
 * (http_respond and its JSON forms) as the handler gives it, whether or not
 * the client is still there to get it; not for streams. Replaces an earlier
 * hook. */
void http_responder_on_respond(http_responder *r, void (*fn)(void *arg, int status), void *arg);

/* 1 while the response can still reach the client (as far as is known; see
 * the note on disconnects above), 0 after an abort. */
int http_responder_alive(const http_responder *r);

/* Starts a streamed (chunked) response. on_close (may be NULL) is called once
 * if the client goes away or the server closes before http_stream_end.
 * Returns 0, -EPIPE if the client is already gone, -EALREADY if a response
 * was started, -ECANCELED for a HEAD request (its status line and headers
 * are sent, and nothing is streamed). The responder stays held until
 * http_stream_end. */
int http_stream_start(http_responder *r, int status, const http_header *headers, size_t nheaders,
                      void (*on_close)(void *arg), void *arg);

/* Queues a copy of data on the stream; it is written as soon as the previous
 * write completes. Returns 0, -EPIPE if the client is gone, -EINVAL if the
 * stream is not started. */
int http_stream_write(http_responder *r, const char *data, size_t len);

/* Bytes written to the stream and not yet confirmed sent (queued plus the
 * write in flight); an event stream drops a client whose backlog grows. */
size_t http_stream_pending(const http_responder *r);

/* Ends the stream after the queued data and releases the responder (it
 * must not be used afterwards). On a responder with no stream started it
 * answers 204. Always succeeds. */
void http_stream_end(http_responder *r);

/* Stops accepting new connections and closes idle keep-alive connections;
 * in-flight requests go on and their responses end their connections.
 * Idempotent. */
void http_stop_accepting(http_server *s);

/* Graceful close: stops accepting, lets in-flight requests finish for up to
 * shutdown_timeout_ms, then aborts what is left (abort hooks, 503 JSON,
 * streams ended), closes every connection and frees the server; done(arg)
 * is called on the loop when nothing of the server remains (the loop may
 * then be closed). done may be NULL; a second call does nothing. Responders
 * a handler still holds stay valid to finish (as no-ops). */
void http_close(http_server *s, void (*done)(void *arg), void *arg);

/* ---- WebSockets ----------------------------------------------------------
 *
 * A handler that wants a request's connection as a WebSocket prepares an
 * http_ws on its responder, decides, then accepts (101, the connection is the
 * WebSocket's from then on) or discards it and answers the responder as usual.
 * Messages arrive whole (fragments joined, at most body_limit bytes: larger
 * closes with 1009; text that is not UTF-8 closes with 1007); pings are
 * answered; a connection quiet for ws_ping_interval_ms gets a ping and one
 * quiet for 2.5 times that is cut off. on_closed runs exactly once per
 * accepted WebSocket, always on the loop from a top-level callback, never
 * from inside http_ws_send or http_ws_close; ws is invalid once it returns.
 * http_stop_accepting leaves WebSockets alone; http_close closes each with
 * 1001 and cuts off those that do not answer by its deadline. */

typedef struct http_ws http_ws;

#define HTTP_WS_TEXT 1
#define HTTP_WS_BINARY 2
#define HTTP_WS_CLOSE_ABNORMAL 1006
#define HTTP_WS_QUEUE_LIMIT ((size_t)1 << 20) /* bytes waiting per peer before sends are refused */
#define HTTP_WS_CLOSE_TIMEOUT_MS 5000         /* a closed WebSocket's peer has this long to answer */

typedef struct http_ws_handlers {
  /* One complete message (kind HTTP_WS_TEXT or HTTP_WS_BINARY); data is
   * borrowed for the call. Never called once a close was started. */
  void (*on_message)(void *arg, http_ws *ws, int kind, const char *data, size_t len);
  /* The connection is over: the peer's close code (1005 when its close frame
   * had none); the host's own for a protocol failure it closed for (1002,
   * 1007, 1009); else HTTP_WS_CLOSE_ABNORMAL. */
  void (*on_closed)(void *arg, http_ws *ws, int code);
} http_ws_handlers;

/* 1 when the request is a WebSocket handshake (GET, Upgrade: websocket and a
 * Sec-WebSocket-Key), -EINVAL when it tries to be one with a malformed key,
 * -EPROTO with another Sec-WebSocket-Version than 13 (or none) or over
 * HTTP/1.0 (answer 426 with Sec-WebSocket-Version: 13), 0 otherwise (also
 * for a released responder). */
int http_ws_is_handshake(const http_responder *r);

/* Makes the WebSocket-to-be of a handshake, not yet accepted: sends and a
 * close made on it before http_ws_accept are kept and go out after the 101.
 * NULL when r is not a handshake or out of memory. */
http_ws *http_ws_prepare(http_responder *r);

/* Answers 101, takes the connection and releases the responder. The handlers
 * struct is copied. Returns 0, or -EPIPE when the client is gone (ws is then
 * freed and on_closed is not called). */
int http_ws_accept(http_ws *ws, const http_ws_handlers *h, void *arg);

/* Drops a prepared, not accepted, WebSocket; answer the responder yourself. */
void http_ws_discard(http_ws *ws);

/* Queues one message (copied). Returns 0; -EINVAL for a bad kind or text
 * that is not UTF-8; -EPIPE once a close was started; -EAGAIN when the
 * message would take the bytes waiting for this peer past
 * HTTP_WS_QUEUE_LIMIT (a first message always fits); -ENOMEM. */
int http_ws_send(http_ws *ws, int kind, const char *data, size_t len);

/* Starts the closing handshake with code and reason (at most 123 bytes;
 * longer is cut); the peer has HTTP_WS_CLOSE_TIMEOUT_MS to answer before it
 * is cut off. Idempotent; on_closed follows later. */
void http_ws_close(http_ws *ws, int code, const char *reason);

/* Bytes queued for this peer and not yet written. */
size_t http_ws_queued(const http_ws *ws);

/* The peer's address as text ("127.0.0.1"); valid as long as ws. */
const char *http_ws_remote_addr(const http_ws *ws);


/* Copies the counters into *out. */
void http_get_stats(const http_server *s, http_stats *out);

#endif
