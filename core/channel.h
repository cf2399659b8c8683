/* channel.h — one connected channel: a plugin instance and everything the
 * host holds for it (config, state, timers, watches, HTTP calls, work, the
 * key/value state), from create to destroy.
 *
 * What plugins emit leaves through a channel_env the daemon supplies
 * (inbound messages to the router, statuses, state changes, key/value
 * persistence), so this module knows nothing of the store or the router and
 * tests can drive a real plugin with a fake environment.
 */
#ifndef SB_CORE_CHANNEL_H
#define SB_CORE_CHANNEL_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include <switchboard/plugin.h>

#include "config.h"
#include "loader.h"

struct httpc;

/* A JSON answer: status 0 with a borrowed result, or a negative errno with a sentence. */
typedef void (*channel_json_fn)(void *arg, int status, json_t *result, const char *err);

/* Where a channel's output goes. Every callback runs on the loop thread. */
typedef struct channel_env {
  uv_loop_t *loop;
  void *ctx;
  /* A validated inbound message (copied by the callee); done fires once. */
  int (*inbound)(void *ctx, sb_channel *ch, const sb_inbound_message *msg, sb_inbound_done_fn done,
                 void *arg);
  /* A delivery status from the plugin. */
  int (*status)(void *ctx, sb_channel *ch, const sb_status_update *update);
  /* Called after the channel's state changed (may be NULL). */
  void (*state_changed)(void *ctx, sb_channel *ch, uint32_t state, const char *reason);
  /* Makes a key/value change durable (value NULL: delete); done may be NULL.
   * When NULL the key/value state lives in memory only. */
  int (*kv_persist)(void *ctx, sb_channel *ch, const char *key, const char *value, size_t len,
                    sb_kv_done_fn done, void *arg);
  /* Called right after the plugin's destroy(), before the channel is freed
   * (may be NULL): answer what the plugin left unanswered. */
  void (*destroyed)(void *ctx, sb_channel *ch);
  /* The shared HTTP client, or NULL (http_request then fails with SB_ENOTSUP). */
  struct httpc *httpc;
  /* Reads for the plugin (ABI 1.3 history, availability), answered once by
   * done with a result as store.h's store_contact_history and
   * store_channel_availability describe (borrowed). NULL: those host
   * functions answer SB_ENOTSUP. kind is an SB_IDENTITY_*. */
  int (*history)(void *ctx, sb_channel *ch, uint32_t kind, const char *id, int64_t after_id, int limit,
                 channel_json_fn done, void *arg);
  int (*availability)(void *ctx, sb_channel *ch, channel_json_fn done, void *arg);
  /* Makes the channel's held replies to the contact (kind, id) due now (ABI
   * 1.3 send_release). NULL: send_release answers SB_ENOTSUP. */
  int (*send_release)(void *ctx, sb_channel *ch, uint32_t kind, const char *id);
} channel_env;

/* The pending answer to one receive(); embedded by whoever took the request
 * (the HTTP server, a test). respond is called exactly once by the host.
 * The owner must keep the struct alive until channel_receive returns, even
 * when respond runs inside it: the host reads answered afterwards. */
struct sb_responder {
  int (*respond)(struct sb_responder *self, int status, const sb_http_header *headers, size_t header_count,
                 const char *body, size_t body_len);
  int answered;
};

/* One WebSocket a plugin accepted (ABI 1.3); embedded by whoever holds the
 * connection (the ingress, a test), which fills the three operations and
 * keeps the struct until the connection is over (channel_ws_closed). close
 * must not report the end from inside itself. The rest is the channel's
 * bookkeeping. Once closed is set nothing reads ch: a channel that closes
 * runs ws_closed for every WebSocket at once and may be freed while the
 * connections still finish their closing handshakes. */
struct sb_ws {
  int (*send)(struct sb_ws *self, uint32_t kind, const char *data, size_t len); /* SB_* code */
  void (*close)(struct sb_ws *self, int code, const char *reason);
  const char *(*remote_addr)(const struct sb_ws *self);
  sb_channel *ch;
  struct sb_ws *prev, *next; /* the channel's open WebSockets */
  void *conn;                /* the plugin's state from ws_open */
  int closing;               /* a close was started: sends are refused */
  int close_code;            /* the code it was started with */
  int closed;                /* ws_closed ran (or runs) */
};

/* Outcomes of one send(). */
enum channel_send_outcome { CHANNEL_SEND_OK = 0, CHANNEL_SEND_RETRY = 1, CHANNEL_SEND_FAIL = 2, CHANNEL_SEND_DEFER = 3 };

/* One pending send(); embedded by the outbox glue or a test. complete is
 * called exactly once: text is the external id (OK) or the reason. */
