/* relay.c — plugins' inbound messages, statuses and state to the core; the
 * outbox's replies to plugins' send(). */
#include "relay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"

/* One reply handed to a plugin's send(), until it completes. */
typedef struct relay_send {
  sb_send_op base;
  struct relay_send *prev, *next;
  relay *r;
  sb_channel *ch;
  outbox_done *done;
  sb_attachment *attachments;
  char **att_data; /* stored content read for attachments, owned; NULL entries for links */
  size_t n_att_data;
  uint64_t started_ns;
} relay_send;

struct relay {
  channel_env env;
  store *st;
  outbox *ob;
  relay_lookup_fn lookup;
  void *lookup_ctx;
  void (*destroyed)(void *ctx, sb_channel *ch);
  void *destroyed_ctx;
  relay_send sends; /* list head of sends in flight */
  struct relay_fetch *fetches; /* replies whose stored attachments are being read */
  relay_stats stats;
};

static const char *const relay__kinds[] = {"custom", "email", "psid", "phone", "visitor"};

static const char *relay__kind(uint32_t kind) {
  return kind < sizeof(relay__kinds) / sizeof(relay__kinds[0]) ? relay__kinds[kind] : "custom";
}

/* --- inbound ---------------------------------------------------------- */

typedef struct relay_inbound {
  relay *r;
  sb_channel *ch; /* alive until done runs: the host holds it */
  sb_inbound_done_fn done;
  void *arg;
  uint64_t submitted_ns;
} relay_inbound;

static void relay__stored(void *arg, int status, int64_t message_id, int duplicate, const char *err) {
  relay_inbound *in = arg;
  channel_counters *cc = channel_counters_of(in->ch);
  char id[24];
  metrics_observe(&in->r->stats.commit_latency, (double)(uv_hrtime() - in->submitted_ns) / 1e9);
  if (status == 0) {
    /* Decimal by hand: snprintf cost a tenth of completing a webhook. */
    char *p = id + sizeof(id) - 1;
    uint64_t v = message_id < 0 ? 0 - (uint64_t)message_id : (uint64_t)message_id;
    *p = '\0';
    do *--p = (char)('0' + v % 10); while ((v /= 10) != 0);
    if (message_id < 0) *--p = '-';
    memmove(id, p, (size_t)(id + sizeof(id) - p));
    if (duplicate) {
      in->r->stats.duplicates++;
      cc->duplicates++;
    }
  } else {
    in->r->stats.inbound_failed++;
    cc->inbound_failed++;
    if (status == -EEXIST)
      log_msg(LOG_LEVEL_WARN, channel_name(in->ch), NULL, "an inbound message was refused: %s", err != NULL ? err : "");
    else
      log_error("an inbound message was not stored: %s", err != NULL ? err : "unknown error");
  }
  /* -EEXIST: its id is a reply's (sq__original); anything else, trouble */
  in->done(in->arg, status == 0 ? SB_OK : status == -EEXIST ? SB_EEXIST : SB_EIO, status == 0 ? id : NULL, duplicate);
  free(in);
}

