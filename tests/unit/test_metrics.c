/* SPDX-License-Identifier: Apache-2.0 */
/* test_metrics.c: the metrics renderer of observe/metrics.h and the one
 * recording function of observe/outcome.h, in-process: the exact
 * exposition for given gauges and recorded calls, label escaping (a plugin
 * name cannot forge a series), series of unregistered plugins dropped, the
 * method series cap, one hook outcome counted the same way by the
 * metrics, the stats and the trace entry, and CRI calls recorded by four
 * threads at once while another scrapes (no lock: per-thread shards summed
 * by the scrape; every scrape's histograms add up, the last one has every
 * call; TSan runs this too). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "metrics.h"
#include "outcome.h"
#include "stats.h"

#define START "/runtime.v1.RuntimeService/StartContainer"

static const char *const registered[] = {"10-ok", "20-bad"};

static ch_metrics_gauges gauges(void) {
  return (ch_metrics_gauges){.plugins = 2,
                             .plugin_files_rejected = 1,
                             .registry_generation = 7,
                             .store_pods = 3,
                             .store_containers = 5,
                             .in_flight = 4,
                             .backend_connected = true,
                             .backend_connects = 2,
                             .log_dropped = 9,
                             .store_rebuilt = true,
                             .plugin_names = registered,
                             .plugin_count = 2};
}

static int reset(void **state) {
  (void)state;
  ch_metrics_reset();
  ch_plugin_stats_reset();
  ch_metrics_enable(true);
  return 0;
}

static char *render(void) {
  ch_metrics_gauges g = gauges();
  char *text = ch_metrics_render(&g);
  assert_non_null(text);
  return text;
}

/* `line` (without its '\n') is a whole line of `text`. */
__attribute__((noinline)) static void assert_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n') return;
  fail_msg("no line \"%s\" in:\n%s", line, text);
}

__attribute__((noinline)) static void assert_no(const char *text, const char *part) {
  if (strstr(text, part)) fail_msg("\"%s\" should not be in:\n%s", part, text);
}

static const char gauges_text[] =
    "# HELP crihook_plugins Plugins registered.\n"
    "# TYPE crihook_plugins gauge\n"
    "crihook_plugins 2\n"
    "# HELP crihook_plugin_files_rejected Registration files rejected.\n"
    "# TYPE crihook_plugin_files_rejected gauge\n"
    "crihook_plugin_files_rejected 1\n"
    "# HELP crihook_registry_generation Registry reloads that changed something.\n"
    "# TYPE crihook_registry_generation counter\n"
    "crihook_registry_generation 7\n"
    "# HELP crihook_store_pods Pods in the store.\n"
    "# TYPE crihook_store_pods gauge\n"
    "crihook_store_pods 3\n"
    "# HELP crihook_store_containers Containers in the store.\n"
    "# TYPE crihook_store_containers gauge\n"
    "crihook_store_containers 5\n"
    "# HELP crihook_calls_in_flight CRI calls in flight.\n"
    "# TYPE crihook_calls_in_flight gauge\n"
    "crihook_calls_in_flight 4\n"
    "# HELP crihook_backend_connected 1 if the backend connection is up.\n"
    "# TYPE crihook_backend_connected gauge\n"
    "crihook_backend_connected 1\n"
    "# HELP crihook_backend_connects_total Times the backend connection came up (the first "
    "time included).\n"
    "# TYPE crihook_backend_connects_total counter\n"
    "crihook_backend_connects_total 2\n"
    "# HELP crihook_log_dropped_total Log lines dropped because the log sink (stderr) was "
    "stuck.\n"
    "# TYPE crihook_log_dropped_total counter\n"
    "crihook_log_dropped_total 9\n"
    "# HELP crihook_store_rebuilt 1 once the store has been rebuilt from the backend.\n"
    "# TYPE crihook_store_rebuilt gauge\n"
    "crihook_store_rebuilt 1\n";

