/* store_sqlite_read.c — conversations, tickets, contacts, events and plugin
 * key/value state for the REST API and SSE; rows are built as JSON by SQLite. */
#include "store_sqlite.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

static const char *sq__str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int64_t sq__limit(json_t *q) {
  json_int_t l = json_integer_value(json_object_get(q, "limit"));
  return l <= 0 ? 50 : l > 500 ? 500 : l;
}

/* ---- search: sb_contains(text, q) ---- */

/* Case folding for search, in every script (SQLite's LIKE folds ASCII only):
 * C.UTF-8's simple lower-case mapping, which libc-bin always ships. */
static locale_t sq__fold_locale;
static pthread_once_t sq__fold_once = PTHREAD_ONCE_INIT;
static void sq__fold_init(void) { sq__fold_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0); }

/* Decodes one UTF-8 code point at s (n bytes left) into *cp; returns its
 * length, or 0 for a byte that does not start a valid sequence. */
size_t sq_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  uint32_t c = len == 1 ? s[0] : s[0] & (0x7F >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3F);
  }
  static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < least[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

static size_t sq__utf8_encode(uint32_t c, char *out) {
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | c >> 6);
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | c >> 12);
    out[1] = (char)(0x80 | (c >> 6 & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | c >> 18);
  out[1] = (char)(0x80 | (c >> 12 & 0x3F));
  out[2] = (char)(0x80 | (c >> 6 & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* The search's case folding: store_sqlite.h. */
size_t sq_fold(const unsigned char *s, size_t n, char *out) {
  pthread_once(&sq__fold_once, sq__fold_init);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (s[i] < 0x80) { /* most text: no decoding */
      out[o++] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
      i++;
      continue;
    }
    uint32_t c;
    size_t l = sq_utf8_decode(s + i, n - i, &c);
    if (l == 0) {
      out[o++] = (char)s[i++];
      continue;
    }
    i += l;
    uint32_t f = sq__fold_locale != (locale_t)0 ? (uint32_t)towlower_l((wint_t)c, sq__fold_locale) : c;
    /* letters with two lower-case forms: the word-final sigma is a sigma,
     * the long s an s (schema 27 rebuilt the index folded so) */
    if (f == 0x03c2) f = 0x03c3;
    else if (f == 0x017f) f = 's';
    o += sq__utf8_encode(f, out + o);
  }
  return o;
}

typedef struct sq_folded {
  size_t len;
  char text[];
} sq_folded;

/* sb_contains(text, q): 1 if q occurs in text, letters compared without
 * regard to case; NULL if either is NULL. q is folded once per statement. */
static void sq__contains(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) return;
  sq_folded *q = sqlite3_get_auxdata(ctx, 1);
  int made = q == NULL;
  if (made) {
    const unsigned char *qt = sqlite3_value_text(argv[1]); /* text first, then its length */
    size_t n = (size_t)sqlite3_value_bytes(argv[1]);
    if (qt == NULL || (q = malloc(sizeof(*q) + 2 * n + 4)) == NULL) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    q->len = sq_fold(qt, n, q->text);
  }
  /* the text: on the stack for most messages, the row scan calls this a lot */
  char small[4096], *t = small;
  const unsigned char *text = sqlite3_value_text(argv[0]);
  size_t n = (size_t)sqlite3_value_bytes(argv[0]);
  if (text == NULL || (2 * n + 4 > sizeof(small) && (t = malloc(2 * n + 4)) == NULL)) {
    sqlite3_result_error_nomem(ctx);
  } else {
    size_t len = sq_fold(text, n, t);
    sqlite3_result_int(ctx, q->len == 0 || memmem(t, len, q->text, q->len) != NULL);
    if (t != small) free(t);
  }
  /* kept for the statement's next rows (q is a bound parameter); SQLite
   * frees it at once when it cannot keep it */
  if (made) sqlite3_set_auxdata(ctx, 1, q, free);
}

/* sb_fold(text): text as sb_contains compares it (lower case), for the
 * search index; NULL stays NULL. */
static void sq__fold_sql(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const unsigned char *text = sqlite3_value_text(argv[0]);
  size_t n = (size_t)sqlite3_value_bytes(argv[0]);
  char *t = text != NULL ? sqlite3_malloc64(2 * n + 4) : NULL;
  if (t == NULL) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, t, (int)sq_fold(text, n, t), sqlite3_free);
}

int sq_register_functions(sqlite3 *db) {
  int rc = sqlite3_create_function(db, "sb_contains", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                   NULL, sq__contains, NULL, NULL);
  if (rc != SQLITE_OK) return rc;
  return sqlite3_create_function(db, "sb_fold", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                 sq__fold_sql, NULL, NULL);
}

/* Cursors are the last id of the previous page, as a decimal string. */
static int64_t sq__cursor(json_t *q) {
  const char *c = sq__str(q, "cursor");
  return c ? strtoll(c, NULL, 10) : 0;
}

/* Runs s, whose rows are one JSON text each (ordered by id) and which was
 * bound to read limit + 1 of them, into a page of at most limit items. The
 * row past the page tells whether there is a next one: next_cursor is null
 * on the last page, even a full one. */
