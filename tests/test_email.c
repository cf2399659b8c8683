/* test_email.c — plugins/email against a real mail system: Dovecot (IMAP +
 * LMTP) and OpenSMTPD started from the test on free loopback ports (as
 * ../shared/recipes/mail-servers.md shows), the real email.so through
 * channel_create with the host's API table and transfer engine (httpc) on
 * the test's loop, and a fake environment standing in for the router and
 * store. Customer mail goes in with swaks; replies are read back from the
 * customer's mailbox with curl's IMAP client. */
#include "channel.h"
#include "httpc.h"
#include "loader.h"
#include "log.h"

#include <fcntl.h>
#include "testutil.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- the mail system: started once for the whole run ------------------------------ */

static char *mail_dir;
static pid_t dovecot_pid = -1, smtpd_pid = -1;
static int imap_port, lmtp_port, smtp_port;
static int mail_ok; /* 0 when the servers are missing or did not start */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

static int wait_port(int port) {
  for (int i = 0; i < 100; i++) {
    if (port_open(port)) return 1;
    usleep(50000);
  }
  return 0;
}

/* Waits for port while *pid runs; 0 (and *pid = -1, reaped) if it exits first. */
static int wait_port_of(int port, pid_t *pid) {
  for (int i = 0; i < 100; i++) {
    if (port_open(port)) return 1;
    if (waitpid(*pid, NULL, WNOHANG) == *pid) {
      *pid = -1;
      return 0;
    }
    usleep(50000);
  }
  return 0;
}

static pid_t spawn(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    if (freopen("/dev/null", "w", stdout) == NULL) _exit(127);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static void stop(pid_t *pid) {
  if (*pid <= 0) return;
  kill(*pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(*pid, NULL, WNOHANG) == *pid) {
      *pid = -1;
      return;
    }
    usleep(50000);
  }
  kill(*pid, SIGKILL);
  waitpid(*pid, NULL, 0);
  *pid = -1;
}

static void mail_system_start(void) {
  if (access("/usr/sbin/dovecot", X_OK) != 0 || access("/usr/sbin/smtpd", X_OK) != 0 ||
      access("/usr/bin/swaks", X_OK) != 0 || geteuid() != 0) {
    fprintf(stderr, "test_email: Dovecot, OpenSMTPD, swaks or root missing (scripts/deps.sh test)\n");
    return;
  }
  mail_dir = tu_tmpdir();
  chmod(mail_dir, 0755); /* Dovecot's auth process runs as dovecot */
  imap_port = free_port();
  lmtp_port = free_port();
  smtp_port = free_port();
  char buf[4096], path[1024];
  free(tu_write_file(mail_dir, "passwd", "support:{PLAIN}secret\ncustomer:{PLAIN}secret\n"));
  snprintf(buf, sizeof(buf),
           "protocols = imap lmtp\nlisten = 127.0.0.1\nbase_dir = %s/run\nlog_path = /dev/stderr\nssl = no\n"
           "disable_plaintext_auth = no\nauth_mechanisms = plain login\nauth_username_format = %%n\n"
           "mail_location = maildir:%s/mail/%%u\nmail_fsync = never\nfirst_valid_uid = 1\n"
           "auth_failure_delay = 0\n"
           "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u %s/passwd\n}\n"
           "userdb {\n  driver = static\n  args = uid=dovecot gid=dovecot home=%s/home/%%u\n}\n"
           "service imap-login {\n  inet_listener imap {\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n"
           "service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = %d\n  }\n}\n",
           mail_dir, mail_dir, mail_dir, mail_dir, imap_port, lmtp_port);
  free(tu_write_file(mail_dir, "dovecot.conf", buf));
  snprintf(buf, sizeof(buf),
           "table vusers { \"@\" = \"dovecot\" }\nlisten on 127.0.0.1 port %d\n"
           "action \"tolmtp\" lmtp \"127.0.0.1:%d\" rcpt-to virtual <vusers>\n"
           "match from any for any rcpt-to \"nobody@example.com\" reject\nmatch from any for any action \"tolmtp\"\n",
           smtp_port, lmtp_port);
  free(tu_write_file(mail_dir, "smtpd.conf", buf));
  snprintf(buf, sizeof(buf), "mkdir -p %s/mail %s/home && chown -R dovecot:dovecot %s/mail %s/home", mail_dir,
           mail_dir, mail_dir, mail_dir);
  ck_assert_int_eq(tu_run(buf, NULL), 0);
  snprintf(path, sizeof(path), "%s/dovecot.conf", mail_dir);
  char log1[1024], log2[1024], conf2[1024];
  snprintf(log1, sizeof(log1), "%s/dovecot.log", mail_dir);
  snprintf(log2, sizeof(log2), "%s/smtpd.log", mail_dir);
  snprintf(conf2, sizeof(conf2), "%s/smtpd.conf", mail_dir);
  char *dargv[] = {"/usr/sbin/dovecot", "-F", "-c", path, NULL};
  dovecot_pid = spawn(dargv, log1);
  /* OpenSMTPD keeps one control socket per machine (/var/run/smtpd.sock)
   * and one queue (/var/spool/smtpd): in a private mount namespace with its
   * own empty /run and /var/spool (the queue made there: a machine whose
   * package service never ran has none), ours runs beside any other (a system instance,
   * another worktree's tests) and leaves nothing behind. Without unshare it
   * runs plainly and waits for its turn below. */
  char *plain[] = {"/usr/sbin/smtpd", "-d", "-f", conf2, NULL};
  char *private_ns[] = {"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                        "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/spool && mkdir -m 0711 /var/spool/smtpd && "
                        "exec /usr/sbin/smtpd -d -f \"$0\"",
                        conf2, NULL};
  char **sargv = access("/usr/bin/unshare", X_OK) == 0 ? private_ns : plain;
  for (int attempt = 0; attempt < 120; attempt++) {
    smtpd_pid = spawn(sargv, log2);
    if (wait_port_of(smtp_port, &smtpd_pid)) break;
    stop(&smtpd_pid);
    if (attempt == 0) fprintf(stderr, "test_email: another OpenSMTPD runs; waiting for it to stop\n");
    sleep(1);
  }
  mail_ok = wait_port(imap_port) && wait_port(lmtp_port) && smtpd_pid > 0 && wait_port(smtp_port);
  if (!mail_ok) {
    snprintf(buf, sizeof(buf), "cat %s %s >&2", log1, log2);
    tu_run(buf, NULL);
    fprintf(stderr, "test_email: the mail servers did not start (see above)\n");
  }
}

static void mail_system_stop(void) {
  stop(&smtpd_pid);
  stop(&dovecot_pid);
  if (mail_dir != NULL) {
    tu_rmtree(mail_dir);
    free(mail_dir);
    mail_dir = NULL;
  }
}

/* Python that ends the script once the test that started it is gone (a
 * failed assertion ends the test's process without its cleanup). */
#define EXIT_WITH_PARENT_PY                                                          \
  "import os, threading, time\n"                                                   \
  "def _watch(parent=os.getppid()):\n"                                             \
  "    while os.getppid() == parent: time.sleep(0.5)\n"                            \
  "    os._exit(0)\n"                                                              \
  "threading.Thread(target=_watch, daemon=True).start()\n"

/* A misbehaving SMTP server for answers OpenSMTPD does not give on cue:
 * "tempfail" answers RCPT with 451, "authfail" offers AUTH and refuses it
 * with 535; in every mode STARTTLS is refused with 454. Serves one session
 * per connection, forever (stopped by PID); a connection that breaks ends
 * only itself. */
static const char fake_smtp_py[] =
    EXIT_WITH_PARENT_PY
    "import socket, sys\n"
    "mode = sys.argv[2]\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(5)\n"
    "def serve(c):\n"
    "    f = c.makefile('rb')\n"
    "    c.sendall(b'220 fake ESMTP\\r\\n')\n"
    "    for line in f:\n"
    "        cmd = line.strip().upper()\n"
    "        if cmd.startswith(b'EHLO'):\n"
    "            c.sendall(b'250-fake\\r\\n250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n' if mode == 'authfail' else b'250 fake\\r\\n')\n"
    "        elif cmd.startswith(b'STARTTLS'):\n"
    "            c.sendall(b'454 4.7.0 TLS not available\\r\\n')\n"
    "        elif cmd.startswith(b'AUTH'):\n"
    "            c.sendall(b'535 5.7.8 Authentication credentials invalid\\r\\n')\n"
    "        elif cmd.startswith(b'RCPT'):\n"
    "            c.sendall(b'451 4.3.0 Mailbox busy, try later\\r\\n')\n"
    "        elif cmd.startswith(b'QUIT'):\n"
    "            c.sendall(b'221 bye\\r\\n'); break\n"
    "        else:\n"
    "            c.sendall(b'250 ok\\r\\n')\n"
    "    c.close()\n"
    /* a client that left at once (the test's probe of the port) must not end
     * the server: the next client would be reset */
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    try: serve(c)\n"
    "    except OSError: c.close()\n";

