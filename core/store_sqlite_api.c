/* store_sqlite_api.c — what the REST API keeps: hashed bearer tokens, channels connected through the API, channel history moves and deletes, outgoing webhooks. */
#include "store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sq__str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int sq__step(store *st, sq_req *r, sqlite3_stmt *s, const char *what) {
  if (s == NULL) return sq_fail(st, r, what);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(st, r, what);
}

static int sq__not_found(sq_req *r, const char *what, const char *name) {
  r->status = -ENOENT;
  snprintf(r->err, sizeof(r->err), "%s \"%s\" does not exist", what, name);
  return -ENOENT;
}

/* ---- tokens ---- */

/* The id of the user called name, 0 when there is none (r untouched), or
 * -EIO (r filled). */
static int64_t sq__user_id(store *st, sq_req *r, const char *name) {
  sqlite3_stmt *s = sq_prep(st, "SELECT id FROM users WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a user");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? id : sq_fail(st, r, "reading a user");
}

static int sq__token_create(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *user = sq__str(a, "user");
  int64_t user_id = 0;
  if (user != NULL) {
    if ((user_id = sq__user_id(st, r, user)) < 0) return -EIO;
    if (user_id == 0) {
      r->status = -EINVAL;
      snprintf(r->err, sizeof(r->err), "user \"%.64s\" does not exist; create the user first", user);
      return -EINVAL;
    }
  }
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO tokens(name, role, hash, created_at, user_id) VALUES(?1, ?2, ?3, ?4, ?5)"
                                " ON CONFLICT DO NOTHING RETURNING id");
  if (s == NULL) return sq_fail(st, r, "saving a token");
  sq_bind_text(s, 1, sq__str(a, "name"));
  sq_bind_text(s, 2, sq__str(a, "role"));
  sq_bind_text(s, 3, sq__str(a, "hash"));
  sqlite3_bind_int64(s, 4, sb_wall_ms());
  if (user_id > 0) sqlite3_bind_int64(s, 5, user_id);
  int rc = sqlite3_step(s);
  int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(st, r, "saving a token");
  if (id == 0) {
    r->status = -EEXIST;
    snprintf(r->err, sizeof(r->err), "a token named \"%s\" already exists", sq__str(a, "name"));
    return -EEXIST;
  }
  *result = json_pack("{sI ss ss ss?}", "id", (json_int_t)id, "name", sq__str(a, "name"), "role", sq__str(a, "role"),
                      "user", user);
  return 0;
}

int store_token_create(store *st, const char *name, const char *role, const char *user, const char *hash_hex,
                       store_json_cb cb, void *arg) {
  if (name == NULL || role == NULL || hash_hex == NULL) return -EINVAL;
  return sq_submit_json(st, sq__token_create,
                        json_pack("{ss ss ss ss?}", "name", name, "role", role, "hash", hash_hex, "user", user), cb,
                        arg);
}

static int sq__token_find(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, "SELECT t.id, t.name, t.role, u.id, u.name FROM tokens t"
                                " LEFT JOIN users u ON u.id = t.user_id WHERE t.hash = ?1");
  if (s == NULL) return sq_fail(st, r, "reading tokens");
  sq_bind_text(s, 1, sq__str(a, "hash"));
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *result = json_pack("{sI ss ss sI ss?}", "id", (json_int_t)sqlite3_column_int64(s, 0), "name", sq_col_text(s, 1),
                        "role", sq_col_text(s, 2), "user_id", (json_int_t)sqlite3_column_int64(s, 3), "user",
                        sq_col_text(s, 4));
  }
  sqlite3_reset(s);
  if (rc == SQLITE_DONE) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "no such token");
    return -ENOENT;
  }
  return rc == SQLITE_ROW ? 0 : sq_fail(st, r, "reading tokens");
}

int store_token_find(store *st, const char *hash_hex, store_json_cb cb, void *arg) {
  if (hash_hex == NULL) return -EINVAL;
  return sq_submit_json(st, sq__token_find, json_pack("{ss}", "hash", hash_hex), cb, arg);
}

