/* conformance_checks.c — the checks of `switchboard plugins check`, each
 * driving the plugin through the stub test host. Each runs in its own child
 * process (conformance.c), so it may leave the plugin in any state. */
#include "conformance.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/testhost.h>

#include "loader.h"

#define CC_PATIENCE_MS (10 * 60 * 1000) /* fake time a send or request may take */
#define CC_BIG_BODY (8 * 1024 * 1024)

static int cc__say(conformance_ctx *ctx, int outcome, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cc__say(conformance_ctx *ctx, int outcome, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->detail, sizeof(ctx->detail), fmt, ap);
  va_end(ap);
  return outcome;
}

/* A plausible value for a field without a default. */
static const char *cc__plausible(const sb_field *f) {
  switch (f->type) {
  case SB_FIELD_INT: return "1";
  case SB_FIELD_BOOL: return "false";
  case SB_FIELD_DURATION: return "30s";
  case SB_FIELD_URL: return "http://127.0.0.1:9/";
  case SB_FIELD_ENUM: return f->enum_values != NULL && f->enum_values[0] != NULL ? f->enum_values[0] : "";
  default: return (f->flags & SB_FIELD_SECRET) ? "xxxxxxxxxxxxxxxx" : "conformance";
  }
}

/* 1 when --set gave key. */
static int cc__given(const conformance_ctx *ctx, const char *key) {
  size_t n = strlen(key);
  for (size_t i = 0; i < ctx->set_count; i++) {
    if (strncmp(ctx->sets[i], key, n) == 0 && ctx->sets[i][n] == '=') return 1;
  }
  return 0;
}

/* Gives the --set credentials, then plausible values: for required fields
 * only, or (full) for every field. */
static void cc__credentials(const conformance_ctx *ctx, testhost *th, int full) {
  testhost_unset(th, NULL);
  for (size_t i = 0; i < ctx->set_count; i++) {
    char key[128];
    const char *eq = strchr(ctx->sets[i], '=');
    snprintf(key, sizeof(key), "%.*s", (int)(eq - ctx->sets[i]), ctx->sets[i]);
    testhost_set(th, key, eq + 1);
  }
  for (const sb_field *f = testhost_plugin(th)->credentials; f != NULL && f->key != NULL; f++) {
    if (cc__given(ctx, f->key)) continue;
    if ((f->flags & SB_FIELD_REQUIRED) || (full && f->default_value == NULL)) {
      testhost_set(th, f->key, cc__plausible(f));
    } else if (full) {
      testhost_set(th, f->key, f->default_value);
    }
  }
}

/* A successful answer for every HTTP call the plugin makes. */
static void cc__http_ok(testhost *th) {
  static const sb_http_header h[] = {{"Content-Type", "application/json"}, {"X-Message-Id", "ext-1"}};
  testhost_http_script s = {.status = SB_OK, .http_status = 200, .headers = h, .header_count = 2,
                            .body = "{\"id\":\"ext-1\",\"ok\":true}"};
  testhost_http_fallback(th, &s);
}

/* Opens the plugin with plausible credentials and OK answers to HTTP. */
static int cc__open(conformance_ctx *ctx, testhost **out) {
  char err[1024];
  if (testhost_open(ctx->path, out, err, sizeof(err)) != 0) return cc__say(ctx, CONFORMANCE_FAIL, "%s", err);
  cc__credentials(ctx, *out, 0);
  cc__http_ok(*out);
  return CONFORMANCE_PASS;
}

