/* router.c — routing policy: channel rules from config and the pure decisions
 * the store applies to each message inside its batch transaction. */
#include "router.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store.h"

static char *router__dup(const char *s) { return s ? strdup(s) : NULL; }

static void router__free_list(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static int router__copy_list(char ***dst, size_t *dn, char *const *src, size_t n) {
  *dst = NULL;
  *dn = 0;
  if (n == 0) return 0;
  char **v = calloc(n, sizeof(*v));
  if (v == NULL) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if ((v[i] = strdup(src[i])) == NULL) {
      router__free_list(v, i);
      return -ENOMEM;
    }
  }
  *dst = v;
  *dn = n;
  return 0;
}

int router_channel_init(router_channel *out, const char *name) {
  memset(out, 0, sizeof(*out));
  out->thread_policy = ROUTER_THREAD_PER_CONTACT;
  out->closed_thread = ROUTER_CLOSED_REOPEN;
  out->creates_tickets = 1;
  out->routing.mode = ROUTER_ROUTING_NONE;
  out->routing.available_only = 1;
  out->auto_replies.days_mask = 0x7f;
  if (name != NULL && (out->name = strdup(name)) == NULL) return -ENOMEM;
  return 0;
}

void router_channel_free(router_channel *ch) {
  if (ch == NULL) return;
  free(ch->name);
  free(ch->inbox);
  router__free_list(ch->routing.users, ch->routing.n_users);
  router__free_list(ch->routing.teams, ch->routing.n_teams);
  router__free_list(ch->routing.skills, ch->routing.n_skills);
  free(ch->reply_channel);
  free(ch->ticket.pipeline);
  free(ch->ticket.status);
  free(ch->ticket.priority);
  free(ch->ticket.owner);
  free(ch->ticket.name_template);
  free(ch->auto_replies.greeting);
  free(ch->auto_replies.instant_reply);
  free(ch->auto_replies.away);
  memset(ch, 0, sizeof(*ch));
}

int router_channel_copy(router_channel *dst, const router_channel *src) {
  *dst = *src;
  dst->name = router__dup(src->name);
  dst->inbox = router__dup(src->inbox);
  dst->reply_channel = router__dup(src->reply_channel);
  dst->ticket.pipeline = router__dup(src->ticket.pipeline);
  dst->ticket.status = router__dup(src->ticket.status);
  dst->ticket.priority = router__dup(src->ticket.priority);
  dst->ticket.owner = router__dup(src->ticket.owner);
  dst->ticket.name_template = router__dup(src->ticket.name_template);
  dst->auto_replies.greeting = router__dup(src->auto_replies.greeting);
  dst->auto_replies.instant_reply = router__dup(src->auto_replies.instant_reply);
  dst->auto_replies.away = router__dup(src->auto_replies.away);
  int rc = router__copy_list(&dst->routing.users, &dst->routing.n_users, src->routing.users,
                             src->routing.n_users);
  rc |= router__copy_list(&dst->routing.teams, &dst->routing.n_teams, src->routing.teams,
                          src->routing.n_teams);
  rc |= router__copy_list(&dst->routing.skills, &dst->routing.n_skills, src->routing.skills,
                          src->routing.n_skills);
  if (rc != 0 || (src->name && !dst->name) || (src->inbox && !dst->inbox)) {
    router_channel_free(dst);
    return -ENOMEM;
  }
  return 0;
}

/* ---- config parsing ---- */

typedef struct router__ctx {
  const char *channel;
  char *err;
  size_t errlen;
  char *key; /* the offending key, or NULL */
  size_t keylen;
} router__ctx;

static int router__bad(router__ctx *c, const char *key, const char *what) {
  snprintf(c->err, c->errlen, "channel \"%s\": key \"%s\" %s", c->channel, key, what);
  if (c->key != NULL) snprintf(c->key, c->keylen, "%s", key);
  return -EINVAL;
}

