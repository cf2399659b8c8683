/* test_store_labels.c — core/store_sqlite_label.c and the labels of a
 * conversation: one label whatever the case, a conversation's set replaced,
 * added to and taken from, the list's ?label= filter, and labels going with
 * a deleted label, an erased contact and a deleted channel history. */
#include <errno.h>
#include <sqlite3.h>

#include "store.h"
#include "store_fixture.h"

/* Runs a store call that answers JSON; returns its status (the result is
 * w->result, the caller's to drop; the error is w->err). */
static int call_status(fx *f, int rc, fx_wait_t *w) {
  fx_run(f, rc, w);
  return w->status;
}

static int label_create(fx *f, const char *json) {
  json_t *o = fx_load(json);
  fx_wait_t w = {0};
  int status = call_status(f, store_label_create(f->st, o, fx_json_cb, &w), &w);
  json_decref(w.result);
  json_decref(o);
  return status;
}

static int label_patch(fx *f, const char *name, const char *json, fx_wait_t *w) {
  json_t *o = fx_load(json);
  int status = call_status(f, store_label_patch(f->st, name, o, fx_json_cb, w), w);
  json_decref(o);
  return status;
}

/* Adds and removes labels (JSON arrays, or NULL) on thread; returns the status. */
static int relabel(fx *f, int64_t thread, const char *add, const char *remove, fx_wait_t *w) {
  json_t *a = add != NULL ? fx_load(add) : NULL, *r = remove != NULL ? fx_load(remove) : NULL;
  int status = call_status(f, store_conversation_labels(f->st, thread, a, r, fx_json_cb, w), w);
  json_decref(a);
  json_decref(r);
  return status;
}

static int conversation_patch(fx *f, int64_t thread, const char *json, fx_wait_t *w) {
  json_t *o = fx_load(json);
  int status = call_status(f, store_conversation_patch(f->st, thread, o, fx_json_cb, w), w);
  json_decref(o);
  return status;
}

/* A JSON array of strings as "a,b,c", into a static buffer. */
static const char *joined(const json_t *names) {
  static char buf[512];
  size_t i, n = 0;
  json_t *v;
  buf[0] = '\0';
  json_array_foreach(names, i, v) n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", json_string_value(v));
  return buf;
}

/* The labels of the conversation holding thread, as "a,b". */
static const char *labels_of(fx *f, int64_t thread) {
  json_t *c = fx_thread(f, thread);
  const char *s = joined(json_object_get(c, "labels"));
  json_decref(c);
  return s;
}

/* The ids of a conversations list (filter JSON), as "3,2,1". */
static const char *ids_of(fx *f, const char *filter) {
  static char buf[256];
  json_t *l = fx_list(f, filter);
  size_t i, n = 0;
  json_t *c;
  buf[0] = '\0';
  json_array_foreach(json_object_get(l, "items"), i, c)
      n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%lld", i ? "," : "", (long long)fx_int(c, "id"));
  json_decref(l);
  return buf;
}

/* The conversation thread a new contact's first message opened. */
static int64_t new_thread(fx *f, const char *channel, const char *ext, const char *sender) {
  fx_in(f, channel, ext, sender, "hello");
  char filter[128];
  snprintf(filter, sizeof(filter), "{\"channel\":\"%s\",\"limit\":1}", channel);
  json_t *l = fx_list(f, filter);
  int64_t id = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  return id;
}

/* The stored events of a type, oldest first (a new reference). */
static json_t *events_of(fx *f, const char *type) {
  fx_wait_t w = {0};
  json_t *all = fx_ok(f, store_events_after(f->st, 0, NULL, NULL, 0, fx_json_cb, &w), &w);
  json_t *out = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(all, i, e) if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0)
      json_array_append(out, e);
  json_decref(all);
  return out;
}

static json_t *labels_list(fx *f) {
  fx_wait_t w = {0};
  return fx_ok(f, store_labels_list(f->st, fx_json_cb, &w), &w);
}