static int sq__run_page(store *st, sq_req *r, sqlite3_stmt *s, int64_t limit, json_t **result) {
  json_t *items;
  int rc = sq_json_rows(st, r, s, "reading rows", &items);
  if (rc < 0) return rc;
  json_t *next = json_null();
  if ((int64_t)json_array_size(items) > limit) {
    json_array_remove(items, (size_t)limit);
    json_t *last = json_array_get(items, (size_t)limit - 1);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(json_object_get(last, "id")));
    next = json_string(buf);
  }
  *result = json_pack("{so so}", "items", items, "next_cursor", next);
  return 0;
}

/* ---- audit log ---- */

static int sq__audit_append(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st,
      "INSERT INTO audit(at, token, role, user, method, path, status, detail)"
      " VALUES(?1, ?2, ?7, ?8, ?3, ?4, ?5, ?6) RETURNING id");
  if (s == NULL) return sq_fail(st, r, "writing the audit log");
  sqlite3_bind_int64(s, 1, sb_wall_ms());
  sq_bind_text(s, 2, sq__str(a, "token"));
  sq_bind_text(s, 7, sq__str(a, "role"));
  sq_bind_text(s, 8, sq__str(a, "user"));
  sq_bind_text(s, 3, sq__str(a, "method"));
  sq_bind_text(s, 4, sq__str(a, "path"));
  sqlite3_bind_int(s, 5, (int)json_integer_value(json_object_get(a, "status")));
  sq_bind_text(s, 6, sq__str(a, "detail"));
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return sq_fail(st, r, "writing the audit log");
  }
  *result = json_pack("{sI}", "id", (json_int_t)sqlite3_column_int64(s, 0));
  sqlite3_step(s);
  sqlite3_reset(s);
  return 0;
}

int store_audit_append(store *st, const char *token, const char *role, const char *user, const char *method,
                       const char *path, int status, const char *detail_json, store_json_cb cb, void *arg) {
  if (method == NULL || path == NULL) return -EINVAL;
  return sq_submit_json(st, sq__audit_append,
                        json_pack("{ss? ss? ss? ss ss si ss?}", "token", token, "role", role, "user", user, "method",
                                  method, "path", path, "status", status, "detail", detail_json),
                        cb, arg);
}

static int sq__audit_list(store *st, sq_req *r, json_t *q, json_t **result) {
  sqlite3_stmt *s = sq_prep(st,
      "SELECT json_object('id', id, 'at', at, 'token', token, 'role', role, 'user', user, 'method', method,"
      " 'path', path, 'status', status, 'detail', json(detail)) FROM audit"
      " WHERE ?1 = 0 OR id < ?1 ORDER BY id DESC LIMIT ?2");
  if (s == NULL) return sq_fail(st, r, "reading the audit log");
  int64_t limit = sq__limit(q);
  sqlite3_bind_int64(s, 1, sq__cursor(q));
  sqlite3_bind_int64(s, 2, limit + 1);
  return sq__run_page(st, r, s, limit, result);
}

int store_audit_list(store *st, const json_t *query, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__audit_list, query ? json_deep_copy(query) : json_object(), cb, arg);
}

/* ---- contacts ---- */

#define SQ_CONTACT_JSON                                                                 \
  "SELECT json_object('id', c.id, 'name', c.name, 'email', c.email, 'phone', c.phone,"   \
  " 'avatar_url', c.avatar_url, 'owner', (SELECT name FROM users WHERE id = c.owner_id)," \
  " 'identities', (SELECT json_group_array(json_object('channel', i.channel, 'kind',"    \
  " i.kind, 'value', i.value)) FROM identities i WHERE i.contact_id = c.id)) FROM contacts c "

static int sq__contacts_list(store *st, sq_req *r, json_t *q, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_CONTACT_JSON
      "WHERE c.id > ?1 AND (?2 IS NULL OR sb_contains(c.name, ?2) OR sb_contains(c.email, ?2)"
      " OR sb_contains(c.phone, ?2))"
      " ORDER BY c.id LIMIT ?3");
  if (s == NULL) return sq_fail(st, r, "listing contacts");
  int64_t limit = sq__limit(q);
  sqlite3_bind_int64(s, 1, sq__cursor(q));
  sq_bind_text(s, 2, sq__str(q, "q"));
  sqlite3_bind_int64(s, 3, limit + 1);
  return sq__run_page(st, r, s, limit, result);
}

int store_contacts_list(store *st, const json_t *query, store_json_cb cb, void *arg) {
  return sq_submit_read_json(st, sq__contacts_list, query ? json_deep_copy(query) : json_object(), cb, arg);
}

static int sq__contact_patch(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  json_t *p = json_object_get(a, "patch");
  json_t *owner = json_object_get(p, "owner");
  /* A key given sets its field, null clears it, a key left out keeps it. */
  sqlite3_stmt *s = sq_prep(st,
      "UPDATE contacts SET name = CASE WHEN ?8 THEN ?2 ELSE name END,"
      " email = CASE WHEN ?9 THEN ?3 ELSE email END, phone = CASE WHEN ?10 THEN ?4 ELSE phone END,"
      " avatar_url = CASE WHEN ?11 THEN ?5 ELSE avatar_url END,"
      " owner_id = CASE WHEN ?6 THEN (SELECT id FROM users WHERE name = ?7) ELSE owner_id END"
      " WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "updating a contact");
  static const char *const fields[] = {"name", "email", "phone", "avatar_url"};
  sqlite3_bind_int64(s, 1, id);
  for (int i = 0; i < 4; i++) {
    sq_bind_text(s, 2 + i, sq__str(p, fields[i]));
    sqlite3_bind_int(s, 8 + i, json_object_get(p, fields[i]) != NULL);
  }
  sqlite3_bind_int(s, 6, owner != NULL);
  sq_bind_text(s, 7, json_string_value(owner));
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "updating a contact");
  if (json_is_string(owner) && sqlite3_changes(st->db) > 0) { /* an unknown contact is 404 below, first */
    s = sq_prep(st, "SELECT 1 FROM users WHERE name = ?1");
    if (s == NULL) return sq_fail(st, r, "reading a user");
    sq_bind_text(s, 1, json_string_value(owner));
    int found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_reset(s);
    if (!found) {
      r->status = -EINVAL;
      snprintf(r->err, sizeof(r->err), "owner \"%s\" is not a user", json_string_value(owner));
      return -EINVAL;
    }
  }
  s = sq_prep(st, SQ_CONTACT_JSON "WHERE c.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a contact");
  sqlite3_bind_int64(s, 1, id);
  return sq_json_one(st, r, s, "contact", id, result);
}

