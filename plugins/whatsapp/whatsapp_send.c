/* whatsapp_send.c — WhatsApp outbound: connect check, Cloud API messages, templates and the 24-hour window.
 *
 * The customer-service window is counted from the customer's last message:
 * the larger of sb_outbound_message.last_inbound_ms and the plugin's own
 * "t:WA_ID" record (the customer's webhook timestamp). Within 24 hours any
 * message goes; outside it only a template (template_json). Outside it,
 * free text fails at once with a reason that names the default
 * re-engagement template when one is set, and a template that comes with
 * text or attachments is refused whole, before anything is sent: the
 * agent sees that nothing went out rather than a "sent" reply whose words
 * the customer never got. Automatic messages never go outside it.
 *
 * A reply is one Cloud API call per part, in this order: the template, the
 * text, then each attachment (one media per message, no caption). Progress
 * is kept under "s:<idempotency key>" so a retry resumes after the parts
 * already sent; the first part's wamid is the external id. A part that
 * fails for good after others went out says which went out, so the agent
 * does not send them twice.
 *
 * An attachment the help desk holds (the host hands over its bytes) is
 * uploaded to /{phone-number-id}/media just before its message, which then
 * names the media id (whatsapp_upload.c decides and builds the form).
 * Progress counts messages sent, not uploads: a retry after an upload
 * whose message failed uploads the file again (Meta keeps unused media for
 * 30 days and the id is not reused), and never sends a part twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "whatsapp.h"

#define WA_DAY_MS (24LL * 3600 * 1000)
#define WA_HOLD_AUTH_MS (15u * 60 * 1000)
#define WA_RATE_LIMIT_MS (60u * 1000)
#define WA_MAX_ATTACHMENTS 10
#define WA_MAX_PARTS (WA_MAX_ATTACHMENTS + 2) /* the template, the text, the attachments */

#define WA_UPLOAD_MS_PER_MIB 1000u /* an upload's time on top of request_timeout */

/* One message of a reply. An uploaded attachment's has its form and its
 * message without the media id (pending) until Meta names the media. */
typedef struct wa_part {
  char *body; /* the message's JSON; NULL until an upload is done */
  char *form; /* the /media form (form_len bytes), or NULL */
  size_t form_len;
  char form_type[META_FORM_TYPE_MAX];
  json_t *pending;
  size_t attachment; /* which attachment (1-based) an upload is, for reasons */
} wa_part;

typedef struct wa_out {
  struct wa_out *next_out; /* in w->outs */
  int detached;            /* disconnect() completed it: the callback only frees it */
  whatsapp *w;
  sb_send_op *op;
  wa_part parts[WA_MAX_PARTS];
  const char *kinds[WA_MAX_PARTS]; /* each part's Cloud API type, for reasons */
  size_t n, next;
  char first_id[256];
  char progress_key[256];
} wa_out;

static void wa__out_free(wa_out *o) {
  for (wa_out **p = &o->w->outs; *p != NULL; p = &(*p)->next_out) {
    if (*p == o) {
      *p = o->next_out;
      break;
    }
  }
  for (size_t i = 0; i < o->n; i++) {
    free(o->parts[i].body);
    free(o->parts[i].form);
    json_decref(o->parts[i].pending);
  }
  o->w->calls--;
  free(o);
}

/* Names the parts [from, to) of o for an agent: "the template, the text and 2 attachments". */
static void wa__describe(const wa_out *o, size_t from, size_t to, char *out, size_t outlen) {
  int tmpl = 0, text = 0;
  size_t media = 0;
  for (size_t i = from; i < to && i < o->n; i++) {
    if (strcmp(o->kinds[i], "template") == 0)
      tmpl = 1;
    else if (strcmp(o->kinds[i], "text") == 0)
      text = 1;
    else
      media++;
  }
  char m[48];
  snprintf(m, sizeof(m), "%zu attachment%s", media, media == 1 ? "" : "s");
  const char *item[3];
  int k = 0;
  if (tmpl) item[k++] = "the template";
  if (text) item[k++] = "the text";
  if (media > 0) item[k++] = m;
  if (k == 0)
    snprintf(out, outlen, "nothing");
  else if (k == 1)
    snprintf(out, outlen, "%s", item[0]);
  else if (k == 2)
    snprintf(out, outlen, "%s and %s", item[0], item[1]);
  else
    snprintf(out, outlen, "%s, %s and %s", item[0], item[1], item[2]);
}