static pid_t fake_smtp_start(const char *mode, int *port) {
  char *script = tu_write_file(mail_dir, "fake_smtp.py", fake_smtp_py);
  char portbuf[16], log[1024];
  *port = free_port();
  snprintf(portbuf, sizeof(portbuf), "%d", *port);
  snprintf(log, sizeof(log), "%s/fake_smtp.log", mail_dir);
  char *argv[] = {"/usr/bin/python3", script, portbuf, (char *)mode, NULL};
  pid_t pid = spawn(argv, log);
  free(script);
  ck_assert_msg(wait_port(*port), "the fake SMTP server did not start");
  return pid;
}

/* A TCP proxy to Dovecot's IMAP port, so a test can take the IMAP server
 * away (stop it: connections drop, new ones are refused) and bring it back
 * on the same port. */
static const char imap_proxy_py[] =
    EXIT_WITH_PARENT_PY
    "import re, socket, sys\n"
    "refuse = sys.argv[3].encode() if len(sys.argv) > 3 and sys.argv[3] else None  # a UID whose FETCH is answered NO, or 'first'\n"
    "moves = int(sys.argv[4]) if len(sys.argv) > 4 else 0  # how many UID MOVEs to answer NO first\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(5)\n"
    "def pipe(a, b, client):\n"
    "    global refuse, moves\n"
    "    buf = b''\n"
    "    try:\n"
    "        while True:\n"
    "            d = a.recv(65536)\n"
    "            if not d: break\n"
    "            if not client or (refuse is None and moves == 0):\n"
    "                b.sendall(d); continue\n"
    "            buf += d\n"
    "            while b'\\r\\n' in buf:\n"
    "                line, buf = buf.split(b'\\r\\n', 1)\n"
    "                m = re.match(rb'(\\S+) UID FETCH (\\d+)', line)\n"
    "                if m and refuse == b'first': refuse = m.group(2)\n"
    "                mv = re.match(rb'(\\S+) UID MOVE ', line)\n"
    "                if m and m.group(2) == refuse:\n"
    "                    a.sendall(m.group(1) + b' NO [SERVERBUG] the message cannot be read\\r\\n')\n"
    "                elif mv and moves > 0:\n"
    "                    moves -= 1\n"
    "                    a.sendall(mv.group(1) + b' NO [SERVERBUG] the move failed\\r\\n')\n"
    "                else:\n"
    "                    b.sendall(line + b'\\r\\n')\n"
    "    except OSError: pass\n"
    "    for x in (a, b):\n"
    "        try: x.shutdown(socket.SHUT_RDWR)\n"
    "        except OSError: pass\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    u = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n"
    "    threading.Thread(target=pipe, args=(c, u, True), daemon=True).start()\n"
    "    threading.Thread(target=pipe, args=(u, c, False), daemon=True).start()\n";

/* Starts the IMAP proxy on *port (a free one when 0); refuse_uid, when not
 * NULL, is a UID whose FETCH it answers NO, as a server that cannot read
 * that message does ("first": the first UID fetched); refuse_moves, when
 * not NULL, how many UID MOVE commands it answers NO before it lets them by. */
static pid_t imap_proxy_start_refusing(int *port, const char *refuse_uid, const char *refuse_moves) {
  char *script = tu_write_file(mail_dir, "imap_proxy.py", imap_proxy_py);
  char portbuf[16], to[16], log[1024];
  if (*port == 0) *port = free_port();
  snprintf(portbuf, sizeof(portbuf), "%d", *port);
  snprintf(to, sizeof(to), "%d", imap_port);
  snprintf(log, sizeof(log), "%s/imap_proxy.log", mail_dir);
  char *argv[] = {"/usr/bin/python3", script, portbuf, to, (char *)(refuse_uid != NULL ? refuse_uid : ""),
                  (char *)refuse_moves, NULL};
  pid_t pid = spawn(argv, log);
  free(script);
  ck_assert_msg(wait_port(*port), "the IMAP proxy did not start");
  return pid;
}

static pid_t imap_proxy_start(int *port) { return imap_proxy_start_refusing(port, NULL, NULL); }

/* Sends a raw RFC 5322 message by SMTP with swaks. */
static void swaks_send(const char *from, const char *to, const char *raw) {
  char name[64], cmd[2048];
  static int n;
  snprintf(name, sizeof(name), "in-%d-%d.eml", (int)getpid(), n++);
  char *file = tu_write_file(mail_dir, name, raw);
  snprintf(cmd, sizeof(cmd), "swaks --server 127.0.0.1:%d --from '%s' --to '%s' --data '%s' >/dev/null 2>&1",
           smtp_port, from, to, file);
  ck_assert_msg(tu_run(cmd, NULL) == 0, "swaks failed: %s", cmd);
  free(file);
}

/* The mail with Message-ID <message_id> in user's INBOX (curl's IMAP
 * client), malloc'd, or NULL after 10 s: OpenSMTPD accepts a mail before
 * it has handed it to Dovecot, so the test waits for delivery. */
static char *imap_wait_for(const char *user, const char *message_id) {
  char cmd[1024];
  for (int attempt = 0; attempt < 100; attempt++) {
    char *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "curl -s --user %s:secret 'imap://127.0.0.1:%d/INBOX' -X 'UID SEARCH HEADER Message-ID \"%s\"'", user,
             imap_port, message_id);
    long uid = -1;
    if (tu_run(cmd, &out) == 0 && out != NULL) {
      const char *s = strstr(out, "* SEARCH ");
      if (s != NULL) uid = strtol(s + 9, NULL, 10);
    }
    free(out);
    if (uid > 0) {
      snprintf(cmd, sizeof(cmd), "curl -s --user %s:secret 'imap://127.0.0.1:%d/INBOX/;UID=%ld'", user, imap_port, uid);
      out = NULL;
      if (tu_run(cmd, &out) == 0) return out;
      free(out);
      return NULL;
    }
    usleep(100000);
  }
  return NULL;
}

/* --- the channel and the fake environment --------------------------------------------------- */

static uv_loop_t loop;
static loader_plugin plug;
static sb_channel *ch;
static httpc *client;

typedef struct rec {
  char ext_id[300], thread[64], sender[300], name[128], subject[300], reply_to[300];
  char text[2048], html[2048], meta[4096];
  uint32_t flags, kind;
  size_t atts;
  char att_types[256];
  int duplicate;
} rec;

typedef struct fake_env {
  channel_env env;
  rec in[64];
  int n_in;
  char stored[64][300];
  int n_stored;
  int commits;
  int n_status;
  uint32_t status;
  char status_id[300], status_error[512];
  uint32_t state;
} fake_env;

static fake_env fe;

typedef struct pending_commit {
  sb_inbound_done_fn done;
  void *arg;
  int duplicate;
  char id[16];
} pending_commit;

