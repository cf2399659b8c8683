/* loader.c — dlopen of allowed plugin files and vetting of their descriptors. */
#include "loader.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sb_utf8.h"
#include "schema.h"

/* The smallest descriptor a 1.x plugin can have: everything up to destroy. */
#define LOADER_MIN_DESC_SIZE (offsetof(sb_plugin, destroy) + sizeof(((sb_plugin *)0)->destroy))

int loader_id_valid(const char *id) {
  if (id == NULL) return 0;
  size_t n = strlen(id);
  if (n == 0 || n > 32 || !islower((unsigned char)id[0])) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (!(islower(c) || isdigit(c) || c == '_')) return 0;
  }
  return 1;
}

int loader_version_semantic(const char *v) {
  if (v == NULL) return 0;
  const char *p = v;
  for (int parts = 0; parts < 3; parts++) {
    if (parts > 0 && *p++ != '.') return 0;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
  }
  return *p == '\0' || *p == '-' || *p == '+';
}

/* The id a file claims by its name: "dir/custom.so" → "custom". */
static void loader__file_id(const char *path, char *out, size_t outlen) {
  const char *base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 3 && strcmp(base + n - 3, ".so") == 0) n -= 3;
  if (n >= outlen) n = outlen - 1;
  memcpy(out, base, n);
  out[n] = '\0';
}

/* Checks a descriptor's contents once its header is known to be good. */
static int loader__vet(const char *path, const sb_plugin *d, char *err, size_t errlen) {
  const char *id = d->id;
  if (!loader_id_valid(id)) {
    snprintf(err, errlen,
             "plugin file %s declares an invalid id \"%.40s\" (use 1-32 of a-z, 0-9 and _, starting with a letter)",
             path, id != NULL ? id : "(null)");
    return -EINVAL;
  }
  static const struct {
    size_t offset;
    const char *name;
  } required[] = {
      {offsetof(sb_plugin, create), "create"},
      {offsetof(sb_plugin, send), "send"},
      {offsetof(sb_plugin, destroy), "destroy"},
  };
  for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
    void *hook;
    memcpy(&hook, (const char *)d + required[i].offset, sizeof(hook));
    if (hook == NULL) {
      snprintf(err, errlen, "plugin \"%s\" (file %s) lacks the required hook %s", id, path, required[i].name);
      return -EINVAL;
    }
  }
  if (d->ws_open != NULL && (d->ws_message == NULL || d->ws_closed == NULL)) {
    snprintf(err, errlen,
             "plugin \"%s\" (file %s) has the ws_open hook but lacks %s: a plugin that takes WebSockets needs "
             "ws_open, ws_message and ws_closed (ABI 1.3)",
             id, path,
             d->ws_message == NULL && d->ws_closed == NULL ? "ws_message and ws_closed"
             : d->ws_message == NULL                      ? "ws_message"
                                                          : "ws_closed");
    return -EINVAL;
  }
  if (d->name == NULL || d->version == NULL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) must give a name and a version", id, path);
    return -EINVAL;
  }
  if (d->caps.thread_model != SB_THREAD_PER_CONTACT && d->caps.thread_model != SB_THREAD_EXTERNAL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) declares unknown thread model %u", id, path,
             (unsigned)d->caps.thread_model);
    return -EINVAL;
  }
  if (d->caps.start_by > SB_START_BY_EMAIL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) declares unknown start_by %u", id, path, (unsigned)d->caps.start_by);
    return -EINVAL;
  }
  /* Every text a plugin gives is shown as JSON (plugins list --json, the
   * API), which holds UTF-8 only: one that is not would make the plugin
   * vanish from those lists while it runs. */
  const char *texts[] = {d->name, d->publisher, d->version, d->description, d->logo_url};
  const char *what[] = {"name", "publisher", "version", "description", "logo_url"};
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    if (texts[i] != NULL && !sb_utf8_valid(texts[i], strlen(texts[i]))) {
      snprintf(err, errlen, "plugin \"%s\" (file %s) gives a %s that is not UTF-8", id, path, what[i]);
      return -EINVAL;
    }
  }
  for (size_t i = 0; d->credentials != NULL && i <= 256 && d->credentials[i].key != NULL; i++) {
    const sb_field *f = &d->credentials[i];
    const char *field_texts[] = {f->default_value, f->label, f->description};
    int bad = 0;
    for (size_t k = 0; k < 3; k++) bad |= field_texts[k] != NULL && !sb_utf8_valid(field_texts[k], strlen(field_texts[k]));
    for (size_t k = 0; f->enum_values != NULL && f->enum_values[k] != NULL && k < 256; k++)
      bad |= !sb_utf8_valid(f->enum_values[k], strlen(f->enum_values[k]));
    if (bad) {
      snprintf(err, errlen, "plugin \"%s\" (file %s): credential \"%.64s\" has a text that is not UTF-8", id, path,
               sb_utf8_valid(f->key, strlen(f->key)) ? f->key : "?");
      return -EINVAL;
    }
  }
  char label[4200];
  snprintf(label, sizeof(label), "\"%s\" (file %s)", id, path);
  return schema_check_table(label, d->credentials, err, errlen);
}

