/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_h2relay_backend.c: libFuzzer target for relay/'s BACKEND side: the
 * relay's nghttp2 client session reading what a backend sends
 * (relay/h2relay_stream.c's b_* callbacks, response headers and trailers
 * relayed to the client, trailers-only answers, RST_STREAM codes passed on,
 * the backend's flow-control credit, a backend lost mid-answer) and
 * h2relay.c's backend connection life. fuzz_h2relay.c covers the client
 * side.
 *
 * Input: the bytes the backend sends after its first SETTINGS frame (that
 * frame is added, so inputs reach the frame layer). One relay per process;
 * its backend socket is a listener of this process. Each input is one
 * client connection carrying two calls (streams 1 and 3; the relay opens
 * them as backend streams 1 and 3, which the seeds answer; stream 3 is
 * intercepted, so its answer is held whole and shown to the owner before
 * the client gets it): the relay
 * connects to the backend, the input is written there and the backend
 * half-closes; the loop runs until the relay has closed the backend
 * connection (it does on the backend's EOF, or before on a protocol error),
 * then the client half-closes and the loop runs until the relay closed the
 * client connection too. What the relay writes to either side is read and
 * dropped. The loop then runs the close callbacks, so a leaked stream or
 * connection is reported by the leak checker, and a relay that never closes
 * either connection aborts the run. The seeds in corpus/h2relay_backend/
 * (tests/fuzz/make_seeds.py) are backend answers: unary with headers, DATA
 * and trailers, trailers-only, RST_STREAM, GOAWAY, CONTINUATION, padded
 * DATA, WINDOW_UPDATE/PING/SETTINGS, a PUSH_PROMISE the relay refused.
 *
 * Built twice (tests/fuzz/meson.build): as h2relay_backend for the
 * terminating engine, and with -DH2R_FUZZ_VERBATIM=1 as h2verbatim_backend
 * for the verbatim engine (relay/h2verbatim.c: the backend's frames passed
 * through to the client, its header blocks read by an HPACK decoder that
 * must stay without a dynamic table, intercepted answers held, its
 * connection credit translated, its GOAWAY and SETTINGS rewritten). That
 * engine connects the backend as the client connects and passes the
 * client's own preface, SETTINGS and two calls through (stream 3's body one
 * byte longer, from the scripted owner); the input is written only once
 * those have reached the backend, so that it answers streams the relay
 * knows (not a race between the two sockets). Its seeds are
 * corpus/h2verbatim_backend/: those of h2relay_backend and a few of the
 * verbatim engine's own (make_seeds.py). */
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

#if H2R_FUZZ_VERBATIM
#define TARGET "fuzz_h2verbatim_backend"
#define SOCK_PREFIX "/tmp/crihook-fuzz-h2vb"
#else
#define TARGET "fuzz_h2relay_backend"
#define SOCK_PREFIX "/tmp/crihook-fuzz-h2rb"
#endif

static uv_loop_t loop;
static struct sockaddr_un relay_addr;
static char backend_path[100];
static int backend_listener = -1;
static uint8_t request[1024]; /* the client's preface and two calls */
static size_t request_len;

static void remove_sockets(void) {
  unlink(relay_addr.sun_path);
  unlink(backend_path);
}

/* ---- the client's bytes (built once) ---- */

static void put(const void *p, size_t n) {
  if (request_len + n > sizeof request) abort();
  if (n) memcpy(request + request_len, p, n);
  request_len += n;
}

static void put_frame(uint8_t type, uint8_t flags, uint32_t sid, const uint8_t *p, size_t n) {
  uint8_t hd[9] = {
      (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
      (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
  put(hd, sizeof hd);
  put(p, n);
}

/* HPACK literal header field without indexing, new name (RFC 7541 6.2.2). */
static size_t hpack_literal(uint8_t *out, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  out[0] = 0;
  out[1] = (uint8_t)nl;
  memcpy(out + 2, name, nl);
  out[2 + nl] = (uint8_t)vl;
  memcpy(out + 3 + nl, value, vl);
  return 3 + nl + vl;
}

static void put_call(uint32_t sid, const char *path) {
  const char *const h[][2] = {{":method", "POST"},
                              {":scheme", "http"},
                              {":path", path},
                              {":authority", "localhost"},
                              {"content-type", "application/grpc"},
                              {"te", "trailers"}};
  uint8_t block[256];
  size_t n = 0;
  for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
    n += hpack_literal(block + n, h[i][0], h[i][1]);
  put_frame(1 /* HEADERS */, 0x4 /* END_HEADERS */, sid, block, n);
  static const uint8_t msg[] = {0, 0, 0, 0, 3, 'r', 'e', 'q'};
  put_frame(0 /* DATA */, 0x1 /* END_STREAM */, sid, msg, sizeof msg);
}

static void build_request(void) {
  static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  put(magic, sizeof magic - 1);
  put_frame(4 /* SETTINGS */, 0, 0, NULL, 0);
  put_call(1, "/fuzz.Svc/Call");
  put_call(3, "/fuzz.Svc/CallHook"); /* intercepted: its answer is held (h2relay_fuzz.h) */
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  backend_listener = h2r_fuzz_start_with_backend(&loop, TARGET, SOCK_PREFIX, &relay_addr,
                                                 backend_path, sizeof backend_path);
  atexit(remove_sockets);
  build_request();
  return 0;
}

/* ---- one input ---- */

/* Reads and drops what is there; true once the peer closed fd. */
static bool drained_to_eof(int fd) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) continue;
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }
}

static void step(int a, int b) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  poll(p, b < 0 ? 1 : 2, 1);
}

