/* SPDX-License-Identifier: Apache-2.0 */
/* crio.c: the CRI-O kind (backend.h).
 *
 * CRI-O answers a verbose ContainerStatus with info["info"], a JSON document
 * {"sandboxID", "pid", "runtimeSpec", "privileged"}: it names the container's
 * pod, but carries no "config" (CRI-O does not keep the CreateContainer
 * request), so configs come from the status alone (the generic recovery):
 * no cgroup parent, pod resources or envs after a restart. */
#include "backend.h"

static const ch_backend_socket sockets[] = {
    {"cri-o", "/run/crio/crio.sock"},
};

const ch_backend_kind ch_backend_crio = {
    .name = "cri-o",
    .runtime_name = "cri-o",
    .sockets = sockets,
    .n_sockets = sizeof sockets / sizeof sockets[0],
    .pod_config = NULL,
    .container_config = NULL,
    .container_pod_id = ch_backend_sandbox_id,
};