static int sq__tokens_list(store *st, sq_req *r, json_t *a, json_t **result) {
  (void)a;
  sqlite3_stmt *s = sq_prep(st, "SELECT t.id, t.name, t.role, t.created_at, u.name FROM tokens t"
                                " LEFT JOIN users u ON u.id = t.user_id ORDER BY t.id");
  if (s == NULL) return sq_fail(st, r, "listing tokens");
  json_t *items = json_array();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_array_append_new(items, json_pack("{sI ss ss sI so}", "id", (json_int_t)sqlite3_column_int64(s, 0), "name",
                                           sq_col_text(s, 1), "role", sq_col_text(s, 2), "created_at",
                                           (json_int_t)sqlite3_column_int64(s, 3), "user",
                                           sq_col_text(s, 4) ? json_string(sq_col_text(s, 4)) : json_null()));
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(items);
    return sq_fail(st, r, "listing tokens");
  }
  *result = items;
  return 0;
}

int store_tokens_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__tokens_list, NULL, cb, arg);
}

static int sq__token_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  json_int_t id = json_integer_value(json_object_get(a, "id"));
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM tokens WHERE id = ?1 RETURNING name");
  if (s == NULL) return sq_fail(st, r, "deleting a token");
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *result = json_pack("{sI ss}", "id", id, "name", sq_col_text(s, 0));
  if (rc == SQLITE_ROW) rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "deleting a token");
  if (*result == NULL) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "token %lld does not exist", (long long)id);
    return -ENOENT;
  }
  return 0;
}

int store_token_delete(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__token_delete, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

/* ---- channels connected through the API ---- */

static int sq__api_channel_put(store *st, sq_req *r, json_t *a, json_t **result) {
  char *spec = json_dumps(json_object_get(a, "spec"), JSON_COMPACT);
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO api_channels(name, spec, sealed, created_at) VALUES(?1, ?2, ?3, ?4)"
                                " ON CONFLICT(name) DO UPDATE SET spec = ?2, sealed = coalesce(?3, sealed)");
  if (s == NULL || spec == NULL) {
    free(spec);
    return sq_fail(st, r, "saving a channel");
  }
  sq_bind_text(s, 1, sq__str(a, "name"));
  sq_bind_text(s, 2, spec);
  sq_bind_text(s, 3, sq__str(a, "sealed"));
  sqlite3_bind_int64(s, 4, sb_wall_ms());
  int rc = sq__step(st, r, s, "saving a channel");
  free(spec);
  if (rc < 0) return rc;
  *result = json_pack("{ss}", "name", sq__str(a, "name"));
  return 0;
}

int store_api_channel_put(store *st, const char *name, const json_t *spec, const char *sealed,
                          store_json_cb cb, void *arg) {
  if (name == NULL || !json_is_object(spec)) return -EINVAL;
  return sq_submit_json(st, sq__api_channel_put,
                        json_pack("{ss sO ss?}", "name", name, "spec", (json_t *)spec, "sealed", sealed), cb, arg);
}

int sq_api_channel_rows(sqlite3_stmt *s, json_t *items) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_t *spec = json_loads(sq_col_text(s, 1), 0, NULL);
    json_array_append_new(items, json_pack("{ss so* ss?}", "name", sq_col_text(s, 0), "spec",
                                           spec ? spec : json_object(), "sealed", sq_col_text(s, 2)));
  }
  return rc;
}

static int sq__api_channels_list(store *st, sq_req *r, json_t *a, json_t **result) {
  (void)a;
  sqlite3_stmt *s = sq_prep(st, SQ_API_CHANNELS_SELECT);
  if (s == NULL) return sq_fail(st, r, "listing channels");
  json_t *items = json_array();
  int rc = sq_api_channel_rows(s, items);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(items);
    return sq_fail(st, r, "listing channels");
  }
  *result = items;
  return 0;
}

int store_api_channels_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__api_channels_list, NULL, cb, arg);
}

static int sq__api_channel_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM api_channels WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "deleting a channel");
  sq_bind_text(s, 1, sq__str(a, "name"));
  if (sq__step(st, r, s, "deleting a channel") < 0) return -EIO;
  if (sqlite3_changes(st->db) == 0) return sq__not_found(r, "channel", sq__str(a, "name"));
  *result = json_pack("{ss}", "name", sq__str(a, "name"));
  return 0;
}