START_TEST(a_label_is_one_whatever_the_case_of_its_name) {
  fx f;
  fx_open(&f);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"Billing\",\"color\":\"#aa0000\",\"description\":\"money\"}"), 0);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"billing\"}"), -EEXIST);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"Été\"}"), 0);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"ÉTÉ\"}"), -EEXIST); /* in every script, as the search */
  ck_assert_int_eq(label_create(&f, "{\"name\":\"apple\"}"), 0);
  json_t *l = labels_list(&f);
  json_t *items = json_object_get(l, "items"), *names = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(items, i, v) json_array_append(names, json_object_get(v, "name"));
  ck_assert_str_eq(joined(names), "apple,Billing,Été"); /* by name, without regard to case, as first written */
  json_decref(names);
  json_t *billing = json_array_get(items, 1);
  ck_assert_str_eq(json_string_value(json_object_get(billing, "color")), "#aa0000");
  ck_assert_str_eq(json_string_value(json_object_get(billing, "description")), "money");
  ck_assert_int_eq(fx_int(billing, "conversations"), 0);
  ck_assert(json_is_null(json_object_get(json_array_get(items, 0), "color")));
  ck_assert(json_is_null(json_object_get(l, "next_cursor")));
  json_decref(l);

  /* found by any case; a key left out keeps its field, null clears it */
  fx_wait_t w = {0};
  ck_assert_int_eq(label_patch(&f, "BILLING", "{\"color\":null}", &w), 0);
  ck_assert_str_eq(json_string_value(json_object_get(w.result, "name")), "Billing");
  ck_assert(json_is_null(json_object_get(w.result, "color")));
  ck_assert_str_eq(json_string_value(json_object_get(w.result, "description")), "money");
  json_decref(w.result);
  fx_wait_t taken = {0};
  ck_assert_int_eq(label_patch(&f, "billing", "{\"name\":\"APPLE\"}", &taken), -EEXIST);
  fx_wait_t recase = {0};
  ck_assert_int_eq(label_patch(&f, "billing", "{\"name\":\"BILLING\"}", &recase), 0);
  json_decref(recase.result);
  fx_wait_t missing = {0};
  ck_assert_int_eq(label_patch(&f, "nope", "{\"color\":\"#000000\"}", &missing), -ENOENT);
  ck_assert_ptr_nonnull(strstr(missing.err, "label \"nope\" does not exist"));
  fx_wait_t unchanged = {0};
  ck_assert_int_eq(label_patch(&f, "billing", "{}", &unchanged), 0); /* answers the label, announces nothing */
  ck_assert_str_eq(json_string_value(json_object_get(unchanged.result, "name")), "BILLING");
  json_decref(unchanged.result);
  fx_wait_t unchanged_missing = {0};
  ck_assert_int_eq(label_patch(&f, "nope", "{}", &unchanged_missing), -ENOENT);
  json_t *ev = events_of(&f, "label.updated");
  ck_assert_int_eq(json_array_size(ev), 5); /* three created, two changed */
  json_t *last = json_object_get(json_array_get(ev, 4), "data");
  ck_assert_str_eq(json_string_value(json_object_get(last, "name")), "BILLING");
  /* the name it had, not the path's spelling */
  ck_assert_str_eq(json_string_value(json_object_get(last, "previous_name")), "Billing");
  json_decref(ev);
  fx_close(&f);
}
END_TEST

