/* chat_rules.c — the chat channel's host-free decisions: tokens, identities,
 * origins, colours, rate buckets, office hours, TZif time zones, and the
 * widget's open/away/busy state. See chat_rules.h for each contract. */
#include "chat_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- tokens ------------------------------------------------------------------ */

int chat_id_valid(const char *id) {
  if (id == NULL) return 0;
  size_t n = strlen(id);
  if (n == 0 || n > CHAT_MAX_ID) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return 0;
  }
  return 1;
}

void chat_hex(const uint8_t in[32], char out[65]) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[64] = '\0';
}

static int chat__hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int chat_unhex32(const char *hex, uint8_t out[32]) {
  if (hex == NULL || strlen(hex) != 64) return -1;
  for (size_t i = 0; i < 32; i++) {
    int hi = chat__hexval(hex[2 * i]), lo = chat__hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return 0;
}

/* The MAC of "<who>.<id>" under key. */
static void chat__token_mac(chat_hmac_fn hmac, const uint8_t *key, size_t key_len, char who, const char *id,
                            uint8_t mac[32]) {
  char data[CHAT_MAX_ID + 3];
  int n = snprintf(data, sizeof(data), "%c.%s", who, id);
  hmac(key, key_len, data, (size_t)n, mac);
}

int chat_token_make(chat_hmac_fn hmac, const uint8_t *key, size_t key_len, char who, const char *id, char *out,
                    size_t outlen) {
  if (!chat_id_valid(id) || (who != CHAT_WHO_VISITOR && who != CHAT_WHO_USER)) return -1;
  if (outlen < strlen(id) + 68) return -1;
  uint8_t mac[32];
  char hex[65];
  chat__token_mac(hmac, key, key_len, who, id, mac);
  chat_hex(mac, hex);
  snprintf(out, outlen, "%c.%s.%s", who, hex, id);
  return 0;
}

int chat_token_check(chat_hmac_fn hmac, chat_equal_fn equal, const uint8_t *key, size_t key_len, const char *token,
                     char *who, char *id, size_t idlen) {
  if (token == NULL || strlen(token) < 68 || token[1] != '.' || token[66] != '.') return -1;
  char w = token[0];
  if (w != CHAT_WHO_VISITOR && w != CHAT_WHO_USER) return -1;
  const char *given_id = token + 67;
  if (!chat_id_valid(given_id) || strlen(given_id) + 1 > idlen) return -1;
  char hex[65];
  memcpy(hex, token + 2, 64);
  hex[64] = '\0';
  uint8_t given[32], mac[32];
  if (chat_unhex32(hex, given) != 0) return -1;
  chat__token_mac(hmac, key, key_len, w, given_id, mac);
  if (!equal(given, mac, sizeof(mac))) return -1;
  *who = w;
  snprintf(id, idlen, "%s", given_id);
  return 0;
}

int chat_identity_ok(chat_hmac_fn hmac, chat_equal_fn equal, const char *secret, const char *user_id,
                     const char *hash_hex) {
  uint8_t given[32], mac[32];
  if (secret == NULL || secret[0] == '\0' || !chat_id_valid(user_id) || chat_unhex32(hash_hex, given) != 0) return 0;
  hmac(secret, strlen(secret), user_id, strlen(user_id), mac);
  return equal(given, mac, sizeof(mac)) ? 1 : 0;
}

/* --- settings ------------------------------------------------------------------ */

int chat_color_valid(const char *s) {
  if (s == NULL || s[0] != '#') return 0;
  size_t n = strlen(s + 1);
  if (n != 3 && n != 6) return 0;
  for (size_t i = 1; i <= n; i++) {
    if (chat__hexval(s[i]) < 0) return 0;
  }
  return 1;
}

/* Points *host at what follows "http://" or "https://"; returns 1 when s
 * starts so. */
static int chat__origin_host(const char *s, const char **host) {
  if (strncasecmp(s, "http://", 7) == 0) {
    *host = s + 7;
  } else if (strncasecmp(s, "https://", 8) == 0) {
    *host = s + 8;
  } else {
    return 0;
  }
  return 1;
}

int chat_origin_valid(const char *s) {
  const char *host;
  if (s == NULL) return 0;
  if (strcmp(s, "*") == 0) return 1;
  if (!chat__origin_host(s, &host) || host[0] == '\0' || host[0] == ':' || strlen(s) > 255) return 0;
  const char *colon = NULL;
  for (const char *p = host; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == ':' && colon == NULL) {
      colon = p;
      continue;
    }
    if (colon != NULL) {
      if (c < '0' || c > '9') return 0;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '.' || c == '[' || c == ']')) {
      return 0; /* a path, a user, a query: not an origin */
    }
  }
  return colon == NULL || (colon[1] != '\0' && strlen(colon + 1) <= 5);
}

