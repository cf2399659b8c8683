/* bench_router.c — in-process router throughput with durable group commit:
 * messages routed (dedup, contact, thread, ticket) and committed per second,
 * after pre-loading a number of existing threads. Not a test; see README.md. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "router.h"
#include "store.h"

/* Ids are formatted before the clock starts: making up a webhook's message
 * and sender ids is the sender's work, not the router's (it was 2 000
 * instructions per message of snprintf in the measured phase). */
#define ID_LEN 32

typedef struct bench {
  uv_loop_t *loop;
  store *st;
  long total, submitted, done, failed, contacts, window;
  char *ext, *sender; /* total and contacts ids of ID_LEN bytes */
} bench;

static void on_done(void *arg, int status, int64_t id, int dup, const char *err);

static void submit_more(bench *b) {
  char err[256];
  while (b->submitted < b->total && b->submitted - b->done < b->window) {
    long i = b->submitted++;
    const char *ext = b->ext + i * ID_LEN, *sender = b->sender + (i % b->contacts) * ID_LEN;
    router_inbound in = {.channel = "bench", .external_id = ext,
                         .text = "Hello, my order has not arrived yet. Can you help?"};
    in.sender.kind = "custom";
    in.sender.id = sender;
    in.sender.name = sender;
    if (router_submit_inbound(b->st, &in, on_done, b, err, sizeof(err)) != 0) {
      fprintf(stderr, "submit: %s\n", err);
      exit(1);
    }
  }
}

static void on_done(void *arg, int status, int64_t id, int dup, const char *err) {
  bench *b = arg;
  b->done++;
  if (status != 0 && b->failed++ == 0) fprintf(stderr, "message failed: %s\n", err);
  submit_more(b);
}

static void on_put(void *arg, int status, json_t *r, const char *err) {
  if (status != 0) {
    fprintf(stderr, "channel: %s\n", err);
    exit(1);
  }
  *(int *)arg = 1;
}

static double run(uv_loop_t *loop, store *st, const char *prefix, long total, long contacts,
                  long window) {
  bench b = {loop, st, total, 0, 0, 0, contacts, window, malloc((size_t)total * ID_LEN),
             malloc((size_t)contacts * ID_LEN)};
  if (b.ext == NULL || b.sender == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  for (long i = 0; i < total; i++) snprintf(b.ext + i * ID_LEN, ID_LEN, "%s-%ld", prefix, i);
  for (long i = 0; i < contacts; i++) snprintf(b.sender + i * ID_LEN, ID_LEN, "%s-c%ld", prefix, i);
  uint64_t t0 = uv_hrtime();
  submit_more(&b);
  while (b.done < b.total) uv_run(loop, UV_RUN_ONCE);
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  free(b.ext);
  free(b.sender);
  if (b.failed) {
    fprintf(stderr, "%ld messages failed\n", b.failed);
    exit(1);
  }
  return secs;
}

int main(int argc, char **argv) {
  long existing = 1000, messages = 200000, contacts = 10000, window = 8192, repeats = 1;
  const char *path = "bench.db";
  int c;
  while ((c = getopt(argc, argv, "e:n:c:w:d:r:")) != -1) {
    switch (c) {
    case 'e': existing = atol(optarg); break;
    case 'n': messages = atol(optarg); break;
    case 'c': contacts = atol(optarg); break;
    case 'w': window = atol(optarg); break;
    case 'd': path = optarg; break;
    case 'r': repeats = atol(optarg); break;
    default:
      fprintf(stderr, "usage: %s [-e existing_threads] [-n messages] [-c contacts] [-w in_flight] [-d db] [-r repeats]\n", argv[0]);
      return 2;
    }
  }
  uv_loop_t *loop = uv_default_loop();
  char url[1024], err[256];
  snprintf(url, sizeof(url), "sqlite:%s", path);
  store *st;
  if (store_open(loop, url, &st, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  router_channel ch;
  router_channel_init(&ch, "bench");
  ch.inbox = strdup("Support");
  int put = 0;
  store_channel_put(st, &ch, on_put, &put);
  router_channel_free(&ch);
  while (!put) uv_run(loop, UV_RUN_ONCE);

  /* Pre-load: one thread (and ticket) per contact, like a long-lived help desk. */
  double pre = run(loop, st, "pre", existing, existing, window);
  fprintf(stderr, "preloaded %ld threads in %.1f s\n", existing, pre);

  /* Each repeat uses fresh senders and ids, so every run has the same mix;
   * the existing threads grow by `contacts` per repeat. */
  for (long rep = 0; rep < repeats; rep++) {
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "run%ld", rep);
    store_stats s0, s1;
    store_get_stats(st, &s0);
    double secs = run(loop, st, prefix, messages, contacts, window);
    store_get_stats(st, &s1);
    uint64_t txns = s1.transactions - s0.transactions;
    printf("existing_threads=%ld messages=%ld contacts=%ld window=%ld seconds=%.3f "
           "msg_per_s=%.0f us_per_msg=%.2f transactions=%llu msgs_per_txn=%.0f\n",
           existing + rep * contacts, messages, contacts, window, secs, messages / secs,
           secs * 1e6 / messages, (unsigned long long)txns, (double)messages / (double)(txns ? txns : 1));
    fflush(stdout);
  }
  store_close(st);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
