/* api.c — the REST API's front door: route registration, bearer-token authentication and roles, shared request and reply helpers, GET /plugins. */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "log.h"

/* A verified token is trusted this long before the store is asked again; a
 * token deleted from the store stops working at most this much later. */
#define API_CACHE_MS 30000
#define API_CACHE_SLOTS 64

typedef struct api_rt {
  api *a;
  api_handler_fn fn;
  int flags; /* API_ADMIN, API_UNAUDITED */
  int audited; /* a change (not GET or HEAD) the audit log records */
} api_rt;

/* Whose token a request carries: kept for API_CACHE_MS once verified. */
typedef struct api_cache_entry {
  char hash[65];
  int role;
  int64_t user_id; /* the token's user, 0 = none */
  char token[65];  /* names for the audit log: the token's (1-64 bytes) */
  char user[128];  /* and its user's, "" = none */
  uint64_t until_ms;
} api_cache_entry;

/* One request waiting for the store to say whose token it carries. */
typedef struct api_auth {
  api_rt *rt;
  const http_request *req;
  http_responder *res;
  char hash[65];
} api_auth;

static uint64_t api__now_ms(void) { return uv_hrtime() / 1000000u; }

/* The token verified lately with this hash (copied into *out), or 0. */
static int api__cached(api *a, const char *hash, api_cache_entry *out) {
  uint64_t now = api__now_ms();
  for (size_t i = 0; i < a->ncache; i++) {
    if (strcmp(a->cache[i].hash, hash) == 0 && a->cache[i].until_ms > now) {
      *out = a->cache[i];
      return 1;
    }
  }
  return 0;
}

static void api__cache_put(api *a, const api_cache_entry *e) {
  const char *hash = e->hash;
  uint64_t now = api__now_ms();
  size_t slot = 0;
  for (size_t i = 0; i < a->ncache; i++) {
    if (strcmp(a->cache[i].hash, hash) == 0 || a->cache[i].until_ms <= now) {
      slot = i;
      goto fill;
    }
    if (a->cache[i].until_ms < a->cache[slot].until_ms) slot = i;
  }
  if (a->ncache < API_CACHE_SLOTS) slot = a->ncache++;
fill:
  a->cache[slot] = *e;
  a->cache[slot].until_ms = now + API_CACHE_MS;
}

/* ---- the audit log ---- */

/* A change waiting for its answer, to be logged if it succeeded. */
typedef struct api_audit {
  store *st;
  char token[65], role[8], user[128];
  char *method, *path, *detail;
} api_audit;

static void api__audit_free(api_audit *au) {
  free(au->method);
  free(au->path);
  free(au->detail);
  free(au);
}

static void api__audit_stored(void *arg, int status, json_t *result, const char *err) {
  (void)result;
  api_audit *au = arg;
  if (status != 0) log_error("api: the audit log missed %s %s: %s", au->method, au->path, err ? err : "");
  api__audit_free(au);
}

static void api__audit_respond(void *arg, int status) {
  api_audit *au = arg;
  if (status < 200 || status > 299 ||
      store_audit_append(au->st, au->token, au->role, au->user[0] ? au->user : NULL, au->method, au->path, status,
                         au->detail, api__audit_stored, au) != 0)
    api__audit_free(au);
}

#define API_AUDIT_DETAIL_MAX 4096

/* What the audit log keeps of a request's body: the JSON object with
 * credentials reduced to their names (never a value), or only its keys
 * when it is long; NULL for no body or one that is not an object. */
static char *api__audit_detail(const http_request *req) {
  json_t *b = req->body_len > 0 ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
  if (!json_is_object(b)) {
    json_decref(b);
    return NULL;
  }
  json_t *cred = json_object_get(b, "credentials");
  if (json_is_object(cred)) {
    json_t *names = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(cred, k, v) json_array_append_new(names, json_string(k));
    json_object_set_new(b, "credentials", names);
  } else if (cred != NULL) {
    json_object_set_new(b, "credentials", json_string("(not an object)"));
  }
  char *s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
  if (s != NULL && strlen(s) > API_AUDIT_DETAIL_MAX) {
    free(s);
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v) json_array_append_new(keys, json_string(k));
    json_t *o = json_pack("{so}", "keys", keys);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
  }
  json_decref(b);
  return s;
}

