/* chat.c — the website chat channel: its descriptor and settings, the
 * instance's life (the token key, the time zone, the team's availability).
 *
 * Visitors chat from the operator's own site through a small widget this
 * channel serves under /hooks/{channel}/ (chat_http.c); messages travel over
 * a WebSocket the plugin holds (chat_conv.c, ABI 1.3). docs/channels/chat.md
 * is the operator's manual.
 */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

static const char *const chat_headings[] = {"company", "user", "contact_owner", NULL};
static const char *const chat_modes[] = {"users", "hours", "always", NULL};
static const char *const chat_away[] = {"reply_time", "away_message", "hide", NULL};
static const char *const chat_capacity[] = {"waiting_message", "hide", "nothing", NULL};

static const sb_field chat_schema[] = {
    {"accent_color", SB_FIELD_STRING, 0, "#2f6fed", "Accent colour",
     "The launcher's and the visitor's bubbles' colour, as #rgb or #rrggbb.", NULL},
    {"heading", SB_FIELD_ENUM, 0, "company", "Chat heading",
     "What the panel's heading shows: company (heading_name), user (heading_name and heading_avatar_url: one "
     "person of the team), or contact_owner (the visitor's contact owner once known, else heading_name).",
     chat_headings},
    {"heading_name", SB_FIELD_STRING, 0, "Support", "Heading name",
     "The company's or the person's name in the heading.", NULL},
    {"heading_avatar_url", SB_FIELD_URL, 0, NULL, "Heading avatar", "A picture shown next to the heading.", NULL},
    {"welcome_message", SB_FIELD_STRING, 0, "Hi! How can we help?", "Welcome message",
     "The first thing a visitor reads when the panel opens.", NULL},
    {"availability", SB_FIELD_ENUM, 0, "users", "Availability",
     "users: open while at least one user the routing can assign is available; hours: open during hours in "
     "timezone; always: always open.",
     chat_modes},
    {"hours", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Office hours",
     "For availability hours: days and time ranges, one rule a value, e.g. \"mon-fri 09:00-17:00\", "
     "\"sat 10:00-12:00 13:00-15:00\".",
     NULL},
    {"timezone", SB_FIELD_STRING, 0, "UTC", "Time zone",
     "The IANA time zone the hours are in, e.g. Europe/Oslo.", NULL},
    {"away_behavior", SB_FIELD_ENUM, 0, "reply_time", "When away",
     "reply_time: show the typical reply time; away_message: show away_message; hide: no launcher.", chat_away},
    {"away_message", SB_FIELD_STRING, 0, "We're away right now. Leave a message and we'll get back to you.",
     "Away message", "Shown when away and away_behavior is away_message.", NULL},
    {"capacity_behavior", SB_FIELD_ENUM, 0, "waiting_message", "When everyone is busy",
     "When every available user is at capacity: waiting_message: show waiting_message; hide: no launcher; "
     "nothing: chat as usual.",
     chat_capacity},
    {"waiting_message", SB_FIELD_STRING, 0, "Everyone is helping someone else right now; we'll be with you shortly.",
     "Waiting message", "Shown when every available user is at capacity.", NULL},
    {"offline_email", SB_FIELD_BOOL, 0, "true", "Ask for an email when offline",
     "While away, ask the visitor for an email address so the answer can follow by email.", NULL},
    {"allowed_origins", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Allowed origins",
     "The sites that may show the widget, e.g. https://www.example.com; \"*\" for any. None given: only pages "
     "served from the help desk's own address.",
     NULL},
    {"identity_secret", SB_FIELD_STRING, SB_FIELD_SECRET, NULL, "Identity secret",
     "Turns on verified identity: the site passes a user id and HMAC-SHA256(identity_secret, user id) in hex.", NULL},
    {"public_url", SB_FIELD_URL, 0, NULL, "Public URL",
     "Where visitors' browsers reach the help desk, e.g. https://help.example.com; used in the embed snippet.",
     NULL},
    {"rate_limit", SB_FIELD_INT, 0, "20", "Messages a minute",
     "How many messages one visitor may send a minute; 0: no limit.", NULL},
    {"max_message_bytes", SB_FIELD_INT, 0, "4000", "Largest message", "The longest text a visitor may send, in bytes.",
     NULL},
    {"max_attachment_bytes", SB_FIELD_INT, 0, "524288", "Largest attachment",
     "The largest file a visitor may attach, in bytes (at most 700000; 0: no attachments).", NULL},
    {"demo_page", SB_FIELD_BOOL, 0, "false", "Demo page",
     "Serve a page with the widget at /hooks/{channel}/demo, to try the channel from the help desk's own address.",
     NULL},
    SB_FIELD_END,
};