static void commit_cb(uv_timer_t *t) {
  pending_commit *p = t->data;
  fe.commits++;
  p->done(p->arg, SB_OK, p->id, p->duplicate);
  free(p);
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* Copies s (NULL → "") into dst of n bytes, cut to fit. */
static void cpy(char *dst, size_t n, const char *s) {
  size_t len = s != NULL ? strnlen(s, n - 1) : 0;
  if (len > 0) memcpy(dst, s, len);
  dst[len] = '\0';
}

static int fake_inbound(void *ctx, sb_channel *c, const sb_inbound_message *m, sb_inbound_done_fn done, void *arg) {
  ck_assert_int_lt(fe.n_in, 64);
  rec *r = &fe.in[fe.n_in++];
  memset(r, 0, sizeof(*r));
  cpy(r->ext_id, sizeof(r->ext_id), m->external_id);
  cpy(r->thread, sizeof(r->thread), m->external_thread_id);
  cpy(r->sender, sizeof(r->sender), m->sender.id);
  cpy(r->name, sizeof(r->name), m->sender.name);
  cpy(r->subject, sizeof(r->subject), m->subject);
  cpy(r->reply_to, sizeof(r->reply_to), m->reply_to_external_id);
  cpy(r->text, sizeof(r->text), m->text);
  cpy(r->html, sizeof(r->html), m->html);
  cpy(r->meta, sizeof(r->meta), m->metadata_json);
  r->flags = m->flags;
  r->kind = m->sender.kind;
  r->atts = m->attachment_count;
  for (size_t i = 0; i < m->attachment_count; i++) {
    size_t l = strlen(r->att_types);
    snprintf(r->att_types + l, sizeof(r->att_types) - l, "%s%s%s", m->attachments[i].mime_type,
             m->attachments[i].data != NULL ? "+data" : "", (m->attachments[i].flags & SB_ATTACHMENT_INLINE) ? "+inline" : "");
    l = strlen(r->att_types);
    snprintf(r->att_types + l, sizeof(r->att_types) - l, " ");
  }
  pending_commit *p = calloc(1, sizeof(*p));
  p->done = done;
  p->arg = arg;
  int found = -1;
  for (int i = 0; i < fe.n_stored; i++)
    if (strcmp(fe.stored[i], m->external_id) == 0) found = i;
  if (found < 0) {
    cpy(fe.stored[fe.n_stored], sizeof(fe.stored[0]), m->external_id);
    found = fe.n_stored++;
  } else {
    p->duplicate = 1;
  }
  r->duplicate = p->duplicate;
  snprintf(p->id, sizeof(p->id), "m-%d", found + 1);
  uv_timer_t *t = malloc(sizeof(*t));
  uv_timer_init(&loop, t);
  t->data = p;
  uv_timer_start(t, commit_cb, 1, 0);
  return SB_OK;
}

static int fake_status(void *ctx, sb_channel *c, const sb_status_update *u) {
  fe.n_status++;
  fe.status = u->status;
  cpy(fe.status_id, sizeof(fe.status_id), u->external_id);
  cpy(fe.status_error, sizeof(fe.status_error), u->error);
  return SB_OK;
}

static void fake_state(void *ctx, sb_channel *c, uint32_t state, const char *reason) { fe.state = state; }

static void guard_cb(uv_timer_t *t) { *(int *)t->data = 1; }

/* Runs the loop until cond() or ms pass; returns cond(). */
static int run_until_fn(int (*cond)(void), uint64_t ms) {
  uv_timer_t guard;
  int expired = 0;
  uv_timer_init(&loop, &guard);
  uv_update_time(&loop);
  guard.data = &expired;
  uv_timer_start(&guard, guard_cb, ms, 0);
  while (!cond() && !expired) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return cond();
}

static int want_in;
static int have_in(void) { return fe.n_in >= want_in; }

/* Waits for the n-th inbound message (1-based) and returns it. */
static rec *wait_inbound(int n) {
  want_in = n;
  ck_assert_msg(run_until_fn(have_in, 15000), "inbound message %d did not arrive (have %d)", n, fe.n_in);
  return &fe.in[n - 1];
}

static int want_state;
static int state_is(void) { return (int)fe.state == want_state; }

static int smtp_port_override;

static void open_channel(const char *password, const char *extra) {
  char json[2048];
  snprintf(json, sizeof(json),
           "{\"imap_url\":\"imap://127.0.0.1:%d/INBOX\",\"smtp_url\":\"smtp://127.0.0.1:%d\",\"tls\":\"none\","
           "\"username\":\"support\",\"password\":\"%s\",\"from_address\":\"support@example.org\","
           "\"company_name\":\"Acme\",\"signature\":\"Best, {first_name}\",\"poll_interval\":\"200ms\"%s%s}",
           imap_port, smtp_port_override ? smtp_port_override : smtp_port, password, extra[0] ? "," : "", extra);
  json_error_t jerr;
  json_t *cred = json_loads(json, 0, &jerr);
  ck_assert_msg(cred != NULL, "bad test JSON: %s", jerr.text);
  json_t *holder = json_pack("{s:s, s:s, s:o}", "name", "support", "plugin", "email", "credentials", cred);
  config_channel c = {.name = "support", .plugin = "email", .inbox = "Support", .enabled = 1,
                      .credentials = json_object_get(holder, "credentials"), .spec = holder};
  char err[512];
  int rc = channel_create(&fe.env, &plug, &c, "/tmp", NULL, &ch, err, sizeof(err));
  json_decref(holder);
  ck_assert_msg(rc == 0, "create failed: %s", err);
  channel_start(ch);
}

static void closed_cb(void *arg) { *(int *)arg = 1; }
static int closed_flag;
static int is_closed(void) { return closed_flag; }

/* Empties the support mailbox, so each test reads only its own mail. */
static void clear_support_mailbox(void) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "curl -s --user support:secret 'imap://127.0.0.1:%d/INBOX' -X 'UID STORE 1:* +FLAGS (\\Deleted)' >/dev/null;"
           " curl -s --user support:secret 'imap://127.0.0.1:%d/INBOX' -X 'EXPUNGE' >/dev/null",
           imap_port, imap_port);
  tu_run(cmd, NULL);
}

static void setup(void) {
  ck_assert_msg(mail_ok, "the mail system is not running (Dovecot, OpenSMTPD and swaks; see scripts/deps.sh test)");
  clear_support_mailbox();
  uv_loop_init(&loop);
  memset(&fe, 0, sizeof(fe));
  fe.env.loop = &loop;
  fe.env.inbound = fake_inbound;
  fe.env.status = fake_status;
  fe.env.state_changed = fake_state;
  ck_assert_int_eq(httpc_new(&loop, &client), 0);
  fe.env.httpc = client;
  char err[512];
  int rc = loader_open_file(SB_PLUGIN_BUILD_DIR "/email.so", hostapi_table(), &plug, err, sizeof(err));
  ck_assert_msg(rc == 0, "load failed: %s", err);
  ch = NULL;
}

static void httpc_closed(void *arg) { *(int *)arg = 1; }

static void teardown(void) {
  if (ch != NULL) {
    closed_flag = 0;
    channel_close(ch, closed_cb, &closed_flag);
    ch = NULL;
    run_until_fn(is_closed, 5000);
  }
  int hc = 0;
  httpc_close(client, httpc_closed, &hc);
  closed_flag = 0;
  while (!hc) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
#if !defined(__SANITIZE_ADDRESS__)
  dlclose(plug.dl);
#endif
  free(plug.path);
}

/* --- sending ------------------------------------------------------------------------------------ */

typedef struct send_rec {
  sb_send_op base;
  int outcome;
  char text[512];
  int done;
} send_rec;

static send_rec *current_send;
static int send_done(void) { return current_send->done; }

static void send_complete(sb_send_op *self, int outcome, const char *text, uint32_t retry_after_ms) {
  send_rec *s = (send_rec *)self;
  s->outcome = outcome;
  cpy(s->text, sizeof(s->text), text);
  s->done = 1;
}

static void reply_with(send_rec *s, const char *to, const char *thread, const char *reply_to, const char *text,
                       uint32_t flags, const sb_attachment *atts, size_t n_atts) {
  memset(s, 0, sizeof(*s));
  s->base.complete = send_complete;
  sb_outbound_message m = {0};
  static int replies; /* each reply its own message, as the outbox makes them */
  char id[32], key[32];
  snprintf(id, sizeof(id), "hd-%d", ++replies);
  snprintf(key, sizeof(key), "idem-%d", replies);
  m.message_id = id;
  m.idempotency_key = key;
  m.attempt = 1;
  m.flags = flags;
  m.recipient_id = to;
  m.recipient_name = "Kim Customer";
  m.external_thread_id = thread;
  m.reply_to_external_id = reply_to;
  m.text = text;
  m.agent_name = "Ana Berg";
  m.attachments = atts;
  m.attachment_count = n_atts;
  ck_assert_int_eq(channel_send(ch, &m, &s->base), 0);
  current_send = s;
  ck_assert_msg(run_until_fn(send_done, 20000), "the send did not complete");
}

static void reply(send_rec *s, const char *to, const char *thread, const char *reply_to, const char *text,
                  uint32_t flags) {
  reply_with(s, to, thread, reply_to, text, flags, NULL, 0);
}

/* --- tests ------------------------------------------------------------------------------------ */

#define CUSTOMER "customer@example.com"

