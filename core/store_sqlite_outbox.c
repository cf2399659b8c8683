/* store_sqlite_outbox.c — the outbound half: agent replies, outbox claims and
 * send results, delivery receipts. */
#include "store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- agent reply ---- */

typedef struct sq_reply {
  sq_req base;
  int64_t thread_id, user_id, reply_to;
  char *text, *html, *channel, *ticket_status, *attachments, *template_json, *canned;
  json_t *props;
  router_reply_cb cb;
  void *arg;
  int64_t message_id;
} sq_reply;

static void sq__reply_free(sq_reply *q) {
  free(q->text);
  free(q->html);
  free(q->channel);
  free(q->ticket_status);
  free(q->attachments);
  free(q->template_json);
  free(q->canned);
  json_decref(q->props);
  free(q);
}

/* A reply through a channel where the contact has no identity yet: one that
 * reaches email addresses starts the conversation at the contact's address,
 * which becomes the contact's identity there (so their answer comes back to
 * them). Otherwise, or without an address, the reply is refused. */
static int sq__start_by_email(store *st, sq_req *r, const char *channel, int64_t contact) {
  const router_channel *ch = sq_channel(st, channel);
  char email[320] = "";
  sqlite3_stmt *s;
  if (ch != NULL && ch->start_by_email) {
    s = sq_prep(st, "SELECT lower(trim(email)) FROM contacts WHERE id = ?1 AND email LIKE '%_@_%'");
    if (s == NULL) return sq_fail(st, r, "reading the contact's address");
    sqlite3_bind_int64(s, 1, contact);
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(email, sizeof(email), "%s", sq_col_text(s, 0));
    sqlite3_reset(s);
  }
  if (email[0] == '\0') {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "the contact cannot be reached on channel \"%.120s\"%s", channel,
             ch != NULL && ch->start_by_email ? ": they have no email address" : "");
    return -EINVAL;
  }
  s = sq_prep(st, "INSERT INTO identities(channel, kind, value, contact_id) VALUES(?1, 'email', ?2, ?3)"
                  " ON CONFLICT(channel, kind, value) DO NOTHING");
  if (s == NULL) return sq_fail(st, r, "recording the contact's address");
  sq_bind_text(s, 1, channel);
  sq_bind_text(s, 2, email);
  sqlite3_bind_int64(s, 3, contact);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "recording the contact's address");
  if (sqlite3_changes(st->db) == 0) {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "%.120s is another contact's address on channel \"%.60s\": merge the contacts first",
             email, channel);
    return -EINVAL;
  }
  sq_caches_clear(st);
  return 0;
}

int sq_reply_channel(store *st, sq_req *r, const char *thread_channel, const char *asked, int64_t contact,
                     char *out, size_t len) {
  const router_channel *home = sq_channel(st, thread_channel);
  const char *channel = asked != NULL                                 ? asked
                        : home != NULL && home->reply_channel != NULL ? home->reply_channel
                                                                      : thread_channel;
  const router_channel *via = sq_channel(st, channel);
  if (via == NULL) {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err),
             "channel \"%.100s\" does not exist (any more): reply through another channel (give \"channel\")",
             channel);
    return -EINVAL;
  }
  if (via->receive_only) {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err),
             "channel \"%.100s\" only takes messages in: reply through another channel (give \"channel\", or set "
             "the channel's reply_channel)",
             channel);
    return -EINVAL;
  }
  snprintf(out, len, "%s", channel);
  if (strcmp(channel, thread_channel) == 0) return 0;
  sqlite3_stmt *s = sq_prep(st, "SELECT 1 FROM identities WHERE contact_id = ?1 AND channel = ?2 LIMIT 1");
  if (s == NULL) return sq_fail(st, r, "checking the contact's channels");
  sqlite3_bind_int64(s, 1, contact);
  sq_bind_text(s, 2, channel);
  int has = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  return has ? 0 : sq__start_by_email(st, r, channel, contact);
}

