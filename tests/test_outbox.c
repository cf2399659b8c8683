/* test_outbox.c — core/outbox.c with the store: send OK, retry with backoff,
 * dead letter, permanent failure, resume after restart with the same
 * idempotency key, delivery receipts, a failed reply sent again. */
#include "outbox.h"
#include "store_fixture.h"

typedef struct sender {
  const char *mode; /* "ok", "retry", "fail" */
  int calls;
  char keys[16][64];
  int attempts[16];
  char last_channel[32];
  char last_recipient[32];
  int64_t last_inbound_ms;
  char agent[64], subject[64], contact[64], template_json[128], avatar[64];
  int dead; /* retries the outbox turned into dead letters */
} sender;

static void fake_send(void *ctx, const outbox_item *it, outbox_done *done) {
  sender *s = ctx;
  if (s->calls < 16) {
    snprintf(s->keys[s->calls], sizeof(s->keys[0]), "%s", it->idempotency_key);
    s->attempts[s->calls] = it->attempt;
  }
  snprintf(s->last_channel, sizeof(s->last_channel), "%s", it->channel);
  snprintf(s->last_recipient, sizeof(s->last_recipient), "%s", it->recipient_id ? it->recipient_id : "");
  s->last_inbound_ms = it->last_inbound_ms;
  snprintf(s->agent, sizeof(s->agent), "%s/%s", it->agent_name ? it->agent_name : "", it->agent_email ? it->agent_email : "");
  snprintf(s->subject, sizeof(s->subject), "%s", it->subject ? it->subject : "");
  snprintf(s->contact, sizeof(s->contact), "%s", it->recipient_name ? it->recipient_name : "");
  snprintf(s->template_json, sizeof(s->template_json), "%s", it->template_json ? it->template_json : "");
  snprintf(s->avatar, sizeof(s->avatar), "%s", it->agent_avatar_url ? it->agent_avatar_url : "");
  s->calls++;
  if (strcmp(s->mode, "ok") == 0) {
    char ext[32];
    snprintf(ext, sizeof(ext), "out-%lld", (long long)it->message_id);
    outbox_done_ok(done, ext);
  } else if (strcmp(s->mode, "retry") == 0) {
    s->dead += outbox_done_retry(done, 0, "rate limited");
  } else if (strcmp(s->mode, "defer") == 0) {
    outbox_done_defer(done, 1, "waiting for consent");
  } else {
    outbox_done_fail(done, "outside the 24-hour window");
  }
}

static const outbox_config FAST = {.base_delay_ms = 2, .max_delay_ms = 8, .max_attempts = 3,
                                   .poll_ms = 5, .batch = 8};

static void on_tick(uv_timer_t *t) { (void)t; }