static int router__string(router__ctx *c, const char *key, json_t *v, char **out) {
  if (json_is_null(v)) return 0;
  if (!json_is_string(v)) return router__bad(c, key, "must be a string");
  free(*out);
  if ((*out = strdup(json_string_value(v))) == NULL) return -ENOMEM;
  return 0;
}

static int router__bool(router__ctx *c, const char *key, json_t *v, int *out) {
  if (!json_is_boolean(v)) return router__bad(c, key, "must be true or false");
  *out = json_is_true(v);
  return 0;
}

static int router__strings(router__ctx *c, const char *key, json_t *v, char ***out, size_t *n) {
  if (!json_is_array(v)) return router__bad(c, key, "must be an array of strings");
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) if (!json_is_string(e))
      return router__bad(c, key, "must be an array of strings");
  router__free_list(*out, *n);
  *out = NULL;
  *n = 0;
  size_t len = json_array_size(v);
  if (len == 0) return 0;
  if ((*out = calloc(len, sizeof(char *))) == NULL) return -ENOMEM;
  json_array_foreach(v, i, e) {
    if (((*out)[i] = strdup(json_string_value(e))) == NULL) return -ENOMEM;
    *n = i + 1;
  }
  return 0;
}

static int router__enum(router__ctx *c, const char *key, json_t *v, const char *const *names,
                        int *out) {
  if (json_is_string(v))
    for (int i = 0; names[i] != NULL; i++)
      if (strcmp(json_string_value(v), names[i]) == 0) {
        *out = i;
        return 0;
      }
  char what[160] = "must be one of";
  for (int i = 0; names[i] != NULL; i++) {
    size_t l = strlen(what);
    snprintf(what + l, sizeof(what) - l, "%s %s", i ? "," : "", names[i]);
  }
  return router__bad(c, key, what);
}

static int router__hhmm(router__ctx *c, const char *key, json_t *v, int *out) {
  int h, m;
  char tail;
  if (!json_is_string(v) || sscanf(json_string_value(v), "%d:%d%c", &h, &m, &tail) != 2 ||
      h < 0 || h > 24 || m < 0 || m > 59)
    return router__bad(c, key, "must be a time \"HH:MM\"");
  *out = h * 60 + m;
  return 0;
}

static int router__hours(router__ctx *c, json_t *h, router_channel *ch) {
  if (!json_is_object(h)) return router__bad(c, "auto_replies.hours", "must be an object");
  const char *k;
  json_t *v;
  int rc = 0;
  ch->auto_replies.has_hours = 1;
  if (json_object_get(h, "start") == NULL || json_object_get(h, "end") == NULL)
    return router__bad(c, "auto_replies.hours", "needs both \"start\" and \"end\" (\"HH:MM\")");
  json_object_foreach(h, k, v) {
    if (strcmp(k, "start") == 0)
      rc = router__hhmm(c, "auto_replies.hours.start", v, &ch->auto_replies.start_min);
    else if (strcmp(k, "end") == 0)
      rc = router__hhmm(c, "auto_replies.hours.end", v, &ch->auto_replies.end_min);
    else if (strcmp(k, "utc_offset_minutes") == 0) {
      if (!json_is_integer(v)) return router__bad(c, "auto_replies.hours.utc_offset_minutes", "must be an integer");
      ch->auto_replies.utc_offset_min = (int)json_integer_value(v);
    } else if (strcmp(k, "days") == 0) {
      if (!json_is_array(v)) return router__bad(c, "auto_replies.hours.days", "must be an array of day numbers 0 (Sunday) to 6");
      size_t i;
      json_t *d;
      ch->auto_replies.days_mask = 0;
      json_array_foreach(v, i, d) {
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > 6)
          return router__bad(c, "auto_replies.hours.days", "must be an array of day numbers 0 (Sunday) to 6");
        ch->auto_replies.days_mask |= 1u << json_integer_value(d);
      }
    } else {
      char key[96];
      snprintf(key, sizeof(key), "auto_replies.hours.%s", k);
      return router__bad(c, key, "is not known (expected start, end, days, utc_offset_minutes)");
    }
    if (rc < 0) return rc;
  }
  return 0;
}