static int sq__reply(store *st, sq_req *r, sq_reply *q) {
  sqlite3_stmt *s =
      sq_prep(st, "SELECT channel, contact_id, ticket_id, last_in_id FROM threads WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a conversation");
  sqlite3_bind_int64(s, 1, q->thread_id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "conversation %lld does not exist", (long long)q->thread_id);
    return -ENOENT;
  }
  char thread_channel[128], channel[128];
  snprintf(thread_channel, sizeof(thread_channel), "%s", sq_col_text(s, 0));
  int64_t contact = sqlite3_column_int64(s, 1);
  int64_t ticket = sqlite3_column_int64(s, 2);
  int64_t last_in = sqlite3_column_int64(s, 3); /* the default reply_to: 0 (NULL) when none */
  sqlite3_reset(s);
  if (sq_reply_channel(st, r, thread_channel, q->channel, contact, channel, sizeof(channel)) < 0) return r->status;
  int64_t reply_to = 0;
  if (q->reply_to > 0) {
    s = sq_prep(st, "SELECT id FROM messages WHERE id = ?1 AND thread_id = ?2");
    if (s == NULL) return sq_fail(st, r, "reading the replied-to message");
    sqlite3_bind_int64(s, 1, q->reply_to);
    sqlite3_bind_int64(s, 2, q->thread_id);
    reply_to = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (reply_to == 0) {
      r->status = -EINVAL;
      snprintf(r->err, sizeof(r->err), "reply_to %lld is not a message of conversation %lld",
               (long long)q->reply_to, (long long)q->thread_id);
      return -EINVAL;
    }
  } else {
    reply_to = last_in;
  }
  if (q->ticket_status != NULL || q->props != NULL) {
    if (ticket == 0) {
      r->status = -EINVAL;
      snprintf(r->err, sizeof(r->err), "conversation %lld has no ticket to update", (long long)q->thread_id);
      return -EINVAL;
    }
    if (sq_ticket_update(st, r, ticket, q->ticket_status, q->props, 0) < 0) return r->status;
  }
  /* The author's token was checked before the user was deleted (they are
   * deleted with it): store the reply without an author rather than under an
   * id a later user may get. */
  int64_t author = 0;
  if (q->user_id > 0) {
    s = sq_prep(st, "SELECT id FROM users WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "reading the reply's author");
    sqlite3_bind_int64(s, 1, q->user_id);
    author = sqlite3_step(s) == SQLITE_ROW ? q->user_id : 0;
    sqlite3_reset(s);
  }
  if (sq_uploads_describe(st, r, &q->attachments) < 0) return r->status;
  /* filled in on every run: a batch re-run runs the request again */
  char *filled = NULL;
  if (q->canned != NULL && sq_canned_text(st, r, q->canned, contact, author, &filled) < 0) return r->status;
  int queued = sq_queue_outbound(st, r, q->thread_id, channel, author, filled != NULL ? filled : q->text, q->html,
                                 q->attachments, reply_to, 0, &q->message_id);
  free(filled);
  if (queued < 0 || sq_uploads_claim(st, r, q->attachments, q->message_id) < 0) return r->status;
  if (q->template_json == NULL) return 0;
  s = sq_prep(st, "UPDATE messages SET template = ?2 WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "storing a template reply");
  sqlite3_bind_int64(s, 1, q->message_id);
  sq_bind_text(s, 2, q->template_json);
  int done = sqlite3_step(s) == SQLITE_DONE;
  sqlite3_reset(s);
  return done ? 0 : sq_fail(st, r, "storing a template reply");
}

static void sq__reply_run(store *st, sq_req *r) {
  sq_reply *q = (sq_reply *)r;
  int rc = sq__reply(st, r, q);
  if (rc < 0 && r->status == 0) r->status = rc;
}

static void sq__reply_done(store *st, sq_req *r) {
  sq_reply *q = (sq_reply *)r;
  q->cb(q->arg, r->status, r->status < 0 ? 0 : q->message_id, r->status < 0 ? r->err : NULL);
  sq__reply_free(q);
}

int store_submit_reply(store *st, const router_reply *rp, router_reply_cb cb, void *arg) {
  if (st == NULL || rp == NULL || cb == NULL) return -EINVAL;
  sq_reply *q = calloc(1, sizeof(*q));
  if (q == NULL) return -ENOMEM;
  q->thread_id = rp->thread_id;
  q->user_id = rp->user_id;
  q->reply_to = rp->reply_to_message_id;
  q->text = rp->text ? strdup(rp->text) : NULL;
  q->html = rp->html ? strdup(rp->html) : NULL;
  q->channel = rp->channel ? strdup(rp->channel) : NULL;
  q->ticket_status = rp->ticket_status ? strdup(rp->ticket_status) : NULL;
  q->template_json = rp->template_json ? strdup(rp->template_json) : NULL;
  q->canned = rp->canned ? strdup(rp->canned) : NULL;
  q->props = rp->ticket_properties ? json_deep_copy(rp->ticket_properties) : NULL;
  if (rp->n_attachments > 0) {
    json_t *a = json_array();
    for (size_t i = 0; i < rp->n_attachments; i++) {
      const router_attachment *at = &rp->attachments[i];
      json_array_append_new(a, json_pack("{ss? ss? ss? ss? so}", "url", at->url, "mime_type",
                                         at->mime_type, "filename", at->filename, "content_id",
                                         at->content_id, "size",
                                         at->size > 0 ? json_integer((json_int_t)at->size) : json_null()));
    }
    q->attachments = json_dumps(a, JSON_COMPACT);
    json_decref(a);
  }
  q->cb = cb;
  q->arg = arg;
  q->base.run = sq__reply_run;
  q->base.done = sq__reply_done;
  int rc = sq_enqueue(st, &q->base);
  if (rc < 0) sq__reply_free(q);
  return rc;
}

/* ---- outbox ---- */

static json_t *sq__col_json(sqlite3_stmt *s, int i) {
  const char *t = sq_col_text(s, i);
  return t ? json_string(t) : json_null();
}

static int sq__claim(store *st, sq_req *r, json_t *args, json_t **result) {
  sqlite3_stmt *s = sq_prep(st,
      "SELECT o.id, o.message_id, m.thread_id, o.channel, o.idempotency_key, o.attempts + 1,"
      /* the recipient: the identity the conversation came in from, if the
       * contact still has it on this channel (a merged contact may have
       * several), else the contact's first there */
      " coalesce((SELECT kind FROM identities i WHERE i.contact_id = t.contact_id AND i.channel = o.channel"
      "   AND i.kind = t.identity_kind AND i.value = t.identity_value),"
      "  (SELECT kind FROM identities i WHERE i.contact_id = t.contact_id AND i.channel = o.channel"
      "   ORDER BY kind, value LIMIT 1)),"
      " coalesce((SELECT value FROM identities i WHERE i.contact_id = t.contact_id AND i.channel = o.channel"
      "   AND i.kind = t.identity_kind AND i.value = t.identity_value),"
      "  (SELECT value FROM identities i WHERE i.contact_id = t.contact_id AND i.channel = o.channel"
      "   ORDER BY kind, value LIMIT 1)),"
      " CASE WHEN t.channel = o.channel THEN t.external_id END,"
      " (SELECT external_id FROM messages rm WHERE rm.id = m.reply_to AND rm.channel = o.channel),"
      " m.text, m.html, m.attachments, m.automatic,"
      /* the contact's last message on this channel (the webhook's own
       * timestamp): what messaging windows count from */
      " (SELECT max(t2.last_in_at) FROM threads t2"
      "  WHERE t2.contact_id = t.contact_id AND t2.channel = o.channel),"
      " coalesce(u.name, m.author), u.email,"
      /* the reply's subject, else the conversation's latest inbound one */
      " coalesce(m.subject, t.last_subject),"
      " (SELECT name FROM contacts c WHERE c.id = t.contact_id), m.template, u.avatar_url"
      " FROM outbox o JOIN messages m ON m.id = o.message_id JOIN threads t ON t.id = m.thread_id"
      " LEFT JOIN users u ON u.id = m.user_id"
      " WHERE o.state = 'pending' AND o.next_at <= ?1"
      /* in order within a conversation and channel: not while an earlier
       * reply there waits or is on its way (schema 25) */
      " AND NOT EXISTS (SELECT 1 FROM outbox w WHERE w.thread_id = o.thread_id AND w.channel = o.channel"
      "  AND w.state IN ('pending', 'sending') AND w.id < o.id)"
      " ORDER BY o.next_at, o.id LIMIT ?2");
  if (s == NULL) return sq_fail(st, r, "claiming outbox rows");
  sqlite3_bind_int64(s, 1, json_integer_value(json_object_get(args, "now")));
  sqlite3_bind_int64(s, 2, json_integer_value(json_object_get(args, "limit")));
  json_t *items = json_array();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_t *it = json_pack("{sI sI sI so so sI so so so so so so so sb sI so so so so so so}",
        "outbox_id", (json_int_t)sqlite3_column_int64(s, 0),
        "message_id", (json_int_t)sqlite3_column_int64(s, 1),
        "thread_id", (json_int_t)sqlite3_column_int64(s, 2),
        "channel", sq__col_json(s, 3), "idempotency_key", sq__col_json(s, 4),
        "attempt", (json_int_t)sqlite3_column_int64(s, 5),
        "recipient_kind", sq__col_json(s, 6), "recipient_id", sq__col_json(s, 7),
        "external_thread_id", sq__col_json(s, 8), "reply_to_external_id", sq__col_json(s, 9),
        "text", sq__col_json(s, 10), "html", sq__col_json(s, 11),
        "attachments", sq__col_json(s, 12), "automatic", sqlite3_column_int(s, 13),
        "last_inbound_ms", (json_int_t)sqlite3_column_int64(s, 14),
        "agent_name", sq__col_json(s, 15), "agent_email", sq__col_json(s, 16),
        "subject", sq__col_json(s, 17), "recipient_name", sq__col_json(s, 18),
        "template_json", sq__col_json(s, 19), "agent_avatar_url", sq__col_json(s, 20));
    json_array_append_new(items, it);
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(items);
    return sq_fail(st, r, "claiming outbox rows");
  }
  size_t i;
  json_t *it;
  s = sq_prep(st, "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?1");
  json_array_foreach(items, i, it) {
    if (s == NULL) break;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, json_integer_value(json_object_get(it, "outbox_id")));
    if (sqlite3_step(s) != SQLITE_DONE) {
      json_decref(items);
      return sq_fail(st, r, "claiming outbox rows");
    }
  }
  *result = items;
  return 0;
}

