/* testhost.c — the stub test host's sb_host table: logging, state, inbound
 * and status records, respond, request helpers, send completions, HMAC. */
#include "testhost_impl.h"

#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>



/* --- small helpers ------------------------------------------------------ */

int testhost__vec_push(testhost__vec *v, void *item) {
  if (v->count == v->cap) {
    size_t cap = v->cap == 0 ? 8 : v->cap * 2;
    void **items = realloc(v->items, cap * sizeof(*items));
    if (items == NULL) return SB_ENOMEM;
    v->items = items;
    v->cap = cap;
  }
  v->items[v->count++] = item;
  return SB_OK;
}

void testhost__vec_free(testhost__vec *v, void (*free_item)(void *)) {
  for (size_t i = 0; free_item != NULL && i < v->count; i++) free_item(v->items[i]);
  free(v->items);
  memset(v, 0, sizeof(*v));
}

char *testhost__strdup(const char *s) { return s != NULL ? strdup(s) : NULL; }

void testhost__headers_free(sb_http_header *h, size_t n) {
  for (size_t i = 0; h != NULL && i < n; i++) {
    free((char *)h[i].name);
    free((char *)h[i].value);
  }
  free(h);
}

sb_http_header *testhost__headers_dup(const sb_http_header *h, size_t n) {
  sb_http_header *out = calloc(n > 0 ? n : 1, sizeof(*out));
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    out[i].name = strdup(h[i].name != NULL ? h[i].name : "");
    out[i].value = strdup(h[i].value != NULL ? h[i].value : "");
    if (out[i].name == NULL || out[i].value == NULL) {
      testhost__headers_free(out, i + 1);
      return NULL;
    }
  }
  return out;
}

void testhost__misuse(testhost *th, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "testhost: plugin \"%s\" misuse: %s\n", th->desc.id, line);
  char *copy = strdup(line);
  if (copy != NULL && testhost__vec_push(&th->misuse, copy) != 0) free(copy);
}

/* --- host functions: logging, config, state, messages ------------------- */

/* Replaces every SECRET credential value in line by "***". */
static void testhost__redact(const testhost *th, char *line) {
  const sb_config *c = th->config;
  for (size_t i = 0; c != NULL && i < c->count; i++) {
    if (!(c->values[i].field->flags & SB_FIELD_SECRET)) continue;
    for (size_t j = 0; j < c->values[i].count; j++) {
      const char *secret = c->values[i].texts[j];
      size_t n = strlen(secret);
      char *p;
      if (n < 3) continue; /* too short to hide without mangling the line */
      while ((p = strstr(line, secret)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + n, strlen(p + n) + 1);
      }
    }
  }
}

static void testhost__log_line(sb_channel *ch, int level, const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt != NULL ? fmt : "(null)", ap);
  va_end(ap);
  if (ch == NULL) {
    fprintf(stderr, "testhost: plugin log: %s\n", line);
    return;
  }
  /* log is thread-safe in the ABI: a plugin's own threads may call it. */
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  testhost *th = ch->th;
  pthread_mutex_lock(&lock);
  testhost__redact(th, line);
  if (th->log_echo) fprintf(stderr, "testhost: [%s] %d %s\n", th->desc.id, level, line);
  testhost__log *l = malloc(sizeof(*l));
  if (l != NULL) {
    l->level = level;
    if ((l->line = strdup(line)) == NULL || testhost__vec_push(&th->logs, l) != 0) {
      free(l->line);
      free(l);
    }
  }
  pthread_mutex_unlock(&lock);
}

static const char *testhost__channel_name(const sb_channel *ch) { return ch != NULL ? ch->th->channel_name : NULL; }

static void testhost__set_state(sb_channel *ch, uint32_t state, const char *reason) {
  if (ch == NULL) return;
  testhost *th = ch->th;
  if (state < SB_STATE_CONNECTING || (state > SB_STATE_RATE_LIMITED && state < SB_STATE_AUTH_FAILED) ||
      state > SB_STATE_CONFIG_ERROR) {
    testhost__misuse(th, "set_state with unknown state %u", (unsigned)state);
    return;
  }
  testhost__state *s = calloc(1, sizeof(*s));
  if (s == NULL) return;
  s->state = state;
  s->reason = testhost__strdup(reason);
  if (testhost__vec_push(&th->states, s) != 0) {
    free(s->reason);
    free(s);
    return;
  }
  th->state = state;
}

