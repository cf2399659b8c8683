/* store_sqlite.h — internals shared by the SQLite store files (not a public header). */
#ifndef SB_CORE_STORE_SQLITE_H
#define SB_CORE_STORE_SQLITE_H

#include <sqlite3.h>

#include "clock.h"
#include "store.h"

#define SQ_STMT_SLOTS 256
/* Read-only connections and threads for the API's reads (two: a long
 * report or export beside a search, on a machine of two cores). */
#define SQ_READERS 2

typedef struct sq_req sq_req;
typedef struct sq_cache sq_cache;

/* What a message event says, the same whether published at commit or read
 * back from the message row later (so the two can never differ). */
typedef struct sq_message_event {
  int64_t id, thread_id, contact_id;
  const char *text, *subject;
  int reply; /* an agent's or automatic reply: {message_id, thread_id, status, automatic, preview} */
  int automatic, new_contact, new_thread;
} sq_message_event;

/* An event recorded by a request, published after commit. The strings live
 * in buf. data is JSON text, parsed only if someone subscribes; a message's
 * event keeps its fields instead (message, with text and subject cut to
 * what the event shows) and its JSON is only built for a subscriber. */
typedef struct sq_event_rec {
  struct sq_event_rec *next;
  int64_t id;
  const char *type, *channel, *inbox, *data;
  int is_message;
  sq_message_event message;
  char buf[];
} sq_event_rec;

/* run: on the writer thread inside the writer's transaction (re-run under
 * a savepoint of its own after another request failed: sq__run_more); sets
 * status/err. done: on the loop once the commit is durable; frees the
 * request. */
struct sq_req {
  sq_req *next;
  void (*run)(store *st, sq_req *r);
  void (*done)(store *st, sq_req *r);
  int status;
  char err[256];
  sq_event_rec *events, *events_tail; /* recorded events, in order */
  size_t ev_used;                     /* bytes of ev_buf taken by events */
  _Alignas(8) char ev_buf[512];       /* the first small events live here, not in malloc */
};

