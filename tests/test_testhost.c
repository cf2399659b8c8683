/* test_testhost.c — sdk/testhost (the stub test host): the test plugin
 * (tests/plugins/testplugin.c) driven through it, proving each fake —
 * credentials, inbound records and completion, the clock and timers, the
 * scripted HTTP client, sends, kv, work, watches, misuse — works as
 * plugin.h promises. */
#include <switchboard/testhost.h>

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TESTPLUGIN SB_TEST_PLUGIN_DIR "/testplugin.so"

static testhost *th;

static void setup(void) {
  char err[512];
  ck_assert_msg(testhost_open(TESTPLUGIN, &th, err, sizeof(err)) == 0, "%s", err);
  ck_assert_int_eq(testhost_set(th, "token", "s3cret-token"), 0);
}

static void teardown(void) {
  testhost_close(th);
  th = NULL;
}

static void start(void) {
  char err[512];
  ck_assert_msg(testhost_start(th, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(open_reads_the_descriptor) {
  const sb_plugin *p = testhost_plugin(th);
  ck_assert_str_eq(p->id, "testplugin");
  ck_assert_ptr_nonnull(p->receive);
  ck_assert_int_eq(testhost_host()->abi.magic, SB_MAGIC_HOST);
}
END_TEST

START_TEST(open_refuses_broken_plugins_like_the_loader) {
  static const char *const files[] = {"bad_magic.so", "major_two.so", "newer_minor.so", "oversized.so",
                                      "no_create.so", "no_entry.so", "entry_fails.so", "bad_type.so",
                                      "dup_key.so", "Bad-Id.so", "entry_version.so", "bad_start.so"};
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    char path[512], err[512] = "";
    testhost *bad = NULL;
    snprintf(path, sizeof(path), "%s/%s", SB_TEST_PLUGIN_DIR, files[i]);
    ck_assert_msg(testhost_open(path, &bad, err, sizeof(err)) != 0, "%s was accepted", files[i]);
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(err, path) != NULL, "error for %s does not name the file: %s", files[i], err);
  }
}
END_TEST

START_TEST(credentials_are_validated_with_defaults) {
  char err[512];
  testhost_unset(th, "token");
  ck_assert_int_eq(testhost_check_credentials(th, err, sizeof(err)), SB_EINVAL);
  ck_assert_msg(strstr(err, "\"token\" is required") != NULL, "%s", err);
  testhost_set(th, "token", "s3cret-token");
  testhost_set(th, "retries", "many");
  ck_assert_int_eq(testhost_check_credentials(th, err, sizeof(err)), SB_EINVAL);
  ck_assert_msg(strstr(err, "\"retries\" must be an integer") != NULL, "%s", err);
  testhost_set(th, "retries", "20");
  testhost_set(th, "mode", "slow");
  ck_assert_int_eq(testhost_check_credentials(th, err, sizeof(err)), 0);
  ck_assert_int_eq(testhost_validate(th, err, sizeof(err)), SB_EINVAL);
  ck_assert_msg(strstr(err, "plugin validate: ") == err, "%s", err);
  testhost_set(th, "mode", "warp");
  ck_assert_int_eq(testhost_check_credentials(th, err, sizeof(err)), SB_EINVAL);
  testhost_unset(th, "mode");
  testhost_set(th, "bogus", "1");
  ck_assert_int_eq(testhost_create(th, err, sizeof(err)), SB_EINVAL);
  ck_assert_msg(strstr(err, "unknown credential \"bogus\"") != NULL, "%s", err);
  testhost_unset(th, "bogus");
  testhost_set(th, "tags", "a");
  testhost_set(th, "tags", "b");
  start();
  const testhost_reply *r = testhost_receive(th, "GET", "/config?key=poll_interval", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "value=30s count=1 last=30s int=30000");
  r = testhost_receive(th, "GET", "/config?key=tags", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "value=a count=2 last=b int=-1");
}
END_TEST

START_TEST(inbound_is_recorded_and_answered_after_commit) {
  start();
  ck_assert_uint_eq(testhost_state(th), SB_STATE_CONNECTED);
  sb_http_header h[] = {{"X-Id", "ext-1"}, {"X-Sender", "kim"}};
  const testhost_reply *r = testhost_receive(th, "POST", "/messages", h, 2, "Hello", 0);
  ck_assert_int_eq(r->rc, SB_OK);
  ck_assert_int_eq(r->answered, 0);
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  const sb_inbound_message *m = testhost_inbound(th, 0);
  ck_assert_str_eq(m->external_id, "ext-1");
  ck_assert_str_eq(m->sender.id, "kim");
  ck_assert_str_eq(m->text, "Hello");
  ck_assert_int_eq(m->timestamp_ms, testhost_now());
  ck_assert_int_eq(testhost_inbound_pending(th, 0), 1);
  ck_assert_int_eq(testhost_inbound_complete(th, 0, SB_OK, "m-7", 0), 0);
  ck_assert_int_eq(r->answered, 1);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body, "{\"message_id\":\"m-7\",\"duplicate\":false}");
  ck_assert_int_eq(testhost_inbound_complete(th, 0, SB_OK, "m-7", 0), SB_EINVAL);

  /* A store failure: the plugin answers 503. Autocommit: a duplicate. */
  r = testhost_receive(th, "POST", "/messages", h, 2, "again", 0);
  testhost_inbound_complete(th, 1, SB_EIO, NULL, 0);
  ck_assert_int_eq(r->status, 503);
  testhost_autocommit(th, 1);
  h[0].value = "ext-2";
  r = testhost_receive(th, "POST", "/messages", h, 2, "third", 0);
  ck_assert_int_eq(r->status, 200);
  const testhost_reply *r2 = testhost_receive(th, "POST", "/messages", h, 2, "fourth", 0);
  ck_assert_str_eq(r->body, "{\"message_id\":\"msg-1\",\"duplicate\":false}");
  ck_assert_str_eq(r2->body, "{\"message_id\":\"msg-1\",\"duplicate\":true}");
  ck_assert_uint_eq(testhost_misuse_count(th), 0);
}
END_TEST