/* Opens, creates and connects; the fake clock then runs a minute. */
static int cc__start(conformance_ctx *ctx, testhost **out) {
  if (cc__open(ctx, out) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  char err[1024];
  if (testhost_create(*out, err, sizeof(err)) != 0) {
    cc__say(ctx, CONFORMANCE_FAIL, "cannot create an instance with plausible credentials: %s%s", err,
            ctx->set_count == 0 ? " (give working ones with --set KEY=VALUE)" : "");
    testhost_close(*out);
    return CONFORMANCE_FAIL;
  }
  testhost_connect(*out);
  testhost_advance(*out, 60000);
  return CONFORMANCE_PASS;
}

/* FAIL with the first misuse the test host saw, if any. */
static int cc__misuse(conformance_ctx *ctx, testhost *th, const char *when) {
  if (testhost_misuse_count(th) == 0) return CONFORMANCE_PASS;
  return cc__say(ctx, CONFORMANCE_FAIL, "%s: %s%s", when, testhost_misuse_at(th, 0),
                 testhost_misuse_count(th) > 1 ? " (and more)" : "");
}

/* --- the file and its descriptor ---------------------------------------- */

static int cc__load(conformance_ctx *ctx) {
  void *dl = dlopen(ctx->path, RTLD_NOW | RTLD_LOCAL);
  if (dl == NULL) return cc__say(ctx, CONFORMANCE_FAIL, "cannot be loaded: %s", dlerror());
  if (dlsym(dl, SB_PLUGIN_ENTRY_SYMBOL) == NULL) {
    return cc__say(ctx, CONFORMANCE_FAIL, "exports no %s (declare it with SB_EXPORT)", SB_PLUGIN_ENTRY_SYMBOL);
  }
  return cc__say(ctx, CONFORMANCE_PASS, "a shared object exporting %s", SB_PLUGIN_ENTRY_SYMBOL);
}

static int cc__descriptor(conformance_ctx *ctx) {
  loader_plugin p;
  char err[2048];
  /* The daemon's own loader decides, with the test host's table. */
  if (loader_open_file(ctx->path, testhost_host(), &p, err, sizeof(err)) != 0) {
    return cc__say(ctx, CONFORMANCE_FAIL, "the daemon refuses it: %s", err);
  }
  size_t fields = 0;
  for (const sb_field *f = p.desc.credentials; f != NULL && f->key != NULL; f++) fields++;
  cc__say(ctx, CONFORMANCE_PASS, "\"%s\" %s (%s), built for ABI %d.%u, %zu credential field%s", p.desc.id,
          p.desc.version, p.desc.name, SB_ABI_MAJOR, p.abi_minor, fields, fields == 1 ? "" : "s");
  free(p.path);
  return CONFORMANCE_PASS;
}

static int cc__entry_version(conformance_ctx *ctx) {
  void *dl = dlopen(ctx->path, RTLD_NOW | RTLD_LOCAL);
  void *sym = dl != NULL ? dlsym(dl, SB_PLUGIN_ENTRY_SYMBOL) : NULL;
  if (sym == NULL) return cc__say(ctx, CONFORMANCE_FAIL, "cannot find %s", SB_PLUGIN_ENTRY_SYMBOL);
  sb_plugin_entry_fn entry;
  memcpy(&entry, &sym, sizeof(entry));
  sb_host future = *testhost_host();
  future.abi.abi_major = SB_ABI_MAJOR + 1;
  const sb_plugin *d = NULL;
  char err[256] = "";
  int rc = entry(&future, &d, err, sizeof(err));
  if (rc == SB_OK) {
    return cc__say(ctx, CONFORMANCE_FAIL,
                   "sb_plugin_entry accepted a host of ABI %d.0; check SB_HOST_COMPATIBLE(host) first and return SB_EVERSION",
                   SB_ABI_MAJOR + 1);
  }
  return cc__say(ctx, CONFORMANCE_PASS, "refuses a host of ABI %d.0 (code %d%s%s)", SB_ABI_MAJOR + 1, rc,
                 err[0] != '\0' ? ": " : "", err);
}

static int cc__file_name(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  const char *base = strrchr(ctx->path, '/');
  base = base != NULL ? base + 1 : ctx->path;
  char want[64];
  snprintf(want, sizeof(want), "%s.so", testhost_plugin(th)->id);
  int ok = strcmp(base, want) == 0;
  cc__say(ctx, ok ? CONFORMANCE_PASS : CONFORMANCE_FAIL, ok ? "named %s after its id" : "the daemon loads only %s: rename %s",
          want, base);
  testhost_close(th);
  return ok ? CONFORMANCE_PASS : CONFORMANCE_FAIL;
}

static int cc__metadata(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  const sb_plugin *d = testhost_plugin(th);
  int rc;
  if (!loader_version_semantic(d->version)) {
    rc = cc__say(ctx, CONFORMANCE_FAIL, "version \"%.40s\" is not a semantic version such as 1.2.0", d->version);
  } else if (d->logo_url != NULL && strstr(d->logo_url, "://") == NULL) {
    rc = cc__say(ctx, CONFORMANCE_FAIL, "logo_url \"%.80s\" is not an absolute URL", d->logo_url);
  } else {
    rc = cc__say(ctx, CONFORMANCE_PASS, "version %s%s%s", d->version,
                 d->publisher == NULL ? "; note: no publisher (the marketplace shows it)" : "",
                 d->description == NULL ? "; note: no description (operators read it)" : "");
  }
  testhost_close(th);
  return rc;
}

static int cc__schema(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  int rc = CONFORMANCE_PASS;
  size_t n = 0, unlabelled = 0;
  const sb_field *f = testhost_plugin(th)->credentials;
  for (; f != NULL && f->key != NULL && rc == CONFORMANCE_PASS; f++, n++) {
    if ((f->flags & SB_FIELD_SECRET) && f->default_value != NULL) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "SECRET field \"%s\" has a default, which the schema export would show",
                   f->key);
    }
    if (f->label == NULL || f->description == NULL) unlabelled++;
  }
  if (rc == CONFORMANCE_PASS) {
    cc__say(ctx, rc, "%zu field%s valid%s", n, n == 1 ? "" : "s",
            unlabelled > 0 ? "; note: some fields lack a label or description (forms show them)" : "");
  }
  testhost_close(th);
  return rc;
}