struct store {
  uv_loop_t *loop;
  uv_async_t async;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  /* Requests submitted during this turn of the loop (loop-owned): handed to
   * the writer all at once just before the loop next waits (sq__hand_over),
   * so the writer is woken once per turn rather than once per request. */
  sq_req *l_head, *l_tail;
  uv_prepare_t hand_over;
  int open_handles;              /* loop-owned: st is freed when the last closes */
  sq_req *q_head, *q_tail;       /* waiting for the writer */
  sq_req *done_head, *done_tail; /* committed, waiting for the loop */
  int stopping, thread_started;
  store_stats stats;             /* under mu */
  sqlite3 *db;                   /* writer-owned after open */
  struct { const char *sql; sqlite3_stmt *stmt; } stmts[SQ_STMT_SLOTS];
  events_bus *bus;
  router_channel *channels;      /* writer-owned */
  size_t n_channels;
  int64_t assign_seq;            /* writer-owned round-robin counter */
  uint64_t inbound_count;        /* writer-owned, folded into stats per batch */
  int64_t batch_now;             /* writer-owned, see sq_batch_now */
  int64_t next_id;               /* writer-owned: the next message or event id (sq_next_id) */
  int64_t message_events_from;   /* messages from this id on are read as events (schema 8) */
  int64_t attachment_limit;      /* loop-owned: store_set_attachment_limit */
  sq_cache *contact_cache;       /* "channel\x1fkind\x1fvalue" -> contact id */
  sq_cache *thread_cache;        /* per_contact / external key -> latest thread, flag closed */
  /* Where new tickets start: (pipeline name, status or NULL for the first
   * open one) -> pipeline id and status name. Writer-owned; forgotten with
   * the caches above and whenever a pipeline is saved. */
  struct sq_ticket_start {
    char *pipeline, *status, *first;
    int64_t pipeline_id;
  } ticket_starts[8];
  size_t n_ticket_starts;
  char *path;
  /* The checkpointer: its own connection and thread copy the WAL back into
   * the database off the writer's commit path (see sq__checkpointer). */
  int wal_limit_frames;          /* see SQ_WAL_LIMIT_FRAMES; tests lower it */
  int ckpt_frames;               /* see SQ_CHECKPOINT_FRAMES; tests lower it */
  int wal_over;                  /* writer-owned: the last commit passed it */
  uv_thread_t ckpt_thread;
  uv_cond_t ckpt_cv;             /* under mu */
  int ckpt_started;
  /* One checkpoint cycle (under mu): IDLE until the WAL passes ckpt_frames,
   * COPYING while the checkpointer copies it back beside the writer,
   * FINISH once little is left, which the writer copies itself between
   * batches so that its next transaction restarts the WAL. */
  enum { SQ_CKPT_IDLE, SQ_CKPT_COPYING, SQ_CKPT_FINISH } ckpt_phase;
  int wal_frames;                /* under mu: frames in the WAL after the last commit */
  sqlite3 *ckpt_db;
  /* The readers: SQ_READERS read-only connections, each with a thread of
   * its own, for the API's scans (sq_submit_read_json), so that a search
   * never runs inside the writer's group commit, where it held every
   * webhook behind it (bench/ingest/search.sh), and a long read (a report,
   * an export) does not hold a search behind it either: each reader takes
   * one request at a time from the shared queue. readers[i] is a store
   * holding only its connection and statement cache, which the query
   * functions take as their st; n_readers is 0 when none could be opened
   * (reads then go to the writer). */
  struct store *readers[SQ_READERS];
  uv_thread_t reader_threads[SQ_READERS];
  size_t n_readers;              /* started (the loop's: set at open, cleared at close) */
  uv_cond_t reader_cv;           /* under mu */
  sq_req *r_head, *r_tail;       /* under mu: waiting for a reader */
  /* The syncer: the writer commits with synchronous=NORMAL (its COMMIT
   * writes the WAL but does not fsync it) and goes on with the next batch,
   * while this thread makes every batch committed since its last pass
   * durable with one fdatasync of the WAL, and only then hands them to the
   * loop (see sq__syncer). */
  uv_thread_t sync_thread;
  uv_cond_t sync_cv;             /* under mu */
  int sync_started, sync_stop;   /* sync_stop under mu: the writer has ended */
  int wal_fd;                    /* the syncer's own descriptor of the WAL file */
  sq_req *sync_head, *sync_tail; /* under mu: committed, not yet durable */
  int sync_dirty;                /* under mu: a commit among them wrote frames */
  int sync_busy;                 /* under mu: the syncer is flushing */
  int wal_dirty;                 /* writer-owned: frames written since the last handoff */
  int sync_error;                /* under mu: errno of a failed fdatasync, then sticky */
  /* Inbound requests' memory, kept for the next ones (loop-owned; see
   * SQ_INBOUND_BLOCK in store_sqlite_route.c). */
  void *inbound_free;
  unsigned inbound_free_n;
  /* The search index (store_sqlite_index.c). Writer-owned: messages per
   * catch-up request, how long the writer waits idle before it catches up
   * by itself (tests change both under mu before they store anything),
   * whether the last catch-up left messages above the watermark, and
   * next_id when one last found none (nothing new since: no idle work). */
  int index_chunk;
  int64_t index_idle_ms;
  int index_more;
  int64_t index_seen_id;
  int index_spell;               /* the writer's last request was its own idle catch-up */
  int index_search_chunks;       /* loop-owned: catch-up requests a search may make */
  uint64_t inbound_at_ms;        /* loop-owned: uv_now when an inbound message was last submitted */
  int64_t index_busy_ms;         /* loop-owned: within this of one, a search makes one catch-up request */
  /* Tests: called on the syncer after each fdatasync of the WAL. */
  void (*sync_hook)(void *arg, int wal_fd);
  void *sync_hook_arg;
};

/* Sets a request's common fields to "nothing happened yet" (for one that
 * was malloc'd rather than calloc'd); run and done are the caller's. */
void sq_req_init(sq_req *r);

/* Frees the inbound request blocks kept for reuse (store_sqlite_route.c). */
void sq_inbound_blocks_free(store *st);

/* Queues a request (loop thread); the store's uv_prepare handle gives it to
 * the writer before the loop next waits for events. (One queued from another
 * prepare callback would wait a turn; nothing in the daemon does that.)
 * Returns 0 or -ESHUTDOWN. */
int sq_enqueue(store *st, sq_req *r);

/* Returns the cached prepared statement for a string-literal sql, reset and
 * with bindings cleared, or NULL (err logged). Writer thread only. */
