/* filelink.c — signed, expiring download links (filelink.h). The key is
 * random per process rather than kept in the config or the database: a
 * leaked link then dies at the latest with the daemon, and there is no key
 * to rotate; a plugin that hands links out makes new ones when its
 * customer asks again (the chat widget reads its history on reconnect). */
#include "filelink.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmac.h"

static uint8_t filelink__key[32];
static int filelink__ready;

static void filelink__mac(int64_t id, int64_t expires, char hex[65]) {
  if (!filelink__ready) { /* loop thread only: no race on the first use */
    if (sodium_init() < 0) abort(); /* no randomness: no links that could be guessed */
    randombytes_buf(filelink__key, sizeof(filelink__key));
    filelink__ready = 1;
  }
  char msg[64];
  int n = snprintf(msg, sizeof(msg), "%" PRId64 ":%" PRId64, id, expires);
  uint8_t mac[32];
  hmac_sha256(filelink__key, sizeof(filelink__key), msg, (size_t)n, mac);
  sodium_bin2hex(hex, 65, mac, sizeof(mac));
}

int filelink_sign(int64_t id, uint32_t ttl_s, int64_t now_s, char *buf, size_t len) {
  if (id < 1 || ttl_s == 0 || ttl_s > FILELINK_TTL_MAX_S) return -EINVAL;
  char hex[65];
  int64_t expires = now_s + ttl_s;
  filelink__mac(id, expires, hex);
  int n = snprintf(buf, len, "/files/%" PRId64 "?expires=%" PRId64 "&sig=%s", id, expires, hex);
  return n > 0 && (size_t)n < len ? n : -EFBIG;
}

int filelink_valid(int64_t id, const char *expires, const char *sig, int64_t now_s) {
  /* expires exactly as the link was made: digits, no leading zero (a link
   * edited into another spelling of the same time is an edited link) */
  if (expires == NULL || sig == NULL || strlen(sig) != 64 || expires[0] == '\0' || strlen(expires) > 18 ||
      strspn(expires, "0123456789") != strlen(expires) || (expires[0] == '0' && expires[1] != '\0'))
    return 0;
  int64_t e = strtoll(expires, NULL, 10);
  if (e < now_s) return 0;
  char hex[65];
  filelink__mac(id, e, hex);
  return sodium_memcmp(hex, sig, 64) == 0;
}
