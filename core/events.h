/* events.h — the in-process event bus: changes agents care about, in id order.
 *
 * Every event is persisted by the store in the same transaction as the change
 * it describes and carries that row's id (monotonically increasing, never
 * reused), so an SSE client can resume with Last-Event-ID across restarts:
 * live events come from this bus after commit, older ones from
 * store_events_after(). Everything here runs on the loop thread.
 *
 * Event types and their data:
 *   message.in      {message_id, thread_id, contact_id, preview, subject, automatic,
 *                    new_contact, new_thread}  (a new contact/thread is announced here)
 *   message.out     {message_id, thread_id, status:"queued", automatic, preview}
 *   message.status  {message_id, thread_id, status, error, external_id}
 *   thread.reopened {thread_id}
 *   thread.updated  {thread_id, status} or {thread_id, user_id}  (a conversation without a ticket)
 *   note.created    the note: {id, thread_id, user, text, created_at}
 *   contact.deleted {contact_id}
 *   ticket.created  {ticket_id, thread_id, status, name}
 *   ticket.updated  {ticket_id, thread_id, status, closed, previous_status, priority}  (a change of
 *                   status, properties or priority; status == previous_status when it did not move)
 *   ticket.assigned {ticket_id, thread_id, user_id (null = unassigned)}
 *   ticket.queued   {ticket_id, thread_id}  (nobody eligible; assigned later)
 *   notification    {user_id, ticket_id, reason}  (e.g. contact owner unavailable)
 *   contact.merged  {contact_id, merged_id}
 *   user.updated    the user as in store_users_list (written over the API, its teams changed by a
 *                   team's write, or new or changed by the config's users and teams at start-up
 *                   or reload)
 *   user.deleted    {user_id, name}  (their open tickets each get ticket.assigned null and are
 *                   offered again; their other conversations and closed tickets are left
 *                   without an assignee, which this event stands for)
 *   thread.labels   {thread_id, labels: [names]}  (a conversation's labels changed)
 *   label.updated   the label as in store_labels_list, plus previous_name when renamed
 *   label.deleted   {name, conversations}  (taken off that many conversations)
 */
#ifndef SB_CORE_EVENTS_H
#define SB_CORE_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct events_event {
  int64_t id;          /* store row id; strictly increasing */
  const char *type;    /* "message.in", ... */
  const char *channel; /* may be NULL */
  const char *inbox;   /* may be NULL */
  json_t *data;        /* the event body (object), borrowed */
} events_event;

/* A subscriber callback; the event and its data are borrowed for the call. */
typedef void (*events_fn)(void *arg, const events_event *ev);

typedef struct events_bus events_bus;

/* Creates an empty bus. Returns NULL on out of memory. */
events_bus *events_bus_new(void);

/* Frees the bus and its subscriptions (not the subscribers' args). */
void events_bus_free(events_bus *bus);

/* Adds a subscriber; returns a positive token for events_unsubscribe, or
 * -ENOMEM. A subscriber added during a publish sees the next event. */
int events_subscribe(events_bus *bus, events_fn fn, void *arg);

/* Like events_subscribe, but fn only sees events of one type (copied). */
int events_subscribe_type(events_bus *bus, const char *type, events_fn fn, void *arg);

/* True when some subscriber would see an event of this type: publishers
 * skip building events nobody wants. */
int events_wants(const events_bus *bus, const char *type);

/* Removes the subscriber with this token; returns 0 or -ENOENT. Safe to call
 * from inside a callback. */
int events_unsubscribe(events_bus *bus, int token);

/* How many subscribers there are (publishers skip building events for none). */
size_t events_subscriber_count(const events_bus *bus);

/* Delivers ev to every subscriber in subscription order. */
void events_publish(events_bus *bus, const events_event *ev);

/* Is type one of the event types above? */
int events_type_known(const char *type);

/* Patterns that pick events by type (webhooks' events, the stream's
 * ?types=): "*", a known type ("message.in"), or a known type's family
 * followed by ".*" ("ticket.*"). events_pattern_ok says whether p is one,
 * events_pattern_match whether it takes type. */
int events_pattern_ok(const char *p);
int events_pattern_match(const char *p, const char *type);
/* Whether any pattern of the array (of strings) takes type. */
int events_patterns_match(const json_t *patterns, const char *type);

/* The newest event id the store has made durable (published or not: an
 * event nobody subscribes to is never built, but its id counts). */
int64_t events_newest(const events_bus *bus);

/* The store, once events up to id are durable (at open: every event
 * stored): moves the newest id on and, when it moved, calls every watcher
 * once. */
void events_advance(events_bus *bus, int64_t id);

/* Adds a watcher of the newest id: fn(arg, newest) after each move, never
 * with the events themselves, so watching costs the store nothing per
 * event (unlike a subscriber, for whom every event is built). Returns a
 * token for events_unsubscribe, or -ENOMEM. */
int events_watch(events_bus *bus, void (*fn)(void *arg, int64_t newest), void *arg);

/* Builds the JSON object form of an event ({id, type, channel, inbox, data})
 * as sent over SSE. Returns a new reference, or NULL on out of memory. */
json_t *events_to_json(const events_event *ev);

#endif
