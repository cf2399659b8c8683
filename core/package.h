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
 * (or a --trust given to verify). */
#ifndef SB_CORE_PACKAGE_H
#define SB_CORE_PACKAGE_H

/* argv[0] is the subcommand: keygen, pack, verify or install. Returns the
 * exit status (0, 1 runtime failure, 2 bad usage or a refused package). */
int package_main(int argc, char **argv);

#endif