int store_api_channel_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__api_channel_delete, json_pack("{ss}", "name", name), cb, arg);
}

/* ---- channel history ---- */

/* Deletes the conversations of the threads matching THREADS (a condition on
 * threads binding ?1) with all they hold: outbox rows, the search index's
 * rows (its 'delete' needs the values as indexed: store_sqlite_index.c),
 * messages (their attachments go by trigger), the events that tell of them
 * or their tickets (a note's text, a ticket's name: an event stream could
 * replay them), tickets, notes and labels (the labels themselves stay).
 * The threads themselves go last (sq__purge). */
#define SQ_PURGE_STEPS(THREADS)                                                                              \
  SQ_CHAIN("SELECT last_message_id FROM threads WHERE " THREADS " AND last_message_id IS NOT NULL")        \
  "DELETE FROM outbox WHERE message_id IN chain",                                                          \
      SQ_CHAIN("SELECT last_message_id FROM threads WHERE " THREADS " AND last_message_id IS NOT NULL")    \
      "INSERT INTO search_index(search_index, rowid, text, subject)"                                       \
      " SELECT 'delete', m.id, sb_fold(m.text), sb_fold(m.subject) FROM chain JOIN messages m ON m.id = chain.id" \
      " WHERE m.id <= (SELECT value FROM meta WHERE key = 'search_indexed')"                               \
      " AND (m.text IS NOT NULL OR m.subject IS NOT NULL)",                                                \
      SQ_CHAIN("SELECT last_message_id FROM threads WHERE " THREADS " AND last_message_id IS NOT NULL")    \
      "DELETE FROM messages WHERE id IN chain",                                                            \
      "DELETE FROM events WHERE json_extract(data, '$.thread_id') IN (SELECT id FROM threads WHERE " THREADS ")" \
      " OR json_extract(data, '$.ticket_id') IN (SELECT t.id FROM tickets t WHERE t.thread_id IN"          \
      " (SELECT id FROM threads WHERE " THREADS "))",                                                      \
      "DELETE FROM tickets WHERE thread_id IN (SELECT id FROM threads WHERE " THREADS ")",                  \
      "DELETE FROM notes WHERE thread_id IN (SELECT id FROM threads WHERE " THREADS ")",                    \
      "DELETE FROM thread_labels WHERE thread_id IN (SELECT id FROM threads WHERE " THREADS ")"

/* Runs steps (each binding ?1 to key), then deletes the threads matching
 * threads_sql; *n_threads: how many went. */
static int sq__purge(store *st, sq_req *r, const char *const *steps, size_t n, const char *threads_sql,
                     const char *what, sqlite3_stmt *(*bind)(sqlite3_stmt *, const json_t *), const json_t *key,
                     int64_t *n_threads) {
  /* The newest messages, notes and events may go, and the sequence starts
   * again after the largest id stored (sq__read_ids): keep the largest
   * given, so a restart never hands out an id a reply's idempotency key, a
   * webhook's cursor or a stream's Last-Event-ID already knows. */
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO meta(key, value) VALUES('ids_given', ?1)"
                                " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)");
  if (s == NULL) return sq_fail(st, r, what);
  sqlite3_bind_int64(s, 1, st->next_id - 1);
  if (sq__step(st, r, s, what) < 0) return -EIO;
  for (size_t i = 0; i < n; i++) {
    s = sq_prep(st, steps[i]);
    if (s == NULL) return sq_fail(st, r, what);
    if (sq__step(st, r, bind(s, key), what) < 0) return -EIO;
  }
  s = sq_prep(st, threads_sql);
  if (s == NULL) return sq_fail(st, r, what);
  if (sq__step(st, r, bind(s, key), what) < 0) return -EIO;
  *n_threads = sqlite3_changes(st->db);
  /* The message path caches thread and contact ids that may be gone now. */
  sq_caches_clear(st);
  /* Open tickets that went may have freed an agent's capacity: the waiting
   * ones are offered again, as when a ticket closes. */
  return sq_drain_queue(st, r) < 0 ? -EIO : 0;
}

