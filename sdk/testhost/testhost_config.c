/* testhost_config.c — the stub test host's credentials: checking a plugin's
 * schema table, validating given values against it, building sb_config. */
#include "testhost_impl.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *testhost__type_name(uint32_t type) {
  static const char *const names[] = {"unknown", "string", "int", "bool", "duration", "url", "enum"};
  return type <= SB_FIELD_ENUM ? names[type] : "unknown";
}

static int testhost__key_valid(const char *key) {
  size_t n = strlen(key);
  if (n == 0 || n > 64 || !islower((unsigned char)key[0])) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)key[i];
    if (!(islower(c) || isdigit(c) || c == '_')) return 0;
  }
  return 1;
}

/* Parses "1h30m", "250ms", "30s" or bare seconds into ms. */
static int testhost__duration(const char *text, int64_t *ms) {
  if (*text == '\0') return -1;
  int64_t total = 0;
  int parts = 0;
  const char *p = text;
  while (*p != '\0') {
    if (!isdigit((unsigned char)*p)) return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(p, &end, 10);
    if (errno != 0 || n > INT32_MAX) return -1;
    int64_t unit;
    if (strncmp(end, "ms", 2) == 0) {
      unit = 1, end += 2;
    } else if (*end == 's') {
      unit = 1000, end++;
    } else if (*end == 'm') {
      unit = 60000, end++;
    } else if (*end == 'h') {
      unit = 3600000, end++;
    } else if (*end == 'd') {
      unit = 86400000, end++;
    } else if (*end == '\0' && parts == 0) {
      unit = 1000;
    } else {
      return -1;
    }
    total += (int64_t)n * unit;
    parts++;
    p = end;
  }
  *ms = total;
  return 0;
}

/* An absolute URL: a scheme of letters, digits, + - ., "://", a host. */
static int testhost__url_valid(const char *text) {
  const char *sep = strstr(text, "://");
  if (sep == NULL || sep == text || !isalpha((unsigned char)text[0])) return 0;
  for (const char *p = text; p < sep; p++) {
    if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')) return 0;
  }
  const char *host = sep + 3;
  const char *at = strpbrk(host, "@/?#");
  if (at != NULL && *at == '@') host = at + 1;
  if (*host == '[') return strchr(host, ']') != NULL && host[1] != ']';
  return *host != '\0' && *host != '/' && *host != ':' && *host != '?' && *host != '#' &&
         strchr(host, ' ') == NULL;
}

/* Checks one value against its field's type; fills *number. Returns 0, or
 * -1 with a phrase in *why (the value itself never goes into it). */
static int testhost__check_text(const sb_field *f, const char *text, int64_t *number, const char **why) {
  *number = 0;
  switch (f->type) {
  case SB_FIELD_STRING: return 0;
  case SB_FIELD_INT: {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*text == '\0' || errno != 0 || *end != '\0') return *why = "must be an integer", -1;
    *number = v;
    return 0;
  }
  case SB_FIELD_BOOL:
    if (strcmp(text, "true") == 0) return *number = 1, 0;
    if (strcmp(text, "false") == 0) return 0;
    return *why = "must be true or false", -1;
  case SB_FIELD_DURATION:
    if (testhost__duration(text, number) != 0) {
      return *why = "must be a duration such as \"30s\", \"5m\" or \"250ms\"", -1;
    }
    return 0;
  case SB_FIELD_URL:
    if (!testhost__url_valid(text)) return *why = "must be an absolute URL such as https://host/path", -1;
    return 0;
  case SB_FIELD_ENUM:
    for (const char *const *v = f->enum_values; v != NULL && *v != NULL; v++) {
      if (strcmp(*v, text) == 0) return 0;
    }
    return *why = "must be one of the listed values", -1;
  default: return *why = "has an unknown type", -1;
  }
}

