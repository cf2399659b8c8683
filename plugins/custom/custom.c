/* custom.c — the generic bridge channel: signed JSON webhooks in, signed JSON POSTs out.
 *
 * The wire contract is docs/channels/custom.md. In short: the integration
 * POSTs messages to /hooks/{channel}/messages and delivery receipts to
 * /hooks/{channel}/status; replies go to its webhook_url. Every request in
 * both directions carries X-Switchboard-Timestamp (unix seconds) and
 * X-Switchboard-Signature: sha256=<hex HMAC-SHA256(signing_secret,
 * timestamp "." raw body)>.
 *
 * Everything runs on the host's loop thread. The instance owns two lists:
 * inbound webhooks waiting for their commit (answered from emit_inbound's
 * done) and sends waiting for the webhook's answer. disconnect() answers
 * and completes both at once and detaches them, so a late callback only
 * frees its record and never touches the freed instance.
 */
#include <switchboard/plugin.h>

#include <jansson.h>
#include <webhook_json.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CUSTOM_VERSION "1.0.0"
#define CUSTOM_MAX_SKEW_S 300                          /* signed timestamps older or newer: 401 */
#define CUSTOM_MAX_BODY ((size_t)1024 * 1024)          /* inbound request bodies */
#define CUSTOM_MAX_ID 256                              /* bytes in ids the help desk stores */
#define CUSTOM_MAX_ATTACHMENTS 20                      /* per inbound message */
#define CUSTOM_MAX_ANSWER ((uint64_t)64 * 1024)        /* the webhook's answer body */
#define CUSTOM_MAX_REASON 300                          /* bytes of the integration's error text */
#define CUSTOM_MAX_RETRY_AFTER_MS (24u * 3600u * 1000u) /* a longer Retry-After is capped */
#define CUSTOM_MAX_UNIX_S INT64_C(253402300799)        /* 9999-12-31T23:59:59Z */

typedef struct custom_link {
  struct custom_link *prev, *next;
} custom_link;

/* One channel. Config pointers live until destroy(). */
typedef struct custom {
  const sb_host *host;
  sb_channel *channel;
  const sb_config *config;
  const char *webhook_url;
  const char *secret;
  size_t secret_len;
  int thread_from_integration;  /* thread_model is integration_thread_id */
  int64_t max_attachment_bytes; /* 0: no limit */
  uint32_t timeout_ms;
  int closing;
  custom_link inbound; /* custom_inbound waiting for their commit */
  custom_link sends;   /* custom_send waiting for the webhook's answer */
} custom;

/* One inbound webhook waiting for emit_inbound's done. c and responder are
 * NULL once disconnect() has answered it: done then only frees it. */
typedef struct custom_inbound {
  custom_link link; /* first: the list holds these by their link */
  custom *c;
  sb_responder *responder;
} custom_inbound;

/* One send() waiting for the webhook's answer. c and op are NULL once
 * disconnect() has completed it: the HTTP done then only frees it. */
typedef struct custom_send {
  custom_link link; /* first */
  custom *c;
  sb_send_op *op;
  sb_http_call *call;
} custom_send;

/* Why a request is refused: the HTTP status, the error code, the field it
 * names (may be empty) and a sentence for the integrator. */
typedef struct custom_problem {
  int status;
  const char *code;
  char field[96];
  char message[320];
} custom_problem;

static const char *const custom_thread_models[] = {"per_contact", "integration_thread_id", NULL};

static const sb_field custom_schema[] = {
    {"webhook_url", SB_FIELD_URL, SB_FIELD_REQUIRED, NULL, "Webhook URL",
     "Where replies are POSTed, signed, as JSON (http:// or https://).", NULL},
    {"signing_secret", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Signing secret",
     "Shared secret for the HMAC-SHA256 signatures in both directions; use 32 or more random bytes.", NULL},
    {"thread_model", SB_FIELD_ENUM, 0, "per_contact", "Thread model",
     "per_contact: one conversation per contact. integration_thread_id: the integration's thread_id names the "
     "conversation (set the channel's \"thread_policy\" to \"external\" too).",
     custom_thread_models},
    {"allowed_attachment_types", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Allowed attachment types",
     "MIME types (\"application/pdf\") or prefixes (\"image/\") accepted inbound; none given: any type.", NULL},
    {"max_attachment_bytes", SB_FIELD_INT, 0, "10485760", "Maximum attachment size",
     "Largest inbound attachment in bytes, by its declared size or inline data; 0: no limit.", NULL},
    {"request_timeout", SB_FIELD_DURATION, 0, "30s", "Request timeout",
     "How long a reply POST to webhook_url may take before it is retried.", NULL},
    {"display_name", SB_FIELD_STRING, 0, NULL, "Display name", "The integration's name as agents see it.", NULL},
    {"logo_url", SB_FIELD_URL, 0, NULL, "Logo URL", "The integration's logo as agents see it.", NULL},
    SB_FIELD_END,
};

/* --- small helpers ---------------------------------------------------------- */

/* An intrusive list whose nodes begin with their custom_link. */
static void custom__list_init(custom_link *head) { head->prev = head->next = head; }

static int custom__list_empty(const custom_link *head) { return head->next == head; }

static void custom__list_add(custom_link *head, custom_link *node) {
  node->next = head;
  node->prev = head->prev;
  head->prev->next = node;
  head->prev = node;
}

static void custom__list_remove(custom_link *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = node;
}

/* Fills p and returns -1, for `return custom__problem(...)`. Bytes outside
 * printable ASCII become '?', so the sentence is always valid JSON text. */
__attribute__((format(printf, 5, 6))) static int custom__problem(custom_problem *p, int status, const char *code,
                                                                 const char *field, const char *fmt, ...) {
  p->status = status;
  p->code = code;
  snprintf(p->field, sizeof(p->field), "%s", field != NULL ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof(p->message), fmt, ap);
  va_end(ap);
  for (char *s = p->message; *s != '\0'; s++) {
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) *s = '?';
  }
  return -1;
}

/* Answers r with a JSON body (and at most one extra header). */
static void custom__answer(const sb_host *host, sb_responder *r, int status, const char *body,
                           const sb_http_header *extra) {
  sb_http_header headers[2] = {{"Content-Type", "application/json"}, {NULL, NULL}};
  size_t n = 1;
  if (extra != NULL) headers[n++] = *extra;
  host->respond(r, status, headers, n, body, strlen(body));
}

