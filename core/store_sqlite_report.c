/* store_sqlite_report.c — what operators of a help desk measure over a range
 * of time: conversations opened, closed and open, messages by kind, how
 * long contacts waited for a first reply and conversations for their close,
 * in total and per channel, inbox or agent. Runs on the reader, beside the
 * writer, so a report never holds a webhook's commit behind it. */
#include "store_sqlite.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a report groups (the statements' ?5). */
enum { SQ_BY_NONE, SQ_BY_CHANNEL, SQ_BY_INBOX, SQ_BY_AGENT };

/* The group a row falls in: the conversation's channel or inbox, or the
 * agent it counts for (name, an SQL expression); NULL for no inbox or
 * nobody (a group no inbox or user name can take: "none" could). */
#define SQ_REPORT_KEY(name)                                                                     \
  "CASE ?5 WHEN 1 THEN t.channel WHEN 2 THEN t.inbox WHEN 3 THEN " name " ELSE '' END"
#define SQ_USER_NAME(id) "(SELECT name FROM users WHERE id = " id ")"
#define SQ_REPORT_CONVERSATION SQ_REPORT_KEY(SQ_USER_NAME("t.assignee_id"))
/* Which conversations: ?3 a channel, ?4 an inbox, NULL for any. */
#define SQ_REPORT_FILTER " AND (?3 IS NULL OR t.channel = ?3) AND (?4 IS NULL OR t.inbox = ?4)"

/* The report's statements, each by group (?1 from, ?2 to). */
enum { SQ_OPENED, SQ_CLOSED, SQ_OPEN, SQ_MESSAGES, SQ_FIRST_RESPONSE, SQ_RESOLUTION, SQ_NSTATEMENTS };
static const char *const sq__report_sql[SQ_NSTATEMENTS] = {
    [SQ_OPENED] = "SELECT " SQ_REPORT_CONVERSATION ", count(*) FROM threads t"
                  " WHERE t.created_at >= ?1 AND t.created_at < ?2" SQ_REPORT_FILTER " GROUP BY 1",
    [SQ_CLOSED] = "SELECT " SQ_REPORT_CONVERSATION ", count(*) FROM threads t"
                  " WHERE t.closed_at >= ?1 AND t.closed_at < ?2" SQ_REPORT_FILTER " GROUP BY 1",
    /* open now, whenever opened: a scan of the conversations, as the
     * conversations list's status filter is */
    [SQ_OPEN] = "SELECT " SQ_REPORT_CONVERSATION ", count(*) FROM threads t"
                " WHERE t.status = 'open'" SQ_REPORT_FILTER " GROUP BY 1",
    /* an inbound message counts for its conversation's assignee, a reply
     * for its author; ?1 and ?2 are message ids here (sq__message_id_at),
     * so the range is read by the messages' own key */
    [SQ_MESSAGES] = "SELECT " SQ_REPORT_KEY("CASE WHEN m.direction = 'in' THEN " SQ_USER_NAME("t.assignee_id")
                                            " ELSE coalesce(" SQ_USER_NAME("m.user_id") ", m.author) END") ","
                    " sum(m.direction = 'in'), sum(m.direction = 'out' AND m.automatic = 0),"
                    " sum(m.direction = 'out' AND m.automatic <> 0), sum(m.direction = 'out' AND m.status = 'failed')"
                    " FROM messages m CROSS JOIN threads t ON t.id = m.thread_id"
                    " WHERE m.id >= ?1 AND m.id < ?2" SQ_REPORT_FILTER " GROUP BY 1",
    [SQ_FIRST_RESPONSE] = SQ_FIRST_REPLY("SELECT t.id, t.last_message_id FROM threads t"
                                         " WHERE t.created_at >= ?1 AND t.created_at < ?2" SQ_REPORT_FILTER)
                          "SELECT " SQ_REPORT_CONVERSATION ", r.wait FROM first_reply r"
                          " JOIN threads t ON t.id = r.tid ORDER BY 1",
    [SQ_RESOLUTION] = "SELECT " SQ_REPORT_CONVERSATION ", t.closed_at - t.created_at FROM threads t"
                      " WHERE t.closed_at >= ?1 AND t.closed_at < ?2" SQ_REPORT_FILTER " ORDER BY 1",
};

