/* SPDX-License-Identifier: Apache-2.0 */
/* observe-micro.c: what metrics and the live trace cost per call, measured
 * in-process where the machine's noise cannot hide it (scripts/
 * bench-observe.sh runs it after its end-to-end runs).
 *
 *   observe-micro [--calls N] [--per-call-us US]
 *
 * Times, per CRI call: recording it in the metrics (ch_metrics_cri_call,
 * on and off); per hook call, recording its outcome in the metrics and the
 * stats (ch_observe_hook, observe/outcome.h, nobody tracing); the data
 * path's trace check with nobody watching
 * (ch_trace_active), and with one watcher attached the whole trace path:
 * the worker's side (ch_trace_event_new + ch_trace_publish) and the control
 * loop's (ch_trace_take + ch_trace_event_json + unref). Prints each in
 * nanoseconds and as a share of US microseconds, crihookd's own CPU per
 * forwarded call (default 33: the cheapest figure of scripts/bench.sh).
 * Then the relay loop's side of a scrape: CRI calls recorded on one thread
 * while another renders /metrics without pause (200 method series), the
 * slowest recording and how many took over 100 us (with one mutex for
 * both, a recording waited out whole renderings: up to 1.3 s, 665 of 2
 * million over 100 us, measured when metrics.c dropped it). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "outcome.h"
#include "stats.h"
#include "trace.h"

static const char method[] = "/runtime.v1.RuntimeService/Version";

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double metrics_ns(long calls, bool enabled) {
  ch_metrics_enable(enabled);
  double t0 = now_ns();
  for (long i = 0; i < calls; i++)
    ch_metrics_cri_call(method, sizeof method - 1, true, GRPC_STATUS_OK, 0.0001 * (double)(i % 50));
  return (now_ns() - t0) / (double)calls;
}

static double hook_ns(long calls) {
  ch_hook_outcome o = {.plugin = "10-bench", .hook = "PreCreateContainer", .cause = ""};
  double t0 = now_ns();
  for (long i = 0; i < calls; i++) {
    o.seconds = 0.0001 * (double)(i % 50);
    ch_observe_hook(&o, NULL);
  }
  return (now_ns() - t0) / (double)calls;
}

static double unwatched_ns(long calls) {
  volatile long hits = 0;
  double t0 = now_ns();
  for (long i = 0; i < calls; i++)
    if (ch_trace_active()) hits++;
  return (now_ns() - t0) / (double)calls;
}

static void no_notify(void *arg) { (void)arg; }

/* Publishes batches of 64 and drains them as the loop would; returns the
 * worker's and the loop's ns per event. */
static int watched_ns(long calls, double *worker, double *loop) {
  ch_trace_watcher *w;
  ch_error err;
  ch_trace_filter any = {0};
  if (ch_trace_watch(&any, 4096, no_notify, NULL, &w, &err) != 0) {
    fprintf(stderr, "observe-micro: %s\n", err.msg);
    return -1;
  }
  double pub = 0, take = 0;
  ch_trace_event *batch[64];
  for (long done = 0; done < calls; done += 64) {
    double t0 = now_ns();
    for (int i = 0; i < 64; i++)
      ch_trace_publish(ch_trace_event_new(method, sizeof method - 1, GRPC_STATUS_OK, 0.25));
    double t1 = now_ns();
    uint64_t dropped;
    size_t n = ch_trace_take(w, batch, 64, &dropped);
    for (size_t i = 0; i < n; i++) {
      free(ch_trace_event_json(batch[i]));
      ch_trace_event_unref(batch[i]);
    }
    take += now_ns() - t1;
    pub += t1 - t0;
  }
  ch_trace_unwatch(w);
  *worker = pub / (double)calls;
  *loop = take / (double)calls;
  return 0;
}

static atomic_bool scraping;

static void *scraper(void *arg) {
  (void)arg;
  ch_metrics_gauges g = {0};
  while (atomic_load(&scraping)) free(ch_metrics_render(&g));
  return NULL;
}

/* Records `calls` CRI calls while another thread scrapes; the slowest
 * recording (ns) and how many took over 100 us. */
static int scraped_worst(long calls, double *worst, long *over_100us) {
  char name[64];
  for (int i = 0; i < 200; i++) {
    int n = snprintf(name, sizeof name, "/runtime.v1.RuntimeService/Bench%d", i);
    ch_metrics_cri_call(name, (size_t)n, true, GRPC_STATUS_OK, 0.001);
  }
  pthread_t t;
  atomic_store(&scraping, true);
  if (pthread_create(&t, NULL, scraper, NULL) != 0) return -1;
  *worst = 0;
  *over_100us = 0;
  for (long i = 0; i < calls; i++) {
    double t0 = now_ns();
    ch_metrics_cri_call(method, sizeof method - 1, true, GRPC_STATUS_OK, 0.0001);
    double took = now_ns() - t0;
    if (took > *worst) *worst = took;
    *over_100us += took > 100e3;
  }
  atomic_store(&scraping, false);
  pthread_join(t, NULL);
  return 0;
}

static void row(const char *what, double ns, double per_call_us) {
  printf("  %-46s %9.1f ns  %6.2f%% of a call\n", what, ns, 100 * ns / (per_call_us * 1000));
}

int main(int argc, char **argv) {
  long calls = 2000000;
  double per_call_us = 33;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--calls") == 0)
      calls = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--per-call-us") == 0)
      per_call_us = atof(argv[i + 1]);
  }
  if (calls < 64 || per_call_us <= 0) {
    fprintf(stderr, "usage: observe-micro [--calls N>=64] [--per-call-us US>0]\n");
    return 2;
  }
  double worker, loop;
  metrics_ns(calls / 10, true); /* warm up: the series exists */
  double off = metrics_ns(calls, false), on = metrics_ns(calls, true);
  double hook = hook_ns(calls);
  double idle = unwatched_ns(calls);
  if (watched_ns(calls / 4, &worker, &loop) != 0) return 1;
  printf("per-call cost in-process (%ld calls; a call costs crihookd %.1f us of CPU):\n", calls,
         per_call_us);
  row("metrics on (recording one CRI call)", on - off, per_call_us);
  row("hook outcome (metrics + stats, one hook call)", hook, per_call_us);
  row("trace, nobody watching (the data path's check)", idle, per_call_us);
  row("trace watched: worker (event + publish)", worker, per_call_us);
  row("trace watched: control loop (take + JSON)", loop, per_call_us);
  row("trace watched: both", worker + loop, per_call_us);
  double worst;
  long over;
  if (scraped_worst(calls, &worst, &over) != 0) return 1;
  printf(
      "recording while another thread scrapes /metrics without pause (200 series):\n"
      "  slowest recording %.1f us, %ld of %ld over 100 us\n",
      worst / 1e3, over, calls);
  ch_metrics_reset();
  ch_plugin_stats_reset();
  return 0;
}
