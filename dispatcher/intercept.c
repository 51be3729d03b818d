/* intercept.c: the begin / record / post phases of intercept.h, driven by a
 * table with one row per intercepted method, and the path of a request that
 * does not decode (refused for a Fail plugin, else forwarded and, if it
 * created something, looked up in the runtime for the store). */
#include "intercept.h"

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "grpc_util.h"
#include "log.h"
#include "merge.h"
#include "metrics.h"
#include "pbutil.h"
#include "views.h"

#define NO_HOOK CH_HOOK_COUNT
#define STATUS_TIMEOUT_MS 2000
#define SKIP_LABEL "runtimeproxy.koordinator.sh/skip-hookserver"

/* True if a pod's label map (`field` of `msg`) says skip every hook. */
static bool labels_say_skip(const ProtobufCMessage *msg, const char *field) {
  const char *value = msg ? ch_pb_map_get(msg, field, SKIP_LABEL) : NULL;
  return value && strcmp(value, "true") == 0;
}

typedef struct kind_info {
  const char *method;
  const ProtobufCMessageDescriptor *request;
  ch_hook_point pre, post;
  bool store_needs_request; /* the store is updated from the request */
} kind_info;

static const kind_info kinds[] = {
    [CH_INTERCEPT_RUN_POD] = {"RunPodSandbox", &runtime__v1__run_pod_sandbox_request__descriptor,
                              CH_HOOK_PRE_RUN_POD_SANDBOX, NO_HOOK, true},
    [CH_INTERCEPT_STOP_POD] = {"StopPodSandbox", &runtime__v1__stop_pod_sandbox_request__descriptor,
                               NO_HOOK, CH_HOOK_POST_STOP_POD_SANDBOX, false},
    [CH_INTERCEPT_REMOVE_POD] = {"RemovePodSandbox",
                                 &runtime__v1__remove_pod_sandbox_request__descriptor,
                                 CH_HOOK_PRE_REMOVE_POD_SANDBOX, NO_HOOK, true},
    [CH_INTERCEPT_CREATE_CONTAINER] = {"CreateContainer",
                                       &runtime__v1__create_container_request__descriptor,
                                       CH_HOOK_PRE_CREATE_CONTAINER, NO_HOOK, true},
    [CH_INTERCEPT_START_CONTAINER] = {"StartContainer",
                                      &runtime__v1__start_container_request__descriptor,
                                      CH_HOOK_PRE_START_CONTAINER, CH_HOOK_POST_START_CONTAINER,
                                      false},
    [CH_INTERCEPT_UPDATE_RESOURCES] = {"UpdateContainerResources",
                                       &runtime__v1__update_container_resources_request__descriptor,
                                       CH_HOOK_PRE_UPDATE_CONTAINER_RESOURCES, NO_HOOK, true},
    [CH_INTERCEPT_STOP_CONTAINER] = {"StopContainer",
                                     &runtime__v1__stop_container_request__descriptor,
                                     CH_HOOK_PRE_STOP_CONTAINER, CH_HOOK_POST_STOP_CONTAINER,
                                     false},
    [CH_INTERCEPT_REMOVE_CONTAINER] = {"RemoveContainer",
                                       &runtime__v1__remove_container_request__descriptor, NO_HOOK,
                                       CH_HOOK_POST_REMOVE_CONTAINER, true},
};
#define KIND_COUNT (sizeof kinds / sizeof kinds[0])

struct ch_intercept {
  ch_intercept_kind kind;
  ch_intercept_env env;
  ch_registry *registry;
  gpr_timespec deadline;
  ch_intercept_cb cb;
  void *owner;
  ProtobufCMessage *request; /* decoded CRI request; NULL: forward untouched */
  const char *id;            /* the pod or container ID the request names (in request) */
  ch_pod_record *pod;        /* owned: the pod as the store knows it */
  ch_container_record *ctr;  /* owned: the container as the store knows it */
  char *ctr_pod_id;          /* owned */
  bool changed;              /* a Pre hook's answer was applied to the request */
  bool ctr_changed;          /* ... or to the stored container (PreStart) */
  bool skip;
  bool succeeded;
  char *created_id;       /* owned: the ID the runtime gave a new pod/container */
  ch_trace_hooks *traced; /* owned: hook calls for the live trace, or NULL */
  bool refused;           /* undecodable, and a Fail plugin wants it: refuse_message */
  char *refuse_message;   /* owned */
  char *undecoded_id;     /* owned: an undecodable request's field 1, read leniently */
  struct {                /* the runtime's status of what an undecodable request created */
    ch_tag tag;
    bool syncing; /* between ch_store_sync_begin (mark) and _end */
    uint64_t mark;
    grpc_call *call;
    grpc_byte_buffer *answer;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
  } lookup;
  ch_dispatch dispatch;
  char subject[192];
};

