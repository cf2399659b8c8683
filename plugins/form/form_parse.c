/* form_parse.c — turns a submission's body into fields and files: urlencoded
 * and JSON by hand and jansson, multipart/form-data by gmime 3. */
#include "form_parse.h"

#include <gmime/gmime.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FORM_MAX_BOUNDARY 200 /* RFC 2046 allows 70; browsers stay far below this */

int form_problem_set(form_problem *p, int status, const char *code, const char *field, const char *fmt, ...) {
  p->status = status;
  p->code = code;
  snprintf(p->field, sizeof(p->field), "%s", field != NULL ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof(p->message), fmt, ap);
  va_end(ap);
  for (char *s = p->message; *s != '\0'; s++) {
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) *s = '?';
  }
  for (char *s = p->field; *s != '\0'; s++) {
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' || *s == '\\' || *s == '<' || *s == '>' ||
        *s == '&')
      *s = '?';
  }
  return -1;
}

void form_parse_init(void) { g_mime_init(); }

int form_utf8_valid(const char *s, size_t len) {
  /* g_utf8_validate_len also refuses NUL bytes, which no field may hold. */
  return len == 0 || g_utf8_validate_len(s, len, NULL);
}

void form_body_free(form_body *b) {
  if (b == NULL) return;
  for (size_t i = 0; i < b->field_count; i++) {
    free(b->fields[i].name);
    free(b->fields[i].value);
  }
  for (size_t i = 0; i < b->file_count; i++) {
    free(b->files[i].field);
    free(b->files[i].filename);
    free(b->files[i].mime_type);
    free(b->files[i].data);
  }
  free(b->fields);
  free(b->files);
  memset(b, 0, sizeof(*b));
}

const char *form_body_get(const form_body *b, const char *name) {
  for (size_t i = 0; i < b->field_count; i++) {
    if (strcmp(b->fields[i].name, name) == 0) return b->fields[i].value;
  }
  return NULL;
}

size_t form_body_count(const form_body *b, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < b->field_count; i++) n += strcmp(b->fields[i].name, name) == 0;
  return n;
}