static int relay__inbound(void *ctx, sb_channel *ch, const sb_inbound_message *m, sb_inbound_done_fn done,
                          void *arg) {
  relay *r = ctx;
  router_attachment stack[16];
  router_attachment *att = m->attachment_count <= 16 ? stack : calloc(m->attachment_count, sizeof(*att));
  relay_inbound *in = malloc(sizeof(*in));
  if (att == NULL || in == NULL) {
    if (att != stack) free(att);
    free(in);
    return SB_ENOMEM;
  }
  for (size_t i = 0; i < m->attachment_count; i++) {
    const sb_attachment *a = &m->attachments[i];
    att[i] = (router_attachment){.url = a->url, .mime_type = a->mime_type, .filename = a->filename,
                                 .content_id = a->content_id, .size = (int64_t)a->size,
                                 .data = a->data, .data_len = a->data != NULL ? a->data_len : 0};
  }
  router_inbound ri = {
      .channel = channel_name(ch),
      .external_id = m->external_id,
      .external_thread_id = m->external_thread_id,
      .reply_to_external_id = m->reply_to_external_id,
      .text = m->text,
      .html = m->html,
      .subject = m->subject,
      .attachments = att,
      .n_attachments = m->attachment_count,
      .timestamp_ms = m->timestamp_ms,
  };
  ri.sender.kind = relay__kind(m->sender.kind);
  ri.sender.id = m->sender.id;
  ri.sender.name = m->sender.name;
  ri.sender.email = m->sender.email;
  ri.sender.phone = m->sender.phone;
  ri.sender.avatar_url = m->sender.avatar_url;
  /* The ABI's SB_IN_* and the router's ROUTER_IN_* share their values. */
  ri.flags = m->flags & (ROUTER_IN_AUTOMATIC | ROUTER_IN_ECHO | ROUTER_IN_BOUNCE | ROUTER_IN_NO_AUTOREPLY);
  /* Metadata must be a JSON object to be kept; a plugin's malformed facts
   * are dropped with a warning rather than cost the customer's message. */
  if (m->metadata_json != NULL) {
    json_t *meta = json_loads(m->metadata_json, 0, NULL);
    if (json_is_object(meta)) {
      ri.metadata_json = m->metadata_json;
    } else {
      log_msg(LOG_LEVEL_WARN, channel_name(ch), channel_plugin(ch)->desc.id,
              "an inbound message's metadata is not a JSON object; stored without it");
    }
    json_decref(meta);
  }
  in->r = r;
  in->ch = ch;
  in->done = done;
  in->arg = arg;
  in->submitted_ns = uv_hrtime();
  char err[256] = "";
  int rc = router_submit_inbound(r->st, &ri, relay__stored, in, err, sizeof(err));
  if (att != stack) free(att);
  if (rc != 0) {
    log_msg(LOG_LEVEL_WARN, channel_name(ch), channel_plugin(ch)->desc.id, "inbound message refused: %s", err);
    free(in);
    return rc == -EINVAL ? SB_EINVAL : SB_EIO;
  }
  r->stats.inbound++;
  channel_counters_of(ch)->inbound++;
  return SB_OK;
}

_Static_assert(SB_IN_AUTOMATIC == ROUTER_IN_AUTOMATIC && SB_IN_ECHO == ROUTER_IN_ECHO &&
                   SB_IN_BOUNCE == ROUTER_IN_BOUNCE && SB_IN_NO_AUTOREPLY == ROUTER_IN_NO_AUTOREPLY,
               "inbound flags of the ABI and the router must agree");

/* --- statuses and key/value state -------------------------------------- */

typedef struct relay_status_log {
  char channel[72];
} relay_status_log;

static void relay__status_stored(void *arg, int status, json_t *result, const char *err) {
  relay_status_log *l = arg;
  if (status == -ENOENT) {
    log_msg(LOG_LEVEL_DEBUG, l->channel, NULL, "delivery status for an unknown message ignored");
  } else if (status != 0) {
    log_msg(LOG_LEVEL_WARN, l->channel, NULL, "delivery status not stored: %s", err != NULL ? err : "");
  }
  free(l);
}

static int relay__status(void *ctx, sb_channel *ch, const sb_status_update *u) {
  relay *r = ctx;
  static const char *const names[] = {NULL, NULL, "delivered", "read", "failed"};
  if (u->status == SB_STATUS_SENT) return SB_OK; /* the send completion already said so */
  relay_status_log *l = malloc(sizeof(*l));
  if (l == NULL) return SB_ENOMEM;
  snprintf(l->channel, sizeof(l->channel), "%s", channel_name(ch));
  int rc;
  if (u->flags & SB_STATUS_WATERMARK) {
    int64_t up_to = u->timestamp_ms != 0 ? u->timestamp_ms : hostapi_table()->now_ms();
    rc = store_delivery_watermark(r->st, channel_name(ch), relay__kind(u->recipient_kind), u->recipient_id,
                                  names[u->status], up_to, relay__status_stored, l);
  } else {
    rc = store_delivery_status(r->st, channel_name(ch), u->external_id, names[u->status], u->error,
                               relay__status_stored, l);
  }
  if (rc != 0) {
    free(l);
    return SB_EIO;
  }
  r->stats.statuses++;
  channel_counters_of(ch)->statuses++;
  return SB_OK;
}

