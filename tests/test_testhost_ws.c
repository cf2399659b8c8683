/* test_testhost_ws.c — sdk/testhost/testhost_ws.c: the stub test host's ABI
 * 1.3 side, proven by unit-testing the wsecho test plugin
 * (tests/plugins/wsecho.c) the way a plugin author would: handshakes and
 * refusals, messages both ways, closes from either end, timers sending
 * outside callbacks, canned history and availability answers. */
#include <switchboard/testhost.h>

#include "testutil.h"

#include <string.h>

#define WSECHO SB_TEST_PLUGIN_DIR "/wsecho.so"

static testhost *th;
static const sb_http_header good_origin[] = {{"Origin", "http://allowed.test"}};

static void setup(void) {
  char err[512];
  ck_assert_msg(testhost_open(WSECHO, &th, err, sizeof(err)) == 0, "%s", err);
  ck_assert_msg(testhost_start(th, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void) {
  testhost_close(th);
  th = NULL;
}

static int sent_is(const testhost_ws *ws, size_t i, uint32_t kind, const char *text) {
  return i < ws->sent_count && ws->sent[i].kind == kind && ws->sent[i].len == strlen(text) &&
         memcmp(ws->sent[i].data, text, ws->sent[i].len) == 0;
}

START_TEST(handshake_verdicts_map_to_statuses) {
  const testhost_ws *ws = testhost_ws_open(th, "/socket", good_origin, 1);
  ck_assert_ptr_nonnull(ws);
  ck_assert_int_eq(ws->status, 101);
  ck_assert_int_eq(ws->open, 1);
  ck_assert(sent_is(ws, 0, SB_WS_TEXT, "hello"));
  static const sb_http_header evil[] = {{"Origin", "http://evil.test"}};
  ck_assert_int_eq(testhost_ws_open(th, "", evil, 1)->status, 403);
  ck_assert_int_eq(testhost_ws_open(th, "", NULL, 0)->status, 403);
  ck_assert_int_eq(testhost_ws_open(th, "/missing", good_origin, 1)->status, 404);
  ck_assert_int_eq(testhost_ws_open(th, "?refuse=busy", good_origin, 1)->status, 429);
  ck_assert_int_eq(testhost_ws_open(th, "?refuse=big", good_origin, 1)->status, 413);
  const testhost_ws *bad = testhost_ws_open(th, "?refuse=bad", good_origin, 1);
  ck_assert_int_eq(bad->status, 400);
  ck_assert_int_eq(bad->rc, SB_EINVAL);
  ck_assert_int_eq(bad->open, 0);
  ck_assert_uint_eq(testhost_ws_count(th), 7);
  ck_assert_ptr_eq(testhost_ws_at(th, 0), ws);
}
END_TEST

START_TEST(messages_are_echoed_in_their_kind) {
  const testhost_ws *ws = testhost_ws_open(th, "", good_origin, 1);
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_TEXT, "héllo", strlen("héllo")), SB_OK);
  ck_assert(sent_is(ws, 1, SB_WS_TEXT, "héllo"));
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_BINARY, "\0\xff", 2), SB_OK);
  ck_assert_uint_eq(ws->sent_count, 3);
  ck_assert_uint_eq(ws->sent[2].kind, SB_WS_BINARY);
  ck_assert_uint_eq(ws->sent[2].len, 2);
  ck_assert(memcmp(ws->sent[2].data, "\0\xff", 2) == 0);
}
END_TEST

START_TEST(invalid_utf8_closes_with_1007_like_the_daemon) {
  const testhost_ws *ws = testhost_ws_open(th, "", good_origin, 1);
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_TEXT, "\xff\xfe", 2), SB_EINVAL);
  ck_assert_int_eq(ws->open, 0);
  ck_assert_int_eq(ws->closed_calls, 1);
  ck_assert_int_eq(ws->closed_code, 1007);
  ck_assert_uint_eq(ws->sent_count, 1); /* nothing echoed */
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_TEXT, "x", 1), SB_ENOENT);
}
END_TEST

START_TEST(a_plugin_close_is_recorded_and_answered_on_the_loop) {
  const testhost_ws *ws = testhost_ws_open(th, "", good_origin, 1);
  ck_assert_int_eq(testhost_ws_message(th, ws, SB_WS_TEXT, "close", 5), SB_OK);
  ck_assert_int_eq(ws->close_calls, 2); /* the second call is the harmless repeat */
  ck_assert_int_eq(ws->close_code, 4000);
  ck_assert_str_eq(ws->close_reason, "bye");
  ck_assert_int_eq(ws->closed_calls, 1);
  ck_assert_int_eq(ws->closed_code, 4000);
  ck_assert(testhost_log_find(th, "ws_closed conn=1 code=4000 from=127.0.0.1 late_send=-2"));
  /* wsecho tries a send inside ws_closed on purpose: refused, and misuse */
  ck_assert_uint_eq(testhost_misuse_count(th), 1);
  ck_assert_ptr_nonnull(strstr(testhost_misuse_at(th, 0), "ws_send inside ws_closed"));
}
END_TEST

START_TEST(the_peer_closing_or_vanishing_runs_ws_closed_once) {
  const testhost_ws *a = testhost_ws_open(th, "", good_origin, 1);
  const testhost_ws *b = testhost_ws_open(th, "", good_origin, 1);
  ck_assert_int_eq(testhost_ws_peer_close(th, a, 1000), SB_OK);
  ck_assert_int_eq(testhost_ws_peer_close(th, b, SB_WS_CLOSE_ABNORMAL), SB_OK);
  ck_assert_int_eq(testhost_ws_peer_close(th, b, 1000), SB_ENOENT);
  ck_assert_int_eq(a->closed_code, 1000);
  ck_assert_int_eq(b->closed_code, 1006);
  ck_assert_int_eq(b->closed_calls, 1);
}
END_TEST

