/* webhooks.c — outgoing webhooks: each reads the events after its cursor,
 * posts those it wants, signed, and moves its cursor on a 2xx (webhooks.h). */
#include "webhooks.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "clock.h"
#include "events.h"
#include "hmac.h"
#include "log.h"
#include "outbox.h"

typedef struct wh_hook {
  struct wh_hook *next;
  webhooks *w;
  int64_t id;
  char *url, *channel, *inbox;
  json_t *patterns; /* array of strings */
  int wants_messages;
  char *secret;     /* NULL: the stored one could not be unsealed */
  int active;
  int64_t cursor;   /* the last event delivered or skipped */
  int failures;     /* in a row */
  int busy;         /* a read or a POST is under way */
  int gone;         /* removed: freed once nothing is under way */
  int64_t reading_to; /* the bound of the read under way */
  int64_t sending_to; /* the cursor once the POST under way succeeds */
  size_t sending_n;   /* events in it */
  httpc_call *call;
  int64_t next_at;  /* ms since the epoch of the next attempt, 0: none */
  uv_timer_t retry;
  int timer_open;
} wh_hook;

struct webhooks {
  uv_loop_t *loop;
  store *st;
  httpc *hc;
  webhooks_config cfg;
  int watch;        /* events_watch token */
  wh_hook *hooks;
  unsigned store_pending; /* store callbacks that point at w */
  int freed;
  uint32_t rng;
  webhooks_stats stats; /* failing is counted when asked */
};

static void wh__kick(wh_hook *h);

static void wh__maybe_free_all(webhooks *w) {
  if (!w->freed || w->store_pending > 0 || w->hooks != NULL) return;
  free(w);
}

static void wh__hook_free(wh_hook *h) {
  if (h->secret != NULL) sodium_memzero(h->secret, strlen(h->secret));
  free(h->secret);
  free(h->url);
  free(h->channel);
  free(h->inbox);
  json_decref(h->patterns);
  free(h);
}

static void wh__timer_closed(uv_handle_t *t) {
  wh_hook *h = t->data;
  h->timer_open = 0;
  wh__hook_free(h);
}

/* Frees a removed hook once nothing is under way for it. */
static void wh__maybe_free(wh_hook *h) {
  if (!h->gone || h->busy) return;
  webhooks *w = h->w;
  for (wh_hook **p = &w->hooks; *p != NULL; p = &(*p)->next) {
    if (*p == h) {
      *p = h->next;
      break;
    }
  }
  if (h->timer_open) {
    uv_close((uv_handle_t *)&h->retry, wh__timer_closed);
  } else {
    wh__hook_free(h);
  }
  wh__maybe_free_all(w);
}

static wh_hook *wh__find(const webhooks *w, int64_t id) {
  for (wh_hook *h = w->hooks; h != NULL; h = h->next)
    if (h->id == id && !h->gone) return h;
  return NULL;
}

/* ---- which events a webhook wants ---- */

static int wh__wants(const wh_hook *h, const char *type) { return events_patterns_match(h->patterns, type); }

int webhooks_secret_generate(char out[WEBHOOKS_SECRET_LEN + 1]) {
  return api_random_secret("whsec_", out, WEBHOOKS_SECRET_LEN + 1);
}

/* ---- recording attempts ---- */

static void wh__progress_done(void *arg, int status, json_t *result, const char *err) {
  (void)result;
  webhooks *w = arg;
  w->store_pending--;
  if (status != 0 && status != -ENOENT) log_error("webhooks: recording a delivery failed: %s", err ? err : "?");
  wh__maybe_free_all(w);
}

static void wh__record(wh_hook *h, json_t *state) {
  webhooks *w = h->w;
  if (store_webhook_progress(w->st, h->id, state, wh__progress_done, w) == 0) w->store_pending++;
  json_decref(state);
}

/* ---- delivering ---- */

static void wh__retry_due(uv_timer_t *t) {
  wh_hook *h = t->data;
  h->next_at = 0;
  wh__kick(h);
}

