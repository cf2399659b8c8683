/* channel_impl.h — the inside of sb_channel, shared only by channel.c (the
 * lifecycle) and hostapi.c (the host API table that plugins call). */
#ifndef SB_CORE_CHANNEL_IMPL_H
#define SB_CORE_CHANNEL_IMPL_H

#include "channel.h"

/* A doubly linked list of resources a channel owns, so close can cancel them. */
typedef struct channel_link {
  struct channel_link *prev, *next;
} channel_link;

struct sb_timer {
  channel_link link;
  uv_timer_t handle;
  sb_channel *ch;
  sb_timer_fn fn;
  void *arg;
  int repeating;
  int stopped;
};

struct sb_watch {
  channel_link link;
  uv_poll_t handle;
  sb_channel *ch;
  sb_watch_fn fn;
  void *arg;
  int stopped;
};

typedef struct channel_kv {
  struct channel_kv *next;
  char *key;
  char *value;
  size_t len;
} channel_kv;

struct sb_channel {
  const channel_env *env;
  const loader_plugin *plugin;
  json_t *spec_json;       /* own deep copy of the channel's config object */
  config_channel spec;     /* views into spec_json */
  sb_config *config;
  void *instance;
  uint32_t state;
  char reason[256];
  int closing;
  int destroyed;
  unsigned pending;        /* handles closing + work queued: freed when 0 */
  unsigned completions_pending; /* queued work and inbound commits whose done has
                                   not run: destroy() waits for them */
  void (*closed_cb)(void *arg);
  void *closed_arg;
  uv_timer_t reconnect;
  uint64_t backoff_ms;
  channel_link timers;
  channel_link watches;
  channel_link calls;
  channel_kv *kv;
  sb_ws websockets;        /* list head of the WebSockets the plugin holds */
  channel_counters counters;
};

void channel_link_init(channel_link *head);
void channel_link_add(channel_link *head, channel_link *node);
void channel_link_remove(channel_link *node);

/* Accounting of things that must finish before the channel is freed. */
void channel_hold(sb_channel *ch);
void channel_release(sb_channel *ch);

/* Cancels every timer, watch and HTTP call (hostapi.c). */
void hostapi_cancel_all(sb_channel *ch);

/* sb_host's history, availability and send_release (hostapi_store.c, ABI 1.3). */
int hostapi_history(sb_channel *ch, const sb_history_request *request, sb_history_done_fn done, void *arg);
int hostapi_availability(sb_channel *ch, sb_availability_done_fn done, void *arg);
int hostapi_send_release(sb_channel *ch, uint32_t kind, const char *id);

/* Accounting of completions the plugin still expects (work, inbound
 * commits): destroy() waits until the last one has run. */
void channel_completion_begin(sb_channel *ch);
void channel_completion_end(sb_channel *ch);

/* Records a state change, logs it, schedules a reconnect after transient
 * trouble (channel.c). */
void channel_set_state(sb_channel *ch, uint32_t state, const char *reason);

#endif
