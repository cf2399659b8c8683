/* api_conversations.c — what agents work with: conversations and replies, attachment downloads, tickets and pipelines, contacts (edit, merge). */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "filelink.h"
#include "router.h"

/* ---- conversations ---- */

/* An assignee who is no user is the query's fault: 400 naming it. */
static void api__conversations_done(void *arg, int status, json_t *result, const char *err) {
  if (status == -EINVAL)
    http_respond_error(arg, 400, "invalid_query", err, "assignee");
  else
    api_done_page(arg, status, result, err);
}

static void api__conversations(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"channel", "inbox", "status", "assignee", "q",
                                     "failed",  "cursor", "contact", "label"};
  json_t *f = json_object();
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    if (api_query_into(req, res, keys[i], f) != 0) goto out;
  }
  if (api_query_limit(req, res, f) != 0) goto out;
  const char *status = json_string_value(json_object_get(f, "status"));
  if (status != NULL && strcmp(status, "open") != 0 && strcmp(status, "closed") != 0) {
    http_respond_error(res, 400, "invalid_query", "status must be open or closed", "status");
    goto out;
  }
  const char *failed = json_string_value(json_object_get(f, "failed"));
  if (failed != NULL && strcmp(failed, "true") != 0 && strcmp(failed, "false") != 0) {
    http_respond_error(res, 400, "invalid_query", "failed must be true or false", "failed");
    goto out;
  }
  if (failed != NULL) json_object_set_new(f, "failed", json_boolean(strcmp(failed, "true") == 0));
  const char *contact = json_string_value(json_object_get(f, "contact"));
  if (contact != NULL) {
    int64_t cid = api_is_id(contact);
    if (cid == 0) {
      http_respond_error(res, 400, "invalid_query", "contact must be a contact's id", "contact");
      goto out;
    }
    json_object_set_new(f, "contact", json_integer(cid));
  }
  api_submitted(res, store_conversations_list(a->host.st, f, api__conversations_done, res));
out:
  json_decref(f);
}

/* Points every attachment whose content is stored at its download: url
 * becomes /api/v1/attachments/{id} (relative to the API's own address) and
 * a URL the channel gave is kept as source_url. */
static void api__attachment_urls(json_t *conversation) {
  size_t i, j;
  json_t *m, *at;
  json_array_foreach(json_object_get(conversation, "messages"), i, m) {
    json_array_foreach(json_object_get(m, "attachments"), j, at) {
      json_int_t id = json_integer_value(json_object_get(at, "id"));
      if (id <= 0) continue;
      json_t *given = json_object_get(at, "url");
      if (given != NULL) json_object_set(at, "source_url", given);
      char url[64];
      snprintf(url, sizeof(url), "/api/v1/attachments/%lld", (long long)id);
      json_object_set_new(at, "url", json_string(url));
    }
  }
}

static void api__conversation_done(void *arg, int status, json_t *result, const char *err) {
  if (status == 0) api__attachment_urls(result);
  api_done_object(arg, status, result, err);
}

static void api__conversation(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_submitted(res, store_conversation_get(a->host.st, id, api__conversation_done, res));
}

/* Answers a conversation change, naming the field a refusal is about. */
static void api__conversation_patched(void *arg, int status, json_t *result, const char *err) {
  static const api_field_hint hints[] = {{"is not a user", "assignee"}, {"(labels)", "labels"}, {NULL, NULL}};
  if (status == -EEXIST)
    http_respond_error(arg, 409, "conflict", err != NULL ? err : "the conversation follows its ticket", "status");
  else
    api_done_hinted(arg, status, result, err, 200, hints);
}

/* Checks that key, when present, is an array of label names; answers 400
 * naming it and returns -EINVAL when it is not. */
static int api__check_labels(http_responder *res, const json_t *body, const char *key) {
  if (api_check_type(res, body, key, JSON_ARRAY, 0) != 0) return -EINVAL;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(body, key), i, v) {
    if (json_is_string(v)) continue;
    char msg[128];
    snprintf(msg, sizeof(msg), "\"%s\" must be an array of label names (strings)", key);
    http_respond_error(res, 400, "invalid_type", msg, key);
    return -EINVAL;
  }
  return 0;
}

