/* test_store.c — core/store_sqlite*.c: open, migrations, group commit,
 * durability across reopen, close drains, read queries, channel state. */
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "store_sqlite.h"

typedef struct many_t {
  int done, failed;
} many_t;

static void many_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  many_t *m = arg;
  m->done++;
  if (status != 0) m->failed++;
}

static void submit_many(fx *f, many_t *m, int n, const char *prefix) {
  char ext[64], sender[64], err[256];
  for (int i = 0; i < n; i++) {
    snprintf(ext, sizeof(ext), "%s-%d", prefix, i);
    snprintf(sender, sizeof(sender), "c%d", i % 10);
    router_inbound in = {.channel = "demo", .external_id = ext, .text = "hello"};
    in.sender.kind = "custom";
    in.sender.id = sender;
    ck_assert_int_eq(router_submit_inbound(f->st, &in, many_cb, m, err, sizeof(err)), 0);
  }
}

/* Sustained load as webhooks make it: waves of ten messages, each wave
 * waited for, so every wave is about one commit. */
static void commit_waves(fx *f, many_t *m, int waves, const char *prefix) {
  char p[32];
  for (int wave = 0; wave < waves; wave++) {
    snprintf(p, sizeof(p), "%s%d", prefix, wave);
    int before = m->done;
    submit_many(f, m, 10, p);
    while (m->done < before + 10) uv_run(&f->loop, UV_RUN_ONCE);
  }
  ck_assert_int_eq(m->failed, 0);
}

static long long wal_bytes(fx *f) {
  char wal[600];
  snprintf(wal, sizeof(wal), "%s/sb.db-wal", f->dir);
  struct stat sb;
  ck_assert_int_eq(stat(wal, &sb), 0);
  return (long long)sb.st_size;
}

START_TEST(bad_url_is_refused_with_a_sentence) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  store *st = NULL;
  char err[256] = "";
  ck_assert_int_eq(store_open(&loop, "mysql://x", &st, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "use sqlite:PATH"));
  ck_assert_int_eq(store_open(&loop, "sqlite:/nonexistent-dir/x/y.db", &st, err, sizeof(err)), -EIO);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/x/y.db"));
  uv_loop_close(&loop);
}
END_TEST

START_TEST(one_daemon_claims_a_database_at_a_time) {
  char *dir = tu_tmpdir(), url[600], err[512] = "";
  snprintf(url, sizeof(url), "sqlite:%s/sb.db", dir);
  int first = -1, second = -1;
  ck_assert_int_eq(store_claim(url, &first, err, sizeof(err)), 0);
  ck_assert_int_ge(first, 0);
  ck_assert_int_eq(store_claim(url, &second, err, sizeof(err)), -EBUSY);
  ck_assert_int_eq(second, -1);
  ck_assert_msg(strstr(err, "is in use by another switchboard daemon") != NULL, "%s", err);
  store_release(first);
  ck_assert_int_eq(store_claim(url, &second, err, sizeof(err)), 0);
  store_release(second);
  ck_assert_int_eq(store_claim("mysql://x", &first, err, sizeof(err)), -EINVAL);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(database_newer_than_binary_is_refused) {
  fx f;
  fx_open(&f);
  fx_close_store(&f);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  char err[256] = "";
  ck_assert_int_eq(store_open(&f.loop, f.url, &f.st, err, sizeof(err)), -EPROTO);
  ck_assert_ptr_null(f.st);
  char want[96];
  snprintf(want, sizeof(want), "schema version 99, newer than this switchboard supports (%d)", STORE_SCHEMA_VERSION);
  ck_assert_ptr_nonnull(strstr(err, want));
  fx_close(&f);
}
END_TEST

START_TEST(migrations_run_once_and_wal_is_on) {
  fx f;
  fx_open(&f);
  fx_reopen(&f);
  fx_close_store(&f);
  sqlite3 *db;
  sqlite3_stmt *s;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
  ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
  sqlite3_finalize(s);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
  ck_assert_int_eq(sqlite3_column_int(s, 0), STORE_SCHEMA_VERSION);
  sqlite3_finalize(s);
  sqlite3_close(db);
  fx_close(&f);
}
END_TEST

/* Everything one turn of the loop submits reaches the writer together,
 * before the loop next waits, and is one transaction. */
START_TEST(one_turn_of_submissions_is_one_group_commit) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  store_stats before, after;
  store_get_stats(f.st, &before);
  many_t m = {0};
  submit_many(&f, &m, 500, "g"); /* one turn: the loop does not run in between */
  usleep(50000);
  store_get_stats(f.st, &after);
  ck_assert_int_eq(after.requests - before.requests, 0); /* held until the loop next waits */
  while (m.done < 500) uv_run(&f.loop, UV_RUN_ONCE);
  ck_assert_int_eq(m.failed, 0);
  store_get_stats(f.st, &after);
  ck_assert_int_eq(after.transactions - before.transactions, 1);
  ck_assert_int_eq(after.requests - before.requests, 500);
  ck_assert_int_eq(after.inbound - before.inbound, 500);
  fx_close(&f);
}
END_TEST

/* The scheduling class of this process's thread named name, or -1. */
static int thread_policy(const char *name) {
  DIR *d = opendir("/proc/self/task");
  ck_assert_ptr_nonnull(d);
  int policy = -1;
  for (struct dirent *e; policy < 0 && (e = readdir(d)) != NULL;) {
    char path[300], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) continue;
    if (fgets(comm, sizeof(comm), fp) != NULL) comm[strcspn(comm, "\n")] = '\0';
    fclose(fp);
    if (strcmp(comm, name) == 0) policy = sched_getscheduler(atoi(e->d_name));
  }
  closedir(d);
  return policy;
}

START_TEST(the_writer_yields_to_the_loop_and_the_syncer_does_not) {
  fx f;
  fx_open(&f);
  /* the threads name themselves as they start */
  for (int i = 0; i < 200 && (thread_policy("sb-writer") < 0 || thread_policy("sb-syncer") < 0); i++)
    usleep(5000);
  ck_assert_int_eq(thread_policy("sb-writer"), SCHED_BATCH);
  ck_assert_int_eq(thread_policy("sb-syncer"), SCHED_OTHER); /* its wakeups answer webhooks */
  fx_close(&f);
}
END_TEST

START_TEST(checkpoints_run_off_the_writer_as_the_wal_grows) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  /* Small waves make many commits, as webhooks do, until the WAL has passed
   * the checkpoint threshold several times (a wave is one commit: its
   * messages reach the writer together). */
  f.st->ckpt_frames = 512; /* a cycle per 2 MiB of WAL instead of 16 MiB */
  many_t m = {0};
  commit_waves(&f, &m, 600, "w");
  store_stats st;
  for (int i = 0; i < 200; i++) {
    store_get_stats(f.st, &st);
    if (st.checkpoints > 0) break;
    usleep(10000);
  }
  ck_assert_msg(st.checkpoints > 0, "no checkpoint after %llu transactions", (unsigned long long)st.transactions);
  fx_close(&f);
}
END_TEST

START_TEST(checkpoint_cycles_restart_the_wal_without_a_storm) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  f.st->ckpt_frames = 64; /* a cycle per 256 KiB of WAL instead of 16 MiB */
  many_t m = {0};
  commit_waves(&f, &m, 300, "c");
  store_stats st;
  store_get_stats(f.st, &st);
  /* The WAL went back to its beginning again and again (it would be about
   * 300 commits of WAL otherwise), with no truncation needed, and the
   * cycles did not turn into a checkpoint per commit. */
  ck_assert_uint_eq(st.wal_truncations, 0);
  ck_assert_msg(st.checkpoints > 2 && st.checkpoints < st.transactions / 3,
                "%llu checkpoints for %llu transactions", (unsigned long long)st.checkpoints,
                (unsigned long long)st.transactions);
  long long wal = wal_bytes(&f);
  ck_assert_msg(wal < 2 * 1024 * 1024, "the WAL is %lld bytes", wal);
  fx_close(&f);
}
END_TEST

