/* form_http.c — the web form channel's endpoints under /hooks/{channel}:
 *
 *   POST    ""        one submission (urlencoded, multipart or JSON)
 *   OPTIONS ""        CORS preflight for a site's fetch()
 *   GET     /thanks   the built-in thank-you page (no redirect_url set)
 *   GET     /form     the hosted form page (hosted_form on)
 *
 * Who may post: a browser page whose Origin (or, without one, Referer) is
 * listed in allowed_origins or is the help desk's own address; or a server
 * that signs the body with the channel's secret. Then the per-address rate
 * limit, the body, and form_submit.
 */
#include "form.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- answers ------------------------------------------------------------------ */

/* Appends CORS headers for an allowed origin. */
static size_t form__cors(const form_reply_to *to, sb_http_header *h, size_t n) {
  if (to != NULL && to->origin[0] != '\0') {
    h[n++] = (sb_http_header){"Access-Control-Allow-Origin", to->origin};
    h[n++] = (sb_http_header){"Vary", "Origin"};
  }
  return n;
}

static void form__json(const form *f, sb_responder *r, int status, const form_reply_to *to, const char *body,
                       const char *retry_after) {
  sb_http_header h[6] = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
  size_t n = form__cors(to, h, 2);
  if (retry_after != NULL) h[n++] = (sb_http_header){"Retry-After", retry_after};
  f->host->respond(r, status, h, n, body, strlen(body));
}

/* Appends text escaped for HTML text and quoted attribute values. */
static void form__esc(sb_buf *b, const char *s) {
  for (; s != NULL && *s != '\0'; s++) {
    switch (*s) {
    case '&': sb_buf_puts(b, "&amp;"); break;
    case '<': sb_buf_puts(b, "&lt;"); break;
    case '>': sb_buf_puts(b, "&gt;"); break;
    case '"': sb_buf_puts(b, "&quot;"); break;
    case '\'': sb_buf_puts(b, "&#39;"); break;
    default: sb_buf_put(b, s, 1);
    }
  }
}

static void form__page_head(sb_buf *b, const char *title) {
  sb_buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
  form__esc(b, title);
  sb_buf_puts(b, "</title><style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;"
                "line-height:1.5}label{display:block;margin-top:1em}input,textarea{width:100%;box-sizing:border-box;"
                "padding:.4em;font:inherit}button{margin-top:1.5em;padding:.5em 1.5em;font:inherit}"
                ".hp{position:absolute;left:-10000px}</style></head>\n<body>\n");
}

/* Answers an HTML page (status, body in b) with headers that keep it inert. */
static void form__html(const form *f, sb_responder *r, int status, sb_buf *b, const char *retry_after) {
  sb_http_header h[] = {{"Content-Type", "text/html; charset=utf-8"},
                        {"Cache-Control", "no-store"},
                        {"X-Content-Type-Options", "nosniff"},
                        {"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action *"},
                        {"Retry-After", retry_after}};
  size_t n = retry_after != NULL ? 5 : 4;
  if (b->failed || b->s == NULL) {
    static const char oom[] = "out of memory";
    f->host->respond(r, 503, h, 3, oom, sizeof(oom) - 1);
  } else {
    f->host->respond(r, status, h, n, b->s, b->len);
  }
  free(b->s);
}

void form_http_success(const form *f, sb_responder *r, const form_reply_to *to, const char *id, int duplicate) {
  if (to->json) {
    json_t *o = json_pack("{s:s, s:b}", "id", id, "duplicate", duplicate);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    form__json(f, r, body != NULL ? 201 : 503, to,
               body != NULL ? body : "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}", NULL);
    free(body);
    return;
  }
  sb_http_header h[5] = {{"Location", to->thanks}, {"Content-Type", "text/plain; charset=utf-8"},
                         {"Cache-Control", "no-store"}};
  size_t n = form__cors(to, h, 3);
  static const char body[] = "Thanks: your form was received.\n";
  f->host->respond(r, 303, h, n, body, sizeof(body) - 1);
}

