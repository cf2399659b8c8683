/* store_sqlite_route.c — the message path inside the batch transaction:
 * inbound (dedup, contact, thread, ticket, assignment, auto-reply) and agent
 * replies (message + outbox row + optional ticket status). Policy decisions
 * come from router.c; this file only reads and writes rows. */
#include "store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- inbound request: one allocation holds the struct and its strings ---- */

enum { IN_CHANNEL, IN_EXT, IN_THREAD, IN_REPLY_TO, IN_KIND, IN_SID, IN_NAME, IN_EMAIL, IN_PHONE,
       IN_AVATAR, IN_TEXT, IN_HTML, IN_SUBJECT, IN_ATTACH, IN_META, IN_NSTR };

typedef struct sq_inbound {
  sq_req base;
  const char *s[IN_NSTR];
  uint32_t len[IN_NSTR]; /* strlen of each string, so binding it measures nothing */
  int64_t ts;
  uint32_t flags;
  router_inbound_cb cb;
  void *arg;
  int64_t message_id;
  int duplicate;
  sq_blob *blobs; /* attachment content to store with the message (malloc'd) */
  size_t n_blobs;
  size_t size; /* bytes asked for it, strings included */
} sq_inbound;

static void sq__inbound_run(store *st, sq_req *r);

/* An inbound request is over 1 KiB (its error text and event buffer), and
 * glibc answers every request of that size by consolidating its fast bins —
 * under load, the small blocks a webhook's JSON parse has just freed. So
 * requests that fit SQ_INBOUND_BLOCK bytes reuse the blocks of finished ones
 * (up to SQ_INBOUND_KEEP kept), on the loop thread, which both submits and
 * finishes them. A larger one is malloc'd and freed as it is. */
#define SQ_INBOUND_BLOCK 2048
#define SQ_INBOUND_KEEP 256

static sq_inbound *sq__inbound_alloc(store *st, size_t total) {
  if (total > SQ_INBOUND_BLOCK) return malloc(total);
  void *b = st->inbound_free;
  if (b == NULL) return malloc(SQ_INBOUND_BLOCK);
  memcpy(&st->inbound_free, b, sizeof(void *)); /* the next block's address, kept in the block */
  st->inbound_free_n--;
  return b;
}

static void sq__inbound_release(store *st, sq_inbound *m, size_t total) {
  if (total > SQ_INBOUND_BLOCK || st->inbound_free_n >= SQ_INBOUND_KEEP) {
    free(m);
    return;
  }
  memcpy(m, &st->inbound_free, sizeof(void *));
  st->inbound_free = m;
  st->inbound_free_n++;
}

void sq_inbound_blocks_free(store *st) {
  while (st->inbound_free != NULL) {
    void *b = st->inbound_free;
    memcpy(&st->inbound_free, b, sizeof(void *));
    free(b);
  }
  st->inbound_free_n = 0;
}

static void sq__inbound_done(store *st, sq_req *r) {
  sq_inbound *m = (sq_inbound *)r;
  m->cb(m->arg, r->status, r->status < 0 ? 0 : m->message_id, m->duplicate,
        r->status < 0 ? r->err : NULL);
  free(m->blobs);
  sq__inbound_release(st, m, m->size);
}

int store_submit_inbound(store *st, const router_inbound *in, router_inbound_cb cb, void *arg) {
  if (st == NULL || in == NULL || cb == NULL) return -EINVAL;
  st->inbound_at_ms = uv_now(st->loop);
  char *attach = NULL;
  sq_blob *blobs = NULL;
  size_t n_blobs = 0;
  if (sq_attachments_prepare(st, in->channel, in->attachments, in->n_attachments, &attach, &blobs,
                             &n_blobs) < 0)
    return -ENOMEM;
  const char *src[IN_NSTR] = {in->channel, in->external_id, in->external_thread_id,
                              in->reply_to_external_id, in->sender.kind, in->sender.id,
                              in->sender.name, in->sender.email, in->sender.phone,
                              in->sender.avatar_url, in->text, in->html, in->subject, attach,
                              in->metadata_json};
  size_t total = sizeof(sq_inbound), len[IN_NSTR];
  for (int i = 0; i < IN_NSTR; i++) {
    len[i] = src[i] != NULL ? strlen(src[i]) : 0;
    if (src[i] != NULL) total += len[i] + 1;
    if (len[i] > INT32_MAX) { /* SQLite's limit long before this */
      free(attach);
      free(blobs);
      return -E2BIG;
    }
  }
  /* Not calloc: the request is mostly its error text and event buffer,
   * which need no zeroes; the fields are set here and by sq_req_init. */
  sq_inbound *m = sq__inbound_alloc(st, total);
  if (m == NULL) {
    free(attach);
    free(blobs);
    return -ENOMEM;
  }
  sq_req_init(&m->base);
  m->size = total;
  char *p = (char *)(m + 1);
  for (int i = 0; i < IN_NSTR; i++) {
    m->len[i] = (uint32_t)len[i];
    if (src[i] == NULL) {
      m->s[i] = NULL;
      continue;
    }
    memcpy(p, src[i], len[i] + 1);
    m->s[i] = p;
    p += len[i] + 1;
  }
  m->message_id = 0;
  m->duplicate = 0;
  free(attach);
  m->blobs = blobs;
  m->n_blobs = n_blobs;
  m->ts = in->timestamp_ms;
  m->flags = in->flags;
  m->cb = cb;
  m->arg = arg;
  m->base.run = sq__inbound_run;
  m->base.done = sq__inbound_done;
  int rc = sq_enqueue(st, &m->base);
  if (rc < 0) {
    free(m->blobs);
    sq__inbound_release(st, m, total);
  }
  return rc;
}

/* Binds the message's string k (or NULL) at parameter i. */
static void sq__bind(sqlite3_stmt *s, int i, const sq_inbound *m, int k) {
  if (m->s[k] == NULL)
    sqlite3_bind_null(s, i);
  else
    sqlite3_bind_text(s, i, m->s[k], (int)m->len[k], SQLITE_STATIC);
}

/* ---- assignment ---- */

static int sq__load_candidates(store *st, sqlite3_stmt *s, router_candidate **out, size_t *n) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      router_candidate *c = realloc(*out, cap * sizeof(*c));
      if (c == NULL) return -ENOMEM;
      *out = c;
    }
    router_candidate *c = &(*out)[(*n)++];
    c->user_id = sqlite3_column_int64(s, 0);
    c->seat = sqlite3_column_int(s, 1);
    c->available = sqlite3_column_int(s, 2);
    c->skills_json = sq_col_text(s, 3) ? strdup(sq_col_text(s, 3)) : NULL;
    c->capacity = sqlite3_column_int64(s, 4);
    c->open_load = sqlite3_column_int64(s, 5);
    c->last_assigned = sqlite3_column_int64(s, 6);
  }
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

static char *sq__names_json(char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
  char *s = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return s;
}

