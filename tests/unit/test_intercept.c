/* SPDX-License-Identifier: Apache-2.0 */
/* test_intercept.c: the begin / record / post phases (dispatcher/intercept.c)
 * over rows of the intercept table, with a real store and real grpc hook
 * servers (hook_fixture.h). Requests look like kubelet's. Covered: a Pre
 * answer applied to the forwarded request and recorded in the store; the
 * skip label (no hook called, store still kept); a container call that
 * names only an ID, whose hook request comes from the store (the row's ID
 * field); a rejected call's status and message; Pre and Post hooks on one
 * call; a PreStartContainer answer and an update kept in the store; the
 * store forgetting a removed container; and the undecodable
 * request, refused for a Fail plugin and otherwise forwarded with the store
 * forgetting what it removed (its ID read leniently from the row's ID field);
 * and an undecodable RunPodSandbox / CreateContainer the runtime accepted,
 * whose verbose status crihookd asks of the service the call came in on
 * (a fake runtime that speaks only runtime.v1alpha2, or only runtime.v1)
 * so the store learns the pod / container; a runtime that is gone (the call
 * still finishes, the store does not learn) and a call freed while its
 * status is asked (the status call ends unheard). The dispatcher runs as in
 * crihookd, on a libuv loop through crihook's own gRPC client; the hook
 * servers and the runtime are grpc core's. */
#include <grpc/grpc.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "cri.pb-c.h"
#include "fake_grpc_server.h"
#include "hook.pb-c.h"
#include "hook_fixture.h"
#include "intercept.h"
#include "pbjson.h"
#include "pbutil.h"
#include "store.h"
#include "test_clock.h"
#include "trace.h"

#define POD_JSON                                                                                  \
  "{\"metadata\": {\"name\": \"web\", \"uid\": \"uid-1\", \"namespace\": \"shop\"},"              \
  " \"labels\": {\"io.kubernetes.pod.name\": \"web\", \"io.kubernetes.pod.namespace\": \"shop\"," \
  " \"io.kubernetes.pod.uid\": \"uid-1\" %s},"                                                    \
  " \"linux\": {\"cgroup_parent\": \"/kubepods/besteffort/poduid-1\"}}"
#define SKIP ", \"runtimeproxy.koordinator.sh/skip-hookserver\": \"true\""

typedef struct env {
  hook_fx *fx;
  ch_registry_slot slot;
  ch_store *store;
  struct runtime *rt; /* a fake runtime, stopped by teardown */
} env;

static ProtobufCMessage *from_json(const ProtobufCMessageDescriptor *desc, const char *text) {
  json_error_t jerr;
  json_t *doc = json_loads(text, 0, &jerr);
  if (!doc) fail_msg("bad test JSON: %s: %s", jerr.text, text);
  ProtobufCMessage *msg = NULL;
  ch_error err;
  if (ch_pb_from_json(desc, doc, &msg, &err) != 0) fail_msg("%s", err.msg);
  json_decref(doc);
  return msg;
}

/* Server i answers the message `json`. */
static void answer_json(hook_fx *fx, int i, const ProtobufCMessageDescriptor *desc,
                        const char *json) {
  ProtobufCMessage *msg = from_json(desc, json);
  hook_fx_answer(fx, i, msg);
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* A message's bytes (malloc'd), as the relay holds a request or an
 * answer; NONE: no message at all. */
typedef struct bytes {
  uint8_t *data;
  size_t len;
} bytes;

#define NONE ((bytes){NULL, 0})

static bytes bytes_of(const uint8_t *data, size_t len) {
  bytes b = {malloc(len ? len : 1), len};
  assert_non_null(b.data);
  if (len) memcpy(b.data, data, len);
  return b;
}

/* A CRI message from JSON, packed. */
static bytes packed(const ProtobufCMessageDescriptor *desc, const char *json) {
  ProtobufCMessage *msg = from_json(desc, json);
  bytes b;
  b.data = ch_pb_pack(msg, &b.len);
  assert_non_null(b.data);
  protobuf_c_message_free_unpacked(msg, NULL);
  return b;
}

static void resumed(void *owner) { *(bool *)owner = true; }

/* Publishes the fixture's registrations to the slot the intercept reads. */
static void publish(env *e) {
  hook_fx_load(e->fx);
  ch_registry_ref(e->fx->registry);
  ch_registry_slot_publish(&e->slot, e->fx->registry);
}

/* One intercepted call; `flag` is the owner the callbacks set. */
typedef struct call {
  ch_intercept *ic;
  bool flag;
} call;

