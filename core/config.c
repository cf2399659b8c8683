/* config.c — loading and checking the daemon's JSON config file. */
#include "config.h"
#include "listen_addr.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "router.h"
#include "schema.h"

static const char *const config__top_keys[] = {
    "listen", "store", "secret_key", "log_level", "plugins", "channels", "http",
    "pipelines", "users", "teams", "outbox", "attachments", NULL,
};

/* Keys of a channel object. The policy keys (thread_policy onwards) are
 * checked in depth by the router's parser. */
static const char *const config__channel_keys[] = {
    "name", "plugin", "inbox", "status", "credentials", "thread_policy", "closed_thread",
    "creates_tickets", "reply_channel", "routing", "ticket", "auto_replies", NULL,
};

static int config__known(const char *const *keys, const char *key) {
  for (; *keys != NULL; keys++) {
    if (strcmp(*keys, key) == 0) return 1;
  }
  return 0;
}

static int config__name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!(isalnum(c) || c == '_' || c == '-')) return 0;
  }
  return 1;
}

static const char *config__own(config *cfg, char *s) {
  if (s == NULL) return NULL;
  char **grown = realloc(cfg->owned, (cfg->owned_count + 1) * sizeof(*grown));
  if (grown == NULL) {
    free(s);
    return NULL;
  }
  cfg->owned = grown;
  cfg->owned[cfg->owned_count++] = s;
  return s;
}

/* Resolves a path from the file against the file's directory. */
static const char *config__path(config *cfg, const char *p) {
  if (p[0] == '/') return p;
  char *full = NULL;
  if (asprintf(&full, "%s/%s", cfg->base_dir, p) < 0) return NULL;
  return config__own(cfg, full);
}

void config_free(config *cfg) {
  if (cfg == NULL) return;
  for (size_t i = 0; i < cfg->owned_count; i++) free(cfg->owned[i]);
  free(cfg->owned);
  free(cfg->channels);
  free(cfg->plugin_dirs);
  free(cfg->allow);
  free(cfg->trusted_keys);
  if (cfg->secret_key != NULL) {
    memset(cfg->secret_key, 0, strlen(cfg->secret_key));
    free(cfg->secret_key);
  }
  json_decref(cfg->root);
  free(cfg->path);
  free(cfg->base_dir);
  free(cfg);
}

static int config__string_list(config *cfg, const json_t *arr, const char *what, int paths,
                               const char ***out, size_t *count, char *err, size_t errlen) {
  if (!json_is_array(arr)) {
    snprintf(err, errlen, "%s: \"%s\" must be a list of strings", cfg->path, what);
    return -EINVAL;
  }
  size_t n = json_array_size(arr);
  *out = calloc(n ? n : 1, sizeof(char *));
  if (*out == NULL) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(arr, i);
    if (!json_is_string(v) || json_string_length(v) == 0) {
      snprintf(err, errlen, "%s: \"%s\" item %zu must be a non-empty string", cfg->path, what, i + 1);
      return -EINVAL;
    }
    (*out)[i] = paths ? config__path(cfg, json_string_value(v)) : json_string_value(v);
    if ((*out)[i] == NULL) return -ENOMEM;
  }
  *count = n;
  return 0;
}

static int config__secret_key(config *cfg, const json_t *v, char *err, size_t errlen) {
  char subject[4200];
  snprintf(subject, sizeof(subject), "%s: secret_key", cfg->path);
  json_t *lit = schema_resolve_value(v, cfg->base_dir, subject, err, errlen);
  if (lit == NULL) return -EINVAL;
  const char *s = json_string_value(lit);
  int ok = s != NULL && strlen(s) == 64;
  for (size_t i = 0; ok && i < 64; i++) ok = isxdigit((unsigned char)s[i]) != 0;
  if (!ok) {
    json_decref(lit);
    snprintf(err, errlen,
             "%s: secret_key must be 64 hexadecimal digits (32 bytes); make one with: head -c32 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
             cfg->path);
    return -EINVAL;
  }
  cfg->secret_key = strdup(s);
  log_add_secret(s);
  json_decref(lit);
  return cfg->secret_key != NULL ? 0 : -ENOMEM;
}

