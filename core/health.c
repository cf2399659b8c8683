/* health.c — /healthz and /metrics from the daemon's parts. */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "webhooks.h"

/* One /healthz or /metrics request waiting for the store. The store's
 * callback always comes (store.h), but possibly long after the deadline has
 * answered or the server has closed: the request lives until both the
 * callback and the deadline timer's close are through, and only the first
 * of callback, deadline and abort answers. */
typedef void (*health_render_fn)(const health_sources *src, http_responder *res, int status, json_t *result,
                                 const char *err);

typedef struct health_req {
  const health_sources *src;
  http_responder *res; /* NULL once answered (then released, not ours) */
  health_render_fn render;
  uv_timer_t deadline;
  int timer_open;    /* deadline initialised and its close not yet through */
  int store_pending; /* the store's callback is still to come */
} health_req;

static void health__maybe_free(health_req *h) {
  if (!h->timer_open && !h->store_pending) free(h);
}

static void health__timer_closed(uv_handle_t *t) {
  health_req *h = t->data;
  h->timer_open = 0;
  health__maybe_free(h);
}

static void health__stop_deadline(health_req *h) {
  if (h->timer_open && !uv_is_closing((uv_handle_t *)&h->deadline)) {
    uv_close((uv_handle_t *)&h->deadline, health__timer_closed);
  }
}

/* Answers with render once; later calls do nothing. The sources are read
 * only here, so never after an abort (the server may be gone). */
static void health__answer(health_req *h, int status, json_t *result, const char *err) {
  http_responder *res = h->res;
  if (res == NULL) return;
  h->res = NULL;
  h->render(h->src, res, status, result, err);
  health__stop_deadline(h);
}

static void health__stored(void *arg, int status, json_t *result, const char *err) {
  health_req *h = arg;
  h->store_pending = 0;
  health__answer(h, status, result, err);
  health__maybe_free(h);
}

static void health__late(uv_timer_t *t) {
  char why[96];
  snprintf(why, sizeof(why), "the store did not answer within %g s", HEALTH_STORE_DEADLINE_MS / 1000.0);
  health__answer(t->data, -ETIMEDOUT, NULL, why);
}

/* The client went away or the server is closing: the responder is finished
 * as http_close would (a no-op if the client is gone) without reading the
 * sources, and the store's late answer then only frees h. */
static void health__aborted(void *arg) {
  health_req *h = arg;
  http_responder *res = h->res;
  if (res == NULL) return;
  h->res = NULL;
  http_respond_error(res, 503, "shutting_down", "the server is shutting down; retry shortly", NULL);
  health__stop_deadline(h);
}

/* Asks the store through submit and answers with render when it does, or
 * when HEALTH_STORE_DEADLINE_MS passes first (status -ETIMEDOUT). */
static void health__probe(const health_sources *src, http_responder *res, health_render_fn render,
                          int (*submit)(store *st, store_json_cb cb, void *arg)) {
  health_req *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  h->src = src;
  h->res = res;
  h->render = render;
  h->store_pending = 1;
  if (src->st == NULL || submit(src->st, health__stored, h) != 0) {
    h->store_pending = 0;
    health__answer(h, -EIO, NULL, "the store is closed");
    health__maybe_free(h);
    return;
  }
  http_responder_on_abort(res, health__aborted, h);
  if (src->loop != NULL && uv_timer_init(src->loop, &h->deadline) == 0) {
    h->deadline.data = h;
    h->timer_open = 1;
    uv_timer_start(&h->deadline, health__late, HEALTH_STORE_DEADLINE_MS, 0);
  }
}