START_TEST(refusals_and_missing_routes_are_answered) {
  start();
  const testhost_reply *r = testhost_receive(th, "POST", "/messages", NULL, 0, "no id", 0);
  ck_assert_int_eq(r->status, 400);
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
  ck_assert(testhost_log_find(th, "inbound message refused: it has no external_id"));
  r = testhost_receive(th, "GET", "/refuse", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->rc, SB_EINVAL);
  ck_assert_int_eq(r->by_host, 1);
  ck_assert_int_eq(r->status, 500);
  r = testhost_receive(th, "GET", "/nowhere", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->status, 404);
  ck_assert_int_eq(r->by_host, 0);
}
END_TEST

START_TEST(fake_clock_fires_timers_in_order) {
  start();
  int64_t t0 = testhost_now();
  const testhost_reply *late = testhost_receive(th, "GET", "/timer?ms=500", NULL, 0, NULL, 0);
  const testhost_reply *early = testhost_receive(th, "GET", "/timer?ms=100", NULL, 0, NULL, 0);
  ck_assert_uint_eq(testhost_timer_count(th), 2);
  ck_assert_uint_eq(testhost_advance(th, 99), 0);
  ck_assert_int_eq(early->answered, 0);
  ck_assert_uint_eq(testhost_advance(th, 1), 1);
  ck_assert_int_eq(early->answered, 1);
  ck_assert_int_eq(late->answered, 0);
  ck_assert_uint_eq(testhost_advance(th, 1000), 1);
  ck_assert_str_eq(late->body, "fired");
  ck_assert_int_eq(testhost_now(), t0 + 1100);
  const testhost_reply *now = testhost_receive(th, "GET", "/now", NULL, 0, NULL, 0);
  char want[32];
  snprintf(want, sizeof(want), "%lld", (long long)testhost_now());
  ck_assert_str_eq(now->body, want);
  ck_assert_uint_eq(testhost_timer_count(th), 0);
}
END_TEST

