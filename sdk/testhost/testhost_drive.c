/* testhost_drive.c — the stub test host's driving side: loading and vetting
 * a plugin, the instance's lifecycle, requests, sends and the record
 * accessors a test asserts on. */
#include "testhost_impl.h"

#include <dlfcn.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The smallest descriptor a 1.x plugin can have: everything up to destroy. */
#define TESTHOST_MIN_DESC (offsetof(sb_plugin, destroy) + sizeof(((sb_plugin *)0)->destroy))

static int testhost__id_valid(const char *id) {
  size_t n = id != NULL ? strlen(id) : 0;
  if (n == 0 || n > 32 || id[0] < 'a' || id[0] > 'z') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
  }
  return 1;
}

/* Checks the descriptor as the daemon's loader does. */
static int testhost__vet(const char *path, const sb_plugin *d, char *err, size_t errlen) {
  const sb_abi_header *h = &d->abi;
  if (h->magic != SB_MAGIC_PLUGIN) {
    snprintf(err, errlen, "plugin file %s returned a descriptor with wrong magic 0x%08x (expected 0x%08x)", path,
             (unsigned)h->magic, (unsigned)SB_MAGIC_PLUGIN);
    return SB_EVERSION;
  }
  if (h->abi_major != SB_ABI_MAJOR || h->abi_minor > SB_ABI_MINOR) {
    snprintf(err, errlen, "plugin file %s was built for plugin ABI %u.%u but this test host speaks %d.%d", path,
             h->abi_major, h->abi_minor, SB_ABI_MAJOR, SB_ABI_MINOR);
    return SB_EVERSION;
  }
  if (h->struct_size > sizeof(sb_plugin) || h->struct_size < TESTHOST_MIN_DESC) {
    snprintf(err, errlen, "plugin file %s declares a descriptor of %u bytes, outside the %zu-%zu bytes of ABI %d.%d",
             path, (unsigned)h->struct_size, (size_t)TESTHOST_MIN_DESC, sizeof(sb_plugin), SB_ABI_MAJOR,
             SB_ABI_MINOR);
    return SB_EVERSION;
  }
  return SB_OK;
}

static int testhost__vet_contents(const char *path, const sb_plugin *d, char *err, size_t errlen) {
  if (!testhost__id_valid(d->id)) {
    snprintf(err, errlen, "plugin file %s declares an invalid id (use 1-32 of a-z, 0-9 and _, starting with a letter)",
             path);
    return SB_EINVAL;
  }
  const char *missing = d->create == NULL ? "create" : d->send == NULL ? "send" : d->destroy == NULL ? "destroy" : NULL;
  if (missing != NULL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) lacks the required hook %s", d->id, path, missing);
    return SB_EINVAL;
  }
  if (d->ws_open != NULL && (d->ws_message == NULL || d->ws_closed == NULL)) {
    snprintf(err, errlen,
             "plugin \"%s\" (file %s) has the ws_open hook but lacks %s: a plugin that takes WebSockets needs "
             "ws_open, ws_message and ws_closed (ABI 1.3)",
             d->id, path, d->ws_message == NULL && d->ws_closed == NULL ? "ws_message and ws_closed"
                          : d->ws_message == NULL                      ? "ws_message"
                                                                       : "ws_closed");
    return SB_EINVAL;
  }
  if (d->name == NULL || d->version == NULL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) must give a name and a version", d->id, path);
    return SB_EINVAL;
  }
  if (d->caps.thread_model != SB_THREAD_PER_CONTACT && d->caps.thread_model != SB_THREAD_EXTERNAL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) declares unknown thread model %u", d->id, path,
             (unsigned)d->caps.thread_model);
    return SB_EINVAL;
  }
  if (d->caps.start_by > SB_START_BY_EMAIL) {
    snprintf(err, errlen, "plugin \"%s\" (file %s) declares unknown start_by %u", d->id, path,
             (unsigned)d->caps.start_by);
    return SB_EINVAL;
  }
  char why[512];
  if (testhost__check_table(d, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "%s (file %s)", why, path);
    return SB_EINVAL;
  }
  return SB_OK;
}