static const char empty_series_text[] =
    "# HELP crihook_cri_calls_total CRI calls through crihookd by method and status code.\n"
    "# TYPE crihook_cri_calls_total counter\n"
    "# HELP crihook_cri_call_duration_seconds Time from accept to the end of the call.\n"
    "# TYPE crihook_cri_call_duration_seconds histogram\n"
    "# HELP crihook_hook_calls_total Hook calls by plugin, hook and result.\n"
    "# TYPE crihook_hook_calls_total counter\n"
    "# HELP crihook_hook_rejections_total CRI calls refused by a Fail-policy plugin.\n"
    "# TYPE crihook_hook_rejections_total counter\n"
    "# HELP crihook_hook_call_duration_seconds Hook call latency.\n"
    "# TYPE crihook_hook_call_duration_seconds histogram\n"
    "# HELP crihook_undecodable_requests_total Hooked CRI requests crihookd could not decode "
    "(refused if a Fail-policy plugin is registered for their hook, else forwarded unhooked).\n"
    "# TYPE crihook_undecodable_requests_total counter\n";

static void gauges_exact(void **state) {
  (void)state;
  char *text = render();
  char want[sizeof gauges_text + sizeof empty_series_text];
  snprintf(want, sizeof want, "%s%s", gauges_text, empty_series_text);
  assert_string_equal(text, want);
  free(text);
}

static void cri_calls_exact(void **state) {
  (void)state;
  ch_metrics_cri_call(START, strlen(START), true, GRPC_STATUS_OK, 0.003);
  ch_metrics_cri_call(START, strlen(START), true, GRPC_STATUS_OK, 0.2);
  ch_metrics_cri_call("/x.Y/Z", 6, false, GRPC_STATUS_NOT_FOUND, 20);
  ch_metrics_cri_call(START, strlen(START), true, (grpc_status_code)99, 0.0001);
  ch_metrics_undecodable("CreateContainer");
  char *text = render();
  assert_line(text, "crihook_cri_calls_total{method=\"" START "\",code=\"OK\"} 2");
  assert_line(text, "crihook_cri_calls_total{method=\"" START "\",code=\"OTHER\"} 1");
  assert_line(text, "crihook_cri_calls_total{method=\"unknown\",code=\"NOT_FOUND\"} 1");
  assert_no(text, "/x.Y/Z");
  const char *b = "crihook_cri_call_duration_seconds_bucket{method=\"" START "\",le=";
  char line[256];
  static const struct {
    const char *le;
    int n;
  } cumulative[] = {{"0.0005", 1}, {"0.0025", 1}, {"0.005", 2}, {"0.1", 2},
                    {"0.25", 3},   {"10", 3},     {"+Inf", 3}};
  for (size_t i = 0; i < sizeof cumulative / sizeof cumulative[0]; i++) {
    snprintf(line, sizeof line, "%s\"%s\"} %d", b, cumulative[i].le, cumulative[i].n);
    assert_line(text, line);
  }
  assert_line(text, "crihook_cri_call_duration_seconds_sum{method=\"" START "\"} 0.203100");
  assert_line(text, "crihook_cri_call_duration_seconds_count{method=\"" START "\"} 3");
  /* 20 s is past the last bucket: only +Inf counts it */
  assert_line(text, "crihook_cri_call_duration_seconds_bucket{method=\"unknown\",le=\"10\"} 0");
  assert_line(text, "crihook_cri_call_duration_seconds_bucket{method=\"unknown\",le=\"+Inf\"} 1");
  assert_line(text, "crihook_undecodable_requests_total{method=\"CreateContainer\"} 1");
  free(text);
}

static void record(const char *plugin, ch_hook_result result, bool rejected, double seconds,
                   const char *cause, ch_trace_hook *trace) {
  ch_hook_outcome o = {.plugin = plugin,
                       .hook = "PreStartContainer",
                       .result = result,
                       .rejected = rejected,
                       .seconds = seconds,
                       .cause = cause};
  ch_observe_hook(&o, trace);
}

