/* package.c — signed plugin packages (see package.h): keys, packing,
 * verification and installation into the config's first plugin directory. */
#include "package.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <switchboard/testhost.h>

#include "config.h"
#include "loader.h"
#include "log.h"

#define PKG_FORMAT 1
#define PKG_MAX_FILES 16
#define PKG_MAX_FILE_BYTES ((size_t)64 << 20)  /* one file */
#define PKG_MAX_TOTAL_BYTES ((size_t)128 << 20) /* the whole package, unpacked */
#define PKG_HASH_BYTES 32                       /* BLAKE2b-256 */

enum { PKG_OK = 0, PKG_RUNTIME = 1, PKG_REFUSED = 2 };

typedef struct pkg_file {
  char *name;
  unsigned char *data;
  size_t len;
} pkg_file;

/* A package read into memory: its entries in order. */
typedef struct pkg {
  pkg_file files[PKG_MAX_FILES + 2]; /* manifest.json, manifest.sig, the files */
  size_t n;
} pkg;

static void pkg__free(pkg *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->files[i].name);
    free(p->files[i].data);
  }
  p->n = 0;
}

static void pkg__hex(const unsigned char *b, size_t n, char *out) {
  sodium_bin2hex(out, n * 2 + 1, b, n);
}

/* 64 or 128 hex digits into n bytes; 0 or -1. Surrounding blanks are ignored. */
static int pkg__unhex(const char *hex, unsigned char *out, size_t n) {
  size_t got = 0;
  const char *end = NULL;
  if (sodium_hex2bin(out, n, hex, strlen(hex), " \t\r\n", &got, &end) != 0 || got != n) return -1;
  while (end != NULL && *end != '\0' && isspace((unsigned char)*end)) end++;
  return end == NULL || *end == '\0' ? 0 : -1;
}

static void pkg__hash(const unsigned char *data, size_t len, char out[PKG_HASH_BYTES * 2 + 1]) {
  unsigned char h[PKG_HASH_BYTES];
  crypto_generichash(h, sizeof(h), data, len, NULL, 0);
  pkg__hex(h, sizeof(h), out);
}

/* Reads a whole file (at most max bytes); NULL with errno set. */
static unsigned char *pkg__slurp(const char *path, size_t max, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  unsigned char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      if (cap == max + 1) break; /* one byte over: too large, said below */
      cap = cap ? cap * 2 : 65536;
      if (cap > max + 1) cap = max + 1;
      unsigned char *g = realloc(buf, cap);
      if (g == NULL) {
        free(buf);
        fclose(f);
        errno = ENOMEM;
        return NULL;
      }
      buf = g;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad || n > max) {
    free(buf);
    errno = bad ? EIO : EFBIG;
    return NULL;
  }
  *len = n;
  return buf;
}

/* Writes data to path through a temporary file in the same directory,
 * flushed before the rename, so a reader sees the old file or the new one. */
static int pkg__write_atomic(const char *path, const void *data, size_t len, mode_t mode) {
  size_t plen = strlen(path) + 16;
  char *tmp = malloc(plen);
  if (tmp == NULL) return -ENOMEM;
  snprintf(tmp, plen, "%s.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    free(tmp);
    return -errno;
  }
  int rc = 0;
  const char *p = data;
  for (size_t off = 0; rc == 0 && off < len;) {
    ssize_t w = write(fd, p + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) rc = -errno;
    else off += (size_t)w;
  }
  if (rc == 0 && (fchmod(fd, mode) != 0 || fsync(fd) != 0)) rc = -errno;
  if (close(fd) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
  if (rc != 0) unlink(tmp);
  free(tmp);
  return rc;
}

/* A file name a package may hold: flat, printable, not hidden. */
static int pkg__name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 128 || name[0] == '.') return 0;
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char)name[i]) || name[i] == '.' || name[i] == '_' || name[i] == '-')) return 0;
  return 1;
}

/* ---- keys ---- */

/* The signing key in path (hex of a 64-byte Ed25519 secret key). */
static int pkg__read_secret(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES]) {
  size_t len;
  char *text = (char *)pkg__slurp(path, 4096, &len);
  if (text == NULL) {
    fprintf(stderr, "switchboard plugins pack: cannot read the key %s: %s\n", path, strerror(errno));
    return PKG_RUNTIME;
  }
  text[len < 4096 ? len : 4095] = '\0';
  int rc = pkg__unhex(text, sk, crypto_sign_SECRETKEYBYTES);
  sodium_memzero(text, len);
  free(text);
  if (rc != 0) {
    fprintf(stderr, "switchboard plugins pack: %s is not a signing key (make one with `switchboard plugins keygen`)\n",
            path);
    return PKG_REFUSED;
  }
  return PKG_OK;
}

