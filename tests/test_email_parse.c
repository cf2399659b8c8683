/* test_email_parse.c — the email plugin's MIME path, reply builder and IMAP
 * answer readers, called directly (no host, no servers): loop-safety flags,
 * forwards, bounces, quoted history, missing Message-IDs, size limits. */
#include "email.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static email_parsed p;

static void parse(const char *raw) {
  ck_assert_int_eq(email_parse(raw, strlen(raw), 0, &p), 0);
}

static void teardown(void) { email_parsed_free(&p); }

#define HEAD "From: Kim <kim@example.com>\r\nTo: s@example.org\r\nSubject: hi\r\nMessage-ID: <x@e>\r\n"

START_TEST(loop_prone_mail_is_flagged_with_the_reason) {
  static const struct {
    const char *header;
    uint32_t flags;
    const char *reason;
  } cases[] = {
      {"Auto-Submitted: auto-generated\r\n", SB_IN_AUTOMATIC | SB_IN_NO_AUTOREPLY, "Auto-Submitted"},
      {"Precedence: bulk\r\n", SB_IN_NO_AUTOREPLY, "Precedence"},
      {"Precedence: junk\r\n", SB_IN_NO_AUTOREPLY, "Precedence"},
      {"Precedence: list\r\n", SB_IN_NO_AUTOREPLY, "Precedence"},
      {"X-Auto-Response-Suppress: All\r\n", SB_IN_NO_AUTOREPLY, "X-Auto-Response-Suppress"},
      {"List-Id: <news.example.com>\r\n", SB_IN_NO_AUTOREPLY, "List-Id"},
      {"Return-Path: <>\r\n", SB_IN_NO_AUTOREPLY, "empty return path"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char raw[512];
    snprintf(raw, sizeof(raw), "%s%s\r\nbody\r\n", cases[i].header, HEAD);
    parse(raw);
    ck_assert_msg(p.flags == cases[i].flags, "%s: flags %u", cases[i].header, p.flags);
    ck_assert_str_eq(p.loop_reason, cases[i].reason);
    email_parsed_free(&p);
  }
  parse("From: postmaster@example.com\r\nSubject: x\r\n\r\nbody\r\n");
  ck_assert_uint_eq(p.flags, SB_IN_AUTOMATIC | SB_IN_NO_AUTOREPLY);
  email_parsed_free(&p);
  parse("Auto-Submitted: no\r\nPrecedence: first-class\r\nReturn-Path: <kim@example.com>\r\n" HEAD "\r\nbody\r\n");
  ck_assert_uint_eq(p.flags, 0);
}
END_TEST

START_TEST(resent_from_makes_the_author_the_original_sender) {
  parse("Resent-From: Colleague <col@example.org>\r\n" HEAD "\r\nbody\r\n");
  ck_assert_str_eq(p.from_addr, "col@example.org");
  ck_assert_str_eq(p.fwd_addr, "kim@example.com");
  ck_assert_str_eq(p.fwd_how, "resent");
}
END_TEST

START_TEST(outlook_forward_is_found_and_outlook_quote_is_cut) {
  parse("From: col@example.org\r\nSubject: FW: broken\r\nMessage-ID: <f@e>\r\n\r\nsee below\r\n\r\n"
        "-----Original Message-----\r\nFrom: Tom Lane [mailto:tom@example.net]\r\nSent: Monday\r\n\r\nbroken\r\n");
  ck_assert_str_eq(p.fwd_addr, "tom@example.net");
  ck_assert_str_eq(p.fwd_name, "Tom Lane");
  ck_assert_str_eq(p.fwd_how, "outlook");
  ck_assert_ptr_null(p.quoted); /* a forward keeps its content */
  email_parsed_free(&p);
  parse("From: kim@example.com\r\nSubject: RE: order\r\nMessage-ID: <r@e>\r\n\r\nthanks\r\n\r\n"
        "-----Original Message-----\r\nFrom: Support <s@example.org>\r\n\r\nwe shipped\r\n");
  ck_assert_ptr_null(p.fwd_addr);
  ck_assert_str_eq(p.text, "thanks");
  ck_assert_ptr_nonnull(strstr(p.quoted, "we shipped"));
}
END_TEST

START_TEST(quote_start_finds_the_history_markers) {
  const char *a = "new\n\nOn Tue, 2 Jan 2026, Ana wrote:\n> old\n";
  ck_assert_uint_eq(email_quote_start(a, strlen(a)), 5);
  const char *b = "new\n> old\n";
  ck_assert_uint_eq(email_quote_start(b, strlen(b)), 4);
  const char *c = "no history here\nat all";
  ck_assert_uint_eq(email_quote_start(c, strlen(c)), strlen(c));
  /* Gmail wraps a long one: "wrote:" ends the next line */
  const char *d = "Still waiting.\r\n\r\nOn Mon, 23 Nov 2026 at 21:08, Ana at Acme <\r\nsupport@example.org> wrote:\r\n"
                  "> old\r\n";
  ck_assert_uint_eq(email_quote_start(d, strlen(d)), 18);
  /* a sentence that starts with "On " and a next line that does not end
   * with "wrote:" is no history */
  const char *e = "On Monday I ordered\ntwo boxes.\n";
  ck_assert_uint_eq(email_quote_start(e, strlen(e)), strlen(e));
  /* an answer written below the quote, or between its lines, is the
   * message: only a quote the mail ends with is history */
  const char *f = "> Please send the serial number.\r\n\r\nThe serial is SN-998877.\r\n";
  ck_assert_uint_eq(email_quote_start(f, strlen(f)), strlen(f));
  const char *g = "Hi,\nOn Mon, 1 Jan 2026, Ana wrote:\n> What is your order number?\nIt is 4471.\n"
                  "> And your address?\nMain street 5.\n";
  ck_assert_uint_eq(email_quote_start(g, strlen(g)), strlen(g));
  const char *h = "Thanks!\n\nOn Mon, 1 Jan 2026, Ana wrote:\n> q\n>\n> more\n\n";
  ck_assert_uint_eq(email_quote_start(h, strlen(h)), 9);
}
END_TEST

START_TEST(padded_base64_words_side_by_side_decode_whole) {
  /* as Python's email package folds a long name: a padded word, then more */
  parse("From: =?utf-8?b?SsO8cmdlbiBNw7xsbGVyLUzDvGRlbnNjaGVpZHQgdm9uIHVuZCB6dSBHcm/Dn2I=?=\r\n"
        " =?utf-8?b?w7x0dGVs?= <jml@example.com>\r\n"
        "Subject: =?UTF-8?B?w6l0w6k=?= =?UTF-8?B?IGNoYXVk?=\r\nMessage-ID: <pad@e>\r\n\r\nbody\r\n");
  ck_assert_str_eq(p.subject, "\xc3\xa9t\xc3\xa9 chaud");
  ck_assert_str_eq(p.from_name, "J\xc3\xbcrgen M\xc3\xbcller-L\xc3\xbc" "denscheidt von und zu Gro\xc3\x9f" "b\xc3\xbcttel");
  ck_assert_str_eq(p.from_addr, "jml@example.com");
  email_parsed_free(&p);
  /* unpadded words, and words of two charsets, are left to gmime as they are */
  parse("From: a@example.com\r\nSubject: =?UTF-8?B?w6l0w6k=?= =?ISO-8859-1?Q?caf=E9?=\r\nMessage-ID: <pad2@e>\r\n\r\nx\r\n");
  ck_assert_str_eq(p.subject, "\xc3\xa9t\xc3\xa9" "caf\xc3\xa9");
  email_parsed_free(&p);
}
END_TEST

START_TEST(text_is_stored_with_lf_line_ends) {
  parse("From: kim@example.com\r\nSubject: x\r\nMessage-ID: <lf@e>\r\n\r\n"
        "line one\r\nline two\rline three\r\n\r\nOn Mon, 1 Jan 2026, Acme wrote:\r\n> quoted\r\n");
  ck_assert_str_eq(p.text, "line one\nline two\nline three");
  ck_assert_ptr_nonnull(p.quoted);
  ck_assert_ptr_null(strchr(p.quoted, '\r'));
  email_parsed_free(&p);
}
END_TEST

START_TEST(a_mail_without_message_id_gets_a_stable_hash) {
  const char *raw = "From: kim@example.com\r\nSubject: x\r\nDate: Mon, 1 Jan 2026 10:00:00 +0000\r\n\r\nbody\r\n";
  parse(raw);
  char first[64];
  snprintf(first, sizeof(first), "%s", p.message_id);
  ck_assert_int_eq(strncmp(first, "hash-", 5), 0);
  ck_assert_ptr_nonnull(strstr(p.warnings, "no Message-ID"));
  email_parsed_free(&p);
  parse(raw);
  ck_assert_str_eq(p.message_id, first);
  ck_assert(!(p.flags & SB_IN_NO_AUTOREPLY));
  /* without a From there is nobody to answer automatically */
  email_parsed_free(&p);
  parse("To: s@example.org\r\nSubject: x\r\nMessage-ID: <nofrom@e>\r\n\r\nbody\r\n");
  ck_assert_str_eq(p.from_addr, "unknown@invalid");
  ck_assert(p.flags & SB_IN_NO_AUTOREPLY);
  ck_assert_str_eq(p.loop_reason, "no From");
}
END_TEST

START_TEST(attachments_over_the_limit_are_listed_without_data) {
  const char *raw = HEAD "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
                         "--B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"
                         "--B\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=big.zip\r\n\r\n"
                         "0123456789012345678901234567890123456789\r\n--B--\r\n";
  ck_assert_int_eq(email_parse(raw, strlen(raw), 10, &p), 0);
  ck_assert_uint_eq(p.n_atts, 1);
  ck_assert_ptr_null(p.atts[0].data);
  ck_assert_str_eq(p.atts[0].filename, "big.zip");
  char *meta = email_metadata_json(&p);
  ck_assert_ptr_nonnull(strstr(meta, "\"attachments_too_large\""));
  free(meta);
}
END_TEST

START_TEST(a_bounce_names_the_bounced_message_and_why) {
  parse("From: MAILER-DAEMON@mx.example\r\nSubject: failure\r\nMessage-ID: <dsn@mx>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\n"
        "Status: 5.2.2\r\nDiagnostic-Code: smtp; 552 mailbox full\r\n\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: s@example.org\r\nMessage-ID: <reply-9@example.org>\r\n\r\nhi\r\n--B--\r\n");
  ck_assert_uint_eq(p.flags & SB_IN_BOUNCE, SB_IN_BOUNCE);
  ck_assert_str_eq(p.bounce_of, "reply-9@example.org");
  ck_assert_str_eq(p.bounce_reason, "bounced: smtp; 552 mailbox full (status 5.2.2)");
  ck_assert(p.bounce_failed);
  ck_assert_ptr_null(p.fwd_addr); /* the returned mail is not a forward */
}
END_TEST

/* A delivery report: ACTION, STATUS and a folded Diagnostic-Code. */
static void parse_report(const char *action, const char *status) {
  char raw[2048];
  snprintf(raw, sizeof(raw),
           "From: MAILER-DAEMON@mx.example\r\nSubject: report\r\nMessage-ID: <dsn2@mx>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nreport\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n%s"
           "Status: %s\r\nDiagnostic-Code: smtp; 550 5.1.1 <lena@example.com>: Recipient address\r\n"
           "    rejected: User unknown\r\n\r\n"
           "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <reply-10@example.org>\r\n\r\n--B--\r\n",
           action, status);
  parse(raw);
}

START_TEST(only_a_report_of_failure_is_a_bounce) {
  parse_report("Action: failed\r\n", "5.1.1");
  ck_assert(p.bounce_failed);
  /* a folded field is read whole */
  ck_assert_str_eq(p.bounce_reason,
                   "bounced: smtp; 550 5.1.1 <lena@example.com>: Recipient address rejected: User unknown (status 5.1.1)");
  email_parsed_free(&p);
  parse_report("Action: delayed\r\n", "4.4.1");
  ck_assert(!p.bounce_failed); /* the sender's server is still trying */
  ck_assert_str_eq(p.bounce_of, "reply-10@example.org");
  ck_assert_int_eq(strncmp(p.bounce_reason, "delayed: ", 9), 0);
  ck_assert_uint_eq(p.flags & SB_IN_NO_AUTOREPLY, SB_IN_NO_AUTOREPLY);
  email_parsed_free(&p);
  parse_report("Action: delivered\r\n", "2.0.0");
  ck_assert(!p.bounce_failed);
  email_parsed_free(&p);
  parse_report("", "4.4.1"); /* no Action: the status class decides */
  ck_assert(!p.bounce_failed);
  email_parsed_free(&p);
  parse_report("", "5.1.1");
  ck_assert(p.bounce_failed);
}
END_TEST

START_TEST(anything_parses_without_a_crash) {
  static const char *const inputs[] = {"", "\r\n\r\n", "From:\r\n\r\n", "Content-Type: multipart/mixed\r\n\r\n--",
                                       "Subject: =?utf-8?B?!!!?=\r\n\r\nx", "\xff\xfe\x00\x01"};
  for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    ck_assert_int_eq(email_parse(inputs[i], i == 5 ? 4 : strlen(inputs[i]), 0, &p), 0);
    ck_assert_ptr_nonnull(p.message_id);
    ck_assert_ptr_nonnull(p.from_addr);
    email_parsed_free(&p);
  }
  /* Deep nesting of attached messages. */
  size_t cap = 1 << 16, len = 0;
  char *deep = malloc(cap);
  for (int i = 0; i < 200; i++)
    len += (size_t)snprintf(deep + len, cap - len, "From: a%d@x\r\nContent-Type: message/rfc822\r\n\r\n", i);
  ck_assert_int_eq(email_parse(deep, len, 0, &p), 0);
  free(deep);
}
END_TEST

