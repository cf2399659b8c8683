/* store_sqlite_label.c — labels: the set operators keep (name, colour,
 * description) and the labels agents put on conversations. Names are
 * compared folded (labels.folded, sb_fold: the search's case folding in
 * every script), so "Billing" and "billing" are one label, kept as first
 * written. */
#include "store_sqlite.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQ_LABEL_JSON                                                                             \
  "SELECT json_object('name', l.name, 'color', l.color, 'description', l.description,"            \
  " 'created_at', l.created_at, 'conversations', (SELECT count(*) FROM thread_labels tl"          \
  " WHERE tl.label_id = l.id)) FROM labels l "

static const char *sq__str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int sq__label_missing(sq_req *r, const char *name) {
  r->status = -ENOENT;
  snprintf(r->err, sizeof(r->err), "label \"%.64s\" does not exist", name != NULL ? name : "");
  return -ENOENT;
}

/* Label name as the API shows it into *result; -ENOENT when there is none. */
static int sq__label_one(store *st, sq_req *r, const char *name, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_LABEL_JSON "WHERE l.folded = sb_fold(?1)");
  if (s == NULL) return sq_fail(st, r, "reading a label");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  *result = rc == SQLITE_ROW ? json_loads(sq_col_text(s, 0), 0, NULL) : NULL;
  sqlite3_reset(s);
  if (rc == SQLITE_ROW && *result != NULL) return 0;
  return rc == SQLITE_DONE ? sq__label_missing(r, name) : sq_fail(st, r, "reading a label");
}

static int sq__labels_list(store *st, sq_req *r, json_t *a, json_t **result) {
  (void)a;
  json_t *items;
  if (sq_json_rows(st, r, sq_prep(st, SQ_LABEL_JSON "ORDER BY l.folded, l.name"), "listing labels", &items) < 0)
    return -EIO;
  *result = json_pack("{so s:n}", "items", items, "next_cursor");
  return 0;
}

int store_labels_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_read_json(st, sq__labels_list, NULL, cb, arg);
}

static int sq__label_taken(sq_req *r, const char *name) {
  r->status = -EEXIST;
  snprintf(r->err, sizeof(r->err), "a label named \"%.64s\" exists already (names are compared without regard to case)",
           name);
  return -EEXIST;
}

static int sq__label_create(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *name = sq__str(a, "name");
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO labels(name, folded, color, description, created_at)"
                                " VALUES(?1, sb_fold(?1), ?2, ?3, ?4) ON CONFLICT(folded) DO NOTHING");
  if (s == NULL) return sq_fail(st, r, "saving a label");
  sq_bind_text(s, 1, name);
  sq_bind_text(s, 2, sq__str(a, "color"));
  sq_bind_text(s, 3, sq__str(a, "description"));
  sqlite3_bind_int64(s, 4, sq_batch_now(st));
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "saving a label");
  if (sqlite3_changes(st->db) == 0) return sq__label_taken(r, name);
  if (sq__label_one(st, r, name, result) < 0) return r->status;
  return sq_event(st, r, "label.updated", NULL, NULL, json_incref(*result));
}

int store_label_create(store *st, const json_t *label, store_json_cb cb, void *arg) {
  if (!json_is_string(json_object_get(label, "name"))) return -EINVAL;
  return sq_submit_json(st, sq__label_create, json_deep_copy(label), cb, arg);
}

