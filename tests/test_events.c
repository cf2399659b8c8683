/* test_events.c — core/events.c and persisted events: order, ids, delivery
 * after commit, resumption after an id (Last-Event-ID) across restarts. */
#include <sqlite3.h>

#include "events.h"
#include "store_fixture.h"
#include "webhooks.h"

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

static void keep_json(void *arg, const events_event *ev) {
  json_array_append_new((json_t *)arg, events_to_json(ev));
}

static void fx_echo(fx *f, const char *ext, const char *sender, const char *text) {
  router_inbound in = {.channel = "demo", .external_id = ext, .text = text, .flags = ROUTER_IN_ECHO};
  in.sender.kind = "custom";
  in.sender.id = sender;
  ck_assert_int_eq(fx_submit(f, &in).status, 0);
}

/* A message is its own event (schema 8): its message.in / message.out has
 * the message's id, no events row, and reads back from the message exactly
 * as it was published, in one id order with the other events. */
START_TEST(message_events_read_back_exactly_as_published) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\","
                 "\"auto_replies\":{\"instant_reply\":\"Thanks, we got it.\"}}");
  json_t *live = json_array();
  events_subscribe(store_events(f.st), keep_json, live);
  fx_wait_t a = fx_in(&f, "demo", "e1", "kim", "hello \"there\" \xc3\xa9");
  fx_in(&f, "demo", "e2", "kim", "second");
  fx_echo(&f, "e3", "kim", "sent from the phone app");
  router_reply rep = {.thread_id = 0, .text = "an agent's answer"};
  fx_wait_t th = {0};
  json_t *conv = fx_ok(&f, store_conversations_list(f.st, NULL, fx_json_cb, &th), &th);
  rep.thread_id = fx_int(json_array_get(json_object_get(conv, "items"), 0), "id");
  json_decref(conv);
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &rep, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, 0);
  fx_in(&f, "demo", "e1", "kim", "a redelivery publishes nothing");
  /* a preview's quotes, backslashes and control bytes are escaped */
  const char *odd = "say \"hi\" \\ to\n\tall\x01 ok";
  fx_wait_t ow = fx_in(&f, "demo", "e5", "kim", odd);
  /* a preview is cut at 200 bytes, never inside a UTF-8 sequence: here an
   * é would straddle the cut, so 199 bytes remain */
  char longer[400];
  memset(longer, 'a', 199);
  snprintf(longer + 199, sizeof(longer) - 199, "\xc3\xa9 and then some \"quoted\" text");
  fx_wait_t lw = fx_in(&f, "demo", "e4", "kim", longer);

  /* what was published: the new conversation's ticket, messages in, the
   * instant reply, the echo and the agent's reply, ids only increasing */
  int types = 0, odd_seen = 0;
  size_t i;
  json_t *e;
  json_array_foreach(live, i, e) {
    const char *type = json_string_value(json_object_get(e, "type"));
    if (i > 0) ck_assert_int_gt(fx_int(e, "id"), fx_int(json_array_get(live, i - 1), "id"));
    if (strcmp(type, "message.in") == 0) types |= 1;
    if (strcmp(type, "message.out") == 0) types |= 2;
    if (strcmp(type, "ticket.created") == 0) types |= 4;
    if (strcmp(type, "message.in") == 0 && fx_int(json_object_get(e, "data"), "message_id") == ow.id) {
      ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "data"), "preview")), odd);
      odd_seen++;
    }
    if (strcmp(type, "message.in") == 0 && fx_int(e, "id") == a.id) {
      json_t *d = json_object_get(e, "data");
      ck_assert_int_eq(fx_int(d, "message_id"), a.id);
      ck_assert(json_is_true(json_object_get(d, "new_contact")));
      ck_assert(json_is_true(json_object_get(d, "new_thread")));
    }
  }
  ck_assert_int_eq(types, 7);
  ck_assert_int_eq(odd_seen, 1);

  json_t *last = json_array_get(live, json_array_size(live) - 1);
  ck_assert_int_eq(fx_int(last, "id"), lw.id);
  ck_assert_uint_eq(strlen(json_string_value(json_object_get(json_object_get(last, "data"), "preview"))), 199);

  /* read back, all of it and from the middle: the same events */
  fx_wait_t w0 = {0};
  json_t *all = fx_ok(&f, store_events_after(f.st, 0, NULL, NULL, 0, fx_json_cb, &w0), &w0);
  ck_assert_msg(json_equal(all, live), "read back %s\npublished %s", json_dumps(all, 0), json_dumps(live, 0));
  json_decref(all);
  int64_t mid = fx_int(json_array_get(live, 2), "id");
  fx_wait_t w1 = {0};
  json_t *rest = fx_ok(&f, store_events_after(f.st, mid, NULL, "Support", 2, fx_json_cb, &w1), &w1);
  ck_assert_int_eq(json_array_size(rest), 2);
  ck_assert(json_equal(json_array_get(rest, 0), json_array_get(live, 3)));
  ck_assert(json_equal(json_array_get(rest, 1), json_array_get(live, 4)));
  json_decref(rest);
  fx_wait_t w2 = {0};
  json_t *none = fx_ok(&f, store_events_after(f.st, 0, NULL, "Sales", 0, fx_json_cb, &w2), &w2);
  ck_assert_int_eq(json_array_size(none), 0);
  json_decref(none);

  fx_close_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM events WHERE type IN ('message.in', 'message.out')"), 0);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM events e JOIN messages m ON m.id = e.id"), 0);
  json_decref(live);
  fx_close(&f);
}
END_TEST

