/* switchboard/plugin.h — the Switchboard channel plugin ABI, version 1.3.
 *
 * A channel plugin connects one kind of messaging service (email, a chat
 * widget, Messenger, WhatsApp, your own service) to the Switchboard help desk.
 * It is a shared object that exports exactly one function, sb_plugin_entry().
 * This header is everything a plugin author needs: it includes only
 * <stdint.h> and <stddef.h>, and no libuv, curl, jansson or glib type appears
 * in it. Handles are opaque, buffers are (pointer, length) pairs, enums are
 * fixed-width integers.
 *
 * THE LIFE OF A PLUGIN
 *
 *   1. The host dlopen()s the file (RTLD_NOW | RTLD_LOCAL) and calls
 *      sb_plugin_entry(host, &plugin, err, errlen). The plugin checks the
 *      host's ABI version and hands back a pointer to its static descriptor
 *      (struct sb_plugin): the channel *type* — id, name, version,
 *      credential schema, capabilities and hooks.
 *   2. For every channel the operator connects with this plugin the host
 *      validates the channel's credentials against the schema, then calls
 *      create() to make an *instance*, and connect() to bring it online.
 *      One daemon runs many instances of one plugin.
 *   3. Inbound: the host routes HTTP requests for /hooks/{channel}/... to
 *      receive(); a plugin that polls (IMAP) or holds connections uses
 *      timers, fd watches and the host's HTTP client. Either way it hands
 *      each message to the host with emit_inbound(), which calls back once
 *      the message is durably stored — only then may a webhook answer 200.
 *   4. Outbound: for every agent reply the host calls send(); the plugin
 *      completes it, now or later, with send_ok(), send_retry() or
 *      send_fail(). The host owns retries, backoff and dead letters.
 *   5. On config reload, channel removal or shutdown the host calls
 *      disconnect() and destroy(). Code is loaded once; replacing the .so
 *      needs a restart.
 *
 * THREADS. Every hook runs on the host's loop thread and must not block: no
 * sleeping, no blocking sockets, no disk I/O. Use timers, fd watches, the
 * HTTP client and queue_work() instead. A plugin that starts threads of its
 * own may call from them only the host functions marked "thread-safe".
 *
 * OWNERSHIP. Everything the host passes to a hook is borrowed: valid until
 * the hook returns unless stated otherwise. Everything a plugin passes to
 * the host is copied by the host before the call returns, so stack buffers
 * are fine. Strings are NUL-terminated UTF-8 unless a length is given.
 *
 * VERSIONING. The host API table and the plugin descriptor both begin with
 * an sb_abi_header. A host runs plugins of its own major version and of any
 * minor version up to its own. Within major 1, tables and structs only grow
 * at their end, and every member says since which version it exists. The
 * host copies struct_size bytes of a descriptor into a zeroed struct, so the
 * hooks an older plugin does not know read as NULL. A plugin must check
 * host->abi.abi_minor (or SB_HOST_HAS(host, member)) before calling a host
 * function newer than 1.0. Structs that a plugin fills and passes to the
 * host begin with struct_size for the same reason: set it with sizeof.
 *
 * A SMALL COMPLETE PLUGIN: a channel that answers every webhook POST to
 * /hooks/{channel}/messages as one inbound message, and "sends" replies by
 * logging them.
 *
 *   #include <switchboard/plugin.h>
 *   #include <stdlib.h>
 *   #include <string.h>
 *
 *   struct echo { const sb_host *host; sb_channel *channel; unsigned next; };
 *
 *   static const sb_field echo_schema[] = {
 *     {"greeting", SB_FIELD_STRING, 0, "hello", "Greeting", "Logged on connect.", NULL},
 *     SB_FIELD_END
 *   };
 *
 *   static int echo_create(const sb_host *host, sb_channel *ch, const sb_config *cfg,
 *                          void **instance, char *err, size_t errlen) {
 *     struct echo *e = calloc(1, sizeof(*e));
 *     if (e == NULL) return SB_ENOMEM;
 *     e->host = host;
 *     e->channel = ch;
 *     *instance = e;
 *     return SB_OK;
 *   }
 *
 *   static int echo_connect(void *instance) {
 *     struct echo *e = instance;
 *     e->host->set_state(e->channel, SB_STATE_CONNECTED, NULL);
 *     return SB_OK;
 *   }
 *
 *   struct pending { struct echo *e; sb_responder *r; };
 *
 *   // Answers the webhook only once the message is durable.
 *   static void echo_stored(void *arg, int status, const char *message_id, int duplicate) {
 *     struct pending *p = arg;
 *     if (status == SB_OK)
 *       p->e->host->respond(p->r, 200, NULL, 0, message_id, strlen(message_id));
 *     else
 *       p->e->host->respond(p->r, 503, NULL, 0, "try again", 9);
 *     free(p);
 *   }
 *
 *   static int echo_receive(void *instance, const sb_http_request *req, sb_responder *r) {
 *     struct echo *e = instance;
 *     const char *id = e->host->http_header(req, "X-Message-Id");
 *     if (id == NULL) return e->host->respond(r, 400, NULL, 0, "X-Message-Id missing", 20);
 *     struct pending *p = malloc(sizeof(*p));
 *     if (p == NULL) return SB_ENOMEM;
 *     p->e = e;
 *     p->r = r;
 *     sb_inbound_message m = {.struct_size = sizeof(m)};
 *     m.external_id = id;
 *     m.sender.kind = SB_IDENTITY_CUSTOM;
 *     m.sender.id = "visitor";
 *     char *text = malloc(req->body_len + 1);  // the body is not NUL-terminated
 *     if (text == NULL) { free(p); return SB_ENOMEM; }
 *     memcpy(text, req->body, req->body_len);
 *     text[req->body_len] = '\0';
 *     m.text = text;
 *     int rc = e->host->emit_inbound(e->channel, &m, echo_stored, p);
 *     free(text);                // emit_inbound copied it
 *     if (rc != SB_OK) {
 *       free(p);
 *       return e->host->respond(r, 400, NULL, 0, "bad message", 11);
 *     }
 *     return SB_OK;
 *   }
 *
 *   static int echo_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
 *     struct echo *e = instance;
 *     e->host->log(e->channel, SB_LOG_INFO, "reply: %s", msg->text);
 *     e->host->send_ok(op, msg->idempotency_key);
 *     return SB_OK;
 *   }
 *
 *   static void echo_destroy(void *instance) { free(instance); }
 *
 *   static const sb_plugin echo_plugin = {
 *     SB_PLUGIN_INIT,
 *     .id = "echo", .name = "Echo", .publisher = "Example Ltd", .version = "1.0.0",
 *     .description = "Logs replies, takes messages from one webhook.",
 *     .credentials = echo_schema,
 *     .caps = {.thread_model = SB_THREAD_PER_CONTACT},
 *     .create = echo_create, .connect = echo_connect, .receive = echo_receive,
 *     .send = echo_send, .destroy = echo_destroy,
 *   };
 *
 *   SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out,
 *                                 char *err, size_t errlen) {
 *     if (!SB_HOST_COMPATIBLE(host)) return SB_EVERSION;
 *     *out = &echo_plugin;
 *     return SB_OK;
 *   }
 *
 * Build it with: cc -shared -fPIC $(pkg-config --cflags switchboard-plugin)
 * echo.c -o echo.so. `switchboard plugins new NAME` scaffolds a complete
 * project with a test; docs/plugin-guide.md walks through it.
 */
