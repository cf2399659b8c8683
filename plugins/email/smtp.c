/* smtp.c — builds an outbound reply as an RFC 5322 message with gmime 3. */
#include <ctype.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email.h"

char *email_signature_expand(const char *signature, const char *agent_name) {
  if (signature == NULL) return NULL;
  const char *full = agent_name != NULL ? agent_name : "";
  const char *sp = strchr(full, ' ');
  char *first = sp != NULL ? strndup(full, (size_t)(sp - full)) : strdup(full);
  const char *last = sp != NULL ? sp + 1 : "";
  GString *out = g_string_new(NULL);
  for (const char *s = signature; *s != '\0';) {
    if (strncmp(s, "{full_name}", 11) == 0) {
      g_string_append(out, full);
      s += 11;
    } else if (strncmp(s, "{first_name}", 12) == 0) {
      g_string_append(out, first != NULL ? first : "");
      s += 12;
    } else if (strncmp(s, "{last_name}", 11) == 0) {
      g_string_append(out, last);
      s += 11;
    } else {
      g_string_append_c(out, *s++);
    }
  }
  free(first);
  char *r = strdup(out->str);
  g_string_free(out, TRUE);
  return r;
}

static int looks_html(const char *s) {
  return s != NULL && (strstr(s, "</") != NULL || strstr(s, "<br") != NULL || strstr(s, "<p") != NULL);
}

static void append_escaped(GString *g, const char *s) {
  for (; s != NULL && *s != '\0'; s++) {
    switch (*s) {
    case '<': g_string_append(g, "&lt;"); break;
    case '>': g_string_append(g, "&gt;"); break;
    case '&': g_string_append(g, "&amp;"); break;
    case '"': g_string_append(g, "&quot;"); break;
    case '\n': g_string_append(g, "<br>\n"); break;
    default: g_string_append_c(g, *s);
    }
  }
}

/* Plain text of an HTML fragment: tags dropped, <br> and </p> as newlines. */
static void append_stripped(GString *g, const char *s) {
  int in_tag = 0;
  for (; s != NULL && *s != '\0'; s++) {
    if (*s == '<') {
      in_tag = 1;
      if (strncasecmp(s, "<br", 3) == 0 || strncasecmp(s, "</p", 3) == 0) g_string_append_c(g, '\n');
    } else if (*s == '>') {
      in_tag = 0;
    } else if (!in_tag) {
      g_string_append_c(g, *s);
    }
  }
}