START_TEST(the_wal_stays_bounded_under_sustained_commits) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  f.st->wal_limit_frames = 64; /* 256 KiB instead of 128 MiB */
  many_t m = {0};
  commit_waves(&f, &m, 300, "b");
  store_stats st;
  store_get_stats(f.st, &st);
  ck_assert_msg(st.wal_truncations > 0, "the writer never bounded the WAL (%llu transactions)",
                (unsigned long long)st.transactions);
  long long wal = wal_bytes(&f);
  ck_assert_msg(wal < 2 * 1024 * 1024, "the WAL is %lld bytes", wal);
  fx_close(&f);
}
END_TEST

/* The syncer's test hook: it runs right after each fdatasync of the WAL. */
typedef struct sync_probe {
  volatile int synced; /* set after a slow flush */
  char path[512];      /* what the flushed descriptor is */
} sync_probe;

static void slow_sync_hook(void *arg, int fd) {
  sync_probe *p = arg;
  char link[64];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, p->path, sizeof(p->path) - 1);
  p->path[n > 0 ? n : 0] = '\0';
  usleep(150 * 1000); /* a slow disk: an answer before this ends is too early */
  p->synced = 1;
}

typedef struct ack_probe {
  fx_wait_t w;
  sync_probe *sync;
  int synced_at_ack;
} ack_probe;

static void ack_probe_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  ack_probe *a = arg;
  a->synced_at_ack = a->sync->synced;
  fx_inbound_cb(&a->w, status, id, dup, err);
}

START_TEST(a_message_is_answered_only_after_the_wal_is_flushed) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  sync_probe p = {0};
  f.st->sync_hook_arg = &p;
  f.st->sync_hook = slow_sync_hook;
  ack_probe a = {.sync = &p};
  router_inbound in = {.channel = "demo", .external_id = "durable-1", .text = "hello"};
  in.sender.kind = "custom";
  in.sender.id = "kim";
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &in, ack_probe_cb, &a, err, sizeof(err)), 0);
  fx_wait(&f, &a.w);
  ck_assert_int_eq(a.w.status, 0);
  ck_assert_msg(a.synced_at_ack, "answered before its commit was flushed");
  char want[600];
  snprintf(want, sizeof(want), "%s/sb.db-wal", f.dir);
  ck_assert_str_eq(p.path, want);
  store_stats st;
  store_get_stats(f.st, &st);
  ck_assert_uint_ge(st.wal_syncs, 1);
  ck_assert_uint_le(st.wal_syncs, st.transactions);
  f.st->sync_hook = NULL;
  fx_close(&f);
}
END_TEST

START_TEST(a_failed_flush_fails_its_batch_and_refuses_later_writes) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  ck_assert_int_eq(fx_in(&f, "demo", "before", "kim", "hello").status, 0);
  /* fdatasync of a pipe fails (EINVAL), as a flush to a failing disk would */
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  int wal_fd = f.st->wal_fd;
  f.st->wal_fd = fds[0];
  fx_wait_t a = fx_in(&f, "demo", "unflushed", "kim", "hello");
  ck_assert_int_eq(a.status, -EIO);
  ck_assert_msg(strstr(a.err, "could not be made durable") != NULL, "%s", a.err);
  /* even with a working descriptor again: the failure is sticky */
  f.st->wal_fd = wal_fd;
  fx_wait_t b = fx_in(&f, "demo", "after", "kim", "hello");
  ck_assert_int_eq(b.status, -EIO);
  ck_assert_msg(strstr(b.err, "until switchboard restarts") != NULL, "%s", b.err);
  close(fds[0]);
  close(fds[1]);
  fx_close_store(&f);
  /* a restart recovers what the WAL holds and takes writes again */
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  ck_assert_int_eq(fx_in(&f, "demo", "restarted", "kim", "hello").status, 0);
  ck_assert_int_eq(fx_in(&f, "demo", "before", "kim", "hello").duplicate, 1);
  fx_close(&f);
}
END_TEST

START_TEST(acknowledged_messages_survive_reopen_and_still_dedup) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_wait_t a = fx_in(&f, "demo", "keep-1", "kim", "hello");
  ck_assert_int_eq(a.status, 0);
  fx_reopen(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_wait_t b = fx_in(&f, "demo", "keep-1", "kim", "hello");
  ck_assert_int_eq(b.duplicate, 1);
  ck_assert_int_eq(b.id, a.id);
  fx_close(&f);
}
END_TEST

START_TEST(close_drains_the_queue_and_fires_every_completion) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  many_t m = {0};
  submit_many(&f, &m, 200, "d");
  fx_close_store(&f); /* no loop run in between: close must drain */
  ck_assert_int_eq(m.done, 200);
  ck_assert_int_eq(m.failed, 0);
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_wait_t w = {0};
  json_t *l = fx_ok(&f, store_conversations_list(f.st, NULL, fx_json_cb, &w), &w);
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 10);
  json_decref(l);
  fx_close(&f);
}
END_TEST

typedef struct one_t {
  int done, status;
  int64_t id;
} one_t;

static void one_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  one_t *o = arg;
  o->done = 1;
  o->status = status;
  o->id = id;
}

START_TEST(failing_request_does_not_fail_its_batch) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  one_t o[3] = {{0}};
  const char *channels[3] = {"demo", "missing", "demo"};
  const char *exts[3] = {"a", "b", "c"};
  char err[256];
  for (int i = 0; i < 3; i++) {
    router_inbound in = {.channel = channels[i], .external_id = exts[i], .text = "x"};
    in.sender.kind = "custom";
    in.sender.id = "kim";
    ck_assert_int_eq(router_submit_inbound(f.st, &in, one_cb, &o[i], err, sizeof(err)), 0);
  }
  while (!o[0].done || !o[1].done || !o[2].done) uv_run(&f.loop, UV_RUN_ONCE);
  ck_assert_int_eq(o[0].status, 0);
  ck_assert_int_eq(o[1].status, -ENOENT);
  ck_assert_int_eq(o[2].status, 0);
  ck_assert_int_ne(o[0].id, o[2].id);
  fx_wait_t w = {0};
  json_t *l = fx_ok(&f, store_conversation_get(f.st, 1, fx_json_cb, &w), &w);
  ck_assert_int_eq(json_array_size(json_object_get(l, "messages")), 2);
  json_decref(l);
  fx_close(&f);
}
END_TEST

/* ---- crash: every acknowledged message is stored exactly once ---- */

typedef struct acker {
  int fd;
  long next;
  store *st;
} acker;

typedef struct ack_ctx {
  acker *a;
  int64_t idx;
} ack_ctx;

static void ack_cb(void *arg, int status, int64_t id, int dup, const char *err);

static void ack_submit(acker *a) {
  char ext[32], err[256];
  ack_ctx *c = malloc(sizeof(*c));
  if (c == NULL) _exit(6);
  c->a = a;
  c->idx = a->next++;
  snprintf(ext, sizeof(ext), "k%lld", (long long)c->idx);
  router_inbound in = {.channel = "demo", .external_id = ext, .text = "load"};
  in.sender.kind = "custom";
  in.sender.id = c->idx % 7 == 0 ? "seven" : "other";
  if (router_submit_inbound(a->st, &in, ack_cb, c, err, sizeof(err)) != 0) _exit(3);
}

static void ack_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  ack_ctx *c = arg;
  acker *a = c->a;
  if (status != 0 || dup) _exit(4);
  /* The acknowledgement a webhook would answer 200 with: (index, message id). */
  int64_t rec[2] = {c->idx, id};
  free(c);
  if (write(a->fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec)) _exit(5);
  ack_submit(a);
}

