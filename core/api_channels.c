/* api_channels.c — channels over the API: list and read (never credentials), connect with sealed credentials, edit, turn off/on, move inbox, delete; stored API channels started at start-up. */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "log.h"
#include "router.h"
#include "schema.h"

/* The keys a channel object may have over the API (credentials apart). */
static const char *const api__channel_keys[] = {
    "name", "plugin", "inbox", "status", "credentials", "thread_policy", "closed_thread", "creates_tickets",
    "reply_channel", "routing", "ticket", "auto_replies", "history", NULL};

/* One channel request: the store's records are read first, then fn acts. */
typedef struct api_chreq api_chreq;
typedef void (*api_chreq_fn)(api_chreq *q);
struct api_chreq {
  api *a;
  http_responder *res;
  api_chreq_fn fn;
  json_t *body;     /* request body (owned) or NULL */
  char *name;       /* the {name} path parameter, or NULL */
  char history[16]; /* ?history= */
  json_t *records;  /* store_channels_list result (owned) */
  json_t *stored;   /* store_api_channels_list result (owned) */
  char *changing;   /* the channel this request changes (in a->changing), or NULL */
};

static void api__chreq_free(api_chreq *q) {
  if (q->changing != NULL) json_object_del(q->a->changing, q->changing);
  free(q->changing);
  json_decref(q->body);
  json_decref(q->records);
  json_decref(q->stored);
  free(q->name);
  free(q);
}

int api_channel_owned(const api *a, const char *name) {
  return a != NULL && a->owned != NULL && json_object_get(a->owned, name) != NULL;
}

int api_channel_on(const api *a, const char *name) {
  return a != NULL && a->owned != NULL && json_is_true(json_object_get(a->owned, name));
}

/* Whether a channel spec is on (status left out: on). */
static int api__spec_on(const json_t *spec) {
  const char *status = json_string_value(json_object_get(spec, "status"));
  return status == NULL || strcmp(status, "off") != 0;
}

static const json_t *api__find(const json_t *arr, const char *name) {
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n != NULL && strcmp(n, name) == 0) return e;
  }
  return NULL;
}

/* The channel's public_url setting, or NULL: the running instance's
 * (resolved, whatever its source), else a config channel's literal, else an
 * API channel's: the credentials just saved (a row answering POST or PATCH
 * carries them), or what its sealed credentials hold (*opened, freed by
 * the caller, keeps the string alive). */
static const char *api__public_url(api *a, sb_channel *ch, const config_channel *cc, const json_t *stored,
                                   json_t **opened) {
  *opened = NULL;
  if (ch != NULL) return schema_config_get(channel_config(ch), "public_url");
  if (cc != NULL) return json_string_value(json_object_get(cc->credentials, "public_url"));
  const json_t *saved = json_object_get(stored, "credentials");
  if (saved != NULL) return json_string_value(json_object_get(saved, "public_url"));
  const char *sealed = json_string_value(json_object_get(stored, "sealed"));
  if (sealed == NULL || api_unseal(a->host.config(a->host.ctx)->secret_key, sealed, opened) != 0) return NULL;
  return json_string_value(json_object_get(*opened, "public_url"));
}

/* The HTML snippet that puts a channel's widget on a web page, or NULL for
 * channels that serve none (only the chat plugin does). The address is the
 * channel's public_url setting when it has one, else the daemon's own
 * listen address (https when it serves TLS). */
static json_t *api__embed(api *a, const char *name, const json_t *spec, sb_channel *ch, const config_channel *cc,
                          const json_t *stored) {
  const char *plugin = json_string_value(json_object_get(spec, "plugin"));
  if (plugin == NULL || strcmp(plugin, "chat") != 0) return NULL;
  const config *cfg = a->host.config(a->host.ctx);
  json_t *opened;
  const char *public_url = api__public_url(a, ch, cc, stored, &opened);
  char base[512], snippet[1400];
  if (public_url != NULL && public_url[0] != '\0') {
    snprintf(base, sizeof(base), "%s", public_url);
  } else {
    snprintf(base, sizeof(base), "%s://%s", cfg->tls_cert != NULL ? "https" : "http",
             cfg->listen != NULL ? cfg->listen : "127.0.0.1:8080");
  }
  size_t n = strlen(base);
  while (n > 0 && base[n - 1] == '/') base[--n] = '\0';
  char esc[1100];
  size_t o = 0;
  for (size_t i = 0; base[i] != '\0' && o + 7 < sizeof(esc); i++) { /* an attribute value: escape what HTML would read */
    const char *rep = base[i] == '&' ? "&amp;" : base[i] == '"' ? "&quot;" : base[i] == '<' ? "&lt;"
                      : base[i] == '>' ? "&gt;" : NULL;
    if (rep != NULL) {
      memcpy(esc + o, rep, strlen(rep));
      o += strlen(rep);
    } else {
      esc[o++] = base[i];
    }
  }
  esc[o] = '\0';
  snprintf(snippet, sizeof(snippet), "<script src=\"%s/hooks/%s/widget.js\" async></script>", esc, name);
  json_decref(opened);
  return json_string(snippet);
}