/* Completes the send: 0 ok (text is the external id), 1 retry, 2 failed for good, 3 held (deferred,
 * released when the channel runs again; the parts sent stay recorded). A failure after some
 * parts went out says which, since the host can only mark the whole reply failed. */
static void wa__finish(wa_out *o, int outcome, const char *text, uint32_t after) {
  whatsapp *w = o->w;
  char partial[META_MAX_REASON * 2 + 1200];
  if (outcome == 2 && o->next > 0) {
    char sent[128], rest[128];
    wa__describe(o, 0, o->next, sent, sizeof(sent));
    wa__describe(o, o->next, o->n, rest, sizeof(rest));
    snprintf(partial, sizeof(partial), "%s went out, but not %s: %s", sent, rest, text);
    text = partial;
  }
  /* The parts sent stay recorded for the resume (a retry, or one the agent
   * asks for after a failure: the same key) unless all or none went. */
  if ((outcome == 0 || (outcome == 2 && o->next == 0)) && o->progress_key[0] != '\0')
    w->host->kv_delete(w->channel, o->progress_key, NULL, NULL);
  if (outcome == 0)
    w->host->send_ok(o->op, text);
  else if (outcome == 1)
    w->host->send_retry(o->op, after, text);
  else if (outcome == 3) /* held: released, in order, when the channel runs again */
    meta_send_hold(w->host, o->op, after, text);
  else
    w->host->send_fail(o->op, text);
  wa__out_free(o);
}

static void wa__post_next(wa_out *o);
static const char *wa__media_type(const char *mime);
static void wa__refused(wa_out *o, const sb_http_client_response *res, const char *what);

/* The reason for an agent when WhatsApp wants a template. */
static void wa__reengage_reason(const whatsapp *w, const char *why, char *out, size_t outlen) {
  snprintf(out, outlen, "re-engagement required: %s; only a template message can reopen the conversation%s%s%s", why,
           w->template_name != NULL ? " (the channel's default is \"" : "",
           w->template_name != NULL ? w->template_name : "", w->template_name != NULL ? "\")" : "");
}

static void wa__posted(void *arg, const sb_http_client_response *res) {
  wa_out *o = arg;
  whatsapp *w = o->w;
  if (o->detached) {
    wa__out_free(o);
    return;
  }
  char reason[META_MAX_REASON * 2 + 200];
  if (res->status != SB_OK) {
    snprintf(reason, sizeof(reason), "the Cloud API did not answer: %s",
             res->status == SB_ECANCELED ? "the channel closed" : (res->error != NULL ? res->error : "no answer"));
    wa__finish(o, 1, reason, 0);
    return;
  }
  if (res->http_status == 200) {
    json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(json_array_get(json_object_get(root, "messages"), 0), "id"));
    if (id == NULL) {
      json_decref(root);
      wa__finish(o, 1, "the Cloud API answered 200 without messages[0].id", 0);
      return;
    }
    if (o->first_id[0] == '\0')
      snprintf(o->first_id, sizeof(o->first_id), "%s", id);
    else
      wa_part_remember(w, id, o->first_id);
    json_decref(root);
    if (++o->next < o->n) {
      if (o->progress_key[0] != '\0') {
        char v[300];
        snprintf(v, sizeof(v), "%zu %s", o->next, o->first_id);
        w->host->kv_set(w->channel, o->progress_key, v, strlen(v), NULL, NULL);
      }
      wa__post_next(o);
    } else {
      wa__finish(o, 0, o->first_id, 0);
    }
    return;
  }
  wa__refused(o, res, "");
}

