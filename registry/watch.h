/* SPDX-License-Identifier: Apache-2.0 */
/* watch.h: keeps the registry slot in step with the hook directory.
 *
 * On start it loads the directory and publishes the result; then inotify
 * (on the libuv control loop) reports every change and the directory is read
 * again and published within 100 ms: a file created, rewritten, deleted,
 * renamed in or out, replaced by an atomic rename, and the Kubernetes
 * ConfigMap pattern (files that are symlinks through "..data", swapped all
 * at once by renaming "..data"). A directory that does not exist yet is
 * watched for through its nearest existing ancestor and picked up when it
 * appears; a directory that is removed is treated as empty until it comes
 * back.
 *
 * Each change is logged once: plugins added, removed or changed, and each
 * bad file with its reason (a bad file is not logged again until it
 * changes). A reload that changes nothing publishes nothing. */
#pragma once

#include <uv.h>

#include "error.h"
#include "registry.h"

typedef struct ch_plugin_watch ch_plugin_watch;

int ch_plugin_watch_start(uv_loop_t *loop, const char *dir, ch_registry_slot *slot,
                          ch_plugin_watch **out, ch_error *err);

/* Stops watching; the watch is freed once libuv has closed its handles
 * (run the loop once more after calling this). */
void ch_plugin_watch_stop(ch_plugin_watch *watch);

/* On the loop's thread: reads the directory again now (SIGHUP) and logs
 * the result with `why`, changed or not. */
void ch_plugin_watch_reload_now(ch_plugin_watch *watch, const char *why);

/* Number of reloads that published a new registry (for tests and metrics). */
unsigned long ch_plugin_watch_reloads(const ch_plugin_watch *watch);
