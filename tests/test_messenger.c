/* test_messenger.c — plugins/messenger driven in-process: the real messenger.so with a fake router and
 * store, and the Graph API double (tests/graph_double.c) as the Send and User Profile APIs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph_double.h"
#include "plugin_harness.h"
#include "testutil.h"

#define TOKEN "EAAPageToken123"
#define APP_SECRET "app-secret-0123456789"
#define PAGE "1000200030004000"
#define KIM "7000000000000001"
#define LEE "7000000000000002"

#define CREDS_FMT                                                                              \
  "{\"page_id\":\"" PAGE "\",\"page_access_token\":\"" TOKEN "\",\"app_secret\":\"" APP_SECRET \
  "\",\"verify_token\":\"vt-42\",\"graph_api_base\":\"%%BASE%%\",\"request_timeout\":\"1s\"%s}"

static int ph_test_record(sb_responder *self, int status, const sb_http_header *h, size_t n, const char *body,
                          size_t len);

static void open_with(const char *extra) {
  char creds[2048];
  snprintf(creds, sizeof(creds), CREDS_FMT, extra);
  ph_open(creds);
}

static int64_t now_ms(void) { return (int64_t)time(NULL) * 1000; }

static void setup(void) {
  ph_setup("messenger", TOKEN, PAGE);
  gd_add_profile(KIM, "Kim", "S\\u00f8rensen", "https://cdn.example/kim.jpg");
}

static void teardown(void) { ph_teardown(); }

/* One messaging event from KIM with a message object body (JSON text). */
static char *event_msg(const char *psid, int64_t ts, const char *message) {
  char *s = malloc(8192);
  snprintf(s, 8192,
           "{\"sender\":{\"id\":\"%s\"},\"recipient\":{\"id\":\"" PAGE "\"},\"timestamp\":%lld,\"message\":%s}", psid,
           (long long)ts, message);
  return s;
}

/* A webhook body with one entry holding the given events (JSON array text). */
static char *hook(const char *events) {
  char *s = malloc(16384);
  snprintf(s, 16384, "{\"object\":\"page\",\"entry\":[{\"id\":\"" PAGE "\",\"time\":%lld,\"messaging\":%s}]}",
           (long long)now_ms(), events);
  return s;
}

static ph_answer *post_events(const char *events) {
  char *body = hook(events);
  ph_answer *a = ph_post_signed(APP_SECRET, body);
  free(body);
  return a;
}

/* --- verification and signatures ------------------------------------------------------- */

START_TEST(verification_get_echoes_the_challenge_only_for_the_right_token) {
  open_with("");
  ck_assert_uint_eq(channel_state(ph_ch), SB_STATE_CONNECTED);
  ph_answer *a = ph_request("GET", "hub.mode=subscribe&hub.verify_token=vt-42&hub.challenge=1158201444", NULL, NULL);
  ck_assert_int_eq(a->status, 200);
  ck_assert_str_eq(a->body, "1158201444");
  a = ph_request("GET", "hub.mode=subscribe&hub.verify_token=vt-43&hub.challenge=1158201444", NULL, NULL);
  ck_assert_int_eq(a->status, 403);
  a = ph_request("GET", "hub.mode=subscribe&hub.challenge=1", NULL, NULL);
  ck_assert_int_eq(a->status, 400);
  a = ph_request("GET", "hub.mode=subscribe&hub.verify_token=vt-42&hub.challenge=%3Cscript%3E", NULL, NULL);
  ck_assert_int_eq(a->status, 400);
  a = ph_request("GET", "hub.mode=unsubscribe&hub.verify_token=vt-42&hub.challenge=1", NULL, NULL);
  ck_assert_int_eq(a->status, 403);
  ck_assert_ptr_nonnull(strstr(a->body, "hub.mode must be subscribe"));
  /* a decoded NUL does not end the token or the mode early */
  a = ph_request("GET", "hub.mode=subscribe&hub.verify_token=vt-42%00anything&hub.challenge=1", NULL, NULL);
  ck_assert_int_eq(a->status, 403);
  a = ph_request("GET", "hub.mode=subscribe%00junk&hub.verify_token=vt-42&hub.challenge=1", NULL, NULL);
  ck_assert_int_eq(a->status, 403);
}
END_TEST

START_TEST(bad_or_missing_signature_is_refused_and_nothing_is_stored) {
  open_with("");
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_1\",\"text\":\"hi\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  char *body = hook(events);
  char sig[72];
  gd_sign("another-secret", body, strlen(body), sig);
  const char *bad[] = {"X-Hub-Signature-256", sig, NULL};
  ph_answer *refused = ph_request("POST", "", body, bad);
  ck_assert_int_eq(refused->status, 403);
  /* the error shape of the host's answers and the custom channel's */
  const char *shape = "{\"error\":{\"code\":\"forbidden\",\"message\":";
  ck_assert_msg(strncmp(refused->body, shape, strlen(shape)) == 0, "%s", refused->body);
  const char *malformed[] = {"X-Hub-Signature-256", "sha1=abc", NULL};
  ck_assert_int_eq(ph_request("POST", "", body, malformed)->status, 401);
  ck_assert_int_eq(ph_request("POST", "", body, NULL)->status, 401);
  ck_assert_int_eq(phe.in_count, 0);
  ck_assert_int_eq(gd_count_path("/" KIM), 0);
  ck_assert_int_eq(ph_post_signed(APP_SECRET, body)->status, 200);
  ck_assert_int_eq(phe.in_count, 1);
  free(body);
  free(ev);
}
END_TEST

START_TEST(malformed_json_gets_400_and_other_methods_405) {
  open_with("");
  ck_assert_int_eq(ph_post_signed(APP_SECRET, "{\"object\":\"page\",\"entry\":")->status, 400);
  ck_assert_int_eq(ph_post_signed(APP_SECRET, "[1,2]")->status, 400);
  ck_assert_int_eq(ph_request("PUT", "", "", NULL)->status, 405);
  ck_assert_int_eq(phe.in_count, 0);
}
END_TEST

/* --- inbound ------------------------------------------------------------------------- */

