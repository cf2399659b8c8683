/* store_sqlite.c — the SQLite store: open, migrations, writer thread, group commit. */
#include "store_sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Migration N brings the schema from version N-1 to N. Only ever append. */
static const char *const sq__migrations[] = {
    NULL,
    /* 1: the initial model */
    "CREATE TABLE channels(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, inbox TEXT,"
    "  status TEXT NOT NULL DEFAULT 'on', rules TEXT, created_at INTEGER);"
    "CREATE TABLE contacts(id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT,"
    "  avatar_url TEXT, owner_id INTEGER, created_at INTEGER);"
    "CREATE TABLE identities(channel TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,"
    "  contact_id INTEGER NOT NULL, PRIMARY KEY(channel, kind, value)) WITHOUT ROWID;"
    "CREATE INDEX identities_contact ON identities(contact_id);"
    "CREATE TABLE threads(id INTEGER PRIMARY KEY, channel TEXT NOT NULL, inbox TEXT,"
    "  contact_id INTEGER NOT NULL, external_id TEXT, status TEXT NOT NULL DEFAULT 'open',"
    "  assignee_id INTEGER, ticket_id INTEGER, created_at INTEGER);"
    "CREATE INDEX threads_external ON threads(channel, external_id) WHERE external_id IS NOT NULL;"
    "CREATE INDEX threads_contact ON threads(contact_id, channel);"
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, thread_id INTEGER NOT NULL,"
    "  channel TEXT NOT NULL, direction TEXT NOT NULL, external_id TEXT, reply_to INTEGER,"
    "  contact_id INTEGER, user_id INTEGER, text TEXT, html TEXT, subject TEXT,"
    "  attachments TEXT, status TEXT NOT NULL, error TEXT, automatic INTEGER NOT NULL DEFAULT 0,"
    "  flags INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX messages_external ON messages(channel, external_id)"
    "  WHERE external_id IS NOT NULL;"
    "CREATE INDEX messages_thread ON messages(thread_id, id);"
    "CREATE TABLE pipelines(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE statuses(id INTEGER PRIMARY KEY, pipeline_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL, position INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0,"
    "  required TEXT NOT NULL DEFAULT '[]', UNIQUE(pipeline_id, name));"
    "CREATE TABLE tickets(id INTEGER PRIMARY KEY, thread_id INTEGER NOT NULL,"
    "  channel TEXT NOT NULL, pipeline_id INTEGER NOT NULL, status TEXT NOT NULL,"
    "  closed INTEGER NOT NULL DEFAULT 0, priority TEXT, owner_id INTEGER, name TEXT,"
    "  properties TEXT NOT NULL DEFAULT '{}', queued INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER, updated_at INTEGER);"
    "CREATE INDEX tickets_owner_open ON tickets(owner_id) WHERE closed = 0;"
    "CREATE INDEX tickets_queued ON tickets(id) WHERE queued = 1;"
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, email TEXT,"
    "  seat INTEGER NOT NULL DEFAULT 1, available INTEGER NOT NULL DEFAULT 1,"
    "  skills TEXT NOT NULL DEFAULT '[]', capacity INTEGER NOT NULL DEFAULT 0,"
    "  last_assigned INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE teams(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE team_members(team_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
    "  PRIMARY KEY(team_id, user_id)) WITHOUT ROWID;"
    "CREATE TABLE outbox(id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL UNIQUE,"
    "  channel TEXT NOT NULL, idempotency_key TEXT NOT NULL, state TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, last_error TEXT);"
    "CREATE INDEX outbox_due ON outbox(state, next_at);"
    /* No AUTOINCREMENT (it costs a write per event): ids are max+1, so they
     * only increase as long as pruning never deletes the newest event. */
    "CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    "  channel TEXT, inbox TEXT, data TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE kv(channel TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
    "  PRIMARY KEY(channel, key)) WITHOUT ROWID;"
    "INSERT INTO pipelines(name) VALUES('Support');"
    "INSERT INTO statuses(pipeline_id, name, position, closed) VALUES"
    "  (1, 'New', 0, 0), (1, 'Waiting on contact', 1, 0), (1, 'Waiting on us', 2, 0),"
    "  (1, 'Closed', 3, 1);",
    /* 2: API bearer tokens (hashed) and channels connected through the API
     * (credentials sealed by the caller; the store never sees them in clear) */
    "CREATE TABLE tokens(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,"
    "  hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);"
    "CREATE TABLE api_channels(name TEXT PRIMARY KEY, spec TEXT NOT NULL, sealed TEXT,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;",
    /* 3: a reply may be a message template ({name, language, parameters}),
     * handed to the channel's plugin as sb_outbound_message.template_json */
    "ALTER TABLE messages ADD COLUMN template TEXT;",
    /* 4: a token may belong to a user, who then authors the replies made
     * with it; a user may have an avatar (handed to the outbox with the
     * reply). Deleting a user deletes their tokens and takes their name off
     * their replies (store_user_delete), hence the two indexes. */
    "ALTER TABLE tokens ADD COLUMN user_id INTEGER;"
    "CREATE INDEX tokens_user ON tokens(user_id) WHERE user_id IS NOT NULL;"
    "CREATE INDEX messages_user ON messages(user_id) WHERE user_id IS NOT NULL;"
    "ALTER TABLE users ADD COLUMN avatar_url TEXT;",
    /* 5: inbound attachment content, written in its message's transaction
     * (why in rows, not files: store_sqlite_attach.c). The message's
     * attachments JSON names each stored entry by id; rows go with their
     * message when it is deleted. */
    "CREATE TABLE attachments(id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,"
    "  position INTEGER NOT NULL, mime_type TEXT, filename TEXT, size INTEGER NOT NULL,"
    "  data BLOB NOT NULL, created_at INTEGER NOT NULL, UNIQUE(message_id, position));"
    "CREATE TRIGGER attachments_follow_messages AFTER DELETE ON messages BEGIN"
    "  DELETE FROM attachments WHERE message_id = OLD.id; END;",
    /* 6: what a plugin says about an inbound message (sb_inbound_message.
     * metadata_json: a postback payload, why media was not downloaded) */
    "ALTER TABLE messages ADD COLUMN metadata TEXT;",
    /* 7: the duplicate check's index leads with the external id: every
     * inbound message seeks it, and with the channel first each key
     * comparison first compared equal channel names. Same rows, same
     * uniqueness; rebuilt once on upgrade. */
    "DROP INDEX messages_external;"
    "CREATE UNIQUE INDEX messages_external ON messages(external_id, channel)"
    "  WHERE external_id IS NOT NULL;",
    /* 8: a message is its own event. Message and event ids are drawn from
     * one sequence (sq_next_id), and a message.in / message.out event is
     * not written to events: it is the message row, read back as an event
     * by store_events_after. Messages stored before this version have their
     * event rows; message_events_from is where reading messages as events
     * starts, above every id used so far in either table. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES('message_events_from',"
    "  1 + max(coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT max(id) FROM messages), 0)));",
    /* 9: a thread's messages by (thread_id) alone: every index ends with
     * the rowid, so the order by id is the same, and every message insert
     * writes a shorter key. Rebuilt once on upgrade. */
    "DROP INDEX messages_thread;"
    "CREATE INDEX messages_thread ON messages(thread_id);",
    /* 10: a thread's messages are a chain instead of an index: each message
     * names the thread's message before it (prev_id) and the thread its
     * newest (last_message_id), with what replies and the outbox read of
     * its inbound side kept beside it (last_in_id, last_in_at: the latest
     * inbound timestamp, last_subject: the newest inbound subject). The
     * index wrote a page per distinct busy thread in every commit (each
     * thread's entries end in a leaf of their own); the thread rows of the
     * busy threads share a few pages. Why, and what reads the chain:
     * docs/storage.md. Filled once from the index, which then goes. */
    "ALTER TABLE messages ADD COLUMN prev_id INTEGER;"
    "ALTER TABLE threads ADD COLUMN last_message_id INTEGER;"
    "ALTER TABLE threads ADD COLUMN last_in_id INTEGER;"
    "ALTER TABLE threads ADD COLUMN last_in_at INTEGER;"
    "ALTER TABLE threads ADD COLUMN last_subject TEXT;"
    "UPDATE messages SET prev_id = (SELECT max(p.id) FROM messages p"
    "  WHERE p.thread_id = messages.thread_id AND p.id < messages.id);"
    "UPDATE threads SET last_message_id = (SELECT max(id) FROM messages WHERE thread_id = threads.id),"
    "  last_in_id = (SELECT max(id) FROM messages WHERE thread_id = threads.id AND direction = 'in'),"
    "  last_in_at = (SELECT max(created_at) FROM messages"
    "    WHERE thread_id = threads.id AND direction = 'in'),"
    "  last_subject = (SELECT subject FROM messages WHERE thread_id = threads.id"
    "    AND direction = 'in' AND subject IS NOT NULL ORDER BY id DESC LIMIT 1);"
    "DROP INDEX messages_thread;",
    /* 11: the identity (kind, value) a conversation came in from, so that
     * replies go back to that address after its contact was merged with
     * another of the same channel (older threads: the contact's first). */
    "ALTER TABLE threads ADD COLUMN identity_kind TEXT;"
    "ALTER TABLE threads ADD COLUMN identity_value TEXT;",
    /* 12: the audit log: who changed what over the API (and the CLI), with
     * the token's and user's names as they were then. */
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, token TEXT, role TEXT, user TEXT,"
    "  method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, detail TEXT);",
    /* 13: the search index of message text and subject (store_sqlite_index.c),
     * filled lazily by the writer up to a watermark (meta search_indexed:
     * the highest message id indexed); messages above it are scanned. Only
     * creates the empty index, so a large database migrates at once.
     * Contentless (content=''): the index keeps no second copy of the text,
     * and rows are removed with the 'delete' command, which needs the values
     * indexed — messages' text and subject never change, and the delete of
     * a channel's history supplies them. It indexes the text folded by
     * sb_fold (the search's own case folding), so a candidate set is never
     * narrower than what sb_contains accepts; detail=none and columnsize=0:
     * no positions or sizes (about the text's own size instead of 2.7
     * times), as every candidate is checked by sb_contains anyway. */
    "CREATE VIRTUAL TABLE search_index USING fts5(text, subject, content='', columnsize=0, detail=none,"
    "  tokenize='trigram case_sensitive 1');"
    "INSERT INTO meta(key, value) VALUES('search_indexed', 0);",
    /* 14: agents' internal notes on a conversation. A table of their own, not
     * messages: nothing that reads a conversation's messages for a channel
     * (a plugin's history, the outbox, reply defaults) can hand a note to a
     * customer. Ids come from the message sequence, so notes and messages
     * order by id. */
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, thread_id INTEGER NOT NULL, user_id INTEGER,"
    "  text TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE INDEX notes_thread ON notes(thread_id);",
    /* 15: canned responses (saved replies) agents insert by name. */
    "CREATE TABLE canned(name TEXT PRIMARY KEY, text TEXT NOT NULL, updated_by TEXT, updated_at INTEGER NOT NULL)"
    "  WITHOUT ROWID;",
    /* 16: outgoing webhooks (core/webhooks.c): where each posts the events it
     * wants, its signing secret sealed as channel credentials are, the last
     * event it delivered (cursor) and how its last attempts went. */
    "CREATE TABLE webhooks(id INTEGER PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, channel TEXT,"
    "  inbox TEXT, description TEXT, secret TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1,"
    "  cursor INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_status INTEGER,"
    "  last_error TEXT, last_attempt_at INTEGER, last_success_at INTEGER, created_at INTEGER NOT NULL);",
    /* 17: when a conversation was closed (threads.closed_at), set whenever
     * it or its ticket closes and cleared when it reopens, for reports
     * (store_sqlite_report.c). One closed before this version gets a
     * guess: its ticket's last change, else its last message, never before
     * it was created. The report's ranges read conversations by creation and
     * by closing; messages it finds by id, which grows with their time (an
     * index of message times would cost every inbound insert). */
    "ALTER TABLE threads ADD COLUMN closed_at INTEGER;"
    "UPDATE threads SET closed_at = max(coalesce(created_at, 0), coalesce("
    "  (SELECT updated_at FROM tickets WHERE id = threads.ticket_id),"
    "  (SELECT created_at FROM messages WHERE id = threads.last_message_id), created_at, 0))"
    "  WHERE status = 'closed';"
    "CREATE INDEX threads_created ON threads(created_at);"
    "CREATE INDEX threads_closed ON threads(closed_at) WHERE closed_at IS NOT NULL;",
    /* 18: labels agents put on conversations, from a set operators keep. A
     * name is unique without regard to case in any script: folded is the
     * name as sb_fold folds it (the search's case folding), written with
     * the name, and is what is unique and what every lookup compares.
     * thread_labels is read by conversation (its key) and by label (the
     * list's ?label= filter, a label's count, its delete). */
    "CREATE TABLE labels(id INTEGER PRIMARY KEY, name TEXT NOT NULL, folded TEXT NOT NULL UNIQUE, color TEXT,"
    "  description TEXT, created_at INTEGER NOT NULL);"
    "CREATE TABLE thread_labels(thread_id INTEGER NOT NULL, label_id INTEGER NOT NULL,"
    "  PRIMARY KEY(thread_id, label_id)) WITHOUT ROWID;"
    "CREATE INDEX thread_labels_label ON thread_labels(label_id, thread_id);",
    /* 19: the name of a reply's or note's author, kept when the user is
     * deleted (user_id is then cleared: ids can be reused). NULL while the
     * author is a user, so a message costs nothing more. */
    "ALTER TABLE messages ADD COLUMN author TEXT;"
    "ALTER TABLE notes ADD COLUMN author TEXT;",
    /* 20: conversations, tickets, contacts and users never get a deleted
     * one's id again (AUTOINCREMENT): SQLite otherwise gives the largest id
     * there was, once deleted (a channel's history, a merged contact, a
     * user), to the next row, and links, events and webhook receivers that
     * know the old one would name another customer's conversation. Each
     * table is rebuilt (SQLite cannot add the keyword), its rows and
     * indexes as they were. */
    "CREATE TABLE threads_new(id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, inbox TEXT,"
    "  contact_id INTEGER NOT NULL, external_id TEXT, status TEXT NOT NULL DEFAULT 'open',"
    "  assignee_id INTEGER, ticket_id INTEGER, created_at INTEGER, last_message_id INTEGER, last_in_id INTEGER,"
    "  last_in_at INTEGER, last_subject TEXT, identity_kind TEXT, identity_value TEXT, closed_at INTEGER);"
    "INSERT INTO threads_new SELECT id, channel, inbox, contact_id, external_id, status, assignee_id, ticket_id,"
    "  created_at, last_message_id, last_in_id, last_in_at, last_subject, identity_kind, identity_value, closed_at"
    "  FROM threads;"
    "DROP TABLE threads;"
    "ALTER TABLE threads_new RENAME TO threads;"
    "CREATE INDEX threads_external ON threads(channel, external_id) WHERE external_id IS NOT NULL;"
    "CREATE INDEX threads_contact ON threads(contact_id, channel);"
    "CREATE INDEX threads_created ON threads(created_at);"
    "CREATE INDEX threads_closed ON threads(closed_at) WHERE closed_at IS NOT NULL;"
    "CREATE TABLE tickets_new(id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id INTEGER NOT NULL,"
    "  channel TEXT NOT NULL, pipeline_id INTEGER NOT NULL, status TEXT NOT NULL,"
    "  closed INTEGER NOT NULL DEFAULT 0, priority TEXT, owner_id INTEGER, name TEXT,"
    "  properties TEXT NOT NULL DEFAULT '{}', queued INTEGER NOT NULL DEFAULT 0, created_at INTEGER, updated_at INTEGER);"
    "INSERT INTO tickets_new SELECT id, thread_id, channel, pipeline_id, status, closed, priority, owner_id, name,"
    "  properties, queued, created_at, updated_at FROM tickets;"
    "DROP TABLE tickets;"
    "ALTER TABLE tickets_new RENAME TO tickets;"
    "CREATE INDEX tickets_owner_open ON tickets(owner_id) WHERE closed = 0;"
    "CREATE INDEX tickets_queued ON tickets(id) WHERE queued = 1;"
    "CREATE TABLE contacts_new(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, email TEXT, phone TEXT,"
    "  avatar_url TEXT, owner_id INTEGER, created_at INTEGER);"
    "INSERT INTO contacts_new SELECT id, name, email, phone, avatar_url, owner_id, created_at FROM contacts;"
    "DROP TABLE contacts;"
    "ALTER TABLE contacts_new RENAME TO contacts;"
    "CREATE TABLE users_new(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, email TEXT,"
    "  seat INTEGER NOT NULL DEFAULT 1, available INTEGER NOT NULL DEFAULT 1, skills TEXT NOT NULL DEFAULT '[]',"
    "  capacity INTEGER NOT NULL DEFAULT 0, last_assigned INTEGER NOT NULL DEFAULT 0, avatar_url TEXT);"
    "INSERT INTO users_new SELECT id, name, email, seat, available, skills, capacity, last_assigned, avatar_url"
    "  FROM users;"
    "DROP TABLE users;"
    "ALTER TABLE users_new RENAME TO users;",
    /* 21: a send held (deferred: its channel not running, or the plugin's
     * send_defer) is marked, so a channel that starts running can release
     * its held sends at once (store_outbox_release_held) without touching
     * those backing off after a failure. */
    "ALTER TABLE outbox ADD COLUMN held INTEGER NOT NULL DEFAULT 0;",
    /* 22: a channel that named no inbox fed "Support" by its documentation,
     * but its conversations and events were stored with none, so inbox
     * filters and reports missed them. They were Support's: a channel that
     * names an inbox gives it to all of them, and so does one that names
     * none now. (An event of a channel deleted meanwhile keeps none: that
     * channel's inbox is not known any more.) */
    "UPDATE channels SET inbox = 'Support' WHERE inbox IS NULL OR inbox = '';"
    "UPDATE threads SET inbox = 'Support' WHERE inbox IS NULL OR inbox = '';"
    "UPDATE events SET inbox = 'Support' WHERE inbox IS NULL AND channel IN (SELECT name FROM channels);",
    /* 23: tokens and webhooks, the other rows the API names by number
     * (DELETE /tokens/{id}, /webhooks/{id}), never get a deleted one's id
     * again either, as schema 20 did for four tables: a client revoking or
     * deleting by an id it kept must not reach a newer one. */
    "CREATE TABLE tokens_new(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,"
    "  hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, user_id INTEGER);"
    "INSERT INTO tokens_new SELECT id, name, role, hash, created_at, user_id FROM tokens;"
    "DROP TABLE tokens;"
    "ALTER TABLE tokens_new RENAME TO tokens;"
    "CREATE INDEX tokens_user ON tokens(user_id) WHERE user_id IS NOT NULL;"
    "CREATE TABLE webhooks_new(id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL, events TEXT NOT NULL,"
    "  channel TEXT, inbox TEXT, description TEXT, secret TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1,"
    "  cursor INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_status INTEGER,"
    "  last_error TEXT, last_attempt_at INTEGER, last_success_at INTEGER, created_at INTEGER NOT NULL);"
    "INSERT INTO webhooks_new SELECT id, url, events, channel, inbox, description, secret, active, cursor,"
    "  failures, last_status, last_error, last_attempt_at, last_success_at, created_at FROM webhooks;"
    "DROP TABLE webhooks;"
    "ALTER TABLE webhooks_new RENAME TO webhooks;",
    /* 24: an inbound message's created_at is when it was stored, as the
     * writer's other times are, so ids and times grow together; the time
     * the service gave (a timestamp, which a redelivery hours late or a
     * clock that runs fast puts anywhere) is sent_at, NULL without one.
     * Messages stored before keep the service's time as created_at. */
    "ALTER TABLE messages ADD COLUMN sent_at INTEGER;",
    /* 25: a conversation's replies through one channel go out in the order
     * they were queued: a send is claimed only when no earlier one of its
     * conversation and channel waits (pending, backing off or held) or is
     * on its way. The outbox keeps its message's conversation for that,
     * and the waiting rows have an index of their own. */
    "ALTER TABLE outbox ADD COLUMN thread_id INTEGER;"
    "UPDATE outbox SET thread_id = (SELECT thread_id FROM messages WHERE messages.id = outbox.message_id);"
    "CREATE INDEX outbox_waiting ON outbox(thread_id, channel, id) WHERE state IN ('pending', 'sending');",
    /* 26: a status dropped from a pipeline in the config is retired: no
     * longer listed or settable, and no new or reopened ticket starts in
     * it; tickets that are in it keep it. (A status row stays, as tickets
     * name it; the config bringing it back brings it back.) */
    "ALTER TABLE statuses ADD COLUMN retired INTEGER NOT NULL DEFAULT 0;",
    /* 27: the search's case folding makes a word-final sigma (ς) a sigma
     * (σ), as Unicode's case folding does, and the long s (ſ) an s: the
     * index, which holds folded text, is emptied and filled again by the
     * writer's idle catch-up (messages above the watermark are scanned
     * meanwhile, so search stays whole), and the labels' folded names are
     * folded again (a name that would now clash keeps its old one). */
    "INSERT INTO search_index(search_index) VALUES('delete-all');"
    "UPDATE meta SET value = 0 WHERE key = 'search_indexed';"
    "UPDATE OR IGNORE labels SET folded = sb_fold(name);",
};
#define SQ_NMIGRATIONS ((int)(sizeof(sq__migrations) / sizeof(sq__migrations[0])) - 1)

_Static_assert(SQ_NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

void sq_bind_text(sqlite3_stmt *s, int i, const char *v) {
  if (v == NULL)
    sqlite3_bind_null(s, i);
  else
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

const char *sq_col_text(sqlite3_stmt *s, int i) {
  return (const char *)sqlite3_column_text(s, i);
}

/* Statements are keyed by the address of their string literal, which is
 * stable and unique per call site, so lookups never compare SQL text. */
static sqlite3_stmt *sq__prep(store *st, const char *sql, int clear) {
  uintptr_t h = ((uintptr_t)sql >> 3) * 2654435761u;
  for (size_t i = 0; i < SQ_STMT_SLOTS; i++) {
    size_t slot = (h + i) % SQ_STMT_SLOTS;
    if (st->stmts[slot].sql == sql) {
      sqlite3_stmt *s = st->stmts[slot].stmt;
      sqlite3_reset(s);
      if (clear) sqlite3_clear_bindings(s);
      return s;
    }
    if (st->stmts[slot].sql == NULL) {
      sqlite3_stmt *s = NULL;
      if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        log_error("store: cannot prepare statement: %s", sqlite3_errmsg(st->db));
        return NULL;
      }
      st->stmts[slot].sql = sql;
      st->stmts[slot].stmt = s;
      return s;
    }
  }
  log_error("store: statement cache is full");
  return NULL;
}

sqlite3_stmt *sq_prep(store *st, const char *sql) { return sq__prep(st, sql, 1); }

sqlite3_stmt *sq_prep_bound(store *st, const char *sql) { return sq__prep(st, sql, 0); }

int sq_exec(store *st, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    log_error("store: %s failed: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -EIO;
  }
  return 0;
}

int sq_fail(store *st, sq_req *r, const char *what) {
  r->status = -EIO;
  snprintf(r->err, sizeof(r->err), "store: %s failed: %s", what, sqlite3_errmsg(st->db));
  return -EIO;
}

int64_t sq_batch_now(store *st) { return st->batch_now; }

static void sq__free_events(sq_req *r) {
  while (r->events != NULL) {
    sq_event_rec *next = r->events->next;
    char *p = (char *)r->events;
    if (p < r->ev_buf || p >= r->ev_buf + sizeof(r->ev_buf)) free(r->events);
    r->events = next;
  }
  r->events_tail = NULL;
  r->ev_used = 0;
}

/* Binds text of a known length (without its NUL), or NULL. */
static void sq__bind_len(sqlite3_stmt *s, int i, const char *v, size_t len_with_nul) {
  if (v == NULL)
    sqlite3_bind_null(s, i);
  else
    sqlite3_bind_text(s, i, v, (int)(len_with_nul - 1), SQLITE_STATIC);
}

int64_t sq_next_id(store *st) { return st->next_id++; }

/* The length of v's first max bytes at most, not splitting a UTF-8
 * sequence (max 0: no cut). */
static size_t sq__cut(const char *v, size_t max) {
  if (max == 0) return strlen(v);
  size_t len = strnlen(v, max + 1);
  if (len > max) {
    len = max;
    while (len > 0 && ((unsigned char)v[len] & 0xC0) == 0x80) len--;
  }
  return len;
}

/* Queues an event on r for publishing after commit: the strings given with
 * their lengths (text and subject may be NULL), copied into one block. */
static sq_event_rec *sq__event_record(store *st, sq_req *r, int64_t id, const char *type, const char *channel,
                                      const char *inbox, const char *data, const char *text, size_t ltx,
                                      const char *subject, size_t lsu) {
  size_t lt = strlen(type) + 1, lc = channel ? strlen(channel) + 1 : 0,
         li = inbox ? strlen(inbox) + 1 : 0, ld = data ? strlen(data) + 1 : 0;
  size_t lx = text ? ltx + 1 : 0, ls = subject ? lsu + 1 : 0;
  size_t need = (sizeof(sq_event_rec) + lt + lc + li + ld + lx + ls + 7) & ~(size_t)7;
  sq_event_rec *e;
  if (need <= sizeof(r->ev_buf) - r->ev_used) {
    e = (sq_event_rec *)(void *)(r->ev_buf + r->ev_used);
    r->ev_used += need;
  } else if ((e = malloc(need)) == NULL) {
    sq_fail(st, r, "recording an event");
    return NULL;
  }
  char *p = e->buf;
  e->next = NULL;
  e->id = id;
  e->is_message = 0;
  e->type = memcpy(p, type, lt), p += lt;
  e->channel = channel ? memcpy(p, channel, lc) : NULL, p += lc;
  e->inbox = inbox ? memcpy(p, inbox, li) : NULL, p += li;
  e->data = data ? memcpy(p, data, ld) : NULL, p += ld;
  e->message.text = text ? memcpy(p, text, ltx) : NULL, p += lx;
  if (text) p[-1] = '\0';
  e->message.subject = subject ? memcpy(p, subject, lsu) : NULL, p += ls;
  if (subject) p[-1] = '\0';
  if (r->events_tail != NULL)
    r->events_tail->next = e;
  else
    r->events = e;
  r->events_tail = e;
  return e;
}

int sq_event_text(store *st, sq_req *r, const char *type, const char *channel,
                  const char *inbox, const char *data) {
  /* Every parameter is bound below: no need to clear the old bindings. */
  sqlite3_stmt *s = sq_prep_bound(st,
                                  "INSERT INTO events(id, type, channel, inbox, data, created_at)"
                                  " VALUES(?6, ?1, ?2, ?3, ?4, ?5)");
  if (s == NULL) return sq_fail(st, r, "recording an event");
  int64_t id = sq_next_id(st);
  sq__bind_len(s, 1, type, strlen(type) + 1);
  sq__bind_len(s, 2, channel, channel ? strlen(channel) + 1 : 0);
  sq__bind_len(s, 3, inbox, inbox ? strlen(inbox) + 1 : 0);
  sq__bind_len(s, 4, data, strlen(data) + 1);
  sqlite3_bind_int64(s, 5, st->batch_now);
  sqlite3_bind_int64(s, 6, id);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return sq_fail(st, r, "recording an event");
  return sq__event_record(st, r, id, type, channel, inbox, data, NULL, 0, NULL, 0) ? 0 : -EIO;
}

/* How much of a message's text and subject its event shows. */
#define SQ_PREVIEW_BYTES 200

int sq_event_message(store *st, sq_req *r, const sq_message_event *m, const char *type,
                     const char *channel, const char *inbox) {
  sq_event_rec *e = sq__event_record(st, r, m->id, type, channel, inbox, NULL, m->text,
                                     m->text ? sq__cut(m->text, SQ_PREVIEW_BYTES) : 0, m->subject,
                                     m->subject ? sq__cut(m->subject, SQ_PREVIEW_BYTES) : 0);
  if (e == NULL) return -EIO;
  const char *text = e->message.text, *subject = e->message.subject;
  e->message = *m;
  e->message.text = text;
  e->message.subject = subject;
  e->is_message = 1;
  return 0;
}

void sq_jw_message(sq_jw *w, const sq_message_event *m) {
  sq_jw_init(w);
  sq_jw_int(w, "message_id", m->id);
  sq_jw_int(w, "thread_id", m->thread_id);
  if (m->reply) {
    sq_jw_str(w, "status", "queued", 0);
    sq_jw_bool(w, "automatic", m->automatic);
    sq_jw_str(w, "preview", m->text, SQ_PREVIEW_BYTES);
    return;
  }
  sq_jw_int(w, "contact_id", m->contact_id);
  sq_jw_str(w, "preview", m->text, SQ_PREVIEW_BYTES);
  sq_jw_str(w, "subject", m->subject, SQ_PREVIEW_BYTES);
  sq_jw_bool(w, "automatic", m->automatic);
  sq_jw_bool(w, "new_contact", m->new_contact);
  sq_jw_bool(w, "new_thread", m->new_thread);
}

int sq_event(store *st, sq_req *r, const char *type, const char *channel, const char *inbox,
             json_t *data) {
  char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  if (text == NULL) return sq_fail(st, r, "building an event");
  int rc = sq_event_text(st, r, type, channel, inbox, text);
  free(text);
  return rc;
}

/* ---- event data writer ---- */

static void sq__jw_raw(sq_jw *w, const char *s, size_t len) {
  if (w->n + len + 2 >= sizeof(w->buf)) {
    w->overflow = 1;
    return;
  }
  memcpy(w->buf + w->n, s, len);
  w->n += len;
}

/* sq__jw_raw as sq_json_escape's sink (an overflow is marked in w). */
static int sq__jw_put(void *w, const char *s, size_t len) {
  sq__jw_raw(w, s, len);
  return 0;
}

static void sq__jw_key(sq_jw *w, const char *key) {
  sq__jw_raw(w, w->n == 0 ? "{\"" : ",\"", 2);
  sq__jw_raw(w, key, strlen(key));
  sq__jw_raw(w, "\":", 2);
}

void sq_jw_int(sq_jw *w, const char *key, int64_t v) {
  char num[24], *p = num + sizeof(num);
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do *--p = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) *--p = '-';
  sq__jw_key(w, key);
  sq__jw_raw(w, p, (size_t)(num + sizeof(num) - p));
}

void sq_jw_bool(sq_jw *w, const char *key, int v) {
  sq__jw_key(w, key);
  sq__jw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void sq_jw_str(sq_jw *w, const char *key, const char *v, size_t max) {
  sq__jw_key(w, key);
  if (v == NULL) {
    sq__jw_raw(w, "null", 4);
    return;
  }
  /* Only the first max bytes matter (and at most 500: the escaped worst
   * case, 6 bytes each, still fits the buffer), so a long text is not
   * measured to its end. */
  size_t len = sq__cut(v, max > 0 && max < 500 ? max : 500);
  sq__jw_raw(w, "\"", 1);
  sq_json_escape(v, len, sq__jw_put, w);
  sq__jw_raw(w, "\"", 1);
}

int sq_json_escape(const char *v, size_t len, int (*put)(void *sink, const char *s, size_t n), void *sink) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* start of the bytes not yet put: put in runs, not one by one */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c != '"' && c != '\\' && c >= 0x20) continue;
    char esc[6] = {'\\', (char)c, '0', '0', hex[c >> 4], hex[c & 15]}; /* \" \\ or \u00XX */
    if (c < 0x20) esc[1] = 'u';
    int rc = put(sink, v + run, i - run);
    if (rc == 0) rc = put(sink, esc, c < 0x20 ? 6 : 2);
    if (rc != 0) return rc;
    run = i + 1;
  }
  return put(sink, v + run, len - run);
}

