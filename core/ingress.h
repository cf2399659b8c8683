/* ingress.h — webhook ingress: ANY /hooks/{channel}[/...] to that channel's
 * plugin receive(), and the plugin's answer back to the client.
 *
 * An unknown or disabled channel gets 404 without any plugin being touched.
 * A WebSocket handshake for a plugin with ws_open (ABI 1.3) goes there
 * instead of receive(): accepted, the connection is the plugin's until
 * ws_closed; refused, the client gets 403/404/429/413/400.
 * Requests a plugin has not answered when its channel is destroyed are
 * answered 503 by the host, so no client waits forever. Loop thread only.
 */
#ifndef SB_CORE_INGRESS_H
#define SB_CORE_INGRESS_H

#include "channel.h"
#include "http.h"

typedef struct ingress ingress;

/* Finds the running channel called name, or NULL. */
typedef sb_channel *(*ingress_lookup_fn)(void *ctx, const char *name);

/* Registers the /hooks routes on s. Returns 0 and *out (free with
 * ingress_free after the server is closed), or -ENOMEM. */
int ingress_new(http_server *s, ingress_lookup_fn lookup, void *ctx, ingress **out);

/* Optional: whether a channel that is not running now is about to be (it
 * is starting, being recreated by a reload, or the daemon is stopping):
 * its webhooks then get 503, which senders deliver again,
 * rather than the 404 of a channel that does not exist or is off. */
void ingress_on_pending(ingress *in, int (*pending)(void *ctx, const char *name));

/* Answers 503 to every request of ch the plugin has not answered; call it
 * once the plugin is destroyed (channel_env.destroyed). */
void ingress_channel_closing(ingress *in, sb_channel *ch);

/* Answers every pending request 503 and frees the ingress. */
void ingress_free(ingress *in);

/* Requests taken and answered so far, for metrics. */
typedef struct ingress_stats {
  uint64_t requests;
  uint64_t unknown_channel;
  uint64_t answered_by_host;
  uint64_t websockets; /* handshakes a plugin accepted */
} ingress_stats;
void ingress_get_stats(const ingress *in, ingress_stats *out);

#endif
