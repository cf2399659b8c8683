/* store_sqlite_history.c — what plugins read back through the host (ABI 1.3):
 * a contact's conversation on one channel, and who could answer there now. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite.h"

/* ---- a contact's history on a channel ---- */

/* The messages of the contact's conversations on the channel (chain ends
 * the walk's step: SQ_CHAIN_WALK), one as the host hands it to a plugin:
 * the JSON keys store.h lists. */
#define SQ_HISTORY(walk)                                                                    \
  SQ_CHAIN_WALK("SELECT last_message_id FROM threads WHERE contact_id = ?1 AND channel = ?2" \
                " AND last_message_id IS NOT NULL", walk)                                    \
  "SELECT json_object('id', m.id, 'external_id', m.external_id, 'direction', m.direction,"   \
  " 'status', m.status, 'text', m.text, 'html', m.html, 'attachments', json(m.attachments)," \
  " 'author', coalesce(u.name, m.author), 'author_avatar_url', u.avatar_url,"               \
  " 'automatic', json(CASE WHEN m.automatic THEN 'true' ELSE 'false' END),"                  \
  " 'created_at', m.created_at)"                                                            \
  " FROM chain JOIN messages m ON m.id = chain.id LEFT JOIN users u ON u.id = m.user_id "

static int sq__history(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *channel = json_string_value(json_object_get(a, "channel"));
  int64_t after = json_integer_value(json_object_get(a, "after"));
  int64_t limit = json_integer_value(json_object_get(a, "limit"));
  sqlite3_stmt *s = sq_prep(st, "SELECT c.id, c.name, u.name, u.avatar_url FROM identities i"
                                " JOIN contacts c ON c.id = i.contact_id"
                                " LEFT JOIN users u ON u.id = c.owner_id"
                                " WHERE i.channel = ?1 AND i.kind = ?2 AND i.value = ?3");
  if (s == NULL) return sq_fail(st, r, "finding a contact");
  sq_bind_text(s, 1, channel);
  sq_bind_text(s, 2, json_string_value(json_object_get(a, "kind")));
  sq_bind_text(s, 3, json_string_value(json_object_get(a, "id")));
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(s);
    *result = json_pack("{so so s[] sb}", "contact", json_null(), "owner", json_null(), "messages",
                        "more", 0);
    return 0;
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    return sq_fail(st, r, "finding a contact");
  }
  int64_t contact = sqlite3_column_int64(s, 0);
  json_t *res = json_object();
  json_object_set_new(res, "contact",
                      json_pack("{sI ss?}", "id", (json_int_t)contact, "name", sq_col_text(s, 1)));
  json_object_set_new(res, "owner",
                      sq_col_text(s, 2) == NULL
                          ? json_null()
                          : json_pack("{ss ss?}", "name", sq_col_text(s, 2), "avatar_url", sq_col_text(s, 3)));
  sqlite3_reset(s);

  /* One more row than asked tells whether some were left out. The walk
   * stops at after, or (the latest) once it has that many, newest first
   * across the conversations; those are turned around below. */
  s = after > 0 ? sq_prep(st, SQ_HISTORY(" AND m.prev_id > ?3") "WHERE m.id > ?3 ORDER BY m.id LIMIT ?4")
                : sq_prep(st, SQ_HISTORY(" ORDER BY 1 DESC LIMIT ?4") "ORDER BY m.id DESC");
  if (s == NULL) {
    json_decref(res);
    return sq_fail(st, r, "reading a contact's history");
  }
  sqlite3_bind_int64(s, 1, contact);
  sq_bind_text(s, 2, channel);
  if (after > 0) sqlite3_bind_int64(s, 3, after);
  sqlite3_bind_int64(s, 4, limit + 1);
  json_t *rows = json_array();
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    json_array_append_new(rows, json_loads(sq_col_text(s, 0), 0, NULL));
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(rows);
    json_decref(res);
    return sq_fail(st, r, "reading a contact's history");
  }
  int more = json_array_size(rows) > (size_t)limit;
  if (more) json_array_remove(rows, json_array_size(rows) - 1);
  if (after <= 0) {
    json_t *fwd = json_array();
    for (size_t i = json_array_size(rows); i-- > 0;) json_array_append(fwd, json_array_get(rows, i));
    json_decref(rows);
    rows = fwd;
  }
  json_object_set_new(res, "messages", rows);
  json_object_set_new(res, "more", json_boolean(more));
  *result = res;
  return 0;
}

