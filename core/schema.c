/* schema.c — credential schemas: table checks, channel validation, JSON Schema. */
#include "schema.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SCHEMA_KEY_MAX 64
#define SCHEMA_FILE_MAX (1024 * 1024)

/* One field's validated values, as text and (for numbers) parsed. */
struct schema_value {
  const sb_field *field;
  char **texts;
  int64_t *numbers;
  size_t count;
};

struct sb_config {
  struct schema_value *values;
  size_t count;
};

static const char *const schema__type_names[] = {
    NULL, "string", "int", "bool", "duration", "url", "enum",
};

const char *schema_type_name(uint32_t type) {
  if (type < 1 || type > SB_FIELD_ENUM) return "unknown";
  return schema__type_names[type];
}

static int schema__key_valid(const char *key) {
  size_t n = strlen(key);
  if (n == 0 || n > SCHEMA_KEY_MAX || !islower((unsigned char)key[0])) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)key[i];
    if (!(islower(c) || isdigit(c) || c == '_')) return 0;
  }
  return 1;
}

int schema_parse_duration(const char *text, int64_t *ms) {
  if (text == NULL || ms == NULL || *text == '\0') return -EINVAL;
  const char *p = text;
  int64_t total = 0;
  int parts = 0;
  while (*p != '\0') {
    if (!isdigit((unsigned char)*p)) return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(p, &end, 10);
    if (errno != 0 || n > (unsigned long long)INT32_MAX) return -EINVAL;
    int64_t unit;
    if (strncmp(end, "ms", 2) == 0) {
      unit = 1, end += 2;
    } else if (*end == 's') {
      unit = 1000, end += 1;
    } else if (*end == 'm') {
      unit = 60 * 1000, end += 1;
    } else if (*end == 'h') {
      unit = 3600 * 1000, end += 1;
    } else if (*end == 'd') {
      unit = 86400 * 1000, end += 1;
    } else if (*end == '\0' && parts == 0) {
      unit = 1000; /* a bare number is seconds */
    } else {
      return -EINVAL;
    }
    total += (int64_t)n * unit;
    parts++;
    p = end;
  }
  *ms = total;
  return 0;
}

static int schema__url_valid(const char *text) {
  CURLU *u = curl_url();
  if (u == NULL) return 0;
  int ok = 0;
  if (curl_url_set(u, CURLUPART_URL, text, 0) == CURLUE_OK) {
    char *host = NULL;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != NULL && *host != '\0') {
      ok = strstr(text, "://") != NULL;
    }
    curl_free(host);
  }
  curl_url_cleanup(u);
  return ok;
}

static int schema__int_parse(const char *text, int64_t *out) {
  if (text == NULL || *text == '\0') return -EINVAL;
  errno = 0;
  char *end;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0') return -EINVAL;
  *out = v;
  return 0;
}

static int schema__enum_has(const sb_field *f, const char *text) {
  for (const char *const *v = f->enum_values; v != NULL && *v != NULL; v++) {
    if (strcmp(*v, text) == 0) return 1;
  }
  return 0;
}

/* Checks one textual value against a field's type; fills *number for int,
 * bool and duration. Returns 0 or -EINVAL with a phrase (no value) in why. */
static int schema__check_text(const sb_field *f, const char *text, int64_t *number, const char **why) {
  *number = 0;
  switch (f->type) {
  case SB_FIELD_STRING:
    return 0;
  case SB_FIELD_INT:
    if (schema__int_parse(text, number) != 0) {
      *why = "must be an integer";
      return -EINVAL;
    }
    return 0;
  case SB_FIELD_BOOL:
    if (strcmp(text, "true") == 0) {
      *number = 1;
    } else if (strcmp(text, "false") != 0) {
      *why = "must be true or false";
      return -EINVAL;
    }
    return 0;
  case SB_FIELD_DURATION:
    if (schema_parse_duration(text, number) != 0) {
      *why = "must be a duration such as \"30s\", \"5m\" or \"250ms\"";
      return -EINVAL;
    }
    return 0;
  case SB_FIELD_URL:
    if (!schema__url_valid(text)) {
      *why = "must be an absolute URL such as https://host/path";
      return -EINVAL;
    }
    return 0;
  case SB_FIELD_ENUM:
    if (!schema__enum_has(f, text)) {
      *why = "must be one of the listed values";
      return -EINVAL;
    }
    return 0;
  default:
    *why = "has an unknown type";
    return -EINVAL;
  }
}