/* Completes o after Meta refused a call (res has an HTTP status other than
 * 200), as the Cloud API error table says; what prefixes the reason. */
static void wa__refused(wa_out *o, const sb_http_client_response *res, const char *what) {
  whatsapp *w = o->w;
  char graph[META_MAX_REASON * 2 + 100], reason[sizeof(graph) + 100];
  meta_graph_error e;
  meta_parse_error(res->body, res->body_len, &e);
  meta_reason(res->http_status, &e, graph, sizeof(graph));
  snprintf(reason, sizeof(reason), "%s%s", what, graph);
  switch (meta_classify(META_API_WHATSAPP, res->http_status, &e)) {
  case META_AUTH:
    wa_auth_failed(w);
    wa__finish(o, 3, "held: Meta refused the WhatsApp access token; the operator must update it", WA_HOLD_AUTH_MS);
    return;
  case META_REENGAGE: {
    char why[sizeof(reason) + 200];
    wa__reengage_reason(w, "more than 24 hours have passed since the customer last wrote", why, sizeof(why));
    wa__finish(o, 2, why, 0);
    return;
  }
  case META_RETRY: {
    uint32_t after = res->http_status == 429 || e.code == 4 || e.code == 80007 || e.code == 130429 || e.code == 131056
                         ? WA_RATE_LIMIT_MS
                         : 0;
    wa__finish(o, 1, reason, after);
    return;
  }
  default: wa__finish(o, 2, reason, 0);
  }
}

void wa_send_cancel_all(whatsapp *w) {
  for (wa_out *o = w->outs; o != NULL; o = o->next_out) {
    if (o->detached) continue;
    o->detached = 1;
    w->host->send_retry(o->op, 0, "cancelled: the channel closed before Meta answered");
    o->op = NULL;
  }
}

/* The upload of the current part answered: its media id completes the part's message, which goes next. */
static void wa__uploaded(void *arg, const sb_http_client_response *res) {
  wa_out *o = arg;
  if (o->detached) {
    wa__out_free(o);
    return;
  }
  wa_part *p = &o->parts[o->next];
  char what[64], reason[META_MAX_REASON + 160];
  snprintf(what, sizeof(what), "uploading attachment %zu failed: ", p->attachment);
  if (res->status != SB_OK) {
    snprintf(reason, sizeof(reason), "%sthe Cloud API did not answer: %s", what,
             res->status == SB_ECANCELED ? "the channel closed" : (res->error != NULL ? res->error : "no answer"));
    wa__finish(o, 1, reason, 0);
    return;
  }
  if (res->http_status != 200) {
    wa__refused(o, res, what);
    return;
  }
  json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
  const char *id = json_string_value(json_object_get(root, "id"));
  json_t *media = json_object_get(p->pending, o->kinds[o->next]);
  if (id != NULL) json_object_set_new(media, "id", json_string(id));
  json_decref(root);
  if (id == NULL) {
    snprintf(reason, sizeof(reason), "%sthe Cloud API answered 200 without the media id", what);
    wa__finish(o, 1, reason, 0);
    return;
  }
  p->body = json_dumps(p->pending, JSON_COMPACT);
  free(p->form); /* the bytes went: no need to hold them while the message goes */
  p->form = NULL;
  if (p->body == NULL) {
    wa__finish(o, 1, "out of memory", 0);
    return;
  }
  wa__post_next(o);
}

/* Posts the current part: its upload when the media is not yet Meta's, else its message. */
static void wa__post_next(wa_out *o) {
  whatsapp *w = o->w;
  const wa_part *p = &o->parts[o->next];
  char url[800];
  size_t len = (size_t)snprintf(url, sizeof(url), "%s/", w->base);
  len = meta_urlencode(url, sizeof(url), len, w->phone_number_id);
  sb_http_call *call;
  if (p->body == NULL) {
    snprintf(url + len, sizeof(url) - len, "/media");
    uint32_t mib = (uint32_t)(p->form_len / (1024 * 1024)) + 1;
    call = wa_graph_form(w, url, p->form_type, p->form, p->form_len, w->timeout_ms + mib * WA_UPLOAD_MS_PER_MIB,
                         wa__uploaded, o);
  } else {
    snprintf(url + len, sizeof(url) - len, "/messages");
    call = wa_graph(w, "POST", url, p->body, 64 * 1024, wa__posted, o);
  }
  if (call == NULL) wa__finish(o, 1, "the host did not take the Cloud API request", 0);
}