ch_intercept_kind ch_intercept_kind_of(const char *method, size_t len) {
  for (size_t k = 1; k < KIND_COUNT; k++)
    if (strlen(kinds[k].method) == len && memcmp(kinds[k].method, method, len) == 0)
      return (ch_intercept_kind)k;
  return CH_INTERCEPT_NONE;
}

static bool wanted(const ch_intercept *ic, ch_hook_point hook) {
  return hook != NO_HOOK && ch_dispatch_wanted(ic->registry, hook);
}

/* ---- decoding and context ---- */

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb) {
  size_t len = 0;
  uint8_t *bytes = ch_byte_buffer_flatten(bb, &len);
  if (!bytes) return NULL;
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, bytes);
  free(bytes);
  return msg;
}

/* Field 1 of every intercepted request but RunPodSandbox is the ID. */
static const char *request_id(const ProtobufCMessage *msg) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(msg->descriptor, 1);
  if (!f || f->type != PROTOBUF_C_TYPE_STRING) return "";
  return *(char *const *)((const char *)msg + f->offset);
}

static void ensure_container(ch_intercept *ic) {
  if (ic->ctr) return;
  ic->ctr = ch_store_container_request(ic->env.store, ic->id, &ic->ctr_pod_id);
  if (ic->ctr) return;
  ic->ctr = malloc(sizeof *ic->ctr); /* unknown to the store: the ID is all we have */
  if (!ic->ctr) return;
  runtime__v1alpha1__container_resource_hook_request__init(ic->ctr);
  ProtobufCMessage *meta = ch_pb_submessage(&ic->ctr->base, "container_meta");
  if (meta) ch_pb_set_string(&ic->ctr->container_meta->id, ic->id);
}

static void ensure_pod(ch_intercept *ic, const char *pod_id) {
  if (ic->pod || !pod_id || !*pod_id) return;
  ic->pod = ch_store_get_pod(ic->env.store, pod_id);
}

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

/* ---- the subject of log lines ---- */

/* Appends " key=value" (or "key=value" at the start) to the subject. */
static void subject_add(ch_intercept *ic, const char *key, const char *value) {
  size_t used = strlen(ic->subject);
  snprintf(ic->subject + used, sizeof ic->subject - used, "%s%s=%s", used ? " " : "", key, value);
}

/* "pod=namespace/name" from the pod's metadata, or "pod=ID" when it is not
 * known (as the live trace names pods). */
static void subject_pod(ch_intercept *ic, const Runtime__V1__PodSandboxMetadata *cri,
                        const Runtime__V1alpha1__PodSandboxMetadata *hook, const char *pod_id) {
  const char *ns = cri ? cri->namespace_ : hook ? hook->namespace_ : "";
  const char *name = cri ? cri->name : hook ? hook->name : "";
  char named[160];
  snprintf(named, sizeof named, "%s/%s", ns, name);
  subject_add(ic, "pod", *name ? named : pod_id && *pod_id ? pod_id : "?");
}

static void name_subject(ch_intercept *ic) {
  ic->subject[0] = '\0';
  switch (ic->kind) {
    case CH_INTERCEPT_RUN_POD: {
      Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
      subject_pod(ic, r->config ? r->config->metadata : NULL, NULL, "");
      return;
    }
    case CH_INTERCEPT_CREATE_CONTAINER: {
      Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
      if (ic->pod)
        subject_pod(ic, NULL, ic->pod->pod_meta, r->pod_sandbox_id);
      else
        subject_pod(ic, r->sandbox_config ? r->sandbox_config->metadata : NULL, NULL,
                    r->pod_sandbox_id);
      subject_add(ic, "container",
                  r->config && r->config->metadata ? r->config->metadata->name : "");
      return;
    }
    case CH_INTERCEPT_STOP_POD:
    case CH_INTERCEPT_REMOVE_POD:
      subject_pod(ic, NULL, ic->pod ? ic->pod->pod_meta : NULL, ic->id);
      return;
    default: /* container calls that carry only an ID */
      if (ic->ctr && ic->ctr->pod_meta) subject_pod(ic, NULL, ic->ctr->pod_meta, ic->ctr_pod_id);
      subject_add(ic, "container", ic->id);
      return;
  }
}

