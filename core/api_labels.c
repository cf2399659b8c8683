/* api_labels.c — the labels agents put on conversations: every token reads
 * the set, admins keep it (create, change, rename, delete). Putting labels
 * on a conversation is api_conversations.c's. */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define API_LABEL_NAME_MAX 64
#define API_LABEL_DESCRIPTION_MAX 500

/* Why name cannot be a label's, or NULL. 1-64 bytes without control
 * characters (C0, DEL, C1) or commas (labels are listed comma-separated
 * wherever a list is text), and no space at either end, which would make
 * "vip" and "vip " two labels nobody can tell apart. */
static const char *api__label_name_error(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > API_LABEL_NAME_MAX) return "a label's name must be 1 to 64 bytes";
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
      return "a label's name must not hold control characters";
  }
  if (strchr(name, ',') != NULL) return "a label's name must not hold a comma";
  if (name[0] == ' ' || name[len - 1] == ' ') return "a label's name must not begin or end with a space";
  return NULL;
}

static int api__color_ok(const char *c) {
  return strlen(c) == 7 && c[0] == '#' && strspn(c + 1, "0123456789abcdefABCDEF") == 6;
}

/* Checks a label's body for a create (name required) or a change; answers
 * 400 (shape) or 422 (a value a label cannot have, naming the field) and
 * returns -EINVAL when it is wrong. */
static int api__label_body(http_responder *res, const json_t *b, int create) {
  static const char *const keys[] = {"name", "color", "description", NULL};
  if (api_check_keys(res, b, keys) != 0 || api_check_type(res, b, "name", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "color", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "description", JSON_STRING, 1) != 0)
    return -EINVAL;
  const char *name = json_string_value(json_object_get(b, "name"));
  const char *color = json_string_value(json_object_get(b, "color"));
  const char *description = json_string_value(json_object_get(b, "description"));
  const char *why = NULL, *field = NULL;
  if (create && name == NULL) {
    http_respond_error(res, 400, "invalid", "a label needs a name", "name");
    return -EINVAL;
  }
  if (name != NULL && (why = api__label_name_error(name)) != NULL)
    field = "name";
  else if (color != NULL && !api__color_ok(color))
    why = "color must be #rrggbb: # and six hexadecimal digits", field = "color";
  else if (description != NULL && strlen(description) > API_LABEL_DESCRIPTION_MAX)
    why = "description must be at most 500 bytes", field = "description";
  if (why == NULL) return 0;
  http_respond_error(res, 422, "unprocessable", why, field);
  return -EINVAL;
}

static void api__labels(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  api_submitted(res, store_labels_list(a->host.st, api_done_page, res));
}

static void api__label_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  if (api__label_body(res, b, 1) == 0) api_submitted(res, store_label_create(a->host.st, b, api_done_created, res));
  json_decref(b);
}

static void api__label_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  if (api__label_body(res, b, 0) == 0)
    api_submitted(res, store_label_patch(a->host.st, http_request_param(req, "name"), b, api_done_object, res));
  json_decref(b);
}

static void api__label_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api_submitted(res, store_label_delete(a->host.st, http_request_param(req, "name"), api_done_object, res));
}

int api_labels_register(api *a) {
  int rc = 0;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/labels", 0, api__labels);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/labels", API_ADMIN, api__label_create);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/labels/{name}", API_ADMIN, api__label_patch);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/labels/{name}", API_ADMIN, api__label_delete);
  return rc;
}