void testhost__inbound_free(void *p) {
  testhost__inbound *in = p;
  sb_inbound_message *m = &in->msg;
  free((char *)m->external_id);
  free((char *)m->external_thread_id);
  free((char *)m->reply_to_external_id);
  free((char *)m->sender.id);
  free((char *)m->sender.name);
  free((char *)m->sender.email);
  free((char *)m->sender.phone);
  free((char *)m->sender.avatar_url);
  free((char *)m->subject);
  free((char *)m->text);
  free((char *)m->html);
  free((char *)m->metadata_json);
  for (size_t i = 0; i < m->attachment_count; i++) {
    sb_attachment *a = (sb_attachment *)&m->attachments[i];
    free((char *)a->url);
    free((char *)a->mime_type);
    free((char *)a->filename);
    free((char *)a->content_id);
    free((char *)a->data);
  }
  free((void *)m->attachments);
  free(in->message_id);
  free(in);
}

/* Deep-copies a message; returns 0 or SB_ENOMEM (in is freed by the caller). */
static int testhost__inbound_copy(testhost__inbound *in, const sb_inbound_message *src) {
  sb_inbound_message *m = &in->msg;
  memset(m, 0, sizeof(*m));
  memcpy(m, src, src->struct_size < sizeof(*m) ? src->struct_size : sizeof(*m));
  m->struct_size = sizeof(*m);
  const char **strs[] = {&m->external_id, &m->external_thread_id, &m->reply_to_external_id, &m->sender.id,
                         &m->sender.name, &m->sender.email, &m->sender.phone, &m->sender.avatar_url,
                         &m->subject, &m->text, &m->html, &m->metadata_json};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) *strs[i] = NULL;
  const char *orig[] = {src->external_id, src->external_thread_id, src->reply_to_external_id, src->sender.id,
                        src->sender.name, src->sender.email, src->sender.phone, src->sender.avatar_url,
                        src->subject, src->text, src->html,
                        src->struct_size > offsetof(sb_inbound_message, metadata_json) ? src->metadata_json : NULL};
  const sb_attachment *atts = m->attachments;
  size_t natt = m->attachment_count;
  m->attachments = NULL;
  m->attachment_count = 0;
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
    if (orig[i] != NULL && (*strs[i] = strdup(orig[i])) == NULL) return SB_ENOMEM;
  }
  if (natt == 0) return SB_OK;
  sb_attachment *copy = calloc(natt, sizeof(*copy));
  if (copy == NULL) return SB_ENOMEM;
  m->attachments = copy;
  m->attachment_count = natt;
  for (size_t i = 0; i < natt; i++) {
    copy[i] = atts[i];
    copy[i].url = testhost__strdup(atts[i].url);
    copy[i].mime_type = testhost__strdup(atts[i].mime_type);
    copy[i].filename = testhost__strdup(atts[i].filename);
    copy[i].content_id = testhost__strdup(atts[i].content_id);
    copy[i].data = NULL;
    if (atts[i].data != NULL) {
      char *d = malloc(atts[i].data_len + 1);
      if (d == NULL) return SB_ENOMEM;
      memcpy(d, atts[i].data, atts[i].data_len);
      d[atts[i].data_len] = '\0';
      copy[i].data = d;
    }
  }
  return SB_OK;
}

static void testhost__autocommit(testhost *th, void *a, void *b, int status) { testhost_commit_all(th); }