/* A Cloud API message of the given type with its object (stolen), or NULL. */
static json_t *wa__message(const char *to, const char *type, json_t *obj, const char *reply_to) {
  json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:o}", "messaging_product", "whatsapp", "recipient_type", "individual",
                           "to", to, "type", type, type, obj);
  if (root != NULL && reply_to != NULL && reply_to[0] != '\0')
    json_object_set_new(root, "context", json_pack("{s:s}", "message_id", reply_to));
  return root;
}

/* The same as JSON text (malloc'd), or NULL. */
static char *wa__body(const char *to, const char *type, json_t *obj, const char *reply_to) {
  json_t *root = wa__message(to, type, obj, reply_to);
  char *s = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  return s;
}

/* Fills p for attachment a (number i, 0-based) going by route: a message by link, or an upload and the
 * message that will name its media. Returns 0, or -1 when it cannot be built. */
static int wa__attachment_part(wa_part *p, const char **kind, int route, const char *upload_type, const char *to,
                               const sb_attachment *a, size_t i, const char *reply_to) {
  const char *type = route == WA_BY_UPLOAD ? upload_type : wa__media_type(a->mime_type);
  json_t *m = route == WA_BY_UPLOAD ? json_object() : json_pack("{s:s}", "link", a->url);
  if (m != NULL && strcmp(type, "document") == 0 && a->filename != NULL)
    json_object_set_new(m, "filename", json_string(a->filename));
  *kind = type;
  if (route == WA_BY_LINK) {
    p->body = m != NULL ? wa__body(to, type, m, reply_to) : NULL;
    return p->body != NULL ? 0 : -1;
  }
  p->attachment = i + 1;
  p->pending = m != NULL ? wa__message(to, type, m, reply_to) : NULL;
  if (p->pending == NULL) return -1;
  return wa_upload_form(a, &p->form, &p->form_len, p->form_type) == SB_OK ? 0 : -1;
}

/* The Cloud API template object for template_json {"name","language","parameters":[...]}; a missing name
 * or language falls back to the channel's default re-engagement template. NULL with why when unusable. */
static json_t *wa__template(const whatsapp *w, const char *template_json, char *why, size_t whylen) {
  json_t *t = json_loads(template_json, 0, NULL);
  if (!json_is_object(t)) {
    json_decref(t);
    snprintf(why, whylen, "the reply's template is not a JSON object");
    return NULL;
  }
  const char *name = json_string_value(json_object_get(t, "name"));
  const json_t *lang = json_object_get(t, "language");
  const char *code = json_is_string(lang) ? json_string_value(lang) : json_string_value(json_object_get(lang, "code"));
  if (name == NULL) name = w->template_name;
  if (code == NULL) code = w->template_language != NULL ? w->template_language : "en_US";
  if (name == NULL) {
    json_decref(t);
    snprintf(why, whylen, "the reply's template names no template and the channel has no reengagement_template");
    return NULL;
  }
  json_t *out = json_pack("{s:s, s:{s:s}}", "name", name, "language", "code", code);
  const json_t *params = json_object_get(t, "parameters");
  if (json_array_size(params) > 0) {
    json_t *list = json_array();
    for (size_t i = 0; i < json_array_size(params); i++) {
      const json_t *p = json_array_get(params, i);
      if (json_is_string(p))
        json_array_append_new(list, json_pack("{s:s, s:s}", "type", "text", "text", json_string_value(p)));
      else if (json_is_object(p))
        json_array_append_new(list, json_deep_copy(p));
    }
    json_object_set_new(out, "components", json_pack("[{s:s, s:o}]", "type", "body", "parameters", list));
  }
  json_decref(t);
  return out;
}