static int cc__capabilities(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  const sb_plugin *d = testhost_plugin(th);
  const sb_capabilities *c = &d->caps;
  const uint32_t known = SB_CAP_RICH_TEXT | SB_CAP_ATTACHMENTS | SB_CAP_REPLY_TO | SB_CAP_DELIVERY_RECEIPTS |
                         SB_CAP_READ_RECEIPTS | SB_CAP_START_CONVERSATION | SB_CAP_TEMPLATES |
                         SB_CAP_RECEIVE_ONLY;
  const char *why = NULL;
  if (c->flags & ~known) {
    why = "flags has bits no SB_CAP_* names";
  } else if ((c->flags & SB_CAP_ATTACHMENTS) && c->max_attachments == 0) {
    why = "SB_CAP_ATTACHMENTS is set but max_attachments is 0";
  } else if (!(c->flags & SB_CAP_ATTACHMENTS) && (c->max_attachments > 0 || c->attachment_types != NULL)) {
    why = "attachment limits are declared without SB_CAP_ATTACHMENTS";
  } else if (c->max_attachments > 100) {
    why = "max_attachments is over 100";
  } else if (c->window_flags & ~(uint32_t)(SB_WINDOW_TEMPLATE_OUTSIDE | SB_WINDOW_AUTOMATIC_STRICT)) {
    why = "window_flags has bits no SB_WINDOW_* names";
  } else if (c->extended_window_seconds != 0 && c->extended_window_seconds < c->window_seconds) {
    why = "extended_window_seconds is shorter than window_seconds";
  } else if (c->extended_window_tag != NULL && c->extended_window_seconds == 0) {
    why = "extended_window_tag is set without an extended window";
  } else if ((c->window_flags & SB_WINDOW_TEMPLATE_OUTSIDE) && !(c->flags & SB_CAP_TEMPLATES)) {
    why = "SB_WINDOW_TEMPLATE_OUTSIDE needs SB_CAP_TEMPLATES (nothing could be sent outside the window)";
  } else if ((c->window_flags & SB_WINDOW_TEMPLATE_OUTSIDE) && c->window_seconds == 0) {
    why = "SB_WINDOW_TEMPLATE_OUTSIDE is set without a window";
  }
  for (const char *const *t = c->attachment_types; why == NULL && t != NULL && *t != NULL; t++) {
    if (strchr(*t, '/') == NULL) why = "an attachment type is not a MIME type or \"type/\" prefix";
  }
  int rc;
  if (why != NULL) {
    rc = cc__say(ctx, CONFORMANCE_FAIL, "%s", why);
  } else {
    rc = cc__say(ctx, CONFORMANCE_PASS, "consistent%s%s",
                 d->receive == NULL ? "; note: no receive hook, so no webhooks reach it (fine for polling channels)" : "",
                 (c->flags & (SB_CAP_DELIVERY_RECEIPTS | SB_CAP_READ_RECEIPTS)) && d->receive == NULL
                     ? "; receipts must then arrive by polling"
                     : "");
  }
  testhost_close(th);
  return rc;
}

/* --- WebSockets (ABI 1.3) ------------------------------------------------ */

/* Handshakes with no Origin, an odd path and a query must get a verdict; an
 * accepted WebSocket must take text, binary and empty messages, end with
 * one ws_closed when the peer closes or vanishes, and with 1001 before
 * destroy(); nothing may be sent from inside ws_closed. */
