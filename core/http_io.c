/* http_io.c — reads and writes an HTTP connection without the three
 * epoll_ctl calls per request that libh2o on Debian 12's libuv would cost.
 *
 * libh2o 2.2's HTTP/1 stops reading a connection when a request is complete
 * and starts again once the response is written (uv_read_stop,
 * uv_read_start), and writes each response with uv_write. libuv 1.44 forgets
 * the socket's epoll registration on every stop and makes it again on the
 * next start (EPOLL_CTL_ADD, failing with EEXIST, then EPOLL_CTL_MOD); and
 * once a write is done it stops watching for writability it never asked
 * for, which re-registers the socket once more (EPOLL_CTL_MOD). On this kind
 * of VM a system call costs about as much as the work around it: beside the
 * read and the write that do the work, those were half the loop's calls per
 * webhook (bench/ingest/anatomy.sh, STRACE=1).
 *
 * The daemon defines uv_read_start, uv_read_stop and uv_write itself. The
 * dynamic linker binds libh2o's calls (and any other library's) to these;
 * every stream that is not an accepted HTTP connection goes straight to
 * libuv's own. An accepted connection (http__io_adopt) instead:
 *
 * - is read by libuv from its accept to its close, through io__alloc
 *   and io__read, which pass the bytes to libh2o's callbacks while
 *   libh2o wants them. When bytes (or the end of the connection) come while
 *   it does not — a client that pipelines, or one that goes away during a
 *   request — they stop the reading for real, leaving the bytes in the
 *   kernel until libh2o reads again, as libuv's stop would have; that
 *   connection then goes on with libuv's own stop and start.
 * - is written with uv_try_write first. What the kernel took at once is
 *   done: its completion is called back with status 0 from the loop's check
 *   or prepare phase (before the loop waits again, and before any close of
 *   that turn completes; libuv too calls back a write it finished with 0
 *   when the connection closes first); whatever the kernel did not take
 *   goes to libuv's uv_write.
 *
 * It also defines picohttpparser's phr_parse_request, which libh2o parses
 * each request head with (also through the dynamic linker). The daemon's
 * calls libh2o's, then
 *
 * - refuses a head whose body framing is ambiguous (RFC 9112, 6.1-6.3 and
 *   5.2): Content-Length given twice with different values, Content-Length
 *   beside Transfer-Encoding, Transfer-Encoding twice, or a header folded
 *   onto the next line. libh2o would take the first length, or the last
 *   Transfer-Encoding, and drop the others where no handler sees them; a
 *   proxy in front that chose otherwise would see a request end somewhere
 *   else (request smuggling). The head is reported malformed, and libh2o
 *   answers its plain 400 and closes the connection.
 * - counts that 400 (for any malformed or over-long head) in the server's
 *   responses, since libh2o writes it straight to the socket, past the
 *   filter that counts the others (http.c).
 *
 * Only the loop thread runs libh2o and touches these connections. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include "http_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* picohttpparser's header, as libh2o 2.2 was built with it (Debian ships no
 * picohttpparser.h). */
struct phr_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

/* Writes of more pieces go to libuv directly (libh2o's responses have 2-3). */
#define IO_MAX_BUFS 16

typedef int (*read_start_fn)(uv_stream_t *, uv_alloc_cb, uv_read_cb);
typedef int (*read_stop_fn)(uv_stream_t *);
typedef int (*write_fn)(uv_write_t *, uv_stream_t *, const uv_buf_t[], unsigned int, uv_write_cb);
typedef int (*parse_request_fn)(const char *, size_t, const char **, size_t *, const char **, size_t *, int *,
                                struct phr_header *, size_t *, size_t);

/* libuv's own functions, found once (the same for every loop and thread). */
static uv_once_t io__once = UV_ONCE_INIT;
static read_start_fn io__read_start;
static read_stop_fn io__read_stop;
static write_fn io__write;
/* libh2o's, found at the first request head: a program without libh2o
 * (one that only uses libuv) never calls it. */
static uv_once_t io__parse_once = UV_ONCE_INIT;
static parse_request_fn io__parse_request;

/* The servers with connections (http__io_init to http__io_close). */
static h2o_linklist_t io__servers = {&io__servers, &io__servers};

