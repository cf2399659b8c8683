/* httpc.c — asynchronous HTTP (and IMAP/SMTP) client: curl easy handles on one
 * curl multi handle, driven by the libuv loop with one uv_poll per socket and
 * one uv_timer.
 *
 * Rules this file keeps, because libcurl's multi-socket API needs them:
 * - curl_multi_socket_action is called only from uv callbacks (on_poll,
 *   on_timer), never from inside a curl callback (socket_cb, timer_cb, the
 *   write/header/read callbacks), and finished transfers are collected with
 *   curl_multi_info_read right after every action.
 * - User callbacks run only outside curl: after the easy handle has been
 *   removed from the multi. They may start, cancel or close anything.
 * - A socket's uv_poll is stopped synchronously when curl says
 *   CURL_POLL_REMOVE (which curl does before it closes the fd), so a new
 *   socket that gets the same fd number can get a fresh uv_poll at once while
 *   the old handle's asynchronous uv_close is still pending. Stopping also
 *   drops any events libuv already fetched for that fd. close_socket_cb is a
 *   second line of defence for an fd closed while still watched.
 * - libcurl's SMTP send and IMAP APPEND block inside their "done" step until
 *   the server answers the end of the upload (curl issue #8555, still so in
 *   Debian 12's 7.88), and closing an IMAP/SMTP connection blocks on LOGOUT
 *   or QUIT; on the multi either would stall the loop. So every mail transfer
 *   runs with curl_easy_perform on the libuv thread pool instead, completing
 *   back on the loop. Cancelling one calls back at once and shuts its
 *   sockets down, so the worker stops promptly.
 */
#include "httpc.h"

#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTPC_MAX_HEADER_BYTES (256u * 1024u)

#ifndef SB_VERSION
#define SB_VERSION "dev"
#endif

/* One watched socket: the context curl hands back through curl_multi_assign. */
typedef struct httpc_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  httpc *c;
  struct httpc_sock *prev, *next; /* c->socks, live (not closing) ones only */
} httpc_sock;

enum call_state {
  CALL_PENDING,    /* in the multi, or queued/running on a worker */
  CALL_COMPLETING, /* its callback is running or has run */
  CALL_ORPHANED    /* worker call whose callback ran; freed when the worker ends */
};

struct httpc_call {
  httpc *c;
  CURL *easy;
  httpc_done_fn cb;
  void *arg;
  void *owner;
  uint64_t seq; /* order of creation, so cancel_owner skips calls it caused */
  enum call_state state;
  bool is_http;
  bool too_big;            /* the body passed max_body */
  bool headers_too_big;    /* the headers passed HTTPC_MAX_HEADER_BYTES */
  int sock_error;          /* a socket of it could not be watched (libuv error); failed after the action */
  bool on_worker;          /* runs via uv_queue_work, not on the multi */
  bool waiting;            /* a worker call waiting for a free worker (max_workers) */
  uint64_t deadline_ns;    /* start_ns + the whole transfer's timeout */
  bool worker_active;      /* queued or running: the worker owns easy and buffers */
  atomic_bool abort_work;  /* tells the worker's progress callback to stop */
  CURLcode worker_rc;
  long worker_code, worker_os_errno; /* read before the worker frees easy */
  /* The worker's open sockets, so a cancel can shut them down and wake a
   * curl that blocks without checking progress. Guarded by fd_lock. */
  uv_mutex_t fd_lock;
  int worker_fds[4];
  uv_work_t work;
  uint64_t start_ns;
  size_t max_body;
  struct curl_slist *req_headers;
  struct curl_slist *rcpt;
  char *req_body; /* our copy; curl reads it in place (POSTFIELDS or read_cb) */
  size_t req_body_len, req_body_off;
  char *body;
  size_t body_len, body_cap;
  httpc_header *hdrs;
  size_t n_hdrs, hdrs_cap, hdr_bytes;
  char errbuf[CURL_ERROR_SIZE];
  char server_refusal[256]; /* a mail server's last 4xx/5xx reply line, or "" */
  struct httpc_call *prev, *next; /* c->calls */
};

struct httpc {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  httpc_sock *socks;
  httpc_call *calls;
  uint64_t next_seq;
  httpc_stats stats;
  bool closing;
  int pending_closes; /* uv handles whose close callback has not run yet */
  int workers;        /* worker calls whose after-work callback has not run yet */
  int max_workers;    /* at most this many at once; the pool keeps the rest for others */
  uv_timer_t wait_timer; /* the earliest deadline of the calls waiting for a worker */
  int sock_failures;  /* pending calls with sock_error set */
  void (*close_done)(void *arg);
  void *close_arg;
};

static void worker_abort(httpc_call *call);
static void start_waiting(httpc *c);
static void on_wait_timer(uv_timer_t *t);

