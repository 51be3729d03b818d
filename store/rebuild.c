/* SPDX-License-Identifier: Apache-2.0 */
/* rebuild.c: filling the store from what the backend already runs
 * (ch_store_rebuild in store.h), so that hook requests after a crihookd
 * restart carry the same data as before it.
 *
 * Steps, each a blocking unary CRI call to the backend's socket:
 *   ListPodSandbox, then PodSandboxStatus(verbose) for each pod;
 *   ListContainers, then ContainerStatus(verbose) for each container.
 * A pod or container removed between the List and its Status (NOT_FOUND) is
 * skipped. A Status that fails for one item alone (e.g. INTERNAL for a
 * broken sandbox) keeps that item with what the List said of it (metadata,
 * labels, annotations), so one bad pod cannot keep the store from being
 * rebuilt. A failure that says the backend itself is in trouble
 * (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED), and any
 * failed List, ends the rebuild with an error.
 *
 * The calls go through the one CRI client (cri/cri_client.h) in the API
 * version the backend speaks, found by probing it first (Version over
 * runtime.v1, else runtime.v1alpha2: ch_backend_identify in
 * backend/backend.h), which also names its kind.
 *
 * Where the data comes from: the kind's recover functions (backend.h; one
 * file per kind in backend/) read a verbose status's info, e.g. containerd's
 * info["info"] "config" with its "runtimeSpec" resources, and supply
 * everything: metadata, labels, annotations, cgroup parent, overhead,
 * resources, image, envs in order. Where they recover nothing (CRI-O,
 * cri-dockerd, a generic runtime, a status without info), the status alone:
 * metadata, labels, annotations, runtime handler, and a container's image
 * and resources as the runtime reports them; no cgroup parent, pod
 * resources or envs. A single status whose runtime is not known here
 * (ch_store_put_*_status) is read by every kind in turn, each recognizing
 * only its own shape.
 * Either way the records are built with the views of views.h, as on the
 * live path, and everything goes into a fresh store that replaces the live
 * store's content in one swap at the end (store_internal.h), or, for a
 * fill or a re-sync while calls are served, is installed into it between
 * ch_store_sync_begin and _end (store.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cri.pb-c.h"
#include "cri_client.h"
#include "store.h"
#include "store_internal.h"
#include "views.h"

typedef struct backend {
  cri_client *client;
  const ch_backend_kind *kind; /* NULL: any kind (ch_backend_any_*) */
} backend;

enum { MUST_EXIST, MAY_BE_GONE };

/* ---- calls --------------------------------------------------------------- */

static bool backend_in_trouble(grpc_status_code code) {
  return code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED ||
         code == GRPC_STATUS_CANCELLED || code == GRPC_STATUS_RESOURCE_EXHAUSTED;
}

/* Calls RuntimeService/`method`; *out is the answer. With MAY_BE_GONE (a
 * per-item Status), NOT_FOUND is not a failure (*out stays NULL) and an
 * error about the item alone gives an empty answer (the List's data is
 * used). A call that could not be made at all (status UNKNOWN, no details)
 * is a failure. */
static int call(const backend *b, const char *method, const ProtobufCMessage *request, int missing,
                ProtobufCMessage **out, ch_error *err) {
  grpc_status_code status;
  char details[256];
  if (cri_call(b->client, method, request, out, &status, details, sizeof details, err) == 0)
    return 0;
  bool not_made = status == GRPC_STATUS_UNKNOWN && !details[0];
  if (missing != MAY_BE_GONE || status == GRPC_STATUS_OK || not_made || backend_in_trouble(status))
    return -1;
  if (status == GRPC_STATUS_NOT_FOUND) return 0;
  static const uint8_t nothing[1];
  *out = protobuf_c_message_unpack(cri_method_find(method, NULL)->output, NULL, 0, nothing);
  return *out ? 0 : ch_fail(err, "%s: out of memory", method);
}

/* ---- what the kind recovers ---------------------------------------------- */

