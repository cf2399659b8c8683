/* test_whatsapp.c — plugins/whatsapp driven in-process: the real whatsapp.so with a fake router and store,
 * and the Graph API double (tests/graph_double.c) as the Cloud API, media URLs and media downloads. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph_double.h"
#include "plugin_harness.h"
#include "testutil.h"

#define TOKEN "EAAWhatsAppToken"
#define APP_SECRET "wa-app-secret-987"
#define PHONE_ID "106540352242922"
#define WABA "102290129340398"
#define CUSTOMER "4790000001"

static void open_with(const char *extra) {
  char creds[2048];
  snprintf(creds, sizeof(creds),
           "{\"phone_number_id\":\"" PHONE_ID "\",\"waba_id\":\"" WABA "\",\"access_token\":\"" TOKEN
           "\",\"app_secret\":\"" APP_SECRET
           "\",\"verify_token\":\"wa-vt\",\"graph_api_base\":\"%%BASE%%\","
           "\"request_timeout\":\"1s\"%s}",
           extra);
  ph_open(creds);
}

static long long now_s(void) { return (long long)time(NULL); }
static int64_t now_ms(void) { return (int64_t)time(NULL) * 1000; }

static void setup(void) { ph_setup("whatsapp", TOKEN, PHONE_ID); }
static void teardown(void) { ph_teardown(); }

/* A webhook with one change whose value holds contacts plus the given
 * "messages" and/or "statuses" members (JSON text starting with a comma or empty). */
static ph_answer *post_value(const char *members) {
  char *body = malloc(32768);
  snprintf(body, 32768,
           "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"" WABA
           "\",\"changes\":[{\"value\":{"
           "\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550001111\","
           "\"phone_number_id\":\"" PHONE_ID
           "\"},\"contacts\":[{\"profile\":{\"name\":\"Kari Nordmann \\u00c5s\"},"
           "\"wa_id\":\"" CUSTOMER "\"}]%s},\"field\":\"messages\"}]}]}",
           members);
  ph_answer *a = ph_post_signed(APP_SECRET, body);
  free(body);
  return a;
}

/* One message object (JSON text) from CUSTOMER of the given type with its member. */
static char *msg(const char *id, long long ts, const char *type, const char *member) {
  char *s = malloc(4096);
  snprintf(s, 4096, "{\"from\":\"" CUSTOMER "\",\"id\":\"%s\",\"timestamp\":\"%lld\",\"type\":\"%s\"%s%s}", id, ts,
           type, member[0] != '\0' ? "," : "", member);
  return s;
}

static ph_answer *post_messages(const char *list) {
  char members[30000];
  snprintf(members, sizeof(members), ",\"messages\":[%s]", list);
  return post_value(members);
}

START_TEST(verification_and_signature_are_checked) {
  open_with("");
  ck_assert_uint_eq(channel_state(ph_ch), SB_STATE_CONNECTED);
  ph_answer *a = ph_request("GET", "hub.mode=subscribe&hub.verify_token=wa-vt&hub.challenge=CH4LL", NULL, NULL);
  ck_assert_int_eq(a->status, 200);
  ck_assert_str_eq(a->body, "CH4LL");
  ck_assert_int_eq(ph_request("GET", "hub.mode=subscribe&hub.verify_token=x&hub.challenge=1", NULL, NULL)->status, 403);
  const char *bad[] = {"X-Hub-Signature-256", "sha256=0000000000000000000000000000000000000000000000000000000000000000",
                       NULL};
  ck_assert_int_eq(ph_request("POST", "", "{\"entry\":[]}", bad)->status, 403);
  ck_assert_int_eq(ph_request("POST", "", "{\"entry\":[]}", NULL)->status, 401);
  ck_assert_int_eq(phe.in_count, 0);
}
END_TEST

START_TEST(text_with_profile_name_context_and_string_timestamp_is_stored) {
  open_with("");
  long long ts = now_s() - 60;
  char *m = msg("wamid.T1", ts, "text",
                "\"context\":{\"from\":\"15550001111\",\"id\":\"wamid.PREV\"},\"text\":{\"body\":\"Hei \\u00f8 "
                "\\ud83d\\udc4b\"}");
  ck_assert_int_eq(post_messages(m)->status, 200);
  free(m);
  const ph_inbound *in = ph_find("wamid.T1");
  ck_assert_ptr_nonnull(in);
  ck_assert_str_eq(in->text, "Hei \xc3\xb8 \xf0\x9f\x91\x8b");
  ck_assert_str_eq(in->sender_id, "+" CUSTOMER);
  ck_assert_uint_eq(in->sender_kind, SB_IDENTITY_PHONE);
  ck_assert_str_eq(in->sender_name, "Kari Nordmann \xc3\x85s");
  ck_assert_str_eq(in->reply_to, "wamid.PREV");
  ck_assert_int_eq(in->timestamp_ms, ts * 1000);
  /* Redelivery: nothing new stored. */
  m = msg("wamid.T1", ts, "text", "\"text\":{\"body\":\"Hei\"}");
  ck_assert_int_eq(post_messages(m)->status, 200);
  free(m);
  ck_assert_int_eq(phe.stored_count, 1);
}
END_TEST

