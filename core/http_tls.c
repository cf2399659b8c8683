/* http_tls.c — builds the OpenSSL server context libh2o's TLS handshake uses, from PEM files. */
#include "http_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Writes OpenSSL's first queued error into buf and empties the queue.
 * Returns 1 when some queued error says a key does not fit the certificate:
 * OpenSSL 3 checks that already while loading the key, so a mismatched pair
 * must not be reported as a key that could not be read. */
static int last_error(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    snprintf(buf, len, "unknown error");
  } else {
    ERR_error_string_n(e, buf, len);
  }
  int mismatch = 0;
  for (; e != 0; e = ERR_get_error()) {
    mismatch |= ERR_GET_LIB(e) == ERR_LIB_X509 &&
                (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH || ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
  }
  return mismatch;
}

/* A file OpenSSL cannot open gets an errno sentence rather than its "system
 * library" code. */
static int readable(const char *what, const char *path, char *err, size_t errlen) {
  if (access(path, R_OK) == 0) return 0;
  snprintf(err, errlen, "TLS %s file %s cannot be read: %s", what, path, strerror(errno));
  return -EINVAL;
}

/* OpenSSL's pass phrase callback: there is none to give (its default asks
 * on the terminal, which would block the daemon); notes that one was asked. */
static int no_pass_phrase(char *buf, int size, int rwflag, void *asked) {
  (void)buf;
  (void)size;
  (void)rwflag;
  *(int *)asked = 1;
  return 0;
}

int http_tls_load(const char *cert_file, const char *key_file, void **out, char *err, size_t errlen) {
  *out = NULL;
  if (cert_file == NULL || key_file == NULL) {
    snprintf(err, errlen, "TLS needs both a certificate file and a key file");
    return -EINVAL;
  }
  int rc = readable("certificate", cert_file, err, errlen);
  if (rc == 0) rc = readable("key", key_file, err, errlen);
  if (rc != 0) return rc;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "could not create a TLS context (out of memory?)");
    return -ENOMEM;
  }
  char why[256];
  int asked = 0;
  SSL_CTX_set_default_passwd_cb(ctx, no_pass_phrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS certificate file %s could not be loaded (%s); give a PEM certificate chain", cert_file,
             why);
    SSL_CTX_free(ctx);
    return -EINVAL;
  }
  int loaded = SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) == 1;
  if (!loaded && asked) {
    snprintf(err, errlen, "TLS key file %s is encrypted (it asks for a pass phrase); give an unencrypted PEM private key",
             key_file);
    SSL_CTX_free(ctx);
    return -EINVAL;
  }
  if (!loaded || SSL_CTX_check_private_key(ctx) != 1) {
    if (last_error(why, sizeof(why)) || loaded) {
      snprintf(err, errlen, "TLS key file %s does not match certificate %s (%s)", key_file, cert_file, why);
    } else {
      snprintf(err, errlen, "TLS key file %s could not be loaded (%s); give an unencrypted PEM private key", key_file,
               why);
    }
    SSL_CTX_free(ctx);
    return -EINVAL;
  }
  *out = ctx;
  return 0;
}

int http_tls_check(const char *cert_file, const char *key_file, char *err, size_t errlen) {
  void *ctx = NULL;
  int rc = http_tls_load(cert_file, key_file, &ctx, err, errlen);
  http_tls_free(ctx);
  return rc;
}

void http_tls_free(void *ctx) {
  if (ctx != NULL) SSL_CTX_free(ctx);
}
