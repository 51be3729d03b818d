/* rebuild.c: filling the store from what the backend already runs
 * (ch_store_rebuild in store.h).
 *
 * The List calls give every pod's and container's ID, metadata, labels and
 * annotations. The verbose status of each adds, where the runtime provides
 * it (containerd does: info["info"] is a JSON document whose "config" is the
 * PodSandboxConfig / ContainerConfig the runtime was given, i.e. as the hooks
 * left it), the cgroup parent, overhead, resources and envs. The records are
 * built with the same views as on the live path, so a hook request after a
 * restart carries exactly what it carried before. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "grpc_util.h"
#include "pbjson.h"
#include "store.h"
#include "views.h"

void ch_store_replace_with(ch_store *s, ch_store *from); /* store.c */

typedef struct backend {
  grpc_channel *channel;
  int timeout_ms;
} backend;

/* One call; *out is NULL if the object is gone (NOT_FOUND). */
static int call(const backend *b, const char *method, const ProtobufCMessage *request,
                const ProtobufCMessageDescriptor *answer_type, ProtobufCMessage **out,
                ch_error *err) {
  size_t len = protobuf_c_message_get_packed_size(request);
  uint8_t *bytes = malloc(len ? len : 1);
  if (!bytes) return ch_fail(err, "out of memory");
  protobuf_c_message_pack(request, bytes);
  char path[128];
  snprintf(path, sizeof path, "/runtime.v1.RuntimeService/%s", method);
  ch_unary_result res;
  int rc = ch_unary_call(b->channel, path, bytes, len, b->timeout_ms, NULL, 0, &res, err);
  free(bytes);
  *out = NULL;
  if (rc != 0) return ch_wrap(err, "%s", method);
  if (res.status == GRPC_STATUS_OK) {
    *out = protobuf_c_message_unpack(answer_type, NULL, res.response_len,
                                     res.response ? res.response : (uint8_t *)"");
    if (!*out) rc = ch_fail(err, "%s: the answer does not decode", method);
  } else if (res.status != GRPC_STATUS_NOT_FOUND) {
    rc = ch_fail(err, "%s: %s: %s", method, ch_status_name(res.status), res.details);
  }
  ch_unary_result_clear(&res);
  return rc;
}

/* The "config" member of info["info"], decoded as `type`; NULL if absent. */
static ProtobufCMessage *config_from_info(size_t n,
                                          Runtime__V1__PodSandboxStatusResponse__InfoEntry **info,
                                          const ProtobufCMessageDescriptor *type) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(info[i]->key, "info") != 0) continue;
    json_t *doc = json_loads(info[i]->value, 0, NULL);
    ProtobufCMessage *config = NULL;
    ch_error ignored;
    json_t *c = json_object_get(doc, "config");
    if (json_is_object(c)) ch_pb_from_json_lenient(type, c, &config, &ignored);
    json_decref(doc);
    return config;
  }
  return NULL;
}

static int add_pod(const backend *b, ch_store *fresh, const Runtime__V1__PodSandbox *item,
                   ch_error *err) {
  Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
  req.pod_sandbox_id = item->id;
  req.verbose = true;
  Runtime__V1__PodSandboxStatusResponse *st;
  if (call(b, "PodSandboxStatus", &req.base, &runtime__v1__pod_sandbox_status_response__descriptor,
           (ProtobufCMessage **)&st, err) != 0)
    return -1;
  if (!st) return 0; /* removed meanwhile */
  Runtime__V1__PodSandboxConfig *config =
      (void *)config_from_info(st->n_info, st->info, &runtime__v1__pod_sandbox_config__descriptor);
  Runtime__V1__PodSandboxConfig fallback = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
  if (!config) { /* no verbose config: what the list says */
    fallback.metadata = item->metadata;
    fallback.n_labels = item->n_labels;
    fallback.labels = (void *)item->labels;
    fallback.n_annotations = item->n_annotations;
    fallback.annotations = (void *)item->annotations;
  }
  ch_pod_view v;
  ch_pod_view_of_config(&v, config ? config : &fallback, item->runtime_handler);
  int rc = ch_store_put_pod(fresh, item->id, &v.msg, err);
  if (config) runtime__v1__pod_sandbox_config__free_unpacked(config, NULL);
  runtime__v1__pod_sandbox_status_response__free_unpacked(st, NULL);
  return rc;
}

static int add_container(const backend *b, ch_store *fresh, const Runtime__V1__Container *item,
                         ch_error *err) {
  Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  req.container_id = item->id;
  req.verbose = true;
  Runtime__V1__ContainerStatusResponse *st;
  if (call(b, "ContainerStatus", &req.base, &runtime__v1__container_status_response__descriptor,
           (ProtobufCMessage **)&st, err) != 0)
    return -1;
  if (!st) return 0;
  Runtime__V1__ContainerConfig *config = (void *)config_from_info(
      st->n_info, (void *)st->info, &runtime__v1__container_config__descriptor);
  Runtime__V1__ContainerConfig fallback = RUNTIME__V1__CONTAINER_CONFIG__INIT;
  if (!config) {
    fallback.metadata = item->metadata;
    fallback.n_annotations = item->n_annotations;
    fallback.annotations = (void *)item->annotations;
  }
  Runtime__V1__CreateContainerRequest create = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
  create.pod_sandbox_id = item->pod_sandbox_id;
  create.config = config ? config : &fallback;
  ch_container_view v;
  ch_container_view_of_create(&v, &create, NULL, item->id);
  int rc = ch_store_put_container(fresh, item->id, item->pod_sandbox_id, &v.msg, err);
  if (config) runtime__v1__container_config__free_unpacked(config, NULL);
  runtime__v1__container_status_response__free_unpacked(st, NULL);
  return rc;
}

static int add_pods(const backend *b, ch_store *fresh, ch_error *err) {
  Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
  Runtime__V1__ListPodSandboxResponse *list;
  if (call(b, "ListPodSandbox", &req.base, &runtime__v1__list_pod_sandbox_response__descriptor,
           (ProtobufCMessage **)&list, err) != 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; list && rc == 0 && i < list->n_items; i++)
    rc = add_pod(b, fresh, list->items[i], err);
  if (list) runtime__v1__list_pod_sandbox_response__free_unpacked(list, NULL);
  return rc;
}

static int add_containers(const backend *b, ch_store *fresh, ch_error *err) {
  Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
  Runtime__V1__ListContainersResponse *list;
  if (call(b, "ListContainers", &req.base, &runtime__v1__list_containers_response__descriptor,
           (ProtobufCMessage **)&list, err) != 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; list && rc == 0 && i < list->n_containers; i++)
    rc = add_container(b, fresh, list->containers[i], err);
  if (list) runtime__v1__list_containers_response__free_unpacked(list, NULL);
  return rc;
}

int ch_store_rebuild(ch_store *store, grpc_channel *channel, int timeout_ms, ch_error *err) {
  backend b = {channel, timeout_ms};
  ch_store *fresh = ch_store_new();
  if (!fresh) return ch_fail(err, "out of memory");
  int rc = add_pods(&b, fresh, err);
  if (rc == 0) rc = add_containers(&b, fresh, err);
  if (rc == 0) ch_store_replace_with(store, fresh);
  ch_store_free(fresh);
  return rc;
}