/* The CRI call's deadline, 5 s from now on uv_hrtime's clock. */
static uint64_t deadline_5s(void) { return uv_hrtime() + 5000ull * 1000000; }

/* Phase 1 for `method` (`request` taken), pumped until the Pre hooks are done. */
static void begin(env *e, call *c, const char *method, bytes request) {
  ch_intercept_kind kind = ch_intercept_kind_of(method, strlen(method));
  assert_ptr_not_equal(kind, CH_INTERCEPT_NONE);
  ch_intercept_env ie = {
      .loop = &e->fx->loop, .conns = e->fx->conns, .registry = &e->slot, .store = e->store};
  c->flag = false;
  assert_int_equal(ch_intercept_begin(kind, &ie, request.data, request.len, deadline_5s(), resumed,
                                      &c->flag, &c->ic),
                   0);
  hook_fx_pump(e->fx, &c->flag);
  free(request.data);
}

/* Phases 2 and 3: the runtime answered `status` (and `response`, taken). */
static void end(env *e, call *c, grpc_status_code status, bytes response) {
  ch_intercept_record(c->ic, status, response.data, response.len);
  free(response.data);
  c->flag = false;
  ch_intercept_post(c->ic, resumed);
  hook_fx_pump(e->fx, &c->flag);
  ch_intercept_free(c->ic);
  c->ic = NULL;
}

static int setup(void **state) {
  env *e = calloc(1, sizeof *e);
  e->fx = hook_fx_new();
  ch_registry_slot_init(&e->slot);
  e->store = ch_store_new();
  *state = e;
  return 0;
}

static void runtime_stop(struct runtime *rt);

static int teardown(void **state) {
  env *e = *state;
  if (e->rt) runtime_stop(e->rt);
  ch_store_free(e->store);
  ch_registry_slot_destroy(&e->slot);
  hook_fx_free(e->fx);
  free(e);
  return 0;
}

static bytes run_pod_request(const char *extra_labels) {
  char config[1024], json[1200];
  snprintf(config, sizeof config, POD_JSON, extra_labels);
  snprintf(json, sizeof json, "{\"config\": %s, \"runtime_handler\": \"runc\"}", config);
  return packed(&runtime__v1__run_pod_sandbox_request__descriptor, json);
}

static bytes run_pod_response(const char *id) {
  char json[128];
  snprintf(json, sizeof json, "{\"pod_sandbox_id\": \"%s\"}", id);
  return packed(&runtime__v1__run_pod_sandbox_response__descriptor, json);
}

/* RunPodSandbox through the intercept with no plugin: the store learns the pod. */
static void put_pod(env *e, const char *id) {
  call c;
  begin(e, &c, "RunPodSandbox", run_pod_request(""));
  end(e, &c, GRPC_STATUS_OK, run_pod_response(id));
}

/* CreateContainer "app" in pod `pod_id` with no plugin: the store learns it. */
static void put_container(env *e, const char *pod_id, const char *id) {
  char config[1024], json[1600];
  snprintf(config, sizeof config, POD_JSON, "");
  snprintf(json, sizeof json,
           "{\"pod_sandbox_id\": \"%s\", \"config\": {\"metadata\": {\"name\": \"app\"},"
           " \"image\": {\"image\": \"sha256:8e4f0a\", \"user_specified_image\": \"nginx:1.27\"},"
           " \"labels\": {\"io.kubernetes.container.name\": \"app\"}}, \"sandbox_config\": %s}",
           pod_id, config);
  call c;
  begin(e, &c, "CreateContainer", packed(&runtime__v1__create_container_request__descriptor, json));
  snprintf(json, sizeof json, "{\"container_id\": \"%s\"}", id);
  end(e, &c, GRPC_STATUS_OK, packed(&runtime__v1__create_container_response__descriptor, json));
}

static bytes by_id(const ProtobufCMessageDescriptor *desc, const char *field, const char *id) {
  char json[128];
  snprintf(json, sizeof json, "{\"%s\": \"%s\"}", field, id);
  return packed(desc, json);
}

