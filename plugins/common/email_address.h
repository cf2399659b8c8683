/* email_address.h — the one check of an address a customer typed (a web
 * form's email field, a chat visitor's), shared by the plugins that take
 * one, so agents' answers go to addresses judged alike. Header-only: each
 * plugin is one shared object of its own. */
#ifndef SB_EMAIL_ADDRESS_H
#define SB_EMAIL_ADDRESS_H

#include <string.h>

/* True for 3-254 bytes with exactly one @, something on both sides, and no
 * space or control character. Loose on purpose: whether the mailbox exists
 * shows when the answer is sent. */
static inline int sb_email_address_valid(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s), ats = 0, at = 0;
  if (n < 3 || n > 254) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) return 0; /* spaces and controls */
    if (c == '@') {
      ats++;
      at = i;
    }
  }
  return ats == 1 && at > 0 && at < n - 1;
}

#endif
