/* fuzz_form_parse.c — feeds arbitrary bytes to the web form channel's body
 * parser. The input's first line is the Content-Type header, the rest the
 * body, so mutations reach the boundary parameter as well as the parts.
 *
 * Built two ways: with clang -fsanitize=fuzzer (FORM_LIBFUZZER defined) it
 * is a libFuzzer target; otherwise it is a replay program that ctest runs
 * over seeds/ (tests/fuzz_replay.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    form_parse_init();
    ready = 1;
  }
  const uint8_t *nl = memchr(data, '\n', size);
  size_t head = nl != NULL ? (size_t)(nl - data) : size;
  char *ct = malloc(head + 1);
  if (ct == NULL) return 0;
  memcpy(ct, data, head);
  ct[head] = '\0';
  if (head > 0 && ct[head - 1] == '\r') ct[head - 1] = '\0';
  const char *body = nl != NULL ? (const char *)nl + 1 : "";
  size_t len = nl != NULL ? size - head - 1 : 0;
  form_limits lim = {.max_fields = 50, .max_value_bytes = 4096, .max_files = 4, .max_file_bytes = 65536};
  form_body b;
  form_problem p;
  if (form_parse(strlen(ct) > 0 ? ct : NULL, body, len, &lim, &b, &p) == 0) {
    /* What the plugin relies on: every value is UTF-8 text, every file has
     * a name and a type. */
    for (size_t i = 0; i < b.field_count; i++) {
      if (!form_utf8_valid(b.fields[i].value, strlen(b.fields[i].value))) abort();
    }
    for (size_t i = 0; i < b.file_count; i++) {
      if (b.files[i].filename[0] == '\0' || b.files[i].mime_type[0] == '\0' || b.files[i].len > 65536) abort();
    }
    form_body_free(&b);
  } else if (p.status != 400 && p.status != 413 && p.status != 415 && p.status != 503) {
    abort();
  }
  free(ct);
  return 0;
}

#ifndef FORM_LIBFUZZER
#include "fuzz_replay.h"

int main(int argc, char **argv) { return fuzz_replay_main(argc, argv, 300, "-\r\n=&%\";:{}[]\\"); }
#endif
