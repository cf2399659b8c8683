/* form.c — the web form channel: a "Contact us" form on a customer's site
 * posts to /hooks/{channel}, and every submission becomes a new
 * conversation. Replies never go back through this channel (it is
 * receive-only): they go by the channel's reply_channel, e.g. email.
 *
 * This file holds the descriptor, the settings and the lifecycle, and
 * form_submit: a parsed body checked field by field, deduplicated by an
 * idempotency key or a content hash, and handed to emit_inbound. The
 * request is answered from emit_inbound's done, so a 2xx always means
 * stored. Everything runs on the host's loop thread.
 */
#include "form.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const form_unknown_modes[] = {"ignore", "refuse", NULL};

static const sb_field form_schema[] = {
    {"fields", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Extra fields",
     "Names of the form's own inputs to keep besides email, name, phone, subject and message (e.g. "
     "order_number), in the order agents see them as \"Label: value\" lines.",
     NULL},
    {"unknown_fields", SB_FIELD_ENUM, 0, "ignore", "Unknown fields",
     "ignore: inputs that are neither standard nor listed in fields are dropped; refuse: such a submission is "
     "answered 400 naming the input.",
     form_unknown_modes},
    {"message_required", SB_FIELD_BOOL, 0, "true", "Message required",
     "Refuse a submission without a message (400 naming \"message\").", NULL},
    {"allowed_origins", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Allowed origins",
     "Sites whose pages may post the form, e.g. https://www.example.com; \"*\" for any. None given: only the "
     "hosted form page on the help desk's own address, and signed server-to-server posts.",
     NULL},
    {"secret", SB_FIELD_STRING, SB_FIELD_SECRET, NULL, "Signing secret",
     "Lets a server post without a browser: it signs the raw body with HMAC-SHA256 in X-Form-Signature: "
     "sha256=<hex>. Use 32 or more random bytes.",
     NULL},
    {"honeypot_field", SB_FIELD_STRING, 0, "website", "Honeypot field",
     "A hidden input people leave empty; a submission that fills it is answered as a success and dropped. "
     "Empty: no honeypot.",
     NULL},
    {"rate_per_minute", SB_FIELD_INT, 0, "10", "Submissions a minute",
     "How many submissions one IP address may post a minute (429 with Retry-After beyond); 0: no limit.", NULL},
    {"redirect_url", SB_FIELD_URL, 0, NULL, "Redirect URL",
     "Where a browser goes after a plain HTML form is taken (303 See Other). None: the channel's own "
     "thank-you page, /hooks/{channel}/thanks.",
     NULL},
    {"thanks_message", SB_FIELD_STRING, 0, "Thanks! We got your message and will answer by email.",
     "Thank-you text", "Shown on the built-in thank-you page.", NULL},
    {"max_attachments", SB_FIELD_INT, 0, "5", "Files per submission",
     "How many files one submission may carry (0 to 20; 0: no files).", NULL},
    {"max_attachment_bytes", SB_FIELD_INT, 0, "5242880", "Largest file",
     "The largest file, in bytes (413 beyond). The daemon's http.body_limit (1 MiB by default) bounds the whole "
     "request: raise it for forms that take files.",
     NULL},
    {"attachment_types", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Accepted file types",
     "MIME types (application/pdf) or prefixes (image/) of the files taken (415 otherwise). None given: images, "
     "PDF and plain text.",
     NULL},
    {"hosted_form", SB_FIELD_BOOL, 0, "false", "Hosted form page",
     "Serve a ready-made form at /hooks/{channel}/form for sites without their own.", NULL},
    {"form_title", SB_FIELD_STRING, 0, "Contact us", "Form title", "The heading of the hosted form page.", NULL},
    SB_FIELD_END,
};

/* The files taken when attachment_types lists none: what people attach to
 * a support request, and nothing a browser would run. */
static const char *const form_default_types[] = {"image/png", "image/jpeg", "image/gif", "image/webp",
                                                 "application/pdf", "text/plain", NULL};

/* The inputs every form has; any other is an extra field. */
static const char *const form_standard[] = {"email", "name", "phone", "subject", "message", "submission_id", "page",
                                            NULL};