/* Answers r with {"error":{"code","message","field"?}} and the header the
 * status calls for (Allow for 405, Retry-After for 503). */
static void custom__answer_problem(const sb_host *host, sb_responder *r, const custom_problem *p) {
  static const sb_http_header allow = {"Allow", "POST"};
  static const sb_http_header retry = {"Retry-After", "5"};
  const sb_http_header *extra = p->status == 405 ? &allow : p->status == 503 ? &retry : NULL;
  json_t *err = json_pack("{s:s, s:s}", "code", p->code, "message", p->message);
  if (err != NULL && p->field[0] != '\0') json_object_set_new(err, "field", json_string(p->field));
  json_t *root = err != NULL ? json_pack("{s:o}", "error", err) : NULL;
  char *body = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  custom__answer(host, r, p->status,
                 body != NULL ? body : "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}", extra);
  free(body);
}

/* Parses 1-12 decimal digits (unix seconds); returns 1 on success. */
static int custom__parse_seconds(const char *s, int64_t *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 12) return 0;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

static int custom__hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes exactly 64 hex digits into 32 bytes; returns 1 on success. */
static int custom__unhex32(const char *hex, uint8_t out[32]) {
  if (strlen(hex) != 64) return 0;
  for (size_t i = 0; i < 32; i++) {
    int hi = custom__hexval(hex[2 * i]), lo = custom__hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return 0;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return 1;
}

/* HMAC-SHA256(secret, ts "." body) into mac. Returns SB_OK or SB_ENOMEM. */
static int custom__mac(const custom *c, const char *ts, const char *body, size_t body_len, uint8_t mac[32]) {
  size_t ts_len = strlen(ts);
  char *data = malloc(ts_len + 1 + body_len);
  if (data == NULL) return SB_ENOMEM;
  memcpy(data, ts, ts_len);
  data[ts_len] = '.';
  if (body_len > 0) memcpy(data + ts_len + 1, body, body_len);
  c->host->hmac_sha256(c->secret, c->secret_len, data, ts_len + 1 + body_len, mac);
  free(data);
  return SB_OK;
}

/* True when s starts with http:// or https://, any case. */
static int custom__is_http_url(const char *s) {
  return s != NULL && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0) &&
         strlen(s) > (strncasecmp(s, "https://", 8) == 0 ? 8u : 7u);
}

/* --- inbound: signature ------------------------------------------------------- */

/* Checks the request's timestamp and signature. Returns 0, or -1 with a 401
 * (503 when out of memory) in p. */
static int custom__verify(const custom *c, const sb_http_request *req, custom_problem *p) {
  const char *ts = c->host->http_header(req, "X-Switchboard-Timestamp");
  const char *sig = c->host->http_header(req, "X-Switchboard-Signature");
  int64_t when;
  if (ts == NULL) {
    return custom__problem(p, 401, "unauthorized", NULL, "the X-Switchboard-Timestamp header is missing");
  }
  if (!custom__parse_seconds(ts, &when)) {
    return custom__problem(p, 401, "unauthorized", NULL, "X-Switchboard-Timestamp must be unix time in seconds");
  }
  int64_t now = c->host->now_ms() / 1000;
  if (when < now - CUSTOM_MAX_SKEW_S || when > now + CUSTOM_MAX_SKEW_S) {
    return custom__problem(p, 401, "unauthorized", NULL,
                           "X-Switchboard-Timestamp is more than 5 minutes off the help desk's clock; sign each "
                           "request with the current time");
  }
  uint8_t given[32], mac[32];
  if (sig == NULL) {
    return custom__problem(p, 401, "unauthorized", NULL, "the X-Switchboard-Signature header is missing");
  }
  if (strncmp(sig, "sha256=", 7) != 0 || !custom__unhex32(sig + 7, given)) {
    return custom__problem(p, 401, "unauthorized", NULL,
                           "X-Switchboard-Signature must be sha256= followed by 64 hex digits");
  }
  if (custom__mac(c, ts, req->body, req->body_len, mac) != SB_OK) {
    return custom__problem(p, 503, "unavailable", NULL, "out of memory; deliver it again");
  }
  if (!c->host->equal_ct(mac, given, sizeof(mac))) {
    return custom__problem(p, 401, "unauthorized", NULL,
                           "the signature does not match: sign timestamp + \".\" + the raw body with the "
                           "channel's signing secret (HMAC-SHA256, lowercase hex)");
  }
  return 0;
}

/* --- inbound: fields ------------------------------------------------------------ */

/* Reads obj[key] as a string into *out. Absent or null: *out = NULL, and a
 * 400 when required. A required string must not be empty; ids (max_len > 0)
 * are at most max_len bytes. field names the member in errors. */
static int custom__string(const cJSON *obj, const char *key, const char *field, int required, size_t max_len,
                          const char **out, custom_problem *p) {
  const cJSON *v = wj_get(obj, key);
  *out = NULL;
  if (v == NULL || cJSON_IsNull(v)) {
    return required ? custom__problem(p, 400, "invalid", field, "%s is required", field) : 0;
  }
  const char *s = wj_string(v);
  if (s == NULL) {
    return custom__problem(p, 400, "invalid", field, "%s must be a string%s", field, required ? "" : " or null");
  }
  if (required && s[0] == '\0') {
    return custom__problem(p, 400, "invalid", field, "%s must not be empty", field);
  }
  if (max_len > 0 && strlen(s) > max_len) {
    return custom__problem(p, 400, "invalid", field, "%s must be at most %zu bytes", field, max_len);
  }
  *out = s;
  return 0;
}

/* Reads an optional unix-seconds member into *ms (0 when absent or null). */
static int custom__timestamp(const cJSON *obj, int64_t *ms, custom_problem *p) {
  const cJSON *v = wj_get(obj, "timestamp");
  int64_t s = 0;
  *ms = 0;
  if (v == NULL || cJSON_IsNull(v)) return 0;
  if (!wj_integer(v, &s) || s < 0 || s > CUSTOM_MAX_UNIX_S) {
    return custom__problem(p, 400, "invalid", "timestamp",
                           "timestamp must be an integer: unix time in seconds (not milliseconds)");
  }
  *ms = s * 1000;
  return 0;
}

