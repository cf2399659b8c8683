/* store_sqlite_attach.c — attachment content: kept as BLOBs in the database,
 * written in the transaction of the inbound message that carries it, read
 * back by id.
 *
 * Why rows and not files next to the database: the message and its bytes
 * then commit or roll back together, in the same group commit and the same
 * WAL fsync, so an acknowledged message never lacks its content and a batch
 * re-run or rolled back leaves no stray bytes behind. Files would have to
 * be written and fsync'd (and their directory) before COMMIT, swept when the
 * transaction fails, and deleted only after a history delete commits. The
 * duplicate check is the message's own: content is written only when the
 * message insert took effect, so a redelivery stores nothing twice. A
 * backup stays one file, and a PostgreSQL backend does the same with bytea.
 * The price: content passes through the WAL before it reaches the database,
 * and a read holds it in memory once, which is what the host's limit
 * (store_set_attachment_limit) is for. */
#include "store_sqlite.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int store_set_attachment_limit(store *st, int64_t max_bytes) {
  if (st == NULL || max_bytes < 0 || max_bytes > STORE_ATTACHMENT_LIMIT_MAX) return -EINVAL;
  st->attachment_limit = max_bytes;
  return 0;
}

/* ---- on the way in (loop thread) ---- */

int sq_attachments_prepare(store *st, const char *channel, const router_attachment *a, size_t n,
                           char **json, sq_blob **blobs, size_t *n_blobs) {
  *json = NULL;
  *blobs = NULL;
  *n_blobs = 0;
  if (n == 0) return 0;
  json_t *arr = json_array();
  size_t keep = 0, bytes = 0;
  int rc = arr != NULL ? 0 : -ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    json_t *o = json_object();
    if (o == NULL || json_array_append_new(arr, o) != 0) {
      rc = -ENOMEM;
      break;
    }
    if (a[i].url) json_object_set_new(o, "url", json_string(a[i].url));
    if (a[i].mime_type) json_object_set_new(o, "mime_type", json_string(a[i].mime_type));
    if (a[i].filename) json_object_set_new(o, "filename", json_string(a[i].filename));
    if (a[i].content_id) json_object_set_new(o, "content_id", json_string(a[i].content_id));
    /* The bytes in hand are the size, whatever was declared. */
    int64_t size = a[i].data != NULL ? (int64_t)a[i].data_len : a[i].size;
    json_object_set_new(o, "size", json_integer(size));
    if (a[i].data == NULL) continue;
    if ((int64_t)a[i].data_len > st->attachment_limit) {
      char why[200];
      snprintf(why, sizeof(why),
               "content not stored: %zu bytes is over the host's attachment limit of %" PRId64
               " bytes (attachments.max_bytes)",
               a[i].data_len, st->attachment_limit);
      json_object_set_new(o, "error", json_string(why));
      log_msg(LOG_LEVEL_WARN, channel, NULL, "an inbound attachment's %s", why);
      continue;
    }
    keep++;
    bytes += a[i].data_len;
  }
  if (rc == 0 && (*json = json_dumps(arr, JSON_COMPACT)) == NULL) rc = -ENOMEM;
  json_decref(arr);
  if (rc < 0 || keep == 0) return rc;
  /* One block: the array, then every kept attachment's bytes. */
  sq_blob *b = malloc(keep * sizeof(*b) + bytes);
  if (b == NULL) {
    free(*json);
    *json = NULL;
    return -ENOMEM;
  }
  char *p = (char *)(b + keep);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (a[i].data == NULL || (int64_t)a[i].data_len > st->attachment_limit) continue;
    b[k].position = i;
    b[k].data = p;
    b[k].len = a[i].data_len;
    if (a[i].data_len > 0) memcpy(p, a[i].data, a[i].data_len);
    p += a[i].data_len;
    k++;
  }
  *blobs = b;
  *n_blobs = keep;
  return 0;
}

/* ---- inside the batch transaction (writer thread) ---- */

