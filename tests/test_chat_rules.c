/* test_chat_rules.c — plugins/chat/chat_rules.c called directly (no host):
 * visitor tokens and verified identities, origins and colours, the rate
 * bucket, office hours, TZif time zones, and the open/away/busy decision
 * that shows or hides the launcher. HMAC comes from libsodium here. */
#include "chat_rules.h"
#include "testutil.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hmac(const void *key, size_t key_len, const void *data, size_t data_len, uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, data, data_len);
  crypto_auth_hmacsha256_final(&st, out);
}

static int equal(const void *a, const void *b, size_t len) { return sodium_memcmp(a, b, len) == 0; }

static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const uint8_t other_key[32] = {9, 9, 9};

START_TEST(a_token_names_its_visitor_and_only_under_its_key) {
  char token[256], who = 0, id[CHAT_MAX_ID + 1];
  ck_assert_int_eq(chat_token_make(hmac, key, sizeof(key), CHAT_WHO_VISITOR, "v0123abcd", token, sizeof(token)), 0);
  ck_assert_int_eq(chat_token_check(hmac, equal, key, sizeof(key), token, &who, id, sizeof(id)), 0);
  ck_assert_int_eq(who, CHAT_WHO_VISITOR);
  ck_assert_str_eq(id, "v0123abcd");
  ck_assert_int_eq(chat_token_check(hmac, equal, other_key, sizeof(other_key), token, &who, id, sizeof(id)), -1);

  /* another visitor's id under the same MAC, or another kind: refused */
  char forged[256];
  snprintf(forged, sizeof(forged), "%.67sv0123abce", token);
  ck_assert_int_eq(chat_token_check(hmac, equal, key, sizeof(key), forged, &who, id, sizeof(id)), -1);
  snprintf(forged, sizeof(forged), "u%s", token + 1);
  ck_assert_int_eq(chat_token_check(hmac, equal, key, sizeof(key), forged, &who, id, sizeof(id)), -1);

  /* user ids may hold dots and colons; malformed tokens are refused */
  ck_assert_int_eq(chat_token_make(hmac, key, sizeof(key), CHAT_WHO_USER, "user.42:eu", token, sizeof(token)), 0);
  ck_assert_int_eq(chat_token_check(hmac, equal, key, sizeof(key), token, &who, id, sizeof(id)), 0);
  ck_assert_int_eq(who, CHAT_WHO_USER);
  ck_assert_str_eq(id, "user.42:eu");
  static const char *const bad[] = {"", "v", "v.", "x.0000.abc", "v.zz.v1", NULL};
  for (size_t i = 0; bad[i] != NULL; i++) {
    ck_assert_int_eq(chat_token_check(hmac, equal, key, sizeof(key), bad[i], &who, id, sizeof(id)), -1);
  }
  ck_assert_int_eq(chat_token_check(hmac, equal, key, sizeof(key), NULL, &who, id, sizeof(id)), -1);
  ck_assert_int_eq(chat_token_make(hmac, key, sizeof(key), CHAT_WHO_VISITOR, "has space", token, sizeof(token)), -1);
  ck_assert_int_eq(chat_token_make(hmac, key, sizeof(key), CHAT_WHO_VISITOR, "", token, sizeof(token)), -1);
}
END_TEST

START_TEST(a_visitor_id_has_its_own_shape) {
  ck_assert(chat_visitor_id_shape("v0123456789abcdef0123456789abcdef"));
  ck_assert(!chat_visitor_id_shape("v0123456789ABCDEF0123456789abcdef"));
  ck_assert(!chat_visitor_id_shape("v0123"));
  ck_assert(!chat_visitor_id_shape("user-42"));
  ck_assert(!chat_visitor_id_shape(NULL));
}
END_TEST

START_TEST(a_verified_identity_is_the_hmac_of_the_user_id) {
  const char *secret = "identity-secret-0123456789";
  uint8_t mac[32];
  char hex[65];
  hmac(secret, strlen(secret), "42", 2, mac);
  chat_hex(mac, hex);
  ck_assert_int_eq(chat_identity_ok(hmac, equal, secret, "42", hex), 1);
  ck_assert_int_eq(chat_identity_ok(hmac, equal, secret, "43", hex), 0);
  ck_assert_int_eq(chat_identity_ok(hmac, equal, "another-secret-0000", "42", hex), 0);
  ck_assert_int_eq(chat_identity_ok(hmac, equal, NULL, "42", hex), 0);
  ck_assert_int_eq(chat_identity_ok(hmac, equal, secret, "42", "abc"), 0);
  for (char *p = hex; *p; p++) *p = (char)(*p >= 'a' ? *p - 32 : *p); /* uppercase hex is fine too */
  ck_assert_int_eq(chat_identity_ok(hmac, equal, secret, "42", hex), 1);
}
END_TEST

