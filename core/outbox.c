/* outbox.c — the outbox worker: claims due rows, calls the sender, records
 * OK / RETRY (backoff with jitter, dead letter) / FAIL. Loop thread only. */
#include "outbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

struct outbox {
  uv_loop_t *loop;
  store *st;
  outbox_config cfg;
  outbox_send_fn send;
  void *ctx;
  uv_timer_t timer;
  int sub_token, requeue_token;
  int claiming, again, stopping, timer_closed;
  unsigned inflight; /* claims and items not yet stored */
  uint32_t rng;
  outbox_stats stats;
};

struct outbox_done {
  outbox *ob;
  json_t *row;
  outbox_item item;
  int completed;
};

static const char *ob__s(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

int64_t outbox_backoff_ms(const outbox_config *cfg, int attempt, int64_t retry_after_ms,
                          uint32_t rnd) {
  int64_t d = cfg->base_delay_ms;
  for (int i = 1; i < attempt && d < cfg->max_delay_ms; i++) d *= 2;
  if (d > cfg->max_delay_ms) d = cfg->max_delay_ms;
  int64_t half = d / 2;
  d = half + (half > 0 ? (int64_t)(rnd % (uint64_t)(half + 1)) : 0);
  return d < retry_after_ms ? retry_after_ms : d;
}

static uint32_t ob__rand(outbox *ob) {
  /* xorshift: jitter only needs to spread retries, not be unpredictable. */
  uint32_t x = ob->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return ob->rng = x;
}

static void ob__maybe_free(outbox *ob) {
  if (ob->stopping && ob->timer_closed && ob->inflight == 0) free(ob);
}

static void ob__claim(outbox *ob);

static void ob__stored(void *arg, int status, json_t *result, const char *err) {
  outbox *ob = arg;
  if (status < 0) log_warn("outbox: cannot record a send result: %s", err ? err : "?");
  ob->inflight--;
  ob__maybe_free(ob);
}

static void ob__finish(outbox_done *d, int rc) {
  outbox *ob = d->ob;
  if (rc < 0) {
    /* The store is closing: the row stays 'sending' and is retried with the
     * same idempotency key after the next start. */
    ob->inflight--;
  }
  json_decref(d->row);
  free(d);
  ob__maybe_free(ob);
}

void outbox_done_ok(outbox_done *d, const char *external_id) {
  if (d == NULL || d->completed++) return;
  d->ob->stats.sent++;
  ob__finish(d, store_outbox_sent(d->ob->st, d->item.outbox_id, external_id, ob__stored, d->ob));
}

void outbox_done_fail(outbox_done *d, const char *reason) {
  if (d == NULL || d->completed++) return;
  d->ob->stats.failed++;
  log_warn("outbox: message %lld on channel %s failed: %s", (long long)d->item.message_id,
           d->item.channel, reason ? reason : "?");
  ob__finish(d, store_outbox_fail(d->ob->st, d->item.outbox_id, reason ? reason : "send failed",
                                  0, ob__stored, d->ob));
}

int outbox_done_retry(outbox_done *d, int64_t retry_after_ms, const char *reason) {
  if (d == NULL || d->completed++) return 0;
  outbox *ob = d->ob;
  if (d->item.attempt >= ob->cfg.max_attempts) {
    char why[256];
    snprintf(why, sizeof(why), "gave up after %d attempts: %s", d->item.attempt,
             reason ? reason : "temporary failure");
    ob->stats.dead++;
    log_warn("outbox: message %lld on channel %s dead-lettered: %s", (long long)d->item.message_id,
             d->item.channel, why);
    ob__finish(d, store_outbox_fail(ob->st, d->item.outbox_id, why, 1, ob__stored, ob));
    return 1;
  }
  ob->stats.retried++;
  int64_t delay = outbox_backoff_ms(&ob->cfg, d->item.attempt, retry_after_ms, ob__rand(ob));
  /* Wall time, not uv_now: next_at is compared with the clock after a restart. */
  int64_t next = sb_wall_ms() + delay;
  ob__finish(d, store_outbox_retry(ob->st, d->item.outbox_id, next, reason, ob__stored, ob));
  return 0;
}

void outbox_done_defer(outbox_done *d, int64_t defer_ms, const char *reason) {
  if (d == NULL || d->completed++) return;
  d->ob->stats.deferred++;
  int64_t next = sb_wall_ms() + (defer_ms > 0 ? defer_ms : 1000);
  ob__finish(d, store_outbox_defer(d->ob->st, d->item.outbox_id, next, reason, ob__stored, d->ob));
}

static void ob__claimed(void *arg, int status, json_t *rows, const char *err) {
  outbox *ob = arg;
  ob->claiming = 0;
  ob->inflight--;
  if (status < 0) log_warn("outbox: cannot claim rows: %s", err ? err : "?");
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    if (ob->stopping) {
      /* Stopped while claiming: hand the row back instead of sending it. */
      int64_t id = json_integer_value(json_object_get(row, "outbox_id"));
      if (store_outbox_retry(ob->st, id, sb_wall_ms(),
                             "outbox stopped before sending", ob__stored, ob) == 0)
        ob->inflight++;
      continue;
    }
    outbox_done *d = calloc(1, sizeof(*d));
    if (d == NULL) break; /* left 'sending': retried with the same key after restart */
    d->ob = ob;
    d->row = json_incref(row);
    outbox_item *it = &d->item;
    it->outbox_id = json_integer_value(json_object_get(row, "outbox_id"));
    it->message_id = json_integer_value(json_object_get(row, "message_id"));
    it->thread_id = json_integer_value(json_object_get(row, "thread_id"));
    it->channel = ob__s(row, "channel");
    it->idempotency_key = ob__s(row, "idempotency_key");
    it->attempt = (int)json_integer_value(json_object_get(row, "attempt"));
    it->recipient_kind = ob__s(row, "recipient_kind");
    it->recipient_id = ob__s(row, "recipient_id");
    it->external_thread_id = ob__s(row, "external_thread_id");
    it->reply_to_external_id = ob__s(row, "reply_to_external_id");
    it->text = ob__s(row, "text");
    it->html = ob__s(row, "html");
    it->attachments_json = ob__s(row, "attachments");
    it->automatic = json_is_true(json_object_get(row, "automatic"));
    it->last_inbound_ms = json_integer_value(json_object_get(row, "last_inbound_ms"));
    it->agent_name = ob__s(row, "agent_name");
    it->agent_email = ob__s(row, "agent_email");
    it->subject = ob__s(row, "subject");
    it->recipient_name = ob__s(row, "recipient_name");
    it->template_json = ob__s(row, "template_json");
    it->agent_avatar_url = ob__s(row, "agent_avatar_url");
    ob->inflight++;
    ob->send(ob->ctx, it, d);
  }
  if (!ob->stopping && (ob->again || json_array_size(rows) == (size_t)ob->cfg.batch)) {
    ob->again = 0;
    ob__claim(ob);
  }
  ob__maybe_free(ob);
}