static int router__routing(router__ctx *c, json_t *o, router_channel *ch) {
  static const char *const modes[] = {"none", "users_and_teams", "contact_owner", NULL};
  if (!json_is_object(o)) return router__bad(c, "routing", "must be an object");
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    int rc;
    if (strcmp(k, "mode") == 0)
      rc = router__enum(c, "routing.mode", v, modes, &ch->routing.mode);
    else if (strcmp(k, "users") == 0)
      rc = router__strings(c, "routing.users", v, &ch->routing.users, &ch->routing.n_users);
    else if (strcmp(k, "teams") == 0)
      rc = router__strings(c, "routing.teams", v, &ch->routing.teams, &ch->routing.n_teams);
    else if (strcmp(k, "skills") == 0)
      rc = router__strings(c, "routing.skills", v, &ch->routing.skills, &ch->routing.n_skills);
    else if (strcmp(k, "available_only") == 0)
      rc = router__bool(c, "routing.available_only", v, &ch->routing.available_only);
    else {
      char key[96];
      snprintf(key, sizeof(key), "routing.%s", k);
      rc = router__bad(c, key, "is not known (expected mode, users, teams, available_only, skills)");
    }
    if (rc < 0) return rc;
  }
  if (ch->routing.mode == ROUTER_ROUTING_USERS_AND_TEAMS && ch->routing.n_users == 0 &&
      ch->routing.n_teams == 0)
    return router__bad(c, "routing.users", "or routing.teams must name someone for mode users_and_teams");
  return 0;
}

static int router__ticket(router__ctx *c, json_t *o, router_channel *ch) {
  if (!json_is_object(o)) return router__bad(c, "ticket", "must be an object");
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    char key[96];
    snprintf(key, sizeof(key), "ticket.%s", k);
    char **dst = strcmp(k, "pipeline") == 0        ? &ch->ticket.pipeline
                 : strcmp(k, "status") == 0        ? &ch->ticket.status
                 : strcmp(k, "priority") == 0      ? &ch->ticket.priority
                 : strcmp(k, "owner") == 0         ? &ch->ticket.owner
                 : strcmp(k, "name_template") == 0 ? &ch->ticket.name_template
                                                   : NULL;
    if (dst == NULL)
      return router__bad(c, key, "is not known (expected pipeline, status, priority, owner, name_template)");
    int rc = router__string(c, key, v, dst);
    if (rc < 0) return rc;
  }
  return 0;
}

static int router__autoreplies(router__ctx *c, json_t *o, router_channel *ch) {
  if (!json_is_object(o)) return router__bad(c, "auto_replies", "must be an object");
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    char key[96];
    snprintf(key, sizeof(key), "auto_replies.%s", k);
    int rc;
    if (strcmp(k, "greeting") == 0)
      rc = router__string(c, key, v, &ch->auto_replies.greeting);
    else if (strcmp(k, "instant_reply") == 0)
      rc = router__string(c, key, v, &ch->auto_replies.instant_reply);
    else if (strcmp(k, "away") == 0)
      rc = router__string(c, key, v, &ch->auto_replies.away);
    else if (strcmp(k, "hours") == 0)
      rc = router__hours(c, v, ch);
    else
      rc = router__bad(c, key, "is not known (expected greeting, instant_reply, away, hours)");
    if (rc < 0) return rc;
  }
  return 0;
}

int router_channel_from_json(const json_t *obj, router_channel *out, char *err, size_t errlen) {
  return router_channel_from_json_key(obj, out, err, errlen, NULL, 0);
}

