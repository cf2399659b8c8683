/* api_admin.c — the people behind the desk: users and teams (read by agents, written by admins). */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A write waiting for the list that tells whether the name exists. */
typedef struct api_write {
  api *a;
  http_responder *res;
  json_t *body; /* owned; carries "name" */
  int create;   /* POST: the name must be new; PATCH: it must exist */
  int team;
} api_write;

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
  static const char *const keys[] = {"name", "email", "seat", "available", "skills", "capacity", "teams", NULL};
  if (api_check_keys(res, b, keys) != 0 || api_check_type(res, b, "name", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "email", JSON_STRING, 1) != 0 || api_check_type(res, b, "seat", -1, 0) != 0 ||
      api_check_type(res, b, "available", -1, 0) != 0 || api_check_type(res, b, "capacity", JSON_INTEGER, 0) != 0 ||
      api__strings(res, b, "skills") != 0 || api__strings(res, b, "teams") != 0)
    return -EINVAL;
  const char *name = json_string_value(json_object_get(b, "name"));
  if (need_name && (name == NULL || name[0] == '\0')) {
    http_respond_error(res, 400, "missing_field", "a user needs a \"name\"", "name");
    return -EINVAL;
  }
  if (json_integer_value(json_object_get(b, "capacity")) < 0) {
    http_respond_error(res, 400, "invalid", "\"capacity\" must be 0 (unlimited) or more", "capacity");
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

static void api__write_listed(void *arg, int status, json_t *result, const char *err) {
  api_write *w = arg;
  const char *name = json_string_value(json_object_get(w->body, "name"));
  const char *what = w->team ? "team" : "user";
  if (status != 0) {
    api_store_error(w->res, status, err);
    goto out;
  }
  int exists = 0;
  size_t i;
  json_t *e;
  json_array_foreach(result, i, e) exists |= strcmp(json_string_value(json_object_get(e, "name")), name) == 0;
  char msg[192];
  if (w->create && exists) {
    snprintf(msg, sizeof(msg), "a %s named \"%.64s\" already exists; PATCH it instead", what, name);
    http_respond_error(w->res, 409, "conflict", msg, "name");
  } else if (!w->create && !exists) {
    snprintf(msg, sizeof(msg), "%s \"%.64s\" does not exist", what, name);
    http_respond_error(w->res, 404, "not_found", msg, NULL);
  } else {
    store_json_cb cb = w->create ? api_done_created : api_done_object;
    int rc = w->team ? store_team_upsert(w->a->host.st, w->body, cb, w->res)
                     : store_user_upsert(w->a->host.st, w->body, cb, w->res);
    api_submitted(w->res, rc);
  }
out:
  json_decref(w->body);
  free(w);
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
  api_write *w = malloc(sizeof(*w));
  if (w == NULL) {
    json_decref(b);
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  *w = (api_write){a, res, b, create, team};
  int rc = team ? store_teams_list(a->host.st, api__write_listed, w) : store_users_list(a->host.st, api__write_listed, w);
  if (api_submitted(res, rc) < 0) {
    json_decref(b);
    free(w);
  }
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

int api_admin_register(api *a) {
  int rc = 0;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/users", 0, api__users);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/users", 1, api__user_create);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/users/{name}", 1, api__user_patch);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/teams", 0, api__teams);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/teams", 1, api__team_create);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/teams/{name}", 1, api__team_patch);
  return rc;
}
