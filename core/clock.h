/* clock.h — the wall clock in milliseconds since the epoch: the times the
 * store keeps and the API shows, and due times that must mean the same after
 * a restart (never uv_now, which starts again with the process). */
#ifndef SB_CORE_CLOCK_H
#define SB_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t sb_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