static int config__plugins(config *cfg, const json_t *plugins, char *err, size_t errlen) {
  if (plugins != NULL && !json_is_object(plugins)) {
    snprintf(err, errlen, "%s: \"plugins\" must be an object with \"dirs\" and \"allow\"", cfg->path);
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)plugins, key, v) {
    if (strcmp(key, "dirs") != 0 && strcmp(key, "allow") != 0 && strcmp(key, "trusted_keys") != 0 &&
        strcmp(key, "require_signed") != 0) {
      snprintf(err, errlen, "%s: unknown key \"plugins.%s\" (expected dirs, allow, trusted_keys, require_signed)",
               cfg->path, key);
      return -EINVAL;
    }
  }
  const json_t *req = plugins != NULL ? json_object_get(plugins, "require_signed") : NULL;
  if (req != NULL && !json_is_boolean(req)) {
    snprintf(err, errlen, "%s: \"plugins.require_signed\" must be true or false", cfg->path);
    return -EINVAL;
  }
  cfg->require_signed = json_is_true(req);
  const json_t *keys = plugins != NULL ? json_object_get(plugins, "trusted_keys") : NULL;
  if (keys != NULL) {
    int rc = config__string_list(cfg, keys, "plugins.trusted_keys", 0, &cfg->trusted_keys, &cfg->trusted_key_count,
                                 err, errlen);
    if (rc != 0) return rc;
    for (size_t i = 0; i < cfg->trusted_key_count; i++) {
      const char *k = cfg->trusted_keys[i];
      int ok = strlen(k) == 64;
      for (size_t j = 0; ok && j < 64; j++) ok = isxdigit((unsigned char)k[j]) != 0;
      if (!ok) {
        snprintf(err, errlen,
                 "%s: plugins.trusted_keys item %zu must be an Ed25519 public key of 64 hexadecimal digits "
                 "(the .pub file of `switchboard plugins keygen`)",
                 cfg->path, i + 1);
        return -EINVAL;
      }
    }
  }
  const json_t *dirs = plugins != NULL ? json_object_get(plugins, "dirs") : NULL;
  if (dirs != NULL) {
    int rc = config__string_list(cfg, dirs, "plugins.dirs", 1, &cfg->plugin_dirs, &cfg->plugin_dir_count,
                                 err, errlen);
    if (rc != 0) return rc;
  } else {
    cfg->plugin_dirs = calloc(2, sizeof(char *));
    if (cfg->plugin_dirs == NULL) return -ENOMEM;
    cfg->plugin_dirs[0] = SB_DEFAULT_PLUGIN_DIR;
    cfg->plugin_dir_count = 1;
  }
  const json_t *allow = plugins != NULL ? json_object_get(plugins, "allow") : NULL;
  if (allow == NULL) {
    /* Nothing is loaded that the operator did not allow. */
    cfg->allow = calloc(1, sizeof(char *));
    return cfg->allow != NULL ? 0 : -ENOMEM;
  }
  return config__string_list(cfg, allow, "plugins.allow", 0, &cfg->allow, &cfg->allow_count, err, errlen);
}