static void load_context(ch_intercept *ic, bool hooks) {
  switch (ic->kind) {
    case CH_INTERCEPT_RUN_POD: {
      Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
      ic->skip = r->config && labels_say_skip(&r->config->base, "labels");
      break;
    }
    case CH_INTERCEPT_CREATE_CONTAINER: {
      Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
      ensure_pod(ic, r->pod_sandbox_id);
      ic->skip = ic->pod ? labels_say_skip(&ic->pod->base, "labels")
                         : r->sandbox_config && labels_say_skip(&r->sandbox_config->base, "labels");
      carry_pod_cgroup_parent(ic, r);
      break;
    }
    case CH_INTERCEPT_STOP_POD:
    case CH_INTERCEPT_REMOVE_POD:
      if (!hooks) break;
      ensure_pod(ic, ic->id);
      ic->skip = ic->pod && labels_say_skip(&ic->pod->base, "labels");
      break;
    default: /* container calls that carry only an ID */
      if (!hooks && ic->kind != CH_INTERCEPT_UPDATE_RESOURCES) break;
      ensure_container(ic);
      ic->skip = ic->ctr && labels_say_skip(&ic->ctr->base, "pod_labels");
      break;
  }
  name_subject(ic);
}

/* ---- building hook requests and applying answers ---- */

static uint8_t *pack_update_request(ch_intercept *ic, size_t *len) {
  Runtime__V1__UpdateContainerResourcesRequest *r = (void *)ic->request;
  Runtime__V1alpha1__LinuxContainerResources *stored = ic->ctr->container_resources;
  if (r->linux)
    ic->ctr->container_resources = (Runtime__V1alpha1__LinuxContainerResources *)r->linux;
  uint8_t *bytes = ch_pb_pack(&ic->ctr->base, len);
  ic->ctr->container_resources = stored;
  return bytes;
}

static uint8_t *build_request(void *ctx, size_t *len) {
  ch_intercept *ic = ctx;
  switch (ic->kind) {
    case CH_INTERCEPT_RUN_POD: {
      Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
      if (!r->config) return NULL;
      ch_pod_view v;
      ch_pod_view_of_config(&v, r->config, r->runtime_handler);
      return ch_pb_pack(&v.msg.base, len);
    }
    case CH_INTERCEPT_CREATE_CONTAINER: {
      ch_container_view v;
      ch_container_view_of_create(&v, (void *)ic->request, ic->pod, "");
      return ch_pb_pack(&v.msg.base, len);
    }
    case CH_INTERCEPT_STOP_POD:
    case CH_INTERCEPT_REMOVE_POD: {
      if (ic->pod) return ch_pb_pack(&ic->pod->base, len);
      Runtime__V1alpha1__PodSandboxHookRequest empty =
          RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
      return ch_pb_pack(&empty.base, len);
    }
    case CH_INTERCEPT_UPDATE_RESOURCES:
      return ic->ctr ? pack_update_request(ic, len) : NULL;
    default:
      return ic->ctr ? ch_pb_pack(&ic->ctr->base, len) : NULL;
  }
}

static int apply_answer(void *ctx, const ProtobufCMessage *answer, const ch_plugin *plugin,
                        ch_merge_trace *trace) {
  ch_intercept *ic = ctx;
  const char *name = plugin->name;
  switch (ic->kind) {
    case CH_INTERCEPT_RUN_POD:
      ic->changed = true;
      return ch_merge_pod_answer(((Runtime__V1__RunPodSandboxRequest *)ic->request)->config,
                                 (const void *)answer, trace, name);
    case CH_INTERCEPT_CREATE_CONTAINER: {
      Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
      if (!r->config) return -1;
      ic->changed = true;
      return ch_merge_container_answer(r->config, r->sandbox_config, (const void *)answer, trace,
                                       name);
    }
    case CH_INTERCEPT_UPDATE_RESOURCES:
      ic->changed = true;
      return ch_merge_update_answer((void *)ic->request, (const void *)answer, trace, name);
    case CH_INTERCEPT_START_CONTAINER:
      ic->ctr_changed = true;
      return ch_merge_record_answer(ic->ctr, (const void *)answer, trace, name);
    default: /* PreStopContainer, PreRemovePodSandbox: nothing in the call to change */
      return 0;
  }
}