int sq_contact_json(store *st, sq_req *r, int64_t id, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_CONTACT_JSON "WHERE c.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a contact");
  sqlite3_bind_int64(s, 1, id);
  return sq_json_one(st, r, s, "contact", id, result);
}

static int sq__contact_get(store *st, sq_req *r, json_t *a, json_t **result) {
  return sq_contact_json(st, r, json_integer_value(json_object_get(a, "id")), result);
}

int store_contact_get(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__contact_get, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

int store_contact_patch(store *st, int64_t id, const json_t *patch, store_json_cb cb, void *arg) {
  if (!json_is_object(patch)) return -EINVAL;
  return sq_submit_json(st, sq__contact_patch,
                        json_pack("{sI sO}", "id", (json_int_t)id, "patch", (json_t *)patch), cb, arg);
}

static int sq__contact_merge(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t into = json_integer_value(json_object_get(a, "into"));
  int64_t from = json_integer_value(json_object_get(a, "from"));
  if (into == from) {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "cannot merge contact %lld into itself", (long long)into);
    return -EINVAL;
  }
  static const char *const steps[] = {
      "SELECT count(*) = 2 FROM contacts WHERE id IN (?1, ?2)",
      "UPDATE contacts SET name = coalesce(name, (SELECT name FROM contacts WHERE id = ?2)),"
      " email = coalesce(email, (SELECT email FROM contacts WHERE id = ?2)),"
      " phone = coalesce(phone, (SELECT phone FROM contacts WHERE id = ?2)),"
      " avatar_url = coalesce(avatar_url, (SELECT avatar_url FROM contacts WHERE id = ?2)),"
      " owner_id = coalesce(owner_id, (SELECT owner_id FROM contacts WHERE id = ?2)) WHERE id = ?1",
      "UPDATE identities SET contact_id = ?1 WHERE contact_id = ?2",
      "UPDATE threads SET contact_id = ?1 WHERE contact_id = ?2",
      "UPDATE messages SET contact_id = ?1 WHERE contact_id = ?2",
      "DELETE FROM contacts WHERE id = ?2",
  };
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    sqlite3_stmt *s = sq_prep(st, steps[i]);
    if (s == NULL) return sq_fail(st, r, "merging contacts");
    sqlite3_bind_int64(s, 1, into);
    sqlite3_bind_int64(s, 2, from);
    int rc = sqlite3_step(s);
    int both = i == 0 && rc == SQLITE_ROW && sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    if (i == 0 && !both) {
      r->status = -ENOENT;
      snprintf(r->err, sizeof(r->err), "contacts %lld and %lld must both exist to merge",
               (long long)into, (long long)from);
      return -ENOENT;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sq_fail(st, r, "merging contacts");
  }
  sq_caches_clear(st); /* identities and threads changed owner */
  if (sq_event(st, r, "contact.merged", NULL, NULL,
               json_pack("{sI sI}", "contact_id", (json_int_t)into, "merged_id", (json_int_t)from)) < 0)
    return -EIO;
  sqlite3_stmt *s = sq_prep(st, SQ_CONTACT_JSON "WHERE c.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a contact");
  sqlite3_bind_int64(s, 1, into);
  return sq_json_one(st, r, s, "contact", into, result);
}

int store_contact_merge(store *st, int64_t into_id, int64_t from_id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__contact_merge,
                        json_pack("{sI sI}", "into", (json_int_t)into_id, "from", (json_int_t)from_id), cb, arg);
}

/* ---- conversations ---- */

#define SQ_THREAD_JSON                                                                      \
  "SELECT json_object('id', t.id, 'channel', t.channel, 'inbox', t.inbox, 'external_id',      \
  t.external_id,"                                                                           \
  " 'contact', json_object('id', c.id, 'name', c.name, 'email', c.email, 'phone', c.phone),"  \
  " 'status', t.status, 'assignee', (SELECT name FROM users WHERE id = t.assignee_id),"       \
  " 'ticket', CASE WHEN k.id IS NULL THEN NULL ELSE json_object('id', k.id, 'status',"        \
  " k.status, 'priority', k.priority, 'owner', (SELECT name FROM users WHERE id = k.owner_id)," \
  " 'name', k.name) END, 'labels', " SQ_THREAD_LABELS("t.id") ","                             \
  " 'last_message_at', (SELECT created_at FROM messages WHERE id = t.last_message_id),"       \
  " 'created_at', t.created_at, 'closed_at', t.closed_at)"                                  \
  " FROM threads t LEFT JOIN contacts c ON c.id = t.contact_id LEFT JOIN tickets k ON k.id = t.ticket_id "