static int config__http(config *cfg, const json_t *http, char *err, size_t errlen) {
  if (http == NULL) return 0;
  if (!json_is_object(http)) {
    snprintf(err, errlen, "%s: \"http\" must be an object", cfg->path);
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)http, key, v) {
    if (strcmp(key, "body_limit") == 0) {
      /* bodies are held in memory whole: a limit past 1 GiB is a typo */
      if (!json_is_integer(v) || json_integer_value(v) < 1024 || json_integer_value(v) > (json_int_t)1 << 30) {
        snprintf(err, errlen, "%s: \"http.body_limit\" must be a number of bytes from 1024 to 1073741824 (1 GiB)",
                 cfg->path);
        return -EINVAL;
      }
      cfg->http_body_limit = (size_t)json_integer_value(v);
    } else if (strcmp(key, "sse_max_pending") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 4096) {
        snprintf(err, errlen, "%s: \"http.sse_max_pending\" must be a number of bytes, at least 4096", cfg->path);
        return -EINVAL;
      }
      cfg->http_sse_max_pending = (size_t)json_integer_value(v);
    } else if (strcmp(key, "header_timeout") == 0 || strcmp(key, "idle_timeout") == 0 ||
               strcmp(key, "sse_keepalive") == 0 || strcmp(key, "websocket_ping") == 0) {
      int64_t ms;
      if (!json_is_string(v) || schema_parse_duration(json_string_value(v), &ms) != 0 || ms <= 0) {
        snprintf(err, errlen, "%s: \"http.%s\" must be a duration such as \"10s\"", cfg->path, key);
        return -EINVAL;
      }
      *(key[0] == 'h'   ? &cfg->http_header_timeout_ms
        : key[0] == 'i' ? &cfg->http_idle_timeout_ms
        : key[1] == 's' ? &cfg->http_sse_keepalive_ms
                        : &cfg->http_websocket_ping_ms) = ms;
    } else if (strcmp(key, "tls_cert") == 0 || strcmp(key, "tls_key") == 0) {
      if (!json_is_string(v) || json_string_length(v) == 0) {
        snprintf(err, errlen, "%s: \"http.%s\" must be a file path", cfg->path, key);
        return -EINVAL;
      }
      const char *p = config__path(cfg, json_string_value(v));
      if (p == NULL) return -ENOMEM;
      *(strcmp(key, "tls_cert") == 0 ? &cfg->tls_cert : &cfg->tls_key) = p;
    } else {
      snprintf(err, errlen, "%s: unknown key \"http.%.64s\" (expected body_limit, header_timeout, idle_timeout, sse_keepalive, sse_max_pending, websocket_ping, tls_cert, tls_key)",
               cfg->path, key);
      return -EINVAL;
    }
  }
  if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
    snprintf(err, errlen, "%s: \"http.tls_cert\" and \"http.tls_key\" go together", cfg->path);
    return -EINVAL;
  }
  return 0;
}

static int config__outbox(config *cfg, const json_t *outbox, char *err, size_t errlen) {
  if (outbox == NULL) return 0;
  if (!json_is_object(outbox)) {
    snprintf(err, errlen, "%s: \"outbox\" must be an object", cfg->path);
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)outbox, key, v) {
    if (strcmp(key, "retry_base") == 0 || strcmp(key, "retry_max") == 0) {
      int64_t ms;
      if (!json_is_string(v) || schema_parse_duration(json_string_value(v), &ms) != 0 || ms <= 0) {
        snprintf(err, errlen, "%s: \"outbox.%s\" must be a duration such as \"2s\"", cfg->path, key);
        return -EINVAL;
      }
      *(strcmp(key, "retry_base") == 0 ? &cfg->outbox_retry_base_ms : &cfg->outbox_retry_max_ms) = ms;
    } else if (strcmp(key, "max_attempts") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100) {
        snprintf(err, errlen, "%s: \"outbox.max_attempts\" must be a number from 1 to 100", cfg->path);
        return -EINVAL;
      }
      cfg->outbox_max_attempts = (int)json_integer_value(v);
    } else {
      snprintf(err, errlen, "%s: unknown key \"outbox.%.64s\" (expected retry_base, retry_max, max_attempts)",
               cfg->path, key);
      return -EINVAL;
    }
  }
  int64_t base = cfg->outbox_retry_base_ms > 0 ? cfg->outbox_retry_base_ms : 1000,
          max = cfg->outbox_retry_max_ms > 0 ? cfg->outbox_retry_max_ms : 3600 * 1000;
  if (base > max) {
    snprintf(err, errlen, "%s: \"outbox.retry_base\" (%lld ms) must not be longer than \"outbox.retry_max\" (%lld ms)",
             cfg->path, (long long)base, (long long)max);
    return -EINVAL;
  }
  return 0;
}

static int config__attachments(config *cfg, const json_t *att, char *err, size_t errlen) {
  cfg->attachments_max_bytes = -1;
  if (att == NULL) return 0;
  if (!json_is_object(att)) {
    snprintf(err, errlen, "%s: \"attachments\" must be an object", cfg->path);
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)att, key, v) {
    if (strcmp(key, "max_bytes") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000000) {
        snprintf(err, errlen,
                 "%s: \"attachments.max_bytes\" must be a number of bytes from 0 to 1000000000", cfg->path);
        return -EINVAL;
      }
      cfg->attachments_max_bytes = json_integer_value(v);
    } else {
      snprintf(err, errlen, "%s: unknown key \"attachments.%.64s\" (expected max_bytes)", cfg->path, key);
      return -EINVAL;
    }
  }
  return 0;
}