/* --- lists ------------------------------------------------------------------------ */

static void form__list_init(form_link *head) { head->prev = head->next = head; }

void form_list_add(form_link *head, form_link *node) {
  node->next = head;
  node->prev = head->prev;
  head->prev->next = node;
  head->prev = node;
}

void form_list_remove(form_link *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = node;
}

/* --- checking a submission --------------------------------------------------------------- */

static int form__is_standard(const char *name) {
  for (size_t i = 0; form_standard[i] != NULL; i++) {
    if (strcmp(form_standard[i], name) == 0) return 1;
  }
  return 0;
}

static int form__is_listed(const form *f, const char *name) {
  size_t n = f->host->config_count(f->config, "fields");
  for (size_t i = 0; i < n; i++) {
    if (strcmp(f->host->config_get_at(f->config, "fields", i), name) == 0) return 1;
  }
  return 0;
}

/* A standard field's value: NULL when absent or blank; 400 when repeated
 * or too long. */
static int form__standard(const form_body *b, const char *name, size_t max, const char **out, form_problem *p) {
  *out = NULL;
  if (form_body_count(b, name) > 1) return form_problem_set(p, 400, "invalid", name, "%s is given twice", name);
  const char *v = form_body_get(b, name);
  if (v == NULL) return 0;
  if (strlen(v) > max) return form_problem_set(p, 400, "too_long", name, "%s is longer than %zu bytes", name, max);
  if (v[strspn(v, " \t\r\n")] == '\0') return 0;
  *out = v;
  return 0;
}

/* True when the type is one the channel takes (parameters already gone). */
static int form__type_taken(const form *f, const char *type) {
  size_t n = f->host->config_count(f->config, "attachment_types");
  for (size_t i = 0; i < (n > 0 ? n : sizeof(form_default_types) / sizeof(form_default_types[0]) - 1); i++) {
    const char *t = n > 0 ? f->host->config_get_at(f->config, "attachment_types", i) : form_default_types[i];
    size_t tl = strlen(t);
    if (strcmp(t, "*") == 0) return 1;
    if (tl > 0 && t[tl - 1] == '/' ? strncmp(type, t, tl) == 0 && type[tl] != '\0' : strcmp(type, t) == 0) return 1;
  }
  return 0;
}

/* The checked fields of one submission; strings point into the body. */
typedef struct form_fields {
  const char *email, *name, *phone, *subject, *message, *page, *key;
  char email_lower[256];
} form_fields;

static int form__read(const form *f, const sb_http_request *req, const form_body *b, form_fields *x,
                      form_problem *p) {
  memset(x, 0, sizeof(*x));
  if (form__standard(b, "email", FORM_MAX_SHORT, &x->email, p) != 0 ||
      form__standard(b, "name", FORM_MAX_SHORT, &x->name, p) != 0 ||
      form__standard(b, "phone", FORM_MAX_SHORT, &x->phone, p) != 0 ||
      form__standard(b, "subject", FORM_MAX_SHORT, &x->subject, p) != 0 ||
      form__standard(b, "message", FORM_MAX_VALUE, &x->message, p) != 0 ||
      form__standard(b, "page", FORM_MAX_SHORT, &x->page, p) != 0 ||
      form__standard(b, "submission_id", FORM_MAX_SHORT, &x->key, p) != 0) {
    return -1;
  }
  if (x->email == NULL) return form_problem_set(p, 400, "required", "email", "email is required");
  if (!sb_email_address_valid(x->email)) {
    return form_problem_set(p, 400, "invalid", "email", "email must be an address such as kim@example.com");
  }
  if (x->message == NULL && f->message_required) {
    return form_problem_set(p, 400, "required", "message", "message is required");
  }
  const char *header_key = f->host->http_header(req, "Idempotency-Key");
  if (x->key == NULL && header_key != NULL) x->key = header_key;
  if (x->key != NULL && !form_key_valid(x->key)) {
    return form_problem_set(p, 400, "invalid", x->key == header_key ? "Idempotency-Key" : "submission_id",
                            "%s must be 8-64 letters, digits, _ or -",
                            x->key == header_key ? "Idempotency-Key" : "submission_id");
  }
  if (x->page == NULL) x->page = f->host->http_header(req, "Referer");
  if (x->page != NULL && (strlen(x->page) > FORM_MAX_SHORT || !form_utf8_valid(x->page, strlen(x->page)))) {
    x->page = NULL; /* a header we cannot keep is not worth refusing the form for */
  }
  size_t i = 0;
  for (; x->email[i] != '\0' && i + 1 < sizeof(x->email_lower); i++) {
    char c = x->email[i];
    x->email_lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
  }
  x->email_lower[i] = '\0';
  for (size_t k = 0; k < b->field_count; k++) {
    const char *name = b->fields[k].name;
    if (f->refuse_unknown && !form__is_standard(name) && !form__is_listed(f, name) &&
        (f->honeypot == NULL || strcmp(name, f->honeypot) != 0)) {
      return form_problem_set(p, 400, "unknown_field", name, "%.60s is not a field of this form", name);
    }
  }
  for (size_t k = 0; k < b->file_count; k++) {
    if (!form__type_taken(f, b->files[k].mime_type)) {
      return form_problem_set(p, 415, "unsupported_media_type", b->files[k].field,
                              "%.80s is of type %.80s, which this form does not take", b->files[k].filename,
                              b->files[k].mime_type);
    }
  }
  return 0;
}

