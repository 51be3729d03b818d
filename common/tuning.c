/* SPDX-License-Identifier: Apache-2.0 */
/* tuning.c: see tuning.h. */
#include "tuning.h"

#include <dlfcn.h>
#include <malloc.h>

#define KEEP_FREED_BYTES (256 * 1024 * 1024)
#define MMAP_ABOVE_BYTES (32 * 1024 * 1024) /* glibc's maximum on 64-bit */

/* Debian 12's abseil, LTS 20220623 (package libabsl20220623), built with
 * the inline namespace `debian3`. Its absl/synchronization/mutex.h says:
 *   enum class OnDeadlockCycle { kIgnore, kReport, kAbort };
 *   void SetMutexDeadlockDetectionMode(OnDeadlockCycle mode);
 * The mangled name pins the function's namespace, name and its one
 * parameter's type (absl::debian3::OnDeadlockCycle, an enum class without a
 * stated base, so passed as an int); the SONAME pins the release, hence the
 * enum's values and the void result. Another abseil (another SONAME or
 * namespace) is left alone. */
#define ABSL_SYNC_SONAME "libabsl_synchronization.so.20220623"
#define ABSL_SET_DEADLOCK_MODE \
  "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE"
#define ABSL_ON_DEADLOCK_CYCLE_IGNORE 0 /* absl::OnDeadlockCycle::kIgnore */

static void absl_deadlock_detection_off(void) {
  /* RTLD_NOLOAD: only the copy grpc already brought in, never a new one */
  void *lib = dlopen(ABSL_SYNC_SONAME, RTLD_NOW | RTLD_NOLOAD);
  if (!lib) return;
  union {
    void *p;
    void (*fn)(int);
  } set_mode = {.p = dlsym(lib, ABSL_SET_DEADLOCK_MODE)};
  if (set_mode.p) set_mode.fn(ABSL_ON_DEADLOCK_CYCLE_IGNORE);
  dlclose(lib); /* drops our reference; grpc's keeps it loaded */
}

void ch_process_tune(void) {
  mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE_BYTES);
  mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES);
  absl_deadlock_detection_off();
}