START_TEST(a_conversations_labels_are_replaced_added_and_removed) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  int64_t t = new_thread(&f, "demo", "e1", "kim");
  ck_assert_int_eq(label_create(&f, "{\"name\":\"vip\"}"), 0);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"Billing\"}"), 0);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"urgent\"}"), 0);
  ck_assert_str_eq(labels_of(&f, t), "");

  fx_wait_t w = {0};
  ck_assert_int_eq(conversation_patch(&f, t, "{\"labels\":[\"vip\",\"billing\",\"VIP\"]}", &w), 0);
  ck_assert_str_eq(joined(json_object_get(w.result, "labels")), "Billing,vip"); /* the answer is the list's row */
  json_decref(w.result);
  json_t *l = fx_list(&f, "{}");
  ck_assert_str_eq(joined(json_object_get(json_array_get(json_object_get(l, "items"), 0), "labels")), "Billing,vip");
  json_decref(l);

  /* one agent adds urgent while another takes vip off: both changes stand */
  fx_wait_t a = {0}, b = {0};
  ck_assert_int_eq(relabel(&f, t, "[\"urgent\"]", NULL, &a), 0);
  ck_assert_int_eq(relabel(&f, t, NULL, "[\"vip\"]", &b), 0);
  json_decref(a.result);
  json_decref(b.result);
  ck_assert_str_eq(labels_of(&f, t), "Billing,urgent");

  /* an unknown label changes nothing, the assignee given with it included */
  fx_wait_t bad = {0};
  ck_assert_int_eq(conversation_patch(&f, t, "{\"assignee\":\"ana\",\"labels\":[\"vip\",\"nope\"]}", &bad), -EINVAL);
  ck_assert_ptr_nonnull(strstr(bad.err, "label \"nope\" does not exist (labels)"));
  fx_wait_t bad2 = {0};
  ck_assert_int_eq(relabel(&f, t, "[\"vip\"]", "[\"gone\"]", &bad2), -EINVAL);
  ck_assert_ptr_nonnull(strstr(bad2.err, "label \"gone\" does not exist (labels)"));
  fx_wait_t both = {0};
  ck_assert_int_eq(relabel(&f, t, "[\"vip\"]", "[\"VIP\"]", &both), -EINVAL);
  ck_assert_ptr_nonnull(strstr(both.err, "is both added and removed (labels)"));
  json_t *c = fx_thread(&f, t);
  ck_assert(json_is_null(json_object_get(c, "assignee")));
  ck_assert_str_eq(joined(json_object_get(c, "labels")), "Billing,urgent");
  json_decref(c);
  fx_wait_t none = {0};
  ck_assert_int_eq(relabel(&f, 4242, "[\"vip\"]", NULL, &none), -ENOENT);

  /* a change that changes nothing is no event */
  fx_wait_t same = {0};
  ck_assert_int_eq(relabel(&f, t, "[\"urgent\"]", "[]", &same), 0);
  json_decref(same.result);
  json_t *ev = events_of(&f, "thread.labels");
  ck_assert_int_eq(json_array_size(ev), 3);
  json_t *e = json_array_get(ev, 2);
  ck_assert_str_eq(json_string_value(json_object_get(e, "channel")), "demo");
  ck_assert_str_eq(json_string_value(json_object_get(e, "inbox")), "Support");
  ck_assert_int_eq(fx_int(json_object_get(e, "data"), "thread_id"), t);
  ck_assert_str_eq(joined(json_object_get(json_object_get(e, "data"), "labels")), "Billing,urgent");
  json_decref(ev);

  fx_wait_t clear = {0};
  ck_assert_int_eq(conversation_patch(&f, t, "{\"labels\":[]}", &clear), 0);
  json_decref(clear.result);
  ck_assert_str_eq(labels_of(&f, t), "");
  fx_close(&f);
}
END_TEST

START_TEST(the_list_filters_by_label_with_the_other_filters_and_pages) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_channel(&f, "{\"name\":\"web\",\"inbox\":\"Sales\"}");
  ck_assert_int_eq(label_create(&f, "{\"name\":\"Refund\"}"), 0);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"other\"}"), 0);
  int64_t t1 = new_thread(&f, "demo", "e1", "kim");
  int64_t t2 = new_thread(&f, "web", "e2", "lou");
  int64_t t3 = new_thread(&f, "demo", "e3", "max");
  int64_t t4 = new_thread(&f, "demo", "e4", "ned");
  fx_wait_t w = {0};
  int64_t tagged[] = {t1, t2, t4};
  for (size_t i = 0; i < 3; i++) {
    ck_assert_int_eq(relabel(&f, tagged[i], "[\"refund\"]", NULL, &w), 0);
    json_decref(w.result);
    memset(&w, 0, sizeof(w));
  }
  ck_assert_int_eq(relabel(&f, t3, "[\"other\"]", NULL, &w), 0);
  json_decref(w.result);
  char want[64];
  snprintf(want, sizeof(want), "%lld,%lld,%lld", (long long)t4, (long long)t2, (long long)t1);
  ck_assert_str_eq(ids_of(&f, "{\"label\":\"REFUND\"}"), want);
  snprintf(want, sizeof(want), "%lld,%lld", (long long)t4, (long long)t1);
  ck_assert_str_eq(ids_of(&f, "{\"label\":\"refund\",\"channel\":\"demo\"}"), want);
  snprintf(want, sizeof(want), "%lld", (long long)t2);
  ck_assert_str_eq(ids_of(&f, "{\"label\":\"refund\",\"inbox\":\"Sales\"}"), want);
  ck_assert_str_eq(ids_of(&f, "{\"label\":\"refund\",\"q\":\"max\"}"), "");
  ck_assert_str_eq(ids_of(&f, "{\"label\":\"no such label\"}"), ""); /* not an error */
  /* pages: two, then the rest after the cursor */
  json_t *p = fx_list(&f, "{\"label\":\"refund\",\"limit\":2}");
  ck_assert_int_eq(json_array_size(json_object_get(p, "items")), 2);
  char filter[128];
  snprintf(filter, sizeof(filter), "{\"label\":\"refund\",\"limit\":2,\"cursor\":\"%s\"}",
           json_string_value(json_object_get(p, "next_cursor")));
  json_decref(p);
  snprintf(want, sizeof(want), "%lld", (long long)t1);
  ck_assert_str_eq(ids_of(&f, filter), want);
  json_t *l = labels_list(&f);
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(l, "items"), 0), "conversations"), 1); /* other */
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(l, "items"), 1), "conversations"), 3); /* Refund */
  json_decref(l);
  fx_close(&f);
}
END_TEST