static void chain_done(void *ctx) {
  ch_intercept *ic = ctx;
  ic->cb(ic->owner);
}

static void hook_traced(void *ctx, const ch_trace_hook *call) {
  ch_intercept *ic = ctx;
  ch_trace_hooks_add(&ic->traced, call);
}

static const ch_dispatch_ops dispatch_ops = {build_request, apply_answer, chain_done, hook_traced};

/* The plugins a skip label kept from being called, for the live trace. */
static void trace_skipped(ch_intercept *ic, ch_hook_point hook) {
  if (!ch_trace_active()) return;
  for (size_t i = 0; i < ic->registry->hook_count[hook]; i++) {
    ch_trace_hook h = {.hook = ch_hook_name(hook), .result = CH_TRACE_HOOK_SKIPPED};
    snprintf(h.plugin, sizeof h.plugin, "%s", ic->registry->by_hook[hook][i]->name);
    ch_trace_hooks_add(&ic->traced, &h);
  }
}

static void run_hooks(ch_intercept *ic, ch_hook_point hook, ch_intercept_cb cb) {
  ic->cb = cb;
  if (hook == NO_HOOK || ic->skip || !ic->request || !wanted(ic, hook)) {
    if (hook != NO_HOOK && ic->skip && wanted(ic, hook)) {
      ch_debug("intercept", "hooks skipped by label hook=%s %s", ch_hook_name(hook), ic->subject);
      trace_skipped(ic, hook);
    }
    cb(ic->owner);
    return;
  }
  ch_dispatch_start(&ic->dispatch, ic->env.cq, ic->registry, hook, ic->deadline, ic->subject,
                    &dispatch_ops, ic);
}

/* ---- a request that does not decode ---- */

static char *response_id(grpc_byte_buffer *response, const ProtobufCMessageDescriptor *desc);

/* Reads a varint as the runtime's Go decoders do (up to 10 bytes). */
static bool lenient_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* Reads one field's key and skips or reads its value (str and len for
 * wire type 2); groups are skipped whole, up to a depth. Field numbers keep their
 * low 32 bits, as Go's do. false on bytes the runtime would refuse too. */
static bool lenient_field(const uint8_t **p, const uint8_t *end, int depth, int32_t *field,
                          unsigned *wire, const uint8_t **str, uint64_t *len) {
  uint64_t key, v;
  if (depth > 16 || !lenient_varint(p, end, &key)) return false;
  *field = (int32_t)(uint32_t)(key >> 3);
  *wire = key & 7;
  switch (*wire) {
    case 0:
      return lenient_varint(p, end, &v);
    case 1:
    case 5: {
      size_t n = *wire == 1 ? 8 : 4;
      if ((size_t)(end - *p) < n) return false;
      *p += n;
      return true;
    }
    case 2:
      if (!lenient_varint(p, end, len) || *len > (uint64_t)(end - *p)) return false;
      *str = *p;
      *p += *len;
      return true;
    case 3: { /* a group: fields up to its end */
      int32_t f;
      unsigned w;
      const uint8_t *s;
      uint64_t l;
      do {
        if (!lenient_field(p, end, depth + 1, &f, &w, &s, &l)) return false;
      } while (w != 4);
      return true;
    }
    case 4:
      return depth > 0;
    default:
      return false;
  }
}

/* Field 1 (the ID) of an intercepted request protobuf-c did not decode,
 * read as the runtime reads it (the last one wins); malloc'd, or NULL. */
static char *lenient_id(grpc_byte_buffer *request) {
  size_t n = 0;
  uint8_t *bytes = request ? ch_byte_buffer_flatten(request, &n) : NULL;
  const uint8_t *p = bytes, *end = bytes + n, *id = NULL, *str;
  uint64_t id_len = 0, len;
  int32_t field;
  unsigned wire;
  while (bytes && p < end && lenient_field(&p, end, 0, &field, &wire, &str, &len))
    if (field == 1 && wire == 2) id = str, id_len = len;
  char *out =
      p == end && id && !memchr(id, '\0', id_len) ? strndup((const char *)id, id_len) : NULL;
  free(bytes);
  return out;
}