/* ---- lists ---------------------------------------------------------------- */

static void call_link(httpc *c, httpc_call *call) {
  call->prev = NULL;
  call->next = c->calls;
  if (c->calls != NULL) c->calls->prev = call;
  c->calls = call;
}

static void call_unlink(httpc *c, httpc_call *call) {
  if (call->prev != NULL) call->prev->next = call->next;
  else c->calls = call->next;
  if (call->next != NULL) call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

static void sock_unlink(httpc *c, httpc_sock *s) {
  if (s->prev != NULL) s->prev->next = s->next;
  else c->socks = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

/* ---- teardown ------------------------------------------------------------- */

static void finish_close(httpc *c) {
  void (*done)(void *) = c->close_done;
  void *arg = c->close_arg;
  free(c);
  curl_global_cleanup();
  if (done != NULL) done(arg);
}

static void on_handle_closed(uv_handle_t *h) {
  httpc *c;
  if (h->type == UV_POLL) {
    httpc_sock *s = h->data;
    c = s->c;
    free(s);
  } else {
    c = h->data;
  }
  c->pending_closes--;
  if (c->closing && c->pending_closes == 0 && c->workers == 0) finish_close(c);
}

/* Stops watching s at once and frees it once libuv has let go of the handle. */
static void sock_release(httpc *c, httpc_sock *s) {
  sock_unlink(c, s);
  uv_poll_stop(&s->poll);
  c->pending_closes++;
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

/* ---- completion ----------------------------------------------------------- */

static void free_call(httpc_call *call) {
  if (call->easy != NULL) curl_easy_cleanup(call->easy);
  if (call->on_worker) uv_mutex_destroy(&call->fd_lock);
  curl_slist_free_all(call->req_headers);
  curl_slist_free_all(call->rcpt);
  free(call->req_body);
  free(call->body);
  for (size_t i = 0; i < call->n_hdrs; i++) {
    free((char *)call->hdrs[i].name);
    free((char *)call->hdrs[i].value);
  }
  free(call->hdrs);
  free(call);
}

/* Takes call out of the client and the multi, runs its callback once, frees it. */
static void complete_call(httpc_call *call, int status, const char *error) {
  httpc *c = call->c;
  /* A worker still running owns the easy handle and the response buffers:
   * report the cancellation with an empty response and free the call later. */
  bool worker_busy = call->worker_active;
  call->state = worker_busy ? CALL_ORPHANED : CALL_COMPLETING;
  call_unlink(c, call);
  if (call->sock_error != 0) c->sock_failures--;
  if (worker_busy) worker_abort(call);
  if (!call->on_worker) curl_multi_remove_handle(c->multi, call->easy);

  httpc_stats *st = &c->stats;
  st->in_flight--;
  if (status == 0) st->completed++;
  else if (status == -ECANCELED) st->cancelled++;
  else if (status == -ETIMEDOUT) st->timed_out++;
  else st->failed++;
  long code = 0;
  httpc_response res = {
      .status = status,
      .error = status == 0 ? "" : error,
      .body = "",
      .total_us = (uv_hrtime() - call->start_ns) / 1000u,
      .owner = call->owner,
  };
  if (!worker_busy) st->bytes_received += call->body_len;
  /* A cancelled call reports nothing of what had arrived (httpc.h). */
  if (!worker_busy && status != -ECANCELED) {
    if (call->easy != NULL) curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
    else code = call->worker_code;
    res.code = code;
    res.headers = call->hdrs;
    res.n_headers = call->n_hdrs;
    if (call->body != NULL) res.body = call->body;
    res.body_len = call->body_len;
  }
  call->cb(call->arg, &res);
  if (!worker_busy) free_call(call);
}

static int os_errno_or(httpc_call *call, int fallback) {
  long e = call->worker_os_errno;
  if (call->easy != NULL) curl_easy_getinfo(call->easy, CURLINFO_OS_ERRNO, &e);
  return e > 0 ? -(int)e : fallback;
}

static int map_curl_error(httpc_call *call, CURLcode rc) {
  switch (rc) {
  case CURLE_OK: return 0;
  case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
  case CURLE_FILESIZE_EXCEEDED: return -EFBIG;
  case CURLE_WRITE_ERROR: return call->too_big || call->headers_too_big ? -EFBIG : -EIO;
  case CURLE_COULDNT_CONNECT: return os_errno_or(call, -ECONNREFUSED);
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
  case CURLE_LOGIN_DENIED: return -EACCES;
  case CURLE_OUT_OF_MEMORY: return -ENOMEM;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL: return -EINVAL;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_USE_SSL_FAILED: return -EPROTO;
  default: return -EIO;
  }
}

/* Completes call with the outcome of its transfer. */
static void complete_with_result(httpc_call *call, CURLcode rc) {
  int status = map_curl_error(call, rc);
  char error[CURL_ERROR_SIZE + 320];
  if (status == -EFBIG && call->headers_too_big)
    snprintf(error, sizeof(error), "response headers exceed the limit of %u bytes", HTTPC_MAX_HEADER_BYTES);
  else if (status == -EFBIG)
    snprintf(error, sizeof(error), "response exceeds the limit of %zu bytes", call->max_body);
  else if (status != 0 && call->server_refusal[0] != '\0')
    snprintf(error, sizeof(error), "%s (the server said: %s)",
             call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(rc), call->server_refusal);
  else
    snprintf(error, sizeof(error), "%s", call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(rc));
  complete_call(call, status, error);
}

/* Fails the calls socket_cb could not watch a socket for. Each callback may
 * start, cancel or close anything, so the search starts over after each. */
static void fail_unwatched(httpc *c) {
  while (!c->closing && c->sock_failures > 0) {
    httpc_call *call = c->calls;
    while (call != NULL && call->sock_error == 0) call = call->next;
    if (call == NULL) { /* cannot happen: the count follows the flags */
      c->sock_failures = 0;
      return;
    }
    char error[128];
    snprintf(error, sizeof(error), "cannot watch the transfer's socket: %s", uv_strerror(call->sock_error));
    complete_call(call, -EIO, error);
  }
}

/* Runs the callbacks of every transfer curl reports finished, and fails
 * those whose socket could not be watched. Stops when the client starts
 * closing (a callback called httpc_close: the multi is gone). */
static void check_finished(httpc *c) {
  fail_unwatched(c);
  CURLMsg *msg;
  int left;
  while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    char *priv = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    httpc_call *call = (httpc_call *)priv;
    /* msg is invalid once the handle is removed, so read its result first.
     * A callback that cancels a call whose DONE message is still queued is
     * safe: curl_multi_remove_handle drops that message from the queue. */
    complete_with_result(call, msg->data.result);
  }
}

/* ---- loop side ------------------------------------------------------------ */

/* Lets curl act on fd (or on its timeouts), then completes what finished. */
static void act(httpc *c, curl_socket_t fd, int flags) {
  int running;
  CURLMcode rc = curl_multi_socket_action(c->multi, fd, flags, &running);
  if (rc != CURLM_OK) log_error("httpc: curl could not act on its transfers: %s", curl_multi_strerror(rc));
  check_finished(c);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  httpc_sock *s = h->data;
  httpc *c = s->c;
  if (c->closing) return;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & (UV_READABLE | UV_DISCONNECT)) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  act(c, s->fd, flags); /* s may be closing by now; do not touch it */
}

static void on_timer(uv_timer_t *t) {
  httpc *c = t->data;
  if (c->closing) return;
  act(c, CURL_SOCKET_TIMEOUT, 0);
}

/* ---- curl side (no curl_multi_socket_action in here) ---------------------- */

/* A socket of easy's transfer cannot be watched (libuv's error rc: the fd
 * already watched by another handle, epoll out of room or memory). Marks
 * the call to fail once curl's action returns (act), and answers curl 0:
 * -1 would mark the whole multi handle dead, and every later transfer with
 * it, until a restart. */
static int sock_unwatchable(httpc *c, CURL *easy, curl_socket_t fd, int rc) {
  log_error("httpc: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
  char *priv = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
  httpc_call *call = (httpc_call *)priv;
  if (call != NULL && call->state == CALL_PENDING && call->sock_error == 0) {
    call->sock_error = rc;
    c->sock_failures++;
  }
  return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  httpc *c = userp;
  httpc_sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      curl_multi_assign(c->multi, fd, NULL);
      sock_release(c, s);
    }
    return 0;
  }
  if (s == NULL) {
    s = calloc(1, sizeof(*s));
    if (s == NULL) return sock_unwatchable(c, easy, fd, UV_ENOMEM);
    int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
    if (rc != 0) {
      free(s);
      return sock_unwatchable(c, easy, fd, rc);
    }
    s->fd = fd;
    s->c = c;
    s->poll.data = s;
    s->next = c->socks;
    if (c->socks != NULL) c->socks->prev = s;
    c->socks = s;
    curl_multi_assign(c->multi, fd, s);
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
  int rc = uv_poll_start(&s->poll, events, on_poll);
  return rc != 0 ? sock_unwatchable(c, easy, fd, rc) : 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  httpc *c = userp;
  if (timeout_ms < 0) {
    uv_timer_stop(&c->timer);
    return 0;
  }
  /* 0 means "act now"; the timer fires on the next loop turn, outside curl. */
  return uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

static int close_socket_cb(void *clientp, curl_socket_t fd) {
  httpc *c = clientp;
  for (httpc_sock *s = c->socks; s != NULL; s = s->next) {
    if (s->fd == fd) {
      log_debug("httpc: socket %d closed while watched; releasing its poll", (int)fd);
      if (c->multi != NULL) curl_multi_assign(c->multi, fd, NULL);
      sock_release(c, s);
      break;
    }
  }
  return close(fd);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp) {
  httpc_call *call = userp;
  size_t n = size * nmemb;
  if (n > call->max_body - call->body_len) {
    call->too_big = true;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (call->body_len + n + 1 > call->body_cap) {
    size_t cap = call->body_cap != 0 ? call->body_cap : 4096;
    while (cap < call->body_len + n + 1) cap *= 2;
    char *p = realloc(call->body, cap);
    if (p == NULL) return 0;
    call->body = p;
    call->body_cap = cap;
  }
  memcpy(call->body + call->body_len, data, n);
  call->body_len += n;
  call->body[call->body_len] = '\0';
  return n;
}

static void drop_headers(httpc_call *call) {
  for (size_t i = 0; i < call->n_hdrs; i++) {
    free((char *)call->hdrs[i].name);
    free((char *)call->hdrs[i].value);
  }
  call->n_hdrs = 0;
}

static char *dup_trimmed(const char *p, size_t n) {
  while (n > 0 && (*p == ' ' || *p == '\t')) p++, n--;
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n')) n--;
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Keeps the headers of the last response only: a status line (after a 100
 * Continue, a redirect or a proxy's CONNECT reply) starts the list over. */
static size_t header_cb(char *data, size_t size, size_t nmemb, void *userp) {
  httpc_call *call = userp;
  size_t n = size * nmemb;
  if (!call->is_http) return n;
  call->hdr_bytes += n;
  if (call->hdr_bytes > HTTPC_MAX_HEADER_BYTES) {
    call->headers_too_big = true;
    return 0;
  }
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    drop_headers(call);
    return n;
  }
  if (n > 0 && (data[0] == ' ' || data[0] == '\t') && call->n_hdrs > 0) {
    /* obs-fold: a continuation of the previous header's value */
    httpc_header *h = &call->hdrs[call->n_hdrs - 1];
    char *more = dup_trimmed(data, n);
    if (more == NULL) return 0;
    size_t a = strlen(h->value), b = strlen(more);
    char *v = realloc((char *)h->value, a + b + 2);
    if (v == NULL) {
      free(more);
      return 0;
    }
    v[a] = ' ';
    memcpy(v + a + 1, more, b + 1);
    h->value = v;
    free(more);
    return n;
  }
  const char *colon = memchr(data, ':', n);
  if (colon == NULL || colon == data) return n; /* blank line ending the block, or junk */
  if (call->n_hdrs == call->hdrs_cap) {
    size_t cap = call->hdrs_cap != 0 ? call->hdrs_cap * 2 : 16;
    httpc_header *p = realloc(call->hdrs, cap * sizeof(*p));
    if (p == NULL) return 0;
    call->hdrs = p;
    call->hdrs_cap = cap;
  }
  char *name = dup_trimmed(data, (size_t)(colon - data));
  char *value = dup_trimmed(colon + 1, n - (size_t)(colon - data) - 1);
  if (name == NULL || value == NULL) {
    free(name);
    free(value);
    return 0;
  }
  call->hdrs[call->n_hdrs++] = (httpc_header){name, value};
  return n;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp) {
  httpc_call *call = userp;
  size_t n = size * nitems, left = call->req_body_len - call->req_body_off;
  if (n > left) n = left;
  memcpy(buf, call->req_body + call->req_body_off, n);
  call->req_body_off += n;
  return n;
}

/* ---- worker calls (blocking curl transfers on the thread pool) ------------- */

static int worker_progress_cb(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow) {
  httpc_call *call = userp;
  return atomic_load(&call->abort_work) ? 1 : 0;
}

/* Worker thread: opens a socket and records it for worker_abort. */
static curl_socket_t worker_open_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *addr) {
  httpc_call *call = userp;
  curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd == CURL_SOCKET_BAD) return fd;
  uv_mutex_lock(&call->fd_lock);
  if (atomic_load(&call->abort_work)) {
    close(fd);
    fd = CURL_SOCKET_BAD;
  } else {
    for (size_t i = 0; i < 4; i++) {
      if (call->worker_fds[i] < 0) {
        call->worker_fds[i] = fd;
        break;
      }
    }
  }
  uv_mutex_unlock(&call->fd_lock);
  return fd;
}

/* Worker thread: forgets and closes a socket, under the lock so that
 * worker_abort never shuts down an fd number already reused elsewhere. */
static int worker_close_cb(void *userp, curl_socket_t fd) {
  httpc_call *call = userp;
  uv_mutex_lock(&call->fd_lock);
  for (size_t i = 0; i < 4; i++)
    if (call->worker_fds[i] == fd) call->worker_fds[i] = -1;
  int rc = close(fd);
  uv_mutex_unlock(&call->fd_lock);
  return rc;
}

/* Loop thread: makes a running worker give up soon. */
static void worker_abort(httpc_call *call) {
  atomic_store(&call->abort_work, true);
  uv_mutex_lock(&call->fd_lock);
  for (size_t i = 0; i < 4; i++)
    if (call->worker_fds[i] >= 0) shutdown(call->worker_fds[i], SHUT_RDWR);
  uv_mutex_unlock(&call->fd_lock);
}

/* Worker thread: touches nothing but the call's own easy handle and buffers. */
static void worker_run(uv_work_t *w) {
  httpc_call *call = w->data;
  call->worker_rc = curl_easy_perform(call->easy);
  curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &call->worker_code);
  curl_easy_getinfo(call->easy, CURLINFO_OS_ERRNO, &call->worker_os_errno);
  /* Cleanup may still talk to the server (QUIT, LOGOUT): not on the loop. */
  curl_easy_cleanup(call->easy);
  call->easy = NULL;
}

static void worker_done(uv_work_t *w, int status) {
  httpc_call *call = w->data;
  httpc *c = call->c;
  c->workers--;
  call->worker_active = false;
  if (call->state == CALL_PENDING) {
    complete_with_result(call, status == UV_ECANCELED ? CURLE_ABORTED_BY_CALLBACK : call->worker_rc);
  } else {
    free_call(call); /* cancelled earlier; its callback has run */
  }
  if (c->closing) {
    if (c->pending_closes == 0 && c->workers == 0) finish_close(c);
    return;
  }
  start_waiting(c);
}

/* Puts call on the thread pool. Returns 0 or a libuv error. */
static int worker_launch(httpc *c, httpc_call *call) {
  call->work.data = call;
  int rc = uv_queue_work(c->loop, &call->work, worker_run, worker_done);
  if (rc != 0) return rc;
  c->workers++;
  call->worker_active = true;
  call->waiting = false;
  return 0;
}

/* The waiting call created first, or NULL. */
static httpc_call *first_waiting(httpc *c) {
  httpc_call *first = NULL;
  for (httpc_call *call = c->calls; call != NULL; call = call->next)
    if (call->waiting && (first == NULL || call->seq < first->seq)) first = call;
  return first;
}

/* Arms the wait timer for the earliest deadline among waiting calls. */
static void arm_wait_timer(httpc *c) {
  uint64_t earliest = UINT64_MAX;
  for (httpc_call *call = c->calls; call != NULL; call = call->next)
    if (call->waiting && call->deadline_ns < earliest) earliest = call->deadline_ns;
  if (earliest == UINT64_MAX) {
    uv_timer_stop(&c->wait_timer);
    return;
  }
  uint64_t now = uv_hrtime();
  uint64_t ms = earliest > now ? (earliest - now + 999999u) / 1000000u : 0;
  uv_timer_start(&c->wait_timer, on_wait_timer, ms, 0);
}

/* Fails the waiting calls whose whole timeout has passed. Each callback may
 * start, cancel or close anything, so the search starts over after each. */
static void expire_waiting(httpc *c) {
  for (;;) {
    if (c->closing) return;
    uint64_t now = uv_hrtime();
    httpc_call *late = NULL;
    for (httpc_call *call = c->calls; call != NULL && late == NULL; call = call->next)
      if (call->waiting && call->deadline_ns <= now) late = call;
    if (late == NULL) break;
    complete_call(late, -ETIMEDOUT, "timed out waiting for a free mail worker");
  }
}

static void on_wait_timer(uv_timer_t *t) {
  httpc *c = t->data;
  expire_waiting(c);
  if (!c->closing) arm_wait_timer(c);
}

/* Starts waiting calls, oldest first, while workers are free. The transfer
 * gets what is left of its whole timeout. */
static void start_waiting(httpc *c) {
  expire_waiting(c);
  httpc_call *call;
  while (!c->closing && c->workers < c->max_workers && (call = first_waiting(c)) != NULL) {
    uint64_t now = uv_hrtime();
    long left_ms = call->deadline_ns > now ? (long)((call->deadline_ns - now + 999999u) / 1000000u) : 1;
    curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, left_ms);
    if (worker_launch(c, call) != 0) complete_call(call, -EIO, "cannot start a mail worker");
  }
  if (!c->closing) arm_wait_timer(c);
}

