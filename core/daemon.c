/* daemon.c — the host's run loop: start-up, channels, reload, graceful stop. */
#include "daemon.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "api.h"
#include "channel.h"
#include "health.h"
#include "http_tls.h"
#include "http.h"
#include "httpc.h"
#include "ingress.h"
#include "log.h"
#include "package.h"
#include "relay.h"
#include "router.h"
#include "schema.h"
#include "store.h"
#include "webhooks.h"

/* How long a graceful stop may wait for channels to close. */
#define DAEMON_STOP_BOUND_MS 10000

typedef struct daemon_host {
  uv_loop_t loop;
  daemon_options opt; /* the command line's overrides, kept for every reload */
  config *cfg;
  loader plugins;
  store *st;
  httpc *httpc;
  relay *relay;
  webhooks *webhooks; /* outgoing */
  http_server *http;
  ingress *ingress;
  health_sources health;
  api *api;
  sb_channel **channels;
  size_t channel_count;
  json_t *not_started;       /* {name: {plugin, reason}}: channels on but not created (NULL: none yet) */
  unsigned opening_channels; /* being put in the store and created */
  unsigned closing_channels;
  int ready;                 /* start-up finished: HTTP is serving */
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t stop_timer;
  uint64_t stop_waited_ms;
  int stopping;
  int exit_code;
  int store_claim; /* store_claim's lock, held until the daemon ends */
} daemon_host;

/* One channel on its way to running: the store learns its rules and hands
 * back its key/value state, then the plugin instance is created. */
typedef struct daemon_opening {
  daemon_host *d;
  json_t *spec;      /* own copy of the channel object */
  char *base_dir;
  router_channel rules;
} daemon_opening;

static int daemon__allowed(const void *ctx, const char *id) { return config_plugin_allowed(ctx, id); }

/* The plugin of channel name: a config channel's, or one connected through
 * the API (stored, peeked from the store as start-up reads it), or NULL. */
static const char *daemon__channel_plugin(const config *cfg, const json_t *stored, const char *name) {
  const config_channel *c = config_find_channel(cfg, name);
  if (c != NULL) return c->plugin;
  size_t i;
  json_t *e;
  json_array_foreach(stored, i, e) {
    if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
      return json_string_value(json_object_get(json_object_get(e, "spec"), "plugin"));
  }
  return NULL;
}

/* Checks that each config channel's reply_channel names a channel (of the
 * config, or connected through the API) whose plugin sends. */
static int daemon__check_reply_channels(const config *cfg, const loader *plugins, char *err, size_t errlen) {
  json_t *stored = NULL;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < cfg->channel_count; i++) {
    const config_channel *c = &cfg->channels[i];
    const char *via = json_string_value(json_object_get(c->spec, "reply_channel"));
    if (via == NULL) continue;
    if (stored == NULL && config_find_channel(cfg, via) == NULL &&
        (rc = store_api_channels_peek(cfg->store, &stored, err, errlen)) != 0)
      break;
    const char *plugin = daemon__channel_plugin(cfg, stored, via);
    const loader_plugin *p = plugin != NULL ? loader_find(plugins, plugin) : NULL;
    if (plugin == NULL) {
      snprintf(err, errlen, "channel \"%s\": key \"reply_channel\": there is no channel \"%s\"", c->name, via);
      rc = -EINVAL;
    } else if (p != NULL && (p->desc.caps.flags & SB_CAP_RECEIVE_ONLY) != 0) {
      snprintf(err, errlen, "channel \"%s\": key \"reply_channel\": channel \"%s\" only takes messages in", c->name,
               via);
      rc = -EINVAL;
    }
  }
  json_decref(stored);
  return rc;
}

/* Checks the routing config and that every channel's plugin is loaded and
 * its credentials and rules valid. */
static int daemon__validate_channels(const config *cfg, const loader *plugins, char *err, size_t errlen) {
  int rc = router_seed_validate(cfg->root, err, errlen);
  if (rc != 0) return rc;
  for (size_t i = 0; i < cfg->channel_count; i++) {
    const config_channel *c = &cfg->channels[i];
    const loader_plugin *p = loader_find(plugins, c->plugin);
    if (p == NULL) {
      const char *why = config_plugin_allowed(cfg, c->plugin)
                            ? "was not found in plugins.dirs or was refused (see the warnings above)"
                            : "is not in plugins.allow";
      snprintf(err, errlen, "channel \"%s\": plugin \"%s\" %s", c->name, c->plugin, why);
      return -EINVAL;
    }
    router_channel rules;
    if ((rc = router_channel_from_json(c->spec, &rules, err, errlen)) != 0) return rc;
    rc = router_channel_check_ticket(&rules, cfg->root, err, errlen);
    router_channel_free(&rules);
    if (rc != 0) return rc;
    if ((rc = channel_validate(p, c, cfg->base_dir, NULL, err, errlen)) != 0) return rc;
  }
  return daemon__check_reply_channels(cfg, plugins, err, errlen);
}