START_TEST(text_with_escaped_unicode_reply_to_and_profile_name_are_stored) {
  open_with("");
  int64_t ts = now_ms() - 5000;
  char *ev = event_msg(KIM, ts,
                       "{\"mid\":\"m_AAA\",\"text\":\"Caf\\u00e9 \\ud83d\\ude00 \\u00e6\\u00f8\\u00e5\","
                       "\"reply_to\":{\"mid\":\"m_ZZZ\"}}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  char *body = hook(events);
  ph_answer *got = ph_post_signed(APP_SECRET, body);
  free(body);
  ck_assert_int_eq(got->status, 200);
  const ph_inbound *in = ph_find("m_AAA");
  ck_assert_ptr_nonnull(in);
  ck_assert_str_eq(in->text, "Caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa6\xc3\xb8\xc3\xa5");
  ck_assert_str_eq(in->reply_to, "m_ZZZ");
  ck_assert_str_eq(in->sender_id, KIM);
  ck_assert_uint_eq(in->sender_kind, SB_IDENTITY_PSID);
  ck_assert_str_eq(in->sender_name, "Kim S\xc3\xb8rensen");
  ck_assert_str_eq(in->avatar, "https://cdn.example/kim.jpg");
  ck_assert_int_eq(in->timestamp_ms, ts);
  const gd_request *rq = gd_last("/" KIM);
  ck_assert_ptr_nonnull(rq);
  ck_assert_str_eq(rq->auth, "Bearer " TOKEN);
  ck_assert_ptr_nonnull(strstr(rq->query, "first_name"));
  /* The profile is cached: a second message makes no second lookup. */
  ev = event_msg(KIM, ts + 1, "{\"mid\":\"m_AAB\",\"text\":\"again\"}");
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_int_eq(gd_count_path("/" KIM), 1);
  ck_assert_str_eq(ph_find("m_AAB")->sender_name, "Kim S\xc3\xb8rensen");
  /* A profile with one of its names empty: that name alone, no stray space. */
  gd_add_profile("7100000000000003", "", "Okafor", "https://cdn.example/o.jpg");
  ev = event_msg("7100000000000003", ts + 2, "{\"mid\":\"m_AAC\",\"text\":\"hi\"}");
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_str_eq(ph_find("m_AAC")->sender_name, "Okafor");
  /* A name too long to keep is cut between characters, never inside one. */
  char long_last[300] = "";
  for (int i = 0; i < 127; i++) strcat(long_last, "\xc3\xa9");
  gd_add_profile("7100000000000004", "Ann", long_last, "https://cdn.example/a.jpg");
  ev = event_msg("7100000000000004", ts + 3, "{\"mid\":\"m_AAD\",\"text\":\"hi\"}");
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  const char *cut = ph_find("m_AAD")->sender_name;
  ck_assert_uint_eq(strlen(cut), 4 + 250); /* "Ann " and 125 of the 127 */
  ck_assert_int_eq(strncmp(cut, "Ann \xc3\xa9", 6), 0);
  json_t *probe = json_string(cut); /* NULL for invalid UTF-8 */
  ck_assert_ptr_nonnull(probe);
  json_decref(probe);
}
END_TEST

/* The cache holds each sender's profile under a hash of the PSID: thirty
 * senders, two messages each, are thirty lookups (the harness keeps 64
 * messages). */
START_TEST(each_of_many_senders_is_looked_up_once) {
  open_with("");
  int64_t ts = now_ms() - 5000;
  int before = gd_count();
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 30; i++) {
      char psid[32], message[96], events[4096];
      snprintf(psid, sizeof(psid), "72000000000%05d", i * 37);
      snprintf(message, sizeof(message), "{\"mid\":\"m_many_%d_%d\",\"text\":\"hi\"}", round, i);
      char *ev = event_msg(psid, ts + round * 100 + i, message);
      snprintf(events, sizeof(events), "[%s]", ev);
      free(ev);
      ck_assert_int_eq(post_events(events)->status, 200);
    }
    ck_assert_int_eq(gd_count() - before, 30); /* the second round asked nothing */
  }
}
END_TEST

START_TEST(webhook_is_answered_only_after_every_message_of_the_batch_is_committed) {
  open_with("");
  phe.hold = 1;
  char body[8192];
  snprintf(
      body, sizeof(body),
      "{\"object\":\"page\",\"entry\":["
      "{\"id\":\"" PAGE "\",\"time\":1,\"messaging\":[{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
      "\"},\"timestamp\":%lld,\"message\":{\"mid\":\"m_b1\",\"text\":\"one\"}}]},"
      "{\"id\":\"" PAGE "\",\"time\":2,\"messaging\":[{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
      "\"},\"timestamp\":%lld,\"message\":{\"mid\":\"m_b2\",\"text\":\"two\"}}]}]}",
      (long long)now_ms(), (long long)now_ms());
  char sig[72];
  gd_sign(APP_SECRET, body, strlen(body), sig);
  sb_http_header hdr[] = {{"X-Hub-Signature-256", sig}};
  static ph_answer a;
  memset(&a, 0, sizeof(a));
  sb_http_request req = {.method = "POST",
                         .path = "/hooks/meta",
                         .subpath = "",
                         .query = "",
                         .headers = hdr,
                         .header_count = 1,
                         .body = body,
                         .body_len = strlen(body),
                         .remote_addr = "127.0.0.1"};
  a.base.respond = ph_test_record;
  channel_receive(ph_ch, &req, &a.base);
  ph_run_for(300);
  ck_assert_int_eq(phe.in_count, 2); /* both entries handled */
  ck_assert_int_eq(a.done, 0);       /* nothing committed yet: no answer */
  phe.hold = 0;
  ph_flush();
  ck_assert(ph_run_until(&a.done, 2000));
  ck_assert_int_eq(a.status, 200);
  ck_assert_str_eq(phe.in[0].ext_id, "m_b1");
  ck_assert_str_eq(phe.in[1].ext_id, "m_b2");
}
END_TEST

