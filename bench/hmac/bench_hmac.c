/* bench_hmac.c — µs per HMAC-SHA256 of a webhook-sized body: the host's
 * hmac_sha256 (core/hmac.c) beside the ways it could be done instead:
 * libsodium, libcrypto's EVP_MAC with a new context each time, and EVP_MAC
 * with its keyed context kept and re-initialised (core/hmac.c until the
 * eighth session). One thread, one key, the body changed before each MAC.
 * usage: bench_hmac [MACS=1000000] [BODY_BYTES=330] */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hmac.h"

static const char key[] = "bench-app-secret";

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void with_sodium(const unsigned char *body, size_t len, unsigned char out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, sizeof(key) - 1);
  crypto_auth_hmacsha256_update(&st, body, len);
  crypto_auth_hmacsha256_final(&st, out);
}

static EVP_MAC *mac;
static EVP_MAC_CTX *kept;

static int evp_run(EVP_MAC_CTX *ctx, int reuse, const unsigned char *body, size_t len, unsigned char out[32]) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  size_t n = 0;
  return EVP_MAC_init(ctx, reuse ? NULL : (const unsigned char *)key, reuse ? 0 : sizeof(key) - 1,
                      reuse ? NULL : params) == 1 &&
         EVP_MAC_update(ctx, body, len) == 1 && EVP_MAC_final(ctx, out, &n, 32) == 1 && n == 32;
}

static void with_evp_new(const unsigned char *body, size_t len, unsigned char out[32]) {
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  if (ctx == NULL || !evp_run(ctx, 0, body, len, out)) abort();
  EVP_MAC_CTX_free(ctx);
}

static void with_evp_kept(const unsigned char *body, size_t len, unsigned char out[32]) {
  if (!evp_run(kept, 1, body, len, out)) abort();
}

static void with_host(const unsigned char *body, size_t len, unsigned char out[32]) {
  hmac_sha256(key, sizeof(key) - 1, body, len, out);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  size_t len = argc > 2 ? (size_t)atol(argv[2]) : 330;
  unsigned char *body = malloc(len + 1), want[32], got[32];
  if (body == NULL || sodium_init() < 0 || (mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
      (kept = EVP_MAC_CTX_new(mac)) == NULL)
    return 1;
  memset(body, 'a', len);
  if (!evp_run(kept, 0, body, len, got)) return 1;
  struct { const char *name; void (*fn)(const unsigned char *, size_t, unsigned char *); } ways[] = {
      {"libsodium", with_sodium}, {"EVP_MAC, a new context each time", with_evp_new},
      {"EVP_MAC, keyed context kept", with_evp_kept}, {"hmac_sha256 (core/hmac.c)", with_host}};
  with_sodium(body, len, want);
  for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
    ways[w].fn(body, len, got);
    if (memcmp(got, want, 32) != 0) {
      fprintf(stderr, "%s: a different MAC\n", ways[w].name);
      return 1;
    }
  }
  printf("# %ld MACs of a %zu-byte body, one key\n", n, len);
  for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
    double t = now();
    for (long i = 0; i < n; i++) {
      body[(size_t)i % len]++;
      ways[w].fn(body, len, got);
    }
    printf("%-34s %.3f µs per MAC\n", ways[w].name, (now() - t) / (double)n * 1e6);
  }
  EVP_MAC_CTX_free(kept);
  EVP_MAC_free(mac);
  free(body);
  return 0;
}