static int testhost__emit_inbound(sb_channel *ch, const sb_inbound_message *message, sb_inbound_done_fn done,
                                  void *arg) {
  if (ch == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  const char *why = NULL;
  if (th->disconnected) {
    testhost__misuse(th, "emit_inbound called after disconnect");
    return SB_ECANCELED;
  }
  if (message == NULL || done == NULL) {
    why = "no message or no done callback";
  } else if (message->struct_size < offsetof(sb_inbound_message, metadata_json)) {
    why = "struct_size is too small (set it with sizeof)";
  } else if (message->external_id == NULL || message->external_id[0] == '\0') {
    why = "it has no external_id";
  } else if (message->sender.id == NULL || message->sender.id[0] == '\0') {
    why = "its sender has no id";
  } else if (th->desc.caps.thread_model == SB_THREAD_EXTERNAL &&
             (message->external_thread_id == NULL || message->external_thread_id[0] == '\0')) {
    why = "it has no external_thread_id and the plugin declares external threads";
  } else if (message->sender.kind > SB_IDENTITY_VISITOR) {
    why = "its sender kind is unknown";
  } else if (message->attachment_count > 0 && message->attachments == NULL) {
    why = "it counts attachments but gives none";
  }
  if (why != NULL) {
    char line[256];
    snprintf(line, sizeof(line), "inbound message refused: %s", why);
    testhost__log_line(ch, SB_LOG_WARN, "%s", line);
    return SB_EINVAL;
  }
  testhost__inbound *in = calloc(1, sizeof(*in));
  if (in == NULL) return SB_ENOMEM;
  if (testhost__inbound_copy(in, message) != 0 || testhost__vec_push(&th->inbound, in) != 0) {
    testhost__inbound_free(in);
    return SB_ENOMEM;
  }
  in->done = done;
  in->arg = arg;
  in->pending = 1;
  if (th->autocommit) testhost__defer(th, testhost__autocommit, NULL, NULL, 0);
  return SB_OK;
}

void testhost__status_free(void *p) {
  sb_status_update *u = p;
  free((char *)u->external_id);
  free((char *)u->recipient_id);
  free((char *)u->error);
  free(u);
}

static int testhost__emit_status(sb_channel *ch, const sb_status_update *update) {
  if (ch == NULL || update == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  if (th->disconnected) {
    testhost__misuse(th, "emit_status called after disconnect");
    return SB_ECANCELED;
  }
  if (update->struct_size < offsetof(sb_status_update, recipient_kind)) return SB_EINVAL;
  if (update->status < SB_STATUS_SENT || update->status > SB_STATUS_FAILED) return SB_EINVAL;
  if ((update->flags & SB_STATUS_WATERMARK) ? update->recipient_id == NULL : update->external_id == NULL) {
    return SB_EINVAL;
  }
  sb_status_update *u = calloc(1, sizeof(*u));
  if (u == NULL) return SB_ENOMEM;
  memcpy(u, update, update->struct_size < sizeof(*u) ? update->struct_size : sizeof(*u));
  u->struct_size = sizeof(*u);
  u->external_id = testhost__strdup(update->external_id);
  u->recipient_id = testhost__strdup(update->recipient_id);
  u->error = testhost__strdup(update->error);
  if (testhost__vec_push(&th->statuses, u) != 0) {
    testhost__status_free(u);
    return SB_ENOMEM;
  }
  return SB_OK;
}

/* --- host functions: requests and sends --------------------------------- */

int testhost__fill_reply(testhost_reply *r, int status, const sb_http_header *headers, size_t n,
                                const char *body, size_t len) {
  r->answered = 1;
  r->status = status;
  if (n > 0 && (r->headers = testhost__headers_dup(headers, n)) == NULL) return SB_ENOMEM;
  r->header_count = r->headers != NULL ? n : 0;
  if ((r->body = malloc(len + 1)) == NULL) return SB_ENOMEM;
  if (len > 0) memcpy(r->body, body, len);
  r->body[len] = '\0';
  r->body_len = len;
  return SB_OK;
}

static int testhost__respond(sb_responder *rs, int status, const sb_http_header *headers, size_t header_count,
                             const char *body, size_t body_len) {
  if (rs == NULL) return SB_EINVAL;
  testhost *th = rs->th;
  testhost_reply *r = &rs->reply;
  if (status < 100 || status > 599 || (header_count > 0 && headers == NULL) || (body_len > 0 && body == NULL)) {
    testhost__misuse(th, "respond with an invalid status %d, headers or body", status);
    return SB_EINVAL;
  }
  r->answers++;
  if (r->answered) {
    testhost__misuse(th, "respond called twice for one request (the second answer, %d, is ignored)", status);
    return SB_EINVAL;
  }
  return testhost__fill_reply(r, status, headers, header_count, body, body_len);
}

static const char *testhost__http_header(const sb_http_request *req, const char *name) {
  for (size_t i = 0; req != NULL && name != NULL && i < req->header_count; i++) {
    if (req->headers[i].name != NULL && strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
  }
  return NULL;
}

static int testhost__hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int testhost__http_query(const sb_http_request *req, const char *name, char *buf, size_t buflen) {
  if (req == NULL || name == NULL || buf == NULL || buflen == 0 || req->query == NULL) return -1;
  size_t nlen = strlen(name);
  for (const char *p = req->query; *p != '\0';) {
    const char *end = strchr(p, '&');
    size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', plen);
    size_t klen = eq != NULL ? (size_t)(eq - p) : plen;
    if (klen == nlen && strncmp(p, name, nlen) == 0) {
      const char *v = eq != NULL ? eq + 1 : p + plen;
      size_t vlen = (size_t)(p + plen - v), o = 0;
      for (size_t i = 0; i < vlen; i++) {
        char c = v[i];
        if (c == '+') {
          c = ' ';
        } else if (c == '%' && i + 2 < vlen && testhost__hexval(v[i + 1]) >= 0 &&
                   testhost__hexval(v[i + 2]) >= 0) {
          c = (char)(testhost__hexval(v[i + 1]) * 16 + testhost__hexval(v[i + 2]));
          i += 2;
        }
        if (o + 1 >= buflen) return -1;
        buf[o++] = c;
      }
      buf[o] = '\0';
      return (int)o;
    }
    if (end == NULL) break;
    p = end + 1;
  }
  return -1;
}

static void testhost__complete(sb_send_op *op, int outcome, const char *text, uint32_t retry_after_ms) {
  if (op == NULL) return;
  testhost *th = op->th;
  testhost_send_result *r = &op->result;
  static const char *const names[] = {"", "send_ok", "send_retry", "send_fail", "send_defer"};
  r->completions++;
  if (th->disconnected && !th->cancelling) {
    testhost__misuse(th, "%s called after disconnect, other than from a cancelled HTTP call's done (the host "
                     "has given up on this send)", names[outcome]);
    return;
  }
  if (r->completions > 1) {
    testhost__misuse(th, "%s called for a send that was already completed (completion %d)", names[outcome],
                     r->completions);
    return;
  }
  r->outcome = outcome;
  r->text = testhost__strdup(text);
  r->retry_after_ms = retry_after_ms;
}

static void testhost__send_ok(sb_send_op *op, const char *external_id) {
  if (op != NULL && (external_id == NULL || external_id[0] == '\0')) {
    testhost__misuse(op->th, "send_ok without an external id");
  }
  testhost__complete(op, TESTHOST_SEND_OK, external_id, 0);
}

static void testhost__send_retry(sb_send_op *op, uint32_t retry_after_ms, const char *reason) {
  testhost__complete(op, TESTHOST_SEND_RETRY, reason, retry_after_ms);
}

static void testhost__send_fail(sb_send_op *op, const char *reason) {
  testhost__complete(op, TESTHOST_SEND_FAIL, reason, 0);
}

static void testhost__send_defer(sb_send_op *op, uint32_t defer_ms, const char *reason) {
  testhost__complete(op, TESTHOST_SEND_DEFER, reason, defer_ms);
}

static void testhost__hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
                                  uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, data, data_len);
  crypto_auth_hmacsha256_final(&st, out);
}

static int testhost__equal_ct(const void *a, const void *b, size_t len) { return sodium_memcmp(a, b, len) == 0; }

void testhost_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t data_len, char out[65]) {
  uint8_t mac[32];
  testhost__hmac_sha256(key, key_len, data, data_len, mac);
  sodium_bin2hex(out, 65, mac, sizeof(mac));
}