int chat_origin_allowed(const char *origin, const char *const *allowed, size_t n, const char *host_header) {
  const char *host;
  if (origin == NULL || origin[0] == '\0' || strcmp(origin, "null") == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    if (allowed[i] == NULL) continue;
    if (strcmp(allowed[i], "*") == 0 || strcasecmp(allowed[i], origin) == 0) return 1;
  }
  /* the help desk's own pages (the demo page), listed or not */
  return host_header != NULL && host_header[0] != '\0' && chat__origin_host(origin, &host) &&
         strcasecmp(host, host_header) == 0;
}

int chat_visitor_id_shape(const char *id) {
  if (id == NULL || id[0] != 'v' || strlen(id) != 33) return 0;
  return strspn(id + 1, "0123456789abcdef") == 32;
}

/* --- rate limits ------------------------------------------------------------------ */

int chat_bucket_take(chat_bucket *b, int64_t now_ms, int64_t per_minute) {
  if (per_minute <= 0) return 1;
  if (b->last_ms == 0) {
    b->tokens = (double)per_minute;
  } else if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * (double)per_minute / 60000.0;
    if (b->tokens > (double)per_minute) b->tokens = (double)per_minute;
  }
  if (now_ms > b->last_ms) b->last_ms = now_ms;
  if (b->tokens < 1.0) return 0;
  b->tokens -= 1.0;
  return 1;
}

void chat_bucket_give(chat_bucket *b, int64_t per_minute) {
  if (per_minute <= 0 || b->last_ms == 0) return;
  b->tokens += 1.0;
  if (b->tokens > (double)per_minute) b->tokens = (double)per_minute;
}

/* --- office hours ------------------------------------------------------------------ */

static const char *const chat__days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* Reads a three-letter day name at s; returns 0-6 or -1. */
static int chat__day(const char *s) {
  for (int i = 0; i < 7; i++) {
    if (strncasecmp(s, chat__days[i], 3) == 0) return i;
  }
  return -1;
}

/* Reads "HH:MM" at s into minutes; max_hour is 23 for a start, 24 for an end. */
static int chat__clock(const char *s, int max_hour) {
  if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' && s[3] >= '0' && s[3] <= '5' &&
        s[4] >= '0' && s[4] <= '9')) {
    return -1;
  }
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > max_hour || (h == 24 && m != 0)) return -1;
  return h * 60 + m;
}

