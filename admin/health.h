/* SPDX-License-Identifier: Apache-2.0 */
/* health.h: is crihookd ready, and what is it talking to.
 *
 * Lives on the control loop (libuv) and answers for /healthz, /status and
 * the backend metrics:
 * - ready = a CRI Version call through crihookd's own listen socket
 *   succeeds now (the whole data plane: the relay's accept, a loop, its
 *   backend connection), the backend answers a Version call
 *   directly, and the store has been rebuilt. Both calls are made on
 *   demand on libuv's thread pool, each on a fresh connection with a 1 s
 *   deadline; one probe runs at a time and every request that asks while it
 *   runs gets its report. The call through the listen socket is an
 *   ordinary Version call to the data plane: it is counted in the metrics
 *   and shown by `crihookctl trace` like any other (Version is never
 *   hooked, and the probe never asks the admin loop, so it cannot recurse);
 * - the listener watch repeats that probe every 5 s; when the listen socket
 *   fails 3 probes in a row while it is clearly crihookd's fault, crihookd
 *   starts afresh in the same process (reexec.h) and says why. Clearly: the
 *   backend answered directly, or the probe could not even connect to the
 *   listen socket (no accept, no SETTINGS) while the backend's socket
 *   accepts connections (a stalled grpc poller in crihookd fails the direct
 *   call too). A call that connected but timed out while the backend timed
 *   out as well is a slow backend, not counted;
 * - a store rebuild that failed at start is retried every 2 s while calls
 *   are served, adding only what the store lacks (ch_store_fill_missing);
 * - when the backend connection comes back after it was lost, the store is
 *   re-synced with the runtime (ch_store_resync: what it lacks is added,
 *   what the runtime no longer has is dropped);
 * - crihookd keeps one HTTP/2 connection of its own to the backend (rpc.h)
 *   and polls it every 200 ms: whether it is connected (the backend has
 *   spoken HTTP/2 on it), and how many times it has (re)connected; one
 *   that failed or was lost is opened again at the next poll, so a runtime
 *   restart is seen within a poll or two. (It used to poll the data
 *   plane's grpc core channel; the data plane's own connections come and
 *   go with kubelet's, so a connection of the health's own is the steady
 *   witness, and it needs nothing of grpc core.)
 * Everything here runs on the loop's thread, except the probe's and the
 * rebuild's blocking calls, which run on the thread pool. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "detect.h"
#include "store.h"

typedef struct ch_health ch_health;

typedef struct ch_backend_info {
  char path[256];      /* socket of the CRI backend */
  char chosen_by[320]; /* "flag" or why auto-detection took it */
  char image_path[256];
  ch_probe_result found; /* the start-up probe: api and kind the rebuilds use */
} ch_backend_info;

/* What /status and /healthz report, filled by a probe. */
typedef struct ch_health_report {
  ch_probe_result listener; /* the Version call through the listen socket */
  ch_probe_result probe;    /* the Version call to the backend */
  bool listener_connected;  /* the probe's connection to the listen socket came up */
  bool backend_accepts;     /* the backend's socket accepts a connection */
  bool store_rebuilt;
  bool connected;    /* the poll's connection to the backend is up */
  uint64_t connects; /* times it came up */
  double uptime_s;
} ch_health_report;

/* `store` is not owned. The poll starts with ch_health_attach, once the
 * data plane serves. */
ch_health *ch_health_new(uv_loop_t *loop, const ch_backend_info *info, ch_store *store);

const ch_backend_info *ch_health_backend(const ch_health *health);

/* The result of the start-up rebuild; if false, starts the retry timer. */
void ch_health_set_store_rebuilt(ch_health *health, bool rebuilt);

/* Starts polling the backend's connection. */
void ch_health_attach(ch_health *health);

/* Once the data plane serves on `listen_path`: probes include it, and the
 * listener watch starts. */
void ch_health_watch_listener(ch_health *health, const char *listen_path);

/* Probes the listen socket and the backend on the thread pool (or joins the
 * probe already running) and calls done(ctx, report) on the loop's thread,
 * within about 2 s. */
int ch_health_probe(ch_health *health, void (*done)(void *ctx, const ch_health_report *report),
                    void *ctx);

/* For /metrics, without probing. */
bool ch_health_connected(const ch_health *health);
uint64_t ch_health_connects(const ch_health *health);
bool ch_health_store_rebuilt(const ch_health *health);

/* Stops the timers and closes the poll's connection (at drain). */
void ch_health_stop(ch_health *health);

/* Frees once the loop has closed the timers (call after ch_health_stop and
 * a turn of the loop; probes in flight keep it alive until they end). */
void ch_health_free(ch_health *health);
