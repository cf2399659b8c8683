/* switchboard/testhost.h — the stub test host: unit-test a channel plugin
 * without the daemon.
 *
 * libswitchboard-testhost loads your plugin's .so exactly as the daemon does
 * (dlopen, sb_plugin_entry, the same ABI checks), plays the host's side of
 * every function in sb_host, and records everything the plugin does so a
 * test can assert on it. It has no event loop, no network and no disk: time
 * is a fake clock the test advances, HTTP calls out are answered from
 * responses the test scripts, the key/value store is in memory. Link it with
 * `pkg-config --libs switchboard-testhost`.
 *
 * A TEST, START TO END
 *
 *   #include <switchboard/testhost.h>
 *   #include <assert.h>
 *   #include <string.h>
 *
 *   int main(void) {
 *     char err[256];
 *     testhost *th;
 *     assert(testhost_open("./echo.so", &th, err, sizeof(err)) == 0);
 *     testhost_set(th, "outbound_url", "https://example.test/out");
 *     assert(testhost_start(th, err, sizeof(err)) == 0);   // create + connect
 *
 *     // Inbound: a webhook becomes one message; 200 only once it is stored.
 *     sb_http_header h[] = {{"X-Message-Id", "m1"}, {"X-Sender-Id", "kim"}};
 *     const testhost_reply *r = testhost_receive(th, "POST", "/messages", h, 2, "hi", 2);
 *     assert(testhost_inbound_count(th) == 1 && !r->answered);
 *     testhost_inbound_complete(th, 0, SB_OK, "msg-1", 0);
 *     assert(r->answered && r->status == 200);
 *
 *     // Outbound: the plugin POSTs, the script answers 503, the send retries.
 *     testhost_http_reply(th, "https://example.test/", 503, "busy");
 *     const testhost_send_result *s = testhost_send_text(th, "kim", "hello");
 *     assert(s->outcome == TESTHOST_SEND_RETRY && s->completions == 1);
 *     assert(strcmp(testhost_http_at(th, 0)->body, "hello") == 0);
 *
 *     testhost_close(th);   // disconnect, destroy, unload
 *     return 0;
 *   }
 *
 * THE FAKE LOOP. The daemon calls a plugin's callbacks from its event loop,
 * never from inside the host function that started them. The test host
 * keeps that promise: a kv_set's done, a queued work item, a scripted HTTP
 * answer with no delay and an automatic commit run on the loop's next
 * "turn", which testhost_run() takes. Every function below that drives the
 * plugin (receive, send, connect, advance, ...) runs turns until nothing is
 * left, so after it returns the plugin has done all it can without the
 * clock moving. Timers and delayed HTTP answers fire only when the test
 * advances the clock with testhost_advance().
 *
 * MISUSE. When the plugin breaks the contract (answers one request twice,
 * completes one send twice or after disconnect, passes NULL where it may
 * not, stops a timer twice) the test host does what the daemon does —
 * ignores or refuses the call — and records a sentence in the misuse list,
 * also printed to stderr. Assert testhost_misuse_count(th) == 0 at the end
 * of a test.
 *
 * OWNERSHIP. Everything returned by a testhost_* function is owned by the
 * test host and stays valid until testhost_close() or
 * testhost_clear_records(), unless said otherwise. Everything passed in is
 * copied. One test host drives one plugin instance; open the file twice
 * for two channels. The fake clock is process-wide (now_ms has no argument
 * to tell hosts apart). Not thread-safe: use it from one thread.
 */
#ifndef SWITCHBOARD_TESTHOST_H
#define SWITCHBOARD_TESTHOST_H

#include <switchboard/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct testhost testhost;

/* The fake clock's reading when a process starts: 2025-11-22T08:26:40Z. */
#define TESTHOST_EPOCH_MS INT64_C(1763800000000)

/* ------------------------------------------------------------------------ */
/* Loading and the instance                                                  */
/* ------------------------------------------------------------------------ */

/* Loads the plugin file at path (dlopen RTLD_NOW|RTLD_LOCAL), calls its
 * sb_plugin_entry with the test host's table and checks the descriptor as
 * the daemon does: magic, ABI major and minor, struct_size, id format,
 * required hooks, name and version, thread model, credential schema.
 * Returns 0 and a new test host in *out, or a negative SB_E* code with a
 * sentence in err. Free with testhost_close. */
