/* test_store_attach.c — core/store_sqlite_attach.c: inbound attachment
 * content is stored in its message's transaction, read back by id, stored
 * once however often the message is redelivered, kept as metadata with an
 * error over the host's limit, and deleted with its message; an agent's
 * upload waits for the reply that names it and then goes with it. */
#include <errno.h>
#include <sqlite3.h>

#include "store.h"
#include "store_fixture.h"

/* Binary content with NUL bytes and every byte value. */
static char content[600];

static void fill_content(void) {
  for (size_t i = 0; i < sizeof(content); i++) content[i] = (char)(i * 7 % 256);
}

typedef struct got_t {
  int done, status;
  int64_t id, message_id;
  char *mime, *filename, *data;
  size_t len;
  char err[256];
} got_t;

static void got_cb(void *arg, int status, const store_attachment *a, const char *err) {
  got_t *g = arg;
  g->done = 1;
  g->status = status;
  if (a != NULL) {
    g->id = a->id;
    g->message_id = a->message_id;
    g->mime = a->mime_type ? strdup(a->mime_type) : NULL;
    g->filename = a->filename ? strdup(a->filename) : NULL;
    g->data = malloc(a->len + 1);
    memcpy(g->data, a->data, a->len);
    g->len = a->len;
  }
  if (err) snprintf(g->err, sizeof(g->err), "%s", err);
}

static got_t get(fx *f, int64_t id) {
  got_t g = {0};
  ck_assert_int_eq(store_attachment_get(f->st, id, got_cb, &g), 0);
  while (!g.done) uv_run(&f->loop, UV_RUN_ONCE);
  return g;
}

static void got_free(got_t *g) {
  free(g->mime);
  free(g->filename);
  free(g->data);
}

/* Submits ext from kim with the given attachments without waiting. */
static void submit(fx *f, const char *channel, const char *ext, const router_attachment *a, size_t n,
                   fx_wait_t *w) {
  router_inbound in = {.channel = channel, .external_id = ext, .text = "see attached"};
  in.sender.kind = "custom";
  in.sender.id = "kim";
  in.attachments = a;
  in.n_attachments = n;
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f->st, &in, fx_inbound_cb, w, err, sizeof(err)), 0);
}

static fx_wait_t in_with(fx *f, const char *ext, const router_attachment *a, size_t n) {
  fx_wait_t w = {0};
  submit(f, "demo", ext, a, n, &w);
  fx_wait(f, &w);
  ck_assert_msg(w.status == 0, "inbound failed: %s", w.err);
  return w;
}

/* The attachments array of message message_id in thread 1. */
static json_t *attachments_of(fx *f, int64_t message_id) {
  json_t *conv = fx_thread(f, 1);
  size_t i;
  json_t *m, *found = NULL;
  json_array_foreach(json_object_get(conv, "messages"), i, m) {
    if (fx_int(m, "id") == message_id) found = json_incref(json_object_get(m, "attachments"));
  }
  json_decref(conv);
  ck_assert_ptr_nonnull(found);
  return found;
}

/* Rows in the attachments table, read from the closed store's file. */
static int rows_on_disk(fx *f) {
  fx_close_store(f);
  int n = (int)fx_db_count(f, "SELECT count(*) FROM attachments");
  fx_open_store(f);
  fx_channel(f, "{\"name\":\"demo\"}");
  return n;
}

START_TEST(content_is_stored_with_its_message_and_read_back_by_id) {
  fill_content();
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  router_attachment a[2] = {
      {.url = "https://example.com/a.png", .mime_type = "image/png", .filename = "a.png", .size = 1234},
      {.mime_type = "application/pdf", .filename = "invoice \"März\".pdf", .size = 99, .data = content,
       .data_len = sizeof(content)},
  };
  fx_wait_t w = in_with(&f, "att-1", a, 2);
  json_t *at = attachments_of(&f, w.id);
  ck_assert_int_eq(json_array_size(at), 2);
  json_t *linked = json_array_get(at, 0), *held = json_array_get(at, 1);
  ck_assert_str_eq(json_string_value(json_object_get(linked, "url")), "https://example.com/a.png");
  ck_assert_ptr_null(json_object_get(linked, "id"));
  ck_assert_int_eq(fx_int(linked, "size"), 1234);
  int64_t id = fx_int(held, "id");
  ck_assert_int_gt(id, 0);
  ck_assert_int_eq(fx_int(held, "size"), sizeof(content)); /* the bytes' size, not the declared one */
  ck_assert_ptr_null(json_object_get(held, "error"));
  json_decref(at);

  /* Durable: it is there after the store is reopened. */
  fx_reopen(&f);
  got_t g = get(&f, id);
  ck_assert_int_eq(g.status, 0);
  ck_assert_int_eq(g.id, id);
  ck_assert_int_eq(g.message_id, w.id);
  ck_assert_str_eq(g.mime, "application/pdf");
  ck_assert_str_eq(g.filename, "invoice \"März\".pdf");
  ck_assert_uint_eq(g.len, sizeof(content));
  ck_assert_mem_eq(g.data, content, sizeof(content));
  got_free(&g);
  fx_close(&f);
}
END_TEST

