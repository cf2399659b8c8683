/* form_rules.c — the web form channel's host-free rules: addresses, keys,
 * origins, labels and the per-address rate table. */
#include "form.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int form_key_valid(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n < 8 || n > 64) return 0;
  return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int form_field_name_valid(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  return n >= 1 && n <= 64 &&
         strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Length of "http(s)://host[:port]" at the start of s, or 0. */
static size_t form__origin_len(const char *s) {
  size_t skip = strncasecmp(s, "https://", 8) == 0 ? 8 : strncasecmp(s, "http://", 7) == 0 ? 7 : 0;
  if (skip == 0) return 0;
  size_t host = strcspn(s + skip, "/?#");
  if (host == 0 || host > 253) return 0;
  for (size_t i = skip; i < skip + host; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || c == '@' || c == '\\') return 0; /* no userinfo, no spaces */
  }
  return skip + host;
}

int form_origin_valid(const char *s) {
  if (s == NULL) return 0;
  size_t n = form__origin_len(s);
  return n > 0 && s[n] == '\0';
}

int form_origin_of(const char *url, char *out, size_t outlen) {
  size_t n = url != NULL ? form__origin_len(url) : 0;
  if (n == 0 || n >= outlen) return -1;
  memcpy(out, url, n);
  out[n] = '\0';
  return 0;
}

void form_label(const char *name, char *out, size_t outlen) {
  size_t n = 0;
  for (; name[n] != '\0' && n + 1 < outlen; n++) {
    char c = name[n];
    out[n] = c == '_' || c == '-' || c == '.' ? ' ' : c;
  }
  out[n] = '\0';
  if (n > 0 && out[0] >= 'a' && out[0] <= 'z') out[0] = (char)(out[0] - 'a' + 'A');
}

/* How soon slot c may be given to another address at now_ms: a free slot
 * or one whose minute is over holds nothing worth keeping, then the longest
 * idle goes first. */
static int64_t form__rate_keep(const form_rate_slot *c, int64_t now_ms) {
  if (c->start_ms == 0 || now_ms - c->start_ms >= 60000 || now_ms < c->start_ms) return INT64_MIN;
  return c->last_ms;
}

int form_rate_take(form_rate_slot *slots, size_t n, const char *addr, int64_t now_ms, int64_t per_minute) {
  if (per_minute <= 0 || n == 0) return 0;
  if (addr == NULL) addr = "";
  /* A fixed minute per address, starting at its first request: simple to
   * explain in a Retry-After, and enough against a script posting a form.
   * The table is read whole: forms are not posted often enough for that to
   * cost, and a hashed probe window let a handful of colliding addresses
   * push an address out long before the table was full. */
  form_rate_slot *s = NULL, *victim = &slots[0];
  for (size_t k = 0; k < n && s == NULL; k++) {
    if (slots[k].start_ms != 0 && strcmp(slots[k].addr, addr) == 0)
      s = &slots[k];
    else if (form__rate_keep(&slots[k], now_ms) < form__rate_keep(victim, now_ms))
      victim = &slots[k];
  }
  if (s == NULL || now_ms - s->start_ms >= 60000 || now_ms < s->start_ms) {
    if (s == NULL) s = victim;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->start_ms = now_ms > 0 ? now_ms : 1;
    s->count = 0;
  }
  s->last_ms = now_ms;
  if ((int64_t)s->count >= per_minute) {
    int64_t wait = (s->start_ms + 60000 - now_ms + 999) / 1000;
    return wait > 0 ? (int)wait : 1;
  }
  s->count++;
  return 0;
}
