/* webhook_json.c — cJSON with jansson's strictness where the plugins relied
 * on it (webhook_json.h). */
#include "webhook_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sb_utf8.h"

static int wj__digit(char c) { return c >= '0' && c <= '9'; }

static int wj__hex4(const char *p) {
  for (int k = 0; k < 4; k++)
    if (!wj__digit(p[k]) && !((p[k] | 0x20) >= 'a' && (p[k] | 0x20) <= 'f')) return 0;
  return 1;
}

/* The lexical rules of JSON that cJSON does not enforce, checked in one
 * pass before it parses: between tokens only space, tab, LF and CR; in a
 * string UTF-8, no byte below 0x20 and only JSON's escapes (\u with four hex
 * digits, never \u0000, which would end the string early); numbers as
 * JSON writes them (no "01", "1." or ".5"), each followed by a delimiter.
 * What is left (structure, literals, unterminated strings) cJSON refuses
 * itself. *huge is set when a number could be too large for a double (an
 * exponent, or 300 digits and more). Returns NULL, or a sentence with the
 * offending offset in *at. */
static const char *wj__lex(const char *b, size_t len, size_t *at, int *huge) {
  size_t i = 0;
  while (i < len) {
    char c = b[i];
    *at = i;
    switch (c) {
    case ' ': case '\t': case '\n': case '\r': case '{': case '}': case '[': case ']': case ':': case ',':
      i++;
      continue;
    case '"':
      for (i++; i < len; i++) {
        unsigned char u = (unsigned char)b[i];
        if (u >= 0x20 && u < 0x80 && u != '"' && u != '\\') continue;
        *at = i;
        if (u == '"') break;
        if (u >= 0x80) { /* UTF-8 is checked here: only a string may hold such bytes */
          size_t n = (u & 0xe0) == 0xc0 ? 2 : (u & 0xf0) == 0xe0 ? 3 : (u & 0xf8) == 0xf0 ? 4 : 0;
          if (n == 0 || len - i < n || !sb_utf8_valid(b + i, n)) return "the body is not UTF-8";
          i += n - 1;
          continue;
        }
        if (u < 0x20) return "a control character in a string";
        if (i + 1 >= len) return NULL; /* unterminated: cJSON says so */
        char e = b[++i];
        if (e == 'u') {
          if (len - i < 5 || !wj__hex4(b + i + 1)) return "a \\u escape without four hex digits";
          if (memcmp(b + i + 1, "0000", 4) == 0) return "a string holds \\u0000";
          i += 4;
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return "an escape JSON does not have";
        }
      }
      i++;
      continue;
    default:
      break;
    }
    if (c == '-' || wj__digit(c)) {
      size_t j = i + (c == '-'), digits = j;
      if (j >= len || !wj__digit(b[j])) return "a number without digits";
      if (b[j] == '0') j++;
      else while (j < len && wj__digit(b[j])) j++;
      if (j - digits >= 300) *huge = 1;
      if (j < len && b[j] == '.') {
        if (++j >= len || !wj__digit(b[j])) return "a number without digits after its point";
        while (j < len && wj__digit(b[j])) j++;
      }
      if (j < len && (b[j] == 'e' || b[j] == 'E')) {
        *huge = 1;
        if (++j < len && (b[j] == '+' || b[j] == '-')) j++;
        if (j >= len || !wj__digit(b[j])) return "a number without digits in its exponent";
        while (j < len && wj__digit(b[j])) j++;
      }
      *at = j;
      if (j < len && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' && b[j] != ',' && b[j] != ']' &&
          b[j] != '}')
        return "unexpected input after a number";
      i = j;
    } else if (c >= 'a' && c <= 'z') {
      i++; /* true, false, null: cJSON compares them whole */
    } else {
      return "unexpected input";
    }
  }
  return NULL;
}

/* Checks the parsed tree: every number finite when one may not be (cJSON
 * turns 1e400 into infinity; jansson refused it) and, when asked, no
 * object naming a key twice. Returns NULL or a sentence. */
static const char *wj__check(const cJSON *v, int huge, int flags) {
  if (huge && cJSON_IsNumber(v) && !isfinite(v->valuedouble)) return "a number too large for a double";
  for (const cJSON *c = v->child; c != NULL; c = c->next) {
    if ((flags & WJ_REJECT_DUPLICATES) && cJSON_IsObject(v))
      for (const cJSON *d = c->next; d != NULL; d = d->next)
        if (strcmp(c->string, d->string) == 0) return "an object names a key twice";
    const char *why = wj__check(c, huge, flags);
    if (why != NULL) return why;
  }
  return NULL;
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
  char scratch[2];
  if (err == NULL || errlen == 0) err = scratch, errlen = sizeof(scratch);
  err[0] = '\0';
  if (body == NULL) body = "", len = 0;
  if (len == 0) {
    snprintf(err, errlen, "the body is empty");
    return NULL;
  }
  size_t at = 0;
  int huge = 0;
  const char *why = wj__lex(body, len, &at, &huge);
  if (why != NULL) {
    wj__where(body, at, err, errlen, why);
    return NULL;
  }
  const char *stop = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &stop, 0);
  if (root == NULL) {
    size_t off = stop != NULL && stop >= body && stop <= body + len ? (size_t)(stop - body) : 0;
    wj__where(body, off, err, errlen, "unexpected input");
    return NULL;
  }
  for (const char *p = stop; p < body + len; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      wj__where(body, (size_t)(p - body), err, errlen, "something follows the JSON value");
      cJSON_Delete(root);
      return NULL;
    }
  }
  why = huge || (flags & WJ_REJECT_DUPLICATES) ? wj__check(root, huge, flags) : NULL;
  if (why != NULL) {
    snprintf(err, errlen, "%s", why);
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

const cJSON *wj_get(const cJSON *obj, const char *key) {
  const cJSON *found = NULL;
  if (!cJSON_IsObject(obj) || key == NULL) return NULL;
  for (const cJSON *c = obj->child; c != NULL; c = c->next) /* the last one, as jansson */
    if (c->string != NULL && c->string[0] == key[0] && strcmp(c->string, key) == 0) found = c;
  return found;
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

const cJSON *wj_get_array(const cJSON *obj, const char *key) {
  const cJSON *v = wj_get(obj, key);
  return cJSON_IsArray(v) ? v : NULL;
}

json_t *wj_to_jansson(const cJSON *v) {
  int64_t i;
  if (v == NULL) return NULL;
  if (cJSON_IsString(v)) return json_string(v->valuestring);
  if (wj_integer(v, &i)) return json_integer((json_int_t)i);
  if (cJSON_IsNumber(v)) return json_real(v->valuedouble);
  if (cJSON_IsBool(v)) return json_boolean(cJSON_IsTrue(v));
  if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return json_null();
  json_t *out = cJSON_IsArray(v) ? json_array() : json_object();
  const cJSON *c;
  cJSON_ArrayForEach(c, v) {
    if (cJSON_IsArray(v))
      json_array_append_new(out, wj_to_jansson(c));
    else
      json_object_set_new(out, c->string, wj_to_jansson(c));
  }
  return out;
}
