/* email.h — the inside of the email plugin, shared by its files (never installed).
 *
 * The plugin is split by job: email.c (descriptor, settings, lifecycle),
 * imap.c (polling the mailbox), parse.c (MIME → a normalized mail),
 * thread.c (thread keys, participants and the Message-ID map in the
 * channel's key/value store), smtp.c (building and sending replies).
 * Functions shared between the files have hidden visibility (the build's
 * preset), so the only exported symbol stays sb_plugin_entry. */
#ifndef SB_PLUGIN_EMAIL_H
#define SB_PLUGIN_EMAIL_H

#include <stddef.h>
#include <stdint.h>
#include <switchboard/plugin.h>

/* One attachment or inline image of an inbound mail. */
typedef struct email_attachment {
  char *filename;
  char *mime_type;
  char *content_id; /* without <>, or NULL */
  char *data;       /* NULL when over max_attachment_bytes (then only listed) */
  size_t len;       /* decoded size */
  int is_inline;
} email_attachment;

/* A mail as the help desk needs it; every string is UTF-8, malloc'd, or NULL. */
typedef struct email_parsed {
  char *message_id;  /* without <>; "hash-<hex>" when the mail has none */
  char *from_addr;   /* lower case */
  char *from_name;
  char *subject;
  char *text;        /* the new text, quoted history cut off */
  char *quoted;      /* the quoted history of a reply, or NULL */
  char *html;
  char *in_reply_to; /* without <> */
  char **refs;       /* References, without <>, oldest first */
  size_t n_refs;
  int64_t date_ms;   /* the Date header, 0 when absent or bad */
  uint32_t flags;    /* SB_IN_* */
  char *loop_reason; /* why NO_AUTOREPLY/AUTOMATIC was set, or NULL */
  char *bounce_of;   /* a bounce: the Message-ID it reports on (without <>) */
  char *bounce_reason;
  int bounce_failed; /* the report says delivery failed (Action: failed, or a 5.x.x status): not a
                        delay or a success report */
  char *fwd_addr;    /* a forward: the original sender, or NULL */
  char *fwd_name;
  char *fwd_how;     /* "rfc822", "gmail", "outlook", "apple", "resent" */
  email_attachment *atts;
  size_t n_atts;
  char *warnings;    /* "; "-joined parse warnings, or NULL */
} email_parsed;

/* Initialises gmime once per process (idempotent; loop thread). */
void email_mime_init(void);

/* Parses raw bytes (any bytes) into *out. Never fails for bad input: what
 * cannot be read becomes a warning. Attachments larger than max_att_bytes
 * (0 = no limit) are listed without data. hash_key is used to derive a
 * stable id when the mail has no Message-ID. Returns 0 or -ENOMEM-like
 * negative code (out then cleared). Free with email_parsed_free. */
int email_parse(const char *raw, size_t len, uint64_t max_att_bytes, email_parsed *out);
void email_parsed_free(email_parsed *p);

/* Splits plain text into the new text and the quoted history the mail
 * ends with: returns the byte offset where the history starts (len when
 * there is none, or when new text follows the quote). */
size_t email_quote_start(const char *text, size_t len);

/* 1 when id (without <>) is a Message-ID another mail can name in
 * In-Reply-To and References: it has an @ and no space, bracket or line
 * break. The "hash-..." stand-in of a mail that had none is not one. */
int email_message_id_citable(const char *id);

/* Builds the metadata_json object for a parsed mail (malloc'd). */
char *email_metadata_json(const email_parsed *p);
/* Plain text of an HTML body (tags and what is inside <style>, <script>,
 * <head> dropped, line breaks at block ends, a few entities decoded): for
 * a mail or a reply that has HTML only. malloc'd UTF-8. */
char *email_html_to_text(const char *html);

/* --- thread.c: keys in the channel's key/value store ------------------- */

/* Thread bookkeeping. All functions run on the loop thread. */
typedef struct email_threads {
  const sb_host *host;
  sb_channel *channel;
} email_threads;

/* The thread key stored for a Message-ID (without <>), or NULL. The pointer
 * is valid until the next kv change. */
const char *email_thread_of(email_threads *t, const char *message_id);
/* Remembers message_id → thread key (bounded: the oldest are forgotten). */
void email_thread_remember(email_threads *t, const char *message_id, const char *thread);
/* The thread key for a subject's tag "[#N]" if N is a thread of this
 * channel, else NULL; writes it into buf. */
const char *email_thread_by_tag(email_threads *t, const char *subject, char *buf, size_t buflen);
/* Makes a new thread key "mail-N" into buf. */
const char *email_thread_new(email_threads *t, char *buf, size_t buflen);
/* The tag "[#N]" for a thread key "mail-N" into buf; "" for other keys. */
const char *email_thread_tag(const char *thread, char *buf, size_t buflen);
/* 1 when addr (lower case) takes part in the thread. */
int email_thread_has_participant(email_threads *t, const char *thread, const char *addr);
void email_thread_add_participant(email_threads *t, const char *thread, const char *addr);
/* The References chain of the thread ("<a> <b>"), or NULL; and appending. */
const char *email_thread_refs(email_threads *t, const char *thread);
void email_thread_add_ref(email_threads *t, const char *thread, const char *message_id);
/* The thread's first subject, or NULL; set once. */
const char *email_thread_subject(email_threads *t, const char *thread);
void email_thread_set_subject(email_threads *t, const char *thread, const char *subject);