int store_outbox_claim(store *st, int64_t now_ms, int limit, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__claim,
                        json_pack("{sI sI}", "now", (json_int_t)now_ms, "limit",
                                  (json_int_t)(limit > 0 ? limit : 64)),
                        cb, arg);
}

/* Sets a message's status (and error) and emits message.status. */
static int sq__message_status(store *st, sq_req *r, int64_t message_id, const char *status,
                              const char *error, const char *external_id) {
  sqlite3_stmt *s = sq_prep(st, "UPDATE messages SET status = ?2, error = ?3,"
                                " external_id = coalesce(?4, external_id) WHERE id = ?1"
                                " RETURNING thread_id, channel");
  if (s == NULL) return sq_fail(st, r, "updating a message status");
  sqlite3_bind_int64(s, 1, message_id);
  sq_bind_text(s, 2, status);
  sq_bind_text(s, 3, error);
  sq_bind_text(s, 4, external_id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return sq_fail(st, r, "updating a message status");
  }
  int64_t thread = sqlite3_column_int64(s, 0);
  char channel[128];
  snprintf(channel, sizeof(channel), "%s", sq_col_text(s, 1));
  sqlite3_step(s);
  sqlite3_reset(s);
  const router_channel *ch = sq_channel(st, channel);
  return sq_event(st, r, "message.status", channel, ch ? ch->inbox : NULL,
                  json_pack("{sI sI ss ss? ss?}", "message_id", (json_int_t)message_id, "thread_id",
                            (json_int_t)thread, "status", status, "error", error,
                            "external_id", external_id));
}