START_TEST(a_conversation_threads_across_mail_in_and_replies_out) {
  open_channel("secret", "");
  swaks_send(CUSTOMER, "support@example.org",
             "From: Kim Customer <customer@example.com>\r\nTo: support@example.org\r\n"
             "Subject: Where is my order\r\nMessage-ID: <order-1@example.com>\r\n\r\nHi, order 4471\r\n");
  rec *r = wait_inbound(1);
  ck_assert_uint_eq(fe.state, SB_STATE_CONNECTED);
  ck_assert_str_eq(r->ext_id, "order-1@example.com");
  ck_assert_str_eq(r->sender, CUSTOMER);
  ck_assert_str_eq(r->name, "Kim Customer");
  ck_assert_uint_eq(r->kind, SB_IDENTITY_EMAIL);
  ck_assert_str_eq(r->subject, "Where is my order");
  ck_assert_ptr_nonnull(strstr(r->text, "Hi, order 4471"));
  ck_assert_uint_eq(r->flags & (SB_IN_NO_AUTOREPLY | SB_IN_AUTOMATIC), 0);
  char thread[64];
  cpy(thread, sizeof(thread), r->thread);
  ck_assert_str_eq(thread, "mail-1");

  /* The agent's reply lands in the customer's mailbox with threading headers. */
  send_rec s;
  reply(&s, CUSTOMER, thread, "order-1@example.com", "We shipped it today.", 0);
  ck_assert_msg(s.outcome == CHANNEL_SEND_OK, "send: %d %s", s.outcome, s.text);
  char out_id[300];
  cpy(out_id, sizeof(out_id), s.text);
  ck_assert_ptr_nonnull(strstr(out_id, "@example.org"));
  char *got = imap_wait_for("customer", out_id);
  ck_assert_ptr_nonnull(got);
  char want[400];
  snprintf(want, sizeof(want), "Message-ID: <%s>", out_id);
  ck_assert_msg(strcasestr(got, want) != NULL, "no %s in:\n%s", want, got);
  ck_assert_msg(strstr(got, "In-Reply-To: <order-1@example.com>") != NULL, "no In-Reply-To in:\n%s", got);
  ck_assert_msg(strstr(got, "References: <order-1@example.com>") != NULL, "no References in:\n%s", got);
  ck_assert_msg(strstr(got, "Subject: Re: Where is my order [#1]") != NULL, "bad subject in:\n%s", got);
  ck_assert_msg(strstr(got, "From: Ana at Acme <support@example.org>") != NULL, "bad From in:\n%s", got);
  ck_assert_msg(strstr(got, "Best, Ana") != NULL, "no signature in:\n%s", got);
  ck_assert_msg(strstr(got, "multipart/alternative") != NULL, "no alternatives in:\n%s", got);
  ck_assert_msg(strstr(got, "Auto-Submitted") == NULL, "an agent's reply is not automatic:\n%s", got);
  free(got);

  /* The customer answers the reply: the same thread, a reply to it. */
  char raw[2048];
  snprintf(raw, sizeof(raw),
           "From: Kim Customer <customer@example.com>\r\nTo: support@example.org\r\n"
           "Subject: Re: Where is my order [#1]\r\nMessage-ID: <order-2@example.com>\r\n"
           "In-Reply-To: <%s>\r\nReferences: <order-1@example.com> <%s>\r\n\r\n"
           "Thanks! When will it arrive?\r\n\r\nOn Mon, 1 Jan 2026 at 10:00, Acme wrote:\r\n> We shipped it today.\r\n",
           out_id, out_id);
  swaks_send(CUSTOMER, "support@example.org", raw);
  r = wait_inbound(2);
  ck_assert_str_eq(r->thread, thread);
  ck_assert_str_eq(r->reply_to, out_id);
  ck_assert_str_eq(r->text, "Thanks! When will it arrive?");
  ck_assert_msg(strstr(r->meta, "\"quoted_history\"") != NULL && strstr(r->meta, "> We shipped it today.") != NULL,
                "quoted history not kept: %s", r->meta);

  /* A client that dropped In-Reply-To but kept the tag. */
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: Re: Where is my order [#1]\r\n"
             "Message-ID: <order-3@example.com>\r\n\r\nAny news?\r\n");
  r = wait_inbound(3);
  ck_assert_str_eq(r->thread, thread);

  /* Someone else answering the same mail starts a conversation of their own. */
  snprintf(raw, sizeof(raw),
           "From: Bob <bob@example.com>\r\nTo: support@example.org\r\nSubject: Re: Where is my order [#1]\r\n"
           "Message-ID: <bob-1@example.com>\r\nIn-Reply-To: <%s>\r\n\r\nI want one too\r\n", out_id);
  swaks_send("bob@example.com", "support@example.org", raw);
  r = wait_inbound(4);
  ck_assert_str_eq(r->sender, "bob@example.com");
  ck_assert_str_ne(r->thread, thread);

  /* The customer's out-of-office answer to an automatic reply. */
  send_rec s2;
  reply(&s2, CUSTOMER, thread, NULL, "Thanks, we got your message.", SB_OUT_AUTOMATIC);
  ck_assert_int_eq(s2.outcome, CHANNEL_SEND_OK);
  got = imap_wait_for("customer", s2.text);
  ck_assert_ptr_nonnull(got);
  ck_assert_msg(strstr(got, "Auto-Submitted: auto-replied") != NULL, "automatic reply unmarked:\n%s", got);
  ck_assert_msg(strstr(got, "X-Auto-Response-Suppress: All") != NULL, "automatic reply unmarked:\n%s", got);
  free(got);
  snprintf(raw, sizeof(raw),
           "From: Kim Customer <customer@example.com>\r\nTo: support@example.org\r\n"
           "Subject: Out of office: Re: Where is my order [#1]\r\nMessage-ID: <ooo-1@example.com>\r\n"
           "Auto-Submitted: auto-replied\r\nIn-Reply-To: <%s>\r\n\r\nI am away until Monday.\r\n", s2.text);
  swaks_send(CUSTOMER, "support@example.org", raw);
  r = wait_inbound(5);
  ck_assert_str_eq(r->thread, thread);
  ck_assert_uint_eq(r->flags & (SB_IN_NO_AUTOREPLY | SB_IN_AUTOMATIC), SB_IN_NO_AUTOREPLY | SB_IN_AUTOMATIC);

  /* A bounce of the agent's reply marks it failed with the reason. */
  snprintf(raw, sizeof(raw),
           "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: support@example.org\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.example.com>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
           "Final-Recipient: rfc822; customer@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           "Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\r\n\r\n"
           "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.org\r\nMessage-ID: <%s>\r\n"
           "Subject: Re: Where is my order [#1]\r\n\r\n--B--\r\n",
           out_id);
  swaks_send("<>", "support@example.org", raw);
  r = wait_inbound(6);
  ck_assert_uint_eq(r->flags & SB_IN_BOUNCE, SB_IN_BOUNCE);
  ck_assert_uint_eq(r->flags & SB_IN_NO_AUTOREPLY, SB_IN_NO_AUTOREPLY);
  ck_assert_str_eq(r->thread, thread);
  ck_assert_int_eq(fe.n_status, 1);
  ck_assert_uint_eq(fe.status, SB_STATUS_FAILED);
  ck_assert_str_eq(fe.status_id, out_id);
  ck_assert_msg(strstr(fe.status_error, "550 5.1.1 mailbox unavailable") != NULL, "reason: %s", fe.status_error);

  /* A changed UIDVALIDITY reads the mailbox again: nothing new is stored
   * and every mail keeps its thread. */
  int stored = fe.n_stored, seen = fe.n_in;
  ck_assert_int_eq(hostapi_table()->kv_set(ch, "uidvalidity", "1", 1, NULL, NULL), SB_OK);
  r = wait_inbound(seen + 6);
  ck_assert_int_eq(fe.n_stored, stored);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(fe.in[seen + i].duplicate, 1);
    ck_assert_str_eq(fe.in[seen + i].ext_id, fe.in[i].ext_id);
    ck_assert_str_eq(fe.in[seen + i].thread, fe.in[i].thread);
  }

  /* A mail without a readable From is the contact unknown@invalid: a reply
   * there fails at once, saying why, rather than going to nowhere. */
  send_rec nobody;
  reply(&nobody, "unknown@invalid", thread, NULL, "who are you?", 0);
  ck_assert_int_eq(nobody.outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(nobody.text, "no readable From") != NULL, "%s", nobody.text);
}
END_TEST

