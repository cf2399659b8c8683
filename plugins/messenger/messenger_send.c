/* messenger_send.c — Messenger outbound: connect check, the Send API, the messaging window, consent holds.
 *
 * The window is counted from the customer's last message:
 * sb_outbound_message.last_inbound_ms, which the host fills from the
 * customer's own timestamps in the webhooks it stored. Within 24
 * hours: messaging_type RESPONSE. From 24 hours to 7 days an agent's reply
 * goes as MESSAGE_TAG + HUMAN_AGENT when human_agent_tag is on; automatic
 * messages never leave the 24 hours. Past 7 days a reply fails at once.
 *
 * A reply with text and attachments is several Send API calls (Messenger
 * takes one attachment per message). Progress is kept under
 * "s:<idempotency key>" so a retry resumes after the parts already sent,
 * and the first part's mid is the message's external id.
 *
 * An attachment goes by its URL when Meta can fetch it (http or https).
 * A file the help desk holds (its url is the API's relative
 * /api/v1/attachments/{id}; the host hands over the bytes) is uploaded in
 * the same Send API call, as multipart/form-data with the file in
 * filedata. Of Meta's two ways to send a file this one is a single call,
 * so an attachment stays one part of the reply and the progress record
 * above needs nothing new; the Attachment Upload API (upload, then send by
 * attachment_id) would add a second call per file and a state between
 * the two for a retry to resume from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_form.h"
#include "messenger.h"

#define MSGR_DAY_MS (24LL * 3600 * 1000)
#define MSGR_HOLD_CONSENT_MS (60u * 60 * 1000) /* re-check a consent hold hourly */
#define MSGR_HOLD_AUTH_MS (15u * 60 * 1000)    /* re-try after an auth failure */
#define MSGR_RATE_LIMIT_MS (60u * 1000)        /* Graph throttling: wait a minute */
#define MSGR_MAX_PARTS 11
#define MSGR_MAX_UPLOAD ((size_t)25 * 1024 * 1024) /* Meta's limit for an attachment, as the capability says */
#define MSGR_UPLOAD_MS_PER_MIB 1000u               /* an upload's time on top of request_timeout */

/* One Send API call of a reply: a JSON body, or a form when a file is uploaded. */
typedef struct msgr_part {
  char *body;
  size_t len;
  char form_type[META_FORM_TYPE_MAX]; /* the form's Content-Type; "" for JSON */
} msgr_part;

typedef struct msgr_out {
  struct msgr_out *next_out; /* in m->outs */
  int detached;              /* disconnect() completed it: the callback only frees it */
  messenger *m;
  sb_send_op *op; /* NULL for the plugin's own notices */
  msgr_part parts[MSGR_MAX_PARTS];
  size_t n, next;
  char first_mid[256];
  char progress_key[256];          /* "s:<idempotency key>", or "" */
  char *notice_psid, *notice_text; /* for a notice: recorded in the conversation once sent */
} msgr_out;

static void msgr__out_free(msgr_out *o) {
  for (msgr_out **p = &o->m->outs; *p != NULL; p = &(*p)->next_out) {
    if (*p == o) {
      *p = o->next_out;
      break;
    }
  }
  for (size_t i = 0; i < o->n; i++) free(o->parts[i].body);
  free(o->notice_psid);
  free(o->notice_text);
  o->m->sends--;
  free(o);
}

/* One Send API body: recipient, messaging_type (and tag), the message with
 * our metadata marker (so its echo is recognised), and reply_to. Steals
 * message. Returns a malloc'd string or NULL. */
