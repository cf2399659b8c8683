/* sse.c — GET /api/v1/events: the store's event bus as Server-Sent Events, filtered by inbox and channel, resumable by Last-Event-ID, with keep-alives. */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SSE_PAGE 500
/* Live events a client catching up holds at most; past that it lets them go
 * and reads them from the store (they are all there: sse__event). */
#define SSE_HELD_MAX (2 * SSE_PAGE)

typedef struct sse_client {
  struct sse_client *prev, *next;
  api *a;
  http_responder *res;
  uv_timer_t keepalive;
  char *channel, *inbox; /* filters, NULL = any */
  json_t *types;         /* ?types= patterns (events_pattern_ok), NULL = every type */
  int no_messages;       /* none of them takes a message event: the backlog reads none */
  int token;             /* bus subscription, 0 = none */
  int64_t last_id;       /* the newest event written */
  int catching_up;       /* reading the backlog: live events wait in held */
  json_t *held;          /* live events that came during the backlog read in flight */
  int held_dropped;      /* held passed SSE_HELD_MAX during this backlog read and was let go */
  int store_busy;        /* a store_events_after is in flight */
  char token_hash[65];   /* the caller's token, checked again at each keep-alive: a revoked one ends the stream */
  int token_busy;        /* a store_token_find for it is in flight */
  int paced;             /* the backlog waits for the client to take what it has (the timer polls) */
  uint64_t every;        /* the keep-alive period */
  int ended;             /* http_stream_end was called */
  int timer_closed;
} sse_client;

struct sse_hub {
  sse_client *head;
};

static void sse__maybe_free(sse_client *c) {
  if (!c->ended || !c->timer_closed || c->store_busy || c->token_busy) return;
  json_decref(c->held);
  json_decref(c->types);
  free(c->channel);
  free(c->inbox);
  free(c);
}

static void sse__timer_closed(uv_handle_t *h) {
  sse_client *c = h->data;
  c->timer_closed = 1;
  sse__maybe_free(c);
}

/* Ends the stream and lets go of everything; idempotent. */
static void sse__finish(sse_client *c) {
  if (c->ended) return;
  c->ended = 1;
  if (c->token > 0 && c->a != NULL) events_unsubscribe(store_events(c->a->host.st), c->token);
  c->token = 0;
  if (c->a != NULL) {
    sse_hub *hub = c->a->sse;
    if (c->prev != NULL) c->prev->next = c->next;
    else hub->head = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
  }
  c->prev = c->next = NULL;
  http_stream_end(c->res);
  c->res = NULL;
  uv_close((uv_handle_t *)&c->keepalive, sse__timer_closed);
}

static void sse__closed(void *arg) { sse__finish(arg); }

/* Unsent bytes past which a live client is dropped (http.sse_max_pending). */
static size_t sse__max_pending(const sse_client *c) {
  return c->a->host.sse_max_pending ? c->a->host.sse_max_pending : 1024 * 1024;
}

/* Writes one event; drops the client when it is gone or too far behind. */
static int sse__type_wanted(const sse_client *c, const char *type) {
  return c->types == NULL || events_patterns_match(c->types, type);
}

static void sse__write(sse_client *c, const events_event *ev) {
  if (c->ended || ev->id <= c->last_id || !sse__type_wanted(c, ev->type)) return;
  json_t *j = events_to_json(ev);
  char *data = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (data == NULL) return;
  size_t n = strlen(data) + strlen(ev->type) + 64;
  char *frame = malloc(n);
  int rc = -ENOMEM;
  if (frame != NULL) {
    int len = snprintf(frame, n, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev->id, ev->type, data);
    rc = http_stream_write(c->res, frame, (size_t)len);
  }
  free(frame);
  free(data);
  c->last_id = ev->id;
  if (rc != 0) {
    sse__finish(c);
  } else if (!c->catching_up && http_stream_pending(c->res) > sse__max_pending(c)) {
    /* (catching up, the backlog is paced instead: sse__backlog) */
    log_warn("api: dropping a slow event stream client (%zu bytes unsent)", http_stream_pending(c->res));
    sse__finish(c);
  }
}