struct sb_send_op {
  void (*complete)(struct sb_send_op *self, int outcome, const char *text, uint32_t retry_after_ms);
  int completed;
};

/* Validates a channel's config against its plugin (schema, then the
 * plugin's own validate hook) without creating anything. Returns 0, or
 * -EINVAL with one sentence naming the channel and key. *out, when given,
 * receives the built config (free with schema_config_free). */
int channel_validate(const loader_plugin *plugin, const config_channel *spec, const char *base_dir,
                     sb_config **out, char *err, size_t errlen);

/* Validates and creates the instance (plugin create). kv, when not NULL, is
 * the channel's stored key/value state ({key: "value", ...}), seeded before
 * create so the plugin sees it at once. Does not connect. */
int channel_create(const channel_env *env, const loader_plugin *plugin, const config_channel *spec,
                   const char *base_dir, const json_t *kv, sb_channel **out, char *err, size_t errlen);

/* Brings the channel online: the plugin's connect(), retried with backoff
 * after transient states; or connected at once when it has no connect. */
void channel_start(sb_channel *ch);

/* Takes the channel offline and frees it: disconnect(), close its
 * WebSockets (1001) running ws_closed for each, cancel what is left
 * (timers, watches, HTTP calls; pending work completes with SB_ECANCELED),
 * destroy(), then done(arg) once every handle is closed. */
void channel_close(sb_channel *ch, void (*done)(void *arg), void *arg);

/* Hands one request to the plugin's receive(). Answers 404 itself when the
 * plugin takes no requests or the channel is closing, 500 when receive
 * refuses it. */
void channel_receive(sb_channel *ch, const sb_http_request *req, sb_responder *responder);

/* Hands one outbound message to the plugin's send(). Returns 0, or a
 * negative code when not taken (op is then not completed). */
int channel_send(sb_channel *ch, const sb_outbound_message *msg, sb_send_op *op);

/* True when the channel's plugin takes WebSocket handshakes (ws_open) and
 * the channel is not closing. */
int channel_takes_websockets(const sb_channel *ch);

/* Offers a handshake to the plugin's ws_open with ws (its operations set).
 * Returns SB_OK when accepted: the channel then holds ws until
 * channel_ws_closed or its own close (which runs ws_closed for each open
 * WebSocket right after disconnect(), before destroy()). Otherwise the
 * plugin's refusal code (SB_ENOTSUP when it takes no WebSockets or is
 * closing); ws is then not used again. */
int channel_ws_open(sb_channel *ch, const sb_http_request *req, sb_ws *ws);

/* One complete message from the peer to ws_message (dropped once the
 * channel is closing). */
void channel_ws_message(sb_ws *ws, uint32_t kind, const char *data, size_t len);

/* The connection is over: ws_closed(code), once; a no-op when the channel's
 * close already ran it. The owner may free ws afterwards. */
void channel_ws_closed(sb_ws *ws, int code);

/* Seeds one key of the in-memory key/value state. Copies. Returns 0 or
 * -ENOMEM. */
int channel_kv_seed(sb_channel *ch, const char *key, const char *value, size_t len);

/* What one channel did since it was created, for metrics. The relay and the
 * ingress count into it. */
typedef struct channel_counters {
  uint64_t inbound;               /* messages handed to the router */
  uint64_t duplicates;            /* redeliveries */
  uint64_t inbound_failed;        /* not stored */
  uint64_t statuses;              /* delivery statuses */
  uint64_t sent, retried, failed; /* send() outcomes */
  uint64_t held;                  /* sends held while the channel was down */
  uint64_t webhooks;              /* requests to /hooks/{channel} */
  uint64_t webhook_refused;       /* answered 401 or 403 by the plugin (bad signature or token) */
  uint64_t websockets_open;       /* a gauge: WebSockets accepted and not yet closed */
  uint64_t websockets_accepted;   /* WebSocket handshakes ws_open accepted */
  uint64_t websockets_refused;    /* WebSocket handshakes ws_open refused */
} channel_counters;
channel_counters *channel_counters_of(sb_channel *ch);

const char *channel_name(const sb_channel *ch);
const char *channel_inbox(const sb_channel *ch);
const loader_plugin *channel_plugin(const sb_channel *ch);
const config_channel *channel_spec(const sb_channel *ch);
const sb_config *channel_config(const sb_channel *ch);
uint32_t channel_state(const sb_channel *ch);
const char *channel_state_reason(const sb_channel *ch);
const char *channel_state_name(uint32_t state);

/* The host API table every plugin receives (hostapi.c). */
const sb_host *hostapi_table(void);

#endif