static char *msgr__body(const char *psid, const char *type, const char *tag, json_t *message, const char *reply_to,
                        const char *marker) {
  json_object_set_new(message, "metadata", json_string(marker));
  json_t *root = json_pack("{s:{s:s}, s:s, s:o}", "recipient", "id", psid, "messaging_type", type, "message", message);
  if (root == NULL) return NULL;
  if (tag != NULL) json_object_set_new(root, "tag", json_string(tag));
  if (reply_to != NULL && reply_to[0] != '\0')
    json_object_set_new(root, "reply_to", json_pack("{s:s}", "mid", reply_to));
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

/* Messenger's attachment type for a MIME type. */
static const char *msgr__attachment_type(const char *mime) {
  if (mime == NULL) return "file";
  if (strncmp(mime, "image/", 6) == 0) return "image";
  if (strncmp(mime, "audio/", 6) == 0) return "audio";
  if (strncmp(mime, "video/", 6) == 0) return "video";
  return "file";
}

static void msgr__post_next(msgr_out *o);

static void msgr__notice_recorded(void *arg, int status, const char *message_id, int duplicate) {
  (void)arg;
  (void)status;
  (void)message_id;
  (void)duplicate;
}

/* Records a notice the plugin sent (consent request, instant reply) in the
 * conversation as an automatic outbound message, like an echo. */
static void msgr__record_notice(messenger *m, const msgr_out *o, const char *mid) {
  sb_inbound_message in = {.struct_size = sizeof(in)};
  in.flags = SB_IN_ECHO | SB_IN_AUTOMATIC;
  in.external_id = mid;
  in.sender.kind = SB_IDENTITY_PSID;
  in.sender.id = o->notice_psid;
  in.text = o->notice_text;
  in.timestamp_ms = m->host->now_ms();
  in.metadata_json = "{\"sent_by\":\"messenger plugin\"}";
  if (m->host->emit_inbound(m->channel, &in, msgr__notice_recorded, NULL) != SB_OK) {
    m->host->log(m->channel, SB_LOG_WARN, "a plugin notice was sent but could not be recorded");
  }
}

/* Completes an agent's send, or logs a notice's outcome: 0 ok (text is the
 * first part's mid), 1 retry after `after` ms, 2 failed for good, 3 held
 * (deferred, released when the channel runs again). The parts sent stay
 * recorded for the resume unless the reply went whole or none of it did. */
static void msgr__finish(msgr_out *o, int outcome, const char *text, uint32_t after) {
  messenger *m = o->m;
  if (o->op == NULL) {
    if (outcome != 0)
      m->host->log(m->channel, SB_LOG_WARN, "a plugin notice was not sent: %s", text);
    else if (o->notice_psid != NULL && o->notice_text != NULL)
      msgr__record_notice(m, o, text);
  } else if (outcome == 0) {
    if (o->progress_key[0] != '\0') m->host->kv_delete(m->channel, o->progress_key, NULL, NULL);
    m->host->send_ok(o->op, text);
  } else if (outcome == 1) {
    m->host->send_retry(o->op, after, text);
  } else if (outcome == 3) { /* held: released, in order, when the channel runs again */
    meta_send_hold(m->host, o->op, after, text);
  } else if (o->next > 0) {
    /* Some parts went out: say so, and keep the progress, so a retry the
     * agent asks for (the same key) sends only the parts that did not. */
    char partial[1200];
    snprintf(partial, sizeof(partial), "%zu of the reply's %zu messages went out (the first as %s), but not the rest: %s",
             o->next, o->n, o->first_mid, text);
    m->host->send_fail(o->op, partial);
  } else {
    if (o->progress_key[0] != '\0') m->host->kv_delete(m->channel, o->progress_key, NULL, NULL);
    m->host->send_fail(o->op, text);
  }
  msgr__out_free(o);
}

static void msgr__posted(void *arg, const sb_http_client_response *res) {
  msgr_out *o = arg;
  messenger *m = o->m;
  if (o->detached) {
    msgr__out_free(o);
    return;
  }
  char reason[META_MAX_REASON + 160];
  if (res->status != SB_OK) {
    snprintf(reason, sizeof(reason), "the Send API did not answer: %s",
             res->status == SB_ECANCELED ? "the channel closed" : (res->error != NULL ? res->error : "no answer"));
    msgr__finish(o, 1, reason, 0);
    return;
  }
  if (res->http_status == 200) {
    json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
    const char *mid = json_string_value(json_object_get(root, "message_id"));
    if (mid == NULL) {
      json_decref(root);
      msgr__finish(o, 1, "the Send API answered 200 without a message_id", 0);
      return;
    }
    if (o->first_mid[0] == '\0') snprintf(o->first_mid, sizeof(o->first_mid), "%s", mid);
    json_decref(root);
    o->next++;
    if (o->next < o->n) {
      if (o->progress_key[0] != '\0') {
        char v[300];
        snprintf(v, sizeof(v), "%zu %s", o->next, o->first_mid);
        m->host->kv_set(m->channel, o->progress_key, v, strlen(v), NULL, NULL);
      }
      msgr__post_next(o);
    } else {
      msgr__finish(o, 0, o->first_mid, 0);
    }
    return;
  }
  meta_graph_error e;
  meta_parse_error(res->body, res->body_len, &e);
  meta_reason(res->http_status, &e, reason, sizeof(reason));
  switch (meta_classify(META_API_MESSENGER, res->http_status, &e)) {
  case META_AUTH:
    m->auth_failed = 1;
    m->host->set_state(m->channel, SB_STATE_AUTH_FAILED,
                       "Meta refused the page access token (Graph error 190); update page_access_token");
    msgr__finish(o, 3, "held: Meta refused the page access token; the operator must update it", MSGR_HOLD_AUTH_MS);
    return;
  case META_RETRY: {
    uint32_t after = res->http_status == 429 || e.code == 4 || e.code == 613 || e.code == 17 || e.code == 32
                         ? MSGR_RATE_LIMIT_MS
                         : 0;
    msgr__finish(o, 1, reason, after);
    return;
  }
  case META_WINDOW: {
    char why[sizeof(reason) + 80];
    snprintf(why, sizeof(why), "outside the messaging window Messenger allows for this person (%s)", reason);
    msgr__finish(o, 2, why, 0);
    return;
  }
  default:
    if (e.code == 551) {
      char why[sizeof(reason) + 80];
      snprintf(why, sizeof(why), "this person is not available on Messenger right now (%s)", reason);
      msgr__finish(o, 2, why, 0);
    } else {
      msgr__finish(o, 2, reason, 0);
    }
  }
}

void msgr_send_cancel_all(messenger *m) {
  for (msgr_out *o = m->outs; o != NULL; o = o->next_out) {
    if (o->detached) continue;
    o->detached = 1;
    if (o->op != NULL) m->host->send_retry(o->op, 0, "cancelled: the channel closed before Meta answered");
    o->op = NULL;
  }
}

static void msgr__post_next(msgr_out *o) {
  messenger *m = o->m;
  const msgr_part *p = &o->parts[o->next];
  char url[600];
  snprintf(url, sizeof(url), "%s/me/messages", m->base);
  sb_http_call *call;
  if (p->form_type[0] != '\0') {
    uint32_t mib = (uint32_t)(p->len / (1024 * 1024)) + 1;
    call = msgr_graph_form(m, url, p->form_type, p->body, p->len, m->timeout_ms + mib * MSGR_UPLOAD_MS_PER_MIB,
                           msgr__posted, o);
  } else {
    call = msgr_graph(m, "POST", url, p->body, msgr__posted, o);
  }
  if (call == NULL) {
    msgr__finish(o, 1, "the host did not take the Send API request", 0);
  }
}

void msgr_send_notice(messenger *m, const char *psid, const char *text, int with_button) {
  msgr_out *o = calloc(1, sizeof(*o));
  if (o == NULL) return;
  o->m = m;
  m->sends++;
  o->next_out = m->outs;
  m->outs = o;
  json_t *message;
  if (with_button) {
    const char *title = m->consent_keyword != NULL && m->consent_keyword[0] != '\0' && strlen(m->consent_keyword) <= 20
                            ? m->consent_keyword
                            : "I agree";
    message = json_pack("{s:{s:s, s:{s:s, s:s, s:[{s:s, s:s, s:s}]}}}", "attachment", "type", "template", "payload",
                        "template_type", "button", "text", text, "buttons", "type", "postback", "title", title,
                        "payload", MSGR_CONSENT_PAYLOAD);
  } else {
    message = json_pack("{s:s}", "text", text);
  }
  o->parts[0].body =
      message != NULL ? msgr__body(psid, "RESPONSE", NULL, message, NULL, MSGR_METADATA_PREFIX "notice") : NULL;
  o->notice_psid = strdup(psid);
  o->notice_text = strdup(text);
  if (o->parts[0].body == NULL) {
    msgr__out_free(o);
    return;
  }
  o->n = 1;
  msgr__post_next(o);
}

/* Decides the messaging type for a reply; returns 0 with the type and tag set, or
 * -1 with the reason it cannot go in why. */
static int msgr__window(const messenger *m, const sb_outbound_message *msg, const char **type, const char **tag,
                        char *why, size_t whylen) {
  int64_t last = msg->last_inbound_ms;
  int64_t age = m->host->now_ms() - last;
  *tag = NULL;
  if (last <= 0) {
    snprintf(why, whylen,
             "this person has not written to the Page; Messenger lets a Page answer only after "
             "the person writes first");
    return -1;
  }
  if (age <= MSGR_DAY_MS) {
    *type = "RESPONSE";
    return 0;
  }
  long hours = (long)(age / (3600 * 1000));
  if (msg->flags & SB_OUT_AUTOMATIC) {
    snprintf(why, whylen,
             "outside the 24-hour window (the customer last wrote %ld hours ago); automatic messages "
             "are sent only within 24 hours",
             hours);
    return -1;
  }
  if (age <= 7 * MSGR_DAY_MS) {
    if (!m->human_agent_tag) {
      snprintf(why, whylen,
               "outside the 24-hour window (the customer last wrote %ld hours ago) and the channel's "
               "human_agent_tag is off",
               hours);
      return -1;
    }
    *type = "MESSAGE_TAG";
    *tag = "HUMAN_AGENT";
    return 0;
  }
  snprintf(why, whylen,
           "outside the 7-day human agent window: the customer last wrote %ld days ago; Messenger "
           "allows no reply until they write again",
           (long)(age / MSGR_DAY_MS));
  return -1;
}

/* How an attachment goes out. */
enum { MSGR_BY_URL = 1, MSGR_BY_UPLOAD = 2 };

/* Decides how attachment i (0-based) goes: its bytes when the host handed
 * them over (a file the help desk holds), else its URL when Meta can fetch
 * it. Returns MSGR_BY_*, or 0 with the reason for the agent in why. */
static int msgr__attachment_route(const sb_attachment *a, size_t i, char *why, size_t whylen) {
  const char *name = a->filename != NULL ? a->filename : (a->url != NULL ? a->url : "without a name");
  if (a->data != NULL) {
    if (a->data_len == 0) {
      snprintf(why, whylen, "attachment %zu (%.200s) is empty; Messenger does not send empty files", i + 1, name);
      return 0;
    }
    if (a->data_len > MSGR_MAX_UPLOAD) {
      snprintf(why, whylen, "attachment %zu (%.200s) is %zu bytes; Messenger takes files up to 25 MiB", i + 1, name,
               a->data_len);
      return 0;
    }
    return MSGR_BY_UPLOAD;
  }
  if (a->url != NULL && (strncmp(a->url, "https://", 8) == 0 || strncmp(a->url, "http://", 7) == 0))
    return MSGR_BY_URL;
  snprintf(why, whylen,
           "attachment %zu (%.200s) is neither a URL Meta can fetch nor a file the help desk holds; Messenger "
           "attachments must be one or the other",
           i + 1, name);
  return 0;
}

/* A JSON value as a form field. Steals v. 0 or -1 (out of memory). */
static int msgr__json_field(meta_form_part *f, const char *name, json_t *v, char **keep) {
  *keep = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  if (*keep == NULL) return -1;
  *f = (meta_form_part){.name = name, .data = *keep, .len = strlen(*keep)};
  return 0;
}

/* The Send API call that uploads attachment a as filedata: the fields of a
 * JSON send (recipient, messaging_type, tag, reply_to; message with our
 * metadata marker) as form fields, the attachment's payload only
 * is_reusable. Fills p; returns 0, or -1 when it cannot be built. */
static int msgr__upload_part(msgr_part *p, const char *psid, const char *type, const char *tag,
                             const sb_attachment *a, const char *reply_to, const char *marker) {
  meta_form_part f[6];
  char *keep[3] = {NULL, NULL, NULL};
  size_t n = 0;
  int bad = msgr__json_field(&f[n++], "recipient", json_pack("{s:s}", "id", psid), &keep[0]);
  bad |= msgr__json_field(&f[n++], "message",
                          json_pack("{s:{s:s, s:{s:b}}, s:s}", "attachment", "type",
                                    msgr__attachment_type(a->mime_type), "payload", "is_reusable", 1, "metadata",
                                    marker),
                          &keep[1]);
  f[n++] = (meta_form_part){.name = "messaging_type", .data = type, .len = strlen(type)};
  if (tag != NULL) f[n++] = (meta_form_part){.name = "tag", .data = tag, .len = strlen(tag)};
  if (reply_to != NULL && reply_to[0] != '\0')
    bad |= msgr__json_field(&f[n++], "reply_to", json_pack("{s:s}", "mid", reply_to), &keep[2]);
  f[n++] = (meta_form_part){.name = "filedata",
                            .filename = a->filename != NULL && a->filename[0] != '\0' ? a->filename : "attachment",
                            .content_type = a->mime_type != NULL ? a->mime_type : "application/octet-stream",
                            .data = a->data,
                            .len = a->data_len};
  if (!bad) bad = meta_form_build(f, n, &p->body, &p->len, p->form_type) != SB_OK;
  for (size_t i = 0; i < 3; i++) free(keep[i]);
  return bad ? -1 : 0;
}

/* The part for attachment a: by URL (a JSON send) or uploaded (a form). 0, or -1 when it cannot be built. */
static int msgr__attachment_part(msgr_part *p, int route, const char *psid, const char *type, const char *tag,
                                 const sb_attachment *a, const char *reply_to, const char *marker) {
  if (route == MSGR_BY_UPLOAD) return msgr__upload_part(p, psid, type, tag, a, reply_to, marker);
  json_t *j = json_pack("{s:{s:s, s:{s:s, s:b}}}", "attachment", "type", msgr__attachment_type(a->mime_type),
                        "payload", "url", a->url, "is_reusable", 1);
  p->body = j != NULL ? msgr__body(psid, type, tag, j, reply_to, marker) : NULL;
  p->len = p->body != NULL ? strlen(p->body) : 0;
  return p->body != NULL ? 0 : -1;
}

int msgr_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
  messenger *m = instance;
  char why[400];
  const char *type, *tag;
  if (m->closing) return SB_ECANCELED;
  if (msg->recipient_id == NULL || msg->recipient_id[0] == '\0') {
    m->host->send_fail(op, "the reply has no recipient page-scoped id");
    return SB_OK;
  }
  if (m->auth_failed) {
    meta_send_hold(m->host, op, MSGR_HOLD_AUTH_MS, "held: Meta refused the page access token; the operator must update it");
    return SB_OK;
  }
  if (m->consent_mode == MSGR_CONSENT_EXPLICIT && msgr_kv_int(m, "c:", msg->recipient_id) == 0) {
    meta_send_hold(m->host, op, MSGR_HOLD_CONSENT_MS,
                   "held: the customer has not given consent yet (GDPR explicit consent mode); it goes out "
                   "once they tap the consent button or write the consent keyword");
    return SB_OK;
  }
  if (msgr__window(m, msg, &type, &tag, why, sizeof(why)) != 0) {
    m->host->send_fail(op, why);
    return SB_OK;
  }
  if (msg->attachment_count + 1 > MSGR_MAX_PARTS) {
    m->host->send_fail(op, "Messenger takes at most 10 attachments per reply");
    return SB_OK;
  }
  int routes[MSGR_MAX_PARTS];
  for (size_t i = 0; i < msg->attachment_count; i++) {
    if ((routes[i] = msgr__attachment_route(&msg->attachments[i], i, why, sizeof(why))) == 0) {
      m->host->send_fail(op, why);
      return SB_OK;
    }
  }
  msgr_out *o = calloc(1, sizeof(*o));
  if (o == NULL) return SB_ENOMEM;
  o->m = m;
  o->op = op;
  m->sends++;
  o->next_out = m->outs;
  m->outs = o;
  char marker[128];
  snprintf(marker, sizeof(marker), MSGR_METADATA_PREFIX "%s", msg->message_id != NULL ? msg->message_id : "");
  int bad = 0;
  if (msg->text != NULL && msg->text[0] != '\0') {
    json_t *t = json_pack("{s:s}", "text", msg->text);
    msgr_part *p = &o->parts[o->n++];
    p->body = t != NULL ? msgr__body(msg->recipient_id, type, tag, t, msg->reply_to_external_id, marker) : NULL;
    p->len = p->body != NULL ? strlen(p->body) : 0;
    bad |= p->body == NULL;
  }
  for (size_t i = 0; i < msg->attachment_count && !bad; i++) {
    const char *reply_to = o->n == 0 ? msg->reply_to_external_id : NULL;
    bad |= msgr__attachment_part(&o->parts[o->n++], routes[i], msg->recipient_id, type, tag, &msg->attachments[i],
                                 reply_to, marker) != 0;
  }
  if (bad || o->n == 0) {
    int empty = o->n == 0;
    msgr__out_free(o);
    m->host->send_fail(op, empty ? "the reply has no text and no attachment"
                                 : "the reply is not valid UTF-8, or an attachment's type is malformed");
    return SB_OK;
  }
  if (msg->idempotency_key != NULL) {
    snprintf(o->progress_key, sizeof(o->progress_key), "s:%.200s", msg->idempotency_key);
    size_t len = 0;
    const char *v = m->host->kv_get(m->channel, o->progress_key, &len);
    char mid[256] = "";
    unsigned long done = 0;
    if (v != NULL && sscanf(v, "%lu %255s", &done, mid) == 2 && done < o->n) {
      o->next = done; /* an earlier attempt sent these parts already */
      snprintf(o->first_mid, sizeof(o->first_mid), "%s", mid);
    }
  }
  msgr__post_next(o);
  return SB_OK;
}

