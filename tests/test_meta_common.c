/* test_meta_common.c — plugins/meta_common: Graph error parsing and the classification tables of both
 * Meta plugins, X-Hub-Signature-256 checks, and URL encoding, without a plugin around them. */
#include <ctype.h>
#include <string.h>

#include "channel.h"
#include "graph_double.h"
#include "graph_double_internal.h"
#include "meta_form.h"
#include "meta_common.h"
#include "testutil.h"

static meta_graph_error err(long code, long subcode) {
  meta_graph_error e = {.found = 1, .code = code, .subcode = subcode};
  return e;
}

START_TEST(messenger_errors_are_classified_as_the_issue_lists) {
  meta_graph_error e = err(10, 2018278);
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 400, &e), META_WINDOW);
  e = err(551, 0);
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 400, &e), META_FAIL);
  long retry[] = {4, 613, 1200, 2};
  for (size_t i = 0; i < 4; i++) {
    e = err(retry[i], 0);
    ck_assert_int_eq(meta_classify(META_API_MESSENGER, 400, &e), META_RETRY);
  }
  e = err(190, 460);
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 400, &e), META_AUTH);
  meta_graph_error none = {0};
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 502, &none), META_RETRY);
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 0, &none), META_RETRY);
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 404, &none), META_FAIL);
  e = err(10, 0); /* permission error without the window subcode */
  ck_assert_int_eq(meta_classify(META_API_MESSENGER, 400, &e), META_FAIL);
}
END_TEST

START_TEST(whatsapp_errors_are_classified_as_the_issue_lists) {
  meta_graph_error e = err(131047, 0);
  ck_assert_int_eq(meta_classify(META_API_WHATSAPP, 400, &e), META_REENGAGE);
  long retry[] = {130429, 131056, 80007, 4, 131016, 1, 2};
  for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
    e = err(retry[i], 0);
    ck_assert_msg(meta_classify(META_API_WHATSAPP, 400, &e) == META_RETRY, "code %ld", retry[i]);
  }
  long fail[] = {131026, 131051, 368, 100};
  for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
    e = err(fail[i], 0);
    ck_assert_msg(meta_classify(META_API_WHATSAPP, 400, &e) == META_FAIL, "code %ld", fail[i]);
  }
  e = err(190, 0);
  ck_assert_int_eq(meta_classify(META_API_WHATSAPP, 401, &e), META_AUTH);
  meta_graph_error none = {0};
  ck_assert_int_eq(meta_classify(META_API_WHATSAPP, 503, &none), META_RETRY);
}
END_TEST

START_TEST(graph_envelopes_are_parsed_and_garbage_is_not_an_error) {
  const char *body =
      "{\"error\":{\"message\":\"(#131047) Re-engagement message\",\"type\":\"OAuthException\",\"code\":131047,"
      "\"error_subcode\":2494010,\"error_data\":{\"messaging_product\":\"whatsapp\",\"details\":\"More than 24 "
      "hours\\nhave passed\"},\"fbtrace_id\":\"Az8\"}}";
  meta_graph_error e;
  meta_parse_error(body, strlen(body), &e);
  ck_assert_int_eq(e.found, 1);
  ck_assert_int_eq(e.code, 131047);
  ck_assert_int_eq(e.subcode, 2494010);
  ck_assert_str_eq(e.message, "(#131047) Re-engagement message");
  ck_assert_str_eq(e.details, "More than 24 hours have passed"); /* control characters become spaces */
  char reason[META_MAX_REASON * 2];
  meta_reason(400, &e, reason, sizeof(reason));
  ck_assert_ptr_nonnull(strstr(reason, "Graph error 131047/2494010"));
  meta_parse_error("<html>502</html>", 16, &e);
  ck_assert_int_eq(e.found, 0);
  meta_parse_error(NULL, 0, &e);
  ck_assert_int_eq(e.found, 0);
  meta_reason(502, &e, reason, sizeof(reason));
  ck_assert_str_eq(reason, "the Graph API answered HTTP 502");
}
END_TEST

START_TEST(signatures_are_checked_in_constant_time_with_401_and_403) {
  const sb_host *host = hostapi_table();
  const char *body = "{\"object\":\"page\",\"entry\":[]}";
  char sig[72], why[200];
  gd_sign("s3cret", body, strlen(body), sig);
  sb_http_header h[] = {{"x-hub-signature-256", sig}};
  sb_http_request req = {.method = "POST",
                         .path = "/hooks/x",
                         .subpath = "",
                         .query = "",
                         .headers = h,
                         .header_count = 1,
                         .body = body,
                         .body_len = strlen(body)};
  ck_assert_int_eq(meta_check_signature(host, &req, "s3cret", why, sizeof(why)), 0);
  ck_assert_int_eq(meta_check_signature(host, &req, "other", why, sizeof(why)), 403);
  char upper[72];
  for (size_t i = 0; i <= strlen(sig); i++) upper[i] = i < 7 ? sig[i] : (char)toupper((unsigned char)sig[i]);
  h[0].value = upper; /* hex digits in either case */
  ck_assert_int_eq(meta_check_signature(host, &req, "s3cret", why, sizeof(why)), 0);
  /* 64 characters, one of them just outside the digits' and letters' ranges */
  const char outside[] = "/:@G`g \x80";
  for (size_t k = 0; k < sizeof(outside) - 1; k++) {
    char bad[72];
    memcpy(bad, sig, sizeof(bad));
    bad[7 + k * 9] = outside[k];
    h[0].value = bad;
    ck_assert_int_eq(meta_check_signature(host, &req, "s3cret", why, sizeof(why)), 401);
    ck_assert_ptr_nonnull(strstr(why, "64 hex digits"));
  }
  h[0].value = "sha256=abc";
  ck_assert_int_eq(meta_check_signature(host, &req, "s3cret", why, sizeof(why)), 401);
  h[0].value = "sha1=0000000000000000000000000000000000000000";
  ck_assert_int_eq(meta_check_signature(host, &req, "s3cret", why, sizeof(why)), 401);
  req.header_count = 0;
  ck_assert_int_eq(meta_check_signature(host, &req, "s3cret", why, sizeof(why)), 401);
  ck_assert_ptr_nonnull(strstr(why, "missing"));
}
END_TEST