/* A database from before schema 8 keeps its message events as rows; after
 * the upgrade they read back once, followed by the new ones, in order. */
START_TEST(message_events_of_a_schema_7_database_survive_the_upgrade) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_close_store(&f);
  /* make it look like schema 7 with two messages and their event rows,
   * ids counted separately as they were then */
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db,
      FX_BEFORE_SCHEMA_10 "DROP TABLE meta; PRAGMA user_version = 7;"
      "INSERT INTO contacts(id, name) VALUES(1, 'kim');"
      "INSERT INTO identities(channel, kind, value, contact_id) VALUES('demo', 'custom', 'kim', 1);"
      "INSERT INTO threads(id, channel, inbox, contact_id) VALUES(1, 'demo', 'Support', 1);"
      "INSERT INTO messages(id, thread_id, channel, direction, external_id, contact_id, text, status, created_at)"
      "  VALUES(1, 1, 'demo', 'in', 'old-1', 1, 'old one', 'received', 1), (2, 1, 'demo', 'in', 'old-2', 1,"
      "  'old two', 'received', 2);"
      "INSERT INTO events(id, type, channel, inbox, data, created_at) VALUES"
      "  (1, 'ticket.created', 'demo', 'Support', '{}', 1),"
      "  (2, 'message.in', 'demo', 'Support', '{\"message_id\":1,\"preview\":\"old one\"}', 1),"
      "  (3, 'message.in', 'demo', 'Support', '{\"message_id\":2,\"preview\":\"old two\"}', 2);",
      NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  fx_open_store(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_wait_t n = fx_in(&f, "demo", "new-1", "kim", "new one");
  ck_assert_int_gt(n.id, 3);
  fx_wait_t w = {0};
  json_t *all = fx_ok(&f, store_events_after(f.st, 0, NULL, NULL, 0, fx_json_cb, &w), &w);
  /* the old rows once, then what the new message made (its conversation
   * had no ticket yet, so one is created), ids only increasing */
  const char *want[] = {"old one", "old two", "new one"};
  size_t i, seen_in = 0;
  json_t *e;
  json_array_foreach(all, i, e) {
    if (i > 0) ck_assert_int_gt(fx_int(e, "id"), fx_int(json_array_get(all, i - 1), "id"));
    if (strcmp(json_string_value(json_object_get(e, "type")), "message.in") != 0) continue;
    ck_assert_uint_lt(seen_in, 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "data"), "preview")), want[seen_in++]);
  }
  ck_assert_uint_eq(seen_in, 3);
  ck_assert_int_eq(fx_int(json_array_get(all, json_array_size(all) - 1), "id"), n.id);
  /* read beside the writer: the same, the old rows once */
  store_events_query q = {.beside = 1};
  fx_wait_t wr = {0};
  json_t *beside = fx_ok(&f, store_events_read(f.st, &q, fx_json_cb, &wr), &wr);
  ck_assert(json_equal(all, beside));
  json_decref(beside);
  json_decref(all);
  fx_close(&f);
}
END_TEST

