/* test_form.c — plugins/form (the web form channel) driven through the SDK's
 * stub test host: urlencoded, multipart (a binary file's bytes intact) and
 * JSON submissions becoming one conversation each, answered only once
 * stored; required fields, addresses, file limits and content types
 * refused by name; duplicates by key and by content hash; the honeypot;
 * origins, CORS and the preflight; signed server posts; the rate limit;
 * redirects and pages; malformed multipart; send() refusing clearly. */
#include <switchboard/testhost.h>

#include "testutil.h"

#include "form.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORM_SO SB_PLUGIN_BUILD_DIR "/form.so"
#define SITE "https://www.example.com"
#define SECRET "form-secret-0123456789abcdef0123"
#define URLENC "application/x-www-form-urlencoded"
#define BOUNDARY "----WebKitFormBoundaryQ1w2E3r4"
#define MULTIPART "multipart/form-data; boundary=" BOUNDARY

static testhost *th;

static void setup(void) {
  char err[512];
  ck_assert_msg(testhost_open(FORM_SO, &th, err, sizeof(err)) == 0, "%s", err);
  testhost_set_channel_name(th, "contact");
  testhost_set(th, "allowed_origins", SITE);
  testhost_set(th, "fields", "order_number");
  testhost_set(th, "fields", "topic");
  testhost_set(th, "rate_per_minute", "0"); /* the rate test sets its own */
}

static void teardown(void) {
  ck_assert_int_eq(testhost_misuse_count(th), 0);
  testhost_close(th);
  th = NULL;
}

static void start(void) {
  char err[512];
  ck_assert_msg(testhost_start(th, err, sizeof(err)) == 0, "%s", err);
  testhost_autocommit(th, 1);
}

/* POSTs body as content type ct from a page at origin (NULL: no Origin),
 * with up to two extra headers (name, value pairs; NULL to skip). */
static const testhost_reply *post_h(const char *ct, const char *body, size_t len, const char *origin, const char *h1,
                                    const char *v1, const char *h2, const char *v2) {
  sb_http_header h[6];
  size_t n = 0;
  if (ct != NULL) h[n++] = (sb_http_header){"Content-Type", ct};
  if (origin != NULL) h[n++] = (sb_http_header){"Origin", origin};
  h[n++] = (sb_http_header){"Host", "help.example.org"};
  if (h1 != NULL) h[n++] = (sb_http_header){h1, v1};
  if (h2 != NULL) h[n++] = (sb_http_header){h2, v2};
  return testhost_receive(th, "POST", "", h, n, body, len > 0 ? len : strlen(body));
}

static const testhost_reply *post(const char *ct, const char *body, const char *origin) {
  return post_h(ct, body, 0, origin, NULL, NULL, NULL, NULL);
}

static json_t *reply_json(const testhost_reply *r) {
  ck_assert(r->answered);
  json_t *j = json_loads(r->body, 0, NULL);
  ck_assert_msg(j != NULL, "not JSON: %s", r->body);
  return j;
}

/* Asserts an error answer with status and (when not NULL) the field named. */
static void assert_problem(const testhost_reply *r, int status, const char *field) {
  ck_assert_msg(r->answered && r->status == status, "want %d, got %d: %s", status, r->status, r->body);
  json_t *j = reply_json(r);
  json_t *e = json_object_get(j, "error");
  ck_assert_msg(json_is_string(json_object_get(e, "code")) && json_is_string(json_object_get(e, "message")), "%s",
                r->body);
  if (field != NULL) {
    ck_assert_msg(json_is_string(json_object_get(e, "field")), "no field in %s", r->body);
    ck_assert_str_eq(json_string_value(json_object_get(e, "field")), field);
  }
  json_decref(j);
}

static const char *meta_field(json_t *meta, const char *name) {
  return json_string_value(json_object_get(json_object_get(meta, "fields"), name));
}

