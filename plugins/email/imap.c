/* imap.c — polls the support mailbox: STATUS, UID SEARCH from the last seen
 * UID, fetch each new mail, hand it to the host, then mark it seen or move it.
 *
 * One IMAP command is in flight at a time. The cursor lives in the channel's
 * key/value store: "uidvalidity" and "last_uid". A changed UIDVALIDITY
 * resets the cursor to 0, so the mailbox is read again from the start; the
 * router dedups on the Message-ID and thread.c remembers every Message-ID's
 * thread, so nothing is stored twice and threads stay as they were. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

#define EMAIL_FETCH_PER_POLL 50
#define EMAIL_FETCH_TRIES 3 /* a mail the server refuses this often in a row is skipped */

static void poll_step(email *e);
static void poll_done(email *e, int ok);
static void poll_lost(email *e, const char *reason);

size_t email_imap_search_uids(const char *body, uint64_t after, uint64_t **out) {
  *out = NULL;
  size_t n = 0, cap = 0;
  for (const char *s = body; s != NULL && (s = strstr(s, "* SEARCH")) != NULL;) {
    s += 8;
    while (*s == ' ' || isdigit((unsigned char)*s)) {
      if (*s == ' ') {
        s++;
        continue;
      }
      char *end;
      uint64_t u = strtoull(s, &end, 10);
      s = end;
      if (u <= after) continue;
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        uint64_t *g = realloc(*out, cap * sizeof(*g));
        if (g == NULL) return n;
        *out = g;
      }
      (*out)[n++] = u;
    }
  }
  /* Ascending, so the cursor only moves forward (insertion sort: short lists). */
  for (size_t i = 1; i < n; i++) {
    uint64_t v = (*out)[i];
    size_t j = i;
    while (j > 0 && (*out)[j - 1] > v) {
      (*out)[j] = (*out)[j - 1];
      j--;
    }
    (*out)[j] = v;
  }
  return n;
}

/* The number after "NAME " in a STATUS/SELECT response; 0 when absent. */
static uint64_t imap_status_number(const char *body, const char *name) {
  size_t n = strlen(name);
  for (const char *s = body; s != NULL && (s = strstr(s, name)) != NULL; s += n) {
    if (s[n] == ' ' && (s == body || s[-1] == ' ' || s[-1] == '(' || s[-1] == '['))
      return strtoull(s + n + 1, NULL, 10);
  }
  return 0;
}

uint64_t email_imap_uidvalidity(const char *body) { return imap_status_number(body, "UIDVALIDITY"); }

uint64_t email_imap_uidnext(const char *body) { return imap_status_number(body, "UIDNEXT"); }

static uint64_t kv_u64(email *e, const char *key) {
  const char *v = e->host->kv_get(e->channel, key, NULL);
  return v != NULL ? strtoull(v, NULL, 10) : 0;
}

static void kv_put_u64(email *e, const char *key, uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRIu64, v);
  e->host->kv_set(e->channel, key, buf, strlen(buf), NULL, NULL);
}

typedef void (*step_fn)(email *e, const sb_mail_response *r);

typedef struct imap_op {
  email *e;
  step_fn next;
} imap_op;

static void imap_done(void *arg, const sb_mail_response *r) {
  imap_op *op = arg;
  email *e = op->e;
  step_fn next = op->next;
  free(op);
  e->call = NULL;
  if (r->status == SB_ECANCELED || e->closing) return;
  if (r->status == SB_EACCES) {
    e->connected = 0;
    email_set_state(e, SB_STATE_AUTH_FAILED, "the IMAP server refused the username or password");
    return;
  }
  if (r->status == SB_EPROTO) {
    e->connected = 0;
    email_set_state(e, SB_STATE_CONFIG_ERROR,
                    "TLS with the IMAP server failed (tls is \"required\": does the server offer STARTTLS?)");
    return;
  }
  next(e, r);
}

/* Runs one IMAP command (NULL: fetch the URL) on mailbox_url; next gets the answer. */
static int imap_run(email *e, const char *url, const char *command, step_fn next) {
  imap_op *op = malloc(sizeof(*op));
  if (op == NULL) return SB_ENOMEM;
  op->e = e;
  op->next = next;
  sb_mail_request rq = {.struct_size = sizeof(rq)};
  rq.url = url;
  rq.command = command;
  rq.username = e->username;
  rq.password = e->password;
  rq.tls = email_tls_for(e, url);
  rq.timeout_ms = 60000;
  rq.max_response_bytes = command != NULL ? 16u * 1024u * 1024u : email_fetch_limit(e);
  e->call = e->host->mail_request(e->channel, &rq, imap_done, op);
  if (e->call == NULL) {
    free(op);
    return SB_EINVAL;
  }
  return SB_OK;
}

