/* http_tls.h — the HTTP module's TLS context from PEM files (internal to core/http*.c). */
#ifndef SB_CORE_HTTP_TLS_H
#define SB_CORE_HTTP_TLS_H

#include <stddef.h>

/* Loads cert_file (PEM chain) and key_file into a new server SSL_CTX, stored
 * as void * in *out. Returns 0, or a negative errno with a sentence naming
 * the file in err. */
int http_tls_load(const char *cert_file, const char *key_file, void **out, char *err, size_t errlen);

/* Frees a context from http_tls_load; NULL is fine. */
void http_tls_free(void *ctx);

#endif
