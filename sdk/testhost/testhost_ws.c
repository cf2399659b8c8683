/* testhost_ws.c — the stub test host's ABI 1.3 side: simulated WebSockets
 * (handshake, messages both ways, closes from either end) and canned
 * answers for history() and availability(). */
#include "testhost_impl.h"
#include "sb_utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One simulated WebSocket: the plugin's handle and the test's record. */
struct sb_ws {
  testhost *th;
  testhost_ws rec;
  void *conn;      /* the plugin's state from ws_open */
  int closing;     /* a close was started by either end */
  int in_closed;   /* inside ws_closed: sends and closes are misuse */
};

/* One history() or availability() call waiting for its done. */
typedef struct testhost__read {
  sb_history_done_fn history_done;
  sb_availability_done_fn availability_done;
  void *arg;
  int pending;
} testhost__read;

static sb_ws *testhost__ws_of(const testhost_ws *rec) {
  return (sb_ws *)((char *)rec - offsetof(sb_ws, rec));
}

/* --- WebSockets ------------------------------------------------------------ */

/* Runs ws_closed once for an open WebSocket. */
static void testhost__ws_end(sb_ws *ws, int code) {
  testhost *th = ws->th;
  if (!ws->rec.open) return;
  ws->rec.open = 0;
  ws->closing = 1;
  ws->rec.closed_calls++;
  ws->rec.closed_code = code;
  ws->in_closed = 1;
  th->desc.ws_closed(th->instance, ws, ws->conn, code);
  ws->in_closed = 0;
}

static void testhost__ws_end_deferred(testhost *th, void *a, void *b, int code) { testhost__ws_end(a, code); }

int testhost__ws_send(sb_ws *ws, uint32_t kind, const char *data, size_t len) {
  if (ws == NULL || (kind != SB_WS_TEXT && kind != SB_WS_BINARY) || (len > 0 && data == NULL)) return SB_EINVAL;
  if (ws->in_closed) {
    testhost__misuse(ws->th, "ws_send inside ws_closed (the WebSocket is over)");
    return SB_ENOENT;
  }
  if (ws->closing || !ws->rec.open) return SB_ENOENT;
  if (kind == SB_WS_TEXT && !sb_utf8_valid(data, len)) return SB_EINVAL;
  testhost_ws_msg *grown = realloc(ws->rec.sent, (ws->rec.sent_count + 1) * sizeof(*grown));
  if (grown == NULL) return SB_ENOMEM;
  ws->rec.sent = grown;
  char *copy = malloc(len + 1);
  if (copy == NULL) return SB_ENOMEM;
  if (len > 0) memcpy(copy, data, len);
  copy[len] = '\0';
  grown[ws->rec.sent_count++] = (testhost_ws_msg){kind, copy, len};
  return SB_OK;
}

void testhost__ws_close(sb_ws *ws, int code, const char *reason) {
  if (ws == NULL) return;
  if (ws->in_closed) {
    testhost__misuse(ws->th, "ws_close inside ws_closed (the WebSocket is over)");
    return;
  }
  ws->rec.close_calls++;
  if (ws->closing || !ws->rec.open) return; /* idempotent */
  if (code != SB_WS_CLOSE_NORMAL && code != SB_WS_CLOSE_GOING_AWAY && code != SB_WS_CLOSE_POLICY &&
      code != SB_WS_CLOSE_TOO_BIG && (code < 4000 || code > 4999)) {
    testhost__misuse(ws->th, "ws_close with code %d: use 1000, 1001, 1008, 1009 or 4000-4999", code);
    code = SB_WS_CLOSE_NORMAL;
  }
  ws->closing = 1;
  ws->rec.close_code = code;
  free(ws->rec.close_reason);
  ws->rec.close_reason = testhost__strdup(reason != NULL ? reason : "");
  /* the peer answers the close: ws_closed follows on the loop, never inside */
  testhost__defer(ws->th, testhost__ws_end_deferred, ws, NULL, code);
}

const char *testhost__ws_remote_addr(const sb_ws *ws) { return ws != NULL ? "127.0.0.1" : NULL; }

