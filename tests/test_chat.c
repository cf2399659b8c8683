/* test_chat.c — plugins/chat (the website chat channel) driven through the
 * SDK's stub test host: settings refused by name, the widget served, the
 * session's signed token and widget settings, origins refused (CORS and
 * preflight too), messages over HTTP deduplicated by the widget's client
 * id, forged tokens, rate and size limits, attachments as bytes, verified
 * identity, replies completed with the help desk's id, and office hours in
 * a real time zone showing and hiding the launcher. The WebSocket paths
 * need the 1.3 host and are proved in a real browser (tests/browser). */
#include <switchboard/testhost.h>

#include "testutil.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_SO SB_PLUGIN_BUILD_DIR "/chat.so"
#define SITE "https://www.example.com"
#define IDENTITY_SECRET "identity-secret-0123456789abcdef"

static testhost *th;

static void setup(void) {
  char err[512];
  ck_assert_msg(testhost_open(CHAT_SO, &th, err, sizeof(err)) == 0, "%s", err);
  testhost_set_channel_name(th, "web");
  testhost_set(th, "allowed_origins", SITE);
  testhost_set(th, "allowed_origins", "http://localhost:3000");
  testhost_set(th, "availability", "always");
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
}

/* A request from a page at origin (NULL: none), with a Bearer token or not. */
static const testhost_reply *call(const char *method, const char *target, const char *origin, const char *token,
                                  const char *body) {
  sb_http_header h[3];
  size_t n = 0;
  char auth[600]; /* "Bearer " and a token of up to 512 bytes */
  if (origin != NULL) h[n++] = (sb_http_header){"Origin", origin};
  if (token != NULL) {
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    h[n++] = (sb_http_header){"Authorization", auth};
  }
  h[n++] = (sb_http_header){"Host", "help.example.org"};
  return testhost_receive(th, method, target, h, n, body, body != NULL ? strlen(body) : 0);
}

static json_t *reply_json(const testhost_reply *r) {
  ck_assert(r->answered);
  json_t *j = json_loads(r->body, 0, NULL);
  ck_assert_msg(j != NULL, "not JSON: %s", r->body);
  return j;
}

/* A new session's token (copied into out). */
static void session(const char *body, char *out, size_t outlen) {
  const testhost_reply *r = call("POST", "/session", SITE, NULL, body);
  ck_assert_msg(r->status == 200, "session: %d %s", r->status, r->body);
  json_t *j = reply_json(r);
  snprintf(out, outlen, "%s", json_string_value(json_object_get(j, "token")));
  json_decref(j);
}

/* Without WebSockets the widget posts its receipts as it posts messages. */
START_TEST(receipts_over_http_are_watermarks_for_the_visitor) {
  start();
  char token[512];
  session("{}", token, sizeof(token));
  const testhost_reply *r = call("POST", "/messages", SITE, token, "{\"type\":\"seen\",\"status\":\"read\"}");
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body, "{\"type\":\"seen\"}");
  /* a status that is neither is refused, not taken as delivered */
  const testhost_reply *bad = call("POST", "/messages", SITE, token, "{\"type\":\"seen\",\"status\":\"opened\"}");
  ck_assert_int_eq(bad->status, 400);
  ck_assert_ptr_nonnull(strstr(bad->body, "delivered or read"));
  ck_assert_uint_eq(testhost_status_count(th), 1);
  const sb_status_update *u = testhost_status_at(th, 0);
  ck_assert_uint_eq(u->status, SB_STATUS_READ);
  ck_assert_uint_eq(u->flags, SB_STATUS_WATERMARK);
  ck_assert_uint_eq(u->recipient_kind, SB_IDENTITY_VISITOR);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"type\":\"seen\",\"status\":\"read\"}")->status, 200);
  ck_assert_uint_eq(testhost_status_count(th), 1); /* within a second: dropped */
  testhost_advance(th, 1500);
  call("POST", "/messages", SITE, token, "{\"type\":\"seen\",\"status\":\"delivered\"}");
  ck_assert_uint_eq(testhost_status_count(th), 2);
  ck_assert_uint_eq(testhost_status_at(th, 1)->status, SB_STATUS_DELIVERED);
  ck_assert_int_eq(call("POST", "/messages", SITE, NULL, "{\"type\":\"seen\",\"status\":\"read\"}")->status, 401);
}
END_TEST

