/* email.c — the team email channel: settings, lifecycle, inbound and outbound mail. */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email.h"

static const char *const email_tls_values[] = {"required", "none", NULL};
static const char *const email_from_modes[] = {"agent_and_company", "company", NULL};
static const char *const email_owner_values[] = {"original_sender", "forwarder", NULL};
static const char *const email_import_values[] = {"all", "new", NULL};

static const sb_field email_schema[] = {
    {"imap_url", SB_FIELD_URL, SB_FIELD_REQUIRED, NULL, "IMAP URL",
     "imap://host:port/MAILBOX (STARTTLS) or imaps://host:993/MAILBOX; the mailbox customers write to.", NULL},
    {"smtp_url", SB_FIELD_URL, SB_FIELD_REQUIRED, NULL, "SMTP URL",
     "smtp://host:587 (STARTTLS) or smtps://host:465; replies go out through it.", NULL},
    {"tls", SB_FIELD_ENUM, 0, "required", "TLS",
     "required: STARTTLS on imap:// and smtp:// or no connection; none: plaintext, only for a server on the same host.",
     email_tls_values},
    {"username", SB_FIELD_STRING, SB_FIELD_REQUIRED, NULL, "Username", "The login for IMAP and SMTP.", NULL},
    {"password", SB_FIELD_STRING, SB_FIELD_REQUIRED | SB_FIELD_SECRET, NULL, "Password",
     "The password or app password for IMAP and SMTP.", NULL},
    {"from_address", SB_FIELD_STRING, SB_FIELD_REQUIRED, NULL, "From address",
     "The support address replies come from, e.g. support@acme.example.", NULL},
    {"from_name_mode", SB_FIELD_ENUM, 0, "agent_and_company", "From name",
     "agent_and_company: \"Ana at Acme\"; company: \"Acme\".", email_from_modes},
    {"company_name", SB_FIELD_STRING, 0, "", "Company name", "Used in the From name.", NULL},
    {"signature", SB_FIELD_STRING, 0, "", "Signature",
     "Appended to every reply, plain text or HTML; {full_name}, {first_name} and {last_name} are the agent's.", NULL},
    {"poll_interval", SB_FIELD_DURATION, 0, "30s", "Poll interval", "How often the mailbox is checked.", NULL},
    {"after_read", SB_FIELD_STRING, 0, "seen", "After reading",
     "seen: leave the mail in the mailbox, marked seen; move:FOLDER: move it to FOLDER (which must exist).", NULL},
    {"forwarded_mail_owner", SB_FIELD_ENUM, 0, "original_sender", "Forwarded mail belongs to",
     "original_sender: the person whose mail was forwarded; forwarder: the colleague who forwarded it.",
     email_owner_values},
    {"max_attachment_bytes", SB_FIELD_INT, 0, "26214400", "Largest attachment",
     "Attachments larger than this (bytes) are listed with the message but not stored, and go with a reply as "
     "links rather than parts.",
     NULL},
    {"initial_import", SB_FIELD_ENUM, 0, "all", "At the first connect",
     "all: every mail already in the mailbox becomes a conversation; new: only mail that arrives from then on.",
     email_import_values},
    SB_FIELD_END};