/* PreRunPodSandbox's answer is in the forwarded request and in the store. */
static void run_pod_answer_applied_and_recorded(void **state) {
  env *e = *state;
  hook_fx_plugin(e->fx, "10-qos", 0, "Fail", "[\"PreRunPodSandbox\"]", 2000);
  publish(e);
  answer_json(e->fx, 0, &runtime__v1alpha1__pod_sandbox_hook_response__descriptor,
              "{\"labels\": {\"qos\": \"ls\"}, \"cgroup_parent\": \"/kubepods/ls\"}");
  call c;
  begin(e, &c, "RunPodSandbox", run_pod_request(""));
  grpc_status_code code;
  const char *message;
  assert_false(ch_intercept_rejected(c.ic, &code, &message));
  Runtime__V1alpha1__PodSandboxHookRequest *sent = (void *)hook_fx_request(
      e->fx, 0, 0, &runtime__v1alpha1__pod_sandbox_hook_request__descriptor);
  assert_string_equal(sent->pod_meta->name, "web");
  assert_string_equal(sent->cgroup_parent, "/kubepods/besteffort/poduid-1");
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(sent, NULL);

  size_t len;
  uint8_t *changed = ch_intercept_request(c.ic, &len);
  assert_non_null(changed);
  Runtime__V1__RunPodSandboxRequest *fwd =
      runtime__v1__run_pod_sandbox_request__unpack(NULL, len, changed);
  assert_string_equal(ch_pb_map_get(&fwd->config->base, "labels", "qos"), "ls");
  assert_string_equal(fwd->config->linux->cgroup_parent, "/kubepods/ls");
  runtime__v1__run_pod_sandbox_request__free_unpacked(fwd, NULL);
  free(changed);

  end(e, &c, GRPC_STATUS_OK, run_pod_response("pod-1"));
  ch_pod_record *pod = ch_store_get_pod(e->store, "pod-1");
  assert_non_null(pod);
  assert_string_equal(pod->cgroup_parent, "/kubepods/ls");
  assert_string_equal(ch_pb_map_get(&pod->base, "labels", "qos"), "ls");
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
}

/* A pod labelled skip-hookserver=true: no hook is called, the request is
 * forwarded as it came, and the store still learns the pod. */
static void skip_label(void **state) {
  env *e = *state;
  hook_fx_plugin(e->fx, "10-qos", 0, "Fail", "[\"PreRunPodSandbox\"]", 2000);
  publish(e);
  hook_fx_error(e->fx, 0, GRPC_STATUS_INTERNAL, "must not be called");
  call c;
  begin(e, &c, "RunPodSandbox", run_pod_request(SKIP));
  grpc_status_code code;
  const char *message;
  size_t len;
  assert_false(ch_intercept_rejected(c.ic, &code, &message));
  assert_null(ch_intercept_request(c.ic, &len));
  end(e, &c, GRPC_STATUS_OK, run_pod_response("pod-skip"));
  assert_int_equal(hook_fx_calls(e->fx, 0), 0);
  ch_pod_record *pod = ch_store_get_pod(e->store, "pod-skip");
  assert_non_null(pod);
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
}

/* StopContainer names only the container's ID: the hook request is the
 * stored container. A Fail plugin's error rejects the call with its status
 * and a message naming it; an answering plugin gets Pre, then Post after
 * the runtime's OK. */
static void stop_container_pre_and_post(void **state) {
  env *e = *state;
  put_pod(e, "pod-1");
  put_container(e, "pod-1", "ctr-1");
  hook_fx_plugin(e->fx, "10-guard", 0, "Fail", "[\"PreStopContainer\", \"PostStopContainer\"]",
                 2000);
  publish(e);
  hook_fx_error(e->fx, 0, GRPC_STATUS_PERMISSION_DENIED, "not now");
  call c;
  begin(e, &c, "StopContainer",
        by_id(&runtime__v1__stop_container_request__descriptor, "container_id", "ctr-1"));
  grpc_status_code code;
  const char *message = NULL;
  size_t len;
  assert_true(ch_intercept_rejected(c.ic, &code, &message));
  assert_int_equal(code, GRPC_STATUS_PERMISSION_DENIED);
  assert_string_equal(message,
                      "crihook: plugin 10-guard failed on PreStopContainer "
                      "(failure-policy Fail): PERMISSION_DENIED: not now");
  Runtime__V1alpha1__ContainerResourceHookRequest *sent = (void *)hook_fx_request(
      e->fx, 0, 0, &runtime__v1alpha1__container_resource_hook_request__descriptor);
  assert_string_equal(sent->container_meta->name, "app");
  assert_string_equal(sent->container_meta->id, "ctr-1");
  assert_string_equal(sent->pod_meta->name, "web");
  assert_string_equal(sent->container_image, "nginx:1.27");
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(sent, NULL);
  ch_intercept_free(c.ic);

  hook_fx_answer(e->fx, 0, NULL);
  begin(e, &c, "StopContainer",
        by_id(&runtime__v1__stop_container_request__descriptor, "container_id", "ctr-1"));
  assert_false(ch_intercept_rejected(c.ic, &code, &message));
  assert_null(ch_intercept_request(c.ic, &len)); /* nothing in a Stop to change */
  end(e, &c, GRPC_STATUS_OK, NONE);
  assert_int_equal(hook_fx_calls(e->fx, 0), 3);
  assert_string_equal(hook_fx_method(e->fx, 0, 1),
                      "/runtime.v1alpha1.RuntimeHookService/PreStopContainerHook");
  assert_string_equal(hook_fx_method(e->fx, 0, 2),
                      "/runtime.v1alpha1.RuntimeHookService/PostStopContainerHook");
}