int schema_check_table(const char *plugin_id, const sb_field *fields, char *err, size_t errlen) {
  if (fields == NULL) return 0;
  const uint32_t known_flags = SB_FIELD_REQUIRED | SB_FIELD_SECRET | SB_FIELD_MULTI;
  for (size_t i = 0; fields[i].key != NULL; i++) {
    const sb_field *f = &fields[i];
    if (i > 256) {
      snprintf(err, errlen, "plugin %s: its credential schema has more than 256 fields or no SB_FIELD_END",
               plugin_id);
      return -EINVAL;
    }
    if (!schema__key_valid(f->key)) {
      snprintf(err, errlen,
               "plugin %s: credential key \"%.64s\" is invalid (use 1-64 of a-z, 0-9 and _, starting with a letter)",
               plugin_id, f->key);
      return -EINVAL;
    }
    if (f->type < SB_FIELD_STRING || f->type > SB_FIELD_ENUM) {
      snprintf(err, errlen, "plugin %s: credential \"%s\" has unknown type %" PRIu32, plugin_id, f->key,
               f->type);
      return -EINVAL;
    }
    if ((f->flags & ~known_flags) != 0) {
      snprintf(err, errlen, "plugin %s: credential \"%s\" has unknown flags 0x%" PRIx32, plugin_id, f->key,
               f->flags & ~known_flags);
      return -EINVAL;
    }
    if (f->type == SB_FIELD_ENUM && (f->enum_values == NULL || f->enum_values[0] == NULL)) {
      snprintf(err, errlen, "plugin %s: enum credential \"%s\" lists no values", plugin_id, f->key);
      return -EINVAL;
    }
    if (f->type != SB_FIELD_ENUM && f->enum_values != NULL) {
      snprintf(err, errlen, "plugin %s: credential \"%s\" has enum values but is of type %s", plugin_id,
               f->key, schema_type_name(f->type));
      return -EINVAL;
    }
    if ((f->flags & SB_FIELD_REQUIRED) && f->default_value != NULL) {
      snprintf(err, errlen, "plugin %s: credential \"%s\" is required and also has a default", plugin_id,
               f->key);
      return -EINVAL;
    }
    if (f->default_value != NULL) {
      int64_t n;
      const char *why = NULL;
      if (schema__check_text(f, f->default_value, &n, &why) != 0) {
        snprintf(err, errlen, "plugin %s: the default of credential \"%s\" %s", plugin_id, f->key, why);
        return -EINVAL;
      }
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(fields[j].key, f->key) == 0) {
        snprintf(err, errlen, "plugin %s: credential key \"%s\" appears twice in its schema", plugin_id,
                 f->key);
        return -EINVAL;
      }
    }
  }
  return 0;
}

static char *schema__read_file(const char *path, char *err, size_t errlen, const char *subject) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    snprintf(err, errlen, "%s names file %s, which cannot be read: %s", subject, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(SCHEMA_FILE_MAX + 1);
  size_t n = buf != NULL ? fread(buf, 1, SCHEMA_FILE_MAX + 1, fp) : 0;
  fclose(fp);
  if (buf == NULL || n > SCHEMA_FILE_MAX) {
    free(buf);
    snprintf(err, errlen, "%s file %s is larger than 1 MiB", subject, path);
    return NULL;
  }
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
  if (n > 0 && buf[n - 1] == '\r') buf[--n] = '\0';
  return buf;
}