sqlite3_stmt *sq_prep(store *st, const char *sql);
/* The same without clearing the bindings, for a statement whose caller
 * binds every parameter each time (the per-message statements). */
sqlite3_stmt *sq_prep_bound(store *st, const char *sql);

/* Runs a statement without results on the writer; returns 0 or -EIO. */
int sq_exec(store *st, const char *sql);

/* Binds text or NULL. */
void sq_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Column text or NULL. */
const char *sq_col_text(sqlite3_stmt *s, int i);

/* The channels connected through the API, and their rows as
 * store_api_channels_list gives them: appends each row of s (a statement of
 * SQ_API_CHANNELS_SELECT) to items; returns sqlite3_step's last code,
 * SQLITE_DONE when all went. */
#define SQ_API_CHANNELS_SELECT "SELECT name, spec, sealed FROM api_channels ORDER BY created_at, name"
int sq_api_channel_rows(sqlite3_stmt *s, json_t *items);

/* Fills r->status/-err from the connection's last error. Returns -EIO. */
int sq_fail(store *st, sq_req *r, const char *what);

/* Steps s, whose rows are one JSON value each (column 0, from SQLite's
 * json_object), into a new array *out (null for a row that does not
 * parse, so every row counts), and resets it. Returns 0, or -EIO with r
 * filled saying what failed (s may be NULL: sq_prep failed). */
int sq_json_rows(store *st, sq_req *r, sqlite3_stmt *s, const char *what, json_t **out);
/* The first row of s as sq_json_rows reads it into *out; -ENOENT saying
 * "WHAT ID does not exist" when there is none. */
int sq_json_one(store *st, sq_req *r, sqlite3_stmt *s, const char *what, int64_t id, json_t **out);

/* Persists an event and queues it on r for publishing after commit. data is
 * stolen. Returns 0 or -EIO. */
int sq_event(store *st, sq_req *r, const char *type, const char *channel, const char *inbox,
             json_t *data);

/* A ticket's ticket.assigned (user_id 0: unassigned, null in the event) and
 * ticket.queued events, in its channel's inbox. Return 0 or -EIO. */
int sq_event_ticket_assigned(store *st, sq_req *r, const char *channel, int64_t ticket_id, int64_t thread_id,
                             int64_t user_id);
int sq_event_ticket_queued(store *st, sq_req *r, const char *channel, int64_t ticket_id, int64_t thread_id);

/* Same with the data already as JSON text (the hot path avoids jansson). */
int sq_event_text(store *st, sq_req *r, const char *type, const char *channel,
                  const char *inbox, const char *data);

/* Messages and events take their ids from one sequence, so a message is
 * its own event: its message.in / message.out event has the message's id
 * and no row in events (store_events_after reads it from messages). Every
 * message and event insert binds its id from here. Writer thread. */
int64_t sq_next_id(store *st);

/* Queues the event a message insert stands for (m->id from sq_next_id),
 * without an events row; its strings are copied. Returns 0 or -EIO. */
int sq_event_message(store *st, sq_req *r, const sq_message_event *m, const char *type,
                     const char *channel, const char *inbox);

/* Flags of a message row (messages.flags) beside the ROUTER_IN_* ones: what
 * its message.in event said about the conversation. */
#define SQ_MSG_NEW_CONTACT 0x10000u
#define SQ_MSG_NEW_THREAD 0x20000u

/* The ids of threads' messages, walked newest first along the chain each
 * thread keeps (schema 10: threads.last_message_id, messages.prev_id), as
 * a common table expression named chain(id). heads is a SELECT of the
 * threads' last_message_id; a NULL (a thread without messages) walks
 * nothing but is a row of chain, so a limited walk must leave NULLs out
 * of heads. more ends the walk's step, which
 * reads the message as m: "AND m.prev_id > ?3" stops below an id,
 * " ORDER BY 1 DESC LIMIT ?4" walks several threads newest first across
 * all of them and stops after that many. A walk reads a message row per
 * step, as the thread index it replaced read an index entry and the row. */
#define SQ_CHAIN_WALK(heads, more)                                                       \
  "WITH RECURSIVE chain(id) AS (" heads " UNION ALL SELECT m.prev_id FROM messages m"   \
  " JOIN chain c ON m.id = c.id WHERE m.prev_id IS NOT NULL" more ") "
