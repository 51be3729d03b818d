/* SPDX-License-Identifier: Apache-2.0 */
/* test_sdk_abi.c: libcrihook's ABI promises (crihook_plugin.h, sdk/ops.c),
 * against the real shared library.
 *
 * Each case starts a real hook server through the SDK (crihook_serve on a
 * thread, on a unix socket in a temp dir) and calls it over grpc as crihookd
 * would (common/grpc_util.c's unary call, kubelet-shaped requests):
 *   - an ops struct of an older, smaller layout (a size field and only the
 *     first seven callbacks), lying in memory before pointers that would be
 *     callbacks in today's layout: its hooks answer, the later hooks answer
 *     UNIMPLEMENTED and the bytes past its size are never called;
 *   - a struct from a newer header (larger size): served when the callbacks
 *     the library does not know are NULL, refused with a message otherwise;
 *   - a size of 0 (CRIHOOK_PLUGIN_OPS_INIT forgotten) or of no layout at all
 *     is refused with a message, before any socket is made;
 *   - a plugin built against libcrihook 0.1 (ten callbacks, no size) binds
 *     crihook_serve@CRIHOOK_0.1 and is still served;
 *   - the endpoint spellings crihookd accepts ("unix:/x", "unix:///x") work,
 *     and others are refused in words. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include "crihook_plugin.h"
#include "grpc_util.h"

#define SERVICE "/runtime.v1alpha1.RuntimeHookService/"

typedef void (*any_callback)(void);

/* ---- the callbacks ---- */

static int good_calls, poison_calls;

static int set_env(void *user, const crihook_container_request *req,
                   crihook_container_response *resp, crihook_error *err) {
  (void)user;
  (void)err;
  good_calls++;
  const char *pod = req->pod_meta ? req->pod_meta->name : "?";
  return crihook_set_env(resp, "SERVED_POD", pod) == 0 ? 0 : CRIHOOK_RESOURCE_EXHAUSTED;
}

static int noop_pod(void *user, const crihook_pod_request *req, crihook_pod_response *resp,
                    crihook_error *err) {
  (void)user, (void)req, (void)resp, (void)err;
  good_calls++;
  return 0;
}

/* Sits where an old plugin's struct has ended: must never be called. */
static int poison(void *user, const crihook_container_request *req,
                  crihook_container_response *resp, crihook_error *err) {
  (void)user, (void)req, (void)resp;
  poison_calls++;
  return crihook_fail(err, CRIHOOK_INTERNAL, "read past the end of the plugin's ops");
}

/* ---- a server on a thread ---- */

typedef int (*serve_fn)(const char *path, const void *ops, void *user, crihook_error *err);

typedef struct server_run {
  serve_fn serve;
  const void *ops;
  char endpoint[160];
  char path[128];
  pthread_t thread;
  int rc;
  crihook_error err;
} server_run;

static int serve_current(const char *path, const void *ops, void *user, crihook_error *err) {
  return crihook_serve(path, ops, user, err);
}

static void *serve_main(void *arg) {
  server_run *r = arg;
  r->rc = r->serve(r->endpoint, r->ops, NULL, &r->err);
  return NULL;
}

static char workdir[64];
static server_run *running; /* stopped by teardown if a failed test left it */

