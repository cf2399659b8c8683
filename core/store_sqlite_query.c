/* store_sqlite_query.c — configuration, directory and read queries for the
 * REST API: channels, pipelines, users, teams, contacts, conversations,
 * tickets, events, plugin key/value state. Rows are built as JSON by SQLite. */
#include "store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int sq__invalid(sq_req *r, const char *msg, const char *name) {
  r->status = -EINVAL;
  snprintf(r->err, sizeof(r->err), msg, name ? name : "");
  return -EINVAL;
}

static const char *sq__str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int sq__step_done(store *st, sq_req *r, sqlite3_stmt *s, const char *what) {
  if (s == NULL) return sq_fail(st, r, what);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_fail(st, r, what);
}

/* ---- channels ---- */

typedef struct sq_chan_req {
  sq_req base;
  router_channel ch;
  store_json_cb cb;
  void *arg;
  int64_t id;
} sq_chan_req;

static void sq__chan_run(store *st, sq_req *r) {
  sq_chan_req *c = (sq_chan_req *)r;
  json_t *rules = router_channel_to_json(&c->ch);
  char *text = json_dumps(rules, JSON_COMPACT);
  json_decref(rules);
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO channels(name, inbox, rules, created_at) VALUES(?1, ?2, ?3, ?4)"
                                " ON CONFLICT(name) DO UPDATE SET inbox = ?2, rules = ?3 RETURNING id");
  if (s == NULL) {
    free(text);
    sq_fail(st, r, "saving a channel");
    return;
  }
  sq_bind_text(s, 1, c->ch.name);
  sq_bind_text(s, 2, c->ch.inbox);
  sq_bind_text(s, 3, text);
  sqlite3_bind_int64(s, 4, sq_batch_now(st));
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) c->id = sqlite3_column_int64(s, 0), rc = sqlite3_step(s);
  sqlite3_reset(s);
  free(text);
  if (rc != SQLITE_DONE) {
    sq_fail(st, r, "saving a channel");
    return;
  }
  /* The rules table is writer-owned, so replacing an entry here cannot race
   * with a message being routed. A rollback of this request leaves the new
   * rules in memory; that only happens if the batch fails as a whole. */
  router_channel copy;
  if (router_channel_copy(&copy, &c->ch) < 0) {
    r->status = -ENOMEM;
    snprintf(r->err, sizeof(r->err), "out of memory adding channel \"%s\"", c->ch.name);
    return;
  }
  /* Copied, not moved: a batch may run this request twice (see sq__run_batch). */
  size_t i = 0;
  while (i < st->n_channels && strcmp(st->channels[i].name, copy.name) != 0) i++;
  if (i < st->n_channels) {
    router_channel_free(&st->channels[i]);
    st->channels[i] = copy;
  } else {
    router_channel *v = realloc(st->channels, (st->n_channels + 1) * sizeof(*v));
    if (v == NULL) {
      router_channel_free(&copy);
      r->status = -ENOMEM;
      snprintf(r->err, sizeof(r->err), "out of memory adding channel \"%s\"", c->ch.name);
      return;
    }
    st->channels = v;
    st->channels[st->n_channels++] = copy;
  }
  /* Its waiting tickets (from before a restart, or under old rules) are
   * offered again under these rules. */
  sq_drain_queue(st, r);
}

static void sq__chan_done(store *st, sq_req *r) {
  sq_chan_req *c = (sq_chan_req *)r;
  json_t *res = r->status < 0 ? NULL : json_pack("{sI}", "id", (json_int_t)c->id);
  if (c->cb) c->cb(c->arg, r->status, res, r->status < 0 ? r->err : NULL);
  json_decref(res);
  router_channel_free(&c->ch);
  free(c);
}

int store_channel_put(store *st, const router_channel *ch, store_json_cb cb, void *arg) {
  if (st == NULL || ch == NULL || ch->name == NULL) return -EINVAL;
  sq_chan_req *c = calloc(1, sizeof(*c));
  if (c == NULL) return -ENOMEM;
  if (router_channel_copy(&c->ch, ch) < 0) {
    free(c);
    return -ENOMEM;
  }
  c->cb = cb;
  c->arg = arg;
  c->base.run = sq__chan_run;
  c->base.done = sq__chan_done;
  int rc = sq_enqueue(st, &c->base);
  if (rc < 0) {
    router_channel_free(&c->ch);
    free(c);
  }
  return rc;
}