/* After an undecodable Remove the runtime accepted: the store forgets. */
static void record_undecodable_remove(ch_intercept *ic) {
  const char *id = ic->undecoded_id;
  if (!id) return;
  if (ic->kind == CH_INTERCEPT_REMOVE_POD)
    ch_store_remove_pod(ic->env.store, id);
  else
    ch_store_remove_container(ic->env.store, id);
  ch_info("intercept", "store forgot what an undecodable %s removed id=%s", kinds[ic->kind].method,
          id);
}

/* The Fail-policy plugins registered for `hook`, "a, b", into buf; 0 if none. */
static size_t fail_plugins(const ch_registry *r, ch_hook_point hook, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (size_t i = 0; hook != NO_HOOK && i < r->hook_count[hook]; i++) {
    const ch_plugin *p = r->by_hook[hook][i];
    if (!p->fail_closed) continue;
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", n++ ? ", " : "", p->name);
  }
  return n;
}

static void undecodable(ch_intercept *ic, grpc_byte_buffer *request) {
  const kind_info *k = &kinds[ic->kind];
  ch_metrics_undecodable(k->method);
  if (ic->kind != CH_INTERCEPT_RUN_POD && ic->kind != CH_INTERCEPT_CREATE_CONTAINER)
    ic->undecoded_id = lenient_id(request);
  char names[512];
  if (fail_plugins(ic->registry, k->pre, names, sizeof names) == 0) {
    ch_warn("intercept",
            "request does not decode; forwarded untouched, hooks skipped (no Fail-policy plugin "
            "wants it) method=%s",
            k->method);
    return;
  }
  char message[1024];
  snprintf(message, sizeof message,
           "crihookd: the %s request does not decode as %s (an encoding crihookd's protobuf "
           "decoder refuses, e.g. a group or an over-long varint), so the Fail-policy plugin(s) "
           "registered for %s (%s) cannot see it; refused, nothing was sent to the runtime",
           k->method, k->request->name, ch_hook_name(k->pre), names);
  ic->refuse_message = strdup(message);
  ic->refused = true;
  ch_warn("intercept",
          "request does not decode; refused for Fail-policy plugins method=%s plugins=\"%s\"",
          k->method, names);
}

/* After an undecodable RunPodSandbox or CreateContainer succeeded: the
 * store will learn the new pod or container from the runtime's status. */
static void plan_lookup(ch_intercept *ic, grpc_byte_buffer *response) {
  if (!ic->env.backend) return;
  const ProtobufCMessageDescriptor *type =
      ic->kind == CH_INTERCEPT_RUN_POD ? &runtime__v1__run_pod_sandbox_response__descriptor
                                       : &runtime__v1__create_container_response__descriptor;
  ic->created_id = response_id(response, type);
  if (!ic->created_id || !*ic->created_id) return;
  ic->lookup.mark = ch_store_sync_begin(ic->env.store);
  ic->lookup.syncing = true;
}

static void end_lookup(ch_intercept *ic) {
  if (ic->lookup.call) {
    grpc_call_unref(ic->lookup.call);
    grpc_byte_buffer_destroy(ic->lookup.answer);
    grpc_metadata_array_destroy(&ic->lookup.initial_md);
    grpc_metadata_array_destroy(&ic->lookup.trailing_md);
    grpc_slice_unref(ic->lookup.details);
    ic->lookup.call = NULL;
    ic->lookup.answer = NULL;
  }
  if (ic->lookup.syncing) ch_store_sync_end(ic->env.store);
  ic->lookup.syncing = false;
}

static void record_looked_up(ch_intercept *ic) {
  const char *what = ic->kind == CH_INTERCEPT_RUN_POD ? "pod" : "container";
  size_t len = 0;
  uint8_t *bytes = ic->lookup.answer ? ch_byte_buffer_flatten(ic->lookup.answer, &len) : NULL;
  ch_error err;
  int rc = -1;
  if (ic->lookup.status != GRPC_STATUS_OK) {
    char *details = grpc_slice_to_c_string(ic->lookup.details);
    ch_fail(&err, "%s: %s", ch_status_name(ic->lookup.status), details);
    gpr_free(details);
  } else if (ic->kind == CH_INTERCEPT_RUN_POD) {
    rc = ch_store_put_pod_status(ic->env.store, ic->created_id, bytes ? bytes : (uint8_t *)"", len,
                                 ic->lookup.mark, &err);
  } else {
    rc = ch_store_put_container_status(ic->env.store, ic->created_id, bytes ? bytes : (uint8_t *)"",
                                       len, ic->lookup.mark, &err);
  }
  free(bytes);
  if (rc == 0)
    ch_info("intercept",
            "store learnt a %s from the runtime's status (its request did not decode) id=%s", what,
            ic->created_id);
  else
    ch_warn("intercept", "store lacks a %s whose request did not decode id=%s: %s", what,
            ic->created_id, err.msg);
}

