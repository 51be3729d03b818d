/* SPDX-License-Identifier: Apache-2.0 */
/* server.h: the interception stage as one object: a grpc server with no
 * socket of its own (the relay in front adds connections, dataplane.h),
 * its worker threads, and the graceful drain.
 *
 * Ownership: the proxy takes the backend channels given in the config and
 * destroys them in ch_proxy_stop(). */
#pragma once

#include <grpc/grpc.h>

#include "error.h"
#include "registry.h"
#include "store.h"

typedef struct ch_proxy ch_proxy;

typedef struct ch_proxy_config {
  grpc_channel *backend;       /* taken */
  grpc_channel *image_backend; /* taken; may equal backend */
  int max_msg_size;
  int workers;
  int shutdown_grace_ms;      /* how long in-flight calls may take to finish */
  ch_registry_slot *registry; /* plugins (not owned) */
  ch_store *store;            /* metadata (not owned); NULL disables interception */
} ch_proxy_config;

/* Destroys the config's channels (for a start that never happened). */
void ch_proxy_config_release(ch_proxy_config *config);

/* Prepares the socket path, binds, starts the workers. Takes the channels
 * whether it succeeds or not. */
int ch_proxy_start(const ch_proxy_config *config, ch_proxy **out, ch_error *err);

/* Removes the socket file, refuses new calls and ends open streams with
 * UNAVAILABLE, lets other in-flight calls finish (bounded by
 * shutdown_grace_ms), then cancels every call and hook call and closes every
 * connection, stops the workers. Blocks until all of that is done, which is
 * shortly after the grace period at the latest. */
void ch_proxy_drain(ch_proxy *proxy);

/* Thread-safe, during ch_proxy_drain: ends the grace period now, so the
 * drain cancels everything at once (a second signal). */
void ch_proxy_force(ch_proxy *proxy);

/* Frees a drained proxy. */
void ch_proxy_free(ch_proxy *proxy);

int ch_proxy_in_flight(const ch_proxy *proxy);

/* Serves one more connection on `fd` (taken; closed if the proxy drains):
 * the relay's way into the interception stage (dataplane.h). Thread-safe. */
int ch_proxy_add_fd(ch_proxy *proxy, int fd);
