/* SPDX-License-Identifier: Apache-2.0 */
/* trace.h: the live call trace behind `crihookctl trace` (GET /trace).
 *
 * A hub between the data plane (which publishes one event per finished CRI
 * call) and the watchers (admin connections, on the control loop, each with
 * its own filter and queue):
 *
 *   worker thread                          control loop (libuv)
 *   relay_free: ch_trace_active()?  --no--> nothing else: no allocation,
 *                 | yes                     no formatting, no lock
 *                 v
 *   ch_trace_event_new + fill (method, subject, code, latency, hooks)
 *   ch_trace_publish: for each watcher whose filter matches, push a
 *   reference into its bounded ring; a full ring drops the event and
 *   counts it; the first event after the watcher went idle calls notify()
 *                                    ---->  notify = uv_async_send: the
 *                                           watcher takes its events
 *                                           (ch_trace_take), writes them
 *                                           as JSON lines, then the drop
 *                                           count as {"dropped":N}; while
 *                                           events keep coming it takes
 *                                           them on a timer, and goes idle
 *                                           (re-arms notify) when a take
 *                                           finds nothing
 * So a busy stream costs a bounded number of wake-ups per second, not one
 * per call, and an idle one costs none.
 *
 * Cost: with no watcher, the data path pays one relaxed atomic load per
 * call (ch_trace_active) and one more per hook call. With watchers, each
 * call allocates one event, shared by reference between the watchers that
 * want it; filters are matched under the hub's mutex on the worker, so an
 * event nobody wants is freed at once and never queued. Publishing never
 * blocks on a watcher: the rings are fixed-size and the mutex is held only
 * to match and push.
 *
 * Subject: the hooked CRI methods (intercept.h) decode their request when
 * someone watches, and name the pod (namespace/name, ID) and the container
 * (name, ID) from the request, the runtime's answer or the store. Every
 * other method (Version, List*, Status calls, streams) is forwarded without
 * being decoded and its event has no subject; a pod filter never matches it.
 *
 * Filters: `method` is a POSIX extended regex matched against the full path
 * ("/runtime.v1.RuntimeService/CreateContainer") and the short name
 * ("CreateContainer"); `pod` matches "namespace/name", the name alone, or
 * the pod ID. Both optional; both must match when given. */
#pragma once

#include <grpc/grpc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Watchers attached; read by ch_trace_active(). Written by trace.c only. */
extern atomic_int ch_trace_watchers;

/* The data path's only question: is anybody watching? */
static inline bool ch_trace_active(void) {
  return atomic_load_explicit(&ch_trace_watchers, memory_order_relaxed) > 0;
}

typedef enum ch_trace_result {
  CH_TRACE_HOOK_OK,         /* answered, answer applied */
  CH_TRACE_HOOK_ERROR,      /* failed, ignored (Ignore policy, or a Post hook) */
  CH_TRACE_HOOK_TIMEOUT,    /* deadline passed, ignored */
  CH_TRACE_HOOK_REJECTED,   /* failed under policy Fail: the CRI call was refused */
  CH_TRACE_HOOK_SKIPPED,    /* not called: the pod asked to skip hooks */
  CH_TRACE_HOOK_BAD_ANSWER, /* answered, answer refused or not applicable, ignored */
} ch_trace_result;

#define CH_TRACE_MAX_HOOKS 32

/* One hook call of a traced CRI call (filled by ch_observe_hook, outcome.h,
 * from the same value the metrics and stats record). */
typedef struct ch_trace_hook {
  char plugin[96];
  const char *hook; /* the hook point's name, a static string */
  ch_trace_result result;
  double ms;
  char cause[160];   /* why it failed; "" if it did not */
  char changes[512]; /* what the answer changed: entries separated by '\0',
                        `change_count` of them (merge.h describes them) */
  unsigned change_count;
} ch_trace_hook;

/* The hook calls of one CRI call, collected while it runs (owned by the
 * intercept, then moved into the event). */
typedef struct ch_trace_hooks {
  size_t count, cap;
  size_t dropped; /* past CH_TRACE_MAX_HOOKS, or out of memory */
  ch_trace_hook items[];
} ch_trace_hooks;

/* Appends a copy of `hook` to *list (allocated on first use). A list that
 * cannot grow counts the hook as dropped. */
void ch_trace_hooks_add(ch_trace_hooks **list, const ch_trace_hook *hook);

typedef struct ch_trace_event {
  atomic_int refs;
  int64_t time_us;   /* wall clock when the call ended, microseconds since 1970 */
  double latency_ms; /* accept to end */
  grpc_status_code code;
  char method[192];
  char message[256]; /* status message when code != OK (may be "") */
  char pod[256];     /* "namespace/name", "" if unknown */
  char pod_id[72];
  char container[128];
  char container_id[72];
  ch_trace_hooks *hooks; /* owned; NULL if no hook ran */
} ch_trace_event;

/* A new event (one reference) with time_us set to now; NULL if out of
 * memory. */
ch_trace_event *ch_trace_event_new(const char *method, size_t method_len, grpc_status_code code,
                                   double latency_ms);
void ch_trace_event_unref(ch_trace_event *ev);

/* The event as one line of JSON with a '\n', malloc'd (caller frees); NULL
 * if out of memory. Fields left empty are omitted:
 *   {"time":"2024-05-01T15:04:05.123456Z","method":"/runtime.v1.Runtime...",
 *    "pod":"ns/name","pod_id":"...","container":"web","container_id":"...",
 *    "code":"OK","message":"...","latency_ms":12.345,
 *    "hooks":[{"plugin":"10-env","hook":"PreCreateContainer","result":"ok",
 *              "latency_ms":1.2,"changes":["env+FOO=bar"],"cause":"..."}]} */
char *ch_trace_event_json(const ch_trace_event *ev);

const char *ch_trace_result_name(ch_trace_result result);

/* ---- the hub (trace.c) ---- */

typedef struct ch_trace_watcher ch_trace_watcher;

typedef struct ch_trace_filter {
  const char *method; /* extended regex, NULL or "" = any */
  const char *pod;    /* NULL or "" = any */
} ch_trace_filter;

/* Attaches a watcher with a ring of `capacity` events. notify(arg) is called
 * from the publishing thread for the first event after the watcher was
 * created or went idle (it must be cheap and thread-safe: uv_async_send).
 * Fails on a bad regex. */
int ch_trace_watch(const ch_trace_filter *filter, size_t capacity, void (*notify)(void *),
                   void *arg, ch_trace_watcher **out, ch_error *err);

/* Detaches and frees the watcher and what its ring holds; once it returns,
 * notify is never called again for it. */
void ch_trace_unwatch(ch_trace_watcher *w);

/* Takes up to `max` queued events in order (the caller owns one reference
 * each) and returns how many; *dropped receives the events dropped since the
 * last take (and resets the count). A take that finds nothing makes the
 * watcher idle: the next event calls notify again. */
size_t ch_trace_take(ch_trace_watcher *w, ch_trace_event **out, size_t max, uint64_t *dropped);

/* Offers the event to every watcher (takes the caller's reference). */
void ch_trace_publish(ch_trace_event *ev);

/* True if the filter wants the event (exposed for tests). */
bool ch_trace_watcher_wants(const ch_trace_watcher *w, const ch_trace_event *ev);