/* The filters of the conversations list, and the part of q that needs no
 * index: the contact's name, email and phone, and agents' notes (few, read
 * by their thread); ?6 is q. */
#define SQ_CONVERSATIONS_WHERE                                                                     \
  "WHERE (?1 = 0 OR t.id < ?1) AND (?2 IS NULL OR t.channel = ?2) AND (?3 IS NULL OR t.inbox = ?3)" \
  " AND (?4 IS NULL OR t.status = ?4) AND (?10 IS NULL OR t.contact_id = ?10)"                    \
  " AND (?11 IS NULL OR t.id IN (SELECT tl.thread_id FROM thread_labels tl WHERE tl.label_id ="    \
  "      (SELECT id FROM labels WHERE folded = sb_fold(?11))))"                                   \
  " AND (?5 IS NULL OR (?5 = 'none' AND t.assignee_id IS NULL)"                                   \
  "      OR t.assignee_id = (SELECT id FROM users WHERE name = ?5))"                              \
  " AND (?8 IS NULL OR EXISTS (" SQ_CHAIN("SELECT t.last_message_id") "SELECT 1 FROM chain"        \
  "      JOIN messages m ON m.id = chain.id WHERE m.direction = 'out' AND m.status = 'failed'))"   \
  " AND (?6 IS NULL OR sb_contains(c.name, ?6) OR sb_contains(c.email, ?6) OR sb_contains(c.phone, ?6)"  \
  "      OR EXISTS (SELECT 1 FROM notes n WHERE n.thread_id = t.id AND sb_contains(n.text, ?6))"

/* q found by a scan of every conversation's messages: a term too short for
 * the index. */
static const char sq__conversations_scan[] = SQ_THREAD_JSON SQ_CONVERSATIONS_WHERE
    "      OR EXISTS (" SQ_CHAIN("SELECT t.last_message_id") "SELECT 1 FROM chain"
    "      JOIN messages m ON m.id = chain.id WHERE sb_contains(m.text, ?6)"
    "      OR sb_contains(m.subject, ?6)))"
    " ORDER BY t.id DESC LIMIT ?7";

/* q found through the search index (?9: sq_index_match): its candidates up
 * to the watermark, each checked against the live row, and a scan of the
 * messages above it, in one statement, so both see one snapshot
 * (store_sqlite_index.c). */
static const char sq__conversations_indexed[] =
    "WITH hits(thread_id) AS (SELECT m.thread_id FROM search_index f CROSS JOIN messages m ON m.id = f.rowid"
    "   WHERE search_index MATCH ?9 AND f.rowid <= (SELECT value FROM meta WHERE key = 'search_indexed')"
    "   AND (sb_contains(m.text, ?6) OR sb_contains(m.subject, ?6))"
    " UNION SELECT thread_id FROM messages WHERE id > (SELECT value FROM meta WHERE key = 'search_indexed')"
    "   AND (sb_contains(text, ?6) OR sb_contains(subject, ?6))) "
    SQ_THREAD_JSON SQ_CONVERSATIONS_WHERE " OR t.id IN hits)"
    " ORDER BY t.id DESC LIMIT ?7";

static int sq__conversations(store *st, sq_req *r, json_t *q, json_t **result) {
  char *match = sq_index_match(sq__str(q, "q"));
  sqlite3_stmt *s = sq_prep(st, match != NULL ? sq__conversations_indexed : sq__conversations_scan);
  if (s == NULL) {
    free(match);
    return sq_fail(st, r, "listing conversations");
  }
  if (match != NULL) sqlite3_bind_text(s, 9, match, -1, free);
  const char *assignee = sq__str(q, "assignee");
  if (assignee != NULL && strcmp(assignee, "none") != 0) {
    /* a name that is no user's would silently match nothing */
    sqlite3_stmt *u = sq_prep(st, "SELECT 1 FROM users WHERE name = ?1");
    if (u == NULL) return sq_fail(st, r, "finding a user");
    sq_bind_text(u, 1, assignee);
    int found = sqlite3_step(u) == SQLITE_ROW;
    sqlite3_reset(u);
    if (!found) {
      r->status = -EINVAL;
      snprintf(r->err, sizeof(r->err), "assignee \"%.64s\" is not a user (names are case-sensitive; \"none\" "
               "for unassigned)", assignee);
      return -EINVAL;
    }
  }
  int64_t limit = sq__limit(q);
  sqlite3_bind_int64(s, 1, sq__cursor(q));
  sq_bind_text(s, 2, sq__str(q, "channel"));
  sq_bind_text(s, 3, sq__str(q, "inbox"));
  sq_bind_text(s, 4, sq__str(q, "status"));
  sq_bind_text(s, 5, sq__str(q, "assignee"));
  sq_bind_text(s, 6, sq__str(q, "q"));
  sqlite3_bind_int64(s, 7, limit + 1);
  if (json_is_true(json_object_get(q, "failed"))) sqlite3_bind_int(s, 8, 1);
  sq_bind_text(s, 11, sq__str(q, "label"));
  if (json_is_integer(json_object_get(q, "contact")))
    sqlite3_bind_int64(s, 10, json_integer_value(json_object_get(q, "contact")));
  return sq__run_page(st, r, s, limit, result);
}

