/* plugin_harness.c — the in-process driver for the Meta plugin tests: fake router/store, answers, sends. */
#include "plugin_harness.h"

#include <dlfcn.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph_double.h"
#include "httpc.h"
#include "loader.h"
#include "testutil.h"

uv_loop_t ph_loop;
ph_env phe;
sb_channel *ph_ch;

static loader_plugin ph_plug;
static httpc *ph_client;
static uv_timer_t ph_commit_timer;
static char ph_plugin_name[64];

typedef struct ph_commit {
  sb_inbound_done_fn done;
  void *arg;
  int status, duplicate;
  char id[32];
} ph_commit;

static ph_commit ph_pending[PH_MAX * 2];
static int ph_npending;

static void ph__copy(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s != NULL ? s : "(null)"); }

void ph_flush(void) {
  ph_commit batch[PH_MAX * 2];
  int n = ph_npending;
  memcpy(batch, ph_pending, sizeof(batch[0]) * (size_t)n);
  ph_npending = 0;
  phe.commits_pending = 0;
  for (int i = 0; i < n; i++)
    batch[i].done(batch[i].arg, batch[i].status, batch[i].status == SB_OK ? batch[i].id : NULL, batch[i].duplicate);
}

static void ph__commit_cb(uv_timer_t *t) {
  (void)t;
  if (!phe.hold) ph_flush();
}

static int ph__inbound(void *ctx, sb_channel *c, const sb_inbound_message *m, sb_inbound_done_fn done, void *arg) {
  (void)ctx;
  (void)c;
  ck_assert_int_lt(phe.in_count, PH_MAX);
  if (m->external_id == NULL || m->sender.id == NULL) return SB_EINVAL;
  if (phe.refuse != 0) return phe.refuse;
  ph_inbound *r = &phe.in[phe.in_count++];
  r->flags = m->flags;
  r->sender_kind = m->sender.kind;
  ph__copy(r->ext_id, sizeof(r->ext_id), m->external_id);
  ph__copy(r->sender_id, sizeof(r->sender_id), m->sender.id);
  ph__copy(r->sender_name, sizeof(r->sender_name), m->sender.name);
  ph__copy(r->avatar, sizeof(r->avatar), m->sender.avatar_url);
  ph__copy(r->text, sizeof(r->text), m->text);
  ph__copy(r->reply_to, sizeof(r->reply_to), m->reply_to_external_id);
  ph__copy(r->meta, sizeof(r->meta), m->metadata_json);
  r->timestamp_ms = m->timestamp_ms;
  r->attachment_count = m->attachment_count;
  for (size_t i = 0; i < m->attachment_count && i < 4; i++) {
    ph__copy(r->att_url[i], sizeof(r->att_url[i]), m->attachments[i].url);
    ph__copy(r->att_type[i], sizeof(r->att_type[i]), m->attachments[i].mime_type);
    ph__copy(r->att_name[i], sizeof(r->att_name[i]), m->attachments[i].filename);
    r->att_size[i] = m->attachments[i].size;
    r->att_data_len[i] = m->attachments[i].data_len;
  }
  ph_commit *p = &ph_pending[ph_npending++];
  p->done = done;
  p->arg = arg;
  p->status = phe.fail_store ? SB_EIO : SB_OK;
  p->duplicate = 0;
  if (!phe.fail_store) {
    int found = -1;
    for (int i = 0; i < phe.stored_count; i++) {
      if (strcmp(phe.stored[i], m->external_id) == 0) found = i;
    }
    if (found < 0) {
      snprintf(phe.stored[phe.stored_count], sizeof(phe.stored[0]), "%s", m->external_id);
      found = phe.stored_count++;
    } else {
      p->duplicate = 1;
    }
    snprintf(p->id, sizeof(p->id), "m-%d", found + 1);
  }
  phe.commits_pending = ph_npending;
  uv_update_time(&ph_loop);
  uv_timer_start(&ph_commit_timer, ph__commit_cb, 2, 0);
  return SB_OK;
}