/* A --trust value: 64 hex digits, or a file holding them (a .pub file). */
static int pkg__trust_value(const char *v, char out[65]) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  if (pkg__unhex(v, pk, sizeof(pk)) != 0) {
    size_t len;
    char *text = (char *)pkg__slurp(v, 4096, &len);
    if (text == NULL) return -1;
    text[len < 4096 ? len : 4095] = '\0';
    int rc = pkg__unhex(text, pk, sizeof(pk));
    free(text);
    if (rc != 0) return -1;
  }
  pkg__hex(pk, sizeof(pk), out);
  return 0;
}

static int pkg__keygen(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "Usage: switchboard plugins keygen NAME   (writes NAME.key, secret, and NAME.pub)\n");
    return PKG_REFUSED;
  }
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  char pkhex[sizeof(pk) * 2 + 2], skhex[sizeof(sk) * 2 + 2];
  pkg__hex(pk, sizeof(pk), pkhex);
  pkg__hex(sk, sizeof(sk), skhex);
  strcat(pkhex, "\n");
  strcat(skhex, "\n");
  size_t n = strlen(argv[1]) + 5;
  char *keyfile = malloc(n), *pubfile = malloc(n);
  int rc = PKG_OK;
  if (keyfile == NULL || pubfile == NULL) {
    rc = PKG_RUNTIME;
  } else {
    snprintf(keyfile, n, "%s.key", argv[1]);
    snprintf(pubfile, n, "%s.pub", argv[1]);
    /* never over an existing key: a lost signing key cannot be recovered */
    int fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
    size_t len = strlen(skhex);
    if (fd < 0 || write(fd, skhex, len) != (ssize_t)len || fsync(fd) != 0) {
      fprintf(stderr, "switchboard plugins keygen: cannot write %s: %s\n", keyfile,
              errno == EEXIST ? "it exists already" : strerror(errno));
      rc = errno == EEXIST ? PKG_REFUSED : PKG_RUNTIME;
    }
    if (fd >= 0) close(fd);
    if (rc == PKG_OK && pkg__write_atomic(pubfile, pkhex, strlen(pkhex), 0644) != 0) {
      fprintf(stderr, "switchboard plugins keygen: cannot write %s\n", pubfile);
      rc = PKG_RUNTIME;
    }
    if (rc == PKG_OK) {
      printf("%s", pkhex);
      fprintf(stderr,
              "wrote %s (keep it secret) and %s; operators trust your packages by adding the public key above to "
              "plugins.trusted_keys\n",
              keyfile, pubfile);
    }
  }
  sodium_memzero(sk, sizeof(sk));
  sodium_memzero(skhex, sizeof(skhex));
  free(keyfile);
  free(pubfile);
  return rc;
}

/* ---- the archive ---- */

static int pkg__add(pkg *p, const char *name, unsigned char *data, size_t len) {
  if (p->n == sizeof(p->files) / sizeof(p->files[0])) return -1;
  p->files[p->n].name = strdup(name);
  p->files[p->n].data = data;
  p->files[p->n].len = len;
  p->n++;
  return p->files[p->n - 1].name != NULL ? 0 : -1;
}

static int pkg__write(const pkg *p, const char *path, char *err, size_t errlen) {
  struct archive *a = archive_write_new();
  int ok = a != NULL && archive_write_add_filter_gzip(a) == ARCHIVE_OK &&
           archive_write_set_format_pax_restricted(a) == ARCHIVE_OK && archive_write_open_filename(a, path) == ARCHIVE_OK;
  for (size_t i = 0; ok && i < p->n; i++) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, p->files[i].name);
    archive_entry_set_size(e, (la_int64_t)p->files[i].len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    ok = archive_write_header(a, e) == ARCHIVE_OK &&
         (p->files[i].len == 0 || archive_write_data(a, p->files[i].data, p->files[i].len) == (la_ssize_t)p->files[i].len);
    archive_entry_free(e);
  }
  if (ok) ok = archive_write_close(a) == ARCHIVE_OK;
  if (!ok) snprintf(err, errlen, "cannot write %s: %s", path, a ? archive_error_string(a) : "out of memory");
  if (a != NULL) archive_write_free(a);
  return ok ? 0 : -1;
}

/* Reads every entry of the package open in a (label names it in errors):
 * regular files with flat names, within the size limits. Frees a. */
