/* hostapi.c — the host API table plugins call (sb_host in plugin.h). */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "channel_impl.h"
#include "clock.h"
#include "filelink.h"
#include "hmac.h"
#include "httpc.h"
#include "log.h"
#include "schema.h"

#define HOSTAPI_KV_KEY_MAX 200
#define HOSTAPI_KV_VALUE_MAX (64 * 1024)

_Static_assert(SB_LOG_ERROR == LOG_LEVEL_ERROR && SB_LOG_DEBUG == LOG_LEVEL_DEBUG,
               "plugin and host log levels must agree");

static void hostapi__log(sb_channel *ch, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(level, ch != NULL ? ch->spec.name : NULL, ch != NULL ? ch->plugin->desc.id : NULL, fmt, ap);
  va_end(ap);
}

static const char *hostapi__channel_name(const sb_channel *ch) { return ch != NULL ? ch->spec.name : NULL; }

static void hostapi__set_state(sb_channel *ch, uint32_t state, const char *reason) {
  if (ch == NULL) return;
  switch (state) {
  case SB_STATE_CONNECTING:
  case SB_STATE_CONNECTED:
  case SB_STATE_DISCONNECTED:
  case SB_STATE_RATE_LIMITED:
  case SB_STATE_AUTH_FAILED:
  case SB_STATE_CONFIG_ERROR:
    channel_set_state(ch, state, reason);
    return;
  default:
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "set_state with unknown state %u ignored",
            (unsigned)state);
  }
}

/* Copies a plugin-filled struct that begins with struct_size into a zeroed
 * host-sized one, so fields an older plugin does not know read as zero. */
static int hostapi__extend(void *dst, size_t dst_size, const void *src, size_t min_size) {
  uint32_t given;
  memcpy(&given, src, sizeof(given));
  if (given < min_size) return SB_EINVAL;
  memset(dst, 0, dst_size);
  memcpy(dst, src, given < dst_size ? given : dst_size);
  return SB_OK;
}

/* One inbound message on its way to the store: its done runs before the
 * channel's destroy(). */
typedef struct hostapi_inbound {
  sb_channel *ch;
  sb_inbound_done_fn done;
  void *arg;
} hostapi_inbound;

static void hostapi__inbound_done(void *arg, int status, const char *message_id, int duplicate) {
  hostapi_inbound *in = arg;
  sb_channel *ch = in->ch;
  in->done(in->arg, status, message_id, duplicate);
  free(in);
  channel_completion_end(ch);
}

static int hostapi__emit_inbound(sb_channel *ch, const sb_inbound_message *message, sb_inbound_done_fn done,
                                 void *arg) {
  if (ch == NULL || message == NULL || done == NULL) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  sb_inbound_message m;
  if (hostapi__extend(&m, sizeof(m), message, offsetof(sb_inbound_message, metadata_json)) != 0) {
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "emit_inbound: struct_size %u is too small",
            (unsigned)message->struct_size);
    return SB_EINVAL;
  }
  const char *why = NULL;
  if (m.external_id == NULL || m.external_id[0] == '\0') {
    why = "it has no external_id";
  } else if (m.sender.id == NULL || m.sender.id[0] == '\0') {
    why = "its sender has no id";
  } else if (ch->plugin->desc.caps.thread_model == SB_THREAD_EXTERNAL &&
             (m.external_thread_id == NULL || m.external_thread_id[0] == '\0')) {
    why = "it has no external_thread_id and the plugin declares external threads";
  } else if (m.sender.kind > SB_IDENTITY_VISITOR) {
    why = "its sender kind is unknown";
  } else if (m.attachment_count > 0 && m.attachments == NULL) {
    why = "it counts attachments but gives none";
  }
  if (why != NULL) {
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "inbound message refused: %s", why);
    return SB_EINVAL;
  }
  if (ch->env->inbound == NULL) return SB_ENOTSUP;
  hostapi_inbound *in = malloc(sizeof(*in));
  if (in == NULL) return SB_ENOMEM;
  in->ch = ch;
  in->done = done;
  in->arg = arg;
  int rc = ch->env->inbound(ch->env->ctx, ch, &m, hostapi__inbound_done, in);
  if (rc != SB_OK) {
    free(in);
    return rc;
  }
  channel_completion_begin(ch);
  return SB_OK;
}