static sqlite3_stmt *sq__bind_name(sqlite3_stmt *s, const json_t *key) {
  sq_bind_text(s, 1, json_string_value(key));
  return s;
}

static sqlite3_stmt *sq__bind_id(sqlite3_stmt *s, const json_t *key) {
  sqlite3_bind_int64(s, 1, json_integer_value(key));
  return s;
}

static int sq__history_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  static const char *const steps[] = {
      SQ_PURGE_STEPS("channel = ?1"),
      "DELETE FROM identities WHERE channel = ?1",
      "DELETE FROM kv WHERE channel = ?1",
  };
  int64_t n = 0;
  if (sq__purge(st, r, steps, sizeof(steps) / sizeof(steps[0]), "DELETE FROM threads WHERE channel = ?1",
                "deleting a channel's history", sq__bind_name, json_object_get(a, "name"), &n) < 0)
    return -EIO;
  *result = json_pack("{sI}", "threads", (json_int_t)n);
  return 0;
}

int store_channel_history_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__history_delete, json_pack("{ss}", "name", name), cb, arg);
}

/* ---- erasing a contact ---- */

static int sq__contact_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  static const char *const steps[] = {
      SQ_PURGE_STEPS("contact_id = ?1"),
      /* a merge's event names them too */
      "DELETE FROM events WHERE json_extract(data, '$.contact_id') = ?1 OR json_extract(data, '$.merged_id') = ?1",
      "DELETE FROM identities WHERE contact_id = ?1",
      "DELETE FROM contacts WHERE id = ?1",
  };
  json_t *id = json_object_get(a, "id");
  sqlite3_stmt *s = sq_prep(st, "SELECT 1 FROM contacts WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a contact");
  int found = sqlite3_step(sq__bind_id(s, id)) == SQLITE_ROW;
  sqlite3_reset(s);
  if (!found) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "contact %lld does not exist", (long long)json_integer_value(id));
    return -ENOENT;
  }
  int64_t n = 0;
  if (sq__purge(st, r, steps, sizeof(steps) / sizeof(steps[0]), "DELETE FROM threads WHERE contact_id = ?1",
                "erasing a contact", sq__bind_id, id, &n) < 0)
    return -EIO;
  if (sq_event(st, r, "contact.deleted", NULL, NULL, json_pack("{sO}", "contact_id", id)) < 0) return -EIO;
  *result = json_pack("{sO sI}", "deleted", id, "conversations", (json_int_t)n);
  return 0;
}

