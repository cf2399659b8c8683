/* store_sqlite_index.c — the search index of message text: an FTS5 trigram
 * index (schema 13) that the writer fills lazily, behind a watermark.
 *
 * The keyword search (sb_contains over every message) cost about 4 µs a
 * message; indexing a message costs about three times that, so it is not
 * done in the inbound transaction, whose commit every webhook waits for.
 * Instead meta's search_indexed is the highest message id in the index,
 * and the writer indexes the messages above it in chunks, each an ordinary
 * request of its own (a few milliseconds, so no group commit waits long
 * behind one): when a search asks (sq_index_then_read, before it reads),
 * and when the writer has had nothing to do for half a second
 * (sq_index_idle_wait; never while webhooks keep coming). A search takes
 * its candidates from the index up to the watermark and scans the
 * messages above it, in one statement and snapshot, so results are always
 * complete; every candidate is checked against the live row with
 * sb_contains, so results are exactly what the scan alone would give.
 *
 * Invariant: the index holds, for each live message with an id at most
 * the watermark and a text or subject, sb_fold of both, and nothing else.
 * Messages' text and subject are never updated; deleting a channel's
 * history removes its rows from the index in the same request
 * (store_sqlite_api.c); merges and moves change threads and contacts,
 * which the search reads live. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_sqlite.h"

/* Messages indexed per catch-up request: about 15 ms of the writer's time
 * on this VM (up to about 100 ms when FTS5 merges its segments meanwhile;
 * bench/ingest/README.md), and a hundred requests for 200 000 messages. */
#define SQ_INDEX_CHUNK 2000

/* Catch-up requests a search may make before it reads: a backlog larger
 * than that (a fresh upgrade, minutes of heavy load without a pause) is
 * scanned by this search and indexed when the writer idles, since indexing
 * a message costs three times scanning it once. */
#define SQ_INDEX_SEARCH_CHUNKS 16

/* While messages come in (one was submitted within SQ_INDEX_BUSY_MS), a
 * search makes no catch-up request: each is writer time the webhooks'
 * group commits wait behind (with an agent searching back to back at full
 * load, one chunk per search of 2 000 messages took the webhooks' p99 to
 * 55 ms, of 200 to 45 ms; 8 ms for the build without an index, whose
 * searches only scanned; bench/ingest/README.md),
 * while the reader scans what the index lacks without holding any commit
 * up. The index catches up once the writer idles. */
#define SQ_INDEX_BUSY_MS 1000

/* How long the writer must have had no request before it indexes by
 * itself, and the pause between its chunks while it stays idle (a request
 * arriving meanwhile ends the idle spell and restarts the long wait).
 * Below a second: the outbox asks the writer for due replies once a
 * second (outbox.c), and a wait of a second would hardly ever end idle. */
#define SQ_INDEX_IDLE_MS 500
#define SQ_INDEX_IDLE_NEXT_MS 2

/* How many of a query's trigrams the candidate filter requires: enough to
 * be selective, few enough that a long query costs little to look up. */
#define SQ_INDEX_MAX_TRIGRAMS 16

/* ---- catch-up, on the writer ---- */

static int64_t sq__watermark(store *st, sq_req *r, int *ok) {
  sqlite3_stmt *s = sq_prep(st, "SELECT value FROM meta WHERE key = 'search_indexed'");
  *ok = s != NULL && sqlite3_step(s) == SQLITE_ROW;
  int64_t w = *ok ? sqlite3_column_int64(s, 0) : 0;
  if (s != NULL) sqlite3_reset(s);
  if (!*ok) sq_fail(st, r, "reading the search index's watermark");
  return w;
}

/* Runs a statement binding ?1 and ?2; returns 0 or -EIO (r filled). */
static int sq__step2(store *st, sq_req *r, const char *sql, int64_t a, int64_t b, const char *what) {
  sqlite3_stmt *s = sq_prep(st, sql);
  if (s == NULL) return sq_fail(st, r, what);
  sqlite3_bind_int64(s, 1, a);
  sqlite3_bind_int64(s, 2, b);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(st, r, what);
}

/* Indexes the next st->index_chunk messages above the watermark and moves
 * it past them, in the writer's transaction (re-runnable: it starts from
 * the watermark it reads). Sets st->index_more. Returns 0 or -EIO. */
