/* test_router.c — core/router.c and the message path: dedup, contacts, thread
 * policies, tickets, pipelines, assignment, auto-replies, replies, config. */
#include "router.h"
#include "store.h"
#include "store_fixture.h"

static const char *DEMO = "{\"name\":\"demo\",\"inbox\":\"Support\"}";

/* The thread id of a message's conversation, via the list (newest first). */
static int64_t newest_thread(fx *f) {
  json_t *l = fx_list(f, "{}");
  int64_t id = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  return id;
}

static size_t count_items(fx *f, const char *filter) {
  json_t *l = fx_list(f, filter);
  size_t n = json_array_size(json_object_get(l, "items"));
  json_decref(l);
  return n;
}

static json_t *ticket_of(fx *f, int64_t thread) {
  json_t *t = fx_thread(f, thread);
  int64_t tid = fx_int(json_object_get(t, "ticket"), "id");
  json_decref(t);
  ck_assert_int_gt(tid, 0);
  fx_wait_t w = {0};
  return fx_ok(f, store_ticket_get(f->st, tid, fx_json_cb, &w), &w);
}

static const char *owner_of(fx *f, int64_t thread, char *buf, size_t len) {
  json_t *k = ticket_of(f, thread);
  const char *o = json_string_value(json_object_get(k, "owner"));
  snprintf(buf, len, "%s", o ? o : "");
  json_decref(k);
  return buf;
}

START_TEST(redelivery_returns_original_id_and_stores_nothing) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_wait_t a = fx_in(&f, "demo", "ext-1", "kim", "hello");
  ck_assert_msg(a.status == 0, "%s", a.err);
  ck_assert_int_eq(a.duplicate, 0);
  store_stats before;
  store_get_stats(f.st, &before);
  fx_wait_t b = fx_in(&f, "demo", "ext-1", "kim", "hello again");
  ck_assert_int_eq(b.status, 0);
  ck_assert_int_eq(b.duplicate, 1);
  ck_assert_int_eq(b.id, a.id);
  json_t *t = fx_thread(&f, newest_thread(&f));
  ck_assert_int_eq(json_array_size(json_object_get(t, "messages")), 1);
  json_decref(t);
  fx_wait_t w = {0};
  json_t *ev = fx_ok(&f, store_events_after(f.st, 0, NULL, NULL, 0, fx_json_cb, &w), &w);
  size_t n_events = json_array_size(ev);
  json_decref(ev);
  fx_in(&f, "demo", "ext-1", "kim", "third time");
  fx_wait_t w2 = {0};
  ev = fx_ok(&f, store_events_after(f.st, 0, NULL, NULL, 0, fx_json_cb, &w2), &w2);
  ck_assert_int_eq(json_array_size(ev), n_events);
  json_decref(ev);
  fx_close(&f);
}
END_TEST

START_TEST(inbound_on_unknown_channel_is_refused) {
  fx f;
  fx_open(&f);
  fx_wait_t a = fx_in(&f, "nope", "ext-1", "kim", "hello");
  ck_assert_int_eq(a.status, -ENOENT);
  ck_assert_ptr_nonnull(strstr(a.err, "\"nope\""));
  router_inbound in = {.channel = "demo", .external_id = "x"};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &a, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "sender.kind"));
  fx_close(&f);
}
END_TEST

typedef struct many_t {
  int done, failed;
} many_t;

static void many_cb(void *arg, int status, int64_t id, int dup, const char *err) {
  many_t *m = arg;
  m->done++;
  if (status != 0) m->failed++;
}

START_TEST(hundred_concurrent_messages_from_one_new_contact_make_one_contact_one_thread) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  many_t m = {0};
  char ext[32], err[256];
  for (int i = 0; i < 100; i++) {
    snprintf(ext, sizeof(ext), "m%d", i);
    router_inbound in = {.channel = "demo", .external_id = ext, .text = "hi"};
    in.sender.kind = "email";
    in.sender.id = "kim@example.com";
    ck_assert_int_eq(router_submit_inbound(f.st, &in, many_cb, &m, err, sizeof(err)), 0);
  }
  while (m.done < 100) uv_run(&f.loop, UV_RUN_ONCE);
  ck_assert_int_eq(m.failed, 0);
  fx_wait_t w = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &w), &w);
  ck_assert_int_eq(json_array_size(json_object_get(c, "items")), 1);
  json_decref(c);
  ck_assert_int_eq(count_items(&f, "{}"), 1);
  json_t *t = fx_thread(&f, newest_thread(&f));
  ck_assert_int_eq(json_array_size(json_object_get(t, "messages")), 100);
  ck_assert_ptr_nonnull(json_object_get(t, "ticket"));
  json_decref(t);
  fx_close(&f);
}
END_TEST

START_TEST(unknown_sender_becomes_contact_from_profile) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  router_inbound in = {.channel = "demo", .external_id = "e1", .text = "hi"};
  in.sender.kind = "psid";
  in.sender.id = "123";
  in.sender.name = "Kim Lee";
  in.sender.email = "kim@example.com";
  in.sender.phone = "+4790000000";
  in.sender.avatar_url = "https://example.com/kim.png";
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  fx_wait_t w2 = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &w2), &w2);
  json_t *k = json_array_get(json_object_get(c, "items"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(k, "name")), "Kim Lee");
  ck_assert_str_eq(json_string_value(json_object_get(k, "email")), "kim@example.com");
  ck_assert_str_eq(json_string_value(json_object_get(k, "phone")), "+4790000000");
  ck_assert_str_eq(json_string_value(json_object_get(k, "avatar_url")), "https://example.com/kim.png");
  json_t *id0 = json_array_get(json_object_get(k, "identities"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(id0, "kind")), "psid");
  ck_assert_str_eq(json_string_value(json_object_get(id0, "value")), "123");
  json_decref(c);
  fx_close(&f);
}
END_TEST

START_TEST(per_contact_policy_continues_the_open_thread) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"thread_policy\":\"per_contact\"}");
  fx_in(&f, "demo", "a", "kim", "1");
  fx_in(&f, "demo", "b", "kim", "2");
  fx_in(&f, "demo", "c", "lee", "3");
  ck_assert_int_eq(count_items(&f, "{}"), 2);
  fx_close(&f);
}
END_TEST

START_TEST(always_new_policy_opens_a_thread_per_message) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"thread_policy\":\"always_new\"}");
  fx_in(&f, "demo", "a", "kim", "1");
  fx_in(&f, "demo", "b", "kim", "2");
  ck_assert_int_eq(count_items(&f, "{}"), 2);
  fx_close(&f);
}
END_TEST

static fx_wait_t in_thread(fx *f, const char *ext, const char *sender, const char *thread) {
  router_inbound in = {.channel = "demo", .external_id = ext, .external_thread_id = thread, .text = "x"};
  in.sender.kind = "custom";
  in.sender.id = sender;
  return fx_submit(f, &in);
}

START_TEST(external_policy_follows_the_plugin_thread_id) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"thread_policy\":\"external\"}");
  in_thread(&f, "a", "kim", "T1");
  in_thread(&f, "b", "kim", "T2");
  in_thread(&f, "c", "lee", "T1");
  ck_assert_int_eq(count_items(&f, "{}"), 2);
  json_t *l = fx_list(&f, "{}");
  json_t *t2 = json_array_get(json_object_get(l, "items"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(t2, "external_id")), "T2");
  json_decref(l);
  fx_close(&f);
}
END_TEST

/* Patches the thread's ticket with patch_json, asserting success. */
static void patch_ticket(fx *f, int64_t thread, const char *patch_json) {
  json_t *k = ticket_of(f, thread);
  json_t *patch = fx_load(patch_json);
  fx_wait_t w = {0};
  json_decref(fx_ok(f, store_ticket_patch(f->st, fx_int(k, "id"), patch, fx_json_cb, &w), &w));
  json_decref(patch);
  json_decref(k);
}

static void close_ticket(fx *f, int64_t thread) { patch_ticket(f, thread, "{\"status\":\"Closed\"}"); }

START_TEST(message_to_closed_thread_reopens_it_by_default) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_in(&f, "demo", "a", "kim", "1");
  int64_t t = newest_thread(&f);
  close_ticket(&f, t);
  ck_assert_int_eq(count_items(&f, "{\"status\":\"closed\"}"), 1);
  fx_in(&f, "demo", "b", "kim", "2");
  ck_assert_int_eq(count_items(&f, "{}"), 1);
  ck_assert_int_eq(count_items(&f, "{\"status\":\"open\"}"), 1);
  json_t *k = ticket_of(&f, t);
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "New");
  json_decref(k);
  fx_close(&f);
}
END_TEST

START_TEST(message_to_closed_thread_opens_new_thread_when_configured) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"closed_thread\":\"new_thread\"}");
  fx_in(&f, "demo", "a", "kim", "1");
  close_ticket(&f, newest_thread(&f));
  fx_in(&f, "demo", "b", "kim", "2");
  ck_assert_int_eq(count_items(&f, "{}"), 2);
  ck_assert_int_eq(count_items(&f, "{\"status\":\"open\"}"), 1);
  fx_close(&f);
}
END_TEST