int router_channel_from_json_key(const json_t *obj, router_channel *out, char *err, size_t errlen, char *key,
                                 size_t keylen) {
  static const char *const policies[] = {"per_contact", "external", "always_new", NULL};
  static const char *const closed[] = {"reopen", "new_thread", NULL};
  if (key != NULL && keylen > 0) key[0] = '\0';
  if (out == NULL) return -EINVAL;
  const char *name = json_string_value(json_object_get(obj, "name"));
  router__ctx c = {name ? name : "?", err, errlen, key, keylen};
  if (!json_is_object(obj)) {
    snprintf(err, errlen, "a channel must be a JSON object");
    return -EINVAL;
  }
  if (name == NULL || name[0] == '\0') {
    snprintf(err, errlen, "a channel needs a \"name\" string");
    return -EINVAL;
  }
  if (router_channel_init(out, name) < 0) return -ENOMEM;
  const char *k;
  json_t *v;
  int rc = 0;
  json_object_foreach((json_t *)obj, k, v) {
    if (strcmp(k, "name") == 0 || strcmp(k, "plugin") == 0 || strcmp(k, "credentials") == 0 ||
        strcmp(k, "status") == 0 || strcmp(k, "enabled") == 0)
      continue;
    if (strcmp(k, "inbox") == 0)
      rc = router__string(&c, k, v, &out->inbox);
    else if (strcmp(k, "thread_policy") == 0)
      rc = router__enum(&c, k, v, policies, &out->thread_policy);
    else if (strcmp(k, "closed_thread") == 0)
      rc = router__enum(&c, k, v, closed, &out->closed_thread);
    else if (strcmp(k, "creates_tickets") == 0)
      rc = router__bool(&c, k, v, &out->creates_tickets);
    else if (strcmp(k, "reply_channel") == 0)
      rc = router__string(&c, k, v, &out->reply_channel);
    else if (strcmp(k, "routing") == 0)
      rc = router__routing(&c, v, out);
    else if (strcmp(k, "ticket") == 0)
      rc = router__ticket(&c, v, out);
    else if (strcmp(k, "auto_replies") == 0)
      rc = router__autoreplies(&c, v, out);
    else
      rc = router__bad(&c, k, "is not a known channel key");
    if (rc < 0) break;
  }
  if (rc == 0 && out->inbox == NULL && (out->inbox = strdup(ROUTER_DEFAULT_INBOX)) == NULL) rc = -ENOMEM;
  if (rc == -ENOMEM) snprintf(err, errlen, "out of memory reading channel \"%s\"", c.channel);
  if (rc < 0) router_channel_free(out);
  return rc;
}

