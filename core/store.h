/* store.h — the durable store: one backend-neutral, asynchronous interface.
 *
 * The SQLite backend (store_sqlite*.c) is the embedded default; a PostgreSQL
 * backend will implement the same functions. No SQL outside the backends.
 *
 * Threads: every function here is called on the loop thread. Work runs on the
 * store's writer thread and every completion fires on the loop thread, after
 * the transaction holding the change has committed (durably: WAL with
 * synchronous=FULL). Requests queued while a batch runs are group-committed in
 * the next batch: one transaction, one fsync, many requests, in submission
 * order. A failing request does not fail its batch: the batch is then re-run
 * with a savepoint per request, so the failed one leaves no trace. Reads run
 * on the same thread, so they see every write submitted before them.
 *
 * Startup order for the host: store_open; store_seed (config pipelines, users,
 * teams); store_channel_put for every configured channel (rules live in
 * memory, so inbound for a channel not put since open is refused); then
 * outbox_start and the plugins. Shutdown: outbox_stop, plugins, store_close.
 *
 * Results: JSON results are borrowed for the duration of the callback
 * (json_incref to keep). Submitting functions return 0 when the callback will
 * fire exactly once, or a negative errno (-EINVAL bad argument, -ESHUTDOWN
 * store closing, -ENOMEM) when it will not.
 */
#ifndef SB_CORE_STORE_H
#define SB_CORE_STORE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "events.h"
#include "metrics.h"
#include "router.h"

typedef struct store store;

/* Schema version this binary writes; a database with a higher one is refused. */
#define STORE_SCHEMA_VERSION 27

typedef void (*store_json_cb)(void *arg, int status, json_t *result, const char *err);

/* Opens the store named by url ("sqlite:PATH"; the file is created), runs the
 * schema migrations, resets outbox rows left in flight by a crash to pending
 * (keeping their idempotency keys) and starts the writer thread. Errors:
 * -EINVAL (bad URL), -EPROTO (database newer than this binary), -EIO; err gets
 * a sentence naming the path. *out is owned by the caller: store_close(). */
int store_open(uv_loop_t *loop, const char *url, store **out, char *err, size_t errlen);

/* Stops accepting requests, lets the writer drain and commit everything queued,
 * joins it, fires the remaining completions, then frees the store once the
 * loop has closed its handle (run the loop after this). NULL-safe. */
void store_close(store *st);

/* Claims the database of a store URL for this process's daemon: a second
 * daemon on the same database (two outbox workers, two writers with their
 * own caches and id sequences) is refused with a sentence, before it
 * opens anything. The claim is an exclusive flock on "PATH.lock" (never on
 * the database file: SQLite's own POSIX locks must not be touched), held
 * until store_release. The CLI's short commands (tokens create) do not
 * claim and work beside a running daemon. Returns 0 with *claim set, or
 * -EBUSY / -EIO with err filled. */
int store_claim(const char *url, int *claim, char *err, size_t errlen);
void store_release(int claim);

/* The bus on which committed events are published (owned by the store). */
events_bus *store_events(store *st);

typedef struct store_stats {
  uint64_t transactions; /* committed batches */
  uint64_t requests;     /* requests run */
  uint64_t inbound;      /* inbound messages routed (duplicates included) */
  uint64_t checkpoints;  /* WAL checkpoints run off the writer's commit path */
  uint64_t wal_truncations; /* of those, run by the writer to keep the WAL bounded */
  uint64_t wal_syncs;     /* fdatasyncs of the WAL that made commits durable */
  metrics_histogram wal_sync_latency; /* how long each of those took */
} store_stats;

/* Snapshot of the counters; thread-safe. */
void store_get_stats(store *st, store_stats *out);

/* ---- the message path (router.c calls these after validating) ---- */

/* Copies *in and queues it for routing. See router_submit_inbound. */
int store_submit_inbound(store *st, const router_inbound *in, router_inbound_cb cb, void *arg);

/* Copies *r and queues the reply. See router_submit_reply. */
int store_submit_reply(store *st, const router_reply *r, router_reply_cb cb, void *arg);

/* ---- attachment content (store_sqlite_attach.c) ---- */