START_TEST(new_thread_gets_ticket_with_channel_defaults) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"ticket\":{\"pipeline\":\"Support\",\"status\":\"Waiting on us\","
                 "\"priority\":\"high\",\"owner\":\"ana\",\"name_template\":\"{contact} via {channel}\"}}");
  fx_in(&f, "demo", "a", "Kim", "hello");
  json_t *k = ticket_of(&f, newest_thread(&f));
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "Waiting on us");
  ck_assert_str_eq(json_string_value(json_object_get(k, "priority")), "high");
  ck_assert_str_eq(json_string_value(json_object_get(k, "owner")), "ana");
  ck_assert_str_eq(json_string_value(json_object_get(k, "name")), "Kim via demo");
  ck_assert_str_eq(json_string_value(json_object_get(k, "pipeline")), "Support");
  json_decref(k);
  fx_close(&f);
}
END_TEST

START_TEST(channel_without_tickets_creates_none) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"creates_tickets\":false}");
  fx_in(&f, "demo", "a", "kim", "hello");
  json_t *t = fx_thread(&f, newest_thread(&f));
  ck_assert(json_is_null(json_object_get(t, "ticket")));
  json_decref(t);
  fx_close(&f);
}
END_TEST

START_TEST(default_pipeline_support_has_ordered_statuses) {
  fx f;
  fx_open(&f);
  fx_wait_t w = {0};
  json_t *p = fx_ok(&f, store_pipelines_list(f.st, fx_json_cb, &w), &w);
  json_t *sup = json_array_get(p, 0);
  ck_assert_str_eq(json_string_value(json_object_get(sup, "name")), "Support");
  json_t *sts = json_object_get(sup, "statuses");
  const char *names[] = {"New", "Waiting on contact", "Waiting on us", "Closed"};
  ck_assert_int_eq(json_array_size(sts), 4);
  for (int i = 0; i < 4; i++)
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(sts, i), "name")), names[i]);
  ck_assert(json_is_true(json_object_get(json_array_get(sts, 3), "closed")));
  json_decref(p);
  fx_close(&f);
}
END_TEST

static const char *BILLING =
    "{\"pipelines\":[{\"name\":\"Billing\",\"statuses\":[{\"name\":\"Open\"},"
    "{\"name\":\"Refunded\",\"closed\":true,\"required_properties\":[\"amount\",\"reason\"]}]}]}";

START_TEST(status_requiring_properties_is_refused_naming_them) {
  fx f;
  fx_open(&f);
  fx_seed(&f, BILLING);
  fx_seed(&f, BILLING); /* idempotent */
  fx_channel(&f, "{\"name\":\"demo\",\"ticket\":{\"pipeline\":\"Billing\"}}");
  fx_in(&f, "demo", "a", "kim", "refund please");
  json_t *k = ticket_of(&f, newest_thread(&f));
  int64_t id = fx_int(k, "id");
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "Open");
  json_decref(k);
  json_t *patch = fx_load("{\"status\":\"Refunded\",\"properties\":{\"amount\":\"10\"}}");
  fx_wait_t w = {0};
  fx_run(&f, store_ticket_patch(f.st, id, patch, fx_json_cb, &w), &w);
  json_decref(patch);
  ck_assert_int_eq(w.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(w.err, "requires properties: reason"));
  k = ticket_of(&f, newest_thread(&f));
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "Open");
  ck_assert_ptr_null(json_object_get(json_object_get(k, "properties"), "amount"));
  json_decref(k);
  patch = fx_load("{\"status\":\"Refunded\",\"properties\":{\"amount\":\"10\",\"reason\":\"late\"}}");
  fx_wait_t w2 = {0};
  json_decref(fx_ok(&f, store_ticket_patch(f.st, id, patch, fx_json_cb, &w2), &w2));
  json_decref(patch);
  k = ticket_of(&f, newest_thread(&f));
  ck_assert(json_is_true(json_object_get(k, "closed")));
  json_decref(k);
  fx_close(&f);
}
END_TEST

/* One stale name in a config team (someone since removed) leaves that
 * member out, not the config's pipelines, users and teams all. */
START_TEST(a_config_team_member_who_is_no_user_is_left_out) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"pipelines\":[{\"name\":\"Sales\",\"statuses\":[{\"name\":\"Lead\"}]}],"
              "\"users\":[{\"name\":\"ana\"}],\"teams\":[{\"name\":\"t3\",\"users\":[\"ghost\",\"ana\",\"ana\"]}]}");
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM pipelines WHERE name = 'Sales'"), 1);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM team_members m JOIN teams t ON t.id = m.team_id"
                                   " JOIN users u ON u.id = m.user_id WHERE t.name = 't3' AND u.name = 'ana'"),
                   1);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM team_members"), 1);
  fx_close(&f);
}
END_TEST

/* PATCHes ticket id, which may be refused: returns the store's status (the
 * error in err). */
static int try_patch(fx *f, int64_t id, const char *json, char *err, size_t errlen) {
  json_t *patch = fx_load(json);
  fx_wait_t w = {0};
  fx_run(f, store_ticket_patch(f->st, id, patch, fx_json_cb, &w), &w);
  json_decref(patch);
  json_decref(w.result);
  snprintf(err, errlen, "%s", w.err);
  return w.status;
}

/* A status the config no longer lists is retired: not listed, not
 * settable, never a new ticket's; a ticket in it keeps it. */
START_TEST(a_status_taken_out_of_the_config_is_retired) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"pipelines\":[{\"name\":\"Ops\",\"statuses\":[{\"name\":\"Open\"},{\"name\":\"Pending\"},"
              "{\"name\":\"Done\",\"closed\":true}]}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"ticket\":{\"pipeline\":\"Ops\"}}");
  fx_in(&f, "demo", "a", "kim", "one");
  int64_t t1 = newest_thread(&f);
  json_t *k = ticket_of(&f, t1);
  int64_t id1 = fx_int(k, "id");
  json_decref(k);
  char err[256];
  ck_assert_int_eq(try_patch(&f, id1, "{\"status\":\"Pending\"}", err, sizeof(err)), 0);
  fx_in(&f, "demo", "b", "lee", "two");
  k = ticket_of(&f, newest_thread(&f));
  int64_t id2 = fx_int(k, "id");
  json_decref(k);
  /* the config drops Pending */
  fx_seed(&f, "{\"pipelines\":[{\"name\":\"Ops\",\"statuses\":[{\"name\":\"Open\"},{\"name\":\"Done\",\"closed\":true}]}]}");
  fx_wait_t w = {0};
  json_t *p = fx_ok(&f, store_pipelines_list(f.st, fx_json_cb, &w), &w);
  char *text = json_dumps(p, JSON_COMPACT);
  ck_assert_msg(strstr(text, "Pending") == NULL && strstr(text, "\"Done\"") != NULL, "%s", text);
  free(text);
  json_decref(p);
  ck_assert_int_eq(try_patch(&f, id2, "{\"status\":\"Pending\"}", err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, "has no status \"Pending\" any more") != NULL, "%s", err);
  k = ticket_of(&f, t1); /* the ticket in it keeps it, and may be edited */
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "Pending");
  json_decref(k);
  ck_assert_int_eq(try_patch(&f, id1, "{\"priority\":\"high\",\"properties\":{\"x\":\"1\"}}", err, sizeof(err)), 0);
  ck_assert_int_eq(try_patch(&f, id1, "{\"status\":\"Done\"}", err, sizeof(err)), 0);
  /* brought back, it is a status again */
  fx_seed(&f, "{\"pipelines\":[{\"name\":\"Ops\",\"statuses\":[{\"name\":\"Open\"},{\"name\":\"Pending\"},"
              "{\"name\":\"Done\",\"closed\":true}]}]}");
  ck_assert_int_eq(try_patch(&f, id2, "{\"status\":\"Pending\"}", err, sizeof(err)), 0);
  fx_close(&f);
}
END_TEST

/* A PATCH with what the ticket has already (its owner, status, priority,
 * properties) changes nothing and announces nothing. */
START_TEST(a_patch_that_changes_nothing_announces_nothing) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_in(&f, "demo", "a", "kim", "hello");
  json_t *k = ticket_of(&f, newest_thread(&f));
  int64_t id = fx_int(k, "id");
  char same[200];
  snprintf(same, sizeof(same), "{\"owner\":\"ana\",\"priority\":\"high\",\"status\":\"%s\"}",
           json_string_value(json_object_get(k, "status")));
  json_decref(k);
  for (int i = 0; i < 2; i++) {
    json_t *patch = fx_load(same);
    fx_wait_t w = {0};
    json_decref(fx_ok(&f, store_ticket_patch(f.st, id, patch, fx_json_cb, &w), &w));
    json_decref(patch);
  }
  /* the first PATCH assigned and updated it once each; the second, nothing */
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM events WHERE type = 'ticket.assigned' AND json_extract(data, '$.user_id') IS NOT NULL"), 1);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM events WHERE type = 'ticket.updated'"), 1);
  fx_close(&f);
}
END_TEST

/* A pipeline whose first open status needs properties: a new ticket starts
 * there, and so does a reopened one, though agents could not set it. */
static const char *STRICT =
    "{\"pipelines\":[{\"name\":\"Strict\",\"statuses\":[{\"name\":\"Triage\",\"required_properties\":[\"area\"]},"
    "{\"name\":\"Done\",\"closed\":true}]}],\"users\":[{\"name\":\"ana\"}]}";