/* A Post hook is not called when the runtime refused the call. */
static void no_post_hook_after_runtime_error(void **state) {
  env *e = *state;
  put_pod(e, "pod-1");
  put_container(e, "pod-1", "ctr-1");
  hook_fx_plugin(e->fx, "10-log", 0, "Ignore", "[\"PostStartContainer\"]", 2000);
  publish(e);
  call c;
  begin(e, &c, "StartContainer",
        by_id(&runtime__v1__start_container_request__descriptor, "container_id", "ctr-1"));
  end(e, &c, GRPC_STATUS_NOT_FOUND, NONE);
  assert_int_equal(hook_fx_calls(e->fx, 0), 0);
  begin(e, &c, "StartContainer",
        by_id(&runtime__v1__start_container_request__descriptor, "container_id", "ctr-1"));
  end(e, &c, GRPC_STATUS_OK, NONE);
  assert_int_equal(hook_fx_calls(e->fx, 0), 1);
  assert_string_equal(hook_fx_method(e->fx, 0, 0),
                      "/runtime.v1alpha1.RuntimeHookService/PostStartContainerHook");
}

/* RemoveContainer and RemovePodSandbox: the store forgets them once the
 * runtime said OK, not before nor after an error. */
static void remove_forgets(void **state) {
  env *e = *state;
  put_pod(e, "pod-1");
  put_container(e, "pod-1", "ctr-1");
  assert_int_equal(ch_store_container_count(e->store), 1);
  call c;
  begin(e, &c, "RemoveContainer",
        by_id(&runtime__v1__remove_container_request__descriptor, "container_id", "ctr-1"));
  end(e, &c, GRPC_STATUS_UNAVAILABLE, NONE);
  assert_int_equal(ch_store_container_count(e->store), 1);
  begin(e, &c, "RemoveContainer",
        by_id(&runtime__v1__remove_container_request__descriptor, "container_id", "ctr-1"));
  end(e, &c, GRPC_STATUS_OK, NONE);
  assert_int_equal(ch_store_container_count(e->store), 0);
  begin(e, &c, "RemovePodSandbox",
        by_id(&runtime__v1__remove_pod_sandbox_request__descriptor, "pod_sandbox_id", "pod-1"));
  end(e, &c, GRPC_STATUS_OK, NONE);
  assert_int_equal(ch_store_pod_count(e->store), 0);
}

/* The stored container's annotation `key`, malloc'd ("" if absent). */
static char *stored_annotation(env *e, const char *id, const char *key) {
  char *pod_id = NULL;
  ch_container_record *c = ch_store_container_request(e->store, id, &pod_id);
  assert_non_null(c);
  const char *v = ch_pb_map_get(&c->base, "container_annotations", key);
  char *out = strdup(v ? v : "");
  free(pod_id);
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
  return out;
}

/* PreStartContainer's answer changes the stored container (StartContainer
 * carries only an ID), once the runtime said OK; UpdateContainerResources'
 * annotations reach the store too. */
static void start_answer_and_update_kept_in_store(void **state) {
  env *e = *state;
  put_pod(e, "pod-1");
  put_container(e, "pod-1", "ctr-1");
  hook_fx_plugin(e->fx, "10-tag", 0, "Ignore", "[\"PreStartContainer\"]", 2000);
  publish(e);
  answer_json(e->fx, 0, &runtime__v1alpha1__container_resource_hook_response__descriptor,
              "{\"container_annotations\": {\"tagged\": \"yes\"}}");
  call c;
  size_t len;
  begin(e, &c, "StartContainer",
        by_id(&runtime__v1__start_container_request__descriptor, "container_id", "ctr-1"));
  assert_null(ch_intercept_request(c.ic, &len)); /* the call itself is unchanged */
  char *before = stored_annotation(e, "ctr-1", "tagged");
  assert_string_equal(before, "");
  end(e, &c, GRPC_STATUS_OK, NONE);
  char *after = stored_annotation(e, "ctr-1", "tagged");
  assert_string_equal(after, "yes");

  begin(e, &c, "UpdateContainerResources",
        packed(&runtime__v1__update_container_resources_request__descriptor,
               "{\"container_id\": \"ctr-1\", \"linux\": {\"cpu_shares\": 512},"
               " \"annotations\": {\"resized\": \"1\"}}"));
  end(e, &c, GRPC_STATUS_OK, NONE);
  char *resized = stored_annotation(e, "ctr-1", "resized");
  assert_string_equal(resized, "1");
  free(before);
  free(after);
  free(resized);
}