START_TEST(a_plain_form_becomes_one_conversation_answered_once_stored) {
  char err[512];
  ck_assert_msg(testhost_start(th, err, sizeof(err)) == 0, "%s", err); /* no autocommit: the answer waits */
  const char *body = "email=Kim.Lee%40Example.COM&name=Kim+Lee&phone=%2B4790000000&subject=Broken+order"
                     "&message=It+arrived+broken.%0D%0APlease+help.&topic=returns&order_number=A-17"
                     "&submit=Send&website=";
  const testhost_reply *r = post_h(URLENC, body, 0, SITE, "Referer", SITE "/contact?x=1", "Accept", "text/html");
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  ck_assert_msg(!r->answered, "answered %d before the message was stored", r->status);
  const sb_inbound_message *m = testhost_inbound(th, 0);
  ck_assert_uint_eq(m->sender.kind, SB_IDENTITY_EMAIL);
  ck_assert_str_eq(m->sender.id, "kim.lee@example.com");
  ck_assert_str_eq(m->sender.email, "kim.lee@example.com");
  ck_assert_str_eq(m->sender.name, "Kim Lee");
  ck_assert_str_eq(m->sender.phone, "+4790000000");
  ck_assert_str_eq(m->subject, "Broken order");
  /* The message, then the listed fields in the operator's order. */
  ck_assert_str_eq(m->text, "It arrived broken.\r\nPlease help.\n\nOrder number: A-17\nTopic: returns");
  ck_assert_ptr_nonnull(m->external_thread_id);
  ck_assert_msg(strncmp(m->external_id, "hash:", 5) == 0, "%s", m->external_id);
  json_t *meta = json_loads(m->metadata_json, 0, NULL);
  ck_assert_ptr_nonnull(meta);
  ck_assert_str_eq(json_string_value(json_object_get(meta, "page")), SITE "/contact?x=1");
  ck_assert_str_eq(meta_field(meta, "order_number"), "A-17");
  ck_assert_str_eq(meta_field(meta, "email"), "Kim.Lee@Example.COM");
  ck_assert_ptr_null(json_object_get(json_object_get(meta, "fields"), "submit")); /* unknown: ignored */
  ck_assert_ptr_null(json_object_get(json_object_get(meta, "fields"), "website"));
  json_decref(meta);
  testhost_inbound_complete(th, 0, SB_OK, "41", 0);
  ck_assert_int_eq(r->status, 303);
  ck_assert_str_eq(testhost_reply_header(r, "Location"), "/hooks/contact/thanks");
  /* A store failure is not a success. */
  r = post(URLENC, "email=a%40b.c&message=second", SITE);
  testhost_inbound_complete(th, 1, SB_EIO, NULL, 0);
  ck_assert_int_eq(r->status, 503);
}
END_TEST

START_TEST(each_submission_is_its_own_conversation) {
  start();
  post(URLENC, "email=kim%40example.com&message=first", SITE);
  post(URLENC, "email=kim%40example.com&message=second", SITE);
  ck_assert_uint_eq(testhost_inbound_count(th), 2);
  ck_assert_str_ne(testhost_inbound(th, 0)->external_thread_id, testhost_inbound(th, 1)->external_thread_id);
  ck_assert_uint_eq(testhost_plugin(th)->caps.thread_model, SB_THREAD_EXTERNAL);
}
END_TEST

/* Bytes every naive multipart reader gets wrong: CR, LF, NUL, a fake
 * delimiter, and a trailing CRLF that belongs to the file. */
static const char binary[] = "\x89PNG\r\n\x1a\n\0\0\r\n--" BOUNDARY "x\r\n\xff\xfe\r\n";
#define BINARY_LEN (sizeof(binary) - 1)

/* A multipart body with an email, a message, one file and an empty file input. */
static size_t multipart_body(char *out, size_t cap, const char *file_type) {
  size_t n = (size_t)snprintf(out, cap,
                              "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nkim@example.com\r\n"
                              "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nSee the "
                              "photo\r\n--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"photo\"; "
                              "filename=\"broken \xc3\xa9.png\"\r\nContent-Type: %s\r\n\r\n",
                              file_type);
  memcpy(out + n, binary, BINARY_LEN);
  n += BINARY_LEN;
  n += (size_t)snprintf(out + n, cap - n,
                        "\r\n--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"more\"; filename=\"\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n\r\n--" BOUNDARY "--\r\n");
  return n;
}

START_TEST(a_multipart_file_arrives_with_its_bytes_intact) {
  start();
  char body[2048];
  size_t len = multipart_body(body, sizeof(body), "image/png");
  const testhost_reply *r = post_h(MULTIPART, body, len, SITE, NULL, NULL, NULL, NULL);
  ck_assert_msg(r->status == 303, "%d %s", r->status, r->body);
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
  const sb_inbound_message *m = testhost_inbound(th, 0);
  ck_assert_str_eq(m->text, "See the photo");
  ck_assert_uint_eq(m->attachment_count, 1); /* the empty file input is no file */
  const sb_attachment *a = &m->attachments[0];
  ck_assert_str_eq(a->filename, "broken \xc3\xa9.png");
  ck_assert_str_eq(a->mime_type, "image/png");
  ck_assert_uint_eq(a->data_len, BINARY_LEN);
  ck_assert_uint_eq(a->size, BINARY_LEN);
  ck_assert_msg(memcmp(a->data, binary, BINARY_LEN) == 0, "the file's bytes changed");
  json_t *meta = json_loads(m->metadata_json, 0, NULL);
  json_t *file = json_array_get(json_object_get(meta, "files"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(file, "field")), "photo");
  ck_assert_int_eq(json_integer_value(json_object_get(file, "size")), (json_int_t)BINARY_LEN);
  json_decref(meta);
}
END_TEST