static void crash_child(const char *url, int fd) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char err[256];
  store *st;
  if (store_open(&loop, url, &st, err, sizeof(err)) != 0) _exit(2);
  router_channel ch;
  router_channel_init(&ch, "demo");
  store_channel_put(st, &ch, NULL, NULL);
  router_channel_free(&ch);
  acker a = {fd, 0, st};
  for (int i = 0; i < 256; i++) ack_submit(&a); /* many in flight, like concurrent webhooks */
  uv_run(&loop, UV_RUN_DEFAULT);                 /* until killed */
  _exit(0);
}

typedef struct redeliver {
  int done, bad;
  int64_t expect;
} redeliver;

static void redeliver_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  redeliver *r = arg;
  r->done = 1;
  if (status != 0 || !dup || id != r->expect) r->bad = 1;
}

START_TEST(sigkill_mid_load_loses_no_acknowledged_message) {
  fx f;
  fx_open(&f);
  fx_close_store(&f);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(f.url, fds[1]);
  }
  close(fds[1]);
  enum { CAP = 200000 };
  int64_t (*acked)[2] = malloc(sizeof(*acked) * CAP);
  size_t n = 0;
  while (n < 3000) {
    ck_assert_int_eq(read(fds[0], acked[n], sizeof(acked[0])), (ssize_t)sizeof(acked[0]));
    n++;
  }
  kill(pid, SIGKILL);
  int wstatus;
  waitpid(pid, &wstatus, 0);
  ck_assert(WIFSIGNALED(wstatus));
  /* Acks written before the kill but not read yet were given too. */
  while (n < CAP && read(fds[0], acked[n], sizeof(acked[0])) == (ssize_t)sizeof(acked[0])) n++;
  close(fds[0]);

  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  /* Redelivering every acknowledged message finds it, under its original id. */
  redeliver *rd = calloc(n, sizeof(*rd));
  char ext[32], err[256];
  for (size_t k = 0; k < n; k++) {
    snprintf(ext, sizeof(ext), "k%lld", (long long)acked[k][0]);
    rd[k].expect = acked[k][1];
    router_inbound in = {.channel = "demo", .external_id = ext, .text = "again"};
    in.sender.kind = "custom";
    in.sender.id = "other";
    ck_assert_int_eq(router_submit_inbound(f.st, &in, redeliver_cb, &rd[k], err, sizeof(err)), 0);
  }
  for (size_t k = 0; k < n; k++) {
    while (!rd[k].done) uv_run(&f.loop, UV_RUN_ONCE);
    ck_assert_msg(!rd[k].bad, "acknowledged message k%lld is missing or changed", (long long)acked[k][0]);
  }
  /* Exactly once: the two threads hold one message per distinct external id. */
  fx_wait_t w = {0};
  json_t *l = fx_ok(&f, store_conversations_list(f.st, NULL, fx_json_cb, &w), &w);
  size_t stored = 0, i;
  json_t *t;
  json_array_foreach(json_object_get(l, "items"), i, t) {
    json_t *c = fx_thread(&f, fx_int(t, "id"));
    size_t j;
    json_t *msg;
    json_array_foreach(json_object_get(c, "messages"), j, msg) {
      ck_assert_str_eq(json_string_value(json_object_get(msg, "text")), "load");
      stored++;
    }
    json_decref(c);
  }
  json_decref(l);
  ck_assert_int_ge(stored, n);
  free(rd);
  free(acked);
  fx_close(&f);
}
END_TEST

START_TEST(lookup_cache_grows_clears_and_never_confuses_keys) {
  sq_cache *c = sq_cache_new((size_t)1 << 14);
  char key[32];
  for (int i = 0; i < 6000; i++) {
    snprintf(key, sizeof(key), "demo\x1f" "custom\x1f" "u%d", i);
    sq_cache_put(c, key, i + 1, i & 3);
  }
  for (int i = 0; i < 6000; i++) {
    int64_t v = 0;
    int flag = -1;
    snprintf(key, sizeof(key), "demo\x1f" "custom\x1f" "u%d", i);
    ck_assert_int_eq(sq_cache_get(c, key, &v, &flag), 1);
    ck_assert_int_eq(v, i + 1);
    ck_assert_int_eq(flag, i & 3);
  }
  int64_t v;
  ck_assert_int_eq(sq_cache_get(c, "demo\x1f" "custom\x1f" "u6000", &v, NULL), 0);
  sq_cache_put(c, "demo\x1f" "custom\x1f" "u1", 99, 0);
  ck_assert_int_eq(sq_cache_get(c, "demo\x1f" "custom\x1f" "u1", &v, NULL), 1);
  ck_assert_int_eq(v, 99);
  sq_cache_clear(c);
  ck_assert_int_eq(sq_cache_get(c, "demo\x1f" "custom\x1f" "u1", &v, NULL), 0);
  /* past its largest size it starts over instead of growing */
  for (int i = 0; i < 20000; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    sq_cache_put(c, key, i, 0);
  }
  ck_assert_int_eq(sq_cache_get(c, "k19999", &v, NULL), 1);
  ck_assert_int_eq(v, 19999);
  sq_cache_free(c);
}
END_TEST

START_TEST(requests_after_close_are_refused) {
  fx f;
  fx_open(&f);
  store *st = f.st;
  store_close(st);
  fx_wait_t w = {0};
  ck_assert_int_eq(store_users_list(st, fx_json_cb, &w), -ESHUTDOWN);
  f.st = NULL;
  uv_run(&f.loop, UV_RUN_DEFAULT);
  fx_close(&f);
}
END_TEST