static int pkg__read_archive(struct archive *a, const char *label, pkg *p, char *err, size_t errlen) {
  int rc = 0;
  size_t total = 0;
  struct archive_entry *e;
  int r = ARCHIVE_EOF;
  while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    const char *name = archive_entry_pathname(e);
    la_int64_t size = archive_entry_size(e);
    if (name == NULL || !pkg__name_ok(name) || archive_entry_filetype(e) != AE_IFREG) {
      snprintf(err, errlen, "%s holds \"%.128s\", which is not a plain file with a plain name", label,
               name ? name : "?");
      rc = -1;
    } else if (size < 0 || (size_t)size > PKG_MAX_FILE_BYTES || total + (size_t)size > PKG_MAX_TOTAL_BYTES ||
               p->n == sizeof(p->files) / sizeof(p->files[0])) {
      snprintf(err, errlen, "%s is larger than a plugin package may be (%zu files, %zu MiB)", label,
               (size_t)PKG_MAX_FILES, PKG_MAX_TOTAL_BYTES >> 20);
      rc = -1;
    } else {
      unsigned char *data = malloc((size_t)size + 1);
      if (data == NULL || archive_read_data(a, data, (size_t)size) != size) {
        snprintf(err, errlen, "cannot read %s in %s: %s", name, label, data ? archive_error_string(a) : "out of memory");
        free(data);
        rc = -1;
      } else {
        data[size] = '\0';
        total += (size_t)size;
        if (pkg__add(p, name, data, (size_t)size) != 0) {
          snprintf(err, errlen, "out of memory");
          rc = -1;
        }
      }
    }
  }
  if (rc == 0 && r != ARCHIVE_EOF) {
    snprintf(err, errlen, "%s is not a plugin package: %s", label, archive_error_string(a));
    rc = -1;
  }
  archive_read_free(a);
  return rc;
}

static struct archive *pkg__reader(void) {
  struct archive *a = archive_read_new();
  if (a != NULL) {
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
  }
  return a;
}

/* Reads the package file at path into p. */
static int pkg__read(const char *path, pkg *p, char *err, size_t errlen) {
  struct archive *a = pkg__reader();
  if (a == NULL) return snprintf(err, errlen, "out of memory"), -1;
  if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
    snprintf(err, errlen, "%s is not a plugin package: %s", path, archive_error_string(a));
    archive_read_free(a);
    return -1;
  }
  return pkg__read_archive(a, path, p, err, errlen);
}

/* ---- what a package says ---- */

/* The plugin's descriptor as a manifest's first fields, read by loading the
 * file with the stub host (its entry runs: only ever after the signature was
 * checked, or on the author's own machine when packing). */
static json_t *pkg__describe(const char *so_path, char *err, size_t errlen) {
  loader_plugin lp;
  char why[2048], *abs = realpath(so_path, NULL); /* dlopen searches the library path for a bare name */
  int rc = abs != NULL ? loader_open_file(abs, testhost_host(), &lp, why, sizeof(why)) : -1;
  if (abs == NULL) snprintf(why, sizeof(why), "cannot read %s: %s", so_path, strerror(errno));
  free(abs);
  if (rc != 0) {
    snprintf(err, errlen, "%s", why);
    return NULL;
  }
  char abi[16];
  snprintf(abi, sizeof(abi), "%d.%u", SB_ABI_MAJOR, lp.abi_minor);
  json_t *m = json_pack("{si ss ss ss ss? ss? ss}", "format", PKG_FORMAT, "id", lp.desc.id, "version",
                        lp.desc.version ? lp.desc.version : "", "name", lp.desc.name ? lp.desc.name : lp.desc.id,
                        "publisher", lp.desc.publisher, "description", lp.desc.description, "abi", abi);
  dlclose(lp.dl);
  free(lp.path);
  if (m == NULL) snprintf(err, errlen, "the plugin's descriptor holds text that is not UTF-8");
  return m;
}

/* Checks that (pkhex, sghex) is a valid Ed25519 signature of manifest by a
 * key in trusted; the signer's key (lower-case hex) goes to signer. 0, or
 * -1 with the reason (naming what) in err. */
static int pkg__signed_by_trusted(const unsigned char *manifest, size_t len, const char *pkhex, const char *sghex,
                                  const char *const *trusted, size_t ntrusted, char signer[65], const char *what,
                                  char *err, size_t errlen) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sg[crypto_sign_BYTES];
  if (pkhex == NULL || sghex == NULL || pkg__unhex(pkhex, pk, sizeof(pk)) != 0 ||
      pkg__unhex(sghex, sg, sizeof(sg)) != 0) {
    snprintf(err, errlen, "%s: the signature is not {\"public_key\", \"signature\"} in hex", what);
    return -1;
  }
  pkg__hex(pk, sizeof(pk), signer);
  if (crypto_sign_verify_detached(sg, manifest, len, pk) != 0) {
    snprintf(err, errlen, "%s: the signature does not match the manifest (the package was changed after signing)",
             what);
    return -1;
  }
  size_t t = 0;
  while (t < ntrusted && strcasecmp(trusted[t], signer) != 0) t++;
  if (t == ntrusted) {
    snprintf(err, errlen, "%s is signed by %s, which is not a trusted key (plugins.trusted_keys%s)", what, signer,
             ntrusted == 0 ? " is empty and no --trust was given" : "");
    return -1;
  }
  return 0;
}

/* Checks p against its signed manifest: the order of entries, the
 * signature, a trusted signer, every file's size and hash, nothing extra.
 * Returns the manifest (a new reference) or NULL with the reason in err. */
