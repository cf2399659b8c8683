/* parse.c — turns the raw bytes of one mail into an email_parsed with gmime 3. */
#include <ctype.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email.h"

#define EMAIL_MAX_WARNINGS 8
#define EMAIL_MAX_DEPTH 8
#define EMAIL_MAX_ATTACHMENTS 64

void email_mime_init(void) {
  /* g_mime_init counts its calls itself; never shut it down: other
   * instances (and other plugins) may use it. */
  g_mime_init();
}

typedef struct parse_ctx {
  email_parsed *p;
  uint64_t max_att;
  int n_warnings;
  int in_forward; /* walking inside a message/rfc822 part */
} parse_ctx;

static char *dup_or_null(const char *s) { return s != NULL ? strdup(s) : NULL; }

/* A valid UTF-8 copy of s[0..len) (invalid bytes become U+FFFD). */
static char *utf8_copy(const char *s, gssize len) {
  if (s == NULL) return NULL;
  gchar *v = g_utf8_make_valid(s, len);
  char *out = strdup(v);
  g_free(v);
  return out;
}

static void warn(parse_ctx *c, const char *what) {
  if (c->n_warnings >= EMAIL_MAX_WARNINGS) return;
  c->n_warnings++;
  email_parsed *p = c->p;
  size_t old = p->warnings != NULL ? strlen(p->warnings) : 0;
  char *n = realloc(p->warnings, old + strlen(what) + 3);
  if (n == NULL) return;
  if (old > 0) {
    memcpy(n + old, "; ", 2);
    old += 2;
  }
  strcpy(n + old, what);
  p->warnings = n;
}

static void parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data) {
  parse_ctx *c = data;
  char buf[160];
  g_snprintf(buf, sizeof(buf), "MIME warning %d at byte %" G_GINT64_FORMAT "%s%.60s", (int)code, offset,
             item != NULL ? ": " : "", item != NULL ? item : "");
  gchar *valid = g_utf8_make_valid(buf, -1);
  warn(c, valid);
  g_free(valid);
}

static char *lower_dup(const char *s) {
  char *d = dup_or_null(s);
  for (char *q = d; q != NULL && *q != '\0'; q++) *q = (char)tolower((unsigned char)*q);
  return d;
}

/* Strips <> and blanks around a Message-ID; malloc'd, NULL when empty. */
static char *clean_id(const char *s) {
  if (s == NULL) return NULL;
  while (*s == ' ' || *s == '\t' || *s == '<') s++;
  size_t n = strcspn(s, "> \t\r\n");
  if (n == 0) return NULL;
  return strndup(s, n);
}

/* The first mailbox of an address list header value: address and name. */
static void first_mailbox(InternetAddressList *list, char **addr, char **name) {
  if (list == NULL) return;
  for (int i = 0; i < internet_address_list_length(list); i++) {
    InternetAddress *a = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
      const char *ad = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
      if (ad == NULL || ad[0] == '\0') continue;
      *addr = lower_dup(ad);
      const char *nm = internet_address_get_name(a);
      *name = nm != NULL && nm[0] != '\0' ? utf8_copy(nm, -1) : NULL;
      return;
    }
    if (INTERNET_ADDRESS_IS_GROUP(a)) {
      first_mailbox(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), addr, name);
      if (*addr != NULL) return;
    }
  }
}

static void parse_address_text(const char *value, char **addr, char **name) {
  InternetAddressList *l = internet_address_list_parse(NULL, value);
  if (l != NULL) {
    first_mailbox(l, addr, name);
    g_object_unref(l);
  }
}

static void add_attachment(parse_ctx *c, GMimeObject *obj, int is_inline) {
  email_parsed *p = c->p;
  if (p->n_atts >= EMAIL_MAX_ATTACHMENTS) {
    warn(c, "too many attachments; the rest are not listed");
    return;
  }
  email_attachment *n = realloc(p->atts, (p->n_atts + 1) * sizeof(*n));
  if (n == NULL) return;
  p->atts = n;
  email_attachment *a = &p->atts[p->n_atts++];
  memset(a, 0, sizeof(*a));
  GMimeContentType *ct = g_mime_object_get_content_type(obj);
  gchar *mt = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
  a->mime_type = lower_dup(mt != NULL ? mt : "application/octet-stream");
  g_free(mt);
  const char *cid = g_mime_object_get_content_id(obj);
  a->content_id = cid != NULL ? utf8_copy(cid, -1) : NULL;
  a->is_inline = is_inline && a->content_id != NULL;
  GMimeStream *ms = g_mime_stream_mem_new();
  if (GMIME_IS_PART(obj)) {
    const char *fn = g_mime_part_get_filename(GMIME_PART(obj));
    a->filename = fn != NULL ? utf8_copy(fn, -1) : NULL;
    GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
    if (w != NULL) g_mime_data_wrapper_write_to_stream(w, ms);
  } else if (GMIME_IS_MESSAGE_PART(obj)) {
    GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
    if (m != NULL) g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, ms);
    a->filename = strdup("forwarded.eml");
  }
  if (a->filename == NULL) a->filename = strdup(a->is_inline ? "inline" : "attachment");
  GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
  a->len = ba != NULL ? ba->len : 0;
  if (c->max_att > 0 && a->len > c->max_att) {
    warn(c, "an attachment is larger than max_attachment_bytes; it is listed without its content");
  } else if (a->len > 0) {
    a->data = malloc(a->len);
    if (a->data != NULL) memcpy(a->data, ba->data, a->len);
  }
  g_object_unref(ms);
}