START_TEST(conversation_list_filters_and_paginates) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  fx_channel(&f, "{\"name\":\"chat\",\"inbox\":\"Sales\"}");
  char ext[16], who[16];
  for (int i = 0; i < 5; i++) {
    snprintf(ext, sizeof(ext), "d%d", i);
    snprintf(who, sizeof(who), "k%d", i);
    fx_in(&f, "demo", ext, who, i == 3 ? "my invoice is wrong" : "hello");
  }
  fx_in(&f, "chat", "c1", "z", "hello");
  json_t *l = fx_list(&f, "{\"channel\":\"demo\",\"limit\":2}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 2);
  const char *cur = json_string_value(json_object_get(l, "next_cursor"));
  ck_assert_ptr_nonnull(cur);
  char q[128];
  snprintf(q, sizeof(q), "{\"channel\":\"demo\",\"limit\":2,\"cursor\":\"%s\"}", cur);
  json_t *l2 = fx_list(&f, q);
  ck_assert_int_lt(fx_int(json_array_get(json_object_get(l2, "items"), 0), "id"),
                   fx_int(json_array_get(json_object_get(l, "items"), 1), "id"));
  json_decref(l);
  json_decref(l2);
  /* a page that holds the rest exactly is the last: no cursor to an empty one */
  l = fx_list(&f, "{\"channel\":\"demo\",\"limit\":5}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 5);
  ck_assert(json_is_null(json_object_get(l, "next_cursor")));
  json_decref(l);
  l = fx_list(&f, "{\"channel\":\"demo\",\"limit\":4}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 4);
  ck_assert(json_is_string(json_object_get(l, "next_cursor")));
  json_decref(l);
  l = fx_list(&f, "{\"inbox\":\"Sales\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  json_decref(l);
  l = fx_list(&f, "{\"q\":\"invoice\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  json_decref(l);
  l = fx_list(&f, "{\"assignee\":\"ana\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 5);
  json_decref(l);
  l = fx_list(&f, "{\"assignee\":\"none\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  json_decref(l);
  l = fx_list(&f, "{\"status\":\"closed\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 0);
  json_decref(l);
  fx_close(&f);
}
END_TEST

/* How many conversations (or contacts, contacts=1) the search q finds. */
static size_t found(fx *f, const char *q, int contacts) {
  json_t *filter = json_pack("{ss}", "q", q);
  fx_wait_t w = {0};
  json_t *l = contacts ? fx_ok(f, store_contacts_list(f->st, filter, fx_json_cb, &w), &w)
                       : fx_ok(f, store_conversations_list(f->st, filter, fx_json_cb, &w), &w);
  size_t n = json_array_size(json_object_get(l, "items"));
  json_decref(l);
  json_decref(filter);
  return n;
}

START_TEST(search_ignores_case_in_every_script) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "u1", "Øystein Ærø", "Hallo aus KÖLN");
  fx_in(&f, "demo", "u2", "Иван", "Привет, ЗАКАЗ 42 — Ωmega");
  ck_assert_int_eq(found(&f, "øystein", 0), 1);
  ck_assert_int_eq(found(&f, "ÆRØ", 0), 1);
  ck_assert_int_eq(found(&f, "köln", 0), 1);
  ck_assert_int_eq(found(&f, "заказ 42", 0), 1);
  ck_assert_int_eq(found(&f, "ПРИВЕТ", 0), 1);
  ck_assert_int_eq(found(&f, "ωMEGA", 0), 1);
  ck_assert_int_eq(found(&f, "иван", 0), 1);
  ck_assert_int_eq(found(&f, "Ærøy", 0), 0);
  ck_assert_int_eq(found(&f, "%", 0), 0); /* no wildcards */
  ck_assert_int_eq(found(&f, "øYSTEIN", 1), 1);
  ck_assert_int_eq(found(&f, "ИВАН", 1), 1);
  ck_assert_int_eq(found(&f, "_", 1), 0);
  fx_close(&f);
}
END_TEST

START_TEST(channel_state_key_values_round_trip) {
  fx f;
  fx_open(&f);
  fx_wait_t w1 = {0}, w2 = {0}, w3 = {0}, w4 = {0};
  json_decref(fx_ok(&f, store_kv_set(f.st, "demo", "cursor", "42", fx_json_cb, &w1), &w1));
  json_t *v = fx_ok(&f, store_kv_get(f.st, "demo", "cursor", fx_json_cb, &w2), &w2);
  ck_assert_str_eq(json_string_value(json_object_get(v, "value")), "42");
  json_decref(v);
  json_decref(fx_ok(&f, store_kv_delete(f.st, "demo", "cursor", fx_json_cb, &w3), &w3));
  v = fx_ok(&f, store_kv_get(f.st, "demo", "cursor", fx_json_cb, &w4), &w4);
  ck_assert(json_is_null(json_object_get(v, "value")));
  json_decref(v);
  fx_wait_t w5 = {0}, w6 = {0}, w7 = {0}, w8 = {0};
  json_decref(fx_ok(&f, store_kv_set(f.st, "demo", "a", "1", fx_json_cb, &w5), &w5));
  json_decref(fx_ok(&f, store_kv_set(f.st, "demo", "b", "two", fx_json_cb, &w6), &w6));
  json_decref(fx_ok(&f, store_kv_set(f.st, "other", "a", "x", fx_json_cb, &w7), &w7));
  v = fx_ok(&f, store_kv_list(f.st, "demo", fx_json_cb, &w8), &w8);
  json_t *items = json_object_get(v, "items");
  ck_assert_uint_eq(json_object_size(items), 2);
  ck_assert_str_eq(json_string_value(json_object_get(items, "a")), "1");
  ck_assert_str_eq(json_string_value(json_object_get(items, "b")), "two");
  json_decref(v);
  fx_close(&f);
}
END_TEST

START_TEST(users_teams_and_channels_are_listed) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"email\":\"ana@x\",\"skills\":[\"fr\"],\"capacity\":3,"
              "\"teams\":[\"l1\"]}],\"teams\":[{\"name\":\"l2\",\"users\":[\"ana\"]}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_wait_t w1 = {0}, w2 = {0}, w3 = {0}, w4 = {0};
  json_t *u = fx_ok(&f, store_users_list(f.st, fx_json_cb, &w1), &w1);
  json_t *ana = json_array_get(u, 0);
  ck_assert_str_eq(json_string_value(json_object_get(ana, "email")), "ana@x");
  ck_assert_int_eq(fx_int(ana, "capacity"), 3);
  ck_assert(json_is_true(json_object_get(ana, "seat")));
  ck_assert_int_eq(json_array_size(json_object_get(ana, "teams")), 2);
  json_decref(u);
  json_t *t = fx_ok(&f, store_teams_list(f.st, fx_json_cb, &w2), &w2);
  ck_assert_int_eq(json_array_size(t), 2);
  json_decref(t);
  json_t *c = fx_ok(&f, store_channels_list(f.st, fx_json_cb, &w3), &w3);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(c, 0), "inbox")), "Support");
  json_decref(c);
  fx_wait_t w5 = {0}, w6 = {0};
  json_decref(fx_ok(&f, store_channel_delete(f.st, "demo", fx_json_cb, &w5), &w5));
  fx_wait_t gone = fx_in(&f, "demo", "after-delete", "kim", "hi");
  ck_assert_int_eq(gone.status, -ENOENT);
  fx_run(&f, store_channel_delete(f.st, "demo", fx_json_cb, &w6), &w6);
  ck_assert_int_eq(w6.status, -ENOENT);
  json_t *bad = fx_load("{\"name\":\"l3\",\"users\":[\"ghost\"]}");
  fx_run(&f, store_team_upsert(f.st, bad, STORE_UPSERT_ANY, fx_json_cb, &w4), &w4);
  ck_assert_int_eq(w4.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(w4.err, "user \"ghost\" does not exist"));
  json_decref(bad);
  fx_close(&f);
}
END_TEST

static json_t *hist_read(fx *f, const char *id, int64_t after, int limit) {
  fx_wait_t w = {0};
  return fx_ok(f, store_contact_history(f->st, "demo", "custom", id, after, limit, fx_json_cb, &w), &w);
}

/* The text of messages[i] in a contact's history or a conversation. */
static const char *message_text(json_t *h, size_t i) {
  return json_string_value(json_object_get(json_array_get(json_object_get(h, "messages"), i), "text"));
}

START_TEST(contact_history_reads_back_pages_and_resumes) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"avatar_url\":\"https://cdn.example.com/ana.png\"}]}");
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_channel(&f, "{\"name\":\"other\"}");
  json_t *none = hist_read(&f, "kim", 0, 10);
  ck_assert(json_is_null(json_object_get(none, "contact")));
  ck_assert_int_eq(json_array_size(json_object_get(none, "messages")), 0);
  json_decref(none);

  fx_wait_t first = fx_in(&f, "demo", "e1", "kim", "one");
  fx_in(&f, "demo", "e2", "kim", "two");
  fx_in(&f, "demo", "x1", "lou", "not kim's");
  fx_in(&f, "other", "o1", "kim", "kim elsewhere");
  json_t *th = fx_list(&f, "{\"channel\":\"demo\"}");
  int64_t thread = 0;
  size_t i;
  json_t *it;
  json_array_foreach(json_object_get(th, "items"), i, it) {
    if (strcmp(json_string_value(json_object_get(json_object_get(it, "contact"), "name")), "kim") == 0)
      thread = fx_int(it, "id");
  }
  json_decref(th);
  ck_assert_int_gt(thread, 0);
  fx_reply(&f, thread, 1, "hello from ana");

  json_t *h = hist_read(&f, "kim", 0, 10);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "contact"), "name")), "kim");
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 3);
  ck_assert_str_eq(message_text(h, 0), "one");
  ck_assert_str_eq(message_text(h, 2), "hello from ana");
  json_t *out = json_array_get(json_object_get(h, "messages"), 2);
  ck_assert_str_eq(json_string_value(json_object_get(out, "direction")), "out");
  ck_assert_str_eq(json_string_value(json_object_get(out, "author")), "ana");
  ck_assert_str_eq(json_string_value(json_object_get(out, "author_avatar_url")), "https://cdn.example.com/ana.png");
  ck_assert(json_is_null(json_object_get(h, "owner")));
  ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "queued");
  ck_assert(json_is_false(json_object_get(h, "more")));

  /* The contact's owner comes along (for a chat heading, say). */
  json_t *patch = fx_load("{\"owner\":\"ana\"}");
  fx_wait_t wp = {0};
  json_decref(fx_ok(&f, store_contact_patch(f.st, fx_int(json_object_get(h, "contact"), "id"), patch, fx_json_cb, &wp), &wp));
  json_decref(patch);
  json_decref(h);
  h = hist_read(&f, "kim", 0, 10);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "owner"), "name")), "ana");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "owner"), "avatar_url")),
                   "https://cdn.example.com/ana.png");
  json_decref(h);

  /* The latest two, oldest first, and a flag that one was left out. */
  h = hist_read(&f, "kim", 0, 2);
  ck_assert_str_eq(message_text(h, 0), "two");
  ck_assert_str_eq(message_text(h, 1), "hello from ana");
  ck_assert(json_is_true(json_object_get(h, "more")));
  json_decref(h);

  /* Resuming after the first message. */
  h = hist_read(&f, "kim", first.id, 1);
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 1);
  ck_assert_str_eq(message_text(h, 0), "two");
  ck_assert(json_is_true(json_object_get(h, "more")));
  json_decref(h);

  /* Ana deleted: her reply keeps her name as its author, not her picture */
  fx_wait_t wd = {0};
  json_decref(fx_ok(&f, store_user_delete(f.st, "ana", fx_json_cb, &wd), &wd));
  h = hist_read(&f, "kim", 0, 10);
  out = json_array_get(json_object_get(h, "messages"), 2);
  ck_assert_str_eq(json_string_value(json_object_get(out, "author")), "ana");
  ck_assert(json_is_null(json_object_get(out, "author_avatar_url")));
  json_decref(h);
  fx_close(&f);
}
END_TEST