static int sq__label_patch(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *name = sq__str(a, "name");
  json_t *p = json_object_get(a, "patch");
  const char *rename = sq__str(p, "name");
  if (json_object_size(p) == 0) return sq__label_one(st, r, name, result); /* nothing to change, no event */
  json_t *previous = NULL; /* as stored (the path may differ in case): a rename's previous_name */
  if (rename != NULL && sq__label_one(st, r, name, &previous) < 0) return r->status;
  /* A key given sets its field, null clears it, a key left out keeps it. */
  sqlite3_stmt *s = sq_prep(st, "UPDATE labels SET name = coalesce(?2, name), folded = coalesce(sb_fold(?2), folded),"
                                " color = CASE WHEN ?5 THEN ?3 ELSE color END,"
                                " description = CASE WHEN ?6 THEN ?4 ELSE description END"
                                " WHERE folded = sb_fold(?1) RETURNING name");
  if (s == NULL) {
    json_decref(previous);
    return sq_fail(st, r, "changing a label");
  }
  sq_bind_text(s, 1, name);
  sq_bind_text(s, 2, rename);
  sq_bind_text(s, 3, sq__str(p, "color"));
  sq_bind_text(s, 4, sq__str(p, "description"));
  sqlite3_bind_int(s, 5, json_object_get(p, "color") != NULL);
  sqlite3_bind_int(s, 6, json_object_get(p, "description") != NULL);
  int rc = sqlite3_step(s);
  int found = rc == SQLITE_ROW;
  if (found) rc = sqlite3_step(s);
  sqlite3_reset(s);
  if ((rc & 0xff) == SQLITE_CONSTRAINT)
    rc = sq__label_taken(r, rename); /* folded is another label's */
  else if (rc != SQLITE_DONE)
    rc = sq_fail(st, r, "changing a label");
  else
    rc = found ? sq__label_one(st, r, rename != NULL ? rename : name, result) : sq__label_missing(r, name);
  if (rc < 0) {
    json_decref(previous);
    return rc;
  }
  json_t *data = json_deep_copy(*result);
  if (previous != NULL) json_object_set(data, "previous_name", json_object_get(previous, "name"));
  json_decref(previous);
  return sq_event(st, r, "label.updated", NULL, NULL, data);
}

int store_label_patch(store *st, const char *name, const json_t *patch, store_json_cb cb, void *arg) {
  if (name == NULL || !json_is_object(patch)) return -EINVAL;
  return sq_submit_json(st, sq__label_patch, json_pack("{ss sO}", "name", name, "patch", (json_t *)patch), cb, arg);
}

static int sq__label_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *name = sq__str(a, "name");
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM labels WHERE folded = sb_fold(?1) RETURNING id, name");
  if (s == NULL) return sq_fail(st, r, "deleting a label");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  json_t *stored = rc == SQLITE_ROW ? json_string(sq_col_text(s, 1)) : NULL;
  if (rc == SQLITE_ROW) rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(stored);
    return sq_fail(st, r, "deleting a label");
  }
  if (id == 0) return sq__label_missing(r, name);
  s = sq_prep(st, "DELETE FROM thread_labels WHERE label_id = ?1");
  if (s == NULL) {
    json_decref(stored);
    return sq_fail(st, r, "deleting a label");
  }
  sqlite3_bind_int64(s, 1, id);
  rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(stored);
    return sq_fail(st, r, "deleting a label");
  }
  *result = json_pack("{so sI}", "deleted", stored, "conversations", (json_int_t)sqlite3_changes(st->db));
  return sq_event(st, r, "label.deleted", NULL, NULL,
                  json_pack("{sO sO}", "name", json_object_get(*result, "deleted"), "conversations",
                            json_object_get(*result, "conversations")));
}

int store_label_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__label_delete, json_pack("{ss}", "name", name), cb, arg);
}

/* ---- a conversation's labels ---- */

/* The id of the label a JSON name names (compared folded) into *id;
 * -EINVAL naming it when there is none. */
static int sq__label_id(store *st, sq_req *r, const json_t *name, int64_t *id) {
  sqlite3_stmt *s = sq_prep(st, "SELECT id FROM labels WHERE folded = sb_fold(?1)");
  if (s == NULL) return sq_fail(st, r, "reading a label");
  sq_bind_text(s, 1, json_string_value(name));
  int rc = sqlite3_step(s);
  *id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(st, r, "reading a label");
  if (*id != 0) return 0;
  r->status = -EINVAL;
  snprintf(r->err, sizeof(r->err), "label \"%.64s\" does not exist (labels)",
           json_is_string(name) ? json_string_value(name) : "");
  return -EINVAL;
}

/* Runs sql (binding the thread as ?1 and the label as ?2) for every label
 * names holds; ids (may be NULL) gets their ids, in order. */