static json_t *pkg__check(const pkg *p, const char *path, char *const *trusted, size_t ntrusted, char signer[65],
                          char *err, size_t errlen) {
  if (p->n < 3 || strcmp(p->files[0].name, "manifest.json") != 0 || strcmp(p->files[1].name, "manifest.sig") != 0) {
    snprintf(err, errlen, "%s is not a plugin package: it must start with manifest.json and manifest.sig", path);
    return NULL;
  }
  json_t *sig = json_loadb((const char *)p->files[1].data, p->files[1].len, 0, NULL);
  int bad = pkg__signed_by_trusted(p->files[0].data, p->files[0].len,
                                   json_string_value(json_object_get(sig, "public_key")),
                                   json_string_value(json_object_get(sig, "signature")), (const char *const *)trusted,
                                   ntrusted, signer, path, err, errlen);
  json_decref(sig);
  if (bad) return NULL;
  json_t *m = json_loadb((const char *)p->files[0].data, p->files[0].len, JSON_REJECT_DUPLICATES, NULL);
  json_t *files = json_object_get(m, "files");
  const char *id = json_string_value(json_object_get(m, "id"));
  const char *version = json_string_value(json_object_get(m, "version"));
  const char *abi = json_string_value(json_object_get(m, "abi"));
  int major = -1, end = -1;
  unsigned minor = 0;
  if (abi != NULL && strspn(abi, "0123456789.") == strlen(abi)) sscanf(abi, "%d.%u%n", &major, &minor, &end);
  int ok = 0;
  if (!json_is_object(m) || json_integer_value(json_object_get(m, "format")) != PKG_FORMAT || id == NULL ||
      !loader_id_valid(id) || version == NULL || abi == NULL || !json_is_array(files)) {
    snprintf(err, errlen, "%s: the manifest is not one this switchboard reads (format %d, id, version, abi, files)",
             path, PKG_FORMAT);
  } else if (!loader_version_semantic(version)) {
    snprintf(err, errlen, "%s: the manifest's version \"%.40s\" is not a semantic version such as 1.2.0", path,
             version);
  } else if (end < 0 || (size_t)end != strlen(abi) || major != SB_ABI_MAJOR || minor > SB_ABI_MINOR) {
    snprintf(err, errlen, "%s: the plugin is built for ABI %.20s; this switchboard runs ABI %d.0 to %d.%d%s", path,
             abi, SB_ABI_MAJOR, SB_ABI_MAJOR, SB_ABI_MINOR,
             major == SB_ABI_MAJOR && minor > SB_ABI_MINOR ? " (upgrade switchboard)" : "");
  } else if (json_array_size(files) < p->n - 2) {
    snprintf(err, errlen, "%s: entry %zu, %s, is not in the manifest", path, json_array_size(files) + 3,
             p->files[json_array_size(files) + 2].name);
  } else if (json_array_size(files) > p->n - 2) {
    const char *listed = json_string_value(json_object_get(json_array_get(files, p->n - 2), "path"));
    snprintf(err, errlen, "%s: the manifest lists %s, which the package does not hold", path,
             listed != NULL ? listed : "an entry without a path");
  } else {
    ok = 1;
  }
  if (!ok) {
    json_decref(m);
    return NULL;
  }
  char so[96];
  snprintf(so, sizeof(so), "%s.so", id);
  for (size_t i = 0; i < json_array_size(files); i++) {
    const json_t *f = json_array_get(files, i);
    const char *name = json_string_value(json_object_get(f, "path"));
    const char *hash = json_string_value(json_object_get(f, "blake2b"));
    const pkg_file *got = &p->files[i + 2];
    char want[PKG_HASH_BYTES * 2 + 1];
    pkg__hash(got->data, got->len, want);
    if (name == NULL || strcmp(name, got->name) != 0 || (i == 0 && strcmp(name, so) != 0)) {
      snprintf(err, errlen, "%s: entry %zu is %s where the manifest lists %s", path, i + 3, got->name,
               name ? name : "nothing");
    } else if (hash == NULL || strcasecmp(hash, want) != 0 ||
               json_integer_value(json_object_get(f, "size")) != (json_int_t)got->len) {
      snprintf(err, errlen, "%s: %s does not match the manifest's size and hash", path, got->name);
    } else {
      continue;
    }
    json_decref(m);
    return NULL;
  }
  return m;
}

int package_check_memory(const void *data, size_t len, const char *const *trusted, size_t ntrusted, char *err,
                         size_t errlen) {
  if (data == NULL || err == NULL) return -EINVAL;
  if (sodium_init() < 0) return snprintf(err, errlen, "libsodium could not start"), -EIO;
  struct archive *a = pkg__reader();
  if (a == NULL) return snprintf(err, errlen, "out of memory"), -ENOMEM;
  pkg p = {0};
  char signer[65];
  int rc = -EINVAL;
  if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
    snprintf(err, errlen, "the package is not a plugin package: %s", archive_error_string(a));
    archive_read_free(a);
  } else if (pkg__read_archive(a, "the package", &p, err, errlen) == 0) {
    json_t *m = pkg__check(&p, "the package", (char *const *)trusted, ntrusted, signer, err, errlen);
    if (m != NULL) rc = 0;
    json_decref(m);
  }
  pkg__free(&p);
  return rc;
}