int testhost_open(const char *path, testhost **out, char *err, size_t errlen) {
  if (path == NULL || out == NULL) return SB_EINVAL;
  *out = NULL;
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return SB_EIO;
  }
  dlerror();
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (dl == NULL) {
    const char *why = dlerror();
    snprintf(err, errlen, "plugin file %s could not be loaded: %s", path, why != NULL ? why : "unknown error");
    return SB_EIO;
  }
  void *sym = dlsym(dl, SB_PLUGIN_ENTRY_SYMBOL);
  if (sym == NULL) {
    snprintf(err, errlen, "plugin file %s has no %s symbol", path, SB_PLUGIN_ENTRY_SYMBOL);
    dlclose(dl);
    return SB_EINVAL;
  }
  sb_plugin_entry_fn entry;
  memcpy(&entry, &sym, sizeof(entry));
  const sb_plugin *d = NULL;
  char perr[256] = "";
  int rc = entry(testhost_host(), &d, perr, sizeof(perr));
  if (rc != SB_OK || d == NULL) {
    snprintf(err, errlen, "plugin file %s refused to start under ABI %d.%d: %s (code %d)", path, SB_ABI_MAJOR,
             SB_ABI_MINOR, perr[0] != '\0' ? perr : "no reason given", rc);
    dlclose(dl);
    return rc != SB_OK ? rc : SB_EINVAL;
  }
  testhost *th = calloc(1, sizeof(*th));
  if (th == NULL || (rc = testhost__vet(path, d, err, errlen)) != SB_OK ||
      (memcpy(&th->desc, d, d->abi.struct_size), rc = testhost__vet_contents(path, &th->desc, err, errlen)) != 0) {
    free(th);
    dlclose(dl);
    return th == NULL ? SB_ENOMEM : rc;
  }
  th->dl = dl;
  th->path = strdup(path);
  th->channel_name = strdup("test");
  th->channel.th = th;
  th->log_echo = getenv("TESTHOST_LOG") != NULL;
  if (th->path == NULL || th->channel_name == NULL) {
    testhost_close(th);
    return SB_ENOMEM;
  }
  *out = th;
  return SB_OK;
}

const sb_plugin *testhost_plugin(const testhost *th) { return th != NULL ? &th->desc : NULL; }
void *testhost_instance(const testhost *th) { return th != NULL ? th->instance : NULL; }
sb_channel *testhost_channel(testhost *th) { return th != NULL ? &th->channel : NULL; }

int testhost_set_channel_name(testhost *th, const char *name) {
  if (th == NULL || name == NULL || name[0] == '\0') return SB_EINVAL;
  char *copy = strdup(name);
  if (copy == NULL) return SB_ENOMEM;
  free(th->channel_name);
  th->channel_name = copy;
  return SB_OK;
}

static void testhost__state_free(void *p) {
  testhost__state *s = p;
  free(s->reason);
  free(s);
}

static void testhost__log_free(void *p) {
  testhost__log *l = p;
  free(l->line);
  free(l);
}

static void testhost__responder_free(void *p) {
  struct sb_responder *r = p;
  testhost__headers_free(r->reply.headers, r->reply.header_count);
  free(r->reply.body);
  free(r);
}

static void testhost__send_free(void *p) {
  struct sb_send_op *op = p;
  free(op->result.text);
  free(op);
}

void testhost_close(testhost *th) {
  if (th == NULL) return;
  testhost_destroy(th);
  testhost_unset(th, NULL);
  testhost__vec_free(&th->given_keys, NULL);
  testhost__vec_free(&th->given_vals, NULL);
  testhost__loop_free(th);
  testhost__vec_free(&th->replies, testhost__responder_free);
  testhost__vec_free(&th->sends, testhost__send_free);
  testhost__vec_free(&th->inbound, testhost__inbound_free);
  testhost__vec_free(&th->statuses, testhost__status_free);
  testhost__vec_free(&th->states, testhost__state_free);
  testhost__vec_free(&th->logs, testhost__log_free);
  testhost__vec_free(&th->misuse, free);
  testhost__ws_free(th);
  /* Sanitizer builds keep the code mapped so leak reports can name it. */
#if !defined(__SANITIZE_ADDRESS__)
  if (th->dl != NULL) dlclose(th->dl);
#endif
  free(th->path);
  free(th->channel_name);
  free(th);
}

/* --- the instance -------------------------------------------------------- */

