/* test_store_reports.c — core/store_sqlite_report.c and the time of closing
 * it reads (schema 17): what a report counts and how long contacts and
 * conversations waited, in total, by group and filtered, on conversations
 * whose times are set to known values; closing by ticket and by PATCH,
 * reopening, and the upgrade of older closed conversations. */
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"

/* Every time below is T0 + some seconds: a fixed clock for the figures. */
#define T0 1700000000000LL
#define DAY_MS (24LL * 3600 * 1000)

static void sql(fx *f, const char *text) {
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f->url + 7, &db), SQLITE_OK);
  char *msg = NULL;
  int rc = sqlite3_exec(db, text, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", text, msg ? msg : "?");
  sqlite3_close(db);
}

/* Runs text on the database with the store closed (so its times stay as set). */
static void set_times(fx *f, const char *text) {
  fx_close_store(f);
  sql(f, text);
  fx_open_store(f);
}

static json_t *report_of(fx *f, const char *query_json) {
  json_t *q = fx_load(query_json);
  fx_wait_t w = {0};
  json_t *r = fx_ok(f, store_report(f->st, q, fx_json_cb, &w), &w);
  json_decref(q);
  return r;
}

static json_t *report_range(fx *f, int64_t from, int64_t to, const char *more) {
  char q[512];
  snprintf(q, sizeof(q), "{\"from\":%lld,\"to\":%lld%s%s}", (long long)from, (long long)to, more[0] ? "," : "", more);
  return report_of(f, q);
}

/* The integer at a "section.figure" path of a report (or group); -1 for null. */
static int64_t fig(json_t *r, const char *path) {
  char sec[64];
  const char *dot = strchr(path, '.');
  snprintf(sec, sizeof(sec), "%.*s", (int)(dot - path), path);
  json_t *v = json_object_get(json_object_get(r, sec), dot + 1);
  ck_assert_msg(v != NULL, "no %s in the report", path);
  return json_is_null(v) ? -1 : json_integer_value(v);
}

/* Asserts every figure of r: conversations opened, closed, open; messages
 * inbound, outbound, automatic, failed; first response answered,
 * unanswered, median, p90; resolution count, median, p90 (seconds, -1 null). */
static void assert_figures(json_t *r, const int64_t want[14]) {
  static const char *const paths[14] = {
      "conversations.opened", "conversations.closed", "conversations.open",  "messages.inbound",
      "messages.outbound",     "messages.automatic",   "messages.failed",     "first_response.answered",
      "first_response.unanswered", "first_response.median_seconds", "first_response.p90_seconds",
      "resolution.count",      "resolution.median_seconds", "resolution.p90_seconds"};
  for (int i = 0; i < 14; i++)
    ck_assert_msg(fig(r, paths[i]) == want[i], "%s is %lld, wanted %lld", paths[i], (long long)fig(r, paths[i]),
                  (long long)want[i]);
}

/* The group called key in a grouped report. */
/* The group of key; NULL: nobody's (key null). */
static json_t *group(json_t *r, const char *key) {
  size_t i;
  json_t *g;
  json_array_foreach(json_object_get(r, "groups"), i, g) {
    const char *k = json_string_value(json_object_get(g, "key"));
    if (key == NULL ? json_is_null(json_object_get(g, "key")) : k != NULL && strcmp(k, key) == 0) return g;
  }
  ck_abort_msg("no group %s", key != NULL ? key : "(null)");
  return NULL;
}

static int64_t thread_of(fx *f, const char *channel, const char *contact) {
  char q[128];
  snprintf(q, sizeof(q), "{\"channel\":\"%s\",\"q\":\"%s\"}", channel, contact);
  json_t *l = fx_list(f, q);
  ck_assert_int_eq(json_array_size(json_object_get(l, "items")), 1);
  int64_t id = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  return id;
}

static void patch_conversation(fx *f, int64_t thread, const char *patch_json) {
  json_t *p = fx_load(patch_json);
  fx_wait_t w = {0};
  json_decref(fx_ok(f, store_conversation_patch(f->st, thread, p, fx_json_cb, &w), &w));
  json_decref(p);
}

