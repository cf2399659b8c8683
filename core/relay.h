/* relay.h — carries messages between channel plugins and the core: what a
 * plugin emits (inbound messages, delivery statuses, key/value changes) into
 * the router and store, and what the outbox sends into the plugin's send().
 *
 * The relay is the channel_env of every channel and the outbox's sender. It
 * finds running channels through a lookup the daemon supplies. Loop thread
 * only.
 */
#ifndef SB_CORE_RELAY_H
#define SB_CORE_RELAY_H

#include "channel.h"
#include "metrics.h"
#include "outbox.h"
#include "store.h"

typedef struct relay relay;

/* Finds the running channel called name, or NULL. */
typedef sb_channel *(*relay_lookup_fn)(void *ctx, const char *name);

/* Makes the relay; env_out is the channel_env to create channels with (its
 * destroyed hook must be chained: call relay_channel_destroyed from yours).
 * Returns 0 or -ENOMEM. */
int relay_new(uv_loop_t *loop, store *st, struct httpc *httpc, relay_lookup_fn lookup, void *ctx, relay **out);

/* The environment channels are created with. */
const channel_env *relay_env(relay *r);

/* Lets destroyed channels be announced to the daemon too (may be NULL). */
void relay_on_destroyed(relay *r, void (*fn)(void *ctx, sb_channel *ch), void *ctx);

/* Starts the outbox worker that hands queued replies to channels. Returns 0
 * or a negative code. */
int relay_start_outbox(relay *r, const outbox_config *cfg);

/* The channel called name runs (again): the replies held while it did not
 * go now, not at their next offer (up to a minute later). */
void relay_channel_running(relay *r, const char *name);

/* Stops the outbox (replies still open are completed as retries first). */
void relay_stop_outbox(relay *r);

/* Frees the relay once every channel is closed and the outbox stopped. */
void relay_free(relay *r);

/* Counters for metrics. */
typedef struct relay_stats {
  uint64_t inbound;         /* messages handed to the router */
  uint64_t inbound_failed;  /* not stored (router or store error) */
  uint64_t duplicates;      /* redeliveries answered with the original id */
  uint64_t statuses;        /* delivery statuses recorded */
  uint64_t sends;           /* send() calls */
  uint64_t sends_ok, sends_retry, sends_failed;
  uint64_t sends_held;      /* not sent: channel not running or in a fatal state */
  metrics_histogram commit_latency; /* emit_inbound to durable commit */
  metrics_histogram send_latency;   /* send() to its completion */
} relay_stats;
void relay_get_stats(const relay *r, relay_stats *out);

#endif