void sq_jw_init(sq_jw *w) {
  w->n = 0;
  w->overflow = 0;
}

const char *sq_jw_end(sq_jw *w) {
  if (w->overflow) w->n = 0; /* never emit broken JSON */
  if (w->n == 0) sq__jw_raw(w, "{", 1);
  w->buf[w->n++] = '}';
  w->buf[w->n] = '\0';
  return w->buf;
}

const router_channel *sq_channel(store *st, const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < st->n_channels; i++)
    if (strcmp(st->channels[i].name, name) == 0) return &st->channels[i];
  return NULL;
}

/* ---- the writer thread ---- */

static int sq__step_static(store *st, const char *sql) {
  sqlite3_stmt *s = sq_prep(st, sql);
  if (s == NULL) return -EIO;
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Each request runs under its own savepoint so a failing one leaves no trace
 * while the rest of the batch commits. */
static void sq__run_one(store *st, sq_req *r) {
  if (sq__step_static(st, "SAVEPOINT req") < 0) {
    r->status = -EIO;
    snprintf(r->err, sizeof(r->err), "store: cannot start a savepoint");
    return;
  }
  r->run(st, r);
  if (r->status < 0) {
    sq__step_static(st, "ROLLBACK TO req");
    sq__free_events(r);
    sq_caches_clear(st);
  }
  sq__step_static(st, "RELEASE req");
}

static void sq__reset(sq_req *r) {
  r->status = 0;
  r->err[0] = '\0';
  sq__free_events(r);
}

/* The writer's transaction: the requests run in it so far, in order. */
typedef struct sq_txn {
  sq_req *head, *tail;
  uint64_t n;       /* requests in it */
  int open;         /* BEGIN done; 0 when it could not begin (all failed) */
  int safe;         /* a request failed: every request runs under a savepoint */
  uint64_t inbound; /* st->inbound_count at BEGIN */
  int64_t seq;      /* st->assign_seq at BEGIN */
} sq_txn;

/* Appends the list first..last to a queue. */
static void sq__append(sq_req **head, sq_req **tail, sq_req *first, sq_req *last) {
  if (*tail != NULL)
    (*tail)->next = first;
  else
    *head = first;
  *tail = last;
}

/* Fails every request of the list r with one message. */
static void sq__fail_all(sq_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sq__fail_all(sq_req *r, const char *fmt, ...) {
  char why[sizeof(r->err)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  for (; r != NULL; r = r->next) {
    r->status = -EIO;
    memcpy(r->err, why, sizeof(why));
  }
}

static void sq__fail_begin(store *st, sq_req *r) {
  sq__fail_all(r, "store: cannot begin a transaction on %s: %s", st->path, sqlite3_errmsg(st->db));
}

/* Runs newly taken requests in the writer's transaction, beginning one if
 * none is open. The fast path runs them without savepoints; if one fails,
 * the transaction is rolled back and every request in it run again with a
 * savepoint each (and so are later ones until the commit), so the failure
 * is isolated. Requests are written to be re-runnable. */
static void sq__run_more(store *st, sq_txn *t, sq_req *batch, sq_req *last) {
  st->batch_now = sb_wall_ms();
  int begun = t->open;
  if (t->head == NULL && sq__step_static(st, "BEGIN IMMEDIATE") == 0) {
    t->open = begun = 1;
    t->safe = 0;
    t->inbound = st->inbound_count;
    t->seq = st->assign_seq;
  }
  sq__append(&t->head, &t->tail, batch, last);
  for (sq_req *r = batch; r != NULL; r = r->next) t->n++;
  if (!begun) {
    sq__fail_begin(st, batch);
    return;
  }
  if (t->safe) {
    for (sq_req *r = batch; r != NULL; r = r->next) sq__run_one(st, r);
    return;
  }
  int failed = 0;
  for (sq_req *r = batch; r != NULL && !failed; r = r->next) {
    r->run(st, r);
    failed = r->status < 0;
  }
  if (!failed) return;
  sq__step_static(st, "ROLLBACK");
  sq_caches_clear(st);
  st->inbound_count = t->inbound;
  st->assign_seq = t->seq;
  for (sq_req *r = t->head; r != NULL; r = r->next) sq__reset(r);
  if (sq__step_static(st, "BEGIN IMMEDIATE") < 0) {
    t->open = 0;
    sq__fail_begin(st, t->head);
    return;
  }
  t->safe = 1;
  for (sq_req *r = t->head; r != NULL; r = r->next) sq__run_one(st, r);
}

/* Answers every request of a batch with the syncer's failure. */
static void sq__fail_unsynced(store *st, sq_req *batch, int error) {
  sq__fail_all(batch, "store: the WAL of %s could not be made durable (%s); writes are refused until "
               "switchboard restarts", st->path, strerror(error));
}

/* Whether a commit handed over now would be flushed at once. Under mu. */
static int sq__syncer_idle(const store *st) {
  return !st->sync_started || (st->sync_head == NULL && !st->sync_busy);
}

/* Commits the writer's transaction (the group commit), hands its requests
 * to the syncer (or, without one, to the loop) and starts a new one. Then,
 * while nothing is open, copies back the rest of the WAL if asked: the few
 * frames a checkpoint cycle left (the next transaction restarts the WAL),
 * or, past the bound, all of it, truncating it (TRUNCATE waits out a
 * background pass in progress). */
static void sq__commit(store *st, sq_txn *t) {
  int committed = t->open && sq__step_static(st, "COMMIT") == 0;
  if (t->open && !committed) {
    sq__fail_all(t->head, "store: commit to %s failed: %s", st->path, sqlite3_errmsg(st->db));
    sq__step_static(st, "ROLLBACK");
    sq_caches_clear(st);
    for (sq_req *r = t->head; r != NULL; r = r->next) sq__free_events(r);
  }
  uv_mutex_lock(&st->mu);
  int finish = st->ckpt_phase == SQ_CKPT_FINISH;
  st->stats.transactions += (uint64_t)committed;
  st->stats.requests += t->n;
  st->stats.inbound += st->inbound_count;
  st->inbound_count = 0;
  if (st->sync_started) {
    sq__append(&st->sync_head, &st->sync_tail, t->head, t->tail);
    st->sync_dirty |= st->wal_dirty;
    uv_cond_signal(&st->sync_cv);
  } else {
    sq__append(&st->done_head, &st->done_tail, t->head, t->tail);
  }
  st->wal_dirty = 0;
  uv_mutex_unlock(&st->mu);
  if (!st->sync_started) uv_async_send(&st->async);
  *t = (sq_txn){0};

  int over = st->wal_over;
  if (over || finish) {
    st->wal_over = 0;
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(st->db, NULL, over ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
                                  &log, &done) != SQLITE_OK)
      log_warn("store: checkpoint of %s failed: %s", st->path, sqlite3_errmsg(st->db));
    uv_mutex_lock(&st->mu);
    st->stats.checkpoints++;
    st->stats.wal_truncations += (uint64_t)over;
    if (finish) st->ckpt_phase = SQ_CKPT_IDLE;
    uv_mutex_unlock(&st->mu);
  }
}

/* Runs what is queued in one transaction and commits it once the syncer is
 * free to flush it: while a flush is under way, newly queued requests join
 * the open transaction, so the disk is never idle while work waits and
 * every flush carries one commit with everything that arrived during the
 * one before (without a syncer: one commit per batch taken). */
static void sq__writer(void *arg) {
  store *st = arg;
  pthread_setname_np(pthread_self(), "sb-writer");
  /* SCHED_BATCH: woken by the loop's hand-over, the writer does not preempt
   * the loop (it starts on a free core, or when the loop's turn ends). On
   * two busy cores, preempting cost the loop the whole batch's run while
   * requests waited in its sockets, and the other core could sit idle
   * (bench/ingest/README.md). Needs no privilege; Linux only. */
#ifdef SCHED_BATCH
  struct sched_param param = {.sched_priority = 0};
  if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) != 0)
    log_debug("store: the writer stays in the default scheduling class");
#endif
  sq_txn t = {0};
  for (;;) {
    /* With nothing open and messages left to index, the wait is timed: a
     * writer idle that long indexes a chunk (store_sqlite_index.c). */
    int64_t idle_ms = t.head == NULL ? sq_index_idle_wait(st) : -1;
    int idle = 0;
    uv_mutex_lock(&st->mu);
    while (st->q_head == NULL && !(t.head != NULL && (!t.open || sq__syncer_idle(st))) &&
           !(t.head == NULL && st->stopping)) {
      if (idle_ms < 0) {
        uv_cond_wait(&st->cv, &st->mu);
      } else if (uv_cond_timedwait(&st->cv, &st->mu, (uint64_t)idle_ms * 1000000) == UV_ETIMEDOUT &&
                 st->q_head == NULL && !st->stopping && st->sync_error == 0) {
        idle = 1;
        break;
      }
    }
    sq_req *batch = st->q_head, *last = st->q_tail;
    st->q_head = st->q_tail = NULL;
    int sync_error = st->sync_error;
    uv_mutex_unlock(&st->mu);
    if (batch != NULL) {
      st->index_spell = 0;
    } else if (idle) {
      batch = last = sq_index_idle_request(st);
      if (batch == NULL) continue;
    }
    if (batch == NULL && t.head == NULL) break; /* stopping, and everything is answered */
    if (batch != NULL && sync_error != 0) {
      if (t.head != NULL) sq__commit(st, &t);
      sq__fail_unsynced(st, batch, sync_error);
      sq__append(&t.head, &t.tail, batch, last);
      for (sq_req *r = batch; r != NULL; r = r->next) t.n++;
    } else if (batch != NULL) {
      sq__run_more(st, &t, batch, last);
    }
    uv_mutex_lock(&st->mu);
    int now = t.head != NULL && (!t.open || sq__syncer_idle(st));
    uv_mutex_unlock(&st->mu);
    if (now) sq__commit(st, &t);
  }
}

