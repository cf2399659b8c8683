/* chat_conv.c — the conversation: visitors and their WebSockets, messages
 * from the widget to the help desk (emit_inbound), agents' replies pushed
 * to every open socket of the visitor (send), history and receipts.
 *
 * A message is never lost or doubled across reconnects: the widget gives
 * each message its own id (client_id), which becomes the inbound message's
 * external id, so a resend after a lost acknowledgement is deduplicated by
 * the core and acknowledged with the original's id; replies missed while
 * offline come back with history(after the last id the widget saw).
 *
 * Wire format (JSON text frames), widget → channel:
 *   {"type":"hello","after":"<message id>"|null}          → a "history" frame
 *   {"type":"message","client_id":"...","text":"...","name"?,"email"?,"page"?,
 *    "attachments"?:[{"filename","mime_type","data":"<base64>"}]} → "ack" once stored
 *   {"type":"seen","status":"delivered"|"read"}            → a delivery receipt
 *   {"type":"ping"}                                         → {"type":"pong"}
 * channel → widget: "history", "ack", "message", "error", "pong".
 */
#include "chat.h"

#include "email_address.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- visitors ------------------------------------------------------------------ */

#define CHAT_VISITOR_IDLE_MS (10 * 60 * 1000) /* a visitor without sockets is forgotten after this */
#define CHAT_FILE_LINK_TTL_S 86400u /* a file link in a reply or history frame works this long */

/* The visitor record of who/id, or NULL when there is none now: an
 * anonymous visitor and a verified user may have the same id, and are two
 * people. */
static chat_visitor *chat__visitor_of(chat *c, char who, const char *id) {
  for (chat_link *l = c->visitors.next; l != &c->visitors; l = l->next) {
    chat_visitor *v = (chat_visitor *)l;
    if (v->who == who && strcmp(v->id, id) == 0) return v;
  }
  return NULL;
}

chat_visitor *chat_visitor_get(chat *c, char who, const char *id) {
  chat_visitor *v = chat__visitor_of(c, who, id);
  if (v != NULL) {
    v->last_seen_ms = c->host->now_ms();
    return v;
  }
  v = calloc(1, sizeof(*v));
  if (v == NULL) return NULL;
  v->who = who;
  snprintf(v->id, sizeof(v->id), "%s", id);
  chat_list_init(&v->conns);
  v->last_seen_ms = c->host->now_ms();
  chat_list_add(&c->visitors, &v->link);
  return v;
}

void chat_visitors_prune(chat *c, int force) {
  int64_t now = c->host->now_ms();
  chat_link *l = c->visitors.next;
  while (l != &c->visitors) {
    chat_visitor *v = (chat_visitor *)l;
    l = l->next;
    if (force || (v->conn_count == 0 && now - v->last_seen_ms > CHAT_VISITOR_IDLE_MS)) {
      while (!chat_list_empty(&v->conns)) { /* only when forced: sockets the host never closed */
        chat_conn *cn = (chat_conn *)v->conns.next;
        chat_list_remove(&cn->link);
        cn->v = NULL;
      }
      chat_list_remove(&v->link);
      free(v);
    }
  }
}

uint32_t chat_identity_kind(char who) { return who == CHAT_WHO_USER ? SB_IDENTITY_CUSTOM : SB_IDENTITY_VISITOR; }

int chat_token_read(const chat *c, const char *token, char *who, char *id) {
  if (!c->have_key || token == NULL) return -1;
  int user = token[0] == CHAT_WHO_USER;
  if (user && c->identity_secret == NULL) return -1; /* verified identity is off: no user token holds */
  return chat_token_check(c->host->hmac_sha256, c->host->equal_ct, user ? c->user_key : c->token_key, 32, token,
                          who, id, CHAT_MAX_ID + 1);
}

