/* messenger.h — what the Messenger plugin's files share (never installed, never exported). */
#ifndef SB_MESSENGER_H
#define SB_MESSENGER_H

#include <jansson.h>
#include <switchboard/plugin.h>

#include "meta_common.h"

#define MSGR_VERSION "1.0.0"
#define MSGR_CONSENT_PAYLOAD "SWITCHBOARD_CONSENT_GIVEN"
#define MSGR_METADATA_PREFIX "switchboard:"

enum { MSGR_CONSENT_OFF = 0, MSGR_CONSENT_EXPLICIT = 1, MSGR_CONSENT_IMPLICIT = 2 };

struct msgr_out;
struct msgr_batch;

#define MSGR_PROFILE_CACHE 256
#define MSGR_MAX_ATTACHMENTS 10 /* a message's attachments kept (the capability) */
#define MSGR_WINDOW_MS (24LL * 3600 * 1000) /* automatic messages never leave it (the capability's window) */

/* One User Profile API answer (or miss) kept in memory. */
typedef struct msgr_profile {
  char psid[64];
  int64_t at;     /* when it was looked up (unix ms); 0 = empty slot */
  json_t *fields; /* first_name, last_name, profile_pic when known */
} msgr_profile;

/* One Messenger channel. Config pointers live until destroy(). */
typedef struct messenger {
  const sb_host *host;
  sb_channel *channel;
  const char *page_id, *token, *app_secret, *verify_token;
  const char *greeting, *instant_reply, *consent_text, *consent_keyword;
  char base[512]; /* graph_api_base without a trailing slash */
  int human_agent_tag;
  int consent_mode; /* MSGR_CONSENT_* */
  uint32_t timeout_ms;
  int closing;
  int auth_failed;                           /* Graph said 190: sends are held until the config changes */
  int batches;                               /* webhook batches not yet answered */
  int sends;                                 /* sends, notices and connect calls in flight */
  struct msgr_out *outs;                     /* sends and notices waiting for the Send API */
  struct msgr_batch *open;                   /* webhook batches not yet freed */
  msgr_profile profiles[MSGR_PROFILE_CACHE]; /* by a hash of the PSID: a lookup is not repeated within a day */
} messenger;

/* The key/value value under prefix+psid read as an integer; 0 when absent. */
int64_t msgr_kv_int(const messenger *m, const char *prefix, const char *psid);

/* Sets prefix+psid to value (not waiting for durability); logs a failure. */
void msgr_kv_put(const messenger *m, const char *prefix, const char *psid, const char *value);

/* Starts a Graph call with the page token as bearer; body NULL: no body.
 * Returns the call, or NULL when the host refused it (done not called). */
sb_http_call *msgr_graph(const messenger *m, const char *method, const char *url, const char *body,
                         sb_http_done_fn done, void *arg);

/* POSTs a multipart/form-data body (len bytes, content_type with its
 * boundary) with the page token as bearer, allowed timeout_ms. Returns the
 * call, or NULL when the host refused it (done not called). */
sb_http_call *msgr_graph_form(const messenger *m, const char *url, const char *content_type, const char *body,
                              size_t len, uint32_t timeout_ms, sb_http_done_fn done, void *arg);

/* connect(): checks the token against the Page, then sets the greeting. */
int msgr_connect(void *instance);

/* send(): the Send API within the messaging window (messenger_send.c). */
int msgr_send(void *instance, const sb_outbound_message *msg, sb_send_op *op);

/* At disconnect: completes every waiting send as a retry and detaches it,
 * so the cancelled HTTP call's callback only frees it. */
void msgr_send_cancel_all(messenger *m);

/* Sends a message the plugin itself writes (consent request or notice,
 * instant reply) as a RESPONSE, fire and forget; with_button adds the
 * "I agree" postback button. Once Meta accepts it, it is recorded in the
 * conversation as an automatic outbound message (emit_inbound with
 * SB_IN_ECHO | SB_IN_AUTOMATIC and Meta's mid). */
void msgr_send_notice(messenger *m, const char *psid, const char *text, int with_button);

/* receive(): the webhook's verification GET and signed POSTs
 * (messenger_inbound.c). */
int msgr_receive(void *instance, const sb_http_request *req, sb_responder *r);

/* Answers every open webhook batch 503 at disconnect (Meta delivers them
 * again; the router deduplicates); their callbacks then only free. */
void msgr_inbound_close(messenger *m);

#endif