/* ---- public API ----------------------------------------------------------- */

/* Mail transfers block a thread of libuv's pool each, for as long as a
 * server keeps them (their timeout): they may take all of it but two
 * threads, which stay free for plugins' queue_work. The pool's size is
 * libuv's: UV_THREADPOOL_SIZE, or 4 (the daemon sets a larger one). */
static int max_workers(void) {
  const char *env = getenv("UV_THREADPOOL_SIZE");
  long pool = env != NULL ? strtol(env, NULL, 10) : 4;
  if (pool < 1) pool = 1;
  if (pool > 1024) pool = 1024;
  return pool > 3 ? (int)pool - 2 : 1;
}

int httpc_new(uv_loop_t *loop, httpc **out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  *out = NULL;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -EIO;
  httpc *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    curl_global_cleanup();
    return -ENOMEM;
  }
  c->loop = loop;
  c->multi = curl_multi_init();
  if (c->multi == NULL) {
    free(c);
    curl_global_cleanup();
    return -EIO;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  uv_timer_init(loop, &c->wait_timer);
  c->wait_timer.data = c;
  c->max_workers = max_workers();
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  *out = c;
  return 0;
}

static const char *const http_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static bool method_known(const char *m) {
  for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
    if (strcmp(m, http_methods[i]) == 0) return true;
  return false;
}

