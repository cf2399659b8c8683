/* fuzz_parse.c — feeds arbitrary bytes to the email plugin's MIME path and
 * its readers of IMAP answers.
 *
 * Built two ways: with clang -fsanitize=fuzzer (EMAIL_LIBFUZZER defined) it
 * is a libFuzzer target; otherwise it is a replay program that ctest runs:
 * `fuzz_email_parse FILE...` parses each file, then many truncations and
 * byte mutations of it (a fixed seed, so runs repeat), and exits 0 when
 * nothing crashed (the sanitizers catch the rest). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    email_mime_init();
    ready = 1;
  }
  /* The IMAP answer readers take NUL-terminated text. */
  char *text = malloc(size + 1);
  if (text != NULL) {
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t *uids = NULL;
    (void)email_imap_search_uids(text, 0, &uids);
    free(uids);
    (void)email_imap_uidvalidity(text);
    free(text);
  }
  email_parsed p;
  if (email_parse((const char *)data, size, 1024, &p) == 0) {
    char *meta = email_metadata_json(&p);
    free(meta);
    if (p.text != NULL) (void)email_quote_start(p.text, strlen(p.text));
    email_parsed_free(&p);
  }
  return 0;
}

#ifndef EMAIL_LIBFUZZER
static unsigned long next_rand(unsigned long *s) {
  *s = *s * 6364136223846793005UL + 1442695040888963407UL;
  return *s >> 33;
}

int main(int argc, char **argv) {
  unsigned long seed = 7;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (f == NULL) {
      fprintf(stderr, "fuzz_email_parse: cannot open %s\n", argv[i]);
      return 2;
    }
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    LLVMFuzzerTestOneInput((const uint8_t *)buf, n);
    char *m = malloc(n + 1);
    for (int round = 0; round < 300; round++) {
      size_t len = n > 0 ? next_rand(&seed) % (n + 1) : 0;
      memcpy(m, buf, n);
      int flips = 1 + (int)(next_rand(&seed) % 8);
      for (int k = 0; k < flips && n > 0; k++) m[next_rand(&seed) % n] = (char)next_rand(&seed);
      LLVMFuzzerTestOneInput((const uint8_t *)m, round % 2 ? len : n);
    }
    free(m);
    free(buf);
    printf("%s: ok\n", argv[i]);
  }
  return 0;
}
#endif
