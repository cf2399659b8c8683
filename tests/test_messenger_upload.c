/* test_messenger_upload.c — plugins/messenger sending files the help desk holds: the Send API call with the
 * file as multipart/form-data (filedata), against the Graph double, which keeps what arrived. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph_double.h"
#include "httpc.h"
#include "plugin_harness.h"
#include "testutil.h"

#define TOKEN "EAAPageToken123"
#define PAGE "1000200030004000"
#define KIM "7000000000000001"
#define CREDS                                                                                               \
  "{\"page_id\":\"" PAGE "\",\"page_access_token\":\"" TOKEN "\",\"app_secret\":\"app-secret-0123456789\"," \
  "\"verify_token\":\"vt-42\",\"graph_api_base\":\"%BASE%\",\"request_timeout\":\"1s\"}"

static void setup(void) {
  ph_setup("messenger", TOKEN, PAGE);
  ph_open(CREDS);
}

static void teardown(void) { ph_teardown(); }

static int64_t now_ms(void) { return (int64_t)time(NULL) * 1000; }

static sb_outbound_message reply(const char *text) {
  sb_outbound_message m = {.message_id = "77",
                           .idempotency_key = "idem-up-77",
                           .attempt = 1,
                           .recipient_id = KIM,
                           .text = text,
                           .last_inbound_ms = now_ms() - 1000};
  return m;
}

/* Fills buf with bytes a multipart reader trips over: every byte value, NULs, bare CR and LF, CRLF
 * CRLF, "--" lines, a close delimiter, and the plugin's own boundary prefix; the rest pseudo-random. */
static size_t nasty_bytes(char *buf, size_t len) {
  static const char *const traps[] = {"\r\n--SwitchboardFormBoundary", "\r\n\r\n", "--\r\n", "\r\n--",
                                      "Content-Disposition: form-data; name=\"filedata\"\r\n", "\n\r", "\0\r\n"};
  size_t n = 0;
  for (int i = 0; i < 256 && n < len; i++) buf[n++] = (char)i;
  uint32_t x = 2463534242u;
  while (n < len) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const char *t = traps[x % 7];
    size_t tl = x % 7 == 6 ? 3 : strlen(t);
    for (size_t i = 0; i < tl && n < len; i++) buf[n++] = t[i];
    for (int i = 0; i < (int)(x % 11) && n < len; i++) buf[n++] = (char)(x >> (i % 4 * 8));
  }
  return n;
}

/* The JSON value of a form field of a request. */
static json_t *field_json(const gd_request *rq, const char *name) {
  const gd_form_part *f = gd_form_get(rq, name);
  ck_assert_msg(f != NULL, "no form field %s", name);
  json_t *v = json_loadb(f->data, f->len, 0, NULL);
  ck_assert_ptr_nonnull(v);
  return v;
}

START_TEST(a_stored_file_is_uploaded_as_filedata_and_arrives_intact) {
  static char bytes[300 * 1024];
  size_t len = nasty_bytes(bytes, sizeof(bytes));
  const sb_attachment att[] = {{.url = "/api/v1/attachments/41",
                                .mime_type = "image/png",
                                .filename = "photo \"1\"\r\n.png",
                                .data = bytes,
                                .data_len = len}};
  sb_outbound_message m = reply(NULL);
  m.attachments = att;
  m.attachment_count = 1;
  m.reply_to_external_id = "m_AAA";
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_int_eq(gd_count_path("/me/messages"), 1);
  const gd_request *rq = gd_last("/me/messages");
  ck_assert_int_eq(rq->status, 200);
  ck_assert_str_eq(rq->auth, "Bearer " TOKEN);
  ck_assert_int_eq(strncmp(rq->content_type, "multipart/form-data; boundary=", 30), 0);
  const gd_form_part *file = gd_form_get(rq, "filedata");
  ck_assert_ptr_nonnull(file);
  ck_assert_uint_eq(file->len, len);
  ck_assert_int_eq(memcmp(file->data, bytes, len), 0);
  ck_assert_str_eq(file->content_type, "image/png");
  ck_assert_str_eq(file->filename, "photo \"1\"\r\n.png");
  json_t *msg = field_json(rq, "message");
  json_t *a = json_object_get(msg, "attachment");
  ck_assert_str_eq(json_string_value(json_object_get(a, "type")), "image");
  ck_assert(json_is_true(json_object_get(json_object_get(a, "payload"), "is_reusable")));
  ck_assert_ptr_null(json_object_get(json_object_get(a, "payload"), "url"));
  ck_assert_str_eq(json_string_value(json_object_get(msg, "metadata")), "switchboard:77");
  json_decref(msg);
  json_t *to = field_json(rq, "recipient");
  ck_assert_str_eq(json_string_value(json_object_get(to, "id")), KIM);
  json_decref(to);
  json_t *rt = field_json(rq, "reply_to");
  ck_assert_str_eq(json_string_value(json_object_get(rt, "mid")), "m_AAA");
  json_decref(rt);
  ck_assert_str_eq(gd_form_get(rq, "messaging_type")->data, "RESPONSE");
}
END_TEST

