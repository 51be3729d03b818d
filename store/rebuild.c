/* rebuild.c: filling the store from what the backend already runs
 * (ch_store_rebuild in store.h), so that hook requests after a crihookd
 * restart carry the same data as before it.
 *
 * Steps, each a blocking unary CRI call on the backend channel:
 *   ListPodSandbox, then PodSandboxStatus(verbose) for each pod;
 *   ListContainers, then ContainerStatus(verbose) for each container.
 * A pod or container removed between the List and its Status (NOT_FOUND) is
 * skipped. A Status that fails for one item alone (e.g. INTERNAL for a
 * broken sandbox) keeps that item with what the List said of it (metadata,
 * labels, annotations), so one bad pod cannot keep the store from being
 * rebuilt. A failure that says the backend itself is in trouble
 * (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED), and any
 * failed List, ends the rebuild with an error.
 *
 * Where the data comes from:
 * - containerd answers a verbose status with info["info"], a JSON document
 *   whose "config" member is the PodSandboxConfig / ContainerConfig it was
 *   given (Go's encoding/json, snake_case keys as in the .proto), i.e. the
 *   request as the Pre hooks left it. It is decoded leniently (keys this
 *   build's cri.proto lacks are skipped) and supplies everything: metadata,
 *   labels, annotations, cgroup parent, overhead, resources, image, envs in
 *   order.
 * - A container's resources can have changed since (UpdateContainerResources):
 *   containerd keeps the current ones in info["info"]'s "runtimeSpec"
 *   (linux.resources, OCI names), which are laid over the config's before it
 *   is decoded: cpu shares, quota, period, cpuset cpus and mems, memory limit,
 *   swap (only where it is not simply the memory limit, which containerd
 *   derives, unless the config had one), hugepage limits (where the config
 *   had some) and unified. What the runtime does not keep cannot come back:
 *   the annotations of an UpdateContainerResources (containerd 1.6 drops
 *   them), what a PreStartContainer answer changed (only crihookd's store
 *   had it), and an update's oom_score_adj.
 * - Without it (CRI-O and cri-dockerd put other things in info), the status
 *   alone: metadata, labels, annotations, runtime handler, and a container's
 *   image and resources as the runtime reports them; no cgroup parent, pod
 *   resources or envs.
 * Either way the records are built with the views of views.h, as on the
 * live path, and everything goes into a fresh store that replaces the live
 * store's content in one swap at the end (store_internal.h), or, for a
 * fill or a re-sync while calls are served, is installed into it between
 * ch_store_sync_begin and _end (store.h). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "grpc_util.h"
#include "pbjson.h"
#include "store.h"
#include "store_internal.h"
#include "views.h"

typedef struct backend {
  grpc_channel *channel;
  int timeout_ms;
} backend;

/* Both status responses' info map entries are {base, key, value}. */
typedef Runtime__V1__PodSandboxStatusResponse__InfoEntry info_entry;

enum { MUST_EXIST, MAY_BE_GONE };

/* ---- calls --------------------------------------------------------------- */

static uint8_t *pack(const ProtobufCMessage *msg, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  uint8_t *bytes = malloc(*len ? *len : 1);
  if (bytes) protobuf_c_message_pack(msg, bytes);
  return bytes;
}

static bool backend_in_trouble(grpc_status_code code) {
  return code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED ||
         code == GRPC_STATUS_CANCELLED || code == GRPC_STATUS_RESOURCE_EXHAUSTED;
}

/* Decodes an OK answer, or fails with the call's status. With MAY_BE_GONE
 * (a per-item Status), NOT_FOUND is not a failure (*out stays NULL) and an
 * error about the item alone gives an empty answer (the List's data is
 * used). */
static int answer_of(const ch_unary_result *res, const ProtobufCMessageDescriptor *type,
                     int missing, ProtobufCMessage **out, ch_error *err) {
  bool per_item = missing == MAY_BE_GONE;
  if (res->status == GRPC_STATUS_NOT_FOUND && per_item) return 0;
  bool empty = res->status != GRPC_STATUS_OK && per_item && !backend_in_trouble(res->status);
  if (res->status != GRPC_STATUS_OK && !empty)
    return ch_fail(err, "%s: %s", ch_status_name(res->status), res->details);
  static const uint8_t nothing[1];
  *out = protobuf_c_message_unpack(type, NULL, empty ? 0 : res->response_len,
                                   res->response && !empty ? res->response : nothing);
  return *out ? 0 : ch_fail(err, "the answer does not decode as %s", type->short_name);
}

