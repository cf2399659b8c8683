/* testhost_impl.h — the stub test host's internals, shared by its three files
 * (testhost.c: plugin, instance and records; testhost_config.c: credentials;
 * testhost_loop.c: clock, timers, deferred calls, fake HTTP, watches, kv). */
#ifndef SB_TESTHOST_IMPL_H
#define SB_TESTHOST_IMPL_H

#include <switchboard/testhost.h>

/* A growable array of pointers. */
typedef struct testhost__vec {
  void **items;
  size_t count;
  size_t cap;
} testhost__vec;

int testhost__vec_push(testhost__vec *v, void *item);
void testhost__vec_free(testhost__vec *v, void (*free_item)(void *));

/* One field's values, text as given or defaulted, numbers parsed. */
typedef struct testhost__value {
  const sb_field *field;
  char **texts;
  int64_t *numbers;
  size_t count;
} testhost__value;

struct sb_config {
  testhost__value *values;
  size_t count;
};

/* The instance's host side. */
struct sb_channel {
  testhost *th;
};

struct sb_responder {
  testhost *th;
  testhost_reply reply;
};

struct sb_send_op {
  testhost *th;
  testhost_send_result result;
};

struct sb_timer {
  testhost *th;
  uint64_t seq;       /* creation order: ties fire in it */
  int64_t due_ms;
  uint64_t repeat_ms;
  sb_timer_fn fn;
  void *arg;
  int active;
  int internal;       /* the test host's own (delayed HTTP answers) */
};

struct sb_watch {
  testhost *th;
  int fd;
  uint32_t events;
  sb_watch_fn fn;
  void *arg;
  int active;
};

struct sb_http_call {
  testhost *th;
  testhost_http_record *record;
  sb_http_done_fn done;
  void *arg;
  testhost_http_script script; /* deep copy of the matched script */
  int has_script;
  sb_timer *timer;             /* the delayed answer, or NULL */
  int pending;
};

/* A mail transfer (ABI 1.1): recorded and scripted as an HTTP call (see
 * testhost.h), its answer handed back as an sb_mail_response. */
struct sb_mail_call {
  testhost *th;
  sb_http_call *http;
  sb_mail_done_fn done;
  void *arg;
  int pending;
};

/* A call the fake loop makes on its next turn. */
typedef struct testhost__deferred {
  void (*fn)(testhost *th, void *a, void *b, int status);
  void *a;
  void *b;
  int status;
} testhost__deferred;

typedef struct testhost__inbound {
  sb_inbound_message msg; /* deep copy */
  sb_inbound_done_fn done;
  void *arg;
  int pending;
  char *message_id;
  int autocommit;
} testhost__inbound;

typedef struct testhost__script {
  char *prefix;
  testhost_http_script s; /* deep copy */
} testhost__script;

typedef struct testhost__kv {
  char *key;
  char *value;
  size_t len;
} testhost__kv;

typedef struct testhost__state {
  uint32_t state;
  char *reason;
} testhost__state;

typedef struct testhost__log {
  int level;
  char *line;
} testhost__log;

struct testhost {
  void *dl;
  char *path;
  sb_plugin desc;      /* zero-extended copy */
  char *channel_name;

  /* credentials as given: key → values */
  testhost__vec given_keys;  /* char * */
  testhost__vec given_vals;  /* char * (parallel) */
  sb_config *config;         /* built by create */

  struct sb_channel channel;
  void *instance;
  int created;
  int connected;
  int disconnected;          /* disconnect ran: completions are misuse now, */
  int cancelling;            /* but for those from the HTTP calls it cancels */
  uint32_t state;

  int autocommit;
  int log_echo;
  uint64_t next_seq;
  unsigned next_message;
  unsigned next_out;

  testhost__vec deferred;    /* testhost__deferred * */
  testhost__vec timers;      /* sb_timer * (also stopped ones, freed at close) */
  testhost__vec watches;     /* sb_watch * */
  testhost__vec calls;       /* sb_http_call * */
  testhost__vec mail_calls;  /* sb_mail_call * (freed at close) */
  testhost__vec scripts;     /* testhost__script * */
  testhost__script *fallback;
  size_t unmatched;
  testhost__vec kv;          /* testhost__kv * */
  testhost__vec pending_works;

  testhost__vec replies;     /* struct sb_responder * */
  testhost__vec sends;       /* struct sb_send_op * */
  testhost__vec inbound;     /* testhost__inbound * */
  testhost__vec statuses;    /* sb_status_update * (deep copies) */
  testhost__vec states;      /* testhost__state * */
  testhost__vec logs;        /* testhost__log * */
  testhost__vec kv_ops;      /* testhost_kv_op * */
  testhost__vec http;        /* testhost_http_record * */
  testhost__vec misuse;      /* char * */