void form_http_problem(const form *f, sb_responder *r, const form_reply_to *to, const form_problem *p,
                       int retry_after_s) {
  char retry[16];
  snprintf(retry, sizeof(retry), "%d", retry_after_s);
  const char *ra = retry_after_s > 0 && (p->status == 429 || p->status == 503) ? retry : NULL;
  if (to != NULL && to->html) {
    /* A person pressed submit on a plain form: a page they can read. */
    sb_buf b = {0};
    form__page_head(&b, "The form was not sent");
    sb_buf_puts(&b, "<h1>The form was not sent</h1>\n<p>");
    form__esc(&b, p->message);
    sb_buf_puts(&b, ".</p>\n<p>Go back, correct it and send it again.</p>\n</body></html>\n");
    form__html(f, r, p->status, &b, ra);
    return;
  }
  json_t *err = json_pack("{s:s, s:s}", "code", p->code, "message", p->message);
  if (err != NULL && p->field[0] != '\0') json_object_set_new(err, "field", json_string(p->field));
  json_t *root = err != NULL ? json_pack("{s:o}", "error", err) : NULL;
  char *body = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  form__json(f, r, p->status, to,
             body != NULL ? body : "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}", ra);
  free(body);
}

/* --- who may post --------------------------------------------------------------- */

static int form__unhex32(const char *hex, uint8_t out[32]) {
  size_t bin_len = 0;
  const char *end = NULL;
  return strlen(hex) == 64 && sodium_hex2bin(out, 32, hex, 64, NULL, &bin_len, &end) == 0 && bin_len == 32 &&
         *end == '\0';
}

/* Checks X-Form-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>.
 * Returns 0, or -1 with a 401 in p. */
static int form__verify(const form *f, const sb_http_request *req, const char *sig, form_problem *p) {
  if (f->secret == NULL) {
    return form_problem_set(p, 401, "unauthorized", NULL,
                            "this channel has no secret, so it takes no signed posts; post from a listed page");
  }
  uint8_t given[32], mac[32];
  if (strncmp(sig, "sha256=", 7) != 0 || !form__unhex32(sig + 7, given)) {
    return form_problem_set(p, 401, "unauthorized", NULL, "X-Form-Signature must be sha256= and 64 hex digits");
  }
  f->host->hmac_sha256(f->secret, f->secret_len, req->body != NULL ? req->body : "", req->body_len, mac);
  if (!f->host->equal_ct(mac, given, sizeof(mac))) {
    return form_problem_set(p, 401, "unauthorized", NULL,
                            "the signature does not match: sign the raw body with the channel's secret "
                            "(HMAC-SHA256, hex)");
  }
  return 0;
}

/* Whether a page at origin may post: listed, "*", or the help desk's own
 * address (the hosted form page). */
static int form__origin_allowed(const form *f, const sb_http_request *req, const char *origin) {
  if (!form_origin_valid(origin)) return 0; /* also "null" from sandboxed frames */
  size_t n = f->host->config_count(f->config, "allowed_origins");
  for (size_t i = 0; i < n; i++) {
    const char *a = f->host->config_get_at(f->config, "allowed_origins", i);
    if (strcmp(a, "*") == 0 || strcasecmp(a, origin) == 0) return 1;
  }
  const char *host = f->host->http_header(req, "Host");
  const char *rest = strstr(origin, "://");
  return host != NULL && rest != NULL && strcasecmp(rest + 3, host) == 0;
}

/* The page's origin from Origin, or from Referer when a browser sent no
 * Origin, into out; returns 0, or -1 when the request names no page. */
static int form__page_origin(const form *f, const sb_http_request *req, char *out, size_t outlen) {
  const char *origin = f->host->http_header(req, "Origin");
  if (origin != NULL) {
    snprintf(out, outlen, "%s", origin);
    return 0;
  }
  return form_origin_of(f->host->http_header(req, "Referer"), out, outlen);
}

/* Decides who posts. Returns 0 (to->origin set for a browser), or -1 with
 * 401/403 in p. *signed_post tells a server's signed post. */
static int form__gate(const form *f, const sb_http_request *req, form_reply_to *to, int *signed_post,
                      form_problem *p) {
  const char *sig = f->host->http_header(req, "X-Form-Signature");
  *signed_post = 0;
  if (sig != NULL) {
    if (form__verify(f, req, sig, p) != 0) return -1;
    *signed_post = 1;
    return 0;
  }
  char origin[256];
  if (form__page_origin(f, req, origin, sizeof(origin)) != 0) {
    return form_problem_set(p, 403, "forbidden", NULL,
                            f->secret != NULL ? "the request names no page (no Origin or Referer) and is not signed "
                                                "with X-Form-Signature"
                                              : "the request names no page (no Origin or Referer); posts from "
                                                "servers need the channel's secret");
  }
  if (!form__origin_allowed(f, req, origin)) {
    return form_problem_set(p, 403, "forbidden", NULL, "this site is not among the channel's allowed_origins");
  }
  snprintf(to->origin, sizeof(to->origin), "%s", origin);
  return 0;
}