START_TEST(settings_are_refused_by_name) {
  static const struct {
    const char *key, *value, *named;
  } cases[] = {
      {"accent_color", "blue", "accent_color"},
      {"allowed_origins", "https://www.example.com/page", "allowed_origins"},
      {"timezone", "../../etc/passwd", "timezone"},
      {"hours", "weekdays 9-5", "hours"},
      {"identity_secret", "short", "identity_secret"},
      {"max_attachment_bytes", "5000000", "max_attachment_bytes"},
      {"rate_limit", "-1", "rate_limit"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[512] = "";
    testhost_set(th, cases[i].key, cases[i].value);
    ck_assert_msg(testhost_validate(th, err, sizeof(err)) != 0, "%s=%s accepted", cases[i].key, cases[i].value);
    ck_assert_msg(strstr(err, cases[i].named) != NULL, "error does not name %s: %s", cases[i].named, err);
    ck_assert_msg(strstr(err, "short\"") == NULL, "the secret's value is printed: %s", err);
    testhost_unset(th, cases[i].key);
    if (strcmp(cases[i].key, "allowed_origins") == 0) testhost_set(th, "allowed_origins", SITE);
  }
  char err[512] = "";
  testhost_set(th, "availability", "hours");
  ck_assert(testhost_validate(th, err, sizeof(err)) != 0);
  ck_assert_msg(strstr(err, "hours") != NULL, "%s", err);
}
END_TEST

START_TEST(the_widget_script_is_served_to_any_page) {
  start();
  const testhost_reply *r = call("GET", "/widget.js", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(testhost_reply_header(r, "Content-Type"), "text/javascript; charset=utf-8");
  ck_assert_ptr_nonnull(strstr(r->body, "data-switchboard"));
  ck_assert_ptr_null(strstr(r->body, "innerHTML"));
  ck_assert_int_eq(call("POST", "/widget.js", NULL, NULL, "")->status, 405);
  ck_assert_int_eq(call("GET", "/nothing", SITE, NULL, NULL)->status, 404);
  /* the token key was made once and kept */
  size_t len = 0;
  ck_assert_ptr_nonnull(testhost_kv_get(th, "token_key", &len));
  ck_assert_uint_eq(len, 64);
}
END_TEST

START_TEST(the_demo_page_is_served_only_when_turned_on) {
  start();
  ck_assert_int_eq(call("GET", "/demo", NULL, NULL, NULL)->status, 404);
  testhost_destroy(th);
  testhost_set(th, "demo_page", "true");
  start();
  const testhost_reply *r = call("GET", "/demo", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(testhost_reply_header(r, "Content-Type"), "text/html; charset=utf-8");
  ck_assert_ptr_nonnull(strstr(r->body, "<script src=\"widget.js\" async></script>"));
}
END_TEST

START_TEST(a_session_gives_a_signed_token_and_the_widget_settings) {
  testhost_set(th, "accent_color", "#123456");
  testhost_set(th, "heading_name", "Acme");
  start();
  const testhost_reply *r = call("POST", "/session", SITE, NULL, "{}");
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(testhost_reply_header(r, "Access-Control-Allow-Origin"), SITE);
  json_t *j = reply_json(r);
  const char *token = json_string_value(json_object_get(j, "token"));
  const char *visitor = json_string_value(json_object_get(j, "visitor_id"));
  ck_assert_ptr_nonnull(token);
  ck_assert_ptr_nonnull(strstr(token, visitor));
  json_t *w = json_object_get(j, "widget");
  ck_assert_str_eq(json_string_value(json_object_get(w, "accent_color")), "#123456");
  ck_assert_str_eq(json_string_value(json_object_get(w, "heading_name")), "Acme");
  ck_assert_str_eq(json_string_value(json_object_get(w, "state")), "open");
  ck_assert(json_is_true(json_object_get(w, "launcher")));

  /* the same token again keeps the visitor */
  char body[700];
  snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
  json_t *again = reply_json(call("POST", "/session", SITE, NULL, body));
  ck_assert_str_eq(json_string_value(json_object_get(again, "visitor_id")), visitor);
  json_decref(again);
  /* a forged one gets a new visitor */
  char forged[512];
  snprintf(forged, sizeof(forged), "%s", token);
  forged[5] = forged[5] == '0' ? '1' : '0';
  snprintf(body, sizeof(body), "{\"token\":\"%s\"}", forged);
  again = reply_json(call("POST", "/session", SITE, NULL, body));
  ck_assert_str_ne(json_string_value(json_object_get(again, "visitor_id")), visitor);
  json_decref(again);
  json_decref(j);
  ck_assert_int_eq(call("POST", "/session", SITE, NULL, "[1]")->status, 400);
}
END_TEST

START_TEST(other_origins_are_refused_everywhere) {
  start();
  const testhost_reply *r = call("POST", "/session", "https://evil.example.net", NULL, "{}");
  ck_assert_int_eq(r->status, 403);
  ck_assert_ptr_null(testhost_reply_header(r, "Access-Control-Allow-Origin"));
  ck_assert_int_eq(call("POST", "/session", NULL, NULL, "{}")->status, 403);
  ck_assert_int_eq(call("OPTIONS", "/session", "https://evil.example.net", NULL, NULL)->status, 403);
  r = call("OPTIONS", "/messages", "http://localhost:3000", NULL, NULL);
  ck_assert_int_eq(r->status, 204);
  ck_assert_str_eq(testhost_reply_header(r, "Access-Control-Allow-Origin"), "http://localhost:3000");
  ck_assert_ptr_nonnull(strstr(testhost_reply_header(r, "Access-Control-Allow-Headers"), "Authorization"));
}
END_TEST

START_TEST(no_listed_origin_means_the_help_desks_own) {
  testhost_unset(th, "allowed_origins");
  start();
  ck_assert_int_eq(call("POST", "/session", "https://help.example.org", NULL, "{}")->status, 200);
  ck_assert_int_eq(call("POST", "/session", SITE, NULL, "{}")->status, 403);
}
END_TEST

START_TEST(a_message_is_stored_once_whatever_the_resends) {
  start();
  char token[400];
  session("{}", token, sizeof(token));
  const char *msg = "{\"client_id\":\"c1\",\"text\":\"<img src=x onerror=alert(1)>\",\"page\":\"https://www.example.com/p\"}";
  const testhost_reply *r = call("POST", "/messages", SITE, token, msg);
  ck_assert(!r->answered); /* answered once stored */
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  const sb_inbound_message *in = testhost_inbound(th, 0);
  ck_assert_uint_eq(in->sender.kind, SB_IDENTITY_VISITOR);
  ck_assert_str_eq(in->text, "<img src=x onerror=alert(1)>");
  ck_assert_ptr_nonnull(strstr(in->external_id, ":c1"));
  ck_assert_ptr_nonnull(strstr(in->external_id, in->sender.id));
  ck_assert_ptr_nonnull(strstr(in->metadata_json, "www.example.com/p"));
  testhost_commit_all(th);
  ck_assert_int_eq(r->status, 200);
  json_t *ack = reply_json(r);
  ck_assert_str_eq(json_string_value(json_object_get(ack, "id")), "msg-1");
  ck_assert(json_is_false(json_object_get(ack, "duplicate")));
  json_decref(ack);

  /* the acknowledgement was lost; the widget sends it again */
  r = call("POST", "/messages", SITE, token, msg);
  testhost_commit_all(th);
  ack = reply_json(r);
  ck_assert_str_eq(json_string_value(json_object_get(ack, "id")), "msg-1");
  ck_assert(json_is_true(json_object_get(ack, "duplicate")));
  json_decref(ack);
  ck_assert_str_eq(testhost_inbound(th, 1)->external_id, testhost_inbound(th, 0)->external_id);

  /* another visitor's same client id is another message */
  char other[400];
  session("{}", other, sizeof(other));
  call("POST", "/messages", SITE, other, msg);
  ck_assert_str_ne(testhost_inbound(th, 2)->external_id, testhost_inbound(th, 0)->external_id);
  testhost_commit_all(th);
}
END_TEST

/* A resend of a stored message gives its rate token back: a visitor on a
 * flaky network is not held up by the widget's own resends. */
START_TEST(resends_do_not_use_up_the_rate) {
  testhost_set(th, "rate_limit", "2");
  start();
  char token[400];
  session("{}", token, sizeof(token));
  const char *first = "{\"client_id\":\"a\",\"text\":\"1\"}";
  call("POST", "/messages", SITE, token, first);
  testhost_commit_all(th);
  for (int i = 0; i < 3; i++) {
    const testhost_reply *r = call("POST", "/messages", SITE, token, first);
    testhost_commit_all(th);
    ck_assert_int_eq(r->status, 200);
    json_t *ack = reply_json(r);
    ck_assert(json_is_true(json_object_get(ack, "duplicate")));
    json_decref(ack);
  }
  const testhost_reply *r = call("POST", "/messages", SITE, token, "{\"client_id\":\"b\",\"text\":\"2\"}");
  testhost_commit_all(th);
  ck_assert_int_eq(r->status, 200); /* the second of two a minute, whatever the resends */
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"c\",\"text\":\"3\"}")->status, 429);
}
END_TEST

START_TEST(tokens_are_checked_and_limits_kept) {
  testhost_set(th, "rate_limit", "2");
  testhost_set(th, "max_message_bytes", "10");
  start();
  char token[400];
  session("{}", token, sizeof(token));
  ck_assert_int_eq(call("POST", "/messages", SITE, NULL, "{\"client_id\":\"a\",\"text\":\"hi\"}")->status, 401);
  char forged[420];
  snprintf(forged, sizeof(forged), "%sx", token);
  ck_assert_int_eq(call("POST", "/messages", SITE, forged, "{\"client_id\":\"a\",\"text\":\"hi\"}")->status, 401);
  ck_assert_int_eq(call("GET", "/messages", SITE, forged, NULL)->status, 401);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"a\",\"text\":\"far too long\"}")->status,
                   413);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"a b\",\"text\":\"hi\"}")->status, 400);
  const testhost_reply *typed = call("POST", "/messages", SITE, token, "{\"client_id\":\"a\",\"text\":5}");
  ck_assert_int_eq(typed->status, 400); /* a text that is no string is malformed, not too large */
  ck_assert_ptr_nonnull(strstr(typed->body, "\"invalid\""));
  const testhost_reply *nul = call("POST", "/messages", SITE, token, "{\"client_id\":\"a\",\"text\":\"a\\u0000b\"}");
  ck_assert_int_eq(nul->status, 400);
  ck_assert_msg(strstr(nul->body, "no text may hold") != NULL, "%s", nul->body);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"a\"}")->status, 400);
  /* an "after" that is no message id is 400, however long (not "no after", not a store error) */
  static const char *const bad_after[] = {"/messages?after=99999999999999999999", "/messages?after=abc",
                                          "/messages?after=1234567890123456789012345678901234567890"};
  for (size_t i = 0; i < sizeof(bad_after) / sizeof(bad_after[0]); i++)
    ck_assert_msg(call("GET", bad_after[i], SITE, token, NULL)->status == 400, "%s", bad_after[i]);
  /* blanks alone are no text; a WebSocket's frame types are no message over HTTP */
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"w\",\"text\":\" \\n \"}")->status, 400);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"type\":\"typing\",\"client_id\":\"t\",\"text\":\"x\"}")->status,
                   400);
  /* an email the agents would answer must be an address, as a web form's is */
  static const char *const bad_emails[] = {"@", "a@", "x@y@z", "kim example.com"};
  for (size_t i = 0; i < sizeof(bad_emails) / sizeof(bad_emails[0]); i++) {
    char frame[200];
    snprintf(frame, sizeof(frame), "{\"client_id\":\"e%zu\",\"text\":\"hi\",\"email\":\"%s\"}", i, bad_emails[i]);
    ck_assert_msg(call("POST", "/messages", SITE, token, frame)->status == 400, "%s taken", bad_emails[i]);
  }
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"a\",\"text\":\"1\"}")->status, 0);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"b\",\"text\":\"2\"}")->status, 0);
  const testhost_reply *r = call("POST", "/messages", SITE, token, "{\"client_id\":\"c\",\"text\":\"3\"}");
  ck_assert_int_eq(r->status, 429);
  ck_assert_uint_eq(testhost_inbound_count(th), 2);
  testhost_commit_all(th);
  testhost_advance(th, 31000); /* a token back after 30 s at 2 a minute */
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"c\",\"text\":\"3\"}")->status, 0);
  testhost_commit_all(th);
}
END_TEST

