/* SPDX-License-Identifier: Apache-2.0 */
/* test_rebuild.c: the store's rebuild from the backend (store/rebuild.c)
 * and the lenient JSON decoding it relies on (ch_pb_from_json_lenient).
 *
 * Two kinds of backend:
 * - a scripted fake (fake_grpc_server.c) playing a runtime whose verbose
 *   info is containerd-like for some objects and absent or not JSON for
 *   others, with objects that vanish between List and Status, and Lists
 *   or Statuses that fail;
 * - a real containerd from tests/harness/containerd.sh, with a pod (cgroup
 *   parent, labels, annotations, overhead, resources) and containers (envs,
 *   resources, annotations) made by crihookctl; the containerd tests are
 *   skipped when the harness cannot start one (e.g. not root).
 * Both also check the re-sync (add what the store lacks, drop what the
 * runtime lacks), the fill, single records from a status answer, and that
 * a rebuild after UpdateContainerResources has the current resources.
 * meson sets CRIHOOK_SOURCE_DIR and CRIHOOK_BUILD_DIR for the latter. */
#include <grpc/grpc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "cri.pb-c.h"
#include "fake_grpc_server.h"
#include "grpc_util.h"
#include "pbjson.h"
#include "store.h"

#define CALL_TIMEOUT_MS 5000

static char tmpdir[64]; /* this run's scratch directory */

/* ---- helpers ------------------------------------------------------------- */

static void assert_json_text(json_t *got, const char *want_text) {
  json_error_t jerr;
  json_t *want = json_loads(want_text, 0, &jerr);
  if (!want) fail_msg("bad expected JSON (%s): %s", jerr.text, want_text);
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
    print_error("got:\n%s\nwant:\n%s\n", g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
    fail();
  }
  json_decref(want);
}

static void assert_msg_json(const ProtobufCMessage *msg, const char *want_text) {
  json_t *got = ch_pb_to_json(msg);
  assert_json_text(got, want_text);
  json_decref(got);
}

static void assert_pod_json(ch_store *s, const char *id, const char *want) {
  ch_pod_record *pod = ch_store_get_pod(s, id);
  if (!pod) fail_msg("pod %s is not in the store", id);
  assert_msg_json(&pod->base, want);
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
}

/* Checks the container's full hook request, its pod ID and env order. */
static void assert_container(ch_store *s, const char *id, const char *want_pod_id, const char *want,
                             const char *const *env_keys, size_t n_envs) {
  char *pod_id = NULL;
  ch_container_record *c = ch_store_container_request(s, id, &pod_id);
  if (!c) fail_msg("container %s is not in the store", id);
  assert_string_equal(pod_id, want_pod_id);
  assert_msg_json(&c->base, want);
  assert_int_equal(c->n_container_envs, n_envs);
  for (size_t i = 0; i < n_envs; i++) assert_string_equal(c->container_envs[i]->key, env_keys[i]);
  free(pod_id);
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
}

static void put_stale_content(ch_store *s) {
  ch_error err;
  ch_pod_record pod = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
  pod.cgroup_parent = "/stale";
  assert_int_equal(ch_store_put_pod(s, "stale-pod", &pod, &err), 0);
  ch_container_record ctr = RUNTIME__V1ALPHA1__CONTAINER_RESOURCE_HOOK_REQUEST__INIT;
  assert_int_equal(ch_store_put_container(s, "stale-ctr", "stale-pod", &ctr, &err), 0);
}

static void assert_stale_content(ch_store *s) {
  assert_int_equal(ch_store_pod_count(s), 1);
  assert_int_equal(ch_store_container_count(s), 1);
  assert_pod_json(s, "stale-pod", "{\"cgroup_parent\": \"/stale\"}");
}

/* ---- lenient JSON decoding ------------------------------------------------- */

static void test_lenient_skips_unknown_keys(void **state) {
  (void)state;
  const char *text =
      "{\"metadata\": {\"name\": \"x\", \"future\": 1},"
      " \"linux\": {\"cgroup_parent\": \"/p\", \"newThing\": [{\"a\": null}],"
      "   \"resources\": {\"cpu_shares\": 2, \"unknown_res\": \"x\"}},"
      " \"labels\": {\"future\": \"is a map key, kept\"},"
      " \"windows\": {\"security_context\": {}}, \"zz\": null}";
  json_t *json = json_loads(text, 0, NULL);
  assert_non_null(json);
  ProtobufCMessage *msg = NULL;
  ch_error err = {{0}};
  assert_int_equal(ch_pb_from_json(&runtime__v1__pod_sandbox_config__descriptor, json, &msg, &err),
                   -1);
  assert_null(msg);
  assert_non_null(strstr(err.msg, "unknown field"));
  assert_int_equal(
      ch_pb_from_json_lenient(&runtime__v1__pod_sandbox_config__descriptor, json, &msg, &err), 0);
  assert_msg_json(msg,
                  "{\"metadata\": {\"name\": \"x\"}, \"labels\": {\"future\": \"is a map "
                  "key, kept\"}, \"linux\": {\"cgroup_parent\": \"/p\", \"resources\": "
                  "{\"cpu_shares\": 2}}}");
  protobuf_c_message_free_unpacked(msg, NULL);
  json_decref(json);
}

static void test_lenient_still_checks_types(void **state) {
  (void)state;
  const char *bad[] = {
      "{\"metadata\": {\"name\": 5}}",
      "{\"linux\": {\"resources\": {\"cpu_shares\": \"many\"}}}",
      "{\"log_directory\": \"/a\", \"logDirectory\": \"/b\"}",
      "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *json = json_loads(bad[i], 0, NULL);
    assert_non_null(json);
    ProtobufCMessage *msg = (ProtobufCMessage *)&msg; /* must be reset to NULL */
    ch_error err = {{0}};
    assert_int_equal(
        ch_pb_from_json_lenient(&runtime__v1__pod_sandbox_config__descriptor, json, &msg, &err),
        -1);
    assert_null(msg);
    assert_non_null(strstr(err.msg, "PodSandboxConfig"));
    json_decref(json);
  }
}

/* ---- the scripted fake runtime --------------------------------------------- */

/* Pods: p-gone (NOT_FOUND on Status), p-info (containerd-like info), p-plain
 * (info that is not JSON). Containers: c-gone, c-info in p-info, c-plain in
 * p-plain (no info at all). */
/* Shared with the fake server's thread, which the test orders only by the
 * calls themselves (through a socket, which ThreadSanitizer does not count
 * as synchronization): hence atomics. */
