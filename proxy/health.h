/* health.h: is crihookd ready, and what is it talking to.
 *
 * Lives on the control loop (libuv) and answers for /healthz, /status and
 * the backend metrics:
 * - ready = the backend answers a CRI Version call now (probed on demand,
 *   on libuv's thread pool, with a fresh connection) and the store has been
 *   rebuilt from it;
 * - a store rebuild that failed at start is retried every 2 s while calls
 *   are served, adding only what the store lacks (ch_store_fill_missing);
 * - when the backend connection comes back after it was lost, the store is
 *   re-synced with the runtime (ch_store_resync: what it lacks is added,
 *   what the runtime no longer has is dropped);
 * - the data plane's backend channel is polled every 200 ms: whether it is
 *   connected, and how many times it has (re)connected; polling also asks
 *   an idle channel to connect, so the first call after a runtime restart
 *   does not pay for the handshake.
 * Everything here runs on the loop's thread, except the probe's and the
 * rebuild's blocking calls, which run on the thread pool. */
#pragma once

#include <grpc/grpc.h>
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
} ch_backend_info;

/* What /status and /healthz report, filled by a probe. */
typedef struct ch_health_report {
  ch_probe_result probe; /* the Version call just made */
  bool store_rebuilt;
  bool connected;    /* the data plane's channel is READY */
  uint64_t connects; /* times that channel became READY */
  double uptime_s;
} ch_health_report;

/* `store` is not owned. The backend channel is attached later (it belongs to
 * the data plane). */
ch_health *ch_health_new(uv_loop_t *loop, const ch_backend_info *info, ch_store *store);

const ch_backend_info *ch_health_backend(const ch_health *health);

/* The result of the start-up rebuild; if false, starts the retry timer
 * (which needs the channel from ch_health_attach). */
void ch_health_set_store_rebuilt(ch_health *health, bool rebuilt);

/* Starts polling `backend` (not owned: stop before it is destroyed). */
void ch_health_attach(ch_health *health, grpc_channel *backend);

/* Probes the backend on the thread pool and calls done(ctx, report) on the
 * loop's thread. */
int ch_health_probe(ch_health *health, void (*done)(void *ctx, const ch_health_report *report),
                    void *ctx);

/* For /metrics, without probing. */
bool ch_health_connected(const ch_health *health);
uint64_t ch_health_connects(const ch_health *health);
bool ch_health_store_rebuilt(const ch_health *health);

/* Stops the timers (before the channel goes away, at drain). */
void ch_health_stop(ch_health *health);

/* Frees once the loop has closed the timers (call after ch_health_stop and
 * a turn of the loop; probes in flight keep it alive until they end). */
void ch_health_free(ch_health *health);
