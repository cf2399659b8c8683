/* test_chat_ws.c — plugins/chat over its WebSockets (ABI 1.3), driven
 * through the SDK's stub test host: the handshake's origin and token checks,
 * history on "hello" (and again after a reconnect, from the last id seen),
 * messages acknowledged once stored and shown in the visitor's other tabs,
 * resends deduplicated, replies pushed to every socket with the agent's name
 * and avatar, receipts as watermarks, limits, closing; and the team's
 * availability turning into the widget's state. */
#include <switchboard/testhost.h>

#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_SO SB_PLUGIN_BUILD_DIR "/chat.so"
#define SITE "https://www.example.com"

static testhost *th;
static char token[400], visitor[200];

static void setup(void) {
  char err[512];
  ck_assert_msg(testhost_open(CHAT_SO, &th, err, sizeof(err)) == 0, "%s", err);
  testhost_set_channel_name(th, "web");
  testhost_set(th, "allowed_origins", SITE);
  testhost_set(th, "availability", "always");
  testhost_set(th, "heading_name", "Acme");
}

static void teardown(void) {
  ck_assert_int_eq(testhost_misuse_count(th), 0);
  testhost_close(th);
  th = NULL;
}

static void start(void) {
  char err[512];
  ck_assert_msg(testhost_start(th, err, sizeof(err)) == 0, "%s", err);
  testhost_run(th);
  const sb_http_header h[] = {{"Origin", SITE}};
  const testhost_reply *r = testhost_receive(th, "POST", "/session", h, 1, "{}", 2);
  ck_assert_int_eq(r->status, 200);
  json_t *j = json_loads(r->body, 0, NULL);
  snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(j, "token")));
  snprintf(visitor, sizeof(visitor), "%s", json_string_value(json_object_get(j, "visitor_id")));
  json_decref(j);
}

/* A socket from origin with a token (NULL: the visitor's). */
static const testhost_ws *open_ws(const char *origin, const char *tok) {
  char target[600];
  snprintf(target, sizeof(target), "/ws?token=%s", tok != NULL ? tok : token);
  sb_http_header h[2] = {{"Host", "help.example.org"}};
  size_t n = 1;
  if (origin != NULL) h[n++] = (sb_http_header){"Origin", origin};
  return testhost_ws_open(th, target, h, n);
}

static void say(const testhost_ws *ws, const char *frame) {
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_TEXT, frame, strlen(frame)), 0);
}

/* The index-th frame the plugin sent on ws, parsed (the caller decrefs). */
static json_t *frame_at(const testhost_ws *ws, size_t index) {
  ck_assert_msg(index < ws->sent_count, "only %zu frames sent", ws->sent_count);
  json_t *j = json_loads(ws->sent[index].data, 0, NULL);
  ck_assert_msg(j != NULL, "not JSON: %s", ws->sent[index].data);
  return j;
}