START_TEST(deleting_a_label_takes_it_off_every_conversation) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  ck_assert_int_eq(label_create(&f, "{\"name\":\"spam\"}"), 0);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"keep\"}"), 0);
  int64_t t1 = new_thread(&f, "demo", "e1", "kim"), t2 = new_thread(&f, "demo", "e2", "lou");
  fx_wait_t w1 = {0}, w2 = {0};
  ck_assert_int_eq(relabel(&f, t1, "[\"spam\",\"keep\"]", NULL, &w1), 0);
  ck_assert_int_eq(relabel(&f, t2, "[\"spam\"]", NULL, &w2), 0);
  json_decref(w1.result);
  json_decref(w2.result);
  fx_wait_t d = {0};
  json_t *r = fx_ok(&f, store_label_delete(f.st, "SPAM", fx_json_cb, &d), &d);
  ck_assert_str_eq(json_string_value(json_object_get(r, "deleted")), "spam");
  ck_assert_int_eq(fx_int(r, "conversations"), 2);
  json_decref(r);
  ck_assert_str_eq(labels_of(&f, t1), "keep");
  ck_assert_str_eq(labels_of(&f, t2), "");
  fx_wait_t again = {0};
  ck_assert_int_eq(call_status(&f, store_label_delete(f.st, "spam", fx_json_cb, &again), &again), -ENOENT);
  /* a new label of the same name starts on no conversation */
  ck_assert_int_eq(label_create(&f, "{\"name\":\"spam\"}"), 0);
  ck_assert_str_eq(ids_of(&f, "{\"label\":\"spam\"}"), "");
  json_t *ev = events_of(&f, "label.deleted");
  ck_assert_int_eq(json_array_size(ev), 1);
  ck_assert_int_eq(fx_int(json_object_get(json_array_get(ev, 0), "data"), "conversations"), 2);
  json_decref(ev);
  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM thread_labels"), 1);
  fx_open_store(&f);
  fx_close(&f);
}
END_TEST

/* Erasing a contact and deleting a channel's history take their
 * conversations' labels (the labels stay); a merge keeps them, and an
 * export shows them. */