const testhost_ws *testhost_ws_open(testhost *th, const char *target, const sb_http_header *headers,
                                    size_t header_count) {
  if (th == NULL || !th->created || th->desc.ws_open == NULL) return NULL;
  if (target == NULL) target = "";
  if (headers == NULL) header_count = 0;
  sb_ws *ws = calloc(1, sizeof(*ws));
  sb_http_header *all = calloc(header_count + 4, sizeof(*all));
  const char *q = strchr(target, '?');
  size_t sublen = q != NULL ? (size_t)(q - target) : strlen(target);
  char *subpath = malloc(sublen + 1);
  char *path = malloc(sublen + strlen(th->channel_name) + 8);
  if (ws == NULL || all == NULL || subpath == NULL || path == NULL || testhost__vec_push(&th->websockets, ws) != 0) {
    free(ws);
    free(all);
    free(subpath);
    free(path);
    return NULL;
  }
  memcpy(subpath, target, sublen);
  subpath[sublen] = '\0';
  snprintf(path, sublen + strlen(th->channel_name) + 8, "/hooks/%s%s", th->channel_name, subpath);
  for (size_t i = 0; i < header_count; i++) all[i] = headers[i];
  all[header_count] = (sb_http_header){"Upgrade", "websocket"};
  all[header_count + 1] = (sb_http_header){"Connection", "Upgrade"};
  all[header_count + 2] = (sb_http_header){"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="};
  all[header_count + 3] = (sb_http_header){"Sec-WebSocket-Version", "13"};
  sb_http_request req = {.method = "GET", .path = path, .subpath = subpath, .query = q != NULL ? q + 1 : "",
                         .headers = all, .header_count = header_count + 4, .body = "", .body_len = 0,
                         .remote_addr = "127.0.0.1"};
  ws->th = th;
  /* open while ws_open runs: the plugin may send at once */
  ws->rec.open = 1;
  void *conn = NULL;
  int rc = th->desc.ws_open(th->instance, &req, ws, &conn);
  ws->rec.rc = rc;
  if (rc == SB_OK) {
    ws->conn = conn;
    ws->rec.status = 101;
  } else {
    ws->rec.open = 0;
    ws->closing = 1;
    ws->rec.status = rc == SB_EACCES ? 403 : rc == SB_ENOENT ? 404 : rc == SB_EAGAIN ? 429 : rc == SB_EFBIG ? 413 : 400;
    if (ws->rec.sent_count > 0 || ws->rec.close_calls > 0)
      testhost__misuse(th, "ws_open refused (code %d) after using the WebSocket", rc);
  }
  free(all);
  free(subpath);
  free(path);
  testhost_run(th);
  return &ws->rec;
}

int testhost_ws_message(testhost *th, const testhost_ws *rec, uint32_t kind, const char *data, size_t len) {
  if (th == NULL || rec == NULL || (kind != SB_WS_TEXT && kind != SB_WS_BINARY)) return SB_EINVAL;
  sb_ws *ws = testhost__ws_of(rec);
  if (!ws->rec.open || ws->closing) return SB_ENOENT;
  if (data == NULL) data = "";
  if (kind == SB_WS_TEXT && !sb_utf8_valid(data, len)) {
    ws->closing = 1;
    testhost__defer(th, testhost__ws_end_deferred, ws, NULL, 1007);
    testhost_run(th);
    return SB_EINVAL;
  }
  th->desc.ws_message(th->instance, ws, ws->conn, kind, data, len);
  testhost_run(th);
  return SB_OK;
}

int testhost_ws_peer_close(testhost *th, const testhost_ws *rec, int code) {
  if (th == NULL || rec == NULL) return SB_EINVAL;
  sb_ws *ws = testhost__ws_of(rec);
  if (!ws->rec.open) return SB_ENOENT;
  ws->closing = 1;
  testhost__defer(th, testhost__ws_end_deferred, ws, NULL, code);
  testhost_run(th);
  return SB_OK;
}

size_t testhost_ws_count(const testhost *th) { return th != NULL ? th->websockets.count : 0; }

const testhost_ws *testhost_ws_at(const testhost *th, size_t index) {
  if (th == NULL || index >= th->websockets.count) return NULL;
  return &((sb_ws *)th->websockets.items[index])->rec;
}

/* --- history and availability ------------------------------------------- */

