/* hostapi_store.c — the host functions that reach the help desk's store
 * through the channel's environment (ABI 1.3): reading back a contact's
 * history on the channel and who could answer there now (their done runs
 * before the plugin's destroy()), and releasing held replies. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel_impl.h"
#include "log.h"

#define HOSTAPI_HISTORY_DEFAULT 50
#define HOSTAPI_HISTORY_MAX 200

typedef struct hostapi_read {
  sb_channel *ch;
  sb_history_done_fn history_done;           /* one of the two */
  sb_availability_done_fn availability_done;
  void *arg;
} hostapi_read;

static hostapi_read *hostapi__read_new(sb_channel *ch, void *arg) {
  hostapi_read *rd = calloc(1, sizeof(*rd));
  if (rd == NULL) return NULL;
  rd->ch = ch;
  rd->arg = arg;
  return rd;
}

/* A read's status as the plugin sees it. */
static int32_t hostapi__read_status(const hostapi_read *rd, int status, const char *what, const char *err) {
  if (rd->ch->closing) return SB_ECANCELED;
  if (status == 0) return SB_OK;
  log_msg(LOG_LEVEL_WARN, rd->ch->spec.name, rd->ch->plugin->desc.id, "%s failed: %s", what,
          err != NULL ? err : "store error");
  return SB_EIO;
}

/* Ends a read: frees it and lets a closing channel go on to destroy(). */
static void hostapi__read_end(hostapi_read *rd) {
  sb_channel *ch = rd->ch;
  free(rd);
  channel_completion_end(ch);
}

/* --- history ------------------------------------------------------------- */

static uint32_t hostapi__status_code(const char *s) {
  static const char *const names[] = {NULL, "sent", "delivered", "read", "failed"};
  for (uint32_t i = 1; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(s, names[i]) == 0) return i;
  return 0;
}

static const char *hostapi__str(const json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static void hostapi__history_done(void *arg, int status, json_t *result, const char *err) {
  hostapi_read *rd = arg;
  sb_history h = {.status = hostapi__read_status(rd, status, "history", err)};
  const json_t *msgs = h.status == SB_OK ? json_object_get(result, "messages") : NULL;
  size_t n = json_array_size(msgs);
  sb_history_message *out = n > 0 ? calloc(n, sizeof(*out)) : NULL;
  char (*ids)[24] = n > 0 ? calloc(n, sizeof(*ids)) : NULL;
  char **attachments = n > 0 ? calloc(n, sizeof(*attachments)) : NULL;
  if (n > 0 && (out == NULL || ids == NULL || attachments == NULL)) {
    h.status = SB_ENOMEM;
    n = 0;
  }
  for (size_t i = 0; i < n; i++) {
    const json_t *m = json_array_get(msgs, i);
    snprintf(ids[i], sizeof(ids[i]), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(m, "id")));
    const json_t *att = json_object_get(m, "attachments");
    attachments[i] = json_array_size(att) > 0 ? json_dumps(att, JSON_COMPACT) : NULL;
    int out_dir = strcmp(hostapi__str(m, "direction") ? hostapi__str(m, "direction") : "", "out") == 0;
    out[i] = (sb_history_message){
        .message_id = ids[i],
        .external_id = hostapi__str(m, "external_id"),
        .direction = out_dir ? SB_DIRECTION_OUT : SB_DIRECTION_IN,
        .status = out_dir ? hostapi__status_code(hostapi__str(m, "status")) : 0,
        .text = hostapi__str(m, "text"),
        .html = hostapi__str(m, "html"),
        .attachments_json = attachments[i],
        .author_name = hostapi__str(m, "author"),
        .author_avatar_url = hostapi__str(m, "author_avatar_url"),
        .flags = json_is_true(json_object_get(m, "automatic")) ? SB_OUT_AUTOMATIC : 0,
        .timestamp_ms = json_integer_value(json_object_get(m, "created_at")),
    };
  }
  if (h.status == SB_OK) {
    const json_t *owner = json_object_get(result, "owner");
    h.more = json_is_true(json_object_get(result, "more"));
    h.messages = out;
    h.count = n;
    h.contact_name = hostapi__str(json_object_get(result, "contact"), "name");
    h.owner_name = hostapi__str(owner, "name");
    h.owner_avatar_url = hostapi__str(owner, "avatar_url");
  }
  rd->history_done(rd->arg, &h);
  for (size_t i = 0; i < n; i++) free(attachments[i]);
  free(attachments);
  free(ids);
  free(out);
  hostapi__read_end(rd);
}