static int sq__cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

void sq_sort_i64(int64_t *v, size_t n) {
  if (n > 1) qsort(v, n, sizeof(v[0]), sq__cmp_i64);
}

double sq_median(const int64_t *sorted, size_t n) {
  return n % 2 ? (double)sorted[n / 2] : ((double)sorted[n / 2 - 1] + (double)sorted[n / 2]) / 2;
}

/* Durations in milliseconds, in the order read. */
typedef struct sq_times {
  int64_t *v;
  size_t n, cap;
} sq_times;

static int sq__times_add(sq_times *t, int64_t ms) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 64;
    int64_t *v = realloc(t->v, cap * sizeof(*v));
    if (v == NULL) return -ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n++] = ms;
  return 0;
}

/* The figures of one group (or of all). */
typedef struct sq_figures {
  char *key; /* NULL: no inbox, or nobody */
  int64_t opened, closed, open, inbound, outbound, automatic, failed, unanswered;
  sq_times first_response, resolution;
} sq_figures;

typedef struct sq_report {
  int by;
  sq_figures total;
  sq_figures *groups;
  size_t n, cap;
  json_t *index; /* key -> position in groups */
  long nobody;   /* position of the NULL key's group, or -1 */
} sq_report;

static void sq__report_free(sq_report *rp) {
  free(rp->total.first_response.v);
  free(rp->total.resolution.v);
  for (size_t i = 0; i < rp->n; i++) {
    free(rp->groups[i].key);
    free(rp->groups[i].first_response.v);
    free(rp->groups[i].resolution.v);
  }
  free(rp->groups);
  json_decref(rp->index);
}

/* The group called key (NULL: nobody's), made on first sight; NULL when
 * out of memory. */
static sq_figures *sq__group(sq_report *rp, const char *key) {
  json_t *at = key != NULL ? json_object_get(rp->index, key) : NULL;
  if (at != NULL) return &rp->groups[json_integer_value(at)];
  if (key == NULL && rp->nobody >= 0) return &rp->groups[rp->nobody];
  if (rp->n == rp->cap) {
    size_t cap = rp->cap ? 2 * rp->cap : 8;
    sq_figures *g = realloc(rp->groups, cap * sizeof(*g));
    if (g == NULL) return NULL;
    rp->groups = g;
    rp->cap = cap;
  }
  sq_figures *g = &rp->groups[rp->n];
  memset(g, 0, sizeof(*g));
  if (key == NULL) {
    rp->nobody = (long)rp->n;
  } else if ((g->key = strdup(key)) == NULL ||
             json_object_set_new(rp->index, key, json_integer((json_int_t)rp->n)) < 0) {
    free(g->key);
    return NULL;
  }
  rp->n++;
  return g;
}

/* Adds one row of statement which to the figures f. */
static int sq__add_row(sq_figures *f, int which, sqlite3_stmt *s) {
  int64_t v = sqlite3_column_int64(s, 1);
  switch (which) {
  case SQ_OPENED: f->opened += v; return 0;
  case SQ_CLOSED: f->closed += v; return 0;
  case SQ_OPEN: f->open += v; return 0;
  case SQ_MESSAGES:
    f->inbound += v;
    f->outbound += sqlite3_column_int64(s, 2);
    f->automatic += sqlite3_column_int64(s, 3);
    f->failed += sqlite3_column_int64(s, 4);
    return 0;
  case SQ_FIRST_RESPONSE:
    if (sqlite3_column_type(s, 1) != SQLITE_NULL) return sq__times_add(&f->first_response, v);
    f->unanswered++;
    return 0;
  default: return sq__times_add(&f->resolution, v);
  }
}

