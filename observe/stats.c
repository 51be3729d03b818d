/* SPDX-License-Identifier: Apache-2.0 */
/* stats.c: the per-plugin counters of stats.h (a uthash table under a mutex;
 * touched once per hook call, never on the plain forwarding path). */
#include "stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

typedef struct entry {
  char name[128];
  ch_plugin_stats stats;
  UT_hash_handle hh;
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry *table;

void ch_plugin_stats_record(const char *plugin, bool ok, const char *error) {
  pthread_mutex_lock(&lock);
  entry *e;
  HASH_FIND_STR(table, plugin, e);
  if (!e && (e = calloc(1, sizeof *e)) != NULL) {
    snprintf(e->name, sizeof e->name, "%s", plugin);
    HASH_ADD_STR(table, name, e);
  }
  if (e) {
    e->stats.calls++;
    if (!ok) {
      e->stats.failures++;
      snprintf(e->stats.last_error, sizeof e->stats.last_error, "%s", error ? error : "");
      e->stats.last_error_unix = (int64_t)time(NULL);
    }
  }
  pthread_mutex_unlock(&lock);
}

void ch_plugin_stats_get(const char *plugin, ch_plugin_stats *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&lock);
  entry *e;
  HASH_FIND_STR(table, plugin, e);
  if (e) *out = e->stats;
  pthread_mutex_unlock(&lock);
}

void ch_plugin_stats_reset(void) {
  pthread_mutex_lock(&lock);
  entry *e, *tmp;
  HASH_ITER(hh, table, e, tmp) {
    HASH_DEL(table, e);
    free(e);
  }
  pthread_mutex_unlock(&lock);
}