START_TEST(every_message_type_is_recorded) {
  open_with("");
  long long t = now_s();
  char list[20000] = "";
  const char *items[][3] = {
      {"wamid.LOC", "location",
       "\"location\":{\"latitude\":59.91,\"longitude\":10.75,\"name\":\"Office\",\"address\":\"Main st 1\"}"},
      {"wamid.BR", "interactive",
       "\"interactive\":{\"type\":\"button_reply\",\"button_reply\":{\"id\":\"yes-1\",\"title\":\"Yes\"}}"},
      {"wamid.LR", "interactive",
       "\"interactive\":{\"type\":\"list_reply\",\"list_reply\":{\"id\":\"r2\",\"title\":\"Row "
       "2\",\"description\":\"d\"}}"},
      {"wamid.BTN", "button", "\"button\":{\"payload\":\"STOP\",\"text\":\"Stop promotions\"}"},
      {"wamid.RX", "reaction", "\"reaction\":{\"message_id\":\"wamid.OUT1\",\"emoji\":\"\\ud83d\\udc4d\"}"},
      {"wamid.RX0", "reaction", "\"reaction\":{\"message_id\":\"wamid.OUT1\"}"},
      {"wamid.UNS", "unsupported", "\"errors\":[{\"code\":131051,\"title\":\"Message type unknown\"}]"},
  };
  size_t n = sizeof(items) / sizeof(items[0]);
  for (size_t i = 0; i < n; i++) {
    char *m = msg(items[i][0], t + (long long)i, items[i][1], items[i][2]);
    strcat(list, m);
    if (i + 1 < n) strcat(list, ",");
    free(m);
  }
  ck_assert_int_eq(post_messages(list)->status, 200);
  ck_assert_int_eq(phe.in_count, (int)n);
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.LOC")->text, "Office"));
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.LOC")->meta, "59.91"));
  ck_assert_str_eq(ph_find("wamid.BR")->text, "Yes");
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.BR")->meta, "yes-1"));
  ck_assert_str_eq(ph_find("wamid.LR")->text, "Row 2");
  ck_assert_str_eq(ph_find("wamid.BTN")->text, "Stop promotions");
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.BTN")->meta, "STOP"));
  ck_assert_str_eq(ph_find("wamid.RX")->text, "Reacted \xf0\x9f\x91\x8d");
  ck_assert_str_eq(ph_find("wamid.RX")->reply_to, "wamid.OUT1");
  ck_assert_str_eq(ph_find("wamid.RX0")->text, "Removed a reaction");
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.RX0")->meta, "reaction_removed"));
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.UNS")->meta, "unsupported"));
  /* Messages arrive in order. */
  ck_assert_str_eq(phe.in[0].ext_id, "wamid.LOC");
  ck_assert_str_eq(phe.in[n - 1].ext_id, "wamid.UNS");
}
END_TEST

START_TEST(media_is_looked_up_then_downloaded_with_the_bearer_token) {
  open_with("");
  gd_add_media("1037543291543636", "image/jpeg", "JPEGBYTES");
  gd_add_media("2000000000000002", "audio/ogg; codecs=opus", "OGGBYTES!");
  gd_add_media("3000000000000003", "application/pdf", "%PDF-1.4");
  gd_add_media("4000000000000004", "image/webp", "RIFFWEBP");
  gd_add_media("5000000000000005", "video/mp4", "MP4");
  long long t = now_s();
  char list[8000];
  char *a = msg("wamid.IMG", t, "image",
                "\"image\":{\"caption\":\"Broken "
                "part\",\"mime_type\":\"image/jpeg\",\"sha256\":\"abc\",\"id\":\"1037543291543636\"}");
  char *b = msg("wamid.VOICE", t, "audio",
                "\"audio\":{\"mime_type\":\"audio/ogg; "
                "codecs=opus\",\"sha256\":\"x\",\"id\":\"2000000000000002\",\"voice\":true}");
  char *c = msg("wamid.DOC", t, "document",
                "\"document\":{\"caption\":\"Invoice\",\"filename\":\"invoice.pdf\",\"mime_type\":\"application/"
                "pdf\",\"id\":\"3000000000000003\"}");
  char *d = msg("wamid.STK", t, "sticker",
                "\"sticker\":{\"mime_type\":\"image/webp\",\"id\":\"4000000000000004\",\"animated\":false}");
  char *e = msg("wamid.VID", t, "video", "\"video\":{\"mime_type\":\"video/mp4\",\"id\":\"5000000000000005\"}");
  snprintf(list, sizeof(list), "%s,%s,%s,%s,%s", a, b, c, d, e);
  free(a), free(b), free(c), free(d), free(e);
  ck_assert_int_eq(post_messages(list)->status, 200);
  const ph_inbound *in = ph_find("wamid.IMG");
  ck_assert_str_eq(in->text, "Broken part");
  ck_assert_uint_eq(in->attachment_count, 1);
  ck_assert_str_eq(in->att_type[0], "image/jpeg");
  ck_assert_ptr_nonnull(strstr(in->att_url[0], "/media/1037543291543636"));
  ck_assert_uint_eq(in->att_data_len[0], 9);
  ck_assert_uint_eq(in->att_size[0], 9);
  ck_assert_ptr_nonnull(strstr(in->meta, "\"media_id\":\"1037543291543636\""));
  in = ph_find("wamid.VOICE");
  ck_assert_ptr_nonnull(strstr(in->meta, "\"voice\":true"));
  ck_assert_uint_eq(in->att_data_len[0], 9);
  in = ph_find("wamid.DOC");
  ck_assert_str_eq(in->att_name[0], "invoice.pdf");
  ck_assert_str_eq(in->text, "Invoice");
  ck_assert_ptr_nonnull(strstr(ph_find("wamid.STK")->meta, "\"sticker\":true"));
  ck_assert_uint_eq(ph_find("wamid.VID")->attachment_count, 1);
  const gd_request *dl = gd_last("/media/1037543291543636");
  ck_assert_str_eq(dl->auth, "Bearer " TOKEN);
  const gd_request *lookup = gd_last("/" GD_VERSION "/1037543291543636");
  ck_assert_str_eq(lookup->auth, "Bearer " TOKEN);
}
END_TEST

