/* meta_form.h — multipart/form-data bodies for the Graph API's uploads
 * (Messenger's Send API with filedata, WhatsApp's /{phone-number-id}/media).
 *
 * Part of the meta_common static library: no state, loop thread or any.
 * The framing is RFC 7578's: "--" boundary CRLF, the part's headers, CRLF,
 * its bytes, CRLF, ..., "--" boundary "--" CRLF.
 */
#ifndef SB_META_FORM_H
#define SB_META_FORM_H

#include <switchboard/plugin.h>

/* One field of a form. A plain field has filename and content_type NULL; a
 * file part names both. data is len bytes (any bytes, NUL included). */
typedef struct meta_form_part {
  const char *name;
  const char *filename;     /* NULL for a plain field */
  const char *content_type; /* NULL for a plain field */
  const char *data;
  size_t len;
} meta_form_part;

#define META_FORM_TYPE_MAX 128 /* room for "multipart/form-data; boundary=..." */

/* Builds a multipart/form-data body of the n parts, in order, under a
 * random boundary that occurs in none of their bytes. A name or filename
 * is quoted with '"', CR and LF percent-encoded (as browsers write them), so
 * a customer's file name cannot end the header early. A content_type with
 * a control character is refused: it would be a header of its own.
 *
 * Returns SB_OK with *body (malloc'd, the caller frees it; *body_len bytes, also
 * NUL-terminated) and content_type ("multipart/form-data; boundary=...",
 * for the request's Content-Type header, of META_FORM_TYPE_MAX bytes);
 * SB_EINVAL with nothing allocated when a part is unusable (NULL name, NULL
 * data with a length, a bad content type); SB_ENOMEM out of memory. */
int meta_form_build(const meta_form_part *parts, size_t n, char **body, size_t *body_len,
                    char content_type[META_FORM_TYPE_MAX]);

#endif