static int sq__catch_up(store *st, sq_req *r) {
  int ok;
  int64_t from = sq__watermark(st, r, &ok);
  if (!ok) return -EIO;
  sqlite3_stmt *s = sq_prep(st, "SELECT max(id), count(*) FROM (SELECT id FROM messages WHERE id > ?1"
                                " ORDER BY id LIMIT ?2)");
  if (s == NULL) return sq_fail(st, r, "finding messages to index");
  sqlite3_bind_int64(s, 1, from);
  sqlite3_bind_int(s, 2, st->index_chunk);
  int rc = sqlite3_step(s);
  int64_t to = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW) return sq_fail(st, r, "finding messages to index");
  st->index_more = n >= st->index_chunk;
  if (n == 0) {
    st->index_seen_id = st->next_id;
    return 0;
  }
  if (sq__step2(st, r,
                "INSERT INTO search_index(rowid, text, subject) SELECT id, sb_fold(text), sb_fold(subject)"
                " FROM messages WHERE id > ?1 AND id <= ?2 AND (text IS NOT NULL OR subject IS NOT NULL)",
                from, to, "indexing messages") < 0 ||
      sq__step2(st, r, "UPDATE meta SET value = ?2 WHERE key = 'search_indexed' AND value = ?1", from, to,
                "moving the search index's watermark") < 0)
    return -EIO;
  if (!st->index_more) st->index_seen_id = st->next_id;
  return 0;
}

/* A catch-up request: a search's (read set: run it once caught up, or
 * after chunks_left requests) or the idle writer's own (read NULL). */
typedef struct sq_index_req {
  sq_req base;
  int more;        /* set by run: messages are left above the watermark */
  int chunks_left; /* loop: further requests this search may make */
  sq_json_fn read;
  json_t *args;
  store_json_cb cb;
  void *arg;
} sq_index_req;

static void sq__index_run(store *st, sq_req *r) {
  sq_index_req *x = (sq_index_req *)r;
  x->more = 0;
  if (sq__catch_up(st, r) == 0) x->more = st->index_more;
}

/* Loop: the search's next chunk, or its read. A failed catch-up costs the
 * search only time: the read scans what the index lacks. */
static void sq__index_done(store *st, sq_req *r) {
  sq_index_req *x = (sq_index_req *)r;
  if (r->status < 0) log_warn("%s; searching without the newest part of the index", r->err);
  if (x->read != NULL && r->status == 0 && x->more && x->chunks_left > 0) {
    x->chunks_left--;
    sq_req_init(r);
    r->run = sq__index_run;
    r->done = sq__index_done;
    if (sq_enqueue(st, r) == 0) return;
  }
  if (x->read != NULL) {
    int rc = sq_submit_read_json(st, x->read, x->args, x->cb, x->arg);
    if (rc < 0 && x->cb != NULL) x->cb(x->arg, rc, NULL, "store: the store is closing");
  }
  free(x);
}

static sq_index_req *sq__index_req_new(void) {
  sq_index_req *x = calloc(1, sizeof(*x));
  if (x == NULL) return NULL;
  sq_req_init(&x->base);
  x->base.run = sq__index_run;
  x->base.done = sq__index_done;
  return x;
}

int sq_index_then_read(store *st, sq_json_fn fn, json_t *args, store_json_cb cb, void *arg) {
  if (st == NULL || fn == NULL || st->index_search_chunks <= 0 ||
      (int64_t)(uv_now(st->loop) - st->inbound_at_ms) < st->index_busy_ms)
    return sq_submit_read_json(st, fn, args, cb, arg);
  sq_index_req *x = sq__index_req_new();
  if (x == NULL) {
    json_decref(args);
    return -ENOMEM;
  }
  x->chunks_left = st->index_search_chunks - 1;
  x->read = fn;
  x->args = args;
  x->cb = cb;
  x->arg = arg;
  int rc = sq_enqueue(st, &x->base);
  if (rc < 0) {
    json_decref(args);
    free(x);
  }
  return rc;
}