static int hostapi__emit_status(sb_channel *ch, const sb_status_update *update) {
  if (ch == NULL || update == NULL) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  sb_status_update u;
  if (hostapi__extend(&u, sizeof(u), update, offsetof(sb_status_update, recipient_kind)) != 0) return SB_EINVAL;
  if (u.status < SB_STATUS_SENT || u.status > SB_STATUS_FAILED) return SB_EINVAL;
  if ((u.flags & SB_STATUS_WATERMARK) ? u.recipient_id == NULL : u.external_id == NULL) return SB_EINVAL;
  if (ch->env->status == NULL) return SB_ENOTSUP;
  return ch->env->status(ch->env->ctx, ch, &u);
}

static int hostapi__respond(sb_responder *r, int status, const sb_http_header *headers, size_t header_count,
                            const char *body, size_t body_len) {
  if (r == NULL || status < 100 || status > 599 || (header_count > 0 && headers == NULL) ||
      (body_len > 0 && body == NULL)) {
    return SB_EINVAL;
  }
  if (r->answered) {
    log_warn("a plugin answered one request twice; the second answer is ignored");
    return SB_EINVAL;
  }
  r->answered = 1;
  return r->respond(r, status, headers, header_count, body, body_len);
}

static const char *hostapi__http_header(const sb_http_request *req, const char *name) {
  if (req == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < req->header_count; i++) {
    if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
  }
  return NULL;
}

static int hostapi__hex(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Percent-decodes src[0..n) into buf; '+' is a space. Returns the length or -1. */
static int hostapi__decode(const char *src, size_t n, char *buf, size_t buflen) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = src[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < n && hostapi__hex(src[i + 1]) >= 0 && hostapi__hex(src[i + 2]) >= 0) {
      c = (char)(hostapi__hex(src[i + 1]) * 16 + hostapi__hex(src[i + 2]));
      i += 2;
    }
    if (o + 1 >= buflen) return -1;
    buf[o++] = c;
  }
  buf[o] = '\0';
  return (int)o;
}

static int hostapi__http_query(const sb_http_request *req, const char *name, char *buf, size_t buflen) {
  if (req == NULL || name == NULL || buf == NULL || buflen == 0 || req->query == NULL) return -1;
  size_t nlen = strlen(name);
  const char *p = req->query;
  while (*p != '\0') {
    const char *end = strchr(p, '&');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    size_t klen = eq != NULL ? (size_t)(eq - p) : len;
    char key[256];
    if (hostapi__decode(p, klen, key, sizeof(key)) == (int)nlen && memcmp(key, name, nlen) == 0) {
      if (eq == NULL) return hostapi__decode("", 0, buf, buflen);
      return hostapi__decode(eq + 1, len - klen - 1, buf, buflen);
    }
    if (end == NULL) break;
    p = end + 1;
  }
  return -1;
}

static void hostapi__complete(sb_send_op *op, int outcome, const char *text, uint32_t retry_after_ms) {
  if (op == NULL) return;
  if (op->completed) {
    log_warn("a plugin completed one send twice; the second completion is ignored");
    return;
  }
  op->completed = 1;
  op->complete(op, outcome, text, retry_after_ms);
}

static void hostapi__send_ok(sb_send_op *op, const char *external_id) {
  hostapi__complete(op, CHANNEL_SEND_OK, external_id, 0);
}

static void hostapi__send_retry(sb_send_op *op, uint32_t retry_after_ms, const char *reason) {
  hostapi__complete(op, CHANNEL_SEND_RETRY, reason, retry_after_ms);
}

static void hostapi__send_fail(sb_send_op *op, const char *reason) {
  hostapi__complete(op, CHANNEL_SEND_FAIL, reason, 0);
}

static void hostapi__send_defer(sb_send_op *op, uint32_t defer_ms, const char *reason) {
  hostapi__complete(op, CHANNEL_SEND_DEFER, reason, defer_ms);
}

/* --- timers ------------------------------------------------------------- */