/* The default largest attachment whose content is stored: 25 MiB. */
#define STORE_ATTACHMENT_LIMIT_DEFAULT ((int64_t)25 * 1024 * 1024)
/* SQLite's default limit on one value; a larger limit is refused. */
#define STORE_ATTACHMENT_LIMIT_MAX ((int64_t)1000 * 1000 * 1000)

/* Sets the largest attachment, in bytes, whose content an inbound message
 * keeps (0: none; default STORE_ATTACHMENT_LIMIT_DEFAULT). A larger one is
 * kept as metadata with an "error" member saying why, and the message is
 * stored as usual. Applies to messages submitted afterwards. Returns 0, or
 * -EINVAL for a value outside 0..STORE_ATTACHMENT_LIMIT_MAX. */
int store_set_attachment_limit(store *st, int64_t max_bytes);

/* One stored attachment's content and what was said about it. Borrowed for
 * the duration of the callback. */
typedef struct store_attachment {
  int64_t id, message_id;
  const char *mime_type, *filename; /* may be NULL */
  const char *data;
  size_t len;
} store_attachment;

typedef void (*store_attachment_cb)(void *arg, int status, const store_attachment *a, const char *err);

/* Reads attachment id's content (status -ENOENT, a NULL a and err a
 * sentence when there is none). The content is read into memory on the
 * store's thread, so this is for attachments within the store's limit. */
int store_attachment_get(store *st, int64_t id, store_attachment_cb cb, void *arg);

/* How long an uploaded file waits for a reply to send it: older ones that
 * no reply named are deleted (at the next upload and at start-up; their
 * ids are never given again). */
#define STORE_UPLOAD_TTL_MS ((int64_t)24 * 3600 * 1000)

/* Stores a file an agent uploads to send with a reply (copied; mime_type
 * and filename may be NULL). It belongs to no message until a reply names
 * it by its link, /api/v1/attachments/{id}; that reply's message then owns
 * it (it goes when the message goes). cb gets {id, url, mime_type,
 * filename, size, created_at}; a file over the limit
 * (store_set_attachment_limit) is -EFBIG. */
int store_attachment_put(store *st, const char *mime_type, const char *filename, const void *data, size_t len,
                         store_json_cb cb, void *arg);

/* The id in a link to stored content, /api/v1/attachments/{id}, or 0 when
 * url is not one. */
int64_t store_attachment_link_id(const char *url);

/* ---- configuration ---- */

/* Registers or replaces a channel's rules (copied) and upserts its record.
 * Result: {id, name}. Inbound for a channel not put is refused. */
int store_channel_put(store *st, const router_channel *ch, store_json_cb cb, void *arg);

/* Channel records: [{id, name, inbox, status, rules}] / status "on"|"off". */
int store_channels_list(store *st, store_json_cb cb, void *arg);
int store_channel_set_status(store *st, const char *name, const char *status, store_json_cb cb,
                             void *arg);

/* Forgets a channel: its rules (further inbound is refused) and its record.
 * Its conversations, messages and key/value state stay. -ENOENT if unknown. */
int store_channel_delete(store *st, const char *name, store_json_cb cb, void *arg);

/* Upserts pipelines, users and teams by name from a config object (validate
 * first with router_seed_validate). Idempotent. Result: {pipelines, users, teams}
 * counts. The default pipeline "Support" always exists. */
int store_seed(store *st, const json_t *config, store_json_cb cb, void *arg);

/* Pipelines with ordered statuses: [{id, name, statuses:[{name, closed,
 * required_properties}]}]. */
int store_pipelines_list(store *st, store_json_cb cb, void *arg);

/* ---- users and teams ---- */

/* [{id, name, email, avatar_url, seat, available, skills, capacity,
 * open_tickets, teams}] */
int store_users_list(store *st, store_json_cb cb, void *arg);
/* What a user or team write needs of its name, checked in its own
 * transaction (a check before it could race a delete or another create):
 * ANY creates or updates, NEW refuses a taken name (-EEXIST), EXISTING an
 * unknown one (-ENOENT). */