static void api__conversation_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"status", "assignee", "labels", NULL};
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) == 0 && api_check_type(res, b, "status", JSON_STRING, 0) == 0 &&
      api_check_type(res, b, "assignee", JSON_STRING, 1) == 0 && api__check_labels(res, b, "labels") == 0) {
    const char *want = json_string_value(json_object_get(b, "status"));
    if (want != NULL && strcmp(want, "open") != 0 && strcmp(want, "closed") != 0)
      http_respond_error(res, 400, "invalid", "status must be \"open\" or \"closed\"", "status");
    else
      api_submitted(res, store_conversation_patch(a->host.st, id, b, api__conversation_patched, res));
  }
  json_decref(b);
}

/* POST /api/v1/conversations/{id}/labels: {"add": [...], "remove": [...]}
 * changes only the labels named, so agents changing different labels at
 * once do not undo each other's change (PATCH's labels replaces them all). */
static void api__conversation_labels(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"add", "remove", NULL};
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) == 0 && api__check_labels(res, b, "add") == 0 &&
      api__check_labels(res, b, "remove") == 0) {
    json_t *add = json_object_get(b, "add"), *remove = json_object_get(b, "remove");
    if (add == NULL && remove == NULL)
      http_respond_error(res, 400, "invalid", "give the labels to add, to remove, or both", "add");
    else
      api_submitted(res, store_conversation_labels(a->host.st, id, add, remove, api__conversation_patched, res));
  }
  json_decref(b);
}

/* ---- attachment content ---- */

/* The stored type if it looks like one (type/subtype, printable ASCII),
 * else application/octet-stream. */
static const char *api__content_type(const char *mime) {
  if (mime == NULL || mime[0] == '/' || strchr(mime, '/') == NULL || strlen(mime) > 200)
    return "application/octet-stream";
  for (const char *p = mime; *p; p++)
    if (*p < 0x20 || *p > 0x7e) return "application/octet-stream";
  return mime;
}

/* Content-Disposition for a download of filename (UTF-8, may be NULL): its
 * last path segment, as a quoted ASCII fallback (quotes, backslashes,
 * percent signs, controls and non-ASCII characters become '_') plus the
 * exact name percent-encoded in filename* (RFC 6266, RFC 8187). Always
 * "attachment": a browser must not render what a customer sent on the
 * API's origin. */
static void api__disposition(const char *filename, int64_t id, char *out, size_t len) {
  char fallback[128];
  if (filename != NULL) {
    const char *slash = strrchr(filename, '/'), *back = strrchr(filename, '\\');
    if (back != NULL && (slash == NULL || back > slash)) slash = back;
    if (slash != NULL) filename = slash + 1;
  }
  if (filename == NULL || filename[0] == '\0' || strcmp(filename, ".") == 0 || strcmp(filename, "..") == 0) {
    snprintf(out, len, "attachment; filename=\"attachment-%lld\"", (long long)id);
    return;
  }
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)filename; *p && n + 1 < sizeof(fallback); p++) {
    if ((*p & 0xC0) == 0x80) continue; /* one '_' per non-ASCII character */
    fallback[n++] = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '%' ? (char)*p : '_';
  }
  fallback[n] = '\0';
  int w = snprintf(out, len, "attachment; filename=\"%s\"; filename*=UTF-8''", fallback);
  if (w < 0 || (size_t)w >= len) return;
  size_t o = (size_t)w;
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)filename; *p; p++) {
    /* Room for a whole character (4 bytes, 12 encoded), or stop before it. */
    if ((*p & 0xC0) != 0x80 && o + 13 > len) break;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("!#$&+-.^_`|~", *p) != NULL) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
}

static void api__attachment_done(void *arg, int status, const store_attachment *at, const char *err) {
  http_responder *res = arg;
  if (status != 0) {
    api_store_error(res, status, err);
    return;
  }
  char disposition[1024];
  api__disposition(at->filename, at->id, disposition, sizeof(disposition));
  const http_header headers[] = {
      {"Content-Type", api__content_type(at->mime_type), 0},
      {"Content-Disposition", disposition, 0},
      {"X-Content-Type-Options", "nosniff", 0},
      {"Content-Security-Policy", "default-src 'none'; sandbox", 0},
      {"Cache-Control", "private, max-age=86400", 0},
  };
  http_respond(res, 200, headers, sizeof(headers) / sizeof(headers[0]), at->data, at->len);
}