static int email_validate(const sb_host *host, const sb_config *cfg, char *err, size_t errlen) {
  const char *imap = host->config_get(cfg, "imap_url");
  const char *smtp = host->config_get(cfg, "smtp_url");
  const char *tls = host->config_get(cfg, "tls");
  const char *after = host->config_get(cfg, "after_read");
  const char *from = host->config_get(cfg, "from_address");
  if (imap == NULL || (strncasecmp(imap, "imap://", 7) != 0 && strncasecmp(imap, "imaps://", 8) != 0)) {
    snprintf(err, errlen, "imap_url must start with imap:// or imaps://");
    return SB_EINVAL;
  }
  if (smtp == NULL || (strncasecmp(smtp, "smtp://", 7) != 0 && strncasecmp(smtp, "smtps://", 8) != 0)) {
    snprintf(err, errlen, "smtp_url must start with smtp:// or smtps://");
    return SB_EINVAL;
  }
  if (tls != NULL && strcmp(tls, "none") == 0 &&
      (strncasecmp(imap, "imaps://", 8) == 0 || strncasecmp(smtp, "smtps://", 8) == 0)) {
    snprintf(err, errlen, "tls is \"none\" but imap_url or smtp_url uses TLS (imaps://, smtps://)");
    return SB_EINVAL;
  }
  if (after != NULL && strcmp(after, "seen") != 0 && (strncmp(after, "move:", 5) != 0 || after[5] == '\0' ||
                                                       strpbrk(after, "\"\\\r\n") != NULL)) {
    snprintf(err, errlen, "after_read must be \"seen\" or \"move:FOLDER\"");
    return SB_EINVAL;
  }
  if (from == NULL || strchr(from, '@') == NULL || strpbrk(from, " <>\r\n") != NULL) {
    snprintf(err, errlen, "from_address must be a plain address such as support@acme.example");
    return SB_EINVAL;
  }
  return SB_OK;
}

/* Splits imap_url into "scheme://authority" and the mailbox ("INBOX" when none). */
static int split_imap_url(const char *url, char **base, char **mailbox) {
  const char *auth = strstr(url, "://");
  if (auth == NULL) return SB_EINVAL;
  const char *slash = strchr(auth + 3, '/');
  *base = slash != NULL ? strndup(url, (size_t)(slash - url)) : strdup(url);
  const char *mb = slash != NULL ? slash + 1 : "";
  size_t n = strcspn(mb, ";?");
  while (n > 0 && mb[n - 1] == '/') n--;
  *mailbox = n > 0 ? strndup(mb, n) : strdup("INBOX");
  if (*base == NULL || *mailbox == NULL) return SB_ENOMEM;
  return SB_OK;
}

static void email_free(email *e) {
  if (e == NULL) return;
  free(e->imap_base);
  free(e->mailbox);
  free(e->move_to);
  free(e->uids);
  free(e);
}

static int email_create(const sb_host *host, sb_channel *ch, const sb_config *cfg, void **instance, char *err,
                        size_t errlen) {
  if (!SB_HOST_HAS(host, mail_request)) {
    snprintf(err, errlen, "the email plugin needs a host with plugin ABI 1.1 (mail transfers)");
    return SB_EVERSION;
  }
  email *e = calloc(1, sizeof(*e));
  if (e == NULL) return SB_ENOMEM;
  e->host = host;
  e->channel = ch;
  e->cfg = cfg;
  e->threads.host = host;
  e->threads.channel = ch;
  if (split_imap_url(host->config_get(cfg, "imap_url"), &e->imap_base, &e->mailbox) != SB_OK) {
    snprintf(err, errlen, "imap_url could not be read");
    email_free(e);
    return SB_EINVAL;
  }
  e->smtp_url = host->config_get(cfg, "smtp_url");
  e->username = host->config_get(cfg, "username");
  e->password = host->config_get(cfg, "password");
  const char *tls = host->config_get(cfg, "tls");
  e->tls = tls != NULL && strcmp(tls, "none") == 0 ? SB_MAIL_TLS_NONE : SB_MAIL_TLS_REQUIRED;
  int64_t poll = host->config_int(cfg, "poll_interval", 30000);
  e->poll_ms = poll > 0 ? (uint64_t)poll : 30000;
  const char *after = host->config_get(cfg, "after_read");
  if (after != NULL && strncmp(after, "move:", 5) == 0) e->move_to = strdup(after + 5);
  const char *owner = host->config_get(cfg, "forwarded_mail_owner");
  e->owner_forwarder = owner != NULL && strcmp(owner, "forwarder") == 0;
  const char *import = host->config_get(cfg, "initial_import");
  e->import_new = import != NULL && strcmp(import, "new") == 0;
  int64_t max = host->config_int(cfg, "max_attachment_bytes", 26214400);
  e->max_att = max > 0 ? (uint64_t)max : 0;
  e->out.from_address = host->config_get(cfg, "from_address");
  e->out.from_name_mode = host->config_get(cfg, "from_name_mode");
  e->out.company_name = host->config_get(cfg, "company_name");
  e->out.signature = host->config_get(cfg, "signature");
  const char *at = strchr(e->out.from_address, '@');
  snprintf(e->domain, sizeof(e->domain), "%s", at != NULL ? at + 1 : "switchboard.invalid");
  e->out.domain = e->domain;
  *instance = e;
  return SB_OK;
}

