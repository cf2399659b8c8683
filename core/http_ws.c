/* http_ws.c — WebSockets on the HTTP server: libh2o's upgrade and wslay, safe to drive from anywhere on the loop.
 *
 * libh2o 2.2's websocket.c has three traps this file exists to step around:
 *   - its message callback gets arg == NULL when the connection is over, and
 *     the owner must then call h2o_websocket_close, exactly once;
 *   - h2o_websocket_proceed must never run inside its own message callback:
 *     a nested proceed that closes frees the connection under the outer one.
 *     Sends made inside a callback are written by the outer proceed's loop;
 *     sends made anywhere else are flushed from a zero timer (ws_flusher), a
 *     top-level callback, so no plugin call ever re-enters libh2o;
 *   - until the 101 is written (on_complete) the connection has no socket,
 *     so nothing may proceed or close it directly then.
 */
#include "http_internal.h"
#include "log.h"
#include "sb_utf8.h"

#include <errno.h>
#include <h2o/websocket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One message sent before the WebSocket was accepted. */
typedef struct ws_early {
  struct ws_early *next;
  int opcode;
  size_t len;
  char data[];
} ws_early;

/* Where the peer's byte stream is in its frames (see ws_scan). */
typedef struct ws_scan {
  uint8_t head[14];    /* the frame header being read */
  size_t have;         /* bytes of it so far */
  uint64_t skip;       /* payload bytes still to pass */
  const char *problem; /* the frame to fail the connection at, NULL = none */
} ws_scan;

struct http_ws {
  http_server *srv;
  http_responder *r;          /* until accepted */
  h2o_websocket_conn_t *conn; /* from accept until finished */
  http_conn *tcp;             /* the tracked connection, NULL once it is gone */
  h2o_linklist_t link;        /* srv->websockets, once accepted */
  h2o_linklist_t flush_link;  /* srv->ws_flush while a flush is due */
  http_ws_handlers h;
  void *arg;
  ws_early *early_head, *early_tail;
  size_t early_bytes;
  int close_code;             /* the close the owner started, 0 = none */
  char close_reason[124];
  size_t close_reason_len;
  int error_code;             /* a protocol failure the host closed for, 0 = none */
  int in_callback;            /* inside on_message: libh2o's proceed is on the stack */
  uint64_t last_rx, last_ping, close_deadline;
  wslay_event_recv_callback h2o_recv; /* libh2o's, which ws_recv wraps */
  ws_scan scan;
  char remote_addr[64];
};

int http_ws_is_handshake(const http_responder *r) {
  if (r == NULL || r->released || r->started || r->req == NULL || r->req->version >= 0x200) return 0;
  const char *key = NULL;
  if (h2o_is_websocket_handshake(r->req, &key) != 0) return -EINVAL;
  if (key == NULL) return 0;
  /* RFC 6455 4.2.1: HTTP/1.1 or later, and version 13 (the only one) */
  const char *version = http_request_header(&r->view, "sec-websocket-version");
  if (r->req->version < 0x101 || version == NULL || strcmp(version, "13") != 0) return -EPROTO;
  return 1;
}

http_ws *http_ws_prepare(http_responder *r) {
  if (http_ws_is_handshake(r) != 1) return NULL;
  http_ws *ws = calloc(1, sizeof(*ws));
  if (ws == NULL) return NULL;
  ws->srv = r->srv;
  ws->r = r;
  snprintf(ws->remote_addr, sizeof(ws->remote_addr), "%s", r->view.remote_addr);
  return ws;
}

static void ws_early_free(http_ws *ws) {
  for (ws_early *e = ws->early_head, *next; e != NULL; e = next) {
    next = e->next;
    free(e);
  }
  ws->early_head = ws->early_tail = NULL;
  ws->early_bytes = 0;
}

void http_ws_discard(http_ws *ws) {
  if (ws == NULL || ws->conn != NULL) return;
  ws_early_free(ws);
  free(ws);
}

/* The connection is over: tells the owner and frees everything. Only from
 * libh2o's close report or from a top-level callback once the 101 is out. */
