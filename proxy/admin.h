/* admin.h: crihookd's admin socket, read by crihookctl.
 *
 * A unix socket (default /run/crihook/admin.sock, mode 0600) that speaks
 * just enough HTTP/1.0 for `curl --unix-socket` and crihookctl: one GET per
 * connection, a JSON answer, then close.
 *   GET /plugins           the registry: every plugin with its file, endpoint,
 *                          policy, hooks, order, timeout, call counters and
 *                          last error; and the files that were rejected
 *   GET /store/pods        the store's pods
 *   GET /store/containers  the store's containers
 *   GET /metrics           Prometheus text format (dispatcher/metrics.h)
 * It runs on the control loop (libuv), never on the data plane. */
#pragma once

#include <uv.h>

#include "endpoint.h"
#include "error.h"
#include "registry.h"
#include "server.h"
#include "store.h"

typedef struct ch_admin ch_admin;

int ch_admin_start(uv_loop_t *loop, const ch_endpoint *endpoint, ch_registry_slot *registry,
                   ch_store *store, ch_admin **out, ch_error *err);

/* Lets /metrics report the data plane's calls in flight. */
void ch_admin_attach_proxy(ch_admin *admin, ch_proxy *proxy);

/* Closes the socket and removes its file; freed once the loop has run. */
void ch_admin_stop(ch_admin *admin);