int testhost__check_table(const sb_plugin *d, char *err, size_t errlen) {
  const sb_field *fields = d->credentials;
  if (fields == NULL) return 0;
  const uint32_t known = SB_FIELD_REQUIRED | SB_FIELD_SECRET | SB_FIELD_MULTI;
  for (size_t i = 0; fields[i].key != NULL; i++) {
    const sb_field *f = &fields[i];
    const char *why = NULL;
    int64_t n;
    if (i >= 256) {
      snprintf(err, errlen, "plugin \"%s\": its schema has more than 256 fields or lacks SB_FIELD_END", d->id);
      return SB_EINVAL;
    }
    if (!testhost__key_valid(f->key)) {
      why = "is not a valid key (1-64 of a-z, 0-9 and _, starting with a letter)";
    } else if (f->type < SB_FIELD_STRING || f->type > SB_FIELD_ENUM) {
      why = "has an unknown type";
    } else if ((f->flags & ~known) != 0) {
      why = "has unknown flags";
    } else if (f->type == SB_FIELD_ENUM && (f->enum_values == NULL || f->enum_values[0] == NULL)) {
      why = "is an enum that lists no values";
    } else if (f->type != SB_FIELD_ENUM && f->enum_values != NULL) {
      why = "has enum values but is not an enum";
    } else if ((f->flags & SB_FIELD_REQUIRED) && f->default_value != NULL) {
      why = "is required and also has a default";
    } else if (f->default_value != NULL && testhost__check_text(f, f->default_value, &n, &why) != 0) {
      snprintf(err, errlen, "plugin \"%s\": the default of credential \"%.64s\" %s", d->id, f->key, why);
      return SB_EINVAL;
    }
    for (size_t j = 0; why == NULL && j < i; j++) {
      if (strcmp(fields[j].key, f->key) == 0) why = "appears twice in the schema";
    }
    if (why != NULL) {
      snprintf(err, errlen, "plugin \"%s\": credential \"%.64s\" %s", d->id, f->key, why);
      return SB_EINVAL;
    }
  }
  return 0;
}

static const sb_field *testhost__field(const sb_plugin *d, const char *key) {
  for (const sb_field *f = d->credentials; f != NULL && f->key != NULL; f++) {
    if (strcmp(f->key, key) == 0) return f;
  }
  return NULL;
}

void testhost__config_free(sb_config *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < c->count; i++) {
    for (size_t j = 0; j < c->values[i].count; j++) free(c->values[i].texts[j]);
    free(c->values[i].texts);
    free(c->values[i].numbers);
  }
  free(c->values);
  free(c);
}

/* Appends one checked text to a value. Returns 0 or SB_ENOMEM. */
static int testhost__value_add(testhost__value *v, const char *text, int64_t number) {
  char **texts = realloc(v->texts, (v->count + 1) * sizeof(*texts));
  if (texts == NULL) return SB_ENOMEM;
  v->texts = texts;
  int64_t *numbers = realloc(v->numbers, (v->count + 1) * sizeof(*numbers));
  if (numbers == NULL) return SB_ENOMEM;
  v->numbers = numbers;
  if ((v->texts[v->count] = strdup(text)) == NULL) return SB_ENOMEM;
  v->numbers[v->count++] = number;
  return 0;
}

