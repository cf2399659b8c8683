/* filelink.h — links that download a stored file without a token until they
 * expire (sb_host.attachment_link, ABI 1.4; served at GET /files/{id}):
 * "/files/{id}?expires={unix seconds}&sig={hex HMAC-SHA256}" under a key the
 * process makes at start, so every link ends with the process. */
#ifndef SB_CORE_FILELINK_H
#define SB_CORE_FILELINK_H

#include <stddef.h>
#include <stdint.h>

#define FILELINK_TTL_MAX_S 604800u /* a week */

/* Writes the link for attachment id, valid ttl_s seconds from now_s, into
 * buf. Returns its length, -EINVAL (id < 1, ttl_s 0 or over the maximum) or
 * -EFBIG (buf too small). */
int filelink_sign(int64_t id, uint32_t ttl_s, int64_t now_s, char *buf, size_t len);

/* Whether expires and sig (the link's query values, as given) make a link
 * to id that is still valid at now_s. */
int filelink_valid(int64_t id, const char *expires, const char *sig, int64_t now_s);

#endif