static void hostapi__timer_closed(uv_handle_t *h) {
  sb_timer *t = h->data;
  sb_channel *ch = t->ch;
  free(t);
  channel_release(ch);
}

static void hostapi__timer_dispose(sb_timer *t) {
  if (t->stopped) return;
  t->stopped = 1;
  channel_link_remove(&t->link);
  uv_timer_stop(&t->handle);
  uv_close((uv_handle_t *)&t->handle, hostapi__timer_closed);
}

static void hostapi__timer_cb(uv_timer_t *h) {
  sb_timer *t = h->data;
  t->fn(t->arg);
  if (!t->repeating) hostapi__timer_dispose(t);
}

static sb_timer *hostapi__timer_start(sb_channel *ch, uint64_t timeout_ms, uint64_t repeat_ms, sb_timer_fn fn,
                                      void *arg) {
  if (ch == NULL || fn == NULL || ch->closing) return NULL;
  sb_timer *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  t->ch = ch;
  t->fn = fn;
  t->arg = arg;
  t->repeating = repeat_ms > 0;
  uv_timer_init(ch->env->loop, &t->handle);
  t->handle.data = t;
  channel_hold(ch);
  channel_link_add(&ch->timers, &t->link);
  uv_timer_start(&t->handle, hostapi__timer_cb, timeout_ms, repeat_ms);
  return t;
}

static void hostapi__timer_stop(sb_timer *t) {
  if (t != NULL) hostapi__timer_dispose(t);
}

/* --- fd watches --------------------------------------------------------- */

static void hostapi__watch_closed(uv_handle_t *h) {
  sb_watch *w = h->data;
  sb_channel *ch = w->ch;
  free(w);
  channel_release(ch);
}

static void hostapi__watch_dispose(sb_watch *w) {
  if (w->stopped) return;
  w->stopped = 1;
  channel_link_remove(&w->link);
  uv_poll_stop(&w->handle);
  uv_close((uv_handle_t *)&w->handle, hostapi__watch_closed);
}

static void hostapi__watch_cb(uv_poll_t *h, int status, int events) {
  sb_watch *w = h->data;
  uint32_t ev = 0;
  if (events & UV_READABLE) ev |= SB_WATCH_READABLE;
  if (events & UV_WRITABLE) ev |= SB_WATCH_WRITABLE;
  w->fn(w->arg, h->io_watcher.fd, ev, status < 0 ? SB_EIO : SB_OK);
}

static sb_watch *hostapi__watch_fd(sb_channel *ch, int fd, uint32_t events, sb_watch_fn fn, void *arg) {
  if (ch == NULL || fn == NULL || fd < 0 || ch->closing ||
      (events & ~(uint32_t)(SB_WATCH_READABLE | SB_WATCH_WRITABLE)) != 0 || events == 0) {
    return NULL;
  }
  sb_watch *w = calloc(1, sizeof(*w));
  if (w == NULL) return NULL;
  if (uv_poll_init(ch->env->loop, &w->handle, fd) != 0) {
    free(w);
    return NULL;
  }
  w->ch = ch;
  w->fn = fn;
  w->arg = arg;
  w->handle.data = w;
  channel_hold(ch);
  channel_link_add(&ch->watches, &w->link);
  int uv_events = ((events & SB_WATCH_READABLE) ? UV_READABLE : 0) | ((events & SB_WATCH_WRITABLE) ? UV_WRITABLE : 0);
  uv_poll_start(&w->handle, uv_events, hostapi__watch_cb);
  return w;
}

static void hostapi__watch_stop(sb_watch *w) {
  if (w != NULL) hostapi__watch_dispose(w);
}

/* --- HTTP client ---------------------------------------------------------- */

/* What a channel's calls list holds: HTTP and mail calls alike, so closing
 * a channel cancels both the same way. */
typedef struct hostapi_call {
  channel_link link;
  sb_channel *ch;
  httpc_call *call;
} hostapi_call;

struct sb_http_call {
  hostapi_call base;
  sb_http_done_fn done;
  void *arg;
};