START_TEST(a_redelivered_message_stores_its_content_once) {
  fill_content();
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  router_attachment a = {.mime_type = "image/jpeg", .data = content, .data_len = sizeof(content)};
  fx_wait_t first = in_with(&f, "dup-1", &a, 1);
  /* Once right behind it in the same batch, once later on its own. */
  fx_wait_t w1 = {0}, w2 = {0};
  submit(&f, "demo", "dup-1", &a, 1, &w1);
  submit(&f, "demo", "dup-1", &a, 1, &w2);
  fx_wait(&f, &w1);
  fx_wait(&f, &w2);
  fx_wait_t again = in_with(&f, "dup-1", &a, 1);
  ck_assert(w1.duplicate && w2.duplicate && again.duplicate);
  ck_assert(w1.id == first.id && w2.id == first.id && again.id == first.id);
  ck_assert_int_eq(rows_on_disk(&f), 1);
  json_t *at = attachments_of(&f, first.id);
  ck_assert_int_eq(json_array_size(at), 1);
  json_decref(at);
  fx_close(&f);
}
END_TEST

START_TEST(content_over_the_limit_is_kept_as_metadata_with_an_error) {
  fill_content();
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  ck_assert_int_eq(store_set_attachment_limit(f.st, -1), -EINVAL);
  ck_assert_int_eq(store_set_attachment_limit(f.st, STORE_ATTACHMENT_LIMIT_MAX + 1), -EINVAL);
  ck_assert_int_eq(store_set_attachment_limit(f.st, 100), 0);
  router_attachment a[2] = {
      {.mime_type = "video/mp4", .filename = "big.mp4", .data = content, .data_len = 101},
      {.mime_type = "text/plain", .filename = "small.txt", .data = content, .data_len = 100},
  };
  fx_wait_t w = in_with(&f, "big-1", a, 2);
  ck_assert_int_gt(w.id, 0);
  json_t *at = attachments_of(&f, w.id);
  json_t *big = json_array_get(at, 0), *small = json_array_get(at, 1);
  ck_assert_ptr_null(json_object_get(big, "id"));
  ck_assert_int_eq(fx_int(big, "size"), 101);
  ck_assert_str_eq(json_string_value(json_object_get(big, "filename")), "big.mp4");
  const char *why = json_string_value(json_object_get(big, "error"));
  ck_assert_ptr_nonnull(why);
  ck_assert_ptr_nonnull(strstr(why, "101 bytes is over the host's attachment limit of 100 bytes"));
  ck_assert_int_gt(fx_int(small, "id"), 0);
  got_t g = get(&f, fx_int(small, "id"));
  ck_assert_uint_eq(g.len, 100);
  ck_assert_mem_eq(g.data, content, 100);
  got_free(&g);
  json_decref(at);

  /* 0: no content at all, and the message still goes through. */
  ck_assert_int_eq(store_set_attachment_limit(f.st, 0), 0);
  w = in_with(&f, "big-2", &a[1], 1);
  at = attachments_of(&f, w.id);
  ck_assert_ptr_nonnull(json_object_get(json_array_get(at, 0), "error"));
  json_decref(at);
  fx_close(&f);
}
END_TEST

START_TEST(a_failed_message_leaves_no_content_and_its_batch_keeps_its_own) {
  fill_content();
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  router_attachment a = {.mime_type = "image/png", .data = content, .data_len = 10};
  /* Queued together: the second fails (unknown channel), so the batch is
   * rolled back and re-run with a savepoint per request. */
  fx_wait_t good = {0}, bad = {0};
  submit(&f, "demo", "ok-1", &a, 1, &good);
  submit(&f, "nowhere", "bad-1", &a, 1, &bad);
  fx_wait(&f, &good);
  fx_wait(&f, &bad);
  ck_assert_int_eq(good.status, 0);
  ck_assert_int_eq(bad.status, -ENOENT);
  ck_assert_int_eq(rows_on_disk(&f), 1);
  json_t *at = attachments_of(&f, good.id);
  got_t g = get(&f, fx_int(json_array_get(at, 0), "id"));
  ck_assert_int_eq(g.status, 0);
  ck_assert_int_eq(g.message_id, good.id);
  got_free(&g);
  json_decref(at);
  fx_close(&f);
}
END_TEST