/* ---- commands ---- */

typedef struct pkg_opts {
  const char *key, *out, *config;
  const char *add[PKG_MAX_FILES];
  size_t nadd;
  char *trust[32];
  size_t ntrust;
  int argi;
} pkg_opts;

static void pkg__opts_free(pkg_opts *o) {
  for (size_t i = 0; i < o->ntrust; i++) free(o->trust[i]);
  o->ntrust = 0;
}

/* Parses a command's options into o (free with pkg__opts_free); on -1
 * (--help) or an error nothing is left to free. */
static int pkg__opts(int argc, char **argv, const char *cmd, pkg_opts *o) {
  static const struct option longopts[] = {{"key", required_argument, NULL, 'k'},    {"output", required_argument, NULL, 'o'},
                                           {"add", required_argument, NULL, 'a'},    {"trust", required_argument, NULL, 't'},
                                           {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof(*o));
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "k:o:a:t:c:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'k': o->key = optarg; break;
    case 'o': o->out = optarg; break;
    case 'c': o->config = optarg; break;
    case 'a':
      if (o->nadd == PKG_MAX_FILES - 1) {
        fprintf(stderr, "switchboard plugins %s: at most %d --add files\n", cmd, PKG_MAX_FILES - 1);
        pkg__opts_free(o);
        return PKG_REFUSED;
      }
      o->add[o->nadd++] = optarg;
      break;
    case 't': {
      char hex[65];
      if (o->ntrust == sizeof(o->trust) / sizeof(o->trust[0]) || pkg__trust_value(optarg, hex) != 0 ||
          (o->trust[o->ntrust] = strdup(hex)) == NULL) {
        fprintf(stderr, "switchboard plugins %s: --trust %s is neither 64 hexadecimal digits nor a .pub file\n", cmd,
                optarg);
        pkg__opts_free(o);
        return PKG_REFUSED;
      }
      o->ntrust++;
      break;
    }
    case 'h': pkg__opts_free(o); return -1;
    default:
      fprintf(stderr, "switchboard plugins %s: unknown option %s\n", cmd, argv[optind - 1]);
      pkg__opts_free(o);
      return PKG_REFUSED;
    }
  }
  o->argi = optind;
  return PKG_OK;
}

static const char pkg__usage[] =
    "Usage: switchboard plugins keygen NAME\n"
    "       switchboard plugins pack PATH/ID.so --key NAME.key [--add FILE]... [-o OUT.sbpkg]\n"
    "       switchboard plugins verify PKG.sbpkg [--trust KEY|FILE.pub]... [-c FILE]\n"
    "       switchboard plugins install PKG.sbpkg -c FILE [--trust KEY|FILE.pub]...\n"
    "\n"
    "keygen writes an Ed25519 signing key NAME.key (keep it secret) and NAME.pub, and\n"
    "prints the public key. pack checks the plugin loads, then writes ID-VERSION.sbpkg:\n"
    "a manifest (id, version, publisher, ABI, every file's BLAKE2b hash) signed with the\n"
    "key, the plugin and the --add files (a README, a licence). verify checks the\n"
    "signature, that the signer is trusted (--trust, and with -c the config's\n"
    "plugins.trusted_keys) and every file against the manifest. install verifies with\n"
    "the config's trusted keys, then puts ID.so into the first of its plugins.dirs;\n"
    "allow the id in plugins.allow and restart the daemon to run it.\n"
    "Exit status: 0 done, 1 a file could not be read or written, 2 bad usage or a\n"
    "refused package.\n";