static void ob__claim(outbox *ob) {
  if (ob->stopping) return;
  if (ob->claiming) {
    ob->again = 1;
    return;
  }
  int64_t now = sb_wall_ms();
  if (store_outbox_claim(ob->st, now, ob->cfg.batch, ob__claimed, ob) == 0) {
    ob->claiming = 1;
    ob->inflight++;
  }
}

static void ob__on_timer(uv_timer_t *t) { ob__claim(t->data); }

/* A new reply (message.out) or a failed one queued again (message.status
 * queued without an error; with one it is a retry the outbox scheduled). */
static void ob__on_event(void *arg, const events_event *ev) {
  const char *status = ob__s(ev->data, "status");
  if (status != NULL && strcmp(status, "queued") == 0 && ob__s(ev->data, "error") == NULL) outbox_kick(arg);
}

int outbox_start(uv_loop_t *loop, store *st, const outbox_config *cfg, outbox_send_fn send,
                 void *ctx, outbox **out) {
  if (loop == NULL || st == NULL || send == NULL || out == NULL) return -EINVAL;
  outbox *ob = calloc(1, sizeof(*ob));
  if (ob == NULL) return -ENOMEM;
  if (cfg != NULL) ob->cfg = *cfg;
  if (ob->cfg.base_delay_ms <= 0) ob->cfg.base_delay_ms = 1000;
  if (ob->cfg.max_delay_ms <= 0) ob->cfg.max_delay_ms = 3600 * 1000;
  if (ob->cfg.max_attempts <= 0) ob->cfg.max_attempts = 24;
  if (ob->cfg.poll_ms <= 0) ob->cfg.poll_ms = 1000;
  if (ob->cfg.batch <= 0) ob->cfg.batch = 32;
  ob->loop = loop;
  ob->st = st;
  ob->send = send;
  ob->ctx = ctx;
  ob->rng = (uint32_t)uv_hrtime() | 1u;
  /* Only message.out: the bus then skips building every other event for us. */
  int tok = events_subscribe_type(store_events(st), "message.out", ob__on_event, ob);
  if (tok < 0) {
    free(ob);
    return tok;
  }
  ob->sub_token = tok;
  /* and message.status: a failed reply queued again goes out at once */
  tok = events_subscribe_type(store_events(st), "message.status", ob__on_event, ob);
  if (tok < 0) {
    events_unsubscribe(store_events(st), ob->sub_token);
    free(ob);
    return tok;
  }
  ob->requeue_token = tok;
  uv_timer_init(loop, &ob->timer);
  ob->timer.data = ob;
  uv_timer_start(&ob->timer, ob__on_timer, 0, (uint64_t)ob->cfg.poll_ms);
  *out = ob;
  return 0;
}

void outbox_kick(outbox *ob) {
  if (ob != NULL) ob__claim(ob);
}

static void ob__on_timer_closed(uv_handle_t *h) {
  outbox *ob = h->data;
  ob->timer_closed = 1;
  ob__maybe_free(ob);
}

void outbox_stop(outbox *ob) {
  if (ob == NULL || ob->stopping) return;
  ob->stopping = 1;
  events_unsubscribe(store_events(ob->st), ob->sub_token);
  events_unsubscribe(store_events(ob->st), ob->requeue_token);
  uv_timer_stop(&ob->timer);
  uv_close((uv_handle_t *)&ob->timer, ob__on_timer_closed);
}

void outbox_get_stats(const outbox *ob, outbox_stats *out) { *out = ob->stats; }
