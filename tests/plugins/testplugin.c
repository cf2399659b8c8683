/* testplugin.c — a plugin that exercises every hook and every host API
 * function, driven by requests to /hooks/{channel}/{command}:
 *
 *   POST /messages     body → inbound message (X-Id header = external id,
 *                      X-Sender = sender id); 200 with the message id after commit.
 *                      With X-Attach: FILENAME (and X-Attach-Type: MIME) the body
 *                      is the content of an attachment instead of the text.
 *   POST /status       X-Id → emit_status(delivered)
 *   GET  /config?key=K config_get/config_count/config_int of K
 *   POST /kv?key=K     kv_set(K, body); 200 once durable.  GET /kv?key=K → value
 *   DELETE /kv?key=K   kv_delete
 *   GET  /timer?ms=N   answers "fired" from a timer after N ms
 *   GET  /work         answers from queue_work's done
 *   GET  /watch        answers "readable" from an fd watch on a pipe
 *   GET  /http?url=U   answers with the status of an http_request to U
 *   GET  /hmac         answers hex(HMAC-SHA256("key", "data")) and equal_ct
 *   GET  /state?s=N    set_state(N)
 *   GET  /now          now_ms
 *
 * send(): text "retry" → send_retry(1500), "fail" → send_fail, "attachment" →
 * send_ok("got N bytes of TYPE as NAME", the first attachment's), "link" /
 * "shortlink" → send_ok(a 10-minute / 1-second attachment_link to the first
 * attachment's file), "flaky" →
 * send_fail and send_ok(idempotency key) in turn (per instance), "defer" →
 * send_defer(2500) (ABI 1.2), "later" →
 * send_ok from a timer, "http" → POST to the endpoint setting, then
 * send_ok, or send_retry when the call failed or was cancelled (the
 * channel closing), anything else → send_ok("ext-" + message id).
 * connect(): setting fail_connect=true → SB_STATE_AUTH_FAILED.
 */
#include <switchboard/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tp {
  const sb_host *host;
  sb_channel *ch;
  const sb_config *cfg;
  int connects;
  int flaky_sends; /* text "flaky": refused, then sent, in turn */
} tp;

typedef struct tp_pending {
  tp *t;
  sb_responder *r;
  int fds[2];
  sb_watch *watch;
  sb_send_op *op;
  char text[128];
} tp_pending;

static const char *const tp_modes[] = {"fast", "slow", NULL};

static const sb_field tp_schema[] = {
    {"token", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Token", "A secret.", NULL},
    {"endpoint", SB_FIELD_URL, 0, "http://127.0.0.1:9/out", "Endpoint", "Where replies go.", NULL},
    {"retries", SB_FIELD_INT, 0, "3", "Retries", "How many.", NULL},
    {"verbose", SB_FIELD_BOOL, 0, "false", "Verbose", "Log more.", NULL},
    {"poll_interval", SB_FIELD_DURATION, 0, "30s", "Poll interval", "How often.", NULL},
    {"mode", SB_FIELD_ENUM, 0, "fast", "Mode", "Fast or slow.", tp_modes},
    {"tags", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Tags", "Labels.", NULL},
    {"fail_connect", SB_FIELD_BOOL, 0, "false", "Fail connect", "Report auth failure on connect.", NULL},
    SB_FIELD_END,
};

static int tp_reply(tp *t, sb_responder *r, int status, const char *body) {
  return t->host->respond(r, status, NULL, 0, body, strlen(body));
}

static tp_pending *tp_pending_new(tp *t, sb_responder *r) {
  tp_pending *p = calloc(1, sizeof(*p));
  if (p != NULL) {
    p->t = t;
    p->r = r;
    p->fds[0] = p->fds[1] = -1;
  }
  return p;
}

static int tp_validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  const char *mode = host->config_get(cfg, "mode");
  if (mode != NULL && strcmp(mode, "slow") == 0 && host->config_int(cfg, "retries", 0) > 10) {
    snprintf(err, errlen, "setting \"retries\" must be at most 10 in slow mode");
    return SB_EINVAL;
  }
  return SB_OK;
}

static int tp_create(const sb_host *host, sb_channel *ch, const sb_config *cfg, void **instance, char *err,
                     size_t errlen) {
  const char *token = host->config_get(cfg, "token");
  if (token != NULL && strcmp(token, "refuse-create") == 0) { /* a plugin that refuses what validate let by */
    snprintf(err, errlen, "the service does not know this account");
    return SB_EINVAL;
  }
  tp *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
  }
  t->host = host;
  t->ch = ch;
  t->cfg = cfg;
  *instance = t;
  host->log(ch, SB_LOG_INFO, "created for channel %s", host->channel_name(ch));
  return SB_OK;
}

