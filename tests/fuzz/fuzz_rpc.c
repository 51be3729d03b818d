/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_rpc.c: libFuzzer target for crihook's own gRPC client (rpc/rpc.h)
 * reading what a server sends: rpc_call.c's headers, trailers, gRPC
 * framing, grpc-message decoding and the end of each call, and
 * rpc_conn.c's connection life (GOAWAY, SETTINGS, a server that is not
 * HTTP/2 at all).
 *
 * Input: the bytes the server sends after its first SETTINGS frame (that
 * frame is added, so inputs reach the frame layer). Each input gets a new
 * connection over a socketpair carrying two calls: a unary one (stream 1)
 * and a server-streaming one (stream 3), as the seeds of h2relay_backend
 * answer them (corpus/rpc starts as a copy of them). The input is written,
 * the server half-closes, and the loop runs until both calls have ended;
 * then the connection is closed and the loop runs its close callbacks, so
 * a leaked call is reported by the leak checker.
 *
 * Invariants (a trap if broken): every call ends exactly once, within a
 * bounded number of loop turns after the server's EOF; a unary call that
 * ends OK had exactly one message; no message is over the limit. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "rpc.h"

#define MAX_RECV (64 * 1024)
#define INPUT_LIMIT (96 * 1024) /* under a socketpair's buffer: written at once */

static uv_loop_t loop;

typedef struct call_state {
  int ended;
  int messages;
  bool unary;
} call_state;

static int on_message(void *ud, const uint8_t *msg, size_t len) {
  call_state *s = ud;
  if (len > MAX_RECV) __builtin_trap();
  volatile uint8_t sink = len ? msg[len - 1] : 0;
  (void)sink;
  s->messages++;
  return 0;
}

static void on_end(void *ud, const ch_rpc_result *res) {
  call_state *s = ud;
  if (s->ended++) __builtin_trap(); /* twice */
  if (s->unary && res->status == GRPC_STATUS_OK && s->messages != 1) __builtin_trap();
  if (strnlen(res->message, sizeof res->message) == sizeof res->message) __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  return 0;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
  static const uint8_t settings[9] = {0, 0, 0, 4 /* SETTINGS */, 0, 0, 0, 0, 0};
  if (write(fd, settings, sizeof settings) != (ssize_t)sizeof settings) abort();
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) abort();
    p += w;
    n -= (size_t)w;
  }
  shutdown(fd, SHUT_WR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > INPUT_LIMIT) return 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
  ch_rpc_conn *conn;
  ch_error err;
  ch_rpc_opts opts = {.max_recv = MAX_RECV};
  if (ch_rpc_conn_open_fd(&loop, sv[0], &opts, &conn, &err) != 0) abort();
  call_state unary = {.unary = true}, streaming = {0};
  ch_rpc_call_ops ops = {.on_message = on_message, .on_end = on_end};
  ch_rpc_request req = {
      .path = "/fuzz.Svc/Call", .message = (const uint8_t *)"req", .len = 3, .unary = true};
  if (!ch_rpc_call_start(conn, &req, &ops, &unary, &err)) abort();
  req.unary = false;
  if (!ch_rpc_call_start(conn, &req, &ops, &streaming, &err)) abort();
  write_all(sv[1], data, size);
  for (int turns = 0; !(unary.ended && streaming.ended); turns++) {
    if (turns > 10000) __builtin_trap(); /* a call that never ends */
    uv_run(&loop, UV_RUN_ONCE);
  }
  ch_rpc_conn_close(conn);
  uv_run(&loop, UV_RUN_DEFAULT);
  close(sv[1]);
  return 0;
}