static bool has_crlf(const char *s) { return strpbrk(s, "\r\n") != NULL; }

/* Checks the URL with curl's own parser and sorts its scheme. Returns 0 and
 * sets *is_http, *is_smtp, *is_tls, or -EINVAL. */
static int classify_url(const char *url, bool *is_http, bool *is_smtp, bool *is_tls) {
  if (url == NULL || url[0] == '\0' || has_crlf(url)) return -EINVAL;
  CURLU *u = curl_url();
  if (u == NULL) return -ENOMEM;
  char *scheme = NULL;
  int rc = -EINVAL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK) {
    static const struct { const char *name; bool http, smtp, tls; } schemes[] = {
        {"http", true, false, false},  {"https", true, false, true},
        {"imap", false, false, false}, {"imaps", false, false, true},
        {"smtp", false, true, false},  {"smtps", false, true, true},
    };
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
      if (strcmp(scheme, schemes[i].name) == 0) {
        *is_http = schemes[i].http;
        *is_smtp = schemes[i].smtp;
        *is_tls = schemes[i].tls;
        rc = 0;
      }
    }
  }
  curl_free(scheme);
  curl_url_cleanup(u);
  return rc;
}

static int validate(const httpc_req *req, bool is_http, bool is_smtp, bool is_tls) {
  if (req->body_len > 0 && req->body == NULL) return -EINVAL;
  if (req->n_headers > 0 && req->headers == NULL) return -EINVAL;
  for (size_t i = 0; i < req->n_headers; i++) {
    const httpc_header *h = &req->headers[i];
    if (h->name == NULL || h->name[0] == '\0' || strpbrk(h->name, ":\r\n \t") != NULL) return -EINVAL;
    if (h->value == NULL || has_crlf(h->value)) return -EINVAL;
  }
  if (req->tls < HTTPC_TLS_DEFAULT || req->tls > HTTPC_TLS_NONE) return -EINVAL;
  if (req->tls == HTTPC_TLS_NONE && is_tls) return -EINVAL;
  if (is_http) {
    const char *m = req->method != NULL ? req->method : "GET";
    if (!method_known(m)) return -EINVAL;
    if (req->body_len > 0 && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)) return -EINVAL;
    if (req->tls == HTTPC_TLS_REQUIRED && !is_tls) return -EINVAL;
    if (req->mail_from != NULL || req->n_mail_rcpt > 0 || req->custom_request != NULL) return -EINVAL;
    return 0;
  }
  if (req->method != NULL) return -EINVAL;
  if (req->n_mail_rcpt > 0 && req->mail_rcpt == NULL) return -EINVAL;
  for (size_t i = 0; i < req->n_mail_rcpt; i++)
    if (req->mail_rcpt[i] == NULL || has_crlf(req->mail_rcpt[i])) return -EINVAL;
  if (req->mail_from != NULL && has_crlf(req->mail_from)) return -EINVAL;
  if (req->custom_request != NULL && has_crlf(req->custom_request)) return -EINVAL;
  if (is_smtp && (req->body_len == 0 || req->n_mail_rcpt == 0)) return -EINVAL;
  if (!is_smtp && (req->mail_from != NULL || req->n_mail_rcpt > 0)) return -EINVAL;
  return 0;
}