/* Parses the body as a JSON object. Returns it (a new reference) or NULL
 * with a 400 in p. Duplicate keys are refused: they make a signed body
 * ambiguous. */
static cJSON *custom__parse_object(const sb_http_request *req, custom_problem *p) {
  char why[160];
  cJSON *root = wj_parse(req->body, req->body_len, WJ_REJECT_DUPLICATES, why, sizeof(why));
  if (root == NULL) {
    custom__problem(p, 400, "invalid", NULL, "the body is not valid JSON: %s", why);
    return NULL;
  }
  if (!cJSON_IsObject(root)) {
    wj_free(root);
    custom__problem(p, 400, "invalid", NULL, "the body must be a JSON object");
    return NULL;
  }
  return root;
}

/* Reads the sender object into s. */
static int custom__sender(const cJSON *root, sb_sender *s, custom_problem *p) {
  const cJSON *v = wj_get(root, "sender");
  if (v == NULL || cJSON_IsNull(v)) return custom__problem(p, 400, "invalid", "sender", "sender is required");
  if (!cJSON_IsObject(v)) return custom__problem(p, 400, "invalid", "sender", "sender must be an object");
  s->kind = SB_IDENTITY_CUSTOM;
  if (custom__string(v, "id", "sender.id", 1, CUSTOM_MAX_ID, &s->id, p) != 0 ||
      custom__string(v, "name", "sender.name", 0, 0, &s->name, p) != 0 ||
      custom__string(v, "email", "sender.email", 0, 0, &s->email, p) != 0 ||
      custom__string(v, "phone", "sender.phone", 0, 0, &s->phone, p) != 0 ||
      custom__string(v, "avatar_url", "sender.avatar_url", 0, 0, &s->avatar_url, p) != 0) {
    return -1;
  }
  return 0;
}

/* Frees an attachments array from custom__attachments and the content it
 * decoded. NULL-safe. */
static void custom__attachments_free(sb_attachment *a, size_t n) {
  if (a == NULL) return;
  for (size_t i = 0; i < n; i++) free((char *)a[i].data);
  free(a);
}

/* Decodes attachment content given inline as base64 (RFC 4648, standard
 * alphabet, padded) into a malloc'd buffer. Returns 0, or -1 when it is not
 * base64 or memory ran out. */
static int custom__unbase64(const char *b64, const char **out, size_t *len) {
  size_t in_len = strlen(b64);
  char *bin = malloc(in_len / 4 * 3 + 3);
  const char *end = NULL;
  if (bin == NULL) return -1;
  if (sodium_base642bin((unsigned char *)bin, in_len / 4 * 3 + 3, b64, in_len, NULL, len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64 + in_len) {
    free(bin);
    return -1;
  }
  *out = bin;
  return 0;
}

/* Reads the attachments array into *out (calloc'd, the caller frees with
 * custom__attachments_free; NULL when there are none). Strings point into
 * root; content given inline as base64 "data" is decoded into data and
 * data_len, and then is the size. */
static int custom__attachments(const cJSON *root, sb_attachment **out, size_t *count, custom_problem *p) {
  const cJSON *arr = wj_get(root, "attachments");
  *out = NULL;
  *count = 0;
  if (arr == NULL || cJSON_IsNull(arr)) return 0;
  if (!cJSON_IsArray(arr)) {
    return custom__problem(p, 400, "invalid", "attachments", "attachments must be an array or null");
  }
  size_t n = wj_size(arr);
  if (n == 0) return 0;
  if (n > CUSTOM_MAX_ATTACHMENTS) {
    return custom__problem(p, 400, "invalid", "attachments", "a message may carry at most %d attachments",
                           CUSTOM_MAX_ATTACHMENTS);
  }
  sb_attachment *a = calloc(n, sizeof(*a));
  if (a == NULL) return custom__problem(p, 503, "unavailable", NULL, "out of memory; deliver it again");
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    char field[64];
    snprintf(field, sizeof(field), "attachments[%zu]", i);
    if (!cJSON_IsObject(item)) {
      custom__attachments_free(a, n);
      return custom__problem(p, 400, "invalid", field, "%s must be an object", field);
    }
    char f_url[64], f_type[64], f_name[64], f_size[64], f_data[64];
    snprintf(f_url, sizeof(f_url), "attachments[%zu].url", i);
    snprintf(f_type, sizeof(f_type), "attachments[%zu].mime_type", i);
    snprintf(f_name, sizeof(f_name), "attachments[%zu].filename", i);
    snprintf(f_size, sizeof(f_size), "attachments[%zu].size", i);
    snprintf(f_data, sizeof(f_data), "attachments[%zu].data", i);
    const char *b64 = NULL;
    if (custom__string(item, "data", f_data, 0, 0, &b64, p) != 0 ||
        custom__string(item, "url", f_url, b64 == NULL, 0, &a[i].url, p) != 0 ||
        custom__string(item, "mime_type", f_type, 0, 0, &a[i].mime_type, p) != 0 ||
        custom__string(item, "filename", f_name, 0, 0, &a[i].filename, p) != 0) {
      custom__attachments_free(a, n);
      return -1;
    }
    if (a[i].url != NULL && !custom__is_http_url(a[i].url)) {
      custom__attachments_free(a, n);
      return custom__problem(p, 400, "invalid", f_url, "%s must be an http:// or https:// URL", f_url);
    }
    if (a[i].mime_type != NULL && (strchr(a[i].mime_type, '/') == NULL || a[i].mime_type[0] == '/')) {
      custom__attachments_free(a, n);
      return custom__problem(p, 400, "invalid", f_type, "%s must be a MIME type such as image/png", f_type);
    }
    const cJSON *size = wj_get(item, "size");
    int has_size = size != NULL && !cJSON_IsNull(size);
    if (has_size) {
      int64_t v = 0;
      if (!wj_integer(size, &v) || v < 0) {
        custom__attachments_free(a, n);
        return custom__problem(p, 400, "invalid", f_size, "%s must be a whole number of bytes", f_size);
      }
      a[i].size = (uint64_t)v;
    }
    if (b64 != NULL) {
      if (custom__unbase64(b64, &a[i].data, &a[i].data_len) != 0) {
        custom__attachments_free(a, n);
        return custom__problem(p, 400, "invalid", f_data, "%s must be base64 (RFC 4648, standard alphabet, padded)",
                               f_data);
      }
      if (has_size && a[i].size != a[i].data_len) {
        size_t got = a[i].data_len;
        unsigned long long said = (unsigned long long)a[i].size;
        custom__attachments_free(a, n);
        return custom__problem(p, 400, "invalid", f_size, "%s is %llu but data holds %zu bytes", f_size, said, got);
      }
      a[i].size = a[i].data_len;
    }
    i++;
  }
  *out = a;
  *count = n;
  return 0;
}