START_TEST(a_json_fetch_is_answered_201_with_cors) {
  start();
  const char *body = "{\"email\":\"kim@example.com\",\"name\":\"Kim\",\"message\":\"Hello\",\"topic\":[\"a\",\"b\"],"
                     "\"order_number\":17,\"page\":\"" SITE "/pricing\"}";
  const testhost_reply *r = post("application/json", body, SITE);
  ck_assert_msg(r->status == 201, "%d %s", r->status, r->body);
  ck_assert_str_eq(testhost_reply_header(r, "Access-Control-Allow-Origin"), SITE);
  json_t *j = reply_json(r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "id")), testhost_inbound(th, 0)->external_id);
  ck_assert(json_is_false(json_object_get(j, "duplicate")));
  json_decref(j);
  const sb_inbound_message *m = testhost_inbound(th, 0);
  ck_assert_str_eq(m->text, "Hello\n\nOrder number: 17\nTopic: a, b");
  json_t *meta = json_loads(m->metadata_json, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(meta, "page")), SITE "/pricing");
  ck_assert_int_eq(json_array_size(json_object_get(json_object_get(meta, "fields"), "topic")), 2);
  json_decref(meta);
  /* A form post that asks for JSON gets JSON too. */
  r = post_h(URLENC, "email=kim%40example.com&message=again", 0, SITE, "Accept", "application/json", NULL, NULL);
  ck_assert_int_eq(r->status, 201);
  /* JSON that is not an object of text is refused. */
  assert_problem(post("application/json", "[1,2]", SITE), 400, NULL);
  assert_problem(post("application/json", "{\"email\":\"kim@example.com\",\"message\":{\"x\":1}}", SITE), 400,
                 "message");
  assert_problem(post("application/json", "{\"email\":\"kim@example.com\",\"message\":\"a\\u0000b\"}", SITE), 400,
                 NULL);
}
END_TEST

START_TEST(missing_required_fields_are_named) {
  start();
  assert_problem(post("application/json", "{\"message\":\"hi\"}", SITE), 400, "email");
  assert_problem(post("application/json", "{\"email\":\"  \",\"message\":\"hi\"}", SITE), 400, "email");
  assert_problem(post("application/json", "{\"email\":\"kim@example.com\"}", SITE), 400, "message");
  assert_problem(post(URLENC, "email=kim%40example.com&message=", SITE), 400, "message");
  assert_problem(post(URLENC, "email=kim%40example.com&email=ann%40example.com&message=x", SITE), 400, "email");
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
}
END_TEST

START_TEST(the_message_may_be_optional) {
  testhost_set(th, "message_required", "false");
  start();
  const testhost_reply *r = post(URLENC, "email=kim%40example.com&order_number=A-1", SITE);
  ck_assert_int_eq(r->status, 303);
  ck_assert_str_eq(testhost_inbound(th, 0)->text, "Order number: A-1");
}
END_TEST

START_TEST(bad_addresses_are_refused) {
  start();
  static const char *const bad[] = {"kim", "kim@", "@example.com", "kim@@example.com", "a@b@c", "kim lee@example.com",
                                    "kim@exa\tmple.com"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *o = json_pack("{s:s, s:s}", "email", bad[i], "message", "hi");
    char *body = json_dumps(o, 0);
    const testhost_reply *r = post("application/json", body, SITE);
    ck_assert_msg(r->status == 400, "%s accepted: %d", bad[i], r->status);
    assert_problem(r, 400, "email");
    free(body);
    json_decref(o);
  }
  ck_assert_int_eq(sb_email_address_valid("kim+tag@sub.example.co"), 1);
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
}
END_TEST

/* n files of size bytes each, of type, as a multipart body (malloc'd). */
static char *files_body(size_t n, size_t size, const char *type, size_t *len) {
  size_t cap = 512 + n * (size + 256);
  char *b = malloc(cap);
  size_t at = (size_t)snprintf(b, cap,
                               "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nkim@example.com"
                               "\r\n--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n");
  for (size_t i = 0; i < n; i++) {
    at += (size_t)snprintf(b + at, cap - at,
                           "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"f%zu\"; filename=\"f%zu.txt\"\r\n"
                           "Content-Type: %s\r\n\r\n",
                           i, i, type);
    memset(b + at, 'x', size);
    at += size;
    at += (size_t)snprintf(b + at, cap - at, "\r\n");
  }
  at += (size_t)snprintf(b + at, cap - at, "--" BOUNDARY "--\r\n");
  *len = at;
  return b;
}

START_TEST(files_beyond_the_limits_are_refused) {
  testhost_set(th, "max_attachments", "2");
  testhost_set(th, "max_attachment_bytes", "1000");
  start();
  size_t len;
  char *b = files_body(2, 1000, "text/plain", &len);
  ck_assert_int_eq(post_h(MULTIPART, b, len, SITE, NULL, NULL, NULL, NULL)->status, 303);
  free(b);
  b = files_body(1, 1001, "text/plain", &len);
  assert_problem(post_h(MULTIPART, b, len, SITE, "Accept", "application/json", NULL, NULL), 413, "f0");
  free(b);
  b = files_body(3, 10, "text/plain", &len);
  assert_problem(post_h(MULTIPART, b, len, SITE, "Accept", "application/json", NULL, NULL), 400, "f2");
  free(b);
  b = files_body(1, 10, "application/x-msdownload", &len);
  assert_problem(post_h(MULTIPART, b, len, SITE, "Accept", "application/json", NULL, NULL), 415, "f0");
  free(b);
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
}
END_TEST

