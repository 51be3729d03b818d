/* SPDX-License-Identifier: Apache-2.0 */
/* test_dispatch.c: the hook-call chain (dispatcher/dispatch.c) on a libuv
 * loop, calling real grpc core hook servers (hook_fixture.h: scriptable
 * fakes registered by JSON files, as crihookd registers plugins) through
 * crihook's own gRPC client: plugins called in file order, each seeing the
 * changes of those before it; Fail rejects the CRI call with a message
 * naming the plugin, the hook and the cause while Ignore goes on; a plugin
 * that does not answer ends at its timeout-ms, or at the CRI call's own
 * deadline when that comes first; Post hooks never reject; an answer that
 * cannot be applied, does not decode or is over the 4 MiB bound counts as
 * the plugin's failure; a plugin whose server is gone fails at once and is
 * reached again once it is back; a shutdown's cancel_all stops every chain
 * in flight (each rejected, whatever the policy) and any chain started
 * after it. */
#include <grpc/grpc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "answer_check.h"
#include "dispatch.h"
#include "fake_h2_server.h"
#include "hook.pb-c.h"
#include "hook_fixture.h"
#include "pbutil.h"
#include "stats.h"
#include "test_clock.h"

#define POD_HOOKS "[\"PreRunPodSandbox\", \"PostStopPodSandbox\"]"

/* The test's side of the chain: the hook request is a pod whose cgroup
 * parent each answer replaces. */
typedef struct chain_ctx {
  char cgroup[64];
  int applied;
  int done;
  bool finished;
  bool refuse_apply; /* apply fails: the answer cannot be applied */
} chain_ctx;

static uint8_t *build(void *ctx, size_t *len) {
  chain_ctx *c = ctx;
  Runtime__V1alpha1__PodSandboxHookRequest req = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
  req.cgroup_parent = c->cgroup;
  return ch_pb_pack(&req.base, len);
}

static int apply(void *ctx, const ProtobufCMessage *answer, const ch_plugin *plugin,
                 ch_merge_trace *trace) {
  (void)plugin, (void)trace;
  chain_ctx *c = ctx;
  if (c->refuse_apply) return -1;
  const Runtime__V1alpha1__PodSandboxHookResponse *a = (const void *)answer;
  snprintf(c->cgroup, sizeof c->cgroup, "%s", a->cgroup_parent);
  c->applied++;
  return 0;
}

static void done(void *ctx) {
  chain_ctx *c = ctx;
  c->done++;
  c->finished = true;
}

static const ch_dispatch_ops ops = {build, apply, done, NULL};

/* The CRI call's deadline `ms` from now, on uv_hrtime's clock. */
static uint64_t deadline_in(int ms) { return uv_hrtime() + (uint64_t)ms * 1000000; }

static ch_dispatch_env env_of(hook_fx *fx) {
  return (ch_dispatch_env){.loop = &fx->loop, .conns = fx->conns};
}

/* Runs one chain for `hook` with a CRI deadline `deadline_ms` from now. */
static void run_chain(hook_fx *fx, ch_dispatch *d, chain_ctx *c, ch_hook_point hook,
                      int deadline_ms) {
  c->finished = false;
  c->done = 0;
  ch_dispatch_env env = env_of(fx);
  ch_dispatch_start(d, &env, fx->registry, hook, deadline_in(deadline_ms), "pod=ns/p", &ops, c);
  hook_fx_pump(fx, &c->finished);
  assert_int_equal(c->done, 1);
}

static void answer_cgroup(hook_fx *fx, int server, const char *cgroup) {
  Runtime__V1alpha1__PodSandboxHookResponse a = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_RESPONSE__INIT;
  a.cgroup_parent = (char *)cgroup;
  hook_fx_answer(fx, server, &a.base);
}

static char *sent_cgroup(hook_fx *fx, int server, int n) {
  Runtime__V1alpha1__PodSandboxHookRequest *r = (void *)hook_fx_request(
      fx, server, n, &runtime__v1alpha1__pod_sandbox_hook_request__descriptor);
  char *cgroup = strdup(r->cgroup_parent);
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(r, NULL);
  return cgroup;
}