static void api__attachment(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_submitted(res, store_attachment_get(a->host.st, id, api__attachment_done, res));
}

/* POST /api/v1/conversations/{id}/notes: an internal note, for agents only. */
static void api__note(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"text", NULL};
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) == 0 && api_check_type(res, b, "text", JSON_STRING, 0) == 0) {
    const char *text = json_string_value(json_object_get(b, "text"));
    if (text == NULL || text[0] == '\0')
      http_respond_error(res, 400, "invalid", "a note needs text", "text");
    else
      api_submitted(res, store_note_add(a->host.st, id, a->caller_user_id, text, api_done_created, res));
  }
  json_decref(b);
}

/* ---- canned responses ---- */

#define API_CANNED_TEXT_MAX 8000
/* A reply's attachment link (signed CDN links run long). */
#define API_ATTACHMENT_URL_MAX 8192

/* A canned response's name: 1-64 of A-Z a-z 0-9 . _ - (it goes in paths). */
static int api__canned_name_ok(const char *n) {
  size_t len = n != NULL ? strlen(n) : 0;
  return len >= 1 && len <= 64 &&
         strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static void api__canned(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *f = json_object();
  if (api_query_into(req, res, "q", f) == 0)
    api_submitted(res, store_canned_list(a->host.st, json_string_value(json_object_get(f, "q")), api_done_page, res));
  json_decref(f);
}

/* POST (create) and PATCH: {name, text} and {text}. */
static void api__canned_write(api *a, const http_request *req, http_responder *res, int create) {
  static const char *const create_keys[] = {"name", "text", NULL}, *const patch_keys[] = {"text", NULL};
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  const char *name = create ? json_string_value(json_object_get(b, "name")) : http_request_param(req, "name");
  const char *text = json_string_value(json_object_get(b, "text"));
  if (api_check_keys(res, b, create ? create_keys : patch_keys) != 0 ||
      (create && api_check_type(res, b, "name", JSON_STRING, 0) != 0) ||
      api_check_type(res, b, "text", JSON_STRING, 0) != 0) {
    /* answered */
  } else if (create && !api__canned_name_ok(name)) {
    http_respond_error(res, 400, "invalid", "name must be 1 to 64 of A-Z a-z 0-9 . _ -", "name");
  } else if (text == NULL || text[0] == '\0' || strlen(text) > API_CANNED_TEXT_MAX) {
    http_respond_error(res, 400, "invalid", "text must be 1 to 8000 bytes", "text");
  } else {
    api_submitted(res, store_canned_put(a->host.st, name, text, a->caller_user_id, create,
                                        create ? api_done_created : api_done_object, res));
  }
  json_decref(b);
}

static void api__canned_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__canned_write(a, req, res, 1);
}

static void api__canned_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__canned_write(a, req, res, 0);
}

static void api__canned_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api_submitted(res, store_canned_delete(a->host.st, http_request_param(req, "name"), api_done_object, res));
}

/* GET /files/{id}?expires=&sig=: a stored file by a link a plugin was given
 * for its customer (sb_host.attachment_link), without a token. A link that
 * is not one, or has expired, is 403, whether or not the file exists. */
static void api__file(void *arg, const http_request *req, http_responder *res) {
  api *a = arg;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  char expires[24], sig[72];
  if (http_request_query(req, "expires", expires, sizeof(expires)) <= 0 ||
      http_request_query(req, "sig", sig, sizeof(sig)) <= 0 || !filelink_valid(id, expires, sig, (int64_t)time(NULL))) {
    http_respond_error(res, 403, "forbidden", "the link is not valid or has expired: ask for the file again", NULL);
    return;
  }
  api_submitted(res, store_attachment_get(a->host.st, id, api__attachment_done, res));
}

/* ---- upload ---- */