int sq_attachments_insert(store *st, sq_req *r, int64_t message_id, const char *attachments_json,
                          const sq_blob *blobs, size_t n) {
  if (n == 0) return 0;
  json_t *arr = json_loads(attachments_json, 0, NULL);
  if (!json_is_array(arr)) {
    json_decref(arr);
    r->status = -EIO;
    snprintf(r->err, sizeof(r->err), "store: the attachments of message %" PRId64 " are not a JSON array",
             message_id);
    return -EIO;
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    json_t *o = json_array_get(arr, blobs[i].position);
    sqlite3_stmt *s = sq_prep(st, "INSERT INTO attachments(message_id, position, mime_type, filename,"
                                  " size, data, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (s == NULL || o == NULL) {
      rc = sq_fail(st, r, "storing an attachment");
      break;
    }
    sqlite3_bind_int64(s, 1, message_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)blobs[i].position);
    sq_bind_text(s, 3, json_string_value(json_object_get(o, "mime_type")));
    sq_bind_text(s, 4, json_string_value(json_object_get(o, "filename")));
    sqlite3_bind_int64(s, 5, (sqlite3_int64)blobs[i].len);
    if (blobs[i].len == 0)
      sqlite3_bind_zeroblob(s, 6, 0);
    else
      sqlite3_bind_blob64(s, 6, blobs[i].data, blobs[i].len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, sq_batch_now(st));
    int step = sqlite3_step(s);
    sqlite3_reset(s);
    if (step != SQLITE_DONE) {
      rc = sq_fail(st, r, "storing an attachment");
      break;
    }
    json_object_set_new(o, "id", json_integer(sqlite3_last_insert_rowid(st->db)));
  }
  char *text = rc == 0 ? json_dumps(arr, JSON_COMPACT) : NULL;
  json_decref(arr);
  if (rc == 0 && text == NULL) rc = sq_fail(st, r, "recording attachment ids");
  if (rc == 0) {
    sqlite3_stmt *s = sq_prep(st, "UPDATE messages SET attachments = ?2 WHERE id = ?1");
    if (s == NULL) {
      rc = sq_fail(st, r, "recording attachment ids");
    } else {
      sqlite3_bind_int64(s, 1, message_id);
      sq_bind_text(s, 2, text);
      int step = sqlite3_step(s);
      sqlite3_reset(s);
      if (step != SQLITE_DONE) rc = sq_fail(st, r, "recording attachment ids");
    }
  }
  free(text);
  return rc;
}

/* ---- reading one back ---- */

typedef struct sq_attachment_get {
  sq_req base;
  int64_t id;
  store_attachment a;
  char *buf; /* mime_type, filename and data, each NUL-terminated */
  store_attachment_cb cb;
  void *arg;
} sq_attachment_get;

static void sq__attachment_get_run(store *st, sq_req *r) {
  sq_attachment_get *g = (sq_attachment_get *)r;
  free(g->buf);
  g->buf = NULL;
  memset(&g->a, 0, sizeof(g->a));
  sqlite3_stmt *s = sq_prep(st, "SELECT message_id, mime_type, filename, data FROM attachments"
                                " WHERE id = ?1 AND message_id >= 0");
  if (s == NULL) {
    sq_fail(st, r, "reading an attachment");
    return;
  }
  sqlite3_bind_int64(s, 1, g->id);
  int step = sqlite3_step(s);
  if (step == SQLITE_ROW) {
    const char *mime = sq_col_text(s, 1), *name = sq_col_text(s, 2);
    size_t lm = mime ? strlen(mime) + 1 : 0, ln = name ? strlen(name) + 1 : 0;
    const void *data = sqlite3_column_blob(s, 3);
    size_t len = (size_t)sqlite3_column_bytes(s, 3);
    g->buf = malloc(lm + ln + len + 1);
    if (g->buf == NULL) {
      r->status = -ENOMEM;
      snprintf(r->err, sizeof(r->err), "store: no memory for attachment %" PRId64 " (%zu bytes)", g->id, len);
    } else {
      char *p = g->buf;
      g->a.id = g->id;
      g->a.message_id = sqlite3_column_int64(s, 0);
      g->a.mime_type = mime ? memcpy(p, mime, lm) : NULL, p += lm;
      g->a.filename = name ? memcpy(p, name, ln) : NULL, p += ln;
      if (len > 0) memcpy(p, data, len);
      p[len] = '\0';
      g->a.data = p;
      g->a.len = len;
    }
  } else if (step == SQLITE_DONE) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "attachment %" PRId64 " does not exist", g->id);
  } else {
    sq_fail(st, r, "reading an attachment");
  }
  sqlite3_reset(s);
}

static void sq__attachment_get_done(store *st, sq_req *r) {
  (void)st;
  sq_attachment_get *g = (sq_attachment_get *)r;
  g->cb(g->arg, r->status, r->status == 0 ? &g->a : NULL, r->status < 0 ? r->err : NULL);
  free(g->buf);
  free(g);
}

