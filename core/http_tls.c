/* http_tls.c — builds the OpenSSL server context libh2o's TLS handshake uses, from PEM files. */
#include "http_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

static void last_error(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    snprintf(buf, len, "unknown error");
  } else {
    ERR_error_string_n(e, buf, len);
  }
  ERR_clear_error();
}

int http_tls_load(const char *cert_file, const char *key_file, void **out, char *err, size_t errlen) {
  *out = NULL;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "could not create a TLS context (out of memory?)");
    return -ENOMEM;
  }
  char why[256];
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS certificate file %s could not be loaded (%s); give a PEM certificate chain", cert_file,
             why);
    SSL_CTX_free(ctx);
    return -EINVAL;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS key file %s could not be loaded (%s); give an unencrypted PEM private key", key_file,
             why);
    SSL_CTX_free(ctx);
    return -EINVAL;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS key file %s does not match certificate %s (%s)", key_file, cert_file, why);
    SSL_CTX_free(ctx);
    return -EINVAL;
  }
  *out = ctx;
  return 0;
}

void http_tls_free(void *ctx) {
  if (ctx != NULL) SSL_CTX_free(ctx);
}