static int tp_connect(void *instance) {
  tp *t = instance;
  t->connects++;
  if (t->host->config_int(t->cfg, "fail_connect", 0)) {
    t->host->set_state(t->ch, SB_STATE_AUTH_FAILED, "the service refused the token");
  } else {
    t->host->set_state(t->ch, SB_STATE_CONNECTED, NULL);
  }
  return SB_OK;
}

static void tp_stored(void *arg, int status, const char *message_id, int duplicate) {
  tp_pending *p = arg;
  char body[128];
  if (status == SB_OK) {
    snprintf(body, sizeof(body), "{\"message_id\":\"%s\",\"duplicate\":%s}", message_id,
             duplicate ? "true" : "false");
    tp_reply(p->t, p->r, 200, body);
  } else {
    snprintf(body, sizeof(body), "not stored: %d", status);
    tp_reply(p->t, p->r, 503, body);
  }
  free(p);
}

static int tp_messages(tp *t, const sb_http_request *req, sb_responder *r) {
  const char *id = t->host->http_header(req, "X-Id");
  const char *sender = t->host->http_header(req, "X-Sender");
  tp_pending *p = tp_pending_new(t, r);
  if (p == NULL) return SB_ENOMEM;
  char *text = strndup(req->body != NULL ? req->body : "", req->body_len);
  sb_inbound_message m = {.struct_size = sizeof(m)};
  m.external_id = id;
  m.sender.kind = SB_IDENTITY_CUSTOM;
  m.sender.id = sender != NULL ? sender : "user-1";
  m.sender.name = "Test User";
  m.text = text;
  m.timestamp_ms = t->host->now_ms();
  sb_attachment att = {0};
  const char *attach = t->host->http_header(req, "X-Attach");
  if (attach != NULL) {
    att.filename = attach;
    att.mime_type = t->host->http_header(req, "X-Attach-Type");
    att.data = req->body != NULL ? req->body : "";
    att.data_len = req->body_len;
    att.size = req->body_len;
    m.attachments = &att;
    m.attachment_count = 1;
    m.text = "(attached)";
  }
  int rc = t->host->emit_inbound(t->ch, &m, tp_stored, p);
  free(text);
  if (rc != SB_OK) {
    free(p);
    char body[64];
    snprintf(body, sizeof(body), "refused: %d", rc);
    return tp_reply(t, r, 400, body);
  }
  return SB_OK;
}

static void tp_kv_durable(void *arg, int status) {
  tp_pending *p = arg;
  tp_reply(p->t, p->r, status == SB_OK ? 200 : 500, status == SB_OK ? "stored" : "failed");
  free(p);
}