static char *mailbox_url(email *e, const char *suffix) {
  size_t n = strlen(e->imap_base) + strlen(e->mailbox) + strlen(suffix) + 4;
  char *u = malloc(n);
  if (u != NULL) snprintf(u, n, "%s/%s%s", e->imap_base, e->mailbox, suffix);
  return u;
}

/* An IMAP command of the poll failed (server unreachable, connection
 * dropped, timeout, command refused): says what happened and ends the cycle
 * disconnected. */
static void transient(email *e, const sb_mail_response *r, const char *what) {
  const char *why = r->error != NULL && r->error[0] != '\0' ? r->error : "no reason given";
  char reason[512];
  if (r->status == SB_ETIMEDOUT)
    snprintf(reason, sizeof(reason), "the IMAP server did not answer in time (%s: %s)", what, why);
  else if (r->status == SB_EIO)
    snprintf(reason, sizeof(reason), "IMAP %s failed (connection dropped or command refused): %s", what, why);
  else
    snprintf(reason, sizeof(reason), "the IMAP server could not be reached (%s: %s)", what, why);
  poll_lost(e, reason);
}

/* Counts one more refusal for the current UID (a fetch or a move the
 * server would not do); returns how many in a row, and starts over (for
 * the next UID to fail) once that reaches EMAIL_FETCH_TRIES. */
static int refused_in_a_row(email *e) {
  uint64_t uid = e->uids[e->next_uid - 1];
  if (e->failing_uid != uid) e->failing_uid = uid, e->failing_count = 0;
  int n = ++e->failing_count;
  if (n >= EMAIL_FETCH_TRIES) e->failing_uid = 0, e->failing_count = 0;
  return n;
}

/* The move of a stored mail (after_read move:FOLDER) is done, or failed:
 * then the mail is read again from the next poll on (the help desk knows
 * it: a duplicate, stored once) and the move tried again, at most
 * EMAIL_FETCH_TRIES times in a row, after which it is left where it is,
 * logged as an error, so that it cannot hold up the mail behind it. */
static void after_read_done(email *e, const sb_mail_response *r) {
  if (r->status != SB_OK) {
    uint64_t uid = e->uids[e->next_uid - 1];
    const char *why = r->error != NULL && r->error[0] != '\0' ? r->error : "no reason given";
    int n = refused_in_a_row(e);
    if (n < EMAIL_FETCH_TRIES) {
      e->host->log(e->channel, SB_LOG_WARN,
                   "moving mail UID %" PRIu64 " to \"%s\" failed (%s); it is read and moved again", uid, e->move_to,
                   why);
      kv_put_u64(e, "last_uid", uid - 1);
      e->next_uid = e->n_uids; /* this cycle ends here */
      poll_done(e, 1);
      return;
    }
    e->host->log(e->channel, SB_LOG_ERROR,
                 "moving mail UID %" PRIu64 " to \"%s\" failed %d times in a row (%s); it stays where it is", uid,
                 e->move_to, n, why);
  }
  poll_step(e);
}

static void stored(email *e, int status) {
  if (e->closing) return;
  if (status != SB_OK) {
    e->host->log(e->channel, SB_LOG_WARN, "a mail could not be stored (code %d); it is read again later", status);
    poll_done(e, 0);
    return;
  }
  uint64_t uid = e->uids[e->next_uid - 1];
  kv_put_u64(e, "last_uid", uid);
  if (e->move_to != NULL) {
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "UID MOVE %" PRIu64 " \"%s\"", uid, e->move_to);
    char *url = mailbox_url(e, "");
    int rc = url != NULL ? imap_run(e, url, cmd, after_read_done) : SB_ENOMEM;
    free(url);
    if (rc == SB_OK) return;
  }
  /* Fetching BODY[] already set \Seen: nothing more to do for "seen". */
  poll_step(e);
}

/* Hands a fetched mail (or its header block) to the host. */
static void emit(email *e, const sb_mail_response *r, int headers_only) {
  int rc = email_inbound(e, r->body, r->body_len, headers_only, stored);
  if (rc == SB_EINVAL) {
    /* Refused by the host as invalid (never for content: the parser always
     * yields a message); skip it rather than stall the mailbox. */
    e->host->log(e->channel, SB_LOG_ERROR, "a mail was refused by the host (code %d); skipped", rc);
    stored(e, SB_OK);
  } else if (rc != SB_OK) {
    e->host->log(e->channel, SB_LOG_WARN, "a mail could not be handed over (code %d); it is read again later", rc);
    poll_done(e, 0);
  }
}