static int ph__status(void *ctx, sb_channel *c, const sb_status_update *u) {
  (void)ctx;
  (void)c;
  ck_assert_int_lt(phe.st_count, PH_MAX);
  ph_status *s = &phe.st[phe.st_count++];
  s->status = u->status;
  s->flags = u->flags;
  s->recipient_kind = u->recipient_kind;
  ph__copy(s->ext_id, sizeof(s->ext_id), u->external_id);
  ph__copy(s->recipient, sizeof(s->recipient), u->recipient_id);
  ph__copy(s->error, sizeof(s->error), u->error);
  s->timestamp_ms = u->timestamp_ms;
  return SB_OK;
}

static void ph__state(void *ctx, sb_channel *c, uint32_t state, const char *reason) {
  (void)ctx;
  (void)c;
  phe.state = state;
  ph__copy(phe.state_reason, sizeof(phe.state_reason), reason);
}

static void ph__guard(uv_timer_t *t) { *(int *)t->data = 1; }

int ph_run_until(const int *flag, uint64_t ms) {
  uv_timer_t guard;
  int expired = 0;
  uv_timer_init(&ph_loop, &guard);
  uv_update_time(&ph_loop);
  guard.data = &expired;
  uv_timer_start(&guard, ph__guard, ms, 0);
  while (!*flag && !expired) uv_run(&ph_loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&ph_loop, UV_RUN_NOWAIT);
  return *flag;
}

void ph_run_for(uint64_t ms) {
  int never = 0;
  ph_run_until(&never, ms);
}

static int ph__release(void *ctx, sb_channel *ch, uint32_t kind, const char *id) {
  phe.releases++;
  snprintf(phe.released, sizeof(phe.released), "%u:%s", (unsigned)kind, id);
  return SB_OK;
}

void ph_setup(const char *plugin_name, const char *token, const char *page_id) {
  uv_loop_init(&ph_loop);
  memset(&phe, 0, sizeof(phe));
  ph_npending = 0;
  phe.env.loop = &ph_loop;
  phe.env.inbound = ph__inbound;
  phe.env.status = ph__status;
  phe.env.state_changed = ph__state;
  phe.env.send_release = ph__release;
  ck_assert_int_eq(httpc_new(&ph_loop, &ph_client), 0);
  phe.env.httpc = ph_client;
  uv_timer_init(&ph_loop, &ph_commit_timer);
  snprintf(ph_plugin_name, sizeof(ph_plugin_name), "%s", plugin_name);
  char path[512], err[512];
  snprintf(path, sizeof(path), "%s/%s.so", SB_PLUGIN_BUILD_DIR, plugin_name);
  ck_assert_msg(loader_open_file(path, hostapi_table(), &ph_plug, err, sizeof(err)) == 0, "load failed: %s", err);
  gd_start(&ph_loop, token, page_id);
  ph_ch = NULL;
}

static void ph__flag(void *arg) { *(int *)arg = 1; }

void ph_close(void) {
  if (ph_ch == NULL) return;
  int closed = 0;
  channel_close(ph_ch, ph__flag, &closed);
  ph_ch = NULL;
  ck_assert(ph_run_until(&closed, 5000));
}

void ph_teardown(void) {
  ph_close();
  ph_flush();
  gd_stop();
  int hc = 0;
  httpc_close(ph_client, ph__flag, &hc);
  ph_run_until(&hc, 3000);
  uv_close((uv_handle_t *)&ph_commit_timer, NULL);
  uv_run(&ph_loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&ph_loop), 0);
#if !defined(__SANITIZE_ADDRESS__)
  dlclose(ph_plug.dl);
#endif
  free(ph_plug.path);
}

int ph_try_open(const char *credentials_json, char *err, size_t errlen) {
  char creds[4096];
  const char *at = strstr(credentials_json, "%BASE%");
  if (at != NULL) {
    snprintf(creds, sizeof(creds), "%.*s%s%s", (int)(at - credentials_json), credentials_json, gd_base(), at + 6);
  } else {
    snprintf(creds, sizeof(creds), "%s", credentials_json);
  }
  char json[8192];
  snprintf(json, sizeof(json), "{\"name\":\"meta\",\"plugin\":\"%s\",\"credentials\":%s}", ph_plugin_name, creds);
  json_error_t jerr;
  json_t *holder = json_loads(json, 0, &jerr);
  ck_assert_msg(holder != NULL, "bad test JSON: %s", jerr.text);
  config_channel c = {.name = "meta",
                      .plugin = ph_plugin_name,
                      .inbox = "Support",
                      .enabled = 1,
                      .credentials = json_object_get(holder, "credentials"),
                      .spec = holder};
  int rc = channel_create(&phe.env, &ph_plug, &c, "/tmp", NULL, &ph_ch, err, errlen);
  json_decref(holder);
  if (rc != 0) ph_ch = NULL;
  return rc;
}

