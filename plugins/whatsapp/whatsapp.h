/* whatsapp.h — what the WhatsApp plugin's files share (never installed, never exported). */
#ifndef SB_WHATSAPP_H
#define SB_WHATSAPP_H

#include <jansson.h>
#include <switchboard/plugin.h>

#include "meta_common.h"
#include "meta_form.h"

#define WA_VERSION "1.0.0"

struct wa_out;
struct wa_batch;

/* One WhatsApp Business phone number. Config pointers live until destroy(). */
typedef struct whatsapp {
  const sb_host *host;
  sb_channel *channel;
  const char *phone_number_id, *waba_id, *token, *app_secret, *verify_token;
  const char *template_name, *template_language; /* the default re-engagement template, or NULL */
  char base[512];                                /* graph_api_base without a trailing slash */
  int64_t max_media_bytes;
  uint32_t timeout_ms;
  int closing;
  int auth_failed;       /* Graph said 190: sends are held until the config changes */
  int batches;           /* webhook batches not yet answered */
  int calls;             /* sends and connect checks in flight */
  struct wa_out *outs;   /* sends waiting for the Cloud API */
  struct wa_batch *open; /* webhook batches not yet freed */
} whatsapp;

/* The key/value value under prefix+id read as an integer; 0 when absent. */
int64_t wa_kv_int(const whatsapp *w, const char *prefix, const char *id);

/* Sets prefix+id to value (not waiting for durability); logs a failure. */
void wa_kv_put(const whatsapp *w, const char *prefix, const char *id, const char *value);
/* A reply's later part (its own wamid) → the reply's first wamid, its
 * external id: kept for the last WA_PARTS_KEPT parts, so a failed status
 * of a later part reaches the reply. wa_part_of writes the first wamid
 * into out and returns 1, or returns 0 for a wamid that is no later part. */
#define WA_PARTS_KEPT 1000
void wa_part_remember(const whatsapp *w, const char *part_id, const char *first_id);
int wa_part_of(const whatsapp *w, const char *part_id, char *out, size_t outlen);

/* Starts a Graph call with the access token as bearer; body NULL: no body.
 * max_bytes 0: the host's default. Returns the call, or NULL when the host
 * refused it (done is then not called). */
sb_http_call *wa_graph(const whatsapp *w, const char *method, const char *url, const char *body, uint64_t max_bytes,
                       sb_http_done_fn done, void *arg);

/* POSTs a multipart/form-data body (len bytes, content_type with its
 * boundary) with the access token as bearer, allowed timeout_ms. Returns
 * the call, or NULL when the host refused it (done is then not called). */
sb_http_call *wa_graph_form(const whatsapp *w, const char *url, const char *content_type, const char *body, size_t len,
                            uint32_t timeout_ms, sb_http_done_fn done, void *arg);

/* Marks the channel auth_failed after a Graph 190 (once). */
void wa_auth_failed(whatsapp *w);

/* connect(): reads the phone number to check the token. */
int wa_connect(void *instance);

/* At disconnect: completes every waiting send as a retry and detaches it,
 * so the cancelled HTTP call's callback only frees it. */
void wa_send_cancel_all(whatsapp *w);

/* How a reply's attachment goes out (whatsapp_upload.c). */
enum { WA_BY_LINK = 1, WA_BY_UPLOAD = 2 };

/* Decides how attachment i (0-based) goes: uploaded when the host handed
 * over its bytes (a file the help desk holds) and Meta takes its type and
 * size (*type then gets the message type: image, video, audio, sticker,
 * document), else by its URL when Meta can fetch it. Returns WA_BY_*, or 0
 * with the reason for the agent in why. */
int wa_attachment_route(const sb_attachment *a, size_t i, const char **type, char *why, size_t whylen);

/* The MIME type an upload of a goes with: its own, or application/octet-stream. */
const char *wa_upload_mime(const sb_attachment *a);

/* Builds the POST /{phone-number-id}/media form for a's bytes:
 * messaging_product=whatsapp, type=<MIME>, file (filename, Content-Type).
 * Returns meta_form_build's result (SB_OK: *body is the caller's to free). */
int wa_upload_form(const sb_attachment *a, char **body, size_t *len, char content_type[META_FORM_TYPE_MAX]);

/* send(): the Cloud API messages endpoint within the 24-hour window, or a template (whatsapp_send.c). */
int wa_send(void *instance, const sb_outbound_message *msg, sb_send_op *op);

#endif