int loader_open_file(const char *path, const sb_host *host, loader_plugin *out, char *err, size_t errlen) {
  char file_id[64];
  loader__file_id(path, file_id, sizeof(file_id));
  memset(out, 0, sizeof(*out));
  dlerror();
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (dl == NULL) {
    const char *why = dlerror();
    snprintf(err, errlen, "plugin file %s could not be loaded: %s", path, why != NULL ? why : "unknown error");
    return -EINVAL;
  }
  dlerror();
  void *sym = dlsym(dl, SB_PLUGIN_ENTRY_SYMBOL);
  if (sym == NULL) {
    const char *why = dlerror();
    snprintf(err, errlen, "plugin file %s has no %s symbol: %s", path, SB_PLUGIN_ENTRY_SYMBOL,
             why != NULL ? why : "symbol is NULL");
    dlclose(dl);
    return -EINVAL;
  }
  sb_plugin_entry_fn entry;
  memcpy(&entry, &sym, sizeof(entry));
  const sb_plugin *d = NULL;
  char perr[256] = "";
  int rc = entry(host, &d, perr, sizeof(perr));
  perr[sizeof(perr) - 1] = '\0'; /* a plugin may fill it without ending it */
  if (rc == SB_EVERSION) {
    snprintf(err, errlen,
             "plugin \"%s\" (file %s) does not run under this host's plugin ABI %d.%d%s%s: rebuild it against this "
             "host's SDK (one built for a newer minor version needs a newer Switchboard)",
             file_id, path, SB_ABI_MAJOR, SB_ABI_MINOR, perr[0] ? ": " : "", perr);
    dlclose(dl);
    return -EINVAL;
  }
  if (rc != 0 || d == NULL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) refused to start under host ABI %d.%d: %s (code %d)", file_id,
             path, SB_ABI_MAJOR, SB_ABI_MINOR, perr[0] ? perr : "no reason given", rc);
    dlclose(dl);
    return -EINVAL;
  }
  const sb_abi_header *h = &d->abi;
  if (h->magic != SB_MAGIC_PLUGIN) {
    snprintf(err, errlen,
             "plugin file %s returned a descriptor with wrong magic 0x%08x (expected 0x%08x): not a Switchboard plugin descriptor",
             path, (unsigned)h->magic, (unsigned)SB_MAGIC_PLUGIN);
    dlclose(dl);
    return -EINVAL;
  }
  if (h->abi_major != SB_ABI_MAJOR) {
    snprintf(err, errlen,
             "plugin \"%s\" (file %s) was built for plugin ABI %u.%u but this host speaks %d.%d: rebuild it against this host's SDK",
             file_id, path, h->abi_major, h->abi_minor, SB_ABI_MAJOR, SB_ABI_MINOR);
    dlclose(dl);
    return -EINVAL;
  }
  if (h->abi_minor > SB_ABI_MINOR) {
    snprintf(err, errlen,
             "plugin \"%s\" (file %s) needs plugin ABI %u.%u but this host speaks %d.%d: upgrade Switchboard",
             file_id, path, h->abi_major, h->abi_minor, SB_ABI_MAJOR, SB_ABI_MINOR);
    dlclose(dl);
    return -EINVAL;
  }
  if (h->struct_size > sizeof(sb_plugin) || h->struct_size < LOADER_MIN_DESC_SIZE) {
    snprintf(err, errlen,
             "plugin \"%s\" (file %s) declares a descriptor of %u bytes for ABI %u.%u, outside the %zu-%zu bytes this host (ABI %d.%d) knows",
             file_id, path, (unsigned)h->struct_size, h->abi_major, h->abi_minor, (size_t)LOADER_MIN_DESC_SIZE,
             sizeof(sb_plugin), SB_ABI_MAJOR, SB_ABI_MINOR);
    dlclose(dl);
    return -EINVAL;
  }
  memcpy(&out->desc, d, h->struct_size);
  if (loader__vet(path, &out->desc, err, errlen) != 0) {
    dlclose(dl);
    memset(out, 0, sizeof(*out));
    return -EINVAL;
  }
  out->path = strdup(path);
  if (out->path == NULL) {
    dlclose(dl);
    return -ENOMEM;
  }
  out->dl = dl;
  out->abi_minor = h->abi_minor;
  return 0;
}

