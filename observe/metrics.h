/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h: crihookd's counters and latency histograms, rendered in the
 * Prometheus text format for GET /metrics on the admin socket.
 *
 *   crihook_cri_calls_total{method,code}           every call through the proxy
 *   crihook_cri_call_duration_seconds{method}      histogram, accept to teardown
 *   crihook_hook_calls_total{plugin,hook,result}   result: ok | error | timeout
 *                                                  | bad_answer (outcome.h)
 *   crihook_hook_call_duration_seconds{plugin,hook} histogram
 *   crihook_hook_rejections_total{plugin,hook}     Fail-policy rejections
 *   crihook_undecodable_requests_total{method}     hooked requests that did not decode
 *   crihook_plugins, crihook_plugin_files_rejected, crihook_registry_generation
 *   crihook_store_pods, crihook_store_containers, crihook_calls_in_flight
 *   crihook_backend_connected, crihook_backend_connects_total,
 *   crihook_store_rebuilt, crihook_log_dropped_total (log.h)
 * The gauges are gathered by whoever serves /metrics (admin/admin.c) and
 * passed in: observe/ reads nothing of the registry or the store.
 *
 * `--metrics off` turns recording into a no-op (the gauges stay).
 * Recording a CRI call takes no lock and no allocation after a series'
 * first use on that thread (per-thread shards, summed by the scrape:
 * metrics.c); a hook call takes one mutex. Methods not in the CRI method
 * table share method="unknown", and at most CH_METRICS_MAX_SERIES method
 * series are made, over all threads (further names count under "other"), so a client
 * inventing names cannot grow memory or the scrape. Hook series of plugins
 * not among the gauges' `plugin_names` are dropped when rendered. Label
 * values are escaped per the exposition format (a '\\', '"' or newline in
 * a plugin's name cannot forge a series), invalid UTF-8 replaced. */
#pragma once

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outcome.h"

#define CH_METRICS_MAX_SERIES 256

/* Recording is on unless switched off (before serving starts). */
void ch_metrics_enable(bool on);

/* `known`: the method is in the CRI method table (proxy/methods.h); all
 * others count under method="unknown". */
void ch_metrics_cri_call(const char *method, size_t len, bool known, grpc_status_code code,
                         double seconds);

/* One hook call attempt; called by ch_observe_hook (outcome.h) only, so
 * that the metrics, the stats and the trace record the same value. `hook`
 * is a static string. */
void ch_metrics_hook_call(const char *plugin, const char *hook, ch_hook_result result,
                          bool rejected, double seconds);

/* A hooked request that did not decode (intercept.c); `method` is one of
 * the few hooked method names (a static string), so the series is bounded. */
void ch_metrics_undecodable(const char *method);

/* The gauges, gathered by the caller of ch_metrics_render from the
 * registry, the store, the data plane, health.h and log.h. */
typedef struct ch_metrics_gauges {
  uint64_t plugins; /* crihook_plugins */
  uint64_t plugin_files_rejected;
  uint64_t registry_generation;
  uint64_t store_pods, store_containers;
  int in_flight;
  bool backend_connected;
  uint64_t backend_connects;
  uint64_t log_dropped;
  bool store_rebuilt;
  /* The registered plugins' names: hook series of any other are dropped. */
  const char *const *plugin_names;
  size_t plugin_count;
} ch_metrics_gauges;

/* The whole exposition, malloc'd (caller frees); NULL if out of memory. */
char *ch_metrics_render(const ch_metrics_gauges *gauges);

/* Frees every series (at exit, or between tests): only while no thread
 * records. */
void ch_metrics_reset(void);