SB_EXPORT int testhost_open(const char *path, testhost **out, char *err, size_t errlen);

/* Destroys the instance if there is one (as testhost_destroy), unloads the
 * plugin and frees everything. NULL is a no-op. */
SB_EXPORT void testhost_close(testhost *th);

/* The plugin's descriptor, zero-extended to this SDK's size. */
SB_EXPORT const sb_plugin *testhost_plugin(const testhost *th);

/* The host API table every test host hands to plugins (one for all). */
SB_EXPORT const sb_host *testhost_host(void);

/* Sets the channel's name (the /hooks/{name} path; default "test"). Takes
 * effect at the next create. Returns 0 or SB_EINVAL/SB_ENOMEM. */
SB_EXPORT int testhost_set_channel_name(testhost *th, const char *name);

/* Gives a credential value as text, as an operator would in config (a
 * number or boolean as its text: "10", "true", "30s"). A MULTI field
 * collects every value given; any other field keeps the last. Checked at
 * create, not here. Returns 0 or SB_EINVAL (NULL key or value)/SB_ENOMEM. */
SB_EXPORT int testhost_set(testhost *th, const char *key, const char *value);

/* Forgets every value given for key (or for all keys when key is NULL). */
SB_EXPORT void testhost_unset(testhost *th, const char *key);

/* Checks the credentials given against the plugin's schema like the daemon
 * does: unknown key, missing REQUIRED key, a value invalid for its type
 * (int, bool "true"/"false", duration "500ms"/"30s"/"5m"/"2h"/"1d"/seconds,
 * url with a scheme and a host, enum value), several values for a field
 * that is not MULTI. Returns 0 or SB_EINVAL with a sentence naming the key
 * (never a SECRET value). */
SB_EXPORT int testhost_check_credentials(testhost *th, char *err, size_t errlen);

/* testhost_check_credentials, then the plugin's validate hook (if any) on
 * the built config. Returns 0, SB_EINVAL from the schema check, or the
 * hook's code with err starting "plugin validate: ". */
SB_EXPORT int testhost_validate(testhost *th, char *err, size_t errlen);

/* Validates (as testhost_validate) and calls create(). Returns 0, or the
 * refusal's code with a sentence in err. SB_EBUSY if an instance exists. */
SB_EXPORT int testhost_create(testhost *th, char *err, size_t errlen);

/* Calls connect() (or marks the channel connected when the plugin has
 * none), then runs the loop. Returns connect's code; SB_EINVAL without an
 * instance. */
SB_EXPORT int testhost_connect(testhost *th);

/* testhost_create then testhost_connect. */
SB_EXPORT int testhost_start(testhost *th, char *err, size_t errlen);

/* Calls disconnect() (if the plugin has it and it has not run yet). From
 * now on a send completion, respond or emit counts as misuse. */
SB_EXPORT void testhost_disconnect(testhost *th);

/* Takes the instance down as the daemon does: disconnect() if not done,
 * then cancels what is left (pending HTTP calls complete with SB_ECANCELED,
 * queued work finishes, timers and watches stop), then destroy(). Pending
 * sends are left uncompleted; unanswered requests are answered 503 by the
 * host. Records stay readable. No-op without an instance. */
SB_EXPORT void testhost_destroy(testhost *th);

/* The plugin's instance pointer (from create), or NULL. */
SB_EXPORT void *testhost_instance(const testhost *th);

/* The channel handle create() was given, for calling host functions
 * directly in a test (testhost_host()->log(testhost_channel(th), ...)). */
SB_EXPORT sb_channel *testhost_channel(testhost *th);

/* ------------------------------------------------------------------------ */
/* The fake loop and the fake clock                                          */
/* ------------------------------------------------------------------------ */

/* Runs loop turns until no deferred call is left (see THE FAKE LOOP).
 * Returns how many callbacks ran. */
SB_EXPORT size_t testhost_run(testhost *th);

/* The fake clock: what the plugin's now_ms() returns. Process-wide. */
SB_EXPORT int64_t testhost_now(void);

/* Sets the fake clock without firing timers (e.g. to a message's date). */
SB_EXPORT void testhost_set_time(int64_t unix_ms);