uint32_t ph_state_after_connect_answer(const char *credentials_json, const char *path, int http, long code) {
  if (code != 0)
    gd_script_error(path, http, code, 0, "scripted failure");
  else
    gd_script_raw(path, http, "scripted");
  char err[512];
  ck_assert_msg(ph_try_open(credentials_json, err, sizeof(err)) == 0, "%s", err);
  channel_start(ph_ch);
  for (int i = 0; i < 300 && channel_state(ph_ch) == SB_STATE_CONNECTING; i++) ph_run_for(10);
  uint32_t state = channel_state(ph_ch);
  ph_close();
  return state;
}

void ph_open(const char *credentials_json) {
  char err[512];
  ck_assert_msg(ph_try_open(credentials_json, err, sizeof(err)) == 0, "create failed: %s", err);
  channel_start(ph_ch);
  for (int i = 0; i < 300 && channel_state(ph_ch) != SB_STATE_CONNECTED && !SB_STATE_IS_FATAL(channel_state(ph_ch));
       i++) {
    ph_run_for(10);
  }
}

static int ph__record(sb_responder *self, int status, const sb_http_header *h, size_t n, const char *body, size_t len) {
  ph_answer *a = (ph_answer *)self;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body != NULL ? body : "");
  for (size_t i = 0; i < n; i++) {
    if (strcasecmp(h[i].name, "Content-Type") == 0)
      snprintf(a->content_type, sizeof(a->content_type), "%s", h[i].value);
  }
  a->done++;
  return 0;
}

ph_answer *ph_request(const char *method, const char *query, const char *body, const char *const *headers) {
  static ph_answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = ph__record;
  sb_http_header h[8];
  size_t n = 0;
  for (size_t i = 0; headers != NULL && headers[i] != NULL && n < 8; i += 2)
    h[n++] = (sb_http_header){headers[i], headers[i + 1]};
  sb_http_request req = {.method = method,
                         .path = "/hooks/meta",
                         .subpath = "",
                         .query = query != NULL ? query : "",
                         .headers = h,
                         .header_count = n,
                         .body = body,
                         .body_len = body != NULL ? strlen(body) : 0,
                         .remote_addr = "127.0.0.1"};
  channel_receive(ph_ch, &req, &a.base);
  ck_assert_msg(ph_run_until(&a.done, 5000), "no answer to %s", method);
  ck_assert_int_eq(a.done, 1);
  return &a;
}

ph_answer *ph_post_signed_len(const char *app_secret, const char *body, size_t len) {
  static ph_answer a;
  memset(&a, 0, sizeof(a));
  a.base.respond = ph__record;
  char sig[72];
  gd_sign(app_secret, body, len, sig);
  sb_http_header h[] = {{"Content-Type", "application/json"}, {"X-Hub-Signature-256", sig}};
  sb_http_request req = {.method = "POST",
                         .path = "/hooks/meta",
                         .subpath = "",
                         .query = "",
                         .headers = h,
                         .header_count = 2,
                         .body = body,
                         .body_len = len,
                         .remote_addr = "127.0.0.1"};
  channel_receive(ph_ch, &req, &a.base);
  ck_assert_msg(ph_run_until(&a.done, 8000), "no answer to a POST");
  ck_assert_int_eq(a.done, 1);
  return &a;
}

ph_answer *ph_post_signed(const char *app_secret, const char *body) {
  return ph_post_signed_len(app_secret, body, strlen(body));
}

static uint64_t ph_rng_state;

static uint32_t ph__rng(void) {
  ph_rng_state ^= ph_rng_state << 13;
  ph_rng_state ^= ph_rng_state >> 7;
  ph_rng_state ^= ph_rng_state << 17;
  return (uint32_t)(ph_rng_state >> 11);
}

static void ph__assert_answer(const ph_answer *a, const char *what, int i) {
  ck_assert_msg(a->status == 200 || a->status == 400, "%s %d got %d: %s", what, i, a->status, a->body);
  json_t *root = json_loads(a->body, 0, NULL);
  ck_assert_msg(root != NULL, "%s %d: the answer is not JSON: %s", what, i, a->body);
  json_decref(root);
}

