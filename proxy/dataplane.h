/* SPDX-License-Identifier: Apache-2.0 */
/* dataplane.h: crihookd's CRI data plane: the HTTP/2 relay (relay/
 * h2relay.h, libuv + nghttp2) on the listen socket, in front of the
 * runtime, the image runtime and the interception stage.
 *
 * Why two stages: nearly every CRI call kubelet makes (Version, the status
 * and list calls, the image calls, exec/attach, the streams) is relayed
 * stream by stream, never decoded: its headers go to the runtime as kubelet
 * sent them, its DATA as it arrives, the runtime's answer and trailers come
 * back as sent. grpc core's call layer, which cost crihookd 2.4x nghttpx's
 * CPU per call (issue 11), is not on that path at all. Only the methods
 * that have a row in the intercept table (dispatcher/intercept_rows.h:
 * RunPodSandbox, CreateContainer, ...) are routed to the interception
 * stage: the grpc core server of server.h, started without a listen socket
 * and reached over a socketpair per client connection (grpc core's
 * add_channel_from_fd), which decodes them, runs the Pre hooks, forwards
 * the changed request to the runtime, records the answer in the store and
 * runs the Post hooks. Those calls are rare (pod and container life cycle)
 * and slow at the runtime (milliseconds), so one more local hop costs them
 * nothing that shows, and the interception keeps the code and the tests it
 * has. The relay still bounds their bytes like any other stream.
 *
 * Threads: `workers` loop threads ("ch-worker-N"), each with its own libuv
 * loop and relay, all accepting on the one listen socket (the kernel hands
 * each connection to one of them); a connection and its streams live on
 * one thread, so the hot path takes no locks. Counters shared with the
 * drain and the metrics are atomics.
 *
 * Per stream: at its end, crihook_cri_calls_total and the live trace get
 * the call (method, grpc-status, latency), except crihookd's own health
 * probe (self_probe.h) and the calls routed to the interception stage,
 * which records them itself with their pod and hook calls.
 *
 * Drain (ch_dataplane_drain, blocking, from any thread): the socket file
 * goes, every relay stops accepting and sends GOAWAY, streaming calls end
 * with UNAVAILABLE ("crihookd is shutting down") at once, other calls may
 * finish until the grace ends (or ch_dataplane_force); then every
 * connection closes, the threads end, and the interception stage is
 * drained (forced: its calls' clients are gone). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "server.h"

typedef struct ch_dataplane ch_dataplane;

typedef struct ch_dataplane_config {
  const char *listen_path;
  const char *backend_path;       /* the runtime's socket */
  const char *image_backend_path; /* the image service's socket (may equal backend_path) */
  int workers;
  size_t max_msg_size;
  int shutdown_grace_ms;
  ch_proxy *hooks; /* the interception stage (not owned); NULL: every call is relayed */
} ch_dataplane_config;

/* Prepares the socket path (listen.h), binds, listens, starts the loops. */
int ch_dataplane_start(const ch_dataplane_config *config, ch_dataplane **out, ch_error *err);

/* Above; returns when everything is closed and the threads have ended. */
void ch_dataplane_drain(ch_dataplane *dp);

/* Thread-safe, during the drain: ends the grace now. */
void ch_dataplane_force(ch_dataplane *dp);

void ch_dataplane_free(ch_dataplane *dp);

/* Client streams open now, over all loops. */
int ch_dataplane_in_flight(const ch_dataplane *dp);
