/* test_schema.c — core/schema.c: table checks, credential validation, JSON Schema. */
#include "schema.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static const char *const modes[] = {"fast", "slow", NULL};
static const sb_field fields[] = {
    {"token", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Token", "A secret.", NULL},
    {"endpoint", SB_FIELD_URL, 0, "https://example.com/out", "Endpoint", NULL, NULL},
    {"retries", SB_FIELD_INT, 0, "3", "Retries", NULL, NULL},
    {"verbose", SB_FIELD_BOOL, 0, "false", "Verbose", NULL, NULL},
    {"poll_interval", SB_FIELD_DURATION, 0, "30s", "Poll", NULL, NULL},
    {"mode", SB_FIELD_ENUM, 0, "fast", "Mode", NULL, modes},
    {"tags", SB_FIELD_STRING, SB_FIELD_MULTI, NULL, "Tags", NULL, NULL},
    SB_FIELD_END,
};

static char err[1024];

/* Builds a config from a JSON text; returns the rc and leaves err filled. */
static int build(const char *json, sb_config **out) {
  json_error_t jerr;
  json_t *creds = json_loads(json, 0, &jerr);
  ck_assert_ptr_nonnull(creds);
  err[0] = '\0';
  sb_config *cfg = NULL;
  int rc = schema_config_build("demo", fields, creds, "/tmp", &cfg, err, sizeof(err));
  json_decref(creds);
  if (out != NULL) {
    *out = cfg;
  } else {
    schema_config_free(cfg);
  }
  return rc;
}

START_TEST(valid_credentials_fill_defaults_and_parse_numbers) {
  sb_config *cfg;
  ck_assert_int_eq(build("{\"token\":\"abcd1234\",\"retries\":7,\"poll_interval\":\"1h30m\",\"tags\":[\"a\",\"b\"]}", &cfg), 0);
  ck_assert_str_eq(schema_config_get(cfg, "token"), "abcd1234");
  ck_assert_str_eq(schema_config_get(cfg, "endpoint"), "https://example.com/out");
  ck_assert_int_eq(schema_config_int(cfg, "retries", -1), 7);
  ck_assert_int_eq(schema_config_int(cfg, "verbose", -1), 0);
  ck_assert_int_eq(schema_config_int(cfg, "poll_interval", -1), 5400000);
  ck_assert_str_eq(schema_config_get(cfg, "mode"), "fast");
  ck_assert_uint_eq(schema_config_count(cfg, "tags"), 2);
  ck_assert_str_eq(schema_config_get_at(cfg, "tags", 1), "b");
  ck_assert_ptr_null(schema_config_get_at(cfg, "tags", 2));
  ck_assert_ptr_null(schema_config_get(cfg, "nope"));
  ck_assert_int_eq(schema_config_int(cfg, "token", 99), 99);
  schema_config_free(cfg);
}
END_TEST

START_TEST(unknown_key_is_named) {
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"tokn\":\"x\"}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": unknown credential \"tokn\" (the plugin's schema does not list it)");
}
END_TEST

START_TEST(missing_required_key_is_named) {
  ck_assert_int_lt(build("{}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": required credential \"token\" is missing");
}
END_TEST

START_TEST(wrong_types_are_named) {
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"retries\":\"many\"}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"retries\" must be an integer");
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"verbose\":\"yes\"}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"verbose\" must be true or false");
  ck_assert_int_lt(build("{\"token\":5}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"token\" must be a string");
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"tags\":\"a\"}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"tags\" must be a list of string values");
}
END_TEST

START_TEST(bad_enum_url_and_duration_are_named) {
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"mode\":\"warp\"}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"mode\" must be one of the listed values");
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"endpoint\":\"not a url\"}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"endpoint\" must be an absolute URL such as https://host/path");
  ck_assert_int_lt(build("{\"token\":\"abcd1234\",\"poll_interval\":\"soon\"}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "credential \"poll_interval\" must be a duration"));
}
END_TEST

