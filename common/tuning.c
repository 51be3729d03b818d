/* SPDX-License-Identifier: Apache-2.0 */
/* tuning.c: see tuning.h. */
#include "tuning.h"

#include <dlfcn.h>
#include <malloc.h>

#define KEEP_FREED_BYTES (256 * 1024 * 1024)
#define MMAP_ABOVE_BYTES (32 * 1024 * 1024) /* glibc's maximum on 64-bit */
#define ABSL_DEADLOCK_MODE \
  "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE"

void ch_process_tune(void) {
  mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE_BYTES);
  mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES);
  union {
    void *p;
    void (*fn)(int);
  } set_mode = {.p = dlsym(RTLD_DEFAULT, ABSL_DEADLOCK_MODE)};
  if (set_mode.p) set_mode.fn(0); /* absl::OnDeadlockCycle::kIgnore */
}
