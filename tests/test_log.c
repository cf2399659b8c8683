/* test_log.c — core/log.c: logfmt lines, level filter, secret redaction. */
#include "log.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *capture(void (*fn)(void)) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  log_set_fd(fds[1]);
  fn();
  log_set_fd(2);
  close(fds[1]);
  static char buf[16384];
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static void emit_with_channel(void) { log_msg(LOG_LEVEL_INFO, "demo", "custom", "connected \"ok\""); }

START_TEST(line_names_level_channel_and_plugin) {
  char *out = capture(emit_with_channel);
  ck_assert_ptr_nonnull(strstr(out, "level=info channel=\"demo\" plugin=\"custom\" msg=\"connected \\\"ok\\\"\""));
  ck_assert_int_eq(out[strlen(out) - 1], '\n');
}
END_TEST

static void emit_debug(void) { log_debug("hidden"); }

START_TEST(level_filter_drops_lower_levels) {
  log_set_level(LOG_LEVEL_INFO);
  char *out = capture(emit_debug);
  ck_assert_str_eq(out, "");
}
END_TEST

static void emit_secret(void) { log_info("token is s3cr3t-value and again s3cr3t-value"); }

START_TEST(registered_secret_is_redacted_everywhere) {
  log_add_secret("s3cr3t-value");
  char *out = capture(emit_secret);
  ck_assert_ptr_null(strstr(out, "s3cr3t"));
  ck_assert_ptr_nonnull(strstr(out, "token is [redacted] and again [redacted]"));
  log_clear_secrets();
}
END_TEST

/* Escaping a secret's quote, backslash or newline for the line must not
 * let it through; nor may a short one (the stub host hides three bytes on). */
static void emit_awkward_secrets(void) { log_info("a=pa\"ss\\wo\nrd b=k3y"); }

START_TEST(secrets_are_redacted_before_escaping) {
  log_add_secret("pa\"ss\\wo\nrd");
  log_add_secret("k3y");
  char *out = capture(emit_awkward_secrets);
  ck_assert_ptr_null(strstr(out, "pa"));
  ck_assert_ptr_null(strstr(out, "k3y"));
  ck_assert_ptr_nonnull(strstr(out, "a=[redacted] b=[redacted]"));
  log_clear_secrets();
}
END_TEST

static void emit_newline(void) { log_warn("two\nlines"); }

START_TEST(newline_in_message_stays_on_one_line) {
  char *out = capture(emit_newline);
  ck_assert_ptr_nonnull(strstr(out, "two\\nlines"));
  ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
}
END_TEST

START_TEST(level_names_parse) {
  int l = -1;
  ck_assert_int_eq(log_level_parse("debug", &l), 0);
  ck_assert_int_eq(l, LOG_LEVEL_DEBUG);
  ck_assert_int_eq(log_level_parse("WARN", &l), 0);
  ck_assert_int_eq(l, LOG_LEVEL_WARN);
  ck_assert_int_lt(log_level_parse("loud", &l), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("log");
  tcase_add_test(tc, line_names_level_channel_and_plugin);
  tcase_add_test(tc, level_filter_drops_lower_levels);
  tcase_add_test(tc, registered_secret_is_redacted_everywhere);
  tcase_add_test(tc, secrets_are_redacted_before_escaping);
  tcase_add_test(tc, newline_in_message_stays_on_one_line);
  tcase_add_test(tc, level_names_parse);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