static void hostapi__http_done(void *arg, const httpc_response *res) {
  struct sb_http_call *c = arg;
  sb_channel *ch = c->base.ch;
  channel_link_remove(&c->base.link);
  sb_http_header stack[64];
  sb_http_header *headers = res->n_headers <= 64 ? stack : calloc(res->n_headers, sizeof(*headers));
  size_t nh = headers != NULL ? res->n_headers : 0;
  for (size_t i = 0; i < nh; i++) {
    headers[i].name = res->headers[i].name;
    headers[i].value = res->headers[i].value;
  }
  sb_http_client_response r = {
      .status = res->status,
      .http_status = (int32_t)res->code,
      .error = res->status != 0 ? res->error : NULL,
      .headers = headers,
      .header_count = nh,
      .body = res->body,
      .body_len = res->body_len,
      .elapsed_ms = res->total_us / 1000,
  };
  c->done(c->arg, &r);
  if (headers != stack) free(headers);
  free(c);
  channel_release(ch);
}

static sb_http_call *hostapi__http_request(sb_channel *ch, const sb_http_client_request *request,
                                           sb_http_done_fn done, void *arg) {
  if (ch == NULL || request == NULL || done == NULL || ch->closing) return NULL;
  sb_http_client_request rq;
  if (hostapi__extend(&rq, sizeof(rq), request, offsetof(sb_http_client_request, max_response_bytes)) != 0) {
    return NULL;
  }
  if (ch->env->httpc == NULL) {
    log_msg(LOG_LEVEL_ERROR, ch->spec.name, ch->plugin->desc.id, "http_request: the host has no HTTP client");
    return NULL;
  }
  struct sb_http_call *c = calloc(1, sizeof(*c));
  httpc_header *headers = rq.header_count > 0 ? calloc(rq.header_count, sizeof(*headers)) : NULL;
  if (c == NULL || (rq.header_count > 0 && (headers == NULL || rq.headers == NULL))) {
    free(c);
    free(headers);
    return NULL;
  }
  for (size_t i = 0; i < rq.header_count; i++) {
    headers[i].name = rq.headers[i].name;
    headers[i].value = rq.headers[i].value;
  }
  httpc_req hr = {
      .method = rq.method != NULL ? rq.method : "GET",
      .url = rq.url,
      .headers = headers,
      .n_headers = rq.header_count,
      .body = rq.body,
      .body_len = rq.body_len,
      .timeout_ms = rq.timeout_ms,
      .max_response_bytes = rq.max_response_bytes,
      .owner = ch,
  };
  c->base.ch = ch;
  c->done = done;
  c->arg = arg;
  int rc = httpc_request(ch->env->httpc, &hr, hostapi__http_done, c, &c->base.call);
  free(headers);
  if (rc != 0) {
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "http_request refused (code %d)", rc);
    free(c);
    return NULL;
  }
  channel_hold(ch);
  channel_link_add(&ch->calls, &c->base.link);
  return c;
}

static void hostapi__http_cancel(sb_http_call *c) {
  if (c != NULL && c->base.call != NULL) httpc_cancel(c->base.call);
}

/* --- mail transfers (since ABI 1.1) --------------------------------------- */

struct sb_mail_call {
  hostapi_call base;
  sb_mail_done_fn done;
  void *arg;
};

static void hostapi__mail_done(void *arg, const httpc_response *res) {
  struct sb_mail_call *c = arg;
  sb_channel *ch = c->base.ch;
  channel_link_remove(&c->base.link);
  /* httpc's codes are negated errno values, as SB_* codes are. */
  sb_mail_response r = {
      .status = res->status,
      .code = (int32_t)res->code,
      .error = res->status != 0 ? res->error : NULL,
      .body = res->body,
      .body_len = res->body_len,
      .elapsed_ms = res->total_us / 1000,
  };
  c->done(c->arg, &r);
  free(c);
  channel_release(ch);
}

/* True when url starts with one of the mail schemes. */
static int hostapi__is_mail_url(const char *url) {
  static const char *const schemes[] = {"imap://", "imaps://", "smtp://", "smtps://"};
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
    if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0) return 1;
  }
  return 0;
}

