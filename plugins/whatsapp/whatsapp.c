/* whatsapp.c — the WhatsApp Business channel: Cloud API webhooks in (messages, contacts, statuses, media).
 *
 * Inbound: POST /hooks/{channel} carries a signed batch ({"object":
 * "whatsapp_business_account", "entry":[{"changes":[{"field":"messages",
 * "value":{...}}]}]}). For this channel's phone_number_id, statuses become
 * delivery statuses at once; messages are handled in order, one at a time:
 * a media message first fetches its media (GET /{media-id} for the URL,
 * then the URL with the bearer token within its 5-minute life), then is
 * emitted with the sender's profile name from value.contacts. A media
 * failure is recorded on the message, never fatal. The webhook is answered
 * 200 only once every message of the batch is committed; 503 otherwise,
 * and Meta delivers the batch again (the router deduplicates on wamid).
 * The body is read with webhook_json (cJSON, the cheaper parse on the
 * loop); the metadata stored with a message is built with jansson.
 *
 * Key/value state: "t:WA_ID" the customer's last message time (unix ms),
 * "s:<idempotency key>" the parts of a reply already sent.
 *
 * Every callback (HTTP, commit) runs before destroy(): the host cancels
 * HTTP calls and waits for commits first.
 */
#include "whatsapp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webhook_json.h>

#define WA_MAX_BODY ((size_t)4 * 1024 * 1024)

static const sb_field wa_schema[] = {
    {"phone_number_id", SB_FIELD_STRING, SB_FIELD_REQUIRED, NULL, "Phone number ID",
     "The WhatsApp Business phone number's id (WhatsApp > API Setup), not the phone number itself.", NULL},
    {"waba_id", SB_FIELD_STRING, SB_FIELD_REQUIRED, NULL, "WhatsApp Business Account ID",
     "The WABA that owns the number; subscribe the app to its webhooks.", NULL},
    {"access_token", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Access token",
     "A system user's permanent token with whatsapp_business_messaging.", NULL},
    {"app_secret", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "App secret",
     "The Meta app's secret: webhooks are signed with it (X-Hub-Signature-256).", NULL},
    {"verify_token", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Verify token",
     "Any string you choose; give Meta the same when you set the callback URL.", NULL},
    {"graph_api_base", SB_FIELD_URL, 0, META_DEFAULT_GRAPH_API_BASE, "Graph API base",
     "The Graph API with its version; change only to pin another version or for tests.", NULL},
    {"reengagement_template", SB_FIELD_STRING, 0, NULL, "Default re-engagement template",
     "An approved template's name, used for a reply whose template names none, and suggested to agents when a "
     "free-text reply falls outside the 24-hour window.",
     NULL},
    {"reengagement_language", SB_FIELD_STRING, 0, "en_US", "Template language", "The default template's language code.",
     NULL},
    {"max_media_bytes", SB_FIELD_INT, 0, "16777216", "Largest inbound media",
     "Media larger than this is not downloaded (the message keeps a note).", NULL},
    {"request_timeout", SB_FIELD_DURATION, 0, "20s", "Request timeout", "How long a Graph API call may take.", NULL},
    SB_FIELD_END,
};

/* --- helpers ----------------------------------------------------------------------- */

int64_t wa_kv_int(const whatsapp *w, const char *prefix, const char *id) {
  char key[256];
  snprintf(key, sizeof(key), "%s%s", prefix, id);
  size_t len = 0;
  const char *v = w->host->kv_get(w->channel, key, &len);
  return v != NULL ? strtoll(v, NULL, 10) : 0;
}

void wa_kv_put(const whatsapp *w, const char *prefix, const char *id, const char *value) {
  char key[256];
  snprintf(key, sizeof(key), "%s%s", prefix, id);
  if (w->host->kv_set(w->channel, key, value, strlen(value), NULL, NULL) != SB_OK) {
    w->host->log(w->channel, SB_LOG_WARN, "could not keep %s for a contact", prefix);
  }
}

