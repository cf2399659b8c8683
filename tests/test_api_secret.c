/* test_api_secret.c — core/api_secret.c: tokens are random and hashed
 * stably; sealed credentials open only with the key they were sealed with. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "testutil.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

START_TEST(tokens_are_random_prefixed_hex_and_hash_stably) {
  char a[API_TOKEN_LEN + 1], b[API_TOKEN_LEN + 1], ha[65], ha2[65], hb[65];
  ck_assert_int_eq(api_token_generate(a), 0);
  ck_assert_int_eq(api_token_generate(b), 0);
  ck_assert_uint_eq(strlen(a), API_TOKEN_LEN);
  ck_assert(strncmp(a, "sbt_", 4) == 0);
  ck_assert(strspn(a + 4, "0123456789abcdef") == 64);
  ck_assert_str_ne(a, b);
  api_token_hash(a, ha);
  api_token_hash(a, ha2);
  api_token_hash(b, hb);
  ck_assert_str_eq(ha, ha2);
  ck_assert_str_ne(ha, hb);
  ck_assert_uint_eq(strlen(ha), 64);
  ck_assert_ptr_null(strstr(ha, a + 4));
}
END_TEST

START_TEST(sealed_credentials_open_with_their_key_only) {
  json_t *cred = json_pack("{ss si}", "token", "very-secret-value", "retries", 3);
  char *sealed = NULL, *again = NULL;
  ck_assert_int_eq(api_seal(KEY_A, cred, &sealed), 0);
  ck_assert(strncmp(sealed, "v1:", 3) == 0);
  ck_assert_ptr_null(strstr(sealed, "very-secret-value"));
  ck_assert_int_eq(api_seal(KEY_A, cred, &again), 0);
  ck_assert_str_ne(sealed, again); /* a fresh nonce every time */

  json_t *out = NULL;
  ck_assert_int_eq(api_unseal(KEY_A, sealed, &out), 0);
  ck_assert(json_equal(out, cred));
  json_decref(out);
  ck_assert_int_eq(api_unseal(KEY_B, sealed, &out), -EBADMSG);
  ck_assert_ptr_null(out);

  sealed[10] = sealed[10] == 'A' ? 'B' : 'A'; /* tampering is caught */
  ck_assert_int_eq(api_unseal(KEY_A, sealed, &out), -EBADMSG);
  ck_assert_int_eq(api_unseal(KEY_A, "v2:abc", &out), -EBADMSG);
  ck_assert_int_eq(api_unseal(KEY_A, NULL, &out), -EBADMSG);
  free(sealed);
  free(again);
  json_decref(cred);
}
END_TEST

START_TEST(a_missing_or_malformed_key_is_einval) {
  json_t *cred = json_object();
  char *sealed = NULL;
  json_t *out = NULL;
  ck_assert_int_eq(api_seal(NULL, cred, &sealed), -EINVAL);
  ck_assert_int_eq(api_seal("abcd", cred, &sealed), -EINVAL);
  ck_assert_int_eq(api_seal("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", cred, &sealed), -EINVAL);
  ck_assert_ptr_null(sealed);
  ck_assert_int_eq(api_unseal(NULL, "v1:AAAA", &out), -EINVAL);
  json_decref(cred);
}
END_TEST

int main(void) {
  Suite *s = suite_create("api_secret");
  TCase *tc = tcase_create("api_secret");
  tcase_add_test(tc, tokens_are_random_prefixed_hex_and_hash_stably);
  tcase_add_test(tc, sealed_credentials_open_with_their_key_only);
  tcase_add_test(tc, a_missing_or_malformed_key_is_einval);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
