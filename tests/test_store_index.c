/* test_store_index.c — core/store_sqlite_index.c: the search index of
 * message text, its watermark, and the catch-up that fills it lazily. */
#include <sqlite3.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "store_sqlite.h"

/* Index settings for a test: messages per catch-up request, catch-up
 * requests a search may make, idle wait (-1: never index by itself). */
static void tune(fx *f, int chunk, int search_chunks, int64_t idle_ms) {
  uv_mutex_lock(&f->st->mu);
  f->st->index_chunk = chunk;
  f->st->index_search_chunks = search_chunks;
  f->st->index_idle_ms = idle_ms;
  f->st->index_busy_ms = 0; /* as if no message had come in lately; see the test of its own */
  uv_mutex_unlock(&f->st->mu);
}

static int64_t watermark(fx *f) { return fx_db_count(f, "SELECT value FROM meta WHERE key = 'search_indexed'"); }

static int64_t newest(fx *f) { return fx_db_count(f, "SELECT max(id) FROM messages"); }

/* The conversations a search finds, as a JSON array (caller decrefs). */
static json_t *search(fx *f, const char *q) {
  json_t *filter = json_pack("{ss}", "q", q);
  fx_wait_t w = {0};
  json_t *l = fx_ok(f, store_conversations_list(f->st, filter, fx_json_cb, &w), &w);
  json_decref(filter);
  json_t *items = json_incref(json_object_get(l, "items"));
  json_decref(l);
  return items;
}

static size_t found(fx *f, const char *q) {
  json_t *items = search(f, q);
  size_t n = json_array_size(items);
  json_decref(items);
  return n;
}

/* Index rows holding the trigram t (of folded text), read beside the store. */
static int64_t index_rows(fx *f, const char *t) {
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM search_index WHERE search_index MATCH '\"%s\"'", t);
  return fx_db_count(f, sql);
}

START_TEST(a_search_finds_indexed_messages_and_those_above_the_watermark) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "my invoice is wrong");
  fx_in(&f, "demo", "e2", "lou", "where is my parcel");
  ck_assert_int_eq(watermark(&f), 0);
  ck_assert_int_eq(found(&f, "invoice"), 1); /* caught up first */
  ck_assert_int_eq(watermark(&f), newest(&f));
  ck_assert_int_eq(index_rows(&f, "voi"), 1);
  /* a search that may not catch up still finds what arrived since */
  tune(&f, 2000, 0, -1);
  fx_in(&f, "demo", "e3", "max", "another invoice, parcel lost");
  ck_assert_int_lt(watermark(&f), newest(&f));
  ck_assert_int_eq(found(&f, "invoice"), 2);
  ck_assert_int_eq(found(&f, "parcel"), 2);
  ck_assert_int_eq(found(&f, "nowhere"), 0);
  ck_assert_int_eq(found(&f, "lou"), 1); /* the contact's name, beside the index */
  fx_close(&f);
}
END_TEST

START_TEST(the_index_ignores_case_as_the_scan_does_in_every_script) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "So ein ärger mit der Größe");
  fx_in(&f, "demo", "e2", "lou", "ЗАКАЗ 42 пришёл, \"quoted\" text");
  ck_assert_int_eq(found(&f, "ÄRGER"), 1);
  ck_assert_int_eq(watermark(&f), newest(&f)); /* answered through the index */
  ck_assert_int_eq(found(&f, "GRÖßE"), 1);
  ck_assert_int_eq(found(&f, "заказ 42"), 1);
  ck_assert_int_eq(found(&f, "ПРИШЁЛ"), 1);
  ck_assert_int_eq(found(&f, "\"QUOTED\""), 1); /* FTS5's quotes are the query's own */
  ck_assert_int_eq(found(&f, "ärgerlich"), 0);
  /* a word-final sigma is a sigma, as in the capitals; the long s an s */
  fx_in(&f, "demo", "e3", "eli", "\xce\x9b\xce\x8c\xce\x93\xce\x9f\xce\xa3 and Wa\xc5\xbf\xc5\xbf" "er"); /* ΛΌΓΟΣ, Waſſer */
  ck_assert_int_eq(found(&f, "\xce\xbb\xcf\x8c\xce\xb3\xce\xbf\xcf\x82"), 1); /* λόγος */
  ck_assert_int_eq(found(&f, "WASSER"), 1);
  fx_close(&f);
  /* what the index is asked: every trigram of q as folded, each quoted */
  char *m = sq_index_match("ÄrG\"x");
  ck_assert_str_eq(m, "\"ärg\" AND \"rg\"\"\" AND \"g\"\"x\"");
  free(m);
  ck_assert_ptr_null(sq_index_match("ab"));       /* too short: scanned */
  ck_assert_ptr_null(sq_index_match("r\xff\xfez")); /* not UTF-8: scanned */
}
END_TEST

