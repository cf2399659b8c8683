/* store_sqlite_thread.c — an agent's changes to a conversation itself:
 * closing or reopening it, and giving it to a user. A conversation with a
 * ticket follows its ticket (its status is the pipeline's; its assignee the
 * ticket's owner); one without — a conversations inbox, a channel with no
 * ticket settings — is changed directly. */
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

static int sq__conversation_patch(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  json_t *p = json_object_get(a, "patch");
  sqlite3_stmt *s = sq_prep(st, "SELECT channel, ticket_id, status FROM threads WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a conversation");
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "conversation %" PRId64 " does not exist", id);
    return -ENOENT;
  }
  char channel[128], status[16];
  snprintf(channel, sizeof(channel), "%s", sq_col_text(s, 0));
  int64_t ticket = sqlite3_column_int64(s, 1);
  snprintf(status, sizeof(status), "%s", sq_col_text(s, 2));
  sqlite3_reset(s);
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
    s = sq_prep(st, "UPDATE threads SET status = ?2 WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "changing a conversation");
    sqlite3_bind_int64(s, 1, id);
    sq_bind_text(s, 2, want);
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
  return sq_thread_summary(st, r, id, result);
}

int store_conversation_patch(store *st, int64_t thread_id, const json_t *patch, store_json_cb cb, void *arg) {
  if (!json_is_object(patch)) return -EINVAL;
  return sq_submit_json(st, sq__conversation_patch,
                        json_pack("{sI sO}", "id", (json_int_t)thread_id, "patch", (json_t *)patch), cb, arg);
}