void wa_part_remember(const whatsapp *w, const char *part_id, const char *first_id) {
  /* A ring of the keys kept: its slot's old key is forgotten first. */
  int64_t pos = wa_kv_int(w, "partpos", "") % WA_PARTS_KEPT;
  char slot[32], key[256], next[32];
  snprintf(slot, sizeof(slot), "%lld", (long long)pos);
  size_t len = 0;
  char ring[48];
  snprintf(ring, sizeof(ring), "partring:%s", slot);
  const char *old = w->host->kv_get(w->channel, ring, &len);
  if (old != NULL) {
    snprintf(key, sizeof(key), "%.*s", (int)len, old);
    w->host->kv_delete(w->channel, key, NULL, NULL);
  }
  snprintf(key, sizeof(key), "part:%s", part_id);
  wa_kv_put(w, "part:", part_id, first_id);
  wa_kv_put(w, "partring:", slot, key);
  snprintf(next, sizeof(next), "%lld", (long long)(pos + 1));
  wa_kv_put(w, "partpos", "", next);
}

int wa_part_of(const whatsapp *w, const char *part_id, char *out, size_t outlen) {
  char key[256];
  snprintf(key, sizeof(key), "part:%s", part_id);
  size_t len = 0;
  const char *v = w->host->kv_get(w->channel, key, &len);
  if (v != NULL) snprintf(out, outlen, "%.*s", (int)len, v);
  return v != NULL;
}

sb_http_call *wa_graph(const whatsapp *w, const char *method, const char *url, const char *body, uint64_t max_bytes,
                       sb_http_done_fn done, void *arg) {
  return meta_graph_call(w->host, w->channel, w->token, method, url, body != NULL ? "application/json" : NULL, body,
                         body != NULL ? strlen(body) : 0, w->timeout_ms, max_bytes, done, arg);
}

sb_http_call *wa_graph_form(const whatsapp *w, const char *url, const char *content_type, const char *body, size_t len,
                            uint32_t timeout_ms, sb_http_done_fn done, void *arg) {
  return meta_graph_call(w->host, w->channel, w->token, "POST", url, content_type, body, len, timeout_ms, 64 * 1024,
                         done, arg);
}

void wa_auth_failed(whatsapp *w) {
  if (w->auth_failed) return;
  w->auth_failed = 1;
  w->host->set_state(w->channel, SB_STATE_AUTH_FAILED,
                     "Meta refused the WhatsApp access token (Graph error 190); update access_token");
}

/* Parses "1763800000" (seconds, as a string or an integral number) into unix ms; 0 when unreadable. */
static int64_t wa__ts(const cJSON *v) {
  int64_t n;
  if (wj_integer(v, &n)) return n * 1000;
  const char *s = wj_string(v);
  if (s == NULL || s[0] == '\0' || strlen(s) > 12 || strspn(s, "0123456789") != strlen(s)) return 0;
  return strtoll(s, NULL, 10) * 1000;
}

/* --- inbound: statuses ------------------------------------------------------------------ */

static void wa__status(whatsapp *w, const cJSON *st) {
  const char *id = wj_get_string(st, "id");
  const char *s = wj_get_string(st, "status");
  if (id == NULL || s == NULL) return;
  /* A later part of a reply (an attachment after its text): only its
   * failure is the reply's news; its sent/delivered/read are the first
   * part's to tell. */
  char first[256] = "";
  if (wa_part_of(w, id, first, sizeof(first))) {
    if (strcmp(s, "failed") != 0) return;
    id = first;
  }
  sb_status_update u = {.struct_size = sizeof(u), .external_id = id, .timestamp_ms = wa__ts(wj_get(st, "timestamp"))};
  char reason[META_MAX_REASON * 2 + 64];
  if (strcmp(s, "sent") == 0)
    u.status = SB_STATUS_SENT;
  else if (strcmp(s, "delivered") == 0)
    u.status = SB_STATUS_DELIVERED;
  else if (strcmp(s, "read") == 0)
    u.status = SB_STATUS_READ;
  else if (strcmp(s, "failed") == 0)
    u.status = SB_STATUS_FAILED;
  else
    return; /* "deleted", "warning": nothing the help desk tracks */
  if (u.status == SB_STATUS_FAILED) {
    const cJSON *errors = wj_get_array(st, "errors");
    const cJSON *e = errors != NULL ? errors->child : NULL;
    int64_t n;
    long code = wj_integer(wj_get(e, "code"), &n) ? (long)n : 0;
    const char *title = wj_get_string(e, "title");
    const char *details = wj_get_string(wj_get(e, "error_data"), "details");
    if (title == NULL) title = wj_get_string(e, "message");
    if (code == 131047) {
      snprintf(reason, sizeof(reason),
               "re-engagement required: more than 24 hours have passed since the customer last wrote; send a "
               "template%s%s%s",
               w->template_name != NULL ? " (e.g. " : "", w->template_name != NULL ? w->template_name : "",
               w->template_name != NULL ? ")" : "");
    } else {
      snprintf(reason, sizeof(reason), "%sWhatsApp error %ld: %s%s%s",
               first[0] != '\0' ? "a later part of the reply (an attachment) did not reach the customer: " : "", code,
               title != NULL ? title : "failed", details != NULL ? " — " : "", details != NULL ? details : "");
    }
    u.error = reason;
  }
  if (w->host->emit_status(w->channel, &u) != SB_OK) {
    w->host->log(w->channel, SB_LOG_WARN, "a WhatsApp status was refused by the help desk");
  }
}

