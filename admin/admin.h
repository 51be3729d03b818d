/* SPDX-License-Identifier: Apache-2.0 */
/* admin.h: crihookd's admin endpoints, read by crihookctl, curl and
 * Prometheus.
 *
 * The admin socket (default /run/crihook/admin.sock, mode 0600) speaks just
 * enough HTTP/1.0 for `curl --unix-socket` and crihookctl: one GET per
 * connection, an answer, then close.
 *   GET /plugins           the registry: every plugin with its file, endpoint,
 *                          policy, hooks, order, timeout, call counters and
 *                          last error; and the files that were rejected
 *   GET /store/pods        the store's pods
 *   GET /store/containers  the store's containers
 *   GET /metrics           Prometheus text format (observe/metrics.h)
 *   GET /healthz           200 when ready (a Version call through the listen
 *                          socket and one to the backend succeed now, and the
 *                          store is rebuilt; health.h), else 503 with the
 *                          reason; JSON
 *   GET /status            what `crihookctl status` shows (admin_docs.h)
 *   GET /trace?method=RE&pod=NAME
 *                          the live call trace, one JSON line per call, for
 *                          as long as the client stays (admin_trace.h)
 * With --metrics-address, a TCP listener serves the same HTTP but only
 * /metrics and /healthz (the rest describes the node's pods: kept to root).
 * It runs on the control loop (libuv), never on the data plane. Bounds
 * (admin.c): 64 connections at once, 10 s each, 4 KiB request line. */
#pragma once

#include <uv.h>

#include "dataplane.h"
#include "endpoint.h"
#include "error.h"
#include "health.h"
#include "registry.h"
#include "store.h"

typedef struct ch_admin ch_admin;

typedef struct ch_admin_config {
  ch_registry_slot *registry; /* not owned */
  ch_store *store;            /* not owned */
  ch_health *health;          /* not owned */
  const char *listen;         /* the CRI socket's path, for /status */
} ch_admin_config;

int ch_admin_start(uv_loop_t *loop, const ch_endpoint *endpoint, const ch_admin_config *config,
                   ch_admin **out, ch_error *err);

/* Adds the TCP listener of --metrics-address (host "" = every address). */
int ch_admin_listen_tcp(ch_admin *admin, const char *host, int port, ch_error *err);

/* Lets /metrics and /status report the data plane's calls in flight. */
void ch_admin_attach_proxy(ch_admin *admin, ch_dataplane *proxy);

/* Closes the listeners and every open connection (a /trace stream is
 * ended by ch_trace_shutdown) and removes the socket file; freed once the loop
 * has run. */
void ch_admin_stop(ch_admin *admin);