typedef struct relay_kv {
  sb_kv_done_fn done;
  void *arg;
} relay_kv;

static void relay__kv_stored(void *arg, int status, json_t *result, const char *err) {
  relay_kv *k = arg;
  if (status != 0) log_warn("channel state not stored: %s", err != NULL ? err : "");
  if (k->done != NULL) k->done(k->arg, status == 0 ? SB_OK : SB_EIO);
  free(k);
}

static int relay__kv(void *ctx, sb_channel *ch, const char *key, const char *value, size_t len, sb_kv_done_fn done,
                     void *arg) {
  relay *r = ctx;
  relay_kv *k = malloc(sizeof(*k));
  char *text = value != NULL ? strndup(value, len) : NULL;
  if (k == NULL || (value != NULL && text == NULL)) {
    free(k);
    free(text);
    return SB_ENOMEM;
  }
  k->done = done;
  k->arg = arg;
  int rc = text != NULL ? store_kv_set(r->st, channel_name(ch), key, text, relay__kv_stored, k)
                        : store_kv_delete(r->st, channel_name(ch), key, relay__kv_stored, k);
  free(text);
  if (rc != 0) {
    free(k);
    return SB_EIO;
  }
  return SB_OK;
}

/* --- reads for plugins (ABI 1.3) ----------------------------------------- */

static int relay__history(void *ctx, sb_channel *ch, uint32_t kind, const char *id, int64_t after_id, int limit,
                          channel_json_fn done, void *arg) {
  relay *r = ctx;
  return store_contact_history(r->st, channel_name(ch), relay__kind(kind), id, after_id, limit, done, arg);
}

static int relay__availability(void *ctx, sb_channel *ch, channel_json_fn done, void *arg) {
  relay *r = ctx;
  return store_channel_availability(r->st, channel_name(ch), done, arg);
}

/* Released rows are due at once; the outbox's next poll (within a second)
 * sends them, so nothing here outlives the relay. */
static void relay__released(void *arg, int status, json_t *result, const char *err) {
  (void)arg;
  (void)result;
  if (status != 0) log_warn("held replies not released: %s", err != NULL ? err : "");
}

void relay_channel_running(relay *r, const char *name) {
  if (store_outbox_release_held(r->st, name, relay__released, NULL) != 0)
    log_warn("held replies of channel \"%s\" not released: the store refused", name);
}

static int relay__send_release(void *ctx, sb_channel *ch, uint32_t kind, const char *id) {
  relay *r = ctx;
  int rc = store_outbox_release(r->st, channel_name(ch), relay__kind(kind), id, relay__released, NULL);
  return rc == 0 ? SB_OK : SB_EIO;
}

/* --- outbound ----------------------------------------------------------- */

static void relay__free_data(char **data, size_t n) {
  for (size_t i = 0; data != NULL && i < n; i++) free(data[i]);
  free(data);
}

static void relay__send_unlink(relay_send *s) {
  s->prev->next = s->next;
  s->next->prev = s->prev;
  free(s->attachments);
  relay__free_data(s->att_data, s->n_att_data);
  free(s);
}

static void relay__send_complete(sb_send_op *op, int outcome, const char *text, uint32_t retry_after_ms) {
  relay_send *s = (relay_send *)op;
  relay *r = s->r;
  /* A reason is shown to agents and in events: a service that echoes a
   * credential back in its error must not publish it (as the log does not). */
  char why[2048];
  if (outcome != CHANNEL_SEND_OK && text != NULL) {
    snprintf(why, sizeof(why), "%s", text);
    log_redact(why, sizeof(why));
    text = why;
  }
  channel_counters *cc = channel_counters_of(s->ch);
  metrics_observe(&r->stats.send_latency, (double)(uv_hrtime() - s->started_ns) / 1e9);
  switch (outcome) {
  case CHANNEL_SEND_OK:
    r->stats.sends_ok++;
    cc->sent++;
    outbox_done_ok(s->done, text);
    break;
  case CHANNEL_SEND_RETRY:
    /* the last attempt's retry is a dead letter: counted as failed, as it ends */
    if (outbox_done_retry(s->done, retry_after_ms, text != NULL ? text : "the channel asked to retry")) {
      r->stats.sends_failed++;
      cc->failed++;
    } else {
      r->stats.sends_retry++;
      cc->retried++;
    }
    break;
  case CHANNEL_SEND_DEFER:
    r->stats.sends_held++;
    cc->held++;
    outbox_done_defer(s->done, retry_after_ms, text != NULL ? text : "the channel holds the message");
    break;
  default:
    r->stats.sends_failed++;
    cc->failed++;
    outbox_done_fail(s->done, text != NULL ? text : "the channel refused the message");
    break;
  }
  relay__send_unlink(s);
}

