/* api_internal.h — what the API's files share (not a public header): the api struct, the auth'd handler shape, reply helpers. */
#ifndef SB_CORE_API_INTERNAL_H
#define SB_CORE_API_INTERNAL_H

#include "api.h"

typedef struct sse_hub sse_hub;

enum { API_LOAD_START = 1, API_LOAD_RELOAD };

struct api {
  api_host host;
  http_server *http;
  struct api_rt **routes; /* registered route records, freed with the api */
  size_t nroutes;
  struct api_cache_entry *cache; /* recently verified tokens */
  size_t ncache;
  sse_hub *sse;
  json_t *owned; /* names of running API channels: {name: true} */
  json_t *yielded; /* stored API channels a config channel of their name wins over: {name: true} */
  json_t *changing; /* channels a POST, PATCH or DELETE is changing now: {name: true} */
  int loading;   /* 0, or why the stored API channels are being read: API_LOAD_START, API_LOAD_RELOAD */
  int freed;     /* api_free came while loading: the load's callback frees */
  /* The user whose token the request being handled carries (0 = a token of
   * no user). Set only while a handler runs synchronously: read it on entry,
   * never from a callback. */
  int64_t caller_user_id;
  const char *caller_token_hash; /* the hash of that token, likewise */
};

enum api_role { API_ROLE_AGENT = 1, API_ROLE_ADMIN = 2 };

/* A handler after authentication: role is the caller's. It must finish res. */
typedef void (*api_handler_fn)(api *a, const http_request *req, http_responder *res, int role);

/* Route flags: API_ADMIN refuses agent tokens with 403; a route that changes
 * something (any method but GET and HEAD) is recorded in the audit log when
 * it succeeds, unless API_UNAUDITED (replies: the conversation keeps them). */
enum { API_ADMIN = 1, API_UNAUDITED = 2 };

/* Adds one authenticated route. */
int api_route(api *a, const char *method, const char *pattern, int flags, api_handler_fn fn);

/* Route tables of each file. Return 0 or a negative errno. */
int api_conversations_register(api *a);
int api_admin_register(api *a);
int api_labels_register(api *a);
int api_channels_register(api *a);
int api_webhooks_register(api *a);
int api_reports_register(api *a);
int sse_register(api *a);
void sse_free(api *a);
/* A token was revoked: every open event stream checks its own again now,
 * and ends if it is gone (each also checks at every keep-alive). */
void sse_recheck_tokens(api *a);

/* Parses the body as a JSON object into *out (new reference). On failure
 * answers 400 and returns -EINVAL (res is then finished). */
int api_body_object(const http_request *req, http_responder *res, json_t **out);

/* Checks that key, when present, has the JSON type (JSON_STRING, JSON_OBJECT,
 * ...; JSON_INTEGER also accepts nothing else; -1 = boolean). null is
 * accepted when nullable. On a mismatch answers 400 naming the field and
 * returns -EINVAL. */
int api_check_type(http_responder *res, const json_t *body, const char *key, int type, int nullable);

/* Refuses keys of body not in the NULL-terminated list with 400 naming the
 * first unknown one. Returns 0 or -EINVAL (res finished). */
int api_check_keys(http_responder *res, const json_t *body, const char *const *keys);

/* The same for an object nested in the body under parent ("attachments"):
 * the error's field is "parent.key". */
int api_check_keys_in(http_responder *res, const json_t *obj, const char *const *keys, const char *parent);

/* Copies query parameter name (when present) into filter as a string: an
 * empty one is refused (an empty q is no search), and a cursor must be a
 * previous page's next_cursor. Returns 0, or -EINVAL after answering 400
 * naming the parameter. */
int api_query_into(const http_request *req, http_responder *res, const char *name, json_t *filter);
/* s as a positive decimal id (at most 18 digits, nothing else), or 0. */
int64_t api_is_id(const char *s);

/* Reads ?limit= (1..500) into filter. Returns 0 or -EINVAL (answered). */
int api_query_limit(const http_request *req, http_responder *res, json_t *filter);

/* The path parameter name as a positive id; answers 404 and returns -ENOENT
 * when it is not one. */
int api_param_id(const http_request *req, http_responder *res, const char *name, int64_t *id);

/* Answers a store failure: -ENOENT 404, -EINVAL 422, -EEXIST 409, else 500. */
void api_store_error(http_responder *res, int status, const char *err);

/* Store callbacks whose arg is the responder: answer 200 with the result,
 * as a list page ({items, next_cursor: null}) or already a page. */
void api_done_object(void *arg, int status, json_t *result, const char *err);
/* A phrase of a store refusal's sentence and the request field it is about. */
typedef struct api_field_hint {
  const char *phrase, *field;
} api_field_hint;
/* Answers like api_done_object (code 200) or api_done_created (201), but a
 * 422 whose sentence holds one of hints' phrases (NULL-ended) names its field. */
void api_done_hinted(http_responder *res, int status, json_t *result, const char *err, int code,
                     const api_field_hint *hints);
void api_done_created(void *arg, int status, json_t *result, const char *err);
void api_done_accepted(void *arg, int status, json_t *result, const char *err);
void api_done_list(void *arg, int status, json_t *result, const char *err);
void api_done_page(void *arg, int status, json_t *result, const char *err);

/* Answers 503 when a store submission was refused (rc < 0); returns rc. */
int api_submitted(http_responder *res, int rc);

#endif