START_TEST(http_is_scripted_and_recorded) {
  start();
  testhost_http_reply(th, "http://svc.test/", 201, "created");
  const testhost_reply *r = testhost_receive(th, "GET", "/http?url=http%3A%2F%2Fsvc.test%2Fa", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "status=0 http=201 error=");
  ck_assert_uint_eq(testhost_http_count(th), 1);
  const testhost_http_record *c = testhost_http_at(th, 0);
  ck_assert_str_eq(c->method, "POST");
  ck_assert_str_eq(c->url, "http://svc.test/a");
  ck_assert_str_eq(c->body, "ping");
  ck_assert_str_eq(testhost_http_header(c, "x-test"), "1");
  ck_assert_uint_eq(c->timeout_ms, 2000);

  /* Failures, a delayed answer, and a request nothing matches. */
  testhost_http_error(th, NULL, SB_ETIMEDOUT, "timed out after 2 s");
  r = testhost_receive(th, "GET", "/http?url=http://other.test/", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "status=-110 http=0 error=timed out after 2 s");
  testhost_http_script s = {.status = SB_OK, .http_status = 204, .delay_ms = 3000};
  testhost_http_script_add(th, "http://svc.test/", &s);
  r = testhost_receive(th, "GET", "/http?url=http://svc.test/slow", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->answered, 0);
  ck_assert_uint_eq(testhost_http_pending(th), 1);
  testhost_advance(th, 3000);
  ck_assert_str_eq(r->body, "status=0 http=204 error=");
  ck_assert_uint_eq(testhost_misuse_count(th), 0);
  r = testhost_receive(th, "GET", "/http?url=http://unscripted.test/", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_msg(strstr(r->body, "status=-5 http=0 error=testhost: no scripted response") == r->body, "%s", r->body);
  ck_assert_uint_eq(testhost_http_unmatched(th), 1);
  ck_assert_uint_eq(testhost_misuse_count(th), 1);
  ck_assert_msg(strstr(testhost_misuse_at(th, 0), "http://unscripted.test/") != NULL, "%s", testhost_misuse_at(th, 0));
}
END_TEST

START_TEST(sends_complete_once_with_their_outcome) {
  start();
  const testhost_send_result *ok = testhost_send_text(th, "kim", "hello");
  ck_assert_int_eq(ok->rc, SB_OK);
  ck_assert_int_eq(ok->outcome, TESTHOST_SEND_OK);
  ck_assert_int_eq(ok->completions, 1);
  ck_assert_str_eq(ok->text, "ext-out-1");
  const testhost_send_result *retry = testhost_send_text(th, NULL, "retry");
  ck_assert_int_eq(retry->outcome, TESTHOST_SEND_RETRY);
  ck_assert_uint_eq(retry->retry_after_ms, 1500);
  ck_assert_str_eq(retry->text, "the service is busy");
  const testhost_send_result *fail = testhost_send_text(th, NULL, "fail");
  ck_assert_int_eq(fail->outcome, TESTHOST_SEND_FAIL);
  const testhost_send_result *later = testhost_send_text(th, NULL, "later");
  ck_assert_int_eq(later->outcome, TESTHOST_SEND_PENDING);
  testhost_advance(th, 5);
  ck_assert_int_eq(later->outcome, TESTHOST_SEND_OK);
  ck_assert_str_eq(later->text, "ext-out-4");
  ck_assert(testhost_log_find(th, "send out-2 attempt 1"));
  ck_assert_uint_eq(testhost_misuse_count(th), 0);
}
END_TEST

/* plugin.h: a send may be completed until the host has cancelled the
 * channel's HTTP calls after disconnect(), so from the cancelled call's
 * done — as the daemon accepts it; not later. */
START_TEST(a_send_may_complete_from_its_cancelled_call) {
  start();
  testhost_http_script slow = {.status = SB_OK, .http_status = 200, .delay_ms = 60000};
  testhost_http_fallback(th, &slow);
  const testhost_send_result *s = testhost_send_text(th, "kim", "http");
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_PENDING);
  testhost_destroy(th);
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_RETRY);
  ck_assert_int_eq(s->completions, 1);
  ck_assert_str_eq(s->text, "the channel closed");
  ck_assert_uint_eq(testhost_misuse_count(th), 0);
}
END_TEST