START_TEST(imap_answers_are_read) {
  uint64_t *uids = NULL;
  size_t n = email_imap_search_uids("* SEARCH 9 3 12\r\n", 3, &uids);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(uids[0], 9);
  ck_assert_uint_eq(uids[1], 12);
  free(uids);
  ck_assert_uint_eq(email_imap_search_uids("* SEARCH\r\n", 0, &uids), 0);
  free(uids);
  ck_assert_uint_eq(email_imap_uidvalidity("* STATUS INBOX (UIDVALIDITY 1763 UIDNEXT 5)\r\n"), 1763);
  ck_assert_uint_eq(email_imap_uidvalidity("* STATUS INBOX (UIDNEXT 5)\r\n"), 0);
  ck_assert_uint_eq(email_imap_uidnext("* STATUS INBOX (UIDVALIDITY 1763 UIDNEXT 5)\r\n"), 5);
  ck_assert_uint_eq(email_imap_uidnext("* OK [UIDNEXT 42] Predicted next UID\r\n"), 42);
  ck_assert_uint_eq(email_imap_uidnext("* STATUS \"XUIDNEXT 9\" (UIDVALIDITY 1)\r\n"), 0); /* a mailbox named so */
  ck_assert_uint_eq(email_imap_uidvalidity("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"), 3857529045u);
}
END_TEST

