/* test_events.c — core/events.c and persisted events: order, ids, delivery
 * after commit, resumption after an id (Last-Event-ID) across restarts. */
#include "events.h"
#include "store_fixture.h"

typedef struct seen {
  int n;
  int64_t ids[64];
  char types[64][32];
  int token;
  events_bus *bus;
} seen;

static void record(void *arg, const events_event *ev) {
  seen *s = arg;
  if (s->n < 64) {
    s->ids[s->n] = ev->id;
    snprintf(s->types[s->n], sizeof(s->types[0]), "%s", ev->type);
  }
  s->n++;
}

static void record_and_leave(void *arg, const events_event *ev) {
  seen *s = arg;
  record(arg, ev);
  events_unsubscribe(s->bus, s->token);
}

START_TEST(bus_delivers_in_subscription_order_and_unsubscribes) {
  events_bus *bus = events_bus_new();
  seen a = {0}, b = {0};
  b.bus = bus;
  int ta = events_subscribe(bus, record, &a);
  b.token = events_subscribe(bus, record_and_leave, &b);
  ck_assert_int_gt(ta, 0);
  events_event ev = {.id = 1, .type = "message.in"};
  events_publish(bus, &ev);
  ev.id = 2;
  events_publish(bus, &ev);
  ck_assert_int_eq(a.n, 2);
  ck_assert_int_eq(b.n, 1);
  ck_assert_int_eq(events_unsubscribe(bus, ta), 0);
  ck_assert_int_eq(events_unsubscribe(bus, ta), -ENOENT);
  events_publish(bus, &ev);
  ck_assert_int_eq(a.n, 2);
  json_t *j = events_to_json(&ev);
  ck_assert_int_eq(fx_int(j, "id"), 2);
  ck_assert(json_is_null(json_object_get(j, "channel")));
  json_decref(j);
  events_bus_free(bus);
}
END_TEST

START_TEST(typed_subscribers_see_only_their_type) {
  events_bus *bus = events_bus_new();
  seen outs = {0}, all = {0};
  ck_assert(!events_wants(bus, "message.in"));
  int t = events_subscribe_type(bus, "message.out", record, &outs);
  ck_assert_int_gt(t, 0);
  ck_assert(events_wants(bus, "message.out"));
  ck_assert(!events_wants(bus, "message.in"));
  events_event in = {.id = 1, .type = "message.in"}, out = {.id = 2, .type = "message.out"};
  events_publish(bus, &in);
  events_publish(bus, &out);
  ck_assert_int_eq(outs.n, 1);
  ck_assert_int_eq(outs.ids[0], 2);
  events_subscribe(bus, record, &all);
  ck_assert(events_wants(bus, "message.in"));
  events_publish(bus, &in);
  ck_assert_int_eq(all.n, 1);
  ck_assert_int_eq(outs.n, 1);
  ck_assert_int_eq(events_unsubscribe(bus, t), 0);
  events_publish(bus, &out);
  ck_assert_int_eq(outs.n, 1); /* gone */
  ck_assert_int_eq(all.n, 2);
  events_bus_free(bus);
}
END_TEST

START_TEST(inbound_publishes_events_after_commit_with_increasing_ids) {
  fx f;
  fx_open(&f);
  seen s = {0};
  events_subscribe(store_events(f.st), record, &s);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_wait_t w = fx_in(&f, "demo", "e1", "kim", "hello");
  ck_assert_int_eq(w.status, 0);
  int found = 0;
  for (int i = 0; i < s.n; i++) {
    if (i > 0) ck_assert_int_gt(s.ids[i], s.ids[i - 1]);
    if (strcmp(s.types[i], "message.in") == 0) found = 1;
  }
  ck_assert(found);
  fx_close(&f);
}
END_TEST

START_TEST(events_after_resumes_across_restart_and_filters) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_channel(&f, "{\"name\":\"chat\",\"inbox\":\"Sales\"}");
  fx_in(&f, "demo", "e1", "kim", "one");
  fx_wait_t w0 = {0};
  json_t *all = fx_ok(&f, store_events_after(f.st, 0, NULL, NULL, 0, fx_json_cb, &w0), &w0);
  int64_t last = fx_int(json_array_get(all, json_array_size(all) - 1), "id");
  json_decref(all);
  fx_reopen(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_channel(&f, "{\"name\":\"chat\",\"inbox\":\"Sales\"}");
  fx_in(&f, "demo", "e2", "kim", "two");
  fx_in(&f, "chat", "c1", "zed", "three");
  fx_wait_t w1 = {0};
  json_t *after = fx_ok(&f, store_events_after(f.st, last, NULL, NULL, 0, fx_json_cb, &w1), &w1);
  ck_assert_int_gt(json_array_size(after), 0);
  ck_assert_int_gt(fx_int(json_array_get(after, 0), "id"), last);
  json_decref(after);
  fx_wait_t w2 = {0};
  json_t *sales = fx_ok(&f, store_events_after(f.st, last, NULL, "Sales", 0, fx_json_cb, &w2), &w2);
  size_t i;
  json_t *e;
  int msg = 0;
  json_array_foreach(sales, i, e) {
    ck_assert_str_eq(json_string_value(json_object_get(e, "inbox")), "Sales");
    if (strcmp(json_string_value(json_object_get(e, "type")), "message.in") == 0) {
      msg = 1;
      ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "data"), "preview")), "three");
    }
  }
  ck_assert(msg);
  json_decref(sales);
  fx_wait_t w3 = {0};
  json_t *demo = fx_ok(&f, store_events_after(f.st, 0, "demo", NULL, 2, fx_json_cb, &w3), &w3);
  ck_assert_int_eq(json_array_size(demo), 2);
  json_decref(demo);
  fx_close(&f);
}
END_TEST

START_TEST(failed_request_publishes_nothing) {
  fx f;
  fx_open(&f);
  seen s = {0};
  events_subscribe(store_events(f.st), record, &s);
  fx_wait_t w = fx_in(&f, "nochannel", "e1", "kim", "x");
  ck_assert_int_lt(w.status, 0);
  ck_assert_int_eq(s.n, 0);
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("events");
  TCase *tc = tcase_create("events");
  tcase_add_test(tc, bus_delivers_in_subscription_order_and_unsubscribes);
  tcase_add_test(tc, typed_subscribers_see_only_their_type);
  tcase_add_test(tc, inbound_publishes_events_after_commit_with_increasing_ids);
  tcase_add_test(tc, events_after_resumes_across_restart_and_filters);
  tcase_add_test(tc, failed_request_publishes_nothing);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
