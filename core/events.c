/* events.c — the in-process event bus: subscribers called in order on the loop. */
#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct events_sub {
  int token;
  events_fn fn;
  void (*watch)(void *arg, int64_t newest); /* a watcher (fn NULL): sees only the newest id */
  void *arg;
  int dead;
  char *type; /* only events of this type, or NULL for all */
} events_sub;

struct events_bus {
  events_sub *subs;
  size_t n, cap;
  int next_token;
  int publishing;
  int64_t newest;
};

events_bus *events_bus_new(void) {
  events_bus *bus = calloc(1, sizeof(*bus));
  if (bus != NULL) bus->next_token = 1;
  return bus;
}

void events_bus_free(events_bus *bus) {
  if (bus == NULL) return;
  for (size_t i = 0; i < bus->n; i++) free(bus->subs[i].type);
  free(bus->subs);
  free(bus);
}

int events_subscribe(events_bus *bus, events_fn fn, void *arg) { return events_subscribe_type(bus, NULL, fn, arg); }

static int events__add(events_bus *bus, const char *type, events_fn fn, void (*watch)(void *, int64_t),
                       void *arg) {
  char *copy = type != NULL ? strdup(type) : NULL;
  if (type != NULL && copy == NULL) return -ENOMEM;
  if (bus->n == bus->cap) {
    size_t cap = bus->cap ? bus->cap * 2 : 8;
    events_sub *s = realloc(bus->subs, cap * sizeof(*s));
    if (s == NULL) {
      free(copy);
      return -ENOMEM;
    }
    bus->subs = s;
    bus->cap = cap;
  }
  events_sub *s = &bus->subs[bus->n++];
  s->token = bus->next_token++;
  s->fn = fn;
  s->watch = watch;
  s->arg = arg;
  s->dead = 0;
  s->type = copy;
  return s->token;
}

int events_subscribe_type(events_bus *bus, const char *type, events_fn fn, void *arg) {
  if (bus == NULL || fn == NULL) return -EINVAL;
  return events__add(bus, type, fn, NULL, arg);
}

int events_watch(events_bus *bus, void (*fn)(void *arg, int64_t newest), void *arg) {
  if (bus == NULL || fn == NULL) return -EINVAL;
  return events__add(bus, NULL, NULL, fn, arg);
}

/* Removal only marks the slot while a publish walks the array; compaction
 * happens once the walk is over so indices stay valid. */
static void events__compact(events_bus *bus) {
  size_t j = 0;
  for (size_t i = 0; i < bus->n; i++) {
    if (!bus->subs[i].dead) {
      bus->subs[j++] = bus->subs[i];
    } else {
      free(bus->subs[i].type);
    }
  }
  bus->n = j;
}

int events_unsubscribe(events_bus *bus, int token) {
  if (bus == NULL) return -EINVAL;
  for (size_t i = 0; i < bus->n; i++) {
    if (bus->subs[i].token == token && !bus->subs[i].dead) {
      bus->subs[i].dead = 1;
      if (!bus->publishing) events__compact(bus);
      return 0;
    }
  }
  return -ENOENT;
}

size_t events_subscriber_count(const events_bus *bus) {
  size_t n = 0;
  for (size_t i = 0; bus != NULL && i < bus->n; i++) n += !bus->subs[i].dead && bus->subs[i].fn != NULL;
  return n;
}

static int events__matches(const events_sub *s, const char *type) {
  return !s->dead && s->fn != NULL && (s->type == NULL || (type != NULL && strcmp(s->type, type) == 0));
}

int events_wants(const events_bus *bus, const char *type) {
  for (size_t i = 0; bus != NULL && i < bus->n; i++) {
    if (events__matches(&bus->subs[i], type)) return 1;
  }
  return 0;
}

void events_publish(events_bus *bus, const events_event *ev) {
  if (bus == NULL || ev == NULL) return;
  bus->publishing++;
  size_t n = bus->n;
  for (size_t i = 0; i < n; i++)
    if (events__matches(&bus->subs[i], ev->type)) bus->subs[i].fn(bus->subs[i].arg, ev);
  if (--bus->publishing == 0) events__compact(bus);
}

/* Every type the store publishes (events.h lists them with their data). */
static const char *const events__types[] = {
    "message.in",     "message.out",  "message.status", "thread.reopened", "thread.updated",
    "ticket.created", "ticket.updated", "ticket.assigned", "ticket.queued", "notification",
    "contact.merged", "contact.deleted", "user.updated", "user.deleted",   "note.created",
    "thread.labels",  "label.updated",  "label.deleted",
};

int events_type_known(const char *type) {
  for (size_t i = 0; type != NULL && i < sizeof(events__types) / sizeof(events__types[0]); i++)
    if (strcmp(events__types[i], type) == 0) return 1;
  return 0;
}

static int events__family_known(const char *family, size_t n) {
  for (size_t i = 0; i < sizeof(events__types) / sizeof(events__types[0]); i++) {
    const char *dot = strchr(events__types[i], '.');
    if (dot != NULL && (size_t)(dot - events__types[i]) == n && strncmp(events__types[i], family, n) == 0) return 1;
  }
  return 0;
}

int events_pattern_ok(const char *p) {
  if (p == NULL) return 0;
  if (strcmp(p, "*") == 0) return 1;
  size_t n = strlen(p);
  if (n > 2 && strcmp(p + n - 2, ".*") == 0) return events__family_known(p, n - 2);
  return events_type_known(p);
}

int events_pattern_match(const char *p, const char *type) {
  if (p == NULL || type == NULL) return 0;
  if (strcmp(p, "*") == 0) return 1;
  size_t n = strlen(p);
  if (n >= 2 && strcmp(p + n - 2, ".*") == 0) return strncmp(type, p, n - 1) == 0;
  return strcmp(p, type) == 0;
}

int events_patterns_match(const json_t *patterns, const char *type) {
  size_t i;
  json_t *p;
  json_array_foreach(patterns, i, p) {
    if (events_pattern_match(json_string_value(p), type)) return 1;
  }
  return 0;
}

int64_t events_newest(const events_bus *bus) { return bus != NULL ? bus->newest : 0; }

void events_advance(events_bus *bus, int64_t id) {
  if (bus == NULL || id <= bus->newest) return;
  bus->newest = id;
  bus->publishing++;
  size_t n = bus->n;
  for (size_t i = 0; i < n; i++)
    if (!bus->subs[i].dead && bus->subs[i].watch != NULL) bus->subs[i].watch(bus->subs[i].arg, id);
  if (--bus->publishing == 0) events__compact(bus);
}

json_t *events_to_json(const events_event *ev) {
  if (ev == NULL) return NULL;
  json_t *o = json_pack("{sI ss}", "id", (json_int_t)ev->id, "type", ev->type ? ev->type : "");
  if (o == NULL) return NULL;
  json_object_set_new(o, "channel", ev->channel ? json_string(ev->channel) : json_null());
  json_object_set_new(o, "inbox", ev->inbox ? json_string(ev->inbox) : json_null());
  json_object_set(o, "data", ev->data ? ev->data : json_null());
  return o;
}