static ProtobufCMessage *recover_pod(const backend *b,
                                     const Runtime__V1__PodSandboxStatusResponse *answer) {
  if (!b->kind) return ch_backend_any_pod_config(answer);
  return b->kind->pod_config ? b->kind->pod_config(answer) : NULL;
}

static ProtobufCMessage *recover_container(const backend *b,
                                           const Runtime__V1__ContainerStatusResponse *answer) {
  if (!b->kind) return ch_backend_any_container_config(answer);
  return b->kind->container_config ? b->kind->container_config(answer) : NULL;
}

/* ---- pods ---------------------------------------------------------------- */

/* A PodSandboxConfig made of the status's fields (the list item's if the
 * answer has no status); it shares their memory. */
static Runtime__V1__PodSandboxConfig pod_config_of_status(const Runtime__V1__PodSandboxStatus *st,
                                                          const Runtime__V1__PodSandbox *item) {
  Runtime__V1__PodSandboxConfig c = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
  if (st) {
    c.metadata = st->metadata;
    c.n_labels = st->n_labels;
    c.labels = (Runtime__V1__PodSandboxConfig__LabelsEntry **)st->labels;
    c.n_annotations = st->n_annotations;
    c.annotations = (Runtime__V1__PodSandboxConfig__AnnotationsEntry **)st->annotations;
  } else {
    c.metadata = item->metadata;
    c.n_labels = item->n_labels;
    c.labels = (Runtime__V1__PodSandboxConfig__LabelsEntry **)item->labels;
    c.n_annotations = item->n_annotations;
    c.annotations = (Runtime__V1__PodSandboxConfig__AnnotationsEntry **)item->annotations;
  }
  return c;
}

static const char *runtime_handler_of(const Runtime__V1__PodSandboxStatus *st,
                                      const Runtime__V1__PodSandbox *item) {
  if (st && st->runtime_handler[0]) return st->runtime_handler;
  return item->runtime_handler;
}

static int put_pod(const backend *b, ch_store *fresh, const Runtime__V1__PodSandbox *item,
                   const Runtime__V1__PodSandboxStatusResponse *answer, ch_error *err) {
  ProtobufCMessage *decoded = recover_pod(b, answer);
  Runtime__V1__PodSandboxConfig fallback = pod_config_of_status(answer->status, item);
  const Runtime__V1__PodSandboxConfig *config =
      decoded ? (const Runtime__V1__PodSandboxConfig *)decoded : &fallback;
  ch_pod_view v;
  ch_pod_view_of_config(&v, config, runtime_handler_of(answer->status, item));
  int rc = ch_store_put_pod(fresh, item->id, &v.msg, err);
  protobuf_c_message_free_unpacked(decoded, NULL);
  return rc;
}

static int add_pod(const backend *b, ch_store *fresh, const Runtime__V1__PodSandbox *item,
                   ch_error *err) {
  Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
  req.pod_sandbox_id = item->id;
  req.verbose = true;
  Runtime__V1__PodSandboxStatusResponse *answer;
  if (call(b, "PodSandboxStatus", &req.base, MAY_BE_GONE, (ProtobufCMessage **)&answer, err) != 0)
    return ch_wrap(err, "pod %s", item->id);
  if (!answer) return 0; /* removed since the list */
  int rc = put_pod(b, fresh, item, answer, err);
  runtime__v1__pod_sandbox_status_response__free_unpacked(answer, NULL);
  return rc;
}

static int add_pods(const backend *b, ch_store *fresh, ch_error *err) {
  Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
  Runtime__V1__ListPodSandboxResponse *list;
  if (call(b, "ListPodSandbox", &req.base, MUST_EXIST, (ProtobufCMessage **)&list, err) != 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < list->n_items; i++) rc = add_pod(b, fresh, list->items[i], err);
  runtime__v1__list_pod_sandbox_response__free_unpacked(list, NULL);
  return rc;
}

/* ---- containers ---------------------------------------------------------- */

/* A ContainerConfig made of the status's fields (the list item's if the
 * answer has no status), its resources in `linux_cfg`; it shares their
 * memory. */
