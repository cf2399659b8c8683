/* webhook_json.c — a webhook's JSON body read into a cJSON tree in one
 * block, with jansson's strictness where the plugins relied on it
 * (webhook_json.h). */
#include "webhook_json.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_utf8.h"

static int wj__digit(char c) { return c >= '0' && c <= '9'; }

/* Bytes a string may hold as they are: printable ASCII but the quote and
 * the backslash. One load per byte where four comparisons were. */
#define WJ_PLAIN16(r) r, r, r, r, r, r, r, r, r, r, r, r, r, r, r, r
static const unsigned char wj__plain[256] = {
    WJ_PLAIN16(0), WJ_PLAIN16(0),                                     /* 0x00-0x1f: control */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                   /* 0x20-0x2f: '"' */
    WJ_PLAIN16(1), WJ_PLAIN16(1),                                     /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,                   /* 0x50-0x5f: '\\' */
    WJ_PLAIN16(1), WJ_PLAIN16(1),                                     /* 0x60-0x7f */
    WJ_PLAIN16(0), WJ_PLAIN16(0), WJ_PLAIN16(0), WJ_PLAIN16(0),       /* 0x80-0xbf: UTF-8 */
    WJ_PLAIN16(0), WJ_PLAIN16(0), WJ_PLAIN16(0), WJ_PLAIN16(0)};      /* 0xc0-0xff */

static int wj__hex4(const char *p) {
  for (int k = 0; k < 4; k++)
    if (!wj__digit(p[k]) && !((p[k] | 0x20) >= 'a' && (p[k] | 0x20) <= 'f')) return 0;
  return 1;
}

/* Pass one: the lexical rules of JSON, and how much the tree will take.
 * Between tokens only space, tab, LF and CR; in a string UTF-8, no byte
 * below 0x20 and only JSON's escapes (\u with four hex digits, never
 * \u0000); numbers as JSON writes them (no "01", "1." or ".5"), each
 * followed by a delimiter; a word (true, false, null) is taken whole and
 * compared by pass two, which also checks the structure. Counts the values
 * (every string counts, keys too: a bound, not the number) and the bytes
 * the strings may take decoded (at most their length, plus a NUL each).
 * Returns NULL, or a sentence with the offending offset in *at. */
static const char *wj__lex(const char *b, size_t len, size_t *at, size_t *values, size_t *str_bytes) {
  size_t i = 0;
  while (i < len) {
    char c = b[i];
    *at = i;
    switch (c) {
    case '{': case '[':
      ++*values;
      /* fall through */
    case ' ': case '\t': case '\n': case '\r': case '}': case ']': case ':': case ',':
      i++;
      continue;
    case '"': {
      size_t open = i;
      ++*values;
      for (i++; i < len; i++) {
        unsigned char u = (unsigned char)b[i];
        if (wj__plain[u]) continue;
        *at = i;
        if (u == '"') break;
        if (u >= 0x80) { /* UTF-8 is checked here: only a string may hold such bytes */
          size_t n = (u & 0xe0) == 0xc0 ? 2 : (u & 0xf0) == 0xe0 ? 3 : (u & 0xf8) == 0xf0 ? 4 : 0;
          if (n == 0 || len - i < n || !sb_utf8_valid(b + i, n)) return "the body is not UTF-8";
          i += n - 1;
          continue;
        }
        if (u < 0x20) return "a control character in a string";
        if (i + 1 >= len) break; /* a last backslash: unterminated */
        char e = b[++i];
        if (e == 'u') {
          if (len - i < 5 || !wj__hex4(b + i + 1)) return "a \\u escape without four hex digits";
          if (memcmp(b + i + 1, "0000", 4) == 0) return "a string holds \\u0000";
          i += 4;
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return "an escape JSON does not have";
        }
      }
      if (i >= len || b[i] != '"') {
        *at = open;
        return "a string without its closing quote";
      }
      *str_bytes += i - open; /* the raw bytes between the quotes, plus one for the NUL */
      i++;
      continue;
    }
    default:
      break;
    }
    ++*values;
    if (c == '-' || wj__digit(c)) {
      size_t j = i + (c == '-');
      if (j >= len || !wj__digit(b[j])) return "a number without digits";
      if (b[j] == '0') j++;
      else while (j < len && wj__digit(b[j])) j++;
      if (j < len && b[j] == '.') {
        if (++j >= len || !wj__digit(b[j])) return "a number without digits after its point";
        while (j < len && wj__digit(b[j])) j++;
      }
      if (j < len && (b[j] == 'e' || b[j] == 'E')) {
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
      while (i < len && b[i] >= 'a' && b[i] <= 'z') i++;
    } else {
      return "unexpected input";
    }
  }
  return NULL;
}

/* Pass two builds the tree in one block sized by pass one: the nodes (the
 * root first, so freeing the root frees it all), then the strings. The
 * nodes are cJSON's, linked as cJSON links them (a first child's prev is
 * the last child), so the plugins read them with cJSON's accessors. */
typedef struct wj__p {
  const char *b;
  size_t len, i;
  cJSON *node, *node_end; /* the next free node */
  char *str;              /* the next free string byte */
  int flags;
  const char *why; /* the first refusal, at offset at */
  size_t at;
} wj__p;

#define WJ_MAX_DEPTH 1000

static int wj__fail(wj__p *p, const char *why) {
  if (p->why == NULL) p->why = why, p->at = p->i;
  return -1;
}

static void wj__blank(wj__p *p) {
  while (p->i < p->len && (p->b[p->i] == ' ' || p->b[p->i] == '\t' || p->b[p->i] == '\n' || p->b[p->i] == '\r'))
    p->i++;
}

static unsigned wj__hex(const char *h) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) v = v << 4 | (unsigned)(wj__digit(h[k]) ? h[k] - '0' : (h[k] | 0x20) - 'a' + 10);
  return v;
}