/* One value, three records: the metrics' result, the stats' failure and
 * the trace entry's result come from the same outcome. */
static void one_outcome_three_records(void **state) {
  (void)state;
  ch_trace_hook t[4];
  record("10-ok", CH_HOOK_OK, false, 0.002, "", &t[0]);
  record("20-bad", CH_HOOK_BAD_ANSWER, false, 0.001, "its answer is refused: x", &t[1]);
  record("20-bad", CH_HOOK_ERROR, false, 0, "cannot build the hook request", &t[2]);
  record("20-bad", CH_HOOK_TIMEOUT, true, 0.5, "DEADLINE_EXCEEDED: late", &t[3]);
  char *text = render();
  const char *p = "crihook_hook_calls_total{plugin=\"20-bad\",hook=\"PreStartContainer\",result=";
  char line[256];
  static const char *const results[] = {"ok", "error", "timeout", "bad_answer"};
  static const int counts[] = {0, 1, 1, 1};
  for (int r = 0; r < 4; r++) {
    snprintf(line, sizeof line, "%s\"%s\"} %d", p, results[r], counts[r]);
    assert_line(text, line);
  }
  assert_line(
      text,
      "crihook_hook_calls_total{plugin=\"10-ok\",hook=\"PreStartContainer\",result=\"ok\"} 1");
  assert_line(text,
              "crihook_hook_rejections_total{plugin=\"20-bad\",hook=\"PreStartContainer\"} 1");
  assert_line(text,
              "crihook_hook_call_duration_seconds_count{plugin=\"20-bad\","
              "hook=\"PreStartContainer\"} 3");
  free(text);

  ch_plugin_stats s;
  ch_plugin_stats_get("20-bad", &s);
  assert_int_equal(s.calls, 3);
  assert_int_equal(s.failures, 3);
  assert_string_equal(s.last_error, "DEADLINE_EXCEEDED: late");
  ch_plugin_stats_get("10-ok", &s);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.failures, 0);
  assert_string_equal(s.last_error, "");

  assert_string_equal(ch_trace_result_name(t[0].result), "ok");
  assert_string_equal(ch_trace_result_name(t[1].result), "bad_answer");
  assert_string_equal(ch_trace_result_name(t[2].result), "error");
  assert_string_equal(ch_trace_result_name(t[3].result), "rejected");
  assert_string_equal(t[1].plugin, "20-bad");
  assert_string_equal(t[1].hook, "PreStartContainer");
  assert_string_equal(t[1].cause, "its answer is refused: x");
  assert_true(t[3].ms == 500);
}

static void labels_escaped(void **state) {
  (void)state;
  static const char *const names[] = {
      "a\"b\\c\nd\x01"
      "e\xff"};
  record(names[0], CH_HOOK_OK, false, 0.001, "", NULL);
  ch_metrics_gauges g = gauges();
  g.plugin_names = names;
  g.plugin_count = 1;
  char *text = ch_metrics_render(&g);
  assert_non_null(text);
  assert_line(text,
              "crihook_hook_calls_total{plugin=\"a\\\"b\\\\c\\nd\\\\x01e\xef\xbf\xbd\","
              "hook=\"PreStartContainer\",result=\"ok\"} 1");
  free(text);
}

static void unregistered_plugins_dropped(void **state) {
  (void)state;
  record("10-ok", CH_HOOK_OK, false, 0.001, "", NULL);
  record("99-gone", CH_HOOK_OK, false, 0.001, "", NULL);
  char *text = render();
  assert_no(text, "99-gone");
  assert_non_null(strstr(text, "plugin=\"10-ok\""));
  free(text);
}

static void method_series_capped(void **state) {
  (void)state;
  char method[64];
  for (int i = 0; i < CH_METRICS_MAX_SERIES + 10; i++) {
    int n = snprintf(method, sizeof method, "/m.S/M%d", i);
    ch_metrics_cri_call(method, (size_t)n, true, GRPC_STATUS_OK, 0.001);
  }
  char *text = render();
  assert_line(text, "crihook_cri_calls_total{method=\"other\",code=\"OK\"} 10");
  free(text);
}