int chat_token_sign(const chat *c, char who, const char *id, char *out, size_t outlen) {
  if (who == CHAT_WHO_USER && c->identity_secret == NULL) return -1;
  return chat_token_make(c->host->hmac_sha256, who == CHAT_WHO_USER ? c->user_key : c->token_key, 32, who, id, out,
                         outlen);
}

/* --- frames out --------------------------------------------------------------------- */

/* Sends obj (consumed) to one socket; a closing or slow socket misses it
 * (the widget catches up from history when it reconnects). */
static void chat__ws_send_json(chat *c, sb_ws *ws, json_t *obj) {
  char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (text == NULL || ws == NULL || !SB_HOST_HAS(c->host, ws_send)) {
    free(text);
    return;
  }
  if (c->host->ws_send(ws, SB_WS_TEXT, text, strlen(text)) == SB_EAGAIN) {
    c->host->ws_close(ws, SB_WS_CLOSE_POLICY, "too slow");
  }
  free(text);
}

/* Sends obj (borrowed) to every open socket of the visitor who/id, except
 * skip. */
static void chat__broadcast(chat *c, char who, const char *id, const json_t *obj, const chat_conn *skip) {
  chat_visitor *v = chat__visitor_of(c, who, id);
  if (v == NULL) return;
  for (chat_link *k = v->conns.next; k != &v->conns; k = k->next) {
    chat_conn *cn = (chat_conn *)k;
    if (cn != skip && cn->ws != NULL) chat__ws_send_json(c, cn->ws, json_incref((json_t *)obj));
  }
}

static json_t *chat__error_frame(const char *client_id, const char *code, const char *message) {
  json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
  if (o != NULL && client_id != NULL) json_object_set_new(o, "client_id", json_string(client_id));
  return o;
}

/* Drops a conn whose socket closed once nothing more is owed to it. */
static void chat__conn_release(chat_conn *cn) {
  cn->pending--;
  if (cn->pending == 0 && cn->ws == NULL) free(cn);
}

/* --- messages in ------------------------------------------------------------------------ */

/* One message waiting for its commit. */
typedef struct chat_inbound {
  chat *c;
  chat_conn *conn;       /* or NULL */
  sb_responder *r;       /* or NULL */
  char origin[256];
  char who;
  char id[CHAT_MAX_ID + 1];
  char client_id[CHAT_MAX_CLIENT_ID + 1];
  json_t *echo; /* the message as the visitor's other tabs should show it */
} chat_inbound;

static int chat__client_id_valid(const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;
  if (n == 0 || n > CHAT_MAX_CLIENT_ID) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
          ch == '_')) {
      return 0;
    }
  }
  return 1;
}

static int chat__b64val(char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+' || ch == '-') return 62;
  if (ch == '/' || ch == '_') return 63;
  return -1;
}

/* Decodes base64 (padding optional) into a malloc'd buffer; NULL when the
 * text is not base64 or memory ran out. */
