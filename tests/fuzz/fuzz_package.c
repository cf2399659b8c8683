/* fuzz_package.c — feeds arbitrary bytes to package_check_memory, the
 * checks of `switchboard plugins verify` before anything is loaded: the
 * gzip and tar reader (libarchive), entry names and sizes, the signature
 * file, the Ed25519 check against the seed's key (trusted here, so that
 * mutations of a signed seed reach the manifest and the file hashes), and
 * the manifest. Every refusal must say why. The seeds: a package signed by
 * that key, the same tar uncompressed (so mutations hit tar headers and
 * JSON directly), and one with a signature of nobody.
 *
 * Built as a replay program that ctest runs over seeds/package/ with
 * mutations (tests/fuzz_replay.h). Defining SB_LIBFUZZER leaves main out,
 * for a libFuzzer build by hand (clang -fsanitize=fuzzer, linked with sbcore). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "package.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the public key of the key that signed seeds/package/signed.* (its secret
 * was thrown away) */
static const char *const fz_trusted[] = {"d48ae3165115e65ce825b18de53348375990fab29169f81e6b74d46b72b03587"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[2048] = "";
  int rc = package_check_memory(data, size, fz_trusted, 1, err, sizeof(err));
  if (rc != 0 && err[0] == '\0') abort(); /* a refusal always says why */
  return 0;
}

#ifndef SB_LIBFUZZER
#include "fuzz_replay.h"

int main(int argc, char **argv) {
  return fuzz_replay_main(argc, argv, 1500, "{}\",:0123456789abcdef/.\0");
}
#endif