/* Runs the loop until the relay connected to the backend; its socket. */
static int backend_accept(int cfd) {
  for (int i = 0; i < 2000; i++) {
    int bfd = accept4(backend_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (bfd >= 0) return bfd;
    drained_to_eof(cfd);
    step(cfd, -1);
  }
  fprintf(stderr, TARGET ": the relay never connected to the backend\n");
  abort();
}

/* Runs the loop, reading both sides, until the relay closed `until`. */
static void run_until_closed(int until, int other, const char *what) {
  for (int i = 0; i < 4000; i++) {
    if (other >= 0) drained_to_eof(other);
    if (drained_to_eof(until)) return;
    step(until, other);
  }
  fprintf(stderr, TARGET ": the relay did not close the %s connection\n", what);
  abort();
}

#if H2R_FUZZ_VERBATIM
/* Runs the loop, reading both sides, until the backend has got at least
 * the client's bytes (the verbatim engine passes them through) and the
 * relay has nothing more to write there. */
static void await_request(int bfd, int cfd) {
  size_t got = 0;
  int idle = 0;
  uint8_t buf[65536];
  for (int i = 0; i < 4000; i++) {
    drained_to_eof(cfd);
    ssize_t n = read(bfd, buf, sizeof buf);
    if (n > 0) {
      got += (size_t)n, idle = 0;
      continue;
    }
    if (n == 0) break; /* the relay closed the backend connection */
    if (got < request_len) {
      step(bfd, cfd);
      continue;
    }
    if (++idle > 3) return;
    uv_run(&loop, UV_RUN_NOWAIT); /* no wait: the relay runs only in there */
  }
  fprintf(stderr, TARGET ": the client's %zu bytes never reached the backend (%zu did)\n",
          request_len, got);
  abort();
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  if (size > 32768) return 0; /* stays within the socket buffer: no blocking */
  int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (cfd < 0 || connect(cfd, (struct sockaddr *)&relay_addr, sizeof relay_addr) != 0) abort();
  if (write(cfd, request, request_len) != (ssize_t)request_len) abort();
  int bfd = backend_accept(cfd);
  if (write(bfd, settings, sizeof settings) != (ssize_t)sizeof settings) abort();
#if H2R_FUZZ_VERBATIM
  await_request(bfd, cfd);
#endif
  if (size && write(bfd, data, size) != (ssize_t)size) abort();
  shutdown(bfd, SHUT_WR);
  run_until_closed(bfd, cfd, "backend");
  shutdown(cfd, SHUT_WR);
  run_until_closed(cfd, -1, "client");
  close(bfd);
  close(cfd);
  for (int i = 0; i < 4; i++) uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}