static char *form__dup(const char *s, size_t len) {
  char *d = malloc(len + 1);
  if (d == NULL) return NULL;
  if (len > 0) memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

/* Appends one text field (copies name and value), checking the limits and
 * that both are UTF-8 text. */
static int form__add_field(form_body *b, const form_limits *lim, const char *name, size_t name_len,
                           const char *value, size_t value_len, form_problem *p) {
  char shown[64];
  snprintf(shown, sizeof(shown), "%.*s", (int)(name_len < 60 ? name_len : 60), name);
  if (name_len == 0) return form_problem_set(p, 400, "invalid", NULL, "a field has no name");
  if (!form_utf8_valid(name, name_len)) {
    return form_problem_set(p, 400, "invalid", NULL, "a field name is not UTF-8 text");
  }
  if (!form_utf8_valid(value, value_len)) {
    return form_problem_set(p, 400, "invalid", shown, "%s is not UTF-8 text (or holds a NUL byte)", shown);
  }
  if (value_len > lim->max_value_bytes) {
    return form_problem_set(p, 400, "too_long", shown, "%s is longer than %zu bytes", shown, lim->max_value_bytes);
  }
  if (b->field_count >= lim->max_fields) {
    return form_problem_set(p, 400, "invalid", NULL, "the form has more than %zu fields", lim->max_fields);
  }
  form_field *n = realloc(b->fields, (b->field_count + 1) * sizeof(*n));
  if (n == NULL) return form_problem_set(p, 503, "unavailable", NULL, "out of memory; submit it again");
  b->fields = n;
  form_field *f = &b->fields[b->field_count];
  f->name = form__dup(name, name_len);
  f->value = form__dup(value, value_len);
  if (f->name == NULL || f->value == NULL) {
    free(f->name);
    free(f->value);
    return form_problem_set(p, 503, "unavailable", NULL, "out of memory; submit it again");
  }
  b->field_count++;
  return 0;
}

/* --- application/x-www-form-urlencoded ---------------------------------------- */

static int form__hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes s[0..len) ('+' is a space, %XX a byte) into out (len + 1 bytes);
 * returns the decoded length, or -1 for a broken escape. */
static long form__unescape(const char *s, size_t len, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '+') {
      out[o++] = ' ';
    } else if (s[i] == '%') {
      int hi = i + 1 < len ? form__hex(s[i + 1]) : -1;
      int lo = i + 2 < len ? form__hex(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return -1;
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  return (long)o;
}

static int form__urlencoded(const char *body, size_t len, const form_limits *lim, form_body *b, form_problem *p) {
  char *name = malloc(len + 1), *value = malloc(len + 1);
  int rc = 0;
  if (name == NULL || value == NULL) rc = form_problem_set(p, 503, "unavailable", NULL, "out of memory");
  size_t at = 0;
  while (rc == 0 && at < len) {
    const char *pair = body + at;
    const char *amp = memchr(pair, '&', len - at);
    size_t plen = amp != NULL ? (size_t)(amp - pair) : len - at;
    at += plen + 1;
    if (plen == 0) continue; /* "a=1&&b=2" */
    const char *eq = memchr(pair, '=', plen);
    size_t nlen = eq != NULL ? (size_t)(eq - pair) : plen;
    long dn = form__unescape(pair, nlen, name);
    long dv = eq != NULL ? form__unescape(eq + 1, plen - nlen - 1, value) : 0;
    if (eq == NULL) value[0] = '\0';
    if (dn < 0 || dv < 0) {
      rc = form_problem_set(p, 400, "invalid", NULL, "the form body has a broken %%-escape (%%XX needs two hex digits)");
    } else {
      rc = form__add_field(b, lim, name, (size_t)dn, value, (size_t)dv, p);
    }
  }
  free(name);
  free(value);
  return rc;
}

/* --- application/json -------------------------------------------------------------- */

/* Adds one JSON member value as text: strings as they are, numbers and
 * booleans written out, null skipped; an array adds each of its items. */
static int form__json_value(form_body *b, const form_limits *lim, const char *key, const json_t *v, int in_array,
                            form_problem *p) {
  char num[64];
  const char *text = NULL;
  size_t tlen = 0;
  if (json_is_string(v)) {
    text = json_string_value(v);
    tlen = json_string_length(v);
  } else if (json_is_integer(v)) {
    snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
  } else if (json_is_real(v)) {
    snprintf(num, sizeof(num), "%.17g", json_real_value(v));
  } else if (json_is_boolean(v)) {
    snprintf(num, sizeof(num), "%s", json_is_true(v) ? "true" : "false");
  } else if (json_is_null(v)) {
    return 0;
  } else if (json_is_array(v) && !in_array) {
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item) {
      if (form__json_value(b, lim, key, item, 1, p) != 0) return -1;
    }
    return 0;
  } else {
    char shown[64];
    snprintf(shown, sizeof(shown), "%.60s", key);
    return form_problem_set(p, 400, "invalid", shown, "%s must be text, a number, a boolean or a list of those",
                            shown);
  }
  if (text == NULL) {
    text = num;
    tlen = strlen(num);
  }
  return form__add_field(b, lim, key, strlen(key), text, tlen, p);
}

static int form__json(const char *body, size_t len, const form_limits *lim, form_body *b, form_problem *p) {
  json_error_t e;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
  if (root == NULL) {
    return form_problem_set(p, 400, "invalid", NULL, "the body is not valid JSON: %.200s (line %d)", e.text,
                            e.line);
  }
  int rc = 0;
  if (!json_is_object(root)) {
    rc = form_problem_set(p, 400, "invalid", NULL, "the body must be a JSON object of field names and values");
  } else {
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
      if ((rc = form__json_value(b, lim, key, v, 0, p)) != 0) break;
    }
  }
  json_decref(root);
  return rc;
}

/* --- multipart/form-data ------------------------------------------------------------ */

/* gmime's complaints that mean the body is not a well-formed form. */
static void form__mime_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data) {
  int *bad = data;
  switch (code) {
  case GMIME_WARN_MALFORMED_MULTIPART:
  case GMIME_WARN_TRUNCATED_MESSAGE:
  case GMIME_WARN_MALFORMED_MESSAGE:
  case GMIME_WARN_PART_WITHOUT_CONTENT:
  case GMIME_CRIT_INVALID_HEADER_NAME:
  case GMIME_CRIT_CONFLICTING_HEADER:
  case GMIME_CRIT_CONFLICTING_PARAMETER:
  case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
  case GMIME_CRIT_NESTING_OVERFLOW:
  case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT: *bad = 1; break;
  default: break; /* raw UTF-8 in a filename, a repeated parameter: fine for a form */
  }
}

/* True when the body ends its last part properly: a close delimiter
 * "--boundary--" at the start of a line. gmime reports a truncated body
 * only as a parser warning; a form whose last file was cut off must never
 * become a conversation, whatever warnings a gmime version raises. */