static void walk(parse_ctx *c, GMimeObject *obj, int depth);

static void walk_message_part(parse_ctx *c, GMimeObject *obj, int depth) {
  email_parsed *p = c->p;
  GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
  if (m == NULL) {
    warn(c, "an attached message could not be read");
    return;
  }
  if (depth == 1 || (depth <= 3 && p->fwd_addr == NULL)) {
    /* The first attached message of a mail is the one it forwards. */
    if (p->fwd_addr == NULL) {
      first_mailbox(g_mime_message_get_from(m), &p->fwd_addr, &p->fwd_name);
      if (p->fwd_addr != NULL) p->fwd_how = strdup("rfc822");
    }
  }
  add_attachment(c, obj, 0);
  GMimeObject *body = g_mime_message_get_mime_part(m);
  if (body != NULL && (p->text == NULL || p->html == NULL)) {
    int saved = c->in_forward;
    c->in_forward = 1;
    walk(c, body, depth + 1);
    c->in_forward = saved;
  }
}

static void walk(parse_ctx *c, GMimeObject *obj, int depth) {
  email_parsed *p = c->p;
  if (obj == NULL) return;
  if (depth > EMAIL_MAX_DEPTH) {
    warn(c, "MIME nesting too deep; inner parts skipped");
    return;
  }
  if (GMIME_IS_MULTIPART(obj)) {
    GMimeMultipart *mp = GMIME_MULTIPART(obj);
    int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; i++) walk(c, g_mime_multipart_get_part(mp, i), depth + 1);
    return;
  }
  if (GMIME_IS_MESSAGE_PART(obj)) {
    walk_message_part(c, obj, depth);
    return;
  }
  if (!GMIME_IS_PART(obj)) return;
  GMimeContentDisposition *disp = g_mime_object_get_content_disposition(obj);
  int is_attachment = disp != NULL && g_mime_content_disposition_is_attachment(disp);
  GMimeContentType *ct = g_mime_object_get_content_type(obj);
  int is_plain = ct != NULL && g_mime_content_type_is_type(ct, "text", "plain");
  int is_html = ct != NULL && g_mime_content_type_is_type(ct, "text", "html");
  if (GMIME_IS_TEXT_PART(obj) && !is_attachment && (is_plain || is_html)) {
    char **slot = is_plain ? &p->text : &p->html;
    if (*slot == NULL) {
      /* get_text converts from the part's charset to UTF-8. */
      char *t = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
      if (t != NULL) {
        *slot = utf8_copy(t, -1);
        g_free(t);
        if (c->in_forward == 0 && !g_utf8_validate(*slot, -1, NULL)) warn(c, "text was not valid UTF-8");
      }
      return;
    }
  }
  const char *cid = g_mime_object_get_content_id(obj);
  int is_inline = !is_attachment && cid != NULL;
  add_attachment(c, obj, is_inline);
}

/* Line-start case-insensitive search of field in [s, end); returns the
 * value start or NULL. */
static const char *find_field(const char *s, const char *end, const char *field) {
  size_t fl = strlen(field);
  for (const char *q = s; q != NULL && q + fl <= end;) {
    if (strncasecmp(q, field, fl) == 0) return q + fl;
    q = memchr(q, '\n', (size_t)(end - q));
    if (q != NULL) q++;
  }
  return NULL;
}

/* A field's value from v to its end, continuation lines (folded, RFC 5322
 * and 3464) joined with one space. */
static char *field_value(const char *v, const char *end) {
  GString *out = g_string_new(NULL);
  for (;;) {
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    const char *e = v;
    while (e < end && *e != '\r' && *e != '\n') e++;
    if (out->len > 0 && e > v) g_string_append_c(out, ' ');
    g_string_append_len(out, v, e - v);
    if (e < end && *e == '\r') e++;
    if (e < end && *e == '\n') e++;
    if (e >= end || (*e != ' ' && *e != '\t')) break; /* the next line is no continuation */
    v = e;
  }
  char *r = utf8_copy(out->str, (gssize)out->len);
  g_string_free(out, TRUE);
  return r;
}