START_TEST(media_failures_are_recorded_on_the_message_and_not_fatal) {
  open_with(",\"max_media_bytes\":4");
  gd_add_media("6000000000000006", "image/png", "TOO-LARGE");
  long long t = now_s();
  char list[4000];
  char *a = msg("wamid.GONE", t, "image", "\"image\":{\"mime_type\":\"image/jpeg\",\"id\":\"9999999999\"}");
  char *b = msg("wamid.BIG", t, "image", "\"image\":{\"mime_type\":\"image/png\",\"id\":\"6000000000000006\"}");
  snprintf(list, sizeof(list), "%s,%s", a, b);
  free(a), free(b);
  ck_assert_int_eq(post_messages(list)->status, 200);
  const ph_inbound *in = ph_find("wamid.GONE");
  ck_assert_ptr_nonnull(in);
  ck_assert_ptr_nonnull(strstr(in->meta, "media_error"));
  ck_assert_uint_eq(in->attachment_count, 0);
  in = ph_find("wamid.BIG");
  ck_assert_ptr_nonnull(strstr(in->meta, "max_media_bytes"));
  ck_assert_int_eq(gd_count_path("/media/6000000000000006"), 0);
}
END_TEST

/* A media download that times out may pass: a new message is held (503, so
 * Meta delivers the batch again) and stored with its media the next time. */
START_TEST(a_download_that_times_out_holds_a_new_message_for_redelivery) {
  open_with("");
  gd_add_media("7000000000000007", "image/png", "PNG");
  gd_script_silence("/media/7000000000000007");
  char *ok = msg("wamid.TEXT", now_s(), "text", "\"text\":{\"body\":\"and a photo:\"}");
  char *m = msg("wamid.SLOW", now_s(), "image", "\"image\":{\"mime_type\":\"image/png\",\"id\":\"7000000000000007\"}");
  char list[4000];
  snprintf(list, sizeof(list), "%s,%s", ok, m);
  free(ok), free(m);
  ck_assert_int_eq(post_messages(list)->status, 503);
  ck_assert_ptr_nonnull(ph_find("wamid.TEXT")); /* stored; the redelivery is deduplicated */
  ck_assert_ptr_null(ph_find("wamid.SLOW"));
  ck_assert_int_eq(post_messages(list)->status, 200);
  const ph_inbound *in = ph_find("wamid.SLOW");
  ck_assert_ptr_nonnull(in);
  ck_assert_uint_eq(in->attachment_count, 1);
  ck_assert_uint_eq(in->att_data_len[0], 3);
  ck_assert_ptr_null(strstr(in->meta, "media_error"));
}
END_TEST

/* Meta-side trouble looking the media up (HTTP 500, Graph error 2) is held
 * the same way; permanent refusals are not (media_failures_are_recorded...). */
START_TEST(a_media_lookup_meta_could_not_answer_holds_a_new_message) {
  open_with("");
  gd_add_media("8000000000000008", "image/jpeg", "JPEG");
  gd_script_error("/8000000000000008", 500, 2, 0, "Service temporarily unavailable");
  char *m = msg("wamid.LATER", now_s(), "image", "\"image\":{\"mime_type\":\"image/jpeg\",\"id\":\"8000000000000008\"}");
  ck_assert_int_eq(post_messages(m)->status, 503);
  ck_assert_ptr_null(ph_find("wamid.LATER"));
  ck_assert_int_eq(post_messages(m)->status, 200);
  free(m);
  const ph_inbound *in = ph_find("wamid.LATER");
  ck_assert_ptr_nonnull(in);
  ck_assert_uint_eq(in->att_data_len[0], 4);
}
END_TEST

/* An hour after it was sent, a message is no longer held for its media: it
 * is stored without it, the failure recorded. */
