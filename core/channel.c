/* channel.c — a channel's life: validate, create, connect with backoff, close. */
#include "channel_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "schema.h"

#define CHANNEL_BACKOFF_MIN_MS 1000
#define CHANNEL_BACKOFF_MAX_MS (5 * 60 * 1000)

void channel_link_init(channel_link *head) { head->prev = head->next = head; }

void channel_link_add(channel_link *head, channel_link *node) {
  node->next = head;
  node->prev = head->prev;
  head->prev->next = node;
  head->prev = node;
}

void channel_link_remove(channel_link *node) {
  if (node->next == NULL) return;
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->next = node->prev = NULL;
}

int channel_validate(const loader_plugin *plugin, const config_channel *spec, const char *base_dir,
                     sb_config **out, char *err, size_t errlen) {
  sb_config *cfg = NULL;
  int rc = schema_config_build(spec->name, plugin->desc.credentials, spec->credentials, base_dir, &cfg, err,
                               errlen);
  if (rc != 0) return rc;
  if (plugin->desc.validate != NULL) {
    char perr[512] = "";
    rc = plugin->desc.validate(hostapi_table(), cfg, perr, sizeof(perr));
    perr[sizeof(perr) - 1] = '\0'; /* a plugin may fill it without ending it */
    if (rc != 0) {
      snprintf(err, errlen, "channel \"%s\": %s", spec->name, perr[0] ? perr : "the plugin rejects its settings");
      log_redact(err, errlen); /* a plugin may quote the value it refuses: never a secret's */
      schema_config_free(cfg);
      return -EINVAL;
    }
  }
  if (out != NULL) {
    *out = cfg;
  } else {
    schema_config_free(cfg);
  }
  return 0;
}

/* Points ch->spec into ch's own copy of the channel object. */
static int channel__own_spec(sb_channel *ch, const config_channel *spec) {
  ch->spec_json = json_deep_copy(spec->spec);
  if (ch->spec_json == NULL) return -ENOMEM;
  ch->spec = *spec;
  ch->spec.spec = ch->spec_json;
  ch->spec.name = json_string_value(json_object_get(ch->spec_json, "name"));
  ch->spec.plugin = json_string_value(json_object_get(ch->spec_json, "plugin"));
  const json_t *inbox = json_object_get(ch->spec_json, "inbox");
  ch->spec.inbox = inbox != NULL ? json_string_value(inbox) : ROUTER_DEFAULT_INBOX;
  ch->spec.credentials = json_object_get(ch->spec_json, "credentials");
  return 0;
}

static void channel__free(sb_channel *ch) {
  for (channel_kv *kv = ch->kv, *next; kv != NULL; kv = next) {
    next = kv->next;
    free(kv->key);
    free(kv->value);
    free(kv);
  }
  schema_config_free(ch->config);
  json_decref(ch->spec_json);
  void (*cb)(void *) = ch->closed_cb;
  void *arg = ch->closed_arg;
  free(ch);
  if (cb != NULL) cb(arg);
}

void channel_hold(sb_channel *ch) { ch->pending++; }

void channel_release(sb_channel *ch) {
  if (--ch->pending == 0 && ch->destroyed) channel__free(ch);
}

int channel_create(const channel_env *env, const loader_plugin *plugin, const config_channel *spec,
                   const char *base_dir, const json_t *kv, sb_channel **out, char *err, size_t errlen) {
  sb_channel *ch = calloc(1, sizeof(*ch));
  if (ch == NULL) return -ENOMEM;
  ch->env = env;
  ch->plugin = plugin;
  ch->state = SB_STATE_CONNECTING;
  channel_link_init(&ch->timers);
  channel_link_init(&ch->watches);
  channel_link_init(&ch->calls);
  ch->websockets.prev = ch->websockets.next = &ch->websockets;
  int rc = channel__own_spec(ch, spec);
  if (rc == 0) rc = channel_validate(plugin, spec, base_dir, &ch->config, err, errlen);
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)kv, key, value) {
    if (rc == 0 && json_is_string(value)) rc = channel_kv_seed(ch, key, json_string_value(value), json_string_length(value));
  }
  if (rc != 0) {
    if (rc == -ENOMEM) snprintf(err, errlen, "channel \"%s\": out of memory", spec->name);
    channel__free(ch);
    return rc;
  }
  char perr[512] = "";
  rc = plugin->desc.create(hostapi_table(), ch, ch->config, &ch->instance, perr, sizeof(perr));
  perr[sizeof(perr) - 1] = '\0';
  if (rc != 0) {
    snprintf(err, errlen, "channel \"%s\": plugin \"%s\" could not create it: %s (code %d)", spec->name,
             plugin->desc.id, perr[0] ? perr : "no reason given", rc);
    channel__free(ch);
    return rc < 0 ? rc : -EINVAL;
  }
  uv_timer_init(env->loop, &ch->reconnect);
  ch->reconnect.data = ch;
  ch->pending = 1; /* the reconnect timer, released when it closes */
  *out = ch;
  return 0;
}