/* The first message id stored at t (ms) or later, into *id (one past the
 * last message when there is none). Message ids grow with their time —
 * both come from the writer, batch by batch, ids from one sequence and the
 * time from the batch's clock — so a binary search over ids finds where a
 * time starts without an index of message times, which would cost every
 * inbound insert. (A wall clock set back while messages came in blurs the
 * range's edge by that much.) */
static int sq__message_id_at(store *st, sq_req *r, int64_t t, int64_t *id) {
  sqlite3_stmt *last = sq_prep(st, "SELECT coalesce(max(id), 0) FROM messages");
  if (last == NULL || sqlite3_step(last) != SQLITE_ROW) {
    if (last != NULL) sqlite3_reset(last);
    return sq_fail(st, r, "reading a report");
  }
  int64_t lo = 1, hi = sqlite3_column_int64(last, 0) + 1;
  sqlite3_reset(last);
  sqlite3_stmt *s = sq_prep(st, "SELECT created_at FROM messages WHERE id >= ?1 ORDER BY id LIMIT 1");
  if (s == NULL) return sq_fail(st, r, "reading a report");
  while (lo < hi) { /* the first x whose next message is at t or later */
    int64_t mid = lo + (hi - lo) / 2;
    sqlite3_bind_int64(s, 1, mid);
    int rc = sqlite3_step(s);
    int later = rc != SQLITE_ROW || sqlite3_column_int64(s, 0) >= t;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(st, r, "reading a report");
    if (later) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  *id = lo;
  return 0;
}

/* Runs statement which and adds its rows to the total and, when grouping,
 * to their group. */
static int sq__report_read(store *st, sq_req *r, sq_report *rp, int which, json_t *q) {
  int64_t from = json_integer_value(json_object_get(q, "from")), to = json_integer_value(json_object_get(q, "to"));
  if (which == SQ_MESSAGES && (sq__message_id_at(st, r, from, &from) < 0 || sq__message_id_at(st, r, to, &to) < 0))
    return -EIO;
  sqlite3_stmt *s = sq_prep(st, sq__report_sql[which]);
  if (s == NULL) return sq_fail(st, r, "reading a report");
  sqlite3_bind_int64(s, 1, from);
  sqlite3_bind_int64(s, 2, to);
  sq_bind_text(s, 3, json_string_value(json_object_get(q, "channel")));
  sq_bind_text(s, 4, json_string_value(json_object_get(q, "inbox")));
  sqlite3_bind_int(s, 5, rp->by);
  int rc;
  sq_figures *g = NULL;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *key = sq_col_text(s, 0);
    /* rows come by key: the group is looked up once per key */
    int same = g != NULL && (g->key == NULL ? key == NULL : key != NULL && strcmp(g->key, key) == 0);
    if (rp->by != SQ_BY_NONE && !same && (g = sq__group(rp, key)) == NULL) break;
    if (sq__add_row(&rp->total, which, s) < 0 || (g != NULL && sq__add_row(g, which, s) < 0)) break;
  }
  sqlite3_reset(s);
  if (rc == SQLITE_ROW) {
    r->status = -ENOMEM;
    snprintf(r->err, sizeof(r->err), "out of memory reading a report");
    return -ENOMEM;
  }
  return rc == SQLITE_DONE ? 0 : sq_fail(st, r, "reading a report");
}

/* Whole seconds (rounded) of the median or, with p90, of the 90th
 * percentile (nearest rank) of t; null when t is empty. Sorts t. */
static json_t *sq__seconds(sq_times *t, int p90) {
  if (t->n == 0) return json_null();
  sq_sort_i64(t->v, t->n);
  double ms = p90 ? (double)t->v[(9 * t->n + 9) / 10 - 1] : sq_median(t->v, t->n);
  return json_integer((json_int_t)llround(ms / 1000));
}

