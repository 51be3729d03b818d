/* SPDX-License-Identifier: Apache-2.0 */
/* reexec.c: see reexec.h. */
#include "reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define MAX_CMDLINE 65536
#define MAX_ARGS 256

/* Reads our own argv from /proc/self/cmdline into buf; argv points into it. */
static int read_argv(char *buf, size_t size, char **argv, int max) {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t used = 0;
  ssize_t n;
  while (used < size - 1 && (n = read(fd, buf + used, size - 1 - used)) > 0) used += (size_t)n;
  close(fd);
  buf[used] = '\0';
  int argc = 0;
  for (size_t i = 0; i < used && argc < max - 1; i += strlen(buf + i) + 1) argv[argc++] = buf + i;
  argv[argc] = NULL;
  return argc > 0 ? 0 : -1;
}

/* Every descriptor but stdio closes on exec; close_range where the kernel
 * has it, else one by one up to a bound. */
static void cloexec_all(void) {
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);
  for (int fd = 3; fd < max && fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void ch_reexec(const char *reason) {
  static char buf[MAX_CMDLINE];
  static char *argv[MAX_ARGS];
  ch_error_log("reexec", "starting crihookd afresh in this process: %s", reason);
  if (read_argv(buf, sizeof buf, argv, MAX_ARGS) == 0) {
    cloexec_all();
    execv("/proc/self/exe", argv);
    ch_error_log("reexec",
                 "exec /proc/self/exe failed, exiting so that the supervisor restarts "
                 "crihookd: %s",
                 strerror(errno));
  } else {
    ch_error_log("reexec",
                 "cannot read /proc/self/cmdline, exiting so that the supervisor "
                 "restarts crihookd");
  }
  _exit(1);
}