static void channel__connect(sb_channel *ch) {
  if (ch->closing) return;
  if (ch->plugin->desc.connect == NULL) {
    channel_set_state(ch, SB_STATE_CONNECTED, NULL);
    return;
  }
  int rc = ch->plugin->desc.connect(ch->instance);
  if (rc != 0 && !ch->closing && !SB_STATE_IS_FATAL(ch->state)) {
    char why[64];
    snprintf(why, sizeof(why), "connect failed (code %d)", rc);
    channel_set_state(ch, SB_STATE_DISCONNECTED, why);
  }
}

static void channel__reconnect_cb(uv_timer_t *t) { channel__connect(t->data); }

void channel_start(sb_channel *ch) {
  if (ch == NULL || ch->closing) return;
  channel__connect(ch);
}

const char *channel_state_name(uint32_t state) {
  switch (state) {
  case SB_STATE_CONNECTING: return "connecting";
  case SB_STATE_CONNECTED: return "connected";
  case SB_STATE_DISCONNECTED: return "disconnected";
  case SB_STATE_RATE_LIMITED: return "rate_limited";
  case SB_STATE_AUTH_FAILED: return "auth_failed";
  case SB_STATE_CONFIG_ERROR: return "config_error";
  default: return SB_STATE_IS_FATAL(state) ? "failed" : "unknown";
  }
}

void channel_set_state(sb_channel *ch, uint32_t state, const char *reason) {
  if (ch->closing) return;
  uint32_t old = ch->state;
  ch->state = state;
  snprintf(ch->reason, sizeof(ch->reason), "%s", reason != NULL ? reason : "");
  const char *name = ch->spec.name, *plugin = ch->plugin->desc.id;
  if (SB_STATE_IS_FATAL(state)) {
    log_msg(LOG_LEVEL_ERROR, name, plugin, "channel stopped: %s%s%s; fix its settings and reload",
            channel_state_name(state), reason ? ": " : "", reason ? reason : "");
    uv_timer_stop(&ch->reconnect);
  } else if (state == SB_STATE_DISCONNECTED || state == SB_STATE_RATE_LIMITED) {
    ch->backoff_ms = ch->backoff_ms == 0 ? CHANNEL_BACKOFF_MIN_MS : ch->backoff_ms * 2;
    if (ch->backoff_ms > CHANNEL_BACKOFF_MAX_MS) ch->backoff_ms = CHANNEL_BACKOFF_MAX_MS;
    log_msg(LOG_LEVEL_WARN, name, plugin, "%s%s%s; reconnecting in %llu ms", channel_state_name(state),
            reason ? ": " : "", reason ? reason : "", (unsigned long long)ch->backoff_ms);
    if (ch->plugin->desc.connect != NULL) uv_timer_start(&ch->reconnect, channel__reconnect_cb, ch->backoff_ms, 0);
  } else if (state == SB_STATE_CONNECTED) {
    ch->backoff_ms = 0;
    if (old != state) log_msg(LOG_LEVEL_INFO, name, plugin, "connected");
  }
  if (ch->env->state_changed != NULL && old != state) ch->env->state_changed(ch->env->ctx, ch, state, reason);
}

static void channel__reconnect_closed(uv_handle_t *h) { channel_release(h->data); }

/* Destroys the instance once nothing of the plugin's can still run. */
static void channel__destroy(sb_channel *ch) {
  ch->plugin->desc.destroy(ch->instance);
  ch->instance = NULL;
  ch->destroyed = 1;
  if (ch->env->destroyed != NULL) ch->env->destroyed(ch->env->ctx, ch);
  log_msg(LOG_LEVEL_DEBUG, ch->spec.name, ch->plugin->desc.id, "channel closed");
  uv_close((uv_handle_t *)&ch->reconnect, channel__reconnect_closed);
}

void channel_completion_begin(sb_channel *ch) {
  ch->completions_pending++;
  channel_hold(ch);
}

void channel_completion_end(sb_channel *ch) {
  if (--ch->completions_pending == 0 && ch->closing && !ch->destroyed) channel__destroy(ch);
  channel_release(ch);
}

void channel_close(sb_channel *ch, void (*done)(void *arg), void *arg) {
  if (ch == NULL) {
    if (done != NULL) done(arg);
    return;
  }
  if (ch->closing) return;
  ch->closing = 1;
  ch->closed_cb = done;
  ch->closed_arg = arg;
  uv_timer_stop(&ch->reconnect);
  if (ch->plugin->desc.disconnect != NULL) ch->plugin->desc.disconnect(ch->instance);
  /* WebSockets close with 1001 (or the code the plugin gave them in
   * disconnect) and the plugin hears of each at once, while its timers are
   * still valid to stop; the host alone waits for the peers' answers. */
  while (ch->websockets.next != &ch->websockets) {
    sb_ws *ws = ch->websockets.next;
    if (!ws->closing) {
      ws->closing = 1;
      ws->close_code = SB_WS_CLOSE_GOING_AWAY;
      ws->close(ws, SB_WS_CLOSE_GOING_AWAY, "the channel is closing");
    }
    channel_ws_closed(ws, ws->close_code);
  }
  hostapi_cancel_all(ch);
  /* Work on the pool and messages being committed cannot be stopped: their
   * done callbacks must still find the instance alive, so destroy waits. */
  if (ch->completions_pending == 0) channel__destroy(ch);
}