typedef struct watched {
  int calls;
  int64_t newest;
} watched;

static void watch_newest(void *arg, int64_t newest) {
  watched *w = arg;
  w->calls++;
  w->newest = newest;
}

/* A watcher sees the newest durable id move, once per move, without the
 * events: nothing is built for it, so a message event no subscriber wants
 * stays unbuilt. */
START_TEST(watchers_see_the_newest_id_and_events_read_bounded) {
  events_bus *bus = events_bus_new();
  watched w = {0};
  int token = events_watch(bus, watch_newest, &w);
  ck_assert_int_gt(token, 0);
  ck_assert(!events_wants(bus, "message.in"));
  ck_assert_uint_eq(events_subscriber_count(bus), 0);
  events_advance(bus, 5);
  events_advance(bus, 5);
  events_advance(bus, 3);
  ck_assert_int_eq(w.calls, 1);
  ck_assert_int_eq(events_newest(bus), 5);
  ck_assert_int_eq(events_unsubscribe(bus, token), 0);
  events_advance(bus, 9);
  ck_assert_int_eq(w.calls, 1);
  events_bus_free(bus);

  fx f;
  fx_open(&f);
  watched sw = {0};
  events_watch(store_events(f.st), watch_newest, &sw);
  fx_channel(&f, "{\"name\":\"demo\",\"inbox\":\"Support\"}");
  fx_in(&f, "demo", "e1", "kim", "one");
  ck_assert_int_ge(sw.calls, 1);
  int64_t after_one = events_newest(store_events(f.st));
  ck_assert_int_eq(sw.newest, after_one);
  fx_in(&f, "demo", "e2", "kim", "two");
  ck_assert_int_gt(events_newest(store_events(f.st)), after_one);
  /* Bounded at after_one: the second message is not read. */
  store_events_query q = {.up_to = after_one};
  fx_wait_t w1 = {0};
  json_t *upto = fx_ok(&f, store_events_read(f.st, &q, fx_json_cb, &w1), &w1);
  size_t i;
  json_t *e;
  int msgs = 0;
  json_array_foreach(upto, i, e) {
    ck_assert_int_le(fx_int(e, "id"), after_one);
    msgs += strcmp(json_string_value(json_object_get(e, "type")), "message.in") == 0;
  }
  ck_assert_int_eq(msgs, 1);
  json_decref(upto);
  /* Without messages: only the other events (the tickets'). */
  q = (store_events_query){.no_messages = 1};
  fx_wait_t w2 = {0};
  json_t *others = fx_ok(&f, store_events_read(f.st, &q, fx_json_cb, &w2), &w2);
  ck_assert_int_gt(json_array_size(others), 0);
  json_array_foreach(others, i, e) ck_assert_ptr_null(strstr(json_string_value(json_object_get(e, "type")), "message."));
  json_decref(others);
  /* The same read on the reader, beside the writer, gives the same events,
   * inboxes of message events included. */
  store_events_query both = {.up_to = events_newest(store_events(f.st))};
  fx_wait_t w3 = {0}, w4 = {0};
  json_t *on_writer = fx_ok(&f, store_events_read(f.st, &both, fx_json_cb, &w3), &w3);
  both.beside = 1;
  json_t *on_reader = fx_ok(&f, store_events_read(f.st, &both, fx_json_cb, &w4), &w4);
  ck_assert_int_gt(json_array_size(on_writer), 2);
  ck_assert(json_equal(on_writer, on_reader));
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(on_reader, 0), "inbox")), "Support");
  /* As text (what a webhook splices into its post): each event's whole
   * JSON, the same event once parsed, with its id and type beside it. */
  fx_in(&f, "demo", "e3", "kim", "a \"quoted\"\tline\nand more \u00e9");
  fx_channel(&f, "{\"name\":\"other\",\"inbox\":\"Sales \\\"EU\\\"\\t\\\\ \\u00e9\"}");
  fx_in(&f, "other", "e4", "lee", "hello");
  both.up_to = events_newest(store_events(f.st));
  fx_wait_t w5 = {0}, w6 = {0};
  json_decref(on_reader);
  on_reader = fx_ok(&f, store_events_read(f.st, &both, fx_json_cb, &w5), &w5);
  both.as_text = 1;
  json_t *as_text = fx_ok(&f, store_events_read(f.st, &both, fx_json_cb, &w6), &w6);
  ck_assert_uint_eq(json_array_size(as_text), json_array_size(on_reader));
  int escaped = 0; /* events of the inbox whose name needs escaping */
  json_array_foreach(on_reader, i, e) {
    const char *ib = json_string_value(json_object_get(e, "inbox"));
    escaped += ib != NULL && strcmp(ib, "Sales \"EU\"\t\\ \u00e9") == 0;
  }
  ck_assert_int_gt(escaped, 0);
  json_array_foreach(as_text, i, e) {
    json_t *parsed = json_loads(json_string_value(json_object_get(e, "json")), 0, NULL);
    ck_assert_msg(json_equal(parsed, json_array_get(on_reader, i)), "event %zu: %s", i,
                  json_string_value(json_object_get(e, "json")));
    ck_assert_int_eq(fx_int(e, "id"), fx_int(parsed, "id"));
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), json_string_value(json_object_get(parsed, "type")));
    json_decref(parsed);
  }
  json_decref(as_text);
  json_decref(on_writer);
  json_decref(on_reader);
  int64_t newest = events_newest(store_events(f.st));
  fx_reopen(&f);
  ck_assert_int_ge(events_newest(store_events(f.st)), newest); /* what is stored at open is durable */
  fx_close(&f);
}
END_TEST