/* The channel's required skills followed by the ticket's own (its "skills"
 * property, an array of strings). The channel's strings are borrowed, the
 * ticket's are strdup'd (entries from ch->routing.n_skills on). */
static size_t sq__required_skills(store *st, const router_channel *ch, int64_t ticket_id,
                                  char **out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < ch->routing.n_skills && n < cap; i++) out[n++] = ch->routing.skills[i];
  sqlite3_stmt *s = sq_prep(st, "SELECT json_extract(properties, '$.skills') FROM tickets"
                                " WHERE id = ?1 AND json_type(properties, '$.skills') = 'array'");
  if (s == NULL) return n;
  sqlite3_bind_int64(s, 1, ticket_id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    json_t *a = json_loads(sq_col_text(s, 0), 0, NULL);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
      char *dup = json_is_string(e) && n < cap ? strdup(json_string_value(e)) : NULL;
      if (dup != NULL) out[n++] = dup;
    }
    json_decref(a);
  }
  sqlite3_reset(s);
  return n;
}

int sq_event_ticket_assigned(store *st, sq_req *r, const char *channel, int64_t ticket_id, int64_t thread_id,
                             int64_t user_id) {
  const router_channel *ch = sq_channel(st, channel);
  return sq_event(st, r, "ticket.assigned", channel, ch != NULL ? ch->inbox : NULL,
                  json_pack("{sI sI so}", "ticket_id", (json_int_t)ticket_id, "thread_id", (json_int_t)thread_id,
                            "user_id", user_id != 0 ? json_integer(user_id) : json_null()));
}

int sq_event_ticket_queued(store *st, sq_req *r, const char *channel, int64_t ticket_id, int64_t thread_id) {
  const router_channel *ch = sq_channel(st, channel);
  return sq_event(st, r, "ticket.queued", channel, ch != NULL ? ch->inbox : NULL,
                  json_pack("{sI sI}", "ticket_id", (json_int_t)ticket_id, "thread_id", (json_int_t)thread_id));
}

#define SQ_CANDIDATE_COLS                                                                   \
  "SELECT u.id, u.seat, u.available, u.skills, u.capacity,"                                \
  " (SELECT count(*) FROM tickets t WHERE t.owner_id = u.id AND t.closed = 0),"            \
  " u.last_assigned FROM users u "

/* Assigns the ticket by its channel's rules, or marks it queued. quiet=1 does
 * not repeat the ticket.queued event for a ticket already waiting. Returns 1
 * when the ticket is assigned or (quiet, its channel no longer routing) left
 * the queue, 0 when it waits (or, not quiet, nobody is there to route to),
 * -EIO on a store error. */
static int sq__assign(store *st, sq_req *r, int64_t ticket_id, int64_t thread_id,
                      const char *channel, int quiet) {
  const router_channel *ch = sq_channel(st, channel);
  sqlite3_stmt *s;
  if (ch == NULL || ch->routing.mode == ROUTER_ROUTING_NONE) {
    if (!quiet) return 0;
    if (ch == NULL) {
      /* A channel the store has but that has not started yet (the drain at
       * start-up, before its rules come): its tickets keep waiting for them. */
      s = sq_prep(st, "SELECT 1 FROM channels WHERE name = ?1");
      if (s == NULL) return sq_fail(st, r, "finding a ticket's channel");
      sq_bind_text(s, 1, channel);
      int known = sqlite3_step(s) == SQLITE_ROW;
      sqlite3_reset(s);
      if (known) return 0;
    }
    /* Drained from the queue of a channel that no longer routes (deleted,
     * or its routing turned off): it leaves the queue, so it cannot hold up
     * the tickets behind it. */
    s = sq_prep(st, "UPDATE tickets SET queued = 0 WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "unqueueing a ticket");
    sqlite3_bind_int64(s, 1, ticket_id);
    return sqlite3_step(s) == SQLITE_DONE ? 1 : sq_fail(st, r, "unqueueing a ticket");
  }
  char *users = NULL, *teams = NULL;
  int64_t owner = 0;
  if (ch->routing.mode == ROUTER_ROUTING_CONTACT_OWNER) {
    s = sq_prep(st, "SELECT c.owner_id FROM threads t JOIN contacts c ON c.id = t.contact_id"
                    " WHERE t.id = ?1");
    if (s == NULL) return sq_fail(st, r, "finding the contact owner");
    sqlite3_bind_int64(s, 1, thread_id);
    if (sqlite3_step(s) == SQLITE_ROW) owner = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (owner == 0) return 0; /* no owner: stays unassigned, nobody to wait for */
    s = sq_prep(st, SQ_CANDIDATE_COLS "WHERE u.id = ?1");
    if (s == NULL) return sq_fail(st, r, "loading the contact owner");
    sqlite3_bind_int64(s, 1, owner);
  } else {
    users = sq__names_json(ch->routing.users, ch->routing.n_users);
    teams = sq__names_json(ch->routing.teams, ch->routing.n_teams);
    s = sq_prep(st, SQ_CANDIDATE_COLS
                "WHERE u.name IN (SELECT value FROM json_each(?1)) OR u.id IN"
                " (SELECT m.user_id FROM team_members m JOIN teams te ON te.id = m.team_id"
                "  WHERE te.name IN (SELECT value FROM json_each(?2))) ORDER BY u.id");
    if (s == NULL) {
      free(users);
      free(teams);
      return sq_fail(st, r, "loading routing candidates");
    }
    sqlite3_bind_text(s, 1, users, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, teams, -1, SQLITE_STATIC);
  }
  router_candidate *c = NULL;
  size_t n = 0;
  int rc = sq__load_candidates(st, s, &c, &n);
  free(users);
  free(teams);
  char *skills[64];
  size_t n_skills = sq__required_skills(st, ch, ticket_id, skills, 64);
  int pick = rc < 0 ? -1 : router_pick_assignee(c, n, ch->routing.available_only, skills, n_skills);
  int64_t user = pick >= 0 ? c[pick].user_id : 0;
  for (size_t i = 0; i < n; i++) free((char *)c[i].skills_json);
  for (size_t i = ch->routing.n_skills; i < n_skills; i++) free(skills[i]);
  free(c);
  if (rc < 0) return sq_fail(st, r, "loading routing candidates");

  if (user == 0) {
    if (quiet) return 0;
    s = sq_prep(st, "UPDATE tickets SET queued = 1 WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "queueing a ticket");
    sqlite3_bind_int64(s, 1, ticket_id);
    if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "queueing a ticket");
    if (owner != 0 &&
        sq_event(st, r, "notification", channel, ch->inbox,
                 json_pack("{sI sI ss}", "user_id", (json_int_t)owner, "ticket_id",
                           (json_int_t)ticket_id, "reason",
                           "a ticket of a contact you own arrived while you are unavailable")) < 0)
      return -EIO;
    return sq_event_ticket_queued(st, r, channel, ticket_id, thread_id);
  }
  int64_t now = sq_batch_now(st);
  s = sq_prep(st, "UPDATE tickets SET owner_id = ?2, queued = 0, updated_at = ?3 WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "assigning a ticket");
  sqlite3_bind_int64(s, 1, ticket_id);
  sqlite3_bind_int64(s, 2, user);
  sqlite3_bind_int64(s, 3, now);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "assigning a ticket");
  s = sq_prep(st, "UPDATE threads SET assignee_id = ?2 WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "assigning a thread");
  sqlite3_bind_int64(s, 1, thread_id);
  sqlite3_bind_int64(s, 2, user);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "assigning a thread");
  s = sq_prep(st, "UPDATE users SET last_assigned = ?2 WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "recording an assignment");
  sqlite3_bind_int64(s, 1, user);
  sqlite3_bind_int64(s, 2, ++st->assign_seq);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "recording an assignment");
  return sq_event_ticket_assigned(st, r, channel, ticket_id, thread_id, user) < 0 ? -EIO : 1;
}

int sq_assign_ticket(store *st, sq_req *r, int64_t ticket_id, int64_t thread_id,
                     const char *channel) {
  return sq__assign(st, r, ticket_id, thread_id, channel, 0) < 0 ? -EIO : 0;
}

#define SQ_DRAIN_BATCH 256

/* Offers every waiting ticket, oldest first, to its channel's routing, after
 * a change that may let someone take one (a user available, capacity freed).
 * Once a ticket without skills of its own found nobody, the rest of its
 * channel's are skipped: a ticket's skills only narrow the choice, and
 * nothing a drain does frees anyone (the contact owner mode excepted, where
 * each ticket has its own candidate). The queue is read in batches by id, so
 * tickets behind many that nobody can take are still reached. */
int sq_drain_queue(store *st, sq_req *r) {
  struct { int64_t id, thread; char *channel; int own_skills; } q[SQ_DRAIN_BATCH];
  char *stuck[64];
  size_t n_stuck = 0, n;
  int64_t after = 0;
  int rc = 0;
  do {
    sqlite3_stmt *s = sq_prep(st, "SELECT id, thread_id, channel, json_type(properties, '$.skills') = 'array'"
                                  " FROM tickets WHERE queued = 1 AND id > ?1 ORDER BY id LIMIT ?2");
    if (s == NULL) {
      rc = sq_fail(st, r, "reading the ticket queue");
      break;
    }
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, SQ_DRAIN_BATCH);
    for (n = 0; n < SQ_DRAIN_BATCH && sqlite3_step(s) == SQLITE_ROW; n++) {
      q[n].id = after = sqlite3_column_int64(s, 0);
      q[n].thread = sqlite3_column_int64(s, 1);
      q[n].channel = strdup(sq_col_text(s, 2));
      q[n].own_skills = sqlite3_column_int(s, 3);
    }
    sqlite3_reset(s);
    for (size_t i = 0; i < n; i++) {
      size_t k = 0;
      while (k < n_stuck && q[i].channel != NULL && strcmp(stuck[k], q[i].channel) != 0) k++;
      if (rc >= 0 && q[i].channel != NULL && k == n_stuck) {
        rc = sq__assign(st, r, q[i].id, q[i].thread, q[i].channel, 1);
        const router_channel *ch = sq_channel(st, q[i].channel);
        if (rc == 0 && !q[i].own_skills && ch != NULL && ch->routing.mode != ROUTER_ROUTING_CONTACT_OWNER &&
            n_stuck < sizeof(stuck) / sizeof(stuck[0])) {
          stuck[n_stuck++] = q[i].channel;
          q[i].channel = NULL;
        }
      }
      free(q[i].channel);
    }
  } while (rc >= 0 && n == SQ_DRAIN_BATCH);
  for (size_t k = 0; k < n_stuck; k++) free(stuck[k]);
  return rc < 0 ? -EIO : 0;
}