static void health__checked(const health_sources *src, http_responder *res, int status, json_t *result,
                            const char *err) {
  (void)result;
  size_t n = 0;
  sb_channel *const *list = src->channels(src->ctx, &n);
  json_t *channels = json_array();
  for (size_t i = 0; i < n; i++) {
    sb_channel *ch = list[i];
    const char *reason = channel_state_reason(ch);
    json_array_append_new(channels, json_pack("{s:s, s:s, s:s, s:s?}", "name", channel_name(ch), "plugin",
                                              channel_plugin(ch)->desc.id, "state",
                                              channel_state_name(channel_state(ch)), "reason",
                                              reason[0] != '\0' ? reason : NULL));
  }
  const char *name;
  json_t *v;
  const json_t *failed = src->not_started != NULL ? src->not_started(src->ctx) : NULL;
  json_object_foreach((json_t *)failed, name, v) {
    json_array_append_new(channels, json_pack("{s:s, s:O, s:s, s:O}", "name", name, "plugin",
                                              json_object_get(v, "plugin"), "state", "config_error", "reason",
                                              json_object_get(v, "reason")));
  }
  int stopping = src->stopping(src->ctx);
  int ok = status == 0 && !stopping;
  http_respond_json(res, ok ? 200 : 503,
                    json_pack("{s:s, s:s, s:{s:s, s:s?}, s:o}", "status", ok ? "ok" : stopping ? "stopping" : "degraded",
                              "version", SB_VERSION, "store", "status", status == 0 ? "ok" : "failing", "error",
                              status == 0 ? NULL : err, "channels", channels));
}

/* GET /healthz: a round trip through the store's writer proves it answers. */
static void health__healthz(void *arg, const http_request *req, http_responder *res) {
  (void)req;
  health__probe(arg, res, health__checked, store_pipelines_list);
}

static void health__channel_metrics(metrics_text *t, sb_channel *const *list, size_t n, const json_t *failed) {
  static const struct {
    const char *name, *type, *help;
    size_t offset;
  } counters[] = {
      {"switchboard_inbound_messages_total", "counter", "Inbound messages handed to the router.", offsetof(channel_counters, inbound)},
      {"switchboard_inbound_duplicates_total", "counter", "Redelivered inbound messages answered with the original id.",
       offsetof(channel_counters, duplicates)},
      {"switchboard_inbound_failures_total", "counter", "Inbound messages that could not be stored.",
       offsetof(channel_counters, inbound_failed)},
      {"switchboard_delivery_statuses_total", "counter", "Delivery statuses reported by channels.", offsetof(channel_counters, statuses)},
      {"switchboard_webhook_requests_total", "counter", "Requests to /hooks/{channel}.", offsetof(channel_counters, webhooks)},
      {"switchboard_webhook_signature_failures_total", "counter", "Webhooks refused with 401 or 403 (bad signature or token).",
       offsetof(channel_counters, webhook_refused)},
      {"switchboard_websockets_open", "gauge", "WebSockets the channel's plugin holds open now.",
       offsetof(channel_counters, websockets_open)},
      {"switchboard_websocket_handshakes_total", "counter", "WebSocket handshakes the channel's plugin accepted.",
       offsetof(channel_counters, websockets_accepted)},
      {"switchboard_websocket_refusals_total", "counter", "WebSocket handshakes the channel's plugin refused.",
       offsetof(channel_counters, websockets_refused)},
  };
  char name[256];
  for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
    metrics_family(t, counters[k].name, counters[k].type, counters[k].help);
    for (size_t i = 0; i < n; i++) {
      const channel_counters *c = channel_counters_of(list[i]);
      uint64_t v;
      memcpy(&v, (const char *)c + counters[k].offset, sizeof(v));
      metrics_printf(t, "%s{channel=\"%s\"} %llu\n", counters[k].name, metrics_label(channel_name(list[i]), name, sizeof(name)),
                     (unsigned long long)v);
    }
  }
  metrics_family(t, "switchboard_outbound_messages_total", "counter", "Outbound sends by result.");
  for (size_t i = 0; i < n; i++) {
    const channel_counters *c = channel_counters_of(list[i]);
    metrics_label(channel_name(list[i]), name, sizeof(name));
    metrics_printf(t,
                   "switchboard_outbound_messages_total{channel=\"%s\",result=\"sent\"} %llu\n"
                   "switchboard_outbound_messages_total{channel=\"%s\",result=\"retry\"} %llu\n"
                   "switchboard_outbound_messages_total{channel=\"%s\",result=\"failed\"} %llu\n"
                   "switchboard_outbound_messages_total{channel=\"%s\",result=\"held\"} %llu\n",
                   name, (unsigned long long)c->sent, name, (unsigned long long)c->retried, name,
                   (unsigned long long)c->failed, name, (unsigned long long)c->held);
  }
  metrics_family(t, "switchboard_channel_state", "gauge", "1 for each channel's current state.");
  for (size_t i = 0; i < n; i++) {
    char plugin[96];
    metrics_printf(t, "switchboard_channel_state{channel=\"%s\",plugin=\"%s\",state=\"%s\"} 1\n",
                   metrics_label(channel_name(list[i]), name, sizeof(name)),
                   metrics_label(channel_plugin(list[i])->desc.id, plugin, sizeof(plugin)),
                   channel_state_name(channel_state(list[i])));
  }
  const char *failed_name;
  json_t *v;
  json_object_foreach((json_t *)failed, failed_name, v) {
    char plugin[96];
    metrics_printf(t, "switchboard_channel_state{channel=\"%s\",plugin=\"%s\",state=\"config_error\"} 1\n",
                   metrics_label(failed_name, name, sizeof(name)),
                   metrics_label(json_string_value(json_object_get(v, "plugin")), plugin, sizeof(plugin)));
  }
}

