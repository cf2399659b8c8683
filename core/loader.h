/* loader.h — finding, loading and vetting channel plugins.
 *
 * A plugin is the file <id>.so in one of the configured directories. Only
 * files whose id the config allows are opened (dlopen RTLD_NOW|RTLD_LOCAL),
 * so code the operator did not allow never runs. Each file's descriptor is
 * checked (magic, ABI version, size, id, required hooks, schema table); a
 * refused file is reported and skipped, and the others still load.
 */
#ifndef SB_CORE_LOADER_H
#define SB_CORE_LOADER_H

#include <stddef.h>

#include <switchboard/plugin.h>

typedef struct loader_plugin {
  char *path;       /* the file it came from */
  void *dl;         /* dlopen handle */
  sb_plugin desc;   /* the descriptor, zero-extended to this host's size */
  uint16_t abi_minor; /* the minor version the plugin was built for */
} loader_plugin;

typedef struct loader_refusal {
  char *path;
  char *reason; /* one sentence naming the file, plugin and versions or hook */
} loader_refusal;

typedef struct loader {
  loader_plugin *plugins;
  size_t count;
  loader_refusal *refusals;
  size_t refusal_count;
} loader;

/* Scans dirs (in order) for allowed plugins and loads them. allow holds ids,
 * "*" allowing every *.so file; a NULL predicate allows all. vet, when not
 * NULL, is asked about each allowed file before it is opened: non-zero
 * refuses it with the reason it wrote (package_vet: signatures). A missing
 * directory is a refusal, not a failure. Returns 0 (check l->refusals for
 * what was refused, each also logged as a warning) or -ENOMEM. */
int loader_load(loader *l, const sb_host *host, const char *const *dirs, size_t dir_count,
                int (*allowed)(const void *ctx, const char *id),
                int (*vet)(const void *ctx, const char *path, char *reason, size_t len), const void *ctx);

/* Loads and vets one file whatever its name (for `plugins check`). Returns 0
 * and fills *out, or -EINVAL with the reason in err. */
int loader_open_file(const char *path, const sb_host *host, loader_plugin *out, char *err, size_t errlen);

/* Finds a loaded plugin by id, or NULL. */
const loader_plugin *loader_find(const loader *l, const char *id);

/* Unloads everything (after every instance is destroyed). */
void loader_unload(loader *l);

/* True when id is 1-32 of [a-z0-9_] starting with a letter. */
int loader_id_valid(const char *id);

/* True when v is a semantic version: N.N.N, then nothing or a -pre or
 * +build part. */
int loader_version_semantic(const char *v);

#include <jansson.h>

/* The plugin as the CLI and the API show it: {id, name, publisher, version,
 * description, logo_url, abi, file, capabilities, credential_schema}.
 * Returns a new reference, or NULL on allocation failure. */
json_t *loader_plugin_json(const loader_plugin *p);

#endif
