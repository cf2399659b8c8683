/* router.h — routing policy: channel rules, the inbound/reply structs, and the
 * pure decisions (thread, assignee, ticket name, required properties,
 * auto-reply) that the store applies inside its batch transaction.
 *
 * The path of one inbound message:
 *   plugin emit_inbound -> host glue fills router_inbound -> router_submit_inbound
 *   -> store writer thread: dedup, contact, thread, ticket, assignment, auto-reply
 *      (store_sqlite_route.c, calling the router_decide_* functions below)
 *   -> COMMIT -> completion on the loop -> events published.
 * No SQL here; no I/O; every function is safe on any thread.
 */
#ifndef SB_CORE_ROUTER_H
#define SB_CORE_ROUTER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

enum router_thread_policy {
  ROUTER_THREAD_PER_CONTACT = 0, /* continue the contact's open thread on the channel */
  ROUTER_THREAD_EXTERNAL = 1,    /* the plugin's external thread id */
  ROUTER_THREAD_ALWAYS_NEW = 2
};
enum router_closed_policy { ROUTER_CLOSED_REOPEN = 0, ROUTER_CLOSED_NEW_THREAD = 1 };
enum router_routing_mode {
  ROUTER_ROUTING_NONE = 0,
  ROUTER_ROUTING_USERS_AND_TEAMS = 1,
  ROUTER_ROUTING_CONTACT_OWNER = 2
};

/* The inbox of a channel that names none. */
#define ROUTER_DEFAULT_INBOX "Support"

/* One channel's routing rules and defaults. Strings and arrays are owned by
 * the struct (router_channel_free). */
typedef struct router_channel {
  char *name;
  char *inbox;
  int thread_policy;   /* enum router_thread_policy */
  int closed_thread;   /* enum router_closed_policy */
  int creates_tickets; /* default 1 */
  /* A reply may start a conversation here with a contact known by email
   * but without an identity on the channel (the plugin's
   * sb_capabilities.start_by, set by the host, not by config). */
  int start_by_email;
  /* The plugin only takes messages in (SB_CAP_RECEIVE_ONLY, set by the
   * host): replies go through reply_channel, or the channel a reply names. */
  int receive_only;
  char *reply_channel; /* config: where replies to this channel's conversations go by default; NULL = here */
  struct {
    int mode; /* enum router_routing_mode */
    char **users;
    size_t n_users;
    char **teams;
    size_t n_teams;
    int available_only; /* default 1 */
    char **skills;
    size_t n_skills;
  } routing;
  struct {
    char *pipeline;      /* NULL = "Support" */
    char *status;        /* NULL = the pipeline's first status */
    char *priority;      /* NULL = "medium" */
    char *owner;         /* user name; set as ticket owner, no routing */
    char *name_template; /* NULL = "{contact} via {channel}" */
  } ticket;
  struct {
    char *greeting;      /* first message of a new contact */
    char *instant_reply; /* first message of a new conversation */
    char *away;          /* outside hours */
    int has_hours;
    int start_min, end_min; /* minutes after midnight, local */
    unsigned days_mask;     /* bit 0 = Sunday .. bit 6 = Saturday */
    int utc_offset_min;
  } auto_replies;
} router_channel;

/* Fills *out with the defaults (per_contact, reopen, tickets on, routing none,
 * available_only on). name is copied; may be NULL. Returns 0 or -ENOMEM. */
int router_channel_init(router_channel *out, const char *name);

/* Frees what the struct owns and zeroes it; NULL-safe. */
void router_channel_free(router_channel *ch);

/* Deep-copies src into *dst (which is overwritten). Returns 0 or -ENOMEM. */
int router_channel_copy(router_channel *dst, const router_channel *src);

/* Parses a config channel object into *out (defaults first, then its keys:
 * name, inbox, thread_policy, closed_thread, creates_tickets, reply_channel, routing,
 * ticket, auto_replies; the host's keys plugin, credentials, status, enabled are
 * accepted and ignored). Unknown keys or wrong types: returns -EINVAL with a
 * sentence naming the channel and key in err; *out is then freed. */
int router_channel_from_json(const json_t *channel_obj, router_channel *out, char *err,
                             size_t errlen);
/* The same, also naming the key (as "routing.users") in key when one is at
 * fault ("" otherwise). */