/* Runs the loop for about ms milliseconds. */
static void spin(fx *f, int ms) {
  uv_timer_t t;
  uv_timer_init(&f->loop, &t);
  uv_timer_start(&t, on_tick, (uint64_t)ms, 0);
  while (uv_is_active((uv_handle_t *)&t)) uv_run(&f->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

static json_t *message(fx *f, int64_t thread, int64_t id) {
  json_t *t = fx_thread(f, thread);
  size_t i;
  json_t *m, *found = NULL;
  json_array_foreach(json_object_get(t, "messages"), i, m) if (fx_int(m, "id") == id) found = json_incref(m);
  json_decref(t);
  ck_assert_ptr_nonnull(found);
  return found;
}

/* Waits until message id has status, up to 5 s. */
static json_t *wait_status(fx *f, int64_t thread, int64_t id, const char *status) {
  for (int i = 0; i < 500; i++) {
    json_t *m = message(f, thread, id);
    if (strcmp(json_string_value(json_object_get(m, "status")), status) == 0) return m;
    json_decref(m);
    spin(f, 10);
  }
  ck_abort_msg("message %lld never reached status %s", (long long)id, status);
  return NULL;
}

static int64_t setup_reply(fx *f, int64_t *thread) {
  fx_channel(f, "{\"name\":\"demo\"}");
  fx_in(f, "demo", "in-1", "kim", "hello");
  json_t *l = fx_list(f, "{}");
  *thread = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  router_reply r = {.thread_id = *thread, .text = "hi Kim"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f->st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(f, &w);
  ck_assert_int_eq(w.status, 0);
  return w.id;
}

static void stop(fx *f, outbox *ob) {
  outbox_stop(ob);
  spin(f, 20);
}

START_TEST(backoff_doubles_with_jitter_and_honours_retry_after) {
  outbox_config c = {.base_delay_ms = 100, .max_delay_ms = 1000};
  for (uint32_t r = 0; r < 50; r++) {
    int64_t d1 = outbox_backoff_ms(&c, 1, 0, r * 7919u);
    int64_t d3 = outbox_backoff_ms(&c, 3, 0, r * 7919u);
    int64_t d9 = outbox_backoff_ms(&c, 9, 0, r * 7919u);
    ck_assert(d1 >= 50 && d1 <= 100);
    ck_assert(d3 >= 200 && d3 <= 400);
    ck_assert(d9 >= 500 && d9 <= 1000);
  }
  ck_assert_int_eq(outbox_backoff_ms(&c, 1, 5000, 3), 5000);
}
END_TEST

START_TEST(sent_reply_stores_external_id_and_emits_status) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "ok"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_t *m = wait_status(&f, thread, id, "sent");
  char ext[32];
  snprintf(ext, sizeof(ext), "out-%lld", (long long)id);
  ck_assert_str_eq(json_string_value(json_object_get(m, "external_id")), ext);
  json_decref(m);
  ck_assert_int_eq(s.calls, 1);
  ck_assert_str_eq(s.last_recipient, "kim");
  char key[64];
  snprintf(key, sizeof(key), "switchboard-msg-%lld", (long long)id);
  ck_assert_str_eq(s.keys[0], key);
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(claimed_reply_carries_last_message_time_agent_subject_and_contact) {
  fx f;
  fx_open(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  fx_seed(&f, "{\"users\":[{\"name\":\"Ana Lima\",\"email\":\"ana@acme.example\","
              "\"avatar_url\":\"https://cdn.acme.example/ana.png\"}]}");
  /* The contact's own timestamps (from the webhook), not arrival times:
   * messaging windows count from these, the latest of them even when a
   * message stamped earlier arrives last. */
  const int64_t first = 1763800000000, last = 1763810000000;
  const int64_t stamps[] = {first, last, first + 1};
  for (int i = 0; i < 3; i++) {
    char ext[16];
    snprintf(ext, sizeof(ext), "in-%d", i);
    router_inbound in = {.channel = "demo", .external_id = ext, .text = "hi", .timestamp_ms = stamps[i],
                         .subject = i == 0 ? "Where is my order?" : NULL};
    in.sender.kind = "custom";
    in.sender.id = "kim";
    in.sender.name = "Kim Park";
    fx_wait_t w = {0};
    char err[256];
    ck_assert_int_eq(router_submit_inbound(f.st, &in, fx_inbound_cb, &w, err, sizeof(err)), 0);
    fx_wait(&f, &w);
  }
  json_t *l = fx_list(&f, "{}");
  int64_t thread = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  fx_wait_t uw = {0};
  json_t *users = fx_ok(&f, store_users_list(f.st, fx_json_cb, &uw), &uw);
  int64_t ana = fx_int(json_array_get(users, 0), "id");
  json_decref(users);
  router_reply r = {.thread_id = thread, .user_id = ana, .text = "hello again",
                    .template_json = "{\"name\":\"order_update\",\"language\":\"en\"}"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  sender s = {.mode = "ok"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_decref(wait_status(&f, thread, w.id, "sent"));
  ck_assert_int_eq(s.last_inbound_ms, last);
  ck_assert_str_eq(s.agent, "Ana Lima/ana@acme.example");
  ck_assert_str_eq(s.avatar, "https://cdn.acme.example/ana.png");
  ck_assert_str_eq(s.subject, "Where is my order?");
  ck_assert_str_eq(s.contact, "Kim Park");
  ck_assert_str_eq(s.template_json, "{\"name\":\"order_update\",\"language\":\"en\"}");
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

/* The outbox row of message id. */
static int64_t outbox_of(fx *f, int64_t id) {
  char sql[96];
  snprintf(sql, sizeof(sql), "SELECT id FROM outbox WHERE message_id = %lld", (long long)id);
  return fx_db_count(f, sql);
}

/* The message ids of the outbox rows claimable at now, in claim order (claiming them). */
static size_t claim_ids(fx *f, int64_t now, int64_t *ids, size_t max) {
  fx_wait_t c = {0};
  json_t *rows = fx_ok(f, store_outbox_claim(f->st, now, 10, fx_json_cb, &c), &c);
  size_t n = json_array_size(rows);
  for (size_t i = 0; i < n && i < max; i++) ids[i] = fx_int(json_array_get(rows, i), "message_id");
  json_decref(rows);
  return n;
}

START_TEST(a_conversations_replies_go_in_the_order_they_were_queued) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t a = setup_reply(&f, &thread);
  router_reply r = {.thread_id = thread, .text = "and one more thing"};
  fx_wait_t w = {0};
  char err[256];
  ck_assert_int_eq(router_submit_reply(f.st, &r, fx_reply_cb, &w, err, sizeof(err)), 0);
  fx_wait(&f, &w);
  int64_t b = w.id;
  fx_in(&f, "demo", "in-2", "lee", "hello too"); /* another conversation, with a reply of its own */
  json_t *l = fx_list(&f, "{}");
  int64_t other = fx_int(json_array_get(json_object_get(l, "items"), 0), "id");
  json_decref(l);
  ck_assert_int_ne(other, thread);
  router_reply rc = {.thread_id = other, .text = "hi Lee"};
  fx_wait_t wc = {0};
  ck_assert_int_eq(router_submit_reply(f.st, &rc, fx_reply_cb, &wc, err, sizeof(err)), 0);
  fx_wait(&f, &wc);
  int64_t ids[10];
  /* the first reply of each conversation; the second waits behind the first */
  ck_assert_uint_eq(claim_ids(&f, INT64_MAX / 2, ids, 10), 2);
  ck_assert(ids[0] == a || ids[1] == a);
  ck_assert(ids[0] == wc.id || ids[1] == wc.id);
  /* the first backs off after a failure: the second still waits, though due */
  fx_wait_t rw = {0};
  json_decref(fx_ok(&f, store_outbox_retry(f.st, outbox_of(&f, a), INT64_MAX / 4, "rate limited", fx_json_cb, &rw), &rw));
  ck_assert_uint_eq(claim_ids(&f, INT64_MAX / 8, ids, 10), 0);
  /* once it goes, and is sent, the second follows */
  ck_assert_uint_eq(claim_ids(&f, INT64_MAX / 2, ids, 10), 1);
  ck_assert_int_eq(ids[0], a);
  ck_assert_uint_eq(claim_ids(&f, INT64_MAX / 2, ids, 10), 0);
  fx_wait_t sw = {0};
  json_decref(fx_ok(&f, store_outbox_sent(f.st, outbox_of(&f, a), "out-a", fx_json_cb, &sw), &sw));
  ck_assert_uint_eq(claim_ids(&f, INT64_MAX / 2, ids, 10), 1);
  ck_assert_int_eq(ids[0], b);
  fx_close(&f);
}
END_TEST

START_TEST(retries_with_the_same_key_then_dead_letters) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "retry"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_t *m = wait_status(&f, thread, id, "failed");
  ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(m, "error")), "gave up after 3 attempts: rate limited"));
  json_decref(m);
  ck_assert_int_eq(s.calls, 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(s.attempts[i], i + 1);
    ck_assert_str_eq(s.keys[i], s.keys[0]);
  }
  outbox_stats st;
  outbox_get_stats(ob, &st);
  ck_assert_int_eq(st.retried, 2);
  ck_assert_int_eq(st.dead, 1);
  ck_assert_int_eq(s.dead, 1); /* the last retry said it ended as a dead letter (the metrics count it failed) */
  spin(&f, 50);
  ck_assert_int_eq(s.calls, 3); /* a dead letter is not sent again */
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(deferred_sends_never_use_up_attempts) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "defer"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  /* FAST dead-letters after 3 attempts; a hold is offered again and again. */
  for (int i = 0; i < 400 && s.calls < 6; i++) spin(&f, 5);
  ck_assert_int_ge(s.calls, 6);
  for (int i = 0; i < 6; i++) ck_assert_int_eq(s.attempts[i], 1);
  json_t *m = message(&f, thread, id);
  ck_assert_str_eq(json_string_value(json_object_get(m, "status")), "queued");
  json_decref(m);
  s.mode = "ok";
  json_decref(wait_status(&f, thread, id, "sent"));
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(permanent_failure_marks_message_failed_with_reason) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "fail"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_t *m = wait_status(&f, thread, id, "failed");
  ck_assert_str_eq(json_string_value(json_object_get(m, "error")), "outside the 24-hour window");
  json_decref(m);
  ck_assert_int_eq(s.calls, 1);
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(pending_reply_is_sent_after_restart) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  fx_reopen(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  sender s = {.mode = "ok"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_decref(wait_status(&f, thread, id, "sent"));
  ck_assert_int_eq(s.calls, 1);
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(row_in_flight_at_crash_is_resent_with_the_same_key) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  /* Claim it as a worker would, then "crash" before any result is stored. */
  json_t *rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 1);
  char key[64];
  snprintf(key, sizeof(key), "%s", json_string_value(json_object_get(json_array_get(rows, 0), "idempotency_key")));
  json_decref(rows);
  rows = fx_claim(&f);
  ck_assert_int_eq(json_array_size(rows), 0); /* claimed rows are not handed out twice */
  json_decref(rows);
  fx_reopen(&f);
  fx_channel(&f, "{\"name\":\"demo\"}");
  sender s = {.mode = "ok"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_decref(wait_status(&f, thread, id, "sent"));
  ck_assert_int_eq(s.calls, 1);
  ck_assert_str_eq(s.keys[0], key);
  ck_assert_int_eq(s.attempts[0], 2);
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(delivery_receipts_move_status_forward_only) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "ok"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_decref(wait_status(&f, thread, id, "sent"));
  char ext[32];
  snprintf(ext, sizeof(ext), "out-%lld", (long long)id);
  fx_wait_t w1 = {0}, w2 = {0}, w3 = {0}, w4 = {0};
  json_decref(fx_ok(&f, store_delivery_status(f.st, "demo", ext, "read", NULL, fx_json_cb, &w1), &w1));
  json_t *r = fx_ok(&f, store_delivery_status(f.st, "demo", ext, "delivered", NULL, fx_json_cb, &w2), &w2);
  ck_assert(json_is_false(json_object_get(r, "changed")));
  json_decref(r);
  json_decref(wait_status(&f, thread, id, "read"));
  fx_run(&f, store_delivery_status(f.st, "demo", "nope", "read", NULL, fx_json_cb, &w3), &w3);
  ck_assert_int_eq(w3.status, -ENOENT);
  /* watermark: two more replies, both read up to now */
  int64_t ids[2];
  for (int i = 0; i < 2; i++) {
    router_reply rp = {.thread_id = thread, .text = "more"};
    fx_wait_t w = {0};
    char err[256];
    ck_assert_int_eq(router_submit_reply(f.st, &rp, fx_reply_cb, &w, err, sizeof(err)), 0);
    fx_wait(&f, &w);
    ids[i] = w.id;
    json_decref(wait_status(&f, thread, ids[i], "sent"));
  }
  r = fx_ok(&f, store_delivery_watermark(f.st, "demo", "custom", "kim", "read", INT64_MAX / 2, fx_json_cb, &w4), &w4);
  ck_assert_int_eq(fx_int(r, "updated"), 2);
  json_decref(r);
  json_decref(wait_status(&f, thread, ids[1], "read"));
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

/* Queues reply id of thread again; returns the store's status. */
static int requeue(fx *f, int64_t thread, int64_t id) {
  fx_wait_t w = {0};
  json_t *r = fx_run(f, store_outbox_requeue(f->st, thread, id, fx_json_cb, &w), &w);
  if (w.status == 0) {
    ck_assert_int_eq(fx_int(r, "id"), id);
    ck_assert_str_eq(json_string_value(json_object_get(r, "status")), "queued");
  }
  json_decref(r);
  return w.status;
}

START_TEST(retrying_reply_shows_its_last_error_while_queued) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "retry"};
  outbox_config slow = FAST;
  slow.base_delay_ms = slow.max_delay_ms = 60000; /* one attempt, then a long wait */
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &slow, fake_send, &s, &ob), 0);
  json_t *m = NULL;
  for (int i = 0; i < 500; i++) {
    json_decref(m);
    m = message(&f, thread, id);
    if (json_is_string(json_object_get(m, "error"))) break;
    spin(&f, 10);
  }
  ck_assert_str_eq(json_string_value(json_object_get(m, "status")), "queued");
  ck_assert_str_eq(json_string_value(json_object_get(m, "error")), "rate limited");
  json_decref(m);
  ck_assert_int_eq(s.calls, 1);
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(dead_letter_sent_again_on_request_with_its_key_and_fresh_attempts) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "retry"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_decref(wait_status(&f, thread, id, "failed"));
  ck_assert_int_eq(s.calls, 3);
  s.mode = "ok";
  ck_assert_int_eq(requeue(&f, thread, id), 0);
  json_t *m = wait_status(&f, thread, id, "sent");
  ck_assert(json_is_null(json_object_get(m, "error")));
  json_decref(m);
  ck_assert_int_eq(s.calls, 4);
  ck_assert_int_eq(s.attempts[3], 1); /* a fresh budget */
  ck_assert_str_eq(s.keys[3], s.keys[0]); /* the service may have taken an earlier attempt */
  ck_assert_int_eq(requeue(&f, thread, id), -EEXIST); /* sent: nothing to retry */
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(reply_reported_failed_after_sending_goes_again_with_a_new_key) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  sender s = {.mode = "ok"};
  outbox *ob;
  ck_assert_int_eq(outbox_start(&f.loop, f.st, &FAST, fake_send, &s, &ob), 0);
  json_decref(wait_status(&f, thread, id, "sent"));
  char ext[32];
  snprintf(ext, sizeof(ext), "out-%lld", (long long)id);
  fx_wait_t w = {0};
  json_decref(fx_ok(&f, store_delivery_status(f.st, "demo", ext, "failed", "undeliverable", fx_json_cb, &w), &w));
  json_decref(wait_status(&f, thread, id, "failed"));
  ck_assert_int_eq(requeue(&f, thread, id), 0);
  json_decref(wait_status(&f, thread, id, "sent"));
  ck_assert_int_eq(s.calls, 2);
  ck_assert_str_ne(s.keys[1], s.keys[0]);
  ck_assert_ptr_nonnull(strstr(s.keys[1], s.keys[0])); /* still names the message */
  stop(&f, ob);
  fx_close(&f);
}
END_TEST

START_TEST(only_a_failed_reply_of_the_conversation_is_sent_again) {
  fx f;
  fx_open(&f);
  int64_t thread;
  int64_t id = setup_reply(&f, &thread);
  json_t *t = fx_thread(&f, thread);
  int64_t in = fx_int(json_array_get(json_object_get(t, "messages"), 0), "id");
  json_decref(t);
  ck_assert_int_eq(requeue(&f, thread, id), -EEXIST);     /* queued, not failed */
  ck_assert_int_eq(requeue(&f, thread, in), -EEXIST);     /* inbound */
  ck_assert_int_eq(requeue(&f, thread + 1, id), -ENOENT); /* another conversation's */
  ck_assert_int_eq(requeue(&f, thread, id + 100), -ENOENT);
  fx_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("outbox");
  TCase *tc = tcase_create("outbox");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, backoff_doubles_with_jitter_and_honours_retry_after);
  tcase_add_test(tc, sent_reply_stores_external_id_and_emits_status);
  tcase_add_test(tc, claimed_reply_carries_last_message_time_agent_subject_and_contact);
  tcase_add_test(tc, retries_with_the_same_key_then_dead_letters);
  tcase_add_test(tc, a_conversations_replies_go_in_the_order_they_were_queued);
  tcase_add_test(tc, deferred_sends_never_use_up_attempts);
  tcase_add_test(tc, permanent_failure_marks_message_failed_with_reason);
  tcase_add_test(tc, pending_reply_is_sent_after_restart);
  tcase_add_test(tc, row_in_flight_at_crash_is_resent_with_the_same_key);
  tcase_add_test(tc, delivery_receipts_move_status_forward_only);
  tcase_add_test(tc, retrying_reply_shows_its_last_error_while_queued);
  tcase_add_test(tc, dead_letter_sent_again_on_request_with_its_key_and_fresh_attempts);
  tcase_add_test(tc, reply_reported_failed_after_sending_goes_again_with_a_new_key);
  tcase_add_test(tc, only_a_failed_reply_of_the_conversation_is_sent_again);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