static sb_mail_call *hostapi__mail_request(sb_channel *ch, const sb_mail_request *request, sb_mail_done_fn done,
                                           void *arg) {
  if (ch == NULL || request == NULL || done == NULL || ch->closing) return NULL;
  sb_mail_request rq;
  if (hostapi__extend(&rq, sizeof(rq), request, offsetof(sb_mail_request, max_response_bytes)) != 0) return NULL;
  if (rq.url == NULL || !hostapi__is_mail_url(rq.url) || rq.tls > SB_MAIL_TLS_NONE ||
      (rq.rcpt_count > 0 && rq.rcpt == NULL) || (rq.body_len > 0 && rq.body == NULL)) {
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "mail_request refused: invalid request");
    return NULL;
  }
  if (ch->env->httpc == NULL) {
    log_msg(LOG_LEVEL_ERROR, ch->spec.name, ch->plugin->desc.id, "mail_request: the host has no transfer engine");
    return NULL;
  }
  struct sb_mail_call *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  httpc_req hr = {
      .url = rq.url,
      .body = rq.body,
      .body_len = rq.body_len,
      .timeout_ms = rq.timeout_ms,
      .max_response_bytes = rq.max_response_bytes,
      .owner = ch,
      .username = rq.username,
      .password = rq.password,
      .tls = rq.tls == SB_MAIL_TLS_REQUIRED ? HTTPC_TLS_REQUIRED
             : rq.tls == SB_MAIL_TLS_NONE   ? HTTPC_TLS_NONE
                                            : HTTPC_TLS_DEFAULT,
      .mail_from = rq.mail_from,
      .mail_rcpt = rq.rcpt,
      .n_mail_rcpt = rq.rcpt_count,
      .custom_request = rq.command,
  };
  c->base.ch = ch;
  c->done = done;
  c->arg = arg;
  int rc = httpc_request(ch->env->httpc, &hr, hostapi__mail_done, c, &c->base.call);
  if (rc != 0) {
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "mail_request refused (code %d)", rc);
    free(c);
    return NULL;
  }
  channel_hold(ch);
  channel_link_add(&ch->calls, &c->base.link);
  return c;
}

static void hostapi__mail_cancel(sb_mail_call *c) {
  if (c != NULL && c->base.call != NULL) httpc_cancel(c->base.call);
}

/* --- work on the thread pool -------------------------------------------- */

typedef struct hostapi_work {
  uv_work_t req;
  sb_channel *ch;
  sb_work_fn work;
  sb_work_done_fn done;
  void *arg;
} hostapi_work;

static void hostapi__work_cb(uv_work_t *req) {
  hostapi_work *w = req->data;
  w->work(w->arg);
}

static void hostapi__after_work_cb(uv_work_t *req, int status) {
  hostapi_work *w = req->data;
  sb_channel *ch = w->ch;
  int st = (status == UV_ECANCELED || ch->closing) ? SB_ECANCELED : SB_OK;
  if (w->done != NULL) w->done(w->arg, st);
  free(w);
  channel_completion_end(ch);
}

static int hostapi__queue_work(sb_channel *ch, sb_work_fn work, sb_work_done_fn done, void *arg) {
  if (ch == NULL || work == NULL) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  hostapi_work *w = calloc(1, sizeof(*w));
  if (w == NULL) return SB_ENOMEM;
  w->ch = ch;
  w->work = work;
  w->done = done;
  w->arg = arg;
  w->req.data = w;
  int rc = uv_queue_work(ch->env->loop, &w->req, hostapi__work_cb, hostapi__after_work_cb);
  if (rc != 0) {
    free(w);
    return SB_EIO;
  }
  channel_completion_begin(ch);
  return SB_OK;
}

/* --- key/value state ---------------------------------------------------- */

static channel_kv **hostapi__kv_find(sb_channel *ch, const char *key) {
  channel_kv **p = &ch->kv;
  while (*p != NULL && strcmp((*p)->key, key) != 0) p = &(*p)->next;
  return p;
}

static const char *hostapi__kv_get(sb_channel *ch, const char *key, size_t *len) {
  if (ch == NULL || key == NULL) return NULL;
  channel_kv *kv = *hostapi__kv_find(ch, key);
  if (kv == NULL) return NULL;
  if (len != NULL) *len = kv->len;
  return kv->value;
}