int store_attachment_get(store *st, int64_t id, store_attachment_cb cb, void *arg) {
  if (st == NULL || cb == NULL) return -EINVAL;
  sq_attachment_get *g = calloc(1, sizeof(*g));
  if (g == NULL) return -ENOMEM;
  g->id = id;
  g->cb = cb;
  g->arg = arg;
  g->base.run = sq__attachment_get_run;
  g->base.done = sq__attachment_get_done;
  int rc = sq_enqueue(st, &g->base);
  if (rc < 0) free(g);
  return rc;
}

/* ---- uploads: files an agent sends with a reply ---- */

int64_t store_attachment_link_id(const char *url) {
  static const char prefix[] = "/api/v1/attachments/";
  if (url == NULL || strncmp(url, prefix, sizeof(prefix) - 1) != 0) return 0;
  const char *d = url + sizeof(prefix) - 1;
  size_t n = strlen(d);
  return n > 0 && n <= 18 && strspn(d, "0123456789") == n ? strtoll(d, NULL, 10) : 0;
}

/* An upload no reply has named yet has message_id 0 and a negative position
 * (unique among them, as UNIQUE(message_id, position) wants); the reply that
 * names it gives it its message and its place in the reply's list. An
 * expired one keeps its row, emptied, with message_id -1: a deleted row of
 * the highest id would let the next insert take its id, and a reply still
 * naming the old link would send someone else's file. */
int sq_uploads_sweep(store *st, int64_t now_ms) {
  sqlite3_stmt *s = sq_prep(st, "UPDATE attachments SET message_id = -1, position = -id, mime_type = NULL,"
                                " filename = NULL, size = 0, data = x'' WHERE message_id = 0 AND created_at < ?1");
  if (s == NULL) return -EIO;
  sqlite3_bind_int64(s, 1, now_ms - STORE_UPLOAD_TTL_MS);
  int step = sqlite3_step(s);
  sqlite3_reset(s);
  return step == SQLITE_DONE ? 0 : -EIO;
}

typedef struct sq_upload {
  sq_req base;
  char *mime_type, *filename, *data; /* data: len bytes */
  size_t len;
  json_t *result;
  store_json_cb cb;
  void *arg;
} sq_upload;

static void sq__upload_run(store *st, sq_req *r) {
  sq_upload *u = (sq_upload *)r;
  json_decref(u->result);
  u->result = NULL;
  int64_t now = sq_batch_now(st);
  if (sq_uploads_sweep(st, now) < 0) {
    sq_fail(st, r, "deleting unused uploads");
    return;
  }
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO attachments(message_id, position, mime_type, filename, size, data,"
                                " created_at) VALUES(0, (SELECT coalesce(min(position), 0) - 1 FROM attachments"
                                " WHERE message_id = 0), ?1, ?2, ?3, ?4, ?5)");
  if (s == NULL) {
    sq_fail(st, r, "storing an upload");
    return;
  }
  sq_bind_text(s, 1, u->mime_type);
  sq_bind_text(s, 2, u->filename);
  sqlite3_bind_int64(s, 3, (sqlite3_int64)u->len);
  sqlite3_bind_blob64(s, 4, u->data, u->len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 5, now);
  int step = sqlite3_step(s);
  sqlite3_reset(s);
  if (step != SQLITE_DONE) {
    sq_fail(st, r, "storing an upload");
    return;
  }
  int64_t id = sqlite3_last_insert_rowid(st->db);
  char url[64];
  snprintf(url, sizeof(url), "/api/v1/attachments/%" PRId64, id);
  u->result = json_pack("{sI ss ss? ss? sI sI}", "id", (json_int_t)id, "url", url, "mime_type", u->mime_type,
                        "filename", u->filename, "size", (json_int_t)u->len, "created_at", (json_int_t)now);
  if (u->result == NULL) {
    r->status = -ENOMEM;
    snprintf(r->err, sizeof(r->err), "store: out of memory");
  }
}

static void sq__upload_free(sq_upload *u) {
  json_decref(u->result);
  free(u->mime_type);
  free(u->filename);
  free(u->data);
  free(u);
}

static void sq__upload_done(store *st, sq_req *r) {
  (void)st;
  sq_upload *u = (sq_upload *)r;
  u->cb(u->arg, r->status, r->status == 0 ? u->result : NULL, r->status < 0 ? r->err : NULL);
  sq__upload_free(u);
}