static const char *str(const json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

START_TEST(the_handshake_checks_origin_and_token) {
  start();
  ck_assert_int_eq(open_ws("https://evil.example.net", NULL)->status, 403);
  ck_assert_int_eq(open_ws(NULL, NULL)->status, 403);
  ck_assert_int_eq(open_ws(SITE, "v.0000.forged")->status, 403);
  char forged[600];
  snprintf(forged, sizeof(forged), "%s", token);
  forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0'; /* another visitor's id */
  ck_assert_int_eq(open_ws(SITE, forged)->status, 403);
  const sb_http_header h[] = {{"Origin", SITE}};
  ck_assert_int_eq(testhost_ws_open(th, "/elsewhere", h, 1)->status, 404);
  const testhost_ws *ws = open_ws(SITE, NULL);
  ck_assert_int_eq(ws->status, 101);
  ck_assert(ws->open);
}
END_TEST

START_TEST(hello_reads_the_history_from_the_last_id_seen) {
  start();
  sb_history_message m[2] = {
      {.message_id = "7", .external_id = "v:x:c-1", .direction = SB_DIRECTION_IN, .text = "<b>hi</b>",
       .timestamp_ms = 1000},
      {.message_id = "8", .direction = SB_DIRECTION_OUT, .status = SB_STATUS_SENT, .text = "Hello!",
       .author_name = "Ana", .author_avatar_url = "https://cdn.example.com/ana.png",
       .attachments_json = "[{\"url\":\"https://x/a.pdf\",\"filename\":\"a.pdf\"},"
                           "{\"url\":\"/api/v1/attachments/31\",\"filename\":\"b.pdf\"},"
                           "{\"id\":32,\"url\":\"https://x/c.png\",\"filename\":\"c.png\"}]",
       .timestamp_ms = 2000},
  };
  sb_history answer = {.status = SB_OK, .messages = m, .count = 2, .owner_name = "Ana"};
  testhost_history_answer(th, &answer);
  const testhost_ws *ws = open_ws(SITE, NULL);
  say(ws, "{\"type\":\"hello\",\"after\":null}");
  ck_assert_uint_eq(testhost_history_count(th), 1);
  const sb_history_request *q = testhost_history_at(th, 0);
  ck_assert_str_eq(q->id, visitor);
  ck_assert_uint_eq(q->kind, SB_IDENTITY_VISITOR);
  ck_assert_ptr_null(q->after_message_id);
  json_t *f = frame_at(ws, 0);
  ck_assert_str_eq(str(f, "type"), "history");
  json_t *list = json_object_get(f, "messages");
  ck_assert_uint_eq(json_array_size(list), 2);
  json_t *in = json_array_get(list, 0), *out = json_array_get(list, 1);
  ck_assert_str_eq(str(in, "direction"), "in");
  ck_assert_str_eq(str(in, "client_id"), "c-1");
  ck_assert_str_eq(str(in, "text"), "<b>hi</b>");
  ck_assert_str_eq(str(out, "id"), "8");
  ck_assert_str_eq(str(json_object_get(out, "author"), "name"), "Ana");
  ck_assert_str_eq(str(json_object_get(out, "author"), "avatar_url"), "https://cdn.example.com/ana.png");
  ck_assert_str_eq(str(json_array_get(json_object_get(out, "attachments"), 0), "filename"), "a.pdf");
  /* files the help desk holds reach the visitor by the host's signed link,
   * a file elsewhere by its own */
  json_t *atts = json_object_get(out, "attachments");
  ck_assert_str_eq(str(json_array_get(atts, 0), "url"), "https://x/a.pdf");
  ck_assert_str_eq(str(json_array_get(atts, 1), "url"), "/files/31?expires=86400&sig=testhost");
  ck_assert_str_eq(str(json_array_get(atts, 2), "url"), "/files/32?expires=86400&sig=testhost");
  ck_assert_str_eq(str(json_object_get(f, "owner"), "name"), "Ana");
  json_decref(f);

  /* a reconnect asks only for what came after the last id */
  testhost_ws_peer_close(th, ws, SB_WS_CLOSE_ABNORMAL);
  const testhost_ws *again = open_ws(SITE, NULL);
  say(again, "{\"type\":\"hello\",\"after\":\"8\"}");
  ck_assert_str_eq(testhost_history_at(th, 1)->after_message_id, "8");
  say(again, "{\"type\":\"hello\",\"after\":\"8\"}"); /* within a second: refused, no store read */
  ck_assert_uint_eq(testhost_history_count(th), 2);
  json_t *e = frame_at(again, again->sent_count - 1);
  ck_assert_str_eq(str(e, "code"), "rate_limited");
  json_decref(e);
  say(again, "{\"type\":\"hello\",\"after\":\"8; drop table\"}");
}
END_TEST

START_TEST(a_message_is_acked_once_stored_and_shown_in_other_tabs) {
  start();
  const testhost_ws *tab1 = open_ws(SITE, NULL), *tab2 = open_ws(SITE, NULL);
  say(tab1, "{\"type\":\"message\",\"client_id\":\"c-9\",\"text\":\"<img src=x onerror=alert(1)>\"}");
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  ck_assert_uint_eq(tab1->sent_count, 0); /* not before it is stored */
  testhost_commit_all(th);
  json_t *ack = frame_at(tab1, 0);
  ck_assert_str_eq(str(ack, "type"), "ack");
  ck_assert_str_eq(str(ack, "client_id"), "c-9");
  ck_assert_str_eq(str(ack, "id"), "msg-1");
  json_decref(ack);
  json_t *echo = frame_at(tab2, 0);
  ck_assert_str_eq(str(echo, "type"), "message");
  ck_assert_str_eq(str(echo, "direction"), "in");
  ck_assert_str_eq(str(echo, "id"), "msg-1");
  ck_assert_str_eq(str(echo, "text"), "<img src=x onerror=alert(1)>");
  json_decref(echo);

  /* the ack was lost; the widget resends after reconnecting: same id, no echo */
  say(tab1, "{\"type\":\"message\",\"client_id\":\"c-9\",\"text\":\"<img src=x onerror=alert(1)>\"}");
  testhost_commit_all(th);
  ack = frame_at(tab1, 1);
  ck_assert_str_eq(str(ack, "id"), "msg-1");
  ck_assert(json_is_true(json_object_get(ack, "duplicate")));
  json_decref(ack);
  ck_assert_uint_eq(tab2->sent_count, 1);

  /* the socket closes before the commit: nothing is sent, nothing leaks */
  say(tab2, "{\"type\":\"message\",\"client_id\":\"c-10\",\"text\":\"bye\"}");
  testhost_ws_peer_close(th, tab2, 1001);
  testhost_commit_all(th);
  ck_assert_uint_eq(tab2->sent_count, 1);
}
END_TEST

START_TEST(bad_frames_get_errors_and_limits_hold) {
  testhost_set(th, "rate_limit", "1");
  start();
  const testhost_ws *ws = open_ws(SITE, NULL);
  say(ws, "not json");
  say(ws, "{\"type\":\"dance\"}");
  say(ws, "{\"type\":\"message\",\"client_id\":\"a\",\"text\":\"one\"}");
  say(ws, "{\"type\":\"message\",\"client_id\":\"b\",\"text\":\"two\"}");
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  json_t *f = frame_at(ws, 0);
  ck_assert_str_eq(str(f, "code"), "invalid");
  json_decref(f);
  f = frame_at(ws, 2);
  ck_assert_str_eq(str(f, "code"), "rate_limited");
  ck_assert_str_eq(str(f, "client_id"), "b");
  json_decref(f);
  say(ws, "{\"type\":\"ping\"}");
  f = frame_at(ws, 3);
  ck_assert_str_eq(str(f, "type"), "pong");
  json_decref(f);
  say(ws, "{\"type\":\"message\",\"client_id\":\"n\",\"text\":\"a\\u0000b\"}");
  f = frame_at(ws, 4); /* valid JSON, but a NUL no text may hold: said so, not "not a JSON object" */
  ck_assert_str_eq(str(f, "code"), "invalid");
  ck_assert_ptr_nonnull(strstr(str(f, "message"), "\\u0000, which no text may hold"));
  json_decref(f);
  say(ws, "{\"type\":\"hello\",\"after\":123}"); /* a number is no message id (they are strings) */
  f = frame_at(ws, 5);
  ck_assert_str_eq(str(f, "code"), "invalid");
  json_decref(f);
  say(ws, "{\"type\":\"message\",\"client_id\":\"d\",\"text\":\"a\",\"text\":\"b\"}"); /* which text? refused, as over HTTP */
  f = frame_at(ws, 6);
  ck_assert_str_eq(str(f, "code"), "invalid");
  json_decref(f);
  testhost_commit_all(th);
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_BINARY, "\x01\x02", 2), 0);
  ck_assert_int_eq(ws->close_code, SB_WS_CLOSE_POLICY);
}
END_TEST