/* Parses the outbox's attachments JSON into ABI attachments borrowing its
 * strings; returns the count (0 on none or error). */
static size_t relay__attachments(const json_t *list, sb_attachment **out) {
  size_t n = json_array_size(list);
  *out = n > 0 ? calloc(n, sizeof(**out)) : NULL;
  if (*out == NULL) return 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *a = json_array_get(list, i);
    (*out)[i].url = json_string_value(json_object_get(a, "url"));
    (*out)[i].mime_type = json_string_value(json_object_get(a, "mime_type"));
    (*out)[i].filename = json_string_value(json_object_get(a, "filename"));
    (*out)[i].size = (uint64_t)json_integer_value(json_object_get(a, "size"));
  }
  return n;
}

/* Hands the reply to its channel's plugin. atts is the reply's attachments
 * (borrowed); data[i] (lens[i] bytes), when given, is the content read for
 * attachment i, and is owned from here on (NULL: none read). */
static void relay__send_now(relay *r, const outbox_item *item, outbox_done *done, const json_t *atts, char **data,
                            size_t *lens) {
  size_t n_atts = json_array_size(atts);
  sb_channel *ch = r->lookup(r->lookup_ctx, item->channel);
  char reason[256];
  if (ch == NULL || SB_STATE_IS_FATAL(channel_state(ch))) {
    r->stats.sends_held++;
    if (ch != NULL) channel_counters_of(ch)->held++;
    if (ch == NULL) {
      snprintf(reason, sizeof(reason), "channel \"%s\" is not running", item->channel);
    } else {
      snprintf(reason, sizeof(reason), "sends held: channel \"%s\" is %s (%s)", item->channel,
               channel_state_name(channel_state(ch)), channel_state_reason(ch));
    }
    relay__free_data(data, n_atts);
    outbox_done_defer(done, 60 * 1000, reason); /* a hold: it must not use up attempts */
    return;
  }
  const loader_plugin *plugin = channel_plugin(ch);
  if (item->template_json != NULL && !(plugin->desc.caps.flags & SB_CAP_TEMPLATES)) {
    snprintf(reason, sizeof(reason), "channel \"%s\" (plugin %s) sends no templates", item->channel,
             plugin->desc.id);
    relay__free_data(data, n_atts);
    outbox_done_fail(done, reason);
    return;
  }
  relay_send *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    relay__free_data(data, n_atts);
    outbox_done_retry(done, 0, "out of memory");
    return;
  }
  s->base.complete = relay__send_complete;
  s->r = r;
  s->ch = ch;
  s->done = done;
  s->started_ns = uv_hrtime();
  char message_id[24];
  snprintf(message_id, sizeof(message_id), "%" PRId64, item->message_id);
  sb_outbound_message m = {
      .message_id = message_id,
      .idempotency_key = item->idempotency_key,
      .attempt = (uint32_t)item->attempt,
      .flags = item->automatic ? SB_OUT_AUTOMATIC : 0,
      .recipient_id = item->recipient_id,
      .recipient_name = item->recipient_name,
      .external_thread_id = item->external_thread_id,
      .reply_to_external_id = item->reply_to_external_id,
      .text = item->text,
      .html = item->html,
      .last_inbound_ms = item->last_inbound_ms,
      .agent_name = item->agent_name,
      .agent_email = item->agent_email,
      .agent_avatar_url = item->agent_avatar_url,
      .subject = item->subject,
      .template_json = item->template_json,
  };
  m.attachment_count = relay__attachments(atts, &s->attachments);
  m.attachments = s->attachments;
  s->att_data = data;
  s->n_att_data = n_atts;
  for (size_t i = 0; data != NULL && i < m.attachment_count; i++) {
    if (data[i] == NULL) continue;
    s->attachments[i].data = data[i];
    s->attachments[i].data_len = lens[i];
  }
  s->next = r->sends.next;
  s->prev = &r->sends;
  r->sends.next->prev = s;
  r->sends.next = s;
  r->stats.sends++;
  int rc = channel_send(ch, &m, &s->base);
  if (rc != 0 && !s->base.completed) {
    snprintf(reason, sizeof(reason), "the channel did not take the message (code %d)", rc);
    s->base.completed = 1;
    relay__send_complete(&s->base, CHANNEL_SEND_RETRY, reason, 0);
  }
}

