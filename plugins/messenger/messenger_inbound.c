/* messenger_inbound.c — the Messenger channel's webhooks in: verification,
 * signature, and each batch's events in order (a customer's message gets
 * its sender's profile and its attachments' bytes before it is emitted;
 * echoes, postbacks and receipts), answered once every message is
 * committed. */
#include "messenger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "webhook_json.h"

#define MSGR_MAX_BODY ((size_t)4 * 1024 * 1024)
#define MSGR_PROFILE_TTL_MS (24LL * 3600 * 1000)
#define MSGR_MAX_ATTACHMENT_BYTES ((uint64_t)25 * 1024 * 1024)
/* A message whose attachment could not be downloaded for a reason that may
 * pass is held (503, Meta delivers the batch again) while younger than this;
 * older, it is stored with the attachment's URL only. */
#define MSGR_ATTACHMENT_HOLD_MS (60LL * 60 * 1000)

/* --- inbound: one batch ---------------------------------------------------------- */

typedef struct msgr_event {
  const cJSON *ev; /* borrowed from the batch's root */
  int standby;
} msgr_event;

/* One webhook POST being worked through. */
typedef struct msgr_batch {
  struct msgr_batch *next_open, **prev_open; /* in m->open; prev_open points at this one */
  int answered;                 /* disconnect() answered it 503 already */
  messenger *m;
  sb_responder *r;
  cJSON *root; /* the webhook body (cJSON: the cheaper parse on the loop thread) */
  size_t n, next;
  int pending;     /* commits not yet done */
  int failed;      /* a commit failed or the channel closed: answer 503 */
  int walking;     /* msgr__step is running (a commit done must not finish the batch) */
  int waiting;     /* a profile lookup or a download is in flight */
  int profiled;    /* events[next]'s profile is known (or could not be looked up) */
  json_t *profile; /* the looked-up profile for events[next], or NULL */
  int att_transient; /* att_error's failure may pass (no answer, 5xx, 429) */
  /* events[next]'s attachments downloaded so far (CDN URLs expire) */
  size_t fetched;
  /* Not zeroed when the batch is made (most webhooks have no attachment,
   * and these are most of its size): att_error is set to "" and a slot of
   * files is cleared by msgr__file_slot when fetched first counts it. */
  char att_error[META_MAX_REASON + 96]; /* the first failed download's reason, or "" */
  struct {
    char *data;
    size_t len;
    char mime[128]; /* the download's Content-Type, "" when none */
  } files[MSGR_MAX_ATTACHMENTS];
  msgr_event events[]; /* in the batch's allocation */
} msgr_batch;

static void msgr__step(msgr_batch *b);

/* Counts the next of events[next]'s attachments as fetched and returns its
 * slot, cleared (empty: no data, no type). */
static size_t msgr__file_slot(msgr_batch *b) {
  size_t i = b->fetched++;
  b->files[i].data = NULL;
  b->files[i].len = 0;
  b->files[i].mime[0] = '\0';
  return i;
}

/* Forgets what was gathered for events[next]: its profile and downloads. */
static void msgr__event_reset(msgr_batch *b) {
  json_decref(b->profile);
  b->profile = NULL;
  b->profiled = 0;
  for (size_t i = 0; i < b->fetched; i++) free(b->files[i].data);
  b->fetched = 0;
  b->att_error[0] = '\0';
  b->att_transient = 0;
}

/* Answers the webhook once every event is handled and every commit done. */
static void msgr__maybe_finish(msgr_batch *b) {
  if (b->walking || b->waiting || b->next < b->n || b->pending > 0) return;
  messenger *m = b->m;
  if (b->answered) {
    /* disconnect() answered 503 already */
  } else if (b->failed) {
    meta_answer(m->host, b->r, 503, "not every message could be stored; deliver the batch again");
  } else {
    meta_answer(m->host, b->r, 200, NULL);
  }
  /* unlinked in constant time: under load every connection may have one open */
  *b->prev_open = b->next_open;
  if (b->next_open != NULL) b->next_open->prev_open = b->prev_open;
  m->batches--;
  msgr__event_reset(b);
  wj_free(b->root);
  free(b);
}

