/* api_secret.c — the API's libsodium parts: bearer tokens (random, stored as a hash) and channel credentials sealed at rest. */
#include "api.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int api_random_secret(const char *prefix, char *out, size_t len) {
  size_t n = strlen(prefix);
  if (len < n + 65) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  unsigned char raw[32];
  randombytes_buf(raw, sizeof(raw));
  memcpy(out, prefix, n);
  sodium_bin2hex(out + n, len - n, raw, sizeof(raw));
  sodium_memzero(raw, sizeof(raw));
  return 0;
}

int api_token_generate(char out[API_TOKEN_LEN + 1]) { return api_random_secret("sbt_", out, API_TOKEN_LEN + 1); }

/* An unkeyed hash is enough: tokens are 256 random bits, so there is nothing
 * to guess, and rotating secret_key must not invalidate every token. */
void api_token_hash(const char *token, char hex[65]) {
  unsigned char h[32];
  crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL, 0);
  sodium_bin2hex(hex, 65, h, sizeof(h));
}

static int api__key(const char *key_hex, unsigned char key[crypto_secretbox_KEYBYTES]) {
  size_t n = 0;
  if (sodium_init() < 0 || key_hex == NULL || strlen(key_hex) != 2 * crypto_secretbox_KEYBYTES) return -EINVAL;
  if (sodium_hex2bin(key, crypto_secretbox_KEYBYTES, key_hex, strlen(key_hex), NULL, &n, NULL) != 0 ||
      n != crypto_secretbox_KEYBYTES)
    return -EINVAL;
  return 0;
}

int api_seal(const char *key_hex, const json_t *credentials, char **out) {
  unsigned char key[crypto_secretbox_KEYBYTES];
  *out = NULL;
  if (api__key(key_hex, key) != 0) return -EINVAL;
  char *plain = json_dumps(credentials, JSON_COMPACT);
  if (plain == NULL) return -ENOMEM;
  size_t plen = strlen(plain);
  size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
  unsigned char *box = malloc(blen);
  size_t b64len = sodium_base64_encoded_len(blen, sodium_base64_VARIANT_ORIGINAL);
  char *text = malloc(3 + b64len);
  int rc = -ENOMEM;
  if (box != NULL && text != NULL) {
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, plen, box, key);
    memcpy(text, "v1:", 3);
    sodium_bin2base64(text + 3, b64len, box, blen, sodium_base64_VARIANT_ORIGINAL);
    *out = text;
    text = NULL;
    rc = 0;
  }
  sodium_memzero(plain, plen);
  sodium_memzero(key, sizeof(key));
  free(plain);
  free(box);
  free(text);
  return rc;
}

const char *api_unseal_problem(int rc) {
  return rc == -EINVAL   ? "the config has no valid secret_key (64 hex digits)"
         : rc == -ENOMEM ? "out of memory"
                         : "secret_key is not the key they were sealed with";
}

int api_unseal(const char *key_hex, const char *sealed, json_t **out) {
  unsigned char key[crypto_secretbox_KEYBYTES];
  *out = NULL;
  if (api__key(key_hex, key) != 0) return -EINVAL;
  if (sealed == NULL || strncmp(sealed, "v1:", 3) != 0) return -EBADMSG;
  size_t tlen = strlen(sealed + 3), blen = 0;
  unsigned char *box = malloc(tlen + 1);
  if (box == NULL) return -ENOMEM;
  int rc = -EBADMSG;
  if (sodium_base642bin(box, tlen + 1, sealed + 3, tlen, NULL, &blen, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
      blen >= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    size_t plen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    unsigned char *plain = malloc(plen + 1);
    if (plain == NULL) {
      rc = -ENOMEM;
    } else {
      if (crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES, blen - crypto_secretbox_NONCEBYTES,
                                     box, key) == 0) {
        *out = json_loadb((const char *)plain, plen, 0, NULL);
        rc = json_is_object(*out) ? 0 : -EBADMSG;
        if (rc != 0) {
          json_decref(*out);
          *out = NULL;
        }
      }
      sodium_memzero(plain, plen + 1);
      free(plain);
    }
  }
  sodium_memzero(key, sizeof(key));
  free(box);
  return rc;
}