static void patch_ticket_of(fx *f, int64_t thread, const char *patch_json) {
  json_t *c = fx_thread(f, thread);
  int64_t ticket = fx_int(json_object_get(c, "ticket"), "id");
  json_decref(c);
  json_t *p = fx_load(patch_json);
  fx_wait_t w = {0};
  json_decref(fx_ok(f, store_ticket_patch(f->st, ticket, p, fx_json_cb, &w), &w));
  json_decref(p);
}

static int64_t user_id(fx *f, const char *name) {
  char q[128];
  snprintf(q, sizeof(q), "SELECT id FROM users WHERE name = '%s'", name);
  return fx_db_count(f, q);
}

static int64_t closed_at(fx *f, int64_t thread) {
  char q[128];
  snprintf(q, sizeof(q), "SELECT coalesce(closed_at, -1) FROM threads WHERE id = %lld", (long long)thread);
  return fx_db_count(f, q);
}

/* Two channels: mail (inbox Support, tickets) with conversations of kim,
 * lee and max; chat (inbox Sales, no tickets, an instant automatic reply)
 * with ned's and ola's. Agents answer kim (ana, 60 s; then a reply that
 * fails), max (bo, 120 s) and ned (ana, 30 s, after the automatic reply);
 * lee and ola get no agent's answer. max's ticket is closed after an hour,
 * ned's conversation by PATCH after ten minutes. Conversations start a
 * second apart from T0. */
static void fill(fx *f) {
  fx_seed(f, "{\"users\":[{\"name\":\"ana\"},{\"name\":\"bo\"}]}");
  fx_channel(f, "{\"name\":\"mail\",\"inbox\":\"Support\"}");
  fx_channel(f, "{\"name\":\"chat\",\"inbox\":\"Sales\",\"creates_tickets\":false,"
                "\"auto_replies\":{\"instant_reply\":\"We got it\"}}");
  fx_in(f, "mail", "k1", "kim", "my invoice");
  fx_in(f, "mail", "l1", "lee", "my parcel");
  fx_in(f, "mail", "m1", "max", "my account");
  fx_in(f, "chat", "n1", "ned", "a question");
  fx_in(f, "chat", "o1", "ola", "another one");
  int64_t ana = user_id(f, "ana"), bo = user_id(f, "bo");
  int64_t kim = thread_of(f, "mail", "kim"), max = thread_of(f, "mail", "max"), ned = thread_of(f, "chat", "ned");
  fx_reply(f, kim, ana, "ra");
  int64_t failing = fx_reply(f, kim, ana, "ra2");
  fx_reply(f, max, bo, "rc");
  fx_reply(f, ned, ana, "rd");
  patch_ticket_of(f, kim, "{\"owner\":\"ana\"}");
  patch_ticket_of(f, max, "{\"owner\":\"bo\"}");
  patch_ticket_of(f, max, "{\"status\":\"Closed\"}");
  patch_conversation(f, ned, "{\"assignee\":\"ana\"}");
  patch_conversation(f, ned, "{\"status\":\"closed\"}");
  /* ana's second reply to kim is refused by the service */
  fx_wait_t c = {0}, d = {0};
  json_decref(fx_ok(f, store_outbox_claim(f->st, INT64_MAX / 2, 20, fx_json_cb, &c), &c));
  char q[128];
  snprintf(q, sizeof(q), "SELECT id FROM outbox WHERE message_id = %lld", (long long)failing);
  json_decref(fx_ok(f, store_outbox_fail(f->st, fx_db_count(f, q), "refused", 0, fx_json_cb, &d), &d));
  set_times(f,
            "UPDATE threads SET created_at = 1700000000000 + 1000 * (id - (SELECT min(id) FROM threads));"
            "UPDATE messages SET created_at = (SELECT created_at FROM threads t WHERE t.id = thread_id)"
            "  + 1000 * (automatic <> 0) + 1000 * CASE text WHEN 'ra' THEN 60 WHEN 'ra2' THEN 90"
            "  WHEN 'rc' THEN 120 WHEN 'rd' THEN 30 ELSE 0 END;"
            "UPDATE threads SET closed_at = created_at + 1000 * CASE channel WHEN 'mail' THEN 3600 ELSE 600 END"
            "  WHERE closed_at IS NOT NULL;");
}