/* --- inbound: messages ------------------------------------------------------------------ */

typedef struct wa_event {
  const cJSON *msg;   /* value.messages[i] */
  const cJSON *value; /* its change's value (for contacts) */
} wa_event;

typedef struct wa_batch {
  struct wa_batch *next_open, **prev_open; /* in w->open; prev_open points at this one */
  int answered;               /* disconnect() answered it 503 already */
  whatsapp *w;
  sb_responder *r;
  cJSON *root; /* the webhook body */
  size_t n, next;
  int pending, failed, walking, waiting;
  /* The media of events[next] while it is fetched. */
  int media_stage; /* 0 none, 1 URL looked up, 2 downloaded or failed */
  json_t *media;   /* the media object from GET /{media-id}, or NULL */
  char *data;
  size_t data_len;
  char media_error[META_MAX_REASON + 80];
  int media_transient; /* the media's failure may pass (no answer, 5xx, throttling) */
  wa_event events[];   /* in the batch's allocation */
} wa_batch;

/* A message whose media could not be fetched for a reason that may pass is
 * not stored while it is younger than this: the batch is answered 503 and
 * Meta delivers it again (the messages already stored are deduplicated).
 * Older, it is stored without its media, so its text never waits longer. */
#define WA_MEDIA_HOLD_MS (60LL * 60 * 1000)

static void wa__step(wa_batch *b);

static void wa__media_reset(wa_batch *b) {
  json_decref(b->media);
  b->media = NULL;
  free(b->data);
  b->data = NULL;
  b->data_len = 0;
  b->media_stage = 0;
  b->media_error[0] = '\0';
  b->media_transient = 0;
}

static void wa__maybe_finish(wa_batch *b) {
  if (b->walking || b->waiting || b->next < b->n || b->pending > 0) return;
  whatsapp *w = b->w;
  if (!b->answered) {
    meta_answer(w->host, b->r, b->failed ? 503 : 200,
                b->failed ? "not every message could be stored; deliver the batch again" : NULL);
  }
  /* unlinked in constant time: under load every connection may have one open */
  *b->prev_open = b->next_open;
  if (b->next_open != NULL) b->next_open->prev_open = b->prev_open;
  w->batches--;
  wa__media_reset(b);
  wj_free(b->root);
  free(b);
}

static void wa__committed(void *arg, int status, const char *message_id, int duplicate) {
  wa_batch *b = arg;
  (void)message_id;
  (void)duplicate;
  if (status != SB_OK) {
    b->failed = 1;
    b->w->host->log(b->w->channel, SB_LOG_WARN, "a WhatsApp message could not be stored (code %d)", status);
  }
  b->pending--;
  wa__maybe_finish(b);
}

/* The media object of a message ({"id","mime_type",...} under its type), or NULL. */
static const cJSON *wa__media_of(const cJSON *msg) {
  const char *type = wj_get_string(msg, "type");
  static const char *const media[] = {"image", "audio", "video", "document", "sticker"};
  for (size_t i = 0; type != NULL && i < sizeof(media) / sizeof(media[0]); i++) {
    if (strcmp(type, media[i]) == 0) {
      const cJSON *o = wj_get(msg, type);
      return wj_get_string(o, "id") != NULL ? o : NULL;
    }
  }
  return NULL;
}