typedef struct script {
  _Atomic(grpc_status_code) list_pods;     /* status of ListPodSandbox */
  _Atomic(grpc_status_code) list_ctrs;     /* status of ListContainers */
  _Atomic(grpc_status_code) p_info_status; /* status of PodSandboxStatus(p-info) */
  atomic_int calls_seen[4];                /* per method, for the assertions */
  atomic_bool v1alpha2_only;        /* runtime.v1 -> UNIMPLEMENTED, runtime.v1alpha2 answers */
  atomic_int other_package;         /* calls in the package the fake does not speak */
  const char *_Atomic runtime_name; /* Version's; NULL: "containerd" */
} script;

static const char *const pod_info_doc =
    "{\"pid\": 42, \"processStatus\": \"running\", \"runtimeHandler\": \"\","
    " \"runtimeSpec\": {\"ociVersion\": \"1.0.2-dev\"},"
    " \"config\": {\"metadata\": {\"name\": \"web\", \"uid\": \"u-1\", \"namespace\": "
    "\"default\", \"attempt\": 1},"
    "   \"hostname\": \"web\", \"log_directory\": \"/var/log/pods/web\","
    "   \"dns_config\": {\"servers\": [\"10.0.0.10\"]},"
    "   \"port_mappings\": [{\"protocol\": 1, \"container_port\": 80}],"
    "   \"labels\": {\"app\": \"web\", \"io.kubernetes.pod.name\": \"web\"},"
    "   \"annotations\": {\"k\": \"v\", \"kubernetes.io/config.source\": \"api\"},"
    "   \"linux\": {\"cgroup_parent\": \"/kubepods/burstable/podu-1\","
    "     \"security_context\": {\"namespace_options\": {\"network\": 2}, \"seccomp\": "
    "{\"profile_type\": 1}, \"future_field\": {\"x\": 1}},"
    "     \"sysctls\": {\"net.ipv4.ip_forward\": \"1\"},"
    "     \"overhead\": {\"cpu_shares\": 10, \"memory_limit_in_bytes\": 1048576},"
    "     \"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, "
    "\"memory_limit_in_bytes\": 134217728, \"hugepage_limits\": [{\"page_size\": \"2MB\", "
    "\"limit\": 4194304}], \"unified\": {\"memory.high\": \"max\"}}},"
    "   \"future_top\": [1, 2]}}";

/* Its runtimeSpec has the resources after an update (cpu shares 512 -> 777,
 * cpuset 0 -> 0-1), the swap containerd derives from the memory limit, and
 * a quota of 0 (not set). */
static const char *const ctr_info_doc =
    "{\"sandboxID\": \"p-info\", \"pid\": 43, \"removing\": false, \"snapshotKey\": \"k\","
    " \"runtimeSpec\": {\"ociVersion\": \"1.0.2-dev\", \"linux\": {\"resources\": {"
    "   \"devices\": [{\"allow\": false, \"access\": \"rwm\"}],"
    "   \"memory\": {\"limit\": 67108864, \"swap\": 67108864},"
    "   \"cpu\": {\"shares\": 777, \"quota\": 0, \"cpus\": \"0-1\"}}}},"
    " \"config\": {\"metadata\": {\"name\": \"app\", \"attempt\": 2},"
    "   \"image\": {\"image\": \"busybox\"}, \"command\": [\"sh\"],"
    "   \"envs\": [{\"key\": \"Z\", \"value\": \"1\"}, {\"key\": \"A\", \"value\": \"b c\"}, "
    "{\"key\": \"M\"}],"
    "   \"mounts\": [{\"container_path\": \"/data\", \"host_path\": \"/srv\", \"propagation\": 2}],"
    "   \"labels\": {\"l\": \"v\"}, \"annotations\": {\"ca\": \"cv\"}, \"log_path\": \"app.log\","
    "   \"linux\": {\"resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": 67108864, "
    "\"cpuset_cpus\": \"0\"},"
    "     \"security_context\": {\"capabilities\": {\"add_capabilities\": [\"NET_ADMIN\"]}, "
    "\"run_as_user\": {\"value\": 0}}},"
    "   \"CDI_devices\": [{\"name\": \"vendor.com/dev=1\"}]}}";

static void pod_item(Runtime__V1__PodSandbox *item, Runtime__V1__PodSandboxMetadata *meta,
                     const char *id, const char *runtime_handler) {
  runtime__v1__pod_sandbox__init(item);
  runtime__v1__pod_sandbox_metadata__init(meta);
  meta->name = (char *)id;
  item->id = (char *)id;
  item->metadata = meta;
  item->runtime_handler = (char *)runtime_handler;
}

static void answer_list_pods(const script *sc, fake_answer *a) {
  if (sc->list_pods != GRPC_STATUS_OK) {
    fake_answer_error(a, sc->list_pods, "runtime is down");
    return;
  }
  Runtime__V1__PodSandbox items[3];
  Runtime__V1__PodSandboxMetadata metas[3];
  pod_item(&items[0], &metas[0], "p-gone", "");
  pod_item(&items[1], &metas[1], "p-info", "kata");
  pod_item(&items[2], &metas[2], "p-plain", "from-the-list");
  Runtime__V1__PodSandbox *ptrs[3] = {&items[0], &items[1], &items[2]};
  Runtime__V1__ListPodSandboxResponse list = RUNTIME__V1__LIST_POD_SANDBOX_RESPONSE__INIT;
  list.n_items = 3;
  list.items = ptrs;
  fake_answer_message(a, &list.base);
}

typedef Runtime__V1__PodSandboxStatusResponse__InfoEntry pod_info_entry;

static void answer_pod_status_info(fake_answer *a) {
  Runtime__V1__PodSandboxStatusResponse r = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
  Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
  Runtime__V1__PodSandboxMetadata meta = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
  meta.name = "status-name-not-used"; /* the config wins */
  st.id = "p-info";
  st.metadata = &meta;
  st.runtime_handler = "kata";
  pod_info_entry info = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
  info.key = "info";
  info.value = (char *)pod_info_doc;
  pod_info_entry *infos[1] = {&info};
  r.status = &st;
  r.n_info = 1;
  r.info = infos;
  fake_answer_message(a, &r.base);
}

static void answer_pod_status_plain(fake_answer *a) {
  Runtime__V1__PodSandboxStatusResponse r = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
  Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
  Runtime__V1__PodSandboxMetadata meta = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
  meta.name = "plain";
  meta.uid = "u-2";
  meta.namespace_ = "kube-system";
  meta.attempt = 4;
  st.id = "p-plain";
  st.metadata = &meta;
  st.state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
  st.runtime_handler = "runsc";
  Runtime__V1__PodSandboxStatus__LabelsEntry label =
      RUNTIME__V1__POD_SANDBOX_STATUS__LABELS_ENTRY__INIT;
  label.key = "l";
  label.value = "1";
  Runtime__V1__PodSandboxStatus__LabelsEntry *labels[1] = {&label};
  Runtime__V1__PodSandboxStatus__AnnotationsEntry ann =
      RUNTIME__V1__POD_SANDBOX_STATUS__ANNOTATIONS_ENTRY__INIT;
  ann.key = "an";
  ann.value = "2";
  Runtime__V1__PodSandboxStatus__AnnotationsEntry *anns[1] = {&ann};
  st.n_labels = 1;
  st.labels = labels;
  st.n_annotations = 1;
  st.annotations = anns;
  pod_info_entry info = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
  info.key = "info";
  info.value = "{this is not json";
  pod_info_entry *infos[1] = {&info};
  r.status = &st;
  r.n_info = 1;
  r.info = infos;
  fake_answer_message(a, &r.base);
}