/* True when the type (parameters after ';' ignored) is on the channel's
 * list: an exact type or a "type/" prefix, case-insensitively. No list:
 * any type. */
static int custom__type_allowed(const custom *c, const char *type) {
  size_t n = c->host->config_count(c->config, "allowed_attachment_types");
  if (n == 0) return 1;
  if (type == NULL) return 0;
  size_t len = strcspn(type, ";");
  while (len > 0 && (type[len - 1] == ' ' || type[len - 1] == '\t')) len--;
  for (size_t i = 0; i < n; i++) {
    const char *allowed = c->host->config_get_at(c->config, "allowed_attachment_types", i);
    size_t alen = allowed != NULL ? strlen(allowed) : 0;
    if (alen == 0) continue;
    if (allowed[alen - 1] == '/' ? (len > alen && strncasecmp(type, allowed, alen) == 0)
                                 : (len == alen && strncasecmp(type, allowed, alen) == 0)) {
      return 1;
    }
  }
  return 0;
}

/* Applies the channel's attachment policy: 413 over the size limit, 415 for
 * a type it does not take. */
static int custom__attachment_policy(const custom *c, const sb_attachment *a, size_t n, custom_problem *p) {
  for (size_t i = 0; i < n; i++) {
    char field[96];
    if (c->max_attachment_bytes > 0 && a[i].size > (uint64_t)c->max_attachment_bytes) {
      snprintf(field, sizeof(field), "attachments[%zu].size", i);
      return custom__problem(p, 413, "too_large", field,
                             "attachments[%zu] is %llu bytes; this channel takes attachments of at most %lld bytes",
                             i, (unsigned long long)a[i].size, (long long)c->max_attachment_bytes);
    }
    if (!custom__type_allowed(c, a[i].mime_type)) {
      snprintf(field, sizeof(field), "attachments[%zu].mime_type", i);
      if (a[i].mime_type == NULL) {
        return custom__problem(p, 415, "unsupported_media_type", field,
                               "attachments[%zu] has no mime_type and this channel takes only listed types", i);
      }
      return custom__problem(p, 415, "unsupported_media_type", field,
                             "attachments[%zu] is of type %.80s, which this channel does not take", i,
                             a[i].mime_type);
    }
  }
  return 0;
}

/* Reads and checks every field of an inbound message into m (strings
 * pointing into root; *attachments calloc'd for the caller to free). */
static int custom__read_message(const custom *c, const cJSON *root, sb_inbound_message *m,
                                sb_attachment **attachments, custom_problem *p) {
  memset(m, 0, sizeof(*m));
  m->struct_size = sizeof(*m);
  *attachments = NULL;
  const char *thread_id = NULL;
  size_t count = 0;
  if (custom__string(root, "id", "id", 1, CUSTOM_MAX_ID, &m->external_id, p) != 0 ||
      custom__string(root, "thread_id", "thread_id", 0, CUSTOM_MAX_ID, &thread_id, p) != 0 ||
      custom__sender(root, &m->sender, p) != 0 ||
      custom__string(root, "text", "text", 0, 0, &m->text, p) != 0 ||
      custom__string(root, "html", "html", 0, 0, &m->html, p) != 0 ||
      custom__string(root, "reply_to", "reply_to", 0, CUSTOM_MAX_ID, &m->reply_to_external_id, p) != 0 ||
      custom__timestamp(root, &m->timestamp_ms, p) != 0 ||
      custom__attachments(root, attachments, &count, p) != 0) {
    return -1;
  }
  if (c->thread_from_integration && (thread_id == NULL || thread_id[0] == '\0')) {
    custom__attachments_free(*attachments, count);
    *attachments = NULL;
    return custom__problem(p, 400, "invalid", "thread_id",
                           "thread_id is required: this channel's thread_model is integration_thread_id");
  }
  if ((m->text == NULL || m->text[0] == '\0') && (m->html == NULL || m->html[0] == '\0') && count == 0) {
    custom__attachments_free(*attachments, count);
    *attachments = NULL;
    return custom__problem(p, 400, "invalid", "text", "a message needs text, html or attachments");
  }
  if (custom__attachment_policy(c, *attachments, count, p) != 0) {
    custom__attachments_free(*attachments, count);
    *attachments = NULL;
    return -1;
  }
  /* In per_contact mode the integration's thread id is not a thread key:
   * the router keeps one conversation per contact. */
  m->external_thread_id = c->thread_from_integration ? thread_id : NULL;
  if (m->reply_to_external_id != NULL && m->reply_to_external_id[0] == '\0') m->reply_to_external_id = NULL;
  m->attachments = *attachments;
  m->attachment_count = count;
  return 0;
}

/* --- inbound: handlers ------------------------------------------------------------ */

/* emit_inbound's done: answers the webhook now that the message is stored
 * (or not), unless disconnect() answered it already. */