int store_conversations_list(store *st, const json_t *filter, store_json_cb cb, void *arg) {
  json_t *args = filter ? json_deep_copy(filter) : json_object();
  char *match = sq_index_match(sq__str(args, "q"));
  int indexed = match != NULL;
  free(match);
  /* a search the index can answer brings it up to date first */
  return indexed ? sq_index_then_read(st, sq__conversations, args, cb, arg)
                       : sq_submit_read_json(st, sq__conversations, args, cb, arg);
}

int sq_thread_summary(store *st, sq_req *r, int64_t id, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_THREAD_JSON "WHERE t.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a conversation");
  sqlite3_bind_int64(s, 1, id);
  return sq_json_one(st, r, s, "conversation", id, result);
}

int sq_conversation_json(store *st, sq_req *r, int64_t id, json_t **result) {
  json_t *thread;
  if (sq_thread_summary(st, r, id, &thread) < 0) return r->status;
  sqlite3_stmt *s = sq_prep(st, SQ_CHAIN("SELECT last_message_id FROM threads WHERE id = ?1 AND last_message_id IS NOT NULL")
      "SELECT json_object('id', m.id, 'direction', m.direction, 'channel', m.channel, 'text', m.text,"
      " 'html', m.html, 'subject', m.subject, 'attachments', json(coalesce(m.attachments, '[]')),"
      " 'external_id', m.external_id, 'reply_to', m.reply_to, 'status', m.status, 'error', m.error,"
      " 'automatic', json(CASE WHEN m.automatic THEN 'true' ELSE 'false' END),"
      " 'user', coalesce((SELECT name FROM users WHERE id = m.user_id), m.author), 'metadata', json(m.metadata),"
      " 'created_at', m.created_at, 'sent_at', m.sent_at)"
      " FROM chain JOIN messages m ON m.id = chain.id ORDER BY m.id");
  json_t *msgs = NULL;
  if (s == NULL || (sqlite3_bind_int64(s, 1, id), sq_json_rows(st, r, s, "reading rows", &msgs)) < 0) {
    json_decref(thread);
    return sq_fail(st, r, "reading messages");
  }
  json_object_set_new(thread, "messages", msgs);
  json_t *notes = NULL;
  if (sq_thread_notes(st, r, id, &notes) < 0) {
    json_decref(thread);
    return -EIO;
  }
  json_object_set_new(thread, "notes", notes);
  *result = thread;
  return 0;
}

static int sq__conversation(store *st, sq_req *r, json_t *a, json_t **result) {
  return sq_conversation_json(st, r, json_integer_value(json_object_get(a, "id")), result);
}

int store_conversation_get(store *st, int64_t thread_id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__conversation, json_pack("{sI}", "id", (json_int_t)thread_id), cb, arg);
}

/* ---- tickets ---- */

#define SQ_TICKET_JSON                                                                    \
  "SELECT json_object('id', k.id, 'thread_id', k.thread_id, 'channel', k.channel,"        \
  " 'pipeline', (SELECT name FROM pipelines WHERE id = k.pipeline_id), 'status', k.status," \
  " 'closed', json(CASE WHEN k.closed THEN 'true' ELSE 'false' END), 'priority', k.priority," \
  " 'owner', (SELECT name FROM users WHERE id = k.owner_id), 'name', k.name,"               \
  " 'properties', json(k.properties), 'queued', json(CASE WHEN k.queued THEN 'true' ELSE"   \
  " 'false' END), 'created_at', k.created_at, 'updated_at', k.updated_at) FROM tickets k "

static int sq__ticket(store *st, sq_req *r, int64_t id, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_TICKET_JSON "WHERE k.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a ticket");
  sqlite3_bind_int64(s, 1, id);
  return sq_json_one(st, r, s, "ticket", id, result);
}

static int sq__ticket_get(store *st, sq_req *r, json_t *a, json_t **result) {
  return sq__ticket(st, r, json_integer_value(json_object_get(a, "id")), result);
}

int store_ticket_get(store *st, int64_t id, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__ticket_get, json_pack("{sI}", "id", (json_int_t)id), cb, arg);
}

int sq_user_named(store *st, sq_req *r, const json_t *name, const char *field, int64_t *uid) {
  *uid = 0;
  if (!json_is_string(name)) return 0;
  sqlite3_stmt *s = sq_prep(st, "SELECT id FROM users WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a user");
  sq_bind_text(s, 1, json_string_value(name));
  if (sqlite3_step(s) == SQLITE_ROW) *uid = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (*uid != 0) return 0;
  r->status = -EINVAL;
  snprintf(r->err, sizeof(r->err), "%s \"%s\" is not a user", field, json_string_value(name));
  return -EINVAL;
}

/* Gives ticket id to the user named by owner (a JSON string; null: nobody)
 * and its conversation with it, and offers the queue what that changed. */