static int loader__refuse(loader *l, const char *path, const char *reason) {
  log_warn("%s", reason);
  loader_refusal *grown = realloc(l->refusals, (l->refusal_count + 1) * sizeof(*grown));
  if (grown == NULL) return -ENOMEM;
  l->refusals = grown;
  loader_refusal *r = &l->refusals[l->refusal_count];
  r->path = strdup(path);
  r->reason = strdup(reason);
  if (r->path == NULL || r->reason == NULL) {
    free(r->path);
    free(r->reason);
    return -ENOMEM;
  }
  l->refusal_count++;
  return 0;
}

static int loader__name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads the allowed *.so files of one directory, in name order. */
static int loader__scan(loader *l, const sb_host *host, const char *dir,
                        int (*allowed)(const void *ctx, const char *id),
                        int (*vet)(const void *ctx, const char *path, char *reason, size_t len), const void *ctx) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    char reason[512];
    snprintf(reason, sizeof(reason), "plugin directory %s cannot be read: %s", dir, strerror(errno));
    return loader__refuse(l, dir, reason);
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
    char **grown = realloc(names, (n + 1) * sizeof(*grown));
    if (grown == NULL) break;
    names = grown;
    if ((names[n] = strdup(e->d_name)) != NULL) n++;
  }
  closedir(d);
  if (n > 1) qsort(names, n, sizeof(*names), loader__name_cmp); /* names is NULL when the folder has none */
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    char path[4096], id[64], reason[8400];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    loader__file_id(path, id, sizeof(id));
    if (allowed != NULL && !allowed(ctx, id)) continue;
    const loader_plugin *dup = loader_find(l, id);
    if (dup != NULL) {
      snprintf(reason, sizeof(reason), "plugin \"%s\" (file %s) is already loaded from %s; the second copy is ignored",
               id, path, dup->path);
      if ((rc = loader__refuse(l, path, reason)) != 0) break;
      continue;
    }
    if (vet != NULL && vet(ctx, path, reason, sizeof(reason)) != 0) {
      if ((rc = loader__refuse(l, path, reason)) != 0) break;
      continue;
    }
    loader_plugin p;
    if (loader_open_file(path, host, &p, reason, sizeof(reason)) != 0) {
      if ((rc = loader__refuse(l, path, reason)) != 0) break;
      continue;
    }
    if (strcmp(p.desc.id, id) != 0) {
      snprintf(reason, sizeof(reason), "plugin file %s declares id \"%s\"; the file must be named %s.so", path,
               p.desc.id, p.desc.id);
      dlclose(p.dl);
      free(p.path);
      if ((rc = loader__refuse(l, path, reason)) != 0) break;
      continue;
    }
    loader_plugin *grown = realloc(l->plugins, (l->count + 1) * sizeof(*grown));
    if (grown == NULL) {
      dlclose(p.dl);
      free(p.path);
      rc = -ENOMEM;
      break;
    }
    l->plugins = grown;
    l->plugins[l->count++] = p;
    log_info("loaded plugin %s %s (ABI %d.%u) from %s", p.desc.id, p.desc.version, SB_ABI_MAJOR, p.abi_minor,
             path);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

