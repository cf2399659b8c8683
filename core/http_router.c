/* http_router.c — the HTTP route table: patterns with {captures} and a "*" tail, matched in order. */
#include "http_router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void route_free(http_route_entry *r) {
  free(r->method);
  free(r->pattern);
  free(r->segs);
  free(r->is_capture);
}

/* Splits the copied pattern in place into segments; rejects empty segments,
 * a "*" anywhere but last, and malformed or too many captures. */
static int parse_pattern(http_route_entry *r) {
  char *p = r->pattern;
  if (p[0] != '/') return -EINVAL;
  if (p[1] == '\0') return 0; /* "/" is the root: no segments */
  size_t max = 1;
  for (const char *q = p; *q != '\0'; q++)
    if (*q == '/') max++;
  r->segs = calloc(max, sizeof(*r->segs));
  r->is_capture = calloc(max, 1);
  if (r->segs == NULL || r->is_capture == NULL) return -ENOMEM;
  size_t ncap = 0;
  char *seg = p + 1;
  for (;;) {
    char *slash = strchr(seg, '/');
    if (slash != NULL) *slash = '\0';
    size_t len = strlen(seg);
    if (len == 0) return -EINVAL;
    if (strcmp(seg, "*") == 0) {
      if (slash != NULL) return -EINVAL;
      r->prefix = 1;
      return 0;
    }
    if (seg[0] == '{') {
      if (len < 3 || seg[len - 1] != '}' || memchr(seg + 1, '{', len - 2) != NULL ||
          memchr(seg + 1, '}', len - 2) != NULL || ++ncap > HTTP_MAX_PARAMS)
        return -EINVAL;
      seg[len - 1] = '\0';
      r->segs[r->nsegs] = seg + 1;
      r->is_capture[r->nsegs] = 1;
    } else {
      if (strchr(seg, '{') != NULL || strchr(seg, '}') != NULL || strchr(seg, '*') != NULL) return -EINVAL;
      r->segs[r->nsegs] = seg;
    }
    r->nsegs++;
    if (slash == NULL) return 0;
    seg = slash + 1;
  }
}

int http_routes_add(http_routes *t, const char *method, const char *pattern, http_handler_fn fn, void *arg) {
  if (t == NULL || pattern == NULL || fn == NULL) return -EINVAL;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    http_route_entry *v = realloc(t->v, cap * sizeof(*v));
    if (v == NULL) return -ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  http_route_entry r = {0};
  r.fn = fn;
  r.arg = arg;
  r.pattern = strdup(pattern);
  if (r.pattern == NULL || (method != NULL && (r.method = strdup(method)) == NULL)) {
    route_free(&r);
    return -ENOMEM;
  }
  int rc = parse_pattern(&r);
  if (rc != 0) {
    route_free(&r);
    return rc;
  }
  t->v[t->n++] = r;
  return 0;
}

/* Matches the path's segments against one route; fills caps on success. */
static int match_path(const http_route_entry *r, const char *path, size_t plen, http_capture *caps, size_t *ncaps) {
  if (plen == 0 || path[0] != '/') return 0;
  if (r->nsegs == 0 && !r->prefix) return plen == 1;
  const char *p = path + 1, *end = path + plen;
  int have = 1; /* a (possibly empty) segment starts at p */
  size_t n = 0;
  for (size_t i = 0; i < r->nsegs; i++) {
    if (!have) return 0;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *segend = slash != NULL ? slash : end;
    size_t sl = (size_t)(segend - p);
    if (r->is_capture[i]) {
      if (sl == 0) return 0;
      caps[n].name = r->segs[i];
      caps[n].value = p;
      caps[n].len = sl;
      n++;
    } else if (strlen(r->segs[i]) != sl || memcmp(r->segs[i], p, sl) != 0) {
      return 0;
    }
    if (slash != NULL) {
      p = slash + 1;
    } else {
      p = end;
      have = 0;
    }
  }
  if (!r->prefix && have) return 0;
  *ncaps = n;
  return 1;
}

const http_route_entry *http_routes_match(const http_routes *t, const char *method, size_t mlen,
                                          const char *path, size_t plen, http_capture *caps, size_t *ncaps,
                                          int *path_matched) {
  *path_matched = 0;
  *ncaps = 0;
  for (size_t i = 0; i < t->n; i++) {
    const http_route_entry *r = &t->v[i];
    int method_ok = r->method == NULL || (strlen(r->method) == mlen && strncmp(r->method, method, mlen) == 0);
    if (!method_ok && *path_matched) continue;
    http_capture tmp[HTTP_MAX_PARAMS];
    size_t n = 0;
    if (!match_path(r, path, plen, tmp, &n)) continue;
    if (!method_ok) {
      *path_matched = 1;
      continue;
    }
    memcpy(caps, tmp, n * sizeof(*caps));
    *ncaps = n;
    return r;
  }
  return NULL;
}

/* 1 when a route for method itself (not "any") matches path. */
static int routes_have(const http_routes *t, const char *method, const char *path, size_t plen) {
  for (size_t i = 0; i < t->n; i++) {
    http_capture tmp[HTTP_MAX_PARAMS];
    size_t n = 0;
    if (t->v[i].method != NULL && strcmp(t->v[i].method, method) == 0 && match_path(&t->v[i], path, plen, tmp, &n))
      return 1;
  }
  return 0;
}

void http_routes_allowed(const http_routes *t, const char *path, size_t plen, char *buf, size_t buflen) {
  size_t used = 0;
  buf[0] = '\0';
  /* HEAD is served through a GET route (http.c), so it is allowed wherever
   * GET is; a route of its own lists it once, where it was added. */
  int head_routed = routes_have(t, "HEAD", path, plen);
  for (size_t i = 0; i < t->n; i++) {
    const http_route_entry *r = &t->v[i];
    http_capture tmp[HTTP_MAX_PARAMS];
    size_t n = 0;
    if (r->method == NULL || !match_path(r, path, plen, tmp, &n)) continue;
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = t->v[j].method != NULL && strcmp(t->v[j].method, r->method) == 0 &&
             match_path(&t->v[j], path, plen, tmp, &n);
    if (seen) continue;
    const char *head = !head_routed && strcmp(r->method, "GET") == 0 ? ", HEAD" : "";
    int w = snprintf(buf + used, buflen - used, "%s%s%s", used > 0 ? ", " : "", r->method, head);
    if (w < 0 || (size_t)w >= buflen - used) return;
    used += (size_t)w;
  }
}

void http_routes_free(http_routes *t) {
  for (size_t i = 0; i < t->n; i++) route_free(&t->v[i]);
  free(t->v);
  t->v = NULL;
  t->n = t->cap = 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t http_pct_decode(char *dst, const char *src, size_t len, int plus_space) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    int hi, lo;
    if (c == '%' && i + 2 < len && (hi = hexval(src[i + 1])) >= 0 && (lo = hexval(src[i + 2])) >= 0) {
      dst[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_space) {
      dst[o++] = ' ';
    } else {
      dst[o++] = c;
    }
  }
  dst[o] = '\0';
  return o;
}