/* --- the message ----------------------------------------------------------------------- */

/* Feeds one length-prefixed piece to the hash, so ("ab","c") and ("a","bc")
 * differ. */
static void form__hash_piece(crypto_hash_sha256_state *st, const char *s, size_t len) {
  uint8_t n[8];
  for (int i = 0; i < 8; i++) n[i] = (uint8_t)((uint64_t)len >> (8 * i));
  crypto_hash_sha256_update(st, n, sizeof(n));
  if (len > 0) crypto_hash_sha256_update(st, (const uint8_t *)s, len);
}

/* The submission's external id: "key:<idempotency key>", or without one
 * "hash:<hex>" over everything kept of it (email, name, phone, subject,
 * message, the listed fields in the order posted, files' bytes) and the
 * current 10-minute window, so an identical resend soon after is a
 * duplicate and a submission that differs in anything is not. */
static void form__submission_id(const form *f, const form_body *b, const form_fields *x, char *out, size_t outlen) {
  if (x->key != NULL) {
    snprintf(out, outlen, "key:%s", x->key);
    return;
  }
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  const char *pieces[] = {x->email_lower, x->name, x->phone, x->subject, x->message};
  for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
    form__hash_piece(&st, pieces[i] != NULL ? pieces[i] : "", pieces[i] != NULL ? strlen(pieces[i]) : 0);
  }
  for (size_t i = 0; i < b->field_count; i++) {
    if (!form__is_listed(f, b->fields[i].name)) continue;
    form__hash_piece(&st, b->fields[i].name, strlen(b->fields[i].name));
    form__hash_piece(&st, b->fields[i].value, strlen(b->fields[i].value));
  }
  for (size_t i = 0; i < b->file_count; i++) form__hash_piece(&st, b->files[i].data, b->files[i].len);
  char window[32];
  snprintf(window, sizeof(window), "%lld", (long long)(f->host->now_ms() / FORM_DUP_WINDOW_MS));
  form__hash_piece(&st, window, strlen(window));
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, h);
  char hex[2 * 16 + 1];
  sodium_bin2hex(hex, sizeof(hex), h, 16); /* 128 bits name a submission well enough */
  snprintf(out, outlen, "hash:%s", hex);
}

/* The text agents read: the message, then "Label: value" for each listed
 * field that was filled, in the order the operator listed them. Returns a
 * malloc'd string or NULL. */