START_TEST(a_timer_sends_outside_any_callback) {
  const testhost_ws *ws = testhost_ws_open(th, "", good_origin, 1);
  testhost_ws_message(th, ws, SB_WS_TEXT, "tick", 4);
  ck_assert_uint_eq(ws->sent_count, 1);
  testhost_advance(th, 20);
  ck_assert(sent_is(ws, 1, SB_WS_TEXT, "tick"));
}
END_TEST

START_TEST(destroy_closes_open_websockets_with_1001_first) {
  const testhost_ws *ws = testhost_ws_open(th, "", good_origin, 1);
  testhost_ws_message(th, ws, SB_WS_TEXT, "tick", 4); /* a timer left running */
  testhost_destroy(th);
  ck_assert_int_eq(ws->closed_code, 1001);
  ck_assert_int_eq(ws->closed_calls, 1);
  ck_assert(testhost_log_find(th, "wsecho destroyed with 0 open"));
}
END_TEST

START_TEST(history_and_availability_get_the_canned_answers) {
  const testhost_ws *ws = testhost_ws_open(th, "", good_origin, 1);
  testhost_ws_message(th, ws, SB_WS_TEXT, "history", 7);
  ck_assert(sent_is(ws, 1, SB_WS_TEXT, "history 0 0 contact=-"));
  sb_history_message msgs[] = {{.message_id = "7", .direction = SB_DIRECTION_IN, .text = "first words"},
                               {.message_id = "8", .direction = SB_DIRECTION_OUT, .text = "hi", .author_name = "Ana"}};
  sb_history h = {.status = SB_OK, .messages = msgs, .count = 2, .contact_name = "Kim"};
  ck_assert_int_eq(testhost_history_answer(th, &h), SB_OK);
  testhost_ws_message(th, ws, SB_WS_TEXT, "history", 7);
  ck_assert(sent_is(ws, 2, SB_WS_TEXT, "history 0 2 first words contact=Kim"));
  ck_assert_uint_eq(testhost_history_count(th), 2);
  ck_assert_str_eq(testhost_history_at(th, 1)->id, "v1");
  ck_assert_uint_eq(testhost_history_at(th, 1)->limit, 10);
  ck_assert_uint_eq(testhost_history_at(th, 1)->kind, SB_IDENTITY_VISITOR);

  testhost_ws_message(th, ws, SB_WS_TEXT, "avail", 5);
  ck_assert(sent_is(ws, 3, SB_WS_TEXT, "avail 0 0/0/0 -1"));
  sb_availability av = {.status = SB_OK, .eligible = 3, .available = 2, .with_capacity = 1, .typical_reply_seconds = 90};
  testhost_availability_answer(th, &av);
  testhost_ws_message(th, ws, SB_WS_TEXT, "avail", 5);
  ck_assert(sent_is(ws, 4, SB_WS_TEXT, "avail 0 3/2/1 90"));
  ck_assert_uint_eq(testhost_availability_count(th), 2);
}
END_TEST

static int history_status = 1, availability_status = 1;
static void on_history(void *arg, const sb_history *h) { history_status = h->status; }
static void on_availability(void *arg, const sb_availability *a) { availability_status = a->status; }

START_TEST(reads_pending_at_destroy_complete_before_it) {
  const sb_host *host = testhost_host();
  ck_assert_int_eq(host->availability(testhost_channel(th), NULL, NULL), SB_EINVAL);
  sb_history_request bad = {.struct_size = sizeof(bad), .id = "v1", .limit = 500};
  ck_assert_int_eq(host->history(testhost_channel(th), &bad, on_history, NULL), SB_EINVAL);
  /* called outside a drive function, their done waits for the next loop
   * turn; destroy completes them (the loop's turn during disconnect, or
   * cancelled) before destroy() */
  sb_history_request q = {.struct_size = sizeof(q), .id = "v1"};
  ck_assert_int_eq(host->history(testhost_channel(th), &q, on_history, NULL), SB_OK);
  ck_assert_int_eq(host->availability(testhost_channel(th), on_availability, NULL), SB_OK);
  ck_assert_int_eq(history_status, 1);
  testhost_destroy(th);
  ck_assert(history_status == SB_OK || history_status == SB_ECANCELED);
  ck_assert(availability_status == SB_OK || availability_status == SB_ECANCELED);
}
END_TEST

int main(void) {
  Suite *s = suite_create("testhost_ws");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, handshake_verdicts_map_to_statuses);
  tcase_add_test(tc, messages_are_echoed_in_their_kind);
  tcase_add_test(tc, invalid_utf8_closes_with_1007_like_the_daemon);
  tcase_add_test(tc, a_plugin_close_is_recorded_and_answered_on_the_loop);
  tcase_add_test(tc, the_peer_closing_or_vanishing_runs_ws_closed_once);
  tcase_add_test(tc, a_timer_sends_outside_any_callback);
  tcase_add_test(tc, destroy_closes_open_websockets_with_1001_first);
  tcase_add_test(tc, history_and_availability_get_the_canned_answers);
  tcase_add_test(tc, reads_pending_at_destroy_complete_before_it);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