static void on_lookup(ch_tag *t, bool ok) {
  ch_intercept *ic = ch_container_of(t, ch_intercept, lookup.tag);
  (void)ok; /* a client batch with RECV_STATUS always reports a status */
  record_looked_up(ic);
  end_lookup(ic);
  ic->cb(ic->owner);
}

/* Starts PodSandboxStatus / ContainerStatus (verbose) for created_id;
 * false if it could not start (then nothing is pending). */
static bool start_lookup(ch_intercept *ic) {
  bool pod = ic->kind == CH_INTERCEPT_RUN_POD;
  Runtime__V1__PodSandboxStatusRequest preq = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
  Runtime__V1__ContainerStatusRequest creq = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  preq.pod_sandbox_id = creq.container_id = ic->created_id;
  preq.verbose = creq.verbose = true;
  size_t len;
  uint8_t *bytes = ch_pb_pack(pod ? &preq.base : &creq.base, &len);
  if (!bytes) return false;
  grpc_slice slice = grpc_slice_new(bytes, len, free);
  grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  grpc_metadata_array_init(&ic->lookup.initial_md);
  grpc_metadata_array_init(&ic->lookup.trailing_md);
  ic->lookup.details = grpc_empty_slice();
  ic->lookup.tag.fn = on_lookup;
  ic->lookup.call = grpc_channel_create_call(
      ic->env.backend, NULL, GRPC_PROPAGATE_DEFAULTS, ic->env.cq,
      grpc_slice_from_static_string(pod ? "/runtime.v1.RuntimeService/PodSandboxStatus"
                                        : "/runtime.v1.RuntimeService/ContainerStatus"),
      NULL, ch_deadline_ms(STATUS_TIMEOUT_MS), NULL);
  grpc_op ops[6];
  ch_unary_client_ops(ops, NULL, 0, request, &ic->lookup.initial_md, &ic->lookup.answer,
                      &ic->lookup.status, &ic->lookup.details, &ic->lookup.trailing_md);
  bool started =
      grpc_call_start_batch(ic->lookup.call, ops, 6, &ic->lookup.tag, NULL) == GRPC_CALL_OK;
  grpc_byte_buffer_destroy(request);
  return started;
}

/* ---- phases ---- */

int ch_intercept_begin(ch_intercept_kind kind, const ch_intercept_env *env,
                       grpc_byte_buffer *request, gpr_timespec deadline, ch_intercept_cb resume,
                       void *owner, ch_intercept **out) {
  ch_intercept *ic = calloc(1, sizeof *ic);
  *out = ic;
  if (!ic) return -1;
  const kind_info *k = &kinds[kind];
  ic->kind = kind;
  ic->env = *env;
  ic->deadline = deadline;
  ic->owner = owner;
  ic->registry = ch_registry_slot_acquire(env->registry);
  ic->id = "";
  bool hooks = wanted(ic, k->pre) || wanted(ic, k->post);
  bool traced = ch_trace_active();
  if (request && (hooks || k->store_needs_request || traced)) {
    ic->request = decode(k->request, request);
    if (!ic->request) undecodable(ic, request);
  }
  if (ic->request) {
    if (kind != CH_INTERCEPT_RUN_POD && kind != CH_INTERCEPT_CREATE_CONTAINER)
      ic->id = request_id(ic->request);
    load_context(ic, hooks || traced);
  }
  run_hooks(ic, k->pre, resume);
  return 0;
}

bool ch_intercept_rejected(const ch_intercept *ic, grpc_status_code *code, const char **message) {
  if (ic->refused) {
    *code = GRPC_STATUS_INVALID_ARGUMENT;
    *message = ic->refuse_message ? ic->refuse_message
                                  : "crihookd: the request does not decode and a Fail-policy "
                                    "plugin wants to see it; refused";
    return true;
  }
  if (!ic->dispatch.rejected) return false;
  *code = ic->dispatch.reject_code;
  *message = ic->dispatch.reject_message;
  return true;
}