/* ---- tickets ---- */

/* Moves a ticket to status (NULL: keeps it) with props_patch merged into
 * its properties; check_required refuses a status whose required
 * properties are missing. Nothing changes, and no ticket.updated is
 * published, when the status and properties stay as they were, unless
 * changed says another field (the priority) did. */
static int sq__ticket_move(store *st, sq_req *r, int64_t ticket_id, const char *status, const json_t *props_patch,
                           int check_required, int changed) {
  sqlite3_stmt *s = sq_prep(st, "SELECT pipeline_id, properties, status, closed, thread_id, channel, priority"
                                " FROM tickets WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a ticket");
  sqlite3_bind_int64(s, 1, ticket_id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "ticket %lld does not exist", (long long)ticket_id);
    return -ENOENT;
  }
  int64_t pipeline = sqlite3_column_int64(s, 0);
  json_t *props = json_loads(sq_col_text(s, 1), 0, NULL);
  char *old_status = strdup(sq_col_text(s, 2));
  int was_closed = sqlite3_column_int(s, 3);
  int64_t thread = sqlite3_column_int64(s, 4);
  char *channel = strdup(sq_col_text(s, 5));
  char *priority = sq_col_text(s, 6) != NULL ? strdup(sq_col_text(s, 6)) : NULL;
  sqlite3_reset(s);
  if (!json_is_object(props)) {
    json_decref(props);
    props = json_object();
  }
  json_t *before = json_deep_copy(props);
  if (props_patch != NULL) json_object_update((json_t *)props, (json_t *)props_patch);
  const char *target = status ? status : old_status;
  int rc = 0, closed = was_closed;
  s = sq_prep(st, "SELECT closed, required, retired FROM statuses WHERE pipeline_id = ?1 AND name = ?2");
  if (s == NULL) rc = sq_fail(st, r, "reading a pipeline status");
  if (rc == 0) {
    sqlite3_bind_int64(s, 1, pipeline);
    sq_bind_text(s, 2, target);
    int found = sqlite3_step(s) == SQLITE_ROW;
    if (!found || (sqlite3_column_int(s, 2) && strcmp(target, old_status) != 0)) {
      /* a retired status stays for the tickets in it, but none moves there */
      r->status = rc = -EINVAL;
      snprintf(r->err, sizeof(r->err), "ticket %lld: its pipeline has no status \"%s\"%s", (long long)ticket_id,
               target, found ? " any more (it was taken out of the config)" : "");
    } else {
      closed = sqlite3_column_int(s, 0);
      char missing[160];
      if (check_required && router_missing_properties(sq_col_text(s, 1), props, missing, sizeof(missing)) > 0) {
        r->status = rc = -EINVAL;
        snprintf(r->err, sizeof(r->err), "ticket status \"%s\" requires properties: %s", target,
                 missing);
      }
    }
    sqlite3_reset(s);
  }
  char *ptext = rc == 0 ? json_dumps(props, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  changed |= strcmp(target, old_status) != 0 || !json_equal(before, props);
  json_decref(before);
  json_decref(props);
  if (rc == 0 && !changed) { /* as it was: nothing to write, nothing to announce */
    free(ptext);
    free(old_status);
    free(channel);
    free(priority);
    return 0;
  }
  if (rc == 0) {
    s = sq_prep(st, "UPDATE tickets SET status = ?2, closed = ?3, properties = ?4, updated_at = ?5,"
                    " queued = CASE WHEN ?3 THEN 0 ELSE queued END WHERE id = ?1");
    if (s == NULL) rc = sq_fail(st, r, "updating a ticket");
  }
  if (rc == 0) {
    sqlite3_bind_int64(s, 1, ticket_id);
    sq_bind_text(s, 2, target);
    sqlite3_bind_int(s, 3, closed);
    sq_bind_text(s, 4, ptext);
    sqlite3_bind_int64(s, 5, sq_batch_now(st));
    if (sqlite3_step(s) != SQLITE_DONE) rc = sq_fail(st, r, "updating a ticket");
    sqlite3_reset(s);
  }
  if (rc == 0) {
    /* closed_at is the first closing: a move between closed statuses keeps it */
    s = sq_prep(st, "UPDATE threads SET status = ?2,"
                    " closed_at = CASE WHEN ?2 = 'closed' THEN coalesce(closed_at, ?3) END WHERE id = ?1");
    if (s == NULL) rc = sq_fail(st, r, "updating a thread");
    else {
      sqlite3_bind_int64(s, 1, thread);
      sq_bind_text(s, 2, closed ? "closed" : "open");
      sqlite3_bind_int64(s, 3, sq_batch_now(st));
      if (sqlite3_step(s) != SQLITE_DONE) rc = sq_fail(st, r, "updating a thread");
    }
  }
  if (rc == 0) {
    const router_channel *ch = sq_channel(st, channel);
    rc = sq_event(st, r, "ticket.updated", channel, ch ? ch->inbox : NULL,
                  json_pack("{sI sI ss sb ss ss?}", "ticket_id", (json_int_t)ticket_id, "thread_id",
                            (json_int_t)thread, "status", target, "closed", closed,
                            "previous_status", old_status, "priority", priority));
  }
  if (closed != was_closed) sq_cache_clear(st->thread_cache); /* cached open/closed flags */
  if (rc == 0 && closed && !was_closed) rc = sq_drain_queue(st, r);
  free(ptext);
  free(old_status);
  free(channel);
  free(priority);
  return rc;
}