/* Checks that the channels stored by the API that start with this config
 * (those the config does not name) can be unsealed under its secret_key,
 * as start-up would, before anything starts: `check` then finds a wrong or
 * missing key, and `run` stops before it listens. */
static int daemon__check_sealed(const config *cfg, char *err, size_t errlen) {
  json_t *stored = NULL;
  int rc = store_api_channels_peek(cfg->store, &stored, err, errlen);
  size_t i;
  json_t *e;
  json_array_foreach(stored, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (config_find_channel(cfg, name) != NULL) continue;
    json_t *cred = NULL;
    int u = api_unseal(cfg->secret_key, json_string_value(json_object_get(e, "sealed")), &cred);
    json_decref(cred);
    if (u != 0) {
      snprintf(err, errlen, "channel \"%s\" was connected through the API and its credentials cannot be unsealed: %s",
               name, api_unseal_problem(u));
      rc = -EINVAL;
      break;
    }
  }
  json_decref(stored);
  return rc;
}

int daemon_check_webhooks(const config *cfg, char *err, size_t errlen) {
  json_t *stored = NULL;
  int rc = store_webhook_secrets_peek(cfg->store, &stored, err, errlen);
  size_t i;
  json_t *e;
  json_array_foreach(stored, i, e) {
    json_t *secret = NULL;
    int u = api_unseal(cfg->secret_key, json_string_value(json_object_get(e, "secret")), &secret);
    json_decref(secret);
    if (u != 0) {
      snprintf(err, errlen,
               "webhook %lld's secret cannot be unsealed: %s (the daemon runs, but does not deliver it until it is "
               "rotated or deleted)",
               (long long)json_integer_value(json_object_get(e, "id")), api_unseal_problem(u));
      rc = -EINVAL;
      break;
    }
  }
  json_decref(stored);
  return rc;
}

int daemon_prepare(const daemon_options *opt, config **cfg, loader *plugins, char *err, size_t errlen) {
  memset(plugins, 0, sizeof(*plugins));
  int rc = config_load(opt->config_path, opt->listen, opt->store, cfg, err, errlen);
  if (rc != 0) return -EINVAL;
  if (opt->log_level < 0) log_set_level((*cfg)->log_level);
  rc = loader_load(plugins, hostapi_table(), (*cfg)->plugin_dirs, (*cfg)->plugin_dir_count, daemon__allowed,
                   package_vet, *cfg);
  if (rc == 0) rc = daemon__validate_channels(*cfg, plugins, err, errlen);
  /* The certificate and key are read now, so that check finds a bad pair
   * as start-up would, before anything starts. */
  if (rc == 0 && (*cfg)->tls_cert != NULL) rc = http_tls_check((*cfg)->tls_cert, (*cfg)->tls_key, err, errlen);
  if (rc == 0) rc = daemon__check_sealed(*cfg, err, errlen);
  if (rc != 0) {
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory while loading plugins");
    loader_unload(plugins);
    config_free(*cfg);
    *cfg = NULL;
    return -EINVAL;
  }
  return 0;
}

/* The running channel called name, or NULL (ingress and relay lookup). */
static sb_channel *daemon__lookup(void *ctx, const char *name) {
  daemon_host *d = ctx;
  for (size_t i = 0; i < d->channel_count; i++) {
    if (strcmp(channel_name(d->channels[i]), name) == 0) return d->channels[i];
  }
  return NULL;
}

/* A channel that is not running but is about to be: configured and on (or
 * connected through the API) while it starts, while a reload recreates it,
 * or while the daemon stops (ingress answers its webhooks 503). */
static int daemon__pending(void *ctx, const char *name) {
  daemon_host *d = ctx;
  const config_channel *c = config_find_channel(d->cfg, name);
  if (c != NULL) return c->enabled;
  return api_channel_on(d->api, name);
}

static void daemon__close_channel(daemon_host *d, sb_channel *ch);
static void daemon__remove_channel(daemon_host *d, size_t i);

/* Adds a channel that is now running. A running channel of the same name is
 * closed: an API edit reopened it, and the newer instance (opened last, as
 * the store answers in order) wins. */
