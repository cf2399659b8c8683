/* wsecho.c — a WebSocket channel for the tests (ABI 1.3): echoes every
 * message back in its kind, driven by a few text commands.
 *
 * Handshakes to /hooks/{channel}[/...]:
 *   Origin other than the allowed_origin setting → refused (403)
 *   subpath /missing → 404; query refuse=busy → 429, refuse=big → 413,
 *   refuse=bad → 400
 *   accepted: "hello" is sent from inside ws_open
 * Text commands: "close" → ws_close(4000, "bye"); "tick" → "tick" sent from a
 * timer 20 ms later (outside any callback); "count" → the number of open
 * connections; "flood" → ws_send 64 KiB messages until SB_EAGAIN, answered
 * "flooded N"; "history" and "avail" → what history() (visitor "v1", limit
 * 10) and availability() answer, or "no history"/"no availability" on a
 * host without them. Anything else is echoed. A plain request gets 200 "plain"
 * from receive(). ws_closed and destroy log what they saw, for the tests.
 */
#include <switchboard/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct we_conn we_conn;

typedef struct we {
  const sb_host *host;
  sb_channel *ch;
  const char *origin;
  unsigned open;
  unsigned next_id;
  we_conn *conns;
} we;

struct we_conn {
  we *w;
  sb_ws *ws;
  unsigned id;
  sb_timer *tick;
  we_conn *next;
};

static const sb_field we_schema[] = {
    {"allowed_origin", SB_FIELD_STRING, 0, "http://allowed.test", "Allowed origin",
     "The Origin a browser page must come from.", NULL},
    SB_FIELD_END,
};

static int we_create(const sb_host *host, sb_channel *ch, const sb_config *cfg, void **instance, char *err,
                     size_t errlen) {
  we *w = calloc(1, sizeof(*w));
  if (w == NULL) return SB_ENOMEM;
  w->host = host;
  w->ch = ch;
  w->origin = host->config_get(cfg, "allowed_origin");
  *instance = w;
  return SB_OK;
}

static int we_receive(void *instance, const sb_http_request *req, sb_responder *r) {
  we *w = instance;
  return w->host->respond(r, 200, NULL, 0, "plain", 5);
}

static int we_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
  we *w = instance;
  /* An agent's reply goes to every open connection: a send from outside
   * any WebSocket callback. */
  for (we_conn *c = w->conns; c != NULL; c = c->next)
    w->host->ws_send(c->ws, SB_WS_TEXT, msg->text, strlen(msg->text));
  w->host->send_ok(op, msg->idempotency_key);
  return SB_OK;
}

static int we_ws_open(void *instance, const sb_http_request *req, sb_ws *ws, void **conn) {
  we *w = instance;
  const char *origin = w->host->http_header(req, "Origin");
  if (origin == NULL || strcmp(origin, w->origin) != 0) return SB_EACCES;
  if (strcmp(req->subpath, "/missing") == 0) return SB_ENOENT;
  char why[16];
  if (w->host->http_query(req, "refuse", why, sizeof(why)) >= 0) {
    if (strcmp(why, "busy") == 0) return SB_EAGAIN;
    if (strcmp(why, "big") == 0) return SB_EFBIG;
    return SB_EINVAL;
  }
  we_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return SB_ENOMEM;
  c->w = w;
  c->ws = ws;
  c->id = ++w->next_id;
  c->next = w->conns;
  w->conns = c;
  w->open++;
  *conn = c;
  w->host->ws_send(ws, SB_WS_TEXT, "hello", 5);
  return SB_OK;
}

static void we_tick(void *arg) {
  we_conn *c = arg;
  c->tick = NULL;
  c->w->host->ws_send(c->ws, SB_WS_TEXT, "tick", 4);
}

/* A read in flight: the connection may close before it answers. */
typedef struct we_read {
  we *w;
  unsigned conn_id;
} we_read;