int sq_ticket_update(store *st, sq_req *r, int64_t ticket_id, const char *status, const json_t *props_patch,
                     int priority_changed) {
  return sq__ticket_move(st, r, ticket_id, status, props_patch, status != NULL || props_patch != NULL,
                         priority_changed);
}

/* Finds where a new ticket starts: the pipeline's id and the status (the
 * given one, or the pipeline's first open one when status is NULL) into
 * status_out. Remembered in st->ticket_starts: the lookup sorts the
 * pipeline's statuses in a temporary B-tree, which cost a third of a new
 * conversation. Returns 0, or -EINVAL/-EIO with r filled. */
static int sq__ticket_start(store *st, sq_req *r, const char *chname, const char *pname, const char *want,
                            int64_t *pipeline, char *status_out, size_t len) {
  for (size_t i = 0; i < st->n_ticket_starts; i++) {
    struct sq_ticket_start *t = &st->ticket_starts[i];
    if (strcmp(t->pipeline, pname) == 0 &&
        (want == NULL ? t->status == NULL : t->status != NULL && strcmp(t->status, want) == 0)) {
      *pipeline = t->pipeline_id;
      snprintf(status_out, len, "%s", t->first);
      return 0;
    }
  }
  sqlite3_stmt *s = sq_prep(st,
      "SELECT p.id, s.name FROM pipelines p JOIN statuses s ON s.pipeline_id = p.id"
      " WHERE p.name = ?1 AND NOT s.retired AND (?2 IS NULL AND s.closed = 0 OR s.name = ?2)"
      " ORDER BY s.position LIMIT 1");
  if (s == NULL) return sq_fail(st, r, "finding the ticket pipeline");
  sq_bind_text(s, 1, pname);
  sq_bind_text(s, 2, want);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    r->status = -EINVAL;
    snprintf(r->err, sizeof(r->err), "channel \"%s\": pipeline \"%s\" or status \"%s\" does not exist",
             chname, pname, want ? want : "(first)");
    return -EINVAL;
  }
  *pipeline = sqlite3_column_int64(s, 0);
  snprintf(status_out, len, "%s", sq_col_text(s, 1));
  sqlite3_reset(s);
  if (st->n_ticket_starts < sizeof(st->ticket_starts) / sizeof(st->ticket_starts[0])) {
    struct sq_ticket_start *t = &st->ticket_starts[st->n_ticket_starts];
    t->pipeline = strdup(pname);
    t->status = want != NULL ? strdup(want) : NULL;
    t->first = strdup(status_out);
    t->pipeline_id = *pipeline;
    if (t->pipeline != NULL && t->first != NULL && (want == NULL || t->status != NULL)) {
      st->n_ticket_starts++;
    } else { /* a cache may forget */
      free(t->pipeline);
      free(t->status);
      free(t->first);
    }
  }
  return 0;
}

/* The ticket's owner, 0 when it has none. */
static int sq__ticket_owner(store *st, sq_req *r, int64_t ticket, int64_t *owner) {
  sqlite3_stmt *s = sq_prep(st, "SELECT coalesce(owner_id, 0) FROM tickets WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a ticket's owner");
  sqlite3_bind_int64(s, 1, ticket);
  *owner = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  return 0;
}

