/* SPDX-License-Identifier: Apache-2.0 */
/* stats.h: per-plugin call counters and last error, kept across registry
 * reloads (keyed by plugin name), for `crihookctl plugins`.
 * Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct ch_plugin_stats {
  uint64_t calls;
  uint64_t failures;
  char last_error[256];    /* "" if none yet */
  int64_t last_error_unix; /* seconds */
} ch_plugin_stats;

/* One hook call attempt; called by ch_observe_hook (outcome.h) only, so
 * that the stats count what the metrics and the trace count. */
void ch_plugin_stats_record(const char *plugin, bool ok, const char *error);

/* Copies the plugin's counters; all zero if it was never called. */
void ch_plugin_stats_get(const char *plugin, ch_plugin_stats *out);

/* Frees everything (at exit). */
void ch_plugin_stats_reset(void);