/* A contact writing in two conversations of one channel (a thread per
 * external thread id): the latest come newest first across both. */
START_TEST(contact_history_merges_the_contacts_conversations) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"thread_policy\":\"external\"}");
  const char *texts[] = {"b1", "a1", "a2", "b2", "a3", "a4"};
  int64_t ids[6];
  for (int i = 0; i < 6; i++) {
    char ext[8];
    snprintf(ext, sizeof(ext), "e%d", i);
    router_inbound in = {.channel = "demo", .external_id = ext, .text = texts[i],
                         .external_thread_id = texts[i][0] == 'a' ? "thread-a" : "thread-b"};
    in.sender.kind = "custom";
    in.sender.id = "kim";
    ids[i] = fx_submit(&f, &in).id;
  }
  json_t *l = fx_list(&f, "{}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 2);
  json_decref(l);
  json_t *h = hist_read(&f, "kim", 0, 2);
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 2);
  ck_assert_str_eq(message_text(h, 0), "a3");
  ck_assert_str_eq(message_text(h, 1), "a4");
  ck_assert(json_is_true(json_object_get(h, "more")));
  json_decref(h);
  h = hist_read(&f, "kim", 0, 3);
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 3);
  ck_assert_str_eq(message_text(h, 0), "b2");
  ck_assert_str_eq(message_text(h, 2), "a4");
  json_decref(h);
  h = hist_read(&f, "kim", ids[1], 2);
  ck_assert_str_eq(message_text(h, 0), "a2");
  ck_assert_str_eq(message_text(h, 1), "b2");
  ck_assert(json_is_true(json_object_get(h, "more")));
  json_decref(h);
  h = hist_read(&f, "kim", ids[3], 5);
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 2);
  ck_assert_str_eq(message_text(h, 0), "a3");
  ck_assert_str_eq(message_text(h, 1), "a4");
  ck_assert(json_is_false(json_object_get(h, "more")));
  json_decref(h);
  fx_close(&f);
}
END_TEST

/* Every message of the channel's conversations goes, replies included;
 * another channel's stay, and its conversations read as before. */
START_TEST(deleting_a_channels_history_takes_all_of_it_and_nothing_else) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_channel(&f, "{\"name\":\"other\"}");
  const char *senders[] = {"kim", "lou", "kim", "max", "lou", "kim"};
  for (int i = 0; i < 6; i++) {
    char ext[8];
    snprintf(ext, sizeof(ext), "d%d", i);
    fx_in(&f, "demo", ext, senders[i], "to demo");
    snprintf(ext, sizeof(ext), "o%d", i);
    fx_in(&f, "other", ext, senders[i], "to other");
  }
  json_t *l = fx_list(&f, "{\"channel\":\"demo\"}");
  fx_reply(&f, fx_int(json_array_get(json_object_get(l, "items"), 0), "id"), 0, "a reply");
  json_decref(l);
  l = fx_list(&f, "{\"channel\":\"other\"}");
  int64_t kept = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  fx_wait_t d = {0};
  json_t *r = fx_ok(&f, store_channel_history_delete(f.st, "demo", fx_json_cb, &d), &d);
  ck_assert_int_eq(fx_int(r, "threads"), 3);
  json_decref(r);
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM messages WHERE channel = 'demo'"), 0);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM messages WHERE channel = 'other'"), 6);
  fx_open_store(&f);
  json_t *c = fx_thread(&f, kept);
  ck_assert_int_gt(json_array_size(json_object_get(c, "messages")), 0);
  json_decref(c);
  fx_close(&f);
}
END_TEST

/* Internal notes are the agents': a conversation lists them, a plugin's
 * read of the contact's history never does, and they go with the channel's
 * history. */
START_TEST(notes_stay_with_the_agents_and_go_with_the_history) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "where is my parcel");
  json_t *l = fx_list(&f, "{\"channel\":\"demo\"}");
  int64_t thread = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  fx_wait_t w = {0};
  json_t *n = fx_ok(&f, store_note_add(f.st, thread, 1, "customer is a reseller", fx_json_cb, &w), &w);
  ck_assert_str_eq(json_string_value(json_object_get(n, "user")), "ana");
  int64_t note = fx_int(n, "id");
  json_decref(n);
  fx_wait_t missing = {0};
  ck_assert_int_eq(store_note_add(f.st, 4242, 1, "x", fx_json_cb, &missing), 0);
  fx_wait(&f, &missing);
  ck_assert_int_eq(missing.status, -ENOENT);
  fx_in(&f, "demo", "e2", "kim", "hello?");
  json_t *c = fx_thread(&f, thread);
  json_t *notes = json_object_get(c, "notes");
  ck_assert_int_eq(json_array_size(notes), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(notes, 0), "text")), "customer is a reseller");
  /* ids from one sequence: the note sits between the two messages */
  json_t *msgs = json_object_get(c, "messages");
  ck_assert_int_lt(fx_int(json_array_get(msgs, 0), "id"), note);
  ck_assert_int_gt(fx_int(json_array_get(msgs, 1), "id"), note);
  json_decref(c);
  json_t *h = hist_read(&f, "kim", 0, 50);
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 2);
  ck_assert_str_eq(message_text(h, 0), "where is my parcel");
  ck_assert_str_eq(message_text(h, 1), "hello?");
  json_decref(h);
  fx_wait_t w2 = {0};
  n = fx_ok(&f, store_note_add(f.st, thread, 0, "asked the courier", fx_json_cb, &w2), &w2);
  int64_t last = fx_int(n, "id");
  ck_assert(json_is_null(json_object_get(n, "user")));
  json_decref(n);
  fx_reopen(&f); /* the sequence goes on above the newest note after a restart */
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_wait_t w3 = fx_in(&f, "demo", "e3", "kim", "still there?");
  ck_assert_int_gt(w3.id, last);
  fx_wait_t d = {0};
  json_decref(fx_ok(&f, store_channel_history_delete(f.st, "demo", fx_json_cb, &d), &d));
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM notes"), 0);
  fx_open_store(&f);
  fx_close(&f);
}
END_TEST