START_TEST(the_operator_chooses_the_file_types) {
  testhost_set(th, "attachment_types", "application/zip");
  start();
  size_t len;
  char *b = files_body(1, 10, "application/zip", &len);
  ck_assert_int_eq(post_h(MULTIPART, b, len, SITE, NULL, NULL, NULL, NULL)->status, 303);
  free(b);
  b = files_body(1, 10, "image/png", &len);
  assert_problem(post_h(MULTIPART, b, len, SITE, NULL, NULL, NULL, NULL), 415, "f0");
  free(b);
}
END_TEST

START_TEST(other_content_types_are_415) {
  start();
  assert_problem(post("text/plain", "email=kim%40example.com&message=x", SITE), 415, NULL);
  assert_problem(post(NULL, "email=kim%40example.com&message=x", SITE), 415, NULL);
  assert_problem(post("application/xml", "<a/>", SITE), 415, NULL);
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
}
END_TEST

START_TEST(a_resubmission_with_the_same_key_is_a_duplicate) {
  start();
  const char *body = "email=kim%40example.com&message=hi&submission_id=page-load-7f3a9c";
  const testhost_reply *r1 = post_h(URLENC, body, 0, SITE, "Accept", "application/json", NULL, NULL);
  ck_assert_int_eq(r1->status, 201);
  testhost_advance(th, 60ULL * 60 * 1000); /* an hour later: the key still holds */
  const testhost_reply *r2 = post_h(URLENC, body, 0, SITE, "Accept", "application/json", NULL, NULL);
  ck_assert_int_eq(r2->status, 201);
  ck_assert_str_eq(testhost_inbound(th, 0)->external_id, "key:page-load-7f3a9c");
  ck_assert_str_eq(testhost_inbound(th, 1)->external_id, "key:page-load-7f3a9c");
  json_t *j = reply_json(r2);
  ck_assert(json_is_true(json_object_get(j, "duplicate")));
  json_decref(j);
  /* The header works the same way; a field wins over it. */
  r1 = post_h("application/json", "{\"email\":\"kim@example.com\",\"message\":\"x\"}", 0, SITE, "Idempotency-Key",
              "fetch_retry_0001", NULL, NULL);
  ck_assert_str_eq(testhost_inbound(th, 2)->external_id, "key:fetch_retry_0001");
  /* A malformed key is refused, not silently ignored. */
  assert_problem(post_h("application/json", "{\"email\":\"kim@example.com\",\"message\":\"x\"}", 0, SITE,
                        "Idempotency-Key", "short", NULL, NULL),
                 400, "Idempotency-Key");
  assert_problem(post_h(URLENC, "email=kim%40example.com&message=x&submission_id=has%20space%20in%20it", 0, SITE,
                        "Accept", "application/json", NULL, NULL),
                 400, "submission_id");
}
END_TEST

START_TEST(an_identical_resend_within_ten_minutes_is_a_duplicate) {
  start();
  testhost_set_time(TESTHOST_EPOCH_MS - TESTHOST_EPOCH_MS % FORM_DUP_WINDOW_MS + 1000);
  const char *body = "{\"email\":\"Kim@example.com\",\"subject\":\"s\",\"message\":\"Double click\"}";
  post("application/json", body, SITE);
  testhost_advance(th, 5000);
  const testhost_reply *r = post("application/json", body, SITE);
  const char *first = testhost_inbound(th, 0)->external_id;
  ck_assert_str_eq(testhost_inbound(th, 1)->external_id, first);
  json_t *j = reply_json(r);
  ck_assert(json_is_true(json_object_get(j, "duplicate")));
  json_decref(j);
  /* The address's case does not make it new; another message does. */
  post("application/json", "{\"email\":\"kim@EXAMPLE.com\",\"subject\":\"s\",\"message\":\"Double click\"}", SITE);
  ck_assert_str_eq(testhost_inbound(th, 2)->external_id, first);
  post("application/json", "{\"email\":\"kim@example.com\",\"subject\":\"s\",\"message\":\"Other\"}", SITE);
  ck_assert_str_ne(testhost_inbound(th, 3)->external_id, first);
  /* So does anything else kept of it: a phone number, a listed field. */
  post("application/json",
       "{\"email\":\"kim@example.com\",\"subject\":\"s\",\"message\":\"Double click\",\"phone\":\"+47 1\"}", SITE);
  ck_assert_str_ne(testhost_inbound(th, 4)->external_id, first);
  post("application/json",
       "{\"email\":\"kim@example.com\",\"subject\":\"s\",\"message\":\"Double click\",\"order_number\":\"2\"}",
       SITE);
  ck_assert_str_ne(testhost_inbound(th, 5)->external_id, first);
  ck_assert_str_ne(testhost_inbound(th, 5)->external_id, testhost_inbound(th, 4)->external_id);
  /* In the next window the same text is a new conversation. */
  testhost_advance(th, FORM_DUP_WINDOW_MS);
  post("application/json", body, SITE);
  ck_assert_str_ne(testhost_inbound(th, 6)->external_id, first);
}
END_TEST