/* Picks the thread of an inbound mail: References/In-Reply-To known to
 * this channel with the sender taking part, then the subject tag with the
 * sender taking part, else a new thread. Writes into buf; *how gets
 * "reference", "tag", "known" or "new". */
const char *email_thread_pick(email_threads *t, const email_parsed *p, const char *owner_addr, char *buf,
                              size_t buflen, const char **how);

/* --- smtp.c: outbound ---------------------------------------------------- */

typedef struct email_outbound_cfg {
  const char *from_address;
  const char *from_name_mode; /* "agent_and_company" or "company" */
  const char *company_name;
  const char *signature;
  const char *domain;         /* for Message-IDs */
  const char *id_salt;        /* the channel's own, in Message-IDs made from idempotency keys (NULL: none) */
} email_outbound_cfg;

/* Builds the RFC 5322 reply for msg (CRLF line ends) into *out and *out_len
 * (malloc'd) and its Message-ID (without <>) into *out_id (malloc'd). The
 * Message-ID is the same on every attempt of a reply (made from its
 * idempotency key and cfg->id_salt), so a mail sent again after a crash or
 * a lost answer is recognisably the same mail; random without a salt.
 * references/in_reply_to/subject come from the thread (may be NULL). */
int email_build_reply(const email_outbound_cfg *cfg, const sb_outbound_message *msg, const char *thread_tag,
                      const char *subject, const char *in_reply_to, const char *references, int64_t now_ms,
                      char **out, size_t *out_len, char **out_id);

/* Expands {full_name}, {first_name}, {last_name} in a signature (malloc'd). */
char *email_signature_expand(const char *signature, const char *agent_name);

/* --- the instance (email.c), its polling (imap.c) ---------------------- */

typedef struct email {
  const sb_host *host;
  sb_channel *channel;
  const sb_config *cfg;
  email_threads threads;
  email_outbound_cfg out;
  char *imap_base;      /* "imap://host:port" without the mailbox */
  char *mailbox;        /* the mailbox part of imap_url, as written there ("INBOX") */
  const char *smtp_url;
  const char *username;
  const char *password;
  uint32_t tls;         /* SB_MAIL_TLS_* */
  uint64_t poll_ms;
  char *move_to;        /* after_read "move:FOLDER": the folder; NULL: mark seen */
  int owner_forwarder;  /* forwarded_mail_owner == "forwarder" */
  int import_new;       /* initial_import == "new": the first connect skips the mail already there */
  uint64_t max_att;
  char domain[256];
  char id_salt[17];     /* the channel's Message-ID salt (key/value "message_id_salt") */
  /* polling */
  sb_timer *timer;
  sb_mail_call *call;   /* the IMAP call in flight, or NULL */
  int closing;
  int connected;        /* the last poll reached the server (CONNECTED reported) */
  int fatal;            /* auth_failed or config_error reported since connect() */
  uint64_t uidvalidity;
  uint64_t *uids;       /* UIDs found by the last search, ascending */
  size_t n_uids, next_uid;
  uint64_t failing_uid; /* the UID whose fetch the server refused last, and how often in a row */
  int failing_count;
  uint64_t polls;       /* completed poll cycles, for tests and logs */
} email;

/* The TLS mode for a transfer to url: the setting, except that a TLS scheme
 * (imaps://, smtps://) already is TLS. */
uint32_t email_tls_for(const email *e, const char *url);

/* Reports the channel's state with reason (NULL for none; the password is
 * masked if it appears). A fatal state stands until the next connect(): a
 * later transient or connected report is only logged, so an IMAP outage
 * never hides an SMTP config_error, nor restarts the reconnects the host
 * stopped for it. */
void email_set_state(email *e, uint32_t state, const char *reason);

/* Masks every occurrence of the password in s (in place, same length). */
void email_redact(const email *e, char *s);

/* Starts polling now (connect) and stops it (disconnect). */
void email_imap_start(email *e);
void email_imap_stop(email *e);

/* Emits one fetched mail; done(e, status) runs once it is stored or
 * refused. headers_only: raw is only the header block of a mail too large
 * to fetch whole (stored with a note and a parse warning). Returns 0 or a
 * negative code (done not called). */
int email_inbound(email *e, const char *raw, size_t len, int headers_only, void (*done)(email *e, int status));

/* The largest mail fetched whole: twice max_attachment_bytes plus 256 KiB
 * (MIME encoding grows data by a third), or 256 MiB without a limit. */
uint64_t email_fetch_limit(const email *e);

/* Parses the numbers after "* SEARCH" in an IMAP response into *out
 * (malloc'd, ascending, only those > after). Returns the count. */
size_t email_imap_search_uids(const char *body, uint64_t after, uint64_t **out);
/* Reads "UIDVALIDITY n" from a STATUS/SELECT response; 0 when absent. */
uint64_t email_imap_uidvalidity(const char *body);
/* Reads "UIDNEXT n" from a STATUS/SELECT response; 0 when absent. */
uint64_t email_imap_uidnext(const char *body);

#endif