/* Makes committed batches durable, then hands them to the loop. One
 * fdatasync covers what the writer committed since the last one; the
 * writer never waits for the disk, and what arrives during a flush is run
 * meanwhile and committed as the next group (sq__writer). The WAL is only ever appended to or, after a checkpoint has copied
 * and synced every frame into the database, overwritten from its start;
 * either way a flush of its file after a COMMIT returned makes that commit
 * survive power loss, as synchronous=FULL would. After a failed flush the
 * kernel may have dropped the pages it could not write and a later flush
 * may succeed without them, so the failure is sticky: those batches and
 * every later one fail, and writes are refused until a restart (whose
 * recovery reads what really is in the WAL). */
static void sq__syncer(void *arg) {
  store *st = arg;
  pthread_setname_np(pthread_self(), "sb-syncer");
  for (;;) {
    uv_mutex_lock(&st->mu);
    while (st->sync_head == NULL && !st->sync_stop) uv_cond_wait(&st->sync_cv, &st->mu);
    sq_req *batch = st->sync_head, *last = st->sync_tail;
    st->sync_head = st->sync_tail = NULL;
    int dirty = st->sync_dirty, error = st->sync_error;
    st->sync_dirty = 0;
    st->sync_busy = batch != NULL;
    uv_mutex_unlock(&st->mu);
    if (batch == NULL) break; /* the writer has ended and everything is answered */
    int synced = 0;
    struct timespec t0, t1;
    if (dirty && error == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t0);
      if (fdatasync(st->wal_fd) == 0) {
        synced = 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
      } else {
        error = errno;
        log_error("store: fdatasync of %s-wal failed: %s; refusing writes until restart", st->path,
                  strerror(error));
      }
      if (st->sync_hook != NULL) st->sync_hook(st->sync_hook_arg, st->wal_fd);
    }
    if (error != 0) sq__fail_unsynced(st, batch, error);
    uv_mutex_lock(&st->mu);
    if (synced) {
      st->stats.wal_syncs++;
      metrics_observe(&st->stats.wal_sync_latency,
                      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    if (st->sync_error == 0) st->sync_error = error;
    sq__append(&st->done_head, &st->done_tail, batch, last);
    st->sync_busy = 0;
    uv_cond_signal(&st->cv); /* the writer commits what gathered meanwhile */
    uv_mutex_unlock(&st->mu);
    uv_async_send(&st->async);
  }
}

/* Publishes r's events; returns the newest id among them (0: none). */
static int64_t sq__publish(store *st, sq_req *r) {
  int64_t newest = 0;
  for (sq_event_rec *e = r->events; e != NULL; e = e->next) {
    if (e->id > newest) newest = e->id;
    if (!events_wants(st->bus, e->type)) continue; /* no JSON for nobody */
    sq_jw w;
    if (e->is_message) sq_jw_message(&w, &e->message);
    json_t *data = json_loads(e->is_message ? sq_jw_end(&w) : e->data, 0, NULL);
    events_event ev = {e->id, e->type, e->channel, e->inbox, data};
    events_publish(st->bus, &ev);
    json_decref(data);
  }
  sq__free_events(r);
  return newest;
}

static void sq__deliver(store *st) {
  uv_mutex_lock(&st->mu);
  sq_req *r = st->done_head;
  st->done_head = st->done_tail = NULL;
  uv_mutex_unlock(&st->mu);
  int64_t newest = 0;
  while (r != NULL) {
    sq_req *next = r->next;
    int64_t n = sq__publish(st, r);
    if (n > newest) newest = n;
    r->done(st, r);
    r = next;
  }
  events_advance(st->bus, newest);
}

static void sq__on_async(uv_async_t *h) { sq__deliver(h->data); }

int sq_json_rows(store *st, sq_req *r, sqlite3_stmt *s, const char *what, json_t **out) {
  if (s == NULL) return sq_fail(st, r, what);
  json_t *rows = json_array();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_t *o = json_loads(sq_col_text(s, 0), JSON_DECODE_ANY, NULL);
    json_array_append_new(rows, o != NULL ? o : json_null()); /* every row counts: pages are by rows */
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    json_decref(rows);
    return sq_fail(st, r, what);
  }
  *out = rows;
  return 0;
}