/* The sender's profile name from value.contacts, or NULL. */
static const char *wa__profile_name(const cJSON *value, const char *wa_id) {
  const cJSON *contacts = wj_get_array(value, "contacts"), *c;
  cJSON_ArrayForEach(c, contacts) {
    const char *id = wj_get_string(c, "wa_id");
    if (id != NULL && strcmp(id, wa_id) == 0) return wj_get_string(wj_get(c, "profile"), "name");
  }
  return NULL;
}

/* Fills text and metadata for the message's type. text_buf holds composed text. */
static const char *wa__text(const cJSON *msg, const char *type, json_t *meta, const char **reply_to, char *text_buf,
                            size_t text_len) {
  const cJSON *obj = wj_get(msg, type);
  if (strcmp(type, "text") == 0) return wj_get_string(obj, "body");
  if (strcmp(type, "image") == 0 || strcmp(type, "video") == 0 || strcmp(type, "document") == 0)
    return wj_get_string(obj, "caption");
  if (strcmp(type, "audio") == 0) {
    if (wj_is_true(wj_get(obj, "voice"))) json_object_set_new(meta, "voice", json_true());
    return NULL;
  }
  if (strcmp(type, "sticker") == 0) {
    json_object_set_new(meta, "sticker", json_true());
    if (wj_is_true(wj_get(obj, "animated"))) json_object_set_new(meta, "animated", json_true());
    return NULL;
  }
  if (strcmp(type, "location") == 0) {
    const char *name = wj_get_string(obj, "name");
    const char *addr = wj_get_string(obj, "address");
    const cJSON *latitude = wj_get(obj, "latitude"), *longitude = wj_get(obj, "longitude");
    double lat = cJSON_IsNumber(latitude) ? latitude->valuedouble : 0.0;
    double lon = cJSON_IsNumber(longitude) ? longitude->valuedouble : 0.0;
    json_object_set_new(meta, "location", wj_to_jansson(obj));
    snprintf(text_buf, text_len, "Location: %s%s%s%s(%.6f, %.6f)", name != NULL ? name : "", name != NULL ? ", " : "",
             addr != NULL ? addr : "", addr != NULL ? " " : "", lat, lon);
    return text_buf;
  }
  if (strcmp(type, "interactive") == 0) {
    const char *itype = wj_get_string(obj, "type");
    const cJSON *reply = itype != NULL ? wj_get(obj, itype) : NULL;
    json_object_set_new(meta, "interactive", wj_to_jansson(obj));
    return wj_get_string(reply, "title");
  }
  if (strcmp(type, "button") == 0) {
    const cJSON *payload = wj_get(obj, "payload");
    if (payload != NULL) json_object_set_new(meta, "button_payload", wj_to_jansson(payload));
    return wj_get_string(obj, "text");
  }
  if (strcmp(type, "reaction") == 0) {
    const char *emoji = wj_get_string(obj, "emoji");
    *reply_to = wj_get_string(obj, "message_id");
    json_object_set_new(meta, "reaction", json_string(emoji != NULL ? emoji : ""));
    if (emoji == NULL || emoji[0] == '\0') {
      json_object_set_new(meta, "reaction_removed", json_true());
      return "Removed a reaction";
    }
    snprintf(text_buf, text_len, "Reacted %s", emoji);
    return text_buf;
  }
  json_object_set_new(meta, "unsupported_type", json_string(type));
  snprintf(text_buf, text_len, "(a WhatsApp %s message the help desk cannot show)", type);
  return text_buf;
}