/* `id` as field `number`, then an unknown field 5 encoded as an (empty)
 * group: the runtime's Go decoder reads it, protobuf-c refuses it. */
static bytes undecodable(uint8_t number, const char *id) {
  uint8_t bytes[128];
  size_t n = 0, len = strlen(id);
  bytes[n++] = (uint8_t)(number << 3 | 2);
  bytes[n++] = (uint8_t)len;
  memcpy(bytes + n, id, len);
  n += len;
  bytes[n++] = 5 << 3 | 3;
  bytes[n++] = 5 << 3 | 4;
  return bytes_of(bytes, n);
}

/* An undecodable request: refused when a Fail plugin wants to see it, with
 * a message saying why; else forwarded untouched, and the store forgets
 * what it removed, by the ID read as the runtime reads it. */
static void undecodable_requests(void **state) {
  env *e = *state;
  put_pod(e, "pod-1");
  put_container(e, "pod-1", "ctr-1");
  hook_fx_plugin(e->fx, "10-guard", 0, "Fail", "[\"PreStopContainer\", \"PostRemoveContainer\"]",
                 2000);
  publish(e);
  call c;
  begin(e, &c, "StopContainer", undecodable(1, "ctr-1"));
  grpc_status_code code;
  const char *message = NULL;
  size_t len;
  assert_true(ch_intercept_rejected(c.ic, &code, &message));
  assert_int_equal(code, GRPC_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(message,
                         "the StopContainer request does not decode as "
                         "runtime.v1.StopContainerRequest"));
  assert_non_null(strstr(message, "registered for PreStopContainer (10-guard)"));
  ch_intercept_free(c.ic);

  begin(e, &c, "RemoveContainer", undecodable(1, "ctr-1"));
  assert_false(ch_intercept_rejected(c.ic, &code, &message));
  assert_null(ch_intercept_request(c.ic, &len));
  end(e, &c, GRPC_STATUS_OK, NONE);
  assert_int_equal(ch_store_container_count(e->store), 0);
  assert_int_equal(hook_fx_calls(e->fx, 0), 0); /* no hook can see it */
}

/* ---- a runtime that speaks one CRI service ---- */

/* A fake runtime answering the verbose PodSandboxStatus and ContainerStatus
 * of `service` ("/runtime.v1alpha2.RuntimeService/") only, containerd-style
 * (the config in the `info` JSON); any other path is UNIMPLEMENTED, as a
 * runtime that does not serve that CRI version answers. */
typedef struct runtime {
  const char *service;
  fake_grpc_server *fake;
  char path[128];           /* its socket */
  _Atomic int status_calls; /* Status calls on `service` */
  _Atomic bool hang;        /* PodSandboxStatus is never answered */
} runtime;

static const char *const run_info_doc =
    "{\"pid\": 42, \"processStatus\": \"running\", \"runtimeHandler\": \"runc\","
    " \"config\": {\"metadata\": {\"name\": \"web\", \"uid\": \"uid-1\", \"namespace\": \"shop\"},"
    "   \"labels\": {\"io.kubernetes.pod.name\": \"web\", \"io.kubernetes.pod.namespace\": "
    "\"shop\", \"io.kubernetes.pod.uid\": \"uid-1\"},"
    "   \"linux\": {\"cgroup_parent\": \"/kubepods/besteffort/poduid-1\"}}}";

static const char *const create_info_doc =
    "{\"sandboxID\": \"pod-1\", \"pid\": 43,"
    " \"config\": {\"metadata\": {\"name\": \"app\"},"
    "   \"image\": {\"image\": \"sha256:8e4f0a\", \"user_specified_image\": \"nginx:1.27\"},"
    "   \"labels\": {\"io.kubernetes.container.name\": \"app\"}}}";