/* Creates the ticket of a new thread with the channel's defaults, then routes it. */
static int sq__create_ticket(store *st, sq_req *r, const router_channel *ch, int64_t thread,
                             int64_t contact, const char *known_name, const char *subject,
                             int64_t now) {
  const char *pname = ch->ticket.pipeline ? ch->ticket.pipeline : "Support";
  int64_t pipeline = 0;
  char status[128];
  if (sq__ticket_start(st, r, ch->name, pname, ch->ticket.status, &pipeline, status, sizeof(status)) < 0) {
    if (r->status != -EINVAL) return r->status;
    /* Config and API check the defaults, but the store may lack them (a
     * pipeline since dropped from the config): a customer's message is
     * never refused for the help desk's own settings. */
    log_warn("%s; the ticket starts in Support", r->err);
    r->status = 0;
    r->err[0] = '\0';
    if (sq__ticket_start(st, r, ch->name, "Support", NULL, &pipeline, status, sizeof(status)) < 0) return r->status;
  }
  sqlite3_stmt *s;

  char contact_name[256] = "";
  if (known_name != NULL) {
    snprintf(contact_name, sizeof(contact_name), "%s", known_name);
  } else {
    s = sq_prep(st, "SELECT coalesce(name, email, phone, 'contact ' || id) FROM contacts WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "reading a contact");
    sqlite3_bind_int64(s, 1, contact);
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(contact_name, sizeof(contact_name), "%s", sq_col_text(s, 0));
    sqlite3_reset(s);
  }
  char name[512];
  router_ticket_name(ch->ticket.name_template, contact_name, ch->name, subject, name, sizeof(name));

  s = sq_prep(st, "INSERT INTO tickets(thread_id, channel, pipeline_id, status, priority, owner_id,"
                  " name, created_at, updated_at)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, (SELECT id FROM users WHERE name = ?6), ?7, ?8, ?8)");
  if (s == NULL) return sq_fail(st, r, "creating a ticket");
  sqlite3_bind_int64(s, 1, thread);
  sq_bind_text(s, 2, ch->name);
  sqlite3_bind_int64(s, 3, pipeline);
  sq_bind_text(s, 4, status);
  sq_bind_text(s, 5, ch->ticket.priority ? ch->ticket.priority : "medium");
  sq_bind_text(s, 6, ch->ticket.owner);
  sq_bind_text(s, 7, name);
  sqlite3_bind_int64(s, 8, now);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "creating a ticket");
  int64_t ticket = sqlite3_last_insert_rowid(st->db);
  s = sq_prep(st, "UPDATE threads SET ticket_id = ?2,"
                  " assignee_id = (SELECT owner_id FROM tickets WHERE id = ?2) WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "linking a ticket");
  sqlite3_bind_int64(s, 1, thread);
  sqlite3_bind_int64(s, 2, ticket);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "linking a ticket");
  sq_jw w;
  sq_jw_init(&w);
  sq_jw_int(&w, "ticket_id", ticket);
  sq_jw_int(&w, "thread_id", thread);
  sq_jw_str(&w, "status", status, 0);
  sq_jw_str(&w, "name", name, 0);
  if (sq_event_text(st, r, "ticket.created", ch->name, ch->inbox, sq_jw_end(&w)) < 0) return -EIO;
  if (ch->ticket.owner != NULL) { /* a fixed owner replaces routing, if there is such a user */
    int64_t owner = 0;
    if (sq__ticket_owner(st, r, ticket, &owner) < 0) return -EIO;
    if (owner != 0) return 0;
    log_warn("channel \"%s\": ticket.owner \"%s\" is not a user; the ticket is routed instead", ch->name,
             ch->ticket.owner);
  }
  return sq_assign_ticket(st, r, ticket, thread, ch->name);
}

/* ---- a thread's chain of messages ---- */

/* A stored message becomes its thread's newest: the thread names it, and
 * the message named the one before it when inserted (prev_id, the
 * inserts' subquery on last_message_id). An inbound one also moves what
 * replies and the outbox read of the thread's inbound side. Called only
 * once the insert took effect, in the same transaction. */
static int sq__thread_append(store *st, sq_req *r, int64_t thread, int64_t message_id, int inbound,
                             int automatic, int64_t ts, const char *subject) {
  /* An automatic inbound message (a bounce, an out-of-office) is not what
   * a reply answers: the thread's latest inbound message and subject stay
   * the contact's own, unless there is none yet. */
  sqlite3_stmt *s =
      inbound ? sq_prep(st, "UPDATE threads SET last_message_id = ?2,"
                            " last_in_id = CASE WHEN ?5 AND last_in_id IS NOT NULL THEN last_in_id ELSE ?2 END,"
                            " last_in_at = max(coalesce(last_in_at, ?3), ?3),"
                            " last_subject = CASE WHEN ?5 AND last_subject IS NOT NULL THEN last_subject"
                            " ELSE coalesce(?4, last_subject) END WHERE id = ?1")
              : sq_prep(st, "UPDATE threads SET last_message_id = ?2 WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "linking a message to its thread");
  sqlite3_bind_int64(s, 1, thread);
  sqlite3_bind_int64(s, 2, message_id);
  if (inbound) {
    sqlite3_bind_int64(s, 3, ts);
    sq_bind_text(s, 4, subject);
    sqlite3_bind_int(s, 5, automatic);
  }
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "linking a message to its thread");
  return 0;
}

/* ---- outbound ---- */

int sq_queue_outbound(store *st, sq_req *r, int64_t thread_id, const char *channel,
                      int64_t user_id, const char *text, const char *html,
                      const char *attachments_json, int64_t reply_to, int automatic,
                      int64_t *message_id) {
  int64_t now = sq_batch_now(st);
  sqlite3_stmt *s = sq_prep(st,
      "INSERT INTO messages(id, thread_id, channel, direction, reply_to, user_id, text, html,"
      " attachments, status, automatic, created_at, prev_id)"
      " VALUES(?10, ?1, ?2, 'out', ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9,"
      " (SELECT last_message_id FROM threads WHERE id = ?1))");
  if (s == NULL) return sq_fail(st, r, "storing a reply");
  int64_t mid = sq_next_id(st);
  sqlite3_bind_int64(s, 10, mid);
  sqlite3_bind_int64(s, 1, thread_id);
  sq_bind_text(s, 2, channel);
  if (reply_to > 0) sqlite3_bind_int64(s, 3, reply_to);
  if (user_id > 0) sqlite3_bind_int64(s, 4, user_id);
  sq_bind_text(s, 5, text);
  sq_bind_text(s, 6, html);
  sq_bind_text(s, 7, attachments_json);
  sqlite3_bind_int(s, 8, automatic);
  sqlite3_bind_int64(s, 9, now);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "storing a reply");
  if (sq__thread_append(st, r, thread_id, mid, 0, 0, 0, NULL) < 0) return -EIO;
  char key[64];
  /* Stable per message, so a send retried after a crash carries the same key. */
  snprintf(key, sizeof(key), "switchboard-msg-%lld", (long long)mid);
  s = sq_prep(st, "INSERT INTO outbox(message_id, channel, idempotency_key, state, next_at, thread_id)"
                  " VALUES(?1, ?2, ?3, 'pending', ?4, ?5)");
  if (s == NULL) return sq_fail(st, r, "queueing a reply");
  sqlite3_bind_int64(s, 1, mid);
  sq_bind_text(s, 2, channel);
  sq_bind_text(s, 3, key);
  sqlite3_bind_int64(s, 4, now);
  sqlite3_bind_int64(s, 5, thread_id);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "queueing a reply");
  *message_id = mid;
  const router_channel *ch = sq_channel(st, channel);
  sq_message_event ev = {.id = mid, .thread_id = thread_id, .text = text, .reply = 1, .automatic = automatic};
  return sq_event_message(st, r, &ev, "message.out", channel, ch ? ch->inbox : NULL);
}

/* ---- routing one inbound message ---- */

/* Cache keys join their parts with 0x1f, which identifiers do not contain.
 * A key that does not fit comes out truncated and is then never cached
 * (callers check strlen(key) < len - 1). Hand-rolled: snprintf showed up in
 * the benchmark profile. */