static char *wj__utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xc0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xe0 | cp >> 12);
    *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else {
    *o++ = (char)(0xf0 | cp >> 18);
    *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
    *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  }
  return o;
}

/* The string at b[i] == '"', decoded into the block (pass one checked its
 * bytes and escapes, and that it ends); i ends past its closing quote. */
static char *wj__string(wj__p *p) {
  const char *b = p->b;
  char *out = p->str, *o = out;
  size_t i = p->i + 1, run = i;
  for (;;) {
    while (b[i] != '"' && b[i] != '\\') i++;
    memcpy(o, b + run, i - run);
    o += i - run;
    if (b[i] == '"') break;
    char e = b[i + 1];
    i += 2;
    switch (e) {
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': { /* pass one checked the four hex digits of every \\u */
      unsigned cp = wj__hex(b + i), lo = 0;
      i += 4;
      if (cp >= 0xd800 && cp <= 0xdbff && b[i] == '\\' && b[i + 1] == 'u') lo = wj__hex(b + i + 2);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      } else if (cp >= 0xd800 && cp <= 0xdfff) {
        p->i = i - 6;
        wj__fail(p, "a \\u escape holds half a UTF-16 surrogate pair");
        return NULL;
      }
      o = wj__utf8(o, cp);
      break;
    }
    default: *o++ = e; break; /* " \ / */
    }
    run = i;
  }
  *o++ = '\0';
  p->str = o;
  p->i = i + 1;
  return out;
}

/* The number at b[i] (pass one checked its form), as cJSON holds one:
 * the double, and valueint saturated to int. Whole numbers of up to 15
 * digits are exact without strtod. */