int sq_json_one(store *st, sq_req *r, sqlite3_stmt *s, const char *what, int64_t id, json_t **out) {
  json_t *rows;
  if (sq_json_rows(st, r, s, "reading rows", &rows) < 0) return -EIO;
  if (json_array_size(rows) == 0) {
    json_decref(rows);
    r->status = -ENOENT;
    snprintf(r->err, sizeof(r->err), "%s %lld does not exist", what, (long long)id);
    return -ENOENT;
  }
  *out = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  return 0;
}

void sq_req_init(sq_req *r) {
  r->next = NULL;
  r->run = NULL;
  r->done = NULL;
  r->status = 0;
  r->err[0] = '\0';
  r->events = r->events_tail = NULL;
  r->ev_used = 0;
}

int sq_enqueue(store *st, sq_req *r) {
  if (st->stopping) return -ESHUTDOWN; /* only the loop sets it */
  r->next = NULL;
  sq__append(&st->l_head, &st->l_tail, r, r);
  return 0;
}

/* Hands what this turn of the loop submitted to the writer, with one wakeup
 * (a uv_prepare handle: it runs before every wait for events). Waking the
 * writer for each request cost a context switch per webhook under load, the
 * writer taking one request at a time and the loop being preempted for it
 * (bench/ingest/README.md). */
