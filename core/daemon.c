/* daemon.c — the host's run loop: start-up, channels, reload, graceful stop. */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "channel.h"
#include "http.h"
#include "httpc.h"
#include "ingress.h"
#include "log.h"
#include "schema.h"

/* How long a graceful stop may wait for in-flight work before giving up. */
#define DAEMON_STOP_BOUND_MS 10000

typedef struct daemon_host {
  uv_loop_t loop;
  config *cfg;
  loader plugins;
  httpc *httpc;
  http_server *http;
  ingress *ingress;
  channel_env env;
  sb_channel **channels;
  size_t channel_count;
  unsigned closing_channels;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t stop_timer;
  uint64_t stop_waited_ms;
  int stopping;
  int exit_code;
} daemon_host;

static int daemon__allowed(const void *ctx, const char *id) { return config_plugin_allowed(ctx, id); }

/* Checks that every channel's plugin is loaded and its config valid. */
static int daemon__validate_channels(const config *cfg, const loader *plugins, char *err, size_t errlen) {
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
    int rc = channel_validate(p, c, cfg->base_dir, NULL, err, errlen);
    if (rc != 0) return rc;
  }
  return 0;
}

int daemon_prepare(const daemon_options *opt, config **cfg, loader *plugins, char *err, size_t errlen) {
  memset(plugins, 0, sizeof(*plugins));
  int rc = config_load(opt->config_path, opt->listen, opt->store, cfg, err, errlen);
  if (rc != 0) return -EINVAL;
  if (opt->log_level < 0) log_set_level((*cfg)->log_level);
  rc = loader_load(plugins, hostapi_table(), (*cfg)->plugin_dirs, (*cfg)->plugin_dir_count, daemon__allowed, *cfg);
  if (rc == 0) rc = daemon__validate_channels(*cfg, plugins, err, errlen);
  if (rc != 0) {
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory while loading plugins");
    loader_unload(plugins);
    config_free(*cfg);
    *cfg = NULL;
    return -EINVAL;
  }
  return 0;
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

/* The running channel called name (ingress lookup), or NULL. */
static sb_channel *daemon__lookup(void *ctx, const char *name) {
  daemon_host *d = ctx;
  for (size_t i = 0; i < d->channel_count; i++) {
    if (strcmp(channel_name(d->channels[i]), name) == 0) return d->channels[i];
  }
  return NULL;
}

/* GET /healthz: the daemon answers, and each channel's state. */
static void daemon__healthz(void *arg, const http_request *req, http_responder *res) {
  daemon_host *d = arg;
  json_t *channels = json_array();
  for (size_t i = 0; i < d->channel_count; i++) {
    sb_channel *ch = d->channels[i];
    const char *reason = channel_state_reason(ch);
    json_array_append_new(channels, json_pack("{s:s, s:s, s:s, s:s?}", "name", channel_name(ch), "plugin",
                                              channel_plugin(ch)->desc.id, "state",
                                              channel_state_name(channel_state(ch)), "reason",
                                              reason[0] != '\0' ? reason : NULL));
  }
  http_respond_json(res, 200, json_pack("{s:s, s:s, s:o}", "status", d->stopping ? "stopping" : "ok", "version",
                                        SB_VERSION, "channels", channels));
}

/* Starts the HTTP server with the webhook ingress and health routes. */
static int daemon__start_http(daemon_host *d, char *err, size_t errlen) {
  const config *cfg = d->cfg;
  http_options opt = {
      .listen = cfg->listen,
      .body_limit = cfg->http_body_limit,
      .header_timeout_ms = (uint64_t)cfg->http_header_timeout_ms,
      .idle_timeout_ms = (uint64_t)cfg->http_idle_timeout_ms,
      .tls_cert_file = cfg->tls_cert,
      .tls_key_file = cfg->tls_key,
  };
  int rc = http_new(&d->loop, &opt, &d->http, err, errlen);
  if (rc != 0) return rc;
  rc = http_route(d->http, "GET", "/healthz", daemon__healthz, d);
  if (rc == 0) rc = ingress_new(d->http, daemon__lookup, d, &d->ingress);
  if (rc != 0) snprintf(err, errlen, "the HTTP routes could not be set up (code %d)", rc);
  return rc;
}

/* Creates and starts one channel; logs and skips it when create fails so one
 * broken channel does not keep the others down. */
static sb_channel *daemon__open_channel(daemon_host *d, const config *cfg, const config_channel *c) {
  if (!c->enabled) {
    log_msg(LOG_LEVEL_INFO, c->name, c->plugin, "channel is off");
    return NULL;
  }
  const loader_plugin *p = loader_find(&d->plugins, c->plugin);
  char err[1024];
  sb_channel *ch = NULL;
  if (p == NULL || channel_create(&d->env, p, c, cfg->base_dir, &ch, err, sizeof(err)) != 0) {
    log_msg(LOG_LEVEL_ERROR, c->name, c->plugin, "%s", p == NULL ? "plugin not loaded" : err);
    return NULL;
  }
  channel_start(ch);
  return ch;
}

static void daemon__set_channels(daemon_host *d, sb_channel **list, size_t n) {
  free(d->channels);
  d->channels = list;
  d->channel_count = n;
}

static void daemon__open_all(daemon_host *d) {
  sb_channel **list = calloc(d->cfg->channel_count ? d->cfg->channel_count : 1, sizeof(*list));
  size_t n = 0;
  for (size_t i = 0; list != NULL && i < d->cfg->channel_count; i++) {
    sb_channel *ch = daemon__open_channel(d, d->cfg, &d->cfg->channels[i]);
    if (ch != NULL) list[n++] = ch;
  }
  daemon__set_channels(d, list, n);
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

static void daemon__reload(daemon_host *d) {
  log_info("reloading %s", d->cfg->path);
  config *next = NULL;
  char err[1024];
  if (config_load(d->cfg->path, NULL, NULL, &next, err, sizeof(err)) != 0 ||
      daemon__validate_channels(next, &d->plugins, err, sizeof(err)) != 0) {
    log_error("reload refused, still running the previous config: %s", err);
    config_free(next);
    return;
  }
  if (strcmp(next->listen, d->cfg->listen) != 0 || strcmp(next->store, d->cfg->store) != 0) {
    log_warn("listen and store changes take effect after a restart");
  }
  log_set_level(next->log_level);
  sb_channel **list = calloc(next->channel_count ? next->channel_count : 1, sizeof(*list));
  if (list == NULL) {
    log_error("reload refused: out of memory");
    config_free(next);
    return;
  }
  size_t n = 0, kept = 0, created = 0, closed = 0;
  for (size_t i = 0; i < d->channel_count; i++) {
    sb_channel *ch = d->channels[i];
    const config_channel *c = config_find_channel(next, channel_name(ch));
    if (c == NULL || !c->enabled || daemon__changed(next, ch, c)) {
      daemon__close_channel(d, ch);
      closed++;
    } else {
      list[n++] = ch;
      kept++;
    }
  }
  for (size_t i = 0; i < next->channel_count; i++) {
    const config_channel *c = &next->channels[i];
    int running = 0;
    for (size_t k = 0; k < n && !running; k++) running = strcmp(channel_name(list[k]), c->name) == 0;
    if (running) continue;
    sb_channel *ch = daemon__open_channel(d, next, c);
    if (ch != NULL) {
      list[n++] = ch;
      created++;
    }
  }
  daemon__set_channels(d, list, n);
  config_free(d->cfg);
  d->cfg = next;
  log_info("reloaded: %zu channels kept, %zu closed, %zu started", kept, closed, created);
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
  httpc_close(d->httpc, daemon__httpc_closed, d);
}

/* Polls until the channels are closed, then closes the shared handles. */
static void daemon__stop_tick(uv_timer_t *t) {
  daemon_host *d = t->data;
  if (d->closing_channels > 0 && d->stop_waited_ms < DAEMON_STOP_BOUND_MS) {
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
  for (size_t i = 0; i < d->channel_count; i++) daemon__close_channel(d, d->channels[i]);
  daemon__set_channels(d, NULL, 0);
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

int daemon_run(const daemon_options *opt) {
  if (opt->log_level >= 0) log_set_level(opt->log_level);
  daemon_host *d = calloc(1, sizeof(*d));
  if (d == NULL) return 1;
  char err[1024];
  if (daemon_prepare(opt, &d->cfg, &d->plugins, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard: %s\n", err);
    free(d);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&d->loop);
  if (httpc_new(&d->loop, &d->httpc) != 0) {
    fprintf(stderr, "switchboard: the HTTP client could not start\n");
    loader_unload(&d->plugins);
    config_free(d->cfg);
    uv_loop_close(&d->loop);
    free(d);
    return 1;
  }
  d->env.loop = &d->loop;
  d->env.ctx = d;
  d->env.httpc = d->httpc;
  d->env.destroyed = daemon__channel_destroyed;
  uv_signal_init(&d->loop, &d->sigint);
  uv_signal_init(&d->loop, &d->sigterm);
  uv_signal_init(&d->loop, &d->sighup);
  uv_timer_init(&d->loop, &d->stop_timer);
  d->sigint.data = d->sigterm.data = d->sighup.data = d->stop_timer.data = d;
  uv_signal_start(&d->sigint, daemon__signal, SIGINT);
  uv_signal_start(&d->sigterm, daemon__signal, SIGTERM);
  uv_signal_start(&d->sighup, daemon__signal, SIGHUP);

  if (daemon__start_http(d, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard: %s\n", err);
    log_error("%s", err);
    d->exit_code = 1;
    daemon__stop(d, "start-up failed");
  } else {
    daemon__open_all(d);
    log_info("switchboard %s ready: %zu plugins, %zu channels, listening on %s (port %u), config %s", SB_VERSION,
             d->plugins.count, d->channel_count, d->cfg->listen, (unsigned)http_bound_port(d->http), d->cfg->path);
  }

  uv_run(&d->loop, UV_RUN_DEFAULT);

  int code = d->exit_code;
  if (uv_loop_close(&d->loop) != 0) {
    log_warn("closing handles left open at stop");
    uv_walk(&d->loop, daemon__close_leftover, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
  }
  free(d->channels);
  loader_unload(&d->plugins);
  config_free(d->cfg);
  free(d);
  log_info("stopped");
  log_clear_secrets();
  return code;
}
