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

/* Where the figures come from. The struct must outlive the server; its
 * pointers are read at each request (NULL parts are skipped). */
typedef struct health_sources {
  store *st;
  relay *relay;
  http_server *http;
  httpc *httpc;
  void *ctx;
  sb_channel *const *(*channels)(void *ctx, size_t *count); /* the running channels */
  int (*stopping)(void *ctx);
} health_sources;

/* Registers GET /healthz and GET /metrics. Returns 0 or a negative code. */
int health_register(http_server *s, const health_sources *src);

#endif