static int tp_kv(tp *t, const sb_http_request *req, sb_responder *r) {
  char key[256];
  if (t->host->http_query(req, "key", key, sizeof(key)) < 0) return tp_reply(t, r, 400, "key?");
  if (strcmp(req->method, "GET") == 0) {
    size_t len = 0;
    const char *v = t->host->kv_get(t->ch, key, &len);
    if (v == NULL) return tp_reply(t, r, 404, "absent");
    return t->host->respond(r, 200, NULL, 0, v, len);
  }
  if (strcmp(req->method, "DELETE") == 0) {
    int rc = t->host->kv_delete(t->ch, key, NULL, NULL);
    return tp_reply(t, r, rc == SB_OK ? 200 : 500, rc == SB_OK ? "deleted" : "failed");
  }
  tp_pending *p = tp_pending_new(t, r);
  if (p == NULL) return SB_ENOMEM;
  int rc = t->host->kv_set(t->ch, key, req->body, req->body_len, tp_kv_durable, p);
  if (rc != SB_OK) {
    free(p);
    return tp_reply(t, r, rc == SB_EFBIG ? 413 : 400, "refused");
  }
  return SB_OK;
}

static void tp_timer_fired(void *arg) {
  tp_pending *p = arg;
  tp_reply(p->t, p->r, 200, "fired");
  free(p);
}

static void tp_work(void *arg) {
  tp_pending *p = arg;
  usleep(10000); /* blocking is allowed here, on the pool */
  snprintf(p->text, sizeof(p->text), "work done");
}

static void tp_work_done(void *arg, int status) {
  tp_pending *p = arg;
  tp_reply(p->t, p->r, status == SB_OK ? 200 : 500, p->text);
  free(p);
}

static void tp_readable(void *arg, int fd, uint32_t events, int status) {
  tp_pending *p = arg;
  char c;
  if (read(fd, &c, 1) != 1 || !(events & SB_WATCH_READABLE) || status != SB_OK) {
    tp_reply(p->t, p->r, 500, "watch failed");
  } else {
    tp_reply(p->t, p->r, 200, "readable");
  }
  p->t->host->watch_stop(p->watch);
  close(p->fds[0]);
  close(p->fds[1]);
  free(p);
}

static void tp_http_done(void *arg, const sb_http_client_response *res) {
  tp_pending *p = arg;
  char body[256];
  snprintf(body, sizeof(body), "status=%d http=%d error=%s", res->status, res->http_status,
           res->error != NULL ? res->error : "");
  tp_reply(p->t, p->r, 200, body);
  free(p);
}

static int tp_async(tp *t, const char *cmd, const sb_http_request *req, sb_responder *r) {
  tp_pending *p = tp_pending_new(t, r);
  if (p == NULL) return SB_ENOMEM;
  char arg[512];
  int ok = 0;
  if (strcmp(cmd, "/timer") == 0) {
    long ms = t->host->http_query(req, "ms", arg, sizeof(arg)) > 0 ? atol(arg) : 1;
    ok = t->host->timer_start(t->ch, (uint64_t)ms, 0, tp_timer_fired, p) != NULL;
  } else if (strcmp(cmd, "/work") == 0) {
    ok = t->host->queue_work(t->ch, tp_work, tp_work_done, p) == SB_OK;
  } else if (strcmp(cmd, "/watch") == 0) {
    if (pipe(p->fds) == 0) {
      p->watch = t->host->watch_fd(t->ch, p->fds[0], SB_WATCH_READABLE, tp_readable, p);
      ok = p->watch != NULL && write(p->fds[1], "x", 1) == 1;
    }
  } else if (strcmp(cmd, "/http") == 0 && t->host->http_query(req, "url", arg, sizeof(arg)) > 0) {
    sb_http_header h = {"X-Test", "1"};
    sb_http_client_request hr = {.struct_size = sizeof(hr), .method = "POST", .url = arg, .headers = &h,
                                 .header_count = 1, .body = "ping", .body_len = 4, .timeout_ms = 2000};
    ok = t->host->http_request(t->ch, &hr, tp_http_done, p) != NULL;
  }
  if (!ok) {
    free(p);
    return tp_reply(t, r, 500, "could not start");
  }
  return SB_OK;
}