/* The upload's media type from its Content-Type: type/subtype and any
 * parameters as given (printable ASCII), application/octet-stream when
 * there is none. Returns NULL for one that is not a media type. */
static const char *api__upload_type(const http_request *req) {
  const char *ct = http_request_header(req, "content-type");
  if (ct == NULL || ct[0] == '\0') return "application/octet-stream";
  return strcmp(api__content_type(ct), ct) == 0 ? ct : NULL;
}

static void api__uploaded(void *arg, int status, json_t *result, const char *err) {
  http_responder *res = arg;
  if (status == 0)
    http_respond_json(res, 201, json_incref(result));
  else
    api_store_error(res, status, err);
}

/* POST /api/v1/attachments?filename=NAME: the body is the file, as is. A
 * form (multipart/form-data) is refused rather than stored envelope and
 * all. The request body limit (http.body_limit) bounds an upload, since
 * libh2o reads a whole body before any handler runs: raising it for larger
 * files raises it for every route. */
static void api__upload(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  const char *type = api__upload_type(req);
  if (type == NULL) {
    http_respond_error(res, 400, "invalid", "Content-Type must be a media type such as application/pdf",
                       "Content-Type");
    return;
  }
  if (strncasecmp(type, "multipart/", 10) == 0) {
    http_respond_error(res, 415, "unsupported_media_type",
                       "send the file's bytes as the request body with its own Content-Type, not a form",
                       "Content-Type");
    return;
  }
  if (req->body_len == 0) {
    http_respond_error(res, 400, "invalid", "the body is empty: it must be the file's content", NULL);
    return;
  }
  char name[256];
  int n = http_request_query(req, "filename", name, sizeof(name));
  json_t *text = n > 0 ? json_stringn(name, (size_t)n) : NULL; /* NULL: not UTF-8 */
  int valid = text != NULL;
  json_decref(text);
  for (int i = 0; i < n; i++) valid &= (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
  if (n == -ENOENT) {
    name[0] = '\0';
  } else if (n <= 0 || !valid) {
    http_respond_error(res, 400, "invalid_query",
                       "?filename= must be 1 to 255 bytes of UTF-8 without control characters", "filename");
    return;
  }
  int rc = store_attachment_put(a->host.st, type, name[0] ? name : NULL, req->body, req->body_len, api__uploaded,
                                res);
  if (rc == -EFBIG) {
    http_respond_error(res, 413, "payload_too_large",
                       "the file is larger than the help desk keeps (attachments.max_bytes)", NULL);
    return;
  }
  api_submitted(res, rc);
}

/* ---- reply ---- */


static void api__reply_done(void *arg, int status, int64_t message_id, const char *err) {
  http_responder *res = arg;
  if (status == 0) {
    http_respond_json(res, 202, json_pack("{sI ss}", "id", (json_int_t)message_id, "status", "queued"));
  } else if (status == -EINVAL && err != NULL && strstr(err, "requires properties") != NULL) {
    http_respond_error(res, 422, "missing_properties", err, "ticket_properties");
  } else if (status == -EINVAL && err != NULL && strstr(err, "(attachments[") != NULL) {
    http_respond_error(res, 422, "unprocessable", err, "attachments");
  } else if (status == -EINVAL && err != NULL && strstr(err, "(canned)") != NULL) {
    http_respond_error(res, 422, "unprocessable", err, "canned");
  } else {
    api_store_error(res, status, err);
  }
}

/* Whether an attachment's optional key is absent, null or of the type. */
static int api__optional(const json_t *e, const char *key, int type) {
  const json_t *v = json_object_get(e, key);
  return v == NULL || json_is_null(v) || (int)json_typeof(v) == type;
}

/* Converts the attachments array; answers 400 and returns -EINVAL when an
 * entry is malformed (null stands for an absent optional key, as the
 * OpenAPI schema has it). *out is malloc'ed (free it) and points into
 * body. */
static int api__attachments(http_responder *res, const json_t *arr, router_attachment **out, size_t *n) {
  *out = NULL;
  *n = json_array_size(arr);
  if (*n == 0) return 0;
  router_attachment *at = calloc(*n, sizeof(*at));
  if (at == NULL) {
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return -ENOMEM;
  }
  for (size_t i = 0; i < *n; i++) {
    json_t *e = json_array_get(arr, i);
    json_t *url = json_object_get(e, "url"), *size = json_object_get(e, "size");
    if (!json_is_object(e) || !json_is_string(url) || !api__optional(e, "mime_type", JSON_STRING) ||
        !api__optional(e, "filename", JSON_STRING) || !api__optional(e, "size", JSON_INTEGER)) {
      free(at);
      http_respond_error(res, 400, "invalid_type",
                         "each attachment must be {url: string, mime_type?: string|null, filename?: string|null, "
                         "size?: integer|null}",
                         "attachments");
      return -EINVAL;
    }
    static const char *const keys[] = {"url", "mime_type", "filename", "size", NULL};
    if (api_check_keys_in(res, e, keys, "attachments") != 0) {
      free(at);
      return -EINVAL;
    }
    /* content the help desk holds, or a link the plugin can hand on */
    const char *bad = NULL, *why = NULL;
    if (store_attachment_link_id(json_string_value(url)) == 0 &&
        !router_http_url_valid(json_string_value(url), API_ATTACHMENT_URL_MAX))
      bad = "url", why = "an attachment's url is a stored file's /api/v1/attachments/{id} or an absolute http or "
                         "https URL";
    else if (json_integer_value(size) < 0)
      bad = "size", why = "an attachment's size is a number of bytes, 0 or more";
    if (bad != NULL) {
      free(at);
      char field[48];
      snprintf(field, sizeof(field), "attachments[%zu].%s", i, bad);
      http_respond_error(res, 400, "invalid", why, field);
      return -EINVAL;
    }
    at[i].url = json_string_value(url);
    at[i].mime_type = json_string_value(json_object_get(e, "mime_type"));
    at[i].filename = json_string_value(json_object_get(e, "filename"));
    at[i].size = json_integer_value(size);
  }
  *out = at;
  return 0;
}

static void api__reply(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"text",          "html",       "attachments",       "reply_to", "channel",
                                     "ticket_status", "ticket_properties", "template", "canned", NULL};
  int64_t id;
  json_t *b = NULL;
  router_attachment *at = NULL;
  size_t nat = 0;
  char *tmpl_json = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) != 0 || api_check_type(res, b, "text", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "html", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "attachments", JSON_ARRAY, 1) != 0 ||
      api_check_type(res, b, "reply_to", JSON_INTEGER, 1) != 0 ||
      api_check_type(res, b, "channel", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "ticket_status", JSON_STRING, 1) != 0 ||
      api_check_type(res, b, "ticket_properties", JSON_OBJECT, 1) != 0 ||
      api_check_type(res, b, "template", JSON_OBJECT, 1) != 0 ||
      api_check_type(res, b, "canned", JSON_STRING, 1) != 0)
    goto out;
  if (json_is_integer(json_object_get(b, "reply_to")) && json_integer_value(json_object_get(b, "reply_to")) < 1) {
    /* 0 would mean the default, the latest inbound message: not what was given */
    http_respond_error(res, 400, "invalid", "\"reply_to\" is a message id (a positive number), or null for the latest "
                       "inbound message", "reply_to");
    goto out;
  }
  json_t *tmpl = json_object_get(b, "template");
  if (tmpl != NULL && json_is_null(tmpl)) tmpl = NULL;
  if (tmpl != NULL) {
    /* {name, language?, parameters?}: handed to the channel's plugin as is. */
    const json_t *name = json_object_get(tmpl, "name"), *lang = json_object_get(tmpl, "language"),
                 *params = json_object_get(tmpl, "parameters");
    const char *field = !json_is_string(name) || json_string_length(name) == 0 ? "template.name"
                        : lang != NULL && !json_is_string(lang)                ? "template.language"
                        : params != NULL && !json_is_array(params)             ? "template.parameters"
                                                                               : NULL;
    if (field != NULL) {
      http_respond_error(res, 400, "invalid",
                         "a template is {\"name\": string, \"language\": string, \"parameters\": [...]}", field);
      goto out;
    }
    tmpl_json = json_dumps(tmpl, JSON_COMPACT);
  }
  if (api__attachments(res, json_object_get(b, "attachments"), &at, &nat) != 0) goto out;
  router_reply r = {
      .thread_id = id,
      .user_id = a->caller_user_id, /* the token's user authors the reply; 0 = nobody */
      .text = json_string_value(json_object_get(b, "text")),
      .html = json_string_value(json_object_get(b, "html")),
      .attachments = at,
      .n_attachments = nat,
      .reply_to_message_id = json_integer_value(json_object_get(b, "reply_to")),
      .channel = json_string_value(json_object_get(b, "channel")),
      .ticket_status = json_string_value(json_object_get(b, "ticket_status")),
      .ticket_properties = json_is_object(json_object_get(b, "ticket_properties"))
                               ? json_object_get(b, "ticket_properties")
                               : NULL,
      .template_json = tmpl_json,
      .canned = json_string_value(json_object_get(b, "canned")),
  };
  char err[256];
  int rc = router_submit_reply(a->host.st, &r, api__reply_done, res, err, sizeof(err));
  if (rc == -EINVAL) {
    int no_text = (r.text == NULL || r.text[0] == '\0') && (r.html == NULL || r.html[0] == '\0');
    http_respond_error(res, 400, "invalid", err,
                       r.canned != NULL && r.text != NULL ? "canned"
                       : no_text                          ? "text"
                                                          : NULL);
  } else if (rc < 0) {
    http_respond_error(res, 503, "unavailable", err, NULL);
  }
  /* The outbox subscribes to message.out events, so it sends at once. */
