/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_fuzz.h: the relay as crihookd configures it (proxy/dataplane.c),
 * started on a fuzz target's loop; shared by fuzz_h2relay.c (client side)
 * and fuzz_h2relay_backend.c (backend side), so both fuzz the same
 * configuration. The message bound is small so that inputs reach it; the
 * stream-end report is read whole (ASan sees a stale pointer there);
 * streams whose path ends in "Stream" are streams for the drain; streams
 * whose path ends in "Hook" are intercepted (h2relay.h Interception) by a
 * scripted owner: a request message starting with 'R' is refused, any
 * other is forwarded with one byte more; a trap if the seam's contract
 * breaks (a callback for a stream not intercepted, an answer shown twice,
 * call data that does not come back at the end). Held bodies and answers
 * are bounded small so that inputs reach the bound. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "h2relay.h"

#ifndef H2R_FUZZ_VERBATIM
#define H2R_FUZZ_VERBATIM 0
#endif

static volatile size_t h2r_fuzz_sink;

/* The owner's state of an intercepted call (h2r_call_set_data). */
typedef struct h2r_fuzz_call {
  unsigned magic;
  int answers;
} h2r_fuzz_call;

#define H2R_FUZZ_MAGIC 0x5eedca11u
#define H2R_FUZZ_HOOK 0x10000u /* tag bit: route() intercepted the stream */

static int h2r_fuzz_route(void *ud, const char *path, size_t len, h2r_route_out *out) {
  (void)ud;
  out->streaming = len >= 6 && memcmp(path + len - 6, "Stream", 6) == 0;
  out->intercept = len >= 4 && memcmp(path + len - 4, "Hook", 4) == 0;
  out->tag = (unsigned)len | (out->intercept ? H2R_FUZZ_HOOK : 0);
  return 0;
}

static void h2r_fuzz_request(void *ud, h2r_call *call, const uint8_t *body, size_t len) {
  (void)ud;
  if (h2r_call_data(call)) __builtin_trap(); /* shown twice */
  h2r_fuzz_call *fc = calloc(1, sizeof *fc);
  if (!fc) abort();
  fc->magic = H2R_FUZZ_MAGIC;
  h2r_call_set_data(call, fc);
  if (len > 5 && body[5] == 'R') {
    h2r_call_refuse(call, 9, "refused");
    return;
  }
  uint8_t *more = malloc(len + 1);
  if (!more) abort();
  if (len) memcpy(more, body, len);
  more[len] = 'x';
  if (h2r_call_forward(call, more, len + 1) != 0 && h2r_call_forward(call, NULL, 0) == 0)
    __builtin_trap(); /* a call that refused one forward took the next */
  free(more);
}

static void h2r_fuzz_answer(void *ud, h2r_call *call, const h2r_answer *a) {
  (void)ud;
  h2r_fuzz_call *fc = h2r_call_data(call);
  if (!fc || fc->magic != H2R_FUZZ_MAGIC || fc->answers++) __builtin_trap();
  size_t sum = a->len + (size_t)a->grpc_status;
  for (size_t i = 0; i < a->len; i++) sum += a->body[i];
  h2r_fuzz_sink = sum;
}

static void h2r_fuzz_stream_end(void *ud, const h2r_stream_end *e) {
  (void)ud;
  h2r_fuzz_call *fc = e->call_data;
  if (fc && (fc->magic != H2R_FUZZ_MAGIC || !(e->tag & H2R_FUZZ_HOOK))) __builtin_trap();
  free(fc);
  if ((e->tag & ~H2R_FUZZ_HOOK) != (unsigned)e->path_len) __builtin_trap(); /* route()'s tag */
  size_t sum = e->path_len + (size_t)e->grpc_status;
  for (size_t i = 0; i < e->path_len; i++) sum += (unsigned char)e->path[i];
  for (size_t i = 0; e->grpc_message && i < e->grpc_message_len; i++)
    sum += (unsigned char)e->grpc_message[i];
  h2r_fuzz_sink = sum;
}

/* Starts the relay on `loop` or aborts, naming `target`; the relay. */
static inline h2r *h2r_fuzz_start(uv_loop_t *loop, const char *target, const char *listen_path,
                                  const char *backend_path) {
  h2r_config cfg = {.listen_path = listen_path,
                    .backend_path = backend_path,
                    .route = h2r_fuzz_route,
                    .on_stream_end = h2r_fuzz_stream_end,
                    .on_request = h2r_fuzz_request,
                    .on_answer = h2r_fuzz_answer,
                    .max_held_bytes = 96 * 1024,
                    .self_probe_header = "x-crihook-self-probe",
                    .max_msg_size = 64 * 1024,
                    .verbatim = H2R_FUZZ_VERBATIM};
  h2r *r;
  ch_error err;
  if (h2r_start(loop, &cfg, &r, &err) != 0) {
    fprintf(stderr, "%s: %s\n", target, err.msg);
    abort();
  }
  return r;
}

/* For a target that plays the backend too: the relay is started on `loop`
 * listening on PREFIX-PID.sock (its address in *relay_addr), with its
 * backend at PREFIX-PID.backend (the path in backend_path, of `size`
 * bytes), where the target listens: the non-blocking listening descriptor
 * is returned. Aborts on failure. */
static inline int h2r_fuzz_start_with_backend(uv_loop_t *loop, const char *target,
                                              const char *prefix, struct sockaddr_un *relay_addr,
                                              char *backend_path, size_t size) {
  static char listen_path[100];
  snprintf(listen_path, sizeof listen_path, "%s-%d.sock", prefix, getpid());
  snprintf(backend_path, size, "%s-%d.backend", prefix, getpid());
  struct sockaddr_un baddr = {.sun_family = AF_UNIX};
  memcpy(baddr.sun_path, backend_path, strlen(backend_path) + 1);
  unlink(backend_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&baddr, sizeof baddr) != 0 || listen(fd, 8) != 0)
    abort();
  uv_loop_init(loop);
  h2r_fuzz_start(loop, target, listen_path, backend_path);
  relay_addr->sun_family = AF_UNIX;
  memcpy(relay_addr->sun_path, listen_path, strlen(listen_path) + 1);
  return fd;
}