enum { STORE_UPSERT_ANY, STORE_UPSERT_NEW, STORE_UPSERT_EXISTING };
/* Creates or patches the user named user.name (keys as in users_list; an
 * absent key keeps the stored value, email or avatar_url null removes it; validate
 * avatar_url first with router_avatar_url_valid). A user becoming available,
 * getting a seat or more capacity takes queued tickets in the same
 * transaction. Result: the user. */
int store_user_upsert(store *st, const json_t *user, int must, store_json_cb cb, void *arg);
/* Deletes the user: leaves their teams; their open tickets lose the owner and
 * are routed again by their channel's rules (or queued); their API tokens are
 * deleted (revoked), so nobody acts in a deleted user's name. Their replies
 * stay, without an author. -ENOENT if unknown. Result: {name, requeued: n,
 * tokens_revoked: n}. */
int store_user_delete(store *st, const char *name, store_json_cb cb, void *arg);
/* [{id, name, users:[names]}] */
int store_teams_list(store *st, store_json_cb cb, void *arg);
/* Creates or replaces team.name's member list (team.users); must as for
 * users. Result: the team. */
int store_team_upsert(store *st, const json_t *team, int must, store_json_cb cb, void *arg);
/* Deletes the team (its users stay). -ENOENT if unknown. Result: {name}. */
int store_team_delete(store *st, const char *name, store_json_cb cb, void *arg);

/* ---- contacts ---- */

/* query: {q?, cursor?, limit?} -> {items:[{id, name, email, phone, avatar_url,
 * owner, identities:[{channel, kind, value}]}], next_cursor} */
int store_contacts_list(store *st, const json_t *query, store_json_cb cb, void *arg);
/* patch: {name?, email?, phone?, avatar_url?, owner? (user name or null)} */
int store_contact_patch(store *st, int64_t id, const json_t *patch, store_json_cb cb, void *arg);
/* Moves from_id's identities and threads to into_id, deletes from_id, emits
 * contact.merged. Result: the merged contact. */
int store_contact_merge(store *st, int64_t into_id, int64_t from_id, store_json_cb cb, void *arg);

/* One contact as the contacts list has it (identities included); -ENOENT. */
int store_contact_get(store *st, int64_t id, store_json_cb cb, void *arg);

/* Erases a contact and everything of theirs: their identities, their
 * conversations with all messages, attachments, tickets, notes, labels and
 * queued replies, and their rows in the search index (a person's right to be
 * forgotten). Result {deleted: id, conversations: n}; a contact.deleted
 * event. -ENOENT for no such contact. */
int store_contact_delete(store *st, int64_t id, store_json_cb cb, void *arg);

/* Everything the help desk holds of a contact, for a person's right of
 * access: {contact (with identities), conversations: [each with its
 * labels, messages and notes, oldest first], exported_at}. Attachments are listed
 * with their download links. Read beside the writer. -ENOENT. */
int store_contact_export(store *st, int64_t id, store_json_cb cb, void *arg);

/* ---- conversations and tickets ---- */

/* filter: {channel?, inbox?, status? ("open"|"closed"), assignee? (user name or
 * "none"), q? (keyword in message text or subject, contact name, email or phone),
 * failed? (true: only conversations with a reply whose status is failed),
 * label? (a label's name, any case: the conversations carrying it; none for a
 * name that is no label's), cursor?, limit? (default 50)} ->
 * {items:[{id, channel, inbox, contact{...}, status, assignee, ticket{id,
 * status, priority, owner}, labels:[names by name], last_message_at}],
 * next_cursor} newest first.
 * -EINVAL when assignee is neither "none" nor a user's name. */
int store_conversations_list(store *st, const json_t *filter, store_json_cb cb, void *arg);
/* The thread as in the list plus messages:[{id, direction, channel, text, html,
 * attachments, external_id, reply_to, status, error, automatic, created_at}].
 * attachments: [{url?, mime_type?, filename?, content_id?, size, id?, error?}]
 * where id names stored content (store_attachment_get) and error says why
 * content that was given is not stored. */
int store_conversation_get(store *st, int64_t thread_id, store_json_cb cb, void *arg);

