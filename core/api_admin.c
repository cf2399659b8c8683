/* api_admin.c — the people behind the desk and their keys: users and teams (read by agents, written by admins), API tokens (admins). */
#include "api_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

/* Checks that key, when present, is an array of strings; answers 400. */
static int api__strings(http_responder *res, const json_t *b, const char *key) {
  json_t *v = json_object_get(b, key);
  if (v == NULL) return 0;
  int ok = json_is_array(v);
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) ok = ok && json_is_string(e);
  if (ok) return 0;
  char msg[96];
  snprintf(msg, sizeof(msg), "\"%s\" must be an array of strings", key);
  http_respond_error(res, 400, "invalid_type", msg, key);
  return -EINVAL;
}

static int api__user_valid(http_responder *res, const json_t *b, int need_name) {
  static const char *const keys[] = {"name",     "email", "seat",       "available", "skills",
                                     "capacity", "teams", "avatar_url", NULL};
  if (api_check_keys(res, b, keys) != 0 || api_check_type(res, b, "name", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "email", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "avatar_url", JSON_STRING, 1) != 0 || api_check_type(res, b, "seat", -1, 0) != 0 ||
      api_check_type(res, b, "available", -1, 0) != 0 || api_check_type(res, b, "capacity", JSON_INTEGER, 0) != 0 ||
      api__strings(res, b, "skills") != 0 || api__strings(res, b, "teams") != 0)
    return -EINVAL;
  const char *name = json_string_value(json_object_get(b, "name"));
  if (need_name && (name == NULL || name[0] == '\0')) {
    http_respond_error(res, 400, "missing_field", "a user needs a \"name\"", "name");
    return -EINVAL;
  }
  if (need_name && !router_user_name_valid(name)) {
    http_respond_error(res, 400, "invalid", "\"name\" " ROUTER_USER_NAME_RULE, "name");
    return -EINVAL;
  }
  if (json_integer_value(json_object_get(b, "capacity")) < 0) {
    http_respond_error(res, 400, "invalid", "\"capacity\" must be 0 (unlimited) or more", "capacity");
    return -EINVAL;
  }
  const char *avatar = json_string_value(json_object_get(b, "avatar_url"));
  if (avatar != NULL && !router_avatar_url_valid(avatar)) {
    http_respond_error(res, 400, "invalid", "\"avatar_url\" " ROUTER_AVATAR_URL_RULE, "avatar_url");
    return -EINVAL;
  }
  return 0;
}

static int api__team_valid(http_responder *res, const json_t *b, int need_name) {
  static const char *const keys[] = {"name", "users", NULL};
  if (api_check_keys(res, b, keys) != 0 || api_check_type(res, b, "name", JSON_STRING, 0) != 0 ||
      api__strings(res, b, "users") != 0)
    return -EINVAL;
  const char *name = json_string_value(json_object_get(b, "name"));
  if (need_name && (name == NULL || name[0] == '\0')) {
    http_respond_error(res, 400, "missing_field", "a team needs a \"name\"", "name");
    return -EINVAL;
  }
  return 0;
}

/* A user's unknown team, or a team's unknown member, is 422 naming the
 * list; a taken name is 409 naming it. */
static void api__written(http_responder *res, int status, json_t *result, const char *err, int code) {
  static const api_field_hint hints[] = {{"\": team \"", "teams"}, {"\": user \"", "users"}, {NULL, NULL}};
  if (status == -EEXIST)
    http_respond_error(res, 409, "conflict", err, "name");
  else
    api_done_hinted(res, status, result, err, code, hints);
}
static void api__created(void *arg, int status, json_t *result, const char *err) {
  api__written(arg, status, result, err, 201);
}
static void api__patched(void *arg, int status, json_t *result, const char *err) {
  api__written(arg, status, result, err, 200);
}

/* Starts a create (POST) or patch (PATCH /{name}) of a user or team. */
static void api__write(api *a, const http_request *req, http_responder *res, int team, int create) {
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  int bad = team ? api__team_valid(res, b, create) : api__user_valid(res, b, create);
  if (bad) {
    json_decref(b);
    return;
  }
  if (!create) {
    const char *name = http_request_param(req, "name");
    const char *given = json_string_value(json_object_get(b, "name"));
    if (given != NULL && strcmp(given, name) != 0) {
      http_respond_error(res, 400, "invalid", "renaming is not supported: \"name\" must match the path", "name");
      json_decref(b);
      return;
    }
    json_object_set_new(b, "name", json_string(name));
  }
  /* The store checks the name in the write's own transaction: a check
   * before it could race a DELETE (the PATCH would bring the name back) or
   * another POST (both would answer 201). */
  int must = create ? STORE_UPSERT_NEW : STORE_UPSERT_EXISTING;
  store_json_cb cb = create ? api__created : api__patched;
  api_submitted(res, team ? store_team_upsert(a->host.st, b, must, cb, res)
                          : store_user_upsert(a->host.st, b, must, cb, res));
  json_decref(b);
}

