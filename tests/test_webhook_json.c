/* test_webhook_json.c — plugins/webhook_json: cJSON with the strictness the
 * plugins rely on (UTF-8, no \u0000, nothing after the value, duplicate
 * keys on request), and the typed getters. */
#include "testutil.h"
#include "webhook_json.h"

#include <stdlib.h>
#include <string.h>

static cJSON *parse(const char *s, int flags, char *err) { return wj_parse(s, strlen(s), flags, err, 200); }

START_TEST(reads_a_messenger_body) {
  char err[200];
  const char *body = "{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"time\":1763800000123,\"messaging\":[{"
                     "\"sender\":{\"id\":\"42\"},\"message\":{\"mid\":\"m_1\",\"text\":\"caf\\u00e9 \\ud83d\\ude00\","
                     "\"is_echo\":true}}]}]}";
  cJSON *root = parse(body, WJ_REJECT_DUPLICATES, err);
  ck_assert_msg(root != NULL, "%s", err);
  ck_assert_str_eq(wj_get_string(root, "object"), "page");
  const cJSON *entry = wj_get(root, "entry");
  ck_assert_uint_eq(wj_size(entry), 1);
  const cJSON *en = cJSON_GetArrayItem(entry, 0);
  int64_t t = 0;
  ck_assert(wj_integer(wj_get(en, "time"), &t));
  ck_assert_int_eq(t, 1763800000123LL);
  const cJSON *ev = cJSON_GetArrayItem(wj_get(en, "messaging"), 0);
  ck_assert_str_eq(wj_get_string(wj_get(ev, "sender"), "id"), "42");
  const cJSON *msg = wj_get(ev, "message");
  ck_assert_str_eq(wj_get_string(msg, "text"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
  ck_assert(wj_is_true(wj_get(msg, "is_echo")));
  ck_assert_ptr_null(wj_get(msg, "Text")); /* keys are case-sensitive */
  ck_assert_ptr_null(wj_get_string(msg, "is_echo"));
  ck_assert_ptr_null(wj_get(entry, "id")); /* not an object */
  ck_assert_uint_eq(wj_size(msg), 0);
  wj_free(root);
}
END_TEST

START_TEST(integers_are_exact_or_refused) {
  char err[200];
  cJSON *root = parse("[0, -7, 9007199254740992, 9007199254740994, 1.5, \"3\", 1e3, null]", 0, err);
  ck_assert_ptr_nonnull(root);
  int64_t v = 1;
  ck_assert(wj_integer(cJSON_GetArrayItem(root, 0), &v) && v == 0);
  ck_assert(wj_integer(cJSON_GetArrayItem(root, 1), &v) && v == -7);
  ck_assert(wj_integer(cJSON_GetArrayItem(root, 2), &v) && v == 9007199254740992LL);
  ck_assert(!wj_integer(cJSON_GetArrayItem(root, 3), &v)); /* past 2^53: not exact */
  ck_assert(!wj_integer(cJSON_GetArrayItem(root, 4), &v));
  ck_assert(!wj_integer(cJSON_GetArrayItem(root, 5), &v));
  ck_assert(wj_integer(cJSON_GetArrayItem(root, 6), &v) && v == 1000);
  ck_assert(!wj_integer(cJSON_GetArrayItem(root, 7), &v));
  ck_assert(!wj_integer(NULL, &v));
  wj_free(root);
}
END_TEST

START_TEST(refuses_what_jansson_refused) {
  char err[200];
  cJSON *root;
  static const struct {
    const char *body;
    const char *why;
  } bad[] = {
      {"", "the body is empty"},
      {"   ", "unexpected input at line 1, column "},
      {"{\"a\":1", "unexpected input at line 1, column "},
      {"{\"a\":1}\n  x", "something follows the JSON value at line 2, column 3"},
      {"{\"a\":1} {}", "something follows"},
      {"{\"a\":\"\xff\"}", "not UTF-8"},
      {"{\"a\":\"\xc0\xaf\"}", "not UTF-8"}, /* overlong */
      {"{\"a\":1}\xc3\xa9", "unexpected input"}, /* outside a string */
      {"{\"a\":\"x\\u0000y\"}", "\\u0000"},
      {"{\"a\":\"\\\\\\u0000\"}", "\\u0000"},
      {"{\"a\":\"\\ud800\"}", "half a UTF-16 surrogate pair at line 1, column 7"},
      {"{\"a\":\"x\\ud800\\u0041\"}", "half a UTF-16 surrogate pair"},
      {"{\"a\":\"\\udc00\\ud800\"}", "half a UTF-16 surrogate pair"},
      {"{\"a\":\"abc", "a string without its closing quote at line 1, column 6"},
      {"{\"a\":\"abc\\", "a string without its closing quote"},
      {"[tru", "unexpected input at line 1, column 2"},
      {"[1,]", "unexpected input at line 1, column 4"},
      {"{\"a\" 1}", "unexpected input at line 1, column 6"},
      {"{\"a\":tru}", "unexpected input"},
      /* where cJSON alone is lenient */
      {"{\"a\":\"x\ty\"}", "a control character in a string at line 1, column 8"},
      {"{\"a\":\"x\ny\"}", "a control character in a string"},
      {"{\"a\":\"ab\\uZZZZcd\"}", "a \\u escape without four hex digits"},
      {"{\"a\":\"ab\\u12\"}", "a \\u escape without four hex digits"},
      {"{\"a\":\"\\x\"}", "an escape JSON does not have"},
      {"{\x01\"a\":1}", "unexpected input at line 1, column 2"},
      {"{\"a\":1\x0b}", "unexpected input"},
      {"{\"a\":01}", "unexpected input after a number"},
      {"{\"a\":1.}", "a number without digits after its point"},
      {"{\"a\":-122.e5}", "a number without digits after its point"},
      {"{\"a\":1e}", "a number without digits in its exponent"},
      {"{\"a\":-}", "a number without digits"},
      {"{\"a\":.5}", "unexpected input"},
      {"{\"a\":+1}", "unexpected input"},
      {"{\"a\":1e400}", "a number too large for a double"},
      {"{\"a\":[1,2]3}", "unexpected input"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    root = parse(bad[i].body, 0, err);
    ck_assert_msg(root == NULL, "accepted %s", bad[i].body);
    ck_assert_msg(strstr(err, bad[i].why) != NULL, "%s: %s", bad[i].body, err);
  }
  /* what JSON allows: every escape, exponents, negative zero, blanks between tokens */
  cJSON *ok = parse(" {\"a\" : [ -0, 0.5e+3, 2E-2, 10 ] ,\r\n\t\"b\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"} ", 0, err);
  ck_assert_msg(ok != NULL, "%s", err);
  ck_assert_str_eq(wj_get_string(ok, "b"), "\"\\/\b\f\n\r\t\xc3\xa9");
  wj_free(ok);
  /* an escaped backslash before "u0000" is text, not a NUL */
  root = parse("{\"a\":\"\\\\u0000\"}", 0, err);
  ck_assert_msg(root != NULL, "%s", err);
  ck_assert_str_eq(wj_get_string(root, "a"), "\\u0000");
  wj_free(root);
  /* trailing blanks are fine; a NULL body is an empty one */
  root = parse("{\"a\":1} \r\n\t", 0, err);
  ck_assert_ptr_nonnull(root);
  wj_free(root);
  ck_assert_ptr_null(wj_parse(NULL, 0, 0, err, sizeof(err)));
  root = wj_parse("{}", 2, 0, NULL, 0); /* err is optional */
  ck_assert_ptr_nonnull(root);
  wj_free(root);
}
END_TEST

START_TEST(duplicate_keys_refused_at_any_depth_on_request) {
  char err[200];
  const char *bodies[] = {"{\"a\":1,\"b\":2,\"a\":3}", "{\"x\":{\"k\":1,\"k\":1}}", "[{\"k\":1},{\"q\":[{\"z\":1,\"z\":2}]}]"};
  for (size_t i = 0; i < 3; i++) {
    ck_assert_ptr_null(parse(bodies[i], WJ_REJECT_DUPLICATES, err));
    ck_assert_msg(strstr(err, "an object names a key twice at line 1, column ") != NULL, "%s", err);
    cJSON *root = parse(bodies[i], 0, err);
    ck_assert_ptr_nonnull(root);
    wj_free(root);
  }
  cJSON *root = parse("{\"k\":{\"k\":{\"k\":1}},\"a\":[{\"k\":1},{\"k\":2}]}", WJ_REJECT_DUPLICATES, err);
  ck_assert_msg(root != NULL, "%s", err);
  wj_free(root);
  /* accepted duplicates read as their last value, as jansson's did */
  root = parse("{\"mid\":\"first\",\"x\":1,\"mid\":\"last\"}", 0, err);
  ck_assert_str_eq(wj_get_string(root, "mid"), "last");
  wj_free(root);
}
END_TEST

START_TEST(copies_into_jansson_and_walks_only_arrays) {
  char err[200];
  cJSON *root = parse("{\"list\":[1,2.5,\"s\",true,null,{\"b\":1,\"a\":[],\"b\":2}],\"obj\":{\"x\":1},"
                      "\"lat\":59.0,\"big\":12345678901234567}", 0, err);
  ck_assert_msg(root != NULL, "%s", err);
  json_t *copy = wj_to_jansson(root);
  char *text = json_dumps(copy, JSON_COMPACT);
  /* members in order; a repeated key in its first place with its last value; whole numbers as integers */
  ck_assert_str_eq(text, "{\"list\":[1,2.5,\"s\",true,null,{\"b\":2,\"a\":[]}],\"obj\":{\"x\":1},\"lat\":59,"
                         "\"big\":12345678901234568.0}");
  free(text);
  json_decref(copy);
  ck_assert_ptr_null(wj_to_jansson(NULL));
  ck_assert_ptr_nonnull(wj_get_array(root, "list"));
  ck_assert_ptr_null(wj_get_array(root, "obj")); /* an object is not walked as a list */
  ck_assert_ptr_null(wj_get_array(root, "none"));
  size_t n = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, wj_get_array(root, "obj")) n++;
  ck_assert_uint_eq(n, 0);
  wj_free(root);
}
END_TEST

/* What ends, escapes or breaks a string is seen wherever it stands in a
 * long one (and what is fine there is kept as it was). */
START_TEST(every_offset_of_a_long_string_is_checked) {
  char err[200], body[128], want[128];
  static const struct {
    const char *put, *got; /* inserted at the offset; what the string then holds (NULL: refused) */
  } cases[] = {{"\x01", NULL}, {"\x1f", NULL}, {"\xff", NULL}, {"\xc3", NULL}, {"\\x", NULL},
               {"\\\"", "\""}, {"\\\\", "\\"}, {"\xc3\xa9", "\xc3\xa9"}, {"\x7f", "\x7f"}, {" ", " "}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
    for (int at = 0; at <= 40; at++) {
      snprintf(body, sizeof(body), "{\"a\":\"%.*s%s%.*s\"}", at, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",
               cases[c].put, 40 - at, "0123456789012345678901234567890123456789");
      cJSON *root = parse(body, 0, err);
      if (cases[c].got == NULL) {
        ck_assert_msg(root == NULL, "accepted %s", body);
        continue;
      }
      ck_assert_msg(root != NULL, "%s: %s", body, err);
      snprintf(want, sizeof(want), "%.*s%s%.*s", at, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", cases[c].got, 40 - at,
               "0123456789012345678901234567890123456789");
      ck_assert_str_eq(wj_get_string(root, "a"), want);
      wj_free(root);
    }
}
END_TEST

/* Each byte value alone in a string: printable ASCII is kept as it is,
 * control bytes and lone bytes past 0x7f are refused, a quote ends the
 * string early and a backslash escapes the closing quote. */
START_TEST(every_byte_value_in_a_string) {
  char err[200], body[16];
  for (int v = 1; v < 256; v++) {
    snprintf(body, sizeof(body), "{\"a\":\"%c\"}", v);
    cJSON *root = parse(body, 0, err);
    int kept = v >= 0x20 && v < 0x80 && v != '"' && v != '\\';
    ck_assert_msg((root != NULL) == kept, "byte 0x%02x: %s", v, root != NULL ? "accepted" : err);
    if (root != NULL) {
      const char *a = wj_get_string(root, "a");
      ck_assert(a != NULL && (unsigned char)a[0] == v && a[1] == '\0');
      wj_free(root);
    }
  }
}
END_TEST

/* A body of n numbers in an array: its tree takes n nodes. */
static char *numbers(size_t n) {
  char *s = malloc(2 * n + 2), *o = s;
  *o++ = '[';
  for (size_t i = 0; i < n; i++) o += sprintf(o, i ? ",%zu" : "%zu", i % 10);
  *o++ = ']';
  *o = '\0';
  return s;
}

START_TEST(a_freed_block_serves_the_next_parse_on_the_thread) {
  char err[200];
  cJSON *a = parse("{\"mid\":\"m_1\",\"list\":[1,2,3]}", 0, err);
  ck_assert_msg(a != NULL, "%s", err);
  void *kept = a;
  wj_free(a);
  /* a smaller tree fits the kept block, and reads as its own */
  cJSON *b = parse("{\"k\":7}", 0, err);
  ck_assert_ptr_eq(b, kept);
  int64_t k = 0;
  ck_assert(wj_integer(wj_get(b, "k"), &k) && k == 7);
  ck_assert_ptr_null(wj_get(b, "mid"));
  /* a larger one while the block is taken gets a block of its own */
  char *body = numbers(200);
  cJSON *c = parse(body, 0, err);
  ck_assert_msg(c != NULL, "%s", err);
  ck_assert_ptr_ne(c, b);
  ck_assert_int_eq(cJSON_GetArraySize(c), 200);
  wj_free(b);
  void *larger = c;
  wj_free(c); /* the larger block is kept in the smaller one's place */
  cJSON *d = parse(body, 0, err);
  ck_assert_ptr_eq(d, larger);
  ck_assert_int_eq(cJSON_GetArraySize(d), 200);
  wj_free(d);
  free(body);
  /* a tree past 64 KiB is never kept */
  body = numbers(5000);
  cJSON *huge = parse(body, 0, err);
  ck_assert_msg(huge != NULL, "%s", err);
  wj_free(huge);
  cJSON *e = parse("[1]", 0, err);
  ck_assert_ptr_eq(e, larger);
  wj_free(e);
  free(body);
}
END_TEST

int main(void) {
  Suite *s = suite_create("webhook_json");
  TCase *tc = tcase_create("webhook_json");
  tcase_add_test(tc, reads_a_messenger_body);
  tcase_add_test(tc, integers_are_exact_or_refused);
  tcase_add_test(tc, refuses_what_jansson_refused);
  tcase_add_test(tc, duplicate_keys_refused_at_any_depth_on_request);
  tcase_add_test(tc, a_freed_block_serves_the_next_parse_on_the_thread);
  tcase_add_test(tc, copies_into_jansson_and_walks_only_arrays);
  tcase_add_test(tc, every_offset_of_a_long_string_is_checked);
  tcase_add_test(tc, every_byte_value_in_a_string);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