START_TEST(a_customer_writing_again_reopens_a_ticket_whose_first_status_needs_properties) {
  fx f;
  fx_open(&f);
  fx_seed(&f, STRICT);
  fx_channel(&f, "{\"name\":\"demo\",\"ticket\":{\"pipeline\":\"Strict\"}}");
  fx_in(&f, "demo", "a", "kim", "1");
  int64_t t = newest_thread(&f);
  patch_ticket(&f, t, "{\"status\":\"Done\"}");
  fx_wait_t again = fx_in(&f, "demo", "b", "kim", "2");
  ck_assert_msg(again.status == 0, "the message was refused: %s", again.err);
  json_t *k = ticket_of(&f, t);
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "Triage");
  json_decref(k);
  fx_close(&f);
}
END_TEST

/* Opens a store whose channel demo routes to ana, who is away, and gives
 * it a first message: its ticket waits. Returns the thread. */
static int64_t a_waiting_ticket(fx *f) {
  fx_open(f);
  fx_seed(f, "{\"users\":[{\"name\":\"ana\",\"available\":false}]}");
  fx_channel(f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  fx_in(f, "demo", "a", "kim", "1");
  return newest_thread(f);
}

/* Closed while nobody had it: reopened, it is routed like a new one. */
START_TEST(a_reopened_ticket_without_an_owner_is_routed) {
  fx f;
  int64_t t = a_waiting_ticket(&f);
  close_ticket(&f, t);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":true}]}");
  fx_in(&f, "demo", "b", "kim", "2");
  char owner[64];
  ck_assert_str_eq(owner_of(&f, t, owner, sizeof(owner)), "ana");
  fx_close(&f);
}
END_TEST

/* The store lacks the channel's ticket defaults (a pipeline since dropped
 * from the config, an owner who is not a user): the message is stored all
 * the same, its ticket starts in Support and is routed. */
START_TEST(missing_ticket_defaults_never_cost_a_message) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"ticket\":{\"pipeline\":\"Gone\",\"owner\":\"nobody\"},"
                 "\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  fx_wait_t w = fx_in(&f, "demo", "a", "kim", "hello");
  ck_assert_msg(w.status == 0, "the message was refused: %s", w.err);
  int64_t t = newest_thread(&f);
  json_t *k = ticket_of(&f, t);
  ck_assert_str_eq(json_string_value(json_object_get(k, "pipeline")), "Support");
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "New");
  json_decref(k);
  char owner[64];
  ck_assert_str_eq(owner_of(&f, t, owner, sizeof(owner)), "ana");
  fx_close(&f);
}
END_TEST

/* A waiting ticket of a channel that no longer routes leaves the queue the
 * next time it is drained, instead of holding up the tickets behind it. */
START_TEST(a_channel_that_stops_routing_leaves_the_queue) {
  fx f;
  int64_t t = a_waiting_ticket(&f);
  json_t *k = ticket_of(&f, t);
  ck_assert(json_is_true(json_object_get(k, "queued")));
  json_decref(k);
  fx_channel(&f, "{\"name\":\"demo\"}"); /* routing none */
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":true}]}"); /* drains the queue */
  k = ticket_of(&f, t);
  ck_assert(json_is_false(json_object_get(k, "queued")));
  ck_assert(json_is_null(json_object_get(k, "owner")));
  json_decref(k);
  fx_close(&f);
}
END_TEST

START_TEST(ticket_defaults_are_checked_against_the_pipelines) {
  json_t *cfg = fx_load(BILLING);
  static const struct {
    const char *channel, *err; /* NULL: accepted */
  } cases[] = {
      {"{\"name\":\"d\",\"ticket\":{\"pipeline\":\"Billing\",\"status\":\"Open\"}}", NULL},
      {"{\"name\":\"d\",\"ticket\":{\"status\":\"Waiting on us\"}}", NULL},
      {"{\"name\":\"d\"}", NULL},
      {"{\"name\":\"d\",\"ticket\":{\"pipeline\":\"Biling\"}}",
       "channel \"d\": key \"ticket.pipeline\": \"Biling\" is not a pipeline"},
      {"{\"name\":\"d\",\"ticket\":{\"pipeline\":\"Billing\",\"status\":\"New\"}}",
       "channel \"d\": key \"ticket.status\": pipeline \"Billing\" has no status \"New\""},
      {"{\"name\":\"d\",\"ticket\":{\"status\":\"Open\"}}",
       "key \"ticket.status\": pipeline \"Support\" has no status \"Open\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *o = fx_load(cases[i].channel);
    router_channel ch;
    char err[256] = "";
    ck_assert_int_eq(router_channel_from_json(o, &ch, err, sizeof(err)), 0);
    int rc = router_channel_check_ticket(&ch, cfg, err, sizeof(err));
    if (cases[i].err == NULL)
      ck_assert_msg(rc == 0, "%s refused: %s", cases[i].channel, err);
    else
      ck_assert_msg(rc == -EINVAL && strstr(err, cases[i].err) != NULL, "%s: \"%s\"", cases[i].channel, err);
    router_channel_free(&ch);
    json_decref(o);
  }
  json_decref(cfg);
}
END_TEST

static const char *TEAM_CHANNEL =
    "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"],"
    "\"teams\":[\"l2\"]}}";

START_TEST(assignment_skips_away_and_seatless_users) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false},{\"name\":\"bo\",\"seat\":false},"
              "{\"name\":\"cy\"}],\"teams\":[{\"name\":\"l2\",\"users\":[\"bo\",\"cy\"]}]}");
  fx_channel(&f, TEAM_CHANNEL);
  char buf[64];
  for (int i = 0; i < 3; i++) {
    char ext[8], who[8];
    snprintf(ext, sizeof(ext), "e%d", i);
    snprintf(who, sizeof(who), "c%d", i);
    fx_in(&f, "demo", ext, who, "hi");
    ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "cy");
  }
  fx_close(&f);
}
END_TEST

START_TEST(available_only_false_includes_away_users) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"],"
                 "\"available_only\":false}}");
  fx_in(&f, "demo", "e", "kim", "hi");
  char buf[64];
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "ana");
  fx_close(&f);
}
END_TEST

START_TEST(assignment_requires_every_skill) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"skills\":[\"fr\"]},{\"name\":\"cy\",\"skills\":[\"fr\",\"de\"]}],"
              "\"teams\":[{\"name\":\"l2\",\"users\":[\"cy\"]}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"],"
                 "\"teams\":[\"l2\"],\"skills\":[\"fr\",\"de\"]}}");
  char buf[64];
  fx_in(&f, "demo", "e1", "k1", "hi");
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "cy");
  fx_in(&f, "demo", "e2", "k2", "hi");
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "cy");
  fx_close(&f);
}
END_TEST

START_TEST(ticket_skills_property_adds_required_skills) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"skills\":[\"fr\"],\"available\":false},"
              "{\"name\":\"cy\",\"skills\":[\"fr\",\"de\"],\"available\":false}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\",\"cy\"]}}");
  fx_in(&f, "demo", "e1", "k1", "hi");
  int64_t t = newest_thread(&f);
  patch_ticket(&f, t, "{\"properties\":{\"skills\":[\"de\"]}}");
  char buf[64];
  json_t *u = fx_load("{\"name\":\"ana\",\"available\":true}");
  fx_wait_t w2 = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, u, STORE_UPSERT_ANY, fx_json_cb, &w2), &w2));
  json_decref(u);
  ck_assert_str_eq(owner_of(&f, t, buf, sizeof(buf)), "");
  u = fx_load("{\"name\":\"cy\",\"available\":true}");
  fx_wait_t w3 = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, u, STORE_UPSERT_ANY, fx_json_cb, &w3), &w3));
  json_decref(u);
  ck_assert_str_eq(owner_of(&f, t, buf, sizeof(buf)), "cy");
  fx_close(&f);
}
END_TEST

START_TEST(deleting_a_user_routes_their_open_tickets_again) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"},{\"name\":\"cy\",\"available\":false}],"
              "\"teams\":[{\"name\":\"l2\",\"users\":[\"ana\",\"cy\"]}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"teams\":[\"l2\"]}}");
  fx_in(&f, "demo", "e1", "k1", "hi");
  int64_t t = newest_thread(&f);
  char buf[64];
  ck_assert_str_eq(owner_of(&f, t, buf, sizeof(buf)), "ana");
  json_t *u = fx_load("{\"name\":\"cy\",\"available\":true}");
  fx_wait_t w = {0}, w2 = {0}, w3 = {0}, w4 = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, u, STORE_UPSERT_ANY, fx_json_cb, &w), &w));
  json_decref(u);
  json_t *r = fx_ok(&f, store_user_delete(f.st, "ana", fx_json_cb, &w2), &w2);
  ck_assert_int_eq(fx_int(r, "requeued"), 1);
  json_decref(r);
  ck_assert_str_eq(owner_of(&f, t, buf, sizeof(buf)), "cy");
  fx_run(&f, store_user_delete(f.st, "ana", fx_json_cb, &w3), &w3);
  ck_assert_int_eq(w3.status, -ENOENT);
  json_decref(fx_ok(&f, store_team_delete(f.st, "l2", fx_json_cb, &w4), &w4));
  fx_wait_t w5 = {0};
  json_t *teams = fx_ok(&f, store_teams_list(f.st, fx_json_cb, &w5), &w5);
  ck_assert_int_eq(json_array_size(teams), 0);
  json_decref(teams);
  fx_close(&f);
}
END_TEST