static json_t *avail(fx *f, const char *channel) {
  fx_wait_t w = {0};
  return fx_ok(f, store_channel_availability(f->st, channel, fx_json_cb, &w), &w);
}

/* Schema 10 links each thread's messages in a chain (no thread index): an
 * older database gets the links of the messages it has, and reads, replies
 * and new messages carry on from them. */
START_TEST(a_schema_9_database_gets_its_threads_chained) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_close_store(&f);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  /* two conversations of today, their messages interleaved; kim's second
   * message was stamped before her first (webhook timestamps) and has no
   * subject; an automatic reply came last */
  ck_assert_int_eq(sqlite3_exec(db, FX_BEFORE_SCHEMA_10 "PRAGMA user_version = 9;"
      "INSERT INTO contacts(id, name) VALUES(1, 'kim'), (2, 'lou');"
      "INSERT INTO identities(channel, kind, value, contact_id) VALUES('demo', 'custom', 'kim', 1),"
      "  ('demo', 'custom', 'lou', 2);"
      "INSERT INTO threads(id, channel, inbox, contact_id, created_at) VALUES"
      "  (1, 'demo', 'Support', 1, unixepoch() * 1000), (2, 'demo', 'Support', 2, unixepoch() * 1000),"
      "  (3, 'demo', 'Support', 2, unixepoch() * 1000);"
      "INSERT INTO messages(id, thread_id, channel, direction, external_id, contact_id, text, subject,"
      "  status, automatic, created_at) VALUES"
      "  (1, 1, 'demo', 'in', 'k1', 1, 'kim one', 'Order', 'received', 0, 1000),"
      "  (2, 2, 'demo', 'in', 'l1', 2, 'lou one', NULL, 'received', 0, 2000),"
      "  (3, 1, 'demo', 'out', NULL, NULL, 'to kim', NULL, 'sent', 0, 3000),"
      "  (4, 1, 'demo', 'in', 'k2', 1, 'kim two', NULL, 'received', 0, 900),"
      "  (5, 2, 'demo', 'out', NULL, NULL, 'to lou', NULL, 'sent', 0, 5000),"
      "  (6, 1, 'demo', 'out', NULL, NULL, 'auto', NULL, 'sent', 1, 950);",
      NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");

  json_t *c = fx_thread(&f, 1);
  ck_assert_int_eq(json_array_size(json_object_get(c, "messages")), 4);
  ck_assert_str_eq(message_text(c, 0), "kim one");
  ck_assert_str_eq(message_text(c, 1), "to kim");
  ck_assert_str_eq(message_text(c, 2), "kim two");
  ck_assert_str_eq(message_text(c, 3), "auto");
  ck_assert_int_eq(fx_int(c, "last_message_at"), 950);
  json_decref(c);
  c = fx_thread(&f, 3);
  ck_assert_int_eq(json_array_size(json_object_get(c, "messages")), 0);
  ck_assert(json_is_null(json_object_get(c, "last_message_at")));
  json_decref(c);
  json_t *l = fx_list(&f, "{\"q\":\"to lou\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(l, "items"), 0), "id"), 2);
  json_decref(l);
  /* The first agent reply after each conversation's earliest inbound
   * message (the automatic one does not count): 2.1 s and 3 s, median
   * 2.55 s. */
  json_t *a = avail(&f, "demo");
  ck_assert_int_eq(fx_int(a, "typical_reply_seconds"), 2);
  json_decref(a);

  /* A reply answers kim's latest message, and the outbox hands the sender
   * her latest timestamp and the conversation's subject. */
  router_reply rp = {.thread_id = 1, .text = "still there?"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &rp, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  fx_wait_t wc = {0};
  json_t *claimed = fx_ok(&f, store_outbox_claim(f.st, INT64_MAX / 2, 10, fx_json_cb, &wc), &wc);
  json_t *item = NULL;
  size_t i;
  json_t *it;
  json_array_foreach(claimed, i, it) if (fx_int(it, "message_id") == w.id) item = it;
  ck_assert_ptr_nonnull(item);
  ck_assert_int_eq(fx_int(item, "last_inbound_ms"), 1000);
  ck_assert_str_eq(json_string_value(json_object_get(item, "subject")), "Order");
  json_decref(claimed);

  /* kim writes again: the conversation carries on from its chain */
  fx_wait_t n = fx_in(&f, "demo", "k3", "kim", "kim three");
  ck_assert_int_eq(n.status, 0);
  c = fx_thread(&f, 1);
  ck_assert_int_eq(json_array_size(json_object_get(c, "messages")), 6);
  ck_assert_str_eq(message_text(c, 4), "still there?");
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(c, "messages"), 4), "reply_to"), 4);
  ck_assert_str_eq(message_text(c, 5), "kim three");
  json_decref(c);
  json_t *h = hist_read(&f, "kim", 0, 10);
  ck_assert_int_eq(json_array_size(json_object_get(h, "messages")), 6);
  ck_assert_str_eq(message_text(h, 0), "kim one");
  json_decref(h);
  fx_close(&f);
}
END_TEST

START_TEST(channel_availability_counts_the_routing_pool) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"capacity\":1},{\"name\":\"bo\",\"available\":false},"
              "{\"name\":\"cy\",\"seat\":false},{\"name\":\"di\",\"teams\":[\"l2\"]}]}");
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_channel(&f, "{\"name\":\"named\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\",\"bo\"]}}");
  fx_channel(&f, "{\"name\":\"team\",\"routing\":{\"mode\":\"users_and_teams\",\"teams\":[\"l2\"]}}");
  json_t *a = avail(&f, "demo");
  ck_assert_int_eq(fx_int(a, "eligible"), 3); /* cy has no seat */
  ck_assert_int_eq(fx_int(a, "available"), 2);
  ck_assert_int_eq(fx_int(a, "with_capacity"), 2);
  ck_assert_int_eq(fx_int(a, "typical_reply_seconds"), -1);
  json_decref(a);
  a = avail(&f, "team");
  ck_assert_int_eq(fx_int(a, "eligible"), 1);
  json_decref(a);

  /* ana takes a ticket and is then at capacity; bo is away. */
  fx_in(&f, "named", "n1", "kim", "hi");
  a = avail(&f, "named");
  ck_assert_int_eq(fx_int(a, "eligible"), 2);
  ck_assert_int_eq(fx_int(a, "available"), 1);
  ck_assert_int_eq(fx_int(a, "with_capacity"), 0);
  json_decref(a);

  /* An agent's reply gives the channel a typical reply time (0 s here). */
  json_t *th = fx_list(&f, "{\"channel\":\"named\"}");
  int64_t thread = fx_int(json_array_get(json_object_get(th, "items"), 0), "id");
  json_decref(th);
  fx_reply(&f, thread, 1, "on it");
  a = avail(&f, "named");
  ck_assert_int_ge(fx_int(a, "typical_reply_seconds"), 0);
  ck_assert_int_lt(fx_int(a, "typical_reply_seconds"), 60);
  json_decref(a);

  fx_wait_t w = {0};
  fx_run(&f, store_channel_availability(f.st, "ghost", fx_json_cb, &w), &w);
  ck_assert_int_eq(w.status, -ENOENT);
  fx_close(&f);
}
END_TEST

/* A read that holds its reader until the test lets it go (the long report
 * or export), and one that answers at once (the search). */
static volatile int slow_read_go, slow_read_running;