static int form__has_close(const char *body, size_t len, const char *boundary) {
  size_t blen = strlen(boundary);
  for (size_t i = 0; i + blen + 4 <= len; i++) {
    if ((i == 0 || body[i - 1] == '\n') && body[i] == '-' && body[i + 1] == '-' &&
        memcmp(body + i + 2, boundary, blen) == 0 && body[i + 2 + blen] == '-' && body[i + 3 + blen] == '-') {
      return 1;
    }
  }
  return 0;
}

/* The part's content bytes, transfer-decoded, into a new GByteArray holder. */
static GMimeStream *form__part_bytes(GMimePart *part) {
  GMimeStream *ms = g_mime_stream_mem_new();
  GMimeDataWrapper *w = g_mime_part_get_content(part);
  if (w != NULL) g_mime_data_wrapper_write_to_stream(w, ms);
  return ms;
}

static char *form__lower_type(GMimeObject *obj) {
  if (g_mime_object_get_header(obj, "Content-Type") == NULL) return strdup("application/octet-stream");
  GMimeContentType *ct = g_mime_object_get_content_type(obj);
  gchar *mt = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
  char *out = strdup(mt != NULL ? mt : "application/octet-stream");
  g_free(mt);
  for (char *s = out; s != NULL && *s != '\0'; s++) *s = (char)g_ascii_tolower(*s);
  return out;
}

static int form__add_file(form_body *b, const form_limits *lim, const char *name, const char *filename,
                          GMimeObject *obj, const GByteArray *ba, form_problem *p) {
  char shown[64];
  snprintf(shown, sizeof(shown), "%.60s", name);
  size_t len = ba != NULL ? ba->len : 0;
  if (b->file_count >= lim->max_files) {
    return form_problem_set(p, 400, "too_many_files", shown, "a submission may carry at most %zu files",
                            lim->max_files);
  }
  if (lim->max_file_bytes > 0 && len > lim->max_file_bytes) {
    return form_problem_set(p, 413, "too_large", shown, "%s is %zu bytes; files may be at most %llu bytes", shown,
                            len, (unsigned long long)lim->max_file_bytes);
  }
  form_file *n = realloc(b->files, (b->file_count + 1) * sizeof(*n));
  if (n == NULL) return form_problem_set(p, 503, "unavailable", NULL, "out of memory; submit it again");
  b->files = n;
  form_file *f = &b->files[b->file_count];
  memset(f, 0, sizeof(*f));
  f->field = strdup(name);
  f->filename = strdup(filename[0] != '\0' ? filename : "upload");
  f->mime_type = form__lower_type(obj);
  f->data = malloc(len > 0 ? len : 1);
  f->len = len;
  if (f->field == NULL || f->filename == NULL || f->mime_type == NULL || f->data == NULL) {
    free(f->field);
    free(f->filename);
    free(f->mime_type);
    free(f->data);
    return form_problem_set(p, 503, "unavailable", NULL, "out of memory; submit it again");
  }
  if (len > 0) memcpy(f->data, ba->data, len);
  b->file_count++;
  return 0;
}

/* One part of the form: a text field, a file, or an empty file input. */
static int form__part(form_body *b, const form_limits *lim, GMimeObject *obj, size_t index, form_problem *p) {
  if (!GMIME_IS_PART(obj)) {
    return form_problem_set(p, 400, "invalid", NULL, "part %zu is itself multipart, which forms do not send",
                            index + 1);
  }
  GMimeContentDisposition *d = g_mime_object_get_content_disposition(obj);
  const char *kind = d != NULL ? g_mime_content_disposition_get_disposition(d) : NULL;
  const char *name = d != NULL ? g_mime_content_disposition_get_parameter(d, "name") : NULL;
  if (kind == NULL || g_ascii_strcasecmp(kind, "form-data") != 0 || name == NULL || name[0] == '\0') {
    return form_problem_set(p, 400, "invalid", NULL,
                            "part %zu lacks Content-Disposition: form-data with a name", index + 1);
  }
  if (!form_utf8_valid(name, strlen(name))) {
    return form_problem_set(p, 400, "invalid", NULL, "the name of part %zu is not UTF-8 text", index + 1);
  }
  const char *filename = g_mime_content_disposition_get_parameter(d, "filename");
  GMimeStream *ms = form__part_bytes(GMIME_PART(obj));
  GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
  int rc = 0;
  if (filename == NULL) {
    rc = form__add_field(b, lim, name, strlen(name), ba != NULL && ba->len > 0 ? (const char *)ba->data : "",
                         ba != NULL ? ba->len : 0, p);
  } else if (!form_utf8_valid(filename, strlen(filename))) {
    rc = form_problem_set(p, 400, "invalid", name, "the file name in %.60s is not UTF-8 text", name);
  } else if (filename[0] != '\0' || (ba != NULL && ba->len > 0)) {
    rc = form__add_file(b, lim, name, filename, obj, ba, p);
  } /* else: a file input left empty, which browsers send as an empty part */
  g_object_unref(ms);
  return rc;
}