  testhost__vec websockets;  /* struct sb_ws * (testhost_ws.c) */
  testhost__vec reads;       /* testhost__read *: history and availability calls */
  testhost__vec history_requests; /* sb_history_request * (deep copies) */
  size_t availability_requests;
  sb_history *history_answer;     /* deep copy, or NULL: the default */
  sb_availability availability_answer;
  int has_availability_answer;
  testhost__vec releases;         /* testhost__release *: send_release calls */
};

/* One send_release call, as made. */
typedef struct testhost__release {
  uint32_t kind;
  char id[];
} testhost__release;

/* WebSockets and reads (testhost_ws.c): table members, what destroy must
 * finish before destroy() (open WebSockets close with 1001, pending reads
 * complete with SB_ECANCELED), and freeing at close. */
int testhost__ws_send(sb_ws *ws, uint32_t kind, const char *data, size_t len);
void testhost__ws_close(sb_ws *ws, int code, const char *reason);
const char *testhost__ws_remote_addr(const sb_ws *ws);
int testhost__history(sb_channel *ch, const sb_history_request *request, sb_history_done_fn done, void *arg);
int testhost__availability(sb_channel *ch, sb_availability_done_fn done, void *arg);
int testhost__send_release(sb_channel *ch, uint32_t kind, const char *id);
int testhost__attachment_link(sb_channel *ch, int64_t id, uint32_t ttl_s, char *buf, size_t len);
void testhost__ws_before_destroy(testhost *th);
void testhost__ws_free(testhost *th);

/* Records a contract violation by the plugin (printf format); also printed
 * to stderr so a failing test shows why. */
void testhost__misuse(testhost *th, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Queues fn for the fake loop's next turn. Returns SB_OK or SB_ENOMEM. */
int testhost__defer(testhost *th, void (*fn)(testhost *th, void *a, void *b, int status), void *a, void *b,
                    int status);

/* Frees loop-side state (timers, watches, calls, scripts, kv, deferred). */
void testhost__loop_free(testhost *th);

/* Frees finished calls and records, stopped timers and watches, kv operations. */
void testhost__loop_clear(testhost *th);

/* Record helpers shared by testhost.c and testhost_drive.c. */
void testhost__inbound_free(void *p);
void testhost__status_free(void *p);
int testhost__fill_reply(testhost_reply *r, int status, const sb_http_header *headers, size_t n, const char *body,
                         size_t len);

/* Cancels what the instance left behind before destroy(): HTTP calls
 * complete with SB_ECANCELED, timers and watches stop, queued work runs. */
void testhost__loop_cancel_all(testhost *th);

/* Copies helpers: strdup that keeps NULL, and copies of header arrays. */
char *testhost__strdup(const char *s);
sb_http_header *testhost__headers_dup(const sb_http_header *h, size_t n);
void testhost__headers_free(sb_http_header *h, size_t n);

/* Config building and lookups (testhost_config.c). */
int testhost__config_build(testhost *th, sb_config **out, char *err, size_t errlen);
void testhost__config_free(sb_config *config);
int testhost__check_table(const sb_plugin *d, char *err, size_t errlen);
const char *testhost__config_get(const sb_config *config, const char *key);
size_t testhost__config_count(const sb_config *config, const char *key);
const char *testhost__config_get_at(const sb_config *config, const char *key, size_t index);
int64_t testhost__config_int(const sb_config *config, const char *key, int64_t fallback);

/* Host table members implemented in testhost_loop.c. */
int64_t testhost__now_ms(void);
sb_timer *testhost__timer_start(sb_channel *ch, uint64_t timeout_ms, uint64_t repeat_ms, sb_timer_fn fn, void *arg);
void testhost__timer_stop(sb_timer *timer);
sb_watch *testhost__watch_fd(sb_channel *ch, int fd, uint32_t events, sb_watch_fn fn, void *arg);
void testhost__watch_stop(sb_watch *watch);
sb_http_call *testhost__http_request(sb_channel *ch, const sb_http_client_request *request, sb_http_done_fn done,
                                     void *arg);
void testhost__http_cancel(sb_http_call *call);
sb_mail_call *testhost__mail_request(sb_channel *ch, const sb_mail_request *request, sb_mail_done_fn done,
                                     void *arg);
void testhost__mail_cancel(sb_mail_call *call);
int testhost__queue_work(sb_channel *ch, sb_work_fn work, sb_work_done_fn done, void *arg);
const char *testhost__kv_get(sb_channel *ch, const char *key, size_t *len);
int testhost__kv_set(sb_channel *ch, const char *key, const char *value, size_t len, sb_kv_done_fn done, void *arg);
int testhost__kv_delete(sb_channel *ch, const char *key, sb_kv_done_fn done, void *arg);

#endif