START_TEST(files_count_in_the_hash) {
  start();
  char body[2048];
  size_t len = multipart_body(body, sizeof(body), "image/png");
  post_h(MULTIPART, body, len, SITE, NULL, NULL, NULL, NULL);
  char *at = memmem(body, len, "\x89PNG", 4); /* the same form with one byte of the file changed */
  ck_assert_ptr_nonnull(at);
  at[1] = 'Q';
  post_h(MULTIPART, body, len, SITE, NULL, NULL, NULL, NULL);
  ck_assert_uint_eq(testhost_inbound_count(th), 2);
  ck_assert_str_ne(testhost_inbound(th, 0)->external_id, testhost_inbound(th, 1)->external_id);
}
END_TEST

START_TEST(a_filled_honeypot_looks_like_success_and_stores_nothing) {
  start();
  testhost_log_echo(th, 0);
  const testhost_reply *r = post(URLENC, "email=bot%40spam.example&message=buy&website=http%3A%2F%2Fspam", SITE);
  ck_assert_int_eq(r->status, 303);
  ck_assert_str_eq(testhost_reply_header(r, "Location"), "/hooks/contact/thanks");
  r = post("application/json", "{\"email\":\"not an address\",\"website\":\"x\"}", SITE);
  ck_assert_int_eq(r->status, 201);
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
  ck_assert(testhost_log_find(th, "honeypot"));
  /* Its id is the one a person's would get, and a resend is a duplicate, as
   * a person's is: with a key, and by content. */
  const char *keyed = "{\"email\":\"bot@spam.example\",\"website\":\"x\",\"submission_id\":\"bot-key-0001\"}";
  const char *plain = "{\"email\":\"bot@spam.example\",\"message\":\"buy more\",\"website\":\"x\"}";
  for (int i = 0; i < 2; i++) {
    const char *bodies[] = {keyed, plain};
    const testhost_reply *r1 = post("application/json", bodies[i], SITE);
    ck_assert_msg(r1->status == 201, "%d %s", r1->status, r1->body);
    json_t *first = reply_json(r1);
    json_t *again = reply_json(post("application/json", bodies[i], SITE));
    const char *id = json_string_value(json_object_get(first, "id"));
    ck_assert_ptr_nonnull(id);
    ck_assert_msg(strncmp(id, i == 0 ? "key:bot-key-0001" : "hash:", i == 0 ? 17 : 5) == 0, "id %s", id);
    ck_assert(i == 0 || strlen(id) == 5 + 32);
    ck_assert_msg(json_is_false(json_object_get(first, "duplicate")), "%d: %s", i, r1->body);
    ck_assert_str_eq(json_string_value(json_object_get(again, "id")), id);
    ck_assert(json_is_true(json_object_get(again, "duplicate")));
    json_decref(first);
    json_decref(again);
  }
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
  /* Left empty, it is a person. */
  ck_assert_int_eq(post(URLENC, "email=kim%40example.com&message=hi&website=", SITE)->status, 303);
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
}
END_TEST

START_TEST(pages_not_listed_are_refused) {
  start();
  const char *body = "email=kim%40example.com&message=hi";
  assert_problem(post(URLENC, body, "https://evil.example"), 403, NULL);
  assert_problem(post(URLENC, body, "null"), 403, NULL);
  assert_problem(post(URLENC, body, SITE ".evil.example"), 403, NULL);
  /* No Origin and no Referer: a server, which must sign. */
  assert_problem(post(URLENC, body, NULL), 403, NULL);
  /* Without Origin the Referer's origin counts. */
  ck_assert_int_eq(post_h(URLENC, body, 0, NULL, "Referer", SITE "/contact", NULL, NULL)->status, 303);
  assert_problem(post_h(URLENC, body, 0, NULL, "Referer", "https://evil.example/x", NULL, NULL), 403, NULL);
  /* The help desk's own address (the hosted form page) is always allowed. */
  ck_assert_int_eq(post(URLENC, "email=kim%40example.com&message=own", "https://help.example.org")->status, 303);
  ck_assert_uint_eq(testhost_inbound_count(th), 2);
}
END_TEST

START_TEST(the_preflight_answers_listed_origins_only) {
  start();
  sb_http_header h[] = {{"Origin", SITE}, {"Access-Control-Request-Method", "POST"},
                        {"Access-Control-Request-Headers", "content-type"}};
  const testhost_reply *r = testhost_receive(th, "OPTIONS", "", h, 3, NULL, 0);
  ck_assert_int_eq(r->status, 204);
  ck_assert_str_eq(testhost_reply_header(r, "Access-Control-Allow-Origin"), SITE);
  ck_assert_ptr_nonnull(strstr(testhost_reply_header(r, "Access-Control-Allow-Methods"), "POST"));
  ck_assert_ptr_nonnull(strstr(testhost_reply_header(r, "Access-Control-Allow-Headers"), "Content-Type"));
  h[0].value = "https://evil.example";
  r = testhost_receive(th, "OPTIONS", "", h, 3, NULL, 0);
  ck_assert_int_eq(r->status, 403);
  ck_assert_ptr_null(testhost_reply_header(r, "Access-Control-Allow-Origin"));
  /* Refusals to a listed page carry CORS, so its script can read them. */
  r = post("application/json", "{}", SITE);
  ck_assert_int_eq(r->status, 400);
  ck_assert_str_eq(testhost_reply_header(r, "Access-Control-Allow-Origin"), SITE);
}
END_TEST

