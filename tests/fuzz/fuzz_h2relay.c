/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_h2relay.c: libFuzzer target for relay/'s HTTP/2 frame and header
 * handling on the client side (relay/h2relay_stream.c's server session
 * callbacks, stream life, flow-control accounting, the UNAVAILABLE answer).
 *
 * Input: the bytes a client sends after the connection preface (the
 * preface is added, so inputs reach the frame layer). One relay per process
 * listens on a socket in /tmp; its backend socket does not exist, so every
 * stream that gets that far is answered UNAVAILABLE by the relay itself.
 * Each input is one connection: written, half-closed, and run on the loop
 * until the relay closes it (it does on the client's EOF); the loop then
 * runs the close callbacks, so a leaked stream or connection is reported by
 * the leak checker. The seeds in corpus/h2relay/ are small conversations
 * (unary call, two streams with grpc-timeout and user-agent, RST_STREAM
 * mid-request, WINDOW_UPDATE and PING, request trailers, SETTINGS and
 * GOAWAY, bodyless requests), written with tests/e2e/harness.py's
 * h2_frame() and grpc_headers(). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "h2relay_fuzz.h"

static uv_loop_t loop;
static struct sockaddr_un addr;

static void remove_socket(void) { unlink(addr.sun_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  static char listen_path[100], backend_path[100];
  signal(SIGPIPE, SIG_IGN);
  snprintf(listen_path, sizeof listen_path, "/tmp/crihook-fuzz-h2relay-%d.sock", getpid());
  snprintf(backend_path, sizeof backend_path, "/tmp/crihook-fuzz-h2relay-%d.none", getpid());
  uv_loop_init(&loop);
  h2r_fuzz_start(&loop, "fuzz_h2relay", listen_path, backend_path);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, listen_path, strlen(listen_path) + 1);
  atexit(remove_socket);
  return 0;
}

/* Runs the loop until the relay closed the connection (EOF on fd). */
static void run_until_closed(int fd) {
  char buf[65536];
  for (int i = 0; i < 2000; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return;
    if (n < 0) poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 1);
  }
  fprintf(stderr, "fuzz_h2relay: the relay did not close the connection after EOF\n");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (size > 32768) return 0; /* stays within the socket buffer: no blocking */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) abort();
  if (write(fd, preface, sizeof preface - 1) != (ssize_t)(sizeof preface - 1)) abort();
  if (size && write(fd, data, size) != (ssize_t)size) abort();
  shutdown(fd, SHUT_WR);
  run_until_closed(fd);
  close(fd);
  for (int i = 0; i < 4; i++) uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}