/* Gives a held (deferred) message its reason as error, when that changes. */
static int sq__hold_reason(store *st, sq_req *r, int64_t message_id, const char *reason) {
  sqlite3_stmt *s = sq_prep(st, "SELECT 1 FROM messages WHERE id = ?1 AND status = 'queued' AND error IS NOT ?2");
  if (s == NULL) return sq_fail(st, r, "reading a message's error");
  sqlite3_bind_int64(s, 1, message_id);
  sq_bind_text(s, 2, reason);
  int changed = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  return changed ? sq__message_status(st, r, message_id, "queued", reason, NULL) : 0;
}

/* Why a send through channel must end: "" while the channel exists, else
 * that it was deleted (over the API, while the send was held or in flight).
 * Returns -1 on a store error. */
static int sq__channel_gone(store *st, const char *channel, char *why, size_t len) {
  why[0] = '\0';
  sqlite3_stmt *s = sq_prep(st, "SELECT 1 FROM channels WHERE name = ?1");
  if (s == NULL) return -1;
  sq_bind_text(s, 1, channel);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc == SQLITE_DONE) snprintf(why, len, "channel \"%s\" was deleted", channel);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int sq_outbox_fail_channel(store *st, sq_req *r, const char *channel) {
  char why[192];
  snprintf(why, sizeof(why), "channel \"%s\" was deleted", channel); /* as sq__channel_gone says it */
  sqlite3_stmt *s = sq_prep(st, "UPDATE outbox SET state = 'failed', last_error = ?2, held = 0"
                                " WHERE channel = ?1 AND state = 'pending' RETURNING message_id");
  if (s == NULL) return sq_fail(st, r, "failing a deleted channel's replies");
  sq_bind_text(s, 1, channel);
  sq_bind_text(s, 2, why);
  json_t *ids = json_array();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) json_array_append_new(ids, json_integer(sqlite3_column_int64(s, 0)));
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(ids);
    return sq_fail(st, r, "failing a deleted channel's replies");
  }
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) {
    if ((rc = sq__message_status(st, r, json_integer_value(v), "failed", why, NULL)) < 0) break;
  }
  json_decref(ids);
  return rc < 0 ? rc : 0;
}

