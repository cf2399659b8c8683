/* meta_form.c — multipart/form-data bodies for Graph API uploads (RFC 7578 framing, a boundary not in the data). */
#include "meta_form.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sb_buf.h"

#define META_FORM_PREFIX "SwitchboardFormBoundary"
#define META_FORM_RANDOM 32 /* characters after the prefix: 190 bits */
#define META_FORM_TRIES 16

/* A quoted header parameter, '"' CR and LF percent-encoded as the HTML
 * standard's form encoding writes them: the value can neither close the
 * quotes nor start a header line of its own. */
static void meta__quoted(sb_buf *b, const char *s) {
  sb_buf_put(b, "\"", 1);
  for (; *s != '\0'; s++) {
    if (*s == '"')
      sb_buf_put(b, "%22", 3);
    else if (*s == '\r')
      sb_buf_put(b, "%0D", 3);
    else if (*s == '\n')
      sb_buf_put(b, "%0A", 3);
    else
      sb_buf_put(b, s, 1);
  }
  sb_buf_put(b, "\"", 1);
}

/* Fills out with a boundary of letters and digits. The random bytes make a
 * collision with the data unlikely; the caller still checks, so the clock
 * fallback (no getrandom) costs nothing but another try. */
static void meta__boundary(char *out, size_t outlen, unsigned try) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char rnd[META_FORM_RANDOM];
  if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 6364136223846793005ULL + (uint64_t)ts.tv_sec + try * 1442695040888963407ULL;
    for (size_t i = 0; i < sizeof(rnd); i++) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      rnd[i] = (unsigned char)(x >> 56);
    }
  }
  size_t n = snprintf(out, outlen, "%s", META_FORM_PREFIX);
  for (size_t i = 0; i < sizeof(rnd) && n + 1 < outlen; i++) out[n++] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
  out[n] = '\0';
}

static int meta__contains(const char *hay, size_t len, const char *needle) {
  return hay != NULL && memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* 1 when the boundary occurs nowhere in the parts (data, names, types). */
static int meta__boundary_free(const meta_form_part *parts, size_t n, const char *boundary) {
  for (size_t i = 0; i < n; i++) {
    const meta_form_part *p = &parts[i];
    if (meta__contains(p->data, p->len, boundary) || meta__contains(p->name, strlen(p->name), boundary) ||
        (p->filename != NULL && meta__contains(p->filename, strlen(p->filename), boundary)) ||
        (p->content_type != NULL && meta__contains(p->content_type, strlen(p->content_type), boundary)))
      return 0;
  }
  return 1;
}

/* A content type goes into a header as it is: printable ASCII only. */
static int meta__valid_type(const char *t) {
  if (t[0] == '\0') return 0;
  for (; *t != '\0'; t++) {
    if ((unsigned char)*t < 0x20 || (unsigned char)*t >= 0x7f) return 0;
  }
  return 1;
}

static void meta__part(sb_buf *b, const char *boundary, const meta_form_part *p) {
  sb_buf_puts(b, "--");
  sb_buf_puts(b, boundary);
  sb_buf_puts(b, "\r\nContent-Disposition: form-data; name=");
  meta__quoted(b, p->name);
  if (p->filename != NULL) {
    sb_buf_puts(b, "; filename=");
    meta__quoted(b, p->filename);
  }
  if (p->content_type != NULL) {
    sb_buf_puts(b, "\r\nContent-Type: ");
    sb_buf_puts(b, p->content_type);
  }
  sb_buf_puts(b, "\r\n\r\n");
  sb_buf_put(b, p->data != NULL ? p->data : "", p->len);
  sb_buf_puts(b, "\r\n");
}

int meta_form_build(const meta_form_part *parts, size_t n, char **body, size_t *body_len,
                    char content_type[META_FORM_TYPE_MAX]) {
  *body = NULL;
  *body_len = 0;
  if (parts == NULL && n > 0) return SB_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (parts[i].name == NULL || (parts[i].data == NULL && parts[i].len > 0)) return SB_EINVAL;
    if (parts[i].content_type != NULL && !meta__valid_type(parts[i].content_type)) return SB_EINVAL;
  }
  char boundary[sizeof(META_FORM_PREFIX) + META_FORM_RANDOM];
  unsigned try = 0;
  do {
    if (try == META_FORM_TRIES) return SB_EINVAL; /* only a broken random source gets here */
    meta__boundary(boundary, sizeof(boundary), try++);
  } while (!meta__boundary_free(parts, n, boundary));
  sb_buf b = {0};
  for (size_t i = 0; i < n; i++) meta__part(&b, boundary, &parts[i]);
  sb_buf_puts(&b, "--");
  sb_buf_puts(&b, boundary);
  sb_buf_puts(&b, "--\r\n");
  if (b.failed) {
    free(b.s);
    return SB_ENOMEM;
  }
  snprintf(content_type, META_FORM_TYPE_MAX, "multipart/form-data; boundary=%s", boundary);
  *body = b.s;
  *body_len = b.len;
  return SB_OK;
}