START_TEST(a_visitor_holds_at_most_eight_sockets) {
  start();
  for (int i = 0; i < 8; i++) ck_assert_int_eq(open_ws(SITE, NULL)->status, 101);
  ck_assert_int_eq(open_ws(SITE, NULL)->status, 429);
  testhost_ws_peer_close(th, testhost_ws_at(th, 0), 1000);
  ck_assert_int_eq(open_ws(SITE, NULL)->status, 101);
}
END_TEST

START_TEST(a_reply_reaches_every_socket_with_the_agents_name_and_avatar) {
  testhost_set(th, "heading_avatar_url", "https://cdn.example.com/acme.png");
  start();
  const testhost_ws *a = open_ws(SITE, NULL), *b = open_ws(SITE, NULL);
  sb_attachment file = {.url = "/api/v1/attachments/77", .mime_type = "application/pdf", .filename = "scan.pdf",
                        .data = "%PDF", .data_len = 4};
  sb_outbound_message m = {.message_id = "42", .idempotency_key = "42", .attempt = 1, .recipient_id = visitor,
                           .text = "Hi, Ana here.", .agent_name = "Ana Berg",
                           .agent_avatar_url = "https://cdn.example.com/ana.png", .attachments = &file,
                           .attachment_count = 1};
  const testhost_send_result *s = testhost_send(th, &m);
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_OK);
  ck_assert_str_eq(s->text, "42");
  for (int i = 0; i < 2; i++) {
    json_t *f = frame_at(i == 0 ? a : b, 0);
    ck_assert_str_eq(str(f, "type"), "message");
    ck_assert_str_eq(str(f, "direction"), "out");
    ck_assert_str_eq(str(f, "id"), "42");
    ck_assert_str_eq(str(f, "text"), "Hi, Ana here.");
    ck_assert_str_eq(str(json_object_get(f, "author"), "name"), "Ana Berg");
    ck_assert_str_eq(str(json_object_get(f, "author"), "avatar_url"), "https://cdn.example.com/ana.png");
    json_t *att = json_array_get(json_object_get(f, "attachments"), 0);
    ck_assert_str_eq(str(att, "url"), "/files/77?expires=86400&sig=testhost"); /* not the API's token-only link */
    ck_assert_str_eq(str(att, "filename"), "scan.pdf");
    json_decref(f);
  }
  /* an automatic reply speaks as the heading */
  sb_outbound_message auto_reply = {.message_id = "43", .idempotency_key = "43", .attempt = 1,
                                    .flags = SB_OUT_AUTOMATIC, .recipient_id = visitor, .text = "Thanks!"};
  testhost_send(th, &auto_reply);
  json_t *f = frame_at(a, 1);
  ck_assert_str_eq(str(json_object_get(f, "author"), "name"), "Acme");
  ck_assert_str_eq(str(json_object_get(f, "author"), "avatar_url"), "https://cdn.example.com/acme.png");
  ck_assert(json_is_true(json_object_get(f, "automatic")));
  json_decref(f);
  /* so does one without an agent (a script's), picture and all, as history shows it */
  sb_outbound_message script = {.message_id = "44", .idempotency_key = "44", .attempt = 1, .recipient_id = visitor,
                                .text = "Your order shipped."};
  testhost_send(th, &script);
  f = frame_at(a, 2);
  ck_assert_str_eq(str(json_object_get(f, "author"), "name"), "Acme");
  ck_assert_str_eq(str(json_object_get(f, "author"), "avatar_url"), "https://cdn.example.com/acme.png");
  ck_assert(json_is_false(json_object_get(f, "automatic")));
  json_decref(f);
  /* another visitor's sockets get nothing */
  ck_assert_int_eq(testhost_send_text(th, "v-someone-else", "not for you")->outcome, TESTHOST_SEND_OK);
  ck_assert_uint_eq(a->sent_count, 3);
}
END_TEST

