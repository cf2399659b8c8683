/* plugin_harness.h — drives a real bundled plugin in-process for the Meta plugin tests: a fake router and
 * store (channel_env), a responder that records answers, send completions, and a loop runner. */
#ifndef SB_TESTS_PLUGIN_HARNESS_H
#define SB_TESTS_PLUGIN_HARNESS_H

#include <uv.h>

#include "channel.h"

#define PH_MAX 64

typedef struct ph_inbound {
  uint32_t flags, sender_kind;
  char ext_id[300], sender_id[128], sender_name[300], avatar[256], text[1024], reply_to[300], meta[2048];
  int64_t timestamp_ms;
  size_t attachment_count;
  char att_url[4][300], att_type[4][64], att_name[4][128];
  uint64_t att_size[4];
  size_t att_data_len[4];
} ph_inbound;

typedef struct ph_status {
  uint32_t status, flags, recipient_kind;
  char ext_id[300], recipient[128], error[512];
  int64_t timestamp_ms;
} ph_status;

typedef struct ph_answer {
  sb_responder base;
  int status;
  char body[4096];
  char content_type[64];
  int done;
} ph_answer;

typedef struct ph_sent {
  sb_send_op base;
  int outcome; /* CHANNEL_SEND_* */
  char text[1024];
  uint32_t retry_after;
  int done;
} ph_sent;

typedef struct ph_env {
  channel_env env;
  ph_inbound in[PH_MAX];
  int in_count;     /* emit_inbound calls */
  int stored_count; /* distinct external ids stored */
  char stored[PH_MAX][300];
  ph_status st[PH_MAX];
  int st_count;
  int hold, fail_store;
  int refuse;  /* non-zero: emit_inbound answers this code at once (nothing stored) */
  int commits_pending;
  uint32_t state;
  char state_reason[512];
  int releases;              /* send_release calls */
  char released[300];        /* the last one's "kind:id" */
} ph_env;

extern uv_loop_t ph_loop;
extern ph_env phe;
extern sb_channel *ph_ch;

/* Sets up the loop, the fake env, the HTTP client and the Graph double; loads build/plugins/NAME.so. */
void ph_setup(const char *plugin_name, const char *token, const char *page_id);
void ph_teardown(void);

/* Creates the channel "meta" with credentials (a JSON object text; "%BASE%" is replaced by the double's
 * base URL) and starts it. Returns the create result; err filled on failure. */
int ph_try_open(const char *credentials_json, char *err, size_t errlen);
void ph_open(const char *credentials_json);
void ph_close(void);

/* Opens the channel with credentials, the Graph double answering path with
 * a scripted error (code 0: a bare HTTP status), and returns the state
 * connect settles in; closes the channel again. */
uint32_t ph_state_after_connect_answer(const char *credentials_json, const char *path, int http, long code);

/* Runs the loop until *flag or ms pass; returns *flag. */
int ph_run_until(const int *flag, uint64_t ms);
void ph_run_for(uint64_t ms);

/* Completes every pending commit now. */
void ph_flush(void);

/* Sends a request to the channel: headers as name/value pairs (NULL-ended). Waits for the answer. */
ph_answer *ph_request(const char *method, const char *query, const char *body, const char *const *headers);

/* POSTs body signed with app_secret as Meta does; waits for the answer. */
ph_answer *ph_post_signed(const char *app_secret, const char *body);
/* POSTs body as multipart/form-data under boundary to the Graph double's path
 * (after its base URL) with token as the bearer, as a plugin would; the
 * double's status code and body (cut at 2 KiB). */
typedef struct ph_posted {
  long code;
  char body[2048];
} ph_posted;
ph_posted ph_post_form(const char *path, const char *token, const char *boundary, const char *body);
ph_answer *ph_post_signed_len(const char *app_secret, const char *body, size_t len);

/* Posts, signed: random bytes, token soup of the given vocabulary, and byte
 * mutations of valid_body; asserts every answer is 200 or 400 with a JSON
 * body. A deterministic generator, so failures reproduce. */
void ph_fuzz_webhooks(const char *app_secret, const char *valid_body, const char *const *vocabulary, size_t nvocab,
                      int rounds);

/* Prepares s to record one send's completion (for sends started by hand). */
void ph_sent_init(ph_sent *s);

/* Starts one send and waits for its completion. */
ph_sent *ph_send(const sb_outbound_message *m);

/* The i-th inbound with this external id, or NULL. */
const ph_inbound *ph_find(const char *ext_id);

#endif
