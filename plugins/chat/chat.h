/* chat.h — the website chat channel's instance, shared by its parts:
 *   chat.c       the descriptor, settings, lifecycle, availability and time zone
 *   chat_http.c  the HTTP endpoints under /hooks/{channel}/ (widget, session, messages)
 *   chat_conv.c  the conversation: visitors, WebSockets, messages in and out, history
 *   chat_rules.c host-free decisions (tokens, origins, hours, TZif), unit-tested alone
 *   widget.js    the browser widget, embedded at build time (chat_widget.c)
 *
 * Everything runs on the host's loop thread except the time zone read,
 * which runs in queue_work and touches only its own chat_tzload. */
#ifndef CHAT_H
#define CHAT_H

#include <switchboard/plugin.h>

#include <jansson.h>

#include "chat_rules.h"

#define CHAT_VERSION "1.0.0"
#define CHAT_MAX_BODY ((size_t)1024 * 1024) /* HTTP bodies and WebSocket messages we read */
#define CHAT_MAX_ATTACHMENTS 3              /* per message */
#define CHAT_MAX_CONNS_PER_VISITOR 8        /* open WebSockets of one visitor (tabs, devices) */
#define CHAT_MAX_CLIENT_ID 64               /* bytes of the widget's message id */
#define CHAT_TOKEN_LEN (CHAT_MAX_ID + 70)
#define CHAT_AVAILABILITY_EVERY_MS 10000 /* how often the team's availability is read */
#define CHAT_KV_TOKEN_KEY "token_key"     /* kv: the per-channel key that signs visitor tokens (hex) */

/* The widget script and its length (chat_widget.c, generated from widget.js). */
extern const char chat_widget_js[];
extern const size_t chat_widget_js_len;

typedef struct chat_link {
  struct chat_link *prev, *next;
} chat_link;

void chat_list_init(chat_link *head);
int chat_list_empty(const chat_link *head);
void chat_list_add(chat_link *head, chat_link *node);
void chat_list_remove(chat_link *node);

typedef struct chat chat;

/* One person on the chat: an anonymous visitor or a verified user, with
 * their open WebSockets and their rate bucket. Kept while sockets are open
 * and for a while after (so reconnecting does not refill the bucket). */
/* History reads and receipts at most this often, per socket (receipts over
 * HTTP: per visitor): each is a store query or write. */
#define CHAT_MIN_FRAME_GAP_MS 1000

typedef struct chat_visitor {
  chat_link link; /* first: in chat.visitors */
  char who;       /* CHAT_WHO_* */
  char id[CHAT_MAX_ID + 1];
  chat_bucket bucket;
  chat_link conns; /* chat_conn.link */
  size_t conn_count;
  int64_t last_seen_ms;
  int64_t last_receipt_ms; /* the last receipt over HTTP (without WebSockets) */
} chat_visitor;

/* One WebSocket of a visitor. Freed when the socket has closed (ws NULL)
 * and nothing the host owes it is pending (history, commits). */
typedef struct chat_conn {
  chat_link link; /* first: in chat_visitor.conns */
  chat *c;
  chat_visitor *v; /* NULL once closed */
  sb_ws *ws;       /* NULL once closed */
  int pending;     /* host callbacks still to come */
  int64_t last_read_ms;    /* the last history read ("hello") */
  int64_t last_receipt_ms; /* the last receipt ("seen") */
} chat_conn;

struct chat {
  const sb_host *host;
  sb_channel *channel;
  const sb_config *config;
  int closing;

  /* settings */
  int mode;              /* CHAT_MODE_* */
  int away_behavior;     /* CHAT_AWAY_* */
  int capacity_behavior; /* CHAT_CAPACITY_* */
  int offline_email;
  int demo_page;               /* serve /demo, a page showing the widget */
  const char *identity_secret; /* or NULL */
  const char **origins;        /* allowed_origins (pointers into the config) */
  size_t origin_count;
  chat_hours hours[CHAT_MAX_HOURS];
  size_t hours_count;
  int64_t rate_per_minute;
  int64_t max_text_bytes;
  int64_t max_attachment_bytes;