uint32_t email_tls_for(const email *e, const char *url) {
  if (e->tls == SB_MAIL_TLS_NONE) return SB_MAIL_TLS_NONE;
  if (strncasecmp(url, "imaps://", 8) == 0 || strncasecmp(url, "smtps://", 8) == 0) return SB_MAIL_TLS_DEFAULT;
  return SB_MAIL_TLS_REQUIRED;
}

void email_redact(const email *e, char *s) {
  size_t n = e->password != NULL ? strlen(e->password) : 0;
  if (s == NULL || n == 0) return;
  for (char *p = s; (p = strstr(p, e->password)) != NULL; p += n) memset(p, '*', n);
}

void email_set_state(email *e, uint32_t state, const char *reason) {
  char buf[512];
  if (reason != NULL) {
    snprintf(buf, sizeof(buf), "%s", reason);
    email_redact(e, buf);
    reason = buf;
  }
  if (e->fatal && !SB_STATE_IS_FATAL(state)) {
    if (reason != NULL) e->host->log(e->channel, SB_LOG_WARN, "%s (the channel stays stopped)", reason);
    return;
  }
  if (SB_STATE_IS_FATAL(state)) e->fatal = 1;
  e->host->set_state(e->channel, state, reason);
}

/* The channel's Message-ID salt: made once and kept in its key/value
 * state, so a reply's Message-ID is the same on every attempt (also after a
 * restart) and unlike any other help desk's with the same keys. */
static void email_load_salt(email *e) {
  size_t len = 0;
  const char *v = e->host->kv_get(e->channel, "message_id_salt", &len);
  if (v != NULL && len == sizeof(e->id_salt) - 1) {
    memcpy(e->id_salt, v, len);
    e->id_salt[len] = '\0';
  } else {
    snprintf(e->id_salt, sizeof(e->id_salt), "%08x%08x", (unsigned)g_random_int(), (unsigned)g_random_int());
    if (e->host->kv_set(e->channel, "message_id_salt", e->id_salt, sizeof(e->id_salt) - 1, NULL, NULL) != SB_OK) {
      e->id_salt[0] = '\0'; /* not kept: random Message-IDs rather than ones that change on restart */
    }
  }
  e->out.id_salt = e->id_salt[0] != '\0' ? e->id_salt : NULL;
}

static int email_connect(void *instance) {
  email *e = instance;
  e->fatal = 0;
  email_load_salt(e);
  email_set_state(e, SB_STATE_CONNECTING, NULL);
  email_imap_start(e);
  return SB_OK;
}

static void email_disconnect(void *instance) { email_imap_stop(instance); }

static void email_destroy(void *instance) {
  email *e = instance;
  email_imap_stop(e);
  email_free(e);
}

/* --- inbound -------------------------------------------------------------- */

typedef struct inbound_op {
  email *e;
  void (*done)(email *e, int status);
} inbound_op;

static void inbound_stored(void *arg, int status, const char *message_id, int duplicate) {
  inbound_op *op = arg;
  op->done(op->e, status);
  free(op);
}

uint64_t email_fetch_limit(const email *e) {
  if (e->max_att == 0 || e->max_att > 128u * 1024u * 1024u) return 256u * 1024u * 1024u;
  return e->max_att * 2 + 256u * 1024u;
}

