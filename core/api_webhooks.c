/* api_webhooks.c — /api/v1/webhooks: admins manage the outgoing webhooks
 * core/webhooks.c delivers. A webhook's secret is shown once, when it is
 * made or rotated; the store keeps it sealed under secret_key. */
#include "api_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "webhooks.h"

#define API_WEBHOOK_URL_MAX 2048
#define API_WEBHOOK_PATTERNS_MAX 32

/* A stored webhook as the API shows it: without its sealed secret, with
 * what only the running dispatcher knows. */
static json_t *api__webhook_view(const api *a, const json_t *row) {
  json_t *v = json_deep_copy(row);
  json_object_del(v, "secret");
  json_object_set_new(v, "next_attempt_at", json_null());
  webhooks_describe(a->host.webhooks, v);
  return v;
}

/* One store call's context: the answer's status and, for a webhook made or
 * given a new secret, that secret (shown in this answer only). */
typedef struct api_whreq {
  api *a;
  http_responder *res;
  int code;
  char secret[WEBHOOKS_SECRET_LEN + 1];
} api_whreq;

static void api__whreq_free(api_whreq *q) {
  sodium_memzero(q->secret, sizeof(q->secret));
  free(q);
}

static void api__webhook_saved(void *arg, int status, json_t *result, const char *err) {
  api_whreq *q = arg;
  if (status != 0) {
    api_store_error(q->res, status, err);
  } else {
    webhooks_updated(q->a->host.webhooks, result);
    json_t *v = api__webhook_view(q->a, result);
    if (q->secret[0] != '\0') json_object_set_new(v, "secret", json_string(q->secret));
    http_respond_json(q->res, q->code, v);
  }
  api__whreq_free(q);
}

static void api__webhook_shown(void *arg, int status, json_t *result, const char *err) {
  api_whreq *q = arg;
  if (status != 0) {
    api_store_error(q->res, status, err);
  } else {
    http_respond_json(q->res, 200, api__webhook_view(q->a, result));
  }
  api__whreq_free(q);
}

static void api__webhooks_listed(void *arg, int status, json_t *result, const char *err) {
  api_whreq *q = arg;
  if (status != 0) {
    api_store_error(q->res, status, err);
  } else {
    json_t *items = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(result, i, row) json_array_append_new(items, api__webhook_view(q->a, row));
    http_respond_json(q->res, 200, json_pack("{so sn}", "items", items, "next_cursor"));
  }
  api__whreq_free(q);
}

static api_whreq *api__whreq(api *a, http_responder *res, int code) {
  api_whreq *q = calloc(1, sizeof(*q));
  if (q == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return NULL;
  }
  q->a = a;
  q->res = res;
  q->code = code;
  return q;
}

/* Answers a refused store submission and frees q. */
static void api__whreq_submitted(api_whreq *q, int rc) {
  if (rc != 0) {
    api_submitted(q->res, rc);
    api__whreq_free(q);
  }
}

/* Checks the fields a POST or PATCH may carry; answers and returns -EINVAL
 * on the first wrong one. */
