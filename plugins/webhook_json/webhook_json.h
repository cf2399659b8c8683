/* webhook_json.h — reading a webhook's JSON body on the loop thread.
 *
 * Every signed webhook is parsed once on the loop, and with jansson that
 * parse was the largest cost of the whole request (a 321-byte Messenger
 * body: about 62 000 instructions, 9.7 µs; cJSON: 18 000, 1.7 µs — see
 * bench/ingest/README.md). jansson stays for everything else the plugins
 * build or read; the inbound webhook body goes through here.
 *
 * cJSON is lenient where jansson was strict, so wj_parse adds back what
 * the plugins relied on: the body must be UTF-8; JSON's lexical rules hold
 * (no control characters in strings, only JSON's escapes, never \u0000 —
 * cJSON would cut the string there —, numbers as JSON writes them, only
 * JSON's blanks between tokens); numbers are finite; nothing may follow
 * the value; and (on request) no object may name a key twice, since a
 * signed body with duplicate keys is ambiguous. Accepted duplicates read
 * as their last value, as with jansson. What still differs from jansson:
 * nesting deeper than 1 000 levels is refused (jansson: 2 048); a whole
 * number written as 5.0 or 1e3 reads as an integer; and a number beyond
 * 2^53 is held as the nearest double (wj_integer refuses it) — Meta sends
 * such ids as strings, since its own JavaScript clients could not read
 * them either. A static library linked into the plugins that read
 * webhooks, hidden from their exports. */
#ifndef SB_WEBHOOK_JSON_H
#define SB_WEBHOOK_JSON_H

#include <cJSON.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WJ_REJECT_DUPLICATES 1

/* Parses body[0..len) as one JSON value. Returns the tree (free it with
 * cJSON_Delete) or NULL with a sentence in err (err may be NULL), naming
 * the line and column where the input stopped being JSON. */
cJSON *wj_parse(const char *body, size_t len, int flags, char *err, size_t errlen);

/* obj[key] (case-sensitive), or NULL when obj is not an object or has no
 * such member. */
const cJSON *wj_get(const cJSON *obj, const char *key);

/* The string v holds, or NULL when v is not a string (or NULL). */
const char *wj_string(const cJSON *v);

/* obj[key] as a string, or NULL. */
const char *wj_get_string(const cJSON *obj, const char *key);

/* 1 and *out when v is a number with an integer value that a double holds
 * exactly (|v| <= 2^53: ids, sizes, timestamps in ms); 0 otherwise. */
int wj_integer(const cJSON *v, int64_t *out);

/* 1 when v is the literal true. */
int wj_is_true(const cJSON *v);

/* The number of elements of an array (0 for anything else). */
size_t wj_size(const cJSON *v);

/* obj[key] when it is an array, else NULL — which cJSON_ArrayForEach walks
 * as empty, where given an object it would walk its members. */
const cJSON *wj_get_array(const cJSON *obj, const char *key);

/* A jansson copy of a webhook value, for what a plugin stores (metadata):
 * what jansson's own parse held (members in order; a repeated key in its
 * first place with its last value), except that a number is an integer
 * whenever its value is one (|v| <= 2^53), where jansson followed the
 * literal (45.0 was a real). NULL when v is NULL or memory ran out. */
json_t *wj_to_jansson(const cJSON *v);

#endif