int store_contact_history(store *st, const char *channel, const char *kind, const char *id,
                          int64_t after_id, int limit, store_json_cb cb, void *arg) {
  if (channel == NULL || kind == NULL || id == NULL || limit < 1) return -EINVAL;
  return sq_submit_json(st, sq__history,
                        json_pack("{ss ss ss sI sI}", "channel", channel, "kind", kind, "id", id, "after",
                                  (json_int_t)after_id, "limit", (json_int_t)limit),
                        cb, arg);
}

/* ---- who could answer on a channel ---- */

/* How many of the channel's latest conversations the typical reply time
 * looks at: enough for a stable median, few enough to stay index lookups. */
#define SQ_REPLY_SAMPLE 200
#define SQ_REPLY_WINDOW_MS (14LL * 24 * 3600 * 1000)

/* The median delay between a conversation's first inbound message and the
 * first reply an agent wrote, over the channel's latest conversations of the
 * last 14 days; -1 when none was answered. */
static int sq__typical_reply(store *st, sq_req *r, const char *channel, int64_t *out) {
  sqlite3_stmt *s = sq_prep(st, SQ_FIRST_REPLY("SELECT id, last_message_id FROM threads"
                                               " WHERE channel = ?1 AND created_at >= ?2 ORDER BY id DESC LIMIT ?3")
                                "SELECT wait FROM first_reply");
  if (s == NULL) return sq_fail(st, r, "measuring reply times");
  sq_bind_text(s, 1, channel);
  sqlite3_bind_int64(s, 2, sb_wall_ms() - SQ_REPLY_WINDOW_MS);
  sqlite3_bind_int(s, 3, SQ_REPLY_SAMPLE);
  int64_t d[SQ_REPLY_SAMPLE];
  size_t n = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (sqlite3_column_type(s, 0) != SQLITE_NULL && n < SQ_REPLY_SAMPLE) d[n++] = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "measuring reply times");
  if (n == 0) {
    *out = -1;
    return 0;
  }
  sq_sort_i64(d, n);
  *out = (int64_t)sq_median(d, n) / 1000;
  return 0;
}

static int sq__availability(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *channel = json_string_value(json_object_get(a, "channel"));
  const router_channel *ch = sq_channel(st, channel);
  if (ch == NULL) {
    snprintf(r->err, sizeof(r->err), "no channel %s", channel);
    return r->status = -ENOENT;
  }
  /* The pool assignment draws from: the named users and teams, or (no
   * routing, or the contact's owner, who may be anyone) every user. */
  int named = ch->routing.mode == ROUTER_ROUTING_USERS_AND_TEAMS;
  json_t *users = json_array(), *teams = json_array();
  for (size_t i = 0; named && i < ch->routing.n_users; i++)
    json_array_append_new(users, json_string(ch->routing.users[i]));
  for (size_t i = 0; named && i < ch->routing.n_teams; i++)
    json_array_append_new(teams, json_string(ch->routing.teams[i]));
  char *u = json_dumps(users, JSON_COMPACT), *t = json_dumps(teams, JSON_COMPACT);
  json_decref(users);
  json_decref(teams);
  sqlite3_stmt *s = sq_prep(st,
      "SELECT count(*), coalesce(sum(p.available), 0),"
      " coalesce(sum(p.available AND (p.capacity <= 0 OR"
      "   (SELECT count(*) FROM tickets k WHERE k.owner_id = p.id AND k.closed = 0) < p.capacity)), 0)"
      " FROM users p WHERE p.seat = 1 AND (?3 = 0 OR p.name IN (SELECT value FROM json_each(?1))"
      "  OR p.id IN (SELECT m.user_id FROM team_members m JOIN teams te ON te.id = m.team_id"
      "   WHERE te.name IN (SELECT value FROM json_each(?2))))");
  if (s == NULL) {
    free(u);
    free(t);
    return sq_fail(st, r, "counting available users");
  }
  sqlite3_bind_text(s, 1, u, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 2, t, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 3, named);
  free(u);
  free(t);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return sq_fail(st, r, "counting available users");
  }
  json_t *res = json_pack("{sI sI sI}", "eligible", (json_int_t)sqlite3_column_int64(s, 0), "available",
                          (json_int_t)sqlite3_column_int64(s, 1), "with_capacity",
                          (json_int_t)sqlite3_column_int64(s, 2));
  sqlite3_reset(s);
  int64_t typical;
  if (sq__typical_reply(st, r, channel, &typical) < 0) {
    json_decref(res);
    return r->status;
  }
  json_object_set_new(res, "typical_reply_seconds", json_integer(typical));
  *result = res;
  return 0;
}

int store_channel_availability(store *st, const char *channel, store_json_cb cb, void *arg) {
  if (channel == NULL) return -EINVAL;
  return sq_submit_json(st, sq__availability, json_pack("{ss}", "channel", channel), cb, arg);
}