static char *form__text(const form *f, const form_body *b, const form_fields *x) {
  sb_buf out = {0};
  if (x->message != NULL) sb_buf_puts(&out, x->message);
  size_t n = f->host->config_count(f->config, "fields");
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    const char *name = f->host->config_get_at(f->config, "fields", i);
    char label[80];
    form_label(name, label, sizeof(label));
    const char *sep = ": ";
    for (size_t k = 0; k < b->field_count; k++) {
      if (strcmp(b->fields[k].name, name) != 0 || b->fields[k].value[0] == '\0') continue;
      /* A repeated input (checkboxes) continues its line. */
      if (sep[0] == ':') {
        sb_buf_puts(&out, out.len > 0 ? (first ? "\n\n" : "\n") : "");
        sb_buf_puts(&out, label);
        first = 0;
      }
      sb_buf_puts(&out, sep);
      sb_buf_puts(&out, b->fields[k].value);
      sep = ", ";
    }
  }
  if (out.failed) {
    free(out.s);
    return NULL;
  }
  return out.s != NULL ? out.s : strdup("");
}

/* metadata_json: every field as given, the files, where it came from. */
static char *form__metadata(const form *f, const sb_http_request *req, const form_body *b, const form_fields *x,
                            const char *submission_id) {
  json_t *fields = json_object(), *files = json_array();
  for (size_t k = 0; k < b->field_count; k++) {
    const char *name = b->fields[k].name;
    if (f->honeypot != NULL && strcmp(name, f->honeypot) == 0) continue;
    if (!form__is_standard(name) && !form__is_listed(f, name)) continue; /* ignored (or refused earlier) */
    json_t *prev = json_object_get(fields, name);
    json_t *v = json_string(b->fields[k].value);
    if (prev == NULL) {
      json_object_set_new(fields, name, v);
    } else if (json_is_array(prev)) {
      json_array_append_new(prev, v);
    } else {
      json_object_set_new(fields, name, json_pack("[Oo]", prev, v));
    }
  }
  for (size_t i = 0; i < b->file_count; i++) {
    json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:I}", "field", b->files[i].field, "filename",
                                           b->files[i].filename, "content_type", b->files[i].mime_type, "size",
                                           (json_int_t)b->files[i].len));
  }
  static const char *const kinds[] = {"", "urlencoded", "multipart", "json"};
  json_t *root = json_pack("{s:s, s:s, s:o, s:o, s:s?, s:s?, s:s?, s:s?}", "source", "web_form", "submission_id",
                           submission_id, "fields", fields, "files", files, "page", x->page, "origin",
                           f->host->http_header(req, "Origin"), "ip", req->remote_addr, "user_agent",
                           f->host->http_header(req, "User-Agent"));
  if (root != NULL) json_object_set_new(root, "encoding", json_string(kinds[b->kind & 3]));
  char *out = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  return out;
}

/* emit_inbound's done: answers the submission now that it is stored. */
static void form__stored(void *arg, int status, const char *message_id, int duplicate) {
  form_pending *w = arg;
  if (w->f != NULL) {
    form *f = w->f;
    form_list_remove(&w->link);
    if (status == SB_OK) {
      form_http_success(f, w->responder, &w->to, w->submission_id, duplicate);
    } else {
      form_problem p;
      form_problem_set(&p, 503, "unavailable", NULL, "the form could not be stored (code %d); submit it again",
                       status);
      form_http_problem(f, w->responder, &w->to, &p, 5);
    }
  }
  free(w);
}