static int sse__wanted(const sse_client *c, const char *channel, const char *inbox) {
  if (c->channel != NULL && (channel == NULL || strcmp(channel, c->channel) != 0)) return 0;
  if (c->inbox != NULL && (inbox == NULL || strcmp(inbox, c->inbox) != 0)) return 0;
  return 1;
}

static void sse__event(void *arg, const events_event *ev) {
  sse_client *c = arg;
  if (!sse__wanted(c, ev->channel, ev->inbox) || !sse__type_wanted(c, ev->type)) return;
  if (c->catching_up) {
    /* A live event is one the store committed: a backlog read asked for
     * after it finds it. So held keeps only what came during the read in
     * flight; past the bound it lets that go too, and the catch-up reads
     * the store once more before it goes live. */
    if (json_array_size(c->held) >= SSE_HELD_MAX) {
      if (!c->held_dropped)
        log_debug("api: an event stream catching up reads the live events it could not hold from the store");
      json_array_clear(c->held);
      c->held_dropped = 1;
    }
    json_t *j = events_to_json(ev);
    if (j != NULL) json_array_append_new(c->held, j);
    else c->held_dropped = 1; /* out of memory: the store has it */
    return;
  }
  sse__write(c, ev);
}

/* Writes an event in its JSON form ({id, type, channel, inbox, data}). */
static void sse__write_json(sse_client *c, const json_t *e) {
  events_event ev = {
      .id = json_integer_value(json_object_get(e, "id")),
      .type = json_string_value(json_object_get(e, "type")),
      .channel = json_string_value(json_object_get(e, "channel")),
      .inbox = json_string_value(json_object_get(e, "inbox")),
      .data = json_object_get(e, "data"),
  };
  if (ev.type != NULL) sse__write(c, &ev);
}

static void sse__backlog(void *arg, int status, json_t *result, const char *err);
static void sse__tick(uv_timer_t *t);

/* How much unsent a client may have before the next page of its backlog is
 * read: a quarter of what gets a live client dropped, so a client reading
 * steadily, however slowly, is paced, not dropped. */
static size_t sse__pace_limit(const sse_client *c) { return sse__max_pending(c) / 4; }

/* Asks for the next page of stored events after c->last_id. */
static int sse__read_backlog(sse_client *c) {
  store_events_query q = {.after = c->last_id, .channel = c->channel, .inbox = c->inbox,
                          .no_messages = c->no_messages, .limit = SSE_PAGE};
  c->store_busy = 1;
  json_array_clear(c->held); /* this read finds what is held, and what was let go */
  c->held_dropped = 0;
  int rc = store_events_read(c->a->host.st, &q, sse__backlog, c);
  if (rc != 0) c->store_busy = 0;
  return rc;
}

static void sse__backlog(void *arg, int status, json_t *result, const char *err) {
  sse_client *c = arg;
  c->store_busy = 0;
  if (c->ended) {
    sse__maybe_free(c);
    return;
  }
  if (status != 0) {
    log_error("api: reading events to resume a stream failed: %s", err ? err : "");
    sse__finish(c);
    return;
  }
  size_t i;
  json_t *e;
  json_array_foreach(result, i, e) {
    sse__write_json(c, e);
    if (c->ended) return;
  }
  /* Past the page, written or not (?types= may have left all of it out):
   * the next page starts after it, and held live events it held are sent once. */
  int64_t page_end = json_integer_value(json_object_get(json_array_get(result, json_array_size(result) - 1), "id"));
  if (page_end > c->last_id) c->last_id = page_end;
  /* The next page once the client has taken most of this one (sse__tick
   * reads on then; what came live meanwhile the store has too), or at once
   * while the store may have more: a full page, or live events let go. */
  if (http_stream_pending(c->res) > sse__pace_limit(c)) {
    c->paced = 1;
    uv_timer_start(&c->keepalive, sse__tick, 20, 20);
    return;
  }
  if ((json_array_size(result) == SSE_PAGE || c->held_dropped) && sse__read_backlog(c) == 0) return;
  /* Caught up: what arrived during the last read goes out in order,
   * skipping what that read already found. */
  c->catching_up = 0;
  json_array_foreach(c->held, i, e) {
    sse__write_json(c, e);
    if (c->ended) return;
  }
  json_array_clear(c->held);
}