START_TEST(attachments_arrive_as_bytes_within_limits) {
  testhost_set(th, "max_attachment_bytes", "8");
  start();
  char token[400];
  session("{}", token, sizeof(token));
  /* "hello!" */
  call("POST", "/messages", SITE, token,
       "{\"client_id\":\"f1\",\"attachments\":[{\"filename\":\"a.txt\",\"mime_type\":\"text/plain\",\"data\":\"aGVsbG8h\"}]}");
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  const sb_inbound_message *in = testhost_inbound(th, 0);
  ck_assert_uint_eq(in->attachment_count, 1);
  ck_assert_uint_eq(in->attachments[0].data_len, 6);
  ck_assert_int_eq(memcmp(in->attachments[0].data, "hello!", 6), 0);
  ck_assert_str_eq(in->attachments[0].filename, "a.txt");
  ck_assert_str_eq(in->attachments[0].mime_type, "text/plain");
  testhost_commit_all(th);
  ck_assert_int_eq(call("POST", "/messages", SITE, token,
                        "{\"client_id\":\"f2\",\"attachments\":[{\"mime_type\":\"text/plain\",\"data\":\"aGVsbG8gd29ybGQh\"}]}")
                       ->status,
                   413);
  ck_assert_int_eq(call("POST", "/messages", SITE, token,
                        "{\"client_id\":\"f3\",\"attachments\":[{\"mime_type\":\"text/html\",\"data\":\"aGk=\"}]}")
                       ->status,
                   415);
  ck_assert_int_eq(call("POST", "/messages", SITE, token,
                        "{\"client_id\":\"f4\",\"attachments\":[{\"mime_type\":\"text/plain\",\"data\":\"a!b=\"}]}")
                       ->status,
                   400);
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
}
END_TEST

