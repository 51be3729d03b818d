/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_merge.c: libFuzzer target for the hook-answer merge
 * (dispatcher/merge.c).
 *
 * Input: one byte choosing the hook (0 PreRunPodSandbox, 1 PreCreateContainer,
 * 2 PreUpdateContainerResources, 3 PreStartContainer, the byte modulo 4),
 * then a hook server's answer as it arrives on the wire (PodSandboxHookResponse
 * for 0, ContainerResourceHookResponse otherwise). The answer is decoded as
 * the dispatcher decodes it and merged twice (two plugins answering alike)
 * into a kubelet-shaped request (kubelet.h), with the live-trace notes on.
 * When bit 2 of the first byte is set, the request comes from the input too:
 * two bytes of length (big-endian), that many bytes of the request (the
 * RunPodSandbox config, the CreateContainer request, the update request or
 * the stored record), then the answer; a request that does not decode ends
 * the run. In both cases
 * the merged request must still pack into bytes that decode, since that is
 * what crihookd forwards to the runtime. Bad answers may be refused; they
 * must not crash, leak or corrupt. */
#include <stdint.h>
#include <string.h>

#include "kubelet.h"
#include "merge.h"
#include "views.h"

enum { MERGE_POD, MERGE_CREATE, MERGE_UPDATE, MERGE_RECORD, MERGE_KINDS };

/* The request to merge into: the input's (when given) or kubelet's. */
typedef struct request_source {
  const uint8_t *bytes; /* NULL: the kubelet-shaped one */
  size_t len;
} request_source;

/* A request from the input that does not round-trip by itself (see
 * round_trips()) is out of scope: the merge must not break a request, it
 * cannot mend one. */
static ProtobufCMessage *request_of(const request_source *src,
                                    const ProtobufCMessageDescriptor *desc, const char *json) {
  if (!src->bytes) return kubelet_message(desc, json);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, src->len, src->bytes);
  if (msg && !round_trips(msg, desc)) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return NULL;
  }
  return msg;
}

static void merge_pod(const request_source *src, const uint8_t *data, size_t size,
                      ch_merge_trace *trace) {
  Runtime__V1alpha1__PodSandboxHookResponse *answer =
      runtime__v1alpha1__pod_sandbox_hook_response__unpack(NULL, size, data);
  if (!answer) return;
  Runtime__V1__PodSandboxConfig *config =
      (void *)request_of(src, &runtime__v1__pod_sandbox_config__descriptor, kubelet_pod_config);
  for (int i = 0; config && i < 2; i++) {
    ch_merge_trace_clear_changes(trace);
    ch_merge_pod_answer(config, answer, trace, i ? "20-second" : "10-first");
  }
  if (config) {
    must_round_trip(&config->base, &runtime__v1__pod_sandbox_config__descriptor, "merged pod");
    protobuf_c_message_free_unpacked(&config->base, NULL);
  }
  protobuf_c_message_free_unpacked(&answer->base, NULL);
}

/* The container record the store keeps for a created container: the view
 * of kubelet's CreateContainer request, packed and unpacked. */
static Runtime__V1alpha1__ContainerResourceHookRequest *kubelet_record(void) {
  Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
  req.pod_sandbox_id = "2a9c3b4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b";
  req.config =
      (void *)kubelet_message(&runtime__v1__container_config__descriptor, kubelet_container_config);
  req.sandbox_config =
      (void *)kubelet_message(&runtime__v1__pod_sandbox_config__descriptor, kubelet_pod_config);
  ch_container_view v;
  ch_container_view_of_create(&v, &req, NULL, "4f1c2d3e4f5a");
  size_t len = protobuf_c_message_get_packed_size(&v.msg.base);
  uint8_t *bytes = malloc(len);
  protobuf_c_message_pack(&v.msg.base, bytes);
  Runtime__V1alpha1__ContainerResourceHookRequest *record =
      runtime__v1alpha1__container_resource_hook_request__unpack(NULL, len, bytes);
  free(bytes);
  protobuf_c_message_free_unpacked(&req.config->base, NULL);
  protobuf_c_message_free_unpacked(&req.sandbox_config->base, NULL);
  return record;
}

