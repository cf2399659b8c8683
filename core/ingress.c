/* ingress.c — /hooks/{channel}[/...] requests handed to channel plugins. */
#include "ingress.h"

#include <errno.h>
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

static void ingress__handle(void *arg, const http_request *req, http_responder *res) {
  ingress *in = arg;
  in->stats.requests++;
  const char *name = http_request_param(req, "channel");
  sb_channel *ch = name != NULL ? in->lookup(in->ctx, name) : NULL;
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
  hook_call *c = calloc(1, sizeof(*c));
  if (headers == NULL || c == NULL) {
    if (headers != stack) free(headers);
    free(c);
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
  c->base.respond = ingress__respond;
  c->in = in;
  c->ch = ch;
  c->res = res;
  c->next = in->pending.next;
  c->prev = &in->pending;
  in->pending.next->prev = c;
  in->pending.next = c;
  c->in_receive = 1;
  channel_receive(ch, &r, &c->base);
  c->in_receive = 0;
  if (c->base.answered) free(c); /* answered inside receive: its respond left it to us */
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