/* Emits events[next] with whatever media was fetched. */
static void wa__emit(wa_batch *b) {
  whatsapp *w = b->w;
  const wa_event *e = &b->events[b->next];
  const cJSON *msg = e->msg;
  const char *from = wj_get_string(msg, "from");
  const char *id = wj_get_string(msg, "id");
  const char *type = wj_get_string(msg, "type");
  if (from == NULL || id == NULL || type == NULL) {
    w->host->log(w->channel, SB_LOG_WARN, "ignored a WhatsApp message without from, id or type");
    return;
  }
  char phone[64], text_buf[1024];
  snprintf(phone, sizeof(phone), "+%.60s", from);
  json_t *meta = json_pack("{s:s}", "type", type);
  const char *reply_to = wj_get_string(wj_get(msg, "context"), "id");
  sb_inbound_message in = {.struct_size = sizeof(in)};
  in.external_id = id;
  in.sender.kind = SB_IDENTITY_PHONE;
  in.sender.id = phone;
  in.sender.phone = phone;
  in.sender.name = wa__profile_name(e->value, from);
  in.timestamp_ms = wa__ts(wj_get(msg, "timestamp"));
  in.text = wa__text(msg, type, meta, &reply_to, text_buf, sizeof(text_buf));
  in.reply_to_external_id = reply_to;
  if (wj_is_true(wj_get(wj_get(msg, "context"), "forwarded"))) json_object_set_new(meta, "forwarded", json_true());
  const cJSON *mo = wa__media_of(msg);
  sb_attachment att = {0};
  if (mo != NULL) {
    json_object_set_new(meta, "media_id", json_string(wj_get_string(mo, "id")));
    const cJSON *sha256 = wj_get(mo, "sha256");
    if (sha256 != NULL) json_object_set_new(meta, "sha256", wj_to_jansson(sha256));
    att.mime_type = wj_get_string(mo, "mime_type");
    att.filename = wj_get_string(mo, "filename");
    if (b->media != NULL) {
      att.url = json_string_value(json_object_get(b->media, "url"));
      att.size = (uint64_t)json_integer_value(json_object_get(b->media, "file_size"));
      if (att.mime_type == NULL) att.mime_type = json_string_value(json_object_get(b->media, "mime_type"));
    }
    att.data = b->data;
    att.data_len = b->data_len;
    if (b->media_error[0] != '\0') json_object_set_new(meta, "media_error", json_string(b->media_error));
    if (att.url != NULL) {
      in.attachments = &att;
      in.attachment_count = 1;
    }
    if (in.text == NULL && in.attachment_count == 0) in.text = "(media that could not be downloaded)";
  }
  char *meta_text = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(12));
  in.metadata_json = meta_text;
  int64_t prev = wa_kv_int(w, "t:", from);
  if (in.timestamp_ms > prev) {
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)in.timestamp_ms);
    wa_kv_put(w, "t:", from, v);
  }
  int rc = w->host->emit_inbound(w->channel, &in, wa__committed, b);
  if (rc == SB_OK) {
    b->pending++;
  } else {
    w->host->log(w->channel, SB_LOG_WARN, "a WhatsApp message was refused by the help desk (code %d)", rc);
    /* Invalid input stays invalid; anything else (out of memory, the store
     * stopping) passes: 503, and Meta delivers the batch again. */
    if (rc != SB_EINVAL && rc != SB_EFBIG) b->failed = 1;
  }
  free(meta_text);
  json_decref(meta);
}

static void wa__media_failed(wa_batch *b, const char *what, const sb_http_client_response *res) {
  meta_graph_error e;
  char reason[META_MAX_REASON + 64];
  if (res->status != SB_OK) {
    snprintf(reason, sizeof(reason), "%s",
             res->status == SB_EFBIG ? "larger than max_media_bytes"
             : res->error != NULL    ? res->error
                                     : "no answer");
    b->media_transient = res->status != SB_EFBIG;
  } else {
    meta_parse_error(res->body, res->body_len, &e);
    meta_reason(res->http_status, &e, reason, sizeof(reason));
    if (e.found && e.code == 190) wa_auth_failed(b->w);
    b->media_transient = meta_classify(META_API_WHATSAPP, res->http_status, &e) == META_RETRY;
  }
  snprintf(b->media_error, sizeof(b->media_error), "%s: %s", what, reason);
  b->w->host->log(b->w->channel, SB_LOG_WARN, "WhatsApp media not downloaded (%s)", b->media_error);
}