START_TEST(a_signed_server_post_needs_the_secret) {
  testhost_set(th, "secret", SECRET);
  start();
  const char *body = "{\"email\":\"kim@example.com\",\"message\":\"from our backend\"}";
  char hex[65], sig[80];
  testhost_hmac_sha256_hex(SECRET, strlen(SECRET), body, strlen(body), hex);
  snprintf(sig, sizeof(sig), "sha256=%s", hex);
  ck_assert_int_eq(post_h("application/json", body, 0, NULL, "X-Form-Signature", sig, NULL, NULL)->status, 201);
  /* A signature over another body, or garbage, is refused. */
  const char *other = "{\"email\":\"kim@example.com\",\"message\":\"tampered\"}";
  assert_problem(post_h("application/json", other, 0, NULL, "X-Form-Signature", sig, NULL, NULL), 401, NULL);
  assert_problem(post_h("application/json", body, 0, NULL, "X-Form-Signature", "sha256=zz", NULL, NULL), 401, NULL);
  /* Unsigned without a page stays refused even with a secret set. */
  assert_problem(post("application/json", body, NULL), 403, NULL);
  ck_assert_uint_eq(testhost_inbound_count(th), 1);
}
END_TEST

START_TEST(without_a_secret_signed_posts_are_refused) {
  start();
  const char *body = "{\"email\":\"kim@example.com\",\"message\":\"x\"}";
  char hex[65], sig[80];
  testhost_hmac_sha256_hex(SECRET, strlen(SECRET), body, strlen(body), hex);
  snprintf(sig, sizeof(sig), "sha256=%s", hex);
  assert_problem(post_h("application/json", body, 0, NULL, "X-Form-Signature", sig, NULL, NULL), 401, NULL);
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
}
END_TEST

START_TEST(too_many_submissions_from_one_address_get_429) {
  testhost_set(th, "rate_per_minute", "3");
  start();
  for (int i = 0; i < 3; i++) {
    char body[80];
    snprintf(body, sizeof(body), "{\"email\":\"kim@example.com\",\"message\":\"n%d\"}", i);
    ck_assert_int_eq(post("application/json", body, SITE)->status, 201);
  }
  testhost_advance(th, 20000);
  const testhost_reply *r = post("application/json", "{\"email\":\"kim@example.com\",\"message\":\"4\"}", SITE);
  assert_problem(r, 429, NULL);
  ck_assert_str_eq(testhost_reply_header(r, "Retry-After"), "40");
  testhost_advance(th, 40000);
  ck_assert_int_eq(post("application/json", "{\"email\":\"kim@example.com\",\"message\":\"5\"}", SITE)->status, 201);
  ck_assert_uint_eq(testhost_inbound_count(th), 4);
}
END_TEST

START_TEST(the_rate_table_counts_addresses_apart) {
  form_rate_slot slots[8];
  memset(slots, 0, sizeof(slots));
  int64_t t = 1000000;
  ck_assert_int_eq(form_rate_take(slots, 8, "10.0.0.1", t, 1), 0);
  ck_assert_int_gt(form_rate_take(slots, 8, "10.0.0.1", t + 1000, 1), 0);
  ck_assert_int_eq(form_rate_take(slots, 8, "10.0.0.2", t + 1000, 1), 0);
  /* A full table forgets the oldest address, never refuses a new one. */
  for (int i = 0; i < 20; i++) {
    char addr[32];
    snprintf(addr, sizeof(addr), "192.0.2.%d", i);
    ck_assert_int_eq(form_rate_take(slots, 8, addr, t + 2000 + i, 1), 0);
  }
  ck_assert_int_eq(form_rate_take(slots, 8, "10.0.0.3", t + 61000, 0), 0); /* 0: no limit */
}
END_TEST

/* The table forgets an address only when it is full, and then the longest
 * idle one: other addresses, however their hashes fall, never make it
 * forget one still within its minute while there is room. */
START_TEST(the_rate_table_forgets_the_longest_idle_only_when_full) {
  form_rate_slot slots[8];
  memset(slots, 0, sizeof(slots));
  int64_t t = 1000000;
  ck_assert_int_eq(form_rate_take(slots, 8, "198.51.100.7", t, 1), 0);
  for (int i = 0; i < 7; i++) {
    char addr[32];
    snprintf(addr, sizeof(addr), "192.0.2.%d", i);
    ck_assert_int_eq(form_rate_take(slots, 8, addr, t + 100 + i, 1), 0);
  }
  ck_assert_int_gt(form_rate_take(slots, 8, "198.51.100.7", t + 200, 1), 0); /* still counted: the table had room */
  /* full now: a new address takes the longest idle's slot (192.0.2.0), not the busy one's */
  ck_assert_int_eq(form_rate_take(slots, 8, "203.0.113.1", t + 300, 1), 0);
  ck_assert_int_gt(form_rate_take(slots, 8, "198.51.100.7", t + 400, 1), 0);
  ck_assert_int_eq(form_rate_take(slots, 8, "192.0.2.0", t + 500, 1), 0); /* forgotten, so counted afresh */
  /* an address whose minute is over is forgotten before any idle one */
  ck_assert_int_eq(form_rate_take(slots, 8, "198.51.100.7", t + 60400, 1), 0);
}
END_TEST