static void custom__stored(void *arg, int status, const char *message_id, int duplicate) {
  custom_inbound *in = arg;
  (void)duplicate; /* a redelivery gets the same answer: the original's id */
  if (in->c != NULL) {
    custom *c = in->c;
    custom__list_remove(&in->link);
    if (status == SB_OK && message_id != NULL) {
      /* The host's ids are decimal digits: written directly, as JSON needs
       * no escaping for them (jansson's pack and dump cost a tenth of the
       * loop's work per webhook); anything else goes through jansson. */
      char fast[96];
      size_t n = strspn(message_id, "0123456789");
      int plain = message_id[n] == '\0' && n > 0 && n < 64;
      if (plain) {
        memcpy(fast, "{\"message_id\":\"", 15);
        memcpy(fast + 15, message_id, n);
        memcpy(fast + 15 + n, "\"}", 3);
      }
      json_t *root = plain ? NULL : json_pack("{s:s}", "message_id", message_id);
      char *body = plain ? fast : root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
      json_decref(root);
      if (body != NULL) {
        custom__answer(c->host, in->responder, 200, body, NULL);
        if (body != fast) free(body);
      } else {
        custom_problem p;
        custom__problem(&p, 503, "unavailable", NULL, "out of memory; deliver it again");
        custom__answer_problem(c->host, in->responder, &p);
      }
    } else {
      custom_problem p;
      if (status == SB_EINVAL) {
        custom__problem(&p, 400, "invalid", NULL, "the help desk refused the message");
      } else if (status == SB_EEXIST) {
        custom__problem(&p, 409, "conflict", "id",
                        "this id is the one your service gave a reply of ours; give each message you send us an "
                        "id of its own");
      } else {
        custom__problem(&p, 503, "unavailable", NULL, "the message could not be stored (code %d); deliver it again",
                        status);
      }
      custom__answer_problem(c->host, in->responder, &p);
    }
  }
  free(in);
}

/* POST /messages: verified, validated, handed to the router; answered in
 * custom__stored once durable. Returns -1 with p filled when refused now,
 * 0 when the answer will come later, or SB_ENOMEM. */
static int custom__messages(custom *c, const sb_http_request *req, sb_responder *r, custom_problem *p) {
  cJSON *root = custom__parse_object(req, p);
  if (root == NULL) return -1;
  sb_inbound_message m;
  sb_attachment *attachments = NULL;
  if (custom__read_message(c, root, &m, &attachments, p) != 0) {
    wj_free(root);
    return -1;
  }
  custom_inbound *in = calloc(1, sizeof(*in));
  if (in == NULL) {
    custom__attachments_free(attachments, m.attachment_count);
    wj_free(root);
    return custom__problem(p, 503, "unavailable", NULL, "out of memory; deliver it again");
  }
  in->c = c;
  in->responder = r;
  custom__list_add(&c->inbound, &in->link);
  int rc = c->host->emit_inbound(c->channel, &m, custom__stored, in);
  custom__attachments_free(attachments, m.attachment_count); /* emit_inbound copied the message */
  wj_free(root);
  if (rc != SB_OK) {
    custom__list_remove(&in->link);
    free(in);
    if (rc == SB_EINVAL) return custom__problem(p, 400, "invalid", NULL, "the help desk refused the message");
    return custom__problem(p, 503, "unavailable", NULL, "the help desk cannot take messages now (code %d)", rc);
  }
  return 0;
}

/* POST /status: a delivery receipt for a message the integration got from
 * us, named by the id it answered. Returns 0 when answered, -1 with p. */
static int custom__status(custom *c, const sb_http_request *req, sb_responder *r, custom_problem *p) {
  cJSON *root = custom__parse_object(req, p);
  if (root == NULL) return -1;
  sb_status_update u = {.struct_size = sizeof(u)};
  const char *status = NULL;
  if (custom__string(root, "id", "id", 1, CUSTOM_MAX_ID, &u.external_id, p) != 0 ||
      custom__string(root, "status", "status", 1, 0, &status, p) != 0 ||
      custom__string(root, "error", "error", 0, 0, &u.error, p) != 0 ||
      custom__timestamp(root, &u.timestamp_ms, p) != 0) {
    wj_free(root);
    return -1;
  }
  if (strcmp(status, "delivered") == 0) {
    u.status = SB_STATUS_DELIVERED;
  } else if (strcmp(status, "read") == 0) {
    u.status = SB_STATUS_READ;
  } else if (strcmp(status, "failed") == 0) {
    u.status = SB_STATUS_FAILED;
    if (u.error == NULL || u.error[0] == '\0') u.error = "the integration reported a failure without a reason";
  } else {
    wj_free(root);
    return custom__problem(p, 400, "invalid", "status", "status must be \"delivered\", \"read\" or \"failed\"");
  }
  if (u.status != SB_STATUS_FAILED) u.error = NULL;
  int rc = c->host->emit_status(c->channel, &u);
  wj_free(root);
  if (rc == SB_EINVAL) return custom__problem(p, 400, "invalid", NULL, "the help desk refused the status");
  if (rc != SB_OK) return custom__problem(p, 503, "unavailable", NULL, "the help desk cannot take statuses now");
  custom__answer(c->host, r, 200, "{\"ok\":true}", NULL);
  return 0;
}

/* receive(): routes /messages and /status (POST only), checks size and
 * signature first. Every refusal is a JSON error. */
static int custom__receive(void *instance, const sb_http_request *req, sb_responder *r) {
  custom *c = instance;
  custom_problem p;
  const char *sub = req->subpath != NULL ? req->subpath : "";
  int is_messages = strcmp(sub, "/messages") == 0, is_status = strcmp(sub, "/status") == 0;
  int rc;
  if (!is_messages && !is_status) {
    rc = custom__problem(&p, 404, "not_found", NULL, "no such endpoint: POST /messages or /status");
  } else if (req->method == NULL || strcmp(req->method, "POST") != 0) {
    rc = custom__problem(&p, 405, "method_not_allowed", NULL, "use POST");
  } else if (c->closing) {
    rc = custom__problem(&p, 503, "unavailable", NULL, "the channel is closing; deliver it again");
  } else if (req->body_len > CUSTOM_MAX_BODY) {
    rc = custom__problem(&p, 413, "too_large", NULL, "the body is larger than %zu bytes", CUSTOM_MAX_BODY);
  } else if ((rc = custom__verify(c, req, &p)) == 0) {
    rc = is_messages ? custom__messages(c, req, r, &p) : custom__status(c, req, r, &p);
  }
  if (rc != 0) custom__answer_problem(c->host, r, &p);
  return SB_OK;
}

/* --- outbound -------------------------------------------------------------------- */

