/* hmac.h — HMAC-SHA256 for the host: the webhook signature check of every
 * inbound request (sb_host.hmac_sha256). */
#ifndef SB_CORE_HMAC_H
#define SB_CORE_HMAC_H

#include <stddef.h>
#include <stdint.h>

/* Writes HMAC-SHA256(key, data) as 32 raw bytes to out. Cannot fail.
 * Thread-safe (each thread keeps its own recent keys' state). */
void hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len, uint8_t out[32]);

#endif