START_TEST(a_report_counts_and_times_what_happened_in_its_range) {
  fx f;
  fx_open(&f);
  fill(&f);
  json_t *r = report_range(&f, T0, T0 + DAY_MS, "");
  /* five opened, two closed, three open; first replies 60, 120 and 30 s
   * (the automatic reply is no answer), resolutions 3600 and 600 s */
  assert_figures(r, (const int64_t[14]){5, 2, 3, 5, 4, 2, 1, 3, 2, 60, 120, 2, 2100, 3600});
  ck_assert_int_eq(fx_int(r, "from"), T0);
  ck_assert_int_eq(fx_int(r, "to"), T0 + DAY_MS);
  ck_assert(json_is_null(json_object_get(r, "group_by")));
  ck_assert_ptr_null(json_object_get(r, "groups"));
  json_decref(r);

  /* [from, to): kim's and lee's conversations only, their messages only;
   * a reply after to still answers a conversation opened in the range */
  r = report_range(&f, T0, T0 + 2000, "");
  assert_figures(r, (const int64_t[14]){2, 0, 3, 2, 0, 0, 0, 1, 1, 60, 60, 0, -1, -1});
  json_decref(r);
  /* only the closings: resolution counts by the time of closing */
  r = report_range(&f, T0 + 5000, T0 + DAY_MS, "");
  assert_figures(r, (const int64_t[14]){0, 2, 3, 0, 4, 1, 1, 0, 0, -1, -1, 2, 2100, 3600}); /* ola's automatic reply at +5 s */
  json_decref(r);
  fx_close(&f);
}
END_TEST

/* A message counts by when the help desk stored it, whatever time its
 * service gave (a redelivery days late, a clock an hour fast): that time is
 * the message's sent_at. */
START_TEST(a_report_counts_messages_by_when_they_were_stored) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"users\":[{\"name\":\"ana\"}]}");
  fx_channel(&f, "{\"name\":\"mail\"}");
  int64_t now = (int64_t)time(NULL) * 1000;
  const int64_t given[4] = {0, now - 3 * DAY_MS, now + 3600 * 1000, 0};
  const char *who[4] = {"kim", "lee", "max", "ned"};
  for (int i = 0; i < 4; i++) {
    char ext[8];
    snprintf(ext, sizeof(ext), "e%d", i);
    router_inbound in = {.channel = "mail", .external_id = ext, .text = "hello", .timestamp_ms = given[i]};
    in.sender.kind = "custom";
    in.sender.id = who[i];
    in.sender.name = who[i];
    fx_submit(&f, &in);
  }
  int64_t fast = thread_of(&f, "mail", "max");
  fx_reply(&f, fast, user_id(&f, "ana"), "on it");
  json_t *r = report_range(&f, now - 60000, now + 60000, "");
  ck_assert_int_eq(fig(r, "messages.inbound"), 4);
  ck_assert_int_eq(fig(r, "first_response.answered"), 1); /* the reply came after it, whatever max's clock said */
  json_decref(r);
  r = report_range(&f, now - 4 * DAY_MS, now - 2 * DAY_MS, "");
  ck_assert_int_eq(fig(r, "messages.inbound"), 0);
  json_decref(r);
  json_t *c = fx_thread(&f, thread_of(&f, "mail", "lee"));
  json_t *m = json_array_get(json_object_get(c, "messages"), 0);
  ck_assert_int_eq(fx_int(m, "sent_at"), given[1]);
  ck_assert_int_ge(fx_int(m, "created_at"), now - 60000);
  json_decref(c);
  for (int i = 0; i < 4; i += 3) { /* no time given: none, not the time the message before gave */
    c = fx_thread(&f, thread_of(&f, "mail", who[i]));
    ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(c, "messages"), 0), "sent_at")));
    json_decref(c);
  }
  fx_close(&f);
}
END_TEST