static int pkg__pack(int argc, char **argv) {
  pkg_opts o;
  int rc = pkg__opts(argc, argv, "pack", &o);
  if (rc < 0) return fputs(pkg__usage, stdout), PKG_OK;
  if (rc != 0) return rc;
  if (argc - o.argi != 1 || o.key == NULL) {
    fprintf(stderr, "switchboard plugins pack: give one plugin file and --key NAME.key\n");
    pkg__opts_free(&o);
    return PKG_REFUSED;
  }
  const char *so_path = argv[o.argi];
  char err[2048];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  if ((rc = pkg__read_secret(o.key, sk)) != PKG_OK) {
    pkg__opts_free(&o);
    return rc;
  }
  pkg p = {0};
  json_t *m = pkg__describe(so_path, err, sizeof(err));
  const char *id = json_string_value(json_object_get(m, "id"));
  const char *base = strrchr(so_path, '/') ? strrchr(so_path, '/') + 1 : so_path;
  char so[96] = "";
  if (id != NULL) snprintf(so, sizeof(so), "%s.so", id);
  if (m == NULL) {
    fprintf(stderr, "switchboard plugins pack: %s\n", err);
    rc = PKG_REFUSED;
  } else if (strcmp(base, so) != 0) {
    fprintf(stderr, "switchboard plugins pack: %s declares id \"%s\"; the file must be named %s\n", so_path, id, so);
    rc = PKG_REFUSED;
  } else if (!loader_version_semantic(json_string_value(json_object_get(m, "version")))) {
    fprintf(stderr,
            "switchboard plugins pack: %s declares version \"%.40s\", not a semantic version such as 1.2.0 "
            "(switchboard plugins check %s)\n",
            so_path, json_string_value(json_object_get(m, "version")), so_path);
    rc = PKG_REFUSED;
  }
  /* the entries after the manifest and its signature: the plugin, then the --add files */
  json_t *files = json_array();
  for (size_t i = 0; rc == PKG_OK && i <= o.nadd; i++) {
    const char *path = i == 0 ? so_path : o.add[i - 1];
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t len;
    unsigned char *data = pkg__slurp(path, PKG_MAX_FILE_BYTES, &len);
    int dup = 0;
    for (size_t k = 2; k < p.n; k++) dup |= strcmp(p.files[k].name, name) == 0;
    if (data == NULL) {
      fprintf(stderr, "switchboard plugins pack: cannot read %s: %s\n", path, strerror(errno));
      rc = errno == EFBIG ? PKG_REFUSED : PKG_RUNTIME;
    } else if (!pkg__name_ok(name) || dup || strncmp(name, "manifest.", 9) == 0) {
      fprintf(stderr, "switchboard plugins pack: %s cannot go into a package under that name\n", path);
      free(data);
      rc = PKG_REFUSED;
    } else {
      char hash[PKG_HASH_BYTES * 2 + 1];
      pkg__hash(data, len, hash);
      json_array_append_new(files, json_pack("{ss sI ss}", "path", name, "size", (json_int_t)len, "blake2b", hash));
      if (p.n == 0) p.n = 2; /* slots 0 and 1: the manifest and its signature, made below */
      if (pkg__add(&p, name, data, len) != 0) rc = PKG_RUNTIME;
    }
  }
  char *manifest = NULL;
  if (rc == PKG_OK) {
    json_object_set_new(m, "files", json_incref(files));
    manifest = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sg[crypto_sign_BYTES];
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    crypto_sign_detached(sg, NULL, (const unsigned char *)manifest, strlen(manifest), sk);
    char pkhex[sizeof(pk) * 2 + 1], sghex[sizeof(sg) * 2 + 1];
    pkg__hex(pk, sizeof(pk), pkhex);
    pkg__hex(sg, sizeof(sg), sghex);
    json_t *sig = json_pack("{ss ss}", "public_key", pkhex, "signature", sghex);
    char *sigtext = json_dumps(sig, JSON_INDENT(2));
    json_decref(sig);
    p.files[0] = (pkg_file){strdup("manifest.json"), (unsigned char *)manifest, strlen(manifest)};
    p.files[1] = (pkg_file){strdup("manifest.sig"), (unsigned char *)sigtext, sigtext ? strlen(sigtext) : 0};
    manifest = NULL; /* owned by p now */
    char out[512];
    if (o.out != NULL)
      snprintf(out, sizeof(out), "%s", o.out);
    else
      snprintf(out, sizeof(out), "%s-%s.sbpkg", id, json_string_value(json_object_get(m, "version")));
    if (p.files[0].name == NULL || p.files[1].name == NULL || sigtext == NULL) {
      rc = PKG_RUNTIME;
    } else if (pkg__write(&p, out, err, sizeof(err)) != 0) {
      fprintf(stderr, "switchboard plugins pack: %s\n", err);
      unlink(out);
      rc = PKG_RUNTIME;
    } else {
      printf("%s\n", out);
      fprintf(stderr, "packed %s %s (%zu file%s), signed by %s\n", id,
              json_string_value(json_object_get(m, "version")), p.n - 2, p.n == 3 ? "" : "s", pkhex);
    }
  }
  sodium_memzero(sk, sizeof(sk));
  free(manifest);
  json_decref(files);
  json_decref(m);
  pkg__free(&p);
  pkg__opts_free(&o);
  return rc;
}

/* Verifies the package at path with the keys in o (and the config's, when
 * cfg is given). On success *out holds the package and *manifest its
 * manifest. */
static int pkg__verify_file(const char *cmd, const char *path, const pkg_opts *o, const config *cfg, pkg *out,
                            json_t **manifest, char signer[65]) {
  char *trusted[64];
  size_t n = 0;
  for (size_t i = 0; i < o->ntrust && n < 64; i++) trusted[n++] = o->trust[i];
  for (size_t i = 0; cfg != NULL && i < cfg->trusted_key_count && n < 64; i++) trusted[n++] = (char *)cfg->trusted_keys[i];
  char err[2048];
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "switchboard plugins %s: cannot read %s: %s\n", cmd, path, strerror(errno));
    return PKG_RUNTIME;
  }
  if (pkg__read(path, out, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard plugins %s: %s\n", cmd, err);
    pkg__free(out);
    return PKG_REFUSED;
  }
  *manifest = pkg__check(out, path, trusted, n, signer, err, sizeof(err));
  if (*manifest == NULL) {
    fprintf(stderr, "switchboard plugins %s: %s\n", cmd, err);
    pkg__free(out);
    return PKG_REFUSED;
  }
  return PKG_OK;
}

