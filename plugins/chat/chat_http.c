/* chat_http.c — the chat channel's HTTP endpoints under /hooks/{channel}/:
 *
 *   GET  /widget.js   the widget (the one script the operator's page loads)
 *   POST /session     {token?, user_id?, user_hash?} → {token, visitor_id,
 *                     verified, widget: {settings and open/away/busy}}
 *   GET  /messages    the visitor's history (?after=ID), Bearer token
 *   POST /messages    one message, as the WebSocket's "message" frame, Bearer token
 *   OPTIONS *         CORS preflight
 *   GET  /ws          WebSocket (chat_conv.c), when the host holds sockets
 *
 * Every endpoint but widget.js checks the page's Origin against
 * allowed_origins (403 otherwise) and answers with CORS headers for it.
 */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

void chat_http_json(const chat *c, sb_responder *r, int status, const char *origin, json_t *body) {
  char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  sb_http_header h[6] = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}, {"Vary", "Origin"}};
  size_t n = 3;
  if (origin != NULL && origin[0] != '\0') h[n++] = (sb_http_header){"Access-Control-Allow-Origin", origin};
  if (text == NULL) {
    static const char oom[] = "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}";
    c->host->respond(r, 503, h, n, oom, sizeof(oom) - 1);
    return;
  }
  c->host->respond(r, status, h, n, text, strlen(text));
  free(text);
}

void chat_http_error(const chat *c, sb_responder *r, int status, const char *origin, const char *code,
                     const char *message) {
  chat_http_json(c, r, status, origin, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

/* The widget's settings and the channel's state now, for the session answer. */
static json_t *chat__widget(const chat *c) {
  const sb_host *h = c->host;
  int state = chat_current_state(c);
  const char *notice = NULL;
  if (state == CHAT_STATE_AWAY && c->away_behavior == CHAT_AWAY_MESSAGE) {
    notice = h->config_get(c->config, "away_message");
  } else if (state == CHAT_STATE_BUSY && c->capacity_behavior == CHAT_CAPACITY_WAITING) {
    notice = h->config_get(c->config, "waiting_message");
  }
  static const char *const states[] = {"open", "away", "busy"};
  json_t *w = json_pack(
      "{s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:b, s:s?, s:b, s:b, s:I, s:I, s:[ssssss], s:b}", "accent_color",
      h->config_get(c->config, "accent_color"), "heading", h->config_get(c->config, "heading"), "heading_name",
      h->config_get(c->config, "heading_name"), "heading_avatar_url", h->config_get(c->config, "heading_avatar_url"),
      "welcome_message", h->config_get(c->config, "welcome_message"), "state", states[state], "launcher",
      chat_launcher_visible(state, c->away_behavior, c->capacity_behavior), "notice", notice, "show_reply_time",
      state == CHAT_STATE_AWAY && c->away_behavior == CHAT_AWAY_REPLY_TIME, "ask_email",
      state != CHAT_STATE_OPEN && c->offline_email, "max_message_bytes", (json_int_t)c->max_text_bytes,
      "max_attachment_bytes", (json_int_t)c->max_attachment_bytes, "attachment_types", "image/png", "image/jpeg",
      "image/gif", "image/webp", "application/pdf", "text/plain", "websocket", SB_HOST_HAS(h, ws_send) ? 1 : 0);
  if (w != NULL) {
    json_object_set_new(w, "reply_time_seconds",
                        c->typical_reply_seconds >= 0 ? json_integer(c->typical_reply_seconds) : json_null());
  }
  return w;
}

json_t *chat_json_object(const char *data, size_t len, size_t flags, const char **why) {
  json_error_t e;
  json_t *o = json_loadb(data, len, flags, &e);
  if (json_is_object(o)) return o;
  *why = o == NULL && json_error_code(&e) == json_error_null_character ? "a string holds \\u0000, which no text may hold"
                                                                         : NULL;
  json_decref(o);
  return NULL;
}

/* The body as a JSON object (an empty body is {}); NULL when it is not one,
 * with *why saying why. */
static json_t *chat__body(const sb_http_request *req, const char **why) {
  *why = "the body must be a JSON object";
  if (req->body_len == 0) return json_object();
  const char *nul = NULL;
  json_t *o = chat_json_object(req->body, req->body_len, JSON_REJECT_DUPLICATES, &nul);
  if (nul != NULL) *why = nul;
  return o;
}

/* POST /session: who the visitor is, as a signed token, and the widget's
 * settings. A valid token is kept (a verified user's too, while the channel
 * still has verified identity); user_id + user_hash (verified identity)
 * gives a user token; anything else a new anonymous visitor. */
static void chat__session(chat *c, const sb_http_request *req, sb_responder *r, const char *origin) {
  const char *why;
  json_t *body = chat__body(req, &why);
  if (body == NULL) {
    chat_http_error(c, r, 400, origin, "invalid", why);
    return;
  }
  const char *given = json_string_value(json_object_get(body, "token"));
  const char *user_id = json_string_value(json_object_get(body, "user_id"));
  const char *user_hash = json_string_value(json_object_get(body, "user_hash"));
  char who = 0, id[CHAT_MAX_ID + 1], token[CHAT_TOKEN_LEN + 1];
  if (user_id != NULL || user_hash != NULL) {
    if (c->identity_secret == NULL) {
      chat_http_error(c, r, 400, origin, "invalid",
                      "verified identity is not set up on this channel (no identity_secret)");
      json_decref(body);
      return;
    }
    if (!chat_identity_ok(c->host->hmac_sha256, c->host->equal_ct, c->identity_secret, user_id, user_hash)) {
      c->host->log(c->channel, SB_LOG_INFO, "refused a chat identity: user_hash does not match user_id");
      chat_http_error(c, r, 403, origin, "forbidden",
                      "user_hash must be the hex HMAC-SHA256 of user_id under the channel's identity_secret");
      json_decref(body);
      return;
    }
    if (chat_visitor_id_shape(user_id)) { /* it would be taken for an anonymous visitor's id */
      chat_http_error(c, r, 400, origin, "invalid",
                      "user_id must not look like an anonymous visitor's id (v and 32 hex digits)");
      json_decref(body);
      return;
    }
    who = CHAT_WHO_USER;
    snprintf(id, sizeof(id), "%s", user_id);
  } else if (given == NULL || chat_token_read(c, given, &who, id) != 0) {
    uint8_t raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
      chat_http_error(c, r, 503, origin, "unavailable", "no randomness for a visitor id; try again");
      json_decref(body);
      return;
    }
    who = CHAT_WHO_VISITOR;
    id[0] = 'v';
    for (size_t i = 0; i < sizeof(raw); i++) snprintf(id + 1 + 2 * i, 3, "%02x", raw[i]);
  }
  json_decref(body);
  if (chat_token_sign(c, who, id, token, sizeof(token)) != 0) {
    chat_http_error(c, r, 500, origin, "internal", "could not sign the visitor's token");
    return;
  }
  chat_http_json(c, r, 200, origin,
                 json_pack("{s:s, s:s, s:b, s:o}", "token", token, "visitor_id", id, "verified",
                           who == CHAT_WHO_USER, "widget", chat__widget(c)));
}

/* Reads the Bearer token of a request into who/id; 0 or -1. */
static int chat__bearer(const chat *c, const sb_http_request *req, char *who, char *id) {
  const char *auth = c->host->http_header(req, "Authorization");
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) return -1;
  return chat_token_read(c, auth + 7, who, id);
}