static void answer_pod_status(const uint8_t *req, size_t len, fake_answer *a) {
  Runtime__V1__PodSandboxStatusRequest *r =
      runtime__v1__pod_sandbox_status_request__unpack(NULL, len, req);
  if (!r || !r->verbose) { /* (no cmocka asserts on the server's thread) */
    fake_answer_error(a, GRPC_STATUS_INVALID_ARGUMENT, "want a verbose status request");
  } else {
    Runtime__V1__PodSandboxStatusResponse out = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
    Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
    st.id = r->pod_sandbox_id;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry info =
        RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
    info.key = "info";
    info.value = (char *)run_info_doc;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry *infos[1] = {&info};
    out.status = &st;
    out.n_info = 1;
    out.info = infos;
    fake_answer_message(a, &out.base);
  }
  if (r) runtime__v1__pod_sandbox_status_request__free_unpacked(r, NULL);
}

static void answer_ctr_status(const uint8_t *req, size_t len, fake_answer *a) {
  Runtime__V1__ContainerStatusRequest *r =
      runtime__v1__container_status_request__unpack(NULL, len, req);
  if (!r || !r->verbose) {
    fake_answer_error(a, GRPC_STATUS_INVALID_ARGUMENT, "want a verbose status request");
  } else {
    Runtime__V1__ContainerStatusResponse out = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
    Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
    st.id = r->container_id;
    Runtime__V1__ContainerStatusResponse__InfoEntry info =
        RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
    info.key = "info";
    info.value = (char *)create_info_doc;
    Runtime__V1__ContainerStatusResponse__InfoEntry *infos[1] = {&info};
    out.status = &st;
    out.n_info = 1;
    out.info = infos;
    fake_answer_message(a, &out.base);
  }
  if (r) runtime__v1__container_status_request__free_unpacked(r, NULL);
}

static void runtime_handle(void *data, const char *method, const uint8_t *req, size_t len,
                           fake_answer *a) {
  runtime *rt = data;
  size_t n = strlen(rt->service);
  const char *name = strncmp(method, rt->service, n) == 0 ? method + n : "";
  if (strcmp(name, "PodSandboxStatus") == 0 && rt->hang) {
    rt->status_calls++;
    a->hang = true;
  } else if (strcmp(name, "PodSandboxStatus") == 0) {
    rt->status_calls++;
    answer_pod_status(req, len, a);
  } else if (strcmp(name, "ContainerStatus") == 0) {
    rt->status_calls++;
    answer_ctr_status(req, len, a);
  } else {
    fake_answer_error(a, GRPC_STATUS_UNIMPLEMENTED, "unknown service or method");
  }
}

/* Starts a runtime speaking `service` (teardown stops it). */
static runtime *runtime_start(env *e, const char *service) {
  runtime *rt = calloc(1, sizeof *rt);
  assert_non_null(rt);
  e->rt = rt;
  snprintf(rt->path, sizeof rt->path, "%s/runtime.sock", e->fx->dir);
  unlink(rt->path);
  rt->service = service;
  rt->fake = fake_grpc_start(rt->path, runtime_handle, rt);
  assert_non_null(rt->fake);
  return rt;
}

static void runtime_stop(runtime *rt) {
  if (rt->fake) fake_grpc_stop(rt->fake);
  free(rt);
}

/* `valid` (taken) followed by an unknown field 5 encoded as an (empty) group. */
static bytes with_group(bytes valid) {
  uint8_t *out = realloc(valid.data, valid.len + 2);
  assert_non_null(out);
  out[valid.len] = 5 << 3 | 3;
  out[valid.len + 1] = 5 << 3 | 4;
  return (bytes){out, valid.len + 2};
}

/* Phase 1 of an undecodable call on `path` (the request taken) with the
 * runtime's socket `backend_path`: forwarded untouched. */
static void begin_undecodable(env *e, call *c, const char *backend_path, const char *path,
                              bytes request) {
  const char *name = strrchr(path, '/') + 1;
  ch_intercept_kind kind = ch_intercept_kind_of(name, strlen(name));
  assert_ptr_not_equal(kind, CH_INTERCEPT_NONE);
  ch_intercept_env ie = {.loop = &e->fx->loop,
                         .conns = e->fx->conns,
                         .registry = &e->slot,
                         .store = e->store,
                         .backend_path = backend_path,
                         .method = path,
                         .method_len = strlen(path)};
  *c = (call){0};
  assert_int_equal(ch_intercept_begin(kind, &ie, request.data, request.len, deadline_5s(), resumed,
                                      &c->flag, &c->ic),
                   0);
  hook_fx_pump(e->fx, &c->flag);
  free(request.data);
  grpc_status_code code;
  const char *message;
  size_t len;
  assert_false(ch_intercept_rejected(c->ic, &code, &message));
  assert_null(ch_intercept_request(c->ic, &len)); /* forwarded untouched */
}