START_TEST(attachments_stickers_fallbacks_and_postbacks_are_recorded) {
  open_with("");
  const char *files[][3] = {{"i1", "image/jpeg", "JPG"},  {"a1", "audio/mp4", "MP4A"}, {"v1", "video/mp4", "MP4V"},
                            {"f1", "application/pdf; x=y", "%PDF"}, {"like", "image/png", "PNG1"}, {"s2", "image/png", "PNG2"}};
  for (size_t i = 0; i < 6; i++) gd_add_media(files[i][0], files[i][1], files[i][2]);
  int64_t t = now_ms();
  int p = gd_port();
  char events[12000];
  snprintf(events, sizeof(events),
           "[{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":{"
           "\"mid\":\"m_att\",\"attachments\":["
           "{\"type\":\"image\",\"payload\":{\"url\":\"http://127.0.0.1:%d/cdn/i1\"}},"
           "{\"type\":\"audio\",\"payload\":{\"url\":\"http://127.0.0.1:%d/cdn/a1\"}},"
           "{\"type\":\"video\",\"payload\":{\"url\":\"http://127.0.0.1:%d/cdn/v1\"}},"
           "{\"type\":\"file\",\"payload\":{\"url\":\"http://127.0.0.1:%d/cdn/f1\"}}]}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":{"
           "\"mid\":\"m_st1\",\"sticker_id\":369239263222822,\"attachments\":[{\"type\":\"image\",\"payload\":{"
           "\"url\":\"http://127.0.0.1:%d/cdn/like\",\"sticker_id\":369239263222822}}]}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":{"
           "\"mid\":\"m_st2\",\"attachments\":[{\"type\":\"sticker\",\"payload\":{\"url\":\"http://127.0.0.1:%d/"
           "cdn/s2\"}}]}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":{"
           "\"mid\":\"m_fb\",\"attachments\":[{\"type\":\"fallback\",\"title\":\"A "
           "page\",\"payload\":{\"url\":\"https://ex.com/x\"}}]}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"postback\":{"
           "\"mid\":\"m_pb\",\"title\":\"Talk to sales\",\"payload\":\"SALES\"}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"postback\":{"
           "\"title\":\"Old style\",\"payload\":\"OLD\"}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":{\"mid\":\"m_loc\",\"attachments\":[{\"type\":\"location\","
           "\"title\":\"Pinned\",\"url\":\"https://l.facebook.com/x\",\"payload\":{\"coordinates\":"
           "{\"lat\":59.9,\"long\":10.7}}}]}}]",
           (long long)t, p, p, p, p, (long long)t + 1, p, (long long)t + 2, p, (long long)t + 3, (long long)t + 4,
           (long long)t + 5, (long long)t + 6);
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_int_eq(phe.in_count, 7);
  const ph_inbound *loc = ph_find("m_loc"); /* a place: its title, URL and coordinates, as the guide says */
  ck_assert_str_eq(loc->text, "(location)");
  ck_assert_msg(strstr(loc->meta, "\"location_title\":\"Pinned\"") != NULL &&
                    strstr(loc->meta, "\"location_url\":\"https://l.facebook.com/x\"") != NULL &&
                    strstr(loc->meta, "\"lat\":59.") != NULL,
                "%s", loc->meta);
  const ph_inbound *in = ph_find("m_att");
  ck_assert_uint_eq(in->attachment_count, 4);
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/cdn/i1", p);
  ck_assert_str_eq(in->att_url[0], url); /* the link is kept; the bytes and their real type come with it */
  for (size_t i = 0; i < 4; i++) {
    ck_assert_uint_eq(in->att_data_len[i], strlen(files[i][2]));
    ck_assert_str_eq(in->att_type[i], i == 3 ? "application/pdf" : files[i][1]);
  }
  ck_assert_ptr_null(strstr(in->meta, "attachment_error"));
  ck_assert_int_eq(gd_count_path("/cdn/"), 6);
  in = ph_find("m_st1");
  ck_assert_uint_eq(in->attachment_count, 1);
  ck_assert_ptr_nonnull(strstr(in->meta, "\"sticker_id\":369239263222822"));
  in = ph_find("m_st2");
  ck_assert_uint_eq(in->attachment_count, 1);
  ck_assert_ptr_nonnull(strstr(in->meta, "\"sticker\":true"));
  in = ph_find("m_fb");
  ck_assert_uint_eq(in->attachment_count, 0);
  ck_assert_str_eq(in->text, "https://ex.com/x");
  ck_assert_ptr_nonnull(strstr(in->meta, "A page"));
  in = ph_find("m_pb");
  ck_assert_str_eq(in->text, "Talk to sales");
  ck_assert_ptr_nonnull(strstr(in->meta, "\"postback_payload\":\"SALES\""));
  char synth[128];
  snprintf(synth, sizeof(synth), "postback:" KIM ":%lld", (long long)t + 5);
  ck_assert_ptr_nonnull(ph_find(synth));
}
END_TEST

/* An attachment whose download does not answer may pass: a new message is
 * held (503, Meta delivers again) and stored with the bytes the next time. */
START_TEST(an_attachment_download_that_times_out_holds_a_new_message_for_redelivery) {
  open_with("");
  gd_add_media("slow", "image/jpeg", "JPEG");
  gd_script_silence("/cdn/slow");
  char msg[512];
  snprintf(msg, sizeof(msg),
           "{\"mid\":\"m_slow\",\"attachments\":[{\"type\":\"image\",\"payload\":{\"url\":\"http://127.0.0.1:%d/"
           "cdn/slow\"}}]}",
           gd_port());
  char *ev = event_msg(KIM, now_ms(), msg), *list = malloc(strlen(ev) + 3);
  sprintf(list, "[%s]", ev);
  ck_assert_int_eq(post_events(list)->status, 503);
  ck_assert_ptr_null(ph_find("m_slow"));
  ck_assert_int_eq(post_events(list)->status, 200);
  const ph_inbound *in = ph_find("m_slow");
  ck_assert_ptr_nonnull(in);
  ck_assert_uint_eq(in->att_data_len[0], 4);
  ck_assert_str_eq(in->att_type[0], "image/jpeg");
  free(ev);
  free(list);
}
END_TEST

/* A link that no longer works (403), or a message an hour old whose
 * download failed (500), is stored at once with the link only, the failure
 * in its metadata. */
START_TEST(an_expired_link_or_an_old_message_is_stored_with_the_link_only) {
  open_with("");
  gd_add_media("old", "image/png", "PNG");
  gd_add_media("fine", "image/gif", "GIF89a");
  gd_script_raw("/cdn/old", 500, "oops");
  char a[512], b[512], c[512];
  /* first a message whose download works: nothing of it may stay for the next */
  snprintf(c, sizeof(c),
           "{\"mid\":\"m_fine\",\"attachments\":[{\"type\":\"image\",\"payload\":{\"url\":\"http://127.0.0.1:%d/"
           "cdn/fine\"}}]}",
           gd_port());
  snprintf(a, sizeof(a),
           "{\"mid\":\"m_gone\",\"attachments\":[{\"type\":\"file\",\"payload\":{\"url\":\"http://127.0.0.1:%d/"
           "cdn/expired\"}}]}",
           gd_port());
  snprintf(b, sizeof(b),
           "{\"mid\":\"m_old\",\"attachments\":[{\"type\":\"image\",\"payload\":{\"url\":\"http://127.0.0.1:%d/"
           "cdn/old\"}}]}",
           gd_port());
  char *e0 = event_msg(KIM, now_ms(), c), *e1 = event_msg(KIM, now_ms(), a),
       *e2 = event_msg(KIM, now_ms() - 2 * 3600 * 1000, b);
  char list[4096];
  snprintf(list, sizeof(list), "[%s,%s,%s]", e0, e1, e2);
  free(e0);
  free(e1);
  free(e2);
  ck_assert_int_eq(post_events(list)->status, 200);
  ck_assert_uint_eq(ph_find("m_fine")->att_data_len[0], 6);
  const ph_inbound *in = ph_find("m_gone");
  ck_assert_ptr_nonnull(in);
  ck_assert_uint_eq(in->attachment_count, 1);
  ck_assert_uint_eq(in->att_data_len[0], 0);
  ck_assert_str_eq(in->att_type[0], "application/octet-stream"); /* Messenger's family, not the last download's */
  ck_assert_ptr_nonnull(strstr(in->meta, "\"attachment_error\":\"attachment 1 could not be downloaded: HTTP 403\""));
  in = ph_find("m_old");
  ck_assert_ptr_nonnull(in);
  ck_assert_uint_eq(in->att_data_len[0], 0);
  ck_assert_ptr_nonnull(strstr(in->meta, "HTTP 500"));
}
END_TEST

START_TEST(delivery_and_read_become_watermark_statuses) {
  open_with("");
  char events[4096];
  snprintf(events, sizeof(events),
           "[{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"delivery\":{\"mids\":[\"m_sent1\"],"
           "\"watermark\":1763800000123}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":1763800001000,"
           "\"read\":{\"watermark\":1763800000999}}]");
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_int_eq(phe.in_count, 0);
  ck_assert_int_eq(phe.st_count, 3);
  ck_assert_uint_eq(phe.st[0].status, SB_STATUS_DELIVERED);
  ck_assert_uint_eq(phe.st[0].flags, SB_STATUS_WATERMARK);
  ck_assert_uint_eq(phe.st[0].recipient_kind, SB_IDENTITY_PSID);
  ck_assert_str_eq(phe.st[0].recipient, KIM);
  ck_assert_int_eq(phe.st[0].timestamp_ms, 1763800000123);
  ck_assert_uint_eq(phe.st[1].status, SB_STATUS_DELIVERED); /* the named mid, by id */
  ck_assert_uint_eq(phe.st[1].flags, 0);
  ck_assert_str_eq(phe.st[1].ext_id, "m_sent1");
  ck_assert_uint_eq(phe.st[2].status, SB_STATUS_READ);
  ck_assert_uint_eq(phe.st[2].flags, SB_STATUS_WATERMARK);
  ck_assert_int_eq(phe.st[2].timestamp_ms, 1763800000999);
}
END_TEST

START_TEST(echoes_are_outbound_from_elsewhere_and_our_own_echoes_are_skipped) {
  open_with("");
  char events[4096];
  snprintf(events, sizeof(events),
           "[{\"sender\":{\"id\":\"" PAGE "\"},\"recipient\":{\"id\":\"" KIM
           "\"},\"timestamp\":%lld,\"message\":{"
           "\"is_echo\":true,\"app_id\":1517776481860111,\"mid\":\"m_echo1\",\"text\":\"From the Page inbox\"}},"
           "{\"sender\":{\"id\":\"" PAGE "\"},\"recipient\":{\"id\":\"" KIM
           "\"},\"timestamp\":%lld,\"message\":{"
           "\"is_echo\":true,\"app_id\":1,\"metadata\":\"switchboard:77\",\"mid\":\"m_echo2\",\"text\":\"ours\"}}]",
           (long long)now_ms(), (long long)now_ms());
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_int_eq(phe.in_count, 1);
  const ph_inbound *in = ph_find("m_echo1");
  ck_assert_uint_eq(in->flags & SB_IN_ECHO, SB_IN_ECHO);
  ck_assert_str_eq(in->sender_id, KIM);        /* the contact the Page wrote to */
  ck_assert_int_eq(gd_count_path("/" KIM), 0); /* no profile lookup for echoes */
}
END_TEST

START_TEST(redelivered_batches_store_nothing_new_and_standby_is_recorded) {
  open_with("");
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_dup\",\"text\":\"once\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_int_eq(phe.in_count, 2);
  ck_assert_int_eq(phe.stored_count, 1); /* the router dedups on mid */
  char body[4096];
  snprintf(body, sizeof(body),
           "{\"object\":\"page\",\"entry\":[{\"id\":\"" PAGE "\",\"time\":1,\"standby\":[{\"sender\":{\"id\":\"" KIM
           "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":{\"mid\":\"m_sb\",\"text\":\"to the bot\"}}]}]}",
           (long long)now_ms());
  ck_assert_int_eq(ph_post_signed(APP_SECRET, body)->status, 200);
  const ph_inbound *in = ph_find("m_sb");
  ck_assert_ptr_nonnull(in);
  ck_assert_uint_eq(in->flags & SB_IN_NO_AUTOREPLY, SB_IN_NO_AUTOREPLY);
  ck_assert_ptr_nonnull(strstr(in->meta, "\"standby\":true"));
}
END_TEST

START_TEST(a_profile_error_keeps_the_psid_and_does_not_fail_the_message) {
  open_with("");
  char *ev = event_msg(LEE, now_ms(), "{\"mid\":\"m_lee\",\"text\":\"hello\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  const gd_request *rq = gd_last("/" LEE);
  ck_assert_ptr_nonnull(rq);
  ck_assert_int_eq(rq->status, 400); /* 100/2018218 from the double */
  const ph_inbound *in = ph_find("m_lee");
  ck_assert_ptr_nonnull(in);
  ck_assert_str_eq(in->sender_id, LEE);
  ck_assert_str_eq(in->sender_name, "(null)");
  /* A profile lookup that times out also keeps the message. */
  gd_script_silence("/7000000000000003");
  ev = event_msg("7000000000000003", now_ms(), "{\"mid\":\"m_slow\",\"text\":\"hello\"}");
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ck_assert_ptr_nonnull(ph_find("m_slow"));
}
END_TEST

/* Refused at the hand-off for a passing reason (out of memory, the store
 * stopping): 503 as for a failed commit, not a 200 that loses it. */
START_TEST(a_message_refused_at_hand_off_gets_503) {
  open_with("");
  phe.refuse = SB_ENOMEM;
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_refused\",\"text\":\"x\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 503);
  phe.refuse = 0;
}
END_TEST

START_TEST(a_store_failure_gets_503_so_meta_delivers_again) {
  open_with("");
  phe.fail_store = 1;
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_fail\",\"text\":\"x\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 503);
}
END_TEST

/* --- outbound -------------------------------------------------------------------------- */

static sb_outbound_message reply(const char *text, int64_t last_inbound_ms, uint32_t flags) {
  sb_outbound_message m = {.message_id = "77",
                           .idempotency_key = "idem-77",
                           .attempt = 1,
                           .flags = flags,
                           .recipient_id = KIM,
                           .text = text,
                           .last_inbound_ms = last_inbound_ms};
  return m;
}

START_TEST(within_24_hours_a_reply_goes_as_response_with_reply_to) {
  open_with("");
  sb_outbound_message m = reply("Hej Kim \xc3\xa6", now_ms() - 3600 * 1000, 0);
  m.reply_to_external_id = "m_AAA";
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, gd_last("/me/messages") != NULL ? "m_sent0001" : "?");
  const gd_request *rq = gd_last("/me/messages");
  ck_assert_str_eq(rq->method, "POST");
  ck_assert_str_eq(rq->auth, "Bearer " TOKEN);
  json_t *b = json_loads(rq->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(b, "messaging_type")), "RESPONSE");
  ck_assert_ptr_null(json_object_get(b, "tag"));
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "recipient"), "id")), KIM);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "message"), "text")), "Hej Kim \xc3\xa6");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "reply_to"), "mid")), "m_AAA");
  json_decref(b);
}
END_TEST