#ifndef SWITCHBOARD_PLUGIN_H
#define SWITCHBOARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions and the ABI header                                               */
/* ------------------------------------------------------------------------ */

#define SB_ABI_MAJOR 1
#define SB_ABI_MINOR 4

#define SB_MAGIC_HOST 0x53424853u   /* "SBHS": the host API table */
#define SB_MAGIC_PLUGIN 0x5342504cu /* "SBPL": a plugin descriptor */

/* The first member of both ABI tables. Never reordered, never resized. */
typedef struct sb_abi_header {
  uint32_t magic;       /* SB_MAGIC_HOST or SB_MAGIC_PLUGIN */
  uint16_t abi_major;   /* incompatible changes bump this */
  uint16_t abi_minor;   /* additions at the end of a table bump this */
  uint32_t struct_size; /* sizeof the whole table as the writer compiled it */
  uint32_t reserved;    /* zero */
} sb_abi_header;

typedef struct sb_host sb_host;     /* the host API table, below */
typedef struct sb_plugin sb_plugin; /* a plugin descriptor, below */

/* Exported with default visibility whatever the build's visibility preset. */
#define SB_EXPORT __attribute__((visibility("default")))

/* Fills a descriptor's ABI header: put it first in the sb_plugin initializer. */
#define SB_PLUGIN_INIT \
  .abi = {SB_MAGIC_PLUGIN, SB_ABI_MAJOR, SB_ABI_MINOR, (uint32_t)sizeof(sb_plugin), 0}

/* True when the host speaks this header's major version and at least the
 * minor version the plugin was built against. Use it first in the entry. */
#define SB_HOST_COMPATIBLE(host)                                           \
  ((host) != NULL && (host)->abi.magic == SB_MAGIC_HOST &&                 \
   (host)->abi.abi_major == SB_ABI_MAJOR && (host)->abi.abi_minor >= SB_ABI_MINOR)

/* True when the host table has the given member (a function added in a later
 * minor version): SB_HOST_HAS(host, some_newer_function). */
#define SB_HOST_HAS(host, member)                                          \
  ((host)->abi.struct_size >= offsetof(sb_host, member) + sizeof((host)->member) && \
   (host)->member != NULL)

/* The entry point every plugin exports, with this exact name. Called once,
 * on the loop thread, right after dlopen. Returns SB_OK and sets *out to a
 * descriptor that lives as long as the library (a static const), or a
 * negative SB_E* code with a sentence in err (at most errlen bytes). */
typedef int (*sb_plugin_entry_fn)(const sb_host *host, const sb_plugin **out,
                                  char *err, size_t errlen);
#define SB_PLUGIN_ENTRY_SYMBOL "sb_plugin_entry"
SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err,
                              size_t errlen);

/* ------------------------------------------------------------------------ */
/* Status codes: 0 or a negative code (the negated Linux errno value)        */
/* ------------------------------------------------------------------------ */

#define SB_OK 0
#define SB_ENOENT (-2)      /* no such thing (key, channel, message) */
#define SB_EIO (-5)         /* input/output failure */
#define SB_EAGAIN (-11)     /* try again later */
#define SB_ENOMEM (-12)     /* out of memory */
#define SB_EACCES (-13)     /* refused: bad credentials, bad signature */
#define SB_EBUSY (-16)      /* resource busy */
#define SB_EEXIST (-17)     /* already exists */
#define SB_EINVAL (-22)     /* invalid argument or input */
#define SB_EFBIG (-27)      /* too large */
#define SB_EPROTO (-71)     /* protocol failure, e.g. TLS or STARTTLS unavailable (since 1.1) */
#define SB_ENOTSUP (-95)    /* not supported by this plugin or host */
#define SB_ETIMEDOUT (-110) /* timed out */
#define SB_ECANCELED (-125) /* cancelled (instance destroyed, daemon stopping) */
#define SB_EVERSION (-1000) /* incompatible ABI version */

/* Log levels for sb_host.log. */
#define SB_LOG_ERROR 0
#define SB_LOG_WARN 1
#define SB_LOG_INFO 2
#define SB_LOG_DEBUG 3

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                            */
/* ------------------------------------------------------------------------ */

typedef struct sb_channel sb_channel;     /* one connected channel (an instance's host side) */
typedef struct sb_config sb_config;       /* a channel's validated credentials and settings */
typedef struct sb_responder sb_responder; /* the pending answer to one receive() request */
typedef struct sb_send_op sb_send_op;     /* one pending send() */
typedef struct sb_timer sb_timer;         /* a timer started with timer_start */
typedef struct sb_watch sb_watch;         /* an fd watch started with watch_fd */
typedef struct sb_http_call sb_http_call; /* an HTTP request made with http_request */
typedef struct sb_mail_call sb_mail_call; /* an IMAP/SMTP transfer made with mail_request (since 1.1) */
typedef struct sb_ws sb_ws;               /* a WebSocket accepted by ws_open (since 1.3) */

/* ------------------------------------------------------------------------ */
/* Credential and settings schema                                            */
/* ------------------------------------------------------------------------ */

/* Field types. A value in config is a JSON string, number or boolean as the
 * type says; the host validates it before create() and the plugin reads it
 * back through config_get / config_int. */