/* A delivery-status report: the Message-ID it reports on and why. */
static void read_bounce(parse_ctx *c, const char *raw, size_t len) {
  email_parsed *p = c->p;
  const char *end = raw + len;
  const char *body = NULL;
  for (size_t i = 0; i + 1 < len; i++) {
    if (raw[i] == '\n' && (raw[i + 1] == '\n' || (raw[i + 1] == '\r' && i + 2 < len && raw[i + 2] == '\n'))) {
      body = raw + i + 1;
      break;
    }
  }
  if (body == NULL) return;
  const char *v = find_field(body, end, "Original-Message-ID:");
  if (v == NULL) v = find_field(body, end, "Message-ID:");
  if (v != NULL) {
    char *val = field_value(v, end);
    p->bounce_of = clean_id(val);
    free(val);
  }
  const char *d = find_field(body, end, "Diagnostic-Code:");
  const char *st = find_field(body, end, "Status:");
  char *dv = d != NULL ? field_value(d, end) : NULL;
  char *sv = st != NULL ? field_value(st, end) : NULL;
  /* Only a failure fails the reply: a report may say a delivery is delayed
   * (4.x.x, the sender's server still trying) or done (2.x.x). Any
   * recipient's Action: failed is a failure; without Actions, the status
   * class decides; with neither, it is taken as a bounce. */
  int failed = 0, other = 0;
  for (const char *a = find_field(body, end, "Action:"); a != NULL; a = find_field(a, end, "Action:")) {
    char *av = field_value(a, end);
    if (av != NULL && strncasecmp(av, "failed", 6) == 0)
      failed = 1;
    else
      other = 1;
    free(av);
  }
  if (!failed && !other) failed = sv == NULL || (sv[0] != '2' && sv[0] != '4');
  p->bounce_failed = failed;
  const char *what = failed ? "bounced" : sv != NULL && sv[0] == '4' ? "delayed" : "delivery report";
  size_t n = (dv ? strlen(dv) : 0) + (sv ? strlen(sv) : 0) + 64;
  p->bounce_reason = malloc(n);
  if (p->bounce_reason != NULL) {
    snprintf(p->bounce_reason, n, "%s: %s%s%s%s", what, dv ? dv : failed ? "delivery failed" : "no diagnostic",
             sv ? " (status " : "", sv ? sv : "", sv ? ")" : "");
  }
  free(dv);
  free(sv);
  if (p->bounce_of == NULL) warn(c, "a delivery report without the Message-ID it reports on");
}

static int header_is(GMimeObject *o, const char *name, const char *const *values) {
  const char *v = g_mime_object_get_header(o, name);
  if (v == NULL) return 0;
  while (*v == ' ') v++;
  for (size_t i = 0; values[i] != NULL; i++) {
    if (strncasecmp(v, values[i], strlen(values[i])) == 0) return 1;
  }
  return 0;
}

static void set_loop(email_parsed *p, uint32_t flags, const char *why) {
  p->flags |= flags;
  if (p->loop_reason == NULL) p->loop_reason = strdup(why);
}

/* RFC 3834 and common practice: mail that must never get an automatic reply. */
static void read_loop_safety(email_parsed *p, GMimeObject *o) {
  const char *as = g_mime_object_get_header(o, "Auto-Submitted");
  if (as != NULL) {
    while (*as == ' ') as++;
    if (strncasecmp(as, "no", 2) != 0 || isalpha((unsigned char)as[2]) || as[2] == '-')
      set_loop(p, SB_IN_AUTOMATIC | SB_IN_NO_AUTOREPLY, "Auto-Submitted");
  }
  static const char *const bulk[] = {"bulk", "junk", "list", NULL};
  if (header_is(o, "Precedence", bulk)) set_loop(p, SB_IN_NO_AUTOREPLY, "Precedence");
  if (g_mime_object_get_header(o, "X-Auto-Response-Suppress") != NULL)
    set_loop(p, SB_IN_NO_AUTOREPLY, "X-Auto-Response-Suppress");
  if (g_mime_object_get_header(o, "List-Id") != NULL) set_loop(p, SB_IN_NO_AUTOREPLY, "List-Id");
  if (g_mime_object_get_header(o, "X-Autoreply") != NULL || g_mime_object_get_header(o, "X-Autorespond") != NULL)
    set_loop(p, SB_IN_AUTOMATIC | SB_IN_NO_AUTOREPLY, "X-Autoreply");
  const char *rp = g_mime_object_get_header(o, "Return-Path");
  if (rp != NULL) {
    while (*rp == ' ') rp++;
    if (strncmp(rp, "<>", 2) == 0 || rp[0] == '\0') set_loop(p, SB_IN_NO_AUTOREPLY, "empty return path");
  }
  if (p->from_addr != NULL &&
      (strncmp(p->from_addr, "mailer-daemon@", 14) == 0 || strncmp(p->from_addr, "postmaster@", 11) == 0))
    set_loop(p, SB_IN_AUTOMATIC | SB_IN_NO_AUTOREPLY, "MAILER-DAEMON");
}

