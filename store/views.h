/* SPDX-License-Identifier: Apache-2.0 */
/* views.h: hook requests as views over CRI requests, without copies.
 *
 * A view is a hook-API message whose fields point into a decoded CRI message
 * (strings, maps, resources). It is valid as long as that message is and
 * unchanged, and it must never be freed with free_unpacked: pack it (to send
 * it, or to store it: the store copies by packing) and let it go.
 *
 * Sharing sub-messages across the two APIs is exact on the wire because the
 * field numbers are the same (LinuxContainerResources, map entries {1: key,
 * 2: value}, CRI's KeyValue for envs) and protobuf-c packs each sub-message
 * with its own descriptor. */
#pragma once

#include <stdbool.h>

#include "cri.pb-c.h"
#include "hook.pb-c.h"

typedef struct ch_pod_view {
  Runtime__V1alpha1__PodSandboxHookRequest msg;
  Runtime__V1alpha1__PodSandboxMetadata meta;
} ch_pod_view;

typedef struct ch_container_view {
  Runtime__V1alpha1__ContainerResourceHookRequest msg;
  Runtime__V1alpha1__PodSandboxMetadata pod_meta;
  Runtime__V1alpha1__ContainerMetadata meta;
} ch_container_view;

/* The PodSandboxHookRequest for a RunPodSandbox config. */
void ch_pod_view_of_config(ch_pod_view *v, const Runtime__V1__PodSandboxConfig *config,
                           const char *runtime_handler);

/* The ContainerResourceHookRequest for a CreateContainer request: the pod_*
 * fields from `stored_pod` (the pod as its own hooks changed it), or, when
 * that is NULL, from the request's sandbox_config (kubelet's unchanged
 * copy). `container_id` may be "" (not created yet). */
void ch_container_view_of_create(ch_container_view *v,
                                 const Runtime__V1__CreateContainerRequest *request,
                                 const Runtime__V1alpha1__PodSandboxHookRequest *stored_pod,
                                 const char *container_id);

/* For a container rebuilt from the runtime: when the config the runtime kept
 * names the image by ID only (containerd 1.6 does not keep CRI's
 * user_specified_image), container_image becomes the image name the
 * runtime's ContainerStatus reports (`status_image`, containerd's first tag
 * of the image), the closest to what kubelet wrote. Nothing changes when the
 * view already has a name or the status has none. */
void ch_container_view_name_image(ch_container_view *v, const Runtime__V1__ImageSpec *status_image);