static json_t *router__list_json(char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

static json_t *router__str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

json_t *router_channel_to_json(const router_channel *ch) {
  static const char *const policies[] = {"per_contact", "external", "always_new"};
  static const char *const modes[] = {"none", "users_and_teams", "contact_owner"};
  json_t *o = json_object();
  json_object_set_new(o, "name", router__str_or_null(ch->name));
  json_object_set_new(o, "inbox", router__str_or_null(ch->inbox));
  json_object_set_new(o, "thread_policy", json_string(policies[ch->thread_policy % 3]));
  json_object_set_new(o, "closed_thread", json_string(ch->closed_thread ? "new_thread" : "reopen"));
  json_object_set_new(o, "creates_tickets", json_boolean(ch->creates_tickets));
  json_object_set_new(o, "reply_channel", router__str_or_null(ch->reply_channel));
  json_object_set_new(o, "routing",
      json_pack("{ss so so sb so}", "mode", modes[ch->routing.mode % 3],
                "users", router__list_json(ch->routing.users, ch->routing.n_users),
                "teams", router__list_json(ch->routing.teams, ch->routing.n_teams),
                "available_only", ch->routing.available_only,
                "skills", router__list_json(ch->routing.skills, ch->routing.n_skills)));
  json_object_set_new(o, "ticket",
      json_pack("{so so so so so}", "pipeline", router__str_or_null(ch->ticket.pipeline),
                "status", router__str_or_null(ch->ticket.status),
                "priority", router__str_or_null(ch->ticket.priority),
                "owner", router__str_or_null(ch->ticket.owner),
                "name_template", router__str_or_null(ch->ticket.name_template)));
  json_t *ar = json_pack("{so so so}", "greeting", router__str_or_null(ch->auto_replies.greeting),
                         "instant_reply", router__str_or_null(ch->auto_replies.instant_reply),
                         "away", router__str_or_null(ch->auto_replies.away));
  if (ch->auto_replies.has_hours) {
    char start[32], end[32];
    snprintf(start, sizeof(start), "%02d:%02d", ch->auto_replies.start_min / 60, ch->auto_replies.start_min % 60);
    snprintf(end, sizeof(end), "%02d:%02d", ch->auto_replies.end_min / 60, ch->auto_replies.end_min % 60);
    json_t *days = json_array();
    for (int d = 0; d < 7; d++)
      if (ch->auto_replies.days_mask & (1u << d)) json_array_append_new(days, json_integer(d));
    json_object_set_new(ar, "hours", json_pack("{ss ss so si}", "start", start, "end", end, "days", days,
                                               "utc_offset_minutes", ch->auto_replies.utc_offset_min));
  }
  json_object_set_new(o, "auto_replies", ar);
  return o;
}

/* ---- seed validation ---- */

static int router__seed_bad(char *err, size_t errlen, const char *list, size_t i,
                            const char *key, const char *what) {
  snprintf(err, errlen, "config %s[%zu]: key \"%s\" %s", list, i, key, what);
  return -EINVAL;
}

static int router__check_fields(const char *list, size_t i, json_t *o, const char *const *keys,
                                const char *types, char *err, size_t errlen) {
  if (!json_is_object(o)) return router__seed_bad(err, errlen, list, i, "(entry)", "must be an object");
  if (!json_is_string(json_object_get(o, "name")))
    return router__seed_bad(err, errlen, list, i, "name", "must be a string");
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    int found = -1;
    for (int j = 0; keys[j] != NULL; j++)
      if (strcmp(keys[j], k) == 0) found = j;
    if (found < 0) return router__seed_bad(err, errlen, list, i, k, "is not known");
    int ok = 1;
    switch (types[found]) {
    case 's': ok = json_is_string(v) || json_is_null(v); break;
    case 'b': ok = json_is_boolean(v); break;
    case 'i': ok = json_is_integer(v) && json_integer_value(v) >= 0; break;
    case 'S': {
      ok = json_is_array(v);
      size_t n;
      json_t *e;
      json_array_foreach(v, n, e) ok = ok && json_is_string(e);
      break;
    }
    default: ok = json_is_array(v); break;
    }
    if (!ok)
      return router__seed_bad(err, errlen, list, i, k,
                              types[found] == 's'   ? "must be a string"
                              : types[found] == 'b' ? "must be true or false"
                              : types[found] == 'i' ? "must be a non-negative integer"
                              : types[found] == 'S' ? "must be an array of strings"
                                                    : "must be an array");
  }
  return 0;
}

int router_avatar_url_valid(const char *url) { return router_http_url_valid(url, ROUTER_AVATAR_URL_MAX); }

int router_http_url_valid(const char *url, size_t max) {
  if (url == NULL || url[0] == '\0' || strlen(url) > max) return 0;
  for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++) {
    if (*p <= 0x20 || *p == 0x7f) return 0; /* curl would accept some; a client may not */
  }
  /* The scheme, spelled out: curl (like browsers) would also take
   * "https:///host/a.png" and "https:host", which a stricter client refuses. */
  size_t skip = strncasecmp(url, "https://", 8) == 0 ? 8 : strncasecmp(url, "http://", 7) == 0 ? 7 : 0;
  if (skip == 0 || url[skip] == '/') return 0;
  CURLU *u = curl_url();
  if (u == NULL) return 0;
  char *host = NULL;
  int ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
           curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0';
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

int router_user_name_valid(const char *name) { return name != NULL && name[0] != '\0' && strcmp(name, "none") != 0; }