static void api__audit(api_rt *rt, const http_request *req, http_responder *res, const api_cache_entry *who) {
  api_audit *au = calloc(1, sizeof(*au));
  if (au == NULL) return;
  au->st = rt->a->host.st;
  snprintf(au->token, sizeof(au->token), "%s", who->token);
  snprintf(au->role, sizeof(au->role), "%s", who->role == API_ROLE_ADMIN ? "admin" : "agent");
  snprintf(au->user, sizeof(au->user), "%s", who->user);
  au->method = strdup(req->method);
  size_t plen = strlen(req->path), qlen = strlen(req->query);
  if ((au->path = malloc(plen + qlen + 2)) != NULL)
    snprintf(au->path, plen + qlen + 2, "%s%s%s", req->path, qlen > 0 ? "?" : "", req->query);
  au->detail = api__audit_detail(req);
  if (au->method == NULL || au->path == NULL) {
    api__audit_free(au);
    return;
  }
  http_responder_on_respond(res, api__audit_respond, au);
}

static void api__run(api_rt *rt, const http_request *req, http_responder *res, const api_cache_entry *who) {
  if ((rt->flags & API_ADMIN) && who->role != API_ROLE_ADMIN) {
    http_respond_error(res, 403, "forbidden", "this needs an admin token", NULL);
    return;
  }
  if (rt->audited) api__audit(rt, req, res, who);
  rt->a->caller_user_id = who->user_id;
  rt->a->caller_token_hash = who->hash;
  rt->fn(rt->a, req, res, who->role);
  rt->a->caller_user_id = 0;
  rt->a->caller_token_hash = NULL;
}

static void api__token_found(void *arg, int status, json_t *result, const char *err) {
  api_auth *w = arg;
  if (status == -ENOENT) {
    http_respond_error(w->res, 401, "unauthorized", "the bearer token is not valid", NULL);
  } else if (status != 0) {
    log_error("api: checking a token failed: %s", err ? err : "");
    http_respond_error(w->res, 503, "unavailable", "the store could not check the token", NULL);
  } else {
    const char *role = json_string_value(json_object_get(result, "role"));
    const char *user = json_string_value(json_object_get(result, "user"));
    api_cache_entry e = {.role = role != NULL && strcmp(role, "admin") == 0 ? API_ROLE_ADMIN : API_ROLE_AGENT,
                         .user_id = json_integer_value(json_object_get(result, "user_id"))};
    snprintf(e.hash, sizeof(e.hash), "%s", w->hash);
    const char *name = json_string_value(json_object_get(result, "name"));
    snprintf(e.token, sizeof(e.token), "%s", name != NULL ? name : "");
    snprintf(e.user, sizeof(e.user), "%s", user != NULL ? user : "");
    api__cache_put(w->rt->a, &e);
    api__run(w->rt, w->req, w->res, &e);
  }
  free(w);
}

/* Every API route lands here first: no token or a bad one is 401. */
static void api__dispatch(void *arg, const http_request *req, http_responder *res) {
  api_rt *rt = arg;
  const char *h = http_request_header(req, "authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
    http_respond_error(res, 401, "unauthorized", "an Authorization: Bearer token is required", NULL);
    return;
  }
  const char *token = h + 7;
  while (*token == ' ') token++;
  if (*token == '\0') {
    http_respond_error(res, 401, "unauthorized", "an Authorization: Bearer token is required", NULL);
    return;
  }
  api_auth *w = malloc(sizeof(*w));
  if (w == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  api_token_hash(token, w->hash);
  api_cache_entry who;
  if (api__cached(rt->a, w->hash, &who)) {
    free(w);
    api__run(rt, req, res, &who);
    return;
  }
  w->rt = rt;
  w->req = req;
  w->res = res;
  int rc = store_token_find(rt->a->host.st, w->hash, api__token_found, w);
  if (rc != 0) {
    free(w);
    http_respond_error(res, 503, "unavailable", "the store is not accepting requests", NULL);
  }
}

int api_route(api *a, const char *method, const char *pattern, int flags, api_handler_fn fn) {
  api_rt *rt = malloc(sizeof(*rt));
  if (rt == NULL) return -ENOMEM;
  rt->a = a;
  rt->fn = fn;
  rt->flags = flags;
  rt->audited = !(flags & API_UNAUDITED) && method != NULL && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
  /* The records are referenced by the server, so they are kept as pointers. */
  api_rt **list = realloc(a->routes, (a->nroutes + 1) * sizeof(*list));
  if (list == NULL) {
    free(rt);
    return -ENOMEM;
  }
  list[a->nroutes++] = rt;
  a->routes = list;
  return http_route(a->http, method, pattern, api__dispatch, rt);
}

/* ---- helpers ---- */

int api_body_object(const http_request *req, http_responder *res, json_t **out) {
  json_error_t je;
  *out = NULL;
  if (req->body_len == 0) {
    http_respond_error(res, 400, "invalid_json", "the request needs a JSON object body", NULL);
    return -EINVAL;
  }
  json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL) {
    char msg[256];
    snprintf(msg, sizeof(msg), "the body is not valid JSON: %s at line %d column %d", je.text, je.line, je.column);
    http_respond_error(res, 400, "invalid_json", msg, NULL);
    return -EINVAL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    http_respond_error(res, 400, "invalid_json", "the body must be a JSON object", NULL);
    return -EINVAL;
  }
  *out = j;
  return 0;
}

