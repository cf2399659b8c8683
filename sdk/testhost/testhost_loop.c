/* testhost_loop.c — the stub test host's fake loop: the clock, timers,
 * deferred callbacks, the scripted HTTP client, fd watches, queued work and
 * the in-memory key/value store. */
#include "testhost_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TESTHOST_KV_KEY_MAX 200
#define TESTHOST_KV_VALUE_MAX (64 * 1024)

static int64_t testhost__clock = TESTHOST_EPOCH_MS;

int64_t testhost__now_ms(void) { return testhost__clock; }
int64_t testhost_now(void) { return testhost__clock; }
void testhost_set_time(int64_t unix_ms) { testhost__clock = unix_ms; }

int testhost__defer(testhost *th, void (*fn)(testhost *th, void *a, void *b, int status), void *a, void *b,
                    int status) {
  testhost__deferred *d = malloc(sizeof(*d));
  if (d == NULL) return SB_ENOMEM;
  *d = (testhost__deferred){fn, a, b, status};
  if (testhost__vec_push(&th->deferred, d) != 0) {
    free(d);
    return SB_ENOMEM;
  }
  return SB_OK;
}

size_t testhost_run(testhost *th) {
  size_t ran = 0;
  if (th == NULL) return 0;
  /* Callbacks may defer more; take them in order until none is left. */
  while (th->deferred.count > 0) {
    testhost__deferred *d = th->deferred.items[0];
    memmove(th->deferred.items, th->deferred.items + 1, (th->deferred.count - 1) * sizeof(void *));
    th->deferred.count--;
    d->fn(th, d->a, d->b, d->status);
    free(d);
    ran++;
  }
  return ran;
}

/* --- timers ------------------------------------------------------------- */

static sb_timer *testhost__timer_new(testhost *th, uint64_t timeout_ms, uint64_t repeat_ms, sb_timer_fn fn,
                                     void *arg, int internal) {
  sb_timer *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  *t = (sb_timer){th, th->next_seq++, testhost__clock + (int64_t)timeout_ms, repeat_ms, fn, arg, 1, internal};
  if (testhost__vec_push(&th->timers, t) != 0) {
    free(t);
    return NULL;
  }
  return t;
}

sb_timer *testhost__timer_start(sb_channel *ch, uint64_t timeout_ms, uint64_t repeat_ms, sb_timer_fn fn,
                                void *arg) {
  if (ch == NULL || fn == NULL) return NULL;
  testhost *th = ch->th;
  if (th->disconnected) {
    testhost__misuse(th, "timer_start called after disconnect");
    return NULL;
  }
  return testhost__timer_new(th, timeout_ms, repeat_ms, fn, arg, 0);
}

void testhost__timer_stop(sb_timer *t) {
  if (t == NULL) return;
  if (!t->active) {
    testhost__misuse(t->th, "timer_stop on a timer that already stopped (or a one-shot timer that fired)");
    return;
  }
  t->active = 0;
}

size_t testhost_timer_count(const testhost *th) {
  size_t n = 0;
  for (size_t i = 0; th != NULL && i < th->timers.count; i++) {
    const sb_timer *t = th->timers.items[i];
    if (t->active && !t->internal) n++;
  }
  return n;
}

/* The active timer due first (by due time, then start order) at or before limit. */
static sb_timer *testhost__next_due(testhost *th, int64_t limit) {
  sb_timer *best = NULL;
  for (size_t i = 0; i < th->timers.count; i++) {
    sb_timer *t = th->timers.items[i];
    if (!t->active || t->due_ms > limit) continue;
    if (best == NULL || t->due_ms < best->due_ms || (t->due_ms == best->due_ms && t->seq < best->seq)) best = t;
  }
  return best;
}