static void msgr__committed(void *arg, int status, const char *message_id, int duplicate) {
  msgr_batch *b = arg;
  (void)message_id;
  (void)duplicate;
  if (status != SB_OK) {
    b->failed = 1;
    b->m->host->log(b->m->channel, SB_LOG_WARN, "a Messenger message could not be stored (code %d)", status);
  }
  b->pending--;
  msgr__maybe_finish(b);
}

/* The MIME type an attachment type stands for (a family when the real type
 * is unknown: Messenger gives only a CDN URL). */
static const char *msgr__mime(const char *type) {
  if (type == NULL) return NULL;
  if (strcmp(type, "image") == 0 || strcmp(type, "sticker") == 0) return "image/*";
  if (strcmp(type, "audio") == 0) return "audio/*";
  if (strcmp(type, "video") == 0) return "video/*";
  if (strcmp(type, "file") == 0) return "application/octet-stream";
  return NULL;
}

/* Sets key in *meta, the message's metadata object, made on first use:
 * most messages have none. */
static void msgr__meta_set(json_t **meta, const char *key, json_t *value) {
  if (*meta == NULL) *meta = json_object();
  json_object_set_new(*meta, key, value); /* NULL meta: value is freed */
}

/* The URL of an attachment that is a file (image, audio, video, file,
 * sticker), or NULL for a shared link, a location or one without a URL. */
static const char *msgr__file_url(const cJSON *it) {
  const char *type = wj_get_string(it, "type");
  if (type == NULL || strcmp(type, "fallback") == 0 || strcmp(type, "location") == 0) return NULL;
  return wj_get_string(wj_get(it, "payload"), "url");
}

/* Reads message.attachments[] into a (at most MSGR_MAX_ATTACHMENTS) and
 * notes stickers and fallbacks in *meta. Returns the count. */
static size_t msgr__attachments(const cJSON *msg, sb_attachment *a, json_t **meta) {
  size_t n = 0;
  const cJSON *list = wj_get_array(msg, "attachments"), *it;
  if (list == NULL) return 0; /* most messages: no array to start */
  json_t *types = json_array();
  cJSON_ArrayForEach(it, list) {
    if (n == MSGR_MAX_ATTACHMENTS) break;
    const char *type = wj_get_string(it, "type");
    const cJSON *payload = wj_get(it, "payload");
    const char *url = wj_get_string(payload, "url");
    int64_t sticker_id;
    int has_sticker_id = wj_integer(wj_get(payload, "sticker_id"), &sticker_id);
    if (type == NULL) continue;
    json_array_append_new(types, json_string(type));
    if (has_sticker_id || strcmp(type, "sticker") == 0) {
      /* Both forms: an image with payload.sticker_id, and the newer sticker type. */
      if (has_sticker_id)
        msgr__meta_set(meta, "sticker_id", json_integer((json_int_t)sticker_id));
      else
        msgr__meta_set(meta, "sticker", json_true());
    }
    int fallback = strcmp(type, "fallback") == 0, location = strcmp(type, "location") == 0;
    if (fallback || location) { /* a shared link or place, not a file: its title and URL, either level */
      const char *title = wj_get_string(it, "title"), *link = url != NULL ? url : wj_get_string(it, "url");
      if (title == NULL) title = wj_get_string(payload, "title");
      if (title != NULL) msgr__meta_set(meta, fallback ? "fallback_title" : "location_title", json_string(title));
      if (link != NULL) msgr__meta_set(meta, fallback ? "fallback_url" : "location_url", json_string(link));
      const cJSON *coords = wj_get(payload, "coordinates");
      if (location && coords != NULL) msgr__meta_set(meta, "location", wj_to_jansson(coords));
      continue;
    }
    if (msgr__file_url(it) == NULL) continue;
    memset(&a[n], 0, sizeof(a[n]));
    a[n].url = url;
    a[n].mime_type = msgr__mime(type);
    n++;
  }
  if (json_array_size(types) > 0)
    msgr__meta_set(meta, "attachment_types", types);
  else
    json_decref(types);
  return n;
}