START_TEST(an_old_message_whose_media_cannot_be_fetched_is_stored_without_it) {
  open_with("");
  gd_add_media("7100000000000071", "image/png", "PNG");
  gd_script_silence("/media/7100000000000071");
  char *m = msg("wamid.OLD", now_s() - 2 * 3600, "image", "\"image\":{\"mime_type\":\"image/png\",\"id\":\"7100000000000071\"}");
  ck_assert_int_eq(post_messages(m)->status, 200);
  free(m);
  const ph_inbound *in = ph_find("wamid.OLD");
  ck_assert_ptr_nonnull(in);
  ck_assert_ptr_nonnull(strstr(in->meta, "download failed"));
  ck_assert_uint_eq(in->attachment_count, 1); /* the URL is kept even though the bytes are not */
  ck_assert_uint_eq(in->att_data_len[0], 0);
}
END_TEST

START_TEST(statuses_become_delivery_statuses_and_131047_says_re_engagement_required) {
  open_with("");
  char members[4000];
  snprintf(members, sizeof(members),
           ",\"statuses\":[{\"id\":\"wamid.OUT1\",\"status\":\"sent\",\"timestamp\":\"1763800000\",\"recipient_id\":"
           "\"" CUSTOMER
           "\"},"
           "{\"id\":\"wamid.OUT1\",\"status\":\"delivered\",\"timestamp\":\"1763800001\",\"recipient_id\":\"" CUSTOMER
           "\"},"
           "{\"id\":\"wamid.OUT1\",\"status\":\"read\",\"timestamp\":\"1763800002\",\"recipient_id\":\"" CUSTOMER
           "\"},"
           "{\"id\":\"wamid.OUT2\",\"status\":\"failed\",\"timestamp\":\"1763800003\",\"recipient_id\":\"" CUSTOMER
           "\","
           "\"errors\":[{\"code\":131047,\"title\":\"Re-engagement message\",\"message\":\"Re-engagement message\","
           "\"error_data\":{\"details\":\"Message failed to send because more than 24 hours have passed\"}}]},"
           "{\"id\":\"wamid.OUT3\",\"status\":\"failed\",\"timestamp\":\"1763800004\",\"recipient_id\":\"" CUSTOMER
           "\","
           "\"errors\":[{\"code\":131026,\"title\":\"Message undeliverable\"}]}]");
  ck_assert_int_eq(post_value(members)->status, 200);
  ck_assert_int_eq(phe.st_count, 5);
  ck_assert_uint_eq(phe.st[0].status, SB_STATUS_SENT);
  ck_assert_uint_eq(phe.st[1].status, SB_STATUS_DELIVERED);
  ck_assert_uint_eq(phe.st[2].status, SB_STATUS_READ);
  ck_assert_str_eq(phe.st[2].ext_id, "wamid.OUT1");
  ck_assert_int_eq(phe.st[2].timestamp_ms, 1763800002000);
  ck_assert_uint_eq(phe.st[3].status, SB_STATUS_FAILED);
  ck_assert_ptr_nonnull(strstr(phe.st[3].error, "re-engagement required"));
  ck_assert_ptr_nonnull(strstr(phe.st[4].error, "131026"));
}
END_TEST

/* Refused at the hand-off for a passing reason (out of memory, the store
 * stopping): 503 as for a failed commit, not a 200 that loses it. */
START_TEST(a_message_refused_at_hand_off_gets_503) {
  open_with("");
  phe.refuse = SB_ENOMEM;
  char *m = msg("wamid.R503", now_s(), "text", "\"text\":{\"body\":\"x\"}");
  ck_assert_int_eq(post_messages(m)->status, 503);
  free(m);
  phe.refuse = 0;
}
END_TEST

START_TEST(a_store_failure_gets_503_and_other_numbers_are_ignored) {
  open_with("");
  phe.fail_store = 1;
  char *m = msg("wamid.F", now_s(), "text", "\"text\":{\"body\":\"x\"}");
  ck_assert_int_eq(post_messages(m)->status, 503);
  free(m);
  phe.fail_store = 0;
  const char *other =
      "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"value\":{\"messaging_"
      "product\":"
      "\"whatsapp\",\"metadata\":{\"phone_number_id\":\"999\"},\"messages\":[{\"from\":\"1\",\"id\":\"wamid.O\","
      "\"timestamp\":\"1\",\"type\":\"text\",\"text\":{\"body\":\"x\"}}]},\"field\":\"messages\"}]}]}";
  ck_assert_int_eq(ph_post_signed(APP_SECRET, other)->status, 200);
  ck_assert_ptr_null(ph_find("wamid.O"));
}
END_TEST

/* --- outbound -------------------------------------------------------------------------- */

static sb_outbound_message reply(const char *text, int64_t last_ms) {
  sb_outbound_message m = {.message_id = "88",
                           .idempotency_key = "idem-88",
                           .attempt = 1,
                           .recipient_id = "+" CUSTOMER,
                           .text = text,
                           .last_inbound_ms = last_ms};
  return m;
}