START_TEST(a_verified_user_is_that_users_contact) {
  testhost_set(th, "identity_secret", IDENTITY_SECRET);
  start();
  uint8_t mac[32];
  char hex[65], body[300];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)IDENTITY_SECRET, strlen(IDENTITY_SECRET));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)"user-42", 7);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  snprintf(body, sizeof(body), "{\"user_id\":\"user-42\",\"user_hash\":\"%s\"}", hex);
  json_t *j = reply_json(call("POST", "/session", SITE, NULL, body));
  ck_assert(json_is_true(json_object_get(j, "verified")));
  ck_assert_str_eq(json_string_value(json_object_get(j, "visitor_id")), "user-42");
  char token[400];
  snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(j, "token")));
  json_decref(j);
  call("POST", "/messages", SITE, token, "{\"client_id\":\"u1\",\"text\":\"hi\",\"name\":\"Kim\",\"email\":\"kim@example.com\"}");
  const sb_inbound_message *in = testhost_inbound(th, 0);
  ck_assert_uint_eq(in->sender.kind, SB_IDENTITY_CUSTOM);
  ck_assert_str_eq(in->sender.id, "user-42");
  ck_assert_str_eq(in->sender.email, "kim@example.com");
  testhost_commit_all(th);
  /* their token alone brings them back, verified, as a visitor's does */
  char again[600];
  snprintf(again, sizeof(again), "{\"token\":\"%s\"}", token);
  j = reply_json(call("POST", "/session", SITE, NULL, again));
  ck_assert(json_is_true(json_object_get(j, "verified")));
  ck_assert_str_eq(json_string_value(json_object_get(j, "visitor_id")), "user-42");
  json_decref(j);

  snprintf(body, sizeof(body), "{\"user_id\":\"user-43\",\"user_hash\":\"%s\"}", hex);
  ck_assert_int_eq(call("POST", "/session", SITE, NULL, body)->status, 403);

  /* a user id shaped like an anonymous visitor's would share that visitor's
   * sockets (and replies): refused, though signed */
  static const char lookalike[] = "v0123456789abcdef0123456789abcdef";
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)IDENTITY_SECRET, strlen(IDENTITY_SECRET));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)lookalike, strlen(lookalike));
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"user_hash\":\"%s\"}", lookalike, hex);
  const testhost_reply *shaped = call("POST", "/session", SITE, NULL, body);
  ck_assert_int_eq(shaped->status, 400);
  ck_assert_ptr_nonnull(strstr(shaped->body, "anonymous visitor"));

  /* A new identity_secret ends the tokens made under the old one... */
  testhost_destroy(th);
  testhost_unset(th, "identity_secret");
  testhost_set(th, "identity_secret", "another-identity-secret-0123456789");
  start();
  ck_assert_int_eq(call("GET", "/messages", SITE, token, NULL)->status, 401);
  /* ...and with verified identity off, no user token holds anywhere. */
  testhost_destroy(th);
  testhost_unset(th, "identity_secret");
  start();
  ck_assert_int_eq(call("GET", "/messages", SITE, token, NULL)->status, 401);
  ck_assert_int_eq(call("POST", "/messages", SITE, token, "{\"client_id\":\"u2\",\"text\":\"still me?\"}")->status,
                   401);
}
END_TEST