START_TEST(terms_of_one_or_two_characters_are_still_found) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "Ärger 42");
  fx_in(&f, "demo", "e2", "lou", "nothing");
  ck_assert_int_eq(found(&f, "ärger"), 1); /* indexes both */
  ck_assert_int_eq(watermark(&f), newest(&f));
  ck_assert_int_eq(found(&f, "ä"), 1);
  ck_assert_int_eq(found(&f, "42"), 1);
  ck_assert_int_eq(found(&f, "Ä4"), 0);
  ck_assert_int_eq(found(&f, "no"), 1);
  fx_close(&f);
}
END_TEST

START_TEST(deleting_a_channels_history_takes_its_hits_from_the_index) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_channel(&f, "{\"name\":\"other\"}");
  fx_in(&f, "demo", "d1", "kim", "refund please");
  fx_in(&f, "other", "o1", "lou", "refund again");
  fx_in(&f, "demo", "d2", "kim", "refund now");
  ck_assert_int_eq(found(&f, "refund"), 2);
  ck_assert_int_eq(index_rows(&f, "ref"), 3);
  fx_wait_t d = {0};
  json_decref(fx_ok(&f, store_channel_history_delete(f.st, "demo", fx_json_cb, &d), &d));
  ck_assert_int_eq(index_rows(&f, "ref"), 1);
  ck_assert_int_eq(found(&f, "refund"), 1);
  ck_assert_int_eq(found(&f, "please"), 0);
  /* The newest messages are gone: after a restart their ids are given
   * again, and the watermark comes back below them. */
  int64_t before = watermark(&f);
  fx_reopen(&f);
  tune(&f, 2000, 0, -1);
  ck_assert_int_lt(watermark(&f), before);
  ck_assert_int_eq(watermark(&f), newest(&f));
  fx_channel(&f, "{\"name\":\"demo\"}");
  ck_assert_int_eq(fx_in(&f, "demo", "d3", "kim", "refund once more").status, 0);
  ck_assert_int_eq(found(&f, "once more"), 1);
  tune(&f, 2000, 16, -1);
  ck_assert_int_eq(found(&f, "once more"), 1);
  ck_assert_int_eq(watermark(&f), newest(&f));
  fx_close_store(&f);
  ck_assert_int_eq(index_rows(&f, "ref"), 2);
  /* FTS5's own check of the index's structure after the deletes */
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO search_index(search_index, rank) VALUES('integrity-check', 0)",
                                NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_close(&f);
}
END_TEST

START_TEST(a_merged_contacts_messages_are_found_under_the_contact_kept) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "first question");
  fx_in(&f, "demo", "e2", "lou", "second question about shipping");
  json_t *items = search(&f, "shipping");
  ck_assert_int_eq(json_array_size(items), 1);
  int64_t thread = fx_int(json_array_get(items, 0), "id");
  int64_t lou = fx_int(json_object_get(json_array_get(items, 0), "contact"), "id");
  json_decref(items);
  items = search(&f, "first");
  int64_t kim = fx_int(json_object_get(json_array_get(items, 0), "contact"), "id");
  json_decref(items);
  fx_wait_t m = {0};
  json_decref(fx_ok(&f, store_contact_merge(f.st, kim, lou, fx_json_cb, &m), &m));
  items = search(&f, "shipping");
  ck_assert_int_eq(json_array_size(items), 1);
  ck_assert_int_eq(fx_int(json_array_get(items, 0), "id"), thread);
  ck_assert_int_eq(fx_int(json_object_get(json_array_get(items, 0), "contact"), "id"), kim);
  json_decref(items);
  ck_assert_int_eq(found(&f, "question"), 2);
  ck_assert_int_eq(found(&f, "lou"), 0); /* the name kept is kim's */
  fx_close(&f);
}
END_TEST

START_TEST(a_restart_keeps_the_watermark_and_the_index) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "the blue teapot");
  ck_assert_int_eq(found(&f, "teapot"), 1);
  int64_t w = watermark(&f);
  ck_assert_int_gt(w, 0);
  fx_reopen(&f);
  tune(&f, 2000, 16, -1);
  ck_assert_int_eq(watermark(&f), w);
  store_stats a, b;
  store_get_stats(f.st, &a);
  ck_assert_int_eq(found(&f, "TEAPOT"), 1);
  store_get_stats(f.st, &b);
  ck_assert_int_eq(b.requests - a.requests, 1); /* one catch-up, which found nothing to do */
  ck_assert_int_eq(index_rows(&f, "tea"), 1);
  fx_close(&f);
}
END_TEST

