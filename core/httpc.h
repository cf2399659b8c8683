/* httpc.h — the host's asynchronous HTTP client: curl transfers on one curl
 * multi handle driven by the libuv loop.
 *
 * One httpc per loop. A caller fills an httpc_request, calls httpc_request()
 * and gets its httpc_done_fn called exactly once, on the loop thread, with an
 * httpc_response: on success, on failure, on timeout, and on cancellation
 * (httpc_cancel, httpc_cancel_owner, httpc_close) alike.
 *
 * Threads: every function here is loop-thread-only (the thread running the
 * uv_loop_t given to httpc_new); none is thread-safe.
 *
 * Re-entrancy: a done callback may call httpc_request, httpc_cancel,
 * httpc_cancel_owner and httpc_close on the same client.
 *
 * HTTP is the main use. The same engine also runs IMAP and SMTP transfers
 * (imap://, imaps://, smtp://, smtps:// URLs) through the optional mail
 * fields of httpc_req; see there. Mail transfers run on the libuv thread
 * pool, one connection each (no reuse), because libcurl blocks while it
 * waits for the answer to the end of an upload and for LOGOUT/QUIT; the
 * contract (one callback on the loop thread, cancel, close) is the same.
 * They take at most all but two of the pool's threads (UV_THREADPOOL_SIZE,
 * else 4; at least one): more wait, oldest first, and their timeout_ms
 * counts the wait (-ETIMEDOUT "timed out waiting for a free mail worker").
 * A failed SMTP transfer's error ends with the server's own refusal line
 * ("... (the server said: 550 5.1.1 no such user)").
 *
 * Proxies: libcurl's usual environment variables (https_proxy, no_proxy, ...)
 * are honoured, so an operator can route outbound calls through a proxy.
 */
#ifndef SB_CORE_HTTPC_H
#define SB_CORE_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct httpc httpc;
typedef struct httpc_call httpc_call;

#define HTTPC_DEFAULT_TIMEOUT_MS 30000u
#define HTTPC_DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define HTTPC_DEFAULT_MAX_RESPONSE_BYTES (8u * 1024u * 1024u)

typedef struct httpc_header {
  const char *name;
  const char *value;
} httpc_header;

/* Transport security for mail URLs (HTTP uses the scheme alone). */
enum httpc_tls {
  HTTPC_TLS_DEFAULT = 0,  /* what the scheme says: imaps/smtps/https use TLS, others not */
  HTTPC_TLS_REQUIRED = 1, /* imap:// and smtp://: STARTTLS or fail (-EPROTO) */
  HTTPC_TLS_NONE = 2      /* plaintext only; -EINVAL with a TLS scheme */
};

/* A request. Zero-initialise it and set what you need; httpc_request copies
 * everything, so the struct and every buffer it points to may be freed as soon
 * as httpc_request returns. */
typedef struct httpc_req {
  /* "GET" (the default when NULL), "HEAD", "POST", "PUT", "PATCH", "DELETE" or
   * "OPTIONS", upper case. Must be NULL for mail URLs. */
  const char *method;
  /* Absolute URL; schemes http, https, imap, imaps, smtp, smtps. */
  const char *url;
  /* Extra request headers, sent as given. Names must be non-empty and free of
   * ':', CR, LF; values free of CR, LF. An empty value sends an empty header. */
  const httpc_header *headers;
  size_t n_headers;
  /* Request body, binary safe. Not allowed with GET and HEAD. For SMTP it is
   * the message to send (required); for IMAP it is uploaded (APPEND). */
  const void *body;
  size_t body_len;
  uint32_t timeout_ms;         /* whole transfer; 0 = HTTPC_DEFAULT_TIMEOUT_MS */
  uint32_t connect_timeout_ms; /* 0 = HTTPC_DEFAULT_CONNECT_TIMEOUT_MS */
  size_t max_response_bytes;   /* body limit; 0 = HTTPC_DEFAULT_MAX_RESPONSE_BYTES */
  /* Whoever the call belongs to (a plugin instance); httpc_cancel_owner
   * cancels by it. Never dereferenced. May be NULL. */
  void *owner;

  /* Optional; NULL/0 = unused. */
  const char *username;      /* HTTP basic auth, or IMAP/SMTP login */
  const char *password;
  const char *oauth2_bearer; /* IMAP/SMTP XOAUTH2 / OAUTHBEARER token */
  const char *ca_file;       /* PEM bundle to verify peers with instead of the system's */
  int tls;                   /* enum httpc_tls */
  const char *mail_from;     /* SMTP envelope sender, e.g. "<a@example.org>" */
  const char *const *mail_rcpt; /* SMTP envelope recipients */
  size_t n_mail_rcpt;
  const char *custom_request; /* IMAP command such as "EXAMINE INBOX"; mail URLs only */
} httpc_req;

