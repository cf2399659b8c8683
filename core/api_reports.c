/* api_reports.c — what operators of the help desk measure: GET /api/v1/reports (agents and admins). */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define API_DAY_MS ((int64_t)24 * 3600 * 1000)
/* Without from, a report covers the week before to. */
#define API_REPORT_DEFAULT_MS (7 * API_DAY_MS)
/* The longest range: a year, leap day included. */
#define API_REPORT_MAX_MS (366 * API_DAY_MS)

/* Reads ?name= as milliseconds since the epoch (how the API gives every
 * time) into *ms, leaving it when absent. Returns 0, or -EINVAL after
 * answering 422 naming the parameter. */
static int api__report_time(const http_request *req, http_responder *res, const char *name, int64_t *ms) {
  char buf[32];
  int n = http_request_query(req, name, buf, sizeof(buf));
  if (n == -ENOENT) return 0;
  if (n <= 0 || n > 15 || strspn(buf, "0123456789") != (size_t)n) {
    char msg[160];
    snprintf(msg, sizeof(msg), "?%s= must be a time in milliseconds since the epoch, as the API gives times", name);
    http_respond_error(res, 422, "invalid_query", msg, name);
    return -EINVAL;
  }
  *ms = strtoll(buf, NULL, 10);
  return 0;
}

static void api__reports(api *a, const http_request *req, http_responder *res, int role) {
  (void)role;
  static const char *const keys[] = {"channel", "inbox", "group_by"};
  int64_t to = sb_wall_ms(), from = -1;
  if (api__report_time(req, res, "to", &to) != 0 || api__report_time(req, res, "from", &from) != 0) return;
  if (from < 0) from = to > API_REPORT_DEFAULT_MS ? to - API_REPORT_DEFAULT_MS : 0;
  if (to <= from) {
    http_respond_error(res, 422, "invalid_query", "to must be later than from (to is now when not given)", "to");
    return;
  }
  if (to - from > API_REPORT_MAX_MS) {
    http_respond_error(res, 422, "invalid_query", "a report covers at most 366 days: bring from closer to to",
                       "from");
    return;
  }
  json_t *q = json_pack("{sI sI}", "from", (json_int_t)from, "to", (json_int_t)to);
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    if (api_query_into(req, res, keys[i], q) != 0) goto out;
  const char *by = json_string_value(json_object_get(q, "group_by"));
  if (by != NULL && strcmp(by, "channel") != 0 && strcmp(by, "inbox") != 0 && strcmp(by, "agent") != 0) {
    http_respond_error(res, 422, "invalid_query", "group_by must be channel, inbox or agent", "group_by");
    goto out;
  }
  api_submitted(res, store_report(a->host.st, q, api_done_object, res));
out:
  json_decref(q);
}

int api_reports_register(api *a) { return api_route(a, "GET", "/api/v1/reports", 0, api__reports); }
