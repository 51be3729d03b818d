/* SPDX-License-Identifier: Apache-2.0 */
/* test_stage.c: the interception stage (proxy/server.h, relay.c) on its own,
 * reached the way the relay reaches it: one end of a socketpair handed to
 * ch_proxy_add_fd per call, crihook's own CRI client on the other (as the
 * relay, it is not grpc core). Covered: a hooked call is
 * forwarded to the runtime (a fake CRI server) and its answer comes back;
 * a call the relay never routes here (Version, an ImageService call, an
 * unknown method) is refused with INTERNAL and never reaches the runtime;
 * ch_proxy_drain ends at once with a hooked call in flight at a runtime
 * that never answers (the client gets its call back, nothing waits for a
 * peer); a connection added after the drain is closed. */
#include <grpc/grpc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "cri.pb-c.h"
#include "cri_client.h"
#include "fake_cri_server.h"
#include "grpc_util.h"
#include "registry.h"
#include "server.h"
#include "store.h"
#include "test_clock.h"

static char tmpdir[64];

typedef struct stage {
  fake_cri_server *runtime;
  ch_registry_slot registry;
  ch_store *store;
  ch_proxy *proxy;
  bool drained;
} stage;

static void stage_start(stage *st, fake_cri_mode mode) {
  char sock[128];
  snprintf(sock, sizeof sock, "%s/runtime-%d.sock", tmpdir, (int)mode);
  unlink(sock);
  memset(st, 0, sizeof *st);
  assert_non_null(st->runtime = fake_cri_start(sock, mode, "fake", "1.0"));
  ch_registry_slot_init(&st->registry);
  st->store = ch_store_new();
  char target[160];
  snprintf(target, sizeof target, "unix:%s", sock);
  ch_proxy_config cfg = {.backend = ch_channel_open(target, NULL),
                         .max_msg_size = 4 << 20,
                         .workers = 1,
                         .registry = &st->registry,
                         .store = st->store};
  ch_error err;
  assert_int_equal(ch_proxy_start(&cfg, &st->proxy, &err), 0);
}

static void stage_stop(stage *st) {
  if (!st->drained) ch_proxy_drain(st->proxy);
  ch_proxy_free(st->proxy);
  fake_cri_stop(st->runtime);
  ch_store_free(st->store);
  ch_registry_slot_destroy(&st->registry);
}

/* One unary call through the stage on a connection of its own; returns its
 * status, details in buf. */
static grpc_status_code call(stage *st, const char *package, const char *method,
                             const ProtobufCMessage *req, char *details, size_t len) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal(ch_proxy_add_fd(st->proxy, sv[1]), 0);
  ch_error err;
  cri_client *c = cri_client_open_fd(sv[0], package, 5000, &err);
  assert_non_null(c);
  ProtobufCMessage *resp = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  details[0] = '\0';
  cri_call(c, method, req, &resp, &status, details, len, &err);
  protobuf_c_message_free_unpacked(resp, NULL);
  cri_client_free(c);
  return status;
}

static void test_hooked_call_is_forwarded(void **state) {
  (void)state;
  stage st;
  stage_start(&st, FAKE_CRI_UNAVAILABLE); /* its answer tells it got the call */
  Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
  req.pod_sandbox_id = "3c5bd2b7e4f1a09d";
  char details[256];
  assert_int_equal(call(&st, NULL, "StopPodSandbox", &req.base, details, sizeof details),
                   GRPC_STATUS_UNAVAILABLE);
  assert_string_equal(details, FAKE_CRI_UNAVAILABLE_TEXT);
  assert_int_equal(fake_cri_call_count(st.runtime), 1);
  char method[128];
  fake_cri_call_method(st.runtime, 0, method, sizeof method);
  assert_string_equal(method, "/runtime.v1.RuntimeService/StopPodSandbox");
  stage_stop(&st);
}

static void test_calls_not_routed_here_are_refused(void **state) {
  (void)state;
  stage st;
  stage_start(&st, FAKE_CRI_OK);
  char details[256];
  /* the relay answers these itself; reaching the stage is a routing bug */
  assert_int_equal(call(&st, NULL, "Version", NULL, details, sizeof details), GRPC_STATUS_INTERNAL);
  assert_non_null(strstr(details, "only hooked unary CRI calls"));
  assert_int_equal(call(&st, NULL, "ListImages", NULL, details, sizeof details),
                   GRPC_STATUS_INTERNAL);
  assert_int_equal(call(&st, CRI_PACKAGE_V1ALPHA2, "Version", NULL, details, sizeof details),
                   GRPC_STATUS_INTERNAL);
  assert_int_equal(fake_cri_call_count(st.runtime), 0);
  stage_stop(&st);
}

/* A hooked call to a runtime that never answers, on its own thread. */
typedef struct pending_call {
  stage *st;
  grpc_status_code status;
  char details[256];
} pending_call;

static void *stop_pod(void *arg) {
  pending_call *p = arg;
  Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
  req.pod_sandbox_id = "9f00c1de22aa7b31";
  p->status = call(p->st, NULL, "StopPodSandbox", &req.base, p->details, sizeof p->details);
  return NULL;
}

static void test_drain_ends_at_once(void **state) {
  (void)state;
  stage st;
  stage_start(&st, FAKE_CRI_HANG);
  pending_call p = {.st = &st};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, stop_pod, &p), 0);
  for (int i = 0; i < 500 && fake_cri_call_count(st.runtime) == 0; i++) usleep(10 * 1000);
  assert_int_equal(fake_cri_call_count(st.runtime), 1); /* in flight at the runtime */
  int64_t start = now_ms();
  ch_proxy_drain(st.proxy);
  st.drained = true;
  int64_t took = now_ms() - start;
  pthread_join(t, NULL);
  printf("# drain with a call in flight: %lld ms, the client got %d (%s)\n", (long long)took,
         (int)p.status, p.details);
  assert_true(took < 2000); /* the call's own deadline is 5 s */
  assert_int_not_equal(p.status, GRPC_STATUS_OK);
  assert_int_not_equal(p.status, GRPC_STATUS_DEADLINE_EXCEEDED);
  /* no connection is taken once the stage has drained */
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(ch_proxy_add_fd(st.proxy, sv[1]), -1);
  char b;
  assert_int_equal(read(sv[0], &b, 1), 0); /* closed */
  close(sv[0]);
  stage_stop(&st);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/crihook-stage-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  grpc_init();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  grpc_shutdown();
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hooked_call_is_forwarded),
      cmocka_unit_test(test_calls_not_routed_here_are_refused),
      cmocka_unit_test(test_drain_ends_at_once),
  };
  return cmocka_run_group_tests_name("stage (the interception stage behind the relay)", tests,
                                     setup, teardown);
}