static int sq__channels_list(store *st, sq_req *r, json_t *args, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, "SELECT json_object('id', id, 'name', name, 'inbox', inbox,"
                                " 'status', status, 'rules', json(rules)) FROM channels ORDER BY id");
  return s ? sq_json_rows(st, r, s, "reading rows", result) : sq_fail(st, r, "listing channels");
}

int store_channels_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__channels_list, NULL, cb, arg);
}

static int sq__channel_status(store *st, sq_req *r, json_t *args, json_t **result) {
  const char *status = sq__str(args, "status");
  if (strcmp(status, "on") != 0 && strcmp(status, "off") != 0)
    return sq__invalid(r, "channel status \"%s\" is not on or off", status);
  sqlite3_stmt *s = sq_prep(st, "UPDATE channels SET status = ?2 WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "updating a channel");
  sq_bind_text(s, 1, sq__str(args, "name"));
  sq_bind_text(s, 2, status);
  if (sq__step_done(st, r, s, "updating a channel") < 0) return -EIO;
  if (sqlite3_changes(st->db) == 0) return sq__invalid(r, "channel \"%s\" does not exist", sq__str(args, "name"));
  *result = json_pack("{ss ss}", "name", sq__str(args, "name"), "status", status);
  return 0;
}

int store_channel_set_status(store *st, const char *name, const char *status, store_json_cb cb,
                             void *arg) {
  if (name == NULL || status == NULL) return -EINVAL;
  return sq_submit_json(st, sq__channel_status, json_pack("{ss ss}", "name", name, "status", status), cb, arg);
}

static int sq__channel_delete(store *st, sq_req *r, json_t *args, json_t **result) {
  const char *name = sq__str(args, "name");
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM channels WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "deleting a channel");
  sq_bind_text(s, 1, name);
  if (sq__step_done(st, r, s, "deleting a channel") < 0) return -EIO;
  int found = sqlite3_changes(st->db) > 0;
  for (size_t i = 0; i < st->n_channels; i++) {
    if (strcmp(st->channels[i].name, name) == 0) {
      router_channel_free(&st->channels[i]);
      st->channels[i] = st->channels[--st->n_channels];
      found = 1;
      break;
    }
  }
  if (!found) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "channel \"%s\" does not exist", name);
    return -ENOENT;
  }
  /* Its held replies fail now rather than wait for a channel that will not
   * come back; one in flight fails when its result comes (sq__outbox_result). */
  if (sq_outbox_fail_channel(st, r, name) < 0) return -EIO;
  *result = json_pack("{ss}", "name", name);
  return 0;
}

int store_channel_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__channel_delete, json_pack("{ss}", "name", name), cb, arg);
}

/* ---- users, teams, pipelines ---- */

static int sq__team_id(store *st, sq_req *r, const char *name, int64_t *id) {
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO teams(name) VALUES(?1) ON CONFLICT(name)"
                                " DO UPDATE SET name = name RETURNING id");
  if (s == NULL) return sq_fail(st, r, "saving a team");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0), rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? 0 : sq_fail(st, r, "saving a team");
}

