/* form.h — the web form channel's parts and what they share (docs/channels/form.md).
 *
 *   form.c        the descriptor, settings, lifecycle; a checked submission
 *                 becomes one inbound message (form_submit)
 *   form_http.c   receive(): routes, origins and CORS, the signature, rate
 *                 limits, answers (303, 201, errors), the thank-you and
 *                 hosted form pages
 *   form_parse.c  the body: urlencoded, multipart (gmime), JSON
 *   form_rules.c  host-free rules: email, idempotency keys, origins, labels,
 *                 the per-address rate table
 */
#ifndef FORM_H
#define FORM_H

#include <switchboard/plugin.h>

#include "email_address.h"
#include "sb_buf.h"
#include "form_parse.h"

#define FORM_VERSION "1.0.0"
#define FORM_MAX_BODY ((size_t)32 * 1024 * 1024) /* whatever http.body_limit allows, never more */
#define FORM_MAX_FIELDS 200
#define FORM_MAX_VALUE ((size_t)64 * 1024)   /* one field's value, the message included */
#define FORM_MAX_SHORT 1000                  /* name, email, phone, subject, page */
#define FORM_MAX_ATTACHMENTS_CAP 20
#define FORM_RATE_SLOTS 1024                 /* remote addresses the rate limit remembers */
#define FORM_DUP_WINDOW_MS (10 * 60 * 1000)  /* the hash of a submission is unique per 10 minutes */
#define FORM_TRAPPED 128                     /* honeypot ids remembered, to answer their resends as duplicates */

typedef struct form_link {
  struct form_link *prev, *next;
} form_link;

/* One remote address's count in its current minute. */
typedef struct form_rate_slot {
  char addr[48];
  int64_t start_ms; /* when its minute began; 0: free */
  int64_t last_ms;  /* its latest request, for forgetting the longest idle */
  uint32_t count;
} form_rate_slot;

/* One channel. Config pointers live until destroy(). */
typedef struct form {
  const sb_host *host;
  sb_channel *channel;
  const sb_config *config;
  const char *secret; /* NULL: no server-to-server posts */
  size_t secret_len;
  const char *honeypot; /* NULL: no honeypot */
  const char *redirect_url;
  int message_required;
  int refuse_unknown;
  int hosted_form;
  int64_t rate_per_minute;
  form_limits limits;
  int closing;
  form_link pending; /* form_pending waiting for their commit */
  form_rate_slot rate[FORM_RATE_SLOTS];
  char trapped[FORM_TRAPPED][80]; /* ids answered to filled honeypots, a ring */
  size_t trapped_next;
} form;

/* How the submitter wants the answer. */
typedef struct form_reply_to {
  int json;            /* 201 JSON, else 303 to the thank-you page */
  int html;            /* a browser's plain form post: errors as a page */
  char origin[256];    /* the allowed Origin to echo in CORS headers, or "" */
  char thanks[512];    /* where a plain form is sent after success */
} form_reply_to;

/* One submission waiting for emit_inbound's done. f and responder are NULL
 * once disconnect() has answered it. */
typedef struct form_pending {
  form_link link; /* first */
  form *f;
  sb_responder *responder;
  form_reply_to to;
  char submission_id[80];
} form_pending;

/* --- form.c --------------------------------------------------------------------- */

void form_list_add(form_link *head, form_link *node);
void form_list_remove(form_link *node);

/* Checks a parsed body and hands it to the host as one new conversation;
 * answers r (now for a honeypot or refusal by the host, later once stored).
 * Returns 0 when r is or will be answered, -1 with p filled when refused
 * now (the caller answers). */
int form_submit(form *f, const sb_http_request *req, const form_body *body, const form_reply_to *to,
                sb_responder *r, form_problem *p);

/* --- form_http.c ------------------------------------------------------------------ */

int form_http_receive(void *instance, const sb_http_request *req, sb_responder *r);

/* The success answer: 201 {"id","duplicate"} for JSON, else 303. */
void form_http_success(const form *f, sb_responder *r, const form_reply_to *to, const char *id, int duplicate);

/* The error answer: JSON {"error":{code,message,field}}, or a small HTML
 * page for a browser's plain form post. */
void form_http_problem(const form *f, sb_responder *r, const form_reply_to *to, const form_problem *p,
                       int retry_after_s);

/* --- form_rules.c ------------------------------------------------------------------- */

/* True for an idempotency key: 8-64 of [A-Za-z0-9_-]. */
int form_key_valid(const char *s);

/* True for an origin as browsers send it: "http(s)://host[:port]". */
int form_origin_valid(const char *s);

/* The origin (scheme://host[:port]) of an http(s) URL such as a Referer,
 * into out; returns 0, or -1 when url is not one. */
int form_origin_of(const char *url, char *out, size_t outlen);

/* True for a field name the operator may list: 1-64 of [A-Za-z0-9_.-]. */
int form_field_name_valid(const char *s);

/* "order_number" → "Order number": the label of an extra field. */
void form_label(const char *name, char *out, size_t outlen);

/* Counts one request from addr at now_ms against per_minute. Returns 0 when
 * allowed, or the seconds until the address may post again. The table
 * forgets the address whose minute began longest ago when it is full. */
int form_rate_take(form_rate_slot *slots, size_t n, const char *addr, int64_t now_ms, int64_t per_minute);

#endif /* FORM_H */