/* Base64 (RFC 4648, padded) of len bytes; malloc'd, or NULL. */
static char *custom__base64(const char *data, size_t len) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (out == NULL) return NULL;
  const unsigned char *in = (const unsigned char *)data;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    out[o++] = abc[(v >> 18) & 63];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? abc[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

/* Sets obj[key] to s, or null when s is NULL. Returns 0, or -1 when s is
 * not valid UTF-8 or memory ran out. */
static int custom__set_string(json_t *obj, const char *key, const char *s) {
  return json_object_set_new(obj, key, s != NULL ? json_string(s) : json_null());
}

/* Builds the outbound body (see docs/channels/custom.md). Returns a malloc'd
 * compact JSON text, or NULL when a string is not valid UTF-8 or memory ran out. */
static char *custom__outbound_body(const sb_outbound_message *m) {
  json_t *root = json_object(), *recipient = json_object(), *atts = json_array();
  int bad = root == NULL || recipient == NULL || atts == NULL;
  if (!bad) {
    bad |= custom__set_string(recipient, "id", m->recipient_id) != 0;
    if (m->recipient_name != NULL) bad |= custom__set_string(recipient, "name", m->recipient_name) != 0;
    for (size_t i = 0; i < m->attachment_count && !bad; i++) {
      const sb_attachment *a = &m->attachments[i];
      json_t *o = json_object();
      bad |= o == NULL || json_array_append_new(atts, o) != 0;
      if (bad) break;
      /* a file the help desk holds has its API path, which the integration
       * cannot fetch: it goes as "url": null with the bytes in "data" */
      bad |= custom__set_string(o, "url", a->data == NULL ? a->url : NULL) != 0;
      bad |= custom__set_string(o, "mime_type", a->mime_type) != 0;
      bad |= custom__set_string(o, "filename", a->filename) != 0;
      bad |= json_object_set_new(o, "size", a->size > 0 ? json_integer((json_int_t)a->size) : json_null()) != 0;
      char *b64 = NULL; /* data is null for an attachment given as a link */
      if (a->data != NULL) bad |= (b64 = custom__base64(a->data, a->data_len)) == NULL;
      bad |= custom__set_string(o, "data", b64) != 0;
      free(b64);
    }
    bad |= custom__set_string(root, "id", m->message_id) != 0;
    bad |= custom__set_string(root, "thread_id", m->external_thread_id) != 0;
    bad |= json_object_set(root, "recipient", recipient) != 0;
    bad |= custom__set_string(root, "text", m->text) != 0;
    bad |= custom__set_string(root, "html", m->html) != 0;
    bad |= json_object_set(root, "attachments", atts) != 0;
    bad |= custom__set_string(root, "reply_to", m->reply_to_external_id) != 0;
    if (m->subject != NULL) bad |= custom__set_string(root, "subject", m->subject) != 0;
    bad |= json_object_set_new(root, "automatic", json_boolean(m->flags & SB_OUT_AUTOMATIC)) != 0;
    if (m->agent_name != NULL || m->agent_email != NULL) {
      json_t *agent = json_object();
      bad |= agent == NULL || json_object_set_new(root, "agent", agent) != 0;
      if (!bad) {
        bad |= custom__set_string(agent, "name", m->agent_name) != 0;
        bad |= custom__set_string(agent, "email", m->agent_email) != 0;
        if (m->agent_avatar_url != NULL) bad |= custom__set_string(agent, "avatar_url", m->agent_avatar_url) != 0;
      }
    }
  }
  char *body = bad ? NULL : json_dumps(root, JSON_COMPACT);
  json_decref(recipient);
  json_decref(atts);
  json_decref(root);
  return body;
}

/* Finds a header of the webhook's answer, case-insensitively; NULL if absent. */
static const char *custom__response_header(const sb_http_client_response *res, const char *name) {
  for (size_t i = 0; i < res->header_count; i++) {
    if (res->headers[i].name != NULL && strcasecmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  }
  return NULL;
}

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
static int64_t custom__days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into unix ms;
 * returns 1 on success. */
static int custom__parse_http_date(const char *s, int64_t *ms) {
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  char mon[4] = "";
  int day, year, hh, mm, ss, used = 0;
  if (sscanf(s, "%*3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", &day, mon, &year, &hh, &mm, &ss, &used) != 6 ||
      used == 0 || strlen(mon) != 3) {
    return 0;
  }
  const char *found = strstr(months, mon);
  if (found == NULL || (found - months) % 3 != 0 || day < 1 || day > 31 || year < 1970 || hh > 23 || mm > 59 ||
      ss > 60) {
    return 0;
  }
  int month = (int)(found - months) / 3 + 1;
  *ms = ((custom__days_from_civil(year, month, day) * 86400) + hh * 3600 + mm * 60 + ss) * 1000;
  return 1;
}

/* The wait a Retry-After header asks for (delta seconds or an HTTP-date),
 * capped at a day; 0 when absent or unreadable (the host's backoff). */
static uint32_t custom__retry_after(const custom *c, const sb_http_client_response *res) {
  const char *v = custom__response_header(res, "Retry-After");
  if (v == NULL) return 0;
  while (*v == ' ' || *v == '\t') v++;
  int64_t ms = 0;
  if (*v >= '0' && *v <= '9') {
    int64_t seconds = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
      seconds = seconds * 10 + (*v - '0');
      if (seconds > CUSTOM_MAX_RETRY_AFTER_MS / 1000) break;
    }
    ms = seconds * 1000;
  } else if (custom__parse_http_date(v, &ms)) {
    ms -= c->host->now_ms();
  } else {
    return 0;
  }
  if (ms < 0) return 0;
  return ms > CUSTOM_MAX_RETRY_AFTER_MS ? CUSTOM_MAX_RETRY_AFTER_MS : (uint32_t)ms;
}

/* Copies the answer's "error" text ({"error":"..."} or
 * {"error":{"message":"..."}}) into out, cut at a character boundary and
 * with control characters as spaces. Returns 1 when there was one. */
static int custom__error_text(const sb_http_client_response *res, char *out, size_t outlen) {
  json_t *root = json_loadb(res->body != NULL ? res->body : "", res->body_len, 0, NULL);
  const json_t *e = json_object_get(root, "error");
  if (json_is_object(e)) e = json_object_get(e, "message");
  const char *text = json_string_value(e);
  int found = text != NULL && text[0] != '\0';
  if (found) {
    size_t n = strlen(text);
    if (n > outlen - 1) {
      n = outlen - 1;
      while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--; /* do not split a UTF-8 sequence */
    }
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
    out[n] = '\0';
  }
  json_decref(root);
  return found;
}

/* Reads the external id from a 2xx answer: {"id": "..."} (a string, or an
 * integer written in decimal). Returns 1 when found. */
static int custom__answer_id(const sb_http_client_response *res, char *out, size_t outlen) {
  json_t *root = json_loadb(res->body != NULL ? res->body : "", res->body_len, 0, NULL);
  const json_t *id = json_object_get(root, "id");
  int found = 0;
  if (json_is_string(id) && json_string_length(id) > 0 && json_string_length(id) <= CUSTOM_MAX_ID) {
    snprintf(out, outlen, "%s", json_string_value(id));
    found = 1;
  } else if (json_is_integer(id)) {
    snprintf(out, outlen, "%lld", (long long)json_integer_value(id));
    found = 1;
  }
  json_decref(root);
  return found;
}

/* Completes one send from the webhook's answer: 2xx with an id → ok;
 * 429, 5xx and transport trouble → retry (Retry-After honoured); any other
 * answer → fail with the integration's error text. */
static void custom__complete(const custom *c, sb_send_op *op, const sb_http_client_response *res) {
  const sb_host *h = c->host;
  char reason[CUSTOM_MAX_REASON + 96], text[CUSTOM_MAX_REASON + 1], id[CUSTOM_MAX_ID + 1];
  int code = res->http_status;
  if (res->status != SB_OK) {
    if (res->status == SB_ECANCELED) {
      snprintf(reason, sizeof(reason), "cancelled before the integration answered");
    } else if (res->status == SB_ETIMEDOUT) {
      snprintf(reason, sizeof(reason), "the integration did not answer within %u ms", (unsigned)c->timeout_ms);
    } else if (res->status == SB_EFBIG) {
      snprintf(reason, sizeof(reason), "the integration's answer was larger than %llu bytes",
               (unsigned long long)CUSTOM_MAX_ANSWER);
    } else {
      snprintf(reason, sizeof(reason), "could not reach webhook_url: %s",
               res->error != NULL && res->error[0] != '\0' ? res->error : "transfer failed");
    }
    h->log(c->channel, SB_LOG_WARN, "send will be retried: %s", reason);
    h->send_retry(op, 0, reason);
  } else if (code >= 200 && code <= 299) {
    if (custom__answer_id(res, id, sizeof(id))) {
      h->send_ok(op, id);
    } else {
      snprintf(reason, sizeof(reason),
               "the integration answered HTTP %d without an \"id\" for the message; it must answer {\"id\": "
               "\"<its message id>\"}",
               code);
      h->log(c->channel, SB_LOG_WARN, "%s", reason);
      h->send_fail(op, reason);
    }
  } else if (code == 429 || (code >= 500 && code <= 599)) {
    uint32_t after = custom__retry_after(c, res);
    int has_text = custom__error_text(res, text, sizeof(text));
    snprintf(reason, sizeof(reason), "the integration answered HTTP %d%s%s%s", code,
             code == 429 ? " (rate limited)" : "", has_text ? ": " : "", has_text ? text : "");
    h->log(c->channel, SB_LOG_WARN, "send will be retried after %u ms: %s", (unsigned)after, reason);
    h->send_retry(op, after, reason);
  } else if (code >= 400 && code <= 499) {
    if (custom__error_text(res, text, sizeof(text))) {
      snprintf(reason, sizeof(reason), "%s", text);
    } else {
      snprintf(reason, sizeof(reason), "the integration refused the message with HTTP %d", code);
    }
    h->send_fail(op, reason);
  } else {
    snprintf(reason, sizeof(reason),
             "the integration answered HTTP %d, which does not confirm the message (redirects are not followed); "
             "check webhook_url",
             code);
    h->send_fail(op, reason);
  }
}

/* http_request's done: completes the send unless disconnect() did. */
static void custom__sent(void *arg, const sb_http_client_response *res) {
  custom_send *s = arg;
  if (s->c != NULL) {
    custom__list_remove(&s->link);
    custom__complete(s->c, s->op, res);
  }
  free(s);
}

/* send(): POSTs the signed message to webhook_url; completed in custom__sent. */
static int custom__send(void *instance, const sb_outbound_message *m, sb_send_op *op) {
  custom *c = instance;
  if (c->closing) return SB_ECANCELED;
  if (m->message_id == NULL || m->recipient_id == NULL) {
    c->host->send_fail(op, "the message has no id or no recipient");
    return SB_OK;
  }
  char *body = custom__outbound_body(m);
  if (body == NULL) {
    c->host->send_fail(op, "the message could not be written as JSON (its text is not valid UTF-8)");
    return SB_OK;
  }
  size_t body_len = strlen(body);
  char ts[24], sig[8 + 64];
  snprintf(ts, sizeof(ts), "%lld", (long long)(c->host->now_ms() / 1000));
  uint8_t mac[32];
  custom_send *s = calloc(1, sizeof(*s));
  if (s == NULL || custom__mac(c, ts, body, body_len, mac) != SB_OK) {
    free(s);
    free(body);
    return SB_ENOMEM;
  }
  memcpy(sig, "sha256=", 7);
  for (size_t i = 0; i < 32; i++) snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
  const sb_http_header headers[] = {
      {"Content-Type", "application/json"},
      {"User-Agent", "Switchboard-custom/" CUSTOM_VERSION},
      {"X-Switchboard-Timestamp", ts},
      {"X-Switchboard-Signature", sig},
      {"Idempotency-Key", m->idempotency_key != NULL ? m->idempotency_key : m->message_id},
  };
  sb_http_client_request rq = {
      .struct_size = sizeof(rq),
      .timeout_ms = c->timeout_ms,
      .method = "POST",
      .url = c->webhook_url,
      .headers = headers,
      .header_count = sizeof(headers) / sizeof(headers[0]),
      .body = body,
      .body_len = body_len,
      .max_response_bytes = CUSTOM_MAX_ANSWER,
  };
  s->c = c;
  s->op = op;
  s->call = c->host->http_request(c->channel, &rq, custom__sent, s);
  free(body);
  if (s->call == NULL) {
    free(s);
    c->host->log(c->channel, SB_LOG_WARN, "send: the host did not take the request to webhook_url");
    return SB_EIO;
  }
  custom__list_add(&c->sends, &s->link);
  return SB_OK;
}

/* --- lifecycle ------------------------------------------------------------------- */

/* validate(): what the schema cannot say. Never names a secret's value. */
static int custom__validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  const char *url = host->config_get(cfg, "webhook_url");
  const char *secret = host->config_get(cfg, "signing_secret");
  const char *logo = host->config_get(cfg, "logo_url");
  if (!custom__is_http_url(url)) {
    snprintf(err, errlen, "setting \"webhook_url\" must be an http:// or https:// URL");
    return SB_EINVAL;
  }
  if (secret == NULL || secret[0] == '\0') {
    snprintf(err, errlen, "credential \"signing_secret\" must not be empty");
    return SB_EINVAL;
  }
  if (logo != NULL && !custom__is_http_url(logo)) {
    snprintf(err, errlen, "setting \"logo_url\" must be an http:// or https:// URL");
    return SB_EINVAL;
  }
  if (host->config_int(cfg, "max_attachment_bytes", 0) < 0) {
    snprintf(err, errlen, "setting \"max_attachment_bytes\" must be 0 (no limit) or more");
    return SB_EINVAL;
  }
  int64_t timeout = host->config_int(cfg, "request_timeout", 30000);
  if (timeout < 100 || timeout > 600000) {
    snprintf(err, errlen, "setting \"request_timeout\" must be between 100ms and 10m");
    return SB_EINVAL;
  }
  size_t n = host->config_count(cfg, "allowed_attachment_types");
  for (size_t i = 0; i < n; i++) {
    const char *t = host->config_get_at(cfg, "allowed_attachment_types", i);
    const char *slash = t != NULL ? strchr(t, '/') : NULL;
    if (slash == NULL || slash == t || strchr(slash + 1, '/') != NULL || strpbrk(t, " \t;,") != NULL) {
      snprintf(err, errlen,
               "setting \"allowed_attachment_types\" value %zu must be a MIME type (\"application/pdf\") or a "
               "prefix ending in / (\"image/\")",
               i + 1);
      return SB_EINVAL;
    }
  }
  return SB_OK;
}