static int api__webhook_fields(api *a, http_responder *res, const json_t *b, int create) {
  static const char *const create_keys[] = {"url", "events", "channel", "inbox", "description", "active", "cursor",
                                            NULL};
  static const char *const patch_keys[] = {"url",    "events", "channel",       "inbox", "description",
                                           "active", "cursor", "rotate_secret", NULL};
  if (api_check_keys(res, b, create ? create_keys : patch_keys) != 0 ||
      api_check_type(res, b, "url", JSON_STRING, 0) != 0 || api_check_type(res, b, "events", JSON_ARRAY, 0) != 0 ||
      api_check_type(res, b, "channel", JSON_STRING, 1) != 0 || api_check_type(res, b, "inbox", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "description", JSON_STRING, 1) != 0 || api_check_type(res, b, "active", -1, 0) != 0 ||
      api_check_type(res, b, "cursor", JSON_INTEGER, 0) != 0 || api_check_type(res, b, "rotate_secret", -1, 0) != 0)
    return -EINVAL;
  const char *url = json_string_value(json_object_get(b, "url"));
  if (create && url == NULL) {
    http_respond_error(res, 422, "unprocessable", "a webhook needs a url", "url");
    return -EINVAL;
  }
  if (url != NULL) {
    size_t n = strlen(url), i, host = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    for (i = 0; i < n && (unsigned char)url[i] > 0x20 && url[i] != 0x7f; i++) {
    }
    if (host == 0 || url[host] == '\0' || url[host] == '/' || n > API_WEBHOOK_URL_MAX || i < n) {
      http_respond_error(res, 422, "unprocessable",
                         "url must be an http:// or https:// URL of at most 2048 bytes, without spaces", "url");
      return -EINVAL;
    }
  }
  const json_t *events = json_object_get(b, "events");
  if (events != NULL) {
    size_t i;
    json_t *p;
    char msg[192];
    if (json_array_size(events) == 0 || json_array_size(events) > API_WEBHOOK_PATTERNS_MAX) {
      http_respond_error(res, 422, "unprocessable", "events must list 1 to 32 event types or patterns", "events");
      return -EINVAL;
    }
    json_array_foreach(events, i, p) {
      if (!events_pattern_ok(json_string_value(p))) {
        snprintf(msg, sizeof(msg), "events[%zu] is not an event type, a family such as \"ticket.*\", or \"*\"", i);
        http_respond_error(res, 422, "unprocessable", msg, "events");
        return -EINVAL;
      }
    }
  }
  static const char *const names[] = {"channel", "inbox"};
  for (size_t i = 0; i < 2; i++) {
    const char *s = json_string_value(json_object_get(b, names[i]));
    if (s != NULL && (s[0] == '\0' || strlen(s) > 128)) {
      http_respond_error(res, 422, "unprocessable", "must be 1 to 128 bytes, or null for any", names[i]);
      return -EINVAL;
    }
  }
  const char *d = json_string_value(json_object_get(b, "description"));
  if (d != NULL && strlen(d) > 256) {
    http_respond_error(res, 422, "unprocessable", "description must be at most 256 bytes", "description");
    return -EINVAL;
  }
  json_int_t cursor = json_integer_value(json_object_get(b, "cursor"));
  int64_t newest = webhooks_newest(a->host.webhooks);
  if (cursor < 0 || cursor > newest) {
    /* past the newest, the webhook would wait, silently, for events it may
     * never see (ids to come are not promised to any number) */
    char msg[160];
    snprintf(msg, sizeof(msg), "cursor must be an event id from 0 (the oldest event kept) to %lld (the newest)",
             (long long)newest);
    http_respond_error(res, 422, "unprocessable", msg, "cursor");
    return -EINVAL;
  }
  return 0;
}

/* Makes a secret for q and seals it into fields; answers and returns
 * -EINVAL without a secret_key. */
static int api__webhook_secret(api_whreq *q, json_t *fields) {
  const config *cfg = q->a->host.config(q->a->host.ctx);
  char *sealed = NULL;
  json_t *plain = NULL;
  int rc = webhooks_secret_generate(q->secret);
  if (rc == 0) {
    plain = json_pack("{ss}", "secret", q->secret);
    rc = api_seal(cfg->secret_key, plain, &sealed);
  }
  json_decref(plain);
  if (rc != 0) {
    http_respond_error(q->res, rc == -EINVAL ? 409 : 503, rc == -EINVAL ? "secret_key_missing" : "unavailable",
                       rc == -EINVAL ? "webhooks keep their signing secrets sealed: set secret_key (64 hex digits) "
                                       "in the config file first"
                                     : "out of memory",
                       NULL);
    return -EINVAL;
  }
  json_object_set_new(fields, "secret", json_string(sealed));
  free(sealed);
  return 0;
}

static void api__webhooks(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  api_whreq *q = api__whreq(a, res, 200);
  if (q != NULL) api__whreq_submitted(q, store_webhooks_list(a->host.st, api__webhooks_listed, q));
}

