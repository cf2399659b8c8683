/* meta_common.c — Meta webhook handshake, X-Hub-Signature-256 and Graph error classification. */
#include "meta_common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void meta_answer(const sb_host *host, sb_responder *r, int status, const char *error) {
  const sb_http_header h[] = {{"Content-Type", "application/json"}};
  char body[512];
  if (error == NULL) {
    memcpy(body, "{\"ok\":true}", sizeof("{\"ok\":true}")); /* every acknowledged webhook: no snprintf */
  } else {
    /* the shape of the host's errors and the custom channel's (API.md) */
    const char *code = status == 400   ? "invalid"
                       : status == 401 ? "unauthorized"
                       : status == 403 ? "forbidden"
                       : status == 405 ? "method_not_allowed"
                       : status == 413 ? "payload_too_large"
                       : status == 503 ? "unavailable"
                                       : "error";
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", error);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    snprintf(body, sizeof(body), "%s", s != NULL ? s : "{\"error\":{\"code\":\"error\",\"message\":\"refused\"}}");
    free(s);
    json_decref(o);
  }
  host->respond(r, status, h, 1, body, strlen(body));
}

int meta_answer_verification(const sb_host *host, const sb_http_request *req, sb_responder *r,
                             const char *verify_token) {
  char mode[32], token[512], challenge[512];
  int ml = host->http_query(req, "hub.mode", mode, sizeof(mode));
  int tl = host->http_query(req, "hub.verify_token", token, sizeof(token));
  if (ml < 0 || tl < 0 || host->http_query(req, "hub.challenge", challenge, sizeof(challenge)) < 0) {
    meta_answer(host, r, 400, "hub.mode, hub.verify_token and hub.challenge are required");
    return SB_OK;
  }
  size_t vl = verify_token != NULL ? strlen(verify_token) : 0;
  /* Compare fixed-size copies so the time taken does not reveal the length;
   * the lengths are the decoded ones, so a %00 cannot end a value early. */
  char a[512] = {0}, b[512] = {0};
  memcpy(a, token, (size_t)tl);
  if (vl < sizeof(b)) memcpy(b, verify_token, vl);
  int same = vl > 0 && vl < sizeof(b) && (size_t)tl == vl && host->equal_ct(a, b, sizeof(a));
  /* Meta's challenge is a number; only plain tokens are echoed back into a response. */
  if (challenge[0] == '\0' || strspn(challenge, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.") != strlen(challenge)) {
    meta_answer(host, r, 400, "hub.challenge must be the number Meta sends");
    return SB_OK;
  }
  if ((size_t)ml != strlen(mode) || strcmp(mode, "subscribe") != 0) {
    meta_answer(host, r, 403, "hub.mode must be subscribe");
    return SB_OK;
  }
  if (!same) {
    meta_answer(host, r, 403, "the verify token does not match this channel's verify_token");
    return SB_OK;
  }
  const sb_http_header h[] = {{"Content-Type", "text/plain"}};
  host->respond(r, 200, h, 1, challenge, strlen(challenge));
  return SB_OK;
}

/* A hex digit's value, or -1, computed with masks: a signature's digits
 * are random, and compiled as branches (even from ?:) they mispredicted
 * about every other digit, most of the time its decoding took. */
static int meta__hexval(char ch) {
  unsigned c = (unsigned char)ch, digit = c - '0', letter = (c | 0x20) - 'a';
  unsigned is_digit = -(unsigned)(digit < 10), is_letter = -(unsigned)(letter < 6); /* all ones or zero */
  return (int)((digit & is_digit) | ((letter + 10) & is_letter) | ~(is_digit | is_letter));
}

int meta_check_signature(const sb_host *host, const sb_http_request *req, const char *app_secret, char *why,
                         size_t whylen) {
  const char *sig = host->http_header(req, "X-Hub-Signature-256");
  uint8_t given[32], mac[32];
  if (sig == NULL) {
    snprintf(why, whylen, "the X-Hub-Signature-256 header is missing");
    return 401;
  }
  if (strncmp(sig, "sha256=", 7) != 0 || strlen(sig + 7) != 64) {
    snprintf(why, whylen, "X-Hub-Signature-256 must be sha256= followed by 64 hex digits");
    return 401;
  }
  int bad = 0;
  for (size_t i = 0; i < 32; i++) {
    int hi = meta__hexval(sig[7 + 2 * i]), lo = meta__hexval(sig[8 + 2 * i]);
    bad |= hi | lo; /* negative once any digit was not one */
    given[i] = (uint8_t)(hi * 16 + lo);
  }
  if (bad < 0) {
    snprintf(why, whylen, "X-Hub-Signature-256 must be sha256= followed by 64 hex digits");
    return 401;
  }
  host->hmac_sha256(app_secret, strlen(app_secret), req->body != NULL ? req->body : "", req->body_len, mac);
  if (!host->equal_ct(mac, given, sizeof(mac))) {
    snprintf(why, whylen, "X-Hub-Signature-256 does not match the body under the channel's app_secret");
    return 403;
  }
  return 0;
}

/* Copies s into out with control characters as spaces, cut at a UTF-8
 * character boundary. */
static void meta__copy_text(char *out, size_t outlen, const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;
  if (n > outlen - 1) {
    n = outlen - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
  }
  for (size_t i = 0; i < n; i++) out[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
  out[n] = '\0';
}

void meta_parse_error(const char *body, size_t body_len, meta_graph_error *e) {
  memset(e, 0, sizeof(*e));
  json_t *root = json_loadb(body != NULL ? body : "", body_len, 0, NULL);
  const json_t *err = json_object_get(root, "error");
  if (json_is_object(err)) {
    e->found = 1;
    e->code = (long)json_integer_value(json_object_get(err, "code"));
    e->subcode = (long)json_integer_value(json_object_get(err, "error_subcode"));
    meta__copy_text(e->message, sizeof(e->message), json_string_value(json_object_get(err, "message")));
    const json_t *data = json_object_get(err, "error_data");
    meta__copy_text(e->details, sizeof(e->details), json_string_value(json_object_get(data, "details")));
  }
  json_decref(root);
}

static int meta__in(long code, const long *list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (list[i] == code) return 1;
  }
  return 0;
}

meta_verdict meta_classify(int api, int http_status, const meta_graph_error *e) {
  static const long messenger_retry[] = {1, 2, 4, 17, 32, 613, 1200};
  static const long whatsapp_retry[] = {1, 2, 4, 80007, 130429, 131016, 131056, 131000};
  if (http_status == 0) return META_RETRY; /* no answer: network trouble or a timeout */
  if (e->found && e->code == 190) return META_AUTH;
  if (http_status == 429) return META_RETRY;
  if (api == META_API_MESSENGER) {
    if (e->found && e->code == 10 && e->subcode == 2018278) return META_WINDOW;
    if (e->found && meta__in(e->code, messenger_retry, sizeof(messenger_retry) / sizeof(messenger_retry[0])))
      return META_RETRY;
  } else {
    if (e->found && e->code == 131047) return META_REENGAGE;
    if (e->found && meta__in(e->code, whatsapp_retry, sizeof(whatsapp_retry) / sizeof(whatsapp_retry[0])))
      return META_RETRY;
  }
  if (http_status >= 500) return META_RETRY;
  if (http_status == 401) return META_AUTH;
  return META_FAIL;
}

void meta_reason(int http_status, const meta_graph_error *e, char *out, size_t outlen) {
  if (!e->found) {
    snprintf(out, outlen, "the Graph API answered HTTP %d", http_status);
  } else if (e->subcode != 0) {
    snprintf(out, outlen, "Graph error %ld/%ld: %s%s%s", e->code, e->subcode, e->message,
             e->details[0] != '\0' ? " — " : "", e->details);
  } else {
    snprintf(out, outlen, "Graph error %ld: %s%s%s", e->code, e->message, e->details[0] != '\0' ? " — " : "",
             e->details);
  }
}

size_t meta_urlencode(char *buf, size_t cap, size_t len, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t start = len;
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                c == '.' || c == '~';
    if (len + (plain ? 1 : 3) >= cap) {
      if (start < cap) buf[start] = '\0'; /* what was there before stays a string */
      return cap;
    }
    if (plain) {
      buf[len++] = (char)c;
    } else {
      buf[len++] = '%';
      buf[len++] = hex[c >> 4];
      buf[len++] = hex[c & 15];
    }
  }
  buf[len] = '\0';
  return len;
}