static const sb_host testhost__table = {
    .abi = {SB_MAGIC_HOST, SB_ABI_MAJOR, SB_ABI_MINOR, (uint32_t)sizeof(sb_host), 0},
    .log = testhost__log_line,
    .now_ms = testhost__now_ms,
    .channel_name = testhost__channel_name,
    .config_get = testhost__config_get,
    .config_count = testhost__config_count,
    .config_get_at = testhost__config_get_at,
    .config_int = testhost__config_int,
    .set_state = testhost__set_state,
    .emit_inbound = testhost__emit_inbound,
    .emit_status = testhost__emit_status,
    .respond = testhost__respond,
    .http_header = testhost__http_header,
    .http_query = testhost__http_query,
    .send_ok = testhost__send_ok,
    .send_retry = testhost__send_retry,
    .send_fail = testhost__send_fail,
    .timer_start = testhost__timer_start,
    .timer_stop = testhost__timer_stop,
    .watch_fd = testhost__watch_fd,
    .watch_stop = testhost__watch_stop,
    .http_request = testhost__http_request,
    .http_cancel = testhost__http_cancel,
    .queue_work = testhost__queue_work,
    .kv_get = testhost__kv_get,
    .kv_set = testhost__kv_set,
    .kv_delete = testhost__kv_delete,
    .hmac_sha256 = testhost__hmac_sha256,
    .equal_ct = testhost__equal_ct,
    .mail_request = testhost__mail_request,
    .mail_cancel = testhost__mail_cancel,
    .send_defer = testhost__send_defer,
    .ws_send = testhost__ws_send,
    .ws_close = testhost__ws_close,
    .ws_remote_addr = testhost__ws_remote_addr,
    .history = testhost__history,
    .availability = testhost__availability,
    .send_release = testhost__send_release,
    .attachment_link = testhost__attachment_link,
};

const sb_host *testhost_host(void) { return &testhost__table; }
