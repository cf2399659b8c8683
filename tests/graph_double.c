/* graph_double.c — the local Graph API double: Send API, User Profile, WhatsApp messages, media and uploads. */
#include "graph_double.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "channel.h"
#include "graph_double_internal.h"

#define GD_MAX_UPLOADS 64

typedef struct gd_conn {
  uv_tcp_t tcp;
  char *buf;
  size_t len;
  int handled, closing;
  struct gd_conn *next;
} gd_conn;

typedef struct gd_script {
  char path_part[128]; /* "" matches any path */
  int status;          /* 0: silence */
  char *body;
  int used;
} gd_script;

typedef struct gd_named {
  char id[128], a[256], b[256], c[256];
} gd_named;

typedef struct gd_state {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  char base[96], token[256], page_id[64];
  gd_request reqs[GD_MAX_REQUESTS];
  int nreqs;
  gd_script scripts[32];
  int nscripts;
  gd_named profiles[32], media[32];
  int nprofiles, nmedia;
  gd_upload uploads[GD_MAX_UPLOADS];
  int nuploads;
  int next_id;
  FILE *log;
  gd_conn *conns;
} gd_state;

static gd_state gd;

typedef struct gd_write {
  uv_write_t req;
  gd_conn *conn;
  char *text;
} gd_write;

static void gd__closed(uv_handle_t *h) {
  gd_conn *c = h->data;
  free(c->buf);
  free(c);
}

static void gd__close(gd_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  for (gd_conn **p = &gd.conns; *p != NULL; p = &(*p)->next) {
    if (*p == c) {
      *p = c->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&c->tcp, gd__closed);
}

static void gd__written(uv_write_t *req, int status) {
  gd_write *w = (gd_write *)req;
  if (status == 0) gd__close(w->conn);
  free(w->text);
  free(w);
}

/* Logs an answered request as one JSON line (a form as its summary: an upload's bytes are no JSON string). */
static void gd__log(const gd_request *rq, int status) {
  char *form = rq->form != NULL ? gd_form_summary(rq) : NULL;
  const char *body = form != NULL ? form : rq->body;
  json_t *line = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:i}", "method", rq->method, "path", rq->path, "query",
                           rq->query, "auth", rq->auth, "body", body, form != NULL ? strlen(form) : rq->body_len,
                           "status", status);
  char *text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
  if (text != NULL) fprintf(gd.log, "%s\n", text);
  fflush(gd.log);
  free(text);
  free(form);
  json_decref(line);
}

/* Answers with blen bytes of body and closes the connection. */
static void gd__respond_bytes(gd_conn *c, gd_request *rq, int status, const char *type, const char *body,
                              size_t blen) {
  rq->status = status;
  if (gd.log != NULL) gd__log(rq, status);
  gd_write *w = calloc(1, sizeof(*w));
  w->conn = c;
  w->text = malloc(blen + 512);
  int n = snprintf(w->text, 512,
                   "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                   "x-fb-trace-id: AbCdEf\r\n\r\n",
                   status, type, blen);
  memcpy(w->text + n, body, blen);
  uv_buf_t b = uv_buf_init(w->text, (unsigned)(n + (int)blen));
  GD_CHECK(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, gd__written) == 0);
}

static void gd__respond(gd_conn *c, gd_request *rq, int status, const char *type, const char *body) {
  gd__respond_bytes(c, rq, status, type, body, strlen(body));
}

