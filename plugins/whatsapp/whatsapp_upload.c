/* whatsapp_upload.c — which of a reply's attachments go by link and which are uploaded, WhatsApp's media
 * limits for an upload, and the POST /{phone-number-id}/media form.
 *
 * A file the help desk holds comes to send() with its bytes (its url is the
 * API's relative /api/v1/attachments/{id}, which Meta cannot fetch). It is
 * uploaded first; the message then names the media id Meta answers. Meta
 * refuses media outside its supported types and sizes
 * (developers.facebook.com/docs/whatsapp/cloud-api/reference/media), so
 * such a file fails here, before anything of the reply is sent, with a
 * reason the agent can act on. A link goes as it always did: Meta fetches
 * it and judges it then.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "whatsapp.h"

#define WA_MIB ((size_t)1024 * 1024)

/* Meta's supported media: a MIME type (a prefix when it ends in '/'), the
 * message type it goes as, and the largest file. */
typedef struct wa_media_rule {
  const char *mime;
  const char *type;
  size_t max;
  const char *max_text;
} wa_media_rule;

static const wa_media_rule wa_media_rules[] = {
    {"image/jpeg", "image", 5 * WA_MIB, "5 MB"},         {"image/png", "image", 5 * WA_MIB, "5 MB"},
    {"image/webp", "sticker", 500 * 1024, "500 KB"},     {"video/mp4", "video", 16 * WA_MIB, "16 MB"},
    {"video/3gpp", "video", 16 * WA_MIB, "16 MB"},       {"audio/aac", "audio", 16 * WA_MIB, "16 MB"},
    {"audio/amr", "audio", 16 * WA_MIB, "16 MB"},        {"audio/mpeg", "audio", 16 * WA_MIB, "16 MB"},
    {"audio/mp4", "audio", 16 * WA_MIB, "16 MB"},        {"audio/ogg", "audio", 16 * WA_MIB, "16 MB"},
    {"text/plain", "document", 100 * WA_MIB, "100 MB"}, {"application/", "document", 100 * WA_MIB, "100 MB"},
};

/* The rule for a MIME type (parameters such as "; codecs=opus" ignored), or NULL. */
static const wa_media_rule *wa__rule(const char *mime) {
  size_t base = strcspn(mime, "; ");
  for (size_t i = 0; i < sizeof(wa_media_rules) / sizeof(wa_media_rules[0]); i++) {
    const wa_media_rule *r = &wa_media_rules[i];
    size_t n = strlen(r->mime);
    int prefix = r->mime[n - 1] == '/';
    if ((prefix ? base > n : base == n) && strncasecmp(mime, r->mime, n) == 0) return r;
  }
  return NULL;
}

const char *wa_upload_mime(const sb_attachment *a) {
  return a->mime_type != NULL && a->mime_type[0] != '\0' ? a->mime_type : "application/octet-stream";
}

int wa_attachment_route(const sb_attachment *a, size_t i, const char **type, char *why, size_t whylen) {
  const char *name = a->filename != NULL ? a->filename : (a->url != NULL ? a->url : "without a name");
  if (a->data == NULL) {
    if (a->url != NULL && (strncmp(a->url, "https://", 8) == 0 || strncmp(a->url, "http://", 7) == 0))
      return WA_BY_LINK;
    snprintf(why, whylen,
             "attachment %zu (%.200s) is neither a URL Meta can fetch nor a file the help desk holds; WhatsApp "
             "attachments must be one or the other",
             i + 1, name);
    return 0;
  }
  const char *mime = wa_upload_mime(a);
  const wa_media_rule *r = wa__rule(mime);
  if (r == NULL) {
    snprintf(why, whylen,
             "attachment %zu (%.200s) is %.100s, which WhatsApp does not take: it takes JPEG and PNG images, MP4 "
             "and 3GPP video, AAC, AMR, MP3, MP4 and OGG audio, WebP stickers, and documents (application/*, "
             "text/plain)",
             i + 1, name, mime);
    return 0;
  }
  if (a->data_len == 0) {
    snprintf(why, whylen, "attachment %zu (%.200s) is empty; WhatsApp does not send empty files", i + 1, name);
    return 0;
  }
  if (a->data_len > r->max) {
    snprintf(why, whylen, "attachment %zu (%.200s) is %zu bytes; WhatsApp takes %s files (%s) up to %s", i + 1, name,
             a->data_len, r->type, mime, r->max_text);
    return 0;
  }
  *type = r->type;
  return WA_BY_UPLOAD;
}

int wa_upload_form(const sb_attachment *a, char **body, size_t *len, char content_type[META_FORM_TYPE_MAX]) {
  const char *mime = wa_upload_mime(a);
  const meta_form_part parts[] = {
      {.name = "messaging_product", .data = "whatsapp", .len = 8},
      {.name = "type", .data = mime, .len = strlen(mime)},
      {.name = "file",
       .filename = a->filename != NULL && a->filename[0] != '\0' ? a->filename : "attachment",
       .content_type = mime,
       .data = a->data,
       .len = a->data_len},
  };
  return meta_form_build(parts, sizeof(parts) / sizeof(parts[0]), body, len, content_type);
}