static int setup(void **state) {
  *state = hook_fx_new();
  return 0;
}

static int teardown(void **state) {
  hook_fx_free(*state);
  return 0;
}

/* 10-a then 20-b; b's request carries a's answer; both answers applied. */
static void chain_applies_answers_in_file_order(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "20-b", 1, "Ignore", POD_HOOKS, 2000);
  hook_fx_plugin(fx, "10-a", 0, "Ignore", POD_HOOKS, 2000);
  hook_fx_load(fx);
  answer_cgroup(fx, 0, "/from-a");
  answer_cgroup(fx, 1, "/from-b");
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 5000);
  assert_false(d.rejected);
  assert_int_equal(c.applied, 2);
  assert_string_equal(c.cgroup, "/from-b");
  assert_string_equal(hook_fx_method(fx, 0, 0),
                      "/runtime.v1alpha1.RuntimeHookService/PreRunPodSandboxHook");
  char *a = sent_cgroup(fx, 0, 0), *b = sent_cgroup(fx, 1, 0);
  assert_string_equal(a, "/kubepods");
  assert_string_equal(b, "/from-a");
  free(a);
  free(b);
}

/* A plugin answering an error: Ignore goes on to the next plugin; Fail
 * stops the chain and rejects the call with the plugin's status. */
static void fail_rejects_ignore_goes_on(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Ignore", POD_HOOKS, 2000);
  hook_fx_plugin(fx, "20-b", 1, "Ignore", POD_HOOKS, 2000);
  hook_fx_load(fx);
  hook_fx_error(fx, 0, GRPC_STATUS_UNAVAILABLE, "plugin is down");
  answer_cgroup(fx, 1, "/from-b");
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 5000);
  assert_false(d.rejected);
  assert_int_equal(hook_fx_calls(fx, 1), 1);
  assert_string_equal(c.cgroup, "/from-b");

  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 2000);
  hook_fx_load(fx);
  chain_ctx c2 = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c2, CH_HOOK_PRE_RUN_POD_SANDBOX, 5000);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_UNAVAILABLE);
  assert_string_equal(d.reject_message,
                      "crihook: plugin 10-a failed on PreRunPodSandbox "
                      "(failure-policy Fail): UNAVAILABLE: plugin is down");
  assert_int_equal(hook_fx_calls(fx, 1), 1); /* 20-b was not called */
  assert_int_equal(c2.applied, 0);
}

/* A plugin that never answers ends at its timeout-ms: rejected for Fail
 * (DEADLINE_EXCEEDED), passed over for Ignore. */
static void timeout(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 200);
  hook_fx_plugin(fx, "20-b", 1, "Ignore", POD_HOOKS, 2000);
  hook_fx_load(fx);
  hook_fx_hang(fx, 0);
  answer_cgroup(fx, 1, "/from-b");
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 10000);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_DEADLINE_EXCEEDED);
  assert_non_null(strstr(d.reject_message,
                         "plugin 10-a failed on PreRunPodSandbox "
                         "(failure-policy Fail): DEADLINE_EXCEEDED"));
  assert_int_equal(hook_fx_calls(fx, 1), 0);

  hook_fx_plugin(fx, "10-a", 0, "Ignore", POD_HOOKS, 200);
  hook_fx_load(fx);
  chain_ctx c2 = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c2, CH_HOOK_PRE_RUN_POD_SANDBOX, 10000);
  assert_false(d.rejected);
  assert_string_equal(c2.cgroup, "/from-b");
}

/* The CRI call's deadline caps a plugin's timeout-ms: a plugin allowed a
 * minute ends with the call's 300 ms (else the pump gives up after 20 s). */
static void call_deadline_caps_plugin_timeout(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 60000);
  hook_fx_load(fx);
  hook_fx_hang(fx, 0);
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 300);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_DEADLINE_EXCEEDED);
}

/* Post hooks are notifications: a failing Fail plugin does not reject, the
 * next plugin is called, and no answer is applied. */