static int daemon__add_channel(daemon_host *d, sb_channel *ch) {
  for (size_t i = 0; i < d->channel_count; i++) {
    sb_channel *old = d->channels[i];
    if (strcmp(channel_name(old), channel_name(ch)) != 0) continue;
    daemon__remove_channel(d, i);
    daemon__close_channel(d, old);
    break;
  }
  sb_channel **grown = realloc(d->channels, (d->channel_count + 1) * sizeof(*grown));
  if (grown == NULL) return -ENOMEM;
  d->channels = grown;
  d->channels[d->channel_count++] = ch;
  relay_channel_running(d->relay, channel_name(ch));
  return 0;
}

static void daemon__remove_channel(daemon_host *d, size_t i) {
  memmove(&d->channels[i], &d->channels[i + 1], (d->channel_count - i - 1) * sizeof(*d->channels));
  d->channel_count--;
}

static void daemon__channel_closed(void *arg) {
  daemon_host *d = arg;
  d->closing_channels--;
}

static void daemon__close_channel(daemon_host *d, sb_channel *ch) {
  d->closing_channels++;
  channel_close(ch, daemon__channel_closed, d);
}

static void daemon__channel_destroyed(void *ctx, sb_channel *ch) {
  daemon_host *d = ctx;
  ingress_channel_closing(d->ingress, ch);
}

static void daemon__opening_free(daemon_opening *o) {
  router_channel_free(&o->rules);
  json_decref(o->spec);
  free(o->base_dir);
  free(o);
}

static void daemon__start_serving(daemon_host *d);

/* The last step of opening a channel: create and start the instance with
 * the key/value state the store returned. */
static void daemon__opened(void *arg, int status, json_t *result, const char *store_err) {
  daemon_opening *o = arg;
  daemon_host *d = o->d;
  const char *name = json_string_value(json_object_get(o->spec, "name"));
  const char *plugin_id = json_string_value(json_object_get(o->spec, "plugin"));
  d->opening_channels--;
  if (d->stopping) {
    daemon__opening_free(o);
    return;
  }
  const loader_plugin *p = loader_find(&d->plugins, plugin_id);
  config_channel view = {
      .name = name,
      .plugin = plugin_id,
      .enabled = 1,
      .credentials = json_object_get(o->spec, "credentials"),
      .spec = o->spec,
  };
  char err[1024];
  sb_channel *ch = NULL;
  if (status != 0) {
    log_msg(LOG_LEVEL_ERROR, name, plugin_id, "channel not started: the store failed: %s", store_err ? store_err : "");
  } else if (p == NULL) {
    log_msg(LOG_LEVEL_ERROR, name, plugin_id, "channel not started: plugin not loaded");
  } else if (config_find_channel(d->cfg, name) == NULL && !api_channel_owned(d->api, name)) {
    /* An API channel deleted (or a config channel removed) while it opened. */
    log_msg(LOG_LEVEL_INFO, name, plugin_id, "channel not started: it was removed meanwhile");
  } else if (channel_create(relay_env(d->relay), p, &view, o->base_dir, json_object_get(result, "items"), &ch, err,
                            sizeof(err)) != 0) {
    log_msg(LOG_LEVEL_ERROR, name, plugin_id, "%s", err);
    /* on, but its plugin refused it: /healthz and /metrics say so until a
     * reload or an API edit opens it again */
    if (d->not_started == NULL) d->not_started = json_object();
    json_object_set_new(d->not_started, name, json_pack("{ss ss}", "plugin", plugin_id, "reason", err));
  } else if (daemon__add_channel(d, ch) != 0) {
    log_msg(LOG_LEVEL_ERROR, name, plugin_id, "channel not started: out of memory");
    daemon__close_channel(d, ch);
  } else {
    channel_start(ch);
  }
  daemon__opening_free(o);
  if (!d->ready && d->opening_channels == 0) daemon__start_serving(d);
}

static void daemon__rules_stored(void *arg, int status, json_t *result, const char *err) {
  if (status != 0) log_error("a channel's rules were not stored: %s", err != NULL ? err : "");
}