/* Adds "Name: value" (or "Name;" for an empty value, curl's way to send one). */
static int add_header(struct curl_slist **list, const char *name, const char *value) {
  size_t n = strlen(name) + strlen(value) + 3;
  char *line = malloc(n);
  if (line == NULL) return -ENOMEM;
  if (value[0] == '\0') snprintf(line, n, "%s;", name);
  else snprintf(line, n, "%s: %s", name, value);
  struct curl_slist *l = curl_slist_append(*list, line);
  free(line);
  if (l == NULL) return -ENOMEM;
  *list = l;
  return 0;
}

/* Applies the HTTP-only options: method, body, headers. */
static int setup_http(httpc_call *call, const httpc_req *req) {
  CURL *e = call->easy;
  const char *m = req->method != NULL ? req->method : "GET";
  bool has_expect = false;
  for (size_t i = 0; i < req->n_headers; i++) {
    if (strcasecmp(req->headers[i].name, "Expect") == 0) has_expect = true;
    if (add_header(&call->req_headers, req->headers[i].name, req->headers[i].value) != 0) return -ENOMEM;
  }
  /* curl would wait up to a second for "100 Continue" before a large body. */
  if (!has_expect) {
    struct curl_slist *l = curl_slist_append(call->req_headers, "Expect:");
    if (l == NULL) return -ENOMEM;
    call->req_headers = l;
  }
  if (strcmp(m, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(m, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    /* no body comes, so a large Content-Length is no reason to fail */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
  } else {
    bool body_method = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
    if (req->body_len > 0 || body_method) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->req_body_len);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->req_body);
    }
    if (strcmp(m, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->req_headers);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "switchboard/" SB_VERSION);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  return 0;
}

