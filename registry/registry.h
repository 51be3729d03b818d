/* SPDX-License-Identifier: Apache-2.0 */
/* registry.h: the plugins registered in hookserver.d, as one immutable
 * snapshot, and the slot through which the data plane reads the current one.
 *
 * A registration file is JSON:
 *   { "remote-endpoint": "/run/x.sock" | "unix:///run/x.sock",
 *     "failure-policy": "Fail" | "Ignore",           (missing: Ignore)
 *     "runtime-hooks": ["PreRunPodSandbox", ...],     (names in hooks.h)
 *     "timeout-ms": 2000 }                            (crihook's; default 2000)
 * Files are taken in file-name order (strcmp), which is the call order when
 * several plugins register for one hook: 10-a.json runs before 20-b.json.
 * The order is byte order, not numeric: 9-c.json comes after 20-b.json, so
 * give prefixes the same number of digits.
 * Only names ending in ".json" and not starting with '.' are considered,
 * which also skips a ConfigMap's "..data" machinery; each must be a regular
 * file or a symlink to one (anything else is a bad file), of at most 1 MiB.
 *
 * A bad file registers nothing and is listed in `errors` with the exact
 * reason; every other file is unaffected. A file that vanishes while the
 * directory is read is simply not there; a symlink whose target is missing
 * is a bad file ("broken symlink").
 *
 * A plugin is named, not connected: its endpoint is a socket path, and
 * whoever calls it (each loop of the data plane, through its own
 * connections, rpc/rpc_pool.h) connects to it. A reload that moves a
 * plugin simply names another path.
 *
 * Ownership: a registry is reference-counted. The slot holds one reference;
 * ch_registry_slot_acquire() gives the caller another, which the caller
 * drops with ch_registry_unref(). A registry is never modified after
 * ch_registry_load() returns, so readers need no lock. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "error.h"
#include "hooks.h"

#define CH_PLUGIN_DEFAULT_TIMEOUT_MS 2000

typedef struct ch_plugin {
  char name[128];       /* file name without ".json": "10-qos" */
  char file[512];       /* the path it was read from */
  ch_endpoint endpoint; /* endpoint.path: the hook server's socket */
  bool fail_closed;     /* failure-policy Fail */
  int timeout_ms;
  unsigned hooks; /* bit (1u << ch_hook_point) per registered hook */
  int order;      /* 0-based position in call order */
} ch_plugin;

typedef struct ch_plugin_file_error {
  char file[512];
  char reason[512];
  /* The file as stat(2) saw it when it was read (0 when it could not be):
   * lets the watcher log a bad file again once it is rewritten, even with
   * the same reason. ch_registry_equal() ignores them. */
  int64_t mtime_ns;
  int64_t size;
} ch_plugin_file_error;

typedef struct ch_registry {
  atomic_int refs;
  uint64_t generation;
  size_t count;
  ch_plugin *plugins; /* in call order */
  size_t error_count;
  ch_plugin_file_error *errors;
  size_t hook_count[CH_HOOK_COUNT];
  const ch_plugin **by_hook[CH_HOOK_COUNT]; /* per hook point, in call order */
} ch_registry;

/* Parses one registration file's text. `name` is the file name. */
int ch_plugin_parse(const char *name, const char *text, size_t len, ch_plugin *out, ch_error *err);

/* Reads every registration in `dir` (a missing directory gives an empty
 * registry). `previous` (may be NULL) is the registry this one replaces;
 * nothing of it is needed now (it is kept for callers that pass it). Fails
 * only when the directory exists and cannot be read. */
int ch_registry_load(const char *dir, const ch_registry *previous, ch_registry **out,
                     ch_error *err);

/* An empty registry (no plugins), e.g. before the first load. */
ch_registry *ch_registry_empty(void);

void ch_registry_ref(ch_registry *r);
void ch_registry_unref(ch_registry *r);

/* True when both have the same plugins (every field) and the same file
 * errors, so a reload that changed nothing can be ignored. */
bool ch_registry_equal(const ch_registry *a, const ch_registry *b);

/* The slot: the current registry, swapped atomically. */
typedef struct ch_registry_slot {
  pthread_mutex_t lock; /* held only to swap or to take a reference */
  ch_registry *current;
} ch_registry_slot;

void ch_registry_slot_init(ch_registry_slot *slot); /* starts with an empty registry */
void ch_registry_slot_destroy(ch_registry_slot *slot);
/* Takes ownership of `next` (its generation is set to the old one's + 1). */
void ch_registry_slot_publish(ch_registry_slot *slot, ch_registry *next);
/* Returns the current registry with a reference for the caller. */
ch_registry *ch_registry_slot_acquire(ch_registry_slot *slot);