static int tp_receive(void *instance, const sb_http_request *req, sb_responder *r) {
  tp *t = instance;
  const char *cmd = req->subpath;
  char body[512], arg[256];
  if (strcmp(cmd, "/messages") == 0) return tp_messages(t, req, r);
  if (strcmp(cmd, "/kv") == 0) return tp_kv(t, req, r);
  if (strcmp(cmd, "/status") == 0) {
    sb_status_update u = {.struct_size = sizeof(u), .status = SB_STATUS_DELIVERED,
                          .external_id = t->host->http_header(req, "X-Id")};
    int rc = t->host->emit_status(t->ch, &u);
    return tp_reply(t, r, rc == SB_OK ? 200 : 400, rc == SB_OK ? "ok" : "refused");
  }
  if (strcmp(cmd, "/config") == 0) {
    if (t->host->http_query(req, "key", arg, sizeof(arg)) < 0) return tp_reply(t, r, 400, "key?");
    const char *v = t->host->config_get(t->cfg, arg);
    size_t n = t->host->config_count(t->cfg, arg);
    const char *last = n > 0 ? t->host->config_get_at(t->cfg, arg, n - 1) : NULL;
    snprintf(body, sizeof(body), "value=%s count=%zu last=%s int=%lld", v ? v : "(null)", n, last ? last : "(null)",
             (long long)t->host->config_int(t->cfg, arg, -1));
    return tp_reply(t, r, 200, body);
  }
  if (strcmp(cmd, "/hmac") == 0) {
    uint8_t mac[32], again[32];
    t->host->hmac_sha256("key", 3, "data", 4, mac);
    t->host->hmac_sha256("key", 3, "data", 4, again);
    int n = 0;
    for (int i = 0; i < 32; i++) n += snprintf(body + n, sizeof(body) - (size_t)n, "%02x", mac[i]);
    again[0] ^= 1;
    snprintf(body + n, sizeof(body) - (size_t)n, " same=%d differs=%d", t->host->equal_ct(mac, mac, 32),
             !t->host->equal_ct(mac, again, 32));
    return tp_reply(t, r, 200, body);
  }
  if (strcmp(cmd, "/state") == 0) {
    uint32_t s = t->host->http_query(req, "s", arg, sizeof(arg)) > 0 ? (uint32_t)atoi(arg) : SB_STATE_CONNECTED;
    t->host->set_state(t->ch, s, "requested by test");
    return tp_reply(t, r, 200, "ok");
  }
  if (strcmp(cmd, "/now") == 0) {
    snprintf(body, sizeof(body), "%lld", (long long)t->host->now_ms());
    return tp_reply(t, r, 200, body);
  }
  if (strcmp(cmd, "/refuse") == 0) return SB_EINVAL;
  if (strcmp(cmd, "/timer") == 0 || strcmp(cmd, "/work") == 0 || strcmp(cmd, "/watch") == 0 ||
      strcmp(cmd, "/http") == 0) {
    return tp_async(t, cmd, req, r);
  }
  return tp_reply(t, r, 404, "unknown command");
}

static void tp_send_later(void *arg) {
  tp_pending *p = arg;
  p->t->host->send_ok(p->op, p->text);
  free(p);
}

static void tp_send_http_done(void *arg, const sb_http_client_response *res) {
  tp_pending *p = arg;
  if (res->status == SB_OK)
    p->t->host->send_ok(p->op, p->text);
  else
    p->t->host->send_retry(p->op, 0, res->status == SB_ECANCELED ? "the channel closed" : "the call failed");
  free(p);
}

