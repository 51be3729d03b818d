/* SPDX-License-Identifier: Apache-2.0 */
/* fdlimit.c: see fdlimit.h. */
#include "fdlimit.h"

#include <errno.h>
#include <sys/resource.h>

#include "log.h"

int ch_raise_fd_limit(ch_error *err) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return ch_fail_errno(err, errno, "getrlimit NOFILE");
  rlim_t was = rl.rlim_cur;
  if (rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      return ch_fail_errno(err, errno, "raise the open-file limit from %llu to %llu",
                           (unsigned long long)was, (unsigned long long)rl.rlim_max);
  }
  ch_info("fdlimit", "open-file limit soft=%llu hard=%llu (soft was %llu)",
          (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
          (unsigned long long)was);
  return 0;
}