static void wa__downloaded(void *arg, const sb_http_client_response *res) {
  wa_batch *b = arg;
  b->waiting = 0;
  b->media_stage = 2;
  if (res->status == SB_ECANCELED) {
    b->failed = 1;
    b->next = b->n;
    wa__maybe_finish(b);
    return;
  }
  if (res->status == SB_OK && res->http_status == 200) {
    b->data = malloc(res->body_len + 1);
    if (b->data != NULL) {
      memcpy(b->data, res->body, res->body_len);
      b->data_len = res->body_len;
    }
  } else {
    wa__media_failed(b, "the media download failed", res);
  }
  wa__step(b);
}

static void wa__media_url(void *arg, const sb_http_client_response *res) {
  wa_batch *b = arg;
  whatsapp *w = b->w;
  b->waiting = 0;
  b->media_stage = 1;
  if (res->status == SB_ECANCELED) {
    b->failed = 1;
    b->next = b->n;
    wa__maybe_finish(b);
    return;
  }
  if (res->status == SB_OK && res->http_status == 200) {
    b->media = json_loadb(res->body, res->body_len, 0, NULL);
    const char *url = json_string_value(json_object_get(b->media, "url"));
    json_int_t size = json_integer_value(json_object_get(b->media, "file_size"));
    if (url == NULL) {
      snprintf(b->media_error, sizeof(b->media_error), "the media lookup answered without a url");
    } else if (w->max_media_bytes > 0 && size > w->max_media_bytes) {
      snprintf(b->media_error, sizeof(b->media_error), "the media is %lld bytes, over max_media_bytes (%lld)",
               (long long)size, (long long)w->max_media_bytes);
    } else {
      b->waiting = 1;
      if (wa_graph(w, "GET", url, NULL, w->max_media_bytes > 0 ? (uint64_t)w->max_media_bytes : 0, wa__downloaded, b) !=
          NULL)
        return;
      b->waiting = 0;
      snprintf(b->media_error, sizeof(b->media_error), "the host did not take the media download");
    }
    b->media_stage = 2;
  } else {
    wa__media_failed(b, "the media lookup failed", res);
    b->media_stage = 2;
  }
  wa__step(b);
}

/* Whether events[next], whose media failed for a reason that may pass, is
 * young enough to be held for Meta's redelivery (logged), not stored
 * without its media. */
static int wa__hold(wa_batch *b) {
  const cJSON *msg = b->events[b->next].msg;
  int64_t ts = wa__ts(wj_get(msg, "timestamp"));
  if (ts <= 0 || b->w->host->now_ms() - ts >= WA_MEDIA_HOLD_MS) return 0;
  b->w->host->log(b->w->channel, SB_LOG_WARN,
                  "WhatsApp message %.100s not stored yet: %s; answered 503 so Meta delivers it again",
                  wj_get_string(msg, "id") ? wj_get_string(msg, "id") : "?", b->media_error);
  return 1;
}

/* Works through the batch from b->next; returns when a media call is in flight or all is done. */
static void wa__step(wa_batch *b) {
  whatsapp *w = b->w;
  b->walking = 1;
  while (b->next < b->n && !b->waiting) {
    if (w->closing) {
      b->failed = 1;
      b->next = b->n;
      break;
    }
    const cJSON *mo = wa__media_of(b->events[b->next].msg);
    if (mo != NULL && b->media_stage == 0) {
      char url[800];
      size_t len = (size_t)snprintf(url, sizeof(url), "%s/", w->base);
      if (meta_urlencode(url, sizeof(url), len, wj_get_string(mo, "id")) < sizeof(url)) {
        b->waiting = 1;
        if (wa_graph(w, "GET", url, NULL, 64 * 1024, wa__media_url, b) != NULL) break;
        b->waiting = 0;
        snprintf(b->media_error, sizeof(b->media_error), "the host did not take the media lookup");
      } else {
        snprintf(b->media_error, sizeof(b->media_error), "the media id is too long to look up");
      }
      b->media_stage = 2;
    }
    if (b->media_transient && wa__hold(b)) {
      b->failed = 1; /* 503: Meta delivers the batch again */
    } else {
      wa__emit(b);
    }
    wa__media_reset(b);
    b->next++;
  }
  b->walking = 0;
  if (b->next >= b->n) { /* every message handed over (the host copies what it keeps): */
    wj_free(b->root); /* the body is not needed while the commits run */
    b->root = NULL;
  }
  wa__maybe_finish(b);
}