static int form__multipart(const char *content_type, const char *body, size_t len, const form_limits *lim,
                           form_body *b, form_problem *p) {
  GMimeContentType *ct = g_mime_content_type_parse(NULL, content_type);
  const char *boundary = ct != NULL ? g_mime_content_type_get_parameter(ct, "boundary") : NULL;
  char bnd[FORM_MAX_BOUNDARY + 1];
  int ok = boundary != NULL && boundary[0] != '\0' && strlen(boundary) <= FORM_MAX_BOUNDARY &&
           strpbrk(boundary, "\"\\\r\n") == NULL;
  if (ok) snprintf(bnd, sizeof(bnd), "%s", boundary);
  if (ct != NULL) g_object_unref(ct);
  if (!ok) {
    return form_problem_set(p, 400, "invalid", NULL,
                            "multipart/form-data needs a boundary parameter of 1-%d characters", FORM_MAX_BOUNDARY);
  }
  if (!form__has_close(body, len, bnd)) {
    return form_problem_set(p, 400, "invalid", NULL, "the multipart body is truncated: it has no closing boundary");
  }
  /* gmime reads a MIME entity: give it the headers the HTTP request had. */
  char head[FORM_MAX_BOUNDARY + 64];
  int hlen = snprintf(head, sizeof(head), "Content-Type: multipart/form-data; boundary=\"%s\"\r\n\r\n", bnd);
  char *whole = malloc((size_t)hlen + len);
  if (whole == NULL) return form_problem_set(p, 503, "unavailable", NULL, "out of memory; submit it again");
  memcpy(whole, head, (size_t)hlen);
  if (len > 0) memcpy(whole + hlen, body, len);
  int bad = 0;
  GMimeParserOptions *opts = g_mime_parser_options_new();
  g_mime_parser_options_set_warning_callback(opts, form__mime_warning, &bad);
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer(whole, (size_t)hlen + len);
  free(whole); /* the memory stream copied it */
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeObject *root = g_mime_parser_construct_part(parser, opts);
  g_object_unref(parser);
  g_object_unref(stream);
  g_mime_parser_options_free(opts);
  int rc = 0;
  if (root == NULL || !GMIME_IS_MULTIPART(root) || bad) {
    rc = form_problem_set(p, 400, "invalid", NULL, "the multipart body is malformed");
  } else {
    int n = g_mime_multipart_get_count(GMIME_MULTIPART(root));
    for (int i = 0; i < n && rc == 0; i++) {
      rc = form__part(b, lim, g_mime_multipart_get_part(GMIME_MULTIPART(root), i), (size_t)i, p);
    }
  }
  if (root != NULL) g_object_unref(root);
  return rc;
}

/* --- dispatch --------------------------------------------------------------------------- */

/* True when the media type of content_type (before ';', trimmed) is type. */
static int form__is_type(const char *content_type, const char *type) {
  const char *s = content_type;
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strcspn(s, ";");
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  return n == strlen(type) && strncasecmp(s, type, n) == 0;
}

int form_parse(const char *content_type, const char *body, size_t len, const form_limits *limits, form_body *out,
               form_problem *p) {
  memset(out, 0, sizeof(*out));
  if (body == NULL) body = "";
  int rc;
  if (content_type == NULL) {
    return form_problem_set(p, 415, "unsupported_media_type", NULL,
                            "the request has no Content-Type: send application/x-www-form-urlencoded, "
                            "multipart/form-data or application/json");
  } else if (form__is_type(content_type, "application/x-www-form-urlencoded")) {
    out->kind = FORM_KIND_URLENCODED;
    rc = form__urlencoded(body, len, limits, out, p);
  } else if (form__is_type(content_type, "multipart/form-data")) {
    out->kind = FORM_KIND_MULTIPART;
    rc = form__multipart(content_type, body, len, limits, out, p);
  } else if (form__is_type(content_type, "application/json")) {
    out->kind = FORM_KIND_JSON;
    rc = form__json(body, len, limits, out, p);
  } else {
    return form_problem_set(p, 415, "unsupported_media_type", NULL,
                            "Content-Type %.60s is not taken: send application/x-www-form-urlencoded, "
                            "multipart/form-data or application/json",
                            content_type);
  }
  if (rc != 0) form_body_free(out);
  return rc;
}