static int hostapi__kv_check_key(const char *key) {
  return key != NULL && key[0] != '\0' && strlen(key) <= HOSTAPI_KV_KEY_MAX;
}

/* A change on its way to the store. The channel's destroy waits for it,
 * so done still finds the instance (a plugin passes itself as arg). */
typedef struct hostapi_kv_write {
  sb_channel *ch;
  sb_kv_done_fn done;
  void *arg;
} hostapi_kv_write;

static void hostapi__kv_persisted(void *arg, int status) {
  hostapi_kv_write *w = arg;
  sb_channel *ch = w->ch;
  if (w->done != NULL) w->done(w->arg, status);
  free(w);
  channel_completion_end(ch);
}

static int hostapi__kv_persist(sb_channel *ch, const char *key, const char *value, size_t len, sb_kv_done_fn done,
                               void *arg) {
  if (ch->env->kv_persist == NULL) {
    if (done != NULL) done(arg, SB_OK);
    return SB_OK;
  }
  hostapi_kv_write *w = malloc(sizeof(*w));
  if (w == NULL) return SB_ENOMEM;
  *w = (hostapi_kv_write){ch, done, arg};
  channel_completion_begin(ch); /* first: the store may answer at once */
  int rc = ch->env->kv_persist(ch->env->ctx, ch, key, value, len, hostapi__kv_persisted, w);
  if (rc != SB_OK) { /* refused: done is never called */
    free(w);
    channel_completion_end(ch);
  }
  return rc;
}

/* True when value[0..len) is UTF-8 text without NUL bytes. */
static int hostapi__is_text(const char *value, size_t len) {
  if (len == 0) return 1;
  if (memchr(value, '\0', len) != NULL) return 0;
  json_t *probe = json_stringn(value, len); /* NULL for invalid UTF-8 */
  json_decref(probe);
  return probe != NULL;
}

static int hostapi__kv_set(sb_channel *ch, const char *key, const char *value, size_t len, sb_kv_done_fn done,
                           void *arg) {
  if (ch == NULL || !hostapi__kv_check_key(key) || (value == NULL && len > 0)) return SB_EINVAL;
  if (len > HOSTAPI_KV_VALUE_MAX) return SB_EFBIG;
  if (!hostapi__is_text(value, len)) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  channel_kv *kv = *hostapi__kv_find(ch, key);
  if (kv == NULL) {
    if (channel_kv_seed(ch, key, value != NULL ? value : "", len) != 0) return SB_ENOMEM;
  } else {
    char *copy = malloc(len + 1);
    if (copy == NULL) return SB_ENOMEM;
    if (len > 0) memcpy(copy, value, len);
    copy[len] = '\0';
    free(kv->value);
    kv->value = copy;
    kv->len = len;
  }
  return hostapi__kv_persist(ch, key, value != NULL ? value : "", len, done, arg);
}

static int hostapi__kv_delete(sb_channel *ch, const char *key, sb_kv_done_fn done, void *arg) {
  if (ch == NULL || !hostapi__kv_check_key(key)) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  channel_kv **p = hostapi__kv_find(ch, key);
  if (*p != NULL) {
    channel_kv *kv = *p;
    *p = kv->next;
    free(kv->key);
    free(kv->value);
    free(kv);
  }
  return hostapi__kv_persist(ch, key, NULL, 0, done, arg);
}

/* --- WebSockets held by the plugin (since ABI 1.3) ------------------------ */

static int hostapi__ws_send(sb_ws *ws, uint32_t kind, const char *data, size_t len) {
  if (ws == NULL || (kind != SB_WS_TEXT && kind != SB_WS_BINARY) || (len > 0 && data == NULL)) return SB_EINVAL;
  if (ws->closing || ws->closed) return SB_ENOENT;
  return ws->send(ws, kind, data, len);
}