int sq_ticket_assign(store *st, sq_req *r, int64_t id, const json_t *owner, const char *field) {
  int64_t uid;
  if (sq_user_named(st, r, owner, field, &uid) < 0) return r->status;
  /* the owner it has already: nothing changes, nothing is announced */
  sqlite3_stmt *s = sq_prep(st, "SELECT 1 FROM tickets WHERE id = ?1 AND owner_id = ?2");
  if (s == NULL) return sq_fail(st, r, "assigning a ticket");
  sqlite3_bind_int64(s, 1, id);
  sqlite3_bind_int64(s, 2, uid);
  int same = uid != 0 && sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  if (same) return 0;
  s = sq_prep(st, "UPDATE tickets SET owner_id = ?2, queued = 0, updated_at = ?3 WHERE id = ?1"
                  " RETURNING thread_id, channel");
  if (s == NULL) return sq_fail(st, r, "assigning a ticket");
  sqlite3_bind_int64(s, 1, id);
  sqlite3_bind_int64(s, 3, sq_batch_now(st));
  if (uid) sqlite3_bind_int64(s, 2, uid);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "ticket %lld does not exist", (long long)id);
    return -ENOENT;
  }
  int64_t thread = sqlite3_column_int64(s, 0);
  char channel[128];
  snprintf(channel, sizeof(channel), "%s", sq_col_text(s, 1));
  sqlite3_step(s);
  sqlite3_reset(s);
  s = sq_prep(st, "UPDATE threads SET assignee_id = ?2 WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "assigning a thread");
  sqlite3_bind_int64(s, 1, thread);
  if (uid) sqlite3_bind_int64(s, 2, uid);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "assigning a thread");
  if (sq_event_ticket_assigned(st, r, channel, id, thread, uid) < 0) return -EIO;
  return sq_drain_queue(st, r) < 0 ? -EIO : 0;
}

static int sq__ticket_patch(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t id = json_integer_value(json_object_get(a, "id"));
  json_t *p = json_object_get(a, "patch");
  json_t *props = json_object_get(p, "properties");
  if (props != NULL && !json_is_object(props)) {
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "ticket %lld: properties must be an object", (long long)id);
    return -EINVAL;
  }
  sqlite3_stmt *known = sq_prep(st, "SELECT 1 FROM tickets WHERE id = ?1");
  if (known == NULL) return sq_fail(st, r, "reading a ticket");
  sqlite3_bind_int64(known, 1, id);
  int exists = sqlite3_step(known) == SQLITE_ROW;
  sqlite3_reset(known);
  if (!exists) { /* 404 before anything in the patch is looked at */
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "ticket %lld does not exist", (long long)id);
    return -ENOENT;
  }
  /* The priority first, so the one ticket.updated carries it; one given as
   * it is changes nothing. */
  int priority = 0;
  if (json_object_get(p, "priority") != NULL) {
    sqlite3_stmt *s = sq_prep(st, "UPDATE tickets SET priority = ?2, updated_at = ?3 WHERE id = ?1"
                                  " AND priority IS NOT ?2");
    if (s == NULL) return sq_fail(st, r, "updating a ticket");
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 3, sq_batch_now(st));
    sq_bind_text(s, 2, sq__str(p, "priority"));
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return sq_fail(st, r, "updating a ticket");
    priority = sqlite3_changes(st->db) > 0;
  }
  if ((sq__str(p, "status") || props || priority) &&
      sq_ticket_update(st, r, id, sq__str(p, "status"), props, priority) < 0)
    return r->status;
  json_t *owner = json_object_get(p, "owner");
  if (owner != NULL && sq_ticket_assign(st, r, id, owner, "owner") < 0) return r->status;
  return sq__ticket(st, r, id, result);
}

int store_ticket_patch(store *st, int64_t id, const json_t *patch, store_json_cb cb, void *arg) {
  if (!json_is_object(patch)) return -EINVAL;
  return sq_submit_json(st, sq__ticket_patch,
                        json_pack("{sI sO}", "id", (json_int_t)id, "patch", (json_t *)patch), cb, arg);
}

/* ---- events ---- */

/* A growing text buffer (b: n bytes used, NUL-terminated, cap held). */
typedef struct sq_text {
  char *b;
  size_t n, cap;
} sq_text;

/* Appends s (len bytes) to the sq_text t; -1 when out of memory. */
static int sq__put(void *t, const char *s, size_t len) {
  sq_text *x = t;
  if (x->n + len + 1 > x->cap) {
    size_t c = x->cap ? x->cap : 256;
    while (c < x->n + len + 1) c *= 2;
    char *nb = realloc(x->b, c);
    if (nb == NULL) return -1;
    x->b = nb;
    x->cap = c;
  }
  memcpy(x->b + x->n, s, len);
  x->n += len;
  x->b[x->n] = '\0';
  return 0;
}

/* Appends v as a JSON string, or null. */
static int sq__put_str(sq_text *t, const char *v) {
  if (v == NULL) return sq__put(t, "null", 4);
  return sq__put(t, "\"", 1) < 0 || sq_json_escape(v, strlen(v), sq__put, t) < 0 || sq__put(t, "\"", 1) < 0 ? -1 : 0;
}

/* One replayed event, shaped by the bus's own events_to_json, as the live
 * stream sends it: a JSON object {id, type, channel, inbox, data}; or,
 * as_text, {id, type, json}, json its whole text in that form with data as
 * stored (nothing parsed: a webhook splices it into its post). NULL when
 * out of memory. */