static const char *api__type_name(int type) {
  switch (type) {
  case JSON_STRING: return "a string";
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_INTEGER: return "an integer";
  case -1: return "true or false";
  default: return "of another type";
  }
}

int api_check_type(http_responder *res, const json_t *body, const char *key, int type, int nullable) {
  json_t *v = json_object_get(body, key);
  if (v == NULL || (nullable && json_is_null(v))) return 0;
  int ok = type == -1 ? json_is_boolean(v) : (int)json_typeof(v) == type;
  if (ok) return 0;
  char msg[160];
  snprintf(msg, sizeof(msg), "\"%s\" must be %s%s", key, api__type_name(type), nullable ? " or null" : "");
  http_respond_error(res, 400, "invalid_type", msg, key);
  return -EINVAL;
}

int api_check_keys(http_responder *res, const json_t *body, const char *const *keys) {
  return api_check_keys_in(res, body, keys, NULL);
}

int api_check_keys_in(http_responder *res, const json_t *obj, const char *const *keys, const char *parent) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    size_t i = 0;
    while (keys[i] != NULL && strcmp(keys[i], k) != 0) i++;
    if (keys[i] == NULL) {
      char msg[192], field[160];
      snprintf(msg, sizeof(msg), "unknown field \"%.64s\"%s%.64s", k, parent != NULL ? " in " : "",
               parent != NULL ? parent : "");
      snprintf(field, sizeof(field), "%.64s%s%.64s", parent != NULL ? parent : "", parent != NULL ? "." : "", k);
      http_respond_error(res, 400, "unknown_field", msg, field);
      return -EINVAL;
    }
  }
  return 0;
}

int api_param_id(const http_request *req, http_responder *res, const char *name, int64_t *id) {
  const char *s = http_request_param(req, name);
  char *end = NULL;
  /* an id as the API writes it: digits, no sign, no leading zero, and no
   * more than a 64-bit id holds (strtoll would give its largest instead) */
  errno = 0;
  long long v = s != NULL && s[0] >= '1' && s[0] <= '9' ? strtoll(s, &end, 10) : 0;
  if (v <= 0 || *end != '\0' || errno == ERANGE) {
    char msg[128];
    snprintf(msg, sizeof(msg), "there is nothing with id \"%.64s\"", s ? s : "");
    http_respond_error(res, 404, "not_found", msg, NULL);
    return -ENOENT;
  }
  *id = v;
  return 0;
}

void api_store_error(http_responder *res, int status, const char *err) {
  const char *msg = err != NULL && err[0] != '\0' ? err : "the store refused the request";
  switch (status) {
  case -ENOENT: http_respond_error(res, 404, "not_found", msg, NULL); break;
  case -EINVAL: http_respond_error(res, 422, "unprocessable", msg, NULL); break;
  case -EEXIST: http_respond_error(res, 409, "conflict", msg, NULL); break;
  default:
    log_error("api: %s", msg);
    http_respond_error(res, 500, "internal", "the store failed; see the daemon log", NULL);
  }
}

static void api__done(void *arg, int status, json_t *result, const char *err, int code, int wrap) {
  http_responder *res = arg;
  if (status != 0) {
    api_store_error(res, status, err);
    return;
  }
  json_t *body = wrap ? json_pack("{sO s:n}", "items", result, "next_cursor") : json_incref(result);
  http_respond_json(res, code, body != NULL ? body : json_object());
}

void api_done_object(void *arg, int status, json_t *result, const char *err) {
  api__done(arg, status, result, err, 200, 0);
}

void api_done_hinted(http_responder *res, int status, json_t *result, const char *err, int code,
                     const api_field_hint *hints) {
  for (size_t i = 0; status == -EINVAL && err != NULL && hints[i].phrase != NULL; i++) {
    if (strstr(err, hints[i].phrase) != NULL) {
      http_respond_error(res, 422, "unprocessable", err, hints[i].field);
      return;
    }
  }
  api__done(res, status, result, err, code, 0);
}
void api_done_created(void *arg, int status, json_t *result, const char *err) {
  api__done(arg, status, result, err, 201, 0);
}
void api_done_accepted(void *arg, int status, json_t *result, const char *err) {
  api__done(arg, status, result, err, 202, 0);
}
void api_done_list(void *arg, int status, json_t *result, const char *err) {
  api__done(arg, status, result, err, 200, 1);
}
void api_done_page(void *arg, int status, json_t *result, const char *err) {
  api__done(arg, status, result, err, 200, 0);
}

