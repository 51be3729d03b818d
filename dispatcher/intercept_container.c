/* SPDX-License-Identifier: Apache-2.0 */
/* intercept_container.c: the intercept table's container-level rows
 * (intercept_rows.h): CreateContainer, StartContainer,
 * UpdateContainerResources, StopContainer, RemoveContainer. Each row says
 * which hooks the method has, how its request becomes a
 * ContainerResourceHookRequest, how a Pre answer is applied and what the
 * store learns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intercept_rows.h"
#include "log.h"
#include "pbutil.h"
#include "views.h"

/* ---- CreateContainer: the request and the stored pod make the hook request ---- */

/* kubelet's CreateContainer carries its own copy of the pod's config, which
 * does not have the cgroup parent a PreRunPodSandbox hook gave the pod; the
 * runtime places the container by that copy. Forward the pod's real one. */
static void carry_pod_cgroup_parent(ch_intercept *ic, Runtime__V1__CreateContainerRequest *r) {
  if (!ic->pod || !*ic->pod->cgroup_parent || !r->sandbox_config) return;
  ProtobufCMessage *linux_ = ch_pb_submessage(&r->sandbox_config->base, "linux");
  Runtime__V1__LinuxPodSandboxConfig *l = (void *)linux_;
  if (!l || strcmp(l->cgroup_parent, ic->pod->cgroup_parent) == 0) return;
  if (ch_pb_set_string(&l->cgroup_parent, ic->pod->cgroup_parent) == 0) ic->changed = true;
}

static void create_load(ch_intercept *ic, bool hooks) {
  (void)hooks;
  Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
  ch_ic_ensure_pod(ic, r->pod_sandbox_id);
  ic->skip = ic->pod
                 ? ch_ic_labels_say_skip(&ic->pod->base, "labels")
                 : r->sandbox_config && ch_ic_labels_say_skip(&r->sandbox_config->base, "labels");
  carry_pod_cgroup_parent(ic, r);
  if (ic->pod)
    ch_ic_subject_pod(ic, NULL, ic->pod->pod_meta, r->pod_sandbox_id);
  else
    ch_ic_subject_pod(ic, r->sandbox_config ? r->sandbox_config->metadata : NULL, NULL,
                      r->pod_sandbox_id);
  ch_ic_subject_add(ic, "container",
                    r->config && r->config->metadata ? r->config->metadata->name : "");
}

static uint8_t *create_build(ch_intercept *ic, size_t *len) {
  ch_container_view v;
  ch_container_view_of_create(&v, (void *)ic->request, ic->pod, "");
  return ch_pb_pack(&v.msg.base, len);
}

static int create_apply(ch_intercept *ic, const ProtobufCMessage *answer, const char *plugin,
                        ch_merge_trace *trace) {
  Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
  if (!r->config) return -1;
  ic->changed = true;
  return ch_merge_container_answer(r->config, r->sandbox_config, (const void *)answer, trace,
                                   plugin);
}

static void create_record(ch_intercept *ic, const uint8_t *response, size_t len) {
  Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
  char *id = ch_ic_response_field(
      response, len, &runtime__v1__create_container_response__descriptor, "container_id");
  ch_error err;
  if (id) {
    ch_container_view v;
    ch_container_view_of_create(&v, r, ic->pod, id);
    if (ch_store_put_container(ic->env.store, id, r->pod_sandbox_id, &v.msg, &err) != 0)
      ch_warn("intercept", "store not updated %s: %s", ic->subject, err.msg);
  }
  ic->created_id = id;
}

static void create_trace(ch_intercept *ic, ch_trace_event *ev) {
  Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
  if (ic->pod)
    ch_ic_trace_pod_meta(ev, ic->pod->pod_meta);
  else if (r->sandbox_config && r->sandbox_config->metadata)
    ch_ic_trace_pod(ev, r->sandbox_config->metadata->namespace_, r->sandbox_config->metadata->name);
  snprintf(ev->pod_id, sizeof ev->pod_id, "%s", r->pod_sandbox_id);
  if (r->config && r->config->metadata)
    snprintf(ev->container, sizeof ev->container, "%s", r->config->metadata->name);
  snprintf(ev->container_id, sizeof ev->container_id, "%s", ic->created_id ? ic->created_id : "");
}

static uint8_t *container_status_request(const char *id, size_t *len) {
  Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  req.container_id = (char *)id;
  req.verbose = true;
  return ch_pb_pack(&req.base, len);
}

/* ---- calls that carry only a container ID: the stored container is the hook request ---- */

static void load_stored(ch_intercept *ic) {
  ch_ic_ensure_container(ic);
  ic->skip = ic->ctr && ch_ic_labels_say_skip(&ic->ctr->base, "pod_labels");
}

static void by_id_subject(ch_intercept *ic) {
  if (ic->ctr && ic->ctr->pod_meta) ch_ic_subject_pod(ic, NULL, ic->ctr->pod_meta, ic->ctr_pod_id);
  ch_ic_subject_add(ic, "container", ic->id);
}

static void by_id_load(ch_intercept *ic, bool hooks) {
  if (hooks) load_stored(ic);
  by_id_subject(ic);
}

static uint8_t *by_id_build(ch_intercept *ic, size_t *len) {
  return ic->ctr ? ch_pb_pack(&ic->ctr->base, len) : NULL;
}

