/* test_whatsapp_upload.c — plugins/whatsapp sending files the help desk holds: upload to
 * /{phone-number-id}/media, then the message by media id, against the Graph double, which keeps what arrived. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph_double.h"
#include "httpc.h"
#include "plugin_harness.h"
#include "testutil.h"

#define TOKEN "EAAWhatsAppToken"
#define PHONE_ID "106540352242922"
#define CUSTOMER "4790000001"
#define CREDS                                                                                                \
  "{\"phone_number_id\":\"" PHONE_ID "\",\"waba_id\":\"102290129340398\",\"access_token\":\"" TOKEN         \
  "\",\"app_secret\":\"wa-app-secret-987\",\"verify_token\":\"wa-vt\",\"graph_api_base\":\"%BASE%\","      \
  "\"request_timeout\":\"1s\"}"
#define MEDIA_PATH "/" PHONE_ID "/media"
#define MESSAGES_PATH "/" PHONE_ID "/messages"

static void setup(void) {
  ph_setup("whatsapp", TOKEN, PHONE_ID);
  ph_open(CREDS);
}

static void teardown(void) { ph_teardown(); }

static int64_t now_ms(void) { return (int64_t)time(NULL) * 1000; }

static sb_outbound_message reply(const char *text) {
  sb_outbound_message m = {.message_id = "88",
                           .idempotency_key = "idem-up-88",
                           .attempt = 1,
                           .recipient_id = "+" CUSTOMER,
                           .text = text,
                           .last_inbound_ms = now_ms() - 1000};
  return m;
}

/* Every byte value, then CRLFs, "--" lines and the plugin's boundary prefix among pseudo-random bytes. */
static size_t nasty_bytes(char *buf, size_t len) {
  static const char trap[] = "\r\n--SwitchboardFormBoundary\r\n\r\n--\r\n\0";
  size_t n = 0;
  for (int i = 0; i < 256 && n < len; i++) buf[n++] = (char)i;
  uint32_t x = 88172645u;
  while (n < len) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    for (size_t i = x % 5; i < sizeof(trap) && n < len; i++) buf[n++] = trap[i];
    buf[n < len ? n++ : n - 1] = (char)x;
  }
  return n;
}

/* A request's JSON body (the caller frees it). */
static json_t *body_of(const gd_request *rq) {
  json_t *b = json_loadb(rq->body, rq->body_len, 0, NULL);
  ck_assert_ptr_nonnull(b);
  return b;
}

START_TEST(a_stored_image_is_uploaded_then_sent_by_its_media_id) {
  static char bytes[200 * 1024];
  size_t len = nasty_bytes(bytes, sizeof(bytes));
  const sb_attachment att[] = {
      {.url = "/api/v1/attachments/5", .mime_type = "image/jpeg", .filename = "scan.jpg", .data = bytes, .data_len = len}};
  sb_outbound_message m = reply(NULL);
  m.attachments = att;
  m.attachment_count = 1;
  m.reply_to_external_id = "wamid.PREV";
  int before = gd_count(); /* connect's read of the number */
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_int_eq(gd_count(), before + 2);
  const gd_request *up = gd_at(before), *sent = gd_at(before + 1);
  ck_assert_str_eq(up->path, "/v21.0" MEDIA_PATH);
  ck_assert_str_eq(up->auth, "Bearer " TOKEN);
  ck_assert_int_eq(up->status, 200);
  ck_assert_str_eq(gd_form_get(up, "messaging_product")->data, "whatsapp");
  ck_assert_str_eq(gd_form_get(up, "type")->data, "image/jpeg");
  ck_assert_int_eq(gd_upload_count(), 1);
  json_t *b = body_of(sent);
  const char *id = json_string_value(json_object_get(json_object_get(b, "image"), "id"));
  const gd_upload *u = gd_upload_find(id);
  ck_assert_msg(u != NULL, "the message names media %s, which was not uploaded", id != NULL ? id : "(none)");
  ck_assert_uint_eq(u->len, len);
  ck_assert_int_eq(memcmp(u->data, bytes, len), 0);
  ck_assert_str_eq(u->type, "image/jpeg");
  ck_assert_str_eq(u->filename, "scan.jpg");
  ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "image");
  ck_assert_ptr_null(json_object_get(json_object_get(b, "image"), "link"));
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "context"), "message_id")), "wamid.PREV");
  ck_assert_str_eq(json_string_value(json_object_get(b, "to")), CUSTOMER);
  json_decref(b);
  ck_assert_str_eq(s->text, "wamid.HBgL0002"); /* the message's wamid, not the upload's id */
}
END_TEST