START_TEST(between_24_hours_and_7_days_an_agent_reply_uses_the_human_agent_tag) {
  open_with("");
  sb_outbound_message m = reply("Sorry for the wait", now_ms() - 30LL * 3600 * 1000, 0);
  ph_sent *s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  json_t *b = json_loads(gd_last("/me/messages")->body, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(b, "messaging_type")), "MESSAGE_TAG");
  ck_assert_str_eq(json_string_value(json_object_get(b, "tag")), "HUMAN_AGENT");
  json_decref(b);
  /* Automatic messages never leave the 24 hours. */
  m = reply("Auto", now_ms() - 30LL * 3600 * 1000, SB_OUT_AUTOMATIC);
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "automatic"));
  /* Past 7 days: fails at once, nothing sent. */
  int before = gd_count();
  m = reply("Too late", now_ms() - 8LL * 24 * 3600 * 1000, 0);
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "7-day"));
  ck_assert_int_eq(gd_count(), before);
}
END_TEST

START_TEST(human_agent_tag_off_fails_after_24_hours) {
  open_with(",\"human_agent_tag\":false");
  sb_outbound_message m = reply("x", now_ms() - 30LL * 3600 * 1000, 0);
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "human_agent_tag"));
}
END_TEST

START_TEST(graph_errors_are_classified_as_documented) {
  open_with("");
  struct {
    int http;
    long code, sub;
    int outcome;
    const char *needle;
  } cases[] = {
      {400, 10, 2018278, CHANNEL_SEND_FAIL, "window"},
      {400, 551, 1545041, CHANNEL_SEND_FAIL, "not available"},
      {400, 100, 0, CHANNEL_SEND_FAIL, "Graph error 100"},
      {400, 4, 0, CHANNEL_SEND_RETRY, "Graph error 4"},
      {400, 613, 0, CHANNEL_SEND_RETRY, "613"},
      {400, 1200, 0, CHANNEL_SEND_RETRY, "1200"},
      {500, 2, 0, CHANNEL_SEND_RETRY, "Graph error 2"},
      {503, 0, 0, CHANNEL_SEND_RETRY, "503"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (cases[i].code != 0) {
      gd_script_error("/me/messages", cases[i].http, cases[i].code, cases[i].sub, "scripted failure");
    } else {
      gd_script_raw("/me/messages", cases[i].http, "<html>Service Unavailable</html>");
    }
    sb_outbound_message m = reply("x", now_ms() - 1000, 0);
    ph_sent *s = ph_send(&m);
    ck_assert_msg(s->outcome == cases[i].outcome, "case %zu: outcome %d (%s)", i, s->outcome, s->text);
    ck_assert_msg(strstr(s->text, cases[i].needle) != NULL, "case %zu: %s", i, s->text);
  }
  gd_script_error("/me/messages", 400, 4, 0, "(#4) Application request limit reached");
  sb_outbound_message m = reply("x", now_ms() - 1000, 0);
  ck_assert_uint_eq(ph_send(&m)->retry_after, 60000);
}
END_TEST

START_TEST(timeouts_retry_and_an_expired_token_holds_sends_and_marks_auth_failed) {
  open_with("");
  gd_script_silence("/me/messages");
  sb_outbound_message m = reply("x", now_ms() - 1000, 0);
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_RETRY);
  gd_script_error("/me/messages", 401, 190, 463, "Error validating access token: Session has expired");
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_DEFER); /* held, as the sends after it: released together, in order */
  ck_assert_ptr_nonnull(strstr(s->text, "held"));
  ck_assert_uint_eq(channel_state(ph_ch), SB_STATE_AUTH_FAILED);
}
END_TEST