static void sq__hand_over(store *st) {
  if (st->l_head == NULL) return;
  uv_mutex_lock(&st->mu);
  sq__append(&st->q_head, &st->q_tail, st->l_head, st->l_tail);
  uv_cond_signal(&st->cv);
  uv_mutex_unlock(&st->mu);
  st->l_head = st->l_tail = NULL;
}

static void sq__on_prepare(uv_prepare_t *h) { sq__hand_over(h->data); }

/* ---- open and close ---- */

static void sq__start_readers(store *st);
static void sq__stop_readers(store *st);

static int sq__migrate(store *st, char *err, size_t errlen) {
  sqlite3_stmt *s = NULL;
  int version = -1;
  if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW)
    version = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  if (version < 0) {
    snprintf(err, errlen, "cannot read the schema version of %s: %s", st->path,
             sqlite3_errmsg(st->db));
    return -EIO;
  }
  if (version > STORE_SCHEMA_VERSION) {
    snprintf(err, errlen,
             "database %s has schema version %d, newer than this switchboard supports (%d); "
             "run a newer switchboard or restore a backup",
             st->path, version, STORE_SCHEMA_VERSION);
    return -EPROTO;
  }
  for (int v = version + 1; v <= STORE_SCHEMA_VERSION; v++) {
    char set[64];
    snprintf(set, sizeof(set), "PRAGMA user_version = %d", v);
    char *msg = NULL;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(st->db, sq__migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(st->db, set, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
      snprintf(err, errlen, "migrating %s to schema version %d failed: %s", st->path, v,
               msg ? msg : sqlite3_errmsg(st->db));
      sqlite3_free(msg);
      sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
      return -EIO;
    }
    log_info("store: migrated %s to schema version %d", st->path, v);
  }
  return 0;
}