static json_t *sq__event_json(int64_t id, const char *type, const char *channel, const char *inbox,
                              const char *data, int as_text) {
  if (!as_text) {
    json_t *d = data ? json_loads(data, 0, NULL) : NULL;
    events_event ev = {id, type, channel, inbox, d};
    json_t *o = events_to_json(&ev);
    json_decref(d);
    return o;
  }
  sq_text t = {0};
  char head[40];
  int hl = snprintf(head, sizeof(head), "{\"id\":%lld,\"type\":", (long long)id);
  int bad = sq__put(&t, head, (size_t)hl) < 0 || sq__put_str(&t, type) < 0 || sq__put(&t, ",\"channel\":", 11) < 0 ||
            sq__put_str(&t, channel) < 0 || sq__put(&t, ",\"inbox\":", 9) < 0 || sq__put_str(&t, inbox) < 0 ||
            sq__put(&t, ",\"data\":", 8) < 0 || sq__put(&t, data ? data : "null", data ? strlen(data) : 4) < 0 ||
            sq__put(&t, "}", 1) < 0;
  json_t *o = bad ? NULL : json_pack("{sI ss}", "id", (json_int_t)id, "type", type ? type : "");
  /* the text is JSON this store wrote (valid UTF-8): not checked again */
  if (o != NULL && json_object_set_new(o, "json", json_stringn_nocheck(t.b, t.n)) < 0) {
    json_decref(o);
    o = NULL;
  }
  free(t.b);
  return o;
}

/* The inbox of channel into buf (len bytes) as events carry it, or NULL:
 * from the channel's rules on the writer, from its record on the reader
 * (which holds no rules; the record is written with them, so the two agree
 * for every channel put since start, and the record still names the inbox
 * of one no longer running). */
static const char *sq__event_inbox(store *st, const char *channel, char *buf, size_t len) {
  if (st->channels != NULL) {
    const router_channel *ch = sq_channel(st, channel);
    return ch != NULL ? ch->inbox : NULL;
  }
  sqlite3_stmt *s = sq_prep(st, "SELECT inbox FROM channels WHERE name = ?1");
  if (s == NULL) return NULL;
  sq_bind_text(s, 1, channel);
  const char *inbox = NULL;
  if (sqlite3_step(s) == SQLITE_ROW && sq_col_text(s, 0) != NULL) {
    snprintf(buf, len, "%s", sq_col_text(s, 0));
    inbox = buf;
  }
  sqlite3_reset(s);
  return inbox;
}

/* Events after an id, in id order: the rows of events merged with the
 * messages stored since schema 8, each read back as the event it stood for
 * (sq_jw_message, the same code that built it at commit). A message's inbox
 * is its channel's, as when it was published. */
static int sq__events_after(store *st, sq_req *r, json_t *a, json_t **result) {
  int64_t after = json_integer_value(json_object_get(a, "after"));
  int64_t up_to = json_integer_value(json_object_get(a, "up_to"));
  const char *channel = sq__str(a, "channel"), *inbox = sq__str(a, "inbox");
  size_t limit = (size_t)json_integer_value(json_object_get(a, "limit"));
  int as_text = json_is_true(json_object_get(a, "as_text"));
  sqlite3_stmt *ev = sq_prep(st,
      "SELECT id, type, channel, inbox, data FROM events WHERE id > ?1 AND id <= ?4 AND (?2 IS NULL OR channel = ?2)"
      " AND (?3 IS NULL OR inbox = ?3) ORDER BY id");
  if (ev == NULL) return sq_fail(st, r, "reading events");
  sqlite3_bind_int64(ev, 1, after);
  sq_bind_text(ev, 2, channel);
  sq_bind_text(ev, 3, inbox);
  sqlite3_bind_int64(ev, 4, up_to > 0 ? up_to : INT64_MAX);
  sqlite3_stmt *ms = sq_prep(st,
      "SELECT id, direction, channel, thread_id, contact_id, text, subject, automatic, flags"
      " FROM messages WHERE id > ?1 AND id <= ?3 AND (?2 IS NULL OR channel = ?2) ORDER BY id");
  if (ms == NULL) {
    sqlite3_reset(ev);
    return sq_fail(st, r, "reading events");
  }
  sqlite3_bind_int64(ms, 1, after >= st->message_events_from ? after : st->message_events_from - 1);
  sq_bind_text(ms, 2, channel);
  /* Without messages, a bound below the first: the walk reads none. */
  sqlite3_bind_int64(ms, 3, json_is_true(json_object_get(a, "no_messages")) ? 0 : up_to > 0 ? up_to : INT64_MAX);
  json_t *out = json_array();
  char last_channel[256] = "", inbox_buf[256];
  const char *ib = NULL; /* last_channel's inbox */
  int erc = sqlite3_step(ev), mrc = sqlite3_step(ms);
  while (json_array_size(out) < limit && (erc == SQLITE_ROW || mrc == SQLITE_ROW)) {
    if (erc == SQLITE_ROW &&
        (mrc != SQLITE_ROW || sqlite3_column_int64(ev, 0) < sqlite3_column_int64(ms, 0))) {
      json_array_append_new(out, sq__event_json(sqlite3_column_int64(ev, 0), sq_col_text(ev, 1),
                                                sq_col_text(ev, 2), sq_col_text(ev, 3), sq_col_text(ev, 4), as_text));
      erc = sqlite3_step(ev);
      continue;
    }
    const char *chname = sq_col_text(ms, 2);
    if (strcmp(chname, last_channel) != 0) { /* messages come in runs of one channel's */
      snprintf(last_channel, sizeof(last_channel), "%s", chname);
      ib = sq__event_inbox(st, chname, inbox_buf, sizeof(inbox_buf));
    }
    if (inbox == NULL || (ib != NULL && strcmp(ib, inbox) == 0)) {
      int in = strcmp(sq_col_text(ms, 1), "in") == 0;
      uint32_t flags = (uint32_t)sqlite3_column_int64(ms, 8);
      sq_message_event m = {.id = sqlite3_column_int64(ms, 0), .thread_id = sqlite3_column_int64(ms, 3),
                            .contact_id = sqlite3_column_int64(ms, 4), .text = sq_col_text(ms, 5),
                            .subject = sq_col_text(ms, 6)};
      m.reply = !in && (flags & ROUTER_IN_ECHO) == 0;
      m.automatic = m.reply ? sqlite3_column_int(ms, 7) : (flags & ROUTER_IN_AUTOMATIC) != 0;
      m.new_contact = (flags & SQ_MSG_NEW_CONTACT) != 0;
      m.new_thread = (flags & SQ_MSG_NEW_THREAD) != 0;
      sq_jw w;
      sq_jw_message(&w, &m);
      json_array_append_new(out, sq__event_json(m.id, in ? "message.in" : "message.out", chname, ib,
                                                sq_jw_end(&w), as_text));
    }
    mrc = sqlite3_step(ms);
  }
  sqlite3_reset(ev);
  sqlite3_reset(ms);
  if ((erc != SQLITE_ROW && erc != SQLITE_DONE) || (mrc != SQLITE_ROW && mrc != SQLITE_DONE)) {
    json_decref(out);
    return sq_fail(st, r, "reading events");
  }
  *result = out;
  return 0;
}

