/* messenger.c — the Facebook Messenger channel: Meta webhooks in, the Send API out.
 *
 * This file: the descriptor, the settings and the instance's life.
 *
 * Inbound (messenger_inbound.c): POST /hooks/{channel} carries a signed batch ({"object":"page",
 * "entry":[{"messaging":[...], "standby":[...]}]}). Every event of every
 * entry is handled in order, one at a time: a customer's message or
 * postback first gets the sender's name from the User Profile API (cached
 * in memory; an error keeps the bare PSID) and its attachments' bytes from
 * Meta's CDN (a failure that may pass holds a new message: 503), then is
 * emitted; echoes are emitted as outbound messages (SB_IN_ECHO); delivery
 * and read events become watermark statuses. The webhook is answered 200
 * only once every message of the batch is committed (a store failure: 503,
 * and Meta delivers the batch again; the router deduplicates on mid).
 *
 * Outbound (messenger_send.c): the messaging window decides messaging_type.
 *
 * Key/value state per PSID: "c:PSID" consent given, "q:PSID" consent asked /
 * notice sent, "g:PSID" instant reply sent. (The customer's last message
 * time comes from the host with every send: last_inbound_ms.)
 *
 * Everything runs on the loop thread. Every callback (HTTP, commit) runs
 * before destroy(): the host cancels HTTP calls and waits for commits first.
 */
#include "messenger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const msgr_consent_modes[] = {"off", "explicit", "implicit", NULL};

static const sb_field msgr_schema[] = {
    {"page_id", SB_FIELD_STRING, SB_FIELD_REQUIRED, NULL, "Page ID", "The Facebook Page's numeric id.", NULL},
    {"page_access_token", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Page access token",
     "A Page access token with pages_messaging (from the app's Messenger settings).", NULL},
    {"app_secret", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "App secret",
     "The Meta app's secret: webhooks are signed with it (X-Hub-Signature-256).", NULL},
    {"verify_token", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Verify token",
     "Any string you choose; give Meta the same when you set the callback URL.", NULL},
    {"graph_api_base", SB_FIELD_URL, 0, META_DEFAULT_GRAPH_API_BASE, "Graph API base",
     "The Graph API with its version; change only to pin another version or for tests.", NULL},
    {"greeting_text", SB_FIELD_STRING, 0, NULL, "Greeting text",
     "Shown by Messenger before a person first writes (set on the Page's Messenger profile at connect).", NULL},
    {"instant_reply", SB_FIELD_STRING, 0, NULL, "Instant reply",
     "Sent once by the plugin to a person's first message. Prefer the channel's auto_replies.instant_reply, "
     "which is also recorded in the conversation.",
     NULL},
    {"human_agent_tag", SB_FIELD_BOOL, 0, "true", "Human agent tag",
     "Send agents' replies between 24 hours and 7 days after the customer's last message with the HUMAN_AGENT tag.",
     NULL},
    {"consent_mode", SB_FIELD_ENUM, 0, "off", "GDPR consent mode",
     "off; explicit: ask first and hold replies until the person agrees; implicit: show the consent text once.",
     msgr_consent_modes},
    {"consent_text", SB_FIELD_STRING, 0, "We store this conversation to answer you. Tap \"I agree\" to continue.",
     "Consent text", "What the person is asked (explicit) or told (implicit).", NULL},
    {"consent_keyword", SB_FIELD_STRING, 0, "I agree", "Consent keyword",
     "A message with exactly this text (any case) also gives consent.", NULL},
    {"request_timeout", SB_FIELD_DURATION, 0, "20s", "Request timeout", "How long a Graph API call may take.", NULL},
    SB_FIELD_END,
};

/* --- small helpers -------------------------------------------------------------- */

int64_t msgr_kv_int(const messenger *m, const char *prefix, const char *psid) {
  char key[256];
  snprintf(key, sizeof(key), "%s%s", prefix, psid);
  size_t len = 0;
  const char *v = m->host->kv_get(m->channel, key, &len);
  return v != NULL ? strtoll(v, NULL, 10) : 0;
}

void msgr_kv_put(const messenger *m, const char *prefix, const char *psid, const char *value) {
  char key[256];
  snprintf(key, sizeof(key), "%s%s", prefix, psid);
  if (m->host->kv_set(m->channel, key, value, strlen(value), NULL, NULL) != SB_OK) {
    m->host->log(m->channel, SB_LOG_WARN, "could not keep %s for a contact", prefix);
  }
}

/* Starts a Graph call with the page token as a bearer header. body NULL: a
 * GET. Returns the call or NULL (done is then not called). */
sb_http_call *msgr_graph(const messenger *m, const char *method, const char *url, const char *body,
                         sb_http_done_fn done, void *arg) {
  return meta_graph_call(m->host, m->channel, m->token, method, url, body != NULL ? "application/json" : NULL, body,
                         body != NULL ? strlen(body) : 0, m->timeout_ms, 256 * 1024, done, arg);
}

sb_http_call *msgr_graph_form(const messenger *m, const char *url, const char *content_type, const char *body,
                              size_t len, uint32_t timeout_ms, sb_http_done_fn done, void *arg) {
  return meta_graph_call(m->host, m->channel, m->token, "POST", url, content_type, body, len, timeout_ms, 256 * 1024,
                         done, arg);
}