/* Changes a conversation: {status?: "open"|"closed", assignee?: user name or
 * null, labels?: [label names]}. One with a ticket follows it: its assignee
 * becomes the ticket's owner (ticket.assigned), and a status is -EEXIST (the
 * ticket's pipeline decides it). One without is changed directly (thread.updated {thread_id,
 * status} or {thread_id, user_id}); a closed one gets a new conversation or
 * is reopened by the next inbound message as the channel's thread policy
 * says. labels replaces the conversation's labels, as
 * store_conversation_labels changes them. Result: the conversation as the
 * list has it. -ENOENT, -EINVAL (no such user, naming assignee; no such
 * label, ending "(labels)"). All or nothing. */
int store_conversation_patch(store *st, int64_t thread_id, const json_t *patch, store_json_cb cb, void *arg);

/* ---- reports (store_sqlite_report.c) ---- */

/* What operators measure over [from, to) (milliseconds since the epoch):
 * query {from, to, channel?, inbox?, group_by? ("channel" | "inbox" |
 * "agent")}. Conversations are counted by their channel and inbox, and
 * messages by their conversation's. Result: {from, to, channel, inbox,
 * group_by, conversations: {opened, closed, open}, messages: {inbound,
 * outbound, automatic, failed}, first_response: {answered, unanswered,
 * median_seconds, p90_seconds}, resolution: {count, median_seconds,
 * p90_seconds}} with, under group_by, groups: [{key, the same figures}] by
 * key ("none": no inbox, or nobody). Times are null when there are none.
 * Read beside the writer (never in its group commit). -EINVAL for a bad
 * range or group_by. */
int store_report(store *st, const json_t *query, store_json_cb cb, void *arg);

/* ---- labels (store_sqlite_label.c) ---- */

/* Labels agents put on conversations. A name is unique and looked up
 * without regard to case in any script ("Billing" and "billing" are one
 * label); it is kept as first written. The API validates names and colours
 * before these are called. */

/* Every label by name: {items: [{name, color, description, created_at,
 * conversations (how many carry it)}], next_cursor: null}. */
int store_labels_list(store *st, store_json_cb cb, void *arg);
/* Creates label {name, color?, description?} (copied). Result: the label;
 * -EEXIST when the name is taken. A label.updated event. */
int store_label_create(store *st, const json_t *label, store_json_cb cb, void *arg);
/* Changes label name: patch {name?, color?, description?} (null removes
 * color and description). A new name keeps the label on its conversations;
 * -EEXIST when it is another label's. Result: the label; -ENOENT. A
 * label.updated event (with previous_name when renamed). */
int store_label_patch(store *st, const char *name, const json_t *patch, store_json_cb cb, void *arg);
/* Deletes label name and takes it off every conversation. Result
 * {deleted: name, conversations: n}; -ENOENT. A label.deleted event. */
int store_label_delete(store *st, const char *name, store_json_cb cb, void *arg);
/* Adds and removes labels (JSON arrays of names; NULL: none) on one
 * conversation, leaving its other labels as they are, so that agents
 * changing different labels at once do not undo each other's change.
 * Publishes thread.labels {thread_id, labels} when its set changed.
 * Result: the conversation as the list has it. -ENOENT; -EINVAL for a name
 * that is no label's, or one both added and removed (the sentence ends
 * "(labels)"). */
int store_conversation_labels(store *st, int64_t thread_id, const json_t *add, const json_t *remove,
                              store_json_cb cb, void *arg);

/* ---- canned responses (store_sqlite_canned.c) ---- */

/* Canned responses whose name or text holds q (NULL: all), by name:
 * {items: [{name, text, updated_by, updated_at}], next_cursor: null}. */
int store_canned_list(store *st, const char *q, store_json_cb cb, void *arg);

/* Creates (create 1: -EEXIST when the name is taken) or replaces the text
 * of (create 0: -ENOENT when there is none) canned response name, written
 * by user_id (0: a token of no user). Result: the response. */
int store_canned_put(store *st, const char *name, const char *text, int64_t user_id, int create, store_json_cb cb,
                     void *arg);