static void testhost__history_free(sb_history *h) {
  if (h == NULL) return;
  for (size_t i = 0; i < h->count; i++) {
    sb_history_message *m = (sb_history_message *)&h->messages[i];
    free((char *)m->message_id);
    free((char *)m->external_id);
    free((char *)m->text);
    free((char *)m->html);
    free((char *)m->attachments_json);
    free((char *)m->author_name);
    free((char *)m->author_avatar_url);
  }
  free((void *)h->messages);
  free((char *)h->contact_name);
  free((char *)h->owner_name);
  free((char *)h->owner_avatar_url);
  free(h);
}

int testhost_history_answer(testhost *th, const sb_history *answer) {
  if (th == NULL) return SB_EINVAL;
  sb_history *copy = NULL;
  if (answer != NULL) {
    copy = calloc(1, sizeof(*copy));
    sb_history_message *msgs = answer->count > 0 ? calloc(answer->count, sizeof(*msgs)) : NULL;
    if (copy == NULL || (answer->count > 0 && msgs == NULL)) {
      free(copy);
      free(msgs);
      return SB_ENOMEM;
    }
    *copy = *answer;
    copy->messages = msgs;
    copy->contact_name = testhost__strdup(answer->contact_name);
    copy->owner_name = testhost__strdup(answer->owner_name);
    copy->owner_avatar_url = testhost__strdup(answer->owner_avatar_url);
    for (size_t i = 0; i < answer->count; i++) {
      const sb_history_message *m = &answer->messages[i];
      msgs[i] = *m;
      msgs[i].message_id = testhost__strdup(m->message_id);
      msgs[i].external_id = testhost__strdup(m->external_id);
      msgs[i].text = testhost__strdup(m->text);
      msgs[i].html = testhost__strdup(m->html);
      msgs[i].attachments_json = testhost__strdup(m->attachments_json);
      msgs[i].author_name = testhost__strdup(m->author_name);
      msgs[i].author_avatar_url = testhost__strdup(m->author_avatar_url);
    }
  }
  testhost__history_free(th->history_answer);
  th->history_answer = copy;
  return SB_OK;
}

static void testhost__history_deliver(testhost *th, void *a, void *b, int status) {
  testhost__read *r = a;
  if (!r->pending) return;
  r->pending = 0;
  sb_history empty = {.status = SB_OK};
  sb_history h = th->history_answer != NULL ? *th->history_answer : empty;
  if (status != SB_OK) h = (sb_history){.status = status};
  r->history_done(r->arg, &h);
}