int chat_hours_parse(const char *spec, chat_hours *rules, size_t cap, size_t *n, char *err, size_t errlen) {
  const char *p = spec != NULL ? spec : "";
  uint8_t days = 0;
  while (*p == ' ') p++;
  /* DAYS: day, day-day, separated by commas */
  for (;;) {
    int a = chat__day(p), b;
    if (a < 0) {
      snprintf(err, errlen, "\"%.40s\" must start with days such as mon-fri or sat,sun", spec);
      return -1;
    }
    p += 3;
    b = a;
    if (*p == '-') {
      b = chat__day(p + 1);
      if (b < 0) {
        snprintf(err, errlen, "\"%.40s\": a day span is written mon-fri", spec);
        return -1;
      }
      p += 4;
    }
    for (int d = a;; d = (d + 1) % 7) {
      days |= (uint8_t)(1u << d);
      if (d == b) break;
    }
    if (*p != ',') break;
    p++;
  }
  size_t added = 0;
  for (;;) {
    while (*p == ' ') p++;
    if (*p == '\0') break;
    int start = chat__clock(p, 23), end = start >= 0 && p[5] == '-' ? chat__clock(p + 6, 24) : -1;
    if (start < 0 || end < 0 || (p[11] != '\0' && p[11] != ' ' && p[11] != ',')) {
      snprintf(err, errlen, "\"%.40s\": times are written 09:00-17:00 (24-hour clock)", spec);
      return -1;
    }
    if (start == end) {
      snprintf(err, errlen, "\"%.40s\": a time range must not be empty", spec);
      return -1;
    }
    if (*n >= cap) {
      snprintf(err, errlen, "at most %zu time ranges may be given", cap);
      return -1;
    }
    rules[*n].days = days;
    rules[*n].start_min = (uint16_t)start;
    rules[*n].end_min = (uint16_t)(end == 0 ? 1440 : end);
    (*n)++;
    added++;
    p += 11;
    if (*p == ',') p++;
  }
  if (added == 0) {
    snprintf(err, errlen, "\"%.40s\" names days but no time range such as 09:00-17:00", spec);
    return -1;
  }
  return 0;
}

int chat_hours_open(const chat_hours *rules, size_t n, int weekday, int minute) {
  int yesterday = (weekday + 6) % 7;
  for (size_t i = 0; i < n; i++) {
    const chat_hours *r = &rules[i];
    if (r->start_min < r->end_min) {
      if ((r->days & (1u << weekday)) && minute >= r->start_min && minute < r->end_min) return 1;
    } else { /* past midnight */
      if ((r->days & (1u << weekday)) && minute >= r->start_min) return 1;
      if ((r->days & (1u << yesterday)) && minute < r->end_min) return 1;
    }
  }
  return 0;
}

/* --- time zones --------------------------------------------------------------------- */

int chat_tz_name_valid(const char *name) {
  if (name == NULL || name[0] == '\0' || name[0] == '/' || strlen(name) > 64 || strstr(name, "..") != NULL) {
    return 0;
  }
  for (const char *p = name; *p != '\0'; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '+' || c == '/')) {
      return 0;
    }
    if (c == '/' && (p[1] == '/' || p[1] == '\0')) return 0;
  }
  return 1;
}

static uint32_t chat__be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t chat__be64(const uint8_t *p) {
  return (int64_t)((uint64_t)chat__be32(p) << 32 | chat__be32(p + 4));
}

/* The six counts of a TZif header at p. */
typedef struct chat__tzhead {
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} chat__tzhead;

static int chat__tz_header(const uint8_t *p, size_t len, chat__tzhead *h) {
  if (len < 44 || memcmp(p, "TZif", 4) != 0) return -1;
  h->isutcnt = chat__be32(p + 20);
  h->isstdcnt = chat__be32(p + 24);
  h->leapcnt = chat__be32(p + 28);
  h->timecnt = chat__be32(p + 32);
  h->typecnt = chat__be32(p + 36);
  h->charcnt = chat__be32(p + 40);
  if (h->typecnt == 0 || h->typecnt > 256 || h->timecnt > 100000 || h->leapcnt > 10000 || h->charcnt > 100000 ||
      (h->isutcnt != 0 && h->isutcnt != h->typecnt) || (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)) {
    return -1;
  }
  return 0;
}