START_TEST(a_redirect_url_and_readable_error_pages_for_people) {
  testhost_set(th, "redirect_url", "https://www.example.com/thank-you?from=form");
  start();
  const testhost_reply *r = post(URLENC, "email=kim%40example.com&message=hi", SITE);
  ck_assert_int_eq(r->status, 303);
  ck_assert_str_eq(testhost_reply_header(r, "Location"), "https://www.example.com/thank-you?from=form");
  /* A browser's form post that fails gets a page, with the reason escaped. */
  r = post_h(URLENC, "message=hi", 0, SITE, "Accept", "text/html,application/xhtml+xml", NULL, NULL);
  ck_assert_int_eq(r->status, 400);
  ck_assert_ptr_nonnull(strstr(testhost_reply_header(r, "Content-Type"), "text/html"));
  ck_assert_ptr_nonnull(strstr(r->body, "email is required"));
}
END_TEST

START_TEST(the_thank_you_and_hosted_form_pages) {
  testhost_set(th, "thanks_message", "Thanks <b>& see you</b>");
  testhost_set(th, "form_title", "Write to \"us\" <now>");
  start();
  const testhost_reply *r = testhost_receive(th, "GET", "/thanks", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_ptr_nonnull(strstr(r->body, "Thanks &lt;b&gt;&amp; see you&lt;/b&gt;"));
  /* The hosted form is off unless asked for. */
  ck_assert_int_eq(testhost_receive(th, "GET", "/form", NULL, 0, NULL, 0)->status, 404);
  testhost_destroy(th);
  testhost_set(th, "hosted_form", "true");
  start();
  r = testhost_receive(th, "GET", "/form", NULL, 0, NULL, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_ptr_nonnull(strstr(r->body, "Write to &quot;us&quot; &lt;now&gt;"));
  ck_assert_ptr_null(strstr(r->body, "<now>"));
  ck_assert_ptr_nonnull(strstr(r->body, "action=\"/hooks/contact\""));
  ck_assert_ptr_nonnull(strstr(r->body, "name=\"order_number\""));
  ck_assert_ptr_nonnull(strstr(r->body, "name=\"website\""));
  ck_assert_ptr_nonnull(strstr(r->body, "enctype=\"multipart/form-data\""));
  const char *key = strstr(r->body, "name=\"submission_id\" value=\"");
  ck_assert_ptr_nonnull(key);
  char id[65];
  ck_assert_int_eq(sscanf(key + 28, "%64[^\"]", id), 1);
  ck_assert(form_key_valid(id));
}
END_TEST

START_TEST(malformed_multipart_is_400_not_a_crash) {
  start();
  /* Each body would be a valid submission but for its flaw. */
  const char *ok_part = "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nkim@example.com\r\n"
                        "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n";
  char body[1024];
  /* No boundary parameter. */
  snprintf(body, sizeof(body), "%s--" BOUNDARY "--\r\n", ok_part);
  assert_problem(post_h("multipart/form-data", body, 0, SITE, "Accept", "application/json", NULL, NULL), 400, NULL);
  assert_problem(post_h("multipart/form-data; boundary=", body, 0, SITE, "Accept", "application/json", NULL, NULL),
                 400, NULL);
  /* Truncated in a part: no closing delimiter. */
  snprintf(body, sizeof(body),
           "%s--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n"
           "Content-Type: image/png\r\n\r\n\x89PNG\r\n",
           ok_part);
  assert_problem(post_h(MULTIPART, body, 0, SITE, "Accept", "application/json", NULL, NULL), 400, NULL);
  /* Cut inside the headers of a part. */
  snprintf(body, sizeof(body), "%s--" BOUNDARY "\r\nContent-Disposition: form-da", ok_part);
  assert_problem(post_h(MULTIPART, body, 0, SITE, "Accept", "application/json", NULL, NULL), 400, NULL);
  /* A part without a name, and plain garbage. */
  snprintf(body, sizeof(body), "%s--" BOUNDARY "\r\nContent-Type: text/plain\r\n\r\nx\r\n--" BOUNDARY "--\r\n", ok_part);
  assert_problem(post_h(MULTIPART, body, 0, SITE, "Accept", "application/json", NULL, NULL), 400, NULL);
  assert_problem(post_h(MULTIPART, "\r\n\r\n\0\0--", 6, SITE, "Accept", "application/json", NULL, NULL), 400, NULL);
  /* Broken urlencoding and bytes that are not UTF-8. */
  assert_problem(post(URLENC, "email=kim%4&message=x", SITE), 400, NULL);
  assert_problem(post(URLENC, "email=kim%40example.com&message=%FF%FE", SITE), 400, "message");
  assert_problem(post(URLENC, "email=kim%40example.com&message=a%00b", SITE), 400, "message");
  ck_assert_uint_eq(testhost_inbound_count(th), 0);
}
END_TEST

START_TEST(unknown_fields_can_be_refused) {
  testhost_set(th, "unknown_fields", "refuse");
  start();
  assert_problem(post(URLENC, "email=kim%40example.com&message=x&coupon=FREE", SITE), 400, "coupon");
  ck_assert_int_eq(post(URLENC, "email=kim%40example.com&message=x&order_number=1&website=", SITE)->status, 303);
}
END_TEST

START_TEST(it_is_receive_only_and_send_fails_clearly) {
  start();
  const sb_plugin *d = testhost_plugin(th);
  ck_assert(d->caps.flags & SB_CAP_RECEIVE_ONLY);
  ck_assert(d->caps.flags & SB_CAP_ATTACHMENTS);
  const testhost_send_result *s = testhost_send_text(th, "kim@example.com", "hello");
  ck_assert_int_eq(s->outcome, TESTHOST_SEND_FAIL);
  ck_assert_int_eq(s->completions, 1);
  ck_assert_ptr_nonnull(strstr(s->text, "reply_channel"));
  /* Other paths and methods. */
  ck_assert_int_eq(testhost_receive(th, "GET", "", NULL, 0, NULL, 0)->status, 405);
  ck_assert_int_eq(testhost_receive(th, "POST", "/messages", NULL, 0, "x", 1)->status, 404);
}
END_TEST

START_TEST(settings_are_refused_by_name) {
  static const struct {
    const char *key, *value;
  } cases[] = {
      {"allowed_origins", "https://www.example.com/contact"}, {"fields", "email"},
      {"fields", "has space"},          {"attachment_types", "pdf"},
      {"honeypot_field", "message"},    {"rate_per_minute", "-1"},
      {"max_attachments", "21"},        {"max_attachment_bytes", "0"},
      {"secret", ""},                   {"redirect_url", "ftp://example.com/x"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[512] = "";
    testhost_unset(th, cases[i].key);
    testhost_set(th, cases[i].key, cases[i].value);
    ck_assert_msg(testhost_validate(th, err, sizeof(err)) != 0, "%s=%s accepted", cases[i].key, cases[i].value);
    ck_assert_msg(strstr(err, cases[i].key) != NULL, "error does not name %s: %s", cases[i].key, err);
    testhost_unset(th, cases[i].key);
  }
  testhost_set(th, "allowed_origins", SITE);
  testhost_set(th, "fields", "order_number");
  char err[512];
  ck_assert_msg(testhost_validate(th, err, sizeof(err)) == 0, "%s", err);
  /* a field listed twice (its text would be written twice) */
  testhost_set(th, "fields", "order_number");
  ck_assert_int_ne(testhost_validate(th, err, sizeof(err)), 0);
  ck_assert_msg(strstr(err, "\"fields\" value 2 repeats") != NULL, "%s", err);
}
END_TEST

int main(void) {
  if (sodium_init() < 0) return 1;
  Suite *s = suite_create("form");
  TCase *tc = tcase_create("form");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_plain_form_becomes_one_conversation_answered_once_stored);
  tcase_add_test(tc, each_submission_is_its_own_conversation);
  tcase_add_test(tc, a_multipart_file_arrives_with_its_bytes_intact);
  tcase_add_test(tc, a_json_fetch_is_answered_201_with_cors);
  tcase_add_test(tc, missing_required_fields_are_named);
  tcase_add_test(tc, the_message_may_be_optional);
  tcase_add_test(tc, bad_addresses_are_refused);
  tcase_add_test(tc, files_beyond_the_limits_are_refused);
  tcase_add_test(tc, the_operator_chooses_the_file_types);
  tcase_add_test(tc, other_content_types_are_415);
  tcase_add_test(tc, a_resubmission_with_the_same_key_is_a_duplicate);
  tcase_add_test(tc, an_identical_resend_within_ten_minutes_is_a_duplicate);
  tcase_add_test(tc, files_count_in_the_hash);
  tcase_add_test(tc, a_filled_honeypot_looks_like_success_and_stores_nothing);
  tcase_add_test(tc, pages_not_listed_are_refused);
  tcase_add_test(tc, the_preflight_answers_listed_origins_only);
  tcase_add_test(tc, a_signed_server_post_needs_the_secret);
  tcase_add_test(tc, without_a_secret_signed_posts_are_refused);
  tcase_add_test(tc, too_many_submissions_from_one_address_get_429);
  tcase_add_test(tc, the_rate_table_counts_addresses_apart);
  tcase_add_test(tc, the_rate_table_forgets_the_longest_idle_only_when_full);
  tcase_add_test(tc, a_redirect_url_and_readable_error_pages_for_people);
  tcase_add_test(tc, the_thank_you_and_hosted_form_pages);
  tcase_add_test(tc, malformed_multipart_is_400_not_a_crash);
  tcase_add_test(tc, unknown_fields_can_be_refused);
  tcase_add_test(tc, it_is_receive_only_and_send_fails_clearly);
  tcase_add_test(tc, settings_are_refused_by_name);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