/* The whole call on `path` ("/runtime.v1alpha2.RuntimeService/RunPodSandbox")
 * with `rt` as the backend; the runtime answered OK with `response`. Ends
 * when the status lookup has been recorded. */
static void call_on(env *e, runtime *rt, const char *path, bytes request, bytes response) {
  call c;
  begin_undecodable(e, &c, rt->path, path, request);
  end(e, &c, GRPC_STATUS_OK, response);
}

/* An undecodable RunPodSandbox on `service`, then an undecodable
 * CreateContainer in it, each accepted by a runtime that speaks only that
 * service: the store learns both from the runtime's verbose status, asked
 * on the call's own service. An Ignore plugin wants both Pre hooks but
 * cannot see them. */
static void undecodable_create_learnt_on(env *e, const char *service) {
  hook_fx_plugin(e->fx, "10-log", 0, "Ignore", "[\"PreRunPodSandbox\", \"PreCreateContainer\"]",
                 2000);
  publish(e);
  runtime *rt = runtime_start(e, service);
  char path[96];
  snprintf(path, sizeof path, "%sRunPodSandbox", service);
  call_on(e, rt, path, with_group(run_pod_request("")), run_pod_response("pod-1"));
  assert_int_equal(rt->status_calls, 1);
  ch_pod_record *pod = ch_store_get_pod(e->store, "pod-1");
  assert_non_null(pod);
  assert_string_equal(pod->pod_meta->name, "web");
  assert_string_equal(pod->pod_meta->namespace_, "shop");
  assert_string_equal(pod->cgroup_parent, "/kubepods/besteffort/poduid-1");
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);

  char config[1024], json[1600];
  snprintf(config, sizeof config, POD_JSON, "");
  snprintf(json, sizeof json,
           "{\"pod_sandbox_id\": \"pod-1\", \"config\": {\"metadata\": {\"name\": \"app\"},"
           " \"image\": {\"image\": \"sha256:8e4f0a\", \"user_specified_image\": \"nginx:1.27\"},"
           " \"labels\": {\"io.kubernetes.container.name\": \"app\"}}, \"sandbox_config\": %s}",
           config);
  snprintf(path, sizeof path, "%sCreateContainer", service);
  call_on(
      e, rt, path, with_group(packed(&runtime__v1__create_container_request__descriptor, json)),
      packed(&runtime__v1__create_container_response__descriptor, "{\"container_id\": \"ctr-1\"}"));
  assert_int_equal(rt->status_calls, 2);
  char *pod_id = NULL;
  ch_container_record *ctr = ch_store_container_request(e->store, "ctr-1", &pod_id);
  assert_non_null(ctr);
  assert_string_equal(pod_id, "pod-1");
  assert_string_equal(ctr->container_meta->name, "app");
  free(pod_id);
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(ctr, NULL);
  assert_int_equal(hook_fx_calls(e->fx, 0), 0); /* no hook can see them */
}

static void undecodable_create_learnt_v1alpha2(void **state) {
  undecodable_create_learnt_on(*state, "/runtime.v1alpha2.RuntimeService/");
}

static void undecodable_create_learnt_v1(void **state) {
  undecodable_create_learnt_on(*state, "/runtime.v1.RuntimeService/");
}

/* The runtime is gone when its status is asked: the call still finishes
 * (the owner hears it), the store does not learn the pod. */
static void undecodable_create_with_the_runtime_gone(void **state) {
  env *e = *state;
  char gone[128];
  snprintf(gone, sizeof gone, "%s/nobody.sock", e->fx->dir);
  call c;
  begin_undecodable(e, &c, gone, "/runtime.v1.RuntimeService/RunPodSandbox",
                    with_group(run_pod_request("")));
  end(e, &c, GRPC_STATUS_OK, run_pod_response("pod-1"));
  assert_null(ch_store_get_pod(e->store, "pod-1"));
}

/* The call is freed while the runtime's status is asked (the owner went
 * away): the status call ends then, and its end reaches nobody. */