void ph_fuzz_webhooks(const char *app_secret, const char *valid_body, const char *const *vocabulary, size_t nvocab,
                      int rounds) {
  ph_rng_state = 0x9e3779b97f4a7c15ull;
  char buf[8192];
  for (int i = 0; i < rounds; i++) { /* random bytes */
    size_t n = ph__rng() % 300;
    for (size_t j = 0; j < n; j++) buf[j] = (char)(ph__rng() & 0xff);
    if (n > 0 && i % 2 == 0) buf[0] = '{';
    ph__assert_answer(ph_post_signed_len(app_secret, buf, n), "random body", i);
  }
  for (int i = 0; i < rounds; i++) { /* token soup */
    size_t n = 0;
    int count = (int)(ph__rng() % 60);
    for (int j = 0; j < count && n + 64 < sizeof(buf); j++) {
      const char *t = vocabulary[ph__rng() % nvocab];
      memcpy(buf + n, t, strlen(t));
      n += strlen(t);
    }
    ph__assert_answer(ph_post_signed_len(app_secret, buf, n), "token soup", i);
  }
  size_t len = strlen(valid_body);
  ck_assert_uint_lt(len, sizeof(buf));
  for (int i = 0; i < rounds; i++) { /* byte mutations of a valid webhook */
    memcpy(buf, valid_body, len);
    int flips = 1 + (int)(ph__rng() % 3);
    for (int f = 0; f < flips; f++) buf[ph__rng() % len] = (char)(ph__rng() & 0xff);
    ph__assert_answer(ph_post_signed_len(app_secret, buf, len), "mutation", i);
  }
}

static void ph__sent(sb_send_op *self, int outcome, const char *text, uint32_t retry_after_ms) {
  ph_sent *s = (ph_sent *)self;
  s->outcome = outcome;
  snprintf(s->text, sizeof(s->text), "%s", text != NULL ? text : "");
  s->retry_after = retry_after_ms;
  s->done++;
}

void ph_sent_init(ph_sent *s) {
  memset(s, 0, sizeof(*s));
  s->base.complete = ph__sent;
}

ph_sent *ph_send(const sb_outbound_message *m) {
  static ph_sent s;
  ph_sent_init(&s);
  ck_assert_int_eq(channel_send(ph_ch, m, &s.base), 0);
  ck_assert_msg(ph_run_until(&s.done, 8000), "send did not complete");
  ck_assert_int_eq(s.done, 1);
  return &s;
}

const ph_inbound *ph_find(const char *ext_id) {
  for (int i = 0; i < phe.in_count; i++) {
    if (strcmp(phe.in[i].ext_id, ext_id) == 0) return &phe.in[i];
  }
  return NULL;
}

typedef struct ph__post {
  int done;
  ph_posted *out;
} ph__post;

static void ph__posted(void *arg, const httpc_response *res) {
  ph__post *p = arg;
  p->done = 1;
  p->out->code = res->status == 0 ? res->code : 0;
  snprintf(p->out->body, sizeof(p->out->body), "%.*s", (int)res->body_len, res->body != NULL ? res->body : "");
}

static void ph__client_closed(void *arg) { *(int *)arg = 1; }

ph_posted ph_post_form(const char *path, const char *token, const char *boundary, const char *body) {
  httpc *client = NULL;
  ck_assert_int_eq(httpc_new(&ph_loop, &client), 0);
  char url[256], type[128], auth[256];
  snprintf(url, sizeof(url), "%s%s", gd_base(), path);
  snprintf(type, sizeof(type), "multipart/form-data; boundary=%s", boundary);
  snprintf(auth, sizeof(auth), "Bearer %s", token);
  const httpc_header h[] = {{"Authorization", auth}, {"Content-Type", type}};
  httpc_req rq = {.method = "POST", .url = url, .headers = h, .n_headers = 2, .body = body, .body_len = strlen(body)};
  ph_posted out = {0};
  ph__post p = {0, &out};
  ck_assert_int_eq(httpc_request(client, &rq, ph__posted, &p, NULL), 0);
  ck_assert(ph_run_until(&p.done, 5000));
  int closed = 0;
  httpc_close(client, ph__client_closed, &closed);
  ph_run_until(&closed, 3000);
  return out;
}
