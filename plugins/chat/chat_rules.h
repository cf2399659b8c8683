/* chat_rules.h — the website chat channel's decisions that need no host:
 * visitor tokens, verified identities, origins, colours, rate buckets, office
 * hours and time zones (TZif), and whether the widget is open, away or busy.
 *
 * Everything here is pure: no I/O, no allocation except where said, no
 * globals. HMAC and constant-time comparison are passed in (the plugin gives
 * the host's; the unit tests libsodium's), so tests/test_chat_rules.c calls
 * these directly. */
#ifndef CHAT_RULES_H
#define CHAT_RULES_H

#include <stddef.h>
#include <stdint.h>

typedef void (*chat_hmac_fn)(const void *key, size_t key_len, const void *data, size_t data_len, uint8_t out[32]);
typedef int (*chat_equal_fn)(const void *a, const void *b, size_t len);

#define CHAT_MAX_ID 128 /* bytes of a visitor or user id */

/* --- visitor tokens --------------------------------------------------------- */

/* Who a token speaks for: an anonymous visitor (the id the server made) or a
 * user the operator's site vouched for (verified identity). */
#define CHAT_WHO_VISITOR 'v'
#define CHAT_WHO_USER 'u'

/* True when id is 1..CHAT_MAX_ID printable ASCII bytes (no spaces, quotes,
 * backslashes or control characters): the ids tokens and the store carry. */
int chat_id_valid(const char *id);

/* Writes a token for (who, id) into out: "<who>.<64 hex HMAC>.<id>", the
 * HMAC taken under key over "<who>.<id>". Returns 0, or -1 when id is not
 * valid or out (at least CHAT_MAX_ID + 70 bytes) is too small. */
int chat_token_make(chat_hmac_fn hmac, const uint8_t *key, size_t key_len, char who, const char *id, char *out,
                    size_t outlen);

/* Checks a token made by chat_token_make under the same key. Returns 0 and
 * fills *who and id (at least CHAT_MAX_ID + 1 bytes), or -1 for anything
 * else: malformed, another key, a forged id. */
int chat_token_check(chat_hmac_fn hmac, chat_equal_fn equal, const uint8_t *key, size_t key_len, const char *token,
                     char *who, char *id, size_t idlen);

/* True when hash_hex is the lowercase or uppercase hex HMAC-SHA256 of
 * user_id under secret: the operator's site proves who is logged in. */
int chat_identity_ok(chat_hmac_fn hmac, chat_equal_fn equal, const char *secret, const char *user_id,
                     const char *hash_hex);

/* Writes the 64 lowercase hex digits of 32 bytes, NUL-terminated (65 bytes). */
void chat_hex(const uint8_t in[32], char out[65]);

/* Decodes exactly 64 hex digits; returns 0 or -1. */
int chat_unhex32(const char *hex, uint8_t out[32]);

/* --- settings ------------------------------------------------------------- */

/* True for "#rgb" or "#rrggbb" (hex digits, any case). */
int chat_color_valid(const char *s);

/* True for an origin as browsers send it: "http(s)://host[:port]", nothing
 * after the host, or the wildcard "*". */
int chat_origin_valid(const char *s);

/* True for an anonymous visitor's id: "v" and 32 lower-case hex digits.
 * A verified user's id may not have this shape, so that the two never
 * share an id (and a visitor's sockets). */
int chat_visitor_id_shape(const char *id);

/* Whether a browser page at origin may use the widget. allowed lists exact
 * origins (compared case-insensitively) or "*"; the help desk's own
 * origin (whose host[:port] is host_header, as for the demo page) is
 * allowed too, listed or not. A NULL or empty origin is never allowed. */
int chat_origin_allowed(const char *origin, const char *const *allowed, size_t n, const char *host_header);

/* --- rate limits -------------------------------------------------------------- */

/* A token bucket: per_minute tokens a minute, at most per_minute banked. */
typedef struct chat_bucket {
  double tokens;
  int64_t last_ms; /* 0: never used (starts full) */
} chat_bucket;

/* Takes one token at now_ms; returns 1 when there was one, 0 when the
 * caller is over the rate. per_minute <= 0 means no limit. */