/* GET and POST /messages. */
static void chat__messages(chat *c, const sb_http_request *req, sb_responder *r, const char *origin) {
  char who, id[CHAT_MAX_ID + 1];
  chat_refusal why;
  if (chat__bearer(c, req, &who, id) != 0) {
    chat_http_error(c, r, 401, origin, "unauthorized", "a visitor token is needed: Authorization: Bearer TOKEN");
    return;
  }
  if (strcmp(req->method, "GET") == 0) {
    char after[32] = "";
    int has_after = c->host->http_query(req, "after", after, sizeof(after)) >= 0;
    if (!has_after && (strncmp(req->query, "after=", 6) == 0 || strstr(req->query, "&after=") != NULL)) {
      has_after = 1; /* given, but longer than any message id: refused as one, not read as none */
      snprintf(after, sizeof(after), "x");
    }
    if (chat_read_history(c, who, id, has_after ? after : NULL, NULL, r, origin, &why) != 0) {
      chat_http_error(c, r, why.status, origin, why.code, why.message);
    }
    return;
  }
  const char *bad;
  json_t *frame = chat__body(req, &bad);
  chat_visitor *v = frame != NULL ? chat_visitor_get(c, who, id) : NULL;
  if (frame == NULL) {
    chat_http_error(c, r, 400, origin, "invalid", bad);
  } else if (v == NULL) {
    chat_http_error(c, r, 503, origin, "unavailable", "out of memory");
  } else if (json_is_string(json_object_get(frame, "type")) &&
             strcmp(json_string_value(json_object_get(frame, "type")), "seen") == 0 && !chat_seen_valid(frame)) {
    chat_http_error(c, r, 400, origin, "invalid", "a seen frame's status is delivered or read");
  } else if (json_is_string(json_object_get(frame, "type")) &&
             strcmp(json_string_value(json_object_get(frame, "type")), "seen") == 0) {
    int64_t now = c->host->now_ms(); /* each receipt is a store write: one a second, the rest dropped */
    if (now - v->last_receipt_ms >= CHAT_MIN_FRAME_GAP_MS) {
      v->last_receipt_ms = now;
      chat_seen(c, v, frame);
    }
    chat_http_json(c, r, 200, origin, json_pack("{s:s}", "type", "seen"));
  } else if (json_object_get(frame, "type") != NULL && !(json_is_string(json_object_get(frame, "type")) &&
                                                          strcmp(json_string_value(json_object_get(frame, "type")),
                                                                 "message") == 0)) {
    /* a frame of another type (typing, hello) is a WebSocket's: never a message */
    chat_http_error(c, r, 400, origin, "invalid", "POST /messages takes a message or a seen frame");
  } else if (chat_take_message(c, v, frame, NULL, r, origin, &why) != 0) {
    chat_http_error(c, r, why.status, origin, why.code, why.message);
  }
  json_decref(frame);
}