int email_inbound(email *e, const char *raw, size_t len, int headers_only, void (*done)(email *e, int status)) {
  email_parsed p;
  int rc = email_parse(raw, len, e->max_att, &p);
  if (rc != 0) return SB_ENOMEM;
  if (headers_only) {
    static const char note[] = "(This mail is larger than the channel's limit; only its headers were read. "
                               "Open it in the mailbox to see it.)";
    free(p.text);
    free(p.html);
    p.html = NULL;
    p.text = strdup(note);
    const char *w = "the mail is larger than the fetch limit (2 x max_attachment_bytes + 256 KiB); headers only";
    size_t old = p.warnings != NULL ? strlen(p.warnings) : 0;
    char *nw = realloc(p.warnings, old + strlen(w) + 3);
    if (nw != NULL) {
      snprintf(nw + old, strlen(w) + 3, "%s%s", old > 0 ? "; " : "", w);
      p.warnings = nw;
    }
  }
  /* Who the mail belongs to: the forwarded mail's author or the forwarder. */
  /* Mail from the channel's own address (a copy of a reply, a misrouted
   * auto-reply) must never be answered automatically: that is a loop. */
  if (strcasecmp(p.from_addr, e->out.from_address) == 0) {
    p.flags |= SB_IN_NO_AUTOREPLY;
    if (p.loop_reason == NULL) p.loop_reason = strdup("from this channel's own address");
  }
  int use_fwd = p.fwd_addr != NULL && !e->owner_forwarder && !(p.flags & SB_IN_BOUNCE);
  const char *addr = use_fwd ? p.fwd_addr : p.from_addr;
  const char *name = use_fwd ? p.fwd_name : p.from_name;
  char thread[64];
  const char *how = "bounce";
  const char *bounced_thread = p.bounce_of != NULL ? email_thread_of(&e->threads, p.bounce_of) : NULL;
  if (bounced_thread != NULL) {
    snprintf(thread, sizeof(thread), "%s", bounced_thread);
  } else {
    email_thread_pick(&e->threads, &p, addr, thread, sizeof(thread), &how);
  }
  /* A delivery report is about the conversation, not part of it: its
   * sender (a mailer daemon) takes no part and replies cite none of it. */
  if (!(p.flags & SB_IN_BOUNCE)) {
    email_thread_add_participant(&e->threads, thread, addr);
    if (use_fwd) email_thread_add_participant(&e->threads, thread, p.from_addr);
    email_thread_add_ref(&e->threads, thread, p.message_id);
    email_thread_set_subject(&e->threads, thread, p.subject);
  }
  email_thread_remember(&e->threads, p.message_id, thread);
  e->host->log(e->channel, SB_LOG_DEBUG, "mail %s from %s: thread %s (%s)", p.message_id, addr, thread, how);
  if (p.bounce_of != NULL && p.bounce_failed) {
    sb_status_update u = {.struct_size = sizeof(u)};
    u.status = SB_STATUS_FAILED;
    u.external_id = p.bounce_of;
    u.error = p.bounce_reason != NULL ? p.bounce_reason : "bounced";
    e->host->emit_status(e->channel, &u);
  }
  sb_attachment *atts = p.n_atts > 0 ? calloc(p.n_atts, sizeof(*atts)) : NULL;
  size_t n_atts = atts != NULL ? p.n_atts : 0;
  for (size_t i = 0; i < n_atts; i++) {
    atts[i].mime_type = p.atts[i].mime_type;
    atts[i].filename = p.atts[i].filename;
    atts[i].size = p.atts[i].len;
    atts[i].content_id = p.atts[i].content_id;
    atts[i].data = p.atts[i].data;
    atts[i].data_len = p.atts[i].data != NULL ? p.atts[i].len : 0;
    atts[i].flags = p.atts[i].is_inline ? SB_ATTACHMENT_INLINE : 0;
  }
  char *meta = email_metadata_json(&p);
  const char *reply_to = p.in_reply_to != NULL && email_thread_of(&e->threads, p.in_reply_to) != NULL
                             ? p.in_reply_to : NULL;
  sb_inbound_message m = {.struct_size = sizeof(m)};
  m.flags = p.flags;
  m.external_id = p.message_id;
  m.external_thread_id = thread;
  m.reply_to_external_id = reply_to;
  m.sender.kind = SB_IDENTITY_EMAIL;
  m.sender.id = addr;
  m.sender.name = name;
  m.sender.email = addr;
  m.subject = p.subject;
  m.text = p.text != NULL ? p.text : "";
  m.html = p.html;
  m.attachments = atts;
  m.attachment_count = n_atts;
  m.timestamp_ms = p.date_ms;
  m.metadata_json = meta;
  inbound_op *op = malloc(sizeof(*op));
  rc = SB_ENOMEM;
  if (op != NULL) {
    op->e = e;
    op->done = done;
    rc = e->host->emit_inbound(e->channel, &m, inbound_stored, op);
    if (rc != SB_OK) free(op);
  }
  free(meta);
  free(atts);
  email_parsed_free(&p);
  return rc;
}