/* A Graph error envelope with the fields Meta documents. */
static char *gd__envelope(long code, long subcode, const char *message, const char *type) {
  json_t *err = json_pack("{s:s, s:s, s:I, s:s}", "message", message, "type", type, "code", (json_int_t)code,
                          "fbtrace_id", "AbCdEfGhIjK");
  if (subcode != 0) json_object_set_new(err, "error_subcode", json_integer(subcode));
  if (code >= 130000 || code == 80007 || code == 368) {
    json_object_set_new(err, "error_data",
                        json_pack("{s:s, s:s}", "messaging_product", "whatsapp", "details", message));
  }
  json_t *root = json_pack("{s:o}", "error", err);
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

static void gd__error(gd_conn *c, gd_request *rq, int status, long code, long subcode, const char *message) {
  char *s = gd__envelope(code, subcode, message, code == 190 || code == 2500 ? "OAuthException" : "OAuthException");
  gd__respond(c, rq, status, "application/json", s);
  free(s);
}

static int gd__head(const char *head, const char *name, char *out, size_t outlen) {
  size_t nlen = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
      const char *v = line + nlen + 1;
      while (*v == ' ') v++;
      snprintf(out, outlen, "%.*s", (int)strcspn(v, "\r\n"), v);
      return 1;
    }
  }
  return 0;
}

static const gd_named *gd__find(const gd_named *list, int n, const char *id) {
  for (int i = 0; i < n; i++) {
    if (strcmp(list[i].id, id) == 0) return &list[i];
  }
  return NULL;
}

const gd_upload *gd_upload_find(const char *id) {
  for (int i = 0; id != NULL && i < gd.nuploads; i++) {
    if (strcmp(gd.uploads[i].id, id) == 0) return &gd.uploads[i];
  }
  return NULL;
}

int gd_upload_count(void) { return gd.nuploads; }

/* Checks a Messenger Send API body; returns NULL when fine, else why. */
static const char *gd__check_messenger(const json_t *b) {
  const char *to = json_string_value(json_object_get(json_object_get(b, "recipient"), "id"));
  const char *type = json_string_value(json_object_get(b, "messaging_type"));
  const json_t *msg = json_object_get(b, "message");
  if (to == NULL) return "(#100) The parameter recipient is required";
  if (type == NULL ||
      (strcmp(type, "RESPONSE") != 0 && strcmp(type, "UPDATE") != 0 && strcmp(type, "MESSAGE_TAG") != 0))
    return "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}";
  if (strcmp(type, "MESSAGE_TAG") == 0) {
    const char *tag = json_string_value(json_object_get(b, "tag"));
    if (tag == NULL || strcmp(tag, "HUMAN_AGENT") != 0) return "(#100) Param tag must be a valid message tag";
  }
  if (!json_is_object(msg)) return "(#100) The parameter message is required";
  const json_t *text = json_object_get(msg, "text"), *att = json_object_get(msg, "attachment");
  if ((text == NULL) == (att == NULL)) return "(#100) Exactly one of message[text] or message[attachment] must be set";
  if (text != NULL && (!json_is_string(text) || json_string_length(text) == 0 || json_string_length(text) > 2000))
    return "(#100) Param message[text] must be a non-empty UTF-8 string of at most 2000 characters";
  if (att != NULL && json_object_get(att, "type") == NULL) return "(#100) Param message[attachment][type] is required";
  const json_t *rt = json_object_get(b, "reply_to");
  if (rt != NULL && !json_is_string(json_object_get(rt, "mid"))) return "(#100) Param reply_to[mid] must be a string";
  return NULL;
}