/* Inline forward markers of common clients, and the From: line after them. */
static void read_inline_forward(email_parsed *p, const char *subject) {
  static const struct {
    const char *marker, *how;
  } markers[] = {{"---------- Forwarded message ---------", "gmail"},
                 {"Begin forwarded message:", "apple"},
                 {"-----Original Message-----", "outlook"},
                 {"________________________________", "outlook"}};
  if (p->text == NULL || p->fwd_addr != NULL) return;
  int fw_subject = subject != NULL && (strncasecmp(subject, "fw:", 3) == 0 || strncasecmp(subject, "fwd:", 4) == 0);
  for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
    const char *m = strstr(p->text, markers[i].marker);
    if (m == NULL) continue;
    if (strcmp(markers[i].how, "outlook") == 0 && !fw_subject) continue; /* a quoted reply, not a forward */
    const char *end = m + strlen(m);
    const char *f = find_field(m, end < m + 2000 ? end : m + 2000, "From:");
    if (f == NULL) continue;
    char *val = field_value(f, end);
    /* Outlook writes "Name [mailto:addr]". */
    char *mt = val != NULL ? strstr(val, "[mailto:") : NULL;
    if (mt != NULL) {
      *mt = '<';
      memmove(mt + 1, mt + 8, strlen(mt + 8) + 1);
      char *cl = strchr(mt, ']');
      if (cl != NULL) *cl = '>';
    }
    if (val != NULL) parse_address_text(val, &p->fwd_addr, &p->fwd_name);
    free(val);
    if (p->fwd_addr != NULL) {
      p->fwd_how = strdup(markers[i].how);
      return;
    }
  }
}

/* Whether the line s (t bytes, trailing blanks gone) ends with "wrote:". */
static int ends_wrote(const char *s, size_t t) { return t >= 6 && strncmp(s + t - 6, "wrote:", 6) == 0; }

/* The length of the line at s (of at most len bytes) without its line end
 * and trailing blanks, into *t; returns the full line's length. */
static size_t line_at(const char *s, size_t len, size_t *t) {
  const char *nl = memchr(s, '\n', len);
  size_t ll = nl != NULL ? (size_t)(nl - s) : len;
  *t = ll;
  while (*t > 0 && (s[*t - 1] == '\r' || s[*t - 1] == ' ')) (*t)--;
  return ll;
}

size_t email_quote_start(const char *text, size_t len) {
  /* The history is the quote the mail ends with: an attribution ("On ...
   * wrote:", maybe wrapped over two lines) or '>' lines, with nothing but
   * blank lines after them. A quote with new text after it (an answer
   * written below, or between, the quoted lines) is part of the message.
   * Outlook's "-----Original Message-----" starts history whatever
   * follows it (the old mail, unquoted). */
  size_t line = 0, cut = len;
  int skip_next = 0;
  while (line < len) {
    const char *s = text + line;
    size_t t, ll = line_at(s, len - line, &t);
    int has_nl = line + ll < len;
    if (t >= 26 && strncmp(s, "-----Original Message-----", 26) == 0) return cut < len ? cut : line;
    int opens = strncmp(s, "On ", 3) == 0 || strncmp(s, "Le ", 3) == 0 || strncmp(s, "Am ", 3) == 0 ||
                strncmp(s, "Den ", 4) == 0;
    int quoted = skip_next || s[0] == '>' || (opens && ends_wrote(s, t));
    skip_next = 0;
    if (!quoted && opens && has_nl) { /* "On ... <" wrapped, "addr> wrote:" on the next line, as Gmail wraps it */
      size_t t2;
      line_at(s + ll + 1, len - line - ll - 1, &t2);
      if (t2 > 0 && s[ll + 1] != '>' && ends_wrote(s + ll + 1, t2)) quoted = skip_next = 1;
    }
    int blank = 1;
    for (size_t i = 0; i < t; i++) blank &= s[i] == ' ' || s[i] == '\t' || s[i] == '\r';
    if (quoted && cut == len)
      cut = line;
    else if (!quoted && !blank)
      cut = len; /* new text after a quote: the quote was no trailing history */
    if (!has_nl) break;
    line += ll + 1;
  }
  return cut;
}

static void split_quote(email_parsed *p) {
  if (p->text == NULL || p->fwd_addr != NULL) return;
  size_t len = strlen(p->text);
  size_t q = email_quote_start(p->text, len);
  if (q >= len) return;
  p->quoted = strdup(p->text + q);
  size_t keep = q;
  while (keep > 0 && (p->text[keep - 1] == '\n' || p->text[keep - 1] == '\r' || p->text[keep - 1] == ' ')) keep--;
  p->text[keep] = '\0';
}

/* The value of attribute name in the tag [tag, gt), or NULL (malloc'd;
 * &amp; decoded, as links carry it). */
