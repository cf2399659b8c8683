/* store_sqlite_canned.c — canned responses: saved replies agents send by
 * name (a reply's "canned"), with the contact's and agent's names filled in
 * when the reply is stored (sq_canned_text). */
#include "store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQ_CANNED_JSON \
  "SELECT json_object('name', name, 'text', text, 'updated_by', updated_by, 'updated_at', updated_at) FROM canned "

static int sq__canned_one(store *st, sq_req *r, const char *name, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_CANNED_JSON "WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a canned response");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  *result = rc == SQLITE_ROW ? json_loads(sq_col_text(s, 0), 0, NULL) : NULL;
  sqlite3_reset(s);
  if (rc == SQLITE_ROW && *result != NULL) return 0;
  if (rc != SQLITE_DONE) return sq_fail(st, r, "reading a canned response");
  r->status = -ENOENT;
  snprintf(r->err, sizeof(r->err), "canned response \"%.64s\" does not exist", name);
  return -ENOENT;
}

static int sq__canned_list(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_CANNED_JSON "WHERE ?1 IS NULL OR sb_contains(name, ?1) OR sb_contains(text, ?1)"
                                              " ORDER BY name");
  if (s != NULL) sq_bind_text(s, 1, json_string_value(json_object_get(a, "q")));
  json_t *items;
  if (sq_json_rows(st, r, s, "listing canned responses", &items) < 0) return -EIO;
  *result = json_pack("{so s:n}", "items", items, "next_cursor");
  return 0;
}

int store_canned_list(store *st, const char *q, store_json_cb cb, void *arg) {
  return sq_submit_read_json(st, sq__canned_list, json_pack("{ss?}", "q", q), cb, arg);
}

static int sq__canned_put(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *name = json_string_value(json_object_get(a, "name"));
  int create = json_is_true(json_object_get(a, "create"));
  sqlite3_stmt *s = sq_prep(st, create ? "INSERT INTO canned(name, text, updated_by, updated_at)"
                                         " VALUES(?1, ?2, (SELECT name FROM users WHERE id = ?3), ?4)"
                                         " ON CONFLICT(name) DO NOTHING"
                                       : "UPDATE canned SET text = ?2, updated_by = (SELECT name FROM users"
                                         " WHERE id = ?3), updated_at = ?4 WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "writing a canned response");
  sq_bind_text(s, 1, name);
  sq_bind_text(s, 2, json_string_value(json_object_get(a, "text")));
  sqlite3_bind_int64(s, 3, json_integer_value(json_object_get(a, "by")));
  sqlite3_bind_int64(s, 4, sq_batch_now(st));
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "writing a canned response");
  if (sqlite3_changes(st->db) == 0) {
    r->status = create ? -EEXIST : -ENOENT;
    snprintf(r->err, sizeof(r->err), create ? "canned response \"%.64s\" exists already"
                                            : "canned response \"%.64s\" does not exist",
             name);
    return r->status;
  }
  return sq__canned_one(st, r, name, result);
}

int store_canned_put(store *st, const char *name, const char *text, int64_t user_id, int create, store_json_cb cb,
                     void *arg) {
  if (name == NULL || text == NULL) return -EINVAL;
  return sq_submit_json(st, sq__canned_put,
                        json_pack("{ss ss sI sb}", "name", name, "text", text, "by", (json_int_t)user_id, "create",
                                  create),
                        cb, arg);
}

static int sq__canned_delete(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *name = json_string_value(json_object_get(a, "name"));
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM canned WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "deleting a canned response");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "deleting a canned response");
  if (sqlite3_changes(st->db) == 0) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "canned response \"%.64s\" does not exist", name);
    return -ENOENT;
  }
  *result = json_pack("{ss}", "deleted", name);
  return 0;
}

int store_canned_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__canned_delete, json_pack("{ss}", "name", name), cb, arg);
}

/* ---- filling one in, in a reply's transaction ---- */

/* Appends what placeholder (the text between "{{" and "}}", n bytes) stands
 * for; returns 0 when it is none of them (it is then kept as written). */
static int sq__placeholder(json_t *out_parts, const char *ph, size_t n, const char *contact, const char *agent) {
  const char *v = NULL;
  char first[256];
  if (n == 12 && memcmp(ph, "contact.name", 12) == 0) {
    v = contact;
  } else if (n == 18 && memcmp(ph, "contact.first_name", 18) == 0) {
    snprintf(first, sizeof(first), "%s", contact != NULL ? contact : "");
    first[strcspn(first, " ")] = '\0';
    v = first;
  } else if (n == 10 && memcmp(ph, "agent.name", 10) == 0) {
    v = agent;
  } else {
    return 0;
  }
  json_array_append_new(out_parts, json_string(v != NULL ? v : ""));
  return 1;
}

/* The text with {{contact.name}}, {{contact.first_name}} and {{agent.name}}
 * filled in (empty when unknown; other {{...}} stay as written). malloc'd. */
static char *sq__fill(const char *text, const char *contact, const char *agent) {
  json_t *parts = json_array();
  const char *p = text;
  for (;;) {
    const char *open = strstr(p, "{{");
    const char *close = open != NULL ? strstr(open + 2, "}}") : NULL;
    if (close == NULL) break;
    json_array_append_new(parts, json_stringn(p, (size_t)(open - p)));
    if (!sq__placeholder(parts, open + 2, (size_t)(close - open - 2), contact, agent))
      json_array_append_new(parts, json_stringn(open, (size_t)(close + 2 - open)));
    p = close + 2;
  }
  json_array_append_new(parts, json_string(p));
  size_t len = 0, i;
  json_t *v;
  json_array_foreach(parts, i, v) len += json_string_length(v);
  char *out = malloc(len + 1);
  if (out != NULL) {
    size_t o = 0;
    json_array_foreach(parts, i, v) {
      memcpy(out + o, json_string_value(v), json_string_length(v));
      o += json_string_length(v);
    }
    out[o] = '\0';
  }
  json_decref(parts);
  return out;
}

int sq_canned_text(store *st, sq_req *r, const char *name, int64_t contact_id, int64_t user_id, char **out) {
  *out = NULL;
  sqlite3_stmt *s = sq_prep(st, "SELECT text, (SELECT name FROM contacts WHERE id = ?2),"
                                " (SELECT name FROM users WHERE id = ?3) FROM canned WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a canned response");
  sq_bind_text(s, 1, name);
  sqlite3_bind_int64(s, 2, contact_id);
  sqlite3_bind_int64(s, 3, user_id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *out = sq__fill(sq_col_text(s, 0), sq_col_text(s, 1), sq_col_text(s, 2));
  sqlite3_reset(s);
  if (rc == SQLITE_ROW && *out != NULL) return 0;
  if (rc == SQLITE_ROW) {
    r->status = -ENOMEM;
    snprintf(r->err, sizeof(r->err), "store: out of memory");
    return -ENOMEM;
  }
  if (rc != SQLITE_DONE) return sq_fail(st, r, "reading a canned response");
  r->status = -EINVAL;
  snprintf(r->err, sizeof(r->err), "canned response \"%.64s\" does not exist (canned)", name);
  return -EINVAL;
}