static int wa__webhook(whatsapp *w, const sb_http_request *req, sb_responder *r) {
  char why[200];
  int bad = meta_check_signature(w->host, req, w->app_secret, why, sizeof(why));
  if (bad != 0) {
    w->host->log(w->channel, SB_LOG_WARN, "refused a webhook: %s", why);
    meta_answer(w->host, r, bad, why);
    return SB_OK;
  }
  cJSON *root = wj_parse(req->body, req->body_len, 0, NULL, 0);
  const cJSON *entries = wj_get_array(root, "entry");
  if (entries == NULL) { /* also when root is not an object, or NULL */
    wj_free(root);
    meta_answer(w->host, r, 400, "the body is not a Meta webhook: an object with an \"entry\" array is expected");
    return SB_OK;
  }
  size_t total = 0;
  const cJSON *entry, *ch;
  cJSON_ArrayForEach(entry, entries) {
    const cJSON *changes = wj_get_array(entry, "changes");
    cJSON_ArrayForEach(ch, changes) total += wj_size(wj_get(wj_get(ch, "value"), "messages"));
  }
  wa_batch *b = calloc(1, sizeof(*b) + total * sizeof(b->events[0]));
  if (b == NULL) {
    wj_free(root);
    meta_answer(w->host, r, 503, "out of memory; deliver it again");
    return SB_OK;
  }
  cJSON_ArrayForEach(entry, entries) {
    const cJSON *changes = wj_get_array(entry, "changes");
    cJSON_ArrayForEach(ch, changes) {
      const char *field = wj_get_string(ch, "field");
      const cJSON *value = wj_get(ch, "value");
      const char *pn = wj_get_string(wj_get(value, "metadata"), "phone_number_id");
      if (field == NULL || strcmp(field, "messages") != 0 || !cJSON_IsObject(value)) continue;
      if (pn != NULL && strcmp(pn, w->phone_number_id) != 0) {
        w->host->log(w->channel, SB_LOG_DEBUG, "ignored a change for another phone number");
        continue;
      }
      const cJSON *statuses = wj_get_array(value, "statuses"), *msgs = wj_get_array(value, "messages");
      const cJSON *errors = wj_get_array(value, "errors"), *item;
      cJSON_ArrayForEach(item, statuses) wa__status(w, item);
      cJSON_ArrayForEach(item, msgs) {
        if (!cJSON_IsObject(item)) continue;
        b->events[b->n].msg = item;
        b->events[b->n].value = value;
        b->n++;
      }
      cJSON_ArrayForEach(item, errors) {
        const char *title = wj_get_string(item, "title");
        w->host->log(w->channel, SB_LOG_WARN, "WhatsApp reported an error: %s", title != NULL ? title : "(no title)");
      }
    }
  }
  b->w = w;
  b->r = r;
  b->root = root;
  w->batches++;
  b->next_open = w->open;
  b->prev_open = &w->open;
  if (w->open != NULL) w->open->prev_open = &b->next_open;
  w->open = b;
  wa__step(b);
  return SB_OK;
}

static int wa__receive(void *instance, const sb_http_request *req, sb_responder *r) {
  whatsapp *w = instance;
  if (meta_receive_front(w->host, req, r, w->verify_token, WA_MAX_BODY, w->closing)) return SB_OK;
  return wa__webhook(w, req, r);
}

/* --- lifecycle ------------------------------------------------------------------------ */

static int wa__validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  static const char *const ids[] = {"phone_number_id", "waba_id"};
  for (size_t i = 0; i < 2; i++) {
    const char *v = host->config_get(cfg, ids[i]);
    if (v == NULL || v[0] == '\0' || strspn(v, "0123456789") != strlen(v)) {
      snprintf(err, errlen, "credential \"%s\" must be a numeric id from the app's WhatsApp settings", ids[i]);
      return SB_EINVAL;
    }
  }
  static const char *const secrets[] = {"access_token", "app_secret", "verify_token"};
  if (meta_validate_common(host, cfg, secrets, 3, err, errlen) != SB_OK) return SB_EINVAL;
  if (host->config_int(cfg, "max_media_bytes", 0) < 0) {
    snprintf(err, errlen, "setting \"max_media_bytes\" must be 0 (the host's limit) or more");
    return SB_EINVAL;
  }
  return SB_OK;
}