static void answer_pod_status(const script *sc, const uint8_t *req, size_t len, fake_answer *a) {
  Runtime__V1__PodSandboxStatusRequest *r =
      runtime__v1__pod_sandbox_status_request__unpack(NULL, len, req);
  if (!r || !r->verbose) /* (no cmocka asserts on the server's thread) */
    fake_answer_error(a, GRPC_STATUS_INVALID_ARGUMENT, "want a verbose status request");
  else if (strcmp(r->pod_sandbox_id, "p-info") == 0 && sc->p_info_status != GRPC_STATUS_OK)
    fake_answer_error(a, sc->p_info_status, "status broke");
  else if (strcmp(r->pod_sandbox_id, "p-info") == 0)
    answer_pod_status_info(a);
  else if (strcmp(r->pod_sandbox_id, "p-plain") == 0)
    answer_pod_status_plain(a);
  else
    fake_answer_error(a, GRPC_STATUS_NOT_FOUND, "an error occurred when try to find sandbox");
  if (r) runtime__v1__pod_sandbox_status_request__free_unpacked(r, NULL);
}

static void ctr_item(Runtime__V1__Container *item, Runtime__V1__ContainerMetadata *meta,
                     const char *id, const char *pod_id) {
  runtime__v1__container__init(item);
  runtime__v1__container_metadata__init(meta);
  meta->name = (char *)id;
  item->id = (char *)id;
  item->pod_sandbox_id = (char *)pod_id;
  item->metadata = meta;
}

static void answer_list_ctrs(const script *sc, fake_answer *a) {
  if (sc->list_ctrs != GRPC_STATUS_OK) {
    fake_answer_error(a, sc->list_ctrs, "containers are down");
    return;
  }
  Runtime__V1__Container items[3];
  Runtime__V1__ContainerMetadata metas[3];
  ctr_item(&items[0], &metas[0], "c-gone", "p-info");
  ctr_item(&items[1], &metas[1], "c-info", "p-info");
  ctr_item(&items[2], &metas[2], "c-plain", "p-plain");
  Runtime__V1__Container *ptrs[3] = {&items[0], &items[1], &items[2]};
  Runtime__V1__ListContainersResponse list = RUNTIME__V1__LIST_CONTAINERS_RESPONSE__INIT;
  list.n_containers = 3;
  list.containers = ptrs;
  fake_answer_message(a, &list.base);
}

static void answer_ctr_status_info(fake_answer *a) {
  Runtime__V1__ContainerStatusResponse r = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
  Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
  st.id = "c-info";
  Runtime__V1__ContainerStatusResponse__InfoEntry info =
      RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
  info.key = "info";
  info.value = (char *)ctr_info_doc;
  Runtime__V1__ContainerStatusResponse__InfoEntry *infos[1] = {&info};
  r.status = &st;
  r.n_info = 1;
  r.info = infos;
  fake_answer_message(a, &r.base);
}

/* CRI-O-like: no info; metadata, annotations and resources in the status. */
static void answer_ctr_status_plain(fake_answer *a) {
  Runtime__V1__ContainerStatusResponse r = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
  Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
  Runtime__V1__ContainerMetadata meta = RUNTIME__V1__CONTAINER_METADATA__INIT;
  meta.name = "side";
  meta.attempt = 3;
  st.id = "c-plain";
  st.metadata = &meta;
  Runtime__V1__ImageSpec image = RUNTIME__V1__IMAGE_SPEC__INIT;
  image.image = "registry.example/side:1";
  st.image = &image;
  Runtime__V1__ContainerStatus__AnnotationsEntry ann =
      RUNTIME__V1__CONTAINER_STATUS__ANNOTATIONS_ENTRY__INIT;
  ann.key = "x";
  ann.value = "y";
  Runtime__V1__ContainerStatus__AnnotationsEntry *anns[1] = {&ann};
  st.n_annotations = 1;
  st.annotations = anns;
  Runtime__V1__ContainerResources res = RUNTIME__V1__CONTAINER_RESOURCES__INIT;
  Runtime__V1__LinuxContainerResources linux_res = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
  linux_res.cpu_shares = 256;
  linux_res.memory_swap_limit_in_bytes = 1234;
  res.linux = &linux_res;
  st.resources = &res;
  r.status = &st;
  fake_answer_message(a, &r.base);
}

static void answer_ctr_status(const uint8_t *req, size_t len, fake_answer *a) {
  Runtime__V1__ContainerStatusRequest *r =
      runtime__v1__container_status_request__unpack(NULL, len, req);
  if (!r || !r->verbose)
    fake_answer_error(a, GRPC_STATUS_INVALID_ARGUMENT, "want a verbose status request");
  else if (strcmp(r->container_id, "c-info") == 0)
    answer_ctr_status_info(a);
  else if (strcmp(r->container_id, "c-plain") == 0)
    answer_ctr_status_plain(a);
  else
    fake_answer_error(a, GRPC_STATUS_NOT_FOUND, "container not found");
  if (r) runtime__v1__container_status_request__free_unpacked(r, NULL);
}

static const char *const methods[4] = {
    "/runtime.v1.RuntimeService/ListPodSandbox", "/runtime.v1.RuntimeService/PodSandboxStatus",
    "/runtime.v1.RuntimeService/ListContainers", "/runtime.v1.RuntimeService/ContainerStatus"};

/* The fake says it is containerd, so its info is read as containerd's,
 * unless the script names another runtime. */
static void answer_version(const script *sc, fake_answer *a) {
  Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
  v.runtime_name = (char *)(sc->runtime_name ? sc->runtime_name : "containerd");
  v.runtime_version = "fake";
  fake_answer_message(a, &v.base);
}

/* `method` with its package as runtime.v1 ("" if not a CRI package, or the
 * one the script does not speak, which is counted). */
static void method_as_v1(script *sc, const char *method, char *buf, size_t len) {
  const char *speaks = sc->v1alpha2_only ? "/runtime.v1alpha2." : "/runtime.v1.";
  size_t n = strlen(speaks);
  buf[0] = '\0';
  if (strncmp(method, speaks, n) == 0)
    snprintf(buf, len, "/runtime.v1.%s", method + n);
  else
    sc->other_package++;
}