/* Deletes canned response name: {deleted: name}; -ENOENT when there is none. */
int store_canned_delete(store *st, const char *name, store_json_cb cb, void *arg);

/* Adds an agent's internal note to a conversation: seen by agents (the
 * conversation's notes, a note.created event), never by the customer or
 * any plugin. user_id 0: a token of no user. Result: {id, thread_id, user,
 * text, created_at}. -ENOENT for no such conversation. */
int store_note_add(store *st, int64_t thread_id, int64_t user_id, const char *text, store_json_cb cb, void *arg);
/* {id, thread_id, pipeline, status, closed, priority, owner, name, properties} */
int store_ticket_get(store *st, int64_t id, store_json_cb cb, void *arg);
/* patch: {status?, owner? (name|null), priority?, properties? (merged)}. A
 * status needing missing properties -> -EINVAL "... requires properties: a, b"
 * and nothing changes. Closing frees the owner's capacity for queued tickets.
 * A "skills" property (array of strings) adds required skills whenever the
 * ticket is routed from the queue. */
int store_ticket_patch(store *st, int64_t id, const json_t *patch, store_json_cb cb, void *arg);

/* ---- events ---- */

/* Events with id > after_id, oldest first, at most limit (<=0: 1000),
 * optionally only of channel and/or inbox (NULL = any): [{id, type, channel,
 * inbox, data}]. */
int store_events_after(store *st, int64_t after_id, const char *channel, const char *inbox,
                       int limit, store_json_cb cb, void *arg);

/* The same with more to say: an upper bound, and whether message events
 * are wanted (a reader of other events then walks no messages). */
typedef struct store_events_query {
  int64_t after;               /* events with a greater id */
  int64_t up_to;               /* and at most this id (0: no bound) */
  const char *channel, *inbox; /* only these (NULL: any) */
  int no_messages;             /* leave message.in and message.out out */
  int limit;                   /* at most (<= 0: 1000) */
  int beside;                  /* read on the reader, beside the writer: needs up_to at or below
                                * events_newest (committed is not yet durable) */
  int as_text;                 /* each event as {id, type, json}: json is its whole JSON text
                                * ({id, type, channel, inbox, data}), its data not parsed */
} store_events_query;
int store_events_read(store *st, const store_events_query *q, store_json_cb cb, void *arg);

/* ---- outgoing webhooks (store_sqlite_webhooks.c; core/webhooks.c sends) ---- */

/* Every webhook, by id: [{id, url, events (array of patterns), channel,
 * inbox, description, secret (sealed text, opaque to the store), active,
 * cursor, failures, last_status, last_error, last_attempt_at,
 * last_success_at, created_at}]. */
int store_webhooks_list(store *st, store_json_cb cb, void *arg);

/* One webhook as listed; -ENOENT. */
int store_webhook_get(store *st, int64_t id, store_json_cb cb, void *arg);

/* Creates (id 0) or changes webhook id from fields: {url, events, channel,
 * inbox, description, secret, active, cursor} (absent keys keep the stored
 * value; null clears channel, inbox or description). A new one needs url,
 * events, secret and cursor. Result: the webhook as listed; -ENOENT. */
int store_webhook_put(store *st, int64_t id, const json_t *fields, store_json_cb cb, void *arg);

/* Deletes it: {deleted: id}; -ENOENT. */
int store_webhook_delete(store *st, int64_t id, store_json_cb cb, void *arg);

/* Records a delivery attempt: state {cursor?, failures, last_status
 * (null: no answer), last_error, last_attempt_at, last_success_at?}.
 * Result {id}; -ENOENT when it was deleted meanwhile. */
int store_webhook_progress(store *st, int64_t id, const json_t *state, store_json_cb cb, void *arg);

/* ---- API bearer tokens (store_sqlite_api.c) ---- */

/* Stores a token by the hex hash of its secret (the secret itself is never
 * stored). role is "admin" or "agent"; user (may be NULL) names the user the
 * token belongs to, who authors the replies made with it. Result: {id, name,
 * role, user}. A name or hash already taken -> -EEXIST; a user that does not
 * exist -> -EINVAL ("user \"x\" does not exist; ..."). */