static int cc__websockets(conformance_ctx *ctx) {
  testhost *th;
  if (cc__start(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  if (testhost_plugin(th)->ws_open == NULL) {
    testhost_close(th);
    return cc__say(ctx, CONFORMANCE_PASS, "no ws_open hook: WebSocket handshakes go to receive()");
  }
  static const char *const targets[] = {"", "/socket", "/../x", "/socket?token=&x=%zz"};
  static const sb_http_header origin[] = {{"Origin", "https://example.test"}};
  size_t accepted = 0, refused = 0;
  for (size_t i = 0; i < 2 * (sizeof(targets) / sizeof(targets[0])); i++) {
    const testhost_ws *ws = testhost_ws_open(th, targets[i / 2], i % 2 ? origin : NULL, i % 2);
    if (ws == NULL) continue;
    if (ws->status != 101) {
      refused++;
      continue;
    }
    accepted++;
    testhost_ws_message(th, ws, SB_WS_TEXT, "hello", 5);
    testhost_ws_message(th, ws, SB_WS_BINARY, "\0\1\2", 3);
    testhost_ws_message(th, ws, SB_WS_TEXT, "", 0);
    if (ws->open) testhost_ws_peer_close(th, ws, i % 4 == 1 ? SB_WS_CLOSE_ABNORMAL : SB_WS_CLOSE_NORMAL);
  }
  testhost_destroy(th);
  int rc = CONFORMANCE_PASS;
  for (size_t i = 0; i < testhost_ws_count(th) && rc == CONFORMANCE_PASS; i++) {
    const testhost_ws *ws = testhost_ws_at(th, i);
    if (ws->status == 101 && ws->closed_calls != 1)
      rc = cc__say(ctx, CONFORMANCE_FAIL, "ws_closed ran %d times for one WebSocket", ws->closed_calls);
  }
  if (rc == CONFORMANCE_PASS) rc = cc__misuse(ctx, th, "on WebSockets");
  if (rc == CONFORMANCE_PASS)
    rc = cc__say(ctx, CONFORMANCE_PASS, "%zu handshakes accepted and closed once each, %zu refused", accepted, refused);
  testhost_close(th);
  return rc;
}

/* --- credentials --------------------------------------------------------- */

static int cc__credentials_valid(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  char err[1024];
  int rc = CONFORMANCE_PASS;
  for (int full = 0; full <= 1 && rc == CONFORMANCE_PASS; full++) {
    cc__credentials(ctx, th, full);
    if (testhost_create(th, err, sizeof(err)) != 0) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "%s credentials were refused: %s%s", full ? "complete" : "minimal", err,
                   ctx->set_count == 0 ? " (give working ones with --set KEY=VALUE)" : "");
    }
    testhost_destroy(th);
  }
  if (rc == CONFORMANCE_PASS) rc = cc__misuse(ctx, th, "creating and destroying");
  if (rc == CONFORMANCE_PASS) cc__say(ctx, rc, "minimal (required keys only) and complete credentials accepted");
  testhost_close(th);
  return rc;
}

/* A value the schema must refuse for a field of this type, or NULL. */
static const char *cc__wrong(const sb_field *f) {
  switch (f->type) {
  case SB_FIELD_INT: return "twelve";
  case SB_FIELD_BOOL: return "maybe";
  case SB_FIELD_DURATION: return "soon";
  case SB_FIELD_URL: return "not a url";
  case SB_FIELD_ENUM: return "no-such-value-\x01";
  default: return NULL;
  }
}

/* Edge values the schema accepts, to see the plugin cope with them. */
static const char *const *cc__edges(const sb_field *f) {
  static const char *const strings[] = {"", " ", "\xc3\xa9\xe2\x82\xac", "%s%n%x", NULL};
  static const char *const ints[] = {"0", "-1", "9223372036854775807", "-9223372036854775808", NULL};
  static const char *const durations[] = {"0", "0ms", "1d", NULL};
  static const char *const urls[] = {"https://[::1]:1/", "http://h", "ftp://example.com/x?y#z", NULL};
  switch (f->type) {
  case SB_FIELD_STRING: return strings;
  case SB_FIELD_INT: return ints;
  case SB_FIELD_DURATION: return durations;
  case SB_FIELD_URL: return urls;
  default: return NULL;
  }
}

static int cc__credentials_invalid(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  char err[1024];
  int rc = CONFORMANCE_PASS;
  size_t refused = 0, edges = 0, plugin_refusals = 0;
  for (const sb_field *f = testhost_plugin(th)->credentials; f != NULL && f->key != NULL && rc == 0; f++) {
    cc__credentials(ctx, th, 0);
    if (f->flags & SB_FIELD_REQUIRED) {
      testhost_unset(th, f->key);
      if (testhost_create(th, err, sizeof(err)) == 0 || strstr(err, f->key) == NULL) {
        rc = cc__say(ctx, CONFORMANCE_FAIL, "without the required \"%s\" the channel was not refused by name", f->key);
      }
      testhost_destroy(th);
      refused++;
      cc__credentials(ctx, th, 0);
    }
    const char *wrong = cc__wrong(f);
    if (rc == 0 && wrong != NULL) {
      testhost_set(th, f->key, wrong);
      if (testhost_create(th, err, sizeof(err)) == 0) {
        rc = cc__say(ctx, CONFORMANCE_FAIL, "a %s value that is not one was accepted for \"%s\"",
                     f->type == SB_FIELD_ENUM ? "enum" : "typed", f->key);
      } else if (strstr(err, f->key) == NULL) {
        rc = cc__say(ctx, CONFORMANCE_FAIL, "a %s value that is not one for \"%s\" was refused, but not by name: %s",
                     f->type == SB_FIELD_ENUM ? "enum" : "typed", f->key, err);
      }
      testhost_destroy(th);
      refused++;
      cc__credentials(ctx, th, 0);
    }
    for (const char *const *e = cc__edges(f); rc == 0 && e != NULL && *e != NULL; e++) {
      testhost_set(th, f->key, *e);
      if (testhost_check_credentials(th, err, sizeof(err)) != 0) continue;
      edges++;
      /* The plugin may refuse an edge value, but with a sentence, not a crash. */
      int r = testhost_create(th, err, sizeof(err));
      if (r != 0 && strstr(err, "no reason given") != NULL) {
        rc = cc__say(ctx, CONFORMANCE_FAIL, "validate or create refused \"%s\" = an edge value without a reason: %s",
                     f->key, err);
      }
      plugin_refusals += r != 0;
      testhost_destroy(th);
    }
  }
  if (rc == CONFORMANCE_PASS) rc = cc__misuse(ctx, th, "with edge-case credentials");
  if (rc == CONFORMANCE_PASS) {
    cc__say(ctx, rc, "%zu invalid configs refused by the host; %zu edge values handled (%zu refused with a reason)",
            refused, edges, plugin_refusals);
  }
  testhost_close(th);
  return rc;
}

