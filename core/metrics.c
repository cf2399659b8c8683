/* metrics.c — histograms and Prometheus text building. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_bucket_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void metrics_observe(metrics_histogram *h, double seconds) {
  for (size_t i = 0; i < METRICS_BUCKETS; i++) {
    if (seconds <= metrics_bucket_bounds[i]) {
      h->buckets[i]++;
      break;
    }
  }
  h->count++;
  h->sum += seconds;
}

void metrics_printf(metrics_text *t, const char *fmt, ...) {
  if (t->broken) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->data != NULL ? t->data + t->len : NULL, t->data != NULL ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->broken = 1;
      return;
    }
    if (t->data != NULL && t->len + (size_t)n < t->cap) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap ? t->cap * 2 : 8192;
    while (cap < t->len + (size_t)n + 1) cap *= 2;
    char *grown = realloc(t->data, cap);
    if (grown == NULL) {
      t->broken = 1;
      return;
    }
    t->data = grown;
    t->cap = cap;
  }
}

void metrics_family(metrics_text *t, const char *name, const char *type, const char *help) {
  metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_histogram_write(metrics_text *t, const char *name, const char *labels, const metrics_histogram *h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < METRICS_BUCKETS; i++) {
    cumulative += h->buckets[i];
    metrics_printf(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, metrics_bucket_bounds[i],
                   (unsigned long long)cumulative);
  }
  metrics_printf(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)h->count);
  /* _sum and _count take the labels without their trailing comma, or none */
  int n = (int)strlen(labels);
  if (n > 0) {
    metrics_printf(t, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %llu\n", name, n - 1, labels, h->sum, name, n - 1, labels,
                   (unsigned long long)h->count);
  } else {
    metrics_printf(t, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
  }
}

const char *metrics_label(const char *value, char *buf, size_t buflen) {
  size_t o = 0;
  for (const char *p = value != NULL ? value : ""; *p != '\0' && o + 3 < buflen; p++) {
    if (*p == '\\' || *p == '"') {
      buf[o++] = '\\';
      buf[o++] = *p;
    } else if (*p == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
    } else {
      buf[o++] = *p;
    }
  }
  buf[o] = '\0';
  return buf;
}

char *metrics_text_take(metrics_text *t, size_t *len) {
  if (t->broken) {
    free(t->data);
    memset(t, 0, sizeof(*t));
    return NULL;
  }
  char *out = t->data;
  if (len != NULL) *len = t->len;
  memset(t, 0, sizeof(*t));
  return out;
}