START_TEST(origins_are_matched_exactly_or_by_the_help_desks_own_host) {
  const char *const list[] = {"https://www.example.com", "http://localhost:3000"};
  ck_assert(chat_origin_allowed("https://www.example.com", list, 2, NULL));
  ck_assert(chat_origin_allowed("HTTPS://WWW.EXAMPLE.COM", list, 2, NULL));
  ck_assert(chat_origin_allowed("http://localhost:3000", list, 2, NULL));
  ck_assert(!chat_origin_allowed("http://localhost:3001", list, 2, NULL));
  ck_assert(!chat_origin_allowed("https://evil.example.com", list, 2, NULL));
  ck_assert(!chat_origin_allowed("https://www.example.com.evil.test", list, 2, NULL));
  ck_assert(!chat_origin_allowed(NULL, list, 2, NULL));
  ck_assert(!chat_origin_allowed("null", list, 2, NULL));
  /* the help desk's own pages (the demo page) are allowed beside the listed sites */
  ck_assert(chat_origin_allowed("http://help.example.org:8080", list, 2, "help.example.org:8080"));
  ck_assert(!chat_origin_allowed("https://evil.example.com", list, 2, "help.example.org:8080"));
  const char *const any[] = {"*"};
  ck_assert(chat_origin_allowed("https://anything.test", any, 1, NULL));
  /* none listed: only the help desk's own origin */
  ck_assert(chat_origin_allowed("http://127.0.0.1:8080", NULL, 0, "127.0.0.1:8080"));
  ck_assert(!chat_origin_allowed("http://127.0.0.1:9090", NULL, 0, "127.0.0.1:8080"));
  ck_assert(!chat_origin_allowed("http://127.0.0.1:8080", NULL, 0, NULL));

  ck_assert(chat_origin_valid("https://www.example.com"));
  ck_assert(chat_origin_valid("http://127.0.0.1:8080"));
  ck_assert(chat_origin_valid("*"));
  ck_assert(!chat_origin_valid("https://www.example.com/"));
  ck_assert(!chat_origin_valid("www.example.com"));
  ck_assert(!chat_origin_valid("https://user@example.com"));
  ck_assert(!chat_origin_valid("https://example.com:80a"));
  ck_assert(!chat_origin_valid("https://"));
}
END_TEST

START_TEST(colours_are_hex) {
  ck_assert(chat_color_valid("#2f6fed"));
  ck_assert(chat_color_valid("#ABC"));
  ck_assert(!chat_color_valid("2f6fed"));
  ck_assert(!chat_color_valid("#2f6fe"));
  ck_assert(!chat_color_valid("#2f6fgd"));
  ck_assert(!chat_color_valid("red"));
  ck_assert(!chat_color_valid("#fff;background:url(x)"));
}
END_TEST

START_TEST(the_rate_bucket_allows_a_burst_then_refills) {
  chat_bucket b = {0};
  int64_t t = 1000000;
  for (int i = 0; i < 5; i++) ck_assert_int_eq(chat_bucket_take(&b, t, 5), 1);
  ck_assert_int_eq(chat_bucket_take(&b, t, 5), 0);
  ck_assert_int_eq(chat_bucket_take(&b, t + 11999, 5), 0); /* one every 12 s */
  ck_assert_int_eq(chat_bucket_take(&b, t + 12001, 5), 1);
  ck_assert_int_eq(chat_bucket_take(&b, t + 12001, 5), 0);
  ck_assert_int_eq(chat_bucket_take(&b, t + 3600000, 5), 1); /* never more than a minute's worth */
  for (int i = 0; i < 4; i++) chat_bucket_take(&b, t + 3600000, 5);
  ck_assert_int_eq(chat_bucket_take(&b, t + 3600000, 5), 0);
  ck_assert_int_eq(chat_bucket_take(&b, t, 0), 1); /* 0: no limit */
}
END_TEST