/* --- outbound ------------------------------------------------------------- */

typedef struct send_op {
  email *e;
  sb_send_op *op;
  char *message_id;
  char thread[64];
} send_op;

static void sent(void *arg, const sb_mail_response *r) {
  send_op *s = arg;
  email *e = s->e;
  const char *why = r->error != NULL ? r->error : "the SMTP server refused the message";
  char reason[512];
  if (r->status == SB_OK) {
    email_thread_remember(&e->threads, s->message_id, s->thread);
    email_thread_add_ref(&e->threads, s->thread, s->message_id);
    e->host->send_ok(s->op, s->message_id);
  } else if (r->status == SB_EACCES) {
    email_set_state(e, SB_STATE_AUTH_FAILED, "the SMTP server refused the username or password");
    e->host->send_retry(s->op, 0, "the SMTP server refused the login");
  } else if (r->status == SB_EPROTO) {
    /* No TLS, no mail: the reply must not go out in plaintext, and sending
     * it again cannot help until the settings or the server change. */
    snprintf(reason, sizeof(reason), "%s: %s",
             email_tls_for(e, e->smtp_url) == SB_MAIL_TLS_REQUIRED
                 ? "the SMTP server did not start TLS (tls is \"required\": does it offer STARTTLS?)"
                 : "TLS with the SMTP server failed",
             why);
    email_redact(e, reason);
    email_set_state(e, SB_STATE_CONFIG_ERROR, reason);
    e->host->send_fail(s->op, reason);
  } else if (r->code >= 500 && r->code < 600) {
    snprintf(reason, sizeof(reason), "the mail server refused the message (%d): %s", (int)r->code, why);
    e->host->send_fail(s->op, reason);
  } else {
    snprintf(reason, sizeof(reason), "SMTP %d: %s", (int)r->code, why);
    e->host->send_retry(s->op, 0, reason);
  }
  free(s->message_id);
  free(s);
}