/* Moves the clock forward by ms, firing every timer (and delayed HTTP
 * answer) that falls due, in due-time order (ties: the order they were
 * started), with the clock reading each one's due time as it fires;
 * repeating timers fire as often as they fall due. Runs the loop after each.
 * Returns the number of callbacks fired. */
SB_EXPORT size_t testhost_advance(testhost *th, uint64_t ms);

/* The number of the plugin's timers still running. */
SB_EXPORT size_t testhost_timer_count(const testhost *th);

/* ------------------------------------------------------------------------ */
/* Requests to receive()                                                     */
/* ------------------------------------------------------------------------ */

/* The answer to one request, filled in when the plugin responds. */
typedef struct testhost_reply {
  int rc;                  /* what receive() returned */
  int answered;            /* 1 once answered (by the plugin or the host) */
  int by_host;             /* 1 when the host answered: receive failed (500),
                              no receive hook (404), or destroyed first (503) */
  int answers;             /* respond() calls by the plugin; more than 1 is misuse */
  int status;              /* the HTTP status, 0 until answered */
  sb_http_header *headers; /* the response headers (copied) */
  size_t header_count;
  char *body;              /* the response body, NUL-terminated (copied) */
  size_t body_len;
} testhost_reply;

/* Delivers one HTTP request to receive() as the daemon would for
 * /hooks/{channel}{target}: target is what follows the channel name, with
 * an optional query ("/messages?x=1"; "" for the bare path). Headers and
 * body are copied; body may hold NUL bytes (body_len counts them; when
 * body_len is 0 and body is not NULL, strlen(body) is used). Then runs the
 * loop. Returns the reply record, which fills in when the plugin answers
 * (now or later), or NULL without an instance or on allocation failure. */
SB_EXPORT const testhost_reply *testhost_receive(testhost *th, const char *method, const char *target,
                                                 const sb_http_header *headers, size_t header_count,
                                                 const char *body, size_t body_len);

/* Finds a response header by name, case-insensitively; NULL if absent. */
SB_EXPORT const char *testhost_reply_header(const testhost_reply *reply, const char *name);

/* ------------------------------------------------------------------------ */
/* Inbound messages                                                          */
/* ------------------------------------------------------------------------ */

/* The number of messages the plugin handed to emit_inbound() and the host
 * accepted. A message the host refuses (no external_id, no sender id, no
 * thread id when the plugin declares external threads) is not recorded:
 * emit_inbound returns SB_EINVAL and a warning is logged, as the daemon
 * does, so the plugin can answer the request 400. */
SB_EXPORT size_t testhost_inbound_count(const testhost *th);

/* The index-th inbound message, deep-copied (every string and attachment);
 * NULL when out of range. */
SB_EXPORT const sb_inbound_message *testhost_inbound(const testhost *th, size_t index);

/* 1 while the index-th message waits for its done callback, else 0. */
SB_EXPORT int testhost_inbound_pending(const testhost *th, size_t index);

/* Completes the index-th message: calls its done with status (SB_OK, or a
 * negative code for "could not be stored"), message_id (with SB_OK) and
 * duplicate, then runs the loop. Returns 0, SB_ENOENT (no such message) or
 * SB_EINVAL (already completed). testhost_destroy completes the messages
 * still pending with SB_ECANCELED before destroy(), as emit_inbound
 * promises one done per message. */
SB_EXPORT int testhost_inbound_complete(testhost *th, size_t index, int status, const char *message_id,
                                        int duplicate);

/* Completes every pending message as stored: id "msg-<n>" (n from 1), or,
 * for an external_id seen before, the first one's id with duplicate = 1.
 * Returns how many were completed. */
SB_EXPORT size_t testhost_commit_all(testhost *th);

/* When on (default off), every message is committed like testhost_commit_all
 * on the loop turn after emit_inbound. */
SB_EXPORT void testhost_autocommit(testhost *th, int on);

/* ------------------------------------------------------------------------ */
/* Outbound: send()                                                          */
/* ------------------------------------------------------------------------ */

#define TESTHOST_SEND_PENDING 0 /* not completed (yet) */
#define TESTHOST_SEND_OK 1      /* send_ok: text is the external id */
#define TESTHOST_SEND_RETRY 2   /* send_retry: text is the reason */
#define TESTHOST_SEND_FAIL 3    /* send_fail: text is the reason */
#define TESTHOST_SEND_DEFER 4   /* send_defer (ABI 1.2): text is the reason, retry_after_ms the delay */