/* The id of an existing team, or 422's -EINVAL naming user and team. */
static int sq__existing_team_id(store *st, sq_req *r, const char *user, const char *name, int64_t *id) {
  sqlite3_stmt *s = sq_prep(st, "SELECT id FROM teams WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "saving a user's teams");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (rc == SQLITE_ROW) return 0;
  if (rc != SQLITE_DONE) return sq_fail(st, r, "saving a user's teams");
  r->status = -EINVAL;
  snprintf(r->err, sizeof(r->err), "user \"%s\": team \"%s\" does not exist", user, name);
  return -EINVAL;
}

/* Creates or updates user u. Its teams are created as named when
 * create_teams is set (the config's users), and must exist otherwise (the
 * API's, as a team's users must). */
static int sq__user_upsert(store *st, sq_req *r, json_t *u, int create_teams, int64_t *out_id) {
  const char *name = sq__str(u, "name");
  if (name == NULL) return sq__invalid(r, "a user needs a name%s", "");
  json_t *skills = json_object_get(u, "skills");
  char *skills_text = skills ? json_dumps(skills, JSON_COMPACT) : NULL;
  /* email and avatar_url: an absent key (?9, ?8 = 0) keeps the stored one, null clears it. */
  sqlite3_stmt *s = sq_prep(st,
      "INSERT INTO users(name, email, seat, available, skills, capacity, avatar_url)"
      " VALUES(?1, ?2, coalesce(?3, 1), coalesce(?4, 1), coalesce(?5, '[]'), coalesce(?6, 0), ?7)"
      " ON CONFLICT(name) DO UPDATE SET email = CASE WHEN ?9 THEN ?2 ELSE email END, seat = coalesce(?3, seat),"
      " available = coalesce(?4, available), skills = coalesce(?5, skills),"
      " capacity = coalesce(?6, capacity), avatar_url = CASE WHEN ?8 THEN ?7 ELSE avatar_url END"
      " RETURNING id");
  if (s == NULL) {
    free(skills_text);
    return sq_fail(st, r, "saving a user");
  }
  sq_bind_text(s, 1, name);
  sq_bind_text(s, 2, sq__str(u, "email"));
  json_t *v;
  if (json_is_boolean(v = json_object_get(u, "seat"))) sqlite3_bind_int(s, 3, json_is_true(v));
  if (json_is_boolean(v = json_object_get(u, "available"))) sqlite3_bind_int(s, 4, json_is_true(v));
  sq_bind_text(s, 5, skills_text);
  if (json_is_integer(v = json_object_get(u, "capacity"))) sqlite3_bind_int64(s, 6, json_integer_value(v));
  sq_bind_text(s, 7, sq__str(u, "avatar_url"));
  sqlite3_bind_int(s, 8, json_object_get(u, "avatar_url") != NULL);
  sqlite3_bind_int(s, 9, json_object_get(u, "email") != NULL);
  int64_t id = 0;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) id = sqlite3_column_int64(s, 0), rc = sqlite3_step(s);
  sqlite3_reset(s);
  free(skills_text);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "saving a user");
  json_t *teams = json_object_get(u, "teams");
  if (json_is_array(teams)) {
    s = sq_prep(st, "DELETE FROM team_members WHERE user_id = ?1");
    if (s == NULL) return sq_fail(st, r, "saving a user's teams");
    sqlite3_bind_int64(s, 1, id);
    if (sq__step_done(st, r, s, "saving a user's teams") < 0) return -EIO;
    size_t i;
    json_array_foreach(teams, i, v) {
      int64_t team;
      int trc = create_teams ? sq__team_id(st, r, json_string_value(v), &team)
                             : sq__existing_team_id(st, r, name, json_string_value(v), &team);
      if (trc < 0) return trc;
      s = sq_prep(st, "INSERT OR IGNORE INTO team_members(team_id, user_id) VALUES(?1, ?2)");
      if (s == NULL) return sq_fail(st, r, "saving a user's teams");
      sqlite3_bind_int64(s, 1, team);
      sqlite3_bind_int64(s, 2, id);
      if (sq__step_done(st, r, s, "saving a user's teams") < 0) return -EIO;
    }
  }
  *out_id = id;
  return 0;
}

/* Saves team t with its members. A member who is no user is refused
 * (-EINVAL naming them), or with lenient (the config's teams, seeded
 * whole) left out with a warning, so one stale name does not keep the
 * config's pipelines, users and teams from the store. */
static int sq__team_upsert(store *st, sq_req *r, json_t *t, int lenient, int64_t *out_id) {
  const char *name = sq__str(t, "name");
  if (name == NULL) return sq__invalid(r, "a team needs a name%s", "");
  int64_t id;
  if (sq__team_id(st, r, name, &id) < 0) return -EIO;
  json_t *users = json_object_get(t, "users");
  if (json_is_array(users)) {
    sqlite3_stmt *s = sq_prep(st, "DELETE FROM team_members WHERE team_id = ?1");
    if (s == NULL) return sq_fail(st, r, "saving a team");
    sqlite3_bind_int64(s, 1, id);
    if (sq__step_done(st, r, s, "saving a team") < 0) return -EIO;
    size_t i;
    json_t *v;
    json_array_foreach(users, i, v) {
      s = sq_prep(st, "SELECT 1 FROM users WHERE name = ?1");
      if (s == NULL) return sq_fail(st, r, "saving a team");
      sq_bind_text(s, 1, json_string_value(v));
      int known = sqlite3_step(s) == SQLITE_ROW;
      sqlite3_reset(s);
      if (!known && lenient) {
        log_warn("config team \"%s\": user \"%s\" does not exist; left out of the team", name,
                 json_string_value(v) ? json_string_value(v) : "?");
        continue;
      }
      if (!known) {
        r->status = -EINVAL;
        snprintf(r->err, sizeof(r->err), "team \"%s\": user \"%s\" does not exist", name,
                 json_string_value(v) ? json_string_value(v) : "?");
        return -EINVAL;
      }
      s = sq_prep(st, "INSERT OR IGNORE INTO team_members(team_id, user_id)"
                      " SELECT ?1, id FROM users WHERE name = ?2");
      if (s == NULL) return sq_fail(st, r, "saving a team");
      sqlite3_bind_int64(s, 1, id);
      sq_bind_text(s, 2, json_string_value(v));
      if (sq__step_done(st, r, s, "saving a team") < 0) return -EIO;
    }
  }
  *out_id = id;
  return 0;
}