/* True when text is the consent keyword (any case, surrounding blanks ignored). */
static int msgr__is_keyword(const messenger *m, const char *text) {
  if (text == NULL || m->consent_keyword == NULL || m->consent_keyword[0] == '\0') return 0;
  while (*text == ' ' || *text == '\t' || *text == '\n') text++;
  size_t n = strlen(text), k = strlen(m->consent_keyword);
  while (n > 0 &&
         (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' || text[n - 1] == '.' || text[n - 1] == '!'))
    n--;
  return n == k && strncasecmp(text, m->consent_keyword, k) == 0;
}

/* Consent bookkeeping for one customer event: records consent given by
 * the postback or the keyword, and asks (explicit) or informs (implicit)
 * once. Also sends the plugin's instant reply once. Both are automatic
 * messages, which never leave the 24-hour window: for an event written
 * longer ago (a late delivery) they wait for the person's next message. */
static void msgr__consent_and_greet(messenger *m, const char *psid, const char *text, const char *payload,
                                    int64_t written_ms) {
  int in_window = written_ms <= 0 || m->host->now_ms() - written_ms < MSGR_WINDOW_MS;
  if (m->consent_mode != MSGR_CONSENT_OFF && msgr_kv_int(m, "c:", psid) == 0) {
    int given = m->consent_mode == MSGR_CONSENT_IMPLICIT ||
                (payload != NULL && strcmp(payload, MSGR_CONSENT_PAYLOAD) == 0) || msgr__is_keyword(m, text);
    if (given) {
      char v[32];
      snprintf(v, sizeof(v), "%lld", (long long)m->host->now_ms());
      msgr_kv_put(m, "c:", psid, v);
      m->host->log(m->channel, SB_LOG_INFO, "consent recorded for a contact (%s)",
                   m->consent_mode == MSGR_CONSENT_IMPLICIT ? "implicit" : "explicit");
      /* Replies held for this consent go now rather than at the hold's end. */
      if (SB_HOST_HAS(m->host, send_release)) m->host->send_release(m->channel, SB_IDENTITY_PSID, psid);
    }
    if (in_window && msgr_kv_int(m, "q:", psid) == 0 && !(given && m->consent_mode == MSGR_CONSENT_EXPLICIT)) {
      msgr_kv_put(m, "q:", psid, "1");
      msgr_send_notice(m, psid, m->consent_text, m->consent_mode == MSGR_CONSENT_EXPLICIT);
    }
  }
  if (in_window && m->instant_reply != NULL && m->instant_reply[0] != '\0' && msgr_kv_int(m, "g:", psid) == 0) {
    msgr_kv_put(m, "g:", psid, "1");
    msgr_send_notice(m, psid, m->instant_reply, 0);
  }
}

/* "first last", "first" or "last" into out, cut to fit at a character
 * boundary; 0 when neither is there or both are empty. */
static int msgr__full_name(char *out, size_t size, const char *first, const char *last) {
  size_t n = 0;
  const char *parts[2] = {first, last};
  for (int i = 0; i < 2; i++) {
    if (parts[i] == NULL || parts[i][0] == '\0') continue;
    if (n > 0 && n + 1 < size) out[n++] = ' ';
    size_t len = strlen(parts[i]);
    if (len > size - 1 - n) {
      len = size - 1 - n;
      while (len > 0 && ((unsigned char)parts[i][len] & 0xc0) == 0x80) len--;
    }
    memcpy(out + n, parts[i], len);
    n += len;
  }
  while (n > 0 && out[n - 1] == ' ') n--; /* a last name that did not fit at all */
  out[n] = '\0';
  return n > 0;
}

/* Emits one message, postback or echo event. Returns SB_OK when the router
 * took it (a commit is then pending), 1 when there was nothing to emit. */
static int msgr__emit(msgr_batch *b, const msgr_event *e, const json_t *profile) {
  messenger *m = b->m;
  const cJSON *ev = e->ev;
  const char *sender = wj_get_string(wj_get(ev, "sender"), "id");
  const char *recipient = wj_get_string(wj_get(ev, "recipient"), "id");
  const cJSON *msg = wj_get(ev, "message");
  const cJSON *postback = wj_get(ev, "postback");
  int64_t ts = 0;
  wj_integer(wj_get(ev, "timestamp"), &ts);
  int echo = wj_is_true(wj_get(msg, "is_echo"));
  sb_inbound_message in = {.struct_size = sizeof(in)};
  sb_attachment att[MSGR_MAX_ATTACHMENTS];
  json_t *meta = NULL; /* made by msgr__meta_set when something is noted */
  char synth_id[256], name[256] = "";
  const char *payload = NULL;
  in.sender.kind = SB_IDENTITY_PSID;
  in.sender.id = echo ? recipient : sender;
  in.timestamp_ms = ts;
  if (msg != NULL) {
    in.external_id = wj_get_string(msg, "mid");
    in.text = wj_get_string(msg, "text");
    in.reply_to_external_id = wj_get_string(wj_get(msg, "reply_to"), "mid");
    in.attachment_count = msgr__attachments(msg, att, &meta);
    in.attachments = att;
    for (size_t i = 0; e == &b->events[b->next] && i < in.attachment_count && i < b->fetched; i++) {
      att[i].data = b->files[i].data;
      att[i].data_len = b->files[i].data != NULL ? b->files[i].len : 0;
      if (b->files[i].mime[0] != '\0') att[i].mime_type = b->files[i].mime;
    }
    if (b->att_error[0] != '\0') msgr__meta_set(&meta, "attachment_error", json_string(b->att_error));
    const cJSON *qr = wj_get(msg, "quick_reply");
    if (qr != NULL) {
      payload = wj_get_string(qr, "payload");
      msgr__meta_set(&meta, "quick_reply_payload", wj_to_jansson(wj_get(qr, "payload")));
    }
    if (echo) {
      in.flags |= SB_IN_ECHO;
      const cJSON *app = wj_get(msg, "app_id");
      if (app != NULL) msgr__meta_set(&meta, "app_id", wj_to_jansson(app));
    }
  } else {
    in.external_id = wj_get_string(postback, "mid");
    if (in.external_id == NULL && sender != NULL) {
      snprintf(synth_id, sizeof(synth_id), "postback:%s:%lld", sender, (long long)ts);
      in.external_id = synth_id;
    }
    in.text = wj_get_string(postback, "title");
    payload = wj_get_string(postback, "payload");
    msgr__meta_set(&meta, "postback", json_true());
    if (payload != NULL) msgr__meta_set(&meta, "postback_payload", json_string(payload));
  }
  if (e->standby) {
    in.flags |= SB_IN_NO_AUTOREPLY; /* another app owns the conversation */
    msgr__meta_set(&meta, "standby", json_true());
  }
  if (profile != NULL) {
    const char *first = json_string_value(json_object_get(profile, "first_name"));
    const char *last = json_string_value(json_object_get(profile, "last_name"));
    if (msgr__full_name(name, sizeof(name), first, last)) in.sender.name = name;
    in.sender.avatar_url = json_string_value(json_object_get(profile, "profile_pic"));
  }
  char *meta_text = json_object_size(meta) > 0 ? json_dumps(meta, JSON_COMPACT) : NULL;
  in.metadata_json = meta_text;
  if ((in.text == NULL || in.text[0] == '\0') && in.attachment_count == 0) {
    /* A sticker-only, location or link message still deserves a line. */
    in.text = json_object_get(meta, "location") != NULL       ? "(location)"
              : json_object_get(meta, "fallback_url") != NULL ? json_string_value(json_object_get(meta, "fallback_url"))
                                                              : "(message without text)";
  }
  int rc = 1;
  if (in.external_id != NULL && in.sender.id != NULL) {
    rc = m->host->emit_inbound(m->channel, &in, msgr__committed, b);
    if (rc == SB_OK) {
      b->pending++;
    } else {
      m->host->log(m->channel, SB_LOG_WARN, "a Messenger event was refused by the help desk (code %d)", rc);
      /* Invalid input stays invalid; anything else (out of memory, the
       * store stopping) passes: 503, and Meta delivers the batch again. */
      if (rc != SB_EINVAL && rc != SB_EFBIG) b->failed = 1;
      rc = 1;
    }
    if (!echo && !e->standby) msgr__consent_and_greet(m, in.sender.id, in.text, payload, in.timestamp_ms);
  }
  free(meta_text);
  json_decref(meta);
  return rc;
}

/* Emits a delivery or read watermark. */
static void msgr__receipt(messenger *m, const cJSON *ev, const cJSON *r, uint32_t status) {
  const char *psid = wj_get_string(wj_get(ev, "sender"), "id");
  int64_t watermark;
  if (psid == NULL || !wj_integer(wj_get(r, "watermark"), &watermark)) return;
  sb_status_update u = {.struct_size = sizeof(u),
                        .status = status,
                        .recipient_id = psid,
                        .timestamp_ms = watermark,
                        .flags = SB_STATUS_WATERMARK,
                        .recipient_kind = SB_IDENTITY_PSID};
  if (m->host->emit_status(m->channel, &u) != SB_OK) {
    m->host->log(m->channel, SB_LOG_WARN, "a Messenger receipt was refused by the help desk");
  }
  /* A delivery also names its messages: mark those by id too, so a help
   * desk clock ahead of Meta's cannot leave them out of the watermark. */
  const cJSON *it;
  cJSON_ArrayForEach(it, wj_get_array(r, "mids")) {
    const char *mid = wj_string(it);
    if (mid == NULL) continue;
    sb_status_update one = {
        .struct_size = sizeof(one), .status = status, .external_id = mid, .timestamp_ms = u.timestamp_ms};
    m->host->emit_status(m->channel, &one);
  }
}

/* True when the echo is of a message this plugin sent itself (our metadata):
 * the help desk already has it. */
static int msgr__own_echo(const cJSON *msg) {
  const char *md = wj_get_string(msg, "metadata");
  return md != NULL && strncmp(md, MSGR_METADATA_PREFIX, strlen(MSGR_METADATA_PREFIX)) == 0;
}

/* The profile cache is a table of MSGR_PROFILE_CACHE slots indexed by a
 * hash of the PSID: a webhook compares its sender with the few PSIDs in
 * MSGR_PROFILE_PROBES slots, not with every one cached. */
#define MSGR_PROFILE_PROBES 8

static size_t msgr__profile_hash(const char *psid) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *)psid; *c != '\0'; c++) h = (h ^ *c) * 16777619u;
  return h;
}