#define SB_FIELD_STRING 1u   /* any string */
#define SB_FIELD_INT 2u      /* a 64-bit integer (JSON number or decimal string) */
#define SB_FIELD_BOOL 3u     /* true or false */
#define SB_FIELD_DURATION 4u /* "500ms", "30s", "5m", "2h", "1d" or a number of seconds; read in ms */
#define SB_FIELD_URL 5u      /* an absolute URL with a scheme and a host */
#define SB_FIELD_ENUM 6u     /* one of enum_values */

/* Field flags, ORed. */
#define SB_FIELD_REQUIRED 0x1u /* must be given; a required field has no default */
#define SB_FIELD_SECRET 0x2u   /* never printed in logs, errors or API answers; sealed at rest */
#define SB_FIELD_MULTI 0x4u    /* a JSON array of values of the type */

/* One credential or setting. A plugin's schema is a static array of these
 * ended by SB_FIELD_END. key: 1-64 of lowercase letters, digits and '_',
 * starting with a letter, unique in the table. default_value: the value as
 * text (e.g. "30s", "true", "10"), or NULL; it must itself be valid for the
 * type, and NULL for a REQUIRED field. A table breaking these rules makes
 * the host refuse the plugin. label: a short title for
 * forms; description: one or two sentences for operators. enum_values: a
 * NULL-terminated list, required for SB_FIELD_ENUM and NULL otherwise. */
typedef struct sb_field {
  const char *key;
  uint32_t type;
  uint32_t flags;
  const char *default_value;
  const char *label;
  const char *description;
  const char *const *enum_values;
} sb_field;

#define SB_FIELD_END {NULL, 0, 0, NULL, NULL, NULL, NULL}

/* ------------------------------------------------------------------------ */
/* Capabilities                                                              */
/* ------------------------------------------------------------------------ */

/* How the host groups this channel's messages into threads by default. */
#define SB_THREAD_PER_CONTACT 0u /* one open thread per contact on the channel */
#define SB_THREAD_EXTERNAL 1u    /* the plugin supplies external_thread_id */

/* Capability flags, ORed into sb_capabilities.flags. */
#define SB_CAP_RICH_TEXT 0x01u           /* send() accepts html */
#define SB_CAP_ATTACHMENTS 0x02u         /* messages carry attachments (see limits) */
#define SB_CAP_REPLY_TO 0x04u            /* a message can answer a specific message */
#define SB_CAP_DELIVERY_RECEIPTS 0x08u   /* emit_status(SB_STATUS_DELIVERED) happens */
#define SB_CAP_READ_RECEIPTS 0x10u       /* emit_status(SB_STATUS_READ) happens */
#define SB_CAP_START_CONVERSATION 0x20u  /* can message a contact who never wrote */
#define SB_CAP_TEMPLATES 0x40u           /* send() understands template */
#define SB_CAP_RECEIVE_ONLY 0x80u        /* since 1.4: the channel only takes messages in (a web
                                            form); its conversations are answered through
                                            another channel (its reply_channel), and send()
                                            is never called */

/* How a reply may start a conversation here with a contact who has none on
 * this channel yet (sb_capabilities.start_by, since 1.3): by the address the
 * help desk knows for the contact. With SB_START_BY_EMAIL a reply sent
 * through this channel to a contact with an email address but no identity
 * here goes to that address (send() gets recipient_id = the address), and
 * the address becomes the contact's identity on the channel. */
#define SB_START_BY_NONE 0u  /* only contacts who wrote on this channel */
#define SB_START_BY_EMAIL 1u /* the contact's email address */

/* Messaging-window policy flags (sb_capabilities.window_flags). */
#define SB_WINDOW_TEMPLATE_OUTSIDE 0x1u  /* outside every window only a template may go */
#define SB_WINDOW_AUTOMATIC_STRICT 0x2u  /* automatic replies never use the extended window */

/* What the channel can do; the host, the API and the marketplace read it. */
typedef struct sb_capabilities {
  uint32_t thread_model; /* SB_THREAD_* */
  uint32_t flags;        /* SB_CAP_* */
  /* Attachment MIME types the channel accepts, as a NULL-terminated list of
   * exact types or "type/" prefixes such as "image/"; NULL means any type. */
  const char *const *attachment_types;
  uint32_t max_attachments;      /* per message; 0 = no attachments */
  uint32_t start_by;             /* since 1.3: SB_START_BY_* (0 in older plugins: none) */
  uint64_t max_attachment_bytes; /* per attachment; 0 = no limit declared */
  /* The service's messaging window, counted from the contact's last inbound
   * message: 0 = no window. Within window_seconds anything may be sent;
   * until extended_window_seconds an agent's message may go with
   * extended_window_tag (e.g. Messenger's HUMAN_AGENT); past that only a
   * template when SB_WINDOW_TEMPLATE_OUTSIDE is set. */
  uint32_t window_seconds;
  uint32_t extended_window_seconds;
  const char *extended_window_tag;
  uint32_t window_flags; /* SB_WINDOW_* */
  uint32_t reserved1;
} sb_capabilities;

/* ------------------------------------------------------------------------ */
/* HTTP: requests to the plugin, and the plugin's own requests out           */
/* ------------------------------------------------------------------------ */

typedef struct sb_http_header {
  const char *name;  /* as received; compare case-insensitively (http_header does) */
  const char *value;
} sb_http_header;

/* A request routed to receive(): any method on /hooks/{channel}[/...]. */
typedef struct sb_http_request {
  const char *method;   /* "GET", "POST", ... */
  const char *path;     /* the full path, e.g. "/hooks/demo/messages" */
  const char *subpath;  /* what follows /hooks/{channel}: "/messages", or "" */
  const char *query;    /* the raw query string without '?', or "" */
  const sb_http_header *headers;
  size_t header_count;
  const char *body;     /* raw bytes, exactly as received; not NUL-terminated */
  size_t body_len;
  const char *remote_addr; /* the peer's address, e.g. "127.0.0.1" */
} sb_http_request;

/* A request the plugin makes through http_request(). Fill with sizeof. */
typedef struct sb_http_client_request {
  uint32_t struct_size;
  uint32_t timeout_ms;         /* whole transfer; 0 = the host's default (30 s) */
  const char *method;          /* NULL = "GET" */
  const char *url;
  const sb_http_header *headers;
  size_t header_count;
  const char *body;            /* may contain NUL bytes */
  size_t body_len;
  uint64_t max_response_bytes; /* 0 = the host's default (8 MiB); larger → SB_EFBIG */
} sb_http_client_request;