/* The API's view of a channel; never its credentials. stored is the API
 * channel row or NULL for a config channel (cc). */
static json_t *api__view(api *a, const char *name, const config_channel *cc, const json_t *stored,
                         const json_t *records) {
  const json_t *spec = stored ? json_object_get(stored, "spec") : cc->spec;
  const json_t *rec = api__find(records, name);
  const char *status = stored ? json_string_value(json_object_get(spec, "status")) : (cc->enabled ? "on" : "off");
  if (status == NULL) status = "on";
  sb_channel *ch = a->host.lookup(a->host.ctx, name);
  const char *reason = ch != NULL ? channel_state_reason(ch) : NULL;
  /* on, but its plugin refused it when it was created */
  const json_t *refused = ch == NULL && a->host.not_started != NULL
                              ? json_object_get(a->host.not_started(a->host.ctx), name) : NULL;
  if (refused != NULL) reason = json_string_value(json_object_get(refused, "reason"));
  json_t *rules = NULL;
  router_channel rc;
  char err[256];
  if (router_channel_from_json(spec, &rc, err, sizeof(err)) == 0) {
    const loader_plugin *lp = loader_find(a->host.plugins, json_string_value(json_object_get(spec, "plugin")));
    if (lp != NULL) /* as the daemon runs the channel */
      router_channel_plugin_defaults(&rc, spec, lp->desc.caps.thread_model == SB_THREAD_EXTERNAL,
                                     lp->desc.caps.start_by == SB_START_BY_EMAIL,
                                     (lp->desc.caps.flags & SB_CAP_RECEIVE_ONLY) != 0);
    rules = router_channel_to_json(&rc);
    router_channel_free(&rc);
  }
  const char *inbox = json_string_value(json_object_get(spec, "inbox"));
  /* An API channel started and not yet running is on its way (its rules
   * with the store first), not stopped. */
  const char *state = ch != NULL                         ? channel_state_name(channel_state(ch))
                      : refused != NULL                   ? "config_error"
                      : stored && api_channel_on(a, name) ? "connecting"
                                                          : "stopped";
  return json_pack("{s:O? s:s s:s? s:s s:s s:s s:s s:s? s:o? s:o?}", "id", json_object_get(rec, "id"), "name", name,
                   "plugin", json_string_value(json_object_get(spec, "plugin")), "inbox",
                   inbox ? inbox : ROUTER_DEFAULT_INBOX, "status", status, "source", stored ? "api" : "config", "state", state, "state_reason",
                   reason != NULL && reason[0] != '\0' ? reason : NULL, "rules", rules, "embed",
                   api__embed(a, name, spec, ch, stored ? NULL : cc, stored));
}

static void api__stored_listed(void *arg, int status, json_t *result, const char *err) {
  api_chreq *q = arg;
  if (status != 0) {
    api_store_error(q->res, status, err);
    api__chreq_free(q);
    return;
  }
  q->stored = json_incref(result);
  q->fn(q);
}

static void api__records_listed(void *arg, int status, json_t *result, const char *err) {
  api_chreq *q = arg;
  if (status != 0) {
    api_store_error(q->res, status, err);
    api__chreq_free(q);
    return;
  }
  q->records = json_incref(result);
  if (api_submitted(q->res, store_api_channels_list(q->a->host.st, api__stored_listed, q)) < 0) api__chreq_free(q);
}