int router_channel_from_json_key(const json_t *channel_obj, router_channel *out, char *err, size_t errlen,
                                 char *key, size_t keylen);

/* What the channel's plugin implies for rules spec leaves open: a plugin
 * that supplies thread ids (email) threads by them unless the operator
 * chose a thread_policy; start_by_email and receive_only from the plugin's
 * capabilities. */
void router_channel_plugin_defaults(router_channel *ch, const json_t *spec, int plugin_thread_ids,
                                    int plugin_starts_by_email, int plugin_receive_only);

/* JSON form of the rules (as read back by the API). New reference or NULL. */
json_t *router_channel_to_json(const router_channel *ch);

/* Validates the top-level config keys the store seeds from: `pipelines`
 * [{name, statuses:[{name, closed, required_properties}]}], `users`
 * [{name, email, seat, available, skills, capacity, teams, avatar_url}] and `teams`
 * [{name, users}]. Other top-level keys are ignored. Returns 0 or -EINVAL with
 * a sentence naming the entry and key. */
int router_seed_validate(const json_t *config, char *err, size_t errlen);

/* Checks a channel's ticket defaults against the pipelines new tickets can
 * start in: the config's `pipelines` (config, the whole config object, may
 * be NULL) and the built-in Support pipeline. ticket.pipeline must be one
 * of them and ticket.status one of its statuses; otherwise -EINVAL with a
 * sentence naming the channel and key. (ticket.owner is a user, and users
 * may also come from the API: an unknown one routes the ticket as usual.) */
int router_channel_check_ticket(const router_channel *ch, const json_t *config, char *err, size_t errlen);

/* An absolute http:// or https:// URL with a host, no whitespace, at most
 * max bytes. Returns 1 when valid. */
int router_http_url_valid(const char *url, size_t max);

/* A user's or contact's avatar_url: router_http_url_valid within
 * ROUTER_AVATAR_URL_MAX bytes. ROUTER_AVATAR_URL_RULE says so in words, for
 * error sentences. */
#define ROUTER_AVATAR_URL_MAX 2048
#define ROUTER_AVATAR_URL_RULE "must be an absolute http or https URL such as https://example.com/ana.png"
int router_avatar_url_valid(const char *url);

/* "none" is not a user's name: the conversations list's ?assignee=none
 * means the unassigned, and could not name a user so called. Config and
 * POST /api/v1/users refuse it; ROUTER_USER_NAME_RULE says so in words. */
#define ROUTER_USER_NAME_RULE "must be a name other than \"none\" (?assignee=none means unassigned)"
int router_user_name_valid(const char *name);

/* ---- inbound message (the host glue converts the plugin ABI struct) ---- */

#define ROUTER_IN_AUTOMATIC 0x1u    /* sent by a machine (auto-responder) */
#define ROUTER_IN_ECHO 0x2u         /* our account sent it from elsewhere: stored outbound */
#define ROUTER_IN_BOUNCE 0x4u       /* delivery failure notice */
#define ROUTER_IN_NO_AUTOREPLY 0x8u /* sender asked for no auto-replies */

/* An attachment's metadata and, on inbound messages, optionally its content:
 * data (NULL or data_len bytes) is stored with the message when it is within
 * the store's attachment limit (store_set_attachment_limit); over it, only
 * the metadata is kept, with an "error" saying why. Replies ignore data. */
typedef struct router_attachment {
  const char *url, *mime_type, *filename, *content_id;
  int64_t size;
  const char *data;
  size_t data_len;
} router_attachment;

typedef struct router_inbound {
  const char *channel;     /* required: a channel put with store_channel_put */
  const char *external_id; /* required: dedup key within the channel */
  const char *external_thread_id;
  const char *reply_to_external_id;
  struct {
    const char *kind; /* email | psid | phone | visitor | custom (required) */
    const char *id;   /* required */
    const char *name, *email, *phone, *avatar_url;
  } sender;
  const char *text, *html, *subject;
  const router_attachment *attachments;
  size_t n_attachments;
  int64_t timestamp_ms; /* 0 = now */
  uint32_t flags;       /* ROUTER_IN_* */
  const char *metadata_json; /* a JSON object's text kept with the message (the
                                plugin's facts: a postback payload, why media
                                was not downloaded), or NULL */
} router_inbound;