/* --- routes ---------------------------------------------------------------------------- */

/* The channel's base path, /hooks/{channel}, from the request's path. */
static void form__base(const sb_http_request *req, char *out, size_t outlen) {
  const char *path = req->path != NULL ? req->path : "";
  size_t n = strlen(path), sub = req->subpath != NULL ? strlen(req->subpath) : 0;
  n = sub <= n ? n - sub : n;
  while (n > 0 && path[n - 1] == '/') n--;
  snprintf(out, outlen, "%.*s", (int)n, path);
}

static int form__accepts(const form *f, const sb_http_request *req, const char *type) {
  const char *accept = f->host->http_header(req, "Accept");
  return accept != NULL && strcasestr(accept, type) != NULL;
}

/* How to answer this request: JSON for fetch(), 303 and pages for forms. */
static void form__reply_mode(const form *f, const sb_http_request *req, form_reply_to *to) {
  memset(to, 0, sizeof(*to));
  const char *ct = f->host->http_header(req, "Content-Type");
  int json_body = ct != NULL && strncasecmp(ct + strspn(ct, " \t"), "application/json", 16) == 0;
  to->json = json_body || form__accepts(f, req, "application/json");
  to->html = !to->json && form__accepts(f, req, "text/html");
  if (f->redirect_url != NULL) {
    snprintf(to->thanks, sizeof(to->thanks), "%s", f->redirect_url);
  } else {
    char base[400];
    form__base(req, base, sizeof(base));
    snprintf(to->thanks, sizeof(to->thanks), "%s/thanks", base);
  }
}

static void form__post(form *f, const sb_http_request *req, sb_responder *r) {
  form_reply_to to;
  form_problem p;
  form__reply_mode(f, req, &to);
  int signed_post = 0, wait = 0;
  if (f->closing) {
    form_problem_set(&p, 503, "unavailable", NULL, "the channel is closing; submit the form again");
    form_http_problem(f, r, &to, &p, 5);
    return;
  }
  if (form__gate(f, req, &to, &signed_post, &p) != 0) {
    form_http_problem(f, r, &to, &p, 0);
    return;
  }
  /* Signed posts come from the operator's own server on behalf of many
   * people: one address, so not limited per address. */
  if (!signed_post &&
      (wait = form_rate_take(f->rate, FORM_RATE_SLOTS, req->remote_addr, f->host->now_ms(), f->rate_per_minute)) > 0) {
    form_problem_set(&p, 429, "rate_limited", NULL, "too many submissions from this address; try again in %d s",
                     wait);
    form_http_problem(f, r, &to, &p, wait);
    return;
  }
  if (req->body_len > FORM_MAX_BODY) {
    form_problem_set(&p, 413, "too_large", NULL, "the submission is larger than %zu bytes", FORM_MAX_BODY);
    form_http_problem(f, r, &to, &p, 0);
    return;
  }
  form_body body;
  if (form_parse(f->host->http_header(req, "Content-Type"), req->body, req->body_len, &f->limits, &body, &p) != 0) {
    form_http_problem(f, r, &to, &p, 0);
    return;
  }
  if (form_submit(f, req, &body, &to, r, &p) != 0) form_http_problem(f, r, &to, &p, p.status == 503 ? 5 : 0);
  form_body_free(&body);
}

static void form__preflight(const form *f, const sb_http_request *req, sb_responder *r) {
  const char *origin = f->host->http_header(req, "Origin");
  if (origin == NULL || !form__origin_allowed(f, req, origin)) {
    form_problem p;
    form_problem_set(&p, 403, "forbidden", NULL, "this site is not among the channel's allowed_origins");
    form_http_problem(f, r, NULL, &p, 0);
    return;
  }
  const sb_http_header h[] = {{"Access-Control-Allow-Origin", origin},
                              {"Access-Control-Allow-Methods", "POST"},
                              {"Access-Control-Allow-Headers", "Content-Type, Accept, Idempotency-Key"},
                              {"Access-Control-Max-Age", "600"},
                              {"Vary", "Origin"}};
  f->host->respond(r, 204, h, sizeof(h) / sizeof(h[0]), "", 0);
}

static void form__thanks(const form *f, sb_responder *r) {
  sb_buf b = {0};
  form__page_head(&b, "Thank you");
  sb_buf_puts(&b, "<h1>Thank you</h1>\n<p>");
  form__esc(&b, f->host->config_get(f->config, "thanks_message"));
  sb_buf_puts(&b, "</p>\n</body></html>\n");
  form__html(f, r, 200, &b, NULL);
}