/* --- lifecycle and leaks ------------------------------------------------ */

static int cc__lifecycle(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  char err[1024];
  int rc = CONFORMANCE_PASS, stateless = 0;
  for (int cycle = 0; cycle < 3 && rc == CONFORMANCE_PASS; cycle++) {
    if (testhost_create(th, err, sizeof(err)) != 0) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "create failed in cycle %d: %s", cycle + 1, err);
      break;
    }
    if (cycle == 1) { /* destroy without ever connecting */
      testhost_destroy(th);
      continue;
    }
    testhost_connect(th);
    testhost_advance(th, 60000);
    stateless += testhost_state(th) == 0;
    if (cycle == 2) { /* a reconnect after a transient failure */
      testhost_connect(th);
      testhost_advance(th, 60000);
    }
    testhost_destroy(th);
    if (testhost_timer_count(th) > 0) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "timers still run after destroy");
    }
  }
  if (rc == CONFORMANCE_PASS) rc = cc__misuse(ctx, th, "during create/connect/disconnect/destroy");
  if (rc == CONFORMANCE_PASS) {
    cc__say(ctx, rc, "3 create/destroy cycles (one never connected, one reconnected)%s",
            stateless > 0 ? "; note: connect() reported no state within a minute" : "");
  }
  testhost_close(th);
  return rc;
}

/* One create/connect/receive/send/destroy cycle; returns 0 or -1. */
static int cc__leak_cycle(testhost *th, char *err, size_t errlen) {
  static const sb_http_header h[] = {{"Content-Type", "application/json"}, {"X-Message-Id", "m-1"},
                                     {"X-Sender-Id", "kim"}};
  if (testhost_create(th, err, errlen) != 0) return -1;
  testhost_connect(th);
  testhost_receive(th, "POST", "/messages", h, 3, "{\"id\":\"m-1\",\"text\":\"hi\"}", 0);
  testhost_send_text(th, "kim", "hello");
  testhost_advance(th, 60000);
  testhost_destroy(th);
  testhost_clear_records(th);
  return 0;
}

/* Windows of 10 cycles measured after 10 to warm up. */
#define CC_LEAK_WINDOWS 4