static int sq__outbox_result(store *st, sq_req *r, json_t *args, json_t **result) {
  int64_t id = json_integer_value(json_object_get(args, "id"));
  const char *kind = json_string_value(json_object_get(args, "kind"));
  const char *reason = json_string_value(json_object_get(args, "reason"));
  const char *ext = json_string_value(json_object_get(args, "external_id"));
  char gone[192] = "";
  /* A send to try again later through a channel deleted meanwhile fails
   * now: nothing would ever send it. */
  if (strcmp(kind, "retry") == 0 || strcmp(kind, "defer") == 0) {
    sqlite3_stmt *s = sq_prep(st, "SELECT channel FROM outbox WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "recording a send result");
    sqlite3_bind_int64(s, 1, id);
    char channel[128] = "";
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(channel, sizeof(channel), "%s", sq_col_text(s, 0));
    sqlite3_reset(s);
    if (channel[0] != '\0' && sq__channel_gone(st, channel, gone, sizeof(gone)) < 0)
      return sq_fail(st, r, "recording a send result");
    if (gone[0] != '\0') kind = "failed", reason = gone;
  }
  int deferred = strcmp(kind, "defer") == 0; /* the claim's attempt does not count */
  sqlite3_stmt *s = sq_prep(st, "UPDATE outbox SET state = ?2, next_at = coalesce(?3, next_at),"
                                " last_error = ?4, attempts = max(attempts - ?5, 0), held = ?5 WHERE id = ?1"
                                " RETURNING message_id");
  if (s == NULL) return sq_fail(st, r, "recording a send result");
  sqlite3_bind_int64(s, 1, id);
  sq_bind_text(s, 2, strcmp(kind, "sent") == 0                 ? "done"
                     : strcmp(kind, "retry") == 0 || deferred ? "pending"
                     : strcmp(kind, "dead") == 0  ? "dead"
                                                  : "failed");
  if (strcmp(kind, "retry") == 0 || deferred)
    sqlite3_bind_int64(s, 3, json_integer_value(json_object_get(args, "next_at")));
  sq_bind_text(s, 4, reason);
  sqlite3_bind_int(s, 5, deferred);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "outbox row %lld does not exist", (long long)id);
    return -ENOENT;
  }
  int64_t mid = sqlite3_column_int64(s, 0);
  sqlite3_step(s);
  sqlite3_reset(s);
  *result = json_pack("{sI}", "message_id", (json_int_t)mid);
  /* Held: still queued, with why, so an agent sees it; the event only when
   * the reason changes, not at every hold. */
  if (deferred) return sq__hold_reason(st, r, mid, reason);
  /* Still queued, with the last attempt's error for agents to see. */
  if (strcmp(kind, "retry") == 0) return sq__message_status(st, r, mid, "queued", reason, NULL);
  if (strcmp(kind, "sent") == 0) return sq__message_status(st, r, mid, "sent", NULL, ext);
  return sq__message_status(st, r, mid, "failed", reason, NULL);
}

