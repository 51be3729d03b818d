/* SPDX-License-Identifier: Apache-2.0 */
/* cri_dockerd.c: the cri-dockerd kind (backend.h), Docker Engine behind
 * Mirantis' CRI shim, whose Version says runtime_name "docker".
 *
 * The shape of its verbose info is not known to crihook (no test runtime to
 * check it against), so configs come from the status alone (the generic
 * recovery), and the pod of a container from the List. */
#include "backend.h"

static const ch_backend_socket sockets[] = {
    {"cri-dockerd", "/run/cri-dockerd.sock"},
};

const ch_backend_kind ch_backend_cri_dockerd = {
    .name = "cri-dockerd",
    .runtime_name = "docker",
    .sockets = sockets,
    .n_sockets = sizeof sockets / sizeof sockets[0],
    .pod_config = NULL,
    .container_config = NULL,
    .container_pod_id = NULL,
};
