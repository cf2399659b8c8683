/* webhook_json.c — cJSON with jansson's strictness where the plugins relied
 * on it (webhook_json.h). */
#include "webhook_json.h"

#include <stdio.h>
#include <string.h>

#include "sb_utf8.h"

/* True when body holds a \u0000 escape (an odd run of backslashes before
 * "u0000"): cJSON would end the string there and drop the rest silently. */
static int wj__has_nul_escape(const char *body, size_t len) {
  const char *p = body, *end = body + len;
  while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
    const char *run = p;
    while (p < end && *p == '\\') p++;
    if ((p - run) % 2 == 1 && end - p >= 5 && memcmp(p, "u0000", 5) == 0) return 1;
  }
  return 0;
}

/* True when some object in the tree names a key twice. */
static int wj__has_duplicate(const cJSON *v) {
  for (const cJSON *c = v != NULL ? v->child : NULL; c != NULL; c = c->next) {
    if (cJSON_IsObject(v))
      for (const cJSON *d = c->next; d != NULL; d = d->next)
        if (strcmp(c->string, d->string) == 0) return 1;
    if (wj__has_duplicate(c)) return 1;
  }
  return 0;
}

static void wj__where(const char *body, size_t off, char *err, size_t errlen, const char *what) {
  int line = 1, col = 1;
  for (size_t i = 0; i < off; i++) {
    if (body[i] == '\n') line++, col = 1;
    else col++;
  }
  snprintf(err, errlen, "%s at line %d, column %d", what, line, col);
}

cJSON *wj_parse(const char *body, size_t len, int flags, char *err, size_t errlen) {
  if (err != NULL && errlen > 0) err[0] = '\0';
  char scratch[2];
  if (err == NULL || errlen == 0) err = scratch, errlen = sizeof(scratch);
  if (body == NULL) body = "", len = 0;
  if (!sb_utf8_valid(body, len)) {
    snprintf(err, errlen, "the body is not UTF-8");
    return NULL;
  }
  if (wj__has_nul_escape(body, len)) {
    snprintf(err, errlen, "a string holds \\u0000");
    return NULL;
  }
  const char *stop = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &stop, 0);
  if (root == NULL) {
    size_t off = stop != NULL && stop >= body && stop <= body + len ? (size_t)(stop - body) : 0;
    if (len == 0) snprintf(err, errlen, "the body is empty");
    else wj__where(body, off, err, errlen, "unexpected input");
    return NULL;
  }
  for (const char *p = stop; p < body + len; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      wj__where(body, (size_t)(p - body), err, errlen, "something follows the JSON value");
      cJSON_Delete(root);
      return NULL;
    }
  }
  if ((flags & WJ_REJECT_DUPLICATES) && wj__has_duplicate(root)) {
    snprintf(err, errlen, "an object names a key twice");
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

const cJSON *wj_get(const cJSON *obj, const char *key) {
  return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

const char *wj_string(const cJSON *v) { return cJSON_IsString(v) ? v->valuestring : NULL; }

const char *wj_get_string(const cJSON *obj, const char *key) { return wj_string(wj_get(obj, key)); }

int wj_integer(const cJSON *v, int64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

int wj_is_true(const cJSON *v) { return cJSON_IsTrue(v); }

size_t wj_size(const cJSON *v) { return cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 0; }