/* Keeps fields (a new reference) for psid: in its own slot if it has one,
 * else in a free slot among its probes, else in the one looked up longest ago. */
static void msgr__keep_profile(messenger *m, const char *psid, json_t *fields) {
  if (strlen(psid) >= sizeof(m->profiles[0].psid)) return;
  int64_t now = m->host->now_ms();
  size_t h = msgr__profile_hash(psid);
  msgr_profile *slot = NULL;
  for (size_t i = 0; i < MSGR_PROFILE_PROBES; i++) {
    msgr_profile *p = &m->profiles[(h + i) % MSGR_PROFILE_CACHE];
    if (p->at != 0 && strcmp(p->psid, psid) == 0) {
      slot = p;
      break;
    }
    if (slot == NULL || (slot->at != 0 && (p->at == 0 || p->at < slot->at))) slot = p;
  }
  json_decref(slot->fields);
  snprintf(slot->psid, sizeof(slot->psid), "%s", psid);
  slot->at = now;
  slot->fields = json_incref(fields);
}

static void msgr__profile_done(void *arg, const sb_http_client_response *res) {
  msgr_batch *b = arg;
  messenger *m = b->m;
  b->waiting = 0;
  const char *psid = wj_get_string(wj_get(b->events[b->next].ev, "sender"), "id");
  if (res->status == SB_ECANCELED) {
    b->failed = 1;
    b->next = b->n; /* the channel is closing: stop here, Meta delivers again */
    msgr__maybe_finish(b);
    return;
  }
  json_t *profile = NULL;
  if (res->status == SB_OK && res->http_status == 200) {
    profile = json_loadb(res->body, res->body_len, 0, NULL);
    if (!json_is_object(profile)) {
      json_decref(profile);
      profile = NULL;
    }
  } else {
    meta_graph_error e;
    char reason[META_MAX_REASON + 64];
    meta_parse_error(res->body, res->body_len, &e);
    meta_reason(res->http_status, &e, reason, sizeof(reason));
    /* 2018218 and friends: no profile for this person; the PSID stays the identity. */
    m->host->log(m->channel, SB_LOG_INFO, "no profile for a Messenger sender, keeping the page-scoped id: %s",
                 res->status == SB_OK ? reason : (res->error != NULL ? res->error : "no answer"));
    if (e.found && e.code == 190 && !m->auth_failed) {
      m->auth_failed = 1;
      m->host->set_state(m->channel, SB_STATE_AUTH_FAILED,
                         "the page access token was refused (Graph error 190); update page_access_token");
    }
  }
  /* Cache what we learned, also a miss, so a burst does not repeat lookups. */
  json_t *cache = json_pack("{s:I}", "at", (json_int_t)m->host->now_ms());
  if (profile != NULL) {
    const char *keys[] = {"first_name", "last_name", "profile_pic"};
    for (size_t i = 0; i < 3; i++) {
      const json_t *v = json_object_get(profile, keys[i]);
      if (json_is_string(v)) json_object_set_new(cache, keys[i], json_deep_copy(v));
    }
  }
  if (cache != NULL && psid != NULL) msgr__keep_profile(m, psid, cache);
  json_decref(profile);
  b->profile = cache;
  msgr__step(b);
}