static void hostapi__ws_close(sb_ws *ws, int code, const char *reason) {
  if (ws == NULL || ws->closing || ws->closed) return;
  if (code != SB_WS_CLOSE_NORMAL && code != SB_WS_CLOSE_GOING_AWAY && code != SB_WS_CLOSE_POLICY &&
      code != SB_WS_CLOSE_TOO_BIG && (code < 4000 || code > 4999)) {
    log_msg(LOG_LEVEL_WARN, ws->ch->spec.name, ws->ch->plugin->desc.id,
            "ws_close with close code %d, which a plugin may not send; closing with 1000", code);
    code = SB_WS_CLOSE_NORMAL;
  }
  ws->closing = 1;
  ws->close_code = code;
  ws->close(ws, code, reason);
}

static const char *hostapi__ws_remote_addr(const sb_ws *ws) { return ws != NULL ? ws->remote_addr(ws) : NULL; }

/* --- crypto helpers ----------------------------------------------------- */

static int hostapi__equal_ct(const void *a, const void *b, size_t len) {
  return sodium_memcmp(a, b, len) == 0;
}

void hostapi_cancel_all(sb_channel *ch) {
  while (ch->timers.next != &ch->timers) {
    hostapi__timer_dispose((sb_timer *)((char *)ch->timers.next - offsetof(sb_timer, link)));
  }
  while (ch->watches.next != &ch->watches) {
    hostapi__watch_dispose((sb_watch *)((char *)ch->watches.next - offsetof(sb_watch, link)));
  }
  /* Cancelling completes each call (its done runs and unlinks it). */
  while (ch->calls.next != &ch->calls) {
    hostapi_call *c = (hostapi_call *)((char *)ch->calls.next - offsetof(hostapi_call, link));
    channel_link_remove(&c->link);
    httpc_cancel(c->call);
  }
}

/* Since 1.4: a signed link to a stored file (filelink.c). */
static int hostapi__attachment_link(sb_channel *ch, int64_t id, uint32_t ttl_s, char *buf, size_t len) {
  (void)ch;
  if (buf == NULL || len == 0) return SB_EINVAL;
  int n = filelink_sign(id, ttl_s, (int64_t)time(NULL), buf, len);
  return n == -EFBIG ? SB_EFBIG : n < 0 ? SB_EINVAL : n;
}

static const sb_host hostapi__table = {
    .abi = {SB_MAGIC_HOST, SB_ABI_MAJOR, SB_ABI_MINOR, (uint32_t)sizeof(sb_host), 0},
    .log = hostapi__log,
    .now_ms = sb_wall_ms,
    .channel_name = hostapi__channel_name,
    .config_get = schema_config_get,
    .config_count = schema_config_count,
    .config_get_at = schema_config_get_at,
    .config_int = schema_config_int,
    .set_state = hostapi__set_state,
    .emit_inbound = hostapi__emit_inbound,
    .emit_status = hostapi__emit_status,
    .respond = hostapi__respond,
    .http_header = hostapi__http_header,
    .http_query = hostapi__http_query,
    .send_ok = hostapi__send_ok,
    .send_retry = hostapi__send_retry,
    .send_fail = hostapi__send_fail,
    .timer_start = hostapi__timer_start,
    .timer_stop = hostapi__timer_stop,
    .watch_fd = hostapi__watch_fd,
    .watch_stop = hostapi__watch_stop,
    .http_request = hostapi__http_request,
    .http_cancel = hostapi__http_cancel,
    .queue_work = hostapi__queue_work,
    .kv_get = hostapi__kv_get,
    .kv_set = hostapi__kv_set,
    .kv_delete = hostapi__kv_delete,
    .hmac_sha256 = hmac_sha256,
    .equal_ct = hostapi__equal_ct,
    .mail_request = hostapi__mail_request,
    .mail_cancel = hostapi__mail_cancel,
    .send_defer = hostapi__send_defer,
    .ws_send = hostapi__ws_send,
    .ws_close = hostapi__ws_close,
    .ws_remote_addr = hostapi__ws_remote_addr,
    .history = hostapi_history,
    .availability = hostapi_availability,
    .send_release = hostapi_send_release,
    .attachment_link = hostapi__attachment_link,
};

const sb_host *hostapi_table(void) {
  static int ready;
  if (!ready) {
    /* libsodium's init is idempotent and thread-safe. */
    if (sodium_init() < 0) log_error("libsodium could not initialise");
    ready = 1;
  }
  return &hostapi__table;
}
