/* meta_common.h — what Messenger and WhatsApp share of Meta's Graph API: the
 * webhook verification handshake, the X-Hub-Signature-256 check, and Graph
 * error parsing and classification.
 *
 * A small static library linked into both plugins (built with hidden
 * visibility, so nothing here is exported from a plugin). It depends only on
 * the SDK header and jansson. Every function runs on the loop thread and
 * keeps no state of its own.
 */
#ifndef SB_META_COMMON_H
#define SB_META_COMMON_H

#include <switchboard/plugin.h>

#define META_DEFAULT_GRAPH_API_BASE "https://graph.facebook.com/v21.0"
#define META_MAX_REASON 400

/* Answers a verification GET (hub.mode=subscribe, hub.verify_token,
 * hub.challenge): 200 with the challenge as a text/plain body when the token
 * matches (compared in constant time), 403 otherwise, 400 when a parameter
 * is missing or the challenge is not a plain token of letters, digits, '_',
 * '-' and '.' (it is echoed back, so nothing else is). Always answers r exactly once; returns SB_OK. */
int meta_answer_verification(const sb_host *host, const sb_http_request *req, sb_responder *r,
                             const char *verify_token);

/* The front of both plugins' receive(): answers the verification GET, any
 * method but GET and POST (405), a body over max_body (413) and a request
 * to a closing channel (503, so Meta delivers it again). Returns 1 when it
 * answered r, 0 when r is a POST of events for the plugin to process. */
int meta_receive_front(const sb_host *host, const sb_http_request *req, sb_responder *r, const char *verify_token,
                       size_t max_body, int closing);

/* The settings both plugins check alike: graph_api_base is an http(s)
 * URL, each of the named secrets is non-empty, request_timeout is within
 * 100 ms to 2 min. Returns SB_OK or SB_EINVAL with a sentence naming the
 * setting (never its value) in err. */
int meta_validate_common(const sb_host *host, const sb_config *cfg, const char *const *secrets, size_t nsecrets,
                         char *err, size_t errlen);

/* Holds a send until an outside event (consent, a new token): send_defer
 * where the host has it (ABI 1.2: the hold never uses up attempts), else
 * send_retry. */
void meta_send_hold(const sb_host *host, sb_send_op *op, uint32_t hold_ms, const char *reason);

/* Checks X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256(app_secret, raw
 * body), compared in constant time. Returns 0 when valid; 401 when the
 * header is missing or malformed; 403 when it does not match. why gets a
 * sentence for the log (never the secret). */
int meta_check_signature(const sb_host *host, const sb_http_request *req, const char *app_secret, char *why,
                         size_t whylen);

/* Answers r with a small JSON body: {"ok":true} when error is NULL, else
 * {"error":{"code","message": error}} with a code for the status, as the
 * host's own errors are. */
void meta_answer(const sb_host *host, sb_responder *r, int status, const char *error);

/* A Graph API error envelope: {"error":{"message","type","code",
 * "error_subcode","error_data","fbtrace_id"}}. */
typedef struct meta_graph_error {
  int found;    /* 1 when the body held an error object */
  long code;    /* 0 when absent */
  long subcode; /* 0 when absent */
  char message[META_MAX_REASON];
  char details[META_MAX_REASON]; /* error_data.details (WhatsApp), or "" */
} meta_graph_error;

/* Parses body (body_len bytes, may be NULL) into e; e->found is 0 when it
 * holds no Graph error. Never fails. */
void meta_parse_error(const char *body, size_t body_len, meta_graph_error *e);

/* What to do with a failed Graph call. */
typedef enum meta_verdict {
  META_RETRY = 1,    /* transient: retry with backoff (throttling, 5xx, network) */
  META_FAIL = 2,     /* permanent: fail the message with the reason */
  META_AUTH = 3,     /* the token is refused: channel auth_failed, hold sends */
  META_REENGAGE = 4, /* WhatsApp 131047: outside the window, a template is needed */
  META_WINDOW = 5,   /* Messenger 10/2018278: outside the allowed window */
} meta_verdict;

#define META_API_MESSENGER 1
#define META_API_WHATSAPP 2

/* Classifies a Graph answer that was not a success: http_status is the HTTP
 * status (0 when no answer arrived), e the parsed error. The tables are the
 * ones in docs/channels/messenger.md and docs/channels/whatsapp.md. */
meta_verdict meta_classify(int api, int http_status, const meta_graph_error *e);

/* Writes a reason an agent reads for a failed call into out: "Graph error
 * CODE/SUBCODE: message" or the HTTP status when there is no envelope. */
void meta_reason(int http_status, const meta_graph_error *e, char *out, size_t outlen);

/* Appends s to buf (of cap bytes, at len) percent-encoded for a URL query or
 * path segment. Returns the new length, or cap when it did not fit (buf is
 * then cut back to len, still NUL-terminated). */
size_t meta_urlencode(char *buf, size_t cap, size_t len, const char *s);

/* Reads a header of a client response, case-insensitively; NULL if absent. */
const char *meta_response_header(const sb_http_client_response *res, const char *name);

/* Starts a Graph API call with token as its bearer: a body of len bytes of
 * content_type, or none when content_type is NULL (a GET, a DELETE).
 * Returns the call, or NULL (done is then not called). */
sb_http_call *meta_graph_call(const sb_host *host, sb_channel *channel, const char *token, const char *method,
                              const char *url, const char *content_type, const char *body, size_t len,
                              uint32_t timeout_ms, uint64_t max_response_bytes, sb_http_done_fn done, void *arg);

#endif