START_TEST(catch_up_runs_in_chunks_of_their_own_requests) {
  fx f;
  fx_open(&f);
  tune(&f, 3, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  char ext[16], who[16];
  for (int i = 0; i < 10; i++) {
    snprintf(ext, sizeof(ext), "e%d", i);
    snprintf(who, sizeof(who), "k%d", i);
    fx_in(&f, "demo", ext, who, i == 9 ? "the last kettle" : "a kettle");
  }
  store_stats a, b;
  store_get_stats(f.st, &a);
  ck_assert_int_eq(found(&f, "kettle"), 10);
  store_get_stats(f.st, &b);
  ck_assert_int_eq(b.requests - a.requests, 4); /* 3 + 3 + 3 + 1 */
  ck_assert_int_eq(b.transactions - a.transactions, 4);
  ck_assert_int_eq(watermark(&f), newest(&f));
  ck_assert_int_eq(index_rows(&f, "ket"), 10);
  /* A search's catch-up is bounded; the rest is scanned, still exact. */
  for (int i = 10; i < 30; i++) {
    snprintf(ext, sizeof(ext), "e%d", i);
    fx_in(&f, "demo", ext, "k1", "a kettle");
  }
  tune(&f, 3, 2, -1);
  int64_t w = watermark(&f);
  ck_assert_int_eq(found(&f, "last kettle"), 1);
  ck_assert_int_eq(found(&f, "kettle"), 10);
  ck_assert_int_lt(watermark(&f), newest(&f));
  ck_assert_int_eq(index_rows(&f, "ket"), 10 + 2 * 2 * 3); /* two searches, two chunks each */
  ck_assert_int_gt(watermark(&f), w);
  fx_close(&f);
}
END_TEST

/* While messages come in, a search scans what the index lacks and asks the
 * writer for nothing: the webhooks' commits never wait behind a catch-up. */
START_TEST(a_search_while_messages_come_in_asks_the_writer_for_nothing) {
  fx f;
  fx_open(&f);
  tune(&f, 3, 16, -1);
  f.st->index_busy_ms = 60000;
  fx_channel(&f, "{\"name\":\"demo\"}");
  char ext[16], who[16];
  for (int i = 0; i < 10; i++) {
    snprintf(ext, sizeof(ext), "e%d", i);
    snprintf(who, sizeof(who), "k%d", i);
    fx_in(&f, "demo", ext, who, "a kettle");
  }
  store_stats a, b;
  store_get_stats(f.st, &a);
  ck_assert_int_eq(found(&f, "kettle"), 10); /* all scanned */
  store_get_stats(f.st, &b);
  ck_assert_int_eq(b.requests - a.requests, 0);
  ck_assert_int_eq(index_rows(&f, "ket"), 0);
  ck_assert_int_lt(watermark(&f), newest(&f));
  f.st->index_busy_ms = 0; /* a quiet minute later: the search catches up first */
  ck_assert_int_eq(found(&f, "kettle"), 10);
  ck_assert_int_eq(watermark(&f), newest(&f));
  fx_close(&f);
}
END_TEST

/* Runs the loop until the watermark reaches the newest message, or ms pass. */
static int caught_up_within(fx *f, int ms) {
  for (int waited = 0; waited < ms; waited += 10) {
    if (watermark(f) == newest(f)) return 1;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
  return watermark(f) == newest(f);
}

START_TEST(an_idle_writer_catches_up_by_itself_and_a_busy_one_does_not) {
  fx f;
  fx_open(&f);
  tune(&f, 4, 16, 300);
  fx_channel(&f, "{\"name\":\"demo\"}");
  char ext[16];
  /* a message every 100 ms: never 300 ms without a request */
  for (int i = 0; i < 8; i++) {
    snprintf(ext, sizeof(ext), "e%d", i);
    fx_in(&f, "demo", ext, "kim", "kettle");
    ck_assert_int_eq(watermark(&f), 0);
    usleep(100000);
  }
  ck_assert(caught_up_within(&f, 10000)); /* in two chunks, once idle */
  ck_assert_int_eq(index_rows(&f, "ket"), 8);
  fx_close(&f);
}
END_TEST

START_TEST(a_schema_12_database_migrates_to_an_empty_index_and_fills_it) {
  fx f;
  fx_open(&f);
  tune(&f, 2000, 16, -1);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "e1", "kim", "old invoice");
  fx_close_store(&f);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, FX_BACK_TO_SCHEMA_13 "DROP TABLE search_index;"
                                    "DELETE FROM meta WHERE key = 'search_indexed'; PRAGMA user_version = 12;",
                                    NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  tune(&f, 2000, 16, -1);
  ck_assert_int_eq(fx_db_count(&f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  ck_assert_int_eq(watermark(&f), 0);
  ck_assert_int_eq(found(&f, "invoice"), 1);
  ck_assert_int_eq(watermark(&f), newest(&f));
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store_index");
  TCase *tc = tcase_create("store_index");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, a_search_finds_indexed_messages_and_those_above_the_watermark);
  tcase_add_test(tc, the_index_ignores_case_as_the_scan_does_in_every_script);
  tcase_add_test(tc, terms_of_one_or_two_characters_are_still_found);
  tcase_add_test(tc, deleting_a_channels_history_takes_its_hits_from_the_index);
  tcase_add_test(tc, a_merged_contacts_messages_are_found_under_the_contact_kept);
  tcase_add_test(tc, a_restart_keeps_the_watermark_and_the_index);
  tcase_add_test(tc, catch_up_runs_in_chunks_of_their_own_requests);
  tcase_add_test(tc, a_search_while_messages_come_in_asks_the_writer_for_nothing);
  tcase_add_test(tc, an_idle_writer_catches_up_by_itself_and_a_busy_one_does_not);
  tcase_add_test(tc, a_schema_12_database_migrates_to_an_empty_index_and_fills_it);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
