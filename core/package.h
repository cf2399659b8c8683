/* package.h — signed plugin packages: `switchboard plugins keygen | pack |
 * verify | install`.
 *
 * A package (NAME-VERSION.sbpkg) is a gzip-compressed tar of flat entries:
 * manifest.json first ({format, id, version, name, publisher, description,
 * abi, files: [{path, size, blake2b}]}), then manifest.sig ({public_key,
 * signature}: Ed25519 over the manifest's exact bytes), then every file the
 * manifest lists — ID.so first, then documents the author added. Signing the
 * manifest signs the files through their BLAKE2b-256 hashes. A package
 * installs only when its signer is one of the config's plugins.trusted_keys
 * (or a --trust given to verify); install keeps the manifest and signature
 * beside the file (ID.so.sig) for plugins.require_signed. */

#include <stddef.h>
#ifndef SB_CORE_PACKAGE_H
#define SB_CORE_PACKAGE_H

/* The loader's vet for a config (ctx): with plugins.require_signed on, a
 * plugin file loads only with the signature `install` wrote beside it
 * (ID.so.sig) from a key in plugins.trusted_keys, and only while it is the
 * file that was signed. 0 to load; -1 with the reason in reason. */
int package_vet(const void *ctx, const char *path, char *reason, size_t len);

/* The checks of `verify` on a package held in memory, without loading its
 * plugin (for the fuzz target): 0 when it is well formed, signed by one of
 * trusted (hex public keys) and its files match the manifest; else a
 * negative errno with the reason in err. */
int package_check_memory(const void *data, size_t len, const char *const *trusted, size_t ntrusted, char *err,
                         size_t errlen);

/* argv[0] is the subcommand: keygen, pack, verify or install. Returns the
 * exit status (0, 1 runtime failure, 2 bad usage or a refused package). */
int package_main(int argc, char **argv);

#endif
