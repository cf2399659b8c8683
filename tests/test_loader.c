/* test_loader.c — core/loader.c: each refusal, and that refusals do not stop
 * the good plugins from loading. The broken plugins are built from
 * tests/broken_plugins/broken.c, one variant per flaw. */
#include "channel.h"
#include "loader.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static loader l;

static void setup(void) {
  memset(&l, 0, sizeof(l));
  const char *dirs[] = {SB_TEST_PLUGIN_DIR};
  ck_assert_int_eq(loader_load(&l, hostapi_table(), dirs, 1, NULL, NULL, NULL), 0);
}

static void teardown(void) { loader_unload(&l); }

/* The refusal of the file named name, or NULL. */
static const char *refusal(const char *name) {
  char suffix[128];
  snprintf(suffix, sizeof(suffix), "/%s", name);
  for (size_t i = 0; i < l.refusal_count; i++) {
    size_t n = strlen(l.refusals[i].path), m = strlen(suffix);
    if (n >= m && strcmp(l.refusals[i].path + n - m, suffix) == 0) return l.refusals[i].reason;
  }
  return NULL;
}

#define ck_assert_refused(file, ...)                                       \
  do {                                                                     \
    const char *r_ = refusal(file);                                        \
    ck_assert_msg(r_ != NULL, "%s was not refused", file);                 \
    const char *want_[] = {__VA_ARGS__};                                   \
    for (size_t i_ = 0; i_ < sizeof(want_) / sizeof(want_[0]); i_++) {     \
      ck_assert_msg(strstr(r_, want_[i_]) != NULL, "refusal of %s: \"%s\" lacks \"%s\"", file, r_, want_[i_]); \
    }                                                                      \
  } while (0)

START_TEST(good_plugin_loads_despite_broken_neighbours) {
  const loader_plugin *p = loader_find(&l, "testplugin");
  ck_assert_ptr_nonnull(p);
  ck_assert_str_eq(p->desc.name, "Test plugin");
  ck_assert_ptr_nonnull(p->desc.create);
  ck_assert_uint_eq(l.count, 2); /* testplugin and wsecho */
  ck_assert_uint_eq(l.refusal_count, 16);
}
END_TEST

START_TEST(not_a_shared_object_is_refused_with_dlerror) {
  char *dir = tu_tmpdir();
  /* Long enough that the dynamic loader reads a header and rejects it. */
  char junk[2048];
  memset(junk, 'x', sizeof(junk) - 1);
  junk[sizeof(junk) - 1] = '\0';
  char *path = tu_write_file(dir, "garbage.so", junk);
  loader_plugin p;
  char err[1024];
  ck_assert_int_lt(loader_open_file(path, hostapi_table(), &p, err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "could not be loaded"));
  ck_assert_ptr_nonnull(strstr(err, "garbage.so"));
  ck_assert_ptr_nonnull(strstr(err, "invalid ELF header"));
  tu_rmtree(dir);
  free(dir);
  free(path);
}
END_TEST

START_TEST(missing_entry_symbol_is_refused) {
  ck_assert_refused("no_entry.so", "no_entry.so", "has no sb_plugin_entry symbol", "undefined symbol");
}
END_TEST

START_TEST(failing_entry_is_refused_with_its_reason) {
  ck_assert_refused("entry_fails.so", "\"entry_fails\"", "this build needs a licence file");
}
END_TEST

START_TEST(an_entry_reason_without_its_end_is_cut_not_overrun) {
  ck_assert_refused("entry_unended.so", "\"entry_unended\"", "xxxxxxxx");
}
END_TEST

START_TEST(a_description_that_is_not_utf8_is_refused) {
  ck_assert_refused("not_utf8.so", "\"not_utf8\"", "description that is not UTF-8");
}
END_TEST

START_TEST(wrong_magic_is_refused) { ck_assert_refused("bad_magic.so", "bad_magic.so", "wrong magic 0x12345678"); }
END_TEST

/* "speaks 1.N" for this host, and "needs plugin ABI 1.M" for newer_minor.so
 * (built as SB_ABI_MINOR + 7), so the tests follow the header's version. */