out:
  free(tmpl_json);
  free(at);
  json_decref(b);
}

/* POST /api/v1/conversations/{id}/messages/{message_id}/retry: a failed
 * reply goes out again. The body, if any, is an empty object. */
static void api__retry(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {NULL};
  int64_t id, mid;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_param_id(req, res, "message_id", &mid) != 0) return;
  if (req->body_len > 0 && (api_body_object(req, res, &b) != 0 || api_check_keys(res, b, keys) != 0)) {
    json_decref(b);
    return;
  }
  json_decref(b);
  api_submitted(res, store_outbox_requeue(a->host.st, id, mid, api_done_accepted, res));
}

/* ---- tickets and pipelines ---- */

static void api__ticket(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_submitted(res, store_ticket_get(a->host.st, id, api_done_object, res));
}

static void api__ticket_patched(void *arg, int status, json_t *result, const char *err) {
  http_responder *res = arg;
  if (status == -EINVAL && err != NULL && strstr(err, "requires properties") != NULL) {
    http_respond_error(res, 422, "missing_properties", err, "properties");
    return;
  }
  static const api_field_hint hints[] = {{"is not a user", "owner"}, {"has no status", "status"}, {NULL, NULL}};
  api_done_hinted(res, status, result, err, 200, hints);
}

static void api__contact_patched(void *arg, int status, json_t *result, const char *err) {
  static const api_field_hint hints[] = {{"is not a user", "owner"}, {NULL, NULL}};
  api_done_hinted(arg, status, result, err, 200, hints);
}