static int setup(void **state) {
  (void)state;
  snprintf(workdir, sizeof workdir, "/tmp/crihook-sdk-abi-XXXXXX");
  if (!mkdtemp(workdir)) return -1;
  good_calls = poison_calls = 0;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (running) {
    crihook_stop();
    pthread_join(running->thread, NULL);
    running = NULL;
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
  return system(cmd) == 0 ? 0 : -1;
}

static bool connectable(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* Starts `serve(endpoint, ops)` on a thread and waits (up to 20 s) until the
 * socket at `path` accepts. */
static void start(server_run *r, serve_fn serve, const void *ops, const char *scheme) {
  memset(r, 0, sizeof *r);
  r->serve = serve;
  r->ops = ops;
  snprintf(r->path, sizeof r->path, "%s/plugin.sock", workdir);
  snprintf(r->endpoint, sizeof r->endpoint, "%s%s", scheme, r->path);
  assert_int_equal(pthread_create(&r->thread, NULL, serve_main, r), 0);
  running = r;
  for (int i = 0; i < 2000 && !connectable(r->path); i++) {
    struct timespec tick = {0, 10 * 1000 * 1000};
    nanosleep(&tick, NULL);
  }
  assert_true(connectable(r->path));
}

static void stop(server_run *r) {
  crihook_stop();
  running = NULL;
  assert_int_equal(pthread_join(r->thread, NULL), 0);
  if (r->rc != 0) fail_msg("crihook_serve: %s", r->err.message);
  assert_int_equal(r->rc, 0);
  struct stat st;
  assert_int_not_equal(lstat(r->path, &st), 0); /* the SDK removed its socket */
}

/* ---- calling it as crihookd does ---- */

typedef struct answer {
  grpc_status_code status;
  char details[512];
  char env[128]; /* SERVED_POD in a container answer, or "" */
} answer;

static void pack_container_request(uint8_t **buf, size_t *len) {
  Runtime__V1alpha1__PodSandboxMetadata pod = RUNTIME__V1ALPHA1__POD_SANDBOX_METADATA__INIT;
  pod.name = "web-0";
  pod.namespace_ = "default";
  pod.uid = "0c2f1a3e-8f1b-4c7a-9d55-3f0e1b2a4c6d";
  Runtime__V1alpha1__ContainerMetadata ctr = RUNTIME__V1ALPHA1__CONTAINER_METADATA__INIT;
  ctr.name = "nginx";
  Runtime__V1alpha1__ContainerResourceHookRequest req =
      RUNTIME__V1ALPHA1__CONTAINER_RESOURCE_HOOK_REQUEST__INIT;
  req.pod_meta = &pod;
  req.container_meta = &ctr;
  *len = runtime__v1alpha1__container_resource_hook_request__get_packed_size(&req);
  *buf = malloc(*len ? *len : 1);
  assert_non_null(*buf);
  runtime__v1alpha1__container_resource_hook_request__pack(&req, *buf);
}

static void read_env(const ch_unary_result *res, answer *a) {
  Runtime__V1alpha1__ContainerResourceHookResponse *resp =
      runtime__v1alpha1__container_resource_hook_response__unpack(NULL, res->response_len,
                                                                  res->response);
  assert_non_null(resp);
  const char *v = CRIHOOK_MAP_GET(resp, container_envs, "SERVED_POD");
  snprintf(a->env, sizeof a->env, "%s", v ? v : "");
  runtime__v1alpha1__container_resource_hook_response__free_unpacked(resp, NULL);
}

/* Calls hook `hook` ("PreCreateContainer") on the server at `path`; every
 * hook gets a container request, which pod-level ones do not decode when
 * they are unimplemented, and decode as a pod request otherwise. */
static answer call(const char *path, const char *hook) {
  answer a = {0};
  char target[160], method[160];
  snprintf(target, sizeof target, "unix:%s", path);
  snprintf(method, sizeof method, SERVICE "%sHook", hook);
  uint8_t *req;
  size_t len;
  pack_container_request(&req, &len);
  grpc_channel *ch = ch_channel_open(target);
  ch_unary_result res;
  ch_error err;
  int rc = ch_unary_call(ch, method, req, len, 10000, NULL, 0, &res, &err);
  if (rc != 0) fail_msg("%s", err.msg);
  a.status = res.status;
  snprintf(a.details, sizeof a.details, "%s", res.details);
  if (a.status == GRPC_STATUS_OK && res.response && strncmp(hook, "Pre", 3) == 0 &&
      strstr(hook, "Container"))
    read_env(&res, &a);
  ch_unary_result_clear(&res);
  grpc_channel_destroy(ch);
  free(req);
  return a;
}

/* ---- an older layout ---- */

/* What crihook_plugin_ops looked like before its last three callbacks were
 * appended: a size and the first seven. */
typedef struct ops_older {
  size_t size;
  crihook_pod_hook pre_run_pod_sandbox;
  crihook_pod_hook post_stop_pod_sandbox;
  crihook_pod_hook pre_remove_pod_sandbox;
  crihook_container_hook pre_create_container;
  crihook_container_hook pre_start_container;
  crihook_container_hook post_start_container;
  crihook_container_hook pre_update_container_resources;
} ops_older;

static void older_layout_serves_its_hooks_and_reads_nothing_past_it(void **state) {
  (void)state;
  /* The old struct, followed by what today's layout would read as
   * pre_stop_container, post_stop_container and post_remove_container. */
  struct {
    ops_older ops;
    crihook_container_hook after[3];
  } mem = {.ops = {.size = sizeof(ops_older),
                   .pre_run_pod_sandbox = noop_pod,
                   .pre_create_container = set_env,
                   .pre_update_container_resources = set_env},
           .after = {poison, poison, poison}};
  _Static_assert(offsetof(__typeof__(mem), after) == sizeof(ops_older), "no padding");
  server_run r;
  start(&r, serve_current, &mem.ops, "");
  answer a = call(r.path, "PreCreateContainer");
  assert_int_equal(a.status, GRPC_STATUS_OK);
  assert_string_equal(a.env, "web-0");
  assert_int_equal(call(r.path, "PreUpdateContainerResources").status, GRPC_STATUS_OK);
  const char *later[] = {"PreStopContainer", "PostStopContainer", "PostRemoveContainer"};
  for (size_t i = 0; i < 3; i++) {
    a = call(r.path, later[i]);
    assert_int_equal(a.status, GRPC_STATUS_UNIMPLEMENTED);
    assert_non_null(strstr(a.details, later[i]));
  }
  /* in the old layout, but NULL */
  assert_int_equal(call(r.path, "PreStartContainer").status, GRPC_STATUS_UNIMPLEMENTED);
  stop(&r);
  assert_int_equal(poison_calls, 0);
  assert_int_equal(good_calls, 2);
}

/* ---- a newer layout ---- */

typedef struct ops_newer {
  crihook_plugin_ops ops;
  crihook_container_hook future_hook_a;
  crihook_container_hook future_hook_b;
} ops_newer;

static void newer_layout_without_unknown_callbacks_is_served(void **state) {
  (void)state;
  ops_newer n = {.ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = set_env}};
  n.ops.size = sizeof n;
  server_run r;
  start(&r, serve_current, &n, "");
  answer a = call(r.path, "PreCreateContainer");
  assert_int_equal(a.status, GRPC_STATUS_OK);
  assert_string_equal(a.env, "web-0");
  stop(&r);
}

/* crihook_serve refuses before it touches the socket: returns -1 at once. */
static void assert_refused(const void *ops, const char *expected) {
  char path[128];
  snprintf(path, sizeof path, "%s/refused.sock", workdir);
  crihook_error err;
  assert_int_equal(crihook_serve(path, ops, NULL, &err), -1);
  if (!strstr(err.message, expected))
    fail_msg("message \"%s\" lacks \"%s\"", err.message, expected);
  struct stat st;
  assert_int_not_equal(lstat(path, &st), 0);
}

static void newer_layout_with_unknown_callbacks_is_refused(void **state) {
  (void)state;
  ops_newer n = {.ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = set_env},
                 .future_hook_b = set_env};
  n.ops.size = sizeof n;
  assert_refused(&n, "built against a newer crihook_plugin.h");
  assert_int_equal(good_calls, 0);
}