START_TEST(a_reply_completes_with_the_help_desks_id_even_with_no_socket_open) {
  start();
  const testhost_send_result *s = testhost_send_text(th, "v00ff", "Hello from Ana");
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_OK);
  ck_assert_str_eq(s->text, "out-1");
  ck_assert_int_eq(s->completions, 1);
}
END_TEST

/* The session's widget state and launcher at a given time. */
static void widget_at(int64_t unix_ms, const char *state, int launcher) {
  testhost_set_time(unix_ms);
  json_t *j = reply_json(call("POST", "/session", SITE, NULL, "{}"));
  json_t *w = json_object_get(j, "widget");
  ck_assert_str_eq(json_string_value(json_object_get(w, "state")), state);
  ck_assert_int_eq(json_is_true(json_object_get(w, "launcher")), launcher);
  json_decref(j);
}

START_TEST(office_hours_in_a_time_zone_show_and_hide_the_launcher) {
  testhost_set(th, "availability", "hours");
  testhost_set(th, "hours", "mon-fri 09:00-17:00");
  testhost_set(th, "timezone", "Europe/Oslo");
  testhost_set(th, "away_behavior", "hide");
  start();
  widget_at(INT64_C(1784116800000), "open", 1);  /* Wednesday 14:00 in Oslo (12:00Z) */
  widget_at(INT64_C(1784131200000), "away", 0);  /* 18:00 in Oslo, still 16:00Z */
  widget_at(INT64_C(1784278800000), "open", 1);  /* Friday 09:00Z: 11:00 in Oslo */
  widget_at(INT64_C(1784368800000), "away", 0);  /* Saturday 10:00Z */
}
END_TEST