/* Finds a fresh cached profile for psid: a new reference, or NULL. The
 * cache lives in memory: profile pictures' URLs expire, so nothing is
 * gained by keeping profiles across restarts. */
static json_t *msgr__cached_profile(const messenger *m, const char *psid) {
  int64_t now = m->host->now_ms();
  size_t h = msgr__profile_hash(psid);
  for (size_t i = 0; i < MSGR_PROFILE_PROBES; i++) {
    const msgr_profile *p = &m->profiles[(h + i) % MSGR_PROFILE_CACHE];
    if (p->at != 0 && now - p->at <= MSGR_PROFILE_TTL_MS && strcmp(p->psid, psid) == 0) return json_incref(p->fields);
  }
  return NULL;
}

/* Starts looking sender's profile up; 1 when the lookup is in flight. */
static int msgr__lookup(msgr_batch *b, const char *sender) {
  messenger *m = b->m;
  char url[1024];
  size_t len = (size_t)snprintf(url, sizeof(url), "%s/", m->base);
  len = meta_urlencode(url, sizeof(url), len, sender);
  b->waiting = 1;
  if (len < sizeof(url) &&
      (size_t)snprintf(url + len, sizeof(url) - len, "?fields=first_name,last_name,profile_pic") < sizeof(url) - len &&
      msgr_graph(m, "GET", url, NULL, msgr__profile_done, b) != NULL)
    return 1;
  b->waiting = 0;
  m->host->log(m->channel, SB_LOG_WARN, "could not start the profile lookup; keeping the page-scoped id");
  return 0;
}