static int config__channels(config *cfg, const json_t *channels, char *err, size_t errlen) {
  if (channels == NULL) return 0;
  if (!json_is_array(channels)) {
    snprintf(err, errlen, "%s: \"channels\" must be a list of channel objects", cfg->path);
    return -EINVAL;
  }
  size_t n = json_array_size(channels);
  cfg->channels = calloc(n ? n : 1, sizeof(*cfg->channels));
  if (cfg->channels == NULL) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(channels, i);
    config_channel *ch = &cfg->channels[i];
    if (!json_is_object(c)) {
      snprintf(err, errlen, "%s: channel %zu must be an object", cfg->path, i + 1);
      return -EINVAL;
    }
    const json_t *name = json_object_get(c, "name");
    if (!json_is_string(name) || !config__name_valid(json_string_value(name))) {
      snprintf(err, errlen,
               "%s: channel %zu needs a \"name\" of 1-64 letters, digits, '-' or '_' (it is the /hooks/{name} path)",
               cfg->path, i + 1);
      return -EINVAL;
    }
    ch->name = json_string_value(name);
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cfg->channels[j].name, ch->name) == 0) {
        snprintf(err, errlen, "%s: channel name \"%s\" is used twice", cfg->path, ch->name);
        return -EINVAL;
      }
    }
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v) {
      if (!config__known(config__channel_keys, key)) {
        snprintf(err, errlen, "channel \"%s\": unknown key \"%.64s\"", ch->name, key);
        return -EINVAL;
      }
    }
    const json_t *plugin = json_object_get(c, "plugin");
    if (!json_is_string(plugin) || json_string_length(plugin) == 0) {
      snprintf(err, errlen, "channel \"%s\": \"plugin\" must name a plugin id, such as \"custom\"", ch->name);
      return -EINVAL;
    }
    ch->plugin = json_string_value(plugin);
    const json_t *inbox = json_object_get(c, "inbox");
    if (inbox != NULL && (!json_is_string(inbox) || json_string_length(inbox) == 0)) {
      snprintf(err, errlen, "channel \"%s\": \"inbox\" must be a non-empty string", ch->name);
      return -EINVAL;
    }
    ch->inbox = inbox != NULL ? json_string_value(inbox) : ROUTER_DEFAULT_INBOX;
    const json_t *status = json_object_get(c, "status");
    ch->enabled = 1;
    if (status != NULL) {
      const char *s = json_string_value(status);
      if (s == NULL || (strcmp(s, "on") != 0 && strcmp(s, "off") != 0)) {
        snprintf(err, errlen, "channel \"%s\": \"status\" must be \"on\" or \"off\"", ch->name);
        return -EINVAL;
      }
      ch->enabled = strcmp(s, "on") == 0;
    }
    ch->credentials = json_object_get(c, "credentials");
    if (ch->credentials != NULL && !json_is_object(ch->credentials)) {
      snprintf(err, errlen, "channel \"%s\": \"credentials\" must be an object", ch->name);
      return -EINVAL;
    }
    ch->spec = c;
    cfg->channel_count = i + 1;
  }
  return 0;
}