int store_outbox_sent(store *st, int64_t outbox_id, const char *external_id, store_json_cb cb,
                      void *arg) {
  return sq_submit_json(st, sq__outbox_result,
                        json_pack("{sI ss ss?}", "id", (json_int_t)outbox_id, "kind", "sent",
                                  "external_id", external_id),
                        cb, arg);
}

int store_outbox_retry(store *st, int64_t outbox_id, int64_t next_at_ms, const char *reason,
                       store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__outbox_result,
                        json_pack("{sI ss sI ss?}", "id", (json_int_t)outbox_id, "kind", "retry",
                                  "next_at", (json_int_t)next_at_ms, "reason", reason),
                        cb, arg);
}

int store_outbox_defer(store *st, int64_t outbox_id, int64_t next_at_ms, const char *reason,
                       store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__outbox_result,
                        json_pack("{sI ss sI ss?}", "id", (json_int_t)outbox_id, "kind", "defer",
                                  "next_at", (json_int_t)next_at_ms, "reason", reason),
                        cb, arg);
}

int store_outbox_fail(store *st, int64_t outbox_id, const char *reason, int dead,
                      store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__outbox_result,
                        json_pack("{sI ss ss?}", "id", (json_int_t)outbox_id, "kind",
                                  dead ? "dead" : "failed", "reason", reason),
                        cb, arg);
}

static int sq__outbox_requeue(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t thread = json_integer_value(json_object_get(a, "thread_id"));
  int64_t mid = json_integer_value(json_object_get(a, "message_id"));
  sqlite3_stmt *s = sq_prep(st, "SELECT m.direction, m.status, o.id, o.state FROM messages m"
                                " LEFT JOIN outbox o ON o.message_id = m.id WHERE m.id = ?1 AND m.thread_id = ?2");
  if (s == NULL) return sq_fail(st, r, "finding a reply to send again");
  sqlite3_bind_int64(s, 1, mid);
  sqlite3_bind_int64(s, 2, thread);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "conversation %lld has no message %lld", (long long)thread, (long long)mid);
    return -ENOENT;
  }
  int out = strcmp(sq_col_text(s, 0), "out") == 0, failed = strcmp(sq_col_text(s, 1), "failed") == 0;
  int64_t outbox_id = sqlite3_column_int64(s, 2);
  int was_sent = sq_col_text(s, 3) != NULL && strcmp(sq_col_text(s, 3), "done") == 0;
  char status[16];
  snprintf(status, sizeof(status), "%s", sq_col_text(s, 1));
  sqlite3_reset(s);
  if (!out || !failed || outbox_id == 0) {
    r->status = -EEXIST;
    snprintf(r->err, sizeof(r->err), "message %lld is %s; only a failed reply can be sent again", (long long)mid,
             !out ? "inbound" : status);
    return -EEXIST;
  }
  /* A dead letter (or a send the service refused) goes out with its old
   * idempotency key, since the service may have taken an attempt whose answer
   * was lost. One the service accepted and then reported failed needs a new
   * key, or a receiver that deduplicates would drop the resend. */
  int64_t now = sb_wall_ms();
  s = sq_prep(st, "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?2, last_error = NULL,"
                  " idempotency_key = CASE WHEN ?3 THEN 'switchboard-msg-' || message_id || '-' || ?2"
                  " ELSE idempotency_key END WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "queueing a reply again");
  sqlite3_bind_int64(s, 1, outbox_id);
  sqlite3_bind_int64(s, 2, now);
  sqlite3_bind_int(s, 3, was_sent);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "queueing a reply again");
  *result = json_pack("{sI ss}", "id", (json_int_t)mid, "status", "queued");
  return sq__message_status(st, r, mid, "queued", NULL, NULL);
}

