/* daemon.h — the running host: one libuv loop, the loaded plugins, the
 * channels, signals (SIGINT/SIGTERM graceful stop, SIGHUP reload). */
#ifndef SB_CORE_DAEMON_H
#define SB_CORE_DAEMON_H

#include <stdio.h>

#include "config.h"
#include "loader.h"

typedef struct daemon_options {
  const char *config_path;
  const char *listen; /* overrides the file's, or NULL */
  const char *store;  /* overrides the file's, or NULL */
  int log_level;      /* LOG_LEVEL_*, or -1 for the file's */
} daemon_options;

/* Loads the config and the plugins it allows, and validates every channel
 * against its plugin. Returns 0, or -EINVAL with one sentence in err (the
 * first invalid thing). On success *cfg and *plugins are the caller's
 * (config_free, loader_unload); on failure nothing is left to free. */
int daemon_prepare(const daemon_options *opt, config **cfg, loader *plugins, char *err, size_t errlen);

/* Checks that the webhooks stored through the API can have their secrets
 * unsealed under cfg's secret_key (`check` tells; the daemon runs without
 * delivering those it cannot). Returns 0, or -EINVAL/-EIO with err. */
int daemon_check_webhooks(const config *cfg, char *err, size_t errlen);

/* Runs the daemon until SIGINT/SIGTERM. Returns the process exit status:
 * 0 after a graceful stop, 1 on a runtime failure, 2 for an invalid config. */
int daemon_run(const daemon_options *opt);

#endif