/* Loads the verified plugin from a private copy and checks it is the
 * plugin its manifest names. */
static int pkg__load_check(const char *cmd, const pkg *p, const json_t *m) {
  char dir[] = "/tmp/switchboard-pkg.XXXXXX";
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "switchboard plugins %s: cannot make a temporary directory: %s\n", cmd, strerror(errno));
    return PKG_RUNTIME;
  }
  char so[sizeof(dir) + 128], err[2048];
  snprintf(so, sizeof(so), "%s/%s", dir, p->files[2].name);
  int rc = PKG_OK;
  json_t *d = NULL;
  if (pkg__write_atomic(so, p->files[2].data, p->files[2].len, 0755) != 0) {
    fprintf(stderr, "switchboard plugins %s: cannot write %s\n", cmd, so);
    rc = PKG_RUNTIME;
  } else if ((d = pkg__describe(so, err, sizeof(err))) == NULL) {
    fprintf(stderr, "switchboard plugins %s: the packaged plugin does not load here: %s\n", cmd, err);
    rc = PKG_REFUSED;
  } else if (!json_equal(json_object_get(d, "id"), json_object_get(m, "id")) ||
             !json_equal(json_object_get(d, "version"), json_object_get(m, "version")) ||
             !json_equal(json_object_get(d, "abi"), json_object_get(m, "abi"))) {
    fprintf(stderr, "switchboard plugins %s: the packaged plugin is %s %s (ABI %s), not the manifest's %s %s (ABI %s)\n",
            cmd, json_string_value(json_object_get(d, "id")), json_string_value(json_object_get(d, "version")),
            json_string_value(json_object_get(d, "abi")), json_string_value(json_object_get(m, "id")),
            json_string_value(json_object_get(m, "version")), json_string_value(json_object_get(m, "abi")));
    rc = PKG_REFUSED;
  }
  json_decref(d);
  unlink(so);
  rmdir(dir);
  return rc;
}

/* Writes so_path + ".sig": the package's manifest and signature, with
 * which the loader checks the installed file (plugins.require_signed). */
static int pkg__write_sidecar(const char *so_path, const pkg *p) {
  json_t *sig = json_loadb((const char *)p->files[1].data, p->files[1].len, 0, NULL);
  json_t *side = json_pack("{s:s%, s:O?, s:O?}", "manifest", (const char *)p->files[0].data, p->files[0].len,
                           "public_key", json_object_get(sig, "public_key"), "signature", json_object_get(sig, "signature"));
  char *text = side != NULL ? json_dumps(side, JSON_INDENT(2)) : NULL;
  json_decref(side);
  json_decref(sig);
  size_t n = strlen(so_path) + 5;
  char *path = malloc(n);
  int rc = text == NULL || path == NULL ? -ENOMEM : 0;
  if (rc == 0) {
    snprintf(path, n, "%s.sig", so_path);
    rc = pkg__write_atomic(path, text, strlen(text), 0644);
  }
  free(path);
  free(text);
  return rc;
}

int package_vet(const void *ctx, const char *path, char *reason, size_t len) {
  const config *cfg = ctx;
  if (cfg == NULL || !cfg->require_signed) return 0;
  if (sodium_init() < 0) return snprintf(reason, len, "%s: libsodium could not start", path), -1;
  size_t n = strlen(path) + 5, slen = 0, solen = 0;
  char *sigpath = malloc(n);
  if (sigpath == NULL) return snprintf(reason, len, "out of memory"), -1;
  snprintf(sigpath, n, "%s.sig", path);
  char *text = (char *)pkg__slurp(sigpath, 1 << 20, &slen);
  json_t *side = text != NULL ? json_loadb(text, slen, 0, NULL) : NULL;
  const char *manifest = json_string_value(json_object_get(side, "manifest"));
  char signer[65], err[1024];
  int rc = -1;
  if (text == NULL) {
    snprintf(reason, len,
             "plugin file %s has no signature (%s; plugins.require_signed is on: install it from a signed package "
             "with `switchboard plugins install`)",
             path, strerror(errno));
  } else if (manifest == NULL) {
    snprintf(reason, len, "plugin file %s: %s is not a signature switchboard wrote", path, sigpath);
  } else if (pkg__signed_by_trusted((const unsigned char *)manifest, json_string_length(json_object_get(side, "manifest")),
                                    json_string_value(json_object_get(side, "public_key")),
                                    json_string_value(json_object_get(side, "signature")), cfg->trusted_keys,
                                    cfg->trusted_key_count, signer, sigpath, err, sizeof(err)) != 0) {
    snprintf(reason, len, "plugin file %s refused (plugins.require_signed): %s", path, err);
  } else {
    json_t *m = json_loads(manifest, 0, NULL);
    const json_t *f = json_array_get(json_object_get(m, "files"), 0);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    unsigned char *data = pkg__slurp(path, PKG_MAX_FILE_BYTES, &solen);
    char hash[PKG_HASH_BYTES * 2 + 1] = "";
    if (data != NULL) pkg__hash(data, solen, hash);
    const char *want = json_string_value(json_object_get(f, "blake2b"));
    if (!json_is_string(json_object_get(f, "path")) || strcmp(json_string_value(json_object_get(f, "path")), base) != 0) {
      snprintf(reason, len, "plugin file %s refused (plugins.require_signed): its signature is for another file", path);
    } else if (data == NULL || want == NULL || strcasecmp(want, hash) != 0 ||
               json_integer_value(json_object_get(f, "size")) != (json_int_t)solen) {
      snprintf(reason, len,
               "plugin file %s refused (plugins.require_signed): it does not match its signed manifest (changed "
               "after it was installed)",
               path);
    } else {
      rc = 0;
    }
    free(data);
    json_decref(m);
  }
  json_decref(side);
  free(text);
  free(sigpath);
  return rc;
}

