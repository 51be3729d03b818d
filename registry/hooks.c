/* SPDX-License-Identifier: Apache-2.0 */
/* hooks.c: the table behind hooks.h. */
#include "hooks.h"

#include <string.h>

typedef struct hook_info {
  const char *name;
  const char *method;
  bool pre;
  bool pod_level;
} hook_info;

#define SERVICE "/runtime.v1alpha1.RuntimeHookService/"

static const hook_info hooks[CH_HOOK_COUNT] = {
    [CH_HOOK_PRE_RUN_POD_SANDBOX] = {"PreRunPodSandbox", SERVICE "PreRunPodSandboxHook", true,
                                     true},
    [CH_HOOK_POST_STOP_POD_SANDBOX] = {"PostStopPodSandbox", SERVICE "PostStopPodSandboxHook",
                                       false, true},
    [CH_HOOK_PRE_CREATE_CONTAINER] = {"PreCreateContainer", SERVICE "PreCreateContainerHook", true,
                                      false},
    [CH_HOOK_PRE_START_CONTAINER] = {"PreStartContainer", SERVICE "PreStartContainerHook", true,
                                     false},
    [CH_HOOK_POST_START_CONTAINER] = {"PostStartContainer", SERVICE "PostStartContainerHook", false,
                                      false},
    [CH_HOOK_POST_STOP_CONTAINER] = {"PostStopContainer", SERVICE "PostStopContainerHook", false,
                                     false},
    [CH_HOOK_PRE_UPDATE_CONTAINER_RESOURCES] = {"PreUpdateContainerResources",
                                                SERVICE "PreUpdateContainerResourcesHook", true,
                                                false},
    [CH_HOOK_PRE_STOP_CONTAINER] = {"PreStopContainer", SERVICE "PreStopContainerHook", true,
                                    false},
    [CH_HOOK_PRE_REMOVE_POD_SANDBOX] = {"PreRemovePodSandbox", SERVICE "PreRemovePodSandboxHook",
                                        true, true},
    [CH_HOOK_POST_REMOVE_CONTAINER] = {"PostRemoveContainer", SERVICE "PostRemoveContainerHook",
                                       false, false},
};

const char *ch_hook_name(ch_hook_point hook) { return hooks[hook].name; }
const char *ch_hook_method(ch_hook_point hook) { return hooks[hook].method; }
bool ch_hook_is_pre(ch_hook_point hook) { return hooks[hook].pre; }
bool ch_hook_is_pod_level(ch_hook_point hook) { return hooks[hook].pod_level; }

int ch_hook_parse(const char *name, ch_hook_point *out) {
  for (int i = 0; i < CH_HOOK_COUNT; i++) {
    if (strcmp(name, hooks[i].name) == 0) {
      *out = (ch_hook_point)i;
      return 0;
    }
  }
  return -1;
}