int store_outbox_requeue(store *st, int64_t thread_id, int64_t message_id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__outbox_requeue,
                        json_pack("{sI sI}", "thread_id", (json_int_t)thread_id, "message_id",
                                  (json_int_t)message_id),
                        cb, arg);
}

static int sq__outbox_release(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st,
      "UPDATE outbox SET next_at = ?4 WHERE id IN (SELECT o.id FROM outbox o"
      "  JOIN messages m ON m.id = o.message_id JOIN threads t ON t.id = m.thread_id"
      "  WHERE o.state = 'pending' AND o.channel = ?1 AND o.next_at > ?4"
      "  AND t.contact_id = (SELECT contact_id FROM identities"
      "   WHERE channel = ?1 AND kind = ?2 AND value = ?3))");
  if (s == NULL) return sq_fail(st, r, "releasing held replies");
  sq_bind_text(s, 1, json_string_value(json_object_get(a, "channel")));
  sq_bind_text(s, 2, json_string_value(json_object_get(a, "kind")));
  sq_bind_text(s, 3, json_string_value(json_object_get(a, "id")));
  sqlite3_bind_int64(s, 4, sb_wall_ms());
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "releasing held replies");
  *result = json_pack("{sI}", "released", (json_int_t)sqlite3_changes(st->db));
  return 0;
}

static int sq__outbox_release_held(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, "UPDATE outbox SET next_at = ?2 WHERE state = 'pending' AND channel = ?1"
                                " AND held = 1 AND next_at > ?2");
  if (s == NULL) return sq_fail(st, r, "releasing held replies");
  sq_bind_text(s, 1, json_string_value(json_object_get(a, "channel")));
  sqlite3_bind_int64(s, 2, sb_wall_ms());
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "releasing held replies");
  *result = json_pack("{sI}", "released", (json_int_t)sqlite3_changes(st->db));
  return 0;
}

int store_outbox_release_held(store *st, const char *channel, store_json_cb cb, void *arg) {
  if (channel == NULL) return -EINVAL;
  return sq_submit_json(st, sq__outbox_release_held, json_pack("{ss}", "channel", channel), cb, arg);
}

int store_outbox_release(store *st, const char *channel, const char *kind, const char *id,
                         store_json_cb cb, void *arg) {
  if (channel == NULL || kind == NULL || id == NULL) return -EINVAL;
  return sq_submit_json(st, sq__outbox_release, json_pack("{ss ss ss}", "channel", channel, "kind", kind, "id", id),
                        cb, arg);
}

/* ---- delivery receipts ---- */

/* Statuses only move forward: queued < sent < delivered < read; failed is
 * accepted from any state but never overwritten by a late delivered. */
#define SQ_RANK(col)                                                                    \
  "CASE " col " WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2"          \
  " WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE 0 END"

static int sq__valid_status(sq_req *r, const char *status) {
  if (status && (!strcmp(status, "delivered") || !strcmp(status, "read") || !strcmp(status, "failed")))
    return 0;
  r->status = -EINVAL;
  snprintf(r->err, sizeof(r->err), "delivery status \"%s\" is not delivered, read or failed",
           status ? status : "");
  return -EINVAL;
}

static int sq__delivery(store *st, sq_req *r, json_t *args, json_t **result) {
  const char *status = json_string_value(json_object_get(args, "status"));
  if (sq__valid_status(r, status) < 0) return -EINVAL;
  sqlite3_stmt *s = sq_prep(st, "SELECT id, " SQ_RANK("status") " < " SQ_RANK("?3")
                                " FROM messages WHERE channel = ?1 AND external_id = ?2");
  if (s == NULL) return sq_fail(st, r, "finding a message by external id");
  sq_bind_text(s, 1, json_string_value(json_object_get(args, "channel")));
  sq_bind_text(s, 2, json_string_value(json_object_get(args, "external_id")));
  sq_bind_text(s, 3, status);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "no message with external id \"%s\" on channel \"%s\"",
             json_string_value(json_object_get(args, "external_id")),
             json_string_value(json_object_get(args, "channel")));
    return -ENOENT;
  }
  int64_t mid = sqlite3_column_int64(s, 0);
  int forward = sqlite3_column_int(s, 1);
  sqlite3_reset(s);
  *result = json_pack("{sI sb}", "message_id", (json_int_t)mid, "changed", forward);
  if (!forward) return 0;
  return sq__message_status(st, r, mid, status,
                            json_string_value(json_object_get(args, "error")), NULL);
}