static void api__ticket_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"status", "owner", "priority", "properties", NULL};
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) == 0 && api_check_type(res, b, "status", JSON_STRING, 0) == 0 &&
      api_check_type(res, b, "owner", JSON_STRING, 1) == 0 &&
      api_check_type(res, b, "priority", JSON_STRING, 0) == 0 &&
      api_check_type(res, b, "properties", JSON_OBJECT, 0) == 0) {
    api_submitted(res, store_ticket_patch(a->host.st, id, b, api__ticket_patched, res));
  }
  json_decref(b);
}

static void api__pipelines(api *a, const http_request *req, http_responder *res, int role) {
  (void)req;
  (void)role;
  api_submitted(res, store_pipelines_list(a->host.st, api_done_list, res));
}

/* ---- contacts ---- */

static void api__contacts(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *f = json_object();
  if (api_query_into(req, res, "q", f) == 0 && api_query_into(req, res, "cursor", f) == 0 &&
      api_query_limit(req, res, f) == 0)
    api_submitted(res, store_contacts_list(a->host.st, f, api_done_page, res));
  json_decref(f);
}

static void api__contact_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"name", "email", "phone", "avatar_url", "owner", NULL};
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  int ok = api_check_keys(res, b, keys) == 0;
  for (size_t i = 0; ok && keys[i] != NULL; i++) ok = api_check_type(res, b, keys[i], JSON_STRING, 1) == 0;
  const char *avatar = json_string_value(json_object_get(b, "avatar_url"));
  if (ok && avatar != NULL && !router_avatar_url_valid(avatar)) { /* as a user's: agents' screens show it */
    http_respond_error(res, 400, "invalid", "\"avatar_url\" " ROUTER_AVATAR_URL_RULE, "avatar_url");
    ok = 0;
  }
  if (ok) api_submitted(res, store_contact_patch(a->host.st, id, b, api__contact_patched, res));
  json_decref(b);
}

