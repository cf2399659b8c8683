/* graph_double_internal.h — what graph_double.c and graph_double_form.c share (not for tests). */
#ifndef SB_TESTS_GRAPH_DOUBLE_INTERNAL_H
#define SB_TESTS_GRAPH_DOUBLE_INTERNAL_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph_double.h"

/* Aborts on a broken expectation: usable inside libcheck tests and in graph_double_server alike. */
#define GD_CHECK(cond)                                                                \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "graph_double: %s:%d: %s failed\n", __FILE__, __LINE__, #cond); \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

/* Parses rq's multipart/form-data body (by rq->content_type's boundary, CRLF framing as RFC 7578) into
 * rq->form. Returns NULL, or the Graph error message (code 100) for a malformed body. */
const char *gd_form_parse(gd_request *rq);

/* A Messenger Send API call made as a form: its fields as the JSON body the shape check reads, after
 * checking the upload (filedata with a filename and a Content-Type that fits message.attachment.type).
 * NULL with the Graph error message in *why when the upload is wrong; free with json_decref. */
json_t *gd_form_messenger(const gd_request *rq, const char **why);

/* Checks a WhatsApp POST /{phone-number-id}/media form (messaging_product, type, file with a filename
 * and the type as its Content-Type). NULL when fine, with *file the file part; else the error message. */
const char *gd_form_check_media(const gd_request *rq, const gd_form_part **file);

/* The form as a JSON text for the request log (fields' values, files' names, types and sizes): an
 * upload's bytes are no JSON string. malloc'd. */
char *gd_form_summary(const gd_request *rq);

#endif