START_TEST(text_within_24_hours_is_sent_with_preview_url_and_context) {
  open_with("");
  sb_outbound_message m = reply("See https://example.com/help", now_ms() - 3600 * 1000);
  m.reply_to_external_id = "wamid.T1";
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "wamid.HBgL0001");
  const gd_request *rq = gd_last("/" PHONE_ID "/messages");
  ck_assert_str_eq(rq->auth, "Bearer " TOKEN);
  json_t *b = json_loads(rq->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(b, "messaging_product")), "whatsapp");
  ck_assert_str_eq(json_string_value(json_object_get(b, "to")), CUSTOMER);
  ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "text");
  ck_assert(json_is_true(json_object_get(json_object_get(b, "text"), "preview_url")));
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "context"), "message_id")), "wamid.T1");
  json_decref(b);
}
END_TEST

START_TEST(outside_24_hours_free_text_fails_at_once_and_a_template_is_sent) {
  open_with(",\"reengagement_template\":\"hello_again\",\"reengagement_language\":\"nb\"");
  sb_outbound_message m = reply("Are you there?", now_ms() - 25LL * 3600 * 1000);
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "re-engagement required"));
  ck_assert_ptr_nonnull(strstr(s->text, "hello_again"));
  ck_assert_int_eq(gd_count_path("/messages"), 0);
  m.text = NULL; /* outside the window a template goes alone */
  m.template_json = "{\"name\":\"order_update\",\"language\":\"en_US\",\"parameters\":[\"Kari\",\"#1234\"]}";
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  json_t *b = json_loads(gd_last("/messages")->body, 0, NULL);
  json_t *t = json_object_get(b, "template");
  ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "template");
  ck_assert_str_eq(json_string_value(json_object_get(t, "name")), "order_update");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(t, "language"), "code")), "en_US");
  json_t *p = json_object_get(json_array_get(json_object_get(t, "components"), 0), "parameters");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(p, 1), "text")), "#1234");
  json_decref(b);
  /* A template naming none uses the channel's default. */
  m.template_json = "{}";
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  b = json_loads(gd_last("/messages")->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "template"), "name")), "hello_again");
  ck_assert_str_eq(
      json_string_value(json_object_get(json_object_get(json_object_get(b, "template"), "language"), "code")), "nb");
  json_decref(b);
}
END_TEST

START_TEST(the_window_uses_the_customers_webhook_timestamp_when_the_host_gives_none) {
  open_with("");
  sb_outbound_message m = reply("hi", 0);
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_FAIL);
  char *x = msg("wamid.W", now_s() - 600, "text", "\"text\":{\"body\":\"hi\"}");
  ck_assert_int_eq(post_messages(x)->status, 200);
  free(x);
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
}
END_TEST

START_TEST(media_replies_go_by_link_and_documents_keep_their_filename) {
  open_with("");
  static const sb_attachment att[] = {
      {.url = "https://files.example/r.pdf", .mime_type = "application/pdf", .filename = "r.pdf"},
      {.url = "https://files.example/p.jpg", .mime_type = "image/jpeg"}};
  sb_outbound_message m = reply("Attached", now_ms() - 1000);
  m.attachments = att;
  m.attachment_count = 2;
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_int_eq(gd_count_path("/messages"), 3);
  json_t *b = json_loads(gd_at(gd_count() - 2)->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "document");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "document"), "filename")), "r.pdf");
  json_decref(b);
  b = json_loads(gd_last("/messages")->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "image"), "link")),
                   "https://files.example/p.jpg");
  json_decref(b);
  /* The image's own statuses: its failure is the reply's (the agent must
   * know the picture never arrived); its delivery is the text's to tell. */
  int first = 0;
  ck_assert_int_eq(sscanf(s->text, "wamid.HBgL%d", &first), 1);
  char image_id[32], members[1200];
  snprintf(image_id, sizeof(image_id), "wamid.HBgL%04d", first + 2); /* the double numbers its answers */
  snprintf(members, sizeof(members),
           ",\"statuses\":[{\"id\":\"%s\",\"status\":\"delivered\",\"timestamp\":\"1763800001\",\"recipient_id\":\"" CUSTOMER
           "\"},{\"id\":\"%s\",\"status\":\"failed\",\"timestamp\":\"1763800002\",\"recipient_id\":\"" CUSTOMER
           "\",\"errors\":[{\"code\":131053,\"title\":\"Media upload error\"}]}]",
           image_id, image_id);
  ck_assert_int_eq(post_value(members)->status, 200);
  ck_assert_int_eq(phe.st_count, 1);
  ck_assert_uint_eq(phe.st[0].status, SB_STATUS_FAILED);
  ck_assert_str_eq(phe.st[0].ext_id, s->text);
  ck_assert_msg(strstr(phe.st[0].error, "later part") != NULL && strstr(phe.st[0].error, "131053") != NULL, "%s",
                phe.st[0].error);
}
END_TEST