/* create(): reads the settings into a new instance (no I/O). Returns SB_OK,
 * SB_EINVAL with a sentence in err, or SB_ENOMEM. */
static int custom__create(const sb_host *host, sb_channel *channel, const sb_config *cfg, void **instance, char *err,
                          size_t errlen) {
  if (custom__validate(host, cfg, err, errlen) != SB_OK) return SB_EINVAL;
  custom *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
  }
  c->host = host;
  c->channel = channel;
  c->config = cfg;
  c->webhook_url = host->config_get(cfg, "webhook_url");
  c->secret = host->config_get(cfg, "signing_secret");
  c->secret_len = strlen(c->secret);
  const char *model = host->config_get(cfg, "thread_model");
  c->thread_from_integration = model != NULL && strcmp(model, "integration_thread_id") == 0;
  c->max_attachment_bytes = host->config_int(cfg, "max_attachment_bytes", 10485760);
  c->timeout_ms = (uint32_t)host->config_int(cfg, "request_timeout", 30000);
  custom__list_init(&c->inbound);
  custom__list_init(&c->sends);
  if (c->secret_len < 16) {
    host->log(channel, SB_LOG_WARN, "signing_secret is shorter than 16 bytes; use 32 or more random bytes");
  }
  *instance = c;
  return SB_OK;
}