json_t *schema_resolve_value(const json_t *value, const char *base_dir, const char *subject, char *err,
                             size_t errlen) {
  if (!json_is_object(value)) return json_incref((json_t *)value);
  const json_t *env = json_object_get(value, "env");
  const json_t *file = json_object_get(value, "file");
  if (json_object_size(value) != 1 || (env == NULL && file == NULL)) {
    snprintf(err, errlen, "%s must be a value, {\"env\": NAME} or {\"file\": PATH}", subject);
    return NULL;
  }
  if (env != NULL) {
    if (!json_is_string(env)) {
      snprintf(err, errlen, "%s: \"env\" must name a variable", subject);
      return NULL;
    }
    const char *v = getenv(json_string_value(env));
    if (v == NULL) {
      snprintf(err, errlen, "%s refers to environment variable %s, which is not set", subject,
               json_string_value(env));
      return NULL;
    }
    return json_string(v);
  }
  if (!json_is_string(file) || json_string_length(file) == 0) {
    snprintf(err, errlen, "%s: \"file\" must be a path", subject);
    return NULL;
  }
  const char *path = json_string_value(file);
  char full[PATH_MAX];
  if (path[0] != '/' && base_dir != NULL) {
    snprintf(full, sizeof(full), "%s/%s", base_dir, path);
  } else {
    snprintf(full, sizeof(full), "%s", path);
  }
  char *text = schema__read_file(full, err, errlen, subject);
  if (text == NULL) return NULL;
  json_t *out = json_string(text);
  free(text);
  if (out == NULL) {
    snprintf(err, errlen, "%s file %s is not valid UTF-8", subject, full);
  }
  return out;
}

/* Turns one literal JSON value into text for the field, or fails with why. */
static char *schema__value_text(const sb_field *f, const json_t *v, const char **why) {
  char buf[64];
  switch (json_typeof(v)) {
  case JSON_STRING:
    if (f->type == SB_FIELD_BOOL) {
      *why = "must be true or false";
      return NULL;
    }
    return strdup(json_string_value(v));
  case JSON_INTEGER:
    if (f->type != SB_FIELD_INT && f->type != SB_FIELD_DURATION) break;
    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return strdup(buf);
  case JSON_TRUE:
  case JSON_FALSE:
    if (f->type != SB_FIELD_BOOL) break;
    return strdup(json_is_true(v) ? "true" : "false");
  default:
    break;
  }
  switch (f->type) {
  case SB_FIELD_INT: *why = "must be an integer"; break;
  case SB_FIELD_BOOL: *why = "must be true or false"; break;
  case SB_FIELD_DURATION: *why = "must be a duration such as \"30s\" or a number of seconds"; break;
  default: *why = "must be a string"; break;
  }
  return NULL;
}

static void schema__value_free(struct schema_value *v) {
  for (size_t i = 0; i < v->count; i++) free(v->texts[i]);
  free(v->texts);
  free(v->numbers);
}

void schema_config_free(sb_config *config) {
  if (config == NULL) return;
  for (size_t i = 0; i < config->count; i++) schema__value_free(&config->values[i]);
  free(config->values);
  free(config);
}

/* Validates and stores the values given for one field. */
static int schema__fill_value(const char *channel, const sb_field *f, const json_t *given,
                              const char *base_dir, struct schema_value *out, char *err, size_t errlen) {
  size_t n = 1;
  if (f->flags & SB_FIELD_MULTI) {
    if (!json_is_array(given)) {
      snprintf(err, errlen, "channel \"%s\": credential \"%s\" must be a list of %s values", channel, f->key,
               schema_type_name(f->type));
      return -EINVAL;
    }
    n = json_array_size(given);
  }
  out->texts = calloc(n ? n : 1, sizeof(char *));
  out->numbers = calloc(n ? n : 1, sizeof(int64_t));
  if (out->texts == NULL || out->numbers == NULL) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const json_t *raw = (f->flags & SB_FIELD_MULTI) ? json_array_get(given, i) : given;
    char subject[256];
    snprintf(subject, sizeof(subject), "channel \"%s\": credential \"%s\"", channel, f->key);
    json_t *v = schema_resolve_value(raw, base_dir, subject, err, errlen);
    if (v == NULL) return -EINVAL;
    const char *why = NULL;
    char *text = schema__value_text(f, v, &why);
    json_decref(v);
    if (text == NULL && why == NULL) return -ENOMEM;
    if (text != NULL && schema__check_text(f, text, &out->numbers[i], &why) != 0) {
      free(text);
      text = NULL;
    }
    if (text == NULL) {
      snprintf(err, errlen, "channel \"%s\": credential \"%s\" %s", channel, f->key, why);
      return -EINVAL;
    }
    out->texts[i] = text;
    out->count = i + 1;
  }
  return 0;
}