START_TEST(an_html_only_mail_gets_a_plain_text_too) {
  parse(HEAD "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
             "<html><head><style>p{color:red}</style></head><body><p>Hello&nbsp;there,</p>\r\n"
             "<p>the <b>lamp</b> &amp; cable<br>are broken.</p><script>x()</script></body></html>\r\n");
  ck_assert_ptr_nonnull(p.html);
  ck_assert_str_eq(p.text, "Hello there,\nthe lamp & cable\nare broken.");
  /* entities as mail programs write them, links with their address, table
   * cells apart, a block right after text on its own line */
  char *t = email_html_to_text(
      "<p>Price: 5 &lt; 6 &euro; &#8364; &#x20AC; &quot;x&quot; don&#8217;t &mdash; "
      "<a href=\"https://x.example/track?a=1&amp;b=2\">track</a> "
      "<a href='https://same.example'>https://same.example</a></p>"
      "<table><tr><td>Item</td><td>Qty</td></tr></table>line1<br>line2<div>div3</div>&bogus; &#0;");
  ck_assert_str_eq(t, "Price: 5 < 6 \u20ac \u20ac \u20ac \"x\" don\u2019t \u2014 track (https://x.example/track?a=1&b=2) "
                      "https://same.example\nItem Qty\n\nline1\nline2\ndiv3\n&bogus; &#0;");
  free(t);
}
END_TEST