static json_t *sq__figures_json(sq_figures *f) {
  return json_pack("{s{sI sI sI} s{sI sI sI sI} s{sI sI so so} s{sI so so}}", "conversations", "opened",
                   (json_int_t)f->opened, "closed", (json_int_t)f->closed, "open", (json_int_t)f->open, "messages",
                   "inbound", (json_int_t)f->inbound, "outbound", (json_int_t)f->outbound, "automatic",
                   (json_int_t)f->automatic, "failed", (json_int_t)f->failed, "first_response", "answered",
                   (json_int_t)f->first_response.n, "unanswered", (json_int_t)f->unanswered, "median_seconds",
                   sq__seconds(&f->first_response, 0), "p90_seconds", sq__seconds(&f->first_response, 1),
                   "resolution", "count", (json_int_t)f->resolution.n, "median_seconds",
                   sq__seconds(&f->resolution, 0), "p90_seconds", sq__seconds(&f->resolution, 1));
}

/* By key, nobody's group last. */
static int sq__cmp_groups(const void *a, const void *b) {
  const char *x = ((const sq_figures *)a)->key, *y = ((const sq_figures *)b)->key;
  if (x == NULL || y == NULL) return (x == NULL) - (y == NULL);
  return strcmp(x, y);
}

static int sq__report(store *st, sq_req *r, json_t *q, json_t **result) {
  static const char *const by_names[] = {[SQ_BY_CHANNEL] = "channel", [SQ_BY_INBOX] = "inbox", [SQ_BY_AGENT] = "agent"};
  const char *by = json_string_value(json_object_get(q, "group_by"));
  sq_report rp = {.by = SQ_BY_NONE, .index = json_object(), .nobody = -1};
  for (int i = SQ_BY_CHANNEL; by != NULL && i <= SQ_BY_AGENT; i++)
    if (strcmp(by, by_names[i]) == 0) rp.by = i;
  if (by != NULL && rp.by == SQ_BY_NONE) {
    json_decref(rp.index);
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "a report is grouped by channel, inbox or agent, not \"%.40s\"", by);
    return -EINVAL;
  }
  int rc = 0;
  for (int i = 0; i < SQ_NSTATEMENTS && rc == 0; i++) rc = sq__report_read(st, r, &rp, i, q);
  if (rc == 0) {
    json_t *res = sq__figures_json(&rp.total);
    const char *echo[] = {"from", "to", "channel", "inbox", "group_by"};
    for (size_t i = 0; i < sizeof(echo) / sizeof(echo[0]); i++) {
      json_t *v = json_object_get(q, echo[i]);
      json_object_set(res, echo[i], v != NULL ? v : json_null());
    }
    if (rp.by != SQ_BY_NONE) {
      if (rp.n > 1) qsort(rp.groups, rp.n, sizeof(rp.groups[0]), sq__cmp_groups); /* groups is NULL when none */
      json_t *groups = json_array();
      for (size_t i = 0; i < rp.n; i++) {
        json_t *g = sq__figures_json(&rp.groups[i]);
        json_object_set_new(g, "key", rp.groups[i].key != NULL ? json_string(rp.groups[i].key) : json_null());
        json_array_append_new(groups, g);
      }
      json_object_set_new(res, "groups", groups);
    }
    *result = res;
  }
  sq__report_free(&rp);
  return rc;
}

int store_report(store *st, const json_t *query, store_json_cb cb, void *arg) {
  if (!json_is_object(query)) return -EINVAL;
  int64_t from = json_integer_value(json_object_get(query, "from")), to = json_integer_value(json_object_get(query, "to"));
  if (!json_is_integer(json_object_get(query, "from")) || !json_is_integer(json_object_get(query, "to")) || to <= from)
    return -EINVAL;
  return sq_submit_read_json(st, sq__report, json_deep_copy(query), cb, arg);
}
