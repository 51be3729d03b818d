/* SPDX-License-Identifier: Apache-2.0 */
/* test_hook_outcome.c: the hook chain (dispatcher/dispatch.c) records a
 * plugin that fails before its call starts (here: its hook request cannot
 * be built) once, and the metrics, the stats and the live trace agree on
 * it: under Ignore an error, under Fail an error that rejected the call.
 * (Calls that go out are covered end to end by e2e-hook_outcome.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "dispatch.h"
#include "metrics.h"
#include "stats.h"
#include "trace.h"

typedef struct chain {
  ch_trace_hooks *traced;
  int done;
} chain;

static uint8_t *no_request(void *ctx, size_t *len) {
  (void)ctx;
  *len = 0;
  return NULL; /* the hook request cannot be built */
}

static int no_apply(void *ctx, const ProtobufCMessage *a, const ch_plugin *p, ch_merge_trace *t) {
  (void)ctx, (void)a, (void)p, (void)t;
  return 0;
}

static void on_done(void *ctx) { ((chain *)ctx)->done++; }

static void on_traced(void *ctx, const ch_trace_hook *h) {
  ch_trace_hooks_add(&((chain *)ctx)->traced, h);
}

static const ch_dispatch_ops ops = {no_request, no_apply, on_done, on_traced};

/* A registry of one plugin, `policy`, on PreStartContainer. */
static ch_registry *one_plugin(const char *policy) {
  char dir[] = "/tmp/crihook-outcome-XXXXXX", path[128];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/10-p.json", dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fprintf(fp,
          "{\"remote-endpoint\":\"unix:///nonexistent/p.sock\",\"failure-policy\":\"%s\","
          "\"runtime-hooks\":[\"PreStartContainer\"]}",
          policy);
  fclose(fp);
  ch_registry *r;
  ch_error err;
  assert_int_equal(ch_registry_load(dir, NULL, &r, &err), 0);
  unlink(path);
  rmdir(dir);
  assert_int_equal(r->count, 1);
  return r;
}

static void no_notify(void *arg) { (void)arg; }

static unsigned long long sample(const char *text, const char *result) {
  char want[256];
  snprintf(want, sizeof want,
           "crihook_hook_calls_total{plugin=\"10-p\",hook=\"PreStartContainer\",result=\"%s\"} ",
           result);
  const char *at = strstr(text, want);
  if (!at) fail_msg("no %s in:\n%s", want, text);
  return strtoull(at + strlen(want), NULL, 10);
}

static void failed_before_start(const char *policy, const char *trace_result, bool rejected) {
  ch_metrics_reset();
  ch_plugin_stats_reset();
  ch_registry *r = one_plugin(policy);
  ch_trace_watcher *w;
  ch_error err;
  ch_trace_filter any = {0};
  assert_int_equal(ch_trace_watch(&any, 4, no_notify, NULL, &w, &err), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  ch_dispatch_env env = {.loop = &loop, .conns = ch_rpc_pool_new(&loop)};
  assert_non_null(env.conns);
  chain c = {0};
  ch_dispatch d;
  ch_dispatch_start(&d, &env, r, CH_HOOK_PRE_START_CONTAINER, 0, "pod=ns/p", &ops, &c);
  assert_int_equal(c.done, 1); /* no call went out: the chain ended at once */
  assert_int_equal(d.rejected, rejected);

  const char *names[] = {"10-p"};
  ch_metrics_gauges g = {.plugin_names = names, .plugin_count = 1};
  char *text = ch_metrics_render(&g);
  assert_non_null(text);
  assert_int_equal(sample(text, "error"), 1);
  assert_int_equal(sample(text, "ok") + sample(text, "timeout") + sample(text, "bad_answer"), 0);
  assert_non_null(strstr(text, rejected ? "crihook_hook_rejections_total{plugin=\"10-p\","
                                          "hook=\"PreStartContainer\"} 1"
                                        : "crihook_hook_rejections_total{plugin=\"10-p\","
                                          "hook=\"PreStartContainer\"} 0"));
  free(text);

  ch_plugin_stats s;
  ch_plugin_stats_get("10-p", &s);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.failures, 1);
  assert_string_equal(s.last_error, "cannot build the hook request");

  assert_non_null(c.traced);
  assert_int_equal(c.traced->count, 1);
  assert_string_equal(c.traced->items[0].plugin, "10-p");
  assert_string_equal(c.traced->items[0].hook, "PreStartContainer");
  assert_string_equal(ch_trace_result_name(c.traced->items[0].result), trace_result);
  assert_string_equal(c.traced->items[0].cause, "cannot build the hook request");

  free(c.traced);
  ch_trace_unwatch(w);
  ch_rpc_pool_free(env.conns);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  ch_registry_unref(r);
}

static void ignore_counts_an_error(void **state) {
  (void)state;
  failed_before_start("Ignore", "error", false);
}

static void fail_counts_a_rejection(void **state) {
  (void)state;
  failed_before_start("Fail", "rejected", true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ignore_counts_an_error),
      cmocka_unit_test(fail_counts_a_rejection),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  ch_metrics_reset();
  ch_plugin_stats_reset();
  return failed;
}