static void api__webhook_get(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_whreq *q = api__whreq(a, res, 200);
  if (q != NULL) api__whreq_submitted(q, store_webhook_get(a->host.st, id, api__webhook_shown, q));
}

static void api__webhook_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  api_whreq *q = NULL;
  if (api__webhook_fields(a, res, b, 1) == 0 && (q = api__whreq(a, res, 201)) != NULL) {
    if (json_object_get(b, "events") == NULL) json_object_set_new(b, "events", json_pack("[s]", "*"));
    if (json_object_get(b, "cursor") == NULL) json_object_set_new(b, "cursor", json_integer(webhooks_newest(a->host.webhooks)));
    if (api__webhook_secret(q, b) != 0) {
      api__whreq_free(q);
    } else {
      api__whreq_submitted(q, store_webhook_put(a->host.st, 0, b, api__webhook_saved, q));
    }
  }
  json_decref(b);
}

static void api__webhook_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  api_whreq *q = NULL;
  if (api__webhook_fields(a, res, b, 0) == 0 && (q = api__whreq(a, res, 200)) != NULL) {
    int rotate = json_is_true(json_object_get(b, "rotate_secret"));
    json_object_del(b, "rotate_secret");
    if (rotate && api__webhook_secret(q, b) != 0) {
      api__whreq_free(q);
    } else {
      /* A cursor moved back replays; moved on, skips. Either way the POST
       * under way is for the old position: stop it before the change is
       * stored, so no record of it lands after. */
      if (json_object_get(b, "cursor") != NULL) webhooks_removed(a->host.webhooks, id);
      api__whreq_submitted(q, store_webhook_put(a->host.st, id, b, api__webhook_saved, q));
    }
  }
  json_decref(b);
}

static void api__webhook_deleted(void *arg, int status, json_t *result, const char *err) {
  api_whreq *q = arg;
  if (status == 0) webhooks_removed(q->a->host.webhooks, json_integer_value(json_object_get(result, "deleted")));
  api_done_object(q->res, status, result, err);
  api__whreq_free(q);
}

static void api__webhook_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_whreq *q = api__whreq(a, res, 200);
  if (q != NULL) api__whreq_submitted(q, store_webhook_delete(a->host.st, id, api__webhook_deleted, q));
}

/* POST /api/v1/webhooks/{id}/ping: a signed test post, answered with how
 * the receiver took it; the webhook's cursor and counts stay as they are. */
static void api__webhook_pinged(void *arg, const httpc_response *r) {
  int ok = r->status == 0 && r->code >= 200 && r->code < 300;
  json_t *error = ok                ? json_null()
                  : r->status != 0 ? json_string(r->error != NULL && *r->error ? r->error : "the POST failed")
                                   : json_sprintf("the receiver answered HTTP %ld", r->code);
  http_respond_json(arg, 200,
                    json_pack("{sb so so sI}", "delivered", ok, "status",
                              r->status == 0 ? json_integer(r->code) : json_null(), "error", error, "duration_ms",
                              (json_int_t)(r->total_us / 1000)));
}

static void api__webhook_ping(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  int rc = webhooks_ping(a->host.webhooks, id, api__webhook_pinged, res);
  if (rc == -ENOENT) {
    http_respond_error(res, 404, "not_found", "no such webhook", NULL);
  } else if (rc == -EKEYREJECTED) {
    http_respond_error(res, 409, "secret_unsealable",
                       "its secret cannot be unsealed with the configured secret_key: rotate it (PATCH rotate_secret)",
                       NULL);
  } else if (rc != 0) {
    http_respond_error(res, 503, "unavailable", "the test post could not be made", NULL);
  }
}

int api_webhooks_register(api *a) {
  int rc = 0;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/webhooks", API_ADMIN, api__webhooks);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/webhooks", API_ADMIN, api__webhook_create);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/webhooks/{id}", API_ADMIN, api__webhook_get);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/webhooks/{id}", API_ADMIN, api__webhook_patch);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/webhooks/{id}", API_ADMIN, api__webhook_delete);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/webhooks/{id}/ping", API_ADMIN | API_UNAUDITED, api__webhook_ping);
  return rc;
}
