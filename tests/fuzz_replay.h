/* fuzz_replay.h — the replay driver the project's fuzz targets share when
 * built without libFuzzer: `TARGET FILE...` runs LLVMFuzzerTestOneInput on
 * each file, then on `rounds` mutations of it (truncations and 1–8 changed
 * bytes, half of them taken from `special` when it is given: bytes the
 * format cares about) with a fixed seed, so every run repeats. Exits 0 when
 * nothing failed (the sanitizers and the target's own checks catch the
 * rest). Header-only: include it in the one file that defines the target. */
#ifndef SB_FUZZ_REPLAY_H
#define SB_FUZZ_REPLAY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long fuzz__next(unsigned long *s) {
  *s = *s * 6364136223846793005UL + 1442695040888963407UL;
  return *s >> 33;
}

static int fuzz_replay_main(int argc, char **argv, int rounds, const char *special) {
  unsigned long seed = 7;
  size_t nspecial = special != NULL ? strlen(special) : 0;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (f == NULL) {
      fprintf(stderr, "%s: cannot open %s\n", argv[0], argv[i]);
      return 2;
    }
    char *buf = malloc(1 << 20), *m = malloc((1 << 20) + 1);
    if (buf == NULL || m == NULL) return 2;
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    LLVMFuzzerTestOneInput((const uint8_t *)buf, n);
    for (int round = 0; round < rounds; round++) {
      size_t len = n > 0 ? fuzz__next(&seed) % (n + 1) : 0;
      memcpy(m, buf, n);
      int flips = 1 + (int)(fuzz__next(&seed) % 8);
      for (int k = 0; k < flips && n > 0; k++) {
        size_t at = fuzz__next(&seed) % n;
        m[at] = nspecial > 0 && fuzz__next(&seed) % 2 ? special[fuzz__next(&seed) % nspecial]
                                                      : (char)fuzz__next(&seed);
      }
      LLVMFuzzerTestOneInput((const uint8_t *)m, round % 2 ? len : n);
    }
    free(m);
    free(buf);
    printf("%s: ok\n", argv[i]);
  }
  return 0;
}

#endif
