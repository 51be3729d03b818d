/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_fuzz.h: the relay as crihookd configures it (proxy/dataplane.c),
 * started on a fuzz target's loop; shared by fuzz_h2relay.c (client side)
 * and fuzz_h2relay_backend.c (backend side), so both fuzz the same
 * configuration. The message bound is small so that inputs reach it; the
 * stream-end report is read whole (ASan sees a stale pointer there);
 * streams whose path ends in "Stream" are streams for the drain. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "h2relay.h"

static volatile size_t h2r_fuzz_sink;

static int h2r_fuzz_route(void *ud, const char *path, size_t len, h2r_route_out *out) {
  (void)ud;
  out->streaming = len >= 6 && memcmp(path + len - 6, "Stream", 6) == 0;
  out->tag = (unsigned)len;
  return 0;
}

static void h2r_fuzz_stream_end(void *ud, const h2r_stream_end *e) {
  (void)ud;
  if (e->tag != (unsigned)e->path_len) __builtin_trap(); /* route()'s tag came back */
  size_t sum = e->path_len + (size_t)e->grpc_status;
  for (size_t i = 0; i < e->path_len; i++) sum += (unsigned char)e->path[i];
  for (size_t i = 0; e->grpc_message && i < e->grpc_message_len; i++)
    sum += (unsigned char)e->grpc_message[i];
  h2r_fuzz_sink = sum;
}

/* Starts the relay on `loop` or aborts, naming `target`. */
static inline void h2r_fuzz_start(uv_loop_t *loop, const char *target, const char *listen_path,
                                  const char *backend_path) {
  h2r_config cfg = {.listen_path = listen_path,
                    .backend_path = backend_path,
                    .route = h2r_fuzz_route,
                    .on_stream_end = h2r_fuzz_stream_end,
                    .self_probe_header = "x-crihook-self-probe",
                    .max_msg_size = 64 * 1024};
  h2r *r;
  ch_error err;
  if (h2r_start(loop, &cfg, &r, &err) != 0) {
    fprintf(stderr, "%s: %s\n", target, err.msg);
    abort();
  }
}
