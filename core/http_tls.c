/* http_tls.c — builds the OpenSSL server context libh2o's TLS handshake uses, from PEM files. */
#include "http_tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

/* OpenSSL is already in the process (libh2o needs it) but sbcore is not
 * linked against it by the build, so its few entry points are looked up at
 * run time. Linking PkgConfig::OPENSSL would make this a set of plain calls. */
static struct {
  int loaded;
  const SSL_METHOD *(*server_method)(void);
  SSL_CTX *(*ctx_new)(const SSL_METHOD *);
  void (*ctx_free)(SSL_CTX *);
  int (*use_chain_file)(SSL_CTX *, const char *);
  int (*use_key_file)(SSL_CTX *, const char *, int);
  int (*check_key)(const SSL_CTX *);
  unsigned long (*get_error)(void);
  void (*error_string)(unsigned long, char *, size_t);
  void (*clear_error)(void);
} ossl;

static int load_openssl(void) {
  if (ossl.loaded) return 0;
#define SYM(field, name)                                         \
  do {                                                           \
    *(void **)(&ossl.field) = dlsym(RTLD_DEFAULT, name);         \
    if (ossl.field == NULL) return -ENOSYS;                      \
  } while (0)
  SYM(server_method, "TLS_server_method");
  SYM(ctx_new, "SSL_CTX_new");
  SYM(ctx_free, "SSL_CTX_free");
  SYM(use_chain_file, "SSL_CTX_use_certificate_chain_file");
  SYM(use_key_file, "SSL_CTX_use_PrivateKey_file");
  SYM(check_key, "SSL_CTX_check_private_key");
  SYM(get_error, "ERR_get_error");
  SYM(error_string, "ERR_error_string_n");
  SYM(clear_error, "ERR_clear_error");
#undef SYM
  ossl.loaded = 1;
  return 0;
}

static void last_error(char *buf, size_t len) {
  unsigned long e = ossl.get_error();
  if (e == 0) {
    snprintf(buf, len, "unknown error");
  } else {
    ossl.error_string(e, buf, len);
  }
  ossl.clear_error();
}

int http_tls_load(const char *cert_file, const char *key_file, void **out, char *err, size_t errlen) {
  *out = NULL;
  if (load_openssl() != 0) {
    snprintf(err, errlen, "TLS is not available: OpenSSL's functions were not found in the process");
    return -ENOSYS;
  }
  ossl.clear_error();
  SSL_CTX *ctx = ossl.ctx_new(ossl.server_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "could not create a TLS context (out of memory?)");
    return -ENOMEM;
  }
  char why[256];
  if (ossl.use_chain_file(ctx, cert_file) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS certificate file %s could not be loaded (%s); give a PEM certificate chain", cert_file,
             why);
    ossl.ctx_free(ctx);
    return -EINVAL;
  }
  if (ossl.use_key_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS key file %s could not be loaded (%s); give an unencrypted PEM private key", key_file,
             why);
    ossl.ctx_free(ctx);
    return -EINVAL;
  }
  if (ossl.check_key(ctx) != 1) {
    last_error(why, sizeof(why));
    snprintf(err, errlen, "TLS key file %s does not match certificate %s (%s)", key_file, cert_file, why);
    ossl.ctx_free(ctx);
    return -EINVAL;
  }
  *out = ctx;
  return 0;
}

void http_tls_free(void *ctx) {
  if (ctx != NULL && ossl.loaded) ossl.ctx_free(ctx);
}