START_TEST(kv_work_watch_status_state_and_hmac) {
  start();
  const testhost_reply *r = testhost_receive(th, "POST", "/kv?key=cursor", NULL, 0, "42", 0);
  ck_assert_str_eq(r->body, "stored");
  size_t len;
  ck_assert_str_eq(testhost_kv_get(th, "cursor", &len), "42");
  ck_assert_uint_eq(testhost_kv_op_count(th), 1);
  ck_assert_str_eq(testhost_kv_op_at(th, 0)->key, "cursor");
  r = testhost_receive(th, "GET", "/kv?key=cursor", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "42");
  testhost_receive(th, "DELETE", "/kv?key=cursor", NULL, 0, NULL, 0);
  ck_assert_ptr_null(testhost_kv_get(th, "cursor", NULL));
  ck_assert_int_eq(testhost_kv_op_at(th, 1)->deleted, 1);

  r = testhost_receive(th, "GET", "/work", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "work done");

  r = testhost_receive(th, "GET", "/watch", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->answered, 0);
  ck_assert_uint_eq(testhost_watch_count(th), 1);
  /* The plugin wrote one byte into its pipe; the test says it is readable. */
  for (int fd = 0; fd < 1024 && !r->answered; fd++) testhost_watch_fire(th, fd, SB_WATCH_READABLE, SB_OK);
  ck_assert_str_eq(r->body, "readable");
  ck_assert_uint_eq(testhost_watch_count(th), 0);

  sb_http_header h[] = {{"X-Id", "ext-9"}};
  testhost_receive(th, "POST", "/status", h, 1, NULL, 0);
  ck_assert_uint_eq(testhost_status_count(th), 1);
  ck_assert_str_eq(testhost_status_at(th, 0)->external_id, "ext-9");
  ck_assert_uint_eq(testhost_status_at(th, 0)->status, SB_STATUS_DELIVERED);

  testhost_receive(th, "GET", "/state?s=4", NULL, 0, NULL, 0);
  const char *reason;
  ck_assert_uint_eq(testhost_state(th), SB_STATE_RATE_LIMITED);
  ck_assert_uint_eq(testhost_state_at(th, testhost_state_count(th) - 1, &reason), SB_STATE_RATE_LIMITED);
  ck_assert_str_eq(reason, "requested by test");

  r = testhost_receive(th, "GET", "/hmac", NULL, 0, NULL, 0);
  char hex[65];
  testhost_hmac_sha256_hex("key", 3, "data", 4, hex);
  ck_assert_str_eq(hex, "5031fe3d989c6d1537a013fa6e739da23463fdaec3b70137d828e36ace221bd0");
  char want[128];
  snprintf(want, sizeof(want), "%s same=1 differs=1", hex);
  ck_assert_str_eq(r->body, want);
}
END_TEST

START_TEST(secrets_are_redacted_from_logs) {
  start();
  testhost_host()->log(testhost_channel(th), SB_LOG_INFO, "token is %s", "s3cret-token");
  ck_assert(testhost_log_find(th, "created for channel test"));
  ck_assert(testhost_log_find(th, "token is ***"));
  for (size_t i = 0; i < testhost_log_count(th); i++) ck_assert(strstr(testhost_log_at(th, i, NULL), "s3cret") == NULL);
}
END_TEST

START_TEST(connect_failure_and_lifecycle) {
  testhost_set(th, "fail_connect", "true");
  start();
  ck_assert_uint_eq(testhost_state(th), SB_STATE_AUTH_FAILED);
  const char *reason;
  testhost_state_at(th, 0, &reason);
  ck_assert_str_eq(reason, "the service refused the token");
  testhost_http_script slow = {.status = SB_OK, .http_status = 200, .delay_ms = 60000};
  testhost_http_script_add(th, NULL, &slow);
  const testhost_reply *pending = testhost_receive(th, "GET", "/http?url=http://svc.test/", NULL, 0, NULL, 0);
  ck_assert_int_eq(pending->answered, 0);
  testhost_destroy(th);
  ck_assert(testhost_log_find(th, "disconnect after 1 connects"));
  /* The pending call completed with SB_ECANCELED before destroy. */
  ck_assert_str_eq(pending->body, "status=-125 http=0 error=cancelled: the channel is closing");
  ck_assert(testhost_http_at(th, 0)->cancelled);
  ck_assert_uint_eq(testhost_http_pending(th), 0);
  char err[256];
  ck_assert_int_eq(testhost_create(th, err, sizeof(err)), 0);
  ck_assert_int_eq(testhost_create(th, err, sizeof(err)), SB_EBUSY);
  testhost_clear_records(th);
  ck_assert_uint_eq(testhost_log_count(th), 0);
}
END_TEST