size_t testhost_advance(testhost *th, uint64_t ms) {
  if (th == NULL) return 0;
  size_t fired = testhost_run(th);
  int64_t target = testhost__clock + (int64_t)ms;
  sb_timer *t;
  while ((t = testhost__next_due(th, target)) != NULL) {
    if (t->due_ms > testhost__clock) testhost__clock = t->due_ms;
    if (t->repeat_ms > 0) {
      t->due_ms += (int64_t)t->repeat_ms;
      t->seq = th->next_seq++;
    } else {
      t->active = 0;
    }
    t->fn(t->arg);
    fired++;
    fired += testhost_run(th);
  }
  testhost__clock = target;
  return fired;
}

/* --- the fake HTTP client ---------------------------------------------- */

static void testhost__script_copy_free(testhost_http_script *s) {
  testhost__headers_free((sb_http_header *)s->headers, s->header_count);
  free((char *)s->body);
  free((char *)s->error);
}

static int testhost__script_copy(testhost_http_script *dst, const testhost_http_script *src) {
  *dst = *src;
  dst->headers = NULL;
  dst->body = NULL;
  dst->error = NULL;
  if (src->body_len == 0 && src->body != NULL) dst->body_len = strlen(src->body);
  char *body = malloc(dst->body_len + 1);
  if (body == NULL) return SB_ENOMEM;
  if (dst->body_len > 0) memcpy(body, src->body, dst->body_len);
  body[dst->body_len] = '\0';
  dst->body = body;
  if (src->header_count > 0 && (dst->headers = testhost__headers_dup(src->headers, src->header_count)) == NULL) {
    testhost__script_copy_free(dst);
    return SB_ENOMEM;
  }
  if (src->error != NULL && (dst->error = strdup(src->error)) == NULL) {
    testhost__script_copy_free(dst);
    return SB_ENOMEM;
  }
  return SB_OK;
}

static void testhost__script_free(void *p) {
  testhost__script *s = p;
  if (s == NULL) return;
  free(s->prefix);
  testhost__script_copy_free(&s->s);
  free(s);
}

static testhost__script *testhost__script_new(const char *prefix, const testhost_http_script *script) {
  testhost__script *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  if ((s->prefix = strdup(prefix != NULL ? prefix : "")) == NULL || testhost__script_copy(&s->s, script) != 0) {
    free(s->prefix);
    free(s);
    return NULL;
  }
  return s;
}

int testhost_http_script_add(testhost *th, const char *url_prefix, const testhost_http_script *script) {
  if (th == NULL || script == NULL) return SB_EINVAL;
  testhost__script *s = testhost__script_new(url_prefix, script);
  if (s == NULL) return SB_ENOMEM;
  if (testhost__vec_push(&th->scripts, s) != 0) {
    testhost__script_free(s);
    return SB_ENOMEM;
  }
  return SB_OK;
}

int testhost_http_reply(testhost *th, const char *url_prefix, int http_status, const char *body) {
  testhost_http_script s = {.status = SB_OK, .http_status = http_status, .body = body};
  return testhost_http_script_add(th, url_prefix, &s);
}

int testhost_http_error(testhost *th, const char *url_prefix, int status, const char *error) {
  testhost_http_script s = {.status = status == SB_OK ? SB_EIO : status, .error = error};
  return testhost_http_script_add(th, url_prefix, &s);
}

int testhost_http_fallback(testhost *th, const testhost_http_script *script) {
  if (th == NULL) return SB_EINVAL;
  testhost__script_free(th->fallback);
  th->fallback = NULL;
  if (script != NULL && (th->fallback = testhost__script_new("", script)) == NULL) return SB_ENOMEM;
  return SB_OK;
}

/* Completes a call: runs the plugin's done with the scripted answer or the
 * given failure. */
static void testhost__http_finish(sb_http_call *c, int32_t status, const char *error) {
  if (!c->pending) return;
  c->pending = 0;
  testhost_http_record *rec = c->record;
  sb_http_client_response res = {.status = status, .error = error, .body = "", .body_len = 0};
  if (status == SB_OK && c->has_script) {
    res.status = c->script.status;
    res.http_status = c->script.status == SB_OK ? c->script.http_status : 0;
    res.error = c->script.status == SB_OK ? NULL
                : c->script.error != NULL ? c->script.error
                                          : "testhost: scripted failure";
    if (c->script.status == SB_OK) {
      res.headers = c->script.headers;
      res.header_count = c->script.header_count;
      res.body = c->script.body;
      res.body_len = c->script.body_len;
    }
    res.elapsed_ms = c->script.delay_ms;
  }
  rec->done = 1;
  rec->status = res.status;
  rec->http_status = res.http_status;
  rec->cancelled = status == SB_ECANCELED;
  c->done(c->arg, &res);
}

