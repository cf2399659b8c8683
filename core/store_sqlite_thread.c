/* store_sqlite_thread.c — an agent's changes to a conversation itself:
 * closing or reopening it, giving it to a user, its labels, and internal
 * notes. A conversation with a ticket follows its ticket (its status is the
 * pipeline's; its assignee the ticket's owner); one without — a
 * conversations inbox, a channel with no ticket settings — is changed
 * directly. */
#include "store_sqlite.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Runs s, an UPDATE of a ticketless conversation, and tells the event
 * stream what changed (data, taken). */
static int sq__thread_set(store *st, sq_req *r, int64_t id, const char *channel, sqlite3_stmt *s, json_t *data) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(data);
    return sq_fail(st, r, "changing a conversation");
  }
  const router_channel *ch = sq_channel(st, channel);
  json_object_set_new(data, "thread_id", json_integer(id));
  return sq_event(st, r, "thread.updated", channel, ch != NULL ? ch->inbox : NULL, data) < 0 ? -EIO : 0;
}

/* Conversation id's channel into channel (len bytes) and, where asked, its
 * ticket (0 for none) and status (16 bytes); -ENOENT saying so when there
 * is no such conversation. */
static int sq__thread_read(store *st, sq_req *r, int64_t id, char *channel, size_t len, int64_t *ticket,
                           char status[16]) {
  sqlite3_stmt *s = sq_prep(st, "SELECT channel, ticket_id, status FROM threads WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a conversation");
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "conversation %" PRId64 " does not exist", id);
    return -ENOENT;
  }
  snprintf(channel, len, "%s", sq_col_text(s, 0));
  if (ticket != NULL) *ticket = sqlite3_column_int64(s, 1);
  if (status != NULL) snprintf(status, 16, "%s", sq_col_text(s, 2));
  sqlite3_reset(s);
  return 0;
}