static uint32_t wh__rand(webhooks *w) {
  uint32_t x = w->rng; /* xorshift: jitter only spreads retries */
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return w->rng = x;
}

/* Waits before the next attempt: the backoff for this many failures in a
 * row, at least retry_after_ms. */
static void wh__back_off(wh_hook *h, int64_t retry_after_ms) {
  webhooks *w = h->w;
  outbox_config oc = {.base_delay_ms = w->cfg.retry_base_ms, .max_delay_ms = w->cfg.retry_max_ms};
  int64_t delay = outbox_backoff_ms(&oc, h->failures, retry_after_ms, wh__rand(w));
  if (!h->timer_open) {
    uv_timer_init(w->loop, &h->retry);
    h->retry.data = h;
    h->timer_open = 1;
  }
  h->next_at = sb_wall_ms() + delay;
  uv_timer_start(&h->retry, wh__retry_due, (uint64_t)delay, 0);
}

/* A failure of our own (out of memory, the store): tried again later. */
static void wh__retry_later(wh_hook *h) {
  h->failures++;
  wh__back_off(h, 0);
}

/* Retry-After in seconds (the HTTP-date form is not honoured), or 0. */
static int64_t wh__retry_after(const httpc_response *res) {
  for (size_t i = 0; i < res->n_headers; i++) {
    if (strcasecmp(res->headers[i].name, "Retry-After") != 0) continue;
    char *end;
    long long s = strtoll(res->headers[i].value, &end, 10);
    if (end != res->headers[i].value && s > 0 && s < 86400) return s * 1000;
  }
  return 0;
}

static void wh__posted(void *arg, const httpc_response *res) {
  wh_hook *h = arg;
  h->busy = 0;
  h->call = NULL;
  if (h->gone || res->status == -ECANCELED) {
    wh__maybe_free(h);
    return;
  }
  int64_t now = sb_wall_ms();
  if (res->status == 0 && res->code >= 200 && res->code < 300) {
    h->failures = 0;
    h->cursor = h->sending_to;
    h->w->stats.delivered++;
    h->w->stats.events += h->sending_n;
    wh__record(h, json_pack("{sI si sI sn sI sI}", "cursor", (json_int_t)h->cursor, "failures", 0, "last_status",
                            (json_int_t)res->code, "last_error", "last_attempt_at", (json_int_t)now,
                            "last_success_at", (json_int_t)now));
    wh__kick(h);
    return;
  }
  char why[256];
  if (res->status != 0) {
    snprintf(why, sizeof(why), "%s", res->error && *res->error ? res->error : "the POST failed");
  } else {
    snprintf(why, sizeof(why), "the receiver answered HTTP %ld", res->code);
  }
  h->failures++;
  h->w->stats.failed++;
  log_warn("webhooks: webhook %lld: %s (attempt %d in a row)", (long long)h->id, why, h->failures);
  json_t *state = json_pack("{si ss sI}", "failures", h->failures, "last_error", why, "last_attempt_at",
                            (json_int_t)now);
  if (res->status == 0) json_object_set_new(state, "last_status", json_integer(res->code));
  wh__record(h, state);
  wh__back_off(h, res->status == 0 ? wh__retry_after(res) : 0);
}

/* The text of {"webhook": id, "events": [...]}: an event read as text (its
 * "json", store_events_query.as_text) goes in as it is, any other is
 * written out. Malloc'd; NULL when out of memory. */
static char *wh__body(int64_t id, const json_t *events, size_t *len) {
  size_t n = json_array_size(events), total = 48;
  struct {
    const char *text;
    size_t len;
    char *dumped; /* an event not read as text, written out */
  } *ev = calloc(n + 1, sizeof(*ev));
  char *text = NULL;
  if (ev == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(events, i);
    ev[i].text = json_string_value(json_object_get(e, "json"));
    if (ev[i].text == NULL && (ev[i].text = ev[i].dumped = json_dumps(e, JSON_COMPACT)) == NULL) goto out;
    ev[i].len = strlen(ev[i].text);
    total += ev[i].len + 1;
  }
  if ((text = malloc(total)) == NULL) goto out;
  size_t at = (size_t)snprintf(text, total, "{\"webhook\":%lld,\"events\":[", (long long)id);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) text[at++] = ',';
    memcpy(text + at, ev[i].text, ev[i].len);
    at += ev[i].len;
  }
  memcpy(text + at, "]}", 3);
  *len = at + 2;