/* What the host's HTTP client hands back. Valid only during the callback. */
typedef struct sb_http_client_response {
  int32_t status;       /* SB_OK, or SB_ETIMEDOUT, SB_ECANCELED, SB_EFBIG, SB_EIO ... */
  int32_t http_status;  /* e.g. 200; 0 when no response arrived */
  const char *error;    /* a sentence when status != SB_OK, else NULL */
  const sb_http_header *headers;
  size_t header_count;
  const char *body;     /* NUL-terminated for convenience; body_len excludes it */
  size_t body_len;
  uint64_t elapsed_ms;
} sb_http_client_response;

typedef void (*sb_http_done_fn)(void *arg, const sb_http_client_response *response);

/* ------------------------------------------------------------------------ */
/* Mail: IMAP commands and SMTP sends through the host (since 1.1)           */
/* ------------------------------------------------------------------------ */

/* Transport security of a mail transfer (sb_mail_request.tls). */
#define SB_MAIL_TLS_DEFAULT 0u  /* what the scheme says: imaps:// and smtps:// use TLS, others not */
#define SB_MAIL_TLS_REQUIRED 1u /* imap:// and smtp://: STARTTLS or fail with SB_EPROTO */
#define SB_MAIL_TLS_NONE 2u     /* plaintext; refused with imaps:// or smtps:// */

/* One IMAP command or one SMTP send, made with mail_request(). Fill with
 * sizeof; the host copies every field before mail_request returns. Since 1.1.
 *
 * IMAP (url imap:// or imaps://host[:port]/MAILBOX[;...]): with command NULL
 * the URL is fetched as libcurl understands it, e.g. ".../INBOX/;UID=5"
 * answers the raw RFC 5322 message of UID 5 as the body. With command set
 * (e.g. "UID SEARCH UID 7:*", "STATUS INBOX (UIDVALIDITY UIDNEXT)",
 * "UID STORE 5 +FLAGS (\\Seen)", "UID MOVE 5 Done") the mailbox in the URL
 * is selected first and the body is the server's untagged response lines
 * ("* SEARCH 5 6\r\n"); a tagged NO/BAD fails the call with SB_EIO.
 * A body with IMAP uploads it (APPEND to the URL's mailbox).
 *
 * SMTP (url smtp:// or smtps://host[:port]): mail_from is the envelope
 * sender ("<a@example.org>", or "<>"), rcpt the envelope recipients, body
 * the complete RFC 5322 message (CRLF line ends); all three required. */
typedef struct sb_mail_request {
  uint32_t struct_size;
  uint32_t tls;                /* SB_MAIL_TLS_* */
  uint32_t timeout_ms;         /* whole transfer, a wait for a free thread included; 0 = the host's default (30 s) */
  uint32_t reserved;           /* zero */
  const char *url;
  const char *username;        /* login, or NULL for none */
  const char *password;
  const char *command;         /* IMAP only: a command, or NULL */
  const char *mail_from;       /* SMTP only */
  const char *const *rcpt;     /* SMTP only: rcpt_count addresses */
  size_t rcpt_count;
  const char *body;            /* SMTP: the message; IMAP: APPEND data; may contain NUL */
  size_t body_len;
  uint64_t max_response_bytes; /* 0 = the host's default (8 MiB); larger → SB_EFBIG */
} sb_mail_request;

/* What a mail transfer hands back. Valid only during the callback. Since 1.1.
 * status: SB_OK; SB_EACCES the server refused the login; SB_EPROTO TLS
 * failed or STARTTLS is unavailable; SB_ETIMEDOUT; SB_ECANCELED; SB_EFBIG;
 * SB_EIO anything else (a refused command or recipient: see code and error;
 * for SMTP the error ends with the server's own refusal line). */
typedef struct sb_mail_response {
  int32_t status;
  int32_t code;         /* the server's last reply code (SMTP 250, 451, 550 ...); 0 if none */
  const char *error;    /* a sentence when status != SB_OK, else NULL */
  const char *body;     /* NUL-terminated for convenience; body_len excludes it */
  size_t body_len;
  uint64_t elapsed_ms;
} sb_mail_response;

typedef void (*sb_mail_done_fn)(void *arg, const sb_mail_response *response);

/* ------------------------------------------------------------------------ */
/* Messages in and out                                                       */
/* ------------------------------------------------------------------------ */

/* How a sender is identified on this channel. */
#define SB_IDENTITY_CUSTOM 0u  /* the service's own user id */
#define SB_IDENTITY_EMAIL 1u   /* an email address */
#define SB_IDENTITY_PSID 2u    /* a page-scoped id (Messenger) */
#define SB_IDENTITY_PHONE 3u   /* an E.164 phone number (WhatsApp, SMS) */
#define SB_IDENTITY_VISITOR 4u /* a website visitor id (chat) */

/* The person who wrote an inbound message. id is required; the rest fill a
 * new contact's profile and may be NULL. */
typedef struct sb_sender {
  uint32_t kind; /* SB_IDENTITY_* */
  uint32_t reserved;
  const char *id;
  const char *name;
  const char *email;
  const char *phone;
  const char *avatar_url;
} sb_sender;

#define SB_ATTACHMENT_INLINE 0x1u /* shown inside the body (has content_id) */

/* A file attached to a message: either a URL the help desk can fetch, or the
 * bytes themselves (data/data_len). In send(), a reply's attachment that
 * the help desk holds comes with both: its url is the API's relative
 * /api/v1/attachments/{id}, which the plugin cannot fetch, and data holds
 * the bytes (valid during send(); copy what you keep). */
typedef struct sb_attachment {
  const char *url;
  const char *mime_type;
  const char *filename;
  uint64_t size;            /* bytes, 0 when unknown */
  const char *content_id;   /* for inline parts, else NULL */
  const char *data;         /* NULL, or data_len bytes */
  size_t data_len;
  uint32_t flags;           /* SB_ATTACHMENT_* */
  uint32_t reserved;
} sb_attachment;

/* Inbound message flags. */
#define SB_IN_AUTOMATIC 0x1u   /* an auto-reply, out-of-office, or bot message */
#define SB_IN_ECHO 0x2u        /* sent from elsewhere by the business: stored as outbound */
#define SB_IN_BOUNCE 0x4u      /* a delivery failure report */
#define SB_IN_NO_AUTOREPLY 0x8u /* never answer automatically (lists, bulk mail) */

/* One normalized inbound message, handed to emit_inbound(). Fill with
 * sizeof; the host copies every field before emit_inbound returns. */