#define SQ_USER_JSON                                                                       \
  "SELECT json_object('id', u.id, 'name', u.name, 'email', u.email, 'avatar_url', u.avatar_url," \
  " 'seat', json(CASE WHEN" \
  " u.seat THEN 'true' ELSE 'false' END), 'available', json(CASE WHEN u.available THEN"     \
  " 'true' ELSE 'false' END), 'skills', json(u.skills), 'capacity', u.capacity,"            \
  " 'open_tickets', (SELECT count(*) FROM tickets t WHERE t.owner_id = u.id AND t.closed = 0)," \
  " 'teams', (SELECT json_group_array(te.name) FROM team_members m JOIN teams te"            \
  " ON te.id = m.team_id WHERE m.user_id = u.id)) FROM users u "

static int sq__user_json(store *st, sq_req *r, int64_t id, json_t **out) {
  sqlite3_stmt *s = sq_prep(st, SQ_USER_JSON "WHERE u.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a user");
  sqlite3_bind_int64(s, 1, id);
  json_t *rows = NULL;
  if (sq_json_rows(st, r, s, "reading rows", &rows) < 0) return -EIO;
  *out = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  return 0;
}

static int sq__users_list(store *st, sq_req *r, json_t *args, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_USER_JSON "ORDER BY u.id");
  return s ? sq_json_rows(st, r, s, "reading rows", result) : sq_fail(st, r, "listing users");
}

int store_users_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__users_list, NULL, cb, arg);
}

/* Refuses a write of the user or team named name by what it must find (a
 * STORE_UPSERT_ value): -EEXIST or -ENOENT with a sentence, else 0. */
static int sq__upsert_must(store *st, sq_req *r, int team, const char *name, int must) {
  if (must == STORE_UPSERT_ANY || name == NULL) return 0;
  sqlite3_stmt *s = team ? sq_prep(st, "SELECT 1 FROM teams WHERE name = ?1")
                         : sq_prep(st, "SELECT 1 FROM users WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a name");
  sq_bind_text(s, 1, name);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(st, r, "reading a name");
  const char *what = team ? "team" : "user";
  if (must == STORE_UPSERT_NEW && rc == SQLITE_ROW) {
    r->status = -EEXIST;
    snprintf(r->err, sizeof(r->err), "a %s named \"%.64s\" already exists; PATCH it instead", what, name);
  } else if (must == STORE_UPSERT_EXISTING && rc == SQLITE_DONE) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "%s \"%.64s\" does not exist", what, name);
  }
  return r->status;
}

static int sq__user_put(store *st, sq_req *r, json_t *args, json_t **result) {
  int64_t id;
  json_t *user = json_object_get(args, "user");
  if (sq__upsert_must(st, r, 0, sq__str(user, "name"), (int)json_integer_value(json_object_get(args, "must"))) < 0 ||
      sq__user_upsert(st, r, user, 0, &id) < 0)
    return r->status;
  /* Availability, a seat or capacity may have changed: give waiting tickets a chance. */
  if (sq_drain_queue(st, r) < 0 || sq__user_json(st, r, id, result) < 0) return -EIO;
  return sq_event(st, r, "user.updated", NULL, NULL, json_incref(*result));
}

int store_user_upsert(store *st, const json_t *user, int must, store_json_cb cb, void *arg) {
  if (!json_is_object(user)) return -EINVAL;
  return sq_submit_json(st, sq__user_put, json_pack("{so sI}", "user", json_deep_copy(user), "must", (json_int_t)must),
                        cb, arg);
}