/* Checks a WhatsApp Cloud API message body; returns NULL when fine, else why. */
static const char *gd__check_whatsapp(const json_t *b) {
  const char *product = json_string_value(json_object_get(b, "messaging_product"));
  const char *to = json_string_value(json_object_get(b, "to"));
  const char *type = json_string_value(json_object_get(b, "type"));
  if (product == NULL || strcmp(product, "whatsapp") != 0) return "(#100) The parameter messaging_product is required.";
  if (to == NULL || to[0] == '\0') return "(#100) The parameter to is required.";
  if (type == NULL) type = "text";
  const json_t *obj = json_object_get(b, type);
  if (!json_is_object(obj)) return "(#100) Param for the message type is required.";
  if (strcmp(type, "text") == 0 && !json_is_string(json_object_get(obj, "body")))
    return "(#100) Param text['body'] is required.";
  if (strcmp(type, "template") == 0) {
    if (!json_is_string(json_object_get(obj, "name"))) return "(#100) Param template['name'] is required.";
    if (!json_is_string(json_object_get(json_object_get(obj, "language"), "code")))
      return "(#100) Param template['language']['code'] is required.";
  }
  if (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0 || strcmp(type, "video") == 0 ||
      strcmp(type, "document") == 0 || strcmp(type, "sticker") == 0) {
    const json_t *id = json_object_get(obj, "id");
    if (json_object_get(obj, "link") == NULL && id == NULL) return "(#100) Param media must have a link or an id.";
    /* an id names media uploaded to this number (or media the test added) */
    if (id != NULL && gd_upload_find(json_string_value(id)) == NULL &&
        gd__find(gd.media, gd.nmedia, json_string_value(id) != NULL ? json_string_value(id) : "") == NULL)
      return "(#100) Invalid parameter: the media id does not name uploaded media.";
  }
  const json_t *ctx = json_object_get(b, "context");
  if (ctx != NULL && !json_is_string(json_object_get(ctx, "message_id")))
    return "(#100) Param context['message_id'] must be a string.";
  return NULL;
}

/* Takes a WhatsApp upload: keeps its bytes under a new media id and answers {"id"}. */
static void gd__take_upload(gd_conn *c, gd_request *rq, const gd_form_part *file) {
  const gd_form_part *type = gd_form_get(rq, "type");
  GD_CHECK(gd.nuploads < GD_MAX_UPLOADS);
  gd_upload *u = &gd.uploads[gd.nuploads++];
  snprintf(u->id, sizeof(u->id), "77%014d", ++gd.next_id);
  snprintf(u->type, sizeof(u->type), "%s", type->data);
  snprintf(u->filename, sizeof(u->filename), "%s", file->filename);
  u->data = malloc(file->len + 1);
  GD_CHECK(u->data != NULL);
  memcpy(u->data, file->data, file->len + 1);
  u->len = file->len;
  char out[64];
  snprintf(out, sizeof(out), "{\"id\":\"%s\"}", u->id);
  gd__respond(c, rq, 200, "application/json", out);
}

/* A multipart/form-data POST: Messenger's Send API with filedata, or WhatsApp's /media. why: what
 * gd_form_parse found wrong with the body, or NULL. */
static void gd__form_route(gd_conn *c, gd_request *rq, const char *rest, const char *why) {
  if (why != NULL) {
    gd__error(c, rq, 400, 100, 0, why);
    return;
  }
  const char *slash = strchr(rest, '/');
  if (strcmp(rest, "me/messages") == 0) {
    json_t *body = gd_form_messenger(rq, &why);
    if (why == NULL) why = gd__check_messenger(body);
    if (why != NULL) {
      gd__error(c, rq, 400, 100, strstr(why, "Upload attachment failure") != NULL ? 2018047 : 0, why);
    } else {
      char out[512];
      const char *to = json_string_value(json_object_get(json_object_get(body, "recipient"), "id"));
      int n = ++gd.next_id;
      snprintf(out, sizeof(out), "{\"recipient_id\":\"%s\",\"message_id\":\"m_sent%04d\",\"attachment_id\":\"88%014d\"}",
               to, n, n);
      gd__respond(c, rq, 200, "application/json", out);
    }
    json_decref(body);
  } else if (slash != NULL && strcmp(slash, "/media") == 0 && slash != rest) {
    const gd_form_part *file = NULL;
    why = gd_form_check_media(rq, &file);
    if (why != NULL)
      gd__error(c, rq, 400, 100, 0, why);
    else
      gd__take_upload(c, rq, file);
  } else {
    gd__error(c, rq, 400, 100, 0, "(#100) Unknown method or path");
  }
}

static int gd__is_form(const gd_request *rq) {
  return strcmp(rq->method, "POST") == 0 && strncasecmp(rq->content_type, "multipart/form-data", 19) == 0;
}