/* Hands the checked submission to the host. Returns 0, or -1 with p. */
static int form__emit(form *f, const sb_http_request *req, const form_body *b, const form_fields *x,
                      const char *submission_id, const form_reply_to *to, sb_responder *r, form_problem *p) {
  char thread_id[96];
  snprintf(thread_id, sizeof(thread_id), "form:%s", submission_id);
  sb_attachment *atts = b->file_count > 0 ? calloc(b->file_count, sizeof(*atts)) : NULL;
  char *text = form__text(f, b, x);
  char *meta = form__metadata(f, req, b, x, submission_id);
  form_pending *w = calloc(1, sizeof(*w));
  int rc = 0;
  if ((b->file_count > 0 && atts == NULL) || text == NULL || meta == NULL || w == NULL) {
    rc = form_problem_set(p, 503, "unavailable", NULL, "out of memory; submit it again");
  } else {
    for (size_t i = 0; i < b->file_count; i++) {
      atts[i] = (sb_attachment){.mime_type = b->files[i].mime_type, .filename = b->files[i].filename,
                                .size = b->files[i].len, .data = b->files[i].data, .data_len = b->files[i].len};
    }
    sb_inbound_message m = {.struct_size = sizeof(m)};
    m.external_id = submission_id;
    m.external_thread_id = thread_id; /* one conversation per submission */
    m.sender = (sb_sender){.kind = SB_IDENTITY_EMAIL, .id = x->email_lower, .name = x->name, .email = x->email_lower,
                           .phone = x->phone};
    m.subject = x->subject;
    m.text = text;
    m.attachments = atts;
    m.attachment_count = b->file_count;
    m.metadata_json = meta;
    w->f = f;
    w->responder = r;
    w->to = *to;
    snprintf(w->submission_id, sizeof(w->submission_id), "%s", submission_id);
    form_list_add(&f->pending, &w->link);
    int erc = f->host->emit_inbound(f->channel, &m, form__stored, w);
    if (erc != SB_OK) {
      form_list_remove(&w->link);
      rc = erc == SB_EINVAL ? form_problem_set(p, 400, "invalid", NULL, "the help desk refused the submission")
                            : form_problem_set(p, 503, "unavailable", NULL,
                                               "the help desk cannot take submissions now (code %d)", erc);
    } else {
      w = NULL; /* form__stored frees it */
    }
  }
  free(w);
  free(atts);
  free(text);
  free(meta);
  return rc;
}

/* The id a trapped submission is answered with: the one a person's would
 * get (its key, else the hash of its fields, taken as they came: nothing
 * is checked for a bot), so the answer tells nothing, resends included. */
static void form__trapped_id(const form *f, const sb_http_request *req, const form_body *b, char *out, size_t len) {
  form_fields x;
  memset(&x, 0, sizeof(x));
  const char **outs[] = {&x.subject, &x.message, &x.key}, *names[] = {"subject", "message", "submission_id"};
  for (size_t i = 0; i < 3; i++) {
    const char *v = form_body_get(b, names[i]);
    *outs[i] = v != NULL && v[strspn(v, " \t\r\n")] != '\0' ? v : NULL; /* blank is absent, as form__standard has it */
  }
  if (x.key == NULL) x.key = f->host->http_header(req, "Idempotency-Key");
  if (x.key != NULL && !form_key_valid(x.key)) x.key = NULL;
  const char *email = form_body_get(b, "email");
  for (size_t i = 0; email != NULL && email[i] != '\0' && i + 1 < sizeof(x.email_lower); i++)
    x.email_lower[i] = email[i] >= 'A' && email[i] <= 'Z' ? (char)(email[i] - 'A' + 'a') : email[i];
  form__submission_id(f, b, &x, out, len);
}

int form_submit(form *f, const sb_http_request *req, const form_body *b, const form_reply_to *to, sb_responder *r,
                form_problem *p) {
  form_fields x;
  char submission_id[80];
  /* A filled honeypot is a bot: it gets the answer a person would, so it
   * learns nothing, and nothing is stored. Checked before any field, so a
   * bot's invalid email does not tell it either. */
  const char *trap = f->honeypot != NULL ? form_body_get(b, f->honeypot) : NULL;
  if (trap != NULL && trap[strspn(trap, " \t\r\n")] != '\0') {
    f->host->log(f->channel, SB_LOG_DEBUG, "dropped a submission from %s: the honeypot field %s was filled",
                 req->remote_addr != NULL ? req->remote_addr : "?", f->honeypot);
    form__trapped_id(f, req, b, submission_id, sizeof(submission_id));
    int seen = 0;
    for (size_t i = 0; i < FORM_TRAPPED && !seen; i++) seen = strcmp(f->trapped[i], submission_id) == 0;
    if (!seen) {
      snprintf(f->trapped[f->trapped_next], sizeof(f->trapped[0]), "%s", submission_id);
      f->trapped_next = (f->trapped_next + 1) % FORM_TRAPPED;
    }
    form_http_success(f, r, to, submission_id, seen);
    return 0;
  }
  if (form__read(f, req, b, &x, p) != 0) return -1;
  form__submission_id(f, b, &x, submission_id, sizeof(submission_id));
  return form__emit(f, req, b, &x, submission_id, to, r, p);
}