START_TEST(unknown_ids_and_deleted_history_have_no_content) {
  fill_content();
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  got_t g = get(&f, 4242);
  ck_assert_int_eq(g.status, -ENOENT);
  ck_assert_str_eq(g.err, "attachment 4242 does not exist");
  router_attachment a = {.filename = "note.txt", .data = content, .data_len = 5};
  fx_wait_t w = in_with(&f, "gone-1", &a, 1);
  json_t *at = attachments_of(&f, w.id);
  int64_t id = fx_int(json_array_get(at, 0), "id");
  json_decref(at);
  fx_wait_t d = {0};
  json_decref(fx_ok(&f, store_channel_history_delete(f.st, "demo", fx_json_cb, &d), &d));
  g = get(&f, id);
  ck_assert_int_eq(g.status, -ENOENT);
  ck_assert_int_eq(rows_on_disk(&f), 0);
  fx_close(&f);
}
END_TEST

static int64_t upload(fx *f, const char *name, size_t len) {
  fx_wait_t w = {0};
  json_t *r = fx_ok(f, store_attachment_put(f->st, "application/pdf", name, content, len, fx_json_cb, &w), &w);
  int64_t id = fx_int(r, "id");
  char url[64];
  snprintf(url, sizeof(url), "/api/v1/attachments/%lld", (long long)id);
  ck_assert_str_eq(json_string_value(json_object_get(r, "url")), url);
  ck_assert_int_eq(fx_int(r, "size"), (int64_t)len);
  json_decref(r);
  return id;
}

static fx_wait_t reply_with(fx *f, const char *url) {
  router_attachment a = {.url = url};
  router_reply rp = {.thread_id = 1, .text = "here it is", .attachments = &a, .n_attachments = 1};
  fx_wait_t w = {0};
  ck_assert_int_eq(store_submit_reply(f->st, &rp, fx_reply_cb, &w), 0);
  fx_wait(f, &w);
  return w;
}

START_TEST(an_upload_waits_for_its_reply_and_goes_with_it_or_after_a_day) {
  fill_content();
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  in_with(&f, "up-1", NULL, 0); /* conversation 1 */
  int64_t kept = upload(&f, "scan.pdf", sizeof(content)), stale = upload(&f, NULL, 3);
  got_t g = get(&f, kept);
  ck_assert_int_eq(g.message_id, 0); /* no message's yet */
  ck_assert_str_eq(g.filename, "scan.pdf");
  ck_assert_mem_eq(g.data, content, sizeof(content));
  got_free(&g);
  ck_assert_int_eq(store_set_attachment_limit(f.st, 100), 0);
  ck_assert_int_eq(store_attachment_put(f.st, NULL, NULL, content, 101, fx_json_cb, NULL), -EFBIG);
  ck_assert_int_eq(store_set_attachment_limit(f.st, STORE_ATTACHMENT_LIMIT_DEFAULT), 0);

  fx_wait_t missing = reply_with(&f, "/api/v1/attachments/4242");
  ck_assert_int_eq(missing.status, -EINVAL);
  ck_assert_str_eq(missing.err, "attachment 4242 does not exist (attachments[0])");
  char url[64];
  snprintf(url, sizeof(url), "/api/v1/attachments/%lld", (long long)kept);
  fx_wait_t sent = reply_with(&f, url);
  ck_assert_msg(sent.status == 0, "%s", sent.err);
  g = get(&f, kept);
  ck_assert_int_eq(g.message_id, sent.id); /* the reply's now: it goes with its history */
  got_free(&g);

  /* A day later the upload no reply named is gone at start-up; its id is
   * never given again, and a reply naming it is refused. */
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "UPDATE attachments SET created_at = created_at - 86400001"
                                   " WHERE message_id = 0 RETURNING 1"), 1);
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  g = get(&f, stale);
  ck_assert_int_eq(g.status, -ENOENT);
  snprintf(url, sizeof(url), "/api/v1/attachments/%lld", (long long)stale);
  ck_assert_int_eq(reply_with(&f, url).status, -EINVAL);
  ck_assert_int_gt(upload(&f, "next.pdf", 5), stale);
  g = get(&f, kept);
  ck_assert_int_eq(g.status, 0);
  got_free(&g);
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store_attach");
  TCase *tc = tcase_create("attachments");
  tcase_add_test(tc, content_is_stored_with_its_message_and_read_back_by_id);
  tcase_add_test(tc, a_redelivered_message_stores_its_content_once);
  tcase_add_test(tc, content_over_the_limit_is_kept_as_metadata_with_an_error);
  tcase_add_test(tc, a_failed_message_leaves_no_content_and_its_batch_keeps_its_own);
  tcase_add_test(tc, unknown_ids_and_deleted_history_have_no_content);
  tcase_add_test(tc, an_upload_waits_for_its_reply_and_goes_with_it_or_after_a_day);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