START_TEST(office_hours_parse_and_cover_their_days) {
  chat_hours r[CHAT_MAX_HOURS];
  size_t n = 0;
  char err[200];
  ck_assert_int_eq(chat_hours_parse("mon-fri 09:00-17:00", r, CHAT_MAX_HOURS, &n, err, sizeof(err)), 0);
  ck_assert_int_eq(chat_hours_parse("sat 10:00-12:00 13:00-15:00", r, CHAT_MAX_HOURS, &n, err, sizeof(err)), 0);
  ck_assert_int_eq(chat_hours_parse("sun,wed 22:00-02:00", r, CHAT_MAX_HOURS, &n, err, sizeof(err)), 0);
  ck_assert_uint_eq(n, 4);
  /* weekday 0 = Sunday */
  ck_assert(chat_hours_open(r, n, 1, 9 * 60));
  ck_assert(!chat_hours_open(r, n, 1, 17 * 60));
  ck_assert(chat_hours_open(r, n, 5, 16 * 60 + 59));
  ck_assert(!chat_hours_open(r, n, 6, 12 * 60 + 30));
  ck_assert(chat_hours_open(r, n, 6, 13 * 60));
  ck_assert(chat_hours_open(r, n, 0, 23 * 60));  /* Sunday night */
  ck_assert(chat_hours_open(r, n, 1, 60));       /* ... into Monday */
  ck_assert(!chat_hours_open(r, n, 1, 2 * 60));
  ck_assert(chat_hours_open(r, n, 4, 30));       /* Wednesday night into Thursday */
  ck_assert(!chat_hours_open(r, n, 2, 30));

  n = 0;
  ck_assert_int_eq(chat_hours_parse("fri-mon 00:00-24:00", r, CHAT_MAX_HOURS, &n, err, sizeof(err)), 0);
  ck_assert(chat_hours_open(r, n, 0, 0) && chat_hours_open(r, n, 1, 1439) && !chat_hours_open(r, n, 2, 600));

  static const char *const bad[] = {"09:00-17:00", "monday 09:00-17:00", "mon-xyz 09:00-17:00", "mon",
                                    "mon 9:00-17:00", "mon 09:00-25:00", "mon 09:00-09:00", "mon 09:00 17:00",
                                    "mon 09:00-17:00x", "", NULL};
  for (size_t i = 0; bad[i] != NULL; i++) {
    n = 0;
    err[0] = '\0';
    ck_assert_msg(chat_hours_parse(bad[i], r, CHAT_MAX_HOURS, &n, err, sizeof(err)) == -1, "accepted \"%s\"", bad[i]);
    ck_assert_msg(err[0] != '\0', "no reason for \"%s\"", bad[i]);
  }
}
END_TEST

/* Reads a whole file into a malloc'd buffer. */
static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  uint8_t *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

START_TEST(tzif_files_give_the_offset_at_any_time) {
  size_t len;
  uint8_t *data = slurp("/usr/share/zoneinfo/Europe/Oslo", &len);
  chat_tz tz;
  ck_assert_int_eq(chat_tz_parse(data, len, &tz), 0);
  ck_assert_int_eq(chat_tz_offset(&tz, 1768478400), 3600);  /* 2026-01-15 12:00Z: CET */
  ck_assert_int_eq(chat_tz_offset(&tz, 1784116800), 7200);  /* 2026-07-15 12:00Z: CEST */
  ck_assert_int_eq(chat_tz_offset(&tz, 1774746000), 7200);  /* 2026-03-29 01:00Z, the switch to CEST */
  ck_assert_int_eq(chat_tz_offset(&tz, 1774745999), 3600);  /* a second before */
  int weekday, minute;
  chat_tz_local(&tz, 1784116800, &weekday, &minute); /* Wednesday 14:00 in Oslo */
  ck_assert_int_eq(weekday, 3);
  ck_assert_int_eq(minute, 14 * 60);

  /* every truncation and a flipped magic are refused, never read past the end */
  for (size_t cut = 0; cut < len; cut += 7) {
    chat_tz t2;
    if (chat_tz_parse(data, cut, &t2) == 0) chat_tz_free(&t2);
  }
  chat_tz flipped;
  data[0] = 'X';
  ck_assert_int_eq(chat_tz_parse(data, len, &flipped), -1);
  free(data);
  chat_tz_free(&tz);

  data = slurp("/usr/share/zoneinfo/America/New_York", &len);
  ck_assert_int_eq(chat_tz_parse(data, len, &tz), 0);
  chat_tz_local(&tz, 1768478400, &weekday, &minute); /* Thursday 07:00 EST */
  ck_assert_int_eq(weekday, 4);
  ck_assert_int_eq(minute, 7 * 60);
  free(data);
  chat_tz_free(&tz);

  chat_tz utc = {0};
  ck_assert_int_eq(chat_tz_offset(&utc, 1768478400), 0);
  ck_assert(chat_tz_name_valid("Europe/Oslo") && chat_tz_name_valid("UTC") && chat_tz_name_valid("Etc/GMT+5"));
  ck_assert(!chat_tz_name_valid("../etc/passwd") && !chat_tz_name_valid("/etc/passwd") &&
            !chat_tz_name_valid("Europe//Oslo") && !chat_tz_name_valid("Europe/") && !chat_tz_name_valid(""));
}
END_TEST