static int slow_read(store *st, sq_req *r, json_t *args, json_t **result) {
  (void)r, (void)args;
  slow_read_running = 1;
  for (int i = 0; i < 10000 && !slow_read_go; i++) usleep(1000);
  sqlite3_stmt *s = sq_prep(st, "SELECT count(*) FROM messages");
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
  *result = json_integer(sqlite3_column_int64(s, 0));
  sqlite3_reset(s);
  return 0;
}

static int quick_read(store *st, sq_req *r, json_t *args, json_t **result) {
  (void)r, (void)args;
  sqlite3_stmt *s = sq_prep(st, "SELECT count(*) FROM threads");
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
  *result = json_integer(sqlite3_column_int64(s, 0));
  sqlite3_reset(s);
  return 0;
}

START_TEST(a_long_read_does_not_hold_the_next_read) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_in(&f, "demo", "m1", "kim", "hello");
  slow_read_go = 0;
  slow_read_running = 0;
  fx_wait_t slow = {0}, quick = {0};
  ck_assert_int_eq(sq_submit_read_json(f.st, slow_read, NULL, fx_json_cb, &slow), 0);
  while (!slow_read_running) usleep(1000);
  /* the slow read holds one reader; the next read takes the other */
  json_t *n = fx_ok(&f, sq_submit_read_json(f.st, quick_read, NULL, fx_json_cb, &quick), &quick);
  ck_assert_int_eq(json_integer_value(n), 1);
  ck_assert(!slow.done);
  json_decref(n);
  slow_read_go = 1;
  n = fx_ok(&f, 0, &slow);
  ck_assert_int_eq(json_integer_value(n), 1);
  json_decref(n);
  fx_close(&f);
}
END_TEST

START_TEST(tokens_of_a_user_author_replies_and_go_with_the_user) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"avatar_url\":\"https://cdn.example.com/ana.png\"}]}");
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_wait_t w1 = {0}, w2 = {0}, w3 = {0}, w4 = {0}, w5 = {0}, w6 = {0};
  fx_run(&f, store_token_create(f.st, "laptop", "agent", "ghost", "h0", fx_json_cb, &w1), &w1);
  ck_assert_int_eq(w1.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(w1.err, "user \"ghost\" does not exist"));
  json_t *t = fx_ok(&f, store_token_create(f.st, "laptop", "agent", "ana", "h1", fx_json_cb, &w2), &w2);
  ck_assert_str_eq(json_string_value(json_object_get(t, "user")), "ana");
  json_decref(t);
  t = fx_ok(&f, store_token_create(f.st, "script", "agent", NULL, "h2", fx_json_cb, &w3), &w3);
  ck_assert(json_is_null(json_object_get(t, "user")));
  json_decref(t);
  json_t *found = fx_ok(&f, store_token_find(f.st, "h1", fx_json_cb, &w4), &w4);
  int64_t ana = fx_int(found, "user_id");
  ck_assert_int_gt(ana, 0);
  ck_assert_str_eq(json_string_value(json_object_get(found, "user")), "ana");
  json_decref(found);
  found = fx_ok(&f, store_token_find(f.st, "h2", fx_json_cb, &w5), &w5);
  ck_assert_int_eq(fx_int(found, "user_id"), 0);
  json_decref(found);
  json_t *list = fx_ok(&f, store_tokens_list(f.st, fx_json_cb, &w6), &w6);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "user")), "ana");
  ck_assert(json_is_null(json_object_get(json_array_get(list, 1), "user")));
  json_decref(list);

  /* an absent avatar_url keeps it, null removes it */
  fx_wait_t u1 = {0}, u2 = {0};
  json_t *patch = fx_load("{\"name\":\"ana\",\"capacity\":2}");
  json_t *user = fx_ok(&f, store_user_upsert(f.st, patch, STORE_UPSERT_ANY, fx_json_cb, &u1), &u1);
  ck_assert_str_eq(json_string_value(json_object_get(user, "avatar_url")), "https://cdn.example.com/ana.png");
  json_decref(user);
  json_decref(patch);
  patch = fx_load("{\"name\":\"ana\",\"avatar_url\":null}");
  user = fx_ok(&f, store_user_upsert(f.st, patch, STORE_UPSERT_ANY, fx_json_cb, &u2), &u2);
  ck_assert(json_is_null(json_object_get(user, "avatar_url")));
  json_decref(user);
  json_decref(patch);

  fx_wait_t in = fx_in(&f, "demo", "m1", "kim", "hello");
  ck_assert_int_eq(in.status, 0);
  json_t *l = fx_list(&f, "{}");
  int64_t thread = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  router_reply r = {.thread_id = thread, .user_id = ana, .text = "Ana here"};
  fx_wait_t rw = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &rw, err, sizeof(err)), 0);
  fx_wait(&f, &rw);
  ck_assert_int_eq(rw.status, 0);
  json_t *conv = fx_thread(&f, thread);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(conv, "messages"), 1), "user")),
                   "ana");
  json_decref(conv);
  fx_wait_t nw = {0};
  json_decref(fx_ok(&f, store_note_add(f.st, thread, ana, "Ana's note", fx_json_cb, &nw), &nw));

  /* Deleting the user revokes their token; their reply and note keep their
   * name (not their id), and a reply still on its way is stored without an
   * author; the next user never gets the same id. */
  fx_wait_t d = {0}, g1 = {0}, g2 = {0}, nu = {0};
  json_t *del = fx_ok(&f, store_user_delete(f.st, "ana", fx_json_cb, &d), &d);
  ck_assert_int_eq(fx_int(del, "tokens_revoked"), 1);
  json_decref(del);
  fx_run(&f, store_token_find(f.st, "h1", fx_json_cb, &g1), &g1);
  ck_assert_int_eq(g1.status, -ENOENT);
  json_decref(fx_ok(&f, store_token_find(f.st, "h2", fx_json_cb, &g2), &g2));
  /* a reply whose token was checked just before the delete */
  fx_wait_t late = {0};
  r.text = "Ana again";
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &late, err, sizeof(err)), 0);
  fx_wait(&f, &late);
  ck_assert_int_eq(late.status, 0);
  patch = fx_load("{\"name\":\"bo\"}");
  user = fx_ok(&f, store_user_upsert(f.st, patch, STORE_UPSERT_ANY, fx_json_cb, &nu), &nu);
  json_decref(patch);
  ck_assert_int_gt(fx_int(user, "id"), ana); /* the id is never given again */
  json_decref(user);
  conv = fx_thread(&f, thread);
  ck_assert_int_eq(json_array_size(json_object_get(conv, "messages")), 3);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(conv, "messages"), 1), "user")),
                   "ana");
  ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(conv, "messages"), 2), "user")));
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(conv, "notes"), 0), "user")),
                   "ana");
  json_decref(conv);
  fx_close(&f);
}
END_TEST

/* A deleted conversation's, ticket's and contact's ids are never given to
 * new ones, after a restart either: links and events naming the old ones
 * must not lead to another customer. */