int store_token_create(store *st, const char *name, const char *role, const char *user,
                       const char *hash_hex, store_json_cb cb, void *arg);
/* The token with this hash: {id, name, role, user_id (0 = none), user (name
 * or null)}, or -ENOENT. */
int store_token_find(store *st, const char *hash_hex, store_json_cb cb, void *arg);
/* [{id, name, role, created_at, user}] (never the hash). */
int store_tokens_list(store *st, store_json_cb cb, void *arg);

/* ---- audit log (store_sqlite_read.c) ---- */

/* Records a change: who made it (the token's name and role, its user;
 * all NULL for the CLI), the method and path (or the command), the answer's
 * status and detail (JSON text or NULL, never a secret). Result: {id}. */
int store_audit_append(store *st, const char *token, const char *role, const char *user, const char *method,
                       const char *path, int status, const char *detail_json, store_json_cb cb, void *arg);
/* The log, newest first: query {cursor?, limit?} as for contacts. Result:
 * {items: [{id, at, token, role, user, method, path, status, detail}],
 * next_cursor}. */
int store_audit_list(store *st, const json_t *query, store_json_cb cb, void *arg);
/* Revokes the token; -ENOENT if unknown. Result: {id, name}. */
int store_token_delete(store *st, int64_t id, store_json_cb cb, void *arg);

/* ---- channels connected through the API (store_sqlite_api.c) ---- */

/* Creates or replaces the channel called name: spec is its channel object
 * without credentials (copied), sealed the credentials as sealed text
 * (opaque to the store; may be NULL to keep the stored one). Result: {name}. */
int store_api_channel_put(store *st, const char *name, const json_t *spec, const char *sealed,
                          store_json_cb cb, void *arg);
/* [{name, spec, sealed}] in creation order. */
int store_api_channels_list(store *st, store_json_cb cb, void *arg);
/* The same list read straight from the database of a store URL, read-only
 * and without opening the store (no claim, no migration), for checks before
 * start-up: *out is [] when there is no database yet, or none of schema
 * with such channels. Returns 0, or -EIO with err filled. */
int store_api_channels_peek(const char *url, json_t **out, char *err, size_t errlen);
/* The webhooks' sealed secrets, [{id, secret}], read as the above. */
int store_webhook_secrets_peek(const char *url, json_t **out, char *err, size_t errlen);
/* Forgets it; -ENOENT if unknown. Result: {name}. */
int store_api_channel_delete(store *st, const char *name, store_json_cb cb, void *arg);
/* Deletes the channel's conversations (their messages, tickets, notes and
 * labels), outbox rows and key/value state (DELETE ?history=delete).
 * Result: {threads: n}. */
int store_channel_history_delete(store *st, const char *name, store_json_cb cb, void *arg);
/* Moves the channel's threads (and their tickets' inbox) to inbox (PATCH
 * inbox with history=move). Result: {threads: n}. */
int store_channel_history_move(store *st, const char *name, const char *inbox, store_json_cb cb,
                               void *arg);

/* ---- what plugins read back (store_sqlite_history.c) ---- */

/* The contact with identity (kind, id) on channel and its messages in the
 * channel's threads: the latest limit, or with after_id > 0 the first limit
 * stored after that message; oldest first. Result: {contact: {id, name} |
 * null, owner: {name, avatar_url} | null, messages: [{id, external_id,
 * direction, status, text, html, attachments, author, author_avatar_url,
 * automatic, created_at}], more: bool}. An unknown identity is no error:
 * contact null, no messages. */
int store_contact_history(store *st, const char *channel, const char *kind, const char *id,
                          int64_t after_id, int limit, store_json_cb cb, void *arg);

/* Who could answer on channel now: {eligible, available, with_capacity,
 * typical_reply_seconds}. The pool is the channel's named users and teams
 * (routing users_and_teams) or every user; eligible counts those with a
 * seat, available those also marked available, with_capacity those also
 * below their open-ticket capacity. typical_reply_seconds: the median first
 * agent reply over the channel's latest 200 conversations of the last 14
 * days, -1 when none. -ENOENT for a channel not put. */