  /* the key that signs visitor tokens (from kv, or made at connect), and
   * the one that signs verified users' tokens: derived from it and the
   * identity_secret, so a new secret ends every user token made under the
   * old one */
  uint8_t token_key[32];
  uint8_t user_key[32];
  int have_key;

  /* time zone (hours mode), loaded off the loop at connect */
  chat_tz tz;
  int tz_ready;

  /* the team, as last read */
  chat_team team;
  int64_t typical_reply_seconds; /* -1 unknown */
  sb_timer *availability_timer;
  int availability_pending;

  chat_link visitors; /* chat_visitor.link */
};

/* chat.c: the widget's state now (CHAT_STATE_*). */
int chat_current_state(const chat *c);

/* chat_http.c: receive(). */
int chat_http_receive(void *instance, const sb_http_request *req, sb_responder *r);

/* chat_conv.c: the conversation. */
int chat_ws_open(void *instance, const sb_http_request *req, sb_ws *ws, void **conn);
void chat_ws_message(void *instance, sb_ws *ws, void *conn, uint32_t kind, const char *data, size_t len);
void chat_ws_closed(void *instance, sb_ws *ws, void *conn, int code);
int chat_send(void *instance, const sb_outbound_message *m, sb_send_op *op);

/* Finds or makes the visitor record for (who, id); NULL when out of memory. */
chat_visitor *chat_visitor_get(chat *c, char who, const char *id);
/* Drops visitors without sockets not seen for a while (all of them with force). */
void chat_visitors_prune(chat *c, int force);

/* Reads a token (from a query, a header or a body) into who/id; 0 or -1. */
int chat_token_read(const chat *c, const char *token, char *who, char *id);
/* Signs a token for who/id into out (CHAT_TOKEN_LEN + 1); 0 or -1. */
int chat_token_sign(const chat *c, char who, const char *id, char *out, size_t outlen);

/* The identity kind of a visitor on this channel (SB_IDENTITY_*). */
uint32_t chat_identity_kind(char who);

/* Handles one message the visitor sent (a WebSocket frame or a POST body,
 * already parsed): checks limits, hands it to the host. When conn is set
 * the answer goes to that socket; otherwise r (an HTTP responder) is
 * answered. Returns 0 when taken (an answer follows), or -1 with an HTTP
 * status and code/message filled in for an immediate refusal. */
typedef struct chat_refusal {
  int status;
  const char *code;
  char message[256];
} chat_refusal;
int chat_take_message(chat *c, chat_visitor *v, const json_t *frame, chat_conn *conn, sb_responder *r,
                      const char *origin, chat_refusal *why);

/* Whether a seen frame names a status it may: "delivered" or "read". */
int chat_seen_valid(const json_t *frame);
/* A "seen" frame ({"status": "delivered"|"read"}): every reply to the
 * visitor so far is delivered or read. Callers keep it to one a second. */
void chat_seen(chat *c, const chat_visitor *v, const json_t *frame);

/* Reads the visitor's history (after_message_id or the latest) and
 * answers conn (a "history" frame) or r (a JSON body). Returns 0 or -1
 * with why filled in. */
int chat_read_history(chat *c, char who, const char *id, const char *after, chat_conn *conn, sb_responder *r,
                      const char *origin, chat_refusal *why);

/* chat_http.c: answers r with a JSON body, with the CORS headers for
 * origin (NULL: none). Takes ownership of body (a json_t, may be NULL:
 * an out-of-memory 503). */
void chat_http_json(const chat *c, sb_responder *r, int status, const char *origin, json_t *body);

/* A request body or WebSocket frame as a JSON object (a new reference),
 * or NULL with *why saying what is wrong with it: a string holding \u0000,
 * which no text may hold, or not a JSON object at all. */
json_t *chat_json_object(const char *data, size_t len, size_t flags, const char **why);

/* Answers r with {"error":{"code","message"}} (CORS for origin). */
void chat_http_error(const chat *c, sb_responder *r, int status, const char *origin, const char *code,
                     const char *message);

#endif /* CHAT_H */