int store_events_read(store *st, const store_events_query *q, store_json_cb cb, void *arg) {
  return (q->beside ? sq_submit_read_json : sq_submit_json)(st, sq__events_after,
                        json_pack("{sI sI ss? ss? sb sI sb}", "after", (json_int_t)q->after, "up_to",
                                  (json_int_t)q->up_to, "channel", q->channel, "inbox", q->inbox, "no_messages",
                                  q->no_messages, "limit", (json_int_t)(q->limit > 0 ? q->limit : 1000),
                                  "as_text", q->as_text),
                        cb, arg);
}

int store_events_after(store *st, int64_t after_id, const char *channel, const char *inbox,
                       int limit, store_json_cb cb, void *arg) {
  store_events_query q = {.after = after_id, .channel = channel, .inbox = inbox, .limit = limit};
  return store_events_read(st, &q, cb, arg);
}

/* ---- plugin key/value state ---- */

static int sq__kv(store *st, sq_req *r, json_t *a, json_t **result) {
  const char *op = sq__str(a, "op");
  sqlite3_stmt *s = strcmp(op, "get") == 0
      ? sq_prep(st, "SELECT value FROM kv WHERE channel = ?1 AND key = ?2")
      : strcmp(op, "set") == 0
      ? sq_prep(st, "INSERT INTO kv(channel, key, value) VALUES(?1, ?2, ?3)"
                    " ON CONFLICT(channel, key) DO UPDATE SET value = ?3")
      : sq_prep(st, "DELETE FROM kv WHERE channel = ?1 AND key = ?2");
  if (s == NULL) return sq_fail(st, r, "using channel state");
  sq_bind_text(s, 1, sq__str(a, "channel"));
  sq_bind_text(s, 2, sq__str(a, "key"));
  if (strcmp(op, "set") == 0) sq_bind_text(s, 3, sq__str(a, "value"));
  int rc = sqlite3_step(s);
  json_t *value = rc == SQLITE_ROW && sq_col_text(s, 0) ? json_string(sq_col_text(s, 0)) : json_null();
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    json_decref(value);
    return sq_fail(st, r, "using channel state");
  }
  *result = json_pack("{so}", "value", value);
  return 0;
}

static int sq__kv_list(store *st, sq_req *r, json_t *a, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, "SELECT key, value FROM kv WHERE channel = ?1 AND value IS NOT NULL");
  if (s == NULL) return sq_fail(st, r, "reading channel state");
  sq_bind_text(s, 1, sq__str(a, "channel"));
  json_t *items = json_object();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_object_set_new(items, sq_col_text(s, 0), json_string(sq_col_text(s, 1)));
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(items);
    return sq_fail(st, r, "reading channel state");
  }
  *result = json_pack("{so}", "items", items);
  return 0;
}

int store_kv_list(store *st, const char *channel, store_json_cb cb, void *arg) {
  if (channel == NULL) return -EINVAL;
  return sq_submit_json(st, sq__kv_list, json_pack("{ss}", "channel", channel), cb, arg);
}

int store_kv_get(store *st, const char *channel, const char *key, store_json_cb cb, void *arg) {
  if (channel == NULL || key == NULL) return -EINVAL;
  return sq_submit_json(st, sq__kv, json_pack("{ss ss ss}", "op", "get", "channel", channel, "key", key), cb, arg);
}

int store_kv_set(store *st, const char *channel, const char *key, const char *value,
                 store_json_cb cb, void *arg) {
  if (channel == NULL || key == NULL || value == NULL) return -EINVAL;
  return sq_submit_json(st, sq__kv,
                        json_pack("{ss ss ss ss}", "op", "set", "channel", channel, "key", key, "value", value),
                        cb, arg);
}

int store_kv_delete(store *st, const char *channel, const char *key, store_json_cb cb, void *arg) {
  if (channel == NULL || key == NULL) return -EINVAL;
  return sq_submit_json(st, sq__kv, json_pack("{ss ss ss}", "op", "del", "channel", channel, "key", key), cb, arg);
}