typedef struct sb_inbound_message {
  uint32_t struct_size;
  uint32_t flags;                   /* SB_IN_* */
  const char *external_id;          /* the service's message id: required, the dedup key */
  const char *external_thread_id;   /* required when thread_model is SB_THREAD_EXTERNAL */
  const char *reply_to_external_id; /* the message this one answers, or NULL */
  sb_sender sender;
  const char *subject;              /* or NULL */
  const char *text;                 /* plain text, or NULL */
  const char *html;                 /* rich text, or NULL */
  const sb_attachment *attachments;
  size_t attachment_count;
  int64_t timestamp_ms;             /* when the contact sent it (unix ms); 0 = now */
  const char *metadata_json;        /* a JSON object kept with the message, or NULL */
} sb_inbound_message;

/* Called on the loop thread once the message is durably stored (status
 * SB_OK), or could not be (negative status; message_id NULL: SB_EEXIST
 * when its external_id is the one the service gave a reply of the help
 * desk and the message is no echo of it, which a retry cannot mend;
 * anything else is trouble a redelivery may get past). duplicate is 1
 * when external_id was already stored: message_id is then the original's and
 * nothing new was stored. message_id is valid during the call only. It always
 * runs before destroy(): the host waits for pending commits when a channel
 * closes, so a webhook can still be answered from here during a close.
 * Requests left unanswered at destroy() are answered 503 by the host. */
typedef void (*sb_inbound_done_fn)(void *arg, int status, const char *message_id, int duplicate);

/* Delivery statuses. */
#define SB_STATUS_SENT 1u
#define SB_STATUS_DELIVERED 2u
#define SB_STATUS_READ 3u
#define SB_STATUS_FAILED 4u

#define SB_STATUS_WATERMARK 0x1u /* applies to every outbound message to recipient_id
                                    sent at or before timestamp_ms */

/* A delivery receipt for outbound message(s), handed to emit_status(). */
typedef struct sb_status_update {
  uint32_t struct_size;
  uint32_t status;          /* SB_STATUS_* */
  const char *external_id;  /* the outbound message's id at the service (not for watermarks) */
  const char *recipient_id; /* the contact's identity on this channel (for watermarks) */
  const char *error;        /* why it failed, for SB_STATUS_FAILED */
  int64_t timestamp_ms;     /* when it happened; 0 = now */
  uint32_t flags;           /* SB_STATUS_WATERMARK */
  uint32_t recipient_kind;  /* SB_IDENTITY_* of recipient_id (for watermarks) */
} sb_status_update;

/* Outbound message flags. */
#define SB_OUT_AUTOMATIC 0x1u /* an auto-reply, not written by an agent */

/* An agent's (or an automatic) reply handed to send(). Borrowed: copy what
 * you need before send() returns. */
typedef struct sb_outbound_message {
  const char *message_id;         /* the help desk's id */
  const char *idempotency_key;    /* the same on every attempt of this message */
  uint32_t attempt;               /* 1 on the first try */
  uint32_t flags;                 /* SB_OUT_* */
  const char *recipient_id;       /* the contact's identity on this channel */
  const char *recipient_name;
  const char *external_thread_id; /* or NULL */
  const char *reply_to_external_id; /* or NULL */
  const char *subject;            /* or NULL */
  const char *text;
  const char *html;               /* or NULL */
  const sb_attachment *attachments;
  size_t attachment_count;
  const char *template_json;      /* {"name","language","parameters"} or NULL */
  int64_t last_inbound_ms;        /* the contact's last message on this channel (unix ms), 0 if none */
  const char *agent_name;         /* the replying agent's full name, or NULL */
  const char *agent_email;
  const char *agent_avatar_url;   /* since 1.3: the agent's picture, or NULL */
} sb_outbound_message;

/* ------------------------------------------------------------------------ */
/* WebSockets held by the plugin (since 1.3)                                 */
/* ------------------------------------------------------------------------ */

/* A plugin with a ws_open hook takes WebSocket handshakes (a GET with
 * "Upgrade: websocket") under /hooks/{channel}[/...] instead of receive().
 * ws_open decides: SB_OK accepts (the host answers 101 and the connection is
 * the plugin's until ws_closed), a negative code refuses with an HTTP
 * status: SB_EACCES → 403, SB_ENOENT → 404, SB_EAGAIN → 429, SB_EFBIG →
 * 413, anything else → 400. Decide from the request alone (Origin header,
 * query token): ws_open cannot wait. Then each complete message arrives in
 * ws_message (fragments joined; text messages are valid UTF-8, checked by
 * the host), and ws_closed runs exactly once per accepted connection — when
 * the peer closes, the network fails, the plugin calls ws_close, the
 * channel closes or the daemon stops — always before destroy(). The host
 * answers pings, and closes a connection whose message exceeds the server's
 * body limit (1009) or whose text is not UTF-8 (1007). It pings a quiet
 * peer (every 30 s by default, http.websocket_ping) and cuts off one that
 * stays silent for 2.5 times that (ws_closed gets SB_WS_CLOSE_ABNORMAL). */

/* Message kinds for ws_send and ws_message. */
#define SB_WS_TEXT 1u   /* UTF-8 text */
#define SB_WS_BINARY 2u /* bytes */

/* Close codes a plugin may use with ws_close (RFC 6455); 4000-4999 are free
 * for the plugin's own meanings. */
#define SB_WS_CLOSE_NORMAL 1000
#define SB_WS_CLOSE_GOING_AWAY 1001
#define SB_WS_CLOSE_POLICY 1008   /* e.g. a rate limit broken, a token expired */
#define SB_WS_CLOSE_TOO_BIG 1009
#define SB_WS_CLOSE_ABNORMAL 1006 /* ws_closed only: no close frame arrived */

/* ------------------------------------------------------------------------ */
/* Reading back: a contact's conversation, the team's availability (1.3)     */
/* ------------------------------------------------------------------------ */

/* Which messages history() reads. Fill with sizeof; copied by the host. */
typedef struct sb_history_request {
  uint32_t struct_size;
  uint32_t kind;                /* SB_IDENTITY_* of id */
  const char *id;               /* the contact's identity on this channel */
  const char *after_message_id; /* only messages stored after this one, or NULL: the latest */
  uint32_t limit;               /* at most this many (1-200); 0 = 50 */
  uint32_t reserved;            /* zero */
} sb_history_request;

/* Message direction in history. */
#define SB_DIRECTION_IN 1u  /* from the contact */
#define SB_DIRECTION_OUT 2u /* to the contact: an agent's or an automatic reply */