static void handle(void *data, const char *raw, const uint8_t *req, size_t len, fake_answer *a) {
  script *sc = data;
  char method[128];
  method_as_v1(sc, raw, method, sizeof method);
  for (int i = 0; i < 4; i++)
    if (strcmp(method, methods[i]) == 0) sc->calls_seen[i]++;
  if (strcmp(method, "/runtime.v1.RuntimeService/Version") == 0)
    answer_version(sc, a);
  else if (strcmp(method, methods[0]) == 0)
    answer_list_pods(sc, a);
  else if (strcmp(method, methods[1]) == 0)
    answer_pod_status(sc, req, len, a);
  else if (strcmp(method, methods[2]) == 0)
    answer_list_ctrs(sc, a);
  else if (strcmp(method, methods[3]) == 0)
    answer_ctr_status(req, len, a);
  else
    fake_answer_error(a, GRPC_STATUS_UNIMPLEMENTED, "not in the script");
}

typedef struct fake_env {
  script sc;
  fake_grpc_server *backend;
  char path[128];        /* its socket, for the code under test */
  grpc_channel *channel; /* for the test's own calls */
  ch_store *store;
} fake_env;

static int fake_setup(void **state) {
  fake_env *env = calloc(1, sizeof *env);
  if (!env) return -1;
  char target[140];
  snprintf(env->path, sizeof env->path, "%s/fake.sock", tmpdir);
  unlink(env->path);
  env->backend = fake_grpc_start(env->path, handle, &env->sc);
  if (!env->backend) return -1;
  snprintf(target, sizeof target, "unix:%s", env->path);
  env->channel = ch_channel_open(target);
  env->store = ch_store_new();
  *state = env;
  return 0;
}

static int fake_teardown(void **state) {
  fake_env *env = *state;
  ch_store_free(env->store);
  grpc_channel_destroy(env->channel);
  fake_grpc_stop(env->backend);
  free(env);
  return 0;
}

static const char *const p_info_json =
    "{\"pod_meta\": {\"name\": \"web\", \"uid\": \"u-1\", \"namespace\": \"default\", "
    "\"attempt\": 1},"
    " \"runtime_handler\": \"kata\","
    " \"labels\": {\"app\": \"web\", \"io.kubernetes.pod.name\": \"web\"},"
    " \"annotations\": {\"k\": \"v\", \"kubernetes.io/config.source\": \"api\"},"
    " \"cgroup_parent\": \"/kubepods/burstable/podu-1\","
    " \"overhead\": {\"cpu_shares\": 10, \"memory_limit_in_bytes\": 1048576},"
    " \"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, \"memory_limit_in_bytes\": "
    "134217728, \"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 4194304}], "
    "\"unified\": {\"memory.high\": \"max\"}}}";

static const char *const p_plain_json =
    "{\"pod_meta\": {\"name\": \"plain\", \"uid\": \"u-2\", \"namespace\": \"kube-system\", "
    "\"attempt\": 4},"
    " \"runtime_handler\": \"runsc\", \"labels\": {\"l\": \"1\"}, \"annotations\": {\"an\": "
    "\"2\"}}";

static const char *const c_info_json =
    "{\"pod_meta\": {\"name\": \"web\", \"uid\": \"u-1\", \"namespace\": \"default\", "
    "\"attempt\": 1},"
    " \"container_meta\": {\"name\": \"app\", \"attempt\": 2, \"id\": \"c-info\"},"
    " \"container_image\": \"busybox\", \"container_image_id\": \"busybox\","
    " \"container_annotations\": {\"ca\": \"cv\"},"
    " \"container_resources\": {\"cpu_shares\": 777, \"memory_limit_in_bytes\": 67108864, "
    "\"cpuset_cpus\": \"0-1\"},"
    " \"pod_resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, "
    "\"memory_limit_in_bytes\": 134217728, \"hugepage_limits\": [{\"page_size\": \"2MB\", "
    "\"limit\": 4194304}], \"unified\": {\"memory.high\": \"max\"}},"
    " \"pod_annotations\": {\"k\": \"v\", \"kubernetes.io/config.source\": \"api\"},"
    " \"pod_labels\": {\"app\": \"web\", \"io.kubernetes.pod.name\": \"web\"},"
    " \"pod_cgroup_parent\": \"/kubepods/burstable/podu-1\","
    " \"container_envs\": {\"Z\": \"1\", \"A\": \"b c\", \"M\": \"\"}}";

static const char *const c_plain_json =
    "{\"pod_meta\": {\"name\": \"plain\", \"uid\": \"u-2\", \"namespace\": \"kube-system\", "
    "\"attempt\": 4},"
    " \"container_meta\": {\"name\": \"side\", \"attempt\": 3, \"id\": \"c-plain\"},"
    " \"container_image\": \"registry.example/side:1\","
    " \"container_image_id\": \"registry.example/side:1\","
    " \"container_annotations\": {\"x\": \"y\"},"
    " \"container_resources\": {\"cpu_shares\": 256, \"memory_swap_limit_in_bytes\": 1234},"
    " \"pod_annotations\": {\"an\": \"2\"}, \"pod_labels\": {\"l\": \"1\"}}";

static void assert_fake_content(ch_store *s) {
  assert_int_equal(ch_store_pod_count(s), 2);
  assert_int_equal(ch_store_container_count(s), 2);
  assert_null(ch_store_get_pod(s, "p-gone"));
  assert_null(ch_store_container_request(s, "c-gone", NULL));
  assert_pod_json(s, "p-info", p_info_json);
  assert_pod_json(s, "p-plain", p_plain_json);
  const char *const envs[] = {"Z", "A", "M"};
  assert_container(s, "c-info", "p-info", c_info_json, envs, 3);
  assert_container(s, "c-plain", "p-plain", c_plain_json, NULL, 0);
}

