/* SPDX-License-Identifier: Apache-2.0 */
/* server.h: the interception stage as one object: a grpc server with no
 * socket of its own (the relay in front adds connections, dataplane.h),
 * its worker threads, and the graceful drain.
 *
 * Ownership: the proxy takes the backend channel given in the config and
 * destroys it in ch_proxy_drain(). The stage only sees hooked RuntimeService
 * calls, so it has no image-service channel. */
#pragma once

#include <grpc/grpc.h>

#include "error.h"
#include "registry.h"
#include "store.h"

typedef struct ch_proxy ch_proxy;

typedef struct ch_proxy_config {
  grpc_channel *backend; /* taken */
  int max_msg_size;
  int workers;
  ch_registry_slot *registry; /* plugins (not owned) */
  ch_store *store;            /* metadata (not owned); NULL disables interception */
} ch_proxy_config;

/* Destroys the config's channel (for a start that never happened). */
void ch_proxy_config_release(ch_proxy_config *config);

/* Starts the grpc server and the workers. Takes the channel whether it
 * succeeds or not. */
int ch_proxy_start(const ch_proxy_config *config, ch_proxy **out, ch_error *err);

/* Ends the stage at once, once the relay in front has drained (its calls'
 * clients are gone): refuses new calls, cancels every call and hook call,
 * closes every connection, stops the workers. Blocks until that is done;
 * nothing in it waits for a peer. */
void ch_proxy_drain(ch_proxy *proxy);

/* Frees a drained proxy. */
void ch_proxy_free(ch_proxy *proxy);

/* Serves one more connection on `fd` (taken; closed if the proxy drains):
 * the relay's way into the interception stage (dataplane.h). Thread-safe. */
int ch_proxy_add_fd(ch_proxy *proxy, int fd);
