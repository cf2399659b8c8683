/* fuzz_parse.c — feeds arbitrary bytes to the email plugin's MIME path and
 * its readers of IMAP answers.
 *
 * Built two ways: with clang -fsanitize=fuzzer (EMAIL_LIBFUZZER defined) it
 * is a libFuzzer target; otherwise it is a replay program that ctest runs
 * over seeds/ (tests/fuzz_replay.h). */
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
#include "fuzz_replay.h"

int main(int argc, char **argv) { return fuzz_replay_main(argc, argv, 300, NULL); }
#endif