static int sq__labels_each(store *st, sq_req *r, int64_t thread_id, const json_t *names, const char *sql,
                           int64_t *ids) {
  size_t i;
  json_t *v;
  json_array_foreach(names, i, v) {
    int64_t id;
    if (sq__label_id(st, r, v, &id) < 0) return r->status;
    if (ids != NULL) ids[i] = id;
    sqlite3_stmt *s = sq_prep(st, sql);
    if (s == NULL) return sq_fail(st, r, "changing a conversation's labels");
    sqlite3_bind_int64(s, 1, thread_id);
    sqlite3_bind_int64(s, 2, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return sq_fail(st, r, "changing a conversation's labels");
  }
  return 0;
}

/* thread_id's label names (SQ_THREAD_LABELS) as JSON text into *out (malloc'd). */
static int sq__thread_label_text(store *st, sq_req *r, int64_t thread_id, char **out) {
  sqlite3_stmt *s = sq_prep(st, "SELECT " SQ_THREAD_LABELS("?1"));
  if (s == NULL) return sq_fail(st, r, "reading a conversation's labels");
  sqlite3_bind_int64(s, 1, thread_id);
  int rc = sqlite3_step(s);
  *out = rc == SQLITE_ROW ? strdup(sq_col_text(s, 0)) : NULL;
  sqlite3_reset(s);
  return *out != NULL ? 0 : sq_fail(st, r, "reading a conversation's labels");
}

int sq_thread_labels(store *st, sq_req *r, int64_t thread_id, const char *channel, const json_t *set,
                     const json_t *add, const json_t *remove) {
  static const char put[] = "INSERT OR IGNORE INTO thread_labels(thread_id, label_id) VALUES(?1, ?2)";
  size_t n_removed = json_array_size(remove), n_added = json_array_size(add);
  int64_t *ids = calloc(n_removed + n_added + 1, sizeof(*ids)); /* removed, then added */
  if (ids == NULL) {
    r->status = -ENOMEM;
    snprintf(r->err, sizeof(r->err), "store: out of memory");
    return -ENOMEM;
  }
  char *before = NULL, *after = NULL;
  int rc = sq__thread_label_text(st, r, thread_id, &before);
  if (rc == 0 && set != NULL) {
    sqlite3_stmt *s = sq_prep(st, "DELETE FROM thread_labels WHERE thread_id = ?1");
    if (s != NULL) sqlite3_bind_int64(s, 1, thread_id);
    if (s == NULL || sqlite3_step(s) != SQLITE_DONE) rc = sq_fail(st, r, "changing a conversation's labels");
    if (s != NULL) sqlite3_reset(s);
    if (rc == 0) rc = sq__labels_each(st, r, thread_id, set, put, NULL);
  }
  if (rc == 0)
    rc = sq__labels_each(st, r, thread_id, remove, "DELETE FROM thread_labels WHERE thread_id = ?1 AND label_id = ?2",
                         ids);
  if (rc == 0) rc = sq__labels_each(st, r, thread_id, add, put, ids + n_removed);
  /* One label both added and removed says two things: refuse it. */
  for (size_t i = 0; rc == 0 && i < n_added; i++) {
    for (size_t j = 0; rc == 0 && j < n_removed; j++) {
      if (ids[n_removed + i] != ids[j]) continue;
      r->status = rc = -EINVAL;
      snprintf(r->err, sizeof(r->err), "label \"%.64s\" is both added and removed (labels)",
               json_string_value(json_array_get(add, i)));
    }
  }
  if (rc == 0) rc = sq__thread_label_text(st, r, thread_id, &after);
  if (rc == 0 && strcmp(before, after) != 0) {
    const router_channel *ch = sq_channel(st, channel);
    rc = sq_event(st, r, "thread.labels", channel, ch != NULL ? ch->inbox : NULL,
                  json_pack("{sI so}", "thread_id", (json_int_t)thread_id, "labels", json_loads(after, 0, NULL)));
  }
  free(ids);
  free(before);
  free(after);
  return rc;
}