static void msgr__downloaded(void *arg, const sb_http_client_response *res) {
  msgr_batch *b = arg;
  messenger *m = b->m;
  b->waiting = 0;
  if (res->status == SB_ECANCELED) {
    b->failed = 1;
    b->next = b->n; /* the channel is closing: stop here, Meta delivers again */
    msgr__maybe_finish(b);
    return;
  }
  size_t i = msgr__file_slot(b);
  if (res->status == SB_OK && res->http_status == 200 && (b->files[i].data = malloc(res->body_len + 1)) != NULL) {
    memcpy(b->files[i].data, res->body, res->body_len);
    b->files[i].len = res->body_len;
    const char *ct = meta_response_header(res, "content-type");
    size_t n = ct != NULL ? strcspn(ct, "; ") : 0; /* the type without its parameters */
    if (n > 0 && n < sizeof(b->files[i].mime) && memchr(ct, '/', n) != NULL)
      snprintf(b->files[i].mime, sizeof(b->files[i].mime), "%.*s", (int)n, ct);
  } else if (b->att_error[0] == '\0') {
    char reason[META_MAX_REASON];
    if (res->status == SB_OK)
      snprintf(reason, sizeof(reason), "HTTP %d", res->http_status);
    else
      snprintf(reason, sizeof(reason), "%s", res->status == SB_EFBIG ? "larger than 25 MiB"
                                             : res->error != NULL   ? res->error
                                                                    : "no answer");
    /* no answer, a refused or failed connection, 5xx, throttling; not a
     * malformed link, one refused for good, or one too large */
    b->att_transient = res->status == SB_OK ? res->http_status >= 500 || res->http_status == 429
                                            : res->status != SB_EFBIG && res->status != SB_EINVAL &&
                                                  res->status != SB_EACCES && res->status != SB_ENOMEM;
    snprintf(b->att_error, sizeof(b->att_error), "attachment %zu could not be downloaded: %s", i + 1, reason);
    m->host->log(m->channel, SB_LOG_WARN, "Messenger %s", b->att_error);
  }
  msgr__step(b);
}

