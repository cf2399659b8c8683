/* thread.c — the email channel's thread keys, participants and Message-ID map,
 * kept in the channel's key/value store.
 *
 * Keys (all bounded):
 *   seq              the last thread number N handed out ("mail-N", tag "[#N]")
 *   mid:<hex>        Message-ID (hashed) → thread key, for inbound and outbound mail
 *   midring:<i>      the ring of the last EMAIL_MID_MAX mid: keys, oldest overwritten
 *   midpos           the ring's next slot
 *   p:<thread>       the thread's participants, "a@x b@y" (at most EMAIL_PART_MAX)
 *   refs:<thread>    the thread's References chain, "<a> <b>" (the last EMAIL_REFS_MAX)
 *   subj:<thread>    the thread's first subject
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

#define EMAIL_MID_MAX 2000
#define EMAIL_PART_MAX 40
#define EMAIL_REFS_MAX 20

static const char *kv(email_threads *t, const char *key) { return t->host->kv_get(t->channel, key, NULL); }

static void kv_put(email_threads *t, const char *key, const char *value) {
  int rc = t->host->kv_set(t->channel, key, value, strlen(value), NULL, NULL);
  if (rc != SB_OK) t->host->log(t->channel, SB_LOG_WARN, "could not keep %s (code %d)", key, rc);
}

static void mid_key(email_threads *t, const char *message_id, char out[48]) {
  uint8_t mac[32];
  t->host->hmac_sha256("mid", 3, message_id, strlen(message_id), mac);
  memcpy(out, "mid:", 4);
  for (int i = 0; i < 16; i++) snprintf(out + 4 + 2 * i, 3, "%02x", mac[i]);
}

const char *email_thread_of(email_threads *t, const char *message_id) {
  if (message_id == NULL || message_id[0] == '\0') return NULL;
  char key[48];
  mid_key(t, message_id, key);
  return kv(t, key);
}

void email_thread_remember(email_threads *t, const char *message_id, const char *thread) {
  if (message_id == NULL || thread == NULL) return;
  char key[48];
  mid_key(t, message_id, key);
  const char *have = kv(t, key);
  if (have != NULL && strcmp(have, thread) == 0) return;
  const char *pos_s = kv(t, "midpos");
  long pos = pos_s != NULL ? strtol(pos_s, NULL, 10) % EMAIL_MID_MAX : 0;
  char ring[32];
  snprintf(ring, sizeof(ring), "midring:%ld", pos);
  const char *old = kv(t, ring);
  if (old != NULL && have == NULL) {
    char oldkey[48];
    snprintf(oldkey, sizeof(oldkey), "%s", old);
    t->host->kv_delete(t->channel, oldkey, NULL, NULL);
  }
  kv_put(t, key, thread);
  if (have == NULL) {
    kv_put(t, ring, key);
    char next[24];
    snprintf(next, sizeof(next), "%ld", (pos + 1) % EMAIL_MID_MAX);
    kv_put(t, "midpos", next);
  }
}

const char *email_thread_tag(const char *thread, char *buf, size_t buflen) {
  if (thread != NULL && strncmp(thread, "mail-", 5) == 0 && isdigit((unsigned char)thread[5]))
    snprintf(buf, buflen, "[#%s]", thread + 5);
  else
    snprintf(buf, buflen, "%s", "");
  return buf;
}

const char *email_thread_by_tag(email_threads *t, const char *subject, char *buf, size_t buflen) {
  for (const char *s = subject; s != NULL && (s = strstr(s, "[#")) != NULL; s += 2) {
    char *end = NULL;
    unsigned long n = strtoul(s + 2, &end, 10);
    if (end == s + 2 || *end != ']') continue;
    snprintf(buf, buflen, "mail-%lu", n);
    char key[96];
    snprintf(key, sizeof(key), "p:%s", buf);
    if (kv(t, key) != NULL) return buf;
  }
  return NULL;
}

const char *email_thread_new(email_threads *t, char *buf, size_t buflen) {
  const char *s = kv(t, "seq");
  unsigned long n = (s != NULL ? strtoul(s, NULL, 10) : 0) + 1;
  char v[24];
  snprintf(v, sizeof(v), "%lu", n);
  kv_put(t, "seq", v);
  snprintf(buf, buflen, "mail-%lu", n);
  char key[96];
  snprintf(key, sizeof(key), "p:%s", buf);
  kv_put(t, key, "");
  return buf;
}

/* 1 when word occurs in the space-separated list. */
static int list_has(const char *list, const char *word) {
  size_t wl = strlen(word);
  for (const char *s = list; s != NULL && *s != '\0';) {
    while (*s == ' ') s++;
    size_t n = strcspn(s, " ");
    if (n == wl && strncmp(s, word, n) == 0) return 1;
    s += n;
  }
  return 0;
}