/* Starts opening one channel: its rules to the store, then its state back. */
static void daemon__open_channel(daemon_host *d, const config *cfg, const config_channel *c) {
  json_object_del(d->not_started, c->name); /* tried again now */
  if (!c->enabled) {
    log_msg(LOG_LEVEL_INFO, c->name, c->plugin, "channel is off");
    return;
  }
  daemon_opening *o = calloc(1, sizeof(*o));
  char err[512];
  if (o == NULL || (o->spec = json_deep_copy(c->spec)) == NULL || (o->base_dir = strdup(cfg->base_dir)) == NULL) {
    log_msg(LOG_LEVEL_ERROR, c->name, c->plugin, "channel not started: out of memory");
    if (o != NULL) json_decref(o->spec);
    free(o);
    return;
  }
  o->d = d;
  if (router_channel_from_json(c->spec, &o->rules, err, sizeof(err)) != 0) {
    log_msg(LOG_LEVEL_ERROR, c->name, c->plugin, "%s", err);
    json_decref(o->spec);
    free(o->base_dir);
    free(o);
    return;
  }
  const loader_plugin *lp = loader_find(&d->plugins, c->plugin);
  if (lp != NULL)
    router_channel_plugin_defaults(&o->rules, c->spec, lp->desc.caps.thread_model == SB_THREAD_EXTERNAL,
                                   lp->desc.caps.start_by == SB_START_BY_EMAIL,
                                   (lp->desc.caps.flags & SB_CAP_RECEIVE_ONLY) != 0);
  /* The store runs requests in order: the rules are in before the state is read. */
  if (store_channel_put(d->st, &o->rules, daemon__rules_stored, NULL) != 0 ||
      store_kv_list(d->st, c->name, daemon__opened, o) != 0) {
    log_msg(LOG_LEVEL_ERROR, c->name, c->plugin, "channel not started: the store refused the request");
    daemon__opening_free(o);
    return;
  }
  d->opening_channels++;
}

/* True when the running channel must be recreated for its new spec: the
 * channel object changed, or a credential read from env/file did. */
static int daemon__changed(const config *cfg, sb_channel *ch, const config_channel *c) {
  if (!json_equal(channel_spec(ch)->spec, c->spec)) return 1;
  sb_config *fresh = NULL;
  char err[512];
  if (channel_validate(channel_plugin(ch), c, cfg->base_dir, &fresh, err, sizeof(err)) != 0) return 1;
  int same = schema_config_equal(fresh, channel_config(ch));
  schema_config_free(fresh);
  return !same;
}

static void daemon__seeded(void *arg, int status, json_t *result, const char *err) {
  if (status != 0) log_error("pipelines, users and teams from the config were not stored: %s", err ? err : "");
}

/* A config section without the keys a reload applies (NULL stays NULL). */
static json_t *daemon__section_at_start(const config *cfg, const char *section) {
  json_t *copy = json_deep_copy(json_object_get(cfg->root, section));
  if (copy != NULL && strcmp(section, "http") == 0 && cfg->tls_cert != NULL) {
    json_object_del(copy, "tls_cert"); /* a renewed pair is loaded by the reload */
    json_object_del(copy, "tls_key");
  }
  return copy;
}

/* Warns of the changed settings a reload does not apply: the server (but
 * for a renewed TLS pair), store, outbox, attachment limit and the plugins
 * (loaded, vetted and allowed once) are set up at start. */
static void daemon__warn_restart_only(const config *was, const config *now) {
  static const char *const sections[] = {"http", "outbox", "attachments", "plugins"};
  char changed[160] = "";
  size_t n = 0;
  if (strcmp(now->listen, was->listen) != 0) n += (size_t)snprintf(changed + n, sizeof(changed) - n, ", listen");
  if (strcmp(now->store, was->store) != 0) n += (size_t)snprintf(changed + n, sizeof(changed) - n, ", store");
  for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]) && n < sizeof(changed); i++) {
    json_t *a = daemon__section_at_start(was, sections[i]), *b = daemon__section_at_start(now, sections[i]);
    int tls_toggled = i == 0 && (was->tls_cert == NULL) != (now->tls_cert == NULL);
    if (tls_toggled || (!(a == NULL && b == NULL) && !json_equal(a, b)))
      n += (size_t)snprintf(changed + n, sizeof(changed) - n, ", %s", sections[i]);
    json_decref(a);
    json_decref(b);
  }
  if (n > 0) log_warn("changes to %s take effect after a restart", changed + 2);
}

static void daemon__reload_audited(void *arg, int status, json_t *result, const char *err) {
  (void)arg;
  (void)result;
  if (status != 0) log_error("the audit log missed a reload: %s", err ? err : "");
}

/* Writes an applied reload to the audit log: the channels it closed (a
 * changed one is closed and started again) and started. Steals closed and
 * started. */
