/* graph_double_form.c — the Graph double's multipart/form-data reader and the checks Meta makes of an upload. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph_double.h"
#include "graph_double_internal.h"

/* The boundary parameter of a multipart/form-data Content-Type, into out; 0 when absent or unusable. */
static int gdf__boundary(const char *content_type, char *out, size_t outlen) {
  const char *p = strcasestr(content_type, "boundary=");
  if (p == NULL) return 0;
  p += 9;
  size_t n;
  if (*p == '"') {
    p++;
    n = strcspn(p, "\"");
    if (p[n] != '"') return 0;
  } else {
    n = strcspn(p, "; \t");
  }
  /* RFC 2046: 1 to 70 characters. */
  if (n == 0 || n > 70 || n >= outlen) return 0;
  memcpy(out, p, n);
  out[n] = '\0';
  return 1;
}

/* Copies a quoted parameter's value (name="...") of a header line into out, turning the %22, %0D and %0A
 * that browsers (and the plugins) write for '"', CR and LF back; 0 when the parameter is absent. */
static int gdf__param(const char *line, size_t line_len, const char *param, char *out, size_t outlen) {
  char key[32];
  snprintf(key, sizeof(key), "; %s=\"", param);
  const char *p = memmem(line, line_len, key, strlen(key));
  if (p == NULL) return 0;
  p += strlen(key);
  const char *end = memchr(p, '"', line_len - (size_t)(p - line));
  if (end == NULL) return 0;
  size_t o = 0;
  while (p < end && o + 1 < outlen) {
    if (end - p >= 3 && (strncmp(p, "%22", 3) == 0 || strncmp(p, "%0D", 3) == 0 || strncmp(p, "%0A", 3) == 0)) {
      out[o++] = p[2] == '2' ? '"' : p[2] == 'D' ? '\r' : '\n';
      p += 3;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
  return 1;
}

/* Reads one part's headers [h, h + len) into part; why on a malformed one. */
static const char *gdf__headers(const char *h, size_t len, gd_form_part *part) {
  int disposition = 0;
  const char *end = h + len;
  while (h < end) {
    const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
    size_t n = eol != NULL ? (size_t)(eol - h) : (size_t)(end - h);
    if (memchr(h, '\n', n) != NULL || memchr(h, '\r', n) != NULL)
      return "(#100) A multipart header line must end with CRLF";
    if (n > 20 && strncasecmp(h, "Content-Disposition:", 20) == 0) {
      const char *v = h + 20;
      while (*v == ' ') v++;
      if (strncmp(v, "form-data", 9) != 0) return "(#100) Each part must be Content-Disposition: form-data";
      if (!gdf__param(h, n, "name", part->name, sizeof(part->name)))
        return "(#100) Each part must have a quoted name";
      part->has_filename = gdf__param(h, n, "filename", part->filename, sizeof(part->filename));
      disposition = 1;
    } else if (n > 13 && strncasecmp(h, "Content-Type:", 13) == 0) {
      const char *v = h + 13;
      while (*v == ' ') v++;
      snprintf(part->content_type, sizeof(part->content_type), "%.*s", (int)(n - (size_t)(v - h)), v);
    }
    h += n + 2;
  }
  return disposition ? NULL : "(#100) Each part must have a Content-Disposition header";
}

/* Appends a part to rq->form, copying its bytes. */
static gd_form_part *gdf__add(gd_request *rq, const char *data, size_t len) {
  gd_form_part *p = realloc(rq->form, (size_t)(rq->nform + 1) * sizeof(*p));
  GD_CHECK(p != NULL);
  rq->form = p;
  p = &rq->form[rq->nform++];
  memset(p, 0, sizeof(*p));
  p->data = malloc(len + 1);
  GD_CHECK(p->data != NULL);
  memcpy(p->data, data, len);
  p->data[len] = '\0';
  p->len = len;
  return p;
}

const char *gd_form_parse(gd_request *rq) {
  char boundary[80], delim[84];
  if (!gdf__boundary(rq->content_type, boundary, sizeof(boundary)))
    return "(#100) A multipart/form-data body needs a boundary parameter of 1 to 70 characters";
  size_t dl = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
  const char *p = rq->body, *end = rq->body + rq->body_len;
  if ((size_t)(end - p) < dl || memcmp(p, delim, dl) != 0)
    return "(#100) The multipart body must begin with the boundary";
  p += dl;
  for (;;) {
    if (end - p >= 2 && memcmp(p, "--", 2) == 0) break; /* the close delimiter */
    if (end - p < 2 || memcmp(p, "\r\n", 2) != 0) return "(#100) A boundary must be followed by CRLF";
    p += 2;
    const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (head_end == NULL) return "(#100) A multipart part has no end of headers";
    /* The data ends at the next CRLF + delimiter: that is why the boundary must not occur in it. */
    char next[88];
    size_t nl = (size_t)snprintf(next, sizeof(next), "\r\n%s", delim);
    const char *data = head_end + 4;
    const char *data_end = memmem(data, (size_t)(end - data), next, nl);
    if (data_end == NULL) return "(#100) The multipart body is not closed with its boundary";
    gd_form_part tmp = {0};
    const char *why = gdf__headers(p, (size_t)(head_end - p) + 2, &tmp);
    if (why != NULL) return why;
    gd_form_part *part = gdf__add(rq, data, (size_t)(data_end - data));
    memcpy(part->name, tmp.name, sizeof(part->name));
    memcpy(part->filename, tmp.filename, sizeof(part->filename));
    memcpy(part->content_type, tmp.content_type, sizeof(part->content_type));
    part->has_filename = tmp.has_filename;
    p = data_end + nl;
  }
  if (rq->nform == 0) return "(#100) The multipart body has no parts";
  return NULL;
}

const gd_form_part *gd_form_get(const gd_request *rq, const char *name) {
  for (int i = 0; rq != NULL && i < rq->nform; i++) {
    if (strcmp(rq->form[i].name, name) == 0) return &rq->form[i];
  }
  return NULL;
}

/* The file part named name: its filename and content type present; why otherwise. */
static const char *gdf__file(const gd_request *rq, const char *name, const gd_form_part **out) {
  static char why[160];
  const gd_form_part *f = gd_form_get(rq, name);
  *out = f;
  if (f == NULL || !f->has_filename) {
    snprintf(why, sizeof(why), "(#100) The parameter %s is required", name);
    return why;
  }
  if (f->content_type[0] == '\0' || strchr(f->content_type, '/') == NULL) {
    snprintf(why, sizeof(why), "(#100) Param %s must have a Content-Type", name);
    return why;
  }
  if (f->filename[0] == '\0') {
    snprintf(why, sizeof(why), "(#100) Param %s must have a filename", name);
    return why;
  }
  return NULL;
}

/* Messenger's attachment types take these media families; "file" takes anything. */
static int gdf__type_fits(const char *type, const char *mime) {
  if (strcmp(type, "file") == 0) return 1;
  size_t n = strlen(type);
  return strncmp(mime, type, n) == 0 && mime[n] == '/';
}

json_t *gd_form_messenger(const gd_request *rq, const char **why) {
  static const char *const json_fields[] = {"recipient", "message", "reply_to"};
  static const char *const text_fields[] = {"messaging_type", "tag"};
  json_t *b = json_object();
  for (size_t i = 0; i < 3; i++) {
    const gd_form_part *f = gd_form_get(rq, json_fields[i]);
    if (f == NULL) continue;
    json_t *v = json_loadb(f->data, f->len, 0, NULL);
    if (v == NULL) {
      *why = i == 0 ? "(#100) Param recipient must be a JSON object" : "(#100) Param message must be a JSON object";
      json_decref(b);
      return NULL;
    }
    json_object_set_new(b, json_fields[i], v);
  }
  for (size_t i = 0; i < 2; i++) {
    const gd_form_part *f = gd_form_get(rq, text_fields[i]);
    if (f != NULL) json_object_set_new(b, text_fields[i], json_stringn(f->data, f->len));
  }
  const json_t *att = json_object_get(json_object_get(b, "message"), "attachment");
  const json_t *payload = json_object_get(att, "payload");
  const char *type = json_string_value(json_object_get(att, "type"));
  if (json_object_get(payload, "url") != NULL || json_object_get(payload, "attachment_id") != NULL) {
    *why = "(#100) An upload's message[attachment][payload] takes neither url nor attachment_id";
  } else if (type != NULL) {
    const gd_form_part *file;
    *why = gdf__file(rq, "filedata", &file);
    if (*why == NULL && !gdf__type_fits(type, file->content_type)) *why = "(#100) Upload attachment failure.";
  } else {
    *why = NULL; /* the shape check names what is missing */
  }
  if (*why != NULL) {
    json_decref(b);
    return NULL;
  }
  return b;
}

const char *gd_form_check_media(const gd_request *rq, const gd_form_part **file) {
  const gd_form_part *product = gd_form_get(rq, "messaging_product");
  const gd_form_part *type = gd_form_get(rq, "type");
  if (product == NULL || strcmp(product->data, "whatsapp") != 0)
    return "(#100) The parameter messaging_product is required.";
  const char *why = gdf__file(rq, "file", file);
  if (why != NULL) return why;
  if (type == NULL || type->len == 0) return "(#100) The parameter type is required.";
  if (strcmp(type->data, (*file)->content_type) != 0)
    return "(#100) Param type must be the MIME type of the uploaded file.";
  if ((*file)->len == 0) return "(#100) Param file must not be empty.";
  return NULL;
}

char *gd_form_summary(const gd_request *rq) {
  json_t *fields = json_object(), *files = json_array();
  for (int i = 0; i < rq->nform; i++) {
    const gd_form_part *f = &rq->form[i];
    if (f->has_filename)
      json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:I}", "name", f->name, "filename", f->filename,
                                             "content_type", f->content_type, "size", (json_int_t)f->len));
    else
      json_object_set_new(fields, f->name, json_stringn(f->data, f->len));
  }
  json_t *root = json_pack("{s:o, s:o}", "fields", fields, "files", files);
  char *s = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  return s;
}