int testhost_create(testhost *th, char *err, size_t errlen) {
  if (th == NULL) return SB_EINVAL;
  if (th->created) {
    snprintf(err, errlen, "the test host already has an instance: testhost_destroy it first");
    return SB_EBUSY;
  }
  int rc = testhost_validate(th, err, errlen);
  if (rc != 0) return rc;
  if ((rc = testhost__config_build(th, &th->config, err, errlen)) != 0) return rc;
  char perr[512] = "";
  void *instance = NULL;
  th->disconnected = 0;
  th->connected = 0;
  th->state = 0;
  rc = th->desc.create(testhost_host(), &th->channel, th->config, &instance, perr, sizeof(perr));
  if (rc != SB_OK) {
    snprintf(err, errlen, "plugin \"%s\" create failed: %s (code %d)", th->desc.id,
             perr[0] != '\0' ? perr : "no reason given", rc);
    testhost__config_free(th->config);
    th->config = NULL;
    testhost_run(th);
    return rc;
  }
  th->instance = instance;
  th->created = 1;
  testhost_run(th);
  return SB_OK;
}

int testhost_connect(testhost *th) {
  if (th == NULL || !th->created) return SB_EINVAL;
  int rc = SB_OK;
  th->connected = 1;
  if (th->desc.connect != NULL) {
    rc = th->desc.connect(th->instance);
  } else {
    testhost_host()->set_state(&th->channel, SB_STATE_CONNECTED, NULL);
  }
  testhost_run(th);
  return rc;
}

int testhost_start(testhost *th, char *err, size_t errlen) {
  int rc = testhost_create(th, err, errlen);
  if (rc != 0) return rc;
  rc = testhost_connect(th);
  if (rc != 0) snprintf(err, errlen, "plugin \"%s\" connect returned %d", th->desc.id, rc);
  return rc;
}

void testhost_disconnect(testhost *th) {
  if (th == NULL || !th->created || th->disconnected) return;
  testhost_run(th);
  if (th->desc.disconnect != NULL) th->desc.disconnect(th->instance);
  th->disconnected = 1;
  th->connected = 0;
}

void testhost_destroy(testhost *th) {
  if (th == NULL || !th->created) return;
  testhost_disconnect(th);
  /* As the daemon: WebSockets close (1001) and hear of it while the
   * plugin's timers are still valid; reads complete; then the rest. */
  testhost__ws_before_destroy(th);
  th->cancelling = 1; /* a send may be completed from its cancelled call's done (plugin.h) */
  testhost__loop_cancel_all(th);
  th->cancelling = 0;
  /* Drop deferred calls: the instance is going away. */
  while (th->deferred.count > 0) free(th->deferred.items[--th->deferred.count]);
  /* emit_inbound promises exactly one done: the ones still waiting learn
   * the message was not stored, while the instance still exists. */
  for (size_t i = 0; i < th->inbound.count; i++) {
    testhost__inbound *in = th->inbound.items[i];
    if (!in->pending) continue;
    in->pending = 0;
    in->done(in->arg, SB_ECANCELED, NULL, 0);
  }
  while (th->deferred.count > 0) free(th->deferred.items[--th->deferred.count]);
  testhost__ws_before_destroy(th); /* reads the plugin started meanwhile */
  while (th->deferred.count > 0) free(th->deferred.items[--th->deferred.count]);
  static const char gone[] = "the channel is closing";
  for (size_t i = 0; i < th->replies.count; i++) {
    struct sb_responder *r = th->replies.items[i];
    if (!r->reply.answered) {
      r->reply.by_host = 1;
      testhost__fill_reply(&r->reply, 503, NULL, 0, gone, sizeof(gone) - 1);
    }
  }
  th->desc.destroy(th->instance);
  th->instance = NULL;
  th->created = 0;
  testhost__config_free(th->config);
  th->config = NULL;
}

/* --- driving hooks --------------------------------------------------------- */