/* Rules are kept in the channels table so records survive restarts, but
 * they only take effect once the config puts them again (config is truth). */
static int sq__recover(store *st, char *err, size_t errlen) {
  char *msg = NULL;
  if (sqlite3_exec(st->db, "UPDATE outbox SET state = 'pending' WHERE state = 'sending'", NULL,
                   NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "cannot recover the outbox in %s: %s", st->path, msg ? msg : "?");
    sqlite3_free(msg);
    return -EIO;
  }
  if (sq_uploads_sweep(st, sb_wall_ms()) < 0) {
    snprintf(err, errlen, "cannot delete the unused uploads in %s: %s", st->path, sqlite3_errmsg(st->db));
    return -EIO;
  }
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(st->db, "SELECT coalesce(max(last_assigned), 0) FROM users", -1, &s,
                         NULL) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW)
    st->assign_seq = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return 0;
}

/* Where the shared message/event sequence goes on, and from which id on
 * messages are read as their own events (migration 8). */
static int sq__read_ids(store *st, char *err, size_t errlen) {
  sqlite3_stmt *s = NULL;
  int ok = sqlite3_prepare_v2(st->db,
                              "SELECT max(coalesce((SELECT max(id) FROM events), 0),"
                              " coalesce((SELECT max(id) FROM messages), 0), coalesce((SELECT max(id) FROM notes), 0),"
                              " coalesce((SELECT value FROM meta WHERE key = 'ids_given'), 0)),"
                              " (SELECT value FROM meta WHERE key = 'message_events_from')",
                              -1, &s, NULL) == SQLITE_OK &&
           sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 1) == SQLITE_INTEGER;
  if (ok) {
    st->next_id = sqlite3_column_int64(s, 0) + 1;
    st->message_events_from = sqlite3_column_int64(s, 1);
  } else {
    snprintf(err, errlen, "cannot read the id sequence of %s: %s", st->path, sqlite3_errmsg(st->db));
  }
  sqlite3_finalize(s);
  return ok ? 0 : -EIO;
}

static void sq__free(store *st) {
  sq_inbound_blocks_free(st);
  for (size_t i = 0; i < SQ_STMT_SLOTS; i++)
    if (st->stmts[i].stmt != NULL) sqlite3_finalize(st->stmts[i].stmt);
  if (st->db != NULL) sqlite3_close(st->db);
  for (size_t i = 0; i < st->n_channels; i++) router_channel_free(&st->channels[i]);
  free(st->channels);
  events_bus_free(st->bus);
  sq_cache_free(st->contact_cache);
  sq_cache_free(st->thread_cache);
  sq_ticket_starts_clear(st);
  uv_mutex_destroy(&st->mu);
  uv_cond_destroy(&st->cv);
  uv_cond_destroy(&st->ckpt_cv);
  uv_cond_destroy(&st->sync_cv);
  uv_cond_destroy(&st->reader_cv);
  free(st->path);
  free(st);
}

static void sq__on_closed(uv_handle_t *h) {
  store *st = h->data;
  if (--st->open_handles == 0) sq__free(st);
}

/* Closes the store's loop handles; the last to close frees it. */
static void sq__close_handles(store *st) {
  uv_close((uv_handle_t *)&st->async, sq__on_closed);
  uv_close((uv_handle_t *)&st->hand_over, sq__on_closed);
}

/* WAL frames after which a checkpoint cycle starts (16 MiB of 4 KiB
 * pages). SQLite's own automatic checkpoint would run inside the writer's
 * COMMIT, fsync the database file there, and hold up every webhook of the
 * batch; the checkpointer does most of it on its own thread instead. */
#define SQ_CHECKPOINT_FRAMES 4096

/* Frames the checkpointer may leave for the writer to finish (1 MiB): the
 * writer's own pass copies them between batches, a short pause. */
#define SQ_CHECKPOINT_FINISH_FRAMES 256

/* Passes the checkpointer makes at most before handing what is left to the
 * writer (each pass copies what was committed when it began). */
#define SQ_CHECKPOINT_PASSES 4

/* WAL frames past which the writer checkpoints itself between batches (128
 * MiB), should a cycle not restart the WAL (a reader holding an old
 * snapshot, a failing checkpoint): disk use stays bounded. */
#define SQ_WAL_LIMIT_FRAMES 32768

/* Writer's WAL hook, after each commit that wrote frames: tells the syncer
 * there is something to flush, starts a checkpoint cycle when the WAL has
 * grown, and marks it over its bound. Installing it also turns SQLite's
 * autocheckpoint off. */
static int sq__wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
  store *st = arg;
  st->wal_dirty = 1;
  /* Without the checkpointer, what SQLite's automatic checkpoint would do. */
  if (!st->ckpt_started) {
    if (frames >= 1000) sqlite3_wal_checkpoint(db, name);
    return SQLITE_OK;
  }
  if (frames >= st->wal_limit_frames) st->wal_over = 1;
  uv_mutex_lock(&st->mu);
  st->wal_frames = frames;
  if (frames >= st->ckpt_frames && st->ckpt_phase == SQ_CKPT_IDLE) {
    st->ckpt_phase = SQ_CKPT_COPYING;
    uv_cond_signal(&st->ckpt_cv);
  }
  uv_mutex_unlock(&st->mu);
  return SQLITE_OK;
}

/* A PASSIVE checkpoint copies what was committed when it began and never
 * blocks the writer, but the WAL starts again from its beginning only when
 * a write transaction begins with every frame copied, which never happens
 * while another thread copies beside a busy writer. So the checkpointer
 * copies the bulk (a pass or a few, each with the database's fsync), and
 * the writer copies the last few frames itself between two batches
 * (sq__writer): its next transaction then restarts the WAL. One cycle per
 * ckpt_frames of WAL, not one checkpoint per commit. */
static void sq__checkpointer(void *arg) {
  store *st = arg;
  pthread_setname_np(pthread_self(), "sb-checkpoint");
  for (;;) {
    uv_mutex_lock(&st->mu);
    while (st->ckpt_phase != SQ_CKPT_COPYING && !st->stopping) uv_cond_wait(&st->ckpt_cv, &st->mu);
    int stop = st->stopping;
    uv_mutex_unlock(&st->mu);
    if (stop) break;
    for (int pass = 0; pass < SQ_CHECKPOINT_PASSES; pass++) {
      int log = 0, done = 0;
      int rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_warn("store: checkpoint of %s failed: %s", st->path, sqlite3_errmsg(st->ckpt_db));
      uv_mutex_lock(&st->mu);
      st->stats.checkpoints++;
      int left = st->wal_frames - done;
      uv_mutex_unlock(&st->mu);
      if (rc != SQLITE_OK || left <= SQ_CHECKPOINT_FINISH_FRAMES) break;
    }
    uv_mutex_lock(&st->mu);
    st->ckpt_phase = SQ_CKPT_FINISH;
    uv_mutex_unlock(&st->mu);
  }
}