out:
  for (size_t i = 0; i < n; i++) free(ev[i].dumped);
  free(ev);
  return text;
}

/* Posts {"webhook": id, "events": events (stolen)} to h's URL, signed;
 * cb(arg) gets the answer (owner: the request's owner). Returns 0 or a
 * negative errno (cb will not be called). */
static int wh__send(wh_hook *h, json_t *events, void *owner, httpc_done_fn cb, void *arg, httpc_call **call) {
  webhooks *w = h->w;
  size_t len = 0;
  char *text = wh__body(h->id, events, &len);
  json_decref(events);
  if (text == NULL) return -ENOMEM;
  char stamp[24], id[24], signature[128];
  snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL));
  snprintf(id, sizeof(id), "%lld", (long long)h->id);
  /* HMAC over "t.body": the stamp is signed with the body, so a captured
   * request replayed later shows its age. */
  size_t slen = strlen(stamp);
  char *signed_text = malloc(slen + 1 + len);
  uint8_t mac[32];
  if (signed_text == NULL) {
    free(text);
    return -ENOMEM;
  }
  memcpy(signed_text, stamp, slen);
  signed_text[slen] = '.';
  memcpy(signed_text + slen + 1, text, len);
  hmac_sha256(h->secret, strlen(h->secret), signed_text, slen + 1 + len, mac);
  free(signed_text);
  char hex[65];
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  snprintf(signature, sizeof(signature), "t=%s,v1=%s", stamp, hex);
  const httpc_header headers[] = {
      {"Content-Type", "application/json"},
      {"User-Agent", "switchboard/" SB_VERSION},
      {"X-Switchboard-Webhook", id},
      {"X-Switchboard-Signature", signature},
  };
  httpc_req req = {.method = "POST", .url = h->url, .headers = headers,
                   .n_headers = sizeof(headers) / sizeof(headers[0]), .body = text, .body_len = len,
                   .timeout_ms = w->cfg.timeout_ms, .max_response_bytes = 64 * 1024, .owner = owner};
  int rc = httpc_request(w->hc, &req, cb, arg, call);
  free(text);
  return rc;
}

/* Posts the events (a JSON array, stolen) that take the cursor to upto. */
static void wh__post(wh_hook *h, json_t *events, int64_t upto) {
  h->sending_to = upto;
  h->sending_n = json_array_size(events);
  h->busy = 1;
  int rc = wh__send(h, events, h, wh__posted, h, &h->call);
  if (rc != 0) {
    h->busy = 0;
    h->call = NULL;
    if (rc == -ECANCELED) return; /* the client is closing */
    log_warn("webhooks: webhook %lld: cannot post to its URL (%s)", (long long)h->id, strerror(-rc));
    wh__retry_later(h);
  }
}

static void wh__page(void *arg, int status, json_t *result, const char *err) {
  wh_hook *h = arg;
  h->busy = 0;
  h->w->store_pending--;
  if (h->gone) {
    wh__maybe_free(h); /* and the dispatcher, when it was the last */
    return;
  }
  if (status != 0) {
    log_error("webhooks: webhook %lld: reading events failed: %s", (long long)h->id, err ? err : "?");
    wh__retry_later(h);
    return;
  }
  /* A short page read everything up to the bound. */
  size_t n = json_array_size(result);
  int64_t upto = (int)n < h->w->cfg.batch
                     ? h->reading_to
                     : json_integer_value(json_object_get(json_array_get(result, n - 1), "id"));
  json_t *wanted = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(result, i, e) {
    if (wh__wants(h, json_string_value(json_object_get(e, "type")))) json_array_append(wanted, e);
  }
  if (json_array_size(wanted) == 0) {
    json_decref(wanted);
    h->cursor = upto; /* nothing it wants: skipped in memory only */
    wh__kick(h);
    return;
  }
  wh__post(h, wanted, upto);
}

