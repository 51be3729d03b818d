/* SPDX-License-Identifier: Apache-2.0 */
/* trace.c: the hub of trace.h: the list of watchers, their filters and
 * their rings, under one mutex.
 *
 * Publishers are worker threads; everything else (watch, unwatch, take)
 * runs on the control loop. The mutex is held to walk the list, match the
 * filters and push pointers, never to format or to write. A ring holds
 * references to shared events; a full ring counts a drop instead. */
#include "trace.h"

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

atomic_int ch_trace_watchers;

struct ch_trace_watcher {
  ch_trace_watcher *next;
  regex_t method;
  bool has_method;
  char *pod; /* NULL = any */
  void (*notify)(void *);
  void *arg;
  ch_trace_event **ring;
  size_t capacity, head, count;
  uint64_t dropped;
  bool idle; /* the consumer waits for notify */
};

static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static ch_trace_watcher *watchers;

/* ---- filters ---- */

static bool method_matches(const ch_trace_watcher *w, const char *method) {
  if (!w->has_method) return true;
  if (regexec(&w->method, method, 0, NULL, 0) == 0) return true;
  const char *slash = strrchr(method, '/');
  return slash && regexec(&w->method, slash + 1, 0, NULL, 0) == 0;
}

static bool pod_matches(const ch_trace_watcher *w, const ch_trace_event *ev) {
  if (!w->pod) return true;
  if (ev->pod_id[0] && strcmp(ev->pod_id, w->pod) == 0) return true;
  if (!ev->pod[0]) return false;
  if (strcmp(ev->pod, w->pod) == 0) return true;
  const char *slash = strchr(ev->pod, '/');
  return slash && strcmp(slash + 1, w->pod) == 0;
}

bool ch_trace_watcher_wants(const ch_trace_watcher *w, const ch_trace_event *ev) {
  return pod_matches(w, ev) && method_matches(w, ev->method);
}

/* ---- watchers ---- */

static void watcher_free(ch_trace_watcher *w) {
  for (size_t i = 0; i < w->count; i++) ch_trace_event_unref(w->ring[(w->head + i) % w->capacity]);
  if (w->has_method) regfree(&w->method);
  free(w->pod);
  free(w->ring);
  free(w);
}

static int compile_filter(ch_trace_watcher *w, const ch_trace_filter *f, ch_error *err) {
  if (f->pod && *f->pod && !(w->pod = strdup(f->pod))) return ch_fail(err, "out of memory");
  if (!f->method || !*f->method) return 0;
  int rc = regcomp(&w->method, f->method, REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char why[128];
    regerror(rc, &w->method, why, sizeof why);
    return ch_fail(err, "method filter \"%s\": %s", f->method, why);
  }
  w->has_method = true;
  return 0;
}

int ch_trace_watch(const ch_trace_filter *filter, size_t capacity, void (*notify)(void *),
                   void *arg, ch_trace_watcher **out, ch_error *err) {
  ch_trace_watcher *w = calloc(1, sizeof *w);
  if (!w) return ch_fail(err, "out of memory");
  w->capacity = capacity ? capacity : 1;
  w->ring = calloc(w->capacity, sizeof *w->ring);
  w->notify = notify;
  w->arg = arg;
  w->idle = true;
  if (!w->ring) ch_fail(err, "out of memory");
  if (!w->ring || compile_filter(w, filter, err) != 0) {
    watcher_free(w);
    return -1;
  }
  pthread_mutex_lock(&hub_lock);
  w->next = watchers;
  watchers = w;
  atomic_fetch_add(&ch_trace_watchers, 1);
  pthread_mutex_unlock(&hub_lock);
  *out = w;
  return 0;
}

void ch_trace_unwatch(ch_trace_watcher *w) {
  pthread_mutex_lock(&hub_lock);
  for (ch_trace_watcher **p = &watchers; *p; p = &(*p)->next) {
    if (*p != w) continue;
    *p = w->next;
    atomic_fetch_sub(&ch_trace_watchers, 1);
    break;
  }
  pthread_mutex_unlock(&hub_lock);
  watcher_free(w);
}

/* ---- events in and out ---- */

static void push(ch_trace_watcher *w, ch_trace_event *ev) {
  if (w->count == w->capacity) {
    w->dropped++;
    return;
  }
  atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
  w->ring[(w->head + w->count) % w->capacity] = ev;
  w->count++;
  if (w->idle && w->notify) {
    w->idle = false;
    w->notify(w->arg);
  }
}

void ch_trace_publish(ch_trace_event *ev) {
  pthread_mutex_lock(&hub_lock);
  for (ch_trace_watcher *w = watchers; w; w = w->next)
    if (ch_trace_watcher_wants(w, ev)) push(w, ev);
  pthread_mutex_unlock(&hub_lock);
  ch_trace_event_unref(ev);
}

size_t ch_trace_take(ch_trace_watcher *w, ch_trace_event **out, size_t max, uint64_t *dropped) {
  pthread_mutex_lock(&hub_lock);
  size_t n = w->count < max ? w->count : max;
  for (size_t i = 0; i < n; i++) out[i] = w->ring[(w->head + i) % w->capacity];
  w->head = (w->head + n) % w->capacity;
  w->count -= n;
  *dropped = w->dropped;
  w->dropped = 0;
  if (n == 0 && *dropped == 0) w->idle = true;
  pthread_mutex_unlock(&hub_lock);
  return n;
}
