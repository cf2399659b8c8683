/* test_config.c — core/config.c: structure of the config file and its errors. */
#include "config.h"
#include "log.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static char *dir;
static char err[1024];

static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) {
  tu_rmtree(dir);
  free(dir);
}

/* Loads text as a config file; returns rc, err filled, *out set on success. */
static int load(const char *text, config **out) {
  char *path = tu_write_file(dir, "switchboard.json", text);
  config *cfg = NULL;
  err[0] = '\0';
  int rc = config_load(path, NULL, NULL, &cfg, err, sizeof(err));
  free(path);
  if (out != NULL) {
    *out = cfg;
  } else {
    config_free(cfg);
  }
  return rc;
}

START_TEST(defaults_apply_to_an_empty_config) {
  config *cfg;
  ck_assert_int_eq(load("{}", &cfg), 0);
  ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
  ck_assert_ptr_nonnull(strstr(cfg->store, "sqlite:"));
  ck_assert_uint_eq(cfg->channel_count, 0);
  ck_assert_uint_eq(cfg->allow_count, 0);
  ck_assert(!config_plugin_allowed(cfg, "custom"));
  ck_assert_ptr_null(cfg->secret_key);
  config_free(cfg);
}
END_TEST

START_TEST(full_config_is_read) {
  config *cfg;
  ck_assert_int_eq(load("{\"listen\":\"127.0.0.1:9\",\"store\":\"sqlite:db/x.db\",\"log_level\":\"debug\","
                        "\"plugins\":{\"dirs\":[\"p\",\"/abs\"],\"allow\":[\"custom\"]},"
                        "\"channels\":[{\"name\":\"demo\",\"plugin\":\"custom\",\"inbox\":\"Sales\",\"status\":\"off\","
                        "\"credentials\":{\"a\":1}},{\"name\":\"web-chat_2\",\"plugin\":\"chat\"}]}",
                        &cfg),
                   0);
  ck_assert_str_eq(cfg->listen, "127.0.0.1:9");
  char want[4200];
  snprintf(want, sizeof(want), "sqlite:%s/db/x.db", dir);
  ck_assert_str_eq(cfg->store, want);
  ck_assert_int_eq(cfg->log_level, LOG_LEVEL_DEBUG);
  snprintf(want, sizeof(want), "%s/p", dir);
  ck_assert_str_eq(cfg->plugin_dirs[0], want);
  ck_assert_str_eq(cfg->plugin_dirs[1], "/abs");
  ck_assert(config_plugin_allowed(cfg, "custom"));
  ck_assert(!config_plugin_allowed(cfg, "chat"));
  ck_assert_uint_eq(cfg->channel_count, 2);
  const config_channel *demo = config_find_channel(cfg, "demo");
  ck_assert_str_eq(demo->inbox, "Sales");
  ck_assert_int_eq(demo->enabled, 0);
  ck_assert(json_is_object(demo->credentials));
  ck_assert_str_eq(config_find_channel(cfg, "web-chat_2")->inbox, "Support");
  ck_assert_int_eq(config_find_channel(cfg, "web-chat_2")->enabled, 1);
  config_free(cfg);
}
END_TEST

START_TEST(overrides_win_over_the_file) {
  char *path = tu_write_file(dir, "o.json", "{\"listen\":\"127.0.0.1:1\",\"store\":\"sqlite:a.db\"}");
  config *cfg;
  ck_assert_int_eq(config_load(path, "127.0.0.1:2", "sqlite:/tmp/b.db", &cfg, err, sizeof(err)), 0);
  ck_assert_str_eq(cfg->listen, "127.0.0.1:2");
  ck_assert_str_eq(cfg->store, "sqlite:/tmp/b.db");
  config_free(cfg);
  free(path);
}
END_TEST

