/* log.h — structured, one-line-per-event logging for the host, secrets redacted.
 *
 * Every line is logfmt: `ts=... level=... [channel=...] [plugin=...] msg="..."`.
 * Lines are written with a single write so concurrent threads never interleave
 * inside a line. Values registered with log_add_secret() are replaced by
 * `[redacted]` wherever they appear, as a last line of defence: callers still
 * never pass a SECRET credential to the log on purpose.
 */
#ifndef SB_CORE_LOG_H
#define SB_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Same numeric values as SB_LOG_* in the plugin ABI. */
enum log_level {
  LOG_LEVEL_ERROR = 0,
  LOG_LEVEL_WARN = 1,
  LOG_LEVEL_INFO = 2,
  LOG_LEVEL_DEBUG = 3
};

/* Sets the lowest level that is written (default LOG_LEVEL_INFO). Thread-safe. */
void log_set_level(int level);
int log_get_level(void);

/* Parses "error", "warn", "info" or "debug" into *level. Returns 0 or -EINVAL. */
int log_level_parse(const char *name, int *level);
const char *log_level_name(int level);

/* Directs output to fd (default 2, stderr). The fd is not closed by log. */
void log_set_fd(int fd);

/* Registers a secret value to redact from every later line; values shorter than
 * 4 bytes are ignored (they would redact ordinary words). The string is copied.
 * Thread-safe. log_clear_secrets() forgets them all (used on shutdown). */
void log_add_secret(const char *value);
void log_clear_secrets(void);
/* Replaces every registered secret in buf (NUL-terminated, cap bytes) with
 * [redacted], as every log line is: for text that leaves the daemon by
 * another way (a send's failure reason shown to agents, an API error). */
void log_redact(char *buf, size_t cap);

/* Writes one line. channel and plugin may be NULL. Thread-safe. */
void log_msg(int level, const char *channel, const char *plugin, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vmsg(int level, const char *channel, const char *plugin, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, NULL, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