/* Reads the channel records, then calls fn(q); fn must finish q->res and
 * free q. A change (changes: a POST, PATCH or DELETE) holds its channel's
 * name until it is answered: another change of that channel meanwhile is
 * 409, so two edits never interleave (a DELETE racing a PATCH left a
 * deleted channel running). */
static void api__with_channels(api *a, const http_request *req, http_responder *res, json_t *body, api_chreq_fn fn,
                               int changes) {
  api_chreq *q = calloc(1, sizeof(*q));
  const char *name = http_request_param(req, "name");
  const char *target = name != NULL ? name : json_string_value(json_object_get(body, "name"));
  if (q == NULL || (name != NULL && (q->name = strdup(name)) == NULL) ||
      (changes && target != NULL && (q->changing = strdup(target)) == NULL)) {
    if (q != NULL) free(q->name);
    free(q);
    json_decref(body);
    http_respond_error(res, 503, "unavailable", "out of memory", NULL);
    return;
  }
  if (q->changing != NULL && json_object_get(a->changing, q->changing) != NULL) {
    char msg[160];
    snprintf(msg, sizeof(msg), "channel \"%.64s\" is being changed by another request: try again", q->changing);
    free(q->changing);
    free(q->name);
    free(q);
    json_decref(body);
    http_respond_error(res, 409, "conflict", msg, NULL);
    return;
  }
  if (q->changing != NULL) json_object_set_new(a->changing, q->changing, json_true());
  q->a = a;
  q->res = res;
  q->fn = fn;
  q->body = body;
  if (http_request_query(req, "history", q->history, sizeof(q->history)) < 0) q->history[0] = '\0';
  if (api_submitted(res, store_channels_list(a->host.st, api__records_listed, q)) < 0) api__chreq_free(q);
}

/* ---- GET ---- */

static void api__list_fn(api_chreq *q) {
  const config *cfg = q->a->host.config(q->a->host.ctx);
  json_t *items = json_array();
  for (size_t i = 0; i < cfg->channel_count; i++) {
    json_array_append_new(items, api__view(q->a, cfg->channels[i].name, &cfg->channels[i], NULL, q->records));
  }
  size_t i;
  json_t *e;
  json_array_foreach(q->stored, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (config_find_channel(cfg, name) == NULL) json_array_append_new(items, api__view(q->a, name, NULL, e, q->records));
  }
  http_respond_json(q->res, 200, json_pack("{so s:n}", "items", items, "next_cursor"));
  api__chreq_free(q);
}

/* Finds q->name: *cc for a config channel, *stored for an API one. Answers
 * 404 and returns -ENOENT when neither. */
static int api__lookup(api_chreq *q, const config_channel **cc, const json_t **stored) {
  *cc = config_find_channel(q->a->host.config(q->a->host.ctx), q->name);
  *stored = *cc == NULL ? api__find(q->stored, q->name) : NULL;
  if (*cc != NULL || *stored != NULL) return 0;
  char msg[128];
  snprintf(msg, sizeof(msg), "channel \"%.64s\" does not exist", q->name);
  http_respond_error(q->res, 404, "not_found", msg, NULL);
  return -ENOENT;
}

static void api__get_fn(api_chreq *q) {
  const config_channel *cc;
  const json_t *stored;
  if (api__lookup(q, &cc, &stored) == 0) http_respond_json(q->res, 200, api__view(q->a, q->name, cc, stored, q->records));
  api__chreq_free(q);
}

static void api__channels(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__with_channels(a, req, res, NULL, api__list_fn, 0);
}

static void api__channel(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  api__with_channels(a, req, res, NULL, api__get_fn, 0);
}

/* ---- validation shared by POST and PATCH ---- */

static int api__name_valid(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > 64) return 0;
  for (const char *p = n; *p; p++) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return 0;
  }
  return 1;
}

/* Whether v is an object, or an array holding one (a MULTI setting's
 * values are resolved one by one). */
static int api__holds_object(const json_t *v) {
  size_t i;
  json_t *e;
  if (json_is_object(v)) return 1;
  json_array_foreach(v, i, e) if (json_is_object(e)) return 1;
  return 0;
}

/* Credentials over the API are literal values: an {"env"} or {"file"}
 * reference, alone or among a list's values, would let a client read the
 * daemon's environment or files (and have validation errors quote them). */
