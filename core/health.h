/* health.h — GET /healthz (is the daemon serving, is the store answering,
 * what state is each channel in) and GET /metrics (Prometheus text). */
#ifndef SB_CORE_HEALTH_H
#define SB_CORE_HEALTH_H

#include "channel.h"
#include "http.h"
#include "httpc.h"
#include "ingress.h"
#include "relay.h"
#include "store.h"

/* How long /healthz and /metrics wait for the store's answer before they
 * report it down (503 degraded, switchboard_up 0). Long enough for a busy
 * but healthy store (a group commit behind a slow fsync, a WAL checkpoint);
 * shorter than the timeouts of the usual scrapers and load balancers (5-10 s),
 * so they get an answer saying why instead of a timeout of their own. */
#define HEALTH_STORE_DEADLINE_MS 2000

/* Where the figures come from. The struct must outlive the server; its
 * pointers are read at each request (NULL parts are skipped). After the
 * server has closed (http_close's done) they are read no more, even when a
 * store answer comes later. */
typedef struct health_sources {
  uv_loop_t *loop; /* the server's loop; it runs the store probe's deadline.
                      NULL = no deadline: a stalled store then stalls both routes */
  store *st;
  relay *relay;
  http_server *http;
  httpc *httpc;
  struct webhooks *webhooks; /* outgoing; may be NULL */
  void *ctx;
  sb_channel *const *(*channels)(void *ctx, size_t *count); /* the running channels */
  /* Optional: {name: {plugin, reason}} of channels that are on but could
   * not be created (their plugin refused them): shown as config_error. */
  const json_t *(*not_started)(void *ctx);
  int (*stopping)(void *ctx);
} health_sources;

/* Registers GET /healthz and GET /metrics. Returns 0 or a negative code. */
int health_register(http_server *s, const health_sources *src);

#endif