static void testhost__http_deferred(testhost *th, void *a, void *b, int status) {
  sb_http_call *c = a;
  if (c->pending) testhost__http_finish(c, (int32_t)status, b);
}

static void testhost__http_timer(void *arg) {
  sb_http_call *c = arg;
  c->timer = NULL;
  testhost__http_finish(c, SB_OK, NULL);
}

static void testhost__record_free(testhost_http_record *r) {
  if (r == NULL) return;
  free(r->method);
  free(r->url);
  testhost__headers_free(r->headers, r->header_count);
  free(r->body);
  free(r);
}

sb_http_call *testhost__http_request(sb_channel *ch, const sb_http_client_request *req, sb_http_done_fn done,
                                     void *arg) {
  if (ch == NULL) return NULL;
  testhost *th = ch->th;
  if (req == NULL || done == NULL || req->struct_size < offsetof(sb_http_client_request, max_response_bytes) ||
      req->url == NULL || (req->header_count > 0 && req->headers == NULL) ||
      (req->body_len > 0 && req->body == NULL)) {
    testhost__misuse(th, "http_request with invalid input (NULL request, url or done, or struct_size too small)");
    return NULL;
  }
  if (th->disconnected) {
    testhost__misuse(th, "http_request called after disconnect");
    return NULL;
  }
  testhost_http_record *rec = calloc(1, sizeof(*rec));
  sb_http_call *c = calloc(1, sizeof(*c));
  if (rec == NULL || c == NULL) goto fail;
  rec->method = strdup(req->method != NULL ? req->method : "GET");
  rec->url = strdup(req->url);
  rec->body = malloc(req->body_len + 1);
  if (rec->method == NULL || rec->url == NULL || rec->body == NULL) goto fail;
  if (req->body_len > 0) memcpy(rec->body, req->body, req->body_len);
  rec->body[req->body_len] = '\0';
  rec->body_len = req->body_len;
  if (req->header_count > 0 && (rec->headers = testhost__headers_dup(req->headers, req->header_count)) == NULL) {
    goto fail;
  }
  rec->header_count = req->header_count;
  rec->timeout_ms = req->timeout_ms;
  rec->max_response_bytes = req->max_response_bytes;
  if (testhost__vec_push(&th->http, rec) != 0) goto fail;
  if (testhost__vec_push(&th->calls, c) != 0) {
    th->http.count--;
    goto fail;
  }
  *c = (sb_http_call){.th = th, .record = rec, .done = done, .arg = arg, .pending = 1};
  testhost__script *match = NULL;
  for (size_t i = 0; i < th->scripts.count; i++) {
    testhost__script *s = th->scripts.items[i];
    if (strncmp(rec->url, s->prefix, strlen(s->prefix)) == 0) {
      match = s;
      memmove(th->scripts.items + i, th->scripts.items + i + 1, (th->scripts.count - i - 1) * sizeof(void *));
      th->scripts.count--;
      break;
    }
  }
  const testhost__script *use = match != NULL ? match : th->fallback;
  if (use != NULL && testhost__script_copy(&c->script, &use->s) == SB_OK) c->has_script = 1;
  testhost__script_free(match);
  if (!c->has_script) {
    rec->unmatched = 1;
    th->unmatched++;
    testhost__misuse(th, "no scripted response for %s %s (script one with testhost_http_reply)", rec->method,
                     rec->url);
    static const char why[] = "testhost: no scripted response for this request";
    testhost__defer(th, testhost__http_deferred, c, (void *)why, SB_EIO);
  } else if (c->script.delay_ms > 0) {
    c->timer = testhost__timer_new(th, c->script.delay_ms, 0, testhost__http_timer, c, 1);
  } else {
    testhost__defer(th, testhost__http_deferred, c, NULL, SB_OK);
  }
  return c;
fail:
  testhost__record_free(rec);
  free(c);
  return NULL;
}