START_TEST(labels_go_with_an_erased_contact_and_a_deleted_history) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_channel(&f, "{\"name\":\"web\"}");
  ck_assert_int_eq(label_create(&f, "{\"name\":\"vip\"}"), 0);
  int64_t kim = new_thread(&f, "demo", "e1", "kim"), lou = new_thread(&f, "demo", "e2", "lou");
  int64_t lou_web = new_thread(&f, "web", "e3", "lou2"), ned = new_thread(&f, "web", "e4", "ned");
  int64_t all[] = {kim, lou, lou_web, ned};
  for (size_t i = 0; i < 4; i++) {
    fx_wait_t w = {0};
    ck_assert_int_eq(relabel(&f, all[i], "[\"vip\"]", NULL, &w), 0);
    json_decref(w.result);
  }
  json_t *c = fx_thread(&f, lou), *c2 = fx_thread(&f, lou_web);
  int64_t lou_id = fx_int(json_object_get(c, "contact"), "id");
  int64_t lou2_id = fx_int(json_object_get(c2, "contact"), "id");
  json_decref(c);
  json_decref(c2);
  fx_wait_t m = {0};
  json_decref(fx_ok(&f, store_contact_merge(f.st, lou_id, lou2_id, fx_json_cb, &m), &m));
  ck_assert_str_eq(labels_of(&f, lou_web), "vip");
  fx_wait_t x = {0};
  json_t *ex = fx_ok(&f, store_contact_export(f.st, lou_id, fx_json_cb, &x), &x);
  json_t *convs = json_object_get(ex, "conversations");
  ck_assert_int_eq(json_array_size(convs), 2);
  ck_assert_str_eq(joined(json_object_get(json_array_get(convs, 0), "labels")), "vip");
  ck_assert_str_eq(joined(json_object_get(json_array_get(convs, 1), "labels")), "vip");
  json_decref(ex);

  fx_wait_t d = {0};
  json_decref(fx_ok(&f, store_contact_delete(f.st, lou_id, fx_json_cb, &d), &d));
  fx_close_store(&f);
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM thread_labels WHERE thread_id IN (%lld, %lld)", (long long)lou,
           (long long)lou_web);
  ck_assert_int_eq(fx_db_count(&f, sql), 0);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM thread_labels"), 2);
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_channel(&f, "{\"name\":\"web\"}");
  fx_wait_t h = {0};
  json_decref(fx_ok(&f, store_channel_history_delete(f.st, "web", fx_json_cb, &h), &h));
  ck_assert_str_eq(labels_of(&f, kim), "vip");
  json_t *l = labels_list(&f);
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(l, "items"), 0), "conversations"), 1);
  json_decref(l);
  fx_close_store(&f);
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM thread_labels WHERE thread_id = %lld", (long long)kim);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM thread_labels"), fx_db_count(&f, sql));
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM labels"), 1);
  fx_open_store(&f);
  fx_close(&f);
}
END_TEST

/* Migration 16 brings a schema 15 database its labels. */
START_TEST(a_schema_15_database_gets_labels) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  int64_t t = new_thread(&f, "demo", "e1", "kim");
  fx_close_store(&f);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, FX_BACK_TO_SCHEMA_15 "PRAGMA user_version = 15;", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  fx_channel(&f, "{\"name\":\"demo\"}");
  ck_assert_str_eq(labels_of(&f, t), "");
  ck_assert_int_eq(label_create(&f, "{\"name\":\"vip\"}"), 0);
  fx_wait_t w = {0};
  ck_assert_int_eq(relabel(&f, t, "[\"vip\"]", NULL, &w), 0);
  json_decref(w.result);
  ck_assert_str_eq(labels_of(&f, t), "vip");
  fx_close(&f);
}
END_TEST

/* Migration 27 folds the labels' names again: a word-final sigma is now a
 * sigma, so a label named with one is found by its name in capitals. */
START_TEST(migration_27_folds_label_names_again) {
  fx f;
  fx_open(&f);
  ck_assert_int_eq(label_create(&f, "{\"name\":\"\xce\xbb\xcf\x8c\xce\xb3\xce\xbf\xcf\x82\"}"), 0); /* λόγος */
  fx_close_store(&f);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  /* as schema 26 folded it: the final sigma kept */
  ck_assert_int_eq(sqlite3_exec(db, "UPDATE labels SET folded = '\xce\xbb\xcf\x8c\xce\xb3\xce\xbf\xcf\x82';"
                                    "PRAGMA user_version = 26;", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM labels WHERE folded = '\xce\xbb\xcf\x8c\xce\xb3\xce\xbf\xcf\x83'"),
                   1); /* λόγοσ */
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store_labels");
  TCase *tc = tcase_create("store_labels");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, a_label_is_one_whatever_the_case_of_its_name);
  tcase_add_test(tc, a_conversations_labels_are_replaced_added_and_removed);
  tcase_add_test(tc, the_list_filters_by_label_with_the_other_filters_and_pages);
  tcase_add_test(tc, deleting_a_label_takes_it_off_every_conversation);
  tcase_add_test(tc, labels_go_with_an_erased_contact_and_a_deleted_history);
  tcase_add_test(tc, a_schema_15_database_gets_labels);
  tcase_add_test(tc, migration_27_folds_label_names_again);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