START_TEST(secret_value_never_appears_in_errors) {
  ck_assert_int_lt(build("{\"token\":123456789}", NULL), 0);
  ck_assert_ptr_null(strstr(err, "123456789"));
  setenv("SCHEMA_TEST_SECRET", "hunter2hunter2", 1);
  ck_assert_int_lt(build("{\"token\":{\"env\":\"SCHEMA_TEST_SECRET\"},\"mode\":\"x\"}", NULL), 0);
  ck_assert_ptr_null(strstr(err, "hunter2"));
}
END_TEST

START_TEST(env_and_file_references_resolve) {
  char *dir = tu_tmpdir();
  char *path = tu_write_file(dir, "token.txt", "from-a-file\n");
  setenv("SCHEMA_TEST_ENDPOINT", "http://127.0.0.1:9000/out", 1);
  char json[4096];
  snprintf(json, sizeof(json), "{\"token\":{\"file\":\"%s\"},\"endpoint\":{\"env\":\"SCHEMA_TEST_ENDPOINT\"}}", path);
  sb_config *cfg;
  ck_assert_int_eq(build(json, &cfg), 0);
  ck_assert_str_eq(schema_config_get(cfg, "token"), "from-a-file");
  ck_assert_str_eq(schema_config_get(cfg, "endpoint"), "http://127.0.0.1:9000/out");
  schema_config_free(cfg);
  ck_assert_int_lt(build("{\"token\":{\"env\":\"SCHEMA_TEST_UNSET_VAR\"}}", NULL), 0);
  ck_assert_str_eq(err, "channel \"demo\": credential \"token\" refers to environment variable SCHEMA_TEST_UNSET_VAR, which is not set");
  ck_assert_int_lt(build("{\"token\":{\"file\":\"/nonexistent/x\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "names file /nonexistent/x, which cannot be read"));
  ck_assert_int_lt(build("{\"token\":{\"vault\":\"x\"}}", NULL), 0);
  ck_assert_ptr_nonnull(strstr(err, "must be a value, {\"env\": NAME} or {\"file\": PATH}"));
  tu_rmtree(dir);
  free(dir);
  free(path);
}
END_TEST

START_TEST(durations_parse) {
  int64_t ms;
  ck_assert_int_eq(schema_parse_duration("250ms", &ms), 0);
  ck_assert_int_eq(ms, 250);
  ck_assert_int_eq(schema_parse_duration("2d", &ms), 0);
  ck_assert_int_eq(ms, 172800000);
  ck_assert_int_eq(schema_parse_duration("90", &ms), 0);
  ck_assert_int_eq(ms, 90000);
  ck_assert_int_lt(schema_parse_duration("", &ms), 0);
  ck_assert_int_lt(schema_parse_duration("5x", &ms), 0);
  ck_assert_int_lt(schema_parse_duration("-5s", &ms), 0);
  ck_assert_int_lt(schema_parse_duration("5s10", &ms), 0);
}
END_TEST

START_TEST(table_checks_refuse_bad_tables) {
  const sb_field bad_key[] = {{"Token", SB_FIELD_STRING, 0, NULL, NULL, NULL, NULL}, SB_FIELD_END};
  const sb_field bad_type[] = {{"token", 9, 0, NULL, NULL, NULL, NULL}, SB_FIELD_END};
  const sb_field dup[] = {{"a", SB_FIELD_STRING, 0, NULL, NULL, NULL, NULL}, {"a", SB_FIELD_INT, 0, NULL, NULL, NULL, NULL}, SB_FIELD_END};
  const sb_field enum_without_values[] = {{"m", SB_FIELD_ENUM, 0, NULL, NULL, NULL, NULL}, SB_FIELD_END};
  const sb_field bad_default[] = {{"n", SB_FIELD_INT, 0, "ten", NULL, NULL, NULL}, SB_FIELD_END};
  const sb_field required_default[] = {{"n", SB_FIELD_INT, SB_FIELD_REQUIRED, "1", NULL, NULL, NULL}, SB_FIELD_END};
  const sb_field bad_flags[] = {{"n", SB_FIELD_INT, 0x80, NULL, NULL, NULL, NULL}, SB_FIELD_END};
  ck_assert_int_eq(schema_check_table("p", fields, err, sizeof(err)), 0);
  ck_assert_int_eq(schema_check_table("p", NULL, err, sizeof(err)), 0);
  ck_assert_int_lt(schema_check_table("p", bad_key, err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "credential key \"Token\" is invalid"));
  ck_assert_int_lt(schema_check_table("p", bad_type, err, sizeof(err)), 0);
  ck_assert_str_eq(err, "plugin p: credential \"token\" has unknown type 9");
  ck_assert_int_lt(schema_check_table("p", dup, err, sizeof(err)), 0);
  ck_assert_str_eq(err, "plugin p: credential key \"a\" appears twice in its schema");
  ck_assert_int_lt(schema_check_table("p", enum_without_values, err, sizeof(err)), 0);
  ck_assert_int_lt(schema_check_table("p", bad_default, err, sizeof(err)), 0);
  ck_assert_str_eq(err, "plugin p: the default of credential \"n\" must be an integer");
  ck_assert_int_lt(schema_check_table("p", required_default, err, sizeof(err)), 0);
  ck_assert_int_lt(schema_check_table("p", bad_flags, err, sizeof(err)), 0);
}
END_TEST

START_TEST(json_schema_marks_secrets_write_only) {
  json_t *js = schema_to_json_schema("Test", fields);
  ck_assert_ptr_nonnull(js);
  json_t *props = json_object_get(js, "properties");
  ck_assert(json_is_true(json_object_get(json_object_get(props, "token"), "writeOnly")));
  ck_assert_ptr_null(json_object_get(json_object_get(props, "endpoint"), "writeOnly"));
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(props, "endpoint"), "format")), "uri");
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(props, "retries"), "default")), 3);
  ck_assert_int_eq(json_array_size(json_object_get(json_object_get(props, "mode"), "enum")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(props, "tags"), "type")), "array");
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(js, "required"), 0)), "token");
  ck_assert(json_is_false(json_object_get(js, "additionalProperties")));
  json_decref(js);
}
END_TEST