/* The double's own behaviour for a request no script answered; form_why: a form's parse error. */
static void gd__route(gd_conn *c, gd_request *rq, const char *form_why) {
  if (strncmp(rq->path, "/cdn/", 5) == 0) {
    /* Messenger's attachment URLs: Meta's CDN, signed links without a token */
    const gd_named *m = gd__find(gd.media, gd.nmedia, rq->path + 5);
    if (m == NULL)
      gd__respond(c, rq, 403, "text/plain", "URL signature expired");
    else
      gd__respond(c, rq, 200, m->b, m->c);
    return;
  }
  char tok[300] = "";
  if (strncmp(rq->auth, "Bearer ", 7) == 0) snprintf(tok, sizeof(tok), "%s", rq->auth + 7);
  const char *qt = strstr(rq->query, "access_token=");
  if (tok[0] == '\0' && qt != NULL) snprintf(tok, sizeof(tok), "%.*s", (int)strcspn(qt + 13, "&"), qt + 13);
  if (tok[0] == '\0') {
    gd__error(c, rq, 400, 2500, 0, "An active access token must be used to query information about the current user.");
    return;
  }
  if (strcmp(tok, gd.token) != 0) {
    gd__error(c, rq, 401, 190, 0, "Invalid OAuth access token - Cannot parse access token");
    return;
  }
  char out[2048];
  if (strncmp(rq->path, "/media/", 7) == 0) {
    const gd_named *m = gd__find(gd.media, gd.nmedia, rq->path + 7);
    const gd_upload *u = gd_upload_find(rq->path + 7);
    if (u != NULL) {
      gd__respond_bytes(c, rq, 200, u->type, u->data, u->len);
      return;
    }
    if (m == NULL) {
      gd__respond(c, rq, 404, "text/plain", "not found");
      return;
    }
    gd__respond(c, rq, 200, m->b, m->c);
    return;
  }
  const char *prefix = "/" GD_VERSION "/";
  if (strncmp(rq->path, prefix, strlen(prefix)) != 0) {
    gd__error(c, rq, 400, 2500, 0, "Unknown path components");
    return;
  }
  const char *rest = rq->path + strlen(prefix);
  json_t *body = NULL;
  if (gd__is_form(rq)) {
    gd__form_route(c, rq, rest, form_why);
    return;
  }
  if (strcmp(rq->method, "POST") == 0) {
    body = json_loadb(rq->body, rq->body_len, 0, NULL);
    if (!json_is_object(body)) {
      json_decref(body);
      gd__error(c, rq, 400, 100, 0, "(#100) The request body must be a JSON object");
      return;
    }
  }
  const char *slash = strchr(rest, '/');
  if (strcmp(rq->method, "POST") == 0 && slash != NULL && strcmp(slash, "/messages") == 0) {
    const char *why;
    int wa = json_object_get(body, "messaging_product") != NULL || strncmp(rest, "me/", 3) != 0;
    why = wa ? gd__check_whatsapp(body) : gd__check_messenger(body);
    if (why != NULL) {
      gd__error(c, rq, 400, 100, 0, why);
    } else if (wa) {
      const char *to = json_string_value(json_object_get(body, "to"));
      snprintf(out, sizeof(out),
               "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"%s\",\"wa_id\":\"%s\"}],"
               "\"messages\":[{\"id\":\"wamid.HBgL%04d\"}]}",
               to, to, ++gd.next_id);
      gd__respond(c, rq, 200, "application/json", out);
    } else {
      const char *to = json_string_value(json_object_get(json_object_get(body, "recipient"), "id"));
      snprintf(out, sizeof(out), "{\"recipient_id\":\"%s\",\"message_id\":\"m_sent%04d\"}", to, ++gd.next_id);
      gd__respond(c, rq, 200, "application/json", out);
    }
  } else if (strcmp(rq->method, "POST") == 0 && strcmp(rest, "me/messenger_profile") == 0) {
    gd__respond(c, rq, 200, "application/json", "{\"result\":\"success\"}");
  } else if (strcmp(rq->method, "GET") == 0 && slash == NULL) {
    const gd_named *p = gd__find(gd.profiles, gd.nprofiles, rest);
    const gd_named *m = gd__find(gd.media, gd.nmedia, rest);
    const gd_upload *u = gd_upload_find(rest);
    if (u != NULL) {
      snprintf(out, sizeof(out),
               "{\"messaging_product\":\"whatsapp\",\"url\":\"http://127.0.0.1:%d/media/%s\",\"mime_type\":\"%s\","
               "\"file_size\":%zu,\"id\":\"%s\"}",
               gd.port, u->id, u->type, u->len, u->id);
      gd__respond(c, rq, 200, "application/json", out);
    } else if (m != NULL) {
      snprintf(out, sizeof(out),
               "{\"messaging_product\":\"whatsapp\",\"url\":\"http://127.0.0.1:%d/media/%s\",\"mime_type\":\"%s\","
               "\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"file_size\":%zu,"
               "\"id\":\"%s\"}",
               gd.port, m->id, m->b, strlen(m->c), m->id);
      gd__respond(c, rq, 200, "application/json", out);
    } else if (p != NULL) {
      snprintf(out, sizeof(out), "{\"first_name\":\"%s\",\"last_name\":\"%s\",\"profile_pic\":\"%s\",\"id\":\"%s\"}",
               p->a, p->b, p->c, p->id);
      gd__respond(c, rq, 200, "application/json", out);
    } else if (strcmp(rest, gd.page_id) == 0) {
      snprintf(out, sizeof(out), "{\"name\":\"Acme Support\",\"id\":\"%s\"}", gd.page_id);
      gd__respond(c, rq, 200, "application/json", out);
    } else if (strstr(rq->query, "first_name") != NULL) {
      gd__error(c, rq, 400, 100, 2018218, "(#100) No profile available for this user.");
    } else {
      gd__error(c, rq, 400, 100, 33,
                "Unsupported get request. Object does not exist, cannot be loaded due to missing permissions, or "
                "does not support this operation.");
    }
  } else {
    gd__error(c, rq, 400, 100, 0, "(#100) Unknown method or path");
  }
  json_decref(body);
}