static void io__resolve(void) {
  io__read_start = (read_start_fn)dlsym(RTLD_NEXT, "uv_read_start");
  io__read_stop = (read_stop_fn)dlsym(RTLD_NEXT, "uv_read_stop");
  io__write = (write_fn)dlsym(RTLD_NEXT, "uv_write");
  if (io__read_start == NULL || io__read_stop == NULL || io__write == NULL) {
    fprintf(stderr, "switchboard: libuv's uv_read_start, uv_read_stop or uv_write cannot be found (%s)\n", dlerror());
    abort();
  }
}

static void io__resolve_parse(void) {
  io__parse_request = (parse_request_fn)dlsym(RTLD_NEXT, "phr_parse_request");
  if (io__parse_request == NULL) {
    fprintf(stderr, "switchboard: libh2o's phr_parse_request cannot be found (%s)\n", dlerror());
    abort();
  }
}

static void io__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  http_conn *c = (http_conn *)h;
  if (!c->h2o_reading) {
    *buf = uv_buf_init(NULL, 0); /* libuv then calls io__read with UV_ENOBUFS, reading nothing */
    return;
  }
  c->h2o_alloc(h, suggested, buf);
}

static void io__read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  http_conn *c = (http_conn *)s;
  if (!c->h2o_reading) {
    c->uv_reading = 0;
    io__read_stop(s); /* the connection is libuv's to stop and start from now on (read_cb is no longer ours) */
    return;
  }
  if (nread == UV_EOF) c->uv_reading = 0; /* libuv stopped reading at the end of the stream */
  c->h2o_read(s, nread, buf);
}

/* The adopted HTTP connection s is, or NULL (any other stream, or one closing). */
static http_conn *io__conn(uv_stream_t *s) {
  if (s->read_cb != io__read || uv_is_closing((uv_handle_t *)s)) return NULL;
  return (http_conn *)s;
}

int http__io_adopt(http_conn *c) {
  uv_once(&io__once, io__resolve);
  c->h2o_reading = 0;
  int rc = io__read_start((uv_stream_t *)&c->tcp, io__alloc, io__read);
  c->uv_reading = rc == 0;
  return rc;
}

int uv_read_start(uv_stream_t *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb) {
  uv_once(&io__once, io__resolve);
  http_conn *c = io__conn(s);
  if (c == NULL || alloc_cb == NULL || read_cb == NULL) return io__read_start(s, alloc_cb, read_cb);
  c->h2o_alloc = alloc_cb;
  c->h2o_read = read_cb;
  if (!c->uv_reading) {
    int rc = io__read_start(s, io__alloc, io__read);
    if (rc != 0) return rc;
    c->uv_reading = 1;
  }
  c->h2o_reading = 1;
  return 0;
}

int uv_read_stop(uv_stream_t *s) {
  uv_once(&io__once, io__resolve);
  http_conn *c = io__conn(s);
  if (c == NULL) return io__read_stop(s);
  c->h2o_reading = 0;
  return 0;
}

/* ---- writes ---------------------------------------------------------------- */

/* Calls back every write done at once, including those the callbacks make. */
static void io__deliver(http_server *s) {
  while (!h2o_linklist_is_empty(&s->written)) {
    http_conn *c = H2O_STRUCT_FROM_MEMBER(http_conn, written_link, s->written.next);
    h2o_linklist_unlink(&c->written_link);
    uv_write_t *req = c->written;
    c->written = NULL;
    req->cb(req, 0); /* the bytes went out: 0 even if the connection is closing, as libuv says then */
  }
  uv_prepare_stop(&s->io_prepare);
  uv_check_stop(&s->io_check);
}

static void io__on_check(uv_check_t *h) { io__deliver(h->data); }
static void io__on_prepare(uv_prepare_t *h) { io__deliver(h->data); }

void http__io_init(http_server *s) {
  h2o_linklist_insert(&io__servers, &s->io_link);
  h2o_linklist_init_anchor(&s->written);
  uv_prepare_init(s->loop, &s->io_prepare);
  uv_check_init(s->loop, &s->io_check);
  s->io_prepare.data = s;
  s->io_check.data = s;
}

void http__io_close(http_server *s) {
  h2o_linklist_unlink(&s->io_link);
  uv_close((uv_handle_t *)&s->io_prepare, NULL);
  uv_close((uv_handle_t *)&s->io_check, NULL);
}