/* Starts downloading events[next]'s next file attachment (CDN URLs expire,
 * so the help desk keeps the bytes). Returns 1 when one is in flight, 0
 * when every one was tried. */
static int msgr__download_next(msgr_batch *b, const cJSON *msg) {
  messenger *m = b->m;
  const cJSON *it;
  size_t k = 0;
  cJSON_ArrayForEach(it, wj_get_array(msg, "attachments")) {
    const char *url = msgr__file_url(it);
    if (url == NULL) continue;
    if (k == MSGR_MAX_ATTACHMENTS) break;
    if (k++ < b->fetched) continue;
    /* a CDN link is signed: no page token goes with it */
    sb_http_client_request rq = {.struct_size = sizeof(rq),
                                 .timeout_ms = m->timeout_ms,
                                 .method = "GET",
                                 .url = url,
                                 .max_response_bytes = MSGR_MAX_ATTACHMENT_BYTES};
    b->waiting = 1;
    if (m->host->http_request(m->channel, &rq, msgr__downloaded, b) != NULL) return 1;
    b->waiting = 0;
    msgr__file_slot(b); /* left empty */
    if (b->att_error[0] == '\0')
      snprintf(b->att_error, sizeof(b->att_error), "attachment %zu could not be downloaded: the host did not take it",
               b->fetched);
  }
  return 0;
}

/* Whether events[next], an attachment of which failed for a reason that may
 * pass, is young enough to be held for Meta's redelivery (logged) rather
 * than stored with the URL only. */
static int msgr__hold(msgr_batch *b, const cJSON *ev) {
  int64_t ts = 0;
  if (!wj_integer(wj_get(ev, "timestamp"), &ts) || ts <= 0 || b->m->host->now_ms() - ts >= MSGR_ATTACHMENT_HOLD_MS)
    return 0;
  const char *mid = wj_get_string(wj_get(ev, "message"), "mid");
  b->m->host->log(b->m->channel, SB_LOG_WARN,
                  "Messenger message %.100s not stored yet: %s; answered 503 so Meta delivers it again",
                  mid != NULL ? mid : "?", b->att_error);
  return 1;
}

/* Works through the batch from b->next: receipts at once, messages after
 * their profile is known and their attachments downloaded. Returns when a
 * lookup or a download is in flight or all is done. */
static void msgr__step(msgr_batch *b) {
  messenger *m = b->m;
  b->walking = 1;
  while (b->next < b->n && !b->waiting) {
    if (m->closing) {
      b->failed = 1;
      b->next = b->n;
      break;
    }
    const msgr_event *e = &b->events[b->next];
    const cJSON *ev = e->ev;
    const cJSON *msg = wj_get(ev, "message");
    const char *sender = wj_get_string(wj_get(ev, "sender"), "id");
    if (wj_get(ev, "delivery") != NULL) {
      msgr__receipt(m, ev, wj_get(ev, "delivery"), SB_STATUS_DELIVERED);
    } else if (wj_get(ev, "read") != NULL) {
      msgr__receipt(m, ev, wj_get(ev, "read"), SB_STATUS_READ);
    } else if (msg != NULL && wj_is_true(wj_get(msg, "is_echo"))) {
      if (!msgr__own_echo(msg)) msgr__emit(b, e, NULL);
    } else if ((msg != NULL || wj_get(ev, "postback") != NULL) && sender != NULL) {
      if (!b->profiled) {
        b->profiled = 1;
        b->profile = msgr__cached_profile(m, sender);
        if (b->profile == NULL && msgr__lookup(b, sender)) break; /* resumes here once known */
      }
      if (msg != NULL && msgr__download_next(b, msg)) break; /* resumes here once downloaded */
      if (b->att_transient && msgr__hold(b, ev))
        b->failed = 1; /* 503: Meta delivers the batch again */
      else
        msgr__emit(b, e, b->profile);
    } else {
      m->host->log(m->channel, SB_LOG_DEBUG, "ignored a Messenger event of a kind the help desk does not record");
    }
    msgr__event_reset(b);
    b->next++;
  }
  b->walking = 0;
  if (b->next >= b->n) { /* every event handed over (the host copies what it keeps): */
    wj_free(b->root); /* the body is not needed while the commits run */
    b->root = NULL;
  }
  msgr__maybe_finish(b);
}

