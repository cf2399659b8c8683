/* ingress.c — /hooks/{channel}[/...] requests handed to channel plugins. */
#include "ingress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One request a plugin holds: the ABI's responder, bound to the HTTP one. */
typedef struct hook_call {
  sb_responder base;
  struct hook_call *prev, *next;
  ingress *in;
  sb_channel *ch;
  http_responder *res;
  int in_receive; /* inside channel_receive: an answer must not free the call yet */
} hook_call;

struct ingress {
  ingress_lookup_fn lookup;
  int (*is_pending)(void *ctx, const char *name);
  void *ctx;
  hook_call pending; /* list head */
  ingress_stats stats;
};

static void ingress__unlink(hook_call *c) {
  c->prev->next = c->next;
  c->next->prev = c->prev;
}

static int ingress__respond(sb_responder *self, int status, const sb_http_header *headers, size_t n,
                            const char *body, size_t len) {
  hook_call *c = (hook_call *)self;
  if (status == 401 || status == 403) channel_counters_of(c->ch)->webhook_refused++;
  http_header stack[32];
  http_header *h = n <= 32 ? stack : calloc(n, sizeof(*h));
  int rc = SB_ENOMEM;
  if (h != NULL) {
    for (size_t i = 0; i < n; i++) {
      h[i].name = headers[i].name;
      h[i].value = headers[i].value != NULL ? headers[i].value : "";
      h[i].value_len = strlen(h[i].value);
    }
    rc = http_respond(c->res, status, n > 0 ? h : NULL, n, body, len) == 0 ? SB_OK : SB_EIO;
    if (h != stack) free(h);
  }
  ingress__unlink(c);
  c->prev = c->next = c;
  if (!c->in_receive) free(c);
  return rc;
}

static void ingress__answer_503(ingress *in, hook_call *c) {
  c->base.answered = 1;
  in->stats.answered_by_host++;
  http_respond_error(c->res, 503, "unavailable", "the channel is restarting or stopping; retry later", NULL);
  ingress__unlink(c);
  free(c);
}