START_TEST(a_refused_token_at_connect_is_auth_failed) {
  char creds[2048];
  snprintf(creds, sizeof(creds),
           "{\"page_id\":\"" PAGE
           "\",\"page_access_token\":\"wrong\",\"app_secret\":\"s\",\"verify_token\":\"v\","
           "\"graph_api_base\":\"%%BASE%%\"}");
  ph_open(creds);
  ck_assert_uint_eq(channel_state(ph_ch), SB_STATE_AUTH_FAILED);
}
END_TEST

/* The state connect settles in when the Page read is answered so (code 0: a bare status). */
static uint32_t state_after_connect_answer(int http, long code) {
  char creds[2048];
  snprintf(creds, sizeof(creds), CREDS_FMT, "");
  return ph_state_after_connect_answer(creds, "/" PAGE, http, code);
}

START_TEST(connect_maps_meta_answers_to_channel_states_as_documented) {
  const long rate_limits[] = {4, 17, 32, 613};
  for (size_t i = 0; i < sizeof(rate_limits) / sizeof(rate_limits[0]); i++)
    ck_assert_uint_eq(state_after_connect_answer(400, rate_limits[i]), SB_STATE_DISCONNECTED);
  ck_assert_uint_eq(state_after_connect_answer(500, 2), SB_STATE_DISCONNECTED);
  ck_assert_uint_eq(state_after_connect_answer(429, 0), SB_STATE_DISCONNECTED);
  ck_assert_uint_eq(state_after_connect_answer(401, 102), SB_STATE_AUTH_FAILED); /* 401 without 190 */
  ck_assert_uint_eq(state_after_connect_answer(400, 100), SB_STATE_CONFIG_ERROR);
}
END_TEST