static void daemon__audit_reload(daemon_host *d, size_t kept, json_t *closed, json_t *started) {
  json_t *detail = json_pack("{sI so so}", "kept", (json_int_t)kept, "closed", closed, "started", started);
  char *text = detail != NULL ? json_dumps(detail, JSON_COMPACT) : NULL;
  char what[1200];
  snprintf(what, sizeof(what), "config reload %s", d->cfg->path);
  if (store_audit_append(d->st, NULL, NULL, NULL, "SIGHUP", what, 0, text, daemon__reload_audited, NULL) != 0)
    log_error("the audit log missed a reload: the store refused the request");
  free(text);
  json_decref(detail);
}

/* A reload keeps the running secret_key: the credentials and webhook
 * secrets stored through the API are sealed under it, and those stored
 * after a change would be under another, so no key could start the store
 * again. A new key is for a restart, whose check finds what it cannot
 * unseal. -EINVAL with the sentence. */
static int daemon__same_key(const config *was, const config *now, char *err, size_t errlen) {
  const char *a = was->secret_key, *b = now->secret_key;
  if ((a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0)) return 0;
  snprintf(err, errlen,
           "secret_key changed, which a reload does not do: what the API stored is sealed under the running key; "
           "restart with the new one (switchboard check -c FILE tells whether it unseals the store)");
  return -EINVAL;
}

/* The plugins load once, at start: a changed plugins section is for a
 * restart, and a reload that needs what it would load (a channel of a
 * plugin not loaded) is refused saying so. So is one whose plugins section
 * the next start could not run its channels with (a plugin taken out of
 * plugins.allow, a folder that is not there): the section is loaded on
 * trial, as check loads it, and let go. */
static int daemon__same_plugins(const config *was, const config *now, const loader *plugins, char *err,
                                size_t errlen) {
  if (json_equal(json_object_get(was->root, "plugins"), json_object_get(now->root, "plugins"))) return 0;
  for (size_t i = 0; i < now->channel_count; i++) {
    const config_channel *c = &now->channels[i];
    if (!c->enabled || loader_find(plugins, c->plugin) != NULL) continue;
    snprintf(err, errlen,
             "channel \"%s\" needs plugin \"%s\", which is not loaded: plugins load at start, so a change to "
             "the plugins section takes effect after a restart",
             c->name, c->plugin);
    return -EINVAL;
  }
  loader trial;
  memset(&trial, 0, sizeof(trial));
  char why[900] = "";
  int rc = loader_load(&trial, hostapi_table(), now->plugin_dirs, now->plugin_dir_count, daemon__allowed, package_vet,
                       now);
  if (rc == 0) rc = daemon__validate_channels(now, &trial, why, sizeof(why));
  loader_unload(&trial);
  if (rc != 0) {
    snprintf(err, errlen, "the next start could not run this config's channels with its plugins section: %s",
             why[0] ? why : "out of memory while loading plugins");
    return -EINVAL;
  }
  return 0;
}

static void daemon__reload(daemon_host *d) {
  log_info("reloading %s", d->cfg->path);
  config *next = NULL;
  char err[1024];
  /* A server serving TLS loads the pair again, renewed or not (the last
   * check: nothing else has changed if it fails). */
  if (config_load(d->cfg->path, d->opt.listen, d->opt.store, &next, err, sizeof(err)) != 0 ||
      daemon__same_key(d->cfg, next, err, sizeof(err)) != 0 ||
      daemon__same_plugins(d->cfg, next, &d->plugins, err, sizeof(err)) != 0 ||
      daemon__validate_channels(next, &d->plugins, err, sizeof(err)) != 0 ||
      (d->http != NULL && d->cfg->tls_cert != NULL && next->tls_cert != NULL &&
       http_reload_tls(d->http, next->tls_cert, next->tls_key, err, sizeof(err)) != 0) ||
      /* a pair this server does not serve yet (a restart's): checked as check does */
      ((d->http == NULL || d->cfg->tls_cert == NULL) && next->tls_cert != NULL &&
       http_tls_check(next->tls_cert, next->tls_key, err, sizeof(err)) != 0)) {
    log_error("reload refused, still running the previous config: %s", err);
    config_free(next);
    return;
  }
  daemon__warn_restart_only(d->cfg, next);
  if (d->opt.log_level < 0) log_set_level(next->log_level);
  store_seed(d->st, next->root, daemon__seeded, NULL);
  size_t kept = 0;
  json_t *closed = json_array(), *started = json_array(); /* channel names, for the audit log */
  for (size_t i = d->channel_count; i-- > 0;) {
    sb_channel *ch = d->channels[i];
    const config_channel *c = config_find_channel(next, channel_name(ch));
    /* a channel connected through the API runs on, unless what runs under
     * its name is the old config's (which had won over it) */
    if (c == NULL && api_channel_owned(d->api, channel_name(ch)) &&
        config_find_channel(d->cfg, channel_name(ch)) == NULL) {
      kept++;
    } else if (c == NULL || !c->enabled || daemon__changed(next, ch, c)) {
      json_array_append_new(closed, json_string(channel_name(ch)));
      daemon__remove_channel(d, i);
      daemon__close_channel(d, ch);
    } else {
      kept++;
    }
  }
  for (size_t i = 0; i < next->channel_count; i++) {
    const config_channel *c = &next->channels[i];
    if (daemon__lookup(d, c->name) != NULL || !c->enabled) continue;
    daemon__open_channel(d, next, c);
    json_array_append_new(started, json_string(c->name));
  }
  config_free(d->cfg);
  d->cfg = next;
  log_info("reloaded: %zu channels kept, %zu closed, %zu started", kept, json_array_size(closed),
           json_array_size(started));
  daemon__audit_reload(d, kept, closed, started);
  api_channels_reloaded(d->api); /* an API channel the old config had taken over runs again */
}

