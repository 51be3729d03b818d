/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_views.c: libFuzzer target for the decode-and-view path of hooked
 * requests (dispatcher/intercept.c's decode, store/views.c).
 *
 * Input: one byte choosing the intercepted CRI method (the byte modulo 8, in
 * the order of the table below), then the request as kubelet sends it. It
 * is decoded with protobuf-c as crihookd decodes it; a request that decodes
 * is turned into the hook requests crihookd would send (the pod view of
 * RunPodSandbox, the container view of CreateContainer, with and without
 * the pod as the store holds it), which must pack into bytes that decode as
 * the hook API's messages, and into the live trace's JSON. An update's
 * resources and annotations are merged into a container record, as the
 * store does after UpdateContainerResources. */
#include <stdint.h>
#include <string.h>

#include "cri.pb-c.h"
#include "hook.pb-c.h"
#include "kubelet.h"
#include "merge.h"
#include "pbutil.h"
#include "views.h"

static const ProtobufCMessageDescriptor *const methods[] = {
    &runtime__v1__run_pod_sandbox_request__descriptor,
    &runtime__v1__stop_pod_sandbox_request__descriptor,
    &runtime__v1__remove_pod_sandbox_request__descriptor,
    &runtime__v1__create_container_request__descriptor,
    &runtime__v1__start_container_request__descriptor,
    &runtime__v1__update_container_resources_request__descriptor,
    &runtime__v1__stop_container_request__descriptor,
    &runtime__v1__remove_container_request__descriptor,
};
#define METHOD_COUNT (sizeof methods / sizeof methods[0])

/* The view packed and unpacked: the pod record the store would keep. */
static Runtime__V1alpha1__PodSandboxHookRequest *pod_record(const ch_pod_view *v) {
  view_must_round_trip(&v->msg.base, &runtime__v1alpha1__pod_sandbox_hook_request__descriptor,
                       "pod view");
  size_t len = protobuf_c_message_get_packed_size(&v->msg.base);
  uint8_t *bytes = malloc(len ? len : 1);
  if (!bytes) return NULL;
  protobuf_c_message_pack(&v->msg.base, bytes);
  Runtime__V1alpha1__PodSandboxHookRequest *pod =
      runtime__v1alpha1__pod_sandbox_hook_request__unpack(NULL, len, bytes);
  free(bytes);
  return pod;
}

static void view_run_pod(const Runtime__V1__RunPodSandboxRequest *r) {
  if (!r->config) return;
  ch_pod_view v;
  ch_pod_view_of_config(&v, r->config, r->runtime_handler);
  Runtime__V1alpha1__PodSandboxHookRequest *pod = pod_record(&v);
  if (pod) protobuf_c_message_free_unpacked(&pod->base, NULL);
}

static void view_create(const Runtime__V1__CreateContainerRequest *r) {
  const ProtobufCMessageDescriptor *hook_request =
      &runtime__v1alpha1__container_resource_hook_request__descriptor;
  ch_container_view v;
  ch_container_view_of_create(&v, r, NULL, "");
  view_must_round_trip(&v.msg.base, hook_request, "container view");
  if (!r->sandbox_config) return;
  ch_pod_view pv;
  ch_pod_view_of_config(&pv, r->sandbox_config, "");
  Runtime__V1alpha1__PodSandboxHookRequest *pod = pod_record(&pv);
  if (!pod) return;
  ch_container_view_of_create(&v, r, pod, "4f1c2d3e4f5a");
  view_must_round_trip(&v.msg.base, hook_request, "container view with the stored pod");
  protobuf_c_message_free_unpacked(&pod->base, NULL);
}

/* What the store does with a successful UpdateContainerResources. */
static void record_update(const Runtime__V1__UpdateContainerResourcesRequest *r) {
  Runtime__V1alpha1__ContainerResourceHookRequest *record = malloc(sizeof *record);
  if (!record) return;
  runtime__v1alpha1__container_resource_hook_request__init(record);
  if (r->linux) {
    ProtobufCMessage *res = ch_pb_submessage(&record->base, "container_resources");
    if (res) ch_merge_fields(res, &r->linux->base, "resources", NULL, "");
  }
  ch_pb_map_merge(&record->base, "container_annotations", &r->base, "annotations");
  view_must_round_trip(&record->base, record->base.descriptor, "updated record");
  protobuf_c_message_free_unpacked(&record->base, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const ProtobufCMessageDescriptor *desc = methods[data[0] % METHOD_COUNT];
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
  if (!msg) return 0;
  json_decref(ch_pb_to_json(msg)); /* the live trace and debug logs show requests */
  /* A request that does not round-trip by itself (round_trips(): an
   * unknown field with an overlong zero tag, which Go refuses too) would
   * carry that field into its views; the views must not break a request,
   * they cannot mend one. */
  if (!round_trips(msg, desc)) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
  }
  if (desc == &runtime__v1__run_pod_sandbox_request__descriptor)
    view_run_pod((void *)msg);
  else if (desc == &runtime__v1__create_container_request__descriptor)
    view_create((void *)msg);
  else if (desc == &runtime__v1__update_container_resources_request__descriptor)
    record_update((void *)msg);
  protobuf_c_message_free_unpacked(msg, NULL);
  return 0;
}