static void freed_while_asking_the_runtime(void **state) {
  env *e = *state;
  runtime *rt = runtime_start(e, "/runtime.v1.RuntimeService/");
  rt->hang = true;
  call c;
  begin_undecodable(e, &c, rt->path, "/runtime.v1.RuntimeService/RunPodSandbox",
                    with_group(run_pod_request("")));
  bytes response = run_pod_response("pod-1");
  ch_intercept_record(c.ic, GRPC_STATUS_OK, response.data, response.len);
  free(response.data);
  c.flag = false;
  ch_intercept_post(c.ic, resumed);
  int64_t give_up = now_ms() + 10000; /* until the runtime has the call */
  while (rt->status_calls == 0 && now_ms() < give_up) {
    uv_run(&e->fx->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(rt->status_calls, 1);
  assert_false(c.flag);
  ch_intercept_free(c.ic);
  assert_false(c.flag); /* nobody was told */
  assert_null(ch_store_get_pod(e->store, "pod-1"));
}

static void no_notify(void *arg) { (void)arg; }

/* While someone watches the live trace, each hook call is traced with its
 * result and what its answer changed; a skipped plugin is traced too. */
static void hook_calls_traced_with_changes(void **state) {
  env *e = *state;
  ch_trace_watcher *w;
  ch_error err;
  ch_trace_filter any = {0};
  assert_int_equal(ch_trace_watch(&any, 4, no_notify, NULL, &w, &err), 0);
  hook_fx_plugin(e->fx, "10-qos", 0, "Fail", "[\"PreRunPodSandbox\"]", 2000);
  hook_fx_plugin(e->fx, "20-slow", 1, "Ignore", "[\"PreRunPodSandbox\"]", 100);
  publish(e);
  answer_json(e->fx, 0, &runtime__v1alpha1__pod_sandbox_hook_response__descriptor,
              "{\"labels\": {\"qos\": \"ls\"}}");
  hook_fx_hang(e->fx, 1);
  call c;
  begin(e, &c, "RunPodSandbox", run_pod_request(""));
  ch_trace_event ev = {0};
  ch_intercept_trace(c.ic, &ev);
  assert_non_null(ev.hooks);
  assert_int_equal(ev.hooks->count, 2);
  const ch_trace_hook *ok = &ev.hooks->items[0], *slow = &ev.hooks->items[1];
  assert_string_equal(ok->plugin, "10-qos");
  assert_string_equal(ok->hook, "PreRunPodSandbox");
  assert_int_equal(ok->result, CH_TRACE_HOOK_OK);
  assert_int_equal(ok->change_count, 1);
  assert_string_equal(ok->changes, "label+qos=ls");
  assert_string_equal(ok->cause, "");
  assert_string_equal(slow->plugin, "20-slow");
  assert_int_equal(slow->result, CH_TRACE_HOOK_TIMEOUT);
  /* the client's timer or the server's (grpc-timeout), whichever is first */
  assert_true(strncmp(slow->cause, "DEADLINE_EXCEEDED: ", 19) == 0);
  assert_int_equal(slow->change_count, 0);
  free(ev.hooks);
  end(e, &c, GRPC_STATUS_OK, run_pod_response("pod-1"));

  begin(e, &c, "RunPodSandbox", run_pod_request(SKIP)); /* skipped, and traced so */
  ch_trace_event skipped = {0};
  ch_intercept_trace(c.ic, &skipped);
  assert_non_null(skipped.hooks);
  assert_int_equal(skipped.hooks->count, 2);
  assert_int_equal(skipped.hooks->items[0].result, CH_TRACE_HOOK_SKIPPED);
  free(skipped.hooks);
  end(e, &c, GRPC_STATUS_OK, run_pod_response("pod-2"));
  assert_int_equal(hook_fx_calls(e->fx, 0), 1);
  ch_trace_unwatch(w);
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(run_pod_answer_applied_and_recorded, setup, teardown),
      cmocka_unit_test_setup_teardown(skip_label, setup, teardown),
      cmocka_unit_test_setup_teardown(stop_container_pre_and_post, setup, teardown),
      cmocka_unit_test_setup_teardown(no_post_hook_after_runtime_error, setup, teardown),
      cmocka_unit_test_setup_teardown(start_answer_and_update_kept_in_store, setup, teardown),
      cmocka_unit_test_setup_teardown(remove_forgets, setup, teardown),
      cmocka_unit_test_setup_teardown(undecodable_requests, setup, teardown),
      cmocka_unit_test_setup_teardown(undecodable_create_learnt_v1alpha2, setup, teardown),
      cmocka_unit_test_setup_teardown(undecodable_create_learnt_v1, setup, teardown),
      cmocka_unit_test_setup_teardown(undecodable_create_with_the_runtime_gone, setup, teardown),
      cmocka_unit_test_setup_teardown(freed_while_asking_the_runtime, setup, teardown),
      cmocka_unit_test_setup_teardown(hook_calls_traced_with_changes, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return rc;
}