static Runtime__V1__ContainerConfig ctr_config_of_status(
    const Runtime__V1__ContainerStatus *st, const Runtime__V1__Container *item,
    Runtime__V1__LinuxContainerConfig *linux_cfg) {
  Runtime__V1__ContainerConfig c = RUNTIME__V1__CONTAINER_CONFIG__INIT;
  runtime__v1__linux_container_config__init(linux_cfg);
  if (!st) {
    c.metadata = item->metadata;
    c.n_annotations = item->n_annotations;
    c.annotations = (Runtime__V1__ContainerConfig__AnnotationsEntry **)item->annotations;
    return c;
  }
  c.metadata = st->metadata;
  c.image = st->image;
  c.n_annotations = st->n_annotations;
  c.annotations = (Runtime__V1__ContainerConfig__AnnotationsEntry **)st->annotations;
  if (st->resources && st->resources->linux) {
    linux_cfg->resources = st->resources->linux;
    c.linux = linux_cfg;
  }
  return c;
}

static int put_container(const backend *b, ch_store *fresh, const Runtime__V1__Container *item,
                         const Runtime__V1__ContainerStatusResponse *answer, ch_error *err) {
  ProtobufCMessage *decoded = recover_container(b, answer);
  Runtime__V1__LinuxContainerConfig linux_cfg;
  Runtime__V1__ContainerConfig fallback = ctr_config_of_status(answer->status, item, &linux_cfg);
  Runtime__V1__CreateContainerRequest create = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
  create.pod_sandbox_id = item->pod_sandbox_id;
  create.config = decoded ? (Runtime__V1__ContainerConfig *)decoded : &fallback;
  ch_container_view v;
  ch_container_view_of_create(&v, &create, NULL, item->id);
  if (answer->status) ch_container_view_name_image(&v, answer->status->image);
  int rc = ch_store_put_container(fresh, item->id, item->pod_sandbox_id, &v.msg, err);
  protobuf_c_message_free_unpacked(decoded, NULL);
  return rc;
}

static int add_container(const backend *b, ch_store *fresh, const Runtime__V1__Container *item,
                         ch_error *err) {
  Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  req.container_id = item->id;
  req.verbose = true;
  Runtime__V1__ContainerStatusResponse *answer;
  if (call(b, "ContainerStatus", &req.base, MAY_BE_GONE, (ProtobufCMessage **)&answer, err) != 0)
    return ch_wrap(err, "container %s", item->id);
  if (!answer) return 0; /* removed since the list */
  int rc = put_container(b, fresh, item, answer, err);
  runtime__v1__container_status_response__free_unpacked(answer, NULL);
  return rc;
}

static int add_containers(const backend *b, ch_store *fresh, ch_error *err) {
  Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
  Runtime__V1__ListContainersResponse *list;
  if (call(b, "ListContainers", &req.base, MUST_EXIST, (ProtobufCMessage **)&list, err) != 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < list->n_containers; i++)
    rc = add_container(b, fresh, list->containers[i], err);
  runtime__v1__list_containers_response__free_unpacked(list, NULL);
  return rc;
}

/* ---- the whole rebuild --------------------------------------------------- */

typedef enum install_mode { REPLACE, FILL, RESYNC } install_mode;

/* Reads the backend into a fresh store and installs it as `mode` says. */
static int read_into(ch_store *store, const backend *b, install_mode mode, ch_error *err) {
  ch_store *fresh = ch_store_new();
  if (!fresh) return ch_fail(err, "rebuild the store: out of memory");
  uint64_t mark = mode == REPLACE ? 0 : ch_store_sync_begin(store);
  int rc = add_pods(b, fresh, err);
  if (rc == 0) rc = add_containers(b, fresh, err);
  if (rc == 0 && mode == REPLACE) ch_store_swap_content(store, fresh);
  if (rc == 0 && mode != REPLACE) ch_store_sync_install(store, fresh, mark, mode == RESYNC);
  if (mode != REPLACE) ch_store_sync_end(store);
  ch_store_free(fresh); /* what was left over, or the partial new content */
  return rc;
}