int store_contact_delete(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__contact_delete, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

/* ---- exporting a contact ---- */

static int sq__contact_export(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  json_t *contact = NULL;
  if (sq_contact_json(st, r, id, &contact) < 0) return r->status;
  sqlite3_stmt *s = sq_prep(st, "SELECT id FROM threads WHERE contact_id = ?1 ORDER BY id");
  if (s == NULL) {
    json_decref(contact);
    return sq_fail(st, r, "reading a contact's conversations");
  }
  sqlite3_bind_int64(s, 1, id);
  json_t *convs = json_array();
  int rc, failed = 0;
  while (!failed && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_t *c = NULL;
    failed = sq_conversation_json(st, r, sqlite3_column_int64(s, 0), &c) < 0;
    if (!failed) json_array_append_new(convs, c);
  }
  sqlite3_reset(s);
  if (failed || rc != SQLITE_DONE) {
    json_decref(contact);
    json_decref(convs);
    return failed ? -EIO : sq_fail(st, r, "reading a contact's conversations");
  }
  *result = json_pack("{so so sI}", "contact", contact, "conversations", convs, "exported_at", (json_int_t)sb_wall_ms());
  return 0;
}

int store_contact_export(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_read_json(st, sq__contact_export, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

static int sq__history_move(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, "UPDATE threads SET inbox = ?2 WHERE channel = ?1");
  if (s == NULL) return sq_fail(st, r, "moving a channel's history");
  sq_bind_text(s, 1, sq__str(a, "name"));
  sq_bind_text(s, 2, sq__str(a, "inbox"));
  if (sq__step(st, r, s, "moving a channel's history") < 0) return -EIO;
  *result = json_pack("{sI}", "threads", (json_int_t)sqlite3_changes(st->db));
  return 0;
}

int store_channel_history_move(store *st, const char *name, const char *inbox, store_json_cb cb,
                               void *arg) {
  if (name == NULL || inbox == NULL) return -EINVAL;
  return sq_submit_json(st, sq__history_move, json_pack("{ss ss}", "name", name, "inbox", inbox), cb, arg);
}

/* ---- outgoing webhooks ---- */

#define SQ_WEBHOOK_JSON                                                                                      \
  "SELECT json_object('id', id, 'url', url, 'events', json(events), 'channel', channel, 'inbox', inbox,"     \
  " 'description', description, 'secret', secret, 'active', json(CASE active WHEN 0 THEN 'false' ELSE 'true' END)," \
  " 'cursor', cursor, 'failures', failures, 'last_status', last_status, 'last_error', last_error,"            \
  " 'last_attempt_at', last_attempt_at, 'last_success_at', last_success_at, 'created_at', created_at)"       \
  " FROM webhooks "

static int sq__no_webhook(sq_req *r, int64_t id) {
  r->status = -ENOENT;
  snprintf(r->err, sizeof(r->err), "webhook %lld does not exist", (long long)id);
  return -ENOENT;
}

static int sq__webhooks_list(store *st, sq_req *r, json_t *a, json_t **result) {
  (void)a;
  return sq_json_rows(st, r, sq_prep(st, SQ_WEBHOOK_JSON "ORDER BY id"), "reading webhooks", result);
}

int store_webhooks_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__webhooks_list, NULL, cb, arg);
}

/* The webhook id as listed into *result, or -ENOENT. */
static int sq__webhook_one(store *st, sq_req *r, int64_t id, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_WEBHOOK_JSON "WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a webhook");
  sqlite3_bind_int64(s, 1, id);
  return sq_json_one(st, r, s, "webhook", id, result);
}

static int sq__webhook_get(store *st, sq_req *r, json_t *a, json_t **result) {
  return sq__webhook_one(st, r, json_integer_value(json_object_get(a, "id")), result);
}