START_TEST(a_report_groups_by_channel_inbox_and_agent) {
  fx f;
  fx_open(&f);
  fill(&f);
  json_t *r = report_range(&f, T0, T0 + DAY_MS, "\"group_by\":\"channel\"");
  ck_assert_str_eq(json_string_value(json_object_get(r, "group_by")), "channel");
  ck_assert_int_eq(json_array_size(json_object_get(r, "groups")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r, "groups"), 0), "key")),
                   "chat"); /* by key */
  assert_figures(group(r, "mail"), (const int64_t[14]){3, 1, 2, 3, 3, 0, 1, 2, 1, 90, 120, 1, 3600, 3600});
  assert_figures(group(r, "chat"), (const int64_t[14]){2, 1, 1, 2, 1, 2, 0, 1, 1, 30, 30, 1, 600, 600});
  assert_figures(r, (const int64_t[14]){5, 2, 3, 5, 4, 2, 1, 3, 2, 60, 120, 2, 2100, 3600}); /* the total stays */
  json_decref(r);

  r = report_range(&f, T0, T0 + DAY_MS, "\"group_by\":\"inbox\"");
  assert_figures(group(r, "Support"), (const int64_t[14]){3, 1, 2, 3, 3, 0, 1, 2, 1, 90, 120, 1, 3600, 3600});
  assert_figures(group(r, "Sales"), (const int64_t[14]){2, 1, 1, 2, 1, 2, 0, 1, 1, 30, 30, 1, 600, 600});
  json_decref(r);

  /* conversations by assignee (inbound messages too), replies by author;
   * automatic replies and the unassigned are nobody's (key null, last) */
  r = report_range(&f, T0, T0 + DAY_MS, "\"group_by\":\"agent\"");
  ck_assert_int_eq(json_array_size(json_object_get(r, "groups")), 3);
  assert_figures(group(r, "ana"), (const int64_t[14]){2, 1, 1, 2, 3, 0, 1, 2, 0, 45, 60, 1, 600, 600});
  assert_figures(group(r, "bo"), (const int64_t[14]){1, 1, 0, 1, 1, 0, 0, 1, 0, 120, 120, 1, 3600, 3600});
  assert_figures(group(r, NULL), (const int64_t[14]){2, 0, 2, 2, 0, 2, 0, 0, 2, -1, -1, 0, -1, -1});
  ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(r, "groups"), 2), "key")));
  json_decref(r);
  /* an agent whose user name is "none" (config and API refuse the name now;
   * a database may hold one from before) is not nobody: lee's conversation is theirs */
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(f.url + 7, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO users(name) VALUES('none')", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  patch_ticket_of(&f, thread_of(&f, "mail", "lee"), "{\"owner\":\"none\"}");
  r = report_range(&f, T0, T0 + DAY_MS, "\"group_by\":\"agent\"");
  ck_assert_int_eq(json_array_size(json_object_get(r, "groups")), 4);
  assert_figures(group(r, "none"), (const int64_t[14]){1, 0, 1, 1, 0, 0, 0, 0, 1, -1, -1, 0, -1, -1});
  assert_figures(group(r, NULL), (const int64_t[14]){1, 0, 1, 1, 0, 2, 0, 0, 1, -1, -1, 0, -1, -1});
  json_decref(r);
  /* a deleted agent's replies still count for them, by the name they had
   * (their conversation, unassigned by the delete, is nobody's now) */
  fx_wait_t dw = {0};
  json_decref(fx_ok(&f, store_user_delete(f.st, "bo", fx_json_cb, &dw), &dw));
  r = report_range(&f, T0, T0 + DAY_MS, "\"group_by\":\"agent\"");
  ck_assert_int_eq(fig(group(r, "bo"), "messages.outbound"), 1);
  ck_assert_int_eq(fig(group(r, "bo"), "conversations.opened"), 0);
  json_decref(r);

  fx_wait_t w = {0};
  json_t *q = fx_load("{\"from\":0,\"to\":1,\"group_by\":\"team\"}");
  fx_run(&f, store_report(f.st, q, fx_json_cb, &w), &w);
  ck_assert_int_eq(w.status, -EINVAL);
  ck_assert_msg(strstr(w.err, "channel, inbox or agent") != NULL, "%s", w.err);
  json_decref(q);
  q = fx_load("{\"from\":5,\"to\":5}");
  ck_assert_int_eq(store_report(f.st, q, fx_json_cb, &w), -EINVAL);
  json_decref(q);
  fx_close(&f);
}
END_TEST

