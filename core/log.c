/* log.c — logfmt lines with redaction of registered secrets. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static atomic_int log__level = LOG_LEVEL_INFO;
static atomic_int log__fd = 2;
static pthread_mutex_t log__secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char **log__secrets;
static size_t log__nsecrets;

static const char *const log__names[] = {"error", "warn", "info", "debug"};

void log_set_level(int level) {
  if (level < LOG_LEVEL_ERROR) level = LOG_LEVEL_ERROR;
  if (level > LOG_LEVEL_DEBUG) level = LOG_LEVEL_DEBUG;
  atomic_store(&log__level, level);
}

int log_get_level(void) { return atomic_load(&log__level); }

int log_level_parse(const char *name, int *level) {
  if (name == NULL || level == NULL) return -EINVAL;
  for (int i = 0; i <= LOG_LEVEL_DEBUG; i++) {
    if (strcasecmp(name, log__names[i]) == 0) {
      *level = i;
      return 0;
    }
  }
  if (strcasecmp(name, "warning") == 0) {
    *level = LOG_LEVEL_WARN;
    return 0;
  }
  return -EINVAL;
}

const char *log_level_name(int level) {
  if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG) return "info";
  return log__names[level];
}

void log_set_fd(int fd) { atomic_store(&log__fd, fd); }

/* Secrets shorter than this are not hidden: they would mangle every line
 * (the SDK's stub host draws the same line). */
#define LOG_SECRET_MIN 3

void log_add_secret(const char *value) {
  if (value == NULL || strlen(value) < LOG_SECRET_MIN) return;
  pthread_mutex_lock(&log__secrets_lock);
  for (size_t i = 0; i < log__nsecrets; i++) {
    if (strcmp(log__secrets[i], value) == 0) {
      pthread_mutex_unlock(&log__secrets_lock);
      return;
    }
  }
  char **grown = realloc(log__secrets, (log__nsecrets + 1) * sizeof(*grown));
  char *copy = strdup(value);
  if (grown != NULL) log__secrets = grown;
  if (grown != NULL && copy != NULL) {
    log__secrets[log__nsecrets++] = copy;
  } else {
    free(copy);
  }
  pthread_mutex_unlock(&log__secrets_lock);
}

void log_clear_secrets(void) {
  pthread_mutex_lock(&log__secrets_lock);
  for (size_t i = 0; i < log__nsecrets; i++) free(log__secrets[i]);
  free(log__secrets);
  log__secrets = NULL;
  log__nsecrets = 0;
  pthread_mutex_unlock(&log__secrets_lock);
}

/* Replaces every registered secret in buf (in place; the result only shrinks
 * or keeps its length when the secret is at least as long as the mark). */
static void log__redact(char *buf, size_t cap) {
  static const char mark[] = "[redacted]";
  pthread_mutex_lock(&log__secrets_lock);
  for (size_t i = 0; i < log__nsecrets; i++) {
    const char *s = log__secrets[i];
    size_t slen = strlen(s);
    char *hit;
    while ((hit = strstr(buf, s)) != NULL) {
      size_t tail = strlen(hit + slen);
      size_t mlen = sizeof(mark) - 1;
      if ((size_t)(hit - buf) + mlen + tail + 1 > cap) {
        /* No room to expand: blank the secret out instead. */
        memset(hit, '*', slen);
        continue;
      }
      memmove(hit + mlen, hit + slen, tail + 1);
      memcpy(hit, mark, mlen);
    }
  }
  pthread_mutex_unlock(&log__secrets_lock);
}

void log_redact(char *buf, size_t cap) {
  if (buf != NULL && cap > 0) log__redact(buf, cap);
}

/* Appends a logfmt value, quoting it and escaping quotes, backslashes and
 * control characters so one event stays on one line. */
static size_t log__append_value(char *buf, size_t len, size_t cap, const char *v) {
  if (len + 1 < cap) buf[len++] = '"';
  for (; *v != '\0' && len + 3 < cap; v++) {
    unsigned char c = (unsigned char)*v;
    if (c == '"' || c == '\\') {
      buf[len++] = '\\';
      buf[len++] = (char)c;
    } else if (c == '\n') {
      buf[len++] = '\\';
      buf[len++] = 'n';
    } else if (c < 0x20) {
      buf[len++] = ' ';
    } else {
      buf[len++] = (char)c;
    }
  }
  if (len + 1 < cap) buf[len++] = '"';
  buf[len] = '\0';
  return len;
}

void log_vmsg(int level, const char *channel, const char *plugin, const char *fmt, va_list ap) {
  if (level > atomic_load(&log__level)) return;
  char text[LOG_LINE_MAX / 2];
  vsnprintf(text, sizeof(text), fmt, ap);
  /* Before escaping, which would change a secret holding a quote, a
   * backslash or a control character past recognition; and after, in case
   * escaping made one. */
  log__redact(text, sizeof(text));

  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);

  char line[LOG_LINE_MAX];
  size_t len = (size_t)snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, (long)(tv.tv_usec / 1000), log_level_name(level));
  if (channel != NULL) {
    len += (size_t)snprintf(line + len, sizeof(line) - len, " channel=");
    len = log__append_value(line, len, sizeof(line), channel);
  }
  if (plugin != NULL) {
    len += (size_t)snprintf(line + len, sizeof(line) - len, " plugin=");
    len = log__append_value(line, len, sizeof(line), plugin);
  }
  len += (size_t)snprintf(line + len, sizeof(line) - len, " msg=");
  len = log__append_value(line, len, sizeof(line) - 1, text);
  log__redact(line, sizeof(line) - 1);
  len = strlen(line);
  line[len++] = '\n';

  int fd = atomic_load(&log__fd);
  const char *p = line;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    len -= (size_t)n;
  }
}

void log_msg(int level, const char *channel, const char *plugin, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(level, channel, plugin, fmt, ap);
  va_end(ap);
}