static const char *const chat_attachment_types[] = {"image/", "application/pdf", "text/plain", NULL};

/* --- lists ---------------------------------------------------------------------- */

void chat_list_init(chat_link *head) { head->prev = head->next = head; }

int chat_list_empty(const chat_link *head) { return head->next == head; }

void chat_list_add(chat_link *head, chat_link *node) {
  node->next = head;
  node->prev = head->prev;
  head->prev->next = node;
  head->prev = node;
}

void chat_list_remove(chat_link *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = node;
}

/* --- settings ----------------------------------------------------------------------- */

static int chat__index(const char *value, const char *const *names, int fallback) {
  for (int i = 0; value != NULL && names[i] != NULL; i++) {
    if (strcmp(value, names[i]) == 0) return i;
  }
  return fallback;
}

/* validate(): what the schema cannot say. Never names the secret's value. */
static int chat__validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  const char *color = host->config_get(cfg, "accent_color");
  if (color != NULL && !chat_color_valid(color)) {
    snprintf(err, errlen, "setting \"accent_color\" must be a hex colour such as #2f6fed or #26e");
    return SB_EINVAL;
  }
  const char *tz = host->config_get(cfg, "timezone");
  if (tz != NULL && !chat_tz_name_valid(tz)) {
    snprintf(err, errlen, "setting \"timezone\" must be an IANA time zone name such as Europe/Oslo or UTC");
    return SB_EINVAL;
  }
  chat_hours hours[CHAT_MAX_HOURS];
  size_t nh = 0, count = host->config_count(cfg, "hours");
  for (size_t i = 0; i < count; i++) {
    char why[200];
    if (chat_hours_parse(host->config_get_at(cfg, "hours", i), hours, CHAT_MAX_HOURS, &nh, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "setting \"hours\" value %zu: %s", i + 1, why);
      return SB_EINVAL;
    }
  }
  const char *mode = host->config_get(cfg, "availability");
  if (mode != NULL && strcmp(mode, "hours") == 0 && count == 0) {
    snprintf(err, errlen, "setting \"hours\" is needed when \"availability\" is hours, e.g. [\"mon-fri 09:00-17:00\"]");
    return SB_EINVAL;
  }
  count = host->config_count(cfg, "allowed_origins");
  for (size_t i = 0; i < count; i++) {
    if (!chat_origin_valid(host->config_get_at(cfg, "allowed_origins", i))) {
      snprintf(err, errlen,
               "setting \"allowed_origins\" value %zu must be an origin such as https://www.example.com (scheme, "
               "host and port only) or \"*\"",
               i + 1);
      return SB_EINVAL;
    }
  }
  const char *secret = host->config_get(cfg, "identity_secret");
  if (secret != NULL && strlen(secret) < 16) {
    snprintf(err, errlen, "credential \"identity_secret\" must be at least 16 bytes; use 32 random bytes");
    return SB_EINVAL;
  }
  int64_t v = host->config_int(cfg, "rate_limit", 20);
  if (v < 0 || v > 100000) {
    snprintf(err, errlen, "setting \"rate_limit\" must be between 0 (no limit) and 100000 messages a minute");
    return SB_EINVAL;
  }
  v = host->config_int(cfg, "max_message_bytes", 4000);
  if (v < 1 || v > 100000) {
    snprintf(err, errlen, "setting \"max_message_bytes\" must be between 1 and 100000");
    return SB_EINVAL;
  }
  v = host->config_int(cfg, "max_attachment_bytes", 524288);
  if (v < 0 || v > 700000) {
    snprintf(err, errlen,
             "setting \"max_attachment_bytes\" must be between 0 (no attachments) and 700000 (base64 in one 1 MiB "
             "message)");
    return SB_EINVAL;
  }
  return SB_OK;
}