#define SQ_CHAIN(heads) SQ_CHAIN_WALK(heads, "")

/* How long conversations waited for their first reply, as a common table
 * expression first_reply(tid, wait): for each thread the SELECT threads
 * gives (its id, then its last_message_id) that has an inbound message,
 * the milliseconds from its first inbound message to the first reply an
 * agent wrote (outbound, not automatic) at or after it; wait is NULL while
 * there is none. One walk down each thread's chain reads each of its
 * messages once. */
#define SQ_FIRST_REPLY(threads)                                                                                  \
  "WITH RECURSIVE f(tid, head) AS (" threads "),"                                                               \
  " walk(tid, prev, dir, auto, at) AS (SELECT f.tid, m.prev_id, m.direction, m.automatic, m.created_at"         \
  "   FROM f JOIN messages m ON m.id = f.head UNION ALL"                                                         \
  "   SELECT w.tid, m.prev_id, m.direction, m.automatic, m.created_at FROM walk w JOIN messages m ON m.id = w.prev)," \
  " ms AS (SELECT tid, dir, auto, at,"                                                                           \
  "   min(CASE WHEN dir = 'in' THEN at END) OVER (PARTITION BY tid) AS first_in FROM walk),"                     \
  " first_reply(tid, wait) AS (SELECT tid,"                                                                      \
  "   min(CASE WHEN dir = 'out' AND auto = 0 AND at >= first_in THEN at END) - first_in"                         \
  "   FROM ms WHERE first_in IS NOT NULL GROUP BY tid) "

/* A small JSON object writer into a fixed buffer for event data. Strings are
 * cut at max bytes (on a UTF-8 boundary); max 0 = no cut. */
typedef struct sq_jw {
  char buf[4096];
  size_t n;
  int overflow;
} sq_jw;
/* Starts an empty object; the buffer itself is not cleared (it is 4 KiB
 * and the writer builds one per message). */
void sq_jw_init(sq_jw *w);
void sq_jw_int(sq_jw *w, const char *key, int64_t v);
void sq_jw_str(sq_jw *w, const char *key, const char *v, size_t max);
void sq_jw_bool(sq_jw *w, const char *key, int v);
/* Closes the object and returns its text. */
const char *sq_jw_end(sq_jw *w);

/* Writes v's len bytes as the inside of a JSON string (quotes and
 * backslashes escaped, control bytes as \u00XX) through put, in runs;
 * returns put's first non-zero result, or 0. */
int sq_json_escape(const char *v, size_t len, int (*put)(void *sink, const char *s, size_t n), void *sink);

/* Starts w and writes the event's members (then sq_jw_end). */
void sq_jw_message(sq_jw *w, const sq_message_event *m);

/* Writer-owned channel rules by name, or NULL. */
const router_channel *sq_channel(store *st, const char *name);


/* The batch's clock: read once when a batch starts (writer thread), so every
 * row of a batch carries the same commit-time timestamp. */
int64_t sq_batch_now(store *st);

/* Generic JSON request: fn runs on the writer with args (owned by the
 * request) and may set *result (new reference). */
typedef int (*sq_json_fn)(store *st, sq_req *r, json_t *args, json_t **result);
int sq_submit_json(store *st, sq_json_fn fn, json_t *args, store_json_cb cb, void *arg);
/* The same for a read that needs no writer state (only SQL through sq_prep
 * on the st it is given): it runs on the reader's connection, outside the
 * writer's transactions, and sees what was committed when it starts. */
int sq_submit_read_json(store *st, sq_json_fn fn, json_t *args, store_json_cb cb, void *arg);

/* Writer-owned string-keyed caches (store_sqlite_cache.c). max_pow2 is the
 * largest slot count, a power of two; the table grows up to it and empties
 * itself when that is half full. */
sq_cache *sq_cache_new(size_t max_pow2);
void sq_cache_free(sq_cache *c);
void sq_cache_clear(sq_cache *c);
int sq_cache_get(sq_cache *c, const char *key, int64_t *value, int *flag);
void sq_cache_put(sq_cache *c, const char *key, int64_t value, int flag);
/* Forgets the message-path caches: after any rollback, merge or thread
 * status change. */
void sq_caches_clear(store *st);
/* Forgets where new tickets start (st->ticket_starts): when a pipeline or
 * its statuses change, and with sq_caches_clear. */