START_TEST(attachments_go_as_separate_parts_and_a_retry_resumes_after_the_sent_ones) {
  open_with("");
  static const sb_attachment att[] = {{.url = "https://files.example/r.pdf", .mime_type = "application/pdf"},
                                      {.url = "https://files.example/p.png", .mime_type = "image/png"}};
  sb_outbound_message m = reply("See attached", now_ms() - 1000, 0);
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
  ck_assert_int_eq(gd_count_path("/me/messages"), 4); /* only the image again */
  json_t *b = json_loads(gd_last("/me/messages")->body, 0, NULL);
  json_t *a = json_object_get(json_object_get(b, "message"), "attachment");
  ck_assert_str_eq(json_string_value(json_object_get(a, "type")), "image");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "payload"), "url")),
                   "https://files.example/p.png");
  json_decref(b);
  /* Refused for good after the text went: the reason says so, and a retry
   * the agent asks for (the same key) sends only the rest. */
  m.idempotency_key = "k-partial";
  m.attempt = 1;
  gd_script_raw("/me/messages", 200, "{\"recipient_id\":\"" KIM "\",\"message_id\":\"m_text\"}");
  gd_script_error("/me/messages", 400, 100, 0, "Invalid parameter");
  s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s->text, "1 of the reply's 3 messages went out (the first as m_text), but not the rest") == s->text,
                "%s", s->text);
  int before = gd_count_path("/me/messages");
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
  ck_assert_str_eq(s->text, "m_text");
  ck_assert_int_eq(gd_count_path("/me/messages"), before + 2); /* the two attachments, not the text again */
}
END_TEST

/* --- consent, greeting, instant reply ---------------------------------------------------- */

START_TEST(explicit_consent_asks_first_holds_replies_and_releases_them_on_the_postback) {
  open_with(",\"consent_mode\":\"explicit\",\"consent_text\":\"May we store this chat?\"");
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_c1\",\"text\":\"hello\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ph_run_for(200);
  const gd_request *ask = gd_last("/me/messages");
  ck_assert_ptr_nonnull(ask);
  ck_assert_ptr_nonnull(strstr(ask->body, "May we store this chat?"));
  ck_assert_ptr_nonnull(strstr(ask->body, "SWITCHBOARD_CONSENT_GIVEN"));
  /* The request is recorded in the conversation as an automatic outbound message. */
  const ph_inbound *rec = &phe.in[phe.in_count - 1];
  ck_assert_uint_eq(rec->flags, SB_IN_ECHO | SB_IN_AUTOMATIC);
  ck_assert_str_eq(rec->text, "May we store this chat?");
  ck_assert_str_eq(rec->sender_id, KIM);
  ck_assert_str_eq(rec->ext_id, "m_sent0001");
  int asked = gd_count_path("/me/messages");
  sb_outbound_message m = reply("Agent here", now_ms() - 1000, 0);
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_DEFER);
  ck_assert_uint_eq(s->retry_after, 3600000);
  ck_assert_ptr_nonnull(strstr(s->text, "consent"));
  ck_assert_int_eq(gd_count_path("/me/messages"), asked);
  /* A second message does not ask again. */
  ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_c2\",\"text\":\"hello?\"}");
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ph_run_for(100);
  ck_assert_int_eq(gd_count_path("/me/messages"), asked);
  snprintf(events, sizeof(events),
           "[{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"postback\":{"
           "\"mid\":\"m_yes\",\"title\":\"I agree\",\"payload\":\"SWITCHBOARD_CONSENT_GIVEN\"}}]",
           (long long)now_ms());
  ck_assert_int_eq(post_events(events)->status, 200);
  /* The held reply is released at once, not at the end of its hour. */
  ck_assert_int_eq(phe.releases, 1);
  ck_assert_str_eq(phe.released, "2:" KIM); /* SB_IDENTITY_PSID */
  s = ph_send(&m);
  ck_assert_msg(s->outcome == CHANNEL_SEND_OK, "%s", s->text);
}
END_TEST