/* One message read back. Valid only during the done callback. */
typedef struct sb_history_message {
  const char *message_id;       /* the help desk's id (decimal; later ids are larger) */
  const char *external_id;      /* the service's id, or NULL */
  uint32_t direction;           /* SB_DIRECTION_* */
  uint32_t status;              /* outbound: SB_STATUS_* reached so far, 0 while queued */
  const char *text;             /* or NULL */
  const char *html;             /* or NULL */
  const char *attachments_json; /* a JSON array of {url, mime_type, filename, size}, or NULL */
  const char *author_name;      /* outbound: the agent's name, NULL for automatic replies */
  const char *author_avatar_url;
  uint32_t flags;               /* SB_OUT_AUTOMATIC for automatic outbound messages */
  uint32_t reserved;
  int64_t timestamp_ms;         /* when it was stored (unix ms) */
} sb_history_message;

/* What history() hands back. Valid only during the done callback. status:
 * SB_OK (also when the contact is unknown: count 0), SB_ECANCELED when the
 * channel is closing, SB_EIO when the store failed. */
typedef struct sb_history {
  int32_t status;
  uint32_t more;                    /* 1 when older (or, with after_message_id, newer) ones were left out */
  const sb_history_message *messages; /* oldest first */
  size_t count;
  const char *contact_name;         /* the contact's name, or NULL when unknown */
  const char *owner_name;           /* the contact's owner (a user), or NULL */
  const char *owner_avatar_url;
} sb_history;

typedef void (*sb_history_done_fn)(void *arg, const sb_history *history);

/* Who could answer on this channel now. Valid only during the callback.
 * "Eligible" users are those the channel's assignment rules draw from (the
 * named users and teams, or every user with a seat), with a seat. */
typedef struct sb_availability {
  int32_t status;                 /* SB_OK, SB_ECANCELED, SB_EIO */
  uint32_t eligible;              /* users the channel's routing draws from */
  uint32_t available;             /* of those, marked available */
  uint32_t with_capacity;         /* of those, below their open-ticket capacity */
  int64_t typical_reply_seconds;  /* median time to an agent's first reply over the
                                     channel's latest 200 conversations of the last
                                     14 days; -1 when none was answered */
} sb_availability;

typedef void (*sb_availability_done_fn)(void *arg, const sb_availability *availability);

/* ------------------------------------------------------------------------ */
/* Channel states                                                            */
/* ------------------------------------------------------------------------ */

/* Transient states make the host retry connect() with backoff; fatal states
 * stop the channel and tell the operator (log, /healthz, API) until the
 * config changes. */
#define SB_STATE_CONNECTING 1u
#define SB_STATE_CONNECTED 2u
#define SB_STATE_DISCONNECTED 3u  /* transient: network lost */
#define SB_STATE_RATE_LIMITED 4u  /* transient: back off */
#define SB_STATE_AUTH_FAILED 64u  /* fatal: credentials refused */
#define SB_STATE_CONFIG_ERROR 65u /* fatal: settings the service rejects */
#define SB_STATE_IS_FATAL(s) ((s) >= 64u)

/* ------------------------------------------------------------------------ */
/* The host API table                                                        */
/* ------------------------------------------------------------------------ */

#define SB_WATCH_READABLE 0x1u
#define SB_WATCH_WRITABLE 0x2u

typedef void (*sb_timer_fn)(void *arg);
typedef void (*sb_watch_fn)(void *arg, int fd, uint32_t events, int status);
typedef void (*sb_work_fn)(void *arg);
typedef void (*sb_work_done_fn)(void *arg, int status);
typedef void (*sb_kv_done_fn)(void *arg, int status);

/* What the host offers a plugin. Passed to sb_plugin_entry() and create();
 * valid until the library is unloaded. Loop-thread-only unless marked
 * thread-safe. Since 1.0 unless marked otherwise. */
struct sb_host {
  sb_abi_header abi;