/* A reply whose attachments name content the store holds, by the link the
 * API lists it under (/api/v1/attachments/{id}: an agent sending on a file a
 * customer sent): the bytes are read first, so the plugin gets them with
 * the link (the email channel attaches them; a link alone would need the
 * API's token). */
typedef struct relay_fetch {
  struct relay_fetch *next_fetch, **prev_fetch; /* in r->fetches */
  relay *r;                /* NULL once relay_free ran: the send is then retried */
  const outbox_item *item; /* the outbox keeps it until done completes */
  outbox_done *done;
  json_t *atts;
  char **data;
  size_t *lens;
  size_t next;
} relay_fetch;

static void relay__fetch_free(relay_fetch *f) {
  if (f->r != NULL) {
    *f->prev_fetch = f->next_fetch;
    if (f->next_fetch != NULL) f->next_fetch->prev_fetch = f->prev_fetch;
  }
  json_decref(f->atts);
  free(f->lens);
  free(f);
}

static void relay__fetch_next(relay_fetch *f);

static void relay__fetched(void *arg, int status, const store_attachment *a, const char *err) {
  relay_fetch *f = arg;
  if (f->r == NULL) { /* the daemon stopped meanwhile */
    relay__free_data(f->data, json_array_size(f->atts));
    outbox_done_retry(f->done, 0, "the daemon stopped before the send");
    relay__fetch_free(f);
    return;
  }
  size_t i = f->next++;
  json_t *att = json_array_get(f->atts, i);
  if (status == 0 && (f->data[i] = malloc(a->len + 1)) != NULL) {
    memcpy(f->data[i], a->data, a->len);
    f->lens[i] = a->len;
    /* the reply may have named neither: the stored content's own */
    if (!json_is_string(json_object_get(att, "mime_type")) && a->mime_type != NULL)
      json_object_set_new(att, "mime_type", json_string(a->mime_type));
    if (!json_is_string(json_object_get(att, "filename")) && a->filename != NULL)
      json_object_set_new(att, "filename", json_string(a->filename));
  } else if (status == -ENOENT) {
    log_warn("outbox: message %" PRId64 ": %s is no longer stored; it goes as the link",
             f->item->message_id, json_string_value(json_object_get(att, "url")));
  } else {
    char why[300];
    snprintf(why, sizeof(why), "reading attachment %zu failed: %s", i + 1, err != NULL ? err : "out of memory");
    relay__free_data(f->data, json_array_size(f->atts));
    outbox_done_retry(f->done, 0, why);
    relay__fetch_free(f);
    return;
  }
  relay__fetch_next(f);
}

/* Reads the next stored attachment, or sends once none is left. */
static void relay__fetch_next(relay_fetch *f) {
  size_t n = json_array_size(f->atts);
  int64_t id = 0;
  while (f->next < n &&
         (id = store_attachment_link_id(json_string_value(json_object_get(json_array_get(f->atts, f->next), "url")))) == 0)
    f->next++;
  if (f->next == n) {
    relay__send_now(f->r, f->item, f->done, f->atts, f->data, f->lens);
    relay__fetch_free(f);
    return;
  }
  if (store_attachment_get(f->r->st, id, relay__fetched, f) != 0) {
    relay__free_data(f->data, n);
    outbox_done_retry(f->done, 0, "the store is not accepting requests");
    relay__fetch_free(f);
  }
}

