/* sb_utf8.h — the one UTF-8 check the daemon's WebSocket server
 * (core/http_ws.c) and the stub test host (testhost_ws.c) share, so a plugin
 * tested with the test host sees text refused exactly where the daemon
 * refuses it. Header-only: the test host ships without core, and core links
 * the test host only for `plugins check`. */
#ifndef SB_UTF8_H
#define SB_UTF8_H

#include <stddef.h>

/* True when text[0..len) is valid UTF-8 (no overlongs, no surrogates, nothing
 * past U+10FFFF). */
static inline int sb_utf8_valid(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i], cp, min;
    size_t n;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return 0;
    }
    if (len - i <= n) return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += n + 1;
  }
  return 1;
}

#endif