START_TEST(stored_documents_audio_and_video_go_by_id_with_their_type) {
  static const struct {
    const char *mime, *type;
  } cases[] = {{"application/pdf", "document"}, {"audio/ogg; codecs=opus", "audio"}, {"video/mp4", "video"},
               {"text/plain", "document"},      {NULL, "document"},                  {"image/png", "image"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const sb_attachment att[] = {{.url = "/api/v1/attachments/6",
                                  .mime_type = cases[i].mime,
                                  .filename = "Invoice \"March\".pdf",
                                  .data = "%PDF\r\n--",
                                  .data_len = 8}};
    sb_outbound_message m = reply(NULL);
    m.attachments = att;
    m.attachment_count = 1;
    ph_sent *s = ph_send(&m);
    ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s: %s", cases[i].type, s->text);
    json_t *b = body_of(gd_last(MESSAGES_PATH));
    ck_assert_str_eq(json_string_value(json_object_get(b, "type")), cases[i].type);
    json_t *media = json_object_get(b, cases[i].type);
    const gd_upload *u = gd_upload_find(json_string_value(json_object_get(media, "id")));
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->type, cases[i].mime != NULL ? cases[i].mime : "application/octet-stream");
    ck_assert_str_eq(u->filename, "Invoice \"March\".pdf");
    if (strcmp(cases[i].type, "document") == 0)
      ck_assert_str_eq(json_string_value(json_object_get(media, "filename")), "Invoice \"March\".pdf");
    else
      ck_assert_ptr_null(json_object_get(media, "filename"));
    json_decref(b);
  }
}
END_TEST

START_TEST(text_a_link_and_a_stored_file_each_go_once_and_a_retry_resends_only_the_rest) {
  const sb_attachment att[] = {{.url = "https://files.example/p.jpg", .mime_type = "image/jpeg"},
                               {.url = "/api/v1/attachments/8",
                                .mime_type = "application/pdf",
                                .filename = "r.pdf",
                                .data = "%PDF-1.4",
                                .data_len = 8}};
  sb_outbound_message m = reply("Details attached");
  m.attachments = att;
  m.attachment_count = 2;
  gd_script_raw(MESSAGES_PATH, 200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.FIRST\"}]}");
  gd_script_raw(MESSAGES_PATH, 200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.SECOND\"}]}");
  gd_script_error(MESSAGES_PATH, 500, 131000, 0, "Something went wrong");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_int_eq(gd_count_path(MESSAGES_PATH), 3);
  ck_assert_int_eq(gd_count_path(MEDIA_PATH), 1);
  m.attempt = 2;
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "wamid.FIRST");
  ck_assert_int_eq(gd_count_path(MESSAGES_PATH), 4); /* the text and the link went once */
  ck_assert_int_eq(gd_count_path(MEDIA_PATH), 2);    /* the file was uploaded again for its message */
  json_t *b = body_of(gd_last(MESSAGES_PATH));
  const gd_upload *u = gd_upload_find(json_string_value(json_object_get(json_object_get(b, "document"), "id")));
  ck_assert_ptr_nonnull(u);
  ck_assert_int_eq(memcmp(u->data, "%PDF-1.4", 8), 0);
  json_decref(b);
}
END_TEST

START_TEST(a_failed_upload_is_retried_when_transient_and_failed_when_permanent) {
  const sb_attachment att[] = {
      {.url = "/api/v1/attachments/3", .mime_type = "image/png", .filename = "a.png", .data = "PNG", .data_len = 3}};
  sb_outbound_message m = reply(NULL);
  m.attachments = att;
  m.attachment_count = 1;
  gd_script_error(MEDIA_PATH, 500, 131000, 0, "Something went wrong");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_msg(strstr(s->text, "uploading attachment 1 failed: ") != NULL, "%s", s->text);
  gd_script_error(MEDIA_PATH, 400, 130429, 0, "Rate limit hit");
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_uint_eq(s->retry_after, 60000);
  gd_script_silence(MEDIA_PATH);
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_RETRY);
  ck_assert_int_eq(gd_count_path(MESSAGES_PATH), 0); /* no message without its media */
  /* Refused for good after the text went out: the reason says what did. */
  m.text = "Here it is";
  m.idempotency_key = "idem-up-89";
  gd_script_error(MEDIA_PATH, 400, 131053, 0, "Media upload error");
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "the text went out, but not 1 attachment: uploading attachment 1 failed: Graph error "
                                "131053") != NULL,
                "%s", s->text);
  ck_assert_int_eq(gd_count_path(MESSAGES_PATH), 1);
}
END_TEST