static void sse__token_checked(void *arg, int status, json_t *result, const char *err) {
  (void)result;
  (void)err;
  sse_client *c = arg;
  c->token_busy = 0;
  if (c->ended) {
    sse__maybe_free(c);
    return;
  }
  if (status == -ENOENT) { /* revoked (its user deleted, say); a store error leaves the stream be */
    log_info("api: ending an event stream: its token was revoked");
    sse__finish(c);
  }
}

/* Asks the store whether the stream's token is still there. */
static void sse__check_token(sse_client *c) {
  if (c->ended || c->token_busy || c->a == NULL) return;
  c->token_busy = 1;
  if (store_token_find(c->a->host.st, c->token_hash, sse__token_checked, c) != 0) c->token_busy = 0;
}

void sse_recheck_tokens(api *a) {
  for (sse_client *c = a->sse != NULL ? a->sse->head : NULL; c != NULL; c = c->next) sse__check_token(c);
}

static void sse__tick(uv_timer_t *t) {
  sse_client *c = t->data;
  if (c->ended) return;
  if (c->paced) {
    if (http_stream_pending(c->res) > sse__pace_limit(c)) return;
    c->paced = 0;
    uv_timer_start(&c->keepalive, sse__tick, c->every, c->every);
    if (sse__read_backlog(c) != 0) sse__finish(c);
    return;
  }
  if (http_stream_write(c->res, ": keep-alive\n\n", 14) != 0) {
    sse__finish(c);
    return;
  }
  sse__check_token(c);
}

/* Reads filter ?name= into *out (malloc'd; NULL when absent). Any length
 * is taken, as an inbox name has no limit: a value cut or dropped would
 * widen the stream to every inbox. Returns 0, -EINVAL for an empty value
 * (it names nothing; leaving the parameter out means "every"), or -ENOMEM. */
static int sse__filter(const http_request *req, const char *name, char **out) {
  *out = NULL;
  size_t cap = strlen(req->query) + 1; /* a decoded value is never longer than the query */
  char *buf = malloc(cap);
  if (buf == NULL) return -ENOMEM;
  int n = http_request_query(req, name, buf, cap);
  if (n > 0) {
    *out = buf;
    return 0;
  }
  free(buf);
  if (n == -ENOENT) return 0;
  return n == 0 ? -EINVAL : n;
}

/* Reads both filters; on failure answers res and returns non-zero. */
static int sse__filters(const http_request *req, http_responder *res, char **channel, char **inbox) {
  static const char *const names[] = {"channel", "inbox"};
  char **outs[] = {channel, inbox};
  for (size_t i = 0; i < 2; i++) {
    int rc = sse__filter(req, names[i], outs[i]);
    if (rc == 0) continue;
    free(*channel);
    *channel = NULL;
    if (rc == -EINVAL) {
      char msg[128];
      snprintf(msg, sizeof(msg), "?%s= is empty: name one, or leave the parameter out for every %s", names[i],
               names[i]);
      http_respond_error(res, 400, "invalid", msg, names[i]);
    } else {
      http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    }
    return rc;
  }
  return 0;
}

/* Reads ?types= (comma-separated patterns) into *out (NULL when absent).
 * On a pattern that is none answers 400 naming types and returns -EINVAL. */