START_TEST(equal_configs_compare_equal) {
  sb_config *a, *b, *c;
  ck_assert_int_eq(build("{\"token\":\"abcd1234\",\"tags\":[\"x\"]}", &a), 0);
  ck_assert_int_eq(build("{\"token\":\"abcd1234\",\"tags\":[\"x\"]}", &b), 0);
  ck_assert_int_eq(build("{\"token\":\"abcd1235\",\"tags\":[\"x\"]}", &c), 0);
  ck_assert(schema_config_equal(a, b));
  ck_assert(!schema_config_equal(a, c));
  schema_config_free(a);
  schema_config_free(b);
  schema_config_free(c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("schema");
  TCase *tc = tcase_create("schema");
  tcase_add_test(tc, valid_credentials_fill_defaults_and_parse_numbers);
  tcase_add_test(tc, unknown_key_is_named);
  tcase_add_test(tc, missing_required_key_is_named);
  tcase_add_test(tc, wrong_types_are_named);
  tcase_add_test(tc, bad_enum_url_and_duration_are_named);
  tcase_add_test(tc, secret_value_never_appears_in_errors);
  tcase_add_test(tc, env_and_file_references_resolve);
  tcase_add_test(tc, durations_parse);
  tcase_add_test(tc, table_checks_refuse_bad_tables);
  tcase_add_test(tc, json_schema_marks_secrets_write_only);
  tcase_add_test(tc, equal_configs_compare_equal);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