START_TEST(the_consent_keyword_also_gives_consent) {
  open_with(",\"consent_mode\":\"explicit\"");
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_k1\",\"text\":\"  i AGREE. \"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  ph_run_for(100);
  ck_assert_int_eq(gd_count_path("/me/messages"), 0); /* consent given at once: nothing to ask */
  sb_outbound_message m = reply("Thanks", now_ms() - 1000, 0);
  ck_assert_int_eq(ph_send(&m)->outcome, CHANNEL_SEND_OK);
}
END_TEST

START_TEST(greeting_is_set_at_connect_and_the_instant_reply_goes_once) {
  open_with(",\"greeting_text\":\"Hi {{user_first_name}}!\",\"instant_reply\":\"Thanks, we reply within the hour.\"");
  ph_run_for(200);
  const gd_request *g = gd_last("/me/messenger_profile");
  ck_assert_ptr_nonnull(g);
  ck_assert_ptr_nonnull(
      strstr(g->body, "\"greeting\":[{\"locale\":\"default\",\"text\":\"Hi {{user_first_name}}!\"}]"));
  for (int i = 0; i < 3; i++) { /* the first written 30 hours ago: no automatic message leaves 24 hours */
    char mid[32], msg[128];
    snprintf(mid, sizeof(mid), "m_ir%d", i);
    snprintf(msg, sizeof(msg), "{\"mid\":\"%s\",\"text\":\"hello\"}", mid);
    char *ev = event_msg(KIM, now_ms() - (i == 0 ? 30LL * 3600 * 1000 : 0), msg);
    char events[9000];
    snprintf(events, sizeof(events), "[%s]", ev);
    free(ev);
    ck_assert_int_eq(post_events(events)->status, 200);
    ph_run_for(150);
    ck_assert_int_eq(gd_count_path("/me/messages"), i == 0 ? 0 : 1);
  }
  ck_assert_ptr_nonnull(strstr(gd_last("/me/messages")->body, "we reply within the hour"));
}
END_TEST

START_TEST(invalid_settings_are_refused_by_name) {
  char err[512];
  ck_assert_int_ne(
      ph_try_open("{\"page_id\":\"abc\",\"page_access_token\":\"t\",\"app_secret\":\"s\",\"verify_token\":\"v\"}", err,
                  sizeof(err)),
      0);
  ck_assert_ptr_nonnull(strstr(err, "page_id"));
  ck_assert_int_ne(
      ph_try_open("{\"page_id\":\"1\",\"page_access_token\":\"t\",\"app_secret\":\"s\"}", err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "verify_token"));
}
END_TEST

START_TEST(random_truncated_bodies_never_crash) {
  open_with("");
  char *ev = event_msg(KIM, now_ms(),
                       "{\"mid\":\"m_r\",\"text\":\"x\",\"attachments\":[{\"type\":\"image\",\"payload\":{}}]}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s,{\"sender\":{},\"read\":{\"watermark\":\"x\"}}]", ev);
  free(ev);
  char *body = hook(events);
  size_t n = strlen(body);
  for (size_t cut = 0; cut < n; cut += 7) {
    char *part = strndup(body, cut);
    ph_answer *a = ph_post_signed(APP_SECRET, part);
    ck_assert(a->status == 200 || a->status == 400);
    free(part);
  }
  free(body);
}
END_TEST

static int ph_test_record(sb_responder *self, int status, const sb_http_header *h, size_t n, const char *body,
                          size_t len) {
  (void)h;
  (void)n;
  ph_answer *a = (ph_answer *)self;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body != NULL ? body : "");
  a->done++;
  return 0;
}