static int sq__conversation_patch(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  json_t *p = json_object_get(a, "patch");
  char channel[128], status[16];
  int64_t ticket;
  if (sq__thread_read(st, r, id, channel, sizeof(channel), &ticket, status) < 0) return r->status;
  sqlite3_stmt *s;
  const char *want = json_string_value(json_object_get(p, "status"));
  if (want != NULL && strcmp(want, "open") != 0 && strcmp(want, "closed") != 0) {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "a conversation's status is open or closed, not \"%.40s\"", want);
    return -EINVAL;
  }
  if (want != NULL && ticket != 0) {
    r->status = -EEXIST;
    snprintf(r->err, sizeof(r->err),
             "conversation %" PRId64 " follows its ticket %" PRId64 ": set the ticket's status instead", id, ticket);
    return -EEXIST;
  }
  if (want != NULL && strcmp(want, status) != 0) {
    s = sq_prep(st, "UPDATE threads SET status = ?2, closed_at = CASE WHEN ?2 = 'closed' THEN ?3 END WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "changing a conversation");
    sqlite3_bind_int64(s, 1, id);
    sq_bind_text(s, 2, want);
    sqlite3_bind_int64(s, 3, sq_batch_now(st));
    if (sq__thread_set(st, r, id, channel, s, json_pack("{ss}", "status", want)) < 0) return r->status;
    sq_caches_clear(st); /* the writer's thread lookups know only open conversations */
  }
  json_t *assignee = json_object_get(p, "assignee");
  if (assignee != NULL && ticket != 0) {
    if (sq_ticket_assign(st, r, ticket, assignee, "assignee") < 0) return r->status;
  } else if (assignee != NULL) {
    int64_t uid;
    if (sq_user_named(st, r, assignee, "assignee", &uid) < 0) return r->status;
    s = sq_prep(st, "UPDATE threads SET assignee_id = ?2 WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "changing a conversation");
    sqlite3_bind_int64(s, 1, id);
    if (uid != 0) sqlite3_bind_int64(s, 2, uid);
    if (sq__thread_set(st, r, id, channel, s,
                       json_pack("{so}", "user_id", uid != 0 ? json_integer(uid) : json_null())) < 0)
      return r->status;
  }
  json_t *labels = json_object_get(p, "labels");
  if (labels != NULL && sq_thread_labels(st, r, id, channel, labels, NULL, NULL) < 0) return r->status;
  return sq_thread_summary(st, r, id, result);
}

int store_conversation_patch(store *st, int64_t thread_id, const json_t *patch, store_json_cb cb, void *arg) {
  if (!json_is_object(patch)) return -EINVAL;
  return sq_submit_json(st, sq__conversation_patch,
                        json_pack("{sI sO}", "id", (json_int_t)thread_id, "patch", (json_t *)patch), cb, arg);
}

static int sq__conversation_labels(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  char channel[128];
  if (sq__thread_read(st, r, id, channel, sizeof(channel), NULL, NULL) < 0 ||
      sq_thread_labels(st, r, id, channel, NULL, json_object_get(a, "add"), json_object_get(a, "remove")) < 0)
    return r->status;
  return sq_thread_summary(st, r, id, result);
}

int store_conversation_labels(store *st, int64_t thread_id, const json_t *add, const json_t *remove,
                              store_json_cb cb, void *arg) {
  if ((add != NULL && !json_is_array(add)) || (remove != NULL && !json_is_array(remove))) return -EINVAL;
  return sq_submit_json(st, sq__conversation_labels,
                        json_pack("{sI sO* sO*}", "id", (json_int_t)thread_id, "add", (json_t *)add, "remove",
                                  (json_t *)remove),
                        cb, arg);
}

/* ---- internal notes ---- */

#define SQ_NOTE_JSON                                                                          \
  "SELECT json_object('id', n.id, 'thread_id', n.thread_id, 'user', coalesce((SELECT name FROM users" \
  " WHERE id = n.user_id), n.author), 'text', n.text, 'created_at', n.created_at) FROM notes n "

static int sq__note_add(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t thread = json_integer_value(json_object_get(a, "thread_id"));
  int64_t user = json_integer_value(json_object_get(a, "user_id"));
  char channel[128];
  if (sq__thread_read(st, r, thread, channel, sizeof(channel), NULL, NULL) < 0) return r->status;
  /* a token's user deleted since: the note has no author rather than one a later user may get */
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO notes(id, thread_id, user_id, text, created_at)"
                  " VALUES(?1, ?2, (SELECT id FROM users WHERE id = ?3), ?4, ?5)");
  if (s == NULL) return sq_fail(st, r, "adding a note");
  int64_t id = sq_next_id(st);
  sqlite3_bind_int64(s, 1, id);
  sqlite3_bind_int64(s, 2, thread);
  sqlite3_bind_int64(s, 3, user);
  sq_bind_text(s, 4, json_string_value(json_object_get(a, "text")));
  sqlite3_bind_int64(s, 5, sq_batch_now(st));
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "adding a note");
  s = sq_prep(st, SQ_NOTE_JSON "WHERE n.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a note");
  sqlite3_bind_int64(s, 1, id);
  rc = sqlite3_step(s);
  *result = rc == SQLITE_ROW ? json_loads(sq_col_text(s, 0), 0, NULL) : NULL;
  sqlite3_reset(s);
  if (*result == NULL) return sq_fail(st, r, "reading a note");
  const router_channel *ch = sq_channel(st, channel);
  return sq_event(st, r, "note.created", channel, ch != NULL ? ch->inbox : NULL, json_incref(*result)) < 0 ? -EIO
                                                                                                        : 0;
}

int store_note_add(store *st, int64_t thread_id, int64_t user_id, const char *text, store_json_cb cb, void *arg) {
  if (text == NULL) return -EINVAL;
  return sq_submit_json(st, sq__note_add,
                        json_pack("{sI sI ss}", "thread_id", (json_int_t)thread_id, "user_id", (json_int_t)user_id,
                                  "text", text),
                        cb, arg);
}

int sq_thread_notes(store *st, sq_req *r, int64_t thread_id, json_t **out) {
  sqlite3_stmt *s = sq_prep(st, SQ_NOTE_JSON "WHERE n.thread_id = ?1 ORDER BY n.id");
  if (s != NULL) sqlite3_bind_int64(s, 1, thread_id);
  return sq_json_rows(st, r, s, "reading notes", out);
}