/* Calls RuntimeService/`method`; *out is the answer (NULL if gone). */
static int call(const backend *b, const char *method, const ProtobufCMessage *request,
                const ProtobufCMessageDescriptor *type, int missing, ProtobufCMessage **out,
                ch_error *err) {
  char path[128];
  snprintf(path, sizeof path, "/runtime.v1.RuntimeService/%s", method);
  *out = NULL;
  size_t len;
  uint8_t *bytes = pack(request, &len);
  if (!bytes) return ch_fail(err, "out of memory");
  ch_unary_result res;
  int rc = ch_unary_call(b->channel, path, bytes, len, b->timeout_ms, NULL, 0, &res, err);
  free(bytes);
  if (rc != 0) return -1;
  rc = answer_of(&res, type, missing, out, err);
  ch_unary_result_clear(&res);
  return rc;
}

/* ---- the verbose info ---------------------------------------------------- */

/* The JSON document info["info"], or NULL. */
static json_t *info_doc(size_t n, info_entry *const *info) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(info[i]->key, "info") == 0) return json_loads(info[i]->value, 0, NULL);
  return NULL;
}

/* Sets resources[key] to `value` (taken) unless it is null, zero or empty;
 * creates *resources in `linux_` if needed. */
static void overlay(json_t *linux_, json_t **resources, const char *key, json_t *value) {
  bool empty = !value || json_is_null(value) ||
               (json_is_integer(value) && !json_integer_value(value)) ||
               (json_is_string(value) && !*json_string_value(value)) ||
               (json_is_object(value) && !json_object_size(value)) ||
               (json_is_array(value) && !json_array_size(value));
  if (empty) {
    json_decref(value);
    return;
  }
  if (!*resources) {
    *resources = json_object();
    json_object_set_new(linux_, "resources", *resources);
  }
  json_object_set_new(*resources, key, value);
}

/* OCI hugepageLimits [{pageSize, limit}] as CRI's [{page_size, limit}]. */
static json_t *hugepages_of_spec(const json_t *spec) {
  json_t *out = json_array(), *item;
  size_t i;
  json_array_foreach(spec, i, item) {
    json_array_append_new(
        out, json_pack("{s:O?, s:O?}", "page_size", json_object_get(item, "pageSize"), "limit",
                       json_object_get(item, "limit")));
  }
  return out;
}

/* Lays the runtime spec's current resources (OCI names) over the config's
 * linux.resources (CRI names), as the file comment says. */
static void overlay_runtime_spec(json_t *config, const json_t *doc) {
  json_t *spec =
      json_object_get(json_object_get(json_object_get(doc, "runtimeSpec"), "linux"), "resources");
  if (!json_is_object(spec)) return;
  json_t *linux_ = json_object_get(config, "linux");
  if (!json_is_object(linux_)) {
    linux_ = json_object();
    json_object_set_new(config, "linux", linux_);
  }
  json_t *res = json_object_get(linux_, "resources");
  if (!json_is_object(res)) res = NULL;
  json_t *cpu = json_object_get(spec, "cpu"), *mem = json_object_get(spec, "memory");
  overlay(linux_, &res, "cpu_shares", json_copy(json_object_get(cpu, "shares")));
  overlay(linux_, &res, "cpu_quota", json_copy(json_object_get(cpu, "quota")));
  overlay(linux_, &res, "cpu_period", json_copy(json_object_get(cpu, "period")));
  overlay(linux_, &res, "cpuset_cpus", json_copy(json_object_get(cpu, "cpus")));
  overlay(linux_, &res, "cpuset_mems", json_copy(json_object_get(cpu, "mems")));
  json_t *limit = json_object_get(mem, "limit"), *swap = json_object_get(mem, "swap");
  overlay(linux_, &res, "memory_limit_in_bytes", json_copy(limit));
  if (!json_equal(swap, limit) || json_object_get(res, "memory_swap_limit_in_bytes"))
    overlay(linux_, &res, "memory_swap_limit_in_bytes", json_copy(swap));
  if (json_array_size(json_object_get(res, "hugepage_limits")))
    overlay(linux_, &res, "hugepage_limits",
            hugepages_of_spec(json_object_get(spec, "hugepageLimits")));
  overlay(linux_, &res, "unified", json_deep_copy(json_object_get(spec, "unified")));
}