int testhost__history(sb_channel *ch, const sb_history_request *request, sb_history_done_fn done, void *arg) {
  if (ch == NULL || request == NULL || done == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  sb_history_request rq;
  memset(&rq, 0, sizeof(rq));
  memcpy(&rq, request, request->struct_size < sizeof(rq) ? request->struct_size : sizeof(rq));
  if (rq.id == NULL || rq.id[0] == '\0' || rq.limit > 200) return SB_EINVAL;
  if (th->disconnected) testhost__misuse(th, "history called after disconnect");
  sb_history_request *copy = calloc(1, sizeof(*copy));
  testhost__read *r = calloc(1, sizeof(*r));
  if (copy == NULL || r == NULL || testhost__vec_push(&th->history_requests, copy) != 0) {
    free(copy);
    free(r);
    return SB_ENOMEM;
  }
  *copy = rq;
  copy->id = testhost__strdup(rq.id);
  copy->after_message_id = testhost__strdup(rq.after_message_id);
  r->history_done = done;
  r->arg = arg;
  r->pending = 1;
  if (testhost__vec_push(&th->reads, r) != 0) {
    free(r);
    return SB_ENOMEM;
  }
  return testhost__defer(th, testhost__history_deliver, r, NULL, SB_OK);
}

size_t testhost_history_count(const testhost *th) { return th != NULL ? th->history_requests.count : 0; }

const sb_history_request *testhost_history_at(const testhost *th, size_t index) {
  if (th == NULL || index >= th->history_requests.count) return NULL;
  return th->history_requests.items[index];
}

void testhost_availability_answer(testhost *th, const sb_availability *answer) {
  if (th == NULL) return;
  th->has_availability_answer = answer != NULL;
  if (answer != NULL) th->availability_answer = *answer;
}

static void testhost__availability_deliver(testhost *th, void *a, void *b, int status) {
  testhost__read *r = a;
  if (!r->pending) return;
  r->pending = 0;
  sb_availability av = {.status = SB_OK, .typical_reply_seconds = -1};
  if (th->has_availability_answer) av = th->availability_answer;
  if (status != SB_OK) av = (sb_availability){.status = status, .typical_reply_seconds = -1};
  r->availability_done(r->arg, &av);
}

int testhost__availability(sb_channel *ch, sb_availability_done_fn done, void *arg) {
  if (ch == NULL || done == NULL) return SB_EINVAL;
  testhost *th = ch->th;
  if (th->disconnected) testhost__misuse(th, "availability called after disconnect");
  testhost__read *r = calloc(1, sizeof(*r));
  if (r == NULL || testhost__vec_push(&th->reads, r) != 0) {
    free(r);
    return SB_ENOMEM;
  }
  th->availability_requests++;
  r->availability_done = done;
  r->arg = arg;
  r->pending = 1;
  return testhost__defer(th, testhost__availability_deliver, r, NULL, SB_OK);
}

size_t testhost_availability_count(const testhost *th) { return th != NULL ? th->availability_requests : 0; }

/* --- releasing held replies ------------------------------------------------ */

int testhost__send_release(sb_channel *ch, uint32_t kind, const char *id) {
  if (ch == NULL || id == NULL || id[0] == '\0' || kind > SB_IDENTITY_VISITOR) return SB_EINVAL;
  testhost *th = ch->th;
  if (th->disconnected) testhost__misuse(th, "send_release called after disconnect");
  size_t n = strlen(id) + 1;
  testhost__release *r = malloc(sizeof(*r) + n);
  if (r == NULL) return SB_ENOMEM;
  r->kind = kind;
  memcpy(r->id, id, n);
  if (testhost__vec_push(&th->releases, r) != 0) {
    free(r);
    return SB_ENOMEM;
  }
  return SB_OK;
}

/* --- links to stored files (1.4) -------------------------------------------- */

/* The test host holds no files: the link names the id and the ttl, so a test
 * can tell what its plugin asked for (testhost.h). */
int testhost__attachment_link(sb_channel *ch, int64_t id, uint32_t ttl_s, char *buf, size_t len) {
  if (ch == NULL || buf == NULL || len == 0 || id < 1 || ttl_s == 0 || ttl_s > 604800u) return SB_EINVAL;
  if (ch->th->disconnected) testhost__misuse(ch->th, "attachment_link called after disconnect");
  int n = snprintf(buf, len, "/files/%lld?expires=%u&sig=testhost", (long long)id, (unsigned)ttl_s);
  return n > 0 && (size_t)n < len ? n : SB_EFBIG;
}

size_t testhost_release_count(const testhost *th) { return th != NULL ? th->releases.count : 0; }

const char *testhost_release_at(const testhost *th, size_t index, uint32_t *kind) {
  if (th == NULL || index >= th->releases.count) return NULL;
  const testhost__release *r = th->releases.items[index];
  if (kind != NULL) *kind = r->kind;
  return r->id;
}

/* --- the instance's end ---------------------------------------------------- */

void testhost__ws_before_destroy(testhost *th) {
  for (size_t i = 0; i < th->websockets.count; i++) testhost__ws_end(th->websockets.items[i], SB_WS_CLOSE_GOING_AWAY);
  for (size_t i = 0; i < th->reads.count; i++) {
    testhost__read *r = th->reads.items[i];
    if (!r->pending) continue;
    if (r->history_done != NULL)
      testhost__history_deliver(th, r, NULL, SB_ECANCELED);
    else
      testhost__availability_deliver(th, r, NULL, SB_ECANCELED);
  }
}

static void testhost__ws_record_free(void *p) {
  sb_ws *ws = p;
  for (size_t i = 0; i < ws->rec.sent_count; i++) free(ws->rec.sent[i].data);
  free(ws->rec.sent);
  free(ws->rec.close_reason);
  free(ws);
}

static void testhost__request_free(void *p) {
  sb_history_request *rq = p;
  free((char *)rq->id);
  free((char *)rq->after_message_id);
  free(rq);
}

void testhost__ws_free(testhost *th) {
  testhost__vec_free(&th->websockets, testhost__ws_record_free);
  testhost__vec_free(&th->reads, free);
  testhost__vec_free(&th->history_requests, testhost__request_free);
  testhost__vec_free(&th->releases, free);
  testhost__history_free(th->history_answer);
  th->history_answer = NULL;
}