/* --- lifecycle ------------------------------------------------------------------- */

static int msgr__validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  const char *page = host->config_get(cfg, "page_id");
  if (page == NULL || page[0] == '\0' || strspn(page, "0123456789") != strlen(page)) {
    snprintf(err, errlen, "credential \"page_id\" must be the Page's numeric id");
    return SB_EINVAL;
  }
  static const char *const secrets[] = {"page_access_token", "app_secret", "verify_token"};
  if (meta_validate_common(host, cfg, secrets, 3, err, errlen) != SB_OK) return SB_EINVAL;
  const char *mode = host->config_get(cfg, "consent_mode");
  const char *text = host->config_get(cfg, "consent_text");
  if (mode != NULL && strcmp(mode, "off") != 0 && (text == NULL || text[0] == '\0')) {
    snprintf(err, errlen, "setting \"consent_text\" must not be empty when consent_mode is %s", mode);
    return SB_EINVAL;
  }
  return SB_OK;
}

static int msgr__create(const sb_host *host, sb_channel *channel, const sb_config *cfg, void **instance, char *err,
                        size_t errlen) {
  if (msgr__validate(host, cfg, err, errlen) != SB_OK) return SB_EINVAL;
  messenger *m = calloc(1, sizeof(*m));
  if (m == NULL) {
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
  }
  m->host = host;
  m->channel = channel;
  m->page_id = host->config_get(cfg, "page_id");
  m->token = host->config_get(cfg, "page_access_token");
  m->app_secret = host->config_get(cfg, "app_secret");
  m->verify_token = host->config_get(cfg, "verify_token");
  m->greeting = host->config_get(cfg, "greeting_text");
  m->instant_reply = host->config_get(cfg, "instant_reply");
  m->consent_text = host->config_get(cfg, "consent_text");
  m->consent_keyword = host->config_get(cfg, "consent_keyword");
  m->human_agent_tag = host->config_int(cfg, "human_agent_tag", 1) != 0;
  m->timeout_ms = (uint32_t)host->config_int(cfg, "request_timeout", 20000);
  const char *mode = host->config_get(cfg, "consent_mode");
  m->consent_mode = mode == NULL                    ? MSGR_CONSENT_OFF
                    : strcmp(mode, "explicit") == 0 ? MSGR_CONSENT_EXPLICIT
                    : strcmp(mode, "implicit") == 0 ? MSGR_CONSENT_IMPLICIT
                                                    : MSGR_CONSENT_OFF;
  const char *base = host->config_get(cfg, "graph_api_base");
  snprintf(m->base, sizeof(m->base), "%s", base);
  size_t bl = strlen(m->base);
  while (bl > 0 && m->base[bl - 1] == '/') m->base[--bl] = '\0';
  *instance = m;
  return SB_OK;
}

/* disconnect(): answers open batches 503 (Meta delivers again; the router
 * deduplicates) and completes waiting sends as retries, at once. The
 * cancelled calls' and the commits' callbacks then only free what is left. */
static void msgr__disconnect(void *instance) {
  messenger *m = instance;
  m->closing = 1;
  msgr_inbound_close(m);
  msgr_send_cancel_all(m);
}

static void msgr__destroy(void *instance) {
  messenger *m = instance;
  for (size_t i = 0; i < MSGR_PROFILE_CACHE; i++) json_decref(m->profiles[i].fields);
  if (m->batches > 0 || m->sends > 0) {
    m->host->log(m->channel, SB_LOG_WARN, "destroyed with %d batches and %d sends still open", m->batches, m->sends);
  }
  free(m);
}

static const char *const msgr_attachment_types[] = {"image/", "audio/", "video/", "application/", "text/", NULL};

static const sb_plugin msgr_plugin = {
    SB_PLUGIN_INIT,
    .id = "messenger",
    .name = "Facebook Messenger",
    .publisher = "Switchboard",
    .version = MSGR_VERSION,
    .description = "Connects a Facebook Page's Messenger conversations through Meta's webhooks and Send API.",
    .logo_url = NULL,
    .credentials = msgr_schema,
    .caps = {.thread_model = SB_THREAD_PER_CONTACT,
             .flags = SB_CAP_ATTACHMENTS | SB_CAP_REPLY_TO | SB_CAP_DELIVERY_RECEIPTS | SB_CAP_READ_RECEIPTS,
             .attachment_types = msgr_attachment_types,
             .max_attachments = MSGR_MAX_ATTACHMENTS,
             .max_attachment_bytes = 25u * 1024 * 1024,
             .window_seconds = MSGR_WINDOW_MS / 1000,
             .extended_window_seconds = 7u * 24 * 3600,
             .extended_window_tag = "HUMAN_AGENT",
             .window_flags = SB_WINDOW_AUTOMATIC_STRICT},
    .validate = msgr__validate,
    .create = msgr__create,
    .connect = msgr_connect,
    .receive = msgr_receive,
    .send = msgr_send,
    .disconnect = msgr__disconnect,
    .destroy = msgr__destroy,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "the messenger channel needs plugin ABI %d.x", SB_ABI_MAJOR);
    return SB_EVERSION;
  }
  *out = &msgr_plugin;
  return SB_OK;
}