static char *chat__unbase64(const char *s, size_t len, size_t *out_len) {
  while (len > 0 && s[len - 1] == '=') len--;
  if (len % 4 == 1) return NULL;
  char *out = malloc(len / 4 * 3 + 3);
  if (out == NULL) return NULL;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = chat__b64val(s[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  *out_len = o;
  return out;
}

/* True when type is one the channel takes (caps.attachment_types). */
static int chat__type_ok(const char *type) {
  static const char *const ok[] = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
                                   "text/plain", NULL};
  for (size_t i = 0; type != NULL && ok[i] != NULL; i++) {
    if (strcmp(type, ok[i]) == 0) return 1;
  }
  return 0;
}

__attribute__((format(printf, 4, 5))) static int chat__refuse(chat_refusal *why, int status, const char *code,
                                                               const char *fmt, ...) {
  va_list ap;
  why->status = status;
  why->code = code;
  va_start(ap, fmt);
  vsnprintf(why->message, sizeof(why->message), fmt, ap);
  va_end(ap);
  return -1;
}

/* emit_inbound's done: acknowledges the message to the socket (or the
 * HTTP request) that sent it, and shows it in the visitor's other tabs. */
static void chat__stored(void *arg, int status, const char *message_id, int duplicate) {
  chat_inbound *in = arg;
  chat *c = in->c;
  json_t *ack = NULL;
  /* A resend of what is stored, or a message the store could not take (the
   * widget sends it again), gives its rate token back: a flaky network must
   * not use up a visitor's messages. */
  chat_visitor *sender = duplicate || status != SB_OK ? chat__visitor_of(c, in->who, in->id) : NULL;
  if (sender != NULL) chat_bucket_give(&sender->bucket, c->rate_per_minute);
  if (status == SB_OK && message_id != NULL) {
    ack = json_pack("{s:s, s:s, s:s, s:b}", "type", "ack", "client_id", in->client_id, "id", message_id, "duplicate",
                    duplicate);
    if (!duplicate && in->echo != NULL) {
      json_object_set_new(in->echo, "id", json_string(message_id));
      chat__broadcast(c, in->who, in->id, in->echo, in->conn);
    }
  }
  if (in->conn != NULL) {
    if (in->conn->ws != NULL) {
      chat__ws_send_json(c, in->conn->ws,
                         ack != NULL ? json_incref(ack)
                                     : chat__error_frame(in->client_id, "unavailable",
                                                         "the message could not be stored; send it again"));
    }
    chat__conn_release(in->conn);
  } else if (in->r != NULL) {
    if (ack != NULL) {
      chat_http_json(c, in->r, 200, in->origin, json_incref(ack));
    } else {
      chat_http_error(c, in->r, 503, in->origin, "unavailable", "the message could not be stored; send it again");
    }
  }
  json_decref(ack);
  json_decref(in->echo);
  free(in);
}

/* Reads an optional short string member; -1 when present but not a
 * string, -2 when longer than max bytes. */
static int chat__opt_string(const json_t *o, const char *key, size_t max, const char **out) {
  const json_t *v = json_object_get(o, key);
  *out = NULL;
  if (v == NULL || json_is_null(v)) return 0;
  if (!json_is_string(v)) return -1;
  if (json_string_length(v) > max) return -2;
  *out = json_string_length(v) > 0 ? json_string_value(v) : NULL;
  return 0;
}

int chat_take_message(chat *c, chat_visitor *v, const json_t *frame, chat_conn *conn, sb_responder *r,
                      const char *origin, chat_refusal *why) {
  const char *client_id = json_string_value(json_object_get(frame, "client_id"));
  const char *text = NULL, *name = NULL, *email = NULL, *page = NULL;
  if (!chat__client_id_valid(client_id)) {
    return chat__refuse(why, 400, "invalid", "client_id must be 1-64 letters, digits, '-' or '_'");
  }
  int text_rc = chat__opt_string(frame, "text", (size_t)c->max_text_bytes, &text);
  if (text_rc == -1) return chat__refuse(why, 400, "invalid", "text must be a string");
  if (text_rc != 0) {
    return chat__refuse(why, 413, "too_large", "text must be a string of at most %lld bytes",
                        (long long)c->max_text_bytes);
  }
  if (chat__opt_string(frame, "name", 200, &name) != 0 || chat__opt_string(frame, "email", 254, &email) != 0 ||
      chat__opt_string(frame, "page", 1000, &page) != 0) {
    return chat__refuse(why, 400, "invalid", "name, email and page must be short strings");
  }
  if (email != NULL && (!sb_email_address_valid(email) || strpbrk(email, "<>\"") != NULL)) {
    return chat__refuse(why, 400, "invalid", "email must be an email address");
  }
  const json_t *atts = json_object_get(frame, "attachments");
  size_t natt = json_is_array(atts) ? json_array_size(atts) : 0;
  if (atts != NULL && !json_is_null(atts) && !json_is_array(atts)) {
    return chat__refuse(why, 400, "invalid", "attachments must be an array");
  }
  if (natt > CHAT_MAX_ATTACHMENTS) {
    return chat__refuse(why, 400, "invalid", "at most %d attachments a message", CHAT_MAX_ATTACHMENTS);
  }
  /* only blanks is no text either: an empty line for agents to read */
  if (text != NULL && strspn(text, " \t\r\n") == strlen(text)) text = NULL;
  if (text == NULL && natt == 0) return chat__refuse(why, 400, "invalid", "a message needs text or an attachment");
  if (!chat_bucket_take(&v->bucket, c->host->now_ms(), c->rate_per_minute)) {
    return chat__refuse(why, 429, "rate_limited", "too many messages; wait a moment and send it again");
  }
  sb_attachment a[CHAT_MAX_ATTACHMENTS];
  char *data[CHAT_MAX_ATTACHMENTS] = {NULL};
  memset(a, 0, sizeof(a));
  json_t *echo_atts = json_array();
  int bad = 0;
  for (size_t i = 0; i < natt && !bad; i++) {
    const json_t *item = json_array_get(atts, i);
    const char *b64 = json_string_value(json_object_get(item, "data"));
    a[i].filename = json_string_value(json_object_get(item, "filename"));
    a[i].mime_type = json_string_value(json_object_get(item, "mime_type"));
    if (b64 == NULL || !chat__type_ok(a[i].mime_type)) {
      bad = chat__refuse(why, 415, "unsupported_media_type", "attachment %zu: images, PDF and plain text only", i + 1);
    } else if (c->max_attachment_bytes == 0 ||
               (int64_t)json_string_length(json_object_get(item, "data")) / 4 * 3 > c->max_attachment_bytes + 3) {
      bad = chat__refuse(why, 413, "too_large", "attachment %zu is larger than %lld bytes", i + 1,
                         (long long)c->max_attachment_bytes);
    } else if ((data[i] = chat__unbase64(b64, json_string_length(json_object_get(item, "data")), &a[i].data_len)) ==
               NULL) {
      bad = chat__refuse(why, 400, "invalid", "attachment %zu: data must be base64", i + 1);
    } else if ((int64_t)a[i].data_len > c->max_attachment_bytes) {
      bad = chat__refuse(why, 413, "too_large", "attachment %zu is larger than %lld bytes", i + 1,
                         (long long)c->max_attachment_bytes);
    } else {
      a[i].data = data[i];
      a[i].size = a[i].data_len;
      if (a[i].filename == NULL || a[i].filename[0] == '\0') a[i].filename = "attachment";
      json_array_append_new(echo_atts, json_pack("{s:s, s:s, s:I}", "filename", a[i].filename, "mime_type",
                                                 a[i].mime_type, "size", (json_int_t)a[i].size));
    }
  }
  chat_inbound *in = bad ? NULL : calloc(1, sizeof(*in));
  if (!bad && in == NULL) bad = chat__refuse(why, 503, "unavailable", "out of memory; send it again");
  int rc = SB_OK;
  if (!bad) {
    char external_id[CHAT_MAX_ID + CHAT_MAX_CLIENT_ID + 8], meta[1200] = "";
    snprintf(external_id, sizeof(external_id), "%c:%s:%s", v->who, v->id, client_id);
    json_t *m = page != NULL ? json_pack("{s:s}", "page", page) : NULL;
    char *mtext = m != NULL ? json_dumps(m, JSON_COMPACT) : NULL;
    if (mtext != NULL) snprintf(meta, sizeof(meta), "%s", mtext);
    free(mtext);
    json_decref(m);
    sb_inbound_message msg = {.struct_size = sizeof(msg)};
    msg.external_id = external_id;
    msg.sender.kind = chat_identity_kind(v->who);
    msg.sender.id = v->id;
    msg.sender.name = name;
    msg.sender.email = email;
    msg.text = text;
    msg.attachments = natt > 0 ? a : NULL;
    msg.attachment_count = natt;
    msg.metadata_json = meta[0] != '\0' ? meta : NULL;
    in->c = c;
    in->conn = conn;
    in->r = r;
    snprintf(in->origin, sizeof(in->origin), "%s", origin != NULL ? origin : "");
    in->who = v->who;
    snprintf(in->id, sizeof(in->id), "%s", v->id);
    snprintf(in->client_id, sizeof(in->client_id), "%s", client_id);
    in->echo = json_pack("{s:s, s:s, s:s, s:s?, s:O, s:I}", "type", "message", "direction", "in", "client_id",
                         client_id, "text", text, "attachments", echo_atts, "ts", (json_int_t)c->host->now_ms());
    if (conn != NULL) conn->pending++;
    rc = c->host->emit_inbound(c->channel, &msg, chat__stored, in);
    if (rc != SB_OK) {
      if (conn != NULL) conn->pending--;
      json_decref(in->echo);
      free(in);
      bad = rc == SB_EINVAL ? chat__refuse(why, 400, "invalid", "the help desk refused the message")
                            : chat__refuse(why, 503, "unavailable", "the help desk cannot take messages now");
    }
  }
  for (size_t i = 0; i < CHAT_MAX_ATTACHMENTS; i++) free(data[i]); /* emit_inbound copied them */
  json_decref(echo_atts);
  return bad ? -1 : 0;
}

/* --- history -------------------------------------------------------------------------- */

typedef struct chat_historyq {
  chat *c;
  chat_conn *conn;
  sb_responder *r;
  char origin[256];
} chat_historyq;

/* The id of a file the help desk stores, from an attachment's JSON: its id
 * (a file the visitor sent), or its link /api/v1/attachments/{id} (a file an
 * agent sent); 0 when it is only a link elsewhere. */
static long long chat__stored_file(const json_t *a) {
  json_int_t id = json_integer_value(json_object_get(a, "id"));
  if (id > 0) return id;
  static const char prefix[] = "/api/v1/attachments/";
  const char *url = json_string_value(json_object_get(a, "url"));
  if (url == NULL || strncmp(url, prefix, sizeof(prefix) - 1) != 0) return 0;
  const char *d = url + sizeof(prefix) - 1;
  size_t n = strlen(d);
  return n > 0 && n <= 18 && strspn(d, "0123456789") == n ? strtoll(d, NULL, 10) : 0;
}

/* Points the stored files among atts at links the visitor can open (the
 * API's link needs an agent's token): the host's signed, expiring link
 * (ABI 1.4), which the widget opens on the daemon's origin. A host without
 * it leaves the links as they are (the widget shows the name only). */
static void chat__visitor_links(const chat *c, json_t *atts) {
  if (!SB_HOST_HAS(c->host, attachment_link)) return;
  size_t i;
  json_t *a;
  json_array_foreach(atts, i, a) {
    long long id = chat__stored_file(a);
    char link[160];
    if (id > 0 && c->host->attachment_link(c->channel, id, CHAT_FILE_LINK_TTL_S, link, sizeof(link)) > 0)
      json_object_set_new(a, "url", json_string(link));
  }
}

/* A reply's author as the visitor sees it, live and in history alike: its
 * agent, or without one (automatic, or sent by a script) the heading's name
 * and picture; null when there is neither. */
static json_t *chat__author(const chat *c, const char *agent_name, const char *agent_avatar_url) {
  const char *name = agent_name, *avatar = agent_avatar_url;
  if (name == NULL) {
    name = c->host->config_get(c->config, "heading_name");
    avatar = c->host->config_get(c->config, "heading_avatar_url");
  }
  return name != NULL ? json_pack("{s:s, s:s?}", "name", name, "avatar_url", avatar) : json_null();
}

/* One history message as the widget reads it. */
static json_t *chat__history_message(const chat *c, const sb_history_message *m) {
  json_t *o = json_pack("{s:s, s:s, s:s?, s:I, s:b}", "id", m->message_id, "direction",
                        m->direction == SB_DIRECTION_IN ? "in" : "out", "text", m->text, "ts",
                        (json_int_t)m->timestamp_ms, "automatic", (m->flags & SB_OUT_AUTOMATIC) != 0);
  if (o == NULL) return NULL;
  if (m->direction == SB_DIRECTION_IN && m->external_id != NULL) {
    const char *colon = strrchr(m->external_id, ':');
    if (colon != NULL) json_object_set_new(o, "client_id", json_string(colon + 1));
  }
  if (m->direction == SB_DIRECTION_OUT)
    json_object_set_new(o, "author", chat__author(c, m->author_name, m->author_avatar_url));
  json_t *atts = m->attachments_json != NULL ? json_loads(m->attachments_json, 0, NULL) : NULL;
  if (json_is_array(atts)) chat__visitor_links(c, atts);
  json_object_set_new(o, "attachments", json_is_array(atts) ? atts : json_array());
  if (!json_is_array(atts)) json_decref(atts);
  return o;
}

static void chat__history_done(void *arg, const sb_history *h) {
  chat_historyq *q = arg;
  chat *c = q->c;
  json_t *frame = NULL;
  if (h != NULL && h->status == SB_OK) {
    json_t *list = json_array();
    for (size_t i = 0; i < h->count; i++) json_array_append_new(list, chat__history_message(c, &h->messages[i]));
    frame = json_pack("{s:s, s:o, s:b}", "type", "history", "messages", list, "more", h->more != 0);
    if (frame != NULL && h->owner_name != NULL) {
      json_object_set_new(frame, "owner",
                          json_pack("{s:s, s:s?}", "name", h->owner_name, "avatar_url", h->owner_avatar_url));
    }
  }
  if (q->conn != NULL) {
    if (q->conn->ws != NULL) {
      chat__ws_send_json(c, q->conn->ws,
                         frame != NULL ? json_incref(frame)
                                       : chat__error_frame(NULL, "unavailable", "history could not be read"));
    }
    chat__conn_release(q->conn);
  } else if (q->r != NULL) {
    if (frame != NULL) {
      chat_http_json(c, q->r, 200, q->origin, json_incref(frame));
    } else {
      chat_http_error(c, q->r, 503, q->origin, "unavailable", "history could not be read; try again");
    }
  }
  json_decref(frame);
  free(q);
}

int chat_read_history(chat *c, char who, const char *id, const char *after, chat_conn *conn, sb_responder *r,
                      const char *origin, chat_refusal *why) {
  if (!SB_HOST_HAS(c->host, history)) {
    json_t *frame = json_pack("{s:s, s:[], s:b, s:b}", "type", "history", "messages", "more", 0, "unsupported", 1);
    if (conn != NULL) {
      chat__ws_send_json(c, conn->ws, frame);
    } else {
      chat_http_json(c, r, 200, origin, frame);
    }
    return 0;
  }
  /* a message id: digits, and no more than a 64-bit id holds (9223372036854775807) */
  size_t al = after != NULL ? strlen(after) : 0;
  if (after != NULL && (al == 0 || strspn(after, "0123456789") != al || al > 19 ||
                        (al == 19 && strcmp(after, "9223372036854775807") > 0))) {
    return chat__refuse(why, 400, "invalid", "after must be a message id");
  }
  chat_historyq *q = calloc(1, sizeof(*q));
  if (q == NULL) return chat__refuse(why, 503, "unavailable", "out of memory");
  q->c = c;
  q->conn = conn;
  q->r = r;
  snprintf(q->origin, sizeof(q->origin), "%s", origin != NULL ? origin : "");
  sb_history_request hr = {.struct_size = sizeof(hr)};
  hr.kind = chat_identity_kind(who);
  hr.id = id;
  hr.after_message_id = after;
  hr.limit = 100;
  if (conn != NULL) conn->pending++;
  int rc = c->host->history(c->channel, &hr, chat__history_done, q);
  if (rc != SB_OK) {
    if (conn != NULL) conn->pending--;
    free(q);
    return chat__refuse(why, 503, "unavailable", "history could not be read (code %d)", rc);
  }
  return 0;
}

/* --- WebSockets --------------------------------------------------------------------------- */

int chat_ws_open(void *instance, const sb_http_request *req, sb_ws *ws, void **out) {
  chat *c = instance;
  char token[CHAT_TOKEN_LEN + 1], who, id[CHAT_MAX_ID + 1];
  if (c->closing) return SB_EAGAIN;
  if (req->subpath == NULL || strcmp(req->subpath, "/ws") != 0) return SB_ENOENT;
  const char *origin = c->host->http_header(req, "Origin");
  if (!chat_origin_allowed(origin, c->origins, c->origin_count, c->host->http_header(req, "Host"))) {
    c->host->log(c->channel, SB_LOG_INFO, "refused a chat socket from origin %.100s",
                 origin != NULL ? origin : "(none)");
    return SB_EACCES;
  }
  if (c->host->http_query(req, "token", token, sizeof(token)) < 0 || chat_token_read(c, token, &who, id) != 0) {
    return SB_EACCES;
  }
  chat_visitor *v = chat_visitor_get(c, who, id);
  if (v == NULL) return SB_ENOMEM;
  if (v->conn_count >= CHAT_MAX_CONNS_PER_VISITOR) return SB_EAGAIN;
  chat_conn *cn = calloc(1, sizeof(*cn));
  if (cn == NULL) return SB_ENOMEM;
  cn->c = c;
  cn->v = v;
  cn->ws = ws;
  chat_list_add(&v->conns, &cn->link);
  v->conn_count++;
  *out = cn;
  return SB_OK;
}

int chat_seen_valid(const json_t *frame) {
  const char *status = json_string_value(json_object_get(frame, "status"));
  return status != NULL && (strcmp(status, "read") == 0 || strcmp(status, "delivered") == 0);
}

void chat_seen(chat *c, const chat_visitor *v, const json_t *frame) {
  const char *status = json_string_value(json_object_get(frame, "status"));
  sb_status_update u = {.struct_size = sizeof(u)};
  u.status = status != NULL && strcmp(status, "read") == 0 ? SB_STATUS_READ : SB_STATUS_DELIVERED;
  u.flags = SB_STATUS_WATERMARK;
  u.recipient_id = v->id;
  u.recipient_kind = chat_identity_kind(v->who);
  u.timestamp_ms = c->host->now_ms();
  c->host->emit_status(c->channel, &u);
}

void chat_ws_message(void *instance, sb_ws *ws, void *conn, uint32_t kind, const char *data, size_t len) {
  chat *c = instance;
  chat_conn *cn = conn;
  if (cn->v == NULL || c->closing) return;
  if (kind != SB_WS_TEXT) {
    c->host->ws_close(ws, SB_WS_CLOSE_POLICY, "text frames only");
    return;
  }
  const char *bad = NULL;
  json_t *frame = chat_json_object(data, len, JSON_REJECT_DUPLICATES, &bad); /* as over HTTP */
  const char *type = json_string_value(json_object_get(frame, "type"));
  chat_refusal why;
  if (type == NULL) {
    chat__ws_send_json(c, ws, chat__error_frame(NULL, "invalid", bad != NULL ? bad : "every frame is a JSON object with a type"));
  } else if (strcmp(type, "ping") == 0) {
    chat__ws_send_json(c, ws, json_pack("{s:s}", "type", "pong"));
  } else if (strcmp(type, "hello") == 0) {
    const json_t *given = json_object_get(frame, "after");
    const char *after = json_string_value(given);
    int64_t now = c->host->now_ms();
    if (given != NULL && !json_is_null(given) && after == NULL) {
      chat__ws_send_json(c, ws, chat__error_frame(NULL, "invalid", "after must be a message id (a string) or null"));
    } else if (now - cn->last_read_ms < CHAT_MIN_FRAME_GAP_MS) { /* each read is a store query */
      chat__ws_send_json(c, ws, chat__error_frame(NULL, "rate_limited", "one history read a second"));
    } else {
      cn->last_read_ms = now;
      if (chat_read_history(c, cn->v->who, cn->v->id, after, cn, NULL, NULL, &why) != 0) {
        chat__ws_send_json(c, ws, chat__error_frame(NULL, why.code, why.message));
      }
    }
  } else if (strcmp(type, "message") == 0) {
    if (chat_take_message(c, cn->v, frame, cn, NULL, NULL, &why) != 0) {
      chat__ws_send_json(c, ws,
                         chat__error_frame(json_string_value(json_object_get(frame, "client_id")), why.code,
                                           why.message));
    }
  } else if (strcmp(type, "seen") == 0 && !chat_seen_valid(frame)) {
    chat__ws_send_json(c, ws, chat__error_frame(NULL, "invalid", "a seen frame's status is delivered or read"));
  } else if (strcmp(type, "seen") == 0) {
    int64_t now = c->host->now_ms();
    if (now - cn->last_receipt_ms >= CHAT_MIN_FRAME_GAP_MS) { /* each receipt is a store write */
      cn->last_receipt_ms = now;
      chat_seen(c, cn->v, frame);
    }
  } else {
    chat__ws_send_json(c, ws, chat__error_frame(NULL, "invalid", "unknown frame type"));
  }
  json_decref(frame);
}

void chat_ws_closed(void *instance, sb_ws *ws, void *conn, int code) {
  chat_conn *cn = conn;
  (void)instance;
  (void)ws;
  (void)code;
  if (cn->v != NULL) {
    chat_list_remove(&cn->link);
    cn->v->conn_count--;
    cn->v->last_seen_ms = cn->c->host->now_ms();
    cn->v = NULL;
  }
  cn->ws = NULL;
  if (cn->pending == 0) free(cn);
}

/* --- messages out ----------------------------------------------------------------------------- */

/* send(): pushes the reply to every open socket of the visitor and
 * completes at once with the help desk's id as the external id. A visitor
 * with no socket open reads it from history when the widget next connects:
 * the store, not the socket, is the record. */
int chat_send(void *instance, const sb_outbound_message *m, sb_send_op *op) {
  chat *c = instance;
  if (c->closing) return SB_ECANCELED;
  if (m->message_id == NULL || m->recipient_id == NULL) {
    c->host->send_fail(op, "the message has no id or no recipient");
    return SB_OK;
  }
  int automatic = (m->flags & SB_OUT_AUTOMATIC) != 0;
  json_t *atts = json_array();
  for (size_t i = 0; i < m->attachment_count; i++) {
    const sb_attachment *a = &m->attachments[i];
    json_array_append_new(atts, json_pack("{s:s?, s:s?, s:s?, s:I}", "url", a->url, "mime_type", a->mime_type,
                                          "filename", a->filename, "size", (json_int_t)a->size));
  }
  chat__visitor_links(c, atts);
  json_t *frame = json_pack("{s:s, s:s, s:s, s:s?, s:o, s:I, s:b}", "type", "message", "id", m->message_id,
                            "direction", "out", "text", m->text, "attachments", atts, "ts",
                            (json_int_t)c->host->now_ms(), "automatic", automatic);
  if (frame == NULL) {
    c->host->send_fail(op, "the reply could not be written as JSON (its text is not valid UTF-8)");
    return SB_OK;
  }
  json_object_set_new(frame, "author", chat__author(c, automatic ? NULL : m->agent_name, m->agent_avatar_url));
  /* the id's shape tells whose it is: a user's never looks like a visitor's */
  chat__broadcast(c, chat_visitor_id_shape(m->recipient_id) ? CHAT_WHO_VISITOR : CHAT_WHO_USER, m->recipient_id,
                  frame, NULL);
  json_decref(frame);
  c->host->send_ok(op, m->message_id);
  return SB_OK;
}