/* A fetch the server refused (it answered, but not with the mail: a file it
 * cannot read, a UID gone meanwhile), or whose answer, even its header
 * fields alone, is over the fetch limit. The same UID refused
 * EMAIL_FETCH_TRIES times in a row is skipped, logged as an error naming
 * it, so one mail the server cannot serve does not hold up every mail
 * after it; else the cycle ends as any failure does and the next tries
 * again. Timeouts and unreachable servers never count: they say nothing of
 * the mail. */
static void fetch_refused(email *e, const sb_mail_response *r, const char *what) {
  uint64_t uid = e->uids[e->next_uid - 1];
  int n = r->status == SB_EIO || r->status == SB_EFBIG ? refused_in_a_row(e) : 0;
  if (n >= EMAIL_FETCH_TRIES) {
    e->host->log(e->channel, SB_LOG_ERROR,
                 "mail UID %" PRIu64 " could not be fetched %d times in a row (%s); skipped, so the mail after it "
                 "is read: look for it in the mailbox",
                 uid, n, r->error != NULL && r->error[0] != '\0' ? r->error : "no reason given");
    kv_put_u64(e, "last_uid", uid);
    poll_step(e);
    return;
  }
  transient(e, r, what);
}

/* The header fields a mail is stored by (sender, recipients, ids, thread,
 * loop signals), for a mail whose whole header block is over the limit. */
#define EMAIL_HEADER_FIELDS                                                                                        \
  "HEADER.FIELDS%20(FROM%20SENDER%20REPLY-TO%20TO%20CC%20SUBJECT%20DATE%20MESSAGE-ID%20IN-REPLY-TO%20REFERENCES" \
  "%20RESENT-FROM%20RETURN-PATH%20AUTO-SUBMITTED%20PRECEDENCE%20LIST-ID%20LIST-UNSUBSCRIBE"                       \
  "%20X-AUTO-RESPONSE-SUPPRESS%20X-AUTOREPLY%20X-AUTORESPOND%20MIME-VERSION)"

static void fetched_header_fields(email *e, const sb_mail_response *r) {
  if (r->status != SB_OK) {
    fetch_refused(e, r, "header fields fetch");
    return;
  }
  emit(e, r, 1);
}

static void fetched_headers(email *e, const sb_mail_response *r) {
  if (r->status == SB_EFBIG) {
    /* Even its header block is over the limit (thousands of trace
     * lines): the fields it is stored by, which are small. */
    char suffix[512];
    snprintf(suffix, sizeof(suffix), "/;UID=%" PRIu64 "/;SECTION=%s", e->uids[e->next_uid - 1], EMAIL_HEADER_FIELDS);
    char *url = mailbox_url(e, suffix);
    int rc = url != NULL ? imap_run(e, url, NULL, fetched_header_fields) : SB_ENOMEM;
    free(url);
    if (rc != SB_OK) poll_done(e, 0);
    return;
  }
  if (r->status != SB_OK) {
    fetch_refused(e, r, "header fetch");
    return;
  }
  emit(e, r, 1);
}

static void fetched(email *e, const sb_mail_response *r) {
  if (r->status == SB_EFBIG) {
    /* Too large to fetch whole: store what its headers say, never stall. */
    char suffix[96];
    snprintf(suffix, sizeof(suffix), "/;UID=%" PRIu64 "/;SECTION=HEADER", e->uids[e->next_uid - 1]);
    char *url = mailbox_url(e, suffix);
    int rc = url != NULL ? imap_run(e, url, NULL, fetched_headers) : SB_ENOMEM;
    free(url);
    if (rc != SB_OK) poll_done(e, 0);
    return;
  }
  if (r->status != SB_OK) {
    fetch_refused(e, r, "fetch");
    return;
  }
  emit(e, r, 0);
}

/* Fetches the next found UID, or ends the cycle. */
static void poll_step(email *e) {
  if (e->closing) return;
  if (e->next_uid >= e->n_uids || e->next_uid >= EMAIL_FETCH_PER_POLL) {
    poll_done(e, 1);
    return;
  }
  uint64_t uid = e->uids[e->next_uid++];
  char suffix[80];
  snprintf(suffix, sizeof(suffix), "/;UID=%" PRIu64, uid);
  char *url = mailbox_url(e, suffix);
  int rc = url != NULL ? imap_run(e, url, NULL, fetched) : SB_ENOMEM;
  free(url);
  if (rc != SB_OK) poll_done(e, 0);
}

