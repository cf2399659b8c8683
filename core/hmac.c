/* hmac.c — HMAC-SHA256 on libcrypto's SHA-256, with the keyed state of
 * recent keys kept per thread.
 *
 * Why not libsodium, which the host uses for its other crypto (a departure
 * from DESIGN.md, which names libsodium for HMACs): every signed webhook
 * costs one HMAC on the loop thread, libsodium's SHA-256 is portable C, and
 * libcrypto — linked anyway, for TLS — uses the CPU's SHA extensions.
 *
 * Why SHA-256's low-level interface (SHA256_Init/Update/Final, deprecated
 * in OpenSSL 3 but kept through 3.x) rather than EVP_MAC: its state is a
 * plain struct, so the state after the key's inner and outer pads is
 * copied by assignment, while OpenSSL 3.0's EVP layer duplicates a
 * provider context (an allocation and a free) each time a kept HMAC state
 * is reset and each time it is finished. bench/hmac/run.sh, a 330-byte
 * body: libsodium 4.8–5.0 µs per MAC, EVP_MAC with a new context 2.4–3.2,
 * EVP_MAC with its keyed context kept 0.90–1.03, this 0.56–0.70. Every
 * channel signs with one secret, so each thread keeps the pad states of
 * its last HMAC__SLOTS keys. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "hmac.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

#define HMAC__KEY_MAX 128 /* longer keys are not remembered */
#define HMAC__SLOTS 4
#define HMAC__BLOCK 64

typedef struct hmac_pads {
  SHA256_CTX inner, outer; /* after hashing the key's inner and outer pads */
} hmac_pads;

typedef struct hmac_slot {
  hmac_pads pads; /* for key[0..len) when keyed */
  int keyed;
  size_t len;
  unsigned char key[HMAC__KEY_MAX];
} hmac_slot;

/* Per thread, so no lock: the loop thread signs and checks nearly every
 * MAC, and a plugin's own thread keeps its own. */
static _Thread_local struct {
  unsigned next; /* the slot a new key replaces */
  hmac_slot slot[HMAC__SLOTS];
} hmac__t;

static void hmac__key(hmac_pads *p, const void *key, size_t key_len) {
  unsigned char k[HMAC__BLOCK] = {0}, pad[HMAC__BLOCK];
  if (key_len > HMAC__BLOCK) SHA256(key, key_len, k); /* RFC 2104: a long key is hashed first */
  else if (key_len > 0) memcpy(k, key, key_len);
  for (size_t i = 0; i < HMAC__BLOCK; i++) pad[i] = k[i] ^ 0x36;
  SHA256_Init(&p->inner);
  SHA256_Update(&p->inner, pad, sizeof(pad));
  for (size_t i = 0; i < HMAC__BLOCK; i++) pad[i] = k[i] ^ 0x5c;
  SHA256_Init(&p->outer);
  SHA256_Update(&p->outer, pad, sizeof(pad));
  OPENSSL_cleanse(k, sizeof(k));
  OPENSSL_cleanse(pad, sizeof(pad));
}

static void hmac__mac(const hmac_pads *p, const void *data, size_t data_len, uint8_t out[32]) {
  SHA256_CTX c = p->inner;
  unsigned char inner[SHA256_DIGEST_LENGTH];
  SHA256_Update(&c, data, data_len);
  SHA256_Final(inner, &c);
  c = p->outer;
  SHA256_Update(&c, inner, sizeof(inner));
  SHA256_Final(out, &c);
  OPENSSL_cleanse(&c, sizeof(c));
}

void hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len, uint8_t out[32]) {
  if (key == NULL) key_len = 0;
  if (data == NULL) data = "", data_len = 0;
  if (key_len > HMAC__KEY_MAX) {
    hmac_pads p;
    hmac__key(&p, key, key_len);
    hmac__mac(&p, data, data_len, out);
    OPENSSL_cleanse(&p, sizeof(p));
    return;
  }
  hmac_slot *s = NULL;
  for (size_t i = 0; i < HMAC__SLOTS && s == NULL; i++) {
    hmac_slot *t = &hmac__t.slot[i];
    if (t->keyed && t->len == key_len && (key_len == 0 || CRYPTO_memcmp(t->key, key, key_len) == 0)) s = t;
  }
  if (s == NULL) {
    s = &hmac__t.slot[hmac__t.next++ % HMAC__SLOTS];
    OPENSSL_cleanse(s, sizeof(*s));
    hmac__key(&s->pads, key, key_len);
    if (key_len > 0) memcpy(s->key, key, key_len);
    s->len = key_len;
    s->keyed = 1;
  }
  hmac__mac(&s->pads, data, data_len, out);
}