static const char *speaks(void) {
  static char buf[32];
  snprintf(buf, sizeof(buf), "speaks %d.%d", SB_ABI_MAJOR, SB_ABI_MINOR);
  return buf;
}

static const char *abi_version(void) {
  static char buf[16];
  snprintf(buf, sizeof(buf), "%d.%d", SB_ABI_MAJOR, SB_ABI_MINOR);
  return buf;
}

/* An entry that checked SB_HOST_COMPATIBLE and returned SB_EVERSION: the
 * refusal names this host's version, gives the plugin's, and says what to do. */
START_TEST(an_entry_refusing_this_host_is_refused_naming_both_versions) {
  char plugin_said[64];
  snprintf(plugin_said, sizeof(plugin_said), "built for plugin ABI %d.%d", SB_ABI_MAJOR, SB_ABI_MINOR + 7);
  ck_assert_refused("entry_version.so", "\"entry_version\"", "does not run under this host's plugin ABI",
                    abi_version(), plugin_said, "rebuild it against this host's SDK");
}
END_TEST

START_TEST(other_major_is_refused_naming_both_versions) {
  ck_assert_refused("major_two.so", "\"major_two\"", "major_two.so", "ABI 2.0", speaks());
}
END_TEST

START_TEST(newer_minor_is_refused_naming_both_versions) {
  char needs[48];
  snprintf(needs, sizeof(needs), "needs plugin ABI %d.%d", SB_ABI_MAJOR, SB_ABI_MINOR + 7);
  ck_assert_refused("newer_minor.so", "\"newer_minor\"", needs, speaks());
}
END_TEST

START_TEST(oversized_descriptor_is_refused) {
  ck_assert_refused("oversized.so", "\"oversized\"", "descriptor of", "bytes");
}
END_TEST

START_TEST(missing_required_hook_is_refused_by_name) {
  ck_assert_refused("no_create.so", "\"no_create\"", "no_create.so", "lacks the required hook create");
}
END_TEST

START_TEST(unknown_start_by_is_refused) {
  ck_assert_refused("bad_start.so", "\"bad_start\"", "bad_start.so", "unknown start_by 9");
}
END_TEST

START_TEST(invalid_schema_tables_are_refused) {
  ck_assert_refused("bad_type.so", "\"bad_type\"", "bad_type.so", "unknown type 42");
  ck_assert_refused("dup_key.so", "\"dup_key\"", "appears twice");
}
END_TEST

START_TEST(invalid_or_mismatched_ids_are_refused) {
  ck_assert_refused("bad_id.so", "invalid id \"Bad-Id\"");
  ck_assert_refused("misnamed.so", "declares id \"someone_else\"", "must be named someone_else.so");
}
END_TEST

START_TEST(websocket_hooks_come_together) {
  ck_assert_refused("ws_half.so", "\"ws_half\"", "has the ws_open hook but lacks ws_closed");
  ck_assert_ptr_nonnull(loader_find(&l, "wsecho"));
}
END_TEST