const testhost_reply *testhost_receive(testhost *th, const char *method, const char *target,
                                       const sb_http_header *headers, size_t header_count, const char *body,
                                       size_t body_len) {
  if (th == NULL || !th->created) return NULL;
  if (target == NULL) target = "";
  if (method == NULL) method = "GET";
  if (body != NULL && body_len == 0) body_len = strlen(body);
  struct sb_responder *rs = calloc(1, sizeof(*rs));
  const char *q = strchr(target, '?');
  size_t sublen = q != NULL ? (size_t)(q - target) : strlen(target);
  char *subpath = malloc(sublen + 1);
  char *path = malloc(sublen + strlen(th->channel_name) + 8);
  if (rs == NULL || subpath == NULL || path == NULL || testhost__vec_push(&th->replies, rs) != 0) {
    free(rs);
    free(subpath);
    free(path);
    return NULL;
  }
  rs->th = th;
  memcpy(subpath, target, sublen);
  subpath[sublen] = '\0';
  sprintf(path, "/hooks/%s%s", th->channel_name, subpath);
  sb_http_request req = {.method = method, .path = path, .subpath = subpath, .query = q != NULL ? q + 1 : "",
                         .headers = headers, .header_count = headers != NULL ? header_count : 0,
                         .body = body != NULL ? body : "", .body_len = body != NULL ? body_len : 0,
                         .remote_addr = "127.0.0.1"};
  testhost_reply *r = &rs->reply;
  if (th->desc.receive == NULL) {
    static const char none[] = "no such channel";
    r->by_host = 1;
    testhost__fill_reply(r, 404, NULL, 0, none, sizeof(none) - 1);
  } else {
    r->rc = th->desc.receive(th->instance, &req, rs);
    if (r->rc != SB_OK && r->answers > 0) {
      testhost__misuse(th, "receive returned %d after answering %s %s (return SB_OK once you respond)", r->rc,
                       method, path);
    } else if (r->rc != SB_OK) {
      static const char refused[] = "the channel could not take the request";
      r->by_host = 1;
      testhost__fill_reply(r, 500, NULL, 0, refused, sizeof(refused) - 1);
    }
  }
  free(subpath);
  free(path);
  testhost_run(th);
  return r;
}

const char *testhost_reply_header(const testhost_reply *reply, const char *name) {
  for (size_t i = 0; reply != NULL && name != NULL && i < reply->header_count; i++) {
    if (strcasecmp(reply->headers[i].name, name) == 0) return reply->headers[i].value;
  }
  return NULL;
}

const testhost_send_result *testhost_send(testhost *th, const sb_outbound_message *msg) {
  if (th == NULL || !th->created || msg == NULL) return NULL;
  struct sb_send_op *op = calloc(1, sizeof(*op));
  if (op == NULL || testhost__vec_push(&th->sends, op) != 0) {
    free(op);
    return NULL;
  }
  op->th = th;
  op->result.rc = th->desc.send(th->instance, msg, op);
  if (op->result.rc != SB_OK && op->result.completions > 0) {
    testhost__misuse(th, "send returned %d after completing the send (return SB_OK once you complete)",
                     op->result.rc);
  }
  testhost_run(th);
  return &op->result;
}

const testhost_send_result *testhost_send_text(testhost *th, const char *recipient_id, const char *text) {
  if (th == NULL) return NULL;
  char id[32];
  snprintf(id, sizeof(id), "out-%u", ++th->next_out);
  sb_outbound_message m = {.message_id = id, .idempotency_key = id, .attempt = 1,
                           .recipient_id = recipient_id != NULL ? recipient_id : "contact-1",
                           .text = text != NULL ? text : "", .last_inbound_ms = testhost__now_ms() - 60000};
  return testhost_send(th, &m);
}

/* --- inbound ------------------------------------------------------------------ */

size_t testhost_inbound_count(const testhost *th) { return th != NULL ? th->inbound.count : 0; }

const sb_inbound_message *testhost_inbound(const testhost *th, size_t index) {
  if (th == NULL || index >= th->inbound.count) return NULL;
  return &((testhost__inbound *)th->inbound.items[index])->msg;
}

int testhost_inbound_pending(const testhost *th, size_t index) {
  if (th == NULL || index >= th->inbound.count) return 0;
  return ((testhost__inbound *)th->inbound.items[index])->pending;
}

int testhost_inbound_complete(testhost *th, size_t index, int status, const char *message_id, int duplicate) {
  if (th == NULL || index >= th->inbound.count) return SB_ENOENT;
  testhost__inbound *in = th->inbound.items[index];
  if (!in->pending) return SB_EINVAL;
  in->pending = 0;
  if (status == SB_OK && message_id == NULL) message_id = "msg";
  free(in->message_id);
  in->message_id = status == SB_OK ? strdup(message_id) : NULL;
  if (th->created) in->done(in->arg, status, status == SB_OK ? message_id : NULL, status == SB_OK && duplicate);
  testhost_run(th);
  return SB_OK;
}