/* Starts the next delivery when there is one to make. */
static void wh__kick(wh_hook *h) {
  webhooks *w = h->w;
  if (h->gone || w->freed || !h->active || h->secret == NULL || h->busy || h->next_at != 0) return;
  int64_t newest = events_newest(store_events(w->st));
  if (h->cursor >= newest) return;
  store_events_query q = {.after = h->cursor, .up_to = newest, .channel = h->channel, .inbox = h->inbox,
                          .no_messages = !h->wants_messages, .limit = w->cfg.batch, .beside = 1,
                          .as_text = 1};
  h->reading_to = newest;
  if (store_events_read(w->st, &q, wh__page, h) == 0) {
    h->busy = 1;
    w->store_pending++;
  }
}

static void wh__newest(void *arg, int64_t newest) {
  (void)newest;
  webhooks *w = arg;
  for (wh_hook *h = w->hooks; h != NULL; h = h->next) wh__kick(h);
}

/* ---- the set of webhooks ---- */

static char *wh__dup(const json_t *row, const char *key) {
  const char *s = json_string_value(json_object_get(row, key));
  return s != NULL ? strdup(s) : NULL;
}

/* Sets h from a stored row (its secret unsealed with the config's key). */
static void wh__apply(webhooks *w, wh_hook *h, const json_t *row) {
  free(h->url);
  free(h->channel);
  free(h->inbox);
  h->url = wh__dup(row, "url");
  h->channel = wh__dup(row, "channel");
  h->inbox = wh__dup(row, "inbox");
  json_decref(h->patterns);
  h->patterns = json_deep_copy(json_object_get(row, "events"));
  if (!json_is_array(h->patterns)) h->patterns = json_array();
  h->wants_messages = wh__wants(h, "message.in") || wh__wants(h, "message.out");
  int was_active = h->active;
  h->active = json_is_true(json_object_get(row, "active"));
  int64_t stored = json_integer_value(json_object_get(row, "cursor"));
  if (stored > h->cursor) h->cursor = stored;
  if (h->secret != NULL) sodium_memzero(h->secret, strlen(h->secret));
  free(h->secret);
  h->secret = NULL;
  json_t *opened = NULL;
  const char *key = w->cfg.secret_key != NULL ? w->cfg.secret_key(w->cfg.ctx) : NULL;
  if (key != NULL && api_unseal(key, json_string_value(json_object_get(row, "secret")), &opened) == 0)
    h->secret = wh__dup(opened, "secret");
  json_decref(opened);
  if (h->secret == NULL)
    log_error("webhooks: webhook %lld: its secret cannot be unsealed with the configured secret_key; not delivering",
              (long long)h->id);
  if (h->active && !was_active) {
    /* Turned on again: try at once. */
    h->failures = 0;
    h->next_at = 0;
    if (h->timer_open) uv_timer_stop(&h->retry);
  }
}

void webhooks_updated(webhooks *w, const json_t *row) {
  if (w == NULL || w->freed) return;
  int64_t id = json_integer_value(json_object_get(row, "id"));
  wh_hook *h = wh__find(w, id);
  if (h == NULL) {
    h = calloc(1, sizeof(*h));
    if (h == NULL) return;
    h->w = w;
    h->id = id;
    h->failures = (int)json_integer_value(json_object_get(row, "failures"));
    h->next = w->hooks;
    w->hooks = h;
    h->active = 1; /* as stored: no "turned on again" */
    wh__apply(w, h, row);
  } else {
    wh__apply(w, h, row);
  }
  wh__kick(h);
}

static void wh__stop_hook(wh_hook *h) {
  h->gone = 1;
  if (h->timer_open) uv_timer_stop(&h->retry);
  if (h->call != NULL) {
    httpc_cancel(h->call); /* runs wh__posted now, which frees h */
    return;
  }
  wh__maybe_free(h);
}