static void health__metrics_render(const health_sources *src, http_responder *res, int status, json_t *counts,
                                   const char *err) {
  (void)err;
  metrics_text t = {0};
  metrics_family(&t, "switchboard_build_info", "gauge", "The running version.");
  metrics_printf(&t, "switchboard_build_info{version=\"%s\"} 1\n", SB_VERSION);
  metrics_family(&t, "switchboard_up", "gauge", "1 while the store answers (within the deadline).");
  metrics_printf(&t, "switchboard_up %d\n", status == 0);
  size_t n = 0;
  sb_channel *const *list = src->channels(src->ctx, &n);
  health__channel_metrics(&t, list, n, src->not_started != NULL ? src->not_started(src->ctx) : NULL);
  if (status == 0) {
    metrics_family(&t, "switchboard_outbox_depth", "gauge", "Outbox rows by state.");
    const char *state;
    json_t *v;
    json_object_foreach(counts, state, v) {
      metrics_printf(&t, "switchboard_outbox_depth{state=\"%s\"} %lld\n", state, (long long)json_integer_value(v));
    }
  }
  if (src->relay != NULL) {
    relay_stats rs;
    relay_get_stats(src->relay, &rs);
    metrics_family(&t, "switchboard_store_commit_seconds", "histogram",
                   "From a plugin's emit_inbound to the durable commit of the message.");
    metrics_histogram_write(&t, "switchboard_store_commit_seconds", "", &rs.commit_latency);
    metrics_family(&t, "switchboard_send_seconds", "histogram", "From a plugin's send() to its completion.");
    metrics_histogram_write(&t, "switchboard_send_seconds", "", &rs.send_latency);
  }
  if (src->st != NULL) {
    store_stats ss;
    store_get_stats(src->st, &ss);
    metrics_family(&t, "switchboard_store_transactions_total", "counter", "Committed store transactions (group commits).");
    metrics_printf(&t, "switchboard_store_transactions_total %llu\n", (unsigned long long)ss.transactions);
    metrics_family(&t, "switchboard_store_requests_total", "counter", "Requests run by the store.");
    metrics_printf(&t, "switchboard_store_requests_total %llu\n", (unsigned long long)ss.requests);
    metrics_family(&t, "switchboard_store_checkpoints_total", "counter", "WAL checkpoints run off the commit path.");
    metrics_printf(&t, "switchboard_store_checkpoints_total %llu\n", (unsigned long long)ss.checkpoints);
    metrics_family(&t, "switchboard_store_wal_truncations_total", "counter",
                   "Checkpoints the writer ran between batches to keep the WAL under its bound.");
    metrics_printf(&t, "switchboard_store_wal_truncations_total %llu\n", (unsigned long long)ss.wal_truncations);
    metrics_family(&t, "switchboard_store_wal_syncs_total", "counter",
                   "fdatasyncs of the WAL, each making every commit since the one before durable.");
    metrics_printf(&t, "switchboard_store_wal_syncs_total %llu\n", (unsigned long long)ss.wal_syncs);
    metrics_family(&t, "switchboard_store_wal_sync_seconds", "histogram",
                   "Time each fdatasync of the WAL took (the disk's share of a commit).");
    metrics_histogram_write(&t, "switchboard_store_wal_sync_seconds", "", &ss.wal_sync_latency);
  }
  if (src->http != NULL) {
    http_stats hs;
    http_get_stats(src->http, &hs);
    metrics_family(&t, "switchboard_http_responses_total", "counter", "HTTP responses by status class.");
    for (int c = 1; c <= 5; c++) {
      metrics_printf(&t, "switchboard_http_responses_total{class=\"%dxx\"} %llu\n", c,
                     (unsigned long long)hs.responses_by_class[c]);
    }
    metrics_family(&t, "switchboard_http_connections", "gauge", "Open HTTP connections.");
    metrics_printf(&t, "switchboard_http_connections %llu\n", (unsigned long long)hs.active_connections);
    metrics_family(&t, "switchboard_http_websockets", "gauge", "Open WebSocket connections, all channels.");
    metrics_printf(&t, "switchboard_http_websockets %llu\n", (unsigned long long)hs.websockets_open);
  }
  if (src->httpc != NULL) {
    httpc_stats cs;
    httpc_get_stats(src->httpc, &cs);
    metrics_family(&t, "switchboard_http_client_in_flight", "gauge", "Plugins' HTTP requests in flight.");
    metrics_printf(&t, "switchboard_http_client_in_flight %llu\n", (unsigned long long)cs.in_flight);
    metrics_family(&t, "switchboard_http_client_requests_total", "counter", "Plugins' HTTP requests by outcome.");
    metrics_printf(&t,
                   "switchboard_http_client_requests_total{outcome=\"completed\"} %llu\n"
                   "switchboard_http_client_requests_total{outcome=\"failed\"} %llu\n"
                   "switchboard_http_client_requests_total{outcome=\"timed_out\"} %llu\n"
                   "switchboard_http_client_requests_total{outcome=\"cancelled\"} %llu\n",
                   (unsigned long long)cs.completed, (unsigned long long)cs.failed, (unsigned long long)cs.timed_out,
                   (unsigned long long)cs.cancelled);
  }
  if (src->webhooks != NULL) {
    webhooks_stats ws;
    webhooks_get_stats(src->webhooks, &ws);
    metrics_family(&t, "switchboard_webhook_posts_total", "counter", "Outgoing webhook posts by result.");
    metrics_printf(&t,
                   "switchboard_webhook_posts_total{result=\"delivered\"} %llu\n"
                   "switchboard_webhook_posts_total{result=\"failed\"} %llu\n",
                   (unsigned long long)ws.delivered, (unsigned long long)ws.failed);
    metrics_family(&t, "switchboard_webhook_events_total", "counter", "Events in delivered webhook posts.");
    metrics_printf(&t, "switchboard_webhook_events_total %llu\n", (unsigned long long)ws.events);
    metrics_family(&t, "switchboard_webhooks_failing", "gauge", "Outgoing webhooks whose last post failed.");
    metrics_printf(&t, "switchboard_webhooks_failing %u\n", ws.failing);
  }
  size_t len = 0;
  char *body = metrics_text_take(&t, &len);
  if (body == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
  } else {
    static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
    http_header ct = {"Content-Type", type, sizeof(type) - 1};
    http_respond(res, 200, &ct, 1, body, len);
    free(body);
  }
}

/* GET /metrics: the outbox depth comes from the store, the rest from memory. */
static void health__metrics(void *arg, const http_request *req, http_responder *res) {
  (void)req;
  health__probe(arg, res, health__metrics_render, store_outbox_counts);
}

int health_register(http_server *s, const health_sources *src) {
  int rc = http_route(s, "GET", "/healthz", health__healthz, (void *)src);
  if (rc == 0) rc = http_route(s, "GET", "/metrics", health__metrics, (void *)src);
  return rc;
}