static int wa__create(const sb_host *host, sb_channel *channel, const sb_config *cfg, void **instance, char *err,
                      size_t errlen) {
  if (wa__validate(host, cfg, err, errlen) != SB_OK) return SB_EINVAL;
  whatsapp *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
  }
  w->host = host;
  w->channel = channel;
  w->phone_number_id = host->config_get(cfg, "phone_number_id");
  w->waba_id = host->config_get(cfg, "waba_id");
  w->token = host->config_get(cfg, "access_token");
  w->app_secret = host->config_get(cfg, "app_secret");
  w->verify_token = host->config_get(cfg, "verify_token");
  w->template_name = host->config_get(cfg, "reengagement_template");
  if (w->template_name != NULL && w->template_name[0] == '\0') w->template_name = NULL;
  w->template_language = host->config_get(cfg, "reengagement_language");
  w->max_media_bytes = host->config_int(cfg, "max_media_bytes", 16777216);
  w->timeout_ms = (uint32_t)host->config_int(cfg, "request_timeout", 20000);
  snprintf(w->base, sizeof(w->base), "%s", host->config_get(cfg, "graph_api_base"));
  size_t bl = strlen(w->base);
  while (bl > 0 && w->base[bl - 1] == '/') w->base[--bl] = '\0';
  *instance = w;
  return SB_OK;
}

/* disconnect(): answers open batches 503 (Meta delivers again; the router
 * deduplicates) and completes waiting sends as retries, at once. The
 * cancelled calls' and the commits' callbacks then only free what is left. */
static void wa__disconnect(void *instance) {
  whatsapp *w = instance;
  w->closing = 1;
  for (wa_batch *b = w->open; b != NULL; b = b->next_open) {
    if (b->answered) continue;
    b->answered = 1;
    b->failed = 1;
    meta_answer(w->host, b->r, 503, "the channel is closing; deliver it again");
  }
  wa_send_cancel_all(w);
}

static void wa__destroy(void *instance) {
  whatsapp *w = instance;
  if (w->batches > 0 || w->calls > 0) {
    w->host->log(w->channel, SB_LOG_WARN, "destroyed with %d batches and %d calls still open", w->batches, w->calls);
  }
  free(w);
}

static const char *const wa_attachment_types[] = {"image/jpeg", "image/png",    "audio/",     "video/mp4",
                                                  "video/3gpp", "application/", "text/plain", NULL};

static const sb_plugin wa_plugin = {
    SB_PLUGIN_INIT,
    .id = "whatsapp",
    .name = "WhatsApp Business",
    .publisher = "Switchboard",
    .version = WA_VERSION,
    .description = "Connects a WhatsApp Business phone number through Meta's Cloud API and webhooks.",
    .logo_url = NULL,
    .credentials = wa_schema,
    .caps = {.thread_model = SB_THREAD_PER_CONTACT,
             .flags = SB_CAP_ATTACHMENTS | SB_CAP_REPLY_TO | SB_CAP_DELIVERY_RECEIPTS | SB_CAP_READ_RECEIPTS |
                      SB_CAP_START_CONVERSATION | SB_CAP_TEMPLATES,
             .attachment_types = wa_attachment_types,
             .max_attachments = 10,
             .max_attachment_bytes = 100u * 1024 * 1024,
             .window_seconds = 24u * 3600,
             .extended_window_seconds = 0,
             .extended_window_tag = NULL,
             .window_flags = SB_WINDOW_TEMPLATE_OUTSIDE | SB_WINDOW_AUTOMATIC_STRICT},
    .validate = wa__validate,
    .create = wa__create,
    .connect = wa_connect,
    .receive = wa__receive,
    .send = wa_send,
    .disconnect = wa__disconnect,
    .destroy = wa__destroy,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "the whatsapp channel needs plugin ABI %d.x", SB_ABI_MAJOR);
    return SB_EVERSION;
  }
  *out = &wa_plugin;
  return SB_OK;
}