/* POST /__double/script {"path", "http_status", "code", "subcode", "message"}
 * or {"path", "silence": true}: what gd_script_error / gd_script_silence do,
 * for a test that drives graph_double_server from outside. */
static void gd__control(gd_conn *c, gd_request *rq) {
  json_t *o = json_loads(rq->body, 0, NULL);
  const char *path = json_string_value(json_object_get(o, "path"));
  if (!json_is_object(o)) {
    gd__respond(c, rq, 400, "application/json", "{\"error\":\"a JSON object, please\"}");
  } else if (json_is_true(json_object_get(o, "silence"))) {
    gd_script_silence(path);
    gd__respond(c, rq, 200, "application/json", "{}");
  } else {
    const char *msg = json_string_value(json_object_get(o, "message"));
    gd_script_error(path, (int)json_integer_value(json_object_get(o, "http_status")),
                    (long)json_integer_value(json_object_get(o, "code")),
                    (long)json_integer_value(json_object_get(o, "subcode")), msg != NULL ? msg : "Scripted error");
    gd__respond(c, rq, 200, "application/json", "{}");
  }
  json_decref(o);
}

static void gd__handle(gd_conn *c, gd_request *rq) {
  /* A form is read first, so a scripted answer's request keeps its parts for the test too. */
  const char *form_why = gd__is_form(rq) ? gd_form_parse(rq) : NULL;
  if (strcmp(rq->method, "POST") == 0 && strcmp(rq->path, "/__double/script") == 0) {
    gd__control(c, rq);
    return;
  }
  for (int i = 0; i < gd.nscripts; i++) {
    gd_script *s = &gd.scripts[i];
    if (s->used || (s->path_part[0] != '\0' && strstr(rq->path, s->path_part) == NULL)) continue;
    s->used = 1;
    if (s->status == 0) return; /* silence: the connection stays open until the client gives up */
    gd__respond(c, rq, s->status, "application/json", s->body);
    return;
  }
  gd__route(c, rq, form_why);
}