static int config__parse(config *cfg, const char *listen_override, const char *store_override, char *err,
                         size_t errlen) {
  const json_t *root = cfg->root;
  if (!json_is_object(root)) {
    snprintf(err, errlen, "%s: the config must be a JSON object", cfg->path);
    return -EINVAL;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)root, key, v) {
    if (!config__known(config__top_keys, key)) {
      snprintf(err, errlen, "%s: unknown key \"%.64s\"", cfg->path, key);
      return -EINVAL;
    }
  }
  const json_t *listen = json_object_get(root, "listen");
  if (listen != NULL && !json_is_string(listen)) {
    snprintf(err, errlen, "%s: \"listen\" must be a string such as \"127.0.0.1:8080\"", cfg->path);
    return -EINVAL;
  }
  cfg->listen = listen_override ? listen_override : listen ? json_string_value(listen) : "127.0.0.1:8080";
  if (strrchr(cfg->listen, ':') == NULL) {
    snprintf(err, errlen, "%s: listen address \"%s\" needs a port, such as \"127.0.0.1:8080\"", cfg->path,
             cfg->listen);
    return -EINVAL;
  }
  struct sockaddr_storage ss;
  char why[256];
  if (listen_parse(cfg->listen, &ss, why, sizeof(why)) != 0) { /* as the server will read it: check finds it */
    snprintf(err, errlen, "%s: %s", cfg->path, why);
    return -EINVAL;
  }
  const json_t *store_url = json_object_get(root, "store");
  if (store_url != NULL && !json_is_string(store_url)) {
    snprintf(err, errlen, "%s: \"store\" must be a string: \"sqlite:PATH\"", cfg->path);
    return -EINVAL;
  }
  const char *s = store_override ? store_override
                  : store_url    ? json_string_value(store_url)
                                 : "sqlite:./data/switchboard.db";
  if (strncmp(s, "sqlite:", 7) == 0) {
    /* A relative database path in the file is relative to the file. */
    const char *p = s + 7;
    if (p[0] == '\0') {
      snprintf(err, errlen, "%s: store \"sqlite:\" needs a path", cfg->path);
      return -EINVAL;
    }
    if (p[0] != '/' && store_override == NULL) {
      char *full = NULL;
      if (asprintf(&full, "sqlite:%s/%s", cfg->base_dir, p) < 0) return -ENOMEM;
      s = config__own(cfg, full);
    }
  } else if (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0) {
    /* Refused here, so that check fails as run would; the URL is not
     * repeated, since it may hold a password. */
    snprintf(err, errlen, "%s: a PostgreSQL store is not supported yet (docs/storage.md); use \"sqlite:PATH\"",
             cfg->path);
    return -EINVAL;
  } else {
    snprintf(err, errlen, "%s: store must be \"sqlite:PATH\"; \"%.*s\" is not a store this build knows", cfg->path,
             (int)strcspn(s, ":"), s);
    return -EINVAL;
  }
  cfg->store = s;
  const json_t *level = json_object_get(root, "log_level");
  cfg->log_level = LOG_LEVEL_INFO;
  if (level != NULL && (!json_is_string(level) || log_level_parse(json_string_value(level), &cfg->log_level) != 0)) {
    snprintf(err, errlen, "%s: \"log_level\" must be one of error, warn, info, debug", cfg->path);
    return -EINVAL;
  }
  const json_t *key_v = json_object_get(root, "secret_key");
  if (key_v != NULL) {
    int rc = config__secret_key(cfg, key_v, err, errlen);
    if (rc != 0) return rc;
  }
  int rc = config__plugins(cfg, json_object_get(root, "plugins"), err, errlen);
  if (rc == 0) rc = config__http(cfg, json_object_get(root, "http"), err, errlen);
  if (rc == 0) rc = config__outbox(cfg, json_object_get(root, "outbox"), err, errlen);
  if (rc == 0) rc = config__attachments(cfg, json_object_get(root, "attachments"), err, errlen);
  if (rc != 0) return rc;
  return config__channels(cfg, json_object_get(root, "channels"), err, errlen);
}

int config_load(const char *path, const char *listen_override, const char *store_override, config **out,
                char *err, size_t errlen) {
  if (path == NULL || out == NULL) return -EINVAL;
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "%s: cannot read the config file: %s", path, strerror(errno));
    return -ENOENT;
  }
  config *cfg = calloc(1, sizeof(*cfg));
  if (cfg == NULL) return -ENOMEM;
  cfg->path = strdup(path);
  char *tmp = strdup(path);
  cfg->base_dir = tmp != NULL ? strdup(dirname(tmp)) : NULL;
  free(tmp);
  if (cfg->path == NULL || cfg->base_dir == NULL) {
    config_free(cfg);
    return -ENOMEM;
  }
  json_error_t jerr;
  cfg->root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (cfg->root == NULL) {
    snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    config_free(cfg);
    return -EINVAL;
  }
  int rc = config__parse(cfg, listen_override, store_override, err, errlen);
  if (rc != 0) {
    if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory while reading the config", path);
    config_free(cfg);
    return rc;
  }
  *out = cfg;
  return 0;
}

int config_plugin_allowed(const config *cfg, const char *plugin_id) {
  for (size_t i = 0; i < cfg->allow_count; i++) {
    if (strcmp(cfg->allow[i], "*") == 0 || strcmp(cfg->allow[i], plugin_id) == 0) return 1;
  }
  return 0;
}

const config_channel *config_find_channel(const config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->channel_count; i++) {
    if (strcmp(cfg->channels[i].name, name) == 0) return &cfg->channels[i];
  }
  return NULL;
}