static int cc__leaks(conformance_ctx *ctx) {
  testhost *th;
  if (cc__open(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  testhost_autocommit(th, 1);
  char err[1024];
  /* malloc's per-thread caches and the test host's record arrays count as
   * "in use" until they settle, so warm up first; then a leak shows as
   * growth in every window, where settling shows in some only. */
  size_t mark[CC_LEAK_WINDOWS + 1] = {0};
  for (int cycle = 0; cycle < 10 * (CC_LEAK_WINDOWS + 1); cycle++) {
    if (cycle % 10 == 0 && cycle > 0) mark[cycle / 10 - 1] = mallinfo2().uordblks;
    if (cc__leak_cycle(th, err, sizeof(err)) != 0) {
      testhost_close(th);
      return cc__say(ctx, CONFORMANCE_FAIL, "create failed: %s", err);
    }
  }
  mark[CC_LEAK_WINDOWS] = mallinfo2().uordblks;
  testhost_close(th);
#if defined(__SANITIZE_ADDRESS__)
  return cc__say(ctx, CONFORMANCE_PASS, "%d create/receive/send/destroy cycles; LeakSanitizer checks every check at exit",
                 10 * (CC_LEAK_WINDOWS + 1));
#endif
  int growing = 1;
  char seen[160] = "";
  size_t used = 0;
  for (int w = 0; w < CC_LEAK_WINDOWS; w++) {
    size_t grew = mark[w + 1] > mark[w] ? mark[w + 1] - mark[w] : 0;
    if (grew == 0) growing = 0;
    used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s%zu", w > 0 ? ", " : "", grew);
    if (used >= sizeof(seen)) used = sizeof(seen) - 1;
  }
  if (growing) {
    return cc__say(ctx, CONFORMANCE_FAIL,
                   "memory in use keeps growing: %s bytes over %d windows of 10 create/receive/send/destroy cycles",
                   seen, CC_LEAK_WINDOWS);
  }
  return cc__say(ctx, CONFORMANCE_PASS, "no steady growth over %d create/receive/send/destroy cycles after 10 to warm up",
                 10 * CC_LEAK_WINDOWS);
}

/* --- receive -------------------------------------------------------------- */

typedef struct cc__tally {
  size_t requests, by_status[6], by_host;
} cc__tally;

/* Sends one request; FAILs when it is never answered, answered 2xx before
 * the message it produced was stored, or answered twice. */
static int cc__request(conformance_ctx *ctx, testhost *th, cc__tally *t, const char *method, const char *target,
                       const sb_http_header *h, size_t nh, const char *body, size_t len, const char *what) {
  size_t inbound = testhost_inbound_count(th);
  const testhost_reply *r = testhost_receive(th, method, target, h, nh, body != NULL ? body : "", len);
  if (r == NULL) return cc__say(ctx, CONFORMANCE_FAIL, "the test host ran out of memory");
  t->requests++;
  if (testhost_inbound_count(th) > inbound && r->answered && r->status >= 200 && r->status < 300 && !r->by_host) {
    return cc__say(ctx, CONFORMANCE_FAIL,
                   "%s %s (%s) was answered %d before its message was stored; answer from emit_inbound's done", method,
                   target, what, r->status);
  }
  testhost_commit_all(th);
  for (int i = 0; i < 60 && !r->answered; i++) testhost_advance(th, 5000);
  if (!r->answered) {
    return cc__say(ctx, CONFORMANCE_FAIL, "%s %s (%s) got no answer within 5 minutes: call respond() exactly once",
                   method, target, what);
  }
  if (testhost_misuse_count(th) > 0) {
    return cc__say(ctx, CONFORMANCE_FAIL, "%s %s (%s): %s", method, target, what, testhost_misuse_at(th, 0));
  }
  t->by_host += r->by_host;
  t->by_status[r->status / 100]++;
  return CONFORMANCE_PASS;
}

static int cc__tally_say(conformance_ctx *ctx, const cc__tally *t) {
  return cc__say(ctx, CONFORMANCE_PASS,
                 "%zu requests answered once and never crashed: %zu 2xx, %zu 3xx, %zu 4xx, %zu 5xx (%zu refused by "
                 "receive, answered by the host)",
                 t->requests, t->by_status[2], t->by_status[3], t->by_status[4], t->by_status[5], t->by_host);
}

static int cc__receive_malformed(conformance_ctx *ctx) {
  testhost *th;
  if (cc__start(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  if (testhost_plugin(th)->receive == NULL) {
    testhost_close(th);
    return cc__say(ctx, CONFORMANCE_PASS, "no receive hook: the host answers 404 for it");
  }
  static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW"};
  static const char *const targets[] = {"", "/", "/messages", "/status", "/webhook", "/../../etc/passwd", "/%00",
                                        "//a//b/", "/messages?x=%zz&&=&a", "/messages?hub.mode=subscribe&hub.challenge=1"};
  static const struct {
    const char *text;
    size_t len;
  } bodies[] = {{"", 0}, {"{", 1}, {"null", 4}, {"[]", 2}, {"{\"id\":1,\"text\":[],\"sender\":null}", 32},
                {"\xff\xfe\x00\x01 not utf-8", 15}, {"id=1&text=hi", 12}, {"{\"id\":\"m\",\"text\":\"\\u0000\"}", 26}};
  static const sb_http_header json[] = {{"Content-Type", "application/json"}, {"X-Message-Id", ""},
                                        {"X-Switchboard-Signature", "sha256=zz"}, {"X-Switchboard-Timestamp", "-1"}};
  cc__tally t = {0};
  int rc = CONFORMANCE_PASS;
  for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]) && rc == 0; m++) {
    for (size_t p = 0; p < sizeof(targets) / sizeof(targets[0]) && rc == 0; p++) {
      for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]) && rc == 0; b++) {
        for (size_t hs = 0; hs < 2 && rc == 0; hs++) {
          char what[64];
          snprintf(what, sizeof(what), "malformed body %zu, %s", b + 1, hs ? "odd headers" : "no headers");
          rc = cc__request(ctx, th, &t, methods[m], targets[p], hs ? json : NULL, hs ? 4 : 0, bodies[b].text,
                           bodies[b].len, what);
        }
      }
    }
  }
  if (rc == CONFORMANCE_PASS) rc = cc__tally_say(ctx, &t);
  testhost_close(th);
  return rc;
}