static void post_hooks_never_reject(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 2000);
  hook_fx_plugin(fx, "20-b", 1, "Fail", POD_HOOKS, 2000);
  hook_fx_load(fx);
  hook_fx_error(fx, 0, GRPC_STATUS_INTERNAL, "broken");
  answer_cgroup(fx, 1, "/from-b");
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_POST_STOP_POD_SANDBOX, 5000);
  assert_false(d.rejected);
  assert_int_equal(hook_fx_calls(fx, 1), 1);
  assert_string_equal(hook_fx_method(fx, 1, 0),
                      "/runtime.v1alpha1.RuntimeHookService/PostStopPodSandboxHook");
  assert_int_equal(c.applied, 0);
  assert_string_equal(c.cgroup, "/kubepods");
}

/* An answer the caller cannot apply is the plugin's failure: INTERNAL for
 * Fail, with the cause in the message. */
static void unappliable_answer_rejects_for_fail(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 2000);
  hook_fx_load(fx);
  answer_cgroup(fx, 0, "/from-a");
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods", .refuse_apply = true};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 5000);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_INTERNAL);
  assert_string_equal(d.reject_message,
                      "crihook: plugin 10-a failed on PreRunPodSandbox "
                      "(failure-policy Fail): its answer could not be applied");
}

/* No plugin for the hook: done at once (before start returns), nothing called. */
static void no_plugin_is_done_at_once(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", "[\"PreStartContainer\"]", 2000);
  hook_fx_load(fx);
  assert_false(ch_dispatch_wanted(fx->registry, CH_HOOK_PRE_RUN_POD_SANDBOX));
  assert_true(ch_dispatch_wanted(fx->registry, CH_HOOK_PRE_START_CONTAINER));
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  ch_dispatch_env env = env_of(fx);
  ch_dispatch_start(&d, &env, fx->registry, CH_HOOK_PRE_RUN_POD_SANDBOX, deadline_in(5000), "",
                    &ops, &c);
  assert_true(c.finished);
  assert_false(d.rejected);
  assert_int_equal(hook_fx_calls(fx, 0), 0);
}

/* An answer that is not a hook response is a bad answer: INTERNAL for
 * Fail; for Ignore the chain goes on. */
static void garbage_answer_is_the_plugins_failure(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 2000);
  hook_fx_load(fx);
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  hook_fx_answer_bytes(fx, 0, garbage, sizeof garbage);
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 5000);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_INTERNAL);
  assert_string_equal(d.reject_message,
                      "crihook: plugin 10-a failed on PreRunPodSandbox "
                      "(failure-policy Fail): its answer is not a valid hook response");

  hook_fx_plugin(fx, "10-a", 0, "Ignore", POD_HOOKS, 2000);
  hook_fx_plugin(fx, "20-b", 1, "Fail", POD_HOOKS, 2000);
  hook_fx_load(fx);
  answer_cgroup(fx, 1, "/from-b");
  chain_ctx c2 = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c2, CH_HOOK_PRE_RUN_POD_SANDBOX, 5000);
  assert_false(d.rejected);
  assert_string_equal(c2.cgroup, "/from-b");
}

/* An answer over the bound of a hook answer (answer_check.h) is refused as
 * its prefix announces it: RESOURCE_EXHAUSTED, the bound in the message. */
static void answer_over_the_bound_is_refused(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 5000);
  hook_fx_load(fx);
  size_t len = CH_ANSWER_MAX_BYTES + 1;
  uint8_t *big = calloc(1, len);
  assert_non_null(big);
  hook_fx_answer_bytes(fx, 0, big, len);
  free(big);
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 10000);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_string_equal(d.reject_message,
                      "crihook: plugin 10-a failed on PreRunPodSandbox (failure-policy Fail): "
                      "RESOURCE_EXHAUSTED: answer message of 4194305 bytes is over the limit of "
                      "4194304");
  assert_int_equal(c.applied, 0);
}

/* A hook server that is gone fails its calls at once (UNAVAILABLE, not
 * its timeout-ms); once it is back, the next chain reaches it. */