static int wj__number(wj__p *p, cJSON *v) {
  const char *b = p->b;
  size_t i = p->i, j = i + (b[i] == '-');
  int frac = 0;
  while (j < p->len && (wj__digit(b[j]) || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-')) {
    if (!wj__digit(b[j])) frac = 1;
    j++;
  }
  double d;
  size_t digits = j - i - (b[i] == '-');
  if (!frac && digits <= 15) {
    int64_t n = 0;
    for (size_t k = i + (b[i] == '-'); k < j; k++) n = n * 10 + (b[k] - '0');
    d = (double)(b[i] == '-' ? -n : n);
    if (b[i] == '-' && n == 0) d = -0.0;
  } else {
    char small[64], *t = j - i < sizeof(small) ? small : malloc(j - i + 1);
    if (t == NULL) return wj__fail(p, "out of memory");
    memcpy(t, b + i, j - i);
    t[j - i] = '\0';
    char point = localeconv()->decimal_point[0]; /* strtod reads the locale's */
    if (point != '.')
      for (char *q = t; *q; q++)
        if (*q == '.') *q = point;
    d = strtod(t, NULL);
    if (t != small) free(t);
    if (!isfinite(d)) return wj__fail(p, "a number too large for a double");
  }
  v->type = cJSON_Number;
  v->valuedouble = d;
  v->valueint = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
  p->i = j;
  return 0;
}

static cJSON *wj__value(wj__p *p, int depth);

/* The members of an object or the elements of an array, after its
 * opening bracket. */
static int wj__members(wj__p *p, cJSON *v, int depth) {
  int object = v->type == cJSON_Object;
  char close = object ? '}' : ']';
  cJSON *last = NULL;
  wj__blank(p);
  if (p->i < p->len && p->b[p->i] == close) {
    p->i++;
    return 0;
  }
  for (;;) {
    const char *key = NULL;
    if (object) {
      size_t key_at = p->i;
      if (p->i >= p->len || p->b[p->i] != '"') return wj__fail(p, "unexpected input");
      if ((key = wj__string(p)) == NULL) return -1;
      if (p->flags & WJ_REJECT_DUPLICATES)
        for (const cJSON *c = v->child; c != NULL; c = c->next)
          if (strcmp(c->string, key) == 0) return p->i = key_at, wj__fail(p, "an object names a key twice");
      wj__blank(p);
      if (p->i >= p->len || p->b[p->i] != ':') return wj__fail(p, "unexpected input");
      p->i++;
      wj__blank(p);
    }
    cJSON *c = wj__value(p, depth + 1);
    if (c == NULL) return -1;
    c->string = (char *)key;
    if (last == NULL) {
      v->child = c;
    } else {
      last->next = c;
      c->prev = last;
    }
    last = c;
    v->child->prev = last;
    wj__blank(p);
    if (p->i < p->len && p->b[p->i] == ',') {
      p->i++;
      wj__blank(p);
      continue;
    }
    if (p->i < p->len && p->b[p->i] == close) {
      p->i++;
      return 0;
    }
    return wj__fail(p, "unexpected input");
  }
}

static cJSON *wj__value(wj__p *p, int depth) {
  if (p->i >= p->len) {
    wj__fail(p, "unexpected input");
    return NULL;
  }
  if (p->node == p->node_end) { /* pass one counted every value: never */
    wj__fail(p, "unexpected input");
    return NULL;
  }
  cJSON *v = p->node++;
  memset(v, 0, sizeof(*v));
  const char *b = p->b + p->i;
  size_t left = p->len - p->i;
  switch (*b) {
  case '{':
  case '[':
    if (depth >= WJ_MAX_DEPTH) {
      wj__fail(p, "nesting deeper than 1000 levels");
      return NULL;
    }
    v->type = *b == '{' ? cJSON_Object : cJSON_Array;
    p->i++;
    return wj__members(p, v, depth) < 0 ? NULL : v;
  case '"':
    v->type = cJSON_String;
    return (v->valuestring = wj__string(p)) == NULL ? NULL : v;
  case 't':
    if (left >= 4 && memcmp(b, "true", 4) == 0) return p->i += 4, v->type = cJSON_True, v;
    break;
  case 'f':
    if (left >= 5 && memcmp(b, "false", 5) == 0) return p->i += 5, v->type = cJSON_False, v;
    break;
  case 'n':
    if (left >= 4 && memcmp(b, "null", 4) == 0) return p->i += 4, v->type = cJSON_NULL, v;
    break;
  default:
    if (*b == '-' || wj__digit(*b)) return wj__number(p, v) < 0 ? NULL : v;
    break;
  }
  wj__fail(p, "unexpected input");
  return NULL;
}

/* A tree's block starts with its capacity; the root follows. The last
 * block freed on this thread, if small, is kept for the next parse: a
 * webhook's tree (about 2 KiB) is past glibc's per-thread cache, so each
 * parse's malloc and free went through its bins (about 750 of the loop's
 * instructions per Messenger webhook). */
typedef union wj__head {
  size_t cap; /* bytes after the head */
  max_align_t align;
} wj__head;

#define WJ_SPARE_MAX (64 * 1024)

static _Thread_local wj__head *wj__spare;

static wj__head *wj__block(size_t need) {
  wj__head *h = wj__spare;
  if (h != NULL && h->cap >= need) {
    wj__spare = NULL;
    return h;
  }
  h = malloc(sizeof(*h) + need);
  if (h != NULL) h->cap = need;
  return h;
}

static void wj__release(wj__head *h) {
  if (h->cap > WJ_SPARE_MAX || (wj__spare != NULL && wj__spare->cap >= h->cap)) {
    free(h);
    return;
  }
  free(wj__spare);
  wj__spare = h;
}

/* The spare of the thread that unloads the plugin (the loop, the only one
 * that parses) goes with it. */
__attribute__((destructor)) static void wj__drop_spare(void) {
  free(wj__spare);
  wj__spare = NULL;
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
  size_t at = 0, values = 0, str_bytes = 0;
  const char *why = wj__lex(body, len, &at, &values, &str_bytes);
  if (why != NULL) {
    wj__where(body, at, err, errlen, why);
    return NULL;
  }
  if (values == 0) {
    wj__where(body, len, err, errlen, "unexpected input");
    return NULL;
  }
  wj__head *head = wj__block(values * sizeof(cJSON) + str_bytes);
  cJSON *block = head != NULL ? (cJSON *)(head + 1) : NULL;
  if (block == NULL) {
    snprintf(err, errlen, "out of memory for a body of %zu bytes", len);
    return NULL;
  }
  wj__p p = {.b = body, .len = len, .node = block, .node_end = block + values,
             .str = (char *)(block + values), .flags = flags};
  wj__blank(&p);
  cJSON *root = wj__value(&p, 0);
  if (root != NULL) {
    wj__blank(&p);
    if (p.i < len) wj__fail(&p, "something follows the JSON value");
  }
  if (p.why != NULL) {
    wj__where(body, p.at, err, errlen, p.why);
    wj__release(head);
    return NULL;
  }
  return root;
}

void wj_free(cJSON *root) {
  if (root != NULL) wj__release((wj__head *)root - 1);
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