int hostapi_history(sb_channel *ch, const sb_history_request *request, sb_history_done_fn done, void *arg) {
  if (ch == NULL || request == NULL || done == NULL) return SB_EINVAL;
  sb_history_request q;
  memset(&q, 0, sizeof(q));
  if (request->struct_size < offsetof(sb_history_request, limit) + sizeof(q.limit)) return SB_EINVAL;
  memcpy(&q, request, request->struct_size < sizeof(q) ? request->struct_size : sizeof(q));
  if (q.id == NULL || q.id[0] == '\0' || q.kind > SB_IDENTITY_VISITOR || q.limit > HOSTAPI_HISTORY_MAX)
    return SB_EINVAL;
  int64_t after = 0;
  if (q.after_message_id != NULL) {
    char *end;
    errno = 0;
    long long v = strtoll(q.after_message_id, &end, 10);
    if (errno != 0 || end == q.after_message_id || *end != '\0' || v < 0) return SB_EINVAL;
    after = v;
  }
  if (ch->closing) return SB_ECANCELED;
  if (ch->env->history == NULL) return SB_ENOTSUP;
  hostapi_read *rd = hostapi__read_new(ch, arg);
  if (rd == NULL) return SB_ENOMEM;
  rd->history_done = done;
  int rc = ch->env->history(ch->env->ctx, ch, q.kind, q.id, after, q.limit ? (int)q.limit : HOSTAPI_HISTORY_DEFAULT,
                            hostapi__history_done, rd);
  if (rc != 0) {
    free(rd);
    return rc == -EINVAL ? SB_EINVAL : SB_EIO;
  }
  channel_completion_begin(ch);
  return SB_OK;
}

/* --- availability -------------------------------------------------------- */

static uint32_t hostapi__count(const json_t *o, const char *key) {
  json_int_t v = json_integer_value(json_object_get(o, key));
  return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void hostapi__availability_done(void *arg, int status, json_t *result, const char *err) {
  hostapi_read *rd = arg;
  sb_availability a = {.status = hostapi__read_status(rd, status, "availability", err), .typical_reply_seconds = -1};
  if (a.status == SB_OK) {
    a.eligible = hostapi__count(result, "eligible");
    a.available = hostapi__count(result, "available");
    a.with_capacity = hostapi__count(result, "with_capacity");
    a.typical_reply_seconds = json_integer_value(json_object_get(result, "typical_reply_seconds"));
  }
  rd->availability_done(rd->arg, &a);
  hostapi__read_end(rd);
}

int hostapi_availability(sb_channel *ch, sb_availability_done_fn done, void *arg) {
  if (ch == NULL || done == NULL) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  if (ch->env->availability == NULL) return SB_ENOTSUP;
  hostapi_read *rd = hostapi__read_new(ch, arg);
  if (rd == NULL) return SB_ENOMEM;
  rd->availability_done = done;
  int rc = ch->env->availability(ch->env->ctx, ch, hostapi__availability_done, rd);
  if (rc != 0) {
    free(rd);
    return SB_EIO;
  }
  channel_completion_begin(ch);
  return SB_OK;
}

/* --- held replies --------------------------------------------------------- */

int hostapi_send_release(sb_channel *ch, uint32_t kind, const char *id) {
  if (ch == NULL || id == NULL || id[0] == '\0' || kind > SB_IDENTITY_VISITOR) return SB_EINVAL;
  if (ch->closing) return SB_ECANCELED;
  if (ch->env->send_release == NULL) return SB_ENOTSUP;
  return ch->env->send_release(ch->env->ctx, ch, kind, id);
}
