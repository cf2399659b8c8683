/* sb_buf.h — a growing string for the plugins that build text (a web
 * form's pages and agents' text, Meta's multipart uploads). Header-only:
 * each plugin is one shared object of its own. */
#ifndef SB_BUF_H
#define SB_BUF_H

#include <stdlib.h>
#include <string.h>

/* s is NUL-terminated (or NULL while empty); failed latches the first
 * allocation failure, after which puts do nothing (the caller gives up or
 * answers 503). Zero-initialise; free(s) when done. */
typedef struct sb_buf {
  char *s;
  size_t len, cap;
  int failed;
} sb_buf;

static inline void sb_buf_put(sb_buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap != 0 ? b->cap : 1024;
    while (cap < b->len + n + 1) cap *= 2;
    char *t = realloc(b->s, cap);
    if (t == NULL) {
      b->failed = 1;
      return;
    }
    b->s = t;
    b->cap = cap;
  }
  if (n > 0) memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static inline void sb_buf_puts(sb_buf *b, const char *s) { sb_buf_put(b, s, strlen(s)); }

#endif