void webhooks_removed(webhooks *w, int64_t id) {
  wh_hook *h = w != NULL ? wh__find(w, id) : NULL;
  if (h != NULL) wh__stop_hook(h);
}

void webhooks_describe(const webhooks *w, json_t *row) {
  const wh_hook *h = w != NULL ? wh__find(w, json_integer_value(json_object_get(row, "id"))) : NULL;
  if (h == NULL) return;
  json_object_set_new(row, "cursor", json_integer(h->cursor));
  json_object_set_new(row, "next_attempt_at", h->next_at != 0 ? json_integer(h->next_at) : json_null());
  if (h->secret == NULL)
    json_object_set_new(row, "last_error",
                        json_string("its secret cannot be unsealed with the configured secret_key: "
                                    "give it a new one (PATCH rotate_secret) or restore the key"));
}

void webhooks_get_stats(const webhooks *w, webhooks_stats *out) {
  memset(out, 0, sizeof(*out));
  if (w == NULL) return;
  *out = w->stats;
  for (const wh_hook *h = w->hooks; h != NULL; h = h->next) out->failing += !h->gone && h->failures > 0;
}

int webhooks_ping(webhooks *w, int64_t id, httpc_done_fn cb, void *arg) {
  wh_hook *h = w != NULL ? wh__find(w, id) : NULL;
  if (h == NULL) return -ENOENT;
  if (h->secret == NULL) return -EKEYREJECTED;
  json_t *ping = json_pack("[{sI ss sn sn s{sI}}]", "id", (json_int_t)0, "type", "ping", "channel", "inbox", "data",
                           "webhook_id", (json_int_t)id);
  return ping != NULL ? wh__send(h, ping, NULL, cb, arg, NULL) : -ENOMEM;
}

int64_t webhooks_newest(const webhooks *w) { return events_newest(store_events(w->st)); }

static void wh__loaded(void *arg, int status, json_t *result, const char *err) {
  webhooks *w = arg;
  w->store_pending--;
  if (status != 0) {
    log_error("webhooks: reading the webhooks failed: %s; none is delivered until a restart", err ? err : "?");
  } else if (!w->freed) {
    size_t i;
    json_t *row;
    json_array_foreach(result, i, row) webhooks_updated(w, row);
  }
  wh__maybe_free_all(w);
}

int webhooks_new(uv_loop_t *loop, store *st, httpc *hc, const webhooks_config *cfg, webhooks **out) {
  webhooks *w = calloc(1, sizeof(*w));
  if (w == NULL) return -ENOMEM;
  w->loop = loop;
  w->st = st;
  w->hc = hc;
  if (cfg != NULL) w->cfg = *cfg;
  if (w->cfg.retry_base_ms <= 0) w->cfg.retry_base_ms = 1000;
  if (w->cfg.retry_max_ms <= 0) w->cfg.retry_max_ms = 3600 * 1000;
  if (w->cfg.timeout_ms == 0) w->cfg.timeout_ms = 10000;
  if (w->cfg.batch <= 0) w->cfg.batch = 100;
  w->rng = (uint32_t)sb_wall_ms() | 1u;
  w->watch = events_watch(store_events(st), wh__newest, w);
  if (w->watch < 0) {
    free(w);
    return -ENOMEM;
  }
  if (store_webhooks_list(st, wh__loaded, w) == 0) w->store_pending++;
  *out = w;
  return 0;
}

void webhooks_free(webhooks *w) {
  if (w == NULL || w->freed) return;
  w->freed = 1;
  events_unsubscribe(store_events(w->st), w->watch);
  w->store_pending++; /* w outlives the walk, whatever each stop frees */
  wh_hook *h = w->hooks;
  while (h != NULL) {
    wh_hook *next = h->next;
    wh__stop_hook(h);
    h = next;
  }
  w->store_pending--;
  wh__maybe_free_all(w);
}
