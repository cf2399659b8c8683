/* fuzz_webhook_json.c — feeds arbitrary bytes to wj_parse, with and without
 * duplicate-key refusal, and checks what the plugins rely on in every tree
 * it accepts: each key and string is UTF-8, the getters hold up on every
 * node, and nodes are linked as cJSON links them. Differential too:
 * wj_parse must accept exactly what jansson (which the plugins used
 * before) accepts, and read the same values — every string, number and
 * member, a repeated key as its last value — except where webhook_json.h
 * says they differ (nesting past 1 000 levels, integers past 64 bits).
 *
 * Built two ways, like the email plugin's target: with clang
 * -fsanitize=fuzzer (WJ_LIBFUZZER defined) a libFuzzer target; otherwise a
 * replay program that ctest runs over seeds/ (tests/fuzz_replay.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sb_utf8.h"
#include "webhook_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const cJSON *v, int depth) {
  if (v->string != NULL && !sb_utf8_valid(v->string, strlen(v->string))) abort();
  const char *s = wj_string(v);
  if (s != NULL && !sb_utf8_valid(s, strlen(s))) abort();
  int64_t n;
  (void)wj_integer(v, &n);
  (void)wj_is_true(v);
  size_t count = 0;
  const cJSON *c, *last = NULL;
  cJSON_ArrayForEach(c, v) {
    count++;
    if (cJSON_IsObject(v) && wj_get(v, c->string) == NULL) abort();
    if (c != v->child && c->prev != last) abort();
    last = c;
    walk(c, depth + 1);
  }
  if (v->child != NULL && v->child->prev != last) abort();
  if (cJSON_IsArray(v) && wj_size(v) != count) abort();
}

/* True when the tree holds what jansson read: same kinds, strings, numbers
 * (as doubles: jansson's integers are below 2^63 here), elements, and
 * members, each key once with its last value. */
static int same(const cJSON *v, const json_t *j) {
  if (cJSON_IsString(v))
    return json_is_string(j) && json_string_length(j) == strlen(v->valuestring) &&
           memcmp(json_string_value(j), v->valuestring, json_string_length(j)) == 0;
  if (cJSON_IsNumber(v)) return json_is_number(j) && json_number_value(j) == v->valuedouble;
  if (cJSON_IsTrue(v)) return json_is_true(j);
  if (cJSON_IsBool(v)) return json_is_false(j);
  if (cJSON_IsNull(v)) return json_is_null(j);
  const cJSON *c;
  size_t n = 0;
  if (cJSON_IsArray(v)) {
    if (!json_is_array(j)) return 0;
    cJSON_ArrayForEach(c, v) if (!same(c, json_array_get(j, n++))) return 0;
    return n == json_array_size(j);
  }
  if (!cJSON_IsObject(v) || !json_is_object(j)) return 0;
  cJSON_ArrayForEach(c, v) {
    if (wj_get(v, c->string) != c) continue; /* a repeated key: its last one counts */
    json_t *m = json_object_get(j, c->string);
    if (m == NULL || !same(c, m)) return 0;
    n++;
  }
  return n == json_object_size(j);
}

/* True when jansson and wj_parse may rightly disagree on the input: deep
 * nesting, a run of 19 digits (an integer jansson cannot hold), or a NUL
 * byte (jansson's json_loadb stops reading there and accepts "5\0junk";
 * wj_parse refuses it). */
static int known_difference(const uint8_t *data, size_t size) {
  size_t open = 0, digits = 0;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '[' || data[i] == '{') open++;
    digits = data[i] >= '0' && data[i] <= '9' ? digits + 1 : 0;
    if (open > 900 || digits >= 19 || data[i] == '\0') return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[200];
  int compare = !known_difference(data, size);
  for (int flags = 0; flags <= WJ_REJECT_DUPLICATES; flags++) {
    cJSON *root = wj_parse((const char *)data, size, flags, err, sizeof(err));
    if (compare) {
      json_t *j = json_loadb((const char *)data, size,
                             JSON_DECODE_ANY | (flags & WJ_REJECT_DUPLICATES ? JSON_REJECT_DUPLICATES : 0), NULL);
      if ((j != NULL) != (root != NULL)) {
        fprintf(stderr, "jansson %s, wj_parse %s (%s): %.*s\n", j != NULL ? "accepts" : "refuses",
                root != NULL ? "accepts" : "refuses", err, (int)size, (const char *)data);
        abort();
      }
      if (j != NULL && !same(root, j)) {
        fprintf(stderr, "jansson and wj_parse read different values: %.*s\n", (int)size, (const char *)data);
        abort();
      }
      json_decref(j);
    }
    if (root == NULL) {
      if (err[0] == '\0') abort(); /* a refusal always says why */
      continue;
    }
    walk(root, 0);
    wj_free(root);
  }
  return 0;
}

#ifndef WJ_LIBFUZZER
#include "fuzz_replay.h"

int main(int argc, char **argv) {
  /* half the changed bytes are ones JSON cares about */
  return fuzz_replay_main(argc, argv, 2000, "{}[]\",:\\u0123456789eE.-+ \t\ntrufalsn\xc3\xa9\xff");
}
#endif