/* Appends word to the list under key, dropping the oldest past max. */
static void list_add(email_threads *t, const char *key, const char *word, int max) {
  const char *old = kv(t, key);
  if (old != NULL && list_has(old, word)) return;
  const char *from = old != NULL ? old : "";
  int count = 0;
  for (const char *s = from; *s != '\0'; s++)
    if (*s == ' ') count++;
  if (from[0] != '\0') count++;
  while (count >= max && *from != '\0') {
    const char *sp = strchr(from, ' ');
    from = sp != NULL ? sp + 1 : from + strlen(from);
    count--;
  }
  size_t n = strlen(from) + strlen(word) + 2;
  if (n > 60000) return;
  char *v = malloc(n);
  if (v == NULL) return;
  snprintf(v, n, "%s%s%s", from, from[0] != '\0' ? " " : "", word);
  kv_put(t, key, v);
  free(v);
}

int email_thread_has_participant(email_threads *t, const char *thread, const char *addr) {
  char key[96];
  snprintf(key, sizeof(key), "p:%s", thread);
  return addr != NULL && list_has(kv(t, key), addr);
}

void email_thread_add_participant(email_threads *t, const char *thread, const char *addr) {
  if (addr == NULL || addr[0] == '\0' || strchr(addr, ' ') != NULL) return;
  char key[96];
  snprintf(key, sizeof(key), "p:%s", thread);
  list_add(t, key, addr, EMAIL_PART_MAX);
}

const char *email_thread_refs(email_threads *t, const char *thread) {
  char key[96];
  snprintf(key, sizeof(key), "refs:%s", thread);
  return kv(t, key);
}

void email_thread_add_ref(email_threads *t, const char *thread, const char *message_id) {
  if (!email_message_id_citable(message_id)) return;
  char key[96], word[1000];
  snprintf(key, sizeof(key), "refs:%s", thread);
  snprintf(word, sizeof(word), "<%s>", message_id);
  list_add(t, key, word, EMAIL_REFS_MAX);
}

const char *email_thread_subject(email_threads *t, const char *thread) {
  char key[96];
  snprintf(key, sizeof(key), "subj:%s", thread);
  return kv(t, key);
}

void email_thread_set_subject(email_threads *t, const char *thread, const char *subject) {
  if (subject == NULL || subject[0] == '\0' || strlen(subject) > 900) return;
  char key[96];
  snprintf(key, sizeof(key), "subj:%s", thread);
  if (kv(t, key) == NULL) kv_put(t, key, subject);
}

const char *email_thread_pick(email_threads *t, const email_parsed *p, const char *owner_addr, char *buf,
                              size_t buflen, const char **how) {
  /* The same mail seen again (a re-sync after UIDVALIDITY changed). */
  const char *known = email_thread_of(t, p->message_id);
  if (known != NULL) {
    snprintf(buf, buflen, "%s", known);
    *how = "known";
    return buf;
  }
  /* References newest first, then In-Reply-To. */
  for (size_t i = p->n_refs + 1; i-- > 0;) {
    const char *id = i == p->n_refs ? p->in_reply_to : p->refs[i];
    const char *th = email_thread_of(t, id);
    if (th == NULL) continue;
    if (email_thread_has_participant(t, th, owner_addr) || email_thread_has_participant(t, th, p->from_addr)) {
      snprintf(buf, buflen, "%s", th);
      *how = "reference";
      return buf;
    }
  }
  char tagged[64];
  const char *th = email_thread_by_tag(t, p->subject, tagged, sizeof(tagged));
  if (th != NULL &&
      (email_thread_has_participant(t, th, owner_addr) || email_thread_has_participant(t, th, p->from_addr))) {
    snprintf(buf, buflen, "%s", th);
    *how = "tag";
    return buf;
  }
  *how = "new";
  return email_thread_new(t, buf, buflen);
}