/* Reads the backend in the API version and kind `found` says, probing it
 * first if that is not known. */
static int rebuild_with(ch_store *store, const char *path, const ch_probe_result *found,
                        int timeout_ms, install_mode mode, ch_error *err) {
  ch_probe_result id;
  if (!found || !found->answered) {
    if (ch_backend_identify(path, timeout_ms, &id, err) != 0)
      return ch_fail(err, "the backend does not answer: %s", id.why);
    found = &id;
  }
  cri_client *client = cri_client_open(path, found->api, timeout_ms, err);
  if (!client) return -1;
  backend b = {client, found->kind};
  int rc = read_into(store, &b, mode, err);
  cri_client_free(client);
  return rc;
}

int ch_store_rebuild(ch_store *store, const char *path, const ch_probe_result *found,
                     int timeout_ms, ch_error *err) {
  return rebuild_with(store, path, found, timeout_ms, REPLACE, err);
}

int ch_store_fill_missing(ch_store *store, const char *path, const ch_probe_result *found,
                          int timeout_ms, ch_error *err) {
  return rebuild_with(store, path, found, timeout_ms, FILL, err);
}

int ch_store_resync(ch_store *store, const char *path, const ch_probe_result *found, int timeout_ms,
                    ch_error *err) {
  return rebuild_with(store, path, found, timeout_ms, RESYNC, err);
}

/* ---- one item from its status answer ------------------------------------ */

/* Installs `fresh` (one item) into `store` unless removed since `mark`. */
static void install_one(ch_store *store, ch_store *fresh, uint64_t mark) {
  ch_store_sync_install(store, fresh, mark, false);
  ch_store_free(fresh);
}

int ch_store_put_pod_status(ch_store *store, const char *pod_id, const uint8_t *bytes, size_t len,
                            uint64_t mark, ch_error *err) {
  Runtime__V1__PodSandboxStatusResponse *answer =
      runtime__v1__pod_sandbox_status_response__unpack(NULL, len, bytes);
  if (!answer) return ch_fail(err, "pod %s: the status does not decode", pod_id);
  Runtime__V1__PodSandbox item = RUNTIME__V1__POD_SANDBOX__INIT;
  item.id = (char *)pod_id;
  if (answer->status) {
    item.metadata = answer->status->metadata;
    item.runtime_handler = answer->status->runtime_handler;
  }
  ch_store *fresh = ch_store_new();
  const backend any = {NULL, NULL};
  int rc = fresh ? put_pod(&any, fresh, &item, answer, err) : ch_fail(err, "out of memory");
  if (rc == 0)
    install_one(store, fresh, mark);
  else
    ch_store_free(fresh);
  runtime__v1__pod_sandbox_status_response__free_unpacked(answer, NULL);
  return rc;
}

int ch_store_put_container_status(ch_store *store, const char *container_id, const uint8_t *bytes,
                                  size_t len, uint64_t mark, ch_error *err) {
  Runtime__V1__ContainerStatusResponse *answer =
      runtime__v1__container_status_response__unpack(NULL, len, bytes);
  if (!answer) return ch_fail(err, "container %s: the status does not decode", container_id);
  char *pod_id = ch_backend_any_container_pod_id(answer);
  Runtime__V1__Container item = RUNTIME__V1__CONTAINER__INIT;
  item.id = (char *)container_id;
  item.pod_sandbox_id = pod_id ? pod_id : (char *)"";
  if (answer->status) item.metadata = answer->status->metadata;
  ch_store *fresh = ch_store_new();
  const backend any = {NULL, NULL};
  int rc = fresh ? put_container(&any, fresh, &item, answer, err) : ch_fail(err, "out of memory");
  if (rc == 0)
    install_one(store, fresh, mark);
  else
    ch_store_free(fresh);
  free(pod_id);
  runtime__v1__container_status_response__free_unpacked(answer, NULL);
  return rc;
}
