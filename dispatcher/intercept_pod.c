/* SPDX-License-Identifier: Apache-2.0 */
/* intercept_pod.c: the intercept table's pod-level rows (intercept_rows.h):
 * RunPodSandbox, StopPodSandbox, RemovePodSandbox. Each row says which
 * hooks the method has, how its request becomes a PodSandboxHookRequest,
 * how a Pre answer is applied and what the store learns. */
#include <stdio.h>
#include <stdlib.h>

#include "intercept_rows.h"
#include "log.h"
#include "pbutil.h"
#include "views.h"

/* ---- shared by the pod rows ---- */

static uint8_t *pod_status_request(const char *id, size_t *len) {
  Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
  req.pod_sandbox_id = (char *)id;
  req.verbose = true;
  return ch_pb_pack(&req.base, len);
}

/* ---- RunPodSandbox: the pod's config is the hook request ---- */

static void run_load(ch_intercept *ic, bool hooks) {
  (void)hooks;
  Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
  ic->skip = r->config && ch_ic_labels_say_skip(&r->config->base, "labels");
  ch_ic_subject_pod(ic, r->config ? r->config->metadata : NULL, NULL, "");
}

static uint8_t *run_build(ch_intercept *ic, size_t *len) {
  Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
  if (!r->config) return NULL;
  ch_pod_view v;
  ch_pod_view_of_config(&v, r->config, r->runtime_handler);
  return ch_pb_pack(&v.msg.base, len);
}

static int run_apply(ch_intercept *ic, const ProtobufCMessage *answer, const char *plugin,
                     ch_merge_trace *trace) {
  ic->changed = true;
  return ch_merge_pod_answer(((Runtime__V1__RunPodSandboxRequest *)ic->request)->config,
                             (const void *)answer, trace, plugin);
}

static void run_record(ch_intercept *ic, const uint8_t *response, size_t len) {
  Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
  char *id = ch_ic_response_field(response, len, &runtime__v1__run_pod_sandbox_response__descriptor,
                                  "pod_sandbox_id");
  ch_error err;
  if (id && r->config) {
    ch_pod_view v;
    ch_pod_view_of_config(&v, r->config, r->runtime_handler);
    if (ch_store_put_pod(ic->env.store, id, &v.msg, &err) != 0)
      ch_warn("intercept", "store not updated %s: %s", ic->subject, err.msg);
  }
  ic->created_id = id;
}

static void run_trace(ch_intercept *ic, ch_trace_event *ev) {
  Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
  if (r->config && r->config->metadata)
    ch_ic_trace_pod(ev, r->config->metadata->namespace_, r->config->metadata->name);
  snprintf(ev->pod_id, sizeof ev->pod_id, "%s", ic->created_id ? ic->created_id : "");
}

/* ---- StopPodSandbox, RemovePodSandbox: the stored pod is the hook request ---- */

static void by_id_load(ch_intercept *ic, bool hooks) {
  if (hooks) {
    ch_ic_ensure_pod(ic, ic->id);
    ic->skip = ic->pod && ch_ic_labels_say_skip(&ic->pod->base, "labels");
  }
  ch_ic_subject_pod(ic, NULL, ic->pod ? ic->pod->pod_meta : NULL, ic->id);
}

static uint8_t *by_id_build(ch_intercept *ic, size_t *len) {
  if (ic->pod) return ch_pb_pack(&ic->pod->base, len);
  Runtime__V1alpha1__PodSandboxHookRequest empty =
      RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
  return ch_pb_pack(&empty.base, len);
}

static void by_id_trace(ch_intercept *ic, ch_trace_event *ev) {
  snprintf(ev->pod_id, sizeof ev->pod_id, "%s", ic->id);
  if (ic->pod) ch_ic_trace_pod_meta(ev, ic->pod->pod_meta);
}

static void remove_record(ch_intercept *ic, const uint8_t *response, size_t len) {
  (void)response, (void)len;
  ch_store_remove_pod(ic->env.store, ic->id);
}

const ch_intercept_row ch_intercept_pod_rows[] = {
    {
        .method = "RunPodSandbox",
        .request = &runtime__v1__run_pod_sandbox_request__descriptor,
        .pre = CH_HOOK_PRE_RUN_POD_SANDBOX,
        .post = CH_NO_HOOK,
        .pod_level = true,
        .store_needs_request = true,
        .what = "pod",
        .load = run_load,
        .build = run_build,
        .apply = run_apply,
        .record = run_record,
        .trace = run_trace,
        .undecoded = {.created = &runtime__v1__run_pod_sandbox_response__descriptor,
                      .created_field = "pod_sandbox_id",
                      .status_method = "PodSandboxStatus",
                      .status_request = pod_status_request,
                      .put_status = ch_store_put_pod_status},
    },
    {
        .method = "StopPodSandbox",
        .request = &runtime__v1__stop_pod_sandbox_request__descriptor,
        .pre = CH_NO_HOOK,
        .post = CH_HOOK_POST_STOP_POD_SANDBOX,
        .id_field = "pod_sandbox_id",
        .pod_level = true,
        .what = "pod",
        .load = by_id_load,
        .build = by_id_build,
        .trace = by_id_trace,
    },
    {
        .method = "RemovePodSandbox",
        .request = &runtime__v1__remove_pod_sandbox_request__descriptor,
        .pre = CH_HOOK_PRE_REMOVE_POD_SANDBOX,
        .post = CH_NO_HOOK,
        .id_field = "pod_sandbox_id",
        .pod_level = true,
        .store_needs_request = true,
        .what = "pod",
        .load = by_id_load,
        .build = by_id_build,
        .record = remove_record,
        .trace = by_id_trace,
        .undecoded = {.forget = ch_store_remove_pod},
    },
};
const size_t ch_intercept_pod_row_count =
    sizeof ch_intercept_pod_rows / sizeof ch_intercept_pod_rows[0];