/* --- lifecycle ------------------------------------------------------------------------------ */

static int form__bad(char *err, size_t errlen, const char *fmt, const char *key, size_t index) {
  snprintf(err, errlen, fmt, key, index + 1);
  return SB_EINVAL;
}

/* validate(): what the schema cannot say. Never names the secret's value. */
static int form__validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  size_t n = host->config_count(cfg, "allowed_origins");
  for (size_t i = 0; i < n; i++) {
    const char *o = host->config_get_at(cfg, "allowed_origins", i);
    if (strcmp(o, "*") != 0 && !form_origin_valid(o)) {
      return form__bad(err, errlen,
                       "setting \"%s\" value %zu must be an origin such as https://www.example.com (scheme and "
                       "host, no path) or \"*\"",
                       "allowed_origins", i);
    }
  }
  n = host->config_count(cfg, "fields");
  for (size_t i = 0; i < n; i++) {
    const char *name = host->config_get_at(cfg, "fields", i);
    if (!form_field_name_valid(name) || form__is_standard(name)) {
      return form__bad(err, errlen,
                       "setting \"%s\" value %zu must be an input name of 1-64 letters, digits, _ . or - that is "
                       "not one of the standard fields (email, name, phone, subject, message, submission_id, page)",
                       "fields", i);
    }
    for (size_t k = 0; k < i; k++) {
      if (strcmp(host->config_get_at(cfg, "fields", k), name) == 0)
        return form__bad(err, errlen, "setting \"%s\" value %zu repeats an earlier value", "fields", i);
    }
  }
  n = host->config_count(cfg, "attachment_types");
  for (size_t i = 0; i < n; i++) {
    const char *t = host->config_get_at(cfg, "attachment_types", i);
    const char *slash = strchr(t, '/');
    if (strcmp(t, "*") != 0 && (slash == NULL || slash == t || strchr(slash + 1, '/') != NULL ||
                                strpbrk(t, " \t;,ABCDEFGHIJKLMNOPQRSTUVWXYZ") != NULL)) {
      return form__bad(err, errlen,
                       "setting \"%s\" value %zu must be a lowercase MIME type (application/pdf), a prefix ending "
                       "in / (image/) or \"*\"",
                       "attachment_types", i);
    }
  }
  const char *trap = host->config_get(cfg, "honeypot_field");
  if (trap != NULL && trap[0] != '\0' && (!form_field_name_valid(trap) || form__is_standard(trap))) {
    snprintf(err, errlen, "setting \"honeypot_field\" must be an input name (letters, digits, _ . -) that is not a "
                          "standard field, or empty for none");
    return SB_EINVAL;
  }
  const char *secret = host->config_get(cfg, "secret");
  if (secret != NULL && secret[0] == '\0') {
    snprintf(err, errlen, "credential \"secret\" must not be empty (leave it out for no server-to-server posts)");
    return SB_EINVAL;
  }
  int64_t v = host->config_int(cfg, "rate_per_minute", 10);
  if (v < 0 || v > 100000) {
    snprintf(err, errlen, "setting \"rate_per_minute\" must be between 0 (no limit) and 100000");
    return SB_EINVAL;
  }
  v = host->config_int(cfg, "max_attachments", 5);
  if (v < 0 || v > FORM_MAX_ATTACHMENTS_CAP) {
    snprintf(err, errlen, "setting \"max_attachments\" must be between 0 and %d", FORM_MAX_ATTACHMENTS_CAP);
    return SB_EINVAL;
  }
  v = host->config_int(cfg, "max_attachment_bytes", 5242880);
  if (v < 1 || (uint64_t)v > FORM_MAX_BODY) {
    snprintf(err, errlen, "setting \"max_attachment_bytes\" must be between 1 and %zu", FORM_MAX_BODY);
    return SB_EINVAL;
  }
  const char *url = host->config_get(cfg, "redirect_url");
  if (url != NULL && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    snprintf(err, errlen, "setting \"redirect_url\" must be an http:// or https:// URL");
    return SB_EINVAL;
  }
  return SB_OK;
}