static sb_channel *const *daemon__channels(void *ctx, size_t *count) {
  daemon_host *d = ctx;
  *count = d->channel_count;
  return d->channels;
}

/* The channels that are on but could not be created, as health shows them;
 * those no longer configured (a reload dropped them, the API deleted or
 * turned them off) are forgotten first. */
static const json_t *daemon__not_started(void *ctx) {
  daemon_host *d = ctx;
  const char *name;
  json_t *v, *tmp;
  json_object_foreach_safe(d->not_started, tmp, name, v) {
    if (!daemon__pending(d, name) || daemon__lookup(d, name) != NULL) json_object_del(d->not_started, name);
  }
  return d->not_started;
}

static int daemon__stopping(void *ctx) { return ((daemon_host *)ctx)->stopping; }

static void daemon__stop(daemon_host *d, const char *why);

/* ---- what the REST API (api.h) asks of the daemon ---- */

static const config *daemon__api_config(void *ctx) { return ((daemon_host *)ctx)->cfg; }

/* Opens a channel connected through the API from its channel object. */
static int daemon__api_open(void *ctx, const json_t *spec, char *err, size_t errlen) {
  daemon_host *d = ctx;
  const char *name = json_string_value(json_object_get(spec, "name"));
  const char *status = json_string_value(json_object_get(spec, "status"));
  if (d->stopping) {
    snprintf(err, errlen, "the daemon is stopping");
    return -ESHUTDOWN;
  }
  if (config_find_channel(d->cfg, name) != NULL) {
    snprintf(err, errlen, "channel \"%s\" is defined in the config file, which wins", name);
    return -EEXIST;
  }
  config_channel c = {
      .name = name,
      .plugin = json_string_value(json_object_get(spec, "plugin")),
      .inbox = json_string_value(json_object_get(spec, "inbox")),
      .enabled = status == NULL || strcmp(status, "off") != 0,
      .credentials = json_object_get(spec, "credentials"),
      .spec = (json_t *)spec,
  };
  daemon__open_channel(d, d->cfg, &c);
  return 0;
}

static void daemon__api_close(void *ctx, const char *name) {
  daemon_host *d = ctx;
  for (size_t i = 0; i < d->channel_count; i++) {
    sb_channel *ch = d->channels[i];
    if (strcmp(channel_name(ch), name) != 0) continue;
    daemon__remove_channel(d, i);
    daemon__close_channel(d, ch);
    return;
  }
}

static void daemon__api_fatal(void *ctx, const char *err) {
  daemon_host *d = ctx;
  fprintf(stderr, "switchboard: %s\n", err);
  log_error("%s", err);
  d->exit_code = 1;
  daemon__stop(d, "start-up failed");
}