static void sq__key(char *out, size_t len, const char *a, const char *b, const char *c, const char *d) {
  const char *parts[4] = {a, b, c ? c : "", d};
  size_t n = 0;
  for (int i = 0; i < 4 && parts[i] != NULL; i++) {
    size_t l = strlen(parts[i]);
    if (i > 0 && n + 1 < len) out[n++] = '\x1f';
    if (l > len - 1 - n) l = len - 1 - n;
    memcpy(out + n, parts[i], l);
    n += l;
  }
  out[n] = '\0';
}

/* Looks the sender up without side effects: *contact = 0 if unknown. */
static int sq__lookup_contact(store *st, sq_req *r, sq_inbound *m, int64_t *contact) {
  char key[512];
  sq__key(key, sizeof(key), m->s[IN_CHANNEL], m->s[IN_KIND], m->s[IN_SID], NULL);
  if (strlen(key) < sizeof(key) - 1 && sq_cache_get(st->contact_cache, key, contact, NULL)) return 0;
  sqlite3_stmt *s = sq_prep(st, "SELECT contact_id FROM identities"
                                " WHERE channel = ?1 AND kind = ?2 AND value = ?3");
  if (s == NULL) return sq_fail(st, r, "finding a contact");
  sq_bind_text(s, 1, m->s[IN_CHANNEL]);
  sq_bind_text(s, 2, m->s[IN_KIND]);
  sq_bind_text(s, 3, m->s[IN_SID]);
  int rc = sqlite3_step(s);
  *contact = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(st, r, "finding a contact");
  if (*contact > 0 && strlen(key) < sizeof(key) - 1) sq_cache_put(st->contact_cache, key, *contact, 0);
  return 0;
}

static int sq__create_contact(store *st, sq_req *r, sq_inbound *m, int64_t now, int64_t *contact) {
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO contacts(name, email, phone, avatar_url, created_at)"
                                " VALUES(?1, ?2, ?3, ?4, ?5)");
  if (s == NULL) return sq_fail(st, r, "creating a contact");
  sq_bind_text(s, 1, m->s[IN_NAME]);
  sq_bind_text(s, 2, m->s[IN_EMAIL] ? m->s[IN_EMAIL]
                     : strcmp(m->s[IN_KIND], "email") == 0 ? m->s[IN_SID] : NULL);
  sq_bind_text(s, 3, m->s[IN_PHONE] ? m->s[IN_PHONE]
                     : strcmp(m->s[IN_KIND], "phone") == 0 ? m->s[IN_SID] : NULL);
  sq_bind_text(s, 4, m->s[IN_AVATAR]);
  sqlite3_bind_int64(s, 5, now);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "creating a contact");
  *contact = sqlite3_last_insert_rowid(st->db);
  s = sq_prep(st, "INSERT INTO identities(channel, kind, value, contact_id) VALUES(?1, ?2, ?3, ?4)");
  if (s == NULL) return sq_fail(st, r, "recording an identity");
  sq_bind_text(s, 1, m->s[IN_CHANNEL]);
  sq_bind_text(s, 2, m->s[IN_KIND]);
  sq_bind_text(s, 3, m->s[IN_SID]);
  sqlite3_bind_int64(s, 4, *contact);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "recording an identity");
  return 0; /* announced by the message.in event (new_contact) */
}

/* The thread cache key for this message under the channel's policy, or ""
 * when the policy looks nothing up. A contact's thread is the one of the
 * address the message came from (its identity): after a merge a contact
 * may have two on a channel, each with its own conversation. */
static void sq__thread_key(const router_channel *ch, sq_inbound *m, int64_t contact, char *key,
                           size_t len) {
  char cid[24], *p = cid + sizeof(cid) - 1;
  key[0] = '\0';
  if (ch->thread_policy == ROUTER_THREAD_ALWAYS_NEW) return;
  if (ch->thread_policy == ROUTER_THREAD_EXTERNAL && m->s[IN_THREAD] != NULL) {
    sq__key(key, len, "x", m->s[IN_CHANNEL], m->s[IN_THREAD], NULL);
  } else {
    *p = '\0';
    uint64_t v = (uint64_t)contact;
    do *--p = (char)('0' + v % 10); while ((v /= 10) != 0);
    sq__key(key, len, p, m->s[IN_CHANNEL], m->s[IN_KIND], m->s[IN_SID]);
  }
  if (strlen(key) >= len - 1) key[0] = '\0'; /* too long to cache: always ask SQLite */
}

/* Thread state bits, as cached. */
#define SQ_THREAD_CLOSED 1
#define SQ_THREAD_HAS_TICKET 2

/* Finds the thread the channel's policy points at: its id and SQ_THREAD_*
 * bits in *state; no side effects. */
static int sq__find_thread(store *st, sq_req *r, const router_channel *ch, sq_inbound *m,
                           int64_t contact, const char *key, int64_t *thread, int *state) {
  *thread = 0;
  *state = 0;
  if (ch->thread_policy == ROUTER_THREAD_ALWAYS_NEW) return 0;
  if (key[0] && sq_cache_get(st->thread_cache, key, thread, state)) return 0;
  sqlite3_stmt *s;
  if (ch->thread_policy == ROUTER_THREAD_EXTERNAL && m->s[IN_THREAD] != NULL) {
    s = sq_prep(st, "SELECT id, (status = 'closed') + 2 * (ticket_id IS NOT NULL) FROM threads"
                    " WHERE channel = ?1 AND external_id = ?2 ORDER BY id DESC LIMIT 1");
    if (s == NULL) return sq_fail(st, r, "finding a thread");
    sq_bind_text(s, 1, m->s[IN_CHANNEL]);
    sq_bind_text(s, 2, m->s[IN_THREAD]);
  } else {
    if (contact == 0) return 0;
    /* a thread of no identity (started by an agent) is any address's */
    s = sq_prep(st, "SELECT id, (status = 'closed') + 2 * (ticket_id IS NOT NULL) FROM threads"
                    " WHERE contact_id = ?1 AND channel = ?2 AND (identity_value IS NULL"
                    " OR (identity_kind = ?3 AND identity_value = ?4)) ORDER BY id DESC LIMIT 1");
    if (s == NULL) return sq_fail(st, r, "finding a thread");
    sqlite3_bind_int64(s, 1, contact);
    sq_bind_text(s, 2, m->s[IN_CHANNEL]);
    sq_bind_text(s, 3, m->s[IN_KIND]);
    sq_bind_text(s, 4, m->s[IN_SID]);
  }
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *thread = sqlite3_column_int64(s, 0);
    *state = sqlite3_column_int(s, 1);
  }
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(st, r, "finding a thread");
  if (*thread > 0 && key[0]) sq_cache_put(st->thread_cache, key, *thread, *state);
  return 0;
}

/* Finds the message m repeats (the same external id on its channel): a
 * duplicate, answered with the original's id. A customer's message whose
 * id is the one the service gave a reply of ours is no repeat of it (an
 * echo of that reply would be): refused with -EEXIST, never answered with
 * the reply's id as if stored. */