/* One labelled input of the hosted form. */
static void form__input(sb_buf *b, const char *name, const char *label, const char *type, int required) {
  sb_buf_puts(b, "<label>");
  form__esc(b, label);
  sb_buf_puts(b, required ? " *" : "");
  if (strcmp(type, "textarea") == 0) {
    sb_buf_puts(b, "<textarea rows=\"6\" name=\"");
    form__esc(b, name);
    sb_buf_puts(b, required ? "\" required></textarea>" : "\"></textarea>");
  } else {
    sb_buf_puts(b, "<input type=\"");
    form__esc(b, type);
    sb_buf_puts(b, "\" name=\"");
    form__esc(b, name);
    sb_buf_puts(b, required ? "\" required>" : "\">");
  }
  sb_buf_puts(b, "</label>\n");
}

/* GET /form: a plain page with the channel's fields, posting to the channel
 * from the help desk's own address (allowed without allowed_origins). */
static void form__hosted(const form *f, const sb_http_request *req, sb_responder *r) {
  const char *title = f->host->config_get(f->config, "form_title");
  char base[400], key[33];
  uint8_t raw[16];
  form__base(req, base, sizeof(base));
  randombytes_buf(raw, sizeof(raw));
  sodium_bin2hex(key, sizeof(key), raw, sizeof(raw)); /* one submission per page load */
  sb_buf b = {0};
  form__page_head(&b, title != NULL ? title : "Contact us");
  sb_buf_puts(&b, "<h1>");
  form__esc(&b, title != NULL ? title : "Contact us");
  sb_buf_puts(&b, "</h1>\n<form method=\"post\" action=\"");
  form__esc(&b, base);
  sb_buf_puts(&b, f->limits.max_files > 0 ? "\" enctype=\"multipart/form-data\">\n" : "\">\n");
  sb_buf_puts(&b, "<input type=\"hidden\" name=\"submission_id\" value=\"");
  form__esc(&b, key);
  sb_buf_puts(&b, "\">\n");
  form__input(&b, "name", "Name", "text", 0);
  form__input(&b, "email", "Email", "email", 1);
  form__input(&b, "phone", "Phone", "tel", 0);
  form__input(&b, "subject", "Subject", "text", 0);
  size_t n = f->host->config_count(f->config, "fields");
  for (size_t i = 0; i < n; i++) {
    const char *name = f->host->config_get_at(f->config, "fields", i);
    char label[80];
    form_label(name, label, sizeof(label));
    form__input(&b, name, label, "text", 0);
  }
  form__input(&b, "message", "Message", "textarea", f->message_required);
  if (f->limits.max_files > 0) form__input(&b, "attachment", "Attachment", "file", 0);
  if (f->honeypot != NULL) {
    sb_buf_puts(&b, "<div class=\"hp\" aria-hidden=\"true\"><label>Leave this empty<input type=\"text\" name=\"");
    form__esc(&b, f->honeypot);
    sb_buf_puts(&b, "\" tabindex=\"-1\" autocomplete=\"off\"></label></div>\n");
  }
  sb_buf_puts(&b, "<button type=\"submit\">Send</button>\n</form>\n</body></html>\n");
  form__html(f, r, 200, &b, NULL);
}

int form_http_receive(void *instance, const sb_http_request *req, sb_responder *r) {
  form *f = instance;
  const char *sub = req->subpath != NULL ? req->subpath : "";
  const char *method = req->method != NULL ? req->method : "";
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  form_problem p;
  if (strcmp(sub, "") == 0 || strcmp(sub, "/") == 0) {
    if (strcmp(method, "POST") == 0) {
      form__post(f, req, r);
    } else if (strcmp(method, "OPTIONS") == 0) {
      form__preflight(f, req, r);
    } else {
      form_problem_set(&p, 405, "method_not_allowed", NULL, "submit the form with POST");
      form_http_problem(f, r, NULL, &p, 0);
    }
  } else if (strcmp(sub, "/thanks") == 0 && get) {
    form__thanks(f, r);
  } else if (strcmp(sub, "/form") == 0 && get && f->hosted_form) {
    form__hosted(f, req, r);
  } else {
    form_problem_set(&p, 404, "not_found", NULL, "no such page: POST /hooks/{channel} takes the form");
    form_http_problem(f, r, NULL, &p, 0);
  }
  return SB_OK;
}