static void by_id_trace(ch_intercept *ic, ch_trace_event *ev) {
  snprintf(ev->container_id, sizeof ev->container_id, "%s", ic->id);
  if (ic->ctr_pod_id) snprintf(ev->pod_id, sizeof ev->pod_id, "%s", ic->ctr_pod_id);
  if (!ic->ctr) return;
  ch_ic_trace_pod_meta(ev, ic->ctr->pod_meta);
  if (ic->ctr->container_meta)
    snprintf(ev->container, sizeof ev->container, "%s", ic->ctr->container_meta->name);
}

/* PreStartContainer's answer changes the stored container (nothing in the
 * call carries resources); intercept.c writes it back after the call. */
static int start_apply(ch_intercept *ic, const ProtobufCMessage *answer, const char *plugin,
                       ch_merge_trace *trace) {
  ic->ctr_changed = true;
  return ch_merge_record_answer(ic->ctr, (const void *)answer, trace, plugin);
}

/* ---- UpdateContainerResources: the stored container with the new resources ---- */

static void update_load(ch_intercept *ic, bool hooks) {
  (void)hooks; /* the store is updated from the stored container */
  load_stored(ic);
  by_id_subject(ic);
}

static uint8_t *update_build(ch_intercept *ic, size_t *len) {
  Runtime__V1__UpdateContainerResourcesRequest *r = (void *)ic->request;
  if (!ic->ctr) return NULL;
  Runtime__V1alpha1__LinuxContainerResources *stored = ic->ctr->container_resources;
  if (r->linux)
    ic->ctr->container_resources = (Runtime__V1alpha1__LinuxContainerResources *)r->linux;
  uint8_t *bytes = ch_pb_pack(&ic->ctr->base, len);
  ic->ctr->container_resources = stored;
  return bytes;
}

static int update_apply(ch_intercept *ic, const ProtobufCMessage *answer, const char *plugin,
                        ch_merge_trace *trace) {
  ic->changed = true;
  return ch_merge_update_answer((void *)ic->request, (const void *)answer, trace, plugin);
}

static void update_record(ch_intercept *ic, const uint8_t *response, size_t len) {
  (void)response, (void)len;
  Runtime__V1__UpdateContainerResourcesRequest *r = (void *)ic->request;
  if (!ic->ctr || !ic->ctr_pod_id) return; /* unknown to the store */
  if (r->linux) {
    ProtobufCMessage *res = ch_pb_submessage(&ic->ctr->base, "container_resources");
    if (res) ch_merge_fields(res, &r->linux->base, "resources", NULL, "");
  }
  ch_pb_map_merge(&ic->ctr->base, "container_annotations", &r->base, "annotations");
  ic->ctr_changed = true;
}

static void remove_record(ch_intercept *ic, const uint8_t *response, size_t len) {
  (void)response, (void)len;
  ch_store_remove_container(ic->env.store, ic->id);
}

const ch_intercept_row ch_intercept_container_rows[] = {
    {
        .method = "CreateContainer",
        .request = &runtime__v1__create_container_request__descriptor,
        .pre = CH_HOOK_PRE_CREATE_CONTAINER,
        .post = CH_NO_HOOK,
        .store_needs_request = true,
        .what = "container",
        .load = create_load,
        .build = create_build,
        .apply = create_apply,
        .record = create_record,
        .trace = create_trace,
        .undecoded = {.created = &runtime__v1__create_container_response__descriptor,
                      .created_field = "container_id",
                      .status_method = "ContainerStatus",
                      .status_request = container_status_request,
                      .put_status = ch_store_put_container_status},
    },
    {
        .method = "StartContainer",
        .request = &runtime__v1__start_container_request__descriptor,
        .pre = CH_HOOK_PRE_START_CONTAINER,
        .post = CH_HOOK_POST_START_CONTAINER,
        .id_field = "container_id",
        .what = "container",
        .load = by_id_load,
        .build = by_id_build,
        .apply = start_apply,
        .trace = by_id_trace,
    },
    {
        .method = "UpdateContainerResources",
        .request = &runtime__v1__update_container_resources_request__descriptor,
        .pre = CH_HOOK_PRE_UPDATE_CONTAINER_RESOURCES,
        .post = CH_NO_HOOK,
        .id_field = "container_id",
        .store_needs_request = true,
        .what = "container",
        .load = update_load,
        .build = update_build,
        .apply = update_apply,
        .record = update_record,
        .trace = by_id_trace,
    },
    {
        .method = "StopContainer",
        .request = &runtime__v1__stop_container_request__descriptor,
        .pre = CH_HOOK_PRE_STOP_CONTAINER,
        .post = CH_HOOK_POST_STOP_CONTAINER,
        .id_field = "container_id",
        .what = "container",
        .load = by_id_load,
        .build = by_id_build,
        .trace = by_id_trace,
    },
    {
        .method = "RemoveContainer",
        .request = &runtime__v1__remove_container_request__descriptor,
        .pre = CH_NO_HOOK,
        .post = CH_HOOK_POST_REMOVE_CONTAINER,
        .id_field = "container_id",
        .store_needs_request = true,
        .what = "container",
        .load = by_id_load,
        .build = by_id_build,
        .record = remove_record,
        .trace = by_id_trace,
        .undecoded = {.forget = ch_store_remove_container},
    },
};
const size_t ch_intercept_container_row_count =
    sizeof ch_intercept_container_rows / sizeof ch_intercept_container_rows[0];