static void test_fake_rebuild(void **state) {
  fake_env *env = *state;
  ch_error err = {{0}};
  put_stale_content(env->store);
  if (ch_store_rebuild(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("rebuild: %s", err.msg);
  assert_fake_content(env->store);
  assert_null(ch_store_get_pod(env->store, "stale-pod"));
  assert_int_equal(env->sc.calls_seen[0], 1);
  assert_int_equal(env->sc.calls_seen[1], 3);
  assert_int_equal(env->sc.calls_seen[2], 1);
  assert_int_equal(env->sc.calls_seen[3], 3);
  assert_int_equal(env->sc.other_package, 0);
  /* a second rebuild gives the same content */
  assert_int_equal(ch_store_rebuild(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err), 0);
  assert_fake_content(env->store);
}

/* A runtime that speaks only runtime.v1alpha2 (containerd 1.5 and older):
 * the rebuild finds the package by probing and recovers every pod and
 * container in it, with the containerd kind's info, as from a v1 one. */
static void test_fake_rebuild_v1alpha2_only(void **state) {
  fake_env *env = *state;
  env->sc.v1alpha2_only = true;
  ch_error err = {{0}};
  put_stale_content(env->store);
  if (ch_store_rebuild(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("rebuild: %s", err.msg);
  assert_fake_content(env->store);
  assert_null(ch_store_get_pod(env->store, "stale-pod"));
  assert_int_equal(env->sc.calls_seen[0], 1);
  assert_int_equal(env->sc.calls_seen[1], 3);
  assert_int_equal(env->sc.calls_seen[2], 1);
  assert_int_equal(env->sc.calls_seen[3], 3);
  assert_int_equal(env->sc.other_package, 1); /* the probe's v1 Version, nothing else */
  /* given what the daemon's probe found, no probe and no v1 call */
  ch_probe_result found;
  assert_int_equal(ch_backend_identify(env->path, CALL_TIMEOUT_MS, &found, &err), 0);
  assert_string_equal(found.api, "v1alpha2");
  assert_ptr_equal(found.kind, &ch_backend_containerd);
  env->sc.other_package = 0;
  if (ch_store_resync(env->store, env->path, &found, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("resync: %s", err.msg);
  assert_fake_content(env->store);
  assert_int_equal(env->sc.other_package, 0);
}

/* The rebuild reads the info the way the runtime's kind says: the same
 * containerd-shaped info from a runtime that says it is CRI-O (whose info
 * has no config) or an unknown one gives the status-only records, never
 * containerd's config (no cgroup parent, no envs). */
static void test_fake_rebuild_follows_the_kind(void **state) {
  fake_env *env = *state;
  const char *names[] = {"cri-o", "someruntime"};
  for (size_t i = 0; i < 2; i++) {
    env->sc.runtime_name = names[i];
    ch_error err = {{0}};
    if (ch_store_rebuild(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err) != 0)
      fail_msg("rebuild: %s", err.msg);
    assert_int_equal(ch_store_pod_count(env->store), 2);
    assert_int_equal(ch_store_container_count(env->store), 2);
    ch_pod_record *pod = ch_store_get_pod(env->store, "p-info");
    assert_non_null(pod);
    assert_string_equal(pod->cgroup_parent, "");
    runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
    char *pod_id = NULL;
    ch_container_record *c = ch_store_container_request(env->store, "c-info", &pod_id);
    assert_non_null(c);
    assert_string_equal(pod_id, "p-info"); /* from the List */
    assert_int_equal(c->n_container_envs, 0);
    free(pod_id);
    runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
  }
}

/* A failed rebuild leaves the old content, and says what failed. */
static void assert_rebuild_fails(fake_env *env, const char *const *want_in_msg) {
  ch_error err = {{0}};
  put_stale_content(env->store);
  assert_int_equal(ch_store_rebuild(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err), -1);
  for (; *want_in_msg; want_in_msg++)
    if (!strstr(err.msg, *want_in_msg))
      fail_msg("error \"%s\" lacks \"%s\"", err.msg, *want_in_msg);
  assert_stale_content(env->store);
}

static void test_fake_list_pods_fails(void **state) {
  fake_env *env = *state;
  env->sc.list_pods = GRPC_STATUS_UNAVAILABLE;
  const char *want[] = {"ListPodSandbox", "UNAVAILABLE", "runtime is down", NULL};
  assert_rebuild_fails(env, want);
}

static void test_fake_list_containers_fails(void **state) {
  fake_env *env = *state;
  env->sc.list_ctrs = GRPC_STATUS_UNIMPLEMENTED;
  const char *want[] = {"ListContainers", "UNIMPLEMENTED", "containers are down", NULL};
  assert_rebuild_fails(env, want);
}

/* A Status that fails for one pod keeps that pod with the List's data. */
static void test_fake_status_fails_for_one_pod(void **state) {
  fake_env *env = *state;
  env->sc.p_info_status = GRPC_STATUS_INTERNAL;
  ch_error err = {{0}};
  put_stale_content(env->store);
  if (ch_store_rebuild(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("rebuild: %s", err.msg);
  assert_null(ch_store_get_pod(env->store, "stale-pod"));
  ch_pod_record *pod = ch_store_get_pod(env->store, "p-info");
  assert_non_null(pod);
  assert_non_null(pod->pod_meta);
  assert_string_equal(pod->pod_meta->name, "p-info"); /* the List's, not the config's */
  assert_string_equal(pod->runtime_handler, "kata");
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
}

/* A Status that says the backend is in trouble fails the whole rebuild. */
static void test_fake_status_unavailable(void **state) {
  fake_env *env = *state;
  env->sc.p_info_status = GRPC_STATUS_UNAVAILABLE;
  const char *want[] = {"pod p-info: PodSandboxStatus", "UNAVAILABLE", "status broke", NULL};
  assert_rebuild_fails(env, want);
}

/* After the backend came back: what the runtime lacks goes, what the store
 * lacks comes, what both have stays as the store has it. */
static void test_fake_resync(void **state) {
  fake_env *env = *state;
  ch_error err = {{0}};
  put_stale_content(env->store);
  ch_pod_record mine = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
  mine.cgroup_parent = "/as-the-hooks-left-it";
  assert_int_equal(ch_store_put_pod(env->store, "p-info", &mine, &err), 0);
  if (ch_store_resync(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("resync: %s", err.msg);
  assert_null(ch_store_get_pod(env->store, "stale-pod"));
  assert_null(ch_store_container_request(env->store, "stale-ctr", NULL));
  assert_pod_json(env->store, "p-info", "{\"cgroup_parent\": \"/as-the-hooks-left-it\"}");
  assert_pod_json(env->store, "p-plain", p_plain_json);
  assert_container(env->store, "c-plain", "p-plain", c_plain_json, NULL, 0);
  assert_int_equal(ch_store_pod_count(env->store), 2);
  assert_int_equal(ch_store_container_count(env->store), 2);
}

/* A fill keeps what the runtime lacks. */
static void test_fake_fill_missing(void **state) {
  fake_env *env = *state;
  ch_error err = {{0}};
  put_stale_content(env->store);
  if (ch_store_fill_missing(env->store, env->path, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("fill: %s", err.msg);
  assert_pod_json(env->store, "stale-pod", "{\"cgroup_parent\": \"/stale\"}");
  assert_pod_json(env->store, "p-info", p_info_json);
  assert_int_equal(ch_store_pod_count(env->store), 3);
  assert_int_equal(ch_store_container_count(env->store), 3);
}

/* The status answer of `method` for `id`, as the runtime sends it. */
static ch_unary_result status_of(fake_env *env, const char *method, const char *id) {
  Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  req.container_id = (char *)id; /* both status requests are {1: id, 2: verbose} */
  req.verbose = true;
  uint8_t buf[256];
  size_t len = protobuf_c_message_pack(&req.base, buf);
  ch_unary_result res;
  ch_error err = {{0}};
  if (ch_unary_call(env->channel, method, buf, len, CALL_TIMEOUT_MS, NULL, 0, &res, &err) != 0)
    fail_msg("%s: %s", method, err.msg);
  assert_int_equal(res.status, GRPC_STATUS_OK);
  return res;
}

/* What an undecodable RunPodSandbox / CreateContainer created is recorded
 * from the runtime's status, as a rebuild would; not if removed meanwhile. */
static void test_put_from_status(void **state) {
  fake_env *env = *state;
  ch_error err = {{0}};
  ch_unary_result pod = status_of(env, methods[1], "p-info");
  ch_unary_result ctr = status_of(env, methods[3], "c-info");
  uint64_t mark = ch_store_sync_begin(env->store);
  assert_int_equal(
      ch_store_put_pod_status(env->store, "p-info", pod.response, pod.response_len, mark, &err), 0);
  assert_int_equal(ch_store_put_container_status(env->store, "c-info", ctr.response,
                                                 ctr.response_len, mark, &err),
                   0);
  ch_store_sync_end(env->store);
  assert_pod_json(env->store, "p-info", p_info_json);
  const char *const envs[] = {"Z", "A", "M"};
  assert_container(env->store, "c-info", "p-info", c_info_json, envs, 3); /* pod: sandboxID */

  mark = ch_store_sync_begin(env->store);
  ch_store_remove_container(env->store, "c-info");
  assert_int_equal(ch_store_put_container_status(env->store, "c-info", ctr.response,
                                                 ctr.response_len, mark, &err),
                   0);
  ch_store_sync_end(env->store);
  assert_null(ch_store_container_request(env->store, "c-info", NULL));
  assert_int_equal(
      ch_store_put_pod_status(env->store, "p-x", (const uint8_t *)"\xff", 1, mark, &err), -1);
  assert_non_null(strstr(err.msg, "does not decode"));
  ch_unary_result_clear(&pod);
  ch_unary_result_clear(&ctr);
}

/* CRI-O's verbose ContainerStatus: info["info"] names the pod (sandboxID)
 * but has no config: the record is the status's, in the named pod. */
static void test_put_from_crio_status(void **state) {
  (void)state;
  Runtime__V1__ContainerMetadata meta = RUNTIME__V1__CONTAINER_METADATA__INIT;
  meta.name = "app";
  meta.attempt = 1;
  Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
  st.id = "c-crio";
  st.metadata = &meta;
  Runtime__V1__ContainerStatusResponse__InfoEntry entry =
      RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
  entry.key = "info";
  entry.value =
      "{\"sandboxID\": \"p-crio\", \"pid\": 7, \"privileged\": false,"
      " \"runtimeSpec\": {\"ociVersion\": \"1.0.2\"}}";
  Runtime__V1__ContainerStatusResponse__InfoEntry *entries[] = {&entry};
  Runtime__V1__ContainerStatusResponse answer = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
  answer.status = &st;
  answer.n_info = 1;
  answer.info = entries;
  uint8_t buf[512];
  size_t len = protobuf_c_message_pack(&answer.base, buf);
  ch_store *s = ch_store_new();
  ch_error err = {{0}};
  uint64_t mark = ch_store_sync_begin(s);
  if (ch_store_put_container_status(s, "c-crio", buf, len, mark, &err) != 0)
    fail_msg("put: %s", err.msg);
  ch_store_sync_end(s);
  char *pod_id = NULL;
  ch_container_record *c = ch_store_container_request(s, "c-crio", &pod_id);
  assert_non_null(c);
  assert_string_equal(pod_id, "p-crio");
  assert_non_null(c->container_meta);
  assert_string_equal(c->container_meta->name, "app");
  assert_int_equal(c->n_container_envs, 0);
  free(pod_id);
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
  ch_store_free(s);
}

static void test_missing_socket(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/no-such.sock", tmpdir);
  ch_store *s = ch_store_new();
  put_stale_content(s);
  ch_error err = {{0}};
  assert_int_equal(ch_store_rebuild(s, path, NULL, 2000, &err), -1);
  assert_non_null(strstr(err.msg, "the backend does not answer: Version"));
  assert_non_null(strstr(err.msg, "UNAVAILABLE"));
  assert_stale_content(s);
  ch_store_free(s);
}

/* ---- a real containerd ------------------------------------------------------ */

typedef struct ctd_env {
  bool up;
  char dir[96];     /* containerd.sh's DIR */
  char socket[160]; /* its gRPC socket */
  char cgroup[64];  /* the pods' cgroup parent, unique to this run */
  char pod_id[2][80];
  char ctr_id[2][80];
} ctd_env;

static ctd_env ctd;

static const char *env_or_fail(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) fail_msg("%s is not set (run through meson test)", name);
  return v;
}

/* Runs `cmd` through the shell and returns its exit status. Its first (or,
 * with `last`, its last) stdout line goes to `out` if not NULL; its stderr
 * to tmpdir/commands.log. */
static int run(const char *cmd, char *out, size_t out_len, bool last) {
  char full[2048];
  snprintf(full, sizeof full, "%s 2>>%s/commands.log", cmd, tmpdir);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  char line[512];
  bool first = true;
  if (out) out[0] = '\0';
  while (fgets(line, sizeof line, p)) {
    if (out && (first || last)) snprintf(out, out_len, "%s", line);
    first = false;
  }
  int status = pclose(p);
  if (out) out[strcspn(out, "\n")] = '\0';
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int ctl(const char *args, char *out, size_t out_len) {
  char cmd[1024];
  /* 60 s, not crihookctl's 10 s default: on a loaded 2-core CI machine a
   * RunPodSandbox has taken longer than 10 s. */
  snprintf(cmd, sizeof cmd, "%s/ctl/crihookctl --timeout 60 --endpoint unix://%s %s",
           env_or_fail("CRIHOOK_BUILD_DIR"), ctd.socket, args);
  return run(cmd, out, out_len, false);
}

static void write_file(const char *name, const char *text) {
  char path[160];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void write_fixtures(void) {
  char pod[2048];
  const char *pod_fmt =
      "{\"metadata\": {\"name\": \"%s\", \"namespace\": \"rebuild-ns\", \"uid\": \"%s\","
      " \"attempt\": 2},"
      " \"log_directory\": \"%s/logs/%s\","
      " \"labels\": {\"app\": \"store\", \"tier\": \"x\"},"
      " \"annotations\": {\"a.b/c\": \"d\", \"e\": \"f\"},"
      " \"linux\": {\"cgroup_parent\": \"%s\","
      "   \"overhead\": {\"cpu_shares\": 10, \"memory_limit_in_bytes\": 1048576},"
      "   \"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, \"cpu_shares\": 512,"
      "     \"memory_limit_in_bytes\": 134217728},"
      "   \"security_context\": {\"namespace_options\": {\"network\": 2}}}}";
  snprintf(pod, sizeof pod, pod_fmt, "rebuild-pod", "uid-rb-1", tmpdir, "rebuild-pod", ctd.cgroup);
  write_file("pod.json", pod);
  snprintf(pod, sizeof pod, pod_fmt, "rebuild-pod2", "uid-rb-2", tmpdir, "rebuild-pod2",
           ctd.cgroup);
  write_file("pod2.json", pod);
  write_file("ctr.json",
             "{\"metadata\": {\"name\": \"rebuild-ctr\", \"attempt\": 1},"
             " \"image\": {\"image\": \"localhost/crihook/busybox:test\"},"
             " \"command\": [\"sh\", \"-c\", \"sleep 3600\"],"
             " \"envs\": [{\"key\": \"Z\", \"value\": \"1\"}, {\"key\": \"A\", \"value\": \"two "
             "words\"}, {\"key\": \"M\", \"value\": \"\"}],"
             " \"labels\": {\"l\": \"v\"},"
             " \"annotations\": {\"ca\": \"cv\", \"cb\": \"cw\"},"
             " \"log_path\": \"rebuild-ctr.log\","
             " \"linux\": {\"resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": "
             "67108864, \"cpuset_cpus\": \"0\"}}}");
  write_file("ctr2.json",
             "{\"metadata\": {\"name\": \"rebuild-ctr2\"},"
             " \"image\": {\"image\": \"localhost/crihook/busybox:test\"},"
             " \"command\": [\"sh\", \"-c\", \"sleep 3600\"],"
             " \"annotations\": {\"only\": \"created\"},"
             " \"log_path\": \"rebuild-ctr2.log\"}");
}

/* Pod 1 ready with a running container and a created one; pod 2 stopped. */
static int make_pods(void) {
  char args[512];
  snprintf(args, sizeof args, "runp -r runc %s/pod.json", tmpdir);
  if (ctl(args, ctd.pod_id[0], sizeof ctd.pod_id[0]) != 0) return -1;
  snprintf(args, sizeof args, "create %s %s/ctr.json %s/pod.json", ctd.pod_id[0], tmpdir, tmpdir);
  if (ctl(args, ctd.ctr_id[0], sizeof ctd.ctr_id[0]) != 0) return -1;
  snprintf(args, sizeof args, "start %s", ctd.ctr_id[0]);
  if (ctl(args, NULL, 0) != 0) return -1;
  snprintf(args, sizeof args, "create %s %s/ctr2.json %s/pod.json", ctd.pod_id[0], tmpdir, tmpdir);
  if (ctl(args, ctd.ctr_id[1], sizeof ctd.ctr_id[1]) != 0) return -1;
  snprintf(args, sizeof args, "runp %s/pod2.json", tmpdir);
  if (ctl(args, ctd.pod_id[1], sizeof ctd.pod_id[1]) != 0) return -1;
  snprintf(args, sizeof args, "stopp %s", ctd.pod_id[1]);
  return ctl(args, NULL, 0);
}

static int ctd_setup(void **state) {
  (void)state;
  memset(&ctd, 0, sizeof ctd);
  snprintf(ctd.dir, sizeof ctd.dir, "%s/ctd", tmpdir);
  snprintf(ctd.cgroup, sizeof ctd.cgroup, "/crihook-rebuild-%d", (int)getpid());
  char cmd[512];
  snprintf(cmd, sizeof cmd, "bash %s/tests/harness/containerd.sh start %s",
           env_or_fail("CRIHOOK_SOURCE_DIR"), ctd.dir);
  if (run(cmd, ctd.socket, sizeof ctd.socket, true) != 0) {
    print_message("containerd did not start (see %s/commands.log): skipping\n", tmpdir);
    return 0;
  }
  ctd.up = true;
  write_fixtures();
  if (make_pods() != 0) {
    print_error("could not make the test pods (see %s/commands.log)\n", tmpdir);
    return -1;
  }
  return 0;
}

static void remove_cgroup_dirs(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "for d in /sys/fs/cgroup/*%s /sys/fs/cgroup/*/*%s; do [ -d \"$d\" ] && "
           "find \"$d\" -depth -type d -exec rmdir {} + ; done; true",
           ctd.cgroup, ctd.cgroup);
  run(cmd, NULL, 0, false);
}

static int ctd_teardown(void **state) {
  (void)state;
  if (!ctd.up) return 0;
  char args[256];
  for (int i = 0; i < 2; i++) {
    if (!ctd.pod_id[i][0]) continue;
    snprintf(args, sizeof args, "stopp %s", ctd.pod_id[i]);
    ctl(args, NULL, 0);
    snprintf(args, sizeof args, "rmp %s", ctd.pod_id[i]);
    ctl(args, NULL, 0);
  }
  char cmd[512];
  snprintf(cmd, sizeof cmd, "bash %s/tests/harness/containerd.sh stop %s",
           env_or_fail("CRIHOOK_SOURCE_DIR"), ctd.dir);
  int rc = run(cmd, NULL, 0, false);
  remove_cgroup_dirs();
  return rc == 0 ? 0 : -1;
}

static grpc_channel *ctd_channel(void) {
  char target[200];
  snprintf(target, sizeof target, "unix:%s", ctd.socket);
  return ch_channel_open(target);
}

static const char *const ctd_pod_fmt =
    "{\"pod_meta\": {\"name\": \"%s\", \"uid\": \"%s\", \"namespace\": \"rebuild-ns\", "
    "\"attempt\": 2},"
    " %s \"labels\": {\"app\": \"store\", \"tier\": \"x\"},"
    " \"annotations\": {\"a.b/c\": \"d\", \"e\": \"f\"},"
    " \"cgroup_parent\": \"%s\","
    " \"overhead\": {\"cpu_shares\": 10, \"memory_limit_in_bytes\": 1048576},"
    " \"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, \"cpu_shares\": 512, "
    "\"memory_limit_in_bytes\": 134217728}}";

static const char *const ctd_pod_fields =
    "\"pod_meta\": {\"name\": \"rebuild-pod\", \"uid\": \"uid-rb-1\", \"namespace\": "
    "\"rebuild-ns\", \"attempt\": 2},"
    " \"pod_labels\": {\"app\": \"store\", \"tier\": \"x\"},"
    " \"pod_annotations\": {\"a.b/c\": \"d\", \"e\": \"f\"},"
    " \"pod_cgroup_parent\": \"%s\","
    " \"pod_resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, \"cpu_shares\": 512, "
    "\"memory_limit_in_bytes\": 134217728}";

static void assert_ctd_content(ch_store *s) {
  assert_int_equal(ch_store_pod_count(s), 2);
  assert_int_equal(ch_store_container_count(s), 2);
  char want[4096], pod_fields[1024];
  snprintf(want, sizeof want, ctd_pod_fmt, "rebuild-pod", "uid-rb-1",
           "\"runtime_handler\": \"runc\",", ctd.cgroup);
  assert_pod_json(s, ctd.pod_id[0], want);
  snprintf(want, sizeof want, ctd_pod_fmt, "rebuild-pod2", "uid-rb-2", "", ctd.cgroup);
  assert_pod_json(s, ctd.pod_id[1], want); /* stopped, still kept; default handler */

  snprintf(pod_fields, sizeof pod_fields, ctd_pod_fields, ctd.cgroup);
  snprintf(want, sizeof want,
           "{%s, \"container_meta\": {\"name\": \"rebuild-ctr\", \"attempt\": 1, \"id\": \"%s\"},"
           " \"container_image\": \"localhost/crihook/busybox:test\","
           " \"container_image_id\": \"localhost/crihook/busybox:test\","
           " \"container_annotations\": {\"ca\": \"cv\", \"cb\": \"cw\"},"
           " \"container_resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": 67108864, "
           "\"cpuset_cpus\": \"0\"},"
           " \"container_envs\": {\"Z\": \"1\", \"A\": \"two words\", \"M\": \"\"}}",
           pod_fields, ctd.ctr_id[0]);
  const char *const envs[] = {"Z", "A", "M"};
  assert_container(s, ctd.ctr_id[0], ctd.pod_id[0], want, envs, 3);
  snprintf(want, sizeof want,
           "{%s, \"container_meta\": {\"name\": \"rebuild-ctr2\", \"id\": \"%s\"},"
           " \"container_image\": \"localhost/crihook/busybox:test\","
           " \"container_image_id\": \"localhost/crihook/busybox:test\","
           " \"container_annotations\": {\"only\": \"created\"}}",
           pod_fields, ctd.ctr_id[1]);
  assert_container(s, ctd.ctr_id[1], ctd.pod_id[0], want, NULL, 0);
}

static void test_containerd_rebuild(void **state) {
  (void)state;
  if (!ctd.up) skip();
  ch_store *s = ch_store_new();
  ch_error err = {{0}};
  if (ch_store_rebuild(s, ctd.socket, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("rebuild: %s", err.msg);
  assert_ctd_content(s);
  ch_store_free(s);
}

static void test_containerd_rebuild_replaces(void **state) {
  (void)state;
  if (!ctd.up) skip();
  ch_store *s = ch_store_new();
  put_stale_content(s);
  ch_error err = {{0}};
  if (ch_store_rebuild(s, ctd.socket, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("rebuild: %s", err.msg);
  assert_null(ch_store_get_pod(s, "stale-pod"));
  assert_null(ch_store_container_request(s, "stale-ctr", NULL));
  assert_ctd_content(s);
  /* a container removed from the runtime is gone after the next rebuild */
  char args[256];
  snprintf(args, sizeof args, "rm %s", ctd.ctr_id[1]);
  assert_int_equal(ctl(args, NULL, 0), 0);
  assert_int_equal(ch_store_rebuild(s, ctd.socket, NULL, CALL_TIMEOUT_MS, &err), 0);
  assert_int_equal(ch_store_container_count(s), 1);
  assert_null(ch_store_container_request(s, ctd.ctr_id[1], NULL));
  ch_store_free(s);
}

/* UpdateContainerResources, then a rebuild: the current resources, not the
 * creation config's. */
static void test_containerd_rebuild_after_update(void **state) {
  (void)state;
  if (!ctd.up) skip();
  grpc_channel *channel = ctd_channel();
  Runtime__V1__UpdateContainerResourcesRequest req =
      RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_REQUEST__INIT;
  Runtime__V1__LinuxContainerResources res = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
  res.cpu_shares = 777;
  res.cpu_quota = 20000;
  res.cpu_period = 100000;
  req.container_id = ctd.ctr_id[0];
  req.linux = &res;
  uint8_t buf[512];
  size_t len = protobuf_c_message_pack(&req.base, buf);
  ch_unary_result out;
  ch_error err = {{0}};
  assert_int_equal(ch_unary_call(channel, "/runtime.v1.RuntimeService/UpdateContainerResources",
                                 buf, len, CALL_TIMEOUT_MS, NULL, 0, &out, &err),
                   0);
  if (out.status != GRPC_STATUS_OK) fail_msg("update: %s", out.details);
  ch_unary_result_clear(&out);
  ch_store *s = ch_store_new();
  if (ch_store_rebuild(s, ctd.socket, NULL, CALL_TIMEOUT_MS, &err) != 0)
    fail_msg("rebuild: %s", err.msg);
  ch_container_record *c = ch_store_container_request(s, ctd.ctr_id[0], NULL);
  assert_non_null(c);
  assert_msg_json(&c->container_resources->base,
                  "{\"cpu_shares\": 777, \"cpu_quota\": 20000, \"cpu_period\": 100000,"
                  " \"memory_limit_in_bytes\": 67108864, \"cpuset_cpus\": \"0\"}");
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
  ch_store_free(s);
  grpc_channel_destroy(channel);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/chrb-XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  grpc_init();
  const struct CMUnitTest offline[] = {
      cmocka_unit_test(test_lenient_skips_unknown_keys),
      cmocka_unit_test(test_lenient_still_checks_types),
      cmocka_unit_test_setup_teardown(test_fake_rebuild, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_rebuild_v1alpha2_only, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_rebuild_follows_the_kind, fake_setup,
                                      fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_list_pods_fails, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_list_containers_fails, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_status_fails_for_one_pod, fake_setup,
                                      fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_status_unavailable, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_resync, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_fake_fill_missing, fake_setup, fake_teardown),
      cmocka_unit_test_setup_teardown(test_put_from_status, fake_setup, fake_teardown),
      cmocka_unit_test(test_put_from_crio_status),
      cmocka_unit_test(test_missing_socket),
  };
  const struct CMUnitTest containerd[] = {
      cmocka_unit_test(test_containerd_rebuild),
      cmocka_unit_test(test_containerd_rebuild_replaces),
      cmocka_unit_test(test_containerd_rebuild_after_update),
  };
  int failed = cmocka_run_group_tests_name("rebuild (fake runtime)", offline, NULL, NULL);
  failed +=
      cmocka_run_group_tests_name("rebuild (containerd)", containerd, ctd_setup, ctd_teardown);
  grpc_shutdown();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (failed != 0) {
    print_error("kept %s for a look\n", tmpdir);
    return failed;
  }
  return system(cmd) == 0 ? 0 : 1;
}