START_TEST(each_stored_file_goes_with_the_messenger_type_of_its_mime_type) {
  static const struct {
    const char *mime, *type;
  } cases[] = {{"application/pdf", "file"}, {"video/mp4", "video"}, {"audio/mpeg", "audio"},
               {"image/jpeg", "image"},     {NULL, "file"},         {"text/plain", "file"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const sb_attachment att[] = {{.url = "/api/v1/attachments/7",
                                  .mime_type = cases[i].mime,
                                  .filename = "f",
                                  .data = "hello\r\n--x",
                                  .data_len = 10}};
    sb_outbound_message m = reply(NULL);
    m.attachments = att;
    m.attachment_count = 1;
    ph_sent *s = ph_send(&m);
    ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s: %s", cases[i].type, s->text);
    const gd_request *rq = gd_last("/me/messages");
    json_t *msg = field_json(rq, "message");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(msg, "attachment"), "type")), cases[i].type);
    json_decref(msg);
    ck_assert_str_eq(gd_form_get(rq, "filedata")->content_type,
                     cases[i].mime != NULL ? cases[i].mime : "application/octet-stream");
  }
}
END_TEST

START_TEST(text_a_link_and_a_stored_file_each_go_once_and_a_retry_resends_only_the_rest) {
  const sb_attachment att[] = {{.url = "https://files.example/r.pdf", .mime_type = "application/pdf"},
                               {.url = "/api/v1/attachments/9",
                                .mime_type = "application/pdf",
                                .filename = "invoice.pdf",
                                .data = "%PDF-1.4\r\n",
                                .data_len = 10}};
  sb_outbound_message m = reply("See attached");
  m.attachments = att;
  m.attachment_count = 2;
  gd_script_raw("/me/messages", 200, "{\"recipient_id\":\"" KIM "\",\"message_id\":\"m_first\"}");
  gd_script_raw("/me/messages", 200, "{\"recipient_id\":\"" KIM "\",\"message_id\":\"m_second\"}");
  gd_script_error("/me/messages", 500, 2, 0, "Service temporarily unavailable");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_int_eq(gd_count_path("/me/messages"), 3);
  m.attempt = 2;
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "m_first");
  ck_assert_int_eq(gd_count_path("/me/messages"), 4); /* only the upload again */
  int n = gd_count();
  json_t *b = json_loads(gd_at(n - 4)->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "message"), "text")), "See attached");
  json_decref(b);
  b = json_loads(gd_at(n - 3)->body, 0, NULL);
  ck_assert_str_eq(
      json_string_value(json_object_get(
          json_object_get(json_object_get(json_object_get(b, "message"), "attachment"), "payload"), "url")),
      "https://files.example/r.pdf");
  json_decref(b);
  for (int i = n - 2; i < n; i++) {
    const gd_form_part *f = gd_form_get(gd_at(i), "filedata");
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->filename, "invoice.pdf");
    ck_assert_int_eq(memcmp(f->data, "%PDF-1.4\r\n", 10), 0);
  }
}
END_TEST

START_TEST(a_failed_upload_is_retried_when_transient_and_failed_when_permanent) {
  const sb_attachment att[] = {
      {.url = "/api/v1/attachments/3", .mime_type = "image/png", .filename = "a.png", .data = "PNG", .data_len = 3}};
  sb_outbound_message m = reply(NULL);
  m.attachments = att;
  m.attachment_count = 1;
  gd_script_silence("/me/messages");
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_RETRY);
  gd_script_error("/me/messages", 400, 613, 0, "(#613) Calls to this api have exceeded the rate limit.");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_uint_eq(s->retry_after, 60000);
  gd_script_error("/me/messages", 400, 100, 2018047, "(#100) Upload attachment failure.");
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "Upload attachment failure") != NULL, "%s", s->text);
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_OK); /* the next attempt is made whole */
  ck_assert_int_eq(gd_count_path("/me/messages"), 4);
}
END_TEST