static void gd__request_free(gd_request *rq) {
  for (int i = 0; i < rq->nform; i++) free(rq->form[i].data);
  free(rq->form);
  free(rq->body);
  rq->form = NULL;
  rq->nform = 0;
  rq->body = NULL;
}

static void gd__try(gd_conn *c) {
  if (c->handled) return;
  char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (end == NULL) return;
  size_t head_len = (size_t)(end - c->buf) + 4;
  char head[8192], value[64];
  snprintf(head, sizeof(head), "%.*s", (int)head_len, c->buf);
  size_t clen = gd__head(head, "Content-Length", value, sizeof(value)) ? (size_t)atol(value) : 0;
  if (c->len < head_len + clen) return;
  c->handled = 1;
  /* Past GD_MAX_REQUESTS (a benchmark's profile lookups, run after run) a
   * request is answered as always but not kept. */
  gd_request unkept = {0}, *rq = gd.nreqs < GD_MAX_REQUESTS ? &gd.reqs[gd.nreqs++] : &unkept;
  char target[1600] = "";
  sscanf(head, "%7s %1599s", rq->method, target);
  char *q = strchr(target, '?');
  if (q != NULL) {
    *q = '\0';
    snprintf(rq->query, sizeof(rq->query), "%s", q + 1);
  }
  snprintf(rq->path, sizeof(rq->path), "%.500s", target);
  gd__head(head, "Authorization", rq->auth, sizeof(rq->auth));
  gd__head(head, "Content-Type", rq->content_type, sizeof(rq->content_type));
  rq->body = malloc(clen + 1);
  memcpy(rq->body, c->buf + head_len, clen);
  rq->body[clen] = '\0';
  rq->body_len = clen;
  gd__handle(c, rq);
  if (rq == &unkept) gd__request_free(&unkept);
}

static void gd__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = malloc(65536);
  buf->len = 65536;
}

static void gd__read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  gd_conn *c = s->data;
  if (nread > 0) {
    c->buf = realloc(c->buf, c->len + (size_t)nread);
    memcpy(c->buf + c->len, buf->base, (size_t)nread);
    c->len += (size_t)nread;
    gd__try(c);
  } else if (nread < 0) {
    gd__close(c);
  }
  free(buf->base);
}

static void gd__accept(uv_stream_t *server, int status) {
  if (status < 0) return;
  gd_conn *c = calloc(1, sizeof(*c));
  uv_tcp_init(gd.loop, &c->tcp);
  c->tcp.data = c;
  GD_CHECK(uv_accept(server, (uv_stream_t *)&c->tcp) == 0);
  c->next = gd.conns;
  gd.conns = c;
  uv_read_start((uv_stream_t *)&c->tcp, gd__alloc, gd__read);
}

void gd_start(uv_loop_t *loop, const char *token, const char *page_id) {
  memset(&gd, 0, sizeof(gd));
  gd.loop = loop;
  snprintf(gd.token, sizeof(gd.token), "%s", token);
  snprintf(gd.page_id, sizeof(gd.page_id), "%s", page_id != NULL ? page_id : "");
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_init(loop, &gd.listener);
  GD_CHECK(uv_tcp_bind(&gd.listener, (const struct sockaddr *)&sa, 0) == 0);
  GD_CHECK(uv_listen((uv_stream_t *)&gd.listener, 64, gd__accept) == 0);
  int len = sizeof(sa);
  uv_tcp_getsockname(&gd.listener, (struct sockaddr *)&sa, &len);
  gd.port = ntohs(sa.sin_port);
  snprintf(gd.base, sizeof(gd.base), "http://127.0.0.1:%d/" GD_VERSION, gd.port);
}