static int cc__receive_oversized(conformance_ctx *ctx) {
  testhost *th;
  if (cc__start(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  if (testhost_plugin(th)->receive == NULL) {
    testhost_close(th);
    return cc__say(ctx, CONFORMANCE_PASS, "no receive hook");
  }
  char *big = malloc(CC_BIG_BODY + 1), *path = malloc(8200), *value = malloc(65537);
  sb_http_header *many = calloc(200, sizeof(*many));
  int rc = CONFORMANCE_PASS;
  if (big == NULL || path == NULL || value == NULL || many == NULL) {
    rc = cc__say(ctx, CONFORMANCE_FAIL, "out of memory");
  } else {
    cc__tally t = {0};
    memset(value, 'v', 65536);
    value[65536] = '\0';
    for (int i = 0; i < 200; i++) many[i] = (sb_http_header){i % 2 ? "X-Repeated" : "Content-Type", value + 65436};
    snprintf(path, 8200, "/messages/");
    memset(path + 10, 'p', 8180);
    path[8190] = '\0';
    sb_http_header huge = {"X-Message-Id", value};
    static const char *const targets[] = {"", "/", "/messages"};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
      memset(big, 'A', CC_BIG_BODY);
      rc = cc__request(ctx, th, &t, "POST", targets[i], NULL, 0, big, CC_BIG_BODY, "an 8 MiB body of text");
      memset(big, '[', CC_BIG_BODY);
      if (rc == 0) rc = cc__request(ctx, th, &t, "POST", targets[i], NULL, 0, big, CC_BIG_BODY, "8 MiB of '['");
      if (rc == 0) rc = cc__request(ctx, th, &t, "POST", targets[i], &huge, 1, "{}", 2, "a 64 KiB header");
      if (rc == 0) rc = cc__request(ctx, th, &t, "POST", targets[i], many, 200, "{}", 2, "200 headers");
    }
    if (rc == 0) rc = cc__request(ctx, th, &t, "GET", path, NULL, 0, "", 0, "an 8 KiB path");
    if (rc == 0) rc = cc__tally_say(ctx, &t);
  }
  free(big);
  free(path);
  free(value);
  free(many);
  testhost_close(th);
  return rc;
}

/* --- send ------------------------------------------------------------------ */

/* Sends msg with every HTTP call answered by script, waits up to 10 minutes
 * of fake time, then one more, and checks it completed exactly once. */
static int cc__send_with(conformance_ctx *ctx, const testhost_http_script *script, const sb_outbound_message *msg,
                         const char *what) {
  testhost *th;
  if (cc__start(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  testhost_clear_records(th);
  if (script != NULL) testhost_http_fallback(th, script);
  char id[] = "out-1";
  sb_outbound_message plain = {.message_id = id, .idempotency_key = id, .attempt = 1, .recipient_id = "contact-1",
                               .recipient_name = "Kim", .text = "Hello from the conformance check",
                               .last_inbound_ms = testhost_now() - 60000};
  const testhost_send_result *r = testhost_send(th, msg != NULL ? msg : &plain);
  int rc = CONFORMANCE_PASS;
  if (r == NULL) {
    rc = cc__say(ctx, CONFORMANCE_FAIL, "the test host ran out of memory");
  } else {
    for (int i = 0; i < CC_PATIENCE_MS / 5000 && r->completions == 0 && r->rc == SB_OK; i++) testhost_advance(th, 5000);
    testhost_advance(th, 60000);
    static const char *const outcomes[] = {"pending", "sent", "retry", "failed"};
    size_t failed_calls = 0, calls = testhost_http_count(th);
    for (size_t i = 0; i < calls; i++) {
      const testhost_http_record *c = testhost_http_at(th, i);
      failed_calls += c->status != SB_OK || c->http_status >= 400;
    }
    if (r->rc != SB_OK && r->completions == 0) {
      rc = cc__say(ctx, CONFORMANCE_PASS, "%s: send() declined it (code %d): the host retries", what, r->rc);
    } else if (r->completions == 0) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "%s: the send was never completed (call send_ok, send_retry or send_fail once)",
                   what);
    } else if (r->completions > 1) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "%s: the send was completed %d times, not once", what, r->completions);
    } else if (script != NULL && (script->status != SB_OK || script->http_status >= 400) && calls > 0 &&
               failed_calls == calls && r->outcome == TESTHOST_SEND_OK) {
      rc = cc__say(ctx, CONFORMANCE_FAIL, "%s: reported sent although every HTTP call failed", what);
    } else if (testhost_misuse_count(th) > 0) {
      rc = cc__misuse(ctx, th, what);
    } else {
      rc = cc__say(ctx, CONFORMANCE_PASS, "%s: completed once: %s%s%s after %zu HTTP call%s", what,
                   outcomes[r->outcome], r->text != NULL ? " " : "", r->text != NULL ? r->text : "", calls,
                   calls == 1 ? "" : "s");
    }
  }
  testhost_close(th);
  return rc;
}

static int cc__send_ok(conformance_ctx *ctx) { return cc__send_with(ctx, NULL, NULL, "the service answers 200"); }

static int cc__send_500(conformance_ctx *ctx) {
  testhost_http_script s = {.status = SB_OK, .http_status = 500, .body = "{\"error\":\"internal\"}"};
  return cc__send_with(ctx, &s, NULL, "the service answers 500");
}