static int sse__types(const http_request *req, http_responder *res, json_t **out) {
  char *list = NULL;
  *out = NULL;
  int rc = sse__filter(req, "types", &list);
  if (rc == 0 && list != NULL) {
    json_t *types = json_array();
    /* every item counts: "a,,b" or a trailing comma is an empty pattern, refused */
    for (char *p = list, *next; p != NULL; p = next) {
      next = strchr(p, ',');
      if (next != NULL) *next++ = '\0';
      if (!events_pattern_ok(p)) {
        rc = -EINVAL;
        break;
      }
      json_array_append_new(types, json_string(p));
    }
    if (rc == 0 && json_array_size(types) > 0) {
      *out = types;
    } else {
      json_decref(types);
      rc = -EINVAL;
    }
  }
  free(list);
  if (rc == -EINVAL) {
    http_respond_error(res, 400, "invalid",
                       "?types= lists event types, families such as ticket.* or *, separated by commas", "types");
  } else if (rc != 0) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
  }
  return rc;
}

static void sse__events(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  const char *last = http_request_header(req, "last-event-id");
  char qbuf[32];
  if (last == NULL && http_request_query(req, "last_event_id", qbuf, sizeof(qbuf)) > 0) last = qbuf;
  int64_t after = -1;
  if (last != NULL && last[0] != '\0') {
    char *end = NULL;
    long long v = strtoll(last, &end, 10);
    while (*end == ' ' || *end == '\t') end++; /* a header value's own spaces */
    if (end == last || *end != '\0' || v < 0) {
      http_respond_error(res, 400, "invalid", "Last-Event-ID must be an event id (a whole number)", "Last-Event-ID");
      return;
    }
    after = v;
  }
  char *channel = NULL, *inbox = NULL;
  json_t *types = NULL;
  if (sse__types(req, res, &types) != 0) return;
  if (sse__filters(req, res, &channel, &inbox) != 0) {
    json_decref(types);
    return;
  }
  sse_client *c = calloc(1, sizeof(*c));
  if (c == NULL || (c->held = json_array()) == NULL) {
    free(c);
    free(channel);
    free(inbox);
    json_decref(types);
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  c->types = types;
  snprintf(c->token_hash, sizeof(c->token_hash), "%s", a->caller_token_hash != NULL ? a->caller_token_hash : "");
  c->no_messages = types != NULL && !sse__type_wanted(c, "message.in") && !sse__type_wanted(c, "message.out");
  c->a = a;
  c->res = res;
  c->channel = channel;
  c->inbox = inbox;
  uv_timer_init(a->host.loop, &c->keepalive);
  c->keepalive.data = c;
  c->next = a->sse->head;
  if (c->next != NULL) c->next->prev = c;
  a->sse->head = c;
  http_header h[] = {{"Content-Type", "text/event-stream", 0}, {"Cache-Control", "no-cache", 0},
                     {"X-Accel-Buffering", "no", 0}};
  if (http_stream_start(res, 200, h, 3, sse__closed, c) != 0) {
    sse__finish(c);
    return;
  }
  c->token = events_subscribe(store_events(a->host.st), sse__event, c);
  if (c->token < 0) {
    c->token = 0;
    sse__finish(c);
    return;
  }
  /* An opening comment makes proxies and clients see the stream at once. */
  http_stream_write(res, ": switchboard events\n\n", 22);
  c->every = a->host.sse_keepalive_ms ? a->host.sse_keepalive_ms : 15000;
  uv_timer_start(&c->keepalive, sse__tick, c->every, c->every);
  if (after >= 0) {
    /* An id past the newest (another database's, one restored from an
     * older backup) resumes from now: waiting for ids to pass it would
     * hold back every event until they did. */
    int64_t newest = events_newest(store_events(a->host.st));
    c->last_id = after > newest ? newest : after;
    c->catching_up = 1;
    if (sse__read_backlog(c) != 0) sse__finish(c);
  }
}

int sse_register(api *a) {
  a->sse = calloc(1, sizeof(*a->sse));
  if (a->sse == NULL) return -ENOMEM;
  return api_route(a, "GET", "/api/v1/events", 0, sse__events);
}

void sse_free(api *a) {
  if (a->sse == NULL) return;
  while (a->sse->head != NULL) {
    sse_client *c = a->sse->head;
    sse__finish(c);
    c->a = NULL;
  }
  free(a->sse);
  a->sse = NULL;
}