START_TEST(a_report_filters_by_channel_and_inbox) {
  fx f;
  fx_open(&f);
  fill(&f);
  json_t *r = report_range(&f, T0, T0 + DAY_MS, "\"channel\":\"chat\"");
  assert_figures(r, (const int64_t[14]){2, 1, 1, 2, 1, 2, 0, 1, 1, 30, 30, 1, 600, 600});
  ck_assert_str_eq(json_string_value(json_object_get(r, "channel")), "chat");
  json_decref(r);
  r = report_range(&f, T0, T0 + DAY_MS, "\"inbox\":\"Support\",\"group_by\":\"agent\"");
  assert_figures(r, (const int64_t[14]){3, 1, 2, 3, 3, 0, 1, 2, 1, 90, 120, 1, 3600, 3600});
  ck_assert_int_eq(json_array_size(json_object_get(r, "groups")), 3); /* ana, bo, lee's nobody */
  assert_figures(group(r, "ana"), (const int64_t[14]){1, 0, 1, 1, 2, 0, 1, 1, 0, 60, 60, 0, -1, -1});
  json_decref(r);
  r = report_range(&f, T0, T0 + DAY_MS, "\"channel\":\"mail\",\"inbox\":\"Sales\"");
  assert_figures(r, (const int64_t[14]){0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, 0, -1, -1});
  json_decref(r);
  /* grouped, with nothing to group: no groups (it sorted none through a NULL array) */
  r = report_range(&f, T0, T0 + DAY_MS, "\"channel\":\"nope\",\"group_by\":\"channel\"");
  ck_assert(json_is_array(json_object_get(r, "groups")));
  ck_assert_int_eq(json_array_size(json_object_get(r, "groups")), 0);
  json_decref(r);
  /* read beside the writer: the writer runs no request for it */
  store_stats before, after;
  store_get_stats(f.st, &before);
  json_decref(report_range(&f, T0, T0 + DAY_MS, "\"group_by\":\"agent\""));
  store_get_stats(f.st, &after);
  ck_assert_int_eq(after.requests, before.requests);
  fx_close(&f);
}
END_TEST