static int tp_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
  tp *t = instance;
  const char *text = msg->text != NULL ? msg->text : "";
  t->host->log(t->ch, SB_LOG_DEBUG, "send %s attempt %u", msg->message_id, (unsigned)msg->attempt);
  if (strcmp(text, "retry") == 0) {
    t->host->send_retry(op, 1500, "the service is busy");
  } else if (strcmp(text, "fail") == 0) {
    t->host->send_fail(op, "the recipient blocked the page");
  } else if (strcmp(text, "attachment") == 0) { /* says what the host handed over of the first attachment */
    char ext[300];
    const sb_attachment *a = msg->attachment_count > 0 ? &msg->attachments[0] : NULL;
    snprintf(ext, sizeof(ext), "got %zu bytes of %s as %s", a != NULL ? a->data_len : 0,
             a != NULL && a->mime_type != NULL ? a->mime_type : "-", a != NULL && a->filename != NULL ? a->filename : "-");
    t->host->send_ok(op, ext);
  } else if (strcmp(text, "link") == 0 || strcmp(text, "shortlink") == 0) {
    /* send_ok(a link to the first attachment's stored file: 10 minutes, or 1 second) */
    const char *url = msg->attachment_count > 0 ? msg->attachments[0].url : NULL;
    const char *slash = url != NULL ? strrchr(url, '/') : NULL;
    char link[160];
    int n = SB_HOST_HAS(t->host, attachment_link) && slash != NULL
                ? t->host->attachment_link(t->ch, strtoll(slash + 1, NULL, 10), text[0] == 's' ? 1 : 600, link,
                                           sizeof(link))
                : SB_ENOTSUP;
    if (n > 0)
      t->host->send_ok(op, link);
    else
      t->host->send_fail(op, "no link");
  } else if (strcmp(text, "flaky") == 0) {
    if (t->flaky_sends++ % 2 == 0)
      t->host->send_fail(op, "the service refused it this time");
    else
      t->host->send_ok(op, msg->idempotency_key);
  } else if (strcmp(text, "defer") == 0 && SB_HOST_HAS(t->host, send_defer)) {
    t->host->send_defer(op, 2500, "waiting for the customer's consent");
  } else if (strcmp(text, "http") == 0) {
    tp_pending *p = tp_pending_new(t, NULL);
    if (p == NULL) return SB_ENOMEM;
    p->op = op;
    snprintf(p->text, sizeof(p->text), "ext-%s", msg->message_id);
    sb_http_client_request hr = {.struct_size = sizeof(hr), .method = "POST",
                                 .url = t->host->config_get(t->cfg, "endpoint"), .body = "x", .body_len = 1};
    if (t->host->http_request(t->ch, &hr, tp_send_http_done, p) == NULL) {
      free(p);
      return SB_EIO;
    }
  } else if (strcmp(text, "later") == 0) {
    tp_pending *p = tp_pending_new(t, NULL);
    if (p == NULL) return SB_ENOMEM;
    p->op = op;
    snprintf(p->text, sizeof(p->text), "ext-%s", msg->message_id);
    if (t->host->timer_start(t->ch, 5, 0, tp_send_later, p) == NULL) {
      free(p);
      return SB_ENOMEM;
    }
  } else {
    char ext[128];
    snprintf(ext, sizeof(ext), "ext-%s", msg->message_id);
    t->host->send_ok(op, ext);
  }
  return SB_OK;
}

static void tp_disconnect(void *instance) {
  tp *t = instance;
  t->host->log(t->ch, SB_LOG_INFO, "disconnect after %d connects", t->connects);
}

static void tp_destroy(void *instance) { free(instance); }

static const sb_plugin tp_plugin = {
    SB_PLUGIN_INIT,
    .id = "testplugin",
    .name = "Test plugin",
    .publisher = "Switchboard tests",
    .version = "1.0.0",
    .description = "Exercises every hook and host function.",
    .credentials = tp_schema,
    .caps = {.thread_model = SB_THREAD_PER_CONTACT,
             .flags = SB_CAP_REPLY_TO | SB_CAP_DELIVERY_RECEIPTS | SB_CAP_ATTACHMENTS,
             .max_attachments = 4,
             .max_attachment_bytes = 1024 * 1024,
             .window_seconds = 86400},
    .validate = tp_validate,
    .create = tp_create,
    .connect = tp_connect,
    .receive = tp_receive,
    .send = tp_send,
    .disconnect = tp_disconnect,
    .destroy = tp_destroy,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "needs plugin ABI %d", SB_ABI_MAJOR);
    return SB_EVERSION;
  }
  *out = &tp_plugin;
  return SB_OK;
}
