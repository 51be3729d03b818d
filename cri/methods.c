/* SPDX-License-Identifier: Apache-2.0 */
/* methods.c: classification of method paths (methods.h).
 *
 * The CRI services live in packages runtime.v1 and runtime.v1alpha2 with the
 * same method names. The unary list is explicit on purpose: a streaming
 * method added to CRI later must not be mistaken for a unary one. */
#include "methods.h"

#include <string.h>

static const char *const runtime_unary[] = {
    "Attach",
    "CheckpointContainer",
    "ContainerStats",
    "ContainerStatus",
    "CreateContainer",
    "Exec",
    "ExecSync",
    "ListContainerStats",
    "ListContainers",
    "ListMetricDescriptors",
    "ListPodSandbox",
    "ListPodSandboxMetrics",
    "ListPodSandboxStats",
    "PodSandboxStats",
    "PodSandboxStatus",
    "PortForward",
    "RemoveContainer",
    "RemovePodSandbox",
    "ReopenContainerLog",
    "RunPodSandbox",
    "RuntimeConfig",
    "StartContainer",
    "Status",
    "StopContainer",
    "StopPodSandbox",
    "UpdateContainerResources",
    "UpdatePodSandboxResources",
    "UpdateRuntimeConfig",
    "Version",
};

static const char *const image_unary[] = {
    "ImageFsInfo", "ImageStatus", "ListImages", "PullImage", "RemoveImage",
};

static bool name_in(const char *name, size_t len, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strlen(list[i]) == len && memcmp(list[i], name, len) == 0) return true;
  return false;
}

/* Matches "/runtime.v1.<service>/" or "/runtime.v1alpha2.<service>/" and
 * returns the length of that prefix, or 0. */
static size_t service_prefix(const char *path, size_t len, const char *service) {
  static const char *const packages[] = {"/runtime.v1.", "/runtime.v1alpha2."};
  for (size_t i = 0; i < 2; i++) {
    size_t plen = strlen(packages[i]), slen = strlen(service);
    if (len > plen + slen + 1 && memcmp(path, packages[i], plen) == 0 &&
        memcmp(path + plen, service, slen) == 0 && path[plen + slen] == '/')
      return plen + slen + 1;
  }
  return 0;
}

static const char *const runtime_streaming[] = {"GetContainerEvents"};

ch_method_info ch_method_classify(const char *path, size_t len) {
  ch_method_info info = {false, false, false, NULL, 0};
  size_t p = service_prefix(path, len, "RuntimeService");
  if (p) {
    info.cri_name = path + p;
    info.cri_name_len = len - p;
    info.known_unary =
        name_in(path + p, len - p, runtime_unary, sizeof runtime_unary / sizeof runtime_unary[0]);
    info.known_streaming = name_in(path + p, len - p, runtime_streaming, 1);
    return info;
  }
  p = service_prefix(path, len, "ImageService");
  if (p) {
    info.image_service = true;
    info.known_unary =
        name_in(path + p, len - p, image_unary, sizeof image_unary / sizeof image_unary[0]);
  }
  return info;
}