START_TEST(misuse_is_recorded) {
  start();
  const sb_host *h = testhost_host();
  sb_timer *t = h->timer_start(testhost_channel(th), 10, 0, (sb_timer_fn)abort, NULL);
  h->timer_stop(t);
  h->timer_stop(t);
  h->set_state(testhost_channel(th), 99, "no such state");
  ck_assert_uint_eq(testhost_misuse_count(th), 2);
  ck_assert_msg(strstr(testhost_misuse_at(th, 0), "timer_stop") != NULL, "%s", testhost_misuse_at(th, 0));
  ck_assert_msg(strstr(testhost_misuse_at(th, 1), "unknown state 99") != NULL, "%s", testhost_misuse_at(th, 1));
  /* An unanswered request is answered 503 by the host at destroy. */
  const testhost_reply *r = testhost_receive(th, "POST", "/kv?key=k", NULL, 0, "v", 0);
  ck_assert_int_eq(r->answered, 1);
  testhost_destroy(th);
  ck_assert_int_eq(r->by_host, 0);
}
END_TEST

static int ticks;
static void tick(void *arg) { ticks += arg != NULL ? 1 : 100; }

START_TEST(repeating_timers_fire_as_often_as_they_fall_due) {
  start();
  const sb_host *h = testhost_host();
  int64_t t0 = testhost_now();
  ticks = 0;
  sb_timer *rep = h->timer_start(testhost_channel(th), 100, 250, tick, &ticks);
  h->timer_start(testhost_channel(th), 400, 0, tick, NULL);
  ck_assert_uint_eq(testhost_advance(th, 1000), 5); /* 100, 350, 400 (one-shot), 600, 850 */
  ck_assert_int_eq(ticks, 104);
  ck_assert_int_eq(testhost_now(), t0 + 1000);
  h->timer_stop(rep);
  ck_assert_uint_eq(testhost_advance(th, 10000), 0);
  testhost_set_time(t0);
  ck_assert_int_eq(testhost_now(), t0);
  ck_assert_uint_eq(testhost_misuse_count(th), 0);
}
END_TEST

static int http_status_seen;
static void http_seen(void *arg, const sb_http_client_response *res) { http_status_seen = res->status; }

START_TEST(http_cancel_completes_at_once) {
  start();
  const sb_host *h = testhost_host();
  testhost_http_script slow = {.status = SB_OK, .http_status = 200, .delay_ms = 1000};
  testhost_http_script_add(th, NULL, &slow);
  sb_http_client_request req = {.struct_size = sizeof(req), .url = "http://svc.test/x"};
  http_status_seen = 1;
  sb_http_call *call = h->http_request(testhost_channel(th), &req, http_seen, NULL);
  ck_assert_ptr_nonnull(call);
  ck_assert_int_eq(http_status_seen, 1);
  h->http_cancel(call);
  ck_assert_int_eq(http_status_seen, SB_ECANCELED);
  ck_assert_str_eq(testhost_http_at(th, 0)->method, "GET");
  ck_assert_uint_eq(testhost_advance(th, 5000), 0);
  /* Invalid requests are refused at once and done is never called. */
  sb_http_client_request bad = {.struct_size = sizeof(bad)};
  ck_assert_ptr_null(h->http_request(testhost_channel(th), &bad, http_seen, NULL));
  ck_assert_uint_eq(testhost_misuse_count(th), 1);
}
END_TEST

START_TEST(channel_name_and_seeded_kv_reach_the_plugin) {
  ck_assert_int_eq(testhost_set_channel_name(th, "support"), 0);
  ck_assert_int_eq(testhost_kv_seed(th, "cursor", "7", 1), 0);
  start();
  ck_assert_str_eq(testhost_host()->channel_name(testhost_channel(th)), "support");
  ck_assert(testhost_log_find(th, "created for channel support"));
  const testhost_reply *r = testhost_receive(th, "GET", "/kv?key=cursor", NULL, 0, NULL, 0);
  ck_assert_str_eq(r->body, "7");
  ck_assert_uint_eq(testhost_kv_op_count(th), 0); /* seeding is not an operation */
  char big[70000];
  memset(big, 'x', sizeof(big));
  r = testhost_receive(th, "POST", "/kv?key=big", NULL, 0, big, sizeof(big));
  ck_assert_int_eq(r->status, 413);
}
END_TEST