/* The type of the i-th of the last n Cloud API messages calls. */
static const char *sent_type(int n, int i, json_t **keep) {
  *keep = json_loads(gd_at(gd_count() - n + i)->body, 0, NULL);
  return json_string_value(json_object_get(*keep, "type"));
}

START_TEST(a_template_within_24_hours_is_followed_by_the_text_and_the_attachments) {
  open_with("");
  static const sb_attachment att[] = {
      {.url = "https://files.example/r.pdf", .mime_type = "application/pdf", .filename = "r.pdf"},
      {.url = "https://files.example/p.jpg", .mime_type = "image/jpeg"}};
  sb_outbound_message m = reply("Your order ships today", now_ms() - 3600 * 1000);
  m.template_json = "{\"name\":\"order_update\",\"language\":\"en_US\",\"parameters\":[\"Kari\"]}";
  m.reply_to_external_id = "wamid.T1";
  m.attachments = att;
  m.attachment_count = 2;
  gd_script_raw("/messages", 200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.TPL\"}]}");
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "wamid.TPL"); /* the first part's id */
  ck_assert_int_eq(gd_count_path("/messages"), 4);
  const char *want[] = {"template", "text", "document", "image"};
  for (int i = 0; i < 4; i++) {
    json_t *b;
    ck_assert_str_eq(sent_type(4, i, &b), want[i]);
    /* Only the first part is the reply to the customer's message. */
    ck_assert_int_eq(json_object_get(b, "context") != NULL, i == 0);
    if (i == 1)
      ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "text"), "body")),
                       "Your order ships today");
    json_decref(b);
  }
}
END_TEST

START_TEST(outside_24_hours_a_template_with_text_or_attachments_is_refused_before_anything_is_sent) {
  open_with("");
  static const sb_attachment att[] = {{.url = "https://files.example/p.jpg", .mime_type = "image/jpeg"}};
  sb_outbound_message m = reply("Are you there?", now_ms() - 30LL * 3600 * 1000);
  m.template_json = "{\"name\":\"order_update\",\"language\":\"en_US\"}";
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "nothing was sent") != NULL && strstr(s->text, "30 hours ago") != NULL &&
                    strstr(s->text, "not the text with it") != NULL,
                "%s", s->text);
  m.text = NULL;
  m.attachments = att;
  m.attachment_count = 1;
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "not 1 attachment with it") != NULL, "%s", s->text);
  m.last_inbound_ms = 0; /* a customer who never wrote */
  m.text = "Hello";
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "has not written") != NULL &&
                    strstr(s->text, "not the text and 1 attachment with it") != NULL,
                "%s", s->text);
  ck_assert_int_eq(gd_count_path("/messages"), 0);
}
END_TEST

START_TEST(a_retried_template_reply_resumes_after_the_parts_already_sent) {
  open_with("");
  static const sb_attachment att[] = {{.url = "https://files.example/p.jpg", .mime_type = "image/jpeg"}};
  sb_outbound_message m = reply("Details below", now_ms() - 1000);
  m.template_json = "{\"name\":\"order_update\",\"language\":\"en_US\"}";
  m.attachments = att;
  m.attachment_count = 1;
  gd_script_raw("/messages", 200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.TPL\"}]}");
  gd_script_error("/messages", 500, 131016, 0, "Service unavailable");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  ck_assert_int_eq(gd_count_path("/messages"), 2);
  m.attempt = 2;
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "wamid.TPL");
  ck_assert_int_eq(gd_count_path("/messages"), 4); /* the text and the image, not the template again */
  json_t *b;
  ck_assert_str_eq(sent_type(2, 0, &b), "text");
  json_decref(b);
  ck_assert_str_eq(sent_type(2, 1, &b), "image");
  json_decref(b);
  /* The window closes between attempts: what went out is named, the rest fails for good. */
  m.idempotency_key = "idem-89";
  m.attempt = 1;
  gd_script_error("/messages", 500, 131016, 0, "Service unavailable");
  gd_script_raw("/messages", 200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.TPL2\"}]}");
  gd_script_error("/messages", 500, 131016, 0, "Service unavailable");
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_RETRY); /* nothing went out */
  m.attempt = 2;
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_RETRY); /* the template went out */
  m.attempt = 3;
  m.last_inbound_ms = now_ms() - 25LL * 3600 * 1000;
  int before = gd_count_path("/messages");
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "the template went out, but not the text and 1 attachment: re-engagement required") ==
                    s->text,
                "%s", s->text);
  ck_assert_int_eq(gd_count_path("/messages"), before);
}
END_TEST

START_TEST(a_part_refused_for_good_after_others_went_out_names_what_went_out) {
  open_with(",\"reengagement_template\":\"hello_again\"");
  sb_outbound_message m = reply("And one more thing", now_ms() - 1000);
  m.template_json = "{\"name\":\"order_update\",\"language\":\"en_US\"}";
  gd_script_raw("/messages", 200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.TPL\"}]}");
  gd_script_error("/messages", 400, 131047, 0, "Re-engagement message");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "the template went out, but not the text: re-engagement required") == s->text, "%s",
                s->text);
  /* A retry the agent asks for (the same key) sends only what did not go: the text. */
  m.attempt = 2;
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "wamid.TPL");
  ck_assert_int_eq(gd_count_path("/messages"), 3);
  json_t *b;
  ck_assert_str_eq(sent_type(1, 0, &b), "text");
  json_decref(b);
}
END_TEST

