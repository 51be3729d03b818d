/* SPDX-License-Identifier: Apache-2.0 */
/* test_clock.h: the monotonic clock in milliseconds, for unit tests and
 * their fakes that time what they drive (a drain, a deadline, a pause).
 * One definition instead of one per test file. */
#pragma once

#include <stdint.h>
#include <time.h>

static inline int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