static int sq__user_delete(store *st, sq_req *r, json_t *args, json_t **result) {
  const char *name = sq__str(args, "name");
  sqlite3_stmt *s = sq_prep(st, "SELECT id FROM users WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a user");
  sq_bind_text(s, 1, name);
  int64_t id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (id == 0) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "user \"%s\" does not exist", name);
    return -ENOENT;
  }
  static const char *const steps[] = {
      "DELETE FROM team_members WHERE user_id = ?1",
      "UPDATE contacts SET owner_id = NULL WHERE owner_id = ?1",
      "UPDATE threads SET assignee_id = NULL WHERE assignee_id = ?1",
      "UPDATE tickets SET owner_id = NULL, queued = 1 WHERE owner_id = ?1 AND closed = 0",
      "UPDATE tickets SET owner_id = NULL WHERE owner_id = ?1",
      /* A token acting for someone who is gone would act for nobody, or, once
       * the id is reused, for the next user: revoke it. */
      "DELETE FROM tokens WHERE user_id = ?1",
      /* Ids can be reused: the replies and notes keep their author's name,
       * not the id a later user may get. */
      "UPDATE messages SET author = (SELECT name FROM users WHERE id = ?1), user_id = NULL WHERE user_id = ?1",
      "UPDATE notes SET author = (SELECT name FROM users WHERE id = ?1), user_id = NULL WHERE user_id = ?1",
      "DELETE FROM users WHERE id = ?1",
  };
  /* The open tickets about to lose their owner, for their events. */
  s = sq_prep(st, "SELECT json_object('id', id, 'thread', thread_id, 'channel', channel) FROM tickets"
                  " WHERE owner_id = ?1 AND closed = 0 ORDER BY id");
  if (s == NULL) return sq_fail(st, r, "deleting a user");
  sqlite3_bind_int64(s, 1, id);
  json_t *freed = NULL;
  if (sq_json_rows(st, r, s, "deleting a user", &freed) < 0) return -EIO;
  int64_t requeued = 0, revoked = 0;
  int rc = 0;
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    s = sq_prep(st, steps[i]);
    if (s == NULL) {
      rc = sq_fail(st, r, "deleting a user");
      break;
    }
    sqlite3_bind_int64(s, 1, id);
    if ((rc = sq__step_done(st, r, s, "deleting a user")) < 0) break;
    if (i == 3) requeued = sqlite3_changes(st->db);
    if (i == 5) revoked = sqlite3_changes(st->db);
  }
  /* Each freed ticket is unassigned and waits, as the events say; then it
   * goes to whoever its channel's rules pick now (ticket.assigned again). */
  size_t k;
  json_t *t;
  json_array_foreach(freed, k, t) {
    if (rc < 0) break;
    const char *channel = json_string_value(json_object_get(t, "channel"));
    int64_t tid = json_integer_value(json_object_get(t, "id")), thread = json_integer_value(json_object_get(t, "thread"));
    rc = sq_event_ticket_assigned(st, r, channel, tid, thread, 0);
    if (rc == 0) rc = sq_event_ticket_queued(st, r, channel, tid, thread);
  }
  json_decref(freed);
  if (rc < 0 || sq_drain_queue(st, r) < 0) return -EIO;
  *result = json_pack("{ss sI sI}", "name", name, "requeued", (json_int_t)requeued, "tokens_revoked",
                      (json_int_t)revoked);
  return sq_event(st, r, "user.deleted", NULL, NULL, json_pack("{sI ss}", "user_id", (json_int_t)id, "name", name));
}

int store_user_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__user_delete, json_pack("{ss}", "name", name), cb, arg);
}

/* After a change that ran with result rc (0: done), user.updated for each
 * user now listed who is new or not as in before (store_users_list's rows,
 * taken before the change; consumed): what the config's users and teams, or
 * a team's write, changed. Returns rc, or -EIO. */
static int sq__users_announce(store *st, sq_req *r, json_t *before, int rc) {
  json_t *after = NULL;
  if (rc == 0 && sq__users_list(st, r, NULL, &after) < 0) rc = -EIO;
  size_t i, j;
  json_t *u, *v;
  json_array_foreach(after, i, u) {
    if (rc < 0) break;
    int same = 0;
    json_array_foreach(before, j, v) {
      if (json_integer_value(json_object_get(v, "id")) != json_integer_value(json_object_get(u, "id"))) continue;
      same = json_equal(u, v);
      break;
    }
    if (!same && sq_event(st, r, "user.updated", NULL, NULL, json_incref(u)) < 0) rc = -EIO;
  }
  json_decref(before);
  json_decref(after);
  return rc;
}

