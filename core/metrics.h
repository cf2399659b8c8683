/* metrics.h — Prometheus text exposition: latency histograms and a small
 * text builder (health.c renders GET /metrics with them). */
#ifndef SB_CORE_METRICS_H
#define SB_CORE_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds in seconds of a latency histogram's buckets (+Inf implied). */
#define METRICS_BUCKETS 14
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

typedef struct metrics_histogram {
  uint64_t buckets[METRICS_BUCKETS]; /* non-cumulative counts per bucket */
  uint64_t count;                    /* all observations, +Inf included */
  double sum;                        /* seconds */
} metrics_histogram;

/* Records one observation of `seconds`. */
void metrics_observe(metrics_histogram *h, double seconds);

/* A growing text buffer. Functions never fail visibly: on allocation
 * failure the buffer is marked broken and metrics_text_take returns NULL. */
typedef struct metrics_text {
  char *data;
  size_t len, cap;
  int broken;
} metrics_text;

void metrics_printf(metrics_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes "# HELP" and "# TYPE" lines for a metric family. */
void metrics_family(metrics_text *t, const char *name, const char *type, const char *help);
/* Writes a histogram's _bucket/_sum/_count lines; labels is "" or `a="b",`
 * (with a trailing comma), already escaped. */
void metrics_histogram_write(metrics_text *t, const char *name, const char *labels, const metrics_histogram *h);
/* Escapes a label value (backslash, quote, newline) into buf. */
const char *metrics_label(const char *value, char *buf, size_t buflen);
/* Hands the text over (caller frees), or NULL if it broke. */
char *metrics_text_take(metrics_text *t, size_t *len);

#endif
