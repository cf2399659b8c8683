/* api.h — the REST API under /api/v1 and its event stream: registration, the host hooks it needs, token helpers.
 *
 * The API is a set of routes on the daemon's http_server. Every request
 * carries "Authorization: Bearer TOKEN"; tokens are created by
 * `switchboard tokens create` and stored as a BLAKE2b hash. Admin tokens may
 * do everything; agent tokens read and reply (writes to channels, users and
 * teams need admin). Errors are {"error": {code, message, field}}; lists are
 * {"items": [...], "next_cursor": "..."|null}. docs/api/openapi.json is the
 * full reference.
 *
 * Loop thread only, like http.h.
 */
#ifndef SB_CORE_API_H
#define SB_CORE_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "config.h"
#include "http.h"
#include "loader.h"
#include "store.h"

typedef struct api api;

/* What the API needs from the daemon. Pointers are borrowed and must
 * outlive the api. */
typedef struct api_host {
  uv_loop_t *loop;
  store *st;
  const loader *plugins;
  void *ctx;
  /* The running channel called name, or NULL. */
  sb_channel *(*lookup)(void *ctx, const char *name);
  /* Optional: {name: {plugin, reason}} of the channels that are on but
   * could not be created (their plugin refused them). */
  const json_t *(*not_started)(void *ctx);
  /* The config in force (it changes on reload). */
  const config *(*config)(void *ctx);
  /* Starts a channel connected through the API from its full channel object
   * (credentials in clear, borrowed). Returns 0 or a negative errno with a
   * sentence in err (nothing started). May be NULL: the API then refuses to
   * connect channels. */
  int (*channel_open)(void *ctx, const json_t *spec, char *err, size_t errlen);
  /* Stops the running channel called name, if any (may be NULL). */
  void (*channel_close)(void *ctx, const char *name);
  /* The API cannot go on (stored channels cannot be unsealed at start-up):
   * err is one sentence for the operator; the daemon should stop. */
  void (*fatal)(void *ctx, const char *err);
  struct webhooks *webhooks;  /* the outgoing webhooks' dispatcher (webhooks.h) */
  uint64_t sse_keepalive_ms;  /* comment every so often on idle streams; 0 = 15 s */
  size_t sse_max_pending;     /* a stream whose unsent backlog exceeds this is dropped; 0 = 1 MiB */
} api_host;

/* Adds every /api/v1 route to s. host is copied. Returns 0 and *out (free
 * with api_free after the server is closed), or a negative errno. */
int api_register(http_server *s, const api_host *host, api **out);

/* True when the running channel called name was connected through the API
 * (a config reload must leave it alone). */
int api_channel_owned(const api *a, const char *name);

/* Called once a config reload is applied: a channel the new config names
 * is the config's from now on, and one connected through the API that the
 * old config had taken over (a config channel of the same name) runs again
 * from what the API stored, as after a restart. Asynchronous. */
void api_channels_reloaded(api *a);

/* True when that channel is also on (its webhooks are expected). */
int api_channel_on(const api *a, const char *name);

/* Frees the API: event streams still open are unsubscribed (call after
 * http_close finished, before store_close). NULL-safe. */
void api_free(api *a);

/* Token text: "sbt_" + 64 hex digits of fresh randomness. */
#define API_TOKEN_LEN 68

/* Writes prefix and 64 hex digits of fresh randomness (32 bytes) into out,
 * NUL-terminated (len: at least strlen(prefix) + 65). Returns 0, -EINVAL
 * when out is too small, or -EIO when libsodium cannot start. */
int api_random_secret(const char *prefix, char *out, size_t len);

/* Writes a new random token (NUL-terminated) into out. Returns 0 or -EIO
 * when libsodium cannot start. */
int api_token_generate(char out[API_TOKEN_LEN + 1]);

/* The hex BLAKE2b-256 hash under which a token is stored. */
void api_token_hash(const char *token, char hex[65]);

/* Seals a channel's credentials object under the 64-hex-digit key: a new
 * string "v1:" + base64(nonce || secretbox) the caller frees. Returns 0,
 * -EINVAL for a bad key, or -ENOMEM. */
int api_seal(const char *key_hex, const json_t *credentials, char **out);

/* Opens what api_seal made. Returns 0 and a new object in *out, -EINVAL for
 * a bad key, -EBADMSG when the key is not the one it was sealed with or the
 * text is damaged. */
int api_unseal(const char *key_hex, const char *sealed, json_t **out);

/* Why api_unseal failed with rc, for an operator. */
const char *api_unseal_problem(int rc);

#endif