/* The size of a data block with tsize-byte times. */
static size_t chat__tz_block(const chat__tzhead *h, size_t tsize) {
  return (size_t)h->timecnt * tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
         (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

int chat_tz_parse(const uint8_t *data, size_t len, chat_tz *tz) {
  chat__tzhead h;
  memset(tz, 0, sizeof(*tz));
  if (data == NULL || chat__tz_header(data, len, &h) != 0) return -1;
  size_t tsize = 4;
  const uint8_t *block = data + 44;
  size_t left = len - 44;
  if (data[4] >= '2') { /* skip the 32-bit block: the 64-bit one follows with its own header */
    size_t skip = chat__tz_block(&h, 4);
    if (skip > left) return -1;
    block += skip;
    left -= skip;
    if (chat__tz_header(block, left, &h) != 0) return -1;
    block += 44;
    left -= 44;
    tsize = 8;
  }
  if (chat__tz_block(&h, tsize) > left) return -1;
  const uint8_t *times = block, *idx = times + (size_t)h.timecnt * tsize, *types = idx + h.timecnt;
  int32_t type_off[256];
  for (uint32_t i = 0; i < h.typecnt; i++) {
    type_off[i] = (int32_t)chat__be32(types + 6 * i);
    if (type_off[i] < -25 * 3600 || type_off[i] > 26 * 3600 || types[6 * i + 4] > 1) return -1;
  }
  if (h.timecnt > 0) {
    tz->times = malloc(sizeof(int64_t) * h.timecnt);
    tz->offsets = malloc(sizeof(int32_t) * h.timecnt);
    if (tz->times == NULL || tz->offsets == NULL) {
      chat_tz_free(tz);
      return -1;
    }
  }
  for (uint32_t i = 0; i < h.timecnt; i++) {
    int64_t t = tsize == 8 ? chat__be64(times + 8 * (size_t)i) : (int64_t)(int32_t)chat__be32(times + 4 * (size_t)i);
    if (idx[i] >= h.typecnt || (i > 0 && t <= tz->times[i - 1])) {
      chat_tz_free(tz);
      return -1;
    }
    tz->times[i] = t;
    tz->offsets[i] = type_off[idx[i]];
  }
  tz->count = h.timecnt;
  /* RFC 8536 3.2: local time before the first transition is type 0. */
  tz->initial = type_off[0];
  return 0;
}

void chat_tz_free(chat_tz *tz) {
  free(tz->times);
  free(tz->offsets);
  memset(tz, 0, sizeof(*tz));
}

int32_t chat_tz_offset(const chat_tz *tz, int64_t unix_s) {
  if (tz == NULL || tz->count == 0) return tz != NULL ? tz->initial : 0;
  if (unix_s < tz->times[0]) return tz->initial;
  size_t lo = 0, hi = tz->count; /* the last i with times[i] <= unix_s is in [lo, hi) */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (tz->times[mid] <= unix_s) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return tz->offsets[lo];
}

void chat_tz_local(const chat_tz *tz, int64_t unix_s, int *weekday, int *minute) {
  int64_t local = unix_s + chat_tz_offset(tz, unix_s);
  int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
  int64_t secs = local - days * 86400;
  *weekday = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
  *minute = (int)(secs / 60);
}

/* --- open, away or busy --------------------------------------------------------------- */

int chat_state(int mode, int in_hours, const chat_team *team) {
  if (mode == CHAT_MODE_ALWAYS) return CHAT_STATE_OPEN;
  if (mode == CHAT_MODE_HOURS && !in_hours) return CHAT_STATE_AWAY;
  if (team == NULL || !team->known) return CHAT_STATE_OPEN;
  if (mode == CHAT_MODE_USERS && team->available == 0) return CHAT_STATE_AWAY;
  if (team->available > 0 && team->with_capacity == 0) return CHAT_STATE_BUSY;
  return CHAT_STATE_OPEN;
}

int chat_launcher_visible(int state, int away_behavior, int capacity_behavior) {
  if (state == CHAT_STATE_AWAY) return away_behavior != CHAT_AWAY_HIDE;
  if (state == CHAT_STATE_BUSY) return capacity_behavior != CHAT_CAPACITY_HIDE;
  return 1;
}
