/* SPDX-License-Identifier: Apache-2.0 */
/* watch_log.h: the watcher's log lines, one per change (internal to
 * plugins/, used by watch.c only).
 *
 * Plugins are compared between the published generations: added, removed,
 * changed. Bad files are compared against what was already reported, keyed
 * by (file, reason, mtime, size), so a bad file is logged when it appears or
 * is rewritten, never again on a reload caused by another file, and once
 * more ("accepted") when it is fixed. */
#pragma once

#include <stddef.h>

#include "registry.h"

typedef struct ch_reported_files {
  ch_plugin_file_error *errors; /* owned */
  size_t count;
} ch_reported_files;

/* Logs each plugin added, removed or changed from `old` to `now`. */
void ch_watch_log_plugins(const ch_registry *old, const ch_registry *now);

/* Logs each bad file of `now` not reported before in the same state, and
 * each reported file that now registers a plugin; then remembers `now`'s
 * bad files. */
void ch_watch_log_files(ch_reported_files *reported, const ch_registry *now);

void ch_reported_files_clear(ch_reported_files *reported);