/* The "config" member of the JSON document info["info"], decoded as `type`
 * (a container's with its current resources); NULL if there is none or it
 * does not decode (then the status is used). */
static ProtobufCMessage *config_of_info(size_t n, info_entry *const *info,
                                        const ProtobufCMessageDescriptor *type) {
  json_t *doc = info_doc(n, info);
  json_t *config = json_object_get(doc, "config");
  ProtobufCMessage *out = NULL;
  ch_error ignored;
  if (json_is_object(config) && type == &runtime__v1__container_config__descriptor)
    overlay_runtime_spec(config, doc);
  if (json_is_object(config)) ch_pb_from_json_lenient(type, config, &out, &ignored);
  json_decref(doc);
  return out;
}

/* ---- pods ---------------------------------------------------------------- */

/* A PodSandboxConfig made of the status's fields (the list item's if the
 * answer has no status); it shares their memory. */
static Runtime__V1__PodSandboxConfig pod_config_of_status(const Runtime__V1__PodSandboxStatus *st,
                                                          const Runtime__V1__PodSandbox *item) {
  Runtime__V1__PodSandboxConfig c = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
  if (st) {
    c.metadata = st->metadata;
    c.n_labels = st->n_labels;
    c.labels = (Runtime__V1__PodSandboxConfig__LabelsEntry **)st->labels;
    c.n_annotations = st->n_annotations;
    c.annotations = (Runtime__V1__PodSandboxConfig__AnnotationsEntry **)st->annotations;
  } else {
    c.metadata = item->metadata;
    c.n_labels = item->n_labels;
    c.labels = (Runtime__V1__PodSandboxConfig__LabelsEntry **)item->labels;
    c.n_annotations = item->n_annotations;
    c.annotations = (Runtime__V1__PodSandboxConfig__AnnotationsEntry **)item->annotations;
  }
  return c;
}

static const char *runtime_handler_of(const Runtime__V1__PodSandboxStatus *st,
                                      const Runtime__V1__PodSandbox *item) {
  if (st && st->runtime_handler[0]) return st->runtime_handler;
  return item->runtime_handler;
}

static int put_pod(ch_store *fresh, const Runtime__V1__PodSandbox *item,
                   const Runtime__V1__PodSandboxStatusResponse *answer, ch_error *err) {
  ProtobufCMessage *decoded =
      config_of_info(answer->n_info, answer->info, &runtime__v1__pod_sandbox_config__descriptor);
  Runtime__V1__PodSandboxConfig fallback = pod_config_of_status(answer->status, item);
  const Runtime__V1__PodSandboxConfig *config =
      decoded ? (const Runtime__V1__PodSandboxConfig *)decoded : &fallback;
  ch_pod_view v;
  ch_pod_view_of_config(&v, config, runtime_handler_of(answer->status, item));
  int rc = ch_store_put_pod(fresh, item->id, &v.msg, err);
  protobuf_c_message_free_unpacked(decoded, NULL);
  return rc;
}

static int add_pod(const backend *b, ch_store *fresh, const Runtime__V1__PodSandbox *item,
                   ch_error *err) {
  Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
  req.pod_sandbox_id = item->id;
  req.verbose = true;
  Runtime__V1__PodSandboxStatusResponse *answer;
  if (call(b, "PodSandboxStatus", &req.base, &runtime__v1__pod_sandbox_status_response__descriptor,
           MAY_BE_GONE, (ProtobufCMessage **)&answer, err) != 0)
    return ch_wrap(err, "PodSandboxStatus %s", item->id);
  if (!answer) return 0; /* removed since the list */
  int rc = put_pod(fresh, item, answer, err);
  runtime__v1__pod_sandbox_status_response__free_unpacked(answer, NULL);
  return rc;
}