START_TEST(an_attachment_neither_fetchable_nor_held_fails_before_anything_is_sent) {
  int before = gd_count();
  sb_outbound_message m = reply("text too");
  const sb_attachment gone[] = {{.url = "/api/v1/attachments/12", .mime_type = "image/png"}};
  m.attachments = gone;
  m.attachment_count = 1;
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "neither a URL Meta can fetch nor a file the help desk holds") != NULL, "%s", s->text);
  const sb_attachment empty[] = {{.url = "/api/v1/attachments/12", .filename = "e.txt", .data = "", .data_len = 0}};
  m.attachments = empty;
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "e.txt") != NULL && strstr(s->text, "empty") != NULL, "%s", s->text);
  size_t big = 25u * 1024 * 1024 + 1;
  char *huge = calloc(1, big);
  const sb_attachment large[] = {{.url = "/api/v1/attachments/13", .filename = "big.bin", .data = huge, .data_len = big}};
  m.attachments = large;
  s = ph_send(&m);
  free(huge);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "25 MiB") != NULL, "%s", s->text);
  ck_assert_int_eq(gd_count(), before);
}
END_TEST

/* --- the double itself: a form without a required field gets Meta's error envelope ------------- */

/* POSTs body as a form under boundary b to the double's path; returns the answer. */
static ph_posted post_form(const char *path, const char *b, const char *body) { return ph_post_form(path, TOKEN, b, body); }

START_TEST(the_double_answers_a_form_without_filedata_or_with_broken_framing_as_meta_does) {
  ph_posted p = post_form("/me/messages", "XyZ",
                       "--XyZ\r\nContent-Disposition: form-data; name=\"recipient\"\r\n\r\n{\"id\":\"" KIM "\"}\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"messaging_type\"\r\n\r\nRESPONSE\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n"
                       "{\"attachment\":{\"type\":\"image\",\"payload\":{\"is_reusable\":true}}}\r\n--XyZ--\r\n");
  ck_assert_int_eq(p.code, 400);
  json_t *root = json_loads(p.body, 0, NULL);
  json_t *e = json_object_get(root, "error");
  ck_assert_int_eq(json_integer_value(json_object_get(e, "code")), 100);
  ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "OAuthException");
  ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "(#100) The parameter filedata is required");
  ck_assert_ptr_nonnull(json_object_get(e, "fbtrace_id"));
  json_decref(root);
  /* a file that is not of the attachment's type: Meta's "Upload attachment failure" */
  p = post_form("/me/messages", "XyZ",
                "--XyZ\r\nContent-Disposition: form-data; name=\"recipient\"\r\n\r\n{\"id\":\"" KIM "\"}\r\n"
                "--XyZ\r\nContent-Disposition: form-data; name=\"messaging_type\"\r\n\r\nRESPONSE\r\n"
                "--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n"
                "{\"attachment\":{\"type\":\"image\",\"payload\":{\"is_reusable\":true}}}\r\n"
                "--XyZ\r\nContent-Disposition: form-data; name=\"filedata\"; filename=\"a.txt\"\r\n"
                "Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n");
  ck_assert_int_eq(p.code, 400);
  ck_assert_ptr_nonnull(strstr(p.body, "\"error_subcode\":2018047"));
  /* a body under another boundary than its Content-Type names */
  p = post_form("/me/messages", "XyZ", "--Other\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--Other--\r\n");
  ck_assert_int_eq(p.code, 400);
  ck_assert_ptr_nonnull(strstr(p.body, "must begin with the boundary"));
  /* a part not closed */
  p = post_form("/me/messages", "XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb");
  ck_assert_int_eq(p.code, 400);
  ck_assert_ptr_nonnull(strstr(p.body, "\"code\":100"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("messenger_upload");
  TCase *tc = tcase_create("messenger_upload");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, a_stored_file_is_uploaded_as_filedata_and_arrives_intact);
  tcase_add_test(tc, each_stored_file_goes_with_the_messenger_type_of_its_mime_type);
  tcase_add_test(tc, text_a_link_and_a_stored_file_each_go_once_and_a_retry_resends_only_the_rest);
  tcase_add_test(tc, a_failed_upload_is_retried_when_transient_and_failed_when_permanent);
  tcase_add_test(tc, an_attachment_neither_fetchable_nor_held_fails_before_anything_is_sent);
  tcase_add_test(tc, the_double_answers_a_form_without_filedata_or_with_broken_framing_as_meta_does);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