static int api__credentials_literal(http_responder *res, const json_t *cred) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)cred, k, v) {
    if (api__holds_object(v)) {
      char msg[160];
      snprintf(msg, sizeof(msg), "credential \"%.64s\" must be a literal value over the API (no env or file references)", k);
      http_respond_error(res, 400, "invalid_type", msg, "credentials");
      return -EINVAL;
    }
  }
  return 0;
}

/* Checks a whole channel object (credentials in clear) the way config is
 * checked: rules, then the plugin's schema and validate hook. Answers and
 * returns -EINVAL when it is not valid. */
static int api__spec_valid(api *a, http_responder *res, const json_t *spec) {
  const char *plugin_id = json_string_value(json_object_get(spec, "plugin"));
  const loader_plugin *p = loader_find(a->host.plugins, plugin_id);
  char err[512], msg[600];
  if (p == NULL) {
    snprintf(msg, sizeof(msg), "plugin \"%.64s\" is not loaded (see GET /api/v1/plugins)", plugin_id);
    http_respond_error(res, 422, "unknown_plugin", msg, "plugin");
    return -EINVAL;
  }
  json_t *rules_only = json_deep_copy(spec);
  json_object_del(rules_only, "history");
  router_channel rc;
  char key[96];
  int bad = router_channel_from_json_key(rules_only, &rc, err, sizeof(err), key, sizeof(key));
  json_decref(rules_only);
  if (bad == 0) {
    bad = router_channel_check_ticket(&rc, a->host.config(a->host.ctx)->root, err, sizeof(err));
    if (bad != 0) snprintf(key, sizeof(key), "ticket");
    router_channel_free(&rc);
  }
  if (bad != 0) {
    http_respond_error(res, 422, "invalid_channel", err, key[0] != '\0' ? key : NULL);
    return -EINVAL;
  }
  const char *status = json_string_value(json_object_get(spec, "status"));
  config_channel cc = {
      .name = json_string_value(json_object_get(spec, "name")),
      .plugin = plugin_id,
      .inbox = json_string_value(json_object_get(spec, "inbox")),
      .enabled = status == NULL || strcmp(status, "off") != 0,
      .credentials = json_object_get(spec, "credentials"),
      .spec = (json_t *)spec,
  };
  const config *cfg = a->host.config(a->host.ctx);
  if (channel_validate(p, &cc, cfg->base_dir, NULL, err, sizeof(err)) != 0) {
    http_respond_error(res, 422, "invalid_credentials", err, "credentials");
    return -EINVAL;
  }
  return 0;
}

/* Checks spec's reply_channel: a channel of the config or of the API (in
 * q's list), whose plugin sends. Answers 422 naming reply_channel and
 * returns -EINVAL when it is not. */
static int api__reply_channel_valid(const api_chreq *q, const json_t *spec) {
  const char *via = json_string_value(json_object_get(spec, "reply_channel"));
  const char *self = json_string_value(json_object_get(spec, "name"));
  if (via == NULL) return 0;
  const config_channel *cc = config_find_channel(q->a->host.config(q->a->host.ctx), via);
  const json_t *stored = cc == NULL ? api__find(q->stored, via) : NULL;
  const char *plugin = cc != NULL                              ? cc->plugin
                       : stored != NULL                        ? json_string_value(json_object_get(json_object_get(stored, "spec"), "plugin"))
                       : self != NULL && strcmp(via, self) == 0 ? json_string_value(json_object_get(spec, "plugin"))
                                                                : NULL;
  const loader_plugin *p = plugin != NULL ? loader_find(q->a->host.plugins, plugin) : NULL;
  char msg[200];
  if (plugin == NULL)
    snprintf(msg, sizeof(msg), "there is no channel \"%.64s\" to reply through", via);
  else if (p != NULL && (p->desc.caps.flags & SB_CAP_RECEIVE_ONLY) != 0)
    snprintf(msg, sizeof(msg), "channel \"%.64s\" only takes messages in: it cannot send replies", via);
  else
    return 0;
  http_respond_error(q->res, 422, "invalid_channel", msg, "reply_channel");
  return -EINVAL;
}

/* The channel (of the config or the API, other than name itself) whose
 * reply_channel is name, or NULL. */