  /* Writes one structured log line for the channel (NULL: the plugin as a
   * whole). printf format. Values of SECRET fields (of three bytes or
   * more) are redacted even if passed. Thread-safe. */
  void (*log)(sb_channel *channel, int level, const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));

  /* Wall-clock time in unix milliseconds. Use this, not time(): the SDK's
   * test host controls it. Thread-safe. */
  int64_t (*now_ms)(void);

  /* The channel's operator-given name (also the /hooks/{name} path). */
  const char *(*channel_name)(const sb_channel *channel);

  /* Settings. config_get returns a field's value as text (the default when
   * not given; the first value of a MULTI field), or NULL when absent.
   * config_count gives the number of values of a MULTI field (0 or 1
   * otherwise) and config_get_at the i-th. config_int reads an INT, a BOOL
   * (0/1) or a DURATION (in ms), or returns fallback when absent. Pointers
   * live as long as the config, i.e. until destroy(). */
  const char *(*config_get)(const sb_config *config, const char *key);
  size_t (*config_count)(const sb_config *config, const char *key);
  const char *(*config_get_at)(const sb_config *config, const char *key, size_t index);
  int64_t (*config_int)(const sb_config *config, const char *key, int64_t fallback);

  /* Reports the channel's connection state and, for trouble, a reason the
   * operator reads (never a secret). See SB_STATE_*. */
  void (*set_state)(sb_channel *channel, uint32_t state, const char *reason);

  /* Hands one inbound message to the router. Copies it; returns SB_OK when
   * queued (done will be called exactly once, later, on the loop), or a
   * negative code at once for invalid input (SB_EINVAL: no external_id, no
   * sender id, thread id missing for SB_THREAD_EXTERNAL) and done is not
   * called. */
  int (*emit_inbound)(sb_channel *channel, const sb_inbound_message *message,
                      sb_inbound_done_fn done, void *arg);

  /* Records a delivery status for outbound messages. Copies it; returns SB_OK
   * or SB_EINVAL. Unknown external ids are ignored (logged at debug). */
  int (*emit_status)(sb_channel *channel, const sb_status_update *update);

  /* Completes one receive(): status code, headers, body (copied). Call it
   * exactly once per request, now or later (e.g. from an emit_inbound done
   * callback). If the client went away the call is a harmless no-op. */
  int (*respond)(sb_responder *responder, int status, const sb_http_header *headers,
                 size_t header_count, const char *body, size_t body_len);

  /* Finds a request header by name, case-insensitively; NULL if absent. */
  const char *(*http_header)(const sb_http_request *request, const char *name);

  /* Finds a query parameter by name, percent-decoded into buf (at most
   * buflen bytes, NUL-terminated). Returns the length, or -1 if absent or
   * too long. */
  int (*http_query)(const sb_http_request *request, const char *name, char *buf, size_t buflen);

  /* Completes one send(): delivered to the service with its message id; or
   * to be retried after at least retry_after_ms (0: the host's backoff) with
   * a reason; or failed for good with a reason an agent reads. Call exactly
   * one of them once per send(), now or later, at the latest while the host
   * cancels the channel's HTTP calls after disconnect(); sends still open at
   * destroy() are retried by the host. */
  void (*send_ok)(sb_send_op *op, const char *external_id);
  void (*send_retry)(sb_send_op *op, uint32_t retry_after_ms, const char *reason);
  void (*send_fail)(sb_send_op *op, const char *reason);

  /* Timers: fire after timeout_ms, then every repeat_ms if non-zero. The
   * handle is valid until timer_stop() or, for one-shot timers, until the
   * callback returns. The host stops leftovers after destroy(). */
  sb_timer *(*timer_start)(sb_channel *channel, uint64_t timeout_ms, uint64_t repeat_ms,
                           sb_timer_fn fn, void *arg);
  void (*timer_stop)(sb_timer *timer);

  /* Watches a file descriptor the plugin owns for SB_WATCH_* events; fn gets
   * the events that happened, or a negative status. watch_stop() before
   * closing the fd. */
  sb_watch *(*watch_fd)(sb_channel *channel, int fd, uint32_t events, sb_watch_fn fn, void *arg);
  void (*watch_stop)(sb_watch *watch);

  /* Starts an HTTP request on the host's shared client. The request is
   * copied. done runs once on the loop, also on failure and on cancel; the
   * returned handle is valid until then (NULL on invalid input, and done
   * is then not called). Pending calls are cancelled on destroy(). */
  sb_http_call *(*http_request)(sb_channel *channel, const sb_http_client_request *request,
                                sb_http_done_fn done, void *arg);
  void (*http_cancel)(sb_http_call *call);

  /* Runs work(arg) on the host's thread pool (it may block there), then
   * done(arg, status) on the loop. status is SB_OK, or SB_ECANCELED when the
   * channel is closing (work may still have run). done always runs before
   * destroy(): the host waits for queued work, so keep work short. */
  int (*queue_work)(sb_channel *channel, sb_work_fn work, sb_work_done_fn done, void *arg);

  /* A small per-channel key/value store that survives restarts (cursors,
   * tokens). kv_get reads the host's in-memory copy: the pointer is valid
   * until the next kv_set/kv_delete of that key or the hook returns; *len
   * gets the value's length; NULL when absent. kv_set/kv_delete copy, take
   * effect for later kv_get at once, and call done (may be NULL) once the
   * change is durable — before destroy(), which waits for it. Keys up to 200 bytes; values are UTF-8 text without
   * NUL bytes, up to 64 KiB (encode binary data, e.g. as hex). */
  const char *(*kv_get)(sb_channel *channel, const char *key, size_t *len);
  int (*kv_set)(sb_channel *channel, const char *key, const char *value, size_t len,
                sb_kv_done_fn done, void *arg);
  int (*kv_delete)(sb_channel *channel, const char *key, sb_kv_done_fn done, void *arg);

  /* HMAC-SHA256 of data under key, written as 32 raw bytes to out.
   * Thread-safe. */
  void (*hmac_sha256)(const void *key, size_t key_len, const void *data, size_t data_len,
                      uint8_t out[32]);
  /* Compares two buffers in constant time; returns 1 when equal. Thread-safe. */
  int (*equal_ct)(const void *a, const void *b, size_t len);

  /* Since 1.1. Starts one IMAP command or SMTP send (sb_mail_request) on
   * the host's transfer engine; each runs on its own connection off the
   * loop. The request is copied. done runs once on the loop, also on
   * failure and on cancel; the returned handle is valid until then (NULL on
   * invalid input, and done is then not called). Pending calls are
   * cancelled (SB_ECANCELED) on destroy(). Check SB_HOST_HAS(host,
   * mail_request) first. */
  sb_mail_call *(*mail_request)(sb_channel *channel, const sb_mail_request *request,
                                sb_mail_done_fn done, void *arg);
  /* Since 1.1. Cancels one mail call: its done runs inside with SB_ECANCELED. */
  void (*mail_cancel)(sb_mail_call *call);

  /* Since 1.2. Completes one send() as "not now, and not a failure": the
   * message stays queued and is offered again after at least defer_ms (0:
   * one second), without counting as an attempt, so it never dead-letters.
   * For holds that end on an outside event: consent awaited, a channel
   * paused by the service. The reason is shown to agents meanwhile. Check
   * SB_HOST_HAS(host, send_defer) first; on an older host use send_retry. */
  void (*send_defer)(sb_send_op *op, uint32_t defer_ms, const char *reason);

  /* Since 1.3. Queues one message (SB_WS_TEXT or SB_WS_BINARY) on a
   * WebSocket the plugin accepted; the data is copied. Returns SB_OK;
   * SB_ENOENT once the connection is closing (ws_closed follows, if it has
   * not run); SB_EAGAIN when the message would take what waits to be
   * written to this peer past 1 MiB (a slow or dead reader: close it or
   * drop the message; a message on an empty queue always goes); SB_EINVAL
   * for a bad kind or text that is not UTF-8. */
  int (*ws_send)(sb_ws *ws, uint32_t kind, const char *data, size_t len);
  /* Since 1.3. Starts closing a WebSocket with a close code (1000, or
   * 4000-4999 for the plugin's own) and a short reason (at most 123
   * bytes). ws_closed follows on the loop, never inside this call; a peer
   * that does not answer is cut off after 5 seconds. Idempotent. */
  void (*ws_close)(sb_ws *ws, int code, const char *reason);
  /* Since 1.3. The remote address of a WebSocket ("127.0.0.1"). */
  const char *(*ws_remote_addr)(const sb_ws *ws);

  /* Since 1.3. Reads back a contact's messages on this channel (all of its
   * threads here), newest `limit`, or those after after_message_id, oldest
   * first, with the contact's name and owner. Runs off the loop; done runs
   * once on the loop, also when cancelled (channel closing), always before
   * destroy(). Returns SB_OK, or SB_EINVAL (no id, bad limit) and done is
   * not called. */
  int (*history)(sb_channel *channel, const sb_history_request *request,
                 sb_history_done_fn done, void *arg);

  /* Since 1.3. Counts who could answer on this channel now (see
   * sb_availability), e.g. to show a chat launcher only while someone is
   * there. Runs off the loop; done runs once on the loop, always before
   * destroy(). Cheap enough for every few seconds, not for every request:
   * cache the answer. Returns SB_OK or a negative code (done not called). */
  int (*availability)(sb_channel *channel, sb_availability_done_fn done, void *arg);

  /* Since 1.3. Ends a hold early: every reply of this channel to the
   * contact with identity (kind, id) that waits after send_defer is offered
   * to send() again within about a second, e.g. the moment that contact
   * gives consent. Returns SB_OK (also when nothing waited), SB_EINVAL. */
  int (*send_release)(sb_channel *channel, uint32_t kind, const char *id);

  /* Since 1.4. A link that downloads a file the help desk stores without a
   * token, until it expires: attachment_id is the id in the file's link
   * /api/v1/attachments/{id} (a reply's attachment that send() got with its
   * bytes, or a history message's). Written to buf: "/files/{id}?expires=
   * {unix seconds}&sig={hex}", relative to the daemon's HTTP address (the
   * host does not know the name it is reached by). Whoever holds the link
   * can download the file, so give it only to the conversation's contact.
   * ttl_seconds is 1 to 604800 (a week); links also end when the daemon
   * restarts (a new key). Returns the link's length, or SB_EINVAL (bad id or
   * ttl), SB_EFBIG (buf too small; 128 bytes always do). */
  int (*attachment_link)(sb_channel *channel, int64_t attachment_id, uint32_t ttl_seconds, char *buf,
                         size_t buflen);
};