/* Composes the reply and hands it to SMTP. */
static int email_send_now(email *e, const sb_outbound_message *msg, sb_send_op *op) {
  if (msg->recipient_id == NULL || strchr(msg->recipient_id, '@') == NULL ||
      strpbrk(msg->recipient_id, " <>\r\n") != NULL) {
    e->host->send_fail(op, "the recipient is not an email address");
    return SB_OK;
  }
  /* .invalid never resolves (RFC 2606): unknown@invalid stands for a mail
   * without a readable From, whose sender nobody can answer. */
  size_t rl = strlen(msg->recipient_id);
  if ((rl >= 8 && strcasecmp(msg->recipient_id + rl - 8, "@invalid") == 0) ||
      (rl >= 8 && strcasecmp(msg->recipient_id + rl - 8, ".invalid") == 0)) {
    e->host->send_fail(op, "the customer's mail had no readable From address: there is nobody to answer by email");
    return SB_OK;
  }
  send_op *s = calloc(1, sizeof(*s));
  if (s == NULL) return SB_ENOMEM;
  s->e = e;
  s->op = op;
  if (msg->external_thread_id != NULL && msg->external_thread_id[0] != '\0')
    snprintf(s->thread, sizeof(s->thread), "%s", msg->external_thread_id);
  else
    email_thread_new(&e->threads, s->thread, sizeof(s->thread));
  char addr[320];
  snprintf(addr, sizeof(addr), "%s", msg->recipient_id);
  for (char *q = addr; *q; q++)
    if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
  email_thread_add_participant(&e->threads, s->thread, addr);
  char tag[48];
  email_thread_tag(s->thread, tag, sizeof(tag));
  const char *subject = email_thread_subject(&e->threads, s->thread);
  char *subj = subject != NULL ? strdup(subject) : NULL;
  const char *refs = email_thread_refs(&e->threads, s->thread);
  char *refs_copy = refs != NULL ? strdup(refs) : NULL;
  char *irt = NULL;
  if (msg->reply_to_external_id != NULL) {
    irt = strdup(msg->reply_to_external_id);
  } else if (refs_copy != NULL) {
    const char *last = strrchr(refs_copy, '<');
    if (last != NULL) irt = strndup(last + 1, strcspn(last + 1, ">"));
  }
  if (subj == NULL && msg->subject != NULL) email_thread_set_subject(&e->threads, s->thread, msg->subject);
  char *body = NULL;
  size_t body_len = 0;
  int rc = email_build_reply(&e->out, msg, tag, subj, irt, refs_copy, e->host->now_ms(), &body, &body_len,
                             &s->message_id);
  free(subj);
  free(refs_copy);
  free(irt);
  if (rc != 0) {
    free(s);
    e->host->send_fail(op, "the reply could not be built as a mail");
    return SB_OK;
  }
  char from[330], rcpt[330];
  snprintf(from, sizeof(from), "<%s>", e->out.from_address);
  snprintf(rcpt, sizeof(rcpt), "<%s>", addr);
  const char *rcpts[1] = {rcpt};
  sb_mail_request rq = {.struct_size = sizeof(rq)};
  rq.url = e->smtp_url;
  rq.tls = email_tls_for(e, e->smtp_url);
  rq.username = e->username;
  rq.password = e->password;
  rq.mail_from = from;
  rq.rcpt = rcpts;
  rq.rcpt_count = 1;
  rq.body = body;
  rq.body_len = body_len;
  rq.timeout_ms = 120000;
  sb_mail_call *call = e->host->mail_request(e->channel, &rq, sent, s);
  free(body);
  if (call == NULL) {
    free(s->message_id);
    free(s);
    return SB_EAGAIN;
  }
  return SB_OK;
}

/* --- outbound attachments: fetched to go as MIME parts ------------------------ */

/* A reply waiting for its linked attachments (http and https URLs) to be
 * downloaded, so they go as parts of the mail rather than as links. The
 * message is copied: the host's copy lives only during send(). */
typedef struct fetch_op {
  email *e;
  sb_send_op *op;
  sb_outbound_message msg; /* its strings and attachments point into what follows */
  char *strs[16];
  sb_attachment *atts;
  char **data;             /* downloaded bytes per attachment, or NULL */
  size_t next;             /* the next attachment to look at */
} fetch_op;

static void fetch_free(fetch_op *f) {
  for (size_t i = 0; i < sizeof(f->strs) / sizeof(f->strs[0]); i++) free(f->strs[i]);
  for (size_t i = 0; f->data != NULL && i < f->msg.attachment_count; i++) {
    free(f->data[i]);
    free((char *)f->atts[i].url);
    free((char *)f->atts[i].mime_type);
    free((char *)f->atts[i].filename);
  }
  free(f->data);
  free(f->atts);
  free(f);
}

static int fetchable(const sb_attachment *a) {
  return a->data == NULL && a->url != NULL && (strncmp(a->url, "http://", 7) == 0 || strncmp(a->url, "https://", 8) == 0);
}

static void fetch_next(fetch_op *f);

/* The last segment of url's path (malloc'd) when it is a plain file name,
 * else NULL (the part is then called "attachment"). */
static char *url_file_name(const char *url) {
  const char *p = strstr(url, "://");
  p = p != NULL ? strchr(p + 3, '/') : NULL;
  if (p == NULL) return NULL;
  size_t end = strcspn(p, "?#");
  const char *last = p;
  for (size_t i = 0; i < end; i++)
    if (p[i] == '/') last = p + i + 1;
  /* percent-decoded ("my%20file.txt" is "my file.txt"); a name that
   * decodes to a path, a control character or text that is not UTF-8 is
   * none (the part goes as "attachment") */
  char *name = g_uri_unescape_segment(last, p + end, "/\\");
  int ok = name != NULL && name[0] != '\0' && name[0] != '.' && strlen(name) < 200 &&
           g_utf8_validate(name, -1, NULL);
  for (const char *c = name; ok && *c != '\0'; c++) ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
  char *out = ok ? strdup(name) : NULL;
  g_free(name);
  return out;
}