int router_seed_validate(const json_t *config, char *err, size_t errlen) {
  static const char *const pkeys[] = {"name", "statuses", NULL};
  static const char *const skeys[] = {"name", "closed", "required_properties", NULL};
  static const char *const ukeys[] = {"name", "email", "seat", "available", "skills", "capacity",
                                      "teams", "avatar_url", NULL};
  static const char *const tkeys[] = {"name", "users", NULL};
  if (!json_is_object(config)) {
    snprintf(err, errlen, "config must be a JSON object");
    return -EINVAL;
  }
  const char *lists[] = {"pipelines", "users", "teams"};
  for (int l = 0; l < 3; l++) {
    json_t *a = json_object_get(config, lists[l]);
    if (a == NULL) continue;
    if (!json_is_array(a)) {
      snprintf(err, errlen, "config key \"%s\" must be an array", lists[l]);
      return -EINVAL;
    }
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o) {
      int rc = l == 0   ? router__check_fields("pipelines", i, o, pkeys, "sa", err, errlen)
               : l == 1 ? router__check_fields("users", i, o, ukeys, "ssbbSiSs", err, errlen)
                        : router__check_fields("teams", i, o, tkeys, "sS", err, errlen);
      if (rc < 0) return rc;
      const char *avatar = l == 1 ? json_string_value(json_object_get(o, "avatar_url")) : NULL;
      if (avatar != NULL && !router_avatar_url_valid(avatar))
        return router__seed_bad(err, errlen, "users", i, "avatar_url", ROUTER_AVATAR_URL_RULE);
      if (l == 1 && !router_user_name_valid(json_string_value(json_object_get(o, "name"))))
        return router__seed_bad(err, errlen, "users", i, "name", ROUTER_USER_NAME_RULE);
      if (l != 0) continue;
      json_t *sts = json_object_get(o, "statuses");
      if (json_array_size(sts) == 0)
        return router__seed_bad(err, errlen, "pipelines", i, "statuses", "must list at least one status");
      size_t j;
      json_t *s;
      json_array_foreach(sts, j, s) {
        char list[64];
        snprintf(list, sizeof(list), "pipelines[%zu].statuses", i);
        if ((rc = router__check_fields(list, j, s, skeys, "sbS", err, errlen)) < 0) return rc;
        for (size_t k = 0; k < j; k++) { /* one status, one name: a repeat would be merged silently */
          if (json_equal(json_object_get(json_array_get(sts, k), "name"), json_object_get(s, "name")))
            return router__seed_bad(err, errlen, list, j, "name", "repeats an earlier status's name");
        }
      }
    }
  }
  return 0;
}

void router_channel_plugin_defaults(router_channel *ch, const json_t *spec, int plugin_thread_ids,
                                    int plugin_starts_by_email, int plugin_receive_only) {
  if (plugin_thread_ids && json_object_get(spec, "thread_policy") == NULL) ch->thread_policy = ROUTER_THREAD_EXTERNAL;
  ch->start_by_email = plugin_starts_by_email;
  ch->receive_only = plugin_receive_only;
}

/* The statuses of the Support pipeline the store creates (store_sqlite.c's
 * first migration). */
static const char *const router__support_statuses[] = {"New", "Waiting on contact", "Waiting on us", "Closed",
                                                         NULL};

int router_channel_check_ticket(const router_channel *ch, const json_t *config, char *err, size_t errlen) {
  const char *pname = ch->ticket.pipeline != NULL ? ch->ticket.pipeline : "Support";
  const json_t *statuses = NULL;
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(config, "pipelines"), i, p) {
    if (json_is_string(json_object_get(p, "name")) && strcmp(json_string_value(json_object_get(p, "name")), pname) == 0)
      statuses = json_object_get(p, "statuses");
  }
  if (statuses == NULL && strcmp(pname, "Support") != 0) {
    snprintf(err, errlen,
             "channel \"%s\": key \"ticket.pipeline\": \"%s\" is not a pipeline (the config's \"pipelines\" and "
             "Support)", ch->name, pname);
    return -EINVAL;
  }
  const char *want = ch->ticket.status;
  if (want == NULL) return 0;
  int found = 0;
  if (statuses != NULL) {
    json_t *s;
    json_array_foreach(statuses, i, s) {
      const char *n = json_string_value(json_object_get(s, "name"));
      found |= n != NULL && strcmp(n, want) == 0;
    }
  }
  for (const char *const *n = router__support_statuses; statuses == NULL && *n != NULL; n++) found |= strcmp(*n, want) == 0;
  if (!found) {
    snprintf(err, errlen, "channel \"%s\": key \"ticket.status\": pipeline \"%s\" has no status \"%s\"", ch->name,
             pname, want);
    return -EINVAL;
  }
  return 0;
}

