/* form_parse.h — reads the body of one web form submission, whatever the
 * site sent: application/x-www-form-urlencoded (a plain HTML <form>),
 * multipart/form-data (a form with file inputs; MIME read by gmime 3) or
 * application/json (a site's own fetch()).
 *
 * Host-free and pure apart from allocation, so tests and the fuzz target
 * (fuzz/fuzz_form_parse.c) call it directly. Everything it hands back is
 * owned by the form_body and freed with form_body_free. */
#ifndef FORM_PARSE_H
#define FORM_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Why a submission is refused: the HTTP status, an error code, the field it
 * names (may be empty) and a sentence for the site's developer. */
typedef struct form_problem {
  int status;
  const char *code;
  char field[96];
  char message[320];
} form_problem;

/* Fills p and returns -1, for `return form_problem_set(...)`. Bytes outside
 * printable ASCII in the sentence and field become '?', so both are always
 * safe to put in JSON or HTML. */
int form_problem_set(form_problem *p, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* One text field, in the order the body gave it. value is NUL-terminated
 * valid UTF-8 without NUL bytes inside. */
typedef struct form_field {
  char *name;
  char *value;
} form_field;

/* One uploaded file (a multipart part with a filename). */
typedef struct form_file {
  char *field;     /* the input's name */
  char *filename;  /* as the browser gave it (UTF-8), never empty */
  char *mime_type; /* lowercased type/subtype, parameters dropped */
  char *data;      /* len bytes, exactly as uploaded (may hold NUL, CR, LF) */
  size_t len;
} form_file;

typedef struct form_body {
  int kind; /* FORM_KIND_* */
  form_field *fields;
  size_t field_count;
  form_file *files;
  size_t file_count;
} form_body;

#define FORM_KIND_URLENCODED 1
#define FORM_KIND_MULTIPART 2
#define FORM_KIND_JSON 3

/* What the parser enforces while it reads, so an oversized body is refused
 * before it is copied again. */
typedef struct form_limits {
  size_t max_fields;      /* text fields; more → 400 */
  size_t max_value_bytes; /* one text value; longer → 400 naming it */
  size_t max_files;       /* files; more → 400 naming the input */
  uint64_t max_file_bytes; /* one file; larger → 413 naming the input; 0: no limit */
} form_limits;

/* Parses body (len bytes, not NUL-terminated) as content_type says (the raw
 * Content-Type header; NULL when absent). Returns 0 and fills *out (free
 * with form_body_free), or -1 with p filled: 415 for another (or no)
 * content type, 400 for a malformed body (a missing boundary, a truncated
 * part, invalid UTF-8, a NUL byte in a value, a JSON value that is not
 * text), 413 for a file over the limit. Never crashes on any input. */
int form_parse(const char *content_type, const char *body, size_t len, const form_limits *limits, form_body *out,
               form_problem *p);

void form_body_free(form_body *b);

/* The first value of the named field, or NULL. */
const char *form_body_get(const form_body *b, const char *name);

/* The number of values the named field has (checkboxes repeat a name). */
size_t form_body_count(const form_body *b, const char *name);

/* True when s (len bytes) is valid UTF-8 with no NUL byte. */
int form_utf8_valid(const char *s, size_t len);

/* Must be called once before form_parse reads multipart bodies (gmime's
 * init; it counts its calls and is never shut down). */
void form_parse_init(void);

#endif /* FORM_PARSE_H */