static void sizes_of_no_layout_are_refused(void **state) {
  (void)state;
  crihook_plugin_ops forgot = {.pre_create_container = set_env};
  assert_refused(&forgot, "size is 0; initialise the ops with CRIHOOK_PLUGIN_OPS_INIT");
  crihook_plugin_ops odd = {.size = sizeof(size_t) + 3, .pre_create_container = set_env};
  assert_refused(&odd, "is not the size of any crihook_plugin_ops");
  crihook_plugin_ops huge = {.size = (size_t)1 << 40, .pre_create_container = set_env};
  assert_refused(&huge, "is not the size of any crihook_plugin_ops");
  assert_refused(NULL, "ops is NULL");
}

/* ---- a plugin built against libcrihook 0.1 ---- */

typedef struct ops_0_1 {
  crihook_pod_hook pre_run_pod_sandbox;
  crihook_pod_hook post_stop_pod_sandbox;
  crihook_pod_hook pre_remove_pod_sandbox;
  crihook_container_hook pre_create_container;
  crihook_container_hook pre_start_container;
  crihook_container_hook post_start_container;
  crihook_container_hook pre_update_container_resources;
  crihook_container_hook pre_stop_container;
  crihook_container_hook post_stop_container;
  crihook_container_hook post_remove_container;
} ops_0_1;