static int sq__original(store *st, sq_req *r, sq_inbound *m) {
  sqlite3_stmt *s = sq_prep(st, "SELECT id, EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = messages.id)"
                                " FROM messages WHERE channel = ?1 AND external_id = ?2");
  if (s == NULL) return sq_fail(st, r, "checking for a duplicate");
  sq_bind_text(s, 1, m->s[IN_CHANNEL]);
  sq_bind_text(s, 2, m->s[IN_EXT]);
  int rc = 0;
  if (sqlite3_step(s) == SQLITE_ROW) {
    if (sqlite3_column_int(s, 1) && !(m->flags & ROUTER_IN_ECHO)) {
      r->status = rc = -EEXIST;
      snprintf(r->err, sizeof(r->err),
               "id \"%.80s\" is the one the service gave reply %lld; a customer's message needs its own",
               m->s[IN_EXT], (long long)sqlite3_column_int64(s, 0));
    } else {
      m->message_id = sqlite3_column_int64(s, 0);
      m->duplicate = 1;
    }
  }
  sqlite3_reset(s);
  return rc;
}

static int sq__reopen(store *st, sq_req *r, const router_channel *ch, int64_t thread) {
  sqlite3_stmt *s = sq_prep(st, "SELECT ticket_id FROM threads WHERE id = ?1");
  if (s == NULL) return sq_fail(st, r, "reopening a thread");
  sqlite3_bind_int64(s, 1, thread);
  int64_t ticket = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (ticket > 0) {
    /* Back to the first open status of its pipeline, as a new ticket
     * starts: its required properties are for agents setting it, not for a
     * customer writing again. The owner keeps it; one without an owner
     * (closed unassigned, or its owner deleted) is routed again. */
    s = sq_prep(st, "SELECT s.name FROM tickets t JOIN statuses s ON s.pipeline_id = t.pipeline_id"
                    " WHERE t.id = ?1 AND s.closed = 0 AND NOT s.retired ORDER BY s.position LIMIT 1");
    if (s == NULL) return sq_fail(st, r, "reopening a ticket");
    sqlite3_bind_int64(s, 1, ticket);
    char status[128] = "";
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(status, sizeof(status), "%s", sq_col_text(s, 0));
    sqlite3_reset(s);
    if (status[0] && sq__ticket_move(st, r, ticket, status, NULL, 0, 0) < 0) return r->status;
    int64_t owner = 0;
    if (sq__ticket_owner(st, r, ticket, &owner) < 0) return -EIO;
    if (owner == 0 && sq_assign_ticket(st, r, ticket, thread, ch->name) < 0) return -EIO;
  } else {
    sq_cache_clear(st->thread_cache);
    s = sq_prep(st, "UPDATE threads SET status = 'open', closed_at = NULL WHERE id = ?1");
    if (s == NULL) return sq_fail(st, r, "reopening a thread");
    sqlite3_bind_int64(s, 1, thread);
    if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "reopening a thread");
  }
  return sq_event(st, r, "thread.reopened", ch->name, ch->inbox,
                  json_pack("{sI}", "thread_id", (json_int_t)thread));
}

/* Routes one message. Lookups come first and have no side effects, so the
 * common case (known sender, thread in use) needs no separate duplicate
 * check: the message insert itself is ignored on a duplicate external id.
 * When anything would be created or reopened first, the duplicate check
 * runs before it. */