static int sq__team_remove(store *st, sq_req *r, const char *name) {
  sqlite3_stmt *s = sq_prep(st, "DELETE FROM team_members WHERE team_id = (SELECT id FROM teams WHERE name = ?1)");
  if (s == NULL) return sq_fail(st, r, "deleting a team");
  sq_bind_text(s, 1, name);
  if (sq__step_done(st, r, s, "deleting a team") < 0) return -EIO;
  s = sq_prep(st, "DELETE FROM teams WHERE name = ?1");
  if (s == NULL) return sq_fail(st, r, "deleting a team");
  sq_bind_text(s, 1, name);
  if (sq__step_done(st, r, s, "deleting a team") < 0) return -EIO;
  if (sqlite3_changes(st->db) == 0) {
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "team \"%s\" does not exist", name);
    return -ENOENT;
  }
  return 0;
}

static int sq__team_delete(store *st, sq_req *r, json_t *args, json_t **result) {
  const char *name = sq__str(args, "name");
  json_t *before = NULL; /* its members' teams change: user.updated */
  if (sq__users_list(st, r, NULL, &before) < 0) return -EIO;
  int rc = sq__users_announce(st, r, before, sq__team_remove(st, r, name));
  if (rc < 0) return rc;
  *result = json_pack("{ss}", "name", name);
  return 0;
}

int store_team_delete(store *st, const char *name, store_json_cb cb, void *arg) {
  if (name == NULL) return -EINVAL;
  return sq_submit_json(st, sq__team_delete, json_pack("{ss}", "name", name), cb, arg);
}

#define SQ_TEAM_JSON                                                                      \
  "SELECT json_object('id', te.id, 'name', te.name, 'users', (SELECT json_group_array(u.name)" \
  " FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = te.id))"         \
  " FROM teams te "

static int sq__teams_list(store *st, sq_req *r, json_t *args, json_t **result) {
  sqlite3_stmt *s = sq_prep(st, SQ_TEAM_JSON "ORDER BY te.id");
  return s ? sq_json_rows(st, r, s, "reading rows", result) : sq_fail(st, r, "listing teams");
}

int store_teams_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__teams_list, NULL, cb, arg);
}

static int sq__team_put(store *st, sq_req *r, json_t *args, json_t **result) {
  int64_t id;
  json_t *team = json_object_get(args, "team"), *before = NULL;
  if (sq__upsert_must(st, r, 1, sq__str(team, "name"), (int)json_integer_value(json_object_get(args, "must"))) < 0)
    return r->status;
  /* the members it gains or loses have other teams now: user.updated */
  if (sq__users_list(st, r, NULL, &before) < 0) return -EIO;
  int rc = sq__users_announce(st, r, before, sq__team_upsert(st, r, team, 0, &id) < 0 ? r->status : 0);
  if (rc < 0) return rc;
  if (sq_drain_queue(st, r) < 0) return -EIO;
  sqlite3_stmt *s = sq_prep(st, SQ_TEAM_JSON "WHERE te.id = ?1");
  if (s == NULL) return sq_fail(st, r, "reading a team");
  sqlite3_bind_int64(s, 1, id);
  json_t *rows;
  if (sq_json_rows(st, r, s, "reading rows", &rows) < 0) return -EIO;
  *result = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  return 0;
}

int store_team_upsert(store *st, const json_t *team, int must, store_json_cb cb, void *arg) {
  if (!json_is_object(team)) return -EINVAL;
  return sq_submit_json(st, sq__team_put, json_pack("{so sI}", "team", json_deep_copy(team), "must", (json_int_t)must),
                        cb, arg);
}