/* ---- pure decisions ---- */

int router_decide_thread(const router_channel *ch, int found, int closed) {
  if (ch->thread_policy == ROUTER_THREAD_ALWAYS_NEW || !found) return ROUTER_NEW_THREAD;
  if (!closed) return ROUTER_USE_THREAD;
  return ch->closed_thread == ROUTER_CLOSED_NEW_THREAD ? ROUTER_NEW_THREAD : ROUTER_REOPEN_THREAD;
}

static int router__holds(const char *skills_json, const char *skill) {
  if (skills_json == NULL) return 0;
  json_t *a = json_loads(skills_json, 0, NULL);
  int held = 0;
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) if (json_is_string(e) && strcmp(json_string_value(e), skill) == 0) held = 1;
  json_decref(a);
  return held;
}

int router_pick_assignee(const router_candidate *c, size_t n, int available_only,
                         char *const *skills, size_t n_skills) {
  int best = -1;
  for (size_t i = 0; i < n; i++) {
    if (!c[i].seat || (available_only && !c[i].available)) continue;
    if (c[i].capacity > 0 && c[i].open_load >= c[i].capacity) continue;
    int ok = 1;
    for (size_t s = 0; s < n_skills && ok; s++) ok = router__holds(c[i].skills_json, skills[s]);
    if (!ok) continue;
    if (best < 0) {
      best = (int)i;
      continue;
    }
    const router_candidate *b = &c[best];
    if (c[i].open_load != b->open_load ? c[i].open_load < b->open_load
        : c[i].last_assigned != b->last_assigned ? c[i].last_assigned < b->last_assigned
                                                 : c[i].user_id < b->user_id)
      best = (int)i;
  }
  return best;
}

