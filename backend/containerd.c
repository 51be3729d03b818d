/* SPDX-License-Identifier: Apache-2.0 */
/* containerd.c: the containerd kind (backend.h), also k3s's embedded
 * containerd (same code, another socket).
 *
 * containerd answers a verbose status with info["info"], a JSON document
 * whose "config" member is the PodSandboxConfig / ContainerConfig it was
 * given (Go's encoding/json, snake_case keys as in the .proto), i.e. the
 * request as the Pre hooks left it. It is decoded leniently (keys this
 * build's cri.proto lacks are skipped) and supplies everything: metadata,
 * labels, annotations, cgroup parent, overhead, resources, image, envs in
 * order.
 *
 * A container's resources can have changed since (UpdateContainerResources):
 * containerd keeps the current ones in info["info"]'s "runtimeSpec"
 * (linux.resources, OCI names), which are laid over the config's before it
 * is decoded: cpu shares, quota, period, cpuset cpus and mems, memory limit,
 * swap (only where it is not simply the memory limit, which containerd
 * derives, unless the config had one), hugepage limits (where the config
 * had some) and unified. What the runtime does not keep cannot come back:
 * the annotations of an UpdateContainerResources (containerd 1.6 drops
 * them), what a PreStartContainer answer changed (only crihookd's store had
 * it), and an update's oom_score_adj. A container's pod is info["info"]'s
 * "sandboxID". */
#include <stdbool.h>

#include "backend.h"
#include "pbjson.h"

typedef Runtime__V1__PodSandboxStatusResponse__InfoEntry info_entry;

static const ch_backend_socket sockets[] = {
    {"containerd", "/run/containerd/containerd.sock"},
    {"k3s", "/run/k3s/containerd/containerd.sock"},
};

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

/* The "config" member of info["info"], decoded as `type` (a container's
 * with its current resources); NULL if there is none or it does not decode
 * (then the status is used). */
static ProtobufCMessage *config_of_info(size_t n, info_entry *const *info,
                                        const ProtobufCMessageDescriptor *type) {
  json_t *doc = ch_backend_info_doc(n, info);
  json_t *config = json_object_get(doc, "config");
  ProtobufCMessage *out = NULL;
  ch_error ignored;
  if (json_is_object(config) && type == &runtime__v1__container_config__descriptor)
    overlay_runtime_spec(config, doc);
  if (json_is_object(config)) ch_pb_from_json_lenient(type, config, &out, &ignored);
  json_decref(doc);
  return out;
}

static ProtobufCMessage *pod_config(const Runtime__V1__PodSandboxStatusResponse *answer) {
  return config_of_info(answer->n_info, answer->info, &runtime__v1__pod_sandbox_config__descriptor);
}

static ProtobufCMessage *container_config(const Runtime__V1__ContainerStatusResponse *answer) {
  return config_of_info(answer->n_info, (info_entry *const *)answer->info,
                        &runtime__v1__container_config__descriptor);
}

const ch_backend_kind ch_backend_containerd = {
    .name = "containerd",
    .runtime_name = "containerd",
    .sockets = sockets,
    .n_sockets = sizeof sockets / sizeof sockets[0],
    .pod_config = pod_config,
    .container_config = container_config,
    .container_pod_id = ch_backend_sandbox_id,
};