/* Start-up's last step, once every channel is open: serve HTTP. */
static void daemon__start_serving(daemon_host *d) {
  const config *cfg = d->cfg;
  http_options opt = {
      .listen = cfg->listen,
      .body_limit = cfg->http_body_limit,
      .header_timeout_ms = (uint64_t)cfg->http_header_timeout_ms,
      .idle_timeout_ms = (uint64_t)cfg->http_idle_timeout_ms,
      .ws_ping_interval_ms = (uint64_t)cfg->http_websocket_ping_ms,
      .tls_cert_file = cfg->tls_cert,
      .tls_key_file = cfg->tls_key,
  };
  char err[1024];
  int rc = http_new(&d->loop, &opt, &d->http, err, sizeof(err));
  d->health = (health_sources){.loop = &d->loop, .st = d->st, .relay = d->relay, .http = d->http,
                               .httpc = d->httpc, .webhooks = d->webhooks, .ctx = d, .channels = daemon__channels,
                               .not_started = daemon__not_started, .stopping = daemon__stopping};
  if (rc == 0) rc = health_register(d->http, &d->health);
  if (rc == 0) rc = ingress_new(d->http, daemon__lookup, d, &d->ingress);
  if (rc == 0) ingress_on_pending(d->ingress, daemon__pending);
  api_host api_hooks = {
      .loop = &d->loop, .st = d->st, .plugins = &d->plugins, .ctx = d, .lookup = daemon__lookup,
      .not_started = daemon__not_started, .config = daemon__api_config, .channel_open = daemon__api_open, .channel_close = daemon__api_close,
      .fatal = daemon__api_fatal, .webhooks = d->webhooks, .sse_keepalive_ms = (uint64_t)cfg->http_sse_keepalive_ms,
      .sse_max_pending = cfg->http_sse_max_pending,
  };
  if (rc == 0 && api_register(d->http, &api_hooks, &d->api) != 0) {
    snprintf(err, sizeof(err), "the REST API could not be set up: out of memory");
    rc = -ENOMEM;
  }
  if (rc != 0) {
    fprintf(stderr, "switchboard: %s\n", err);
    log_error("%s", err);
    d->exit_code = 1;
    daemon__stop(d, "start-up failed");
    return;
  }
  d->ready = 1;
  log_info("switchboard %s ready: %zu plugins, %zu channels, listening on %s (port %u), store %s, config %s",
           SB_VERSION, d->plugins.count, d->channel_count, cfg->listen, (unsigned)http_bound_port(d->http), cfg->store,
           cfg->path);
}

static void daemon__handle_closed(uv_handle_t *h) { (void)h; }

/* Closes a handle something forgot, so the loop can end (uv_walk callback). */
static void daemon__close_leftover(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, daemon__handle_closed);
}

static void daemon__httpc_closed(void *arg) {
  daemon_host *d = arg;
  d->httpc = NULL;
  relay_free(d->relay);
  d->relay = NULL;
  store_close(d->st);
  d->st = NULL;
  memset(&d->health, 0, sizeof(d->health));
  uv_close((uv_handle_t *)&d->sigint, daemon__handle_closed);
  uv_close((uv_handle_t *)&d->sigterm, daemon__handle_closed);
  uv_close((uv_handle_t *)&d->sighup, daemon__handle_closed);
  uv_close((uv_handle_t *)&d->stop_timer, daemon__handle_closed);
}

static void daemon__http_closed(void *arg) {
  daemon_host *d = arg;
  d->http = NULL;
  ingress_free(d->ingress);
  d->ingress = NULL;
  api_free(d->api);
  d->api = NULL;
  webhooks_free(d->webhooks); /* before the client and the store it waits on close */
  d->webhooks = NULL;
  if (d->httpc != NULL) {
    httpc_close(d->httpc, daemon__httpc_closed, d);
  } else {
    daemon__httpc_closed(d);
  }
}

/* Polls until the channels are closed, then closes the shared parts. */
static void daemon__stop_tick(uv_timer_t *t) {
  daemon_host *d = t->data;
  if ((d->closing_channels > 0 || d->opening_channels > 0) && d->stop_waited_ms < DAEMON_STOP_BOUND_MS) {
    d->stop_waited_ms += 20;
    return;
  }
  if (d->closing_channels > 0) {
    log_warn("stopping with %u channels still closing after %d ms", d->closing_channels, DAEMON_STOP_BOUND_MS);
  }
  uv_timer_stop(t);
  http_close(d->http, daemon__http_closed, d);
}

static void daemon__stop(daemon_host *d, const char *why) {
  if (d->stopping) return;
  d->stopping = 1;
  log_info("stopping (%s)", why);
  http_stop_accepting(d->http);
  relay_stop_outbox(d->relay);
  for (size_t i = 0; i < d->channel_count; i++) daemon__close_channel(d, d->channels[i]);
  free(d->channels);
  d->channels = NULL;
  d->channel_count = 0;
  uv_timer_start(&d->stop_timer, daemon__stop_tick, 0, 20);
}