START_TEST(url_segments_are_percent_encoded_and_overflow_is_reported) {
  char buf[32];
  size_t n = meta_urlencode(buf, sizeof(buf), 0, "a b/c?d");
  ck_assert_str_eq(buf, "a%20b%2Fc%3Fd");
  ck_assert_uint_eq(n, strlen(buf));
  ck_assert_uint_eq(meta_urlencode(buf, 8, 0, "0123456789"), 8);
  /* what was there before stays a terminated string */
  memcpy(buf, "base/XXXXXXXXXXXXXXXXXXXXXXXXXX", 32);
  buf[31] = 'X';
  ck_assert_uint_eq(meta_urlencode(buf, 16, 5, "0123456789abcdef"), 16);
  ck_assert_str_eq(buf, "base/");
}
END_TEST

/* Parses a built form back the way the Graph double does. */
static void parse_back(gd_request *rq, const char *type, char *body, size_t len) {
  memset(rq, 0, sizeof(*rq));
  snprintf(rq->content_type, sizeof(rq->content_type), "%s", type);
  rq->body = body;
  rq->body_len = len;
  const char *why = gd_form_parse(rq);
  ck_assert_msg(why == NULL, "%s", why != NULL ? why : "");
}

static void free_form(gd_request *rq) {
  for (int i = 0; i < rq->nform; i++) free(rq->form[i].data);
  free(rq->form);
}

/* Each round's data is the previous round's whole body, boundary and all: the new boundary must differ
 * from every one in it, and the bytes must come back intact. */
START_TEST(a_form_round_trips_data_holding_crlf_and_earlier_boundaries) {
  size_t len = 300;
  char *data = malloc(len);
  for (size_t i = 0; i < len; i++) data[i] = (char)(i % 7 == 0 ? '\r' : i % 7 == 1 ? '\n' : i % 7 == 2 ? '-' : i);
  for (int round = 0; round < 20; round++) {
    const meta_form_part parts[] = {{.name = "messaging_product", .data = "whatsapp", .len = 8},
                                    {.name = "file",
                                     .filename = "a \"b\"\r\nc.bin",
                                     .content_type = "application/octet-stream",
                                     .data = data,
                                     .len = len}};
    char *body = NULL, type[META_FORM_TYPE_MAX];
    size_t blen = 0;
    ck_assert_int_eq(meta_form_build(parts, 2, &body, &blen, type), SB_OK);
    ck_assert_ptr_null(memmem(data, len, strchr(type, '=') + 1, strlen(strchr(type, '=') + 1)));
    gd_request rq;
    parse_back(&rq, type, body, blen);
    ck_assert_int_eq(rq.nform, 2);
    ck_assert_str_eq(rq.form[0].data, "whatsapp");
    ck_assert_str_eq(rq.form[1].filename, "a \"b\"\r\nc.bin");
    ck_assert_str_eq(rq.form[1].content_type, "application/octet-stream");
    ck_assert_uint_eq(rq.form[1].len, len);
    ck_assert_int_eq(memcmp(rq.form[1].data, data, len), 0);
    free_form(&rq);
    free(data);
    data = body; /* the next round carries this one's boundary in its data */
    len = blen;
  }
  free(data);
}
END_TEST

START_TEST(a_form_refuses_a_content_type_that_would_be_a_header_of_its_own) {
  const meta_form_part bad[] = {{.name = "file", .filename = "x", .content_type = "image/png\r\nX-Evil: 1", .data = "a", .len = 1}};
  char *body = (char *)"untouched", type[META_FORM_TYPE_MAX];
  size_t blen = 7;
  ck_assert_int_eq(meta_form_build(bad, 1, &body, &blen, type), SB_EINVAL);
  ck_assert_ptr_null(body);
  const meta_form_part noname[] = {{.name = NULL, .data = "a", .len = 1}};
  ck_assert_int_eq(meta_form_build(noname, 1, &body, &blen, type), SB_EINVAL);
  /* the quoted name keeps CR, LF and '"' out of the header line */
  const meta_form_part q[] = {{.name = "file", .filename = "x\"\r\nContent-Type: text/html", .content_type = "image/png", .data = "a", .len = 1}};
  ck_assert_int_eq(meta_form_build(q, 1, &body, &blen, type), SB_OK);
  ck_assert_ptr_nonnull(strstr(body, "filename=\"x%22%0D%0AContent-Type: text/html\"\r\nContent-Type: image/png\r\n"));
  free(body);
}
END_TEST

int main(void) {
  Suite *s = suite_create("meta_common");
  TCase *tc = tcase_create("meta_common");
  tcase_add_test(tc, messenger_errors_are_classified_as_the_issue_lists);
  tcase_add_test(tc, whatsapp_errors_are_classified_as_the_issue_lists);
  tcase_add_test(tc, graph_envelopes_are_parsed_and_garbage_is_not_an_error);
  tcase_add_test(tc, signatures_are_checked_in_constant_time_with_401_and_403);
  tcase_add_test(tc, url_segments_are_percent_encoded_and_overflow_is_reported);
  tcase_add_test(tc, a_form_round_trips_data_holding_crlf_and_earlier_boundaries);
  tcase_add_test(tc, a_form_refuses_a_content_type_that_would_be_a_header_of_its_own);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
