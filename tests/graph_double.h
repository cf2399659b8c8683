/* graph_double.h — a local stand-in for Meta's Graph API on 127.0.0.1, for the Messenger and WhatsApp tests.
 *
 * It runs on the test's libuv loop and implements what the plugins call:
 * the Messenger Send API (POST /{version}/me/messages), the User Profile API
 * (GET /{version}/{psid}?fields=...), the Page read used by connect
 * (GET /{version}/{page-id}), the Messenger profile (POST
 * /{version}/me/messenger_profile), WhatsApp Cloud API messages (POST
 * /{version}/{phone-number-id}/messages), media URLs (GET
 * /{version}/{media-id}), media downloads (GET /media/{id}) and media
 * uploads (POST /{version}/{phone-number-id}/media). Every call
 * must carry the access token (Authorization: Bearer, or access_token in the
 * query) as Graph checks it: none → 400 code 2500, another → 401 code 190.
 * Bodies are checked for the documented shape: a malformed one → 400 code
 * 100. Success bodies and error envelopes are the documented ones.
 *
 * Uploads are multipart/form-data as Meta documents them (RFC 7578: the
 * Content-Type's boundary, CRLF framing): Messenger's Send API with the
 * fields recipient, message (JSON), messaging_type and a file part
 * filedata, whose Content-Type must fit message.attachment.type; WhatsApp's
 * /media with messaging_product=whatsapp, type=<MIME> and a file part file
 * of that Content-Type, answered {"id":"<media-id>"}. A message may then
 * name the media by id (an unknown id is error 100). Every form is kept
 * on its request (gd_form_get), every WhatsApp upload by its id
 * (gd_upload), so tests compare the bytes that arrived.
 *
 * Scripting: gd_script_* queue one answer for the next request whose path
 * contains a substring (an error envelope with any code/subcode, a bare
 * HTTP status, or silence for timeouts). Every request is recorded. A test
 * driving graph_double_server from outside scripts the same with POST
 * /__double/script {"path", "http_status", "code", "subcode", "message"} or
 * {"path", "silence": true}.
 */
#ifndef SB_TESTS_GRAPH_DOUBLE_H
#define SB_TESTS_GRAPH_DOUBLE_H

#include <stddef.h>
#include <stdio.h>
#include <uv.h>

#define GD_VERSION "v21.0"
#define GD_MAX_REQUESTS 512 /* kept for gd_at; later ones are answered, not kept */

/* One part of a multipart/form-data request, as it arrived. */
typedef struct gd_form_part {
  char name[128];
  char filename[256]; /* "" when has_filename is 0 */
  int has_filename;   /* a file part */
  char content_type[128];
  char *data; /* len bytes, NUL-terminated */
  size_t len;
} gd_form_part;

typedef struct gd_request {
  char method[8];
  char path[512]; /* without the query */
  char query[1024];
  char auth[512]; /* the Authorization header, or "" */
  char content_type[256];
  char *body;     /* NUL-terminated */
  size_t body_len;
  gd_form_part *form; /* a multipart/form-data body's parts (nform), or NULL */
  int nform;
  int status; /* the HTTP status the double answered (0: silent) */
} gd_request;

/* Starts the double on a free port of 127.0.0.1 with the access token it
 * accepts and the id of the Page it serves. */
void gd_start(uv_loop_t *loop, const char *token, const char *page_id);

/* Closes the listener and every connection; frees the records. Run the loop
 * afterwards to let the handles close. */
void gd_stop(void);

/* "http://127.0.0.1:PORT/v21.0": the graph_api_base for the plugins. */
const char *gd_base(void);
int gd_port(void);

/* Adds a person the User Profile API knows. */
void gd_add_profile(const char *psid, const char *first, const char *last, const char *pic);

/* Adds a WhatsApp media object: GET /{id} gives its URL, GET of the URL its bytes.
 * The same bytes are Messenger's attachment at gd_base()'s /cdn/{id} (no token,
 * as Meta's CDN; an unknown id there is 403, as an expired link). */
void gd_add_media(const char *id, const char *mime, const char *bytes);

/* Queues a Graph error envelope as the answer to the next request whose
 * path contains path_part (NULL: any request). */
void gd_script_error(const char *path_part, int http_status, long code, long subcode, const char *message);

/* Queues a bare answer (status and raw body) for the next matching request. */
void gd_script_raw(const char *path_part, int http_status, const char *body);

/* The next matching request gets no answer at all (the client times out). */
void gd_script_silence(const char *path_part);

/* Recorded requests: count, the i-th, and the last whose path contains part
 * (NULL when none). Pointers stay valid until gd_stop. */
int gd_count(void);
const gd_request *gd_at(int i);
const gd_request *gd_last(const char *path_part);
int gd_count_path(const char *path_part);

/* The form part called name of a request, or NULL. */
const gd_form_part *gd_form_get(const gd_request *rq, const char *name);

/* A WhatsApp media upload the double took, by the id it answered. */
typedef struct gd_upload {
  char id[32];
  char type[128];     /* the form's type field */
  char filename[256];
  char *data;
  size_t len;
} gd_upload;

/* The upload with this id, or NULL; gd_upload_count: how many were taken. */
const gd_upload *gd_upload_find(const char *id);
int gd_upload_count(void);

/* Appends one JSON line per answered request ({"method","path","query",
 * "auth","body","status"}; a form's body as {"fields":{...},"files":[{"name",
 * "filename","content_type","size"}]}) to f, flushed at once; NULL stops logging. */
void gd_set_log(FILE *f);

/* Rewrites a webhook body (any JSON text) the way Meta writes it: compact,
 * every non-ASCII character as \uXXXX (surrogate pairs beyond the BMP) and
 * "/" as "\/". Returns a malloc'd string, or NULL when json is not JSON. */
char *gd_webhook_body(const char *json);

/* "sha256=" + hex HMAC-SHA256(app_secret, body): X-Hub-Signature-256 as Meta
 * signs its webhooks. out must hold 72 bytes. */
void gd_sign(const char *app_secret, const char *body, size_t len, char out[72]);

#endif