static we_conn *we_find(we *w, unsigned id) {
  for (we_conn *c = w->conns; c != NULL; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static void we_history_done(void *arg, const sb_history *h) {
  we_read *r = arg;
  we_conn *c = we_find(r->w, r->conn_id);
  if (c != NULL) {
    char out[256];
    int n = snprintf(out, sizeof(out), "history %d %zu%s%s contact=%s", h->status, h->count, h->count > 0 ? " " : "",
                     h->count > 0 && h->messages[0].text != NULL ? h->messages[0].text : "",
                     h->contact_name != NULL ? h->contact_name : "-");
    r->w->host->ws_send(c->ws, SB_WS_TEXT, out, (size_t)n);
  }
  free(r);
}

static void we_availability_done(void *arg, const sb_availability *a) {
  we_read *r = arg;
  we_conn *c = we_find(r->w, r->conn_id);
  if (c != NULL) {
    char out[128];
    int n = snprintf(out, sizeof(out), "avail %d %u/%u/%u %lld", a->status, a->eligible, a->available,
                     a->with_capacity, (long long)a->typical_reply_seconds);
    r->w->host->ws_send(c->ws, SB_WS_TEXT, out, (size_t)n);
  }
  free(r);
}

static void we_read_start(we *w, we_conn *c, int history) {
  const char *none = history ? "no history" : "no availability";
  if (history ? !SB_HOST_HAS(w->host, history) : !SB_HOST_HAS(w->host, availability)) {
    w->host->ws_send(c->ws, SB_WS_TEXT, none, strlen(none));
    return;
  }
  we_read *r = malloc(sizeof(*r));
  if (r == NULL) return;
  r->w = w;
  r->conn_id = c->id;
  int rc;
  if (history) {
    sb_history_request q = {.struct_size = sizeof(q), .kind = SB_IDENTITY_VISITOR, .id = "v1", .limit = 10};
    rc = w->host->history(w->ch, &q, we_history_done, r);
  } else {
    rc = w->host->availability(w->ch, we_availability_done, r);
  }
  if (rc != SB_OK) free(r);
}

static void we_ws_message(void *instance, sb_ws *ws, void *conn, uint32_t kind, const char *data, size_t len) {
  we *w = instance;
  we_conn *c = conn;
  char out[64];
  if (kind == SB_WS_TEXT && len == 5 && memcmp(data, "close", 5) == 0) {
    w->host->ws_close(ws, 4000, "bye");
    w->host->ws_close(ws, 4001, "twice is harmless");
  } else if (kind == SB_WS_TEXT && len == 4 && memcmp(data, "tick", 4) == 0) {
    if (c->tick == NULL) c->tick = w->host->timer_start(w->ch, 20, 0, we_tick, c);
  } else if (kind == SB_WS_TEXT && len == 7 && memcmp(data, "history", 7) == 0) {
    we_read_start(w, c, 1);
  } else if (kind == SB_WS_TEXT && len == 5 && memcmp(data, "avail", 5) == 0) {
    we_read_start(w, c, 0);
  } else if (kind == SB_WS_TEXT && len == 5 && memcmp(data, "count", 5) == 0) {
    int n = snprintf(out, sizeof(out), "%u", w->open);
    w->host->ws_send(ws, SB_WS_TEXT, out, (size_t)n);
  } else if (kind == SB_WS_TEXT && len == 5 && memcmp(data, "flood", 5) == 0) {
    static char chunk[64 * 1024];
    unsigned sent = 0;
    while (sent < 1000 && w->host->ws_send(ws, SB_WS_BINARY, chunk, sizeof(chunk)) == SB_OK) sent++;
    int n = snprintf(out, sizeof(out), "flooded %u", sent);
    /* the queue is full: this one is refused too, which the test sees */
    int rc = w->host->ws_send(ws, SB_WS_TEXT, out, (size_t)n);
    w->host->log(w->ch, SB_LOG_INFO, "flooded %u, then %d", sent, rc);
  } else {
    w->host->ws_send(ws, kind, data, len);
  }
}

static void we_ws_closed(void *instance, sb_ws *ws, void *conn, int code) {
  we *w = instance;
  we_conn *c = conn;
  for (we_conn **p = &w->conns; *p != NULL; p = &(*p)->next) {
    if (*p == c) {
      *p = c->next;
      break;
    }
  }
  if (c->tick != NULL) w->host->timer_stop(c->tick);
  int refused = w->host->ws_send(ws, SB_WS_TEXT, "late", 4); /* not allowed: refused */
  w->host->log(w->ch, SB_LOG_INFO, "ws_closed conn=%u code=%d from=%s late_send=%d", c->id, code,
               w->host->ws_remote_addr(ws), refused);
  w->open--;
  free(c);
}

static void we_destroy(void *instance) {
  we *w = instance;
  w->host->log(w->ch, SB_LOG_INFO, "wsecho destroyed with %u open", w->open);
  free(w);
}

static const sb_plugin we_plugin = {
    SB_PLUGIN_INIT,
    .id = "wsecho",
    .name = "WebSocket echo",
    .publisher = "Switchboard tests",
    .version = "1.0.0",
    .description = "Echoes WebSocket messages.",
    .credentials = we_schema,
    .caps = {.thread_model = SB_THREAD_PER_CONTACT},
    .create = we_create,
    .receive = we_receive,
    .send = we_send,
    .destroy = we_destroy,
    .ws_open = we_ws_open,
    .ws_message = we_ws_message,
    .ws_closed = we_ws_closed,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) return SB_EVERSION;
  if (!SB_HOST_HAS(host, ws_send)) {
    snprintf(err, errlen, "this host has no WebSockets (ABI 1.3 needed)");
    return SB_EVERSION;
  }
  *out = &we_plugin;
  return SB_OK;
}
