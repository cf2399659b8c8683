/* store_sqlite_cache.c — writer-owned lookup caches for the message path
 * (identity -> contact, contact+channel -> thread), so a message from a
 * known sender costs no lookup statements. Cleared wholesale whenever what
 * they mirror may have changed (rollback, merge, thread closed or reopened). */
#include "store_sqlite.h"

#include <stdlib.h>
#include <string.h>

typedef struct sq_slot {
  char *key;
  uint64_t hash;
  uint32_t gen; /* a slot of an older generation counts as empty */
  int64_t value;
  int flag;
} sq_slot;

struct sq_cache {
  sq_slot *slots;
  size_t cap, count, max_cap;
  uint32_t gen;
};

/* Starts small and doubles up to max_pow2 slots: a table sized for the
 * working set stays in the CPU caches (a fixed large one showed up as cache
 * misses in the benchmark profile). */
sq_cache *sq_cache_new(size_t max_pow2) {
  sq_cache *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->max_cap = max_pow2;
  c->cap = max_pow2 < 4096 ? max_pow2 : 4096;
  c->gen = 1;
  c->slots = calloc(c->cap, sizeof(*c->slots));
  if (c->slots == NULL) {
    free(c);
    return NULL;
  }
  return c;
}

void sq_cache_free(sq_cache *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < c->cap; i++) free(c->slots[i].key);
  free(c->slots);
  free(c);
}

void sq_cache_clear(sq_cache *c) {
  if (c == NULL) return;
  c->gen++;
  c->count = 0;
}

/* FNV-1a over the parts joined by a separator byte that cannot occur in them
 * ambiguously (0x1f, unit separator). */
static uint64_t sq__hash(const char *k) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)k; *p; p++) h = (h ^ *p) * 1099511628211ull;
  return h;
}

int sq_cache_get(sq_cache *c, const char *key, int64_t *value, int *flag) {
  uint64_t h = sq__hash(key);
  for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
    sq_slot *s = &c->slots[i];
    if (s->gen != c->gen) return 0;
    if (s->hash == h && strcmp(s->key, key) == 0) {
      *value = s->value;
      if (flag) *flag = s->flag;
      return 1;
    }
  }
}

/* Doubles the table, keeping the live entries. Returns 0 or -1 (then the
 * caller clears instead). */
static int sq__grow(sq_cache *c) {
  size_t cap = c->cap * 2;
  sq_slot *slots = calloc(cap, sizeof(*slots));
  if (slots == NULL) return -1;
  for (size_t i = 0; i < c->cap; i++) {
    sq_slot *o = &c->slots[i];
    if (o->gen != c->gen) {
      free(o->key);
      continue;
    }
    size_t j = o->hash & (cap - 1);
    while (slots[j].key != NULL) j = (j + 1) & (cap - 1);
    slots[j] = *o;
  }
  free(c->slots);
  c->slots = slots;
  c->cap = cap;
  return 0;
}

void sq_cache_put(sq_cache *c, const char *key, int64_t value, int flag) {
  if (c->count >= c->cap / 2 && (c->cap >= c->max_cap || sq__grow(c) < 0))
    sq_cache_clear(c); /* at its largest: start over, it refills */
  uint64_t h = sq__hash(key);
  for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
    sq_slot *s = &c->slots[i];
    if (s->gen != c->gen) {
      char *k = strdup(key);
      if (k == NULL) return; /* a cache may forget */
      free(s->key);
      s->key = k;
      s->hash = h;
      s->gen = c->gen;
      s->value = value;
      s->flag = flag;
      c->count++;
      return;
    }
    if (s->hash == h && strcmp(s->key, key) == 0) {
      s->value = value;
      s->flag = flag;
      return;
    }
  }
}

void sq_ticket_starts_clear(store *st) {
  for (size_t i = 0; i < st->n_ticket_starts; i++) {
    free(st->ticket_starts[i].pipeline);
    free(st->ticket_starts[i].status);
    free(st->ticket_starts[i].first);
  }
  st->n_ticket_starts = 0;
}

void sq_caches_clear(store *st) {
  sq_cache_clear(st->contact_cache);
  sq_cache_clear(st->thread_cache);
  sq_ticket_starts_clear(st);
}