/* One send() and its completion. */
typedef struct testhost_send_result {
  int rc;                  /* what send() returned */
  int outcome;             /* TESTHOST_SEND_*: the first completion */
  int completions;         /* how many completions the plugin made; 1 is right */
  char *text;              /* the external id or the reason (copied), or NULL */
  uint32_t retry_after_ms; /* for TESTHOST_SEND_RETRY and TESTHOST_SEND_DEFER */
} testhost_send_result;

/* Calls send() with msg (borrowed for the call, as the daemon does), then
 * runs the loop. Returns the result record (it fills in when the plugin
 * completes), or NULL without an instance or on allocation failure. */
SB_EXPORT const testhost_send_result *testhost_send(testhost *th, const sb_outbound_message *msg);

/* testhost_send with a message built from its text: message_id and
 * idempotency_key "out-<n>", attempt 1, the given recipient id (NULL:
 * "contact-1"), last inbound a minute ago. */
SB_EXPORT const testhost_send_result *testhost_send_text(testhost *th, const char *recipient_id,
                                                         const char *text);

/* ------------------------------------------------------------------------ */
/* The fake HTTP client                                                      */
/* ------------------------------------------------------------------------ */

/* A scripted answer to one of the plugin's http_request() calls. */
typedef struct testhost_http_script {
  int32_t status;                /* SB_OK: a response arrived; or a failure such as
                                    SB_ETIMEDOUT, SB_EIO (connection refused) */
  int32_t http_status;           /* with SB_OK, e.g. 200 */
  const sb_http_header *headers; /* response headers */
  size_t header_count;
  const char *body;              /* response body, or NULL */
  size_t body_len;               /* 0: strlen(body) */
  const char *error;             /* the sentence for a failure (NULL: a default) */
  uint64_t delay_ms;             /* fake-clock delay before done runs; 0: next loop turn */
} testhost_http_script;

/* Queues a scripted answer for the next request whose URL starts with
 * url_prefix (NULL or "": any URL). Each request takes the earliest queued
 * script that matches, once. A request nothing matches completes with
 * SB_EIO and the error "testhost: no scripted response for METHOD URL",
 * and counts in testhost_http_unmatched() (and as misuse: the test forgot
 * to script it). Returns 0 or SB_EINVAL/SB_ENOMEM. */
SB_EXPORT int testhost_http_script_add(testhost *th, const char *url_prefix, const testhost_http_script *script);

/* Shorthands: a response with status and body; a failure with status
 * (SB_ETIMEDOUT, SB_EIO, ...) and error. */
SB_EXPORT int testhost_http_reply(testhost *th, const char *url_prefix, int http_status, const char *body);
SB_EXPORT int testhost_http_error(testhost *th, const char *url_prefix, int status, const char *error);

/* Answers every request no queued script matches with script instead of
 * failing (NULL: back to failing). Unmatched requests then do not count. */
SB_EXPORT int testhost_http_fallback(testhost *th, const testhost_http_script *script);

/* Mail transfers (mail_request, ABI 1.1) are recorded and scripted exactly
 * like HTTP calls, by URL prefix ("smtp://", "imap://host/INBOX"): the
 * record's method is the IMAP command, "FETCH" for an IMAP URL without
 * one, or "SMTP" for a send; the envelope is in headers X-Mail-From and
 * X-Mail-Rcpt (one per recipient) and the login in X-Mail-Username (the
 * password is never recorded); body is the message. A script's http_status
 * is the reply code the plugin sees (sb_mail_response.code), its body the
 * response body, and a failure status (SB_EACCES for a refused login)
 * arrives as the mail response's status. */

/* One outbound call the plugin made, as it made it (all copied). */
typedef struct testhost_http_record {
  char *method;            /* "GET" when the plugin gave NULL */
  char *url;
  sb_http_header *headers;
  size_t header_count;
  char *body;              /* NUL-terminated; body_len excludes the NUL */
  size_t body_len;
  uint32_t timeout_ms;
  uint64_t max_response_bytes;
  int done;                /* 1 once its done callback ran */
  int cancelled;           /* completed by http_cancel or destroy */
  int unmatched;           /* no script matched */
  int32_t status;          /* the status done got */
  int32_t http_status;
} testhost_http_record;