START_TEST(least_load_then_round_robin) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"},{\"name\":\"cy\"}],\"teams\":[{\"name\":\"l2\",\"users\":[\"cy\"]}]}");
  fx_channel(&f, TEAM_CHANNEL);
  char buf[64];
  int ana = 0, cy = 0;
  for (int i = 0; i < 6; i++) {
    char ext[8], who[8];
    snprintf(ext, sizeof(ext), "e%d", i);
    snprintf(who, sizeof(who), "c%d", i);
    fx_in(&f, "demo", ext, who, "hi");
    owner_of(&f, newest_thread(&f), buf, sizeof(buf));
    if (strcmp(buf, "ana") == 0) ana++;
    if (strcmp(buf, "cy") == 0) cy++;
    ck_assert_int_le(abs(ana - cy), 1);
  }
  ck_assert_int_eq(ana, 3);
  ck_assert_int_eq(cy, 3);
  /* Close two of ana's: she has the least load and gets the next two. */
  json_t *l = fx_list(&f, "{\"assignee\":\"ana\"}");
  close_ticket(&f, fx_int(json_array_get(json_object_get(l, "items"), 0), "id"));
  close_ticket(&f, fx_int(json_array_get(json_object_get(l, "items"), 1), "id"));
  json_decref(l);
  fx_in(&f, "demo", "x1", "d1", "hi");
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "ana");
  fx_in(&f, "demo", "x2", "d2", "hi");
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "ana");
  fx_close(&f);
}
END_TEST

START_TEST(full_capacity_queues_until_capacity_frees) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"capacity\":1}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  char buf[64];
  fx_in(&f, "demo", "e1", "k1", "hi");
  int64_t first = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, first, buf, sizeof(buf)), "ana");
  fx_in(&f, "demo", "e2", "k2", "hi");
  int64_t second = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, second, buf, sizeof(buf)), "");
  json_t *k = ticket_of(&f, second);
  ck_assert(json_is_true(json_object_get(k, "queued")));
  json_decref(k);
  close_ticket(&f, first);
  ck_assert_str_eq(owner_of(&f, second, buf, sizeof(buf)), "ana");
  /* capacity raised takes the next one from the queue */
  fx_in(&f, "demo", "e3", "k3", "hi");
  int64_t third = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, third, buf, sizeof(buf)), "");
  json_t *u = fx_load("{\"name\":\"ana\",\"capacity\":2}");
  fx_wait_t w = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, u, STORE_UPSERT_ANY, fx_json_cb, &w), &w));
  json_decref(u);
  ck_assert_str_eq(owner_of(&f, third, buf, sizeof(buf)), "ana");
  /* erasing the contact of one of hers frees her for the next waiting one */
  fx_in(&f, "demo", "e4", "k4", "hi");
  int64_t fourth = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, fourth, buf, sizeof(buf)), "");
  json_t *t = fx_thread(&f, third);
  int64_t contact = fx_int(json_object_get(t, "contact"), "id");
  json_decref(t);
  fx_wait_t we = {0};
  json_decref(fx_ok(&f, store_contact_delete(f.st, contact, fx_json_cb, &we), &we));
  ck_assert_str_eq(owner_of(&f, fourth, buf, sizeof(buf)), "ana");
  /* and so does deleting a channel's history */
  fx_channel(&f, "{\"name\":\"side\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  fx_in(&f, "demo", "e5", "k5", "hi");
  int64_t fifth = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, fifth, buf, sizeof(buf)), "");
  close_ticket(&f, fourth);
  ck_assert_str_eq(owner_of(&f, fifth, buf, sizeof(buf)), "ana");
  close_ticket(&f, second); /* she has the fifth, and room for the sixth */
  fx_in(&f, "side", "s1", "k6", "hi");
  int64_t sixth = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, sixth, buf, sizeof(buf)), "ana");
  fx_in(&f, "demo", "e6", "k7", "hi");
  int64_t seventh = newest_thread(&f);
  ck_assert_str_eq(owner_of(&f, seventh, buf, sizeof(buf)), "");
  fx_wait_t wh = {0};
  json_decref(fx_ok(&f, store_channel_history_delete(f.st, "side", fx_json_cb, &wh), &wh));
  ck_assert_str_eq(owner_of(&f, seventh, buf, sizeof(buf)), "ana");
  fx_close(&f);
}
END_TEST

START_TEST(nobody_available_queues_until_someone_becomes_available) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  fx_in(&f, "demo", "e1", "k1", "hi");
  char buf[64];
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "");
  json_t *u = fx_load("{\"name\":\"ana\",\"available\":true}");
  fx_wait_t w = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, u, STORE_UPSERT_ANY, fx_json_cb, &w), &w));
  json_decref(u);
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "ana");
  ck_assert_int_eq(count_items(&f, "{\"assignee\":\"ana\"}"), 1);
  fx_close(&f);
}
END_TEST

/* A restart seeds the users (and drains the queue) before the channels'
 * rules come back: the waiting ticket keeps waiting for them, and is offered
 * again as its channel returns. */
START_TEST(a_waiting_ticket_still_waits_after_a_restart) {
  fx f;
  fx_open(&f);
  const char *demo = "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}";
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false}]}");
  fx_channel(&f, demo);
  fx_in(&f, "demo", "e1", "k1", "hi");
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1"), 1);
  fx_reopen(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false}]}"); /* drains, before demo's rules */
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1"), 1);
  fx_channel(&f, demo);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1"), 1);
  fx_reopen(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":true}]}"); /* ana came back while it was down */
  fx_channel(&f, demo);
  char buf[64];
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "ana");
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1"), 0);
  fx_close(&f);
}
END_TEST

/* More tickets than a drain reads at once wait for a team nobody is in; one
 * behind them, of another channel, is taken as soon as its user can. */
START_TEST(a_ticket_behind_many_that_nobody_can_take_is_still_assigned) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false}],\"teams\":[{\"name\":\"night\"}]}");
  fx_channel(&f, "{\"name\":\"busy\",\"routing\":{\"mode\":\"users_and_teams\",\"teams\":[\"night\"]}}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  for (int i = 0; i < 1100; i++) {
    char ext[16], sender[16];
    snprintf(ext, sizeof(ext), "b%d", i);
    snprintf(sender, sizeof(sender), "c%d", i);
    fx_in(&f, "busy", ext, sender, "hi");
  }
  fx_in(&f, "demo", "d1", "kim", "hi");
  int64_t mine = newest_thread(&f);
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1"), 1101);
  json_t *u = fx_load("{\"name\":\"ana\",\"available\":true}");
  fx_wait_t w = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, u, STORE_UPSERT_ANY, fx_json_cb, &w), &w));
  json_decref(u);
  char buf[64];
  ck_assert_str_eq(owner_of(&f, mine, buf, sizeof(buf)), "ana");
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1"), 1100);
  fx_close(&f);
}
END_TEST

typedef struct evlog {
  json_t *events;
} evlog;

static void on_event(void *arg, const events_event *ev) {
  evlog *l = arg;
  json_array_append_new(l->events, events_to_json(ev));
}

static int has_event(evlog *l, const char *type) {
  size_t i;
  json_t *e;
  json_array_foreach(l->events, i, e) if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0) return 1;
  return 0;
}

START_TEST(contact_owner_unavailable_leaves_unassigned_and_notifies) {
  fx f;
  fx_open(&f);
  evlog log = {json_array()};
  events_subscribe(store_events(f.st), on_event, &log);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false},{\"name\":\"bo\"}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"contact_owner\"}}");
  fx_in(&f, "demo", "e1", "kim", "hi");
  int64_t t1 = newest_thread(&f);
  close_ticket(&f, t1);
  fx_wait_t w = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &w), &w);
  int64_t cid = fx_int(json_array_get(json_object_get(c, "items"), 0), "id");
  json_decref(c);
  json_t *patch = fx_load("{\"owner\":\"ana\"}");
  fx_wait_t w2 = {0};
  json_decref(fx_ok(&f, store_contact_patch(f.st, cid, patch, fx_json_cb, &w2), &w2));
  json_decref(patch);
  fx_channel(&f, "{\"name\":\"demo\",\"closed_thread\":\"new_thread\",\"routing\":{\"mode\":\"contact_owner\"}}");
  fx_in(&f, "demo", "e2", "kim", "hi again");
  char buf[64];
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "");
  ck_assert(has_event(&log, "notification"));
  patch = fx_load("{\"name\":\"ana\",\"available\":true}");
  fx_wait_t w3 = {0};
  json_decref(fx_ok(&f, store_user_upsert(f.st, patch, STORE_UPSERT_ANY, fx_json_cb, &w3), &w3));
  json_decref(patch);
  ck_assert_str_eq(owner_of(&f, newest_thread(&f), buf, sizeof(buf)), "ana");
  json_decref(log.events);
  fx_close(&f);
}
END_TEST