static const char *api__replied_through(const api_chreq *q, const char *name) {
  const config *cfg = q->a->host.config(q->a->host.ctx);
  for (size_t i = 0; i < cfg->channel_count; i++) {
    const char *via = json_string_value(json_object_get(cfg->channels[i].spec, "reply_channel"));
    if (via != NULL && strcmp(via, name) == 0 && strcmp(cfg->channels[i].name, name) != 0) return cfg->channels[i].name;
  }
  size_t i;
  json_t *e;
  json_array_foreach(q->stored, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    const char *via = json_string_value(json_object_get(json_object_get(e, "spec"), "reply_channel"));
    if (via != NULL && n != NULL && strcmp(via, name) == 0 && strcmp(n, name) != 0) return n;
  }
  return NULL;
}

/* Type checks of a POST or PATCH body; answers 400. */
static int api__body_types(http_responder *res, const json_t *b) {
  if (api_check_keys(res, b, api__channel_keys) != 0 || api_check_type(res, b, "name", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "plugin", JSON_STRING, 0) != 0 || api_check_type(res, b, "inbox", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "status", JSON_STRING, 0) != 0 ||
      api_check_type(res, b, "credentials", JSON_OBJECT, 0) != 0 ||
      api_check_type(res, b, "history", JSON_STRING, 0) != 0)
    return -EINVAL;
  const char *inbox = json_string_value(json_object_get(b, "inbox"));
  if (inbox != NULL && inbox[0] == '\0') { /* as config_load refuses it */
    http_respond_error(res, 400, "invalid", "\"inbox\" must be a non-empty string", "inbox");
    return -EINVAL;
  }
  const char *status = json_string_value(json_object_get(b, "status"));
  if (status != NULL && strcmp(status, "on") != 0 && strcmp(status, "off") != 0) {
    http_respond_error(res, 400, "invalid", "\"status\" must be \"on\" or \"off\"", "status");
    return -EINVAL;
  }
  json_t *cred = json_object_get(b, "credentials");
  return cred != NULL ? api__credentials_literal(res, cred) : 0;
}

/* Seals spec's credentials, stores the channel and (re)starts it. Answers
 * with code and the channel's view. */
typedef struct api_saving {
  api_chreq *q;
  json_t *spec; /* with credentials in clear (owned) */
  int code;
  char *move_inbox; /* PATCH inbox with history=move: the new inbox */
} api_saving;

static void api__saved(void *arg, int status, json_t *result, const char *err) {
  (void)result;
  api_saving *s = arg;
  api *a = s->q->a;
  const char *name = json_string_value(json_object_get(s->spec, "name"));
  if (status != 0) {
    api_store_error(s->q->res, status, err);
  } else {
    char why[512] = "";
    if (a->host.channel_close != NULL) a->host.channel_close(a->host.ctx, name);
    json_object_del(a->owned, name);
    int rc = a->host.channel_open(a->host.ctx, s->spec, why, sizeof(why));
    if (rc == 0) json_object_set_new(a->owned, name, json_boolean(api__spec_on(s->spec)));
    if (rc != 0) log_msg(LOG_LEVEL_ERROR, name, NULL, "channel saved but not started: %s", why);
    /* Answer with the stored form, as GET will show it. */
    json_t *spec = json_deep_copy(s->spec);
    json_object_del(spec, "credentials");
    json_t *row = json_pack("{ss so sO?}", "name", name, "spec", spec, "credentials",
                            json_object_get(s->spec, "credentials")); /* for the embed snippet; never shown */
    http_respond_json(s->q->res, s->code, api__view(a, name, NULL, row, s->q->records));
    json_decref(row);
  }
  api__chreq_free(s->q);
  json_decref(s->spec);
  free(s->move_inbox);
  free(s);
}