static GMimeTextPart *text_part(const char *subtype, const char *text) {
  GMimeTextPart *tp = g_mime_text_part_new_with_subtype(subtype);
  g_mime_text_part_set_text(tp, text);
  g_mime_part_set_content_encoding(GMIME_PART(tp), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
  return tp;
}

/* The display name of From per the from-name mode. */
static char *from_name(const email_outbound_cfg *cfg, const char *agent_name) {
  const char *company = cfg->company_name != NULL ? cfg->company_name : "";
  if (cfg->from_name_mode != NULL && strcmp(cfg->from_name_mode, "agent_and_company") == 0 && agent_name != NULL &&
      agent_name[0] != '\0') {
    size_t n = strcspn(agent_name, " ");
    return company[0] != '\0' ? g_strdup_printf("%.*s at %s", (int)n, agent_name, company)
                              : g_strdup_printf("%.*s", (int)n, agent_name);
  }
  return g_strdup(company);
}

/* Subject "Re: <thread subject> [#N]" (without "Re: " when it answers
 * nothing), without doubling Re: or the tag. */
static char *reply_subject(const char *subject, const char *tag, int is_reply) {
  const char *s = subject != NULL && subject[0] != '\0' ? subject : "Your message";
  for (;;) {
    while (*s == ' ') s++;
    if (strncasecmp(s, "re:", 3) == 0 || strncasecmp(s, "aw:", 3) == 0 || strncasecmp(s, "sv:", 3) == 0)
      s += 3;
    else if (strncasecmp(s, "fwd:", 4) == 0)
      s += 4;
    else if (strncasecmp(s, "fw:", 3) == 0)
      s += 3;
    else
      break;
  }
  int has_tag = tag != NULL && tag[0] != '\0' && strstr(s, tag) != NULL;
  return g_strdup_printf("%s%s%s%s", is_reply ? "Re: " : "", s,
                         (tag != NULL && tag[0] != '\0' && !has_tag) ? " " : "", has_tag || tag == NULL ? "" : tag);
}

int email_build_reply(const email_outbound_cfg *cfg, const sb_outbound_message *msg, const char *thread_tag,
                      const char *subject, const char *in_reply_to, const char *references, int64_t now_ms,
                      char **out, size_t *out_len, char **out_id) {
  *out = NULL;
  *out_id = NULL;
  if (msg->recipient_id == NULL || strchr(msg->recipient_id, '@') == NULL) return -EINVAL;
  GMimeMessage *m = g_mime_message_new(TRUE);
  GMimeObject *o = GMIME_OBJECT(m);
  char *fname = from_name(cfg, msg->agent_name);
  g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM, fname, cfg->from_address);
  g_free(fname);
  g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_TO, msg->recipient_name, msg->recipient_id);
  int is_reply = in_reply_to != NULL && in_reply_to[0] != '\0';
  char *subj = reply_subject(msg->subject != NULL ? msg->subject : subject, thread_tag, is_reply);
  g_mime_message_set_subject(m, subj, "utf-8");
  g_free(subj);
  const char *domain = cfg->domain != NULL ? cfg->domain : "switchboard.invalid";
  const char *key = msg->idempotency_key;
  int stable = cfg->id_salt != NULL && key != NULL && key[0] != '\0' && strlen(key) <= 128 &&
               strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") == strlen(key);
  char *id = stable ? g_strdup_printf("%s.%s@%s", key, cfg->id_salt, domain) : g_mime_utils_generate_message_id(domain);
  g_mime_message_set_message_id(m, id);
  GDateTime *dt = g_date_time_new_from_unix_utc(now_ms / 1000);
  g_mime_message_set_date(m, dt);
  g_date_time_unref(dt);
  /* Ids come from mail and from the help desk: never let one carry a line
   * break (a header of its own) or brackets into the header, nor answer a
   * mail's stand-in id (it had no Message-ID). */
  if (!email_message_id_citable(in_reply_to)) in_reply_to = NULL;
  if (references != NULL && strpbrk(references, "\r\n") != NULL) references = NULL;
  if (in_reply_to != NULL && in_reply_to[0] != '\0') {
    char *v = g_strdup_printf("<%s>", in_reply_to);
    g_mime_object_set_header(o, "In-Reply-To", v, NULL);
    g_free(v);
  }
  if (references != NULL && references[0] != '\0') g_mime_object_set_header(o, "References", references, NULL);
  if (msg->flags & SB_OUT_AUTOMATIC) {
    g_mime_object_set_header(o, "Auto-Submitted", "auto-replied", NULL);
    g_mime_object_set_header(o, "X-Auto-Response-Suppress", "All", NULL);
  }
  char *sig = email_signature_expand(cfg->signature, msg->agent_name);
  /* A reply with HTML only gets its text part from the HTML, not an empty one
   * a plain-text mail program would show. */
  char *from_html = msg->text == NULL && msg->html != NULL ? email_html_to_text(msg->html) : NULL;
  GString *plain = g_string_new(msg->text != NULL ? msg->text : from_html != NULL ? from_html : "");
  free(from_html);
  GString *html = g_string_new(NULL);
  if (msg->html != NULL)
    g_string_append(html, msg->html);
  else
    append_escaped(html, msg->text);
  size_t linked = 0;
  for (size_t i = 0; i < msg->attachment_count; i++)
    if (msg->attachments[i].data == NULL) linked++;
  if (linked > 0) {
    g_string_append(plain, "\n\nAttachments:\n");
    g_string_append(html, "<p>Attachments:</p><ul>");
    for (size_t i = 0; i < msg->attachment_count; i++) {
      const sb_attachment *a = &msg->attachments[i];
      if (a->data != NULL) continue; /* attached as a MIME part below */
      const char *name = a->filename != NULL ? a->filename : "file";
      g_string_append_printf(plain, "- %s: %s\n", name, a->url != NULL ? a->url : "(attached)");
      g_string_append(html, "<li>");
      if (a->url != NULL) {
        g_string_append(html, "<a href=\"");
        append_escaped(html, a->url);
        g_string_append(html, "\">");
      }
      append_escaped(html, name);
      g_string_append(html, a->url != NULL ? "</a></li>" : "</li>");
    }
    g_string_append(html, "</ul>");
  }
  if (sig != NULL && sig[0] != '\0') {
    g_string_append(plain, "\n\n-- \n");
    g_string_append(html, "<br>\n<div class=\"signature\">-- <br>\n");
    if (looks_html(sig)) {
      append_stripped(plain, sig);
      g_string_append(html, sig);
    } else {
      g_string_append(plain, sig);
      append_escaped(html, sig);
    }
    g_string_append(html, "</div>");
  }
  free(sig);
  GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
  GMimeTextPart *tp = text_part("plain", plain->str);
  GMimeTextPart *hp = text_part("html", html->str);
  g_string_free(plain, TRUE);
  g_string_free(html, TRUE);
  g_mime_multipart_add(alt, GMIME_OBJECT(tp));
  g_mime_multipart_add(alt, GMIME_OBJECT(hp));
  g_object_unref(tp);
  g_object_unref(hp);
  GMimeObject *top = GMIME_OBJECT(alt);
  GMimeMultipart *mixed = NULL;
  for (size_t i = 0; i < msg->attachment_count; i++) {
    const sb_attachment *a = &msg->attachments[i];
    if (a->data == NULL) continue; /* a link, listed above; an empty file still goes, as an empty part */
    if (mixed == NULL) {
      mixed = g_mime_multipart_new_with_subtype("mixed");
      g_mime_multipart_add(mixed, GMIME_OBJECT(alt));
      top = GMIME_OBJECT(mixed);
    }
    GMimeContentType *ct = g_mime_content_type_parse(NULL, a->mime_type != NULL ? a->mime_type
                                                                                : "application/octet-stream");
    GMimePart *part = g_mime_part_new_with_type(g_mime_content_type_get_media_type(ct),
                                                g_mime_content_type_get_media_subtype(ct));
    g_object_unref(ct);
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(a->data, a->data_len);
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(st, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, w);
    g_object_unref(w);
    g_object_unref(st);
    g_mime_part_set_filename(part, a->filename != NULL ? a->filename : "attachment");
    g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
    g_mime_multipart_add(mixed, GMIME_OBJECT(part));
    g_object_unref(part);
  }
  g_mime_message_set_mime_part(m, top);
  g_object_unref(alt);
  if (mixed != NULL) g_object_unref(mixed);
  GMimeFormatOptions *fo = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
  char *text = g_mime_object_to_string(o, fo);
  g_mime_format_options_free(fo);
  g_object_unref(m);
  if (text == NULL) {
    g_free(id);
    return -ENOMEM;
  }
  *out_len = strlen(text);
  *out = strdup(text);
  *out_id = strdup(id);
  g_free(text);
  g_free(id);
  if (*out == NULL || *out_id == NULL) {
    free(*out);
    free(*out_id);
    return -ENOMEM;
  }
  return 0;
}