START_TEST(receipts_are_watermarks_for_the_visitor) {
  start();
  const testhost_ws *ws = open_ws(SITE, NULL);
  say(ws, "{\"type\":\"seen\",\"status\":\"read\"}");
  say(ws, "{\"type\":\"seen\",\"status\":\"read\"}"); /* within a second: dropped */
  ck_assert_uint_eq(testhost_status_count(th), 1);
  const sb_status_update *u = testhost_status_at(th, 0);
  ck_assert_uint_eq(u->status, SB_STATUS_READ);
  ck_assert_uint_eq(u->flags, SB_STATUS_WATERMARK);
  ck_assert_str_eq(u->recipient_id, visitor);
  ck_assert_uint_eq(u->recipient_kind, SB_IDENTITY_VISITOR);
  testhost_advance(th, 1500);
  say(ws, "{\"type\":\"seen\",\"status\":\"delivered\"}");
  ck_assert_uint_eq(testhost_status_count(th), 2);
  ck_assert_uint_eq(testhost_status_at(th, 1)->status, SB_STATUS_DELIVERED);
}
END_TEST

START_TEST(closing_the_channel_closes_its_sockets) {
  start();
  const testhost_ws *ws = open_ws(SITE, NULL);
  say(ws, "{\"type\":\"message\",\"client_id\":\"late\",\"text\":\"x\"}");
  testhost_disconnect(th);
  ck_assert_int_eq(ws->close_code, SB_WS_CLOSE_GOING_AWAY);
  testhost_destroy(th);
  ck_assert_int_eq(ws->closed_calls, 1);
}
END_TEST