static void plugin_gone_then_back(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", POD_HOOKS, 10000);
  hook_fx_load(fx);
  answer_cgroup(fx, 0, "/from-a");
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_PRE_RUN_POD_SANDBOX, 20000);
  assert_false(d.rejected);
  assert_string_equal(c.cgroup, "/from-a");

  hook_fx_stop(fx, 0);
  chain_ctx c2 = {.cgroup = "/kubepods"};
  int64_t start = now_ms();
  run_chain(fx, &d, &c2, CH_HOOK_PRE_RUN_POD_SANDBOX, 20000);
  assert_true(now_ms() - start < 5000);
  assert_true(d.rejected);
  assert_int_equal(d.reject_code, GRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(d.reject_message,
                         "crihook: plugin 10-a failed on PreRunPodSandbox "
                         "(failure-policy Fail): UNAVAILABLE: "));

  hook_fx_start(fx, 0);
  chain_ctx c3 = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c3, CH_HOOK_PRE_RUN_POD_SANDBOX, 20000);
  assert_false(d.rejected);
  assert_string_equal(c3.cgroup, "/from-a");
  assert_int_equal(hook_fx_calls(fx, 0), 2);
}

/* ---- the shutdown's cancel_all ---- */

/* A chain on the heap, freed by its own done(), as an owner that frees its
 * call state at once would: cancel_all must not read it afterwards. */
typedef struct owned_chain {
  ch_dispatch d;
  chain_ctx c;
  struct cancel_run *run;
  int index;
} owned_chain;

typedef struct cancel_run {
  hook_fx *fx;
  int done[3];
  bool rejected[3];
  grpc_status_code code[3];
  char message[3][256];
  int cancelled;
  bool started_calls;            /* both hanging plugins got their call */
  bool third_done_before_return; /* the chain started after cancel_all */
} cancel_run;

static void owned_done(void *ctx) {
  owned_chain *o = ctx;
  cancel_run *run = o->run;
  run->done[o->index]++;
  run->rejected[o->index] = o->d.rejected;
  run->code[o->index] = o->d.reject_code;
  snprintf(run->message[o->index], sizeof run->message[0], "%s", o->d.reject_message);
  free(o);
}

static const ch_dispatch_ops owned_ops = {build, apply, owned_done, NULL};

static owned_chain *owned_start(cancel_run *run, int index, ch_hook_point hook) {
  owned_chain *o = calloc(1, sizeof *o);
  if (!o) abort();
  o->run = run;
  o->index = index;
  snprintf(o->c.cgroup, sizeof o->c.cgroup, "/kubepods");
  ch_dispatch_env env = env_of(run->fx);
  ch_dispatch_start(&o->d, &env, run->fx->registry, hook, deadline_in(60000), "pod=ns/p",
                    &owned_ops, o);
  return o;
}

/* On a thread of its own: cancel_all stops that thread's hook calls for
 * good (as it does on a draining loop), which must not reach the other
 * tests. No cmocka assertion here: the main thread checks `run`. */
static void *cancel_thread(void *arg) {
  cancel_run *run = arg;
  hook_fx *fx = run->fx;
  owned_start(run, 0, CH_HOOK_PRE_RUN_POD_SANDBOX);
  owned_start(run, 1, CH_HOOK_PRE_CREATE_CONTAINER);
  int64_t give_up = now_ms() + 10000;
  while (now_ms() < give_up && (hook_fx_calls(fx, 0) < 1 || hook_fx_calls(fx, 1) < 1))
    uv_run(&fx->loop, UV_RUN_NOWAIT);
  run->started_calls = hook_fx_calls(fx, 0) == 1 && hook_fx_calls(fx, 1) == 1;
  run->cancelled = ch_dispatch_cancel_all();
  owned_start(run, 2, CH_HOOK_PRE_RUN_POD_SANDBOX);
  run->third_done_before_return = run->done[2] == 1;
  return NULL;
}

/* Two chains hang on their plugins (one Fail, one Ignore); cancel_all
 * ends both at once, each rejected UNAVAILABLE as the shutdown's, even
 * though each chain's done() frees it; a chain started afterwards on that
 * thread calls nobody and is rejected the same way. */