START_TEST(charsets_encoded_headers_attachments_and_forwards_are_read) {
  open_channel("secret", "");
  /* Latin-1 quoted-printable text, RFC 2047 subject and name. */
  swaks_send("lena@example.net", "support@example.org",
             "From: =?ISO-8859-1?Q?Lena_M=FCller?= <Lena@Example.NET>\r\nTo: support@example.org\r\n"
             "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\nMessage-ID: <latin-1@example.net>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
             "Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6nen Tag, die Rechnung fehlt.\r\n");
  rec *r = wait_inbound(1);
  ck_assert_str_eq(r->sender, "lena@example.net");
  ck_assert_str_eq(r->name, "Lena M\xc3\xbcller");
  ck_assert_str_eq(r->subject, "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln");
  ck_assert_ptr_nonnull(strstr(r->text, "Sch\xc3\xb6nen Tag"));

  /* HTML + text alternatives, an inline image, a PDF, in Windows-1252 and base64. */
  swaks_send("lena@example.net", "support@example.org",
             "From: Lena <lena@example.net>\r\nTo: support@example.org\r\nSubject: invoice\r\n"
             "Message-ID: <att-1@example.net>\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
             "--XX\r\nContent-Type: multipart/related; boundary=\"RR\"\r\n\r\n"
             "--RR\r\nContent-Type: multipart/alternative; boundary=\"YY\"\r\n\r\n"
             "--YY\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
             "Price 20=80\r\n"
             "--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Price 20\xe2\x82\xac <img src=\"cid:logo1\"></p>\r\n"
             "--YY--\r\n"
             "--RR\r\nContent-Type: image/png\r\nContent-ID: <logo1>\r\nContent-Disposition: inline\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--RR--\r\n"
             "--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n");
  r = wait_inbound(2);
  ck_assert_ptr_nonnull(strstr(r->text, "Price 20\xe2\x82\xac"));
  ck_assert_ptr_nonnull(strstr(r->html, "<img src=\"cid:logo1\">"));
  ck_assert_uint_eq(r->atts, 2);
  ck_assert_msg(strstr(r->att_types, "image/png+data+inline") != NULL, "types: %s", r->att_types);
  ck_assert_msg(strstr(r->att_types, "application/pdf+data ") != NULL, "types: %s", r->att_types);

  /* A forward as an attached message belongs to the original sender. */
  swaks_send("colleague@example.org", "support@example.org",
             "From: Colleague <colleague@example.org>\r\nTo: support@example.org\r\nSubject: Fwd: broken lamp\r\n"
             "Message-ID: <fwd-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"F\"\r\n\r\n"
             "--F\r\nContent-Type: text/plain\r\n\r\nCan you help this customer?\r\n"
             "--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: Original Person <orig@example.net>\r\n"
             "Subject: broken lamp\r\nMessage-ID: <inner-1@example.net>\r\n\r\nMy lamp is broken.\r\n--F--\r\n");
  r = wait_inbound(3);
  ck_assert_str_eq(r->sender, "orig@example.net");
  ck_assert_str_eq(r->name, "Original Person");
  ck_assert_msg(strstr(r->meta, "\"detected_by\":\"rfc822\"") != NULL, "meta: %s", r->meta);

  /* A Gmail-style inline forward. */
  swaks_send("colleague@example.org", "support@example.org",
             "From: Colleague <colleague@example.org>\r\nTo: support@example.org\r\nSubject: Fwd: refund\r\n"
             "Message-ID: <fwd-2@example.org>\r\n\r\nPlease handle.\r\n\r\n"
             "---------- Forwarded message ---------\r\nFrom: Tom Lane <tom@example.net>\r\n"
             "Date: Mon, 1 Jan 2026\r\nSubject: refund\r\n\r\nI want a refund.\r\n");
  r = wait_inbound(4);
  ck_assert_str_eq(r->sender, "tom@example.net");
  ck_assert_ptr_nonnull(strstr(r->text, "I want a refund."));

  /* Mail from the channel's own address never gets an automatic answer. */
  swaks_send("support@example.org", "support@example.org",
             "From: Support <support@example.org>\r\nTo: support@example.org\r\nSubject: note to self\r\n"
             "Message-ID: <self-1@example.org>\r\n\r\nremember the milk\r\n");
  r = wait_inbound(5);
  ck_assert_uint_eq(r->flags & SB_IN_NO_AUTOREPLY, SB_IN_NO_AUTOREPLY);
  ck_assert_msg(strstr(r->meta, "own address") != NULL, "meta: %s", r->meta);

  /* Malformed MIME is stored with a warning, never dropped. */
  swaks_send("lena@example.net", "support@example.org",
             "From: Lena <lena@example.net>\r\nTo: support@example.org\r\nSubject: broken\r\n"
             "Message-ID: <bad-1@example.net>\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=\"NEVER\"\r\n\r\n--NEVER\r\nContent-Type: text/plain\r\n\r\n"
             "half a message\r\n--NEVER\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             "!!!not base64\r\n");
  r = wait_inbound(6);
  ck_assert_str_eq(r->ext_id, "bad-1@example.net");
  ck_assert_ptr_nonnull(strstr(r->text, "half a message"));
  ck_assert_msg(strstr(r->meta, "parse_warning") != NULL, "meta: %s", r->meta);
}
END_TEST

START_TEST(forwards_belong_to_the_forwarder_when_configured) {
  open_channel("secret", "\"forwarded_mail_owner\":\"forwarder\"");
  swaks_send("colleague@example.org", "support@example.org",
             "From: Colleague <colleague@example.org>\r\nTo: support@example.org\r\nSubject: Fwd: refund\r\n"
             "Message-ID: <fwd-3@example.org>\r\n\r\nPlease handle.\r\n\r\n"
             "Begin forwarded message:\r\n\r\nFrom: Tom Lane <tom@example.net>\r\nSubject: refund\r\n\r\nRefund!\r\n");
  /* The mailbox holds earlier tests' mail too: find this one. */
  for (int n = 1;; n++) {
    rec *r = wait_inbound(n);
    if (strcmp(r->ext_id, "fwd-3@example.org") != 0) continue;
    ck_assert_str_eq(r->sender, "colleague@example.org");
    ck_assert_msg(strstr(r->meta, "tom@example.net") != NULL, "meta: %s", r->meta);
    break;
  }
}
END_TEST

START_TEST(a_mail_too_large_to_fetch_is_stored_from_its_headers) {
  /* max_attachment_bytes 1000: mails over 2 x 1000 + 256 KiB are too large. */
  open_channel("secret", "\"max_attachment_bytes\":1000");
  size_t big = 400 * 1024;
  char *raw = malloc(big + 1024);
  int n = snprintf(raw, 1024,
                   "From: Kim <customer@example.com>\r\nTo: support@example.org\r\nSubject: huge scan\r\n"
                   "Message-ID: <huge-1@example.com>\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n");
  static const char line[] = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n";
  size_t ll = sizeof(line) - 1, at = (size_t)n;
  while (at + ll < (size_t)n + big) {
    memcpy(raw + at, line, ll);
    at += ll;
  }
  raw[at] = '\0';
  swaks_send(CUSTOMER, "support@example.org", raw);
  free(raw);
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: small\r\n"
             "Message-ID: <small-1@example.com>\r\n\r\nthe next one\r\n");
  rec *r = wait_inbound(1);
  ck_assert_str_eq(r->ext_id, "huge-1@example.com");
  ck_assert_str_eq(r->subject, "huge scan");
  ck_assert_str_eq(r->sender, CUSTOMER);
  ck_assert_msg(strstr(r->text, "larger than the channel's limit") != NULL, "text: %s", r->text);
  ck_assert_msg(strstr(r->meta, "fetch limit") != NULL, "meta: %s", r->meta);
  r = wait_inbound(2); /* the mailbox does not stall behind it */
  ck_assert_str_eq(r->ext_id, "small-1@example.com");
  /* A header block alone over the limit (thousands of trace lines): stored
   * from the fields that matter, and the mailbox goes on. */
  raw = malloc(big + 1024);
  at = 0;
  static const char trace[] = "X-Trace: relay.example.net 192.0.2.1 spam-score=0.0 checked-by=filter.example.org ok\r\n";
  while (at + sizeof(trace) < big) {
    memcpy(raw + at, trace, sizeof(trace) - 1);
    at += sizeof(trace) - 1;
  }
  snprintf(raw + at, 1024,
           "From: Kim <customer@example.com>\r\nTo: support@example.org\r\nSubject: many hops\r\n"
           "Message-ID: <hops-1@example.com>\r\n\r\nshort body\r\n");
  swaks_send(CUSTOMER, "support@example.org", raw);
  free(raw);
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: small\r\n"
             "Message-ID: <small-2@example.com>\r\n\r\nafter the hops\r\n");
  r = wait_inbound(3);
  ck_assert_str_eq(r->ext_id, "hops-1@example.com");
  ck_assert_str_eq(r->subject, "many hops");
  ck_assert_str_eq(r->sender, CUSTOMER);
  r = wait_inbound(4);
  ck_assert_str_eq(r->ext_id, "small-2@example.com");
}
END_TEST

START_TEST(tls_required_without_starttls_is_a_config_error) {
  /* This Dovecot has ssl = no, so it offers no STARTTLS. */
  open_channel("secret", "\"tls\":\"required\"");
  want_state = SB_STATE_CONFIG_ERROR;
  ck_assert_msg(run_until_fn(state_is, 15000), "state is %u", fe.state);
  ck_assert_ptr_nonnull(strstr(channel_state_reason(ch), "STARTTLS"));
}
END_TEST