START_TEST(cloud_api_errors_are_classified_as_documented) {
  open_with("");
  struct {
    int http;
    long code;
    int outcome;
    const char *needle;
  } cases[] = {
      {400, 131047, CHANNEL_SEND_FAIL, "re-engagement required"},
      {429, 130429, CHANNEL_SEND_RETRY, "130429"},
      {400, 131056, CHANNEL_SEND_RETRY, "131056"},
      {400, 80007, CHANNEL_SEND_RETRY, "80007"},
      {400, 4, CHANNEL_SEND_RETRY, "Graph error 4"},
      {500, 131016, CHANNEL_SEND_RETRY, "131016"},
      {500, 1, CHANNEL_SEND_RETRY, "Graph error 1"},
      {500, 2, CHANNEL_SEND_RETRY, "Graph error 2"},
      {400, 131026, CHANNEL_SEND_FAIL, "131026"},
      {400, 131051, CHANNEL_SEND_FAIL, "131051"},
      {400, 368, CHANNEL_SEND_FAIL, "368"},
      {400, 100, CHANNEL_SEND_FAIL, "Graph error 100"},
      {502, 0, CHANNEL_SEND_RETRY, "502"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (cases[i].code != 0)
      gd_script_error("/messages", cases[i].http, cases[i].code, 0, "scripted failure");
    else
      gd_script_raw("/messages", cases[i].http, "Bad Gateway");
    sb_outbound_message m = reply("x", now_ms() - 1000);
    ph_sent *s = ph_send(&m);
    ck_assert_msg(s->outcome == cases[i].outcome, "case %zu: outcome %d (%s)", i, s->outcome, s->text);
    ck_assert_msg(strstr(s->text, cases[i].needle) != NULL, "case %zu: %s", i, s->text);
  }
  gd_script_silence("/messages");
  sb_outbound_message m = reply("x", now_ms() - 1000);
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_RETRY);
  gd_script_error("/messages", 401, 190, 0, "Invalid OAuth access token");
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_DEFER); /* held, as the sends after it: released together, in order */
  ck_assert_ptr_nonnull(strstr(s->text, "held"));
  ck_assert_uint_eq(channel_state(ph_ch), SB_STATE_AUTH_FAILED);
}
END_TEST

START_TEST(a_refused_token_at_connect_is_auth_failed) {
  ph_open("{\"phone_number_id\":\"" PHONE_ID
          "\",\"waba_id\":\"1\",\"access_token\":\"nope\",\"app_secret\":\"s\","
          "\"verify_token\":\"v\",\"graph_api_base\":\"%BASE%\"}");
  ck_assert_uint_eq(channel_state(ph_ch), SB_STATE_AUTH_FAILED);
}
END_TEST

/* The state connect settles in when the phone number read is answered so (code 0: a bare status). */
static uint32_t state_after_connect_answer(int http, long code) {
  return ph_state_after_connect_answer("{\"phone_number_id\":\"" PHONE_ID "\",\"waba_id\":\"" WABA
                                       "\",\"access_token\":\"" TOKEN "\",\"app_secret\":\"s\",\"verify_token\":"
                                       "\"v\",\"graph_api_base\":\"%BASE%\"}",
                                       "/" PHONE_ID, http, code);
}

START_TEST(connect_maps_meta_answers_to_channel_states_as_documented) {
  ck_assert_uint_eq(state_after_connect_answer(400, 4), SB_STATE_DISCONNECTED);      /* rate limit */
  ck_assert_uint_eq(state_after_connect_answer(429, 130429), SB_STATE_DISCONNECTED); /* throughput */
  ck_assert_uint_eq(state_after_connect_answer(503, 0), SB_STATE_DISCONNECTED);
  ck_assert_uint_eq(state_after_connect_answer(401, 102), SB_STATE_AUTH_FAILED); /* 401 without 190 */
  ck_assert_uint_eq(state_after_connect_answer(400, 100), SB_STATE_CONFIG_ERROR);
}
END_TEST

START_TEST(random_truncated_bodies_never_crash) {
  open_with("");
  char *m = msg("wamid.R", now_s(), "image", "\"image\":{\"id\":7}");
  char body[4000];
  snprintf(body, sizeof(body),
           "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":\"messages\",\"value\":{"
           "\"metadata\":{\"phone_number_id\":\"" PHONE_ID
           "\"},\"contacts\":[7],\"messages\":[%s,{\"type\":null}],"
           "\"statuses\":[{\"id\":\"x\",\"status\":\"failed\",\"errors\":[3]}]}}]}]}",
           m);
  free(m);
  size_t n = strlen(body);
  for (size_t cut = 0; cut <= n; cut += 5) {
    char *part = strndup(body, cut);
    ph_answer *a = ph_post_signed(APP_SECRET, part);
    ck_assert_msg(a->status == 200 || a->status == 400, "cut %zu: %d", cut, a->status);
    free(part);
  }
}
END_TEST