/* What a done callback receives. Every pointer in it (and the struct itself)
 * is valid only until the callback returns: copy what you keep. */
typedef struct httpc_response {
  /* 0 when a response was received (whatever its HTTP status), otherwise:
   * -ECANCELED  cancelled (httpc_cancel, httpc_cancel_owner, httpc_close)
   * -ETIMEDOUT  timeout_ms or connect_timeout_ms passed
   * -EFBIG      the body (or headers) exceeded max_response_bytes (256 KiB for headers)
   * -ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH ... could not connect (the OS error)
   * -EHOSTUNREACH  the host name did not resolve
   * -EACCES     the mail server refused the login
   * -EPROTO     TLS failed (handshake, certificate, STARTTLS unavailable)
   * -EINVAL     the URL was rejected by curl at transfer time
   * -ENOMEM     out of memory
   * -EIO        any other transfer error; see error */
  int status;
  const char *error;   /* one sentence (curl's own text where it has one); "" if status == 0 */
  long code;           /* HTTP status (or last SMTP reply code); 0 when none arrived */
  const httpc_header *headers; /* final response's headers, names as received */
  size_t n_headers;
  const char *body;    /* never NULL; NUL-terminated after body_len bytes */
  size_t body_len;
  uint64_t total_us;   /* from httpc_request to completion */
  void *owner;         /* the request's owner */
} httpc_response;

typedef void (*httpc_done_fn)(void *arg, const httpc_response *res);

typedef struct httpc_stats {
  uint64_t in_flight;      /* started and not yet completed */
  uint64_t started;        /* accepted by httpc_request */
  uint64_t completed;      /* status == 0, any HTTP code */
  uint64_t failed;         /* status < 0 other than -ECANCELED and -ETIMEDOUT */
  uint64_t timed_out;
  uint64_t cancelled;
  uint64_t bytes_received; /* response body bytes */
} httpc_stats;

/* Creates a client on loop. Returns 0 and *out, -EINVAL for NULL arguments,
 * -ENOMEM, or -EIO if libcurl cannot be initialised. Free with httpc_close. */
int httpc_new(uv_loop_t *loop, httpc **out);

/* Starts one call. Copies everything it needs from req. Returns 0 (and the
 * call in *out_call when out_call is not NULL) or:
 *   -EINVAL     NULL c/req/cb, NULL or empty or malformed URL, unsupported
 *               scheme or method, body with GET/HEAD, bad header, mail field
 *               misuse, TLS mode that contradicts the scheme;
 *   -ECANCELED  the client is closing;
 *   -ENOMEM, -EIO.
 * On error cb is never called. On success cb(arg, res) runs exactly once, on
 * the loop thread, never before httpc_request has returned. The call handle
 * is valid until cb returns; do not use it afterwards. */
int httpc_request(httpc *c, const httpc_req *req, httpc_done_fn cb, void *arg,
                  httpc_call **out_call);

/* Cancels one call. Its callback runs synchronously, inside httpc_cancel,
 * with status -ECANCELED (and an empty response), so once httpc_cancel
 * returns the call is gone for the caller. A mail transfer running on the
 * thread pool is told to stop and is freed when its worker returns.
 * A call whose callback is already running is left alone (no second
 * callback). NULL is ignored. */
void httpc_cancel(httpc_call *call);

/* Cancels every call started with req->owner == owner before this function
 * was entered, each callback running synchronously as with httpc_cancel.
 * Calls started by those callbacks are not cancelled. Used when a plugin
 * instance is destroyed: after it returns, no callback for owner is pending
 * apart from calls started during it. */
void httpc_cancel_owner(httpc *c, void *owner);

/* Copies the client's counters into *out. */
void httpc_get_stats(const httpc *c, httpc_stats *out);

/* Closes the client: cancels every pending call synchronously (each callback
 * runs once with -ECANCELED), refuses new calls with -ECANCELED, closes its
 * handles, waits for any thread-pool upload to stop (their sockets are shut
 * down, so this is quick), frees c and then calls done(arg) (done may be
 * NULL) on a later loop turn. Do not use c once done is called. A second
 * httpc_close is ignored. */
void httpc_close(httpc *c, void (*done)(void *arg), void *arg);

#endif