START_TEST(syntax_error_reports_line_and_column) {
  ck_assert_int_lt(load("{\n  \"listen\": \"x:1\",\n  \"store\" \"y\"\n}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "switchboard.json:3:"));
  ck_assert_ptr_nonnull(strstr(err, "invalid JSON"));
}
END_TEST

START_TEST(missing_file_is_reported) {
  config *cfg;
  ck_assert_int_lt(config_load("/nonexistent/sb.json", NULL, NULL, &cfg, err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent/sb.json: cannot read the config file"));
}
END_TEST

START_TEST(structural_errors_name_the_key) {
  ck_assert_int_lt(load("{\"lisen\":\"x\"}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "unknown key \"lisen\""));
  ck_assert_int_lt(load("{\"listen\":8080}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"listen\" must be a string"));
  ck_assert_int_lt(load("{\"listen\":\"localhost\"}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "needs a port"));
  ck_assert_int_lt(load("{\"store\":\"mysql://root:pw@db\"}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "store must be \"sqlite:PATH\"; \"mysql\" is not a store this build knows"));
  ck_assert_ptr_null(strstr(err, "pw@db"));
  /* check fails as run would, without repeating a URL that may hold a password */
  ck_assert_int_lt(load("{\"store\":\"postgresql://sb:secret@db/sb\"}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "a PostgreSQL store is not supported yet"));
  ck_assert_ptr_null(strstr(err, "secret"));
  ck_assert_int_lt(load("{\"log_level\":\"loud\"}", NULL), 0);
  ck_assert_int_lt(load("{\"plugins\":{\"dir\":[\"x\"]}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "unknown key \"plugins.dir\""));
  ck_assert_int_lt(load("{\"plugins\":{\"allow\":\"custom\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"plugins.allow\" must be a list of strings"));
  ck_assert_int_lt(load("{\"listen\":\"a:1\",\"listen\":\"b:2\"}", NULL), 0);
}
END_TEST

START_TEST(channel_errors_name_the_channel) {
  ck_assert_int_lt(load("{\"channels\":{}}", NULL), 0);
  ck_assert_int_lt(load("{\"channels\":[{\"plugin\":\"custom\"}]}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "channel 1 needs a \"name\""));
  ck_assert_int_lt(load("{\"channels\":[{\"name\":\"a b\",\"plugin\":\"custom\"}]}", NULL), 0);
  ck_assert_int_lt(load("{\"channels\":[{\"name\":\"a\",\"plugin\":\"custom\"},{\"name\":\"a\",\"plugin\":\"chat\"}]}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "channel name \"a\" is used twice"));
  ck_assert_int_lt(load("{\"channels\":[{\"name\":\"a\"}]}", NULL), 0);
  ck_assert_str_eq(err, "channel \"a\": \"plugin\" must name a plugin id, such as \"custom\"");
  ck_assert_int_lt(load("{\"channels\":[{\"name\":\"a\",\"plugin\":\"custom\",\"colour\":1}]}", NULL), 0);
  ck_assert_str_eq(err, "channel \"a\": unknown key \"colour\"");
  ck_assert_int_lt(load("{\"channels\":[{\"name\":\"a\",\"plugin\":\"custom\",\"status\":\"paused\"}]}", NULL), 0);
  ck_assert_str_eq(err, "channel \"a\": \"status\" must be \"on\" or \"off\"");
  ck_assert_int_lt(load("{\"channels\":[{\"name\":\"a\",\"plugin\":\"custom\",\"credentials\":[]}]}", NULL), 0);
  ck_assert_str_eq(err, "channel \"a\": \"credentials\" must be an object");
}
END_TEST

START_TEST(outbox_and_http_settings_are_read_and_checked) {
  config *cfg;
  ck_assert_int_eq(load("{\"outbox\":{\"retry_base\":\"2s\",\"retry_max\":\"10m\",\"max_attempts\":5},"
                        "\"http\":{\"body_limit\":4096,\"idle_timeout\":\"30s\",\"sse_max_pending\":65536}}", &cfg), 0);
  ck_assert_int_eq(cfg->outbox_retry_base_ms, 2000);
  ck_assert_int_eq(cfg->outbox_retry_max_ms, 600000);
  ck_assert_int_eq(cfg->outbox_max_attempts, 5);
  ck_assert_uint_eq(cfg->http_body_limit, 4096);
  ck_assert_int_eq(cfg->http_idle_timeout_ms, 30000);
  ck_assert_uint_eq(cfg->http_sse_max_pending, 65536);
  config_free(cfg);
  ck_assert_int_lt(load("{\"outbox\":{\"max_attempts\":0}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"outbox.max_attempts\" must be a number from 1 to 100"));
  ck_assert_int_lt(load("{\"outbox\":{\"retry_base\":\"soon\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"outbox.retry_base\" must be a duration"));
  ck_assert_int_lt(load("{\"outbox\":{\"retries\":3}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "unknown key \"outbox.retries\""));
  ck_assert_int_lt(load("{\"http\":{\"tls_cert\":\"a.pem\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "go together"));
  ck_assert_int_lt(load("{\"http\":{\"body_limit\":10}}", NULL), 0);
  ck_assert_int_lt(load("{\"http\":{\"body_limit\":1000000000000000}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "from 1024 to 1073741824"));
  ck_assert_int_lt(load("{\"outbox\":{\"retry_base\":\"2h\"}}", NULL), 0); /* past the default cap of 1h */
  ck_assert_ptr_nonnull(strstr(err, "must not be longer than \"outbox.retry_max\""));
  ck_assert_int_lt(load("{\"http\":{\"sse_max_pending\":100}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"http.sse_max_pending\" must be a number of bytes, at least 4096"));
}
END_TEST

START_TEST(attachment_limit_is_read_and_checked) {
  config *cfg;
  ck_assert_int_eq(load("{}", &cfg), 0);
  ck_assert_int_eq(cfg->attachments_max_bytes, -1); /* the store's default */
  config_free(cfg);
  ck_assert_int_eq(load("{\"attachments\":{\"max_bytes\":1048576}}", &cfg), 0);
  ck_assert_int_eq(cfg->attachments_max_bytes, 1048576);
  config_free(cfg);
  ck_assert_int_eq(load("{\"attachments\":{\"max_bytes\":0}}", &cfg), 0);
  ck_assert_int_eq(cfg->attachments_max_bytes, 0);
  config_free(cfg);
  ck_assert_int_lt(load("{\"attachments\":{\"max_bytes\":-1}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"attachments.max_bytes\" must be a number of bytes from 0 to 1000000000"));
  ck_assert_int_lt(load("{\"attachments\":{\"max_bytes\":\"25MiB\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"attachments.max_bytes\""));
  ck_assert_int_lt(load("{\"attachments\":{\"dir\":\"x\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "unknown key \"attachments.dir\""));
  ck_assert_int_lt(load("{\"attachments\":25}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "\"attachments\" must be an object"));
}
END_TEST

START_TEST(secret_key_is_resolved_and_checked_without_printing_it) {
  config *cfg;
  setenv("CONFIG_TEST_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
  ck_assert_int_eq(load("{\"secret_key\":{\"env\":\"CONFIG_TEST_KEY\"}}", &cfg), 0);
  ck_assert_str_eq(cfg->secret_key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  config_free(cfg);
  setenv("CONFIG_TEST_KEY", "too-short-secret", 1);
  ck_assert_int_lt(load("{\"secret_key\":{\"env\":\"CONFIG_TEST_KEY\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "secret_key must be 64 hexadecimal digits"));
  ck_assert_ptr_null(strstr(err, "too-short-secret"));
  ck_assert_int_lt(load("{\"secret_key\":{\"env\":\"CONFIG_TEST_UNSET\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "secret_key refers to environment variable CONFIG_TEST_UNSET, which is not set"));
  log_clear_secrets();
}
END_TEST

int main(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, defaults_apply_to_an_empty_config);
  tcase_add_test(tc, full_config_is_read);
  tcase_add_test(tc, overrides_win_over_the_file);
  tcase_add_test(tc, syntax_error_reports_line_and_column);
  tcase_add_test(tc, missing_file_is_reported);
  tcase_add_test(tc, structural_errors_name_the_key);
  tcase_add_test(tc, channel_errors_name_the_channel);
  tcase_add_test(tc, outbox_and_http_settings_are_read_and_checked);
  tcase_add_test(tc, attachment_limit_is_read_and_checked);
  tcase_add_test(tc, secret_key_is_resolved_and_checked_without_printing_it);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