static void api__save(api_chreq *q, json_t *spec, int code, const char *move_inbox, int new_credentials) {
  api *a = q->a;
  const config *cfg = a->host.config(a->host.ctx);
  char *sealed = NULL;
  if (new_credentials) {
    int rc = api_seal(cfg->secret_key, json_object_get(spec, "credentials"), &sealed);
    if (rc != 0) {
      http_respond_error(q->res, rc == -EINVAL ? 409 : 503, rc == -EINVAL ? "secret_key_missing" : "unavailable",
                         rc == -EINVAL ? "channels connected through the API keep their credentials sealed: set "
                                         "secret_key (64 hex digits) in the config file first"
                                       : "out of memory",
                         rc == -EINVAL ? "credentials" : NULL);
      api__chreq_free(q);
      json_decref(spec);
      return;
    }
  }
  api_saving *s = calloc(1, sizeof(*s));
  json_t *clean = json_deep_copy(spec);
  json_object_del(clean, "credentials");
  json_object_del(clean, "history");
  json_object_del(spec, "history");
  const char *name = json_string_value(json_object_get(spec, "name"));
  int rc = -ENOMEM;
  if (s != NULL && clean != NULL) {
    *s = (api_saving){q, spec, code, move_inbox ? strdup(move_inbox) : NULL};
    if (move_inbox != NULL) store_channel_history_move(a->host.st, name, move_inbox, NULL, NULL);
    rc = store_api_channel_put(a->host.st, name, clean, sealed, api__saved, s);
  }
  json_decref(clean);
  free(sealed);
  if (rc != 0) {
    http_respond_error(q->res, 503, "unavailable", "the store is not accepting requests", NULL);
    api__chreq_free(q);
    json_decref(spec);
    if (s != NULL) free(s->move_inbox);
    free(s);
  }
}

/* ---- POST /channels ---- */

static void api__create_fn(api_chreq *q) {
  api *a = q->a;
  json_t *b = q->body;
  const char *name = json_string_value(json_object_get(b, "name"));
  char msg[192];
  if (config_find_channel(a->host.config(a->host.ctx), name) != NULL || api__find(q->stored, name) != NULL) {
    snprintf(msg, sizeof(msg), "a channel named \"%.64s\" already exists", name);
    http_respond_error(q->res, 409, "conflict", msg, "name");
    api__chreq_free(q);
    return;
  }
  json_t *spec = json_deep_copy(b);
  if (json_object_get(spec, "credentials") == NULL) json_object_set_new(spec, "credentials", json_object());
  if (json_object_get(spec, "status") == NULL) json_object_set_new(spec, "status", json_string("on"));
  if (api__spec_valid(a, q->res, spec) != 0 || api__reply_channel_valid(q, spec) != 0) {
    json_decref(spec);
    api__chreq_free(q);
    return;
  }
  api__save(q, spec, 201, NULL, 1);
}

static void api__channel_create(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  if (api__body_types(res, b) != 0) {
    json_decref(b);
    return;
  }
  const char *name = json_string_value(json_object_get(b, "name"));
  const char *missing = name == NULL ? "name" : json_object_get(b, "plugin") == NULL ? "plugin" : NULL;
  if (missing != NULL) {
    char msg[96];
    snprintf(msg, sizeof(msg), "a channel needs \"%s\"", missing);
    http_respond_error(res, 400, "missing_field", msg, missing);
  } else if (!api__name_valid(name)) {
    http_respond_error(res, 400, "invalid", "a channel name is 1-64 of A-Z a-z 0-9 _ -", "name");
  } else if (json_object_get(b, "history") != NULL) {
    http_respond_error(res, 400, "unknown_field", "\"history\" is for PATCH and DELETE", "history");
  } else {
    api__with_channels(a, req, res, b, api__create_fn, 1);
    return;
  }
  json_decref(b);
}

/* ---- PATCH /channels/{name} ---- */

static int api__config_owned(api_chreq *q, const config_channel *cc) {
  if (cc == NULL) return 0;
  char msg[192];
  snprintf(msg, sizeof(msg), "channel \"%.64s\" is defined in the config file; change it there and reload", q->name);
  http_respond_error(q->res, 409, "config_channel", msg, NULL);
  return 1;
}