static void ws_finish(http_ws *ws) {
  http_server *s = ws->srv;
  wslay_event_context_ptr ctx = ws->conn->ws_ctx;
  int code = HTTP_WS_CLOSE_ABNORMAL;
  if (wslay_event_get_close_received(ctx)) {
    code = wslay_event_get_status_code_received(ctx);
  } else if (ws->error_code != 0) {
    code = ws->error_code;
  } else if (wslay_event_get_close_sent(ctx)) {
    int sent = wslay_event_get_status_code_sent(ctx);
    if (sent == WSLAY_CODE_PROTOCOL_ERROR || sent == WSLAY_CODE_MESSAGE_TOO_BIG ||
        sent == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA)
      code = sent;
  }
  /* Closing a socket with unread input makes the kernel reset it, and the
   * reset can overtake our close frame: read away what already arrived when
   * the peer did not close (it may still be sending what made us close). */
  if (ws->conn->sock != NULL && !wslay_event_get_close_received(ctx)) {
    int fd = h2o_socket_get_fd(ws->conn->sock);
    char sink[4096];
    for (int i = 0; fd >= 0 && i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++) {
    }
  }
  h2o_linklist_unlink(&ws->link);
  if (h2o_linklist_is_linked(&ws->flush_link)) h2o_linklist_unlink(&ws->flush_link);
  if (ws->tcp != NULL) ws->tcp->ws = NULL;
  s->stats.websockets_open--;
  h2o_websocket_close(ws->conn);
  ws->conn = NULL;
  ws->h.on_closed(ws->arg, ws, code);
  ws_early_free(ws);
  free(ws);
}

/* Closes for a protocol failure from inside the message callback: the outer
 * proceed writes the close frame and, reading nothing more, ends it. */
static void ws_fail(http_ws *ws, int code, const char *reason) {
  ws->error_code = code;
  wslay_event_queue_close(ws->conn->ws_ctx, (uint16_t)code, (const uint8_t *)reason, strlen(reason));
  wslay_event_shutdown_read(ws->conn->ws_ctx);
}

/* wslay 1.1 meets some broken frames by ending the read with an error, and
 * libh2o then drops the TCP connection without the close frame RFC 6455
 * 7.1.7 asks for: a control frame that is fragmented or over 125 bytes, and
 * a length not in its shortest form. A close frame of one byte (no whole
 * code) it answers as a clean close. ws_scan follows the frame headers in
 * the bytes read and returns how many of them come before such a frame
 * (all of them when there is none), setting sc->problem. */
static size_t ws_scan_bytes(ws_scan *sc, const uint8_t *p, size_t n) {
  size_t i = 0, start = 0; /* start: where the current frame began in p */
  while (i < n && sc->problem == NULL) {
    if (sc->skip > 0) {
      size_t k = n - i < sc->skip ? n - i : (size_t)sc->skip;
      i += k;
      sc->skip -= k;
      continue;
    }
    if (sc->have == 0) start = i;
    sc->head[sc->have++] = p[i++];
    if (sc->have < 2) continue;
    unsigned opcode = sc->head[0] & 0x0fu, len7 = sc->head[1] & 0x7fu;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0, need = 2 + ext + (sc->head[1] & 0x80u ? 4 : 0);
    if (sc->have == 2) {
      if (opcode >= 8 && (!(sc->head[0] & 0x80u) || len7 > 125))
        sc->problem = "a control frame is fragmented or over 125 bytes";
      else if (opcode == WSLAY_CONNECTION_CLOSE && len7 == 1)
        sc->problem = "a close frame of one byte";
    }
    if (sc->problem != NULL || sc->have < need) continue;
    uint64_t len = len7;
    if (ext > 0) {
      len = 0;
      for (size_t k = 0; k < ext; k++) len = len << 8 | sc->head[2 + k];
      if ((ext == 2 && len < 126) || (ext == 8 && (len < 65536 || len >> 63)))
        sc->problem = "a frame length not in its shortest form";
    }
    sc->have = 0;
    sc->skip = len;
  }
  return sc->problem == NULL ? n : start; /* start stays 0 when the frame began in an earlier read */
}

/* Fails the connection with 1002 at the first frame ws_scan_bytes refuses;
 * the bytes before it are handed on (they may hold whole messages). */