static int cc__send_429(conformance_ctx *ctx) {
  static const sb_http_header h = {"Retry-After", "30"};
  testhost_http_script s = {.status = SB_OK, .http_status = 429, .headers = &h, .header_count = 1,
                            .body = "{\"error\":\"slow down\"}"};
  return cc__send_with(ctx, &s, NULL, "the service answers 429 with Retry-After");
}

static int cc__send_timeout(conformance_ctx *ctx) {
  testhost_http_script s = {.status = SB_ETIMEDOUT, .error = "timed out after 30 s", .delay_ms = 30000};
  return cc__send_with(ctx, &s, NULL, "every request times out");
}

static int cc__send_refused(conformance_ctx *ctx) {
  testhost_http_script s = {.status = SB_EIO, .error = "connection refused"};
  return cc__send_with(ctx, &s, NULL, "the connection is refused");
}

static int cc__send_rich(conformance_ctx *ctx) {
  size_t n = 1024 * 1024;
  char *text = malloc(n + 1);
  if (text == NULL) return cc__say(ctx, CONFORMANCE_FAIL, "out of memory");
  static const char pattern[] = "\"\\<>&'\n\t\xc3\xa9"; /* quotes, markup, controls, UTF-8 */
  for (size_t i = 0; i < n; i++) text[i] = pattern[i % (sizeof(pattern) - 1)];
  text[n] = '\0';
  sb_attachment att[2] = {
      {.url = "https://files.example/a.png", .mime_type = "image/png", .filename = "a \"b\".png", .size = 1234},
      {.mime_type = "text/plain", .filename = "notes.txt", .data = "hello\0world", .data_len = 11, .size = 11},
  };
  sb_outbound_message m = {.message_id = "out-2", .idempotency_key = "out-2", .attempt = 3,
                           .flags = SB_OUT_AUTOMATIC, .recipient_id = "contact-\"1\"", .recipient_name = "K\xc3\xafm",
                           .external_thread_id = "thread-9", .reply_to_external_id = "ext-0",
                           .subject = "Re: \"your\" order", .text = text, .html = "<p>Hello &amp; <b>bye</b></p>",
                           .attachments = att, .attachment_count = 2,
                           .template_json = "{\"name\":\"welcome\",\"language\":\"en\",\"parameters\":[]}",
                           .last_inbound_ms = testhost_now() - 40LL * 86400 * 1000, .agent_name = "Ana",
                           .agent_email = "ana@example.com"};
  int rc = cc__send_with(ctx, NULL, &m, "a 1 MiB message with every field, attachments and a template");
  free(text);
  return rc;
}

static int cc__send_cancel(conformance_ctx *ctx) {
  testhost *th;
  if (cc__start(ctx, &th) != CONFORMANCE_PASS) return CONFORMANCE_FAIL;
  testhost_http_script slow = {.status = SB_OK, .http_status = 200, .body = "{\"id\":\"ext-1\"}", .delay_ms = 120000};
  testhost_http_fallback(th, &slow);
  testhost_clear_records(th);
  const testhost_send_result *r = testhost_send_text(th, "contact-1", "pending while the channel closes");
  int completions_before = r != NULL ? r->completions : 0;
  testhost_destroy(th);
  testhost_advance(th, 300000);
  int rc;
  if (r == NULL) {
    rc = cc__say(ctx, CONFORMANCE_FAIL, "the test host ran out of memory");
  } else if (testhost_misuse_count(th) > 0) {
    rc = cc__misuse(ctx, th, "closing the channel with a send in flight");
  } else {
    rc = cc__say(ctx, CONFORMANCE_PASS, "closing with a send in flight: %s",
                 completions_before > 0   ? "completed before it"
                 : r->completions > 0     ? "completed as its HTTP call was cancelled"
                                          : "left to the host");
  }
  testhost_close(th);
  return rc;
}

const conformance_check conformance_checks[] = {
    {"load", cc__load},
    {"descriptor", cc__descriptor},
    {"entry-version", cc__entry_version},
    {"file-name", cc__file_name},
    {"metadata", cc__metadata},
    {"schema", cc__schema},
    {"capabilities", cc__capabilities},
    {"credentials-valid", cc__credentials_valid},
    {"credentials-invalid", cc__credentials_invalid},
    {"lifecycle", cc__lifecycle},
    {"receive-malformed", cc__receive_malformed},
    {"receive-oversized", cc__receive_oversized},
    {"websockets", cc__websockets},
    {"send-ok", cc__send_ok},
    {"send-http-500", cc__send_500},
    {"send-http-429", cc__send_429},
    {"send-timeout", cc__send_timeout},
    {"send-refused", cc__send_refused},
    {"send-rich", cc__send_rich},
    {"send-cancel", cc__send_cancel},
    {"leaks", cc__leaks},
    {NULL, NULL},
};