START_TEST(an_unreachable_server_is_a_transient_disconnect) {
  int closed_port = free_port();
  char json_extra[128];
  snprintf(json_extra, sizeof(json_extra), "\"imap_url\":\"imap://127.0.0.1:%d/INBOX\"", closed_port);
  open_channel("secret", json_extra);
  want_state = SB_STATE_DISCONNECTED;
  ck_assert_msg(run_until_fn(state_is, 15000), "state is %u", fe.state);
  ck_assert(!SB_STATE_IS_FATAL(channel_state(ch)));
}
END_TEST

START_TEST(an_imap_outage_after_connecting_disconnects_until_a_poll_succeeds) {
  int port = 0;
  pid_t proxy = imap_proxy_start(&port);
  char extra[128];
  snprintf(extra, sizeof(extra), "\"imap_url\":\"imap://127.0.0.1:%d/INBOX\"", port);
  open_channel("secret", extra);
  want_state = SB_STATE_CONNECTED;
  ck_assert_msg(run_until_fn(state_is, 15000), "state is %u", fe.state);
  /* The server goes away after a successful poll: /healthz must not go on
   * saying connected while no mail is read. */
  stop(&proxy);
  want_state = SB_STATE_DISCONNECTED;
  ck_assert_msg(run_until_fn(state_is, 15000), "still %u with the IMAP server gone", fe.state);
  const char *why = channel_state_reason(ch);
  ck_assert_msg(strstr(why, "IMAP") != NULL, "reason: %s", why);
  ck_assert_msg(strstr(why, "secret") == NULL, "the password is in the reason: %s", why);
  ck_assert(!SB_STATE_IS_FATAL(channel_state(ch)));
  /* Back on the same port: the host's reconnect polls, reads what came
   * meanwhile and the channel is connected again. */
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: during the outage\r\n"
             "Message-ID: <outage-1@example.com>\r\n\r\nhello\r\n");
  proxy = imap_proxy_start(&port);
  rec *r = wait_inbound(1);
  ck_assert_str_eq(r->ext_id, "outage-1@example.com");
  ck_assert_uint_eq(fe.state, SB_STATE_CONNECTED);
  stop(&proxy);
}
END_TEST

/* A mail the server will not serve (its FETCH is answered NO) is tried a
 * few times, then skipped with an error in the log: the mail behind it is
 * read, not held up for good. */
START_TEST(a_mail_the_server_cannot_serve_does_not_hold_up_the_next) {
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: unreadable\r\n"
             "Message-ID: <unreadable-1@example.com>\r\n\r\nfirst\r\n");
  char *got = imap_wait_for("support", "unreadable-1@example.com");
  ck_assert_ptr_nonnull(got);
  free(got);
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: readable\r\n"
             "Message-ID: <readable-1@example.com>\r\n\r\nsecond\r\n");
  int port = 0;
  pid_t proxy = imap_proxy_start_refusing(&port, "first", NULL);
  char extra[160], logfile[1024];
  snprintf(extra, sizeof(extra), "\"imap_url\":\"imap://127.0.0.1:%d/INBOX\"", port);
  snprintf(logfile, sizeof(logfile), "%s/skip.log", mail_dir);
  int fd = open(logfile, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ck_assert_int_ge(fd, 0);
  log_set_fd(fd);
  open_channel("secret", extra);
  rec *r = wait_inbound(1);
  log_set_fd(2);
  close(fd);
  ck_assert_str_eq(r->ext_id, "readable-1@example.com");
  char *logged = NULL, cmd[1100];
  snprintf(cmd, sizeof(cmd), "cat %s", logfile);
  tu_run(cmd, &logged);
  ck_assert_msg(logged != NULL && strstr(logged, "could not be fetched 3 times in a row") != NULL,
                "no error logged for the skipped mail: %s", logged ? logged : "");
  free(logged);
  stop(&proxy);
}
END_TEST

START_TEST(a_refused_login_sets_auth_failed) {
  open_channel("wrong", "");
  want_state = SB_STATE_AUTH_FAILED;
  ck_assert_msg(run_until_fn(state_is, 15000), "state is %u", fe.state);
  ck_assert_uint_eq(channel_state(ch), SB_STATE_AUTH_FAILED);
}
END_TEST

START_TEST(a_message_that_starts_a_conversation_gets_a_new_tag) {
  open_channel("secret", "\"from_name_mode\":\"company\"");
  send_rec s;
  memset(&s, 0, sizeof(s));
  s.base.complete = send_complete;
  sb_attachment att[3] = {{.url = "https://files.example/manual.pdf", .mime_type = "application/pdf",
                           .filename = "manual.pdf"},
                          {.mime_type = "text/csv", .filename = "order.csv", .data = "sku,qty\n4471,1\n",
                           .data_len = 15},
                          {.mime_type = "text/plain", .filename = "empty.txt", .data = "", .data_len = 0}};
  sb_outbound_message m = {.message_id = "hd-2", .idempotency_key = "idem-2", .attempt = 1,
                           .recipient_id = "Customer@Example.com", .subject = "Your order is ready",
                           .text = "Your order is ready.", .html = "<p>Your order is <b>ready</b>.</p>",
                           .attachments = att, .attachment_count = 3, .agent_name = "Ana Berg"};
  ck_assert_int_eq(channel_send(ch, &m, &s.base), 0);
  current_send = &s;
  ck_assert(run_until_fn(send_done, 20000));
  ck_assert_msg(s.outcome == CHANNEL_SEND_OK, "outcome %d: %s", s.outcome, s.text);
  char *got = imap_wait_for("customer", s.text);
  ck_assert_ptr_nonnull(got);
  ck_assert_msg(strstr(got, "Subject: Your order is ready [#1]") != NULL, "%s", got);
  ck_assert_msg(strstr(got, "From: Acme <support@example.org>") != NULL, "%s", got);
  ck_assert_msg(strstr(got, "In-Reply-To") == NULL, "a first message answers nothing:\n%s", got);
  ck_assert_msg(strstr(got, "multipart/mixed") != NULL && strstr(got, "filename=order.csv") != NULL, "%s", got);
  ck_assert_msg(strstr(got, "filename=empty.txt") != NULL, "an empty file is still attached: %s", got);
  ck_assert_msg(strstr(got, "https://files.example/manual.pdf") != NULL, "%s", got);
  ck_assert_msg(strstr(got, "<b>ready</b>") != NULL, "%s", got);
  free(got);

  /* A reply with HTML only gets a text part made from it, not an empty one. */
  send_rec h;
  memset(&h, 0, sizeof(h));
  h.base.complete = send_complete;
  sb_outbound_message hm = {.message_id = "hd-3", .idempotency_key = "idem-3", .attempt = 1,
                            .recipient_id = "customer@example.com", .subject = "Styled",
                            .html = "<p>Only <b>HTML</b> here</p>", .agent_name = "Ana Berg"};
  ck_assert_int_eq(channel_send(ch, &hm, &h.base), 0);
  current_send = &h;
  ck_assert(run_until_fn(send_done, 20000));
  ck_assert_msg(h.outcome == CHANNEL_SEND_OK, "outcome %d: %s", h.outcome, h.text);
  got = imap_wait_for("customer", h.text);
  ck_assert_ptr_nonnull(got);
  ck_assert_msg(strstr(got, "text/plain") != NULL && strstr(got, "Only HTML here") != NULL, "%s", got);
  free(got);

  /* The customer's answer finds the conversation by References. */
  char raw[1024];
  snprintf(raw, sizeof(raw),
           "From: customer@example.com\r\nTo: support@example.org\r\nSubject: Re: Your order is ready [#1]\r\n"
           "Message-ID: <ready-1@example.com>\r\nReferences: <%s>\r\n\r\nGreat\r\n", s.text);
  swaks_send(CUSTOMER, "support@example.org", raw);
  rec *r = wait_inbound(1);
  ck_assert_str_eq(r->thread, "mail-1");
  ck_assert_str_eq(r->reply_to, "");
}
END_TEST