/* The tickets a deleted user owned are unassigned and wait, and the event
 * stream says so (then ticket.assigned again when someone takes them). */
START_TEST(deleting_a_user_says_their_tickets_are_unassigned_and_wait) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"]}}");
  fx_in(&f, "demo", "e1", "k1", "hi");
  evlog log = {json_array()};
  int token = events_subscribe(store_events(f.st), on_event, &log);
  fx_wait_t w = {0};
  json_decref(fx_ok(&f, store_user_delete(f.st, "ana", fx_json_cb, &w), &w));
  const char *want[] = {"ticket.assigned", "ticket.queued", "user.deleted"};
  ck_assert_int_eq(json_array_size(log.events), 3);
  for (size_t i = 0; i < 3; i++)
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(log.events, i), "type")), want[i]);
  json_t *data = json_object_get(json_array_get(log.events, 0), "data");
  ck_assert(json_is_null(json_object_get(data, "user_id")));
  ck_assert_int_eq(fx_int(data, "thread_id"), newest_thread(&f));
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(log.events, 0), "inbox")), "Support");
  ck_assert_int_eq(fx_db_count(&f, "SELECT count(*) FROM tickets WHERE queued = 1 AND owner_id IS NULL"), 1);
  events_unsubscribe(store_events(f.st), token);
  json_decref(log.events);
  fx_close(&f);
}
END_TEST

/* The config's users, seeded at start-up and reload, say what changed as the
 * API's writes do: user.updated for a new or changed user, nothing else. */
START_TEST(seeding_users_announces_the_changed_ones) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"},{\"name\":\"bo\"}]}");
  evlog log = {json_array()};
  int token = events_subscribe(store_events(f.st), on_event, &log);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"},{\"name\":\"bo\"}]}"); /* unchanged */
  ck_assert_int_eq(json_array_size(log.events), 0);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\",\"available\":false},{\"name\":\"bo\"},{\"name\":\"cy\"}],"
              "\"teams\":[{\"name\":\"l2\",\"users\":[\"bo\"]}]}");
  const char *want[] = {"ana", "bo", "cy"}; /* away; joined l2; new */
  ck_assert_int_eq(json_array_size(log.events), 3);
  for (size_t i = 0; i < 3; i++) {
    json_t *e = json_array_get(log.events, i);
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "user.updated");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "data"), "name")), want[i]);
  }
  ck_assert(json_is_false(json_object_get(json_object_get(json_array_get(log.events, 0), "data"), "available")));
  events_unsubscribe(store_events(f.st), token);
  json_decref(log.events);
  fx_close(&f);
}
END_TEST

START_TEST(merge_moves_identities_and_threads) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_channel(&f, "{\"name\":\"mail\"}");
  evlog log = {json_array()};
  events_subscribe(store_events(f.st), on_event, &log);
  fx_in(&f, "demo", "e1", "kim-psid", "hi");
  fx_in(&f, "mail", "e2", "kim-mail", "hi");
  fx_wait_t w = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &w), &w);
  int64_t a = fx_int(json_array_get(json_object_get(c, "items"), 0), "id");
  int64_t b = fx_int(json_array_get(json_object_get(c, "items"), 1), "id");
  json_decref(c);
  fx_wait_t w2 = {0};
  json_t *m = fx_ok(&f, store_contact_merge(f.st, a, b, fx_json_cb, &w2), &w2);
  ck_assert_int_eq(json_array_size(json_object_get(m, "identities")), 2);
  json_decref(m);
  fx_wait_t w3 = {0};
  c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &w3), &w3);
  ck_assert_int_eq(json_array_size(json_object_get(c, "items")), 1);
  json_decref(c);
  json_t *l = fx_list(&f, "{}");
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(l, "items"), i, t)
      ck_assert_int_eq(fx_int(json_object_get(t, "contact"), "id"), a);
  json_decref(l);
  ck_assert(has_event(&log, "contact.merged"));
  /* the moved identity now resolves to the merged contact */
  fx_in(&f, "mail", "e3", "kim-mail", "again");
  ck_assert_int_eq(count_items(&f, "{}"), 2);
  json_decref(log.events);
  fx_close(&f);
}
END_TEST

/* Two contacts of one channel merged: each conversation's replies still go
 * to the address it came from, not to the merged contact's first one. */
START_TEST(after_a_merge_replies_go_back_to_the_address_a_conversation_came_from) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_in(&f, "demo", "e1", "a-kim", "from the first address");
  int64_t first = newest_thread(&f);
  fx_in(&f, "demo", "e2", "b-kim", "from the second address");
  int64_t second = newest_thread(&f);
  fx_wait_t wc = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &wc), &wc);
  int64_t a = fx_int(json_array_get(json_object_get(c, "items"), 0), "id");
  int64_t b = fx_int(json_array_get(json_object_get(c, "items"), 1), "id");
  json_decref(c);
  fx_wait_t wm = {0};
  json_decref(fx_ok(&f, store_contact_merge(f.st, a, b, fx_json_cb, &wm), &wm));
  /* each address writing again goes on in its own conversation, the one
   * that answers it, whichever is newer */
  fx_in(&f, "demo", "e3", "a-kim", "first again");
  fx_in(&f, "demo", "e4", "b-kim", "second again");
  ck_assert_int_eq(newest_thread(&f), second);
  for (int i = 0; i < 2; i++) {
    json_t *t = fx_thread(&f, i == 0 ? first : second);
    json_t *msgs = json_object_get(t, "messages");
    ck_assert_int_eq(json_array_size(msgs), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "text")),
                     i == 0 ? "first again" : "second again");
    json_decref(t);
  }
  fx_reply(&f, second, 0, "answer");
  fx_reply(&f, first, 0, "answer");
  json_t *rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 2);
  for (size_t i = 0; i < 2; i++) {
    json_t *row = json_array_get(rows, i);
    int64_t t = fx_int(row, "thread_id");
    ck_assert_str_eq(json_string_value(json_object_get(row, "recipient_id")), t == first ? "a-kim" : "b-kim");
  }
  json_decref(rows);
  fx_close(&f);
}
END_TEST

/* A bounce or an out-of-office in a conversation is not what the next reply
 * answers: it keeps the contact's own latest message and subject. */
START_TEST(a_reply_answers_the_contacts_own_mail_not_an_automatic_one) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  router_inbound mine = {.channel = "demo", .external_id = "own-1", .text = "where is my order",
                         .subject = "Order 5"};
  mine.sender.kind = "custom";
  mine.sender.id = "kim";
  fx_submit(&f, &mine);
  int64_t thread = newest_thread(&f);
  router_inbound bounce = {.channel = "demo", .external_id = "auto-1", .text = "I am away",
                           .subject = "Automatic reply: Order 5", .flags = ROUTER_IN_AUTOMATIC};
  bounce.sender.kind = "custom";
  bounce.sender.id = "kim";
  fx_submit(&f, &bounce);
  ck_assert_int_eq(newest_thread(&f), thread);
  fx_reply(&f, thread, 0, "on its way");
  json_t *rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 1);
  json_t *row = json_array_get(rows, 0);
  ck_assert_str_eq(json_string_value(json_object_get(row, "subject")), "Order 5");
  ck_assert_str_eq(json_string_value(json_object_get(row, "reply_to_external_id")), "own-1");
  json_decref(rows);
  fx_close(&f);
}
END_TEST

START_TEST(instant_reply_goes_to_outbox_marked_automatic_but_not_for_automatic_mail) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"thread_policy\":\"always_new\","
                 "\"auto_replies\":{\"instant_reply\":\"Thanks, we got it.\"}}");
  fx_in(&f, "demo", "e1", "kim", "hi");
  json_t *t = fx_thread(&f, newest_thread(&f));
  json_t *msgs = json_object_get(t, "messages");
  ck_assert_int_eq(json_array_size(msgs), 2);
  json_t *out = json_array_get(msgs, 1);
  ck_assert_str_eq(json_string_value(json_object_get(out, "direction")), "out");
  ck_assert(json_is_true(json_object_get(out, "automatic")));
  ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "queued");
  ck_assert_str_eq(json_string_value(json_object_get(out, "text")), "Thanks, we got it.");
  json_decref(t);
  uint32_t flags[] = {ROUTER_IN_AUTOMATIC, ROUTER_IN_BOUNCE, ROUTER_IN_NO_AUTOREPLY};
  for (int i = 0; i < 3; i++) {
    char ext[8];
    snprintf(ext, sizeof(ext), "f%d", i);
    router_inbound in = {.channel = "demo", .external_id = ext, .text = "auto", .flags = flags[i]};
    in.sender.kind = "custom";
    in.sender.id = "robot";
    fx_wait_t w = {0};
    char err[256];
    ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
    fx_wait(&f, &w);
    t = fx_thread(&f, newest_thread(&f));
    ck_assert_int_eq(json_array_size(json_object_get(t, "messages")), 1);
    json_decref(t);
  }
  fx_close(&f);
}
END_TEST

