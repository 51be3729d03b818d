/* SPDX-License-Identifier: Apache-2.0 */
/* methods.c: classification of method paths (methods.h).
 *
 * The CRI services live in packages runtime.v1 and runtime.v1alpha2 with the
 * same method names. The unary list is explicit on purpose: a streaming
 * method added to CRI later must not be mistaken for a unary one. */
#include "methods.h"

#include <string.h>

/* A name and its length, so a lookup compares lengths first and never
 * measures a string: this runs once per relayed call (dataplane.c). */
typedef struct method_name {
  const char *s;
  size_t len;
} method_name;
#define N(lit) \
  { lit, sizeof(lit) - 1 }

static const method_name runtime_unary[] = {
    N("Attach"),
    N("CheckpointContainer"),
    N("ContainerStats"),
    N("ContainerStatus"),
    N("CreateContainer"),
    N("Exec"),
    N("ExecSync"),
    N("ListContainerStats"),
    N("ListContainers"),
    N("ListMetricDescriptors"),
    N("ListPodSandbox"),
    N("ListPodSandboxMetrics"),
    N("ListPodSandboxStats"),
    N("PodSandboxStats"),
    N("PodSandboxStatus"),
    N("PortForward"),
    N("RemoveContainer"),
    N("RemovePodSandbox"),
    N("ReopenContainerLog"),
    N("RunPodSandbox"),
    N("RuntimeConfig"),
    N("StartContainer"),
    N("Status"),
    N("StopContainer"),
    N("StopPodSandbox"),
    N("UpdateContainerResources"),
    N("UpdatePodSandboxResources"),
    N("UpdateRuntimeConfig"),
    N("Version"),
};

static const method_name image_unary[] = {
    N("ImageFsInfo"), N("ImageStatus"), N("ListImages"), N("PullImage"), N("RemoveImage"),
};

static bool name_in(const char *name, size_t len, const method_name *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (list[i].len == len && memcmp(list[i].s, name, len) == 0) return true;
  return false;
}

/* Matches "/runtime.v1.<service>/" or "/runtime.v1alpha2.<service>/" and
 * returns the length of that prefix, or 0. */
static size_t service_prefix(const char *path, size_t len, method_name service) {
  static const method_name packages[] = {N("/runtime.v1."), N("/runtime.v1alpha2.")};
  for (size_t i = 0; i < 2; i++) {
    size_t plen = packages[i].len, slen = service.len;
    if (len > plen + slen + 1 && memcmp(path, packages[i].s, plen) == 0 &&
        memcmp(path + plen, service.s, slen) == 0 && path[plen + slen] == '/')
      return plen + slen + 1;
  }
  return 0;
}

static const method_name runtime_streaming[] = {N("GetContainerEvents")};

ch_method_info ch_method_classify(const char *path, size_t len) {
  ch_method_info info = {false, false, false, NULL, 0};
  size_t p = service_prefix(path, len, (method_name)N("RuntimeService"));
  if (p) {
    info.cri_name = path + p;
    info.cri_name_len = len - p;
    info.known_unary =
        name_in(path + p, len - p, runtime_unary, sizeof runtime_unary / sizeof runtime_unary[0]);
    info.known_streaming = name_in(path + p, len - p, runtime_streaming, 1);
    return info;
  }
  p = service_prefix(path, len, (method_name)N("ImageService"));
  if (p) {
    info.image_service = true;
    info.known_unary =
        name_in(path + p, len - p, image_unary, sizeof image_unary / sizeof image_unary[0]);
  }
  return info;
}