void http__io_abandon(http_conn *c) {
  if (c->uv_reading) io__read_stop((uv_stream_t *)&c->tcp); /* nothing keeps the loop alive for it */
  c->uv_reading = 0;
  c->h2o_reading = 0;
  http__io_forget(c);
}

void http__io_forget(http_conn *c) {
  /* a write done at once and not yet called back: libh2o freed it with its socket */
  if (h2o_linklist_is_linked(&c->written_link)) h2o_linklist_unlink(&c->written_link);
  c->written = NULL;
}

int uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned int nbufs, uv_write_cb cb) {
  uv_once(&io__once, io__resolve);
  http_conn *c = io__conn(s);
  if (c == NULL || cb == NULL || c->written != NULL || s->write_queue_size != 0 || nbufs > IO_MAX_BUFS)
    return io__write(req, s, bufs, nbufs, cb);
  int n = uv_try_write(s, bufs, nbufs);
  if (n < 0) return io__write(req, s, bufs, nbufs, cb); /* UV_EAGAIN, or an error libuv reports its own way */
  size_t left = (size_t)n;
  unsigned int i = 0;
  while (i < nbufs && left >= bufs[i].len) left -= bufs[i++].len;
  if (i < nbufs) { /* the rest, for libuv to write when the socket takes it (it copies the array) */
    uv_buf_t rest[IO_MAX_BUFS];
    for (unsigned int j = i; j < nbufs; j++) rest[j - i] = bufs[j];
    rest[0].base += left;
    rest[0].len -= left;
    return io__write(req, s, rest, nbufs - i, cb);
  }
  req->type = UV_WRITE;
  req->handle = s;
  req->cb = cb;
  c->written = req;
  h2o_linklist_insert(&c->srv->written, &c->written_link);
  uv_check_start(&c->srv->io_check, io__on_check);
  uv_prepare_start(&c->srv->io_prepare, io__on_prepare);
  return 0;
}

/* ---- request heads ----------------------------------------------------------- */

static int io__named(const struct phr_header *h, const char *name) {
  return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* 1 when the head's headers leave the body's length in doubt (above). */
static int io__framing_ambiguous(const struct phr_header *h, size_t n) {
  const struct phr_header *length = NULL;
  int encodings = 0;
  for (size_t i = 0; i < n; i++) {
    if (h[i].name_len == 0) return 1; /* obs-fold: the line before continues here */
    if (io__named(&h[i], "transfer-encoding")) {
      encodings++;
    } else if (io__named(&h[i], "content-length")) {
      if (length != NULL && (h[i].value_len != length->value_len || memcmp(h[i].value, length->value, h[i].value_len) != 0))
        return 1;
      length = &h[i];
    }
  }
  return encodings > 1 || (encodings == 1 && length != NULL);
}

/* libh2o's own 400 for the head in buf: counted with the server's responses. */
static void io__count_bad_request(const char *buf) {
  for (h2o_linklist_t *n = io__servers.next; n != &io__servers; n = n->next) {
    http_server *s = H2O_STRUCT_FROM_MEMBER(http_server, io_link, n);
    for (h2o_linklist_t *m = s->conns.next; m != &s->conns; m = m->next) {
      http_conn *c = H2O_STRUCT_FROM_MEMBER(http_conn, link, m);
      if (c->sock != NULL && c->sock->input->bytes == buf) {
        s->stats.responses_by_class[4]++;
        return;
      }
    }
  }
}

/* What libh2o 2.2 does with a head it cannot parse: closes the connection
 * without a word when all it got was up to four bytes of CR and LF, and
 * otherwise answers 400; and it answers 400 when a head is still
 * incomplete at H2O_MAX_REQLEN bytes. */
static int io__answers_bad_request(const char *buf, size_t len, int rc) {
  if (rc == -2) return len == H2O_MAX_REQLEN;
  if (len > 4) return 1;
  for (size_t i = 0; i < len; i++)
    if (buf[i] != '\r' && buf[i] != '\n') return 1;
  return 0;
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len) {
  uv_once(&io__parse_once, io__resolve_parse);
  int rc = io__parse_request(buf, len, method, method_len, path, path_len, minor_version, headers, num_headers, last_len);
  if (rc > 0 && io__framing_ambiguous(headers, *num_headers)) rc = -1;
  if (rc < 0 && io__answers_bad_request(buf, len, rc)) io__count_bad_request(buf);
  return rc;
}