/* Opens the checkpointer's connection and starts its thread. Without it the
 * writer falls back to SQLite's automatic checkpoints (logged). */
static void sq__start_checkpointer(store *st) {
  if (sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    log_warn("store: no background checkpoints for %s: %s", st->path, sqlite3_errmsg(st->ckpt_db));
    sqlite3_close(st->ckpt_db);
    st->ckpt_db = NULL;
    return;
  }
  sqlite3_busy_timeout(st->ckpt_db, 5000);
  /* A connection that has never read the database does not know it is in
   * WAL mode, and SQLite (3.40) then answers a checkpoint with SQLITE_OK
   * without copying anything: the WAL grew without bound (770 MB after
   * 8 s of webhooks, the database file still one page). One read opens
   * the WAL for it. */
  char *msg = NULL;
  if (sqlite3_exec(st->ckpt_db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, &msg) != SQLITE_OK) {
    log_warn("store: no background checkpoints for %s: %s", st->path, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(st->ckpt_db);
    st->ckpt_db = NULL;
    return;
  }
  if (uv_thread_create(&st->ckpt_thread, sq__checkpointer, st) != 0) {
    sqlite3_close(st->ckpt_db);
    st->ckpt_db = NULL;
    return;
  }
  st->ckpt_started = 1;
}

/* Opens the syncer's descriptor of the WAL, switches the writer to
 * synchronous=NORMAL and starts the syncer. Without it the writer keeps
 * synchronous=FULL and fsyncs in every COMMIT (logged). The WAL file
 * exists from the first read in WAL mode (migrations read the schema
 * version) and keeps its inode while the store's connections are open:
 * SQLite only ever truncates it in place. */
static void sq__start_syncer(store *st) {
  size_t len = strlen(st->path) + sizeof("-wal");
  char *wal = malloc(len);
  if (wal == NULL) return;
  snprintf(wal, len, "%s-wal", st->path);
  st->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
  if (st->wal_fd < 0) {
    log_warn("store: no pipelined commits for %s (cannot open %s: %s); every commit fsyncs", st->path,
             wal, strerror(errno));
    free(wal);
    return;
  }
  free(wal);
  if (sq_exec(st, "PRAGMA synchronous=NORMAL") < 0 ||
      uv_thread_create(&st->sync_thread, sq__syncer, st) != 0) {
    sq_exec(st, "PRAGMA synchronous=FULL");
    close(st->wal_fd);
    st->wal_fd = -1;
    return;
  }
  st->sync_started = 1;
}

/* Ends the syncer after the writer has: it answers what the writer handed
 * it, then stops. */
static void sq__stop_syncer(store *st) {
  if (!st->sync_started) return;
  uv_mutex_lock(&st->mu);
  st->sync_stop = 1;
  uv_cond_signal(&st->sync_cv);
  uv_mutex_unlock(&st->mu);
  uv_thread_join(&st->sync_thread);
  close(st->wal_fd);
  st->wal_fd = -1;
  st->sync_started = 0;
}

/* The database path of a store URL, or NULL with err filled. */
static const char *sq__url_path(const char *url, char *err, size_t errlen) {
  if (url != NULL && strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0') return url + 7;
  snprintf(err, errlen, "store URL \"%s\" is not supported; use sqlite:PATH", url ? url : "");
  return NULL;
}

int store_open(uv_loop_t *loop, const char *url, store **out, char *err, size_t errlen) {
  if (loop == NULL || url == NULL || out == NULL) return -EINVAL;
  *out = NULL;
  /* Process-wide and only effective before SQLite initialises; the
   * allocator statistics take a global mutex on every malloc. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  const char *path = sq__url_path(url, err, errlen);
  if (path == NULL) return -EINVAL;
  store *st = calloc(1, sizeof(*st));
  if (st == NULL) return -ENOMEM;
  st->loop = loop;
  st->attachment_limit = STORE_ATTACHMENT_LIMIT_DEFAULT;
  st->path = strdup(path);
  st->bus = events_bus_new();
  st->contact_cache = sq_cache_new((size_t)1 << 20);
  st->thread_cache = sq_cache_new((size_t)1 << 20);
  uv_mutex_init(&st->mu);
  uv_cond_init(&st->cv);
  uv_cond_init(&st->ckpt_cv);
  uv_cond_init(&st->sync_cv);
  uv_cond_init(&st->reader_cv);
  st->wal_fd = -1;
  st->wal_limit_frames = SQ_WAL_LIMIT_FRAMES;
  st->ckpt_frames = SQ_CHECKPOINT_FRAMES;
  if (st->path == NULL || st->bus == NULL || st->contact_cache == NULL || st->thread_cache == NULL) {
    sq__free(st);
    return -ENOMEM;
  }
  int rc = sqlite3_open_v2(st->path, &st->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open database %s: %s", st->path,
             st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
    sq__free(st);
    return -EIO;
  }
  sqlite3_busy_timeout(st->db, 5000);
  if (sq_register_functions(st->db) != SQLITE_OK) {
    snprintf(err, errlen, "cannot set up database %s: %s", st->path, sqlite3_errmsg(st->db));
    sq__free(st);
    return -EIO;
  }
  char *msg = NULL;
  /* synchronous=FULL: in WAL mode NORMAL may lose the last commits on power
   * loss, and an acknowledged webhook must never be lost. Once the syncer
   * runs, the writer commits with NORMAL and the syncer's fdatasync makes
   * each commit durable before it is answered (sq__syncer). 4 KiB pages (only
   * applied when the file is created): a group commit writes every page it
   * dirtied to the WAL and fsyncs it, and at webhook batch sizes 32 KiB
   * pages wrote 4.7 times the bytes per message (bench/ingest/README.md),
   * while they only helped the very large batches of bench/router. The
   * file is not memory-mapped: with a map, SQLite looks every read-only
   * page fetch up in the WAL's index before its page cache, and a page
   * rewritten by every commit (a busy thread's row) sits in long hash
   * chains there — the INSERT's read of the thread's last message cost
   * the writer 5 000 instructions per message (callgrind.sh). An 8 MiB
   * page cache: webhooks keep a few hundred pages hot (each conversation's
   * last leaf of messages_thread, the tables' right edges), and a larger
   * cache costs every commit that split a page. SQLite parks a page under
   * the pending-byte page's number while it reorders a split's pages, and
   * the commit's cache truncation then walks the cache's whole hash table,
   * a slot per cached page: with 128 MiB, 32 768 slots per such commit once
   * the database outgrew the cache, 1.6-3.8 µs of writer CPU per webhook at a
   * million messages (bench/ingest/README.md). Other pages come from the
   * kernel's page cache. */
  if (sqlite3_exec(st->db,
                   "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                   "PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=0;",
                   NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "cannot configure database %s: %s", st->path, msg ? msg : "?");
    sqlite3_free(msg);
    sq__free(st);
    return -EIO;
  }
  if ((rc = sq__migrate(st, err, errlen)) < 0 || (rc = sq__recover(st, err, errlen)) < 0 ||
      (rc = sq__read_ids(st, err, errlen)) < 0 || (rc = sq_index_open(st, err, errlen)) < 0) {
    sq__free(st);
    return rc;
  }
  events_advance(st->bus, st->next_id - 1); /* what is stored at open is durable */
  if (uv_async_init(loop, &st->async, sq__on_async) != 0) {
    snprintf(err, errlen, "cannot create the store's wakeup handle");
    sq__free(st);
    return -EIO;
  }
  st->async.data = st;
  /* Never fails on unix; it does not keep the loop alive by itself. */
  uv_prepare_init(loop, &st->hand_over);
  st->hand_over.data = st;
  uv_prepare_start(&st->hand_over, sq__on_prepare);
  uv_unref((uv_handle_t *)&st->hand_over);
  st->open_handles = 2;
  sq__start_checkpointer(st);
  sq__start_syncer(st);
  if (st->ckpt_started || st->sync_started) sqlite3_wal_hook(st->db, sq__wal_hook, st);
  if (uv_thread_create(&st->thread, sq__writer, st) != 0) {
    snprintf(err, errlen, "cannot start the store's writer thread");
    sq__stop_syncer(st);
    if (st->ckpt_started) {
      uv_mutex_lock(&st->mu);
      st->stopping = 1;
      uv_cond_signal(&st->ckpt_cv);
      uv_mutex_unlock(&st->mu);
      uv_thread_join(&st->ckpt_thread);
      sqlite3_close(st->ckpt_db);
      st->ckpt_db = NULL;
    }
    sq__close_handles(st);
    return -EIO;
  }
  st->thread_started = 1;
  sq__start_readers(st);
  *out = st;
  return 0;
}

void store_close(store *st) {
  if (st == NULL) return;
  sq__hand_over(st);
  uv_mutex_lock(&st->mu);
  st->stopping = 1;
  uv_cond_signal(&st->cv);
  uv_cond_signal(&st->ckpt_cv);
  uv_mutex_unlock(&st->mu);
  if (st->thread_started) uv_thread_join(&st->thread);
  st->thread_started = 0;
  sq__stop_readers(st);
  sq__stop_syncer(st);
  if (st->ckpt_started) {
    uv_thread_join(&st->ckpt_thread);
    sqlite3_close(st->ckpt_db); /* before the writer's: the last close checkpoints */
    st->ckpt_db = NULL;
    st->ckpt_started = 0;
  }
  sq__deliver(st);
  sq__close_handles(st);
}

/* Reads rows of sql from the database of a store URL, read-only and
 * without opening the store, into *out (rows adds each); [] without a
 * database, or of a schema before the table. */
static int sq__peek(const char *url, const char *sql, int (*rows)(sqlite3_stmt *, json_t *), const char *what,
                    json_t **out, char *err, size_t errlen) {
  *out = NULL;
  const char *path = sq__url_path(url, err, errlen);
  if (path == NULL) return -EIO;
  json_t *items = json_array();
  if (access(path, F_OK) != 0) {
    *out = items;
    return 0;
  }
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) rc = rows(s, items);
    /* a schema before the table: no such rows */
    else if (rc == SQLITE_ERROR && strstr(sqlite3_errmsg(db), "no such table") != NULL) rc = SQLITE_DONE;
  }
  if (rc != SQLITE_DONE) snprintf(err, errlen, "cannot read the %s stored in %s: %s", what, path, sqlite3_errmsg(db));
  sqlite3_finalize(s);
  sqlite3_close(db);
  if (rc != SQLITE_DONE) {
    json_decref(items);
    return -EIO;
  }
  *out = items;
  return 0;
}