/* create(): reads the settings (no I/O). */
static int chat__create(const sb_host *host, sb_channel *channel, const sb_config *cfg, void **instance, char *err,
                        size_t errlen) {
  if (chat__validate(host, cfg, err, errlen) != SB_OK) return SB_EINVAL;
  chat *c = calloc(1, sizeof(*c));
  size_t n = host->config_count(cfg, "allowed_origins");
  if (c == NULL || (n > 0 && (c->origins = calloc(n, sizeof(*c->origins))) == NULL)) {
    free(c);
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
  }
  c->host = host;
  c->channel = channel;
  c->config = cfg;
  c->mode = chat__index(host->config_get(cfg, "availability"), chat_modes, CHAT_MODE_USERS);
  c->away_behavior = chat__index(host->config_get(cfg, "away_behavior"), chat_away, CHAT_AWAY_REPLY_TIME);
  c->capacity_behavior =
      chat__index(host->config_get(cfg, "capacity_behavior"), chat_capacity, CHAT_CAPACITY_WAITING);
  c->offline_email = host->config_int(cfg, "offline_email", 1) != 0;
  c->demo_page = host->config_int(cfg, "demo_page", 0) != 0;
  c->identity_secret = host->config_get(cfg, "identity_secret");
  for (size_t i = 0; i < n; i++) c->origins[i] = host->config_get_at(cfg, "allowed_origins", i);
  c->origin_count = n;
  size_t count = host->config_count(cfg, "hours");
  for (size_t i = 0; i < count; i++) {
    char why[200];
    chat_hours_parse(host->config_get_at(cfg, "hours", i), c->hours, CHAT_MAX_HOURS, &c->hours_count, why,
                     sizeof(why));
  }
  c->rate_per_minute = host->config_int(cfg, "rate_limit", 20);
  c->max_text_bytes = host->config_int(cfg, "max_message_bytes", 4000);
  c->max_attachment_bytes = host->config_int(cfg, "max_attachment_bytes", 524288);
  c->typical_reply_seconds = -1;
  chat_list_init(&c->visitors);
  if (!SB_HOST_HAS(host, ws_send)) {
    host->log(channel, SB_LOG_WARN,
              "this host has no plugin WebSockets (ABI 1.3); the widget will send over HTTP and see replies only "
              "when it reloads its history");
  }
  *instance = c;
  return SB_OK;
}

/* --- the token key ------------------------------------------------------------------ */

/* Reads the channel's token key from kv, or makes and stores one. Tokens
 * stay valid across restarts because the key does. Returns SB_OK or SB_EIO. */
static int chat__load_key(chat *c) {
  size_t len = 0;
  const char *hex = c->host->kv_get(c->channel, CHAT_KV_TOKEN_KEY, &len);
  if (hex != NULL && len == 64) {
    char buf[65];
    memcpy(buf, hex, 64);
    buf[64] = '\0';
    if (chat_unhex32(buf, c->token_key) == 0) {
      c->have_key = 1;
      return SB_OK;
    }
  }
  if (getrandom(c->token_key, sizeof(c->token_key), 0) != (ssize_t)sizeof(c->token_key)) return SB_EIO;
  char out[65];
  chat_hex(c->token_key, out);
  int rc = c->host->kv_set(c->channel, CHAT_KV_TOKEN_KEY, out, 64, NULL, NULL);
  if (rc != SB_OK) return rc;
  c->have_key = 1;
  return SB_OK;
}

/* --- the time zone (read off the loop) ------------------------------------------------ */

typedef struct chat_tzload {
  chat *c;
  char path[128];
  int rc;
  chat_tz tz;
} chat_tzload;

#define CHAT_TZ_MAX_FILE ((size_t)1 << 20)

/* queue_work: reads and parses the TZif file. "UTC" without a file is UTC. */
static void chat__tz_work(void *arg) {
  chat_tzload *t = arg;
  t->rc = -1;
  FILE *f = fopen(t->path, "rb");
  if (f == NULL) return;
  uint8_t *data = malloc(CHAT_TZ_MAX_FILE);
  size_t n = data != NULL ? fread(data, 1, CHAT_TZ_MAX_FILE, f) : 0;
  fclose(f);
  if (data != NULL && n > 0 && n < CHAT_TZ_MAX_FILE) t->rc = chat_tz_parse(data, n, &t->tz);
  free(data);
}

static void chat__tz_done(void *arg, int status) {
  chat_tzload *t = arg;
  chat *c = t->c;
  const char *name = c->host->config_get(c->config, "timezone");
  if (status == SB_OK && t->rc == 0) {
    chat_tz_free(&c->tz);
    c->tz = t->tz;
    c->tz_ready = 1;
  } else {
    chat_tz_free(&t->tz);
    if (name != NULL && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
      c->tz_ready = 1; /* a zero chat_tz is UTC */
    } else if (status == SB_OK && !c->closing) {
      char reason[200];
      snprintf(reason, sizeof(reason), "setting \"timezone\": no time zone %.64s in /usr/share/zoneinfo",
               name != NULL ? name : "");
      c->host->set_state(c->channel, SB_STATE_CONFIG_ERROR, reason);
    }
  }
  free(t);
}

/* --- the team's availability ------------------------------------------------------------ */

static void chat__availability_done(void *arg, const sb_availability *a) {
  chat *c = arg;
  c->availability_pending = 0;
  if (a == NULL || a->status != SB_OK) return;
  c->team.known = 1;
  c->team.eligible = a->eligible;
  c->team.available = a->available;
  c->team.with_capacity = a->with_capacity;
  c->typical_reply_seconds = a->typical_reply_seconds;
}