void channel_receive(sb_channel *ch, const sb_http_request *req, sb_responder *responder) {
  static const char not_found[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"no such channel\"}}";
  static const char refused[] =
      "{\"error\":{\"code\":\"plugin_error\",\"message\":\"the channel could not take the request\"}}";
  static const sb_http_header json = {"Content-Type", "application/json"};
  if (ch->closing || ch->plugin->desc.receive == NULL) {
    responder->answered = 1;
    responder->respond(responder, 404, &json, 1, not_found, sizeof(not_found) - 1);
    return;
  }
  /* The responder's owner keeps it alive until receive returns (see
   * sb_responder), so reading answered here is safe. */
  int rc = ch->plugin->desc.receive(ch->instance, req, responder);
  if (rc != 0 && !responder->answered) {
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "receive refused %s %s (code %d)", req->method,
            req->path, rc);
    responder->answered = 1;
    responder->respond(responder, 500, &json, 1, refused, sizeof(refused) - 1);
  }
}

int channel_send(sb_channel *ch, const sb_outbound_message *msg, sb_send_op *op) {
  if (ch->closing) return SB_ECANCELED;
  int rc = ch->plugin->desc.send(ch->instance, msg, op);
  if (rc != 0 && op->completed) {
    /* The plugin both completed and refused: the completion stands. */
    log_msg(LOG_LEVEL_WARN, ch->spec.name, ch->plugin->desc.id, "send returned %d after completing", rc);
    return 0;
  }
  return rc;
}

int channel_takes_websockets(const sb_channel *ch) {
  return ch != NULL && !ch->closing && ch->plugin->desc.ws_open != NULL;
}

int channel_ws_open(sb_channel *ch, const sb_http_request *req, sb_ws *ws) {
  if (!channel_takes_websockets(ch)) return SB_ENOTSUP;
  ws->ch = ch;
  ws->conn = NULL;
  ws->closing = ws->closed = 0;
  ws->close_code = 0;
  /* linked first: the plugin may send (or close) inside ws_open */
  ws->next = &ch->websockets;
  ws->prev = ch->websockets.prev;
  ch->websockets.prev->next = ws;
  ch->websockets.prev = ws;
  void *conn = NULL;
  int rc = ch->plugin->desc.ws_open(ch->instance, req, ws, &conn);
  if (rc != SB_OK) {
    ws->prev->next = ws->next;
    ws->next->prev = ws->prev;
    ws->prev = ws->next = NULL;
    ch->counters.websockets_refused++;
    return rc < 0 ? rc : SB_EINVAL;
  }
  ws->conn = conn;
  ch->counters.websockets_open++;
  ch->counters.websockets_accepted++;
  return SB_OK;
}

void channel_ws_message(sb_ws *ws, uint32_t kind, const char *data, size_t len) {
  if (ws->closed) return; /* ch may be gone: it is not read before this */
  sb_channel *ch = ws->ch;
  if (ch->closing) return;
  ch->plugin->desc.ws_message(ch->instance, ws, ws->conn, kind, data, len);
}

void channel_ws_closed(sb_ws *ws, int code) {
  if (ws->closed) return; /* ran at channel close; ch may be gone */
  sb_channel *ch = ws->ch;
  ws->closed = 1;
  ws->closing = 1;
  ch->plugin->desc.ws_closed(ch->instance, ws, ws->conn, code);
  ws->prev->next = ws->next;
  ws->next->prev = ws->prev;
  ws->prev = ws->next = NULL;
  ch->counters.websockets_open--;
}

int channel_kv_seed(sb_channel *ch, const char *key, const char *value, size_t len) {
  channel_kv *kv = calloc(1, sizeof(*kv));
  if (kv == NULL) return -ENOMEM;
  kv->key = strdup(key);
  kv->value = malloc(len + 1);
  if (kv->key == NULL || kv->value == NULL) {
    free(kv->key);
    free(kv->value);
    free(kv);
    return -ENOMEM;
  }
  memcpy(kv->value, value, len);
  kv->value[len] = '\0';
  kv->len = len;
  kv->next = ch->kv;
  ch->kv = kv;
  return 0;
}

channel_counters *channel_counters_of(sb_channel *ch) { return &ch->counters; }
const char *channel_name(const sb_channel *ch) { return ch->spec.name; }
const char *channel_inbox(const sb_channel *ch) { return ch->spec.inbox; }
const loader_plugin *channel_plugin(const sb_channel *ch) { return ch->plugin; }
const config_channel *channel_spec(const sb_channel *ch) { return &ch->spec; }
const sb_config *channel_config(const sb_channel *ch) { return ch->config; }
uint32_t channel_state(const sb_channel *ch) { return ch->state; }
const char *channel_state_reason(const sb_channel *ch) { return ch->reason; }