static char *html_attr(const char *tag, const char *gt, const char *name) {
  size_t nl = strlen(name);
  for (const char *a = tag; a + nl < gt; a++) {
    if ((a[-1] != ' ' && a[-1] != '\t' && a[-1] != '\n' && a[-1] != '\r') || g_ascii_strncasecmp(a, name, nl) != 0)
      continue;
    const char *v = a + nl;
    while (v < gt && (*v == ' ' || *v == '\t')) v++;
    if (v >= gt || *v != '=') continue;
    v++;
    while (v < gt && (*v == ' ' || *v == '\t')) v++;
    char q = v < gt && (*v == '"' || *v == '\'') ? *v++ : 0;
    const char *e = v;
    while (e < gt && (q ? *e != q : (*e != ' ' && *e != '\t'))) e++;
    GString *out = g_string_new(NULL);
    for (const char *c = v; c < e; c++) {
      if (strncmp(c, "&amp;", 5) == 0 && c + 5 <= e) {
        g_string_append_c(out, '&');
        c += 4;
      } else {
        g_string_append_c(out, *c);
      }
    }
    return g_string_free(out, FALSE);
  }
  return NULL;
}

/* Appends the character an entity at s names and returns its length, or 0
 * when s starts none this knows: numeric ones, and the named ones mail
 * programs write. */
static size_t html_entity(const char *s, GString *out) {
  static const struct {
    const char *name, *text;
  } named[] = {{"nbsp", " "},       {"amp", "&"},          {"lt", "<"},          {"gt", ">"},
               {"quot", "\""},      {"apos", "'"},         {"euro", "\u20ac"},   {"pound", "\u00a3"},
               {"yen", "\u00a5"},    {"cent", "\u00a2"},    {"copy", "\u00a9"},   {"reg", "\u00ae"},
               {"trade", "\u2122"},  {"mdash", "\u2014"},   {"ndash", "\u2013"},  {"hellip", "\u2026"},
               {"lsquo", "\u2018"},  {"rsquo", "\u2019"},   {"ldquo", "\u201c"},  {"rdquo", "\u201d"},
               {"laquo", "\u00ab"},  {"raquo", "\u00bb"},   {"bull", "\u2022"},   {"middot", "\u00b7"},
               {"deg", "\u00b0"},    {"times", "\u00d7"},   {"shy", ""},          {"auml", "\u00e4"},
               {"ouml", "\u00f6"},   {"uuml", "\u00fc"},    {"Auml", "\u00c4"},   {"Ouml", "\u00d6"},
               {"Uuml", "\u00dc"},   {"szlig", "\u00df"},   {"eacute", "\u00e9"}, {"egrave", "\u00e8"},
               {"aacute", "\u00e1"}, {"agrave", "\u00e0"},  {"oacute", "\u00f3"}, {"iacute", "\u00ed"},
               {"uacute", "\u00fa"}, {"ntilde", "\u00f1"},  {"ccedil", "\u00e7"}, {"aring", "\u00e5"},
               {"Aring", "\u00c5"},  {"oslash", "\u00f8"},  {"Oslash", "\u00d8"}, {"aelig", "\u00e6"},
               {"AElig", "\u00c6"},  {"Eacute", "\u00c9"}};
  const char *semi = strchr(s, ';');
  if (s[0] != '&' || semi == NULL || semi - s > 10 || semi == s + 1) return 0;
  if (s[1] == '#') {
    char *end;
    unsigned long cp = s[2] == 'x' || s[2] == 'X' ? strtoul(s + 3, &end, 16) : strtoul(s + 2, &end, 10);
    if (end != semi || cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    char buf[8];
    g_string_append_len(out, buf, g_unichar_to_utf8((gunichar)cp, buf));
    return (size_t)(semi - s) + 1;
  }
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    size_t n = strlen(named[i].name);
    if ((size_t)(semi - s - 1) == n && strncmp(s + 1, named[i].name, n) == 0) {
      g_string_append(out, named[i].text);
      return n + 2;
    }
  }
  return 0;
}

/* Plain text of an HTML body, for mails that have no text part: tags
 * dropped (and what is inside <style>, <script> and <head>), line breaks at
 * <br> and around blocks, table cells spaced, entities decoded, an http(s)
 * link's address after its text, blank runs folded. Returns malloc'd
 * UTF-8. */