static void api__patch_fn(api_chreq *q) {
  api *a = q->a;
  const config_channel *cc;
  const json_t *stored;
  if (api__lookup(q, &cc, &stored) != 0 || api__config_owned(q, cc)) {
    api__chreq_free(q);
    return;
  }
  json_t *spec = json_deep_copy(json_object_get(stored, "spec"));
  const char *old_inbox = json_string_value(json_object_get(spec, "inbox"));
  char *old = strdup(old_inbox ? old_inbox : ROUTER_DEFAULT_INBOX);
  json_t *cred = NULL;
  int new_credentials = json_object_get(q->body, "credentials") != NULL;
  if (!new_credentials) {
    const char *key = a->host.config(a->host.ctx)->secret_key;
    int rc = api_unseal(key, json_string_value(json_object_get(stored, "sealed")), &cred);
    if (rc != 0) {
      http_respond_error(q->res, 409, "secret_key", "the channel's stored credentials cannot be unsealed with the "
                         "configured secret_key; send \"credentials\" again", "credentials");
      goto fail;
    }
    json_object_set_new(spec, "credentials", cred);
  }
  json_object_update(spec, q->body);
  json_object_del(spec, "history");
  const char *inbox = json_string_value(json_object_get(spec, "inbox"));
  const char *move = NULL;
  const char *history = json_string_value(json_object_get(q->body, "history"));
  if (history != NULL && strcmp(history, "move") != 0 && strcmp(history, "keep") != 0) {
    http_respond_error(q->res, 400, "invalid", "\"history\" must be \"move\" (conversations follow the channel to its "
                       "new inbox) or \"keep\" (they stay)", "history");
    goto fail;
  }
  if (inbox != NULL && strcmp(inbox, old) != 0 && history != NULL && strcmp(history, "move") == 0) move = inbox;
  if (api__spec_valid(a, q->res, spec) != 0 || api__reply_channel_valid(q, spec) != 0) goto fail;
  api__save(q, spec, 200, move, new_credentials);
  free(old);
  return;
fail:
  free(old);
  json_decref(spec);
  api__chreq_free(q);
}

static void api__channel_patch(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  json_t *b = NULL;
  if (api_body_object(req, res, &b) != 0) return;
  if (api__body_types(res, b) != 0) {
    json_decref(b);
    return;
  }
  const char *name = json_string_value(json_object_get(b, "name"));
  const char *plugin = json_string_value(json_object_get(b, "plugin"));
  if (name != NULL && strcmp(name, http_request_param(req, "name")) != 0) {
    http_respond_error(res, 400, "invalid", "renaming a channel is not supported: its name is its webhook path", "name");
  } else if (plugin != NULL) {
    http_respond_error(res, 400, "invalid", "a channel's plugin cannot change; delete it and connect a new one",
                       "plugin");
  } else {
    api__with_channels(a, req, res, b, api__patch_fn, 1);
    return;
  }
  json_decref(b);
}

/* ---- DELETE /channels/{name}?history=keep|delete ---- */

static void api__deleted(void *arg, int status, json_t *result, const char *err) {
  (void)result;
  api_chreq *q = arg;
  if (status != 0) {
    api_store_error(q->res, status, err);
  } else {
    http_respond_json(q->res, 200, json_pack("{ss sb ss}", "name", q->name, "deleted", 1, "history",
                                             q->history[0] ? q->history : "keep"));
  }
  api__chreq_free(q);
}

static void api__ignore(void *arg, int status, json_t *result, const char *err) {
  (void)arg;
  (void)status;
  (void)result;
  (void)err;
}

static void api__delete_fn(api_chreq *q) {
  api *a = q->a;
  const config_channel *cc;
  const json_t *stored;
  if (api__lookup(q, &cc, &stored) != 0 || api__config_owned(q, cc)) {
    api__chreq_free(q);
    return;
  }
  const char *through = api__replied_through(q, q->name);
  if (through != NULL) { /* it would leave that channel's replies nowhere to go */
    char msg[200];
    snprintf(msg, sizeof(msg), "channel \"%.64s\" replies through this one (reply_channel): change that first", through);
    http_respond_error(q->res, 409, "conflict", msg, NULL);
    api__chreq_free(q);
    return;
  }
  if (a->host.channel_close != NULL) a->host.channel_close(a->host.ctx, q->name);
  json_object_del(a->owned, q->name);
  /* The store runs these in order; the last one answers. */
  store_channel_delete(a->host.st, q->name, api__ignore, NULL);
  if (strcmp(q->history, "delete") == 0) store_channel_history_delete(a->host.st, q->name, api__ignore, NULL);
  if (api_submitted(q->res, store_api_channel_delete(a->host.st, q->name, api__deleted, q)) < 0) api__chreq_free(q);
}

static void api__channel_delete(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  char h[16];
  int n = http_request_query(req, "history", h, sizeof(h));
  if (n != -ENOENT && (n < 0 || (strcmp(h, "keep") != 0 && strcmp(h, "delete") != 0))) {
    http_respond_error(res, 400, "invalid_query", "history must be keep or delete", "history");
    return;
  }
  api__with_channels(a, req, res, NULL, api__delete_fn, 1);
}