START_TEST(patterns_name_known_types_and_families) {
  ck_assert(events_pattern_ok("*"));
  ck_assert(events_pattern_ok("message.in"));
  ck_assert(events_pattern_ok("ticket.*"));
  ck_assert(events_pattern_ok("notification"));
  ck_assert(events_pattern_ok("contact.deleted"));
  ck_assert(events_pattern_ok("label.*"));
  ck_assert(events_pattern_ok("thread.labels"));
  ck_assert(!events_pattern_ok("tickets.*"));
  ck_assert(!events_pattern_ok("ticket.closed"));
  ck_assert(!events_pattern_ok(".*"));
  ck_assert(!events_pattern_ok("ticket*"));
  ck_assert(!events_pattern_ok(""));
  ck_assert(!events_pattern_ok(NULL));
  ck_assert(events_pattern_match("*", "user.updated"));
  ck_assert(events_pattern_match("ticket.*", "ticket.created"));
  ck_assert(!events_pattern_match("ticket.*", "tickets.created"));
  ck_assert(!events_pattern_match("thread.*", "ticket.created"));
  ck_assert(events_pattern_match("message.in", "message.in"));
  ck_assert(!events_pattern_match("message.in", "message.out"));
  char secret[WEBHOOKS_SECRET_LEN + 1], other[WEBHOOKS_SECRET_LEN + 1];
  ck_assert_int_eq(webhooks_secret_generate(secret), 0);
  ck_assert_int_eq(webhooks_secret_generate(other), 0);
  ck_assert_uint_eq(strlen(secret), WEBHOOKS_SECRET_LEN);
  ck_assert(strncmp(secret, "whsec_", 6) == 0);
  ck_assert_str_ne(secret, other);
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
  tcase_add_test(tc, watchers_see_the_newest_id_and_events_read_bounded);
  tcase_add_test(tc, patterns_name_known_types_and_families);
  tcase_add_test(tc, message_events_read_back_exactly_as_published);
  tcase_add_test(tc, message_events_of_a_schema_7_database_survive_the_upgrade);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