static int form__create(const sb_host *host, sb_channel *channel, const sb_config *cfg, void **instance, char *err,
                        size_t errlen) {
  if (form__validate(host, cfg, err, errlen) != SB_OK) return SB_EINVAL;
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium could not start");
    return SB_EIO;
  }
  form *f = calloc(1, sizeof(*f));
  if (f == NULL) {
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
  }
  form_parse_init();
  f->host = host;
  f->channel = channel;
  f->config = cfg;
  f->secret = host->config_get(cfg, "secret");
  f->secret_len = f->secret != NULL ? strlen(f->secret) : 0;
  f->honeypot = host->config_get(cfg, "honeypot_field");
  if (f->honeypot != NULL && f->honeypot[0] == '\0') f->honeypot = NULL;
  f->redirect_url = host->config_get(cfg, "redirect_url");
  f->message_required = host->config_int(cfg, "message_required", 1) != 0;
  const char *unknown = host->config_get(cfg, "unknown_fields");
  f->refuse_unknown = unknown != NULL && strcmp(unknown, "refuse") == 0;
  f->hosted_form = host->config_int(cfg, "hosted_form", 0) != 0;
  f->rate_per_minute = host->config_int(cfg, "rate_per_minute", 10);
  f->limits = (form_limits){.max_fields = FORM_MAX_FIELDS, .max_value_bytes = FORM_MAX_VALUE,
                            .max_files = (size_t)host->config_int(cfg, "max_attachments", 5),
                            .max_file_bytes = (uint64_t)host->config_int(cfg, "max_attachment_bytes", 5242880)};
  form__list_init(&f->pending);
  if (f->secret != NULL && f->secret_len < 16) {
    host->log(channel, SB_LOG_WARN, "secret is shorter than 16 bytes; use 32 or more random bytes");
  }
  *instance = f;
  return SB_OK;
}

/* disconnect(): answers waiting submissions 503 (the browser may submit
 * again; the resend is deduplicated) and detaches them. */
static void form__disconnect(void *instance) {
  form *f = instance;
  f->closing = 1;
  while (f->pending.next != &f->pending) {
    form_pending *w = (form_pending *)f->pending.next;
    form_list_remove(&w->link);
    form_problem p;
    form_problem_set(&p, 503, "unavailable", NULL, "the channel is closing; submit the form again");
    form_http_problem(f, w->responder, &w->to, &p, 5);
    w->f = NULL;
    w->responder = NULL;
  }
}

static void form__destroy(void *instance) {
  form *f = instance;
  if (!f->closing) form__disconnect(f);
  free(f);
}

/* send(): never called for a receive-only channel; a host that does call
 * it gets a permanent failure that tells the agent where replies go. */
static int form__send(void *instance, const sb_outbound_message *m, sb_send_op *op) {
  form *f = instance;
  f->host->send_fail(op, "a web form channel cannot send; replies go through its reply_channel");
  return SB_OK;
}

static const sb_plugin form_plugin = {
    SB_PLUGIN_INIT,
    .id = "form",
    .name = "Web form",
    .publisher = "Switchboard",
    .version = FORM_VERSION,
    .description = "Turns submissions of a contact form on your website into conversations, answered by email.",
    .logo_url = NULL,
    .credentials = form_schema,
    .caps = {.thread_model = SB_THREAD_EXTERNAL,
             .flags = SB_CAP_RECEIVE_ONLY | SB_CAP_ATTACHMENTS,
             .attachment_types = NULL, /* per channel: attachment_types */
             .max_attachments = FORM_MAX_ATTACHMENTS_CAP,
             .max_attachment_bytes = 0},
    .validate = form__validate,
    .create = form__create,
    .connect = NULL,
    .receive = form_http_receive,
    .send = form__send,
    .disconnect = form__disconnect,
    .destroy = form__destroy,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "the web form channel needs plugin ABI %d.%d or newer", SB_ABI_MAJOR, SB_ABI_MINOR);
    return SB_EVERSION;
  }
  *out = &form_plugin;
  return SB_OK;
}
