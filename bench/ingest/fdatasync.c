/* bench/ingest/fdatasync.c — the disk's floor for a group commit: how long
 * one fdatasync takes after overwriting 16 KiB of a preallocated file (as
 * the store's syncer does after a commit of a few WAL frames), with THREADS
 * threads writing and flushing at once. Run by fdatasync.sh; compare its
 * figure with anatomy.sh's mean flush under load. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (64L << 20)
#define WRITE_BYTES 16384

static int fd;
static volatile int stop;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static off_t next_off;

static void *flusher(void *arg) {
  long *count = arg;
  char buf[WRITE_BYTES];
  memset(buf, 'x', sizeof(buf));
  while (!stop) {
    pthread_mutex_lock(&mu);
    off_t off = next_off;
    next_off = (next_off + WRITE_BYTES) % FILE_BYTES;
    pthread_mutex_unlock(&mu);
    if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf) || fdatasync(fd) != 0) {
      perror("fdatasync bench");
      exit(1);
    }
    (*count)++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FILE THREADS SECONDS\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[2]), seconds = atoi(argv[3]);
  if (threads < 1 || threads > 16 || seconds < 1) return 2;
  fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  static char zero[1 << 16];
  for (off_t off = 0; off < FILE_BYTES; off += sizeof(zero))
    if (pwrite(fd, zero, sizeof(zero), off) != (ssize_t)sizeof(zero)) return 1;
  fsync(fd);
  pthread_t t[16];
  long counts[16] = {0};
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, flusher, &counts[i]);
  sleep((unsigned)seconds);
  stop = 1;
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    total += counts[i];
  }
  printf("%d thread%s: %.0f fdatasync/s, %.0f µs each\n", threads, threads > 1 ? "s" : "",
         (double)total / seconds, 1e6 * seconds * threads / (double)total);
  close(fd);
  unlink(argv[1]);
  return 0;
}