size_t testhost_commit_all(testhost *th) {
  size_t n = 0;
  for (size_t i = 0; th != NULL && i < th->inbound.count; i++) {
    testhost__inbound *in = th->inbound.items[i];
    if (!in->pending) continue;
    const char *first = NULL;
    for (size_t j = 0; j < i && first == NULL; j++) {
      testhost__inbound *prev = th->inbound.items[j];
      if (prev->message_id != NULL && strcmp(prev->msg.external_id, in->msg.external_id) == 0) {
        first = prev->message_id;
      }
    }
    char id[32];
    if (first == NULL) snprintf(id, sizeof(id), "msg-%u", ++th->next_message);
    testhost_inbound_complete(th, i, SB_OK, first != NULL ? first : id, first != NULL);
    n++;
  }
  return n;
}

void testhost_autocommit(testhost *th, int on) {
  if (th != NULL) th->autocommit = on != 0;
}

/* --- records ------------------------------------------------------------------ */

size_t testhost_status_count(const testhost *th) { return th != NULL ? th->statuses.count : 0; }

const sb_status_update *testhost_status_at(const testhost *th, size_t index) {
  return th != NULL && index < th->statuses.count ? th->statuses.items[index] : NULL;
}

uint32_t testhost_state(const testhost *th) { return th != NULL ? th->state : 0; }
size_t testhost_state_count(const testhost *th) { return th != NULL ? th->states.count : 0; }

uint32_t testhost_state_at(const testhost *th, size_t index, const char **reason) {
  if (th == NULL || index >= th->states.count) return 0;
  const testhost__state *s = th->states.items[index];
  if (reason != NULL) *reason = s->reason;
  return s->state;
}

size_t testhost_log_count(const testhost *th) { return th != NULL ? th->logs.count : 0; }

const char *testhost_log_at(const testhost *th, size_t index, int *level) {
  if (th == NULL || index >= th->logs.count) return NULL;
  const testhost__log *l = th->logs.items[index];
  if (level != NULL) *level = l->level;
  return l->line;
}

int testhost_log_find(const testhost *th, const char *text) {
  for (size_t i = 0; th != NULL && text != NULL && i < th->logs.count; i++) {
    if (strstr(((testhost__log *)th->logs.items[i])->line, text) != NULL) return 1;
  }
  return 0;
}

void testhost_log_echo(testhost *th, int on) {
  if (th != NULL) th->log_echo = on != 0;
}

size_t testhost_misuse_count(const testhost *th) { return th != NULL ? th->misuse.count : 0; }

const char *testhost_misuse_at(const testhost *th, size_t index) {
  return th != NULL && index < th->misuse.count ? th->misuse.items[index] : NULL;
}

void testhost_clear_records(testhost *th) {
  if (th == NULL) return;
  testhost__vec_free(&th->statuses, testhost__status_free);
  testhost__vec_free(&th->states, testhost__state_free);
  testhost__vec_free(&th->logs, testhost__log_free);
  testhost__vec_free(&th->misuse, free);
  testhost__loop_clear(th);
  size_t o = 0;
  for (size_t i = 0; i < th->inbound.count; i++) {
    testhost__inbound *in = th->inbound.items[i];
    if (in->pending) {
      th->inbound.items[o++] = in;
    } else {
      testhost__inbound_free(in);
    }
  }
  th->inbound.count = o;
  o = 0;
  for (size_t i = 0; i < th->replies.count; i++) {
    struct sb_responder *r = th->replies.items[i];
    if (r->reply.answered || !th->created) {
      testhost__responder_free(r);
    } else {
      th->replies.items[o++] = r;
    }
  }
  th->replies.count = o;
  o = 0;
  for (size_t i = 0; i < th->sends.count; i++) {
    struct sb_send_op *op = th->sends.items[i];
    if (op->result.completions > 0 || op->result.rc != SB_OK || !th->created) {
      testhost__send_free(op);
    } else {
      th->sends.items[o++] = op;
    }
  }
  th->sends.count = o;
}