int store_channel_availability(store *st, const char *channel, store_json_cb cb, void *arg);

/* ---- per-channel key/value state for plugins ---- */

/* Result: {items: {key: value, ...}}: every key of the channel, loaded
 * before a plugin instance is created. */
int store_kv_list(store *st, const char *channel, store_json_cb cb, void *arg);
/* Result: {value: string|null}. Values are UTF-8 text. */
int store_kv_get(store *st, const char *channel, const char *key, store_json_cb cb, void *arg);
int store_kv_set(store *st, const char *channel, const char *key, const char *value,
                 store_json_cb cb, void *arg);
int store_kv_delete(store *st, const char *channel, const char *key, store_json_cb cb, void *arg);

/* ---- outbox (core/outbox.c drives these) ---- */

/* Claims up to limit pending rows due at now_ms, marks them sending and
 * counts the attempt. Result: [{outbox_id, message_id, thread_id, channel,
 * idempotency_key, attempt, recipient_kind, recipient_id, external_thread_id,
 * reply_to_external_id, text, html, attachments, automatic, last_inbound_ms,
 * agent_name, agent_email, agent_avatar_url, subject, recipient_name,
 * template_json}]. */
int store_outbox_claim(store *st, int64_t now_ms, int limit, store_json_cb cb, void *arg);
/* The send succeeded: message status sent, its external id stored. */
int store_outbox_sent(store *st, int64_t outbox_id, const char *external_id, store_json_cb cb,
                      void *arg);
/* Back to pending, due at next_at_ms, reason kept as last_error and shown
 * as the still queued message's error (a message.status event). */
int store_outbox_retry(store *st, int64_t outbox_id, int64_t next_at_ms, const char *reason,
                       store_json_cb cb, void *arg);
/* Back to pending, due at next_at_ms, without counting the attempt the
 * claim counted: a hold (consent awaited, channel down) never dead-letters. */
int store_outbox_defer(store *st, int64_t outbox_id, int64_t next_at_ms, const char *reason,
                       store_json_cb cb, void *arg);
/* Permanent failure (dead=0) or dead letter after max attempts (dead=1): the
 * message becomes failed with the reason, visible to agents. */
int store_outbox_fail(store *st, int64_t outbox_id, const char *reason, int dead,
                      store_json_cb cb, void *arg);

/* Sends a failed reply of thread again: its outbox row pending and due now
 * with a fresh budget of attempts, the message queued (a message.status
 * event). A reply the service accepted and later reported failed gets a new
 * idempotency key. -ENOENT: no such message in thread; -EEXIST: the message
 * is inbound or not failed. Result: {id, status: "queued"}. */
int store_outbox_requeue(store *st, int64_t thread_id, int64_t message_id, store_json_cb cb, void *arg);

/* Makes every pending row of channel whose message goes to the contact with
 * identity (kind, id) there due now (a hold such as consent ended). Result:
 * {released: n}. */
int store_outbox_release(store *st, const char *channel, const char *kind, const char *id,
                         store_json_cb cb, void *arg);

/* Makes every held (deferred) pending row of channel due now: the channel
 * runs again. Rows backing off after a failure keep their time. Result:
 * {released: n}. */
int store_outbox_release_held(store *st, const char *channel, store_json_cb cb, void *arg);

/* How many outbox rows wait (pending), are being sent (sending) and were
 * dead-lettered (dead). Result: {pending, sending, dead}. For metrics. */
int store_outbox_counts(store *st, store_json_cb cb, void *arg);

/* Delivery receipt for one outbound message by (channel, external id):
 * status "delivered" | "read" | "failed" (error kept). Never moves a status
 * backwards. Result: {message_id} or -ENOENT. */
int store_delivery_status(store *st, const char *channel, const char *external_id,
                          const char *status, const char *error, store_json_cb cb, void *arg);
/* Watermark receipt: every outbound message to the contact with identity
 * (kind, id) on channel created at or before up_to_ms gets status. Result:
 * {updated: n}. */
int store_delivery_watermark(store *st, const char *channel, const char *kind, const char *id,
                             const char *status, int64_t up_to_ms, store_json_cb cb, void *arg);

#endif