static int sq__route(store *st, sq_req *r, sq_inbound *m) {
  const char *chname = m->s[IN_CHANNEL];
  const router_channel *ch = sq_channel(st, chname);
  if (ch == NULL) {
    if (sq__original(st, r, m) < 0 || m->duplicate) return r->status;
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "channel \"%s\" is not configured", chname);
    return -ENOENT;
  }
  int64_t now = sq_batch_now(st);
  int64_t ts = m->ts > 0 ? m->ts : now;
  int echo = (m->flags & ROUTER_IN_ECHO) != 0;

  int64_t contact = 0, thread = 0;
  int new_contact = 0, state = 0, new_thread = 0;
  char tkey[512];
  if (sq__lookup_contact(st, r, m, &contact) < 0) return -EIO;
  sq__thread_key(ch, m, contact, tkey, sizeof(tkey));
  if (sq__find_thread(st, r, ch, m, contact, tkey, &thread, &state) < 0) return -EIO;
  int action = router_decide_thread(ch, thread != 0, (state & SQ_THREAD_CLOSED) != 0);
  if (action == ROUTER_REOPEN_THREAD && echo) action = ROUTER_USE_THREAD;
  /* A thread opened by an echo (our side wrote first) gets its ticket with
   * the first message from the contact. */
  int late_ticket = action != ROUTER_NEW_THREAD && thread != 0 && !echo && ch->creates_tickets &&
                    !(state & SQ_THREAD_HAS_TICKET);
  int checked = 0;
  if (contact == 0 || action != ROUTER_USE_THREAD || late_ticket) {
    if (sq__original(st, r, m) < 0) return r->status;
    if (m->duplicate) return 0;
    checked = 1;
  }
  if (contact == 0) {
    if (sq__create_contact(st, r, m, now, &contact) < 0) return -EIO;
    new_contact = 1;
    sq__thread_key(ch, m, contact, tkey, sizeof(tkey));
  }
  sqlite3_stmt *s;
  if (late_ticket) {
    if (sq__create_ticket(st, r, ch, thread, contact, NULL, m->s[IN_SUBJECT], now) < 0)
      return r->status;
    if (tkey[0]) sq_cache_put(st->thread_cache, tkey, thread, SQ_THREAD_HAS_TICKET);
  }
  if (action == ROUTER_REOPEN_THREAD) {
    if (sq__reopen(st, r, ch, thread) < 0) return r->status;
  } else if (action == ROUTER_NEW_THREAD) {
    s = sq_prep(st, "INSERT INTO threads(channel, inbox, contact_id, external_id, status,"
                    " created_at, identity_kind, identity_value) VALUES(?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7)");
    if (s == NULL) return sq_fail(st, r, "creating a thread");
    sq_bind_text(s, 1, chname);
    sq_bind_text(s, 2, ch->inbox);
    sqlite3_bind_int64(s, 3, contact);
    sq_bind_text(s, 4, m->s[IN_THREAD]);
    sqlite3_bind_int64(s, 5, now);
    sq_bind_text(s, 6, m->s[IN_KIND]); /* where replies go back to, even after a merge */
    sq_bind_text(s, 7, m->s[IN_SID]);
    if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "creating a thread");
    thread = sqlite3_last_insert_rowid(st->db);
    new_thread = 1;
    int has_ticket = ch->creates_tickets && !echo;
    if (tkey[0]) sq_cache_put(st->thread_cache, tkey, thread, has_ticket ? SQ_THREAD_HAS_TICKET : 0);
    /* A new thread (and contact) is announced by the message.in event. */
    const char *known = NULL;
    if (new_contact)
      known = m->s[IN_NAME] ? m->s[IN_NAME] : m->s[IN_EMAIL] ? m->s[IN_EMAIL]
              : m->s[IN_PHONE] ? m->s[IN_PHONE] : m->s[IN_SID];
    if (has_ticket && sq__create_ticket(st, r, ch, thread, contact, known, m->s[IN_SUBJECT], now) < 0)
      return r->status;
  }

  /* Two statements so the common message without reply-to skips the subquery. */
  s = m->s[IN_REPLY_TO] != NULL
          ? sq_prep_bound(st, "INSERT OR IGNORE INTO messages(id, thread_id, channel, direction, external_id,"
                        " reply_to, contact_id, text, html, subject, attachments, status, automatic,"
                        " flags, created_at, metadata, prev_id, sent_at) VALUES(?16, ?1, ?2, ?3, ?4,"
                        " (SELECT id FROM messages WHERE channel = ?2 AND external_id = ?5),"
                        " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                        " (SELECT last_message_id FROM threads WHERE id = ?1), ?17)")
          : sq_prep_bound(st, "INSERT OR IGNORE INTO messages(id, thread_id, channel, direction, external_id,"
                        " reply_to, contact_id, text, html, subject, attachments, status, automatic,"
                        " flags, created_at, metadata, prev_id, sent_at) VALUES(?16, ?1, ?2, ?3, ?4, ?5,"
                        " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                        " (SELECT last_message_id FROM threads WHERE id = ?1), ?17)");
  if (s == NULL) return sq_fail(st, r, "storing a message");
  sqlite3_bind_int64(s, 1, thread);
  sq__bind(s, 2, m, IN_CHANNEL);
  sqlite3_bind_text(s, 3, echo ? "out" : "in", echo ? 3 : 2, SQLITE_STATIC);
  sq__bind(s, 4, m, IN_EXT);
  sq__bind(s, 5, m, IN_REPLY_TO);
  sqlite3_bind_int64(s, 6, contact);
  sq__bind(s, 7, m, IN_TEXT);
  sq__bind(s, 8, m, IN_HTML);
  sq__bind(s, 9, m, IN_SUBJECT);
  sq__bind(s, 10, m, IN_ATTACH);
  sqlite3_bind_text(s, 11, echo ? "sent" : "received", echo ? 4 : 8, SQLITE_STATIC);
  sqlite3_bind_int(s, 12, (m->flags & ROUTER_IN_AUTOMATIC) != 0);
  sqlite3_bind_int(s, 13, (int)(m->flags | (new_contact ? SQ_MSG_NEW_CONTACT : 0) |
                                 (new_thread ? SQ_MSG_NEW_THREAD : 0)));
  /* created_at is when it was stored, so message ids and times grow
   * together (reports find a time range by id: store_sqlite_report.c); the
   * time the service gave, which a redelivery or a clock may put anywhere,
   * is sent_at. */
  sqlite3_bind_int64(s, 14, now);
  sq__bind(s, 15, m, IN_META);
  if (m->ts > 0) /* the statement keeps its bindings (sq_prep_bound): bind ?17 both ways */
    sqlite3_bind_int64(s, 17, m->ts);
  else
    sqlite3_bind_null(s, 17);
  int64_t id = sq_next_id(st);
  sqlite3_bind_int64(s, 16, id);
  if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "storing a message");
  if (sqlite3_changes(st->db) == 0) {
    /* Ignored: the external id was seen before. Nothing was changed yet. */
    if (checked || sq__original(st, r, m) < 0 || !m->duplicate)
      return r->status < 0 ? r->status : sq_fail(st, r, "storing a message");
    return 0;
  }
  m->message_id = id;
  if (sq__thread_append(st, r, thread, id, !echo, (m->flags & ROUTER_IN_AUTOMATIC) != 0, ts, m->s[IN_SUBJECT]) < 0)
    return -EIO;
  /* A known contact who now gives an address they had not (a chat visitor
   * asked for their email while nobody was there) gets it filled in; what
   * the contact already has is never overwritten. */
  if (!new_contact && !echo && (m->s[IN_EMAIL] != NULL || m->s[IN_PHONE] != NULL)) {
    s = sq_prep(st, "UPDATE contacts SET email = coalesce(nullif(email, ''), ?2),"
                    " phone = coalesce(nullif(phone, ''), ?3) WHERE id = ?1"
                    " AND ((?2 IS NOT NULL AND coalesce(email, '') = '') OR (?3 IS NOT NULL AND coalesce(phone, '') = ''))");
    if (s == NULL) return sq_fail(st, r, "completing a contact");
    sqlite3_bind_int64(s, 1, contact);
    sq_bind_text(s, 2, m->s[IN_EMAIL]);
    sq_bind_text(s, 3, m->s[IN_PHONE]);
    if (sqlite3_step(s) != SQLITE_DONE) return sq_fail(st, r, "completing a contact");
  }
  /* Only now, when the message is new: a redelivery stores no content. */
  if (m->n_blobs > 0 &&
      sq_attachments_insert(st, r, m->message_id, m->s[IN_ATTACH], m->blobs, m->n_blobs) < 0)
    return -EIO;
  sq_message_event ev = {.id = id, .thread_id = thread, .contact_id = contact, .text = m->s[IN_TEXT],
                         .subject = m->s[IN_SUBJECT], .automatic = (m->flags & ROUTER_IN_AUTOMATIC) != 0,
                         .new_contact = new_contact, .new_thread = new_thread};
  if (sq_event_message(st, r, &ev, echo ? "message.out" : "message.in", chname, ch->inbox) < 0) return -EIO;

  int which = router_decide_autoreply(ch, m->flags, new_contact, new_thread, ts);
  if (which == ROUTER_AUTOREPLY_NONE) return 0;
  char via[128];
  if (sq_reply_channel(st, r, chname, NULL, contact, via, sizeof(via)) < 0) {
    if (r->status != -EINVAL) return -EIO;
    /* nowhere to answer (a web form without reply_channel, a contact with no
     * address): the message is stored all the same, without the reply */
    log_msg(LOG_LEVEL_DEBUG, chname, NULL, "no automatic reply: %s", r->err);
    r->status = 0;
    r->err[0] = '\0';
    return 0;
  }
  int64_t reply_id;
  return sq_queue_outbound(st, r, thread, via, 0, router_autoreply_text(ch, which), NULL, NULL,
                           strcmp(via, chname) == 0 ? m->message_id : 0, 1, &reply_id) < 0
             ? -EIO
             : 0;
}

static void sq__inbound_run(store *st, sq_req *r) {
  sq_inbound *m = (sq_inbound *)r;
  m->duplicate = 0;
  m->message_id = 0;
  int rc = sq__route(st, r, m);
  if (rc < 0 && r->status == 0) r->status = rc;
  st->inbound_count++;
}
