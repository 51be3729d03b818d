/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pause.c — the sandbox ("pause") process of the test pause image.
 *
 * tests/harness/images.sh compiles this file with `cc -static -O2` and puts
 * the binary at /pause in the image localhost/crihook/pause:test, which the
 * private test containerd (tests/harness/containerd.sh) uses as its
 * sandbox_image. It does what the upstream Kubernetes pause does:
 *
 *   - sleeps until SIGTERM or SIGINT, then exits 0;
 *   - as PID 1 of a pod's PID namespace it reaps every child that gets
 *     re-parented to it (SIGCHLD -> waitpid(-1, WNOHANG) loop);
 *   - `pause -v` prints a version line and exits 0.
 *
 * It has no dependencies beyond libc so that the static build stays small.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction & co. even under -std=c17 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int signo) {
  (void)signo;
  stop_requested = 1;
}

static void on_child(int signo) {
  int saved_errno = errno;

  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  errno = saved_errno;
}

static int install_handler(int signo, void (*handler)(int)) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | (signo == SIGCHLD ? SA_NOCLDSTOP : 0);
  return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("crihook test pause 1.0\n");
    return 0;
  }
  if (getpid() != 1) fprintf(stderr, "pause: warning: not running as PID 1\n");

  /*
   * Block the signals we handle and wait for them with sigsuspend(), so a
   * SIGTERM that arrives between the test of stop_requested and the wait
   * is not lost.
   */
  sigset_t handled, waiting;

  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &handled, &waiting) < 0) {
    perror("pause: sigprocmask");
    return 1;
  }
  sigdelset(&waiting, SIGTERM);
  sigdelset(&waiting, SIGINT);
  sigdelset(&waiting, SIGCHLD);

  if (install_handler(SIGTERM, on_stop) < 0 || install_handler(SIGINT, on_stop) < 0 ||
      install_handler(SIGCHLD, on_child) < 0) {
    perror("pause: sigaction");
    return 1;
  }

  while (!stop_requested) sigsuspend(&waiting);

  /* Reap whatever is left before going away. */
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  return 0;
}