#define THREADS 4
#define CALLS_PER_THREAD 20000
static _Atomic int recorders_left;

static void *recorder(void *arg) {
  char own[64];
  int n = snprintf(own, sizeof own, "/m.S/Thread%d", (int)(intptr_t)arg);
  for (int i = 0; i < CALLS_PER_THREAD; i++) {
    ch_metrics_cri_call(START, strlen(START), true, GRPC_STATUS_OK, 0.0004 * (i % 30));
    if (i % 100 == 0) ch_metrics_cri_call(own, (size_t)n, true, GRPC_STATUS_NOT_FOUND, 0.01);
  }
  recorders_left--;
  return NULL;
}

/* The value of the line that starts with `prefix` ("" if none). */
static unsigned long long value_of(const char *text, const char *prefix) {
  const char *p = strstr(text, prefix);
  return p ? strtoull(p + strlen(prefix), NULL, 10) : 0;
}

/* Every histogram line of START adds up: cumulative buckets never go down,
 * and +Inf equals _count (a scrape racing the recorders included). */
static void histogram_consistent(const char *text) {
  const char *label = "crihook_cri_call_duration_seconds_bucket{method=\"" START "\",le=\"";
  unsigned long long last = 0, inf = 0;
  for (const char *p = strstr(text, label); p; p = strstr(p + 1, label)) {
    const char *v = strchr(p, '}') + 2;
    unsigned long long n = strtoull(v, NULL, 10);
    assert_true(n >= last);
    last = inf = n;
  }
  char count[160];
  snprintf(count, sizeof count, "crihook_cri_call_duration_seconds_count{method=\"%s\"} ", START);
  assert_int_equal(value_of(text, count), inf);
}

static void threads_record_while_scraped(void **state) {
  (void)state;
  pthread_t t[THREADS];
  recorders_left = THREADS;
  for (intptr_t i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, recorder, (void *)i), 0);
  int scrapes = 0;
  while (recorders_left > 0 || scrapes == 0) {
    char *text = render();
    histogram_consistent(text);
    free(text);
    scrapes++;
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  char *text = render();
  printf("# %d scrapes while %d threads recorded\n", scrapes, THREADS);
  char line[160];
  snprintf(line, sizeof line, "crihook_cri_calls_total{method=\"%s\",code=\"OK\"} %d", START,
           THREADS * CALLS_PER_THREAD);
  assert_line(text, line); /* one series, summed over the shards */
  histogram_consistent(text);
  for (int i = 0; i < THREADS; i++) {
    snprintf(line, sizeof line,
             "crihook_cri_calls_total{method=\"/m.S/Thread%d\",code=\"NOT_FOUND\"} %d", i,
             CALLS_PER_THREAD / 100);
    assert_line(text, line);
  }
  free(text);
}

static void disabled_records_nothing(void **state) {
  (void)state;
  ch_metrics_enable(false);
  ch_metrics_cri_call(START, strlen(START), true, GRPC_STATUS_OK, 0.001);
  record("10-ok", CH_HOOK_OK, false, 0.001, "", NULL);
  ch_metrics_enable(true);
  char *text = render();
  assert_no(text, START);
  assert_no(text, "10-ok");
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(gauges_exact, reset),
      cmocka_unit_test_setup(cri_calls_exact, reset),
      cmocka_unit_test_setup(one_outcome_three_records, reset),
      cmocka_unit_test_setup(labels_escaped, reset),
      cmocka_unit_test_setup(unregistered_plugins_dropped, reset),
      cmocka_unit_test_setup(method_series_capped, reset),
      cmocka_unit_test_setup(disabled_records_nothing, reset),
      cmocka_unit_test_setup(threads_record_while_scraped, reset),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  ch_metrics_reset();
  ch_plugin_stats_reset();
  return failed;
}