/* disconnect(): answers waiting webhooks with 503 (the integration delivers
 * again; the redelivery is deduplicated) and completes waiting sends as
 * retries, then cancels their HTTP calls. Both are detached first, so the
 * late callbacks only free them. */
static void custom__disconnect(void *instance) {
  custom *c = instance;
  c->closing = 1;
  while (!custom__list_empty(&c->inbound)) {
    custom_inbound *in = (custom_inbound *)c->inbound.next;
    custom__list_remove(&in->link);
    in->c = NULL;
    custom_problem p;
    custom__problem(&p, 503, "unavailable", NULL, "the channel is closing; deliver it again");
    custom__answer_problem(c->host, in->responder, &p);
    in->responder = NULL;
  }
  while (!custom__list_empty(&c->sends)) {
    custom_send *s = (custom_send *)c->sends.next;
    sb_send_op *op = s->op;
    sb_http_call *call = s->call;
    custom__list_remove(&s->link);
    s->c = NULL;
    s->op = NULL;
    c->host->send_retry(op, 0, "cancelled: the channel closed before the integration answered");
    c->host->http_cancel(call); /* may free s at once */
  }
}

/* destroy(): frees the instance; anything still pending is detached first. */
static void custom__destroy(void *instance) {
  custom *c = instance;
  if (!c->closing) custom__disconnect(c);
  free(c);
}

static const sb_plugin custom_plugin = {
    SB_PLUGIN_INIT,
    .id = "custom",
    .name = "Custom channel",
    .publisher = "Switchboard",
    .version = CUSTOM_VERSION,
    .description = "Connects any service that speaks Switchboard's signed JSON webhook contract.",
    .logo_url = NULL,
    .credentials = custom_schema,
    .caps = {.thread_model = SB_THREAD_PER_CONTACT,
             .flags = SB_CAP_RICH_TEXT | SB_CAP_ATTACHMENTS | SB_CAP_REPLY_TO | SB_CAP_DELIVERY_RECEIPTS |
                      SB_CAP_READ_RECEIPTS | SB_CAP_START_CONVERSATION,
             .attachment_types = NULL,
             .max_attachments = CUSTOM_MAX_ATTACHMENTS,
             .max_attachment_bytes = 0},
    .validate = custom__validate,
    .create = custom__create,
    .connect = NULL,
    .receive = custom__receive,
    .send = custom__send,
    .disconnect = custom__disconnect,
    .destroy = custom__destroy,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "the custom channel needs plugin ABI %d.x", SB_ABI_MAJOR);
    return SB_EVERSION;
  }
  *out = &custom_plugin;
  return SB_OK;
}