/* Hands an ordinary request to the plugin's receive(). */
static void ingress__receive(ingress *in, sb_channel *ch, const sb_http_request *r, http_responder *res) {
  hook_call *c = malloc(sizeof(*c)); /* not calloc: glibc 2.36 serves that without its thread cache */
  if (c == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  *c = (hook_call){.base.respond = ingress__respond, .in = in, .ch = ch, .res = res,
                   .next = in->pending.next, .prev = &in->pending, .in_receive = 1};
  in->pending.next->prev = c;
  in->pending.next = c;
  channel_receive(ch, r, &c->base);
  c->in_receive = 0;
  if (c->base.answered) free(c); /* answered inside receive: its respond left it to us */
}

/* One WebSocket a plugin holds: the ABI's handle, bound to the HTTP one. */
typedef struct hook_ws {
  sb_ws base;
  http_ws *hws;
} hook_ws;

static int ingress__ws_send(sb_ws *self, uint32_t kind, const char *data, size_t len) {
  hook_ws *w = (hook_ws *)self;
  switch (http_ws_send(w->hws, kind == SB_WS_TEXT ? HTTP_WS_TEXT : HTTP_WS_BINARY, data, len)) {
  case 0: return SB_OK;
  case -EPIPE: return SB_ENOENT;
  case -EAGAIN: return SB_EAGAIN;
  case -ENOMEM: return SB_ENOMEM;
  default: return SB_EINVAL;
  }
}

static void ingress__ws_close(sb_ws *self, int code, const char *reason) {
  http_ws_close(((hook_ws *)self)->hws, code, reason);
}

static const char *ingress__ws_remote_addr(const sb_ws *self) {
  return http_ws_remote_addr(((const hook_ws *)self)->hws);
}

static void ingress__ws_message(void *arg, http_ws *hws, int kind, const char *data, size_t len) {
  hook_ws *w = arg;
  channel_ws_message(&w->base, kind == HTTP_WS_TEXT ? SB_WS_TEXT : SB_WS_BINARY, data, len);
}

static void ingress__ws_closed(void *arg, http_ws *hws, int code) {
  hook_ws *w = arg;
  channel_ws_closed(&w->base, code);
  free(w);
}

static const http_ws_handlers ingress__ws_handlers = {ingress__ws_message, ingress__ws_closed};

/* A WebSocket handshake for a plugin with ws_open: its verdict decides
 * between 101 and an HTTP refusal. */
static void ingress__websocket(ingress *in, sb_channel *ch, const sb_http_request *r, http_responder *res, int hs) {
  if (hs == -EPROTO) {
    static const char body[] = "{\"error\":{\"code\":\"upgrade_required\",\"message\":\"the WebSocket needs "
                               "Sec-WebSocket-Version: 13 (RFC 6455), over HTTP/1.1\"}}";
    http_header h[] = {{"Content-Type", "application/json", 0}, {"Sec-WebSocket-Version", "13", 0}};
    http_respond(res, 426, h, 2, body, sizeof(body) - 1);
    return;
  }
  if (hs < 0) {
    http_respond_error(res, 400, "bad_request", "the WebSocket handshake's Sec-WebSocket-Key is malformed", NULL);
    return;
  }
  hook_ws *w = calloc(1, sizeof(*w));
  http_ws *hws = w != NULL ? http_ws_prepare(res) : NULL;
  if (hws == NULL) {
    free(w);
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  w->base.send = ingress__ws_send;
  w->base.close = ingress__ws_close;
  w->base.remote_addr = ingress__ws_remote_addr;
  w->hws = hws;
  int rc = channel_ws_open(ch, r, &w->base);
  if (rc != SB_OK) {
    http_ws_discard(hws);
    free(w);
    int status = rc == SB_EACCES ? 403 : rc == SB_ENOENT ? 404 : rc == SB_EAGAIN ? 429 : rc == SB_EFBIG ? 413 : 400;
    if (status == 403) channel_counters_of(ch)->webhook_refused++;
    const char *code = status == 403   ? "forbidden"
                       : status == 404 ? "not_found"
                       : status == 429 ? "rate_limited"
                       : status == 413 ? "payload_too_large"
                                       : "bad_request";
    char msg[128];
    snprintf(msg, sizeof(msg), "the channel refused the WebSocket (code %d)", rc);
    http_respond_error(res, status, code, msg, NULL);
    return;
  }
  in->stats.websockets++;
  if (http_ws_accept(hws, &ingress__ws_handlers, w) != 0) {
    /* the client left before the 101: the plugin accepted, so it hears of the end */
    channel_ws_closed(&w->base, SB_WS_CLOSE_ABNORMAL);
    free(w);
  }
}

static void ingress__handle(void *arg, const http_request *req, http_responder *res) {
  ingress *in = arg;
  in->stats.requests++;
  const char *name = http_request_param(req, "channel");
  sb_channel *ch = name != NULL ? in->lookup(in->ctx, name) : NULL;
  if (ch == NULL && name != NULL && in->is_pending != NULL && in->is_pending(in->ctx, name)) {
    in->stats.answered_by_host++;
    http_respond_error(res, 503, "unavailable", "the channel is starting, restarting or stopping; deliver it again",
                       NULL);
    return;
  }
  if (ch == NULL) {
    in->stats.unknown_channel++;
    http_respond_error(res, 404, "not_found", "no such channel, or the channel is off", NULL);
    return;
  }
  channel_counters_of(ch)->webhooks++;
  /* subpath: what follows "/hooks/<segment>" in the raw path. */
  const char *seg = req->path + strlen("/hooks/");
  const char *sub = strchr(seg, '/');
  sb_http_header stack[64];
  sb_http_header *headers = req->nheaders <= 64 ? stack : calloc(req->nheaders, sizeof(*headers));
  if (headers == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  for (size_t i = 0; i < req->nheaders; i++) {
    headers[i].name = req->headers[i].name;
    headers[i].value = req->headers[i].value;
  }
  sb_http_request r = {
      .method = req->method,
      .path = req->path,
      .subpath = sub != NULL ? sub : "",
      .query = req->query,
      .headers = headers,
      .header_count = req->nheaders,
      .body = req->body,
      .body_len = req->body_len,
      .remote_addr = req->remote_addr,
  };
  int hs = channel_takes_websockets(ch) ? http_ws_is_handshake(res) : 0;
  if (hs != 0) {
    ingress__websocket(in, ch, &r, res, hs);
  } else {
    ingress__receive(in, ch, &r, res);
  }
  if (headers != stack) free(headers);
}

int ingress_new(http_server *s, ingress_lookup_fn lookup, void *ctx, ingress **out) {
  ingress *in = calloc(1, sizeof(*in));
  if (in == NULL) return -ENOMEM;
  in->lookup = lookup;
  in->ctx = ctx;
  in->pending.next = in->pending.prev = &in->pending;
  int rc = http_route(s, NULL, "/hooks/{channel}/*", ingress__handle, in);
  if (rc != 0) {
    free(in);
    return rc;
  }
  *out = in;
  return 0;
}

void ingress_on_pending(ingress *in, int (*pending)(void *ctx, const char *name)) { in->is_pending = pending; }

void ingress_channel_closing(ingress *in, sb_channel *ch) {
  if (in == NULL) return;
  for (hook_call *c = in->pending.next, *next; c != &in->pending; c = next) {
    next = c->next;
    if (c->ch == ch) ingress__answer_503(in, c);
  }
}

void ingress_free(ingress *in) {
  if (in == NULL) return;
  while (in->pending.next != &in->pending) ingress__answer_503(in, in->pending.next);
  free(in);
}

void ingress_get_stats(const ingress *in, ingress_stats *out) { *out = in->stats; }