int store_attachment_put(store *st, const char *mime_type, const char *filename, const void *data, size_t len,
                         store_json_cb cb, void *arg) {
  if (st == NULL || cb == NULL || (data == NULL && len > 0)) return -EINVAL;
  if ((int64_t)len > st->attachment_limit) return -EFBIG;
  sq_upload *u = calloc(1, sizeof(*u));
  if (u == NULL) return -ENOMEM;
  u->mime_type = mime_type != NULL ? strdup(mime_type) : NULL;
  u->filename = filename != NULL ? strdup(filename) : NULL;
  u->data = malloc(len + 1);
  if ((mime_type != NULL && u->mime_type == NULL) || (filename != NULL && u->filename == NULL) || u->data == NULL) {
    sq__upload_free(u);
    return -ENOMEM;
  }
  if (len > 0) memcpy(u->data, data, len);
  u->len = len;
  u->cb = cb;
  u->arg = arg;
  u->base.run = sq__upload_run;
  u->base.done = sq__upload_done;
  int rc = sq_enqueue(st, &u->base);
  if (rc < 0) sq__upload_free(u);
  return rc;
}

int sq_uploads_describe(store *st, sq_req *r, char **attachments_json) {
  json_t *arr = *attachments_json != NULL ? json_loads(*attachments_json, 0, NULL) : NULL;
  int changed = 0, rc = 0;
  size_t i;
  json_t *at;
  json_array_foreach(arr, i, at) {
    int64_t id = store_attachment_link_id(json_string_value(json_object_get(at, "url")));
    if (id == 0) continue;
    sqlite3_stmt *s = sq_prep(st, "SELECT mime_type, filename, size FROM attachments WHERE id = ?1");
    if (s == NULL) {
      rc = sq_fail(st, r, "reading an attachment");
      break;
    }
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW) { /* none: sq_uploads_claim says so */
      json_object_set_new(at, "id", json_integer(id)); /* as a held inbound attachment lists it */
      changed = 1;
      static const char *const keys[] = {"mime_type", "filename"};
      for (int k = 0; k < 2; k++) {
        if (json_is_string(json_object_get(at, keys[k]))) continue; /* given */
        if (sq_col_text(s, k) == NULL) continue;
        json_object_set_new(at, keys[k], json_string(sq_col_text(s, k)));
        changed = 1;
      }
      if (!json_is_integer(json_object_get(at, "size")) && sqlite3_column_type(s, 2) == SQLITE_INTEGER) {
        json_object_set_new(at, "size", json_integer(sqlite3_column_int64(s, 2)));
        changed = 1;
      }
    }
    sqlite3_reset(s);
  }
  char *out = changed ? json_dumps(arr, JSON_COMPACT) : NULL;
  json_decref(arr);
  if (out != NULL) {
    free(*attachments_json);
    *attachments_json = out;
  }
  return rc;
}

int sq_uploads_claim(store *st, sq_req *r, const char *attachments_json, int64_t message_id) {
  json_t *arr = attachments_json != NULL ? json_loads(attachments_json, 0, NULL) : NULL;
  size_t i;
  json_t *at;
  int rc = 0;
  json_array_foreach(arr, i, at) {
    int64_t id = store_attachment_link_id(json_string_value(json_object_get(at, "url")));
    if (id == 0) continue;
    sqlite3_stmt *s = sq_prep(st, "SELECT message_id FROM attachments WHERE id = ?1");
    if (s == NULL) {
      rc = sq_fail(st, r, "reading an attachment");
      break;
    }
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    int64_t owner = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1; /* -1: none, or expired */
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
      rc = sq_fail(st, r, "reading an attachment");
      break;
    }
    if (owner < 0) {
      r->status = rc = -EINVAL;
      snprintf(r->err, sizeof(r->err), "attachment %" PRId64 " does not exist (attachments[%zu])", id, i);
      break;
    }
    if (owner != 0) continue; /* a file a message already holds: sent on, stays its */
    s = sq_prep(st, "UPDATE attachments SET message_id = ?2, position = ?3 WHERE id = ?1");
    if (s == NULL) {
      rc = sq_fail(st, r, "attaching an upload");
      break;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, message_id);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
    step = sqlite3_step(s);
    sqlite3_reset(s);
    if (step != SQLITE_DONE) {
      rc = sq_fail(st, r, "attaching an upload");
      break;
    }
  }
  json_decref(arr);
  return rc;
}