int64_t api_is_id(const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;
  return n > 0 && n <= 18 && strspn(s, "0123456789") == n ? strtoll(s, NULL, 10) : 0;
}

/* Copies query parameter name (when present) into filter as a string.
 * An empty search (q) is no search; an empty filter would silently filter
 * nothing, so it is refused, and so is a cursor that is not one (the
 * previous page's next_cursor: a positive id). Returns 0, or -EINVAL after
 * answering 400 naming the parameter. */
int api_query_into(const http_request *req, http_responder *res, const char *name, json_t *filter) {
  char buf[512];
  int n = http_request_query(req, name, buf, sizeof(buf));
  if (n == -ENOENT) return 0;
  const char *why = n < 0 ? "is too long" : NULL;
  json_t *value = why == NULL && (size_t)n == strlen(buf) ? json_string(buf) : NULL;
  if (why == NULL && value == NULL) why = "must be UTF-8 text without NUL bytes";
  if (why == NULL && buf[0] == '\0' && strcmp(name, "q") != 0) why = "is empty: give a value or leave it out";
  if (why == NULL && strcmp(name, "cursor") == 0 && api_is_id(buf) == 0)
    why = "is not a cursor: give the previous page's next_cursor";
  if (why != NULL) {
    char msg[128];
    snprintf(msg, sizeof(msg), "?%s= %s", name, why);
    http_respond_error(res, 400, "invalid_query", msg, name);
    json_decref(value);
    return -EINVAL;
  }
  if (buf[0] != '\0') json_object_set_new(filter, name, value);
  else json_decref(value);
  return 0;
}

/* Reads ?limit= (1..500) into filter. Returns 0 or -EINVAL (answered). */
int api_query_limit(const http_request *req, http_responder *res, json_t *filter) {
  char buf[32];
  int n = http_request_query(req, "limit", buf, sizeof(buf));
  if (n == -ENOENT) return 0;
  char *end = NULL;
  long v = n < 0 ? 0 : strtol(buf, &end, 10);
  if (n <= 0 || strspn(buf, "0123456789") != strlen(buf) || *end != '\0' || v < 1 || v > 500) {
    http_respond_error(res, 400, "invalid_query", "limit must be a whole number from 1 to 500", "limit");
    return -EINVAL;
  }
  json_object_set_new(filter, "limit", json_integer(v));
  return 0;
}

int api_submitted(http_responder *res, int rc) {
  if (rc < 0) http_respond_error(res, 503, "unavailable", "the store is not accepting requests", NULL);
  return rc;
}

/* ---- GET /api/v1/plugins ---- */

static void api__plugins(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  json_t *items = json_array();
  for (size_t i = 0; i < a->host.plugins->count; i++) {
    json_t *p = loader_plugin_json(&a->host.plugins->plugins[i]);
    if (p == NULL) continue;
    json_object_del(p, "file"); /* a path on the host is none of the client's business */
    json_array_append_new(items, p);
  }
  http_respond_json(res, 200, json_pack("{so s:n}", "items", items, "next_cursor"));
}

int api_register(http_server *s, const api_host *host, api **out) {
  *out = NULL;
  if (s == NULL || host == NULL || host->st == NULL || host->plugins == NULL) return -EINVAL;
  api *a = calloc(1, sizeof(*a));
  if (a == NULL) return -ENOMEM;
  a->host = *host;
  a->http = s;
  a->cache = calloc(API_CACHE_SLOTS, sizeof(*a->cache));
  int rc = a->cache != NULL ? 0 : -ENOMEM;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/plugins", 0, api__plugins);
  if (rc == 0) rc = api_channels_register(a);
  if (rc == 0) rc = api_conversations_register(a);
  if (rc == 0) rc = api_admin_register(a);
  if (rc == 0) rc = api_webhooks_register(a);
  if (rc == 0) rc = api_reports_register(a);
  if (rc == 0) rc = api_labels_register(a);
  if (rc == 0) rc = sse_register(a);
  if (rc != 0) {
    /* Routes already added point at a; the server is being torn down by the
     * caller on this failure, so a is kept alive with it. */
    *out = a;
    return rc;
  }
  *out = a;
  return 0;
}

void api_free(api *a) {
  if (a == NULL) return;
  sse_free(a);
  if (a->loading) {
    a->freed = 1;
    return;
  }
  json_decref(a->owned);
  json_decref(a->yielded);
  json_decref(a->changing);
  for (size_t i = 0; i < a->nroutes; i++) free(a->routes[i]);
  free(a->routes);
  free(a->cache);
  free(a);
}