static void cancel_all_stops_chains_in_flight(void **state) {
  hook_fx *fx = *state;
  hook_fx_plugin(fx, "10-a", 0, "Fail", "[\"PreRunPodSandbox\"]", 60000);
  hook_fx_plugin(fx, "20-b", 1, "Ignore", "[\"PreCreateContainer\"]", 60000);
  hook_fx_load(fx);
  hook_fx_hang(fx, 0);
  hook_fx_hang(fx, 1);
  cancel_run run = {.fx = fx};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, cancel_thread, &run), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(run.started_calls);
  assert_int_equal(run.cancelled, 2);
  assert_true(run.third_done_before_return);
  const char *hooks[3] = {"PreRunPodSandbox", "PreCreateContainer", "PreRunPodSandbox"};
  for (int i = 0; i < 3; i++) {
    char want[128];
    snprintf(want, sizeof want, "crihook: crihookd is shutting down: hook calls cancelled (%s)",
             hooks[i]);
    assert_int_equal(run.done[i], 1);
    assert_true(run.rejected[i]);
    assert_int_equal(run.code[i], GRPC_STATUS_UNAVAILABLE);
    assert_string_equal(run.message[i], want);
  }
  assert_int_equal(hook_fx_calls(fx, 0), 1); /* the third chain called nobody */
}

/* A hook server that goes away gracefully (GOAWAY) refuses the stream it
 * had not processed: the call is sent again on a new connection, once, and
 * is not the plugin's failure. A server that refuses the second time too
 * is (no loop). */
static void refused_call_is_sent_again(void **state) {
  hook_fx *fx = *state;
  char sock[160], file[200];
  snprintf(sock, sizeof sock, "%s/h2.sock", fx->dir);
  fake_h2 *s = fh2_start(sock, FH2_GOAWAY_ONCE);
  assert_non_null(s);
  snprintf(file, sizeof file, "%s/10-h2.json", fx->hooks_dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fprintf(f,
          "{\"remote-endpoint\": \"%s\", \"failure-policy\": \"Fail\", "
          "\"runtime-hooks\": %s, \"timeout-ms\": 2000}\n",
          sock, POD_HOOKS);
  fclose(f);
  hook_fx_load(fx);
  ch_plugin_stats_reset();
  ch_dispatch d;
  chain_ctx c = {.cgroup = "/kubepods"};
  run_chain(fx, &d, &c, CH_HOOK_POST_STOP_POD_SANDBOX, 5000);
  assert_int_equal(fh2_requests(s), 2);
  assert_int_equal(fh2_connections(s), 2);
  ch_plugin_stats st;
  ch_plugin_stats_get("10-h2", &st);
  assert_int_equal(st.calls, 1);
  assert_int_equal(st.failures, 0);
  fh2_set_mode(s, FH2_GOAWAY); /* refuses every stream */
  run_chain(fx, &d, &c, CH_HOOK_POST_STOP_POD_SANDBOX, 5000);
  assert_int_equal(fh2_requests(s), 4); /* the call and one more */
  ch_plugin_stats_get("10-h2", &st);
  assert_int_equal(st.calls, 2);
  assert_int_equal(st.failures, 1);
  assert_non_null(strstr(st.last_error, "refused the stream"));
  fh2_stop(s);
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(chain_applies_answers_in_file_order, setup, teardown),
      cmocka_unit_test_setup_teardown(fail_rejects_ignore_goes_on, setup, teardown),
      cmocka_unit_test_setup_teardown(timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(call_deadline_caps_plugin_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(post_hooks_never_reject, setup, teardown),
      cmocka_unit_test_setup_teardown(unappliable_answer_rejects_for_fail, setup, teardown),
      cmocka_unit_test_setup_teardown(no_plugin_is_done_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(garbage_answer_is_the_plugins_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(answer_over_the_bound_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(plugin_gone_then_back, setup, teardown),
      cmocka_unit_test_setup_teardown(cancel_all_stops_chains_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(refused_call_is_sent_again, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return rc;
}