int schema_config_build(const char *channel, const sb_field *fields, const json_t *credentials,
                        const char *base_dir, sb_config **out, char *err, size_t errlen) {
  if (channel == NULL || out == NULL) return -EINVAL;
  if (credentials != NULL && !json_is_object(credentials)) {
    snprintf(err, errlen, "channel \"%s\": \"credentials\" must be an object", channel);
    return -EINVAL;
  }
  size_t nfields = 0;
  while (fields != NULL && fields[nfields].key != NULL) nfields++;

  const char *key;
  json_t *val;
  json_object_foreach((json_t *)credentials, key, val) {
    size_t i;
    for (i = 0; i < nfields && strcmp(fields[i].key, key) != 0; i++) {
    }
    if (i == nfields) {
      snprintf(err, errlen, "channel \"%s\": unknown credential \"%.64s\" (the plugin's schema does not list it)",
               channel, key);
      return -EINVAL;
    }
  }

  sb_config *cfg = calloc(1, sizeof(*cfg));
  if (cfg == NULL) return -ENOMEM;
  cfg->values = calloc(nfields ? nfields : 1, sizeof(*cfg->values));
  if (cfg->values == NULL) {
    free(cfg);
    return -ENOMEM;
  }
  cfg->count = nfields;
  for (size_t i = 0; i < nfields; i++) {
    const sb_field *f = &fields[i];
    struct schema_value *v = &cfg->values[i];
    v->field = f;
    const json_t *given = credentials != NULL ? json_object_get(credentials, f->key) : NULL;
    if (given == NULL || json_is_null(given)) {
      if (f->flags & SB_FIELD_REQUIRED) {
        snprintf(err, errlen, "channel \"%s\": required credential \"%s\" is missing", channel, f->key);
        schema_config_free(cfg);
        return -EINVAL;
      }
      if (f->default_value == NULL) continue;
      v->texts = calloc(1, sizeof(char *));
      v->numbers = calloc(1, sizeof(int64_t));
      const char *why;
      if (v->texts == NULL || v->numbers == NULL || (v->texts[0] = strdup(f->default_value)) == NULL) {
        schema_config_free(cfg);
        return -ENOMEM;
      }
      v->count = 1;
      (void)schema__check_text(f, f->default_value, &v->numbers[0], &why);
      continue;
    }
    int rc = schema__fill_value(channel, f, given, base_dir, v, err, errlen);
    if (rc != 0) {
      if (rc == -ENOMEM) snprintf(err, errlen, "channel \"%s\": out of memory", channel);
      schema_config_free(cfg);
      return rc;
    }
    if (f->flags & SB_FIELD_SECRET) {
      for (size_t k = 0; k < v->count; k++) log_add_secret(v->texts[k]);
    }
  }
  *out = cfg;
  return 0;
}

int schema_config_equal(const sb_config *a, const sb_config *b) {
  if (a == NULL || b == NULL) return a == b;
  if (a->count != b->count) return 0;
  for (size_t i = 0; i < a->count; i++) {
    const struct schema_value *x = &a->values[i], *y = &b->values[i];
    if (strcmp(x->field->key, y->field->key) != 0 || x->count != y->count) return 0;
    for (size_t k = 0; k < x->count; k++) {
      if (strcmp(x->texts[k], y->texts[k]) != 0) return 0;
    }
  }
  return 1;
}

static const struct schema_value *schema__find(const sb_config *config, const char *key) {
  if (config == NULL || key == NULL) return NULL;
  for (size_t i = 0; i < config->count; i++) {
    if (strcmp(config->values[i].field->key, key) == 0) return &config->values[i];
  }
  return NULL;
}

const char *schema_config_get(const sb_config *config, const char *key) {
  return schema_config_get_at(config, key, 0);
}

