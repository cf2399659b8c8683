/* config.h — the daemon's JSON config file (API.md "Config"): structure and
 * top-level validation. Channel credentials are checked against their
 * plugin's schema by channel.c once the plugins are loaded. */
#ifndef SB_CORE_CONFIG_H
#define SB_CORE_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct config_channel {
  const char *name;    /* [A-Za-z0-9_-]{1,64}, unique; the /hooks/{name} path */
  const char *plugin;  /* the plugin id */
  const char *inbox;   /* the inbox it feeds; default "Support" */
  int enabled;         /* "status": "on" (default) or "off" */
  json_t *credentials; /* borrowed from spec; literals or env/file refs, may be NULL */
  json_t *spec;        /* borrowed: the whole channel object (routing, ticket, ...) */
} config_channel;

typedef struct config {
  char *path;     /* the file as given */
  char *base_dir; /* its directory: relative paths in the file resolve against it */
  json_t *root;   /* the parsed document; every borrowed pointer lives in it */
  const char *listen;         /* "HOST:PORT", default "127.0.0.1:8080" */
  const char *store;          /* "sqlite:PATH", default "sqlite:./data/switchboard.db" */
  char *secret_key;           /* resolved secret key (64 hex digits), or NULL if not configured */
  int log_level;              /* LOG_LEVEL_*, default info */
  const char **plugin_dirs;   /* resolved against base_dir */
  size_t plugin_dir_count;
  const char **allow;         /* plugin ids; "*" allows all */
  size_t allow_count;
  const char **trusted_keys;  /* "plugins.trusted_keys": Ed25519 public keys (hex) whose packages install */
  size_t trusted_key_count;
  int require_signed;         /* "plugins.require_signed": load only files a trusted package installed */
  /* "http": {"body_limit": BYTES, "header_timeout": DURATION, "idle_timeout":
   * DURATION, "sse_keepalive": DURATION, "tls_cert": PATH, "tls_key": PATH}; 0/NULL = the server's default. */
  size_t http_body_limit;
  int64_t http_header_timeout_ms;
  int64_t http_idle_timeout_ms;
  size_t http_sse_max_pending;   /* "http.sse_max_pending": unsent bytes before a live stream is dropped; 0 = 1 MiB */
  int64_t http_sse_keepalive_ms; /* "http.sse_keepalive": comment on idle event streams; 0 = 15 s */
  int64_t http_websocket_ping_ms; /* "http.websocket_ping": ping a quiet WebSocket; 0 = 30 s */
  const char *tls_cert;
  const char *tls_key;
  /* "outbox": {"retry_base": DURATION, "retry_max": DURATION, "max_attempts":
   * N}; 0 = the outbox's defaults (1 s, 1 h, 8). */
  int64_t outbox_retry_base_ms;
  int64_t outbox_retry_max_ms;
  int outbox_max_attempts;
  /* "attachments": {"max_bytes": BYTES}: the largest inbound attachment
   * whose content is stored (0: none); -1 = the store's default (25 MiB). */
  int64_t attachments_max_bytes;
  config_channel *channels;
  size_t channel_count;
  char **owned;               /* strings this struct allocated (resolved paths) */
  size_t owned_count;
} config;

/* Reads and validates the file's structure: JSON syntax (error with
 * line:column), known top-level keys, types of listen/store/secret_key/
 * plugins/channels, channel names unique and well-formed, plugin named.
 * listen and store may be overridden (NULL: keep the file's). Returns 0 and
 * *out (free with config_free), or -EINVAL / -ENOENT with one sentence. */
int config_load(const char *path, const char *listen_override, const char *store_override,
                config **out, char *err, size_t errlen);
void config_free(config *cfg);

/* True when plugin id is allowed by plugins.allow. */
int config_plugin_allowed(const config *cfg, const char *plugin_id);

/* Finds a channel by name, or NULL. */
const config_channel *config_find_channel(const config *cfg, const char *name);

#endif