/* The wall clock, for times the store sets itself. */
static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(closing_sets_the_time_of_closing_and_reopening_clears_it) {
  fx f;
  fx_open(&f);
  fx_seed(&f, "{\"pipelines\":[{\"name\":\"Billing\",\"statuses\":[{\"name\":\"New\"},"
              "{\"name\":\"Solved\",\"closed\":true},{\"name\":\"Archived\",\"closed\":true}]}]}");
  fx_channel(&f, "{\"name\":\"mail\",\"ticket\":{\"pipeline\":\"Billing\"}}");
  fx_channel(&f, "{\"name\":\"chat\",\"creates_tickets\":false}");
  fx_in(&f, "mail", "k1", "kim", "hello");
  fx_in(&f, "chat", "n1", "ned", "hello");
  int64_t kim = thread_of(&f, "mail", "kim"), ned = thread_of(&f, "chat", "ned");
  ck_assert_int_eq(closed_at(&f, kim), -1);

  /* by its ticket: the first closed status is the time of closing */
  int64_t before = now_ms();
  patch_ticket_of(&f, kim, "{\"status\":\"Solved\"}");
  int64_t at = closed_at(&f, kim), after = now_ms();
  ck_assert_int_ge(at, before);
  ck_assert_int_le(at, after);
  json_t *r = report_range(&f, before, after + 1, "");
  ck_assert_int_eq(fig(r, "conversations.closed"), 1);
  ck_assert_int_eq(fig(r, "conversations.open"), 1);
  json_decref(r);
  usleep(5000);
  patch_ticket_of(&f, kim, "{\"status\":\"Archived\"}");
  ck_assert_int_eq(closed_at(&f, kim), at);
  patch_ticket_of(&f, kim, "{\"status\":\"New\"}");
  ck_assert_int_eq(closed_at(&f, kim), -1);
  patch_ticket_of(&f, kim, "{\"status\":\"Solved\"}");
  ck_assert_int_ge(closed_at(&f, kim), at);
  /* the contact writing again reopens it (the channel's closed_thread) */
  fx_in(&f, "mail", "k2", "kim", "again");
  ck_assert_int_eq(closed_at(&f, kim), -1);
  r = report_range(&f, before, now_ms() + 1, "");
  ck_assert_int_eq(fig(r, "conversations.closed"), 0);
  ck_assert_int_eq(fig(r, "conversations.open"), 2);
  json_decref(r);

  /* directly, without a ticket */
  before = now_ms();
  patch_conversation(&f, ned, "{\"status\":\"closed\"}");
  at = closed_at(&f, ned);
  ck_assert_int_ge(at, before);
  ck_assert_int_le(at, now_ms());
  patch_conversation(&f, ned, "{\"status\":\"open\"}");
  ck_assert_int_eq(closed_at(&f, ned), -1);
  patch_conversation(&f, ned, "{\"status\":\"closed\"}");
  ck_assert_int_ge(closed_at(&f, ned), at);
  fx_in(&f, "chat", "n2", "ned", "again");
  ck_assert_int_eq(closed_at(&f, ned), -1);
  fx_close(&f);
}
END_TEST

START_TEST(upgrading_gives_closed_conversations_a_time_of_closing) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"mail\"}");
  fx_channel(&f, "{\"name\":\"chat\",\"creates_tickets\":false}");
  fx_in(&f, "mail", "k1", "kim", "hello");
  fx_in(&f, "mail", "l1", "lee", "hello");
  fx_in(&f, "chat", "n1", "ned", "hello");
  int64_t kim = thread_of(&f, "mail", "kim"), lee = thread_of(&f, "mail", "lee"), ned = thread_of(&f, "chat", "ned");
  patch_ticket_of(&f, kim, "{\"status\":\"Closed\"}");
  patch_conversation(&f, ned, "{\"status\":\"closed\"}");
  fx_close_store(&f);
  sql(&f, FX_BACK_TO_SCHEMA_15 "PRAGMA user_version = 15;"
          "UPDATE threads SET created_at = 1700000000000;"
          "UPDATE tickets SET updated_at = 1700000500000;"
          "UPDATE messages SET created_at = 1700000300000;");
  fx_open_store(&f);
  ck_assert_int_eq(fx_db_count(&f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  ck_assert_int_eq(closed_at(&f, kim), T0 + 500000); /* its ticket's last change */
  ck_assert_int_eq(closed_at(&f, ned), T0 + 300000); /* its last message */
  ck_assert_int_eq(closed_at(&f, lee), -1);          /* open */
  json_t *r = report_range(&f, T0, T0 + DAY_MS, "");
  ck_assert_int_eq(fig(r, "resolution.count"), 2);
  ck_assert_int_eq(fig(r, "resolution.median_seconds"), 400);
  ck_assert_int_eq(fig(r, "resolution.p90_seconds"), 500);
  json_decref(r);
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("store_reports");
  TCase *tc = tcase_create("reports");
  tcase_add_test(tc, a_report_counts_and_times_what_happened_in_its_range);
  tcase_add_test(tc, a_report_groups_by_channel_inbox_and_agent);
  tcase_add_test(tc, a_report_counts_messages_by_when_they_were_stored);
  tcase_add_test(tc, a_report_filters_by_channel_and_inbox);
  tcase_add_test(tc, closing_sets_the_time_of_closing_and_reopening_clears_it);
  tcase_add_test(tc, upgrading_gives_closed_conversations_a_time_of_closing);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