void testhost__http_cancel(sb_http_call *c) {
  if (c == NULL) return;
  if (!c->pending) {
    testhost__misuse(c->th, "http_cancel on a call whose done already ran");
    return;
  }
  if (c->timer != NULL) c->timer->active = 0;
  c->timer = NULL;
  /* Like the daemon: done runs inside http_cancel, so the call is gone after. */
  testhost__http_finish(c, SB_ECANCELED, "cancelled");
}

/* --- mail transfers (ABI 1.1): HTTP records with a mail face ------------- */

static void testhost__mail_done(void *arg, const sb_http_client_response *r) {
  sb_mail_call *m = arg;
  m->pending = 0;
  sb_mail_response res = {.status = r->status, .code = r->http_status, .error = r->error,
                          .body = r->body != NULL ? r->body : "", .body_len = r->body_len,
                          .elapsed_ms = r->elapsed_ms};
  m->done(m->arg, &res);
}

sb_mail_call *testhost__mail_request(sb_channel *ch, const sb_mail_request *req, sb_mail_done_fn done, void *arg) {
  if (ch == NULL) return NULL;
  testhost *th = ch->th;
  if (req == NULL || done == NULL || req->struct_size < offsetof(sb_mail_request, max_response_bytes) ||
      req->url == NULL || (req->rcpt_count > 0 && req->rcpt == NULL) || (req->body_len > 0 && req->body == NULL) ||
      req->tls > SB_MAIL_TLS_NONE) {
    testhost__misuse(th, "mail_request with invalid input (NULL request, url or done, bad tls, or struct_size too small)");
    return NULL;
  }
  /* The envelope travels as headers of the record; the password never. */
  size_t nh = req->rcpt_count + 2;
  sb_http_header *h = calloc(nh, sizeof(*h));
  sb_mail_call *m = calloc(1, sizeof(*m));
  if (h == NULL || m == NULL || testhost__vec_push(&th->mail_calls, m) != 0) {
    free(h);
    free(m);
    return NULL;
  }
  size_t n = 0;
  if (req->username != NULL) h[n++] = (sb_http_header){"X-Mail-Username", req->username};
  if (req->mail_from != NULL) h[n++] = (sb_http_header){"X-Mail-From", req->mail_from};
  for (size_t i = 0; i < req->rcpt_count; i++) h[n++] = (sb_http_header){"X-Mail-Rcpt", req->rcpt[i]};
  sb_http_client_request hr = {.struct_size = sizeof(hr), .timeout_ms = req->timeout_ms, .url = req->url,
                               .headers = h, .header_count = n, .body = req->body, .body_len = req->body_len,
                               .max_response_bytes = req->max_response_bytes};
  hr.method = req->command != NULL ? req->command : req->rcpt_count > 0 ? "SMTP" : "FETCH";
  *m = (sb_mail_call){.th = th, .done = done, .arg = arg, .pending = 1};
  m->http = testhost__http_request(ch, &hr, testhost__mail_done, m);
  free(h);
  if (m->http == NULL) {
    th->mail_calls.count--;
    free(m);
    return NULL;
  }
  return m;
}

void testhost__mail_cancel(sb_mail_call *m) {
  if (m == NULL) return;
  if (!m->pending) {
    testhost__misuse(m->th, "mail_cancel on a call whose done already ran");
    return;
  }
  testhost__http_cancel(m->http);
}

size_t testhost_http_count(const testhost *th) { return th != NULL ? th->http.count : 0; }

const testhost_http_record *testhost_http_at(const testhost *th, size_t index) {
  return th != NULL && index < th->http.count ? th->http.items[index] : NULL;
}

const char *testhost_http_header(const testhost_http_record *call, const char *name) {
  for (size_t i = 0; call != NULL && name != NULL && i < call->header_count; i++) {
    if (strcasecmp(call->headers[i].name, name) == 0) return call->headers[i].value;
  }
  return NULL;
}