/* Every attempt of one reply carries one Message-ID (from its idempotency
 * key and the channel's salt), so a mail sent again after a crash or a lost
 * answer is the same mail to its reader; without a salt, or with a key
 * that could not sit in a header, it is random as before. */
START_TEST(a_replys_message_id_is_the_same_on_every_attempt) {
  email_outbound_cfg cfg = {.from_address = "support@acme.example", .from_name_mode = "company",
                            .company_name = "Acme", .domain = "acme.example", .id_salt = "0123456789abcdef"};
  sb_outbound_message m = {.recipient_id = "kim@example.com", .text = "Hello",
                           .idempotency_key = "switchboard-msg-42"};
  char *ids[4];
  for (int i = 0; i < 4; i++) {
    char *out = NULL;
    size_t len = 0;
    if (i == 2) cfg.id_salt = NULL;
    if (i == 3) {
      cfg.id_salt = "0123456789abcdef";
      m.idempotency_key = "bad key>\r\nBcc: x@y";
    }
    ck_assert_int_eq(email_build_reply(&cfg, &m, "", NULL, NULL, NULL, 1763800000000 + i * 60000, &out, &len, &ids[i]),
                     0);
    char header[128];
    snprintf(header, sizeof(header), "Message-Id: <%s>\r\n", ids[i]);
    ck_assert_msg(strstr(out, header) != NULL, "%s", out);
    free(out);
  }
  ck_assert_str_eq(ids[0], "switchboard-msg-42.0123456789abcdef@acme.example");
  ck_assert_str_eq(ids[1], ids[0]);
  ck_assert_str_ne(ids[2], ids[0]);
  ck_assert_ptr_null(strstr(ids[3], "Bcc"));
  for (int i = 0; i < 4; i++) free(ids[i]);
}
END_TEST