void sq_ticket_starts_clear(store *st);

/* Fails the pending sends of channel, whose row the caller has just
 * deleted (over the API), with message.status events; 0 or -EIO. */
int sq_outbox_fail_channel(store *st, sq_req *r, const char *channel);

/* Shared steps of the message path (store_sqlite_route.c). */
int sq_assign_ticket(store *st, sq_req *r, int64_t ticket_id, int64_t thread_id,
                     const char *channel);
int sq_drain_queue(store *st, sq_req *r);
/* Adds the store's SQL functions to a connection: sb_contains(text, q), a
 * substring test that ignores case in every script (the API's search), and
 * sb_fold(text), the text as that test compares it (the search index). */
int sq_register_functions(sqlite3 *db);
/* Decodes one UTF-8 code point at s (n bytes left) into *cp; returns its
 * length, or 0 for a byte that does not start a valid sequence. */
size_t sq_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes s (n bytes) in lower case into out, which holds 2 * n + 4 bytes (a
 * lower-case letter takes at most one byte more than its capital); bytes
 * that are not valid UTF-8 are kept as they are. Returns the length. The
 * search's one case folding: sb_contains and the index both use it. */
size_t sq_fold(const unsigned char *s, size_t n, char *out);
/* Moves a ticket to status (NULL: keeps it) with props_patch (NULL: none)
 * merged into its properties, refusing a status or properties change that
 * leaves a required property missing, and publishes ticket.updated when
 * anything changed (priority_changed: its priority, set before). 0, or
 * -ENOENT/-EINVAL/-EIO with r filled. */
int sq_ticket_update(store *st, sq_req *r, int64_t ticket_id, const char *status, const json_t *props_patch,
                     int priority_changed);
int sq_queue_outbound(store *st, sq_req *r, int64_t thread_id, const char *channel,
                      int64_t user_id, const char *text, const char *html,
                      const char *attachments_json, int64_t reply_to, int automatic,
                      int64_t *message_id);

/* The search index (store_sqlite_index.c). */

/* Sets the index's defaults on a new store and, at open, its watermark
 * back to the newest message if messages above it were deleted (their
 * ids may be given again). Returns 0 or -EIO with err filled. */
int sq_index_open(store *st, char *err, size_t errlen);

/* Writer thread, in its wait for work: how long to wait before catching
 * up by itself (ms), or -1 when there is nothing to catch up. Half a
 * second after its last request; between its own chunks, a moment (the writer
 * clears st->index_spell whenever it takes requests). */
int64_t sq_index_idle_wait(store *st);

/* Writer thread, after waiting idle that long: a catch-up request of its
 * own to run and commit as any other (freed by its done), or NULL. */
sq_req *sq_index_idle_request(store *st);

/* Loop thread: runs fn (a read of the conversations list, args owned) on
 * the reader once the index has caught up, in chunks of its own writer
 * requests, at most st->index_search_chunks of them (messages left above
 * the watermark are scanned). Returns 0 or a negative errno (args freed). */
int sq_index_then_read(store *st, sq_json_fn fn, json_t *args, store_json_cb cb, void *arg);

/* The FTS5 query that finds candidates for q in the index: the trigrams of
 * q as sb_fold folds it, all required; NULL when q is shorter than three
 * characters or not valid UTF-8 (the search then scans). malloc'd. */
char *sq_index_match(const char *q);

/* Attachment content (store_sqlite_attach.c). One attachment's bytes, at
 * position in the message's attachments array. */
typedef struct sq_blob {
  size_t position;
  const char *data;
  size_t len;
} sq_blob;

/* Loop thread: the attachments' JSON as stored with an inbound message on
 * channel (*json, malloc'd; NULL when n is 0), and copies of the content
 * within the store's limit (*blobs: one malloc'd block to free, NULL when
 * none). Content over the limit is not copied; its JSON entry gets an
 * "error" and a warning is logged. Returns 0 or -ENOMEM (nothing to free). */
int sq_attachments_prepare(store *st, const char *channel, const router_attachment *a, size_t n,
                           char **json, sq_blob **blobs, size_t *n_blobs);

/* Writer thread, after message_id was inserted with attachments_json:
 * stores the content and writes each stored entry's id into the message's
 * attachments. Returns 0 or -EIO (r filled). */