/* The number of calls made, and the index-th one (NULL when out of range). */
SB_EXPORT size_t testhost_http_count(const testhost *th);
SB_EXPORT const testhost_http_record *testhost_http_at(const testhost *th, size_t index);

/* Finds a header of a recorded call by name, case-insensitively. */
SB_EXPORT const char *testhost_http_header(const testhost_http_record *call, const char *name);

/* The number of calls no script matched. */
SB_EXPORT size_t testhost_http_unmatched(const testhost *th);

/* The number of calls still waiting for their done callback. */
SB_EXPORT size_t testhost_http_pending(const testhost *th);

/* ------------------------------------------------------------------------ */
/* Everything else the plugin did                                            */
/* ------------------------------------------------------------------------ */

/* Delivery statuses from emit_status(), deep-copied, in order. */
SB_EXPORT size_t testhost_status_count(const testhost *th);
SB_EXPORT const sb_status_update *testhost_status_at(const testhost *th, size_t index);

/* State changes from set_state(), in order; the current state (0 before
 * any). reason may be NULL. */
SB_EXPORT uint32_t testhost_state(const testhost *th);
SB_EXPORT size_t testhost_state_count(const testhost *th);
SB_EXPORT uint32_t testhost_state_at(const testhost *th, size_t index, const char **reason);

/* Log lines from log(), with SECRET credential values replaced by "***".
 * testhost_log_find returns 1 when any line contains text. With echo on
 * (or the environment variable TESTHOST_LOG set) lines also go to stderr. */
SB_EXPORT size_t testhost_log_count(const testhost *th);
SB_EXPORT const char *testhost_log_at(const testhost *th, size_t index, int *level);
SB_EXPORT int testhost_log_find(const testhost *th, const char *text);
SB_EXPORT void testhost_log_echo(testhost *th, int on);

/* The in-memory key/value store: read it, seed it (as if from an earlier
 * run; not recorded as an operation), and the plugin's kv_set/kv_delete
 * calls in order. */
typedef struct testhost_kv_op {
  int deleted;  /* 1 for kv_delete, 0 for kv_set */
  char *key;
  char *value;  /* NULL for delete; NUL-terminated */
  size_t len;
} testhost_kv_op;
SB_EXPORT const char *testhost_kv_get(const testhost *th, const char *key, size_t *len);
SB_EXPORT int testhost_kv_seed(testhost *th, const char *key, const char *value, size_t len);
SB_EXPORT size_t testhost_kv_op_count(const testhost *th);
SB_EXPORT const testhost_kv_op *testhost_kv_op_at(const testhost *th, size_t index);

/* fd watches: how many are active, and firing one as if the fd became
 * ready (events SB_WATCH_*; status SB_OK or a negative code). Returns the
 * number of watches on fd that fired. */
SB_EXPORT size_t testhost_watch_count(const testhost *th);
SB_EXPORT size_t testhost_watch_fire(testhost *th, int fd, uint32_t events, int status);

/* Contract violations by the plugin (see MISUSE). */
SB_EXPORT size_t testhost_misuse_count(const testhost *th);
SB_EXPORT const char *testhost_misuse_at(const testhost *th, size_t index);

/* Forgets recorded statuses, states, logs, kv operations, misuse, finished
 * HTTP calls, completed inbound messages and finished replies and sends
 * (pending ones stay). Pointers to them become invalid and the indexes of
 * what stays start again from 0. */
SB_EXPORT void testhost_clear_records(testhost *th);

/* ------------------------------------------------------------------------ */
/* WebSockets (ABI 1.3)                                                      */
/* ------------------------------------------------------------------------ */

/* One message the plugin sent with ws_send (copied). */
typedef struct testhost_ws_msg {
  uint32_t kind; /* SB_WS_TEXT or SB_WS_BINARY */
  char *data;    /* NUL-terminated for convenience; len excludes the NUL */
  size_t len;
} testhost_ws_msg;

/* One simulated WebSocket: the handshake's verdict and, once accepted,
 * everything the plugin did on it. */