START_TEST(a_reply_is_a_threaded_mail_and_ids_cannot_inject_headers) {
  email_outbound_cfg cfg = {.from_address = "support@acme.example", .from_name_mode = "agent_and_company",
                            .company_name = "Acme", .signature = "<p>Regards, {full_name}</p>", .domain = "acme.example"};
  sb_outbound_message m = {.recipient_id = "kim@example.com", .recipient_name = "Kim \"K\" Lee",
                           .text = "Hello\nthere", .agent_name = "Ana Berg", .flags = SB_OUT_AUTOMATIC};
  char *out = NULL, *id = NULL;
  size_t len = 0;
  ck_assert_int_eq(email_build_reply(&cfg, &m, "[#7]", "Re: Re: Gr\xc3\xbc\xc3\x9f" "e", "orig@example.com",
                                     "<a@x> <orig@example.com>", 1763800000000, &out, &len, &id),
                   0);
  ck_assert_ptr_nonnull(strstr(id, "@acme.example"));
  ck_assert_ptr_nonnull(strstr(out, "From: Ana at Acme <support@acme.example>\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "In-Reply-To: <orig@example.com>\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "References: <a@x> <orig@example.com>\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "Auto-Submitted: auto-replied\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "X-Auto-Response-Suppress: All\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "=?UTF-8?")); /* the non-ASCII subject is encoded */
  ck_assert_ptr_nonnull(strstr(out, "Regards, Ana Berg")); /* the text part gets the HTML signature as text */
  ck_assert_ptr_null(strstr(out, "\n\n")); /* CRLF only: no bare LF line ends */
  /* The subject round-trips as "Re: Grüße [#7]", Re: not doubled. */
  email_parsed back;
  ck_assert_int_eq(email_parse(out, len, 0, &back), 0);
  ck_assert_str_eq(back.subject, "Re: Gr\xc3\xbc\xc3\x9f" "e [#7]");
  email_parsed_free(&back);
  free(out);
  free(id);
  m.flags = 0;
  ck_assert_int_eq(email_build_reply(&cfg, &m, "", NULL, "x@y\r\nBcc: evil@example.com", "<a@x>\r\nBcc: e@x",
                                     1763800000000, &out, &len, &id),
                   0);
  ck_assert_ptr_null(strstr(out, "Bcc:"));
  ck_assert_ptr_null(strstr(out, "Auto-Submitted"));
  free(out);
  free(id);
  /* a mail without a Message-ID is known by a stand-in, which no reply cites */
  ck_assert_int_eq(email_build_reply(&cfg, &m, "", NULL, "hash-0123456789abcdef0123456789abcdef", NULL,
                                     1763800000000, &out, &len, &id),
                   0);
  ck_assert_msg(strstr(out, "In-Reply-To") == NULL && strstr(out, "hash-") == NULL, "a stand-in cited:\n%s", out);
  free(out);
  free(id);
  ck_assert(email_message_id_citable("a.b@example.com"));
  ck_assert(!email_message_id_citable("hash-0123456789abcdef0123456789abcdef"));
  ck_assert(!email_message_id_citable("a b@example.com"));
  ck_assert(!email_message_id_citable(NULL));
}
END_TEST

START_TEST(signature_tokens_are_the_agents_names) {
  char *s = email_signature_expand("{full_name} / {first_name} / {last_name}", "Ana Maria Berg");
  ck_assert_str_eq(s, "Ana Maria Berg / Ana / Maria Berg");
  free(s);
  s = email_signature_expand("Best, {first_name}", NULL);
  ck_assert_str_eq(s, "Best, ");
  free(s);
}
END_TEST

int main(void) {
  email_mime_init();
  Suite *s = suite_create("email_parse");
  TCase *tc = tcase_create("email_parse");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, loop_prone_mail_is_flagged_with_the_reason);
  tcase_add_test(tc, resent_from_makes_the_author_the_original_sender);
  tcase_add_test(tc, outlook_forward_is_found_and_outlook_quote_is_cut);
  tcase_add_test(tc, quote_start_finds_the_history_markers);
  tcase_add_test(tc, a_mail_without_message_id_gets_a_stable_hash);
  tcase_add_test(tc, text_is_stored_with_lf_line_ends);
  tcase_add_test(tc, padded_base64_words_side_by_side_decode_whole);
  tcase_add_test(tc, attachments_over_the_limit_are_listed_without_data);
  tcase_add_test(tc, a_bounce_names_the_bounced_message_and_why);
  tcase_add_test(tc, only_a_report_of_failure_is_a_bounce);
  tcase_add_test(tc, anything_parses_without_a_crash);
  tcase_add_test(tc, imap_answers_are_read);
  tcase_add_test(tc, an_html_only_mail_gets_a_plain_text_too);
  tcase_add_test(tc, a_reply_is_a_threaded_mail_and_ids_cannot_inject_headers);
  tcase_add_test(tc, a_replys_message_id_is_the_same_on_every_attempt);
  tcase_add_test(tc, signature_tokens_are_the_agents_names);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
