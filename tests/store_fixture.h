/* store_fixture.h — helpers for the store/router/outbox/events tests: a temp
 * store on a private loop, and synchronous wrappers that run the loop until
 * a completion fires. Included by those test files only. */
#ifndef SB_TESTS_STORE_FIXTURE_H
#define SB_TESTS_STORE_FIXTURE_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "router.h"
#include "store.h"
#include "testutil.h"

typedef struct fx {
  uv_loop_t loop;
  store *st;
  char *dir;
  char url[512];
} fx;

typedef struct fx_wait_t {
  int done, status, duplicate;
  int64_t id;
  json_t *result;
  char err[256];
} fx_wait_t;

static inline void fx_open_store(fx *f) {
  char err[256] = "";
  int rc = store_open(&f->loop, f->url, &f->st, err, sizeof(err));
  ck_assert_msg(rc == 0, "store_open: %s", err);
}

static inline void fx_open(fx *f) {
  memset(f, 0, sizeof(*f));
  ck_assert_int_eq(uv_loop_init(&f->loop), 0);
  f->dir = tu_tmpdir();
  snprintf(f->url, sizeof(f->url), "sqlite:%s/sb.db", f->dir);
  fx_open_store(f);
}

static inline void fx_close_store(fx *f) {
  store_close(f->st);
  f->st = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static inline void fx_reopen(fx *f) {
  fx_close_store(f);
  fx_open_store(f);
}

static inline void fx_close(fx *f) {
  if (f->st) fx_close_store(f);
  ck_assert_int_eq(uv_loop_close(&f->loop), 0);
  tu_rmtree(f->dir);
  free(f->dir);
}

/* Takes a closed store's database back to schema 15's shape: without the
 * outgoing webhooks of migration 16, the conversations' time of closing
 * (with the report's indexes) of 17, the labels of 18, the kept author
 * names of 19, the held sends' mark of 21 and the messages' sent_at of 24
 * (20's and 23's AUTOINCREMENT tables need no undoing: once 16 to 19 are
 * back, migrations 20 and 23 rebuild them again). */
#define FX_BACK_TO_SCHEMA_24                                                                  \
  "ALTER TABLE statuses DROP COLUMN retired; DROP INDEX outbox_waiting; ALTER TABLE outbox DROP COLUMN thread_id;"
#define FX_BACK_TO_SCHEMA_15                                                         \
  FX_BACK_TO_SCHEMA_24 "ALTER TABLE outbox DROP COLUMN held; ALTER TABLE messages DROP COLUMN sent_at;"    \
  "ALTER TABLE messages DROP COLUMN author; ALTER TABLE notes DROP COLUMN author;"     \
  "DROP TABLE thread_labels; DROP TABLE labels;"                                      \
  "DROP TABLE webhooks; DROP INDEX threads_closed; DROP INDEX threads_created;"       \
  "ALTER TABLE threads DROP COLUMN closed_at;"

/* Takes a closed store's database back to schema 13's shape: also without
 * the notes of migration 14 and the canned responses of 15. */
#define FX_BACK_TO_SCHEMA_13 FX_BACK_TO_SCHEMA_15 "DROP TABLE canned; DROP TABLE notes;"

/* Takes a closed store's database back to schema 9's shape (before the
 * thread chain of migration 10, the threads' identity of 11, the audit
 * log of 12, the search index of 13, the notes of 14, the canned
 * responses of 15, the webhooks of 16, the closing times of 17, the
 * labels of 18, the author names of 19, the held sends of 21 and the sent_at of 24), for tests that build an older database and then set its
 * user_version. */
#define FX_BEFORE_SCHEMA_10                                                            \
  FX_BACK_TO_SCHEMA_13                                                                 \
  "DROP TABLE search_index; DELETE FROM meta WHERE key = 'search_indexed';"           \
  "DROP TABLE audit;"                                                                  \
  "ALTER TABLE threads DROP COLUMN identity_kind;"                                     \
  "ALTER TABLE threads DROP COLUMN identity_value;"                                    \
  "CREATE INDEX messages_thread ON messages(thread_id);"                               \
  "ALTER TABLE messages DROP COLUMN prev_id;"                                          \
  "ALTER TABLE threads DROP COLUMN last_message_id;"                                   \
  "ALTER TABLE threads DROP COLUMN last_in_id;"                                        \
  "ALTER TABLE threads DROP COLUMN last_in_at;"                                        \
  "ALTER TABLE threads DROP COLUMN last_subject;"

/* The one number a query gives, read from the database file with a
 * connection of its own (WAL: it sees what the store committed). */
static inline int64_t fx_db_count(fx *f, const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *s;
  ck_assert_int_eq(sqlite3_open(f->url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

static inline void fx_json_cb(void *arg, int status, json_t *result, const char *err) {
  fx_wait_t *w = arg;
  w->done = 1;
  w->status = status;
  w->result = json_incref(result);
  if (err) snprintf(w->err, sizeof(w->err), "%s", err);
}

static inline void fx_inbound_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  fx_wait_t *w = arg;
  w->done = 1;
  w->status = status;
  w->id = id;
  w->duplicate = dup;
  if (err) snprintf(w->err, sizeof(w->err), "%s", err);
}

static inline void fx_reply_cb(void *arg, int status, int64_t id, const char *err) {
  fx_inbound_cb(arg, status, id, 0, err);
}

static inline void fx_wait(fx *f, fx_wait_t *w) {
  while (!w->done) uv_run(&f->loop, UV_RUN_ONCE);
}

/* Waits for a JSON completion; returns the result (caller decrefs). */
static inline json_t *fx_run(fx *f, int rc, fx_wait_t *w) {
  ck_assert_int_eq(rc, 0);
  fx_wait(f, w);
  return w->result;
}

/* Same, asserting success. */
static inline json_t *fx_ok(fx *f, int rc, fx_wait_t *w) {
  json_t *r = fx_run(f, rc, w);
  ck_assert_msg(w->status == 0, "store call failed: %s", w->err);
  return r;
}

static inline void fx_channel(fx *f, const char *json) {
  json_error_t je;
  json_t *o = json_loads(json, 0, &je);
  ck_assert_msg(o != NULL, "bad test JSON: %s", je.text);
  router_channel ch;
  char err[256];
  int rc = router_channel_from_json(o, &ch, err, sizeof(err));
  ck_assert_msg(rc == 0, "channel: %s", err);
  fx_wait_t w = {0};
  json_decref(fx_ok(f, store_channel_put(f->st, &ch, fx_json_cb, &w), &w));
  router_channel_free(&ch);
  json_decref(o);
}

static inline void fx_seed(fx *f, const char *json) {
  json_t *o = json_loads(json, 0, NULL);
  ck_assert_ptr_nonnull(o);
  fx_wait_t w = {0};
  json_decref(fx_ok(f, store_seed(f->st, o, fx_json_cb, &w), &w));
  json_decref(o);
}

/* Claims every due outbox row, as the outbox would (at most 10). */
static inline json_t *fx_claim(fx *f) {
  fx_wait_t w = {0};
  return fx_ok(f, store_outbox_claim(f->st, INT64_MAX / 2, 10, fx_json_cb, &w), &w);
}

static inline json_t *fx_load(const char *json) {
  json_t *o = json_loads(json, 0, NULL);
  ck_assert_ptr_nonnull(o);
  return o;
}

/* Submits an inbound message and waits; returns the wait record. */
static inline fx_wait_t fx_submit(fx *f, const router_inbound *in) {
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f->st, in, fx_inbound_cb, &w, err, sizeof(err)), 0);
  fx_wait(f, &w);
  return w;
}

/* Submits one inbound message from a custom sender and waits. */
static inline fx_wait_t fx_in(fx *f, const char *channel, const char *ext, const char *sender,
                             const char *text) {
  router_inbound in = {0};
  in.channel = channel;
  in.external_id = ext;
  in.sender.kind = "custom";
  in.sender.id = sender;
  in.sender.name = sender;
  in.text = text;
  return fx_submit(f, &in);
}

/* Stores an agent's reply (user 0: none) on thread and waits; asserts it
 * was stored and returns its message id. */
static inline int64_t fx_reply(fx *f, int64_t thread, int64_t user, const char *text) {
  router_reply r = {.thread_id = thread, .user_id = user, .text = text};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f->st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(f, &w);
  ck_assert_msg(w.status == 0, "reply: %s", w.err);
  return w.id;
}

/* The conversation holding thread id tid. */
static inline json_t *fx_thread(fx *f, int64_t tid) {
  fx_wait_t w = {0};
  return fx_ok(f, store_conversation_get(f->st, tid, fx_json_cb, &w), &w);
}

static inline json_t *fx_list(fx *f, const char *filter_json) {
  json_t *q = fx_load(filter_json);
  fx_wait_t w = {0};
  json_t *r = fx_ok(f, store_conversations_list(f->st, q, fx_json_cb, &w), &w);
  json_decref(q);
  return r;
}

static inline int64_t fx_int(json_t *o, const char *path_key) {
  return json_integer_value(json_object_get(o, path_key));
}

#endif
