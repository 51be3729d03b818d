/* SPDX-License-Identifier: Apache-2.0 */
/* dataplane.h: crihookd's CRI data plane: the HTTP/2 relay (relay/
 * h2relay.h, libuv + nghttp2) on the listen socket, in front of the
 * runtime and the image runtime, with the hooked calls handled in the same
 * loops (hooked.h).
 *
 * Every CRI call kubelet makes is relayed stream by stream: its headers go
 * to the runtime as kubelet sent them, its DATA as it arrives, the
 * runtime's answer and trailers come back as sent. Nearly all of them
 * (Version, the status and list calls, the image calls, exec/attach, the
 * streams) are never decoded. The methods that have a row in the intercept
 * table (dispatcher/intercept_rows.h: RunPodSandbox, CreateContainer, ...)
 * are intercepted (h2relay.h Interception): their request is held whole,
 * decoded, shown to the Pre hooks and re-encoded only if one changed it;
 * their answer is held whole, recorded in the store, then relayed as sent;
 * the Post hooks follow. Hook calls go to the plugins with crihook's own
 * gRPC client on the loop's connections (rpc/rpc_pool.h): nothing here uses
 * grpc core.
 *
 * Threads: `workers` loop threads ("ch-worker-N"), each with its own libuv
 * loop, relay and plugin connections, all accepting on the one listen
 * socket (the kernel hands each connection to one of them); a connection,
 * its streams and its hooked calls live on one thread, so the hot path
 * takes no locks. Counters shared with the drain and the metrics are
 * atomics.
 *
 * Per stream: at its end, crihook_cri_calls_total and the live trace get
 * the call (method, grpc-status, latency), except crihookd's own health
 * probe (self_probe.h); a hooked call is counted once its Post hooks are
 * done, and its trace event names its pod, container and hook calls.
 *
 * Drain (ch_dataplane_drain, blocking, from any thread): the socket file
 * goes, every relay stops accepting and sends GOAWAY, streaming calls end
 * with UNAVAILABLE ("crihookd is shutting down") at once, other calls may
 * finish until the grace ends (or ch_dataplane_force); then each loop
 * cancels its hook calls (a hooked call still in its Pre hooks is refused
 * UNAVAILABLE, never forwarded past a plugin that did not answer), every
 * connection closes, and the threads end. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "registry.h"
#include "store.h"

typedef struct ch_dataplane ch_dataplane;

typedef struct ch_dataplane_config {
  const char *listen_path;
  const char *backend_path;       /* the runtime's socket */
  const char *image_backend_path; /* the image service's socket (may equal backend_path) */
  int workers;
  bool verbatim; /* the relay's verbatim engine (h2relay.h), where it applies */
  size_t max_msg_size;
  int shutdown_grace_ms;
  /* The hooked calls' plugins and store (not owned); NULL registry or
   * store: every call is relayed untouched. */
  ch_registry_slot *registry;
  ch_store *store;
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