static int pkg__verify(int argc, char **argv, int install) {
  const char *cmd = install ? "install" : "verify";
  pkg_opts o;
  int rc = pkg__opts(argc, argv, cmd, &o);
  if (rc < 0) return fputs(pkg__usage, stdout), PKG_OK;
  if (rc != 0) return rc;
  config *cfg = NULL;
  char err[2048];
  if (argc - o.argi != 1 || (install && o.config == NULL)) {
    fprintf(stderr, "switchboard plugins %s: give one package%s\n", cmd, install ? " and -c FILE" : "");
    rc = PKG_REFUSED;
  } else if (o.config != NULL && config_load(o.config, NULL, NULL, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard plugins %s: %s\n", cmd, err);
    rc = PKG_REFUSED;
  }
  pkg p = {0};
  json_t *m = NULL;
  char signer[65] = "";
  if (rc == PKG_OK) rc = pkg__verify_file(cmd, argv[o.argi], &o, cfg, &p, &m, signer);
  if (rc == PKG_OK) rc = pkg__load_check(cmd, &p, m);
  const char *id = json_string_value(json_object_get(m, "id"));
  const char *version = json_string_value(json_object_get(m, "version"));
  if (rc == PKG_OK && !install) {
    printf("%s %s by %s: %zu file%s, signed by %s (trusted)\n", id, version,
           json_string_value(json_object_get(m, "publisher")) ? json_string_value(json_object_get(m, "publisher"))
                                                              : "an unnamed publisher",
           p.n - 2, p.n == 3 ? "" : "s", signer);
  } else if (rc == PKG_OK) {
    const char *dir = cfg->plugin_dirs[0];
    size_t n = strlen(dir) + strlen(p.files[2].name) + 2;
    char *dest = malloc(n);
    if (dest != NULL) snprintf(dest, n, "%s/%s", dir, p.files[2].name);
    int existed = dest != NULL && access(dest, F_OK) == 0;
    int w = dest == NULL ? -ENOMEM : pkg__write_atomic(dest, p.files[2].data, p.files[2].len, 0755);
    if (w == 0) w = pkg__write_sidecar(dest, &p);
    if (w != 0) {
      fprintf(stderr, "switchboard plugins install: cannot write %s: %s\n", dest ? dest : dir, strerror(-w));
      rc = PKG_RUNTIME;
    } else {
      printf("%s\n", dest);
      fprintf(stderr, "installed %s %s (signed by %s) as %s%s; %s\n", id, version, signer, dest,
              existed ? ", replacing the file there" : "",
              config_plugin_allowed(cfg, id) ? "restart the daemon to run it (a reload keeps the code it loaded)"
                                             : "allow it in plugins.allow and restart the daemon to run it");
    }
    free(dest);
  }
  json_decref(m);
  pkg__free(&p);
  config_free(cfg);
  pkg__opts_free(&o);
  return rc;
}

int package_main(int argc, char **argv) {
  if (sodium_init() < 0) {
    fprintf(stderr, "switchboard plugins %s: libsodium could not start\n", argv[0]);
    return PKG_RUNTIME;
  }
  log_set_level(LOG_LEVEL_ERROR);
  if (strcmp(argv[0], "keygen") == 0) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) return fputs(pkg__usage, stdout), 0;
    return pkg__keygen(argc, argv);
  }
  if (strcmp(argv[0], "pack") == 0) return pkg__pack(argc, argv);
  if (strcmp(argv[0], "verify") == 0) return pkg__verify(argc, argv, 0);
  if (strcmp(argv[0], "install") == 0) return pkg__verify(argc, argv, 1);
  fputs(pkg__usage, stderr);
  return PKG_REFUSED;
}