size_t testhost_http_unmatched(const testhost *th) { return th != NULL ? th->unmatched : 0; }

size_t testhost_http_pending(const testhost *th) {
  size_t n = 0;
  for (size_t i = 0; th != NULL && i < th->calls.count; i++) n += ((sb_http_call *)th->calls.items[i])->pending;
  return n;
}

/* --- watches ----------------------------------------------------------- */

sb_watch *testhost__watch_fd(sb_channel *ch, int fd, uint32_t events, sb_watch_fn fn, void *arg) {
  if (ch == NULL) return NULL;
  if (fd < 0 || fn == NULL || events == 0 || (events & ~(SB_WATCH_READABLE | SB_WATCH_WRITABLE)) != 0) {
    testhost__misuse(ch->th, "watch_fd with a bad fd, events or callback");
    return NULL;
  }
  sb_watch *w = calloc(1, sizeof(*w));
  if (w == NULL) return NULL;
  *w = (sb_watch){ch->th, fd, events, fn, arg, 1};
  if (testhost__vec_push(&ch->th->watches, w) != 0) {
    free(w);
    return NULL;
  }
  return w;
}

void testhost__watch_stop(sb_watch *w) {
  if (w == NULL) return;
  if (!w->active) testhost__misuse(w->th, "watch_stop on a watch that already stopped");
  w->active = 0;
}

size_t testhost_watch_count(const testhost *th) {
  size_t n = 0;
  for (size_t i = 0; th != NULL && i < th->watches.count; i++) n += ((sb_watch *)th->watches.items[i])->active;
  return n;
}

size_t testhost_watch_fire(testhost *th, int fd, uint32_t events, int status) {
  size_t fired = 0;
  if (th == NULL) return 0;
  /* The callback may start or stop watches: index, never a cached pointer. */
  for (size_t i = 0; i < th->watches.count; i++) {
    sb_watch *w = th->watches.items[i];
    if (!w->active || w->fd != fd) continue;
    w->fn(w->arg, fd, events & w->events, status);
    fired++;
  }
  testhost_run(th);
  return fired;
}

/* --- queued work ------------------------------------------------------- */

typedef struct testhost__work {
  sb_work_fn work;
  sb_work_done_fn done;
  void *arg;
} testhost__work;

static void testhost__work_run(testhost *th, void *a, void *b, int status) {
  testhost__work *w = a;
  size_t i;
  for (i = 0; i < th->pending_works.count && th->pending_works.items[i] != w; i++) continue;
  if (i == th->pending_works.count) return; /* already run by cancel_all */
  memmove(th->pending_works.items + i, th->pending_works.items + i + 1,
          (th->pending_works.count - i - 1) * sizeof(void *));
  th->pending_works.count--;
  w->work(w->arg);
  if (w->done != NULL) w->done(w->arg, status);
  free(w);
}

