/* test_hmac.c — core/hmac.c: HMAC-SHA256 matches RFC 4231 and libsodium for
 * any key and length, whether a kept key state is reused or evicted, and in
 * threads hashing at once with keys of their own. */
#include "filelink.h"
#include "hmac.h"
#include "testutil.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <uv.h>

static void hex(const uint8_t *mac, char out[65]) {
  for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", mac[i]);
}

static void expect_sodium(const void *key, size_t key_len, const void *data, size_t len) {
  uint8_t got[32], want[32];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, data, len);
  crypto_auth_hmacsha256_final(&st, want);
  hmac_sha256(key, key_len, data, len, got);
  ck_assert_mem_eq(got, want, 32);
}

START_TEST(rfc4231_case_2) {
  uint8_t mac[32];
  char h[65];
  hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
  hex(mac, h);
  ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac); /* the kept key state */
  hex(mac, h);
  ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(matches_libsodium_for_every_key_and_length) {
  ck_assert_int_ge(sodium_init(), 0);
  unsigned char key[200], data[1000];
  for (size_t i = 0; i < sizeof(key); i++) key[i] = (unsigned char)(i * 7 + 1);
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (unsigned char)(i * 13 + 5);
  size_t key_lens[] = {0, 1, 12, 32, 63, 64, 65, 128, 129, 200};
  size_t lens[] = {0, 1, 55, 56, 64, 180, 999};
  for (size_t k = 0; k < sizeof(key_lens) / sizeof(key_lens[0]); k++)
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
      expect_sodium(key, key_lens[k], data, lens[l]);
      expect_sodium(key, key_lens[k], data, lens[l]); /* same key again */
    }
  /* keys that share a prefix, alternating */
  for (int i = 0; i < 4; i++) {
    expect_sodium(key, 12, data, 100);
    expect_sodium(key, 13, data, 100);
  }
  /* more keys in turn than there are kept states: each evicts another */
  for (int round = 0; round < 3; round++)
    for (size_t k = 20; k < 27; k++) expect_sodium(key, k, data, 77);
  uint8_t a[32], b[32];
  hmac_sha256(NULL, 0, NULL, 0, a);
  hmac_sha256("", 0, "", 0, b);
  ck_assert_mem_eq(a, b, 32);
}
END_TEST

static void hash_many(void *arg) {
  unsigned char key[16];
  memset(key, *(int *)arg, sizeof(key));
  for (int i = 0; i < 2000; i++) expect_sodium(key, sizeof(key), "webhook body", 12);
}

START_TEST(threads_with_different_keys_get_their_own_macs) {
  uv_thread_t t1, t2;
  int k1 = 1, k2 = 2;
  ck_assert_int_eq(uv_thread_create(&t1, hash_many, &k1), 0);
  ck_assert_int_eq(uv_thread_create(&t2, hash_many, &k2), 0);
  hash_many(&(int){3});
  uv_thread_join(&t1);
  uv_thread_join(&t2);
}
END_TEST

/* filelink.c signs download links with HMAC-SHA256: a link is valid for
 * its own file until it expires, and not once changed. */
START_TEST(file_links_are_for_one_file_until_they_expire) {
  char link[128];
  int n = filelink_sign(42, 60, 1000, link, sizeof(link));
  ck_assert_int_gt(n, 0);
  ck_assert_int_eq((int)strlen(link), n);
  ck_assert_int_eq(strncmp(link, "/files/42?expires=1060&sig=", 27), 0);
  const char *sig = link + 27;
  ck_assert_uint_eq(strlen(sig), 64);
  ck_assert(filelink_valid(42, "1060", sig, 1000));
  ck_assert(filelink_valid(42, "1060", sig, 1060));  /* through its last second */
  ck_assert(!filelink_valid(42, "1060", sig, 1061)); /* then no more */
  ck_assert(!filelink_valid(43, "1060", sig, 1000)); /* another file */
  ck_assert(!filelink_valid(42, "1061", sig, 1000)); /* a longer life */
  ck_assert(!filelink_valid(42, "01060", sig, 1000)); /* the same time spelled otherwise: an edited link */
  ck_assert(!filelink_valid(42, "+1060", sig, 1000));
  ck_assert(!filelink_valid(42, "1060", "00", 1000));
  char bad[65];
  memcpy(bad, sig, 65);
  bad[63] = bad[63] == '0' ? '1' : '0';
  ck_assert(!filelink_valid(42, "1060", bad, 1000));
  ck_assert_int_eq(filelink_sign(0, 60, 1000, link, sizeof(link)), -EINVAL);
  ck_assert_int_eq(filelink_sign(42, 0, 1000, link, sizeof(link)), -EINVAL);
  ck_assert_int_eq(filelink_sign(42, FILELINK_TTL_MAX_S + 1, 1000, link, sizeof(link)), -EINVAL);
  ck_assert_int_eq(filelink_sign(42, 60, 1000, link, 40), -EFBIG);
}
END_TEST

int main(void) {
  Suite *s = suite_create("hmac");
  TCase *tc = tcase_create("hmac");
  tcase_add_test(tc, rfc4231_case_2);
  tcase_add_test(tc, matches_libsodium_for_every_key_and_length);
  tcase_add_test(tc, threads_with_different_keys_get_their_own_macs);
  tcase_add_test(tc, file_links_are_for_one_file_until_they_expire);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