int testhost__config_build(testhost *th, sb_config **out, char *err, size_t errlen) {
  const sb_plugin *d = &th->desc;
  const char *ch = th->channel_name;
  *out = NULL;
  for (size_t i = 0; i < th->given_keys.count; i++) {
    const char *key = th->given_keys.items[i];
    if (testhost__field(d, key) == NULL) {
      snprintf(err, errlen, "channel \"%s\": unknown credential \"%.64s\" (plugin \"%s\" has no such key)", ch,
               key, d->id);
      return SB_EINVAL;
    }
  }
  size_t nfields = 0;
  for (const sb_field *f = d->credentials; f != NULL && f->key != NULL; f++) nfields++;
  sb_config *c = calloc(1, sizeof(*c));
  if (c == NULL || (nfields > 0 && (c->values = calloc(nfields, sizeof(*c->values))) == NULL)) {
    free(c);
    return SB_ENOMEM;
  }
  c->count = nfields;
  int rc = 0;
  for (size_t i = 0; i < nfields && rc == 0; i++) {
    const sb_field *f = &d->credentials[i];
    testhost__value *v = &c->values[i];
    v->field = f;
    size_t given = 0;
    for (size_t k = 0; k < th->given_keys.count && rc == 0; k++) {
      if (strcmp(th->given_keys.items[k], f->key) != 0) continue;
      const char *text = th->given_vals.items[k], *why = NULL;
      int64_t n;
      if (++given > 1 && !(f->flags & SB_FIELD_MULTI)) {
        snprintf(err, errlen, "channel \"%s\": credential \"%s\" takes one value, not a list", ch, f->key);
        rc = SB_EINVAL;
      } else if (testhost__check_text(f, text, &n, &why) != 0) {
        snprintf(err, errlen, "channel \"%s\": credential \"%s\" %s", ch, f->key, why);
        rc = SB_EINVAL;
      } else {
        rc = testhost__value_add(v, text, n);
      }
    }
    if (rc == 0 && given == 0) {
      if (f->flags & SB_FIELD_REQUIRED) {
        snprintf(err, errlen, "channel \"%s\": credential \"%s\" is required (%s)", ch, f->key,
                 f->label != NULL ? f->label : testhost__type_name(f->type));
        rc = SB_EINVAL;
      } else if (f->default_value != NULL) {
        int64_t n;
        const char *why = NULL;
        testhost__check_text(f, f->default_value, &n, &why);
        rc = testhost__value_add(v, f->default_value, n);
      }
    }
  }
  if (rc == SB_ENOMEM) snprintf(err, errlen, "out of memory");
  if (rc != 0) {
    testhost__config_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

static const testhost__value *testhost__find(const sb_config *c, const char *key) {
  if (c == NULL || key == NULL) return NULL;
  for (size_t i = 0; i < c->count; i++) {
    if (strcmp(c->values[i].field->key, key) == 0) return &c->values[i];
  }
  return NULL;
}

const char *testhost__config_get(const sb_config *c, const char *key) {
  const testhost__value *v = testhost__find(c, key);
  return v != NULL && v->count > 0 ? v->texts[0] : NULL;
}

size_t testhost__config_count(const sb_config *c, const char *key) {
  const testhost__value *v = testhost__find(c, key);
  return v != NULL ? v->count : 0;
}

const char *testhost__config_get_at(const sb_config *c, const char *key, size_t index) {
  const testhost__value *v = testhost__find(c, key);
  return v != NULL && index < v->count ? v->texts[index] : NULL;
}

int64_t testhost__config_int(const sb_config *c, const char *key, int64_t fallback) {
  const testhost__value *v = testhost__find(c, key);
  if (v == NULL || v->count == 0) return fallback;
  switch (v->field->type) {
  case SB_FIELD_INT:
  case SB_FIELD_BOOL:
  case SB_FIELD_DURATION: return v->numbers[0];
  default: return fallback;
  }
}

int testhost_check_credentials(testhost *th, char *err, size_t errlen) {
  if (th == NULL) return SB_EINVAL;
  sb_config *c;
  int rc = testhost__config_build(th, &c, err, errlen);
  testhost__config_free(c);
  return rc;
}

int testhost_validate(testhost *th, char *err, size_t errlen) {
  if (th == NULL) return SB_EINVAL;
  sb_config *c;
  int rc = testhost__config_build(th, &c, err, errlen);
  if (rc != 0) return rc;
  if (th->desc.validate != NULL) {
    char perr[512] = "";
    rc = th->desc.validate(testhost_host(), c, perr, sizeof(perr));
    if (rc != 0) snprintf(err, errlen, "plugin validate: %s", perr[0] != '\0' ? perr : "no reason given");
  }
  testhost__config_free(c);
  return rc;
}

int testhost_set(testhost *th, const char *key, const char *value) {
  if (th == NULL || key == NULL || value == NULL) return SB_EINVAL;
  const sb_field *f = testhost__field(&th->desc, key);
  if (f == NULL || !(f->flags & SB_FIELD_MULTI)) testhost_unset(th, key);
  char *k = strdup(key), *v = strdup(value);
  if (k == NULL || v == NULL || testhost__vec_push(&th->given_keys, k) != 0) {
    free(k);
    free(v);
    return SB_ENOMEM;
  }
  if (testhost__vec_push(&th->given_vals, v) != 0) {
    th->given_keys.count--;
    free(k);
    free(v);
    return SB_ENOMEM;
  }
  return 0;
}

void testhost_unset(testhost *th, const char *key) {
  if (th == NULL) return;
  size_t o = 0;
  for (size_t i = 0; i < th->given_keys.count; i++) {
    if (key == NULL || strcmp(th->given_keys.items[i], key) == 0) {
      free(th->given_keys.items[i]);
      free(th->given_vals.items[i]);
    } else {
      th->given_keys.items[o] = th->given_keys.items[i];
      th->given_vals.items[o++] = th->given_vals.items[i];
    }
  }
  th->given_keys.count = th->given_vals.count = o;
}