/* POST: verifies, parses and starts the batch. */
static int msgr__webhook(messenger *m, const sb_http_request *req, sb_responder *r) {
  char why[200];
  int bad = meta_check_signature(m->host, req, m->app_secret, why, sizeof(why));
  if (bad != 0) {
    m->host->log(m->channel, SB_LOG_WARN, "refused a webhook: %s", why);
    meta_answer(m->host, r, bad, why);
    return SB_OK;
  }
  /* flags 0: an object naming a key twice is not refused (nor was it before). */
  cJSON *root = wj_parse(req->body, req->body_len, 0, NULL, 0);
  const cJSON *entries = wj_get_array(root, "entry");
  if (!cJSON_IsObject(root) || entries == NULL) {
    wj_free(root);
    meta_answer(m->host, r, 400, "the body is not a Meta webhook: an object with an \"entry\" array is expected");
    return SB_OK;
  }
  const char *object = wj_get_string(root, "object");
  if (object != NULL && strcmp(object, "page") != 0) {
    wj_free(root);
    meta_answer(m->host, r, 200, NULL); /* another product's events: nothing for this channel */
    return SB_OK;
  }
  size_t total = 0;
  const cJSON *en;
  cJSON_ArrayForEach(en, entries) total += wj_size(wj_get(en, "messaging")) + wj_size(wj_get(en, "standby"));
  msgr_batch *b = malloc(sizeof(*b) + total * sizeof(b->events[0]));
  if (b == NULL) {
    wj_free(root);
    meta_answer(m->host, r, 503, "out of memory; deliver it again");
    return SB_OK;
  }
  memset(b, 0, offsetof(msgr_batch, att_error));
  b->att_error[0] = '\0';
  cJSON_ArrayForEach(en, entries) {
    const char *page = wj_get_string(en, "id");
    if (page != NULL && strcmp(page, m->page_id) != 0) {
      m->host->log(m->channel, SB_LOG_DEBUG, "ignored an entry for another page");
      continue;
    }
    static const char *const lists[] = {"messaging", "standby"};
    for (size_t l = 0; l < 2; l++) {
      const cJSON *ev;
      cJSON_ArrayForEach(ev, wj_get_array(en, lists[l])) {
        if (!cJSON_IsObject(ev)) continue;
        b->events[b->n].ev = ev;
        b->events[b->n].standby = l == 1;
        b->n++;
      }
    }
  }
  b->m = m;
  b->r = r;
  b->root = root;
  m->batches++;
  b->next_open = m->open;
  b->prev_open = &m->open;
  if (m->open != NULL) m->open->prev_open = &b->next_open;
  m->open = b;
  msgr__step(b);
  return SB_OK;
}

/* receive(): GET is Meta's verification handshake, POST a batch of events. */
int msgr_receive(void *instance, const sb_http_request *req, sb_responder *r) {
  messenger *m = instance;
  if (meta_receive_front(m->host, req, r, m->verify_token, MSGR_MAX_BODY, m->closing)) return SB_OK;
  return msgr__webhook(m, req, r);
}

void msgr_inbound_close(messenger *m) {
  for (msgr_batch *b = m->open; b != NULL; b = b->next_open) {
    if (b->answered) continue;
    b->answered = 1;
    b->failed = 1;
    meta_answer(m->host, b->r, 503, "the channel is closing; deliver it again");
  }
}