START_TEST(greeting_and_away_decisions) {
  router_channel ch;
  router_channel_init(&ch, "x");
  ch.auto_replies.greeting = strdup("hello");
  ch.auto_replies.instant_reply = strdup("got it");
  ch.auto_replies.away = strdup("away");
  ch.auto_replies.has_hours = 1;
  ch.auto_replies.start_min = 9 * 60;
  ch.auto_replies.end_min = 17 * 60;
  ch.auto_replies.days_mask = 0x3e; /* Mon-Fri */
  int64_t monday_10 = (int64_t)1763978400 * 1000; /* 2025-11-24 10:00 UTC, a Monday */
  int64_t monday_20 = monday_10 + 10 * 3600 * 1000;
  int64_t sunday_10 = monday_10 - 24 * 3600 * 1000;
  ck_assert_int_eq(router_decide_autoreply(&ch, 0, 1, 1, monday_10), ROUTER_AUTOREPLY_GREETING);
  ck_assert_int_eq(router_decide_autoreply(&ch, 0, 0, 1, monday_10), ROUTER_AUTOREPLY_INSTANT);
  ck_assert_int_eq(router_decide_autoreply(&ch, 0, 0, 0, monday_10), ROUTER_AUTOREPLY_NONE);
  ck_assert_int_eq(router_decide_autoreply(&ch, 0, 0, 0, monday_20), ROUTER_AUTOREPLY_AWAY);
  ck_assert_int_eq(router_decide_autoreply(&ch, 0, 0, 0, sunday_10), ROUTER_AUTOREPLY_AWAY);
  ck_assert_int_eq(router_decide_autoreply(&ch, ROUTER_IN_ECHO, 1, 1, monday_20), ROUTER_AUTOREPLY_NONE);
  router_channel_free(&ch);
}
END_TEST

START_TEST(reply_is_stored_with_outbox_row_answering_latest_inbound) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_in(&f, "demo", "e1", "kim", "one");
  fx_wait_t second = fx_in(&f, "demo", "e2", "kim", "two");
  int64_t t = newest_thread(&f);
  router_reply r = {.thread_id = t, .text = "hello Kim"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, 0);
  json_t *th = fx_thread(&f, t);
  json_t *out = json_array_get(json_object_get(th, "messages"), 2);
  ck_assert_int_eq(fx_int(out, "id"), w.id);
  ck_assert_int_eq(fx_int(out, "reply_to"), second.id);
  ck_assert_str_eq(json_string_value(json_object_get(out, "status")), "queued");
  json_decref(th);
  json_t *rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 1);
  ck_assert_int_eq(fx_int(json_array_get(rows, 0), "message_id"), w.id);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "reply_to_external_id")), "e2");
  json_decref(rows);
  fx_close(&f);
}
END_TEST

START_TEST(reply_with_status_missing_properties_stores_nothing) {
  fx f;
  fx_open(&f);
  fx_seed(&f, BILLING);
  fx_channel(&f, "{\"name\":\"demo\",\"ticket\":{\"pipeline\":\"Billing\"}}");
  fx_in(&f, "demo", "e1", "kim", "refund");
  int64_t t = newest_thread(&f);
  router_reply r = {.thread_id = t, .text = "refunded", .ticket_status = "Refunded"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(w.err, "amount, reason"));
  json_t *th = fx_thread(&f, t);
  ck_assert_int_eq(json_array_size(json_object_get(th, "messages")), 1);
  json_decref(th);
  json_t *props = fx_load("{\"amount\":\"5\",\"reason\":\"broken\"}");
  r.ticket_properties = props;
  fx_wait_t w2 = {0};
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w2, err, sizeof(err)), 0);
  fx_wait(&f, &w2);
  ck_assert_int_eq(w2.status, 0);
  json_decref(props);
  json_t *k = ticket_of(&f, t);
  ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "Refunded");
  json_decref(k);
  fx_close(&f);
}
END_TEST

START_TEST(reply_can_switch_to_another_channel_of_the_contact) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_channel(&f, "{\"name\":\"mail\"}");
  fx_in(&f, "demo", "e1", "kim", "hi");
  int64_t t = newest_thread(&f);
  router_reply r = {.thread_id = t, .text = "by mail", .channel = "mail"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, -EINVAL); /* no identity on mail yet */
  fx_in(&f, "mail", "e2", "kim-mail", "hi");
  fx_wait_t wc = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &wc), &wc);
  int64_t a = fx_int(json_array_get(json_object_get(c, "items"), 0), "id");
  int64_t b = fx_int(json_array_get(json_object_get(c, "items"), 1), "id");
  json_decref(c);
  fx_wait_t wm = {0};
  json_decref(fx_ok(&f, store_contact_merge(f.st, a, b, fx_json_cb, &wm), &wm));
  fx_wait_t w2 = {0};
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w2, err, sizeof(err)), 0);
  fx_wait(&f, &w2);
  ck_assert_msg(w2.status == 0, "%s", w2.err);
  json_t *rows = fx_claim(&f);
  json_t *row = json_array_get(rows, 0);
  ck_assert_str_eq(json_string_value(json_object_get(row, "channel")), "mail");
  ck_assert_str_eq(json_string_value(json_object_get(row, "recipient_id")), "kim-mail");
  json_decref(rows);
  fx_close(&f);
}
END_TEST

/* Submits an inbound message on demo from sender with an email address (may be NULL). */
static void in_with_email(fx *f, const char *ext, const char *sender, const char *email) {
  router_inbound in = {.channel = "demo", .external_id = ext, .text = "hello"};
  in.sender.kind = "custom";
  in.sender.id = sender;
  in.sender.name = sender;
  in.sender.email = email;
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f->st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
  fx_wait(f, &w);
  ck_assert_int_eq(w.status, 0);
}

static fx_wait_t reply_via(fx *f, int64_t thread, const char *channel) {
  router_reply r = {.thread_id = thread, .text = "following up by email", .channel = channel};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f->st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(f, &w);
  return w;
}

START_TEST(a_reply_starts_an_email_conversation_at_the_contacts_address) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  router_channel mail;
  ck_assert_int_eq(router_channel_init(&mail, "mail"), 0);
  mail.start_by_email = 1; /* what the host sets for a plugin with SB_START_BY_EMAIL */
  fx_wait_t wp = {0};
  json_decref(fx_ok(&f, store_channel_put(f.st, &mail, fx_json_cb, &wp), &wp));
  router_channel_free(&mail);
  fx_channel(&f, "{\"name\":\"other\"}");

  in_with_email(&f, "c1", "visitor-1", "Kim@Example.org");
  int64_t kim = newest_thread(&f);
  fx_wait_t w = reply_via(&f, kim, "mail");
  ck_assert_msg(w.status == 0, "%s", w.err);
  json_t *rows = fx_claim(&f);
  json_t *row = json_array_get(rows, 0);
  ck_assert_str_eq(json_string_value(json_object_get(row, "channel")), "mail");
  ck_assert_str_eq(json_string_value(json_object_get(row, "recipient_kind")), "email");
  ck_assert_str_eq(json_string_value(json_object_get(row, "recipient_id")), "kim@example.org");
  json_decref(rows);
  /* The address is now Kim's identity there: her answer by email is hers. */
  router_inbound back = {.channel = "mail", .external_id = "m-back", .text = "thanks"};
  back.sender.kind = "email";
  back.sender.id = "kim@example.org";
  fx_wait_t wb = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &back, fx_inbound_cb, &wb, err, sizeof(err)), 0);
  fx_wait(&f, &wb);
  fx_wait_t wc = {0};
  json_t *contacts = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &wc), &wc);
  ck_assert_int_eq(json_array_size(json_object_get(contacts, "items")), 1);
  json_decref(contacts);

  /* Another contact giving the same address cannot take it over; one
   * without an address cannot be reached; a channel that does not start
   * conversations by email refuses as before. */
  in_with_email(&f, "c2", "visitor-2", "kim@example.org");
  w = reply_via(&f, newest_thread(&f), "mail");
  ck_assert_int_eq(w.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(w.err, "another contact's address"));
  in_with_email(&f, "c3", "visitor-3", NULL);
  w = reply_via(&f, newest_thread(&f), "mail");
  ck_assert_int_eq(w.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(w.err, "they have no email address"));
  w = reply_via(&f, kim, "other");
  ck_assert_int_eq(w.status, -EINVAL);
  fx_close(&f);
}
END_TEST

/* Puts a channel whose rules are channel's JSON, with the flags the host
 * sets from the plugin's capabilities. */
static void put_channel(fx *f, const char *json, int start_by_email, int receive_only) {
  json_t *o = json_loads(json, 0, NULL);
  router_channel ch;
  char err[256];
  ck_assert_int_eq(router_channel_from_json(o, &ch, err, sizeof(err)), 0);
  json_decref(o);
  ch.start_by_email = start_by_email;
  ch.receive_only = receive_only;
  fx_wait_t w = {0};
  json_decref(fx_ok(f, store_channel_put(f->st, &ch, fx_json_cb, &w), &w));
  router_channel_free(&ch);
}

/* A channel that only takes messages in (a web form): its conversations
 * are answered, automatically and by agents, through its reply_channel. */
