/* schema.h — a plugin's credential schema: checking the table itself,
 * validating a channel's credentials against it, and exporting JSON Schema.
 *
 * The table is the plugin's static sb_field array (plugin ABI). A validated
 * channel config becomes an sb_config: every field's values as text (the
 * default filled in), numbers pre-parsed, ready for the host API's
 * config_get/config_int. Error sentences never contain a SECRET value.
 */
#ifndef SB_CORE_SCHEMA_H
#define SB_CORE_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <switchboard/plugin.h>

/* Checks a plugin's field table: key format, known type and flags, enum
 * values present exactly for enums, defaults valid for their type, no
 * duplicate key, no REQUIRED field with a default. Returns 0 or -EINVAL with
 * a sentence naming the plugin and key. A NULL table is valid (no fields). */
int schema_check_table(const char *plugin_id, const sb_field *fields, char *err, size_t errlen);

/* Resolves one credential value in place of {"env": NAME} or {"file": PATH}
 * (relative paths against base_dir, one trailing newline stripped). Returns
 * a new reference to the literal value, or NULL with a sentence in err that
 * begins with subject, what is being resolved (e.g. `channel "demo":
 * credential "token"`). */
json_t *schema_resolve_value(const json_t *value, const char *base_dir, const char *subject, char *err,
                             size_t errlen);

/* Validates a channel's credentials object (values may be env/file refs)
 * against the table and builds the config: unknown key, missing required
 * key, wrong type, bad enum, URL or duration each give -EINVAL and one
 * sentence naming the channel and the key. SECRET values are registered
 * with log_add_secret. credentials may be NULL (no keys given). On success
 * *out is a new config the caller frees with schema_config_free. */
int schema_config_build(const char *channel, const sb_field *fields, const json_t *credentials,
                        const char *base_dir, sb_config **out, char *err, size_t errlen);
void schema_config_free(sb_config *config);

/* True when two configs hold the same values (used on reload). */
int schema_config_equal(const sb_config *a, const sb_config *b);

/* Lookups behind the host API's config_* functions; see plugin.h. */
const char *schema_config_get(const sb_config *config, const char *key);
size_t schema_config_count(const sb_config *config, const char *key);
const char *schema_config_get_at(const sb_config *config, const char *key, size_t index);
int64_t schema_config_int(const sb_config *config, const char *key, int64_t fallback);

/* The table as a JSON Schema (draft 2020-12) object: SECRET fields carry
 * "writeOnly": true, durations and enums their format. Returns a new
 * reference, or NULL on allocation failure. */
json_t *schema_to_json_schema(const char *title, const sb_field *fields);

/* Parses a duration ("250ms", "30s", "5m", "2h", "1d", "1h30m", or a plain
 * number of seconds) into milliseconds. Returns 0 or -EINVAL. */
int schema_parse_duration(const char *text, int64_t *ms);

/* Names a field type ("string", "int", ...), or "unknown". */
const char *schema_type_name(uint32_t type);

#endif