const char *meta_response_header(const sb_http_client_response *res, const char *name) {
  for (size_t i = 0; i < res->header_count; i++) {
    if (res->headers[i].name != NULL && strcasecmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  }
  return NULL;
}

int meta_receive_front(const sb_host *host, const sb_http_request *req, sb_responder *r, const char *verify_token,
                       size_t max_body, int closing) {
  if (strcmp(req->method, "GET") == 0) {
    meta_answer_verification(host, req, r, verify_token);
  } else if (strcmp(req->method, "POST") != 0) {
    meta_answer(host, r, 405, "only GET (verification) and POST (events) are accepted");
  } else if (req->body_len > max_body) {
    meta_answer(host, r, 413, "the body is too large");
  } else if (closing) {
    meta_answer(host, r, 503, "the channel is closing; deliver it again");
  } else {
    return 0;
  }
  return 1;
}

void meta_send_hold(const sb_host *host, sb_send_op *op, uint32_t hold_ms, const char *reason) {
  if (SB_HOST_HAS(host, send_defer)) {
    host->send_defer(op, hold_ms, reason);
  } else {
    host->send_retry(op, hold_ms, reason);
  }
}

int meta_validate_common(const sb_host *host, const sb_config *cfg, const char *const *secrets, size_t nsecrets,
                         char *err, size_t errlen) {
  const char *base = host->config_get(cfg, "graph_api_base");
  if (base == NULL || (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)) {
    snprintf(err, errlen, "setting \"graph_api_base\" must be an http:// or https:// URL");
    return SB_EINVAL;
  }
  for (size_t i = 0; i < nsecrets; i++) {
    const char *v = host->config_get(cfg, secrets[i]);
    if (v == NULL || v[0] == '\0') {
      snprintf(err, errlen, "credential \"%s\" must not be empty", secrets[i]);
      return SB_EINVAL;
    }
  }
  int64_t timeout = host->config_int(cfg, "request_timeout", 20000);
  if (timeout < 100 || timeout > 120000) {
    snprintf(err, errlen, "setting \"request_timeout\" must be between 100ms and 2m");
    return SB_EINVAL;
  }
  return SB_OK;
}

sb_http_call *meta_graph_call(const sb_host *host, sb_channel *channel, const char *token, const char *method,
                              const char *url, const char *content_type, const char *body, size_t len,
                              uint32_t timeout_ms, uint64_t max_response_bytes, sb_http_done_fn done, void *arg) {
  char auth[1200];
  snprintf(auth, sizeof(auth), "Bearer %s", token);
  const sb_http_header h[] = {{"Authorization", auth}, {"Content-Type", content_type}};
  sb_http_client_request rq = {.struct_size = sizeof(rq),
                               .timeout_ms = timeout_ms,
                               .method = method,
                               .url = url,
                               .headers = h,
                               .header_count = content_type != NULL ? 2 : 1,
                               .body = content_type != NULL ? body : NULL,
                               .body_len = content_type != NULL ? len : 0,
                               .max_response_bytes = max_response_bytes};
  return host->http_request(channel, &rq, done, arg);
}