int store_api_channels_peek(const char *url, json_t **out, char *err, size_t errlen) {
  return sq__peek(url, SQ_API_CHANNELS_SELECT, sq_api_channel_rows, "channels", out, err, errlen);
}

static int sq__webhook_secret_rows(sqlite3_stmt *s, json_t *items) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    json_array_append_new(items, json_pack("{sI ss}", "id", (json_int_t)sqlite3_column_int64(s, 0), "secret",
                                           (const char *)sqlite3_column_text(s, 1)));
  return rc;
}

int store_webhook_secrets_peek(const char *url, json_t **out, char *err, size_t errlen) {
  return sq__peek(url, "SELECT id, secret FROM webhooks ORDER BY id", sq__webhook_secret_rows, "webhooks", out, err,
                  errlen);
}

int store_claim(const char *url, int *claim, char *err, size_t errlen) {
  *claim = -1;
  const char *path = sq__url_path(url, err, errlen);
  if (path == NULL) return -EINVAL;
  char lock[4096];
  if ((size_t)snprintf(lock, sizeof(lock), "%s.lock", path) >= sizeof(lock)) {
    snprintf(err, errlen, "database path %s is too long", path);
    return -EINVAL;
  }
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open %s: %s", lock, strerror(errno));
    return -EIO;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) {
      snprintf(err, errlen, "database %s is in use by another switchboard daemon (it holds %s); stop it first",
               path, lock);
      return -EBUSY;
    }
    snprintf(err, errlen, "cannot lock %s: %s", lock, strerror(e));
    return -EIO;
  }
  *claim = fd;
  return 0;
}

void store_release(int claim) {
  if (claim >= 0) close(claim);
}

events_bus *store_events(store *st) { return st ? st->bus : NULL; }

void store_get_stats(store *st, store_stats *out) {
  uv_mutex_lock(&st->mu);
  *out = st->stats;
  uv_mutex_unlock(&st->mu);
}

/* ---- generic JSON requests ---- */

typedef struct sq_json_req {
  sq_req base;
  sq_json_fn fn;
  json_t *args;
  json_t *result;
  store_json_cb cb;
  void *arg;
} sq_json_req;

static void sq__json_run(store *st, sq_req *r) {
  sq_json_req *j = (sq_json_req *)r;
  json_decref(j->result);
  j->result = NULL;
  int rc = j->fn(st, r, j->args, &j->result);
  if (rc < 0 && r->status == 0) r->status = rc;
  if (r->status < 0 && r->err[0] == '\0') snprintf(r->err, sizeof(r->err), "%s", strerror(-r->status));
  if (r->status < 0) {
    json_decref(j->result);
    j->result = NULL;
  }
}

static void sq__json_done(store *st, sq_req *r) {
  sq_json_req *j = (sq_json_req *)r;
  if (j->cb != NULL) j->cb(j->arg, r->status, j->result, r->status < 0 ? r->err : NULL);
  json_decref(j->result);
  json_decref(j->args);
  free(j);
}

/* A JSON request for fn, owning args (freed here when NULL is returned). */
static sq_json_req *sq__json_req_new(sq_json_fn fn, json_t *args, store_json_cb cb, void *arg) {
  sq_json_req *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    json_decref(args);
    return NULL;
  }
  j->base.run = sq__json_run;
  j->base.done = sq__json_done;
  j->fn = fn;
  j->args = args;
  j->cb = cb;
  j->arg = arg;
  return j;
}

int sq_submit_json(store *st, sq_json_fn fn, json_t *args, store_json_cb cb, void *arg) {
  if (st == NULL || fn == NULL) {
    json_decref(args);
    return -EINVAL;
  }
  sq_json_req *j = sq__json_req_new(fn, args, cb, arg);
  if (j == NULL) return -ENOMEM;
  int rc = sq_enqueue(st, &j->base);
  if (rc < 0) {
    json_decref(args);
    free(j);
  }
  return rc;
}

int sq_submit_read_json(store *st, sq_json_fn fn, json_t *args, store_json_cb cb, void *arg) {
  if (st == NULL || st->n_readers == 0) return sq_submit_json(st, fn, args, cb, arg);
  if (fn == NULL || st->stopping) {
    json_decref(args);
    return fn == NULL ? -EINVAL : -ESHUTDOWN;
  }
  sq_json_req *j = sq__json_req_new(fn, args, cb, arg);
  if (j == NULL) return -ENOMEM;
  uv_mutex_lock(&st->mu);
  sq__append(&st->r_head, &st->r_tail, &j->base, &j->base);
  uv_cond_signal(&st->reader_cv);
  uv_mutex_unlock(&st->mu);
  return 0;
}

/* One reader: takes one read at a time from the shared queue (so that the
 * next waits for a free reader, not for this one), runs it on its own
 * connection in a read transaction of its own, and hands it to the loop as
 * the writer does. */
typedef struct sq_reader_arg {
  store *st;
  store *rd;
} sq_reader_arg;

static void sq__reader(void *arg) {
  sq_reader_arg a = *(sq_reader_arg *)arg;
  free(arg);
  store *st = a.st;
  pthread_setname_np(pthread_self(), "sb-reader");
  uv_mutex_lock(&st->mu);
  for (;;) {
    while (st->r_head == NULL && !st->stopping) uv_cond_wait(&st->reader_cv, &st->mu);
    sq_req *r = st->r_head;
    if (r == NULL) break; /* stopping, and every read is answered */
    st->r_head = r->next;
    if (st->r_head == NULL) st->r_tail = NULL;
    uv_mutex_unlock(&st->mu);
    r->next = NULL;
    r->run(a.rd, r);
    uv_mutex_lock(&st->mu);
    sq__append(&st->done_head, &st->done_tail, r, r);
    uv_async_send(&st->async);
  }
  uv_mutex_unlock(&st->mu);
}

static void sq__close_reader(store *rd) {
  for (size_t i = 0; i < SQ_STMT_SLOTS; i++)
    if (rd->stmts[i].stmt != NULL) sqlite3_finalize(rd->stmts[i].stmt);
  sqlite3_close(rd->db);
  free(rd);
}

/* Opens one read connection and starts its thread; 0 or -1 (logged, with
 * nothing left open). */
static int sq__start_one_reader(store *st) {
  store *rd = calloc(1, sizeof(*rd));
  sq_reader_arg *a = malloc(sizeof(*a));
  if (rd == NULL || a == NULL ||
      sqlite3_open_v2(st->path, &rd->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
      sq_register_functions(rd->db) != SQLITE_OK) {
    log_warn("store: no read connection for %s (%s)", st->path,
             rd != NULL && rd->db != NULL ? sqlite3_errmsg(rd->db) : "out of memory");
    if (rd != NULL) sqlite3_close(rd->db);
    free(rd);
    free(a);
    return -1;
  }
  sqlite3_busy_timeout(rd->db, 5000);
  sqlite3_exec(rd->db, "PRAGMA cache_size = -8192", NULL, NULL, NULL); /* KiB, like the writer's */
  rd->message_events_from = st->message_events_from; /* fixed at open; the events' reads need it */
  *a = (sq_reader_arg){st, rd};
  if (uv_thread_create(&st->reader_threads[st->n_readers], sq__reader, a) != 0) {
    log_warn("store: no reader thread for %s", st->path);
    free(a);
    sq__close_reader(rd);
    return -1;
  }
  st->readers[st->n_readers++] = rd;
  return 0;
}

/* Starts up to SQ_READERS readers; without any, reads go to the writer
 * (logged), with fewer they share what there is. */
static void sq__start_readers(store *st) {
  while (st->n_readers < SQ_READERS && sq__start_one_reader(st) == 0) {
  }
  if (st->n_readers == 0) log_warn("store: searches run in the writer's transactions");
}

/* Stops the readers once they have answered what is queued (st->stopping
 * is set), and closes their connections. */
static void sq__stop_readers(store *st) {
  uv_mutex_lock(&st->mu);
  uv_cond_broadcast(&st->reader_cv);
  uv_mutex_unlock(&st->mu);
  for (size_t i = 0; i < st->n_readers; i++) {
    uv_thread_join(&st->reader_threads[i]);
    sq__close_reader(st->readers[i]);
    st->readers[i] = NULL;
  }
  st->n_readers = 0;
}