/* The Cloud API media type for a MIME type. */
static const char *wa__media_type(const char *mime) {
  if (mime == NULL) return "document";
  if (strncmp(mime, "image/webp", 10) == 0) return "sticker";
  if (strncmp(mime, "image/", 6) == 0) return "image";
  if (strncmp(mime, "audio/", 6) == 0) return "audio";
  if (strncmp(mime, "video/", 6) == 0) return "video";
  return "document";
}

int wa_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
  whatsapp *w = instance;
  char why[600];
  if (w->closing) return SB_ECANCELED;
  if (msg->recipient_id == NULL || msg->recipient_id[0] == '\0') {
    w->host->send_fail(op, "the reply has no recipient phone number");
    return SB_OK;
  }
  if (w->auth_failed) {
    meta_send_hold(w->host, op, WA_HOLD_AUTH_MS,
                   "held: Meta refused the WhatsApp access token; the operator must update it");
    return SB_OK;
  }
  const char *to = msg->recipient_id[0] == '+' ? msg->recipient_id + 1 : msg->recipient_id;
  int64_t last = msg->last_inbound_ms, own = wa_kv_int(w, "t:", to);
  if (own > last) last = own;
  int64_t now = w->host->now_ms();
  int inside = last > 0 && now - last <= WA_DAY_MS;
  int is_template = msg->template_json != NULL && msg->template_json[0] != '\0';
  if (!inside && (msg->flags & SB_OUT_AUTOMATIC)) {
    w->host->send_fail(op, "outside the 24-hour window: automatic messages are sent only within it");
    return SB_OK;
  }
  if (msg->attachment_count > WA_MAX_ATTACHMENTS) {
    w->host->send_fail(op, "WhatsApp replies take at most 10 attachments");
    return SB_OK;
  }
  int routes[WA_MAX_ATTACHMENTS];
  const char *upload_types[WA_MAX_ATTACHMENTS] = {NULL};
  for (size_t i = 0; i < msg->attachment_count; i++) {
    if ((routes[i] = wa_attachment_route(&msg->attachments[i], i, &upload_types[i], why, sizeof(why))) == 0) {
      w->host->send_fail(op, why);
      return SB_OK;
    }
  }
  wa_out *o = calloc(1, sizeof(*o));
  if (o == NULL) return SB_ENOMEM;
  o->w = w;
  o->op = op;
  w->calls++;
  o->next_out = w->outs;
  w->outs = o;
  /* Every attempt builds the same parts in the same order, so the progress record of an earlier one applies. */
  int bad = 0;
  if (is_template) {
    json_t *t = wa__template(w, msg->template_json, why, sizeof(why));
    if (t == NULL) {
      wa__out_free(o);
      w->host->send_fail(op, why);
      return SB_OK;
    }
    o->kinds[o->n] = "template";
    o->parts[o->n].body = wa__body(to, "template", t, msg->reply_to_external_id);
    bad |= o->parts[o->n++].body == NULL;
  }
  if (msg->text != NULL && msg->text[0] != '\0' && !bad) {
    int preview = strstr(msg->text, "http://") != NULL || strstr(msg->text, "https://") != NULL;
    json_t *t = json_pack("{s:b, s:s}", "preview_url", preview, "body", msg->text);
    o->kinds[o->n] = "text";
    o->parts[o->n].body = t != NULL ? wa__body(to, "text", t, o->n == 0 ? msg->reply_to_external_id : NULL) : NULL;
    bad |= o->parts[o->n++].body == NULL;
  }
  for (size_t i = 0; i < msg->attachment_count && !bad; i++) {
    const char *reply_to = o->n == 0 ? msg->reply_to_external_id : NULL;
    bad |= wa__attachment_part(&o->parts[o->n], &o->kinds[o->n], routes[i], upload_types[i], to, &msg->attachments[i],
                               i, reply_to) != 0;
    o->n++;
  }
  if (bad || o->n == 0) {
    int empty = o->n == 0;
    wa__out_free(o);
    w->host->send_fail(op, empty ? "the reply has no text, template or attachment"
                                 : "the reply is not valid UTF-8, or an attachment's type is malformed");
    return SB_OK;
  }
  if (msg->idempotency_key != NULL) {
    snprintf(o->progress_key, sizeof(o->progress_key), "s:%.200s", msg->idempotency_key);
    size_t len = 0;
    const char *v = w->host->kv_get(w->channel, o->progress_key, &len);
    char id[256] = "";
    unsigned long done = 0;
    if (v != NULL && sscanf(v, "%lu %255s", &done, id) == 2 && done < o->n) {
      o->next = done; /* an earlier attempt sent these parts already */
      snprintf(o->first_id, sizeof(o->first_id), "%s", id);
    }
  }
  /* Outside the window only the template may go: free-form parts still to send end the reply here. */
  size_t first_free = is_template ? 1 : 0;
  if (!inside && o->n > (o->next > first_free ? o->next : first_free)) {
    char when[96];
    if (last <= 0)
      snprintf(when, sizeof(when), "the customer has not written to this number");
    else
      snprintf(when, sizeof(when), "the customer last wrote %lld hours ago, outside the 24-hour window",
               (long long)((now - last) / 3600000));
    if (is_template && o->next == 0) {
      char rest[128];
      wa__describe(o, 1, o->n, rest, sizeof(rest));
      snprintf(why, sizeof(why),
               "nothing was sent: %s, where WhatsApp takes only a template, not %s with it; send the template "
               "alone, and %s once the customer answers",
               when, rest, rest);
    } else {
      /* Free text alone, or an earlier attempt's parts went out inside the window (wa__finish names them). */
      wa__reengage_reason(w, when, why, sizeof(why));
    }
    wa__finish(o, 2, why, 0);
    return SB_OK;
  }
  wa__post_next(o);
  return SB_OK;
}