/* The stub host plays mail transfers (ABI 1.1) as scripted HTTP records:
 * the email plugin polls and sends through it. */
START_TEST(mail_transfers_are_recorded_and_scripted_like_http) {
  testhost_close(th);
  char err[512];
  ck_assert_msg(testhost_open(SB_PLUGIN_BUILD_DIR "/email.so", &th, err, sizeof(err)) == 0, "%s", err);
  testhost_set(th, "imap_url", "imap://127.0.0.1:1/INBOX");
  testhost_set(th, "smtp_url", "smtp://127.0.0.1:2");
  testhost_set(th, "tls", "none");
  testhost_set(th, "username", "support");
  testhost_set(th, "password", "mail-pass-123");
  testhost_set(th, "from_address", "support@example.org");
  testhost_http_reply(th, "imap://127.0.0.1:1/", 0, "* STATUS INBOX (UIDVALIDITY 7 UIDNEXT 1)\r\n");
  testhost_http_reply(th, "imap://127.0.0.1:1/INBOX", 0, "* SEARCH\r\n");
  start();
  ck_assert_uint_eq(testhost_state(th), SB_STATE_CONNECTED);
  ck_assert_uint_ge(testhost_http_count(th), 2);
  const testhost_http_record *r = testhost_http_at(th, 0);
  ck_assert_str_eq(r->method, "STATUS \"INBOX\" (UIDVALIDITY UIDNEXT)");
  ck_assert_str_eq(testhost_http_header(r, "X-Mail-Username"), "support");
  ck_assert_str_eq(testhost_http_at(th, 1)->method, "UID SEARCH UID 1:*");
  size_t before = testhost_http_count(th);
  testhost_http_reply(th, "smtp://", 250, "");
  const testhost_send_result *s = testhost_send_text(th, "kim@example.com", "hello");
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_OK);
  r = testhost_http_at(th, before);
  ck_assert_str_eq(r->method, "SMTP");
  ck_assert_str_eq(testhost_http_header(r, "X-Mail-From"), "<support@example.org>");
  ck_assert_str_eq(testhost_http_header(r, "X-Mail-Rcpt"), "<kim@example.com>");
  ck_assert_ptr_nonnull(strstr(r->body, "To: kim@example.com"));
  for (size_t i = 0; i < testhost_http_count(th); i++) {
    const testhost_http_record *x = testhost_http_at(th, i);
    for (size_t k = 0; k < x->header_count; k++) ck_assert_ptr_null(strstr(x->headers[k].value, "mail-pass-123"));
  }
  testhost_http_error(th, "smtp://", SB_EACCES, "login refused");
  s = testhost_send_text(th, "kim@example.com", "again");
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_RETRY);
  ck_assert_uint_eq(testhost_state(th), SB_STATE_AUTH_FAILED);
  ck_assert_uint_eq(testhost_misuse_count(th), 0);
}
END_TEST

static Suite *testhost_suite(void) {
  Suite *s = suite_create("testhost");
  TCase *tc = tcase_create("testhost");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, open_reads_the_descriptor);
  tcase_add_test(tc, open_refuses_broken_plugins_like_the_loader);
  tcase_add_test(tc, credentials_are_validated_with_defaults);
  tcase_add_test(tc, inbound_is_recorded_and_answered_after_commit);
  tcase_add_test(tc, refusals_and_missing_routes_are_answered);
  tcase_add_test(tc, fake_clock_fires_timers_in_order);
  tcase_add_test(tc, http_is_scripted_and_recorded);
  tcase_add_test(tc, sends_complete_once_with_their_outcome);
  tcase_add_test(tc, kv_work_watch_status_state_and_hmac);
  tcase_add_test(tc, secrets_are_redacted_from_logs);
  tcase_add_test(tc, connect_failure_and_lifecycle);
  tcase_add_test(tc, misuse_is_recorded);
  tcase_add_test(tc, a_send_may_complete_from_its_cancelled_call);
  tcase_add_test(tc, repeating_timers_fire_as_often_as_they_fall_due);
  tcase_add_test(tc, http_cancel_completes_at_once);
  tcase_add_test(tc, channel_name_and_seeded_kv_reach_the_plugin);
  tcase_add_test(tc, mail_transfers_are_recorded_and_scripted_like_http);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run_suite(testhost_suite()); }