void gd_stop(void) {
  while (gd.conns != NULL) gd__close(gd.conns);
  uv_close((uv_handle_t *)&gd.listener, NULL);
  for (int i = 0; i < gd.nreqs; i++) gd__request_free(&gd.reqs[i]);
  for (int i = 0; i < gd.nuploads; i++) free(gd.uploads[i].data);
  gd.nuploads = 0;
  for (int i = 0; i < gd.nscripts; i++) free(gd.scripts[i].body);
  gd.nreqs = gd.nscripts = 0;
}

const char *gd_base(void) { return gd.base; }
void gd_set_log(FILE *f) { gd.log = f; }
int gd_port(void) { return gd.port; }

void gd_add_profile(const char *psid, const char *first, const char *last, const char *pic) {
  GD_CHECK(gd.nprofiles < 32);
  gd_named *p = &gd.profiles[gd.nprofiles++];
  snprintf(p->id, sizeof(p->id), "%s", psid);
  snprintf(p->a, sizeof(p->a), "%s", first);
  snprintf(p->b, sizeof(p->b), "%s", last);
  snprintf(p->c, sizeof(p->c), "%s", pic);
}

void gd_add_media(const char *id, const char *mime, const char *bytes) {
  GD_CHECK(gd.nmedia < 32);
  gd_named *m = &gd.media[gd.nmedia++];
  snprintf(m->id, sizeof(m->id), "%s", id);
  snprintf(m->b, sizeof(m->b), "%s", mime);
  snprintf(m->c, sizeof(m->c), "%s", bytes);
}

static void gd__queue(const char *path_part, int status, char *body) {
  GD_CHECK(gd.nscripts < 32);
  gd_script *s = &gd.scripts[gd.nscripts++];
  snprintf(s->path_part, sizeof(s->path_part), "%s", path_part != NULL ? path_part : "");
  s->status = status;
  s->body = body;
}

void gd_script_error(const char *path_part, int http_status, long code, long subcode, const char *message) {
  gd__queue(path_part, http_status, gd__envelope(code, subcode, message, "OAuthException"));
}

void gd_script_raw(const char *path_part, int http_status, const char *body) {
  gd__queue(path_part, http_status, strdup(body));
}

void gd_script_silence(const char *path_part) { gd__queue(path_part, 0, strdup("")); }

int gd_count(void) { return gd.nreqs; }

const gd_request *gd_at(int i) { return i >= 0 && i < gd.nreqs ? &gd.reqs[i] : NULL; }

const gd_request *gd_last(const char *path_part) {
  for (int i = gd.nreqs - 1; i >= 0; i--) {
    if (path_part == NULL || strstr(gd.reqs[i].path, path_part) != NULL) return &gd.reqs[i];
  }
  return NULL;
}

int gd_count_path(const char *path_part) {
  int n = 0;
  for (int i = 0; i < gd.nreqs; i++) n += strstr(gd.reqs[i].path, path_part) != NULL;
  return n;
}

char *gd_webhook_body(const char *json) {
  json_t *root = json_loads(json, 0, NULL);
  if (root == NULL) return NULL;
  char *s = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH | JSON_PRESERVE_ORDER);
  json_decref(root);
  /* Meta writes the hex digits of its escapes in lowercase; jansson in uppercase. */
  for (char *p = s; p != NULL && *p != '\0'; p++) {
    if (p[0] == '\\' && p[1] == '\\') {
      p++;
    } else if (p[0] == '\\' && p[1] == 'u') {
      for (int i = 2; i < 6 && p[i] != '\0'; i++) p[i] = (char)tolower((unsigned char)p[i]);
    }
  }
  return s;
}

void gd_sign(const char *app_secret, const char *body, size_t len, char out[72]) {
  uint8_t mac[32];
  hostapi_table()->hmac_sha256(app_secret, strlen(app_secret), body, len, mac);
  memcpy(out, "sha256=", 7);
  for (int i = 0; i < 32; i++) snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}