static void chat__availability_tick(void *arg) {
  chat *c = arg;
  chat_visitors_prune(c, 0);
  if (c->closing || c->availability_pending || !SB_HOST_HAS(c->host, availability)) return;
  if (c->host->availability(c->channel, chat__availability_done, c) == SB_OK) c->availability_pending = 1;
}

int chat_current_state(const chat *c) {
  int in_hours = 0;
  if (c->mode == CHAT_MODE_HOURS && c->tz_ready) {
    int weekday, minute;
    chat_tz_local(&c->tz, c->host->now_ms() / 1000, &weekday, &minute);
    in_hours = chat_hours_open(c->hours, c->hours_count, weekday, minute);
  }
  return chat_state(c->mode, in_hours, &c->team);
}

/* --- lifecycle ------------------------------------------------------------------------- */

/* connect(): the token key, the time zone (hours mode), the availability
 * timer. Connected at once: the widget works while the zone loads (away
 * until it has). */
static int chat__connect(void *instance) {
  chat *c = instance;
  c->closing = 0;
  if (!c->have_key && chat__load_key(c) != SB_OK) {
    c->host->set_state(c->channel, SB_STATE_DISCONNECTED, "could not make the key that signs visitor tokens");
    return SB_OK;
  }
  if (c->identity_secret != NULL)
    c->host->hmac_sha256(c->token_key, sizeof(c->token_key), c->identity_secret, strlen(c->identity_secret),
                         c->user_key);
  if (c->mode == CHAT_MODE_HOURS && !c->tz_ready) {
    chat_tzload *t = calloc(1, sizeof(*t));
    const char *name = c->host->config_get(c->config, "timezone");
    if (t == NULL) return SB_ENOMEM;
    t->c = c;
    snprintf(t->path, sizeof(t->path), "/usr/share/zoneinfo/%s", name != NULL ? name : "UTC");
    if (c->host->queue_work(c->channel, chat__tz_work, chat__tz_done, t) != SB_OK) {
      free(t);
      return SB_EAGAIN;
    }
  }
  c->host->set_state(c->channel, SB_STATE_CONNECTED, NULL);
  if (c->availability_timer == NULL) {
    chat__availability_tick(c); /* the first answer now: the launcher depends on it */
    c->availability_timer = c->host->timer_start(c->channel, CHAT_AVAILABILITY_EVERY_MS,
                                                 CHAT_AVAILABILITY_EVERY_MS, chat__availability_tick, c);
  }
  return SB_OK;
}

/* disconnect(): stops the timer and closes every socket; ws_closed follows
 * for each, before destroy(). */
static void chat__disconnect(void *instance) {
  chat *c = instance;
  c->closing = 1;
  if (c->availability_timer != NULL) {
    c->host->timer_stop(c->availability_timer);
    c->availability_timer = NULL;
  }
  for (chat_link *l = c->visitors.next; l != &c->visitors; l = l->next) {
    chat_visitor *v = (chat_visitor *)l;
    for (chat_link *k = v->conns.next; k != &v->conns; k = k->next) {
      chat_conn *cn = (chat_conn *)k;
      if (cn->ws != NULL && SB_HOST_HAS(c->host, ws_close)) c->host->ws_close(cn->ws, SB_WS_CLOSE_GOING_AWAY, "closing");
    }
  }
}

static void chat__destroy(void *instance) {
  chat *c = instance;
  if (!c->closing) chat__disconnect(c);
  chat_visitors_prune(c, 1);
  chat_tz_free(&c->tz);
  free(c->origins);
  free(c);
}

static const sb_plugin chat_plugin = {
    SB_PLUGIN_INIT,
    .id = "chat",
    .name = "Website chat",
    .publisher = "Switchboard",
    .version = CHAT_VERSION,
    .description = "A chat widget for your website: visitors talk to the team in real time.",
    .logo_url = NULL,
    .credentials = chat_schema,
    .caps = {.thread_model = SB_THREAD_PER_CONTACT,
             .flags = SB_CAP_ATTACHMENTS | SB_CAP_DELIVERY_RECEIPTS | SB_CAP_READ_RECEIPTS,
             .attachment_types = chat_attachment_types,
             .max_attachments = CHAT_MAX_ATTACHMENTS,
             .max_attachment_bytes = 700000},
    .validate = chat__validate,
    .create = chat__create,
    .connect = chat__connect,
    .receive = chat_http_receive,
    .send = chat_send,
    .disconnect = chat__disconnect,
    .destroy = chat__destroy,
    .ws_open = chat_ws_open,
    .ws_message = chat_ws_message,
    .ws_closed = chat_ws_closed,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "the chat channel needs plugin ABI %d.x", SB_ABI_MAJOR);
    return SB_EVERSION;
  }
  *out = &chat_plugin;
  return SB_OK;
}