START_TEST(the_state_shows_or_hides_the_launcher) {
  chat_team nobody = {1, 3, 0, 0}, busy = {1, 3, 2, 0}, free_agent = {1, 3, 1, 1}, unknown = {0, 0, 0, 0};
  ck_assert_int_eq(chat_state(CHAT_MODE_USERS, 0, &nobody), CHAT_STATE_AWAY);
  ck_assert_int_eq(chat_state(CHAT_MODE_USERS, 0, &busy), CHAT_STATE_BUSY);
  ck_assert_int_eq(chat_state(CHAT_MODE_USERS, 0, &free_agent), CHAT_STATE_OPEN);
  ck_assert_int_eq(chat_state(CHAT_MODE_USERS, 0, &unknown), CHAT_STATE_OPEN);
  ck_assert_int_eq(chat_state(CHAT_MODE_HOURS, 0, &free_agent), CHAT_STATE_AWAY);
  ck_assert_int_eq(chat_state(CHAT_MODE_HOURS, 1, &nobody), CHAT_STATE_OPEN);
  ck_assert_int_eq(chat_state(CHAT_MODE_HOURS, 1, &busy), CHAT_STATE_BUSY);
  ck_assert_int_eq(chat_state(CHAT_MODE_ALWAYS, 0, &nobody), CHAT_STATE_OPEN);
  ck_assert_int_eq(chat_state(CHAT_MODE_ALWAYS, 0, &busy), CHAT_STATE_OPEN);

  ck_assert(!chat_launcher_visible(CHAT_STATE_AWAY, CHAT_AWAY_HIDE, CHAT_CAPACITY_WAITING));
  ck_assert(chat_launcher_visible(CHAT_STATE_AWAY, CHAT_AWAY_REPLY_TIME, CHAT_CAPACITY_HIDE));
  ck_assert(chat_launcher_visible(CHAT_STATE_AWAY, CHAT_AWAY_MESSAGE, CHAT_CAPACITY_HIDE));
  ck_assert(!chat_launcher_visible(CHAT_STATE_BUSY, CHAT_AWAY_HIDE, CHAT_CAPACITY_HIDE));
  ck_assert(chat_launcher_visible(CHAT_STATE_BUSY, CHAT_AWAY_HIDE, CHAT_CAPACITY_NOTHING));
  ck_assert(chat_launcher_visible(CHAT_STATE_OPEN, CHAT_AWAY_HIDE, CHAT_CAPACITY_HIDE));
}
END_TEST

int main(void) {
  if (sodium_init() < 0) return 1;
  Suite *s = suite_create("chat_rules");
  TCase *tc = tcase_create("chat_rules");
  tcase_add_test(tc, a_token_names_its_visitor_and_only_under_its_key);
  tcase_add_test(tc, a_verified_identity_is_the_hmac_of_the_user_id);
  tcase_add_test(tc, a_visitor_id_has_its_own_shape);
  tcase_add_test(tc, origins_are_matched_exactly_or_by_the_help_desks_own_host);
  tcase_add_test(tc, colours_are_hex);
  tcase_add_test(tc, the_rate_bucket_allows_a_burst_then_refills);
  tcase_add_test(tc, office_hours_parse_and_cover_their_days);
  tcase_add_test(tc, tzif_files_give_the_offset_at_any_time);
  tcase_add_test(tc, the_state_shows_or_hides_the_launcher);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
