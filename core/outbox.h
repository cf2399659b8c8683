/* outbox.h — the outbox worker: sends committed replies through a sender
 * callback (the host binds it to the plugin's send hook), with retries,
 * exponential backoff with jitter, dead letters and resume after restart.
 *
 * Runs on the loop thread. Rows are claimed from the store (state pending ->
 * sending, attempt counted); the sender completes each item exactly once with
 * outbox_done_ok / _retry / _fail. A row in flight when the process died is
 * back to pending at the next store_open and is sent again with the SAME
 * idempotency key, so a plugin that passes the key on never double-sends.
 */
#ifndef SB_CORE_OUTBOX_H
#define SB_CORE_OUTBOX_H

#include <stdint.h>
#include <uv.h>

#include "store.h"

/* One message to send. Every pointer is borrowed and valid until the item's
 * outbox_done_* call returns. NULL means absent. */
typedef struct outbox_item {
  int64_t outbox_id, message_id, thread_id;
  const char *channel;              /* the channel to send through */
  const char *idempotency_key;      /* stable per message, across restarts */
  int attempt;                      /* 1 for the first try */
  const char *recipient_kind;       /* contact identity on that channel */
  const char *recipient_id;
  const char *external_thread_id;   /* the thread's external id, same channel only */
  const char *reply_to_external_id; /* external id of the answered message */
  const char *text, *html;
  const char *attachments_json;     /* JSON array [{url, mime_type, filename, size}] */
  int automatic;                    /* an auto-reply */
  int64_t last_inbound_ms;          /* the contact's last message on this channel
                                       (its own timestamp, unix ms), 0 if none */
  const char *agent_name, *agent_email; /* the replying user, NULL for automatic */
  const char *subject;              /* the reply's, else the conversation's latest */
  const char *recipient_name;       /* the contact's name, or NULL */
  const char *template_json;        /* a message template {"name", ...}, or NULL */
  const char *agent_avatar_url;     /* the replying user's avatar (an absolute
                                       http(s) URL), NULL for none or automatic;
                                       not yet in the plugin ABI */
} outbox_item;

typedef struct outbox_done outbox_done;

/* Called on the loop for each claimed item; must not block. Call exactly one
 * of the outbox_done_* functions, now or later, on the loop thread. */
typedef void (*outbox_send_fn)(void *ctx, const outbox_item *item, outbox_done *done);

/* Sent: stores the external id (may be NULL) and marks the message sent. */
void outbox_done_ok(outbox_done *done, const char *external_id);
/* Transient failure: retried after max(backoff, retry_after_ms) unless this
 * was the last allowed attempt, in which case the row is dead-lettered and
 * the message failed with the reason. Returns 1 when it was dead-lettered,
 * else 0. */
int outbox_done_retry(outbox_done *done, int64_t retry_after_ms, const char *reason);
/* Permanent failure: the message is failed with the reason (shown to agents). */
void outbox_done_fail(outbox_done *done, const char *reason);
/* Not now, and not a failure: try again after defer_ms, without counting the
 * attempt (a hold never dead-letters). */
void outbox_done_defer(outbox_done *done, int64_t defer_ms, const char *reason);

typedef struct outbox_config {
  int64_t base_delay_ms; /* first retry delay, default 1000 */
  int64_t max_delay_ms;  /* cap, default 1 hour */
  int max_attempts;      /* default 24 (about 12 h at the default delays), then dead letter */
  int64_t poll_ms;       /* how often due rows are looked for, default 1000 */
  int batch;             /* rows claimed at a time, default 32 */
} outbox_config;

typedef struct outbox outbox;

/* Starts the worker (cfg NULL = defaults; zero fields = defaults). It
 * subscribes to the store's events so a queued reply is sent at once.
 * Returns 0 or -ENOMEM / -EINVAL. */
int outbox_start(uv_loop_t *loop, store *st, const outbox_config *cfg, outbox_send_fn send,
                 void *ctx, outbox **out);

/* Looks for due rows now instead of at the next poll. */
void outbox_kick(outbox *ob);

/* Stops claiming; the worker frees itself once every item handed out has
 * been completed and its result stored. Call before store_close, and let
 * the sender complete (or abandon, by completing with retry) every item it
 * holds before store_close: a completion after store_close is a use after
 * free. An item never completed stays 'sending' until the next store_open,
 * which sends it again with the same idempotency key. NULL-safe. */
void outbox_stop(outbox *ob);

/* Delay before retry number attempt+1: base * 2^(attempt-1) capped at max,
 * with "equal jitter" (uniform in [d/2, d]) from rnd, and never less than
 * retry_after_ms. Pure; exposed for tests. */
int64_t outbox_backoff_ms(const outbox_config *cfg, int attempt, int64_t retry_after_ms,
                          uint32_t rnd);

/* Counters for tests and /metrics. */
typedef struct outbox_stats {
  uint64_t sent, retried, failed, dead, deferred;
} outbox_stats;
void outbox_get_stats(const outbox *ob, outbox_stats *out);

#endif