START_TEST(closing_with_a_send_and_a_lookup_in_flight_answers_and_completes_each_once) {
  open_with("");
  gd_script_silence("/me/messages");
  gd_script_silence("/7000000000000009");
  static ph_sent s;
  memset(&s, 0, sizeof(s));
  sb_outbound_message m = reply("x", now_ms() - 1000, 0);
  ph_sent_init(&s);
  ck_assert_int_eq(channel_send(ph_ch, &m, &s.base), 0);
  char *ev = event_msg("7000000000000009", now_ms(), "{\"mid\":\"m_close\",\"text\":\"hi\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  char *body = hook(events);
  char sig[72];
  gd_sign(APP_SECRET, body, strlen(body), sig);
  sb_http_header hdr[] = {{"X-Hub-Signature-256", sig}};
  static ph_answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = ph_test_record;
  sb_http_request req = {.method = "POST",
                         .path = "/hooks/meta",
                         .subpath = "",
                         .query = "",
                         .headers = hdr,
                         .header_count = 1,
                         .body = body,
                         .body_len = strlen(body),
                         .remote_addr = "127.0.0.1"};
  channel_receive(ph_ch, &req, &a.base);
  ph_run_for(200);
  ck_assert_int_eq(a.done, 0);
  ck_assert_int_eq(s.done, 0);
  ph_close();
  free(body);
  ck_assert_int_eq(a.done, 1);
  ck_assert_int_eq(a.status, 503);
  ck_assert_int_eq(s.done, 1);
  ck_assert_int_eq(s.outcome, CHANNEL_SEND_RETRY);
  ck_assert_int_eq(phe.in_count, 0);
}
END_TEST

START_TEST(the_double_writes_webhooks_as_meta_does) {
  open_with("");
  char *ev = event_msg(KIM, now_ms(), "{\"mid\":\"m_meta\",\"text\":\"Gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80 a/b\"}");
  char events[9000];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  char *raw = hook(events);
  char *body = gd_webhook_body(raw);
  free(raw);
  ck_assert_ptr_nonnull(strstr(body, "Gr\\u00fc\\u00df \\ud83d\\ude00 a\\/b"));
  ck_assert_int_eq(ph_post_signed(APP_SECRET, body)->status, 200);
  free(body);
  ck_assert_str_eq(ph_find("m_meta")->text, "Gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80 a/b");
}
END_TEST

START_TEST(random_token_soup_and_mutated_webhooks_get_200_or_400) {
  open_with(",\"consent_mode\":\"explicit\"");
  gd_add_media("fz", "image/png", "PNG");
  static const char *const vocab[] = {"{",
                                      "}",
                                      "[",
                                      "]",
                                      ":",
                                      ",",
                                      "\"object\"",
                                      "\"page\"",
                                      "\"entry\"",
                                      "\"messaging\"",
                                      "\"standby\"",
                                      "\"sender\"",
                                      "\"recipient\"",
                                      "\"id\"",
                                      "\"" KIM "\"",
                                      "\"timestamp\"",
                                      "\"message\"",
                                      "\"mid\"",
                                      "\"text\"",
                                      "\"is_echo\"",
                                      "\"attachments\"",
                                      "\"type\"",
                                      "\"payload\"",
                                      "\"url\"",
                                      "\"sticker_id\"",
                                      "\"postback\"",
                                      "\"delivery\"",
                                      "\"read\"",
                                      "\"watermark\"",
                                      "\"mids\"",
                                      "\"reply_to\"",
                                      "null",
                                      "true",
                                      "1",
                                      "-1",
                                      "1e400",
                                      "\"x\"",
                                      "\"\\ud800\"",
                                      "\"image\"",
                                      "\"fallback\""};
  char events[9000];
  snprintf(events, sizeof(events),
           "[{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"timestamp\":%lld,\"message\":"
           "{\"mid\":\"m_fz\",\"text\":\"I agree\",\"reply_to\":{\"mid\":\"m_0\"},\"attachments\":[{\"type\":"
           "\"image\",\"payload\":{\"url\":\"http://127.0.0.1:%d/cdn/fz\",\"sticker_id\":1}}]}},"
           "{\"sender\":{\"id\":\"" KIM "\"},\"recipient\":{\"id\":\"" PAGE
           "\"},\"delivery\":{\"mids\":[\"m_1\"],"
           "\"watermark\":1}},{\"sender\":{\"id\":\"" KIM "\"},\"postback\":{\"title\":\"t\",\"payload\":\"p\"}}]",
           /* two hours old: a mutated link that fails is stored, not held for redelivery (503) */
           (long long)now_ms() - 2 * 3600 * 1000, gd_port());
  char *body = hook(events);
  ph_fuzz_webhooks(APP_SECRET, body, vocab, sizeof(vocab) / sizeof(vocab[0]), 200);
  free(body);
}
END_TEST

START_TEST(a_reply_to_someone_who_never_wrote_fails_at_once) {
  open_with("");
  /* The plugin keeps no clock of its own: a message the host has not stored does not open the window. */
  char *ev = event_msg(LEE, now_ms() - 1000, "{\"mid\":\"m_lee1\",\"text\":\"hi\"}");
  char events[4096];
  snprintf(events, sizeof(events), "[%s]", ev);
  free(ev);
  ck_assert_int_eq(post_events(events)->status, 200);
  sb_outbound_message m = reply("x", 0, 0); /* the host knows no message from them */
  m.recipient_id = LEE;
  ph_sent *s = ph_send(&m);
  ck_assert_int_eq(s->outcome, CHANNEL_SEND_FAIL);
  ck_assert_ptr_nonnull(strstr(s->text, "has not written to the Page"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("messenger");
  TCase *tc = tcase_create("messenger");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, verification_get_echoes_the_challenge_only_for_the_right_token);
  tcase_add_test(tc, bad_or_missing_signature_is_refused_and_nothing_is_stored);
  tcase_add_test(tc, malformed_json_gets_400_and_other_methods_405);
  tcase_add_test(tc, text_with_escaped_unicode_reply_to_and_profile_name_are_stored);
  tcase_add_test(tc, each_of_many_senders_is_looked_up_once);
  tcase_add_test(tc, webhook_is_answered_only_after_every_message_of_the_batch_is_committed);
  tcase_add_test(tc, attachments_stickers_fallbacks_and_postbacks_are_recorded);
  tcase_add_test(tc, an_attachment_download_that_times_out_holds_a_new_message_for_redelivery);
  tcase_add_test(tc, an_expired_link_or_an_old_message_is_stored_with_the_link_only);
  tcase_add_test(tc, delivery_and_read_become_watermark_statuses);
  tcase_add_test(tc, echoes_are_outbound_from_elsewhere_and_our_own_echoes_are_skipped);
  tcase_add_test(tc, redelivered_batches_store_nothing_new_and_standby_is_recorded);
  tcase_add_test(tc, a_profile_error_keeps_the_psid_and_does_not_fail_the_message);
  tcase_add_test(tc, a_store_failure_gets_503_so_meta_delivers_again);
  tcase_add_test(tc, a_message_refused_at_hand_off_gets_503);
  tcase_add_test(tc, within_24_hours_a_reply_goes_as_response_with_reply_to);
  tcase_add_test(tc, between_24_hours_and_7_days_an_agent_reply_uses_the_human_agent_tag);
  tcase_add_test(tc, human_agent_tag_off_fails_after_24_hours);
  tcase_add_test(tc, graph_errors_are_classified_as_documented);
  tcase_add_test(tc, timeouts_retry_and_an_expired_token_holds_sends_and_marks_auth_failed);
  tcase_add_test(tc, a_refused_token_at_connect_is_auth_failed);
  tcase_add_test(tc, connect_maps_meta_answers_to_channel_states_as_documented);
  tcase_add_test(tc, attachments_go_as_separate_parts_and_a_retry_resumes_after_the_sent_ones);
  tcase_add_test(tc, explicit_consent_asks_first_holds_replies_and_releases_them_on_the_postback);
  tcase_add_test(tc, the_consent_keyword_also_gives_consent);
  tcase_add_test(tc, greeting_is_set_at_connect_and_the_instant_reply_goes_once);
  tcase_add_test(tc, invalid_settings_are_refused_by_name);
  tcase_add_test(tc, random_truncated_bodies_never_crash);
  tcase_add_test(tc, the_double_writes_webhooks_as_meta_does);
  tcase_add_test(tc, random_token_soup_and_mutated_webhooks_get_200_or_400);
  tcase_add_test(tc, closing_with_a_send_and_a_lookup_in_flight_answers_and_completes_each_once);
  tcase_add_test(tc, a_reply_to_someone_who_never_wrote_fails_at_once);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