/* ---- start-up and reload: run the channels stored by earlier API calls ---- */

/* Starts the stored channel e (a store_api_channels_list item): unseals
 * its credentials under cfg's key and opens it. A key that cannot unseal
 * them is fatal at start-up (the daemon stops, naming the channel) and an
 * error logged after a reload; returns -1 then, else 0. */
static int api__open_stored(api *a, const config *cfg, const json_t *e, int at_start) {
  const char *name = json_string_value(json_object_get(e, "name"));
  json_t *cred = NULL;
  int rc = api_unseal(cfg->secret_key, json_string_value(json_object_get(e, "sealed")), &cred);
  if (rc != 0) {
    char msg[256];
    snprintf(msg, sizeof(msg),
             "channel \"%s\" was connected through the API and its credentials cannot be unsealed: %s", name,
             api_unseal_problem(rc));
    if (at_start)
      a->host.fatal(a->host.ctx, msg);
    else
      log_msg(LOG_LEVEL_ERROR, name, NULL, "channel not started: %s", msg);
    return -1;
  }
  json_t *spec = json_deep_copy(json_object_get(e, "spec"));
  json_object_set_new(spec, "credentials", cred);
  char why[512];
  if (a->host.channel_open(a->host.ctx, spec, why, sizeof(why)) == 0) {
    json_object_set_new(a->owned, name, json_boolean(api__spec_on(spec)));
  } else {
    log_msg(LOG_LEVEL_ERROR, name, NULL, "channel not started: %s", why);
  }
  json_decref(spec);
  return 0;
}

/* The stored channels, read at start-up (a->loading API_LOAD_START) or after
 * a reload (API_LOAD_RELOAD). One the config names is the config's (it
 * wins; the stored one waits, remembered in a->yielded). At start-up every
 * other one starts; after a reload, one that had given way to the config
 * and that the config no longer names starts again, as after a restart. */
static void api__stored_read(void *arg, int status, json_t *result, const char *err) {
  api *a = arg;
  int at_start = a->loading == API_LOAD_START;
  a->loading = 0;
  if (a->freed) {
    api_free(a);
    return;
  }
  if (status != 0) {
    log_error("api: the channels connected through the API could not be read: %s", err ? err : "");
    return;
  }
  const config *cfg = a->host.config(a->host.ctx);
  size_t i;
  json_t *e;
  json_array_foreach(result, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (config_find_channel(cfg, name) != NULL) {
      if (at_start || json_object_get(a->owned, name) != NULL)
        log_warn("api: channel \"%s\" is in the config file and was also connected through the API; the config wins",
                 name);
      json_object_del(a->owned, name);
      json_object_set_new(a->yielded, name, json_true());
    } else if (at_start) {
      if (api__open_stored(a, cfg, e, 1) != 0) return;
    } else if (json_object_get(a->yielded, name) != NULL) {
      json_object_del(a->yielded, name);
      log_msg(LOG_LEVEL_INFO, name, NULL, "no longer in the config file: the channel connected through the API runs again");
      api__open_stored(a, cfg, e, 0);
    }
  }
}

void api_channels_reloaded(api *a) {
  if (a == NULL || a->host.channel_open == NULL || a->loading) return;
  if (store_api_channels_list(a->host.st, api__stored_read, a) == 0) a->loading = API_LOAD_RELOAD;
}

int api_channels_register(api *a) {
  a->owned = json_object();
  a->yielded = json_object();
  a->changing = json_object();
  if (a->owned == NULL || a->yielded == NULL || a->changing == NULL) return -ENOMEM;
  int rc = 0;
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/channels", 0, api__channels);
  if (rc == 0) rc = api_route(a, "POST", "/api/v1/channels", API_ADMIN, api__channel_create);
  if (rc == 0) rc = api_route(a, "GET", "/api/v1/channels/{name}", 0, api__channel);
  if (rc == 0) rc = api_route(a, "PATCH", "/api/v1/channels/{name}", API_ADMIN, api__channel_patch);
  if (rc == 0) rc = api_route(a, "DELETE", "/api/v1/channels/{name}", API_ADMIN, api__channel_delete);
  if (rc == 0 && a->host.channel_open != NULL) {
    rc = store_api_channels_list(a->host.st, api__stored_read, a);
    a->loading = rc == 0 ? API_LOAD_START : 0;
  }
  return rc;
}
