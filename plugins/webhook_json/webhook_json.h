/* webhook_json.h — reading a webhook's JSON body on the loop thread.
 *
 * Every signed webhook is parsed once on the loop, and that parse is one of
 * the larger costs of the whole request (a 321-byte Messenger body with
 * jansson: about 62 000 instructions; cJSON: 18 000, and a malloc and a
 * free per node; reading it ourselves into one block took the loop's whole
 * webhook from 59 700 to 47 300 — bench/ingest/README.md). wj_parse reads
 * the body in two passes into one block: the first checks JSON's lexical
 * rules and counts, the second builds the tree — cJSON's node type, linked
 * as cJSON links it, so the plugins read it with cJSON's accessors
 * (cJSON_IsObject, cJSON_ArrayForEach, ...) and the getters below, and
 * free it with wj_free, never cJSON_Delete (which would free each node).
 * jansson stays for everything else the plugins build or read.
 *
 * What the plugins relied on from jansson holds: the body must be UTF-8;
 * JSON's lexical rules hold (no control characters in strings, only JSON's
 * escapes, never \u0000, no half surrogate pair, numbers as JSON writes
 * them, only JSON's blanks between tokens); numbers are finite; nothing
 * may follow the value; and (on request) no object may name a key twice,
 * since a signed body with duplicate keys is ambiguous. Accepted
 * duplicates read as their last value, as with jansson. What differs from
 * jansson: nesting deeper than 1 000 levels is refused (jansson: 2 048); a
 * whole number written as 5.0 or 1e3 reads as an integer; and a number
 * beyond 2^53 is held as the nearest double (wj_integer refuses it) — Meta
 * sends such ids as strings, since its own JavaScript clients could not
 * read them either. A static library linked into the plugins that read
 * webhooks, hidden from their exports. */
#ifndef SB_WEBHOOK_JSON_H
#define SB_WEBHOOK_JSON_H

#include <cJSON.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A tree from wj_parse is one block: cJSON_Delete on it would free its
 * nodes one by one. */
#pragma GCC poison cJSON_Delete

#define WJ_REJECT_DUPLICATES 1

/* Parses body[0..len) as one JSON value. Returns the tree (free it with
 * wj_free) or NULL with a sentence in err (err may be NULL), naming the
 * line and column where the input stopped being JSON. */
cJSON *wj_parse(const char *body, size_t len, int flags, char *err, size_t errlen);

/* Frees a tree wj_parse returned (NULL is fine). Only the root: its nodes
 * and strings live in the root's block, which the thread may keep (one,
 * up to 64 KiB) for its next parse. */
void wj_free(cJSON *root);

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