static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
  h2o_websocket_conn_t *conn = user;
  http_ws *ws = conn->data;
  ssize_t n = ws->scan.problem == NULL ? ws->h2o_recv(ctx, buf, len, flags, user) : 0;
  size_t ok = n > 0 ? ws_scan_bytes(&ws->scan, buf, (size_t)n) : 0;
  if (ws->scan.problem == NULL || ok > 0) return ws->scan.problem == NULL ? n : (ssize_t)ok;
  if (ws->error_code == 0) ws_fail(ws, WSLAY_CODE_PROTOCOL_ERROR, ws->scan.problem);
  wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
  return -1;
}

static void on_ws_msg(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg) {
  http_ws *ws = conn->data;
  if (arg == NULL) {
    ws_finish(ws);
    return;
  }
  ws->last_rx = uv_now(ws->srv->loop);
  if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) return; /* wslay answers pings and closes */
  if (ws->close_code != 0 || ws->error_code != 0) return;
  int kind = arg->opcode == WSLAY_TEXT_FRAME ? HTTP_WS_TEXT : HTTP_WS_BINARY;
  if (kind == HTTP_WS_TEXT && !sb_utf8_valid((const char *)arg->msg, arg->msg_length)) {
    ws_fail(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "text is not UTF-8");
    return;
  }
  ws->in_callback++;
  ws->h.on_message(ws->arg, ws, kind, (const char *)arg->msg, arg->msg_length);
  ws->in_callback--;
}

static void on_ws_flush(uv_timer_t *t) {
  http_server *s = t->data;
  while (!h2o_linklist_is_empty(&s->ws_flush)) {
    http_ws *ws = H2O_STRUCT_FROM_MEMBER(http_ws, flush_link, s->ws_flush.next);
    h2o_linklist_unlink(&ws->flush_link);
    h2o_websocket_proceed(ws->conn); /* may finish ws */
  }
}

/* Gets what was queued written. Inside the message callback the running
 * proceed does it; before the 101 is out on_complete's proceed will. */
static void ws_schedule_flush(http_ws *ws) {
  http_server *s = ws->srv;
  if (ws->in_callback || ws->conn == NULL || ws->conn->sock == NULL || h2o_linklist_is_linked(&ws->flush_link)) return;
  h2o_linklist_insert(&s->ws_flush, &ws->flush_link);
  if (!uv_is_active((uv_handle_t *)&s->ws_flusher)) uv_timer_start(&s->ws_flusher, on_ws_flush, 0, 0);
}

static int ws_queue(http_ws *ws, int opcode, const char *data, size_t len) {
  struct wslay_event_msg m = {(uint8_t)opcode, (const uint8_t *)(len > 0 ? data : ""), len};
  int rc = wslay_event_queue_msg(ws->conn->ws_ctx, &m);
  if (rc == WSLAY_ERR_NO_MORE_MSG) return -EPIPE;
  if (rc != 0) return rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EINVAL;
  return 0;
}

static void ws_queue_close(http_ws *ws) {
  wslay_event_queue_close(ws->conn->ws_ctx, (uint16_t)ws->close_code, (const uint8_t *)ws->close_reason,
                          ws->close_reason_len);
  ws->close_deadline = uv_now(ws->srv->loop) + HTTP_WS_CLOSE_TIMEOUT_MS;
}

int http_ws_accept(http_ws *ws, const http_ws_handlers *h, void *arg) {
  if (ws == NULL || h == NULL || h->on_message == NULL || h->on_closed == NULL || ws->conn != NULL) return -EINVAL;
  http_responder *r = ws->r;
  const char *key = NULL;
  if (http_ws_is_handshake(r) != 1 || h2o_is_websocket_handshake(r->req, &key) != 0 || key == NULL) {
    http_ws_discard(ws);
    return -EPIPE;
  }
  http_server *s = r->srv;
  h2o_req_t *req = r->req;
  ws->h = *h;
  ws->arg = arg;
  ws->r = NULL;
  ws->tcp = http__conn_of(s, req);
  http__responder_upgraded(r);
  s->stats.responses_by_class[1]++;
  ws->conn = h2o_upgrade_to_websocket(req, key, ws, on_ws_msg);
  wslay_event_config_set_max_recv_msg_length(ws->conn->ws_ctx, s->body_limit);
  struct wslay_event_callbacks cb = ws->conn->ws_callbacks;
  ws->h2o_recv = cb.recv_callback;
  cb.recv_callback = ws_recv;
  wslay_event_config_set_callbacks(ws->conn->ws_ctx, &cb);
  for (ws_early *e = ws->early_head; e != NULL; e = e->next) ws_queue(ws, e->opcode, e->data, e->len);
  ws_early_free(ws);
  if (ws->close_code != 0) ws_queue_close(ws);
  ws->last_rx = ws->last_ping = uv_now(s->loop);
  h2o_linklist_insert(&s->websockets, &ws->link);
  if (ws->tcp != NULL) ws->tcp->ws = ws;
  s->stats.websockets_open++;
  s->stats.websockets_total++;
  return 0;
}

