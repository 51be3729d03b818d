/* SPDX-License-Identifier: Apache-2.0 */
/* generic.c: the generic kind (backend.h), any runtime that answers CRI but
 * is none of the known kinds (a socket given by --backend), and the helpers
 * the kinds share.
 *
 * A generic runtime has no default socket and nothing in its verbose info
 * crihook knows how to read: configs come from the status alone (done by
 * store/rebuild.c when a kind recovers nothing), the pod of a container
 * from the List. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

const ch_backend_kind ch_backend_generic = {
    .name = "generic",
    .runtime_name = NULL,
    .sockets = NULL,
    .n_sockets = 0,
    .pod_config = NULL,
    .container_config = NULL,
    .container_pod_id = NULL,
};

const ch_backend_kind *ch_backend_kind_of(const char *runtime_name) {
  for (size_t i = 0; runtime_name && i < ch_backend_kind_count; i++)
    if (strcmp(ch_backend_kinds[i]->runtime_name, runtime_name) == 0) return ch_backend_kinds[i];
  return &ch_backend_generic;
}

json_t *ch_backend_info_doc(size_t n,
                            Runtime__V1__PodSandboxStatusResponse__InfoEntry *const *info) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(info[i]->key, "info") == 0) return json_loads(info[i]->value, 0, NULL);
  return NULL;
}

char *ch_backend_sandbox_id(const Runtime__V1__ContainerStatusResponse *answer) {
  json_t *doc = ch_backend_info_doc(
      answer->n_info, (Runtime__V1__PodSandboxStatusResponse__InfoEntry *const *)answer->info);
  const char *id = json_string_value(json_object_get(doc, "sandboxID"));
  char *out = id && *id ? strdup(id) : NULL;
  json_decref(doc);
  return out;
}

/* ---- recovery across kinds: each reads only its own shape ---- */

ProtobufCMessage *ch_backend_any_pod_config(const Runtime__V1__PodSandboxStatusResponse *answer) {
  for (size_t i = 0; i < ch_backend_kind_count; i++) {
    const ch_backend_kind *k = ch_backend_kinds[i];
    ProtobufCMessage *m = k->pod_config ? k->pod_config(answer) : NULL;
    if (m) return m;
  }
  return NULL;
}

ProtobufCMessage *ch_backend_any_container_config(
    const Runtime__V1__ContainerStatusResponse *answer) {
  for (size_t i = 0; i < ch_backend_kind_count; i++) {
    const ch_backend_kind *k = ch_backend_kinds[i];
    ProtobufCMessage *m = k->container_config ? k->container_config(answer) : NULL;
    if (m) return m;
  }
  return NULL;
}

char *ch_backend_any_container_pod_id(const Runtime__V1__ContainerStatusResponse *answer) {
  for (size_t i = 0; i < ch_backend_kind_count; i++) {
    const ch_backend_kind *k = ch_backend_kinds[i];
    char *id = k->container_pod_id ? k->container_pod_id(answer) : NULL;
    if (id) return id;
  }
  return NULL;
}