START_TEST(an_unknown_time_zone_is_a_configuration_error) {
  testhost_set(th, "availability", "hours");
  testhost_set(th, "hours", "mon-fri 09:00-17:00");
  testhost_set(th, "timezone", "Mars/Olympus_Mons");
  start();
  ck_assert_uint_eq(testhost_state(th), SB_STATE_CONFIG_ERROR);
}
END_TEST

START_TEST(away_shows_the_message_and_asks_for_an_email) {
  testhost_set(th, "availability", "hours");
  testhost_set(th, "hours", "sat 10:00-11:00");
  testhost_set(th, "away_behavior", "away_message");
  testhost_set(th, "away_message", "Back Saturday.");
  start();
  testhost_set_time(INT64_C(1784116800000));
  json_t *j = reply_json(call("POST", "/session", SITE, NULL, "{}"));
  json_t *w = json_object_get(j, "widget");
  ck_assert_str_eq(json_string_value(json_object_get(w, "notice")), "Back Saturday.");
  ck_assert(json_is_true(json_object_get(w, "ask_email")));
  ck_assert(json_is_true(json_object_get(w, "launcher")));
  json_decref(j);
}
END_TEST

int main(void) {
  if (sodium_init() < 0) return 1;
  Suite *s = suite_create("chat");
  TCase *tc = tcase_create("chat");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, settings_are_refused_by_name);
  tcase_add_test(tc, receipts_over_http_are_watermarks_for_the_visitor);
  tcase_add_test(tc, the_widget_script_is_served_to_any_page);
  tcase_add_test(tc, the_demo_page_is_served_only_when_turned_on);
  tcase_add_test(tc, a_session_gives_a_signed_token_and_the_widget_settings);
  tcase_add_test(tc, other_origins_are_refused_everywhere);
  tcase_add_test(tc, no_listed_origin_means_the_help_desks_own);
  tcase_add_test(tc, a_message_is_stored_once_whatever_the_resends);
  tcase_add_test(tc, tokens_are_checked_and_limits_kept);
  tcase_add_test(tc, resends_do_not_use_up_the_rate);
  tcase_add_test(tc, attachments_arrive_as_bytes_within_limits);
  tcase_add_test(tc, a_verified_user_is_that_users_contact);
  tcase_add_test(tc, a_reply_completes_with_the_help_desks_id_even_with_no_socket_open);
  tcase_add_test(tc, office_hours_in_a_time_zone_show_and_hide_the_launcher);
  tcase_add_test(tc, an_unknown_time_zone_is_a_configuration_error);
  tcase_add_test(tc, away_shows_the_message_and_asks_for_an_email);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