/* ------------------------------------------------------------------------ */
/* The plugin descriptor                                                     */
/* ------------------------------------------------------------------------ */

/* Describes one channel type. A static const in the plugin; the host copies
 * abi.struct_size bytes of it. Hooks marked required must be non-NULL.
 * Since 1.0 unless marked otherwise. */
struct sb_plugin {
  sb_abi_header abi; /* SB_PLUGIN_INIT */

  const char *id;          /* unique, 1-32 of [a-z0-9_], starting with a letter: "messenger" */
  const char *name;        /* shown to operators: "Facebook Messenger" */
  const char *publisher;   /* who made it: "Acme Ltd" */
  const char *version;     /* the plugin's own semantic version: "1.2.0" */
  const char *description; /* one sentence */
  const char *logo_url;    /* or NULL */
  const sb_field *credentials; /* the schema, ended by SB_FIELD_END; NULL = none */
  sb_capabilities caps;

  /* Optional. Checks settings beyond what the schema can say (e.g. two
   * fields that exclude each other). Returns SB_OK or SB_EINVAL with a
   * sentence naming the key in err. Must not do I/O. */
  int (*validate)(const sb_host *host, const sb_config *config, char *err, size_t errlen);

  /* Required. Makes an instance for one channel; config has passed the
   * schema. Must not do I/O: connect() does that. Returns SB_OK and sets
   * *instance, or a negative code with a sentence in err. The config and
   * channel stay valid until destroy(). */
  int (*create)(const sb_host *host, sb_channel *channel, const sb_config *config,
                void **instance, char *err, size_t errlen);

  /* Optional. Brings the instance online: start polling, open connections,
   * check the credentials with the service. Asynchronous: report the outcome
   * with set_state (SB_STATE_CONNECTED, SB_STATE_AUTH_FAILED, ...). When NULL
   * the host marks the channel connected after create(). Called again after
   * a transient failure, with backoff. */
  int (*connect)(void *instance);

  /* Optional (required for webhook channels). Handles one HTTP request for
   * /hooks/{channel}[/...]. Answer with host->respond, now or later. Return
   * SB_OK, or a negative code if the request was not taken (the host then
   * answers 500 itself, and respond must not be called). */
  int (*receive)(void *instance, const sb_http_request *request, sb_responder *responder);

  /* Required. Sends one outbound message. Complete it with send_ok,
   * send_retry or send_fail, now or later. Return SB_OK, or a negative code
   * if it was not taken (treated as a retry; no completion may follow). */
  int (*send)(void *instance, const sb_outbound_message *message, sb_send_op *op);

  /* Optional. Goes offline: stop timers, cancel requests, close
   * connections. The host then cancels what is left (HTTP calls complete
   * with SB_ECANCELED), waits for queued work and inbound commits to
   * complete, calls destroy(), answers 503 to requests still unanswered
   * and retries sends still open. */
  void (*disconnect)(void *instance);

  /* Required. Frees the instance. Called once, after disconnect. */
  void (*destroy)(void *instance);

  /* Since 1.3. Optional. A WebSocket handshake for /hooks/{channel}[/...]
   * (see "WebSockets held by the plugin"). Return SB_OK to accept and set
   * *conn to the connection's own state (handed back to ws_message and
   * ws_closed), or a negative code to refuse. Without this hook handshakes
   * go to receive() as ordinary requests. ws may be used (ws_send) as soon
   * as ws_open returns SB_OK. */
  int (*ws_open)(void *instance, const sb_http_request *request, sb_ws *ws, void **conn);
  /* Since 1.3. Optional (required with ws_open). One complete message from
   * the peer; data is borrowed (not NUL-terminated). Not called once a
   * close was started (by either side) or the channel is closing. */
  void (*ws_message)(void *instance, sb_ws *ws, void *conn, uint32_t kind, const char *data,
                     size_t len);
  /* Since 1.3. Optional (required with ws_open). The connection is over:
   * code is the peer's close code (1005 when its close frame had none); the
   * host's own when it closed for a protocol failure (1002, 1007, 1009);
   * or SB_WS_CLOSE_ABNORMAL when no closing handshake finished (the peer
   * vanished, or did not answer a close within 5 seconds). When the channel
   * closes or the daemon stops, it runs right after disconnect() for every
   * open connection, with the code the close was started with (1001, or
   * the plugin's own from a ws_close in disconnect), while the plugin's
   * timers are still valid to stop; the host then finishes the closing
   * handshakes alone. Free conn here; ws is invalid once this returns.
   * Runs once per accepted connection, before destroy(); ws_send/ws_close
   * are not allowed inside it. */
  void (*ws_closed)(void *instance, sb_ws *ws, void *conn, int code);
};

#ifdef __cplusplus
}
#endif

#endif /* SWITCHBOARD_PLUGIN_H */