int testhost__queue_work(sb_channel *ch, sb_work_fn work, sb_work_done_fn done, void *arg) {
  if (ch == NULL || work == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  if (th->disconnected) return SB_ECANCELED;
  testhost__work *w = malloc(sizeof(*w));
  if (w == NULL) return SB_ENOMEM;
  *w = (testhost__work){work, done, arg};
  if (testhost__vec_push(&th->pending_works, w) != 0) {
    free(w);
    return SB_ENOMEM;
  }
  if (testhost__defer(th, testhost__work_run, w, NULL, SB_OK) != 0) {
    th->pending_works.count--;
    free(w);
    return SB_ENOMEM;
  }
  return SB_OK;
}

/* --- key/value --------------------------------------------------------- */

static testhost__kv *testhost__kv_find(const testhost *th, const char *key, size_t *index) {
  for (size_t i = 0; i < th->kv.count; i++) {
    testhost__kv *kv = th->kv.items[i];
    if (strcmp(kv->key, key) == 0) {
      if (index != NULL) *index = i;
      return kv;
    }
  }
  return NULL;
}

static void testhost__kv_free(void *p) {
  testhost__kv *kv = p;
  free(kv->key);
  free(kv->value);
  free(kv);
}

const char *testhost_kv_get(const testhost *th, const char *key, size_t *len) {
  const testhost__kv *kv = th != NULL && key != NULL ? testhost__kv_find(th, key, NULL) : NULL;
  if (len != NULL) *len = kv != NULL ? kv->len : 0;
  return kv != NULL ? kv->value : NULL;
}

const char *testhost__kv_get(sb_channel *ch, const char *key, size_t *len) {
  return ch != NULL ? testhost_kv_get(ch->th, key, len) : NULL;
}

int testhost_kv_seed(testhost *th, const char *key, const char *value, size_t len) {
  if (th == NULL || key == NULL || (value == NULL && len > 0)) return SB_EINVAL;
  char *v = malloc(len + 1);
  if (v == NULL) return SB_ENOMEM;
  if (len > 0) memcpy(v, value, len);
  v[len] = '\0';
  testhost__kv *kv = testhost__kv_find(th, key, NULL);
  if (kv != NULL) {
    free(kv->value);
  } else {
    if ((kv = calloc(1, sizeof(*kv))) == NULL || (kv->key = strdup(key)) == NULL ||
        testhost__vec_push(&th->kv, kv) != 0) {
      if (kv != NULL) free(kv->key);
      free(kv);
      free(v);
      return SB_ENOMEM;
    }
  }
  kv->value = v;
  kv->len = len;
  return SB_OK;
}

static void testhost__kv_done(testhost *th, void *a, void *b, int status) {
  sb_kv_done_fn done;
  memcpy(&done, &b, sizeof(done));
  done(a, status);
}

/* Records the operation and defers done (the change is "durable" next turn). */
static int testhost__kv_record(testhost *th, int deleted, const char *key, const char *value, size_t len,
                               sb_kv_done_fn done, void *arg) {
  testhost_kv_op *op = calloc(1, sizeof(*op));
  if (op == NULL) return SB_ENOMEM;
  op->deleted = deleted;
  op->key = strdup(key);
  op->len = len;
  if (!deleted && (op->value = malloc(len + 1)) != NULL) {
    if (len > 0) memcpy(op->value, value, len);
    op->value[len] = '\0';
  }
  if (op->key == NULL || (!deleted && op->value == NULL) || testhost__vec_push(&th->kv_ops, op) != 0) {
    free(op->key);
    free(op->value);
    free(op);
    return SB_ENOMEM;
  }
  if (done != NULL) {
    void *fn;
    memcpy(&fn, &done, sizeof(fn));
    return testhost__defer(th, testhost__kv_done, arg, fn, SB_OK);
  }
  return SB_OK;
}

static int testhost__kv_key_ok(testhost *th, const char *key, const char *what) {
  if (key == NULL || key[0] == '\0' || strlen(key) > TESTHOST_KV_KEY_MAX) {
    testhost__misuse(th, "%s with a missing, empty or over-long key (at most %d bytes)", what,
                     TESTHOST_KV_KEY_MAX);
    return 0;
  }
  return 1;
}

int testhost__kv_set(sb_channel *ch, const char *key, const char *value, size_t len, sb_kv_done_fn done,
                     void *arg) {
  if (ch == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  if (!testhost__kv_key_ok(th, key, "kv_set")) return SB_EINVAL;
  if (len > TESTHOST_KV_VALUE_MAX) return SB_EFBIG;
  if (value == NULL && len > 0) return SB_EINVAL;
  int rc = testhost_kv_seed(th, key, value, len);
  return rc != SB_OK ? rc : testhost__kv_record(th, 0, key, value, len, done, arg);
}

int testhost__kv_delete(sb_channel *ch, const char *key, sb_kv_done_fn done, void *arg) {
  if (ch == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  if (!testhost__kv_key_ok(th, key, "kv_delete")) return SB_EINVAL;
  size_t i;
  testhost__kv *kv = testhost__kv_find(th, key, &i);
  if (kv != NULL) {
    testhost__kv_free(kv);
    memmove(th->kv.items + i, th->kv.items + i + 1, (th->kv.count - i - 1) * sizeof(void *));
    th->kv.count--;
  }
  return testhost__kv_record(th, 1, key, NULL, 0, done, arg);
}

size_t testhost_kv_op_count(const testhost *th) { return th != NULL ? th->kv_ops.count : 0; }

const testhost_kv_op *testhost_kv_op_at(const testhost *th, size_t index) {
  return th != NULL && index < th->kv_ops.count ? th->kv_ops.items[index] : NULL;
}

/* --- teardown ---------------------------------------------------------- */

void testhost__loop_cancel_all(testhost *th) {
  for (size_t i = 0; i < th->calls.count; i++) {
    sb_http_call *c = th->calls.items[i];
    if (!c->pending) continue;
    if (c->timer != NULL) c->timer->active = 0;
    c->timer = NULL;
    testhost__http_finish(c, SB_ECANCELED, "cancelled: the channel is closing");
  }
  /* Queued work always completes before destroy, with SB_ECANCELED. */
  while (th->pending_works.count > 0) {
    testhost__work *w = th->pending_works.items[0];
    memmove(th->pending_works.items, th->pending_works.items + 1, (th->pending_works.count - 1) * sizeof(void *));
    th->pending_works.count--;
    w->work(w->arg);
    if (w->done != NULL) w->done(w->arg, SB_ECANCELED);
    free(w);
  }
  for (size_t i = 0; i < th->timers.count; i++) ((sb_timer *)th->timers.items[i])->active = 0;
  for (size_t i = 0; i < th->watches.count; i++) ((sb_watch *)th->watches.items[i])->active = 0;
}

static void testhost__call_free(void *p) {
  sb_http_call *c = p;
  if (c->has_script) testhost__script_copy_free(&c->script);
  free(c);
}

static void testhost__kv_op_free(void *p) {
  testhost_kv_op *op = p;
  free(op->key);
  free(op->value);
  free(op);
}

static void testhost__record_free_item(void *p) { testhost__record_free(p); }

void testhost__loop_free(testhost *th) {
  testhost__vec_free(&th->deferred, free);
  testhost__vec_free(&th->timers, free);
  testhost__vec_free(&th->watches, free);
  testhost__vec_free(&th->calls, testhost__call_free);
  testhost__vec_free(&th->mail_calls, free);
  testhost__vec_free(&th->scripts, testhost__script_free);
  testhost__script_free(th->fallback);
  th->fallback = NULL;
  testhost__vec_free(&th->kv, testhost__kv_free);
  testhost__vec_free(&th->pending_works, free);
  testhost__vec_free(&th->kv_ops, testhost__kv_op_free);
  testhost__vec_free(&th->http, testhost__record_free_item);
}

void testhost__loop_clear(testhost *th) {
  size_t o = 0;
  for (size_t i = 0; i < th->calls.count; i++) {
    sb_http_call *c = th->calls.items[i];
    if (c->pending) {
      th->calls.items[o++] = c;
    } else {
      testhost__call_free(c);
    }
  }
  th->calls.count = o;
  o = 0;
  for (size_t i = 0; i < th->http.count; i++) {
    testhost_http_record *r = th->http.items[i];
    if (r->done) {
      testhost__record_free(r);
    } else {
      th->http.items[o++] = r;
    }
  }
  th->http.count = o;
  th->unmatched = 0;
  o = 0;
  for (size_t i = 0; i < th->timers.count; i++) {
    sb_timer *t = th->timers.items[i];
    if (t->active) {
      th->timers.items[o++] = t;
    } else {
      free(t);
    }
  }
  th->timers.count = o;
  o = 0;
  for (size_t i = 0; i < th->watches.count; i++) {
    sb_watch *w = th->watches.items[i];
    if (w->active) {
      th->watches.items[o++] = w;
    } else {
      free(w);
    }
  }
  th->watches.count = o;
  testhost__vec_free(&th->kv_ops, testhost__kv_op_free);
}