/* Keeps an SMTP server's last refusal (a 4xx/5xx reply line), so a failure
 * can be reported in the server's own words ("550 5.1.1 no such user")
 * rather than curl's "RCPT failed: 550". Runs on the transfer's thread. */
static int mail_debug_cb(CURL *e, curl_infotype type, char *data, size_t size, void *userp) {
  httpc_call *call = userp;
  if (type != CURLINFO_HEADER_IN || size < 3 || (data[0] != '4' && data[0] != '5')) return 0;
  size_t n = size;
  while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n')) n--;
  if (n >= sizeof(call->server_refusal)) n = sizeof(call->server_refusal) - 1;
  for (size_t i = 0; i < n; i++) call->server_refusal[i] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : '?';
  call->server_refusal[n] = '\0';
  return 0;
}

/* Applies the IMAP/SMTP-only options: envelope, command, upload. */
static int setup_mail(httpc_call *call, const httpc_req *req) {
  CURL *e = call->easy;
  if (req->mail_from != NULL || req->n_mail_rcpt > 0) {
    /* SMTP only: server replies carry no secrets (AUTH data goes out). */
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, mail_debug_cb);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, call);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  }
  if (req->mail_from != NULL) curl_easy_setopt(e, CURLOPT_MAIL_FROM, req->mail_from);
  for (size_t i = 0; i < req->n_mail_rcpt; i++) {
    struct curl_slist *l = curl_slist_append(call->rcpt, req->mail_rcpt[i]);
    if (l == NULL) return -ENOMEM;
    call->rcpt = l;
  }
  if (call->rcpt != NULL) curl_easy_setopt(e, CURLOPT_MAIL_RCPT, call->rcpt);
  if (req->custom_request != NULL) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->custom_request);
  /* Every mail transfer runs on a worker: besides the upload's blocking done
   * step, closing an IMAP or SMTP connection blocks on LOGOUT or QUIT. */
  call->on_worker = true;
  if (uv_mutex_init(&call->fd_lock) != 0) {
    call->on_worker = false;
    return -ENOMEM;
  }
  for (size_t i = 0; i < 4; i++) call->worker_fds[i] = -1;
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, worker_open_cb);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, call);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, worker_close_cb);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, call);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, worker_progress_cb);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, call);
  /* the connection ends with the transfer, on the worker, not in a cache */
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  long secs = (long)((req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS) + 999) / 1000;
  curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, secs);
  if (req->body_len > 0) {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, call);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)call->req_body_len);
  }
  if (req->tls == HTTPC_TLS_REQUIRED) curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
  else if (req->tls == HTTPC_TLS_NONE) curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
  return 0;
}