int chat_bucket_take(chat_bucket *b, int64_t now_ms, int64_t per_minute);
/* Gives one token back (a message that did not count), up to the bucket's size. */
void chat_bucket_give(chat_bucket *b, int64_t per_minute);

/* --- office hours -------------------------------------------------------------- */

/* One rule of the "hours" setting: the days it starts on (bit 0 Sunday ..
 * bit 6 Saturday) and a time range in minutes of the day. end <= start
 * runs past midnight into the next day. */
typedef struct chat_hours {
  uint8_t days;
  uint16_t start_min;
  uint16_t end_min;
} chat_hours;

#define CHAT_MAX_HOURS 32 /* rules in one channel */

/* Parses one value of the setting: DAYS RANGE [RANGE...] where DAYS is a
 * day ("mon"), a span ("mon-fri", "fri-mon") or a comma list of those, and
 * RANGE is "HH:MM-HH:MM" (24:00 allowed as an end). Appends one rule per
 * range to rules (capacity cap, count in *n). Returns 0, or -1 with a
 * sentence in err naming what is wrong. */
int chat_hours_parse(const char *spec, chat_hours *rules, size_t cap, size_t *n, char *err, size_t errlen);

/* True when weekday (0 Sunday) at minute of day falls in a rule. */
int chat_hours_open(const chat_hours *rules, size_t n, int weekday, int minute);

/* --- time zones (TZif, RFC 8536) ------------------------------------------------ */

/* A zone's UTC offsets over time, read from a TZif file. */
typedef struct chat_tz {
  int64_t *times;    /* transition instants, unix seconds, ascending (malloc'd) */
  int32_t *offsets;  /* the UTC offset (seconds) from times[i] on (malloc'd) */
  size_t count;
  int32_t initial;   /* the offset before the first transition */
} chat_tz;

/* True for a zone name such as "Europe/Oslo" or "UTC": letters, digits,
 * '_', '-', '+' and '/' between parts; no "..", no leading '/'; at most 64
 * bytes. Says nothing about whether the zone exists. */
int chat_tz_name_valid(const char *name);

/* Reads a TZif file's contents (version 1, 2, 3 or 4; the 64-bit block
 * when there is one). Returns 0 and fills *tz (free with chat_tz_free), or
 * -1 when the data is not a well-formed TZif file. */
int chat_tz_parse(const uint8_t *data, size_t len, chat_tz *tz);

void chat_tz_free(chat_tz *tz);

/* The zone's UTC offset at unix_s (past the last transition: the last
 * offset; a zero chat_tz is UTC). */
int32_t chat_tz_offset(const chat_tz *tz, int64_t unix_s);

/* The local weekday (0 Sunday) and minute of the day at unix_s. */
void chat_tz_local(const chat_tz *tz, int64_t unix_s, int *weekday, int *minute);

/* --- open, away or busy ----------------------------------------------------------- */

#define CHAT_MODE_USERS 0
#define CHAT_MODE_HOURS 1
#define CHAT_MODE_ALWAYS 2

#define CHAT_AWAY_REPLY_TIME 0
#define CHAT_AWAY_MESSAGE 1
#define CHAT_AWAY_HIDE 2

#define CHAT_CAPACITY_WAITING 0
#define CHAT_CAPACITY_HIDE 1
#define CHAT_CAPACITY_NOTHING 2

#define CHAT_STATE_OPEN 0 /* someone can answer now */
#define CHAT_STATE_AWAY 1 /* nobody now: outside hours, or no one available */
#define CHAT_STATE_BUSY 2 /* people are there but all at capacity */

/* What the team's availability looks like, as the plugin last heard it. */
typedef struct chat_team {
  int known;          /* 0 until the host answered (or when it cannot) */
  uint32_t eligible;
  uint32_t available;
  uint32_t with_capacity;
} chat_team;

/* The widget's state: mode CHAT_MODE_*, in_hours for CHAT_MODE_HOURS, team
 * as last read. Users mode with an unknown team counts as open (a host that
 * cannot tell must not hide the chat); an "always" channel is always open. */
int chat_state(int mode, int in_hours, const chat_team *team);

/* Whether the launcher shows in that state under the away and capacity
 * behaviours (CHAT_AWAY_*, CHAT_CAPACITY_*). */
int chat_launcher_visible(int state, int away_behavior, int capacity_behavior);

#endif /* CHAT_RULES_H */
