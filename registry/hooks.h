/* SPDX-License-Identifier: Apache-2.0 */
/* hooks.h: the hook points crihook knows, their names in registration files
 * and their method paths on the wire.
 *
 * The first seven are koordinator's (same names, same methods); the last
 * three are crihook's additions, new methods so old hook servers are not
 * affected. */
#pragma once

#include <stdbool.h>

typedef enum ch_hook_point {
  CH_HOOK_PRE_RUN_POD_SANDBOX = 0,
  CH_HOOK_POST_STOP_POD_SANDBOX,
  CH_HOOK_PRE_CREATE_CONTAINER,
  CH_HOOK_PRE_START_CONTAINER,
  CH_HOOK_POST_START_CONTAINER,
  CH_HOOK_POST_STOP_CONTAINER,
  CH_HOOK_PRE_UPDATE_CONTAINER_RESOURCES,
  CH_HOOK_PRE_STOP_CONTAINER,
  CH_HOOK_PRE_REMOVE_POD_SANDBOX,
  CH_HOOK_POST_REMOVE_CONTAINER,
  CH_HOOK_COUNT
} ch_hook_point;

/* "PreRunPodSandbox", ... as written in runtime-hooks. */
const char *ch_hook_name(ch_hook_point hook);

/* "/runtime.v1alpha1.RuntimeHookService/PreRunPodSandboxHook", ... */
const char *ch_hook_method(ch_hook_point hook);

/* Pre hooks may change the request; Post hooks only notify. */
bool ch_hook_is_pre(ch_hook_point hook);

/* Pod-level hooks send PodSandboxHookRequest, the others
 * ContainerResourceHookRequest. */
bool ch_hook_is_pod_level(ch_hook_point hook);

/* Returns 0 and sets *out for a known name, -1 otherwise. */
int ch_hook_parse(const char *name, ch_hook_point *out);