/* The response's Content-Type without its parameters (malloc'd), or NULL. */
static char *content_type_of(const sb_http_client_response *r) {
  for (size_t i = 0; i < r->header_count; i++) {
    if (strcasecmp(r->headers[i].name, "content-type") != 0 || r->headers[i].value == NULL) continue;
    size_t n = strcspn(r->headers[i].value, "; ");
    return n > 0 && memchr(r->headers[i].value, '/', n) != NULL ? strndup(r->headers[i].value, n) : NULL;
  }
  return NULL;
}

static void fetched(void *arg, const sb_http_client_response *r) {
  fetch_op *f = arg;
  email *e = f->e;
  size_t i = f->next++;
  sb_attachment *a = &f->atts[i];
  if (r->status == SB_ECANCELED) {
    e->host->send_retry(f->op, 0, "the channel closed while an attachment was downloaded");
    fetch_free(f);
    return;
  }
  if (r->status == SB_OK && r->http_status == 200 && (f->data[i] = malloc(r->body_len + 1)) != NULL) {
    memcpy(f->data[i], r->body, r->body_len);
    a->data = f->data[i];
    a->data_len = r->body_len;
    if (a->mime_type == NULL) a->mime_type = content_type_of(r);
    if (a->filename == NULL) a->filename = url_file_name(a->url);
  } else {
    char reason[300];
    if (r->status == SB_OK)
      snprintf(reason, sizeof(reason), "HTTP %d", r->http_status);
    else
      snprintf(reason, sizeof(reason), "%s", r->status == SB_EFBIG ? "larger than max_attachment_bytes"
                                             : r->error != NULL     ? r->error
                                                                    : "no answer");
    /* a busy or slow file server: the outbox tries the whole reply again
     * later; anything else (gone, refused, a name that does not resolve,
     * too large) sends the link instead */
    int passing = r->status == SB_OK ? r->http_status >= 500 || r->http_status == 429 : r->status == SB_ETIMEDOUT;
    if (passing) {
      char why[400];
      snprintf(why, sizeof(why), "attachment %zu could not be downloaded: %s", i + 1, reason);
      e->host->send_retry(f->op, 0, why);
      fetch_free(f);
      return;
    }
    e->host->log(e->channel, SB_LOG_WARN, "attachment %zu of a reply goes as a link: %s", i + 1, reason);
  }
  fetch_next(f);
}

/* Downloads the next linked attachment, or composes the reply once none is
 * left. */
static void fetch_next(fetch_op *f) {
  email *e = f->e;
  while (f->next < f->msg.attachment_count && !fetchable(&f->atts[f->next])) f->next++;
  if (f->next < f->msg.attachment_count) {
    sb_http_client_request rq = {.struct_size = sizeof(rq),
                                 .timeout_ms = 60000,
                                 .method = "GET",
                                 .url = f->atts[f->next].url,
                                 .max_response_bytes = e->max_att > 0 ? e->max_att : (uint64_t)256 << 20};
    if (e->host->http_request(e->channel, &rq, fetched, f) != NULL) return;
    e->host->log(e->channel, SB_LOG_WARN, "attachment %zu of a reply goes as a link: the host did not take the download",
                 f->next + 1);
    f->next++;
    fetch_next(f);
    return;
  }
  if (email_send_now(e, &f->msg, f->op) != SB_OK) e->host->send_retry(f->op, 0, "the SMTP call could not start");
  fetch_free(f);
}

/* Copies s into f (NULL stays NULL); -1 when out of memory. */
static int fetch_keep(fetch_op *f, size_t slot, const char **field, const char *s) {
  if (s == NULL) return 0;
  f->strs[slot] = strdup(s);
  *field = f->strs[slot];
  return f->strs[slot] != NULL ? 0 : -1;
}