grpc_byte_buffer *ch_intercept_request(ch_intercept *ic) {
  if (!ic->changed || !ic->request) return NULL;
  size_t len;
  uint8_t *bytes = ch_pb_pack(ic->request, &len);
  if (!bytes) return NULL;
  grpc_slice slice = grpc_slice_new(bytes, len, free);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

static char *response_id(grpc_byte_buffer *response, const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *msg = response ? decode(desc, response) : NULL;
  if (!msg) return NULL;
  char *id = strdup(request_id(msg)); /* field 1 of both responses is the new ID */
  protobuf_c_message_free_unpacked(msg, NULL);
  return id;
}

static void record_created(ch_intercept *ic, grpc_byte_buffer *response) {
  ch_error err;
  int rc = 0;
  if (ic->kind == CH_INTERCEPT_RUN_POD) {
    Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
    char *id = response_id(response, &runtime__v1__run_pod_sandbox_response__descriptor);
    if (id && r->config) {
      ch_pod_view v;
      ch_pod_view_of_config(&v, r->config, r->runtime_handler);
      rc = ch_store_put_pod(ic->env.store, id, &v.msg, &err);
    }
    ic->created_id = id;
  } else {
    Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
    char *id = response_id(response, &runtime__v1__create_container_response__descriptor);
    if (id) {
      ch_container_view v;
      ch_container_view_of_create(&v, r, ic->pod, id);
      rc = ch_store_put_container(ic->env.store, id, r->pod_sandbox_id, &v.msg, &err);
    }
    ic->created_id = id;
  }
  if (rc != 0) ch_warn("intercept", "store not updated %s: %s", ic->subject, err.msg);
}

static void record_update(ch_intercept *ic) {
  Runtime__V1__UpdateContainerResourcesRequest *r = (void *)ic->request;
  if (!ic->ctr || !ic->ctr_pod_id) return; /* unknown to the store */
  if (r->linux) {
    ProtobufCMessage *res = ch_pb_submessage(&ic->ctr->base, "container_resources");
    if (res) ch_merge_fields(res, &r->linux->base, "resources", NULL, "");
  }
  ch_pb_map_merge(&ic->ctr->base, "container_annotations", &r->base, "annotations");
  ic->ctr_changed = true;
}

void ch_intercept_record(ch_intercept *ic, grpc_status_code status, grpc_byte_buffer *response) {
  ic->succeeded = status == GRPC_STATUS_OK;
  if (ic->succeeded && !ic->request &&
      (ic->kind == CH_INTERCEPT_RUN_POD || ic->kind == CH_INTERCEPT_CREATE_CONTAINER))
    plan_lookup(ic, response);
  if (ic->succeeded && !ic->request &&
      (ic->kind == CH_INTERCEPT_REMOVE_POD || ic->kind == CH_INTERCEPT_REMOVE_CONTAINER))
    record_undecodable_remove(ic);
  if (!ic->succeeded || !ic->request) return;
  ch_error err;
  switch (ic->kind) {
    case CH_INTERCEPT_RUN_POD:
    case CH_INTERCEPT_CREATE_CONTAINER:
      record_created(ic, response);
      break;
    case CH_INTERCEPT_UPDATE_RESOURCES:
      record_update(ic);
      break;
    case CH_INTERCEPT_REMOVE_POD:
      ch_store_remove_pod(ic->env.store, ic->id);
      break;
    case CH_INTERCEPT_REMOVE_CONTAINER:
      ch_store_remove_container(ic->env.store, ic->id);
      break;
    default:
      break;
  }
  if (!ic->ctr_changed || !ic->ctr_pod_id) return;
  /* only if still there: a Remove that finished meanwhile stays done */
  int rc = ch_store_update_container(ic->env.store, ic->id, ic->ctr, &err);
  if (rc < 0) ch_warn("intercept", "store not updated %s: %s", ic->subject, err.msg);
  if (rc > 0) ch_debug("intercept", "store not updated: removed meanwhile %s", ic->subject);
}

void ch_intercept_post(ch_intercept *ic, ch_intercept_cb finished) {
  if (ic->lookup.syncing) {
    ic->cb = finished;
    if (start_lookup(ic)) return; /* on_lookup calls finished */
    ch_warn("intercept",
            "store lacks what an undecodable request created id=%s: cannot ask the "
            "runtime",
            ic->created_id);
    end_lookup(ic);
  }
  ch_hook_point post = kinds[ic->kind].post;
  run_hooks(ic, ic->succeeded ? post : NO_HOOK, finished);
}

/* ---- the live trace's subject ---- */

static void name_pod(ch_trace_event *ev, const char *namespace_, const char *name) {
  if (name && *name) snprintf(ev->pod, sizeof ev->pod, "%s/%s", namespace_ ? namespace_ : "", name);
}

static void name_pod_meta(ch_trace_event *ev, const Runtime__V1alpha1__PodSandboxMetadata *m) {
  if (m) name_pod(ev, m->namespace_, m->name);
}

static void trace_created(ch_intercept *ic, ch_trace_event *ev) {
  const char *created = ic->created_id ? ic->created_id : "";
  if (ic->kind == CH_INTERCEPT_RUN_POD) {
    Runtime__V1__RunPodSandboxRequest *r = (void *)ic->request;
    if (r->config && r->config->metadata)
      name_pod(ev, r->config->metadata->namespace_, r->config->metadata->name);
    snprintf(ev->pod_id, sizeof ev->pod_id, "%s", created);
    return;
  }
  Runtime__V1__CreateContainerRequest *r = (void *)ic->request;
  if (ic->pod)
    name_pod_meta(ev, ic->pod->pod_meta);
  else if (r->sandbox_config && r->sandbox_config->metadata)
    name_pod(ev, r->sandbox_config->metadata->namespace_, r->sandbox_config->metadata->name);
  snprintf(ev->pod_id, sizeof ev->pod_id, "%s", r->pod_sandbox_id);
  if (r->config && r->config->metadata)
    snprintf(ev->container, sizeof ev->container, "%s", r->config->metadata->name);
  snprintf(ev->container_id, sizeof ev->container_id, "%s", created);
}

static void trace_subject(ch_intercept *ic, ch_trace_event *ev) {
  switch (ic->kind) {
    case CH_INTERCEPT_RUN_POD:
    case CH_INTERCEPT_CREATE_CONTAINER:
      trace_created(ic, ev);
      return;
    case CH_INTERCEPT_STOP_POD:
    case CH_INTERCEPT_REMOVE_POD:
      snprintf(ev->pod_id, sizeof ev->pod_id, "%s", ic->id);
      if (ic->pod) name_pod_meta(ev, ic->pod->pod_meta);
      return;
    default:
      snprintf(ev->container_id, sizeof ev->container_id, "%s", ic->id);
      if (ic->ctr_pod_id) snprintf(ev->pod_id, sizeof ev->pod_id, "%s", ic->ctr_pod_id);
      if (!ic->ctr) return;
      name_pod_meta(ev, ic->ctr->pod_meta);
      if (ic->ctr->container_meta)
        snprintf(ev->container, sizeof ev->container, "%s", ic->ctr->container_meta->name);
      return;
  }
}

void ch_intercept_trace(ch_intercept *ic, ch_trace_event *ev) {
  if (ic->request) trace_subject(ic, ev);
  const char *undecoded = ic->created_id ? ic->created_id : ic->undecoded_id;
  bool pod_level = ic->kind == CH_INTERCEPT_RUN_POD || ic->kind == CH_INTERCEPT_STOP_POD ||
                   ic->kind == CH_INTERCEPT_REMOVE_POD;
  if (!ic->request && undecoded) /* undecodable: the ID as the runtime read it */
    snprintf(pod_level ? ev->pod_id : ev->container_id, sizeof ev->pod_id, "%s", undecoded);
  ev->hooks = ic->traced;
  ic->traced = NULL;
}

void ch_intercept_free(ch_intercept *ic) {
  if (!ic) return;
  end_lookup(ic);
  free(ic->refuse_message);
  free(ic->undecoded_id);
  free(ic->created_id);
  free(ic->traced);
  if (ic->request) protobuf_c_message_free_unpacked(ic->request, NULL);
  if (ic->pod) runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(ic->pod, NULL);
  if (ic->ctr) runtime__v1alpha1__container_resource_hook_request__free_unpacked(ic->ctr, NULL);
  free(ic->ctr_pod_id);
  ch_registry_unref(ic->registry);
  free(ic);
}