/* The widget's state as a session reports it. */
static json_t *widget_now(void) {
  const sb_http_header h[] = {{"Origin", SITE}};
  const testhost_reply *r = testhost_receive(th, "POST", "/session", h, 1, "{}", 2);
  json_t *j = json_loads(r->body, 0, NULL);
  json_t *w = json_incref(json_object_get(j, "widget"));
  json_decref(j);
  return w;
}

START_TEST(the_teams_availability_sets_the_widgets_state) {
  testhost_set(th, "availability", "users");
  testhost_set(th, "away_behavior", "hide");
  sb_availability nobody = {.status = SB_OK, .eligible = 2, .available = 0, .typical_reply_seconds = 600};
  testhost_availability_answer(th, &nobody);
  start();
  ck_assert_uint_ge(testhost_availability_count(th), 1);
  json_t *w = widget_now();
  ck_assert_str_eq(str(w, "state"), "away");
  ck_assert(json_is_false(json_object_get(w, "launcher")));
  ck_assert_int_eq(json_integer_value(json_object_get(w, "reply_time_seconds")), 600);
  json_decref(w);

  sb_availability busy = {.status = SB_OK, .eligible = 2, .available = 1, .with_capacity = 0,
                          .typical_reply_seconds = -1};
  testhost_availability_answer(th, &busy);
  testhost_advance(th, 10000); /* read again every 10 s */
  w = widget_now();
  ck_assert_str_eq(str(w, "state"), "busy");
  ck_assert(json_is_true(json_object_get(w, "launcher")));
  ck_assert_ptr_nonnull(strstr(str(w, "notice"), "helping someone else"));
  ck_assert(json_is_null(json_object_get(w, "reply_time_seconds")));
  json_decref(w);

  sb_availability there = {.status = SB_OK, .eligible = 2, .available = 1, .with_capacity = 1};
  testhost_availability_answer(th, &there);
  testhost_advance(th, 10000);
  w = widget_now();
  ck_assert_str_eq(str(w, "state"), "open");
  ck_assert(json_is_false(json_object_get(w, "ask_email")));
  json_decref(w);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chat_ws");
  TCase *tc = tcase_create("chat_ws");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, the_handshake_checks_origin_and_token);
  tcase_add_test(tc, hello_reads_the_history_from_the_last_id_seen);
  tcase_add_test(tc, a_message_is_acked_once_stored_and_shown_in_other_tabs);
  tcase_add_test(tc, bad_frames_get_errors_and_limits_hold);
  tcase_add_test(tc, a_visitor_holds_at_most_eight_sockets);
  tcase_add_test(tc, a_reply_reaches_every_socket_with_the_agents_name_and_avatar);
  tcase_add_test(tc, receipts_are_watermarks_for_the_visitor);
  tcase_add_test(tc, closing_the_channel_closes_its_sockets);
  tcase_add_test(tc, the_teams_availability_sets_the_widgets_state);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