int store_webhook_get(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__webhook_get, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

/* Binds text field key of f to ?i (NULL for null) and to ?i+1 whether f
 * has the key at all (an absent one keeps the stored value). */
static void sq__bind_field(sqlite3_stmt *s, int i, const json_t *f, const char *key) {
  const json_t *v = json_object_get(f, key);
  if (json_is_string(v)) sqlite3_bind_text(s, i, json_string_value(v), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, i + 1, v != NULL);
}

static int sq__webhook_put(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  const json_t *f = json_object_get(a, "fields");
  char *events = json_dumps(json_object_get(f, "events"), JSON_COMPACT);
  sqlite3_stmt *s = sq_prep(st, id == 0
      ? "INSERT INTO webhooks(url, events, channel, inbox, description, secret, active, cursor, created_at)"
        " VALUES(?1, ?3, ?5, ?7, ?9, ?11, coalesce(?13, 1), ?15, ?17)"
      : "UPDATE webhooks SET url = CASE WHEN ?2 THEN ?1 ELSE url END, events = CASE WHEN ?4 THEN ?3 ELSE events END,"
        " channel = CASE WHEN ?6 THEN ?5 ELSE channel END, inbox = CASE WHEN ?8 THEN ?7 ELSE inbox END,"
        " description = CASE WHEN ?10 THEN ?9 ELSE description END,"
        " secret = CASE WHEN ?12 THEN ?11 ELSE secret END, active = coalesce(?13, active),"
        " cursor = CASE WHEN ?16 THEN ?15 ELSE cursor END,"
        " failures = CASE WHEN ?13 = 1 AND active = 0 THEN 0 ELSE failures END WHERE id = ?18");
  if (s == NULL) {
    free(events);
    return sq_fail(st, r, "saving a webhook");
  }
  sq__bind_field(s, 1, f, "url");
  sq_bind_text(s, 3, events);
  sqlite3_bind_int(s, 4, events != NULL);
  sq__bind_field(s, 5, f, "channel");
  sq__bind_field(s, 7, f, "inbox");
  sq__bind_field(s, 9, f, "description");
  sq__bind_field(s, 11, f, "secret");
  const json_t *active = json_object_get(f, "active");
  if (json_is_boolean(active)) sqlite3_bind_int(s, 13, json_is_true(active));
  const json_t *cursor = json_object_get(f, "cursor");
  sqlite3_bind_int64(s, 15, json_integer_value(cursor));
  sqlite3_bind_int(s, 16, json_is_integer(cursor));
  sqlite3_bind_int64(s, 17, sq_batch_now(st));
  sqlite3_bind_int64(s, 18, id);
  int rc = sq__step(st, r, s, "saving a webhook");
  free(events);
  if (rc < 0) return rc;
  if (id != 0 && sqlite3_changes(st->db) == 0) return sq__webhook_one(st, r, id, result);
  return sq__webhook_one(st, r, id != 0 ? id : sqlite3_last_insert_rowid(st->db), result);
}

int store_webhook_put(store *st, int64_t id, const json_t *fields, store_json_cb cb, void *arg) {
  if (!json_is_object(fields) || id < 0) return -EINVAL;
  if (id == 0 && (!json_is_string(json_object_get(fields, "url")) || !json_is_array(json_object_get(fields, "events")) ||
                  !json_is_string(json_object_get(fields, "secret")) ||
                  !json_is_integer(json_object_get(fields, "cursor"))))
    return -EINVAL;
  return sq_submit_json(st, sq__webhook_put, json_pack("{sI sO}", "id", (json_int_t)id, "fields", (json_t *)fields),
                        cb, arg);
}

static int sq__webhook_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM webhooks WHERE id = ?1");
  if (s != NULL) sqlite3_bind_int64(s, 1, id);
  if (sq__step(st, r, s, "deleting a webhook") < 0) return -EIO;
  if (sqlite3_changes(st->db) == 0) return sq__no_webhook(r, id);
  *result = json_pack("{sI}", "deleted", (json_int_t)id);
  return 0;
}

int store_webhook_delete(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__webhook_delete, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

static int sq__webhook_progress(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  const json_t *p = json_object_get(a, "state");
  sqlite3_stmt *s = sq_prep(st,
      "UPDATE webhooks SET cursor = max(cursor, coalesce(?2, cursor)), failures = ?3, last_status = ?4,"
      " last_error = ?5, last_attempt_at = ?6, last_success_at = coalesce(?7, last_success_at) WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "recording a webhook delivery");
  sqlite3_bind_int64(s, 1, id);
  const json_t *v;
  if (json_is_integer(v = json_object_get(p, "cursor"))) sqlite3_bind_int64(s, 2, json_integer_value(v));
  sqlite3_bind_int64(s, 3, json_integer_value(json_object_get(p, "failures")));
  if (json_is_integer(v = json_object_get(p, "last_status"))) sqlite3_bind_int64(s, 4, json_integer_value(v));
  sq_bind_text(s, 5, json_string_value(json_object_get(p, "last_error")));
  sqlite3_bind_int64(s, 6, json_integer_value(json_object_get(p, "last_attempt_at")));
  if (json_is_integer(v = json_object_get(p, "last_success_at"))) sqlite3_bind_int64(s, 7, json_integer_value(v));
  if (sq__step(st, r, s, "recording a webhook delivery") < 0) return -EIO;
  if (sqlite3_changes(st->db) == 0) return sq__no_webhook(r, id);
  *result = json_pack("{sI}", "id", (json_int_t)id);
  return 0;
}

int store_webhook_progress(store *st, int64_t id, const json_t *state, store_json_cb cb, void *arg) {
  if (!json_is_object(state)) return -EINVAL;
  return sq_submit_json(st, sq__webhook_progress,
                        json_pack("{sI sO}", "id", (json_int_t)id, "state", (json_t *)state), cb, arg);
}