static int setup_easy(httpc *c, httpc_call *call, const httpc_req *req) {
  CURL *e = call->easy;
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,imap,imaps,smtp,smtps");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  /* Removing a transfer whose name is still being resolved (a cancel, a
   * timeout, a close) would otherwise wait for the resolver thread, and a
   * lookup can hang for many seconds: the whole loop with it. With this,
   * curl leaves the thread to finish on its own. */
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(req->connect_timeout_ms ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_TIMEOUT_MS));
  /* Refuses a too large body up front when its length is announced. */
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_body);
  if (req->username != NULL) curl_easy_setopt(e, CURLOPT_USERNAME, req->username);
  if (req->password != NULL) curl_easy_setopt(e, CURLOPT_PASSWORD, req->password);
  if (req->oauth2_bearer != NULL) curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, req->oauth2_bearer);
  if (req->ca_file != NULL) curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
  int rc = call->is_http ? setup_http(call, req) : setup_mail(call, req);
  if (rc == 0 && !call->on_worker) {
    /* only for sockets the loop watches; a worker's sockets never are */
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
  }
  return rc;
}

int httpc_request(httpc *c, const httpc_req *req, httpc_done_fn cb, void *arg,
                  httpc_call **out_call) {
  if (out_call != NULL) *out_call = NULL;
  if (c == NULL || req == NULL || cb == NULL) return -EINVAL;
  if (c->closing) return -ECANCELED;
  bool is_http = false, is_smtp = false, is_tls = false;
  int rc = classify_url(req->url, &is_http, &is_smtp, &is_tls);
  if (rc != 0) return rc;
  rc = validate(req, is_http, is_smtp, is_tls);
  if (rc != 0) return rc;

  httpc_call *call = calloc(1, sizeof(*call));
  if (call == NULL) return -ENOMEM;
  call->c = c;
  call->cb = cb;
  call->arg = arg;
  call->owner = req->owner;
  call->is_http = is_http;
  call->max_body = req->max_response_bytes ? req->max_response_bytes : HTTPC_DEFAULT_MAX_RESPONSE_BYTES;
  call->req_body_len = req->body_len;
  /* Always a buffer (never NULL) so POSTFIELDS sends an empty body, not a strlen. */
  call->req_body = malloc(req->body_len + 1);
  call->easy = curl_easy_init();
  if (call->req_body == NULL || call->easy == NULL) {
    free_call(call);
    return -ENOMEM;
  }
  if (req->body_len > 0) memcpy(call->req_body, req->body, req->body_len);
  call->req_body[req->body_len] = '\0';

  rc = setup_easy(c, call, req);
  if (rc != 0) {
    free_call(call);
    return rc;
  }
  call->start_ns = uv_hrtime();
  call->seq = c->next_seq++;
  call->state = CALL_PENDING;
  call->deadline_ns =
      call->start_ns + (uint64_t)(req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS) * 1000000u;
  if (call->on_worker && c->workers >= c->max_workers) {
    call->waiting = true; /* started by start_waiting when a worker ends */
  } else if (call->on_worker) {
    rc = worker_launch(c, call);
    if (rc != 0) {
      free_call(call);
      return rc == UV_ENOMEM ? -ENOMEM : -EIO;
    }
  } else {
    /* May call timer_cb (and so arm the timer) but never a user callback. */
    CURLMcode mrc = curl_multi_add_handle(c->multi, call->easy);
    if (mrc != CURLM_OK) {
      log_error("httpc: cannot add transfer: %s", curl_multi_strerror(mrc));
      free_call(call);
      return mrc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
    }
  }
  call_link(c, call);
  if (call->waiting) arm_wait_timer(c);
  c->stats.started++;
  c->stats.in_flight++;
  if (out_call != NULL) *out_call = call;
  return 0;
}