START_TEST(deleted_ids_are_never_given_again) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "a1", "kim", "first");
  json_t *l = fx_list(&f, "{\"channel\":\"demo\"}");
  json_t *old = json_incref(json_array_get(json_object_get(l, "items"), 0));
  json_decref(l);
  fx_wait_t d = {0};
  fx_close_store(&f);
  int64_t last_message = fx_db_count(&f, "SELECT max(id) FROM messages");
  int64_t last_event = fx_db_count(&f, "SELECT max(id) FROM events");
  ck_assert_int_gt(last_message, 0);
  fx_open_store(&f);
  json_decref(fx_ok(&f, store_channel_history_delete(f.st, "demo", fx_json_cb, &d), &d));
  /* the contact goes too: a merge deletes the one merged away */
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM threads"), 0);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM messages"), 0);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM identities; DELETE FROM contacts", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "a2", "lee", "second");
  l = fx_list(&f, "{\"channel\":\"demo\"}");
  json_t *now = json_array_get(json_object_get(l, "items"), 0);
  ck_assert_int_gt(fx_int(now, "id"), fx_int(old, "id"));
  ck_assert_int_gt(fx_int(json_object_get(now, "ticket"), "id"), fx_int(json_object_get(old, "ticket"), "id"));
  ck_assert_int_gt(fx_int(json_object_get(now, "contact"), "id"), fx_int(json_object_get(old, "contact"), "id"));
  json_decref(l);
  json_decref(old);
  /* nor a message's or an event's, though the newest of them were deleted:
   * a reply's idempotency key and a webhook's cursor name them */
  fx_close_store(&f);
  ck_assert_int_gt(fx_db_count(&f, "SELECT min(id) FROM messages"), last_message);
  ck_assert_int_gt(fx_db_count(&f, "SELECT min(id) FROM events WHERE json_extract(data, '$.thread_id') IS NOT NULL"), last_event);
  fx_close(&f);
}
END_TEST

/* Nor are a revoked token's and a deleted webhook's (schema 23), and the
 * upgrade to 23 keeps the rows and ids there were. */
START_TEST(deleted_token_and_webhook_ids_are_never_given_again) {
  fx f;
  fx_open(&f);
  fx_close_store(&f);
  /* the tables as schema 22 had them, each with a row */
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(
      sqlite3_exec(db,
                   "DROP TABLE tokens; DROP TABLE webhooks;"
                   "CREATE TABLE tokens(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,"
                   " hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, user_id INTEGER);"
                   "CREATE INDEX tokens_user ON tokens(user_id) WHERE user_id IS NOT NULL;"
                   "CREATE TABLE webhooks(id INTEGER PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, channel TEXT,"
                   " inbox TEXT, description TEXT, secret TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1,"
                   " cursor INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_status INTEGER,"
                   " last_error TEXT, last_attempt_at INTEGER, last_success_at INTEGER, created_at INTEGER NOT NULL);"
                   "INSERT INTO tokens(id, name, role, hash, created_at) VALUES(7, 'old', 'admin', 'h7', 1);"
                   "INSERT INTO webhooks(id, url, events, secret, cursor, created_at)"
                   " VALUES(4, 'http://127.0.0.1:9/old', '[\"*\"]', 's', 12, 1);"
                   "ALTER TABLE messages DROP COLUMN sent_at;" FX_BACK_TO_SCHEMA_24 "PRAGMA user_version = 22;",
                   NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  fx_wait_t w1 = {0}, w2 = {0}, w3 = {0}, w4 = {0}, w5 = {0}, w6 = {0}, w7 = {0};
  json_t *t = fx_ok(&f, store_token_find(f.st, "h7", fx_json_cb, &w1), &w1);
  ck_assert_int_eq(fx_int(t, "id"), 7);
  json_decref(t);
  json_t *h = fx_ok(&f, store_webhook_get(f.st, 4, fx_json_cb, &w2), &w2);
  ck_assert_int_eq(fx_int(h, "cursor"), 12);
  json_decref(h);
  json_decref(fx_ok(&f, store_token_delete(f.st, 7, fx_json_cb, &w3), &w3));
  json_decref(fx_ok(&f, store_webhook_delete(f.st, 4, fx_json_cb, &w4), &w4));
  fx_close_store(&f);
  fx_open_store(&f);
  t = fx_ok(&f, store_token_create(f.st, "new", "agent", NULL, "h8", fx_json_cb, &w5), &w5);
  ck_assert_int_gt(fx_int(t, "id"), 7);
  json_decref(t);
  json_t *fields = json_pack("{ss s[s] ss sI}", "url", "http://127.0.0.1:9/new", "events", "*", "secret", "s2",
                             "cursor", (json_int_t)0);
  h = fx_ok(&f, store_webhook_put(f.st, 0, fields, fx_json_cb, &w6), &w6);
  ck_assert_int_gt(fx_int(h, "id"), 4);
  json_decref(h);
  json_decref(fields);
  fx_run(&f, store_webhook_get(f.st, 4, fx_json_cb, &w7), &w7);
  ck_assert_int_eq(w7.status, -ENOENT);
  fx_close(&f);
}
END_TEST

/* A channel that names no inbox feeds Support, and schema 22 puts there
 * what such a channel stored with none before. */
START_TEST(a_channel_without_an_inbox_feeds_support) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "a1", "kim", "first");
  json_t *l = fx_list(&f, "{\"inbox\":\"Support\"}");
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  json_decref(l);
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM events WHERE channel = 'demo' AND inbox IS NOT 'Support'"), 0);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db,
                                "UPDATE channels SET inbox = NULL; UPDATE threads SET inbox = NULL;"
                                "UPDATE events SET inbox = NULL; ALTER TABLE messages DROP COLUMN sent_at;"
                                FX_BACK_TO_SCHEMA_24 " PRAGMA user_version = 21;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM threads WHERE inbox = 'Support'"), 1);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM channels WHERE inbox = 'Support'"), 1);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM events WHERE channel = 'demo' AND inbox IS NOT 'Support'"), 0);
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("store");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, bad_url_is_refused_with_a_sentence);
  tcase_add_test(tc, one_daemon_claims_a_database_at_a_time);
  tcase_add_test(tc, database_newer_than_binary_is_refused);
  tcase_add_test(tc, migrations_run_once_and_wal_is_on);
  tcase_add_test(tc, one_turn_of_submissions_is_one_group_commit);
  tcase_add_test(tc, the_writer_yields_to_the_loop_and_the_syncer_does_not);
  tcase_add_test(tc, checkpoints_run_off_the_writer_as_the_wal_grows);
  tcase_add_test(tc, checkpoint_cycles_restart_the_wal_without_a_storm);
  tcase_add_test(tc, the_wal_stays_bounded_under_sustained_commits);
  tcase_add_test(tc, a_message_is_answered_only_after_the_wal_is_flushed);
  tcase_add_test(tc, a_failed_flush_fails_its_batch_and_refuses_later_writes);
  tcase_add_test(tc, acknowledged_messages_survive_reopen_and_still_dedup);
  tcase_add_test(tc, close_drains_the_queue_and_fires_every_completion);
  tcase_add_test(tc, failing_request_does_not_fail_its_batch);
  tcase_add_test(tc, sigkill_mid_load_loses_no_acknowledged_message);
  tcase_add_test(tc, lookup_cache_grows_clears_and_never_confuses_keys);
  tcase_add_test(tc, requests_after_close_are_refused);
  tcase_add_test(tc, conversation_list_filters_and_paginates);
  tcase_add_test(tc, search_ignores_case_in_every_script);
  tcase_add_test(tc, channel_state_key_values_round_trip);
  tcase_add_test(tc, users_teams_and_channels_are_listed);
  tcase_add_test(tc, contact_history_reads_back_pages_and_resumes);
  tcase_add_test(tc, contact_history_merges_the_contacts_conversations);
  tcase_add_test(tc, a_schema_9_database_gets_its_threads_chained);
  tcase_add_test(tc, deleting_a_channels_history_takes_all_of_it_and_nothing_else);
  tcase_add_test(tc, notes_stay_with_the_agents_and_go_with_the_history);
  tcase_add_test(tc, channel_availability_counts_the_routing_pool);
  tcase_add_test(tc, tokens_of_a_user_author_replies_and_go_with_the_user);
  tcase_add_test(tc, a_long_read_does_not_hold_the_next_read);
  tcase_add_test(tc, deleted_ids_are_never_given_again);
  tcase_add_test(tc, deleted_token_and_webhook_ids_are_never_given_again);
  tcase_add_test(tc, a_channel_without_an_inbox_feeds_support);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