static int merge_container_once(int kind, ProtobufCMessage *target, ProtobufCMessage *sandbox,
                                const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                                ch_merge_trace *trace, const char *plugin) {
  switch (kind) {
    case MERGE_CREATE:
      return ch_merge_container_answer((void *)target, (void *)sandbox, answer, trace, plugin);
    case MERGE_UPDATE:
      return ch_merge_update_answer((void *)target, answer, trace, plugin);
    default:
      return ch_merge_record_answer((void *)target, answer, trace, plugin);
  }
}

/* CreateContainer's config and sandbox config, kubelet's or from the input's
 * CreateContainerRequest. */
static void create_request(const request_source *src, ProtobufCMessage **config,
                           ProtobufCMessage **sandbox) {
  if (!src->bytes) {
    *config = kubelet_message(&runtime__v1__container_config__descriptor, kubelet_container_config);
    *sandbox = kubelet_message(&runtime__v1__pod_sandbox_config__descriptor, kubelet_pod_config);
    return;
  }
  Runtime__V1__CreateContainerRequest *r =
      (void *)request_of(src, &runtime__v1__create_container_request__descriptor, NULL);
  if (!r) return;
  *config = r->config ? &r->config->base : NULL; /* apply_answer refuses one without */
  *sandbox = r->sandbox_config ? &r->sandbox_config->base : NULL;
  r->config = NULL;
  r->sandbox_config = NULL;
  runtime__v1__create_container_request__free_unpacked(r, NULL);
  if (!*config) {
    if (*sandbox) protobuf_c_message_free_unpacked(*sandbox, NULL);
    *sandbox = NULL;
  }
}

static void merge_container(int kind, const request_source *src, const uint8_t *data, size_t size,
                            ch_merge_trace *trace) {
  Runtime__V1alpha1__ContainerResourceHookResponse *answer =
      runtime__v1alpha1__container_resource_hook_response__unpack(NULL, size, data);
  if (!answer) return;
  ProtobufCMessage *target = NULL, *sandbox = NULL;
  if (kind == MERGE_CREATE)
    create_request(src, &target, &sandbox);
  else if (kind == MERGE_UPDATE)
    target = request_of(src, &runtime__v1__update_container_resources_request__descriptor,
                        kubelet_update_request);
  else if (src->bytes)
    target = request_of(src, &runtime__v1alpha1__container_resource_hook_request__descriptor, NULL);
  else
    target = (ProtobufCMessage *)kubelet_record();
  for (int i = 0; target && i < 2; i++) {
    ch_merge_trace_clear_changes(trace);
    merge_container_once(kind, target, sandbox, answer, trace, i ? "20-second" : "10-first");
  }
  if (target) must_round_trip(target, target->descriptor, "merged container request");
  if (sandbox) must_round_trip(sandbox, sandbox->descriptor, "merged sandbox config");
  if (target) protobuf_c_message_free_unpacked(target, NULL);
  if (sandbox) protobuf_c_message_free_unpacked(sandbox, NULL);
  protobuf_c_message_free_unpacked(&answer->base, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = data[0] % MERGE_KINDS;
  request_source src = {NULL, 0};
  const uint8_t *answer = data + 1;
  size_t answer_len = size - 1;
  if (data[0] & 4) { /* the request is in the input */
    if (size < 3) return 0;
    src.len = (size_t)data[1] << 8 | data[2];
    if (src.len > size - 3) return 0;
    src.bytes = data + 3;
    answer = src.bytes + src.len;
    answer_len = size - 3 - src.len;
  }
  ch_merge_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.want_changes = true;
  if (kind == MERGE_POD)
    merge_pod(&src, answer, answer_len, &trace);
  else
    merge_container(kind, &src, answer, answer_len, &trace);
  return 0;
}