START_TEST(duplicate_id_is_refused) {
  char *dir = tu_tmpdir();
  char cmd[8400];
  snprintf(cmd, sizeof(cmd), "cp %s/testplugin.so %s/", SB_TEST_PLUGIN_DIR, dir);
  ck_assert_int_eq(tu_run(cmd, NULL), 0);
  loader two = {0};
  const char *dirs[] = {SB_TEST_PLUGIN_DIR, dir};
  ck_assert_int_eq(loader_load(&two, hostapi_table(), dirs, 2, NULL, NULL, NULL), 0);
  ck_assert_uint_eq(two.count, 2); /* testplugin once, and wsecho */
  int found = 0;
  for (size_t i = 0; i < two.refusal_count; i++) {
    found |= strstr(two.refusals[i].reason, "is already loaded from") != NULL;
  }
  ck_assert(found);
  loader_unload(&two);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

static int only_testplugin(const void *ctx, const char *id) { return strcmp(id, "testplugin") == 0; }

START_TEST(only_allowed_files_are_opened) {
  loader some = {0};
  const char *dirs[] = {SB_TEST_PLUGIN_DIR};
  ck_assert_int_eq(loader_load(&some, hostapi_table(), dirs, 1, only_testplugin, NULL, NULL), 0);
  ck_assert_uint_eq(some.count, 1);
  ck_assert_uint_eq(some.refusal_count, 0);
  loader_unload(&some);
}
END_TEST

START_TEST(missing_directory_is_a_refusal_not_a_failure) {
  loader none = {0};
  const char *dirs[] = {"/nonexistent/plugins", SB_TEST_PLUGIN_DIR};
  ck_assert_int_eq(loader_load(&none, hostapi_table(), dirs, 2, only_testplugin, NULL, NULL), 0);
  ck_assert_uint_eq(none.count, 1);
  ck_assert_uint_eq(none.refusal_count, 1);
  ck_assert_ptr_nonnull(strstr(none.refusals[0].reason, "/nonexistent/plugins cannot be read"));
  loader_unload(&none);
}
END_TEST

START_TEST(a_folder_without_plugins_loads_none) {
  char *dir = tu_tmpdir();
  loader none = {0};
  const char *dirs[] = {dir};
  ck_assert_int_eq(loader_load(&none, hostapi_table(), dirs, 1, NULL, NULL, NULL), 0);
  ck_assert_uint_eq(none.count, 0);
  ck_assert_uint_eq(none.refusal_count, 0);
  loader_unload(&none);
  tu_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(header_example_loads) {
  loader ex = {0};
  const char *dirs[] = {SB_TEST_PLUGIN_DIR "/example"};
  ck_assert_int_eq(loader_load(&ex, hostapi_table(), dirs, 1, NULL, NULL, NULL), 0);
  ck_assert_ptr_nonnull(loader_find(&ex, "echo"));
  loader_unload(&ex);
}
END_TEST

START_TEST(plugin_json_describes_capabilities_and_schema) {
  json_t *j = loader_plugin_json(loader_find(&l, "testplugin"));
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "testplugin");
  ck_assert_str_eq(json_string_value(json_object_get(j, "abi")), abi_version());
  json_t *caps = json_object_get(j, "capabilities");
  ck_assert_str_eq(json_string_value(json_object_get(caps, "thread_model")), "per_contact");
  ck_assert(json_is_true(json_object_get(caps, "reply_to")));
  ck_assert(json_is_false(json_object_get(caps, "rich_text")));
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(caps, "attachments"), "max_count")), 4);
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(caps, "window"), "seconds")), 86400);
  json_t *token = json_object_get(json_object_get(json_object_get(j, "credential_schema"), "properties"), "token");
  ck_assert(json_is_true(json_object_get(token, "writeOnly")));
  json_decref(j);
}
END_TEST

int main(void) {
  Suite *s = suite_create("loader");
  TCase *tc = tcase_create("loader");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, good_plugin_loads_despite_broken_neighbours);
  tcase_add_test(tc, not_a_shared_object_is_refused_with_dlerror);
  tcase_add_test(tc, missing_entry_symbol_is_refused);
  tcase_add_test(tc, failing_entry_is_refused_with_its_reason);
  tcase_add_test(tc, an_entry_reason_without_its_end_is_cut_not_overrun);
  tcase_add_test(tc, a_folder_without_plugins_loads_none);
  tcase_add_test(tc, a_description_that_is_not_utf8_is_refused);
  tcase_add_test(tc, an_entry_refusing_this_host_is_refused_naming_both_versions);
  tcase_add_test(tc, wrong_magic_is_refused);
  tcase_add_test(tc, other_major_is_refused_naming_both_versions);
  tcase_add_test(tc, newer_minor_is_refused_naming_both_versions);
  tcase_add_test(tc, websocket_hooks_come_together);
  tcase_add_test(tc, oversized_descriptor_is_refused);
  tcase_add_test(tc, missing_required_hook_is_refused_by_name);
  tcase_add_test(tc, invalid_schema_tables_are_refused);
  tcase_add_test(tc, unknown_start_by_is_refused);
  tcase_add_test(tc, invalid_or_mismatched_ids_are_refused);
  tcase_add_test(tc, duplicate_id_is_refused);
  tcase_add_test(tc, only_allowed_files_are_opened);
  tcase_add_test(tc, missing_directory_is_a_refusal_not_a_failure);
  tcase_add_test(tc, header_example_loads);
  tcase_add_test(tc, plugin_json_describes_capabilities_and_schema);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