size_t http_ws_queued(const http_ws *ws) {
  if (ws == NULL) return 0;
  return ws->early_bytes + (ws->conn != NULL ? wslay_event_get_queued_msg_length(ws->conn->ws_ctx) : 0);
}

int http_ws_send(http_ws *ws, int kind, const char *data, size_t len) {
  if (ws == NULL || (kind != HTTP_WS_TEXT && kind != HTTP_WS_BINARY) || (len > 0 && data == NULL)) return -EINVAL;
  if (kind == HTTP_WS_TEXT && !sb_utf8_valid(data, len)) return -EINVAL;
  if (ws->close_code != 0 || ws->error_code != 0) return -EPIPE;
  size_t queued = http_ws_queued(ws);
  if (queued > 0 && (len > HTTP_WS_QUEUE_LIMIT || queued > HTTP_WS_QUEUE_LIMIT - len)) return -EAGAIN;
  int opcode = kind == HTTP_WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
  if (ws->conn == NULL) {
    ws_early *e = malloc(sizeof(*e) + len);
    if (e == NULL) return -ENOMEM;
    e->next = NULL;
    e->opcode = opcode;
    e->len = len;
    if (len > 0) memcpy(e->data, data, len);
    if (ws->early_tail != NULL)
      ws->early_tail->next = e;
    else
      ws->early_head = e;
    ws->early_tail = e;
    ws->early_bytes += len;
    return 0;
  }
  int rc = ws_queue(ws, opcode, data, len);
  if (rc == 0) ws_schedule_flush(ws);
  return rc;
}

void http_ws_close(http_ws *ws, int code, const char *reason) {
  if (ws == NULL || ws->close_code != 0 || ws->error_code != 0) return;
  ws->close_code = code >= 1000 && code <= 4999 ? code : 1000;
  size_t n = reason != NULL ? strlen(reason) : 0;
  if (n > sizeof(ws->close_reason) - 1) n = sizeof(ws->close_reason) - 1;
  /* a cut must not split a UTF-8 sequence: close reasons are text */
  while (n > 0 && !sb_utf8_valid(reason, n)) n--;
  if (n > 0) memcpy(ws->close_reason, reason, n);
  ws->close_reason_len = n;
  if (ws->conn == NULL) return; /* queued at accept */
  ws_queue_close(ws);
  ws_schedule_flush(ws);
}

const char *http_ws_remote_addr(const http_ws *ws) { return ws != NULL ? ws->remote_addr : ""; }

void http__ws_sweep(http_server *s, uint64_t now) {
  uint64_t ping = s->ws_ping_ms, dead = s->ws_ping_ms * 5 / 2;
  for (;;) {
    http_ws *cut = NULL;
    for (h2o_linklist_t *n = s->websockets.next; n != &s->websockets; n = n->next) {
      http_ws *ws = H2O_STRUCT_FROM_MEMBER(http_ws, link, n);
      if (ws->conn->sock == NULL) continue; /* the 101 is still being written */
      if ((ws->close_deadline != 0 && now >= ws->close_deadline) || now - ws->last_rx >= dead) {
        cut = ws;
        break;
      }
      if (ws->close_code == 0 && ws->error_code == 0 && now - ws->last_rx >= ping && now - ws->last_ping >= ping) {
        ws->last_ping = now;
        if (ws_queue(ws, WSLAY_PING, NULL, 0) == 0) ws_schedule_flush(ws);
      }
    }
    if (cut == NULL) return;
    /* a timer callback: libh2o is not on the stack, so closing it here is safe */
    ws_finish(cut);
  }
}

void http__ws_close_all(http_server *s) {
  for (h2o_linklist_t *n = s->websockets.next; n != &s->websockets; n = n->next)
    http_ws_close(H2O_STRUCT_FROM_MEMBER(http_ws, link, n), 1001, "the server is shutting down");
}
