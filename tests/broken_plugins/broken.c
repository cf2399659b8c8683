/* broken.c — deliberately broken plugins, one per refusal the loader must
 * make, and a few the loader accepts that misbehave at run time (for
 * `plugins check`). Built once per BROKEN_* variant (tests/CMakeLists.txt);
 * the output file is named after the id it claims so only the flaw under
 * test differs. */
#include <switchboard/plugin.h>

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

static int br_create(const sb_host *host, sb_channel *ch, const sb_config *cfg, void **instance, char *err,
                     size_t errlen) {
#if defined(BROKEN_LEAK_CREATE)
  *instance = malloc(64); /* and destroy never frees it */
#else
  *instance = (void *)ch;
#endif
  return SB_OK;
}
static int br_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
#if defined(BROKEN_HANG_SEND)
  for (;;) pause(); /* blocks the loop thread for ever */
#endif
  return SB_OK; /* and never completes the send */
}
static void br_destroy(void *instance) {}

#if defined(BROKEN_CRASH_RECEIVE)
static int br_receive(void *instance, const sb_http_request *req, sb_responder *r) {
  volatile int *nowhere = NULL;
  return *nowhere; /* SIGSEGV on the first request */
}
#endif

#if defined(BROKEN_WS_HALF)
static int br_ws_open(void *instance, const sb_http_request *req, sb_ws *ws, void **conn) { return SB_OK; }
static void br_ws_message(void *instance, sb_ws *ws, void *conn, uint32_t kind, const char *data, size_t len) {}
#endif

#if defined(BROKEN_BAD_TYPE)
static const sb_field br_schema[] = {{"token", 42, 0, NULL, "Token", "x", NULL}, SB_FIELD_END};
#elif defined(BROKEN_DUP_KEY)
static const sb_field br_schema[] = {{"token", SB_FIELD_STRING, 0, NULL, "Token", "x", NULL},
                                     {"token", SB_FIELD_INT, 0, NULL, "Token", "y", NULL},
                                     SB_FIELD_END};
#else
static const sb_field br_schema[] = {{"token", SB_FIELD_STRING, 0, NULL, "Token", "x", NULL}, SB_FIELD_END};
#endif

/* Room beyond the descriptor so the oversized variant never reads past it. */
static const struct {
  sb_plugin p;
  char spare[256];
} br_desc = {{
#if defined(BROKEN_BAD_MAGIC)
    .abi = {0x12345678u, SB_ABI_MAJOR, SB_ABI_MINOR, (uint32_t)sizeof(sb_plugin), 0},
#elif defined(BROKEN_MAJOR)
    .abi = {SB_MAGIC_PLUGIN, SB_ABI_MAJOR + 1, 0, (uint32_t)sizeof(sb_plugin), 0},
#elif defined(BROKEN_MINOR)
    .abi = {SB_MAGIC_PLUGIN, SB_ABI_MAJOR, SB_ABI_MINOR + 7, (uint32_t)sizeof(sb_plugin), 0},
#elif defined(BROKEN_SIZE)
    .abi = {SB_MAGIC_PLUGIN, SB_ABI_MAJOR, SB_ABI_MINOR, (uint32_t)sizeof(sb_plugin) + 128, 0},
#else
    SB_PLUGIN_INIT,
#endif
    .id = BROKEN_ID,
    .name = "Broken",
#if defined(BROKEN_ODD_VERSION)
    .version = "banana", /* loads; `plugins check` and `plugins pack` refuse it */
#else
    .version = "0.0.1",
#endif
#if defined(BROKEN_NOT_UTF8)
    .description = "caf\xe9 latin-1", /* not UTF-8: no JSON list could show it */
#endif
    .credentials = br_schema,
#if !defined(BROKEN_NO_CREATE)
    .create = br_create,
#endif
    .send = br_send,
    .destroy = br_destroy,
#if defined(BROKEN_CRASH_RECEIVE)
    .receive = br_receive,
#endif
#if defined(BROKEN_START_BY)
    .caps = {.start_by = 9},
#endif
#if defined(BROKEN_WS_HALF)
    .ws_open = br_ws_open, /* and no ws_closed: the connection's end would go unheard */
    .ws_message = br_ws_message,
#endif
}, {0}};

#if !defined(BROKEN_NO_ENTRY)
SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
#if defined(BROKEN_ENTRY_FAILS)
  snprintf(err, errlen, "this build needs a licence file");
  return SB_EINVAL;
#elif defined(BROKEN_ENTRY_UNENDED) /* fills the whole buffer and never ends the string */
  memset(err, 'x', errlen);
  return SB_EINVAL;
#elif defined(BROKEN_ENTRY_VERSION) /* as the template's entry answers a host it cannot run under */
  snprintf(err, errlen, "plugin entry_version was built for plugin ABI %d.%d", SB_ABI_MAJOR, SB_ABI_MINOR + 7);
  return SB_EVERSION;
#else
  *out = &br_desc.p;
  return SB_OK;
#endif
}
#else
SB_EXPORT int sb_plugin_entry_misspelt(void);
SB_EXPORT int sb_plugin_entry_misspelt(void) { return br_desc.p.abi.magic != 0; }
#endif