typedef struct testhost_ws {
  int rc;                     /* what ws_open returned */
  int status;                 /* 101 when accepted, else the daemon's refusal
                                 status: 403, 404, 429, 413 or 400 */
  int open;                   /* 1 from acceptance until ws_closed ran */
  testhost_ws_msg *sent;  /* what the plugin sent, in order */
  size_t sent_count;
  int close_calls;            /* ws_close calls by the plugin (the first one counts) */
  int close_code;             /* the code of the plugin's ws_close, 0 if none */
  char *close_reason;         /* its reason (copied), or NULL */
  int closed_calls;           /* times ws_closed ran: 1 once over (more is a bug) */
  int closed_code;            /* the code ws_closed got, 0 before */
} testhost_ws;

/* Simulates a WebSocket handshake for /hooks/{channel}{target} (target as
 * for testhost_receive, e.g. "/socket?token=t"): ws_open gets a GET with
 * the given headers plus Upgrade, Connection, Sec-WebSocket-Key and
 * Sec-WebSocket-Version; then the loop runs. Returns the record (check
 * status: 101, or the refusal), or NULL without an instance or when the
 * plugin has no ws_open hook (the daemon would call receive()). */
SB_EXPORT const testhost_ws *testhost_ws_open(testhost *th, const char *target, const sb_http_header *headers,
                                              size_t header_count);

/* Delivers one complete message from the peer to ws_message, then runs the
 * loop. Text that is not UTF-8 is not delivered: the host closes the
 * connection with 1007 as the daemon does (ws_closed(1007) follows) and
 * SB_EINVAL is returned. SB_ENOENT when the WebSocket is closed or closing;
 * SB_EINVAL for a bad kind. */
SB_EXPORT int testhost_ws_message(testhost *th, const testhost_ws *ws, uint32_t kind, const char *data,
                                  size_t len);

/* The peer closes (code 1000, 1001, 4xxx ...) or vanishes (code
 * SB_WS_CLOSE_ABNORMAL): ws_closed(code) runs on the next loop turn, which
 * this runs. SB_ENOENT when already closed. When the plugin called
 * ws_close, the simulated peer answers by itself: ws_closed gets the
 * plugin's code on the next loop turn. testhost_destroy closes what is
 * still open with 1001 and runs every ws_closed before destroy(). */
SB_EXPORT int testhost_ws_peer_close(testhost *th, const testhost_ws *ws, int code);

/* The number of WebSockets opened (accepted or not) and the index-th. */
SB_EXPORT size_t testhost_ws_count(const testhost *th);
SB_EXPORT const testhost_ws *testhost_ws_at(const testhost *th, size_t index);

/* ------------------------------------------------------------------------ */
/* Reading back: history and availability (ABI 1.3)                          */
/* ------------------------------------------------------------------------ */

/* Sets what the plugin's history() calls get from now on (deep-copied):
 * done runs on the loop's next turn with it. NULL: the default, status
 * SB_OK and no messages. Returns 0 or SB_ENOMEM. */
SB_EXPORT int testhost_history_answer(testhost *th, const sb_history *answer);

/* The plugin's history() requests, in order (copied; id and
 * after_message_id as given, limit as given). */
SB_EXPORT size_t testhost_history_count(const testhost *th);
SB_EXPORT const sb_history_request *testhost_history_at(const testhost *th, size_t index);

/* Sets what availability() calls get from now on (copied); done runs on
 * the loop's next turn. NULL: the default, status SB_OK, everything 0 and
 * typical_reply_seconds -1. */
SB_EXPORT void testhost_availability_answer(testhost *th, const sb_availability *answer);

/* How many times the plugin called availability(). */
SB_EXPORT size_t testhost_availability_count(const testhost *th);

/* The plugin's send_release calls, in order: the identity's id (and its
 * SB_IDENTITY_* kind in *kind when not NULL). The test host holds no
 * outbox, so a release changes nothing else. */
SB_EXPORT size_t testhost_release_count(const testhost *th);
SB_EXPORT const char *testhost_release_at(const testhost *th, size_t index, uint32_t *kind);

/* attachment_link (1.4) answers "/files/{id}?expires={ttl_seconds}&sig=testhost":
 * the test host holds no files, and a test sees which file and how long the
 * plugin asked for. */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* HMAC-SHA256 of data under key as 64 lowercase hex digits and a NUL: the
 * same function the host table's hmac_sha256 is, for signing test
 * requests. */
SB_EXPORT void testhost_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t data_len,
                                        char out[65]);

#ifdef __cplusplus
}
#endif

#endif /* SWITCHBOARD_TESTHOST_H */