static void relay__send(void *ctx, const outbox_item *item, outbox_done *done) {
  relay *r = ctx;
  json_t *atts = item->attachments_json != NULL ? json_loads(item->attachments_json, 0, NULL) : NULL;
  size_t n = json_array_size(atts), stored = 0;
  for (size_t i = 0; i < n; i++)
    stored += store_attachment_link_id(json_string_value(json_object_get(json_array_get(atts, i), "url"))) > 0;
  relay_fetch *f = stored > 0 ? calloc(1, sizeof(*f)) : NULL;
  if (f != NULL && ((f->data = calloc(n, sizeof(*f->data))) == NULL || (f->lens = calloc(n, sizeof(*f->lens))) == NULL)) {
    free(f->data);
    free(f);
    f = NULL;
  }
  if (f == NULL) { /* nothing stored to read (or no memory to read it: the links go) */
    relay__send_now(r, item, done, atts, NULL, NULL);
    json_decref(atts);
    return;
  }
  f->r = r;
  f->item = item;
  f->done = done;
  f->atts = atts;
  f->next_fetch = r->fetches;
  f->prev_fetch = &r->fetches;
  if (r->fetches != NULL) r->fetches->prev_fetch = &f->next_fetch;
  r->fetches = f;
  relay__fetch_next(f);
}

/* After a plugin's destroy(): its open sends can no longer complete, so the
 * host retries them; then the daemon answers its open webhooks. */
static void relay__destroyed(void *ctx, sb_channel *ch) {
  relay *r = ctx;
  for (relay_send *s = r->sends.next, *next; s != &r->sends; s = next) {
    next = s->next;
    if (s->ch == ch) {
      s->base.completed = 1;
      relay__send_complete(&s->base, CHANNEL_SEND_RETRY, "the channel closed before the send completed", 0);
    }
  }
  if (r->destroyed != NULL) r->destroyed(r->destroyed_ctx, ch);
}

int relay_new(uv_loop_t *loop, store *st, struct httpc *httpc, relay_lookup_fn lookup, void *ctx, relay **out) {
  relay *r = calloc(1, sizeof(*r));
  if (r == NULL) return -ENOMEM;
  r->st = st;
  r->lookup = lookup;
  r->lookup_ctx = ctx;
  r->sends.next = r->sends.prev = &r->sends;
  r->env.loop = loop;
  r->env.ctx = r;
  r->env.inbound = relay__inbound;
  r->env.status = relay__status;
  r->env.kv_persist = relay__kv;
  r->env.destroyed = relay__destroyed;
  r->env.httpc = httpc;
  r->env.history = relay__history;
  r->env.availability = relay__availability;
  r->env.send_release = relay__send_release;
  *out = r;
  return 0;
}

const channel_env *relay_env(relay *r) { return &r->env; }

void relay_on_destroyed(relay *r, void (*fn)(void *ctx, sb_channel *ch), void *ctx) {
  r->destroyed = fn;
  r->destroyed_ctx = ctx;
}

int relay_start_outbox(relay *r, const outbox_config *cfg) {
  return outbox_start(r->env.loop, r->st, cfg, relay__send, r, &r->ob);
}

void relay_stop_outbox(relay *r) {
  if (r == NULL || r->ob == NULL) return;
  outbox_stop(r->ob);
  r->ob = NULL;
}

void relay_free(relay *r) {
  if (r == NULL) return;
  /* Every channel is closed by now; anything left was abandoned by its plugin. */
  while (r->sends.next != &r->sends) {
    relay_send *s = r->sends.next;
    s->base.completed = 1;
    relay__send_complete(&s->base, CHANNEL_SEND_RETRY, "the daemon stopped before the send completed", 0);
  }
  /* Reads still in the store finish on their own and retry their send. */
  for (relay_fetch *f = r->fetches; f != NULL; f = f->next_fetch) f->r = NULL;
  free(r);
}

void relay_get_stats(const relay *r, relay_stats *out) { *out = r->stats; }