START_TEST(random_token_soup_and_mutated_webhooks_get_200_or_400) {
  open_with("");
  gd_add_media("1037543291543636", "image/jpeg", "JPEG");
  static const char *const vocab[] = {"{",
                                      "}",
                                      "[",
                                      "]",
                                      ":",
                                      ",",
                                      "\"object\"",
                                      "\"entry\"",
                                      "\"changes\"",
                                      "\"field\"",
                                      "\"messages\"",
                                      "\"value\"",
                                      "\"metadata\"",
                                      "\"phone_number_id\"",
                                      "\"" PHONE_ID "\"",
                                      "\"contacts\"",
                                      "\"wa_id\"",
                                      "\"profile\"",
                                      "\"from\"",
                                      "\"id\"",
                                      "\"timestamp\"",
                                      "\"type\"",
                                      "\"text\"",
                                      "\"body\"",
                                      "\"image\"",
                                      "\"1037543291543636\"",
                                      "\"statuses\"",
                                      "\"status\"",
                                      "\"failed\"",
                                      "\"errors\"",
                                      "\"code\"",
                                      "\"reaction\"",
                                      "\"emoji\"",
                                      "\"interactive\"",
                                      "\"context\"",
                                      "null",
                                      "true",
                                      "1",
                                      "-1",
                                      "1e400",
                                      "\"x\"",
                                      "\"\\ud800\""};
  char body[4000];
  snprintf(
      body, sizeof(body),
      "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"" WABA
      "\",\"changes\":[{\"value\":{"
      "\"messaging_product\":\"whatsapp\",\"metadata\":{\"phone_number_id\":\"" PHONE_ID
      "\"},"
      "\"contacts\":[{\"profile\":{\"name\":\"K\"},\"wa_id\":\"" CUSTOMER
      "\"}],\"messages\":["
      "{\"from\":\"" CUSTOMER
      "\",\"id\":\"wamid.FZ\",\"timestamp\":\"%lld\",\"type\":\"image\","
      "\"context\":{\"id\":\"wamid.P\"},\"image\":{\"id\":\"1037543291543636\",\"mime_type\":\"image/jpeg\"}}],"
      "\"statuses\":[{\"id\":\"wamid.O\",\"status\":\"failed\",\"timestamp\":\"1\",\"errors\":[{\"code\":131047}]}]},"
      "\"field\":\"messages\"}]}]}",
      now_s());
  ph_fuzz_webhooks(APP_SECRET, body, vocab, sizeof(vocab) / sizeof(vocab[0]), 200);
}
END_TEST

int main(void) {
  Suite *s = suite_create("whatsapp");
  TCase *tc = tcase_create("whatsapp");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, verification_and_signature_are_checked);
  tcase_add_test(tc, text_with_profile_name_context_and_string_timestamp_is_stored);
  tcase_add_test(tc, every_message_type_is_recorded);
  tcase_add_test(tc, media_is_looked_up_then_downloaded_with_the_bearer_token);
  tcase_add_test(tc, media_failures_are_recorded_on_the_message_and_not_fatal);
  tcase_add_test(tc, a_download_that_times_out_holds_a_new_message_for_redelivery);
  tcase_add_test(tc, a_media_lookup_meta_could_not_answer_holds_a_new_message);
  tcase_add_test(tc, an_old_message_whose_media_cannot_be_fetched_is_stored_without_it);
  tcase_add_test(tc, statuses_become_delivery_statuses_and_131047_says_re_engagement_required);
  tcase_add_test(tc, a_store_failure_gets_503_and_other_numbers_are_ignored);
  tcase_add_test(tc, a_message_refused_at_hand_off_gets_503);
  tcase_add_test(tc, text_within_24_hours_is_sent_with_preview_url_and_context);
  tcase_add_test(tc, outside_24_hours_free_text_fails_at_once_and_a_template_is_sent);
  tcase_add_test(tc, the_window_uses_the_customers_webhook_timestamp_when_the_host_gives_none);
  tcase_add_test(tc, media_replies_go_by_link_and_documents_keep_their_filename);
  tcase_add_test(tc, a_template_within_24_hours_is_followed_by_the_text_and_the_attachments);
  tcase_add_test(tc, outside_24_hours_a_template_with_text_or_attachments_is_refused_before_anything_is_sent);
  tcase_add_test(tc, a_retried_template_reply_resumes_after_the_parts_already_sent);
  tcase_add_test(tc, a_part_refused_for_good_after_others_went_out_names_what_went_out);
  tcase_add_test(tc, cloud_api_errors_are_classified_as_documented);
  tcase_add_test(tc, a_refused_token_at_connect_is_auth_failed);
  tcase_add_test(tc, connect_maps_meta_answers_to_channel_states_as_documented);
  tcase_add_test(tc, random_truncated_bodies_never_crash);
  tcase_add_test(tc, random_token_soup_and_mutated_webhooks_get_200_or_400);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
