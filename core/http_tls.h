/* http_tls.h — the HTTP module's TLS context from PEM files. http_tls_load
 * and http_tls_free are internal to core/http*.c; http_tls_check is for
 * config validation (`switchboard check`, start-up). */
#ifndef SB_CORE_HTTP_TLS_H
#define SB_CORE_HTTP_TLS_H

#include <stddef.h>

/* Loads cert_file (PEM chain) and key_file into a new server SSL_CTX, stored
 * as void * in *out. Returns 0; -EINVAL with a sentence naming the file in
 * err for a file that cannot be read or parsed or a key that does not match
 * the certificate (or a NULL path); -ENOMEM. */
int http_tls_load(const char *cert_file, const char *key_file, void **out, char *err, size_t errlen);

/* Checks that cert_file and key_file can be read, parse as a PEM certificate
 * chain and an unencrypted PEM private key, and belong together, exactly as
 * http_new would load them, without starting anything. Returns 0, or as
 * http_tls_load (err names the file); nothing is kept. */
int http_tls_check(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* Frees a context from http_tls_load; NULL is fine. */
void http_tls_free(void *ctx);

#endif