START_TEST(a_receive_only_channel_is_answered_through_its_reply_channel) {
  fx f;
  fx_open(&f);
  put_channel(&f, "{\"name\":\"mail\"}", 1, 0);
  put_channel(&f, "{\"name\":\"form\",\"reply_channel\":\"mail\","
                  "\"auto_replies\":{\"instant_reply\":\"We have your request.\"}}", 0, 1);
  put_channel(&f, "{\"name\":\"kiosk\",\"auto_replies\":{\"instant_reply\":\"Thanks!\"}}", 0, 1);
  router_inbound in = {.channel = "form", .external_id = "sub-1", .text = "my order is late"};
  in.sender.kind = "email";
  in.sender.id = "kim@example.org";
  in.sender.email = "kim@example.org";
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, 0);
  int64_t thread = newest_thread(&f);
  /* the instant reply goes by email, to the address the form gave */
  json_t *rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 1);
  json_t *row = json_array_get(rows, 0);
  ck_assert_str_eq(json_string_value(json_object_get(row, "channel")), "mail");
  ck_assert_str_eq(json_string_value(json_object_get(row, "recipient_id")), "kim@example.org");
  fx_wait_t done = {0}; /* sent: the conversation's next reply through mail may go */
  json_decref(fx_ok(&f, store_outbox_sent(f.st, json_integer_value(json_object_get(row, "outbox_id")), "m-1",
                                          fx_json_cb, &done), &done));
  json_decref(rows);
  /* so does an agent's reply that names no channel */
  fx_wait_t r = reply_via(&f, thread, NULL);
  ck_assert_msg(r.status == 0, "%s", r.err);
  rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "channel")), "mail");
  json_decref(rows);
  /* naming the form itself is refused, saying why */
  r = reply_via(&f, thread, "form");
  ck_assert_int_eq(r.status, -EINVAL);
  ck_assert_ptr_nonnull(strstr(r.err, "only takes messages in"));

  /* Without a reply_channel: stored all the same, no automatic reply, and an
   * agent must name the channel. */
  router_inbound k = {.channel = "kiosk", .external_id = "sub-2", .text = "hello"};
  k.sender.kind = "email";
  k.sender.id = "lee@example.org";
  k.sender.email = "lee@example.org";
  fx_wait_t wk = {0};
  ck_assert_int_eq(router_submit_inbound(f.st, &k, fx_inbound_cb, &wk, err, sizeof(err)), 0);
  fx_wait(&f, &wk);
  ck_assert_int_eq(wk.status, 0);
  ck_assert_int_gt(wk.id, 0);
  rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 0);
  json_decref(rows);
  int64_t lee = newest_thread(&f);
  ck_assert_int_eq(reply_via(&f, lee, NULL).status, -EINVAL);
  r = reply_via(&f, lee, "mail");
  ck_assert_msg(r.status == 0, "%s", r.err);
  fx_close(&f);
}
END_TEST

START_TEST(a_known_contact_gets_a_missing_address_but_keeps_the_one_it_has) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  in_with_email(&f, "a1", "visitor-9", NULL);
  in_with_email(&f, "a2", "visitor-9", "first@example.org");
  in_with_email(&f, "a3", "visitor-9", "second@example.org");
  fx_wait_t wc = {0};
  json_t *c = fx_ok(&f, store_contacts_list(f.st, NULL, fx_json_cb, &wc), &wc);
  ck_assert_int_eq(json_array_size(json_object_get(c, "items")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(c, "items"), 0), "email")),
                   "first@example.org");
  json_decref(c);
  fx_close(&f);
}
END_TEST

static void expect_channel_error(const char *json, const char *needle) {
  json_t *o = fx_load(json);
  router_channel ch;
  char err[256] = "";
  ck_assert_int_eq(router_channel_from_json(o, &ch, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, needle) != NULL, "error \"%s\" lacks \"%s\"", err, needle);
  json_decref(o);
}

START_TEST(echo_is_stored_as_outbound_without_ticket_or_auto_reply) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\",\"auto_replies\":{\"instant_reply\":\"hi\"}}");
  router_inbound in = {.channel = "demo", .external_id = "echo-1", .text = "sent from the phone",
                       .flags = ROUTER_IN_ECHO};
  in.sender.kind = "custom";
  in.sender.id = "kim";
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, 0);
  json_t *t = fx_thread(&f, newest_thread(&f));
  ck_assert(json_is_null(json_object_get(t, "ticket")));
  json_t *msgs = json_object_get(t, "messages");
  ck_assert_int_eq(json_array_size(msgs), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "direction")), "out");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "status")), "sent");
  json_decref(t);
  /* the contact's answer continues the thread and brings its ticket */
  fx_in(&f, "demo", "in-1", "kim", "thanks");
  ck_assert_int_eq(count_items(&f, "{}"), 1);
  t = fx_thread(&f, newest_thread(&f));
  ck_assert(json_is_object(json_object_get(t, "ticket")));
  json_decref(t);
  fx_close(&f);
}
END_TEST

START_TEST(reply_to_names_an_earlier_message_of_the_thread) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_wait_t first = fx_in(&f, "demo", "e1", "kim", "one");
  fx_in(&f, "demo", "e2", "kim", "two");
  int64_t t = newest_thread(&f);
  router_reply r = {.thread_id = t, .text = "about your first", .reply_to_message_id = first.id};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  ck_assert_int_eq(w.status, 0);
  json_t *th = fx_thread(&f, t);
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(th, "messages"), 2), "reply_to"), first.id);
  json_decref(th);
  r.reply_to_message_id = 9999;
  fx_wait_t w2 = {0};
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w2, err, sizeof(err)), 0);
  fx_wait(&f, &w2);
  ck_assert_int_eq(w2.status, -EINVAL);
  r.thread_id = 4242;
  r.reply_to_message_id = 0;
  fx_wait_t w3 = {0};
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w3, err, sizeof(err)), 0);
  fx_wait(&f, &w3);
  ck_assert_int_eq(w3.status, -ENOENT);
  fx_close(&f);
}
END_TEST

START_TEST(inbound_reply_to_links_the_answered_message) {
  fx f;
  fx_open(&f);
  fx_channel(&f, DEMO);
  fx_wait_t first = fx_in(&f, "demo", "e1", "kim", "one");
  router_inbound in = {.channel = "demo", .external_id = "e2", .reply_to_external_id = "e1", .text = "re"};
  in.sender.kind = "custom";
  in.sender.id = "kim";
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  json_t *th = fx_thread(&f, newest_thread(&f));
  ck_assert_int_eq(fx_int(json_array_get(json_object_get(th, "messages"), 1), "reply_to"), first.id);
  ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(th, "messages"), 0), "reply_to")));
  json_decref(th);
  fx_close(&f);
}
END_TEST

START_TEST(channel_json_errors_name_channel_and_key) {
  expect_channel_error("{\"name\":\"demo\",\"colour\":1}", "channel \"demo\": key \"colour\"");
  expect_channel_error("{\"name\":\"demo\",\"thread_policy\":\"sometimes\"}", "key \"thread_policy\" must be one of per_contact, external, always_new");
  expect_channel_error("{\"name\":\"demo\",\"creates_tickets\":\"yes\"}", "key \"creates_tickets\" must be true or false");
  expect_channel_error("{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\",\"users\":[1]}}", "key \"routing.users\"");
  expect_channel_error("{\"name\":\"demo\",\"routing\":{\"mode\":\"users_and_teams\"}}", "routing.users");
  expect_channel_error("{\"name\":\"demo\",\"ticket\":{\"colour\":\"red\"}}", "key \"ticket.colour\"");
  expect_channel_error("{\"name\":\"demo\",\"auto_replies\":{\"away\":5}}", "key \"auto_replies.away\" must be a string");
  expect_channel_error("{\"name\":\"demo\",\"auto_replies\":{\"hours\":{\"start\":\"9am\",\"end\":\"17:00\"}}}", "auto_replies.hours.start");
  expect_channel_error("{\"name\":\"demo\",\"auto_replies\":{\"hours\":{\"start\":\"09:00\"}}}", "needs both");
  json_t *o = fx_load("{\"name\":\"demo\",\"plugin\":\"custom\",\"inbox\":\"Support\",\"credentials\":{},"
                      "\"thread_policy\":\"external\",\"closed_thread\":\"new_thread\",\"creates_tickets\":false,"
                      "\"routing\":{\"mode\":\"users_and_teams\",\"users\":[\"ana\"],\"teams\":[\"l2\"],"
                      "\"available_only\":false,\"skills\":[\"fr\"]},"
                      "\"ticket\":{\"pipeline\":\"Support\",\"status\":\"New\",\"priority\":\"low\"},"
                      "\"auto_replies\":{\"greeting\":\"hi\",\"away\":\"gone\",\"hours\":{\"start\":\"09:00\","
                      "\"end\":\"17:30\",\"days\":[1,2,3,4,5],\"utc_offset_minutes\":60}}}");
  router_channel ch;
  char err[256];
  ck_assert_int_eq(router_channel_from_json(o, &ch, err, sizeof(err)), 0);
  ck_assert_int_eq(ch.thread_policy, ROUTER_THREAD_EXTERNAL);
  ck_assert_int_eq(ch.closed_thread, ROUTER_CLOSED_NEW_THREAD);
  ck_assert_int_eq(ch.creates_tickets, 0);
  ck_assert_int_eq(ch.routing.mode, ROUTER_ROUTING_USERS_AND_TEAMS);
  ck_assert_int_eq(ch.routing.available_only, 0);
  ck_assert_str_eq(ch.routing.teams[0], "l2");
  ck_assert_int_eq(ch.auto_replies.end_min, 17 * 60 + 30);
  ck_assert_int_eq(ch.auto_replies.days_mask, 0x3e);
  json_t *back = router_channel_to_json(&ch);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(back, "auto_replies"), "hours"), "end")), "17:30");
  ck_assert_str_eq(json_string_value(json_object_get(back, "thread_policy")), "external");
  json_decref(back);
  router_channel copy;
  ck_assert_int_eq(router_channel_copy(&copy, &ch), 0);
  ck_assert_str_eq(copy.routing.skills[0], "fr");
  router_channel_free(&copy);
  router_channel_free(&ch);
  json_decref(o);
}
END_TEST