int64_t sq_index_idle_wait(store *st) {
  if (st->index_idle_ms < 0 || (!st->index_more && st->index_seen_id == st->next_id)) return -1;
  return st->index_spell && st->index_more && st->index_idle_ms > SQ_INDEX_IDLE_NEXT_MS ? SQ_INDEX_IDLE_NEXT_MS
                                                                                        : st->index_idle_ms;
}

sq_req *sq_index_idle_request(store *st) {
  sq_index_req *x = sq__index_req_new();
  if (x == NULL) return NULL;
  st->index_spell = 1;
  return &x->base;
}

/* ---- open ---- */

int sq_index_open(store *st, char *err, size_t errlen) {
  st->index_chunk = SQ_INDEX_CHUNK;
  st->index_search_chunks = SQ_INDEX_SEARCH_CHUNKS;
  st->index_idle_ms = SQ_INDEX_IDLE_MS;
  st->index_busy_ms = SQ_INDEX_BUSY_MS;
  /* Ids start again after the newest message at open (sq__read_ids): a
   * watermark above it would hide the messages that take those ids from
   * both the index and the scan. Their old index rows went with them. */
  sqlite3_stmt *s = NULL;
  char *msg = NULL;
  int ok = sqlite3_exec(st->db,
                        "UPDATE meta SET value = (SELECT coalesce(max(id), 0) FROM messages)"
                        " WHERE key = 'search_indexed' AND value > (SELECT coalesce(max(id), 0) FROM messages)",
                        NULL, NULL, &msg) == SQLITE_OK &&
           sqlite3_prepare_v2(st->db,
                              "SELECT EXISTS (SELECT 1 FROM messages WHERE id > (SELECT value FROM meta"
                              " WHERE key = 'search_indexed'))",
                              -1, &s, NULL) == SQLITE_OK &&
           sqlite3_step(s) == SQLITE_ROW;
  if (ok) {
    st->index_more = sqlite3_column_int(s, 0);
    st->index_seen_id = st->index_more ? 0 : st->next_id;
  } else {
    snprintf(err, errlen, "cannot read the search index of %s: %s", st->path, msg ? msg : sqlite3_errmsg(st->db));
  }
  sqlite3_free(msg);
  sqlite3_finalize(s);
  return ok ? 0 : -EIO;
}

/* ---- the query, on the reader ---- */

/* Appends "t" (n bytes, quotes doubled) and a separator to out. */
static size_t sq__put_trigram(char *out, size_t o, const char *t, size_t n, int first) {
  if (!first) {
    memcpy(out + o, " AND ", 5);
    o += 5;
  }
  out[o++] = '"';
  for (size_t i = 0; i < n; i++) {
    if (t[i] == '"') out[o++] = '"';
    out[o++] = t[i];
  }
  out[o++] = '"';
  return o;
}

char *sq_index_match(const char *q) {
  if (q == NULL) return NULL;
  size_t n = strlen(q);
  char *f = malloc(2 * n + 4);
  if (f == NULL) return NULL;
  size_t len = sq_fold((const unsigned char *)q, n, f);
  /* where each code point starts, and one past the end */
  size_t *at = malloc((len + 1) * sizeof(*at)), cps = 0;
  for (size_t i = 0; at != NULL && i < len;) {
    uint32_t c;
    size_t l = sq_utf8_decode((const unsigned char *)f + i, len - i, &c);
    if (l == 0) {
      cps = 0; /* not UTF-8: the scan compares bytes, the index could not */
      break;
    }
    at[cps++] = i;
    i += l;
  }
  char *out = NULL;
  if (cps >= 3) {
    at[cps] = len;
    size_t trigrams = cps - 2, take = trigrams < SQ_INDEX_MAX_TRIGRAMS ? trigrams : SQ_INDEX_MAX_TRIGRAMS;
    /* each: two quotes per byte at most, two around it, " AND " */
    out = malloc(take * (2 * 16 + 7) + 1);
    size_t o = 0;
    for (size_t k = 0; out != NULL && k < take; k++) {
      size_t i = take == 1 ? 0 : k * (trigrams - 1) / (take - 1); /* spread over q */
      o = sq__put_trigram(out, o, f + at[i], at[i + 3] - at[i], k == 0);
    }
    if (out != NULL) out[o] = '\0';
  }
  free(at);
  free(f);
  return out;
}