START_TEST(after_read_moves_stored_mail_to_a_folder) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/' -X 'CREATE Done' >/dev/null", imap_port);
  tu_run(cmd, NULL);
  open_channel("secret", "\"after_read\":\"move:Done\"");
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: move me\r\n"
             "Message-ID: <move-1@example.com>\r\n\r\nhello\r\n");
  wait_inbound(1);
  /* Wait for the next cycle, then look: INBOX empty, Done holds it. */
  want_in = 99;
  run_until_fn(have_in, 1500);
  char *out = NULL;
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/INBOX' -X 'UID SEARCH ALL'", imap_port);
  ck_assert_int_eq(tu_run(cmd, &out), 0);
  ck_assert_msg(strncmp(out, "* SEARCH\r\n", 10) == 0 || strcmp(out, "* SEARCH\r\n") == 0, "INBOX: %s", out);
  free(out);
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/Done' -X 'SEARCH HEADER Message-ID move-1'",
           imap_port);
  out = NULL;
  ck_assert_int_eq(tu_run(cmd, &out), 0);
  ck_assert_msg(strncmp(out, "* SEARCH ", 9) == 0 && out[9] >= '1' && out[9] <= '9', "Done: %s", out); /* found */
  free(out);
  ck_assert_int_eq(fe.n_in, 1);
}
END_TEST

/* A move that fails is tried again: the mail is read again (stored once)
 * and moved at the next poll. */
START_TEST(a_failed_move_is_tried_again) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/' -X 'CREATE Done' >/dev/null", imap_port);
  tu_run(cmd, NULL);
  int port = 0;
  pid_t proxy = imap_proxy_start_refusing(&port, NULL, "1");
  char extra[200];
  snprintf(extra, sizeof(extra), "\"imap_url\":\"imap://127.0.0.1:%d/INBOX\",\"after_read\":\"move:Done\"", port);
  open_channel("secret", extra);
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: move me again\r\n"
             "Message-ID: <move-2@example.com>\r\n\r\nhello\r\n");
  wait_inbound(1);
  char *out = NULL;
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/Done' -X 'SEARCH HEADER Message-ID move-2'",
           imap_port);
  for (int i = 0; i < 50; i++) { /* the next polls read it again and move it */
    free(out);
    out = NULL;
    ck_assert_int_eq(tu_run(cmd, &out), 0);
    if (strstr(out, "* SEARCH ") != NULL && strcmp(out, "* SEARCH\r\n") != 0) break;
    want_in = 99;
    run_until_fn(have_in, 200);
  }
  ck_assert_msg(strcmp(out, "* SEARCH\r\n") != 0 && strstr(out, "* SEARCH ") != NULL, "Done: %s", out);
  free(out);
  for (int i = 0; i < fe.n_in; i++) ck_assert_str_eq(fe.in[i].ext_id, "move-2@example.com"); /* the same mail, read again */
  stop(&proxy);
}
END_TEST

/* initial_import "new": the mail already in the mailbox at the first
 * connect stays unread; what arrives afterwards is read. */
START_TEST(initial_import_new_skips_the_mail_already_there) {
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: old\r\n"
             "Message-ID: <old-1@example.com>\r\n\r\nfrom before\r\n");
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/INBOX' -X 'UID SEARCH ALL'", imap_port);
  for (int i = 0; i < 50 && (out == NULL || strcmp(out, "* SEARCH\r\n") == 0); i++) { /* delivered? */
    free(out);
    out = NULL;
    ck_assert_int_eq(tu_run(cmd, &out), 0);
    if (strcmp(out, "* SEARCH\r\n") == 0) usleep(100000);
  }
  ck_assert_msg(strcmp(out, "* SEARCH\r\n") != 0, "the old mail was not delivered: %s", out);
  free(out);
  open_channel("secret", "\"initial_import\":\"new\"");
  want_state = SB_STATE_CONNECTED;
  ck_assert(run_until_fn(state_is, 15000));
  want_in = 99;
  run_until_fn(have_in, 1500); /* several polls */
  ck_assert_int_eq(fe.n_in, 0);
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: new\r\n"
             "Message-ID: <new-1@example.com>\r\n\r\nfrom now\r\n");
  const rec *r = wait_inbound(1);
  ck_assert_str_eq(r->ext_id, "new-1@example.com");
  run_until_fn(have_in, 1000);
  ck_assert_int_eq(fe.n_in, 1);
}
END_TEST

/* A reply's attachments given as links are downloaded and sent as parts of
 * the mail; one the server no longer has stays a link. */
START_TEST(linked_attachments_of_a_reply_go_as_mime_parts) {
  char dir[] = "/tmp/sbmailatt.XXXXXX", cmd[1024], *out = NULL;
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(cmd, sizeof(cmd), "printf 'INVOICE-4471-CONTENT' > %s/invoice.pdf && printf 'notes' > '%s/my notes.txt'", dir,
           dir);
  ck_assert_int_eq(tu_run(cmd, NULL), 0);
  /* a plain HTTP server on a free port, stopped by its PID at the end */
  snprintf(cmd, sizeof(cmd),
           "(cd %s && exec python3 -c 'import http.server, socketserver\n"
           "s = socketserver.TCPServer((\"127.0.0.1\", 0), http.server.SimpleHTTPRequestHandler)\n"
           "print(s.server_address[1], flush=True)\ns.serve_forever()' >port 2>/dev/null) & echo $!",
           dir);
  ck_assert_int_eq(tu_run(cmd, &out), 0);
  int pid = atoi(out);
  free(out);
  int port = 0;
  for (int i = 0; i < 50 && port == 0; i++) {
    char path[300];
    snprintf(path, sizeof(path), "%s/port", dir);
    FILE *f = fopen(path, "r");
    if (f != NULL && fscanf(f, "%d", &port) != 1) port = 0;
    if (f != NULL) fclose(f);
    if (port == 0) usleep(100000);
  }
  ck_assert_int_gt(port, 0);
  open_channel("secret", "");
  char url1[200], url2[200], url3[200];
  snprintf(url1, sizeof(url1), "http://127.0.0.1:%d/invoice.pdf", port);
  snprintf(url2, sizeof(url2), "http://127.0.0.1:%d/gone.png", port);
  snprintf(url3, sizeof(url3), "http://127.0.0.1:%d/my%%20notes.txt", port); /* named as the URL decodes */
  sb_attachment atts[3] = {{.url = url1, .mime_type = "application/pdf"},
                           {.url = url2, .filename = "gone.png"},
                           {.url = url3, .mime_type = "text/plain"}};
  send_rec s;
  reply_with(&s, CUSTOMER, "mail-att", NULL, "Your invoice is attached.", 0, atts, 3);
  kill(pid, SIGTERM);
  ck_assert_msg(s.outcome == CHANNEL_SEND_OK, "send: %d %s", s.outcome, s.text);
  char *got = imap_wait_for("customer", s.text);
  ck_assert_ptr_nonnull(got);
  ck_assert_msg(strstr(got, "multipart/mixed") != NULL, "not multipart/mixed:\n%s", got);
  ck_assert_msg(strstr(got, "filename=invoice.pdf") != NULL || strstr(got, "filename=\"invoice.pdf\"") != NULL,
                "no invoice part:\n%s", got);
  ck_assert_msg(strstr(got, "SU5WT0lDRS00NDcxLUNPTlRFTlQ=") != NULL, "the invoice's bytes are not in the mail:\n%s", got);
  ck_assert_msg(strstr(got, url2) != NULL, "the missing file is not linked:\n%s", got);
  ck_assert_msg(strstr(got, "filename=\"my notes.txt\"") != NULL, "the decoded name is not the part's:\n%s", got);
  free(got);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  tu_run(cmd, NULL);
}
END_TEST

START_TEST(stored_mail_is_marked_seen) {
  open_channel("secret", "");
  swaks_send(CUSTOMER, "support@example.org",
             "From: customer@example.com\r\nTo: support@example.org\r\nSubject: seen\r\n"
             "Message-ID: <seen-1@example.com>\r\n\r\nhello\r\n");
  wait_inbound(1);
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof(cmd), "curl -s --user support:secret 'imap://127.0.0.1:%d/INBOX' -X 'UID SEARCH UNSEEN'", imap_port);
  ck_assert_int_eq(tu_run(cmd, &out), 0);
  ck_assert_msg(strcmp(out, "* SEARCH\r\n") == 0, "unseen: %s", out);
  free(out);
}
END_TEST

START_TEST(smtp_5xx_fails_with_the_server_text) {
  open_channel("secret", "");
  send_rec s;
  reply(&s, "nobody@example.com", NULL, NULL, "hello", 0);
  ck_assert_int_eq(s.outcome, CHANNEL_SEND_FAIL);
  ck_assert_msg(strstr(s.text, "550") != NULL, "reason: %s", s.text);
  ck_assert_msg(strstr(s.text, "Invalid recipient") != NULL, "the server's text is missing: %s", s.text);
}
END_TEST

