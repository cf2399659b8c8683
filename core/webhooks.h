/* webhooks.h — outgoing webhooks: the store's events, posted to operators'
 * URLs in order, signed, at least once.
 *
 * A webhook names a URL, the event types it wants ("*", "ticket.*",
 * "message.in", ...), optionally one channel or inbox, and keeps a cursor:
 * the id of the last event it has delivered, stored with it. Whenever the
 * store makes new events durable (events_watch), each webhook reads the
 * events after its cursor (at most a batch), keeps those it wants and posts
 * them as one JSON body, {"webhook": id, "events": [{id, type, channel,
 * inbox, data}, ...]}, oldest first; a 2xx answer moves the cursor past
 * them (stored), anything else is retried after a backoff (the outbox's,
 * honouring Retry-After) until it succeeds, so nothing is skipped and a
 * receiver deduplicates by event id. Events it does not want move its
 * cursor in memory only: read again after a restart, they are left out
 * again. Each body is signed: X-Switchboard-Signature: t=UNIX,v1=HEX, HEX
 * being HMAC-SHA256 under the webhook's secret of "UNIX.BODY".
 *
 * The secret is made here, shown once by the API and stored sealed under
 * the config's secret_key (api_seal), like channel credentials. Loop thread
 * only.
 */
#ifndef SB_CORE_WEBHOOKS_H
#define SB_CORE_WEBHOOKS_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "httpc.h"
#include "store.h"

typedef struct webhooks webhooks;

typedef struct webhooks_config {
  /* The config's secret_key in force (64 hex digits; it may change on a
   * reload), or NULL when there is none. */
  const char *(*secret_key)(void *ctx);
  void *ctx;
  int64_t retry_base_ms;   /* first retry's delay (default 1 s) */
  int64_t retry_max_ms;    /* the cap (default 1 h) */
  uint32_t timeout_ms;     /* one POST (default 10 s) */
  int batch;               /* events per POST at most (default 100) */
} webhooks_config;

/* Starts the dispatcher: loads the stored webhooks and delivers what each
 * has not yet delivered. Returns 0 or -ENOMEM. */
int webhooks_new(uv_loop_t *loop, store *st, httpc *hc, const webhooks_config *cfg, webhooks **out);

/* Stops delivering: POSTs under way are cancelled (their events are sent
 * again after a restart), retries forgotten. Call before httpc_close. Frees
 * the dispatcher once the store's callbacks it waits for have fired (call
 * before store_close, which fires them). NULL-safe. */
void webhooks_free(webhooks *w);

/* A fresh secret: "whsec_" + 64 hex digits (out holds 71 bytes). -EIO when
 * libsodium cannot start. */
#define WEBHOOKS_SECRET_LEN 70
int webhooks_secret_generate(char out[WEBHOOKS_SECRET_LEN + 1]);

/* The webhook as stored (a row of store_webhooks_list) was created or
 * changed: delivery follows the row from now on. */
void webhooks_updated(webhooks *w, const json_t *row);

/* Webhook id was deleted: its POST under way is cancelled. */
void webhooks_removed(webhooks *w, int64_t id);

/* What only the running dispatcher knows of webhook id, merged into row (a
 * stored webhook the API answers with): its cursor in memory (ahead of the
 * stored one while it skips events it does not want), next_attempt_at (ms,
 * or null) and, when its secret cannot be unsealed, an error saying so. */
void webhooks_describe(const webhooks *w, json_t *row);

/* Counters for /metrics. */
typedef struct webhooks_stats {
  uint64_t delivered, failed; /* posts answered 2xx / not */
  uint64_t events;            /* events in delivered posts */
  unsigned failing;           /* webhooks whose last post failed */
} webhooks_stats;
void webhooks_get_stats(const webhooks *w, webhooks_stats *out);

/* Posts a test event to webhook id, signed as its deliveries are:
 * {"webhook": id, "events": [{"id": 0, "type": "ping", "channel": null,
 * "inbox": null, "data": {"webhook_id": id}}]}. Its cursor and counts stay
 * as they are. cb(arg, response) gets the answer, once (with -ECANCELED
 * when the daemon stops first). Returns 0, -ENOENT (no such webhook),
 * -EKEYREJECTED (its secret cannot be unsealed) or another negative errno
 * (cb is then never called). */
int webhooks_ping(webhooks *w, int64_t id, httpc_done_fn cb, void *arg);

/* The newest event id, for a new webhook's cursor ("from now on"). */
int64_t webhooks_newest(const webhooks *w);

#endif
