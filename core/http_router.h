/* http_router.h — the HTTP module's route table (internal to core/http*.c). */
#ifndef SB_CORE_HTTP_ROUTER_H
#define SB_CORE_HTTP_ROUTER_H

#include "http.h"

#include <stddef.h>

#define HTTP_MAX_PARAMS 16

typedef struct http_route_entry {
  char *method;             /* NULL = any method */
  char *pattern;            /* the copy the segments below point into */
  const char **segs;        /* literal text, or the capture's name */
  unsigned char *is_capture;
  size_t nsegs;
  int prefix;               /* pattern ended in a "*" segment */
  http_handler_fn fn;
  void *arg;
} http_route_entry;

typedef struct http_routes {
  http_route_entry *v;
  size_t n, cap;
} http_routes;

/* One captured segment: name borrowed from the route, value raw (not decoded). */
typedef struct http_capture {
  const char *name;
  const char *value;
  size_t len;
} http_capture;

/* Adds a route (see http_route() for the pattern syntax). Returns 0, -EINVAL, -ENOMEM. */
int http_routes_add(http_routes *t, const char *method, const char *pattern, http_handler_fn fn, void *arg);

/* Finds the first route matching method and path (path without the query).
 * Returns it and fills caps/ncaps, or NULL; then *path_matched says whether
 * some route matched the path under another method (405 rather than 404). */
const http_route_entry *http_routes_match(const http_routes *t, const char *method, size_t mlen,
                                          const char *path, size_t plen, http_capture *caps, size_t *ncaps,
                                          int *path_matched);

/* Writes the distinct methods of the routes matching path, as an Allow
 * header value ("GET, PATCH"), into buf (truncated to buflen). */
void http_routes_allowed(const http_routes *t, const char *path, size_t plen, char *buf, size_t buflen);

/* Frees every route. The table may be reused after. */
void http_routes_free(http_routes *t);

/* Percent-decodes src[0..len) into dst (room for len + 1 bytes), '+' as space
 * when plus_space; malformed escapes are kept as they are. Returns the length
 * written; dst is NUL-terminated. */
size_t http_pct_decode(char *dst, const char *src, size_t len, int plus_space);

#endif