START_TEST(smtp_4xx_is_retried) {
  int port;
  pid_t pid = fake_smtp_start("tempfail", &port);
  smtp_port_override = port;
  open_channel("secret", "");
  send_rec s;
  reply(&s, CUSTOMER, NULL, NULL, "hello", 0);
  stop(&pid);
  ck_assert_int_eq(s.outcome, CHANNEL_SEND_RETRY);
  ck_assert_msg(strstr(s.text, "451") != NULL, "reason: %s", s.text);
  ck_assert_msg(strstr(s.text, "Mailbox busy") != NULL, "the server's text is missing: %s", s.text);
}
END_TEST

START_TEST(smtp_refused_login_sets_auth_failed_and_retries) {
  int port;
  pid_t pid = fake_smtp_start("authfail", &port);
  smtp_port_override = port;
  open_channel("secret", "");
  send_rec s;
  reply(&s, CUSTOMER, NULL, NULL, "hello", 0);
  stop(&pid);
  ck_assert_msg(s.outcome == CHANNEL_SEND_RETRY, "outcome %d: %s", s.outcome, s.text);
  ck_assert_msg(fe.state == SB_STATE_AUTH_FAILED, "state %u after: %s", (unsigned)fe.state, s.text);
}
END_TEST

START_TEST(smtp_without_starttls_under_tls_required_fails_the_send_and_is_a_config_error) {
  int port;
  pid_t pid = fake_smtp_start("plain", &port);
  smtp_port_override = port;
  /* IMAP points at a closed port (a transient disconnect), so only the
   * SMTP side can make the channel config_error. */
  char extra[160];
  snprintf(extra, sizeof(extra), "\"tls\":\"required\",\"imap_url\":\"imap://127.0.0.1:%d/INBOX\"", free_port());
  open_channel("secret", extra);
  send_rec s;
  reply(&s, CUSTOMER, NULL, NULL, "hello", 0);
  stop(&pid);
  ck_assert_msg(s.outcome == CHANNEL_SEND_FAIL, "outcome %d: %s", s.outcome, s.text);
  ck_assert_msg(strstr(s.text, "STARTTLS") != NULL, "reason: %s", s.text);
  ck_assert_msg(channel_state(ch) == SB_STATE_CONFIG_ERROR, "state %u: %s", (unsigned)channel_state(ch),
                channel_state_reason(ch));
  ck_assert_msg(strstr(channel_state_reason(ch), "SMTP") != NULL, "reason: %s", channel_state_reason(ch));
  /* The IMAP side's reconnects do not hide it. */
  want_state = SB_STATE_DISCONNECTED;
  ck_assert(!run_until_fn(state_is, 2500));
  ck_assert_uint_eq(channel_state(ch), SB_STATE_CONFIG_ERROR);
}
END_TEST

typedef struct mail_result {
  int done, status;
  char body[512];
} mail_result;

static mail_result *current_mail;
static int mail_done(void) { return current_mail->done; }

static void mail_cb(void *arg, const sb_mail_response *r) {
  mail_result *m = arg;
  m->done++;
  m->status = r->status;
  cpy(m->body, sizeof(m->body), r->body);
}

START_TEST(host_mail_request_runs_imap_commands_and_cancels) {
  open_channel("secret", "\"poll_interval\":\"1h\"");
  const sb_host *h = hostapi_table();
  ck_assert(SB_HOST_HAS(h, mail_request) && SB_HOST_HAS(h, mail_cancel));
  char url[128];
  snprintf(url, sizeof(url), "imap://127.0.0.1:%d/INBOX", imap_port);
  sb_mail_request rq = {.struct_size = sizeof(rq), .tls = SB_MAIL_TLS_NONE, .url = url, .username = "support",
                        .password = "secret", .command = "UID SEARCH ALL"};
  mail_result m = {0};
  current_mail = &m;
  ck_assert_ptr_nonnull(h->mail_request(ch, &rq, mail_cb, &m));
  ck_assert(run_until_fn(mail_done, 10000));
  ck_assert_int_eq(m.status, SB_OK);
  ck_assert_msg(strstr(m.body, "* SEARCH") != NULL, "body: %s", m.body);
  /* A wrong password is SB_EACCES. */
  rq.password = "wrong";
  memset(&m, 0, sizeof(m));
  ck_assert_ptr_nonnull(h->mail_request(ch, &rq, mail_cb, &m));
  ck_assert(run_until_fn(mail_done, 10000));
  ck_assert_int_eq(m.status, SB_EACCES);
  /* Invalid requests are refused at once; a cancel completes the call once. */
  sb_mail_request bad = rq;
  bad.url = "http://127.0.0.1/";
  ck_assert_ptr_null(h->mail_request(ch, &bad, mail_cb, &m));
  bad = rq;
  bad.struct_size = 4;
  ck_assert_ptr_null(h->mail_request(ch, &bad, mail_cb, &m));
  memset(&m, 0, sizeof(m));
  rq.password = "secret";
  sb_mail_call *call = h->mail_request(ch, &rq, mail_cb, &m);
  ck_assert_ptr_nonnull(call);
  h->mail_cancel(call);
  ck_assert_int_eq(m.done, 1);
  ck_assert_int_eq(m.status, SB_ECANCELED);
  /* Closing the channel cancels what is pending. */
  memset(&m, 0, sizeof(m));
  ck_assert_ptr_nonnull(h->mail_request(ch, &rq, mail_cb, &m));
  closed_flag = 0;
  channel_close(ch, closed_cb, &closed_flag);
  ch = NULL;
  ck_assert(run_until_fn(is_closed, 5000));
  ck_assert_int_eq(m.done, 1);
  ck_assert_int_eq(m.status, SB_ECANCELED);
}
END_TEST

START_TEST(settings_the_schema_cannot_check_are_refused_by_name) {
  const char *bad[] = {"\"after_read\":\"archive\"", "\"from_address\":\"Support <s@x>\""};
  for (size_t i = 0; i < 2; i++) {
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"imap_url\":\"imap://127.0.0.1:1/INBOX\",\"smtp_url\":\"smtp://127.0.0.1:1\",\"username\":\"u\","
             "\"password\":\"p\",\"from_address\":\"s@example.org\",%s}", bad[i]);
    json_t *cred = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(cred);
    json_t *holder = json_pack("{s:s, s:s, s:o}", "name", "x", "plugin", "email", "credentials", cred);
    config_channel c = {.name = "x", .plugin = "email", .inbox = "Support", .enabled = 1,
                        .credentials = json_object_get(holder, "credentials"), .spec = holder};
    char err[512];
    sb_channel *tmp = NULL;
    ck_assert_int_ne(channel_create(&fe.env, &plug, &c, "/tmp", NULL, &tmp, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, i == 0 ? "after_read" : "from_address") != NULL, "err: %s", err);
    json_decref(holder);
  }
}
END_TEST

int main(void) {
  log_set_level(LOG_LEVEL_WARN);
  Suite *s = suite_create("email");
  TCase *tc = tcase_create("email");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, mail_system_start, mail_system_stop);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_conversation_threads_across_mail_in_and_replies_out);
  tcase_add_test(tc, charsets_encoded_headers_attachments_and_forwards_are_read);
  tcase_add_test(tc, forwards_belong_to_the_forwarder_when_configured);
  tcase_add_test(tc, a_mail_too_large_to_fetch_is_stored_from_its_headers);
  tcase_add_test(tc, tls_required_without_starttls_is_a_config_error);
  tcase_add_test(tc, an_unreachable_server_is_a_transient_disconnect);
  tcase_add_test(tc, an_imap_outage_after_connecting_disconnects_until_a_poll_succeeds);
  tcase_add_test(tc, a_mail_the_server_cannot_serve_does_not_hold_up_the_next);
  tcase_add_test(tc, a_failed_move_is_tried_again);
  tcase_add_test(tc, a_refused_login_sets_auth_failed);
  tcase_add_test(tc, a_message_that_starts_a_conversation_gets_a_new_tag);
  tcase_add_test(tc, after_read_moves_stored_mail_to_a_folder);
  tcase_add_test(tc, stored_mail_is_marked_seen);
  tcase_add_test(tc, initial_import_new_skips_the_mail_already_there);
  tcase_add_test(tc, linked_attachments_of_a_reply_go_as_mime_parts);
  tcase_add_test(tc, smtp_5xx_fails_with_the_server_text);
  tcase_add_test(tc, smtp_4xx_is_retried);
  tcase_add_test(tc, smtp_refused_login_sets_auth_failed_and_retries);
  tcase_add_test(tc, smtp_without_starttls_under_tls_required_fails_the_send_and_is_a_config_error);
  tcase_add_test(tc, host_mail_request_runs_imap_commands_and_cancels);
  tcase_add_test(tc, settings_the_schema_cannot_check_are_refused_by_name);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