START_TEST(seed_validation_names_entry_and_key) {
  char err[256];
  json_t *o = fx_load("{\"users\":[{\"name\":\"ana\",\"capacity\":\"lots\"}]}");
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "users[0]: key \"capacity\""));
  json_decref(o);
  o = fx_load("{\"pipelines\":[{\"name\":\"P\",\"statuses\":[{\"name\":\"A\",\"closed\":1}]}]}");
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "pipelines[0].statuses[0]: key \"closed\""));
  json_decref(o);
  o = fx_load("{\"users\":[{\"name\":\"ana\",\"avatar_url\":\"https://cdn.example.com/ana.png\"},"
              "{\"name\":\"bo\",\"avatar_url\":\"cdn.example.com/bo.png\"}]}");
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "users[1]: key \"avatar_url\" must be an absolute http or https URL"));
  json_decref(o);
  /* ?assignee=none means the unassigned: no user may be called so */
  o = fx_load("{\"users\":[{\"name\":\"ana\"},{\"name\":\"none\"}]}");
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "users[1]: key \"name\" must be a name other than \"none\""));
  json_decref(o);
  o = fx_load("{\"users\":[{\"name\":\"\"}]}"); /* nor be nameless */
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), -EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "users[0]: key \"name\""));
  json_decref(o);
  /* a status named twice in one pipeline would be merged silently */
  o = fx_load("{\"pipelines\":[{\"name\":\"P\",\"statuses\":[{\"name\":\"A\"},{\"name\":\"B\"},{\"name\":\"A\"}]}]}");
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), -EINVAL);
  ck_assert_msg(strstr(err, "pipelines[0].statuses[2]: key \"name\" repeats") != NULL, "%s", err);
  json_decref(o);
  o = fx_load("{\"users\":[{\"name\":\"None\"},{\"name\":\"nonet\"}]}");
  ck_assert_int_eq(router_seed_validate(o, err, sizeof(err)), 0);
  json_decref(o);
}
END_TEST

START_TEST(avatar_urls_are_absolute_http_or_https) {
  static const char *const good[] = {"https://cdn.example.com/ana.png", "http://127.0.0.1:8080/a?size=64",
                                     "HTTPS://Example.COM/a%20b.png"};
  static const char *const bad[] = {NULL, "", "cdn.example.com/ana.png", "/ana.png", "ftp://example.com/a.png",
                                    "javascript:alert(1)", "data:image/png;base64,AAAA", "https://",
                                    "https:///a.png", "https://exa mple.com/a.png", "https://example.com/\n",
                                    "mailto:ana@example.com"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    ck_assert_msg(router_avatar_url_valid(good[i]), "%s should be valid", good[i]);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(!router_avatar_url_valid(bad[i]), "%s should be refused", bad[i] ? bad[i] : "NULL");
  char longer[ROUTER_AVATAR_URL_MAX + 2];
  memcpy(longer, "https://example.com/", 20);
  memset(longer + 20, 'a', sizeof(longer) - 21);
  longer[sizeof(longer) - 1] = '\0';
  ck_assert(!router_avatar_url_valid(longer));
}
END_TEST

START_TEST(pick_assignee_rules) {
  router_candidate c[3] = {
      {.user_id = 1, .seat = 1, .available = 1, .capacity = 2, .open_load = 2, .last_assigned = 1},
      {.user_id = 2, .seat = 1, .available = 1, .open_load = 1, .last_assigned = 5},
      {.user_id = 3, .seat = 1, .available = 1, .open_load = 1, .last_assigned = 3},
  };
  ck_assert_int_eq(router_pick_assignee(c, 3, 1, NULL, 0), 2);
  c[2].available = 0;
  ck_assert_int_eq(router_pick_assignee(c, 3, 1, NULL, 0), 1);
  ck_assert_int_eq(router_pick_assignee(c, 3, 0, NULL, 0), 2);
  c[1].seat = 0;
  ck_assert_int_eq(router_pick_assignee(c, 3, 1, NULL, 0), -1);
  char name[64];
  router_ticket_name(NULL, "Kim", "chat", NULL, name, sizeof(name));
  ck_assert_str_eq(name, "Kim via chat");
}
END_TEST

int main(void) {
  Suite *s = suite_create("router");
  TCase *tc = tcase_create("router");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, redelivery_returns_original_id_and_stores_nothing);
  tcase_add_test(tc, inbound_on_unknown_channel_is_refused);
  tcase_add_test(tc, hundred_concurrent_messages_from_one_new_contact_make_one_contact_one_thread);
  tcase_add_test(tc, unknown_sender_becomes_contact_from_profile);
  tcase_add_test(tc, per_contact_policy_continues_the_open_thread);
  tcase_add_test(tc, always_new_policy_opens_a_thread_per_message);
  tcase_add_test(tc, external_policy_follows_the_plugin_thread_id);
  tcase_add_test(tc, message_to_closed_thread_reopens_it_by_default);
  tcase_add_test(tc, a_customer_writing_again_reopens_a_ticket_whose_first_status_needs_properties);
  tcase_add_test(tc, a_reopened_ticket_without_an_owner_is_routed);
  tcase_add_test(tc, missing_ticket_defaults_never_cost_a_message);
  tcase_add_test(tc, ticket_defaults_are_checked_against_the_pipelines);
  tcase_add_test(tc, after_a_merge_replies_go_back_to_the_address_a_conversation_came_from);
  tcase_add_test(tc, a_channel_that_stops_routing_leaves_the_queue);
  tcase_add_test(tc, message_to_closed_thread_opens_new_thread_when_configured);
  tcase_add_test(tc, new_thread_gets_ticket_with_channel_defaults);
  tcase_add_test(tc, channel_without_tickets_creates_none);
  tcase_add_test(tc, default_pipeline_support_has_ordered_statuses);
  tcase_add_test(tc, status_requiring_properties_is_refused_naming_them);
  tcase_add_test(tc, a_patch_that_changes_nothing_announces_nothing);
  tcase_add_test(tc, a_status_taken_out_of_the_config_is_retired);
  tcase_add_test(tc, a_config_team_member_who_is_no_user_is_left_out);
  tcase_add_test(tc, assignment_skips_away_and_seatless_users);
  tcase_add_test(tc, available_only_false_includes_away_users);
  tcase_add_test(tc, assignment_requires_every_skill);
  tcase_add_test(tc, ticket_skills_property_adds_required_skills);
  tcase_add_test(tc, deleting_a_user_routes_their_open_tickets_again);
  tcase_add_test(tc, least_load_then_round_robin);
  tcase_add_test(tc, full_capacity_queues_until_capacity_frees);
  tcase_add_test(tc, nobody_available_queues_until_someone_becomes_available);
  tcase_add_test(tc, a_waiting_ticket_still_waits_after_a_restart);
  tcase_add_test(tc, deleting_a_user_says_their_tickets_are_unassigned_and_wait);
  tcase_add_test(tc, seeding_users_announces_the_changed_ones);
  tcase_add_test(tc, a_ticket_behind_many_that_nobody_can_take_is_still_assigned);
  tcase_add_test(tc, contact_owner_unavailable_leaves_unassigned_and_notifies);
  tcase_add_test(tc, merge_moves_identities_and_threads);
  tcase_add_test(tc, instant_reply_goes_to_outbox_marked_automatic_but_not_for_automatic_mail);
  tcase_add_test(tc, a_reply_answers_the_contacts_own_mail_not_an_automatic_one);
  tcase_add_test(tc, greeting_and_away_decisions);
  tcase_add_test(tc, reply_is_stored_with_outbox_row_answering_latest_inbound);
  tcase_add_test(tc, reply_with_status_missing_properties_stores_nothing);
  tcase_add_test(tc, reply_can_switch_to_another_channel_of_the_contact);
  tcase_add_test(tc, a_reply_starts_an_email_conversation_at_the_contacts_address);
  tcase_add_test(tc, a_receive_only_channel_is_answered_through_its_reply_channel);
  tcase_add_test(tc, a_known_contact_gets_a_missing_address_but_keeps_the_one_it_has);
  tcase_add_test(tc, echo_is_stored_as_outbound_without_ticket_or_auto_reply);
  tcase_add_test(tc, reply_to_names_an_earlier_message_of_the_thread);
  tcase_add_test(tc, inbound_reply_to_links_the_answered_message);
  tcase_add_test(tc, channel_json_errors_name_channel_and_key);
  tcase_add_test(tc, seed_validation_names_entry_and_key);
  tcase_add_test(tc, avatar_urls_are_absolute_http_or_https);
  tcase_add_test(tc, pick_assignee_rules);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