static int sq__pipeline_upsert(store *st, sq_req *r, json_t *p) {
  sq_ticket_starts_clear(st);
  sqlite3_stmt *s = sq_prep(st, "INSERT INTO pipelines(name) VALUES(?1) ON CONFLICT(name)"
                                " DO UPDATE SET name = name RETURNING id");
  if (s == NULL) return sq_fail(st, r, "saving a pipeline");
  sq_bind_text(s, 1, sq__str(p, "name"));
  int64_t id = 0;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) id = sqlite3_column_int64(s, 0), rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "saving a pipeline");
  size_t i;
  json_t *status;
  json_array_foreach(json_object_get(p, "statuses"), i, status) {
    json_t *req = json_object_get(status, "required_properties");
    char *req_text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    s = sq_prep(st, "INSERT INTO statuses(pipeline_id, name, position, closed, required)"
                    " VALUES(?1, ?2, ?3, ?4, coalesce(?5, '[]')) ON CONFLICT(pipeline_id, name)"
                    " DO UPDATE SET position = ?3, closed = ?4, required = coalesce(?5, '[]')");
    if (s == NULL) {
      free(req_text);
      return sq_fail(st, r, "saving a pipeline status");
    }
    sqlite3_bind_int64(s, 1, id);
    sq_bind_text(s, 2, sq__str(status, "name"));
    sqlite3_bind_int64(s, 3, (int64_t)i);
    sqlite3_bind_int(s, 4, json_is_true(json_object_get(status, "closed")));
    sq_bind_text(s, 5, req_text);
    rc = sq__step_done(st, r, s, "saving a pipeline status");
    free(req_text);
    if (rc < 0) return rc;
  }
  /* the statuses the config no longer lists are retired (schema 26) */
  json_t *names = json_array();
  json_array_foreach(json_object_get(p, "statuses"), i, status) json_array_append(names, json_object_get(status, "name"));
  char *names_text = json_dumps(names, JSON_COMPACT);
  json_decref(names);
  s = sq_prep(st, "UPDATE statuses SET retired = (name NOT IN (SELECT value FROM json_each(?2)))"
                  " WHERE pipeline_id = ?1 AND retired IS NOT (name NOT IN (SELECT value FROM json_each(?2)))");
  if (s == NULL || names_text == NULL) {
    free(names_text);
    return s == NULL ? sq_fail(st, r, "retiring pipeline statuses") : -ENOMEM;
  }
  sqlite3_bind_int64(s, 1, id);
  sq_bind_text(s, 2, names_text);
  rc = sq__step_done(st, r, s, "retiring pipeline statuses");
  free(names_text);
  return rc;
}

static int sq__seed(store *st, sq_req *r, json_t *cfg, json_t **result) {
  char err[256];
  if (router_seed_validate(cfg, err, sizeof(err)) < 0) return sq__invalid(r, "%s", err);
  size_t i;
  json_t *o, *before = NULL;
  int64_t id;
  json_array_foreach(json_object_get(cfg, "pipelines"), i, o) if (sq__pipeline_upsert(st, r, o) < 0) return -EIO;
  if (sq__users_list(st, r, NULL, &before) < 0) return -EIO;
  int rc = 0;
  json_array_foreach(json_object_get(cfg, "users"), i, o) if (rc == 0) rc = sq__user_upsert(st, r, o, 1, &id);
  json_array_foreach(json_object_get(cfg, "teams"), i, o) if (rc == 0) rc = sq__team_upsert(st, r, o, 1, &id);
  if (sq__users_announce(st, r, before, rc) < 0) return r->status < 0 ? r->status : -EIO;
  if (sq_drain_queue(st, r) < 0) return -EIO;
  *result = json_pack("{sI sI sI}", "pipelines", (json_int_t)json_array_size(json_object_get(cfg, "pipelines")),
                      "users", (json_int_t)json_array_size(json_object_get(cfg, "users")),
                      "teams", (json_int_t)json_array_size(json_object_get(cfg, "teams")));
  return 0;
}

int store_seed(store *st, const json_t *config, store_json_cb cb, void *arg) {
  if (!json_is_object(config)) return -EINVAL;
  return sq_submit_json(st, sq__seed, json_deep_copy(config), cb, arg);
}

static int sq__pipelines_list(store *st, sq_req *r, json_t *args, json_t **result) {
  sqlite3_stmt *s = sq_prep(st,
      "SELECT json_object('id', p.id, 'name', p.name, 'statuses', (SELECT json_group_array("
      " json_object('name', s.name, 'closed', json(CASE WHEN s.closed THEN 'true' ELSE 'false' END),"
      " 'required_properties', json(s.required))) FROM (SELECT * FROM statuses"
      " WHERE pipeline_id = p.id AND NOT retired ORDER BY position) s)) FROM pipelines p ORDER BY p.id");
  return s ? sq_json_rows(st, r, s, "reading rows", result) : sq_fail(st, r, "listing pipelines");
}

int store_pipelines_list(store *st, store_json_cb cb, void *arg) {
  return sq_submit_json(st, sq__pipelines_list, NULL, cb, arg);
}