/* --- connect ------------------------------------------------------------------------ */

static void wa__checked(void *arg, const sb_http_client_response *res) {
  whatsapp *w = arg;
  w->calls--;
  if (res->status == SB_ECANCELED) return;
  if (res->status == SB_OK && res->http_status == 200) {
    w->host->set_state(w->channel, SB_STATE_CONNECTED, NULL);
    return;
  }
  meta_graph_error e;
  char reason[META_MAX_REASON * 2 + 120];
  meta_parse_error(res->body, res->body_len, &e);
  if (res->status != SB_OK) {
    snprintf(reason, sizeof(reason), "the Graph API did not answer: %s", res->error != NULL ? res->error : "no answer");
  } else {
    meta_reason(res->http_status, &e, reason, sizeof(reason));
  }
  switch (res->status != SB_OK ? META_RETRY : meta_classify(META_API_WHATSAPP, res->http_status, &e)) {
  case META_AUTH: wa_auth_failed(w); break;
  case META_RETRY: w->host->set_state(w->channel, SB_STATE_DISCONNECTED, reason); break;
  default: {
    char why[sizeof(reason) + 80];
    snprintf(why, sizeof(why), "the phone number %s cannot be read with this token: %s", w->phone_number_id, reason);
    w->host->set_state(w->channel, SB_STATE_CONFIG_ERROR, why);
  }
  }
}

int wa_connect(void *instance) {
  whatsapp *w = instance;
  char url[800];
  size_t len = (size_t)snprintf(url, sizeof(url), "%s/", w->base);
  len = meta_urlencode(url, sizeof(url), len, w->phone_number_id);
  snprintf(url + len, sizeof(url) - len, "?fields=id,display_phone_number,verified_name");
  w->host->set_state(w->channel, SB_STATE_CONNECTING, NULL);
  if (wa_graph(w, "GET", url, NULL, 64 * 1024, wa__checked, w) == NULL) {
    w->host->set_state(w->channel, SB_STATE_DISCONNECTED, "the host did not take the Graph API request");
    return SB_OK;
  }
  w->calls++;
  return SB_OK;
}
