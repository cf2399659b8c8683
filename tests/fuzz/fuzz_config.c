/* fuzz_config.c — feeds arbitrary bytes to config_load as a config file and
 * checks that every refusal says why (one sentence in err) and that what
 * loads can be read back and freed. Environment references resolve against
 * an empty environment value; file references are left to fail (the seeds
 * hold none, and a mutation that makes one points nowhere readable).
 *
 * Built as a replay program that ctest runs over seeds/config/ with
 * mutations (tests/fuzz_replay.h). Defining SB_LIBFUZZER leaves main out,
 * for a libFuzzer build by hand (clang -fsanitize=fuzzer, linked with sbcore). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fz_path[0] == '\0') {
    char dir[] = "/tmp/sbfuzz-config.XXXXXX";
    if (mkdtemp(dir) == NULL) abort();
    snprintf(fz_path, sizeof(fz_path), "%s/switchboard.json", dir);
  }
  FILE *f = fopen(fz_path, "wb");
  if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
  config *cfg = NULL;
  char err[1024] = "";
  int rc = config_load(fz_path, NULL, NULL, &cfg, err, sizeof(err));
  if (rc != 0) {
    if (cfg != NULL || err[0] == '\0') abort(); /* a refusal always says why, and hands nothing back */
    return 0;
  }
  if (cfg == NULL || cfg->listen == NULL || cfg->store == NULL || cfg->plugin_dir_count == 0) abort();
  for (size_t i = 0; i < cfg->channel_count; i++)
    if (config_find_channel(cfg, cfg->channels[i].name) == NULL) abort();
  for (size_t i = 0; i < cfg->trusted_key_count; i++)
    if (strlen(cfg->trusted_keys[i]) != 64) abort();
  config_free(cfg);
  return 0;
}

#ifndef SB_LIBFUZZER
#include "fuzz_replay.h"

int main(int argc, char **argv) {
  setenv("DEMO_SECRET", "fuzz-secret-value", 1);
  int rc = fuzz_replay_main(argc, argv, 1500, "{}[]\",:0123456789 \ntrufalsn\"\\");
  if (fz_path[0] != '\0') {
    unlink(fz_path);
    *strrchr(fz_path, '/') = '\0';
    rmdir(fz_path);
  }
  return rc;
}
#endif