/* --- connect ------------------------------------------------------------------ */

static void msgr__greeting_done(void *arg, const sb_http_client_response *res) {
  messenger *m = arg;
  m->sends--;
  if (res->status != SB_OK || res->http_status != 200) {
    meta_graph_error e;
    char reason[META_MAX_REASON + 64];
    meta_parse_error(res->body, res->body_len, &e);
    meta_reason(res->http_status, &e, reason, sizeof(reason));
    m->host->log(m->channel, SB_LOG_WARN, "could not set the Messenger greeting: %s",
                 res->status == SB_OK ? reason : "no answer");
  }
}

static void msgr__checked(void *arg, const sb_http_client_response *res) {
  messenger *m = arg;
  m->sends--;
  if (res->status == SB_ECANCELED) return;
  if (res->status == SB_OK && res->http_status == 200) {
    m->host->set_state(m->channel, SB_STATE_CONNECTED, NULL);
    if (m->greeting != NULL && m->greeting[0] != '\0') {
      json_t *g = json_pack("{s:[{s:s, s:s}]}", "greeting", "locale", "default", "text", m->greeting);
      char *body = g != NULL ? json_dumps(g, JSON_COMPACT) : NULL;
      json_decref(g);
      char url[600];
      snprintf(url, sizeof(url), "%s/me/messenger_profile", m->base);
      if (body != NULL && msgr_graph(m, "POST", url, body, msgr__greeting_done, m) != NULL) m->sends++;
      free(body);
    }
    return;
  }
  meta_graph_error e;
  char reason[META_MAX_REASON + 120];
  meta_parse_error(res->body, res->body_len, &e);
  if (res->status != SB_OK) {
    snprintf(reason, sizeof(reason), "the Graph API did not answer: %s", res->error != NULL ? res->error : "no answer");
  } else {
    meta_reason(res->http_status, &e, reason, sizeof(reason));
  }
  switch (res->status != SB_OK ? META_RETRY : meta_classify(META_API_MESSENGER, res->http_status, &e)) {
  case META_AUTH:
    m->auth_failed = 1;
    m->host->set_state(m->channel, SB_STATE_AUTH_FAILED,
                       "Meta refused the page access token; update page_access_token");
    break;
  case META_RETRY: m->host->set_state(m->channel, SB_STATE_DISCONNECTED, reason); break;
  default: {
    char why[sizeof(reason) + 80];
    snprintf(why, sizeof(why), "the Page %s cannot be read with this token: %s", m->page_id, reason);
    m->host->set_state(m->channel, SB_STATE_CONFIG_ERROR, why);
  }
  }
}

int msgr_connect(void *instance) {
  messenger *m = instance;
  char url[800];
  size_t len = (size_t)snprintf(url, sizeof(url), "%s/", m->base);
  len = meta_urlencode(url, sizeof(url), len, m->page_id);
  snprintf(url + len, sizeof(url) - len, "?fields=id,name");
  m->host->set_state(m->channel, SB_STATE_CONNECTING, NULL);
  if (msgr_graph(m, "GET", url, NULL, msgr__checked, m) == NULL) {
    m->host->set_state(m->channel, SB_STATE_DISCONNECTED, "the host did not take the Graph API request");
    return SB_OK;
  }
  m->sends++;
  return SB_OK;
}