int chat_http_receive(void *instance, const sb_http_request *req, sb_responder *r) {
  chat *c = instance;
  const sb_host *h = c->host;
  const char *sub = req->subpath != NULL ? req->subpath : "";
  const char *method = req->method != NULL ? req->method : "";
  if (strcmp(sub, "/widget.js") == 0) {
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
      chat_http_error(c, r, 405, NULL, "method_not_allowed", "use GET");
      return SB_OK;
    }
    static const sb_http_header js[] = {{"Content-Type", "text/javascript; charset=utf-8"},
                                        {"Cache-Control", "public, max-age=300"},
                                        {"X-Content-Type-Options", "nosniff"}};
    h->respond(r, 200, js, 3, chat_widget_js, chat_widget_js_len);
    return SB_OK;
  }
  if (c->demo_page && strcmp(sub, "/demo") == 0 && strcmp(method, "GET") == 0) {
    /* Same origin as the widget, so no allowed_origins entry is needed. */
    static const char page[] =
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>Switchboard chat demo</title></head>\n<body style=\"font-family: sans-serif; margin: 3em\">"
        "<h1>Chat demo</h1><p>The launcher in the corner is this channel's widget, as a visitor of your site "
        "sees it. Answer from the help desk's API.</p>\n"
        "<script src=\"widget.js\" async></script>\n</body></html>\n";
    static const sb_http_header html[] = {{"Content-Type", "text/html; charset=utf-8"},
                                          {"Cache-Control", "no-store"},
                                          {"X-Content-Type-Options", "nosniff"}};
    h->respond(r, 200, html, 3, page, sizeof(page) - 1);
    return SB_OK;
  }
  int known = strcmp(sub, "/session") == 0 || strcmp(sub, "/messages") == 0 || strcmp(sub, "/ws") == 0;
  if (!known) {
    chat_http_error(c, r, 404, NULL, "not_found", "no such endpoint: widget.js, session, messages or ws");
    return SB_OK;
  }
  const char *origin = h->http_header(req, "Origin");
  if (!chat_origin_allowed(origin, c->origins, c->origin_count, h->http_header(req, "Host"))) {
    chat_http_error(c, r, 403, NULL, "forbidden",
                    origin == NULL ? "the request has no Origin header"
                                   : "this site is not among the channel's allowed_origins");
    return SB_OK;
  }
  if (strcmp(method, "OPTIONS") == 0) {
    const sb_http_header pre[] = {{"Access-Control-Allow-Origin", origin},
                                  {"Access-Control-Allow-Methods", "GET, POST"},
                                  {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                                  {"Access-Control-Max-Age", "600"},
                                  {"Vary", "Origin"}};
    h->respond(r, 204, pre, sizeof(pre) / sizeof(pre[0]), "", 0);
    return SB_OK;
  }
  if (c->closing || !c->have_key) {
    chat_http_error(c, r, 503, origin, "unavailable", "the channel is not connected; try again shortly");
  } else if (req->body_len > CHAT_MAX_BODY) {
    chat_http_error(c, r, 413, origin, "too_large", "the body is larger than 1 MiB");
  } else if (strcmp(sub, "/session") == 0) {
    if (strcmp(method, "POST") == 0) {
      chat__session(c, req, r, origin);
    } else {
      chat_http_error(c, r, 405, origin, "method_not_allowed", "use POST");
    }
  } else if (strcmp(sub, "/messages") == 0) {
    if (strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0) {
      chat__messages(c, req, r, origin);
    } else {
      chat_http_error(c, r, 405, origin, "method_not_allowed", "use GET or POST");
    }
  } else {
    chat_http_error(c, r, 426, origin, "upgrade_required", "this endpoint is a WebSocket");
  }
  return SB_OK;
}