void httpc_cancel(httpc_call *call) {
  if (call == NULL || call->state != CALL_PENDING) return;
  /* A worker call not started yet is dropped from the queue; one running
   * stops at its next progress check. Either way worker_done frees it. */
  if (call->worker_active) uv_cancel((uv_req_t *)&call->work);
  complete_call(call, -ECANCELED, "cancelled");
}

/* Cancels pending calls older than seq_limit matching owner (any when all). */
static void cancel_matching(httpc *c, bool all, void *owner, uint64_t seq_limit) {
  /* Each callback may start or cancel other calls, so restart from the head
   * after every one instead of trusting a saved next pointer. */
  for (;;) {
    httpc_call *hit = NULL;
    for (httpc_call *call = c->calls; call != NULL; call = call->next) {
      if (call->seq < seq_limit && (all || call->owner == owner)) {
        hit = call;
        break;
      }
    }
    if (hit == NULL) return;
    httpc_cancel(hit);
  }
}

void httpc_cancel_owner(httpc *c, void *owner) {
  if (c == NULL) return;
  cancel_matching(c, false, owner, c->next_seq);
}

void httpc_get_stats(const httpc *c, httpc_stats *out) {
  if (c == NULL || out == NULL) return;
  *out = c->stats;
}

void httpc_close(httpc *c, void (*done)(void *arg), void *arg) {
  if (c == NULL || c->closing) return;
  /* closing first, so callbacks of the cancelled calls cannot start new ones
   * and check_finished stops touching the multi once we return to it. */
  c->closing = true;
  c->close_done = done;
  c->close_arg = arg;
  cancel_matching(c, true, NULL, c->next_seq);
  /* Cleanup closes cached connections; their REMOVE/close callbacks release
   * the polls, so the multi goes before the loop handles. */
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (c->socks != NULL) sock_release(c, c->socks);
  c->pending_closes += 2;
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->wait_timer, on_handle_closed);
}