static void daemon__signal(uv_signal_t *s, int signum) {
  daemon_host *d = s->data;
  if (signum == SIGHUP) {
    if (!d->stopping) daemon__reload(d);
    return;
  }
  daemon__stop(d, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* Makes the directory an SQLite store file lives in, so a fresh install
 * needs no manual step. */
static void daemon__make_store_dir(const char *url) {
  if (strncmp(url, "sqlite:", 7) != 0) return;
  char *copy = strdup(url + 7);
  if (copy == NULL) return;
  const char *dir = dirname(copy);
  struct stat st;
  if (stat(dir, &st) != 0 && mkdir(dir, 0700) != 0) log_warn("could not create the store directory %s", dir);
  free(copy);
}

static const char *daemon__secret_key(void *ctx) { return ((daemon_host *)ctx)->cfg->secret_key; }

/* Opens the store and the shared parts. Returns 0, or 1 with the reason
 * already printed. */
static int daemon__open_core(daemon_host *d) {
  char err[1024];
  daemon__make_store_dir(d->cfg->store);
  if (store_claim(d->cfg->store, &d->store_claim, err, sizeof(err)) != 0 ||
      store_open(&d->loop, d->cfg->store, &d->st, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard: %s\n", err);
    return 1;
  }
  if (d->cfg->attachments_max_bytes >= 0) store_set_attachment_limit(d->st, d->cfg->attachments_max_bytes);
  if (httpc_new(&d->loop, &d->httpc) != 0 || relay_new(&d->loop, d->st, d->httpc, daemon__lookup, d, &d->relay) != 0) {
    fprintf(stderr, "switchboard: the HTTP client could not start\n");
    return 1;
  }
  relay_on_destroyed(d->relay, daemon__channel_destroyed, d);
  store_seed(d->st, d->cfg->root, daemon__seeded, NULL);
  outbox_config ob = {
      .base_delay_ms = d->cfg->outbox_retry_base_ms,
      .max_delay_ms = d->cfg->outbox_retry_max_ms,
      .max_attempts = d->cfg->outbox_max_attempts,
  };
  if (relay_start_outbox(d->relay, &ob) != 0) {
    fprintf(stderr, "switchboard: the outbox could not start\n");
    return 1;
  }
  webhooks_config wc = {.secret_key = daemon__secret_key, .ctx = d, .retry_base_ms = ob.base_delay_ms,
                        .retry_max_ms = ob.max_delay_ms};
  if (webhooks_new(&d->loop, d->st, d->httpc, &wc, &d->webhooks) != 0) {
    fprintf(stderr, "switchboard: the outgoing webhooks could not start\n");
    return 1;
  }
  return 0;
}

int daemon_run(const daemon_options *opt) {
  if (opt->log_level >= 0) log_set_level(opt->log_level);
  daemon_host *d = calloc(1, sizeof(*d));
  if (d == NULL) return 1;
  d->store_claim = -1;
  d->opt = *opt;
  char err[1024];
  if (daemon_prepare(opt, &d->cfg, &d->plugins, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard: %s\n", err);
    free(d);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* libuv's thread pool, made at its first use, is 4 threads unless this
   * says otherwise; a mail transfer holds one for as long as its server
   * keeps it (httpc.c), so the daemon asks for more. An operator's own
   * setting stands. */
  setenv("UV_THREADPOOL_SIZE", "16", 0);
  uv_loop_init(&d->loop);
  uv_signal_init(&d->loop, &d->sigint);
  uv_signal_init(&d->loop, &d->sigterm);
  uv_signal_init(&d->loop, &d->sighup);
  uv_timer_init(&d->loop, &d->stop_timer);
  d->sigint.data = d->sigterm.data = d->sighup.data = d->stop_timer.data = d;
  uv_signal_start(&d->sigint, daemon__signal, SIGINT);
  uv_signal_start(&d->sigterm, daemon__signal, SIGTERM);
  uv_signal_start(&d->sighup, daemon__signal, SIGHUP);

  if (daemon__open_core(d) != 0) {
    d->exit_code = 1;
    daemon__stop(d, "start-up failed");
  } else {
    for (size_t i = 0; i < d->cfg->channel_count; i++) daemon__open_channel(d, d->cfg, &d->cfg->channels[i]);
    if (d->opening_channels == 0) daemon__start_serving(d);
  }

  uv_run(&d->loop, UV_RUN_DEFAULT);

  int code = d->exit_code;
  if (uv_loop_close(&d->loop) != 0) {
    log_warn("closing handles left open at stop");
    uv_walk(&d->loop, daemon__close_leftover, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
  }
  store_release(d->store_claim);
  free(d->channels);
  json_decref(d->not_started);
  loader_unload(&d->plugins);
  config_free(d->cfg);
  free(d);
  log_info("stopped");
  log_clear_secrets();
  return code;
}