static void searched(email *e, const sb_mail_response *r) {
  if (r->status != SB_OK) {
    transient(e, r, "UID SEARCH");
    return;
  }
  free(e->uids);
  e->uids = NULL;
  e->n_uids = email_imap_search_uids(r->body, kv_u64(e, "last_uid"), &e->uids);
  e->next_uid = 0;
  poll_step(e);
}

static void statused(email *e, const sb_mail_response *r) {
  if (r->status != SB_OK) {
    transient(e, r, "STATUS");
    return;
  }
  if (!e->connected) {
    e->connected = 1;
    email_set_state(e, SB_STATE_CONNECTED, NULL);
  }
  uint64_t v = email_imap_uidvalidity(r->body);
  uint64_t have = kv_u64(e, "uidvalidity");
  if (v != 0 && v != have) {
    uint64_t start = 0, next = email_imap_uidnext(r->body);
    if (have != 0) {
      e->host->log(e->channel, SB_LOG_WARN, "UIDVALIDITY changed (%" PRIu64 " → %" PRIu64 "): reading the mailbox again",
                   have, v);
    } else if (e->import_new && next > 0) {
      /* the first connect with initial_import "new": what is there stays unread */
      start = next - 1;
      e->host->log(e->channel, SB_LOG_INFO, "first connect: reading mail from UID %" PRIu64 " on (initial_import: new)",
                   next);
    }
    kv_put_u64(e, "uidvalidity", v);
    kv_put_u64(e, "last_uid", start);
  }
  e->uidvalidity = v;
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "UID SEARCH UID %" PRIu64 ":*", kv_u64(e, "last_uid") + 1);
  char *url = mailbox_url(e, "");
  int rc = url != NULL ? imap_run(e, url, cmd, searched) : SB_ENOMEM;
  free(url);
  if (rc != SB_OK) poll_done(e, 0);
}

/* The mailbox name as IMAP wants it in a command: the URL's percent-encoding
 * undone, quotes and backslashes escaped. */
static void mailbox_name(const char *enc, char *out, size_t outlen) {
  size_t o = 0;
  for (const char *s = enc; *s != '\0' && o + 3 < outlen; s++) {
    char c = *s;
    if (c == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
      char hex[3] = {s[1], s[2], 0};
      c = (char)strtol(hex, NULL, 16);
      s += 2;
    }
    if ((unsigned char)c < 0x20) continue; /* no CR/LF into a command */
    if (c == '"' || c == '\\') out[o++] = '\\';
    out[o++] = c;
  }
  out[o] = '\0';
}

static void poll_start(void *arg) {
  email *e = arg;
  e->timer = NULL;
  if (e->closing || e->call != NULL) return;
  char cmd[400], name[300];
  mailbox_name(e->mailbox, name, sizeof(name));
  snprintf(cmd, sizeof(cmd), "STATUS \"%s\" (UIDVALIDITY UIDNEXT)", name);
  size_t n = strlen(e->imap_base) + 2;
  char *url = malloc(n);
  if (url == NULL) return;
  snprintf(url, n, "%s/", e->imap_base);
  int rc = imap_run(e, url, cmd, statused);
  free(url);
  if (rc != SB_OK) poll_done(e, 0);
}

/* Ends a cycle the IMAP server failed: the channel is disconnected (until
 * a poll succeeds again) and no next cycle is scheduled, because the host
 * reconnects with its backoff and connect() starts polling again. */
static void poll_lost(email *e, const char *reason) {
  if (e->closing) return;
  e->polls++;
  e->connected = 0;
  email_set_state(e, SB_STATE_DISCONNECTED, reason);
}

/* Ends a cycle and schedules the next one. A failure on this side (a mail
 * the host could not store) keeps the channel connected and polls again
 * later; before the first success any failure is a disconnect. */
static void poll_done(email *e, int ok) {
  if (e->closing) return;
  if (!ok && !e->connected) {
    poll_lost(e, "the IMAP poll could not be started (see the log)");
    return;
  }
  e->polls++;
  /* More found than one cycle takes: go on at once. */
  uint64_t wait = (ok && e->n_uids > e->next_uid) ? 1 : e->poll_ms;
  e->timer = e->host->timer_start(e->channel, wait, 0, poll_start, e);
}

void email_imap_start(email *e) {
  e->closing = 0;
  if (e->call != NULL || e->timer != NULL) return;
  poll_start(e);
}

void email_imap_stop(email *e) {
  e->closing = 1;
  if (e->timer != NULL) e->host->timer_stop(e->timer);
  e->timer = NULL;
  if (e->call != NULL) e->host->mail_cancel(e->call);
  e->call = NULL;
}