/* Fires on the loop after the batch holding the message committed (status 0)
 * or failed (negative errno, err a sentence). duplicate=1: the message was
 * seen before; message_id is the original and nothing was stored. */
typedef void (*router_inbound_cb)(void *arg, int status, int64_t message_id, int duplicate,
                                  const char *err);

/* Validates and COPIES *in (nothing of it is referenced after return) and
 * queues it for the store's next group commit. Returns 0 (cb will fire
 * exactly once) or a negative errno with a sentence in err (cb never fires). */
int router_submit_inbound(store *st, const router_inbound *in, router_inbound_cb cb, void *arg,
                          char *err, size_t errlen);

/* ---- agent reply ---- */

typedef struct router_reply {
  int64_t thread_id;           /* required */
  int64_t user_id;             /* author (0 = system) */
  const char *text, *html;     /* at least one */
  const router_attachment *attachments;
  size_t n_attachments;
  int64_t reply_to_message_id; /* 0 = the thread's latest inbound message */
  const char *channel;         /* NULL = the thread's channel; else another channel
                                  where the contact has an identity */
  const char *ticket_status;   /* optional status change, same transaction */
  const json_t *ticket_properties; /* optional object merged before the check */
  const char *template_json;   /* optional message template: a JSON object
                                  {"name", "language"?, "parameters"?} */
  const char *canned;          /* optional canned response's name: its text, filled in,
                                  is the reply's text (not with text) */
} router_reply;

/* Fires on the loop after commit; message_id is the queued outbound message. */
typedef void (*router_reply_cb)(void *arg, int status, int64_t message_id, const char *err);

/* Copies *r and queues it: message + outbox row (+ ticket status) in one
 * transaction. A status whose required properties are missing stores nothing
 * and completes with -EINVAL and "ticket status X requires properties: a, b".
 * Returns 0 (cb will fire) or negative errno with err filled. */
int router_submit_reply(store *st, const router_reply *r, router_reply_cb cb, void *arg,
                        char *err, size_t errlen);

/* ---- pure decisions, applied by the store ---- */

enum router_thread_action { ROUTER_USE_THREAD, ROUTER_REOPEN_THREAD, ROUTER_NEW_THREAD };

/* Given the policy and the thread found by it (found=0: none; closed=1 if the
 * found thread is closed), says what to do with the message. */
int router_decide_thread(const router_channel *ch, int found, int closed);

typedef struct router_candidate {
  int64_t user_id;
  int seat, available;
  const char *skills_json; /* JSON array of strings, may be NULL */
  int64_t capacity;        /* 0 = unlimited */
  int64_t open_load;       /* open tickets owned */
  int64_t last_assigned;   /* assignment sequence number; lower = longer ago */
} router_candidate;

/* Chooses among candidates: seat required; available unless !available_only;
 * every required skill held; open_load < capacity; then least open_load, then
 * least recently assigned, then lowest id. Returns the index or -1. */
int router_pick_assignee(const router_candidate *c, size_t n, int available_only,
                         char *const *skills, size_t n_skills);

/* Expands {contact}, {channel}, {subject} in tmpl (NULL = default) into out. */
void router_ticket_name(const char *tmpl, const char *contact, const char *channel,
                        const char *subject, char *out, size_t outlen);

/* required_json: the status's JSON array of property names; props: the
 * ticket's properties object (may be NULL). Writes the missing names,
 * comma-separated, to missing; returns how many are missing. A property is
 * missing when absent, null or "". */
int router_missing_properties(const char *required_json, const json_t *props, char *missing,
                              size_t len);

enum router_autoreply { ROUTER_AUTOREPLY_NONE, ROUTER_AUTOREPLY_GREETING,
                        ROUTER_AUTOREPLY_INSTANT, ROUTER_AUTOREPLY_AWAY };

/* Which auto-reply answers this inbound message, if any: never for automatic,
 * echo, bounce or no_autoreply messages; away (outside hours) first, then the
 * greeting for a new contact, then the instant reply for a new thread. */
int router_decide_autoreply(const router_channel *ch, uint32_t flags, int new_contact,
                            int new_thread, int64_t timestamp_ms);

/* The text of that auto-reply (borrowed from ch) or NULL. */
const char *router_autoreply_text(const router_channel *ch, int which);

#endif