static int add_pods(const backend *b, ch_store *fresh, ch_error *err) {
  Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
  Runtime__V1__ListPodSandboxResponse *list;
  if (call(b, "ListPodSandbox", &req.base, &runtime__v1__list_pod_sandbox_response__descriptor,
           MUST_EXIST, (ProtobufCMessage **)&list, err) != 0)
    return ch_wrap(err, "ListPodSandbox");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < list->n_items; i++) rc = add_pod(b, fresh, list->items[i], err);
  runtime__v1__list_pod_sandbox_response__free_unpacked(list, NULL);
  return rc;
}

/* ---- containers ---------------------------------------------------------- */

/* A ContainerConfig made of the status's fields (the list item's if the
 * answer has no status), its resources in `linux_cfg`; it shares their
 * memory. */
static Runtime__V1__ContainerConfig ctr_config_of_status(
    const Runtime__V1__ContainerStatus *st, const Runtime__V1__Container *item,
    Runtime__V1__LinuxContainerConfig *linux_cfg) {
  Runtime__V1__ContainerConfig c = RUNTIME__V1__CONTAINER_CONFIG__INIT;
  runtime__v1__linux_container_config__init(linux_cfg);
  if (!st) {
    c.metadata = item->metadata;
    c.n_annotations = item->n_annotations;
    c.annotations = (Runtime__V1__ContainerConfig__AnnotationsEntry **)item->annotations;
    return c;
  }
  c.metadata = st->metadata;
  c.image = st->image;
  c.n_annotations = st->n_annotations;
  c.annotations = (Runtime__V1__ContainerConfig__AnnotationsEntry **)st->annotations;
  if (st->resources && st->resources->linux) {
    linux_cfg->resources = st->resources->linux;
    c.linux = linux_cfg;
  }
  return c;
}

static int put_container(ch_store *fresh, const Runtime__V1__Container *item,
                         const Runtime__V1__ContainerStatusResponse *answer, ch_error *err) {
  ProtobufCMessage *decoded = config_of_info(answer->n_info, (info_entry *const *)answer->info,
                                             &runtime__v1__container_config__descriptor);
  Runtime__V1__LinuxContainerConfig linux_cfg;
  Runtime__V1__ContainerConfig fallback = ctr_config_of_status(answer->status, item, &linux_cfg);
  Runtime__V1__CreateContainerRequest create = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
  create.pod_sandbox_id = item->pod_sandbox_id;
  create.config = decoded ? (Runtime__V1__ContainerConfig *)decoded : &fallback;
  ch_container_view v;
  ch_container_view_of_create(&v, &create, NULL, item->id);
  if (answer->status) ch_container_view_name_image(&v, answer->status->image);
  int rc = ch_store_put_container(fresh, item->id, item->pod_sandbox_id, &v.msg, err);
  protobuf_c_message_free_unpacked(decoded, NULL);
  return rc;
}

static int add_container(const backend *b, ch_store *fresh, const Runtime__V1__Container *item,
                         ch_error *err) {
  Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  req.container_id = item->id;
  req.verbose = true;
  Runtime__V1__ContainerStatusResponse *answer;
  if (call(b, "ContainerStatus", &req.base, &runtime__v1__container_status_response__descriptor,
           MAY_BE_GONE, (ProtobufCMessage **)&answer, err) != 0)
    return ch_wrap(err, "ContainerStatus %s", item->id);
  if (!answer) return 0; /* removed since the list */
  int rc = put_container(fresh, item, answer, err);
  runtime__v1__container_status_response__free_unpacked(answer, NULL);
  return rc;
}

static int add_containers(const backend *b, ch_store *fresh, ch_error *err) {
  Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
  Runtime__V1__ListContainersResponse *list;
  if (call(b, "ListContainers", &req.base, &runtime__v1__list_containers_response__descriptor,
           MUST_EXIST, (ProtobufCMessage **)&list, err) != 0)
    return ch_wrap(err, "ListContainers");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < list->n_containers; i++)
    rc = add_container(b, fresh, list->containers[i], err);
  runtime__v1__list_containers_response__free_unpacked(list, NULL);
  return rc;
}

/* ---- the whole rebuild --------------------------------------------------- */

typedef enum install_mode { REPLACE, FILL, RESYNC } install_mode;