void router_ticket_name(const char *tmpl, const char *contact, const char *channel,
                        const char *subject, char *out, size_t outlen) {
  if (tmpl == NULL) tmpl = "{contact} via {channel}";
  size_t o = 0;
  if (outlen == 0) return;
  for (const char *p = tmpl; *p && o + 1 < outlen;) {
    const char *val = NULL;
    size_t skip = 0;
    if (strncmp(p, "{contact}", 9) == 0) val = contact ? contact : "Unknown", skip = 9;
    else if (strncmp(p, "{channel}", 9) == 0) val = channel ? channel : "", skip = 9;
    else if (strncmp(p, "{subject}", 9) == 0) val = subject ? subject : "", skip = 9;
    if (val != NULL) {
      int w = snprintf(out + o, outlen - o, "%s", val);
      o += (size_t)w < outlen - o ? (size_t)w : outlen - o - 1;
      p += skip;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
}

int router_missing_properties(const char *required_json, const json_t *props, char *missing,
                              size_t len) {
  if (len) missing[0] = '\0';
  json_t *req = required_json ? json_loads(required_json, 0, NULL) : NULL;
  int n = 0;
  size_t i, o = 0;
  json_t *e;
  json_array_foreach(req, i, e) {
    const char *name = json_string_value(e);
    if (name == NULL) continue;
    json_t *v = props ? json_object_get(props, name) : NULL;
    if (v != NULL && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
      continue;
    if (o < len) {
      int w = snprintf(missing + o, len - o, "%s%s", n ? ", " : "", name);
      o += w > 0 ? (size_t)w : 0;
    }
    n++;
  }
  json_decref(req);
  return n;
}

static int router__outside_hours(const router_channel *ch, int64_t ts_ms) {
  if (!ch->auto_replies.has_hours) return 0;
  int64_t local = ts_ms / 60000 + ch->auto_replies.utc_offset_min; /* minutes */
  int64_t day = local / 1440;
  int minute = (int)(local % 1440);
  if (minute < 0) minute += 1440, day--;
  int wday = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
  if (!(ch->auto_replies.days_mask & (1u << wday))) return 1;
  return minute < ch->auto_replies.start_min || minute >= ch->auto_replies.end_min;
}

int router_decide_autoreply(const router_channel *ch, uint32_t flags, int new_contact,
                            int new_thread, int64_t timestamp_ms) {
  if (flags & (ROUTER_IN_AUTOMATIC | ROUTER_IN_ECHO | ROUTER_IN_BOUNCE | ROUTER_IN_NO_AUTOREPLY))
    return ROUTER_AUTOREPLY_NONE;
  if (ch->auto_replies.away && router__outside_hours(ch, timestamp_ms)) return ROUTER_AUTOREPLY_AWAY;
  if (new_contact && ch->auto_replies.greeting) return ROUTER_AUTOREPLY_GREETING;
  if (new_thread && ch->auto_replies.instant_reply) return ROUTER_AUTOREPLY_INSTANT;
  return ROUTER_AUTOREPLY_NONE;
}

const char *router_autoreply_text(const router_channel *ch, int which) {
  switch (which) {
  case ROUTER_AUTOREPLY_GREETING: return ch->auto_replies.greeting;
  case ROUTER_AUTOREPLY_INSTANT: return ch->auto_replies.instant_reply;
  case ROUTER_AUTOREPLY_AWAY: return ch->auto_replies.away;
  default: return NULL;
  }
}

/* ---- submission ---- */

int router_submit_inbound(store *st, const router_inbound *in, router_inbound_cb cb, void *arg,
                          char *err, size_t errlen) {
  if (st == NULL || in == NULL || cb == NULL) return -EINVAL;
  const char *missing = !in->channel || !in->channel[0]         ? "channel"
                        : !in->external_id || !in->external_id[0] ? "external_id"
                        : !in->sender.kind || !in->sender.kind[0] ? "sender.kind"
                        : !in->sender.id || !in->sender.id[0]     ? "sender.id"
                                                                  : NULL;
  if (missing != NULL) {
    snprintf(err, errlen, "inbound message on channel \"%s\" has no %s",
             in->channel ? in->channel : "?", missing);
    return -EINVAL;
  }
  int rc = store_submit_inbound(st, in, cb, arg);
  if (rc < 0) snprintf(err, errlen, "cannot queue inbound message on channel \"%s\": %s", in->channel, strerror(-rc));
  return rc;
}

int router_submit_reply(store *st, const router_reply *r, router_reply_cb cb, void *arg,
                        char *err, size_t errlen) {
  if (st == NULL || r == NULL || cb == NULL) return -EINVAL;
  if (r->thread_id <= 0) {
    snprintf(err, errlen, "a reply needs a conversation id");
    return -EINVAL;
  }
  if ((r->text == NULL || r->text[0] == '\0') && (r->html == NULL || r->html[0] == '\0') &&
      r->n_attachments == 0 && r->template_json == NULL && r->canned == NULL) {
    snprintf(err, errlen,
             "a reply to conversation %lld needs text, html, an attachment, a template or a canned response",
             (long long)r->thread_id);
    return -EINVAL;
  }
  if (r->canned != NULL && r->text != NULL) {
    snprintf(err, errlen, "a reply gives text or a canned response, not both");
    return -EINVAL;
  }
  if (r->template_json != NULL) {
    json_t *t = json_loads(r->template_json, 0, NULL);
    const char *name = json_string_value(json_object_get(t, "name"));
    int ok = json_is_object(t) && name != NULL && name[0] != '\0';
    json_decref(t);
    if (!ok) {
      snprintf(err, errlen, "a template must be an object with a \"name\"");
      return -EINVAL;
    }
  }
  if (r->ticket_properties != NULL && !json_is_object(r->ticket_properties)) {
    snprintf(err, errlen, "ticket_properties must be an object");
    return -EINVAL;
  }
  int rc = store_submit_reply(st, r, cb, arg);
  if (rc < 0) snprintf(err, errlen, "cannot queue the reply: %s", strerror(-rc));
  return rc;
}