char *email_html_to_text(const char *html) {
  static const char *const blocks[] = {"p",  "div", "li", "tr", "h1", "h2", "h3", "h4",   "h5",
                                       "h6", "ul",  "ol", "table", "blockquote", "pre", "hr", "section"};
  GString *out = g_string_new(NULL);
  const char *skip_until = NULL;
  char *href = NULL;       /* the link being written, shown after its text when that differs */
  size_t link_start = 0;
  for (const char *s = html; *s != '\0';) {
    if (skip_until != NULL) {
      const char *e = strcasestr(s, skip_until);
      if (e == NULL) break;
      s = e + strlen(skip_until);
      skip_until = NULL;
      continue;
    }
    if (*s == '<') {
      const char *gt = strchr(s, '>');
      if (gt == NULL) break;
      const char *t = s + 1;
      int closing = *t == '/';
      if (closing) t++;
      char name[16] = "";
      size_t tl = 0;
      while (g_ascii_isalnum(t[tl]) && tl + 1 < sizeof(name)) {
        name[tl] = g_ascii_tolower(t[tl]);
        tl++;
      }
      int block = 0;
      for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) block |= strcmp(name, blocks[i]) == 0;
      if (!closing && strcmp(name, "style") == 0) {
        skip_until = "</style>";
      } else if (!closing && strcmp(name, "script") == 0) {
        skip_until = "</script>";
      } else if (!closing && strcmp(name, "head") == 0) {
        skip_until = "</head>";
      } else if (strcmp(name, "br") == 0 || (block && (closing || (out->len > 0 && out->str[out->len - 1] != '\n')))) {
        g_string_append_c(out, '\n'); /* a line break, a block's end, or a block right after text */
      } else if (closing && (strcmp(name, "td") == 0 || strcmp(name, "th") == 0)) {
        g_string_append_c(out, ' '); /* table cells side by side */
      } else if (!closing && strcmp(name, "a") == 0) {
        g_free(href);
        href = html_attr(t + tl, gt, "href");
        link_start = out->len;
      } else if (closing && strcmp(name, "a") == 0 && href != NULL) {
        int web = g_str_has_prefix(href, "http://") || g_str_has_prefix(href, "https://");
        if (web && strcmp(out->str + link_start, href) != 0) g_string_append_printf(out, " (%s)", href);
        g_free(href);
        href = NULL;
      }
      s = gt + 1;
      continue;
    }
    size_t n = *s == '&' ? html_entity(s, out) : 0;
    if (n > 0) {
      s += n;
      continue;
    }
    if (*s == '\r' || *s == '\n' || *s == '\t') {
      if (out->len > 0 && out->str[out->len - 1] != ' ' && out->str[out->len - 1] != '\n') g_string_append_c(out, ' ');
      s++;
      continue;
    }
    if (*s == ' ' && out->len > 0 && (out->str[out->len - 1] == ' ' || out->str[out->len - 1] == '\n')) {
      s++;
      continue;
    }
    g_string_append_c(out, *s++);
  }
  g_free(href);
  /* Trim, and fold three or more newlines into two. */
  GString *folded = g_string_new(NULL);
  int nl = 0;
  for (size_t i = 0; i < out->len; i++) {
    char c = out->str[i];
    if (c == '\n') {
      if (++nl > 2) continue;
      while (folded->len > 0 && folded->str[folded->len - 1] == ' ') g_string_truncate(folded, folded->len - 1);
    } else if (c == ' ' && nl > 0) {
      continue;
    } else {
      nl = 0;
    }
    if (folded->len == 0 && (c == '\n' || c == ' ')) continue;
    g_string_append_c(folded, c);
  }
  while (folded->len > 0 && (folded->str[folded->len - 1] == '\n' || folded->str[folded->len - 1] == ' '))
    g_string_truncate(folded, folded->len - 1);
  g_string_free(out, TRUE);
  char *r = utf8_copy(folded->str, -1);
  g_string_free(folded, TRUE);
  return r;
}

int email_message_id_citable(const char *id) {
  return id != NULL && strchr(id, '@') != NULL && strpbrk(id, " \t<>\r\n") == NULL && strlen(id) <= 900;
}

/* Line ends as \n, as every other channel's text has them: CRLF (mail's
 * own) and a lone CR both become LF, in place. */