static int email_send(void *instance, const sb_outbound_message *msg, sb_send_op *op) {
  email *e = instance;
  size_t n = 0;
  for (size_t i = 0; i < msg->attachment_count; i++) n += (size_t)fetchable(&msg->attachments[i]);
  if (n == 0) return email_send_now(e, msg, op);
  fetch_op *f = calloc(1, sizeof(*f));
  if (f == NULL) return SB_ENOMEM;
  f->e = e;
  f->op = op;
  f->msg = *msg;
  f->atts = calloc(msg->attachment_count, sizeof(*f->atts));
  f->data = calloc(msg->attachment_count, sizeof(*f->data));
  int bad = f->atts == NULL || f->data == NULL;
  bad |= fetch_keep(f, 0, &f->msg.message_id, msg->message_id) | fetch_keep(f, 1, &f->msg.idempotency_key, msg->idempotency_key) |
         fetch_keep(f, 2, &f->msg.recipient_id, msg->recipient_id) | fetch_keep(f, 3, &f->msg.recipient_name, msg->recipient_name) |
         fetch_keep(f, 4, &f->msg.external_thread_id, msg->external_thread_id) |
         fetch_keep(f, 5, &f->msg.reply_to_external_id, msg->reply_to_external_id) |
         fetch_keep(f, 6, &f->msg.subject, msg->subject) | fetch_keep(f, 7, &f->msg.text, msg->text) |
         fetch_keep(f, 8, &f->msg.html, msg->html) | fetch_keep(f, 9, &f->msg.template_json, msg->template_json) |
         fetch_keep(f, 10, &f->msg.agent_name, msg->agent_name) | fetch_keep(f, 11, &f->msg.agent_email, msg->agent_email) |
         fetch_keep(f, 12, &f->msg.agent_avatar_url, msg->agent_avatar_url);
  for (size_t i = 0; !bad && i < msg->attachment_count; i++) {
    const sb_attachment *a = &msg->attachments[i];
    f->atts[i] = *a;
    f->atts[i].url = a->url ? strdup(a->url) : NULL;
    f->atts[i].mime_type = a->mime_type ? strdup(a->mime_type) : NULL;
    f->atts[i].filename = a->filename ? strdup(a->filename) : NULL;
    f->atts[i].content_id = NULL;
    if (a->data != NULL && (f->data[i] = malloc(a->data_len + 1)) != NULL) {
      memcpy(f->data[i], a->data, a->data_len);
      f->atts[i].data = f->data[i];
    }
    bad |= (a->url && !f->atts[i].url) || (a->mime_type && !f->atts[i].mime_type) ||
           (a->filename && !f->atts[i].filename) || (a->data && !f->data[i]);
  }
  if (bad) {
    f->msg.attachment_count = f->atts != NULL && f->data != NULL ? msg->attachment_count : 0;
    fetch_free(f);
    return SB_ENOMEM;
  }
  f->msg.attachments = f->atts;
  fetch_next(f);
  return SB_OK;
}

static const sb_plugin email_plugin = {
    SB_PLUGIN_INIT,
    .id = "email",
    .name = "Team email",
    .publisher = "Switchboard",
    .version = "1.0.0",
    .description = "A shared support mailbox: IMAP in, SMTP out, threads that hold, no mail loops.",
    .credentials = email_schema,
    .caps = {.thread_model = SB_THREAD_EXTERNAL,
             .flags = SB_CAP_RICH_TEXT | SB_CAP_ATTACHMENTS | SB_CAP_REPLY_TO | SB_CAP_START_CONVERSATION,
             .start_by = SB_START_BY_EMAIL,
             .max_attachments = 20},
    .validate = email_validate,
    .create = email_create,
    .connect = email_connect,
    .send = email_send,
    .disconnect = email_disconnect,
    .destroy = email_destroy,
};

SB_EXPORT int sb_plugin_entry(const sb_host *host, const sb_plugin **out, char *err, size_t errlen) {
  if (!SB_HOST_COMPATIBLE(host)) {
    snprintf(err, errlen, "the email plugin needs plugin ABI 1.1; the host speaks another major version");
    return SB_EVERSION;
  }
  email_mime_init();
  *out = &email_plugin;
  return SB_OK;
}
