/* hmac.c — HMAC-SHA256 through libcrypto, with the last key's state kept.
 *
 * Why not libsodium, which the host uses for its other crypto: its SHA-256
 * is portable C, and a signed webhook costs one HMAC on the loop thread
 * (3.5 µs with libsodium vs 0.7 µs with libcrypto's SHA extensions/AVX2 code
 * and a reused key, measured per 180-byte message). libcrypto is linked
 * anyway (TLS). Every channel signs with one secret, so the state keyed
 * with the last key (its inner and outer pads already hashed) is kept and
 * reused; another key, or another thread while it is in use, takes the
 * plain path. */
#include "hmac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <string.h>
#include <uv.h>

#define HMAC__KEY_MAX 128 /* longer keys are not remembered */

static struct {
  uv_once_t once;
  uv_mutex_t mu;
  int ready;         /* mu initialised and mac fetched */
  EVP_MAC *mac;      /* the HMAC algorithm, fetched once */
  EVP_MAC_CTX *ctx;  /* keyed with key[0..key_len), when has_key; under mu */
  int has_key;
  size_t key_len;
  unsigned char key[HMAC__KEY_MAX];
} hmac__g = {.once = UV_ONCE_INIT};

static void hmac__init(void) {
  if (uv_mutex_init(&hmac__g.mu) != 0) return;
  hmac__g.mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  hmac__g.ready = hmac__g.mac != NULL;
}

static void hmac__sodium(const void *key, size_t key_len, const void *data, size_t data_len, uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, data, data_len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof(st));
}

/* Runs one MAC on ctx: keyed with key now, or (reuse) with the key it
 * already has. Returns 0 or -1. */
static int hmac__run(EVP_MAC_CTX *ctx, int reuse, const void *key, size_t key_len, const void *data,
                     size_t data_len, uint8_t out[32]) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  size_t n = 0;
  if (EVP_MAC_init(ctx, reuse ? NULL : key, reuse ? 0 : key_len, reuse ? NULL : params) != 1 ||
      EVP_MAC_update(ctx, data, data_len) != 1 || EVP_MAC_final(ctx, out, &n, 32) != 1 || n != 32)
    return -1;
  return 0;
}

void hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len, uint8_t out[32]) {
  /* An empty key is a valid HMAC key; libcrypto wants a pointer for it. */
  if (key == NULL || key_len == 0) key = "", key_len = 0;
  if (data == NULL) data = "";
  uv_once(&hmac__g.once, hmac__init);
  if (!hmac__g.ready) {
    hmac__sodium(key, key_len, data, data_len, out);
    return;
  }
  if (key_len <= HMAC__KEY_MAX && uv_mutex_trylock(&hmac__g.mu) == 0) {
    int rc = -1;
    if (hmac__g.ctx == NULL) hmac__g.ctx = EVP_MAC_CTX_new(hmac__g.mac);
    if (hmac__g.ctx != NULL) {
      int same = hmac__g.has_key && hmac__g.key_len == key_len &&
                 (key_len == 0 || CRYPTO_memcmp(hmac__g.key, key, key_len) == 0);
      if (!same) {
        hmac__g.has_key = 0;
        OPENSSL_cleanse(hmac__g.key, sizeof(hmac__g.key));
      }
      rc = hmac__run(hmac__g.ctx, same, key, key_len, data, data_len, out);
      if (rc == 0 && !same) {
        if (key_len > 0) memcpy(hmac__g.key, key, key_len);
        hmac__g.key_len = key_len;
        hmac__g.has_key = 1;
      } else if (rc != 0) {
        hmac__g.has_key = 0;
      }
    }
    uv_mutex_unlock(&hmac__g.mu);
    if (rc == 0) return;
  } else {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac__g.mac);
    int rc = ctx != NULL ? hmac__run(ctx, 0, key, key_len, data, data_len, out) : -1;
    EVP_MAC_CTX_free(ctx);
    if (rc == 0) return;
  }
  hmac__sodium(key, key_len, data, data_len, out);
}