/* What a binary linked against 0.1 calls: crihook_serve@CRIHOOK_0.1. */
int serve_0_1(const char *path, const ops_0_1 *ops, void *user, crihook_error *err);
__asm__(".symver serve_0_1, crihook_serve@CRIHOOK_0.1");

static int serve_old_binary(const char *path, const void *ops, void *user, crihook_error *err) {
  return serve_0_1(path, ops, user, err);
}

static void plugin_built_against_0_1_is_served(void **state) {
  (void)state;
  ops_0_1 ops = {.pre_create_container = set_env, .post_remove_container = set_env};
  server_run r;
  start(&r, serve_old_binary, &ops, "");
  answer a = call(r.path, "PreCreateContainer");
  assert_int_equal(a.status, GRPC_STATUS_OK);
  assert_string_equal(a.env, "web-0");
  assert_int_equal(call(r.path, "PostRemoveContainer").status, GRPC_STATUS_OK);
  assert_int_equal(call(r.path, "PreStartContainer").status, GRPC_STATUS_UNIMPLEMENTED);
  stop(&r);
  assert_int_equal(good_calls, 2);
}

/* ---- endpoints ---- */

static void serve_on(const char *scheme) {
  crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = set_env};
  server_run r;
  start(&r, serve_current, &ops, scheme);
  answer a = call(r.path, "PreCreateContainer");
  assert_int_equal(a.status, GRPC_STATUS_OK);
  assert_string_equal(a.env, "web-0");
  stop(&r);
}

static void endpoints_as_crihookd_writes_them(void **state) {
  (void)state;
  serve_on("unix:");
  serve_on("unix://");
  serve_on("");
  assert_int_equal(good_calls, 3);
}

static void assert_endpoint_refused(const char *endpoint, const char *expected) {
  crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = set_env};
  crihook_error err;
  assert_int_equal(crihook_serve(endpoint, &ops, NULL, &err), -1);
  char want[256];
  snprintf(want, sizeof want, "cannot listen on %s: %s", endpoint, expected);
  assert_string_equal(err.message, want);
}

static void other_endpoints_are_refused_in_words(void **state) {
  (void)state;
  assert_endpoint_refused("plugin.sock", "the socket path must be absolute");
  assert_endpoint_refused("unix:plugin.sock", "the socket path must be absolute");
  assert_endpoint_refused("tcp://127.0.0.1:9000", "only unix sockets are supported");
  assert_endpoint_refused("", "empty endpoint");
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(older_layout_serves_its_hooks_and_reads_nothing_past_it,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(newer_layout_without_unknown_callbacks_is_served, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(newer_layout_with_unknown_callbacks_is_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(sizes_of_no_layout_are_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(plugin_built_against_0_1_is_served, setup, teardown),
      cmocka_unit_test_setup_teardown(endpoints_as_crihookd_writes_them, setup, teardown),
      cmocka_unit_test_setup_teardown(other_endpoints_are_refused_in_words, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return failed;
}