static void lf_only(char *s) {
  if (s == NULL) return;
  char *w = s;
  for (const char *r = s; *r != '\0'; r++) {
    if (*r == '\r') {
      *w++ = '\n';
      if (r[1] == '\n') r++;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

static char *hash_id(const char *raw, size_t len) {
  /* The header block is what identifies a mail without a Message-ID. */
  size_t hl = len;
  for (size_t i = 0; i + 1 < len; i++) {
    if (raw[i] == '\n' && (raw[i + 1] == '\n' || raw[i + 1] == '\r')) {
      hl = i;
      break;
    }
  }
  gchar *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)raw, hl);
  char *id = malloc(5 + 32 + 1);
  if (id != NULL) snprintf(id, 38, "hash-%.32s", sum);
  g_free(sum);
  return id;
}

/* An RFC 2047 encoded word at s (before end): its charset, encoding
 * letter and payload; 0 when s does not start one. */
typedef struct ew {
  const char *charset, *payload, *end; /* end: just after "?=" */
  size_t charset_len, payload_len;
  char enc;
} ew;

static int ew_read(const char *s, const char *end, ew *w) {
  if (end - s < 8 || s[0] != '=' || s[1] != '?') return 0;
  const char *cs = s + 2, *q = memchr(cs, '?', (size_t)(end - cs));
  if (q == NULL || q == cs || end - q < 4 || q[2] != '?') return 0;
  const char *pl = q + 3, *stop = pl;
  while (stop + 1 < end && !(stop[0] == '?' && stop[1] == '=') && stop[0] != '\r' && stop[0] != '\n') stop++;
  if (stop + 1 >= end || stop[0] != '?') return 0;
  *w = (ew){cs, pl, stop + 2, (size_t)(q - cs), (size_t)(stop - pl), (char)g_ascii_toupper(q[1])};
  return 1;
}

/* gmime joins adjacent encoded words of one charset before decoding them
 * (so that a character split between two words decodes whole), which
 * breaks on a base64 word padded with '=': "=?UTF-8?B?w6l0w6k=?=
 * =?UTF-8?B?IGNoYXVk?=" (as Python's email package writes a long name)
 * read as "été". Such a run in the header block is written as one word of
 * the same bytes before gmime reads it. Returns the rewritten message
 * (its length in *out_len), or NULL when no run needs it. */
static char *join_padded_words(const char *raw, size_t len, size_t *out_len) {
  const char *end = raw + len, *hend = end;
  for (const char *q = raw; q + 1 < end; q++) {
    if (q[0] == '\n' && (q[1] == '\n' || (q[1] == '\r' && q + 2 < end && q[2] == '\n'))) {
      hend = q + 1;
      break;
    }
  }
  GString *out = NULL;
  const char *copied = raw;
  for (const char *p = raw; p < hend;) {
    ew first, w;
    if (!ew_read(p, hend, &first) || first.enc != 'B') {
      p++;
      continue;
    }
    GByteArray *bytes = g_byte_array_new();
    int words = 0, padded = 0, prev_padded = 0;
    const char *run_end = first.end;
    for (const char *q = p; ew_read(q, hend, &w) && w.enc == 'B' && w.charset_len == first.charset_len &&
                            g_ascii_strncasecmp(w.charset, first.charset, first.charset_len) == 0;) {
      char *b64 = g_strndup(w.payload, w.payload_len);
      gsize n = 0;
      guchar *dec = g_base64_decode(b64, &n);
      g_byte_array_append(bytes, dec, (guint)n);
      g_free(dec);
      g_free(b64);
      padded |= prev_padded; /* a word before this one ended in padding */
      prev_padded = w.payload_len > 0 && w.payload[w.payload_len - 1] == '=';
      words++;
      run_end = w.end;
      q = w.end;
      while (q < hend && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
    }
    if (words > 1 && padded) {
      if (out == NULL) out = g_string_sized_new(len + 16);
      g_string_append_len(out, copied, p - copied);
      gchar *b64 = g_base64_encode(bytes->data, bytes->len);
      g_string_append_printf(out, "=?%.*s?B?%s?=", (int)first.charset_len, first.charset, b64);
      g_free(b64);
      copied = run_end;
    }
    g_byte_array_unref(bytes);
    p = run_end;
  }
  if (out == NULL) return NULL;
  g_string_append_len(out, copied, end - copied);
  *out_len = out->len;
  return g_string_free(out, FALSE);
}

int email_parse(const char *raw, size_t len, uint64_t max_att_bytes, email_parsed *out) {
  memset(out, 0, sizeof(*out));
  if (raw == NULL) len = 0;
  parse_ctx c = {.p = out, .max_att = max_att_bytes};
  GMimeParserOptions *opts = g_mime_parser_options_new();
  g_mime_parser_options_set_warning_callback(opts, parser_warning, &c);
  size_t joined_len = 0;
  char *joined = raw != NULL ? join_padded_words(raw, len, &joined_len) : NULL;
  GMimeStream *stream = joined != NULL ? g_mime_stream_mem_new_with_buffer(joined, joined_len)
                                       : g_mime_stream_mem_new_with_buffer(raw != NULL ? raw : "", len);
  g_free(joined);
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage *msg = g_mime_parser_construct_message(parser, opts);
  g_object_unref(parser);
  g_object_unref(stream);
  if (msg == NULL) {
    warn(&c, "not a readable MIME message; stored as plain text");
    out->text = utf8_copy(raw != NULL ? raw : "", (gssize)len);
  } else {
    GMimeObject *o = GMIME_OBJECT(msg);
    const char *mid = g_mime_message_get_message_id(msg);
    out->message_id = mid != NULL && mid[0] != '\0' ? utf8_copy(mid, -1) : NULL;
    first_mailbox(g_mime_message_get_from(msg), &out->from_addr, &out->from_name);
    const char *subj = g_mime_message_get_subject(msg);
    out->subject = subj != NULL ? utf8_copy(subj, -1) : NULL;
    GDateTime *dt = g_mime_message_get_date(msg);
    if (dt != NULL) out->date_ms = (int64_t)g_date_time_to_unix(dt) * 1000;
    const char *irt = g_mime_object_get_header(o, "In-Reply-To");
    GMimeReferences *r = irt != NULL ? g_mime_references_parse(NULL, irt) : NULL;
    if (r != NULL && g_mime_references_length(r) > 0)
      out->in_reply_to = utf8_copy(g_mime_references_get_message_id(r, 0), -1);
    if (r != NULL) g_mime_references_free(r);
    const char *refs_h = g_mime_object_get_header(o, "References");
    r = refs_h != NULL ? g_mime_references_parse(NULL, refs_h) : NULL;
    int nr = r != NULL ? g_mime_references_length(r) : 0;
    if (nr > 0) {
      out->refs = calloc((size_t)nr, sizeof(char *));
      for (int i = 0; out->refs != NULL && i < nr; i++) {
        out->refs[i] = utf8_copy(g_mime_references_get_message_id(r, i), -1);
        out->n_refs++;
      }
    }
    if (r != NULL) g_mime_references_free(r);
    const char *resent = g_mime_object_get_header(o, "Resent-From");
    if (resent != NULL && out->from_addr != NULL) {
      char *ra = NULL, *rn = NULL;
      parse_address_text(resent, &ra, &rn);
      if (ra != NULL && strcmp(ra, out->from_addr) != 0) {
        /* Resent: From is the author, Resent-From the one who passed it on. */
        out->fwd_addr = out->from_addr;
        out->fwd_name = out->from_name;
        out->from_addr = ra;
        out->from_name = rn;
        out->fwd_how = strdup("resent");
      } else {
        free(ra);
        free(rn);
      }
    }
    walk(&c, g_mime_message_get_mime_part(msg), 0);
    read_loop_safety(out, o);
    GMimeContentType *ct = g_mime_object_get_content_type(g_mime_message_get_mime_part(msg));
    const char *rt = ct != NULL ? g_mime_content_type_get_parameter(ct, "report-type") : NULL;
    if (ct != NULL && g_mime_content_type_is_type(ct, "multipart", "report") && rt != NULL &&
        strcasecmp(rt, "delivery-status") == 0) {
      out->flags |= SB_IN_BOUNCE | SB_IN_AUTOMATIC | SB_IN_NO_AUTOREPLY;
      read_bounce(&c, raw, len);
      /* The returned message is the bounced mail, not a forward. */
      free(out->fwd_addr);
      free(out->fwd_name);
      free(out->fwd_how);
      out->fwd_addr = out->fwd_name = out->fwd_how = NULL;
    }
    read_inline_forward(out, out->subject);
    g_object_unref(msg);
  }
  g_mime_parser_options_free(opts);
  if (out->message_id == NULL) {
    out->message_id = hash_id(raw != NULL ? raw : "", len);
    warn(&c, "no Message-ID; a hash of the headers stands in");
  }
  if (out->from_addr == NULL) {
    out->from_addr = strdup("unknown@invalid");
    set_loop(out, SB_IN_NO_AUTOREPLY, "no From"); /* no address to answer: no instant reply to unknown@invalid */
    warn(&c, "no readable From address");
  }
  if (out->text == NULL && out->html != NULL) out->text = email_html_to_text(out->html);
  lf_only(out->text);
  split_quote(out);
  if (out->message_id == NULL || out->from_addr == NULL) {
    email_parsed_free(out);
    return -ENOMEM;
  }
  return 0;
}

void email_parsed_free(email_parsed *p) {
  if (p == NULL) return;
  free(p->message_id);
  free(p->from_addr);
  free(p->from_name);
  free(p->subject);
  free(p->text);
  free(p->quoted);
  free(p->html);
  free(p->in_reply_to);
  for (size_t i = 0; i < p->n_refs; i++) free(p->refs[i]);
  free(p->refs);
  free(p->loop_reason);
  free(p->bounce_of);
  free(p->bounce_reason);
  free(p->fwd_addr);
  free(p->fwd_name);
  free(p->fwd_how);
  for (size_t i = 0; i < p->n_atts; i++) {
    free(p->atts[i].filename);
    free(p->atts[i].mime_type);
    free(p->atts[i].content_id);
    free(p->atts[i].data);
  }
  free(p->atts);
  free(p->warnings);
  memset(p, 0, sizeof(*p));
}

char *email_metadata_json(const email_parsed *p) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  json_object_set_new(o, "message_id", json_string(p->message_id));
  if (p->quoted != NULL) json_object_set_new(o, "quoted_history", json_string(p->quoted));
  if (p->warnings != NULL) json_object_set_new(o, "parse_warning", json_string(p->warnings));
  if (p->loop_reason != NULL) json_object_set_new(o, "no_autoreply_reason", json_string(p->loop_reason));
  if (p->bounce_of != NULL) json_object_set_new(o, "bounce_of", json_string(p->bounce_of));
  if (p->bounce_reason != NULL) json_object_set_new(o, "bounce_reason", json_string(p->bounce_reason));
  if (p->fwd_addr != NULL) {
    json_object_set_new(o, "forwarded", json_pack("{s:s, s:s?, s:s}", "from", p->fwd_addr, "name", p->fwd_name,
                                                  "detected_by", p->fwd_how != NULL ? p->fwd_how : "?"));
  }
  json_t *skipped = json_array();
  for (size_t i = 0; i < p->n_atts; i++) {
    if (p->atts[i].data == NULL && p->atts[i].len > 0)
      json_array_append_new(skipped, json_pack("{s:s, s:I}", "filename", p->atts[i].filename, "size",
                                               (json_int_t)p->atts[i].len));
  }
  if (json_array_size(skipped) > 0) json_object_set(o, "attachments_too_large", skipped);
  json_decref(skipped);
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}