static void api__contact_merge(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"contact_id", NULL};
  int64_t id;
  json_t *b = NULL;
  if (api_param_id(req, res, "id", &id) != 0 || api_body_object(req, res, &b) != 0) return;
  if (api_check_keys(res, b, keys) == 0 && api_check_type(res, b, "contact_id", JSON_INTEGER, 0) == 0) {
    json_int_t from = json_integer_value(json_object_get(b, "contact_id"));
    if (from <= 0) {
      http_respond_error(res, 400, "invalid", "contact_id must be the id of the contact to merge into this one",
                         "contact_id");
    } else if (from == id) {
      http_respond_error(res, 422, "unprocessable", "a contact cannot be merged into itself", "contact_id");
    } else {
      api_submitted(res, store_contact_merge(a->host.st, id, from, api_done_object, res));
    }
  }
  json_decref(b);
}

static void api__contact_get(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_submitted(res, store_contact_get(a->host.st, id, api_done_object, res));
}

/* GET /api/v1/contacts/{id}/export (admin): all the help desk holds of a
 * contact, attachments pointed at their downloads as in a conversation. */
static void api__contact_exported(void *arg, int status, json_t *result, const char *err) {
  size_t i;
  json_t *c;
  if (status == 0) json_array_foreach(json_object_get(result, "conversations"), i, c) api__attachment_urls(c);
  api_done_object(arg, status, result, err);
}

static void api__contact_export(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_submitted(res, store_contact_export(a->host.st, id, api__contact_exported, res));
}

/* DELETE /api/v1/contacts/{id}: erases the contact and all of theirs (admin). */
static void api__contact_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  int64_t id;
  if (api_param_id(req, res, "id", &id) != 0) return;
  api_submitted(res, store_contact_delete(a->host.st, id, api_done_object, res));
}

int api_conversations_register(api *a) {
  int rc = 0;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/conversations", 0, api__conversations);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/conversations/{id}", 0, api__conversation);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/conversations/{id}", 0, api__conversation_patch);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/conversations/{id}/messages", API_UNAUDITED, api__reply);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/conversations/{id}/messages/{message_id}/retry", 0, api__retry);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/conversations/{id}/labels", 0, api__conversation_labels);
  /* unaudited like replies: the conversation keeps them, with their author */
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/conversations/{id}/notes", API_UNAUDITED, api__note);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/attachments/{id}", 0, api__attachment);
  /* unaudited: the reply that sends the file keeps it in the conversation */
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/attachments", API_UNAUDITED, api__upload);
  if (rc == 0) rc = http_route(a->http, "GET", "/files/{id}", api__file, a);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/canned", 0, api__canned);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/canned", API_ADMIN, api__canned_create);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/canned/{name}", API_ADMIN, api__canned_patch);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/canned/{name}", API_ADMIN, api__canned_delete);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/tickets/{id}", 0, api__ticket);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/tickets/{id}", 0, api__ticket_patch);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/pipelines", 0, api__pipelines);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/contacts", 0, api__contacts);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/contacts/{id}", 0, api__contact_get);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/contacts/{id}", 0, api__contact_patch);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/contacts/{id}/merge", 0, api__contact_merge);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/contacts/{id}", API_ADMIN, api__contact_delete);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/contacts/{id}/export", API_ADMIN, api__contact_export);
  return rc;
}