int store_delivery_status(store *st, const char *channel, const char *external_id,
                          const char *status, const char *error, store_json_cb cb, void *arg) {
  if (channel == NULL || external_id == NULL || status == NULL) return -EINVAL;
  return sq_submit_json(st, sq__delivery,
                        json_pack("{ss ss ss ss?}", "channel", channel, "external_id", external_id,
                                  "status", status, "error", error),
                        cb, arg);
}

static int sq__watermark(store *st, sq_req *r, json_t *args, json_t **result) {
  const char *status = json_string_value(json_object_get(args, "status"));
  if (sq__valid_status(r, status) < 0) return -EINVAL;
  sqlite3_stmt *s = sq_prep(st,
      SQ_CHAIN("SELECT t.last_message_id FROM threads t WHERE t.contact_id = (SELECT contact_id"
               " FROM identities WHERE channel = ?1 AND kind = ?2 AND value = ?3)"
               " AND t.last_message_id IS NOT NULL")
      "SELECT m.id FROM chain JOIN messages m ON m.id = chain.id"
      " WHERE m.channel = ?1 AND m.direction = 'out' AND coalesce(m.sent_at, m.created_at) <= ?4"
      " AND m.status IN ('sent', 'delivered') AND " SQ_RANK("m.status") " < " SQ_RANK("?5")
      " ORDER BY m.id");
  if (s == NULL) return sq_fail(st, r, "applying a delivery watermark");
  sq_bind_text(s, 1, json_string_value(json_object_get(args, "channel")));
  sq_bind_text(s, 2, json_string_value(json_object_get(args, "kind")));
  sq_bind_text(s, 3, json_string_value(json_object_get(args, "id")));
  sqlite3_bind_int64(s, 4, json_integer_value(json_object_get(args, "up_to")));
  sq_bind_text(s, 5, status);
  json_t *ids = json_array();
  while (sqlite3_step(s) == SQLITE_ROW) json_array_append_new(ids, json_integer(sqlite3_column_int64(s, 0)));
  sqlite3_reset(s);
  size_t i;
  json_t *v;
  int rc = 0;
  json_array_foreach(ids, i, v) {
    if ((rc = sq__message_status(st, r, json_integer_value(v), status, NULL, NULL)) < 0) break;
  }
  *result = json_pack("{sI}", "updated", (json_int_t)json_array_size(ids));
  json_decref(ids);
  return rc;
}

int store_delivery_watermark(store *st, const char *channel, const char *kind, const char *id,
                             const char *status, int64_t up_to_ms, store_json_cb cb, void *arg) {
  if (channel == NULL || kind == NULL || id == NULL || status == NULL) return -EINVAL;
  return sq_submit_json(st, sq__watermark,
                        json_pack("{ss ss ss ss sI}", "channel", channel, "kind", kind, "id", id,
                                  "status", status, "up_to", (json_int_t)up_to_ms),
                        cb, arg);
}

static int sq__outbox_counts(store *st, sq_req *r, json_t *args, json_t **result) {
  (void)args;
  sqlite3_stmt *s = sq_prep(st, "SELECT state, count(*) FROM outbox WHERE state IN ('pending', 'sending', 'dead')"
                                " GROUP BY state");
  if (s == NULL) return sq_fail(st, r, "counting outbox rows");
  json_t *counts = json_pack("{sI sI sI}", "pending", (json_int_t)0, "sending", (json_int_t)0, "dead", (json_int_t)0);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_object_set_new(counts, (const char *)sqlite3_column_text(s, 0), json_integer(sqlite3_column_int64(s, 1)));
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(counts);
    return sq_fail(st, r, "counting outbox rows");
  }
  *result = counts;
  return 0;
}

int store_outbox_counts(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__outbox_counts, json_object(), cb, arg);
}