int loader_load(loader *l, const sb_host *host, const char *const *dirs, size_t dir_count,
                int (*allowed)(const void *ctx, const char *id),
                int (*vet)(const void *ctx, const char *path, char *reason, size_t len), const void *ctx) {
  for (size_t i = 0; i < dir_count; i++) {
    int rc = loader__scan(l, host, dirs[i], allowed, vet, ctx);
    if (rc != 0) return rc;
  }
  return 0;
}

const loader_plugin *loader_find(const loader *l, const char *id) {
  for (size_t i = 0; i < l->count; i++) {
    if (strcmp(l->plugins[i].desc.id, id) == 0) return &l->plugins[i];
  }
  return NULL;
}

void loader_unload(loader *l) {
  for (size_t i = 0; i < l->count; i++) {
    /* Sanitizer builds keep the code mapped so leak reports can name it. */
#if !defined(__SANITIZE_ADDRESS__)
    dlclose(l->plugins[i].dl);
#endif
    free(l->plugins[i].path);
  }
  for (size_t i = 0; i < l->refusal_count; i++) {
    free(l->refusals[i].path);
    free(l->refusals[i].reason);
  }
  free(l->plugins);
  free(l->refusals);
  memset(l, 0, sizeof(*l));
}

static json_t *loader__caps_json(const sb_capabilities *c) {
  json_t *types = json_array();
  for (const char *const *t = c->attachment_types; t != NULL && *t != NULL; t++) {
    json_array_append_new(types, json_string(*t));
  }
  json_t *window = json_pack("{s:I, s:I, s:s?, s:b, s:b}", "seconds", (json_int_t)c->window_seconds,
                             "extended_seconds", (json_int_t)c->extended_window_seconds, "extended_tag",
                             c->extended_window_tag, "template_required_outside",
                             (c->window_flags & SB_WINDOW_TEMPLATE_OUTSIDE) != 0, "automatic_strict",
                             (c->window_flags & SB_WINDOW_AUTOMATIC_STRICT) != 0);
  json_t *att = json_pack("{s:b, s:o, s:I, s:I}", "supported", (c->flags & SB_CAP_ATTACHMENTS) != 0, "types",
                          c->attachment_types != NULL ? types : json_null(), "max_count",
                          (json_int_t)c->max_attachments, "max_bytes", (json_int_t)c->max_attachment_bytes);
  if (c->attachment_types == NULL) json_decref(types);
  return json_pack("{s:s, s:b, s:o, s:b, s:b, s:b, s:b, s:s?, s:b, s:b, s:o}", "thread_model",
                   c->thread_model == SB_THREAD_EXTERNAL ? "external" : "per_contact", "rich_text",
                   (c->flags & SB_CAP_RICH_TEXT) != 0, "attachments", att, "reply_to",
                   (c->flags & SB_CAP_REPLY_TO) != 0, "delivery_receipts", (c->flags & SB_CAP_DELIVERY_RECEIPTS) != 0,
                   "read_receipts", (c->flags & SB_CAP_READ_RECEIPTS) != 0, "can_start_conversation",
                   (c->flags & SB_CAP_START_CONVERSATION) != 0, "start_by",
                   c->start_by == SB_START_BY_EMAIL ? "email" : NULL, "templates", (c->flags & SB_CAP_TEMPLATES) != 0,
                   "receive_only", (c->flags & SB_CAP_RECEIVE_ONLY) != 0, "window", window);
}

json_t *loader_plugin_json(const loader_plugin *p) {
  char abi[16];
  snprintf(abi, sizeof(abi), "%d.%u", SB_ABI_MAJOR, p->abi_minor);
  json_t *schema = schema_to_json_schema(p->desc.name, p->desc.credentials);
  return json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:s?, s:s, s:s, s:o, s:o}", "id", p->desc.id, "name", p->desc.name,
                   "publisher", p->desc.publisher, "version", p->desc.version, "description", p->desc.description,
                   "logo_url", p->desc.logo_url, "abi", abi, "file", p->path, "capabilities",
                   loader__caps_json(&p->desc.caps), "credential_schema", schema);
}