static void api__users(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  api_submitted(res, store_users_list(a->host.st, api_done_list, res));
}
static void api__user_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__write(a, req, res, 0, 1);
}
static void api__user_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__write(a, req, res, 0, 0);
}
static void api__teams(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  api_submitted(res, store_teams_list(a->host.st, api_done_list, res));
}
static void api__team_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__write(a, req, res, 1, 1);
}
static void api__team_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__write(a, req, res, 1, 0);
}

/* A delete that revokes tokens: answered once every verified token is forgotten. */
typedef struct api_revoke {
  api *a;
  http_responder *res;
} api_revoke;

static void api__revoked(void *arg, int status, json_t *result, const char *err) {
  api_revoke *v = arg;
  /* Forget every verified token, including any lookup that finished while
   * the delete was queued, so a revoked one stops working at once. */
  v->a->ncache = 0;
  if (status == 0) sse_recheck_tokens(v->a);
  api_done_object(v->res, status, result, err);
  free(v);
}

static api_revoke *api__revoke_new(api *a, http_responder *res) {
  api_revoke *v = malloc(sizeof(*v));
  if (v == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return NULL;
  }
  *v = (api_revoke){a, res};
  return v;
}

/* DELETE /users/{name}: the user's open tickets are routed again and their
 * tokens revoked. */
static void api__user_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api_revoke *v = api__revoke_new(a, res);
  if (v == NULL) return;
  if (api_submitted(res, store_user_delete(a->host.st, http_request_param(req, "name"), api__revoked, v)) < 0) free(v);
}

/* DELETE /teams/{name}: its users stay. */
static void api__team_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api_submitted(res, store_team_delete(a->host.st, http_request_param(req, "name"), api_done_object, res));
}

/* ---- tokens ---- */

static void api__tokens(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  api_submitted(res, store_tokens_list(a->host.st, api_done_list, res));
}

/* The new token's secret rides along to the answer, shown this once. */
typedef struct api_token_wait {
  http_responder *res;
  char token[API_TOKEN_LEN + 1];
} api_token_wait;

static void api__token_created(void *arg, int status, json_t *result, const char *err) {
  api_token_wait *w = arg;
  if (status == -EINVAL) {
    /* the only data refusal: the user named does not exist */
    http_respond_error(w->res, 422, "unprocessable", err, "user");
  } else if (status != 0) {
    api_store_error(w->res, status, err);
  } else {
    json_t *body = json_deep_copy(result);
    json_object_set_new(body, "token", json_string(w->token));
    http_respond_json(w->res, 201, body);
  }
  sodium_memzero(w->token, sizeof(w->token));
  free(w);
}

static void api__token_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"name", "role", "user", NULL};
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) != 0 || api_check_type(res, b, "name", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "role", JSON_STRING, 0) != 0 || api_check_type(res, b, "user", JSON_STRING, 1) != 0) {
    json_decref(b);
    return;
  }
  const char *name = json_string_value(json_object_get(b, "name"));
  const char *r = json_string_value(json_object_get(b, "role"));
  const char *user = json_string_value(json_object_get(b, "user"));
  api_token_wait *w = NULL;
  char hash[65];
  if (name == NULL || name[0] == '\0' || strlen(name) > 64) {
    http_respond_error(res, 400, "missing_field", "a token needs a \"name\" of 1-64 characters", "name");
  } else if (r == NULL || (strcmp(r, "admin") != 0 && strcmp(r, "agent") != 0)) {
    http_respond_error(res, 400, "invalid", "\"role\" must be \"admin\" or \"agent\"", "role");
  } else if (user != NULL && user[0] == '\0') {
    http_respond_error(res, 400, "invalid", "\"user\" must name a user, or be null for a token of nobody", "user");
  } else if ((w = malloc(sizeof(*w))) == NULL || api_token_generate(w->token) != 0) {
    free(w);
    http_respond_error(res, 503, "unavailable", "no token could be made", NULL);
  } else {
    w->res = res;
    api_token_hash(w->token, hash);
    if (api_submitted(res, store_token_create(a->host.st, name, r, user, hash, api__token_created, w)) < 0) free(w);
  }
  json_decref(b);
}

static void api__token_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_revoke *v = api__revoke_new(a, res);
  if (v == NULL) return;
  if (api_submitted(res, store_token_delete(a->host.st, id, api__revoked, v)) < 0) free(v);
}

/* GET /api/v1/audit: the audit log, newest first. */
static void api__audit_log(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *f = json_object();
  if (api_query_into(req, res, "cursor", f) == 0 && api_query_limit(req, res, f) == 0)
    api_submitted(res, store_audit_list(a->host.st, f, api_done_page, res));
  json_decref(f);
}

int api_admin_register(api *a) {
  int rc = 0;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/users", 0, api__users);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/users", API_ADMIN, api__user_create);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/users/{name}", API_ADMIN, api__user_patch);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/users/{name}", API_ADMIN, api__user_delete);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/teams", 0, api__teams);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/teams", API_ADMIN, api__team_create);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/teams/{name}", API_ADMIN, api__team_patch);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/teams/{name}", API_ADMIN, api__team_delete);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/tokens", API_ADMIN, api__tokens);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/audit", API_ADMIN, api__audit_log);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/tokens", API_ADMIN, api__token_create);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/tokens/{id}", API_ADMIN, api__token_delete);
  return rc;
}