size_t schema_config_count(const sb_config *config, const char *key) {
  const struct schema_value *v = schema__find(config, key);
  return v != NULL ? v->count : 0;
}

const char *schema_config_get_at(const sb_config *config, const char *key, size_t index) {
  const struct schema_value *v = schema__find(config, key);
  if (v == NULL || index >= v->count) return NULL;
  return v->texts[index];
}

int64_t schema_config_int(const sb_config *config, const char *key, int64_t fallback) {
  const struct schema_value *v = schema__find(config, key);
  if (v == NULL || v->count == 0) return fallback;
  uint32_t t = v->field->type;
  if (t != SB_FIELD_INT && t != SB_FIELD_BOOL && t != SB_FIELD_DURATION) return fallback;
  return v->numbers[0];
}

/* The JSON Schema for one field's single value. */
static json_t *schema__field_json(const sb_field *f) {
  json_t *p = json_object();
  switch (f->type) {
  case SB_FIELD_INT:
    json_object_set_new(p, "type", json_string("integer"));
    break;
  case SB_FIELD_BOOL:
    json_object_set_new(p, "type", json_string("boolean"));
    break;
  case SB_FIELD_DURATION:
    json_object_set_new(p, "type", json_string("string"));
    json_object_set_new(p, "pattern", json_string("^([0-9]+(ms|s|m|h|d))+$|^[0-9]+$"));
    json_object_set_new(p, "x-switchboard-type", json_string("duration"));
    break;
  case SB_FIELD_URL:
    json_object_set_new(p, "type", json_string("string"));
    json_object_set_new(p, "format", json_string("uri"));
    break;
  case SB_FIELD_ENUM: {
    json_t *values = json_array();
    for (const char *const *v = f->enum_values; *v != NULL; v++) json_array_append_new(values, json_string(*v));
    json_object_set_new(p, "type", json_string("string"));
    json_object_set_new(p, "enum", values);
    break;
  }
  default:
    json_object_set_new(p, "type", json_string("string"));
    break;
  }
  return p;
}

json_t *schema_to_json_schema(const char *title, const sb_field *fields) {
  json_t *root = json_object();
  json_t *props = json_object();
  json_t *required = json_array();
  if (root == NULL || props == NULL || required == NULL) {
    json_decref(root);
    json_decref(props);
    json_decref(required);
    return NULL;
  }
  json_object_set_new(root, "$schema", json_string("https://json-schema.org/draft/2020-12/schema"));
  if (title != NULL) json_object_set_new(root, "title", json_string(title));
  json_object_set_new(root, "type", json_string("object"));
  for (size_t i = 0; fields != NULL && fields[i].key != NULL; i++) {
    const sb_field *f = &fields[i];
    json_t *p = schema__field_json(f);
    if (f->flags & SB_FIELD_MULTI) {
      json_t *arr = json_object();
      json_object_set_new(arr, "type", json_string("array"));
      json_object_set_new(arr, "items", p);
      p = arr;
    }
    if (f->label != NULL) json_object_set_new(p, "title", json_string(f->label));
    if (f->description != NULL) json_object_set_new(p, "description", json_string(f->description));
    if (f->default_value != NULL) {
      json_t *d;
      int64_t n = 0;
      const char *why;
      if (schema__check_text(f, f->default_value, &n, &why) == 0 && f->type == SB_FIELD_INT) {
        d = json_integer(n);
      } else if (f->type == SB_FIELD_BOOL) {
        d = json_boolean(strcmp(f->default_value, "true") == 0);
      } else {
        d = json_string(f->default_value);
      }
      json_object_set_new(p, "default", d);
    }
    if (f->flags & SB_FIELD_SECRET) json_object_set_new(p, "writeOnly", json_true());
    if (f->flags & SB_FIELD_REQUIRED) json_array_append_new(required, json_string(f->key));
    json_object_set_new(props, f->key, p);
  }
  json_object_set_new(root, "properties", props);
  json_object_set_new(root, "required", required);
  json_object_set_new(root, "additionalProperties", json_false());
  return root;
}