/* Reads the backend into a fresh store and installs it as `mode` says. */
static int rebuild_with(ch_store *store, grpc_channel *channel, int timeout_ms, install_mode mode,
                        ch_error *err) {
  backend b = {channel, timeout_ms};
  ch_store *fresh = ch_store_new();
  if (!fresh) return ch_fail(err, "rebuild the store: out of memory");
  uint64_t mark = mode == REPLACE ? 0 : ch_store_sync_begin(store);
  int rc = add_pods(&b, fresh, err);
  if (rc == 0) rc = add_containers(&b, fresh, err);
  if (rc == 0 && mode == REPLACE) ch_store_swap_content(store, fresh);
  if (rc == 0 && mode != REPLACE) ch_store_sync_install(store, fresh, mark, mode == RESYNC);
  if (mode != REPLACE) ch_store_sync_end(store);
  ch_store_free(fresh); /* what was left over, or the partial new content */
  return rc;
}

int ch_store_rebuild(ch_store *store, grpc_channel *channel, int timeout_ms, ch_error *err) {
  return rebuild_with(store, channel, timeout_ms, REPLACE, err);
}

int ch_store_fill_missing(ch_store *store, grpc_channel *channel, int timeout_ms, ch_error *err) {
  return rebuild_with(store, channel, timeout_ms, FILL, err);
}

int ch_store_resync(ch_store *store, grpc_channel *channel, int timeout_ms, ch_error *err) {
  return rebuild_with(store, channel, timeout_ms, RESYNC, err);
}

/* ---- one item from its status answer ------------------------------------ */

/* Installs `fresh` (one item) into `store` unless removed since `mark`. */
static void install_one(ch_store *store, ch_store *fresh, uint64_t mark) {
  ch_store_sync_install(store, fresh, mark, false);
  ch_store_free(fresh);
}

int ch_store_put_pod_status(ch_store *store, const char *pod_id, const uint8_t *bytes, size_t len,
                            uint64_t mark, ch_error *err) {
  Runtime__V1__PodSandboxStatusResponse *answer =
      runtime__v1__pod_sandbox_status_response__unpack(NULL, len, bytes);
  if (!answer) return ch_fail(err, "pod %s: the status does not decode", pod_id);
  Runtime__V1__PodSandbox item = RUNTIME__V1__POD_SANDBOX__INIT;
  item.id = (char *)pod_id;
  if (answer->status) {
    item.metadata = answer->status->metadata;
    item.runtime_handler = answer->status->runtime_handler;
  }
  ch_store *fresh = ch_store_new();
  int rc = fresh ? put_pod(fresh, &item, answer, err) : ch_fail(err, "out of memory");
  if (rc == 0)
    install_one(store, fresh, mark);
  else
    ch_store_free(fresh);
  runtime__v1__pod_sandbox_status_response__free_unpacked(answer, NULL);
  return rc;
}

/* info["info"]'s "sandboxID" (containerd), malloc'd, or NULL. */
static char *sandbox_id_of(const Runtime__V1__ContainerStatusResponse *answer) {
  json_t *doc = info_doc(answer->n_info, (info_entry *const *)answer->info);
  const char *id = json_string_value(json_object_get(doc, "sandboxID"));
  char *out = id && *id ? strdup(id) : NULL;
  json_decref(doc);
  return out;
}

int ch_store_put_container_status(ch_store *store, const char *container_id, const uint8_t *bytes,
                                  size_t len, uint64_t mark, ch_error *err) {
  Runtime__V1__ContainerStatusResponse *answer =
      runtime__v1__container_status_response__unpack(NULL, len, bytes);
  if (!answer) return ch_fail(err, "container %s: the status does not decode", container_id);
  char *pod_id = sandbox_id_of(answer);
  Runtime__V1__Container item = RUNTIME__V1__CONTAINER__INIT;
  item.id = (char *)container_id;
  item.pod_sandbox_id = pod_id ? pod_id : (char *)"";
  if (answer->status) item.metadata = answer->status->metadata;
  ch_store *fresh = ch_store_new();
  int rc = fresh ? put_container(fresh, &item, answer, err) : ch_fail(err, "out of memory");
  if (rc == 0)
    install_one(store, fresh, mark);
  else
    ch_store_free(fresh);
  free(pod_id);
  runtime__v1__container_status_response__free_unpacked(answer, NULL);
  return rc;
}