int sq_attachments_insert(store *st, sq_req *r, int64_t message_id, const char *attachments_json,
                          const sq_blob *blobs, size_t n);

/* The conversation's row as the conversations list has it (no messages).
 * -ENOENT when there is none. */
int sq_thread_summary(store *st, sq_req *r, int64_t id, json_t **result);

/* A conversation's label names as a JSON array, in name order (folded, as
 * labels are compared), for a SELECT: thread is the SQL of its id. */
#define SQ_THREAD_LABELS(thread)                                                                     \
  "(SELECT json_group_array(name) FROM (SELECT l.name FROM thread_labels tl JOIN labels l"         \
  " ON l.id = tl.label_id WHERE tl.thread_id = " thread " ORDER BY l.folded, l.name))"

/* Writer thread: changes thread_id's labels (store_sqlite_label.c). set, a
 * JSON array of names, replaces them; add and remove change only those
 * (NULL: none). channel is the conversation's, for the thread.labels event
 * published when the set changed. -EINVAL for a name that is no label's or
 * one both added and removed (r->err ends "(labels)"), -EIO. */
int sq_thread_labels(store *st, sq_req *r, int64_t thread_id, const char *channel, const json_t *set,
                     const json_t *add, const json_t *remove);

/* Writer thread, in a reply's transaction: canned response name's text
 * with the contact's and the author's names filled in, into *out
 * (malloc'd). -EINVAL saying "... does not exist (canned)" when there is
 * none. */
int sq_canned_text(store *st, sq_req *r, const char *name, int64_t contact_id, int64_t user_id, char **out);

/* One contact (with identities), and one conversation (with its messages
 * and notes), as the API reads them; -ENOENT when there is none. */
int sq_contact_json(store *st, sq_req *r, int64_t id, json_t **result);
int sq_conversation_json(store *st, sq_req *r, int64_t id, json_t **result);

/* A conversation's internal notes, oldest first, as a JSON array into *out. */
int sq_thread_notes(store *st, sq_req *r, int64_t thread_id, json_t **out);

/* The id of the user name (a JSON string) names into *uid; 0 for anything
 * else (null: nobody). A name that is no user's is -EINVAL saying
 * "FIELD \"name\" is not a user". */
int sq_user_named(store *st, sq_req *r, const json_t *name, const char *field, int64_t *uid);

/* Gives a ticket and its conversation to the user owner names (null:
 * nobody), publishes ticket.assigned and drains the queue. -ENOENT for no
 * such ticket, -EINVAL for no such user (naming field). */
int sq_ticket_assign(store *st, sq_req *r, int64_t ticket_id, const json_t *owner, const char *field);

/* The channel (into out) a reply to a conversation of thread_channel goes
 * through: the one asked for, else thread_channel's reply_channel, else
 * thread_channel. One that only takes messages in is -EINVAL; on another
 * channel than the conversation's, the contact needs an identity there or
 * an email address the channel starts conversations at (-EINVAL saying
 * why). */
int sq_reply_channel(store *st, sq_req *r, const char *thread_channel, const char *asked, int64_t contact,
                     char *out, size_t len);

/* Reports (store_sqlite_report.c). Sorts v ascending. */
void sq_sort_i64(int64_t *v, size_t n);
/* The median of n sorted values (the mean of the middle two when n is
 * even); n > 0. */
double sq_median(const int64_t *sorted, size_t n);

/* Deletes the uploads no reply named within STORE_UPLOAD_TTL_MS of now.
 * Returns 0 or -EIO. */
int sq_uploads_sweep(store *st, int64_t now_ms);

/* Fills in a reply's attachments that name stored content (a link to
 * /api/v1/attachments/ID): its id, and what they leave out — mime_type,
 * filename, size — from that content, so the conversation shows what the
 * channel was given. Replaces *attachments_json (malloc'd) when it changes
 * anything. */
int sq_uploads_describe(store *st, sq_req *r, char **attachments_json);
/* Writer thread, in a reply's transaction: checks that every stored file
 * the reply's attachments (JSON array) link to exists, and gives the
 * uploads among them to message_id. Returns 0, or -EINVAL naming the
 * missing one, or -EIO (r filled). */
int sq_uploads_claim(store *st, sq_req *r, const char *attachments_json, int64_t message_id);

#endif