START_TEST(files_whatsapp_would_refuse_fail_before_anything_is_sent) {
  static const struct {
    const char *mime;
    size_t len;
    const char *says;
  } cases[] = {
      {"image/gif", 10, "image/gif, which WhatsApp does not take"},
      {"image/jpeg", 5u * 1024 * 1024 + 1, "up to 5 MB"},
      {"image/webp", 500u * 1024 + 1, "up to 500 KB"},
      {"video/quicktime", 10, "video/quicktime, which WhatsApp does not take"},
      {"audio/mpeg", 16u * 1024 * 1024 + 1, "up to 16 MB"},
      {"application/pdf", 0, "is empty"},
  };
  int before = gd_count(); /* connect's read of the number */
  char *big = calloc(1, 16u * 1024 * 1024 + 1);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const sb_attachment att[] = {{.url = "/api/v1/attachments/4",
                                  .mime_type = cases[i].mime,
                                  .filename = "f",
                                  .data = big,
                                  .data_len = cases[i].len}};
    sb_outbound_message m = reply("and the text");
    m.attachments = att;
    m.attachment_count = 1;
    ph_sent *s = ph_send(&m);
    ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
    ck_assert_msg(strstr(s->text, cases[i].says) != NULL, "%s", s->text);
  }
  free(big);
  const sb_attachment gone[] = {{.url = "/api/v1/attachments/404", .mime_type = "image/png"}};
  sb_outbound_message m = reply(NULL);
  m.attachments = gone;
  m.attachment_count = 1;
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "neither a URL Meta can fetch nor a file the help desk holds") != NULL, "%s", s->text);
  ck_assert_int_eq(gd_count(), before);
}
END_TEST

/* --- the double itself ------------------------------------------------------------------------ */

static ph_posted post_media_form(const char *body) { return ph_post_form(MEDIA_PATH, TOKEN, "B0", body); }

START_TEST(the_double_refuses_a_media_upload_without_a_required_field_as_meta_does) {
  ph_posted p = post_media_form("--B0\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
                             "--B0\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/png\r\n--B0--\r\n");
  ck_assert_int_eq(p.code, 400);
  json_t *root = json_loads(p.body, 0, NULL);
  json_t *e = json_object_get(root, "error");
  ck_assert_int_eq(json_integer_value(json_object_get(e, "code")), 100);
  ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "OAuthException");
  ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "(#100) The parameter file is required");
  json_decref(root);
  /* a file part without its Content-Type */
  p = post_media_form("--B0\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
                      "--B0\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/png\r\n"
                      "--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nPNG\r\n--B0--\r\n");
  ck_assert_int_eq(p.code, 400);
  ck_assert_ptr_nonnull(strstr(p.body, "must have a Content-Type"));
  /* without messaging_product */
  p = post_media_form("--B0\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/png\r\n"
                      "--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                      "Content-Type: image/png\r\n\r\nPNG\r\n--B0--\r\n");
  ck_assert_int_eq(p.code, 400);
  ck_assert_ptr_nonnull(strstr(p.body, "messaging_product is required"));
  ck_assert_int_eq(gd_upload_count(), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("whatsapp_upload");
  TCase *tc = tcase_create("whatsapp_upload");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, a_stored_image_is_uploaded_then_sent_by_its_media_id);
  tcase_add_test(tc, stored_documents_audio_and_video_go_by_id_with_their_type);
  tcase_add_test(tc, text_a_link_and_a_stored_file_each_go_once_and_a_retry_resends_only_the_rest);
  tcase_add_test(tc, a_failed_upload_is_retried_when_transient_and_failed_when_permanent);
  tcase_add_test(tc, files_whatsapp_would_refuse_fail_before_anything_is_sent);
  tcase_add_test(tc, the_double_refuses_a_media_upload_without_a_required_field_as_meta_does);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
